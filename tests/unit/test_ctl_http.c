/* Unit tests for ctl_http: the metrics door's request parser. Each case
 * is checked whole and at every prefix: a valid request is never refused
 * early, garbage is refused as soon as it cannot be HTTP any more. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "../../src/ctl/ctl-int.h"

#define MAX 4096

static enum ctl_http_status parse(const char *s, size_t len, struct ctl_http_req *req)
{
	return ctl_http_parse(s, len, MAX, req);
}

/* The whole request gives want; every shorter prefix asks for more. */
static void complete_is(const char *s, enum ctl_http_status want)
{
	struct ctl_http_req req;
	size_t len = strlen(s);

	for (size_t i = 0; i < len; i++)
		assert_int_equal(parse(s, i, &req), CTL_HTTP_MORE);
	assert_int_equal(parse(s, len, &req), want);
}

static void test_good_requests(void **state)
{
	struct ctl_http_req req;

	(void)state;
	complete_is("GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n", CTL_HTTP_OK);
	complete_is("GET /metrics?name[]=x HTTP/1.0\r\n\r\n", CTL_HTTP_OK);
	complete_is("GET /metrics HTTP/1.1\n\n", CTL_HTTP_OK); /* bare LF: RFC 9112 2.2 */
	complete_is("HEAD /metrics HTTP/1.1\r\nUser-Agent: a\tb\r\n\r\n", CTL_HTTP_OK);
	assert_int_equal(parse("HEAD /metrics HTTP/1.1\r\n\r\n", 26, &req), CTL_HTTP_OK);
	assert_true(req.head);
	assert_int_equal(parse("GET /metrics HTTP/1.1\r\n\r\n", 25, &req), CTL_HTTP_OK);
	assert_false(req.head);
}

static void test_method_and_path(void **state)
{
	(void)state;
	complete_is("POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n", CTL_HTTP_METHOD);
	complete_is("get /metrics HTTP/1.1\r\n\r\n", CTL_HTTP_METHOD); /* case-sensitive */
	complete_is("GET / HTTP/1.1\r\n\r\n", CTL_HTTP_NOT_FOUND);
	complete_is("GET /metricsx HTTP/1.1\r\n\r\n", CTL_HTTP_NOT_FOUND);
	complete_is("GET http://h/metrics HTTP/1.1\r\n\r\n", CTL_HTTP_NOT_FOUND);
	/* an unknown method on an unknown path: the method is named first */
	complete_is("PUT /x HTTP/1.1\r\n\r\n", CTL_HTTP_METHOD);
}

/* Garbage is refused at the first byte that cannot be a request. */
static void test_garbage_early(void **state)
{
	struct ctl_http_req req;

	(void)state;
	assert_int_equal(parse("\0GET /metrics HTTP/1.1\r\n\r\n", 1, &req), CTL_HTTP_BAD);
	assert_int_equal(parse("GET /me\0", 8, &req), CTL_HTTP_BAD);
	assert_int_equal(parse(" GET", 4, &req), CTL_HTTP_BAD);
	assert_int_equal(parse("\x16\x03\x01", 3, &req), CTL_HTTP_BAD); /* TLS */
	assert_int_equal(parse("GET  /", 6, &req), CTL_HTTP_BAD);
	assert_int_equal(parse("GET /metrics FTP/", 17, &req), CTL_HTTP_BAD);
	assert_int_equal(parse("GET /metrics HTTP/2", 19, &req), CTL_HTTP_BAD);
	assert_int_equal(parse("GET /metrics HTTP/1.1x", 22, &req), CTL_HTTP_BAD);
	assert_int_equal(parse("GET /metrics HTTP/1.1\r\r\n", 24, &req), CTL_HTTP_BAD);
	assert_int_equal(parse("GET /metrics\r\n", 14, &req), CTL_HTTP_BAD); /* HTTP/0.9 */
	assert_int_equal(parse("GET /metrics HTTP/1.1\r\nHost x\r\n\r\n", 33, &req), CTL_HTTP_BAD);
	assert_int_equal(parse("GET /metrics HTTP/1.1\r\nHost : x\r\n\r\n", 35, &req),
			 CTL_HTTP_BAD);
	assert_int_equal(parse("GET /metrics HTTP/1.1\r\nA: b\r\n c\r\n\r\n", 35, &req),
			 CTL_HTTP_BAD); /* obs-fold */
	assert_int_equal(parse("GET /metrics HTTP/1.1\r\nA: \x01\r\n\r\n", 30, &req), CTL_HTTP_BAD);
}

/* Headers that do not end within max bytes are refused, not waited for. */
static void test_oversized(void **state)
{
	static char buf[MAX];
	struct ctl_http_req req;
	size_t off = 0;

	(void)state;
	memcpy(buf, "GET /metrics HTTP/1.1\r\n", 23);
	off = 23;
	while (off + 12 <= MAX) {
		memcpy(buf + off, "X-Pad: aaa\r\n", 12);
		off += 12;
	}
	memset(buf + off, 'a', MAX - off);
	assert_int_equal(parse(buf, MAX - 1, &req), CTL_HTTP_MORE);
	assert_int_equal(parse(buf, MAX, &req), CTL_HTTP_BAD);
	/* a request line alone as long as max */
	memcpy(buf, "GET /", 5);
	memset(buf + 5, 'a', MAX - 5);
	assert_int_equal(parse(buf, MAX - 1, &req), CTL_HTTP_MORE);
	assert_int_equal(parse(buf, MAX, &req), CTL_HTTP_BAD);
}

/* Accept-Encoding: gzip is honoured unless its weight is zero. */
static void test_accept_gzip(void **state)
{
	static const struct {
		const char *value;
		bool gzip;
	} cases[] = {
	    {"gzip", true},	   {"identity, gzip;q=0.5", true},
	    {"GZIP", true},	   {"x-gzip", true},
	    {"*", true},	   {"deflate, br", false},
	    {"gzip;q=0", false},   {"gzip; q=0.000", false},
	    {"gzip;q=0.01", true}, {"gzipx", false},
	    {"", false},
	};
	char buf[256];
	struct ctl_http_req req;
	int n;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		n = snprintf(buf, sizeof(buf),
			     "GET /metrics HTTP/1.1\r\nAccept-Encoding: %s\r\n\r\n",
			     cases[i].value);

		assert_int_equal(parse(buf, (size_t)n, &req), CTL_HTTP_OK);
		if (req.gzip != cases[i].gzip)
			fail_msg("Accept-Encoding: %s -> gzip %d", cases[i].value, req.gzip);
	}
	n = snprintf(buf, sizeof(buf), "GET /metrics HTTP/1.1\r\nX-Accept-Encoding: gzip\r\n\r\n");
	assert_int_equal(parse(buf, (size_t)n, &req), CTL_HTTP_OK);
	assert_false(req.gzip);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_good_requests), cmocka_unit_test(test_method_and_path),
	    cmocka_unit_test(test_garbage_early), cmocka_unit_test(test_oversized),
	    cmocka_unit_test(test_accept_gzip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
