/* tls: the ClientHello peek. Pure functions over bytes a client sent,
 * used by the data plane to route TLS by server name and ALPN without
 * terminating it; nothing here reads a socket or allocates. */
#ifndef SLUICE_TLS_H
#define SLUICE_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sluice/tls-t.h"

/* Read buf[0..len), the first bytes a client sent, as a ClientHello that
 * may span several TLS records (handshake fragments, RFC 8446 section
 * 5.1) or be an SSL 2.0-format hello. max is the most bytes the caller
 * can ever hold: a hello whose records would need more is TLS_PEEK_BAD.
 * scratch (TLS_HELLO_MAX bytes, the caller's) receives the message when
 * it spans records. Never reads outside buf and scratch.
 * Returns TLS_PEEK_OK with h filled (h->alpn points into buf or scratch:
 * valid while both are); TLS_PEEK_INCOMPLETE with h->need > len, the
 * input length at which another call can make progress; TLS_PEEK_NOT_TLS
 * or TLS_PEEK_BAD with h->reason. Calling again with a longer input that
 * starts with the same bytes gives the same verdict once it is final. */
enum tls_peek_result tls_peek(const uint8_t *buf, size_t len, size_t max, uint8_t *scratch,
			      struct tls_hello *h);

/* Walk h's ALPN list: start with *off = 0; each call gives the next
 * protocol name (name, n bytes) and returns true, false at the end. */
bool tls_alpn_next(const struct tls_hello *h, size_t *off, const uint8_t **name, size_t *n);

/* Does the client offer the ALPN protocol p (n bytes)? Exact bytes. */
bool tls_alpn_offers(const struct tls_hello *h, const char *p, size_t n);

/* The hello's server name and ALPN protocols for a log line: printable
 * ASCII only (other bytes, space and ',' become '?'), at most outlen-1
 * bytes with "..." at the end when cut; "-" when absent. ALPN names are
 * joined with ',', GREASE values (RFC 8701) left out. Return out. */
const char *tls_log_sni(const struct tls_hello *h, char *out, size_t outlen);
const char *tls_log_alpn(const struct tls_hello *h, char *out, size_t outlen);

/* Is v a GREASE value (RFC 8701: 0x0A0A, 0x1A1A, ... 0xFAFA)? */
bool tls_is_grease(uint16_t v);

#endif
