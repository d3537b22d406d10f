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

/* Create a server (one reference, the caller's), not yet in a pool. */
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
 * healthy, weight > 0). */
bool pool_server_eligible(const struct pool_server *s);

/* Worker: choose a server for a connection and acquire it (connection count
 * and a reference). Servers in pk->tried are skipped. On POOL_PICK_OK *out
 * is set and must be released with pool_server_release(). Call only while
 * the worker is QSBR-online. */
enum pool_pick_result pool_pick(struct pool *p, struct pool_pick *pk, uint64_t *rng,
				struct pool_server **out);

/* Worker: the connection no longer uses s. The caller must hold a reference
 * to s->pool. Returns true when clients are queued on that pool (the caller
 * should wake one). s may be freed. */
bool pool_server_release(struct pool_server *s);

/* Worker: record a connect failure / success of s (passive health). */
void pool_server_connect_failed(struct pool_server *s);
void pool_server_connect_ok(struct pool_server *s);

/* Control thread (pool_admin.c): operator changes, republished at once.
 * They mark the value as set at runtime, so a reload keeps it. */
void pool_server_set_admin(struct pool_server *s, enum pool_admin a, uint64_t now_ms);
void pool_server_set_weight(struct pool_server *s, uint32_t weight);
/* Parse "ready", "drain", "maint". Returns 0 or -1. */
int pool_admin_parse(const char *s, enum pool_admin *out);
/* Sum of active connections of the pool's servers. */
uint32_t pool_active(const struct pool *p);

const char *pool_balance_name(enum pool_balance b);
const char *pool_admin_name(enum pool_admin a);
const char *pool_health_name(enum pool_health h);

#endif
