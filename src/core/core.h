/* core internals: the daemon's state, owned by the control thread. Only
 * src/core includes this. */
#ifndef SLUICE_CORE_H
#define SLUICE_CORE_H

#include <ev.h>
#include <stdbool.h>

#include "sluice/conf-t.h"
#include "sluice/qsbr.h"

struct pool;
struct proxy_engine;
struct proxy_frontend;

/* A running listener and the name it was configured under. */
struct core_listener {
	char name[CONF_NAME_MAX];
	struct proxy_frontend *fe; /* reference */
};

struct core {
	struct ev_loop *loop;
	const char *conf_path;
	struct conf *conf; /* the configuration running now */
	struct qsbr qsbr;
	struct proxy_engine *engine;
	struct pool **pools; /* references */
	size_t npools;
	struct core_listener *listeners;
	size_t nlisteners;
	uint32_t maxconn; /* effective global limit */
	uint64_t start_ms;
	bool stopping;
	int exit_code;
	ev_signal sig_term, sig_int, sig_hup;
	ev_timer reclaim_timer, drain_timer, grace_timer;
	struct core_health *health; /* health_glue.c */
};

/* apply.c: build the runtime model from a validated conf at start-up.
 * Returns 0, or -1 with err set (nothing is left bound). */
int core_apply_initial(struct core *c, struct conf *conf, char *err, size_t errlen);
/* Free the model (after the engine stopped). */
void core_model_free(struct core *c);

/* health_glue.c: start the health checks of the running model on c->loop
 * and install the passive hook. Returns 0, or -1 with err set. */
int core_health_start(struct core *c, char *err, size_t errlen);
/* Stop and free every checker (after the workers stopped). */
void core_health_stop(struct core *c);

#endif
