/* libFuzzer target: expect matching on untrusted backend replies. The first
 * byte picks a pattern length; the pattern is the next bytes and the reply
 * the rest. A match must be found exactly when a naive scan finds one, and
 * the log escaping of the reply must stay within its buffer. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/health.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t plen, rlen;
	const char *pat, *reply;
	bool naive = false;
	char esc[97];

	if (size < 1)
		return 0;
	plen = data[0] % 32;
	if (plen > size - 1)
		plen = size - 1;
	pat = (const char *)data + 1;
	reply = pat + plen;
	rlen = size - 1 - plen;
	for (size_t i = 0; plen > 0 && i + plen <= rlen && !naive; i++)
		naive = memcmp(reply + i, pat, plen) == 0;
	if (health_expect_match(reply, rlen, pat, plen) != naive)
		abort();
	health_escape(reply, rlen, esc, sizeof(esc));
	if (strlen(esc) >= sizeof(esc))
		abort();
	return 0;
}
