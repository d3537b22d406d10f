/* Unit tests for the global `log` keyword: several targets each with its
 * own level, the syslog and udp options and their defaults, and the exact
 * diagnostics for each mistake. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "sluice/conf.h"
#include "sluice/log.h"
#include "sluice/util.h"

static struct conf *parse_global(const char *body, struct conf_errors *errs)
{
	char text[2048];

	snprintf(text, sizeof(text), "global {\n%s\n}\n", body);
	return conf_parse("t.conf", text, strlen(text), errs);
}

static void test_default_is_stderr_info(void **state)
{
	struct conf_errors errs = {0};
	struct conf *c = parse_global("    workers 1;", &errs);

	(void)state;
	assert_non_null(c);
	assert_int_equal(c->global.nlogs, 1);
	assert_int_equal(c->global.logs[0].kind, LOG_TARGET_STDERR);
	assert_int_equal(c->global.logs[0].level, LOGL_INFO);
	conf_free(c);
}

static void test_several_targets(void **state)
{
	struct conf_errors errs = {0};
	struct conf *c =
	    parse_global("    log stderr notice;\n"
			 "    log syslog info;\n"
			 "    log syslog socket /run/x.sock facility local3 tag lb-1 debug;\n"
			 "    log udp 192.0.2.7:514 warning;\n"
			 "    log udp [2001:db8::1]:6514 facility local7 tag edge;\n"
			 "    log stdout error;",
			 &errs);
	const struct log_target_conf *l;
	char buf[UTIL_ADDR_STRLEN];

	(void)state;
	for (size_t i = 0; i < errs.n; i++)
		print_message("%s\n", errs.msgs[i]);
	assert_non_null(c);
	assert_int_equal(c->global.nlogs, 6);
	l = c->global.logs;
	assert_int_equal(l[0].kind, LOG_TARGET_STDERR);
	assert_int_equal(l[0].level, LOGL_NOTICE);
	assert_int_equal(l[1].kind, LOG_TARGET_SYSLOG);
	assert_string_equal(l[1].path, "/dev/log");
	assert_int_equal(l[1].facility, 3); /* daemon */
	assert_string_equal(l[1].tag, "sluice");
	assert_int_equal(l[1].level, LOGL_INFO);
	assert_string_equal(l[2].path, "/run/x.sock");
	assert_int_equal(l[2].facility, 19); /* local3: RFC 5424 table 1 */
	assert_string_equal(l[2].tag, "lb-1");
	assert_int_equal(l[2].level, LOGL_DEBUG);
	assert_int_equal(l[3].kind, LOG_TARGET_UDP);
	assert_string_equal(util_addr_fmt(&l[3].addr, buf, sizeof(buf)), "192.0.2.7:514");
	assert_int_equal(l[3].level, LOGL_WARNING);
	assert_int_equal(l[4].facility, 23);
	assert_string_equal(l[4].tag, "edge");
	assert_int_equal(l[4].level, LOGL_INFO); /* no level written */
	assert_int_equal(l[5].kind, LOG_TARGET_STDOUT);
	assert_int_equal(l[5].level, LOGL_ERR);
	conf_free(c);
}

static void expect_error(const char *body, const char *want)
{
	struct conf_errors errs = {0};
	struct conf *c = parse_global(body, &errs);

	assert_null(c);
	assert_true(errs.n >= 1);
	if (strcmp(errs.msgs[0], want) != 0)
		print_error("got:  %s\nwant: %s\n", errs.msgs[0], want);
	assert_string_equal(errs.msgs[0], want);
	conf_errors_clear(&errs);
}

static void test_errors(void **state)
{
	(void)state;
	expect_error("    log file info;",
		     "t.conf:2:9: error: unknown log target 'file' (expected stderr, stdout, "
		     "syslog or udp) (near 'file')");
	expect_error("    log syslog loud;",
		     "t.conf:2:16: error: unknown log level 'loud' (expected error, warning, "
		     "notice, info or debug) (near 'loud')");
	expect_error("    log syslog facility daemons info;",
		     "t.conf:2:25: error: unknown syslog facility 'daemons' (expected kern, user, "
		     "mail, daemon, auth, syslog, lpr, news, uucp, cron, authpriv, ftp or "
		     "local0-local7) (near 'daemons')");
	expect_error("    log syslog socket dev/log info;",
		     "t.conf:2:23: error: syslog socket must be an absolute path shorter than 108 "
		     "bytes (near 'dev/log')");
	expect_error("    log udp 192.0.2.1:514 socket /x info;",
		     "t.conf:2:27: error: unknown log option 'socket' (expected facility F, tag T "
		     "or a level as the last word) (near 'socket')");
	expect_error("    log syslog tag \"a b\" info;",
		     "t.conf:2:20: error: bad log tag 'a b' (expected 1-32 letters, digits, '-', "
		     "'_', '.') (near 'a b')");
	expect_error("    log stderr info debug;",
		     "t.conf:2:16: error: too many arguments: log stderr [LEVEL]; (near 'info')");
	expect_error("    log udp 192.0.2.1 info;",
		     "t.conf:2:13: error: expected ADDRESS:PORT (near '192.0.2.1')");
	expect_error("    log udp;",
		     "t.conf:2:9: error: missing argument: log udp ADDRESS:PORT ... "
		     "(near 'udp')");
	expect_error("    log stderr info;\n    log stderr debug;",
		     "t.conf:3:9: error: duplicate log target 'stderr' (first at line 2) (near "
		     "'stderr')");
	expect_error("    log udp 192.0.2.1:514;\n    log udp 192.0.2.1:514 facility local0;",
		     "t.conf:3:9: error: duplicate log target 'udp 192.0.2.1:514' (first at line "
		     "2) (near 'udp')");
}

static void test_too_many(void **state)
{
	char body[1024];
	size_t off = 0;

	(void)state;
	for (int i = 0; i < 9; i++)
		util_bufprintf(body, sizeof(body), &off, "    log udp 192.0.2.%d:514;\n", i + 1);
	expect_error(body, "t.conf:10:5: error: too many log targets (at most 8) (near 'log')");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_default_is_stderr_info),
	    cmocka_unit_test(test_several_targets),
	    cmocka_unit_test(test_errors),
	    cmocka_unit_test(test_too_many),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
