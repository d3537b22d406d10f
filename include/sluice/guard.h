/* guard: who may connect to a listener and how much. Source ACLs are
 * longest-prefix tables (path-compressed binary tries, built in one pass
 * from sorted prefixes and published as immutable snapshots); per-source
 * limits (open connections, a token-bucket rate) live in a bounded table
 * shared by every worker with atomic counters. The proxy asks at accept
 * (guard_admit), core configures it from the file, the control socket
 * through core. Pure tables and atomics: no sockets, no event loop. */
#ifndef SLUICE_GUARD_H
#define SLUICE_GUARD_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sluice/guard-t.h"
#include "sluice/qsbr.h"

/* Runtime ACL entries a listener holds at most (each change rebuilds their
 * table on the control thread; long lists belong in a file). */
#define GUARD_RUNTIME_MAX 10000

/* ---- longest-prefix tables (guard_lpm.c) ---- */

/* Collects prefixes for one table, compactly (8 bytes an IPv4 prefix), so
 * that a list of a million is cheap to hold while it is read. */
struct guard_lpm_builder;

struct guard_lpm_builder *guard_lpm_builder_new(void);
/* A loader thread that shares a CPU with the control loop gives way: fn is
 * called after about every GUARD_PAUSE_WORK units of work (some 50 ns
 * each: a few hundred microseconds) while b is filled and built. */
typedef void (*guard_pause_fn)(void *arg);
#define GUARD_PAUSE_WORK 4096
void guard_lpm_builder_set_pause(struct guard_lpm_builder *b, guard_pause_fn fn, void *arg);
/* Count units of work done for b (the ACL file parser: one a line). */
void guard_lpm_builder_step(struct guard_lpm_builder *b, uint32_t units);
/* Add r (its prefix, action, origin, expiry). Returns 0 or -1 (no memory,
 * or more than 16 million prefixes). */
int guard_lpm_builder_add(struct guard_lpm_builder *b, const struct guard_rule *r);
/* Prefixes added so far. */
size_t guard_lpm_builder_count(const struct guard_lpm_builder *b);
/* Build the table and free b. On an equal prefix the higher origin wins,
 * then deny; an entry with an expiry keeps the one it hides, which decides
 * again once it expired. The order of the additions does not matter.
 * Returns a table with one reference (the caller's), or NULL on no memory. */
struct guard_lpm *guard_lpm_build(struct guard_lpm_builder *b);
void guard_lpm_builder_free(struct guard_lpm_builder *b);

void guard_lpm_get(struct guard_lpm *t);
/* Drop a reference; the last one frees the table. NULL is allowed. A large
 * table (GUARD_REAP_BYTES and more: giving its pages back takes
 * milliseconds) goes to the reaper when one is set. */
void guard_lpm_put(struct guard_lpm *t);
/* The process's reaper: reap(fn, obj) must call fn(obj) soon, off the
 * thread that dropped the reference (core: a background thread), or at
 * once. NULL (the default): frees happen in place. Set it before the
 * tables are shared, and back to NULL before the last ones go at exit. */
#define GUARD_REAP_BYTES (4u << 20)
typedef void (*guard_reap_fn)(void (*fn)(void *), void *obj);
void guard_set_reaper(guard_reap_fn reap);
/* The longest prefix of t that holds a's host part and has not expired at
 * now_ms: returns its length and sets *action; -1 when none. O(prefix
 * length): one node per distinct branching bit on the way down. */
int guard_lpm_lookup(const struct guard_lpm *t, const struct util_addr *a, uint64_t now_ms,
		     enum guard_action *action);
/* Distinct prefixes in t, and the bytes it holds. */
size_t guard_lpm_count(const struct guard_lpm *t);
size_t guard_lpm_memory(const struct guard_lpm *t);

/* ---- ACL files (guard_file.c) ---- */

/* Parse the text of an ACL file into b with action (origin file): one
 * address or prefix per line, '#' starts a comment, blank lines and
 * surrounding blanks are ignored, a CR before the newline too. name is how
 * messages call the file. When stop becomes true (checked every 65536
 * lines) the parse gives up. Returns the prefixes added, or -1 with
 * "NAME:LINE:COL: error: ... (near 'TOKEN')" in err. */
long guard_file_parse(struct guard_lpm_builder *b, const char *name, const char *text, size_t len,
		      enum guard_action action, const _Atomic bool *stop, char *err, size_t errlen);

/* ---- a listener's guard (guard.c) ---- */

/* A guard with no ACL and no limit (guard_admit admits everyone). Retired
 * snapshots go through q. NULL on no memory. */
struct guard *guard_new(struct qsbr *q);
/* Free g and everything it holds; no thread may use it any more (its
 * listener is gone and every connection it admitted closed). NULL is
 * allowed. */
void guard_free(struct guard *g);

/* Control thread: the ACL from the configuration: file, the table of the
 * listener's allow/deny files (a reference is taken; NULL: none) and
 * file_id, what it was built from (core compares it at the next reload);
 * lines, the allow/deny lines (origin config); dflt, the action when no
 * prefix matches. Runtime entries are kept. Returns 0, or -1 on no memory
 * with nothing changed. */
int guard_set_acl(struct guard *g, struct guard_lpm *file, const char *file_id,
		  const struct guard_rule *lines, size_t n, enum guard_action dflt);
/* The file table in use and what it was built from ("" and NULL: none). */
const char *guard_file_id(const struct guard *g);
struct guard_lpm *guard_file_table(const struct guard *g);
enum guard_action guard_default(const struct guard *g);

/* Control thread: add a runtime entry (origin runtime) for c, replacing the
 * runtime entry of the same prefix; expires_ms (monotonic) and
 * expires_wall_ms (for the state file) are 0 for an entry that stays.
 * Takes effect for the next accept. Returns 0, or -1 with err. */
int guard_acl_add(struct guard *g, const struct util_cidr *c, enum guard_action action,
		  uint64_t expires_ms, uint64_t expires_wall_ms, char *err, size_t errlen);
/* Control thread: remove the runtime entry of exactly c. Returns 0, -1 when
 * there is none, -2 on no memory (nothing changed). */
int guard_acl_del(struct guard *g, const struct util_cidr *c);
/* Control thread: forget the runtime entries expired at now_ms (they
 * already stopped matching). Returns how many. */
size_t guard_acl_expire(struct guard *g, uint64_t now_ms);
/* The earliest expiry of a runtime entry (monotonic ms), 0 when none. */
uint64_t guard_acl_next_expiry(const struct guard *g);
/* Every entry of the configuration lines, then every runtime entry in the
 * order they were added, with its wall-clock expiry (0: none). */
typedef void (*guard_rule_fn)(void *arg, const struct guard_rule *r, uint64_t expires_wall_ms);
void guard_acl_each(const struct guard *g, guard_rule_fn fn, void *arg);

/* Control thread: the per-source limits (lc NULL, or neither conns nor rate
 * set: none). The table is kept when its size and grouping stay; else a
 * new one takes over and the old one keeps counting the connections it
 * admitted, which still count against their sources, until they close: a
 * reload never resets a source's count. Returns 0, or -1 on no memory with
 * nothing changed. */
int guard_set_limits(struct guard *g, const struct guard_limits_conf *lc);

/* Worker: does g decide anything (an ACL or limits)? When not (or g is
 * NULL), every client is admitted and guard_admit() need not be asked. */
bool guard_active(const struct guard *g);
/* Worker (QSBR online): may a client from a connect now (now_us, monotonic
 * microseconds)? On GUARD_OK, t is what to give back with guard_release()
 * when the connection closes. A refusal is counted by verdict. No lock but
 * when a new source enters the table (a lock striped by its hash). */
enum guard_verdict guard_admit(struct guard *g, const struct util_addr *a, uint64_t now_us,
			       struct guard_ticket *t);
/* The connection of t closed. Idempotent: t is cleared. */
void guard_release(struct guard_ticket *t, uint64_t now_us);
/* "ok", "acl", "conns", "rate", "table-full". */
const char *guard_verdict_name(enum guard_verdict v);

/* Counters and sizes, any thread. */
void guard_stats(const struct guard *g, struct guard_stats *out);
/* Control thread: the tracked sources with the most open connections (at
 * most max) and those with the highest recent rate (at most max), together
 * sorted by connections then rate; out has room for 2 * max rows. Scans
 * the table. Returns how many. */
size_t guard_top_sources(const struct guard *g, uint64_t now_us, struct guard_source *out,
			 size_t max);
/* Control thread: retire the superseded limit tables whose connections all
 * closed (freed through QSBR). */
void guard_reclaim(struct guard *g);

#endif
