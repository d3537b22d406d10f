/* cluster: loads the second-chance program (bpf/cluster.bpf.c, embedded as
 * a bpftool skeleton), attaches it and keeps its maps current. Called by
 * core from the control thread only, in two steps so that a reload can be
 * a transaction: cluster_load() (the program verified and its maps filled:
 * nothing any packet sees) and cluster_attach(). Invariant: a struct
 * cluster is loaded, and either fully attached or not at all;
 * cluster_attach() undoes a partial attach before it fails. */
#include <errno.h>
#include <net/if.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "bpf/cluster_abi.h"
#include "cluster.skel.h"
#include "sluice/cluster.h"
#include "sluice/log.h"
#include "sluice/util.h"

/* tcx attach types, defined by hand: Debian's libbpf 1.1 headers predate
 * them (kernel 6.6), and bpf_link_create() passes them through. */
#define CLUSTER_BPF_TCX_INGRESS 46

/* Our cls_bpf filter in tc mode: a fixed handle and priority, so that a
 * filter a crashed sluice left behind is found and removed at start. */
#define CLUSTER_TC_HANDLE 0x5c1u
#define CLUSTER_TC_PRIO 0x5c1u
/* tc mode: the program passes everything once the heartbeat is older than
 * this; long enough for a reload that waits 2 s for DNS */
#define CLUSTER_STALE_NS (3ull * 1000 * 1000 * 1000)

#define CLUSTER_MAX_ATTACH (CLUSTER_UPLINKS_MAX + 1)

struct cluster_att {
	int ifindex;
	char name[16];
	int link_fd; /* tcx: the link; -1 in tc mode */
};

_Static_assert(CLUSTER_SERVED_MAX == CLUSTER_MAX_SERVED, "cluster-t.h and the BPF map agree");

/* Owned by core (cluster_glue.c). */
struct cluster {
	struct cluster_bpf *skel;
	struct cluster_setup setup; /* what it was loaded for (served: NULL) */
	enum cluster_attach mode;   /* TCX or TC: decided by cluster_load() */
	struct cluster_att att[CLUSTER_MAX_ATTACH];
	size_t natt;
	size_t npeers;
	struct cluster_served *served; /* what the served map holds */
	size_t nserved;
};

/* The last lines libbpf printed (verifier log, errors), for err. */
static char libbpf_tail[512];

static int on_libbpf_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	char line[256];
	size_t n, have;

	if (level == LIBBPF_DEBUG)
		return 0;
	vsnprintf(line, sizeof(line), fmt, ap);
	if (strncmp(line, "libbpf: ", 8) == 0) /* our message says libbpf already */
		memmove(line, line + 8, strlen(line + 8) + 1);
	n = strlen(line);
	while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == ' '))
		line[--n] = '\0';
	if (n == 0)
		return 0;
	have = strlen(libbpf_tail);
	if (have + n + 3 >= sizeof(libbpf_tail)) {
		/* keep the end: that is where the verifier says why */
		memmove(libbpf_tail, libbpf_tail + have / 2, have - have / 2 + 1);
		have = strlen(libbpf_tail);
	}
	snprintf(libbpf_tail + have, sizeof(libbpf_tail) - have, "%s%s", have ? "; " : "", line);
	return 0;
}

static void fail(char *err, size_t errlen, const char *what, int e)
{
	snprintf(err, errlen, "%s: %s%s%s", what, strerror(e), libbpf_tail[0] ? " (libbpf: " : "",
		 libbpf_tail[0] ? libbpf_tail : "");
	if (libbpf_tail[0])
		util_strlcpy(err + strlen(err), ")", errlen - strlen(err));
}

/* Remove our filter from ifindex's clsact ingress, if a crashed sluice left
 * one. Returns true when there was one. */
static bool tc_remove(int ifindex)
{
	DECLARE_LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = BPF_TC_INGRESS);
	DECLARE_LIBBPF_OPTS(bpf_tc_opts, opts, .handle = CLUSTER_TC_HANDLE,
			    .priority = CLUSTER_TC_PRIO);
	size_t had = strlen(libbpf_tail);
	bool removed = bpf_tc_detach(&hook, &opts) == 0;

	/* nothing there is the usual answer ("Parent Qdisc doesn't
	 * exists"): not a reason to give in a later error */
	libbpf_tail[had] = '\0';
	return removed;
}

static int tc_attach(int prog_fd, int ifindex)
{
	DECLARE_LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = BPF_TC_INGRESS);
	DECLARE_LIBBPF_OPTS(bpf_tc_opts, opts, .handle = CLUSTER_TC_HANDLE,
			    .priority = CLUSTER_TC_PRIO, .prog_fd = prog_fd,
			    .flags = BPF_TC_F_REPLACE);
	int rc = bpf_tc_hook_create(&hook);

	if (rc < 0 && rc != -EEXIST)
		return rc;
	return bpf_tc_attach(&hook, &opts);
}

/* Is ifindex under a tc filter of successor (which then holds our handle
 * there)? */
static bool tc_taken(const struct cluster *successor, int ifindex)
{
	if (successor == NULL || successor->mode != CLUSTER_ATTACH_TC)
		return false;
	for (size_t i = 0; i < successor->natt; i++)
		if (successor->att[i].ifindex == ifindex)
			return true;
	return false;
}

static void detach_all(struct cluster *c, const struct cluster *successor)
{
	for (size_t i = 0; i < c->natt; i++) {
		if (c->att[i].link_fd >= 0) {
			/* closing the only reference destroys a tcx link */
			close(c->att[i].link_fd);
			c->att[i].link_fd = -1;
		} else if (!tc_taken(successor, c->att[i].ifindex)) {
			tc_remove(c->att[i].ifindex);
		}
	}
	c->natt = 0;
}

static int attach_one(struct cluster *c, const struct cluster *pred, bool takeover, int prog_fd,
		      int ifindex, const char *name, char *err, size_t errlen)
{
	struct cluster_att *a = &c->att[c->natt];
	char what[64];
	int fd;

	/* a running predecessor's filter (ours, or the old process's in a
	 * binary upgrade) is replaced in place, not removed */
	if (!takeover && !tc_taken(pred, ifindex) && tc_remove(ifindex))
		log_warn("cluster: removed a stale sluice tc filter from %s (left by a sluice that "
			 "did not exit cleanly)",
			 name);
	a->ifindex = ifindex;
	a->link_fd = -1;
	util_strlcpy(a->name, name, sizeof(a->name));
	if (c->mode == CLUSTER_ATTACH_TCX) {
		fd = bpf_link_create(prog_fd, ifindex,
				     (enum bpf_attach_type)CLUSTER_BPF_TCX_INGRESS, NULL);
		if (fd < 0) {
			snprintf(what, sizeof(what), "attach to %s (tcx)", name);
			fail(err, errlen, what, errno);
			return -1;
		}
		a->link_fd = fd;
		c->natt++;
		return 0;
	}
	fd = tc_attach(prog_fd, ifindex);
	if (fd < 0) {
		snprintf(what, sizeof(what), "attach to %s (tc clsact)", name);
		fail(err, errlen, what, -fd);
		return -1;
	}
	c->natt++;
	return 0;
}

/* Does this kernel have tcx links (6.6+)? Asked without attaching
 * anything: a tcx link to ifindex 0 is refused with ENODEV by a kernel
 * that knows the attach type and with EINVAL (or EOPNOTSUPP) by one that
 * does not. Returns 1, 0, or -1 with err for any other answer. */
static int tcx_supported(int prog_fd, char *err, size_t errlen)
{
	int fd = bpf_link_create(prog_fd, 0, (enum bpf_attach_type)CLUSTER_BPF_TCX_INGRESS, NULL);

	if (fd >= 0) { /* never: there is no interface 0 */
		close(fd);
		return 1;
	}
	if (errno == ENODEV)
		return 1;
	if (errno == EINVAL || errno == EOPNOTSUPP)
		return 0;
	fail(err, errlen, "cluster: cannot tell whether the kernel has tcx links", errno);
	return -1;
}

static int map_set(struct bpf_map *m, const void *key, const void *val)
{
	return bpf_map__update_elem(m, key, bpf_map__key_size(m), val, bpf_map__value_size(m),
				    BPF_ANY);
}

/* Fill the maps; stale_ns as cluster_cfg's (0 for tcx). */
static int fill_maps(struct cluster *c, const struct cluster_setup *s, uint64_t stale_ns, char *err,
		     size_t errlen)
{
	struct cluster_cfg cfg;
	struct cluster_iface ifc;
	uint32_t zero = 0;

	memset(&cfg, 0, sizeof(cfg));
	cfg.cluster_ifindex = (uint32_t)s->cluster.ifindex;
	memcpy(cfg.cluster_mac, s->cluster.mac, 6);
	cfg.reinject_ifindex = (uint32_t)s->uplinks[0].ifindex;
	memcpy(cfg.reinject_mac, s->uplinks[0].mac, 6);
	cfg.npeers = (uint32_t)s->npeers;
	cfg.stale_ns = stale_ns;
	if (map_set(c->skel->maps.cfg, &zero, &cfg) < 0) {
		fail(err, errlen, "cluster: configuration map", errno);
		return -1;
	}
	for (size_t i = 0; i <= s->nuplinks; i++) {
		const struct cluster_if *f = i < s->nuplinks ? &s->uplinks[i] : &s->cluster;
		uint32_t key = (uint32_t)f->ifindex;

		memset(&ifc, 0, sizeof(ifc));
		if (bpf_map__lookup_elem(c->skel->maps.ifaces, &key, sizeof(key), &ifc, sizeof(ifc),
					 0) < 0)
			memset(&ifc, 0, sizeof(ifc));
		ifc.role |= i < s->nuplinks ? CLUSTER_ROLE_UPLINK : CLUSTER_ROLE_CLUSTER;
		memcpy(ifc.mac, f->mac, 6);
		if (map_set(c->skel->maps.ifaces, &key, &ifc) < 0) {
			fail(err, errlen, "cluster: interface map", errno);
			return -1;
		}
	}
	cluster_heartbeat(c);
	return 0;
}

/* Is the program already attached on ifindex by this call? */
static bool attached(const struct cluster *c, int ifindex)
{
	for (size_t i = 0; i < c->natt; i++)
		if (c->att[i].ifindex == ifindex)
			return true;
	return false;
}

/* Undo a failed attach: where a predecessor's tc filter was replaced, put
 * its program back. */
static void undo(struct cluster *c, const struct cluster *pred)
{
	for (size_t i = 0; i < c->natt; i++) {
		if (c->att[i].link_fd >= 0) {
			close(c->att[i].link_fd);
			c->att[i].link_fd = -1;
		} else if (tc_taken(pred, c->att[i].ifindex)) {
			tc_attach(bpf_program__fd(pred->skel->progs.sluice_cluster),
				  c->att[i].ifindex);
		} else {
			tc_remove(c->att[i].ifindex);
		}
	}
	c->natt = 0;
}

/* How the program will be attached: tcx where the kernel has it (auto). */
static int resolve_mode(struct cluster *c, enum cluster_attach want, char *err, size_t errlen)
{
	int tcx;

	if (want == CLUSTER_ATTACH_TC) {
		c->mode = CLUSTER_ATTACH_TC;
		return 0;
	}
	tcx = tcx_supported(bpf_program__fd(c->skel->progs.sluice_cluster), err, errlen);
	if (tcx < 0)
		return -1;
	if (tcx == 0 && want == CLUSTER_ATTACH_TCX) {
		snprintf(err, errlen,
			 "cluster: attach tcx: this kernel has no tcx links (6.6 or "
			 "later; attach tc works everywhere)");
		return -1;
	}
	c->mode = tcx ? CLUSTER_ATTACH_TCX : CLUSTER_ATTACH_TC;
	return 0;
}

struct cluster *cluster_load(const struct cluster_setup *s, char *err, size_t errlen)
{
	struct cluster *c;

	if (s->nuplinks == 0 || s->nuplinks > CLUSTER_UPLINKS_MAX ||
	    s->npeers > CLUSTER_PEERS_MAX) {
		snprintf(err, errlen, "cluster: %zu uplinks and %zu peers (1-%d and 0-%d)",
			 s->nuplinks, s->npeers, CLUSTER_UPLINKS_MAX, CLUSTER_PEERS_MAX);
		return NULL;
	}
	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		snprintf(err, errlen, "cluster: out of memory");
		return NULL;
	}
	c->setup = *s;
	c->setup.served = NULL;
	c->setup.nserved = 0;
	c->npeers = s->npeers;
	libbpf_tail[0] = '\0';
	libbpf_set_print(on_libbpf_print);
	c->skel = cluster_bpf__open();
	if (c->skel == NULL) {
		fail(err, errlen, "cluster: cannot open the BPF object", errno);
		goto out;
	}
	if (cluster_bpf__load(c->skel) < 0) {
		fail(err, errlen,
		     "cluster: cannot load the BPF program (needs CAP_BPF and "
		     "CAP_NET_ADMIN)",
		     errno);
		goto out;
	}
	/* the maps before the attach, so that the program acts on its first
	 * packet; tc mode watches the heartbeat, tcx links die with us */
	if (resolve_mode(c, s->attach, err, errlen) < 0 ||
	    fill_maps(c, s, c->mode == CLUSTER_ATTACH_TC ? CLUSTER_STALE_NS : 0, err, errlen) < 0 ||
	    cluster_set_served(c, s->served, s->nserved, err, errlen) < 0)
		goto out;
	return c;
out:
	cluster_close(c, NULL);
	return NULL;
}

int cluster_attach(struct cluster *c, const struct cluster *pred, char *err, size_t errlen)
{
	const struct cluster_setup *s = &c->setup;
	int prog_fd = bpf_program__fd(c->skel->progs.sluice_cluster);

	if (c->natt > 0)
		return 0;
	libbpf_tail[0] = '\0';
	for (size_t i = 0; i <= s->nuplinks; i++) {
		const struct cluster_if *f = i < s->nuplinks ? &s->uplinks[i] : &s->cluster;

		if (attached(c, f->ifindex))
			continue;
		/* tests: the kernel refuses a replacement half-way (make FAULT=1) */
		if (c->natt == 1 && pred != NULL && UTIL_FAULT("cluster_replace")) {
			snprintf(err, errlen, "attach to %s: injected failure (cluster_replace)",
				 f->name);
			undo(c, pred);
			return -1;
		}
		if (attach_one(c, pred, s->takeover, prog_fd, f->ifindex, f->name, err, errlen) <
		    0) {
			undo(c, pred);
			return -1;
		}
	}
	cluster_heartbeat(c);
	return 0;
}

struct cluster *cluster_open(const struct cluster_setup *s, const struct cluster *pred, char *err,
			     size_t errlen)
{
	struct cluster *c = cluster_load(s, err, errlen);

	if (c != NULL && cluster_attach(c, pred, err, errlen) < 0) {
		cluster_close(c, NULL);
		return NULL;
	}
	return c;
}

void cluster_close(struct cluster *c, const struct cluster *successor)
{
	if (c == NULL)
		return;
	detach_all(c, successor);
	cluster_bpf__destroy(c->skel);
	free(c->served);
	free(c);
}

const char *cluster_attach_name(const struct cluster *c)
{
	return c->mode == CLUSTER_ATTACH_TC ? "tc" : "tcx";
}

static void served_key(const struct util_addr *a, struct cluster_served *k)
{
	memset(k, 0, sizeof(*k));
	if (a->u.sa.sa_family == AF_INET) {
		k->family = 4;
		k->port = a->u.in4.sin_port;
		memcpy(k->addr, &a->u.in4.sin_addr, 4);
	} else {
		k->family = 6;
		k->port = a->u.in6.sin6_port;
		memcpy(k->addr, &a->u.in6.sin6_addr, 16);
	}
}

static bool served_has(const struct cluster_served *set, size_t n, const struct cluster_served *k)
{
	for (size_t i = 0; i < n; i++)
		if (memcmp(&set[i], k, sizeof(*k)) == 0)
			return true;
	return false;
}

int cluster_set_served(struct cluster *c, const struct util_addr *addrs, size_t n, char *err,
		       size_t errlen)
{
	struct cluster_served *next;
	size_t nn = 0;
	uint8_t one = 1;

	if (n > CLUSTER_MAX_SERVED) {
		snprintf(err, errlen, "cluster: %zu listening addresses (at most %d)", n,
			 CLUSTER_MAX_SERVED);
		return -1;
	}
	next = calloc(n ? n : 1, sizeof(*next));
	if (next == NULL) {
		snprintf(err, errlen, "cluster: out of memory");
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		struct cluster_served k;

		served_key(&addrs[i], &k);
		if (!served_has(next, nn, &k))
			next[nn++] = k;
	}
	/* the addresses that go leave first, so that old and new together
	 * never need more room than the map has (an address kept is neither
	 * removed nor added: it never leaves the map) */
	libbpf_tail[0] = '\0';
	for (size_t i = 0; i < c->nserved; i++)
		if (!served_has(next, nn, &c->served[i]))
			bpf_map__delete_elem(c->skel->maps.served, &c->served[i],
					     sizeof(c->served[i]), 0);
	free(c->served);
	c->served = NULL;
	c->nserved = 0;
	for (size_t i = 0; i < nn; i++) {
		if (map_set(c->skel->maps.served, &next[i], &one) < 0) {
			fail(err, errlen, "cluster: served address map", errno);
			/* the map holds part of next: count all of it as
			 * there, so that the next call removes what it must
			 * (deleting an absent key does nothing) */
			c->served = next;
			c->nserved = nn;
			return -1;
		}
	}
	c->served = next;
	c->nserved = nn;
	return 0;
}

void cluster_set_peer(struct cluster *c, size_t idx, const uint8_t *mac)
{
	struct cluster_peer p;
	uint32_t key = (uint32_t)idx;

	if (idx >= c->npeers)
		return;
	memset(&p, 0, sizeof(p));
	if (mac != NULL) {
		memcpy(p.mac, mac, 6);
		p.valid = 1;
	}
	map_set(c->skel->maps.peers, &key, &p);
}

void cluster_heartbeat(struct cluster *c)
{
	struct timespec ts;
	uint32_t zero = 0;
	uint64_t now;

	if (c->mode != CLUSTER_ATTACH_TC)
		return;
	/* bpf_ktime_get_ns() is CLOCK_MONOTONIC */
	clock_gettime(CLOCK_MONOTONIC, &ts);
	now = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
	map_set(c->skel->maps.alive, &zero, &now);
}

static int sum_percpu(struct bpf_map *m, uint32_t key, uint64_t *out)
{
	int ncpu = libbpf_num_possible_cpus();
	uint64_t vals[256];

	*out = 0;
	if (ncpu <= 0 || ncpu > 256)
		return -1;
	if (bpf_map__lookup_elem(m, &key, sizeof(key), vals, sizeof(uint64_t) * (size_t)ncpu, 0) <
	    0)
		return -1;
	for (int i = 0; i < ncpu; i++)
		*out += vals[i];
	return 0;
}

int cluster_stats(const struct cluster *c, struct cluster_stats *out)
{
	uint64_t v[CLUSTER_STAT_NR];

	memset(out, 0, sizeof(*out));
	for (uint32_t i = 0; i < CLUSTER_STAT_NR; i++)
		if (sum_percpu(c->skel->maps.stats, i, &v[i]) < 0)
			return -1;
	out->pass_syn = v[CLUSTER_PASS_SYN];
	out->pass_socket = v[CLUSTER_PASS_SOCKET];
	out->pass_cookie = v[CLUSTER_PASS_COOKIE];
	out->pass_reinjected = v[CLUSTER_PASS_REINJECTED];
	out->pass_inactive = v[CLUSTER_PASS_INACTIVE];
	out->pass_no_peer = v[CLUSTER_PASS_NO_PEER];
	out->pass_malformed = v[CLUSTER_PASS_MALFORMED];
	out->forwarded = v[CLUSTER_FORWARDED];
	out->delivered = v[CLUSTER_DELIVERED];
	out->drop_no_owner = v[CLUSTER_DROP_NO_OWNER];
	out->drop_not_peer = v[CLUSTER_DROP_NOT_PEER];
	out->drop_malformed = v[CLUSTER_DROP_MALFORMED];
	for (uint32_t p = 0; p < c->npeers; p++) {
		if (sum_percpu(c->skel->maps.peer_stats,
			       p * CLUSTER_PEER_STAT_NR + CLUSTER_PEER_FORWARDED,
			       &out->peer_forwarded[p]) < 0 ||
		    sum_percpu(c->skel->maps.peer_stats,
			       p * CLUSTER_PEER_STAT_NR + CLUSTER_PEER_DELIVERED,
			       &out->peer_delivered[p]) < 0)
			return -1;
	}
	return 0;
}

static void flow_addr(uint8_t family, const uint8_t *a, uint16_t port_be, struct util_addr *out)
{
	memset(out, 0, sizeof(*out));
	if (family == 4) {
		out->u.in4.sin_family = AF_INET;
		memcpy(&out->u.in4.sin_addr, a, 4);
		out->u.in4.sin_port = port_be;
		out->len = sizeof(out->u.in4);
	} else {
		out->u.in6.sin6_family = AF_INET6;
		memcpy(&out->u.in6.sin6_addr, a, 16);
		out->u.in6.sin6_port = port_be;
		out->len = sizeof(out->u.in6);
	}
}

size_t cluster_slow_flows(struct cluster *c, uint32_t min_repeats, uint64_t min_ms,
			  struct cluster_slow_flow *out, size_t max)
{
	struct bpf_map *m = c->skel->maps.slow;
	struct cluster_flow_key key, next;
	struct cluster_flow_val val;
	struct timespec ts;
	uint64_t now;
	size_t n = 0, seen = 0;
	void *prev = NULL;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	now = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
	/* bounded by the map size, whatever the program does meanwhile */
	while (n < max && seen++ < CLUSTER_MAX_SLOW &&
	       bpf_map__get_next_key(m, prev, &next, sizeof(next)) == 0) {
		key = next;
		prev = &key;
		if (bpf_map__lookup_elem(m, &key, sizeof(key), &val, sizeof(val), 0) < 0)
			continue;
		if (val.repeats < min_repeats || now < val.first_ns ||
		    (now - val.first_ns) / 1000000 < min_ms)
			continue;
		flow_addr(key.family, key.saddr, key.sport, &out[n].src);
		flow_addr(key.family, key.daddr, key.dport, &out[n].dst);
		out[n].repeating_ms = (now - val.first_ns) / 1000000;
		out[n].repeats = val.repeats;
		out[n].packets = val.packets;
		n++;
		/* reported: start the episode over (the key stays valid for
		 * get_next_key: a deleted key restarts the walk, bounded above) */
		val.repeats = 0;
		val.first_ns = now;
		bpf_map__update_elem(m, &key, sizeof(key), &val, sizeof(val), BPF_EXIST);
	}
	return n;
}

int cluster_prog_fd(const struct cluster *c)
{
	return bpf_program__fd(c->skel->progs.sluice_cluster);
}

uint32_t cluster_prog_id(const struct cluster *c)
{
	struct bpf_prog_info info;
	uint32_t len = sizeof(info);

	memset(&info, 0, sizeof(info));
	if (bpf_obj_get_info_by_fd(cluster_prog_fd(c), &info, &len) < 0)
		return 0;
	return info.id;
}

const char *cluster_libbpf_version(char *buf, size_t len)
{
	snprintf(buf, len, "libbpf %s", libbpf_version_string());
	return buf;
}
