/* libFuzzer target: an allow/deny file's text into a longest-prefix table.
 * Whatever the bytes, the parse either fails with a FILE:LINE:COL message
 * or every prefix it read is found again: a lookup of the prefix's own
 * address matches a prefix at least as long. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/guard.h"
#include "sluice/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct guard_lpm_builder *b = guard_lpm_builder_new();
	const char *text = (const char *)data;
	struct guard_lpm *t;
	char err[512];
	long n;

	if (b == NULL)
		abort();
	n = guard_file_parse(b, "f", text, size, GUARD_DENY, NULL, err, sizeof(err));
	if (n < 0) {
		if (strncmp(err, "f:", 2) != 0 || strstr(err, ": error: ") == NULL)
			abort();
		guard_lpm_builder_free(b);
		return 0;
	}
	t = guard_lpm_build(b);
	if (t == NULL || guard_lpm_count(t) > (size_t)n)
		abort();
	/* each line again: its own address is held by a prefix this long */
	for (const char *p = text, *end = text + size; p < end;) {
		const char *nl = memchr(p, '\n', (size_t)(end - p)), *le = nl ? nl : end, *q = p;
		struct util_cidr c;
		struct util_addr a = { 0 };
		enum guard_action act;

		while (q < le && (*q == ' ' || *q == '\t'))
			q++;
		const char *e = q;

		while (e < le && *e != ' ' && *e != '\t' && *e != '\r' && *e != '#')
			e++;
		if (e > q && util_cidr_parse(q, (size_t)(e - q), &c, err, sizeof(err)) == 0) {
			a.u.sa.sa_family = c.family;
			memcpy(c.family == AF_INET ? (void *)&a.u.in4.sin_addr
						   : (void *)&a.u.in6.sin6_addr,
			       c.addr, c.family == AF_INET ? 4 : 16);
			if (guard_lpm_lookup(t, &a, 0, &act) < (int)c.plen || act != GUARD_DENY)
				abort();
		}
		p = nl ? nl + 1 : end;
	}
	guard_lpm_put(t);
	return 0;
}
