/* pool: the model of pools and servers (control thread) and the lock-free
 * pick and release used by workers. Snapshots (struct pool_lb) are rebuilt
 * whole on every change and retired through QSBR; servers and pools are
 * reference counted because connections outlive snapshots. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/balance.h"
#include "sluice/log.h"
#include "sluice/pool.h"
#include "sluice/srvopt.h"
#include "sluice/util.h"

static struct qsbr *pool_qsbr;
/* control thread only, like every publish */
static pool_publish_fn publish_fn;
static void *publish_arg;

void pool_set_qsbr(struct qsbr *q)
{
	pool_qsbr = q;
}

void pool_set_publish_hook(pool_publish_fn fn, void *arg)
{
	publish_fn = fn;
	publish_arg = arg;
}

static void published(struct pool *p)
{
	if (publish_fn != NULL)
		publish_fn(p, publish_arg);
}

const char *pool_balance_name(enum pool_balance b)
{
	switch (b) {
	case POOL_BALANCE_ROUNDROBIN:
		return "roundrobin";
	case POOL_BALANCE_LEASTCONN:
		return "leastconn";
	case POOL_BALANCE_RANDOM:
		return "random";
	case POOL_BALANCE_MAGLEV:
		return "maglev";
	case POOL_BALANCE_FIRST:
		return "first";
	}
	return "?";
}

const char *pool_admin_name(enum pool_admin a)
{
	switch (a) {
	case POOL_ADMIN_READY:
		return "ready";
	case POOL_ADMIN_DRAIN:
		return "drain";
	case POOL_ADMIN_MAINT:
		return "maint";
	}
	return "?";
}

const char *pool_health_name(enum pool_health h)
{
	switch (h) {
	case POOL_HEALTH_UP:
		return "up";
	case POOL_HEALTH_DOWN:
		return "down";
	}
	return "?";
}

struct pool *pool_new(const char *name)
{
	struct pool *p = calloc(1, sizeof(*p));

	if (p == NULL)
		return NULL;
	util_strlcpy(p->name, name, sizeof(p->name));
	p->queue_max = 1000;
	p->timeout_queue_ms = 5000;
	p->maglev_size = POOL_MAGLEV_SIZE_DEFAULT;
	atomic_init(&p->refcnt, 1);
	return p;
}

void pool_get(struct pool *p)
{
	atomic_fetch_add_explicit(&p->refcnt, 1, memory_order_relaxed);
}

static void lb_group_free(struct pool_lb_group *g)
{
	free(g->srv);
	free(g->weights);
	free(g->seq);
	free(g->cum);
	free(g->maglev);
}

static void lb_free(void *obj)
{
	struct pool_lb *lb = obj;

	lb_group_free(&lb->primary);
	lb_group_free(&lb->backup);
	free(lb);
}

static void maglev_base_free(struct pool_maglev_base *mb)
{
	free(mb->keys);
	free(mb->weights);
	free(mb->table);
	memset(mb, 0, sizeof(*mb));
}

void pool_put(struct pool *p)
{
	if (atomic_fetch_sub_explicit(&p->refcnt, 1, memory_order_acq_rel) != 1)
		return;
	/* nobody can read p->lb any more: no QSBR needed */
	struct pool_lb *lb = atomic_load(&p->lb);

	if (lb != NULL)
		lb_free(lb);
	/* no snapshot is left to point at them */
	for (size_t i = 0; i < p->nretiring; i++)
		pool_server_put(p->retiring[i]);
	free(p->retiring);
	maglev_base_free(&p->maglev[0]);
	maglev_base_free(&p->maglev[1]);
	free(p->servers);
	util_hmap_free(&p->server_index);
	free(p);
}

struct pool_server *pool_server_new(const char *name, const struct util_addr *addr)
{
	struct pool_server *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return NULL;
	util_strlcpy(s->name, name, sizeof(s->name));
	s->addr = *addr;
	util_srvopts_init(&s->opts);
	s->weight = s->opts.weight;
	s->admin = POOL_ADMIN_READY;
	s->health = POOL_HEALTH_UP;
	atomic_init(&s->refcnt, 1);
	return s;
}

void pool_server_get(struct pool_server *s)
{
	atomic_fetch_add_explicit(&s->refcnt, 1, memory_order_relaxed);
}

void pool_server_put(struct pool_server *s)
{
	if (atomic_fetch_sub_explicit(&s->refcnt, 1, memory_order_acq_rel) != 1)
		return;
	if (s->pool != NULL)
		pool_put(s->pool);
	free(s->host);
	free(s->dns_target);
	free(s);
}

int pool_server_set_dns(struct pool_server *s, enum pool_dns_origin origin, const char *host,
			const char *target)
{
	char *h = NULL, *t = NULL;

	if ((host != NULL && (h = strdup(host)) == NULL) ||
	    (target != NULL && (t = strdup(target)) == NULL)) {
		free(h);
		return -1;
	}
	free(s->host);
	free(s->dns_target);
	s->host = h;
	s->dns_target = t;
	s->dns_origin = origin;
	return 0;
}

static const char *server_key(const void *arg, uintptr_t val)
{
	(void)arg;
	return ((const struct pool_server *)val)->name;
}

int pool_add_server(struct pool *p, struct pool_server *s)
{
	if (p->nservers == p->cap) {
		size_t cap = p->cap ? 2 * p->cap : 8;
		struct pool_server **a = realloc(p->servers, cap * sizeof(*a));

		if (a == NULL)
			return -1;
		p->servers = a;
		p->cap = cap;
	}
	if (util_hmap_add(&p->server_index, s->name, (uintptr_t)s) < 0)
		return -1;
	p->servers[p->nservers++] = s;
	s->pool = p;
	s->removed = false;
	pool_get(p);
	return 0;
}

enum pool_proxy_proto pool_proxy_from(enum util_proxy_proto p, enum pool_proxy_proto inherit)
{
	switch (p) {
	case UTIL_PROXY_V1:
		return POOL_PROXY_V1;
	case UTIL_PROXY_V2:
		return POOL_PROXY_V2;
	case UTIL_PROXY_NONE:
		return POOL_PROXY_NONE;
	case UTIL_PROXY_INHERIT:
		break;
	}
	return inherit;
}

void pool_server_set_opts(struct pool_server *s, const struct util_srvopts *o)
{
	/* a weight set at runtime wins until the configured one changes */
	if (!s->weight_overridden || s->opts.weight != o->weight) {
		s->weight = o->weight;
		s->weight_overridden = false;
	}
	s->opts = *o;
	atomic_store(&s->maxconn, o->maxconn);
	s->backup = o->backup;
	atomic_store(&s->send_proxy, pool_proxy_from(o->send_proxy, s->pool->send_proxy));
}

int pool_server_check(const struct pool *p, const char *name, const struct util_srvopts *o,
		      char *err, size_t errlen)
{
	if (util_name_check("server", name, strlen(name), err, errlen) < 0 ||
	    util_srvopts_check(o, err, errlen) < 0)
		return -1;
	if (pool_find_server(p, name) != NULL) {
		snprintf(err, errlen, "duplicate server '%s' in pool '%s'", name, p->name);
		return -1;
	}
	/* conf_check.c says the same of a file's server */
	if (!p->has_check && (o->check.off || o->check.port != 0)) {
		snprintf(err, errlen,
			 "server '%s' has check options but pool '%s' has no check block", name,
			 p->name);
		return -1;
	}
	if (!p->has_agent && (o->agent.off || o->agent.port != 0)) {
		snprintf(err, errlen, "server '%s' has agent options but pool '%s' has no agent",
			 name, p->name);
		return -1;
	}
	return 0;
}

struct pool_server *pool_server_create(struct pool *p, const char *name,
				       const struct util_addr *addr, const struct util_srvopts *o,
				       char *err, size_t errlen)
{
	struct pool_server *s;

	if (pool_server_check(p, name, o, err, errlen) < 0)
		return NULL;
	s = pool_server_new(name, addr);
	if (s == NULL || pool_add_server(p, s) < 0) {
		if (s != NULL)
			pool_server_put(s);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	pool_server_set_opts(s, o);
	return s;
}

static void server_put_cb(void *obj)
{
	pool_server_put(obj);
}

/* The list references of the servers taken out, once the snapshot that
 * could point at them is no longer the published one. */
static void retire_taken_out(struct pool *p)
{
	for (size_t i = 0; i < p->nretiring; i++)
		if (qsbr_retire(pool_qsbr, p->retiring[i], server_put_cb) < 0)
			log_err("pool %s: out of memory retiring server %s", p->name,
				p->retiring[i]->name);
	p->nretiring = 0;
}

static bool is_target(void *arg, struct pool_server *s)
{
	return s == arg;
}

void pool_remove_server(struct pool *p, struct pool_server *s)
{
	if (pool_remove_if(p, is_target, s) > 0)
		pool_publish(p);
}

/* Room in the retiring list for n more. Returns 0 or -1. */
static int retiring_reserve(struct pool *p, size_t n)
{
	struct pool_server **a;

	if (p->nretiring + n <= p->retiring_cap)
		return 0;
	a = realloc(p->retiring, (p->nretiring + n) * sizeof(*a));
	if (a == NULL)
		return -1;
	p->retiring = a;
	p->retiring_cap = p->nretiring + n;
	return 0;
}

int pool_sweep_step(struct pool *p, struct pool_sweep *sw, size_t max,
		    bool (*doomed)(void *arg, struct pool_server *s), void *arg)
{
	/* room for all of them first, so that the finish cannot fail */
	if (!sw->reserved) {
		if (retiring_reserve(p, p->nservers) < 0)
			return -1;
		sw->reserved = true;
	}
	/* a permutation at every moment: [0, kept) stays, in its order,
	 * [kept, seen) goes (already out of the name index), [seen,
	 * nservers) is still to look at */
	for (; sw->seen < p->nservers && max > 0; sw->seen++, max--) {
		struct pool_server *s = p->servers[sw->seen];

		if (doomed(arg, s)) {
			util_hmap_del(&p->server_index, s->name, (uintptr_t)s);
			s->removed = true;
			continue;
		}
		p->servers[sw->seen] = p->servers[sw->kept];
		p->servers[sw->kept++] = s;
	}
	return sw->seen == p->nservers ? 0 : 1;
}

long pool_sweep_finish(struct pool *p, struct pool_sweep *sw)
{
	size_t n = sw->seen - sw->kept; /* room reserved by the first step */

	for (size_t i = 0; i < n; i++)
		p->retiring[p->nretiring++] = p->servers[sw->kept + i];
	/* servers appended after the last step stay */
	memmove(&p->servers[sw->kept], &p->servers[sw->seen],
		(p->nservers - sw->seen) * sizeof(p->servers[0]));
	p->nservers -= n;
	return (long)n;
}

long pool_remove_if(struct pool *p, bool (*doomed)(void *arg, struct pool_server *s), void *arg)
{
	struct pool_sweep sw = {0};

	if (pool_sweep_step(p, &sw, SIZE_MAX, doomed, arg) < 0)
		return -1;
	return pool_sweep_finish(p, &sw);
}

void pool_freeze(struct pool *p)
{
	p->frozen = true;
}

int pool_thaw(struct pool *p)
{
	p->frozen = false;
	return pool_publish(p);
}

struct pool_server *pool_find_server(const struct pool *p, const char *name)
{
	uintptr_t s;

	return util_hmap_get(&p->server_index, name, server_key, NULL, &s) ? (struct pool_server *)s
									   : NULL;
}

bool pool_server_eligible(const struct pool_server *s)
{
	return s->admin == POOL_ADMIN_READY && s->health == POOL_HEALTH_UP && s->weight > 0 &&
	       !s->dns_gone;
}

bool pool_has_usable(const struct pool *p)
{
	for (size_t i = 0; i < p->nservers; i++)
		if (!p->servers[i]->removed && pool_server_eligible(p->servers[i]))
			return true;
	return false;
}

static int by_name(const void *a, const void *b)
{
	return strcmp((*(struct pool_server *const *)a)->name,
		      (*(struct pool_server *const *)b)->name);
}

/* Make mb the base table of these members (keys, weights in name order)
 * with m slots, rebuilding it only when one of them changed. The arrays are
 * copied. Returns 0 or -1 (no memory; mb unchanged). */
static int maglev_base_update(struct pool_maglev_base *mb, const uint64_t *keys,
			      const uint32_t *weights, size_t n, uint32_t m)
{
	struct pool_maglev_base nb = {.n = n, .m = m};

	if (mb->table != NULL && mb->m == m && mb->n == n &&
	    memcmp(mb->keys, keys, n * sizeof(*keys)) == 0 &&
	    memcmp(mb->weights, weights, n * sizeof(*weights)) == 0)
		return 0;
	nb.keys = malloc(n * sizeof(*keys));
	nb.weights = malloc(n * sizeof(*weights));
	nb.table = malloc((size_t)m * sizeof(*nb.table));
	if (nb.keys == NULL || nb.weights == NULL || nb.table == NULL ||
	    balance_maglev_build(keys, weights, n, m, nb.table) < 0) {
		maglev_base_free(&nb);
		return -1;
	}
	memcpy(nb.keys, keys, n * sizeof(*keys));
	memcpy(nb.weights, weights, n * sizeof(*weights));
	maglev_base_free(mb);
	*mb = nb;
	return 0;
}

/* The maglev group: members are the servers of the group with weight > 0,
 * in name order; the base table holds them all, the snapshot's table is
 * the base refilled for those eligible now, renumbered to g->srv. */
static int maglev_group_build(struct pool *p, struct pool_lb_group *g, bool backup)
{
	struct pool_server **mem = calloc(p->nservers + 1, sizeof(*mem));
	uint64_t *keys = calloc(p->nservers + 1, sizeof(*keys));
	uint32_t *full = calloc(p->nservers + 1, sizeof(*full));
	uint32_t *cur = calloc(p->nservers + 1, sizeof(*cur));
	int32_t *to_srv = calloc(p->nservers + 1, sizeof(*to_srv));
	size_t n = 0, ne = 0;
	int rc = -1;

	if (mem == NULL || keys == NULL || full == NULL || cur == NULL || to_srv == NULL)
		goto out;
	for (size_t i = 0; i < p->nservers; i++) {
		struct pool_server *s = p->servers[i];

		if (s->backup == backup && s->weight > 0) {
			mem[n++] = s;
			ne += pool_server_eligible(s);
		}
	}
	rc = 0;
	if (ne == 0)
		goto out;
	rc = -1;
	qsort(mem, n, sizeof(*mem), by_name);
	g->srv = calloc(ne, sizeof(*g->srv));
	g->weights = calloc(ne, sizeof(*g->weights));
	g->maglev = malloc((size_t)p->maglev_size * sizeof(*g->maglev));
	if (g->srv == NULL || g->weights == NULL || g->maglev == NULL)
		goto out;
	g->maglev_size = p->maglev_size;
	for (size_t i = 0; i < n; i++) {
		keys[i] = util_hash64(mem[i]->name, strlen(mem[i]->name), 0);
		full[i] = mem[i]->weight * POOL_WEIGHT_SCALE;
		to_srv[i] = -1;
		if (pool_server_eligible(mem[i])) {
			cur[i] = pool_server_lb_weight(mem[i]);
			to_srv[i] = (int32_t)g->n;
			g->srv[g->n] = mem[i];
			g->weights[g->n++] = cur[i];
		}
	}
	if (maglev_base_update(&p->maglev[backup], keys, full, n, p->maglev_size) < 0)
		goto out;
	/* -1 when the eligible members kept no slot (more members than
	 * slots, or a ramp's first share of none): picks then scan g->srv */
	balance_maglev_refill(p->maglev[backup].table, g->maglev_size, keys, cur, full, g->maglev);
	for (uint32_t j = 0; j < g->maglev_size; j++)
		if (g->maglev[j] >= 0)
			g->maglev[j] = to_srv[g->maglev[j]];
	rc = 0;
out:
	free(mem);
	free(keys);
	free(full);
	free(cur);
	free(to_srv);
	return rc;
}

/* Fill both groups of a snapshot with the eligible servers and their
 * weights, in file order, in one pass over the servers (a pool of 100 000
 * is tens of megabytes of servers to read): primaries from the front of
 * one array, backups from its back. Returns 0 or -1. */
static int lb_collect(struct pool *p, struct pool_lb *lb)
{
	size_t n = p->nservers, np = 0, nb = 0;
	struct pool_server **srv;
	uint32_t *w;

	if (n == 0)
		return 0;
	srv = malloc(n * sizeof(*srv));
	w = malloc(n * sizeof(*w));
	if (srv == NULL || w == NULL)
		goto nomem;
	for (size_t i = 0; i < n; i++) {
		struct pool_server *s = p->servers[i];
		size_t k;

		if (!pool_server_eligible(s))
			continue;
		k = s->backup ? n - ++nb : np++;
		srv[k] = s;
		w[k] = pool_server_lb_weight(s);
	}
	if (nb > 0) {
		struct pool_lb_group *g = &lb->backup;

		g->srv = malloc(nb * sizeof(*g->srv));
		g->weights = malloc(nb * sizeof(*g->weights));
		if (g->srv == NULL || g->weights == NULL)
			goto nomem;
		for (size_t k = 0; k < nb; k++) {
			g->srv[k] = srv[n - 1 - k];
			g->weights[k] = w[n - 1 - k];
		}
		g->n = nb;
	}
	if (np == 0)
		goto none;
	lb->primary.srv = srv;
	lb->primary.weights = w;
	lb->primary.n = np;
	return 0;
nomem:
	free(srv);
	free(w);
	return -1;
none:
	free(srv);
	free(w);
	return 0;
}

/* The picking table of one group, collected by lb_collect(). Returns 0 or
 * -1. */
static int lb_group_build(struct pool *p, struct pool_lb_group *g)
{
	size_t n = g->n;

	if (n == 0)
		return 0;
	switch (p->balance) {
	case POOL_BALANCE_ROUNDROBIN:
		return balance_swrr_build(g->weights, g->n, &g->seq, &g->seqlen);
	case POOL_BALANCE_RANDOM:
		g->cum = calloc(n, sizeof(*g->cum));
		if (g->cum == NULL)
			return -1;
		balance_cumulative(g->weights, n, g->cum);
		return 0;
	case POOL_BALANCE_MAGLEV: /* maglev_group_build() */
	case POOL_BALANCE_LEASTCONN:
	case POOL_BALANCE_FIRST:
		return 0;
	}
	return 0;
}

/* Both groups of a snapshot: Maglev builds each from its members in name
 * order (maglev_group_build), the others take the eligible servers of both
 * in one pass (lb_collect). Returns 0 or -1. */
static int lb_build(struct pool *p, struct pool_lb *lb)
{
	if (p->balance == POOL_BALANCE_MAGLEV) {
		if (maglev_group_build(p, &lb->primary, false) < 0 ||
		    maglev_group_build(p, &lb->backup, true) < 0)
			return -1;
		return 0;
	}
	/* not (or no longer, after a reload) Maglev: no base tables */
	maglev_base_free(&p->maglev[0]);
	maglev_base_free(&p->maglev[1]);
	if (lb_collect(p, lb) < 0 || lb_group_build(p, &lb->primary) < 0 ||
	    lb_group_build(p, &lb->backup) < 0)
		return -1;
	return 0;
}

int pool_publish(struct pool *p)
{
	struct pool_lb *lb, *old;

	if (p->frozen)
		return 0; /* pool_thaw() publishes */
	lb = calloc(1, sizeof(*lb));
	if (lb == NULL)
		return -1;
	lb->balance = p->balance;
	lb->queue_max = p->queue_max;
	lb->timeout_queue_ms = p->timeout_queue_ms;
	if (lb_build(p, lb) < 0) {
		lb_free(lb);
		log_err("pool %s: out of memory building the balancer table", p->name);
		published(p); /* the model changed all the same */
		return -1;
	}
	old = atomic_exchange(&p->lb, lb);
	if (old != NULL && qsbr_retire(pool_qsbr, old, lb_free) < 0)
		log_err("pool %s: out of memory retiring a balancer table", p->name);
	retire_taken_out(p);
	published(p);
	return 0;
}

void pool_retire(struct pool *p)
{
	struct pool_lb *old = atomic_exchange(&p->lb, NULL);

	p->removed = true;
	if (old != NULL && qsbr_retire(pool_qsbr, old, lb_free) < 0)
		log_err("pool %s: out of memory retiring a balancer table", p->name);
	retire_taken_out(p);
	for (size_t i = 0; i < p->nservers; i++) {
		p->servers[i]->removed = true;
		if (qsbr_retire(pool_qsbr, p->servers[i], server_put_cb) < 0)
			log_err("pool %s: out of memory retiring a server", p->name);
	}
	p->nservers = 0;
	util_hmap_free(&p->server_index);
	published(p);
}

/* ---- worker side ---- */

struct pick_arg {
	const struct pool_lb_group *g;
	const struct pool_pick *pk;
	bool saw_full;
};

static bool tried(const struct pool_pick *pk, const struct pool_server *s)
{
	for (size_t i = 0; i < pk->ntried; i++)
		if (pk->tried[i] == s)
			return true;
	return false;
}

static bool usable_cb(void *arg, size_t idx)
{
	struct pick_arg *a = arg;
	struct pool_server *s = a->g->srv[idx];

	if (tried(a->pk, s) || pool_server_passive_flagged(s))
		return false;
	if (s->maxconn != 0 &&
	    atomic_load_explicit(&s->cur_conns, memory_order_relaxed) >= s->maxconn) {
		a->saw_full = true;
		return false;
	}
	return true;
}

static uint32_t load_cb(void *arg, size_t idx)
{
	struct pick_arg *a = arg;

	return atomic_load_explicit(&a->g->srv[idx]->cur_conns, memory_order_relaxed);
}

/* Take a connection slot on s, respecting maxconn between workers. */
static bool server_acquire(struct pool_server *s)
{
	uint32_t cur = atomic_load_explicit(&s->cur_conns, memory_order_relaxed);

	do {
		if (s->maxconn != 0 && cur >= s->maxconn)
			return false;
	} while (!atomic_compare_exchange_weak(&s->cur_conns, &cur, cur + 1));
	pool_server_get(s);
	atomic_fetch_add_explicit(&s->total_conns, 1, memory_order_relaxed);
	return true;
}

static size_t group_pick(struct pool_lb *lb, struct pick_arg *a, uint64_t h, uint64_t *rng)
{
	const struct pool_lb_group *g = a->g;
	uint32_t c;

	if (g->n == 0)
		return BALANCE_NONE;
	switch (lb->balance) {
	case POOL_BALANCE_ROUNDROBIN:
		c = atomic_fetch_add_explicit(&lb->cursor, 1, memory_order_relaxed);
		return balance_pick_seq(g->seq, g->seqlen, c, usable_cb, a);
	case POOL_BALANCE_LEASTCONN:
		c = atomic_fetch_add_explicit(&lb->cursor, 1, memory_order_relaxed);
		return balance_pick_leastconn(g->weights, g->n, c % g->n, load_cb, usable_cb, a);
	case POOL_BALANCE_RANDOM:
		return balance_pick_p2c(g->cum, g->weights, g->n, rng, load_cb, usable_cb, a);
	case POOL_BALANCE_MAGLEV:
		return balance_pick_maglev(g->maglev, g->maglev_size, g->n, h, usable_cb, a);
	case POOL_BALANCE_FIRST:
		return balance_pick_first(g->n, usable_cb, a);
	}
	return BALANCE_NONE;
}

enum pool_pick_result pool_pick(struct pool *p, struct pool_pick *pk, uint64_t *rng,
				struct pool_server **out)
{
	struct pool_lb *lb = atomic_load_explicit(&p->lb, memory_order_acquire);
	const struct pool_lb_group *groups[2];
	bool saw_full = false;

	if (lb == NULL)
		return POOL_PICK_NONE;
	groups[0] = &lb->primary;
	groups[1] = &lb->backup;
	for (int gi = 0; gi < 2; gi++) {
		struct pick_arg a = {.g = groups[gi], .pk = pk};

		/* a lost race for the last slot of a server: pick again */
		for (int attempt = 0; attempt < 4; attempt++) {
			size_t idx = group_pick(lb, &a, pk->client_hash, rng);

			if (idx == BALANCE_NONE)
				break;
			if (server_acquire(a.g->srv[idx])) {
				*out = a.g->srv[idx];
				return POOL_PICK_OK;
			}
			a.saw_full = true;
		}
		saw_full |= a.saw_full;
		/* backups only when no primary is usable at all, not when busy */
		if (saw_full) {
			pk->queue_max = lb->queue_max;
			pk->timeout_queue_ms = lb->timeout_queue_ms;
			return POOL_PICK_FULL;
		}
	}
	return POOL_PICK_NONE;
}

bool pool_server_release(struct pool_server *s)
{
	struct pool *p = s->pool; /* the caller holds a reference to it */

	atomic_fetch_sub_explicit(&s->cur_conns, 1, memory_order_release);
	pool_server_put(s);
	return atomic_load_explicit(&p->queued, memory_order_relaxed) > 0;
}

void pool_server_connect_failed(struct pool_server *s)
{
	uint32_t n;

	atomic_fetch_add_explicit(&s->connect_errors, 1, memory_order_relaxed);
	n = atomic_fetch_add_explicit(&s->consecutive_errors, 1, memory_order_relaxed) + 1;
	pool_health_observe_error(s, n);
}

void pool_server_local_error(struct pool_server *s)
{
	atomic_fetch_add_explicit(&s->local_errors, 1, memory_order_relaxed);
}

void pool_server_connect_ok(struct pool_server *s)
{
	if (atomic_load_explicit(&s->consecutive_errors, memory_order_relaxed) != 0)
		atomic_store_explicit(&s->consecutive_errors, 0, memory_order_relaxed);
}
