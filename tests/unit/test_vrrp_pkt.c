/* Unit tests for vrrp_pkt: encode/decode round trips, hand-checked bytes,
 * one crafted packet per drop reason, VIP list comparison, truncation.
 * Checksums here come from a reference written independently of the codec. */
#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sluice/util.h"
#include "sluice/vrrp.h"

/* ---- helpers ------------------------------------------------------------- */

static struct vrrp_addr a4(const char *s)
{
	struct vrrp_addr a;

	memset(&a, 0, sizeof(a));
	a.family = AF_INET;
	assert_int_equal(inet_pton(AF_INET, s, &a.u.in4), 1);
	return a;
}

static struct vrrp_addr a6(const char *s)
{
	struct vrrp_addr a;

	memset(&a, 0, sizeof(a));
	a.family = AF_INET6;
	assert_int_equal(inet_pton(AF_INET6, s, &a.u.in6), 1);
	return a;
}

/* Reference RFC 1071 checksum over up to three byte ranges, summed as one
 * stream: the complement of the folded 16-bit big-endian sum. */
static uint16_t ref_csum(const uint8_t *p1, size_t n1, const uint8_t *p2, size_t n2)
{
	uint8_t all[2048];
	uint32_t sum = 0;
	size_t n = 0, i;

	assert_true(n1 + n2 <= sizeof(all));
	memcpy(all, p1, n1);
	n += n1;
	if (n2 > 0) {
		memcpy(all + n, p2, n2);
		n += n2;
	}
	for (i = 0; i < n; i += 2)
		sum += (uint32_t)(all[i] * 256 + (i + 1 < n ? all[i + 1] : 0));
	while (sum > 0xffff)
		sum = (sum >> 16) + (sum & 0xffff);
	return (uint16_t)(0xffff - sum);
}

/* Writes into msg[6..7] the checksum of form (pseudo-header built by hand
 * from raw address bytes); pdst overrides the destination when not NULL. */
static void ref_fix_csum(uint8_t *msg, size_t len, int family, enum vrrp_csum_form form,
			 const struct vrrp_addr *src, const struct vrrp_addr *pdst)
{
	uint8_t ph[40];
	size_t phlen = 0;
	uint16_t c;

	msg[6] = msg[7] = 0;
	if (family == AF_INET6) {
		memcpy(ph, &src->u.in6, 16);
		memcpy(ph + 16, &pdst->u.in6, 16);
		ph[32] = (uint8_t)(len >> 24);
		ph[33] = (uint8_t)(len >> 16);
		ph[34] = (uint8_t)(len >> 8);
		ph[35] = (uint8_t)len;
		ph[36] = ph[37] = ph[38] = 0;
		ph[39] = 112;
		phlen = 40;
	} else if (form != VRRP_CSUM_RFC) {
		memcpy(ph, &src->u.in4, 4);
		memcpy(ph + 4, &pdst->u.in4, 4);
		ph[8] = 0;
		ph[9] = 112;
		ph[10] = (uint8_t)(len >> 8);
		ph[11] = (uint8_t)len;
		phlen = 12;
	}
	c = ref_csum(ph, phlen, msg, len);
	msg[6] = (uint8_t)(c >> 8);
	msg[7] = (uint8_t)c;
}

static const struct vrrp_pkt_expect expect_v3 = {.version = 3, .vrid = 51};
static const struct vrrp_pkt_expect expect_v2 = {.version = 2, .vrid = 51};

static struct vrrp_rx_info rx4(const char *src, const char *dst)
{
	struct vrrp_rx_info rx = {.family = AF_INET, .ttl = 255};

	rx.src = a4(src);
	rx.dst = a4(dst);
	return rx;
}

static struct vrrp_rx_info rx6(const char *src, const char *dst)
{
	struct vrrp_rx_info rx = {.family = AF_INET6, .ttl = 255};

	rx.src = a6(src);
	rx.dst = a6(dst);
	return rx;
}

static struct vrrp_advert advert(uint8_t version, uint16_t interval_cs, unsigned n, ...)
{
	struct vrrp_advert adv;
	va_list ap;
	unsigned i;

	memset(&adv, 0, sizeof(adv));
	adv.version = version;
	adv.vrid = 51;
	adv.priority = 100;
	adv.interval_cs = interval_cs;
	adv.naddr = (uint8_t)n;
	va_start(ap, n);
	for (i = 0; i < n; i++)
		adv.addrs[i] = va_arg(ap, struct vrrp_addr);
	va_end(ap);
	return adv;
}

/* The hand-checked advert: v3, VRID 51, priority 100, 1 s, VIP
 * 192.168.1.100, from 192.168.1.1 to 224.0.0.18. Message words:
 * 3133 6401 0064 0000 c0a8 0164 -> sum 0x157a4 -> 0x57a5 -> ~ 0xa85a (rfc).
 * Pseudo-header words c0a8 0101 e000 0012 0070 000c add 0x1a237:
 * 0x2f9db -> 0xf9dd -> ~ 0x0622 (pseudo-header). */
static const uint8_t known_pseudo[] = {0x31, 0x33, 0x64, 0x01, 0x00, 0x64,
				       0x06, 0x22, 192,	 168,  1,    100};
static const uint8_t known_rfc[] = {0x31, 0x33, 0x64, 0x01, 0x00, 0x64,
				    0xa8, 0x5a, 192,  168,  1,	  100};

/* ---- known bytes --------------------------------------------------------- */

static void test_known_bytes_match_reference(void **state)
{
	uint8_t msg[sizeof(known_pseudo)];
	struct vrrp_addr src = a4("192.168.1.1"), dst = a4("224.0.0.18");

	(void)state;
	memcpy(msg, known_pseudo, sizeof(msg));
	ref_fix_csum(msg, sizeof(msg), AF_INET, VRRP_CSUM_PSEUDO, &src, &dst);
	assert_memory_equal(msg, known_pseudo, sizeof(msg));
	ref_fix_csum(msg, sizeof(msg), AF_INET, VRRP_CSUM_RFC, &src, &dst);
	assert_memory_equal(msg, known_rfc, sizeof(msg));
}

static void test_encode_v3_known_pseudo(void **state)
{
	struct vrrp_advert adv = advert(3, 100, 1, a4("192.168.1.100")), got;
	struct vrrp_rx_info rx = rx4("192.168.1.1", "224.0.0.18");
	uint8_t buf[VRRP_PKT_MAX_LEN];

	(void)state;
	assert_int_equal(
	    vrrp_pkt_encode(buf, sizeof(buf), &adv, VRRP_CSUM_PSEUDO, &rx.src, &rx.dst),
	    sizeof(known_pseudo));
	assert_memory_equal(buf, known_pseudo, sizeof(known_pseudo));
	assert_int_equal(vrrp_pkt_decode(known_pseudo, sizeof(known_pseudo), &rx, &expect_v3, &got),
			 VRRP_DROP_NONE);
	assert_int_equal(got.csum_form, VRRP_CSUM_PSEUDO);
}

static void test_encode_v3_known_rfc(void **state)
{
	struct vrrp_advert adv = advert(3, 100, 1, a4("192.168.1.100")), got;
	struct vrrp_rx_info rx = rx4("192.168.1.1", "224.0.0.18");
	uint8_t buf[VRRP_PKT_MAX_LEN];

	(void)state;
	/* The RFC form needs no addresses. */
	assert_int_equal(vrrp_pkt_encode(buf, sizeof(buf), &adv, VRRP_CSUM_RFC, NULL, NULL),
			 sizeof(known_rfc));
	assert_memory_equal(buf, known_rfc, sizeof(known_rfc));
	assert_int_equal(vrrp_pkt_decode(known_rfc, sizeof(known_rfc), &rx, &expect_v3, &got),
			 VRRP_DROP_NONE);
	assert_int_equal(got.csum_form, VRRP_CSUM_RFC);
	assert_int_equal(got.version, 3);
	assert_int_equal(got.vrid, 51);
	assert_int_equal(got.priority, 100);
	assert_int_equal(got.interval_cs, 100);
	assert_int_equal(got.naddr, 1);
	assert_true(vrrp_addr_equal(&got.addrs[0], &adv.addrs[0]));
}

/* ---- round trips --------------------------------------------------------- */

static void assert_same_advert(const struct vrrp_advert *a, const struct vrrp_advert *b)
{
	unsigned i;

	assert_int_equal(a->version, b->version);
	assert_int_equal(a->vrid, b->vrid);
	assert_int_equal(a->priority, b->priority);
	assert_int_equal(a->interval_cs, b->interval_cs);
	assert_int_equal(a->naddr, b->naddr);
	for (i = 0; i < a->naddr; i++)
		assert_true(vrrp_addr_equal(&a->addrs[i], &b->addrs[i]));
}

static void test_roundtrip_v2(void **state)
{
	struct vrrp_advert adv = advert(2, 300, 2, a4("10.0.0.10"), a4("10.0.0.11")), got;
	struct vrrp_rx_info rx = rx4("10.0.0.1", "224.0.0.18");
	uint8_t buf[VRRP_PKT_MAX_LEN];
	int n;

	(void)state;
	adv.priority = 254;
	/* v2: checksum over the message only, whatever form is asked. */
	n = vrrp_pkt_encode(buf, sizeof(buf), &adv, VRRP_CSUM_PSEUDO, NULL, NULL);
	assert_int_equal(n, 8 + 2 * 4 + 8);
	assert_int_equal(buf[0], 0x21);
	assert_int_equal(buf[4], 0); /* auth type */
	assert_int_equal(buf[5], 3); /* seconds */
	assert_int_equal(ref_csum(buf, (size_t)n, NULL, 0), 0);
	for (int i = n - 8; i < n; i++)
		assert_int_equal(buf[i], 0);
	assert_int_equal(vrrp_pkt_decode(buf, (size_t)n, &rx, &expect_v2, &got), VRRP_DROP_NONE);
	assert_same_advert(&adv, &got);
	assert_int_equal(got.csum_form, VRRP_CSUM_RFC);
}

static void test_roundtrip_v3_ipv4(void **state)
{
	struct vrrp_advert adv = advert(3, 4095, 3, a4("10.0.0.10"), a4("10.0.0.11"),
					a4("192.0.2.7")),
			   got;
	struct vrrp_rx_info rx = rx4("10.0.0.1", "10.0.0.2"); /* unicast */
	uint8_t buf[VRRP_PKT_MAX_LEN];
	int n;

	(void)state;
	adv.priority = 0;
	n = vrrp_pkt_encode(buf, sizeof(buf), &adv, VRRP_CSUM_PSEUDO, &rx.src, &rx.dst);
	assert_int_equal(n, 8 + 3 * 4);
	assert_int_equal(buf[4], 0x0f);
	assert_int_equal(buf[5], 0xff);
	assert_int_equal(vrrp_pkt_decode(buf, (size_t)n, &rx, &expect_v3, &got), VRRP_DROP_NONE);
	assert_same_advert(&adv, &got);
	assert_int_equal(got.csum_form, VRRP_CSUM_PSEUDO);
}

static void test_roundtrip_v3_ipv6(void **state)
{
	struct vrrp_advert adv = advert(3, 5, 2, a6("2001:db8::10"), a6("fe80::1234")), got;
	struct vrrp_rx_info rx = rx6("fe80::1", "ff02::12");
	uint8_t buf[VRRP_PKT_MAX_LEN], ref[VRRP_PKT_MAX_LEN];
	int n;

	(void)state;
	/* IPv6 always uses the pseudo-header, whatever form is asked. */
	n = vrrp_pkt_encode(buf, sizeof(buf), &adv, VRRP_CSUM_RFC, &rx.src, &rx.dst);
	assert_int_equal(n, 8 + 2 * 16);
	memcpy(ref, buf, (size_t)n);
	ref_fix_csum(ref, (size_t)n, AF_INET6, VRRP_CSUM_PSEUDO, &rx.src, &rx.dst);
	assert_memory_equal(ref, buf, (size_t)n);
	assert_int_equal(vrrp_pkt_decode(buf, (size_t)n, &rx, &expect_v3, &got), VRRP_DROP_NONE);
	assert_same_advert(&adv, &got);
	assert_int_equal(got.csum_form, VRRP_CSUM_PSEUDO);
	assert_int_equal(got.addrs[1].family, AF_INET6);
	/* IPv6 needs both addresses. */
	assert_int_equal(vrrp_pkt_encode(buf, sizeof(buf), &adv, VRRP_CSUM_PSEUDO, NULL, &rx.dst),
			 -1);
}

static void test_roundtrip_max_addrs(void **state)
{
	struct vrrp_advert adv = advert(3, 100, 0), got;
	struct vrrp_rx_info rx = rx6("fe80::1", "ff02::12");
	uint8_t buf[VRRP_PKT_MAX_LEN];
	unsigned i;
	int n;

	(void)state;
	adv.naddr = VRRP_MAX_ADDRS;
	for (i = 0; i < VRRP_MAX_ADDRS; i++) {
		adv.addrs[i] = a6("2001:db8::");
		adv.addrs[i].u.in6.s6_addr[15] = (uint8_t)i;
	}
	n = vrrp_pkt_encode(buf, sizeof(buf), &adv, VRRP_CSUM_PSEUDO, &rx.src, &rx.dst);
	assert_int_equal(n, VRRP_PKT_MAX_LEN);
	assert_int_equal(vrrp_pkt_decode(buf, (size_t)n, &rx, &expect_v3, &got), VRRP_DROP_NONE);
	assert_same_advert(&adv, &got);
	assert_int_equal(
	    vrrp_pkt_encode(buf, sizeof(buf) - 1, &adv, VRRP_CSUM_PSEUDO, &rx.src, &rx.dst), -1);
}

/* ---- checksum forms ------------------------------------------------------ */

static void test_decode_old_unicast_pseudo(void **state)
{
	struct vrrp_advert adv = advert(3, 100, 1, a4("10.0.0.10")), got;
	struct vrrp_rx_info rx = rx4("10.0.0.1", "10.0.0.2");
	struct vrrp_addr mcast;
	uint8_t buf[VRRP_PKT_MAX_LEN];
	int n;

	(void)state;
	vrrp_addr_set_v4(&mcast, VRRP_MCAST_V4);
	n = vrrp_pkt_encode(buf, sizeof(buf), &adv, VRRP_CSUM_RFC, NULL, NULL);
	assert_true(n > 0);
	/* Old keepalived unicast: pseudo-header with 224.0.0.18 as destination. */
	ref_fix_csum(buf, (size_t)n, AF_INET, VRRP_CSUM_PSEUDO, &rx.src, &mcast);
	assert_int_equal(vrrp_pkt_decode(buf, (size_t)n, &rx, &expect_v3, &got), VRRP_DROP_NONE);
	assert_int_equal(got.csum_form, VRRP_CSUM_PSEUDO_OLD_UNICAST);
	/* ... and it is never sent. */
	assert_int_equal(
	    vrrp_pkt_encode(buf, sizeof(buf), &adv, VRRP_CSUM_PSEUDO_OLD_UNICAST, &rx.src, &mcast),
	    -1);
	/* A pseudo-header with some other destination is refused. */
	ref_fix_csum(buf, (size_t)n, AF_INET, VRRP_CSUM_PSEUDO, &rx.src, &rx.src);
	assert_int_equal(vrrp_pkt_decode(buf, (size_t)n, &rx, &expect_v3, &got),
			 VRRP_DROP_CHECKSUM);
}

static void test_decode_pseudo_needs_right_source(void **state)
{
	struct vrrp_rx_info rx = rx4("192.168.1.2", "224.0.0.18");
	struct vrrp_advert got;

	(void)state;
	/* known_pseudo was summed with source 192.168.1.1. */
	assert_int_equal(vrrp_pkt_decode(known_pseudo, sizeof(known_pseudo), &rx, &expect_v3, &got),
			 VRRP_DROP_CHECKSUM);
	/* The RFC form does not depend on addresses. */
	assert_int_equal(vrrp_pkt_decode(known_rfc, sizeof(known_rfc), &rx, &expect_v3, &got),
			 VRRP_DROP_NONE);
}

static void test_decode_v3_ignores_reserved_bits(void **state)
{
	struct vrrp_rx_info rx = rx4("192.168.1.1", "224.0.0.18");
	struct vrrp_advert got;
	uint8_t msg[sizeof(known_rfc)];

	(void)state;
	memcpy(msg, known_rfc, sizeof(msg));
	msg[4] |= 0xf0;
	ref_fix_csum(msg, sizeof(msg), AF_INET, VRRP_CSUM_RFC, &rx.src, &rx.dst);
	assert_int_equal(vrrp_pkt_decode(msg, sizeof(msg), &rx, &expect_v3, &got), VRRP_DROP_NONE);
	assert_int_equal(got.interval_cs, 100);
}

/* ---- drop reasons -------------------------------------------------------- */

/* Decodes a crafted message, first giving it a valid rfc-form checksum
 * when fix is set. */
static enum vrrp_drop decode_mutated(uint8_t *msg, size_t len, const struct vrrp_rx_info *rx,
				     const struct vrrp_pkt_expect *exp, bool fix)
{
	struct vrrp_advert got;

	if (fix)
		ref_fix_csum(msg, len, rx->family, VRRP_CSUM_RFC, &rx->src, &rx->dst);
	return vrrp_pkt_decode(msg, len, rx, exp, &got);
}

static void test_drop_reasons_v3(void **state)
{
	struct vrrp_rx_info rx = rx4("192.168.1.1", "224.0.0.18"), bad;
	struct vrrp_pkt_expect e = expect_v3;
	struct vrrp_advert got;
	uint8_t m[64];

	(void)state;
#define FRESH() memcpy(m, known_rfc, sizeof(known_rfc))
	FRESH();
	assert_int_equal(decode_mutated(m, 12, &rx, &e, false), VRRP_DROP_NONE);

	bad = rx;
	bad.family = AF_UNIX;
	assert_int_equal(vrrp_pkt_decode(m, 12, &bad, &e, &got), VRRP_DROP_FAMILY);
	bad = rx;
	bad.src = a6("::1");
	assert_int_equal(vrrp_pkt_decode(m, 12, &bad, &e, &got), VRRP_DROP_FAMILY);
	bad = rx;
	bad.ttl = 254;
	assert_int_equal(vrrp_pkt_decode(m, 12, &bad, &e, &got), VRRP_DROP_TTL);
	bad.ttl = 1;
	assert_int_equal(vrrp_pkt_decode(m, 12, &bad, &e, &got), VRRP_DROP_TTL);

	assert_int_equal(vrrp_pkt_decode(m, 7, &rx, &e, &got), VRRP_DROP_TRUNCATED);
	assert_int_equal(vrrp_pkt_decode(m, 11, &rx, &e, &got), VRRP_DROP_TRUNCATED);

	FRESH();
	m[0] = 0x41; /* version 4 */
	assert_int_equal(decode_mutated(m, 12, &rx, &e, true), VRRP_DROP_VERSION);
	FRESH();
	m[0] = 0x11; /* version 1 */
	assert_int_equal(decode_mutated(m, 12, &rx, &e, true), VRRP_DROP_VERSION);
	FRESH();
	e.version = 2; /* a v3 advert where v2 is configured */
	assert_int_equal(decode_mutated(m, 12, &rx, &e, true), VRRP_DROP_VERSION);
	e = expect_v3;

	FRESH();
	m[0] = 0x32; /* type 2 */
	assert_int_equal(decode_mutated(m, 12, &rx, &e, true), VRRP_DROP_TYPE);

	FRESH();
	m[1] = 52;
	assert_int_equal(decode_mutated(m, 12, &rx, &e, true), VRRP_DROP_VRID);

	FRESH();
	m[3] = 0;
	assert_int_equal(decode_mutated(m, 8, &rx, &e, true), VRRP_DROP_ADDR_COUNT);
	FRESH();
	m[3] = VRRP_MAX_ADDRS + 1;
	assert_int_equal(decode_mutated(m, 12, &rx, &e, true), VRRP_DROP_ADDR_COUNT);
	FRESH();
	m[3] = 2; /* claims two addresses, carries one */
	assert_int_equal(decode_mutated(m, 12, &rx, &e, true), VRRP_DROP_TRUNCATED);

	FRESH();
	m[12] = m[13] = 0; /* one trailing word: the sum is unchanged */
	assert_int_equal(decode_mutated(m, 14, &rx, &e, false), VRRP_DROP_LENGTH);

	FRESH();
	m[7] ^= 1;
	assert_int_equal(decode_mutated(m, 12, &rx, &e, false), VRRP_DROP_CHECKSUM);
	FRESH();
	m[9] ^= 0x10; /* a flipped address bit */
	assert_int_equal(decode_mutated(m, 12, &rx, &e, false), VRRP_DROP_CHECKSUM);

	FRESH();
	m[4] = 0xf0; /* reserved bits set, interval 0 */
	m[5] = 0;
	assert_int_equal(decode_mutated(m, 12, &rx, &e, true), VRRP_DROP_INTERVAL);
#undef FRESH
}

static void test_drop_reasons_v2(void **state)
{
	struct vrrp_advert adv = advert(2, 100, 1, a4("10.0.0.10")), got;
	struct vrrp_rx_info rx = rx4("10.0.0.1", "224.0.0.18");
	struct vrrp_rx_info rx6_ = rx6("fe80::1", "ff02::12");
	struct vrrp_pkt_expect e = expect_v2;
	uint8_t good[64], m[64];
	int n;

	(void)state;
	n = vrrp_pkt_encode(good, sizeof(good), &adv, VRRP_CSUM_RFC, NULL, NULL);
	assert_int_equal(n, 20);

	memcpy(m, good, 20);
	m[4] = 1; /* simple text password */
	assert_int_equal(decode_mutated(m, 20, &rx, &e, true), VRRP_DROP_AUTH);

	memcpy(m, good, 20);
	m[5] = 0;
	assert_int_equal(decode_mutated(m, 20, &rx, &e, true), VRRP_DROP_INTERVAL);

	e.v2_interval_cs = 200; /* keepalived drops a v2 interval mismatch */
	assert_int_equal(vrrp_pkt_decode(good, 20, &rx, &e, &got), VRRP_DROP_INTERVAL_MISMATCH);
	e.v2_interval_cs = 100;
	assert_int_equal(vrrp_pkt_decode(good, 20, &rx, &e, &got), VRRP_DROP_NONE);

	/* The authentication data is part of the length. */
	assert_int_equal(vrrp_pkt_decode(good, 19, &rx, &e, &got), VRRP_DROP_TRUNCATED);
	assert_int_equal(vrrp_pkt_decode(good, 12, &rx, &e, &got), VRRP_DROP_TRUNCATED);

	/* A v2 advert where v3 is configured, and v2 on IPv6. */
	assert_int_equal(vrrp_pkt_decode(good, 20, &rx, &expect_v3, &got), VRRP_DROP_VERSION);
	assert_int_equal(vrrp_pkt_decode(good, 20, &rx6_, &e, &got), VRRP_DROP_VERSION);
}

static void test_drop_addr_list(void **state)
{
	struct vrrp_rx_info rx = rx4("192.168.1.1", "224.0.0.18");
	struct vrrp_addr cfg[2] = {a4("192.168.1.100"), a4("192.168.1.101")};
	struct vrrp_pkt_expect e = expect_v3;
	struct vrrp_advert got;

	(void)state;
	e.vips = cfg;
	e.nvips = 1;
	assert_int_equal(vrrp_pkt_decode(known_rfc, 12, &rx, &e, &got), VRRP_DROP_NONE);
	e.vips = &cfg[1];
	assert_int_equal(vrrp_pkt_decode(known_rfc, 12, &rx, &e, &got), VRRP_DROP_ADDR_LIST);
	e.vips = cfg;
	e.nvips = 2;
	assert_int_equal(vrrp_pkt_decode(known_rfc, 12, &rx, &e, &got), VRRP_DROP_ADDR_LIST);
}

static void test_drop_reason_names(void **state)
{
	unsigned i, j;

	(void)state;
	assert_string_equal(vrrp_drop_reason_name(VRRP_DROP_TTL), "ttl");
	assert_string_equal(vrrp_drop_reason_name(VRRP_DROP_CHECKSUM), "checksum");
	assert_string_equal(vrrp_drop_reason_name(VRRP_DROP_ADDR_LIST), "addr-list");
	assert_string_equal(vrrp_drop_reason_name(VRRP_DROP_ADDR_COUNT), "addr-count");
	assert_string_equal(vrrp_drop_reason_name(VRRP_DROP_NR), "?");
	assert_string_equal(vrrp_drop_reason_name((enum vrrp_drop) - 1), "?");
	/* Every reason has its own name. */
	for (i = 0; i < VRRP_DROP_NR; i++) {
		assert_string_not_equal(vrrp_drop_reason_name((enum vrrp_drop)i), "?");
		for (j = 0; j < i; j++)
			assert_string_not_equal(vrrp_drop_reason_name((enum vrrp_drop)i),
						vrrp_drop_reason_name((enum vrrp_drop)j));
	}
	assert_string_equal(vrrp_csum_form_name(VRRP_CSUM_RFC), "rfc");
	assert_string_equal(vrrp_csum_form_name(VRRP_CSUM_PSEUDO), "pseudo-header");
}

/* ---- truncation ---------------------------------------------------------- */

/* Every proper prefix of a valid message, each in a heap buffer of exactly
 * that size so that ASan reports any read past it. */
static void assert_prefixes_fail(const uint8_t *msg, size_t len, const struct vrrp_rx_info *rx,
				 const struct vrrp_pkt_expect *exp)
{
	struct vrrp_advert got;
	size_t n;

	assert_int_equal(vrrp_pkt_decode(msg, len, rx, exp, &got), VRRP_DROP_NONE);
	for (n = 0; n < len; n++) {
		uint8_t *p = malloc(n ? n : 1);

		assert_non_null(p);
		memcpy(p, msg, n);
		assert_int_not_equal(vrrp_pkt_decode(p, n, rx, exp, &got), VRRP_DROP_NONE);
		free(p);
	}
}

static void test_truncated_never_succeeds(void **state)
{
	struct vrrp_advert v2 =
	    advert(2, 100, 3, a4("10.0.0.10"), a4("10.0.0.11"), a4("10.0.0.12"));
	struct vrrp_advert v3 =
	    advert(3, 100, 3, a4("10.0.0.10"), a4("10.0.0.11"), a4("10.0.0.12"));
	struct vrrp_advert v6 = advert(3, 100, 2, a6("2001:db8::1"), a6("2001:db8::2"));
	struct vrrp_rx_info r4 = rx4("10.0.0.1", "224.0.0.18"), r6 = rx6("fe80::1", "ff02::12");
	uint8_t buf[VRRP_PKT_MAX_LEN];
	int n;

	(void)state;
	n = vrrp_pkt_encode(buf, sizeof(buf), &v2, VRRP_CSUM_RFC, NULL, NULL);
	assert_prefixes_fail(buf, (size_t)n, &r4, &expect_v2);
	n = vrrp_pkt_encode(buf, sizeof(buf), &v3, VRRP_CSUM_PSEUDO, &r4.src, &r4.dst);
	assert_prefixes_fail(buf, (size_t)n, &r4, &expect_v3);
	n = vrrp_pkt_encode(buf, sizeof(buf), &v6, VRRP_CSUM_PSEUDO, &r6.src, &r6.dst);
	assert_prefixes_fail(buf, (size_t)n, &r6, &expect_v3);
}

/* ---- VIP list comparison ------------------------------------------------- */

static void test_addrs_match_any_order(void **state)
{
	struct vrrp_advert adv = advert(3, 100, 3, a4("10.0.0.1"), a4("10.0.0.2"), a4("10.0.0.3"));
	struct vrrp_addr same[3] = {a4("10.0.0.3"), a4("10.0.0.1"), a4("10.0.0.2")};
	struct vrrp_addr other[3] = {a4("10.0.0.3"), a4("10.0.0.1"), a4("10.0.0.4")};
	struct vrrp_addr dup[3] = {a4("10.0.0.1"), a4("10.0.0.1"), a4("10.0.0.2")};
	struct vrrp_addr v6[1] = {a6("::ffff:10.0.0.1")};

	(void)state;
	assert_true(vrrp_pkt_addrs_match(&adv, same, 3));
	assert_false(vrrp_pkt_addrs_match(&adv, same, 2)); /* fewer configured */
	assert_false(vrrp_pkt_addrs_match(&adv, other, 3));
	assert_false(vrrp_pkt_addrs_match(&adv, dup, 3)); /* duplicates hide 10.0.0.3 */
	adv.addrs[2] = a4("10.0.0.1");
	assert_false(vrrp_pkt_addrs_match(&adv, same, 3)); /* and the other way round */
	adv.naddr = 1;
	assert_false(vrrp_pkt_addrs_match(&adv, v6, 1)); /* families differ */
}

/* ---- encoder refusals ---------------------------------------------------- */

static void test_encode_rejects_invalid(void **state)
{
	struct vrrp_addr src = a4("10.0.0.1"), dst = a4("224.0.0.18");
	struct vrrp_advert ok = advert(3, 100, 1, a4("10.0.0.10")), adv;
	uint8_t buf[VRRP_PKT_MAX_LEN];

	(void)state;
	assert_int_equal(vrrp_pkt_encode(buf, sizeof(buf), &ok, VRRP_CSUM_PSEUDO, &src, &dst), 12);
	assert_int_equal(vrrp_pkt_encode(buf, 11, &ok, VRRP_CSUM_PSEUDO, &src, &dst), -1);
	assert_int_equal(vrrp_pkt_encode(buf, sizeof(buf), &ok, VRRP_CSUM_PSEUDO, NULL, &dst), -1);
	assert_int_equal(vrrp_pkt_encode(buf, sizeof(buf), &ok, (enum vrrp_csum_form)7, &src, &dst),
			 -1);

	adv = ok;
	adv.version = 4;
	assert_int_equal(vrrp_pkt_encode(buf, sizeof(buf), &adv, VRRP_CSUM_RFC, NULL, NULL), -1);
	adv = ok;
	adv.vrid = 0;
	assert_int_equal(vrrp_pkt_encode(buf, sizeof(buf), &adv, VRRP_CSUM_RFC, NULL, NULL), -1);
	adv = ok;
	adv.naddr = 0;
	assert_int_equal(vrrp_pkt_encode(buf, sizeof(buf), &adv, VRRP_CSUM_RFC, NULL, NULL), -1);
	adv.naddr = VRRP_MAX_ADDRS + 1;
	assert_int_equal(vrrp_pkt_encode(buf, sizeof(buf), &adv, VRRP_CSUM_RFC, NULL, NULL), -1);
	adv = ok;
	adv.naddr = 2;
	adv.addrs[1] = a6("2001:db8::1"); /* mixed families */
	assert_int_equal(vrrp_pkt_encode(buf, sizeof(buf), &adv, VRRP_CSUM_RFC, NULL, NULL), -1);
	adv = ok;
	adv.interval_cs = 0;
	assert_int_equal(vrrp_pkt_encode(buf, sizeof(buf), &adv, VRRP_CSUM_RFC, NULL, NULL), -1);
	adv.interval_cs = VRRP_V3_INTERVAL_MAX + 1;
	assert_int_equal(vrrp_pkt_encode(buf, sizeof(buf), &adv, VRRP_CSUM_RFC, NULL, NULL), -1);

	adv = ok;
	adv.version = 2;
	adv.interval_cs = 150; /* v2 carries whole seconds */
	assert_int_equal(vrrp_pkt_encode(buf, sizeof(buf), &adv, VRRP_CSUM_RFC, NULL, NULL), -1);
	adv.interval_cs = 25600;
	assert_int_equal(vrrp_pkt_encode(buf, sizeof(buf), &adv, VRRP_CSUM_RFC, NULL, NULL), -1);
	adv.interval_cs = 25500;
	assert_int_equal(vrrp_pkt_encode(buf, sizeof(buf), &adv, VRRP_CSUM_RFC, NULL, NULL), 20);
	adv.addrs[0] = a6("2001:db8::1"); /* v2 is IPv4 only */
	assert_int_equal(vrrp_pkt_encode(buf, sizeof(buf), &adv, VRRP_CSUM_RFC, NULL, NULL), -1);
}

/* ---- addresses ----------------------------------------------------------- */

static void test_addr_helpers(void **state)
{
	struct vrrp_addr lo = a4("10.0.0.9"), hi = a4("10.0.0.10"), x, six = a6("fe80::1");
	struct util_addr ua;
	char buf[UTIL_ADDR_STRLEN];

	(void)state;
	/* Numeric order, not string order. */
	assert_true(vrrp_addr_cmp(&lo, &hi) < 0);
	assert_true(vrrp_addr_cmp(&hi, &lo) > 0);
	assert_int_equal(vrrp_addr_cmp(&lo, &lo), 0);
	assert_true(vrrp_addr_cmp(&hi, &six) < 0);
	assert_string_equal(vrrp_addr_fmt(&hi, buf, sizeof(buf)), "10.0.0.10");
	assert_string_equal(vrrp_addr_fmt(&six, buf, sizeof(buf)), "fe80::1");
	memset(&x, 0, sizeof(x));
	assert_string_equal(vrrp_addr_fmt(&x, buf, sizeof(buf)), "-");

	assert_int_equal(util_addr_parse("[fe80::1]:80", false, &ua, buf, sizeof(buf)), 0);
	assert_int_equal(vrrp_addr_from_util(&ua, &x), 0);
	assert_true(vrrp_addr_equal(&x, &six));
	vrrp_addr_to_util(&hi, &ua);
	assert_int_equal(vrrp_addr_from_util(&ua, &x), 0);
	assert_true(vrrp_addr_equal(&x, &hi));
	memset(&ua, 0, sizeof(ua));
	assert_int_equal(vrrp_addr_from_util(&ua, &x), -1);
	vrrp_addr_set_v4(&x, VRRP_MCAST_V4);
	assert_string_equal(vrrp_addr_fmt(&x, buf, sizeof(buf)), "224.0.0.18");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_known_bytes_match_reference),
	    cmocka_unit_test(test_encode_v3_known_pseudo),
	    cmocka_unit_test(test_encode_v3_known_rfc),
	    cmocka_unit_test(test_roundtrip_v2),
	    cmocka_unit_test(test_roundtrip_v3_ipv4),
	    cmocka_unit_test(test_roundtrip_v3_ipv6),
	    cmocka_unit_test(test_roundtrip_max_addrs),
	    cmocka_unit_test(test_decode_old_unicast_pseudo),
	    cmocka_unit_test(test_decode_pseudo_needs_right_source),
	    cmocka_unit_test(test_decode_v3_ignores_reserved_bits),
	    cmocka_unit_test(test_drop_reasons_v3),
	    cmocka_unit_test(test_drop_reasons_v2),
	    cmocka_unit_test(test_drop_addr_list),
	    cmocka_unit_test(test_drop_reason_names),
	    cmocka_unit_test(test_truncated_never_succeeds),
	    cmocka_unit_test(test_addrs_match_any_order),
	    cmocka_unit_test(test_encode_rejects_invalid),
	    cmocka_unit_test(test_addr_helpers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
