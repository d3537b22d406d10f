/* vip neighbours: what the cluster module needs to reach its peers on a
 * shared segment: a peer's MAC from the kernel's neighbour table, a probe
 * that makes the kernel resolve it, and whether an address is on one of a
 * link's subnets. Stateless like vip_addr.c: each call opens and closes
 * its own socket. Called by core from the control thread. */
#include <errno.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <linux/neighbour.h>
#include <netlink/addr.h>
#include <netlink/errno.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/neighbour.h>
#include <netlink/socket.h>

#include "sluice/util.h"
#include "sluice/vip.h"
#include "vip-int.h"

static const uint8_t *raw_addr(const struct util_addr *a, size_t *len)
{
	if (a->u.sa.sa_family == AF_INET) {
		*len = 4;
		return (const uint8_t *)&a->u.in4.sin_addr;
	}
	*len = 16;
	return (const uint8_t *)&a->u.in6.sin6_addr;
}

int vip_neigh_macs(int ifindex, const struct util_addr *addrs, size_t n, uint8_t (*macs)[6],
		   bool *found, char *err, size_t errlen)
{
	struct nl_sock *sk;
	struct nl_cache *cache = NULL;
	int rc;

	for (size_t i = 0; i < n; i++)
		found[i] = false;
	sk = vip_nl_route_open(err, errlen);
	if (sk == NULL)
		return -1;
	/* one dump for every peer */
	rc = rtnl_neigh_alloc_cache(sk, &cache);
	nl_socket_free(sk);
	if (rc < 0) {
		snprintf(err, errlen, "neighbour table: %s", nl_geterror(rc));
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		size_t len;
		const uint8_t *bytes = raw_addr(&addrs[i], &len);
		struct nl_addr *dst = nl_addr_build(addrs[i].u.sa.sa_family, bytes, len);
		struct rtnl_neigh *ne;

		if (dst == NULL) {
			nl_cache_free(cache);
			snprintf(err, errlen, "neighbour table: out of memory");
			return -1;
		}
		ne = rtnl_neigh_get(cache, ifindex, dst);
		nl_addr_put(dst);
		if (ne == NULL)
			continue;
		{
			struct nl_addr *ll = rtnl_neigh_get_lladdr(ne);
			int state = rtnl_neigh_get_state(ne);

			/* a MAC the kernel still believes in: not being
			 * resolved, not failed */
			if (ll != NULL && nl_addr_get_len(ll) == 6 &&
			    !(state & (NUD_INCOMPLETE | NUD_FAILED | NUD_NOARP))) {
				memcpy(macs[i], nl_addr_get_binary_addr(ll), 6);
				found[i] = true;
			}
		}
		rtnl_neigh_put(ne);
	}
	nl_cache_free(cache);
	return 0;
}

int vip_neigh_probe(int ifindex, const struct util_addr *addr, char *err, size_t errlen)
{
	struct util_addr to = *addr;
	char name[IF_NAMESIZE];
	int fd = socket(addr->u.sa.sa_family, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	int rc = 0;

	if (fd < 0) {
		snprintf(err, errlen, "neighbour probe: %s", strerror(errno));
		return -1;
	}
	vip_ifname_fmt(ifindex, name, sizeof(name));
	/* the discard port: the datagram only makes the kernel resolve the
	 * neighbour; bound to the link so that no other route is taken */
	util_addr_set_port(&to, 9);
	if (setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, name, (socklen_t)strlen(name)) < 0 ||
	    (sendto(fd, "", 0, 0, &to.u.sa, to.len) < 0 && errno != EAGAIN)) {
		snprintf(err, errlen, "neighbour probe on %s: %s", name, strerror(errno));
		rc = -1;
	}
	close(fd);
	return rc;
}

/* Does the prefix of ra contain bytes (len bytes)? Not the address itself. */
static bool in_prefix(struct rtnl_addr *ra, const uint8_t *bytes, size_t len, bool *self)
{
	struct nl_addr *local = rtnl_addr_get_local(ra);
	int plen = rtnl_addr_get_prefixlen(ra);
	const uint8_t *mine;

	if (local == NULL || nl_addr_get_len(local) != len || plen < 0 || (size_t)plen > len * 8)
		return false;
	mine = nl_addr_get_binary_addr(local);
	if (memcmp(mine, bytes, len) == 0)
		*self = true;
	for (int bit = 0; bit < plen; bit++) {
		uint8_t m = (uint8_t)(0x80 >> (bit % 8));

		if ((mine[bit / 8] & m) != (bytes[bit / 8] & m))
			return false;
	}
	return true;
}

int vip_addr_on_subnet(int ifindex, const struct util_addr *addr, bool *on_out, char *err,
		       size_t errlen)
{
	struct nl_sock *sk;
	struct nl_cache *cache = NULL;
	struct nl_object *obj;
	size_t len;
	const uint8_t *bytes = raw_addr(addr, &len);
	bool self = false;
	int rc;

	*on_out = false;
	sk = vip_nl_route_open(err, errlen);
	if (sk == NULL)
		return -1;
	rc = rtnl_addr_alloc_cache(sk, &cache);
	nl_socket_free(sk);
	if (rc < 0) {
		snprintf(err, errlen, "addresses: %s", nl_geterror(rc));
		return -1;
	}
	for (obj = nl_cache_get_first(cache); obj != NULL; obj = nl_cache_get_next(obj)) {
		struct rtnl_addr *ra = (struct rtnl_addr *)obj;

		if (rtnl_addr_get_ifindex(ra) != ifindex ||
		    rtnl_addr_get_family(ra) != addr->u.sa.sa_family)
			continue;
		if (in_prefix(ra, bytes, len, &self))
			*on_out = true;
	}
	nl_cache_free(cache);
	/* our own address is no peer */
	if (self)
		*on_out = false;
	return 0;
}

int vip_if_sysctl(const char *ifname, const char *key, const char *value, char *old, size_t oldlen,
		  char *err, size_t errlen)
{
	char path[128];
	FILE *f;
	int n;

	if (strchr(ifname, '/') != NULL || strchr(key, '/') != NULL || strcmp(ifname, ".") == 0 ||
	    strcmp(ifname, "..") == 0) {
		snprintf(err, errlen, "sysctl %s of %s: bad name", key, ifname);
		return -1;
	}
	n = snprintf(path, sizeof(path), "/proc/sys/net/ipv4/conf/%s/%s", ifname, key);
	if (n < 0 || (size_t)n >= sizeof(path)) {
		snprintf(err, errlen, "sysctl %s of %s: name too long", key, ifname);
		return -1;
	}
	if (old != NULL && oldlen > 0) {
		f = fopen(path, "re");
		if (f == NULL || fgets(old, (int)oldlen, f) == NULL) {
			snprintf(err, errlen, "read %s: %s", path, strerror(errno));
			if (f != NULL)
				fclose(f);
			return -1;
		}
		fclose(f);
		old[strcspn(old, "\n")] = '\0';
	}
	f = fopen(path, "we");
	if (f == NULL || fputs(value, f) < 0 || fclose(f) != 0) {
		snprintf(err, errlen, "write %s: %s", path, strerror(errno));
		if (f != NULL)
			fclose(f);
		return -1;
	}
	return 0;
}
