/* announce_glue: runs the announce blocks. Owns their TUN devices (one
 * descriptor each for the life of the process, handed to the new process
 * on a binary upgrade), puts the serving addresses on lo, feeds each
 * block's decision (vip_announce) with the first condition that fails —
 * shutdown, operator withdraw, node drain, a listener not accepting, a
 * required pool without a usable server — and makes the device match it.
 * Pools report through the pool publish hook; vip never sees a pool.
 * Reload is prepare / commit / rollback: a rejected reload changes nothing,
 * an unchanged block is left exactly as it is. */
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core.h"
#include "sluice/ctl.h"
#include "sluice/log.h"
#include "sluice/pool.h"
#include "sluice/proxy.h"
#include "sluice/util.h"
#include "sluice/vip.h"

#define ANNOUNCE_TICK_S 1.0 /* retries and a safety net; changes are events */

/* A TUN device. Owned by struct core_announce; the device lives while fd
 * (or a copy in another process) is open. */
struct core_announce_dev {
	char name[CONF_IFNAME_MAX];
	int fd; /* -1 while it cannot be created again (err says why) */
	int ifindex;
	char err[VIP_ERRLEN];
	bool keep;  /* prepare: used by the configuration being applied */
	bool fresh; /* prepare: opened by it (a rollback closes it) */
};

struct core_announce_addr {
	struct util_addr addr; /* port 0 */
	bool present;	       /* on the block's device now */
};

/* One announce block. Owned by struct core_announce. */
struct core_announce_blk {
	char name[CONF_NAME_MAX];
	struct core_announce_dev *dev;
	struct core_announce_addr *addrs;
	size_t naddrs;
	struct conf_announce_pool *pools;
	size_t npools;
	uint64_t withdraw_delay_ms;
	bool manual; /* announce withdraw NAME */
	struct vip_announce st;
};

/* Owned by struct core. next / next_devs hold what prepare built until
 * commit or rollback. */
struct core_announce {
	struct core *c;
	struct core_announce_blk **blks;
	size_t n;
	struct core_announce_dev **devs;
	size_t ndevs;
	struct core_announce_blk **next;
	size_t nnext;
	struct core_announce_dev **next_devs;
	size_t nnext_devs;
	struct util_addr *lo_added; /* prepare put these on lo (a rollback removes them) */
	size_t nlo_added;
	int lo_ifindex;
	bool drained;
	bool stopping;
	bool handed_over;    /* a binary upgrade: the new process owns the devices */
	ev_timer eval_timer; /* soon, or at the next hold-down end */
	ev_timer tick;
	ev_timer drain_timer; /* node drain within */
	uint64_t drain_deadline_ms;
	struct log_ratelimit err_rl;
};

static void eval_all(struct core_announce *ca);

/* ---- helpers ---- */

static unsigned prefix_of(const struct util_addr *a)
{
	return a->u.sa.sa_family == AF_INET ? 32 : 128;
}

static const char *fmt_prefix(const struct util_addr *a, char *buf, size_t len)
{
	char host[UTIL_ADDR_STRLEN];

	snprintf(buf, len, "%s/%u", util_addr_fmt_host(a, host, sizeof(host)), prefix_of(a));
	return buf;
}

static void addrs_text(const struct core_announce_blk *b, char *buf, size_t len)
{
	size_t off = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < b->naddrs; i++) {
		char a[UTIL_ADDR_STRLEN + 8];

		if (util_bufprintf(buf, len, &off, "%s%s", i ? " " : "",
				   fmt_prefix(&b->addrs[i].addr, a, sizeof(a))) < 0) {
			if (len > 4)
				memcpy(buf + len - 4, "...", 4);
			return;
		}
	}
}

static struct core_announce_blk *find_blk(struct core_announce_blk **v, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (v[i] != NULL && strcmp(v[i]->name, name) == 0)
			return v[i];
	return NULL;
}

static struct core_announce_dev *find_dev(struct core_announce_dev **v, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(v[i]->name, name) == 0)
			return v[i];
	return NULL;
}

static void blk_free(struct core_announce_blk *b)
{
	if (b == NULL)
		return;
	free(b->addrs);
	free(b->pools);
	free(b);
}

static void dev_close(struct core_announce_dev *d)
{
	if (d->fd >= 0)
		close(d->fd);
	free(d);
}

static void schedule(struct core_announce *ca, uint64_t at_ms)
{
	struct ev_loop *loop = ca->c->loop;
	uint64_t now = util_now_ms();
	double in = at_ms > now ? (double)(at_ms - now) / 1000.0 : 0.0;

	if (ev_is_active(&ca->eval_timer) && ev_timer_remaining(loop, &ca->eval_timer) <= in)
		return;
	ev_timer_stop(loop, &ca->eval_timer);
	ev_timer_set(&ca->eval_timer, in, 0.0);
	ev_timer_start(loop, &ca->eval_timer);
}

/* ---- conditions ---- */

/* Why listeners do not take connections for a now, or NULL. */
static const char *listener_cause(const struct core *c, const struct util_addr *a, char *buf,
				  size_t len)
{
	bool served = false;
	char abuf[UTIL_ADDR_STRLEN];

	for (size_t i = 0; i < c->nlisteners; i++) {
		const struct proxy_frontend *fe = c->listeners[i].fe;

		for (size_t b = 0; b < fe->nbinds; b++) {
			const struct proxy_bind *bd = fe->binds[b];
			bool open = false;

			if (!util_addr_serves_host(&bd->addr, a))
				continue;
			served = true;
			for (size_t k = 0; k < bd->nfds; k++)
				open |= bd->fds[k] >= 0;
			if (bd->attached && open)
				continue;
			snprintf(buf, len, "listener %s is not accepting on %s", fe->name,
				 util_addr_fmt(&bd->addr, abuf, sizeof(abuf)));
			return buf;
		}
	}
	if (served)
		return NULL;
	snprintf(buf, len, "no listener serves %s", util_addr_fmt_host(a, abuf, sizeof(abuf)));
	return buf;
}

static const struct pool *find_pool(const struct core *c, const char *name)
{
	for (size_t i = 0; i < c->npools; i++)
		if (strcmp(c->pools[i]->name, name) == 0)
			return c->pools[i];
	return NULL;
}

/* The first condition that keeps b from being announced, or NULL. *op
 * says whether it is the operator's (or the shutdown's) doing. */
static const char *block_cause(const struct core_announce *ca, const struct core_announce_blk *b,
			       char *buf, size_t len, bool *op)
{
	*op = true;
	if (ca->stopping)
		return "shutting down";
	if (b->manual)
		return "withdrawn by the operator (announce withdraw)";
	if (ca->drained)
		return "node drained (node drain)";
	*op = false;
	if (b->dev->fd < 0) {
		util_strlcpy(buf, b->dev->err, len);
		return buf;
	}
	for (size_t i = 0; i < b->naddrs; i++) {
		const char *why = listener_cause(ca->c, &b->addrs[i].addr, buf, len);

		if (why != NULL)
			return why;
	}
	for (size_t i = 0; i < b->npools; i++) {
		const struct pool *p = find_pool(ca->c, b->pools[i].name);

		if (p == NULL || !pool_has_usable(p)) {
			snprintf(buf, len, "pool %s has no usable server", b->pools[i].name);
			return buf;
		}
	}
	return NULL;
}

/* ---- the device ---- */

static void io_error(struct core_announce *ca, const char *name, const char *err)
{
	uint32_t sup = 0;

	if (log_ratelimit_ok(&ca->err_rl, util_now_ms(), 5, &sup))
		log_err("announce %s: %s%s", name, err, sup ? " (more errors not shown)" : "");
}

/* Take b's addresses off its device. Returns 0, or -1 when one is still
 * there (tried again at the next evaluation). */
static int addrs_del(struct core_announce *ca, struct core_announce_blk *b)
{
	int rc = 0;

	for (size_t i = 0; i < b->naddrs; i++) {
		char err[VIP_ERRLEN];

		if (!b->addrs[i].present)
			continue;
		if (vip_addr_del(b->dev->ifindex, &b->addrs[i].addr, err, sizeof(err)) < 0) {
			io_error(ca, b->name, err);
			rc = -1;
			continue;
		}
		b->addrs[i].present = false;
	}
	return rc;
}

/* Make the device hold b's addresses exactly while b is announced. */
static void sync_blk(struct core_announce *ca, struct core_announce_blk *b, uint64_t now,
		     uint64_t wall)
{
	bool want = b->st.state == VIP_ANNOUNCE_ANNOUNCED;

	if (!want) {
		addrs_del(ca, b);
		return;
	}
	for (size_t i = 0; i < b->naddrs; i++) {
		char err[VIP_ERRLEN];

		if (b->addrs[i].present)
			continue;
		if (vip_addr_add(b->dev->ifindex, &b->addrs[i].addr, prefix_of(&b->addrs[i].addr),
				 err, sizeof(err)) < 0) {
			/* all or nothing: a router must not see half a block */
			io_error(ca, b->name, err);
			vip_announce_failed(&b->st, err, now, wall);
			addrs_del(ca, b);
			return;
		}
		b->addrs[i].present = true;
	}
}

/* ---- evaluation ---- */

static void log_change(const struct core_announce_blk *b, enum vip_announce_state before,
		       const char *cause_before, bool op)
{
	char addrs[256];

	switch (b->st.state) {
	case VIP_ANNOUNCE_ANNOUNCED:
		if (before == VIP_ANNOUNCE_ANNOUNCED)
			return;
		addrs_text(b, addrs, sizeof(addrs));
		log_notice("announce %s: announced %s on %s (healthy for the %llums hold-down)",
			   b->name, addrs, b->dev->name, (unsigned long long)b->st.hold_down_ms);
		return;
	case VIP_ANNOUNCE_HOLD_DOWN:
		if (before != VIP_ANNOUNCE_HOLD_DOWN)
			log_info("announce %s: every condition holds: announcing after the %llums "
				 "hold-down",
				 b->name, (unsigned long long)b->st.hold_down_ms);
		return;
	case VIP_ANNOUNCE_WITHDRAWN:
		if (before == VIP_ANNOUNCE_ANNOUNCED) {
			if (op)
				log_notice("announce %s: withdrawn: %s", b->name, b->st.cause);
			else
				log_warn("announce %s: withdrawn: %s", b->name, b->st.cause);
		} else if (strcmp(cause_before, b->st.cause) != 0) {
			log_notice("announce %s: not announced: %s", b->name, b->st.cause);
		}
		return;
	}
}

static void on_eval(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	eval_all(w->data);
}

static void eval_all(struct core_announce *ca)
{
	uint64_t now = util_now_ms(), wall = util_wall_ms(), next = UINT64_MAX;

	if (ca->handed_over)
		return;
	for (size_t i = 0; i < ca->n; i++) {
		struct core_announce_blk *b = ca->blks[i];
		enum vip_announce_state before = b->st.state;
		char buf[VIP_ANNOUNCE_CAUSE_MAX], cause_before[VIP_ANNOUNCE_CAUSE_MAX];
		const char *cause;
		uint64_t at;
		bool op;

		util_strlcpy(cause_before, b->st.cause, sizeof(cause_before));
		cause = block_cause(ca, b, buf, sizeof(buf), &op);
		vip_announce_step(&b->st, cause, now, wall, &at);
		sync_blk(ca, b, now, wall);
		log_change(b, before, cause_before, op);
		if (b->st.state == VIP_ANNOUNCE_WITHDRAWN && b->st.retry_at_ms > now)
			at = UTIL_MIN(at, b->st.retry_at_ms);
		next = UTIL_MIN(next, at);
	}
	if (next != UINT64_MAX)
		schedule(ca, next);
}

/* A device someone deleted (ip link del) took its addresses with it: make
 * it again, so that what is announced is announced. One set down is set up
 * again. Nothing else may own these names. */
static void check_devs(struct core_announce *ca)
{
	for (size_t i = 0; i < ca->ndevs; i++) {
		struct core_announce_dev *d = ca->devs[i];
		char err[VIP_ERRLEN];
		int ifindex = 0;

		if (d->fd >= 0 && vip_tun_adopt(d->fd, d->name, &ifindex, err, sizeof(err)) == 0 &&
		    ifindex == d->ifindex)
			continue;
		if (d->fd >= 0) {
			log_err("announce: device %s was deleted or replaced: creating it again",
				d->name);
			close(d->fd);
		}
		for (size_t k = 0; k < ca->n; k++)
			for (size_t a = 0; ca->blks[k]->dev == d && a < ca->blks[k]->naddrs; a++)
				ca->blks[k]->addrs[a].present = false;
		d->fd = vip_tun_create(d->name, &d->ifindex, err, sizeof(err));
		if (d->fd < 0) {
			snprintf(d->err, sizeof(d->err), "%s", err);
			io_error(ca, d->name, err);
		}
	}
}

static void on_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct core_announce *ca = w->data;

	(void)loop;
	(void)revents;
	if (ca->handed_over)
		return;
	check_devs(ca);
	eval_all(ca);
}

/* The pool observer: a pool changed; look at it from the loop, once the
 * change (a reload, say) is complete. */
static void on_pool_published(struct pool *p, void *arg)
{
	struct core_announce *ca = arg;

	(void)p;
	if (!ca->handed_over && ca->n > 0)
		schedule(ca, 0);
}

/* ---- apply: prepare, commit, rollback ---- */

static struct core_announce *announce_get(struct core *c)
{
	struct core_announce *ca = c->announce;
	char err[VIP_ERRLEN];

	if (ca != NULL)
		return ca;
	ca = calloc(1, sizeof(*ca));
	if (ca == NULL)
		return NULL;
	ca->c = c;
	if (vip_ifindex("lo", &ca->lo_ifindex, err, sizeof(err)) < 0)
		ca->lo_ifindex = 0;
	ev_timer_init(&ca->eval_timer, on_eval, 0.0, 0.0);
	ca->eval_timer.data = ca;
	ev_timer_init(&ca->tick, on_tick, ANNOUNCE_TICK_S, ANNOUNCE_TICK_S);
	ca->tick.data = ca;
	ev_init(&ca->drain_timer, NULL);
	pool_set_publish_hook(on_pool_published, ca);
	c->announce = ca;
	return ca;
}

/* The announce state when it may change now, or NULL with msg set. */
static struct core_announce *announce_open(struct core *c, char *msg, size_t len)
{
	struct core_announce *ca = announce_get(c);

	if (ca == NULL) {
		snprintf(msg, len, "out of memory");
		return NULL;
	}
	if (ca->stopping || ca->handed_over) {
		snprintf(msg, len, "shutting down");
		return NULL;
	}
	return ca;
}

/* Open (or keep, or inherit) the device a block of the new configuration
 * names. Returns it, or NULL with err set. */
static struct core_announce_dev *prepare_dev(struct core_announce *ca, const char *name, char *err,
					     size_t len)
{
	struct core_announce_dev *d = find_dev(ca->next_devs, ca->nnext_devs, name), **arr;
	char e[VIP_ERRLEN];
	int fd;

	if (d != NULL)
		return d;
	arr = realloc(ca->next_devs, (ca->nnext_devs + 1) * sizeof(*arr));
	if (arr == NULL) {
		snprintf(err, len, "out of memory");
		return NULL;
	}
	ca->next_devs = arr;
	d = find_dev(ca->devs, ca->ndevs, name);
	if (d != NULL) {
		d->keep = true;
		arr[ca->nnext_devs++] = d;
		return d;
	}
	d = calloc(1, sizeof(*d));
	if (d == NULL) {
		snprintf(err, len, "out of memory");
		return NULL;
	}
	util_strlcpy(d->name, name, sizeof(d->name));
	fd = core_takeover_tun(ca->c, name);
	if (fd >= 0 && vip_tun_adopt(fd, name, &d->ifindex, e, sizeof(e)) < 0) {
		close(fd);
		free(d);
		snprintf(err, len, "%s", e);
		return NULL;
	}
	if (fd < 0)
		fd = vip_tun_create(name, &d->ifindex, e, sizeof(e));
	if (fd < 0) {
		free(d);
		snprintf(err, len, "%s", e);
		return NULL;
	}
	d->fd = fd;
	d->fresh = d->keep = true;
	arr[ca->nnext_devs++] = d;
	return d;
}

/* The serving address must be local whether or not it is announced, so
 * that a node keeps the packets of its established flows after it
 * withdraws. Added when missing, never removed while running. */
static int prepare_lo(struct core_announce *ca, const struct util_addr *a, char *err, size_t len)
{
	char e[VIP_ERRLEN];
	struct util_addr *arr;
	bool present = false;

	for (size_t i = 0; i < ca->nlo_added; i++)
		if (util_addr_equal(&ca->lo_added[i], a))
			return 0;
	if (ca->lo_ifindex <= 0) {
		snprintf(err, len, "no loopback interface to put the serving addresses on");
		return -1;
	}
	if (vip_addr_present(ca->lo_ifindex, a, &present, e, sizeof(e)) < 0) {
		snprintf(err, len, "%s", e);
		return -1;
	}
	if (present)
		return 0;
	arr = realloc(ca->lo_added, (ca->nlo_added + 1) * sizeof(*arr));
	if (arr == NULL) {
		snprintf(err, len, "out of memory");
		return -1;
	}
	ca->lo_added = arr;
	if (vip_addr_add(ca->lo_ifindex, a, prefix_of(a), e, sizeof(e)) < 0) {
		snprintf(err, len, "%s", e);
		return -1;
	}
	arr[ca->nlo_added++] = *a;
	return 0;
}

/* What a block of the new configuration takes over from the running block
 * of its name: the decision's state (with the new hold-down), an
 * operator's withdraw, which addresses are on the device. */
static void carry_over(struct core_announce_blk *b, const struct core_announce_blk *old,
		       uint64_t hold_down_ms)
{
	b->st = old->st;
	vip_announce_set_hold_down(&b->st, hold_down_ms);
	b->manual = old->manual;
	for (size_t i = 0; i < b->naddrs; i++) {
		b->addrs[i].present = false;
		for (size_t k = 0; k < old->naddrs && old->dev == b->dev; k++)
			if (util_addr_equal(&old->addrs[k].addr, &b->addrs[i].addr))
				b->addrs[i].present = old->addrs[k].present;
	}
}

/* The next state of one block: its configuration, and what carries over
 * from the running block of the same name. */
static struct core_announce_blk *prepare_blk(struct core_announce *ca,
					     const struct conf_announce *cf, char *err, size_t len)
{
	struct core_announce_blk *b = calloc(1, sizeof(*b)), *old;
	uint64_t now = util_now_ms(), wall = util_wall_ms();
	bool inherited = false;

	if (b == NULL || (b->addrs = calloc(cf->naddrs, sizeof(*b->addrs))) == NULL ||
	    (cf->npools > 0 && (b->pools = calloc(cf->npools, sizeof(*b->pools))) == NULL)) {
		blk_free(b);
		snprintf(err, len, "out of memory");
		return NULL;
	}
	util_strlcpy(b->name, cf->name, sizeof(b->name));
	b->naddrs = cf->naddrs;
	for (size_t i = 0; i < cf->naddrs; i++)
		b->addrs[i].addr = cf->addrs[i].addr;
	b->npools = cf->npools;
	if (cf->npools > 0)
		memcpy(b->pools, cf->pools, cf->npools * sizeof(*b->pools));
	b->withdraw_delay_ms = cf->withdraw_delay_ms;
	b->dev = prepare_dev(ca, cf->device, err, len);
	for (size_t i = 0; b->dev != NULL && i < cf->naddrs; i++)
		if (prepare_lo(ca, &cf->addrs[i].addr, err, len) < 0)
			b->dev = NULL;
	if (b->dev == NULL) {
		blk_free(b);
		return NULL;
	}
	old = find_blk(ca->blks, ca->n, cf->name);
	if (old != NULL) {
		carry_over(b, old, cf->hold_down_ms);
		return b;
	}
	/* a device inherited through a binary upgrade may hold them already */
	for (size_t i = 0; i < b->naddrs && b->dev->fresh; i++) {
		char e[VIP_ERRLEN];
		bool present = false;

		if (vip_addr_present(b->dev->ifindex, &b->addrs[i].addr, &present, e, sizeof(e)) ==
		    0)
			b->addrs[i].present = present;
		inherited |= present;
	}
	vip_announce_init(&b->st, cf->hold_down_ms, inherited, now, wall);
	b->manual = core_takeover_announce_withdrawn(ca->c, cf->name);
	if (inherited)
		log_notice("announce %s: inherited announced on %s from the previous process",
			   b->name, b->dev->name);
	return b;
}

void core_announce_rollback(struct core *c)
{
	struct core_announce *ca = c->announce;

	if (ca == NULL)
		return;
	for (size_t i = 0; i < ca->nnext; i++)
		blk_free(ca->next[i]);
	free(ca->next);
	ca->next = NULL;
	ca->nnext = 0;
	for (size_t i = 0; i < ca->nnext_devs; i++) {
		struct core_announce_dev *d = ca->next_devs[i];

		d->keep = false;
		if (d->fresh)
			dev_close(d);
	}
	free(ca->next_devs);
	ca->next_devs = NULL;
	ca->nnext_devs = 0;
	for (size_t i = 0; i < ca->nlo_added; i++) {
		char err[VIP_ERRLEN];

		if (vip_addr_del(ca->lo_ifindex, &ca->lo_added[i], err, sizeof(err)) < 0)
			log_err("announce: undoing a rejected reload: %s", err);
	}
	free(ca->lo_added);
	ca->lo_added = NULL;
	ca->nlo_added = 0;
}

int core_announce_prepare(struct core *c, const struct conf *nc, char *err, size_t len)
{
	struct core_announce *ca;

	if (nc->nannounces == 0 && c->announce == NULL)
		return 0;
	ca = announce_open(c, err, len);
	if (ca == NULL)
		return -1;
	ca->next = calloc(nc->nannounces + 1, sizeof(*ca->next));
	if (ca->next == NULL) {
		snprintf(err, len, "out of memory");
		return -1;
	}
	for (size_t i = 0; i < nc->nannounces; i++) {
		char e[VIP_ERRLEN];

		ca->next[i] = prepare_blk(ca, &nc->announces[i], e, sizeof(e));
		ca->nnext = i + 1;
		if (ca->next[i] == NULL) {
			snprintf(err, len, "announce %s: %s", nc->announces[i].name, e);
			core_announce_rollback(c);
			return -1;
		}
	}
	return 0;
}

/* Is a present on d for b's successor? Then the commit leaves it there. */
static bool kept_by_next(const struct core_announce *ca, const struct core_announce_blk *old,
			 const struct util_addr *a)
{
	const struct core_announce_blk *b = find_blk(ca->next, ca->nnext, old->name);

	if (b == NULL || b->dev != old->dev)
		return false;
	for (size_t i = 0; i < b->naddrs; i++)
		if (util_addr_equal(&b->addrs[i].addr, a))
			return true;
	return false;
}

void core_announce_commit(struct core *c)
{
	struct core_announce *ca = c->announce;

	if (ca == NULL)
		return;
	/* a reload applied in steps runs the loop between prepare and
	 * commit: take over the running blocks' state as it is now (an
	 * operator's withdraw or a decision made meanwhile) */
	for (size_t i = 0; i < ca->nnext; i++) {
		const struct core_announce_blk *old = find_blk(ca->blks, ca->n, ca->next[i]->name);

		if (old != NULL)
			carry_over(ca->next[i], old, ca->next[i]->st.hold_down_ms);
	}
	/* what the new configuration no longer announces there leaves now */
	for (size_t i = 0; i < ca->n; i++) {
		struct core_announce_blk *b = ca->blks[i];

		for (size_t k = 0; k < b->naddrs; k++)
			if (kept_by_next(ca, b, &b->addrs[k].addr))
				b->addrs[k].present = false; /* the successor has it */
		if (find_blk(ca->next, ca->nnext, b->name) == NULL &&
		    b->st.state == VIP_ANNOUNCE_ANNOUNCED)
			log_notice("announce %s: withdrawn: removed by the configuration", b->name);
		addrs_del(ca, b);
		blk_free(b);
	}
	free(ca->blks);
	ca->blks = ca->next;
	ca->n = ca->nnext;
	ca->next = NULL;
	ca->nnext = 0;
	for (size_t i = 0; i < ca->ndevs; i++)
		if (!ca->devs[i]->keep)
			dev_close(ca->devs[i]);
	free(ca->devs);
	ca->devs = ca->next_devs;
	ca->ndevs = ca->nnext_devs;
	ca->next_devs = NULL;
	ca->nnext_devs = 0;
	for (size_t i = 0; i < ca->ndevs; i++)
		ca->devs[i]->keep = ca->devs[i]->fresh = false;
	free(ca->lo_added);
	ca->lo_added = NULL;
	ca->nlo_added = 0;
	for (size_t i = 0; i < ca->n; i++) {
		char addrs[256];

		addrs_text(ca->blks[i], addrs, sizeof(addrs));
		log_info("announce %s: %s on %s", ca->blks[i]->name, addrs, ca->blks[i]->dev->name);
	}
	if (ca->n > 0)
		ev_timer_start(c->loop, &ca->tick);
	else
		ev_timer_stop(c->loop, &ca->tick);
	/* from the loop: at start-up the state file (an operator's withdraw)
	 * is read first, so nothing is announced only to be withdrawn */
	schedule(ca, 0);
}

/* ---- shutdown ---- */

uint64_t core_announce_shutdown(struct core *c)
{
	struct core_announce *ca = c->announce;
	uint64_t now = util_now_ms(), until = now;

	if (ca == NULL)
		return 0;
	ev_timer_stop(c->loop, &ca->drain_timer);
	if (c->handing_over) {
		/* the new process has the devices and decides from now on: no
		 * withdraw, so the routes never flap */
		ca->handed_over = true;
		ev_timer_stop(c->loop, &ca->eval_timer);
		ev_timer_stop(c->loop, &ca->tick);
		return 0;
	}
	ca->stopping = true;
	eval_all(ca);
	/* routers converge after the withdraw: keep serving what they still
	 * send until then */
	for (size_t i = 0; i < ca->n; i++) {
		const struct core_announce_blk *b = ca->blks[i];

		if (b->st.withdrawn_ms != 0)
			until = UTIL_MAX(until, b->st.withdrawn_ms + b->withdraw_delay_ms);
	}
	return until - now;
}

void core_announce_free(struct core *c)
{
	struct core_announce *ca = c->announce;

	if (ca == NULL)
		return;
	pool_set_publish_hook(NULL, NULL);
	if (c->loop != NULL) {
		ev_timer_stop(c->loop, &ca->eval_timer);
		ev_timer_stop(c->loop, &ca->tick);
		ev_timer_stop(c->loop, &ca->drain_timer);
	}
	core_announce_rollback(c);
	for (size_t i = 0; i < ca->n; i++)
		blk_free(ca->blks[i]);
	free(ca->blks);
	/* closing the last descriptor deletes a device and its addresses */
	for (size_t i = 0; i < ca->ndevs; i++)
		dev_close(ca->devs[i]);
	free(ca->devs);
	free(ca);
	c->announce = NULL;
}

/* ---- binary upgrade ---- */

size_t core_announce_handover(struct core *c, struct core_announce_fd *out, size_t max)
{
	struct core_announce *ca = c->announce;
	size_t n = 0;

	for (size_t i = 0; ca != NULL && i < ca->ndevs && n < max; i++) {
		if (ca->devs[i]->fd < 0)
			continue; /* gone: the new process creates it */
		util_strlcpy(out[n].name, ca->devs[i]->name, sizeof(out[n].name));
		out[n++].fd = ca->devs[i]->fd;
	}
	for (size_t i = 0; ca != NULL && i < ca->n && n < max; i++) {
		if (!ca->blks[i]->manual)
			continue;
		util_strlcpy(out[n].name, ca->blks[i]->name, sizeof(out[n].name));
		out[n++].fd = -1;
	}
	return n;
}

/* ---- reload check ---- */

static const struct conf_announce *find_conf(const struct conf *c, const char *name)
{
	for (size_t i = 0; i < c->nannounces; i++)
		if (strcmp(c->announces[i].name, name) == 0)
			return &c->announces[i];
	return NULL;
}

static bool conf_differs(const struct conf_announce *a, const struct conf_announce *b)
{
	if (strcmp(a->device, b->device) != 0 || a->naddrs != b->naddrs || a->npools != b->npools ||
	    a->hold_down_ms != b->hold_down_ms || a->withdraw_delay_ms != b->withdraw_delay_ms)
		return true;
	for (size_t i = 0; i < a->naddrs; i++)
		if (!util_addr_equal(&a->addrs[i].addr, &b->addrs[i].addr))
			return true;
	for (size_t i = 0; i < a->npools; i++)
		if (strcmp(a->pools[i].name, b->pools[i].name) != 0)
			return true;
	return false;
}

void core_announce_diff(const struct conf *oc, const struct conf *nc, char *buf, size_t len,
			size_t *off)
{
	for (size_t i = 0; i < nc->nannounces; i++) {
		const struct conf_announce *o = find_conf(oc, nc->announces[i].name);

		if (o == NULL)
			util_bufprintf(buf, len, off, "announce %s: added\n",
				       nc->announces[i].name);
		else if (conf_differs(o, &nc->announces[i]))
			util_bufprintf(buf, len, off,
				       "announce %s: changed (only what changed is redone)\n",
				       o->name);
	}
	for (size_t i = 0; i < oc->nannounces; i++)
		if (find_conf(nc, oc->announces[i].name) == NULL)
			util_bufprintf(buf, len, off,
				       "announce %s: removed (withdraws its addresses)\n",
				       oc->announces[i].name);
}

/* ---- control socket ---- */

static void pools_text(const struct core *c, const struct core_announce_blk *b, char *buf,
		       size_t len)
{
	size_t off = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < b->npools; i++) {
		const struct pool *p = find_pool(c, b->pools[i].name);

		util_bufprintf(buf, len, &off, "%s%s:%s", i ? " " : "", b->pools[i].name,
			       p != NULL && pool_has_usable(p) ? "usable" : "none");
	}
}

size_t core_announce_rows(void *arg, struct ctl_announce_row *rows, size_t max,
			  struct ctl_node_state *node)
{
	struct core *c = arg;
	struct core_announce *ca = c->announce;
	uint64_t now = util_now_ms();

	memset(node, 0, sizeof(*node));
	if (ca == NULL)
		return 0;
	node->drained = ca->drained;
	node->stopping = ca->stopping || ca->handed_over;
	if (ev_is_active(&ca->drain_timer) && ca->drain_deadline_ms > now)
		node->drain_left_ms = ca->drain_deadline_ms - now;
	for (size_t i = 0; rows != NULL && i < ca->n && i < max; i++) {
		const struct core_announce_blk *b = ca->blks[i];
		struct ctl_announce_row *r = &rows[i];

		memset(r, 0, sizeof(*r));
		util_strlcpy(r->name, b->name, sizeof(r->name));
		util_strlcpy(r->device, b->dev->name, sizeof(r->device));
		addrs_text(b, r->addresses, sizeof(r->addresses));
		pools_text(c, b, r->pools, sizeof(r->pools));
		util_strlcpy(r->state, vip_announce_state_name(b->st.state), sizeof(r->state));
		util_strlcpy(r->cause, b->st.cause, sizeof(r->cause));
		r->manual = b->manual;
		r->since_wall_ms = b->st.since_wall_ms;
		r->since_age_ms = now - b->st.since_ms;
		r->hold_down_ms = b->st.hold_down_ms;
		if (b->st.state == VIP_ANNOUNCE_HOLD_DOWN &&
		    b->st.healthy_since_ms + b->st.hold_down_ms > now)
			r->hold_down_left_ms = b->st.healthy_since_ms + b->st.hold_down_ms - now;
		r->withdraw_delay_ms = b->withdraw_delay_ms;
		r->announces = b->st.announces;
		r->withdraws = b->st.withdraws;
		r->errors = b->st.errors;
	}
	return ca->n;
}

int core_announce_admin(void *arg, const char *name, bool withdraw, char *msg, size_t len)
{
	struct core *c = arg;
	struct core_announce *ca = c->announce;
	size_t hit = 0, changed = 0;
	bool all = strcmp(name, "all") == 0;

	if (ca == NULL || ca->n == 0) {
		snprintf(msg, len, "no announce block is configured");
		return -1;
	}
	if (ca->stopping || ca->handed_over) {
		snprintf(msg, len, "shutting down");
		return -1;
	}
	for (size_t i = 0; i < ca->n; i++) {
		struct core_announce_blk *b = ca->blks[i];

		if (!all && strcmp(b->name, name) != 0)
			continue;
		hit++;
		if (b->manual == withdraw)
			continue;
		b->manual = withdraw;
		changed++;
		log_notice("announce %s: %s by the operator (control socket)", b->name,
			   withdraw ? "withdraw" : "restore");
	}
	if (hit == 0) {
		snprintf(msg, len, "no announce block '%s'", name);
		return -1;
	}
	eval_all(ca);
	if (withdraw)
		snprintf(msg, len, "announce %s: withdrawn (%zu changed)", name, changed);
	else
		snprintf(msg, len,
			 "announce %s: restored (%zu changed); announced again after the "
			 "hold-down while every condition holds",
			 name, changed);
	return 0;
}

static void on_drain_deadline(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct core_announce *ca = w->data;
	uint32_t n = proxy_engine_active(ca->c->engine);
	/* spread the closes so the clients do not reconnect at once, as
	 * `server drain ... within` does */
	uint32_t spread = UTIL_MIN(2000, UTIL_MAX(100, n * 10));

	(void)loop;
	(void)revents;
	if (n == 0)
		return;
	log_notice("node drain: deadline passed, closing %u connections over %ums", n, spread);
	proxy_engine_close_server(ca->c->engine, NULL, spread);
}

int core_announce_node(void *arg, bool drain, uint64_t within_ms, char *msg, size_t len)
{
	struct core *c = arg;
	struct core_announce *ca = announce_open(c, msg, len);

	if (ca == NULL)
		return -1;
	ev_timer_stop(c->loop, &ca->drain_timer);
	ca->drain_deadline_ms = 0;
	if (!drain) {
		if (ca->drained)
			log_notice("node ready (control socket)");
		ca->drained = false;
		eval_all(ca);
		snprintf(msg, len,
			 "node ready: addresses are announced again after the hold-down "
			 "while every condition holds");
		return 0;
	}
	log_notice("node drain (control socket): withdrawing every address, %u connections open%s",
		   proxy_engine_active(c->engine), within_ms ? ", closing what is left later" : "");
	ca->drained = true;
	eval_all(ca);
	if (within_ms > 0) {
		ev_timer_init(&ca->drain_timer, on_drain_deadline, (double)within_ms / 1000.0, 0.0);
		ca->drain_timer.data = ca;
		ev_timer_start(c->loop, &ca->drain_timer);
		ca->drain_deadline_ms = util_now_ms() + within_ms;
		snprintf(msg, len,
			 "node drained: every address withdrawn; %u connections open, "
			 "closed if still open in %llums",
			 proxy_engine_active(c->engine), (unsigned long long)within_ms);
	} else {
		snprintf(msg, len, "node drained: every address withdrawn; %u connections open",
			 proxy_engine_active(c->engine));
	}
	return 0;
}
