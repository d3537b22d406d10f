/* Unit tests for util lathist: the lateness histogram behind show info's
 * p50/p99/max of checks and adverts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "sluice/util.h"

static void test_empty(void **state)
{
	struct util_lathist h = {0};
	struct util_lathist_summary s;

	(void)state;
	util_lathist_summarize(&h, &s);
	assert_int_equal(s.n, 0);
	assert_int_equal(s.p50_us, 0);
	assert_int_equal(s.p99_us, 0);
	assert_int_equal(s.max_us, 0);
}

/* Small values are exact; quantiles follow the rank. */
static void test_small_exact(void **state)
{
	struct util_lathist h = {0};

	(void)state;
	for (uint64_t v = 0; v < 8; v++)
		util_lathist_add(&h, v);
	assert_int_equal(h.n, 8);
	assert_int_equal(util_lathist_quantile(&h, 0.5), 3);
	assert_int_equal(util_lathist_quantile(&h, 1.0), 7);
	assert_int_equal(util_lathist_quantile(&h, 0.01), 0);
	assert_int_equal(h.sum_us, 28);
}

/* 990 checks on time (100 us) and 10 late ones (40 ms): p99 is still
 * "on time", max is the late one, exactly. The next late one moves p99. */
static void test_p99_and_max(void **state)
{
	struct util_lathist h = {0};
	struct util_lathist_summary s;

	(void)state;
	for (int i = 0; i < 990; i++)
		util_lathist_add(&h, 100);
	for (int i = 0; i < 10; i++)
		util_lathist_add(&h, 40000 + (uint64_t)i);
	util_lathist_summarize(&h, &s);
	assert_int_equal(s.n, 1000);
	assert_in_range(s.p50_us, 100, 100 + 100 / 8);
	assert_in_range(s.p99_us, 100, 100 + 100 / 8);
	assert_int_equal(s.max_us, 40009);
	util_lathist_add(&h, 40000);
	util_lathist_add(&h, 40000);
	util_lathist_summarize(&h, &s);
	assert_in_range(s.p99_us, 40000, 40009);
}

/* Every value lands in a bucket whose top is within 12.5 % above it, and
 * a quantile never exceeds the maximum. */
static void test_precision(void **state)
{
	(void)state;
	for (uint64_t v = 1; v < (1ull << 39); v = v * 3 + 1) {
		struct util_lathist h = {0};
		uint64_t q;

		util_lathist_add(&h, v);
		util_lathist_add(&h, v * 2);
		q = util_lathist_quantile(&h, 0.5);
		assert_true(q >= v);
		assert_true(q <= v + v / 8);
		assert_int_equal(util_lathist_quantile(&h, 1.0), v * 2);
	}
}

/* Absurd values (a clock jump) stay countable and do not overflow. */
static void test_huge_and_reset(void **state)
{
	struct util_lathist h = {0};

	(void)state;
	util_lathist_add(&h, UINT64_MAX / 4);
	util_lathist_add(&h, 5);
	assert_int_equal(h.n, 2);
	assert_int_equal(util_lathist_quantile(&h, 1.0), UINT64_MAX / 4);
	assert_int_equal(util_lathist_quantile(&h, 0.5), 5);
	util_lathist_reset(&h);
	assert_int_equal(h.n, 0);
	assert_int_equal(h.max_us, 0);
	assert_int_equal(util_lathist_quantile(&h, 0.99), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_empty),	   cmocka_unit_test(test_small_exact),
	    cmocka_unit_test(test_p99_and_max),	   cmocka_unit_test(test_precision),
	    cmocka_unit_test(test_huge_and_reset),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
