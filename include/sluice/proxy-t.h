/* proxy types: what core hands the data plane. Settings are immutable once
 * published; frontends are reference counted (control thread, each worker
 * listening on them and each connection they accepted hold one). */
#ifndef SLUICE_PROXY_T_H
#define SLUICE_PROXY_T_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "sluice/util-t.h"

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
	bool accept_proxy;
};

/* A listener ("listen" block): its addresses, one socket per worker and
 * address (SO_REUSEPORT), live settings and counters. */
struct proxy_frontend {
	char name[64];
	struct util_addr *binds;
	size_t nbinds;
	int *fds; /* nworkers x nbinds, created by the control thread */
	size_t nworkers;
	_Atomic(struct proxy_fe_settings *) settings;
	_Atomic uint32_t refcnt;
	_Atomic uint32_t cur_conns;
	_Atomic uint64_t paused_workers; /* bit per worker paused at maxconn */
	_Atomic uint64_t total_conns;
	_Atomic uint64_t proxy_header_errors;
	_Atomic uint64_t bytes_in;
	_Atomic uint64_t bytes_out;
};

/* Engine-wide settings fixed at start. */
struct proxy_engine_conf {
	uint32_t workers;
	uint32_t maxconn;
	uint32_t bufsize;
	uint32_t max_pipes_per_worker;
};

#endif
