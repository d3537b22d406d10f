/* ctl_glue: the hooks through which the control socket sees what only
 * core knows: the list of pools, listeners and their counters, closing a
 * server's connections in the workers, reload, the resolvers. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core.h"
#include "sluice/ctl.h"
#include "sluice/log.h"
#include "sluice/pool.h"
#include "sluice/proxy.h"
#include "sluice/util.h"

#ifndef SLUICE_VERSION
#define SLUICE_VERSION "0.1"
#endif

static struct pool **hook_pools(void *arg, size_t *n)
{
	struct core *c = arg;

	*n = c->npools;
	return c->pools;
}

static void hook_info(void *arg, struct ctl_info *out)
{
	struct core *c = arg;

	out->version = SLUICE_VERSION;
	out->pid = (int)getpid();
	out->uptime_ms = util_now_ms() - c->start_ms;
	out->workers = c->nworkers;
	out->maxconn = c->maxconn;
	out->cur_conns = proxy_engine_active(c->engine);
	out->total_conns = proxy_engine_total(c->engine);
	out->maxconn_reached = proxy_engine_maxconn_reached(c->engine);
	out->bufmem_used = proxy_engine_bufmem_used(c->engine);
	out->bufmem = c->bufmem;
	out->no_memory = proxy_engine_no_memory(c->engine);
	out->krelay = c->krelay != NULL;
	out->krelay_conns = proxy_engine_krelay_conns(c->engine);
	out->krelay_fallbacks = proxy_engine_krelay_fallbacks(c->engine);
	out->krelay_broken = proxy_engine_krelay_broken(c->engine);
	out->krelay_cut = proxy_engine_krelay_cut(c->engine);
	out->conf_file = c->conf_path;
	out->last_reload = c->last_reload;
	out->reloads_ok = c->reloads_ok;
	out->reloads_failed = c->reloads_failed;
	util_lathist_summarize(&c->late_checks, &out->late_checks);
	util_lathist_summarize(&c->late_adverts, &out->late_adverts);
}

static void hook_clear_lateness(void *arg)
{
	struct core *c = arg;

	util_lathist_reset(&c->late_checks);
	util_lathist_reset(&c->late_adverts);
}

static size_t hook_listeners(void *arg, struct ctl_listener_row *rows, size_t max)
{
	struct core *c = arg;
	size_t n = 0;

	for (size_t i = 0; i < c->nlisteners && n < max; i++, n++) {
		struct proxy_frontend *fe = c->listeners[i].fe;
		struct proxy_fe_settings *st = atomic_load(&fe->settings);
		struct ctl_listener_row *r = &rows[n];
		size_t off = 0;

		memset(r, 0, sizeof(*r));
		util_strlcpy(r->name, fe->name, sizeof(r->name));
		for (size_t b = 0; b < fe->nbinds; b++) {
			char abuf[UTIL_ADDR_STRLEN];

			util_bufprintf(r->binds, sizeof(r->binds), &off, "%s%s", b ? "," : "",
				       util_addr_fmt(&fe->binds[b]->addr, abuf, sizeof(abuf)));
		}
		util_strlcpy(r->pool, st->pool != NULL ? st->pool->name : "-", sizeof(r->pool));
		r->nroutes = (uint32_t)st->nroutes;
		r->cur_conns = atomic_load(&fe->cur_conns);
		r->maxconn = st->maxconn;
		r->total_conns = atomic_load(&fe->total_conns);
		r->bytes_in = atomic_load(&fe->bytes_in);
		r->bytes_out = atomic_load(&fe->bytes_out);
		r->proxy_header_errors = atomic_load(&fe->proxy_header_errors);
		r->proxy_header_timeouts = atomic_load(&fe->proxy_header_timeouts);
		r->maxconn_reached = atomic_load(&fe->maxconn_reached);
		core_guard_row(fe, r);
	}
	return n;
}

static const char *const route_kinds[] = {
    [PROXY_ROUTE_SNI] = "sni",
    [PROXY_ROUTE_ALPN] = "alpn",
    [PROXY_ROUTE_NO_SNI] = "no-sni",
    [PROXY_ROUTE_NOT_TLS] = "not-tls",
};

/* Add a row when there is room; count it anyway. */
static struct ctl_route_row *route_row(struct ctl_route_row *rows, size_t max, size_t *n,
				       const char *listen, const char *kind, const struct pool *p)
{
	struct ctl_route_row *r = *n < max ? &rows[*n] : NULL;

	(*n)++;
	if (r == NULL)
		return NULL;
	memset(r, 0, sizeof(*r));
	util_strlcpy(r->listen, listen, sizeof(r->listen));
	util_strlcpy(r->kind, kind, sizeof(r->kind));
	util_strlcpy(r->pool, p != NULL ? p->name : "-", sizeof(r->pool));
	return r;
}

static size_t hook_routes(void *arg, struct ctl_route_row *rows, size_t max)
{
	struct core *c = arg;
	size_t n = 0;

	for (size_t i = 0; i < c->nlisteners; i++) {
		struct proxy_frontend *fe = c->listeners[i].fe;
		struct proxy_fe_settings *st = atomic_load(&fe->settings);
		struct proxy_peek_counters *pc = &fe->peek;
		const struct {
			const char *reason;
			_Atomic uint64_t *count;
		} closed[] = {
		    {"not-tls", &pc->not_tls},	       {"no-route", &pc->no_route},
		    {"bad-hello", &pc->bad_hello},     {"hello-timeout", &pc->timeouts},
		    {"client-gone", &pc->client_gone},
		};
		struct ctl_route_row *r;

		if (st->nroutes == 0)
			continue;
		for (size_t k = 0; k < st->nroutes; k++) {
			const struct proxy_route *rt = &st->routes[k];

			r = route_row(rows, max, &n, fe->name, route_kinds[rt->kind], rt->pool);
			if (r == NULL)
				continue;
			util_strlcpy(r->sni, rt->sni, sizeof(r->sni));
			util_strlcpy(r->alpn, rt->alpn, sizeof(r->alpn));
			r->active = atomic_load(&rt->stats->active);
			r->total = atomic_load(&rt->stats->total);
		}
		r = route_row(rows, max, &n, fe->name, "default", st->pool);
		if (r != NULL && st->default_stats != NULL) {
			r->active = atomic_load(&st->default_stats->active);
			r->total = atomic_load(&st->default_stats->total);
		}
		for (size_t k = 0; k < UTIL_ARRAY_LEN(closed); k++) {
			r = route_row(rows, max, &n, fe->name, "closed", NULL);
			if (r == NULL)
				continue;
			util_strlcpy(r->reason, closed[k].reason, sizeof(r->reason));
			r->total = atomic_load(closed[k].count);
		}
	}
	return n;
}

static void hook_close_server(void *arg, struct pool_server *s, uint32_t spread_ms)
{
	struct core *c = arg;

	proxy_engine_close_server(c->engine, s, spread_ms);
}

static void resync_health(struct core *c)
{
	char err[256];

	if (core_health_resync(c, err, sizeof(err)) < 0)
		log_err("health checks: %s", err);
}

static void hook_server_added(void *arg, struct pool_server *s, bool check)
{
	(void)check; /* the server carries it (s->opts.check) */
	resync_health(arg);
	core_dns_server_added(arg, s);
}

static void hook_server_removed(void *arg, struct pool_server *s)
{
	resync_health(arg);
	core_dns_server_removed(arg, s);
}

static bool hook_model_busy(void *arg)
{
	return core_reload_applying(arg);
}

int core_ctl_start(struct core *c, char *err, size_t errlen)
{
	const struct conf_global *g = &c->conf->global;
	struct ctl_hooks hooks = {
	    .arg = c,
	    .pools = hook_pools,
	    .info = hook_info,
	    .clear_lateness = hook_clear_lateness,
	    .listeners = hook_listeners,
	    .routes = hook_routes,
	    .close_server = hook_close_server,
	    .reload_start = core_reload_hook_start,
	    .reload_result = core_reload_hook_result,
	    .model_busy = hook_model_busy,
	    .takeover = core_takeover_hook,
	    .server_added = hook_server_added,
	    .server_removed = hook_server_removed,
	    .vrrp_show = core_vrrp_show,
	    .vrrp_admin = core_vrrp_admin,
	    .cluster_show = core_cluster_show,
	    .cluster_metrics = core_cluster_metrics,
	    .announces = core_announce_rows,
	    .announce_admin = core_announce_admin,
	    .node_drain = core_announce_node,
	    .resolvers_show = core_dns_show,
	    .metrics_more = core_dns_metrics,
	    .server_dns = core_dns_server_status,
	    .lookup_start = core_dns_lookup_start,
	    .lookup_result = core_dns_lookup_result,
	};

	core_guard_hooks(&hooks);
	c->ctl = ctl_new(c->loop, &hooks, g->state_file);
	if (c->ctl == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (size_t i = 0; i < g->ncontrols; i++) {
		const struct conf_control *cc = &g->controls[i];

		if (ctl_listen_unix(c->ctl, cc->path, cc->mode,
				    cc->level == CONF_CTL_USER ? CTL_LEVEL_USER : CTL_LEVEL_ADMIN,
				    c->takeover_path != NULL, err, errlen) < 0)
			return -1;
		log_notice("control socket %s (mode %04o, level %s)", cc->path, cc->mode,
			   cc->level == CONF_CTL_USER ? "user" : "admin");
	}
	if (g->metrics.len != 0) {
		char abuf[UTIL_ADDR_STRLEN];

		int fd = -1;

		core_takeover_fds(c, &g->metrics, true, &fd, 1);
		if (ctl_listen_metrics(c->ctl, &g->metrics, fd, err, errlen) < 0)
			return -1;
		log_notice("metrics on http://%s/metrics",
			   util_addr_fmt(&g->metrics, abuf, sizeof(abuf)));
	}
	return ctl_state_load(c->ctl, err, errlen);
}
