/* Measurement (not a test): the cost of a deny list of N distinct prefixes
 * (default 1 000 000; IPv4, or IPv6 with -6) as guard loads it: the text
 * parsed into a builder, the table built, its size, and lookups of random
 * addresses (ns each), each the median of REPEATS rounds, in CPU time of
 * the measuring thread. The text is generated in memory, as a file of the
 * same lines would be read.
 *   make perf-guard PERF_ARGS="1000000 5"   (N, repeats; -6 for IPv6) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sluice/guard.h"
#include "sluice/util.h"

/* CPU time of this thread: the machine may be shared, and time spent
 * waiting for a CPU is not the table's. */
static uint64_t cpu_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* N lines of distinct prefixes: /16 to /32 for IPv4, /32 to /64 for IPv6. */
static char *make_text(size_t n, bool v6, size_t *len, uint64_t *rng)
{
	size_t cap = n * 48 + 1, off = 0;
	char *t = malloc(cap);

	if (t == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		uint64_t r = util_rand64(rng);

		if (!v6) {
			unsigned plen = 16 + (unsigned)(r % 17);
			/* i spread over the space keeps the lines distinct */
			uint32_t a = (uint32_t)(i * 2654435761u) ^ (uint32_t)(r >> 32);

			a &= plen == 0 ? 0 : 0xffffffffu << (32 - plen);
			off += (size_t)snprintf(t + off, cap - off, "%u.%u.%u.%u/%u\n", a >> 24,
						(a >> 16) & 255, (a >> 8) & 255, a & 255, plen);
		} else {
			unsigned plen = 32 + (unsigned)(r % 33);
			uint64_t hi = (0x20010db8ull << 32 | (uint64_t)(uint32_t)(i * 2654435761u)) &
				      (~0ull << (64 - plen));

			off += (size_t)snprintf(t + off, cap - off, "%x:%x:%x:%x::/%u\n",
						(unsigned)(hi >> 48), (unsigned)(hi >> 32) & 0xffff,
						(unsigned)(hi >> 16) & 0xffff, (unsigned)hi & 0xffff,
						plen);
		}
	}
	*len = off;
	return t;
}

int main(int argc, char **argv)
{
	bool v6 = argc > 1 && strcmp(argv[1], "-6") == 0;
	size_t n = argc > 1 + v6 ? strtoul(argv[1 + v6], NULL, 10) : 1000000;
	int repeats = argc > 2 + v6 ? atoi(argv[2 + v6]) : 5;
	uint64_t rng = 0x2545f4914f6cdd1dull, parse_us[32], build_us[32], look_ns[32];
	size_t len = 0, count = 0, mem = 0;
	char *text;

	if (repeats < 1 || repeats > 32 || n == 0) {
		fprintf(stderr, "usage: perf_guard_lpm [-6] [N] [REPEATS 1-32]\n");
		return 2;
	}
	text = make_text(n, v6, &len, &rng);
	if (text == NULL)
		return 1;
	for (int r = 0; r < repeats; r++) {
		struct guard_lpm_builder *b = guard_lpm_builder_new();
		struct guard_lpm *t;
		char err[256];
		uint64_t t0 = cpu_us(), t1, t2;
		enum guard_action act;
		int hits = 0;

		if (b == NULL ||
		    guard_file_parse(b, "perf", text, len, GUARD_DENY, NULL, err, sizeof(err)) < 0) {
			fprintf(stderr, "parse: %s\n", b == NULL ? "no memory" : err);
			return 1;
		}
		t1 = cpu_us();
		t = guard_lpm_build(b);
		t2 = cpu_us();
		if (t == NULL)
			return 1;
		count = guard_lpm_count(t);
		mem = guard_lpm_memory(t);
		parse_us[r] = t1 - t0;
		build_us[r] = t2 - t1;
		{
			enum { L = 2000000 };
			struct util_addr a = { 0 };
			uint64_t l0, l1;

			if (v6) {
				a.u.in6.sin6_family = AF_INET6;
				a.u.in6.sin6_addr.s6_addr[0] = 0x20;
				a.u.in6.sin6_addr.s6_addr[1] = 0x01;
				a.u.in6.sin6_addr.s6_addr[2] = 0x0d;
				a.u.in6.sin6_addr.s6_addr[3] = 0xb8;
			} else {
				a.u.in4.sin_family = AF_INET;
			}
			l0 = cpu_us();
			for (int i = 0; i < L; i++) {
				uint64_t x = util_rand64(&rng);

				if (v6)
					memcpy(a.u.in6.sin6_addr.s6_addr + 4, &x, 8);
				else
					memcpy(&a.u.in4.sin_addr, &x, 4);
				hits += guard_lpm_lookup(t, &a, 0, &act) >= 0;
			}
			l1 = cpu_us();
			look_ns[r] = (l1 - l0) * 1000 / L;
			if (r == 0)
				printf("lookups matching a prefix: %.1f%%\n", 100.0 * hits / L);
		}
		guard_lpm_put(t);
	}
	qsort(parse_us, (size_t)repeats, sizeof(uint64_t), cmp_u64);
	qsort(build_us, (size_t)repeats, sizeof(uint64_t), cmp_u64);
	qsort(look_ns, (size_t)repeats, sizeof(uint64_t), cmp_u64);
	printf("%s prefixes: %zu lines, %zu distinct, text %.1f MiB, table %.1f MiB\n",
	       v6 ? "IPv6" : "IPv4", n, count, len / 1048576.0, mem / 1048576.0);
	printf("parse   ms: median %.1f (min %.1f, max %.1f)\n", parse_us[repeats / 2] / 1e3,
	       parse_us[0] / 1e3, parse_us[repeats - 1] / 1e3);
	printf("build   ms: median %.1f (min %.1f, max %.1f)\n", build_us[repeats / 2] / 1e3,
	       build_us[0] / 1e3, build_us[repeats - 1] / 1e3);
	printf("lookup  ns: median %llu (min %llu, max %llu)\n",
	       (unsigned long long)look_ns[repeats / 2], (unsigned long long)look_ns[0],
	       (unsigned long long)look_ns[repeats - 1]);
	free(text);
	return 0;
}
