/* libFuzzer target for resolve_dns_read: arbitrary bytes as a DNS reply to
 * an A, AAAA or SRV question (the first byte picks the type and the record
 * cap). Aborts when a result breaks an invariant: records of the asked
 * type only, within the cap, a TTL no larger than any record's, names
 * within RESOLVE_NAME_MAX and made of host-name characters. Seeds:
 * tests/fuzz/corpus/resolve_dns/. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "sluice/resolve.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond)
{
	if (!cond)
		abort();
}

static void check_name(const char *s)
{
	size_t n = strnlen(s, RESOLVE_NAME_MAX);

	check(n < RESOLVE_NAME_MAX);
	for (size_t i = 0; i < n; i++)
		check((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-' ||
		      s[i] == '_' || s[i] == '.');
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint16_t types[] = {RESOLVE_DNS_A, RESOLVE_DNS_AAAA, RESOLVE_DNS_SRV};
	struct resolve_dns_result r;
	uint16_t qtype;
	size_t max;
	int rc;

	if (size < 1)
		return 0;
	qtype = types[data[0] % 3];
	max = (data[0] & 0x80) ? 3 : RESOLVE_MAX_RECORDS;
	rc = resolve_dns_read(data + 1, size - 1, qtype, max, &r);
	check(rc == 0 || rc == -1);
	check(strcmp(resolve_error_name(r.err), "?") != 0);
	if (rc < 0) {
		check(r.err != RESOLVE_ERR_NONE);
		check(r.nrecs == 0 || r.recs != NULL);
	}
	check(r.nrecs <= max);
	check((r.err == RESOLVE_ERR_NONE) == (r.nrecs > 0) || rc < 0);
	for (size_t i = 0; i < r.nrecs; i++) {
		const struct resolve_rec *rec = &r.recs[i];

		check(rec->ttl >= r.ttl && rec->ttl <= 0x7FFFFFFF);
		check_name(rec->target);
		if (qtype == RESOLVE_DNS_SRV)
			check(rec->target[0] != '\0' && rec->addr.len == 0);
		else
			check(rec->addr.u.sa.sa_family ==
			      (qtype == RESOLVE_DNS_A ? AF_INET : AF_INET6));
	}
	for (size_t i = 0; i < r.nglue; i++) {
		check_name(r.glue[i].name);
		check(r.glue[i].addr.len != 0);
	}
	resolve_dns_result_free(&r);
	return 0;
}
