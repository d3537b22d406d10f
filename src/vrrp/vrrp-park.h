/* vrrp_park (vrrp_park.c): VIPs kept on lo for open connections after an
 * instance leaves MASTER. Only src/vrrp includes it. */
#ifndef SLUICE_VRRP_PARK_H
#define SLUICE_VRRP_PARK_H

#include <stdbool.h>
#include <stddef.h>

#include "sluice/util-t.h"
#include "sluice/vrrp.h"

struct vrrp_park;

/* Turn parking on for instance name on ifname (sets arp_ignore 1 and
 * arp_announce 2 there, unless another instance's park on ifname did; the
 * last one freed puts the old values back). NULL when lo cannot be found
 * (logged). */
struct vrrp_park *vrrp_park_new(const char *name, const char *ifname, vrrp_vip_busy_fn *busy,
				void *arg);
/* VIP number i (address a) is being given up: when connections use it,
 * add it to lo and return true (the caller still removes it from the
 * interface); false: nothing done. */
bool vrrp_park_hold(struct vrrp_park *p, size_t i, const struct util_addr *a);
/* VIP i is being taken again: remove it from lo if it was kept there. */
void vrrp_park_unpark(struct vrrp_park *p, size_t i);
/* Remove from lo the kept VIPs no connection uses any more. */
void vrrp_park_check(struct vrrp_park *p);
/* How many VIPs are kept on lo (0 for NULL). */
size_t vrrp_park_count(const struct vrrp_park *p);
/* Remove every kept VIP from lo, let go of the interface's ARP settings
 * (the last park on it restores them), free. NULL is allowed. */
void vrrp_park_free(struct vrrp_park *p);

#endif
