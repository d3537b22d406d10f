/* vrrp_pkt: encode and validate VRRPv3 (RFC 9568) and VRRPv2 (RFC 3768)
 * adverts, with the checksum forms keepalived sends and accepts.
 * Called by the VRRP I/O layer. Pure; the decoder reads only buf[0..len)
 * and copies what it keeps, so any input is safe (tests/fuzz proves it). */
#include <arpa/inet.h>
#include <string.h>

#include "sluice/util.h"
#include "sluice/vrrp.h"

_Static_assert(sizeof(struct vrrp_wire_v3) == VRRP_HDR_LEN, "v3 header is 8 bytes");
_Static_assert(sizeof(struct vrrp_wire_v2) == VRRP_HDR_LEN, "v2 header is 8 bytes");
_Static_assert(sizeof(struct vrrp_pseudo4) == 12, "IPv4 pseudo-header is 12 bytes");
_Static_assert(sizeof(struct vrrp_pseudo6) == 40, "IPv6 pseudo-header is 40 bytes");

/* ---- addresses ----------------------------------------------------------- */

static size_t addr_len(sa_family_t family)
{
	return family == AF_INET ? sizeof(struct in_addr) : sizeof(struct in6_addr);
}

int vrrp_addr_from_util(const struct util_addr *a, struct vrrp_addr *out)
{
	memset(out, 0, sizeof(*out));
	if (a->len == 0)
		return -1;
	if (a->u.sa.sa_family == AF_INET)
		out->u.in4 = a->u.in4.sin_addr;
	else if (a->u.sa.sa_family == AF_INET6)
		out->u.in6 = a->u.in6.sin6_addr;
	else
		return -1;
	out->family = a->u.sa.sa_family;
	return 0;
}

void vrrp_addr_to_util(const struct vrrp_addr *a, struct util_addr *out)
{
	memset(out, 0, sizeof(*out));
	if (a->family == AF_INET) {
		out->u.in4.sin_family = AF_INET;
		out->u.in4.sin_addr = a->u.in4;
		out->len = sizeof(out->u.in4);
	} else if (a->family == AF_INET6) {
		out->u.in6.sin6_family = AF_INET6;
		out->u.in6.sin6_addr = a->u.in6;
		out->len = sizeof(out->u.in6);
	}
}

void vrrp_addr_set_v4(struct vrrp_addr *out, uint32_t host_order)
{
	memset(out, 0, sizeof(*out));
	out->family = AF_INET;
	out->u.in4.s_addr = htonl(host_order);
}

bool vrrp_addr_equal(const struct vrrp_addr *a, const struct vrrp_addr *b)
{
	return vrrp_addr_cmp(a, b) == 0;
}

int vrrp_addr_cmp(const struct vrrp_addr *a, const struct vrrp_addr *b)
{
	if (a->family != b->family)
		return a->family < b->family ? -1 : 1;
	if (a->family != AF_INET && a->family != AF_INET6)
		return 0;
	return memcmp(&a->u, &b->u, addr_len(a->family));
}

const char *vrrp_addr_fmt(const struct vrrp_addr *a, char *buf, size_t len)
{
	struct util_addr ua;

	vrrp_addr_to_util(a, &ua);
	return util_addr_fmt_host(&ua, buf, len);
}

/* ---- checksum (RFC 1071) ------------------------------------------------- */

/* Add len bytes (len even) as big-endian 16-bit words to a running sum. */
static uint64_t csum_add(uint64_t sum, const void *data, size_t len)
{
	const uint8_t *p = data;
	size_t i;

	for (i = 0; i + 1 < len; i += 2)
		sum += (uint32_t)p[i] << 8 | p[i + 1];
	return sum;
}

static uint16_t csum_fold(uint64_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)sum;
}

static uint64_t csum_pseudo4(uint64_t sum, const struct in_addr *src, const struct in_addr *dst,
			     size_t len)
{
	struct vrrp_pseudo4 ph = {
	    .src = *src,
	    .dst = *dst,
	    .zero = 0,
	    .proto = VRRP_IPPROTO,
	    .len = htons((uint16_t)len),
	};

	return csum_add(sum, &ph, sizeof(ph));
}

static uint64_t csum_pseudo6(uint64_t sum, const struct in6_addr *src, const struct in6_addr *dst,
			     size_t len)
{
	struct vrrp_pseudo6 ph = {
	    .src = *src,
	    .dst = *dst,
	    .len = htonl((uint32_t)len),
	    .zero = {0, 0, 0},
	    .next_header = VRRP_IPPROTO,
	};

	return csum_add(sum, &ph, sizeof(ph));
}

/* ---- encode -------------------------------------------------------------- */

/* Checks the parts of adv common to both versions; returns the family or 0. */
static sa_family_t advert_family(const struct vrrp_advert *adv)
{
	sa_family_t family;
	unsigned i;

	if (adv->vrid == 0 || adv->naddr == 0 || adv->naddr > VRRP_MAX_ADDRS)
		return 0;
	family = adv->addrs[0].family;
	if (family != AF_INET && family != AF_INET6)
		return 0;
	for (i = 1; i < adv->naddr; i++)
		if (adv->addrs[i].family != family)
			return 0;
	return family;
}

static bool addr_is(const struct vrrp_addr *a, sa_family_t family)
{
	return a != NULL && a->family == family;
}

/* Computes the checksum the encoder must send, or returns -1 when the
 * arguments do not allow it. msg holds the message with a zero checksum. */
static int encode_csum(const uint8_t *msg, size_t len, const struct vrrp_advert *adv,
		       sa_family_t family, enum vrrp_csum_form form, const struct vrrp_addr *src,
		       const struct vrrp_addr *dst, uint16_t *csum)
{
	uint64_t sum = csum_add(0, msg, len);

	if (adv->version == 3 && family == AF_INET6) {
		if (!addr_is(src, AF_INET6) || !addr_is(dst, AF_INET6))
			return -1;
		sum = csum_pseudo6(sum, &src->u.in6, &dst->u.in6, len);
	} else if (adv->version == 3 && form == VRRP_CSUM_PSEUDO) {
		if (!addr_is(src, AF_INET) || !addr_is(dst, AF_INET))
			return -1;
		sum = csum_pseudo4(sum, &src->u.in4, &dst->u.in4, len);
	} else if (adv->version == 3 && form != VRRP_CSUM_RFC) {
		return -1; /* the old-unicast form is accepted, never sent */
	}
	*csum = (uint16_t)~csum_fold(sum);
	return 0;
}

int vrrp_pkt_encode(uint8_t *buf, size_t buflen, const struct vrrp_advert *adv,
		    enum vrrp_csum_form form, const struct vrrp_addr *src,
		    const struct vrrp_addr *dst)
{
	sa_family_t family = advert_family(adv);
	size_t alen, len, off, i;
	uint16_t csum;

	if (family == 0)
		return -1;
	alen = addr_len(family);
	len = VRRP_HDR_LEN + adv->naddr * alen;
	if (adv->version == 2) {
		/* RFC 3768: IPv4 only, whole seconds. */
		if (family != AF_INET || adv->interval_cs == 0 || adv->interval_cs % 100 != 0 ||
		    adv->interval_cs / 100 > VRRP_V2_INTERVAL_MAX_S)
			return -1;
		len += VRRP_V2_AUTH_LEN;
	} else if (adv->version == 3) {
		if (adv->interval_cs == 0 || adv->interval_cs > VRRP_V3_INTERVAL_MAX)
			return -1;
	} else {
		return -1;
	}
	if (buflen < len)
		return -1;

	memset(buf, 0, len); /* also the checksum and the v2 auth data */
	buf[0] = (uint8_t)(adv->version << 4 | VRRP_TYPE_ADVERT);
	buf[1] = adv->vrid;
	buf[2] = adv->priority;
	buf[3] = adv->naddr;
	if (adv->version == 2) {
		buf[4] = 0; /* auth type: none */
		buf[5] = (uint8_t)(adv->interval_cs / 100);
	} else {
		buf[4] = (uint8_t)(adv->interval_cs >> 8); /* reserved bits stay 0 */
		buf[5] = (uint8_t)adv->interval_cs;
	}
	off = VRRP_HDR_LEN;
	for (i = 0; i < adv->naddr; i++, off += alen)
		memcpy(buf + off, &adv->addrs[i].u, alen);

	if (encode_csum(buf, len, adv, family, form, src, dst, &csum) < 0)
		return -1;
	buf[6] = (uint8_t)(csum >> 8);
	buf[7] = (uint8_t)csum;
	return (int)len;
}

/* ---- decode -------------------------------------------------------------- */

/* Finds the checksum form of a received message (len bytes, checksum
 * included); returns false when none of the accepted forms matches. */
static bool decode_csum(const uint8_t *msg, size_t len, uint8_t version,
			const struct vrrp_rx_info *rx, enum vrrp_csum_form *form)
{
	uint64_t sum = csum_add(0, msg, len);
	struct in_addr mcast;

	if (version == 2) {
		*form = VRRP_CSUM_RFC;
		return csum_fold(sum) == 0xffff;
	}
	if (rx->family == AF_INET6) {
		*form = VRRP_CSUM_PSEUDO;
		return csum_fold(csum_pseudo6(sum, &rx->src.u.in6, &rx->dst.u.in6, len)) == 0xffff;
	}
	/* v3 IPv4: keepalived's form first, as it is the usual peer. */
	*form = VRRP_CSUM_PSEUDO;
	if (csum_fold(csum_pseudo4(sum, &rx->src.u.in4, &rx->dst.u.in4, len)) == 0xffff)
		return true;
	*form = VRRP_CSUM_RFC;
	if (csum_fold(sum) == 0xffff)
		return true;
	*form = VRRP_CSUM_PSEUDO_OLD_UNICAST;
	mcast.s_addr = htonl(VRRP_MCAST_V4);
	if (rx->dst.u.in4.s_addr == mcast.s_addr)
		return false; /* same sum as the first form */
	return csum_fold(csum_pseudo4(sum, &rx->src.u.in4, &mcast, len)) == 0xffff;
}

/* Checks the fixed header; on success sets *need to the exact message length
 * the header announces. */
static enum vrrp_drop decode_header(const uint8_t *buf, size_t len, const struct vrrp_rx_info *rx,
				    const struct vrrp_pkt_expect *exp, size_t *need)
{
	struct vrrp_wire_v3 h;
	uint8_t version;

	if (len < VRRP_HDR_LEN)
		return VRRP_DROP_TRUNCATED;
	memcpy(&h, buf, sizeof(h));
	version = h.vers_type >> 4;
	if ((version != 2 && version != 3) || version != exp->version ||
	    (version == 2 && rx->family != AF_INET))
		return VRRP_DROP_VERSION;
	if ((h.vers_type & 0x0f) != VRRP_TYPE_ADVERT)
		return VRRP_DROP_TYPE;
	if (h.vrid != exp->vrid)
		return VRRP_DROP_VRID;
	if (h.count == 0 || h.count > VRRP_MAX_ADDRS)
		return VRRP_DROP_ADDR_COUNT;
	*need =
	    VRRP_HDR_LEN + h.count * addr_len(rx->family) + (version == 2 ? VRRP_V2_AUTH_LEN : 0);
	if (len < *need)
		return VRRP_DROP_TRUNCATED;
	if (len > *need)
		return VRRP_DROP_LENGTH;
	return VRRP_DROP_NONE;
}

enum vrrp_drop vrrp_pkt_decode(const uint8_t *buf, size_t len, const struct vrrp_rx_info *rx,
			       const struct vrrp_pkt_expect *exp, struct vrrp_advert *out)
{
	enum vrrp_drop why;
	size_t need, alen, off, i;

	if ((rx->family != AF_INET && rx->family != AF_INET6) || rx->src.family != rx->family ||
	    rx->dst.family != rx->family)
		return VRRP_DROP_FAMILY;
	if (rx->ttl != VRRP_TTL)
		return VRRP_DROP_TTL;
	why = decode_header(buf, len, rx, exp, &need);
	if (why != VRRP_DROP_NONE)
		return why;

	memset(out, 0, sizeof(*out));
	out->version = buf[0] >> 4;
	out->vrid = buf[1];
	out->priority = buf[2];
	out->naddr = buf[3];
	if (out->version == 2) {
		if (buf[4] != 0)
			return VRRP_DROP_AUTH;
		out->interval_cs = (uint16_t)(buf[5] * 100);
	} else {
		out->interval_cs = (uint16_t)((buf[4] & 0x0f) << 8 | buf[5]);
	}
	if (!decode_csum(buf, len, out->version, rx, &out->csum_form))
		return VRRP_DROP_CHECKSUM;
	if (out->interval_cs == 0)
		return VRRP_DROP_INTERVAL;
	if (out->version == 2 && exp->v2_interval_cs != 0 &&
	    out->interval_cs != exp->v2_interval_cs)
		return VRRP_DROP_INTERVAL_MISMATCH;

	alen = addr_len(rx->family);
	off = VRRP_HDR_LEN;
	for (i = 0; i < out->naddr; i++, off += alen) {
		out->addrs[i].family = rx->family;
		memcpy(&out->addrs[i].u, buf + off, alen);
	}
	if (exp->vips != NULL && !vrrp_pkt_addrs_match(out, exp->vips, exp->nvips))
		return VRRP_DROP_ADDR_LIST;
	return VRRP_DROP_NONE;
}

static bool addr_in(const struct vrrp_addr *a, const struct vrrp_addr *list, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (vrrp_addr_equal(a, &list[i]))
			return true;
	return false;
}

bool vrrp_pkt_addrs_match(const struct vrrp_advert *adv, const struct vrrp_addr *vips, size_t nvips)
{
	size_t i;

	if (adv->naddr != nvips)
		return false;
	/* Both directions, so that duplicates on one side cannot hide a
	 * missing address. n is at most VRRP_MAX_ADDRS: quadratic is fine. */
	for (i = 0; i < nvips; i++)
		if (!addr_in(&adv->addrs[i], vips, nvips) || !addr_in(&vips[i], adv->addrs, nvips))
			return false;
	return true;
}

/* ---- names --------------------------------------------------------------- */

static const char *const drop_names[VRRP_DROP_NR] = {
    [VRRP_DROP_NONE] = "none",
    [VRRP_DROP_FAMILY] = "family",
    [VRRP_DROP_TTL] = "ttl",
    [VRRP_DROP_TRUNCATED] = "truncated",
    [VRRP_DROP_VERSION] = "version",
    [VRRP_DROP_TYPE] = "type",
    [VRRP_DROP_VRID] = "vrid",
    [VRRP_DROP_ADDR_COUNT] = "addr-count",
    [VRRP_DROP_LENGTH] = "length",
    [VRRP_DROP_AUTH] = "auth",
    [VRRP_DROP_CHECKSUM] = "checksum",
    [VRRP_DROP_INTERVAL] = "interval",
    [VRRP_DROP_INTERVAL_MISMATCH] = "interval-mismatch",
    [VRRP_DROP_ADDR_LIST] = "addr-list",
};

const char *vrrp_drop_reason_name(enum vrrp_drop reason)
{
	if ((unsigned)reason >= VRRP_DROP_NR || drop_names[reason] == NULL)
		return "?";
	return drop_names[reason];
}

const char *vrrp_csum_form_name(enum vrrp_csum_form form)
{
	switch (form) {
	case VRRP_CSUM_RFC:
		return "rfc";
	case VRRP_CSUM_PSEUDO:
		return "pseudo-header";
	case VRRP_CSUM_PSEUDO_OLD_UNICAST:
		return "pseudo-header-224.0.0.18";
	}
	return "?";
}
