/* conf_guard: the listen keywords of the edge policy: source ACLs (allow,
 * deny, allow file, deny file, default) and per-source limits (limit
 * per-source conns|rate|group, limit table). Pure: a file's path is
 * checked and made absolute here; core reads the file when the
 * configuration is loaded. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf-int.h"
#include "sluice/conf.h"
#include "sluice/util.h"

#define RATE_MAX 1000000
#define CONNS_MAX 10000000

static struct conf_listen *listen_of(void *obj)
{
	/* the handlers' object starts with the listener being parsed */
	return *(struct conf_listen **)obj;
}

static struct conf_where where_of(const struct conf_stmt *st, size_t i)
{
	return (struct conf_where){.line = st->args[i].line, .col = st->args[i].col};
}

static const char *action_name(enum conf_acl_action a)
{
	return a == CONF_ACL_DENY ? "deny" : "allow";
}

/* A file's path: absolute as written, or made so from the configuration
 * file's directory. */
static int file_path(struct conf_ctx *ctx, const struct conf_stmt *st, size_t i, char *out)
{
	const struct conf_tok *t = &st->args[i];
	const char *slash = strrchr(ctx->file, '/');
	int dir = slash != NULL ? (int)(slash - ctx->file) : 0;
	int n;

	if (t->len == 0 || strlen(t->text) != t->len) {
		conf_error_arg(ctx, st, i, "bad file name (expected a path)");
		return -1;
	}
	if (t->text[0] == '/' || slash == NULL)
		n = snprintf(out, CONF_PATH_MAX, "%s", t->text);
	else
		n = snprintf(out, CONF_PATH_MAX, "%.*s/%s", dir, ctx->file, t->text);
	if (n < 0 || n >= CONF_PATH_MAX) {
		conf_error_arg(ctx, st, i, "path too long (at most %d bytes)", CONF_PATH_MAX - 1);
		return -1;
	}
	return 0;
}

static int add_file(struct conf_ctx *ctx, const struct conf_stmt *st, struct conf_guard *g,
		    enum conf_acl_action a)
{
	struct conf_acl_file f = {.action = a, .where = where_of(st, 2)};
	struct conf_acl_file *arr;

	if (file_path(ctx, st, 2, f.path) < 0)
		return -1;
	for (size_t i = 0; i < g->nfiles; i++) {
		if (strcmp(g->files[i].path, f.path) == 0) {
			conf_error_arg(ctx, st, 2, "file '%s' is listed twice (first at line %u)",
				       st->args[2].text, g->files[i].where.line);
			return -1;
		}
	}
	arr = realloc(g->files, (g->nfiles + 1) * sizeof(*arr));
	if (arr == NULL) {
		conf_error_arg(ctx, st, 0, "out of memory");
		return -1;
	}
	g->files = arr;
	arr[g->nfiles++] = f;
	return 0;
}

/* allow CIDR; deny CIDR; allow file PATH; deny file PATH; */
int conf_guard_kw_acl(struct conf_ctx *ctx, const struct conf_stmt *st, void *obj)
{
	struct conf_guard *g = &listen_of(obj)->guard;
	enum conf_acl_action a =
	    strcmp(st->args[0].text, "deny") == 0 ? CONF_ACL_DENY : CONF_ACL_ALLOW;
	struct conf_acl_rule r = {.action = a, .where = where_of(st, 1)};
	struct conf_acl_rule *arr;
	char err[200];

	if (strcmp(st->args[1].text, "file") == 0) {
		if (st->nargs != 3) {
			conf_error_arg(ctx, st, st->nargs - 1, "missing argument: %s file PATH;",
				       action_name(a));
			return -1;
		}
		return add_file(ctx, st, g, a);
	}
	if (st->nargs != 2) {
		conf_error_arg(ctx, st, 2, "too many arguments: %s CIDR; or %s file PATH;",
			       action_name(a), action_name(a));
		return -1;
	}
	if (util_cidr_parse(st->args[1].text, st->args[1].len, &r.cidr, err, sizeof(err)) < 0) {
		conf_error_arg(ctx, st, 1, "%s", err);
		return -1;
	}
	arr = realloc(g->rules, (g->nrules + 1) * sizeof(*arr));
	if (arr == NULL) {
		conf_error_arg(ctx, st, 0, "out of memory");
		return -1;
	}
	g->rules = arr;
	arr[g->nrules++] = r;
	return 0;
}

/* default allow|deny; */
int conf_guard_kw_default(struct conf_ctx *ctx, const struct conf_stmt *st, void *obj)
{
	struct conf_guard *g = &listen_of(obj)->guard;
	const char *v = st->args[1].text;

	if (g->dflt_where.line != 0) {
		conf_error_arg(ctx, st, 0, "duplicate 'default' (first at line %u)",
			       g->dflt_where.line);
		return -1;
	}
	if (strcmp(v, "allow") != 0 && strcmp(v, "deny") != 0) {
		conf_error_arg(ctx, st, 1, "unknown default '%s' (expected allow or deny)", v);
		return -1;
	}
	g->dflt = strcmp(v, "deny") == 0 ? CONF_ACL_DENY : CONF_ACL_ALLOW;
	g->dflt_where = where_of(st, 0);
	return 0;
}

/* Each limit statement once per listener. */
static bool first_time(struct conf_ctx *ctx, const struct conf_stmt *st, struct conf_where *w,
		       const char *what)
{
	if (w->line != 0) {
		conf_error_arg(ctx, st, 0, "duplicate '%s' (first at line %u)", what, w->line);
		return false;
	}
	*w = where_of(st, 0);
	return true;
}

/* "50/s" or "600/m". */
static int arg_rate(struct conf_ctx *ctx, const struct conf_stmt *st, size_t i,
		    struct conf_guard *g)
{
	const char *s = st->args[i].text, *slash = strchr(s, '/');
	char num[16];
	long v;

	if (slash == NULL || (size_t)(slash - s) >= sizeof(num) ||
	    (strcmp(slash, "/s") != 0 && strcmp(slash, "/m") != 0))
		goto bad;
	memcpy(num, s, (size_t)(slash - s));
	num[slash - s] = '\0';
	if (util_parse_long(num, 1, RATE_MAX, &v) < 0)
		goto bad;
	g->rate = (uint32_t)v;
	g->rate_period_ms = slash[1] == 's' ? 1000 : 60000;
	g->burst = g->rate;
	return 0;
bad:
	conf_error_arg(ctx, st, i, "bad rate '%s' (expected N/s or N/m, N from 1 to %d)", s,
		       RATE_MAX);
	return -1;
}

/* "/N" with N in 1..max. */
static int arg_prefix(struct conf_ctx *ctx, const struct conf_stmt *st, size_t i, long max,
		      uint8_t *out)
{
	const char *s = st->args[i].text;
	long v;

	if (s[0] != '/' || util_parse_long(s + 1, 1, max, &v) < 0) {
		conf_error_arg(ctx, st, i, "bad prefix length '%s' (expected /1-/%ld)", s, max);
		return -1;
	}
	*out = (uint8_t)v;
	return 0;
}

/* group v4 /N [v6 /M], in either order */
static int limit_group(struct conf_ctx *ctx, const struct conf_stmt *st, struct conf_guard *g)
{
	bool seen4 = false, seen6 = false;

	if (st->nargs != 5 && st->nargs != 7) {
		conf_error_arg(ctx, st, st->nargs > 7 ? 7 : st->nargs - 1,
			       "expected: limit per-source group v4 /N [v6 /M];");
		return -1;
	}
	if (!first_time(ctx, st, &g->group_where, "limit per-source group"))
		return -1;
	for (size_t i = 3; i + 1 < st->nargs; i += 2) {
		const char *fam = st->args[i].text;

		if (strcmp(fam, "v4") == 0 && !seen4) {
			seen4 = true;
			if (arg_prefix(ctx, st, i + 1, 32, &g->group4) < 0)
				return -1;
		} else if (strcmp(fam, "v6") == 0 && !seen6) {
			seen6 = true;
			if (arg_prefix(ctx, st, i + 1, 128, &g->group6) < 0)
				return -1;
		} else {
			conf_error_arg(ctx, st, i,
				       "unexpected '%s' (expected v4 /N and v6 /M, each once)",
				       fam);
			return -1;
		}
	}
	return 0;
}

/* conns N | rate N/s [burst M] | group ... */
static int limit_per_source(struct conf_ctx *ctx, const struct conf_stmt *st, struct conf_guard *g)
{
	const char *what = st->args[2].text;
	long v;

	if (strcmp(what, "group") == 0)
		return limit_group(ctx, st, g);
	if (strcmp(what, "conns") == 0) {
		if (st->nargs != 4) {
			conf_error_arg(ctx, st, st->nargs > 4 ? 4 : st->nargs - 1,
				       "expected: limit per-source conns N;");
			return -1;
		}
		if (!first_time(ctx, st, &g->conns_where, "limit per-source conns"))
			return -1;
		return conf_arg_u32(ctx, st, 3, "limit per-source conns", 1, CONNS_MAX, &g->conns);
	}
	if (strcmp(what, "rate") == 0) {
		if ((st->nargs != 4 && st->nargs != 6) ||
		    (st->nargs == 6 && strcmp(st->args[4].text, "burst") != 0)) {
			conf_error_arg(ctx, st,
				       st->nargs > 6	? 6
				       : st->nargs == 6 ? 4
							: st->nargs - 1,
				       "expected: limit per-source rate N/s [burst M];");
			return -1;
		}
		if (!first_time(ctx, st, &g->rate_where, "limit per-source rate") ||
		    arg_rate(ctx, st, 3, g) < 0)
			return -1;
		if (st->nargs == 6) {
			if (conf_arg_long(ctx, st, 5, "burst", 1, RATE_MAX, &v) < 0)
				return -1;
			g->burst = (uint32_t)v;
		}
		return 0;
	}
	conf_error_arg(ctx, st, 2, "unknown per-source limit '%s' (expected conns, rate or group)",
		       what);
	return -1;
}

/* limit per-source ...; limit table N entries; */
int conf_guard_kw_limit(struct conf_ctx *ctx, const struct conf_stmt *st, void *obj)
{
	struct conf_guard *g = &listen_of(obj)->guard;
	const char *kind = st->args[1].text;

	if (strcmp(kind, "per-source") == 0)
		return limit_per_source(ctx, st, g);
	if (strcmp(kind, "table") == 0) {
		if (st->nargs != 4 || strcmp(st->args[3].text, "entries") != 0) {
			conf_error_arg(ctx, st, st->nargs > 4 ? 4 : st->nargs - 1,
				       "expected: limit table N entries;");
			return -1;
		}
		if (!first_time(ctx, st, &g->table_where, "limit table"))
			return -1;
		return conf_arg_u32(ctx, st, 2, "limit table", 1, CONF_GUARD_TABLE_MAX, &g->table);
	}
	conf_error_arg(ctx, st, 1, "unknown limit '%s' (expected per-source or table)", kind);
	return -1;
}

void conf_guard_listen_init(struct conf_listen *l)
{
	struct conf_guard *g = &l->guard;

	memset(g, 0, sizeof(*g));
	g->dflt = CONF_ACL_ALLOW;
	g->group4 = 32;
	g->group6 = 64;
	g->table = CONF_GUARD_TABLE_DEFAULT;
}

static int cmp_rule(const void *a, const void *b)
{
	const struct conf_acl_rule *x = *(const struct conf_acl_rule *const *)a;
	const struct conf_acl_rule *y = *(const struct conf_acl_rule *const *)b;
	int c = memcmp(&x->cidr, &y->cidr, sizeof(x->cidr));

	if (c != 0)
		return c;
	return x->where.line < y->where.line ? -1 : x->where.line > y->where.line;
}

/* allow X and deny X both written: which one was meant? (The same line
 * twice is harmless.) */
static void check_conflicts(struct conf_ctx *ctx, struct conf_guard *g)
{
	const struct conf_acl_rule **v;

	if (g->nrules < 2)
		return;
	v = malloc(g->nrules * sizeof(*v));
	if (v == NULL) {
		conf_error(ctx, 1, 1, NULL, "out of memory");
		return;
	}
	for (size_t i = 0; i < g->nrules; i++)
		v[i] = &g->rules[i];
	qsort(v, g->nrules, sizeof(*v), cmp_rule);
	for (size_t i = 1; i < g->nrules; i++) {
		char buf[UTIL_CIDR_STRLEN];

		if (!util_cidr_equal(&v[i - 1]->cidr, &v[i]->cidr) ||
		    v[i - 1]->action == v[i]->action)
			continue;
		util_cidr_fmt(&v[i]->cidr, buf, sizeof(buf));
		conf_error(ctx, v[i]->where.line, v[i]->where.col, buf,
			   "'%s %s' contradicts '%s %s' at line %u", action_name(v[i]->action), buf,
			   action_name(v[i - 1]->action), buf, v[i - 1]->where.line);
	}
	free(v);
}

void conf_guard_listen_done(struct conf_ctx *ctx, struct conf_listen *l)
{
	struct conf_guard *g = &l->guard;
	const struct conf_where *w = g->table_where.line ? &g->table_where : &g->group_where;

	check_conflicts(ctx, g);
	/* a table or a grouping without a limit would do nothing */
	if (w->line != 0 && g->conns == 0 && g->rate == 0)
		conf_error(ctx, w->line, w->col, "limit",
			   "'%s' without a per-source limit (expected 'limit per-source conns N;' "
			   "or 'limit per-source rate N/s;' in listen '%s')",
			   g->table_where.line ? "limit table" : "limit per-source group", l->name);
}

void conf_guard_free(struct conf_listen *l)
{
	free(l->guard.rules);
	free(l->guard.files);
	l->guard.rules = NULL;
	l->guard.files = NULL;
}
