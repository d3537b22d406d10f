/* apply: turns a validated struct conf into the runtime model: pools and
 * servers (pool module) and listeners (proxy module). Core is the only
 * place that knows both the config's and the runtime's types. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core.h"
#include "sluice/log.h"
#include "sluice/pool.h"
#include "sluice/proxy.h"
#include "sluice/util.h"

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

static enum pool_proxy_proto map_proxy(enum conf_proxy_proto p, enum conf_proxy_proto dflt)
{
	if (p == CONF_PROXY_INHERIT)
		p = dflt;
	switch (p) {
	case CONF_PROXY_V1:
		return POOL_PROXY_V1;
	case CONF_PROXY_V2:
		return POOL_PROXY_V2;
	case CONF_PROXY_INHERIT:
	case CONF_PROXY_NONE:
		break;
	}
	return POOL_PROXY_NONE;
}

static struct pool *build_pool(const struct conf_pool *cp)
{
	struct pool *p = pool_new(cp->name);

	if (p == NULL)
		return NULL;
	p->balance = map_balance(cp->balance);
	p->send_proxy = map_proxy(cp->send_proxy, CONF_PROXY_NONE);
	p->queue_max = cp->queue_max;
	p->timeout_queue_ms = cp->timeout_queue_ms;
	for (size_t i = 0; i < cp->nservers; i++) {
		const struct conf_server *cs = &cp->servers[i];
		struct pool_server *s = pool_server_new(cs->name, &cs->addr);

		if (s == NULL || pool_add_server(p, s) < 0) {
			if (s != NULL)
				pool_server_put(s);
			pool_retire(p);
			pool_put(p);
			return NULL;
		}
		s->weight = s->file_weight = cs->weight;
		s->maxconn = cs->maxconn;
		s->backup = cs->backup;
		s->send_proxy = map_proxy(cs->send_proxy, cp->send_proxy);
	}
	if (pool_publish(p) < 0) {
		pool_retire(p);
		pool_put(p);
		return NULL;
	}
	return p;
}

static struct proxy_fe_settings *build_settings(const struct conf_listen *cl, struct pool *p)
{
	struct proxy_fe_settings *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return NULL;
	s->pool = p;
	pool_get(p);
	s->maxconn = cl->maxconn;
	s->retries = cl->retries;
	s->timeout_connect_ms = (uint32_t)UTIL_MIN(cl->timeout_connect_ms, UINT32_MAX);
	s->timeout_idle_ms = (uint32_t)UTIL_MIN(cl->timeout_idle_ms, UINT32_MAX);
	s->timeout_half_closed_ms = (uint32_t)UTIL_MIN(cl->timeout_half_closed_ms, UINT32_MAX);
	s->accept_proxy = cl->accept_proxy;
	return s;
}

int core_apply_initial(struct core *c, struct conf *conf, char *err, size_t errlen)
{
	c->pools = calloc(conf->npools ? conf->npools : 1, sizeof(*c->pools));
	c->listeners = calloc(conf->nlistens ? conf->nlistens : 1, sizeof(*c->listeners));
	if (c->pools == NULL || c->listeners == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (size_t i = 0; i < conf->npools; i++) {
		c->pools[i] = build_pool(&conf->pools[i]);
		if (c->pools[i] == NULL) {
			snprintf(err, errlen, "out of memory building pool %s", conf->pools[i].name);
			return -1;
		}
		c->npools++;
	}
	for (size_t i = 0; i < conf->nlistens; i++) {
		const struct conf_listen *cl = &conf->listens[i];
		struct proxy_fe_settings *st = build_settings(cl, c->pools[cl->pool]);
		struct proxy_frontend *fe;

		fe = st ? proxy_frontend_new(cl->name, cl->binds, cl->nbinds, st) : NULL;
		if (fe == NULL) {
			proxy_fe_settings_free(st);
			snprintf(err, errlen, "out of memory building listen %s", cl->name);
			return -1;
		}
		util_strlcpy(c->listeners[i].name, cl->name, sizeof(c->listeners[i].name));
		c->listeners[i].fe = fe;
		c->nlisteners++;
		if (proxy_frontend_bind(c->engine, fe, err, errlen) < 0)
			return -1;
	}
	for (size_t i = 0; i < c->nlisteners; i++) {
		const struct conf_listen *cl = &conf->listens[i];

		proxy_engine_attach(c->engine, c->listeners[i].fe);
		for (size_t b = 0; b < cl->nbinds; b++) {
			char abuf[UTIL_ADDR_STRLEN];

			log_notice("listen %s on %s -> pool %s", cl->name,
				   util_addr_fmt(&cl->binds[b], abuf, sizeof(abuf)),
				   conf->pools[cl->pool].name);
		}
	}
	return 0;
}

void core_model_free(struct core *c)
{
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
