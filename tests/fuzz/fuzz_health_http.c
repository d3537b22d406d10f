/* libFuzzer target: the HTTP status line parser on untrusted backend
 * replies; a parsed status must be a three-digit code, and the parser must
 * agree with itself on any prefix that still lacks a line end. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/health.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf = (const char *)data;
	const char *eol = memchr(buf, '\n', size);
	int code = 0, rc = health_http_status(buf, size, &code);

	if (rc == 1 && (code < 100 || code > 999 || eol == NULL))
		abort();
	if (rc == 0 && (eol != NULL || size >= HEALTH_RBUF))
		abort();
	if (eol != NULL) {
		/* what follows the line end never changes the verdict */
		int code2 = 0, rc2 = health_http_status(buf, (size_t)(eol - buf) + 1, &code2);

		if (rc2 != rc || (rc == 1 && code2 != code))
			abort();
	}
	return 0;
}
