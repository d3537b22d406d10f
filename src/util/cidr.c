/* util/cidr: IPv4 and IPv6 prefixes for source ACLs and per-source limits:
 * parse (strict: no host bits past the prefix), format, mask an address,
 * test membership. Pure; the IPv4 parser is hand-written because a deny
 * list of a million lines goes through it. */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "sluice/util.h"

/* "A.B.C.D": four decimal octets without leading zeros. Returns 0 or -1. */
static int parse_v4(const char *s, size_t n, uint8_t out[4])
{
	size_t i = 0;

	for (int k = 0; k < 4; k++) {
		unsigned v = 0;
		size_t start = i;

		if (k > 0) {
			if (i >= n || s[i] != '.')
				return -1;
			start = ++i;
		}
		while (i < n && s[i] >= '0' && s[i] <= '9' && i - start < 3)
			v = v * 10 + (unsigned)(s[i++] - '0');
		if (i == start || v > 255 || (s[start] == '0' && i - start > 1))
			return -1;
		out[k] = (uint8_t)v;
	}
	return i == n ? 0 : -1;
}

int util_cidr_parse(const char *s, size_t len, struct util_cidr *out, char *err, size_t errlen)
{
	const char *slash = memchr(s, '/', len);
	size_t alen = slash != NULL ? (size_t)(slash - s) : len;
	unsigned width, plen;
	char buf[64];

	memset(out, 0, sizeof(*out));
	if (memchr(s, '\0', len) != NULL)
		goto bad;
	if (parse_v4(s, alen, out->addr) == 0) {
		out->family = AF_INET;
		width = 32;
	} else if (alen > 0 && alen < sizeof(buf) && memchr(s, ':', alen) != NULL) {
		memcpy(buf, s, alen);
		buf[alen] = '\0';
		if (inet_pton(AF_INET6, buf, out->addr) != 1)
			goto bad;
		out->family = AF_INET6;
		width = 128;
	} else {
		goto bad;
	}
	plen = width;
	if (slash != NULL) {
		const char *p = slash + 1;
		size_t n = len - alen - 1;

		plen = 0;
		if (n == 0 || n > 3 || (p[0] == '0' && n > 1))
			goto bad_len;
		for (size_t i = 0; i < n; i++) {
			if (p[i] < '0' || p[i] > '9')
				goto bad_len;
			plen = plen * 10 + (unsigned)(p[i] - '0');
		}
		if (plen > width)
			goto bad_len;
	}
	out->plen = (uint8_t)plen;
	for (unsigned b = plen; b < width; b++) {
		if (out->addr[b / 8] & (0x80 >> (b % 8))) {
			struct util_cidr m = *out;
			char want[UTIL_CIDR_STRLEN];

			for (unsigned k = plen; k < width; k++)
				m.addr[k / 8] &= (uint8_t) ~(0x80 >> (k % 8));
			snprintf(err, errlen, "host bits set in '%.*s' (expected %s)",
				 (int)(len < 64 ? len : 64), s,
				 util_cidr_fmt(&m, want, sizeof(want)));
			return -1;
		}
	}
	return 0;
bad_len:
	snprintf(err, errlen, "bad prefix length in '%.*s' (expected /0-/%u)",
		 (int)(len < 64 ? len : 64), s, width);
	return -1;
bad:
	snprintf(err, errlen,
		 "bad address '%.*s' (expected an IPv4 or IPv6 address with an optional /prefix)",
		 (int)(len < 64 ? len : 64), s);
	return -1;
}

const char *util_cidr_fmt(const struct util_cidr *c, char *buf, size_t len)
{
	char a[INET6_ADDRSTRLEN];

	if (inet_ntop(c->family == AF_INET ? AF_INET : AF_INET6, c->addr, a, sizeof(a)) == NULL)
		util_strlcpy(a, "?", sizeof(a));
	snprintf(buf, len, "%s/%u", a, c->plen);
	return buf;
}

/* The host part of a: its address bytes and width in bits, or NULL. */
static const uint8_t *addr_bytes(const struct util_addr *a, unsigned *width)
{
	if (a->u.sa.sa_family == AF_INET) {
		*width = 32;
		return (const uint8_t *)&a->u.in4.sin_addr;
	}
	if (a->u.sa.sa_family == AF_INET6) {
		*width = 128;
		return a->u.in6.sin6_addr.s6_addr;
	}
	return NULL;
}

void util_cidr_of_addr(const struct util_addr *a, unsigned plen, struct util_cidr *out)
{
	unsigned width;
	const uint8_t *b = addr_bytes(a, &width);

	memset(out, 0, sizeof(*out));
	if (b == NULL)
		return;
	out->family = (uint8_t)a->u.sa.sa_family;
	out->plen = (uint8_t)(plen < width ? plen : width);
	memcpy(out->addr, b, out->plen / 8);
	if (out->plen % 8)
		out->addr[out->plen / 8] = b[out->plen / 8] & (uint8_t)(0xff00 >> (out->plen % 8));
}

bool util_cidr_contains(const struct util_cidr *c, const struct util_addr *a)
{
	unsigned width, full = c->plen / 8, rest = c->plen % 8;
	const uint8_t *b = addr_bytes(a, &width);

	if (b == NULL || a->u.sa.sa_family != c->family)
		return false;
	if (memcmp(b, c->addr, full) != 0)
		return false;
	return rest == 0 || (b[full] & (uint8_t)(0xff00 >> rest)) == c->addr[full];
}

bool util_cidr_equal(const struct util_cidr *a, const struct util_cidr *b)
{
	return a->family == b->family && a->plen == b->plen &&
	       memcmp(a->addr, b->addr, sizeof(a->addr)) == 0;
}
