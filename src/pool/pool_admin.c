/* pool_admin: operator changes to servers (admin state, weight) made by
 * the control socket. Each change republishes the pool's snapshot so the
 * workers stop picking a drained server at their next connection. */
#include <string.h>

#include "sluice/log.h"
#include "sluice/pool.h"

void pool_server_operator_admin(struct pool_server *s, enum pool_admin a, uint64_t now_ms)
{
	s->admin_overridden = true;
	if (!pool_server_set_admin(s, a, now_ms))
		return;
	s->admin_since_ms = now_ms;
	if (s->pool != NULL && !s->removed)
		pool_publish(s->pool);
}

void pool_server_operator_weight(struct pool_server *s, uint32_t weight)
{
	s->weight_overridden = true;
	/* an agent's percentages now apply to this weight */
	s->hs.weight_initial = weight;
	if (s->weight == weight)
		return;
	s->weight = weight;
	if (s->pool != NULL && !s->removed)
		pool_publish(s->pool);
}

int pool_admin_parse(const char *s, enum pool_admin *out)
{
	static const enum pool_admin all[] = {POOL_ADMIN_READY, POOL_ADMIN_DRAIN, POOL_ADMIN_MAINT};

	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		if (strcmp(s, pool_admin_name(all[i])) == 0) {
			*out = all[i];
			return 0;
		}
	}
	return -1;
}

uint32_t pool_active(const struct pool *p)
{
	uint32_t n = 0;

	for (size_t i = 0; i < p->nservers; i++)
		n += atomic_load_explicit(&p->servers[i]->cur_conns, memory_order_relaxed);
	return n;
}
