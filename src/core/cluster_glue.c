/* cluster_glue: runs second-chance forwarding from the `cluster` block:
 * checks the interfaces and peers against the kernel (through vip), loads
 * and attaches the program (cluster), keeps the served addresses in step
 * with the listeners, the peers' MACs with the neighbour table and the tc
 * heartbeat alive, logs flows no node answers, and answers `show cluster`
 * and the metrics. All or nothing at start and reload; detached at exit. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"
#include "sluice/cluster.h"
#include "sluice/conf.h"
#include "sluice/ctl.h"
#include "sluice/log.h"
#include "sluice/util.h"
#include "sluice/vip.h"

#define CLUSTER_BEAT_S 0.2 /* tc mode: the program gives up after 3 s */
#define CLUSTER_SCAN_S 1.0 /* neighbour table and unanswered flows */
#define CLUSTER_SLOW_REPEATS 3
#define CLUSTER_SLOW_MS 1000

/* Owned by struct core. */
struct core_cluster {
	struct cluster *cl;	  /* NULL: no cluster block running */
	struct conf_cluster conf; /* what cl was opened for */
	int cluster_ifindex;
	uint8_t peer_mac[CLUSTER_PEERS_MAX][6];
	bool peer_known[CLUSTER_PEERS_MAX];
	uint64_t probe_errors;
	ev_timer beat, scan;
	struct log_ratelimit slow_rl, probe_rl;
};

static void mac_fmt(const uint8_t *m, char *buf, size_t len)
{
	snprintf(buf, len, "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
}

/* Look the peers up in the neighbour table; ask the kernel to resolve the
 * ones it does not know. Logs every change. */
static void refresh_peers(struct core_cluster *cc)
{
	struct util_addr addrs[CLUSTER_PEERS_MAX];
	uint8_t macs[CLUSTER_PEERS_MAX][6];
	bool found[CLUSTER_PEERS_MAX];
	uint64_t now = util_now_ms();
	char err[VIP_ERRLEN];

	for (size_t i = 0; i < cc->conf.npeers; i++)
		addrs[i] = cc->conf.peers[i].addr;
	if (vip_neigh_macs(cc->cluster_ifindex, addrs, cc->conf.npeers, macs, found, err,
			   sizeof(err)) < 0) {
		log_ratelimited(&cc->probe_rl, now, 1, LOGL_WARNING, "cluster: %s", err);
		return;
	}
	for (size_t i = 0; i < cc->conf.npeers; i++) {
		const struct conf_cluster_peer *p = &cc->conf.peers[i];
		char a[UTIL_ADDR_STRLEN], m[24];

		util_addr_fmt_host(&p->addr, a, sizeof(a));
		if (found[i] && (!cc->peer_known[i] || memcmp(macs[i], cc->peer_mac[i], 6) != 0)) {
			mac_fmt(macs[i], m, sizeof(m));
			log_notice("cluster: peer %s %s is at %s", p->name, a, m);
			memcpy(cc->peer_mac[i], macs[i], 6);
			cc->peer_known[i] = true;
			cluster_set_peer(cc->cl, i, macs[i]);
		} else if (!found[i] && cc->peer_known[i]) {
			log_warn(
			    "cluster: peer %s %s left the neighbour table: not forwarding to it "
			    "until it is resolved again",
			    p->name, a);
			cc->peer_known[i] = false;
			cluster_set_peer(cc->cl, i, NULL);
		}
		if (!found[i] &&
		    vip_neigh_probe(cc->cluster_ifindex, &p->addr, err, sizeof(err)) < 0) {
			cc->probe_errors++;
			log_ratelimited(&cc->probe_rl, now, 1, LOGL_WARNING,
					"cluster: peer %s %s: %s", p->name, a, err);
		}
	}
}

static void report_slow(struct core_cluster *cc)
{
	struct cluster_slow_flow f[16];
	size_t n = cluster_slow_flows(cc->cl, CLUSTER_SLOW_REPEATS, CLUSTER_SLOW_MS, f, 16);
	uint64_t now = util_now_ms();

	for (size_t i = 0; i < n; i++) {
		char s[UTIL_ADDR_STRLEN], d[UTIL_ADDR_STRLEN];

		log_ratelimited(
		    &cc->slow_rl, now, 1, LOGL_WARNING,
		    "cluster: no node owns flow %s -> %s: its client repeated a segment "
		    "%u times in %llums (%u packets forwarded)",
		    util_addr_fmt(&f[i].src, s, sizeof(s)), util_addr_fmt(&f[i].dst, d, sizeof(d)),
		    f[i].repeats, (unsigned long long)f[i].repeating_ms, f[i].packets);
	}
}

static void on_beat(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct core_cluster *cc = w->data;

	(void)loop;
	(void)revents;
	cluster_heartbeat(cc->cl);
}

static void on_scan(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct core_cluster *cc = w->data;

	(void)loop;
	(void)revents;
	refresh_peers(cc);
	report_slow(cc);
}

/* Fill one interface of the setup from the kernel. */
static int setup_if(const struct conf *nc, const char *name, const struct conf_where *w,
		    struct cluster_if *out, char *err, size_t len)
{
	char e[VIP_ERRLEN];

	util_strlcpy(out->name, name, sizeof(out->name));
	if (vip_ifindex(name, &out->ifindex, e, sizeof(e)) < 0 ||
	    vip_link_hwaddr(out->ifindex, out->mac, e, sizeof(e)) < 0) {
		snprintf(err, len, "%s:%u:%u: error: cluster: %s", nc->file, w->line, w->col, e);
		return -1;
	}
	return 0;
}

/* Everything the kernel must agree with before anything is attached. */
static int build_setup(const struct conf *nc, struct cluster_setup *s, char *err, size_t len)
{
	const struct conf_cluster *cf = &nc->cluster;

	memset(s, 0, sizeof(*s));
	if (setup_if(nc, cf->interface, &cf->interface_where, &s->cluster, err, len) < 0)
		return -1;
	for (size_t i = 0; i < cf->nuplinks; i++)
		if (setup_if(nc, cf->uplinks[i], &cf->uplink_where[i], &s->uplinks[i], err, len) <
		    0)
			return -1;
	s->nuplinks = cf->nuplinks;
	for (size_t i = 0; i < cf->npeers; i++) {
		const struct conf_cluster_peer *p = &cf->peers[i];
		char e[VIP_ERRLEN], a[UTIL_ADDR_STRLEN];
		bool on = false;

		if (vip_addr_on_subnet(s->cluster.ifindex, &p->addr, &on, e, sizeof(e)) < 0) {
			snprintf(err, len, "%s:%u:%u: error: cluster: %s", nc->file, p->where.line,
				 p->where.col, e);
			return -1;
		}
		if (!on) {
			snprintf(
			    err, len,
			    "%s:%u:%u: error: cluster: peer %s %s is not on a subnet of %s (the "
			    "peers share the cluster interface's segment)",
			    nc->file, p->where.line, p->where.col, p->name,
			    util_addr_fmt_host(&p->addr, a, sizeof(a)), cf->interface);
			return -1;
		}
	}
	s->npeers = cf->npeers;
	s->attach = cf->attach == CONF_CLUSTER_ATTACH_TCX  ? CLUSTER_ATTACH_TCX
		    : cf->attach == CONF_CLUSTER_ATTACH_TC ? CLUSTER_ATTACH_TC
							   : CLUSTER_ATTACH_AUTO;
	return 0;
}

/* The listening addresses of nc, for the served map. Caller frees. */
static struct util_addr *served_of(const struct conf *nc, size_t *n)
{
	struct util_addr *a;
	size_t k = 0;

	for (size_t i = 0; i < nc->nlistens; i++)
		k += nc->listens[i].nbinds;
	a = calloc(k ? k : 1, sizeof(*a));
	if (a == NULL)
		return NULL;
	k = 0;
	for (size_t i = 0; i < nc->nlistens; i++)
		for (size_t b = 0; b < nc->listens[i].nbinds; b++)
			a[k++] = nc->listens[i].binds[b];
	*n = k;
	return a;
}

/* Same block, whatever lines it moved to? */
static bool same_block(const struct conf_cluster *a, const struct conf_cluster *b)
{
	if (strcmp(a->interface, b->interface) != 0 || a->nuplinks != b->nuplinks ||
	    a->npeers != b->npeers || a->attach != b->attach)
		return false;
	for (size_t i = 0; i < a->nuplinks; i++)
		if (strcmp(a->uplinks[i], b->uplinks[i]) != 0)
			return false;
	for (size_t i = 0; i < a->npeers; i++)
		if (strcmp(a->peers[i].name, b->peers[i].name) != 0 ||
		    !util_addr_equal(&a->peers[i].addr, &b->peers[i].addr))
			return false;
	return true;
}

/* Stop the running program; successor as cluster_close()'s. */
static void stop_running(struct core *c, const struct cluster *successor)
{
	struct core_cluster *cc = c->cluster;

	ev_timer_stop(c->loop, &cc->beat);
	ev_timer_stop(c->loop, &cc->scan);
	cluster_close(cc->cl, successor);
	cc->cl = NULL;
	memset(cc->peer_known, 0, sizeof(cc->peer_known));
}

/* A reload's cluster half between prepare and commit: what the commit
 * does, with everything that can fail done already. Nothing in it is
 * visible to a packet: a new program is loaded and its maps are filled,
 * but it is attached nowhere. Owned by the caller of core_cluster_prepare()
 * until commit or rollback. */
enum core_cluster_op {
	CORE_CLUSTER_NONE,    /* no block before or after */
	CORE_CLUSTER_REMOVE,  /* the block goes: detach at commit */
	CORE_CLUSTER_KEEP,    /* the same block: only the served addresses change */
	CORE_CLUSTER_REPLACE, /* a new or changed block: cl takes over at commit */
};

struct core_cluster_txn {
	enum core_cluster_op op;
	struct cluster *cl;	  /* REPLACE: loaded, not attached */
	struct conf_cluster conf; /* the block being applied */
	struct util_addr *served; /* KEEP, REPLACE: the new listening addresses */
	size_t nserved;
	int cluster_ifindex;
};

static struct core_cluster *cluster_state(struct core *c, char *err, size_t len)
{
	struct core_cluster *cc = c->cluster;

	if (cc != NULL)
		return cc;
	cc = c->cluster = calloc(1, sizeof(*cc));
	if (cc == NULL) {
		snprintf(err, len, "out of memory");
		return NULL;
	}
	ev_timer_init(&cc->beat, on_beat, CLUSTER_BEAT_S, CLUSTER_BEAT_S);
	ev_timer_init(&cc->scan, on_scan, CLUSTER_SCAN_S, CLUSTER_SCAN_S);
	cc->beat.data = cc->scan.data = cc;
	return cc;
}

/* The new program for nc's block (serving t->served), loaded beside the
 * running one into t->cl. */
static int prepare_replace(struct core *c, const struct conf *nc, struct core_cluster_txn *t,
			   char *err, size_t len)
{
	struct cluster_setup s;

	if (build_setup(nc, &s, err, len) < 0)
		return -1;
	if (!c->bpf_allowed) {
		snprintf(
		    err, len,
		    "%s:%u:%u: error: cluster: needs CAP_BPF, which was dropped at start "
		    "because the configuration had no cluster block (restart sluice to add one)",
		    nc->file, nc->cluster.where.line, nc->cluster.where.col);
		return -1;
	}
	s.served = t->served;
	s.nserved = t->nserved;
	s.takeover = c->takeover_path != NULL && c->cluster->cl == NULL;
	t->cl = cluster_load(&s, err, len);
	if (t->cl == NULL) {
		char e[CLUSTER_ERRLEN];

		/* make the message name the block */
		util_strlcpy(e, err, sizeof(e));
		snprintf(err, len, "%s:%u:%u: error: %s", nc->file, nc->cluster.where.line,
			 nc->cluster.where.col, e);
		return -1;
	}
	t->cluster_ifindex = s.cluster.ifindex;
	return 0;
}

struct core_cluster_txn *core_cluster_prepare(struct core *c, const struct conf *nc, char *err,
					      size_t len)
{
	struct core_cluster *cc = cluster_state(c, err, len);
	struct core_cluster_txn *t;

	if (cc == NULL)
		return NULL;
	t = calloc(1, sizeof(*t));
	if (t == NULL) {
		snprintf(err, len, "out of memory");
		return NULL;
	}
	t->conf = nc->cluster;
	if (!nc->cluster.present) {
		t->op = cc->cl != NULL ? CORE_CLUSTER_REMOVE : CORE_CLUSTER_NONE;
		return t;
	}
	t->op = cc->cl != NULL && same_block(&cc->conf, &nc->cluster) ? CORE_CLUSTER_KEEP
								      : CORE_CLUSTER_REPLACE;
	t->served = served_of(nc, &t->nserved);
	if (t->served == NULL) {
		snprintf(err, len, "cluster: out of memory");
	} else if (t->nserved > CLUSTER_SERVED_MAX) {
		snprintf(err, len, "%s:%u:%u: error: cluster: %zu listening addresses (at most %d)",
			 nc->file, nc->cluster.where.line, nc->cluster.where.col, t->nserved,
			 CLUSTER_SERVED_MAX);
	} else if (t->op == CORE_CLUSTER_KEEP || prepare_replace(c, nc, t, err, len) == 0) {
		return t;
	}
	core_cluster_rollback(c, t);
	return NULL;
}

bool core_cluster_stacks(const struct core_cluster_txn *t)
{
	return t->cl != NULL && strcmp(cluster_attach_name(t->cl), "tcx") == 0;
}

void core_cluster_rollback(struct core *c, struct core_cluster_txn *t)
{
	/* the running program was never touched; t->cl was never attached */
	(void)c;
	cluster_close(t->cl, NULL);
	free(t->served);
	free(t);
}

/* Put the new program in place of the running one (attached before the
 * old one leaves: tcx links stack, a tc filter is replaced under the same
 * handle). */
static int commit_replace(struct core *c, struct core_cluster_txn *t, char *err, size_t len)
{
	struct core_cluster *cc = c->cluster;
	char e[CLUSTER_ERRLEN];

	if (cluster_attach(t->cl, cc->cl, err, len) < 0) {
		/* the running program (if any) stays as it was, but serves
		 * the listening addresses that are live now */
		if (cc->cl != NULL &&
		    cluster_set_served(cc->cl, t->served, t->nserved, e, sizeof(e)) < 0)
			log_err("cluster: %s", e);
		return -1;
	}
	if (cc->cl != NULL)
		stop_running(c, t->cl);
	cc->cl = t->cl;
	t->cl = NULL;
	cc->conf = t->conf;
	cc->cluster_ifindex = t->cluster_ifindex;
	log_notice("cluster: attached (%s) to %s and %zu uplink(s), %zu peer(s)",
		   cluster_attach_name(cc->cl), cc->conf.interface, cc->conf.nuplinks,
		   cc->conf.npeers);
	refresh_peers(cc);
	ev_timer_start(c->loop, &cc->scan);
	if (strcmp(cluster_attach_name(cc->cl), "tc") == 0)
		ev_timer_start(c->loop, &cc->beat);
	return 0;
}

int core_cluster_commit(struct core *c, struct core_cluster_txn *t, char *err, size_t len)
{
	struct core_cluster *cc = c->cluster;
	int rc = 0;

	switch (t->op) {
	case CORE_CLUSTER_NONE:
		break;
	case CORE_CLUSTER_REMOVE:
		log_notice("cluster: removed by the configuration: programs detached");
		stop_running(c, NULL);
		break;
	case CORE_CLUSTER_KEEP:
		cc->conf = t->conf;
		rc = cluster_set_served(cc->cl, t->served, t->nserved, err, len);
		break;
	case CORE_CLUSTER_REPLACE:
		rc = commit_replace(c, t, err, len);
		break;
	}
	core_cluster_rollback(c, t);
	return rc;
}

void core_cluster_diff(const struct conf *oc, const struct conf *nc, char *buf, size_t len,
		       size_t *off)
{
	const struct conf_cluster *o = &oc->cluster, *n = &nc->cluster;

	if (!o->present && n->present)
		util_bufprintf(buf, len, off,
			       "cluster: added (attaches the program to %s and %zu uplink(s))\n",
			       n->interface, n->nuplinks);
	else if (o->present && !n->present)
		util_bufprintf(buf, len, off, "cluster: removed (detaches the program)\n");
	else if (o->present && !same_block(o, n))
		util_bufprintf(buf, len, off,
			       "cluster: changed (a new program replaces the running one)\n");
}

void core_cluster_free(struct core *c)
{
	if (c->cluster == NULL)
		return;
	if (c->cluster->cl != NULL) {
		/* after a takeover the new process's tc filter sits under our
		 * handle: leave it (our tcx links go with our descriptors) */
		stop_running(c, c->handing_over ? c->cluster->cl : NULL);
		log_notice(c->handing_over ? "cluster: handed over" : "cluster: programs detached");
	}
	free(c->cluster);
	c->cluster = NULL;
}

/* ---- control socket and metrics ---- */

static bool running(const struct core *c, struct cluster_stats *st)
{
	return c->cluster != NULL && c->cluster->cl != NULL &&
	       cluster_stats(c->cluster->cl, st) == 0;
}

static void show_json(const struct core_cluster *cc, const struct cluster_stats *st,
		      struct ctl_buf *out)
{
	ctl_buf_printf(out, "{\"attached\":\"%s\",\"prog_id\":%u,\"interface\":",
		       cluster_attach_name(cc->cl), cluster_prog_id(cc->cl));
	ctl_json_str(out, cc->conf.interface); /* Linux allows '"' in a name */
	ctl_buf_printf(out,
		       ",\"passed\":{\"syn\":%llu,"
		       "\"socket\":%llu,\"cookie\":%llu,\"reinjected\":%llu,\"inactive\":%llu,"
		       "\"no_peer\":%llu,\"malformed\":%llu},\"forwarded\":%llu,\"delivered\":%llu,"
		       "\"dropped\":{\"no_owner\":%llu,\"not_peer\":%llu,\"malformed\":%llu},"
		       "\"peers\":[",
		       (unsigned long long)st->pass_syn, (unsigned long long)st->pass_socket,
		       (unsigned long long)st->pass_cookie, (unsigned long long)st->pass_reinjected,
		       (unsigned long long)st->pass_inactive, (unsigned long long)st->pass_no_peer,
		       (unsigned long long)st->pass_malformed, (unsigned long long)st->forwarded,
		       (unsigned long long)st->delivered, (unsigned long long)st->drop_no_owner,
		       (unsigned long long)st->drop_not_peer,
		       (unsigned long long)st->drop_malformed);
	for (size_t i = 0; i < cc->conf.npeers; i++) {
		char a[UTIL_ADDR_STRLEN], m[24] = "";

		if (cc->peer_known[i])
			mac_fmt(cc->peer_mac[i], m, sizeof(m));
		ctl_buf_printf(out,
			       "%s{\"name\":\"%s\",\"address\":\"%s\",\"mac\":\"%s\","
			       "\"forwarded\":%llu,\"delivered\":%llu}",
			       i ? "," : "", cc->conf.peers[i].name,
			       util_addr_fmt_host(&cc->conf.peers[i].addr, a, sizeof(a)), m,
			       (unsigned long long)st->peer_forwarded[i],
			       (unsigned long long)st->peer_delivered[i]);
	}
	ctl_buf_printf(out, "]}");
}

static void show_text(const struct core_cluster *cc, const struct cluster_stats *st,
		      struct ctl_buf *out)
{
	ctl_buf_printf(out, "cluster: attached (%s), interface %s, uplinks",
		       cluster_attach_name(cc->cl), cc->conf.interface);
	for (size_t i = 0; i < cc->conf.nuplinks; i++)
		ctl_buf_printf(out, " %s", cc->conf.uplinks[i]);
	ctl_buf_printf(out,
		       "\n  passed: syn %llu, socket %llu, cookie %llu, from peers %llu, inactive "
		       "%llu, no peer %llu, malformed %llu\n"
		       "  forwarded %llu, delivered from peers %llu\n"
		       "  dropped: no owner %llu, not from a peer %llu, malformed %llu\n",
		       (unsigned long long)st->pass_syn, (unsigned long long)st->pass_socket,
		       (unsigned long long)st->pass_cookie, (unsigned long long)st->pass_reinjected,
		       (unsigned long long)st->pass_inactive, (unsigned long long)st->pass_no_peer,
		       (unsigned long long)st->pass_malformed, (unsigned long long)st->forwarded,
		       (unsigned long long)st->delivered, (unsigned long long)st->drop_no_owner,
		       (unsigned long long)st->drop_not_peer,
		       (unsigned long long)st->drop_malformed);
	for (size_t i = 0; i < cc->conf.npeers; i++) {
		char a[UTIL_ADDR_STRLEN], m[24] = "unresolved";

		if (cc->peer_known[i])
			mac_fmt(cc->peer_mac[i], m, sizeof(m));
		ctl_buf_printf(out, "  peer %s %s (%s): forwarded %llu, delivered %llu\n",
			       cc->conf.peers[i].name,
			       util_addr_fmt_host(&cc->conf.peers[i].addr, a, sizeof(a)), m,
			       (unsigned long long)st->peer_forwarded[i],
			       (unsigned long long)st->peer_delivered[i]);
	}
}

void core_cluster_show(void *arg, bool json, struct ctl_buf *out)
{
	struct core *c = arg;
	struct cluster_stats st;

	if (!running(c, &st)) {
		ctl_buf_printf(out, json ? "{\"cluster\":null}\n\n" : "no cluster configured\n\n");
		return;
	}
	if (json) {
		ctl_buf_printf(out, "{\"cluster\":");
		show_json(c->cluster, &st, out);
		ctl_buf_printf(out, "}\n\n");
	} else {
		show_text(c->cluster, &st, out);
		ctl_buf_printf(out, "\n");
	}
}

void core_cluster_metrics(void *arg, struct ctl_buf *out)
{
	struct core *c = arg;
	struct core_cluster *cc = c->cluster;
	struct cluster_stats st;

	if (!running(c, &st))
		return;
	const struct {
		const char *reason;
		uint64_t v;
	} passed[] = {{"syn", st.pass_syn},
		      {"socket", st.pass_socket},
		      {"cookie", st.pass_cookie},
		      {"from-peer", st.pass_reinjected},
		      {"inactive", st.pass_inactive},
		      {"no-peer", st.pass_no_peer},
		      {"malformed", st.pass_malformed}};

	ctl_buf_printf(out, "# HELP sluice_cluster_passed_total TCP packets to served addresses "
			    "the uplink program let through, by reason\n"
			    "# TYPE sluice_cluster_passed_total counter\n");
	for (size_t i = 0; i < sizeof(passed) / sizeof(passed[0]); i++)
		ctl_buf_printf(out, "sluice_cluster_passed_total{reason=\"%s\"} %llu\n",
			       passed[i].reason, (unsigned long long)passed[i].v);
	ctl_buf_printf(out,
		       "# HELP sluice_cluster_forwarded_total Packets of flows without a "
		       "local socket sent to the peers\n"
		       "# TYPE sluice_cluster_forwarded_total counter\n"
		       "sluice_cluster_forwarded_total %llu\n"
		       "# HELP sluice_cluster_peer_forwarded_total Copies sent to each peer\n"
		       "# TYPE sluice_cluster_peer_forwarded_total counter\n",
		       (unsigned long long)st.forwarded);
	for (size_t i = 0; i < cc->conf.npeers; i++)
		ctl_buf_printf(out, "sluice_cluster_peer_forwarded_total{peer=\"%s\"} %llu\n",
			       cc->conf.peers[i].name, (unsigned long long)st.peer_forwarded[i]);
	ctl_buf_printf(out, "# HELP sluice_cluster_delivered_total Packets from each peer "
			    "delivered to a local socket\n"
			    "# TYPE sluice_cluster_delivered_total counter\n");
	for (size_t i = 0; i < cc->conf.npeers; i++)
		ctl_buf_printf(out, "sluice_cluster_delivered_total{peer=\"%s\"} %llu\n",
			       cc->conf.peers[i].name, (unsigned long long)st.peer_delivered[i]);
	ctl_buf_printf(
	    out,
	    "# HELP sluice_cluster_dropped_total Forwarded packets received and dropped, "
	    "by reason\n"
	    "# TYPE sluice_cluster_dropped_total counter\n"
	    "sluice_cluster_dropped_total{reason=\"no-owner\"} %llu\n"
	    "sluice_cluster_dropped_total{reason=\"not-peer\"} %llu\n"
	    "sluice_cluster_dropped_total{reason=\"malformed\"} %llu\n",
	    (unsigned long long)st.drop_no_owner, (unsigned long long)st.drop_not_peer,
	    (unsigned long long)st.drop_malformed);
}
