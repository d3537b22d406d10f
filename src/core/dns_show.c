/* dns_show: what the control socket asks of the resolvers: `show
 * resolvers` (every name followed: its answer, TTL left, failures), the
 * Prometheus families of the resolvers, the DNS state of a server for
 * `show servers`, and the lookups of `server add` with a host name, which
 * the client waits for (polled by ctl) while the loop runs on. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"
#include "dns-int.h"
#include "sluice/conf.h"
#include "sluice/ctl.h"
#include "sluice/log.h"
#include "sluice/pool.h"
#include "sluice/resolve.h"
#include "sluice/util.h"

#define SHOW_RECS_TEXT 96 /* a table cell */

/* "12s", "4m03s", "-" */
static const char *left(uint64_t at_ms, uint64_t now_ms, char *buf, size_t len)
{
	uint64_t s;

	if (at_ms == 0)
		return "-";
	s = at_ms > now_ms ? (at_ms - now_ms + 999) / 1000 : 0;
	if (s >= 60)
		snprintf(buf, len, "%llum%02llus", (unsigned long long)(s / 60),
			 (unsigned long long)(s % 60));
	else
		snprintf(buf, len, "%llus", (unsigned long long)s);
	return buf;
}

static void rec_text(const struct resolve_rec *r, char *buf, size_t len)
{
	char a[UTIL_ADDR_STRLEN];

	if (r->target[0] != '\0')
		snprintf(buf, len, "%s:%u=%s", r->target, r->port,
			 util_addr_fmt_host(&r->addr, a, sizeof(a)));
	else
		snprintf(buf, len, "%s", util_addr_fmt_host(&r->addr, a, sizeof(a)));
}

struct show_ctx {
	const char *block;
	bool json, first;
	struct ctl_buf *out;
	uint64_t now;
};

static void show_json(struct show_ctx *x, const struct resolve_name_info *in)
{
	char t[24];

	ctl_buf_printf(x->out, "%s{\"resolvers\":", x->first ? "" : ",");
	x->first = false;
	ctl_json_str(x->out, x->block);
	ctl_buf_printf(x->out, ",\"name\":");
	ctl_json_str(x->out, in->name);
	ctl_buf_printf(
	    x->out,
	    ",\"type\":\"%s\",\"state\":\"%s\",\"from_hosts\":%s,\"ttl\":%u,"
	    "\"ttl_left_ms\":%lld,\"held_left_ms\":%lld,\"next_ms\":%lld,"
	    "\"last_error\":\"%s\",\"failing\":%u,\"queries\":%llu,\"answers\":%llu,"
	    "\"failures_nx\":%llu,\"failures_timeout\":%llu,\"changes\":%llu,"
	    "\"expired\":%llu,\"records\":[",
	    resolve_type_name(in->type), resolve_state_name(in->state),
	    in->from_hosts ? "true" : "false", in->ttl_s,
	    in->expires_ms ? (long long)in->expires_ms - (long long)x->now : -1,
	    in->held_until_ms ? (long long)in->held_until_ms - (long long)x->now : -1,
	    in->next_ms ? (long long)in->next_ms - (long long)x->now : -1,
	    in->last_error != RESOLVE_ERR_NONE ? resolve_error_name(in->last_error) : "",
	    in->failing, (unsigned long long)in->counters.queries,
	    (unsigned long long)in->counters.answers, (unsigned long long)in->counters.failures_nx,
	    (unsigned long long)in->counters.failures_timeout,
	    (unsigned long long)in->counters.changes, (unsigned long long)in->counters.expired);
	for (size_t i = 0; i < in->nrecs; i++) {
		const struct resolve_rec *r = &in->recs[i];
		char a[UTIL_ADDR_STRLEN];

		ctl_buf_printf(x->out, "%s{\"address\":", i ? "," : "");
		ctl_json_str(x->out, util_addr_fmt_host(&r->addr, a, sizeof(a)));
		ctl_buf_printf(x->out, ",\"ttl\":%u", r->ttl);
		if (in->type == RESOLVE_SRV) {
			ctl_buf_printf(x->out, ",\"target\":");
			ctl_json_str(x->out, r->target);
			ctl_buf_printf(x->out, ",\"port\":%u,\"priority\":%u,\"weight\":%u",
				       r->port, r->priority, r->weight);
		}
		ctl_buf_printf(x->out, "}");
	}
	(void)t;
	ctl_buf_printf(x->out, "]}");
}

static void show_row(struct show_ctx *x, const struct resolve_name_info *in)
{
	char recs[SHOW_RECS_TEXT], one[UTIL_ADDR_STRLEN + RESOLVE_NAME_MAX], t1[24], t2[24];
	size_t off = 0;

	recs[0] = '\0';
	for (size_t i = 0; i < in->nrecs; i++) {
		rec_text(&in->recs[i], one, sizeof(one));
		if (off + strlen(one) + 16 >= sizeof(recs)) {
			util_bufprintf(recs, sizeof(recs), &off, " +%zu", in->nrecs - i);
			break;
		}
		util_bufprintf(recs, sizeof(recs), &off, "%s%s", i ? "," : "", one);
	}
	ctl_buf_printf(
	    x->out, "%-10s %-36s %-4s %-7s %-9s %-9s %-8llu %-18s %s\n", x->block, in->name,
	    resolve_type_name(in->type), resolve_state_name(in->state),
	    in->state == RESOLVE_HELD ? left(in->held_until_ms, x->now, t1, sizeof(t1)) : "-",
	    in->nrecs > 0 ? left(in->expires_ms, x->now, t2, sizeof(t2)) : "-",
	    (unsigned long long)(in->counters.failures_nx + in->counters.failures_timeout),
	    in->last_error != RESOLVE_ERR_NONE ? resolve_error_name(in->last_error) : "-",
	    in->nrecs > 0 ? recs : "-");
}

static void show_name(void *arg, const struct resolve_name *n)
{
	struct show_ctx *x = arg;
	struct resolve_name_info in;

	resolve_name_info(n, &in);
	if (x->json)
		show_json(x, &in);
	else
		show_row(x, &in);
}

void core_dns_show(void *arg, bool json, struct ctl_buf *out)
{
	struct core *c = arg;
	struct core_dns *d = c->dns;
	struct show_ctx x = {.json = json, .first = true, .out = out, .now = util_now_ms()};

	if (json)
		ctl_buf_printf(out, "[");
	else
		ctl_buf_printf(out, "%-10s %-36s %-4s %-7s %-9s %-9s %-8s %-18s %s\n", "resolvers",
			       "name", "type", "state", "held", "ttl_left", "failures",
			       "last_error", "answer");
	for (size_t i = 0; d != NULL && i < d->nblocks; i++) {
		x.block = d->blocks[i]->rc.name;
		resolve_foreach(d->blocks[i]->r, show_name, &x);
	}
	ctl_buf_printf(out, json ? "]\n\n" : "\n");
}

/* ---- metrics ---- */

struct metric_ctx {
	struct ctl_buf *out;
	const char *block;
	int which;
};

enum {
	NM_UP,
	NM_HELD,
	NM_FAILURES,
	NM_CHANGES,
	NM_RECORDS,
};

static const struct {
	const char *name, *type, *help;
} name_metrics[] = {
    [NM_UP] = {"sluice_resolver_name_up", "gauge", "1 when the last lookup of the name answered"},
    [NM_HELD] = {"sluice_resolver_name_held", "gauge",
		 "1 while the DNS fails and the last good answer is kept (hold)"},
    [NM_FAILURES] = {"sluice_resolver_name_failures_total", "counter",
		     "Lookups of the name that failed"},
    [NM_CHANGES] = {"sluice_resolver_name_changes_total", "counter",
		    "Answers of the name that changed its records"},
    [NM_RECORDS] = {"sluice_resolver_name_records", "gauge", "Records of the name in use"},
};

static void name_sample(void *arg, const struct resolve_name *n)
{
	struct metric_ctx *x = arg;
	struct resolve_name_info in;
	uint64_t v = 0;

	resolve_name_info(n, &in);
	switch (x->which) {
	case NM_UP:
		v = in.state == RESOLVE_OK;
		break;
	case NM_HELD:
		v = in.state == RESOLVE_HELD;
		break;
	case NM_FAILURES:
		v = in.counters.failures_nx + in.counters.failures_timeout;
		break;
	case NM_CHANGES:
		v = in.counters.changes;
		break;
	case NM_RECORDS:
		v = in.nrecs;
		break;
	}
	ctl_buf_printf(x->out, "%s{resolvers=\"", name_metrics[x->which].name);
	ctl_metrics_label(x->out, x->block);
	ctl_buf_printf(x->out, "\",name=\"");
	ctl_metrics_label(x->out, in.name);
	ctl_buf_printf(x->out, "\",type=\"%s\"} %llu\n", resolve_type_name(in.type),
		       (unsigned long long)v);
}

static void count_name(void *arg, const struct resolve_name *n)
{
	(void)n;
	(*(size_t *)arg)++;
}

void core_dns_metrics(void *arg, struct ctl_buf *out)
{
	static const char *const names[] = {
	    "sluice_resolver_queries_total",	   "sluice_resolver_answers_total",
	    "sluice_resolver_failures_total",	   "sluice_resolver_changes_total",
	    "sluice_resolver_holds_expired_total",
	};
	static const char *const helps[] = {
	    "DNS queries sent (a name's A and AAAA count as two)",
	    "Lookups that gave a usable answer",
	    "Lookups that failed, by the hold that applies (nx or timeout)",
	    "Answers that changed the records of a name",
	    "Names whose hold ran out while the DNS failed (their records given up)",
	};
	struct core *c = arg;
	struct core_dns *d = c->dns;
	size_t nnames = 0;

	if (d == NULL)
		return;
	for (size_t k = 0; k < UTIL_ARRAY_LEN(names); k++) {
		ctl_metrics_family(out, names[k], "counter", helps[k]);
		for (size_t i = 0; i < d->nblocks; i++) {
			const struct resolve_counters *rc = resolve_counters_of(d->blocks[i]->r);
			const char *b = d->blocks[i]->rc.name;

			if (k == 2) {
				ctl_buf_printf(out, "%s{resolvers=\"", names[k]);
				ctl_metrics_label(out, b);
				ctl_buf_printf(out, "\",kind=\"nx\"} %llu\n",
					       (unsigned long long)rc->failures_nx);
				ctl_buf_printf(out, "%s{resolvers=\"", names[k]);
				ctl_metrics_label(out, b);
				ctl_buf_printf(out, "\",kind=\"timeout\"} %llu\n",
					       (unsigned long long)rc->failures_timeout);
				continue;
			}
			ctl_buf_printf(out, "%s{resolvers=\"", names[k]);
			ctl_metrics_label(out, b);
			ctl_buf_printf(out, "\"} %llu\n",
				       (unsigned long long)(k == 0   ? rc->queries
							    : k == 1 ? rc->answers
							    : k == 3 ? rc->changes
								     : rc->expired));
		}
	}
	for (size_t i = 0; i < d->nblocks; i++)
		resolve_foreach(d->blocks[i]->r, count_name, &nnames);
	for (int m = 0; m < (int)UTIL_ARRAY_LEN(name_metrics) && nnames > 0; m++) {
		struct metric_ctx x = {.out = out, .which = m};

		ctl_metrics_family(out, name_metrics[m].name, name_metrics[m].type,
				   name_metrics[m].help);
		for (size_t i = 0; i < d->nblocks; i++) {
			x.block = d->blocks[i]->rc.name;
			resolve_foreach(d->blocks[i]->r, name_sample, &x);
		}
	}
}

/* ---- a server's DNS state ---- */

void core_dns_server_status(void *arg, const struct pool_server *s, char *buf, size_t len)
{
	struct core *c = arg;
	struct core_dns_block *blk;
	struct resolve_name *n;
	struct resolve_name_info in;
	char t[24];

	buf[0] = '\0';
	if (s->host == NULL || c->dns == NULL)
		return;
	if (s->dns_gone) {
		snprintf(buf, len, "gone: %s (draining)", s->host);
		return;
	}
	blk = core_dns_block_of(c->dns, s->pool->name);
	n = blk != NULL
		? resolve_find(blk->r, s->dns_origin == POOL_DNS_SRV ? RESOLVE_SRV : RESOLVE_ADDR,
			       s->host)
		: NULL;
	if (n == NULL) {
		snprintf(buf, len, "%s: not followed", s->host);
		return;
	}
	resolve_name_info(n, &in);
	switch (in.state) {
	case RESOLVE_OK:
		snprintf(buf, len, "%s: ok", s->host);
		break;
	case RESOLVE_HELD:
		snprintf(buf, len, "%s: held, %s (%s left)", s->host,
			 resolve_error_name(in.last_error),
			 left(in.held_until_ms, util_now_ms(), t, sizeof(t)));
		break;
	case RESOLVE_FAILED:
		snprintf(buf, len, "%s: failed, %s", s->host, resolve_error_name(in.last_error));
		break;
	case RESOLVE_PENDING:
		snprintf(buf, len, "%s: pending", s->host);
		break;
	}
}

/* ---- server add with a host name ---- */

static void on_lookup(void *arg, struct resolve_watch *w, bool changed)
{
	(void)arg;
	(void)w;
	(void)changed; /* polled by the waiting client */
}

static void lookup_release(struct dns_lookup *l)
{
	resolve_unwatch(l->w);
	memset(l, 0, sizeof(*l));
}

int core_dns_lookup_start(void *arg, const char *pool, const char *host, uint64_t *id, char *msg,
			  size_t len)
{
	struct core *c = arg;
	struct core_dns *d = c->dns;
	struct core_dns_block *blk = d != NULL ? core_dns_block_of(d, pool) : NULL;
	struct dns_lookup *l = NULL;

	for (size_t i = 0; d != NULL && i < DNS_LOOKUPS_MAX && l == NULL; i++)
		if (d->lookups[i].id == 0)
			l = &d->lookups[i];
	if (blk == NULL) {
		snprintf(msg, len, "no resolver for pool %s", pool);
		return -1;
	}
	if (l == NULL) {
		snprintf(msg, len, "too many lookups running (%d); try again", DNS_LOOKUPS_MAX);
		return -1;
	}
	l->w = resolve_watch(blk->r, RESOLVE_ADDR, host, on_lookup, NULL);
	if (l->w == NULL) {
		snprintf(msg, len, "out of memory");
		return -1;
	}
	l->id = ++d->lookup_seq;
	l->blk = blk;
	l->lookups0 = resolve_name_lookups(resolve_watch_name(l->w));
	l->start_ms = util_now_ms();
	*id = l->id;
	return 0;
}

int core_dns_lookup_result(void *arg, uint64_t id, uint16_t port, struct util_addr *out, char *msg,
			   size_t len)
{
	struct core *c = arg;
	struct core_dns *d = c->dns;
	struct dns_lookup *l = NULL;
	struct resolve_name_info in;
	int rc;

	for (size_t i = 0; d != NULL && i < DNS_LOOKUPS_MAX && l == NULL; i++)
		if (d->lookups[i].id == id && id != 0)
			l = &d->lookups[i];
	if (l == NULL) {
		snprintf(msg, len, "lookup %llu: no longer kept", (unsigned long long)id);
		return -1;
	}
	resolve_name_info(resolve_watch_name(l->w), &in);
	if (in.nrecs > 0) {
		/* the same pick as for a server line: the lowest, IPv4 first */
		*out = in.recs[0].addr;
		util_addr_set_port(out, port);
		rc = 0;
	} else if (resolve_name_lookups(resolve_watch_name(l->w)) > l->lookups0) {
		snprintf(msg, len, "%s", resolve_error_name(in.last_error));
		rc = -1;
	} else if (util_now_ms() - l->start_ms >= 2000) {
		snprintf(msg, len, "no answer within 2000ms");
		rc = -1;
	} else {
		return 1;
	}
	lookup_release(l);
	return rc;
}

void core_dns_lookups_expire(struct core_dns *d)
{
	uint64_t now = util_now_ms();

	/* a client that went away leaves its lookup: dropped after 10 s */
	for (size_t i = 0; i < DNS_LOOKUPS_MAX; i++)
		if (d->lookups[i].id != 0 && now - d->lookups[i].start_ms > 10000)
			lookup_release(&d->lookups[i]);
}

void core_dns_lookups_drop_block(struct core_dns *d, const struct core_dns_block *blk)
{
	for (size_t i = 0; i < DNS_LOOKUPS_MAX; i++)
		if (d->lookups[i].id != 0 && d->lookups[i].blk == blk)
			lookup_release(&d->lookups[i]);
}

void core_dns_lookups_free(struct core_dns *d)
{
	for (size_t i = 0; i < DNS_LOOKUPS_MAX; i++)
		if (d->lookups[i].id != 0)
			lookup_release(&d->lookups[i]);
}
