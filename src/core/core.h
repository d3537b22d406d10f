/* core internals: the daemon's state, owned by the control thread. Only
 * src/core includes this. */
#ifndef SLUICE_CORE_H
#define SLUICE_CORE_H

#include <ev.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>

#include "sluice/conf-t.h"
#include "sluice/list.h"
#include "sluice/qsbr.h"
#include "sluice/util-t.h"

struct krelay;
struct pool;
struct proxy_engine;
struct proxy_frontend;
struct ctl;
struct ctl_buf;
struct ctl_hooks;
struct ctl_listener_row;
struct core_vrrp;
struct core_guard_load;
struct core_apply;
struct core_reload;
struct core_cluster;
struct core_vrrp_txn;
struct core_cluster_txn;
struct core_announce;
struct ctl_announce_row;
struct ctl_node_state;
struct core_dns;
struct pool_server;

#define CORE_RELOAD_RESULTS 8	/* finished reloads whose outcome is kept */
#define CORE_APPLY_STEP_US 1000 /* one step of a reload's apply */

/* The outcome of a finished reload, for the control client waiting on it. */
struct core_reload_result {
	uint64_t id;
	int rc; /* 0 done, -1 failed */
	char msg[8192];
};

/* A listening socket inherited from the old process (binary upgrade), or
 * an announce device ("tun", one fd), or an announce block its operator
 * withdrew ("announce-withdrawn", no fd). */
struct core_inherited {
	struct util_addr addr;
	int fds[UTIL_MAX_WORKERS];
	size_t nfds;
	bool metrics;
	char tun[CONF_IFNAME_MAX];		/* a TUN device's name, or "" */
	char announce_withdrawn[CONF_NAME_MAX]; /* an announce block's name, or "" */
	bool used;
};

/* A running listener and the name it was configured under. */
struct core_listener {
	char name[CONF_NAME_MAX];
	struct proxy_frontend *fe; /* reference */
};

struct core {
	struct ev_loop *loop;
	const char *conf_path;
	struct conf *conf; /* the configuration running now */
	struct qsbr qsbr;
	struct proxy_engine *engine;
	struct krelay *krelay; /* the kernel relay, once loaded; NULL otherwise */
	/* pools[i] and listeners[i] run conf->pools[i] and conf->listens[i]
	 * (core_apply sets them, its caller then sets conf) */
	struct pool **pools; /* references */
	size_t npools;
	struct core_listener *listeners;
	size_t nlisteners;
	uint32_t maxconn;	    /* effective global limit */
	uint32_t fd_reserve_checks; /* descriptors set aside for checks and agents at start */
	uint64_t bufmem;	    /* effective relay memory ceiling, bytes */
	unsigned nworkers;
	struct ctl *ctl;
	char last_reload[256];
	const char *takeover_path; /* --takeover SOCKET */
	struct core_inherited *inherited;
	size_t ninherited;
	uint64_t reloads_ok, reloads_failed;
	/* reload.c: the one running (or NULL), the ones queued behind it (0:
	 * none) and the outcomes of the last ones, by id */
	struct core_reload *reload;
	_Atomic bool reload_loading; /* its loader thread has not sent yet */
	uint64_t reload_seq, reload_queued, check_queued;
	struct core_reload_result reload_results[CORE_RELOAD_RESULTS];
	uint64_t start_ms;
	bool stopping;
	bool handing_over; /* a takeover: the new process shares our sockets */
	int exit_code;
	ev_signal sig_term, sig_int, sig_hup;
	ev_timer reclaim_timer, drain_timer, grace_timer;
	struct core_health *health; /* health_glue.c */
	struct core_vrrp *vrrp;	    /* vrrp_glue.c */
	/* guard_glue.c: the allow/deny file tables of the configuration being
	 * applied (core_apply's listeners take them over) */
	struct core_guard_load *guard_load;
	struct list_node graces;      /* apply.c: removed servers closed after grace */
	struct core_cluster *cluster; /* cluster_glue.c */
	bool bpf_allowed; /* CAP_BPF kept: root, or a cluster block or kernel relay at start */
	/* how late the control loop started checks and sent adverts after
	 * their due time (show info, metrics; `clear lateness` empties them) */
	struct util_lathist late_checks, late_adverts;
	struct core_announce *announce; /* announce_glue.c */
	ev_timer withdraw_timer;	/* SIGTERM: accepting while the routers converge */
	struct core_dns *dns;		/* dns_glue.c */
};

/* apply.c: make the runtime model match conf (at start-up c->conf is an
 * empty conf). Everything that can fail (memory, binding new addresses)
 * happens before anything changes: on failure the model is untouched and
 * err says why. Listeners keep the sockets of addresses they keep; pools
 * and servers are matched by name. The caller swaps c->conf after. */
int core_apply(struct core *c, struct conf *nc, char *err, size_t errlen);
/* The same in bounded steps (a reload): core_apply_begin() (NULL on no
 * memory), then core_apply_step() until it returns 0 (applied: c->pools
 * and c->listeners run nc; the caller makes nc c->conf) or -1 (err says
 * why, the model is as it was: only the first steps, binding and building
 * new pools, can fail). 1: call again, after the loop's other events;
 * each call works for about budget_us (UINT64_MAX: to the end). Between
 * steps a surviving pool may be half updated but frozen (the workers keep
 * its old table), and servers must not be added or deleted (the control
 * socket asks core_reload_applying()). core_apply_free() after the last. */
struct core_apply *core_apply_begin(struct core *c, struct conf *nc);
int core_apply_step(struct core_apply *a, uint64_t budget_us, char *err, size_t errlen);
void core_apply_free(struct core_apply *a);
/* Describe what applying nc over oc would change, one line each. */
void core_diff(const struct conf *oc, const struct conf *nc, char *buf, size_t len);
void core_log_listeners(struct core *c);
/* Free the model (after the engine stopped). */
void core_model_free(struct core *c);

/* ctl_glue.c: start the control sockets, metrics listener and state file.
 * Returns 0 or -1 with err. */
int core_ctl_start(struct core *c, char *err, size_t errlen);

/* reload.c: reload the file, or only check it and describe the diff, in
 * the background (from is who asked, for the log). Returns the id whose
 * outcome core_reload_result() gives: 1 while running, then 0 (done) or -1
 * (the running configuration is kept), with msg. A request made while
 * another runs is queued behind it, one of each kind: a later one gets
 * the queued one's id. */
uint64_t core_reload_request(struct core *c, bool check_only, const char *from);
int core_reload_result(struct core *c, uint64_t id, char *msg, size_t len);
/* Is a reload changing the model now (servers must not be added or
 * deleted meanwhile)? */
bool core_reload_applying(const struct core *c);
/* Shutdown begins: drop what is queued, finish applying now, or let a
 * load end unseen. */
void core_reload_stop(struct core *c);
/* Before the loop is destroyed: wait for a loader thread, free. */
void core_reload_free(struct core *c);
/* Read, parse and validate a file (on the loader thread). A server of
 * old (the running configuration, or NULL) with the same pool, name and
 * host name starts from the address it has (core_dns_prepare() then keeps
 * it while the name still resolves to it); other host names have no
 * address yet. Same contract as conf_load_file(). */
struct conf *core_load_conf(const char *path, const struct conf *old, struct conf_errors *errs);
/* The control socket's "reload [check]" hooks (arg is the core). */
int core_reload_hook_start(void *arg, bool check_only, char *msg, size_t len, uint64_t *id);
int core_reload_hook_result(void *arg, uint64_t id, char *msg, size_t len);

/* guard_glue.c: source ACLs and per-source limits. Read and build the
 * allow/deny files of nc's listeners whose files changed since c's running
 * model (c NULL: every one). On the reload's loader thread (background
 * true: it gives way to the control loop every few hundred microseconds;
 * it reads c's listeners, which nothing changes while a reload runs), or
 * in place at start-up and for -c. Returns the tables, for c->guard_load
 * when nc is applied, or NULL with FILE:LINE:COL messages in errs. */
struct core_guard_load *core_guard_load(struct core *c, const struct conf *nc,
					struct conf_errors *errs, bool background);
/* Append a line to diff for each listener whose files l read. */
void core_guard_load_describe(const struct core_guard_load *l, char *diff, size_t len);
void core_guard_load_free(struct core_guard_load *l);
/* Give fe's guard the ACL and limits of cl, nc->listens[idx] of the
 * configuration being applied (its file table from c->guard_load, or the
 * one in use when its files did not change). */
void core_guard_commit(struct core *c, struct proxy_frontend *fe, const struct conf_listen *cl,
		       size_t idx);
/* Free large ACL tables on a thread of their own (on), or in place again,
 * once those under way are done (off: at exit). */
void core_guard_reaper(bool on);
/* Every 100 ms: forget expired runtime entries (saving the state file),
 * free limit tables whose connections all closed. */
void core_guard_tick(struct core *c);
/* The control socket's guard hooks, and a listener's guard figures. */
void core_guard_hooks(struct ctl_hooks *h);
void core_guard_row(struct proxy_frontend *fe, struct ctl_listener_row *r);

/* takeover.c: binary upgrade. The old side's control-socket hook sends
 * the sockets and starts the drain; the new side receives them into
 * c->inherited before the configuration is applied, core_apply() adopts
 * them by address (core_takeover_fds), core_takeover_done() closes the
 * rest. */
int core_takeover_hook(void *arg, int fd, char *msg, size_t len);
int core_takeover_receive(struct core *c, const char *path, char *err, size_t errlen);
int core_takeover_fds(struct core *c, const struct util_addr *addr, bool metrics, int *fds,
		      size_t max);
void core_takeover_done(struct core *c);
/* The inherited descriptor of TUN device name (the caller owns it now), or
 * -1; whether the old process's operator withdrew announce block name. */
int core_takeover_tun(struct core *c, const char *name);
bool core_takeover_announce_withdrawn(struct core *c, const char *name);
/* main.c: stop accepting and drain (SIGTERM, takeover). */
void core_begin_shutdown(struct core *c, const char *why);

/* privdrop.c: become user/group (either may be empty) keeping only the
 * network capabilities, and CAP_BPF when keep_bpf (a cluster block, the
 * kernel relay). Call
 * before any thread starts. Returns 0 or -1. */
int core_drop_privileges(const char *user, const char *group, bool keep_bpf, char *err,
			 size_t errlen);

/* krelay_glue.c: the kernel relay. Before the listeners of nc are
 * applied (start and reload): load the program when a listener asks for
 * relay kernel or auto and it is not loaded yet. Fails (err) only when a
 * listener says kernel and it cannot load; auto then falls back to the
 * user-space relay with a warning. */
int core_krelay_prepare(struct core *c, const struct conf *nc, char *err, size_t errlen);
/* Does nc use the kernel relay (kernel or auto anywhere)? */
bool core_krelay_used(const struct conf *nc);
/* After the engine is freed. */
void core_krelay_free(struct core *c);

/* sdnotify.c: tell systemd our state ("READY=1", "STOPPING=1", ...).
 * Does nothing without $NOTIFY_SOCKET. Returns 0 or -1. */
int core_notify(const char *state);

/* version.c: `sluice -v` (verbose false) and `sluice --version` (true),
 * and `sluice --dump-keywords` (tab-separated, one keyword or command a
 * line). */
void core_print_version(FILE *f, bool verbose);
void core_dump_keywords(FILE *f);
/* RELOADING=1 with MONOTONIC_USEC, as Type=notify-reload wants. */
int core_notify_reloading(void);

/* health_glue.c: start the health checks of the running model on c->loop
 * and install the passive hook. Returns 0, or -1 with err set. */
int core_health_start(struct core *c, char *err, size_t errlen);
/* How many checkers (active checks and agents) conf gives its servers:
 * each holds one descriptor at most, for the descriptor reserve. */
uint32_t core_health_checkers(const struct conf *conf);
/* Publish p after a change made outside the checks (DNS), saying when it
 * loses or regains its last usable server. */
void core_health_publish(struct core *c, struct pool *p);
/* Stop and free every checker (after the workers stopped). */
void core_health_stop(struct core *c);
/* Rebuild the checkers for the model as it is now (after a reload or a
 * server added or deleted at runtime); health states live in the servers
 * and carry over. Returns 0 or -1 with err. */
int core_health_resync(struct core *c, char *err, size_t errlen);
/* dns_glue.c, dns_source.c, dns_show.c: host names and `servers` lines
 * followed through the resolvers blocks (src/resolve) into the model.
 * core_dns_start(): start conf's resolvers on c->loop and look up its
 * names, running the loop until they answered or 2 s passed; a named
 * server without an address is an error in errs (FILE:LINE:COL). Returns
 * 0, or -1 (c->dns stays, for core_dns_free). */
int core_dns_start(struct core *c, struct conf *conf, struct conf_errors *errs);
/* A reload: look nc's names up (its resolvers blocks started, unchanged
 * ones kept), then fill their addresses into nc or add an error to errs
 * for each without one, and call done(arg) from the loop (at most 2 s
 * later). Returns 0, or -1 with errs (done is not called). Then exactly
 * one of core_dns_commit() (the model runs nc) or core_dns_abort(). */
int core_dns_prepare(struct core *c, struct conf *nc, struct conf_errors *errs,
		     void (*done)(void *arg), void *arg);
/* What the lookups of the prepared file changed, one "\n"-led line each. */
const char *core_dns_prepared_diff(struct core *c);
void core_dns_commit(struct core *c);
void core_dns_abort(struct core *c);
/* The model was built or changed: follow its named servers, apply every
 * answer (discovered servers made or drained). */
void core_dns_sync(struct core *c);
/* Is discovered server s still made by a `servers` line of cp (a reload)? */
bool core_dns_source_kept(const struct conf_pool *cp, const struct pool_server *s);
/* Append the DNS lines of a reload's diff (resolvers blocks, servers lines). */
void core_dns_diff(const struct conf *oc, const struct conf *nc, char *buf, size_t len,
		   size_t *off);
void core_dns_server_added(struct core *c, struct pool_server *s);
void core_dns_server_removed(struct core *c, struct pool_server *s);
void core_dns_free(struct core *c);
/* Control socket hooks (arg is the core). */
void core_dns_show(void *arg, bool json, struct ctl_buf *out);
void core_dns_metrics(void *arg, struct ctl_buf *out);
void core_dns_server_status(void *arg, const struct pool_server *s, char *buf, size_t len);
int core_dns_lookup_start(void *arg, const char *pool, const char *host, uint64_t *id, char *msg,
			  size_t len);
int core_dns_lookup_result(void *arg, uint64_t id, uint16_t port, struct util_addr *out, char *msg,
			   size_t len);

/* vrrp_glue.c: make the running VRRP instances match newconf, as a
 * transaction. Prepare creates (does not start) an instance for each new or
 * changed block and touches nothing that runs: no advert changes, no VIP
 * moves. Returns the prepared change (the caller owns it), or NULL with err
 * set. Exactly one of commit or rollback must follow, with nothing else
 * changing the VRRP instances in between; both free it. */
struct core_vrrp_txn *core_vrrp_prepare(struct core *c, const struct conf *newconf, char *err,
					size_t len);
/* Cannot fail: changed or removed instances give their VIPs up (a master
 * sends priority 0), unchanged ones keep their state and timers, new ones
 * start (tracking the pools of the model as it is now). */
void core_vrrp_commit(struct core *c, struct core_vrrp_txn *t);
/* Free what prepare created; the running instances never noticed. */
void core_vrrp_rollback(struct core *c, struct core_vrrp_txn *t);
/* Prepare and commit at once (start-up). Returns 0 or -1 with err set. */
int core_vrrp_apply(struct core *c, const struct conf *newconf, char *err, size_t len);
/* SIGTERM: every instance sends priority 0 and removes its VIPs. */
void core_vrrp_shutdown(struct core *c);
void core_vrrp_free(struct core *c);
/* Control socket hooks (arg is the core). */
void core_vrrp_show(void *arg, bool json, struct ctl_buf *out);
int core_vrrp_admin(void *arg, const char *name, bool leave, char *msg, size_t len);

/* cluster_glue.c: make second-chance forwarding match newconf's cluster
 * block, as a transaction with the same shape as VRRP's. Prepare does all
 * that can fail and nothing a packet sees: the block checked against the
 * kernel (interfaces, peers on the segment), a new or changed block's
 * program loaded, verified and its maps filled, attached nowhere. Returns
 * the prepared change (the caller owns it), or NULL with err
 * ("FILE:LINE:COL: error: cluster: ...") and nothing changed. Call it
 * before the privilege drop and, at start-up, before a takeover. Exactly
 * one of commit or rollback follows; both free it. */
struct core_cluster_txn *core_cluster_prepare(struct core *c, const struct conf *newconf, char *err,
					      size_t len);
/* Commit, once nothing else of the change can fail: the new program is
 * attached before the running one is let go (tc filters replaced in
 * place, tcx links stacked), an unchanged block gets the new served
 * addresses, no block detaches. Fails only when the kernel refuses an
 * attach it allowed a moment ago (the interface went, no memory): then
 * returns -1 with err, and the running program stays as it was (serving
 * the new listening addresses). Returns 0 otherwise. */
int core_cluster_commit(struct core *c, struct core_cluster_txn *t, char *err, size_t len);
/* Free what prepare loaded (it was never attached). */
void core_cluster_rollback(struct core *c, struct core_cluster_txn *t);
/* "reload check": a line when the cluster block is added, changed or
 * removed. */
void core_cluster_diff(const struct conf *oc, const struct conf *nc, char *buf, size_t len,
		       size_t *off);
/* Will t's program hang on tcx links (which stack with another process's
 * and die with ours), rather than replace a tc filter in place? */
bool core_cluster_stacks(const struct core_cluster_txn *t);
/* Detach and free (at exit). */
void core_cluster_free(struct core *c);
/* Control socket hooks (arg is the core): `show cluster`, metrics. */
void core_cluster_show(void *arg, bool json, struct ctl_buf *out);
void core_cluster_metrics(void *arg, struct ctl_buf *out);
/* announce_glue.c: the announce blocks. Reload and start-up: prepare
 * (open or inherit the devices, put the serving addresses on lo: all that
 * can fail; returns 0, or -1 with err and nothing changed), then after the
 * listeners are applied either commit (the blocks take effect; unchanged
 * ones stay exactly as they are) or rollback. */
int core_announce_prepare(struct core *c, const struct conf *nc, char *err, size_t len);
void core_announce_commit(struct core *c);
void core_announce_rollback(struct core *c);
/* SIGTERM: withdraw everything (nothing on a binary upgrade: the new
 * process keeps the devices). Returns how long to keep accepting before
 * closing the listeners (each block's withdraw-delay since it withdrew). */
uint64_t core_announce_shutdown(struct core *c);
/* Close the devices (the kernel deletes them) and free everything. */
void core_announce_free(struct core *c);
/* Binary upgrade, old side: the devices (name, fd) and the blocks the
 * operator withdrew (name, fd -1), at most max. Returns the count. */
struct core_announce_fd {
	char name[CONF_NAME_MAX];
	int fd;
};
size_t core_announce_handover(struct core *c, struct core_announce_fd *out, size_t max);
/* "reload check": one line per announce block added, changed or removed. */
void core_announce_diff(const struct conf *oc, const struct conf *nc, char *buf, size_t len,
			size_t *off);
/* Control socket hooks (arg is the core), as struct ctl_hooks says. */
size_t core_announce_rows(void *arg, struct ctl_announce_row *rows, size_t max,
			  struct ctl_node_state *node);
int core_announce_admin(void *arg, const char *name, bool withdraw, char *msg, size_t len);
int core_announce_node(void *arg, bool drain, uint64_t within_ms, char *msg, size_t len);

#endif
