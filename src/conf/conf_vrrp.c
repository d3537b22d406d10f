/* conf_vrrp: the `vrrp NAME { ... }` block (one VRRP virtual router) and its
 * cross-checks (track pool references, one VRID per interface and family).
 * Called by conf_parse.c's top-level table; pure like the rest of conf.
 * Every bad value is reported at its own token, never silently defaulted. */
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf-int.h"
#include "sluice/conf.h"
#include "sluice/util.h"

#define VRRP_MAX_DURATION_MS (24ull * 3600 * 1000)

typedef int (*vrrp_kw_fn)(struct conf_ctx *ctx, const struct conf_stmt *st, struct conf_vrrp *v);

struct vrrp_kw {
	const char *name;
	size_t min_args, max_args; /* counting the keyword */
	vrrp_kw_fn fn;
	const char *usage;
};

/* Where the values that are checked against each other at the end were. */
struct vrrp_seen {
	const struct conf_tok *advert, *version;
};

/* ---- value helpers ---- */

static int v_duration(struct conf_ctx *ctx, const struct conf_stmt *st, size_t i, const char *what,
		      uint64_t *out)
{
	return conf_arg_duration(ctx, st, i, what, 0, VRRP_MAX_DURATION_MS, out);
}

static void where_of(const struct conf_tok *t, struct conf_where *w)
{
	w->line = t->line;
	w->col = t->col;
}

/* ---- keywords ---- */

static int kw_interface(struct conf_ctx *ctx, const struct conf_stmt *st, struct conf_vrrp *v)
{
	return conf_arg_ifname(ctx, st, 1, v->interface);
}

static int kw_vrid(struct conf_ctx *ctx, const struct conf_stmt *st, struct conf_vrrp *v)
{
	return conf_arg_u32(ctx, st, 1, "vrid", 1, 255, &v->vrid);
}

static int kw_priority(struct conf_ctx *ctx, const struct conf_stmt *st, struct conf_vrrp *v)
{
	return conf_arg_u32(ctx, st, 1, "priority", 1, 255, &v->priority);
}

static int kw_advert(struct conf_ctx *ctx, const struct conf_stmt *st, struct conf_vrrp *v)
{
	uint64_t ms;

	if (v_duration(ctx, st, 1, "advert", &ms) < 0)
		return -1;
	if (ms < 10 || ms > 40950 || ms % 10 != 0) {
		conf_error_arg(ctx, st, 1,
			       "advert '%s' out of range (expected 10ms-40950ms in "
			       "steps of 10ms)",
			       st->args[1].text);
		return -1;
	}
	v->advert_ms = ms;
	return 0;
}

static int kw_version(struct conf_ctx *ctx, const struct conf_stmt *st, struct conf_vrrp *v)
{
	const char *s = st->args[1].text;

	if (strcmp(s, "2") == 0)
		v->version = 2;
	else if (strcmp(s, "3") == 0)
		v->version = 3;
	else {
		conf_error_arg(ctx, st, 1, "unknown VRRP version '%s' (expected 2 or 3)", s);
		return -1;
	}
	return 0;
}

static int kw_preempt(struct conf_ctx *ctx, const struct conf_stmt *st, struct conf_vrrp *v)
{
	const char *s = st->args[1].text;

	if (strcmp(s, "on") == 0)
		v->preempt = true;
	else if (strcmp(s, "off") == 0)
		v->preempt = false;
	else {
		conf_error_arg(ctx, st, 1, "bad preempt '%s' (expected on or off)", s);
		return -1;
	}
	return 0;
}

static int kw_preempt_delay(struct conf_ctx *ctx, const struct conf_stmt *st, struct conf_vrrp *v)
{
	return v_duration(ctx, st, 1, "preempt-delay", &v->preempt_delay_ms);
}

/* address A[/N] [dev IF] */
static int kw_address(struct conf_ctx *ctx, const struct conf_stmt *st, struct conf_vrrp *v)
{
	struct conf_vrrp_addr a, *arr;
	char host[64];
	const char *s = st->args[1].text, *slash = strchr(s, '/');
	size_t hl = slash ? (size_t)(slash - s) : strlen(s);
	uint32_t maxlen;

	memset(&a, 0, sizeof(a));
	where_of(&st->args[1], &a.where);
	if (hl == 0 || hl >= sizeof(host)) {
		conf_error_arg(ctx, st, 1,
			       "bad address '%s' (expected an IPv4 or IPv6 address "
			       "with an optional /PREFIX)",
			       s);
		return -1;
	}
	memcpy(host, s, hl);
	host[hl] = '\0';
	if (util_addr_parse_host(host, &a.addr) < 0) {
		conf_error_arg(ctx, st, 1,
			       "bad address '%s' (expected an IPv4 or IPv6 address "
			       "with an optional /PREFIX)",
			       s);
		return -1;
	}
	maxlen = a.addr.u.sa.sa_family == AF_INET ? 32 : 128;
	a.prefixlen = maxlen;
	if (slash != NULL) {
		long n;

		if (util_parse_long(slash + 1, 1, maxlen, &n) < 0) {
			conf_error_arg(ctx, st, 1, "bad prefix length in '%s' (expected 1-%u)", s,
				       maxlen);
			return -1;
		}
		a.prefixlen = (uint32_t)n;
	}
	if (st->nargs == 3 || (st->nargs == 4 && strcmp(st->args[2].text, "dev") != 0)) {
		conf_error_arg(ctx, st, 2, "unknown address option '%s' (expected dev IF)",
			       st->args[2].text);
		return -1;
	}
	if (st->nargs == 4 && conf_arg_ifname(ctx, st, 3, a.dev) < 0)
		return -1;
	if (v->naddrs > 0 && v->addrs[0].addr.u.sa.sa_family != a.addr.u.sa.sa_family) {
		conf_error_arg(ctx, st, 1,
			       "address '%s' is not of the same family as the first "
			       "address (one virtual router is IPv4 or IPv6)",
			       s);
		return -1;
	}
	for (size_t i = 0; i < v->naddrs; i++) {
		struct util_addr x = v->addrs[i].addr;

		if (util_addr_equal(&x, &a.addr)) {
			conf_error_arg(ctx, st, 1, "duplicate address '%s' (first at line %u)",
				       host, v->addrs[i].where.line);
			return -1;
		}
	}
	if (v->naddrs >= CONF_VRRP_MAX_ADDRS) {
		conf_error_arg(ctx, st, 1, "too many addresses (at most %d per virtual router)",
			       CONF_VRRP_MAX_ADDRS);
		return -1;
	}
	arr = conf_array_grow(ctx, st, v->addrs, v->naddrs, sizeof(*arr));
	if (arr == NULL)
		return -1;
	v->addrs = arr;
	arr[v->naddrs++] = a;
	return 0;
}

static int kw_peer(struct conf_ctx *ctx, const struct conf_stmt *st, struct conf_vrrp *v)
{
	struct util_addr a, *arr;

	if (util_addr_parse_host(st->args[1].text, &a) < 0) {
		conf_error_arg(ctx, st, 1,
			       "bad peer address '%s' (expected an IPv4 or IPv6 "
			       "address)",
			       st->args[1].text);
		return -1;
	}
	for (size_t i = 0; i < v->npeers; i++) {
		if (util_addr_equal(&v->peers[i], &a)) {
			conf_error_arg(ctx, st, 1, "duplicate peer '%s'", st->args[1].text);
			return -1;
		}
	}
	if (v->npeers >= CONF_VRRP_MAX_PEERS) {
		conf_error_arg(ctx, st, 1, "too many peers (at most %d)", CONF_VRRP_MAX_PEERS);
		return -1;
	}
	arr = conf_array_grow(ctx, st, v->peers, v->npeers, sizeof(*arr));
	if (arr == NULL)
		return -1;
	v->peers = arr;
	arr[v->npeers++] = a;
	return 0;
}

/* track interface IF weight N | track pool NAME weight N */
static int kw_track(struct conf_ctx *ctx, const struct conf_stmt *st, struct conf_vrrp *v)
{
	struct conf_vrrp_track t, *arr;
	const char *kind = st->args[1].text;

	memset(&t, 0, sizeof(t));
	if (strcmp(kind, "interface") == 0) {
		t.kind = CONF_VRRP_TRACK_INTERFACE;
		if (conf_arg_ifname(ctx, st, 2, t.name) < 0)
			return -1;
	} else if (strcmp(kind, "pool") == 0) {
		t.kind = CONF_VRRP_TRACK_POOL;
		if (st->args[2].len >= CONF_NAME_MAX ||
		    strlen(st->args[2].text) != st->args[2].len) {
			conf_error_arg(ctx, st, 2, "bad pool name '%s'", st->args[2].text);
			return -1;
		}
		memcpy(t.name, st->args[2].text, st->args[2].len + 1);
	} else {
		conf_error_arg(ctx, st, 1, "unknown track kind '%s' (expected interface or pool)",
			       kind);
		return -1;
	}
	where_of(&st->args[2], &t.where);
	if (st->nargs != 5 || strcmp(st->args[3].text, "weight") != 0) {
		conf_error_arg(ctx, st, st->nargs > 3 ? 3 : st->nargs - 1,
			       "expected 'weight N' after the %s name", kind);
		return -1;
	}
	if (conf_arg_u32(ctx, st, 4, "weight", 1, 254, &t.weight) < 0)
		return -1;
	for (size_t i = 0; i < v->ntracks; i++) {
		if (v->tracks[i].kind == t.kind && strcmp(v->tracks[i].name, t.name) == 0) {
			conf_error_arg(ctx, st, 2, "%s '%s' is tracked twice (first at line %u)",
				       kind, t.name, v->tracks[i].where.line);
			return -1;
		}
	}
	if (v->ntracks >= CONF_VRRP_MAX_TRACKS) {
		conf_error_arg(ctx, st, 1, "too many tracks (at most %d)", CONF_VRRP_MAX_TRACKS);
		return -1;
	}
	arr = conf_array_grow(ctx, st, v->tracks, v->ntracks, sizeof(*arr));
	if (arr == NULL)
		return -1;
	v->tracks = arr;
	arr[v->ntracks++] = t;
	return 0;
}

/* garp [repeat N] [delay D] [refresh D] */
static int kw_garp(struct conf_ctx *ctx, const struct conf_stmt *st, struct conf_vrrp *v)
{
	for (size_t i = 1; i < st->nargs; i += 2) {
		const char *opt = st->args[i].text;

		if (strcmp(opt, "repeat") != 0 && strcmp(opt, "delay") != 0 &&
		    strcmp(opt, "refresh") != 0) {
			conf_error_arg(ctx, st, i,
				       "unknown garp option '%s' (expected repeat N, "
				       "delay DURATION or refresh DURATION)",
				       opt);
			return -1;
		}
		if (i + 1 >= st->nargs) {
			conf_error_arg(ctx, st, i, "'%s' needs a value", opt);
			return -1;
		}
		if (strcmp(opt, "repeat") == 0) {
			if (conf_arg_u32(ctx, st, i + 1, "garp repeat", 1, 100, &v->garp_repeat) <
			    0)
				return -1;
		} else if (strcmp(opt, "delay") == 0) {
			if (v_duration(ctx, st, i + 1, "garp delay", &v->garp_delay_ms) < 0)
				return -1;
		} else if (v_duration(ctx, st, i + 1, "garp refresh", &v->garp_refresh_ms) < 0) {
			return -1;
		} else if (v->garp_refresh_ms != 0 && v->garp_refresh_ms < 1000) {
			conf_error_arg(ctx, st, i + 1,
				       "garp refresh '%s' too short (at least 1s, or "
				       "0s for none)",
				       st->args[i + 1].text);
			return -1;
		}
	}
	return 0;
}

static int kw_notify(struct conf_ctx *ctx, const struct conf_stmt *st, struct conf_vrrp *v)
{
	if (st->args[1].text[0] != '/' || st->args[1].len >= sizeof(v->notify) ||
	    strlen(st->args[1].text) != st->args[1].len) {
		conf_error_arg(ctx, st, 1, "notify must be an absolute path shorter than %zu bytes",
			       sizeof(v->notify));
		return -1;
	}
	memcpy(v->notify, st->args[1].text, st->args[1].len + 1);
	return 0;
}

static int kw_checksum(struct conf_ctx *ctx, const struct conf_stmt *st, struct conf_vrrp *v)
{
	const char *s = st->args[1].text;

	if (strcmp(s, "rfc") == 0)
		v->checksum = CONF_VRRP_CSUM_RFC;
	else if (strcmp(s, "pseudo-header") == 0)
		v->checksum = CONF_VRRP_CSUM_PSEUDO;
	else {
		conf_error_arg(ctx, st, 1,
			       "unknown checksum form '%s' (expected rfc or "
			       "pseudo-header)",
			       s);
		return -1;
	}
	return 0;
}

static const struct vrrp_kw vrrp_kws[] = {
    {"interface", 2, 2, kw_interface, "interface NAME;"},
    {"vrid", 2, 2, kw_vrid, "vrid 1-255;"},
    {"priority", 2, 2, kw_priority, "priority 1-255;"},
    {"advert", 2, 2, kw_advert, "advert DURATION;"},
    {"version", 2, 2, kw_version, "version 2|3;"},
    {"preempt", 2, 2, kw_preempt, "preempt on|off;"},
    {"preempt-delay", 2, 2, kw_preempt_delay, "preempt-delay DURATION;"},
    {"address", 2, 4, kw_address, "address ADDRESS[/PREFIX] [dev IF];"},
    {"peer", 2, 2, kw_peer, "peer ADDRESS;"},
    {"track", 5, 5, kw_track, "track interface IF weight N; or track pool NAME weight N;"},
    {"garp", 3, 7, kw_garp, "garp [repeat N] [delay DURATION] [refresh DURATION];"},
    {"notify", 2, 2, kw_notify, "notify PATH;"},
    {"checksum", 2, 2, kw_checksum, "checksum rfc|pseudo-header;"},
    {NULL, 0, 0, NULL, NULL},
};

void conf_vrrp_keywords(conf_keyword_fn fn, void *arg)
{
	for (size_t k = 0; vrrp_kws[k].name != NULL; k++)
		fn(arg, "vrrp", vrrp_kws[k].name, vrrp_kws[k].usage, false);
}

/* Dispatch the statements of the block, with the messages of run_block. */
static void vrrp_run(struct conf_ctx *ctx, const struct conf_stmt *block, const char *where,
		     struct conf_vrrp *v, struct vrrp_seen *seen)
{
	for (size_t i = 0; i < block->nkids; i++) {
		const struct conf_stmt *st = &block->kids[i];
		const struct vrrp_kw *kw = NULL;

		for (size_t k = 0; vrrp_kws[k].name != NULL; k++)
			if (strcmp(vrrp_kws[k].name, st->args[0].text) == 0)
				kw = &vrrp_kws[k];
		if (kw == NULL) {
			char names[512];
			size_t off = 0;

			names[0] = '\0';
			for (size_t k = 0; vrrp_kws[k].name != NULL; k++)
				util_bufprintf(names, sizeof(names), &off, "%s%s", k ? ", " : "",
					       vrrp_kws[k].name);
			conf_error(ctx, st->args[0].line, st->args[0].col, st->args[0].text,
				   "unknown keyword '%s' in %s (expected one of: %s)",
				   st->args[0].text, where, names);
			continue;
		}
		if (st->has_block) {
			conf_error(ctx, st->args[0].line, st->args[0].col, st->args[0].text,
				   "'%s' takes no block (expected ';'): %s", kw->name, kw->usage);
			continue;
		}
		if (st->nargs < kw->min_args) {
			conf_error_arg(ctx, st, st->nargs - 1, "missing argument: %s", kw->usage);
			continue;
		}
		if (st->nargs > kw->max_args) {
			conf_error_arg(ctx, st, kw->max_args, "too many arguments: %s", kw->usage);
			continue;
		}
		if (kw->fn(ctx, st, v) == 0) {
			if (kw->fn == kw_advert)
				seen->advert = &st->args[1];
			else if (kw->fn == kw_version)
				seen->version = &st->args[1];
		}
	}
}

/* What one block needs as a whole: required keywords, advert vs version. */
static void vrrp_check(struct conf_ctx *ctx, const struct conf_stmt *st, struct conf_vrrp *v,
		       const struct vrrp_seen *seen)
{
	const struct conf_tok *n = &st->args[1];

	if (v->interface[0] == '\0')
		conf_error(ctx, n->line, n->col, n->text,
			   "vrrp '%s' has no interface (expected 'interface NAME;')", v->name);
	if (v->vrid == 0)
		conf_error(ctx, n->line, n->col, n->text,
			   "vrrp '%s' has no vrid (expected 'vrid 1-255;')", v->name);
	if (v->naddrs == 0)
		conf_error(ctx, n->line, n->col, n->text,
			   "vrrp '%s' has no address (expected 'address ADDRESS[/PREFIX];')",
			   v->name);
	if (v->version == 2 && v->advert_ms % 1000 != 0) {
		const struct conf_tok *t = seen->advert != NULL ? seen->advert : n;

		conf_error(ctx, t->line, t->col, t->text,
			   "VRRP version 2 advertises whole seconds: advert %llums is not "
			   "possible (use version 3 or 1s-255s)",
			   (unsigned long long)v->advert_ms);
	}
	if (v->version == 2 && v->naddrs > 0 && v->addrs[0].addr.u.sa.sa_family == AF_INET6) {
		const struct conf_tok *t = seen->version != NULL ? seen->version : n;

		conf_error(ctx, t->line, t->col, t->text,
			   "VRRP version 2 is IPv4 only (use version 3 for IPv6 addresses)");
	}
	for (size_t i = 0; i < v->npeers; i++) {
		char buf[UTIL_ADDR_STRLEN];

		if (v->naddrs > 0 && v->peers[i].u.sa.sa_family != v->addrs[0].addr.u.sa.sa_family)
			conf_error(ctx, n->line, n->col, n->text,
				   "vrrp '%s': peer %s is not of the family of its addresses",
				   v->name, util_addr_fmt_host(&v->peers[i], buf, sizeof(buf)));
	}
}

int conf_vrrp_block(struct conf_ctx *ctx, const struct conf_stmt *st, struct conf *c)
{
	struct conf_vrrp *arr, *v;
	struct vrrp_seen seen = {NULL, NULL};
	char where[CONF_NAME_MAX + 16];
	char s[CONF_NAME_MAX];

	if (conf_arg_name(ctx, st, 1, "vrrp", s) < 0)
		return -1;
	for (size_t i = 0; i < c->nvrrps; i++) {
		if (strcmp(c->vrrps[i].name, s) == 0) {
			conf_error_arg(ctx, st, 1, "duplicate vrrp '%s' (first defined at line %u)",
				       s, c->vrrps[i].where.line);
			return -1;
		}
	}
	arr = conf_array_grow(ctx, st, c->vrrps, c->nvrrps, sizeof(*arr));
	if (arr == NULL)
		return -1;
	c->vrrps = arr;
	v = &arr[c->nvrrps++];
	memset(v, 0, sizeof(*v));
	memcpy(v->name, s, sizeof(s));
	where_of(&st->args[1], &v->where);
	v->priority = 100;
	v->advert_ms = 1000;
	v->version = 3;
	v->preempt = true;
	v->garp_repeat = 5;
	v->garp_delay_ms = 5000;
	v->checksum = CONF_VRRP_CSUM_PSEUDO;
	snprintf(where, sizeof(where), "vrrp '%s'", v->name);
	size_t before = ctx->errs->n;

	vrrp_run(ctx, st, where, v, &seen);
	/* A keyword that failed already said what is wrong: no "has no ...". */
	if (ctx->errs->n == before && !ctx->errs->truncated)
		vrrp_check(ctx, st, v, &seen);
	return 0;
}

void conf_vrrp_validate(struct conf_ctx *ctx, struct conf *c)
{
	for (size_t i = 0; i < c->nvrrps; i++) {
		const struct conf_vrrp *v = &c->vrrps[i];

		for (size_t t = 0; t < v->ntracks; t++) {
			const struct conf_vrrp_track *tr = &v->tracks[t];

			if (tr->kind == CONF_VRRP_TRACK_POOL && conf_find_pool(c, tr->name) == NULL)
				conf_error(ctx, tr->where.line, tr->where.col, tr->name,
					   "pool '%s' does not exist", tr->name);
		}
		for (size_t j = 0; j < i; j++) {
			const struct conf_vrrp *o = &c->vrrps[j];

			if (o->vrid == v->vrid && v->vrid != 0 &&
			    strcmp(o->interface, v->interface) == 0 && o->naddrs > 0 &&
			    v->naddrs > 0 &&
			    o->addrs[0].addr.u.sa.sa_family == v->addrs[0].addr.u.sa.sa_family)
				conf_error(ctx, v->where.line, v->where.col, v->name,
					   "vrid %u is used twice on %s (vrrp '%s' and vrrp '%s')",
					   v->vrid, v->interface, o->name, v->name);
		}
	}
}

void conf_vrrp_free(struct conf *c)
{
	for (size_t i = 0; i < c->nvrrps; i++) {
		free(c->vrrps[i].addrs);
		free(c->vrrps[i].peers);
		free(c->vrrps[i].tracks);
	}
	free(c->vrrps);
	c->vrrps = NULL;
	c->nvrrps = 0;
}
