/* conf_resolvers: DNS in the configuration. The `resolvers NAME { ... }`
 * block (name servers, timeout, attempts, hold, accepted-ttl), the pool
 * keywords `resolvers NAME;` and `servers srv|dns ...;` (servers that DNS
 * fills in), and the checks that need the whole file. A file that writes
 * no block named "default" gets one with the system's configuration, so
 * that every pool has a block. Pure, like the rest of conf. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conf-int.h"
#include "sluice/conf.h"
#include "sluice/srvopt.h"
#include "sluice/util.h"

#define RES_MAX_MS (24ull * 3600 * 1000)

/* The values a block has until it says otherwise. */
static void resolvers_defaults(struct conf_resolvers *r, const char *name)
{
	memset(r, 0, sizeof(*r));
	util_strlcpy(r->name, name, sizeof(r->name));
	r->timeout_ms = 1000;
	r->attempts = 2;
	r->hold_valid_ms = 10000;
	r->hold_nx_ms = 30000;
	r->hold_timeout_ms = 300000;
	r->ttl_min_ms = 1000;
	r->ttl_max_ms = 3600000;
}

/* The block being read. */
struct res_obj {
	struct conf_resolvers *r;
};

/* nameserver ADDRESS[:PORT]; numeric, port 53 when not written */
static int kw_nameserver(struct conf_ctx *ctx, const struct conf_stmt *st, void *obj)
{
	struct conf_resolvers *r = ((struct res_obj *)obj)->r;
	const char *s = st->args[1].text;
	struct util_addr a;
	char err[160];

	if (util_addr_parse_host(s, &a) == 0) {
		util_addr_set_port(&a, 53);
	} else if (util_addr_parse(s, false, &a, err, sizeof(err)) < 0) {
		conf_error_arg(ctx, st, 1,
			       "bad nameserver '%s' (expected an IPv4 or IPv6 address, "
			       "with :PORT or [IPV6]:PORT for another port than 53)",
			       s);
		return -1;
	}
	for (size_t i = 0; i < r->nnameservers; i++) {
		if (util_addr_equal(&r->nameservers[i], &a)) {
			conf_error_arg(ctx, st, 1, "duplicate nameserver '%s'", s);
			return -1;
		}
	}
	if (r->nnameservers == CONF_RESOLVERS_MAX_NS) {
		conf_error_arg(ctx, st, 1, "too many nameservers (at most %d)",
			       CONF_RESOLVERS_MAX_NS);
		return -1;
	}
	r->nameservers[r->nnameservers++] = a;
	return 0;
}

static int kw_timeout(struct conf_ctx *ctx, const struct conf_stmt *st, void *obj)
{
	struct conf_resolvers *r = ((struct res_obj *)obj)->r;

	return conf_arg_duration(ctx, st, 1, "timeout", 10, 60000, &r->timeout_ms);
}

static int kw_attempts(struct conf_ctx *ctx, const struct conf_stmt *st, void *obj)
{
	struct conf_resolvers *r = ((struct res_obj *)obj)->r;

	return conf_arg_u32(ctx, st, 1, "attempts", 1, 10, &r->attempts);
}

/* hold valid|nx|timeout DURATION */
static int kw_hold(struct conf_ctx *ctx, const struct conf_stmt *st, void *obj)
{
	struct conf_resolvers *r = ((struct res_obj *)obj)->r;
	const char *which = st->args[1].text;

	if (strcmp(which, "valid") == 0)
		return conf_arg_duration(ctx, st, 2, "hold valid", 100, RES_MAX_MS,
					 &r->hold_valid_ms);
	if (strcmp(which, "nx") == 0)
		return conf_arg_duration(ctx, st, 2, "hold nx", 0, RES_MAX_MS, &r->hold_nx_ms);
	if (strcmp(which, "timeout") == 0)
		return conf_arg_duration(ctx, st, 2, "hold timeout", 0, RES_MAX_MS,
					 &r->hold_timeout_ms);
	conf_error_arg(ctx, st, 1, "unknown hold '%s' (expected valid, nx or timeout)", which);
	return -1;
}

/* accepted-ttl MIN MAX */
static int kw_accepted_ttl(struct conf_ctx *ctx, const struct conf_stmt *st, void *obj)
{
	struct res_obj *ro = obj;
	struct conf_resolvers *r = ro->r;

	if (conf_arg_duration(ctx, st, 1, "accepted-ttl minimum", 100, RES_MAX_MS, &r->ttl_min_ms) <
		0 ||
	    conf_arg_duration(ctx, st, 2, "accepted-ttl maximum", 100, RES_MAX_MS, &r->ttl_max_ms) <
		0)
		return -1;
	if (r->ttl_max_ms < r->ttl_min_ms) {
		conf_error_arg(ctx, st, 2, "accepted-ttl maximum '%s' is below its minimum '%s'",
			       st->args[2].text, st->args[1].text);
		return -1;
	}
	return 0;
}

static const struct conf_keyword resolvers_kw[] = {
    {"nameserver", 2, 2, false, kw_nameserver, "nameserver ADDRESS[:PORT];"},
    {"timeout", 2, 2, false, kw_timeout, "timeout DURATION;"},
    {"attempts", 2, 2, false, kw_attempts, "attempts N;"},
    {"hold", 3, 3, false, kw_hold, "hold valid|nx|timeout DURATION;"},
    {"accepted-ttl", 3, 3, false, kw_accepted_ttl, "accepted-ttl MIN MAX;"},
    {NULL, 0, 0, false, NULL, NULL},
};

void conf_warnings_add(struct conf *c, const struct conf_where *w, const char *near,
		       const char *msg)
{
	struct conf_ctx ctx = {.file = c->file, .errs = NULL};

	conf_warning(&ctx, c, w->line, w->col, near, "%s", msg);
}

void conf_resolvers_keywords(conf_keyword_fn fn, void *arg)
{
	for (size_t i = 0; resolvers_kw[i].name != NULL; i++)
		fn(arg, "resolvers", resolvers_kw[i].name, resolvers_kw[i].usage,
		   resolvers_kw[i].block);
}

const struct conf_resolvers *conf_find_resolvers(const struct conf *c, const char *name)
{
	for (size_t i = 0; i < c->nresolvers; i++)
		if (strcmp(c->resolvers[i].name, name) == 0)
			return &c->resolvers[i];
	return NULL;
}

int conf_resolvers_block(struct conf_ctx *ctx, const struct conf_stmt *st, struct conf *c)
{
	struct res_obj ro = {NULL};
	const struct conf_resolvers *first;
	struct conf_resolvers *arr;
	char name[CONF_NAME_MAX], where[CONF_NAME_MAX + 20];

	if (conf_arg_name(ctx, st, 1, "resolvers", name) < 0)
		return -1;
	first = conf_find_resolvers(c, name);
	if (first != NULL) {
		conf_error_arg(ctx, st, 1, "duplicate resolvers '%s' (first defined at line %u)",
			       name, first->where.line);
		return -1;
	}
	arr = conf_array_grow(ctx, st, c->resolvers, c->nresolvers, sizeof(*arr));
	if (arr == NULL)
		return -1;
	c->resolvers = arr;
	ro.r = &arr[c->nresolvers++];
	resolvers_defaults(ro.r, name);
	ro.r->written = true;
	ro.r->where.line = st->args[1].line;
	ro.r->where.col = st->args[1].col;
	snprintf(where, sizeof(where), "resolvers '%s'", name);
	conf_run_block(ctx, st, resolvers_kw, where, &ro);
	return 0;
}

int conf_resolvers_kw_pool(struct conf_ctx *ctx, const struct conf_stmt *st, void *obj)
{
	struct conf_pool *p = obj;

	if (conf_arg_name(ctx, st, 1, "resolvers", p->resolvers) < 0)
		return -1;
	p->resolvers_where.line = st->args[1].line;
	p->resolvers_where.col = st->args[1].col;
	return 0;
}

/* The words after the name: limit, weight-from-srv (srv), port (dns),
 * and the server option table. Returns 0 or -1 (reported). */
static int discover_words(struct conf_ctx *ctx, const struct conf_stmt *st, struct conf_discover *d,
			  bool *port_seen)
{
	const char *words[64];
	char err[400];
	size_t n = UTIL_MIN(st->nargs, UTIL_ARRAY_LEN(words));
	bool weight_seen = false, limit_seen = false;
	size_t wfs_at = 0;

	for (size_t i = 0; i < n; i++)
		words[i] = st->args[i].text;
	for (size_t i = 3; i < n; i++) {
		const char *w = words[i];

		if (strlen(w) != st->args[i].len) {
			conf_error_arg(ctx, st, i, "NUL byte in '%s'", w);
			return -1;
		}
		if (strcmp(w, "limit") == 0 && i + 1 < n && !limit_seen) {
			if (conf_arg_u32(ctx, st, ++i, "limit", 1, CONF_DISCOVER_LIMIT_MAX,
					 &d->limit) < 0)
				return -1;
			limit_seen = true;
		} else if (strcmp(w, "port") == 0 && i + 1 < n && d->kind == CONF_DISCOVER_DNS &&
			   !*port_seen) {
			uint32_t port;

			if (conf_arg_u32(ctx, st, ++i, "port", 1, 65535, &port) < 0)
				return -1;
			d->port = (uint16_t)port;
			*port_seen = true;
		} else if (strcmp(w, "weight-from-srv") == 0 && d->kind == CONF_DISCOVER_SRV) {
			d->weight_from_srv = true;
			wfs_at = i;
		} else {
			weight_seen |= strcmp(w, "weight") == 0;
			if (util_srvopt_parse(words, n, &i, &d->opts,
					      d->kind == CONF_DISCOVER_SRV
						  ? ", or limit N, weight-from-srv"
						  : ", or port N, limit N",
					      err, sizeof(err)) < 0) {
				conf_error_arg(ctx, st, i, "%s", err);
				return -1;
			}
		}
	}
	if (weight_seen && d->weight_from_srv) {
		conf_error_arg(ctx, st, wfs_at,
			       "'weight' and 'weight-from-srv' exclude each other");
		return -1;
	}
	return 0;
}

/* servers srv NAME [limit N] [weight-from-srv] [OPTION ...];
 * servers dns NAME port N [limit N] [OPTION ...]; */
int conf_resolvers_kw_servers(struct conf_ctx *ctx, const struct conf_stmt *st, void *obj)
{
	struct conf_pool *p = obj;
	struct conf_discover d, *arr;
	const struct conf_tok *name = &st->args[2];
	bool port_seen = false;
	char err[400];

	memset(&d, 0, sizeof(d));
	util_srvopts_init(&d.opts);
	d.limit = 64;
	d.where.line = st->args[0].line;
	d.where.col = st->args[0].col;
	if (strcmp(st->args[1].text, "srv") == 0) {
		d.kind = CONF_DISCOVER_SRV;
		if (util_service_name_check(name->text, name->len, err, sizeof(err)) < 0) {
			conf_error_arg(ctx, st, 2, "%s", err);
			return -1;
		}
	} else if (strcmp(st->args[1].text, "dns") == 0) {
		d.kind = CONF_DISCOVER_DNS;
		if (!util_is_host_name(name->text, name->len) || strlen(name->text) != name->len) {
			conf_error_arg(ctx, st, 2,
				       "bad host name '%s' (expected letters, digits, "
				       "'-' and '.')",
				       name->text);
			return -1;
		}
	} else {
		conf_error_arg(ctx, st, 1, "unknown kind of servers '%s' (expected srv or dns)",
			       st->args[1].text);
		return -1;
	}
	util_strlcpy(d.name, name->text, sizeof(d.name));
	/* a final dot changes nothing to a lookup: one spelling per name */
	if (d.name[0] != '\0' && d.name[strlen(d.name) - 1] == '.')
		d.name[strlen(d.name) - 1] = '\0';
	if (discover_words(ctx, st, &d, &port_seen) < 0)
		return -1;
	if (d.kind == CONF_DISCOVER_DNS && !port_seen) {
		conf_error_arg(ctx, st, 2,
			       "servers dns needs a port (expected 'servers dns %s "
			       "port N;')",
			       d.name);
		return -1;
	}
	for (size_t i = 0; i < p->ndiscover; i++) {
		const struct conf_discover *o = &p->discover[i];

		if (o->kind == d.kind && strcasecmp(o->name, d.name) == 0 && o->port == d.port) {
			conf_error_arg(ctx, st, 2,
				       "duplicate servers %s %s in pool '%s' (first at "
				       "line %u)",
				       st->args[1].text, d.name, p->name, o->where.line);
			return -1;
		}
	}
	if (p->ndiscover == CONF_DISCOVER_MAX) {
		conf_error_arg(ctx, st, 0, "too many servers lines in pool '%s' (at most %d)",
			       p->name, CONF_DISCOVER_MAX);
		return -1;
	}
	arr = conf_array_grow(ctx, st, p->discover, p->ndiscover, sizeof(*arr));
	if (arr == NULL)
		return -1;
	p->discover = arr;
	arr[p->ndiscover++] = d;
	return 0;
}

void conf_resolvers_pool_done(struct conf_ctx *ctx, struct conf_pool *p)
{
	const struct conf_pool_health *h = &p->health;

	if (p->resolvers[0] == '\0')
		util_strlcpy(p->resolvers, "default", sizeof(p->resolvers));
	for (size_t i = 0; i < p->ndiscover; i++) {
		const struct conf_discover *d = &p->discover[i];

		if (h->check.type == CONF_CHECK_NONE && (d->opts.check.port || d->opts.check.off))
			conf_error(ctx, d->where.line, d->where.col, "servers",
				   "servers %s has check options but pool '%s' has no check block",
				   d->name, p->name);
		if (h->agent_port == 0 && (d->opts.agent.port || d->opts.agent.off))
			conf_error(ctx, d->where.line, d->where.col, "servers",
				   "servers %s has agent options but pool '%s' has no agent",
				   d->name, p->name);
	}
}

void conf_resolvers_validate(struct conf_ctx *ctx, struct conf *c)
{
	struct conf_resolvers *arr;

	for (size_t i = 0; i < c->npools; i++) {
		const struct conf_pool *p = &c->pools[i];

		if (strcmp(p->resolvers, "default") != 0 &&
		    conf_find_resolvers(c, p->resolvers) == NULL)
			conf_error(ctx, p->resolvers_where.line, p->resolvers_where.col,
				   p->resolvers, "resolvers '%s' does not exist", p->resolvers);
	}
	if (conf_find_resolvers(c, "default") != NULL)
		return;
	arr = conf_grow(ctx, 1, 1, c->resolvers, c->nresolvers, sizeof(*arr));
	if (arr == NULL)
		return;
	c->resolvers = arr;
	resolvers_defaults(&arr[c->nresolvers++], "default");
}

void conf_resolvers_free(struct conf *c)
{
	free(c->resolvers);
	c->resolvers = NULL;
	c->nresolvers = 0;
}
