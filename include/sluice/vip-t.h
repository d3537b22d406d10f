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

#endif
