/* pool types: pools, servers and the immutable balancer snapshot that
 * workers pick from. The control thread owns every change; workers only
 * read snapshots and update the atomic counters marked below. */
#ifndef SLUICE_POOL_T_H
#define SLUICE_POOL_T_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sluice/hmap.h"
#include "sluice/srvopt.h"
#include "sluice/util-t.h"

#define POOL_NAME_MAX UTIL_NAME_MAX
/* Maglev table slots when the configuration says nothing: a prime, as
 * Envoy's default; 100 slots per server up to 655 servers. */
#define POOL_MAGLEV_SIZE_DEFAULT 65537

enum pool_balance {
	POOL_BALANCE_ROUNDROBIN,
	POOL_BALANCE_LEASTCONN,
	POOL_BALANCE_RANDOM,
	POOL_BALANCE_MAGLEV,
	POOL_BALANCE_FIRST,
};

/* Operator's intent for a server. */
enum pool_admin {
	POOL_ADMIN_READY,
	POOL_ADMIN_DRAIN, /* no new connections, open ones continue */
	POOL_ADMIN_MAINT, /* as drain, and health checks paused */
};

enum pool_health {
	POOL_HEALTH_UP,
	POOL_HEALTH_DOWN,
};

enum pool_proxy_proto {
	POOL_PROXY_NONE,
	POOL_PROXY_V1,
	POOL_PROXY_V2,
};

struct pool;

/* ---- health state (pool_health.c) ---- */

#define POOL_CAUSE_MAX 160
/* Snapshot weights are weight x POOL_WEIGHT_SCALE so that slow start can
 * ramp even a weight-1 server in small steps. */
#define POOL_WEIGHT_SCALE 16

/* Where a health verdict came from. */
enum pool_health_src {
	POOL_SRC_CHECK,	  /* active check, after rise/fall */
	POOL_SRC_AGENT,	  /* agent said up / down */
	POOL_SRC_PASSIVE, /* consecutive connect errors in the data plane */
	POOL_SRC_DNS,	  /* its name has no address any more (the resolver's hold ran out) */
};

/* Where a server's address comes from. */
enum pool_dns_origin {
	POOL_DNS_NONE,	/* a server line or `server add`: numbers, or host (resolved) */
	POOL_DNS_ADDRS, /* discovered: one of the A/AAAA records of host */
	POOL_DNS_SRV,	/* discovered: a target of the SRV name host */
};

/* Health state and counters of a server. Zero-initialised means up with
 * nothing counted. Written by the control thread, except the fields under
 * "shared" which workers use. */
struct pool_server_health {
	bool check_down;	 /* the active check says down */
	bool agent_down;	 /* the agent said "down" */
	bool passive_down;	 /* marked down by the data plane; cleared by a check */
	bool dns_down;		 /* its host name has no address; cleared by an answer */
	uint32_t weight_initial; /* configured weight; agent percentages use it */
	uint32_t agent_pct;	 /* last weight percentage from the agent, 0: none */
	uint32_t ramp_weight;	 /* snapshot weight during slow start, 0: not ramping */
	uint64_t ramp_start_ms;
	/* counters, for the control socket */
	uint64_t checks; /* active and agent checks completed */
	uint64_t checks_failed;
	uint64_t state_changes;		   /* health up <-> down */
	uint64_t last_check_ms;		   /* monotonic */
	uint64_t last_change_ms;	   /* monotonic, 0: never changed */
	uint64_t last_change_wall_ms;	   /* wall clock of the same moment */
	char last_cause[POOL_CAUSE_MAX];   /* result of the last check */
	char change_cause[POOL_CAUSE_MAX]; /* why the last state change */

	/* shared */
	_Atomic uint32_t observe_errors; /* threshold of consecutive errors, 0: off */
	_Atomic bool passive_flag;	 /* set by a worker at the threshold: pick skips */
};

/* A server. Identity (pool + name) survives reloads. Owner: reference
 * counted; the pool's server list holds one reference, every connection
 * that uses the server holds one, and the last put frees it (possibly in a
 * worker). Fields under "control" are written by the control thread only. */
struct pool_server {
	/* control */
	char name[POOL_NAME_MAX];
	struct util_addr addr;
	uint32_t weight;	  /* configured or set at runtime, 0-256 */
	_Atomic uint32_t maxconn; /* 0: unlimited; workers read it, a reload may change it */
	bool backup;
	bool removed;				  /* no longer in its pool */
	_Atomic enum pool_proxy_proto send_proxy; /* read by workers at connect */
	enum pool_admin admin;
	enum pool_health health;
	struct pool *pool; /* holds a reference */

	/* shared, atomic */
	_Atomic uint32_t refcnt;
	_Atomic uint32_t cur_conns;
	_Atomic uint64_t total_conns;
	_Atomic uint64_t bytes_in;  /* from the server */
	_Atomic uint64_t bytes_out; /* to the server */
	_Atomic uint64_t connect_errors;
	_Atomic uint32_t consecutive_errors;
	/* connects and checks that failed here, not at the server (out of
	 * descriptors, memory, buffers, ports): never counted as its errors */
	_Atomic uint64_t local_errors;

	/* runtime administration (control thread) */
	/* the options as its door gave them (file, server add, state file):
	 * opts.weight is the configured weight, which a reload compares; the
	 * health checks read check and agent */
	struct util_srvopts opts;
	bool runtime_added;	 /* added through the control socket */
	bool admin_overridden;	 /* admin state set at runtime */
	bool weight_overridden;	 /* weight set at runtime */
	uint64_t admin_since_ms; /* when the admin state last changed */

	/* DNS (core's resolver glue, control thread) */
	char *host;	  /* owned: the name its address comes from; NULL when numeric */
	char *dns_target; /* owned: POOL_DNS_SRV: its SRV target; else NULL */
	enum pool_dns_origin dns_origin;
	bool dns_gone; /* discovered, left its DNS answer: no new connections,
			* taken out once its connections are over */

	struct pool_server_health hs; /* pool_health.c */
};

/* One group (primaries or backups) of an immutable balancer snapshot: its
 * servers that may take new connections (for maglev in name order, else in
 * the pool's order). */
struct pool_lb_group {
	size_t n;
	struct pool_server **srv;
	uint32_t *weights;
	uint32_t *seq; /* roundrobin cycle */
	size_t seqlen;
	uint64_t *cum;	 /* random: cumulative weights */
	int32_t *maglev; /* the base table refilled: indices into srv */
	uint32_t maglev_size;
};

/* The Maglev base table of one group (primaries or backups): built from
 * every member with weight > 0 in name order, whatever its health or admin
 * state, so identical configurations give identical tables on every node
 * and after any history of reloads; rebuilt only when the members, their
 * weights or the size change. Snapshots refill it. Control thread. */
struct pool_maglev_base {
	size_t n;
	uint64_t *keys;	   /* hashes of the members' names, in name order */
	uint32_t *weights; /* their snapshot weights at full strength */
	uint32_t m;	   /* slots (prime) */
	int32_t *table;	   /* m member indices; NULL: not built */
};

/* Immutable snapshot of who may be picked, published by the control thread
 * and freed through QSBR. Only the cursor changes after publication. The
 * pool settings workers need travel in it: a reload writes the pool's
 * fields while workers run, a snapshot is never written once published. */
struct pool_lb {
	enum pool_balance balance;
	uint32_t queue_max; /* the pool's, when this snapshot was published */
	uint64_t timeout_queue_ms;
	struct pool_lb_group primary, backup;
	_Atomic uint32_t cursor;
};

/* A pool. Owner: reference counted; the runtime model holds one reference,
 * its servers one each, connections one each. */
struct pool {
	/* control */
	char name[POOL_NAME_MAX];
	enum pool_balance balance;
	enum pool_proxy_proto send_proxy;
	uint32_t queue_max; /* workers read the copy in lb, never these */
	uint64_t timeout_queue_ms;
	uint32_t maglev_size;		   /* Maglev table slots, a prime */
	struct pool_maglev_base maglev[2]; /* [backup]: primaries, backups */
	struct pool_server **servers;
	size_t nservers, cap;
	struct util_hmap server_index; /* name -> server */
	/* taken out since the last publish: their list reference is retired
	 * once a snapshot without them is published (the current one may
	 * still point at them) */
	struct pool_server **retiring;
	size_t nretiring, retiring_cap;
	bool frozen; /* being changed in several steps: publish at the end */
	bool removed;
	bool has_check, has_agent; /* servers may have check / agent options */
	bool discovers;		   /* DNS makes some of its servers (`servers` lines) */

	/* shared */
	_Atomic(struct pool_lb *) lb;
	_Atomic uint32_t refcnt;
	_Atomic uint32_t queued;    /* clients waiting for a slot, all workers */
	_Atomic uint64_t no_server; /* connections closed: no usable server */
	_Atomic uint64_t queue_timeouts;
	_Atomic uint64_t queue_full;
	_Atomic uint64_t total_conns;

	/* health (pool_health.c), control */
	uint64_t slowstart_ms; /* 0: off */
	bool ramping;	       /* some server is in slow start */
};

/* A removal made in several steps (pool_sweep_step); zeroed to start. */
struct pool_sweep {
	size_t seen, kept;
	bool reserved;
};

/* Result of a pick. */
enum pool_pick_result {
	POOL_PICK_OK,
	POOL_PICK_FULL, /* usable servers exist but all are at maxconn: queue */
	POOL_PICK_NONE, /* nothing usable */
};

#define POOL_PICK_MAX_TRIED 8

/* Per-connection picking state, owned by the connection. */
struct pool_pick {
	uint64_t client_hash;
	struct pool_server *tried[POOL_PICK_MAX_TRIED];
	size_t ntried;
	/* set by a pick that returns POOL_PICK_FULL: the queue settings of the
	 * snapshot it looked at, for the worker that queues the client */
	uint32_t queue_max;
	uint64_t timeout_queue_ms;
};

#endif
