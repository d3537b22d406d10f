/* resolve: DNS through c-ares on a libev loop (the control thread's), so
 * that nothing in sluice waits on a name server. A `struct resolve` is
 * one resolvers block (a c-ares channel whose sockets are ev_io watchers
 * and whose timeouts one ev_timer); a name watched through it is looked
 * up at once, then again when its answer's TTL (clamped) runs out. A
 * failing DNS keeps the last good answer for the block's `hold`; a name
 * is given up only when that runs out. The only user of c-ares; knows
 * nothing of pools or servers (core connects answers to servers). */
#ifndef SLUICE_RESOLVE_H
#define SLUICE_RESOLVE_H

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sluice/resolve-t.h"

struct resolve;
struct resolve_name;
struct resolve_watch;

/* ---- DNS replies (resolve_dns.c, pure) ---- */

#define RESOLVE_DNS_A 1
#define RESOLVE_DNS_CNAME 5
#define RESOLVE_DNS_AAAA 28
#define RESOLVE_DNS_SRV 33

/* An address the reply gives for some name (an SRV target's glue). */
struct resolve_dns_glue {
	char name[RESOLVE_NAME_MAX];
	struct util_addr addr; /* port 0 */
	uint32_t ttl;
};

/* What one reply says about its question. Owned by the caller; release
 * with resolve_dns_result_free(). */
struct resolve_dns_result {
	enum resolve_error err; /* NONE: recs holds at least one record */
	uint16_t rcode;
	bool truncated;		  /* TC set */
	struct resolve_rec *recs; /* of the asked type, for the question's name */
	size_t nrecs;
	uint32_t ttl;		       /* the least TTL of recs and of the CNAMEs that led there */
	struct resolve_dns_glue *glue; /* SRV replies: A/AAAA records of the reply */
	size_t nglue;
	size_t skipped; /* records not used: over max, or names a host cannot have */
};

/* Read reply msg (len bytes) to a question of type qtype (RESOLVE_DNS_*),
 * keeping at most max records. Returns 0 with out->err saying whether
 * there is an answer (NXDOMAIN, SERVFAIL... from the rcode; NODATA,
 * CNAME_LOOP, CNAME_END from the records), or -1 when msg is not a
 * readable reply to one question of qtype (out->err BADRESP or NOMEM).
 * out is filled in both cases. */
int resolve_dns_read(const uint8_t *msg, size_t len, uint16_t qtype, size_t max,
		     struct resolve_dns_result *out);
void resolve_dns_result_free(struct resolve_dns_result *r);

/* "NXDOMAIN", "timeout", "CNAME loop"... */
const char *resolve_error_name(enum resolve_error e);
/* Which hold keeps the last answer after this failure. */
enum resolve_hold_kind resolve_error_hold(enum resolve_error e);

/* ---- settings ---- */

bool resolve_conf_equal(const struct resolve_conf *a, const struct resolve_conf *b);
/* Read /etc/hosts from path instead (tests of this module only). */
void resolve_set_hosts_path(const char *path);

/* ---- resolvers ---- */

/* A resolver for the block rc (copied) on loop. NULL with err when c-ares
 * cannot start (no memory, an unreadable /etc/resolv.conf). */
struct resolve *resolve_new(struct ev_loop *loop, const struct resolve_conf *rc, char *err,
			    size_t errlen);
/* Free r: lookups in flight end unseen, names still watched are freed
 * (their watches must not be used any more). */
void resolve_free(struct resolve *r);
const struct resolve_conf *resolve_conf_of(const struct resolve *r);
const struct resolve_counters *resolve_counters_of(const struct resolve *r);

/* Called after every lookup of a watched name ends (and when its hold
 * runs out); changed: the records in use differ from before. It may
 * unwatch any watch, its own included. */
typedef void (*resolve_fn)(void *arg, struct resolve_watch *w, bool changed);

/* Follow name (a host name, or an SRV name for RESOLVE_SRV) through r.
 * Watches of the same name and type share its lookups; the first starts
 * one at the next loop iteration. fn is never called from inside this
 * call. Returns the watch (owned by the caller until resolve_unwatch), or
 * NULL on no memory. */
struct resolve_watch *resolve_watch(struct resolve *r, enum resolve_type type, const char *name,
				    resolve_fn fn, void *arg);
void resolve_unwatch(struct resolve_watch *w);
struct resolve_name *resolve_watch_name(const struct resolve_watch *w);
/* The name r follows as type, or NULL. */
struct resolve_name *resolve_find(struct resolve *r, enum resolve_type type, const char *name);
/* Look the name up again now, unless a lookup of it is running (a reload
 * wants a fresh answer). */
void resolve_refresh(struct resolve_name *n);
/* Lookups of n that ended, a counter a caller compares to see a new one. */
uint64_t resolve_name_lookups(const struct resolve_name *n);

/* What a name stands at. Pointers stay valid until the next lookup of it
 * ends or it is freed. */
struct resolve_name_info {
	const char *name;
	enum resolve_type type;
	enum resolve_state state;
	bool from_hosts;		/* the records came from /etc/hosts */
	const struct resolve_rec *recs; /* in use: the last good answer */
	size_t nrecs;
	uint32_t ttl_s;		       /* of that answer, as received */
	uint64_t answered_ms;	       /* when it came (monotonic), 0: never */
	uint64_t expires_ms;	       /* when its (clamped) TTL runs out */
	uint64_t held_until_ms;	       /* HELD: given up then, if the DNS still fails */
	uint64_t next_ms;	       /* the next lookup, 0: one is running */
	enum resolve_error last_error; /* of the last failed lookup */
	uint32_t failing;	       /* lookups failed in a row */
	struct resolve_counters counters;
};
void resolve_name_info(const struct resolve_name *n, struct resolve_name_info *out);
/* fn(arg, n) for every name r follows, in the order they were first watched. */
void resolve_foreach(struct resolve *r, void (*fn)(void *arg, const struct resolve_name *n),
		     void *arg);
const char *resolve_state_name(enum resolve_state s);
const char *resolve_type_name(enum resolve_type t);

#endif
