/* vrrp: VRRPv2/v3 advert codec and the per-virtual-router state machine.
 * Both are pure (no sockets, no clock, no allocation): the I/O layer feeds
 * them bytes, IP facts and `now_ms`, and performs the actions they return. */
#ifndef SLUICE_VRRP_H
#define SLUICE_VRRP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sluice/util-t.h"
#include "sluice/vrrp-t.h"

/* ---- addresses ----------------------------------------------------------- */

/* Fill *out with the host part of a (IPv4 or IPv6) socket address.
 * Returns 0, or -1 when a holds another family. */
int vrrp_addr_from_util(const struct util_addr *a, struct vrrp_addr *out);
/* Fill *out with a as a socket address, port 0. */
void vrrp_addr_to_util(const struct vrrp_addr *a, struct util_addr *out);
/* Set *out to the IPv4 address given in host order (e.g. VRRP_MCAST_V4). */
void vrrp_addr_set_v4(struct vrrp_addr *out, uint32_t host_order);
/* True when both hold the same family and address. */
bool vrrp_addr_equal(const struct vrrp_addr *a, const struct vrrp_addr *b);
/* Numeric order (IPv4 before IPv6): <0, 0, >0 like memcmp. */
int vrrp_addr_cmp(const struct vrrp_addr *a, const struct vrrp_addr *b);
/* Format the address ("-" when unset) into buf. Returns buf. */
const char *vrrp_addr_fmt(const struct vrrp_addr *a, char *buf, size_t len);

/* ---- packet codec (vrrp_pkt.c) ------------------------------------------- */

/* Encode adv into buf (buflen bytes). v2: IPv4 only, interval_cs a multiple
 * of 100 up to 255 s, checksum over the message (form ignored). v3 IPv4:
 * `form` is VRRP_CSUM_RFC or VRRP_CSUM_PSEUDO (never the old-unicast form).
 * v3 IPv6: always the IPv6 pseudo-header (form ignored). src/dst are the IP
 * source and destination, needed only by the pseudo-header forms (else may be
 * NULL). Returns the number of bytes written, or -1 when adv is invalid
 * (version, vrid 0, interval, count, mixed families, form) or buf too small. */
int vrrp_pkt_encode(uint8_t *buf, size_t buflen, const struct vrrp_advert *adv,
		    enum vrrp_csum_form form, const struct vrrp_addr *src,
		    const struct vrrp_addr *dst);

/* Validate and decode a received VRRP message (the IP payload, len bytes;
 * any input is safe). rx carries what the caller read from the IP header,
 * exp what this virtual router expects. On VRRP_DROP_NONE *out holds the
 * advert (interval normalised to centiseconds, csum_form the form that
 * matched: for v3 IPv4 the pseudo-header with rx->dst, the RFC form, or the
 * pseudo-header with 224.0.0.18, tried in that order). Otherwise returns
 * why the packet must be dropped and *out is unspecified. */
enum vrrp_drop vrrp_pkt_decode(const uint8_t *buf, size_t len, const struct vrrp_rx_info *rx,
			       const struct vrrp_pkt_expect *exp, struct vrrp_advert *out);

/* True when the advert carries exactly the configured VIPs (same count, same
 * set, any order), as keepalived requires. */
bool vrrp_pkt_addrs_match(const struct vrrp_advert *adv, const struct vrrp_addr *vips,
			  size_t nvips);

/* Short stable name of a drop reason ("ttl", "checksum", "addr-list", ...),
 * for counters and logs; "?" for a value out of range. */
const char *vrrp_drop_reason_name(enum vrrp_drop reason);
/* "rfc", "pseudo-header" or "pseudo-header-224.0.0.18". */
const char *vrrp_csum_form_name(enum vrrp_csum_form form);

/* ---- state machine (vrrp_fsm.c) ------------------------------------------ */
/* Every input clears *out and fills it with the actions to perform in order.
 * Times are monotonic milliseconds. */

/* Set up fsm in INIT with cfg (copied), link up. Returns 0, or -1 when cfg is
 * invalid (version, priority 0, interval out of range for the version, no
 * primary address); fsm is then untouched. */
int vrrp_fsm_init(struct vrrp_fsm *fsm, const struct vrrp_fsm_config *cfg);

/* Leave INIT: to BACKUP (removing leftover VIPs, master down timer armed),
 * to MASTER at once with priority 255, or to FAULT when the link is down.
 * No-op in other states. */
void vrrp_fsm_start(struct vrrp_fsm *fsm, uint64_t now_ms, struct vrrp_actions *out);

/* Go to INIT. A master sends an advert with priority 0 first, then removes
 * its VIPs. */
void vrrp_fsm_shutdown(struct vrrp_fsm *fsm, uint64_t now_ms, struct vrrp_actions *out);

/* A valid advert for our VRID (vrrp_pkt_decode accepted it) from IP source
 * src with its priority and interval in centiseconds. Adverts carrying our
 * own primary address are ignored (our own, looped back). Never moves the
 * master's advert timer. */
void vrrp_fsm_rx_advert(struct vrrp_fsm *fsm, uint64_t now_ms, const struct vrrp_addr *src,
			uint8_t priority, uint16_t interval_cs, struct vrrp_actions *out);

/* Run the deadlines that have passed at now_ms (early calls are harmless). */
void vrrp_fsm_timer(struct vrrp_fsm *fsm, uint64_t now_ms, struct vrrp_actions *out);

/* Set the effective priority (tracking). 0 is raised to 1 and only a
 * configured owner may have 255. A master keeps its state and advertises the
 * new value from its next advert; a backup applies it to the next advert it
 * receives (so a raised backup preempts a lower master the usual way). */
void vrrp_fsm_set_priority(struct vrrp_fsm *fsm, uint64_t now_ms, uint8_t priority,
			   struct vrrp_actions *out);

/* Link (carrier) change. Down: any running state goes to FAULT, a master
 * removes its VIPs. Up: FAULT goes to BACKUP (or MASTER when owner). In INIT
 * the state is remembered for vrrp_fsm_start. */
void vrrp_fsm_link(struct vrrp_fsm *fsm, uint64_t now_ms, bool up, struct vrrp_actions *out);

/* The absolute time (ms) at which vrrp_fsm_timer must run next, VRRP_NEVER
 * when nothing is armed. */
uint64_t vrrp_fsm_next_deadline(const struct vrrp_fsm *fsm);

/* Skew_Time and Master_Down_Interval in ms for the current master interval
 * and effective priority (RFC 9568 section 6.1). */
uint64_t vrrp_fsm_skew_ms(const struct vrrp_fsm *fsm);
uint64_t vrrp_fsm_master_down_ms(const struct vrrp_fsm *fsm);

/* "INIT", "BACKUP", "MASTER", "FAULT". */
const char *vrrp_state_name(enum vrrp_state state);
/* "SEND_ADVERT", "ADD_VIPS", ... for logs and tests. */
const char *vrrp_action_name(enum vrrp_action_type type);

/* ---- I/O (vrrp_io.c): the daemon side ------------------------------------ */
/* Runs in the control thread's libev loop: a raw IP protocol 112 socket, a
 * link monitor and one timer per instance; performs the state machine's
 * actions (adverts, VIPs through vip, gratuitous ARPs, notify script). */

struct ev_loop;
struct vrrp_instance;

/* Do open connections use this VIP (the host part of vip)? */
typedef bool vrrp_vip_busy_fn(void *arg, const struct util_addr *vip);

/* Drop counter / log names of the I/O layer's reasons. */
const char *vrrp_io_drop_name(enum vrrp_io_drop reason);

/* Create an instance on loop for cfg (copied): resolves the interface and
 * its primary address, opens and sets up the socket (multicast group joined
 * or unicast). Does not start the election. Returns the instance (caller
 * owns it) or NULL with err set. */
struct vrrp_instance *vrrp_instance_new(struct ev_loop *loop,
					const struct vrrp_instance_config *cfg, char *err,
					size_t errlen);
/* Start: remove leftover VIPs, go to BACKUP (or MASTER as owner, FAULT
 * without link) and watch the socket, the links and the timer. */
void vrrp_instance_start(struct vrrp_instance *vi);
/* Leave the election cleanly: a master sends priority 0, then removes its
 * VIPs. Watchers stop; the instance may be freed or started again. */
void vrrp_instance_shutdown(struct vrrp_instance *vi);
/* Stop (shutdown first when running), close and free. NULL is allowed. */
void vrrp_instance_free(struct vrrp_instance *vi);
/* `vrrp leave` (shutdown, stays out) and `vrrp join` (start again).
 * Returns 0, or -1 with msg set when already in that state. */
int vrrp_instance_admin(struct vrrp_instance *vi, bool leave, char *msg, size_t len);
/* Report the state of external track idx (index in cfg.tracks). */
void vrrp_instance_track_set(struct vrrp_instance *vi, size_t idx, bool up);
const struct vrrp_instance_config *vrrp_instance_config(const struct vrrp_instance *vi);
/* Keep VIPs for open connections (with second-chance forwarding, the new
 * master sends this node the packets of its flows): when the instance
 * gives its VIPs up while busy(arg, vip) says connections use one, it is
 * kept on lo, never answered to ARP on the interface, until
 * vrrp_instance_park_check() finds it idle. busy NULL turns it off (kept
 * VIPs are released). */
void vrrp_instance_set_park(struct vrrp_instance *vi, vrrp_vip_busy_fn *busy, void *arg);
/* Release the kept VIPs no connection uses any more; call periodically. */
void vrrp_instance_park_check(struct vrrp_instance *vi);
void vrrp_instance_status(const struct vrrp_instance *vi, struct vrrp_status *out);

#endif
