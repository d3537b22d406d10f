/* vip addresses: add, delete and look up interface addresses through
 * rtnetlink (libnl-route-3). Stateless: each call opens its own netlink
 * socket and closes it, so callers hold no libnl object. Add and delete
 * are idempotent so a restart can replay them blindly. */
#include <errno.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>

#include <linux/if_addr.h>
#include <linux/rtnetlink.h>
#include <netlink/addr.h>
#include <netlink/errno.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/version.h>
#include <netlink/socket.h>

#include "sluice/util.h"
#include "sluice/vip.h"
#include "vip-int.h"

int vip_ifindex(const char *ifname, int *ifindex_out, char *err, size_t errlen)
{
	unsigned int idx;

	if (ifname == NULL || ifname[0] == '\0' || strlen(ifname) >= IF_NAMESIZE) {
		snprintf(err, errlen, "interface '%s': invalid name", ifname ? ifname : "");
		return -1;
	}
	idx = if_nametoindex(ifname);
	if (idx == 0) {
		snprintf(err, errlen, "interface %s: %s", ifname, strerror(errno));
		return -1;
	}
	*ifindex_out = (int)idx;
	return 0;
}

const char *vip_ifname_fmt(int ifindex, char *buf, size_t len)
{
	char name[IF_NAMESIZE];

	if (ifindex > 0 && if_indextoname((unsigned int)ifindex, name) != NULL)
		util_strlcpy(buf, name, len);
	else
		snprintf(buf, len, "ifindex %d", ifindex);
	return buf;
}

struct nl_sock *vip_nl_route_open(char *err, size_t errlen)
{
	struct nl_sock *sk = nl_socket_alloc();
	int rc;

	if (sk == NULL) {
		snprintf(err, errlen, "netlink: out of memory");
		return NULL;
	}
	rc = nl_connect(sk, NETLINK_ROUTE);
	if (rc < 0) {
		snprintf(err, errlen, "netlink: %s", nl_geterror(rc));
		nl_socket_free(sk);
		return NULL;
	}
	return sk;
}

/* Check family and prefix length; "what" is the operation for messages. */
static int addr_check(int ifindex, const struct util_addr *addr, unsigned int prefixlen,
		      const char *what, char *err, size_t errlen)
{
	int family = addr->len ? addr->u.sa.sa_family : AF_UNSPEC;

	if (family != AF_INET && family != AF_INET6) {
		snprintf(err, errlen, "%s: not an IPv4 or IPv6 address", what);
		return -1;
	}
	if (prefixlen > (family == AF_INET ? 32u : 128u)) {
		snprintf(err, errlen, "%s: prefix length %u out of range", what, prefixlen);
		return -1;
	}
	if (ifindex <= 0) {
		snprintf(err, errlen, "%s: invalid interface index %d", what, ifindex);
		return -1;
	}
	return 0;
}

/* The raw address bytes of addr and their length (4 or 16). */
static const void *addr_bytes(const struct util_addr *addr, size_t *len)
{
	if (addr->u.sa.sa_family == AF_INET) {
		*len = sizeof(addr->u.in4.sin_addr);
		return &addr->u.in4.sin_addr;
	}
	*len = sizeof(addr->u.in6.sin6_addr);
	return &addr->u.in6.sin6_addr;
}

/* True when nla holds the same family and bytes as addr. */
static bool addr_same(struct nl_addr *nla, const struct util_addr *addr)
{
	size_t len;
	const void *bytes = addr_bytes(addr, &len);

	return nla != NULL && nl_addr_get_family(nla) == addr->u.sa.sa_family &&
	       nl_addr_get_len(nla) == len && memcmp(nl_addr_get_binary_addr(nla), bytes, len) == 0;
}

/* Build a libnl template for addr/prefixlen on ifindex. NULL when out of
 * memory. The caller owns the result (rtnl_addr_put). */
static struct rtnl_addr *addr_template(int ifindex, const struct util_addr *addr,
				       unsigned int prefixlen)
{
	struct rtnl_addr *ra = rtnl_addr_alloc();
	size_t len;
	const void *bytes = addr_bytes(addr, &len);
	struct nl_addr *local = nl_addr_build(addr->u.sa.sa_family, bytes, len);
	int rc = -1;

	if (ra == NULL || local == NULL)
		goto out;
	nl_addr_set_prefixlen(local, (int)prefixlen);
	rtnl_addr_set_ifindex(ra, ifindex);
	rtnl_addr_set_family(ra, addr->u.sa.sa_family);
	if (rtnl_addr_set_local(ra, local) < 0)
		goto out;
	rtnl_addr_set_prefixlen(ra, (int)prefixlen);
	rc = 0;
out:
	if (local != NULL)
		nl_addr_put(local);
	if (rc < 0 && ra != NULL) {
		rtnl_addr_put(ra);
		ra = NULL;
	}
	return ra;
}

int vip_addr_add(int ifindex, const struct util_addr *addr, unsigned int prefixlen, char *err,
		 size_t errlen)
{
	char host[UTIL_ADDR_STRLEN], ifn[IF_NAMESIZE + 16], what[160];
	struct nl_sock *sk;
	struct rtnl_addr *ra;
	int rc;

	util_addr_fmt_host(addr, host, sizeof(host));
	snprintf(what, sizeof(what), "add %s/%u on %s", host, prefixlen,
		 vip_ifname_fmt(ifindex, ifn, sizeof(ifn)));
	if (addr_check(ifindex, addr, prefixlen, what, err, errlen) < 0)
		return -1;
	ra = addr_template(ifindex, addr, prefixlen);
	if (ra == NULL) {
		snprintf(err, errlen, "%s: out of memory", what);
		return -1;
	}
	/* NODAD: a VIP must answer at once; the peer that had it is gone and
	 * DAD would only delay the takeover by a second or more. */
	if (addr->u.sa.sa_family == AF_INET6)
		rtnl_addr_set_flags(ra, IFA_F_NODAD);
	sk = vip_nl_route_open(err, errlen);
	if (sk == NULL) {
		rtnl_addr_put(ra);
		return -1;
	}
	rc = rtnl_addr_add(sk, ra, 0);
	rtnl_addr_put(ra);
	nl_socket_free(sk);
	if (rc < 0 && rc != -NLE_EXIST) {
		snprintf(err, errlen, "%s: %s", what, nl_geterror(rc));
		return -1;
	}
	return 0;
}

/* Dump every address of the system into *cache (caller frees with
 * nl_cache_free). Returns 0 or -1 with err set, prefixed by what. */
static int addr_dump(struct nl_sock *sk, struct nl_cache **cache, const char *what, char *err,
		     size_t errlen)
{
	int rc = rtnl_addr_alloc_cache(sk, cache);

	if (rc < 0) {
		snprintf(err, errlen, "%s: dump addresses: %s", what, nl_geterror(rc));
		*cache = NULL;
		return -1;
	}
	return 0;
}

/* The next cached address after prev (or the first when prev is NULL)
 * that is on ifindex with the given family. NULL at the end. */
static struct rtnl_addr *addr_next(struct nl_cache *cache, struct rtnl_addr *prev, int ifindex,
				   int family)
{
	struct nl_object *obj =
	    prev ? nl_cache_get_next((struct nl_object *)prev) : nl_cache_get_first(cache);

	for (; obj != NULL; obj = nl_cache_get_next(obj)) {
		struct rtnl_addr *ra = (struct rtnl_addr *)obj;

		if (rtnl_addr_get_ifindex(ra) == ifindex && rtnl_addr_get_family(ra) == family)
			return ra;
	}
	return NULL;
}

int vip_addr_del(int ifindex, const struct util_addr *addr, char *err, size_t errlen)
{
	char host[UTIL_ADDR_STRLEN], ifn[IF_NAMESIZE + 16], what[160];
	struct nl_sock *sk;
	struct nl_cache *cache;
	struct rtnl_addr *ra = NULL;
	int ret = 0;

	util_addr_fmt_host(addr, host, sizeof(host));
	snprintf(what, sizeof(what), "delete %s on %s", host,
		 vip_ifname_fmt(ifindex, ifn, sizeof(ifn)));
	if (addr_check(ifindex, addr, 0, what, err, errlen) < 0)
		return -1;
	sk = vip_nl_route_open(err, errlen);
	if (sk == NULL)
		return -1;
	if (addr_dump(sk, &cache, what, err, errlen) < 0) {
		nl_socket_free(sk);
		return -1;
	}
	/* Delete by the kernel's own prefix length: IPv6 (and IPv4 with
	 * IFA_ADDRESS) only match an exact prefix, and the caller may not
	 * know the one a previous run or an operator used. */
	while ((ra = addr_next(cache, ra, ifindex, addr->u.sa.sa_family)) != NULL) {
		struct rtnl_addr *tmpl;
		int rc;

		if (!addr_same(rtnl_addr_get_local(ra), addr))
			continue;
		tmpl = addr_template(ifindex, addr, (unsigned int)rtnl_addr_get_prefixlen(ra));
		if (tmpl == NULL) {
			snprintf(err, errlen, "%s: out of memory", what);
			ret = -1;
			break;
		}
		rc = rtnl_addr_delete(sk, tmpl, 0);
		rtnl_addr_put(tmpl);
		/* Gone in between: that is what we wanted. */
		if (rc < 0 && rc != -NLE_NOADDR && rc != -NLE_OBJ_NOTFOUND) {
			snprintf(err, errlen, "%s: %s", what, nl_geterror(rc));
			ret = -1;
			break;
		}
	}
	nl_cache_free(cache);
	nl_socket_free(sk);
	return ret;
}

int vip_addr_present(int ifindex, const struct util_addr *addr, bool *present_out, char *err,
		     size_t errlen)
{
	char host[UTIL_ADDR_STRLEN], ifn[IF_NAMESIZE + 16], what[160];
	struct nl_sock *sk;
	struct nl_cache *cache;
	struct rtnl_addr *ra = NULL;

	util_addr_fmt_host(addr, host, sizeof(host));
	snprintf(what, sizeof(what), "look up %s on %s", host,
		 vip_ifname_fmt(ifindex, ifn, sizeof(ifn)));
	if (addr_check(ifindex, addr, 0, what, err, errlen) < 0)
		return -1;
	sk = vip_nl_route_open(err, errlen);
	if (sk == NULL)
		return -1;
	if (addr_dump(sk, &cache, what, err, errlen) < 0) {
		nl_socket_free(sk);
		return -1;
	}
	*present_out = false;
	while ((ra = addr_next(cache, ra, ifindex, addr->u.sa.sa_family)) != NULL) {
		if (addr_same(rtnl_addr_get_local(ra), addr)) {
			*present_out = true;
			break;
		}
	}
	nl_cache_free(cache);
	nl_socket_free(sk);
	return 0;
}

/* Copy a libnl address into out (port 0; IPv6 scope id = ifindex for
 * link-local). Returns 0, or -1 when it is not a plain IPv4/IPv6 address. */
static int addr_from_nl(struct nl_addr *nla, int ifindex, struct util_addr *out)
{
	memset(out, 0, sizeof(*out));
	if (nla == NULL)
		return -1;
	if (nl_addr_get_family(nla) == AF_INET && nl_addr_get_len(nla) == 4) {
		out->u.in4.sin_family = AF_INET;
		memcpy(&out->u.in4.sin_addr, nl_addr_get_binary_addr(nla), 4);
		out->len = sizeof(out->u.in4);
		return 0;
	}
	if (nl_addr_get_family(nla) == AF_INET6 && nl_addr_get_len(nla) == 16) {
		out->u.in6.sin6_family = AF_INET6;
		memcpy(&out->u.in6.sin6_addr, nl_addr_get_binary_addr(nla), 16);
		if (IN6_IS_ADDR_LINKLOCAL(&out->u.in6.sin6_addr))
			out->u.in6.sin6_scope_id = (uint32_t)ifindex;
		out->len = sizeof(out->u.in6);
		return 0;
	}
	return -1;
}

/* Address picker for addr_find(): true to take ra. Sets *why to explain
 * a near miss (e.g. tentative) for the error message. */
typedef bool addr_pick_fn(struct rtnl_addr *ra, const char **why);

/* Find the first address of family on ifindex accepted by pick. */
static int addr_find(int ifindex, int family, addr_pick_fn *pick, const char *what,
		     struct util_addr *out, char *err, size_t errlen)
{
	char ifn[IF_NAMESIZE + 16], ctx[160];
	const char *why = "none configured";
	struct nl_sock *sk;
	struct nl_cache *cache;
	struct rtnl_addr *ra = NULL;
	int ret = -1;

	snprintf(ctx, sizeof(ctx), "%s on %s", what, vip_ifname_fmt(ifindex, ifn, sizeof(ifn)));
	sk = vip_nl_route_open(err, errlen);
	if (sk == NULL)
		return -1;
	if (addr_dump(sk, &cache, ctx, err, errlen) < 0) {
		nl_socket_free(sk);
		return -1;
	}
	while ((ra = addr_next(cache, ra, ifindex, family)) != NULL) {
		if (pick(ra, &why) && addr_from_nl(rtnl_addr_get_local(ra), ifindex, out) == 0) {
			ret = 0;
			break;
		}
	}
	if (ret < 0)
		snprintf(err, errlen, "%s: %s", ctx, why);
	nl_cache_free(cache);
	nl_socket_free(sk);
	return ret;
}

static bool pick_primary4(struct rtnl_addr *ra, const char **why)
{
	(void)why;
	return !(rtnl_addr_get_flags(ra) & IFA_F_SECONDARY);
}

static bool pick_linklocal6(struct rtnl_addr *ra, const char **why)
{
	struct nl_addr *nla = rtnl_addr_get_local(ra);
	struct in6_addr a6;

	if (nla == NULL || nl_addr_get_len(nla) != sizeof(a6))
		return false;
	memcpy(&a6, nl_addr_get_binary_addr(nla), sizeof(a6));
	if (!IN6_IS_ADDR_LINKLOCAL(&a6))
		return false;
	/* A tentative address cannot be used as a source yet. */
	if (rtnl_addr_get_flags(ra) & (IFA_F_TENTATIVE | IFA_F_DADFAILED)) {
		*why = "link-local address still tentative or DAD failed";
		return false;
	}
	return true;
}

int vip_addr_primary4(int ifindex, struct util_addr *out, char *err, size_t errlen)
{
	return addr_find(ifindex, AF_INET, pick_primary4, "primary IPv4 address", out, err, errlen);
}

int vip_addr_linklocal6(int ifindex, struct util_addr *out, char *err, size_t errlen)
{
	return addr_find(ifindex, AF_INET6, pick_linklocal6, "link-local IPv6 address", out, err,
			 errlen);
}

const char *vip_libnl_version(char *buf, size_t len)
{
	snprintf(buf, len, "libnl %d.%d.%d (built with %s)", nl_ver_maj, nl_ver_min, nl_ver_mic,
		 LIBNL_VERSION);
	return buf;
}
