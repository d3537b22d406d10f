/* libFuzzer target: the metrics door's HTTP request parser on untrusted
 * bytes. Checked: every prefix of an input gets an answer no "better"
 * than waiting (a prefix never completes a request that the whole input
 * refuses as malformed), and MORE is never the answer at the size limit. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/ctl/ctl-int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	enum { MAX = 4096 };
	struct ctl_http_req req;
	enum ctl_http_status whole, st;
	char *buf;

	if (size > MAX)
		return 0;
	buf = malloc(size ? size : 1);
	if (buf == NULL)
		return 0;
	memcpy(buf, data, size);
	whole = ctl_http_parse(buf, size, size, &req);
	if (whole == CTL_HTTP_MORE && size > 0)
		abort(); /* at the limit it must decide */
	for (size_t i = 0; i < size; i++) {
		st = ctl_http_parse(buf, i, MAX, &req);
		/* once refused as malformed, a longer input stays refused */
		if (st == CTL_HTTP_BAD && ctl_http_parse(buf, size, MAX, &req) != CTL_HTTP_BAD)
			abort();
	}
	free(buf);
	return 0;
}
