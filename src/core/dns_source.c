/* dns_source: the servers of a `servers srv|dns` line follow its answer.
 * One server per A/AAAA record (named LABEL-ADDRESS-PORT) or per SRV
 * target and port (named after the target); the pool itself holds which
 * servers a line made (origin, name, target), so they survive a reload
 * and a restart finds them under the same names. A server that leaves the
 * answer is drained (no new connections, its own continue) and taken out
 * once they are over; one that comes back before is used again. */
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
#include "sluice/srvopt.h"
#include "sluice/util.h"

/* What one answer says a line's server is. */
struct want {
	struct util_addr addr;	       /* with its port */
	char target[RESOLVE_NAME_MAX]; /* SRV */
	uint16_t priority, weight;
	struct pool_server *s; /* the server it is, once found or made */
	bool backup;
};

static bool same_host(const struct util_addr *a, const struct util_addr *b)
{
	struct util_addr x = *a, y = *b;

	util_addr_set_port(&x, 0);
	util_addr_set_port(&y, 0);
	return util_addr_equal(&x, &y);
}

/* Is s one of the servers ref's line made? */
static bool made_by(const struct core_dns_ref *ref, const struct pool_server *s)
{
	if (s->host == NULL || strcasecmp(s->host, ref->host) != 0)
		return false;
	if (ref->src.kind == CONF_DISCOVER_SRV)
		return s->dns_origin == POOL_DNS_SRV;
	return s->dns_origin == POOL_DNS_ADDRS && util_addr_port(&s->addr) == ref->src.port;
}

/* LABEL-ADDRESS-PORT (':' of IPv6 as '-'), the label cut to fit. */
static void addrs_name(const struct core_dns_ref *ref, const struct util_addr *a, char *out,
		       size_t len)
{
	char host[UTIL_ADDR_STRLEN], tail[UTIL_ADDR_STRLEN + 16];
	size_t label = strcspn(ref->host, "."), room, off = 0;

	util_addr_fmt_host(a, host, sizeof(host));
	for (char *p = host; *p != '\0'; p++)
		if (*p == ':')
			*p = '-';
	snprintf(tail, sizeof(tail), "-%s-%u", host, ref->src.port);
	room = len - 1 > strlen(tail) ? len - 1 - strlen(tail) : 0;
	util_bufprintf(out, len, &off, "%.*s%s", (int)UTIL_MIN(label, room), ref->host, tail);
}

/* The SRV target, or when it does not fit a name its first label and a
 * hash of the whole; "-PORT" added when that name is taken. */
static void srv_name(const char *target, uint16_t port, bool with_port, char *out, size_t len)
{
	char base[UTIL_NAME_MAX];

	if (strlen(target) < sizeof(base))
		util_strlcpy(base, target, sizeof(base));
	else
		snprintf(base, sizeof(base), "%.*s-%08x", (int)UTIL_MIN(strcspn(target, "."), 40),
			 target, (unsigned)util_hash64(target, strlen(target), 0));
	if (with_port)
		snprintf(out, len, "%.*s-%u", (int)(len - 7), base, port);
	else
		util_strlcpy(out, base, len);
}

/* The wanted servers of the answer: one per address (dns), one per
 * target and port with the address it keeps (srv); at most limit, those
 * that exist first. Returns the count, or -1 on no memory. */
static long wanted(const struct core_dns_ref *ref, struct pool *p, const struct resolve_rec *recs,
		   size_t n, struct want **out)
{
	struct want *w = calloc(n + 1, sizeof(*w));
	size_t nw = 0;

	if (w == NULL)
		return -1;
	for (size_t i = 0; i < n; i++) {
		struct want *x = NULL;

		if (ref->src.kind == CONF_DISCOVER_DNS) {
			x = &w[nw++];
			x->addr = recs[i].addr;
			util_addr_set_port(&x->addr, ref->src.port);
			continue;
		}
		for (size_t k = 0; k < nw && x == NULL; k++)
			if (w[k].addr.len != 0 && strcmp(w[k].target, recs[i].target) == 0 &&
			    util_addr_port(&w[k].addr) == recs[i].port)
				x = &w[k];
		if (x == NULL) {
			x = &w[nw++];
			util_strlcpy(x->target, recs[i].target, sizeof(x->target));
			x->addr = recs[i].addr;
			x->priority = recs[i].priority;
			x->weight = recs[i].weight;
		}
		/* a target with several addresses keeps the one it has */
		for (size_t k = 0; k < p->nservers; k++) {
			struct pool_server *s = p->servers[k];

			if (made_by(ref, s) && s->dns_target != NULL &&
			    strcmp(s->dns_target, x->target) == 0 &&
			    util_addr_port(&s->addr) == recs[i].port &&
			    same_host(&s->addr, &recs[i].addr))
				x->addr = recs[i].addr;
		}
	}
	*out = w;
	return (long)nw;
}

/* The server of p that a line made for x, or NULL. */
static struct pool_server *existing(const struct core_dns_ref *ref, struct pool *p,
				    const struct want *x)
{
	for (size_t k = 0; k < p->nservers; k++) {
		struct pool_server *s = p->servers[k];

		if (!made_by(ref, s))
			continue;
		if (ref->src.kind == CONF_DISCOVER_DNS
			? util_addr_equal(&s->addr, &x->addr)
			: (s->dns_target != NULL && strcmp(s->dns_target, x->target) == 0 &&
			   util_addr_port(&s->addr) == util_addr_port(&x->addr)))
			return s;
	}
	return NULL;
}

/* The options of x's server: the line's, with SRV weights and priorities. */
static void opts_of(const struct core_dns_ref *ref, const struct want *x, uint32_t max_weight,
		    struct util_srvopts *o)
{
	*o = ref->src.opts;
	if (ref->src.kind != CONF_DISCOVER_SRV)
		return;
	o->backup = o->backup || x->backup;
	if (ref->src.weight_from_srv) {
		uint64_t w = x->weight;

		/* SRV weights run to 65535: scaled into 1-256 when larger */
		if (max_weight > UTIL_SRV_WEIGHT_MAX)
			w = w * UTIL_SRV_WEIGHT_MAX / max_weight;
		o->weight = (uint32_t)UTIL_MAX(w, 1);
	}
}

static struct pool_server *make(struct core_dns *d, const struct core_dns_ref *ref, struct pool *p,
				const struct want *x, const struct util_srvopts *o)
{
	char name[UTIL_NAME_MAX], err[256], ab[UTIL_ADDR_STRLEN];
	struct pool_server *s;

	if (ref->src.kind == CONF_DISCOVER_DNS) {
		addrs_name(ref, &x->addr, name, sizeof(name));
	} else {
		srv_name(x->target, util_addr_port(&x->addr), false, name, sizeof(name));
		if (pool_find_server(p, name) != NULL)
			srv_name(x->target, util_addr_port(&x->addr), true, name, sizeof(name));
	}
	if (pool_find_server(p, name) != NULL) {
		log_warn("pool %s: servers %s %s: name %s is taken by another server: %s not used",
			 p->name, ref->src.kind == CONF_DISCOVER_SRV ? "srv" : "dns", ref->host,
			 name, util_addr_fmt(&x->addr, ab, sizeof(ab)));
		return NULL;
	}
	s = pool_server_create(p, name, &x->addr, o, err, sizeof(err));
	if (s != NULL &&
	    pool_server_set_dns(
		s, ref->src.kind == CONF_DISCOVER_SRV ? POOL_DNS_SRV : POOL_DNS_ADDRS, ref->host,
		ref->src.kind == CONF_DISCOVER_SRV ? x->target : NULL) < 0) {
		pool_remove_if(p, core_dns_is_server, s);
		s = NULL;
		util_strlcpy(err, "out of memory", sizeof(err));
	}
	if (s == NULL) {
		log_err("pool %s: server %s from DNS not made: %s", p->name, name, err);
		return NULL;
	}
	log_notice("server %s/%s added from DNS (%s): %s%s", p->name, s->name, ref->host,
		   util_addr_fmt(&x->addr, ab, sizeof(ab)), o->backup ? ", backup" : "");
	if (d->c->ctl != NULL)
		ctl_server_appeared(d->c->ctl, s);
	return s;
}

/* Keep the first limit wanted servers, those that exist first (so that a
 * larger answer does not move the ones in use); log what is left out. */
static size_t apply_limit(struct core_dns_ref *ref, struct pool *p, struct want *w, size_t n)
{
	size_t k = 0, limit = ref->src.limit;

	if (n <= limit) {
		ref->logged_over = 0;
		return n;
	}
	for (size_t pass = 0; pass < 2; pass++) {
		for (size_t i = k; i < n && k < limit; i++) {
			struct want t;

			if ((existing(ref, p, &w[i]) != NULL) != (pass == 0))
				continue;
			t = w[k];
			w[k++] = w[i];
			w[i] = t;
		}
	}
	if (ref->logged_over != n)
		log_warn("pool %s: servers %s %s: %zu answers, limit %zu: %zu not used", p->name,
			 ref->src.kind == CONF_DISCOVER_SRV ? "srv" : "dns", ref->host, n, limit,
			 n - limit);
	ref->logged_over = n;
	return limit;
}

void core_dns_apply_source(struct core_dns *d, struct core_dns_ref *ref)
{
	struct core *c = d->c;
	const struct conf_pool *cp = conf_find_pool(c->conf, ref->pool);
	struct pool *p = cp != NULL ? c->pools[cp - c->conf->pools] : NULL;
	struct resolve_name_info in;
	struct want *w = NULL;
	long nw;
	uint32_t max_weight = 0;
	uint16_t min_prio = UINT16_MAX;
	bool changed = false, made = false;

	if (p == NULL)
		return;
	resolve_name_info(resolve_watch_name(ref->w), &in);
	if (in.state == RESOLVE_PENDING)
		return;
	nw = wanted(ref, p, in.recs, in.nrecs, &w);
	if (nw < 0) {
		log_err("pool %s: out of memory applying the answer of %s", p->name, ref->host);
		return;
	}
	nw = (long)apply_limit(ref, p, w, (size_t)nw);
	for (long i = 0; i < nw; i++) {
		min_prio = UTIL_MIN(min_prio, w[i].priority);
		max_weight = UTIL_MAX(max_weight, w[i].weight);
	}
	pool_freeze(p);
	for (long i = 0; i < nw; i++) {
		struct want *x = &w[i];
		struct util_srvopts o;
		struct pool_server *s = existing(ref, p, x);

		/* lowest priority: primaries; every other one: backups */
		x->backup = x->priority > min_prio;
		opts_of(ref, x, max_weight, &o);
		if (s == NULL && ref->src.kind == CONF_DISCOVER_SRV) {
			/* a target that moved to another address: a new server of
			 * the same name there, as a reload would make */
			struct pool_server *old = NULL;
			char ab[UTIL_ADDR_STRLEN];

			for (size_t k = 0; k < p->nservers && old == NULL; k++)
				if (made_by(ref, p->servers[k]) && !p->servers[k]->dns_gone &&
				    strcmp(p->servers[k]->dns_target, x->target) == 0 &&
				    util_addr_port(&p->servers[k]->addr) ==
					util_addr_port(&x->addr))
					old = p->servers[k];
			if (old != NULL) {
				log_notice(
				    "server %s/%s: target %s moved to %s: a new server there, "
				    "the connections to the old address finish",
				    p->name, old->name, x->target,
				    util_addr_fmt(&x->addr, ab, sizeof(ab)));
				s = core_dns_replace(c, p, old, &x->addr);
				made |= s != NULL;
				changed = true;
			}
		}
		if (s == NULL) {
			x->s = make(d, ref, p, x, &o);
			changed |= x->s != NULL;
			made |= x->s != NULL;
			continue;
		}
		x->s = s;
		if (s->dns_gone) {
			log_notice("server %s/%s is in the answer of %s again", p->name, s->name,
				   ref->host);
			s->dns_gone = false;
			changed = true;
		}
		if (!util_srvopts_equal(&s->opts, &o) || s->backup != o.backup) {
			pool_server_set_opts(s, &o);
			changed = true;
		}
	}
	/* the line's servers that the answer no longer names: drained */
	for (size_t k = 0; k < p->nservers; k++) {
		struct pool_server *s = p->servers[k];
		bool keep = false;

		if (!made_by(ref, s) || s->dns_gone)
			continue;
		for (long i = 0; i < nw && !keep; i++)
			keep = w[i].s == s;
		if (keep)
			continue;
		s->dns_gone = true;
		changed = true;
		log_notice("server %s/%s left the answer of %s: draining (%u connections)", p->name,
			   s->name, ref->host, atomic_load(&s->cur_conns));
	}
	free(w);
	pool_thaw(p);
	if (changed)
		core_health_publish(c, p);
	if (made)
		core_dns_resync_health(c);
}

struct sweep_ctx {
	struct core *c;
	bool save; /* the state file keeps what was set on a server taken out */
};

/* Whether s left its answer and has no connection left. */
static bool gone_and_idle(void *arg, struct pool_server *s)
{
	struct sweep_ctx *x = arg;

	if (!s->dns_gone || atomic_load(&s->cur_conns) != 0)
		return false;
	log_notice("server %s/%s removed: it left its DNS answer and its connections are over",
		   s->pool->name, s->name);
	if (x->c->ctl != NULL && ctl_server_gone(x->c->ctl, s))
		x->save = true;
	return true;
}

void core_dns_sweep_gone(struct core_dns *d)
{
	struct core *c = d->c;
	struct sweep_ctx x = {.c = c};
	bool any = false;

	for (size_t i = 0; i < c->npools; i++) {
		struct pool *p = c->pools[i];
		bool has = false;

		if (c->conf->pools[i].ndiscover == 0)
			continue; /* a reload that drops a line drops its servers */
		for (size_t k = 0; k < p->nservers && !has; k++)
			has =
			    p->servers[k]->dns_gone && atomic_load(&p->servers[k]->cur_conns) == 0;
		if (!has)
			continue;
		if (pool_remove_if(p, gone_and_idle, &x) > 0) {
			core_health_publish(c, p);
			any = true;
		}
	}
	if (any)
		core_dns_resync_health(c);
	if (x.save)
		ctl_state_changed(c->ctl);
}
