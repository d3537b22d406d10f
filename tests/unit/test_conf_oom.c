/* Unit test for conf under memory exhaustion: the allocation functions are
 * wrapped at link time (-Wl,--wrap, see the Makefile) so that the Nth
 * allocation made while parsing fails, for every N. A file that could not
 * be read whole must never pass as valid: conf_parse returns NULL with an
 * "out of memory" diagnostic, never a configuration missing a server. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sluice/conf.h"

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
char *__real_strdup(const char *s);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);
char *__wrap_strdup(const char *s);

static long fail_at = -1; /* which allocation fails; -1: none */
static long nallocs;
static bool fired;

static bool fail_now(void)
{
	if (fail_at < 0 || nallocs++ != fail_at)
		return false;
	fired = true;
	return true;
}

void *__wrap_malloc(size_t n)
{
	return fail_now() ? NULL : __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t size)
{
	return fail_now() ? NULL : __real_calloc(n, size);
}

void *__wrap_realloc(void *p, size_t n)
{
	return fail_now() ? NULL : __real_realloc(p, n);
}

char *__wrap_strdup(const char *s)
{
	return fail_now() ? NULL : __real_strdup(s);
}

/* Every kind of array conf grows, several elements each. */
static const char text[] = "global {\n"
			   "    control /run/a.sock;\n"
			   "    control /run/b.sock mode 0666 level user;\n"
			   "    log stderr notice;\n"
			   "    log syslog facility local0 tag edge info;\n"
			   "    log udp 192.0.2.10:514 info;\n"
			   "}\n"
			   "pool web {\n"
			   "    server a 127.0.0.1:9001 weight 10;\n"
			   "    server b 127.0.0.1:9002;\n"
			   "    server c 127.0.0.1:9003 backup;\n"
			   "    server d 127.0.0.1:9004;\n"
			   "    server e 127.0.0.1:9005;\n"
			   "}\n"
			   "pool aux { server x 127.0.0.1:9100; }\n"
			   "pool more { server y 127.0.0.1:9200; }\n"
			   "listen www {\n"
			   "    bind 127.0.0.1:8080;\n"
			   "    bind 127.0.0.1:8081;\n"
			   "    bind 127.0.0.1:8082;\n"
			   "    pool web;\n"
			   "}\n"
			   "listen side { bind 127.0.0.1:8090; pool aux; }\n"
			   "listen third { bind 127.0.0.1:8091; pool more; }\n"
			   "listen tls {\n"
			   "    bind 127.0.0.1:8443;\n"
			   "    route sni api.example.com pool aux;\n"
			   "    route sni *.example.com alpn h2 pool more;\n"
			   "    route no-sni pool web;\n"
			   "    pool web;\n"
			   "}\n"
			   "listen any { bind 0.0.0.0:8444; bind [::]:8444; pool web; }\n"
			   "announce front {\n"
			   "    address 198.51.100.30/32;\n"
			   "    address 198.51.100.31/32;\n"
			   "    address 2001:db8::30/128;\n"
			   "    require pool web;\n"
			   "    require pool aux;\n"
			   "}\n"
			   "announce back { address 198.51.100.40; device vip1; }\n"
			   "vrrp front {\n"
			   "    interface eth0; vrid 51;\n"
			   "    address 198.51.100.10/24;\n"
			   "    address 198.51.100.11/24;\n"
			   "    address 198.51.100.12/24;\n"
			   "    peer 192.0.2.12;\n"
			   "    peer 192.0.2.13;\n"
			   "    peer 192.0.2.14;\n"
			   "    track pool web weight 10;\n"
			   "    track pool aux weight 10;\n"
			   "    track pool more weight 10;\n"
			   "}\n"
			   "vrrp back { interface eth0; vrid 52; address 198.51.100.20/24; }\n";

/* What the file holds, counted. */
static size_t count(const struct conf *c)
{
	size_t n = c->global.ncontrols + c->global.nlogs + c->npools + c->nlistens + c->nvrrps +
		   c->nannounces;

	for (size_t i = 0; i < c->npools; i++)
		n += c->pools[i].nservers;
	for (size_t i = 0; i < c->nlistens; i++)
		n += c->listens[i].nbinds + c->listens[i].nroutes;
	for (size_t i = 0; i < c->nannounces; i++)
		n += c->announces[i].naddrs + c->announces[i].npools;
	for (size_t i = 0; i < c->nvrrps; i++)
		n += c->vrrps[i].naddrs + c->vrrps[i].npeers + c->vrrps[i].ntracks;
	return n;
}

static void test_every_allocation_failure(void **state)
{
	struct conf_errors errs = {0};
	struct conf *c = conf_parse("t.conf", text, sizeof(text) - 1, &errs);
	size_t want, failures = 0;

	(void)state;
	assert_non_null(c);
	want = count(c);
	/* controls, logs; pools, servers; listens, binds, routes; vrrp blocks,
	 * their addresses, peers, tracks; announce blocks, their addresses and
	 * pools */
	assert_int_equal(want, 2 + 3 + 3 + 7 + 5 + 8 + 3 + 2 + 4 + 3 + 3 + 2 + 4 + 2);
	conf_free(c);
	for (fail_at = 0; fail_at < 100000; fail_at++) {
		nallocs = 0;
		fired = false;
		c = conf_parse("t.conf", text, sizeof(text) - 1, &errs);
		if (!fired) {
			/* past the last allocation: the whole file again */
			assert_non_null(c);
			assert_int_equal(count(c), want);
			conf_free(c);
			break;
		}
		failures++;
		if (c != NULL)
			fail_msg("allocation %ld failed, yet the file parsed as valid with %zu of "
				 "its %zu items",
				 fail_at, count(c), want);
		assert_true(errs.n >= 1);
		if (strstr(errs.msgs[0], "out of memory") == NULL)
			fail_msg("allocation %ld: first message '%s'", fail_at, errs.msgs[0]);
		conf_errors_clear(&errs);
	}
	fail_at = -1;
	/* each item of the file was allocated at least once */
	assert_true(failures >= want);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_every_allocation_failure),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
