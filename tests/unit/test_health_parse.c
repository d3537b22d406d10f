/* Unit tests for the health check parsers: HTTP status lines (complete,
 * partial, malformed), status ranges, expect matching with binary bytes,
 * agent replies (HAProxy's words) and the log escaping of replies. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "sluice/health.h"

static int status_of(const char *s)
{
	int code = -1;
	int rc = health_http_status(s, strlen(s), &code);

	return rc == 1 ? code : rc == 0 ? 0 : -1;
}

static void test_http_status_ok(void **state)
{
	(void)state;
	assert_int_equal(status_of("HTTP/1.1 200 OK\r\n"), 200);
	assert_int_equal(status_of("HTTP/1.0 503 Service Unavailable\r\nServer: x\r\n\r\n"), 503);
	assert_int_equal(status_of("HTTP/1.1 204\r\n"), 204);
	assert_int_equal(status_of("HTTP/1.1 301 \r\n"), 301);
	assert_int_equal(status_of("HTTP/1.1 200 OK\n"), 200);
	assert_int_equal(status_of("HTTP/1.1 404 Not\tFound\xe9\r\n"), 404);
}

static void test_http_status_partial(void **state)
{
	(void)state;
	assert_int_equal(status_of(""), 0);
	assert_int_equal(status_of("H"), 0);
	assert_int_equal(status_of("HTTP/1.1 20"), 0);
	assert_int_equal(status_of("HTTP/1.1 200 OK"), 0);
	assert_int_equal(status_of("HTTP/1.1 200 OK\r"), 0);
}

static void test_http_status_bad(void **state)
{
	char big[HEALTH_RBUF + 10];
	int code;

	(void)state;
	assert_int_equal(status_of("SSH-2.0-OpenSSH\r\n"), -1);
	assert_int_equal(status_of("X"), -1);
	assert_int_equal(status_of("HTTP/2 200\r\n"), -1);
	assert_int_equal(status_of("HTTP/1.1 2000 OK\r\n"), -1);
	assert_int_equal(status_of("HTTP/1.1 20 OK\r\n"), -1);
	assert_int_equal(status_of("HTTP/1.1 abc OK\r\n"), -1);
	assert_int_equal(status_of("HTTP/1.1  200 OK\r\n"), -1);
	assert_int_equal(status_of("HTTP/1.1 099 OK\r\n"), -1);
	assert_int_equal(status_of("HTTP/1.1 200 O\x01K\r\n"), -1);
	assert_int_equal(status_of("HTTP/1.1\r\n"), -1);
	assert_int_equal(status_of("\r\n"), -1);
	/* no line end within the buffer: give up */
	memcpy(big, "HTTP/1.1 200 ", 13);
	memset(big + 13, 'a', sizeof(big) - 13);
	assert_int_equal(health_http_status(big, sizeof(big), &code), -1);
}

static void test_status_match(void **state)
{
	struct health_status_range r[] = {{200, 399}, {404, 404}};

	(void)state;
	assert_true(health_status_match(r, 2, 200));
	assert_true(health_status_match(r, 2, 399));
	assert_true(health_status_match(r, 2, 404));
	assert_false(health_status_match(r, 2, 400));
	assert_false(health_status_match(r, 2, 503));
	assert_false(health_status_match(r, 2, 199));
	assert_false(health_status_match(r, 0, 200));
}

static void test_expect(void **state)
{
	static const char reply[] = "220 mail.example ESMTP\r\n\x00\x01tail";

	(void)state;
	assert_true(health_expect_match(reply, sizeof(reply) - 1, "220", 3));
	assert_true(health_expect_match(reply, sizeof(reply) - 1, "ESMTP\r\n", 7));
	assert_true(health_expect_match(reply, sizeof(reply) - 1, "\x00\x01t", 3));
	assert_true(health_expect_match(reply, sizeof(reply) - 1, "tail", 4));
	assert_false(health_expect_match(reply, sizeof(reply) - 1, "tails", 5));
	assert_false(health_expect_match(reply, sizeof(reply) - 1, "250", 3));
	assert_false(health_expect_match(reply, 2, "220", 3)); /* partial: not yet */
	assert_false(health_expect_match(reply, sizeof(reply) - 1, "", 0));
	assert_false(health_expect_match("", 0, "x", 1));
}

static struct health_agent_reply agent(const char *s, int want_rc)
{
	struct health_agent_reply r;

	assert_int_equal(health_agent_parse(s, strlen(s), &r), want_rc);
	return r;
}

static void test_agent(void **state)
{
	struct health_agent_reply r;

	(void)state;
	r = agent("75%\n", 0);
	assert_true(r.has_weight);
	assert_int_equal(r.weight_pct, 75);
	assert_int_equal(r.admin, HEALTH_AGENT_ADMIN_NONE);
	assert_int_equal(r.state, HEALTH_AGENT_STATE_NONE);
	r = agent("drain\r\n", 0);
	assert_int_equal(r.admin, HEALTH_AGENT_DRAIN);
	assert_false(r.has_weight);
	r = agent("READY", 0);
	assert_int_equal(r.admin, HEALTH_AGENT_READY);
	r = agent("maint\n", 0);
	assert_int_equal(r.admin, HEALTH_AGENT_MAINT);
	r = agent("up 50% ready\n", 0);
	assert_int_equal(r.state, HEALTH_AGENT_UP);
	assert_int_equal(r.weight_pct, 50);
	assert_int_equal(r.admin, HEALTH_AGENT_READY);
	r = agent("down #maintenance window \n", 0);
	assert_int_equal(r.state, HEALTH_AGENT_DOWN);
	assert_string_equal(r.reason, "maintenance window");
	r = agent("down#crashed", 0);
	assert_int_equal(r.state, HEALTH_AGENT_DOWN);
	assert_string_equal(r.reason, "crashed");
	r = agent("fail,0%", 0);
	assert_int_equal(r.state, HEALTH_AGENT_DOWN);
	assert_int_equal(r.weight_pct, 0);
	assert_true(r.has_weight);
	r = agent("stopped\n", 0);
	assert_int_equal(r.state, HEALTH_AGENT_DOWN);
	r = agent("maxconn:30 up\n", 0);
	assert_int_equal(r.state, HEALTH_AGENT_UP);
	r = agent("256%", 0);
	assert_int_equal(r.weight_pct, 256);
	/* only the first line counts */
	r = agent("ready\ndown\n", 0);
	assert_int_equal(r.state, HEALTH_AGENT_STATE_NONE);
	assert_int_equal(r.admin, HEALTH_AGENT_READY);
	agent("", -1);
	agent("\n", -1);
	agent("hello world\n", -1);
	agent("#only a reason\n", -1);
	agent("257%\n", -1);
	agent("5x%\n", -1);
	agent("%\n", -1);
	agent("1000%\n", -1);
}

static void test_escape(void **state)
{
	char out[32];

	(void)state;
	assert_string_equal(health_escape("a\r\n\"\x01", 5, out, sizeof(out)), "a\\r\\n\\\"\\x01");
	assert_string_equal(health_escape("abcdefgh", 8, out, 5), "abcd");
	assert_string_equal(health_escape("ab\x01", 3, out, 5), "ab");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_http_status_ok),  cmocka_unit_test(test_http_status_partial),
	    cmocka_unit_test(test_http_status_bad), cmocka_unit_test(test_status_match),
	    cmocka_unit_test(test_expect),	    cmocka_unit_test(test_agent),
	    cmocka_unit_test(test_escape),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
