/* Unit tests for the ClientHello peek: hellos built byte by byte here (TLS
 * 1.0-1.3 shapes, SSL 2.0 format, GREASE, ECH, IDN, trailing dots, empty
 * and duplicate extensions), fragmented over records and cut at every
 * length; every malformed field has its verdict and reason; log fields
 * stay printable and bounded. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sluice/tls.h"
#include "sluice/util.h"

#define BIG 70000

/* ---- building hellos ---- */

struct bytes {
	uint8_t b[BIG];
	size_t n;
};

static void put8(struct bytes *o, unsigned v)
{
	assert_true(o->n < BIG);
	o->b[o->n++] = (uint8_t)v;
}

static void put16(struct bytes *o, unsigned v)
{
	put8(o, v >> 8);
	put8(o, v & 0xff);
}

static void putn(struct bytes *o, const void *p, size_t n)
{
	assert_true(o->n + n <= BIG);
	memcpy(o->b + o->n, p, n);
	o->n += n;
}

/* An extension: type, 16-bit length, data. */
static void ext(struct bytes *o, unsigned type, const void *data, size_t n)
{
	put16(o, type);
	put16(o, (unsigned)n);
	putn(o, data, n);
}

static void ext_sni(struct bytes *o, const char *name, size_t n)
{
	struct bytes e = {.n = 0};

	put16(&e, (unsigned)(n + 3));
	put8(&e, 0); /* host_name */
	put16(&e, (unsigned)n);
	putn(&e, name, n);
	ext(o, 0, e.b, e.n);
}

/* ALPN from a list of NUL-separated names ending with an empty one. */
static void ext_alpn(struct bytes *o, const char *names)
{
	struct bytes e = {.n = 0}, l = {.n = 0};

	for (const char *p = names; *p != '\0'; p += strlen(p) + 1) {
		put8(&l, (unsigned)strlen(p));
		putn(&l, p, strlen(p));
	}
	put16(&e, (unsigned)l.n);
	putn(&e, l.b, l.n);
	ext(o, 16, e.b, e.n);
}

static void ext_versions13(struct bytes *o)
{
	static const uint8_t v[] = {6, 0x7a, 0x7a, 0x03, 0x04, 0x03, 0x03};

	ext(o, 43, v, sizeof(v));
}

/* A ClientHello handshake message (header included) with these
 * extensions; exts NULL: no extensions block at all. */
static void hello_msg(struct bytes *o, const struct bytes *exts)
{
	struct bytes body = {.n = 0};
	uint8_t random[32], sid[32];

	memset(random, 0x5a, sizeof(random));
	memset(sid, 0x11, sizeof(sid));
	put16(&body, 0x0303);
	putn(&body, random, sizeof(random));
	put8(&body, sizeof(sid));
	putn(&body, sid, sizeof(sid));
	put16(&body, 8); /* GREASE, then three real suites */
	put16(&body, 0x2a2a);
	put16(&body, 0x1301);
	put16(&body, 0x1302);
	put16(&body, 0xc02f);
	put8(&body, 1);
	put8(&body, 0);
	if (exts != NULL) {
		put16(&body, (unsigned)exts->n);
		putn(&body, exts->b, exts->n);
	}
	put8(o, 1);
	put8(o, (unsigned)(body.n >> 16));
	put16(o, body.n & 0xffff);
	putn(o, body.b, body.n);
}

/* Wrap msg into handshake records of at most frag bytes each. */
static void records(struct bytes *o, const struct bytes *msg, size_t frag)
{
	for (size_t off = 0; off < msg->n; off += frag) {
		size_t n = UTIL_MIN(frag, msg->n - off);

		put8(o, 22);
		put16(o, 0x0301);
		put16(o, (unsigned)n);
		putn(o, msg->b + off, n);
	}
}

/* The usual modern hello: GREASE, SNI, ALPN h2 + http/1.1, versions. */
static void modern_exts(struct bytes *e, const char *sni)
{
	e->n = 0;
	ext(e, 0x0a0a, "", 0);
	ext_sni(e, sni, strlen(sni));
	ext_alpn(e, "h2\0http/1.1\0");
	ext_versions13(e);
	ext(e, 0x1a1a, "\0", 1);
}

static struct bytes *new_bytes(void)
{
	struct bytes *b = calloc(1, sizeof(*b));

	assert_non_null(b);
	return b;
}

static uint8_t scratch[TLS_HELLO_MAX];

static enum tls_peek_result peek(const struct bytes *in, struct tls_hello *h)
{
	return tls_peek(in->b, in->n, 16384, scratch, h);
}

/* ---- tests ---- */

static void test_modern_hello(void **state)
{
	struct bytes *e = new_bytes(), *m = new_bytes(), *in = new_bytes();
	struct tls_hello h;
	char buf[64];

	(void)state;
	modern_exts(e, "api.example.com");
	hello_msg(m, e);
	records(in, m, 16384);
	assert_int_equal(peek(in, &h), TLS_PEEK_OK);
	assert_true(h.has_sni && h.sni_valid);
	assert_string_equal(h.sni, "api.example.com");
	assert_int_equal(h.sni_len, 15);
	assert_true(h.tls13);
	assert_false(h.sslv2 || h.ech);
	assert_int_equal(h.version, 0x0303);
	assert_int_equal(h.records, 1);
	assert_int_equal(h.end, in->n);
	assert_true(tls_alpn_offers(&h, "h2", 2));
	assert_true(tls_alpn_offers(&h, "http/1.1", 8));
	assert_false(tls_alpn_offers(&h, "h3", 2));
	assert_false(tls_alpn_offers(&h, "h", 1));
	assert_string_equal(tls_log_sni(&h, buf, sizeof(buf)), "api.example.com");
	assert_string_equal(tls_log_alpn(&h, buf, sizeof(buf)), "h2,http/1.1");
	free(e);
	free(m);
	free(in);
}

/* Every strict prefix is INCOMPLETE with a need inside the hello; bytes
 * after the hello change nothing; following need reaches the end in a
 * few calls, whatever the fragmentation. */
static void check_prefixes(const struct bytes *in, size_t hello_end)
{
	struct tls_hello h;
	size_t len = 0, calls = 0;

	for (size_t k = 0; k < hello_end; k++) {
		assert_int_equal(tls_peek(in->b, k, 16384, scratch, &h), TLS_PEEK_INCOMPLETE);
		assert_true(h.need > k);
		assert_true(h.need <= hello_end);
	}
	for (size_t k = hello_end; k <= in->n; k++) {
		assert_int_equal(tls_peek(in->b, k, 16384, scratch, &h), TLS_PEEK_OK);
		assert_int_equal(h.end, hello_end);
	}
	while (tls_peek(in->b, len, 16384, scratch, &h) == TLS_PEEK_INCOMPLETE) {
		len = h.need;
		calls++;
		assert_true(calls <= 2 * h.records + 3);
	}
}

static void test_prefixes_and_trailing_data(void **state)
{
	struct bytes *e = new_bytes(), *m = new_bytes(), *in = new_bytes();

	(void)state;
	modern_exts(e, "www.example.com");
	hello_msg(m, e);
	records(in, m, 16384);
	size_t end = in->n;

	/* a ChangeCipherSpec record and early data after the hello */
	putn(in, "\x14\x03\x03\x00\x01\x01\x17\x03\x03\x00\x02hi", 13);
	check_prefixes(in, end);
	free(e);
	free(m);
	free(in);
}

/* The hello split over two records at every point, and over one record
 * per byte: the message is reassembled and parses the same. */
static void test_fragmented_records(void **state)
{
	struct bytes *e = new_bytes(), *m = new_bytes(), *in = new_bytes();
	struct tls_hello h;

	(void)state;
	modern_exts(e, "frag.example.com");
	hello_msg(m, e);
	for (size_t split = 1; split < m->n; split++) {
		in->n = 0;
		records(in, m, split); /* first record split bytes, then the rest */
		if (split < m->n / 2) {
			/* records() cut it into many: rebuild as exactly two */
			in->n = 0;
			put8(in, 22);
			put16(in, 0x0301);
			put16(in, (unsigned)split);
			putn(in, m->b, split);
			put8(in, 22);
			put16(in, 0x0303);
			put16(in, (unsigned)(m->n - split));
			putn(in, m->b + split, m->n - split);
		}
		assert_int_equal(peek(in, &h), TLS_PEEK_OK);
		assert_string_equal(h.sni, "frag.example.com");
		assert_true(tls_alpn_offers(&h, "http/1.1", 8));
		assert_true(h.records >= 2);
	}
	in->n = 0;
	records(in, m, 1);
	assert_int_equal(peek(in, &h), TLS_PEEK_OK);
	assert_int_equal(h.records, m->n);
	assert_string_equal(h.sni, "frag.example.com");
	assert_true(tls_alpn_offers(&h, "h2", 2));
	check_prefixes(in, in->n);
	/* a record that goes on past the end of the hello: the hello counts */
	in->n = 0;
	put8(in, 22);
	put16(in, 0x0301);
	put16(in, (unsigned)(m->n + 10));
	putn(in, m->b, m->n);
	putn(in, "0123456789", 10);
	assert_int_equal(peek(in, &h), TLS_PEEK_OK);
	assert_int_equal(h.end, 5 + m->n);
	assert_int_equal(tls_peek(in->b, 5 + m->n, 16384, scratch, &h), TLS_PEEK_OK);
	free(e);
	free(m);
	free(in);
}

/* A post-quantum-sized hello (X25519MLKEM768 key share: 1 216 bytes) and
 * one above 4 KiB with many extensions; the 16 KiB limits exactly. */
static void test_large_hellos(void **state)
{
	struct bytes *e = new_bytes(), *m = new_bytes(), *in = new_bytes();
	static uint8_t blob[17000];
	struct tls_hello h;

	(void)state;
	memset(blob, 0xab, sizeof(blob));
	modern_exts(e, "pq.example.com");
	ext(e, 51, blob, 2 + 4 + 1216 + 4 + 32); /* key_share */
	hello_msg(m, e);
	records(in, m, 16384);
	assert_true(in->n > 1400);
	assert_int_equal(peek(in, &h), TLS_PEEK_OK);
	assert_string_equal(h.sni, "pq.example.com");
	check_prefixes(in, in->n);

	/* 100 extensions of 40 bytes, the name last */
	e->n = 0;
	for (unsigned i = 0; i < 100; i++)
		ext(e, 0x1000 + i, blob, 40);
	ext_alpn(e, "acme-tls/1\0");
	ext_sni(e, "big.example.com", 15);
	m->n = in->n = 0;
	hello_msg(m, e);
	records(in, m, 16384);
	assert_true(in->n > 4096);
	assert_int_equal(peek(in, &h), TLS_PEEK_OK);
	assert_string_equal(h.sni, "big.example.com");
	assert_true(tls_alpn_offers(&h, "acme-tls/1", 10));

	/* a message of exactly 16384 bytes fits a 16389-byte buffer in one
	 * record, not a 16384-byte one; one byte more is refused at once */
	e->n = 0;
	ext_sni(e, "max.example.com", 15);
	size_t fixed = 4 + 2 + 32 + 1 + 32 + 2 + 8 + 2 + 2 + e->n + 4;

	ext(e, 21, blob, TLS_HELLO_MAX - fixed); /* padding */
	m->n = in->n = 0;
	hello_msg(m, e);
	assert_int_equal(m->n, TLS_HELLO_MAX);
	records(in, m, 16384);
	assert_int_equal(tls_peek(in->b, in->n, in->n, scratch, &h), TLS_PEEK_OK);
	assert_string_equal(h.sni, "max.example.com");
	assert_int_equal(tls_peek(in->b, 100, 16384, scratch, &h), TLS_PEEK_BAD);
	assert_string_equal(h.reason, "ClientHello records larger than the peek buffer");
	/* two records: the scratch buffer takes the whole message */
	in->n = 0;
	records(in, m, 9000);
	assert_int_equal(tls_peek(in->b, in->n, in->n, scratch, &h), TLS_PEEK_OK);
	assert_string_equal(h.sni, "max.example.com");
	e->n = 0;
	ext_sni(e, "max.example.com", 15);
	ext(e, 21, blob, TLS_HELLO_MAX - fixed + 1);
	m->n = in->n = 0;
	hello_msg(m, e);
	records(in, m, 8000);
	assert_int_equal(tls_peek(in->b, 9, 100000, scratch, &h), TLS_PEEK_BAD);
	assert_string_equal(h.reason, "ClientHello longer than 16384 bytes");
	free(e);
	free(m);
	free(in);
}

/* A buffer that fills before the hello is complete ends the wait. */
static void test_buffer_limit(void **state)
{
	struct bytes *e = new_bytes(), *m = new_bytes(), *in = new_bytes();
	static uint8_t blob[3000];
	struct tls_hello h;

	(void)state;
	ext_sni(e, "limit.example.com", 17);
	ext(e, 21, blob, sizeof(blob));
	hello_msg(m, e);
	records(in, m, 100); /* 5 bytes of overhead per 100 */
	assert_int_equal(tls_peek(in->b, in->n, in->n, scratch, &h), TLS_PEEK_OK);
	assert_int_equal(tls_peek(in->b, in->n - 1, in->n - 1, scratch, &h), TLS_PEEK_BAD);
	assert_string_equal(h.reason, "ClientHello records larger than the peek buffer");
	/* with room for the message but not the record headers */
	assert_int_equal(tls_peek(in->b, 2000, m->n + 5, scratch, &h), TLS_PEEK_INCOMPLETE);
	assert_int_equal(tls_peek(in->b, m->n + 5, m->n + 5, scratch, &h), TLS_PEEK_BAD);
	free(e);
	free(m);
	free(in);
}

static void test_not_tls(void **state)
{
#define S(x)                                                                                       \
	{                                                                                          \
		x, sizeof(x) - 1                                                                   \
	}
	static const struct {
		const char *s;
		size_t n;
	} plain[] = {
	    S("GET / HTTP/1.1\r\nHost: a\r\n\r\n"),
	    S("SSH-2.0-OpenSSH_9.2\r\n"),
	    S("\x01\x02"),
	    S("\x15\x03\x01"),
	    S("\x16\x02\x00\x00\x10"),
	    S("\x16\x03\x05\x00\x10"),
	    S("PRI * HTTP/2.0\r\n"),
	    S("\x80\x2e\x04\x00\x02"), /* SSL 2.0 SERVER-HELLO */
	    S("\x80\x2e\x01\x02\x00"),
	    S("\0\0\0\0\0"),
	};
#undef S
	struct tls_hello h;

	(void)state;
	for (size_t i = 0; i < UTIL_ARRAY_LEN(plain); i++) {
		assert_int_equal(
		    tls_peek((const uint8_t *)plain[i].s, plain[i].n, 16384, scratch, &h),
		    TLS_PEEK_NOT_TLS);
		assert_string_equal(h.reason, "first bytes are not a TLS or SSL 2.0 ClientHello");
	}
	/* decided on the first byte when it can be */
	assert_int_equal(tls_peek((const uint8_t *)"G", 1, 16384, scratch, &h), TLS_PEEK_NOT_TLS);
	assert_int_equal(tls_peek((const uint8_t *)"\x16", 1, 16384, scratch, &h),
			 TLS_PEEK_INCOMPLETE);
	assert_int_equal(h.need, 5);
	assert_int_equal(tls_peek((const uint8_t *)"\x16\x03", 2, 16384, scratch, &h),
			 TLS_PEEK_INCOMPLETE);
	assert_int_equal(tls_peek(NULL, 0, 16384, scratch, &h), TLS_PEEK_INCOMPLETE);
	assert_int_equal(h.need, 1);
	assert_int_equal(tls_peek((const uint8_t *)"\x80", 1, 16384, scratch, &h),
			 TLS_PEEK_INCOMPLETE);
}

/* SSL 2.0-format hellos (RFC 5246 E.2), as old clients sent them to
 * negotiate TLS, and a pure SSL 2.0 one: valid hellos with no name. */
static void sslv2_hello(struct bytes *o, unsigned ver, size_t cs, size_t sid, size_t chal)
{
	size_t mlen = 9 + cs + sid + chal;

	o->n = 0;
	put8(o, 0x80 | (unsigned)(mlen >> 8));
	put8(o, mlen & 0xff);
	put8(o, 1);
	put16(o, ver);
	put16(o, (unsigned)cs);
	put16(o, (unsigned)sid);
	put16(o, (unsigned)chal);
	for (size_t i = 0; i < cs + sid + chal; i++)
		put8(o, (unsigned)i);
}

static void test_sslv2(void **state)
{
	struct bytes *in = new_bytes();
	struct tls_hello h;
	char buf[16];

	(void)state;
	sslv2_hello(in, 0x0301, 3 * 20, 0, 32);
	assert_int_equal(peek(in, &h), TLS_PEEK_OK);
	assert_true(h.sslv2);
	assert_false(h.has_sni);
	assert_null(h.alpn);
	assert_int_equal(h.version, 0x0301);
	assert_int_equal(h.end, in->n);
	assert_string_equal(tls_log_sni(&h, buf, sizeof(buf)), "-");
	assert_string_equal(tls_log_alpn(&h, buf, sizeof(buf)), "-");
	check_prefixes(in, in->n);
	sslv2_hello(in, 0x0002, 3 * 7, 16, 16);
	assert_int_equal(peek(in, &h), TLS_PEEK_OK);
	assert_int_equal(h.version, 0x0002);
	/* lengths that do not add up, a bad cipher spec length, a short challenge */
	sslv2_hello(in, 0x0301, 3 * 20, 0, 32);
	in->b[1]++;
	put8(in, 0);
	assert_int_equal(peek(in, &h), TLS_PEEK_BAD);
	assert_string_equal(h.reason, "SSL 2.0 ClientHello lengths do not add up");
	sslv2_hello(in, 0x0301, 31, 0, 32);
	assert_int_equal(peek(in, &h), TLS_PEEK_BAD);
	sslv2_hello(in, 0x0301, 30, 0, 8);
	assert_int_equal(peek(in, &h), TLS_PEEK_BAD);
	sslv2_hello(in, 0x0301, 30, 33, 16);
	assert_int_equal(peek(in, &h), TLS_PEEK_BAD);
	free(in);
}

static void test_grease_and_ech(void **state)
{
	struct bytes *e = new_bytes(), *m = new_bytes(), *in = new_bytes();
	struct tls_hello h;
	char buf[64];

	(void)state;
	ext(e, 0xdada, "", 0);
	ext_sni(e, "public.example.net", 18);
	ext_alpn(e, "\x3a\x3a\0h2\0");
	ext(e, 0xfe0d, "\x00\x00\x01\x00\x01\x42", 6); /* outer ECH */
	ext(e, 0xdada + 0x1010, "x", 1);
	ext(e, 0x0a0a, "", 0); /* the same GREASE value twice: not ours to judge */
	hello_msg(m, e);
	records(in, m, 16384);
	assert_int_equal(peek(in, &h), TLS_PEEK_OK);
	assert_true(h.ech);
	assert_string_equal(h.sni, "public.example.net");
	assert_true(tls_alpn_offers(&h, "h2", 2));
	assert_string_equal(tls_log_alpn(&h, buf, sizeof(buf)), "h2");
	assert_true(tls_is_grease(0x0a0a) && tls_is_grease(0xfafa) && tls_is_grease(0x3a3a));
	assert_false(tls_is_grease(0x0a1a) || tls_is_grease(0x0b0b) || tls_is_grease(0x1301));
	free(e);
	free(m);
	free(in);
}

/* Build a hello with these extensions and return the verdict. */
static enum tls_peek_result with_exts(const struct bytes *e, struct tls_hello *h)
{
	static struct bytes m, in;

	m.n = in.n = 0;
	hello_msg(&m, e);
	records(&in, &m, 16384);
	return peek(&in, h);
}

static void expect_bad(const struct bytes *e, const char *reason)
{
	struct tls_hello h;

	assert_int_equal(with_exts(e, &h), TLS_PEEK_BAD);
	assert_string_equal(h.reason, reason);
}

static void test_duplicate_and_empty_extensions(void **state)
{
	struct bytes *e = new_bytes();
	struct tls_hello h;

	(void)state;
	ext_sni(e, "a.example", 9);
	ext_sni(e, "b.example", 9);
	expect_bad(e, "duplicate server_name extension");
	e->n = 0;
	ext_alpn(e, "h2\0");
	ext_alpn(e, "h2\0");
	expect_bad(e, "duplicate ALPN extension");
	e->n = 0;
	ext_versions13(e);
	ext_versions13(e);
	expect_bad(e, "duplicate supported_versions extension");
	e->n = 0;
	ext(e, 0xfe0d, "", 0);
	ext(e, 0xfe0d, "", 0);
	expect_bad(e, "duplicate encrypted_client_hello extension");
	/* a duplicate of an extension we do not read is the backend's to judge */
	e->n = 0;
	ext(e, 23, "", 0);
	ext(e, 23, "", 0);
	assert_int_equal(with_exts(e, &h), TLS_PEEK_OK);
	/* empty ones */
	e->n = 0;
	ext(e, 0, "", 0);
	expect_bad(e, "empty server_name extension");
	e->n = 0;
	ext(e, 0, "\x00\x00", 2);
	expect_bad(e, "server_name list length does not match its extension");
	e->n = 0;
	ext(e, 0, "\x00\x03\x00\x00\x00", 5);
	expect_bad(e, "empty host name in server_name");
	e->n = 0;
	ext(e, 16, "", 0);
	expect_bad(e, "ALPN list length does not match its extension");
	e->n = 0;
	ext(e, 16, "\x00\x00", 2);
	expect_bad(e, "empty ALPN list");
	e->n = 0;
	ext(e, 16, "\x00\x03\x02h2\x00", 6);
	expect_bad(e, "ALPN list length does not match its extension");
	e->n = 0;
	ext(e, 16, "\x00\x04\x02h2\x00", 6);
	expect_bad(e, "empty ALPN protocol name");
	e->n = 0;
	ext(e, 16, "\x00\x04\x02h2\x05", 6);
	expect_bad(e, "ALPN protocol name runs past its list");
	e->n = 0;
	ext(e, 43, "", 0);
	expect_bad(e, "supported_versions list length is wrong");
	/* empty extensions of other types are normal (extended_master_secret) */
	e->n = 0;
	ext(e, 23, "", 0);
	ext(e, 0xff01, "\x00", 1);
	assert_int_equal(with_exts(e, &h), TLS_PEEK_OK);
	assert_false(h.has_sni);
	assert_null(h.alpn);
	/* an empty extensions block */
	e->n = 0;
	assert_int_equal(with_exts(e, &h), TLS_PEEK_OK);
	assert_false(h.has_sni);
	free(e);
}

static void test_server_name_entries(void **state)
{
	struct bytes *e = new_bytes();
	struct tls_hello h;
	static char name[300];

	(void)state;
	/* two host names in one extension */
	ext(e, 0, "\x00\x08\x00\x00\x01x\x00\x00\x01y", 10);
	expect_bad(e, "more than one entry in server_name");
	e->n = 0;
	ext(e, 0, "\x00\x04\x01\x00\x01x", 6);
	expect_bad(e, "server_name entry is not a host_name");
	e->n = 0;
	ext(e, 0, "\x00\x05\x00\x00\x05x", 6);
	expect_bad(e, "server_name list length does not match its extension");
	e->n = 0;
	ext(e, 0, "\x00\x04\x00\x00\x05x", 6);
	expect_bad(e, "server_name entry runs past its list");
	/* 255 bytes are kept (not a DNS name: too long), 256 are refused */
	memset(name, 'a', sizeof(name));
	for (size_t i = 50; i < 255; i += 50)
		name[i] = '.';
	e->n = 0;
	ext_sni(e, name, 255);
	assert_int_equal(with_exts(e, &h), TLS_PEEK_OK);
	assert_true(h.has_sni);
	assert_false(h.sni_valid);
	assert_int_equal(h.sni_len, 255);
	e->n = 0;
	ext_sni(e, name, 253);
	assert_int_equal(with_exts(e, &h), TLS_PEEK_OK);
	assert_true(h.sni_valid);
	e->n = 0;
	ext_sni(e, name, 256);
	expect_bad(e, "host name in server_name longer than 255 bytes");
	free(e);
}

/* How names come out: case, trailing dot, A-labels, bytes that are not a
 * DNS name (kept, never matching a route, printable in the log). */
static void sni_of(const char *wire, size_t n, struct tls_hello *h)
{
	struct bytes *e = new_bytes();

	ext_sni(e, wire, n);
	assert_int_equal(with_exts(e, h), TLS_PEEK_OK);
	assert_true(h->has_sni);
	free(e);
}

static void test_name_forms(void **state)
{
	struct tls_hello h;
	char buf[300];

	(void)state;
	sni_of("WWW.Example.COM.", 16, &h);
	assert_string_equal(h.sni, "www.example.com");
	assert_true(h.sni_valid);
	sni_of("xn--bcher-kva.example", 21, &h);
	assert_string_equal(h.sni, "xn--bcher-kva.example");
	assert_true(h.sni_valid);
	sni_of("b\xc3\xbc"
	       "cher.example",
	       15, &h); /* a U-label in UTF-8 */
	assert_false(h.sni_valid);
	assert_string_equal(tls_log_sni(&h, buf, sizeof(buf)), "b??cher.example");
	sni_of("a\0b.example", 11, &h);
	assert_false(h.sni_valid);
	assert_int_equal(h.sni_len, 11);
	assert_string_equal(tls_log_sni(&h, buf, sizeof(buf)), "a?b.example");
	sni_of("192.0.2.1", 9, &h);
	assert_false(h.sni_valid);
	sni_of("a..example", 10, &h);
	assert_false(h.sni_valid);
	sni_of(".", 1, &h);
	assert_false(h.sni_valid);
	assert_string_equal(h.sni, ".");
	sni_of("a.example..", 11, &h);
	assert_string_equal(h.sni, "a.example.");
	assert_false(h.sni_valid);
	sni_of("my_host.example", 15, &h);
	assert_true(h.sni_valid);
	sni_of("a b.example", 11, &h);
	assert_false(h.sni_valid);
	assert_string_equal(tls_log_sni(&h, buf, sizeof(buf)), "a?b.example");
}

/* Old shapes: no extensions block (SSL 3.0 / TLS 1.0), record versions
 * 3.0 to 3.3. */
static void test_versions(void **state)
{
	struct bytes *m = new_bytes(), *in = new_bytes();
	struct tls_hello h;

	(void)state;
	hello_msg(m, NULL);
	for (unsigned minor = 0; minor <= 4; minor++) {
		in->n = 0;
		records(in, m, 16384);
		in->b[2] = (uint8_t)minor;
		assert_int_equal(peek(in, &h), TLS_PEEK_OK);
		assert_false(h.has_sni || h.tls13);
		assert_null(h.alpn);
	}
	m->b[5] = 0x00; /* client_version 3.0 */
	in->n = 0;
	records(in, m, 16384);
	assert_int_equal(peek(in, &h), TLS_PEEK_OK);
	assert_int_equal(h.version, 0x0300);
	free(m);
	free(in);
}

/* Each structural mistake has its verdict. */
static void test_malformed(void **state)
{
	struct bytes *e = new_bytes(), *m = new_bytes(), *in = new_bytes();
	struct tls_hello h;

	(void)state;
	modern_exts(e, "x.example");
	hello_msg(m, e);
	records(in, m, 16384);
#define MUTATE(off, val, why)                                                                      \
	do {                                                                                       \
		uint8_t old = in->b[off];                                                          \
		in->b[off] = (uint8_t)(val);                                                       \
		assert_int_equal(peek(in, &h), TLS_PEEK_BAD);                                      \
		assert_string_equal(h.reason, why);                                                \
		in->b[off] = old;                                                                  \
	} while (0)
	MUTATE(5, 2, "the first handshake message is not a ClientHello");
	MUTATE(4, 0, "empty handshake record"); /* the high byte is 0 */
	MUTATE(3, 0x41, "record longer than 16384 bytes");
	MUTATE(9, 2, "client_version is not 3.x");
	MUTATE(9 + 2 + 32, 33, "bad legacy_session_id");
	MUTATE(9 + 2 + 32 + 1 + 32 + 1, 7, "bad cipher_suites");
	MUTATE(9 + 2 + 32 + 1 + 32 + 2 + 8, 0, "bad compression_methods");
	MUTATE(9 + 2 + 32 + 1 + 32 + 2 + 8 + 2 + 1, (e->n & 0xff) ^ 1,
	       "extensions length does not match the ClientHello");
	MUTATE(9 + 2 + 32 + 1 + 32 + 2 + 8 + 2 + 2 + 3, 0xff,
	       "extension runs past the extensions block");
	MUTATE(8, 10, "ClientHello too short");
	/* the message length says more than the extensions hold: waits */
	in->b[8]++;
	assert_int_equal(tls_peek(in->b, in->n, 16384, scratch, &h), TLS_PEEK_INCOMPLETE);
	in->b[8]--;
	/* an alert record, a record of SSL version 2.x, between fragments */
	in->n = 0;
	records(in, m, 50);
	in->b[55] = 21;
	assert_int_equal(peek(in, &h), TLS_PEEK_BAD);
	assert_string_equal(h.reason, "another record type before the ClientHello was complete");
	in->b[55] = 22;
	in->b[56] = 2;
	assert_int_equal(peek(in, &h), TLS_PEEK_BAD);
	assert_string_equal(h.reason, "record version is not 3.x");
	free(e);
	free(m);
	free(in);
#undef MUTATE
}

/* Any single byte changed, any length: a verdict, no read outside the
 * input (the sanitizer build checks that), and the same verdict for the
 * bytes cut to that length as a buffer. */
static void test_every_byte(void **state)
{
	struct bytes *e = new_bytes(), *m = new_bytes(), *in = new_bytes();
	struct tls_hello h;

	(void)state;
	modern_exts(e, "mutate.example.com");
	hello_msg(m, e);
	records(in, m, 60);
	for (size_t i = 0; i < in->n; i++) {
		static const uint8_t vals[] = {0x00, 0x01, 0x7f, 0x80, 0xff};

		for (size_t v = 0; v < sizeof(vals); v++) {
			uint8_t old = in->b[i];
			uint8_t *copy;

			in->b[i] = vals[v];
			enum tls_peek_result r = peek(in, &h);

			copy = malloc(in->n); /* exact size: an over-read shows */
			assert_non_null(copy);
			memcpy(copy, in->b, in->n);
			assert_int_equal(tls_peek(copy, in->n, 16384, scratch, &h), r);
			if (r == TLS_PEEK_OK) {
				assert_true(h.end <= in->n && h.sni_len <= TLS_SNI_MAX);
				assert_true(
				    h.alpn == NULL ||
				    (h.alpn >= scratch &&
				     h.alpn + h.alpn_len <= scratch + sizeof(scratch)) ||
				    (h.alpn >= copy && h.alpn + h.alpn_len <= copy + in->n));
			}
			if (r == TLS_PEEK_INCOMPLETE)
				assert_true(h.need > in->n);
			free(copy);
			in->b[i] = old;
		}
	}
	free(e);
	free(m);
	free(in);
}

static void test_log_fields_are_bounded(void **state)
{
	struct bytes *e = new_bytes();
	struct tls_hello h;
	char small[12], name[200];

	(void)state;
	memset(name, 'q', sizeof(name));
	name[0] = 'A';
	ext_sni(e, name, sizeof(name));
	ext_alpn(e, "h2\0with space\0com,ma\0\x7f\x80\0");
	assert_int_equal(with_exts(e, &h), TLS_PEEK_OK);
	assert_string_equal(tls_log_sni(&h, small, sizeof(small)), "aqqqqqqq...");
	assert_string_equal(tls_log_alpn(&h, name, sizeof(name)), "h2,with?space,com?ma,??");
	assert_string_equal(tls_log_alpn(&h, small, sizeof(small)), "h2,with?...");
	assert_string_equal(tls_log_alpn(&h, small, 6), "h2...");
	free(e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_modern_hello),
	    cmocka_unit_test(test_prefixes_and_trailing_data),
	    cmocka_unit_test(test_fragmented_records),
	    cmocka_unit_test(test_large_hellos),
	    cmocka_unit_test(test_buffer_limit),
	    cmocka_unit_test(test_not_tls),
	    cmocka_unit_test(test_sslv2),
	    cmocka_unit_test(test_grease_and_ech),
	    cmocka_unit_test(test_duplicate_and_empty_extensions),
	    cmocka_unit_test(test_server_name_entries),
	    cmocka_unit_test(test_name_forms),
	    cmocka_unit_test(test_versions),
	    cmocka_unit_test(test_malformed),
	    cmocka_unit_test(test_every_byte),
	    cmocka_unit_test(test_log_fields_are_bounded),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
