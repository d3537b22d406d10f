/* lathist: a fixed-size log-linear histogram of durations in microseconds,
 * for the control loop's own lateness (checks and VRRP adverts that start
 * after their due time). Pure: the caller measures, this only counts.
 * Invariant: n is the sum of count[], max_us the largest value added. */
#include <string.h>

#include "sluice/util.h"

/* Bucket of v: below SUB, v itself; above, the octave of its top bit and
 * the next log2(SUB) bits below it. */
static size_t bucket_of(uint64_t v)
{
	unsigned top, shift;
	size_t b;

	if (v < UTIL_LATHIST_SUB)
		return (size_t)v;
	top = 63u - (unsigned)__builtin_clzll(v); /* >= log2(SUB) */
	shift = top - 3u;			  /* keep 3 bits: SUB = 8 */
	b = (size_t)(top - 2u) * UTIL_LATHIST_SUB + (size_t)((v >> shift) & (UTIL_LATHIST_SUB - 1));
	return b < UTIL_LATHIST_BUCKETS ? b : UTIL_LATHIST_BUCKETS - 1;
}

/* Largest value that falls in bucket b. */
static uint64_t bucket_top(size_t b)
{
	size_t octave = b / UTIL_LATHIST_SUB, sub = b % UTIL_LATHIST_SUB;
	unsigned shift;

	if (octave == 0)
		return (uint64_t)b;
	shift = (unsigned)octave - 1u;
	return (((uint64_t)(UTIL_LATHIST_SUB + sub) + 1u) << shift) - 1u;
}

void util_lathist_reset(struct util_lathist *h)
{
	memset(h, 0, sizeof(*h));
}

void util_lathist_add(struct util_lathist *h, uint64_t us)
{
	h->count[bucket_of(us)]++;
	h->n++;
	h->sum_us += us;
	if (us > h->max_us)
		h->max_us = us;
}

uint64_t util_lathist_quantile(const struct util_lathist *h, double q)
{
	uint64_t rank, seen = 0;

	if (h->n == 0)
		return 0;
	/* the smallest value with at least q*n values at or below it */
	rank = (uint64_t)(q * (double)h->n + 0.999999);
	if (rank == 0)
		rank = 1;
	if (rank > h->n)
		rank = h->n;
	for (size_t b = 0; b < UTIL_LATHIST_BUCKETS; b++) {
		seen += h->count[b];
		if (seen >= rank) {
			/* the last bucket also holds everything above it */
			uint64_t top = b + 1 < UTIL_LATHIST_BUCKETS ? bucket_top(b) : h->max_us;

			return top < h->max_us ? top : h->max_us;
		}
	}
	return h->max_us;
}

void util_lathist_summarize(const struct util_lathist *h, struct util_lathist_summary *out)
{
	out->n = h->n;
	out->p50_us = util_lathist_quantile(h, 0.5);
	out->p99_us = util_lathist_quantile(h, 0.99);
	out->max_us = h->max_us;
	out->sum_us = h->sum_us;
}
