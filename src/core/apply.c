/* apply: turns a validated struct conf into the runtime model: pools and
 * servers (pool module) and listeners (proxy module). Core is the only
 * place that knows both the config's and the runtime's types. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core.h"
#include "sluice/conf.h"
#include "sluice/guard.h"
#include "sluice/log.h"
#include "sluice/pool.h"
#include "sluice/proxy.h"
#include "sluice/srvopt.h"
#include "sluice/util.h"
#include "sluice/vip.h"

static enum pool_balance map_balance(enum conf_balance b)
{
	switch (b) {
	case CONF_BALANCE_ROUNDROBIN:
		return POOL_BALANCE_ROUNDROBIN;
	case CONF_BALANCE_LEASTCONN:
		return POOL_BALANCE_LEASTCONN;
	case CONF_BALANCE_RANDOM:
		return POOL_BALANCE_RANDOM;
	case CONF_BALANCE_MAGLEV:
		return POOL_BALANCE_MAGLEV;
	case CONF_BALANCE_FIRST:
		return POOL_BALANCE_FIRST;
	}
	return POOL_BALANCE_ROUNDROBIN;
}

/* A server of the file enters a pool (prepare, or a reload's commit). */
static struct pool_server *new_server(struct pool *p, const struct conf_server *cs)
{
	char err[256];
	struct pool_server *s =
	    pool_server_create(p, cs->name, &cs->addr, &cs->opts, err, sizeof(err));

	/* conf checked the same rules: only memory can fail here */
	if (s == NULL) {
		log_err("pool %s: server %s: %s", p->name, cs->name, err);
		return NULL;
	}
	if (cs->host[0] != '\0' && pool_server_set_dns(s, POOL_DNS_NONE, cs->host, NULL) < 0)
		log_err("pool %s: server %s: out of memory: %s is not followed", p->name, cs->name,
			cs->host);
	return s;
}

static void pool_from_conf(struct pool *p, const struct conf_pool *cp)
{
	p->balance = map_balance(cp->balance);
	p->send_proxy = pool_proxy_from(cp->send_proxy, POOL_PROXY_NONE);
	p->has_check = cp->health.check.type != CONF_CHECK_NONE;
	p->has_agent = cp->health.agent_port != 0;
	p->discovers = cp->ndiscover > 0;
	p->queue_max = cp->queue_max;
	p->timeout_queue_ms = cp->timeout_queue_ms;
	p->maglev_size = cp->maglev_table;
}

/* ---- TLS routes ---- */

static enum proxy_route_kind map_route(enum conf_route_kind k)
{
	switch (k) {
	case CONF_ROUTE_SNI:
		return PROXY_ROUTE_SNI;
	case CONF_ROUTE_ALPN:
		return PROXY_ROUTE_ALPN;
	case CONF_ROUTE_NO_SNI:
		return PROXY_ROUTE_NO_SNI;
	case CONF_ROUTE_NOT_TLS:
		break;
	}
	return PROXY_ROUTE_NOT_TLS;
}

/* The counters of a route of the running settings that the new one
 * repeats exactly (match and pool), not taken by another new route yet:
 * a reload keeps them. NULL: none. */
static struct proxy_route_stats *old_route_stats(const struct proxy_fe_settings *old,
						 const struct proxy_route *nr, bool *taken)
{
	for (size_t i = 0; old != NULL && i < old->nroutes; i++) {
		const struct proxy_route *o = &old->routes[i];

		if (taken[i] || o->kind != nr->kind || o->pool != nr->pool ||
		    o->sni_len != nr->sni_len || memcmp(o->sni, nr->sni, nr->sni_len) != 0 ||
		    o->alpn_len != nr->alpn_len || memcmp(o->alpn, nr->alpn, nr->alpn_len) != 0)
			continue;
		taken[i] = true;
		proxy_route_stats_get(o->stats);
		return o->stats;
	}
	return proxy_route_stats_new();
}

/* Fill s's routes from cl (pools: the new model's, by conf index); old:
 * the settings running now, or NULL. Returns 0 or -1 (no memory; what was
 * built is freed with s). */
static int build_routes(struct proxy_fe_settings *s, const struct conf_listen *cl,
			struct pool **pools, const struct proxy_fe_settings *old)
{
	bool *taken = calloc((old != NULL ? old->nroutes : 0) + 1, sizeof(*taken));

	s->timeout_client_hello_ms = (uint32_t)UTIL_MIN(cl->timeout_client_hello_ms, UINT32_MAX);
	s->routes = calloc(cl->nroutes, sizeof(*s->routes));
	if (taken == NULL || s->routes == NULL) {
		free(taken);
		return -1;
	}
	for (size_t i = 0; i < cl->nroutes; i++) {
		const struct conf_route *cr = &cl->routes[i];
		struct proxy_route *r = &s->routes[i];

		r->kind = map_route(cr->kind);
		r->sni_len = (uint16_t)util_strlcpy(r->sni, cr->sni, sizeof(r->sni));
		r->alpn_len = (uint16_t)util_strlcpy(r->alpn, cr->alpn, sizeof(r->alpn));
		r->pool = pools[cr->pool];
		pool_get(r->pool);
		s->nroutes++;
		r->stats = old_route_stats(old, r, taken);
		if (r->stats == NULL)
			break;
	}
	free(taken);
	/* the default keeps its counters while it stays the same pool */
	if (old != NULL && old->default_stats != NULL && old->pool == s->pool) {
		s->default_stats = old->default_stats;
		proxy_route_stats_get(s->default_stats);
	} else {
		s->default_stats = proxy_route_stats_new();
	}
	return s->default_stats != NULL && s->routes[s->nroutes - 1].stats != NULL ? 0 : -1;
}

/* Settings of a listener; p its default pool (NULL with routes only). */
static struct proxy_fe_settings *build_settings(const struct conf_listen *cl, struct pool *p,
						struct pool **pools,
						const struct proxy_fe_settings *old)
{
	struct proxy_fe_settings *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return NULL;
	s->pool = p;
	if (p != NULL)
		pool_get(p);
	if (cl->nroutes > 0 && build_routes(s, cl, pools, old) < 0) {
		proxy_fe_settings_free(s);
		return NULL;
	}
	s->maxconn = cl->maxconn;
	s->retries = cl->retries;
	s->timeout_connect_ms = (uint32_t)UTIL_MIN(cl->timeout_connect_ms, UINT32_MAX);
	s->timeout_idle_ms = (uint32_t)UTIL_MIN(cl->timeout_idle_ms, UINT32_MAX);
	s->timeout_half_closed_ms = (uint32_t)UTIL_MIN(cl->timeout_half_closed_ms, UINT32_MAX);
	s->timeout_proxy_header_ms = (uint32_t)UTIL_MIN(cl->timeout_proxy_header_ms, UINT32_MAX);
	s->accept_proxy = cl->accept_proxy;
	s->relay = cl->relay == CONF_RELAY_USER	    ? PROXY_RELAY_USER
		   : cl->relay == CONF_RELAY_KERNEL ? PROXY_RELAY_KERNEL
						    : PROXY_RELAY_AUTO;
	s->relay_inflight = cl->relay_inflight;
	return s;
}

/* The running pool and listener of a name: c->pools and c->listeners
 * follow c->conf's pools and listens, whose indexes find a name in O(1). */
static struct pool *running_pool(const struct core *c, const char *name)
{
	const struct conf_pool *cp = conf_find_pool(c->conf, name);

	return cp != NULL ? c->pools[cp - c->conf->pools] : NULL;
}

static struct core_listener *find_listener(struct core *c, const char *name)
{
	const struct conf_listen *cl = conf_find_listen(c->conf, name);

	return cl != NULL ? &c->listeners[cl - c->conf->listens] : NULL;
}

/* ---- removed servers: connections finish, or are closed after grace ---- */

/* Owned by the core's graces list until its timer fires, or until the
 * model is freed at exit with the timer still pending. */
struct grace_close {
	ev_timer timer;
	struct core *c;
	struct list_node link;	 /* c->graces */
	struct pool_server *srv; /* reference */
};

static void grace_free(struct grace_close *g)
{
	ev_timer_stop(g->c->loop, &g->timer);
	list_del(&g->link);
	pool_server_put(g->srv);
	free(g);
}

static void on_grace_close(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct grace_close *g = UTIL_CONTAINER_OF(t, struct grace_close, timer);
	uint32_t n = atomic_load(&g->srv->cur_conns);

	(void)loop;
	(void)revents;
	if (n > 0) {
		log_notice("server %s/%s was removed by a reload: closing its %u remaining "
			   "connections after the grace period",
			   g->srv->pool->name, g->srv->name, n);
		proxy_engine_close_server(g->c->engine, g->srv, 0);
	}
	grace_free(g);
}

static void close_after_grace(struct core *c, struct pool_server *s)
{
	struct grace_close *g;

	if (atomic_load(&s->cur_conns) == 0 || c->loop == NULL)
		return;
	g = calloc(1, sizeof(*g));
	if (g == NULL)
		return;
	g->c = c;
	g->srv = s;
	pool_server_get(s);
	list_add_tail(&c->graces, &g->link);
	ev_timer_init(&g->timer, on_grace_close, (double)c->conf->global.grace_ms / 1000.0, 0.0);
	ev_timer_start(c->loop, &g->timer);
}

/* ---- the diff, for "reload check" and the reload's summary ---- */

static void say(char *buf, size_t len, size_t *off, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void say(char *buf, size_t len, size_t *off, const char *fmt, ...)
{
	char line[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	util_bufprintf(buf, len, off, "%s\n", line);
}

static bool server_conf_differs(const struct conf_server *a, const struct conf_server *b)
{
	return !util_addr_equal(&a->addr, &b->addr) || !util_srvopts_equal(&a->opts, &b->opts);
}

/* The listener's default pool: "-" when it has routes only. */
static const char *listen_pool(const struct conf *c, const struct conf_listen *l)
{
	return l->has_pool ? c->pools[l->pool].name : "-";
}

/* The ACL lines, files and limits of a listener (a file's contents are
 * compared when it is read). */
static bool guard_conf_differs(const struct conf_guard *a, const struct conf_guard *b)
{
	if (a->nrules != b->nrules || a->nfiles != b->nfiles || a->dflt != b->dflt ||
	    a->conns != b->conns || a->rate != b->rate || a->rate_period_ms != b->rate_period_ms ||
	    a->burst != b->burst || a->group4 != b->group4 || a->group6 != b->group6 ||
	    a->table != b->table)
		return true;
	for (size_t i = 0; i < a->nrules; i++)
		if (!util_cidr_equal(&a->rules[i].cidr, &b->rules[i].cidr) ||
		    a->rules[i].action != b->rules[i].action)
			return true;
	for (size_t i = 0; i < a->nfiles; i++)
		if (strcmp(a->files[i].path, b->files[i].path) != 0 ||
		    a->files[i].action != b->files[i].action)
			return true;
	return false;
}

static bool routes_differ(const struct conf *oc, const struct conf_listen *a, const struct conf *nc,
			  const struct conf_listen *b)
{
	if (a->nroutes != b->nroutes || a->timeout_client_hello_ms != b->timeout_client_hello_ms)
		return true;
	for (size_t i = 0; i < a->nroutes; i++) {
		const struct conf_route *x = &a->routes[i], *y = &b->routes[i];

		if (x->kind != y->kind || strcmp(x->sni, y->sni) != 0 ||
		    strcmp(x->alpn, y->alpn) != 0 ||
		    strcmp(oc->pools[x->pool].name, nc->pools[y->pool].name) != 0)
			return true;
	}
	return false;
}

static bool listen_conf_differs(const struct conf *oc, const struct conf_listen *a,
				const struct conf *nc, const struct conf_listen *b)
{
	return strcmp(listen_pool(oc, a), listen_pool(nc, b)) != 0 || a->maxconn != b->maxconn ||
	       a->timeout_connect_ms != b->timeout_connect_ms ||
	       a->timeout_idle_ms != b->timeout_idle_ms ||
	       a->timeout_half_closed_ms != b->timeout_half_closed_ms ||
	       a->timeout_proxy_header_ms != b->timeout_proxy_header_ms ||
	       a->retries != b->retries || a->accept_proxy != b->accept_proxy ||
	       a->relay != b->relay || a->relay_inflight != b->relay_inflight;
}

static void diff_listens(const struct conf *oc, const struct conf *nc, char *buf, size_t len,
			 size_t *off)
{
	char abuf[UTIL_ADDR_STRLEN];

	for (size_t i = 0; i < nc->nlistens; i++) {
		const struct conf_listen *nl = &nc->listens[i], *ol = NULL;

		for (size_t k = 0; k < oc->nlistens && ol == NULL; k++)
			if (strcmp(oc->listens[k].name, nl->name) == 0)
				ol = &oc->listens[k];
		if (ol == NULL) {
			for (size_t b = 0; b < nl->nbinds; b++)
				say(buf, len, off, "listen %s: added, opens %s", nl->name,
				    util_addr_fmt(&nl->binds[b], abuf, sizeof(abuf)));
			continue;
		}
		for (size_t b = 0; b < nl->nbinds; b++) {
			bool had = false;

			for (size_t k = 0; k < ol->nbinds; k++)
				had |= util_addr_equal(&ol->binds[k], &nl->binds[b]);
			if (!had)
				say(buf, len, off, "listen %s: opens %s", nl->name,
				    util_addr_fmt(&nl->binds[b], abuf, sizeof(abuf)));
		}
		for (size_t k = 0; k < ol->nbinds; k++) {
			bool has = false;

			for (size_t b = 0; b < nl->nbinds; b++)
				has |= util_addr_equal(&ol->binds[k], &nl->binds[b]);
			if (!has)
				say(buf, len, off, "listen %s: closes %s", nl->name,
				    util_addr_fmt(&ol->binds[k], abuf, sizeof(abuf)));
		}
		if (listen_conf_differs(oc, ol, nc, nl))
			say(buf, len, off, "listen %s: settings changed (pool %s)", nl->name,
			    listen_pool(nc, nl));
		if (routes_differ(oc, ol, nc, nl))
			say(buf, len, off,
			    "listen %s: routes changed (%zu routes; open connections "
			    "keep their pool)",
			    nl->name, nl->nroutes);
		if (guard_conf_differs(&ol->guard, &nl->guard))
			say(buf, len, off, "listen %s: ACL or per-source limits changed", nl->name);
	}
	for (size_t k = 0; k < oc->nlistens; k++)
		if (conf_find_listen(nc, oc->listens[k].name) == NULL)
			say(buf, len, off, "listen %s: removed (its connections finish)",
			    oc->listens[k].name);
}

static void diff_pools(const struct conf *oc, const struct conf *nc, char *buf, size_t len,
		       size_t *off)
{
	for (size_t i = 0; i < nc->npools; i++) {
		const struct conf_pool *np = &nc->pools[i];
		const struct conf_pool *op = conf_find_pool(oc, np->name);

		if (op == NULL) {
			say(buf, len, off, "pool %s: added with %zu servers", np->name,
			    np->nservers);
			continue;
		}
		if (op->balance != np->balance || op->send_proxy != np->send_proxy ||
		    op->queue_max != np->queue_max ||
		    op->timeout_queue_ms != np->timeout_queue_ms ||
		    op->maglev_table != np->maglev_table)
			say(buf, len, off, "pool %s: settings changed (balance %s)", np->name,
			    conf_balance_name(np->balance));
		for (size_t k = 0; k < np->nservers; k++) {
			const struct conf_server *ns = &np->servers[k];
			const struct conf_server *os = conf_find_server(op, ns->name);

			if (os == NULL)
				say(buf, len, off, "pool %s: server %s added", np->name, ns->name);
			else if (server_conf_differs(os, ns))
				say(buf, len, off, "pool %s: server %s changed%s", np->name,
				    ns->name,
				    util_addr_equal(&os->addr, &ns->addr)
					? ""
					: " (new address: new identity)");
		}
		for (size_t k = 0; k < op->nservers; k++)
			if (conf_find_server(np, op->servers[k].name) == NULL)
				say(buf, len, off, "pool %s: server %s removed", np->name,
				    op->servers[k].name);
	}
	for (size_t k = 0; k < oc->npools; k++)
		if (conf_find_pool(nc, oc->pools[k].name) == NULL)
			say(buf, len, off, "pool %s: removed", oc->pools[k].name);
}

static bool logs_differ(const struct conf_global *o, const struct conf_global *n)
{
	if (o->nlogs != n->nlogs)
		return true;
	for (size_t i = 0; i < n->nlogs; i++) {
		const struct log_target_conf *a = &o->logs[i], *b = &n->logs[i];

		if (a->kind != b->kind || a->level != b->level || a->facility != b->facility ||
		    strcmp(a->path, b->path) != 0 || strcmp(a->tag, b->tag) != 0 ||
		    !util_addr_equal(&a->addr, &b->addr))
			return true;
	}
	return false;
}

static void diff_global(const struct conf *oc, const struct conf *nc, char *buf, size_t len,
			size_t *off)
{
	const struct conf_global *o = &oc->global, *n = &nc->global;
	bool controls = o->ncontrols != n->ncontrols;

	for (size_t i = 0; !controls && i < n->ncontrols; i++)
		controls = strcmp(o->controls[i].path, n->controls[i].path) != 0 ||
			   o->controls[i].mode != n->controls[i].mode ||
			   o->controls[i].level != n->controls[i].level;
	if (o->workers != n->workers)
		say(buf, len, off, "global: workers changed: needs a restart (kept %u)",
		    o->workers);
	if (o->maxconn != n->maxconn)
		say(buf, len, off, "global: maxconn changed: needs a restart (kept)");
	if (o->bufmem != n->bufmem)
		say(buf, len, off, "global: bufmem changed: needs a restart (kept)");
	if (controls || !util_addr_equal(&o->metrics, &n->metrics) ||
	    strcmp(o->state_file, n->state_file) != 0)
		say(buf, len, off,
		    "global: control, metrics or state-file changed: needs a "
		    "restart (kept)");
	if (logs_differ(o, n)) {
		char list[LOG_MAX_TARGETS * 140], name[140];
		size_t loff = 0;

		list[0] = '\0';
		for (size_t i = 0; i < n->nlogs; i++)
			util_bufprintf(list, sizeof(list), &loff, "%s%s %s", i ? ", " : "",
				       log_target_describe(&n->logs[i], name, sizeof(name)),
				       log_level_name(n->logs[i].level));
		say(buf, len, off, "global: log %s", list);
	}
	if (o->grace_ms != n->grace_ms)
		say(buf, len, off, "global: grace %llums", (unsigned long long)n->grace_ms);
}

static const struct conf_vrrp *find_vrrp(const struct conf *c, const char *name)
{
	for (size_t i = 0; i < c->nvrrps; i++)
		if (strcmp(c->vrrps[i].name, name) == 0)
			return &c->vrrps[i];
	return NULL;
}

static bool vrrp_conf_differs(const struct conf_vrrp *a, const struct conf_vrrp *b)
{
	if (strcmp(a->interface, b->interface) != 0 || a->vrid != b->vrid ||
	    a->priority != b->priority || a->advert_ms != b->advert_ms ||
	    a->version != b->version || a->preempt != b->preempt ||
	    a->preempt_delay_ms != b->preempt_delay_ms || a->naddrs != b->naddrs ||
	    a->npeers != b->npeers)
		return true;
	for (size_t i = 0; i < a->npeers; i++)
		if (!util_addr_equal(&a->peers[i], &b->peers[i]))
			return true;
	return memcmp(a->addrs, b->addrs, a->naddrs * sizeof(*a->addrs)) != 0;
}

/* VRRP instances: the runtime keeps an unchanged one with its state. */
static void diff_vrrp(const struct conf *oc, const struct conf *nc, char *buf, size_t len,
		      size_t *off)
{
	for (size_t i = 0; i < nc->nvrrps; i++) {
		const struct conf_vrrp *o = find_vrrp(oc, nc->vrrps[i].name);

		int ifindex;
		char e[160];

		if (o == NULL)
			say(buf, len, off, "vrrp %s: added", nc->vrrps[i].name);
		else if (vrrp_conf_differs(o, &nc->vrrps[i]))
			say(buf, len, off, "vrrp %s: changed (restarts its election)", o->name);
		else
			continue;
		/* not an error (it may come later), but an operator should see it */
		if (vip_ifindex(nc->vrrps[i].interface, &ifindex, e, sizeof(e)) < 0)
			say(buf, len, off, "vrrp %s: warning: %s: FAULT until it appears",
			    nc->vrrps[i].name, e);
	}
	for (size_t i = 0; i < oc->nvrrps; i++)
		if (find_vrrp(nc, oc->vrrps[i].name) == NULL)
			say(buf, len, off, "vrrp %s: removed (gives its addresses up)",
			    oc->vrrps[i].name);
}

void core_diff(const struct conf *oc, const struct conf *nc, char *buf, size_t len)
{
	size_t off = 0;

	buf[0] = '\0';
	diff_global(oc, nc, buf, len, &off);
	diff_listens(oc, nc, buf, len, &off);
	diff_pools(oc, nc, buf, len, &off);
	diff_vrrp(oc, nc, buf, len, &off);
	core_announce_diff(oc, nc, buf, len, &off);
	core_cluster_diff(oc, nc, buf, len, &off);
	core_dns_diff(oc, nc, buf, len, &off);
	if (off == 0)
		say(buf, len, &off, "no change");
	/* a reply ends at its first empty line: no trailing newline here */
	if (off > 0 && buf[off - 1] == '\n')
		buf[off - 1] = '\0';
}

/* ---- applying ---- */

struct stale_ctx {
	struct core *c;
	const struct conf_pool *cp;
};

/* A running server that the new definition drops (unless added at
 * runtime), or whose address changed: a new address is a new server, as
 * workers read addr unlocked. Its connections finish, or are closed after
 * the grace period. */
static bool stale_server(void *arg, struct pool_server *s)
{
	struct stale_ctx *x = arg;
	const struct conf_server *cs = conf_find_server(x->cp, s->name);

	/* discovered: kept while its `servers` line is there and no server
	 * line takes its name */
	if (s->dns_origin != POOL_DNS_NONE && cs == NULL && core_dns_source_kept(x->cp, s))
		return false;
	if (s->dns_origin == POOL_DNS_NONE &&
	    (cs == NULL ? s->runtime_added : util_addr_equal(&s->addr, &cs->addr)))
		return false;
	close_after_grace(x->c, s);
	return true;
}

/* Bind what a listener needs that it does not have yet. Returns 0 or -1. */
static int bind_missing(struct core *c, struct proxy_frontend *fe, const struct conf_listen *cl,
			char *err, size_t errlen)
{
	for (size_t b = 0; b < cl->nbinds; b++) {
		int fds[UTIL_MAX_WORKERS], n;

		if (proxy_frontend_has_bind(fe, &cl->binds[b]))
			continue;
		n = core_takeover_fds(c, &cl->binds[b], false, fds, UTIL_ARRAY_LEN(fds));
		/* an address another listener had: take its sockets over, so
		 * that its accept queue and handshakes carry on */
		for (size_t j = 0; j < c->nlisteners && n == 0; j++)
			if (c->listeners[j].fe != fe)
				n = proxy_frontend_dup_fds(c->listeners[j].fe, &cl->binds[b], fds,
							   UTIL_ARRAY_LEN(fds));
		if (proxy_frontend_adopt(c->engine, fe, &cl->binds[b], fds, (size_t)n, err,
					 errlen) < 0)
			return -1;
	}
	return 0;
}

/* Undo bind_missing(): drop binds not attached yet. */
static void unbind_pending(struct core *c, struct proxy_frontend *fe)
{
	for (size_t b = 0; b < fe->nbinds;) {
		if (fe->binds[b]->attached) {
			b++;
			continue;
		}
		struct util_addr a = fe->binds[b]->addr;

		proxy_engine_unbind(c->engine, fe, &a, true); /* not attached: no worker has it */
	}
}

/* Does another listener of nc bind a? Then it took this socket over. */
static bool conf_has_bind(const struct conf *nc, const struct util_addr *a)
{
	for (size_t i = 0; i < nc->nlistens; i++)
		for (size_t k = 0; k < nc->listens[i].nbinds; k++)
			if (util_addr_equal(&nc->listens[i].binds[k], a))
				return true;
	return false;
}

/* Phase 2 for one listener: new settings, drop addresses it no longer has,
 * start accepting on the new ones. */
static void commit_listener(struct core *c, const struct conf *nc, struct proxy_frontend *fe,
			    const struct conf_listen *cl, struct pool **pools)
{
	struct proxy_fe_settings *st = build_settings(cl, cl->has_pool ? pools[cl->pool] : NULL,
						      pools, atomic_load(&fe->settings));

	if (st != NULL)
		proxy_frontend_set_settings(c->engine, fe, st);
	else
		log_err("listen %s: out of memory: settings not changed", cl->name);
	core_guard_commit(c, fe, cl, (size_t)(cl - nc->listens));
	for (size_t b = 0; b < fe->nbinds;) {
		bool keep = false;

		for (size_t k = 0; k < cl->nbinds; k++)
			keep |= util_addr_equal(&fe->binds[b]->addr, &cl->binds[k]);
		if (keep) {
			b++;
			continue;
		}
		struct util_addr a = fe->binds[b]->addr;

		proxy_engine_unbind(c->engine, fe, &a, !conf_has_bind(nc, &a));
	}
	proxy_engine_attach(c->engine, fe);
}

/* ---- applying, in bounded steps ---- */

/* One step works for about its budget (the clock is read every
 * APPLY_CLOCK_EVERY servers); the control loop runs its other events, VRRP
 * adverts and health checks among them, between two steps. */
#define APPLY_CLOCK_EVERY 128

enum apply_phase {
	APPLY_BIND,   /* frontends, new addresses: may fail */
	APPLY_BUILD,  /* new pools and their servers: may fail (memory) */
	APPLY_UPDATE, /* surviving pools: sweep stale servers, add, update */
	APPLY_SWITCH, /* listeners to their pools, removed ones closed */
	APPLY_DONE,
};

/* Where a surviving pool's update is. */
enum apply_pool_step {
	POOL_STEP_START,
	POOL_STEP_SWEEP,
	POOL_STEP_SERVERS,
	POOL_STEP_PUBLISH, /* a step of its own: O(servers) in one piece */
};

struct core_apply {
	struct core *c;
	struct conf *nc;
	struct pool **pools;	  /* per pool of nc: a reference */
	struct core_listener *ls; /* per listener of nc */
	enum apply_phase phase;
	size_t pi, si; /* pool of nc, server of its definition */
	enum apply_pool_step pool_step;
	struct pool_sweep sweep;
	uint64_t deadline_us;
	unsigned ticks;
};

static bool step_over(struct core_apply *a)
{
	if (++a->ticks % APPLY_CLOCK_EVERY != 0)
		return false;
	return util_now_us() >= a->deadline_us;
}

/* The kernel relay when the file first asks for it (loaded once; a
 * reload that fails later leaves it loaded and unused), frontends for
 * every listener, and the addresses they do not have yet. */
static int apply_bind(struct core_apply *a, char *err, size_t errlen)
{
	if (core_krelay_prepare(a->c, a->nc, err, errlen) < 0)
		return -1;
	for (size_t i = 0; i < a->nc->nlistens; i++) {
		const struct conf_listen *cl = &a->nc->listens[i];
		struct core_listener *old = find_listener(a->c, cl->name);
		struct core_listener *ls = &a->ls[i];

		util_strlcpy(ls->name, cl->name, sizeof(ls->name));
		ls->fe = old != NULL ? old->fe : proxy_frontend_new(cl->name, NULL);
		if (ls->fe == NULL) {
			snprintf(err, errlen, "out of memory building listen %s", cl->name);
			return -1;
		}
		if (old != NULL)
			proxy_frontend_get(old->fe);
		else if ((ls->fe->guard = guard_new(&a->c->qsbr)) == NULL) {
			snprintf(err, errlen, "out of memory building listen %s", cl->name);
			return -1;
		}
		if (bind_missing(a->c, ls->fe, cl, err, errlen) < 0)
			return -1;
	}
	return 0;
}

/* New pools with their servers, invisible until the listeners switch.
 * Returns 1 when the step is over, 0 when done, -1 with err. */
static int apply_build(struct core_apply *a, char *err, size_t errlen)
{
	for (; a->pi < a->nc->npools; a->pi++, a->si = 0) {
		const struct conf_pool *cp = &a->nc->pools[a->pi];
		struct pool *p = a->pools[a->pi];

		if (p == NULL) {
			p = running_pool(a->c, cp->name);
			if (p != NULL) {
				pool_get(p); /* updated in APPLY_UPDATE */
				a->pools[a->pi] = p;
				continue;
			}
			p = a->pools[a->pi] = pool_new(cp->name);
			if (p == NULL) {
				snprintf(err, errlen, "out of memory building pool %s", cp->name);
				return -1;
			}
			pool_from_conf(p, cp);
		}
		for (; a->si < cp->nservers; a->si++) {
			if (step_over(a))
				return 1;
			if (new_server(p, &cp->servers[a->si]) == NULL) {
				snprintf(err, errlen, "out of memory building pool %s", cp->name);
				return -1;
			}
		}
	}
	return 0;
}

/* Surviving pools: frozen (the workers keep the old table) while stale
 * servers are swept and the others added or updated, then published
 * whole. New pools are published here too. Nothing fails but for memory,
 * which is logged. Returns 1 when the step is over, 0 when done. */
static int apply_update(struct core_apply *a)
{
	for (; a->pi < a->nc->npools; a->pi++, a->si = 0, a->pool_step = POOL_STEP_START) {
		const struct conf_pool *cp = &a->nc->pools[a->pi];
		struct pool *p = a->pools[a->pi];
		struct stale_ctx x = {.c = a->c, .cp = cp};

		if (a->pool_step == POOL_STEP_START) {
			if (running_pool(a->c, cp->name) != p) {
				if (pool_publish(p) < 0)
					log_err("pool %s: out of memory publishing it", p->name);
				continue;
			}
			pool_from_conf(p, cp);
			pool_freeze(p);
			memset(&a->sweep, 0, sizeof(a->sweep));
			a->pool_step = POOL_STEP_SWEEP;
		}
		if (a->pool_step == POOL_STEP_SWEEP) {
			int rc;

			while ((rc = pool_sweep_step(p, &a->sweep, APPLY_CLOCK_EVERY, stale_server,
						     &x)) > 0)
				if (util_now_us() >= a->deadline_us)
					return 1;
			if (rc < 0)
				log_err("pool %s: out of memory removing servers", p->name);
			else
				pool_sweep_finish(p, &a->sweep);
			a->pool_step = POOL_STEP_SERVERS;
		}
		for (; a->pool_step == POOL_STEP_SERVERS && a->si < cp->nservers; a->si++) {
			const struct conf_server *cs = &cp->servers[a->si];
			struct pool_server *s;

			if (step_over(a))
				return 1;
			s = pool_find_server(p, cs->name);
			if (s == NULL) {
				new_server(p, cs); /* logs a failure */
				continue;
			}
			s->runtime_added = false; /* the file owns it now */
			pool_server_set_opts(s, &cs->opts);
			if ((s->host == NULL) != (cs->host[0] == '\0') ||
			    (s->host != NULL && strcmp(s->host, cs->host) != 0))
				pool_server_set_dns(s, POOL_DNS_NONE, cs->host[0] ? cs->host : NULL,
						    NULL);
		}
		if (a->pool_step == POOL_STEP_SERVERS && cp->nservers > APPLY_CLOCK_EVERY) {
			a->pool_step = POOL_STEP_PUBLISH;
			return 1;
		}
		if (pool_thaw(p) < 0)
			log_err("pool %s: out of memory applying the new servers", p->name);
	}
	return 0;
}

/* Listeners to their new settings and pools, removed listeners closed,
 * removed pools retired; then the model is the new one. */
static void apply_switch(struct core_apply *a)
{
	struct core *c = a->c;
	const struct conf *nc = a->nc;

	for (size_t i = 0; i < nc->nlistens; i++)
		commit_listener(c, nc, a->ls[i].fe, &nc->listens[i], a->pools);
	for (size_t i = 0; i < c->nlisteners; i++) {
		if (conf_find_listen(nc, c->listeners[i].name) == NULL) {
			struct proxy_frontend *ofe = c->listeners[i].fe;

			/* addresses another listener took over: just let go */
			for (size_t b = 0; b < ofe->nbinds;) {
				struct util_addr addr = ofe->binds[b]->addr;

				if (!conf_has_bind(nc, &addr)) {
					b++;
					continue;
				}
				proxy_engine_unbind(c->engine, ofe, &addr, false);
			}
			/* refuse new clients now; its connections keep the frontend */
			proxy_engine_detach(c->engine, ofe, c->handing_over);
			proxy_frontend_close_sockets(c->listeners[i].fe);
		}
		proxy_frontend_put(c->listeners[i].fe);
	}
	for (size_t i = 0; i < c->npools; i++) {
		if (conf_find_pool(nc, c->pools[i]->name) == NULL) {
			for (size_t k = 0; k < c->pools[i]->nservers; k++)
				close_after_grace(c, c->pools[i]->servers[k]);
			pool_retire(c->pools[i]);
		}
		pool_put(c->pools[i]);
	}
	free(c->pools);
	free(c->listeners);
	c->pools = a->pools;
	c->npools = nc->npools;
	c->listeners = a->ls;
	c->nlisteners = nc->nlistens;
	a->pools = NULL;
	a->ls = NULL;
}

/* BIND or BUILD failed: drop what they made, the running model is as it
 * was. */
static void apply_rollback(struct core_apply *a)
{
	for (size_t k = 0; k < a->nc->nlistens; k++) {
		if (a->ls[k].fe == NULL)
			continue;
		unbind_pending(a->c, a->ls[k].fe);
		proxy_frontend_put(a->ls[k].fe);
	}
	for (size_t k = 0; k < a->nc->npools; k++) {
		if (a->pools[k] == NULL)
			continue;
		if (running_pool(a->c, a->pools[k]->name) != a->pools[k])
			pool_retire(a->pools[k]);
		pool_put(a->pools[k]);
	}
}

struct core_apply *core_apply_begin(struct core *c, struct conf *nc)
{
	struct core_apply *a = calloc(1, sizeof(*a));

	if (a == NULL)
		return NULL;
	a->c = c;
	a->nc = nc;
	a->pools = calloc(nc->npools + 1, sizeof(*a->pools));
	a->ls = calloc(nc->nlistens + 1, sizeof(*a->ls));
	if (a->pools == NULL || a->ls == NULL) {
		core_apply_free(a);
		return NULL;
	}
	return a;
}

int core_apply_step(struct core_apply *a, uint64_t budget_us, char *err, size_t errlen)
{
	int rc = 0;

	a->deadline_us = budget_us == UINT64_MAX ? UINT64_MAX : util_now_us() + budget_us;
	if (a->phase == APPLY_BIND) {
		if (apply_bind(a, err, errlen) < 0)
			goto failed;
		a->phase = APPLY_BUILD;
	}
	if (a->phase == APPLY_BUILD) {
		rc = apply_build(a, err, errlen);
		if (rc < 0)
			goto failed;
		if (rc > 0)
			return 1;
		a->phase = APPLY_UPDATE;
		a->pi = a->si = 0;
	}
	if (a->phase == APPLY_UPDATE) {
		if (apply_update(a) > 0)
			return 1;
		a->phase = APPLY_SWITCH;
	}
	if (a->phase == APPLY_SWITCH) {
		apply_switch(a);
		a->phase = APPLY_DONE;
	}
	return 0;
failed:
	apply_rollback(a);
	a->phase = APPLY_DONE;
	return -1;
}

void core_apply_free(struct core_apply *a)
{
	if (a == NULL)
		return;
	free(a->pools);
	free(a->ls);
	free(a);
}

int core_apply(struct core *c, struct conf *nc, char *err, size_t errlen)
{
	struct core_apply *a = core_apply_begin(c, nc);
	int rc;

	if (a == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	while ((rc = core_apply_step(a, UINT64_MAX, err, errlen)) > 0)
		;
	core_apply_free(a);
	return rc;
}

void core_log_listeners(struct core *c)
{
	for (size_t i = 0; i < c->nlisteners; i++) {
		struct proxy_frontend *fe = c->listeners[i].fe;
		struct proxy_fe_settings *st = atomic_load(&fe->settings);

		for (size_t b = 0; b < fe->nbinds; b++) {
			char abuf[UTIL_ADDR_STRLEN];

			if (st->nroutes > 0)
				log_notice("listen %s on %s -> %zu TLS routes, default pool %s",
					   fe->name,
					   util_addr_fmt(&fe->binds[b]->addr, abuf, sizeof(abuf)),
					   st->nroutes, st->pool != NULL ? st->pool->name : "none");
			else
				log_notice("listen %s on %s -> pool %s", fe->name,
					   util_addr_fmt(&fe->binds[b]->addr, abuf, sizeof(abuf)),
					   st->pool->name);
		}
	}
}

void core_model_free(struct core *c)
{
	/* removed servers whose grace had not run out when we stopped */
	while (c->graces.next != NULL && !list_empty(&c->graces))
		grace_free(list_entry(c->graces.next, struct grace_close, link));
	for (size_t i = 0; i < c->nlisteners; i++)
		proxy_frontend_put(c->listeners[i].fe);
	free(c->listeners);
	c->listeners = NULL;
	c->nlisteners = 0;
	for (size_t i = 0; i < c->npools; i++) {
		pool_retire(c->pools[i]);
		pool_put(c->pools[i]);
	}
	free(c->pools);
	c->pools = NULL;
	c->npools = 0;
}
