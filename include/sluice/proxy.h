/* proxy: the data plane. Worker threads, each with its own libev loop and
 * its own SO_REUSEPORT socket per bound address; they accept, pick a server
 * through pool, connect with retries and relay both directions. Core drives
 * it from the control thread with the functions below. */
#ifndef SLUICE_PROXY_H
#define SLUICE_PROXY_H

#include <stdbool.h>
#include <stddef.h>

#include "sluice/proxy-t.h"
#include "sluice/qsbr.h"

/* Create the engine and its workers (not started). Returns NULL on error. */
struct proxy_engine *proxy_engine_new(const struct proxy_engine_conf *conf, struct qsbr *q);
/* Start the worker threads. Returns 0 or -1. */
int proxy_engine_start(struct proxy_engine *e);
/* Connections open now, all workers. */
uint32_t proxy_engine_active(const struct proxy_engine *e);
uint64_t proxy_engine_total(const struct proxy_engine *e);
/* Times a worker stopped accepting at the global maxconn. */
uint64_t proxy_engine_maxconn_reached(const struct proxy_engine *e);
/* Bytes of relay buffers (cached ones too) and pipes in use, all workers,
 * against the bufmem ceiling; connections closed for want of a buffer. */
uint64_t proxy_engine_bufmem_used(const struct proxy_engine *e);
uint64_t proxy_engine_no_memory(const struct proxy_engine *e);
/* Listening sockets, all workers, that stopped taking new clients and
 * still serve handshakes the kernel answered before (closed within 4 s). */
uint32_t proxy_engine_closing(const struct proxy_engine *e);
/* Close every connection now (grace expired). Asynchronous. */
void proxy_engine_close_all(struct proxy_engine *e);
/* Close the connections that use srv (connecting or relaying; NULL: every
 * connection, queued ones too), each at a random moment within spread_ms
 * (0: now). Asynchronous. */
struct pool_server;
void proxy_engine_close_server(struct proxy_engine *e, struct pool_server *srv, uint32_t spread_ms);
/* Close fe's connections from clients inside cidr (as accepted, or as the
 * PROXY header of an accept-proxy listener said), in every worker.
 * Asynchronous; each worker logs how many it closed. */
void proxy_engine_close_sources(struct proxy_engine *e, struct proxy_frontend *fe,
				const struct util_cidr *cidr);
/* Stop workers, join threads, free the engine. Frontends still attached
 * are detached and their sockets closed. */
void proxy_engine_free(struct proxy_engine *e);

/* Give the workers the kernel relay (sluice/krelay.h; core keeps
 * ownership and frees it after proxy_engine_free). Set once. */
struct krelay;
void proxy_engine_set_krelay(struct proxy_engine *e, struct krelay *k);
/* Connections the kernel relay took, and those it could not take (the
 * socket was no longer established, the maps were full, bytes came before
 * the insert): counters since start. */
uint64_t proxy_engine_krelay_conns(const struct proxy_engine *e);
uint64_t proxy_engine_krelay_fallbacks(const struct proxy_engine *e);
/* Kernel-relayed streams reset because the kernel repeated bytes. */
uint64_t proxy_engine_krelay_broken(const struct proxy_engine *e);
uint64_t proxy_engine_krelay_cut(const struct proxy_engine *e);

/* Create a frontend with its settings (the frontend takes them over) and
 * no address yet. One reference, the caller's. The caller may give it a
 * guard (fe->guard) before attaching it; the frontend frees it. */
struct proxy_frontend *proxy_frontend_new(const char *name, struct proxy_fe_settings *settings);
void proxy_frontend_get(struct proxy_frontend *fe);
void proxy_frontend_put(struct proxy_frontend *fe);

/* Control thread: bind addr for fe, one listening socket per worker, not
 * accepting yet (see proxy_engine_attach). On failure nothing stays open
 * and err says which address and why. Returns 0 or -1. */
int proxy_frontend_bind(struct proxy_engine *e, struct proxy_frontend *fe,
			const struct util_addr *addr, char *err, size_t errlen);
/* Control thread: like proxy_frontend_bind() with sockets inherited from
 * another process (fds, taken over whatever happens); more are opened when
 * there are fewer than workers. Returns 0 or -1. */
int proxy_frontend_adopt(struct proxy_engine *e, struct proxy_frontend *fe,
			 const struct util_addr *addr, const int *fds, size_t nfds, char *err,
			 size_t errlen);
/* Control thread: close the control thread's descriptors of fe's sockets
 * (after detaching, so that the sockets really close and new clients are
 * refused). */
void proxy_frontend_close_sockets(struct proxy_frontend *fe);
/* Control thread: is addr one of fe's bound addresses? */
bool proxy_frontend_has_bind(const struct proxy_frontend *fe, const struct util_addr *addr);
/* Control thread: close fe's sockets for addr, attached or not (the open
 * connections continue). Asynchronous in the workers. drain: the socket
 * closes, so serve the handshakes it answered first; false when another
 * frontend shares these sockets (proxy_frontend_dup_fds) and serves them. */
void proxy_engine_unbind(struct proxy_engine *e, struct proxy_frontend *fe,
			 const struct util_addr *addr, bool drain);
/* Control thread: duplicates of fe's sockets for addr (at most max), so
 * that another frontend can adopt them (a reload that moves an address
 * from one listener to another keeps its sockets). Returns how many; 0
 * when fe does not bind addr. */
int proxy_frontend_dup_fds(const struct proxy_frontend *fe, const struct util_addr *addr, int *fds,
			   size_t max);

/* Control thread: replace the settings (the frontend takes over s; the old
 * ones are retired through QSBR). */
void proxy_frontend_set_settings(struct proxy_engine *e, struct proxy_frontend *fe,
				 struct proxy_fe_settings *s);

/* Free settings and their pool reference (also the QSBR free function). */
void proxy_fe_settings_free(void *s);

/* TLS route counters (peek.c): a new object with one reference, or NULL;
 * take and drop references (any thread; the last put frees). */
struct proxy_route_stats *proxy_route_stats_new(void);
void proxy_route_stats_get(struct proxy_route_stats *rs);
void proxy_route_stats_put(struct proxy_route_stats *rs);

/* Control thread: start accepting on fe's binds that are not accepting yet,
 * in every worker. */
void proxy_engine_attach(struct proxy_engine *e, struct proxy_frontend *fe);
/* Control thread: stop accepting on fe and close its sockets; its open
 * connections continue. Clients already waiting in the accept queues are
 * served, new ones are refused once the sockets close; with handover (a
 * binary upgrade, the sockets live on in the new process) the queues are
 * left alone. Asynchronous; the workers drop their references. */
void proxy_engine_detach(struct proxy_engine *e, struct proxy_frontend *fe, bool handover);

#endif
