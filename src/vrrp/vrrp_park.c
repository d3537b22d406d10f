/* vrrp_park: a node that leaves MASTER while connections still use a VIP
 * keeps that VIP local on lo (a /32 or /128) instead of dropping it, so the
 * flows the new master forwards to it (second-chance forwarding) still find
 * their sockets; each is removed from lo once nothing uses it. While
 * parking is on, the interface answers ARP only for its own addresses
 * (arp_ignore 1) and never sources ARP from a parked VIP (arp_announce 2),
 * so the old master never claims the VIP again; both are restored after.
 * (IPv6 neighbour discovery answers only for addresses on the interface.)
 * The instances on one interface share those settings: the first sets
 * them, the last puts back what the host had. Called by vrrp_io.c on the
 * control thread only; the busy question comes from core. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/log.h"
#include "sluice/util.h"
#include "sluice/vip.h"
#include "sluice/vrrp.h"
#include "vrrp-park.h"

/* The ARP settings of one interface, held by every park on it (two
 * instances on eth0, v4 and v6, are usual): an instance that a reload
 * removes must not make the interface answer ARP again for the VIPs
 * another one keeps on lo. Owned by the list below; freed with its last
 * holder. */
struct vrrp_park_if {
	struct vrrp_park_if *next;
	char ifname[VRRP_IFNAME_MAX];
	unsigned holders;
	char old_ignore[16], old_announce[16]; /* "" when not changed */
};

static struct vrrp_park_if *park_ifs; /* control thread only */

struct vrrp_park {
	char name[VRRP_NAME_MAX];
	vrrp_vip_busy_fn *busy;
	void *arg;
	int lo;
	struct util_addr addrs[VRRP_MAX_ADDRS];
	bool parked[VRRP_MAX_ADDRS];
	struct vrrp_park_if *arp; /* NULL: out of memory, the settings untouched */
};

/* Hold ifname's ARP settings for instance name: the first holder sets
 * them. NULL on no memory (logged). */
static struct vrrp_park_if *if_hold(const char *name, const char *ifname)
{
	struct vrrp_park_if *h;
	char err[VIP_ERRLEN];

	for (h = park_ifs; h != NULL; h = h->next)
		if (strcmp(h->ifname, ifname) == 0) {
			h->holders++;
			return h;
		}
	h = calloc(1, sizeof(*h));
	if (h == NULL) {
		log_err("vrrp %s: out of memory (a VIP kept on lo may be answered to ARP)", name);
		return NULL;
	}
	util_strlcpy(h->ifname, ifname, sizeof(h->ifname));
	h->holders = 1;
	if (vip_if_sysctl(ifname, "arp_ignore", "1", h->old_ignore, sizeof(h->old_ignore), err,
			  sizeof(err)) < 0 ||
	    vip_if_sysctl(ifname, "arp_announce", "2", h->old_announce, sizeof(h->old_announce),
			  err, sizeof(err)) < 0)
		log_warn("vrrp %s: %s (a VIP kept on lo may be answered to ARP)", name, err);
	h->next = park_ifs;
	park_ifs = h;
	return h;
}

/* Let go of h; the last holder puts the host's values back. */
static void if_release(struct vrrp_park_if *h, const char *name)
{
	struct vrrp_park_if **pp = &park_ifs;
	char err[VIP_ERRLEN];

	if (h == NULL || --h->holders > 0)
		return;
	if (h->old_ignore[0] != '\0' &&
	    vip_if_sysctl(h->ifname, "arp_ignore", h->old_ignore, NULL, 0, err, sizeof(err)) < 0)
		log_warn("vrrp %s: %s", name, err);
	if (h->old_announce[0] != '\0' && vip_if_sysctl(h->ifname, "arp_announce", h->old_announce,
							NULL, 0, err, sizeof(err)) < 0)
		log_warn("vrrp %s: %s", name, err);
	while (*pp != h)
		pp = &(*pp)->next;
	*pp = h->next;
	free(h);
}

struct vrrp_park *vrrp_park_new(const char *name, const char *ifname, vrrp_vip_busy_fn *busy,
				void *arg)
{
	struct vrrp_park *p = calloc(1, sizeof(*p));
	char err[VIP_ERRLEN];

	if (p == NULL)
		return NULL;
	util_strlcpy(p->name, name, sizeof(p->name));
	p->busy = busy;
	p->arg = arg;
	if (vip_ifindex("lo", &p->lo, err, sizeof(err)) < 0) {
		log_err("vrrp %s: %s: VIPs will not be kept for open connections", name, err);
		free(p);
		return NULL;
	}
	p->arp = if_hold(name, ifname);
	return p;
}

bool vrrp_park_hold(struct vrrp_park *p, size_t i, const struct util_addr *a)
{
	char err[VIP_ERRLEN], buf[UTIL_ADDR_STRLEN];

	if (i >= VRRP_MAX_ADDRS || p->parked[i] || !p->busy(p->arg, a))
		return false;
	if (vip_addr_add(p->lo, a, a->u.sa.sa_family == AF_INET ? 32 : 128, err, sizeof(err)) < 0) {
		log_err("vrrp %s: cannot keep %s on lo: %s", p->name,
			util_addr_fmt_host(a, buf, sizeof(buf)), err);
		return false;
	}
	p->addrs[i] = *a;
	p->parked[i] = true;
	log_notice("vrrp %s: %s kept on lo while connections use it", p->name,
		   util_addr_fmt_host(a, buf, sizeof(buf)));
	return true;
}

static void release(struct vrrp_park *p, size_t i, const char *why)
{
	char err[VIP_ERRLEN], buf[UTIL_ADDR_STRLEN];

	if (vip_addr_del(p->lo, &p->addrs[i], err, sizeof(err)) < 0)
		log_err("vrrp %s: %s", p->name, err);
	else
		log_notice("vrrp %s: %s removed from lo: %s", p->name,
			   util_addr_fmt_host(&p->addrs[i], buf, sizeof(buf)), why);
	p->parked[i] = false;
}

void vrrp_park_unpark(struct vrrp_park *p, size_t i)
{
	if (i < VRRP_MAX_ADDRS && p->parked[i])
		release(p, i, "master again");
}

void vrrp_park_check(struct vrrp_park *p)
{
	for (size_t i = 0; i < VRRP_MAX_ADDRS; i++)
		if (p->parked[i] && !p->busy(p->arg, &p->addrs[i]))
			release(p, i, "its last connection ended");
}

size_t vrrp_park_count(const struct vrrp_park *p)
{
	size_t n = 0;

	for (size_t i = 0; p != NULL && i < VRRP_MAX_ADDRS; i++)
		n += p->parked[i];
	return n;
}

void vrrp_park_free(struct vrrp_park *p)
{
	if (p == NULL)
		return;
	for (size_t i = 0; i < VRRP_MAX_ADDRS; i++)
		if (p->parked[i])
			release(p, i, "the instance stops");
	if_release(p->arp, p->name);
	free(p);
}
