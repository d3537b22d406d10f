/* pool: the runtime model of pools and servers and their snapshots.
 * Control-thread functions change the model and republish; worker functions
 * (pool_pick, pool_server_release, counters) are lock-free. */
#ifndef SLUICE_POOL_H
#define SLUICE_POOL_H

#include "sluice/pool-t.h"
#include "sluice/qsbr.h"

/* Set the QSBR domain used to retire snapshots. Call once before any pool
 * is published. */
void pool_set_qsbr(struct qsbr *q);

/* Create an empty pool (one reference, the caller's). NULL on no memory. */
struct pool *pool_new(const char *name);
void pool_get(struct pool *p);
/* Drop a reference; the last one frees the pool. Any thread. */
void pool_put(struct pool *p);

/* Control thread: the one way a server enters the model, whatever its
 * door (configuration, `server add`, state file): create server name at
 * addr with options o and append it to p, whose list holds it (the pointer
 * returned is borrowed). The name and every option obey srvopt.h's rules,
 * checked here again so that no door can skip one; the name must be new in
 * p, and check or agent options need p->has_check or p->has_agent. Returns
 * the server, or NULL with the reason in err and p unchanged. Does not
 * republish. */
struct pool_server *pool_server_create(struct pool *p, const char *name,
				       const struct util_addr *addr, const struct util_srvopts *o,
				       char *err, size_t errlen);
/* The checks of pool_server_create() alone, for a door that has more to do
 * first (resolve a host name). Returns 0, or -1 with the reason in err. */
int pool_server_check(const struct pool *p, const char *name, const struct util_srvopts *o,
		      char *err, size_t errlen);
/* Control thread: take new options o for s (a reload): maxconn, backup, the
 * PROXY header and the weight, unless a weight set at runtime is in force
 * and o's weight is the one s was configured with. Does not republish. */
void pool_server_set_opts(struct pool_server *s, const struct util_srvopts *o);
/* The PROXY header a server sends: p, or inherit when p is INHERIT. */
enum pool_proxy_proto pool_proxy_from(enum util_proxy_proto p, enum pool_proxy_proto inherit);

/* Control thread: where s's address comes from: host (a name; NULL: none)
 * and, for an SRV target, target (else NULL); both copied. Returns 0 or
 * -1 on no memory (s unchanged). */
int pool_server_set_dns(struct pool_server *s, enum pool_dns_origin origin, const char *host,
			const char *target);

/* Create a bare server (one reference, the caller's), not yet in a pool:
 * weight 1, no options checked. pool_server_create() is the door for the
 * model; this is for tests. */
struct pool_server *pool_server_new(const char *name, const struct util_addr *addr);
void pool_server_get(struct pool_server *s);
/* Drop a reference; the last one frees the server (and its pool ref). */
void pool_server_put(struct pool_server *s);

/* Control thread: append s to p; the pool takes over the caller's
 * reference. Does not republish. Returns 0 or -1. */
int pool_add_server(struct pool *p, struct pool_server *s);
/* Control thread: take s out of p (retired through QSBR). Republishes.
 * Connections already using s keep it alive until they finish. */
void pool_remove_server(struct pool *p, struct pool_server *s);
/* Control thread: take out of p, in one pass, every server for which
 * doomed(arg, s) is true (it may also act on s, e.g. take a reference).
 * They leave the list and the name index at once and the workers' table at
 * the next pool_publish(), which the caller makes; their list references
 * are retired after that publish. Returns how many were taken out, or -1
 * on no memory (then none was). */
long pool_remove_if(struct pool *p, bool (*doomed)(void *arg, struct pool_server *s), void *arg);
/* The same in steps, for a pool too large to sweep at once: each call
 * looks at up to max more servers (the list holds them all meanwhile, the
 * ones to keep first, in their order; a doomed one leaves the name index
 * at once) and returns 1 while some are left, 0 once every server was
 * seen, -1 on no memory (first call only; nothing done).
 * pool_sweep_finish() then takes the doomed ones out of the list as
 * pool_remove_if() does, in O(servers) pointer moves. Nothing may remove
 * servers of p between the first step and the finish; appended ones are
 * looked at by the next step, or stay. */
int pool_sweep_step(struct pool *p, struct pool_sweep *sw, size_t max,
		    bool (*doomed)(void *arg, struct pool_server *s), void *arg);
long pool_sweep_finish(struct pool *p, struct pool_sweep *sw);
/* Control thread: while p is frozen pool_publish() does nothing, so that a
 * change made in several steps reaches the workers whole; pool_thaw()
 * publishes (returns as pool_publish). */
void pool_freeze(struct pool *p);
int pool_thaw(struct pool *p);
/* The server of p named name, or NULL (O(1)). */
struct pool_server *pool_find_server(const struct pool *p, const char *name);

/* Control thread: rebuild the balancer snapshot from the model and publish
 * it; the old one is retired through QSBR. Returns 0 or -1 (no memory; the
 * old snapshot stays). */
int pool_publish(struct pool *p);

/* Control thread: detach a pool being removed from the model: unpublish its
 * snapshot and drop the servers' list references. The caller then puts its
 * own reference. */
void pool_retire(struct pool *p);

/* True when the server may get new connections per the model (ready,
 * healthy, weight > 0, not gone from its DNS answer). */
bool pool_server_eligible(const struct pool_server *s);
/* Control thread: true when at least one server of p (primary or backup)
 * may get new connections. */
bool pool_has_usable(const struct pool *p);

/* Called on the control thread after every pool_publish() (whatever its
 * result) and pool_retire(): the pool's servers, their health, admin
 * state or weights, or the pool itself may have changed. Must not publish
 * or change the model itself; core defers its work to its loop. */
typedef void (*pool_publish_fn)(struct pool *p, void *arg);
/* Install the publish observer (NULL to remove). Control thread. */
void pool_set_publish_hook(pool_publish_fn fn, void *arg);

/* Worker: choose a server for a connection and acquire it (connection count
 * and a reference). Servers in pk->tried are skipped. On POOL_PICK_OK *out
 * is set and must be released with pool_server_release(); on
 * POOL_PICK_FULL pk->queue_max and pk->timeout_queue_ms say how the client
 * may wait. Call only while the worker is QSBR-online. */
enum pool_pick_result pool_pick(struct pool *p, struct pool_pick *pk, uint64_t *rng,
				struct pool_server **out);

/* Worker: the connection no longer uses s. The caller must hold a reference
 * to s->pool. Returns true when clients are queued on that pool (the caller
 * should wake one). s may be freed. */
bool pool_server_release(struct pool_server *s);

/* Worker: record a connect failure / success of s (passive health). */
void pool_server_connect_failed(struct pool_server *s);
void pool_server_connect_ok(struct pool_server *s);
/* Any thread: a connection or check to s could not be attempted or failed
 * for a local reason (util_errno_local): counted apart, and neither a
 * failure nor a success of s. */
void pool_server_local_error(struct pool_server *s);

/* Control thread (pool_admin.c): operator changes, republished at once.
 * They mark the value as set at runtime, so a reload keeps it. */
void pool_server_operator_admin(struct pool_server *s, enum pool_admin a, uint64_t now_ms);
void pool_server_operator_weight(struct pool_server *s, uint32_t weight);
/* Parse "ready", "drain", "maint". Returns 0 or -1. */
int pool_admin_parse(const char *s, enum pool_admin *out);
/* Sum of active connections of the pool's servers. */
uint32_t pool_active(const struct pool *p);

const char *pool_balance_name(enum pool_balance b);
const char *pool_admin_name(enum pool_admin a);
const char *pool_health_name(enum pool_health h);

/* ---- health (pool_health.c) ---- */

/* Called by a worker when a server reaches its consecutive connect error
 * threshold (once, until the control thread clears the flag). Must be
 * async-signal-like cheap: core wakes its control loop. */
typedef void (*pool_passive_fn)(struct pool_server *s, void *arg);

/* Install the passive hook (NULL to remove). Any thread. */
void pool_set_passive_hook(pool_passive_fn fn, void *arg);

/* Worker (from pool_server_connect_failed): n consecutive errors so far. */
void pool_health_observe_error(struct pool_server *s, uint32_t n);

/* True when a worker flagged s as failing and pool_pick must skip it. */
bool pool_server_passive_flagged(const struct pool_server *s);

/* Snapshot weight of s (weight x POOL_WEIGHT_SCALE, or the ramp weight
 * during slow start). */
uint32_t pool_server_lb_weight(const struct pool_server *s);

/* Control thread: count one check result of s with its cause. */
void pool_server_note_check(struct pool_server *s, bool ok, const char *cause, uint64_t now_ms);

/* Control thread: apply a verdict from src. Returns true when the
 * server's health (up/down) changed; then the change is counted, slow start
 * begins when it came up, and the caller logs it and calls pool_publish().
 * A check verdict "up" also clears a passive mark. */
bool pool_server_set_health(struct pool_server *s, enum pool_health_src src, bool up,
			    const char *cause, uint64_t now_ms);

/* Control thread: set the admin state; becoming ready starts slow start.
 * Returns true when it changed (the caller republishes). */
bool pool_server_set_admin(struct pool_server *s, enum pool_admin a, uint64_t now_ms);

/* Control thread: set the weight to pct% of the configured weight (at least
 * 1 when pct > 0). Returns true when it changed (the caller republishes). */
bool pool_server_set_weight_pct(struct pool_server *s, uint32_t pct);

/* Control thread: advance slow start of p's servers to now_ms. Returns
 * true when a weight changed (the caller republishes); p->ramping says
 * whether to call again. */
bool pool_slowstart_step(struct pool *p, uint64_t now_ms);

#endif
