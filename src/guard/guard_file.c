/* guard_file: the text of an allow/deny file, one address or prefix per
 * line, into a table builder. A bad line stops the parse with its
 * NAME:LINE:COL, as a bad configuration line does. Pure: core reads the
 * file (on a loader thread) and hands the bytes over. */
#include <stdio.h>
#include <string.h>

#include "sluice/guard.h"
#include "sluice/util.h"

static bool blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r';
}

long guard_file_parse(struct guard_lpm_builder *b, const char *name, const char *text, size_t len,
		      enum guard_action action, const _Atomic bool *stop, char *err, size_t errlen)
{
	struct guard_rule r = {.action = action, .origin = GUARD_ORIGIN_FILE};
	const char *p = text, *end = text + len;
	unsigned long line = 0;
	long added = 0;
	char why[200];

	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		const char *le = eol != NULL ? eol : end, *tok, *te;

		line++;
		guard_lpm_builder_step(b, 1);
		if ((line & 0xffff) == 0 && stop != NULL && atomic_load(stop)) {
			snprintf(err, errlen, "%s: loading abandoned", name);
			return -1;
		}
		tok = p;
		while (tok < le && blank(*tok))
			tok++;
		te = tok;
		while (te < le && !blank(*te) && *te != '#')
			te++;
		if (te > tok) {
			const char *rest = te;

			if (util_cidr_parse(tok, (size_t)(te - tok), &r.cidr, why, sizeof(why)) <
			    0) {
				snprintf(err, errlen, "%s:%lu:%zu: error: %s (near '%.*s')", name,
					 line, (size_t)(tok - p) + 1, why,
					 (int)UTIL_MIN(te - tok, 64), tok);
				return -1;
			}
			while (rest < le && blank(*rest))
				rest++;
			if (rest < le && *rest != '#') {
				te = rest;
				while (te < le && !blank(*te))
					te++;
				snprintf(
				    err, errlen,
				    "%s:%lu:%zu: error: expected one address or prefix per line "
				    "(near '%.*s')",
				    name, line, (size_t)(rest - p) + 1,
				    (int)UTIL_MIN(te - rest, 64), rest);
				return -1;
			}
			if (guard_lpm_builder_add(b, &r) < 0) {
				snprintf(err, errlen,
					 "%s:%lu:%zu: error: out of memory or more than 16777216 "
					 "prefixes",
					 name, line, (size_t)(tok - p) + 1);
				return -1;
			}
			added++;
		}
		p = eol != NULL ? eol + 1 : end;
	}
	return added;
}
