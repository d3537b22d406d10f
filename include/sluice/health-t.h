/* health types: what a checker is told to do (struct health_conf, built by
 * core from the configuration), the rise/fall state, agent replies and the
 * result handed back to core after every check. Plain data. */
#ifndef SLUICE_HEALTH_T_H
#define SLUICE_HEALTH_T_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sluice/util-t.h"

#define HEALTH_STR_MAX 256
#define HEALTH_MAX_STATUS 8
#define HEALTH_CAUSE_MAX 160
#define HEALTH_RBUF 4096 /* reply bytes kept: expect must match within them */

enum health_type {
	HEALTH_TCP,    /* the connect succeeds */
	HEALTH_EXPECT, /* optional send, then the reply contains expect */
	HEALTH_HTTP,   /* GET path, status in the accepted ranges */
	HEALTH_TLS,    /* a full TLS handshake (and verification when asked) */
	HEALTH_HTTPS,  /* tls + http */
	HEALTH_AGENT,  /* HAProxy-compatible agent: read one line */
};

struct health_status_range {
	uint16_t lo, hi;
};

struct health_tls; /* shared OpenSSL client context, health_tls.c */

/* What one checker does. Copied by the checker, except tls which it
 * references (health_tls_get). */
struct health_conf {
	enum health_type type;
	struct util_addr addr; /* where to connect */
	uint32_t interval_ms, timeout_ms;
	uint32_t rise, fall; /* ignored by the agent: it applies every reply */
	uint32_t jitter_pct;
	char send[HEALTH_STR_MAX];
	size_t send_len;
	char expect[HEALTH_STR_MAX];
	size_t expect_len;
	char path[HEALTH_STR_MAX];
	char host[HEALTH_STR_MAX]; /* "": no Host header */
	struct health_status_range status[HEALTH_MAX_STATUS];
	size_t nstatus;
	char sni[HEALTH_STR_MAX];	  /* "": no SNI */
	char verify_name[HEALTH_STR_MAX]; /* name the certificate must match; "": sni */
	struct health_tls *tls;		  /* tls and https: the context (verification inside) */
};

/* Rise/fall hysteresis.
 *
 *   UP --(fail x fall in a row)--> DOWN --(ok x rise in a row)--> UP
 *
 * A success while up and a failure while down reset the other counter. */
struct health_rf {
	uint32_t rise, fall;
	uint32_t good, bad; /* consecutive results towards a change */
	bool up;
};

enum health_rf_event {
	HEALTH_RF_NONE,
	HEALTH_RF_WENT_UP,
	HEALTH_RF_WENT_DOWN,
};

enum health_agent_admin {
	HEALTH_AGENT_ADMIN_NONE,
	HEALTH_AGENT_READY,
	HEALTH_AGENT_DRAIN,
	HEALTH_AGENT_MAINT,
};

enum health_agent_state {
	HEALTH_AGENT_STATE_NONE,
	HEALTH_AGENT_UP,
	HEALTH_AGENT_DOWN, /* also "fail" and "stopped" */
};

/* One agent reply line, e.g. "75% ready" or "down #maintenance". */
struct health_agent_reply {
	bool has_weight;
	uint32_t weight_pct; /* 0-256 */
	enum health_agent_admin admin;
	enum health_agent_state state;
	char reason[HEALTH_CAUSE_MAX]; /* after '#', trimmed; "" when none */
};

/* Outcome of one check, handed to the owner's callback. */
struct health_result {
	bool ok;
	bool local; /* could not run here (util_errno_local): no verdict, retried soon */
	char cause[HEALTH_CAUSE_MAX];		/* "connect refused", "HTTP 503", ... */
	enum health_rf_event event;		/* active checks: a state change now */
	uint32_t count, of;			/* e.g. 3 of fall 3, for "(3/3)" */
	const struct health_agent_reply *agent; /* agent checks with a valid reply */
	uint64_t late_ms;			/* how late the check started after its due time */
	uint64_t late_us;			/* the same in microseconds */
};

struct health_checker;
typedef void (*health_result_fn)(void *arg, struct health_checker *chk,
				 const struct health_result *r);

#endif
