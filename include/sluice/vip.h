/* vip: the kernel side of virtual IPs — secondary addresses through
 * rtnetlink (libnl), link state events, gratuitous ARP and unsolicited
 * neighbour advertisements. Called by the VRRP I/O layer and core; knows
 * nothing of VRRP, pools or configuration. Every function is safe to call
 * from one thread at a time per object; the stateless ones from any thread.
 * Errors: 0 / -1 and a message in the caller's buffer, e.g.
 * "add 198.51.100.10/24 on eth0: Operation not permitted". */
#ifndef SLUICE_VIP_H
#define SLUICE_VIP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sluice/util-t.h"
#include "sluice/vip-t.h"

/* ---- interfaces (vip_addr.c) ---- */

/* "libnl 3.7.0 (built with 3.7.0)", for sluice --version. Returns buf. */
const char *vip_libnl_version(char *buf, size_t len);

/* Look up the index of interface ifname. Returns 0 and sets *ifindex_out,
 * or -1 with "interface eth9: No such device" in err. */
int vip_ifindex(const char *ifname, int *ifindex_out, char *err, size_t errlen);

/* Write the interface's name into buf, or "ifindex N" when it has none
 * (any more). For messages. Returns buf. */
const char *vip_ifname_fmt(int ifindex, char *buf, size_t len);

/* ---- addresses (vip_addr.c) ---- */

/* Add addr (IPv4 or IPv6; the port is ignored) with prefixlen to ifindex.
 * IPv6 addresses are added with IFA_F_NODAD so they are usable at once.
 * An address already there is success. Needs CAP_NET_ADMIN.
 * Returns 0 or -1 with err set. */
int vip_addr_add(int ifindex, const struct util_addr *addr, unsigned int prefixlen, char *err,
		 size_t errlen);

/* Remove addr from ifindex whatever its prefix length. An absent address is
 * success. Returns 0 or -1 with err set. */
int vip_addr_del(int ifindex, const struct util_addr *addr, char *err, size_t errlen);

/* Ask the kernel whether addr is configured on ifindex (any prefix length).
 * Returns 0 and sets *present_out, or -1 with err set. */
int vip_addr_present(int ifindex, const struct util_addr *addr, bool *present_out, char *err,
		     size_t errlen);

/* The interface's primary IPv4 address: the first one, in kernel order,
 * without IFA_F_SECONDARY (the source VRRP adverts use). Port 0.
 * Returns 0, or -1 with err set when there is none. */
int vip_addr_primary4(int ifindex, struct util_addr *out, char *err, size_t errlen);

/* A usable link-local IPv6 address of the interface (fe80::/10, not
 * tentative, DAD not failed), with sin6_scope_id = ifindex. Port 0.
 * Returns 0, or -1 with err set when there is none (yet). */
int vip_addr_linklocal6(int ifindex, struct util_addr *out, char *err, size_t errlen);

/* ---- link state (vip_link.c) ---- */

/* Query the current state of one link. Returns 0 and sets *up_out (up as
 * defined for vip_link_fn), or -1 with err set. */
int vip_link_is_up(int ifindex, bool *up_out, char *err, size_t errlen);

/* Open a link monitor: a non-blocking netlink socket subscribed to link
 * events. cb(arg, ...) is called from vip_linkmon_process() only, once per
 * change of a link's up/down state; the first event seen for a link that
 * was never queried is reported too. cb must not close the monitor.
 * Returns the monitor (caller owns it; free with vip_linkmon_close()), or
 * NULL with err set. */
struct vip_linkmon *vip_linkmon_open(vip_link_fn *cb, void *arg, char *err, size_t errlen);

/* The monitor's file descriptor, for the caller's event loop (watch it for
 * reading; the monitor keeps ownership and closes it). */
int vip_linkmon_fd(const struct vip_linkmon *mon);

/* Read every pending event and call the callback for each state change.
 * Malformed or unexpected messages are counted and skipped; a receive
 * buffer overrun (lost events) triggers a full resynchronisation, so no
 * change is missed. Returns 0, or -1 with err set when the socket failed
 * (the monitor should then be closed and reopened). */
int vip_linkmon_process(struct vip_linkmon *mon, char *err, size_t errlen);

/* Query a link's current state and remember it, so that the callback then
 * fires only when it changes. Call after vip_linkmon_open() so that no
 * change can fall between the query and the events. Returns 0 and sets
 * *up_out, or -1 with err set. */
int vip_linkmon_query(struct vip_linkmon *mon, int ifindex, bool *up_out, char *err, size_t errlen);

/* Netlink messages the monitor skipped as malformed or unexpected. */
uint64_t vip_linkmon_ignored(const struct vip_linkmon *mon);

/* Close the socket and free the monitor. NULL is allowed. */
void vip_linkmon_close(struct vip_linkmon *mon);

/* ---- announcements (vip_garp.c) ---- */

/* The interface's Ethernet address. Returns 0, or -1 with err set (also
 * when the interface is not Ethernet). */
int vip_link_hwaddr(int ifindex, uint8_t mac[6], char *err, size_t errlen);

/* Announce addr on ifindex once. IPv4: a gratuitous ARP request (sender
 * IP = target IP = addr, sender MAC = interface MAC, target MAC and
 * destination ff:ff:ff:ff:ff:ff) through an AF_PACKET socket, as keepalived
 * sends it. IPv6: an unsolicited neighbour advertisement (RFC 4861 7.2.6)
 * to ff02::1, hop limit 255, override flag, target link-layer address
 * option, sourced from addr when it is configured. Needs CAP_NET_RAW; opens
 * and closes its socket on each call. Returns 0 or -1 with err set. */
int vip_garp_send(int ifindex, const struct util_addr *addr, char *err, size_t errlen);

/* ---- neighbours on a link (vip_neigh.c) ---- */

/* The MACs the kernel's neighbour table holds for addrs[0..n-1] on
 * ifindex, where it has a usable one (not being resolved, not failed):
 * found[i] says whether macs[i] was filled. One table dump. Returns 0, or
 * -1 with err set. */
int vip_neigh_macs(int ifindex, const struct util_addr *addrs, size_t n, uint8_t (*macs)[6],
		   bool *found, char *err, size_t errlen);

/* Make the kernel resolve addr on ifindex: send it an empty UDP datagram
 * to the discard port through that link. Needs CAP_NET_RAW for the
 * binding to the link. Returns 0 or -1 with err set. */
int vip_neigh_probe(int ifindex, const struct util_addr *addr, char *err, size_t errlen);

/* Set net.ipv4.conf.IFNAME.KEY (arp_ignore, arp_announce, rp_filter...)
 * to value; the value it had goes to old (when not NULL). Needs
 * CAP_NET_ADMIN. Returns 0 or -1 with err set. */
int vip_if_sysctl(const char *ifname, const char *key, const char *value, char *old, size_t oldlen,
		  char *err, size_t errlen);

/* Is addr inside one of the prefixes configured on ifindex (and not one
 * of its own addresses)? Returns 0 with *on_out set, or -1 with err. */
int vip_addr_on_subnet(int ifindex, const struct util_addr *addr, bool *on_out, char *err,
		       size_t errlen);
/* ---- TUN announce device (vip_tun.c) ---- */

/* Create the TUN device name (IFF_TUN, no packet information) attached to
 * a new descriptor of /dev/net/tun and set it up. The device lives exactly
 * as long as that descriptor (and its duplicates, e.g. in a process that
 * took it over): when the process dies in any way the kernel deletes the
 * device and its addresses, so the routing daemon withdraws them. A name
 * that already exists is refused (another program's device, or a
 * persistent one that would outlive us). Returns the descriptor (the
 * caller owns it) and sets *ifindex_out, or -1 with err set. */
int vip_tun_create(const char *name, int *ifindex_out, char *err, size_t errlen);

/* Check that fd (inherited through a binary upgrade) is attached to the
 * TUN device name and set it up. Returns 0 and sets *ifindex_out, or -1
 * with err set. The caller keeps fd. */
int vip_tun_adopt(int fd, const char *name, int *ifindex_out, char *err, size_t errlen);

/* ---- announce decision (vip_announce.c, pure) ---- */

/* Start a block's state at now_ms. announced: its addresses are already
 * on the device (inherited through a binary upgrade) and stay there
 * without a new hold-down while the conditions hold; otherwise it starts
 * withdrawn with cause "starting". */
void vip_announce_init(struct vip_announce *a, uint64_t hold_down_ms, bool announced,
		       uint64_t now_ms, uint64_t wall_ms);

/* Feed the conditions at now_ms: cause NULL when every condition holds,
 * otherwise the first that fails ("pool web has no usable server"; copied).
 * A failing condition withdraws at once; once every condition holds, the
 * addresses are announced after hold-down (and not before a retry time).
 * Returns what the caller must do to the kernel, and sets *next_ms to the
 * latest time to call again (UINT64_MAX: only when a condition changes).
 * The caller logs the change (state before / after and a->cause). */
enum vip_announce_action vip_announce_step(struct vip_announce *a, const char *cause,
					   uint64_t now_ms, uint64_t wall_ms, uint64_t *next_ms);

/* The caller could not add the addresses (err says why): back to
 * WITHDRAWN with cause "error: ERR", counted, and no new attempt before
 * VIP_ANNOUNCE_RETRY_MS. */
void vip_announce_failed(struct vip_announce *a, const char *err, uint64_t now_ms,
			 uint64_t wall_ms);

/* Change the hold-down (reload); a block waiting in HOLD_DOWN waits for the
 * new one from when it became healthy. */
void vip_announce_set_hold_down(struct vip_announce *a, uint64_t hold_down_ms);

/* "withdrawn", "hold-down", "announced". */
const char *vip_announce_state_name(enum vip_announce_state s);

#endif
