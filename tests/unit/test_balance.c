/* Unit tests for balance: distributions follow weights, least connections
 * and two-choices prefer the less loaded; Maglev shares its table by weight,
 * a member down moves only its own slots at every server count, a removed
 * one few others, and slow start only adds slots to the ramping member. */
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
	const uint32_t w[] = {5, 1, 1, 0};
	uint32_t *seq, count[4] = {0};
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
	const uint32_t w[] = {200, 100};
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
	assert_int_equal(balance_swrr_build((const uint32_t[]){0, 0}, 2, &seq, &len), 0);
	assert_null(seq);
	assert_int_equal(len, 0);
}

static void test_leastconn(void **state)
{
	const uint32_t w[] = {1, 1, 2};
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
	assert_int_equal(balance_pick_leastconn((const uint32_t[]){1, 1}, 2, 0, load, usable, &f),
			 0);
	assert_int_equal(balance_pick_leastconn((const uint32_t[]){1, 1}, 2, 1, load, usable, &f),
			 1);
	memset(f.up, 0, sizeof(f.up));
	assert_int_equal(balance_pick_leastconn(w, 3, 0, load, usable, &f), BALANCE_NONE);
}

static void test_p2c_follows_weights(void **state)
{
	const uint32_t w[] = {3, 1};
	uint64_t cum[2], rng = 42;
	uint32_t count[2] = {0};
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

#define MAGLEV_M 65537

static uint64_t maglev_key(size_t i)
{
	char name[16];
	size_t off = 0;

	util_bufprintf(name, sizeof(name), &off, "srv%zu", i);
	return util_hash64(name, strlen(name), 0);
}

/* Base table of members srv0..srv<n-1> with weights w (all 16 when NULL). */
static int32_t *maglev_base(size_t n, const uint32_t *w, uint32_t m)
{
	uint64_t keys[64];
	uint32_t ones[64];
	int32_t *t = malloc(m * sizeof(*t));

	assert_non_null(t);
	for (size_t i = 0; i < n; i++) {
		keys[i] = maglev_key(i);
		ones[i] = 16;
	}
	assert_int_equal(balance_maglev_build(keys, w != NULL ? w : ones, n, m, t), 0);
	return t;
}

static void count_slots(const int32_t *t, uint32_t m, uint32_t *count, size_t n)
{
	memset(count, 0, n * sizeof(*count));
	for (uint32_t j = 0; j < m; j++) {
		assert_true(t[j] >= 0 && (size_t)t[j] < n);
		count[t[j]]++;
	}
}

static void test_maglev_shares(void **state)
{
	uint32_t w[10], count[12];
	int32_t *t;

	(void)state;
	for (size_t i = 0; i < 10; i++)
		w[i] = 1;
	t = maglev_base(10, w, MAGLEV_M);
	count_slots(t, MAGLEV_M, count, 10);
	for (size_t i = 0; i < 10; i++) /* within 1% of the fair share */
		assert_true(count[i] > MAGLEV_M / 10 * 0.99 && count[i] < MAGLEV_M / 10 * 1.01);
	free(t);
	/* weights 2:1 give 2:1 of the table; weight 0 none */
	w[0] = 2;
	w[2] = 0;
	t = maglev_base(3, w, MAGLEV_M);
	count_slots(t, MAGLEV_M, count, 3);
	assert_true(count[0] > count[1] * 1.98 && count[0] < count[1] * 2.02);
	assert_int_equal(count[2], 0);
	free(t);
	/* more members than slots: the first m take one each */
	t = maglev_base(12, NULL, 11);
	count_slots(t, 11, count, 12);
	for (size_t i = 0; i < 11; i++)
		assert_int_equal(count[i], 1);
	assert_int_equal(count[11], 0);
	free(t);
}

/* One of n members down, for every n from 2 to 40 (three of them each): every
 * slot of another member keeps its owner (so do its clients), and the
 * down member's slots spread over the others by their shares. The size
 * never changes, so there is no boundary where everybody moves. */
static void test_maglev_down_moves_only_its_slots(void **state)
{
	int32_t *out = malloc(MAGLEV_M * sizeof(*out));
	uint64_t keys[40];
	uint32_t full[40], cur[40], count[40];

	(void)state;
	for (size_t i = 0; i < 40; i++) {
		keys[i] = maglev_key(i);
		full[i] = 16;
	}
	for (size_t n = 2; n <= 40; n++) {
		int32_t *base = maglev_base(n, NULL, MAGLEV_M);
		const size_t some[3] = {0, n / 2, n - 1}; /* first, middle, last */

		for (size_t k = 0; k < 3; k++) {
			double fair = (double)MAGLEV_M / (double)(n - 1);
			size_t r = some[k];

			if (k > 0 && r == some[k - 1])
				continue;
			for (size_t i = 0; i < n; i++)
				cur[i] = i == r ? 0 : 16;
			assert_int_equal(
			    balance_maglev_refill(base, MAGLEV_M, keys, cur, full, out), 0);
			for (uint32_t j = 0; j < MAGLEV_M; j++) {
				if (base[j] != (int32_t)r)
					assert_int_equal(out[j], base[j]);
				else
					assert_int_not_equal(out[j], (int32_t)r);
			}
			count_slots(out, MAGLEV_M, count, n);
			for (size_t i = 0; i < n; i++) {
				if (i == r)
					continue;
				assert_true(count[i] > fair * 0.97 && count[i] < fair * 1.03);
			}
		}
		free(base);
	}
	free(out);
}

/* One down, then three: the newly down ones' slots move, and of the
 * first one's only those they had taken; with nobody left there is
 * nothing to refill with. (One down of ten refills slot by slot, three
 * down in one pass over the whole order: the two ways must agree.) */
static void test_maglev_refill_is_per_slot(void **state)
{
	int32_t *base = maglev_base(10, NULL, MAGLEV_M);
	int32_t *one = malloc(MAGLEV_M * sizeof(*one)), *three = malloc(MAGLEV_M * sizeof(*three));
	uint64_t keys[10];
	uint32_t full[10], cur[10], moved = 0;

	(void)state;
	for (size_t i = 0; i < 10; i++) {
		keys[i] = maglev_key(i);
		full[i] = cur[i] = 16;
	}
	cur[3] = 0;
	assert_int_equal(balance_maglev_refill(base, MAGLEV_M, keys, cur, full, one), 0);
	cur[7] = cur[8] = 0;
	assert_int_equal(balance_maglev_refill(base, MAGLEV_M, keys, cur, full, three), 0);
	for (uint32_t j = 0; j < MAGLEV_M; j++) {
		if (one[j] != 7 && one[j] != 8)
			assert_int_equal(three[j], one[j]);
		assert_true(three[j] != 3 && three[j] != 7 && three[j] != 8);
		moved += base[j] == 3 && three[j] != one[j];
	}
	assert_true(moved > 0 && moved < MAGLEV_M / 10 / 4); /* about 2/9 of 3's slots */
	/* all gone: nothing to refill with */
	memset(cur, 0, sizeof(cur));
	assert_int_equal(balance_maglev_refill(base, MAGLEV_M, keys, cur, full, three), -1);
	assert_int_equal(three[0], -1);
	free(base);
	free(one);
	free(three);
}

/* A member removed from the configuration (not just down): the base table
 * is rebuilt without it at the same size. Its slots move, and Maglev moves
 * a few others too; for n = 2..40 at 65537 slots that is at most 0.55% of
 * the other members' slots (measured), bound here at 1%. */
static void test_maglev_removed_member_bound(void **state)
{
	uint64_t keys[40];
	uint32_t w[40];
	int32_t *after = malloc(MAGLEV_M * sizeof(*after));

	(void)state;
	for (size_t i = 0; i < 40; i++)
		w[i] = 16;
	for (size_t n = 2; n <= 40; n++) {
		int32_t *base = maglev_base(n, NULL, MAGLEV_M);

		for (size_t r = 0; r < n; r += n - 1) { /* the first and the last */
			uint32_t moved = 0, others = 0;

			for (size_t i = 0, k = 0; i < n; i++)
				if (i != r)
					keys[k++] = maglev_key(i);
			assert_int_equal(balance_maglev_build(keys, w, n - 1, MAGLEV_M, after), 0);
			for (uint32_t j = 0; j < MAGLEV_M; j++) {
				/* back to the numbering with r */
				int32_t o = after[j] >= (int32_t)r ? after[j] + 1 : after[j];

				if (base[j] == (int32_t)r)
					continue;
				others++;
				moved += o != base[j];
			}
			assert_true(moved <= others / 100);
		}
		free(base);
	}
	free(after);
}

/* Slow start: a ramping member keeps a growing share of its own slots, a
 * superset at each step, and the slots it does not keep go to the others
 * as when it is down: nobody else's clients move while it ramps. */
static void test_maglev_ramp_only_adds(void **state)
{
	int32_t *base = maglev_base(8, NULL, MAGLEV_M);
	int32_t *prev = malloc(MAGLEV_M * sizeof(*prev)), *out = malloc(MAGLEV_M * sizeof(*out));
	uint64_t keys[8];
	uint32_t full[8], cur[8], count[8];

	(void)state;
	for (size_t i = 0; i < 8; i++) {
		keys[i] = maglev_key(i);
		full[i] = cur[i] = 16;
	}
	cur[5] = 0;
	assert_int_equal(balance_maglev_refill(base, MAGLEV_M, keys, cur, full, prev), 0);
	for (uint32_t w = 1; w <= 16; w++) {
		cur[5] = w;
		assert_int_equal(balance_maglev_refill(base, MAGLEV_M, keys, cur, full, out), 0);
		count_slots(out, MAGLEV_M, count, 8);
		for (uint32_t j = 0; j < MAGLEV_M; j++) {
			/* a slot changes owner only towards the ramping member */
			if (out[j] != prev[j])
				assert_int_equal(out[j], 5);
			if (prev[j] == 5)
				assert_int_equal(out[j], 5);
		}
		/* its share follows its weight among those present: w/16 of
		 * a full member's (within 10%: it keeps a random w/16 of its
		 * slots and takes the refills before them) */
		{
			double want = MAGLEV_M * (w / 16.0) / (7 + w / 16.0);

			assert_true(count[5] > want * 0.9 && count[5] < want * 1.1);
		}
		memcpy(prev, out, MAGLEV_M * sizeof(*out));
	}
	/* at full weight the table is the base again */
	assert_memory_equal(out, base, MAGLEV_M * sizeof(*out));
	free(base);
	free(prev);
	free(out);
}

static void test_maglev_fallback_stable(void **state)
{
	int32_t *t = maglev_base(40, NULL, MAGLEV_M);
	struct fake f;
	uint64_t h = 12345;
	size_t first, second;

	(void)state;
	all_up(&f);
	first = balance_pick_maglev(t, MAGLEV_M, 40, h, usable, &f);
	assert_int_equal(first, (size_t)t[h % MAGLEV_M]);
	f.up[first] = false;
	second = balance_pick_maglev(t, MAGLEV_M, 40, h, usable, &f);
	assert_int_not_equal(first, second);
	assert_int_equal(balance_pick_maglev(t, MAGLEV_M, 40, h, usable, &f), second);
	/* one usable server of 40: found whether or not the probes meet it */
	memset(f.up, 0, sizeof(f.up));
	f.up[17] = true;
	for (uint64_t c = 0; c < 1000; c++)
		assert_int_equal(balance_pick_maglev(t, MAGLEV_M, 40, c, usable, &f), 17);
	f.up[17] = false;
	assert_int_equal(balance_pick_maglev(t, MAGLEV_M, 40, h, usable, &f), BALANCE_NONE);
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
	    cmocka_unit_test(test_swrr_weights),
	    cmocka_unit_test(test_swrr_gcd_and_cap),
	    cmocka_unit_test(test_leastconn),
	    cmocka_unit_test(test_p2c_follows_weights),
	    cmocka_unit_test(test_maglev_shares),
	    cmocka_unit_test(test_maglev_down_moves_only_its_slots),
	    cmocka_unit_test(test_maglev_refill_is_per_slot),
	    cmocka_unit_test(test_maglev_removed_member_bound),
	    cmocka_unit_test(test_maglev_ramp_only_adds),
	    cmocka_unit_test(test_maglev_fallback_stable),
	    cmocka_unit_test(test_first),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
