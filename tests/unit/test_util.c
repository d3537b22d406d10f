/* Unit tests for util: addresses, durations, sizes, strings. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "sluice/util.h"

static void test_addr_parse_v4(void **state)
{
	struct util_addr a;
	char err[128], buf[UTIL_ADDR_STRLEN];

	(void)state;
	assert_int_equal(util_addr_parse("127.0.0.1:8080", false, &a, err, sizeof(err)), 0);
	assert_string_equal(util_addr_fmt(&a, buf, sizeof(buf)), "127.0.0.1:8080");
	assert_int_equal(util_addr_port(&a), 8080);
	assert_int_equal(util_addr_parse("*:80", false, &a, err, sizeof(err)), 0);
	assert_string_equal(util_addr_fmt(&a, buf, sizeof(buf)), "0.0.0.0:80");
}

static void test_addr_parse_v6(void **state)
{
	struct util_addr a, b;
	char err[128], buf[UTIL_ADDR_STRLEN];

	(void)state;
	assert_int_equal(util_addr_parse("[::1]:9003", false, &a, err, sizeof(err)), 0);
	assert_string_equal(util_addr_fmt(&a, buf, sizeof(buf)), "[::1]:9003");
	assert_int_equal(util_addr_parse("[0:0::1]:9003", false, &b, err, sizeof(err)), 0);
	assert_true(util_addr_equal(&a, &b));
	util_addr_set_port(&b, 1);
	assert_false(util_addr_equal(&a, &b));
}

static void test_addr_parse_errors(void **state)
{
	static const char *const bad[] = {
	    "127.0.0.1",      "127.0.0.1:0", "127.0.0.1:65536", "::1:80", "[::1]80",
	    "[127.0.0.1]:80", "host:80",     "1.2.3.4:8x",	"[::1]:", ":80",
	    "300.1.1.1:80"};
	struct util_addr a;
	char err[128];

	(void)state;
	for (size_t i = 0; i < UTIL_ARRAY_LEN(bad); i++) {
		err[0] = '\0';
		assert_int_equal(util_addr_parse(bad[i], false, &a, err, sizeof(err)), -1);
		assert_true(strlen(err) > 0);
	}
	assert_int_equal(util_addr_parse("127.0.0.1:0", true, &a, err, sizeof(err)), 0);
}

static void test_addr_parse_name(void **state)
{
	static const char *const good[] = {"localhost:80", "db-1.example.org:5432",
					   "db.example.org.:1", "x1:65535", "1host:80"};
	/* not names and no message: numeric-looking, no port, IPv6 form */
	static const char *const quiet[] = {"127.0.0.300:80", "1.2.3:80", "[::1]:80", "localhost",
					    "::1:80"};
	/* names that look meant but are malformed, or a bad port */
	static const char *const loud[] = {"my_host:80",    "-a.example:80", "a-.example:80",
					   "a..example:80", "a.example:0",   "a.example:x",
					   ".example:80"};
	char host[UTIL_HOST_MAX], err[400], long_label[80];
	uint16_t port;

	(void)state;
	for (size_t i = 0; i < UTIL_ARRAY_LEN(good); i++)
		assert_int_equal(
		    util_addr_parse_name(good[i], host, sizeof(host), &port, err, sizeof(err)), 0);
	assert_int_equal(util_addr_parse_name("db-1.example.org:5432", host, sizeof(host), &port,
					      err, sizeof(err)),
			 0);
	assert_string_equal(host, "db-1.example.org");
	assert_int_equal(port, 5432);
	for (size_t i = 0; i < UTIL_ARRAY_LEN(quiet); i++) {
		assert_int_equal(
		    util_addr_parse_name(quiet[i], host, sizeof(host), &port, err, sizeof(err)),
		    -1);
		assert_string_equal(err, "");
	}
	for (size_t i = 0; i < UTIL_ARRAY_LEN(loud); i++) {
		err[0] = '\0';
		assert_int_equal(
		    util_addr_parse_name(loud[i], host, sizeof(host), &port, err, sizeof(err)), -1);
		assert_true(strlen(err) > 0);
	}
	/* a label is at most 63 characters */
	memset(long_label, 'a', 64);
	strcpy(long_label + 64, ".example:80");
	assert_int_equal(
	    util_addr_parse_name(long_label, host, sizeof(host), &port, err, sizeof(err)), -1);
	strcpy(long_label + 63, ".example:80");
	assert_int_equal(
	    util_addr_parse_name(long_label, host, sizeof(host), &port, err, sizeof(err)), 0);
}

static void test_durations(void **state)
{
	uint64_t ms;

	(void)state;
	assert_int_equal(util_parse_duration_ms("250ms", UINT64_MAX, &ms), 0);
	assert_int_equal(ms, 250);
	assert_int_equal(util_parse_duration_ms("2s", UINT64_MAX, &ms), 0);
	assert_int_equal(ms, 2000);
	assert_int_equal(util_parse_duration_ms("5m", UINT64_MAX, &ms), 0);
	assert_int_equal(ms, 300000);
	assert_int_equal(util_parse_duration_ms("1h", UINT64_MAX, &ms), 0);
	assert_int_equal(ms, 3600000);
	assert_int_equal(util_parse_duration_ms("5", UINT64_MAX, &ms), -1);
	assert_int_equal(util_parse_duration_ms("5x", UINT64_MAX, &ms), -1);
	assert_int_equal(util_parse_duration_ms("s", UINT64_MAX, &ms), -1);
	assert_int_equal(util_parse_duration_ms("2s", 1999, &ms), -1);
	assert_int_equal(util_parse_duration_ms("99999999999999999999h", UINT64_MAX, &ms), -1);
}

static void test_sizes(void **state)
{
	uint64_t v;

	(void)state;
	assert_int_equal(util_parse_size("16k", UINT64_MAX, &v), 0);
	assert_int_equal(v, 16384);
	assert_int_equal(util_parse_size("2m", UINT64_MAX, &v), 0);
	assert_int_equal(v, 2 * 1024 * 1024);
	assert_int_equal(util_parse_size("100", UINT64_MAX, &v), 0);
	assert_int_equal(v, 100);
	assert_int_equal(util_parse_size("1g", UINT64_MAX, &v), -1);
	assert_int_equal(util_parse_size("2k", 2047, &v), -1);
}

static void test_errno_local(void **state)
{
	(void)state;
	assert_true(util_errno_local(EMFILE));
	assert_true(util_errno_local(ENFILE));
	assert_true(util_errno_local(ENOMEM));
	assert_true(util_errno_local(ENOBUFS));
	assert_true(util_errno_local(EADDRNOTAVAIL));
	/* the server's answers */
	assert_false(util_errno_local(ECONNREFUSED));
	assert_false(util_errno_local(ETIMEDOUT));
	assert_false(util_errno_local(EHOSTUNREACH));
	assert_false(util_errno_local(ENETUNREACH));
	assert_false(util_errno_local(ECONNRESET));
	assert_false(util_errno_local(0));
}

static void test_strings(void **state)
{
	char buf[8];
	size_t off = 0;
	long l;

	(void)state;
	assert_int_equal(util_strlcpy(buf, "abcdefghij", sizeof(buf)), 10);
	assert_string_equal(buf, "abcdefg");
	assert_int_equal(util_bufprintf(buf, sizeof(buf), &off, "%s", "abc"), 0);
	assert_int_equal(util_bufprintf(buf, sizeof(buf), &off, "%s", "defghi"), -1);
	assert_string_equal(buf, "abcdefg");
	assert_int_equal(util_bufprintf(buf, sizeof(buf), &off, "x"), -1);
	assert_int_equal(util_parse_long("42", 0, 100, &l), 0);
	assert_int_equal(l, 42);
	assert_int_equal(util_parse_long("101", 0, 100, &l), -1);
	assert_int_equal(util_parse_long("4 2", 0, 100, &l), -1);
	assert_int_equal(util_parse_long("", 0, 100, &l), -1);
}

/* Server names as TLS routes see them (util_dns_name_valid). */
static void test_dns_names(void **state)
{
#define V(s) util_dns_name_valid(s, sizeof(s) - 1)
	char long_label[70], long_name[260];

	(void)state;
	assert_true(V("example.com"));
	assert_true(V("a"));
	assert_true(V("xn--bcher-kva.example"));
	assert_true(V("my_host.example-1.com"));
	assert_true(V("1a.2b.3c"));
	assert_false(V(""));
	assert_false(V("example.com."));
	assert_false(V(".example.com"));
	assert_false(V("a..b"));
	assert_false(V("192.0.2.1"));
	assert_false(V("b\xc3\xbc"
		       "cher.example"));
	assert_false(V("a b.example"));
	assert_false(V("a\0b"));
	assert_false(V("*.example.com"));
	memset(long_label, 'a', sizeof(long_label));
	assert_true(util_dns_name_valid(long_label, 63));
	assert_false(util_dns_name_valid(long_label, 64));
	memset(long_name, 'a', sizeof(long_name));
	for (size_t i = 60; i < sizeof(long_name); i += 61)
		long_name[i] = '.';
	assert_true(util_dns_name_valid(long_name, 253));
	assert_false(util_dns_name_valid(long_name, 254));
#undef V
}

static void test_dns_name_match(void **state)
{
#define M(p, n) util_dns_name_match(p, strlen(p), n, strlen(n))
	(void)state;
	assert_true(M("api.example.com", "api.example.com"));
	assert_false(M("api.example.com", "api.example.co"));
	assert_false(M("api.example.com", "xapi.example.com"));
	assert_true(M("*.example.com", "a.example.com"));
	assert_true(M("*.example.com", "xn--bcher-kva.example.com"));
	assert_true(M("*.example.com", "*.example.com"));
	assert_false(M("*.example.com", "example.com"));
	assert_false(M("*.example.com", ".example.com"));
	assert_false(M("*.example.com", "a.b.example.com"));
	assert_false(M("*.example.com", "aexample.com"));
	assert_false(M("*.example.com", "a.example.net"));
#undef M
}

static void test_primes(void **state)
{
	const uint32_t primes[] = {2, 3, 5, 1021, 2039, 65521, 65537, 5000011, 4294967291u};
	const uint32_t others[] = {0, 1, 4, 9, 1023, 65535, 65536, 5000001, 4294967295u};

	(void)state;
	for (size_t i = 0; i < UTIL_ARRAY_LEN(primes); i++)
		assert_true(util_is_prime(primes[i]));
	for (size_t i = 0; i < UTIL_ARRAY_LEN(others); i++)
		assert_false(util_is_prime(others[i]));
	assert_int_equal(util_prime_at_least(0), 2);
	assert_int_equal(util_prime_at_least(65522), 65537);
	assert_int_equal(util_prime_at_least(65537), 65537);
	assert_int_equal(util_prime_at_least(1200), 1201);
	assert_int_equal(util_prime_at_least(4294967292u), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_addr_parse_v4),     cmocka_unit_test(test_addr_parse_v6),
	    cmocka_unit_test(test_addr_parse_errors), cmocka_unit_test(test_addr_parse_name),
	    cmocka_unit_test(test_durations),	      cmocka_unit_test(test_sizes),
	    cmocka_unit_test(test_strings),	      cmocka_unit_test(test_dns_names),
	    cmocka_unit_test(test_dns_name_match),    cmocka_unit_test(test_primes),
	    cmocka_unit_test(test_errno_local),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
