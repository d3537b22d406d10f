/* ctl_metrics: Prometheus text exposition (format 0.0.4) of the daemon,
 * listeners, pools and servers: each family once, with HELP and TYPE,
 * then its samples. Read-only over the model and the hooks. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "ctl-int.h"
#include "sluice/log.h"
#include "sluice/pool.h"
#include "sluice/util.h"

/* Label values: escape backslash, quote and newline. Names rarely need
 * it, so the common case is one copy. */
static void label(struct ctl_buf *b, const char *s)
{
	size_t n = strcspn(s, "\\\"\n");

	ctl_buf_append(b, s, n);
	for (s += n; *s != '\0'; s++) {
		if (*s == '\\' || *s == '"')
			ctl_buf_printf(b, "\\%c", *s);
		else if (*s == '\n')
			ctl_buf_printf(b, "\\n");
		else
			ctl_buf_append(b, s, 1);
	}
}

static void family(struct ctl_buf *b, const char *name, const char *type, const char *help)
{
	ctl_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

enum srv_metric {
	SM_UP,
	SM_ADMIN,
	SM_WEIGHT,
	SM_ACTIVE,
	SM_TOTAL,
	SM_BYTES_IN,
	SM_BYTES_OUT,
	SM_ERRORS,
	SM_LOCAL_ERRORS,
	SM_CHECKS,
	SM_CHECKS_FAILED,
	SM_STATE_CHANGES,
};

static const struct {
	const char *name, *type, *help;
} srv_metrics[] = {
    [SM_UP] = {"sluice_server_up", "gauge", "1 when the server's health is up"},
    [SM_ADMIN] = {"sluice_server_admin_state", "gauge",
		  "1 for the server's administrative state (ready, drain, maint)"},
    [SM_WEIGHT] = {"sluice_server_weight", "gauge", "Configured or runtime weight"},
    [SM_ACTIVE] = {"sluice_server_connections", "gauge", "Open connections to the server"},
    [SM_TOTAL] = {"sluice_server_connections_total", "counter", "Connections sent to the server"},
    [SM_BYTES_IN] = {"sluice_server_received_bytes_total", "counter",
		     "Bytes received from the server"},
    [SM_BYTES_OUT] = {"sluice_server_sent_bytes_total", "counter", "Bytes sent to the server"},
    [SM_ERRORS] = {"sluice_server_connect_errors_total", "counter",
		   "Failed connection attempts to the server"},
    [SM_LOCAL_ERRORS] = {"sluice_server_local_errors_total", "counter",
			 "Connections and checks to the server that failed here, not at the "
			 "server (out of descriptors, memory, buffers or ports)"},
    [SM_CHECKS] = {"sluice_server_checks_total", "counter", "Health and agent checks done"},
    [SM_CHECKS_FAILED] = {"sluice_server_checks_failed_total", "counter",
			  "Health and agent checks that failed"},
    [SM_STATE_CHANGES] = {"sluice_server_health_changes_total", "counter",
			  "Changes of health between up and down"},
};

/* name{pool="P",server="S" (the caller closes the braces) */
static void server_labels(struct ctl_buf *b, const char *name, const struct pool_server *s)
{
	ctl_buf_append(b, name, strlen(name));
	ctl_buf_append(b, "{pool=\"", 7);
	label(b, s->pool->name);
	ctl_buf_append(b, "\",server=\"", 10);
	label(b, s->name);
}

static void server_sample(struct ctl_buf *b, enum srv_metric m, const struct pool_server *s)
{
	static const enum pool_admin admins[] = {POOL_ADMIN_READY, POOL_ADMIN_DRAIN,
						 POOL_ADMIN_MAINT};
	uint64_t v = 0;

	if (m == SM_ADMIN) {
		for (size_t i = 0; i < UTIL_ARRAY_LEN(admins); i++) {
			server_labels(b, srv_metrics[m].name, s);
			ctl_buf_printf(b, "\",state=\"%s\"} %d\n", pool_admin_name(admins[i]),
				       s->admin == admins[i]);
		}
		return;
	}
	switch (m) {
	case SM_UP:
		v = s->health == POOL_HEALTH_UP;
		break;
	case SM_WEIGHT:
		v = s->weight;
		break;
	case SM_ACTIVE:
		v = atomic_load(&s->cur_conns);
		break;
	case SM_TOTAL:
		v = atomic_load(&s->total_conns);
		break;
	case SM_BYTES_IN:
		v = atomic_load(&s->bytes_in);
		break;
	case SM_BYTES_OUT:
		v = atomic_load(&s->bytes_out);
		break;
	case SM_ERRORS:
		v = atomic_load(&s->connect_errors);
		break;
	case SM_LOCAL_ERRORS:
		v = atomic_load(&s->local_errors);
		break;
	case SM_CHECKS:
		v = s->hs.checks;
		break;
	case SM_CHECKS_FAILED:
		v = s->hs.checks_failed;
		break;
	case SM_STATE_CHANGES:
		v = s->hs.state_changes;
		break;
	case SM_ADMIN:
		break;
	}
	server_labels(b, srv_metrics[m].name, s);
	ctl_buf_printf(b, "\"} %llu\n", (unsigned long long)v);
}

static void pool_metrics(struct ctl_buf *b, struct pool **pools, size_t n)
{
	static const char *const names[] = {"sluice_pool_connections_total",
					    "sluice_pool_no_server_total",
					    "sluice_pool_queue_timeouts_total",
					    "sluice_pool_queue_full_total", "sluice_pool_queued"};
	static const char *const helps[] = {
	    "Connections accepted for the pool",
	    "Connections closed because no server was usable",
	    "Connections closed after waiting too long in the queue",
	    "Connections closed because the queue was full",
	    "Connections waiting for a server slot",
	};

	for (size_t k = 0; k < UTIL_ARRAY_LEN(names); k++) {
		family(b, names[k], k == 4 ? "gauge" : "counter", helps[k]);
		for (size_t i = 0; i < n; i++) {
			const struct pool *p = pools[i];
			uint64_t v = k == 0   ? atomic_load(&p->total_conns)
				     : k == 1 ? atomic_load(&p->no_server)
				     : k == 2 ? atomic_load(&p->queue_timeouts)
				     : k == 3 ? atomic_load(&p->queue_full)
					      : atomic_load(&p->queued);

			ctl_buf_printf(b, "%s{pool=\"", names[k]);
			label(b, p->name);
			ctl_buf_printf(b, "\"} %llu\n", (unsigned long long)v);
		}
	}
}

/* The guard of each listener: refusals by reason, the per-source table,
 * ACL entries by origin. */
static void guard_metrics(struct ctl_buf *b, const struct ctl_listener_row *rows, size_t n)
{
	static const char *const gauges[] = {
	    "sluice_listener_sources", "sluice_listener_sources_capacity",
	    "sluice_listener_sources_memory_bytes", "sluice_listener_source_evictions_total"};
	static const char *const helps[] = {
	    "Sources tracked by the per-source limit table",
	    "Sources the per-source limit table holds at most",
	    "Memory of the listener's limit tables and ACL file tables",
	    "Idle sources evicted from a full per-source table",
	};
	static const char *const origins[] = {"file", "config", "runtime"};

	family(b, "sluice_listener_refused_total", "counter",
	       "Clients refused at accept, by reason (acl, conns, rate, table-full)");
	for (size_t i = 0; i < n; i++) {
		for (int k = 0; k < CTL_NREFUSALS; k++) {
			ctl_buf_printf(b, "sluice_listener_refused_total{listener=\"");
			label(b, rows[i].name);
			ctl_buf_printf(b, "\",reason=\"%s\"} %llu\n", ctl_refusal_names[k],
				       (unsigned long long)rows[i].refused[k]);
		}
	}
	for (size_t k = 0; k < UTIL_ARRAY_LEN(gauges); k++) {
		family(b, gauges[k], k == 3 ? "counter" : "gauge", helps[k]);
		for (size_t i = 0; i < n; i++) {
			uint64_t v = k == 0   ? rows[i].sources
				     : k == 1 ? rows[i].sources_capacity
				     : k == 2 ? rows[i].sources_memory_bytes
					      : rows[i].source_evictions;

			ctl_buf_printf(b, "%s{listener=\"", gauges[k]);
			label(b, rows[i].name);
			ctl_buf_printf(b, "\"} %llu\n", (unsigned long long)v);
		}
	}
	family(b, "sluice_listener_acl_entries", "gauge",
	       "Source ACL prefixes by origin (file, config, runtime)");
	for (size_t i = 0; i < n; i++) {
		uint64_t v[3] = {rows[i].acl_file_entries, rows[i].acl_config_entries,
				 rows[i].acl_runtime_entries};

		for (int k = 0; k < 3; k++) {
			ctl_buf_printf(b, "sluice_listener_acl_entries{listener=\"");
			label(b, rows[i].name);
			ctl_buf_printf(b, "\",origin=\"%s\"} %llu\n", origins[k],
				       (unsigned long long)v[k]);
		}
	}
}

static void listener_metrics(struct ctl *c, struct ctl_buf *b)
{
	static const char *const names[] = {"sluice_listener_connections",
					    "sluice_listener_connections_total",
					    "sluice_listener_received_bytes_total",
					    "sluice_listener_sent_bytes_total",
					    "sluice_listener_proxy_header_errors_total",
					    "sluice_listener_proxy_header_timeouts_total",
					    "sluice_listener_maxconn_reached_total"};
	static const char *const helps[] = {
	    "Open client connections",
	    "Client connections accepted",
	    "Bytes received from clients",
	    "Bytes sent to clients",
	    "Connections closed for a malformed or oversized PROXY header",
	    "Connections closed because their PROXY header did not arrive within timeout "
	    "proxy-header",
	    "Times accepting stopped at the listener's maxconn (clients wait in the listen "
	    "queue)",
	};
	struct ctl_listener_row rows[256];
	size_t n = c->hooks.listeners(c->hooks.arg, rows, UTIL_ARRAY_LEN(rows));

	for (size_t k = 0; k < UTIL_ARRAY_LEN(names); k++) {
		family(b, names[k], k == 0 ? "gauge" : "counter", helps[k]);
		for (size_t i = 0; i < n; i++) {
			uint64_t v = k == 0   ? rows[i].cur_conns
				     : k == 1 ? rows[i].total_conns
				     : k == 2 ? rows[i].bytes_in
				     : k == 3 ? rows[i].bytes_out
				     : k == 4 ? rows[i].proxy_header_errors
				     : k == 5 ? rows[i].proxy_header_timeouts
					      : rows[i].maxconn_reached;

			ctl_buf_printf(b, "%s{listener=\"", names[k]);
			label(b, rows[i].name);
			ctl_buf_printf(b, "\"} %llu\n", (unsigned long long)v);
		}
	}
	guard_metrics(b, rows, n);
}

/* TLS routes: connections each route took (open and in all), and those
 * closed before a pool was chosen, by reason. */
static void route_metrics(struct ctl *c, struct ctl_buf *b)
{
	struct ctl_route_row *rows;
	size_t n = c->hooks.routes != NULL ? c->hooks.routes(c->hooks.arg, NULL, 0) : 0;

	if (n == 0 || (rows = calloc(n, sizeof(*rows))) == NULL)
		return;
	n = UTIL_MIN(n, c->hooks.routes(c->hooks.arg, rows, n));
	for (int k = 0; k < 3; k++) {
		static const char *const names[] = {"sluice_route_connections",
						    "sluice_route_connections_total",
						    "sluice_listener_unrouted_total"};
		static const char *const helps[] = {
		    "Open connections a TLS route (or the default pool) took",
		    "Connections a TLS route (or the default pool) took",
		    "Connections of a listener with TLS routes closed before a pool was "
		    "chosen, by reason",
		};

		family(b, names[k], k == 0 ? "gauge" : "counter", helps[k]);
		for (size_t i = 0; i < n; i++) {
			const struct ctl_route_row *r = &rows[i];
			bool closed = strcmp(r->kind, "closed") == 0;
			char desc[600];

			if (closed != (k == 2))
				continue;
			ctl_buf_printf(b, "%s{listener=\"", names[k]);
			label(b, r->listen);
			if (closed) {
				ctl_buf_printf(b, "\",reason=\"%s\"} %llu\n", r->reason,
					       (unsigned long long)r->total);
				continue;
			}
			ctl_route_desc(r, desc, sizeof(desc));
			ctl_buf_printf(b, "\",route=\"");
			label(b, desc);
			ctl_buf_printf(b, "\",pool=\"");
			label(b, r->pool);
			ctl_buf_printf(b, "\"} %llu\n",
				       (unsigned long long)(k == 0 ? r->active : r->total));
		}
	}
	free(rows);
}

/* The control loop's lateness: gauges per quantile (1 is the maximum) as
 * a Prometheus summary would have them, and the number of events. */
static void lateness_metrics(struct ctl_buf *b, const struct ctl_info *in)
{
	static const char *const qs[] = {"0.5", "0.99", "1"};
	const struct {
		const char *name;
		const struct util_lathist_summary *s;
	} t[] = {{"check", &in->late_checks}, {"advert", &in->late_adverts}};

	family(b, "sluice_lateness_seconds", "gauge",
	       "How late the control loop started health checks and sent VRRP adverts after "
	       "their due time, by quantile since start or clear lateness (1: the maximum)");
	for (size_t i = 0; i < UTIL_ARRAY_LEN(t); i++)
		for (size_t k = 0; k < UTIL_ARRAY_LEN(qs); k++) {
			uint64_t us = k == 0   ? t[i].s->p50_us
				      : k == 1 ? t[i].s->p99_us
					       : t[i].s->max_us;

			ctl_buf_printf(b,
				       "sluice_lateness_seconds{timer=\"%s\",quantile=\"%s\"} "
				       "%llu.%06llu\n",
				       t[i].name, qs[k], (unsigned long long)(us / 1000000),
				       (unsigned long long)(us % 1000000));
		}
	family(
	    b, "sluice_lateness_events_total", "counter",
	    "Health checks started and VRRP adverts sent, as counted in sluice_lateness_seconds");
	for (size_t i = 0; i < UTIL_ARRAY_LEN(t); i++)
		ctl_buf_printf(b, "sluice_lateness_events_total{timer=\"%s\"} %llu\n", t[i].name,
			       (unsigned long long)t[i].s->n);
}

static void announce_metrics(struct ctl *c, struct ctl_buf *b)
{
	static const char *const names[] = {
	    "sluice_announce_announced", "sluice_announce_withdrawn_by_operator",
	    "sluice_announce_announces_total", "sluice_announce_withdraws_total",
	    "sluice_announce_errors_total"};
	static const char *const helps[] = {
	    "1 while the block's addresses are on its device (announced to the routers)",
	    "1 while the operator keeps the block withdrawn (announce withdraw)",
	    "Times the block's addresses were announced",
	    "Times the block's addresses were withdrawn",
	    "Addresses that could not be added to or deleted from the device",
	};
	struct ctl_node_state node;
	struct ctl_announce_row *rows;
	size_t n;

	if (c->hooks.announces == NULL)
		return;
	n = c->hooks.announces(c->hooks.arg, NULL, 0, &node);
	family(b, "sluice_node_drained", "gauge", "1 while the node is drained (node drain)");
	ctl_buf_printf(b, "sluice_node_drained %d\n", node.drained);
	rows = calloc(n + 1, sizeof(*rows));
	if (rows == NULL)
		return;
	n = UTIL_MIN(n, c->hooks.announces(c->hooks.arg, rows, n, &node));
	/* a family needs samples: none at all without announce blocks */
	for (size_t k = 0; n > 0 && k < UTIL_ARRAY_LEN(names); k++) {
		family(b, names[k], k < 2 ? "gauge" : "counter", helps[k]);
		for (size_t i = 0; i < n; i++) {
			const struct ctl_announce_row *r = &rows[i];
			uint64_t v = k == 0   ? strcmp(r->state, "announced") == 0
				     : k == 1 ? r->manual
				     : k == 2 ? r->announces
				     : k == 3 ? r->withdraws
					      : r->errors;

			ctl_buf_printf(b, "%s{announce=\"", names[k]);
			label(b, r->name);
			ctl_buf_printf(b, "\"} %llu\n", (unsigned long long)v);
		}
	}
	free(rows);
}

/* Per log target: lines sent and dropped; the queue's drops as target "queue". */
static void log_metrics(struct ctl_buf *b)
{
	struct log_target_stats st[LOG_MAX_TARGETS];
	size_t n = log_stats(st, LOG_MAX_TARGETS);

	family(b, "sluice_log_lines_total", "counter", "Log lines handed to each log target");
	for (size_t i = 0; i < n; i++) {
		ctl_buf_printf(b, "sluice_log_lines_total{target=\"");
		label(b, st[i].name);
		ctl_buf_printf(b, "\"} %llu\n", (unsigned long long)st[i].sent);
	}
	family(b, "sluice_log_dropped_total", "counter",
	       "Log lines a target could not take (target \"queue\": a full log queue)");
	for (size_t i = 0; i < n; i++) {
		ctl_buf_printf(b, "sluice_log_dropped_total{target=\"");
		label(b, st[i].name);
		ctl_buf_printf(b, "\"} %llu\n", (unsigned long long)st[i].dropped);
	}
	ctl_buf_printf(b, "sluice_log_dropped_total{target=\"queue\"} %llu\n",
		       (unsigned long long)log_queue_dropped());
}

/* The daemon, lateness, log, listener and pool families: one part. */
static void head_metrics(struct ctl *c, struct ctl_buf *out)
{
	struct ctl_info in = {0};
	size_t n;
	struct pool **pools = c->hooks.pools(c->hooks.arg, &n);

	c->hooks.info(c->hooks.arg, &in);
	family(out, "sluice_info", "gauge", "Version of the running daemon");
	ctl_buf_printf(out, "sluice_info{version=\"");
	label(out, in.version);
	ctl_buf_printf(out, "\"} 1\n");
	family(out, "sluice_uptime_seconds", "gauge", "Seconds since the daemon started");
	ctl_buf_printf(out, "sluice_uptime_seconds %llu\n",
		       (unsigned long long)(in.uptime_ms / 1000));
	family(out, "sluice_connections", "gauge", "Open client connections, all listeners");
	ctl_buf_printf(out, "sluice_connections %u\n", in.cur_conns);
	family(out, "sluice_connections_total", "counter", "Client connections accepted");
	ctl_buf_printf(out, "sluice_connections_total %llu\n", (unsigned long long)in.total_conns);
	family(out, "sluice_maxconn", "gauge", "Effective global connection limit");
	ctl_buf_printf(out, "sluice_maxconn %u\n", in.maxconn);
	family(out, "sluice_maxconn_reached_total", "counter",
	       "Times accepting stopped at the global maxconn (clients wait in the listen queues)");
	ctl_buf_printf(out, "sluice_maxconn_reached_total %llu\n",
		       (unsigned long long)in.maxconn_reached);
	family(out, "sluice_bufmem_bytes", "gauge",
	       "Relay buffers (cached ones too) and pipes in use, bytes");
	ctl_buf_printf(out, "sluice_bufmem_bytes %llu\n", (unsigned long long)in.bufmem_used);
	family(out, "sluice_bufmem_limit_bytes", "gauge", "The bufmem ceiling, bytes");
	ctl_buf_printf(out, "sluice_bufmem_limit_bytes %llu\n", (unsigned long long)in.bufmem);
	family(out, "sluice_no_memory_total", "counter",
	       "Connections closed because no relay buffer could be had (end=no-memory)");
	ctl_buf_printf(out, "sluice_no_memory_total %llu\n", (unsigned long long)in.no_memory);
	family(out, "sluice_kernel_relay_connections_total", "counter",
	       "Connections relayed in the kernel (sockmap)");
	ctl_buf_printf(out, "sluice_kernel_relay_connections_total %llu\n",
		       (unsigned long long)in.krelay_conns);
	family(out, "sluice_kernel_relay_fallbacks_total", "counter",
	       "Connections that asked for the kernel relay and stayed in user space");
	ctl_buf_printf(out, "sluice_kernel_relay_fallbacks_total %llu\n",
		       (unsigned long long)in.krelay_fallbacks);
	family(out, "sluice_kernel_relay_broken_total", "counter",
	       "Kernel-relayed streams reset because bytes were lost or relayed twice");
	ctl_buf_printf(out, "sluice_kernel_relay_broken_total %llu\n",
		       (unsigned long long)in.krelay_broken);
	family(out, "sluice_kernel_relay_repeats_cut_total", "counter",
	       "Segments the kernel handed the relay program with bytes it had already seen; "
	       "the repeated bytes were cut off");
	ctl_buf_printf(out, "sluice_kernel_relay_repeats_cut_total %llu\n",
		       (unsigned long long)in.krelay_cut);
	family(out, "sluice_reloads_total", "counter", "Configuration reloads by result");
	ctl_buf_printf(out, "sluice_reloads_total{result=\"ok\"} %llu\n",
		       (unsigned long long)in.reloads_ok);
	ctl_buf_printf(out, "sluice_reloads_total{result=\"failed\"} %llu\n",
		       (unsigned long long)in.reloads_failed);
	lateness_metrics(out, &in);
	log_metrics(out);
	listener_metrics(c, out);
	route_metrics(c, out);
	pool_metrics(out, pools, n);
	if (c->hooks.metrics_more != NULL)
		c->hooks.metrics_more(c->hooks.arg, out);
	if (c->hooks.cluster_metrics != NULL)
		c->hooks.cluster_metrics(c->hooks.arg, out);
	announce_metrics(c, out);
}

/* Server samples per part: about 25 us of work each. */
#define SAMPLES_PER_PART 256

bool ctl_metrics_step(struct ctl *c, struct ctl_metrics_text *t)
{
	size_t n, done = 0;
	struct pool **pools;

	if (t->done)
		return true;
	if (t->section == 0) {
		head_metrics(c, &t->buf);
		t->section = 1;
		return false;
	}
	pools = c->hooks.pools(c->hooks.arg, &n);
	while (t->m < UTIL_ARRAY_LEN(srv_metrics) && done < SAMPLES_PER_PART) {
		if (t->pi == 0 && t->si == 0)
			family(&t->buf, srv_metrics[t->m].name, srv_metrics[t->m].type,
			       srv_metrics[t->m].help);
		if (t->pi >= n) {
			t->m++;
			t->pi = t->si = 0;
			continue;
		}
		if (t->si >= pools[t->pi]->nservers) {
			t->pi++;
			t->si = 0;
			/* keep the family header from repeating at pi 0, si 0 */
			if (t->pi >= n) {
				t->m++;
				t->pi = t->si = 0;
			}
			continue;
		}
		server_sample(&t->buf, (enum srv_metric)t->m, pools[t->pi]->servers[t->si++]);
		done++;
	}
	t->done = t->m >= UTIL_ARRAY_LEN(srv_metrics);
	return t->done;
}

#define GZIP_PART (64u << 10) /* text compressed per part: about 0.5 ms */

/* Room for at least n more bytes in b. Returns 0 or -1. */
static int gz_room(struct ctl_buf *b, size_t n)
{
	size_t cap;
	char *d;

	if (b->cap - b->len >= n)
		return 0;
	cap = UTIL_MAX(b->cap * 2, b->len + n);
	d = realloc(b->data, cap);
	if (d == NULL)
		return -1;
	b->data = d;
	b->cap = cap;
	return 0;
}

static void gz_end(struct ctl_metrics_text *t, bool failed)
{
	if (t->zs != NULL) {
		deflateEnd(t->zs);
		free(t->zs);
		t->zs = NULL;
	}
	t->gz_done = !failed;
	t->gz_failed = failed;
	if (failed)
		ctl_buf_free(&t->gz);
}

bool ctl_metrics_gzip_step(struct ctl_metrics_text *t)
{
	size_t in;
	int flush;

	if (t->gz_done || t->gz_failed)
		return true;
	if (t->zs == NULL) {
		/* level 1: the text is repetitive, more effort buys little */
		t->zs = calloc(1, sizeof(*t->zs));
		if (t->zs == NULL ||
		    deflateInit2(t->zs, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
			free(t->zs);
			t->zs = NULL;
			gz_end(t, true);
			return true;
		}
	}
	in = UTIL_MIN(t->buf.len - t->zin, GZIP_PART);
	flush = t->zin + in == t->buf.len ? Z_FINISH : Z_NO_FLUSH;
	t->zs->next_in = (unsigned char *)t->buf.data + t->zin;
	t->zs->avail_in = (unsigned)in;
	for (int i = 0; i < 64; i++) {
		int rc;

		if (gz_room(&t->gz, 32u << 10) < 0) {
			gz_end(t, true);
			return true;
		}
		t->zs->next_out = (unsigned char *)t->gz.data + t->gz.len;
		t->zs->avail_out = (unsigned)(t->gz.cap - t->gz.len);
		rc = deflate(t->zs, flush);
		t->gz.len = t->gz.cap - t->zs->avail_out;
		if (rc == Z_STREAM_END) {
			gz_end(t, false);
			return true;
		}
		if (rc != Z_OK && rc != Z_BUF_ERROR) {
			gz_end(t, true);
			return true;
		}
		if (t->zs->avail_in == 0 && flush == Z_NO_FLUSH)
			break;
	}
	t->zin += in - t->zs->avail_in;
	return false;
}

static void text_free(struct ctl *c, struct ctl_metrics_text *t)
{
	if (t->zs != NULL)
		gz_end(t, true);
	ctl_buf_free(&t->gz);
	ctl_buf_free(&t->buf);
	c->ntexts--;
	free(t);
}

struct ctl_metrics_text *ctl_metrics_get(struct ctl *c, uint64_t max_age_ms, uint64_t now_ms)
{
	struct ctl_metrics_text *t = c->metrics;

	/* a scrape shares the newest when it is young enough, and also when
	 * slow readers hold as many renderings as may be alive: a little
	 * staler then, rather than waiting or more memory */
	if (t != NULL && max_age_ms > 0 &&
	    (now_ms < t->born_ms + max_age_ms || c->ntexts >= CTL_METRICS_TEXTS_MAX)) {
		t->refs++;
		return t;
	}
	if (c->ntexts >= CTL_METRICS_TEXTS_MAX || (t = calloc(1, sizeof(*t))) == NULL)
		return NULL;
	c->ntexts++;
	t->born_ms = now_ms;
	t->refs = 2; /* the caller's and c->metrics' */
	if (c->metrics != NULL)
		ctl_metrics_put(c, c->metrics);
	c->metrics = t;
	return t;
}

void ctl_metrics_put(struct ctl *c, struct ctl_metrics_text *t)
{
	if (--t->refs > 0)
		return;
	if (c->metrics == t)
		c->metrics = NULL;
	text_free(c, t);
}

void ctl_metrics(struct ctl *c, struct ctl_buf *out)
{
	/* a private rendering, all at once (tests and the fuzzer) */
	struct ctl_metrics_text t = {.refs = 1};

	while (!ctl_metrics_step(c, &t))
		;
	if (t.buf.len > 0)
		ctl_buf_append(out, t.buf.data, t.buf.len);
	out->oom |= t.buf.oom;
	ctl_buf_free(&t.buf);
}

void ctl_metrics_family(struct ctl_buf *b, const char *name, const char *type, const char *help)
{
	family(b, name, type, help);
}

void ctl_metrics_label(struct ctl_buf *b, const char *s)
{
	label(b, s);
}
