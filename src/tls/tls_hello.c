/* tls_hello: the ClientHello peek parser. The data plane calls tls_peek()
 * on the bytes a client sent so far until it answers; it reassembles a
 * hello fragmented over TLS records (RFC 8446 section 5.1), reads SSL
 * 2.0-format hellos (RFC 5246 appendix E.2), and takes the server name
 * (RFC 6066 section 3) and ALPN list (RFC 7301) out of the extensions.
 * Every length is checked against the bytes that are there before use:
 * the input is untrusted. */
#include <string.h>

#include "sluice/tls.h"
#include "sluice/util.h"

#define REC_HDR 5
#define REC_MAX 16384 /* 2^14: the longest TLSPlaintext fragment */
#define CT_HANDSHAKE 22
#define HS_CLIENT_HELLO 1
#define HS_HDR 4
/* version, random, session id length, two cipher suite bytes and their
 * length, one compression method and its length */
#define HELLO_MIN_BODY (2 + 32 + 1 + 2 + 2 + 1 + 1)

#define EXT_SERVER_NAME 0
#define EXT_ALPN 16
#define EXT_SUPPORTED_VERSIONS 43
#define EXT_ECH 0xfe0d /* encrypted_client_hello */
#define SNI_HOST_NAME 0

/* A bounded reader over untrusted bytes. */
struct rd {
	const uint8_t *p;
	size_t left;
};

static bool rd_u8(struct rd *r, uint8_t *v)
{
	if (r->left < 1)
		return false;
	*v = r->p[0];
	r->p++;
	r->left--;
	return true;
}

static bool rd_u16(struct rd *r, uint16_t *v)
{
	if (r->left < 2)
		return false;
	*v = (uint16_t)(r->p[0] << 8 | r->p[1]);
	r->p += 2;
	r->left -= 2;
	return true;
}

/* Take the next n bytes as a reader of their own. */
static bool rd_sub(struct rd *r, size_t n, struct rd *sub)
{
	if (r->left < n)
		return false;
	sub->p = r->p;
	sub->left = n;
	r->p += n;
	r->left -= n;
	return true;
}

static bool rd_skip(struct rd *r, size_t n)
{
	struct rd unused;

	return rd_sub(r, n, &unused);
}

static enum tls_peek_result bad(struct tls_hello *h, const char *why)
{
	h->reason = why;
	return TLS_PEEK_BAD;
}

static enum tls_peek_result not_tls(struct tls_hello *h, const char *why)
{
	h->reason = why;
	return TLS_PEEK_NOT_TLS;
}

/* Ask for input up to need bytes, unless the caller can never hold them. */
static enum tls_peek_result more(struct tls_hello *h, size_t need, size_t max)
{
	if (need > max)
		return bad(h, "ClientHello records larger than the peek buffer");
	h->need = need;
	return TLS_PEEK_INCOMPLETE;
}

/* ---- extensions ---- */

static void set_sni(struct tls_hello *h, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		h->sni[i] = (char)(p[i] >= 'A' && p[i] <= 'Z' ? p[i] + ('a' - 'A') : p[i]);
	/* "www.example.com." is the same name, fully qualified */
	if (n > 1 && h->sni[n - 1] == '.')
		n--;
	h->sni[n] = '\0';
	h->sni_len = (uint16_t)n;
	h->has_sni = true;
	h->sni_valid = util_dns_name_valid(h->sni, n);
}

/* server_name: exactly one host_name entry, as OpenSSL and BoringSSL
 * accept it; a second name could route one way and serve another. */
static enum tls_peek_result ext_server_name(struct rd *e, struct tls_hello *h)
{
	struct rd name;
	uint16_t llen, nlen;
	uint8_t type;

	if (e->left == 0)
		return bad(h, "empty server_name extension");
	if (!rd_u16(e, &llen) || llen != e->left || llen == 0)
		return bad(h, "server_name list length does not match its extension");
	if (!rd_u8(e, &type) || !rd_u16(e, &nlen) || !rd_sub(e, nlen, &name))
		return bad(h, "server_name entry runs past its list");
	if (type != SNI_HOST_NAME)
		return bad(h, "server_name entry is not a host_name");
	if (e->left != 0)
		return bad(h, "more than one entry in server_name");
	if (nlen == 0)
		return bad(h, "empty host name in server_name");
	if (nlen > TLS_SNI_MAX)
		return bad(h, "host name in server_name longer than 255 bytes");
	set_sni(h, name.p, nlen);
	return TLS_PEEK_OK;
}

static enum tls_peek_result ext_alpn(struct rd *e, struct tls_hello *h)
{
	struct rd list;
	uint16_t llen;

	if (!rd_u16(e, &llen) || llen != e->left)
		return bad(h, "ALPN list length does not match its extension");
	if (llen == 0)
		return bad(h, "empty ALPN list");
	h->alpn = e->p;
	h->alpn_len = llen;
	list = *e;
	while (list.left > 0) {
		uint8_t n;

		if (!rd_u8(&list, &n) || n == 0)
			return bad(h, "empty ALPN protocol name");
		if (!rd_skip(&list, n))
			return bad(h, "ALPN protocol name runs past its list");
	}
	return TLS_PEEK_OK;
}

static enum tls_peek_result ext_versions(struct rd *e, struct tls_hello *h)
{
	uint8_t n;
	uint16_t v;

	if (!rd_u8(e, &n) || n != e->left || n < 2 || n % 2 != 0)
		return bad(h, "supported_versions list length is wrong");
	while (rd_u16(e, &v))
		h->tls13 = h->tls13 || v == 0x0304;
	return TLS_PEEK_OK;
}

/* Extensions we read may appear once (RFC 8446 section 4.2): a duplicate
 * leaves "which one counts" to whoever looks, so it is refused here (the
 * backend's TLS library refuses it too). Others are the backend's. */
static enum tls_peek_result parse_extension(uint16_t type, struct rd *e, unsigned *seen,
					    struct tls_hello *h)
{
	static const char *const dup[] = {
	    "duplicate server_name extension",
	    "duplicate ALPN extension",
	    "duplicate supported_versions extension",
	    "duplicate encrypted_client_hello extension",
	};
	int once = type == EXT_SERVER_NAME	    ? 0
		   : type == EXT_ALPN		    ? 1
		   : type == EXT_SUPPORTED_VERSIONS ? 2
		   : type == EXT_ECH		    ? 3
						    : -1;

	if (once >= 0) {
		if (*seen & (1u << once))
			return bad(h, dup[once]);
		*seen |= 1u << once;
	}
	switch (type) {
	case EXT_SERVER_NAME:
		return ext_server_name(e, h);
	case EXT_ALPN:
		return ext_alpn(e, h);
	case EXT_SUPPORTED_VERSIONS:
		return ext_versions(e, h);
	case EXT_ECH:
		/* the outer hello: its server_name is the public name */
		h->ech = true;
		return TLS_PEEK_OK;
	default:
		return TLS_PEEK_OK; /* GREASE and everything else: not ours */
	}
}

/* The ClientHello body (RFC 8446 section 4.1.2; RFC 5246 section 7.4.1.2
 * for the older versions, whose extensions block may be absent). */
static enum tls_peek_result parse_hello(const uint8_t *m, size_t n, struct tls_hello *h)
{
	struct rd r = {m, n};
	uint16_t ver, cslen, extlen;
	uint8_t sidlen, complen;
	unsigned seen = 0;

	if (!rd_u16(&r, &ver) || !rd_skip(&r, 32))
		return bad(h, "ClientHello too short");
	if (ver >> 8 != 3)
		return bad(h, "client_version is not 3.x");
	h->version = ver;
	if (!rd_u8(&r, &sidlen) || sidlen > 32 || !rd_skip(&r, sidlen))
		return bad(h, "bad legacy_session_id");
	if (!rd_u16(&r, &cslen) || cslen < 2 || cslen % 2 != 0 || !rd_skip(&r, cslen))
		return bad(h, "bad cipher_suites");
	if (!rd_u8(&r, &complen) || complen < 1 || !rd_skip(&r, complen))
		return bad(h, "bad compression_methods");
	if (r.left == 0)
		return TLS_PEEK_OK;
	if (!rd_u16(&r, &extlen) || extlen != r.left)
		return bad(h, "extensions length does not match the ClientHello");
	while (r.left > 0) {
		uint16_t type, elen;
		struct rd e;
		enum tls_peek_result rc;

		if (!rd_u16(&r, &type) || !rd_u16(&r, &elen) || !rd_sub(&r, elen, &e))
			return bad(h, "extension runs past the extensions block");
		rc = parse_extension(type, &e, &seen, h);
		if (rc != TLS_PEEK_OK)
			return rc;
	}
	return TLS_PEEK_OK;
}

/* ---- framing ---- */

/* SSL 2.0-format hello (RFC 5246 appendix E.2; SSL 2.0 itself has version
 * 0x0002): a 2-byte header with the high bit set, no extensions, so no
 * server name. */
static enum tls_peek_result peek_sslv2(const uint8_t *buf, size_t len, size_t max,
				       struct tls_hello *h)
{
	size_t mlen, cs, sid, chal;

	if (len < 5)
		return more(h, 5, max);
	if (buf[2] != HS_CLIENT_HELLO || !(buf[3] == 3 || (buf[3] == 0 && buf[4] == 2)))
		return not_tls(h, "first bytes are not a TLS or SSL 2.0 ClientHello");
	mlen = (size_t)(buf[0] & 0x7f) << 8 | buf[1];
	if (mlen < 9)
		return bad(h, "SSL 2.0 ClientHello too short");
	if (len < 2 + mlen)
		return more(h, 2 + mlen, max);
	cs = (size_t)buf[5] << 8 | buf[6];
	sid = (size_t)buf[7] << 8 | buf[8];
	chal = (size_t)buf[9] << 8 | buf[10];
	if (cs == 0 || cs % 3 != 0 || sid > 32 || chal < 16 || chal > 32 ||
	    9 + cs + sid + chal != mlen)
		return bad(h, "SSL 2.0 ClientHello lengths do not add up");
	h->sslv2 = true;
	h->version = (uint16_t)(buf[3] << 8 | buf[4]);
	h->records = 1;
	h->end = 2 + mlen;
	return TLS_PEEK_OK;
}

/* Copy the handshake message, total bytes, out of the records into out. */
static void reassemble(const uint8_t *buf, size_t total, uint8_t *out)
{
	size_t off = 0, got = 0;

	while (got < total) {
		size_t rlen = (size_t)buf[off + 3] << 8 | buf[off + 4];
		size_t n = UTIL_MIN(rlen, total - got);

		memcpy(out + got, buf + off + REC_HDR, n);
		got += n;
		off += REC_HDR + rlen;
	}
}

/* Handshake records until the ClientHello message is complete. */
static enum tls_peek_result peek_records(const uint8_t *buf, size_t len, size_t max,
					 uint8_t *scratch, struct tls_hello *h)
{
	uint8_t hs[HS_HDR];
	size_t off = 0, seen = 0, total = 0;

	for (;;) {
		size_t rlen, body, avail, before;

		if (len < off + REC_HDR)
			return more(h, off + REC_HDR, max);
		/* handshake messages are not interleaved with other records */
		if (buf[off] != CT_HANDSHAKE)
			return bad(h, "another record type before the ClientHello was complete");
		if (buf[off + 1] != 3)
			return bad(h, "record version is not 3.x");
		rlen = (size_t)buf[off + 3] << 8 | buf[off + 4];
		if (rlen == 0)
			return bad(h, "empty handshake record");
		if (rlen > REC_MAX)
			return bad(h, "record longer than 16384 bytes");
		h->records++;
		body = off + REC_HDR;
		avail = UTIL_MIN(rlen, len - body);
		before = seen;
		seen += avail;
		for (size_t i = before; i < HS_HDR && i < seen; i++)
			hs[i] = buf[body + i - before];
		if (seen >= 1 && hs[0] != HS_CLIENT_HELLO)
			return bad(h, "the first handshake message is not a ClientHello");
		if (total == 0 && seen >= HS_HDR) {
			size_t mlen = (size_t)hs[1] << 16 | (size_t)hs[2] << 8 | hs[3];

			if (mlen > TLS_HELLO_MAX - HS_HDR)
				return bad(h, "ClientHello longer than 16384 bytes");
			if (mlen < HELLO_MIN_BODY)
				return bad(h, "ClientHello too short");
			total = HS_HDR + mlen;
			if (body + (total - before) > max)
				return bad(h, "ClientHello records larger than the peek buffer");
		}
		if (total != 0 && seen >= total) {
			const uint8_t *msg = buf + REC_HDR;

			h->end = body + (total - before);
			if (h->records > 1) {
				reassemble(buf, total, scratch);
				msg = scratch;
			}
			return parse_hello(msg + HS_HDR, total - HS_HDR, h);
		}
		if (avail < rlen) {
			/* the rest of this record, or of what is missing */
			size_t want = total != 0 ? total - seen : HS_HDR - seen;

			return more(h, len + UTIL_MIN(rlen - avail, want), max);
		}
		off = body + rlen;
	}
}

enum tls_peek_result tls_peek(const uint8_t *buf, size_t len, size_t max, uint8_t *scratch,
			      struct tls_hello *h)
{
	memset(h, 0, sizeof(*h));
	if (len == 0)
		return more(h, 1, max);
	if (buf[0] == CT_HANDSHAKE) {
		/* 16 03 0x: a TLS handshake record (SSL 3.0 to TLS 1.3) */
		if ((len >= 2 && buf[1] != 3) || (len >= 3 && buf[2] > 4))
			return not_tls(h, "first bytes are not a TLS or SSL 2.0 ClientHello");
		return peek_records(buf, len, max, scratch, h);
	}
	if (buf[0] & 0x80)
		return peek_sslv2(buf, len, max, h);
	return not_tls(h, "first bytes are not a TLS or SSL 2.0 ClientHello");
}
