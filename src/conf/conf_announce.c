/* conf_announce: the `announce NAME { ... }` block (addresses this node
 * announces to its routing daemon through a TUN device while it can serve
 * them) and its cross-checks: required pools exist, a listener serves each
 * address, no address is also moved by VRRP or announced twice. Called by
 * conf_parse.c's top-level table; pure like the rest of conf. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf-int.h"
#include "sluice/conf.h"
#include "sluice/util.h"

#define ANNOUNCE_MAX_DURATION_MS (3600ull * 1000)
#define ANNOUNCE_DEFAULT_DEVICE "vip0"
#define ANNOUNCE_DEFAULT_HOLD_DOWN_MS 2000
#define ANNOUNCE_DEFAULT_WITHDRAW_DELAY_MS 2000

static void where_of(const struct conf_tok *t, struct conf_where *w)
{
	w->line = t->line;
	w->col = t->col;
}

/* address A[/32|/128] */
static int kw_address(struct conf_ctx *ctx, const struct conf_stmt *st, void *obj)
{
	struct conf_announce *an = obj;
	struct conf_announce_addr a, *arr;
	const char *s = st->args[1].text, *slash = strchr(s, '/');
	size_t hl = slash ? (size_t)(slash - s) : strlen(s);
	char host[64];

	memset(&a, 0, sizeof(a));
	where_of(&st->args[1], &a.where);
	if (hl > 0 && hl < sizeof(host)) {
		memcpy(host, s, hl);
		host[hl] = '\0';
	}
	if (hl == 0 || hl >= sizeof(host) || util_addr_parse_host(host, &a.addr) < 0) {
		conf_error_arg(ctx, st, 1,
			       "bad address '%s' (expected an IPv4 address/32 or an "
			       "IPv6 address/128)",
			       s);
		return -1;
	}
	if (slash != NULL) {
		const char *want = a.addr.u.sa.sa_family == AF_INET ? "32" : "128";

		/* the router gets one host route per node: anything wider
		 * would announce addresses this node does not serve */
		if (strcmp(slash + 1, want) != 0) {
			conf_error_arg(ctx, st, 1,
				       "announced prefix '%s' must be a single address "
				       "(/%s for %s)",
				       s, want, a.addr.u.sa.sa_family == AF_INET ? "IPv4" : "IPv6");
			return -1;
		}
	}
	for (size_t i = 0; i < an->naddrs; i++) {
		if (util_addr_equal(&an->addrs[i].addr, &a.addr)) {
			conf_error_arg(ctx, st, 1, "duplicate address '%s' (first at line %u)",
				       host, an->addrs[i].where.line);
			return -1;
		}
	}
	if (an->naddrs >= CONF_ANNOUNCE_MAX_ADDRS) {
		conf_error_arg(ctx, st, 1, "too many addresses (at most %d per announce block)",
			       CONF_ANNOUNCE_MAX_ADDRS);
		return -1;
	}
	arr = realloc(an->addrs, (an->naddrs + 1) * sizeof(*arr));
	if (arr == NULL)
		return -1;
	an->addrs = arr;
	arr[an->naddrs++] = a;
	return 0;
}

/* A name the kernel takes for a new link: 1-15 bytes of letters, digits,
 * '-', '_', '.', not "." or "..", and not a name the kernel reserves. */
static int kw_device(struct conf_ctx *ctx, const struct conf_stmt *st, void *obj)
{
	struct conf_announce *an = obj;
	const char *s = st->args[1].text;
	size_t n = strlen(s);

	if (n == 0 || n >= CONF_IFNAME_MAX || n != st->args[1].len ||
	    strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") != n ||
	    strcmp(s, ".") == 0 || strcmp(s, "..") == 0 || strcmp(s, "lo") == 0 ||
	    strcmp(s, "all") == 0 || strcmp(s, "default") == 0) {
		conf_error_arg(ctx, st, 1,
			       "bad device name '%s' (expected 1-%d letters, digits, "
			       "'-', '_' or '.', for a TUN device sluice creates)",
			       s, CONF_IFNAME_MAX - 1);
		return -1;
	}
	memcpy(an->device, s, n + 1);
	where_of(&st->args[1], &an->device_where);
	return 0;
}

/* require pool NAME */
static int kw_require(struct conf_ctx *ctx, const struct conf_stmt *st, void *obj)
{
	struct conf_announce *an = obj;
	struct conf_announce_pool p, *arr;

	if (strcmp(st->args[1].text, "pool") != 0) {
		conf_error_arg(ctx, st, 1, "unknown requirement '%s' (expected pool NAME)",
			       st->args[1].text);
		return -1;
	}
	memset(&p, 0, sizeof(p));
	if (conf_arg_name(ctx, st, 2, "pool", p.name) < 0)
		return -1;
	where_of(&st->args[2], &p.where);
	for (size_t i = 0; i < an->npools; i++) {
		if (strcmp(an->pools[i].name, p.name) == 0) {
			conf_error_arg(ctx, st, 2, "pool '%s' is required twice (first at line %u)",
				       p.name, an->pools[i].where.line);
			return -1;
		}
	}
	if (an->npools >= CONF_ANNOUNCE_MAX_POOLS) {
		conf_error_arg(ctx, st, 2, "too many required pools (at most %d)",
			       CONF_ANNOUNCE_MAX_POOLS);
		return -1;
	}
	arr = realloc(an->pools, (an->npools + 1) * sizeof(*arr));
	if (arr == NULL)
		return -1;
	an->pools = arr;
	arr[an->npools++] = p;
	return 0;
}

static int kw_hold_down(struct conf_ctx *ctx, const struct conf_stmt *st, void *obj)
{
	struct conf_announce *an = obj;

	return conf_arg_duration(ctx, st, 1, "hold-down", 0, ANNOUNCE_MAX_DURATION_MS,
				 &an->hold_down_ms);
}

static int kw_withdraw_delay(struct conf_ctx *ctx, const struct conf_stmt *st, void *obj)
{
	struct conf_announce *an = obj;

	return conf_arg_duration(ctx, st, 1, "withdraw-delay", 0, ANNOUNCE_MAX_DURATION_MS,
				 &an->withdraw_delay_ms);
}

static const struct conf_keyword announce_kw[] = {
    {"address", 2, 2, false, kw_address, "address ADDRESS[/32|/128];"},
    {"device", 2, 2, false, kw_device, "device NAME;"},
    {"require", 3, 3, false, kw_require, "require pool NAME;"},
    {"hold-down", 2, 2, false, kw_hold_down, "hold-down DURATION;"},
    {"withdraw-delay", 2, 2, false, kw_withdraw_delay, "withdraw-delay DURATION;"},
    {NULL, 0, 0, false, NULL, NULL},
};

void conf_announce_keywords(conf_keyword_fn fn, void *arg)
{
	for (size_t k = 0; announce_kw[k].name != NULL; k++)
		fn(arg, "announce", announce_kw[k].name, announce_kw[k].usage, false);
}

int conf_announce_block(struct conf_ctx *ctx, const struct conf_stmt *st, struct conf *c)
{
	struct conf_announce *arr, *an;
	char where[CONF_NAME_MAX + 16];
	char name[CONF_NAME_MAX];
	size_t before = ctx->errs->n;

	if (conf_arg_name(ctx, st, 1, "announce", name) < 0)
		return -1;
	if (strcmp(name, "all") == 0) {
		conf_error_arg(ctx, st, 1,
			       "announce name 'all' is reserved ('announce withdraw all' "
			       "means every block)");
		return -1;
	}
	for (size_t i = 0; i < c->nannounces; i++) {
		if (strcmp(c->announces[i].name, name) == 0) {
			conf_error_arg(ctx, st, 1,
				       "duplicate announce '%s' (first defined at line "
				       "%u)",
				       name, c->announces[i].where.line);
			return -1;
		}
	}
	arr = realloc(c->announces, (c->nannounces + 1) * sizeof(*arr));
	if (arr == NULL)
		return -1;
	c->announces = arr;
	an = &arr[c->nannounces++];
	memset(an, 0, sizeof(*an));
	memcpy(an->name, name, sizeof(name));
	where_of(&st->args[1], &an->where);
	util_strlcpy(an->device, ANNOUNCE_DEFAULT_DEVICE, sizeof(an->device));
	an->device_where = an->where;
	an->hold_down_ms = ANNOUNCE_DEFAULT_HOLD_DOWN_MS;
	an->withdraw_delay_ms = ANNOUNCE_DEFAULT_WITHDRAW_DELAY_MS;
	snprintf(where, sizeof(where), "announce '%s'", name);
	conf_run_block(ctx, st, announce_kw, where, an);
	/* a keyword that failed already said what is wrong: no "has no ..." */
	if (an->naddrs == 0 && ctx->errs->n == before && !ctx->errs->truncated)
		conf_error(ctx, an->where.line, an->where.col, an->name,
			   "announce '%s' has no address (expected 'address ADDRESS/32;')",
			   an->name);
	return 0;
}

/* The vrrp block and line that also lists a, or NULL. */
static const struct conf_vrrp *vrrp_with(const struct conf *c, const struct util_addr *a,
					 uint32_t *line)
{
	for (size_t i = 0; i < c->nvrrps; i++) {
		for (size_t k = 0; k < c->vrrps[i].naddrs; k++) {
			if (util_addr_equal(&c->vrrps[i].addrs[k].addr, a)) {
				*line = c->vrrps[i].addrs[k].where.line;
				return &c->vrrps[i];
			}
		}
	}
	return NULL;
}

static bool served_by_listener(const struct conf *c, const struct util_addr *a)
{
	for (size_t i = 0; i < c->nlistens; i++)
		for (size_t b = 0; b < c->listens[i].nbinds; b++)
			if (util_addr_serves_host(&c->listens[i].binds[b], a))
				return true;
	return false;
}

static void validate_addr(struct conf_ctx *ctx, const struct conf *c, size_t bi,
			  const struct conf_announce_addr *aa)
{
	const struct conf_announce *an = &c->announces[bi];
	const struct conf_vrrp *v;
	char host[UTIL_ADDR_STRLEN];
	uint32_t line = 0;

	util_addr_fmt_host(&aa->addr, host, sizeof(host));
	v = vrrp_with(c, &aa->addr, &line);
	if (v != NULL)
		conf_error(ctx, aa->where.line, aa->where.col, host,
			   "address %s is also a VRRP address (vrrp '%s', line %u): an address "
			   "is either moved by VRRP or announced",
			   host, v->name, line);
	for (size_t j = 0; j < bi; j++) {
		for (size_t k = 0; k < c->announces[j].naddrs; k++) {
			if (util_addr_equal(&c->announces[j].addrs[k].addr, &aa->addr))
				conf_error(ctx, aa->where.line, aa->where.col, host,
					   "address %s is announced twice (announce '%s' and "
					   "announce '%s')",
					   host, c->announces[j].name, an->name);
		}
	}
	if (!served_by_listener(c, &aa->addr))
		conf_error(
		    ctx, aa->where.line, aa->where.col, host,
		    "no listener serves %s (expected a listen block with 'bind %s%s%s:PORT;' "
		    "or a wildcard bind)",
		    host, aa->addr.u.sa.sa_family == AF_INET6 ? "[" : "", host,
		    aa->addr.u.sa.sa_family == AF_INET6 ? "]" : "");
}

void conf_announce_validate(struct conf_ctx *ctx, struct conf *c)
{
	for (size_t i = 0; i < c->nannounces; i++) {
		const struct conf_announce *an = &c->announces[i];

		for (size_t p = 0; p < an->npools; p++)
			if (conf_find_pool(c, an->pools[p].name) == NULL)
				conf_error(ctx, an->pools[p].where.line, an->pools[p].where.col,
					   an->pools[p].name, "pool '%s' does not exist",
					   an->pools[p].name);
		for (size_t k = 0; k < an->naddrs; k++)
			validate_addr(ctx, c, i, &an->addrs[k]);
	}
}

void conf_announce_free(struct conf *c)
{
	for (size_t i = 0; i < c->nannounces; i++) {
		free(c->announces[i].addrs);
		free(c->announces[i].pools);
	}
	free(c->announces);
	c->announces = NULL;
	c->nannounces = 0;
}
