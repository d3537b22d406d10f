/* vip types: the link-event callback and sizes shared by the address,
 * link and gratuitous ARP / NA helpers. The monitor itself is opaque: only
 * src/vip/ knows it holds a libnl socket. */
#ifndef SLUICE_VIP_T_H
#define SLUICE_VIP_T_H

#include <stdbool.h>

/* A good size for the error buffers every vip_ function takes. */
#define VIP_ERRLEN 256

/* Called by vip_linkmon_process() when a link's state changes. up means
 * administratively up and operational: IFF_UP and IFF_RUNNING (carrier
 * present, operstate UP or UNKNOWN). ifname is only valid during the call
 * ("" when the kernel did not send it). A link that is deleted is reported
 * once as down. */
typedef void vip_link_fn(void *arg, int ifindex, const char *ifname, bool up);

/* Link monitor: a netlink socket subscribed to RTNLGRP_LINK plus the last
 * state reported per interface. Opaque; created by vip_linkmon_open(),
 * owned by the caller, freed by vip_linkmon_close(). */
struct vip_linkmon;

/* ---- announce decision (vip_announce.c, pure) ---- */

#define VIP_ANNOUNCE_CAUSE_MAX 192
/* After an address could not be added, try again this much later. */
#define VIP_ANNOUNCE_RETRY_MS 1000

/* Where an announced group of addresses stands:
 *
 *   WITHDRAWN --every condition holds--> HOLD_DOWN --hold-down passed--> ANNOUNCED
 *       ^                                    |                                |
 *       +------- a condition fails ----------+--------------------------------+
 *
 * Only the edges into and out of ANNOUNCED change the routers' view. */
enum vip_announce_state {
	VIP_ANNOUNCE_WITHDRAWN,
	VIP_ANNOUNCE_HOLD_DOWN,
	VIP_ANNOUNCE_ANNOUNCED,
};

/* What the caller must do to the kernel after vip_announce_step(). */
enum vip_announce_action {
	VIP_ANNOUNCE_KEEP,   /* nothing */
	VIP_ANNOUNCE_DO_ADD, /* put the addresses on the device */
	VIP_ANNOUNCE_DO_DEL, /* take them off */
};

/* The decision state of one announce block: plain data, no I/O, driven
 * by conditions and a monotonic clock. Owned by its caller. */
struct vip_announce {
	uint64_t hold_down_ms;
	enum vip_announce_state state;
	uint64_t healthy_since_ms; /* every condition held since (valid outside WITHDRAWN) */
	uint64_t retry_at_ms;	   /* no add before this (after a failed one); 0: none */
	uint64_t since_ms;	   /* last change of state, monotonic */
	uint64_t since_wall_ms;	   /* the same moment, wall clock (for people) */
	uint64_t withdrawn_ms;	   /* last time it left ANNOUNCED; 0: never */
	uint64_t announces, withdraws, errors;
	char cause[VIP_ANNOUNCE_CAUSE_MAX]; /* why not announced ("" when announced) */
};

#endif
