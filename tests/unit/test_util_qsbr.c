/* Unit tests for qsbr: a retired object is freed only once every reader
 * that could hold it went offline or came online again after the retire,
 * never before; objects are freed in the order they were retired; what is
 * still pending keeps that order across partial reclaims. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "sluice/qsbr.h"

/* The objects are small integers; freeing one appends it to the log. */
static int freed[128];
static size_t nfreed;

static void log_free(void *obj)
{
	assert_true(nfreed < 128);
	freed[nfreed++] = *(int *)obj;
}

static int objs[8] = {0, 1, 2, 3, 4, 5, 6, 7};

static int setup(void **state)
{
	(void)state;
	memset(freed, -1, sizeof(freed));
	nfreed = 0;
	return 0;
}

/* The log so far equals want[0..n-1]. */
static void assert_freed(const int *want, size_t n)
{
	assert_int_equal(nfreed, n);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(freed[i], want[i]);
}

static void test_no_reader_frees_at_once(void **state)
{
	struct qsbr q = {0};
	struct qsbr_reader r;

	(void)state;
	assert_int_equal(qsbr_add_reader(&q, &r), 0);
	/* a registered reader starts offline: it holds nothing */
	assert_int_equal(qsbr_retire(&q, &objs[1], log_free), 0);
	assert_int_equal(qsbr_reclaim(&q), 0);
	assert_freed((const int[]){1}, 1);
	qsbr_destroy(&q);
}

static void test_online_reader_holds_until_quiescent(void **state)
{
	struct qsbr q = {0};
	struct qsbr_reader r;

	(void)state;
	assert_int_equal(qsbr_add_reader(&q, &r), 0);
	qsbr_online(&q, &r); /* may now hold the object about to be retired */
	assert_int_equal(qsbr_retire(&q, &objs[1], log_free), 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(qsbr_reclaim(&q), 1);
	assert_int_equal(nfreed, 0);
	/* online again: it passed a quiescent state after the retire */
	qsbr_online(&q, &r);
	assert_int_equal(qsbr_reclaim(&q), 0);
	assert_freed((const int[]){1}, 1);
	qsbr_destroy(&q);
}

static void test_offline_reader_releases(void **state)
{
	struct qsbr q = {0};
	struct qsbr_reader r;

	(void)state;
	assert_int_equal(qsbr_add_reader(&q, &r), 0);
	qsbr_online(&q, &r);
	assert_int_equal(qsbr_retire(&q, &objs[2], log_free), 0);
	assert_int_equal(qsbr_reclaim(&q), 1);
	qsbr_offline(&r);
	assert_int_equal(qsbr_reclaim(&q), 0);
	assert_freed((const int[]){2}, 1);
	qsbr_destroy(&q);
}

/* Three objects retired one after the other, two readers that came online
 * at different moments: each object is freed exactly when the last reader
 * that could hold it has moved on, and in retire order. */
static void test_retire_order_and_reader_epochs(void **state)
{
	struct qsbr q = {0};
	struct qsbr_reader early, late;

	(void)state;
	assert_int_equal(qsbr_add_reader(&q, &early), 0);
	assert_int_equal(qsbr_add_reader(&q, &late), 0);
	qsbr_online(&q, &early); /* before A: may hold A, B and C */
	assert_int_equal(qsbr_retire(&q, &objs[0], log_free), 0); /* A */
	qsbr_online(&q, &late); /* after A: cannot hold A; may hold B and C */
	assert_int_equal(qsbr_retire(&q, &objs[1], log_free), 0); /* B */
	assert_int_equal(qsbr_retire(&q, &objs[2], log_free), 0); /* C */

	assert_int_equal(qsbr_reclaim(&q), 3);
	assert_int_equal(nfreed, 0);
	/* the early reader goes offline: only the late one is left, which
	 * came online after A but before B */
	qsbr_offline(&early);
	assert_int_equal(qsbr_reclaim(&q), 2);
	assert_freed((const int[]){0}, 1);
	/* the early reader comes back: it sees the current epoch, so it
	 * holds nothing retired so far and blocks nothing */
	qsbr_online(&q, &early);
	assert_int_equal(qsbr_reclaim(&q), 2);
	assert_freed((const int[]){0}, 1);
	/* the late reader passes a quiescent state: B and C, in that order */
	qsbr_online(&q, &late);
	assert_int_equal(qsbr_reclaim(&q), 0);
	assert_freed((const int[]){0, 1, 2}, 3);
	qsbr_destroy(&q);
}

/* A partial reclaim frees the head and keeps the rest in order; a retire
 * after it lands behind them. */
static void test_pending_keep_order(void **state)
{
	struct qsbr q = {0};
	struct qsbr_reader r1, r2;

	(void)state;
	assert_int_equal(qsbr_add_reader(&q, &r1), 0);
	assert_int_equal(qsbr_add_reader(&q, &r2), 0);
	qsbr_online(&q, &r1);
	assert_int_equal(qsbr_retire(&q, &objs[3], log_free), 0);
	assert_int_equal(qsbr_retire(&q, &objs[4], log_free), 0);
	qsbr_online(&q, &r2); /* after 3 and 4 */
	assert_int_equal(qsbr_retire(&q, &objs[5], log_free), 0);
	assert_int_equal(qsbr_retire(&q, &objs[6], log_free), 0);
	qsbr_online(&q, &r1); /* r1 moves on; r2 still may hold 5 and 6 */
	assert_int_equal(qsbr_reclaim(&q), 2);
	assert_freed((const int[]){3, 4}, 2);
	assert_int_equal(qsbr_retire(&q, &objs[7], log_free), 0);
	qsbr_online(&q, &r2);
	assert_int_equal(qsbr_reclaim(&q), 1); /* r1 came online before 7 */
	assert_freed((const int[]){3, 4, 5, 6}, 4);
	qsbr_offline(&r1);
	assert_int_equal(qsbr_reclaim(&q), 0);
	assert_freed((const int[]){3, 4, 5, 6, 7}, 5);
	qsbr_destroy(&q);
}

/* Many retires (the pending array grows several times) under a reader that
 * stays online: none freed; then all, in order. */
static void test_growth_keeps_everything(void **state)
{
	struct qsbr q = {0};
	struct qsbr_reader r;
	int many[100];

	(void)state;
	assert_int_equal(qsbr_add_reader(&q, &r), 0);
	qsbr_online(&q, &r);
	for (int i = 0; i < 100; i++) {
		many[i] = i;
		assert_int_equal(qsbr_retire(&q, &many[i], log_free), 0);
	}
	assert_int_equal(qsbr_reclaim(&q), 100);
	assert_int_equal(nfreed, 0);
	/* destroy (all readers stopped) frees what is pending, in order */
	qsbr_destroy(&q);
	assert_int_equal(nfreed, 100);
	for (int i = 0; i < 100; i++)
		assert_int_equal(freed[i], i);
}

/* A mark is passed once every reader online at it went offline or came
 * online again; one that came online after it does not hold it back. */
static void test_mark_passed(void **state)
{
	struct qsbr q = {0};
	struct qsbr_reader a, b;
	uint64_t m;

	(void)state;
	assert_int_equal(qsbr_add_reader(&q, &a), 0);
	assert_int_equal(qsbr_add_reader(&q, &b), 0);
	qsbr_online(&q, &a);
	m = qsbr_mark(&q);
	qsbr_online(&q, &b); /* after the mark: holds nothing from before */
	assert_false(qsbr_passed(&q, m));
	qsbr_offline(&a);
	assert_true(qsbr_passed(&q, m));
	qsbr_online(&q, &a);
	assert_true(qsbr_passed(&q, m));
	assert_false(qsbr_passed(&q, qsbr_mark(&q)));
	qsbr_destroy(&q);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_mark_passed),
	    cmocka_unit_test_setup(test_no_reader_frees_at_once, setup),
	    cmocka_unit_test_setup(test_online_reader_holds_until_quiescent, setup),
	    cmocka_unit_test_setup(test_offline_reader_releases, setup),
	    cmocka_unit_test_setup(test_retire_order_and_reader_epochs, setup),
	    cmocka_unit_test_setup(test_pending_keep_order, setup),
	    cmocka_unit_test_setup(test_growth_keeps_everything, setup),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
