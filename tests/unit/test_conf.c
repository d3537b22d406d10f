/* Unit tests for conf: the parsed values of a full file, defaults, and the
 * exact diagnostics (FILE:LINE:COL) for each kind of mistake. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "sluice/conf.h"
#include "sluice/util.h"

static const char full[] = "global {\n"
			   "    workers auto;            # one per CPU\n"
			   "    maxconn 100000;\n"
			   "    log stderr debug;\n"
			   "    grace 3s;\n"
			   "}\n"
			   "pool web {\n"
			   "    balance maglev;\n"
			   "    server a 127.0.0.1:9001 weight 10;\n"
			   "    server b 127.0.0.1:9002 weight 5 maxconn 500 send-proxy v1;\n"
			   "    server c [::1]:9003 backup;\n"
			   "    send-proxy v2;\n"
			   "    queue 10;\n"
			   "    timeout queue 250ms;\n"
			   "    maglev-table 1021;\n"
			   "}\n"
			   "listen www {\n"
			   "    bind 127.0.0.1:8080;\n"
			   "    bind [::1]:8080;\n"
			   "    pool web;\n"
			   "    maxconn 20000;\n"
			   "    timeout connect 2s;\n"
			   "    timeout idle 5m;\n"
			   "    retries 3;\n"
			   "    accept-proxy;\n"
			   "}\n";

static void test_full(void **state)
{
	struct conf_errors errs = {0};
	struct conf *c = conf_parse("t.conf", full, strlen(full), &errs);
	char buf[UTIL_ADDR_STRLEN];

	(void)state;
	assert_non_null(c);
	assert_int_equal(errs.n, 0);
	assert_int_equal(c->global.workers, 0);
	assert_int_equal(c->global.maxconn, 100000);
	assert_int_equal(c->global.nlogs, 1);
	assert_int_equal(c->global.logs[0].kind, LOG_TARGET_STDERR);
	assert_int_equal(c->global.logs[0].level, LOGL_DEBUG);
	assert_int_equal(c->global.grace_ms, 3000);
	assert_int_equal(c->npools, 1);
	assert_string_equal(c->pools[0].name, "web");
	assert_int_equal(c->pools[0].balance, CONF_BALANCE_MAGLEV);
	assert_int_equal(c->pools[0].send_proxy, UTIL_PROXY_V2);
	assert_int_equal(c->pools[0].queue_max, 10);
	assert_int_equal(c->pools[0].timeout_queue_ms, 250);
	assert_int_equal(c->pools[0].maglev_table, 1021);
	assert_int_equal(c->pools[0].nservers, 3);
	assert_int_equal(c->pools[0].servers[0].opts.weight, 10);
	assert_int_equal(c->pools[0].servers[1].opts.maxconn, 500);
	assert_int_equal(c->pools[0].servers[1].opts.send_proxy, UTIL_PROXY_V1);
	assert_int_equal(c->pools[0].servers[0].opts.send_proxy, UTIL_PROXY_INHERIT);
	assert_true(c->pools[0].servers[2].opts.backup);
	assert_string_equal(util_addr_fmt(&c->pools[0].servers[2].addr, buf, sizeof(buf)),
			    "[::1]:9003");
	assert_int_equal(c->nlistens, 1);
	assert_int_equal(c->listens[0].nbinds, 2);
	assert_int_equal(c->listens[0].pool, 0);
	assert_int_equal(c->listens[0].maxconn, 20000);
	assert_int_equal(c->listens[0].timeout_connect_ms, 2000);
	assert_int_equal(c->listens[0].timeout_idle_ms, 300000);
	/* half-closed defaults to idle */
	assert_int_equal(c->listens[0].timeout_half_closed_ms, 300000);
	assert_int_equal(c->listens[0].retries, 3);
	assert_true(c->listens[0].accept_proxy);
	conf_free(c);
}

static void test_defaults(void **state)
{
	static const char txt[] = "pool p { server s 127.0.0.1:1; }\n"
				  "listen l { bind 127.0.0.1:2; pool p; }\n";
	struct conf_errors errs = {0};
	struct conf *c = conf_parse("d.conf", txt, strlen(txt), &errs);

	(void)state;
	assert_non_null(c);
	assert_int_equal(c->global.workers, 0);
	assert_int_equal(c->global.maxconn, 0);
	assert_int_equal(c->global.grace_ms, 10000);
	assert_int_equal(c->pools[0].balance, CONF_BALANCE_ROUNDROBIN);
	assert_int_equal(c->pools[0].maglev_table, 65537);
	assert_int_equal(c->pools[0].servers[0].opts.weight, 1);
	assert_int_equal(c->listens[0].retries, 2);
	assert_int_equal(c->listens[0].timeout_connect_ms, 5000);
	assert_int_equal(c->listens[0].timeout_proxy_header_ms, 2000);
	assert_int_equal(c->global.bufmem, 0);
	assert_int_equal(c->global.relay, CONF_RELAY_USER);
	assert_int_equal(c->listens[0].relay, CONF_RELAY_USER);
	assert_int_equal(c->listens[0].relay_inflight, CONF_RELAY_INFLIGHT);
	conf_free(c);
}

/* A listener without a relay line takes the global one, even when the
 * global block comes later; its own line wins. */
static void test_relay_inherit(void **state)
{
	const char *txt = "pool p { server a 127.0.0.1:1; }\n"
			  "listen a { bind 127.0.0.1:2; pool p; }\n"
			  "listen b { bind 127.0.0.1:3; pool p; relay user; }\n"
			  "listen c { bind 127.0.0.1:4; pool p; relay kernel inflight 128k; }\n"
			  "global { relay auto inflight 1m; }\n";
	struct conf_errors errs = {0};
	struct conf *c = conf_parse("r.conf", txt, strlen(txt), &errs);

	(void)state;
	assert_non_null(c);
	assert_int_equal(c->listens[0].relay, CONF_RELAY_AUTO);
	assert_int_equal(c->listens[0].relay_inflight, 1024 * 1024);
	assert_int_equal(c->listens[1].relay, CONF_RELAY_USER);
	assert_int_equal(c->listens[2].relay, CONF_RELAY_KERNEL);
	assert_int_equal(c->listens[2].relay_inflight, 128 * 1024);
	conf_free(c);
}

/* Parse txt and expect exactly the given first error message. */
static void expect_error(const char *txt, const char *msg)
{
	struct conf_errors errs = {0};
	struct conf *c = conf_parse("bad.conf", txt, strlen(txt), &errs);

	assert_null(c);
	assert_true(errs.n >= 1);
	assert_string_equal(errs.msgs[0], msg);
	conf_errors_clear(&errs);
}

static void test_errors(void **state)
{
	(void)state;
	expect_error("global { wrokers 2; }\n",
		     "bad.conf:1:10: error: unknown keyword 'wrokers' in global block (expected "
		     "one of: workers, maxconn, log, grace, control, metrics, state-file, user, "
		     "group, bufmem, relay) (near 'wrokers')");
	expect_error("pool p {\n    server a 127.0.0.1:1\n    server b 127.0.0.1:2;\n}\n",
		     "bad.conf:2:25: error: expected ';' after '127.0.0.1:1' (near '127.0.0.1:1')");
	expect_error("pool p { server a 127.0.0.1:99999; }\n",
		     "bad.conf:1:19: error: port '99999' out of range (expected 1-65535) (near "
		     "'127.0.0.1:99999')");
	expect_error("pool p { server a 127.0.0.1:1 weight 300; }\n",
		     "bad.conf:1:38: error: weight '300' out of range (expected an integer 0-256) "
		     "(near '300')");
	expect_error("pool p { server a 10.0.0.300:1; }\n",
		     "bad.conf:1:19: error: bad address '10.0.0.300' (expected numeric IPv4, or "
		     "[IPv6]) (near '10.0.0.300:1')");
	expect_error(
	    "pool p { }\npool p { }\n",
	    "bad.conf:2:6: error: duplicate pool 'p' (first defined at line 1) (near 'p')");
	expect_error("listen l {\n  bind 127.0.0.1:80;\n  pool nope;\n}\n",
		     "bad.conf:3:8: error: pool 'nope' does not exist (near 'nope')");
	expect_error("pool p {\n  server a 127.0.0.1:1;\n",
		     "bad.conf:1:8: error: unterminated block (expected '}' before end of file)");
	expect_error("listen l { timeout idle 5; }\n",
		     "bad.conf:1:25: error: bad timeout idle '5' (expected a duration with a "
		     "unit such as 500ms, 2s, 5m or 1h, from 1ms to 24h) (near '5')");
	expect_error("}\n", "bad.conf:1:1: error: unexpected '}' (no block is open) (near '}')");
	expect_error("pool p { balance fastest; }\n",
		     "bad.conf:1:18: error: unknown balance algorithm 'fastest' (expected "
		     "roundrobin, leastconn, random, maglev or first) (near 'fastest')");
	expect_error("pool p { server a 127.0.0.1:1 wieght 3; }\n",
		     "bad.conf:1:31: error: unknown server option 'wieght' (expected weight N, "
		     "maxconn N, backup, send-proxy v1|v2|none, check on|off|port N or agent "
		     "on|off|port N) (near 'wieght')");
	expect_error("listen l { pool p; }\npool p { }\n",
		     "bad.conf:1:8: error: listen 'l' has no bind (expected 'bind ADDRESS:PORT;') "
		     "(near 'l')");
	expect_error("pool p { server a \"127.0.0.1:1; }\n",
		     "bad.conf:1:19: error: unterminated string (expected '\"')");
	expect_error("global { workers 2 }\n",
		     "bad.conf:1:19: error: expected ';' after '2' (near '2')");
	expect_error("global { workers; }\n",
		     "bad.conf:1:10: error: missing argument: workers auto|N; (near 'workers')");
}

static void test_several_errors(void **state)
{
	static const char txt[] = "global { workers 0; maxconn x; }\n"
				  "pool p { balance no; }\n";
	struct conf_errors errs = {0};

	(void)state;
	assert_null(conf_parse("m.conf", txt, strlen(txt), &errs));
	assert_int_equal(errs.n, 3);
	assert_non_null(strstr(errs.msgs[0], "m.conf:1:18:"));
	assert_non_null(strstr(errs.msgs[1], "m.conf:1:29:"));
	assert_non_null(strstr(errs.msgs[2], "m.conf:2:18:"));
	conf_errors_clear(&errs);
}

static void test_duplicate_bind(void **state)
{
	static const char txt[] = "pool p { }\n"
				  "listen a { bind 127.0.0.1:80; pool p; }\n"
				  "listen b { bind 127.0.0.1:80; pool p; }\n";

	(void)state;
	expect_error(txt, "bad.conf:3:8: error: address 127.0.0.1:80 is bound twice (listen 'a' "
			  "and listen 'b') (near 'b')");
}

static void test_escapes_and_nul(void **state)
{
	static const char nul[] = "pool p { }\0";

	(void)state;
	expect_error("pool \"a\\qb\" { }\n",
		     "bad.conf:1:9: error: unknown escape '\\q' (expected \\r \\n \\t \\\\ \\\" or "
		     "\\xNN)");
	{
		struct conf_errors errs = {0};

		assert_null(conf_parse("n.conf", nul, sizeof(nul) - 1, &errs));
		assert_string_equal(errs.msgs[0], "n.conf:1:1: error: NUL byte in configuration");
		conf_errors_clear(&errs);
	}
}

/* TLS routes: parsed values, defaults, the optional default pool, and a
 * warning (not an error) for a route that an earlier one shadows. */
static void test_routes(void **state)
{
	static const char text[] = "pool a { server a 127.0.0.1:1; }\n"
				   "pool b { server b 127.0.0.1:2; }\n"
				   "listen t {\n"
				   "    bind 127.0.0.1:8443;\n"
				   "    route sni API.Example.COM. pool a;\n"
				   "    route sni *.example.com alpn h2 pool b;\n"
				   "    route alpn acme-tls/1 pool b;\n"
				   "    route no-sni pool a;\n"
				   "    route not-tls pool b;\n"
				   "    route sni www.example.com alpn h2 pool a;\n"
				   "}\n"
				   "listen u {\n"
				   "    bind 127.0.0.1:8444;\n"
				   "    route no-sni pool b;\n"
				   "    pool a;\n"
				   "    timeout client-hello 250ms;\n"
				   "}\n"
				   "listen v { bind 127.0.0.1:8445; pool b; }\n";
	struct conf_errors errs = {0};
	struct conf *c = conf_parse("t.conf", text, strlen(text), &errs);
	const struct conf_listen *t, *u, *v;

	(void)state;
	assert_non_null(c);
	t = &c->listens[0];
	u = &c->listens[1];
	v = &c->listens[2];
	assert_false(t->has_pool);
	assert_int_equal(t->nroutes, 6);
	assert_int_equal(t->timeout_client_hello_ms, 5000);
	assert_int_equal(t->routes[0].kind, CONF_ROUTE_SNI);
	assert_string_equal(t->routes[0].sni, "api.example.com");
	assert_string_equal(t->routes[0].alpn, "");
	assert_string_equal(c->pools[t->routes[0].pool].name, "a");
	assert_string_equal(t->routes[1].sni, "*.example.com");
	assert_string_equal(t->routes[1].alpn, "h2");
	assert_string_equal(c->pools[t->routes[1].pool].name, "b");
	assert_int_equal(t->routes[2].kind, CONF_ROUTE_ALPN);
	assert_string_equal(t->routes[2].alpn, "acme-tls/1");
	assert_int_equal(t->routes[3].kind, CONF_ROUTE_NO_SNI);
	assert_int_equal(t->routes[4].kind, CONF_ROUTE_NOT_TLS);
	assert_int_equal(t->routes[4].where.line, 9);
	assert_true(u->has_pool);
	assert_string_equal(c->pools[u->pool].name, "a");
	assert_int_equal(u->timeout_client_hello_ms, 250);
	assert_int_equal(v->nroutes, 0);
	assert_true(v->has_pool);
	assert_int_equal(c->warnings.n, 1);
	assert_string_equal(
	    c->warnings.msgs[0],
	    "t.conf:10:5: warning: route sni www.example.com alpn h2 can never "
	    "match: route sni *.example.com alpn h2 at line 6 comes first and takes "
	    "all its connections");
	conf_free(c);
}

/* announce: values, defaults, and that a vrrp block may sit beside it. */
static void test_announce(void **state)
{
	static const char txt[] = "pool web { server a 192.0.2.1:80; }\n"
				  "pool api { server a 192.0.2.2:80; }\n"
				  "listen l { bind 0.0.0.0:80; bind [::]:80; pool web; }\n"
				  "announce front {\n"
				  "  address 198.51.100.10/32;\n"
				  "  address 2001:db8::10;\n"
				  "  require pool web;\n"
				  "  require pool api;\n"
				  "}\n"
				  "announce b { address 198.51.100.11; device vip1; hold-down 0s;\n"
				  "  withdraw-delay 500ms; }\n"
				  "vrrp v { interface eth0; vrid 1; address 198.51.100.12/24; }\n";
	struct conf_errors errs = {0};
	struct conf *c = conf_parse("a.conf", txt, strlen(txt), &errs);
	char buf[UTIL_ADDR_STRLEN];

	(void)state;
	assert_non_null(c);
	assert_int_equal(c->nannounces, 2);
	assert_string_equal(c->announces[0].name, "front");
	assert_int_equal(c->announces[0].naddrs, 2);
	assert_string_equal(util_addr_fmt_host(&c->announces[0].addrs[1].addr, buf, sizeof(buf)),
			    "2001:db8::10");
	assert_int_equal(c->announces[0].addrs[1].where.line, 6);
	assert_string_equal(c->announces[0].device, "vip0");
	assert_int_equal(c->announces[0].npools, 2);
	assert_string_equal(c->announces[0].pools[1].name, "api");
	assert_int_equal(c->announces[0].hold_down_ms, 2000);
	assert_int_equal(c->announces[0].withdraw_delay_ms, 2000);
	assert_string_equal(c->announces[1].device, "vip1");
	assert_int_equal(c->announces[1].hold_down_ms, 0);
	assert_int_equal(c->announces[1].withdraw_delay_ms, 500);
	assert_int_equal(c->nvrrps, 1);
	conf_free(c);
	expect_error("pool p { }\nlisten l { bind 0.0.0.0:80; pool p; }\n"
		     "announce a { address 198.51.100.1/31; }\n",
		     "bad.conf:3:22: error: announced prefix '198.51.100.1/31' must be a single "
		     "address (/32 for IPv4) (near '198.51.100.1/31')");
	expect_error("pool p { }\nlisten l { bind [::1]:80; pool p; }\n"
		     "announce a { address 198.51.100.1; }\n",
		     "bad.conf:3:22: error: no listener serves 198.51.100.1 (expected a listen "
		     "block with 'bind 198.51.100.1:PORT;' or a wildcard bind) (near "
		     "'198.51.100.1')");
	expect_error(
	    "pool p { }\nlisten l { bind 0.0.0.0:80; pool p; }\n"
	    "announce a { address 198.51.100.1; require service web; }\n",
	    "bad.conf:3:44: error: unknown requirement 'service' (expected pool NAME) (near "
	    "'service')");
	expect_error("pool p { }\nlisten l { bind 0.0.0.0:80; pool p; }\n"
		     "announce a { address 198.51.100.1; device lo; }\n",
		     "bad.conf:3:43: error: bad device name 'lo' (expected 1-15 letters, digits, "
		     "'-', '_' or '.', for a TUN device sluice creates) (near 'lo')");
	expect_error(
	    "pool p { }\nlisten l { bind 0.0.0.0:80; pool p; }\n"
	    "announce all { address 198.51.100.1; }\n",
	    "bad.conf:3:10: error: announce name 'all' is reserved ('announce withdraw all' "
	    "means every block) (near 'all')");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_full),
	    cmocka_unit_test(test_defaults),
	    cmocka_unit_test(test_relay_inherit),
	    cmocka_unit_test(test_errors),
	    cmocka_unit_test(test_several_errors),
	    cmocka_unit_test(test_duplicate_bind),
	    cmocka_unit_test(test_escapes_and_nul),
	    cmocka_unit_test(test_routes),
	    cmocka_unit_test(test_announce),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
