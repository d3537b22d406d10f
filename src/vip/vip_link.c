/* vip link state: one-shot queries and a link monitor fed by rtnetlink
 * RTNLGRP_LINK events (libnl). The monitor remembers the last state it
 * reported per interface so its callback sees edges only; when the kernel
 * drops events (receive buffer overrun) it re-reads every link instead. */
#include <errno.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <linux/rtnetlink.h>
#include <netlink/attr.h>
#include <netlink/errno.h>
#include <netlink/handlers.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/route/link.h>
#include <netlink/route/rtnl.h>
#include <netlink/socket.h>

#include "sluice/log.h"
#include "sluice/util.h"
#include "sluice/vip.h"

/* Receive buffer for the event socket: large enough for a burst of a few
 * thousand link changes (e.g. a host creating containers). */
#define LINKMON_RCVBUF (1 << 20)
/* Errors tolerated in a row within one vip_linkmon_process() call. */
#define LINKMON_MAX_ERRORS 64

/* Last state reported for one interface. */
struct vip_linkmon_entry {
	int ifindex;
	bool up;
	bool seen; /* found in the current resynchronisation dump */
};

/* Owned by the caller of vip_linkmon_open(); owns sk, cb and known[]. */
struct vip_linkmon {
	struct nl_sock *sk;
	struct nl_cb *nlcb;
	vip_link_fn *cb;
	void *arg;
	struct vip_linkmon_entry *known;
	size_t nknown;
	size_t cap;
	uint64_t ignored;
	struct log_ratelimit rl;
};

static bool link_flags_up(unsigned int flags)
{
	/* IFF_RUNNING is set by the kernel for operstate UP or UNKNOWN on a
	 * running device, which covers carrier-less virtual links too. */
	return (flags & IFF_UP) && (flags & IFF_RUNNING);
}

/* Open a connected blocking NETLINK_ROUTE socket; NULL with err set. */
static struct nl_sock *link_nl_open(const char *what, char *err, size_t errlen)
{
	struct nl_sock *sk = nl_socket_alloc();
	int rc;

	if (sk == NULL) {
		snprintf(err, errlen, "%s: out of memory", what);
		return NULL;
	}
	rc = nl_connect(sk, NETLINK_ROUTE);
	if (rc < 0) {
		snprintf(err, errlen, "%s: netlink: %s", what, nl_geterror(rc));
		nl_socket_free(sk);
		return NULL;
	}
	return sk;
}

int vip_link_is_up(int ifindex, bool *up_out, char *err, size_t errlen)
{
	char ifn[IF_NAMESIZE + 16], what[64];
	struct rtnl_link *link = NULL;
	struct nl_sock *sk;
	int rc;

	snprintf(what, sizeof(what), "query link %s", vip_ifname_fmt(ifindex, ifn, sizeof(ifn)));
	if (ifindex <= 0) {
		snprintf(err, errlen, "%s: invalid interface index", what);
		return -1;
	}
	sk = link_nl_open(what, err, errlen);
	if (sk == NULL)
		return -1;
	rc = rtnl_link_get_kernel(sk, ifindex, NULL, &link);
	nl_socket_free(sk);
	if (rc < 0) {
		snprintf(err, errlen, "%s: %s", what, nl_geterror(rc));
		return -1;
	}
	*up_out = link_flags_up(rtnl_link_get_flags(link));
	rtnl_link_put(link);
	return 0;
}

static struct vip_linkmon_entry *linkmon_find(struct vip_linkmon *mon, int ifindex)
{
	for (size_t i = 0; i < mon->nknown; i++)
		if (mon->known[i].ifindex == ifindex)
			return &mon->known[i];
	return NULL;
}

/* Find or create the entry for ifindex; NULL when out of memory. *created
 * tells whether it is new (its up field is then meaningless). */
static struct vip_linkmon_entry *linkmon_entry(struct vip_linkmon *mon, int ifindex, bool *created)
{
	struct vip_linkmon_entry *e = linkmon_find(mon, ifindex);

	*created = false;
	if (e != NULL)
		return e;
	if (mon->nknown == mon->cap) {
		size_t ncap = mon->cap ? mon->cap * 2 : 16;
		struct vip_linkmon_entry *n = realloc(mon->known, ncap * sizeof(*n));

		if (n == NULL)
			return NULL;
		mon->known = n;
		mon->cap = ncap;
	}
	e = &mon->known[mon->nknown++];
	memset(e, 0, sizeof(*e));
	e->ifindex = ifindex;
	*created = true;
	return e;
}

static void linkmon_forget(struct vip_linkmon *mon, struct vip_linkmon_entry *e)
{
	*e = mon->known[--mon->nknown];
}

/* Apply one observed state; call the callback when it is a change. */
static void linkmon_apply(struct vip_linkmon *mon, int ifindex, const char *ifname, bool up,
			  bool deleted)
{
	struct vip_linkmon_entry *e;
	bool created;

	e = deleted ? linkmon_find(mon, ifindex) : NULL;
	if (deleted) {
		bool was_down = e != NULL && !e->up;

		if (e != NULL)
			linkmon_forget(mon, e);
		if (!was_down)
			mon->cb(mon->arg, ifindex, ifname, false);
		return;
	}
	e = linkmon_entry(mon, ifindex, &created);
	if (e != NULL) {
		e->seen = true;
		if (!created && e->up == up)
			return;
		e->up = up;
	}
	/* Out of memory: report without deduplication rather than lose it. */
	mon->cb(mon->arg, ifindex, ifname, up);
}

/* libnl NL_CB_VALID handler for link messages, events and dump replies
 * alike. Anything unexpected is counted and skipped, never trusted. */
static int linkmon_msg_cb(struct nl_msg *msg, void *arg)
{
	static const struct nla_policy policy[IFLA_MAX + 1] = {
	    [IFLA_IFNAME] = {.type = NLA_STRING, .maxlen = IFNAMSIZ},
	};
	struct vip_linkmon *mon = arg;
	struct nlmsghdr *nlh = nlmsg_hdr(msg);
	struct sockaddr_nl *src = nlmsg_get_src(msg);
	struct nlattr *tb[IFLA_MAX + 1];
	struct ifinfomsg *ifi;
	char name[IFNAMSIZ] = "";

	/* Only the kernel (port 0) speaks for link state. */
	if (src == NULL || src->nl_pid != 0 ||
	    (nlh->nlmsg_type != RTM_NEWLINK && nlh->nlmsg_type != RTM_DELLINK) ||
	    !nlmsg_valid_hdr(nlh, sizeof(*ifi)) ||
	    nlmsg_parse(nlh, sizeof(*ifi), tb, IFLA_MAX, policy) < 0) {
		mon->ignored++;
		return NL_SKIP;
	}
	ifi = nlmsg_data(nlh);
	/* AF_BRIDGE messages describe bridge ports (a DELLINK there is a port
	 * leaving its bridge, not the link going away): not ours. */
	if (ifi->ifi_family != AF_UNSPEC)
		return NL_SKIP;
	if (ifi->ifi_index <= 0) {
		mon->ignored++;
		return NL_SKIP;
	}
	if (tb[IFLA_IFNAME] != NULL)
		nla_strlcpy(name, tb[IFLA_IFNAME], sizeof(name));
	linkmon_apply(mon, ifi->ifi_index, name, link_flags_up(ifi->ifi_flags),
		      nlh->nlmsg_type == RTM_DELLINK);
	return NL_OK;
}

/* Discard every queued event: they are older than the dump that follows
 * and would otherwise roll the state back after it. */
static void linkmon_drain(struct vip_linkmon *mon)
{
	int fd = nl_socket_get_fd(mon->sk);
	char sink[64];

	for (int i = 0; i < 100000; i++) {
		ssize_t n = recv(fd, sink, sizeof(sink), MSG_DONTWAIT | MSG_TRUNC);

		if (n < 0 && errno != ENOBUFS && errno != EINTR)
			break;
	}
}

/* Re-read every link after lost events: report what changed, and report
 * links that disappeared as down. Returns 0 or -1 with err set. */
static int linkmon_resync(struct vip_linkmon *mon, char *err, size_t errlen)
{
	struct nl_sock *sk = link_nl_open("link monitor resync", err, errlen);
	int rc;

	if (sk == NULL)
		return -1;
	linkmon_drain(mon);
	for (size_t i = 0; i < mon->nknown; i++)
		mon->known[i].seen = false;
	nl_socket_modify_cb(sk, NL_CB_VALID, NL_CB_CUSTOM, linkmon_msg_cb, mon);
	rc = nl_rtgen_request(sk, RTM_GETLINK, AF_UNSPEC, NLM_F_DUMP);
	if (rc >= 0)
		rc = nl_recvmsgs_default(sk);
	nl_socket_free(sk);
	if (rc < 0) {
		snprintf(err, errlen, "link monitor resync: %s", nl_geterror(rc));
		return -1;
	}
	for (size_t i = 0; i < mon->nknown;) {
		struct vip_linkmon_entry *e = &mon->known[i];

		if (e->seen) {
			i++;
			continue;
		}
		struct vip_linkmon_entry gone = *e;

		linkmon_forget(mon, e);
		if (gone.up)
			mon->cb(mon->arg, gone.ifindex, "", false);
	}
	return 0;
}

static int linkmon_seq_ok(struct nl_msg *msg, void *arg)
{
	(void)msg;
	(void)arg;
	return NL_OK;
}

struct vip_linkmon *vip_linkmon_open(vip_link_fn *cb, void *arg, char *err, size_t errlen)
{
	struct vip_linkmon *mon = calloc(1, sizeof(*mon));
	int rc;

	if (mon == NULL || cb == NULL) {
		snprintf(err, errlen, "link monitor: %s", mon ? "no callback" : "out of memory");
		free(mon);
		return NULL;
	}
	mon->cb = cb;
	mon->arg = arg;
	mon->nlcb = nl_cb_alloc(NL_CB_DEFAULT);
	mon->sk = link_nl_open("link monitor", err, errlen);
	if (mon->nlcb == NULL || mon->sk == NULL) {
		if (mon->sk != NULL)
			snprintf(err, errlen, "link monitor: out of memory");
		vip_linkmon_close(mon);
		return NULL;
	}
	nl_cb_set(mon->nlcb, NL_CB_VALID, NL_CB_CUSTOM, linkmon_msg_cb, mon);
	/* Events carry sequence number 0: nothing to check them against. */
	nl_cb_set(mon->nlcb, NL_CB_SEQ_CHECK, NL_CB_CUSTOM, linkmon_seq_ok, NULL);
	rc = nl_socket_add_membership(mon->sk, RTNLGRP_LINK);
	if (rc >= 0)
		rc = nl_socket_set_nonblocking(mon->sk);
	if (rc >= 0)
		rc = nl_socket_set_buffer_size(mon->sk, LINKMON_RCVBUF, 0);
	if (rc < 0) {
		snprintf(err, errlen, "link monitor: %s", nl_geterror(rc));
		vip_linkmon_close(mon);
		return NULL;
	}
	return mon;
}

int vip_linkmon_fd(const struct vip_linkmon *mon)
{
	return nl_socket_get_fd(mon->sk);
}

static void linkmon_log_overrun(struct vip_linkmon *mon)
{
	log_ratelimited(&mon->rl, util_now_ms(), 1, LOGL_WARNING,
			"link monitor: netlink overrun, re-reading all links");
}

int vip_linkmon_process(struct vip_linkmon *mon, char *err, size_t errlen)
{
	int errors = 0;

	for (;;) {
		int rc = nl_recvmsgs_report(mon->sk, mon->nlcb);

		if (rc > 0)
			continue;
		if (rc == 0 || rc == -NLE_AGAIN)
			return 0;
		if (rc == -NLE_NOMEM || rc == -NLE_MSG_OVERFLOW) {
			/* ENOBUFS: the kernel dropped events for us. */
			linkmon_log_overrun(mon);
			if (linkmon_resync(mon, err, errlen) < 0)
				return -1;
		} else {
			mon->ignored++;
		}
		if (++errors >= LINKMON_MAX_ERRORS) {
			snprintf(err, errlen, "link monitor: %s", nl_geterror(rc));
			return -1;
		}
	}
}

int vip_linkmon_query(struct vip_linkmon *mon, int ifindex, bool *up_out, char *err, size_t errlen)
{
	struct vip_linkmon_entry *e;
	bool created;

	if (vip_link_is_up(ifindex, up_out, err, errlen) < 0)
		return -1;
	e = linkmon_entry(mon, ifindex, &created);
	if (e != NULL)
		e->up = *up_out;
	return 0;
}

uint64_t vip_linkmon_ignored(const struct vip_linkmon *mon)
{
	return mon->ignored;
}

void vip_linkmon_close(struct vip_linkmon *mon)
{
	if (mon == NULL)
		return;
	if (mon->sk != NULL)
		nl_socket_free(mon->sk);
	if (mon->nlcb != NULL)
		nl_cb_put(mon->nlcb);
	free(mon->known);
	free(mon);
}
