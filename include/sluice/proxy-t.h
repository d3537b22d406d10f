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

/* Per-listener settings; published as a whole and retired through QSBR.
 * Holds a reference to its pool. */
struct proxy_fe_settings {
	struct pool *pool;
	uint32_t maxconn; /* 0: only the global limit */
	uint32_t retries;
	uint32_t timeout_connect_ms;
	uint32_t timeout_idle_ms;
	uint32_t timeout_half_closed_ms;
	uint32_t timeout_proxy_header_ms; /* accept_proxy: the whole header within it */
	bool accept_proxy;
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
	_Atomic uint64_t proxy_header_errors; /* malformed or oversized */
	_Atomic uint64_t proxy_header_timeouts; /* not complete within its timeout */
	_Atomic uint64_t maxconn_reached; /* times accepting stopped at this maxconn */
	_Atomic uint64_t bytes_in;
	_Atomic uint64_t bytes_out;
	/* who may connect and how much (guard); set by its creator before the
	 * first accept, freed with the frontend */
	struct guard *guard;
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
