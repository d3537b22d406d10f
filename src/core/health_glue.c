/* health_glue: wires health checks into the daemon. Creates a checker (and
 * an agent checker) per server from the configuration, applies results
 * through pool (state, weight, admin, slow start) and republishes, logs
 * every state change with its cause, closes a dead server's connections
 * when the pool says `on-down shutdown`, and turns the data plane's passive
 * detection (a worker hook) into an ev_async on the control loop. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"
#include "sluice/conf.h"
#include "sluice/health.h"
#include "sluice/log.h"
#include "sluice/pool.h"
#include "sluice/proxy.h"
#include "sluice/util.h"

#define SLOWSTART_TICK 0.1 /* seconds between slow start steps */

struct core_health;

/* One server's checkers. Owned by struct core_health; allocated one by
 * one, because it is the checkers' callback argument and a resync keeps
 * the checkers whose settings did not change. */
struct core_health_srv {
	struct core_health *h;
	struct pool *pool;	 /* core's pools hold the reference */
	struct pool_server *srv; /* the checkers hold references */
	struct health_checker *check, *agent;
	bool on_down_shutdown;
	bool taken; /* a resync kept it */
};

struct core_health {
	struct core *c;
	struct core_health_srv **srvs;
	size_t nsrvs;
	bool *pool_usable; /* per pool: had a usable server at the last publish */
	ev_async passive;
	ev_timer slowstart;
	struct log_ratelimit late_rl;
	struct log_ratelimit local_rl; /* checks that could not run here */
	uint64_t late_checks, max_late_ms, checks_run;
};

static enum health_type map_type(enum conf_check_type t)
{
	switch (t) {
	case CONF_CHECK_TCP:
	case CONF_CHECK_NONE:
		return HEALTH_TCP;
	case CONF_CHECK_EXPECT:
		return HEALTH_EXPECT;
	case CONF_CHECK_HTTP:
		return HEALTH_HTTP;
	case CONF_CHECK_TLS:
		return HEALTH_TLS;
	case CONF_CHECK_HTTPS:
		return HEALTH_HTTPS;
	}
	return HEALTH_TCP;
}

static size_t pool_index(const struct core *c, const struct pool *p)
{
	for (size_t i = 0; i < c->npools; i++)
		if (c->pools[i] == p)
			return i;
	return 0;
}

/* Republish p and say when it loses or regains its last usable server. */
static void publish(struct core_health *h, struct pool *p)
{
	size_t idx = pool_index(h->c, p), usable = 0;

	pool_publish(p);
	for (size_t i = 0; i < p->nservers; i++)
		usable += pool_server_eligible(p->servers[i]);
	if (usable == 0 && h->pool_usable[idx])
		log_warn("pool %s has no usable server: new connections are closed", p->name);
	else if (usable > 0 && !h->pool_usable[idx])
		log_notice("pool %s has %zu usable server%s again", p->name, usable,
			   usable == 1 ? "" : "s");
	h->pool_usable[idx] = usable > 0;
	if (p->ramping && !ev_is_active(&h->slowstart))
		ev_timer_start(h->c->loop, &h->slowstart);
}

void core_health_publish(struct core *c, struct pool *p)
{
	if (c->health == NULL || c->health->pool_usable == NULL) {
		pool_publish(p);
		return;
	}
	publish(c->health, p);
}

static void went_down(struct core_health_srv *hs)
{
	struct pool_server *s = hs->srv;
	uint32_t open = atomic_load_explicit(&s->cur_conns, memory_order_relaxed);

	publish(hs->h, hs->pool);
	if (!hs->on_down_shutdown || open == 0)
		return;
	log_notice("server %s/%s: closing its %u open connection%s (on-down shutdown)",
		   hs->pool->name, s->name, open, open == 1 ? "" : "s");
	proxy_engine_close_server(hs->h->c->engine, s, 0);
}

static void note_late(struct core_health *h, struct core_health_srv *hs,
		      const struct health_checker *chk, const struct health_result *r)
{
	const struct health_conf *hc = health_checker_conf(chk);
	h->checks_run++;
	util_lathist_add(&h->c->late_checks, r->late_us);
	if (r->late_ms > h->max_late_ms)
		h->max_late_ms = r->late_ms;
	if (r->late_ms <= hc->timeout_ms)
		return;
	h->late_checks++;
	log_ratelimited(&h->late_rl, util_now_ms(), 5, LOGL_WARNING,
			"health: %s check of %s/%s started %llums late (more than its %ums "
			"timeout)",
			health_type_name(hc->type), hs->pool->name, hs->srv->name,
			(unsigned long long)r->late_ms, hc->timeout_ms);
}

/* A check that could not run here (no descriptor, memory, port): counted
 * apart and logged, never a verdict on the server; the checker retries. */
static void note_local(struct core_health_srv *hs, const struct health_checker *chk,
		       const struct health_result *r, uint64_t now)
{
	uint32_t suppressed = 0;

	pool_server_local_error(hs->srv);
	if (log_ratelimit_ok(&hs->h->local_rl, now, 1, &suppressed))
		log_warn("health: %s check of %s/%s could not run: %s (a local error, not the "
			 "server's; retrying)%s",
			 health_type_name(health_checker_conf(chk)->type), hs->pool->name,
			 hs->srv->name, r->cause, suppressed ? " (more not shown)" : "");
}

static enum pool_admin map_admin(enum health_agent_admin a)
{
	switch (a) {
	case HEALTH_AGENT_DRAIN:
		return POOL_ADMIN_DRAIN;
	case HEALTH_AGENT_MAINT:
		return POOL_ADMIN_MAINT;
	case HEALTH_AGENT_READY:
	case HEALTH_AGENT_ADMIN_NONE:
		break;
	}
	return POOL_ADMIN_READY;
}

static void apply_agent(struct core_health_srv *hs, const struct health_result *r, uint64_t now)
{
	const struct health_agent_reply *a = r->agent;
	struct pool_server *s = hs->srv;
	const char *pn = hs->pool->name;
	bool changed = false, down = false;

	if (!r->ok || a == NULL) {
		/* an agent that does not answer changes nothing (HAProxy's rule) */
		log_info("server %s/%s agent check failed: %s", pn, s->name, r->cause);
		return;
	}
	if (a->has_weight) {
		uint32_t old = s->weight;

		if (pool_server_set_weight_pct(s, a->weight_pct)) {
			log_notice("server %s/%s weight %u -> %u: %s", pn, s->name, old, s->weight,
				   r->cause);
			changed = true;
		}
	}
	if (a->admin != HEALTH_AGENT_ADMIN_NONE &&
	    pool_server_set_admin(s, map_admin(a->admin), now)) {
		static const char *const names[] = {"READY", "DRAIN", "MAINT"};

		log_notice("server %s/%s %s: %s", pn, s->name, names[s->admin], r->cause);
		changed = true;
	}
	if (a->state != HEALTH_AGENT_STATE_NONE) {
		bool up = a->state == HEALTH_AGENT_UP;

		if (pool_server_set_health(s, POOL_SRC_AGENT, up, r->cause, now)) {
			if (up)
				log_notice("server %s/%s UP: %s", pn, s->name, r->cause);
			else
				log_warn("server %s/%s DOWN: %s", pn, s->name, r->cause);
			changed = true;
			down = !up;
		}
	}
	if (down)
		went_down(hs);
	else if (changed)
		publish(hs->h, hs->pool);
}

static void on_result(void *arg, struct health_checker *chk, const struct health_result *r)
{
	struct core_health_srv *hs = arg;
	struct pool_server *s = hs->srv;
	const char *pn = hs->pool->name;
	uint64_t now = util_now_ms();

	if (r->local) {
		note_local(hs, chk, r, now);
		return;
	}
	pool_server_note_check(s, r->ok, r->cause, now);
	note_late(hs->h, hs, chk, r);
	if (chk == hs->agent) {
		apply_agent(hs, r, now);
		return;
	}
	switch (r->event) {
	case HEALTH_RF_NONE:
		/* progress towards a change; failures of a down server are news
		 * only at debug level */
		if (r->ok != health_checker_rf(chk)->up)
			log_info("server %s/%s check %s: %s (%u/%u)", pn, s->name,
				 r->ok ? "passed" : "failed", r->cause, r->count, r->of);
		else if (!r->ok)
			log_debug("server %s/%s check failed: %s", pn, s->name, r->cause);
		return;
	case HEALTH_RF_WENT_DOWN:
		if (pool_server_set_health(s, POOL_SRC_CHECK, false, r->cause, now)) {
			log_warn("server %s/%s DOWN: %s (%u/%u)", pn, s->name, r->cause, r->count,
				 r->of);
			went_down(hs);
		}
		return;
	case HEALTH_RF_WENT_UP:
		if (pool_server_set_health(s, POOL_SRC_CHECK, true, r->cause, now)) {
			log_notice("server %s/%s UP: %s (%u/%u)", pn, s->name, r->cause, r->count,
				   r->of);
			publish(hs->h, hs->pool);
		} else {
			log_info("server %s/%s check up: %s (%u/%u), still down by its %s", pn,
				 s->name, r->cause, r->count, r->of,
				 s->hs.dns_down ? "DNS name" : "agent");
		}
		return;
	}
}

/* Worker thread: a server reached its consecutive error threshold. */
static void passive_hook(struct pool_server *s, void *arg)
{
	struct core_health *h = arg;

	(void)s;
	ev_async_send(h->c->loop, &h->passive);
}

static void on_passive(struct ev_loop *loop, ev_async *w, int revents)
{
	struct core_health *h = w->data;
	uint64_t now = util_now_ms();

	(void)loop;
	(void)revents;
	for (size_t i = 0; i < h->nsrvs; i++) {
		struct core_health_srv *hs = h->srvs[i];
		struct pool_server *s = hs->srv;
		char cause[64];

		if (!pool_server_passive_flagged(s) || s->hs.passive_down)
			continue;
		snprintf(cause, sizeof(cause), "%u consecutive connection errors",
			 atomic_load_explicit(&s->hs.observe_errors, memory_order_relaxed));
		if (hs->check != NULL)
			health_checker_force_down(hs->check);
		if (pool_server_set_health(s, POOL_SRC_PASSIVE, false, cause, now)) {
			log_warn("server %s/%s DOWN: %s", hs->pool->name, s->name, cause);
			went_down(hs);
		}
	}
}

static void on_slowstart(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct core_health *h = w->data;
	uint64_t now = util_now_ms();
	bool any = false;

	(void)revents;
	for (size_t i = 0; i < h->c->npools; i++) {
		struct pool *p = h->c->pools[i];

		if (!p->ramping)
			continue;
		if (pool_slowstart_step(p, now))
			publish(h, p);
		any |= p->ramping;
	}
	if (!any)
		ev_timer_stop(loop, w);
}

static void fill_check(struct health_conf *hc, const struct conf_pool_health *ph,
		       const struct pool_server *s, struct health_tls *tls)
{
	const struct conf_check *ck = &ph->check;
	uint16_t port = s->opts.check.port ? s->opts.check.port : ck->port;

	memset(hc, 0, sizeof(*hc));
	hc->type = map_type(ck->type);
	hc->addr = s->addr;
	if (port != 0)
		util_addr_set_port(&hc->addr, port);
	hc->interval_ms = (uint32_t)ck->interval_ms;
	hc->timeout_ms = (uint32_t)ck->timeout_ms;
	hc->rise = ck->rise;
	hc->fall = ck->fall;
	hc->jitter_pct = ck->jitter_pct;
	memcpy(hc->send, ck->send, sizeof(hc->send));
	hc->send_len = ck->send_len;
	memcpy(hc->expect, ck->expect, sizeof(hc->expect));
	hc->expect_len = ck->expect_len;
	util_strlcpy(hc->path, ck->path, sizeof(hc->path));
	util_strlcpy(hc->host, ck->host, sizeof(hc->host));
	for (size_t i = 0; i < ck->nstatus && i < HEALTH_MAX_STATUS; i++) {
		hc->status[i].lo = ck->status[i].lo;
		hc->status[i].hi = ck->status[i].hi;
	}
	hc->nstatus = UTIL_MIN(ck->nstatus, HEALTH_MAX_STATUS);
	util_strlcpy(hc->sni, ck->sni, sizeof(hc->sni));
	util_strlcpy(hc->verify_name, ck->verify_name, sizeof(hc->verify_name));
	hc->tls = tls;
}

static void fill_agent(struct health_conf *hc, const struct conf_pool_health *ph,
		       const struct pool_server *s)
{
	memset(hc, 0, sizeof(*hc));
	hc->type = HEALTH_AGENT;
	hc->addr = s->addr;
	util_addr_set_port(&hc->addr, s->opts.agent.port ? s->opts.agent.port : ph->agent_port);
	hc->interval_ms = (uint32_t)ph->agent_interval_ms;
	hc->timeout_ms = (uint32_t)ph->agent_timeout_ms;
	hc->rise = hc->fall = 1;
}

/* The agent's percentages are of the weight the file or operator gave; an
 * agent change must not become the new base. */
static bool hs_weight_unset(const struct pool_server *s)
{
	return s->hs.agent_pct == 0 || s->hs.weight_initial == 0;
}

/* Does a server with options o get an active check / an agent check
 * under ph? */
static bool gets_check(const struct conf_pool_health *ph, const struct util_srvopts *o)
{
	return ph->check.type != CONF_CHECK_NONE && !o->check.off;
}

static bool gets_agent(const struct conf_pool_health *ph, const struct util_srvopts *o)
{
	return ph->agent_port != 0 && !o->agent.off;
}

uint32_t core_health_checkers(const struct conf *conf)
{
	uint64_t n = 0;

	for (size_t i = 0; i < conf->npools; i++) {
		const struct conf_pool *cp = &conf->pools[i];

		for (size_t k = 0; k < cp->nservers; k++)
			n += gets_check(&cp->health, &cp->servers[k].opts) +
			     gets_agent(&cp->health, &cp->servers[k].opts);
	}
	return (uint32_t)UTIL_MIN(n, UINT32_MAX);
}

/* The checkers of the previous build, by server, for a resync to keep
 * what did not change. */
struct old_checkers {
	struct core_health_srv **hs; /* sorted by server */
	size_t n;
};

static int cmp_by_server(const void *a, const void *b)
{
	uintptr_t x = (uintptr_t)(*(struct core_health_srv *const *)a)->srv;
	uintptr_t y = (uintptr_t)(*(struct core_health_srv *const *)b)->srv;

	return x < y ? -1 : x > y;
}

/* Take the old checkers of s in p, or NULL. */
static struct core_health_srv *take_old(struct old_checkers *old, struct pool *p,
					struct pool_server *s)
{
	size_t lo = 0, hi = old->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		struct core_health_srv *x = old->hs[mid];

		if (x->srv == s) {
			if (x->taken || x->pool != p)
				return NULL;
			x->taken = true;
			return x;
		}
		if ((uintptr_t)x->srv < (uintptr_t)s)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* Keep *chk when it checks as want does (TLS checks are made anew: their
 * context is the pool's, built at each resync), or replace it. Returns 0
 * or -1 (no memory; *chk is then NULL). */
static int keep_or_new(struct core_health_srv *hs, struct health_checker **chk,
		       const struct health_conf *want)
{
	if (*chk != NULL) {
		const struct health_conf *had = health_checker_conf(*chk);

		if (want != NULL && want->tls == NULL && had->tls == NULL &&
		    memcmp(had, want, sizeof(*want)) == 0)
			return 0;
		health_checker_free(*chk);
		*chk = NULL;
	}
	if (want == NULL)
		return 0;
	*chk = health_checker_new(hs->h->c->loop, hs->srv, want, on_result, hs);
	return *chk != NULL ? 0 : -1;
}

/* The checkers of pool i: kept from old where nothing changed, else new.
 * Returns 0 or -1 with err set. */
static int start_pool(struct core_health *h, size_t pi, struct old_checkers *old, char *err,
		      size_t errlen)
{
	struct core *c = h->c;
	const struct conf_pool *cp = &c->conf->pools[pi];
	const struct conf_pool_health *ph = &cp->health;
	struct pool *p = c->pools[pi];
	struct health_tls *tls = NULL;
	bool is_tls = ph->check.type == CONF_CHECK_TLS || ph->check.type == CONF_CHECK_HTTPS;
	int rc = 0;

	p->slowstart_ms = ph->slowstart_ms;
	if (ph->check.type == CONF_CHECK_NONE && ph->agent_port == 0)
		return 0; /* nothing per server: a resync is O(checked servers) */
	if (is_tls) {
		char terr[256];

		tls = health_tls_new(ph->check.verify, ph->check.ca, terr, sizeof(terr));
		if (tls == NULL) {
			snprintf(err, errlen, "pool %s: %s", cp->name, terr);
			return -1;
		}
	}
	/* the running servers, including those added at runtime: each with
	 * its own check and agent options (s->opts, whatever its door) */
	for (size_t i = 0; i < p->nservers && rc == 0; i++) {
		struct pool_server *s = p->servers[i];
		struct core_health_srv *hs = take_old(old, p, s);
		bool from_old = hs != NULL;
		struct health_conf hc, ha;
		bool check = gets_check(ph, &s->opts);
		bool agent = gets_agent(ph, &s->opts);

		if (!check && !agent && hs == NULL)
			continue;
		if (hs == NULL && (hs = calloc(1, sizeof(*hs))) == NULL) {
			rc = -1;
			break;
		}
		if (hs_weight_unset(s))
			s->hs.weight_initial = s->weight; /* the agent's base */
		hs->h = h;
		hs->pool = p;
		hs->srv = s;
		hs->on_down_shutdown = ph->on_down == CONF_ON_DOWN_SHUTDOWN;
		if (check) {
			fill_check(&hc, ph, s, tls);
			atomic_store(&s->hs.observe_errors, ph->observe_errors);
		}
		if (agent)
			fill_agent(&ha, ph, s);
		if (keep_or_new(hs, &hs->check, check ? &hc : NULL) < 0 ||
		    keep_or_new(hs, &hs->agent, agent ? &ha : NULL) < 0)
			rc = -1;
		if (hs->check == NULL && hs->agent == NULL) {
			if (from_old)
				hs->taken = false; /* freed with the old ones not kept */
			else
				free(hs);
			continue;
		}
		h->srvs[h->nsrvs++] = hs;
	}
	health_tls_put(tls);
	if (rc < 0)
		snprintf(err, errlen, "out of memory creating the checks of pool %s", cp->name);
	return rc;
}

static void free_hs(struct core_health_srv *hs)
{
	health_checker_free(hs->check);
	health_checker_free(hs->agent);
	free(hs);
}

/* Free every checker and the per-server and per-pool arrays. */
static void free_checkers(struct core_health *h)
{
	for (size_t i = 0; i < h->nsrvs; i++)
		free_hs(h->srvs[i]);
	free(h->srvs);
	free(h->pool_usable);
	h->srvs = NULL;
	h->pool_usable = NULL;
	h->nsrvs = 0;
}

/* The checkers of every running server, keeping those of old (the
 * previous build, whose array is freed) whose server and settings are the
 * same, so that their timing and counts go on. Returns 0 or -1 with err. */
static int build_checkers(struct core_health *h, struct old_checkers *old, char *err, size_t errlen)
{
	struct core *c = h->c;
	size_t total = 0;
	int rc = 0;

	for (size_t i = 0; i < c->npools && i < c->conf->npools; i++)
		if (c->conf->pools[i].health.check.type != CONF_CHECK_NONE ||
		    c->conf->pools[i].health.agent_port != 0)
			total += c->pools[i]->nservers;
	h->srvs = calloc(total ? total : 1, sizeof(*h->srvs));
	h->pool_usable = calloc(c->npools ? c->npools : 1, sizeof(*h->pool_usable));
	if (h->srvs == NULL || h->pool_usable == NULL) {
		snprintf(err, errlen, "out of memory");
		rc = -1;
	}
	if (old->n > 0)
		qsort(old->hs, old->n, sizeof(*old->hs), cmp_by_server);
	for (size_t i = 0; rc == 0 && i < c->npools; i++)
		for (size_t k = 0; k < c->pools[i]->nservers && !h->pool_usable[i]; k++)
			h->pool_usable[i] = pool_server_eligible(c->pools[i]->servers[k]);
	for (size_t i = 0; rc == 0 && i < c->npools && i < c->conf->npools; i++)
		rc = start_pool(h, i, old, err, errlen);
	/* what was not kept: servers gone, or no longer checked */
	for (size_t i = 0; i < old->n; i++)
		if (!old->hs[i]->taken)
			free_hs(old->hs[i]);
	for (size_t i = 0; i < h->nsrvs; i++)
		h->srvs[i]->taken = false;
	free(old->hs);
	old->hs = NULL;
	old->n = 0;
	return rc;
}

int core_health_start(struct core *c, char *err, size_t errlen)
{
	struct core_health *h = calloc(1, sizeof(*h));
	size_t nchecks = 0, nagents = 0;

	if (h == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	c->health = h;
	h->c = c;
	ev_async_init(&h->passive, on_passive);
	h->passive.data = h;
	ev_async_start(c->loop, &h->passive);
	ev_timer_init(&h->slowstart, on_slowstart, SLOWSTART_TICK, SLOWSTART_TICK);
	h->slowstart.data = h;
	pool_set_passive_hook(passive_hook, h);
	if (build_checkers(h, &(struct old_checkers){NULL, 0}, err, errlen) < 0)
		return -1;
	for (size_t i = 0; i < h->nsrvs; i++) {
		nchecks += h->srvs[i]->check != NULL;
		nagents += h->srvs[i]->agent != NULL;
	}
	if (nchecks + nagents > 0)
		log_notice("health: %zu active checks, %zu agent checks", nchecks, nagents);
	return 0;
}

void core_health_stop(struct core *c)
{
	struct core_health *h = c->health;

	if (h == NULL)
		return;
	pool_set_passive_hook(NULL, NULL);
	if (h->checks_run > 0)
		log_notice("health: %llu checks run, %llu started later than their timeout, "
			   "largest start delay %llums",
			   (unsigned long long)h->checks_run, (unsigned long long)h->late_checks,
			   (unsigned long long)h->max_late_ms);
	if (c->loop != NULL) {
		ev_async_stop(c->loop, &h->passive);
		ev_timer_stop(c->loop, &h->slowstart);
	}
	free_checkers(h);
	free(h);
	c->health = NULL;
}

/* Checkers running now (each holds at most one descriptor). */
static size_t count_checkers(const struct core_health *h)
{
	size_t n = 0;

	for (size_t i = 0; i < h->nsrvs; i++)
		n += (h->srvs[i]->check != NULL) + (h->srvs[i]->agent != NULL);
	return n;
}

int core_health_resync(struct core *c, char *err, size_t errlen)
{
	struct core_health *h = c->health;
	struct old_checkers old;
	size_t n;

	if (h == NULL)
		return 0;
	/* rebuild the checkers only: the async watcher and the passive hook
	 * stay, since a worker may be calling the hook right now; a checker
	 * whose server and settings are unchanged is kept as it runs */
	old.hs = h->srvs;
	old.n = h->nsrvs;
	free(h->pool_usable);
	h->srvs = NULL;
	h->pool_usable = NULL;
	h->nsrvs = 0;
	if (build_checkers(h, &old, err, errlen) < 0)
		return -1;
	/* the descriptor reserve was sized at start (maxconn needs a restart) */
	n = count_checkers(h);
	if (n > c->fd_reserve_checks)
		log_warn("health: %zu checks and agents now, %u descriptors reserved for them at "
			 "start: at the connection limit some may not run (counted as local "
			 "errors, never against the server); a restart resizes the reserve",
			 n, c->fd_reserve_checks);
	return 0;
}
