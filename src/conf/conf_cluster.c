/* conf_cluster: the `cluster { ... }` block of second-chance forwarding
 * between nodes: the shared segment, the uplinks, the peers. Called by
 * conf_parse.c's top-level table; pure like the rest of conf. Whether the
 * interfaces exist and the peers are on the segment's subnet is checked by
 * core when it applies the block (the kernel knows, the file does not). */
#include <stdio.h>
#include <string.h>

#include "conf-int.h"
#include "sluice/conf.h"
#include "sluice/util.h"

int conf_arg_ifname(struct conf_ctx *ctx, const struct conf_stmt *st, size_t i, char *out)
{
	const char *s = st->args[i].text;
	size_t n = strlen(s);

	if (n == 0 || n >= CONF_IFNAME_MAX || n != st->args[i].len || strchr(s, '/') != NULL ||
	    strpbrk(s, " \t") != NULL) {
		conf_error_arg(ctx, st, i,
			       "bad interface name '%s' (expected 1-%d characters, no "
			       "'/' or space)",
			       s, CONF_IFNAME_MAX - 1);
		return -1;
	}
	memcpy(out, s, n + 1);
	return 0;
}

static void where_of(const struct conf_tok *t, struct conf_where *w)
{
	w->line = t->line;
	w->col = t->col;
}

static int kw_interface(struct conf_ctx *ctx, const struct conf_stmt *st, void *obj)
{
	struct conf_cluster *cl = obj;

	if (cl->interface[0] != '\0') {
		conf_error_arg(ctx, st, 0,
			       "duplicate 'interface' (first at line %u; the cluster "
			       "has one segment)",
			       cl->interface_where.line);
		return -1;
	}
	where_of(&st->args[1], &cl->interface_where);
	return conf_arg_ifname(ctx, st, 1, cl->interface);
}

static int kw_uplink(struct conf_ctx *ctx, const struct conf_stmt *st, void *obj)
{
	struct conf_cluster *cl = obj;
	char name[CONF_IFNAME_MAX];

	if (conf_arg_ifname(ctx, st, 1, name) < 0)
		return -1;
	for (size_t i = 0; i < cl->nuplinks; i++) {
		if (strcmp(cl->uplinks[i], name) == 0) {
			conf_error_arg(ctx, st, 1, "duplicate uplink '%s' (first at line %u)", name,
				       cl->uplink_where[i].line);
			return -1;
		}
	}
	if (cl->nuplinks >= CONF_CLUSTER_MAX_UPLINKS) {
		conf_error_arg(ctx, st, 1, "too many uplinks (at most %d)",
			       CONF_CLUSTER_MAX_UPLINKS);
		return -1;
	}
	memcpy(cl->uplinks[cl->nuplinks], name, sizeof(name));
	where_of(&st->args[1], &cl->uplink_where[cl->nuplinks]);
	cl->nuplinks++;
	return 0;
}

static int kw_peer(struct conf_ctx *ctx, const struct conf_stmt *st, void *obj)
{
	struct conf_cluster *cl = obj;
	struct conf_cluster_peer p;

	memset(&p, 0, sizeof(p));
	if (conf_arg_name(ctx, st, 1, "peer", p.name) < 0)
		return -1;
	if (util_addr_parse_host(st->args[2].text, &p.addr) < 0) {
		conf_error_arg(ctx, st, 2,
			       "bad peer address '%s' (expected an IPv4 or IPv6 "
			       "address)",
			       st->args[2].text);
		return -1;
	}
	where_of(&st->args[2], &p.where);
	for (size_t i = 0; i < cl->npeers; i++) {
		if (strcmp(cl->peers[i].name, p.name) == 0) {
			conf_error_arg(ctx, st, 1, "duplicate peer '%s' (first at line %u)", p.name,
				       cl->peers[i].where.line);
			return -1;
		}
		if (util_addr_equal(&cl->peers[i].addr, &p.addr)) {
			conf_error_arg(ctx, st, 2, "peer address '%s' is also peer '%s'",
				       st->args[2].text, cl->peers[i].name);
			return -1;
		}
	}
	if (cl->npeers >= CONF_CLUSTER_MAX_PEERS) {
		conf_error_arg(ctx, st, 1, "too many peers (at most %d)", CONF_CLUSTER_MAX_PEERS);
		return -1;
	}
	cl->peers[cl->npeers++] = p;
	return 0;
}

static int kw_attach(struct conf_ctx *ctx, const struct conf_stmt *st, void *obj)
{
	struct conf_cluster *cl = obj;
	const char *s = st->args[1].text;

	if (strcmp(s, "auto") == 0)
		cl->attach = CONF_CLUSTER_ATTACH_AUTO;
	else if (strcmp(s, "tcx") == 0)
		cl->attach = CONF_CLUSTER_ATTACH_TCX;
	else if (strcmp(s, "tc") == 0)
		cl->attach = CONF_CLUSTER_ATTACH_TC;
	else {
		conf_error_arg(ctx, st, 1, "unknown attach mode '%s' (expected auto, tcx or tc)",
			       s);
		return -1;
	}
	return 0;
}

static const struct conf_keyword cluster_kw[] = {
    {"interface", 2, 2, false, kw_interface, "interface NAME;"},
    {"uplink", 2, 2, false, kw_uplink, "uplink NAME;"},
    {"peer", 3, 3, false, kw_peer, "peer NAME ADDRESS;"},
    {"attach", 2, 2, false, kw_attach, "attach auto|tcx|tc;"},
    {NULL, 0, 0, false, NULL, NULL},
};

void conf_cluster_keywords(conf_keyword_fn fn, void *arg)
{
	for (size_t k = 0; cluster_kw[k].name != NULL; k++)
		fn(arg, "cluster", cluster_kw[k].name, cluster_kw[k].usage, false);
}

int conf_cluster_block(struct conf_ctx *ctx, const struct conf_stmt *st, struct conf *c)
{
	struct conf_cluster *cl = &c->cluster;
	const struct conf_tok *kw = &st->args[0];
	size_t before = ctx->errs->n;

	if (cl->present) {
		conf_error(ctx, kw->line, kw->col, kw->text,
			   "duplicate cluster block (first at line %u; a node has one)",
			   cl->where.line);
		return -1;
	}
	memset(cl, 0, sizeof(*cl));
	cl->present = true;
	where_of(kw, &cl->where);
	conf_run_block(ctx, st, cluster_kw, "cluster block", cl);
	if (ctx->errs->n != before || ctx->errs->truncated)
		return 0;
	if (cl->interface[0] == '\0')
		conf_error(ctx, kw->line, kw->col, kw->text,
			   "cluster block has no interface (expected 'interface NAME;')");
	if (cl->nuplinks == 0)
		conf_error(ctx, kw->line, kw->col, kw->text,
			   "cluster block has no uplink (expected 'uplink NAME;')");
	if (cl->npeers == 0)
		conf_error(ctx, kw->line, kw->col, kw->text,
			   "cluster block has no peer (expected 'peer NAME ADDRESS;')");
	return 0;
}
