/* Unit tests for a listener's guard: per-source connection limits (exact,
 * grouped by prefix), the token-bucket rate, the bounded table (idle
 * sources evicted, least recently active first; a source with open
 * connections never; table-full when only such remain), a new table shape
 * that keeps counting what the old one admitted, the ACL in front of the
 * limits, refusal counters, and several threads admitting and releasing
 * the same sources at once without ever exceeding a limit. Time is passed
 * in, so nothing here waits. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sluice/guard.h"
#include "sluice/qsbr.h"
#include "sluice/util.h"

#define SEC 1000000ull

static struct qsbr q;

static struct util_addr host(const char *s)
{
	struct util_addr a;

	assert_int_equal(util_addr_parse_host(s, &a), 0);
	return a;
}

static struct guard *with_limits(uint32_t conns, uint32_t rate, uint32_t burst, uint32_t table,
				 uint8_t g4, uint8_t g6)
{
	struct guard *g = guard_new(&q);
	struct guard_limits_conf lc = {.conns = conns,
				       .rate = rate,
				       .period_ms = 1000,
				       .burst = burst,
				       .group4 = g4,
				       .group6 = g6,
				       .table = table};

	assert_non_null(g);
	assert_int_equal(guard_set_limits(g, &lc), 0);
	return g;
}

static enum guard_verdict admit(struct guard *g, const char *src, uint64_t now_us,
				struct guard_ticket *t)
{
	struct util_addr a = host(src);
	struct guard_ticket dummy;

	return guard_admit(g, &a, now_us, t != NULL ? t : &dummy);
}

static void teardown_guard(struct guard *g)
{
	guard_free(g);
	qsbr_reclaim(&q);
}

static void test_conns_limit_exact(void **state)
{
	struct guard *g = with_limits(3, 0, 0, 100, 32, 64);
	struct guard_ticket t[3];
	struct guard_stats st;

	(void)state;
	for (int i = 0; i < 3; i++)
		assert_int_equal(admit(g, "192.0.2.1", 1, &t[i]), GUARD_OK);
	assert_int_equal(admit(g, "192.0.2.1", 1, NULL), GUARD_REFUSE_CONNS);
	assert_int_equal(admit(g, "192.0.2.2", 1, NULL), GUARD_OK); /* another source */
	guard_release(&t[1], 2);
	guard_release(&t[1], 2); /* a second release of the same ticket is nothing */
	assert_int_equal(admit(g, "192.0.2.1", 3, &t[1]), GUARD_OK);
	assert_int_equal(admit(g, "192.0.2.1", 3, NULL), GUARD_REFUSE_CONNS);
	guard_stats(g, &st);
	assert_int_equal(st.refused[GUARD_REFUSE_CONNS], 2);
	assert_int_equal(st.sources, 2);
	assert_int_equal(st.capacity, 100);
	assert_true(st.memory_bytes >= 100 * 64);
	for (int i = 0; i < 3; i++)
		guard_release(&t[i], 4);
	teardown_guard(g);
}

static void test_group_prefixes(void **state)
{
	struct guard *g = with_limits(2, 0, 0, 100, 24, 48);

	(void)state;
	assert_int_equal(admit(g, "192.0.2.1", 1, NULL), GUARD_OK);
	assert_int_equal(admit(g, "192.0.2.200", 1, NULL), GUARD_OK);
	assert_int_equal(admit(g, "192.0.2.7", 1, NULL), GUARD_REFUSE_CONNS); /* same /24 */
	assert_int_equal(admit(g, "192.0.3.7", 1, NULL), GUARD_OK);
	assert_int_equal(admit(g, "2001:db8:1:2::1", 1, NULL), GUARD_OK);
	assert_int_equal(admit(g, "2001:db8:1:ffff::1", 1, NULL), GUARD_OK);
	assert_int_equal(admit(g, "2001:db8:1:9::9", 1, NULL), GUARD_REFUSE_CONNS); /* /48 */
	assert_int_equal(admit(g, "2001:db8:2::1", 1, NULL), GUARD_OK);
	teardown_guard(g);
}

static void test_rate_token_bucket(void **state)
{
	/* 10/s, burst 5: five at once, then one every 100 ms */
	struct guard *g = with_limits(0, 10, 5, 100, 32, 64);
	uint64_t t0 = 50 * SEC;
	int ok = 0;

	(void)state;
	for (int i = 0; i < 8; i++)
		ok += admit(g, "198.51.100.1", t0, NULL) == GUARD_OK;
	assert_int_equal(ok, 5);
	assert_int_equal(admit(g, "198.51.100.1", t0 + 99999, NULL), GUARD_REFUSE_RATE);
	assert_int_equal(admit(g, "198.51.100.1", t0 + 100000, NULL), GUARD_OK);
	assert_int_equal(admit(g, "198.51.100.1", t0 + 100000, NULL), GUARD_REFUSE_RATE);
	assert_int_equal(admit(g, "198.51.100.2", t0, NULL), GUARD_OK); /* its own bucket */
	/* over ten seconds at the limit: exactly the rate, after the burst */
	ok = 0;
	for (uint64_t us = 0; us < 10 * SEC; us += 1000)
		ok += admit(g, "198.51.100.3", t0 + us, NULL) == GUARD_OK;
	assert_int_equal(ok, 5 + 99);
	teardown_guard(g);
}

static void test_table_full_and_eviction(void **state)
{
	struct guard *g = with_limits(10, 0, 0, 4, 32, 64);
	struct guard_ticket t[4];
	struct guard_stats st;
	char src[32];

	(void)state;
	for (int i = 0; i < 4; i++) {
		snprintf(src, sizeof(src), "192.0.2.%d", i + 1);
		assert_int_equal(admit(g, src, (uint64_t)(i + 1) * SEC, &t[i]), GUARD_OK);
	}
	/* every source holds a connection: nobody may be evicted */
	assert_int_equal(admit(g, "192.0.2.99", 10 * SEC, NULL), GUARD_REFUSE_TABLE_FULL);
	guard_stats(g, &st);
	assert_int_equal(st.refused[GUARD_REFUSE_TABLE_FULL], 1);
	assert_int_equal(st.evictions, 0);
	/* .3 and .1 go idle, .3 first: .3 is the least recently active */
	guard_release(&t[2], 11 * SEC);
	guard_release(&t[0], 12 * SEC);
	assert_int_equal(admit(g, "192.0.2.99", 13 * SEC, NULL), GUARD_OK);
	guard_stats(g, &st);
	assert_int_equal(st.evictions, 1);
	assert_int_equal(st.sources, 4);
	{
		struct guard_source rows[20];
		size_t n = guard_top_sources(g, 13 * SEC, rows, 10);
		char buf[UTIL_CIDR_STRLEN];
		bool has3 = false, has1 = false;

		assert_int_equal(n, 4);
		for (size_t i = 0; i < n; i++) {
			util_cidr_fmt(&rows[i].src, buf, sizeof(buf));
			has3 |= strcmp(buf, "192.0.2.3/32") == 0;
			has1 |= strcmp(buf, "192.0.2.1/32") == 0;
		}
		assert_false(has3);
		assert_true(has1);
	}
	guard_release(&t[1], 14 * SEC);
	guard_release(&t[3], 14 * SEC);
	teardown_guard(g);
}

static void test_busy_source_keeps_its_count(void **state)
{
	struct guard *g = with_limits(2, 0, 0, 2, 32, 64);
	struct guard_ticket a[2], b;
	char src[32];

	(void)state;
	assert_int_equal(admit(g, "192.0.2.1", SEC, &a[0]), GUARD_OK);
	assert_int_equal(admit(g, "192.0.2.1", SEC, &a[1]), GUARD_OK);
	/* a flood of sources that each come once and go */
	for (int i = 0; i < 200; i++) {
		snprintf(src, sizeof(src), "198.51.100.%d", i);
		assert_int_equal(admit(g, src, 2 * SEC, &b), GUARD_OK);
		guard_release(&b, 2 * SEC);
	}
	/* .1 was never evicted: its two connections still count */
	assert_int_equal(admit(g, "192.0.2.1", 3 * SEC, NULL), GUARD_REFUSE_CONNS);
	guard_release(&a[0], 4 * SEC);
	guard_release(&a[1], 4 * SEC);
	teardown_guard(g);
}

static void test_new_shape_keeps_counting(void **state)
{
	struct guard *g = with_limits(2, 0, 0, 100, 32, 64);
	struct guard_limits_conf bigger = {.conns = 2, .group4 = 32, .group6 = 64, .table = 1000};
	struct guard_limits_conf looser = {.conns = 3, .group4 = 32, .group6 = 64, .table = 1000};
	struct guard_ticket t[3];
	struct guard_stats st;

	(void)state;
	assert_int_equal(admit(g, "192.0.2.1", SEC, &t[0]), GUARD_OK);
	assert_int_equal(admit(g, "192.0.2.1", SEC, &t[1]), GUARD_OK);
	assert_int_equal(guard_set_limits(g, &bigger), 0);
	qsbr_reclaim(&q);
	guard_reclaim(g); /* the old table still counts two: kept */
	/* a new table, but the source's two connections still count */
	assert_int_equal(admit(g, "192.0.2.1", 2 * SEC, NULL), GUARD_REFUSE_CONNS);
	assert_int_equal(admit(g, "192.0.2.2", 2 * SEC, NULL), GUARD_OK);
	/* limits changed in place: the same table */
	assert_int_equal(guard_set_limits(g, &looser), 0);
	assert_int_equal(admit(g, "192.0.2.1", 3 * SEC, &t[2]), GUARD_OK);
	assert_int_equal(admit(g, "192.0.2.1", 3 * SEC, NULL), GUARD_REFUSE_CONNS);
	guard_release(&t[0], 4 * SEC);
	guard_release(&t[1], 4 * SEC);
	guard_stats(g, &st);
	assert_int_equal(st.capacity, 1000);
	guard_reclaim(g); /* drained: retired */
	qsbr_reclaim(&q);
	/* t[2] and two more make the new limit of 3 */
	assert_int_equal(admit(g, "192.0.2.1", 5 * SEC, NULL), GUARD_OK);
	assert_int_equal(admit(g, "192.0.2.1", 5 * SEC, NULL), GUARD_OK);
	assert_int_equal(admit(g, "192.0.2.1", 5 * SEC, NULL), GUARD_REFUSE_CONNS);
	guard_release(&t[2], 6 * SEC);
	/* limits off: everyone is admitted, nothing is tracked */
	assert_int_equal(guard_set_limits(g, NULL), 0);
	for (int i = 0; i < 10; i++)
		assert_int_equal(admit(g, "192.0.2.1", 7 * SEC, NULL), GUARD_OK);
	teardown_guard(g);
}

/* A superseded table stays while a worker that loaded the old limits may
 * still admit into it, even with no connection open. */
static void test_old_table_waits_for_readers(void **state)
{
	struct guard *g = with_limits(2, 0, 0, 100, 32, 64);
	struct guard_limits_conf bigger = {.conns = 2, .group4 = 32, .group6 = 64, .table = 500};
	struct qsbr_reader worker;
	struct guard_stats st;
	uint64_t both;

	(void)state;
	assert_int_equal(qsbr_add_reader(&q, &worker), 0);
	qsbr_online(&q, &worker); /* it may hold the old limits */
	assert_int_equal(guard_set_limits(g, &bigger), 0);
	guard_stats(g, &st);
	both = st.memory_bytes;
	guard_reclaim(g);
	guard_stats(g, &st);
	assert_int_equal(st.memory_bytes, both); /* drained, but not passed */
	qsbr_offline(&worker);
	guard_reclaim(g);
	guard_stats(g, &st);
	assert_true(st.memory_bytes < both);
	teardown_guard(g);
	/* the reader stays registered but offline: it holds nothing */
}

static struct guard_rule rule(const char *cidr, enum guard_action a)
{
	struct guard_rule r = {.action = a, .origin = GUARD_ORIGIN_CONFIG};
	char err[200];

	assert_int_equal(util_cidr_parse(cidr, strlen(cidr), &r.cidr, err, sizeof(err)), 0);
	return r;
}

static void test_acl_before_limits(void **state)
{
	struct guard *g = with_limits(1, 0, 0, 100, 32, 64);
	struct guard_rule lines[] = {rule("10.0.0.0/8", GUARD_ALLOW),
				     rule("10.1.0.0/16", GUARD_DENY)};
	struct guard_stats st;
	struct util_cidr c;
	char err[200];

	(void)state;
	assert_int_equal(guard_set_acl(g, NULL, "", lines, 2, GUARD_DENY), 0);
	qsbr_reclaim(&q);
	assert_int_equal(admit(g, "10.1.2.3", SEC, NULL), GUARD_REFUSE_ACL);
	assert_int_equal(admit(g, "10.2.2.3", SEC, NULL), GUARD_OK);
	assert_int_equal(admit(g, "10.2.2.3", SEC, NULL), GUARD_REFUSE_CONNS);
	assert_int_equal(admit(g, "192.0.2.1", SEC, NULL), GUARD_REFUSE_ACL); /* default deny */
	/* a runtime entry wins over the line of the same prefix, then expires */
	assert_int_equal(util_cidr_parse("10.1.0.0/16", 11, &c, err, sizeof(err)), 0);
	assert_int_equal(guard_acl_add(g, &c, GUARD_ALLOW, 5000, 0, err, sizeof(err)), 0);
	assert_int_equal(admit(g, "10.1.2.3", 4999 * 1000ull, NULL), GUARD_OK);
	assert_int_equal(admit(g, "10.1.2.4", 5000 * 1000ull, NULL), GUARD_REFUSE_ACL);
	assert_int_equal(guard_acl_next_expiry(g), 5000);
	assert_int_equal(guard_acl_expire(g, 5000), 1);
	assert_int_equal(guard_acl_del(g, &c), -1);
	guard_stats(g, &st);
	assert_int_equal(st.refused[GUARD_REFUSE_ACL], 3);
	assert_int_equal(st.refused[GUARD_REFUSE_CONNS], 1);
	assert_int_equal(st.acl_entries[GUARD_ORIGIN_CONFIG], 2);
	assert_int_equal(st.acl_entries[GUARD_ORIGIN_RUNTIME], 0);
	teardown_guard(g);
}

/* ---- threads ---- */

#define THREADS 4
#define SOURCES 16

struct stress {
	struct guard *g;
	uint32_t limit;
	_Atomic uint32_t open[SOURCES];
	_Atomic uint32_t worst;
	_Atomic uint64_t admitted, refused;
	int seed;
};

static void *stress_thread(void *arg)
{
	struct stress *s = arg;
	uint64_t rng =
	    (uint64_t)atomic_fetch_add(&s->admitted, 0) + 0x1234567ull * (uint64_t)s->seed++;
	struct guard_ticket held[64];
	int src_of[64], nheld = 0;

	rng |= 1;
	for (int i = 0; i < 40000; i++) {
		uint64_t r = util_rand64(&rng);
		int k = (int)(r % SOURCES);
		char buf[32];

		if (nheld > 0 && ((r >> 8) & 1)) {
			int j = (int)((r >> 16) % (uint64_t)nheld);

			/* give back: the test's own count first, as a real close */
			atomic_fetch_sub(&s->open[src_of[j]], 1);
			guard_release(&held[j], SEC);
			held[j] = held[--nheld];
			src_of[j] = src_of[nheld];
			continue;
		}
		if (nheld == 64)
			continue;
		snprintf(buf, sizeof(buf), "203.0.113.%d", k);
		if (admit(s->g, buf, SEC, &held[nheld]) == GUARD_OK) {
			uint32_t now = atomic_fetch_add(&s->open[k], 1) + 1;
			uint32_t w = atomic_load(&s->worst);

			while (now > w && !atomic_compare_exchange_weak(&s->worst, &w, now))
				;
			src_of[nheld++] = k;
			atomic_fetch_add(&s->admitted, 1);
		} else {
			atomic_fetch_add(&s->refused, 1);
		}
	}
	while (nheld > 0) {
		nheld--;
		atomic_fetch_sub(&s->open[src_of[nheld]], 1);
		guard_release(&held[nheld], SEC);
	}
	return NULL;
}

/* Sources with a small table: entries are evicted and re-entered while
 * other threads count on them; no source ever has more than the limit
 * open, and every count is back to zero at the end. */
static void test_threads_never_exceed(void **state)
{
	struct stress s = {.limit = 3};
	pthread_t th[THREADS];
	struct guard_source rows[64];
	size_t n;

	(void)state;
	s.g = with_limits(s.limit, 0, 0, SOURCES / 2, 32, 64);
	for (int i = 0; i < THREADS; i++)
		assert_int_equal(pthread_create(&th[i], NULL, stress_thread, &s), 0);
	for (int i = 0; i < THREADS; i++)
		pthread_join(th[i], NULL);
	assert_true(atomic_load(&s.worst) <= s.limit);
	assert_int_equal(atomic_load(&s.worst), s.limit); /* the limit was reached */
	assert_true(atomic_load(&s.admitted) > 1000);
	assert_true(atomic_load(&s.refused) > 0);
	n = guard_top_sources(s.g, SEC, rows, 32);
	assert_true(n <= SOURCES / 2);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(rows[i].conns, 0);
	teardown_guard(s.g);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_conns_limit_exact),
	    cmocka_unit_test(test_group_prefixes),
	    cmocka_unit_test(test_rate_token_bucket),
	    cmocka_unit_test(test_table_full_and_eviction),
	    cmocka_unit_test(test_busy_source_keeps_its_count),
	    cmocka_unit_test(test_new_shape_keeps_counting),
	    cmocka_unit_test(test_old_table_waits_for_readers),
	    cmocka_unit_test(test_acl_before_limits),
	    cmocka_unit_test(test_threads_never_exceed),
	};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);

	qsbr_destroy(&q);
	return rc;
}
