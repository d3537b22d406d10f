/* Unit tests for guard's longest-prefix tables and ACL files: the longest
 * prefix decides whatever the order of the additions; on an equal prefix a
 * runtime entry beats a line, a line beats a file, deny beats allow; an
 * entry that expires hands over to the one it hid; IPv4 and IPv6 apart;
 * and a cross-check of random tables against a linear scan. The file
 * parser: comments, blanks, CRLF, and each kind of bad line named by
 * NAME:LINE:COL. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sluice/guard.h"
#include "sluice/util.h"

static struct guard_rule rule(const char *cidr, enum guard_action a, enum guard_origin o,
			      uint64_t expires_ms)
{
	struct guard_rule r = {.action = a, .origin = o, .expires_ms = expires_ms};
	char err[200];

	if (util_cidr_parse(cidr, strlen(cidr), &r.cidr, err, sizeof(err)) < 0)
		fail_msg("%s", err);
	return r;
}

static struct guard_lpm *build(const struct guard_rule *rules, size_t n)
{
	struct guard_lpm_builder *b = guard_lpm_builder_new();
	struct guard_lpm *t;

	assert_non_null(b);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(guard_lpm_builder_add(b, &rules[i]), 0);
	t = guard_lpm_build(b);
	assert_non_null(t);
	return t;
}

/* "deny/8", "allow/16" or "none". */
static const char *look(const struct guard_lpm *t, const char *host, uint64_t now_ms)
{
	static char out[32];
	struct util_addr a;
	enum guard_action act;
	int len;

	assert_int_equal(util_addr_parse_host(host, &a), 0);
	len = guard_lpm_lookup(t, &a, now_ms, &act);
	if (len < 0)
		return "none";
	snprintf(out, sizeof(out), "%s/%d", act == GUARD_DENY ? "deny" : "allow", len);
	return out;
}

static void test_longest_prefix_whatever_the_order(void **state)
{
	struct guard_rule r[] = {
	    rule("10.1.0.0/16", GUARD_DENY, GUARD_ORIGIN_CONFIG, 0),
	    rule("10.0.0.0/8", GUARD_ALLOW, GUARD_ORIGIN_CONFIG, 0),
	    rule("10.1.2.0/24", GUARD_ALLOW, GUARD_ORIGIN_CONFIG, 0),
	    rule("10.1.2.3/32", GUARD_DENY, GUARD_ORIGIN_CONFIG, 0),
	    rule("192.0.2.0/24", GUARD_DENY, GUARD_ORIGIN_CONFIG, 0),
	};
	struct guard_rule rev[5];
	struct guard_lpm *t, *u;

	(void)state;
	for (int i = 0; i < 5; i++)
		rev[i] = r[4 - i];
	t = build(r, 5);
	u = build(rev, 5);
	assert_int_equal(guard_lpm_count(t), 5);
	for (int k = 0; k < 2; k++) {
		const struct guard_lpm *x = k ? u : t;

		assert_string_equal(look(x, "10.2.0.1", 0), "allow/8");
		assert_string_equal(look(x, "10.1.0.1", 0), "deny/16");
		assert_string_equal(look(x, "10.1.2.4", 0), "allow/24");
		assert_string_equal(look(x, "10.1.2.3", 0), "deny/32");
		assert_string_equal(look(x, "192.0.2.255", 0), "deny/24");
		assert_string_equal(look(x, "11.0.0.1", 0), "none");
		assert_string_equal(look(x, "9.255.255.255", 0), "none");
		assert_string_equal(look(x, "2001:db8::1", 0), "none"); /* the other family */
	}
	guard_lpm_put(t);
	guard_lpm_put(u);
}

static void test_equal_prefix_priority(void **state)
{
	struct guard_rule r[] = {
	    rule("198.51.100.0/24", GUARD_DENY, GUARD_ORIGIN_FILE, 0),
	    rule("198.51.100.0/24", GUARD_ALLOW, GUARD_ORIGIN_CONFIG, 0),
	    rule("203.0.113.0/24", GUARD_ALLOW, GUARD_ORIGIN_FILE, 0),
	    rule("203.0.113.0/24", GUARD_DENY, GUARD_ORIGIN_FILE, 0),
	    rule("192.0.2.0/24", GUARD_ALLOW, GUARD_ORIGIN_CONFIG, 0),
	    rule("192.0.2.0/24", GUARD_DENY, GUARD_ORIGIN_RUNTIME, 0),
	    rule("2001:db8::/32", GUARD_DENY, GUARD_ORIGIN_RUNTIME, 0),
	    rule("2001:db8::/32", GUARD_ALLOW, GUARD_ORIGIN_FILE, 0),
	};
	struct guard_lpm *t;

	(void)state;
	t = build(r, UTIL_ARRAY_LEN(r));
	assert_int_equal(guard_lpm_count(t), 4);
	assert_string_equal(look(t, "198.51.100.9", 0), "allow/24"); /* line over file */
	assert_string_equal(look(t, "203.0.113.9", 0), "deny/24");   /* deny over allow */
	assert_string_equal(look(t, "192.0.2.9", 0), "deny/24");     /* runtime over line */
	assert_string_equal(look(t, "2001:db8::9", 0), "deny/32");   /* runtime over file */
	guard_lpm_put(t);
}

static void test_expiry_hands_over(void **state)
{
	struct guard_rule r[] = {
	    rule("10.0.0.0/8", GUARD_ALLOW, GUARD_ORIGIN_CONFIG, 0),
	    rule("10.0.0.0/8", GUARD_DENY, GUARD_ORIGIN_RUNTIME, 1000),
	    rule("10.9.0.0/16", GUARD_DENY, GUARD_ORIGIN_RUNTIME, 500),
	    rule("2001:db8:1::/48", GUARD_ALLOW, GUARD_ORIGIN_RUNTIME, 700),
	    rule("2001:db8::/32", GUARD_DENY, GUARD_ORIGIN_CONFIG, 0),
	};
	struct guard_lpm *t;

	(void)state;
	t = build(r, UTIL_ARRAY_LEN(r));
	assert_string_equal(look(t, "10.1.1.1", 999), "deny/8");
	assert_string_equal(look(t, "10.1.1.1", 1000), "allow/8");
	assert_string_equal(look(t, "10.9.1.1", 499), "deny/16");
	/* expired: the shorter prefix decides, whatever holds it */
	assert_string_equal(look(t, "10.9.1.1", 500), "deny/8");
	assert_string_equal(look(t, "10.9.1.1", 1000), "allow/8");
	assert_string_equal(look(t, "2001:db8:1::5", 699), "allow/48");
	assert_string_equal(look(t, "2001:db8:1::5", 700), "deny/32");
	guard_lpm_put(t);
}

static void test_default_routes_and_hosts(void **state)
{
	struct guard_rule r[] = {
	    rule("0.0.0.0/0", GUARD_DENY, GUARD_ORIGIN_CONFIG, 0),
	    rule("127.0.0.1", GUARD_ALLOW, GUARD_ORIGIN_CONFIG, 0),
	    rule("::/0", GUARD_ALLOW, GUARD_ORIGIN_CONFIG, 0),
	    rule("::1", GUARD_DENY, GUARD_ORIGIN_CONFIG, 0),
	    rule("8000::/1", GUARD_DENY, GUARD_ORIGIN_CONFIG, 0),
	};
	struct guard_lpm *t;

	(void)state;
	t = build(r, UTIL_ARRAY_LEN(r));
	assert_string_equal(look(t, "127.0.0.1", 0), "allow/32");
	assert_string_equal(look(t, "127.0.0.2", 0), "deny/0");
	assert_string_equal(look(t, "255.255.255.255", 0), "deny/0");
	assert_string_equal(look(t, "::1", 0), "deny/128");
	assert_string_equal(look(t, "::2", 0), "allow/0");
	assert_string_equal(look(t, "ffff::", 0), "deny/1");
	guard_lpm_put(t);
}

static void test_empty_table(void **state)
{
	struct guard_lpm *t = build(NULL, 0);

	(void)state;
	assert_int_equal(guard_lpm_count(t), 0);
	assert_string_equal(look(t, "192.0.2.1", 0), "none");
	assert_string_equal(look(t, "2001:db8::1", 0), "none");
	guard_lpm_put(t);
}

/* ---- random tables against a linear scan ---- */

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static void random_rule(struct guard_rule *r, bool v6)
{
	uint64_t x = util_rand64(&rng), y = util_rand64(&rng);
	unsigned width = v6 ? 128 : 32;
	/* short prefixes so that they nest and collide */
	unsigned plen = (unsigned)(util_rand64(&rng) % (v6 ? 40 : 25)) + (v6 ? 8 : 0);

	memset(r, 0, sizeof(*r));
	r->cidr.family = v6 ? AF_INET6 : AF_INET;
	r->cidr.plen = (uint8_t)UTIL_MIN(plen, width);
	/* addresses from a small space, so that many share prefixes */
	x &= 0xff0f00ff000000ffull;
	memcpy(r->cidr.addr, &x, 8);
	memcpy(r->cidr.addr + 8, &y, 8);
	for (unsigned b = r->cidr.plen; b < 128; b++)
		r->cidr.addr[b / 8] &= (uint8_t) ~(0x80 >> (b % 8));
	r->action = (util_rand64(&rng) & 1) ? GUARD_DENY : GUARD_ALLOW;
	r->origin = (enum guard_origin)(util_rand64(&rng) % 3);
}

static int prio(const struct guard_rule *r)
{
	return (int)r->origin * 2 + (r->action == GUARD_DENY);
}

/* What the table must answer: the longest holding prefix, the highest
 * priority among equal ones. */
static int scan(const struct guard_rule *r, size_t n, const struct util_addr *a,
		enum guard_action *act)
{
	int best = -1, bp = -1;

	for (size_t i = 0; i < n; i++) {
		if (!util_cidr_contains(&r[i].cidr, a))
			continue;
		if ((int)r[i].cidr.plen > best ||
		    ((int)r[i].cidr.plen == best && prio(&r[i]) > bp)) {
			best = r[i].cidr.plen;
			bp = prio(&r[i]);
			*act = r[i].action;
		}
	}
	return best;
}

static void test_random_against_linear_scan(void **state)
{
	enum { N = 3000, Q = 20000 };
	struct guard_rule *r = calloc(N, sizeof(*r));
	struct guard_lpm *t;
	int matched = 0;

	(void)state;
	assert_non_null(r);
	for (size_t i = 0; i < N; i++)
		random_rule(&r[i], i % 3 == 0);
	t = build(r, N);
	for (int q = 0; q < Q; q++) {
		struct util_addr a = {0};
		struct guard_rule probe;
		enum guard_action want = GUARD_ALLOW, got = GUARD_ALLOW;
		int wl, gl;

		/* near an existing prefix, or anywhere */
		if (q % 2 == 0) {
			probe = r[util_rand64(&rng) % N];
			uint64_t noise = util_rand64(&rng);

			for (unsigned b = probe.cidr.plen; b < 128; b++)
				if ((noise >> (b % 64)) & 1)
					probe.cidr.addr[b / 8] |= (uint8_t)(0x80 >> (b % 8));
		} else {
			random_rule(&probe, q % 4 == 1);
		}
		if (probe.cidr.family == AF_INET) {
			a.u.in4.sin_family = AF_INET;
			memcpy(&a.u.in4.sin_addr, probe.cidr.addr, 4);
			a.len = sizeof(a.u.in4);
		} else {
			a.u.in6.sin6_family = AF_INET6;
			memcpy(&a.u.in6.sin6_addr, probe.cidr.addr, 16);
			a.len = sizeof(a.u.in6);
		}
		wl = scan(r, N, &a, &want);
		gl = guard_lpm_lookup(t, &a, 0, &got);
		assert_int_equal(gl, wl);
		if (wl >= 0)
			assert_int_equal(got, want);
		matched += wl >= 0;
	}
	/* the probes do hit prefixes: the comparison is not all "none" */
	assert_true(matched > Q / 3);
	guard_lpm_put(t);
	free(r);
}

/* ---- ACL files ---- */

static long parse(const char *text, struct guard_lpm **out, char *err, size_t errlen)
{
	struct guard_lpm_builder *b = guard_lpm_builder_new();
	long n;

	assert_non_null(b);
	n = guard_file_parse(b, "deny.list", text, strlen(text), GUARD_DENY, NULL, err, errlen);
	if (n < 0) {
		guard_lpm_builder_free(b);
		return n;
	}
	*out = guard_lpm_build(b);
	assert_non_null(*out);
	return n;
}

static void test_file_parse(void **state)
{
	struct guard_lpm *t;
	char err[300];

	(void)state;
	assert_int_equal(parse("# blocked networks\n"
			       "192.0.2.0/24\n"
			       "\n"
			       "   198.51.100.7   # one host\r\n"
			       "\t2001:db8::/32\t\n"
			       "# the end, no newline: 203.0.113.0/24\n"
			       "203.0.113.0/25",
			       &t, err, sizeof(err)),
			 4);
	assert_string_equal(look(t, "192.0.2.1", 0), "deny/24");
	assert_string_equal(look(t, "198.51.100.7", 0), "deny/32");
	assert_string_equal(look(t, "2001:db8:5::1", 0), "deny/32");
	assert_string_equal(look(t, "203.0.113.1", 0), "deny/25");
	assert_string_equal(look(t, "203.0.113.200", 0), "none");
	guard_lpm_put(t);
	assert_int_equal(parse("", &t, err, sizeof(err)), 0);
	guard_lpm_put(t);
}

static void test_file_errors(void **state)
{
	struct guard_lpm *t = NULL;
	char err[300];

	(void)state;
	assert_int_equal(parse("192.0.2.0/24\n# fine\n    192.0.2.300\n", &t, err, sizeof(err)),
			 -1);
	assert_string_equal(err,
			    "deny.list:3:5: error: bad address '192.0.2.300' (expected an IPv4 "
			    "or IPv6 address with an optional /prefix) (near '192.0.2.300')");
	assert_int_equal(parse("10.0.0.0/8 10.1.0.0/16\n", &t, err, sizeof(err)), -1);
	assert_string_equal(err, "deny.list:1:12: error: expected one address or prefix per line "
				 "(near '10.1.0.0/16')");
	assert_int_equal(parse("\n\n10.0.0.1/8\n", &t, err, sizeof(err)), -1);
	assert_string_equal(err, "deny.list:3:1: error: host bits set in '10.0.0.1/8' (expected "
				 "10.0.0.0/8) (near '10.0.0.1/8')");
	assert_int_equal(parse("10.0.0.0;\n", &t, err, sizeof(err)), -1);
	assert_string_equal(err,
			    "deny.list:1:1: error: bad address '10.0.0.0;' (expected an IPv4 or "
			    "IPv6 address with an optional /prefix) (near '10.0.0.0;')");
	assert_null(t);
}

/* A loader gives way: the pause is called all along a large parse and
 * build (IPv4 and IPv6), never in long stretches without it. */
static int pauses;

static void count_pause(void *arg)
{
	(void)arg;
	pauses++;
}

static void test_pause_points(void **state)
{
	enum { N = 200000 };
	char *text = malloc((size_t)N * 32);
	struct guard_lpm_builder *b = guard_lpm_builder_new();
	struct guard_lpm *t;
	size_t off = 0;
	char err[200];
	int after_parse;

	(void)state;
	assert_non_null(text);
	for (int i = 0; i < N; i++)
		off += (size_t)snprintf(text + off, 32,
					i % 2 ? "10.%d.%d.0/24\n" : "2001:db8:%x:%x::/64\n",
					(i >> 8) & 255, i & 255);
	guard_lpm_builder_set_pause(b, count_pause, NULL);
	pauses = 0;
	assert_int_equal(guard_file_parse(b, "p", text, off, GUARD_DENY, NULL, err, sizeof(err)),
			 N);
	after_parse = pauses;
	assert_true(after_parse >= N / GUARD_PAUSE_WORK);
	t = guard_lpm_build(b);
	assert_non_null(t);
	/* sorting, deduplication and the trie: more pauses, in proportion */
	assert_true(pauses - after_parse >= N / GUARD_PAUSE_WORK);
	guard_lpm_put(t);
	free(text);
}

/* A large table's last reference hands it to the reaper; a small one is
 * freed in place. */
static int reaped;

static void test_reap(void (*fn)(void *), void *obj)
{
	reaped++;
	fn(obj);
}

static void test_reaper_for_large_tables(void **state)
{
	struct guard_lpm_builder *b = guard_lpm_builder_new();
	struct guard_rule r = {.action = GUARD_DENY, .origin = GUARD_ORIGIN_FILE};
	struct guard_lpm *big, *small;

	(void)state;
	r.cidr.family = AF_INET;
	r.cidr.plen = 32;
	for (uint32_t i = 0; i < 300000; i++) {
		r.cidr.addr[0] = 10;
		r.cidr.addr[1] = (uint8_t)(i >> 16);
		r.cidr.addr[2] = (uint8_t)(i >> 8);
		r.cidr.addr[3] = (uint8_t)i;
		assert_int_equal(guard_lpm_builder_add(b, &r), 0);
	}
	big = guard_lpm_build(b);
	assert_non_null(big);
	assert_true(guard_lpm_memory(big) >= GUARD_REAP_BYTES);
	small = build(&r, 1);
	guard_set_reaper(test_reap);
	reaped = 0;
	guard_lpm_get(big);
	guard_lpm_put(big); /* not the last */
	guard_lpm_put(small);
	assert_int_equal(reaped, 0);
	guard_lpm_put(big);
	assert_int_equal(reaped, 1);
	guard_set_reaper(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_longest_prefix_whatever_the_order),
	    cmocka_unit_test(test_equal_prefix_priority),
	    cmocka_unit_test(test_expiry_hands_over),
	    cmocka_unit_test(test_default_routes_and_hosts),
	    cmocka_unit_test(test_empty_table),
	    cmocka_unit_test(test_random_against_linear_scan),
	    cmocka_unit_test(test_file_parse),
	    cmocka_unit_test(test_file_errors),
	    cmocka_unit_test(test_pause_points),
	    cmocka_unit_test(test_reaper_for_large_tables),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
