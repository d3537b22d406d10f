/* bench-peek: CPU cost of the ClientHello peek parser (src/tls) on a
 * captured hello, for tools/bench: the whole hello in one call, and the
 * way a client sending 1 byte per segment is parsed (called again only
 * once the bytes tls_peek asked for are in). Prints one JSON line with the
 * median of 7 batches, in nanoseconds per hello. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sluice/tls.h"
#include "sluice/util.h"

#define BATCHES 7

static uint8_t scratch[TLS_HELLO_MAX];

static uint64_t bp_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static int bp_cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* One hello: whole (step 0), or following need from 1 byte on. Returns the
 * number of tls_peek calls, 0 when the hello does not parse. */
static unsigned bp_parse(const uint8_t *buf, size_t len, bool stepwise)
{
	struct tls_hello h;
	size_t have = stepwise ? 1 : len;
	unsigned calls = 0;

	for (;;) {
		enum tls_peek_result r = tls_peek(buf, have, 16384, scratch, &h);

		calls++;
		if (r == TLS_PEEK_OK)
			return calls;
		if (r != TLS_PEEK_INCOMPLETE || h.need > len)
			return 0;
		have = h.need;
	}
}

static double bp_median_ns(const uint8_t *buf, size_t len, bool stepwise, long n)
{
	double ns[BATCHES];

	for (int b = 0; b < BATCHES; b++) {
		uint64_t t0 = bp_now_ns();

		for (long i = 0; i < n; i++)
			if (bp_parse(buf, len, stepwise) == 0)
				exit(1);
		ns[b] = (double)(bp_now_ns() - t0) / (double)n;
	}
	qsort(ns, BATCHES, sizeof(ns[0]), bp_cmp);
	return ns[BATCHES / 2];
}

int main(int argc, char **argv)
{
	static uint8_t buf[65536];
	FILE *f;
	size_t len;
	long n = 200000;

	if (argc < 2 || argc > 3 || (argc == 3 && util_parse_long(argv[2], 1, 100000000, &n) < 0)) {
		fprintf(stderr, "usage: bench-peek HELLO_FILE [ITERATIONS]\n");
		return 2;
	}
	f = fopen(argv[1], "rb");
	if (f == NULL) {
		fprintf(stderr, "bench-peek: %s: %s\n", argv[1], strerror(errno));
		return 2;
	}
	len = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	if (bp_parse(buf, len, false) == 0) {
		fprintf(stderr, "bench-peek: %s is not a whole ClientHello\n", argv[1]);
		return 1;
	}
	printf("{\"bytes\": %zu, \"whole_ns\": %.1f, \"stepwise_calls\": %u, "
	       "\"stepwise_ns\": %.1f}\n",
	       len, bp_median_ns(buf, len, false, n), bp_parse(buf, len, true),
	       bp_median_ns(buf, len, true, n / 4));
	return 0;
}
