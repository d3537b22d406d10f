/* util/addr: parse, format and compare IPv4/IPv6 socket addresses; check
 * the syntax of host names and SRV names. Pure: names are looked up by
 * src/resolve (c-ares on the control loop), which core drives. */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "sluice/util.h"

int util_addr_parse_host(const char *s, struct util_addr *out)
{
	memset(out, 0, sizeof(*out));
	if (inet_pton(AF_INET, s, &out->u.in4.sin_addr) == 1) {
		out->u.in4.sin_family = AF_INET;
		out->len = sizeof(out->u.in4);
		return 0;
	}
	if (inet_pton(AF_INET6, s, &out->u.in6.sin6_addr) == 1) {
		out->u.in6.sin6_family = AF_INET6;
		out->len = sizeof(out->u.in6);
		return 0;
	}
	return -1;
}

bool util_is_host_name(const char *s, size_t n)
{
	size_t label = 0;
	bool digits_only = true, last_digits_only = true;

	if (n == 0 || n > UTIL_HOST_MAX - 1)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (ch == '.') {
			if (label == 0 || s[i - 1] == '-')
				return false;
			label = 0;
			last_digits_only = digits_only;
			digits_only = true;
			continue;
		}
		if (!isalnum(ch) && !(ch == '-' && label > 0))
			return false;
		if (!isdigit(ch))
			digits_only = false;
		if (++label > 63)
			return false;
	}
	/* a trailing dot (fully qualified) is fine; a last label of digits is
	 * a mistyped IPv4 address */
	if (s[n - 1] == '.')
		return n > 1 && s[n - 2] != '-' && !last_digits_only;
	return s[n - 1] != '-' && !digits_only;
}

int util_service_name_check(const char *s, size_t n, char *err, size_t errlen)
{
	size_t i = 0, labels = 0;

	/* _service._proto. then a host name */
	while (i < n && s[i] == '_') {
		size_t l = 1;

		while (i + l < n && (isalnum((unsigned char)s[i + l]) || s[i + l] == '-'))
			l++;
		if (l == 1 || l > 63 || i + l >= n || s[i + l] != '.')
			break;
		i += l + 1;
		labels++;
	}
	if (labels == 0 || n > UTIL_HOST_MAX - 1 || memchr(s, '\0', n) != NULL ||
	    !util_is_host_name(s + i, n - i)) {
		snprintf(err, errlen,
			 "bad SRV name '%.*s' (expected _service._proto. and a host name, e.g. "
			 "_http._tcp.web.example)",
			 (int)(n < 300 ? n : 300), s);
		return -1;
	}
	return 0;
}

bool util_dns_name_valid(const char *s, size_t n)
{
	size_t label = 0;
	bool digits = true;

	if (n == 0 || n > 253)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (ch == '.') {
			if (label == 0)
				return false;
			label = 0;
			digits = true;
			continue;
		}
		/* ASCII ranges, not ctype: this runs per TLS connection and
		 * must not depend on a locale */
		bool digit = ch >= '0' && ch <= '9';

		if (!digit && !((ch | 0x20) >= 'a' && (ch | 0x20) <= 'z') && ch != '-' && ch != '_')
			return false;
		digits = digits && digit;
		if (++label > 63)
			return false;
	}
	return label > 0 && !digits;
}

bool util_dns_name_match(const char *pattern, size_t plen, const char *name, size_t nlen)
{
	if (plen >= 2 && pattern[0] == '*' && pattern[1] == '.') {
		const char *suffix = pattern + 1; /* ".example.com" */
		size_t slen = plen - 1;

		return nlen > slen && memcmp(name + nlen - slen, suffix, slen) == 0 &&
		       memchr(name, '.', nlen - slen) == NULL;
	}
	return plen == nlen && memcmp(pattern, name, nlen) == 0;
}

int util_addr_parse_name(const char *s, char *host, size_t hostlen, uint16_t *port, char *err,
			 size_t errlen)
{
	const char *colon = strrchr(s, ':');
	size_t n = colon != NULL ? (size_t)(colon - s) : 0;
	bool alpha = false;
	long p;

	err[0] = '\0';
	if (colon == NULL || s[0] == '[' || memchr(s, ':', n) != NULL || memchr(s, '%', n) != NULL)
		return -1; /* IPv6 without brackets: the numeric parser says so */
	for (size_t i = 0; i < n; i++)
		alpha = alpha || isalpha((unsigned char)s[i]);
	if (!alpha)
		return -1;
	if (!util_is_host_name(s, n) || n >= hostlen) {
		snprintf(err, errlen,
			 "bad host name '%.*s' (expected letters, digits, '-' and '.')",
			 (int)(n < 300 ? n : 300), s);
		return -1;
	}
	if (util_parse_long(colon + 1, 1, 65535, &p) < 0) {
		snprintf(err, errlen, "port '%s' out of range (expected 1-65535)", colon + 1);
		return -1;
	}
	memcpy(host, s, n);
	host[n] = '\0';
	*port = (uint16_t)p;
	return 0;
}

int util_addr_parse_server(const char *s, struct util_addr *addr, char *host, size_t hostlen,
			   uint16_t *port, char *err, size_t errlen)
{
	char nerr[400];

	host[0] = '\0';
	if (util_addr_parse(s, false, addr, err, errlen) == 0)
		return 0;
	if (util_addr_parse_name(s, host, hostlen, port, nerr, sizeof(nerr)) < 0) {
		if (nerr[0] != '\0') /* else the numeric parser's message stands */
			snprintf(err, errlen, "%s", nerr);
		return -1;
	}
	memset(addr, 0, sizeof(*addr));
	return 0;
}

int util_addr_parse(const char *s, bool allow_port0, struct util_addr *out, char *err,
		    size_t errlen)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *colon, *hs;
	size_t hlen;
	long port;

	if (s[0] == '[') {
		const char *close = strchr(s, ']');

		if (close == NULL || close[1] != ':') {
			snprintf(err, errlen, "expected [IPV6]:PORT");
			return -1;
		}
		hs = s + 1;
		hlen = (size_t)(close - hs);
		colon = close + 1;
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL) {
			snprintf(err, errlen, "expected ADDRESS:PORT");
			return -1;
		}
		if (memchr(s, ':', (size_t)(colon - s)) != NULL) {
			snprintf(err, errlen, "IPv6 addresses must be written as [ADDRESS]:PORT");
			return -1;
		}
		hs = s;
		hlen = (size_t)(colon - s);
	}
	if (hlen == 0 || hlen >= sizeof(host)) {
		snprintf(err, errlen, "expected an IPv4 or IPv6 address before ':'");
		return -1;
	}
	memcpy(host, hs, hlen);
	host[hlen] = '\0';
	memset(out, 0, sizeof(*out));
	if (strcmp(host, "*") == 0 && s[0] != '[') {
		out->u.in4.sin_family = AF_INET;
		out->u.in4.sin_addr.s_addr = htonl(INADDR_ANY);
		out->len = sizeof(out->u.in4);
	} else if (util_addr_parse_host(host, out) < 0 ||
		   (out->u.sa.sa_family == AF_INET6) != (s[0] == '[')) {
		snprintf(err, errlen, "bad address '%s' (expected numeric IPv4, or [IPv6])", host);
		return -1;
	}
	if (util_parse_long(colon + 1, allow_port0 ? 0 : 1, 65535, &port) < 0) {
		snprintf(err, errlen, "port '%s' out of range (expected %d-65535)", colon + 1,
			 allow_port0 ? 0 : 1);
		return -1;
	}
	util_addr_set_port(out, (uint16_t)port);
	return 0;
}

const char *util_addr_fmt_host(const struct util_addr *a, char *buf, size_t len)
{
	if (a->len == 0 ||
	    inet_ntop(a->u.sa.sa_family,
		      a->u.sa.sa_family == AF_INET ? (const void *)&a->u.in4.sin_addr
						   : (const void *)&a->u.in6.sin6_addr,
		      buf, (socklen_t)len) == NULL)
		util_strlcpy(buf, "-", len);
	return buf;
}

const char *util_addr_fmt(const struct util_addr *a, char *buf, size_t len)
{
	char host[INET6_ADDRSTRLEN];

	if (a->len == 0) {
		util_strlcpy(buf, "-", len);
		return buf;
	}
	util_addr_fmt_host(a, host, sizeof(host));
	if (a->u.sa.sa_family == AF_INET6)
		snprintf(buf, len, "[%s]:%u", host, util_addr_port(a));
	else
		snprintf(buf, len, "%s:%u", host, util_addr_port(a));
	return buf;
}

bool util_addr_equal(const struct util_addr *a, const struct util_addr *b)
{
	if (a->u.sa.sa_family != b->u.sa.sa_family)
		return false;
	if (a->u.sa.sa_family == AF_INET)
		return a->u.in4.sin_addr.s_addr == b->u.in4.sin_addr.s_addr &&
		       a->u.in4.sin_port == b->u.in4.sin_port;
	if (a->u.sa.sa_family == AF_INET6)
		return memcmp(&a->u.in6.sin6_addr, &b->u.in6.sin6_addr, 16) == 0 &&
		       a->u.in6.sin6_port == b->u.in6.sin6_port;
	return a->len == b->len;
}

bool util_addr_serves_host(const struct util_addr *bind, const struct util_addr *host)
{
	if (bind->u.sa.sa_family != host->u.sa.sa_family)
		return false;
	if (bind->u.sa.sa_family == AF_INET)
		return bind->u.in4.sin_addr.s_addr == INADDR_ANY ||
		       bind->u.in4.sin_addr.s_addr == host->u.in4.sin_addr.s_addr;
	if (bind->u.sa.sa_family == AF_INET6)
		return IN6_IS_ADDR_UNSPECIFIED(&bind->u.in6.sin6_addr) ||
		       memcmp(&bind->u.in6.sin6_addr, &host->u.in6.sin6_addr, 16) == 0;
	return false;
}

uint16_t util_addr_port(const struct util_addr *a)
{
	if (a->u.sa.sa_family == AF_INET)
		return ntohs(a->u.in4.sin_port);
	if (a->u.sa.sa_family == AF_INET6)
		return ntohs(a->u.in6.sin6_port);
	return 0;
}

void util_addr_set_port(struct util_addr *a, uint16_t port)
{
	if (a->u.sa.sa_family == AF_INET)
		a->u.in4.sin_port = htons(port);
	else if (a->u.sa.sa_family == AF_INET6)
		a->u.in6.sin6_port = htons(port);
}

uint64_t util_addr_hash(const struct util_addr *a, uint64_t seed)
{
	if (a->u.sa.sa_family == AF_INET)
		return util_hash64(&a->u.in4.sin_addr, 4, seed);
	if (a->u.sa.sa_family == AF_INET6)
		return util_hash64(&a->u.in6.sin6_addr, 16, seed);
	return seed;
}
