/* util: addresses, numbers with units, strings and monotonic time.
 * Pure helpers used by every module; nothing here allocates except where said. */
#ifndef SLUICE_UTIL_H
#define SLUICE_UTIL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "sluice/util-t.h"

#define UTIL_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define UTIL_MIN(a, b) ((a) < (b) ? (a) : (b))
#define UTIL_MAX(a, b) ((a) > (b) ? (a) : (b))
#define UTIL_CONTAINER_OF(p, type, member) ((type *)((char *)(p)-offsetof(type, member)))

/* Monotonic clock in milliseconds (CLOCK_MONOTONIC). */
uint64_t util_now_ms(void);
/* Monotonic clock in microseconds. */
uint64_t util_now_us(void);
/* Wall clock in milliseconds since the epoch (for logs and reports only). */
uint64_t util_wall_ms(void);

/* Copy at most size-1 bytes of src into dst and NUL-terminate (size > 0).
 * Returns strlen(src) so truncation shows as a result >= size. */
size_t util_strlcpy(char *dst, const char *src, size_t size);

/* Append a formatted string at *off in buf of size len; *off advances but
 * never past len-1, so repeated calls are safe after truncation.
 * Returns 0, or -1 when the output was truncated. */
int util_bufprintf(char *buf, size_t len, size_t *off, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Parse a whole decimal integer in [min, max]. Returns 0, or -1 when s is
 * empty, has trailing characters or is out of range. */
int util_parse_long(const char *s, long min, long max, long *out);

/* Parse a duration with unit ms, s, m or h (a bare number is an error: units
 * are mandatory so that "5" is never silently read as 5 ms or 5 s).
 * Returns 0, or -1 when malformed or above max_ms. */
int util_parse_duration_ms(const char *s, uint64_t max_ms, uint64_t *out_ms);

/* Parse a size: a number with an optional k or m suffix (powers of 1024).
 * Returns 0, or -1 when malformed or above max. */
int util_parse_size(const char *s, uint64_t max, uint64_t *out);

/* Parse "IPV4:PORT" or "[IPV6]:PORT" (numeric only). Port 0 is refused unless
 * allow_port0. On error returns -1 and writes what was expected to err. */
int util_addr_parse(const char *s, bool allow_port0, struct util_addr *out, char *err,
		    size_t errlen);

/* Parse "NAME:PORT" where NAME is a DNS host name (RFC 1123 labels; the
 * last label not all digits, so that a mistyped IPv4 address is not taken
 * for a name). Returns 0, or -1: with a message in err when the part before
 * the port looks like a name (it holds a letter) but is not a valid one,
 * with err empty otherwise. */
int util_addr_parse_name(const char *s, char *host, size_t hostlen, uint16_t *port, char *err,
			 size_t errlen);

/* Is s (n bytes) a DNS host name: RFC 1123 labels of letters, digits and
 * '-', the last not all digits, at most 253 bytes (a final dot allowed)? */
bool util_is_host_name(const char *s, size_t n);

/* Is s[0..n) a server name as TLS carries it (RFC 6066 section 3): 1-253
 * bytes of dot-separated labels of 1-63 letters, digits, '-' or '_' (seen
 * in real names), no trailing dot, and a last label that is not all digits
 * (an IPv4 literal is not a server name)? Bytes above 0x7f make it false:
 * an internationalised name is written in its A-label form (xn--...). */
bool util_dns_name_valid(const char *s, size_t n);

/* Does the server name match pattern (both lowercase)? pattern is a name
 * ("api.example.com") or "*." and a suffix, which matches exactly one
 * more label in front ("*.example.com" matches "a.example.com", not
 * "example.com" or "a.b.example.com"), as certificate wildcards do. */
bool util_dns_name_match(const char *pattern, size_t plen, const char *name, size_t nlen);

/* Is s (n bytes) an SRV name: one or more labels "_" + letters, digits or
 * '-' (the service and protocol, RFC 2782 / 6335), then a host name? The
 * only place '_' is accepted in a name. Returns 0, or -1 with what was
 * expected in err. */
int util_service_name_check(const char *s, size_t n, char *err, size_t errlen);

/* A server address: "IPV4:PORT", "[IPV6]:PORT" (addr set, host "") or
 * "NAME:PORT" (host and port set, addr zeroed: to be resolved). Returns 0,
 * or -1 with what was expected in err. */
int util_addr_parse_server(const char *s, struct util_addr *addr, char *host, size_t hostlen,
			   uint16_t *port, char *err, size_t errlen);

/* Parse a numeric IPv4 or IPv6 address without port (port set to 0).
 * Returns 0 or -1. */
int util_addr_parse_host(const char *s, struct util_addr *out);

/* Format as "1.2.3.4:80" or "[::1]:80" into buf (UTIL_ADDR_STRLEN bytes is
 * always enough). Returns buf. */
const char *util_addr_fmt(const struct util_addr *a, char *buf, size_t len);

/* Format the host part only ("1.2.3.4" or "::1"). Returns buf. */
const char *util_addr_fmt_host(const struct util_addr *a, char *buf, size_t len);

/* True when both hold the same family, address and port. */
bool util_addr_equal(const struct util_addr *a, const struct util_addr *b);

/* True when a listening address bound on `bind` receives connections to the
 * host `host` (port ignored): the same address, or the wildcard (0.0.0.0,
 * ::) of its family. */
bool util_addr_serves_host(const struct util_addr *bind, const struct util_addr *host);

/* Port in host order (0 when unset). */
uint16_t util_addr_port(const struct util_addr *a);
void util_addr_set_port(struct util_addr *a, uint16_t port);

/* Lateness histograms (struct util_lathist in util-t.h). Zero-initialized
 * memory is an empty histogram; util_lathist_reset() empties it again. */
void util_lathist_reset(struct util_lathist *h);
void util_lathist_add(struct util_lathist *h, uint64_t us);
/* The value at quantile q (0 < q <= 1): the upper bound of the bucket
 * holding it, never above the recorded maximum; 0 when empty. */
uint64_t util_lathist_quantile(const struct util_lathist *h, double q);
/* n, p50, p99, max and sum at once. */
void util_lathist_summarize(const struct util_lathist *h, struct util_lathist_summary *out);

/* FNV-1a 64-bit hash of a buffer; seedable so Maglev gets two hashes. */
uint64_t util_hash64(const void *data, size_t len, uint64_t seed);

/* Hash of the host part of an address (port ignored), for client affinity. */
uint64_t util_addr_hash(const struct util_addr *a, uint64_t seed);

/* Is n a prime? Trial division: at most about 65536 steps for any n. */
bool util_is_prime(uint32_t n);

/* The smallest prime >= n, or 0 when there is none below 2^32. */
uint32_t util_prime_at_least(uint32_t n);
/* True when a failed socket(), connect() or accept() says that this host ran
 * out of something (descriptors, memory, buffers, local ports) rather than
 * that the peer refused: EMFILE, ENFILE, ENOMEM, ENOBUFS, EADDRNOTAVAIL.
 * Such an error must never count against a server. */
bool util_errno_local(int err);

/* Fault injection for tests. UTIL_FAULT("site") is true when the daemon
 * was built with -DSLUICE_FAULT_INJECTION (make FAULT=1, into its own
 * build-fault/ directory) and $SLUICE_FAULT lists the site (comma
 * separated). In every other build it is the constant false, so the sites
 * compile to nothing and no environment can trigger them. */
#ifdef SLUICE_FAULT_INJECTION
bool util_fault(const char *site);
#define UTIL_FAULT(site) util_fault(site)
#else
#define UTIL_FAULT(site) false
#endif

/* xorshift64* pseudo random generator; state must be non-zero. */
uint64_t util_rand64(uint64_t *state);

/* SipHash-1-3 of a buffer under a 16-byte secret key (siphash.c): a hash
 * that a client cannot aim at one bucket without knowing the key. */
uint64_t util_siphash13(const uint8_t key[16], const void *data, size_t len);

/* ---- prefixes (cidr.c) ---- */

/* Parse "A.B.C.D[/N]" or "IPV6[/N]" (no brackets, no zone), len bytes of s
 * (need not be NUL-terminated). An address without /N is a host prefix
 * (/32, /128). Bits past the prefix must be zero, so that a typing mistake
 * such as 10.0.0.1/8 is not silently read as 10.0.0.0/8. Returns 0, or -1
 * with what was expected in err. */
int util_cidr_parse(const char *s, size_t len, struct util_cidr *out, char *err, size_t errlen);
/* "10.0.0.0/8", "2001:db8::/32" (always with the length). Returns buf. */
const char *util_cidr_fmt(const struct util_cidr *c, char *buf, size_t len);
/* The prefix of length plen (capped at the family's width) holding a. */
void util_cidr_of_addr(const struct util_addr *a, unsigned plen, struct util_cidr *out);
/* Does c hold the host part of a? (A prefix of the other family never does.) */
bool util_cidr_contains(const struct util_cidr *c, const struct util_addr *a);
bool util_cidr_equal(const struct util_cidr *a, const struct util_cidr *b);

#endif
