/* guard_glue: the edge policy from the configuration to each listener's
 * guard, and the control socket's view of it. Allow/deny files can hold a
 * million prefixes: at a reload they are read and their table built on the
 * reload's loader thread with the rest of the file, so that the control
 * loop keeps sending adverts and running checks. A file that did not
 * change (same path, inode, size and modification time) keeps its table.
 * At start-up and for -c the files are read in place. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core.h"
#include "sluice/conf.h"
#include "sluice/ctl.h"
#include "sluice/guard.h"
#include "sluice/log.h"
#include "sluice/proxy.h"
#include "sluice/util.h"

#define FILE_MAX_BYTES (1ull << 30)

/* The file table one listener needs. */
struct guard_job {
	const struct conf_listen *cl;
	char *id;		 /* what the table was built from (file_id) */
	struct guard_lpm *table; /* reference; NULL until built */
};

struct core_guard_load {
	const struct conf *nc;	/* outlives the load */
	struct guard_job *jobs; /* by listener index of nc; cl NULL: nothing to read */
	size_t njobs;
	struct conf_errors errs;
	bool background; /* on the loader thread: give way to the control loop */
};

/* ---- what a file table is built from ---- */

static void id_add(char *id, size_t len, size_t *off, const struct conf_acl_file *f,
		   const struct stat *st)
{
	if (st == NULL) {
		util_bufprintf(id, len, off, "%c%s\tmissing\n",
			       f->action == CONF_ACL_DENY ? 'd' : 'a', f->path);
		return;
	}
	util_bufprintf(id, len, off, "%c%s\t%llu:%llu:%lld:%lld.%09ld\n",
		       f->action == CONF_ACL_DENY ? 'd' : 'a', f->path,
		       (unsigned long long)st->st_dev, (unsigned long long)st->st_ino,
		       (long long)st->st_size, (long long)st->st_mtim.tv_sec, st->st_mtim.tv_nsec);
}

/* The identity of cl's files as they are now (a missing one says so). */
static char *files_id(const struct conf_listen *cl)
{
	size_t len = cl->guard.nfiles * (CONF_PATH_MAX + 80) + 1, off = 0;
	char *id = malloc(len);

	if (id == NULL)
		return NULL;
	id[0] = '\0';
	for (size_t i = 0; i < cl->guard.nfiles; i++) {
		struct stat st;

		id_add(id, len, &off, &cl->guard.files[i],
		       stat(cl->guard.files[i].path, &st) == 0 ? &st : NULL);
	}
	return id;
}

/* ---- reading the files (loader thread, or in place) ---- */

static void load_error(struct core_guard_load *l, const struct conf_acl_file *f, const char *fmt,
		       ...) __attribute__((format(printf, 3, 4)));
static void load_error(struct core_guard_load *l, const struct conf_acl_file *f, const char *fmt,
		       ...)
{
	char msg[CONF_PATH_MAX + 200];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	conf_errors_add(&l->errs, l->nc->file, &f->where, f->path, msg);
}

/* Read one file into b. Returns 0 or -1 (an error added). */
static int read_file(struct core_guard_load *l, const struct conf_acl_file *f,
		     struct guard_lpm_builder *b, char *id, size_t idlen, size_t *idoff)
{
	const char *what = f->action == CONF_ACL_DENY ? "deny" : "allow";
	/* O_NONBLOCK: a FIFO given by mistake must not hang the loader */
	int fd = open(f->path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	char err[CONF_PATH_MAX + 300];
	size_t got = 0;
	struct stat st;
	char *buf = NULL;
	long n = -1;

	if (fd < 0 || fstat(fd, &st) < 0) {
		load_error(l, f, "cannot read %s file '%s': %s", what, f->path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size > FILE_MAX_BYTES) {
		load_error(l, f, "%s file '%s' is not a regular file of at most 1 GiB", what,
			   f->path);
		goto out;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (buf == NULL) {
		load_error(l, f, "out of memory reading %s file '%s'", what, f->path);
		goto out;
	}
	while (got < (size_t)st.st_size) {
		ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			load_error(l, f, "cannot read %s file '%s': %s", what, f->path,
				   r < 0 ? strerror(errno) : "it shrank");
			goto out;
		}
		got += (size_t)r;
	}
	/* what was read, not what a stat said before */
	id_add(id, idlen, idoff, f, &st);
	n = guard_file_parse(b, f->path, buf, got,
			     f->action == CONF_ACL_DENY ? GUARD_DENY : GUARD_ALLOW, NULL, err,
			     sizeof(err));
	if (n < 0)
		conf_errors_add_text(&l->errs, err);
out:
	free(buf);
	if (fd >= 0)
		close(fd);
	return n < 0 ? -1 : 0;
}

/* The loader gives the control loop its CPU back every few hundred
 * microseconds besides its low priority, so that a control loop sharing
 * its CPU never waits for a whole time slice while a million lines are
 * parsed and built. */
static void loader_pause(void *arg)
{
	(void)arg;
	sched_yield();
}

/* Build the table of one listener's files. */
static void run_job(struct core_guard_load *l, struct guard_job *j)
{
	size_t idlen = j->cl->guard.nfiles * (CONF_PATH_MAX + 80) + 1, off = 0;
	struct guard_lpm_builder *b = guard_lpm_builder_new();

	if (b != NULL && l->background)
		guard_lpm_builder_set_pause(b, loader_pause, NULL);
	free(j->id);
	j->id = malloc(idlen);
	if (b == NULL || j->id == NULL) {
		guard_lpm_builder_free(b);
		load_error(l, &j->cl->guard.files[0], "out of memory");
		return;
	}
	j->id[0] = '\0';
	for (size_t i = 0; i < j->cl->guard.nfiles; i++) {
		if (read_file(l, &j->cl->guard.files[i], b, j->id, idlen, &off) < 0) {
			guard_lpm_builder_free(b);
			return;
		}
	}
	j->table = guard_lpm_build(b);
	if (j->table == NULL)
		load_error(l, &j->cl->guard.files[0], "out of memory building the table");
}

void core_guard_load_free(struct core_guard_load *l)
{
	if (l == NULL)
		return;
	for (size_t i = 0; i < l->njobs; i++) {
		free(l->jobs[i].id);
		guard_lpm_put(l->jobs[i].table);
	}
	free(l->jobs);
	conf_errors_clear(&l->errs);
	free(l);
}

/* The running guard of nc's listener cl, or NULL. */
static struct guard *running_guard(struct core *c, const struct conf_listen *cl)
{
	for (size_t i = 0; c != NULL && i < c->nlisteners; i++)
		if (strcmp(c->listeners[i].name, cl->name) == 0)
			return c->listeners[i].fe->guard;
	return NULL;
}

/* The jobs nc needs: the listeners whose files differ from what their
 * running guard was built from. Returns how many, or -1 on no memory. */
static long plan(struct core *c, struct core_guard_load *l)
{
	long n = 0;

	l->njobs = l->nc->nlistens;
	l->jobs = calloc(l->njobs + 1, sizeof(*l->jobs));
	if (l->jobs == NULL)
		return -1;
	for (size_t i = 0; i < l->nc->nlistens; i++) {
		const struct conf_listen *cl = &l->nc->listens[i];
		struct guard *g = running_guard(c, cl);
		char *id;

		if (cl->guard.nfiles == 0)
			continue;
		id = files_id(cl);
		if (id == NULL)
			return -1;
		if (g != NULL && strcmp(guard_file_id(g), id) == 0) {
			free(id); /* unchanged: its table stays */
			continue;
		}
		free(id);
		l->jobs[i].cl = cl;
		n++;
	}
	return n;
}

struct core_guard_load *core_guard_load(struct core *c, const struct conf *nc,
					struct conf_errors *errs, bool background)
{
	struct core_guard_load *l = calloc(1, sizeof(*l));
	static const struct conf_where nowhere;

	if (l == NULL || (l->nc = nc, l->background = background, plan(c, l) < 0)) {
		core_guard_load_free(l);
		conf_errors_add(errs, nc->file, &nowhere, NULL, "out of memory reading ACL files");
		return NULL;
	}
	for (size_t i = 0; i < l->njobs; i++)
		if (l->jobs[i].cl != NULL)
			run_job(l, &l->jobs[i]);
	if (l->errs.n == 0 && !l->errs.truncated)
		return l;
	for (size_t i = 0; i < l->errs.n; i++)
		conf_errors_add_text(errs, l->errs.msgs[i]);
	core_guard_load_free(l);
	return NULL;
}

void core_guard_load_describe(const struct core_guard_load *l, char *diff, size_t len)
{
	size_t off = strlen(diff);
	bool none = strncmp(diff, "no change", 9) == 0;

	for (size_t i = 0; l != NULL && i < l->njobs; i++) {
		if (l->jobs[i].table == NULL)
			continue;
		if (none) { /* files changed: that is a change */
			diff[0] = '\0';
			off = 0;
			none = false;
		}
		util_bufprintf(diff, len, &off, "%slisten %s: allow/deny files read (%zu prefixes)",
			       off > 0 ? "\n" : "", l->jobs[i].cl->name,
			       guard_lpm_count(l->jobs[i].table));
	}
}

/* ---- applying a configuration ---- */

static enum guard_action action_of(enum conf_acl_action a)
{
	return a == CONF_ACL_DENY ? GUARD_DENY : GUARD_ALLOW;
}

void core_guard_commit(struct core *c, struct proxy_frontend *fe, const struct conf_listen *cl,
		       size_t idx)
{
	const struct conf_guard *cg = &cl->guard;
	struct guard *g = fe->guard;
	struct guard_lpm *table = NULL;
	const char *id = "";
	struct guard_rule *lines = calloc(cg->nrules + 1, sizeof(*lines));
	struct guard_limits_conf lc = {
	    .conns = cg->conns,
	    .rate = cg->rate,
	    .period_ms = cg->rate_period_ms,
	    .burst = cg->burst,
	    .group4 = cg->group4,
	    .group6 = cg->group6,
	    .table = cg->table,
	};

	if (cg->nfiles > 0) {
		struct guard_job *j = c->guard_load != NULL && idx < c->guard_load->njobs
					  ? &c->guard_load->jobs[idx]
					  : NULL;

		if (j != NULL && j->table != NULL) {
			table = j->table;
			id = j->id;
		} else { /* unchanged files: the table in use */
			table = guard_file_table(g);
			id = guard_file_id(g);
		}
	}
	for (size_t i = 0; lines != NULL && i < cg->nrules; i++) {
		lines[i].cidr = cg->rules[i].cidr;
		lines[i].action = action_of(cg->rules[i].action);
		lines[i].origin = GUARD_ORIGIN_CONFIG;
	}
	if (lines == NULL ||
	    guard_set_acl(g, table, id, lines, cg->nrules, action_of(cg->dflt)) < 0)
		log_err("listen %s: out of memory: ACL not changed", cl->name);
	free(lines);
	if (guard_set_limits(g, &lc) < 0)
		log_err("listen %s: out of memory: per-source limits not changed", cl->name);
}

/* ---- large tables go back off the control loop ---- */

struct reap_job {
	void (*fn)(void *);
	void *obj;
};

static _Atomic unsigned reapers; /* running */

static void *reap_main(void *arg)
{
	struct reap_job *j = arg;
	struct sched_param sp = {.sched_priority = 0};

	pthread_setschedparam(pthread_self(), SCHED_BATCH, &sp);
	j->fn(j->obj);
	free(j);
	atomic_fetch_sub(&reapers, 1);
	return NULL;
}

/* The guard's reaper: a million-prefix table is tens of megabytes that
 * munmap gives back in milliseconds; a thread of its own does it. */
static void reap(void (*fn)(void *), void *obj)
{
	struct reap_job *j = malloc(sizeof(*j));
	pthread_attr_t attr;
	pthread_t t;

	if (j != NULL && pthread_attr_init(&attr) == 0) {
		j->fn = fn;
		j->obj = obj;
		atomic_fetch_add(&reapers, 1);
		if (pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED) == 0 &&
		    pthread_create(&t, &attr, reap_main, j) == 0) {
			pthread_attr_destroy(&attr);
			return;
		}
		atomic_fetch_sub(&reapers, 1);
		pthread_attr_destroy(&attr);
	}
	free(j);
	fn(obj); /* in place, then */
}

void core_guard_reaper(bool on)
{
	guard_set_reaper(on ? reap : NULL);
	if (on)
		return;
	/* exit: the last frees happen in place; wait for those under way */
	for (int i = 0; i < 5000 && atomic_load(&reapers) > 0; i++)
		usleep(1000);
}

/* ---- the control loop's housekeeping ---- */

void core_guard_tick(struct core *c)
{
	uint64_t now = util_now_ms();
	size_t expired[64] = {0}, total = 0;

	for (size_t i = 0; i < c->nlisteners; i++) {
		struct guard *g = c->listeners[i].fe->guard;
		uint64_t next = guard_acl_next_expiry(g);
		size_t n;

		guard_reclaim(g);
		if (next == 0 || next > now)
			continue;
		n = guard_acl_expire(g, now);
		total += n;
		if (i < UTIL_ARRAY_LEN(expired))
			expired[i] = n;
	}
	if (total == 0)
		return;
	/* saved first: whoever reads the log line finds the file up to date */
	if (c->ctl != NULL && c->conf->global.state_file[0] != '\0' && ctl_state_save(c->ctl) < 0)
		log_err("state-file: cannot write it: %s", strerror(errno));
	for (size_t i = 0; i < c->nlisteners && i < UTIL_ARRAY_LEN(expired); i++)
		if (expired[i] > 0)
			log_notice("acl %s: %zu runtime entr%s expired", c->listeners[i].name,
				   expired[i], expired[i] == 1 ? "y" : "ies");
}

/* ---- control socket hooks ---- */

static struct core_listener *find(struct core *c, const char *name, char *msg, size_t len)
{
	for (size_t i = 0; i < c->nlisteners; i++)
		if (strcmp(c->listeners[i].name, name) == 0)
			return &c->listeners[i];
	snprintf(msg, len, "no listener '%s'", name);
	return NULL;
}

static int add_entry(struct core *c, const char *listener, bool deny, const struct util_cidr *cidr,
		     uint64_t for_ms, uint64_t until_wall_ms, char *msg, size_t len)
{
	struct core_listener *l = find(c, listener, msg, len);
	uint64_t now = util_now_ms(), exp = 0;
	char buf[UTIL_CIDR_STRLEN], err[200];

	if (l == NULL)
		return -1;
	if (for_ms != 0) {
		exp = now + for_ms;
		until_wall_ms = util_wall_ms() + for_ms;
	}
	if (guard_acl_add(l->fe->guard, cidr, deny ? GUARD_DENY : GUARD_ALLOW, exp, until_wall_ms,
			  err, sizeof(err)) < 0) {
		snprintf(msg, len, "listen %s: %s", listener, err);
		return -1;
	}
	util_cidr_fmt(cidr, buf, sizeof(buf));
	if (for_ms != 0)
		snprintf(msg, len, "listen %s: %s %s for %llus (runtime)", listener,
			 deny ? "deny" : "allow", buf, (unsigned long long)((for_ms + 999) / 1000));
	else
		snprintf(msg, len, "listen %s: %s %s (runtime)", listener, deny ? "deny" : "allow",
			 buf);
	return 0;
}

static int hook_acl_add(void *arg, const char *listener, bool deny, const struct util_cidr *cidr,
			uint64_t for_ms, char *msg, size_t len)
{
	int rc = add_entry(arg, listener, deny, cidr, for_ms, 0, msg, len);

	if (rc == 0)
		log_notice("acl %s", msg);
	return rc;
}

static int hook_acl_restore(void *arg, const char *listener, bool deny,
			    const struct util_cidr *cidr, uint64_t until_wall_ms, char *msg,
			    size_t len)
{
	uint64_t wall = util_wall_ms();

	if (until_wall_ms != 0 && until_wall_ms <= wall) {
		snprintf(msg, len, "expired while sluice was not running");
		return 1;
	}
	/* the time left, on the monotonic clock from now */
	return add_entry(arg, listener, deny, cidr, until_wall_ms ? until_wall_ms - wall : 0, 0,
			 msg, len);
}

static int hook_acl_del(void *arg, const char *listener, const struct util_cidr *cidr, char *msg,
			size_t len)
{
	struct core_listener *l = find(arg, listener, msg, len);
	char buf[UTIL_CIDR_STRLEN];
	int rc;

	if (l == NULL)
		return -1;
	util_cidr_fmt(cidr, buf, sizeof(buf));
	rc = guard_acl_del(l->fe->guard, cidr);
	if (rc == -1)
		snprintf(msg, len,
			 "listen %s has no runtime entry %s (entries of the "
			 "configuration change with the file and a reload)",
			 listener, buf);
	else if (rc < 0)
		snprintf(msg, len, "out of memory");
	else
		snprintf(msg, len, "listen %s: runtime entry %s removed", listener, buf);
	if (rc == 0)
		log_notice("acl %s", msg);
	return rc < 0 ? -1 : 0;
}

struct view_ctx {
	struct ctl_acl_view *v;
	uint64_t now;
	bool oom;
};

static void view_rule(void *arg, const struct guard_rule *r, uint64_t wall_ms)
{
	struct view_ctx *x = arg;
	struct ctl_acl_rule *row;

	(void)wall_ms;
	if (x->oom || (r->expires_ms != 0 && r->expires_ms <= x->now))
		return; /* expired: no longer decides */
	row = realloc(x->v->rules, (x->v->nrules + 1) * sizeof(*row));
	if (row == NULL) {
		x->oom = true;
		return;
	}
	x->v->rules = row;
	row[x->v->nrules++] = (struct ctl_acl_rule){
	    .cidr = r->cidr,
	    .deny = r->action == GUARD_DENY,
	    .runtime = r->origin == GUARD_ORIGIN_RUNTIME,
	    .expires_in_ms = r->expires_ms ? r->expires_ms - x->now : 0,
	};
}

static int hook_acl_view(void *arg, const char *listener, struct ctl_acl_view *out, char *msg,
			 size_t len)
{
	struct core *c = arg;
	struct core_listener *l = find(c, listener, msg, len);
	const struct conf_listen *cl = conf_find_listen(c->conf, listener);
	struct view_ctx x = {.v = out, .now = util_now_ms()};
	struct guard_lpm *t;

	memset(out, 0, sizeof(*out));
	if (l == NULL)
		return -1;
	out->default_deny = guard_default(l->fe->guard) == GUARD_DENY;
	guard_acl_each(l->fe->guard, view_rule, &x);
	t = guard_file_table(l->fe->guard);
	out->file_entries = t != NULL ? guard_lpm_count(t) : 0;
	if (cl != NULL && cl->guard.nfiles > 0 && !x.oom) {
		out->files = calloc(cl->guard.nfiles, sizeof(*out->files));
		x.oom = out->files == NULL;
		for (size_t i = 0; !x.oom && i < cl->guard.nfiles; i++) {
			util_strlcpy(out->files[i].path, cl->guard.files[i].path,
				     sizeof(out->files[i].path));
			out->files[i].deny = cl->guard.files[i].action == CONF_ACL_DENY;
		}
		out->nfiles = x.oom ? 0 : cl->guard.nfiles;
	}
	if (!x.oom)
		return 0;
	free(out->rules);
	free(out->files);
	memset(out, 0, sizeof(*out));
	snprintf(msg, len, "out of memory");
	return -1;
}

static int hook_sources_view(void *arg, const char *listener, size_t top,
			     struct ctl_sources_view *out, char *msg, size_t len)
{
	struct core *c = arg;
	struct core_listener *l = find(c, listener, msg, len);
	const struct conf_listen *cl = conf_find_listen(c->conf, listener);
	struct guard_source *rows;
	struct guard_stats st;
	size_t n;

	memset(out, 0, sizeof(*out));
	if (l == NULL)
		return -1;
	if (cl == NULL || (cl->guard.conns == 0 && cl->guard.rate == 0)) {
		snprintf(msg, len,
			 "listen %s has no per-source limit (sources are tracked only "
			 "with 'limit per-source conns' or 'rate')",
			 listener);
		return -1;
	}
	rows = calloc(2 * top + 1, sizeof(*rows));
	out->rows = calloc(2 * top + 1, sizeof(*out->rows));
	if (rows == NULL || out->rows == NULL) {
		free(rows);
		free(out->rows);
		out->rows = NULL;
		snprintf(msg, len, "out of memory");
		return -1;
	}
	n = guard_top_sources(l->fe->guard, util_now_us(), rows, top);
	for (size_t i = 0; i < n; i++)
		out->rows[i] = (struct ctl_source_row){.src = rows[i].src,
						       .conns = rows[i].conns,
						       .rate = rows[i].rate,
						       .total = rows[i].total,
						       .refused = rows[i].refused};
	out->nrows = n;
	free(rows);
	guard_stats(l->fe->guard, &st);
	out->tracked = st.sources;
	out->capacity = st.capacity;
	out->memory_bytes = st.memory_bytes;
	out->evictions = st.evictions;
	out->conns = cl->guard.conns;
	out->rate = cl->guard.rate;
	out->burst = cl->guard.burst;
	out->rate_period_ms = cl->guard.rate_period_ms;
	return 0;
}

static int hook_sources_kill(void *arg, const char *listener, const struct util_cidr *cidr,
			     char *msg, size_t len)
{
	struct core *c = arg;
	struct core_listener *l = find(c, listener, msg, len);
	char buf[UTIL_CIDR_STRLEN];

	if (l == NULL)
		return -1;
	proxy_engine_close_sources(c->engine, l->fe, cidr);
	util_cidr_fmt(cidr, buf, sizeof(buf));
	snprintf(msg, len, "listen %s: closing the connections from %s", listener, buf);
	log_notice("%s (control socket)", msg);
	return 0;
}

struct each_ctx {
	const char *listener;
	ctl_acl_fn fn;
	void *arg;
};

static void each_rule(void *arg, const struct guard_rule *r, uint64_t wall_ms)
{
	struct each_ctx *x = arg;

	if (r->origin == GUARD_ORIGIN_RUNTIME)
		x->fn(x->arg, x->listener, r->action == GUARD_DENY, &r->cidr, wall_ms);
}

static void hook_acl_each(void *arg, ctl_acl_fn fn, void *fnarg)
{
	struct core *c = arg;

	for (size_t i = 0; i < c->nlisteners; i++) {
		struct each_ctx x = {.listener = c->listeners[i].name, .fn = fn, .arg = fnarg};

		guard_acl_each(c->listeners[i].fe->guard, each_rule, &x);
	}
}

void core_guard_hooks(struct ctl_hooks *h)
{
	h->acl_add = hook_acl_add;
	h->acl_del = hook_acl_del;
	h->acl_view = hook_acl_view;
	h->sources_view = hook_sources_view;
	h->sources_kill = hook_sources_kill;
	h->acl_each = hook_acl_each;
	h->acl_restore = hook_acl_restore;
}

void core_guard_row(struct proxy_frontend *fe, struct ctl_listener_row *r)
{
	struct guard_stats st;

	guard_stats(fe->guard, &st);
	r->refused[CTL_REFUSED_ACL] = st.refused[GUARD_REFUSE_ACL];
	r->refused[CTL_REFUSED_CONNS] = st.refused[GUARD_REFUSE_CONNS];
	r->refused[CTL_REFUSED_RATE] = st.refused[GUARD_REFUSE_RATE];
	r->refused[CTL_REFUSED_TABLE_FULL] = st.refused[GUARD_REFUSE_TABLE_FULL];
	r->sources = st.sources;
	r->sources_capacity = st.capacity;
	r->sources_memory_bytes = st.memory_bytes;
	r->source_evictions = st.evictions;
	r->acl_file_entries = st.acl_entries[GUARD_ORIGIN_FILE];
	r->acl_config_entries = st.acl_entries[GUARD_ORIGIN_CONFIG];
	r->acl_runtime_entries = st.acl_entries[GUARD_ORIGIN_RUNTIME];
}
