/* Unit tests for the PROXY protocol codec: build/parse round trips for v1
 * and v2, the exact bytes of known headers, and rejection of malformed or
 * oversized input at every truncation. */
#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "sluice/proxyproto.h"
#include "sluice/util.h"

static struct util_addr addr(const char *s)
{
	struct util_addr a;
	char err[64];

	assert_int_equal(util_addr_parse(s, true, &a, err, sizeof(err)), 0);
	return a;
}

static void test_v1_build_exact(void **state)
{
	struct util_addr s = addr("192.0.2.1:5555"), d = addr("127.0.0.1:8080");
	uint8_t out[PROXYPROTO_MAX_BUILD];
	size_t n = proxyproto_build(1, &s, &d, out);

	(void)state;
	assert_int_equal(n, strlen("PROXY TCP4 192.0.2.1 127.0.0.1 5555 8080\r\n"));
	assert_memory_equal(out, "PROXY TCP4 192.0.2.1 127.0.0.1 5555 8080\r\n", n);
	s = addr("[2001:db8::1]:1");
	d = addr("[::1]:2");
	n = proxyproto_build(1, &s, &d, out);
	assert_memory_equal(out, "PROXY TCP6 2001:db8::1 ::1 1 2\r\n", n);
	/* mixed families: UNKNOWN */
	d = addr("127.0.0.1:2");
	n = proxyproto_build(1, &s, &d, out);
	assert_memory_equal(out, "PROXY UNKNOWN\r\n", n);
}

static void test_v2_build_exact(void **state)
{
	static const uint8_t want[] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49,
				       0x54, 0x0a, 0x21, 0x11, 0x00, 0x0c, 192,	 0,    2,    1,
				       127,  0,	   0,	 1,    0x15, 0xb3, 0x1f, 0x90};
	struct util_addr s = addr("192.0.2.1:5555"), d = addr("127.0.0.1:8080");
	uint8_t out[PROXYPROTO_MAX_BUILD];

	(void)state;
	assert_int_equal(proxyproto_build(2, &s, &d, out), sizeof(want));
	assert_memory_equal(out, want, sizeof(want));
}

static void roundtrip(int version, const char *src, const char *dst)
{
	struct util_addr s = addr(src), d = addr(dst), ps, pd;
	uint8_t out[PROXYPROTO_MAX_BUILD + 4];
	size_t n = proxyproto_build(version, &s, &d, out), used = 0;

	memcpy(out + n, "DATA", 4);
	assert_int_equal(proxyproto_parse(out, n + 4, 4096, &ps, &pd, &used), PROXYPROTO_OK);
	assert_int_equal(used, n);
	assert_true(util_addr_equal(&s, &ps));
	assert_true(util_addr_equal(&d, &pd));
	/* every strict prefix is incomplete, never OK or a crash */
	for (size_t k = 0; k < n; k++)
		assert_int_equal(proxyproto_parse(out, k, 4096, &ps, &pd, &used),
				 PROXYPROTO_INCOMPLETE);
}

static void test_roundtrips(void **state)
{
	(void)state;
	roundtrip(1, "192.0.2.1:5555", "127.0.0.1:8080");
	roundtrip(1, "[2001:db8::1]:65535", "[::1]:1");
	roundtrip(2, "192.0.2.1:5555", "127.0.0.1:8080");
	roundtrip(2, "[2001:db8::1]:65535", "[::1]:1");
}

static void expect_invalid(const char *hdr)
{
	struct util_addr s, d;
	size_t used;

	assert_int_equal(proxyproto_parse((const uint8_t *)hdr, strlen(hdr), 4096, &s, &d, &used),
			 PROXYPROTO_INVALID);
}

static void test_v1_invalid(void **state)
{
	(void)state;
	expect_invalid("GET / HTTP/1.1\r\n");
	expect_invalid("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n");
	expect_invalid("PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n");
	expect_invalid("PROXY TCP4 1.2.3.4 ::1 1 2\r\n");
	expect_invalid("PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n");
	expect_invalid("PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n");
	expect_invalid("PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n");
	expect_invalid("PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n");
	expect_invalid("PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n");
	expect_invalid("PROXY TCP4 1.2.3.4\x01 5.6.7.8 1 2\r\n");
	/* 107 bytes without CRLF is too long to be a header */
	expect_invalid("PROXY TCP4 111111111111111111111111111111111111111111111111111111111111111"
		       "11111111111111111111111111111111111111111111");
}

static void test_v1_unknown(void **state)
{
	static const char h[] = "PROXY UNKNOWN ffff::1 ffff::2 1 2\r\nX";
	struct util_addr s, d;
	size_t used;

	(void)state;
	assert_int_equal(proxyproto_parse((const uint8_t *)h, strlen(h), 4096, &s, &d, &used),
			 PROXYPROTO_OK);
	assert_int_equal(used, strlen(h) - 1);
	assert_int_equal(s.len, 0);
}

static void test_v2_invalid_and_local(void **state)
{
	uint8_t h[64] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};
	struct util_addr s, d;
	size_t used;

	(void)state;
	h[12] = 0x20; /* LOCAL */
	h[13] = 0x00;
	h[14] = 0;
	h[15] = 0;
	assert_int_equal(proxyproto_parse(h, 16, 4096, &s, &d, &used), PROXYPROTO_OK);
	assert_int_equal(used, 16);
	assert_int_equal(s.len, 0);
	h[12] = 0x31; /* version 3 */
	assert_int_equal(proxyproto_parse(h, 16, 4096, &s, &d, &used), PROXYPROTO_INVALID);
	h[12] = 0x21;
	h[13] = 0x11;
	h[15] = 4; /* too short for TCP4 addresses */
	assert_int_equal(proxyproto_parse(h, 20, 4096, &s, &d, &used), PROXYPROTO_INVALID);
	h[13] = 0x12; /* UDP over IPv4 */
	h[15] = 12;
	assert_int_equal(proxyproto_parse(h, 28, 4096, &s, &d, &used), PROXYPROTO_INVALID);
	h[13] = 0x11;
	h[14] = 0xff; /* longer than allowed */
	assert_int_equal(proxyproto_parse(h, 28, 1024, &s, &d, &used), PROXYPROTO_INVALID);
	/* TLVs after the addresses are skipped */
	h[14] = 0;
	h[15] = 12 + 4;
	memset(h + 16, 0, 16);
	h[16] = 10;
	h[28] = 0x04; /* PP2_TYPE_NOOP, length 1 */
	h[30] = 1;
	assert_int_equal(proxyproto_parse(h, 32, 4096, &s, &d, &used), PROXYPROTO_OK);
	assert_int_equal(used, 32);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_v1_build_exact), cmocka_unit_test(test_v2_build_exact),
	    cmocka_unit_test(test_roundtrips),	   cmocka_unit_test(test_v1_invalid),
	    cmocka_unit_test(test_v1_unknown),	   cmocka_unit_test(test_v2_invalid_and_local),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
