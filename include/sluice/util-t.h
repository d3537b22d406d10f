/* util types: socket addresses and small value types shared by every module.
 * Plain data, no ownership beyond the struct itself. */
#ifndef SLUICE_UTIL_T_H
#define SLUICE_UTIL_T_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* An IPv4 or IPv6 socket address; len is 0 when unset. */
#define UTIL_HOST_MAX 254 /* a DNS host name and its NUL */

struct util_addr {
	union {
		struct sockaddr sa;
		struct sockaddr_in in4;
		struct sockaddr_in6 in6;
		struct sockaddr_storage ss;
	} u;
	socklen_t len;
};

/* Most worker threads. The data plane keeps a 64-bit mask of paused
 * workers, and a listening address has one socket per worker: the arrays of
 * its descriptors and a takeover's SCM_RIGHTS message are sized by it. */
#define UTIL_MAX_WORKERS 64

/* Enough for "[ffff:...:ffff%ifname]:65535". */
#define UTIL_ADDR_STRLEN 80

/* An IPv4 or IPv6 prefix (cidr.c): family AF_INET or AF_INET6, the address
 * in network byte order (4 or 16 bytes used, the rest zero) with every bit
 * past plen zero. */
struct util_cidr {
	uint8_t addr[16];
	uint8_t plen; /* 0-32 or 0-128 */
	uint8_t family;
};

/* Enough for "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255/128". */
#define UTIL_CIDR_STRLEN 56

/* A histogram of lateness (or any duration) in microseconds, log-linear:
 * UTIL_LATHIST_SUB buckets per power of two, so a quantile is within
 * 1/UTIL_LATHIST_SUB (12.5 %) of the truth; values below UTIL_LATHIST_SUB
 * are exact. Fixed size (no allocation), so recording never fails. The
 * exact maximum is kept beside the buckets. */
#define UTIL_LATHIST_SUB 8
#define UTIL_LATHIST_OCTAVES 40 /* up to 2^40 us, about 12 days */
#define UTIL_LATHIST_BUCKETS (UTIL_LATHIST_SUB * UTIL_LATHIST_OCTAVES)

struct util_lathist {
	uint64_t count[UTIL_LATHIST_BUCKETS];
	uint64_t n, sum_us, max_us;
};

/* What show info and the metrics print of one histogram. */
struct util_lathist_summary {
	uint64_t n, p50_us, p99_us, max_us, sum_us;
};

#endif
