/* proxyproto: PROXY protocol v1 (text) and v2 (binary) headers, as in
 * HAProxy's proxy-protocol.txt. Pure: parse what a client sent on an
 * accept-proxy listener; build what a send-proxy server receives. */
#ifndef SLUICE_PROXYPROTO_H
#define SLUICE_PROXYPROTO_H

#include <stddef.h>
#include <stdint.h>

#include "sluice/util-t.h"

/* Longest header we build: v1 TCP6 is 104 bytes, v2 TCP6 is 52. */
#define PROXYPROTO_MAX_BUILD 108

enum proxyproto_result {
	PROXYPROTO_OK,
	PROXYPROTO_INCOMPLETE, /* a valid prefix: read more */
	PROXYPROTO_INVALID,
};

/* Parse a header at the start of buf. On PROXYPROTO_OK *consumed is the
 * header length and src/dst hold the addresses it carried; for v1 UNKNOWN
 * and v2 LOCAL they are left with len 0 (use the real connection). Headers
 * longer than max_len are INVALID. */
enum proxyproto_result proxyproto_parse(const uint8_t *buf, size_t len, size_t max_len,
					struct util_addr *src, struct util_addr *dst,
					size_t *consumed);

/* Build a header of the given version (1 or 2) into out (at least
 * PROXYPROTO_MAX_BUILD bytes). Mixed or unset families give v1 UNKNOWN /
 * v2 LOCAL. Returns its length. */
size_t proxyproto_build(int version, const struct util_addr *src, const struct util_addr *dst,
			uint8_t *out);

#endif
