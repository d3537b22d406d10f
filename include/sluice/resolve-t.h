/* resolve types: DNS answers as the rest of sluice sees them (records
 * with their TTLs, or why there is none), the settings of a `resolvers`
 * block, and the counters `show resolvers` and the metrics read. Plain
 * data; c-ares stays inside src/resolve. */
#ifndef SLUICE_RESOLVE_T_H
#define SLUICE_RESOLVE_T_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sluice/util-t.h"

#define RESOLVE_NAME_MAX 256	 /* a DNS name as text (at most 253) and its NUL */
#define RESOLVE_MAX_RECORDS 4096 /* records read from one answer; more are ignored */
#define RESOLVE_MAX_NAMESERVERS 8
#define RESOLVE_BLOCK_NAME_MAX 64

/* What is looked up: the A and AAAA records of a name, or its SRV records
 * (each target's addresses then looked up too). */
enum resolve_type {
	RESOLVE_ADDR,
	RESOLVE_SRV,
};

/* Why a lookup has no usable answer. */
enum resolve_error {
	RESOLVE_ERR_NONE,
	RESOLVE_ERR_NXDOMAIN,	/* the name does not exist */
	RESOLVE_ERR_NODATA,	/* it exists, without a record of the type */
	RESOLVE_ERR_CNAME_LOOP, /* its CNAME chain comes back on itself */
	RESOLVE_ERR_CNAME_END,	/* its CNAME chain ends without a record */
	RESOLVE_ERR_NO_TARGET,	/* SRV: no target has an address */
	RESOLVE_ERR_TIMEOUT,	/* no reply after every attempt */
	RESOLVE_ERR_SERVFAIL,
	RESOLVE_ERR_REFUSED,
	RESOLVE_ERR_BADRESP, /* a reply that cannot be read */
	RESOLVE_ERR_UNREACH, /* the server refused or could not be reached */
	RESOLVE_ERR_NOMEM,
	RESOLVE_ERR_OTHER,
};

/* Which `hold` applies to a failure: the name is said not to be there
 * (nx), or the DNS did not give an answer (timeout). */
enum resolve_hold_kind {
	RESOLVE_HOLD_NX,
	RESOLVE_HOLD_TIMEOUT,
};

/* One record of an answer. ADDR: addr with port 0. SRV: addr is the
 * target's address with the SRV port, target its name. */
struct resolve_rec {
	struct util_addr addr;
	uint16_t priority, weight, port; /* SRV */
	uint32_t ttl;			 /* seconds, the least of the chain that led to it */
	char target[RESOLVE_NAME_MAX];	 /* SRV: the target, lower case, no final dot */
};

/* A `resolvers NAME { ... }` block, or the system's defaults. */
struct resolve_conf {
	char name[RESOLVE_BLOCK_NAME_MAX];
	/* none: the system's (/etc/hosts first, then /etc/resolv.conf's
	 * servers and search list); else only these, names as written */
	struct util_addr nameservers[RESOLVE_MAX_NAMESERVERS];
	size_t nnameservers;
	uint64_t timeout_ms; /* first attempt; c-ares doubles it at each round */
	uint32_t attempts;
	uint64_t hold_valid_ms; /* an answer without a TTL (/etc/hosts) is read again after this */
	uint64_t hold_nx_ms;	/* the last good answer outlives NXDOMAIN / no record by this */
	uint64_t hold_timeout_ms;	 /* ... and a DNS that does not answer by this */
	uint64_t ttl_min_ms, ttl_max_ms; /* accepted-ttl: TTLs are clamped to these */
};

/* The state of a name being followed. */
enum resolve_state {
	RESOLVE_PENDING, /* no answer yet */
	RESOLVE_OK,	 /* the last lookup answered */
	RESOLVE_HELD,	 /* the last lookups failed: the last good answer is kept */
	RESOLVE_FAILED,	 /* no good answer (never, or its hold ran out) */
};

/* Counters of one name or of a whole resolvers block. */
struct resolve_counters {
	uint64_t queries;			/* DNS queries sent (A and AAAA count as two) */
	uint64_t answers;			/* lookups that gave a usable answer */
	uint64_t failures_nx, failures_timeout; /* lookups that failed, by hold kind */
	uint64_t changes; /* answers whose records differed from the ones in use */
	uint64_t expired; /* holds that ran out (the records were given up) */
};

#endif
