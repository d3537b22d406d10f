/* libFuzzer target for vrrp_pkt_decode: arbitrary bytes with fuzzed IP facts
 * (family, TTL, addresses) and expectations. Aborts when an accepted advert
 * breaks an invariant or an encode/decode round trip; then drives a state
 * machine with it. Seeds: tests/fuzz/corpus/vrrp_pkt/. */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/vrrp.h"

/* Input: 4 control bytes, then the VRRP message.
 *   c[0] flags: 0x01 IPv6, 0x02 expect v3 (else v2), 0x04 compare with a VIP
 *        list (the advert's own, rotated), 0x08 TTL from c[1] (else 255),
 *        0x10 source ends in c[3], 0x20 unicast destination ending in c[3]
 *   c[1] TTL, c[2] expected VRID, c[3] address variation
 * Default addresses (used by the seeds): 192.168.1.1 -> 224.0.0.18 and
 * fe80::1 -> ff02::12. */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond)
{
	if (!cond)
		abort();
}

static void facts(const uint8_t *c, struct vrrp_rx_info *rx)
{
	memset(rx, 0, sizeof(*rx));
	rx->family = (c[0] & 0x01) ? AF_INET6 : AF_INET;
	rx->ttl = (c[0] & 0x08) ? c[1] : 255;
	rx->src.family = rx->dst.family = rx->family;
	if (rx->family == AF_INET) {
		inet_pton(AF_INET, "192.168.1.1", &rx->src.u.in4);
		inet_pton(AF_INET, (c[0] & 0x20) ? "192.168.1.0" : "224.0.0.18", &rx->dst.u.in4);
		if (c[0] & 0x10)
			((uint8_t *)&rx->src.u.in4)[3] = c[3];
		if (c[0] & 0x20)
			((uint8_t *)&rx->dst.u.in4)[3] = c[3];
	} else {
		inet_pton(AF_INET6, "fe80::1", &rx->src.u.in6);
		inet_pton(AF_INET6, (c[0] & 0x20) ? "fe80::" : "ff02::12", &rx->dst.u.in6);
		if (c[0] & 0x10)
			rx->src.u.in6.s6_addr[15] = c[3];
		if (c[0] & 0x20)
			rx->dst.u.in6.s6_addr[15] = c[3];
	}
}

/* An accepted advert must encode back to something that decodes the same. */
static void roundtrip(const struct vrrp_advert *adv, size_t len, const struct vrrp_rx_info *rx,
		      const struct vrrp_pkt_expect *exp)
{
	enum vrrp_csum_form form = adv->csum_form;
	uint8_t buf[VRRP_PKT_MAX_LEN];
	struct vrrp_advert again;
	int n;

	if (form == VRRP_CSUM_PSEUDO_OLD_UNICAST)
		check(vrrp_pkt_encode(buf, sizeof(buf), adv, form, &rx->src, &rx->dst) == -1);
	if (form != VRRP_CSUM_PSEUDO)
		form = VRRP_CSUM_RFC;
	n = vrrp_pkt_encode(buf, sizeof(buf), adv, form, &rx->src, &rx->dst);
	check(n > 0 && (size_t)n == len);
	check(vrrp_pkt_decode(buf, (size_t)n, rx, exp, &again) == VRRP_DROP_NONE);
	check(again.version == adv->version && again.vrid == adv->vrid &&
	      again.priority == adv->priority && again.interval_cs == adv->interval_cs &&
	      again.naddr == adv->naddr);
	for (unsigned i = 0; i < adv->naddr; i++)
		check(vrrp_addr_equal(&again.addrs[i], &adv->addrs[i]));
}

/* A fresh machine that heard this advert must stay within its bounds. */
static void drive_fsm(const struct vrrp_advert *adv, const struct vrrp_rx_info *rx)
{
	struct vrrp_fsm_config cfg = {
	    .version = adv->version,
	    .priority = 100,
	    .adver_int_cs = 100,
	    .preempt = adv->vrid & 1,
	    .preempt_delay_ms = (adv->vrid & 2) ? 3000 : 0,
	};
	struct vrrp_fsm fsm;
	struct vrrp_actions out;
	uint64_t t;

	inet_pton(rx->family, rx->family == AF_INET ? "192.168.1.2" : "fe80::2", &cfg.primary.u);
	cfg.primary.family = rx->family;
	check(vrrp_fsm_init(&fsm, &cfg) == 0);
	vrrp_fsm_start(&fsm, 0, &out);
	t = vrrp_fsm_next_deadline(&fsm);
	vrrp_fsm_timer(&fsm, t, &out);
	check(fsm.state == VRRP_STATE_MASTER);
	vrrp_fsm_rx_advert(&fsm, t + 1, &rx->src, adv->priority, adv->interval_cs, &out);
	check(out.n <= VRRP_ACTIONS_MAX);
	vrrp_fsm_rx_advert(&fsm, t + 2, &rx->src, adv->priority, adv->interval_cs, &out);
	t = vrrp_fsm_next_deadline(&fsm);
	check(t != VRRP_NEVER && t > 2);
	vrrp_fsm_timer(&fsm, t, &out);
	check(fsm.state == VRRP_STATE_MASTER || fsm.state == VRRP_STATE_BACKUP);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vrrp_pkt_expect exp = {0};
	struct vrrp_addr vips[VRRP_MAX_ADDRS];
	struct vrrp_advert adv;
	struct vrrp_rx_info rx;
	enum vrrp_drop why;
	const uint8_t *msg;
	size_t len, n = 0;

	if (size < 4)
		return 0;
	facts(data, &rx);
	exp.version = (data[0] & 0x02) ? 3 : 2;
	exp.vrid = data[2];
	msg = data + 4;
	len = size - 4;

	why = vrrp_pkt_decode(msg, len, &rx, &exp, &adv);
	check((unsigned)why < VRRP_DROP_NR);
	check(strcmp(vrrp_drop_reason_name(why), "?") != 0);
	if (why != VRRP_DROP_NONE)
		return 0;

	check(adv.version == exp.version && adv.vrid == exp.vrid);
	check(adv.naddr >= 1 && adv.naddr <= VRRP_MAX_ADDRS && adv.interval_cs != 0);
	check(adv.version == 3 || adv.interval_cs % 100 == 0);
	check(adv.version == 2 || adv.interval_cs <= VRRP_V3_INTERVAL_MAX);
	for (unsigned i = 0; i < adv.naddr; i++)
		check(adv.addrs[i].family == rx.family);
	roundtrip(&adv, len, &rx, &exp);

	if (data[0] & 0x04) {
		/* Its own addresses in another order must match. */
		for (n = 0; n < adv.naddr; n++)
			vips[n] = adv.addrs[(n + data[3]) % adv.naddr];
		check(vrrp_pkt_addrs_match(&adv, vips, n));
		exp.vips = vips;
		exp.nvips = n;
		check(vrrp_pkt_decode(msg, len, &rx, &exp, &adv) == VRRP_DROP_NONE);
	}
	drive_fsm(&adv, &rx);
	return 0;
}
