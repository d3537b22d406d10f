/* conf: parse and validate configuration text into a struct conf.
 * Pure: no sockets, no globals; the only I/O is conf_load_file() reading the
 * file. Every diagnostic names FILE:LINE:COL and what was expected. */
#ifndef SLUICE_CONF_H
#define SLUICE_CONF_H

#include <stdbool.h>

#include "sluice/conf-t.h"

/* Parse text (len bytes, need not be NUL-terminated) named `file` in
 * messages. Returns a new conf owned by the caller, or NULL with at least one
 * message in errs (which the caller releases with conf_errors_clear()). */
struct conf *conf_parse(const char *file, const char *text, size_t len, struct conf_errors *errs);

/* Read and parse a file. Same contract as conf_parse(); a file that cannot be
 * read gives one message naming it. */
struct conf *conf_load_file(const char *path, struct conf_errors *errs);

/* Free a conf and everything it owns. NULL is allowed. */
void conf_free(struct conf *c);

/* Add "FILE:LINE:COL: error: MSG (near 'NEAR')" to errs, for a check made
 * after parsing (a host name that does not resolve); near may be NULL. */
void conf_errors_add(struct conf_errors *errs, const char *file, const struct conf_where *w,
		     const char *near, const char *msg);

/* Add a message that is complete already ("FILE:LINE:COL: error: ..."
 * from another parser, such as an allow/deny file's). */
void conf_errors_add_text(struct conf_errors *errs, const char *text);

/* Add "FILE:LINE:COL: warning: MSG (near 'NEAR')" to c->warnings, for a
 * check made after parsing (a servers line whose name did not answer). */
void conf_warnings_add(struct conf *c, const struct conf_where *w, const char *near,
		       const char *msg);

/* Release the messages held by errs and reset it. */
void conf_errors_clear(struct conf_errors *errs);

/* Every keyword of every keyword table, with the block it belongs to
 * ("top" for the file level, then "global", "pool", "check", "listen",
 * "vrrp"...), its usage line and whether it opens a block of its own; for
 * `sluice --dump-keywords`, which the manual page test reads. */
typedef void (*conf_keyword_fn)(void *arg, const char *block, const char *keyword,
				const char *usage, bool opens_block);
void conf_keywords(conf_keyword_fn fn, void *arg);

/* Names for messages and tables. */
const char *conf_balance_name(enum conf_balance b);

/* Find a pool or listener by name; NULL when absent. */
const struct conf_pool *conf_find_pool(const struct conf *c, const char *name);
const struct conf_server *conf_find_server(const struct conf_pool *p, const char *name);
const struct conf_listen *conf_find_listen(const struct conf *c, const char *name);
/* A resolvers block by name ("default" is always there); NULL when absent. */
const struct conf_resolvers *conf_find_resolvers(const struct conf *c, const char *name);
/* An empty configuration (no pools, no listeners, defaults). NULL on no memory. */
struct conf *conf_empty(const char *file);

#endif
