/* proxy types: what core hands the data plane. Settings are immutable once
 * published; frontends are reference counted (control thread, each worker
 * listening on them and each connection they accepted hold one). */
#ifndef SLUICE_PROXY_T_H
#define SLUICE_PROXY_T_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "sluice/util-t.h"

struct guard;
struct pool;
struct proxy_engine;

/* ---- TLS routes (peek.c) ---- */

#define PROXY_ROUTE_SNI_MAX 256
#define PROXY_ROUTE_ALPN_MAX 256

/* Counters of one route. A reload that keeps the route hands the same
 * object to the new settings, so they survive it. Reference counted: the
 * settings and each connection the route took hold one. */
struct proxy_route_stats {
	_Atomic uint32_t refcnt;
	_Atomic uint32_t active; /* open connections it routed */
	_Atomic uint64_t total;	 /* connections it routed */
};

enum proxy_route_kind {
	PROXY_ROUTE_SNI,     /* server name (exact or "*.suffix"), and ALPN when alpn_len */
	PROXY_ROUTE_ALPN,    /* the client offers this ALPN protocol */
	PROXY_ROUTE_NO_SNI,  /* a ClientHello without a server name */
	PROXY_ROUTE_NOT_TLS, /* the first bytes are not a TLS handshake */
};

/* One route: the first that matches a connection picks its pool. */
struct proxy_route {
	enum proxy_route_kind kind;
	char sni[PROXY_ROUTE_SNI_MAX]; /* lowercase */
	uint16_t sni_len;
	char alpn[PROXY_ROUTE_ALPN_MAX];
	uint16_t alpn_len;		 /* 0: any */
	struct pool *pool;		 /* reference */
	struct proxy_route_stats *stats; /* reference */
};

/* What became of connections that waited for a ClientHello without being
 * routed, per listener (survives reloads with the listener). */
struct proxy_peek_counters {
	_Atomic uint64_t not_tls;     /* not TLS and no not-tls route */
	_Atomic uint64_t no_route;    /* no route matched and no default pool */
	_Atomic uint64_t bad_hello;   /* a malformed ClientHello */
	_Atomic uint64_t timeouts;    /* no whole ClientHello within timeout client-hello */
	_Atomic uint64_t client_gone; /* closed or reset by the client before */
};

/* How established connections are relayed. */
enum proxy_relay {
	PROXY_RELAY_USER,   /* buffers and splice() in the worker */
	PROXY_RELAY_KERNEL, /* sockmap when the engine has it */
	PROXY_RELAY_AUTO,   /* sockmap, except for connections that start as bulk (splice) */
};

/* Per-listener settings; published as a whole and retired through QSBR.
 * Holds a reference to its pool and to its routes' pools. */
struct proxy_fe_settings {
	/* NULL only with routes: a connection that matches none is closed */
	struct pool *pool;
	/* routes: a connection waits for its ClientHello (timeout_client_hello_ms
	 * after accept), then the first route that matches picks the pool, or
	 * pool (counted in default_stats) when none does */
	struct proxy_route *routes; /* NULL: no routes; owned */
	size_t nroutes;
	struct proxy_route_stats *default_stats; /* reference, with routes */
	uint32_t timeout_client_hello_ms;
	uint32_t maxconn; /* 0: only the global limit */
	uint32_t retries;
	uint32_t timeout_connect_ms;
	uint32_t timeout_idle_ms;
	uint32_t timeout_half_closed_ms;
	uint32_t timeout_proxy_header_ms; /* accept_proxy: the whole header within it */
	bool accept_proxy;
	enum proxy_relay relay;
	uint64_t relay_inflight; /* kernel relay: cap of one direction's bytes in flight */
};

/* One bound address of a frontend: listening sockets (SO_REUSEPORT), at
 * least one per worker; socket i is served by worker i % nworkers. Owned
 * by its frontend (control thread). The control thread keeps its own
 * descriptor of each socket (to hand them to a new process on binary
 * upgrade); each worker gets a duplicate and closes it when detached. */
struct proxy_bind {
	struct util_addr addr;
	uint64_t id;
	int *fds; /* -1 once closed */
	size_t nfds;
	bool attached;
};

/* A listener ("listen" block): its addresses, live settings and counters.
 * binds and nbinds are the control thread's. */
struct proxy_frontend {
	char name[64];
	struct proxy_bind **binds;
	size_t nbinds;
	_Atomic(struct proxy_fe_settings *) settings;
	_Atomic uint32_t refcnt;
	_Atomic uint32_t cur_conns;
	_Atomic uint64_t paused_workers; /* bit per worker paused at maxconn */
	_Atomic uint64_t total_conns;
	_Atomic uint64_t proxy_header_errors;	/* malformed or oversized */
	_Atomic uint64_t proxy_header_timeouts; /* not complete within its timeout */
	_Atomic uint64_t maxconn_reached;	/* times accepting stopped at this maxconn */
	_Atomic uint64_t bytes_in;
	_Atomic uint64_t bytes_out;
	/* who may connect and how much (guard); set by its creator before the
	 * first accept, freed with the frontend */
	struct guard *guard;
	struct proxy_peek_counters peek;
};

/* Engine-wide settings fixed at start. */
struct proxy_engine_conf {
	uint32_t workers;
	uint32_t maxconn;
	uint32_t bufsize;
	uint32_t max_pipes_per_worker;
	uint64_t bufmem; /* ceiling for relay buffers and pipes, bytes, all workers */
};

#endif
