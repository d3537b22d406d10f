/* ctl_cmd: the control commands. A line is tokenized, looked up in the
 * table (which also says the access level it needs), checked for its
 * argument count, then run. Every error answers "error: ..." and changes
 * nothing; every change of the model is saved to the state file. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctl-int.h"
#include "sluice/log.h"
#include "sluice/pool.h"
#include "sluice/srvopt.h"
#include "sluice/util.h"

#define WAIT_DEFAULT_MS 60000
#define WAIT_MAX_MS 3600000

struct cmd {
	struct ctl *ctl;
	struct ctl_client *cl; /* NULL: waiting commands are refused */
	int argc;
	char **argv;
	bool json;
	struct ctl_buf *out;
};

typedef void (*cmd_fn)(struct cmd *x);

struct cmd_entry {
	const char *w1, *w2;	/* w2 NULL: one-word command */
	int min_args, max_args; /* counting the command words */
	enum ctl_level level;
	cmd_fn fn;
	const char *usage;
};

static void reply_error(struct ctl_buf *out, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void reply_error(struct ctl_buf *out, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	ctl_buf_printf(out, "error: %s\n\n", msg);
}

static void reply_ok(struct cmd *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void reply_ok(struct cmd *x, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (x->json) {
		ctl_buf_printf(x->out, "{\"ok\":true,\"message\":");
		ctl_json_str(x->out, msg);
		ctl_buf_printf(x->out, "}\n\n");
	} else {
		ctl_buf_printf(x->out, "%s\n\n", msg);
	}
}

int ctl_tokenize(char *line, char **argv, int max)
{
	int n = 0;
	char *p = line;

	/* printable ASCII only: names end up in logs, JSON and the state file */
	for (char *q = line; *q != '\0'; q++)
		if (((unsigned char)*q < 0x20 && *q != '\t') || (unsigned char)*q >= 0x7f)
			return -1;
	for (;;) {
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '\0')
			return n;
		if (n == max)
			return -1;
		argv[n++] = p;
		while (*p != '\0' && *p != ' ' && *p != '\t')
			p++;
		if (*p != '\0')
			*p++ = '\0';
	}
}

struct pool *ctl_find_pool(struct ctl *c, const char *name)
{
	size_t n;
	struct pool **pools = c->hooks.pools(c->hooks.arg, &n);

	for (size_t i = 0; i < n; i++)
		if (strcmp(pools[i]->name, name) == 0)
			return pools[i];
	return NULL;
}

struct pool_server *ctl_find_server(struct ctl *c, const char *ref, struct ctl_buf *out)
{
	char pname[POOL_NAME_MAX];
	const char *slash = strchr(ref, '/');
	struct pool_server *s;
	struct pool *p;

	if (slash == NULL || slash == ref || slash[1] == '\0' ||
	    (size_t)(slash - ref) >= sizeof(pname)) {
		reply_error(out, "expected POOL/SERVER, got '%s'", ref);
		return NULL;
	}
	memcpy(pname, ref, (size_t)(slash - ref));
	pname[slash - ref] = '\0';
	p = ctl_find_pool(c, pname);
	if (p == NULL) {
		reply_error(out, "no pool '%s'", pname);
		return NULL;
	}
	s = pool_find_server(p, slash + 1);
	if (s == NULL)
		reply_error(out, "no server '%s' in pool '%s'", slash + 1, pname);
	return s;
}

/* ---- aligned tables (human) ---- */

#define TBL_MAX_COLS 16
#define TBL_CELL 96

struct tbl {
	size_t ncols, nrows;
	char (*cells)[TBL_MAX_COLS][TBL_CELL];
	bool oom;
};

static void tbl_row(struct tbl *t, ...)
{
	char(*c)[TBL_MAX_COLS][TBL_CELL] = realloc(t->cells, (t->nrows + 1) * sizeof(*c));
	va_list ap;

	if (c == NULL) {
		t->oom = true;
		return;
	}
	t->cells = c;
	va_start(ap, t);
	for (size_t i = 0; i < t->ncols; i++)
		util_strlcpy(c[t->nrows][i], va_arg(ap, const char *), TBL_CELL);
	va_end(ap);
	t->nrows++;
}

static void tbl_print(struct tbl *t, struct ctl_buf *out)
{
	size_t w[TBL_MAX_COLS] = {0};

	for (size_t r = 0; r < t->nrows; r++)
		for (size_t i = 0; i < t->ncols; i++)
			w[i] = UTIL_MAX(w[i], strlen(t->cells[r][i]));
	for (size_t r = 0; r < t->nrows; r++) {
		for (size_t i = 0; i < t->ncols; i++)
			if (i + 1 < t->ncols)
				ctl_buf_printf(out, "%-*s  ", (int)w[i], t->cells[r][i]);
			else
				ctl_buf_printf(out, "%s", t->cells[r][i]);
		ctl_buf_printf(out, "\n");
	}
	ctl_buf_printf(out, "\n");
	free(t->cells);
}

static const char *u64s(char *buf, uint64_t v)
{
	snprintf(buf, 24, "%llu", (unsigned long long)v);
	return buf;
}

/* ---- show ---- */

static void cmd_help(struct cmd *x);

static void late_json(struct ctl_buf *out, const char *name, const struct util_lathist_summary *s)
{
	ctl_buf_printf(out,
		       "\"%s\":{\"count\":%llu,\"p50_us\":%llu,\"p99_us\":%llu,\"max_us\":%llu}",
		       name, (unsigned long long)s->n, (unsigned long long)s->p50_us,
		       (unsigned long long)s->p99_us, (unsigned long long)s->max_us);
}

static void late_line(struct ctl_buf *out, const char *what, const struct util_lathist_summary *s)
{
	ctl_buf_printf(
	    out,
	    "late %-14sp50 %llu.%03llums  p99 %llu.%03llums  max %llu.%03llums"
	    "  (%llu)\n",
	    what, (unsigned long long)(s->p50_us / 1000), (unsigned long long)(s->p50_us % 1000),
	    (unsigned long long)(s->p99_us / 1000), (unsigned long long)(s->p99_us % 1000),
	    (unsigned long long)(s->max_us / 1000), (unsigned long long)(s->max_us % 1000),
	    (unsigned long long)s->n);
}

static void cmd_show_info(struct cmd *x)
{
	struct ctl_info in = {0};
	struct log_target_stats ls[LOG_MAX_TARGETS];
	size_t nls = log_stats(ls, LOG_MAX_TARGETS);

	x->ctl->hooks.info(x->ctl->hooks.arg, &in);
	if (x->json) {
		ctl_buf_printf(x->out, "{\"version\":");
		ctl_json_str(x->out, in.version);
		ctl_buf_printf(
		    x->out,
		    ",\"pid\":%d,\"uptime_ms\":%llu,\"workers\":%u,\"maxconn\":%u,"
		    "\"connections\":%u,\"connections_total\":%llu,"
		    "\"maxconn_reached\":%llu,\"bufmem_used\":%llu,\"bufmem\":%llu,"
		    "\"no_memory\":%llu,\"kernel_relay\":%s,\"kernel_relay_conns\":%llu,"
		    "\"kernel_relay_fallbacks\":%llu,\"kernel_relay_broken\":%llu,"
		    "\"kernel_relay_repeats_cut\":%llu,\"config\":",
		    in.pid, (unsigned long long)in.uptime_ms, in.workers, in.maxconn, in.cur_conns,
		    (unsigned long long)in.total_conns, (unsigned long long)in.maxconn_reached,
		    (unsigned long long)in.bufmem_used, (unsigned long long)in.bufmem,
		    (unsigned long long)in.no_memory, in.krelay ? "true" : "false",
		    (unsigned long long)in.krelay_conns, (unsigned long long)in.krelay_fallbacks,
		    (unsigned long long)in.krelay_broken, (unsigned long long)in.krelay_cut);
		ctl_json_str(x->out, in.conf_file);
		ctl_buf_printf(x->out, ",\"last_reload\":");
		ctl_json_str(x->out, in.last_reload);
		ctl_buf_printf(x->out, ",\"reloads_ok\":%llu,\"reloads_failed\":%llu,\"logs\":[",
			       (unsigned long long)in.reloads_ok,
			       (unsigned long long)in.reloads_failed);
		for (size_t i = 0; i < nls; i++) {
			ctl_buf_printf(x->out, "%s{\"target\":", i ? "," : "");
			ctl_json_str(x->out, ls[i].name);
			ctl_buf_printf(x->out, ",\"sent\":%llu,\"dropped\":%llu}",
				       (unsigned long long)ls[i].sent,
				       (unsigned long long)ls[i].dropped);
		}
		ctl_buf_printf(x->out, "],\"log_queue_dropped\":%llu,\"lateness\":{",
			       (unsigned long long)log_queue_dropped());
		late_json(x->out, "checks", &in.late_checks);
		ctl_buf_printf(x->out, ",");
		late_json(x->out, "adverts", &in.late_adverts);
		ctl_buf_printf(x->out, "}}\n\n");
		return;
	}
	ctl_buf_printf(x->out,
		       "version:           %s\npid:               %d\nuptime:            %llus\n"
		       "workers:           %u\nmaxconn:           %u\nconnections:       %u\n"
		       "connections total: %llu\nmaxconn reached:   %llu\n"
		       "bufmem:            %llu of %llu bytes\nno-memory closes:  %llu\n"
		       "config:            %s\nlast reload:       %s\n"
		       "reloads:           %llu ok, %llu failed\n",
		       in.version, in.pid, (unsigned long long)(in.uptime_ms / 1000), in.workers,
		       in.maxconn, in.cur_conns, (unsigned long long)in.total_conns,
		       (unsigned long long)in.maxconn_reached, (unsigned long long)in.bufmem_used,
		       (unsigned long long)in.bufmem, (unsigned long long)in.no_memory,
		       in.conf_file, in.last_reload, (unsigned long long)in.reloads_ok,
		       (unsigned long long)in.reloads_failed);
	if (in.krelay)
		ctl_buf_printf(
		    x->out,
		    "kernel relay:      %llu connections, %llu stayed in user space, %llu "
		    "repeated segments cut, %llu streams reset (bytes lost)\n",
		    (unsigned long long)in.krelay_conns, (unsigned long long)in.krelay_fallbacks,
		    (unsigned long long)in.krelay_cut, (unsigned long long)in.krelay_broken);
	else
		ctl_buf_printf(x->out, "kernel relay:      not loaded\n");
	for (size_t i = 0; i < nls; i++)
		ctl_buf_printf(x->out, "log:               %s: %llu sent, %llu dropped\n",
			       ls[i].name, (unsigned long long)ls[i].sent,
			       (unsigned long long)ls[i].dropped);
	ctl_buf_printf(x->out, "log queue dropped: %llu\n",
		       (unsigned long long)log_queue_dropped());
	late_line(x->out, "checks:", &in.late_checks);
	late_line(x->out, "adverts:", &in.late_adverts);
	ctl_buf_printf(x->out, "\n");
}

static void cmd_clear_lateness(struct cmd *x)
{
	if (x->ctl->hooks.clear_lateness == NULL) {
		reply_error(x->out, "lateness is not measured here");
		return;
	}
	x->ctl->hooks.clear_lateness(x->ctl->hooks.arg);
	log_notice("lateness histograms cleared (control socket)");
	reply_ok(x, "lateness histograms cleared");
}

static uint64_t refused_sum(const struct ctl_listener_row *r)
{
	uint64_t n = 0;

	for (int k = 0; k < CTL_NREFUSALS; k++)
		n += r->refused[k];
	return n;
}

static void listener_json(struct ctl_buf *out, const struct ctl_listener_row *r)
{
	ctl_buf_printf(out, "{\"name\":");
	ctl_json_str(out, r->name);
	ctl_buf_printf(out, ",\"binds\":");
	ctl_json_str(out, r->binds);
	ctl_buf_printf(out, ",\"pool\":");
	if (strcmp(r->pool, "-") == 0) /* TLS routes only */
		ctl_buf_printf(out, "null");
	else
		ctl_json_str(out, r->pool);
	ctl_buf_printf(out,
		       ",\"connections\":%u,\"maxconn\":%u,\"connections_total\":%llu,"
		       "\"bytes_in\":%llu,\"bytes_out\":%llu,\"proxy_header_errors\":%llu,"
		       "\"proxy_header_timeouts\":%llu,\"maxconn_reached\":%llu,\"routes\":%u,"
		       "\"refused\":{",
		       r->cur_conns, r->maxconn, (unsigned long long)r->total_conns,
		       (unsigned long long)r->bytes_in, (unsigned long long)r->bytes_out,
		       (unsigned long long)r->proxy_header_errors,
		       (unsigned long long)r->proxy_header_timeouts,
		       (unsigned long long)r->maxconn_reached, r->nroutes);
	for (int k = 0; k < CTL_NREFUSALS; k++)
		ctl_buf_printf(out, "%s\"%s\":%llu", k ? "," : "", ctl_refusal_names[k],
			       (unsigned long long)r->refused[k]);
	ctl_buf_printf(
	    out,
	    "},\"sources\":%llu,\"sources_capacity\":%llu,"
	    "\"sources_memory_bytes\":%llu,\"source_evictions\":%llu,"
	    "\"acl_entries\":{\"file\":%llu,\"config\":%llu,\"runtime\":%llu}}",
	    (unsigned long long)r->sources, (unsigned long long)r->sources_capacity,
	    (unsigned long long)r->sources_memory_bytes, (unsigned long long)r->source_evictions,
	    (unsigned long long)r->acl_file_entries, (unsigned long long)r->acl_config_entries,
	    (unsigned long long)r->acl_runtime_entries);
}

static void cmd_show_listeners(struct cmd *x)
{
	struct ctl_listener_row rows[256];
	size_t n = x->ctl->hooks.listeners(x->ctl->hooks.arg, rows, UTIL_ARRAY_LEN(rows));
	struct tbl t = {.ncols = 13};
	char b[10][24];

	if (x->json) {
		ctl_buf_printf(x->out, "[");
		for (size_t i = 0; i < n; i++) {
			ctl_buf_printf(x->out, "%s", i ? "," : "");
			listener_json(x->out, &rows[i]);
		}
		ctl_buf_printf(x->out, "]\n\n");
		return;
	}
	tbl_row(&t, "listen", "binds", "pool", "active", "maxconn", "total", "bytes_in",
		"bytes_out", "proxy_errors", "proxy_timeouts", "maxconn_reached", "routes",
		"refused");
	for (size_t i = 0; i < n; i++)
		tbl_row(&t, rows[i].name, rows[i].binds, rows[i].pool,
			u64s(b[0], rows[i].cur_conns), u64s(b[1], rows[i].maxconn),
			u64s(b[2], rows[i].total_conns), u64s(b[3], rows[i].bytes_in),
			u64s(b[4], rows[i].bytes_out), u64s(b[5], rows[i].proxy_header_errors),
			u64s(b[6], rows[i].proxy_header_timeouts),
			u64s(b[7], rows[i].maxconn_reached), u64s(b[8], rows[i].nroutes),
			u64s(b[9], refused_sum(&rows[i])));
	tbl_print(&t, x->out);
}

void ctl_route_desc(const struct ctl_route_row *r, char *buf, size_t len)
{
	if (strcmp(r->kind, "alpn") == 0)
		snprintf(buf, len, "alpn %s", r->alpn);
	else
		snprintf(buf, len, "%s%s%s%s%s", r->kind, r->sni[0] ? " " : "", r->sni,
			 r->alpn[0] ? " alpn " : "", r->alpn);
}

/* TLS routes of every listener (or one): what matches, which pool, and
 * how many connections each took; then the default pool and what was
 * closed before a pool was chosen. */
static void cmd_show_routes(struct cmd *x)
{
	size_t n = 0, total;
	struct ctl_route_row *rows = NULL;
	struct tbl t = {.ncols = 5};
	bool first = true;
	char b[2][24], what[TBL_CELL];

	if (x->ctl->hooks.routes == NULL || x->ctl->hooks.listeners == NULL) {
		reply_error(x->out, "routes are not available");
		return;
	}
	total = x->ctl->hooks.routes(x->ctl->hooks.arg, NULL, 0);
	if (total > 0 && (rows = calloc(total, sizeof(*rows))) == NULL) {
		reply_error(x->out, "out of memory");
		return;
	}
	if (total > 0)
		n = UTIL_MIN(total, x->ctl->hooks.routes(x->ctl->hooks.arg, rows, total));
	if (x->argc == 3) {
		struct ctl_listener_row lrows[256];
		size_t nl =
		    x->ctl->hooks.listeners(x->ctl->hooks.arg, lrows, UTIL_ARRAY_LEN(lrows));
		bool found = false;

		for (size_t i = 0; i < nl; i++)
			found = found || strcmp(lrows[i].name, x->argv[2]) == 0;
		if (!found) {
			reply_error(x->out, "no listener '%s'", x->argv[2]);
			free(rows);
			return;
		}
	}
	if (x->json)
		ctl_buf_printf(x->out, "[");
	else
		tbl_row(&t, "listen", "route", "pool", "active", "total");
	for (size_t i = 0; i < n; i++) {
		const struct ctl_route_row *r = &rows[i];
		bool closed = strcmp(r->kind, "closed") == 0;

		if (x->argc == 3 && strcmp(r->listen, x->argv[2]) != 0)
			continue;
		if (x->json) {
			ctl_buf_printf(x->out, "%s{\"listen\":", first ? "" : ",");
			ctl_json_str(x->out, r->listen);
			ctl_buf_printf(x->out, ",\"kind\":\"%s\",\"sni\":", r->kind);
			ctl_json_str(x->out, r->sni);
			ctl_buf_printf(x->out, ",\"alpn\":");
			ctl_json_str(x->out, r->alpn);
			ctl_buf_printf(x->out, ",\"pool\":");
			if (strcmp(r->pool, "-") == 0)
				ctl_buf_printf(x->out, "null");
			else
				ctl_json_str(x->out, r->pool);
			if (closed)
				ctl_buf_printf(x->out, ",\"reason\":\"%s\"", r->reason);
			else
				ctl_buf_printf(x->out, ",\"active\":%u", r->active);
			ctl_buf_printf(x->out, ",\"connections_total\":%llu}",
				       (unsigned long long)r->total);
			first = false;
			continue;
		}
		if (closed)
			snprintf(what, sizeof(what), "closed: %s", r->reason);
		else
			ctl_route_desc(r, what, sizeof(what));
		tbl_row(&t, r->listen, what, r->pool, closed ? "-" : u64s(b[0], r->active),
			u64s(b[1], r->total));
	}
	if (x->json)
		ctl_buf_printf(x->out, "]\n\n");
	else
		tbl_print(&t, x->out);
	free(rows);
}

static size_t usable_servers(const struct pool *p)
{
	size_t n = 0;

	for (size_t i = 0; i < p->nservers; i++)
		n += pool_server_eligible(p->servers[i]);
	return n;
}

static void cmd_show_pools(struct cmd *x)
{
	size_t n;
	struct pool **pools = x->ctl->hooks.pools(x->ctl->hooks.arg, &n);
	struct tbl t = {.ncols = 9};
	char b[7][24];

	if (x->json) {
		ctl_buf_printf(x->out, "[");
		for (size_t i = 0; i < n; i++) {
			struct pool *p = pools[i];

			ctl_buf_printf(x->out, "%s{\"name\":", i ? "," : "");
			ctl_json_str(x->out, p->name);
			ctl_buf_printf(x->out,
				       ",\"balance\":\"%s\",\"servers\":%zu,\"usable\":%zu,"
				       "\"active\":%u,\"queued\":%u,\"connections_total\":%llu,"
				       "\"no_server\":%llu,\"queue_timeouts\":%llu}",
				       pool_balance_name(p->balance), p->nservers,
				       usable_servers(p), pool_active(p), atomic_load(&p->queued),
				       (unsigned long long)atomic_load(&p->total_conns),
				       (unsigned long long)atomic_load(&p->no_server),
				       (unsigned long long)atomic_load(&p->queue_timeouts));
		}
		ctl_buf_printf(x->out, "]\n\n");
		return;
	}
	tbl_row(&t, "pool", "balance", "servers", "usable", "active", "queued", "total",
		"no_server", "queue_timeouts");
	for (size_t i = 0; i < n; i++) {
		struct pool *p = pools[i];

		tbl_row(&t, p->name, pool_balance_name(p->balance), u64s(b[0], p->nservers),
			u64s(b[1], usable_servers(p)), u64s(b[2], pool_active(p)),
			u64s(b[3], atomic_load(&p->queued)),
			u64s(b[4], atomic_load(&p->total_conns)),
			u64s(b[5], atomic_load(&p->no_server)),
			u64s(b[6], atomic_load(&p->queue_timeouts)));
	}
	tbl_print(&t, x->out);
}

/* The weight new connections see now: slow start ramps it (the snapshot
 * counts in 1/POOL_WEIGHT_SCALE steps). */
static uint32_t effective_weight(const struct pool_server *s)
{
	return (pool_server_lb_weight(s) + POOL_WEIGHT_SCALE - 1) / POOL_WEIGHT_SCALE;
}

/* What the server's host name stands at ("" when it has none). */
static void server_dns(struct ctl *c, const struct pool_server *s, char *buf, size_t len)
{
	buf[0] = '\0';
	if (s->host != NULL && c->hooks.server_dns != NULL)
		c->hooks.server_dns(c->hooks.arg, s, buf, len);
}

static void server_json(struct ctl *c, struct ctl_buf *out, const struct pool_server *s)
{
	char abuf[UTIL_ADDR_STRLEN], dns[POOL_CAUSE_MAX + UTIL_HOST_MAX];

	ctl_buf_printf(out, "{\"pool\":");
	ctl_json_str(out, s->pool->name);
	ctl_buf_printf(out, ",\"server\":");
	ctl_json_str(out, s->name);
	ctl_buf_printf(out, ",\"address\":");
	ctl_json_str(out, util_addr_fmt(&s->addr, abuf, sizeof(abuf)));
	ctl_buf_printf(out,
		       ",\"health\":\"%s\",\"admin\":\"%s\",\"weight\":%u,\"effective_weight\":%u,"
		       "\"backup\":%s,\"maxconn\":%u,\"active\":%u,\"connections_total\":%llu,"
		       "\"bytes_in\":%llu,\"bytes_out\":%llu,\"connect_errors\":%llu,"
		       "\"local_errors\":%llu,\"runtime_added\":%s",
		       pool_health_name(s->health), pool_admin_name(s->admin), s->weight,
		       pool_server_eligible(s) ? effective_weight(s) : 0,
		       s->backup ? "true" : "false", s->maxconn, atomic_load(&s->cur_conns),
		       (unsigned long long)atomic_load(&s->total_conns),
		       (unsigned long long)atomic_load(&s->bytes_in),
		       (unsigned long long)atomic_load(&s->bytes_out),
		       (unsigned long long)atomic_load(&s->connect_errors),
		       (unsigned long long)atomic_load(&s->local_errors),
		       s->runtime_added ? "true" : "false");
	ctl_buf_printf(out, ",\"check\":");
	ctl_json_str(out, s->hs.last_cause[0] ? s->hs.last_cause : "");
	ctl_buf_printf(out, ",\"last_change\":");
	ctl_json_str(out, s->hs.change_cause);
	ctl_buf_printf(out, ",\"host\":");
	if (s->host != NULL)
		ctl_json_str(out, s->host);
	else
		ctl_buf_printf(out, "null");
	server_dns(c, s, dns, sizeof(dns));
	ctl_buf_printf(
	    out, ",\"discovered\":%s,\"dns\":", s->dns_origin != POOL_DNS_NONE ? "true" : "false");
	ctl_json_str(out, dns);
	ctl_buf_printf(out,
		       ",\"lb_weight\":%u,\"checks\":%llu,\"checks_failed\":%llu,"
		       "\"state_changes\":%llu}",
		       pool_server_lb_weight(s), (unsigned long long)s->hs.checks,
		       (unsigned long long)s->hs.checks_failed,
		       (unsigned long long)s->hs.state_changes);
}

#define SERVER_COLS 15
#define SERVERS_PER_PART 64 /* rows of show servers per part */

static const char *const server_head[SERVER_COLS] = {
    "pool",  "server",	 "address",   "health", "admin",	"weight", "eff",   "active",
    "total", "bytes_in", "bytes_out", "errors", "local_errors", "dns",	  "check",
};

/* One row of the show servers table. */
static void server_cells(struct ctl *c, const struct pool_server *s,
			 char cells[SERVER_COLS][TBL_CELL])
{
	char abuf[UTIL_ADDR_STRLEN], dns[POOL_CAUSE_MAX + UTIL_HOST_MAX];

	util_strlcpy(cells[0], s->pool->name, TBL_CELL);
	util_strlcpy(cells[1], s->name, TBL_CELL);
	util_strlcpy(cells[2], util_addr_fmt(&s->addr, abuf, sizeof(abuf)), TBL_CELL);
	util_strlcpy(cells[3], pool_health_name(s->health), TBL_CELL);
	util_strlcpy(cells[4], pool_admin_name(s->admin), TBL_CELL);
	u64s(cells[5], s->weight);
	u64s(cells[6], pool_server_eligible(s) ? effective_weight(s) : 0);
	u64s(cells[7], atomic_load(&s->cur_conns));
	u64s(cells[8], atomic_load(&s->total_conns));
	u64s(cells[9], atomic_load(&s->bytes_in));
	u64s(cells[10], atomic_load(&s->bytes_out));
	u64s(cells[11], atomic_load(&s->connect_errors));
	u64s(cells[12], atomic_load(&s->local_errors));
	server_dns(c, s, dns, sizeof(dns));
	util_strlcpy(cells[13], dns[0] ? dns : "-", TBL_CELL);
	/* last: the cause has spaces */
	util_strlcpy(cells[14], s->hs.last_cause[0] ? s->hs.last_cause : "-", TBL_CELL);
}

/* Print one row padded to the job's column widths. */
static void row_print(const struct ctl_job *j, const char *const *cells, struct ctl_buf *out)
{
	static const char spaces[TBL_CELL + 2] = {[0 ... TBL_CELL] = ' '};

	for (size_t i = 0; i < SERVER_COLS; i++) {
		size_t n = strlen(cells[i]);

		ctl_buf_append(out, cells[i], n);
		if (i + 1 < SERVER_COLS)
			ctl_buf_append(out, spaces, (j->w[i] > n ? j->w[i] - n : 0) + 2);
	}
	ctl_buf_append(out, "\n", 1);
}

/* The next server of the job's walk (by index: see struct ctl_job). */
static struct pool_server *job_next_server(struct ctl *c, struct ctl_job *j)
{
	size_t n;
	struct pool **pools = c->hooks.pools(c->hooks.arg, &n);

	while (j->pi < n) {
		struct pool *p = pools[j->pi];

		if ((j->pool[0] != '\0' && strcmp(p->name, j->pool) != 0) || j->si >= p->nservers) {
			j->pi++;
			j->si = 0;
			continue;
		}
		return p->servers[j->si++];
	}
	return NULL;
}

/* show servers, a part: in JSON at once; as a table, first a pass that
 * measures the columns, then one that prints (a counter that grows in
 * between only widens its own row). Returns true when complete. */
static bool servers_step(struct ctl *c, struct ctl_job *j, struct ctl_buf *out)
{
	char cells[SERVER_COLS][TBL_CELL];
	const char *row[SERVER_COLS];
	struct pool_server *s = NULL;

	for (size_t i = 0; i < SERVER_COLS; i++)
		row[i] = cells[i];
	if (j->pass == 0 && j->pi == 0 && j->si == 0) {
		if (j->json)
			ctl_buf_append(out, "[", 1);
		for (size_t i = 0; i < SERVER_COLS; i++)
			j->w[i] = strlen(server_head[i]);
	}
	for (int k = 0; k < SERVERS_PER_PART && (s = job_next_server(c, j)) != NULL; k++) {
		if (j->json) {
			if (!j->first)
				ctl_buf_append(out, ",", 1);
			server_json(c, out, s);
			j->first = false;
			continue;
		}
		server_cells(c, s, cells);
		for (size_t i = 0; i < SERVER_COLS; i++) {
			if (j->pass == 0)
				j->w[i] = UTIL_MAX(j->w[i], strlen(cells[i]));
		}
		if (j->pass == 1)
			row_print(j, row, out);
	}
	if (s != NULL)
		return false;
	if (j->json) {
		ctl_buf_append(out, "]\n\n", 3);
		return true;
	}
	if (j->pass == 0) {
		j->pass = 1;
		j->pi = j->si = 0;
		row_print(j, server_head, out);
		return false;
	}
	ctl_buf_append(out, "\n", 1);
	return true;
}

/* Start an incremental reply: on a connection the scheduler runs it a
 * part at a time; without one (ctl_execute) it runs to the end now. */
static void job_start(struct cmd *x, struct ctl_job *j)
{
	if (x->cl != NULL) {
		x->cl->job = *j;
		return;
	}
	while (!ctl_job_step(x->ctl, j, x->out))
		;
}

static void cmd_show_servers(struct cmd *x)
{
	struct ctl_job j = {.kind = CTL_JOB_SERVERS, .json = x->json, .first = true};

	if (x->argc == 3 && ctl_find_pool(x->ctl, x->argv[2]) == NULL) {
		reply_error(x->out, "no pool '%s'", x->argv[2]);
		return;
	}
	if (x->argc == 3)
		util_strlcpy(j.pool, x->argv[2], sizeof(j.pool));
	job_start(x, &j);
}

/* Prometheus text to JSON: {"name":..,"labels":{..},"value":..} per
 * sample line of p[0..len) (whole lines). The text is our own
 * (ctl_metrics), so its shape is known. */
static void metrics_json(const char *p, size_t len, bool *first, struct ctl_buf *out)
{
	const char *end = p + len;

	while (p != NULL && p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl != NULL ? nl : end, *sp = le;

		while (sp > p && sp[-1] != ' ')
			sp--;
		if (*p != '#' && sp > p) {
			const char *brace = memchr(p, '{', (size_t)(sp - p));
			const char *name_end = brace != NULL ? brace : sp - 1;

			ctl_buf_printf(out, "%s{\"name\":\"%.*s\",\"labels\":{", *first ? "" : ",",
				       (int)(name_end - p), p);
			*first = false;
			for (const char *q = brace != NULL ? brace + 1 : sp; q < sp - 2;) {
				const char *eq = memchr(q, '=', (size_t)(sp - q));
				const char *v, *ve;

				if (eq == NULL || eq[1] != '"')
					break;
				v = eq + 2;
				for (ve = v; ve < sp && *ve != '"'; ve++)
					if (*ve == '\\')
						ve++;
				ctl_buf_printf(out, "%s\"%.*s\":\"%.*s\"",
					       q == brace + 1 ? "" : ",", (int)(eq - q), q,
					       (int)(ve - v), v);
				q = ve + 2; /* past the quote and the comma or brace */
			}
			ctl_buf_printf(out, "},\"value\":%.*s}", (int)(le - sp), sp);
		}
		p = nl != NULL ? nl + 1 : NULL;
	}
}

#define METRICS_COPY_PART (32u << 10) /* bytes of show metrics per part */

/* show metrics, a part: help render a fresh text, then copy it out a
 * part at a time (JSON: converted line by line). */
static bool metrics_step(struct ctl *c, struct ctl_job *j, struct ctl_buf *out)
{
	const struct ctl_buf *b;
	size_t n;
	const char *nl;

	if (j->text == NULL) {
		j->text = ctl_metrics_get(c, 0, util_now_ms());
		if (j->text == NULL)
			return false; /* CTL_METRICS_TEXTS_MAX alive: next time */
		if (j->json)
			ctl_buf_append(out, "[", 1);
	}
	if (!ctl_metrics_step(c, j->text))
		return false;
	b = &j->text->buf;
	n = UTIL_MIN(b->len - j->off, METRICS_COPY_PART);
	/* whole lines: the JSON conversion works a line at a time */
	nl = n > 0 ? memrchr(b->data + j->off, '\n', n) : NULL;
	if (nl != NULL && j->off + n < b->len)
		n = (size_t)(nl - (b->data + j->off)) + 1;
	if (j->json)
		metrics_json(b->data + j->off, n, &j->first, out);
	else
		ctl_buf_append(out, b->data + j->off, n);
	j->off += n;
	if (j->off < b->len)
		return false;
	ctl_buf_append(out, j->json ? "]\n\n" : "\n", j->json ? 3 : 1);
	ctl_metrics_put(c, j->text);
	j->text = NULL;
	return true;
}

static void cmd_show_metrics(struct cmd *x)
{
	struct ctl_job j = {.kind = CTL_JOB_METRICS, .json = x->json, .first = true};

	job_start(x, &j);
}

bool ctl_job_step(struct ctl *c, struct ctl_job *j, struct ctl_buf *out)
{
	bool done = true;

	switch (j->kind) {
	case CTL_JOB_SERVERS:
		done = servers_step(c, j, out);
		break;
	case CTL_JOB_METRICS:
		done = metrics_step(c, j, out);
		break;
	case CTL_JOB_NONE:
		break;
	}
	if (done)
		j->kind = CTL_JOB_NONE;
	return done;
}

/* ---- server changes ---- */

static void cmd_server_admin(struct cmd *x)
{
	struct pool_server *s;
	enum pool_admin a;
	uint64_t within_ms = 0;

	pool_admin_parse(x->argv[1], &a);
	if (x->argc == 5 || x->argc == 4) {
		if (a != POOL_ADMIN_DRAIN || x->argc != 5 || strcmp(x->argv[3], "within") != 0) {
			reply_error(x->out,
				    "usage: server ready|drain|maint POOL/SERVER, or server "
				    "drain POOL/SERVER within DURATION");
			return;
		}
		if (util_parse_duration_ms(x->argv[4], 24ull * 3600 * 1000, &within_ms) < 0 ||
		    within_ms == 0) {
			reply_error(x->out, "bad duration '%s' (expected e.g. 500ms, 30s, 5m)",
				    x->argv[4]);
			return;
		}
	}
	s = ctl_find_server(x->ctl, x->argv[2], x->out);
	if (s == NULL)
		return;
	if (s->admin != a)
		log_notice("server %s/%s admin %s -> %s (control socket)", s->pool->name, s->name,
			   pool_admin_name(s->admin), pool_admin_name(a));
	pool_server_operator_admin(s, a, util_now_ms());
	if (within_ms > 0)
		ctl_drain_schedule(x->ctl, s, within_ms);
	else if (a != POOL_ADMIN_DRAIN || x->argc == 3)
		ctl_drain_cancel(x->ctl, s);
	ctl_changed(x->ctl);
	if (within_ms > 0)
		reply_ok(x,
			 "server %s/%s is draining; connections still open in %llums will be "
			 "closed",
			 s->pool->name, s->name, (unsigned long long)within_ms);
	else
		reply_ok(x, "server %s/%s: admin %s", s->pool->name, s->name, pool_admin_name(a));
}

static void cmd_server_weight(struct cmd *x)
{
	struct pool_server *s;
	long w;

	if (util_parse_long(x->argv[3], 0, 256, &w) < 0) {
		reply_error(x->out, "bad weight '%s' (expected an integer 0-256)", x->argv[3]);
		return;
	}
	s = ctl_find_server(x->ctl, x->argv[2], x->out);
	if (s == NULL)
		return;
	log_notice("server %s/%s weight %u -> %ld (control socket)", s->pool->name, s->name,
		   s->weight, w);
	pool_server_operator_weight(s, (uint32_t)w);
	ctl_changed(x->ctl);
	reply_ok(x, "server %s/%s weight %ld", s->pool->name, s->name, w);
}

static void cmd_server_shutdown(struct cmd *x)
{
	struct pool_server *s = ctl_find_server(x->ctl, x->argv[2], x->out);
	uint32_t n;

	if (s == NULL)
		return;
	n = atomic_load(&s->cur_conns);
	if (x->ctl->hooks.close_server == NULL) {
		reply_error(x->out, "closing connections is not available");
		return;
	}
	x->ctl->hooks.close_server(x->ctl->hooks.arg, s, 0);
	log_notice("server %s/%s: closing %u connections (control socket)", s->pool->name, s->name,
		   n);
	reply_ok(x, "closing %u connections of %s/%s", n, s->pool->name, s->name);
}

/* A reload is changing the model in steps: no server may come or go until
 * it is over. Answers the error and returns true then. */
static bool model_busy(struct cmd *x)
{
	if (x->ctl->hooks.model_busy == NULL || !x->ctl->hooks.model_busy(x->ctl->hooks.arg))
		return false;
	reply_error(x->out, "a reload is being applied; servers cannot be added or deleted until "
			    "it is over (try again)");
	return true;
}

/* As the file: a Maglev table has at least a slot per server. Answers
 * the error and returns true when p has no room left. */
static bool maglev_full(struct cmd *x, const struct pool *p)
{
	if (p->balance != POOL_BALANCE_MAGLEV || p->nservers < p->maglev_size)
		return false;
	reply_error(x->out,
		    "pool '%s' has %zu servers, as many as its Maglev table has slots "
		    "(set a larger maglev-table and reload)",
		    p->name, p->nservers);
	return true;
}

/* The server of `server add` enters its pool (its address known).
 * Answers the reply. */
static void add_server(struct cmd *x, const char *pool, const char *name,
		       const struct util_addr *addr, const struct util_srvopts *o, bool ready,
		       const char *written, const char *host)
{
	struct pool *p = ctl_find_pool(x->ctl, pool);
	struct pool_server *s;
	char err[400], abuf[UTIL_ADDR_STRLEN];

	/* a wait for a name ends here: the pool may have gone meanwhile */
	if (p == NULL) {
		reply_error(x->out, "no pool '%s'", pool);
		return;
	}
	if (model_busy(x) || maglev_full(x, p))
		return;
	s = pool_server_create(p, name, addr, o, err, sizeof(err));
	if (s == NULL) {
		reply_error(x->out, "%s", err);
		return;
	}
	if (host != NULL && pool_server_set_dns(s, POOL_DNS_NONE, host, NULL) < 0) {
		pool_remove_server(p, s);
		reply_error(x->out, "out of memory");
		return;
	}
	s->runtime_added = true;
	s->admin_overridden = true;
	s->admin = ready ? POOL_ADMIN_READY : POOL_ADMIN_MAINT;
	s->admin_since_ms = util_now_ms();
	pool_publish(p);
	if (x->ctl->hooks.server_added != NULL)
		x->ctl->hooks.server_added(x->ctl->hooks.arg, s, !o->check.off);
	log_notice("server %s/%s added at %s%s%s%s (%s, control socket)", p->name, s->name, written,
		   host != NULL ? " (" : "",
		   host != NULL ? util_addr_fmt(addr, abuf, sizeof(abuf)) : "",
		   host != NULL ? ")" : "", pool_admin_name(s->admin));
	ctl_changed(x->ctl);
	reply_ok(x, "server %s/%s added (%s)", p->name, s->name, pool_admin_name(s->admin));
}

/* server add POOL NAME ADDRESS [OPTION ...] [ready]: the options of a
 * configuration file's server line (srvopt.h), checked by the same code;
 * the server starts in maint unless ready. A host name is looked up
 * through the pool's resolvers while the client waits (the loop does
 * not), and followed at its TTL afterwards. */
static void cmd_server_add(struct cmd *x)
{
	struct pool *p = ctl_find_pool(x->ctl, x->argv[2]);
	const char *const *words = (const char *const *)x->argv;
	struct ctl_pending_add *pa;
	struct util_srvopts o;
	struct util_addr addr;
	bool ready = false;
	char err[400], host[UTIL_HOST_MAX] = "";
	uint16_t port = 0;

	if (p == NULL) {
		reply_error(x->out, "no pool '%s'", x->argv[2]);
		return;
	}
	if (model_busy(x))
		return;
	if (util_addr_parse_server(x->argv[4], &addr, host, sizeof(host), &port, err, sizeof(err)) <
	    0) {
		reply_error(x->out, "bad address '%s': %s", x->argv[4], err);
		return;
	}
	util_srvopts_init(&o);
	for (size_t i = 5; i < (size_t)x->argc; i++) {
		if (strcmp(x->argv[i], "ready") == 0) {
			ready = true;
			continue;
		}
		if (util_srvopt_parse(words, (size_t)x->argc, &i, &o, ", or ready", err,
				      sizeof(err)) < 0) {
			reply_error(x->out, "%s", err);
			return;
		}
	}
	/* name, values, duplicate: all before a host name is looked up */
	if (pool_server_check(p, x->argv[3], &o, err, sizeof(err)) < 0) {
		reply_error(x->out, "%s", err);
		return;
	}
	if (maglev_full(x, p))
		return;
	if (host[0] == '\0') {
		add_server(x, p->name, x->argv[3], &addr, &o, ready, x->argv[4], NULL);
		return;
	}
	if (x->ctl->hooks.lookup_start == NULL || x->ctl->hooks.lookup_result == NULL) {
		reply_error(x->out, "cannot resolve '%s': no resolver", host);
		return;
	}
	if (x->cl == NULL) {
		reply_error(x->out, "server add with a host name is only available on a control "
				    "connection");
		return;
	}
	pa = calloc(1, sizeof(*pa));
	if (pa == NULL) {
		reply_error(x->out, "out of memory");
		return;
	}
	err[0] = '\0';
	if (x->ctl->hooks.lookup_start(x->ctl->hooks.arg, p->name, host, &pa->id, err,
				       sizeof(err)) < 0) {
		free(pa);
		reply_error(x->out, "cannot resolve '%s': %s", host, err);
		return;
	}
	util_strlcpy(pa->pool, p->name, sizeof(pa->pool));
	util_strlcpy(pa->name, x->argv[3], sizeof(pa->name));
	util_strlcpy(pa->host, host, sizeof(pa->host));
	util_strlcpy(pa->written, x->argv[4], sizeof(pa->written));
	pa->port = port;
	pa->opts = o;
	pa->ready = ready;
	x->cl->wait = CTL_WAIT_LOOKUP;
	x->cl->wait_json = x->json;
	x->cl->wait_add = pa;
	if (!ctl_wait_check(x->ctl, x->cl, util_now_ms(), x->out))
		ctl_client_wait_start(x->cl);
}

/* The lookup of a waiting `server add`: false while it runs. */
static bool lookup_reply(struct ctl *c, struct ctl_client *cl, struct ctl_buf *out)
{
	struct ctl_pending_add *pa = cl->wait_add;
	struct cmd x = {.ctl = c, .cl = cl, .json = cl->wait_json, .out = out};
	struct util_addr addr;
	char msg[256];
	int rc;

	msg[0] = '\0';
	rc = c->hooks.lookup_result(c->hooks.arg, pa->id, pa->port, &addr, msg, sizeof(msg));
	if (rc > 0)
		return false;
	if (rc < 0)
		reply_error(out, "cannot resolve '%s': %s", pa->host, msg);
	else
		add_server(&x, pa->pool, pa->name, &addr, &pa->opts, pa->ready, pa->written,
			   pa->host);
	free(pa);
	cl->wait_add = NULL;
	cl->wait = CTL_WAIT_NONE;
	return true;
}

static void cmd_server_del(struct cmd *x)
{
	struct pool_server *s;
	bool force = x->argc == 4;
	uint32_t n;

	if (force && strcmp(x->argv[3], "force") != 0) {
		reply_error(x->out, "usage: server del POOL/SERVER [force]");
		return;
	}
	s = ctl_find_server(x->ctl, x->argv[2], x->out);
	if (s == NULL || model_busy(x))
		return;
	if (s->dns_origin != POOL_DNS_NONE) {
		reply_error(x->out,
			    "server %s/%s comes from the DNS answer of %s and goes with it "
			    "(drain or maint it instead)",
			    s->pool->name, s->name, s->host != NULL ? s->host : "?");
		return;
	}
	n = atomic_load(&s->cur_conns);
	if (n > 0 && !force) {
		reply_error(x->out,
			    "server %s/%s has %u open connections (drain it and wait, or "
			    "add 'force' to reset them)",
			    s->pool->name, s->name, n);
		return;
	}
	if (n > 0 && x->ctl->hooks.close_server != NULL)
		x->ctl->hooks.close_server(x->ctl->hooks.arg, s, 0);
	ctl_drain_cancel(x->ctl, s);
	log_notice("server %s/%s deleted (control socket%s)", s->pool->name, s->name,
		   n > 0 ? ", connections reset" : "");
	reply_ok(x, "server %s/%s deleted", s->pool->name, s->name);
	/* s stays valid until QSBR frees it, after this callback */
	pool_remove_server(s->pool, s);
	if (x->ctl->hooks.server_removed != NULL)
		x->ctl->hooks.server_removed(x->ctl->hooks.arg, s);
	ctl_changed(x->ctl);
}

/* The reply of a finished reload; false while it runs. */
static bool reload_reply(struct ctl *c, uint64_t id, bool json, struct ctl_buf *out)
{
	char msg[8192];
	int rc;

	msg[0] = '\0';
	rc = c->hooks.reload_result(c->hooks.arg, id, msg, sizeof(msg));
	if (rc > 0)
		return false;
	if (rc < 0) {
		reply_error(out, "%s", msg);
		return true;
	}
	if (json) {
		ctl_buf_printf(out, "{\"ok\":true,\"message\":");
		ctl_json_str(out, msg);
		ctl_buf_printf(out, "}\n\n");
	} else {
		ctl_buf_printf(out, "%s\n\n", msg);
	}
	return true;
}

/* ---- waits ---- */

/* The optional TIMEOUT of a wait command at argv[i]. Returns 0, or -1
 * after an error reply. */
static int wait_timeout(struct cmd *x, int i, uint64_t *timeout)
{
	*timeout = WAIT_DEFAULT_MS;
	if (x->cl == NULL) {
		reply_error(x->out, "wait is only available on a control connection");
		return -1;
	}
	if (x->argc == i + 1 && util_parse_duration_ms(x->argv[i], WAIT_MAX_MS, timeout) < 0) {
		reply_error(x->out, "bad timeout '%s' (expected e.g. 500ms, 30s, 5m; at most 1h)",
			    x->argv[i]);
		return -1;
	}
	return 0;
}

static void cmd_wait(struct cmd *x)
{
	struct pool_server *s;
	uint64_t timeout;

	if (wait_timeout(x, 3, &timeout) < 0)
		return;
	s = ctl_find_server(x->ctl, x->argv[2], x->out);
	if (s == NULL)
		return;
	x->cl->wait = strcmp(x->argv[1], "drained") == 0 ? CTL_WAIT_DRAINED : CTL_WAIT_UP;
	x->cl->wait_json = x->json;
	x->cl->wait_srv = s;
	pool_server_get(s);
	x->cl->wait_deadline_ms = util_now_ms() + timeout;
	/* answer at once when it is already true */
	if (!ctl_wait_check(x->ctl, x->cl, util_now_ms(), x->out))
		ctl_client_wait_start(x->cl);
}

/* wait idle: answered when the node has no connection left. */
static bool wait_idle_check(struct ctl *c, struct ctl_client *cl, uint64_t now_ms,
			    struct ctl_buf *out)
{
	struct ctl_info in = {0};

	c->hooks.info(c->hooks.arg, &in);
	if (in.cur_conns == 0) {
		if (cl->wait_json)
			ctl_buf_printf(out, "{\"ok\":true,\"state\":\"idle\"}\n\n");
		else
			ctl_buf_printf(out, "node is idle: no connection left\n\n");
	} else if (now_ms >= cl->wait_deadline_ms) {
		ctl_buf_printf(out, "error: timeout: %u connections still open\n\n", in.cur_conns);
	} else {
		return false;
	}
	cl->wait = CTL_WAIT_NONE;
	return true;
}

bool ctl_wait_check(struct ctl *c, struct ctl_client *cl, uint64_t now_ms, struct ctl_buf *out)
{
	struct pool_server *s = cl->wait_srv;
	bool done, drained = cl->wait == CTL_WAIT_DRAINED;
	uint32_t n;

	if (cl->wait == CTL_WAIT_LOOKUP)
		return lookup_reply(c, cl, out);
	if (cl->wait == CTL_WAIT_RELOAD) {
		/* no deadline: a reload always ends (its name lookups are
		 * bounded, its steps are) */
		if (!reload_reply(c, cl->wait_reload, cl->wait_json, out))
			return false;
		cl->wait = CTL_WAIT_NONE;
		return true;
	}
	if (cl->wait == CTL_WAIT_IDLE)
		return wait_idle_check(c, cl, now_ms, out);
	n = atomic_load(&s->cur_conns);
	done = drained ? n == 0 : s->health == POOL_HEALTH_UP;
	if (!done && s->removed) {
		ctl_buf_printf(out, "error: server %s/%s was deleted while waiting\n\n",
			       s->pool->name, s->name);
	} else if (done) {
		if (cl->wait_json)
			ctl_buf_printf(out,
				       "{\"ok\":true,\"server\":\"%s/%s\",\"state\":\"%s\"}\n\n",
				       s->pool->name, s->name, drained ? "drained" : "up");
		else
			ctl_buf_printf(out, "server %s/%s is %s\n\n", s->pool->name, s->name,
				       drained ? "drained" : "up");
	} else if (now_ms >= cl->wait_deadline_ms) {
		if (drained)
			ctl_buf_printf(out,
				       "error: timeout: server %s/%s still has %u open "
				       "connections\n\n",
				       s->pool->name, s->name, n);
		else
			ctl_buf_printf(out, "error: timeout: server %s/%s is still %s\n\n",
				       s->pool->name, s->name, pool_health_name(s->health));
	} else {
		return false;
	}
	cl->wait = CTL_WAIT_NONE;
	cl->wait_srv = NULL;
	pool_server_put(s);
	return true;
}

/* ---- announce and the node ---- */

static void fmt_wall(uint64_t wall_ms, char *buf, size_t len)
{
	time_t t = (time_t)(wall_ms / 1000);
	struct tm tm;

	if (wall_ms == 0 || gmtime_r(&t, &tm) == NULL)
		util_strlcpy(buf, "-", len);
	else
		strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* The rows of every announce block (caller frees), or NULL after an error
 * reply. */
static struct ctl_announce_row *announce_rows(struct ctl *c, size_t *n, struct ctl_node_state *node,
					      struct ctl_buf *out)
{
	struct ctl_announce_row *rows;

	if (c->hooks.announces == NULL) {
		reply_error(out, "announce is not available");
		return NULL;
	}
	*n = c->hooks.announces(c->hooks.arg, NULL, 0, node);
	rows = calloc(*n + 1, sizeof(*rows));
	if (rows == NULL) {
		reply_error(out, "out of memory");
		return NULL;
	}
	*n = UTIL_MIN(*n, c->hooks.announces(c->hooks.arg, rows, *n, node));
	return rows;
}

static void announce_json(struct ctl_buf *out, const struct ctl_announce_row *r)
{
	char when[32];

	fmt_wall(r->since_wall_ms, when, sizeof(when));
	ctl_buf_printf(out, "{\"name\":");
	ctl_json_str(out, r->name);
	ctl_buf_printf(out, ",\"device\":");
	ctl_json_str(out, r->device);
	ctl_buf_printf(out, ",\"addresses\":");
	ctl_json_str(out, r->addresses);
	ctl_buf_printf(out, ",\"pools\":");
	ctl_json_str(out, r->pools);
	ctl_buf_printf(out, ",\"state\":\"%s\",\"announced\":%s,\"cause\":", r->state,
		       strcmp(r->state, "announced") == 0 ? "true" : "false");
	ctl_json_str(out, r->cause);
	ctl_buf_printf(
	    out,
	    ",\"withdrawn_by_operator\":%s,\"since\":\"%s\",\"since_ms\":%llu,"
	    "\"hold_down_ms\":%llu,\"hold_down_left_ms\":%llu,"
	    "\"withdraw_delay_ms\":%llu,\"announces\":%llu,\"withdraws\":%llu,"
	    "\"transitions\":%llu,\"errors\":%llu}",
	    r->manual ? "true" : "false", when, (unsigned long long)r->since_age_ms,
	    (unsigned long long)r->hold_down_ms, (unsigned long long)r->hold_down_left_ms,
	    (unsigned long long)r->withdraw_delay_ms, (unsigned long long)r->announces,
	    (unsigned long long)r->withdraws, (unsigned long long)(r->announces + r->withdraws),
	    (unsigned long long)r->errors);
}

static void cmd_show_announce(struct cmd *x)
{
	struct ctl_node_state node;
	struct tbl t = {.ncols = 8};
	size_t n;
	struct ctl_announce_row *rows = announce_rows(x->ctl, &n, &node, x->out);
	char b[2][64];

	if (rows == NULL)
		return;
	if (x->json) {
		ctl_buf_printf(x->out,
			       "{\"node\":{\"drained\":%s,\"stopping\":%s,\"drain_left_ms\":%llu},"
			       "\"announce\":[",
			       node.drained ? "true" : "false", node.stopping ? "true" : "false",
			       (unsigned long long)node.drain_left_ms);
		for (size_t i = 0; i < n; i++) {
			ctl_buf_printf(x->out, "%s", i ? "," : "");
			announce_json(x->out, &rows[i]);
		}
		ctl_buf_printf(x->out, "]}\n\n");
		free(rows);
		return;
	}
	if (node.stopping)
		ctl_buf_printf(x->out, "node: stopping\n");
	else if (node.drained && node.drain_left_ms > 0)
		ctl_buf_printf(x->out,
			       "node: drained (node drain); open connections are closed in "
			       "%llums\n",
			       (unsigned long long)node.drain_left_ms);
	else
		ctl_buf_printf(x->out, "node: %s\n",
			       node.drained ? "drained (node drain)" : "serving");
	tbl_row(&t, "announce", "device", "state", "addresses", "pools", "since", "transitions",
		"cause");
	for (size_t i = 0; i < n; i++) {
		const struct ctl_announce_row *r = &rows[i];
		char when[32];

		fmt_wall(r->since_wall_ms, when, sizeof(when));
		snprintf(b[0], sizeof(b[0]), "%s (%llus ago)", when,
			 (unsigned long long)(r->since_age_ms / 1000));
		tbl_row(&t, r->name, r->device, r->state, r->addresses,
			r->pools[0] ? r->pools : "-", b[0], u64s(b[1], r->announces + r->withdraws),
			/* last: the cause has spaces */
			r->cause[0] ? r->cause : "-");
	}
	tbl_print(&t, x->out);
	free(rows);
}

static void cmd_announce_admin(struct cmd *x)
{
	char msg[512];

	if (x->ctl->hooks.announce_admin == NULL) {
		reply_error(x->out, "announce is not available");
		return;
	}
	msg[0] = '\0';
	if (x->ctl->hooks.announce_admin(x->ctl->hooks.arg, x->argv[2],
					 strcmp(x->argv[1], "withdraw") == 0, msg,
					 sizeof(msg)) < 0) {
		reply_error(x->out, "%s", msg);
		return;
	}
	ctl_changed(x->ctl); /* an operator's withdraw survives a restart */
	reply_ok(x, "%s", msg);
}

/* node drain [within DURATION] | node ready */
static void cmd_node(struct cmd *x)
{
	bool drain = strcmp(x->argv[1], "drain") == 0;
	uint64_t within_ms = 0;
	char msg[512];

	if (x->argc != 2 && (!drain || x->argc != 4 || strcmp(x->argv[2], "within") != 0)) {
		reply_error(x->out, "usage: node drain [within DURATION], or node ready");
		return;
	}
	if (x->argc == 4 &&
	    (util_parse_duration_ms(x->argv[3], 24ull * 3600 * 1000, &within_ms) < 0 ||
	     within_ms == 0)) {
		reply_error(x->out, "bad duration '%s' (expected e.g. 500ms, 30s, 5m)", x->argv[3]);
		return;
	}
	if (x->ctl->hooks.node_drain == NULL) {
		reply_error(x->out, "node drain is not available");
		return;
	}
	msg[0] = '\0';
	if (x->ctl->hooks.node_drain(x->ctl->hooks.arg, drain, within_ms, msg, sizeof(msg)) < 0)
		reply_error(x->out, "%s", msg);
	else
		reply_ok(x, "%s", msg);
}

static void cmd_wait_idle(struct cmd *x)
{
	uint64_t timeout;

	if (wait_timeout(x, 2, &timeout) < 0)
		return;
	x->cl->wait = CTL_WAIT_IDLE;
	x->cl->wait_json = x->json;
	x->cl->wait_deadline_ms = util_now_ms() + timeout;
	if (!ctl_wait_check(x->ctl, x->cl, util_now_ms(), x->out))
		ctl_client_wait_start(x->cl);
}

/* ---- reload ---- */

/* The reload runs in the background (a large file is read on another
 * thread and applied in steps); the client gets the reply when it is over,
 * its later commands waiting behind it. */
static void cmd_reload(struct cmd *x)
{
	char msg[512];
	bool check = x->argc == 2;
	uint64_t id;

	if (check && strcmp(x->argv[1], "check") != 0) {
		reply_error(x->out, "usage: reload [check]");
		return;
	}
	if (x->ctl->hooks.reload_start == NULL || x->ctl->hooks.reload_result == NULL) {
		reply_error(x->out, "reload is not available");
		return;
	}
	if (x->cl == NULL) {
		reply_error(x->out, "reload is only available on a control connection");
		return;
	}
	msg[0] = '\0';
	if (x->ctl->hooks.reload_start(x->ctl->hooks.arg, check, msg, sizeof(msg), &id) < 0) {
		reply_error(x->out, "%s", msg);
		return;
	}
	x->cl->wait = CTL_WAIT_RELOAD;
	x->cl->wait_json = x->json;
	x->cl->wait_reload = id;
	if (reload_reply(x->ctl, id, x->json, x->out))
		x->cl->wait = CTL_WAIT_NONE;
	else
		ctl_client_wait_start(x->cl);
}

static void cmd_takeover(struct cmd *x)
{
	char msg[512];

	if (x->cl == NULL || x->ctl->hooks.takeover == NULL) {
		reply_error(x->out, "takeover is only available on a control connection");
		return;
	}
	if (x->cl->out.len != x->cl->outoff) {
		reply_error(x->out, "takeover must be sent alone, after earlier replies were read");
		return;
	}
	if (x->ctl->hooks.takeover(x->ctl->hooks.arg, x->cl->io.fd, msg, sizeof(msg)) < 0)
		reply_error(x->out, "%s", msg);
	else
		reply_ok(x, "%s", msg);
}

/* ---- source ACLs and per-source limits ---- */

const char *const ctl_refusal_names[CTL_NREFUSALS] = {
    [CTL_REFUSED_ACL] = "acl",
    [CTL_REFUSED_CONNS] = "conns",
    [CTL_REFUSED_RATE] = "rate",
    [CTL_REFUSED_TABLE_FULL] = "table-full",
};

#define ACL_FOR_MAX_MS (366ull * 24 * 3600 * 1000)
#define SOURCES_TOP_DEFAULT 20
#define SOURCES_TOP_MAX 1000

/* argv[i] as a prefix, or an error reply. */
static bool arg_cidr(struct cmd *x, int i, struct util_cidr *out)
{
	char err[200];

	if (util_cidr_parse(x->argv[i], strlen(x->argv[i]), out, err, sizeof(err)) == 0)
		return true;
	reply_error(x->out, "%s", err);
	return false;
}

static bool guard_hooks(struct cmd *x)
{
	if (x->ctl->hooks.acl_add != NULL)
		return true;
	reply_error(x->out, "source ACLs are not available");
	return false;
}

/* acl add LISTENER deny|allow CIDR [for DURATION] */
static void cmd_acl_add(struct cmd *x)
{
	const char *act = x->argv[3];
	struct util_cidr cidr;
	uint64_t for_ms = 0;
	char msg[512] = "ok";

	if ((strcmp(act, "deny") != 0 && strcmp(act, "allow") != 0) ||
	    (x->argc == 7 && strcmp(x->argv[5], "for") != 0) || x->argc == 6) {
		reply_error(x->out, "usage: acl add LISTENER deny|allow CIDR [for DURATION]");
		return;
	}
	if (x->argc == 7 &&
	    (util_parse_duration_ms(x->argv[6], ACL_FOR_MAX_MS, &for_ms) < 0 || for_ms == 0)) {
		reply_error(x->out,
			    "bad duration '%s' (expected e.g. 30s, 10m, 24h; at most 8784h)",
			    x->argv[6]);
		return;
	}
	if (!arg_cidr(x, 4, &cidr) || !guard_hooks(x))
		return;
	if (x->ctl->hooks.acl_add(x->ctl->hooks.arg, x->argv[2], strcmp(act, "deny") == 0, &cidr,
				  for_ms, msg, sizeof(msg)) < 0) {
		reply_error(x->out, "%s", msg);
		return;
	}
	ctl_changed(x->ctl);
	reply_ok(x, "%s", msg);
}

static void cmd_acl_del(struct cmd *x)
{
	struct util_cidr cidr;
	char msg[512] = "ok";

	if (!arg_cidr(x, 3, &cidr) || !guard_hooks(x))
		return;
	if (x->ctl->hooks.acl_del(x->ctl->hooks.arg, x->argv[2], &cidr, msg, sizeof(msg)) < 0) {
		reply_error(x->out, "%s", msg);
		return;
	}
	ctl_changed(x->ctl);
	reply_ok(x, "%s", msg);
}

static void fmt_expiry(char *buf, size_t len, uint64_t in_ms)
{
	if (in_ms == 0)
		snprintf(buf, len, "-");
	else
		snprintf(buf, len, "in %llus", (unsigned long long)((in_ms + 999) / 1000));
}

static void cmd_show_acl(struct cmd *x)
{
	struct ctl_acl_view v;
	struct tbl t = {.ncols = 4};
	char msg[512] = "failed", pfx[UTIL_CIDR_STRLEN], exp[32];

	if (!guard_hooks(x))
		return;
	if (x->ctl->hooks.acl_view(x->ctl->hooks.arg, x->argv[2], &v, msg, sizeof(msg)) < 0) {
		reply_error(x->out, "%s", msg);
		return;
	}
	if (x->json) {
		ctl_buf_printf(x->out, "{\"listener\":");
		ctl_json_str(x->out, x->argv[2]);
		ctl_buf_printf(x->out, ",\"default\":\"%s\",\"file_entries\":%llu,\"files\":[",
			       v.default_deny ? "deny" : "allow",
			       (unsigned long long)v.file_entries);
		for (size_t i = 0; i < v.nfiles; i++) {
			ctl_buf_printf(x->out, "%s{\"path\":", i ? "," : "");
			ctl_json_str(x->out, v.files[i].path);
			ctl_buf_printf(x->out, ",\"action\":\"%s\"}",
				       v.files[i].deny ? "deny" : "allow");
		}
		ctl_buf_printf(x->out, "],\"rules\":[");
		for (size_t i = 0; i < v.nrules; i++)
			ctl_buf_printf(x->out,
				       "%s{\"origin\":\"%s\",\"action\":\"%s\",\"prefix\":\"%s\","
				       "\"expires_in_ms\":%llu}",
				       i ? "," : "", v.rules[i].runtime ? "runtime" : "config",
				       v.rules[i].deny ? "deny" : "allow",
				       util_cidr_fmt(&v.rules[i].cidr, pfx, sizeof(pfx)),
				       (unsigned long long)v.rules[i].expires_in_ms);
		ctl_buf_printf(x->out, "]}\n\n");
	} else {
		ctl_buf_printf(x->out, "listen %s: default %s; %llu prefixes from %zu file%s\n",
			       x->argv[2], v.default_deny ? "deny" : "allow",
			       (unsigned long long)v.file_entries, v.nfiles,
			       v.nfiles == 1 ? "" : "s");
		tbl_row(&t, "origin", "action", "prefix", "expires");
		for (size_t i = 0; i < v.nrules; i++) {
			fmt_expiry(exp, sizeof(exp), v.rules[i].expires_in_ms);
			tbl_row(&t, v.rules[i].runtime ? "runtime" : "config",
				v.rules[i].deny ? "deny" : "allow",
				util_cidr_fmt(&v.rules[i].cidr, pfx, sizeof(pfx)), exp);
		}
		for (size_t i = 0; i < v.nfiles; i++)
			tbl_row(&t, "file", v.files[i].deny ? "deny" : "allow", v.files[i].path,
				"-");
		tbl_print(&t, x->out);
	}
	free(v.rules);
	free(v.files);
}

static void cmd_show_sources(struct cmd *x)
{
	struct ctl_sources_view v;
	struct tbl t = {.ncols = 5};
	long top = SOURCES_TOP_DEFAULT;
	char msg[512] = "failed", pfx[UTIL_CIDR_STRLEN], b[4][24];

	if (x->argc != 3 && (x->argc != 5 || strcmp(x->argv[3], "top") != 0 ||
			     util_parse_long(x->argv[4], 1, SOURCES_TOP_MAX, &top) < 0)) {
		reply_error(x->out, "usage: show sources LISTENER [top N] (N from 1 to %d)",
			    SOURCES_TOP_MAX);
		return;
	}
	if (!guard_hooks(x))
		return;
	if (x->ctl->hooks.sources_view(x->ctl->hooks.arg, x->argv[2], (size_t)top, &v, msg,
				       sizeof(msg)) < 0) {
		reply_error(x->out, "%s", msg);
		return;
	}
	if (x->json) {
		ctl_buf_printf(x->out, "[");
		for (size_t i = 0; i < v.nrows; i++)
			ctl_buf_printf(
			    x->out,
			    "%s{\"source\":\"%s\",\"connections\":%u,\"rate\":%.1f,"
			    "\"connections_total\":%llu,\"refused\":%llu}",
			    i ? "," : "", util_cidr_fmt(&v.rows[i].src, pfx, sizeof(pfx)),
			    v.rows[i].conns, v.rows[i].rate, (unsigned long long)v.rows[i].total,
			    (unsigned long long)v.rows[i].refused);
		ctl_buf_printf(x->out, "]\n\n");
		free(v.rows);
		return;
	}
	ctl_buf_printf(x->out,
		       "listen %s: %llu of %llu sources tracked (%.1f MiB), %llu evicted; "
		       "limits: ",
		       x->argv[2], (unsigned long long)v.tracked, (unsigned long long)v.capacity,
		       v.memory_bytes / 1048576.0, (unsigned long long)v.evictions);
	if (v.conns != 0)
		ctl_buf_printf(x->out, "conns %u%s", v.conns, v.rate != 0 ? ", " : "\n");
	if (v.rate != 0)
		ctl_buf_printf(x->out, "rate %u/%s burst %u\n", v.rate,
			       v.rate_period_ms == 1000 ? "s" : "m", v.burst);
	tbl_row(&t, "source", "conns", "rate/s", "total", "refused");
	for (size_t i = 0; i < v.nrows; i++) {
		snprintf(b[1], sizeof(b[1]), "%.1f", v.rows[i].rate);
		tbl_row(&t, util_cidr_fmt(&v.rows[i].src, pfx, sizeof(pfx)),
			u64s(b[0], v.rows[i].conns), b[1], u64s(b[2], v.rows[i].total),
			u64s(b[3], v.rows[i].refused));
	}
	tbl_print(&t, x->out);
	free(v.rows);
}

static void cmd_sources_kill(struct cmd *x)
{
	struct util_cidr cidr;
	char msg[512] = "ok";

	if (!arg_cidr(x, 3, &cidr) || !guard_hooks(x))
		return;
	if (x->ctl->hooks.sources_kill(x->ctl->hooks.arg, x->argv[2], &cidr, msg, sizeof(msg)) < 0)
		reply_error(x->out, "%s", msg);
	else
		reply_ok(x, "%s", msg);
}

/* ---- vrrp ---- */

static void cmd_show_vrrp(struct cmd *x)
{
	if (x->ctl->hooks.vrrp_show == NULL) {
		reply_error(x->out, "vrrp is not available");
		return;
	}
	x->ctl->hooks.vrrp_show(x->ctl->hooks.arg, x->json, x->out);
}

/* ---- resolvers ---- */

static void cmd_show_resolvers(struct cmd *x)
{
	if (x->ctl->hooks.resolvers_show == NULL) {
		reply_error(x->out, "resolvers are not available");
		return;
	}
	x->ctl->hooks.resolvers_show(x->ctl->hooks.arg, x->json, x->out);
}

static void cmd_vrrp_admin(struct cmd *x)
{
	char msg[256];

	if (x->ctl->hooks.vrrp_admin == NULL) {
		reply_error(x->out, "vrrp is not available");
		return;
	}
	msg[0] = '\0';
	if (x->ctl->hooks.vrrp_admin(x->ctl->hooks.arg, x->argv[2],
				     strcmp(x->argv[1], "leave") == 0, msg, sizeof(msg)) < 0)
		reply_error(x->out, "%s", msg);
	else
		reply_ok(x, "%s", msg);
}

/* ---- cluster ---- */

static void cmd_show_cluster(struct cmd *x)
{
	if (x->ctl->hooks.cluster_show == NULL) {
		reply_error(x->out, "cluster is not available");
		return;
	}
	x->ctl->hooks.cluster_show(x->ctl->hooks.arg, x->json, x->out);
}

static const struct cmd_entry commands[] = {
    {"help", NULL, 1, 1, CTL_LEVEL_USER, cmd_help, "help"},
    {"show", "info", 2, 2, CTL_LEVEL_USER, cmd_show_info, "show info"},
    {"show", "listeners", 2, 2, CTL_LEVEL_USER, cmd_show_listeners, "show listeners"},
    {"show", "routes", 2, 3, CTL_LEVEL_USER, cmd_show_routes, "show routes [LISTEN]"},
    {"show", "pools", 2, 2, CTL_LEVEL_USER, cmd_show_pools, "show pools"},
    {"show", "servers", 2, 3, CTL_LEVEL_USER, cmd_show_servers, "show servers [POOL]"},
    {"show", "metrics", 2, 2, CTL_LEVEL_USER, cmd_show_metrics, "show metrics"},
    {"server", "ready", 3, 3, CTL_LEVEL_ADMIN, cmd_server_admin, "server ready POOL/SERVER"},
    {"server", "drain", 3, 5, CTL_LEVEL_ADMIN, cmd_server_admin,
     "server drain POOL/SERVER [within DURATION]"},
    {"server", "maint", 3, 3, CTL_LEVEL_ADMIN, cmd_server_admin, "server maint POOL/SERVER"},
    {"server", "weight", 4, 4, CTL_LEVEL_ADMIN, cmd_server_weight,
     "server weight POOL/SERVER 0-256"},
    {"server", "shutdown-sessions", 3, 3, CTL_LEVEL_ADMIN, cmd_server_shutdown,
     "server shutdown-sessions POOL/SERVER"},
    {"server", "add", 5, 23, CTL_LEVEL_ADMIN, cmd_server_add,
     "server add POOL NAME HOST:PORT [weight N] [maxconn N] [backup] [send-proxy "
     "v1|v2|none] [check on|off|port N] [agent on|off|port N] [ready]"},
    {"server", "del", 3, 4, CTL_LEVEL_ADMIN, cmd_server_del, "server del POOL/SERVER [force]"},
    {"wait", "drained", 3, 4, CTL_LEVEL_USER, cmd_wait, "wait drained POOL/SERVER [TIMEOUT]"},
    {"wait", "up", 3, 4, CTL_LEVEL_USER, cmd_wait, "wait up POOL/SERVER [TIMEOUT]"},
    {"reload", NULL, 1, 2, CTL_LEVEL_ADMIN, cmd_reload, "reload [check]"},
    {"takeover", NULL, 1, 1, CTL_LEVEL_ADMIN, cmd_takeover,
     "takeover (used by sluice --takeover: binary upgrade)"},
    {"show", "vrrp", 2, 2, CTL_LEVEL_USER, cmd_show_vrrp, "show vrrp"},
    {"show", "resolvers", 2, 2, CTL_LEVEL_USER, cmd_show_resolvers, "show resolvers"},
    {"vrrp", "leave", 3, 3, CTL_LEVEL_ADMIN, cmd_vrrp_admin, "vrrp leave NAME"},
    {"vrrp", "join", 3, 3, CTL_LEVEL_ADMIN, cmd_vrrp_admin, "vrrp join NAME"},
    {"show", "cluster", 2, 2, CTL_LEVEL_USER, cmd_show_cluster, "show cluster"},
    {"clear", "lateness", 2, 2, CTL_LEVEL_ADMIN, cmd_clear_lateness, "clear lateness"},
    {"show", "announce", 2, 2, CTL_LEVEL_USER, cmd_show_announce, "show announce"},
    {"announce", "withdraw", 3, 3, CTL_LEVEL_ADMIN, cmd_announce_admin,
     "announce withdraw NAME|all"},
    {"announce", "restore", 3, 3, CTL_LEVEL_ADMIN, cmd_announce_admin, "announce restore NAME|all"},
    {"node", "drain", 2, 4, CTL_LEVEL_ADMIN, cmd_node, "node drain [within DURATION]"},
    {"node", "ready", 2, 2, CTL_LEVEL_ADMIN, cmd_node, "node ready"},
    {"wait", "idle", 2, 3, CTL_LEVEL_USER, cmd_wait_idle, "wait idle [TIMEOUT]"},
    /* source ACLs and per-source limits */
    {"acl", "add", 5, 7, CTL_LEVEL_ADMIN, cmd_acl_add,
     "acl add LISTENER deny|allow CIDR [for DURATION]"},
    {"acl", "del", 4, 4, CTL_LEVEL_ADMIN, cmd_acl_del, "acl del LISTENER CIDR"},
    {"show", "acl", 3, 3, CTL_LEVEL_USER, cmd_show_acl, "show acl LISTENER"},
    {"show", "sources", 3, 5, CTL_LEVEL_USER, cmd_show_sources, "show sources LISTENER [top N]"},
    {"sources", "kill", 4, 4, CTL_LEVEL_ADMIN, cmd_sources_kill, "sources kill LISTENER CIDR"},
    {NULL, NULL, 0, 0, CTL_LEVEL_USER, NULL, NULL},
};

void ctl_commands(ctl_command_fn fn, void *arg)
{
	for (size_t i = 0; commands[i].w1 != NULL; i++)
		fn(arg, commands[i].w1, commands[i].w2, commands[i].usage,
		   commands[i].level == CTL_LEVEL_ADMIN);
}

static void cmd_help(struct cmd *x)
{
	if (x->json) {
		ctl_buf_printf(x->out, "[");
		for (size_t i = 0; commands[i].w1 != NULL; i++) {
			ctl_buf_printf(x->out, "%s{\"usage\":", i ? "," : "");
			ctl_json_str(x->out, commands[i].usage);
			ctl_buf_printf(x->out, ",\"level\":\"%s\"}",
				       commands[i].level == CTL_LEVEL_ADMIN ? "admin" : "user");
		}
		ctl_buf_printf(x->out, "]\n\n");
		return;
	}
	ctl_buf_printf(x->out, "commands (prefix any with 'json ' for a JSON reply):\n");
	for (size_t i = 0; commands[i].w1 != NULL; i++)
		ctl_buf_printf(x->out, "  %s%s\n", commands[i].usage,
			       commands[i].level == CTL_LEVEL_ADMIN ? "  (admin)" : "");
	ctl_buf_printf(x->out, "\n");
}

void ctl_cmd_run(struct ctl *c, struct ctl_client *cl, enum ctl_level level, char *line,
		 struct ctl_buf *out)
{
	char *argv[CTL_MAX_ARGS];
	struct cmd x = {.ctl = c, .cl = cl, .out = out};
	const struct cmd_entry *e = NULL, *near = NULL;
	int argc = ctl_tokenize(line, argv, CTL_MAX_ARGS);

	if (argc < 0) {
		reply_error(out, "unreadable command (control characters or more than %d words)",
			    CTL_MAX_ARGS);
		return;
	}
	if (argc > 0 && strcmp(argv[0], "json") == 0) {
		x.json = true;
		argc--;
		memmove(argv, argv + 1, (size_t)argc * sizeof(argv[0]));
	}
	if (argc == 0) {
		reply_error(out, "empty command (try 'help')");
		return;
	}
	for (size_t i = 0; commands[i].w1 != NULL && e == NULL; i++) {
		if (strcmp(commands[i].w1, argv[0]) != 0)
			continue;
		near = &commands[i];
		if (commands[i].w2 == NULL || (argc > 1 && strcmp(commands[i].w2, argv[1]) == 0))
			e = &commands[i];
	}
	if (e == NULL) {
		if (near != NULL)
			reply_error(out, "unknown command '%s%s%s' (try 'help'; e.g. %s)", argv[0],
				    argc > 1 ? " " : "", argc > 1 ? argv[1] : "", near->usage);
		else
			reply_error(out, "unknown command '%s' (try 'help')", argv[0]);
		return;
	}
	if (e->level == CTL_LEVEL_ADMIN && level != CTL_LEVEL_ADMIN) {
		reply_error(out, "permission denied");
		return;
	}
	if (argc < e->min_args || argc > e->max_args) {
		reply_error(out, "wrong number of arguments (usage: %s)", e->usage);
		return;
	}
	x.argc = argc;
	x.argv = argv;
	e->fn(&x);
}

void ctl_execute(struct ctl *c, enum ctl_level level, const char *line, struct ctl_buf *out)
{
	char buf[CTL_LINE_MAX + 1];

	util_strlcpy(buf, line, sizeof(buf));
	ctl_cmd_run(c, NULL, level, buf, out);
}
