/* ctl types: what core tells the control socket through hooks. ctl sees
 * pools and servers through the pool API, everything else only through
 * these hooks (listeners, connections, reload), never proxy internals. */
#ifndef SLUICE_CTL_T_H
#define SLUICE_CTL_T_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sluice/util-t.h"

struct pool;
struct pool_server;
struct ctl_buf;

/* Clients each door accepts at once: every control socket its own
 * CTL_CONTROL_CLIENTS_MAX, the metrics port CTL_METRICS_CLIENTS_MAX, so
 * that no door can take another's slots (64 idle connections to the
 * metrics port do not lock the operator out). One descriptor each, plus
 * the door's listening socket: ctl_fds_max() adds them up. */
#define CTL_CONTROL_CLIENTS_MAX 64
#define CTL_METRICS_CLIENTS_MAX 64

enum ctl_level {
	CTL_LEVEL_ADMIN,
	CTL_LEVEL_USER, /* show, wait and help only */
};

struct ctl_info {
	const char *version;
	int pid;
	uint64_t uptime_ms;
	unsigned workers;
	uint32_t maxconn;
	uint32_t cur_conns;
	uint64_t total_conns;
	uint64_t maxconn_reached;     /* times accepting stopped at maxconn */
	uint64_t bufmem_used, bufmem; /* relay buffers and pipes: in use, ceiling (bytes) */
	uint64_t no_memory;	      /* connections closed for want of a relay buffer */
	bool krelay;		      /* the kernel relay is loaded */
	uint64_t krelay_conns;	      /* connections it took */
	uint64_t krelay_fallbacks;    /* asked for, stayed in user space */
	uint64_t krelay_broken;	      /* streams reset: the kernel relay lost their bytes */
	uint64_t krelay_cut;	      /* repeated segment heads it cut off */
	const char *conf_file;
	const char *last_reload; /* "none", "ok at ...", "failed at ...: why" */
	uint64_t reloads_ok, reloads_failed;
	/* how late the control loop started health checks and sent VRRP
	 * adverts after their due time, since start or `clear lateness` */
	struct util_lathist_summary late_checks, late_adverts;
};

/* Why the guard refused a client (as ctl_refusal_names). */
enum ctl_refusal {
	CTL_REFUSED_ACL,
	CTL_REFUSED_CONNS,
	CTL_REFUSED_RATE,
	CTL_REFUSED_TABLE_FULL,
};
#define CTL_NREFUSALS 4

struct ctl_listener_row {
	char name[64];
	char binds[256];
	char pool[64]; /* "-": none (TLS routes only) */
	uint32_t cur_conns, maxconn;
	uint64_t total_conns, bytes_in, bytes_out, proxy_header_errors, proxy_header_timeouts;
	uint64_t maxconn_reached; /* times accepting stopped at this maxconn */
	/* source ACLs and per-source limits */
	uint64_t refused[CTL_NREFUSALS];
	uint64_t sources, sources_capacity, sources_memory_bytes, source_evictions;
	uint64_t acl_file_entries, acl_config_entries, acl_runtime_entries;
	uint32_t nroutes; /* TLS routes */
};

/* One line of `show routes`: a TLS route of a listener (kind "sni",
 * "alpn", "no-sni", "not-tls"), its default pool ("default"), or the
 * connections closed before a pool was chosen ("closed", with reason). */
struct ctl_route_row {
	char listen[64];
	char kind[16];
	char sni[256];	 /* "": none */
	char alpn[256];	 /* "": any */
	char pool[64];	 /* "-": none (closed) */
	char reason[16]; /* "closed" rows: not-tls, no-route, bad-hello, ... */
	uint32_t active; /* open connections it routed (not for "closed") */
	uint64_t total;
};

/* One announce block, for show, metrics and the state file. */
struct ctl_announce_row {
	char name[64];
	char device[16];
	char addresses[1024]; /* "198.51.100.10/32 2001:db8::10/128" (cut with "...") */
	char pools[512];      /* required pools: "web:usable api:none" */
	char state[16];	      /* announced, hold-down, withdrawn */
	char cause[192];      /* why it is not announced; "" when it is */
	bool manual;	      /* withdrawn by the operator (announce withdraw) */
	uint64_t since_wall_ms, since_age_ms; /* last change of state */
	uint64_t hold_down_ms, hold_down_left_ms, withdraw_delay_ms;
	uint64_t announces, withdraws, errors;
};

/* The node as a whole (node drain). */
struct ctl_node_state {
	bool drained;
	bool stopping;
	uint64_t drain_left_ms; /* until open connections are closed; 0: no deadline */
};

/* A listener's ACL for show acl; the arrays are the caller's to free. */
struct ctl_acl_rule {
	struct util_cidr cidr;
	bool deny;
	bool runtime;		/* else a line of the configuration */
	uint64_t expires_in_ms; /* a runtime entry for a duration; 0: stays */
};

struct ctl_acl_file {
	char path[1024];
	bool deny;
};

struct ctl_acl_view {
	bool default_deny;
	struct ctl_acl_rule *rules;
	size_t nrules;
	struct ctl_acl_file *files;
	size_t nfiles;
	uint64_t file_entries; /* distinct prefixes of all the files */
};

/* A listener's tracked sources for show sources; rows are the caller's to
 * free. */
struct ctl_source_row {
	struct util_cidr src;
	uint32_t conns;
	double rate; /* connection attempts per second, recent */
	uint64_t total, refused;
};

struct ctl_sources_view {
	struct ctl_source_row *rows;
	size_t nrows;
	uint64_t tracked, capacity, memory_bytes, evictions;
	uint32_t conns; /* limits: 0 none */
	uint32_t rate, burst;
	uint64_t rate_period_ms;
};

/* One runtime ACL entry, for the state file. */
typedef void (*ctl_acl_fn)(void *arg, const char *listener, bool deny, const struct util_cidr *cidr,
			   uint64_t until_wall_ms);

/* Provided by core; arg is passed back to every hook. Hooks may be NULL
 * where a feature is absent (the command then answers an error). */
struct ctl_hooks {
	void *arg;
	struct pool **(*pools)(void *arg, size_t *n);
	void (*info)(void *arg, struct ctl_info *out);
	size_t (*listeners)(void *arg, struct ctl_listener_row *rows, size_t max);
	/* rows of `show routes` (at most max filled); returns how many
	 * there are, which may be more than max */
	size_t (*routes)(void *arg, struct ctl_route_row *rows, size_t max);
	/* close the connections using s, spread over spread_ms */
	void (*close_server)(void *arg, struct pool_server *s, uint32_t spread_ms);
	/* a server was added / is being removed at runtime (health checks) */
	void (*server_added)(void *arg, struct pool_server *s, bool check);
	void (*server_removed)(void *arg, struct pool_server *s);
	/* reload the configuration, or only check it and describe the diff:
	 * it runs in the background; returns 0 with the id to ask about, or
	 * -1 with msg (refused) */
	int (*reload_start)(void *arg, bool check_only, char *msg, size_t len, uint64_t *id);
	/* the outcome of reload id: 1 while it runs, then 0 (done) or -1
	 * (failed), with msg (several lines allowed) */
	int (*reload_result)(void *arg, uint64_t id, char *msg, size_t len);
	/* servers cannot be added or deleted while this is true (a reload is
	 * changing the model) */
	bool (*model_busy)(void *arg);
	/* binary upgrade: hand the listening sockets over fd (the client's
	 * connection), then stop accepting and drain. Fills msg. */
	int (*takeover)(void *arg, int fd, char *msg, size_t len);
	/* VRRP: append every instance's state as a complete reply (table or
	 * JSON); leave or join the election of instance name (fills msg,
	 * returns 0 or -1). */
	void (*vrrp_show)(void *arg, bool json, struct ctl_buf *out);
	int (*vrrp_admin)(void *arg, const char *name, bool leave, char *msg, size_t len);
	/* second-chance forwarding: `show cluster` as a complete reply, and
	 * its metric families appended to the metrics (nothing when absent) */
	void (*cluster_show)(void *arg, bool json, struct ctl_buf *out);
	void (*cluster_metrics)(void *arg, struct ctl_buf *out);
	/* announce: fill at most max rows (rows may be NULL) and the node's
	 * state; returns how many blocks there are. Withdraw or restore one
	 * block or "all"; drain the node (withdraw everything, keep serving,
	 * close what is left after within_ms unless 0) or make it ready again.
	 * The changing ones fill msg and return 0 or -1 (nothing changed). */
	size_t (*announces)(void *arg, struct ctl_announce_row *rows, size_t max,
			    struct ctl_node_state *node);
	int (*announce_admin)(void *arg, const char *name, bool withdraw, char *msg, size_t len);
	int (*node_drain)(void *arg, bool drain, uint64_t within_ms, char *msg, size_t len);
	/* ---- source ACLs and per-source limits (guard) ----
	 * Each returns 0, or -1 with msg saying why and nothing changed. */
	/* a runtime entry for cidr (replacing one of the same prefix), for
	 * for_ms (0: until removed) */
	int (*acl_add)(void *arg, const char *listener, bool deny, const struct util_cidr *cidr,
		       uint64_t for_ms, char *msg, size_t len);
	int (*acl_del)(void *arg, const char *listener, const struct util_cidr *cidr, char *msg,
		       size_t len);
	int (*acl_view)(void *arg, const char *listener, struct ctl_acl_view *out, char *msg,
			size_t len);
	/* the top sources by connections and by rate (top of each) */
	int (*sources_view)(void *arg, const char *listener, size_t top,
			    struct ctl_sources_view *out, char *msg, size_t len);
	/* close the listener's connections from cidr; msg says what was done */
	int (*sources_kill)(void *arg, const char *listener, const struct util_cidr *cidr,
			    char *msg, size_t len);
	/* the state file: every runtime entry, and restoring one at start-up
	 * (until_wall_ms: its wall-clock expiry, 0 none) */
	void (*acl_each)(void *arg, ctl_acl_fn fn, void *fnarg);
	int (*acl_restore)(void *arg, const char *listener, bool deny, const struct util_cidr *cidr,
			   uint64_t until_wall_ms, char *msg, size_t len);
	/* `clear lateness`: empty the lateness histograms of show info */
	void (*clear_lateness)(void *arg);
	/* DNS: append every name the resolvers follow as a complete reply
	 * (table or JSON); append more Prometheus families to the metrics;
	 * write what a server's host name stands at into buf ("" when it has
	 * none) */
	void (*resolvers_show)(void *arg, bool json, struct ctl_buf *out);
	void (*metrics_more)(void *arg, struct ctl_buf *out);
	void (*server_dns)(void *arg, const struct pool_server *s, char *buf, size_t len);
	/* `server add` with a host name: start looking host up through pool's
	 * resolvers (0 with an id to ask about, or -1 with msg); its result:
	 * 1 while it runs, 0 with the address (at port), -1 with msg. The
	 * loop runs on meanwhile. NULL: host names are refused. */
	int (*lookup_start)(void *arg, const char *pool, const char *host, uint64_t *id, char *msg,
			    size_t len);
	int (*lookup_result)(void *arg, uint64_t id, uint16_t port, struct util_addr *out,
			     char *msg, size_t len);
};

#endif
