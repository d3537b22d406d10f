/* conf internals shared by the lexer (conf_lex.c), the keyword tables
 * (conf_parse.c) and validation. Not a public header: only src/conf uses it. */
#ifndef SLUICE_CONF_INT_H
#define SLUICE_CONF_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sluice/conf.h"

/* One word of a statement; text is NUL-terminated, quotes and escapes
 * already resolved (owned by the statement). */
struct conf_tok {
	char *text;
	size_t len; /* may contain NUL bytes from \x00 escapes */
	uint32_t line, col;
	bool quoted;
};

/* A statement: words, then either ';' or a { block } of statements.
 * Owned by its parent; the root owns the whole tree. */
struct conf_stmt {
	struct conf_tok *args;
	size_t nargs;
	size_t break_at; /* index of the first arg on a later line than args[0]; 0: none */
	bool has_block;
	uint32_t end_line, end_col; /* position of the ';' or '}' that ends it */
	struct conf_stmt *kids;
	size_t nkids;
};

struct conf_ctx {
	const char *file;
	struct conf_errors *errs;
};

/* Add "FILE:LINE:COL: error: MSG (near 'TOK')" to ctx->errs; near may be NULL. */
void conf_error(struct conf_ctx *ctx, uint32_t line, uint32_t col, const char *near,
		const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* Add "FILE:LINE:COL: warning: MSG (near 'TOK')" to c->warnings: the file
 * is valid, but something in it is likely not what was meant. */
void conf_warning(struct conf_ctx *ctx, struct conf *c, uint32_t line, uint32_t col,
		  const char *near, const char *fmt, ...) __attribute__((format(printf, 6, 7)));

/* Report an error about args[i] of st. When the statement runs over a line
 * break before args[i], the real problem is a missing ';': say that instead. */
void conf_error_arg(struct conf_ctx *ctx, const struct conf_stmt *st, size_t i, const char *fmt,
		    ...) __attribute__((format(printf, 4, 5)));

/* Value helpers: parse args[i], or report on it (with the missing-';'
 * rule of conf_error_arg) and return -1. Durations need a unit. */
int conf_arg_long(struct conf_ctx *ctx, const struct conf_stmt *st, size_t i, const char *what,
		  long min, long max, long *out);
int conf_arg_u32(struct conf_ctx *ctx, const struct conf_stmt *st, size_t i, const char *what,
		 long min, long max, uint32_t *out);
int conf_arg_duration(struct conf_ctx *ctx, const struct conf_stmt *st, size_t i, const char *what,
		      uint64_t min_ms, uint64_t max_ms, uint64_t *out);
/* A name: 1-63 letters, digits, '-', '_', '.'; copied to out. */
int conf_arg_name(struct conf_ctx *ctx, const struct conf_stmt *st, size_t i, const char *what,
		  char *out);
/* An interface name: 1-15 characters, no '/' or blank; copied to out. */
int conf_arg_ifname(struct conf_ctx *ctx, const struct conf_stmt *st, size_t i, char *out);
/* Is the statement's argument count within its keyword's range? Reports
 * it when not. */
bool conf_check_arity(struct conf_ctx *ctx, const struct conf_stmt *st, size_t min_args,
		      size_t max_args, const char *usage);

/* Make room for one more element in arr, which holds n of size bytes and
 * is grown only through here (its capacity is the next power of two, so
 * reading N elements costs O(N) copies, not O(N^2)). Returns the array,
 * perhaps moved, or NULL after reporting "out of memory" at line:col (arr
 * is then unchanged and still owned by the caller). */
void *conf_grow(struct conf_ctx *ctx, uint32_t line, uint32_t col, void *arr, size_t n,
		size_t size);
/* The same, reported at the keyword of st. */
static inline void *conf_array_grow(struct conf_ctx *ctx, const struct conf_stmt *st, void *arr,
				    size_t n, size_t size)
{
	return conf_grow(ctx, st->args[0].line, st->args[0].col, arr, n, size);
}

/* A keyword table: handlers report their own errors and return 0 or -1. */
typedef int (*conf_handler_fn)(struct conf_ctx *ctx, const struct conf_stmt *st, void *obj);

struct conf_keyword {
	const char *name;
	size_t min_args, max_args; /* counting the keyword itself */
	bool block;
	conf_handler_fn fn;
	const char *usage;
};

/* Dispatch each statement of block through table (NULL-terminated) on
 * obj, reporting unknown keywords, block mismatches and argument counts
 * with block_name ("pool 'web'", "cluster block"). */
void conf_run_block(struct conf_ctx *ctx, const struct conf_stmt *block,
		    const struct conf_keyword *table, const char *block_name, void *obj);

/* Build the statement tree of text. Returns the root (its kids are the
 * top-level statements) or NULL after reporting errors. */
struct conf_stmt *conf_lex(struct conf_ctx *ctx, const char *text, size_t len);
void conf_stmt_free(struct conf_stmt *st);

/* ---- health checks (conf_check.c) ---- */

/* Pool keywords; obj is the struct conf_pool being parsed. Each reports
 * its own errors and returns 0 or -1. */
int conf_check_kw_check(struct conf_ctx *ctx, const struct conf_stmt *st, void *obj);
int conf_check_kw_agent(struct conf_ctx *ctx, const struct conf_stmt *st, void *obj);
int conf_check_kw_observe(struct conf_ctx *ctx, const struct conf_stmt *st, void *obj);
int conf_check_kw_slowstart(struct conf_ctx *ctx, const struct conf_stmt *st, void *obj);
int conf_check_kw_on_down(struct conf_ctx *ctx, const struct conf_stmt *st, void *obj);

/* The keywords of the check, vrrp and announce blocks, as conf_keywords(). */
void conf_check_keywords(conf_keyword_fn fn, void *arg);
void conf_vrrp_keywords(conf_keyword_fn fn, void *arg);
void conf_announce_keywords(conf_keyword_fn fn, void *arg);

/* Defaults of a new pool, and the cross-checks once its block is read. */
void conf_check_pool_init(struct conf_pool *p);
void conf_check_pool_done(struct conf_ctx *ctx, struct conf_pool *p);
/* conf_guard.c: the listen keywords allow, deny, default and limit; obj
 * points to the listen handlers' object, whose first member is the struct
 * conf_listen being parsed. Defaults of a new listener, the checks once its
 * block is read, and freeing. */
int conf_guard_kw_acl(struct conf_ctx *ctx, const struct conf_stmt *st, void *obj);
int conf_guard_kw_default(struct conf_ctx *ctx, const struct conf_stmt *st, void *obj);
int conf_guard_kw_limit(struct conf_ctx *ctx, const struct conf_stmt *st, void *obj);
void conf_guard_listen_init(struct conf_listen *l);
void conf_guard_listen_done(struct conf_ctx *ctx, struct conf_listen *l);
void conf_guard_free(struct conf_listen *l);
/* conf_route.c: `route ...;` in a listen block (appended to l->routes);
 * the checks that need the pools and the whole listener (pool names, the
 * default client-hello timeout, warnings for routes that never match), run
 * after every block; freeing. */
int conf_route_kw(struct conf_ctx *ctx, const struct conf_stmt *st, struct conf_listen *l);
void conf_route_validate(struct conf_ctx *ctx, struct conf *c);

/* conf_log.c: the global `log` keyword; obj is the struct conf_global. */
int conf_log_kw(struct conf_ctx *ctx, const struct conf_stmt *st, void *obj);

/* conf_vrrp.c: the `vrrp NAME { ... }` block appended to c->vrrps, the checks
 * that need the whole file (run after every block), and freeing. */
int conf_vrrp_block(struct conf_ctx *ctx, const struct conf_stmt *st, struct conf *c);
void conf_vrrp_validate(struct conf_ctx *ctx, struct conf *c);
void conf_vrrp_free(struct conf *c);
/* conf_announce.c: the `announce NAME { ... }` block, its cross-checks
 * (pools, listeners, VRRP addresses; run after conf_vrrp_validate) and
 * freeing. */
int conf_announce_block(struct conf_ctx *ctx, const struct conf_stmt *st, struct conf *c);
void conf_announce_validate(struct conf_ctx *ctx, struct conf *c);
void conf_announce_free(struct conf *c);

/* conf_cluster.c: the `cluster { ... }` block into c->cluster, and its
 * keywords for conf_keywords(). */
int conf_cluster_block(struct conf_ctx *ctx, const struct conf_stmt *st, struct conf *c);
void conf_cluster_keywords(conf_keyword_fn fn, void *arg);
/* conf_resolvers.c: the `resolvers NAME { ... }` block, the pool keywords
 * `resolvers NAME;` and `servers srv|dns ...;`, the checks that need the
 * whole file (a pool's resolvers exist; the implicit "default" block is
 * added), and freeing. */
int conf_resolvers_block(struct conf_ctx *ctx, const struct conf_stmt *st, struct conf *c);
int conf_resolvers_kw_pool(struct conf_ctx *ctx, const struct conf_stmt *st, void *obj);
int conf_resolvers_kw_servers(struct conf_ctx *ctx, const struct conf_stmt *st, void *obj);
void conf_resolvers_pool_done(struct conf_ctx *ctx, struct conf_pool *p);
void conf_resolvers_validate(struct conf_ctx *ctx, struct conf *c);
void conf_resolvers_free(struct conf *c);
void conf_resolvers_keywords(conf_keyword_fn fn, void *arg);

#endif
