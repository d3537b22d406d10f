/* health internals shared by the checker engine (health_check.c) and its
 * TLS layer (health_tls.c). Not a public header. */
#ifndef SLUICE_HEALTH_INT_H
#define SLUICE_HEALTH_INT_H

#include <ev.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "sluice/health.h"

enum health_phase {
	HEALTH_PH_IDLE, /* waiting for the next check */
	HEALTH_PH_CONNECTING,
	HEALTH_PH_HANDSHAKE, /* TLS */
	HEALTH_PH_SENDING,
	HEALTH_PH_READING,
};

/* A checker. Owner: core (health_checker_new / _free). Holds a reference
 * to its server and to its TLS context. Lives in the control thread. */
struct health_checker {
	struct ev_loop *loop;
	struct health_conf conf;
	struct pool_server *srv;
	health_result_fn cb;
	void *cb_arg;
	struct health_rf rf;
	ev_timer timer; /* next check when idle, the deadline otherwise */
	ev_io io;
	int fd;
	enum health_phase phase;
	uint64_t due_ms; /* when the current / next check is due (monotonic) */
	uint64_t started_ms;
	uint64_t started_us;	 /* the same, finer: for the lateness histogram */
	uint64_t local_retry_ms; /* back-off after local errors in a row, 0: none */
	uint64_t rng;
	void *ssl; /* SSL *, health_tls.c only */
	char req[HEALTH_STR_MAX * 2 + 128];
	size_t reqlen, reqoff;
	char rbuf[HEALTH_RBUF];
	size_t rlen;
};

/* Results of the I/O steps: >0 progress (bytes, or done), 0 would block
 * (chk->io set for the event wanted), <0 error (cause written). */

/* Start TLS on chk->fd: SNI, verification name. Returns 0 or -1. */
int health_tls_start(struct health_checker *chk, char *cause, size_t len);
/* Drive the handshake: 1 done, 0 would block, -1 failed. */
int health_tls_handshake(struct health_checker *chk, char *cause, size_t len);
/* Read / write through TLS; read returns -2 on a clean end of stream. */
ssize_t health_tls_read(struct health_checker *chk, char *buf, size_t n, char *cause, size_t len);
ssize_t health_tls_write(struct health_checker *chk, const char *buf, size_t n, char *cause,
			 size_t len);
/* Free the TLS session (no close_notify: the socket is closed next). */
void health_tls_end(struct health_checker *chk);

/* Wait for events on chk->fd (EV_READ / EV_WRITE). */
void health_want(struct health_checker *chk, int events);

#endif
