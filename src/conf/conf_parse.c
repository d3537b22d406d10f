/* conf_parse: keyword tables for each block and their handlers, turning the
 * statement tree from conf_lex into a struct conf; then cross-checks (pool
 * references, duplicate names and addresses). Collects several errors before
 * giving up; unknown keywords and out-of-range values are always errors. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf-int.h"
#include "sluice/conf.h"
#include "sluice/hmap.h"
#include "sluice/log.h"
#include "sluice/srvopt.h"
#include "sluice/util.h"

#define CONF_MAX_FILE (16 * 1024 * 1024)
#define CONF_SERVER_MAX_ARGS 20 /* server NAME ADDRESS and 17 words of options */
#define CONF_MAX_DURATION_MS (24ull * 3600 * 1000)

/* Parser state for the listen blocks: pool names are resolved at the end. */
struct listen_ref {
	const struct conf_tok *pool_tok;
	bool had_errors; /* skip "no bind" after a bind line that failed */
};

struct parse_state {
	struct conf_ctx *ctx;
	struct conf *conf;
	struct listen_ref *refs; /* one per listener */
	bool seen_global;
};

static const char *const balance_names[] = {
    [CONF_BALANCE_ROUNDROBIN] = "roundrobin", [CONF_BALANCE_LEASTCONN] = "leastconn",
    [CONF_BALANCE_RANDOM] = "random",	      [CONF_BALANCE_MAGLEV] = "maglev",
    [CONF_BALANCE_FIRST] = "first",
};

const char *conf_balance_name(enum conf_balance b)
{
	return balance_names[b];
}

/* ---- value helpers: each reports its own error on args[i] ---- */

int conf_arg_long(struct conf_ctx *ctx, const struct conf_stmt *st, size_t i, const char *what,
		  long min, long max, long *out)
{
	if (util_parse_long(st->args[i].text, min, max, out) == 0)
		return 0;
	conf_error_arg(ctx, st, i, "%s '%s' out of range (expected an integer %ld-%ld)", what,
		       st->args[i].text, min, max);
	return -1;
}

int conf_arg_u32(struct conf_ctx *ctx, const struct conf_stmt *st, size_t i, const char *what,
		 long min, long max, uint32_t *out)
{
	long v;

	if (conf_arg_long(ctx, st, i, what, min, max, &v) < 0)
		return -1;
	*out = (uint32_t)v;
	return 0;
}

/* "24h", "1h", "10s", "100ms": the largest unit that divides ms. */
static const char *fmt_ms(uint64_t ms, char *buf, size_t len)
{
	if (ms != 0 && ms % 3600000 == 0)
		snprintf(buf, len, "%lluh", (unsigned long long)(ms / 3600000));
	else if (ms != 0 && ms % 60000 == 0)
		snprintf(buf, len, "%llum", (unsigned long long)(ms / 60000));
	else if (ms != 0 && ms % 1000 == 0)
		snprintf(buf, len, "%llus", (unsigned long long)(ms / 1000));
	else
		snprintf(buf, len, "%llums", (unsigned long long)ms);
	return buf;
}

int conf_arg_duration(struct conf_ctx *ctx, const struct conf_stmt *st, size_t i, const char *what,
		      uint64_t min_ms, uint64_t max_ms, uint64_t *out)
{
	char lo[24], hi[24];

	if (util_parse_duration_ms(st->args[i].text, max_ms, out) == 0 && *out >= min_ms)
		return 0;
	conf_error_arg(ctx, st, i,
		       "bad %s '%s' (expected a duration with a unit such as 500ms, 2s, 5m or 1h, "
		       "from %s to %s)",
		       what, st->args[i].text, fmt_ms(min_ms, lo, sizeof(lo)),
		       fmt_ms(max_ms, hi, sizeof(hi)));
	return -1;
}

int conf_arg_name(struct conf_ctx *ctx, const struct conf_stmt *st, size_t i, const char *what,
		  char *out)
{
	char err[160];

	/* the rule server add and the state file apply too */
	if (util_name_check(what, st->args[i].text, st->args[i].len, err, sizeof(err)) < 0) {
		conf_error_arg(ctx, st, i, "%s", err);
		return -1;
	}
	memcpy(out, st->args[i].text, st->args[i].len + 1);
	return 0;
}

bool conf_check_arity(struct conf_ctx *ctx, const struct conf_stmt *st, size_t min_args,
		      size_t max_args, const char *usage)
{
	if (st->nargs < min_args) {
		conf_error_arg(ctx, st, st->nargs - 1, "missing argument: %s", usage);
		return false;
	}
	if (st->nargs > max_args) {
		conf_error_arg(ctx, st, max_args, "too many arguments: %s", usage);
		return false;
	}
	return true;
}

/* Index name at position pos, or report no memory on st. */
static int index_add(struct conf_ctx *ctx, const struct conf_stmt *st, struct util_hmap *ix,
		     const char *name, size_t pos)
{
	if (util_hmap_add(ix, name, pos) == 0)
		return 0;
	conf_error_arg(ctx, st, 0, "out of memory");
	return -1;
}

/* ---- table walking ---- */

static void list_keywords(const struct conf_keyword *kw, char *buf, size_t len)
{
	size_t off = 0;

	buf[0] = '\0';
	for (size_t i = 0; kw[i].name != NULL; i++)
		util_bufprintf(buf, len, &off, "%s%s", i ? ", " : "", kw[i].name);
}

void conf_run_block(struct conf_ctx *ctx, const struct conf_stmt *block,
		    const struct conf_keyword *table, const char *block_name, void *obj)
{
	for (size_t i = 0; i < block->nkids; i++) {
		const struct conf_stmt *st = &block->kids[i];
		const struct conf_keyword *kw = NULL;
		size_t before;

		for (size_t k = 0; table[k].name != NULL; k++) {
			if (strcmp(table[k].name, st->args[0].text) == 0) {
				kw = &table[k];
				break;
			}
		}
		if (kw == NULL) {
			char names[512];

			list_keywords(table, names, sizeof(names));
			conf_error(ctx, st->args[0].line, st->args[0].col, st->args[0].text,
				   "unknown keyword '%s' in %s (expected one of: %s)",
				   st->args[0].text, block_name, names);
			continue;
		}
		if (st->has_block != kw->block) {
			conf_error(ctx, st->args[0].line, st->args[0].col, st->args[0].text,
				   kw->block ? "'%s' needs a { block }: %s"
					     : "'%s' takes no block (expected ';'): %s",
				   kw->name, kw->usage);
			continue;
		}
		if (!conf_check_arity(ctx, st, kw->min_args, kw->max_args, kw->usage))
			continue;
		before = ctx->errs->n;
		/* a handler that fails says why; should one not, the file must
		 * still not pass as valid */
		if (kw->fn(ctx, st, obj) < 0 && ctx->errs->n == before && !ctx->errs->truncated)
			conf_error_arg(ctx, st, 0, "'%s' failed (out of memory?)", kw->name);
	}
}

/* ---- global ---- */

static int kw_workers(struct conf_ctx *ctx, const struct conf_stmt *st, void *obj)
{
	struct conf_global *g = obj;

	if (strcmp(st->args[1].text, "auto") == 0) {
		g->workers = 0;
		return 0;
	}
	return conf_arg_u32(ctx, st, 1, "workers", 1, UTIL_MAX_WORKERS, &g->workers);
}

static int kw_gmaxconn(struct conf_ctx *ctx, const struct conf_stmt *st, void *obj)
{
	struct conf_global *g = obj;

	return conf_arg_u32(ctx, st, 1, "maxconn", 1, 10000000, &g->maxconn);
}

#define CONF_BUFMEM_MIN (64ull * 1024)
#define CONF_BUFMEM_MAX (1024ull * 1024 * 1024 * 1024)

static int kw_bufmem(struct conf_ctx *ctx, const struct conf_stmt *st, void *obj)
{
	struct conf_global *g = obj;

	if (util_parse_size(st->args[1].text, CONF_BUFMEM_MAX, &g->bufmem) == 0 &&
	    g->bufmem >= CONF_BUFMEM_MIN)
		return 0;
	conf_error_arg(ctx, st, 1,
		       "bad bufmem '%s' (expected a size with k or m, such as 512m, from 64k to "
		       "1048576m)",
		       st->args[1].text);
	return -1;
}

static int kw_grace(struct conf_ctx *ctx, const struct conf_stmt *st, void *obj)
{
	struct conf_global *g = obj;

	return conf_arg_duration(ctx, st, 1, "grace", 0, CONF_MAX_DURATION_MS, &g->grace_ms);
}

/* control PATH [mode OCTAL] [level admin|user] */
static int kw_control(struct conf_ctx *ctx, const struct conf_stmt *st, void *obj)
{
	struct conf_global *g = obj;
	struct conf_control c = {.mode = 0600, .level = CONF_CTL_ADMIN};
	struct conf_control *arr;
	size_t i;

	c.where.line = st->args[1].line;
	c.where.col = st->args[1].col;
	if (st->args[1].text[0] != '/' || st->args[1].len >= sizeof(c.path)) {
		conf_error_arg(ctx, st, 1,
			       "control socket path must be absolute and shorter than "
			       "%zu bytes",
			       sizeof(c.path));
		return -1;
	}
	memcpy(c.path, st->args[1].text, st->args[1].len + 1);
	for (i = 2; i < st->nargs; i += 2) {
		const char *opt = st->args[i].text;

		if (i + 1 >= st->nargs || (strcmp(opt, "mode") != 0 && strcmp(opt, "level") != 0)) {
			conf_error_arg(ctx, st, i,
				       "unknown control option '%s' (expected mode OCTAL "
				       "or level admin|user)",
				       opt);
			return -1;
		}
		if (strcmp(opt, "mode") == 0) {
			char *end;
			unsigned long m = strtoul(st->args[i + 1].text, &end, 8);

			if (*end != '\0' || m > 0777 || st->args[i + 1].text[0] == '\0') {
				conf_error_arg(
				    ctx, st, i + 1,
				    "bad mode '%s' (expected octal permissions such as 0600)",
				    st->args[i + 1].text);
				return -1;
			}
			c.mode = (uint32_t)m;
		} else if (strcmp(st->args[i + 1].text, "admin") == 0) {
			c.level = CONF_CTL_ADMIN;
		} else if (strcmp(st->args[i + 1].text, "user") == 0) {
			c.level = CONF_CTL_USER;
		} else {
			conf_error_arg(ctx, st, i + 1,
				       "unknown level '%s' (expected admin or user)",
				       st->args[i + 1].text);
			return -1;
		}
	}
	for (i = 0; i < g->ncontrols; i++) {
		if (strcmp(g->controls[i].path, c.path) == 0) {
			conf_error_arg(ctx, st, 1,
				       "duplicate control socket '%s' (first at line %u)", c.path,
				       g->controls[i].where.line);
			return -1;
		}
	}
	arr = conf_array_grow(ctx, st, g->controls, g->ncontrols, sizeof(*arr));
	if (arr == NULL)
		return -1;
	g->controls = arr;
	arr[g->ncontrols++] = c;
	return 0;
}

static int kw_metrics(struct conf_ctx *ctx, const struct conf_stmt *st, void *obj)
{
	struct conf_global *g = obj;
	char err[160];

	if (util_addr_parse(st->args[1].text, false, &g->metrics, err, sizeof(err)) < 0) {
		conf_error_arg(ctx, st, 1, "%s", err);
		return -1;
	}
	return 0;
}

static int kw_state_file(struct conf_ctx *ctx, const struct conf_stmt *st, void *obj)
{
	struct conf_global *g = obj;

	if (st->args[1].text[0] != '/' || st->args[1].len >= sizeof(g->state_file)) {
		conf_error_arg(ctx, st, 1,
			       "state-file must be an absolute path shorter than %zu "
			       "bytes",
			       sizeof(g->state_file));
		return -1;
	}
	memcpy(g->state_file, st->args[1].text, st->args[1].len + 1);
	return 0;
}

static int kw_user_group(struct conf_ctx *ctx, const struct conf_stmt *st, void *obj)
{
	struct conf_global *g = obj;
	bool user = strcmp(st->args[0].text, "user") == 0;
	char *dst = user ? g->user : g->group;
	const char *v = st->args[1].text;

	if (st->args[1].len == 0 || st->args[1].len >= sizeof(g->user) ||
	    strspn(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") !=
		st->args[1].len) {
		conf_error_arg(ctx, st, 1, "bad %s name '%s' (expected a system %s name)",
			       st->args[0].text, v, st->args[0].text);
		return -1;
	}
	memcpy(dst, v, st->args[1].len + 1);
	return 0;
}

#define CONF_INFLIGHT_MIN (64ull * 1024)
#define CONF_INFLIGHT_MAX (1024ull * 1024 * 1024)

/* relay user|kernel|auto [inflight SIZE]; in global and listen. */
static int parse_relay(struct conf_ctx *ctx, const struct conf_stmt *st, enum conf_relay *mode,
		       uint64_t *inflight)
{
	static const char *const names[] = {
	    [CONF_RELAY_USER] = "user", [CONF_RELAY_KERNEL] = "kernel", [CONF_RELAY_AUTO] = "auto"};
	enum conf_relay m = CONF_RELAY_UNSET;

	for (size_t i = CONF_RELAY_USER; i < UTIL_ARRAY_LEN(names); i++)
		if (strcmp(st->args[1].text, names[i]) == 0)
			m = (enum conf_relay)i;
	if (m == CONF_RELAY_UNSET) {
		conf_error_arg(ctx, st, 1, "unknown relay '%s' (expected user, kernel or auto)",
			       st->args[1].text);
		return -1;
	}
	if (st->nargs == 3 || (st->nargs == 4 && strcmp(st->args[2].text, "inflight") != 0)) {
		conf_error_arg(ctx, st, 2, "unexpected '%s' (expected inflight SIZE)",
			       st->args[2].text);
		return -1;
	}
	if (st->nargs == 4) {
		if (m == CONF_RELAY_USER) {
			conf_error_arg(
			    ctx, st, 2,
			    "inflight applies to the kernel relay (relay kernel or auto)");
			return -1;
		}
		if (util_parse_size(st->args[3].text, CONF_INFLIGHT_MAX, inflight) < 0 ||
		    *inflight < CONF_INFLIGHT_MIN) {
			conf_error_arg(
			    ctx, st, 3,
			    "bad inflight '%s' (expected a size with k or m, such as 4m, "
			    "from 64k to 1024m)",
			    st->args[3].text);
			return -1;
		}
	}
	*mode = m;
	return 0;
}

static int kw_grelay(struct conf_ctx *ctx, const struct conf_stmt *st, void *obj)
{
	struct conf_global *g = obj;

	return parse_relay(ctx, st, &g->relay, &g->relay_inflight);
}

static const struct conf_keyword global_kw[] = {
    {"workers", 2, 2, false, kw_workers, "workers auto|N;"},
    {"maxconn", 2, 2, false, kw_gmaxconn, "maxconn N;"},
    {"log", 2, 9, false, conf_log_kw,
     "log stderr|stdout [LEVEL]; log syslog [socket PATH] [facility F] [tag T] [LEVEL]; or "
     "log udp ADDRESS:PORT [facility F] [tag T] [LEVEL];"},
    {"grace", 2, 2, false, kw_grace, "grace DURATION;"},
    {"control", 2, 6, false, kw_control, "control PATH [mode 0600] [level admin|user];"},
    {"metrics", 2, 2, false, kw_metrics, "metrics ADDRESS:PORT;"},
    {"state-file", 2, 2, false, kw_state_file, "state-file PATH;"},
    {"user", 2, 2, false, kw_user_group, "user NAME;"},
    {"group", 2, 2, false, kw_user_group, "group NAME;"},
    {"bufmem", 2, 2, false, kw_bufmem, "bufmem SIZE;"},
    {"relay", 2, 4, false, kw_grelay, "relay user|kernel|auto [inflight SIZE];"},
    {NULL, 0, 0, false, NULL, NULL},
};

/* ---- pool ---- */

static int kw_balance(struct conf_ctx *ctx, const struct conf_stmt *st, void *obj)
{
	struct conf_pool *p = obj;

	for (size_t i = 0; i < UTIL_ARRAY_LEN(balance_names); i++) {
		if (strcmp(st->args[1].text, balance_names[i]) == 0) {
			p->balance = (enum conf_balance)i;
			return 0;
		}
	}
	conf_error_arg(ctx, st, 1,
		       "unknown balance algorithm '%s' (expected roundrobin, leastconn, random, "
		       "maglev or first)",
		       st->args[1].text);
	return -1;
}

/* server NAME ADDRESS [OPTION ...]: the options are srvopt.h's table, which
 * `server add` and the state file read too. */
static int kw_server(struct conf_ctx *ctx, const struct conf_stmt *st, void *obj)
{
	struct conf_pool *p = obj;
	struct conf_server s = {0};
	const struct conf_server *first;
	struct conf_server *arr;
	const char *words[CONF_SERVER_MAX_ARGS];
	char err[400];
	size_t i;

	s.where.line = st->args[1].line;
	s.where.col = st->args[1].col;
	if (conf_arg_name(ctx, st, 1, "server", s.name) < 0)
		return -1;
	s.addr_where.line = st->args[2].line;
	s.addr_where.col = st->args[2].col;
	/* a host name is resolved by the caller (core) after parsing */
	if (util_addr_parse_server(st->args[2].text, &s.addr, s.host, sizeof(s.host), &s.port, err,
				   sizeof(err)) < 0) {
		conf_error_arg(ctx, st, 2, "%s", err);
		return -1;
	}
	util_srvopts_init(&s.opts);
	for (i = 0; i < st->nargs; i++)
		words[i] = st->args[i].text;
	for (i = 3; i < st->nargs; i++) {
		size_t at = i;

		if (util_srvopt_parse(words, st->nargs, &i, &s.opts, NULL, err, sizeof(err)) < 0) {
			conf_error_arg(ctx, st, i, "%s", err);
			return -1;
		}
		for (; at <= i; at++) {
			if (strlen(words[at]) != st->args[at].len) {
				conf_error_arg(ctx, st, at, "NUL byte in '%s'", words[at]);
				return -1;
			}
		}
	}
	first = conf_find_server(p, s.name);
	if (first != NULL) {
		conf_error_arg(ctx, st, 1,
			       "duplicate server '%s' in pool '%s' (first "
			       "defined at line %u)",
			       s.name, p->name, first->where.line);
		return -1;
	}
	arr = conf_array_grow(ctx, st, p->servers, p->nservers, sizeof(*arr));
	if (arr == NULL)
		return -1;
	p->servers = arr;
	if (index_add(ctx, st, &p->server_index, s.name, p->nservers) < 0)
		return -1;
	p->servers[p->nservers++] = s;
	return 0;
}

static int kw_send_proxy(struct conf_ctx *ctx, const struct conf_stmt *st, void *obj)
{
	struct conf_pool *p = obj;
	char err[160];

	if (util_proxy_proto_parse(st->args[1].text, &p->send_proxy, err, sizeof(err)) < 0) {
		conf_error_arg(ctx, st, 1, "%s", err);
		return -1;
	}
	return 0;
}

static int kw_queue(struct conf_ctx *ctx, const struct conf_stmt *st, void *obj)
{
	struct conf_pool *p = obj;

	return conf_arg_u32(ctx, st, 1, "queue", 0, 1000000, &p->queue_max);
}

static int kw_pool_timeout(struct conf_ctx *ctx, const struct conf_stmt *st, void *obj)
{
	struct conf_pool *p = obj;

	if (strcmp(st->args[1].text, "queue") != 0) {
		conf_error_arg(ctx, st, 1, "unknown pool timeout '%s' (expected queue)",
			       st->args[1].text);
		return -1;
	}
	return conf_arg_duration(ctx, st, 2, "timeout queue", 1, CONF_MAX_DURATION_MS,
				 &p->timeout_queue_ms);
}

/* maglev-table N: a prime, so that every Maglev permutation (offset + i x
 * skip, skip in 1..N-1) visits every slot. A non-prime is an error rather
 * than rounded up: the size decides which backend each client gets, and
 * nodes that must agree should run the number their file says. */
static int kw_maglev_table(struct conf_ctx *ctx, const struct conf_stmt *st, void *obj)
{
	struct conf_pool *p = obj;
	uint32_t m;

	if (conf_arg_u32(ctx, st, 1, "maglev-table", 2, CONF_MAGLEV_TABLE_MAX, &m) < 0)
		return -1;
	if (!util_is_prime(m)) {
		conf_error_arg(ctx, st, 1,
			       "maglev-table %u is not a prime (expected a prime such as %u)", m,
			       util_prime_at_least(m));
		return -1;
	}
	p->maglev_table = m;
	p->maglev_table_set = true;
	p->maglev_where.line = st->args[1].line;
	p->maglev_where.col = st->args[1].col;
	return 0;
}

/* What a pool's statements decide together, once all are read. */
static void pool_done(struct conf_ctx *ctx, const struct conf_pool *p)
{
	char near[16];
	uint32_t want;

	snprintf(near, sizeof(near), "%u", p->maglev_table);
	if (p->maglev_table_set && p->balance != CONF_BALANCE_MAGLEV) {
		conf_error(ctx, p->maglev_where.line, p->maglev_where.col, near,
			   "maglev-table applies to balance maglev only (pool '%s' balances %s)",
			   p->name, conf_balance_name(p->balance));
		return;
	}
	if (p->balance != CONF_BALANCE_MAGLEV || p->nservers <= p->maglev_table)
		return;
	/* Maglev's paper keeps shares within about 1% from 100 slots a server */
	want = util_prime_at_least(
	    (uint32_t)UTIL_MIN((uint64_t)p->nservers * 100, CONF_MAGLEV_TABLE_MAX));
	if (p->maglev_table_set)
		conf_error(ctx, p->maglev_where.line, p->maglev_where.col, near,
			   "maglev-table %u is smaller than the %zu servers of pool '%s' (expected "
			   "a prime of at least %zu; with 100 slots a server, such as %u, shares "
			   "stay within about 1%%)",
			   p->maglev_table, p->nservers, p->name, p->nservers, want);
	else
		conf_error(ctx, p->where.line, p->where.col, p->name,
			   "pool '%s' has %zu servers, more than the %u slots of its Maglev table "
			   "(expected 'maglev-table N;' with a prime such as %u)",
			   p->name, p->nservers, p->maglev_table, want);
}

static const struct conf_keyword pool_kw[] = {
    {"balance", 2, 2, false, kw_balance, "balance roundrobin|leastconn|random|maglev|first;"},
    {"server", 3, CONF_SERVER_MAX_ARGS, false, kw_server,
     "server NAME ADDRESS:PORT [weight N] [maxconn N] [backup] [send-proxy v1|v2|none] "
     "[check on|off|port N] [agent on|off|port N];"},
    {"send-proxy", 2, 2, false, kw_send_proxy, "send-proxy v1|v2|none;"},
    {"queue", 2, 2, false, kw_queue, "queue N;"},
    {"timeout", 3, 3, false, kw_pool_timeout, "timeout queue DURATION;"},
    {"maglev-table", 2, 2, false, kw_maglev_table, "maglev-table PRIME;"},
    /* health checks: conf_check.c */
    {"check", 2, 2, true, conf_check_kw_check, "check tcp|expect|http|tls|https { ... }"},
    {"agent", 3, 7, false, conf_check_kw_agent,
     "agent port N [interval DURATION] [timeout DURATION];"},
    {"observe-errors", 2, 2, false, conf_check_kw_observe, "observe-errors N;"},
    {"slowstart", 2, 2, false, conf_check_kw_slowstart, "slowstart DURATION;"},
    {"on-down", 2, 2, false, conf_check_kw_on_down, "on-down keep|shutdown;"},
    /* DNS: conf_resolvers.c */
    {"resolvers", 2, 2, false, conf_resolvers_kw_pool, "resolvers NAME;"},
    {"servers", 3, CONF_SERVER_MAX_ARGS, false, conf_resolvers_kw_servers,
     "servers srv NAME [limit N] [weight-from-srv] [OPTION ...]; or servers dns NAME port N "
     "[limit N] [OPTION ...];"},
    {NULL, 0, 0, false, NULL, NULL},
};

/* ---- listen ---- */

struct listen_obj {
	struct conf_listen *l; /* first: conf_guard.c's handlers read only this */
	struct listen_ref *ref;
};

static int kw_bind(struct conf_ctx *ctx, const struct conf_stmt *st, void *obj)
{
	struct listen_obj *lo = obj;
	struct util_addr a, *arr;
	char err[160];

	if (util_addr_parse(st->args[1].text, false, &a, err, sizeof(err)) < 0) {
		conf_error_arg(ctx, st, 1, "%s", err);
		return -1;
	}
	arr = conf_array_grow(ctx, st, lo->l->binds, lo->l->nbinds, sizeof(*arr));
	if (arr == NULL)
		return -1;
	lo->l->binds = arr;
	arr[lo->l->nbinds++] = a;
	return 0;
}

static int kw_listen_pool(struct conf_ctx *ctx, const struct conf_stmt *st, void *obj)
{
	struct listen_obj *lo = obj;

	if (lo->ref->pool_tok != NULL) {
		conf_error_arg(ctx, st, 0, "a listener uses one pool (already set at line %u)",
			       lo->ref->pool_tok->line);
		return -1;
	}
	lo->ref->pool_tok = &st->args[1];
	return 0;
}

static int kw_listen_maxconn(struct conf_ctx *ctx, const struct conf_stmt *st, void *obj)
{
	struct listen_obj *lo = obj;

	return conf_arg_u32(ctx, st, 1, "maxconn", 1, 10000000, &lo->l->maxconn);
}

static int kw_listen_timeout(struct conf_ctx *ctx, const struct conf_stmt *st, void *obj)
{
	struct listen_obj *lo = obj;
	const char *which = st->args[1].text;

	if (strcmp(which, "connect") == 0)
		return conf_arg_duration(ctx, st, 2, "timeout connect", 1, CONF_MAX_DURATION_MS,
					 &lo->l->timeout_connect_ms);
	if (strcmp(which, "idle") == 0)
		return conf_arg_duration(ctx, st, 2, "timeout idle", 1, CONF_MAX_DURATION_MS,
					 &lo->l->timeout_idle_ms);
	if (strcmp(which, "half-closed") == 0)
		return conf_arg_duration(ctx, st, 2, "timeout half-closed", 1, CONF_MAX_DURATION_MS,
					 &lo->l->timeout_half_closed_ms);
	if (strcmp(which, "proxy-header") == 0)
		return conf_arg_duration(ctx, st, 2, "timeout proxy-header", 1,
					 CONF_MAX_DURATION_MS, &lo->l->timeout_proxy_header_ms);
	if (strcmp(which, "client-hello") == 0) /* TLS routes: conf_route.c */
		return conf_arg_duration(ctx, st, 2, "timeout client-hello", 1,
					 CONF_MAX_DURATION_MS, &lo->l->timeout_client_hello_ms);
	conf_error_arg(ctx, st, 1,
		       "unknown listen timeout '%s' (expected connect, idle, half-closed, "
		       "proxy-header or client-hello)",
		       which);
	return -1;
}

static int kw_retries(struct conf_ctx *ctx, const struct conf_stmt *st, void *obj)
{
	struct listen_obj *lo = obj;

	return conf_arg_u32(ctx, st, 1, "retries", 0, 100, &lo->l->retries);
}

static int kw_accept_proxy(struct conf_ctx *ctx, const struct conf_stmt *st, void *obj)
{
	struct listen_obj *lo = obj;

	(void)ctx;
	(void)st;
	lo->l->accept_proxy = true;
	return 0;
}

static int kw_route(struct conf_ctx *ctx, const struct conf_stmt *st, void *obj)
{
	return conf_route_kw(ctx, st, ((struct listen_obj *)obj)->l);
}

static int kw_lrelay(struct conf_ctx *ctx, const struct conf_stmt *st, void *obj)
{
	struct listen_obj *lo = obj;

	lo->l->relay_where.line = st->args[0].line;
	lo->l->relay_where.col = st->args[0].col;
	return parse_relay(ctx, st, &lo->l->relay, &lo->l->relay_inflight);
}

static const struct conf_keyword listen_kw[] = {
    {"bind", 2, 2, false, kw_bind, "bind ADDRESS:PORT;"},
    {"pool", 2, 2, false, kw_listen_pool, "pool NAME;"},
    {"maxconn", 2, 2, false, kw_listen_maxconn, "maxconn N;"},
    {"timeout", 3, 3, false, kw_listen_timeout,
     "timeout connect|idle|half-closed|proxy-header|client-hello DURATION;"},
    {"retries", 2, 2, false, kw_retries, "retries N;"},
    {"accept-proxy", 1, 1, false, kw_accept_proxy, "accept-proxy;"},
    /* source ACLs and per-source limits: conf_guard.c */
    {"allow", 2, 3, false, conf_guard_kw_acl, "allow CIDR; or allow file PATH;"},
    {"deny", 2, 3, false, conf_guard_kw_acl, "deny CIDR; or deny file PATH;"},
    {"default", 2, 2, false, conf_guard_kw_default, "default allow|deny;"},
    {"limit", 3, 7, false, conf_guard_kw_limit,
     "limit per-source conns N; limit per-source rate N/s [burst M]; "
     "limit per-source group v4 /N [v6 /M]; or limit table N entries;"},
    /* TLS routes: conf_route.c */
    {"route", 4, 7, false, kw_route,
     "route sni NAME [alpn PROTO] pool POOL; route alpn PROTO pool POOL; "
     "route no-sni|not-tls pool POOL;"},
    {"relay", 2, 4, false, kw_lrelay, "relay user|kernel|auto [inflight SIZE];"},
    {NULL, 0, 0, false, NULL, NULL},
};

/* ---- top level ---- */

static int top_global(struct conf_ctx *ctx, const struct conf_stmt *st, void *obj)
{
	struct parse_state *ps = obj;

	if (ps->seen_global) {
		conf_error_arg(ctx, st, 0, "duplicate global block");
		return -1;
	}
	ps->seen_global = true;
	conf_run_block(ctx, st, global_kw, "global block", &ps->conf->global);
	return 0;
}

static int top_pool(struct conf_ctx *ctx, const struct conf_stmt *st, void *obj)
{
	struct parse_state *ps = obj;
	struct conf *c = ps->conf;
	const struct conf_pool *first;
	struct conf_pool *arr, *p;
	char name[CONF_NAME_MAX];
	char where[CONF_NAME_MAX + 16];

	if (conf_arg_name(ctx, st, 1, "pool", name) < 0)
		return -1;
	first = conf_find_pool(c, name);
	if (first != NULL) {
		conf_error_arg(ctx, st, 1, "duplicate pool '%s' (first defined at line %u)", name,
			       first->where.line);
		return -1;
	}
	arr = conf_array_grow(ctx, st, c->pools, c->npools, sizeof(*arr));
	if (arr == NULL)
		return -1;
	c->pools = arr;
	if (index_add(ctx, st, &c->pool_index, name, c->npools) < 0)
		return -1;
	p = &arr[c->npools++];
	memset(p, 0, sizeof(*p));
	memcpy(p->name, name, sizeof(name));
	p->balance = CONF_BALANCE_ROUNDROBIN;
	p->send_proxy = UTIL_PROXY_NONE;
	p->queue_max = 1000;
	p->timeout_queue_ms = 5000;
	p->maglev_table = CONF_MAGLEV_TABLE_DEFAULT;
	p->where.line = st->args[1].line;
	p->where.col = st->args[1].col;
	snprintf(where, sizeof(where), "pool '%s'", name);
	conf_check_pool_init(p);
	conf_run_block(ctx, st, pool_kw, where, p);
	conf_check_pool_done(ctx, p);
	pool_done(ctx, p);
	conf_resolvers_pool_done(ctx, p);
	return 0;
}

static int top_listen(struct conf_ctx *ctx, const struct conf_stmt *st, void *obj)
{
	struct parse_state *ps = obj;
	struct conf *c = ps->conf;
	const struct conf_listen *first;
	struct conf_listen *arr, *l;
	struct listen_ref *refs;
	struct listen_obj lo;
	char name[CONF_NAME_MAX];
	char where[CONF_NAME_MAX + 16];

	if (conf_arg_name(ctx, st, 1, "listen", name) < 0)
		return -1;
	first = conf_find_listen(c, name);
	if (first != NULL) {
		conf_error_arg(ctx, st, 1, "duplicate listen '%s' (first defined at line %u)", name,
			       first->where.line);
		return -1;
	}
	arr = conf_array_grow(ctx, st, c->listens, c->nlistens, sizeof(*arr));
	if (arr == NULL)
		return -1;
	c->listens = arr;
	/* refs grow with listens, so they have the same capacity */
	refs = conf_array_grow(ctx, st, ps->refs, c->nlistens, sizeof(*refs));
	if (refs == NULL)
		return -1;
	ps->refs = refs;
	if (index_add(ctx, st, &c->listen_index, name, c->nlistens) < 0)
		return -1;
	l = &arr[c->nlistens];
	memset(l, 0, sizeof(*l));
	memset(&refs[c->nlistens], 0, sizeof(*refs));
	c->nlistens++;
	memcpy(l->name, name, sizeof(name));
	l->timeout_connect_ms = 5000;
	l->timeout_idle_ms = 300000;
	l->timeout_proxy_header_ms = 2000;
	l->retries = 2;
	l->where.line = st->args[1].line;
	l->where.col = st->args[1].col;
	conf_guard_listen_init(l);
	snprintf(where, sizeof(where), "listen '%s'", name);
	lo.l = l;
	lo.ref = &refs[c->nlistens - 1];
	size_t before = ctx->errs->n;

	conf_run_block(ctx, st, listen_kw, where, &lo);
	conf_guard_listen_done(ctx, l);
	lo.ref->had_errors = ctx->errs->n != before || ctx->errs->truncated;
	if (l->timeout_half_closed_ms == 0)
		l->timeout_half_closed_ms = l->timeout_idle_ms;
	return 0;
}

static int top_vrrp(struct conf_ctx *ctx, const struct conf_stmt *st, void *obj)
{
	return conf_vrrp_block(ctx, st, ((struct parse_state *)obj)->conf);
}

static int top_cluster(struct conf_ctx *ctx, const struct conf_stmt *st, void *obj)
{
	return conf_cluster_block(ctx, st, ((struct parse_state *)obj)->conf);
}

static int top_announce(struct conf_ctx *ctx, const struct conf_stmt *st, void *obj)
{
	return conf_announce_block(ctx, st, ((struct parse_state *)obj)->conf);
}

static int top_resolvers(struct conf_ctx *ctx, const struct conf_stmt *st, void *obj)
{
	return conf_resolvers_block(ctx, st, ((struct parse_state *)obj)->conf);
}

static const struct conf_keyword top_kw[] = {
    {"global", 1, 1, true, top_global, "global { ... }"},
    {"pool", 2, 2, true, top_pool, "pool NAME { ... }"},
    {"listen", 2, 2, true, top_listen, "listen NAME { ... }"},
    {"vrrp", 2, 2, true, top_vrrp, "vrrp NAME { ... }"},
    {"cluster", 1, 1, true, top_cluster, "cluster { ... }"},
    {"announce", 2, 2, true, top_announce, "announce NAME { ... }"},
    {"resolvers", 2, 2, true, top_resolvers, "resolvers NAME { ... }"},
    {NULL, 0, 0, false, NULL, NULL},
};

static void walk(const struct conf_keyword *t, const char *block, conf_keyword_fn fn, void *arg)
{
	for (size_t i = 0; t[i].name != NULL; i++)
		fn(arg, block, t[i].name, t[i].usage, t[i].block);
}

/* A new keyword table is listed here too: the manual page test compares
 * this walk with the tables in the source. */
void conf_keywords(conf_keyword_fn fn, void *arg)
{
	walk(top_kw, "top", fn, arg);
	walk(global_kw, "global", fn, arg);
	walk(pool_kw, "pool", fn, arg);
	conf_check_keywords(fn, arg);
	walk(listen_kw, "listen", fn, arg);
	conf_vrrp_keywords(fn, arg);
	conf_cluster_keywords(fn, arg);
	conf_announce_keywords(fn, arg);
	conf_resolvers_keywords(fn, arg);
}

/* Resolve pool names and check what spans blocks. */
static void validate(struct parse_state *ps)
{
	struct conf_ctx *ctx = ps->ctx;
	struct conf *c = ps->conf;

	if (c->global.relay == CONF_RELAY_UNSET)
		c->global.relay = CONF_RELAY_USER;
	if (c->global.relay_inflight == 0)
		c->global.relay_inflight = CONF_RELAY_INFLIGHT;
	for (size_t i = 0; i < c->nlistens; i++) {
		struct conf_listen *l = &c->listens[i];
		const struct conf_tok *t = ps->refs[i].pool_tok;
		const struct conf_pool *p;

		/* the global block may come after the listeners */
		if (l->relay == CONF_RELAY_UNSET)
			l->relay = c->global.relay;
		if (l->relay_inflight == 0)
			l->relay_inflight = c->global.relay_inflight;
		if (ps->refs[i].had_errors)
			continue;
		if (l->nbinds == 0)
			conf_error(ctx, l->where.line, l->where.col, l->name,
				   "listen '%s' has no bind (expected 'bind ADDRESS:PORT;')",
				   l->name);
		if (t == NULL && l->nroutes == 0) {
			conf_error(ctx, l->where.line, l->where.col, l->name,
				   "listen '%s' has no pool (expected 'pool NAME;' or routes)",
				   l->name);
			continue;
		}
		/* with routes, `pool` is the default when none matches */
		p = t != NULL ? conf_find_pool(c, t->text) : NULL;
		if (t != NULL && p == NULL)
			conf_error(ctx, t->line, t->col, t->text, "pool '%s' does not exist",
				   t->text);
		l->has_pool = p != NULL;
		if (p != NULL)
			l->pool = (size_t)(p - c->pools);
		for (size_t b = 0; b < l->nbinds; b++) {
			for (size_t j = 0; j <= i; j++) {
				const struct conf_listen *o = &c->listens[j];
				size_t n = j == i ? b : o->nbinds;

				for (size_t k = 0; k < n; k++) {
					char buf[UTIL_ADDR_STRLEN];

					if (!util_addr_equal(&l->binds[b], &o->binds[k]))
						continue;
					conf_error(ctx, l->where.line, l->where.col, l->name,
						   "address %s is bound twice (listen '%s' and "
						   "listen '%s')",
						   util_addr_fmt(&l->binds[b], buf, sizeof(buf)),
						   o->name, l->name);
				}
			}
		}
	}
}

struct conf *conf_parse(const char *file, const char *text, size_t len, struct conf_errors *errs)
{
	struct conf_ctx ctx = {.file = file, .errs = errs};
	struct parse_state ps = {.ctx = &ctx};
	struct conf_stmt *root;
	struct conf *c;
	size_t errs_before = errs->n;

	c = calloc(1, sizeof(*c));
	if (c == NULL || (c->file = strdup(file)) == NULL) {
		free(c);
		conf_error(&ctx, 1, 1, NULL, "out of memory");
		return NULL;
	}
	c->global.logs[0].kind = LOG_TARGET_STDERR; /* replaced by the first `log` line */
	c->global.logs[0].level = LOGL_INFO;
	c->global.nlogs = 1;
	c->global.grace_ms = 10000;
	ps.conf = c;
	root = conf_lex(&ctx, text, len);
	if (root != NULL) {
		conf_run_block(&ctx, root, top_kw, "the top level", &ps);
		validate(&ps);
		conf_route_validate(&ctx, c);
		conf_vrrp_validate(&ctx, c);
		conf_resolvers_validate(&ctx, c);
		conf_announce_validate(&ctx, c);
	}
	conf_stmt_free(root);
	free(ps.refs);
	if (errs->n > errs_before || errs->truncated || root == NULL) {
		if (errs->n == errs_before)
			conf_error(&ctx, 1, 1, NULL, "out of memory");
		conf_free(c);
		return NULL;
	}
	return c;
}

struct conf *conf_load_file(const char *path, struct conf_errors *errs)
{
	struct conf_ctx ctx = {.file = path, .errs = errs};
	struct conf *c = NULL;
	struct stat stb;
	char *buf = NULL;
	size_t got = 0;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &stb) < 0) {
		conf_error(&ctx, 0, 0, NULL, "cannot open: %s", strerror(errno));
		goto out;
	}
	if (!S_ISREG(stb.st_mode) || stb.st_size > CONF_MAX_FILE) {
		conf_error(&ctx, 0, 0, NULL, "not a regular file of at most %d bytes",
			   CONF_MAX_FILE);
		goto out;
	}
	buf = malloc((size_t)stb.st_size + 1);
	if (buf == NULL) {
		conf_error(&ctx, 0, 0, NULL, "out of memory reading %lld bytes",
			   (long long)stb.st_size);
		goto out;
	}
	while (got < (size_t)stb.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)stb.st_size - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			conf_error(&ctx, 0, 0, NULL, "read failed: %s",
				   n < 0 ? strerror(errno) : "file shrank");
			goto out;
		}
		got += (size_t)n;
	}
	c = conf_parse(path, buf, got, errs);
out:
	free(buf);
	if (fd >= 0)
		close(fd);
	return c;
}

void conf_free(struct conf *c)
{
	if (c == NULL)
		return;
	free(c->global.controls);
	for (size_t i = 0; i < c->npools; i++) {
		free(c->pools[i].servers);
		free(c->pools[i].discover);
		util_hmap_free(&c->pools[i].server_index);
	}
	free(c->pools);
	util_hmap_free(&c->pool_index);
	util_hmap_free(&c->listen_index);
	for (size_t i = 0; i < c->nlistens; i++) {
		free(c->listens[i].binds);
		conf_guard_free(&c->listens[i]);
		free(c->listens[i].routes);
	}
	free(c->listens);
	conf_vrrp_free(c);
	conf_resolvers_free(c);
	conf_announce_free(c);
	conf_errors_clear(&c->warnings);
	free(c->file);
	free(c);
}

static const char *pool_key(const void *arg, uintptr_t pos)
{
	return ((const struct conf *)arg)->pools[pos].name;
}

static const char *server_key(const void *arg, uintptr_t pos)
{
	return ((const struct conf_pool *)arg)->servers[pos].name;
}

static const char *listen_key(const void *arg, uintptr_t pos)
{
	return ((const struct conf *)arg)->listens[pos].name;
}

const struct conf_pool *conf_find_pool(const struct conf *c, const char *name)
{
	uintptr_t pos;

	return util_hmap_get(&c->pool_index, name, pool_key, c, &pos) ? &c->pools[pos] : NULL;
}

const struct conf_server *conf_find_server(const struct conf_pool *p, const char *name)
{
	uintptr_t pos;

	return util_hmap_get(&p->server_index, name, server_key, p, &pos) ? &p->servers[pos] : NULL;
}

const struct conf_listen *conf_find_listen(const struct conf *c, const char *name)
{
	uintptr_t pos;

	return util_hmap_get(&c->listen_index, name, listen_key, c, &pos) ? &c->listens[pos] : NULL;
}

struct conf *conf_empty(const char *file)
{
	struct conf_errors errs = {0};
	struct conf *c = conf_parse(file, "", 0, &errs);

	conf_errors_clear(&errs);
	return c;
}
