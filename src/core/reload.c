/* reload: configuration reload on SIGHUP or from the control socket. The
 * new file is read, parsed and validated on a loader thread (conf is
 * pure; the thread only reads the running configuration, which nothing
 * changes while a reload runs), its host names looked up on the loop
 * through c-ares (core_dns_prepare: 2 s at most, the loop runs on), then
 * applied on the control loop as one transaction: log targets, VRRP and
 * announce prepare (new instances built, devices opened) before the
 * apply's first step, core_apply_step() binds and builds in steps of
 * about a millisecond before it changes anything, and VRRP, announce, the
 * log targets and the resolvers commit after its last step. VRRP adverts
 * and health checks keep their times whatever the size of the file. An
 * invalid file, a name without an address or a failed bind leaves the
 * running configuration exactly as it was, VRRP included, logged with its
 * FILE:LINE:COL and counted. One reload runs at a time; a request that
 * comes meanwhile is queued (one of each kind; more are merged into it)
 * and logged. */
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <sys/resource.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core.h"
#include "sluice/conf.h"
#include "sluice/log.h"
#include "sluice/util.h"

static void stamp(char *buf, size_t len)
{
	time_t now = time(NULL);
	struct tm tm;

	gmtime_r(&now, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void failed(struct core *c, const char *why, char *msg, size_t len)
{
	char ts[32];

	stamp(ts, sizeof(ts));
	c->reloads_failed++;
	snprintf(c->last_reload, sizeof(c->last_reload), "failed at %s: %s", ts, why);
	log_err("reload failed, keeping the running configuration: %s", why);
	if (msg[0] == '\0')
		snprintf(msg, len, "reload failed, running configuration kept: %s", why);
}

/* Log each line of a multi-line text. */
static void log_lines(const char *prefix, const char *text)
{
	const char *p = text;

	while (*p != '\0') {
		const char *nl = strchr(p, '\n');
		int n = nl ? (int)(nl - p) : (int)strlen(p);

		log_notice("%s%.*s", prefix, n, p);
		p += n + (nl != NULL);
	}
}

/* The address a running server of the same pool and name written with the
 * same host name has, or NULL. */
static const struct util_addr *prev_addr(const struct conf *old, const struct conf_pool *p,
					 const struct conf_server *s)
{
	const struct conf_pool *op = old != NULL ? conf_find_pool(old, p->name) : NULL;
	const struct conf_server *os = op != NULL ? conf_find_server(op, s->name) : NULL;

	if (os == NULL || strcmp(os->host, s->host) != 0 || os->port != s->port)
		return NULL;
	return &os->addr;
}

struct conf *core_load_conf(const char *path, const struct conf *old, struct conf_errors *errs)
{
	struct conf *nc = conf_load_file(path, errs);

	if (nc == NULL)
		return NULL;
	/* the addresses named servers have now: kept while their names still
	 * answer them (core_dns_prepare looks every name up on the loop) */
	for (size_t p = 0; p < nc->npools; p++) {
		for (size_t i = 0; i < nc->pools[p].nservers; i++) {
			struct conf_server *s = &nc->pools[p].servers[i];
			const struct util_addr *prev = prev_addr(old, &nc->pools[p], s);

			if (s->host[0] != '\0' && prev != NULL)
				s->addr = *prev;
		}
	}
	return nc;
}

/* A reload done but for its cluster block (cerr, "" when it was
 * applied): say so after the diff. */
static void cluster_not_applied(char *msg, size_t len, const char *cerr)
{
	size_t off = strlen(msg);

	if (cerr[0] != '\0')
		util_bufprintf(msg, len, &off,
			       "\nbut the cluster block was not applied, the running program is "
			       "kept: %s",
			       cerr);
}

/* ---- one reload at a time, in the background ---- */

#define RELOAD_MSG_MAX 8192
#define RELOAD_REAP_SERVERS 4096 /* a configuration freed off the loop */

/* A reload or check in progress. Owned by the core (c->reload). */
struct core_reload {
	struct core *c;
	uint64_t id;
	bool check_only;
	bool abandoned; /* shutdown came while it was loading: drop the file */
	bool resolving; /* its names are being looked up (core_dns_prepare) */
	/* the loader thread's, read by the loop once done fired and loaded
	 * is seen set (the release / acquire pair orders them: libev's
	 * wake-up is no synchronisation a thread sanitizer can see) */
	ev_async done;
	_Atomic bool loaded;
	struct conf *nc;
	struct core_guard_load *guard; /* nc's allow/deny file tables */
	struct conf_errors errs;
	char diff[RELOAD_MSG_MAX];
	/* applying: the transaction's other halves, prepared before the
	 * apply's first step, committed after its last or rolled back */
	struct core_apply *apply;
	struct core_vrrp_txn *vrrp;
	struct log_set *logs;
	struct core_cluster_txn *cluster; /* a changed program loaded, not attached */
	bool announce;			  /* core_announce_prepare() succeeded */
	bool applied;			  /* the model runs nc: commit at the next step */
	ev_timer step;
	uint64_t t0_us, steps, longest_step_us;
};

static void reload_next(struct core *c);

/* Keep the outcome of a finished reload for whoever waits on its id. */
static void record(struct core *c, uint64_t id, int rc, const char *msg)
{
	struct core_reload_result *r = &c->reload_results[id % CORE_RELOAD_RESULTS];

	r->id = id;
	r->rc = rc;
	util_strlcpy(r->msg, msg, sizeof(r->msg));
}

/* Undo what the transaction prepared beside the apply; the running VRRP
 * instances, cluster program, announce blocks and log targets never
 * noticed. */
static void rollback(struct core_reload *r)
{
	if (r->announce)
		core_announce_rollback(r->c);
	if (r->cluster != NULL)
		core_cluster_rollback(r->c, r->cluster);
	if (r->vrrp != NULL)
		core_vrrp_rollback(r->c, r->vrrp);
	log_set_free(r->logs);
	r->announce = false;
	r->cluster = NULL;
	r->vrrp = NULL;
	r->logs = NULL;
}

static void finish(struct core_reload *r, int rc, const char *msg)
{
	struct core *c = r->c;

	rollback(r); /* nothing left by a commit */
	record(c, r->id, rc, msg);
	if (!r->check_only && !c->stopping)
		core_notify("READY=1");
	if (r->resolving)
		core_dns_abort(c);
	if (r->apply != NULL)
		core_apply_free(r->apply);
	/* applied or not, the listeners took what they use */
	core_guard_load_free(r->guard);
	core_guard_load_free(c->guard_load);
	c->guard_load = NULL;
	if (c->loop != NULL) {
		ev_async_stop(c->loop, &r->done);
		ev_timer_stop(c->loop, &r->step);
	}
	conf_free(r->nc);
	conf_errors_clear(&r->errs);
	free(r);
	c->reload = NULL;
	reload_next(c);
}

/* Run fn(arg) on a detached thread of the lowest priority: background work
 * that the control loop and the workers preempt, even on one CPU, and that
 * nobody waits to join. Returns 0 or -1. */
static int start_background(void *(*fn)(void *), void *arg)
{
	pthread_attr_t attr;
	pthread_t t;
	int rc = -1;

	if (pthread_attr_init(&attr) != 0)
		return -1;
	if (pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED) == 0 &&
	    pthread_create(&t, &attr, fn, arg) == 0)
		rc = 0;
	pthread_attr_destroy(&attr);
	return rc;
}

static void background_priority(void)
{
	struct sched_param sp = {.sched_priority = 0};

	/* batch class at nice 19: preempted by the control loop and the
	 * workers, yet never starved (SCHED_IDLE would be, on a machine kept
	 * busy by traffic); should this fail, it competes as an equal */
	pthread_setschedparam(pthread_self(), SCHED_BATCH, &sp);
	setpriority(PRIO_PROCESS, (id_t)gettid(), 19);
}

static void *loader(void *arg)
{
	struct core_reload *r = arg;
	struct core *c = r->c; /* r may be gone once done is sent */

	background_priority();
	/* no logging here: the loop logs what this found */
	r->nc = core_load_conf(c->conf_path, c->conf, &r->errs);
	/* allow/deny files that changed: read and built here too */
	if (r->nc != NULL && (r->guard = core_guard_load(c, r->nc, &r->errs, true)) == NULL) {
		conf_free(r->nc);
		r->nc = NULL;
	}
	if (r->nc != NULL) {
		core_diff(c->conf, r->nc, r->diff, sizeof(r->diff));
		core_guard_load_describe(r->guard, r->diff, sizeof(r->diff));
	}
	atomic_store_explicit(&r->loaded, true, memory_order_release);
	ev_async_send(c->loop, &r->done);
	atomic_store(&c->reload_loading, false); /* the last touch of the loop */
	return NULL;
}

static void *reaper(void *arg)
{
	background_priority();
	conf_free(arg);
	return NULL;
}

/* Free the configuration a reload replaced (nothing points into it any
 * more). A large one is tens of megabytes that munmap gives back in
 * milliseconds: off the loop when a thread can be had. */
static void free_old_conf(struct conf *old)
{
	size_t n = 0;

	for (size_t i = 0; i < old->npools; i++)
		n += old->pools[i].nservers;
	if (n < RELOAD_REAP_SERVERS || start_background(reaper, old) < 0)
		conf_free(old);
}

/* The new configuration is running: what cannot change without a restart
 * keeps its value, health checks follow, the outcome is logged. */
static void commit(struct core_reload *r)
{
	struct core *c = r->c;
	struct conf *nc = r->nc;
	char err[512], cerr[256] = "", ts[32], msg[RELOAD_MSG_MAX];
	size_t off = 0;

	uint64_t t0 = util_now_us();

	/* the apply's last step is done: the cluster program, VRRP and
	 * announce commit now (a rejected reload never touches the running
	 * program, sends priority 0 or moves a VIP), and the new log targets
	 * take over from here. The cluster commit fails only if the kernel
	 * now refuses an attach that prepare's checks allowed: the running
	 * program is kept, the rest stands. */
	if (core_cluster_commit(c, r->cluster, cerr, sizeof(cerr)) < 0)
		log_err("reload: the cluster block was not applied, the running program is kept: "
			"%s",
			cerr);
	r->cluster = NULL;
	core_vrrp_commit(c, r->vrrp);
	r->vrrp = NULL;
	if (r->announce)
		core_announce_commit(c);
	r->announce = false;
	log_set_install(r->logs);
	r->logs = NULL;
	/* what cannot change without a restart keeps its running value */
	nc->global.workers = c->conf->global.workers;
	nc->global.maxconn = c->conf->global.maxconn;
	free_old_conf(c->conf);
	c->conf = nc;
	r->nc = NULL;
	r->resolving = false;
	core_dns_commit(c); /* discovered servers, named servers followed */
	if (core_health_resync(c, err, sizeof(err)) < 0)
		log_err("reload: health checks: %s", err);
	c->reloads_ok++;
	stamp(ts, sizeof(ts));
	snprintf(c->last_reload, sizeof(c->last_reload), "ok at %s", ts);
	log_notice("reload of %s done", c->conf_path);
	log_notice(
	    "reload: applied in %llums, %llu steps, the longest %lluus, then %lluus to commit",
	    (unsigned long long)((t0 - r->t0_us) / 1000), (unsigned long long)r->steps,
	    (unsigned long long)r->longest_step_us, (unsigned long long)(util_now_us() - t0));
	log_lines("reload: ", r->diff);
	util_bufprintf(msg, sizeof(msg), &off, "reload done:\n%s", r->diff);
	cluster_not_applied(msg, sizeof(msg), cerr);
	finish(r, 0, msg);
}

static void rejected(struct core_reload *r, const char *why)
{
	char msg[RELOAD_MSG_MAX];

	msg[0] = '\0';
	failed(r->c, why, msg, sizeof(msg));
	finish(r, -1, msg);
}

/* One bounded step of the apply; the next runs after the loop's other
 * events. */
static void on_step(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct core_reload *r = t->data;
	char err[512];
	uint64_t t0 = util_now_us(), took;
	int rc;

	(void)revents;
	if (r->applied) {
		commit(r);
		return;
	}
	err[0] = '\0';
	rc = core_apply_step(r->apply, CORE_APPLY_STEP_US, err, sizeof(err));
	took = util_now_us() - t0;
	r->steps++;
	if (took > r->longest_step_us)
		r->longest_step_us = took;
	if (rc >= 0) {
		/* the commit is a step of its own */
		r->applied = rc == 0;
		ev_timer_set(t, 0.0, 0.0);
		ev_timer_start(loop, t);
		return;
	}
	/* binding or building failed, the model is as it was: finish() drops
	 * what VRRP, announce and the log targets prepared */
	rejected(r, err);
}

/* The file could not be used: report it (a check answers it too). */
static void bad_file(struct core_reload *r)
{
	char msg[RELOAD_MSG_MAX];
	size_t off = 0;

	msg[0] = '\0';
	for (size_t i = 0; i < r->errs.n; i++) {
		log_err("%s", r->errs.msgs[i]);
		util_bufprintf(msg, sizeof(msg), &off, "%s%s", i ? "\n" : "", r->errs.msgs[i]);
	}
	if (r->check_only) {
		finish(r, -1, msg);
		return;
	}
	failed(r->c, r->errs.n > 0 ? r->errs.msgs[0] : "cannot read the file", msg, sizeof(msg));
	finish(r, -1, msg);
}

/* Its names were looked up: report a name without an address, answer a
 * check, or start applying. */
static void on_resolved(void *arg)
{
	struct core_reload *r = arg;
	struct core *c = r->c;
	char err[512], msg[RELOAD_MSG_MAX];
	size_t off = 0;

	if (r->abandoned) {
		finish(r, -1, "reload not applied: shutting down");
		return;
	}
	/* the lookups may have moved named servers the diff spoke of */
	util_strlcpy(msg, core_dns_prepared_diff(c), sizeof(msg));
	if (msg[0] != '\0') {
		off = strlen(r->diff);
		if (strncmp(r->diff, "no change", 9) == 0)
			off = 0;
		util_bufprintf(r->diff, sizeof(r->diff), &off, "%s", off == 0 ? msg + 1 : msg);
	}
	if (r->errs.n > 0 || r->errs.truncated) {
		bad_file(r);
		return;
	}
	/* a route that can never match: say so, as sluice -c does */
	for (size_t i = 0, doff = strlen(r->diff); i < r->nc->warnings.n; i++) {
		log_warn("%s", r->nc->warnings.msgs[i]);
		util_bufprintf(r->diff, sizeof(r->diff), &doff, "\n%s", r->nc->warnings.msgs[i]);
	}
	if (r->check_only) {
		off = 0;
		util_bufprintf(msg, sizeof(msg), &off, "%s is valid; a reload would apply:\n%s",
			       c->conf_path, r->diff);
		finish(r, 0, msg);
		return;
	}
	/* Every prepare before the apply's first step, every commit after
	 * its last (commit()). The new log targets are opened now and
	 * installed only once the rest is applied, so a failed reload logs
	 * where it logged before; VRRP prepares beside the running instances
	 * (no advert changes, no VIP moves); announce prepares what can fail
	 * (devices, serving addresses). Nothing else adds or removes VRRP
	 * instances or announce blocks until then: one reload runs at a time,
	 * takeover waits for it, shutdown finishes it first
	 * (core_reload_stop); what the running announce blocks decide
	 * meanwhile is taken over at their commit. */
	err[0] = '\0';
	r->logs = log_set_new(r->nc->global.logs, r->nc->global.nlogs, err, sizeof(err));
	if (r->logs != NULL)
		r->vrrp = core_vrrp_prepare(c, r->nc, err, sizeof(err));
	/* the cluster block loads and verifies a changed program without
	 * attaching it */
	if (r->vrrp != NULL)
		r->cluster = core_cluster_prepare(c, r->nc, err, sizeof(err));
	if (r->cluster != NULL && core_announce_prepare(c, r->nc, err, sizeof(err)) == 0)
		r->announce = true;
	if (!r->announce) {
		rejected(r, err); /* finish() rolls back what was prepared */
		return;
	}
	c->guard_load = r->guard; /* for the listeners' commit */
	r->guard = NULL;
	r->apply = core_apply_begin(c, r->nc);
	if (r->apply == NULL) {
		rejected(r, "out of memory");
		return;
	}
	r->t0_us = util_now_us();
	ev_timer_init(&r->step, on_step, 0.0, 0.0);
	r->step.data = r;
	ev_timer_start(c->loop, &r->step);
}

/* The loader is done: report a bad file, or look its names up. */
static void on_loaded(struct ev_loop *loop, ev_async *w, int revents)
{
	struct core_reload *r = w->data;
	struct core *c = r->c;

	(void)loop;
	(void)revents;
	if (!atomic_load_explicit(&r->loaded, memory_order_acquire))
		return; /* not the loader's wake-up */
	if (r->abandoned) {
		finish(r, -1, "reload not applied: shutting down");
		return;
	}
	if (r->nc == NULL) {
		bad_file(r);
		return;
	}
	if (core_dns_prepare(c, r->nc, &r->errs, on_resolved, r) < 0) {
		bad_file(r);
		return;
	}
	r->resolving = true;
}

static void reload_begin(struct core *c, uint64_t id, bool check_only)
{
	struct core_reload *r = calloc(1, sizeof(*r));

	if (r == NULL) {
		log_err("reload: out of memory");
		record(c, id, -1, "reload: out of memory");
		return;
	}
	r->c = c;
	r->id = id;
	r->check_only = check_only;
	/* systemd (notify-reload) wants RELOADING=1 then READY=1 for every
	 * reload, failed ones included */
	if (!check_only)
		core_notify_reloading();
	ev_async_init(&r->done, on_loaded);
	r->done.data = r;
	ev_async_start(c->loop, &r->done);
	c->reload = r;
	atomic_store(&c->reload_loading, true);
	if (start_background(loader, r) < 0) {
		atomic_store(&c->reload_loading, false);
		c->reload = NULL;
		ev_async_stop(c->loop, &r->done);
		free(r);
		log_err("reload: cannot start the loader thread");
		record(c, id, -1, "reload failed: cannot start the loader thread");
		if (!check_only)
			core_notify("READY=1");
	}
}

/* The queued request, if any, once the running one is over. */
static void reload_next(struct core *c)
{
	uint64_t id;

	if (c->stopping || c->reload != NULL)
		return;
	if (c->reload_queued != 0) {
		id = c->reload_queued;
		c->reload_queued = 0;
		log_notice("reload: running the queued reload of %s", c->conf_path);
		reload_begin(c, id, false);
	} else if (c->check_queued != 0) {
		id = c->check_queued;
		c->check_queued = 0;
		reload_begin(c, id, true);
	}
}

uint64_t core_reload_request(struct core *c, bool check_only, const char *from)
{
	uint64_t *queued = check_only ? &c->check_queued : &c->reload_queued;

	if (c->reload == NULL) {
		uint64_t id = ++c->reload_seq;

		reload_begin(c, id, check_only);
		return id;
	}
	if (*queued != 0) {
		log_notice("%s: a %s is already queued behind the running one", from,
			   check_only ? "reload check" : "reload");
		return *queued;
	}
	*queued = ++c->reload_seq;
	log_notice("%s while a reload is running: queued (runs when that one ends)", from);
	return *queued;
}

int core_reload_result(struct core *c, uint64_t id, char *msg, size_t len)
{
	const struct core_reload_result *r = &c->reload_results[id % CORE_RELOAD_RESULTS];

	if (r->id == id) {
		util_strlcpy(msg, r->msg, len);
		return r->rc;
	}
	if ((c->reload != NULL && c->reload->id == id) || id == c->reload_queued ||
	    id == c->check_queued)
		return 1;
	snprintf(msg, len, "reload %llu: its result is no longer kept", (unsigned long long)id);
	return -1;
}

bool core_reload_applying(const struct core *c)
{
	return c->reload != NULL && c->reload->apply != NULL;
}

void core_reload_stop(struct core *c)
{
	struct core_reload *r = c->reload;
	char err[512];
	int rc;

	/* a control client may wait on what was queued */
	if (c->reload_queued != 0)
		record(c, c->reload_queued, -1, "reload not run: shutting down");
	if (c->check_queued != 0)
		record(c, c->check_queued, -1, "reload check not run: shutting down");
	c->reload_queued = c->check_queued = 0;
	if (r == NULL)
		return;
	if (r->apply == NULL) {
		/* still loading: the thread ends by itself; looking names up:
		 * that ends within its deadline; either way its result is
		 * dropped */
		r->abandoned = true;
		return;
	}
	/* applying: finish now, so that shutdown sees one model */
	ev_timer_stop(c->loop, &r->step);
	rc = 0;
	while (!r->applied && (rc = core_apply_step(r->apply, UINT64_MAX, err, sizeof(err))) > 0)
		;
	if (rc == 0)
		commit(r);
	else
		rejected(r, err);
}

void core_reload_free(struct core *c)
{
	struct core_reload *r = c->reload;

	/* the loader sends on the loop: it must be done before the loop goes
	 * (it only reads a file; 1 ms between looks, 10 s at most) */
	for (int i = 0; i < 10000 && atomic_load(&c->reload_loading); i++)
		nanosleep(&(struct timespec){.tv_nsec = 1000000}, NULL);
	if (atomic_load(&c->reload_loading)) {
		log_err("reload: the loader thread did not end; leaving it");
		return;
	}
	if (r == NULL)
		return;
	r->abandoned = true;
	finish(r, -1, "reload not applied: shutting down");
}

int core_reload_hook_start(void *arg, bool check_only, char *msg, size_t len, uint64_t *id)
{
	struct core *c = arg;

	if (c->stopping) {
		snprintf(msg, len, "shutting down: not reloading");
		return -1;
	}
	*id = core_reload_request(c, check_only, check_only ? "reload check" : "reload command");
	return 0;
}

int core_reload_hook_result(void *arg, uint64_t id, char *msg, size_t len)
{
	return core_reload_result(arg, id, msg, len);
}
