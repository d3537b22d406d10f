/* proxyproto: PROXY protocol v1/v2 codec (HAProxy's proxy-protocol.txt,
 * sections 2.1 and 2.2). Never reads past len; every field is checked before
 * use because the bytes come from an untrusted client. */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "sluice/proxyproto.h"
#include "sluice/util.h"

static const uint8_t v2_sig[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
				   0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};

#define V1_MAX 107 /* section 2.1: worst case including CRLF */

/* Parse "ADDR ADDR PORT PORT" of a v1 line (NUL-terminated copy). */
static int v1_fields(char *line, int family, struct util_addr *src, struct util_addr *dst)
{
	char *f[4];
	int n = 0;
	long sp, dp;

	for (char *p = line;;) {
		f[n++] = p;
		if (n == 4)
			break;
		p = strchr(p, ' ');
		if (p == NULL)
			break;
		*p++ = '\0';
	}
	if (n != 4 || strchr(f[3], ' ') != NULL || util_addr_parse_host(f[0], src) < 0 ||
	    util_addr_parse_host(f[1], dst) < 0)
		return -1;
	if (src->u.sa.sa_family != family || dst->u.sa.sa_family != family)
		return -1;
	/* ports: decimal without leading zeros or sign */
	for (int i = 2; i < 4; i++)
		if (f[i][0] < '0' || f[i][0] > '9' || (f[i][0] == '0' && f[i][1] != '\0'))
			return -1;
	if (util_parse_long(f[2], 0, 65535, &sp) < 0 || util_parse_long(f[3], 0, 65535, &dp) < 0)
		return -1;
	util_addr_set_port(src, (uint16_t)sp);
	util_addr_set_port(dst, (uint16_t)dp);
	return 0;
}

static enum proxyproto_result parse_v1(const uint8_t *buf, size_t len, struct util_addr *src,
				       struct util_addr *dst, size_t *consumed)
{
	char line[V1_MAX + 1];
	const uint8_t *crlf = NULL;
	size_t n;

	for (size_t i = 0; i + 1 < len && i < V1_MAX; i++) {
		if (buf[i] == '\r' && buf[i + 1] == '\n') {
			crlf = buf + i;
			break;
		}
		if (buf[i] < 0x20 || buf[i] > 0x7e)
			return PROXYPROTO_INVALID;
	}
	if (crlf == NULL)
		return len >= V1_MAX ? PROXYPROTO_INVALID : PROXYPROTO_INCOMPLETE;
	n = (size_t)(crlf - buf);
	memcpy(line, buf, n);
	line[n] = '\0';
	*consumed = n + 2;
	memset(src, 0, sizeof(*src));
	memset(dst, 0, sizeof(*dst));
	if (strncmp(line, "PROXY UNKNOWN", 13) == 0 && (line[13] == '\0' || line[13] == ' '))
		return PROXYPROTO_OK;
	if (strncmp(line, "PROXY TCP4 ", 11) == 0)
		return v1_fields(line + 11, AF_INET, src, dst) == 0 ? PROXYPROTO_OK
								    : PROXYPROTO_INVALID;
	if (strncmp(line, "PROXY TCP6 ", 11) == 0)
		return v1_fields(line + 11, AF_INET6, src, dst) == 0 ? PROXYPROTO_OK
								     : PROXYPROTO_INVALID;
	return PROXYPROTO_INVALID;
}

static enum proxyproto_result parse_v2(const uint8_t *buf, size_t len, size_t max_len,
				       struct util_addr *src, struct util_addr *dst,
				       size_t *consumed)
{
	size_t plen, total;
	uint8_t cmd, fam;

	if (len < 16)
		return PROXYPROTO_INCOMPLETE;
	if ((buf[12] & 0xf0) != 0x20)
		return PROXYPROTO_INVALID;
	cmd = buf[12] & 0x0f;
	fam = buf[13];
	plen = (size_t)buf[14] << 8 | buf[15];
	total = 16 + plen;
	if (cmd > 1 || total > max_len)
		return PROXYPROTO_INVALID;
	if (len < total)
		return PROXYPROTO_INCOMPLETE;
	*consumed = total;
	memset(src, 0, sizeof(*src));
	memset(dst, 0, sizeof(*dst));
	if (cmd == 0) /* LOCAL: health check from the balancer itself */
		return PROXYPROTO_OK;
	if (fam == 0x11) { /* TCP over IPv4 */
		if (plen < 12)
			return PROXYPROTO_INVALID;
		src->u.in4.sin_family = dst->u.in4.sin_family = AF_INET;
		memcpy(&src->u.in4.sin_addr, buf + 16, 4);
		memcpy(&dst->u.in4.sin_addr, buf + 20, 4);
		memcpy(&src->u.in4.sin_port, buf + 24, 2);
		memcpy(&dst->u.in4.sin_port, buf + 26, 2);
		src->len = dst->len = sizeof(struct sockaddr_in);
	} else if (fam == 0x21) { /* TCP over IPv6 */
		if (plen < 36)
			return PROXYPROTO_INVALID;
		src->u.in6.sin6_family = dst->u.in6.sin6_family = AF_INET6;
		memcpy(&src->u.in6.sin6_addr, buf + 16, 16);
		memcpy(&dst->u.in6.sin6_addr, buf + 32, 16);
		memcpy(&src->u.in6.sin6_port, buf + 48, 2);
		memcpy(&dst->u.in6.sin6_port, buf + 50, 2);
		src->len = dst->len = sizeof(struct sockaddr_in6);
	} else if (fam != 0x00) {
		/* UDP or UNIX sources make no sense for a TCP listener */
		return PROXYPROTO_INVALID;
	}
	return PROXYPROTO_OK;
}

enum proxyproto_result proxyproto_parse(const uint8_t *buf, size_t len, size_t max_len,
					struct util_addr *src, struct util_addr *dst,
					size_t *consumed)
{
	size_t cmp = UTIL_MIN(len, sizeof(v2_sig));

	if (len == 0)
		return PROXYPROTO_INCOMPLETE;
	if (memcmp(buf, v2_sig, cmp) == 0)
		return cmp < sizeof(v2_sig) ? PROXYPROTO_INCOMPLETE
					    : parse_v2(buf, len, max_len, src, dst, consumed);
	cmp = UTIL_MIN(len, 6);
	if (memcmp(buf, "PROXY ", cmp) != 0)
		return PROXYPROTO_INVALID;
	return parse_v1(buf, len, src, dst, consumed);
}

size_t proxyproto_build(int version, const struct util_addr *src, const struct util_addr *dst,
			uint8_t *out)
{
	int fam = src->len ? src->u.sa.sa_family : 0;
	bool known = fam != 0 && dst->len != 0 && dst->u.sa.sa_family == fam;

	if (version == 1) {
		char s[64], d[64];
		int n;

		if (!known) {
			memcpy(out, "PROXY UNKNOWN\r\n", 15);
			return 15;
		}
		util_addr_fmt_host(src, s, sizeof(s));
		util_addr_fmt_host(dst, d, sizeof(d));
		n = snprintf((char *)out, PROXYPROTO_MAX_BUILD, "PROXY %s %s %s %u %u\r\n",
			     fam == AF_INET ? "TCP4" : "TCP6", s, d, util_addr_port(src),
			     util_addr_port(dst));
		return (size_t)UTIL_MIN(n, PROXYPROTO_MAX_BUILD - 1);
	}
	memcpy(out, v2_sig, sizeof(v2_sig));
	if (!known) {
		out[12] = 0x20; /* v2 LOCAL */
		out[13] = 0x00;
		out[14] = out[15] = 0;
		return 16;
	}
	out[12] = 0x21; /* v2 PROXY */
	if (fam == AF_INET) {
		out[13] = 0x11;
		out[14] = 0;
		out[15] = 12;
		memcpy(out + 16, &src->u.in4.sin_addr, 4);
		memcpy(out + 20, &dst->u.in4.sin_addr, 4);
		memcpy(out + 24, &src->u.in4.sin_port, 2);
		memcpy(out + 26, &dst->u.in4.sin_port, 2);
		return 28;
	}
	out[13] = 0x21;
	out[14] = 0;
	out[15] = 36;
	memcpy(out + 16, &src->u.in6.sin6_addr, 16);
	memcpy(out + 32, &dst->u.in6.sin6_addr, 16);
	memcpy(out + 48, &src->u.in6.sin6_port, 2);
	memcpy(out + 50, &dst->u.in6.sin6_port, 2);
	return 52;
}
