/* Unit tests for resolve_dns_read: replies built byte by byte here (an
 * encoder written apart from the reader), one per outcome: A and AAAA with
 * their TTLs, CNAME chains (TTL the least of the chain), loops and dead
 * ends, NXDOMAIN / SERVFAIL / REFUSED, SRV with glue, the "." target, name
 * compression, and malformed replies (pointer loops, forward pointers,
 * short records, counts larger than the message). */
#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sluice/resolve.h"
#include "sluice/util.h"

/* ---- a reply builder ---- */

struct msg {
	uint8_t b[70000];
	size_t n;
};

static void put8(struct msg *m, uint8_t v)
{
	assert_true(m->n < sizeof(m->b));
	m->b[m->n++] = v;
}

static void put16(struct msg *m, uint16_t v)
{
	put8(m, (uint8_t)(v >> 8));
	put8(m, (uint8_t)v);
}

static void put32(struct msg *m, uint32_t v)
{
	put16(m, (uint16_t)(v >> 16));
	put16(m, (uint16_t)v);
}

/* A name in labels (no compression); "" is the root. */
static void put_name(struct msg *m, const char *name)
{
	const char *p = name;

	while (*p != '\0') {
		size_t l = strcspn(p, ".");

		put8(m, (uint8_t)l);
		for (size_t i = 0; i < l; i++)
			put8(m, (uint8_t)p[i]);
		p += l;
		if (*p == '.')
			p++;
	}
	put8(m, 0);
}

static void header(struct msg *m, uint16_t flags, uint16_t an, uint16_t ns, uint16_t ar,
		   const char *qname, uint16_t qtype)
{
	m->n = 0;
	put16(m, 0x1234);
	put16(m, flags);
	put16(m, 1);
	put16(m, an);
	put16(m, ns);
	put16(m, ar);
	put_name(m, qname);
	put16(m, qtype);
	put16(m, 1);
}

#define OK_FLAGS 0x8180 /* reply, RD, RA, NOERROR */

static void rr_head(struct msg *m, const char *owner, uint16_t type, uint32_t ttl, uint16_t rdlen)
{
	put_name(m, owner);
	put16(m, type);
	put16(m, 1);
	put32(m, ttl);
	put16(m, rdlen);
}

static void rr_a(struct msg *m, const char *owner, uint32_t ttl, const char *ip)
{
	uint8_t a[4];

	assert_int_equal(inet_pton(AF_INET, ip, a), 1);
	rr_head(m, owner, RESOLVE_DNS_A, ttl, 4);
	for (int i = 0; i < 4; i++)
		put8(m, a[i]);
}

static void rr_aaaa(struct msg *m, const char *owner, uint32_t ttl, const char *ip)
{
	uint8_t a[16];

	assert_int_equal(inet_pton(AF_INET6, ip, a), 1);
	rr_head(m, owner, RESOLVE_DNS_AAAA, ttl, 16);
	for (int i = 0; i < 16; i++)
		put8(m, a[i]);
}

static size_t name_len(const char *name)
{
	return name[0] == '\0' ? 1 : strlen(name) + 2;
}

static void rr_cname(struct msg *m, const char *owner, uint32_t ttl, const char *to)
{
	rr_head(m, owner, RESOLVE_DNS_CNAME, ttl, (uint16_t)name_len(to));
	put_name(m, to);
}

static void rr_srv(struct msg *m, const char *owner, uint32_t ttl, uint16_t prio, uint16_t w,
		   uint16_t port, const char *target)
{
	rr_head(m, owner, RESOLVE_DNS_SRV, ttl, (uint16_t)(6 + name_len(target)));
	put16(m, prio);
	put16(m, w);
	put16(m, port);
	put_name(m, target);
}

static const char *host(const struct util_addr *a)
{
	static char buf[UTIL_ADDR_STRLEN];

	return util_addr_fmt_host(a, buf, sizeof(buf));
}

/* ---- tests ---- */

static void test_a_records_and_ttl(void **state)
{
	struct msg *m = calloc(1, sizeof(*m));
	struct resolve_dns_result r;

	(void)state;
	header(m, OK_FLAGS, 2, 0, 0, "web.example", RESOLVE_DNS_A);
	rr_a(m, "web.example", 30, "192.0.2.10");
	rr_a(m, "WEB.example", 7, "192.0.2.11"); /* names compare without case */
	assert_int_equal(resolve_dns_read(m->b, m->n, RESOLVE_DNS_A, 100, &r), 0);
	assert_int_equal(r.err, RESOLVE_ERR_NONE);
	assert_int_equal(r.nrecs, 2);
	assert_string_equal(host(&r.recs[0].addr), "192.0.2.10");
	assert_int_equal(r.recs[0].ttl, 30);
	assert_string_equal(host(&r.recs[1].addr), "192.0.2.11");
	assert_int_equal(r.ttl, 7);
	resolve_dns_result_free(&r);
	free(m);
}

static void test_aaaa_and_other_names_ignored(void **state)
{
	struct msg *m = calloc(1, sizeof(*m));
	struct resolve_dns_result r;

	(void)state;
	header(m, OK_FLAGS, 3, 0, 0, "web.example", RESOLVE_DNS_AAAA);
	rr_aaaa(m, "other.example", 5, "2001:db8::9"); /* not the question's name */
	rr_aaaa(m, "web.example", 60, "2001:db8::5");
	rr_a(m, "web.example", 1, "192.0.2.1"); /* not the asked type */
	assert_int_equal(resolve_dns_read(m->b, m->n, RESOLVE_DNS_AAAA, 100, &r), 0);
	assert_int_equal(r.err, RESOLVE_ERR_NONE);
	assert_int_equal(r.nrecs, 1);
	assert_string_equal(host(&r.recs[0].addr), "2001:db8::5");
	assert_int_equal(r.ttl, 60);
	resolve_dns_result_free(&r);
	free(m);
}

static void test_cname_chain_ttl_is_the_least(void **state)
{
	struct msg *m = calloc(1, sizeof(*m));
	struct resolve_dns_result r;

	(void)state;
	header(m, OK_FLAGS, 3, 0, 0, "www.example", RESOLVE_DNS_A);
	rr_cname(m, "www.example", 4, "lb.example");
	rr_cname(m, "lb.example", 300, "node.example");
	rr_a(m, "node.example", 60, "192.0.2.20");
	assert_int_equal(resolve_dns_read(m->b, m->n, RESOLVE_DNS_A, 100, &r), 0);
	assert_int_equal(r.err, RESOLVE_ERR_NONE);
	assert_int_equal(r.nrecs, 1);
	assert_string_equal(host(&r.recs[0].addr), "192.0.2.20");
	assert_int_equal(r.ttl, 4);
	resolve_dns_result_free(&r);
	free(m);
}

static void test_cname_loop_and_dead_end(void **state)
{
	struct msg *m = calloc(1, sizeof(*m));
	struct resolve_dns_result r;

	(void)state;
	header(m, OK_FLAGS, 2, 0, 0, "a.example", RESOLVE_DNS_A);
	rr_cname(m, "a.example", 60, "b.example");
	rr_cname(m, "b.example", 60, "a.example");
	assert_int_equal(resolve_dns_read(m->b, m->n, RESOLVE_DNS_A, 100, &r), 0);
	assert_int_equal(r.err, RESOLVE_ERR_CNAME_LOOP);
	assert_int_equal(r.nrecs, 0);
	assert_int_equal(resolve_error_hold(r.err), RESOLVE_HOLD_NX);
	resolve_dns_result_free(&r);

	/* a chain longer than sluice follows is treated as a loop */
	header(m, OK_FLAGS, 20, 0, 0, "c0.example", RESOLVE_DNS_A);
	for (int i = 0; i < 20; i++) {
		char from[32], to[32];

		snprintf(from, sizeof(from), "c%d.example", i);
		snprintf(to, sizeof(to), "c%d.example", i + 1);
		rr_cname(m, from, 60, to);
	}
	assert_int_equal(resolve_dns_read(m->b, m->n, RESOLVE_DNS_A, 100, &r), 0);
	assert_int_equal(r.err, RESOLVE_ERR_CNAME_LOOP);
	resolve_dns_result_free(&r);

	header(m, OK_FLAGS, 1, 0, 0, "a.example", RESOLVE_DNS_A);
	rr_cname(m, "a.example", 60, "elsewhere.example");
	assert_int_equal(resolve_dns_read(m->b, m->n, RESOLVE_DNS_A, 100, &r), 0);
	assert_int_equal(r.err, RESOLVE_ERR_CNAME_END);
	resolve_dns_result_free(&r);

	/* no record at all: NODATA */
	header(m, OK_FLAGS, 0, 0, 0, "a.example", RESOLVE_DNS_A);
	assert_int_equal(resolve_dns_read(m->b, m->n, RESOLVE_DNS_A, 100, &r), 0);
	assert_int_equal(r.err, RESOLVE_ERR_NODATA);
	resolve_dns_result_free(&r);
	free(m);
}

static void test_rcodes(void **state)
{
	static const struct {
		uint16_t rcode;
		enum resolve_error err;
		enum resolve_hold_kind hold;
	} cases[] = {
	    {3, RESOLVE_ERR_NXDOMAIN, RESOLVE_HOLD_NX},
	    {2, RESOLVE_ERR_SERVFAIL, RESOLVE_HOLD_TIMEOUT},
	    {5, RESOLVE_ERR_REFUSED, RESOLVE_HOLD_TIMEOUT},
	    {1, RESOLVE_ERR_BADRESP, RESOLVE_HOLD_TIMEOUT},
	    {4, RESOLVE_ERR_OTHER, RESOLVE_HOLD_TIMEOUT},
	};
	struct msg *m = calloc(1, sizeof(*m));
	struct resolve_dns_result r;

	(void)state;
	for (size_t i = 0; i < UTIL_ARRAY_LEN(cases); i++) {
		header(m, (uint16_t)(0x8180 | cases[i].rcode), 0, 0, 0, "x.example", RESOLVE_DNS_A);
		assert_int_equal(resolve_dns_read(m->b, m->n, RESOLVE_DNS_A, 100, &r), 0);
		assert_int_equal(r.err, cases[i].err);
		assert_int_equal(resolve_error_hold(r.err), cases[i].hold);
		assert_int_equal(r.nrecs, 0);
		resolve_dns_result_free(&r);
	}
	free(m);
}

static void test_srv_with_glue_and_dot_target(void **state)
{
	struct msg *m = calloc(1, sizeof(*m));
	struct resolve_dns_result r;

	(void)state;
	header(m, OK_FLAGS, 3, 1, 2, "_http._tcp.web.example", RESOLVE_DNS_SRV);
	rr_srv(m, "_http._tcp.web.example", 20, 10, 5, 8080, "n1.web.example");
	rr_srv(m, "_http._tcp.web.example", 15, 20, 0, 8081, "n2.web.example");
	rr_srv(m, "_http._tcp.web.example", 15, 0, 0, 0, ""); /* "." : not there */
	rr_a(m, "ns.example", 5, "192.0.2.99");		      /* authority section: ignored */
	rr_a(m, "n1.web.example", 9, "192.0.2.31");
	rr_aaaa(m, "n2.web.example", 40, "2001:db8::32");
	assert_int_equal(resolve_dns_read(m->b, m->n, RESOLVE_DNS_SRV, 100, &r), 0);
	assert_int_equal(r.err, RESOLVE_ERR_NONE);
	assert_int_equal(r.nrecs, 2);
	assert_int_equal(r.skipped, 1);
	assert_string_equal(r.recs[0].target, "n1.web.example");
	assert_int_equal(r.recs[0].priority, 10);
	assert_int_equal(r.recs[0].weight, 5);
	assert_int_equal(r.recs[0].port, 8080);
	assert_int_equal(r.recs[1].port, 8081);
	assert_int_equal(r.ttl, 15);
	assert_int_equal(r.nglue, 2);
	assert_string_equal(r.glue[0].name, "n1.web.example");
	assert_string_equal(host(&r.glue[0].addr), "192.0.2.31");
	assert_int_equal(r.glue[0].ttl, 9);
	assert_string_equal(host(&r.glue[1].addr), "2001:db8::32");
	resolve_dns_result_free(&r);
	free(m);
}

static void test_compression_pointers(void **state)
{
	struct msg *m = calloc(1, sizeof(*m));
	struct resolve_dns_result r;

	(void)state;
	header(m, OK_FLAGS, 1, 0, 0, "web.example", RESOLVE_DNS_A);
	/* owner: a pointer to the question's name at offset 12 */
	put16(m, 0xC00C);
	put16(m, RESOLVE_DNS_A);
	put16(m, 1);
	put32(m, 3);
	put16(m, 4);
	put32(m, 0xC0000207); /* 192.0.2.7 */
	assert_int_equal(resolve_dns_read(m->b, m->n, RESOLVE_DNS_A, 100, &r), 0);
	assert_int_equal(r.nrecs, 1);
	assert_string_equal(host(&r.recs[0].addr), "192.0.2.7");
	resolve_dns_result_free(&r);

	/* a pointer to itself (a loop) and a pointer forwards: malformed */
	for (int k = 0; k < 2; k++) {
		size_t at;

		header(m, OK_FLAGS, 1, 0, 0, "web.example", RESOLVE_DNS_A);
		at = m->n;
		put16(m, (uint16_t)(0xC000 | (k == 0 ? at : at + 2)));
		put16(m, RESOLVE_DNS_A);
		put16(m, 1);
		put32(m, 3);
		put16(m, 4);
		put32(m, 0xC0000207);
		assert_int_equal(resolve_dns_read(m->b, m->n, RESOLVE_DNS_A, 100, &r), -1);
		assert_int_equal(r.err, RESOLVE_ERR_BADRESP);
		resolve_dns_result_free(&r);
	}
	free(m);
}

static void test_malformed(void **state)
{
	struct msg *m = calloc(1, sizeof(*m));
	struct resolve_dns_result r;
	size_t full;

	(void)state;
	header(m, OK_FLAGS, 1, 0, 0, "web.example", RESOLVE_DNS_A);
	rr_a(m, "web.example", 3, "192.0.2.1");
	full = m->n;
	/* every truncation of a valid reply is refused, never read past */
	for (size_t n = 0; n < full; n++) {
		assert_int_equal(resolve_dns_read(m->b, n, RESOLVE_DNS_A, 100, &r), -1);
		resolve_dns_result_free(&r);
	}
	/* an A record of 5 bytes */
	m->b[full - 5] = 5;
	assert_int_equal(resolve_dns_read(m->b, full, RESOLVE_DNS_A, 100, &r), -1);
	resolve_dns_result_free(&r);
	/* a query, not a reply; a reply to another type */
	header(m, 0x0100, 0, 0, 0, "web.example", RESOLVE_DNS_A);
	assert_int_equal(resolve_dns_read(m->b, m->n, RESOLVE_DNS_A, 100, &r), -1);
	resolve_dns_result_free(&r);
	header(m, OK_FLAGS, 0, 0, 0, "web.example", RESOLVE_DNS_AAAA);
	assert_int_equal(resolve_dns_read(m->b, m->n, RESOLVE_DNS_A, 100, &r), -1);
	resolve_dns_result_free(&r);
	/* counts that claim 65535 records in a short message */
	header(m, OK_FLAGS, 0xFFFF, 0xFFFF, 0xFFFF, "web.example", RESOLVE_DNS_A);
	rr_a(m, "web.example", 3, "192.0.2.1");
	assert_int_equal(resolve_dns_read(m->b, m->n, RESOLVE_DNS_A, 100, &r), -1);
	resolve_dns_result_free(&r);
	/* a label with a byte a host name cannot have: the record is skipped */
	header(m, OK_FLAGS, 1, 0, 0, "web.example", RESOLVE_DNS_A);
	rr_a(m, "we b.example", 3, "192.0.2.1");
	assert_int_equal(resolve_dns_read(m->b, m->n, RESOLVE_DNS_A, 100, &r), 0);
	assert_int_equal(r.err, RESOLVE_ERR_NODATA);
	resolve_dns_result_free(&r);
	free(m);
}

static void test_many_records_are_capped(void **state)
{
	struct msg *m = calloc(1, sizeof(*m));
	struct resolve_dns_result r;

	(void)state;
	header(m, OK_FLAGS, 1000, 0, 0, "big.example", RESOLVE_DNS_A);
	for (int i = 0; i < 1000; i++) {
		char ip[32];

		snprintf(ip, sizeof(ip), "10.0.%d.%d", i / 250, i % 250 + 1);
		rr_a(m, "big.example", 60, ip);
	}
	assert_int_equal(resolve_dns_read(m->b, m->n, RESOLVE_DNS_A, 4096, &r), 0);
	assert_int_equal(r.nrecs, 1000);
	assert_string_equal(host(&r.recs[999].addr), "10.0.3.250");
	resolve_dns_result_free(&r);
	assert_int_equal(resolve_dns_read(m->b, m->n, RESOLVE_DNS_A, 64, &r), 0);
	assert_int_equal(r.nrecs, 64);
	assert_int_equal(r.skipped, 936);
	resolve_dns_result_free(&r);
	free(m);
}

static void test_ttl_above_2_31_is_zero(void **state)
{
	struct msg *m = calloc(1, sizeof(*m));
	struct resolve_dns_result r;

	(void)state;
	header(m, OK_FLAGS, 1, 0, 0, "web.example", RESOLVE_DNS_A);
	rr_a(m, "web.example", 0x80000000u, "192.0.2.1");
	assert_int_equal(resolve_dns_read(m->b, m->n, RESOLVE_DNS_A, 100, &r), 0);
	assert_int_equal(r.ttl, 0);
	resolve_dns_result_free(&r);
	free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_a_records_and_ttl),
	    cmocka_unit_test(test_aaaa_and_other_names_ignored),
	    cmocka_unit_test(test_cname_chain_ttl_is_the_least),
	    cmocka_unit_test(test_cname_loop_and_dead_end),
	    cmocka_unit_test(test_rcodes),
	    cmocka_unit_test(test_srv_with_glue_and_dot_target),
	    cmocka_unit_test(test_compression_pointers),
	    cmocka_unit_test(test_malformed),
	    cmocka_unit_test(test_many_records_are_capped),
	    cmocka_unit_test(test_ttl_above_2_31_is_zero),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
