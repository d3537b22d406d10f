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
	const char *conf_file;
	const char *last_reload; /* "none", "ok at ...", "failed at ...: why" */
	uint64_t reloads_ok, reloads_failed;
};

struct ctl_listener_row {
	char name[64];
	char binds[256];
	char pool[64];
	uint32_t cur_conns, maxconn;
	uint64_t total_conns, bytes_in, bytes_out, proxy_header_errors;
};

/* Provided by core; arg is passed back to every hook. Hooks may be NULL
 * where a feature is absent (the command then answers an error). */
struct ctl_hooks {
	void *arg;
	struct pool **(*pools)(void *arg, size_t *n);
	void (*info)(void *arg, struct ctl_info *out);
	size_t (*listeners)(void *arg, struct ctl_listener_row *rows, size_t max);
	/* close the connections using s, spread over spread_ms */
	void (*close_server)(void *arg, struct pool_server *s, uint32_t spread_ms);
	/* a server was added / is being removed at runtime (health checks) */
	void (*server_added)(void *arg, struct pool_server *s, bool check);
	void (*server_removed)(void *arg, struct pool_server *s);
	/* reload the configuration, or only check it and describe the diff;
	 * fills msg (several lines allowed). Returns 0 or -1. */
	int (*reload)(void *arg, bool check_only, char *msg, size_t len);
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
	/* `server add` with a host name: resolve it (blocking), as
	 * util_addr_resolve(); NULL: host names are refused */
	int (*resolve)(const char *host, uint16_t port, struct util_addr *out, char *err,
		       size_t errlen);
};

#endif
