/* guard types: source ACLs (longest-prefix tables) and per-source limits
 * of one listener, decided at accept. Plain data; struct guard and the
 * tables behind it are opaque (guard.h). */
#ifndef SLUICE_GUARD_T_H
#define SLUICE_GUARD_T_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sluice/util-t.h"

struct guard;
struct guard_lpm;
struct guard_table;

enum guard_action {
	GUARD_ALLOW,
	GUARD_DENY,
};

/* Where an ACL entry comes from; on an equal prefix the higher one wins. */
enum guard_origin {
	GUARD_ORIGIN_FILE,    /* allow file / deny file */
	GUARD_ORIGIN_CONFIG,  /* allow / deny lines of the listen block */
	GUARD_ORIGIN_RUNTIME, /* acl add on the control socket */
};

/* What guard_admit() decided: admitted, or refused and why. */
enum guard_verdict {
	GUARD_OK,
	GUARD_REFUSE_ACL,
	GUARD_REFUSE_CONNS,
	GUARD_REFUSE_RATE,
	GUARD_REFUSE_TABLE_FULL,
};
#define GUARD_NVERDICTS 5

/* One ACL entry. expires_ms: monotonic deadline, 0 never. */
struct guard_rule {
	struct util_cidr cidr;
	enum guard_action action;
	enum guard_origin origin;
	uint64_t expires_ms;
};

/* Per-source limits of a listener. A table exists when conns or rate is
 * set. */
struct guard_limits_conf {
	uint32_t conns;		/* open connections per source; 0: no limit */
	uint32_t rate;		/* new connections per period_ms; 0: no limit */
	uint64_t period_ms;	/* 1000 or 60000 */
	uint32_t burst;		/* token bucket depth, >= 1 */
	uint8_t group4, group6; /* prefix lengths that make one source */
	uint32_t table;		/* sources tracked at most */
};

/* A connection admitted by a limit table: given back with guard_release()
 * when it closes. t NULL: nothing to give back. */
struct guard_ticket {
	struct guard_table *t;
	uint32_t idx;
};

/* Counters of one listener's guard, for show listeners and metrics. */
struct guard_stats {
	uint64_t refused[GUARD_NVERDICTS]; /* by verdict; [GUARD_OK] unused */
	uint64_t sources;		   /* tracked now (all tables) */
	uint64_t capacity;		   /* of the current table; 0: no limits */
	uint64_t memory_bytes;		   /* limit tables and ACL tables */
	uint64_t evictions;
	uint64_t acl_entries[3]; /* by enum guard_origin */
};

/* One tracked source, for show sources. */
struct guard_source {
	struct util_cidr src;
	uint32_t conns;
	double rate;	/* connection attempts per second, recent */
	uint64_t total; /* admitted */
	uint64_t refused;
};

#endif
