/* vrrp_io: one running virtual router in the control thread's libev loop.
 * Owns a raw IP protocol 112 socket (multicast group joined on the
 * interface, or unicast peers), a link monitor and one timer driven by
 * vrrp_fsm_next_deadline(); feeds the pure codec and state machine and
 * performs their actions (adverts, VIPs and announcements through vip,
 * notify script). Invariant: receiving never moves the advert timer. */
#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ev.h>

#include "sluice/log.h"
#include "sluice/util.h"
#include "sluice/vip.h"
#include "sluice/vrrp.h"

#define VRRP_RX_BUDGET 256 /* packets read per readiness event */
#define VRRP_RX_BUF 2048
#define VRRP_IP_TOS 0xc0 /* network control, as keepalived */
#define VRRP_MAX_CHILDREN 16

extern char **environ;

/* A notify script that has not exited yet. */
struct vrrp_child {
	ev_child w;
	struct vrrp_instance *vi; /* NULL once the instance is gone */
	bool used;
};

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
};

static const char *const io_drop_names[VRRP_IODROP_NR] = {
	[VRRP_IODROP_DEST] = "destination",
	[VRRP_IODROP_PEER] = "unknown-peer",
	[VRRP_IODROP_OWNER] = "owner-priority",
	[VRRP_IODROP_SHORT] = "ip-header",
};

const char *vrrp_io_drop_name(enum vrrp_io_drop reason)
{
	if ((unsigned)reason >= VRRP_IODROP_NR)
		return "?";
	return io_drop_names[reason];
}

static void rearm(struct vrrp_instance *vi);
static void wait_try(struct vrrp_instance *vi);

/* ---- logging ------------------------------------------------------------- */

static void log_limited(struct vrrp_instance *vi, struct log_ratelimit *rl, enum log_level lvl,
			const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void log_limited(struct vrrp_instance *vi, struct log_ratelimit *rl, enum log_level lvl,
			const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	if (!log_enabled(lvl))
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_ratelimited(rl, util_now_ms(), 5, lvl, "vrrp %s: %s", vi->cfg.name, msg);
}

/* ---- sending ------------------------------------------------------------- */

/* Send one encoded advert to dst. Returns 0 or -1 (errno). */
static int send_to(struct vrrp_instance *vi, const uint8_t *buf, size_t len,
		   const struct vrrp_addr *dst)
{
	union {
		char b[CMSG_SPACE(sizeof(struct in6_pktinfo))];
		struct cmsghdr align;
	} ctl;
	struct util_addr to;
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.b };
	struct cmsghdr *cm;

	memset(&ctl, 0, sizeof(ctl));
	vrrp_addr_to_util(dst, &to);
	mh.msg_name = &to.u.sa;
	mh.msg_namelen = to.len;
	cm = (struct cmsghdr *)ctl.b;
	if (dst->family == AF_INET) {
		struct in_pktinfo pi = { .ipi_ifindex = vi->ifindex, .ipi_spec_dst = vi->primary.u.in4 };

		cm->cmsg_level = IPPROTO_IP;
		cm->cmsg_type = IP_PKTINFO;
		cm->cmsg_len = CMSG_LEN(sizeof(pi));
		memcpy(CMSG_DATA(cm), &pi, sizeof(pi));
		mh.msg_controllen = CMSG_SPACE(sizeof(pi));
	} else {
		struct in6_pktinfo pi = { .ipi6_addr = vi->primary.u.in6,
					  .ipi6_ifindex = (unsigned)vi->ifindex };

		to.u.in6.sin6_scope_id = (uint32_t)vi->ifindex;
		cm->cmsg_level = IPPROTO_IPV6;
		cm->cmsg_type = IPV6_PKTINFO;
		cm->cmsg_len = CMSG_LEN(sizeof(pi));
		memcpy(CMSG_DATA(cm), &pi, sizeof(pi));
		mh.msg_controllen = CMSG_SPACE(sizeof(pi));
	}
	return sendmsg(vi->fd, &mh, MSG_DONTWAIT) == (ssize_t)len ? 0 : -1;
}

static void send_advert(struct vrrp_instance *vi, uint8_t priority)
{
	struct vrrp_advert adv;
	uint8_t buf[VRRP_PKT_MAX_LEN + VRRP_V2_AUTH_LEN];
	size_t ndst = vi->cfg.npeers ? vi->cfg.npeers : 1;
	bool ok = false;

	memset(&adv, 0, sizeof(adv));
	adv.version = vi->cfg.version;
	adv.vrid = vi->cfg.vrid;
	adv.priority = priority;
	adv.interval_cs = vi->cfg.adver_int_cs;
	adv.naddr = (uint8_t)vi->cfg.nvips;
	memcpy(adv.addrs, vi->vips, vi->cfg.nvips * sizeof(vi->vips[0]));
	for (size_t i = 0; i < ndst; i++) {
		const struct vrrp_addr *dst = vi->cfg.npeers ? &vi->cfg.peers[i] : &vi->group;
		int n = vrrp_pkt_encode(buf, sizeof(buf), &adv, vi->cfg.csum_form, &vi->primary, dst);
		char host[INET6_ADDRSTRLEN];

		if (n < 0 || send_to(vi, buf, (size_t)n, dst) < 0) {
			vi->send_errors++;
			log_limited(vi, &vi->rl_err, LOGL_WARNING, "cannot send advert to %s: %s",
				    vrrp_addr_fmt(dst, host, sizeof(host)),
				    n < 0 ? "encoding failed" : strerror(errno));
			continue;
		}
		ok = true;
	}
	if (ok)
		vi->adverts_sent++;
}

/* ---- VIPs and announcements ---------------------------------------------- */

static void vips_change(struct vrrp_instance *vi, bool add)
{
	char err[VIP_ERRLEN];

	for (size_t i = 0; i < vi->cfg.nvips; i++) {
		struct util_addr a;
		int rc;

		vrrp_addr_to_util(&vi->vips[i], &a);
		rc = add ? vip_addr_add(vi->vip_ifindex[i], &a, vi->cfg.vips[i].prefixlen, err,
					sizeof(err))
			 : vip_addr_del(vi->vip_ifindex[i], &a, err, sizeof(err));
		if (rc < 0)
			log_limited(vi, &vi->rl_err, LOGL_ERR, "%s", err);
	}
}

static void garp_burst(struct vrrp_instance *vi)
{
	char err[VIP_ERRLEN];

	for (uint32_t r = 0; r < vi->cfg.garp_repeat; r++) {
		for (size_t i = 0; i < vi->cfg.nvips; i++) {
			struct util_addr a;

			vrrp_addr_to_util(&vi->vips[i], &a);
			if (vip_garp_send(vi->vip_ifindex[i], &a, err, sizeof(err)) < 0)
				log_limited(vi, &vi->rl_err, LOGL_WARNING, "%s", err);
			else
				vi->garps_sent++;
		}
	}
}

/* ---- notify script -------------------------------------------------------- */

static void on_child(struct ev_loop *loop, ev_child *w, int revents)
{
	struct vrrp_child *ch = (struct vrrp_child *)w;

	(void)revents;
	ev_child_stop(loop, w);
	ch->used = false;
	if (ch->vi != NULL && !(WIFEXITED(w->rstatus) && WEXITSTATUS(w->rstatus) == 0))
		log_warn("vrrp %s: notify %s exited with status %d", ch->vi->cfg.name,
			 ch->vi->cfg.notify,
			 WIFEXITED(w->rstatus) ? WEXITSTATUS(w->rstatus) : 128 + WTERMSIG(w->rstatus));
}

/* Run "notify NAME STATE" without waiting; the loop reaps it. */
static void run_notify(struct vrrp_instance *vi, enum vrrp_state state)
{
	char *argv[4];
	posix_spawnattr_t attr;
	sigset_t none, dfl;
	struct vrrp_child *ch = NULL;
	pid_t pid;
	int rc;

	if (vi->cfg.notify[0] == '\0')
		return;
	for (size_t i = 0; i < VRRP_MAX_CHILDREN && ch == NULL; i++)
		if (!vi->children[i].used)
			ch = &vi->children[i];
	if (ch == NULL) {
		log_limited(vi, &vi->rl_err, LOGL_WARNING,
			    "notify %s: %d scripts still running, not starting another",
			    vi->cfg.notify, VRRP_MAX_CHILDREN);
		return;
	}
	argv[0] = vi->cfg.notify;
	argv[1] = vi->cfg.name;
	argv[2] = (char *)vrrp_state_name(state);
	argv[3] = NULL;
	sigemptyset(&none);
	sigemptyset(&dfl);
	sigaddset(&dfl, SIGPIPE);
	sigaddset(&dfl, SIGCHLD);
	posix_spawnattr_init(&attr);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setsigdefault(&attr, &dfl);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
	rc = posix_spawn(&pid, vi->cfg.notify, NULL, &attr, argv, environ);
	posix_spawnattr_destroy(&attr);
	if (rc != 0) {
		log_limited(vi, &vi->rl_err, LOGL_WARNING, "notify %s: %s", vi->cfg.notify,
			    strerror(rc));
		return;
	}
	ch->used = true;
	ch->vi = vi;
	ev_child_init(&ch->w, on_child, pid, 0);
	ev_child_start(vi->loop, &ch->w);
}

/* ---- actions --------------------------------------------------------------- */

static void on_state(struct vrrp_instance *vi, const struct vrrp_action *a)
{
	vi->transitions++;
	vi->last_transition_wall_ms = util_wall_ms();
	util_strlcpy(vi->last_reason, a->text, sizeof(vi->last_reason));
	log_notice("vrrp %s: %s -> %s (%s)", vi->cfg.name, vrrp_state_name(a->old_state),
		   vrrp_state_name(a->new_state), a->text);
	if (a->new_state == VRRP_STATE_MASTER && vi->cfg.garp_refresh_ms != 0)
		vi->refresh_at_ms = util_now_ms() + vi->cfg.garp_refresh_ms;
	run_notify(vi, a->new_state);
}

static void perform(struct vrrp_instance *vi, const struct vrrp_actions *acts)
{
	for (unsigned i = 0; i < acts->n; i++) {
		const struct vrrp_action *a = &acts->a[i];

		switch (a->type) {
		case VRRP_ACT_SEND_ADVERT:
			send_advert(vi, a->priority);
			break;
		case VRRP_ACT_ADD_VIPS:
			vips_change(vi, true);
			break;
		case VRRP_ACT_DEL_VIPS:
			vips_change(vi, false);
			break;
		case VRRP_ACT_SEND_GARP:
			garp_burst(vi);
			break;
		case VRRP_ACT_STATE:
			on_state(vi, a);
			break;
		}
	}
}

/* ---- priority tracking ------------------------------------------------------ */

static void update_priority(struct vrrp_instance *vi)
{
	int prio = vi->cfg.priority;
	struct vrrp_actions acts;

	for (size_t i = 0; i < vi->cfg.ntracks; i++)
		if (!vi->track_up[i])
			prio -= vi->cfg.tracks[i].weight;
	if (prio < 1)
		prio = 1;
	if (vi->cfg.priority == VRRP_PRIO_OWNER && prio == VRRP_PRIO_OWNER)
		prio = VRRP_PRIO_OWNER;
	if ((uint8_t)prio == vi->fsm.priority)
		return;
	log_notice("vrrp %s: priority %u -> %d", vi->cfg.name, vi->fsm.priority, prio);
	vrrp_fsm_set_priority(&vi->fsm, util_now_ms(), (uint8_t)prio, &acts);
	perform(vi, &acts);
	rearm(vi);
}

/* ---- receiving -------------------------------------------------------------- */

static void count_drop(struct vrrp_instance *vi, const struct vrrp_addr *src, const char *why)
{
	char host[INET6_ADDRSTRLEN];

	log_limited(vi, &vi->rl_drop, LOGL_INFO, "dropped advert from %s: %s",
		    vrrp_addr_fmt(src, host, sizeof(host)), why);
}

static void note_peer(struct vrrp_instance *vi, const struct vrrp_addr *src,
		      const struct vrrp_advert *adv)
{
	struct vrrp_peer_seen *p = NULL;

	for (size_t i = 0; i < vi->npeers_seen && p == NULL; i++)
		if (vrrp_addr_equal(&vi->peers_seen[i].addr, src))
			p = &vi->peers_seen[i];
	if (p == NULL) {
		size_t slot = vi->npeers_seen;

		if (slot == VRRP_MAX_PEERS) { /* forget the one heard least recently */
			slot = 0;
			for (size_t i = 1; i < VRRP_MAX_PEERS; i++)
				if (vi->peers_seen[i].last_ms < vi->peers_seen[slot].last_ms)
					slot = i;
		} else {
			vi->npeers_seen++;
		}
		p = &vi->peers_seen[slot];
		memset(p, 0, sizeof(*p));
		p->addr = *src;
	}
	p->form = adv->csum_form;
	p->version = adv->version;
	p->priority = adv->priority;
	p->adverts++;
	p->last_ms = util_now_ms();
}

static bool is_vip(const struct vrrp_instance *vi, const struct vrrp_addr *a)
{
	for (size_t i = 0; i < vi->cfg.nvips; i++)
		if (vrrp_addr_equal(&vi->vips[i], a))
			return true;
	return false;
}

/* I/O-level checks; VRRP_IODROP_NR when the packet may go on. */
static enum vrrp_io_drop io_check(const struct vrrp_instance *vi, const struct vrrp_rx_info *rx)
{
	if (vi->cfg.npeers == 0) {
		if (!vrrp_addr_equal(&rx->dst, &vi->group))
			return VRRP_IODROP_DEST;
		return VRRP_IODROP_NR;
	}
	if (vrrp_addr_equal(&rx->dst, &vi->group))
		return VRRP_IODROP_DEST;
	for (size_t i = 0; i < vi->cfg.npeers; i++)
		if (vrrp_addr_equal(&vi->cfg.peers[i], &rx->src))
			return VRRP_IODROP_NR;
	return VRRP_IODROP_PEER;
}

static void handle_packet(struct vrrp_instance *vi, const uint8_t *msg, size_t len,
			  const struct vrrp_rx_info *rx)
{
	struct vrrp_pkt_expect exp = {
		.version = vi->cfg.version,
		.vrid = vi->cfg.vrid,
		.v2_interval_cs = vi->cfg.version == 2 ? vi->cfg.adver_int_cs : 0,
		.vips = vi->vips,
		.nvips = vi->cfg.nvips,
	};
	struct vrrp_advert adv;
	struct vrrp_actions acts;
	enum vrrp_io_drop iod = io_check(vi, rx);
	enum vrrp_drop why;

	if (iod != VRRP_IODROP_NR) {
		vi->io_drops[iod]++;
		count_drop(vi, &rx->src, vrrp_io_drop_name(iod));
		return;
	}
	why = vrrp_pkt_decode(msg, len, rx, &exp, &adv);
	if (why != VRRP_DROP_NONE) {
		vi->drops[why]++;
		count_drop(vi, &rx->src, vrrp_drop_reason_name(why));
		return;
	}
	/* RFC 9568 5.2.4: 255 is the address owner's, and the owner's own
	 * address is a VIP; anyone else claiming it is lying. */
	if (adv.priority == VRRP_PRIO_OWNER && !is_vip(vi, &rx->src)) {
		vi->io_drops[VRRP_IODROP_OWNER]++;
		count_drop(vi, &rx->src, vrrp_io_drop_name(VRRP_IODROP_OWNER));
		return;
	}
	vi->adverts_rcvd++;
	note_peer(vi, &rx->src, &adv);
	vrrp_fsm_rx_advert(&vi->fsm, util_now_ms(), &rx->src, adv.priority, adv.interval_cs,
			   &acts);
	perform(vi, &acts);
}

/* IPv4 raw sockets deliver the IP header: read TTL, addresses, length.
 * Returns the offset of the payload and sets *plen, or -1. */
static int parse_ip4(const uint8_t *buf, size_t n, struct vrrp_rx_info *rx, size_t *plen)
{
	size_t ihl, tot;

	if (n < 20 || (buf[0] >> 4) != 4)
		return -1;
	ihl = (size_t)(buf[0] & 0x0f) * 4;
	tot = (size_t)buf[2] << 8 | buf[3];
	if (ihl < 20 || ihl > n || tot < ihl)
		return -1;
	if (tot > n)
		tot = n; /* the codec reports the truncation */
	memset(rx, 0, sizeof(*rx));
	rx->family = AF_INET;
	rx->ttl = buf[8];
	rx->src.family = rx->dst.family = AF_INET;
	memcpy(&rx->src.u.in4, buf + 12, 4);
	memcpy(&rx->dst.u.in4, buf + 16, 4);
	*plen = tot - ihl;
	return (int)ihl;
}

static void read_v4(struct vrrp_instance *vi)
{
	uint8_t buf[VRRP_RX_BUF];

	for (int k = 0; k < VRRP_RX_BUDGET; k++) {
		ssize_t n = recv(vi->fd, buf, sizeof(buf), MSG_DONTWAIT);
		struct vrrp_rx_info rx;
		size_t plen;
		int off;

		if (n < 0)
			return;
		off = parse_ip4(buf, (size_t)n, &rx, &plen);
		if (off < 0) {
			vi->io_drops[VRRP_IODROP_SHORT]++;
			continue;
		}
		handle_packet(vi, buf + off, plen, &rx);
	}
}

static void read_v6(struct vrrp_instance *vi)
{
	uint8_t buf[VRRP_RX_BUF];
	union {
		char b[CMSG_SPACE(sizeof(struct in6_pktinfo)) + CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} ctl;

	for (int k = 0; k < VRRP_RX_BUDGET; k++) {
		struct sockaddr_in6 from;
		struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) };
		struct msghdr mh = { .msg_name = &from, .msg_namelen = sizeof(from),
				     .msg_iov = &iov, .msg_iovlen = 1,
				     .msg_control = ctl.b, .msg_controllen = sizeof(ctl.b) };
		struct vrrp_rx_info rx;
		bool have_dst = false, have_hops = false;
		ssize_t n = recvmsg(vi->fd, &mh, MSG_DONTWAIT);

		if (n < 0)
			return;
		memset(&rx, 0, sizeof(rx));
		rx.family = AF_INET6;
		rx.src.family = rx.dst.family = AF_INET6;
		rx.src.u.in6 = from.sin6_addr;
		for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm != NULL; cm = CMSG_NXTHDR(&mh, cm)) {
			if (cm->cmsg_level != IPPROTO_IPV6)
				continue;
			if (cm->cmsg_type == IPV6_PKTINFO &&
			    cm->cmsg_len >= CMSG_LEN(sizeof(struct in6_pktinfo))) {
				struct in6_pktinfo pi;

				memcpy(&pi, CMSG_DATA(cm), sizeof(pi));
				rx.dst.u.in6 = pi.ipi6_addr;
				have_dst = true;
			} else if (cm->cmsg_type == IPV6_HOPLIMIT &&
				   cm->cmsg_len >= CMSG_LEN(sizeof(int))) {
				int hops;

				memcpy(&hops, CMSG_DATA(cm), sizeof(hops));
				rx.ttl = (uint8_t)hops;
				have_hops = true;
			}
		}
		if (!have_dst || !have_hops) {
			vi->io_drops[VRRP_IODROP_SHORT]++;
			continue;
		}
		handle_packet(vi, buf, (size_t)n, &rx);
	}
}

static void on_readable(struct ev_loop *loop, ev_io *w, int revents)
{
	struct vrrp_instance *vi = w->data;

	(void)loop;
	(void)revents;
	if (vi->primary.family == AF_INET)
		read_v4(vi);
	else
		read_v6(vi);
	rearm(vi);
}

/* ---- timer and links ---------------------------------------------------------- */

static void rearm(struct vrrp_instance *vi)
{
	uint64_t at = vrrp_fsm_next_deadline(&vi->fsm), now;

	if (vi->fsm.state == VRRP_STATE_MASTER && vi->cfg.garp_refresh_ms != 0 &&
	    vi->refresh_at_ms < at)
		at = vi->refresh_at_ms;
	ev_timer_stop(vi->loop, &vi->timer);
	if (!vi->running || at == VRRP_NEVER)
		return;
	ev_now_update(vi->loop);
	now = util_now_ms();
	ev_timer_set(&vi->timer, at > now ? (double)(at - now) / 1000.0 : 0.0, 0.0);
	ev_timer_start(vi->loop, &vi->timer);
}

static void on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct vrrp_instance *vi = w->data;
	struct vrrp_actions acts;
	uint64_t now = util_now_ms();

	(void)loop;
	(void)revents;
	vrrp_fsm_timer(&vi->fsm, now, &acts);
	perform(vi, &acts);
	if (vi->fsm.state == VRRP_STATE_MASTER && vi->cfg.garp_refresh_ms != 0 &&
	    now >= vi->refresh_at_ms) {
		garp_burst(vi);
		vi->refresh_at_ms = now + vi->cfg.garp_refresh_ms;
	}
	rearm(vi);
}

static void on_link(void *arg, int ifindex, const char *ifname, bool up)
{
	struct vrrp_instance *vi = arg;
	bool tracked = false;

	for (size_t i = 0; i < vi->cfg.ntracks; i++) {
		const struct vrrp_track *t = &vi->cfg.tracks[i];

		if (t->kind != VRRP_TRACK_INTERFACE)
			continue;
		if (vi->track_ifindex[i] == ifindex ||
		    (ifname[0] != '\0' && strcmp(ifname, t->name) == 0)) {
			vi->track_ifindex[i] = up ? ifindex : vi->track_ifindex[i];
			if (vi->track_up[i] != up)
				log_notice("vrrp %s: tracked interface %s %s", vi->cfg.name, t->name,
					   up ? "up" : "down");
			vi->track_up[i] = up;
			tracked = true;
		}
	}
	if (vi->waiting) {
		/* the interface (or a VIP's) changed: look at once, from the
		 * timer, not from inside the monitor's message processing */
		bool ours = strcmp(ifname, vi->cfg.ifname) == 0;

		for (size_t i = 0; i < vi->cfg.nvips && !ours; i++)
			ours = strcmp(ifname, vi->cfg.vips[i].dev) == 0;
		if (ours && vi->want_start) {
			ev_timer_stop(vi->loop, &vi->wait_timer);
			ev_timer_set(&vi->wait_timer, 0.0, 1.0);
			ev_timer_start(vi->loop, &vi->wait_timer);
		}
		return;
	}
	if (ifindex == vi->ifindex) {
		struct vrrp_actions acts;

		log_notice("vrrp %s: interface %s %s", vi->cfg.name, vi->cfg.ifname,
			   up ? "up" : "down");
		vrrp_fsm_link(&vi->fsm, util_now_ms(), up, &acts);
		perform(vi, &acts);
	}
	if (tracked)
		update_priority(vi);
	rearm(vi);
}

static void on_link_io(struct ev_loop *loop, ev_io *w, int revents)
{
	struct vrrp_instance *vi = w->data;
	char err[VIP_ERRLEN];

	(void)loop;
	(void)revents;
	if (vip_linkmon_process(vi->mon, err, sizeof(err)) < 0)
		log_limited(vi, &vi->rl_err, LOGL_ERR, "%s", err);
}

/* ---- socket setup -------------------------------------------------------------- */

static int sockopt(int fd, int level, int name, int val)
{
	return setsockopt(fd, level, name, &val, sizeof(val));
}

static int open_socket4(struct vrrp_instance *vi, char *err, size_t errlen)
{
	struct ip_mreqn mr;
	int fd = socket(AF_INET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, VRRP_IPPROTO);

	if (fd < 0) {
		snprintf(err, errlen, "raw socket: %s", strerror(errno));
		return -1;
	}
	vi->fd = fd;
	memset(&mr, 0, sizeof(mr));
	mr.imr_multiaddr = vi->group.u.in4;
	mr.imr_ifindex = vi->ifindex;
	if (setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, vi->cfg.ifname, strlen(vi->cfg.ifname)) <
		    0 ||
	    sockopt(fd, IPPROTO_IP, IP_TTL, VRRP_TTL) < 0 ||
	    sockopt(fd, IPPROTO_IP, IP_MULTICAST_TTL, VRRP_TTL) < 0 ||
	    sockopt(fd, IPPROTO_IP, IP_TOS, VRRP_IP_TOS) < 0 ||
	    sockopt(fd, IPPROTO_IP, IP_MULTICAST_LOOP, 0) < 0 ||
	    sockopt(fd, IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_DONT) < 0 ||
	    setsockopt(fd, IPPROTO_IP, IP_MULTICAST_IF, &mr, sizeof(mr)) < 0 ||
	    (vi->cfg.npeers == 0 &&
	     setsockopt(fd, IPPROTO_IP, IP_ADD_MEMBERSHIP, &mr, sizeof(mr)) < 0)) {
		snprintf(err, errlen, "raw socket on %s: %s", vi->cfg.ifname, strerror(errno));
		return -1;
	}
	return 0;
}

static int open_socket6(struct vrrp_instance *vi, char *err, size_t errlen)
{
	struct ipv6_mreq mr;
	int fd = socket(AF_INET6, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, VRRP_IPPROTO);

	if (fd < 0) {
		snprintf(err, errlen, "raw socket: %s", strerror(errno));
		return -1;
	}
	vi->fd = fd;
	memset(&mr, 0, sizeof(mr));
	mr.ipv6mr_multiaddr = vi->group.u.in6;
	mr.ipv6mr_interface = (unsigned)vi->ifindex;
	if (setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, vi->cfg.ifname, strlen(vi->cfg.ifname)) <
		    0 ||
	    sockopt(fd, IPPROTO_IPV6, IPV6_UNICAST_HOPS, VRRP_TTL) < 0 ||
	    sockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_HOPS, VRRP_TTL) < 0 ||
	    sockopt(fd, IPPROTO_IPV6, IPV6_TCLASS, VRRP_IP_TOS) < 0 ||
	    sockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_LOOP, 0) < 0 ||
	    sockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_IF, vi->ifindex) < 0 ||
	    sockopt(fd, IPPROTO_IPV6, IPV6_RECVHOPLIMIT, 1) < 0 ||
	    sockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, 1) < 0 ||
	    (vi->cfg.npeers == 0 &&
	     setsockopt(fd, IPPROTO_IPV6, IPV6_ADD_MEMBERSHIP, &mr, sizeof(mr)) < 0)) {
		snprintf(err, errlen, "raw socket on %s: %s", vi->cfg.ifname, strerror(errno));
		return -1;
	}
	return 0;
}

/* ---- lifecycle ------------------------------------------------------------------ */

static int resolve(struct vrrp_instance *vi, char *err, size_t errlen)
{
	struct util_addr prim;
	char e[VIP_ERRLEN];
	sa_family_t family = vi->cfg.vips[0].addr.family;

	if (vip_ifindex(vi->cfg.ifname, &vi->ifindex, err, errlen) < 0)
		return -1;
	for (size_t i = 0; i < vi->cfg.nvips; i++) {
		vi->vips[i] = vi->cfg.vips[i].addr;
		vi->vip_ifindex[i] = vi->ifindex;
		if (vi->cfg.vips[i].dev[0] != '\0' &&
		    vip_ifindex(vi->cfg.vips[i].dev, &vi->vip_ifindex[i], err, errlen) < 0)
			return -1;
	}
	if (family == AF_INET) {
		vrrp_addr_set_v4(&vi->group, VRRP_MCAST_V4);
		if (vip_addr_primary4(vi->ifindex, &prim, e, sizeof(e)) < 0) {
			snprintf(err, errlen, "%s", e);
			return -1;
		}
	} else {
		memset(&vi->group, 0, sizeof(vi->group));
		vi->group.family = AF_INET6;
		inet_pton(AF_INET6, "ff02::12", &vi->group.u.in6);
		if (vip_addr_linklocal6(vi->ifindex, &prim, e, sizeof(e)) < 0) {
			snprintf(err, errlen, "%s", e);
			return -1;
		}
	}
	return vrrp_addr_from_util(&prim, &vi->primary);
}

/* Once the interface and its address are known: the state machine and the
 * socket. */
static int finish_init(struct vrrp_instance *vi, char *e, size_t elen)
{
	const struct vrrp_instance_config *cfg = &vi->cfg;
	struct vrrp_fsm_config fc;

	memset(&fc, 0, sizeof(fc));
	fc.version = cfg->version;
	fc.priority = cfg->priority;
	fc.adver_int_cs = cfg->adver_int_cs;
	fc.preempt = cfg->preempt;
	fc.preempt_delay_ms = cfg->preempt_delay_ms;
	fc.primary = vi->primary;
	fc.garp_repeat_ms = cfg->garp_delay_ms != 0 ? cfg->garp_delay_ms : VRRP_NEVER;
	if (vrrp_fsm_init(&vi->fsm, &fc) < 0) {
		snprintf(e, elen, "invalid settings (version, priority or interval)");
		return -1;
	}
	if ((vi->primary.family == AF_INET ? open_socket4(vi, e, elen)
					   : open_socket6(vi, e, elen)) < 0) {
		if (vi->fd >= 0)
			close(vi->fd);
		vi->fd = -1;
		return -1;
	}
	ev_io_init(&vi->io, on_readable, vi->fd, EV_READ);
	vi->io.data = vi;
	return 0;
}

/* Waiting: is the interface there now, with its address? Then take part. */
static void wait_try(struct vrrp_instance *vi)
{
	char e[VIP_ERRLEN];
	char abuf[UTIL_ADDR_STRLEN];

	if (resolve(vi, e, sizeof(e)) < 0) {
		if (strcmp(e, vi->last_reason) != 0) {
			log_notice("vrrp %s: still waiting: %s", vi->cfg.name, e);
			util_strlcpy(vi->last_reason, e, sizeof(vi->last_reason));
		}
		return;
	}
	if (finish_init(vi, e, sizeof(e)) < 0) {
		log_limited(vi, &vi->rl_err, LOGL_ERR, "%s", e);
		return;
	}
	vi->waiting = false;
	ev_timer_stop(vi->loop, &vi->wait_timer);
	log_notice("vrrp %s: %s has address %s: taking part", vi->cfg.name, vi->cfg.ifname,
		   vrrp_addr_fmt(&vi->primary, abuf, sizeof(abuf)));
	if (vi->want_start) {
		ev_io_stop(vi->loop, &vi->link_io);
		vrrp_instance_start(vi);
	}
}

static void on_wait_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	wait_try(w->data);
}

struct vrrp_instance *vrrp_instance_new(struct ev_loop *loop, const struct vrrp_instance_config *cfg,
					char *err, size_t errlen)
{
	struct vrrp_instance *vi = calloc(1, sizeof(*vi));
	char e[VIP_ERRLEN];

	if (vi == NULL) {
		snprintf(err, errlen, "vrrp %s: out of memory", cfg->name);
		return NULL;
	}
	vi->loop = loop;
	vi->cfg = *cfg;
	vi->fd = -1;
	if (cfg->nvips == 0 || cfg->nvips > VRRP_MAX_ADDRS) {
		snprintf(e, sizeof(e), "no addresses");
		goto fail;
	}
	vi->mon = vip_linkmon_open(on_link, vi, e, sizeof(e));
	if (vi->mon == NULL)
		goto fail;
	ev_io_init(&vi->link_io, on_link_io, vip_linkmon_fd(vi->mon), EV_READ);
	vi->link_io.data = vi;
	ev_init(&vi->timer, on_timer);
	vi->timer.data = vi;
	ev_timer_init(&vi->wait_timer, on_wait_timer, 1.0, 1.0);
	vi->wait_timer.data = vi;
	for (size_t i = 0; i < cfg->ntracks; i++)
		vi->track_up[i] = true;
	if (resolve(vi, e, sizeof(e)) < 0) {
		/* keepalived's way: FAULT until the interface and address exist */
		log_warn("vrrp %s: %s: FAULT until it appears", cfg->name, e);
		util_strlcpy(vi->last_reason, e, sizeof(vi->last_reason));
		vi->waiting = true;
		return vi;
	}
	if (finish_init(vi, e, sizeof(e)) < 0)
		goto fail;
	return vi;
fail:
	snprintf(err, errlen, "vrrp %s: %s", cfg->name, e);
	vrrp_instance_free(vi);
	return NULL;
}

void vrrp_instance_start(struct vrrp_instance *vi)
{
	struct vrrp_actions acts;
	char err[VIP_ERRLEN];
	bool up = true;

	if (vi->running)
		return;
	if (vi->waiting) {
		if (!vi->want_start) {
			vi->transitions++;
			vi->last_transition_wall_ms = util_wall_ms();
			run_notify(vi, VRRP_STATE_FAULT);
		}
		vi->want_start = true;
		ev_timer_start(vi->loop, &vi->wait_timer);
		ev_io_start(vi->loop, &vi->link_io);
		return;
	}
	if (vip_linkmon_query(vi->mon, vi->ifindex, &up, err, sizeof(err)) < 0)
		log_warn("vrrp %s: %s", vi->cfg.name, err);
	vrrp_fsm_link(&vi->fsm, util_now_ms(), up, &acts); /* INIT: only remembered */
	for (size_t i = 0; i < vi->cfg.ntracks; i++) {
		bool tup = false;

		if (vi->cfg.tracks[i].kind != VRRP_TRACK_INTERFACE)
			continue;
		if (vip_ifindex(vi->cfg.tracks[i].name, &vi->track_ifindex[i], err, sizeof(err)) ==
			    0 &&
		    vip_linkmon_query(vi->mon, vi->track_ifindex[i], &tup, err, sizeof(err)) == 0)
			vi->track_up[i] = tup;
		else
			vi->track_up[i] = false;
	}
	vi->running = true;
	update_priority(vi);
	vrrp_fsm_start(&vi->fsm, util_now_ms(), &acts);
	perform(vi, &acts);
	ev_io_start(vi->loop, &vi->io);
	ev_io_start(vi->loop, &vi->link_io);
	rearm(vi);
}

void vrrp_instance_shutdown(struct vrrp_instance *vi)
{
	struct vrrp_actions acts;

	if (vi->waiting) {
		vi->want_start = false;
		ev_timer_stop(vi->loop, &vi->wait_timer);
		ev_io_stop(vi->loop, &vi->link_io);
		return;
	}
	if (!vi->running)
		return;
	vrrp_fsm_shutdown(&vi->fsm, util_now_ms(), &acts);
	perform(vi, &acts);
	vi->running = false;
	ev_io_stop(vi->loop, &vi->io);
	ev_io_stop(vi->loop, &vi->link_io);
	ev_timer_stop(vi->loop, &vi->timer);
}

void vrrp_instance_free(struct vrrp_instance *vi)
{
	if (vi == NULL)
		return;
	vrrp_instance_shutdown(vi);
	for (size_t i = 0; i < VRRP_MAX_CHILDREN; i++) {
		/* The loop still reaps the child; nobody is told. */
		if (vi->children[i].used)
			ev_child_stop(vi->loop, &vi->children[i].w);
	}
	vip_linkmon_close(vi->mon);
	if (vi->fd >= 0)
		close(vi->fd);
	free(vi);
}

int vrrp_instance_admin(struct vrrp_instance *vi, bool leave, char *msg, size_t len)
{
	if (leave == vi->left) {
		snprintf(msg, len, "vrrp %s has already %s", vi->cfg.name,
			 leave ? "left" : "joined");
		return -1;
	}
	vi->left = leave;
	if (leave) {
		log_notice("vrrp %s: leaving the election (control socket)", vi->cfg.name);
		vrrp_instance_shutdown(vi);
	} else {
		log_notice("vrrp %s: joining the election (control socket)", vi->cfg.name);
		vrrp_instance_start(vi);
	}
	snprintf(msg, len, "vrrp %s %s", vi->cfg.name, leave ? "left" : "joined");
	return 0;
}

void vrrp_instance_track_set(struct vrrp_instance *vi, size_t idx, bool up)
{
	if (idx >= vi->cfg.ntracks || vi->track_up[idx] == up)
		return;
	vi->track_up[idx] = up;
	log_notice("vrrp %s: tracked %s %s", vi->cfg.name, vi->cfg.tracks[idx].name,
		   up ? "up" : "down");
	if (vi->running)
		update_priority(vi);
}

const struct vrrp_instance_config *vrrp_instance_config(const struct vrrp_instance *vi)
{
	return &vi->cfg;
}

void vrrp_instance_status(const struct vrrp_instance *vi, struct vrrp_status *out)
{
	memset(out, 0, sizeof(*out));
	out->name = vi->cfg.name;
	out->ifname = vi->cfg.ifname;
	out->state = vi->waiting ? VRRP_STATE_FAULT : vi->fsm.state;
	out->left = vi->left;
	out->version = vi->cfg.version;
	out->vrid = vi->cfg.vrid;
	out->base_priority = vi->cfg.priority;
	out->priority = vi->waiting ? vi->cfg.priority : vi->fsm.priority;
	out->adver_int_cs = vi->cfg.adver_int_cs;
	out->master_adver_int_cs = vi->fsm.master_adver_int_cs;
	out->primary = vi->primary;
	out->master = vi->fsm.master_addr;
	out->master_priority = vi->fsm.master_prio;
	out->multicast = vi->cfg.npeers == 0;
	out->csum_form = vi->cfg.csum_form;
	out->adverts_sent = vi->adverts_sent;
	out->adverts_rcvd = vi->adverts_rcvd;
	out->send_errors = vi->send_errors;
	out->transitions = vi->transitions;
	out->garps_sent = vi->garps_sent;
	memcpy(out->drops, vi->drops, sizeof(out->drops));
	memcpy(out->io_drops, vi->io_drops, sizeof(out->io_drops));
	out->last_transition_wall_ms = vi->last_transition_wall_ms;
	util_strlcpy(out->last_reason, vi->last_reason, sizeof(out->last_reason));
	out->npeers_seen = vi->npeers_seen;
	memcpy(out->peers_seen, vi->peers_seen, sizeof(out->peers_seen));
	out->ntracks = vi->cfg.ntracks;
	for (size_t i = 0; i < vi->cfg.ntracks; i++) {
		util_strlcpy(out->tracks[i].name, vi->cfg.tracks[i].name, VRRP_NAME_MAX);
		out->tracks[i].kind = vi->cfg.tracks[i].kind;
		out->tracks[i].weight = vi->cfg.tracks[i].weight;
		out->tracks[i].up = vi->track_up[i];
	}
}
