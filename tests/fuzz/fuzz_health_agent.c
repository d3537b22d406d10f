/* libFuzzer target: the agent reply parser on untrusted agent output; a
 * parsed reply keeps its weight in range and its reason printable. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/health.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct health_agent_reply r;

	if (health_agent_parse((const char *)data, size, &r) < 0)
		return 0;
	if (r.weight_pct > 256 || strlen(r.reason) >= sizeof(r.reason))
		abort();
	for (size_t i = 0; r.reason[i] != '\0'; i++)
		if ((unsigned char)r.reason[i] < 0x20 || (unsigned char)r.reason[i] >= 0x7f)
			abort();
	return 0;
}
