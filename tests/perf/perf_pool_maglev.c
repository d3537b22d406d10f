/* perf_pool_maglev: CPU time and memory of Maglev table builds through
 * pool_publish(), as the control thread does them: the first publish of a
 * pool (base table + refill), a server coming back up (refill only) and a
 * weight change (new base); and the memory the pool keeps (base tables)
 * and each snapshot holds. Prints medians and the spread over the repeats; the
 * machine's load shows in wall time, so the figure is the thread's CPU
 * time. Not a test: nothing is asserted. `make perf-maglev`. */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sluice/pool.h"
#include "sluice/util.h"

static struct qsbr q;

static double cpu_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static size_t heap_bytes(void)
{
	return mallinfo2().uordblks;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* "median (min-max)" of v[0..n-1], sorted in place. */
static void summary(double *v, int n, char *buf, size_t len)
{
	size_t off = 0;

	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	util_bufprintf(buf, len, &off, "%8.2f (%.2f-%.2f)", v[n / 2], v[0], v[n - 1]);
}

static struct pool *make_pool(size_t n, uint32_t m)
{
	struct pool *p = pool_new("web");
	struct util_addr a;
	char err[64];

	if (p == NULL || util_addr_parse("127.0.0.1:9", false, &a, err, sizeof(err)) < 0)
		abort();
	p->balance = POOL_BALANCE_MAGLEV;
	p->maglev_size = m;
	for (size_t i = 0; i < n; i++) {
		char name[24];
		size_t off = 0;
		struct pool_server *s;

		util_bufprintf(name, sizeof(name), &off, "srv-%05zu", (i * 7919) % n);
		s = pool_server_new(name, &a);
		if (s == NULL || pool_add_server(p, s) < 0)
			abort();
	}
	return p;
}

#define REPEATS_MAX 101

int main(int argc, char **argv)
{
	static const size_t sizes[] = { 1, 100, 10000 };
	uint32_t m = argc > 1 ? (uint32_t)strtoul(argv[1], NULL, 10) : POOL_MAGLEV_SIZE_DEFAULT;
	int reps = argc > 2 ? atoi(argv[2]) : 11;
	double first[REPEATS_MAX], health[REPEATS_MAX], weight[REPEATS_MAX];

	if (!util_is_prime(m) || reps < 1 || reps > REPEATS_MAX) {
		fprintf(stderr, "usage: perf_pool_maglev [PRIME_SLOTS [REPEATS<=%d]]\n",
			REPEATS_MAX);
		return 2;
	}
	pool_set_qsbr(&q);
	printf("maglev-table %u, %d repeats; CPU ms median (min-max)\n", m, reps);
	printf("%8s %24s %24s %24s %12s %12s\n", "servers", "first publish", "server back up",
	       "weight change", "pool KiB", "snapshot KiB");
	for (size_t k = 0; k < UTIL_ARRAY_LEN(sizes); k++) {
		size_t n = sizes[k], pool_kib = 0, snap_kib = 0, h0, h1, h2;
		char b1[48], b2[48], b3[48];

		for (int r = 0; r < reps; r++) {
			struct pool *p = make_pool(n, m);
			double t0, t1;

			h0 = heap_bytes();
			t0 = cpu_ms();
			if (pool_publish(p) < 0)
				abort();
			first[r] = cpu_ms() - t0;
			h1 = heap_bytes();
			/* a server down and up again: the second publish refills
			 * the same base (also with a single server) */
			pool_server_set_health(p->servers[n / 2], POOL_SRC_CHECK, false, "perf", 1);
			pool_publish(p);
			pool_server_set_health(p->servers[n / 2], POOL_SRC_CHECK, true, "perf", 2);
			t1 = cpu_ms();
			pool_publish(p);
			health[r] = cpu_ms() - t1;
			qsbr_reclaim(&q);
			/* a weight: a new base table (the old one freed) */
			h2 = heap_bytes();
			p->servers[n / 2]->weight = 2;
			t1 = cpu_ms();
			pool_publish(p);
			weight[r] = cpu_ms() - t1;
			/* the old snapshot waits for reclaim: the heap grew by one */
			snap_kib = (heap_bytes() - h2) / 1024;
			pool_kib = (h1 - h0) / 1024 - snap_kib;
			qsbr_reclaim(&q);
			pool_retire(p);
			qsbr_reclaim(&q);
			pool_put(p);
		}
		summary(first, reps, b1, sizeof(b1));
		summary(health, reps, b2, sizeof(b2));
		summary(weight, reps, b3, sizeof(b3));
		printf("%8zu %24s %24s %24s %12zu %12zu\n", n, b1, b2, b3, pool_kib, snap_kib);
	}
	qsbr_destroy(&q);
	return 0;
}
