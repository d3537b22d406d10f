/* libFuzzer target: the PROXY header parser on untrusted client bytes;
 * an OK result must consume a length inside the input. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "sluice/proxyproto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct util_addr s, d;
	size_t used = 0;

	if (proxyproto_parse(data, size, 16384, &s, &d, &used) == PROXYPROTO_OK &&
	    (used == 0 || used > size))
		abort();
	return 0;
}
