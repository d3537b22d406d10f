/* libFuzzer target: conf_parse() on arbitrary text must never crash, leak
 * or read out of bounds, and must either return a conf or an error. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "sluice/conf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct conf_errors errs = { 0 };
	struct conf *c = conf_parse("fuzz.conf", (const char *)data, size, &errs);

	if ((c == NULL) == (errs.n == 0))
		abort(); /* a result and an error, or neither */
	conf_free(c);
	conf_errors_clear(&errs);
	return 0;
}
