/* Unit tests for conf_resolvers: the values a resolvers block and the
 * `servers` lines give, the defaults (the implicit "default" block), and
 * the one place '_' is accepted in a name. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "sluice/conf.h"
#include "sluice/util.h"

static struct conf *parse(const char *text)
{
	struct conf_errors errs = {0};
	struct conf *c = conf_parse("t.conf", text, strlen(text), &errs);

	for (size_t i = 0; i < errs.n; i++)
		print_message("%s\n", errs.msgs[i]);
	conf_errors_clear(&errs);
	return c;
}

static void test_block_values(void **state)
{
	static const char text[] =
	    "resolvers consul {\n"
	    "    nameserver 127.0.0.1:8600;\n"
	    "    nameserver ::1;\n"
	    "    timeout 250ms;\n"
	    "    attempts 3;\n"
	    "    hold valid 20s;\n"
	    "    hold nx 0s;\n"
	    "    hold timeout 2h;\n"
	    "    accepted-ttl 5s 10m;\n"
	    "}\n"
	    "pool web {\n"
	    "    resolvers consul;\n"
	    "    servers srv _web._tcp.service.consul limit 8 weight-from-srv;\n"
	    "    servers dns web.service.consul. port 8080 backup maxconn 9;\n"
	    "}\n"
	    "listen www { bind 127.0.0.1:8080; pool web; }\n";
	struct conf *c = parse(text);
	const struct conf_resolvers *r, *def;
	char buf[UTIL_ADDR_STRLEN];

	(void)state;
	assert_non_null(c);
	r = conf_find_resolvers(c, "consul");
	def = conf_find_resolvers(c, "default");
	assert_non_null(r);
	assert_non_null(def);
	assert_true(r->written);
	assert_false(def->written);
	assert_int_equal(r->nnameservers, 2);
	assert_string_equal(util_addr_fmt(&r->nameservers[0], buf, sizeof(buf)), "127.0.0.1:8600");
	assert_string_equal(util_addr_fmt(&r->nameservers[1], buf, sizeof(buf)), "[::1]:53");
	assert_int_equal(r->timeout_ms, 250);
	assert_int_equal(r->attempts, 3);
	assert_int_equal(r->hold_valid_ms, 20000);
	assert_int_equal(r->hold_nx_ms, 0);
	assert_int_equal(r->hold_timeout_ms, 7200000);
	assert_int_equal(r->ttl_min_ms, 5000);
	assert_int_equal(r->ttl_max_ms, 600000);
	/* the implicit default: the system's servers and the documented values */
	assert_int_equal(def->nnameservers, 0);
	assert_int_equal(def->timeout_ms, 1000);
	assert_int_equal(def->attempts, 2);
	assert_int_equal(def->hold_valid_ms, 10000);
	assert_int_equal(def->hold_nx_ms, 30000);
	assert_int_equal(def->hold_timeout_ms, 300000);
	assert_int_equal(def->ttl_min_ms, 1000);
	assert_int_equal(def->ttl_max_ms, 3600000);

	assert_string_equal(c->pools[0].resolvers, "consul");
	assert_int_equal(c->pools[0].ndiscover, 2);
	assert_int_equal(c->pools[0].discover[0].kind, CONF_DISCOVER_SRV);
	assert_string_equal(c->pools[0].discover[0].name, "_web._tcp.service.consul");
	assert_int_equal(c->pools[0].discover[0].limit, 8);
	assert_true(c->pools[0].discover[0].weight_from_srv);
	assert_int_equal(c->pools[0].discover[1].kind, CONF_DISCOVER_DNS);
	/* one spelling: the final dot goes */
	assert_string_equal(c->pools[0].discover[1].name, "web.service.consul");
	assert_int_equal(c->pools[0].discover[1].port, 8080);
	assert_int_equal(c->pools[0].discover[1].limit, 64);
	assert_true(c->pools[0].discover[1].opts.backup);
	assert_int_equal(c->pools[0].discover[1].opts.maxconn, 9);
	conf_free(c);
}

static void test_default_block_written_replaces_the_implicit_one(void **state)
{
	static const char text[] = "resolvers default { nameserver 192.0.2.53; }\n"
				   "pool web { server a web.example:80; }\n"
				   "listen www { bind 127.0.0.1:8080; pool web; }\n";
	struct conf *c = parse(text);

	(void)state;
	assert_non_null(c);
	assert_int_equal(c->nresolvers, 1);
	assert_true(c->resolvers[0].written);
	assert_int_equal(c->resolvers[0].nnameservers, 1);
	assert_string_equal(c->pools[0].resolvers, "default");
	conf_free(c);
}

static void test_service_names(void **state)
{
	char err[200];

	(void)state;
	assert_int_equal(util_service_name_check("_http._tcp.web.example", 22, err, sizeof(err)),
			 0);
	assert_int_equal(util_service_name_check("_x-y._udp.a.b", 13, err, sizeof(err)), 0);
	assert_int_equal(util_service_name_check("_http.example", 13, err, sizeof(err)), 0);
	/* no service label, or '_' where a host name goes, or nothing after */
	assert_int_equal(util_service_name_check("http._tcp.web.example", 21, err, sizeof(err)),
			 -1);
	assert_int_equal(util_service_name_check("_http._tcp.we_b.example", 23, err, sizeof(err)),
			 -1);
	assert_int_equal(util_service_name_check("_http._tcp.", 11, err, sizeof(err)), -1);
	assert_int_equal(util_service_name_check("_._tcp.web.example", 18, err, sizeof(err)), -1);
	/* a host name never takes '_' */
	assert_false(util_is_host_name("_http.example", 13));
	assert_true(util_is_host_name("web.example.", 12));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_block_values),
	    cmocka_unit_test(test_default_block_written_replaces_the_implicit_one),
	    cmocka_unit_test(test_service_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
