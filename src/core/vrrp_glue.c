/* vrrp_glue: creates the VRRP instances from the configuration, keeps the
 * unchanged ones (state and timers) across a reload, which is a transaction
 * (prepare builds the new instances beside the running ones, commit swaps,
 * rollback frees what prepare built), reports pool health
 * to "track pool" (vrrp never sees a pool), gives the VIPs up on shutdown,
 * and answers the control socket's `show vrrp` and `vrrp leave|join`. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>

#include "core.h"
#include "sluice/ctl.h"
#include "sluice/log.h"
#include "sluice/pool.h"
#include "sluice/proxy.h"
#include "sluice/util.h"
#include "sluice/vrrp.h"

/* Pools have no change event yet: look at them this often. */
#define CORE_VRRP_POOL_CHECK_S 0.1

/* Owned by struct core. */
struct core_vrrp {
	struct vrrp_instance **insts;
	size_t n;
	ev_timer pool_timer;
	bool stopped;
};

static void build_cfg(const struct conf_vrrp *cv, struct vrrp_instance_config *out)
{
	memset(out, 0, sizeof(*out));
	util_strlcpy(out->name, cv->name, sizeof(out->name));
	util_strlcpy(out->ifname, cv->interface, sizeof(out->ifname));
	out->version = (uint8_t)cv->version;
	out->vrid = (uint8_t)cv->vrid;
	out->priority = (uint8_t)cv->priority;
	out->adver_int_cs = (uint16_t)(cv->advert_ms / 10);
	out->preempt = cv->preempt;
	out->preempt_delay_ms = cv->preempt_delay_ms;
	for (size_t i = 0; i < cv->naddrs && i < VRRP_MAX_ADDRS; i++) {
		vrrp_addr_from_util(&cv->addrs[i].addr, &out->vips[i].addr);
		out->vips[i].prefixlen = (uint8_t)cv->addrs[i].prefixlen;
		util_strlcpy(out->vips[i].dev, cv->addrs[i].dev, sizeof(out->vips[i].dev));
		out->nvips++;
	}
	for (size_t i = 0; i < cv->npeers && i < VRRP_MAX_PEERS; i++) {
		vrrp_addr_from_util(&cv->peers[i], &out->peers[i]);
		out->npeers++;
	}
	for (size_t i = 0; i < cv->ntracks && i < VRRP_MAX_TRACKS; i++) {
		out->tracks[i].kind = cv->tracks[i].kind == CONF_VRRP_TRACK_INTERFACE
					  ? VRRP_TRACK_INTERFACE
					  : VRRP_TRACK_EXTERNAL;
		util_strlcpy(out->tracks[i].name, cv->tracks[i].name, sizeof(out->tracks[i].name));
		out->tracks[i].weight = (uint8_t)cv->tracks[i].weight;
		out->ntracks++;
	}
	out->garp_repeat = cv->garp_repeat;
	out->garp_delay_ms = cv->garp_delay_ms;
	out->garp_refresh_ms = cv->garp_refresh_ms;
	util_strlcpy(out->notify, cv->notify, sizeof(out->notify));
	out->csum_form = cv->checksum == CONF_VRRP_CSUM_RFC ? VRRP_CSUM_RFC : VRRP_CSUM_PSEUDO;
}

/* A pool is usable while at least one of its servers may get connections. */
static bool pool_usable(const struct core *c, const char *name)
{
	for (size_t i = 0; i < c->npools; i++) {
		const struct pool *p = c->pools[i];

		if (strcmp(p->name, name) != 0)
			continue;
		for (size_t s = 0; s < p->nservers; s++)
			if (!p->servers[s]->removed && pool_server_eligible(p->servers[s]))
				return true;
		return false;
	}
	return false;
}

static void check_pools(struct core *c, struct vrrp_instance *vi)
{
	const struct vrrp_instance_config *cfg = vrrp_instance_config(vi);

	for (size_t t = 0; t < cfg->ntracks; t++)
		if (cfg->tracks[t].kind == VRRP_TRACK_EXTERNAL)
			vrrp_instance_track_set(vi, t, pool_usable(c, cfg->tracks[t].name));
}

static void on_pool_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct core *c = w->data;

	(void)loop;
	(void)revents;
	for (size_t i = 0; i < c->vrrp->n; i++) {
		check_pools(c, c->vrrp->insts[i]);
		vrrp_instance_park_check(c->vrrp->insts[i]);
	}
}

/* Do connections of a listener bound on vip (or on any address of its
 * family) remain? For keeping VIPs on lo after leaving MASTER. */
static bool vip_busy(void *arg, const struct util_addr *vip)
{
	struct core *c = arg;

	for (size_t i = 0; i < c->nlisteners; i++) {
		struct proxy_frontend *fe = c->listeners[i].fe;
		bool bound = false;

		for (size_t b = 0; b < fe->nbinds && !bound; b++) {
			struct util_addr host = fe->binds[b]->addr;
			char x[UTIL_ADDR_STRLEN], y[UTIL_ADDR_STRLEN];

			util_addr_fmt_host(&host, x, sizeof(x));
			util_addr_fmt_host(vip, y, sizeof(y));
			bound = strcmp(x, y) == 0 ||
				(host.u.sa.sa_family == vip->u.sa.sa_family &&
				 (strcmp(x, "0.0.0.0") == 0 || strcmp(x, "::") == 0));
		}
		if (bound && atomic_load(&fe->cur_conns) > 0)
			return true;
	}
	return false;
}

/* A reload's VRRP half between prepare and commit. The running list is
 * not touched until commit: kept instances stay where they run, fresh ones
 * exist (socket open, not started: they send nothing and hold no VIP).
 * Owned by the caller of core_vrrp_prepare() until commit or rollback. */
struct core_vrrp_txn {
	struct vrrp_instance **next; /* the new list (n); becomes cv->insts */
	bool *fresh;		     /* n: created by prepare, not started */
	bool *kept;		     /* one per running instance: reused in next */
	size_t n;
	bool park; /* a cluster block: VIPs given up stay on lo while in use */
};

static void txn_free(struct core_vrrp_txn *t)
{
	free(t->next);
	free(t->fresh);
	free(t->kept);
	free(t);
}

/* The running instance with exactly this configuration that no entry of
 * the new list took yet (its index), or -1. */
static ssize_t find_kept(const struct core_vrrp *cv, const struct core_vrrp_txn *t,
			 const struct vrrp_instance_config *cfg)
{
	for (size_t i = 0; i < cv->n; i++)
		if (!t->kept[i] &&
		    memcmp(vrrp_instance_config(cv->insts[i]), cfg, sizeof(*cfg)) == 0)
			return (ssize_t)i;
	return -1;
}

static struct core_vrrp *vrrp_state(struct core *c, char *err, size_t len)
{
	struct core_vrrp *cv = c->vrrp;

	if (cv == NULL) {
		cv = c->vrrp = calloc(1, sizeof(*cv));
		if (cv == NULL) {
			snprintf(err, len, "out of memory");
			return NULL;
		}
		ev_timer_init(&cv->pool_timer, on_pool_timer, CORE_VRRP_POOL_CHECK_S,
			      CORE_VRRP_POOL_CHECK_S);
		cv->pool_timer.data = c;
	}
	if (cv->stopped) {
		snprintf(err, len, "shutting down");
		return NULL;
	}
	return cv;
}

struct core_vrrp_txn *core_vrrp_prepare(struct core *c, const struct conf *newconf, char *err,
					size_t len)
{
	struct core_vrrp *cv = vrrp_state(c, err, len);
	struct core_vrrp_txn *t;
	size_t n = newconf->nvrrps;

	if (cv == NULL)
		return NULL;
	t = calloc(1, sizeof(*t));
	if (t == NULL) {
		snprintf(err, len, "out of memory");
		return NULL;
	}
	t->next = calloc(n ? n : 1, sizeof(*t->next));
	t->fresh = calloc(n ? n : 1, sizeof(*t->fresh));
	t->kept = calloc(cv->n ? cv->n : 1, sizeof(*t->kept));
	if (t->next == NULL || t->fresh == NULL || t->kept == NULL) {
		txn_free(t);
		snprintf(err, len, "out of memory");
		return NULL;
	}
	t->n = n;
	t->park = newconf->cluster.present;
	for (size_t i = 0; i < n; i++) {
		struct vrrp_instance_config cfg;
		ssize_t k;

		build_cfg(&newconf->vrrps[i], &cfg);
		cfg.late_adverts = &c->late_adverts;
		k = find_kept(cv, t, &cfg);
		if (k >= 0) {
			t->kept[k] = true;
			t->next[i] = cv->insts[k];
			continue;
		}
		t->next[i] = vrrp_instance_new(c->loop, &cfg, err, len);
		if (t->next[i] == NULL) {
			core_vrrp_rollback(c, t);
			return NULL;
		}
		t->fresh[i] = true;
	}
	return t;
}

void core_vrrp_rollback(struct core *c, struct core_vrrp_txn *t)
{
	(void)c; /* the running instances were never touched */
	for (size_t i = 0; i < t->n; i++)
		if (t->fresh[i]) /* never started: freeing it sends nothing */
			vrrp_instance_free(t->next[i]);
	txn_free(t);
}

void core_vrrp_commit(struct core *c, struct core_vrrp_txn *t)
{
	struct core_vrrp *cv = c->vrrp;

	for (size_t i = 0; i < cv->n; i++) {
		if (t->kept[i])
			continue;
		log_notice("vrrp %s: removed or changed by the configuration",
			   vrrp_instance_config(cv->insts[i])->name);
		vrrp_instance_free(cv->insts[i]); /* a master sends priority 0 */
	}
	free(cv->insts);
	cv->insts = t->next;
	cv->n = t->n;
	t->next = NULL;
	for (size_t i = 0; i < cv->n; i++) {
		const struct vrrp_instance_config *cfg = vrrp_instance_config(cv->insts[i]);

		/* with second-chance forwarding, the new master sends us the
		 * packets of our flows: keep their VIPs while they last */
		vrrp_instance_set_park(cv->insts[i], t->park ? vip_busy : NULL, c);
		if (!t->fresh[i])
			continue;
		check_pools(c, cv->insts[i]);
		log_notice("vrrp %s: interface %s vrid %u priority %u advert %ums version %u (%s)",
			   cfg->name, cfg->ifname, cfg->vrid, cfg->priority,
			   (unsigned)cfg->adver_int_cs * 10, cfg->version,
			   cfg->npeers ? "unicast" : "multicast");
		vrrp_instance_start(cv->insts[i]);
	}
	txn_free(t);
	if (cv->n > 0)
		ev_timer_start(c->loop, &cv->pool_timer);
	else
		ev_timer_stop(c->loop, &cv->pool_timer);
}

int core_vrrp_apply(struct core *c, const struct conf *newconf, char *err, size_t len)
{
	struct core_vrrp_txn *t = core_vrrp_prepare(c, newconf, err, len);

	if (t == NULL)
		return -1;
	core_vrrp_commit(c, t);
	return 0;
}

void core_vrrp_shutdown(struct core *c)
{
	struct core_vrrp *cv = c->vrrp;

	if (cv == NULL || cv->stopped)
		return;
	cv->stopped = true;
	ev_timer_stop(c->loop, &cv->pool_timer);
	for (size_t i = 0; i < cv->n; i++)
		vrrp_instance_shutdown(cv->insts[i]);
}

void core_vrrp_free(struct core *c)
{
	struct core_vrrp *cv = c->vrrp;

	if (cv == NULL)
		return;
	ev_timer_stop(c->loop, &cv->pool_timer);
	for (size_t i = 0; i < cv->n; i++)
		vrrp_instance_free(cv->insts[i]);
	free(cv->insts);
	free(cv);
	c->vrrp = NULL;
}

/* ---- control socket ---- */

static void fmt_time(uint64_t wall_ms, char *buf, size_t len)
{
	time_t t = (time_t)(wall_ms / 1000);
	struct tm tm;

	if (wall_ms == 0 || gmtime_r(&t, &tm) == NULL) {
		util_strlcpy(buf, "never", len);
		return;
	}
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void show_json(const struct vrrp_status *st, struct ctl_buf *out)
{
	char prim[INET6_ADDRSTRLEN], master[INET6_ADDRSTRLEN], when[32];

	fmt_time(st->last_transition_wall_ms, when, sizeof(when));
	/* names from the file and the kernel escaped: an interface may be
	 * called 'a"b', and the last reason names it */
	ctl_buf_printf(out, "{\"name\":");
	ctl_json_str(out, st->name);
	ctl_buf_printf(out, ",\"interface\":");
	ctl_json_str(out, st->ifname);
	ctl_buf_printf(out,
		       ",\"vrid\":%u,\"version\":%u,"
		       "\"state\":\"%s\",\"left\":%s,\"base_priority\":%u,\"priority\":%u,"
		       "\"primary\":\"%s\",\"master\":\"%s\",\"master_priority\":%u,"
		       "\"advert_ms\":%u,\"master_advert_ms\":%u,\"mode\":\"%s\","
		       "\"checksum\":\"%s\",\"adverts_sent\":%llu,\"adverts_received\":%llu,"
		       "\"send_errors\":%llu,\"transitions\":%llu,\"garps_sent\":%llu,"
		       "\"last_transition\":\"%s\",\"last_reason\":",
		       st->vrid, st->version, vrrp_state_name(st->state),
		       st->left ? "true" : "false", st->base_priority, st->priority,
		       vrrp_addr_fmt(&st->primary, prim, sizeof(prim)),
		       vrrp_addr_fmt(&st->master, master, sizeof(master)), st->master_priority,
		       (unsigned)st->adver_int_cs * 10, (unsigned)st->master_adver_int_cs * 10,
		       st->multicast ? "multicast" : "unicast", vrrp_csum_form_name(st->csum_form),
		       (unsigned long long)st->adverts_sent, (unsigned long long)st->adverts_rcvd,
		       (unsigned long long)st->send_errors, (unsigned long long)st->transitions,
		       (unsigned long long)st->garps_sent, when);
	ctl_json_str(out, st->last_reason);
	ctl_buf_printf(out, ",\"drops\":{");
	for (int r = 1; r < VRRP_DROP_NR; r++)
		ctl_buf_printf(out, "%s\"%s\":%llu", r > 1 ? "," : "",
			       vrrp_drop_reason_name((enum vrrp_drop)r),
			       (unsigned long long)st->drops[r]);
	for (int r = 0; r < VRRP_IODROP_NR; r++)
		ctl_buf_printf(out, ",\"%s\":%llu", vrrp_io_drop_name((enum vrrp_io_drop)r),
			       (unsigned long long)st->io_drops[r]);
	ctl_buf_printf(out, "},\"peers\":[");
	for (size_t p = 0; p < st->npeers_seen; p++) {
		const struct vrrp_peer_seen *ps = &st->peers_seen[p];
		char a[INET6_ADDRSTRLEN];

		ctl_buf_printf(out,
			       "%s{\"address\":\"%s\",\"checksum\":\"%s\",\"version\":%u,"
			       "\"priority\":%u,\"adverts\":%llu}",
			       p ? "," : "", vrrp_addr_fmt(&ps->addr, a, sizeof(a)),
			       vrrp_csum_form_name(ps->form), ps->version, ps->priority,
			       (unsigned long long)ps->adverts);
	}
	ctl_buf_printf(out, "],\"tracks\":[");
	for (size_t t = 0; t < st->ntracks; t++) {
		ctl_buf_printf(out, "%s{\"%s\":", t ? "," : "",
			       st->tracks[t].kind == VRRP_TRACK_INTERFACE ? "interface" : "pool");
		ctl_json_str(out, st->tracks[t].name);
		ctl_buf_printf(out, ",\"weight\":%u,\"up\":%s}", st->tracks[t].weight,
			       st->tracks[t].up ? "true" : "false");
	}
	ctl_buf_printf(out, "]}");
}

static void show_text(const struct vrrp_status *st, struct ctl_buf *out)
{
	char prim[INET6_ADDRSTRLEN], master[INET6_ADDRSTRLEN], when[32];
	bool any = false;

	fmt_time(st->last_transition_wall_ms, when, sizeof(when));
	ctl_buf_printf(out, "vrrp %s: %s%s on %s vrid %u version %u (%s, sends checksum %s)\n",
		       st->name, vrrp_state_name(st->state), st->left ? " (left)" : "", st->ifname,
		       st->vrid, st->version, st->multicast ? "multicast" : "unicast",
		       vrrp_csum_form_name(st->csum_form));
	ctl_buf_printf(out, "  priority %u (base %u), source %s\n", st->priority, st->base_priority,
		       vrrp_addr_fmt(&st->primary, prim, sizeof(prim)));
	ctl_buf_printf(out, "  master %s priority %u, advert %ums (master's %ums)\n",
		       vrrp_addr_fmt(&st->master, master, sizeof(master)), st->master_priority,
		       (unsigned)st->adver_int_cs * 10, (unsigned)st->master_adver_int_cs * 10);
	ctl_buf_printf(out, "  last transition %s (%s), %llu transitions\n", when,
		       st->last_reason[0] ? st->last_reason : "-",
		       (unsigned long long)st->transitions);
	ctl_buf_printf(out, "  adverts sent %llu received %llu, send errors %llu, garps %llu\n",
		       (unsigned long long)st->adverts_sent, (unsigned long long)st->adverts_rcvd,
		       (unsigned long long)st->send_errors, (unsigned long long)st->garps_sent);
	ctl_buf_printf(out, "  drops:");
	for (int r = 1; r < VRRP_DROP_NR; r++) {
		if (st->drops[r] == 0)
			continue;
		ctl_buf_printf(out, " %s=%llu", vrrp_drop_reason_name((enum vrrp_drop)r),
			       (unsigned long long)st->drops[r]);
		any = true;
	}
	for (int r = 0; r < VRRP_IODROP_NR; r++) {
		if (st->io_drops[r] == 0)
			continue;
		ctl_buf_printf(out, " %s=%llu", vrrp_io_drop_name((enum vrrp_io_drop)r),
			       (unsigned long long)st->io_drops[r]);
		any = true;
	}
	ctl_buf_printf(out, "%s\n", any ? "" : " none");
	for (size_t p = 0; p < st->npeers_seen; p++) {
		const struct vrrp_peer_seen *ps = &st->peers_seen[p];
		char a[INET6_ADDRSTRLEN];

		ctl_buf_printf(
		    out, "  peer %s: checksum %s, version %u, priority %u, %llu adverts\n",
		    vrrp_addr_fmt(&ps->addr, a, sizeof(a)), vrrp_csum_form_name(ps->form),
		    ps->version, ps->priority, (unsigned long long)ps->adverts);
	}
	for (size_t t = 0; t < st->ntracks; t++)
		ctl_buf_printf(out, "  track %s %s weight %u: %s\n",
			       st->tracks[t].kind == VRRP_TRACK_INTERFACE ? "interface" : "pool",
			       st->tracks[t].name, st->tracks[t].weight,
			       st->tracks[t].up ? "up" : "down");
}

void core_vrrp_show(void *arg, bool json, struct ctl_buf *out)
{
	struct core *c = arg;
	size_t n = c->vrrp != NULL ? c->vrrp->n : 0;
	struct vrrp_status *st = malloc(sizeof(*st));

	if (st == NULL) {
		ctl_buf_printf(out, "error: out of memory\n\n");
		return;
	}
	if (json)
		ctl_buf_printf(out, "{\"vrrp\":[");
	for (size_t i = 0; i < n; i++) {
		vrrp_instance_status(c->vrrp->insts[i], st);
		if (json) {
			if (i > 0)
				ctl_buf_printf(out, ",");
			show_json(st, out);
		} else {
			show_text(st, out);
		}
	}
	if (json)
		ctl_buf_printf(out, "]}\n");
	else if (n == 0)
		ctl_buf_printf(out, "no vrrp instance configured\n");
	ctl_buf_printf(out, "\n");
	free(st);
}

int core_vrrp_admin(void *arg, const char *name, bool leave, char *msg, size_t len)
{
	struct core *c = arg;

	for (size_t i = 0; c->vrrp != NULL && i < c->vrrp->n; i++)
		if (strcmp(vrrp_instance_config(c->vrrp->insts[i])->name, name) == 0) {
			if (c->vrrp->stopped) {
				snprintf(msg, len, "shutting down");
				return -1;
			}
			return vrrp_instance_admin(c->vrrp->insts[i], leave, msg, len);
		}
	snprintf(msg, len, "no vrrp instance '%s'", name);
	return -1;
}
