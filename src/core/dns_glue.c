/* dns_glue: the resolvers (src/resolve) and the model. Every server
 * written with a host name and every `servers srv|dns` line is a ref: a
 * watch on its pool's resolvers block whose answers change the model:
 *  - a named server keeps its address while it is among the answers; when
 *    it is not, the server is replaced by one at the new address (a new
 *    server, as a reload would make; connections to the old one finish);
 *    when the name's hold runs out it is DOWN until the name answers;
 *  - a `servers` line makes one server per answer (stable names derived
 *    from the address or the SRV target), drains the ones that leave the
 *    answer and takes them out once their connections are over.
 * Loading a file (start, check, reload) looks its names up first
 * (core_dns_prepare); while a reload runs, answers only mark the glue
 * dirty and are applied once it is over, since the loader thread reads
 * the running configuration and the apply steps forbid adding servers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core.h"
#include "dns-int.h"
#include "sluice/conf.h"
#include "sluice/ctl.h"
#include "sluice/log.h"
#include "sluice/pool.h"
#include "sluice/resolve.h"
#include "sluice/util.h"

#define DNS_FIRST_WAIT_MS 2000 /* a load waits this long for its names */
#define DNS_SWEEP_S 1.0	       /* drained servers that left DNS are taken out this often */

/* ---- blocks ---- */

static void resolve_conf_from(struct resolve_conf *rc, const struct conf_resolvers *cr)
{
	memset(rc, 0, sizeof(*rc));
	util_strlcpy(rc->name, cr->name, sizeof(rc->name));
	for (size_t i = 0; i < cr->nnameservers && i < RESOLVE_MAX_NAMESERVERS; i++)
		rc->nameservers[rc->nnameservers++] = cr->nameservers[i];
	rc->timeout_ms = cr->timeout_ms;
	rc->attempts = cr->attempts;
	rc->hold_valid_ms = cr->hold_valid_ms;
	rc->hold_nx_ms = cr->hold_nx_ms;
	rc->hold_timeout_ms = cr->hold_timeout_ms;
	rc->ttl_min_ms = cr->ttl_min_ms;
	rc->ttl_max_ms = cr->ttl_max_ms;
}

static void block_put(struct core_dns_block *b)
{
	if (b == NULL || --b->refs > 0)
		return;
	resolve_free(b->r);
	free(b);
}

/* The blocks of nc: a running one whose settings are the same is kept
 * (its names and their answers with it), else a new one. Returns 0 or -1. */
static int blocks_for(struct core_dns *d, const struct conf *nc, struct core_dns_block ***out,
		      char *err, size_t errlen)
{
	struct core_dns_block **bs = calloc(nc->nresolvers + 1, sizeof(*bs));

	if (bs == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (size_t i = 0; i < nc->nresolvers; i++) {
		struct resolve_conf rc;

		resolve_conf_from(&rc, &nc->resolvers[i]);
		for (size_t k = 0; k < d->nblocks && bs[i] == NULL; k++)
			if (resolve_conf_equal(&d->blocks[k]->rc, &rc))
				bs[i] = d->blocks[k];
		if (bs[i] != NULL) {
			bs[i]->refs++;
			continue;
		}
		bs[i] = calloc(1, sizeof(*bs[i]));
		if (bs[i] != NULL)
			bs[i]->r = resolve_new(d->c->loop, &rc, err, errlen);
		if (bs[i] == NULL || bs[i]->r == NULL) {
			if (bs[i] == NULL)
				snprintf(err, errlen, "out of memory");
			free(bs[i]);
			bs[i] = NULL;
			for (size_t k = 0; k < i; k++)
				block_put(bs[k]);
			free(bs);
			return -1;
		}
		bs[i]->rc = rc;
		bs[i]->refs = 1;
	}
	*out = bs;
	return 0;
}

static struct core_dns_block *block_named(struct core_dns_block **bs, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(bs[i]->rc.name, name) == 0)
			return bs[i];
	return NULL;
}

struct core_dns_block *core_dns_block_of(struct core_dns *d, const char *pool)
{
	const struct conf_pool *cp = conf_find_pool(d->c->conf, pool);

	return block_named(d->blocks, d->nblocks, cp != NULL ? cp->resolvers : "default");
}

/* ---- refs ---- */

static void on_answer(void *arg, struct resolve_watch *w, bool changed);

static void ref_free(struct core_dns_ref *ref)
{
	if (ref == NULL)
		return;
	resolve_unwatch(ref->w);
	free(ref);
}

static int set_add(struct dns_set *s, struct core_dns_ref *ref)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 16;
		struct core_dns_ref **a = realloc(s->refs, cap * sizeof(*a));

		if (a == NULL)
			return -1;
		s->refs = a;
		s->cap = cap;
	}
	s->refs[s->n++] = ref;
	return 0;
}

static void set_clear(struct dns_set *s)
{
	for (size_t i = 0; i < s->n; i++)
		ref_free(s->refs[i]);
	free(s->refs);
	memset(s, 0, sizeof(*s));
}

/* A ref of kind on blk for name, watched at once. NULL on no memory. */
static struct core_dns_ref *ref_new(struct core_dns *d, struct core_dns_block *blk,
				    enum dns_ref_kind kind, const char *pool, const char *host)
{
	struct core_dns_ref *ref = calloc(1, sizeof(*ref));
	enum resolve_type t = RESOLVE_ADDR;

	if (ref == NULL)
		return NULL;
	ref->d = d;
	ref->kind = kind;
	ref->blk = blk;
	util_strlcpy(ref->pool, pool, sizeof(ref->pool));
	util_strlcpy(ref->host, host, sizeof(ref->host));
	if (kind == DNS_REF_SOURCE)
		t = RESOLVE_SRV; /* corrected by the caller for `servers dns` */
	ref->type = t;
	return ref;
}

static int ref_watch(struct core_dns_ref *ref)
{
	ref->w = resolve_watch(ref->blk->r, ref->type, ref->host, on_answer, ref);
	return ref->w != NULL ? 0 : -1;
}

/* ---- picking addresses ---- */

/* The host part of a equals b's (ports aside). */
static bool same_host(const struct util_addr *a, const struct util_addr *b)
{
	struct util_addr x = *a, y = *b;

	util_addr_set_port(&x, 0);
	util_addr_set_port(&y, 0);
	return util_addr_equal(&x, &y);
}

/* The address a named server takes from recs: keep is kept while it is
 * among them, else the first (the records are sorted: IPv4 before IPv6,
 * lowest first, so that the same answer always gives the same pick). */
static bool pick_addr(const struct resolve_rec *recs, size_t n, const struct util_addr *keep,
		      uint16_t port, struct util_addr *out)
{
	if (n == 0)
		return false;
	for (size_t i = 0; keep != NULL && keep->len != 0 && i < n; i++) {
		if (same_host(&recs[i].addr, keep)) {
			*out = recs[i].addr;
			util_addr_set_port(out, port);
			return true;
		}
	}
	*out = recs[0].addr;
	util_addr_set_port(out, port);
	return true;
}

/* ---- loading a file: its names looked up ---- */

static void prep_finish(struct core_dns *d);

static void on_prep_deadline(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct core_dns *d = t->data;

	(void)loop;
	(void)revents;
	prep_finish(d);
}

/* A ref of the file being loaded: counted once its first fresh lookup is
 * over. */
static void prep_answer(struct core_dns_ref *ref)
{
	struct dns_prep *p = ref->d->prep;

	if (p == NULL || ref->answered ||
	    resolve_name_lookups(resolve_watch_name(ref->w)) <= ref->start_lookups)
		return;
	ref->answered = true;
	if (--p->pending == 0) {
		/* finish outside the resolver's callback: it may free blocks */
		ev_timer_stop(ref->d->c->loop, &p->deadline);
		ev_timer_set(&p->deadline, 0.0, 0.0);
		ev_timer_start(ref->d->c->loop, &p->deadline);
	}
}

static int prep_ref(struct core_dns *d, struct dns_prep *p, struct core_dns_block *blk,
		    enum dns_ref_kind kind, enum resolve_type type, const char *pool,
		    const char *host)
{
	struct core_dns_ref *ref = ref_new(d, blk, kind, pool, host);
	struct resolve_name *n;

	if (ref == NULL)
		return -1;
	ref->type = type;
	ref->prep = true;
	if (ref_watch(ref) < 0 || set_add(&p->set, ref) < 0) {
		ref_free(ref);
		return -1;
	}
	n = resolve_watch_name(ref->w);
	resolve_refresh(n); /* a load wants a fresh answer for every name */
	ref->start_lookups = resolve_name_lookups(n);
	p->pending++;
	return 0;
}

int core_dns_prepare(struct core *c, struct conf *nc, struct conf_errors *errs,
		     void (*done)(void *arg), void *arg)
{
	struct core_dns *d = c->dns;
	struct dns_prep *p;
	char err[256];
	static const struct conf_where nowhere;

	if (d->prep != NULL) {
		conf_errors_add(errs, nc->file, &nowhere, NULL,
				"a load is already looking up names");
		return -1;
	}
	p = calloc(1, sizeof(*p));
	if (p == NULL) {
		conf_errors_add(errs, nc->file, &nowhere, NULL, "out of memory");
		return -1;
	}
	p->nc = nc;
	p->errs = errs;
	p->done = done;
	p->arg = arg;
	if (blocks_for(d, nc, &p->blocks, err, sizeof(err)) < 0) {
		conf_errors_add(errs, nc->file, &nowhere, NULL, err);
		free(p);
		return -1;
	}
	p->nblocks = nc->nresolvers;
	d->prep = p;
	for (size_t i = 0; i < nc->npools; i++) {
		const struct conf_pool *cp = &nc->pools[i];
		struct core_dns_block *blk = block_named(p->blocks, p->nblocks, cp->resolvers);

		for (size_t k = 0; k < cp->nservers; k++) {
			const struct conf_server *cs = &cp->servers[k];
			struct core_dns_ref *ref;

			if (cs->host[0] == '\0')
				continue;
			if (prep_ref(d, p, blk, DNS_REF_SERVER, RESOLVE_ADDR, cp->name, cs->host) <
			    0)
				goto nomem;
			ref = p->set.refs[p->set.n - 1];
			ref->cs = cs;
			ref->from_file = true;
			util_strlcpy(ref->server, cs->name, sizeof(ref->server));
			ref->port = cs->port;
		}
		for (size_t k = 0; k < cp->ndiscover; k++) {
			const struct conf_discover *cd = &cp->discover[k];
			struct core_dns_ref *ref;

			if (prep_ref(d, p, blk, DNS_REF_SOURCE,
				     cd->kind == CONF_DISCOVER_SRV ? RESOLVE_SRV : RESOLVE_ADDR,
				     cp->name, cd->name) < 0)
				goto nomem;
			ref = p->set.refs[p->set.n - 1];
			ref->src = *cd;
			ref->port = cd->port;
		}
	}
	ev_timer_init(&p->deadline, on_prep_deadline,
		      p->pending > 0 ? DNS_FIRST_WAIT_MS / 1000.0 : 0.0, 0.0);
	p->deadline.data = d;
	ev_timer_start(c->loop, &p->deadline);
	return 0;
nomem:
	conf_errors_add(errs, nc->file, &nowhere, NULL, "out of memory looking up names");
	core_dns_abort(c);
	return -1;
}

/* The names answered, or the wait is over: addresses into the file, or
 * an error at the line of each named server without one. */
static void prep_finish(struct core_dns *d)
{
	struct dns_prep *p = d->prep;
	char diff[1024];
	size_t off = 0;

	if (p == NULL || p->finished)
		return;
	p->finished = true;
	diff[0] = '\0';
	for (size_t i = 0; i < p->set.n; i++) {
		struct core_dns_ref *ref = p->set.refs[i];
		struct resolve_name_info in;
		struct conf_server *cs = (struct conf_server *)ref->cs;
		struct util_addr a, before;
		char msg[UTIL_HOST_MAX + 200], near[UTIL_HOST_MAX + 8];

		resolve_name_info(resolve_watch_name(ref->w), &in);
		if (ref->kind == DNS_REF_SOURCE) {
			/* not an error: discovery starts from nothing, the
			 * resolver's log says why (the file and -c say that) */
			if (in.nrecs == 0) {
				snprintf(msg, sizeof(msg),
					 "servers %s %s: no answer yet: the pool starts without "
					 "its servers, which come when DNS answers",
					 ref->type == RESOLVE_SRV ? "srv" : "dns", ref->host);
				conf_warnings_add(p->nc, &ref->src.where, "servers", msg);
			}
			continue;
		}
		before = cs->addr;
		if (pick_addr(in.recs, in.nrecs, &before, cs->port, &a)) {
			char ab[UTIL_ADDR_STRLEN];

			cs->addr = a;
			if (before.len != 0 && !util_addr_equal(&before, &a))
				util_bufprintf(diff, sizeof(diff), &off,
					       "\npool %s: server %s: %s now resolves to %s (new "
					       "address: new identity)",
					       ref->pool, cs->name, cs->host,
					       util_addr_fmt(&a, ab, sizeof(ab)));
			continue;
		}
		if (in.state == RESOLVE_PENDING)
			snprintf(msg, sizeof(msg), "cannot resolve '%s': no answer within %dms",
				 cs->host, DNS_FIRST_WAIT_MS);
		else
			snprintf(msg, sizeof(msg), "cannot resolve '%s': %s", cs->host,
				 resolve_error_name(in.last_error));
		snprintf(near, sizeof(near), "%s:%u", cs->host, cs->port);
		conf_errors_add(p->errs, p->nc->file, &cs->addr_where, near, msg);
	}
	util_strlcpy(p->diff, diff, sizeof(p->diff));
	ev_timer_stop(d->c->loop, &p->deadline);
	p->done(p->arg);
}

const char *core_dns_prepared_diff(struct core *c)
{
	return c->dns != NULL && c->dns->prep != NULL ? c->dns->prep->diff : "";
}

static void prep_free(struct core_dns *d)
{
	struct dns_prep *p = d->prep;

	if (p == NULL)
		return;
	ev_timer_stop(d->c->loop, &p->deadline);
	set_clear(&p->set);
	for (size_t i = 0; i < p->nblocks; i++)
		block_put(p->blocks[i]);
	free(p->blocks);
	free(p);
	d->prep = NULL;
}

void core_dns_abort(struct core *c)
{
	struct core_dns *d = c->dns;

	if (d == NULL)
		return;
	prep_free(d);
	if (d->dirty && d->model_ready)
		core_dns_sync(c);
}

/* ---- the running refs ---- */

static struct core_dns_ref *find_server_ref(struct dns_set *s, const char *pool, const char *name)
{
	for (size_t i = 0; i < s->n; i++) {
		struct core_dns_ref *r = s->refs[i];

		if (r->kind == DNS_REF_SERVER && strcmp(r->pool, pool) == 0 &&
		    strcmp(r->server, name) == 0)
			return r;
	}
	return NULL;
}

void core_dns_commit(struct core *c)
{
	struct core_dns *d = c->dns;
	struct dns_prep *p = d->prep;
	struct dns_set old = d->run;

	if (p == NULL)
		return;
	/* the file's refs run now; a named server added at runtime keeps
	 * its ref (core_dns_sync finds the ones still in the model) */
	d->run = p->set;
	memset(&p->set, 0, sizeof(p->set));
	for (size_t i = 0; i < d->run.n; i++) {
		d->run.refs[i]->prep = false;
		d->run.refs[i]->cs = NULL;
	}
	for (size_t i = 0; i < old.n; i++) {
		struct core_dns_ref *r = old.refs[i];
		const struct conf_pool *cp = conf_find_pool(p->nc, r->pool);

		if (r->kind == DNS_REF_SERVER && !r->from_file && cp != NULL &&
		    find_server_ref(&d->run, r->pool, r->server) == NULL &&
		    block_named(p->blocks, p->nblocks, cp->resolvers) == r->blk &&
		    set_add(&d->run, r) == 0)
			continue;
		ref_free(r);
	}
	free(old.refs);
	for (size_t i = 0; i < d->nblocks; i++) {
		/* a block the new file does not keep goes with its names */
		if (d->blocks[i]->refs == 1)
			core_dns_lookups_drop_block(d, d->blocks[i]);
		block_put(d->blocks[i]);
	}
	free(d->blocks);
	d->blocks = p->blocks;
	d->nblocks = p->nblocks;
	p->blocks = NULL;
	p->nblocks = 0;
	prep_free(d);
	if (d->model_ready)
		core_dns_sync(c);
}

/* ---- answers into the model ---- */

static struct pool *running_pool(struct core *c, const char *name)
{
	const struct conf_pool *cp = conf_find_pool(c->conf, name);

	return cp != NULL ? c->pools[cp - c->conf->pools] : NULL;
}

void core_dns_resync_health(struct core *c)
{
	char err[256];

	if (core_health_resync(c, err, sizeof(err)) < 0)
		log_err("health checks: %s", err);
}

static void state_changed(struct core *c)
{
	if (c->ctl != NULL)
		ctl_state_changed(c->ctl);
}

/* Replace s (a server whose name moved to another address) by a new
 * server of the same name at addr: what the operator set on the name
 * (admin state, weight, added at runtime) carries over; health and
 * counters start anew. Connections to s finish. p is frozen by the caller.
 * Returns the new server or NULL (s is then kept). */
struct pool_server *core_dns_replace(struct core *c, struct pool *p, struct pool_server *s,
				     const struct util_addr *addr)
{
	struct pool_server *n;
	struct util_srvopts o = s->opts;
	char err[256], name[POOL_NAME_MAX];

	(void)c;
	util_strlcpy(name, s->name, sizeof(name));
	pool_server_get(s);
	if (pool_remove_if(p, core_dns_is_server, s) < 0) {
		pool_server_put(s);
		return NULL;
	}
	n = pool_server_create(p, name, addr, &o, err, sizeof(err));
	if (n == NULL || pool_server_set_dns(n, s->dns_origin, s->host, s->dns_target) < 0) {
		log_err("pool %s: server %s: cannot move it to its new address: %s", p->name, name,
			n == NULL ? err : "out of memory");
		if (n != NULL)
			pool_remove_if(p, core_dns_is_server, n);
		pool_add_server(p, s); /* back with the list's reference we held */
		return NULL;
	}
	n->runtime_added = s->runtime_added;
	n->admin = s->admin;
	n->admin_overridden = s->admin_overridden;
	n->admin_since_ms = s->admin_since_ms;
	n->dns_gone = s->dns_gone;
	if (s->weight_overridden) {
		n->weight = s->weight;
		n->weight_overridden = true;
	}
	pool_server_put(s);
	return n;
}

bool core_dns_is_server(void *arg, struct pool_server *s)
{
	return s == arg;
}

/* The running file's definition of a named server follows its address,
 * so that a reload keeps it and says nothing changed. */
static void conf_follow(struct core *c, const char *pool, const char *server,
			const struct util_addr *addr)
{
	const struct conf_pool *cp = conf_find_pool(c->conf, pool);
	struct conf_server *cs =
	    cp != NULL ? (struct conf_server *)conf_find_server(cp, server) : NULL;

	if (cs != NULL && cs->host[0] != '\0')
		cs->addr = *addr;
}

static void apply_server_ref(struct core_dns *d, struct core_dns_ref *ref)
{
	struct core *c = d->c;
	struct pool *p = running_pool(c, ref->pool);
	struct pool_server *s = p != NULL ? pool_find_server(p, ref->server) : NULL;
	struct resolve_name_info in;
	struct util_addr a;
	char cause[POOL_CAUSE_MAX], ab[UTIL_ADDR_STRLEN], ob[UTIL_ADDR_STRLEN];
	uint64_t now = util_now_ms();

	if (s == NULL || s->host == NULL || strcasecmp(s->host, ref->host) != 0 ||
	    s->dns_origin != POOL_DNS_NONE)
		return;
	resolve_name_info(resolve_watch_name(ref->w), &in);
	if (in.nrecs == 0) {
		if (in.state != RESOLVE_FAILED)
			return;
		snprintf(cause, sizeof(cause), "DNS: %.100s: %s", ref->host,
			 resolve_error_name(in.last_error));
		if (pool_server_set_health(s, POOL_SRC_DNS, false, cause, now)) {
			log_warn("server %s/%s DOWN: %s", p->name, s->name, cause);
			core_health_publish(c, p);
		}
		return;
	}
	pick_addr(in.recs, in.nrecs, &s->addr, util_addr_port(&s->addr), &a);
	if (!util_addr_equal(&a, &s->addr)) {
		struct pool_server *n;

		pool_freeze(p);
		n = core_dns_replace(c, p, s, &a);
		if (n != NULL) {
			log_notice("server %s/%s: %s now resolves to %s: a new server there, the "
				   "connections to %s finish",
				   p->name, n->name, ref->host, util_addr_fmt(&a, ab, sizeof(ab)),
				   util_addr_fmt_host(&s->addr, ob, sizeof(ob)));
			conf_follow(c, p->name, n->name, &a);
			s = n;
		}
		pool_thaw(p);
		core_health_publish(c, p);
		core_dns_resync_health(c);
		if (n != NULL && (n->runtime_added || n->admin_overridden || n->weight_overridden))
			state_changed(c);
	}
	if (s->hs.dns_down) {
		snprintf(cause, sizeof(cause), "DNS: %.100s answers again", ref->host);
		if (pool_server_set_health(s, POOL_SRC_DNS, true, cause, now)) {
			log_notice("server %s/%s UP: %s", p->name, s->name, cause);
		}
		s->hs.dns_down = false;
		core_health_publish(c, p);
	}
}

static void on_answer(void *arg, struct resolve_watch *w, bool changed)
{
	struct core_dns_ref *ref = arg;
	struct core_dns *d = ref->d;

	(void)w;
	if (ref->prep) {
		prep_answer(ref);
		return;
	}
	if (!changed)
		return;
	if (!d->model_ready || d->c->reload != NULL) {
		d->dirty = true; /* applied once the reload is over */
		return;
	}
	if (ref->kind == DNS_REF_SERVER)
		apply_server_ref(d, ref);
	else
		core_dns_apply_source(d, ref);
}

/* Every named server of the model has a ref; every ref is applied. */
void core_dns_sync(struct core *c)
{
	struct core_dns *d = c->dns;

	if (d == NULL)
		return;
	d->model_ready = true;
	d->dirty = false;
	for (size_t i = 0; i < c->npools; i++) {
		struct pool *p = c->pools[i];
		struct core_dns_block *blk = core_dns_block_of(d, p->name);

		for (size_t k = 0; k < p->nservers && blk != NULL; k++) {
			struct pool_server *s = p->servers[k];
			struct core_dns_ref *ref;

			if (s->host == NULL || s->dns_origin != POOL_DNS_NONE ||
			    find_server_ref(&d->run, p->name, s->name) != NULL)
				continue;
			ref = ref_new(d, blk, DNS_REF_SERVER, p->name, s->host);
			if (ref == NULL || ref_watch(ref) < 0 || set_add(&d->run, ref) < 0) {
				log_err("server %s/%s: out of memory following %s", p->name,
					s->name, s->host);
				ref_free(ref);
				continue;
			}
			util_strlcpy(ref->server, s->name, sizeof(ref->server));
			ref->port = util_addr_port(&s->addr);
		}
	}
	for (size_t i = 0; i < d->run.n; i++) {
		struct core_dns_ref *ref = d->run.refs[i];

		if (ref->kind == DNS_REF_SERVER)
			apply_server_ref(d, ref);
		else
			core_dns_apply_source(d, ref);
	}
}

void core_dns_server_added(struct core *c, struct pool_server *s)
{
	if (c->dns != NULL && s->host != NULL && s->dns_origin == POOL_DNS_NONE)
		core_dns_sync(c);
}

void core_dns_server_removed(struct core *c, struct pool_server *s)
{
	struct core_dns *d = c->dns;

	if (d == NULL || s->host == NULL || s->dns_origin != POOL_DNS_NONE)
		return;
	for (size_t i = 0; i < d->run.n; i++) {
		struct core_dns_ref *r = d->run.refs[i];

		if (r->kind == DNS_REF_SERVER && strcmp(r->pool, s->pool->name) == 0 &&
		    strcmp(r->server, s->name) == 0) {
			ref_free(r);
			d->run.refs[i] = d->run.refs[--d->run.n];
			return;
		}
	}
}

bool core_dns_source_kept(const struct conf_pool *cp, const struct pool_server *s)
{
	for (size_t i = 0; i < cp->ndiscover; i++) {
		const struct conf_discover *d = &cp->discover[i];

		if (s->host == NULL || strcasecmp(d->name, s->host) != 0)
			continue;
		if (d->kind == CONF_DISCOVER_SRV && s->dns_origin == POOL_DNS_SRV)
			return true;
		if (d->kind == CONF_DISCOVER_DNS && s->dns_origin == POOL_DNS_ADDRS &&
		    util_addr_port(&s->addr) == d->port)
			return true;
	}
	return false;
}

static bool resolvers_differ(const struct conf_resolvers *a, const struct conf_resolvers *b)
{
	struct resolve_conf x, y;

	resolve_conf_from(&x, a);
	resolve_conf_from(&y, b);
	return !resolve_conf_equal(&x, &y);
}

static bool discover_equal(const struct conf_discover *a, const struct conf_discover *b)
{
	return a->kind == b->kind && strcasecmp(a->name, b->name) == 0 && a->port == b->port &&
	       a->limit == b->limit && a->weight_from_srv == b->weight_from_srv &&
	       util_srvopts_equal(&a->opts, &b->opts);
}

static const char *kind_word(enum conf_discover_kind k)
{
	return k == CONF_DISCOVER_SRV ? "srv" : "dns";
}

void core_dns_diff(const struct conf *oc, const struct conf *nc, char *buf, size_t len, size_t *off)
{
	for (size_t i = 0; i < nc->nresolvers; i++) {
		const struct conf_resolvers *o = conf_find_resolvers(oc, nc->resolvers[i].name);

		if (o == NULL)
			util_bufprintf(buf, len, off, "resolvers %s: added\n",
				       nc->resolvers[i].name);
		else if (resolvers_differ(o, &nc->resolvers[i]))
			util_bufprintf(buf, len, off,
				       "resolvers %s: changed (its names are looked "
				       "up anew)\n",
				       nc->resolvers[i].name);
	}
	for (size_t i = 0; i < oc->nresolvers; i++)
		if (conf_find_resolvers(nc, oc->resolvers[i].name) == NULL)
			util_bufprintf(buf, len, off, "resolvers %s: removed\n",
				       oc->resolvers[i].name);
	for (size_t i = 0; i < nc->npools; i++) {
		const struct conf_pool *np = &nc->pools[i], *op = conf_find_pool(oc, np->name);

		for (size_t k = 0; k < np->ndiscover; k++) {
			const struct conf_discover *d = &np->discover[k];
			bool had = false;

			for (size_t j = 0; op != NULL && j < op->ndiscover && !had; j++)
				had = discover_equal(&op->discover[j], d);
			if (!had)
				util_bufprintf(buf, len, off,
					       "pool %s: servers %s %s: added or "
					       "changed\n",
					       np->name, kind_word(d->kind), d->name);
		}
		for (size_t j = 0; op != NULL && j < op->ndiscover; j++) {
			const struct conf_discover *d = &op->discover[j];
			bool has = false;

			for (size_t k = 0; k < np->ndiscover && !has; k++)
				has = d->kind == np->discover[k].kind &&
				      strcasecmp(d->name, np->discover[k].name) == 0 &&
				      d->port == np->discover[k].port;
			if (!has)
				util_bufprintf(buf, len, off,
					       "pool %s: servers %s %s: removed (its "
					       "servers with it)\n",
					       np->name, kind_word(d->kind), d->name);
		}
		if (op != NULL && strcmp(op->resolvers, np->resolvers) != 0)
			util_bufprintf(buf, len, off, "pool %s: resolvers %s\n", np->name,
				       np->resolvers);
	}
}

/* ---- life ---- */

static void on_sweep(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct core_dns *d = t->data;

	(void)loop;
	(void)revents;
	core_dns_lookups_expire(d);
	if (d->model_ready && d->c->reload == NULL)
		core_dns_sweep_gone(d);
}

static void on_first_loaded(void *arg)
{
	*(bool *)arg = true;
}

int core_dns_start(struct core *c, struct conf *conf, struct conf_errors *errs)
{
	struct core_dns *d = calloc(1, sizeof(*d));
	bool done = false;
	size_t before = errs->n;

	if (d == NULL)
		return -1;
	d->c = c;
	c->dns = d;
	ev_timer_init(&d->sweep, on_sweep, DNS_SWEEP_S, DNS_SWEEP_S);
	d->sweep.data = d;
	if (core_dns_prepare(c, conf, errs, on_first_loaded, &done) < 0)
		return -1;
	/* only this load's names and timers are on the loop now */
	while (!done)
		ev_run(c->loop, EVRUN_ONCE);
	if (errs->n > before || errs->truncated) {
		core_dns_abort(c);
		return -1;
	}
	core_dns_commit(c);
	ev_timer_start(c->loop, &d->sweep);
	return 0;
}

void core_dns_free(struct core *c)
{
	struct core_dns *d = c->dns;

	if (d == NULL)
		return;
	prep_free(d);
	set_clear(&d->run);
	core_dns_lookups_free(d);
	for (size_t i = 0; i < d->nblocks; i++)
		block_put(d->blocks[i]);
	free(d->blocks);
	ev_timer_stop(c->loop, &d->sweep);
	free(d);
	c->dns = NULL;
}
