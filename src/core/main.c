/* sluice: main and lifecycle. Parses the command line, loads and checks the
 * configuration, sizes the limits, starts the workers and runs the control
 * loop (signals, snapshot reclamation, graceful shutdown). */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "core.h"
#include "sluice/conf.h"
#include "sluice/ctl.h"
#include "sluice/log.h"
#include "sluice/pool.h"
#include "sluice/proxy.h"
#include "sluice/util.h"

#ifndef SLUICE_VERSION
#define SLUICE_VERSION "0.1"
#endif

#define FD_DAEMON 64	/* stdio, log, control loop, state file, netlink, resolver, takeover */
#define FD_PER_WORKER 4 /* epoll, eventfd and slack */
#define FD_PER_VRRP 4	/* raw socket, link monitor, ARP / NA and address sockets */
#define PIPES_PER_WORKER 128
#define RECLAIM_PER_TICK 4096 /* objects freed per 100 ms: about 1 ms of work */
#define BUFSIZE 16384
#define PIPE_BYTES (256 * 1024) /* the data plane sizes its pipes so */

static void usage(FILE *f)
{
	fprintf(f, "usage: sluice -f FILE [-c] [--takeover SOCKET]\n"
		   "  -f FILE   configuration file\n"
		   "  --takeover SOCKET\n"
		   "            binary upgrade: take the listening sockets of the sluice\n"
		   "            running with that control socket, which then drains and exits\n"
		   "  -c        check the configuration and exit (0: valid, 1: invalid)\n"
		   "  -v        print the version and the git commit\n"
		   "  --version, -vv\n"
		   "            also the compiler, build flags, features and libraries\n"
		   "  --dump-keywords\n"
		   "            list every configuration keyword and control command\n"
		   "  -h        this help\n");
}

/* what: "errors" or "warnings" */
static void print_errors(const struct conf_errors *errs, const char *what)
{
	for (size_t i = 0; i < errs->n; i++)
		fprintf(stderr, "%s\n", errs->msgs[i]);
	if (errs->truncated)
		fprintf(stderr, "(more %s not shown)\n", what);
}

static uint32_t count_binds(const struct conf *conf)
{
	uint32_t n = 0;

	for (size_t i = 0; i < conf->nlistens; i++)
		n += (uint32_t)conf->listens[i].nbinds;
	return n;
}

/* Descriptors the daemon holds besides its connections, each term the
 * most that part of the configuration can hold at once. */
struct fd_reserve {
	uint64_t daemon, listeners, pipes, checks, control, vrrp;
};

static uint64_t fd_reserve(const struct conf *conf, uint32_t workers, struct fd_reserve *r)
{
	const struct conf_global *g = &conf->global;

	r->daemon = FD_DAEMON + (uint64_t)workers * FD_PER_WORKER;
	/* a socket per worker and bind, and the worker's duplicate of it */
	r->listeners = 2ull * workers * count_binds(conf);
	r->pipes = 2ull * workers * PIPES_PER_WORKER;
	r->checks = core_health_checkers(conf);
	/* each door (control socket, metrics port) has its own clients */
	r->control = ctl_fds_max(g->ncontrols, g->metrics.len != 0);
	r->vrrp = (uint64_t)FD_PER_VRRP * conf->nvrrps;
	return r->daemon + r->listeners + r->pipes + r->checks + r->control + r->vrrp;
}

/* Raise the descriptor limit as far as allowed and derive the maxconn it
 * can honour: two descriptors per connection after the reserve, so that
 * at the connection limit health checks, control clients and pipes still
 * get theirs. Sets c->fd_reserve_checks. */
static uint32_t size_limits(struct core *c, uint32_t workers)
{
	const struct conf *conf = c->conf;
	struct fd_reserve r;
	struct rlimit rl;
	uint64_t fixed, usable;
	uint32_t want = conf->global.maxconn, can;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			log_warn("cannot raise the descriptor limit to %llu: %s",
				 (unsigned long long)rl.rlim_max, strerror(errno));
		getrlimit(RLIMIT_NOFILE, &rl);
	}
	fixed = fd_reserve(conf, workers, &r);
	c->fd_reserve_checks = (uint32_t)r.checks;
	usable = rl.rlim_cur > fixed ? (rl.rlim_cur - fixed) / 2 : 1;
	can = (uint32_t)UTIL_MIN(usable, 10000000);
	log_notice("descriptor reserve %llu: %llu daemon, %llu listeners, %llu pipes, %llu "
		   "checks, %llu control, %llu vrrp",
		   (unsigned long long)fixed, (unsigned long long)r.daemon,
		   (unsigned long long)r.listeners, (unsigned long long)r.pipes,
		   (unsigned long long)r.checks, (unsigned long long)r.control,
		   (unsigned long long)r.vrrp);
	if (want == 0) {
		want = can;
	} else if (want > can) {
		log_warn("global maxconn %u lowered to %u: the descriptor limit is %llu "
			 "(2 per connection, %llu reserved)",
			 want, can, (unsigned long long)rl.rlim_cur, (unsigned long long)fixed);
		want = can;
	}
	log_notice("limits: %llu descriptors, maxconn %u", (unsigned long long)rl.rlim_cur, want);
	return want;
}

/* The relay memory ceiling: as configured, or by default what the other
 * limits allow anyway (both directions of every connection holding a
 * buffer, every worker's pipes full), so that it never binds before them
 * unless the operator lowers it. */
static uint64_t bufmem_limit(const struct conf *conf, uint32_t maxconn, uint32_t workers)
{
	uint64_t derived =
	    2ull * maxconn * (BUFSIZE + 256) + (uint64_t)workers * PIPES_PER_WORKER * PIPE_BYTES;

	if (conf->global.bufmem != 0) {
		log_notice("bufmem %llu KiB for relay buffers and pipes (the connection limit "
			   "alone would allow %llu KiB)",
			   (unsigned long long)(conf->global.bufmem >> 10),
			   (unsigned long long)(derived >> 10));
		return conf->global.bufmem;
	}
	log_notice("bufmem %llu KiB for relay buffers and pipes (derived from maxconn)",
		   (unsigned long long)(derived >> 10));
	return derived;
}

static void finish(struct core *c)
{
	ev_break(c->loop, EVBREAK_ALL);
}

static void on_drain_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct core *c = t->data;

	(void)loop;
	(void)revents;
	/* a listener still serving answered handshakes may yet add some; in
	 * this order: a worker counts a client it accepts before it counts
	 * its listener closed */
	if (proxy_engine_closing(c->engine) == 0 && proxy_engine_active(c->engine) == 0) {
		log_notice("all connections finished");
		finish(c);
	}
}

static void on_grace_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct core *c = t->data;

	(void)loop;
	(void)revents;
	log_notice("grace period over: closing %u connections", proxy_engine_active(c->engine));
	proxy_engine_close_all(c->engine);
}

/* Stop accepting and start the drain: the listeners close now. */
static void stop_listeners(struct core *c, const char *why)
{
	double grace = (double)c->conf->global.grace_ms / 1000.0;

	log_notice("%s: stopping listeners, %u connections open, grace %llums", why,
		   proxy_engine_active(c->engine), (unsigned long long)c->conf->global.grace_ms);
	for (size_t i = 0; i < c->nlisteners; i++) {
		proxy_engine_detach(c->engine, c->listeners[i].fe, c->handing_over);
		/* our own copies too, so the sockets close and clients are refused */
		proxy_frontend_close_sockets(c->listeners[i].fe);
	}
	ev_timer_init(&c->drain_timer, on_drain_timer, 0.0, 0.05);
	c->drain_timer.data = c;
	ev_timer_start(c->loop, &c->drain_timer);
	ev_timer_init(&c->grace_timer, on_grace_timer, grace, 0.0);
	c->grace_timer.data = c;
	ev_timer_start(c->loop, &c->grace_timer);
}

static void on_withdraw_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct core *c = t->data;

	(void)loop;
	(void)revents;
	stop_listeners(c, "withdraw delay over");
}

void core_begin_shutdown(struct core *c, const char *why)
{
	uint64_t delay_ms;

	if (c->stopping) {
		log_notice("%s again: closing connections now", why);
		if (ev_is_active(&c->withdraw_timer)) {
			ev_timer_stop(c->loop, &c->withdraw_timer);
			stop_listeners(c, why);
		}
		proxy_engine_close_all(c->engine);
		return;
	}
	c->stopping = true;
	core_notify("STOPPING=1");
	/* a reload being applied finishes first (its VRRP and announce
	 * halves commit), so that what shuts down is one model */
	core_reload_stop(c);
	core_vrrp_shutdown(c); /* priority 0 first: the peer takes over during the drain */
	/* withdrawn first; the routers still send new clients here until they
	 * converge (BFD, the FIB), so those are served for withdraw-delay */
	delay_ms = core_announce_shutdown(c);
	if (delay_ms == 0) {
		stop_listeners(c, why);
		return;
	}
	log_notice("%s: addresses withdrawn, accepting for %llums more (withdraw-delay), %u "
		   "connections open",
		   why, (unsigned long long)delay_ms, proxy_engine_active(c->engine));
	ev_timer_init(&c->withdraw_timer, on_withdraw_timer, (double)delay_ms / 1000.0, 0.0);
	c->withdraw_timer.data = c;
	ev_timer_start(c->loop, &c->withdraw_timer);
}

static void on_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
	struct core *c = w->data;

	(void)loop;
	(void)revents;
	switch (w->signum) {
	case SIGTERM:
		core_begin_shutdown(c, "SIGTERM");
		break;
	case SIGINT:
		core_begin_shutdown(c, "SIGINT");
		break;
	case SIGHUP:
		if (c->stopping) {
			log_warn("SIGHUP during shutdown: not reloading");
			break;
		}
		log_notice("SIGHUP: reloading %s", c->conf_path);
		core_reload_request(c, false, "SIGHUP");
		break;
	}
}

static void on_reclaim(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct core *c = t->data;

	(void)loop;
	(void)revents;
	core_guard_tick(c);
	/* bounded: a large reload's retired servers go over several ticks */
	qsbr_reclaim_some(&c->qsbr, RECLAIM_PER_TICK);
}

static uint32_t worker_count(const struct conf *conf)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	if (conf->global.workers != 0)
		return conf->global.workers;
	return (uint32_t)UTIL_MAX(1, UTIL_MIN(n, UTIL_MAX_WORKERS));
}

/* Start-up is a reload from an empty configuration: the listeners and
 * pools, then the cluster program prepared in ct (may be NULL: committed
 * already; freed either way). Returns 0 or -1 with err. */
static int apply_start(struct core *c, struct core_cluster_txn *ct, char *err, size_t len)
{
	struct conf *loaded = c->conf, *empty = conf_empty(c->conf_path);
	int rc = -1;

	if (empty != NULL) {
		c->conf = empty;
		rc = core_apply(c, loaded, err, len);
		c->conf = loaded;
		conf_free(empty);
	} else {
		snprintf(err, len, "out of memory");
	}
	/* the guards hold the allow/deny file tables now */
	core_guard_load_free(c->guard_load);
	c->guard_load = NULL;
	if (rc < 0) {
		if (ct != NULL)
			core_cluster_rollback(c, ct);
		return -1;
	}
	return ct != NULL ? core_cluster_commit(c, ct, err, len) : 0;
}

/* Prepare the cluster program and take the sockets over from the old
 * process, if any. The program is attached once the listeners are (by
 * apply_start(), *ct left set), so that a failed takeover leaves the old
 * process's program alone; but one program must always be attached, and
 * an old process without connections exits at once: tcx links die with it
 * and stack with ours, so they are attached before the takeover (a failed
 * one only takes ours away), while a tc filter is replaced in place and
 * the old process leaves its own when it hands over. Returns 0 or -1 with
 * err (*ct freed). */
static int cluster_and_takeover(struct core *c, struct core_cluster_txn **ct, char *err, size_t len)
{
	*ct = core_cluster_prepare(c, c->conf, err, len);
	if (*ct == NULL)
		return -1;
	if (c->takeover_path == NULL)
		return 0;
	if (core_cluster_stacks(*ct)) {
		struct core_cluster_txn *t = *ct;

		*ct = NULL;
		if (core_cluster_commit(c, t, err, len) < 0)
			return -1;
	}
	if (core_takeover_receive(c, c->takeover_path, err, len) < 0) {
		if (*ct != NULL)
			core_cluster_rollback(c, *ct);
		*ct = NULL;
		return -1;
	}
	return 0;
}

static int run(struct core *c)
{
	struct proxy_engine_conf ec = {.bufsize = BUFSIZE,
				       .max_pipes_per_worker = PIPES_PER_WORKER};
	struct core_cluster_txn *ct;
	char err[256];

	ec.workers = c->nworkers = worker_count(c->conf);
	util_strlcpy(c->last_reload, "none", sizeof(c->last_reload));
	c->loop = ev_default_loop(EVFLAG_NOENV);
	core_guard_reaper(true);
	ec.maxconn = c->maxconn = size_limits(c, ec.workers);
	ec.bufmem = c->bufmem = bufmem_limit(c->conf, c->maxconn, ec.workers);
	pool_set_qsbr(&c->qsbr);
	c->engine = proxy_engine_new(&ec, &c->qsbr);
	if (c->engine == NULL) {
		log_err("cannot create the workers");
		return 1;
	}
	/* BPF programs load before the privilege drop, and before a takeover
	 * starts the old process's exit */
	c->bpf_allowed = true;
	if (cluster_and_takeover(c, &ct, err, sizeof(err)) < 0 ||
	    apply_start(c, ct, err, sizeof(err)) < 0) {
		log_err("%s", err);
		return 1;
	}
	core_log_listeners(c);
	core_dns_sync(c); /* servers from the answers so far */
	if (core_vrrp_apply(c, c->conf, err, sizeof(err)) < 0) {
		log_err("%s", err);
		return 1;
	}
	if (core_announce_prepare(c, c->conf, err, sizeof(err)) < 0) {
		log_err("%s", err);
		return 1;
	}
	core_announce_commit(c);
	if (core_ctl_start(c, err, sizeof(err)) < 0) {
		log_err("%s", err);
		return 1;
	}
	core_takeover_done(c);
	if (core_drop_privileges(c->conf->global.user, c->conf->global.group,
				 c->conf->cluster.present || core_krelay_used(c->conf), err,
				 sizeof(err)) < 0) {
		log_err("%s", err);
		return 1;
	}
	if (c->conf->global.user[0] != '\0' || c->conf->global.group[0] != '\0')
		c->bpf_allowed = c->conf->cluster.present || core_krelay_used(c->conf);
	if (log_start() < 0)
		fprintf(stderr, "sluice: cannot start the log thread; logging synchronously\n");
	if (proxy_engine_start(c->engine) < 0)
		return 1;
	ev_signal_init(&c->sig_term, on_signal, SIGTERM);
	ev_signal_init(&c->sig_int, on_signal, SIGINT);
	ev_signal_init(&c->sig_hup, on_signal, SIGHUP);
	c->sig_term.data = c->sig_int.data = c->sig_hup.data = c;
	ev_signal_start(c->loop, &c->sig_term);
	ev_signal_start(c->loop, &c->sig_int);
	ev_signal_start(c->loop, &c->sig_hup);
	ev_timer_init(&c->reclaim_timer, on_reclaim, 0.1, 0.1);
	c->reclaim_timer.data = c;
	ev_timer_start(c->loop, &c->reclaim_timer);
	if (core_health_start(c, err, sizeof(err)) < 0) {
		log_err("%s", err);
		return 1;
	}
#ifdef SLUICE_FAULT_INJECTION
	log_warn("built with fault injection (make FAULT=1): for tests only, never for "
		 "production; SLUICE_FAULT=%s",
		 getenv("SLUICE_FAULT") != NULL ? getenv("SLUICE_FAULT") : "");
#endif
	log_notice("sluice %s ready: pid %d, %u workers, config %s", SLUICE_VERSION, (int)getpid(),
		   ec.workers, c->conf_path);
	core_notify("READY=1");
	ev_run(c->loop, 0);
	return c->exit_code;
}

int main(int argc, char **argv)
{
	struct conf_errors errs = {0};
	struct core c = {.exit_code = 0};
	char err[256];
	bool check_only = false;
	int opt, rc, verbose = 0;

	static const struct option longopts[] = {
	    {"takeover", required_argument, NULL, 't'},
	    {"version", no_argument, NULL, 'V'},
	    {"dump-keywords", no_argument, NULL, 'K'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};

	list_init(&c.graces);

	while ((opt = getopt_long(argc, argv, "f:cvh", longopts, NULL)) != -1) {
		switch (opt) {
		case 't':
			c.takeover_path = optarg;
			break;
		case 'f':
			c.conf_path = optarg;
			break;
		case 'c':
			check_only = true;
			break;
		case 'v':
			verbose++;
			break;
		case 'V':
			verbose = 2;
			break;
		case 'K':
			core_dump_keywords(stdout);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (verbose > 0) {
		core_print_version(stdout, verbose > 1);
		return 0;
	}
	if (c.conf_path == NULL || optind != argc) {
		usage(stderr);
		return 2;
	}
	/* the loop first: the file's names are looked up on it */
	c.loop = ev_default_loop(EVFLAG_NOENV);
	if (c.loop == NULL) {
		fprintf(stderr, "sluice: cannot create the event loop\n");
		return 1;
	}
	c.conf = core_load_conf(c.conf_path, NULL, &errs);
	/* the log targets before the file's names are looked up, so that
	 * what the lookups say goes where the file says; a check prints its
	 * errors and warnings, nothing of the lookups */
	if (c.conf != NULL && check_only)
		log_set_level(LOGL_WARNING);
	if (c.conf != NULL && !check_only &&
	    log_configure(c.conf->global.logs, c.conf->global.nlogs, err, sizeof(err)) < 0) {
		fprintf(stderr, "sluice: %s\n", err);
		conf_free(c.conf);
		ev_loop_destroy(c.loop);
		return 1;
	}
	if (c.conf == NULL || core_dns_start(&c, c.conf, &errs) < 0) {
		print_errors(&errs, "errors");
		conf_errors_clear(&errs);
		core_dns_free(&c);
		conf_free(c.conf);
		ev_loop_destroy(c.loop);
		return 1;
	}
	/* allow/deny files: read here, before anything starts */
	c.guard_load = core_guard_load(NULL, c.conf, &errs, false);
	if (c.guard_load == NULL) {
		print_errors(&errs, "errors");
		conf_errors_clear(&errs);
		core_dns_free(&c);
		conf_free(c.conf);
		ev_loop_destroy(c.loop);
		return 1;
	}
	if (check_only) {
		print_errors(&c.conf->warnings, "warnings");
		printf("%s: configuration is valid\n", c.conf_path);
		core_guard_load_free(c.guard_load);
		core_dns_free(&c);
		conf_free(c.conf);
		ev_loop_destroy(c.loop);
		return 0;
	}
	signal(SIGPIPE, SIG_IGN);
	for (size_t i = 0; i < c.conf->warnings.n; i++)
		log_warn("%s", c.conf->warnings.msgs[i]);
	c.start_ms = util_now_ms();
	rc = run(&c);
	core_reload_free(&c);
	core_guard_reaper(false);
	core_guard_load_free(c.guard_load); /* a start that failed before applying */
	ctl_free(c.ctl);
	core_vrrp_free(&c);
	core_cluster_free(&c);
	core_announce_free(&c);
	if (c.krelay != NULL)
		log_notice(
		    "kernel relay: %llu connections relayed in the kernel, %llu stayed in "
		    "user space, %llu repeated segments cut, %llu streams reset (bytes lost)",
		    (unsigned long long)proxy_engine_krelay_conns(c.engine),
		    (unsigned long long)proxy_engine_krelay_fallbacks(c.engine),
		    (unsigned long long)proxy_engine_krelay_cut(c.engine),
		    (unsigned long long)proxy_engine_krelay_broken(c.engine));
	proxy_engine_free(c.engine);
	core_krelay_free(&c);
	core_health_stop(&c);
	core_dns_free(&c);
	core_model_free(&c);
	qsbr_destroy(&c.qsbr);
	if (c.loop != NULL)
		ev_loop_destroy(c.loop);
	log_notice("sluice exiting (%d)", rc);
	log_stop();
	conf_free(c.conf);
	return rc;
}
