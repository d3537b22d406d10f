/* resolve: c-ares driven by the control thread's libev loop. Each
 * resolvers block is one c-ares channel: its sockets are ev_io watchers
 * (the socket-state callback starts and stops them), its timeouts one
 * ev_timer re-armed from ares_timeout() after every call into c-ares. A
 * watched name is looked up at the next loop iteration, then again when
 * its answer's TTL (clamped by accepted-ttl) runs out; a failed lookup is
 * retried every second while the last good answer is kept for `hold`.
 * Replies are read by resolve_dns.c (c-ares 1.18 gives no SRV TTLs).
 * Nothing here blocks but the read of /etc/hosts.
 *
 *   PENDING --answer--> OK --lookup fails--> HELD --hold runs out--> FAILED
 *      |                 ^                     |                       |
 *      +--fails--> FAILED +--------answer------+----------answer-------+
 */
#include <ares.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "resolve-int.h"
#include "sluice/hmap.h"
#include "sluice/list.h"
#include "sluice/log.h"
#include "sluice/resolve.h"
#include "sluice/util.h"

#define RESOLVE_RETRY_MS 1000	    /* a failed lookup is tried again after this */
#define RESOLVE_MIN_NEXT_MS 100	    /* never two lookups of a name closer than this */
#define RESOLVE_JITTER_MAX_MS 1000  /* lookups due together are spread by up to this */
#define RESOLVE_HOSTS_MAX 64	    /* addresses read from /etc/hosts for one name */
#define RESOLVE_LOG_RECS 4	    /* records named in a log line */
#define RESOLVE_RCVBUF (1 << 20)    /* receive buffer of c-ares sockets */
#define RESOLVE_STARTS_PER_ROUND 32 /* lookups started in one loop iteration */

struct resolve_io {
	ev_io io;
	struct resolve *r;
};

struct resolve {
	struct ev_loop *loop;
	struct resolve_conf conf;
	ares_channel ch;
	bool use_hosts; /* the system's configuration: /etc/hosts first */
	ev_timer timer; /* c-ares's next timeout */
	/* names whose lookup is due, started RESOLVE_STARTS_PER_ROUND per
	 * loop iteration so that the other watchers run in between */
	struct list_node due;
	ev_timer start;
	struct resolve_io **ios;
	size_t nios, iocap;
	struct list_node names;
	struct util_hmap index; /* key -> struct resolve_name * */
	struct resolve_counters counters;
	uint64_t rng;
};

struct resolve_lookup;

/* A name followed for its watches. Owned by its resolver; freed when its
 * last watch goes (after the callbacks running then). */
struct resolve_name {
	struct resolve *r;
	struct list_node link;
	enum resolve_type type;
	char name[RESOLVE_NAME_MAX];
	char key[RESOLVE_NAME_MAX + 2]; /* "a:" or "s:" and the name */
	struct list_node watches;
	size_t nwatches;
	unsigned calling;	   /* watches' callbacks are running */
	ev_timer timer;		   /* the next lookup, or the hold's end */
	struct list_node due_link; /* in r->due, or self-linked */
	struct resolve_lookup *lk; /* the lookup running, or NULL */
	enum resolve_state state;
	bool from_hosts;
	bool clamp_noted; /* the TTL clamp of this answer was logged */
	struct resolve_rec *recs;
	size_t nrecs;
	uint32_t ttl_s;
	uint64_t answered_ms, expires_ms, held_until_ms, next_ms;
	enum resolve_error last_error;
	uint32_t failing;
	uint64_t lookups;
	struct resolve_counters counters;
};

/* A watch: one caller's interest in a name. Owned by the caller. */
struct resolve_watch {
	struct resolve_name *n;
	struct list_node link;
	resolve_fn fn;
	void *arg;
	bool dead; /* unwatched while callbacks ran: freed after them */
};

/* An SRV target whose addresses a lookup needs. */
struct resolve_target {
	char name[RESOLVE_NAME_MAX];
	struct util_addr addrs[RESOLVE_HOSTS_MAX];
	uint32_t ttls[RESOLVE_HOSTS_MAX];
	size_t naddrs;
	enum resolve_error err;
};

/* One lookup of a name: its A and AAAA queries, or its SRV query and
 * then its targets'. Owned by the name while it runs; an orphan (name
 * gone) lives until c-ares has called back for every query. */
struct resolve_lookup {
	struct resolve *r;
	struct resolve_name *n;			/* NULL: orphan */
	unsigned pending;			/* queries c-ares holds */
	bool issuing;				/* queries are being sent: do not finish yet */
	enum resolve_error err_timeout, err_nx; /* the first failure of each kind */
	bool from_hosts;
	struct resolve_rec *recs; /* ADDR: addresses; SRV: the SRV records */
	size_t nrecs, cap;
	uint32_t ttl;
	struct resolve_target *targets;
	size_t ntargets;
};

/* One c-ares query of a lookup. */
struct resolve_query {
	struct resolve_lookup *lk;
	uint16_t qtype;
	long target; /* -1: the looked-up name itself, else a target's index */
};

static const char *const state_names[] = {
    [RESOLVE_PENDING] = "pending",
    [RESOLVE_OK] = "ok",
    [RESOLVE_HELD] = "held",
    [RESOLVE_FAILED] = "failed",
};

const char *resolve_state_name(enum resolve_state s)
{
	return state_names[s];
}

const char *resolve_type_name(enum resolve_type t)
{
	return t == RESOLVE_SRV ? "srv" : "addr";
}

bool resolve_conf_equal(const struct resolve_conf *a, const struct resolve_conf *b)
{
	if (strcmp(a->name, b->name) != 0 || a->nnameservers != b->nnameservers ||
	    a->timeout_ms != b->timeout_ms || a->attempts != b->attempts ||
	    a->hold_valid_ms != b->hold_valid_ms || a->hold_nx_ms != b->hold_nx_ms ||
	    a->hold_timeout_ms != b->hold_timeout_ms || a->ttl_min_ms != b->ttl_min_ms ||
	    a->ttl_max_ms != b->ttl_max_ms)
		return false;
	for (size_t i = 0; i < a->nnameservers; i++)
		if (!util_addr_equal(&a->nameservers[i], &b->nameservers[i]))
			return false;
	return true;
}

const struct resolve_conf *resolve_conf_of(const struct resolve *r)
{
	return &r->conf;
}

const struct resolve_counters *resolve_counters_of(const struct resolve *r)
{
	return &r->counters;
}

/* ---- c-ares on the loop ---- */

static void arm_timer(struct resolve *r)
{
	struct timeval tv, *tvp = ares_timeout(r->ch, NULL, &tv);

	ev_timer_stop(r->loop, &r->timer);
	if (tvp == NULL)
		return;
	ev_timer_set(&r->timer, (double)tvp->tv_sec + (double)tvp->tv_usec / 1e6, 0.0);
	ev_timer_start(r->loop, &r->timer);
}
static void on_start(struct ev_loop *loop, ev_timer *t, int revents);

static void on_ares_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct resolve *r = t->data;

	(void)loop;
	(void)revents;
	ares_process_fd(r->ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	arm_timer(r);
}

static void on_ares_io(struct ev_loop *loop, ev_io *w, int revents)
{
	struct resolve_io *io = UTIL_CONTAINER_OF(w, struct resolve_io, io);
	struct resolve *r = io->r;
	int fd = w->fd;

	(void)loop;
	/* io may be freed in here (c-ares closes the socket): not used after */
	ares_process_fd(r->ch, (revents & EV_READ) ? fd : ARES_SOCKET_BAD,
			(revents & EV_WRITE) ? fd : ARES_SOCKET_BAD);
	arm_timer(r);
}

/* c-ares opens, watches or closes one of its sockets. */
static void on_sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
	struct resolve *r = data;
	struct resolve_io *io = NULL;
	size_t i;

	for (i = 0; i < r->nios; i++) {
		if (r->ios[i]->io.fd == fd) {
			io = r->ios[i];
			break;
		}
	}
	if (io != NULL) {
		ev_io_stop(r->loop, &io->io);
		if (!readable && !writable) {
			r->ios[i] = r->ios[--r->nios];
			free(io);
			return;
		}
	} else {
		if (!readable && !writable)
			return;
		if (r->nios == r->iocap) {
			size_t cap = r->iocap ? r->iocap * 2 : 4;
			struct resolve_io **a = realloc(r->ios, cap * sizeof(*a));

			if (a == NULL)
				return; /* its queries time out; logged by their failure */
			r->ios = a;
			r->iocap = cap;
		}
		io = calloc(1, sizeof(*io));
		if (io == NULL)
			return;
		io->r = r;
		r->ios[r->nios++] = io;
		ev_init(&io->io, on_ares_io);
	}
	ev_io_set(&io->io, fd, (readable ? EV_READ : 0) | (writable ? EV_WRITE : 0));
	ev_io_start(r->loop, &io->io);
}

struct resolve *resolve_new(struct ev_loop *loop, const struct resolve_conf *rc, char *err,
			    size_t errlen)
{
	struct resolve *r = calloc(1, sizeof(*r));
	struct ares_options o;
	int mask, rc2;
	char lookups[] = "b";

	if (r == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	r->loop = loop;
	r->conf = *rc;
	r->use_hosts = rc->nnameservers == 0;
	r->rng = (util_now_us() ^ (uintptr_t)r) | 1;
	list_init(&r->names);
	list_init(&r->due);
	ev_timer_init(&r->timer, on_ares_timer, 0.0, 0.0);
	r->timer.data = r;
	ev_timer_init(&r->start, on_start, 0.0, 0.0);
	r->start.data = r;
	memset(&o, 0, sizeof(o));
	o.sock_state_cb = on_sock_state;
	o.sock_state_cb_data = r;
	o.timeout = (int)UTIL_MIN(rc->timeout_ms, 600000);
	o.tries = (int)rc->attempts;
	o.lookups = lookups; /* /etc/hosts is read here, every line of a name */
	/* a SERVFAIL or REFUSED reply is the answer, said as such: c-ares
	 * would otherwise try the next server and, once out of servers,
	 * report "connection refused" for a server that did answer */
	o.flags = ARES_FLAG_NOCHECKRESP;
	/* hundreds of names answered together: room for their replies while
	 * the loop is busy elsewhere (the kernel caps it at rmem_max) */
	o.socket_receive_buffer_size = RESOLVE_RCVBUF;
	mask = ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_LOOKUPS |
	       ARES_OPT_FLAGS | ARES_OPT_SOCK_RCVBUF;
	if (rc->nnameservers > 0) {
		/* the names of a block with its own servers are taken as written */
		o.ndomains = 0;
		o.domains = NULL;
		mask |= ARES_OPT_DOMAINS;
	}
	rc2 = ares_init_options(&r->ch, &o, mask);
	if (rc2 != ARES_SUCCESS) {
		snprintf(err, errlen, "resolvers %s: cannot start c-ares: %s", rc->name,
			 ares_strerror(rc2));
		free(r);
		return NULL;
	}
	if (rc->nnameservers > 0) {
		struct ares_addr_port_node nodes[RESOLVE_MAX_NAMESERVERS];

		memset(nodes, 0, sizeof(nodes));
		for (size_t i = 0; i < rc->nnameservers; i++) {
			const struct util_addr *a = &rc->nameservers[i];
			struct ares_addr_port_node *nd = &nodes[i];

			nd->next = i + 1 < rc->nnameservers ? &nodes[i + 1] : NULL;
			nd->family = a->u.sa.sa_family;
			if (nd->family == AF_INET)
				memcpy(&nd->addr.addr4, &a->u.in4.sin_addr, 4);
			else
				memcpy(&nd->addr.addr6, &a->u.in6.sin6_addr, 16);
			nd->udp_port = nd->tcp_port = util_addr_port(a);
		}
		rc2 = ares_set_servers_ports(r->ch, nodes);
		if (rc2 != ARES_SUCCESS) {
			snprintf(err, errlen, "resolvers %s: cannot set its nameservers: %s",
				 rc->name, ares_strerror(rc2));
			ares_destroy(r->ch);
			free(r);
			return NULL;
		}
	}
	return r;
}

static void name_free(struct resolve_name *n);

void resolve_free(struct resolve *r)
{
	if (r == NULL)
		return;
	while (!list_empty(&r->names)) {
		struct resolve_name *n = list_entry(r->names.next, struct resolve_name, link);

		while (!list_empty(&n->watches)) {
			struct resolve_watch *w =
			    list_entry(n->watches.next, struct resolve_watch, link);

			list_del(&w->link);
			free(w);
		}
		name_free(n);
	}
	/* orphaned lookups get ARES_EDESTRUCTION and free themselves; the
	 * socket callback stops and frees every watcher */
	ares_destroy(r->ch);
	for (size_t i = 0; i < r->nios; i++) {
		ev_io_stop(r->loop, &r->ios[i]->io);
		free(r->ios[i]);
	}
	free(r->ios);
	ev_timer_stop(r->loop, &r->timer);
	ev_timer_stop(r->loop, &r->start);
	util_hmap_free(&r->index);
	free(r);
}

/* ---- answers ---- */

static int rec_cmp(const void *pa, const void *pb)
{
	const struct resolve_rec *a = pa, *b = pb;
	int c;

	if (a->addr.u.sa.sa_family != b->addr.u.sa.sa_family)
		return a->addr.u.sa.sa_family < b->addr.u.sa.sa_family ? -1 : 1;
	if (a->addr.u.sa.sa_family == AF_INET)
		c = memcmp(&a->addr.u.in4.sin_addr, &b->addr.u.in4.sin_addr, 4);
	else
		c = memcmp(&a->addr.u.in6.sin6_addr, &b->addr.u.in6.sin6_addr, 16);
	if (c != 0)
		return c;
	if (a->port != b->port)
		return a->port < b->port ? -1 : 1;
	c = strcmp(a->target, b->target);
	if (c != 0)
		return c;
	if (a->priority != b->priority)
		return a->priority < b->priority ? -1 : 1;
	return a->weight < b->weight ? -1 : a->weight > b->weight;
}

/* Sort recs and drop duplicates. Returns the new count. */
static size_t recs_canon(struct resolve_rec *recs, size_t n)
{
	size_t k = 0;

	if (n == 0)
		return 0;
	qsort(recs, n, sizeof(*recs), rec_cmp);
	for (size_t i = 1; i < n; i++) {
		if (rec_cmp(&recs[k], &recs[i]) == 0) {
			recs[k].ttl = UTIL_MIN(recs[k].ttl, recs[i].ttl);
			continue;
		}
		recs[++k] = recs[i];
	}
	return k + 1;
}

static bool recs_equal(const struct resolve_rec *a, size_t na, const struct resolve_rec *b,
		       size_t nb)
{
	if (na != nb)
		return false;
	for (size_t i = 0; i < na; i++)
		if (rec_cmp(&a[i], &b[i]) != 0)
			return false;
	return true;
}

/* "10.0.0.1, 10.0.0.2 and 3 more" (SRV: "target:port" each). */
static const char *recs_text(const struct resolve_rec *recs, size_t n, char *buf, size_t len)
{
	size_t off = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < n && i < RESOLVE_LOG_RECS; i++) {
		char a[UTIL_ADDR_STRLEN];

		if (recs[i].target[0] != '\0')
			util_bufprintf(buf, len, &off, "%s%s:%u (%s)", i ? ", " : "",
				       recs[i].target, recs[i].port,
				       util_addr_fmt_host(&recs[i].addr, a, sizeof(a)));
		else
			util_bufprintf(buf, len, &off, "%s%s", i ? ", " : "",
				       util_addr_fmt_host(&recs[i].addr, a, sizeof(a)));
	}
	if (n > RESOLVE_LOG_RECS)
		util_bufprintf(buf, len, &off, " and %zu more", n - RESOLVE_LOG_RECS);
	return buf;
}

static uint64_t hold_of(const struct resolve_conf *c, enum resolve_error e)
{
	return resolve_error_hold(e) == RESOLVE_HOLD_NX ? c->hold_nx_ms : c->hold_timeout_ms;
}

static const char *hold_word(enum resolve_error e)
{
	return resolve_error_hold(e) == RESOLVE_HOLD_NX ? "nx" : "timeout";
}

/* "250ms", "30s", "4m59s": a duration as an operator reads it. */
static void fmt_ms(uint64_t ms, char *buf, size_t len)
{
	uint64_t s = (ms + 500) / 1000;

	if (ms < 1000 || (ms < 10000 && ms % 1000 != 0))
		snprintf(buf, len, "%llums", (unsigned long long)ms);
	else if (s < 60)
		snprintf(buf, len, "%llus", (unsigned long long)s);
	else if (s % 60 == 0)
		snprintf(buf, len, "%llum", (unsigned long long)(s / 60));
	else
		snprintf(buf, len, "%llum%02llus", (unsigned long long)(s / 60),
			 (unsigned long long)(s % 60));
}

static void schedule(struct resolve_name *n, uint64_t at_ms, uint64_t now_ms)
{
	uint64_t at = UTIL_MAX(at_ms, now_ms + RESOLVE_MIN_NEXT_MS);

	n->next_ms = at;
	ev_timer_stop(n->r->loop, &n->timer);
	ev_timer_set(&n->timer, (double)(at - now_ms) / 1000.0, 0.0);
	ev_timer_start(n->r->loop, &n->timer);
}

/* A lookup gave records (owned by n from now). Returns whether the
 * records in use changed. */
static bool name_answer(struct resolve_name *n, struct resolve_rec *recs, size_t nrecs,
			uint32_t ttl_s, bool from_hosts, uint64_t now)
{
	const struct resolve_conf *c = &n->r->conf;
	bool changed = n->state == RESOLVE_PENDING || n->state == RESOLVE_FAILED ||
		       !recs_equal(n->recs, n->nrecs, recs, nrecs);
	uint64_t life, jitter;
	char buf[512], t1[24], t2[24];

	if (n->state == RESOLVE_HELD || (n->state == RESOLVE_FAILED && n->lookups > 1))
		log_notice("resolvers %s: %s answers again (%zu record%s)", c->name, n->name, nrecs,
			   nrecs == 1 ? "" : "s");
	if (changed) {
		n->counters.changes++;
		n->r->counters.changes++;
		log_info("resolvers %s: %s: %s%s (TTL %us)", c->name, n->name,
			 recs_text(recs, nrecs, buf, sizeof(buf)),
			 from_hosts ? " from /etc/hosts" : "", ttl_s);
	}
	free(n->recs);
	n->recs = recs;
	n->nrecs = nrecs;
	n->state = RESOLVE_OK;
	n->from_hosts = from_hosts;
	n->ttl_s = ttl_s;
	n->failing = 0;
	n->held_until_ms = 0;
	n->answered_ms = now;
	n->counters.answers++;
	n->r->counters.answers++;
	if (from_hosts) {
		life = c->hold_valid_ms;
	} else {
		life = UTIL_MIN((uint64_t)ttl_s * 1000, c->ttl_max_ms);
		life = UTIL_MAX(life, c->ttl_min_ms);
		if (life != (uint64_t)ttl_s * 1000 && (changed || !n->clamp_noted)) {
			fmt_ms(life, t1, sizeof(t1));
			fmt_ms((uint64_t)ttl_s * 1000, t2, sizeof(t2));
			log_info("resolvers %s: %s: TTL %s taken as %s (accepted-ttl)", c->name,
				 n->name, t2, t1);
		}
		n->clamp_noted = life != (uint64_t)ttl_s * 1000;
	}
	n->expires_ms = now + life;
	/* look again a little before it runs out, spread so that names
	 * answered together are not all asked again in the same instant */
	jitter = util_rand64(&n->r->rng) % (UTIL_MIN(life / 10, RESOLVE_JITTER_MAX_MS) + 1);
	schedule(n, n->expires_ms - jitter, now);
	return changed;
}

/* The hold ran out while the DNS still fails: the records are given up. */
static void name_expire(struct resolve_name *n, uint64_t now)
{
	const struct resolve_conf *c = &n->r->conf;
	char t[24];

	fmt_ms(hold_of(c, n->last_error), t, sizeof(t));
	log_warn("resolvers %s: %s: %s: its hold (%s %s) ran out: its %zu record%s given up",
		 c->name, n->name, resolve_error_name(n->last_error), hold_word(n->last_error), t,
		 n->nrecs, n->nrecs == 1 ? " is" : "s are");
	free(n->recs);
	n->recs = NULL;
	n->nrecs = 0;
	n->state = RESOLVE_FAILED;
	n->held_until_ms = 0;
	n->counters.expired++;
	n->r->counters.expired++;
	schedule(n, now + RESOLVE_RETRY_MS, now);
}

/* A lookup failed with e. Returns whether the records in use changed
 * (the hold ran out). */
static bool name_failed(struct resolve_name *n, enum resolve_error e, uint64_t now)
{
	const struct resolve_conf *c = &n->r->conf;
	bool first = n->failing == 0 || n->last_error != e;
	char t[24];

	n->failing++;
	n->last_error = e;
	if (resolve_error_hold(e) == RESOLVE_HOLD_NX) {
		n->counters.failures_nx++;
		n->r->counters.failures_nx++;
	} else {
		n->counters.failures_timeout++;
		n->r->counters.failures_timeout++;
	}
	switch (n->state) {
	case RESOLVE_OK:
	case RESOLVE_HELD:
		/* the hold counts from when the answer ran out; the kind of the
		 * latest failure says which hold */
		n->held_until_ms = UTIL_MAX(n->expires_ms, n->answered_ms) + hold_of(c, e);
		if (now < n->held_until_ms) {
			if (n->state == RESOLVE_OK || first) {
				fmt_ms(n->held_until_ms - now, t, sizeof(t));
				log_warn(
				    "resolvers %s: %s: %s: keeping its last answer (%zu record%s) "
				    "for %s more (hold %s)",
				    c->name, n->name, resolve_error_name(e), n->nrecs,
				    n->nrecs == 1 ? "" : "s", t, hold_word(e));
			}
			n->state = RESOLVE_HELD;
			schedule(n, UTIL_MIN(now + RESOLVE_RETRY_MS, n->held_until_ms), now);
			return false;
		}
		name_expire(n, now);
		return true;
	case RESOLVE_PENDING:
	case RESOLVE_FAILED:
		/* info: whoever waits for the name (a load, a `servers` line)
		 * says what it means for it */
		if (first)
			log_info("resolvers %s: %s: %s (no answer in use; trying again every %us)",
				 c->name, n->name, resolve_error_name(e), RESOLVE_RETRY_MS / 1000);
		n->state = RESOLVE_FAILED;
		schedule(n, now + RESOLVE_RETRY_MS, now);
		return false;
	}
	return false;
}

/* Call every watch of n; then free what was unwatched meanwhile. */
static void notify(struct resolve_name *n, bool changed)
{
	struct list_node *it;

	n->calling++;
	for (it = n->watches.next; it != &n->watches; it = it->next) {
		struct resolve_watch *w = list_entry(it, struct resolve_watch, link);

		if (!w->dead)
			w->fn(w->arg, w, changed);
	}
	n->calling--;
	if (n->calling > 0)
		return;
	for (it = n->watches.next; it != &n->watches;) {
		struct resolve_watch *w = list_entry(it, struct resolve_watch, link);

		it = it->next;
		if (w->dead) {
			list_del(&w->link);
			free(w);
		}
	}
	if (n->nwatches == 0)
		name_free(n);
}

/* ---- lookups ---- */

static void lookup_free(struct resolve_lookup *lk)
{
	free(lk->recs);
	free(lk->targets);
	free(lk);
}

static int lookup_add(struct resolve_lookup *lk, const struct resolve_rec *rec)
{
	if (lk->nrecs == lk->cap) {
		size_t cap = lk->cap ? lk->cap * 2 : 8;
		struct resolve_rec *a;

		if (lk->nrecs >= RESOLVE_MAX_RECORDS)
			return 0; /* bounded: more are ignored */
		a = realloc(lk->recs, cap * sizeof(*a));
		if (a == NULL)
			return -1;
		lk->recs = a;
		lk->cap = cap;
	}
	lk->recs[lk->nrecs++] = *rec;
	return 0;
}

static void lookup_note_error(struct resolve_lookup *lk, enum resolve_error e)
{
	enum resolve_error *slot =
	    resolve_error_hold(e) == RESOLVE_HOLD_NX ? &lk->err_nx : &lk->err_timeout;

	if (*slot == RESOLVE_ERR_NONE)
		*slot = e;
}

/* SRV records and their targets' addresses: one record per address. */
static int srv_expand(struct resolve_lookup *lk, struct resolve_rec **out, size_t *nout,
		      uint32_t *ttl)
{
	struct resolve_rec *recs = NULL;
	size_t n = 0, cap = 0;

	*ttl = lk->ttl;
	for (size_t i = 0; i < lk->nrecs; i++) {
		const struct resolve_rec *s = &lk->recs[i];
		const struct resolve_target *t = NULL;

		for (size_t k = 0; k < lk->ntargets && t == NULL; k++)
			if (strcmp(lk->targets[k].name, s->target) == 0)
				t = &lk->targets[k];
		for (size_t a = 0; t != NULL && a < t->naddrs && n < RESOLVE_MAX_RECORDS; a++) {
			if (n == cap) {
				size_t nc = cap ? cap * 2 : 8;
				struct resolve_rec *g = realloc(recs, nc * sizeof(*g));

				if (g == NULL) {
					free(recs);
					return -1;
				}
				recs = g;
				cap = nc;
			}
			recs[n] = *s;
			recs[n].addr = t->addrs[a];
			util_addr_set_port(&recs[n].addr, s->port);
			recs[n].ttl = UTIL_MIN(s->ttl, t->ttls[a]);
			*ttl = UTIL_MIN(*ttl, recs[n].ttl);
			n++;
		}
	}
	*out = recs;
	*nout = n;
	return 0;
}

/* Every query of lk has called back: the name takes the outcome. */
static void lookup_done(struct resolve_lookup *lk)
{
	struct resolve_name *n = lk->n;
	struct resolve_rec *recs = NULL;
	size_t nrecs = 0;
	uint32_t ttl = lk->ttl;
	enum resolve_error e = RESOLVE_ERR_NONE;
	uint64_t now = util_now_ms();
	bool changed;

	if (n == NULL) {
		lookup_free(lk);
		return;
	}
	n->lk = NULL;
	n->lookups++;
	if (n->type == RESOLVE_SRV) {
		/* a target that does not exist is left out; one whose lookup
		 * failed fails the whole: a partial answer never shrinks the
		 * set in use */
		for (size_t i = 0; i < lk->ntargets; i++) {
			if (lk->targets[i].naddrs > 0)
				continue;
			if (resolve_error_hold(lk->targets[i].err) == RESOLVE_HOLD_NX)
				log_info("resolvers %s: %s: target %s has no address: %s",
					 n->r->conf.name, n->name, lk->targets[i].name,
					 resolve_error_name(lk->targets[i].err));
			else
				lookup_note_error(lk, lk->targets[i].err);
		}
		if (lk->err_timeout == RESOLVE_ERR_NONE && lk->nrecs > 0 &&
		    srv_expand(lk, &recs, &nrecs, &ttl) < 0)
			lk->err_timeout = RESOLVE_ERR_NOMEM;
		if (lk->err_timeout != RESOLVE_ERR_NONE) {
			free(recs);
			recs = NULL;
			nrecs = 0;
		} else if (nrecs == 0 && lk->err_nx == RESOLVE_ERR_NONE) {
			lk->err_nx = lk->nrecs > 0 ? RESOLVE_ERR_NO_TARGET : RESOLVE_ERR_NODATA;
		}
	} else {
		/* one family answering is an answer (a server that drops AAAA
		 * queries must not make a name fail) */
		recs = lk->recs;
		nrecs = lk->nrecs;
		lk->recs = NULL;
	}
	nrecs = recs_canon(recs, nrecs);
	if (nrecs > 0) {
		changed = name_answer(n, recs, nrecs, ttl, lk->from_hosts, now);
	} else {
		free(recs);
		e = lk->err_timeout != RESOLVE_ERR_NONE ? lk->err_timeout
		    : lk->err_nx != RESOLVE_ERR_NONE	? lk->err_nx
							: RESOLVE_ERR_NODATA;
		changed = name_failed(n, e, now);
	}
	lookup_free(lk);
	notify(n, changed);
}

static void lookup_maybe_done(struct resolve_lookup *lk)
{
	if (lk->pending == 0 && !lk->issuing)
		lookup_done(lk);
}

static enum resolve_error ares_error(int status)
{
	switch (status) {
	case ARES_ENODATA:
		return RESOLVE_ERR_NODATA;
	case ARES_ENOTFOUND:
		return RESOLVE_ERR_NXDOMAIN;
	case ARES_ESERVFAIL:
		return RESOLVE_ERR_SERVFAIL;
	case ARES_EREFUSED:
		return RESOLVE_ERR_REFUSED;
	case ARES_ETIMEOUT:
		return RESOLVE_ERR_TIMEOUT;
	case ARES_ECONNREFUSED:
		return RESOLVE_ERR_UNREACH;
	case ARES_EFORMERR:
	case ARES_EBADRESP:
		return RESOLVE_ERR_BADRESP;
	case ARES_ENOMEM:
		return RESOLVE_ERR_NOMEM;
	default:
		return RESOLVE_ERR_OTHER;
	}
}

static void send_query(struct resolve_lookup *lk, const char *name, uint16_t qtype, long target);

/* The SRV reply: its records, and the targets whose addresses it lacks
 * looked up (from /etc/hosts or by A/AAAA queries). */
static void srv_answer(struct resolve_lookup *lk, struct resolve_dns_result *res)
{
	struct resolve *r = lk->r;

	lk->targets = calloc(res->nrecs, sizeof(*lk->targets));
	if (lk->targets == NULL) {
		lookup_note_error(lk, RESOLVE_ERR_NOMEM);
		return;
	}
	lk->ttl = res->ttl;
	for (size_t i = 0; i < res->nrecs; i++) {
		struct resolve_target *t = NULL;

		if (lookup_add(lk, &res->recs[i]) < 0) {
			lookup_note_error(lk, RESOLVE_ERR_NOMEM);
			return;
		}
		for (size_t k = 0; k < lk->ntargets && t == NULL; k++)
			if (strcmp(lk->targets[k].name, res->recs[i].target) == 0)
				t = &lk->targets[k];
		if (t != NULL)
			continue;
		t = &lk->targets[lk->ntargets++];
		util_strlcpy(t->name, res->recs[i].target, sizeof(t->name));
		t->err = RESOLVE_ERR_NODATA;
		for (size_t g = 0; g < res->nglue && t->naddrs < RESOLVE_HOSTS_MAX; g++) {
			if (strcmp(res->glue[g].name, t->name) != 0)
				continue;
			t->addrs[t->naddrs] = res->glue[g].addr;
			t->ttls[t->naddrs++] = res->glue[g].ttl;
		}
	}
	for (size_t k = 0; k < lk->ntargets; k++) {
		struct resolve_target *t = &lk->targets[k];
		int got;

		if (t->naddrs > 0)
			continue;
		if (r->use_hosts &&
		    (got = resolve_hosts_lookup(t->name, t->addrs, RESOLVE_HOSTS_MAX)) > 0) {
			t->naddrs = (size_t)got;
			for (int a = 0; a < got; a++)
				t->ttls[a] = res->ttl;
			continue;
		}
		send_query(lk, t->name, RESOLVE_DNS_A, (long)k);
		send_query(lk, t->name, RESOLVE_DNS_AAAA, (long)k);
	}
}

static void on_query(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct resolve_query *q = arg;
	struct resolve_lookup *lk = q->lk;
	struct resolve_dns_result res;
	enum resolve_error e = RESOLVE_ERR_NONE;

	(void)timeouts;
	lk->pending--;
	if (status == ARES_EDESTRUCTION || status == ARES_ECANCELLED || lk->n == NULL) {
		free(q);
		lookup_maybe_done(lk);
		return;
	}
	memset(&res, 0, sizeof(res));
	if (status != ARES_SUCCESS) {
		e = ares_error(status);
	} else if (resolve_dns_read(abuf, (size_t)alen, q->qtype, RESOLVE_MAX_RECORDS, &res) < 0) {
		e = res.err;
	} else {
		e = res.err;
		if (res.skipped > 0)
			log_info("resolvers %s: %s: %zu record%s of its answer not used (unusable "
				 "names, or over %d)",
				 lk->r->conf.name, lk->n->name, res.skipped,
				 res.skipped == 1 ? "" : "s", RESOLVE_MAX_RECORDS);
	}
	if (q->target >= 0) {
		struct resolve_target *t = &lk->targets[q->target];

		if (e == RESOLVE_ERR_NONE) {
			for (size_t i = 0; i < res.nrecs && t->naddrs < RESOLVE_HOSTS_MAX; i++) {
				t->addrs[t->naddrs] = res.recs[i].addr;
				t->ttls[t->naddrs++] = res.recs[i].ttl;
			}
		} else if (t->err == RESOLVE_ERR_NODATA ||
			   resolve_error_hold(e) == RESOLVE_HOLD_TIMEOUT) {
			t->err = e;
		}
	} else if (e != RESOLVE_ERR_NONE) {
		lookup_note_error(lk, e);
	} else if (q->qtype == RESOLVE_DNS_SRV) {
		srv_answer(lk, &res);
	} else {
		for (size_t i = 0; i < res.nrecs; i++) {
			if (lookup_add(lk, &res.recs[i]) < 0) {
				lookup_note_error(lk, RESOLVE_ERR_NOMEM);
				break;
			}
			lk->ttl = UTIL_MIN(lk->ttl, res.recs[i].ttl);
		}
	}
	resolve_dns_result_free(&res);
	free(q);
	lookup_maybe_done(lk);
}

static void send_query(struct resolve_lookup *lk, const char *name, uint16_t qtype, long target)
{
	struct resolve_query *q = calloc(1, sizeof(*q));
	bool issuing = lk->issuing;

	if (q == NULL) {
		lookup_note_error(lk, RESOLVE_ERR_NOMEM);
		return;
	}
	q->lk = lk;
	q->qtype = qtype;
	q->target = target;
	lk->pending++;
	lk->r->counters.queries++;
	if (lk->n != NULL)
		lk->n->counters.queries++;
	/* c-ares may call back from inside: the lookup must not end there */
	lk->issuing = true;
	ares_search(lk->r->ch, name, 1 /* C_IN */, qtype, on_query, q);
	lk->issuing = issuing;
}

static void lookup_start(struct resolve_name *n)
{
	struct resolve *r = n->r;
	struct resolve_lookup *lk = calloc(1, sizeof(*lk));

	n->next_ms = 0;
	if (lk == NULL) {
		notify(n, name_failed(n, RESOLVE_ERR_NOMEM, util_now_ms()));
		return;
	}
	lk->r = r;
	lk->n = n;
	lk->ttl = UINT32_MAX;
	n->lk = lk;
	if (n->type == RESOLVE_ADDR && r->use_hosts) {
		struct util_addr a[RESOLVE_HOSTS_MAX];
		int got = resolve_hosts_lookup(n->name, a, RESOLVE_HOSTS_MAX);

		for (int i = 0; i < got; i++) {
			struct resolve_rec rec = {.addr = a[i]};

			if (lookup_add(lk, &rec) < 0)
				lookup_note_error(lk, RESOLVE_ERR_NOMEM);
		}
		if (got > 0) {
			lk->from_hosts = true;
			lk->ttl = 0;
			lookup_done(lk);
			return;
		}
	}
	lk->issuing = true;
	if (n->type == RESOLVE_SRV) {
		send_query(lk, n->name, RESOLVE_DNS_SRV, -1);
	} else {
		send_query(lk, n->name, RESOLVE_DNS_A, -1);
		send_query(lk, n->name, RESOLVE_DNS_AAAA, -1);
	}
	lk->issuing = false;
	lookup_maybe_done(lk);
}

/* Start the lookups that are due, a bounded number per loop iteration. */
static void on_start(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct resolve *r = t->data;

	(void)revents;
	for (int i = 0; i < RESOLVE_STARTS_PER_ROUND && !list_empty(&r->due); i++) {
		struct resolve_name *n = list_entry(r->due.next, struct resolve_name, due_link);

		list_del(&n->due_link);
		if (n->lk == NULL)
			lookup_start(n); /* may free names, none of r->due's links */
	}
	/* once for the round: ares_timeout() walks every query in flight */
	arm_timer(r);
	if (!list_empty(&r->due)) {
		ev_timer_set(t, 0.0, 0.0);
		ev_timer_start(loop, t);
	}
}

/* The name's timer: its hold ran out, or its next lookup is due. */
static void on_name_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct resolve_name *n = t->data;
	uint64_t now = util_now_ms();

	(void)loop;
	(void)revents;
	if (n->lk != NULL)
		return; /* it ends by itself; its outcome schedules the next */
	if (n->state == RESOLVE_HELD && now >= n->held_until_ms) {
		/* no lookup ended in time to say it: the hold is over anyway */
		name_expire(n, now);
		n->nwatches++; /* kept alive across the callbacks */
		notify(n, true);
		if (--n->nwatches == 0) {
			name_free(n);
			return;
		}
	}
	if (n->due_link.next == &n->due_link)
		list_add_tail(&n->r->due, &n->due_link);
	if (!ev_is_active(&n->r->start)) {
		ev_timer_set(&n->r->start, 0.0, 0.0);
		ev_timer_start(n->r->loop, &n->r->start);
	}
}

/* ---- names and watches ---- */

static const char *name_key(const void *arg, uintptr_t val)
{
	(void)arg;
	return ((const struct resolve_name *)val)->key;
}

static void name_free(struct resolve_name *n)
{
	ev_timer_stop(n->r->loop, &n->timer);
	list_del(&n->due_link);
	if (n->lk != NULL)
		n->lk->n = NULL; /* c-ares still holds its queries */
	util_hmap_del(&n->r->index, n->key, (uintptr_t)n);
	list_del(&n->link);
	free(n->recs);
	free(n);
}

/* "a:name" or "s:name", lower case: DNS names compare without case. */
static void make_key(char *key, size_t len, enum resolve_type type, const char *name)
{
	size_t i;

	snprintf(key, len, "%c:%s", type == RESOLVE_SRV ? 's' : 'a', name);
	for (i = 2; key[i] != '\0'; i++)
		if (key[i] >= 'A' && key[i] <= 'Z')
			key[i] = (char)(key[i] - 'A' + 'a');
	if (i > 2 && key[i - 1] == '.')
		key[i - 1] = '\0'; /* one spelling for a name written with its final dot */
}

struct resolve_name *resolve_find(struct resolve *r, enum resolve_type type, const char *name)
{
	char key[RESOLVE_NAME_MAX + 2];
	uintptr_t v;

	make_key(key, sizeof(key), type, name);
	return util_hmap_get(&r->index, key, name_key, NULL, &v) ? (struct resolve_name *)v : NULL;
}

struct resolve_watch *resolve_watch(struct resolve *r, enum resolve_type type, const char *name,
				    resolve_fn fn, void *arg)
{
	char key[RESOLVE_NAME_MAX + 2];
	struct resolve_watch *w = calloc(1, sizeof(*w));
	struct resolve_name *n;
	uintptr_t v;

	if (w == NULL)
		return NULL;
	make_key(key, sizeof(key), type, name);
	if (util_hmap_get(&r->index, key, name_key, NULL, &v)) {
		n = (struct resolve_name *)v;
	} else {
		n = calloc(1, sizeof(*n));
		if (n == NULL || util_hmap_add(&r->index, key, (uintptr_t)n) < 0) {
			free(n);
			free(w);
			return NULL;
		}
		n->r = r;
		n->type = type;
		util_strlcpy(n->name, key + 2, sizeof(n->name));
		util_strlcpy(n->key, key, sizeof(n->key));
		list_init(&n->watches);
		list_init(&n->due_link);
		list_add_tail(&r->names, &n->link);
		ev_timer_init(&n->timer, on_name_timer, 0.0, 0.0);
		n->timer.data = n;
		/* the first lookup at the next loop iteration, never from here */
		ev_timer_start(r->loop, &n->timer);
	}
	w->n = n;
	w->fn = fn;
	w->arg = arg;
	list_add_tail(&n->watches, &w->link);
	n->nwatches++;
	return w;
}

void resolve_unwatch(struct resolve_watch *w)
{
	struct resolve_name *n;

	if (w == NULL || w->dead)
		return;
	n = w->n;
	n->nwatches--;
	if (n->calling > 0) {
		w->dead = true;
		return;
	}
	list_del(&w->link);
	free(w);
	if (n->nwatches == 0)
		name_free(n);
}

struct resolve_name *resolve_watch_name(const struct resolve_watch *w)
{
	return w->n;
}

void resolve_refresh(struct resolve_name *n)
{
	if (n->lk != NULL)
		return;
	ev_timer_stop(n->r->loop, &n->timer);
	ev_timer_set(&n->timer, 0.0, 0.0);
	ev_timer_start(n->r->loop, &n->timer);
}

uint64_t resolve_name_lookups(const struct resolve_name *n)
{
	return n->lookups;
}

void resolve_name_info(const struct resolve_name *n, struct resolve_name_info *out)
{
	memset(out, 0, sizeof(*out));
	out->name = n->name;
	out->type = n->type;
	out->state = n->state;
	out->from_hosts = n->from_hosts;
	out->recs = n->recs;
	out->nrecs = n->nrecs;
	out->ttl_s = n->ttl_s;
	out->answered_ms = n->answered_ms;
	out->expires_ms = n->expires_ms;
	out->held_until_ms = n->state == RESOLVE_HELD ? n->held_until_ms : 0;
	out->next_ms = n->lk != NULL ? 0 : n->next_ms;
	out->last_error = n->last_error;
	out->failing = n->failing;
	out->counters = n->counters;
}

void resolve_foreach(struct resolve *r, void (*fn)(void *arg, const struct resolve_name *n),
		     void *arg)
{
	for (struct list_node *it = r->names.next; it != &r->names; it = it->next)
		fn(arg, list_entry(it, struct resolve_name, link));
}
