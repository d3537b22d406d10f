/* pool_health: health state of servers as the balancer sees it. Verdicts
 * from active checks, the agent and the data plane (passive) combine into
 * one up/down; slow start ramps a returning server's snapshot weight.
 * Workers only touch the atomic passive flag; the rest is control thread. */
#include <string.h>

#include "sluice/pool.h"
#include "sluice/util.h"

/* The hook and its argument; the argument is stored before the function
 * (release) so a worker that sees the function sees its argument. */
static void *_Atomic passive_arg;
static _Atomic pool_passive_fn passive_fn;

void pool_set_passive_hook(pool_passive_fn fn, void *arg)
{
	atomic_store_explicit(&passive_fn, NULL, memory_order_release);
	atomic_store_explicit(&passive_arg, arg, memory_order_release);
	atomic_store_explicit(&passive_fn, fn, memory_order_release);
}

void pool_health_observe_error(struct pool_server *s, uint32_t n)
{
	uint32_t limit = atomic_load_explicit(&s->hs.observe_errors, memory_order_relaxed);
	pool_passive_fn fn;

	if (limit == 0 || n < limit)
		return;
	/* the first worker to reach the threshold flags it and tells core */
	if (atomic_exchange_explicit(&s->hs.passive_flag, true, memory_order_acq_rel))
		return;
	fn = atomic_load_explicit(&passive_fn, memory_order_acquire);
	if (fn != NULL)
		fn(s, atomic_load_explicit(&passive_arg, memory_order_acquire));
}

bool pool_server_passive_flagged(const struct pool_server *s)
{
	return atomic_load_explicit(&s->hs.passive_flag, memory_order_relaxed);
}

uint32_t pool_server_lb_weight(const struct pool_server *s)
{
	uint32_t full = s->weight * POOL_WEIGHT_SCALE;

	if (s->hs.ramp_weight != 0 && s->hs.ramp_weight < full)
		return s->hs.ramp_weight;
	return full;
}

void pool_server_note_check(struct pool_server *s, bool ok, const char *cause, uint64_t now_ms)
{
	s->hs.checks++;
	if (!ok)
		s->hs.checks_failed++;
	s->hs.last_check_ms = now_ms;
	util_strlcpy(s->hs.last_cause, cause, sizeof(s->hs.last_cause));
}

static bool health_up(const struct pool_server *s)
{
	return !s->hs.check_down && !s->hs.agent_down && !s->hs.passive_down && !s->hs.dns_down;
}

/* Begin the ramp at its smallest share (when the pool has slow start). */
static void ramp_begin(struct pool_server *s, uint64_t now_ms)
{
	struct pool *p = s->pool;

	if (p == NULL || p->slowstart_ms == 0)
		return;
	s->hs.ramp_start_ms = now_ms;
	s->hs.ramp_weight = 1;
	p->ramping = true;
}

bool pool_server_set_health(struct pool_server *s, enum pool_health_src src, bool up,
			    const char *cause, uint64_t now_ms)
{
	bool was_up = health_up(s);

	switch (src) {
	case POOL_SRC_CHECK:
		s->hs.check_down = !up;
		if (up) {
			/* the check confirmed the server: forget the passive mark */
			s->hs.passive_down = false;
			atomic_store_explicit(&s->consecutive_errors, 0, memory_order_relaxed);
			atomic_store_explicit(&s->hs.passive_flag, false, memory_order_release);
		}
		break;
	case POOL_SRC_AGENT:
		s->hs.agent_down = !up;
		break;
	case POOL_SRC_PASSIVE:
		/* only a check brings it back, after rise good results */
		s->hs.passive_down = !up;
		if (!up)
			s->hs.check_down = true;
		break;
	case POOL_SRC_DNS:
		s->hs.dns_down = !up;
		break;
	}
	if (health_up(s) == was_up)
		return false;
	s->health = was_up ? POOL_HEALTH_DOWN : POOL_HEALTH_UP;
	s->hs.state_changes++;
	s->hs.last_change_ms = now_ms;
	s->hs.last_change_wall_ms = util_wall_ms();
	util_strlcpy(s->hs.change_cause, cause, sizeof(s->hs.change_cause));
	if (!was_up)
		ramp_begin(s, now_ms);
	else
		s->hs.ramp_weight = 0;
	return true;
}

bool pool_server_set_admin(struct pool_server *s, enum pool_admin a, uint64_t now_ms)
{
	if (s->admin == a)
		return false;
	s->admin = a;
	if (a == POOL_ADMIN_READY && health_up(s))
		ramp_begin(s, now_ms);
	return true;
}

bool pool_server_set_weight_pct(struct pool_server *s, uint32_t pct)
{
	uint64_t w = ((uint64_t)s->hs.weight_initial * pct + 50) / 100;

	if (pct > 0 && w == 0)
		w = 1;
	if (w > 256)
		w = 256;
	s->hs.agent_pct = pct;
	if (s->weight == (uint32_t)w)
		return false;
	s->weight = (uint32_t)w;
	return true;
}

bool pool_slowstart_step(struct pool *p, uint64_t now_ms)
{
	bool changed = false, ramping = false;

	for (size_t i = 0; i < p->nservers; i++) {
		struct pool_server *s = p->servers[i];
		uint64_t elapsed, full, w;

		if (s->hs.ramp_weight == 0)
			continue;
		elapsed = now_ms - s->hs.ramp_start_ms;
		full = (uint64_t)s->weight * POOL_WEIGHT_SCALE;
		if (p->slowstart_ms == 0 || elapsed >= p->slowstart_ms || full == 0) {
			s->hs.ramp_weight = 0;
			changed = true;
			continue;
		}
		w = UTIL_MAX(1, full * elapsed / p->slowstart_ms);
		if (w != s->hs.ramp_weight) {
			s->hs.ramp_weight = (uint32_t)w;
			changed = true;
		}
		ramping = true;
	}
	p->ramping = ramping;
	return changed;
}
