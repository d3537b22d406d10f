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
#include "sluice/srvopt.h"
#include "sluice/util-t.h"

#define CTL_LINE_MAX 4096
#define CTL_IDLE_TIMEOUT_S 60.0	  /* control socket: no command and no progress */
#define CTL_HTTP_REQUEST_S 5.0	  /* metrics door: the whole request */
#define CTL_HTTP_SEND_IDLE_S 10.0 /* metrics door: a reply that makes no progress */
#define CTL_HTTP_LINGER_S 2.0	  /* after the reply: read and drop until EOF */
#define CTL_MAX_ARGS 32
/* A client's next command (or next part of a long reply) waits while it
 * has this much unsent: its memory is about this plus one part. */
#define CTL_OUT_SOFT (64u << 10)
/* Clients of user-level doors produce nothing while all clients together
 * hold this much unsent output (admin clients always go on). */
#define CTL_OUT_TOTAL_MAX (16u << 20)
#define CTL_SEND_MAX (64u << 10) /* one send() */
/* Control-socket work per slice: after it the loop runs its timers
 * (checks, adverts) and the thread rests as long as it worked (at least
 * CTL_REST_MIN_US) before the clients get more. */
#define CTL_SLICE_US 1000
#define CTL_REST_MIN_US 200
#define CTL_SLICE_STEPS_MAX 4096
/* Rendered metrics alive at once (each is the whole exposition), and
 * how long a scrape may reuse the last one. */
#define CTL_METRICS_TEXTS_MAX 4
#define CTL_METRICS_REUSE_MS 1000

/* A waiting command ("wait drained", "wait up"): polled every 10 ms. */
enum ctl_wait_kind {
	CTL_WAIT_NONE,
	CTL_WAIT_DRAINED,
	CTL_WAIT_UP,
	CTL_WAIT_RELOAD, /* reload [check]: until it is over */
	CTL_WAIT_IDLE,	 /* no connection left on the node */
	CTL_WAIT_LOOKUP, /* server add with a host name: until it is looked up */
};

/* A `server add` whose host name is being looked up. */
struct ctl_pending_add {
	uint64_t id; /* the lookup's */
	char pool[UTIL_NAME_MAX], name[UTIL_NAME_MAX];
	char host[UTIL_HOST_MAX];
	char written[UTIL_HOST_MAX + 8]; /* HOST:PORT as the client wrote it */
	uint16_t port;
	struct util_srvopts opts;
	bool ready;
};

/* A state file line for a server that is not there yet (one DNS makes
 * later): applied when it appears, written back meanwhile. */
struct ctl_state_pending {
	char pool[UTIL_NAME_MAX], name[UTIL_NAME_MAX];
	struct util_addr addr;
	enum pool_admin admin;
	bool weight_set;
	uint32_t weight;
};

#define CTL_STATE_PENDING_MAX 4096

/* A door: one listening socket (a control socket or the metrics port)
 * with its own client limit, so that no door can take another's slots. */
struct ctl_listener {
	ev_io io;
	struct ctl *ctl;
	enum ctl_level level;
	bool http; /* the metrics endpoint */
	char path[108];
	unsigned long long ino, dev; /* of the socket file we created */
	unsigned nclients, max_clients;
	struct list_node link;
};

/* The Prometheus exposition, rendered a part at a time and shared by the
 * scrapes that want it. Reference-counted: ctl holds one on the newest. */
struct ctl_metrics_text {
	unsigned refs;
	bool done;
	uint64_t born_ms;
	struct ctl_buf buf;
	size_t section, m, pi, si; /* where the rendering is */
	/* the same compressed (gzip), for the scrapes that accept it; made
	 * a part at a time once the text is done */
	struct ctl_buf gz;
	struct z_stream_s *zs; /* while compressing */
	size_t zin;	       /* how much of buf was fed */
	bool gz_done, gz_failed;
};

/* A reply rendered a part at a time (show servers, show metrics, a
 * scrape): the cursor is by index, so a reload between two parts only
 * makes the reply skip or repeat a row, never touch freed memory. */
enum ctl_job_kind {
	CTL_JOB_NONE,
	CTL_JOB_SERVERS,
	CTL_JOB_METRICS,
};

struct ctl_job {
	enum ctl_job_kind kind;
	bool json, first;
	int pass;		       /* servers table: 0 measures the columns, 1 prints */
	size_t pi, si;		       /* next pool, next server in it */
	size_t w[16];		       /* column widths */
	char pool[64];		       /* only this pool; "": all */
	struct ctl_metrics_text *text; /* reference */
	size_t off;		       /* how much of text was copied */
};

/* One connected control client. Owned by the ctl; freed when it closes. */
struct ctl_client {
	struct ctl *ctl;
	struct ctl_listener *door; /* NULL once the door closed (takeover) */
	struct list_node link;
	struct list_node run; /* in ctl->runq while queued */
	bool queued;
	ev_io io;
	ev_timer idle;
	ev_timer wait_timer;
	enum ctl_level level;
	bool http;
	bool writable;	/* the last send did not fill the socket */
	bool eof;	/* the client shut its side: finish, then close */
	bool closing;	/* close once the output is written */
	bool lingering; /* HTTP reply sent: drop input until EOF */
	bool http_head;
	bool http_gzip; /* the scrape accepts gzip */
	bool body_gz;	/* the body is sent from body->gz */
	char in[CTL_LINE_MAX + 1];
	size_t inlen;
	struct ctl_buf out;
	size_t outoff;
	struct ctl_job job;
	struct ctl_metrics_text *body; /* HTTP: sent from here after out */
	size_t bodyoff;
	enum ctl_wait_kind wait;
	bool wait_json;
	struct pool_server *wait_srv;	  /* reference while waiting */
	uint64_t wait_reload;		  /* CTL_WAIT_RELOAD: its id */
	struct ctl_pending_add *wait_add; /* CTL_WAIT_LOOKUP: owned */
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
	struct list_node runq;		  /* clients with work, served in turn */
	ev_timer work;			  /* runs the queue, a slice at a time */
	size_t out_bytes;		  /* unsent output of all clients, at the slice's start */
	struct ctl_metrics_text *metrics; /* the newest rendering, reference */
	unsigned ntexts;		  /* renderings alive */
	struct log_ratelimit rl;
	struct ctl_state_pending *pending; /* ctl_state.c */
	size_t npending;
};

/* ctl_http.c: what the metrics door answers to the bytes of a request
 * received so far. */
enum ctl_http_status {
	CTL_HTTP_MORE = 0,	  /* a valid beginning: wait for more */
	CTL_HTTP_OK = 200,	  /* GET or HEAD /metrics, headers complete */
	CTL_HTTP_BAD = 400,	  /* not HTTP/1.x, a NUL byte, or headers above max */
	CTL_HTTP_NOT_FOUND = 404, /* another path */
	CTL_HTTP_METHOD = 405,	  /* a method other than GET and HEAD */
	CTL_HTTP_TIMEOUT = 408,	  /* (never returned by the parser: the deadline) */
};

struct ctl_http_req {
	bool head;	/* HEAD: headers only */
	bool method_ok; /* GET or HEAD */
	bool path_ok;	/* /metrics, with or without a query */
	bool gzip;	/* Accept-Encoding allows gzip (Prometheus asks for it) */
};

/* Parse buf[0..len) (len <= max; max is the most a request may take).
 * Fills req as far as known. Never reads past len. */
enum ctl_http_status ctl_http_parse(const char *buf, size_t len, size_t max,
				    struct ctl_http_req *req);

/* ctl_cmd.c: run one tokenized command. May start a wait on cl (when not
 * NULL); otherwise appends a complete reply to out. */
void ctl_cmd_run(struct ctl *c, struct ctl_client *cl, enum ctl_level level, char *line,
		 struct ctl_buf *out);
/* Finish a wait: append its reply. Returns true when it is over. */
bool ctl_wait_check(struct ctl *c, struct ctl_client *cl, uint64_t now_ms, struct ctl_buf *out);
/* Resolve "POOL/SERVER"; on failure appends an error reply and returns NULL. */
struct pool_server *ctl_find_server(struct ctl *c, const char *ref, struct ctl_buf *out);
struct pool *ctl_find_pool(struct ctl *c, const char *name);

/* ctl_cmd.c: the next part of an incremental reply into out. Returns
 * true when the reply is complete (the job is then cleared). */
bool ctl_job_step(struct ctl *c, struct ctl_job *j, struct ctl_buf *out);

/* ctl_metrics.c: the rendering to serve now: the newest if it was begun
 * within max_age_ms (or, max_age_ms > 0, when CTL_METRICS_TEXTS_MAX are
 * alive), else a new one (max_age_ms 0: always one begun after this
 * call). Returns a reference, or NULL when none can be had now (too many
 * alive, or memory is short: try again later). */
struct ctl_metrics_text *ctl_metrics_get(struct ctl *c, uint64_t max_age_ms, uint64_t now_ms);
void ctl_metrics_put(struct ctl *c, struct ctl_metrics_text *t);
/* Render the next part of t. Returns true when t is complete. */
bool ctl_metrics_step(struct ctl *c, struct ctl_metrics_text *t);
/* Compress the next part of a complete t into t->gz. Returns true when
 * t->gz is complete, or when compression failed (t->gz_failed: serve
 * the text itself). */
bool ctl_metrics_gzip_step(struct ctl_metrics_text *t);

/* ctl_server.c */
void ctl_client_wait_start(struct ctl_client *cl);
void ctl_drain_schedule(struct ctl *c, struct pool_server *s, uint64_t delay_ms);
void ctl_drain_cancel(struct ctl *c, struct pool_server *s);
void ctl_changed(struct ctl *c);
/* A command made cl wait (ctl_wait_check() polls it). */
void ctl_client_wait_start(struct ctl_client *cl);

/* Names of enum ctl_refusal ("acl", "conns", "rate", "table-full"). */
extern const char *const ctl_refusal_names[CTL_NREFUSALS];

/* ctl_cmd.c: a TLS route as `show routes` and the metrics name it:
 * "sni api.example.com alpn h2", "alpn acme-tls/1", "no-sni", "default". */
void ctl_route_desc(const struct ctl_route_row *r, char *buf, size_t len);

#endif
