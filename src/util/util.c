/* util: numbers with units, strings, time and hashing.
 * Pure functions used by every module; no global state. */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sluice/util.h"

uint64_t util_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t util_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

uint64_t util_wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

size_t util_strlcpy(char *dst, const char *src, size_t size)
{
	size_t n = strlen(src);

	if (size > 0) {
		size_t c = n < size - 1 ? n : size - 1;

		memcpy(dst, src, c);
		dst[c] = '\0';
	}
	return n;
}

int util_bufprintf(char *buf, size_t len, size_t *off, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (len == 0 || *off >= len - 1)
		return -1;
	va_start(ap, fmt);
	n = vsnprintf(buf + *off, len - *off, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -1;
	if ((size_t)n >= len - *off) {
		*off = len - 1;
		return -1;
	}
	*off += (size_t)n;
	return 0;
}

int util_parse_long(const char *s, long min, long max, long *out)
{
	char *end;
	long v;

	if (s == NULL || *s == '\0')
		return -1;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

/* Split "123unit" into its number and unit. Returns 0 or -1. */
static int parse_number_unit(const char *s, uint64_t *num, const char **unit)
{
	uint64_t v = 0;
	const char *p = s;

	if (*p < '0' || *p > '9')
		return -1;
	while (*p >= '0' && *p <= '9') {
		if (v > (UINT64_MAX - 9) / 10)
			return -1;
		v = v * 10 + (uint64_t)(*p - '0');
		p++;
	}
	*num = v;
	*unit = p;
	return 0;
}

int util_parse_duration_ms(const char *s, uint64_t max_ms, uint64_t *out_ms)
{
	static const struct {
		const char *unit;
		uint64_t ms;
	} units[] = {{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}};
	const char *unit;
	uint64_t v;

	if (s == NULL || parse_number_unit(s, &v, &unit) < 0)
		return -1;
	for (size_t i = 0; i < UTIL_ARRAY_LEN(units); i++) {
		if (strcmp(unit, units[i].unit) != 0)
			continue;
		if (v > max_ms / units[i].ms)
			return -1;
		*out_ms = v * units[i].ms;
		return 0;
	}
	return -1;
}

int util_parse_size(const char *s, uint64_t max, uint64_t *out)
{
	const char *unit;
	uint64_t v, mul = 1;

	if (s == NULL || parse_number_unit(s, &v, &unit) < 0)
		return -1;
	if (strcmp(unit, "k") == 0 || strcmp(unit, "K") == 0)
		mul = 1024;
	else if (strcmp(unit, "m") == 0 || strcmp(unit, "M") == 0)
		mul = 1024 * 1024;
	else if (*unit != '\0')
		return -1;
	if (v > max / mul)
		return -1;
	*out = v * mul;
	return 0;
}

uint64_t util_hash64(const void *data, size_t len, uint64_t seed)
{
	const unsigned char *p = data;
	uint64_t h = 0xcbf29ce484222325ull ^ seed;

	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= 0x100000001b3ull;
	}
	/* final avalanche (murmur3 fmix64) so nearby inputs spread */
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ull;
	h ^= h >> 33;
	return h;
}

bool util_is_prime(uint32_t n)
{
	if (n < 2)
		return false;
	for (uint32_t d = 2; (uint64_t)d * d <= n; d++)
		if (n % d == 0)
			return false;
	return true;
}

uint32_t util_prime_at_least(uint32_t n)
{
	/* primes are at most a few hundred apart below 2^32 */
	while (n < UINT32_MAX && !util_is_prime(n))
		n++;
	return util_is_prime(n) ? n : 0;
}

#ifdef SLUICE_FAULT_INJECTION
bool util_fault(const char *site)
{
	const char *list = getenv("SLUICE_FAULT");
	size_t n = strlen(site);

	while (list != NULL && *list != '\0') {
		const char *end = strchr(list, ',');
		size_t len = end != NULL ? (size_t)(end - list) : strlen(list);

		if (len == n && memcmp(list, site, n) == 0)
			return true;
		list = end != NULL ? end + 1 : NULL;
	}
	return false;
}
#endif

bool util_errno_local(int err)
{
	switch (err) {
	case EMFILE:
	case ENFILE:
	case ENOMEM:
	case ENOBUFS:
	case EADDRNOTAVAIL: /* no ephemeral port left */
		return true;
	default:
		return false;
	}
}

uint64_t util_rand64(uint64_t *state)
{
	uint64_t x = *state;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*state = x;
	return x * 0x2545f4914f6cdd1dull;
}
