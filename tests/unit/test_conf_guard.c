/* Unit tests for the listen block's edge policy keywords (conf_guard.c):
 * the parsed ACL lines, files (a relative path joins the file's directory),
 * default, the limits with their defaults, and the diagnostics that the
 * golden files do not show: usage errors of limit and allow/deny. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "sluice/conf.h"
#include "sluice/util.h"

static struct conf *parse(const char *file, const char *listen_body, struct conf_errors *errs)
{
	char text[2048];

	snprintf(text, sizeof(text),
		 "pool p { server a 127.0.0.1:9; }\nlisten www {\n    bind 127.0.0.1:8;\n"
		 "    pool p;\n%s}\n",
		 listen_body);
	return conf_parse(file, text, strlen(text), errs);
}

static void test_values(void **state)
{
	struct conf_errors errs = {0};
	struct conf *c = parse("/etc/sluice/s.conf",
			       "    allow 192.0.2.0/24;\n"
			       "    deny 2001:db8::/32;\n"
			       "    deny file blocked.list;\n"
			       "    allow file /srv/ok.list;\n"
			       "    default deny;\n"
			       "    limit per-source conns 100;\n"
			       "    limit per-source rate 600/m;\n"
			       "    limit per-source group v6 /48 v4 /24;\n"
			       "    limit table 5000 entries;\n",
			       &errs);
	const struct conf_guard *g;
	char buf[UTIL_CIDR_STRLEN];

	(void)state;
	assert_non_null(c);
	g = &c->listens[0].guard;
	assert_int_equal(g->nrules, 2);
	assert_string_equal(util_cidr_fmt(&g->rules[0].cidr, buf, sizeof(buf)), "192.0.2.0/24");
	assert_int_equal(g->rules[0].action, CONF_ACL_ALLOW);
	assert_int_equal(g->rules[0].where.line, 5);
	assert_string_equal(util_cidr_fmt(&g->rules[1].cidr, buf, sizeof(buf)), "2001:db8::/32");
	assert_int_equal(g->rules[1].action, CONF_ACL_DENY);
	assert_int_equal(g->nfiles, 2);
	assert_string_equal(g->files[0].path, "/etc/sluice/blocked.list");
	assert_int_equal(g->files[0].action, CONF_ACL_DENY);
	assert_int_equal(g->files[0].where.line, 7);
	assert_int_equal(g->files[0].where.col, 15);
	assert_string_equal(g->files[1].path, "/srv/ok.list");
	assert_int_equal(g->dflt, CONF_ACL_DENY);
	assert_int_equal(g->conns, 100);
	assert_int_equal(g->rate, 600);
	assert_int_equal(g->rate_period_ms, 60000);
	assert_int_equal(g->burst, 600); /* one period's worth */
	assert_int_equal(g->group4, 24);
	assert_int_equal(g->group6, 48);
	assert_int_equal(g->table, 5000);
	conf_free(c);
}

static void test_defaults(void **state)
{
	struct conf_errors errs = {0};
	struct conf *c = parse("s.conf",
			       "    deny file x.list;\n    limit per-source rate 5/s "
			       "burst 1;\n",
			       &errs);
	const struct conf_guard *g;

	(void)state;
	assert_non_null(c);
	g = &c->listens[0].guard;
	assert_string_equal(g->files[0].path, "x.list"); /* no directory: as written */
	assert_int_equal(g->dflt, CONF_ACL_ALLOW);
	assert_int_equal(g->conns, 0);
	assert_int_equal(g->rate, 5);
	assert_int_equal(g->burst, 1);
	assert_int_equal(g->group4, 32);
	assert_int_equal(g->group6, 64);
	assert_int_equal(g->table, CONF_GUARD_TABLE_DEFAULT);
	conf_free(c);
}

static void check_error(const char *body, const char *want)
{
	struct conf_errors errs = {0};
	struct conf *c = parse("t.conf", body, &errs);

	assert_null(c);
	assert_true(errs.n >= 1);
	assert_string_equal(errs.msgs[0], want);
	conf_errors_clear(&errs);
}

static void test_errors(void **state)
{
	(void)state;
	check_error("    deny file;\n",
		    "t.conf:5:10: error: missing argument: deny file PATH; (near 'file')");
	check_error("    allow 192.0.2.0/24 192.0.2.0/25;\n",
		    "t.conf:5:24: error: too many arguments: allow CIDR; or allow file PATH; "
		    "(near '192.0.2.0/25')");
	check_error(
	    "    limit per-source rate 5/s 10;\n",
	    "t.conf:5:31: error: expected: limit per-source rate N/s [burst M]; (near '10')");
	check_error("    limit per-source rate 0/s;\n",
		    "t.conf:5:27: error: bad rate '0/s' (expected N/s or N/m, N from 1 to 1000000) "
		    "(near '0/s')");
	check_error("    limit per-source conns 1;\n    limit per-source group v4 /8 v4 /9;\n",
		    "t.conf:6:34: error: unexpected 'v4' (expected v4 /N and v6 /M, each once) "
		    "(near 'v4')");
	check_error("    limit per-source maxconn 1;\n",
		    "t.conf:5:22: error: unknown per-source limit 'maxconn' (expected conns, rate "
		    "or group) (near 'maxconn')");
	check_error("    limit sources 1;\n",
		    "t.conf:5:11: error: unknown limit 'sources' (expected per-source or table) "
		    "(near 'sources')");
	check_error("    limit per-source conns 0;\n",
		    "t.conf:5:28: error: limit per-source conns '0' out of range (expected an "
		    "integer 1-10000000) (near '0')");
	check_error("    limit per-source conns 1;\n    limit table 16777217 entries;\n",
		    "t.conf:6:17: error: limit table '16777217' out of range (expected an integer "
		    "1-16777216) (near '16777217')");
	check_error("    deny file a.list;\n    deny file a.list;\n",
		    "t.conf:6:15: error: file 'a.list' is listed twice (first at line 5) (near "
		    "'a.list')");
	check_error("    default deny;\n    default allow;\n",
		    "t.conf:6:5: error: duplicate 'default' (first at line 5) (near 'default')");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_values),
	    cmocka_unit_test(test_defaults),
	    cmocka_unit_test(test_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
