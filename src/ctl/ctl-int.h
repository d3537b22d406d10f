/* ctl internals shared by ctl_server.c (sockets, clients, waiting
 * commands), ctl_cmd.c (the command table), ctl_metrics.c and ctl_state.c.
 * Only src/ctl includes it. */
#ifndef SLUICE_CTL_INT_H
#define SLUICE_CTL_INT_H

#include <ev.h>
#include <stdbool.h>

#include "sluice/ctl.h"
#include "sluice/list.h"
#include "sluice/log-t.h"
#include "sluice/pool-t.h"

#define CTL_LINE_MAX 4096
#define CTL_IDLE_TIMEOUT_S 60.0
#define CTL_MAX_ARGS 32
#define CTL_OUT_MAX (8u << 20) /* stop reading a client that does not read */

/* A waiting command ("wait drained", "wait up"): polled every 10 ms. */
enum ctl_wait_kind {
	CTL_WAIT_NONE,
	CTL_WAIT_DRAINED,
	CTL_WAIT_UP,
	CTL_WAIT_RELOAD, /* a reload reading allow/deny files */
	CTL_WAIT_IDLE, /* no connection left on the node */
};

struct ctl_listener {
	ev_io io;
	struct ctl *ctl;
	enum ctl_level level;
	bool http; /* the metrics endpoint */
	char path[108];
	unsigned long long ino, dev; /* of the socket file we created */
	struct list_node link;
};

/* One connected control client. Owned by the ctl; freed when it closes. */
struct ctl_client {
	struct ctl *ctl;
	struct list_node link;
	ev_io io;
	ev_timer idle;
	ev_timer wait_timer;
	enum ctl_level level;
	bool http;
	bool closing; /* close once the output is written */
	char in[CTL_LINE_MAX + 1];
	size_t inlen;
	struct ctl_buf out;
	size_t outoff;
	enum ctl_wait_kind wait;
	bool wait_json;
	struct pool_server *wait_srv; /* reference while waiting */
	uint64_t wait_deadline_ms;
};

/* A drain with a deadline ("server drain P/S within D"). */
struct ctl_drain {
	struct ctl *ctl;
	struct list_node link;
	ev_timer timer;
	struct pool_server *srv; /* reference */
};

struct ctl {
	struct ev_loop *loop;
	struct ctl_hooks hooks;
	char state_file[256];
	struct list_node listeners;
	struct list_node clients;
	struct list_node drains;
	unsigned nclients;
	struct log_ratelimit rl;
};

/* ctl_cmd.c: run one tokenized command. May start a wait on cl (when not
 * NULL); otherwise appends a complete reply to out. */
void ctl_cmd_run(struct ctl *c, struct ctl_client *cl, enum ctl_level level, char *line,
		 struct ctl_buf *out);
/* Finish a wait: append its reply. Returns true when it is over. */
bool ctl_wait_check(struct ctl *c, struct ctl_client *cl, uint64_t now_ms, struct ctl_buf *out);
/* Resolve "POOL/SERVER"; on failure appends an error reply and returns NULL. */
struct pool_server *ctl_find_server(struct ctl *c, const char *ref, struct ctl_buf *out);
struct pool *ctl_find_pool(struct ctl *c, const char *name);

/* ctl_server.c */
void ctl_drain_schedule(struct ctl *c, struct pool_server *s, uint64_t delay_ms);
void ctl_drain_cancel(struct ctl *c, struct pool_server *s);
void ctl_changed(struct ctl *c);

/* Names of enum ctl_refusal ("acl", "conns", "rate", "table-full"). */
extern const char *const ctl_refusal_names[CTL_NREFUSALS];

/* JSON string escaping into b. */
void ctl_json_str(struct ctl_buf *b, const char *s);

#endif
