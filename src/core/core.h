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
struct ctl;
struct ctl_buf;
struct core_vrrp;

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
	unsigned nworkers;
	struct ctl *ctl;
	char last_reload[256];
	uint64_t reloads_ok, reloads_failed;
	uint64_t start_ms;
	bool stopping;
	int exit_code;
	ev_signal sig_term, sig_int, sig_hup;
	ev_timer reclaim_timer, drain_timer, grace_timer;
	struct core_vrrp *vrrp; /* vrrp_glue.c */
};

/* apply.c: build the runtime model from a validated conf at start-up.
 * Returns 0, or -1 with err set (nothing is left bound). */
int core_apply_initial(struct core *c, struct conf *conf, char *err, size_t errlen);
/* Free the model (after the engine stopped). */
void core_model_free(struct core *c);

/* ctl_glue.c: start the control sockets, metrics listener and state file.
 * Returns 0 or -1 with err. */
int core_ctl_start(struct core *c, char *err, size_t errlen);

/* reload.c: the control socket's "reload [check]". */
int core_reload_hook(void *arg, bool check_only, char *msg, size_t len);

/* vrrp_glue.c: make the running VRRP instances match newconf: unchanged
 * ones keep their state and timers, changed or removed ones give their VIPs
 * up, new ones start. All or nothing: returns 0, or -1 with err set and the
 * running instances untouched. Used at start-up and by reload. */
int core_vrrp_apply(struct core *c, const struct conf *newconf, char *err, size_t len);
/* SIGTERM: every instance sends priority 0 and removes its VIPs. */
void core_vrrp_shutdown(struct core *c);
void core_vrrp_free(struct core *c);
/* Control socket hooks (arg is the core). */
void core_vrrp_show(void *arg, bool json, struct ctl_buf *out);
int core_vrrp_admin(void *arg, const char *name, bool leave, char *msg, size_t len);

#endif
