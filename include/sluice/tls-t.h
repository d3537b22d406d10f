/* tls types: what the first bytes of a connection say when read as a TLS
 * ClientHello (server name, ALPN protocols), found by tls_peek() without
 * decrypting anything. Plain data; the ALPN pointer refers into buffers
 * the caller owns (see tls_peek()). */
#ifndef SLUICE_TLS_T_H
#define SLUICE_TLS_T_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The largest ClientHello handshake message accepted, its 4-byte header
 * included; also the size of the reassembly scratch buffer. Post-quantum
 * key shares make real hellos 1.2-2 KiB today; 16 KiB leaves room. */
#define TLS_HELLO_MAX 16384
/* The longest server name kept (a DNS name has at most 253 bytes). */
#define TLS_SNI_MAX 255

enum tls_peek_result {
	TLS_PEEK_OK,	     /* a whole ClientHello, parsed */
	TLS_PEEK_INCOMPLETE, /* a valid beginning: call again with more bytes */
	TLS_PEEK_NOT_TLS,    /* the first bytes are not a TLS (or SSL 2.0) handshake */
	TLS_PEEK_BAD,	     /* a TLS handshake, but not a well-formed ClientHello */
};

/* A parsed ClientHello. */
struct tls_hello {
	bool sslv2;	  /* SSL 2.0-format hello (RFC 5246 appendix E.2): no extensions */
	uint16_t version; /* client_version (legacy_version in TLS 1.3) */
	bool tls13;	  /* supported_versions offers TLS 1.3 */
	bool ech;	  /* encrypted_client_hello: sni is the outer (public) name */
	bool has_sni;	  /* a host_name entry in server_name */
	bool sni_valid;	  /* and it is a DNS name (util_dns_name_valid) */
	uint16_t sni_len;
	/* ASCII letters lowered, one trailing dot removed, NUL-terminated; may
	 * hold any byte (NUL too) when !sni_valid */
	char sni[TLS_SNI_MAX + 1];
	/* ALPN protocol_name_list (RFC 7301 section 3.1), entries checked:
	 * a length byte (1-255) then the name; NULL when absent */
	const uint8_t *alpn;
	size_t alpn_len;
	uint32_t records;   /* TLS records that carried the hello (1 for SSL 2.0) */
	size_t end;	    /* offset just past the hello's last byte in the input */
	size_t need;	    /* INCOMPLETE: the input length worth calling again with */
	const char *reason; /* NOT_TLS / BAD: why, a static string */
};

#endif
