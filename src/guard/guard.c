/* guard: a listener's admission policy. The control thread owns the
 * configuration (file table, allow/deny lines, default, runtime entries,
 * limits) and publishes two immutable snapshots, the ACL and the limits,
 * which workers read without a lock in guard_admit(); replaced snapshots
 * are freed through QSBR. The limit tables belong to the guard: a table
 * that a new shape superseded stays, still counting the connections it
 * admitted, until the last of them closed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "guard-int.h"
#include "sluice/guard.h"
#include "sluice/util.h"

/* The ACL as the workers see it. Owns a reference to each table. */
struct guard_acl {
	struct guard_lpm *file;	 /* allow/deny files; NULL: none */
	struct guard_lpm *small; /* lines and runtime entries; NULL: none */
	enum guard_action dflt;
};

/* The limits as the workers see it; the table belongs to the guard. */
struct guard_lim {
	struct guard_limits lim;
	struct guard_table *table;
};

struct rt_entry {
	struct guard_rule r;
	uint64_t wall_ms; /* expiry on the wall clock (state file); 0: none */
};

struct guard {
	_Atomic(struct guard_acl *) acl; /* NULL: admit everyone */
	_Atomic(struct guard_lim *) lim; /* NULL: no per-source limit */
	_Atomic uint64_t refused[GUARD_NVERDICTS];
	struct qsbr *qsbr;
	/* control thread only */
	struct guard_lpm *file;
	char *file_id;
	struct guard_rule *lines;
	size_t nlines;
	enum guard_action dflt;
	struct rt_entry *rt;
	size_t nrt;
	struct guard_table *table; /* current; NULL without limits */
	struct guard_table **old;  /* superseded, newest first, chained */
	uint64_t *old_mark;	   /* QSBR mark of each one's superseding */
	size_t nold;
	uint64_t evictions_gone; /* of tables freed since */
};

static const char *const verdict_names[] = {
    [GUARD_OK] = "ok",
    [GUARD_REFUSE_ACL] = "acl",
    [GUARD_REFUSE_CONNS] = "conns",
    [GUARD_REFUSE_RATE] = "rate",
    [GUARD_REFUSE_TABLE_FULL] = "table-full",
};

const char *guard_verdict_name(enum guard_verdict v)
{
	return verdict_names[v];
}

struct guard *guard_new(struct qsbr *q)
{
	struct guard *g = calloc(1, sizeof(*g));

	if (g == NULL)
		return NULL;
	g->qsbr = q;
	g->dflt = GUARD_ALLOW;
	return g;
}

static void acl_free(void *obj)
{
	struct guard_acl *a = obj;

	if (a == NULL)
		return;
	guard_lpm_put(a->file);
	guard_lpm_put(a->small);
	free(a);
}

static void table_free(void *obj)
{
	guard_table_free(obj);
}

void guard_free(struct guard *g)
{
	if (g == NULL)
		return;
	acl_free(atomic_load(&g->acl));
	free(atomic_load(&g->lim));
	guard_table_free(g->table);
	for (size_t i = 0; i < g->nold; i++)
		guard_table_free(g->old[i]);
	free(g->old);
	free(g->old_mark);
	guard_lpm_put(g->file);
	free(g->file_id);
	free(g->lines);
	free(g->rt);
	free(g);
}

/* ---- the ACL ---- */

/* Build and publish the ACL from the control thread's copy. Returns 0 or
 * -1 (no memory: the published one stays). */
static int publish_acl(struct guard *g)
{
	struct guard_lpm_builder *b = NULL;
	struct guard_acl *a = NULL, *old;

	if (g->nlines + g->nrt > 0) {
		b = guard_lpm_builder_new();
		if (b == NULL)
			return -1;
		for (size_t i = 0; i < g->nlines; i++)
			if (guard_lpm_builder_add(b, &g->lines[i]) < 0)
				goto fail;
		for (size_t i = 0; i < g->nrt; i++)
			if (guard_lpm_builder_add(b, &g->rt[i].r) < 0)
				goto fail;
	}
	/* nothing to decide: the accept path skips the lookups */
	if (b != NULL || g->file != NULL || g->dflt != GUARD_ALLOW) {
		a = calloc(1, sizeof(*a));
		if (a == NULL)
			goto fail;
		a->dflt = g->dflt;
		if (b != NULL && (a->small = guard_lpm_build(b)) == NULL) {
			free(a);
			return -1; /* build freed b */
		}
		a->file = g->file;
		if (a->file != NULL)
			guard_lpm_get(a->file);
	}
	old = atomic_exchange_explicit(&g->acl, a, memory_order_acq_rel);
	if (old != NULL && qsbr_retire(g->qsbr, old, acl_free) < 0)
		return 0; /* leaked rather than freed under a reader */
	return 0;
fail:
	guard_lpm_builder_free(b);
	return -1;
}

int guard_set_acl(struct guard *g, struct guard_lpm *file, const char *file_id,
		  const struct guard_rule *lines, size_t n, enum guard_action dflt)
{
	struct guard_rule *nl = n > 0 ? malloc(n * sizeof(*nl)) : NULL;
	char *id = strdup(file_id != NULL ? file_id : "");
	struct guard_rule *ol = g->lines;
	struct guard_lpm *of = g->file;
	char *oid = g->file_id;
	size_t on = g->nlines;
	enum guard_action od = g->dflt;

	if ((n > 0 && nl == NULL) || id == NULL) {
		free(nl);
		free(id);
		return -1;
	}
	if (n > 0)
		memcpy(nl, lines, n * sizeof(*nl));
	if (file != NULL)
		guard_lpm_get(file);
	g->lines = nl;
	g->nlines = n;
	g->file = file;
	g->file_id = id;
	g->dflt = dflt;
	if (publish_acl(g) < 0) {
		g->lines = ol;
		g->nlines = on;
		g->file = of;
		g->file_id = oid;
		g->dflt = od;
		guard_lpm_put(file);
		free(nl);
		free(id);
		return -1;
	}
	guard_lpm_put(of);
	free(oid);
	free(ol);
	return 0;
}

const char *guard_file_id(const struct guard *g)
{
	return g->file_id != NULL ? g->file_id : "";
}

struct guard_lpm *guard_file_table(const struct guard *g)
{
	return g->file;
}

enum guard_action guard_default(const struct guard *g)
{
	return g->dflt;
}

int guard_acl_add(struct guard *g, const struct util_cidr *c, enum guard_action action,
		  uint64_t expires_ms, uint64_t expires_wall_ms, char *err, size_t errlen)
{
	struct rt_entry e = {.r = {.cidr = *c,
				   .action = action,
				   .origin = GUARD_ORIGIN_RUNTIME,
				   .expires_ms = expires_ms},
			     .wall_ms = expires_wall_ms};
	struct rt_entry *arr, saved;
	size_t i;

	for (i = 0; i < g->nrt && !util_cidr_equal(&g->rt[i].r.cidr, c); i++)
		;
	if (i == g->nrt) {
		if (g->nrt >= GUARD_RUNTIME_MAX) {
			snprintf(
			    err, errlen,
			    "%d runtime entries already (put long lists in an allow/deny file)",
			    GUARD_RUNTIME_MAX);
			return -1;
		}
		arr = realloc(g->rt, (g->nrt + 1) * sizeof(*arr));
		if (arr == NULL) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		g->rt = arr;
		g->rt[g->nrt++] = e;
		if (publish_acl(g) == 0)
			return 0;
		g->nrt--;
	} else {
		saved = g->rt[i];
		g->rt[i] = e;
		if (publish_acl(g) == 0)
			return 0;
		g->rt[i] = saved;
	}
	snprintf(err, errlen, "out of memory");
	return -1;
}

int guard_acl_del(struct guard *g, const struct util_cidr *c)
{
	struct rt_entry saved;
	size_t i;

	for (i = 0; i < g->nrt && !util_cidr_equal(&g->rt[i].r.cidr, c); i++)
		;
	if (i == g->nrt)
		return -1;
	saved = g->rt[i];
	memmove(&g->rt[i], &g->rt[i + 1], (g->nrt - i - 1) * sizeof(*g->rt));
	g->nrt--;
	if (publish_acl(g) == 0)
		return 0;
	memmove(&g->rt[i + 1], &g->rt[i], (g->nrt - i) * sizeof(*g->rt));
	g->rt[i] = saved;
	g->nrt++;
	return -2;
}

size_t guard_acl_expire(struct guard *g, uint64_t now_ms)
{
	size_t keep = 0, n = g->nrt;

	for (size_t i = 0; i < n; i++) {
		uint64_t exp = g->rt[i].r.expires_ms;

		if (exp == 0 || now_ms < exp)
			g->rt[keep++] = g->rt[i];
	}
	if (keep == n)
		return 0;
	g->nrt = keep;
	/* on no memory the published table still ignores them (expired) */
	publish_acl(g);
	return n - keep;
}

uint64_t guard_acl_next_expiry(const struct guard *g)
{
	uint64_t next = 0;

	for (size_t i = 0; i < g->nrt; i++) {
		uint64_t exp = g->rt[i].r.expires_ms;

		if (exp != 0 && (next == 0 || exp < next))
			next = exp;
	}
	return next;
}

void guard_acl_each(const struct guard *g, guard_rule_fn fn, void *arg)
{
	for (size_t i = 0; i < g->nlines; i++)
		fn(arg, &g->lines[i], 0);
	for (size_t i = 0; i < g->nrt; i++)
		fn(arg, &g->rt[i].r, g->rt[i].wall_ms);
}

/* ---- limits ---- */

/* The current table is superseded: it joins the old ones, newest first.
 * A worker that loaded the limits before they changed may still admit into
 * it (and hold a ticket), so it may go only once every worker passed the
 * mark taken when the new limits are published (guard_reclaim). */
static int supersede(struct guard *g)
{
	struct guard_table **arr;
	uint64_t *marks;

	if (g->table == NULL)
		return 0;
	arr = realloc(g->old, (g->nold + 1) * sizeof(*arr));
	if (arr != NULL)
		g->old = arr;
	marks = realloc(g->old_mark, (g->nold + 1) * sizeof(*marks));
	if (marks != NULL)
		g->old_mark = marks;
	if (arr == NULL || marks == NULL)
		return -1;
	memmove(&arr[1], &arr[0], g->nold * sizeof(*arr));
	memmove(&marks[1], &marks[0], g->nold * sizeof(*marks));
	arr[0] = g->table;     /* its older link already points to arr[1] */
	marks[0] = UINT64_MAX; /* set once the new limits are published */
	g->nold++;
	g->table = NULL;
	return 0;
}

int guard_set_limits(struct guard *g, const struct guard_limits_conf *lc)
{
	struct guard_lim *nl = NULL, *old;
	struct guard_table *nt = g->table;

	if (lc != NULL && (lc->conns != 0 || lc->rate != 0)) {
		nl = calloc(1, sizeof(*nl));
		if (nl == NULL)
			return -1;
		nl->lim.conns = lc->conns;
		if (lc->rate != 0) {
			nl->lim.interval_us = UTIL_MAX(lc->period_ms * 1000 / lc->rate, 1);
			nl->lim.tau_us =
			    (uint64_t)(UTIL_MAX(lc->burst, 1) - 1) * nl->lim.interval_us;
		}
		if (nt == NULL || !guard_table_same_shape(nt, lc->table, lc->group4, lc->group6)) {
			nt = guard_table_new(lc->table, lc->group4, lc->group6);
			if (nt == NULL || supersede(g) < 0) {
				guard_table_free(nt);
				free(nl);
				return -1;
			}
			guard_table_set_older(nt, g->nold > 0 ? g->old[0] : NULL);
		}
		nl->table = nt;
	} else if (supersede(g) < 0) {
		return -1;
	}
	g->table = nl != NULL ? nt : NULL;
	old = atomic_exchange_explicit(&g->lim, nl, memory_order_acq_rel);
	if (g->nold > 0 && g->old_mark[0] == UINT64_MAX)
		g->old_mark[0] = qsbr_mark(g->qsbr);
	if (old != NULL)
		qsbr_retire(g->qsbr, old, free);
	return 0;
}

void guard_reclaim(struct guard *g)
{
	for (size_t k = g->nold; k-- > 0;) {
		struct guard_table *t = g->old[k], *prev = k > 0 ? g->old[k - 1] : g->table;

		/* no worker admits into it any more, and none of its
		 * connections is open */
		if (!qsbr_passed(g->qsbr, g->old_mark[k]) || !guard_table_drained(t))
			continue;
		if (prev != NULL)
			guard_table_set_older(prev, guard_table_older(t));
		g->evictions_gone += guard_table_evictions(t);
		memmove(&g->old[k], &g->old[k + 1], (g->nold - k - 1) * sizeof(*g->old));
		memmove(&g->old_mark[k], &g->old_mark[k + 1],
			(g->nold - k - 1) * sizeof(*g->old_mark));
		g->nold--;
		if (qsbr_retire(g->qsbr, t, table_free) < 0)
			continue; /* leaked rather than freed under a reader */
	}
}

/* ---- admission ---- */

static enum guard_action decide(const struct guard_acl *acl, const struct util_addr *a,
				uint64_t now_ms)
{
	enum guard_action fa = acl->dflt, sa = acl->dflt;
	int lf = acl->file != NULL ? guard_lpm_lookup(acl->file, a, now_ms, &fa) : -1;
	int ls = acl->small != NULL ? guard_lpm_lookup(acl->small, a, now_ms, &sa) : -1;

	/* the longest prefix decides; on an equal one, a line or a runtime
	 * entry over a file */
	if (ls >= 0 && ls >= lf)
		return sa;
	return lf >= 0 ? fa : acl->dflt;
}

bool guard_active(const struct guard *g)
{
	return g != NULL && (atomic_load_explicit(&g->acl, memory_order_relaxed) != NULL ||
			     atomic_load_explicit(&g->lim, memory_order_relaxed) != NULL);
}

enum guard_verdict guard_admit(struct guard *g, const struct util_addr *a, uint64_t now_us,
			       struct guard_ticket *t)
{
	struct guard_acl *acl = atomic_load_explicit(&g->acl, memory_order_acquire);
	struct guard_lim *lim;
	enum guard_verdict v = GUARD_REFUSE_ACL;

	t->t = NULL;
	if (acl == NULL || decide(acl, a, now_us / 1000) == GUARD_ALLOW) {
		lim = atomic_load_explicit(&g->lim, memory_order_acquire);
		if (lim == NULL)
			return GUARD_OK;
		v = guard_table_admit(lim->table, &lim->lim, a, now_us, t);
		if (v == GUARD_OK)
			return GUARD_OK;
	}
	atomic_fetch_add_explicit(&g->refused[v], 1, memory_order_relaxed);
	return v;
}

void guard_release(struct guard_ticket *t, uint64_t now_us)
{
	if (t->t == NULL)
		return;
	guard_table_release(t->t, t->idx, now_us);
	t->t = NULL;
}

/* ---- reporting ---- */

void guard_stats(const struct guard *g, struct guard_stats *out)
{
	memset(out, 0, sizeof(*out));
	for (int v = 0; v < GUARD_NVERDICTS; v++)
		out->refused[v] = atomic_load_explicit(&g->refused[v], memory_order_relaxed);
	out->evictions = g->evictions_gone;
	if (g->table != NULL) {
		out->capacity = guard_table_capacity(g->table);
		out->sources = guard_table_used(g->table);
		out->memory_bytes = guard_table_memory(g->table);
		out->evictions += guard_table_evictions(g->table);
	}
	for (size_t i = 0; i < g->nold; i++) {
		out->memory_bytes += guard_table_memory(g->old[i]);
		out->evictions += guard_table_evictions(g->old[i]);
	}
	if (g->file != NULL) {
		out->acl_entries[GUARD_ORIGIN_FILE] = guard_lpm_count(g->file);
		out->memory_bytes += guard_lpm_memory(g->file);
	}
	out->acl_entries[GUARD_ORIGIN_CONFIG] = g->nlines;
	out->acl_entries[GUARD_ORIGIN_RUNTIME] = g->nrt;
}

size_t guard_top_sources(const struct guard *g, uint64_t now_us, struct guard_source *out,
			 size_t max)
{
	return g->table != NULL ? guard_table_top(g->table, now_us, out, max) : 0;
}
