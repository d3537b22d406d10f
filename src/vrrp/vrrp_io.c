/* vrrp_io: one running virtual router in the control thread's libev loop.
 * Owns a raw IP protocol 112 socket (vrrp_sock.c), a link monitor and one
 * timer driven by vrrp_fsm_next_deadline(); feeds the pure codec and state
 * machine and performs their actions (adverts, VIPs and announcements
 * through vip, notify script through vrrp_notify.c). Invariant: receiving
 * never moves the advert timer. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ev.h>

#include "sluice/log.h"
#include "sluice/util.h"
#include "sluice/vip.h"
#include "sluice/vrrp.h"
#include "vrrp-int.h"
#include "vrrp-park.h"

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
		int n =
		    vrrp_pkt_encode(buf, sizeof(buf), &adv, vi->cfg.csum_form, &vi->primary, dst);
		char host[INET6_ADDRSTRLEN];

		if (n < 0 || vrrp_sock_send(vi, buf, (size_t)n, dst) < 0) {
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
		/* a VIP connections still use stays on lo (added before it
		 * leaves the interface, so it is never missing) */
		if (!add && vi->park != NULL)
			vrrp_park_hold(vi->park, i, &a);
		rc = add ? vip_addr_add(vi->vip_ifindex[i], &a, vi->cfg.vips[i].prefixlen, err,
					sizeof(err))
			 : vip_addr_del(vi->vip_ifindex[i], &a, err, sizeof(err));
		if (rc < 0)
			log_limited(vi, &vi->rl_err, LOGL_ERR, "%s", err);
		if (add && vi->park != NULL)
			vrrp_park_unpark(vi->park, i);
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

/* Start the notify script for a new state; a failure is logged, never
 * fatal. */
static void run_notify(struct vrrp_instance *vi, enum vrrp_state state)
{
	char err[256];

	if (vrrp_notify_run(vi, state, err, sizeof(err)) < 0)
		log_limited(vi, &vi->rl_err, LOGL_WARNING, "%s", err);
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

void vrrp_io_rx(struct vrrp_instance *vi, const uint8_t *msg, size_t len,
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
	vrrp_fsm_rx_advert(&vi->fsm, util_now_ms(), &rx->src, adv.priority, adv.interval_cs, &acts);
	perform(vi, &acts);
}

static void on_readable(struct ev_loop *loop, ev_io *w, int revents)
{
	struct vrrp_instance *vi = w->data;

	(void)loop;
	(void)revents;
	vrrp_sock_read(vi);
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
	uint64_t now = util_now_ms(), due = vrrp_fsm_next_deadline(&vi->fsm),
		 now_us = util_now_us();

	(void)loop;
	(void)revents;
	vrrp_fsm_timer(&vi->fsm, now, &acts);
	/* the control loop's own lateness, for an advert that was due */
	for (unsigned i = 0; i < acts.n && vi->cfg.late_adverts != NULL; i++)
		if (acts.a[i].type == VRRP_ACT_SEND_ADVERT && due != VRRP_NEVER)
			util_lathist_add(vi->cfg.late_adverts,
					 now_us > due * 1000u ? now_us - due * 1000u : 0);
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
				log_notice("vrrp %s: tracked interface %s %s", vi->cfg.name,
					   t->name, up ? "up" : "down");
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
	if (vrrp_sock_open(vi, e, elen) < 0)
		return -1;
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

struct vrrp_instance *vrrp_instance_new(struct ev_loop *loop,
					const struct vrrp_instance_config *cfg, char *err,
					size_t errlen)
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
	vrrp_notify_detach(vi);
	vrrp_park_free(vi->park);
	vip_linkmon_close(vi->mon);
	if (vi->fd >= 0)
		close(vi->fd);
	free(vi);
}

void vrrp_instance_set_park(struct vrrp_instance *vi, vrrp_vip_busy_fn *busy, void *arg)
{
	if ((busy != NULL) == (vi->park != NULL))
		return;
	if (busy == NULL) {
		vrrp_park_free(vi->park);
		vi->park = NULL;
		return;
	}
	vi->park = vrrp_park_new(vi->cfg.name, vi->cfg.ifname, busy, arg);
}

void vrrp_instance_park_check(struct vrrp_instance *vi)
{
	if (vi->park != NULL)
		vrrp_park_check(vi->park);
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
