/* Unit test for balance_swrr_build: the cycle it builds by taking turns
 * within each weight is exactly nginx's smooth weighted round-robin, as
 * computed the plain way (every server scanned at every step), for many
 * weight sets; and a pool of 100 000 equal servers gets its cycle without
 * the plain way's 10^10 steps (checked by its content, not by a clock). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sluice/balance.h"
#include "sluice/util.h"

#define MAX_CYCLE 16384 /* as balance.c */

static uint32_t gcd(uint32_t a, uint32_t b)
{
	while (b != 0) {
		uint32_t t = a % b;

		a = b;
		b = t;
	}
	return a;
}

/* The reference: the scaling of balance.c, then O(total x n) steps. */
static size_t reference(const uint32_t *weights, size_t n, uint32_t *out)
{
	uint32_t *w = calloc(n, sizeof(*w)), g = 0;
	int64_t *cur = calloc(n, sizeof(*cur));
	uint64_t total = 0;

	for (size_t i = 0; i < n; i++)
		if (weights[i] > 0)
			g = gcd(g, weights[i]);
	for (size_t i = 0; i < n && g > 0; i++) {
		w[i] = weights[i] / g;
		total += w[i];
	}
	if (total > MAX_CYCLE) {
		uint64_t t2 = 0;

		for (size_t i = 0; i < n; i++) {
			if (w[i] > 0)
				w[i] = (uint32_t)UTIL_MAX(1, (uint64_t)w[i] * MAX_CYCLE / total);
			t2 += w[i];
		}
		total = t2;
	}
	for (size_t k = 0; k < total; k++) {
		size_t best = 0;

		for (size_t i = 0; i < n; i++) {
			cur[i] += w[i];
			if (w[i] > 0 && (w[best] == 0 || cur[i] > cur[best]))
				best = i;
		}
		cur[best] -= (int64_t)total;
		out[k] = (uint32_t)best;
	}
	free(w);
	free(cur);
	return (size_t)total;
}

static void check_same(const uint32_t *w, size_t n)
{
	uint32_t *want = malloc((MAX_CYCLE + n + 1) * sizeof(*want)), *got;
	size_t nwant = reference(w, n, want), ngot;

	assert_int_equal(balance_swrr_build(w, n, &got, &ngot), 0);
	assert_int_equal(ngot, nwant);
	if (nwant > 0)
		assert_memory_equal(got, want, nwant * sizeof(*got));
	free(got);
	free(want);
}

static void test_same_as_plain_swrr(void **state)
{
	static const uint32_t fixed[][6] = {
	    {5, 1, 1},		{1, 1, 1, 1}, {0, 3, 0, 2},	      {7, 7, 3, 3, 3, 1},
	    {4096, 16, 16, 32}, {0, 0, 0, 0}, {256, 1, 256, 1, 2, 2},
	};
	uint64_t rng = 0x9e3779b97f4a7c15ull;

	(void)state;
	for (size_t t = 0; t < UTIL_ARRAY_LEN(fixed); t++)
		check_same(fixed[t], 6);
	/* random sets: few and many servers, few and many distinct weights,
	 * with and without the cycle cap */
	for (int round = 0; round < 230; round++) {
		size_t n = 1 + util_rand64(&rng) % (round < 200 ? 40 : 3000);
		uint32_t spread = round % 3 == 0 ? 3 : (round % 3 == 1 ? 64 : 4097);
		uint32_t *w = malloc(n * sizeof(*w));

		for (size_t i = 0; i < n; i++)
			w[i] = (uint32_t)(util_rand64(&rng) % spread) * (round % 5 == 0 ? 16 : 1);
		check_same(w, n);
		free(w);
	}
}

static void test_large_pool(void **state)
{
	enum { N = 100000 };
	uint32_t *w = malloc(N * sizeof(*w)), *seq;
	size_t len;

	(void)state;
	for (size_t i = 0; i < N; i++)
		w[i] = 16; /* weight 1 in snapshot units */
	assert_int_equal(balance_swrr_build(w, N, &seq, &len), 0);
	/* every server once (the cycle cap never takes a server out) */
	assert_int_equal(len, N);
	{
		uint32_t *seen = calloc(N, sizeof(*seen));

		for (size_t k = 0; k < len; k++)
			seen[seq[k]]++;
		for (size_t i = 0; i < N; i++)
			assert_int_equal(seen[i], 1);
		free(seen);
	}
	free(seq);
	free(w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_same_as_plain_swrr),
	    cmocka_unit_test(test_large_pool),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
