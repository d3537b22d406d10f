/* vrrp internals shared by the running instance (vrrp_io.c: protocol,
 * actions, timers, links, lifecycle), its raw socket (vrrp_sock.c: open,
 * send, receive and parse the IP level) and its notify scripts
 * (vrrp_notify.c). Only src/vrrp includes this. */
#ifndef SLUICE_VRRP_INT_H
#define SLUICE_VRRP_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ev.h>

#include "sluice/log.h"
#include "sluice/vip.h"
#include "sluice/vrrp.h"

#define VRRP_MAX_CHILDREN 16

/* A notify script that has not exited yet. */
struct vrrp_child {
	ev_child w;
	struct vrrp_instance *vi; /* NULL once the instance is gone */
	bool used;
};

struct vrrp_park; /* vrrp_park.c */

/* Owned by its creator (core); owns its socket, monitor and watchers. */
struct vrrp_instance {
	struct ev_loop *loop;
	struct vrrp_instance_config cfg;
	struct vrrp_fsm fsm;
	int ifindex;
	int vip_ifindex[VRRP_MAX_ADDRS];
	struct vrrp_addr vips[VRRP_MAX_ADDRS];
	struct vrrp_addr primary, group;
	int fd;
	ev_io io, link_io;
	ev_timer timer;
	struct vip_linkmon *mon;
	bool running, left;
	/* the interface or its address is missing: FAULT until it appears,
	 * looked for at every link event and every second (wait_timer) */
	bool waiting, want_start;
	ev_timer wait_timer;
	bool track_up[VRRP_MAX_TRACKS];
	int track_ifindex[VRRP_MAX_TRACKS];
	uint64_t refresh_at_ms;
	uint64_t adverts_sent, adverts_rcvd, send_errors, transitions, garps_sent;
	uint64_t drops[VRRP_DROP_NR];
	uint64_t io_drops[VRRP_IODROP_NR];
	uint64_t last_transition_wall_ms;
	char last_reason[VRRP_REASON_TEXT_LEN];
	struct vrrp_peer_seen peers_seen[VRRP_MAX_PEERS];
	size_t npeers_seen;
	struct vrrp_child children[VRRP_MAX_CHILDREN];
	struct log_ratelimit rl_drop, rl_err;
	struct vrrp_park *park; /* NULL: VIPs given up are removed at once */
};

/* ---- vrrp_sock.c: the raw IP protocol 112 socket ---- */

/* Open vi->fd for vi->primary's family on vi->ifindex: bound to the
 * device, TTL/hop limit 255, multicast loop off, group joined unless
 * unicast. Returns 0, or -1 with err set and vi->fd closed (-1). */
int vrrp_sock_open(struct vrrp_instance *vi, char *err, size_t errlen);
/* Send one encoded advert (len bytes) to dst from vi->primary.
 * Returns 0 or -1 (errno). */
int vrrp_sock_send(struct vrrp_instance *vi, const uint8_t *buf, size_t len,
		   const struct vrrp_addr *dst);
/* Read what is waiting (at most a budget of packets) and hand each VRRP
 * message with its IP facts to vrrp_io_rx(); a packet without them is
 * counted as VRRP_IODROP_SHORT. */
void vrrp_sock_read(struct vrrp_instance *vi);

/* ---- vrrp_io.c ---- */

/* One received VRRP message (the IP payload) with what the IP header said:
 * checked, decoded and fed to the state machine, or dropped and counted. */
void vrrp_io_rx(struct vrrp_instance *vi, const uint8_t *msg, size_t len,
		const struct vrrp_rx_info *rx);

/* ---- vrrp_notify.c: notify scripts ---- */

/* Run "notify NAME STATE" without waiting; the loop reaps it. Returns 0
 * (also when no script is configured), or -1 with err set when it could
 * not start (too many still running, spawn failed). */
int vrrp_notify_run(struct vrrp_instance *vi, enum vrrp_state state, char *err, size_t errlen);
/* The instance goes away: stop watching its scripts (the loop still reaps
 * them; nobody is told). */
void vrrp_notify_detach(struct vrrp_instance *vi);

#endif
