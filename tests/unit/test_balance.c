/* Unit tests for balance: distributions follow weights, least connections
 * and two-choices prefer the less loaded, Maglev moves few clients when a
 * server goes and shares the table by weight. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sluice/balance.h"
#include "sluice/util.h"

struct fake {
	bool up[64];
	uint32_t load[64];
};

static bool usable(void *arg, size_t i)
{
	return ((struct fake *)arg)->up[i];
}

static uint32_t load(void *arg, size_t i)
{
	return ((struct fake *)arg)->load[i];
}

static void all_up(struct fake *f)
{
	memset(f, 0, sizeof(*f));
	for (size_t i = 0; i < 64; i++)
		f->up[i] = true;
}

static void test_swrr_weights(void **state)
{
	const uint32_t w[] = { 5, 1, 1, 0 };
	uint32_t *seq, count[4] = { 0 };
	size_t len;
	struct fake f;

	(void)state;
	all_up(&f);
	assert_int_equal(balance_swrr_build(w, 4, &seq, &len), 0);
	assert_int_equal(len, 7);
	for (uint32_t i = 0; i < 700; i++)
		count[balance_pick_seq(seq, len, i, usable, &f)]++;
	assert_int_equal(count[0], 500);
	assert_int_equal(count[1], 100);
	assert_int_equal(count[2], 100);
	assert_int_equal(count[3], 0);
	/* smooth: the heavy server never takes more than 3 in a row here */
	for (size_t i = 0; i + 3 < len; i++)
		assert_false(seq[i] == 0 && seq[i + 1] == 0 && seq[i + 2] == 0 && seq[i + 3] == 0);
	/* an unusable server is skipped and its turns go to the next usable
	 * entries of the cycle (only roughly even: the snapshot drops a server
	 * that stays down, this covers a full or already-tried one) */
	f.up[0] = false;
	memset(count, 0, sizeof(count));
	for (uint32_t i = 0; i < 700; i++)
		count[balance_pick_seq(seq, len, i, usable, &f)]++;
	assert_int_equal(count[0], 0);
	assert_int_equal(count[1] + count[2], 700);
	assert_true(count[1] >= 200 && count[2] >= 200);
	free(seq);
}

static void test_swrr_gcd_and_cap(void **state)
{
	const uint32_t w[] = { 200, 100 };
	uint32_t big[200], *seq;
	size_t len;

	(void)state;
	assert_int_equal(balance_swrr_build(w, 2, &seq, &len), 0);
	assert_int_equal(len, 3); /* divided by the gcd */
	free(seq);
	for (size_t i = 0; i < 200; i++)
		big[i] = 256 - (uint32_t)(i % 2);
	assert_int_equal(balance_swrr_build(big, 200, &seq, &len), 0);
	assert_true(len <= 16384 && len >= 200);
	free(seq);
	assert_int_equal(balance_swrr_build((const uint32_t[]){ 0, 0 }, 2, &seq, &len), 0);
	assert_null(seq);
	assert_int_equal(len, 0);
}

static void test_leastconn(void **state)
{
	const uint32_t w[] = { 1, 1, 2 };
	struct fake f;

	(void)state;
	all_up(&f);
	f.load[0] = 5;
	f.load[1] = 2;
	f.load[2] = 4; /* (4+1)/2 = 2.5 < (2+1)/1 = 3 */
	assert_int_equal(balance_pick_leastconn(w, 3, 0, load, usable, &f), 2);
	f.load[2] = 6;
	assert_int_equal(balance_pick_leastconn(w, 3, 0, load, usable, &f), 1);
	f.up[1] = false;
	assert_int_equal(balance_pick_leastconn(w, 3, 0, load, usable, &f), 2);
	/* equal servers take turns with the start offset */
	memset(f.load, 0, sizeof(f.load));
	f.up[1] = true;
	assert_int_equal(balance_pick_leastconn((const uint32_t[]){ 1, 1 }, 2, 0, load, usable, &f),
			 0);
	assert_int_equal(balance_pick_leastconn((const uint32_t[]){ 1, 1 }, 2, 1, load, usable, &f),
			 1);
	memset(f.up, 0, sizeof(f.up));
	assert_int_equal(balance_pick_leastconn(w, 3, 0, load, usable, &f), BALANCE_NONE);
}

static void test_p2c_follows_weights(void **state)
{
	const uint32_t w[] = { 3, 1 };
	uint64_t cum[2], rng = 42;
	uint32_t count[2] = { 0 };
	struct fake f;

	(void)state;
	all_up(&f);
	balance_cumulative(w, 2, cum);
	/* equal load: the draw decides, so the split follows the weights */
	for (int i = 0; i < 40000; i++)
		count[balance_pick_p2c(cum, w, 2, &rng, load, usable, &f)]++;
	/* equal load is a tie, won by the first draw: P(server 1) = 1/4 */
	assert_true(count[1] > 40000 * 0.22 && count[1] < 40000 * 0.28);
	/* a loaded server loses the comparison */
	f.load[0] = 100;
	memset(count, 0, sizeof(count));
	for (int i = 0; i < 1000; i++)
		count[balance_pick_p2c(cum, w, 2, &rng, load, usable, &f)]++;
	assert_true(count[1] > count[0]);
	f.up[0] = f.up[1] = false;
	assert_int_equal(balance_pick_p2c(cum, w, 2, &rng, load, usable, &f), BALANCE_NONE);
}

static void maglev_for(size_t n, const uint32_t *w, int32_t **table, uint32_t *m)
{
	uint64_t keys[64];

	for (size_t i = 0; i < n; i++) {
		char name[16];
		size_t off = 0;

		util_bufprintf(name, sizeof(name), &off, "srv%zu", i);
		keys[i] = util_hash64(name, strlen(name), 0);
	}
	*m = balance_maglev_size(n);
	*table = malloc(*m * sizeof(**table));
	assert_int_equal(balance_maglev_build(keys, w, n, *m, *table), 0);
}

static void test_maglev_shares(void **state)
{
	uint32_t w[10], count[10] = { 0 }, m;
	int32_t *t;

	(void)state;
	for (size_t i = 0; i < 10; i++)
		w[i] = 1;
	maglev_for(10, w, &t, &m);
	for (uint32_t j = 0; j < m; j++)
		count[t[j]]++;
	for (size_t i = 0; i < 10; i++) {
		/* within 3% of the fair share */
		assert_true(count[i] > m / 10 * 0.97 && count[i] < m / 10 * 1.03 + 1);
	}
	free(t);
	/* weights 2:1 give 2:1 of the table */
	w[0] = 2;
	maglev_for(2, w, &t, &m);
	memset(count, 0, sizeof(count));
	for (uint32_t j = 0; j < m; j++)
		count[t[j]]++;
	assert_true(count[0] > count[1] * 1.9 && count[0] < count[1] * 2.1);
	free(t);
}

static void test_maglev_disruption(void **state)
{
	/* remove server 3 of 10: by name keys, so the others keep their keys */
	uint32_t w[10], m1, m2;
	uint64_t keys[10];
	int32_t *t1, *t2;
	uint32_t moved = 0, clients = 20000;
	struct fake f;

	(void)state;
	all_up(&f);
	for (size_t i = 0; i < 10; i++)
		w[i] = 1;
	maglev_for(10, w, &t1, &m1);
	/* same servers without srv3: the key list skips it, indices shift */
	for (size_t i = 0, k = 0; i < 10; i++) {
		char name[16];
		size_t off = 0;

		if (i == 3)
			continue;
		util_bufprintf(name, sizeof(name), &off, "srv%zu", i);
		keys[k++] = util_hash64(name, strlen(name), 0);
	}
	m2 = balance_maglev_size(9);
	assert_int_equal(m1, m2);
	t2 = malloc(m2 * sizeof(*t2));
	assert_int_equal(balance_maglev_build(keys, w, 9, m2, t2), 0);
	for (uint32_t c = 0; c < clients; c++) {
		uint64_t h = util_hash64(&c, sizeof(c), 7);
		size_t a = balance_pick_maglev(t1, m1, h, usable, &f);
		size_t b = balance_pick_maglev(t2, m2, h, usable, &f);
		size_t b_orig = b >= 3 ? b + 1 : b; /* back to the 10-server index */

		if (a != b_orig)
			moved++;
	}
	/* 1/10 must move (srv3's clients); allow a small margin for the rest */
	assert_true(moved >= clients / 10 * 0.9);
	assert_true(moved <= clients / 10 + clients * 0.03);
	free(t1);
	free(t2);
}

static void test_maglev_fallback_stable(void **state)
{
	uint32_t w[4] = { 1, 1, 1, 1 }, m;
	int32_t *t;
	struct fake f;
	uint64_t h = 12345;
	size_t first, second;

	(void)state;
	all_up(&f);
	maglev_for(4, w, &t, &m);
	first = balance_pick_maglev(t, m, h, usable, &f);
	f.up[first] = false;
	second = balance_pick_maglev(t, m, h, usable, &f);
	assert_int_not_equal(first, second);
	assert_int_equal(balance_pick_maglev(t, m, h, usable, &f), second);
	memset(f.up, 0, sizeof(f.up));
	assert_int_equal(balance_pick_maglev(t, m, h, usable, &f), BALANCE_NONE);
	free(t);
}

static void test_first(void **state)
{
	struct fake f;

	(void)state;
	all_up(&f);
	assert_int_equal(balance_pick_first(3, usable, &f), 0);
	f.up[0] = false;
	assert_int_equal(balance_pick_first(3, usable, &f), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_swrr_weights),	cmocka_unit_test(test_swrr_gcd_and_cap),
		cmocka_unit_test(test_leastconn),	cmocka_unit_test(test_p2c_follows_weights),
		cmocka_unit_test(test_maglev_shares),	cmocka_unit_test(test_maglev_disruption),
		cmocka_unit_test(test_maglev_fallback_stable), cmocka_unit_test(test_first),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
