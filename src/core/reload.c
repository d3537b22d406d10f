/* reload: configuration reload on SIGHUP or from the control socket. The
 * new file is parsed and validated completely, then applied in place as one
 * transaction: log targets, VRRP, announce and core_apply() prepare (new
 * instances built, new addresses bound) before anything changes; an
 * invalid file or a failed bind leaves the running configuration exactly
 * as it was, VRRP included, logged with its FILE:LINE:COL and counted. */
#include <stdio.h>
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
	struct util_resolve_req *reqs;
	struct conf_server **who;
	size_t n = 0, k = 0;
	bool failed = false;

	if (nc == NULL)
		return NULL;
	for (size_t p = 0; p < nc->npools; p++)
		for (size_t i = 0; i < nc->pools[p].nservers; i++)
			n += nc->pools[p].servers[i].host[0] != '\0';
	if (n == 0)
		return nc;
	reqs = calloc(n, sizeof(*reqs));
	who = calloc(n, sizeof(*who));
	if (reqs == NULL || who == NULL) {
		static const struct conf_where nowhere;

		conf_errors_add(errs, nc->file, &nowhere, NULL, "out of memory resolving names");
		failed = true;
		goto out;
	}
	for (size_t p = 0; p < nc->npools; p++) {
		for (size_t i = 0; i < nc->pools[p].nservers; i++) {
			struct conf_server *s = &nc->pools[p].servers[i];
			const struct util_addr *prev = prev_addr(old, &nc->pools[p], s);

			if (s->host[0] == '\0')
				continue;
			util_strlcpy(reqs[k].host, s->host, sizeof(reqs[k].host));
			reqs[k].port = s->port;
			if (prev != NULL)
				reqs[k].prev = *prev;
			who[k++] = s;
		}
	}
	util_resolve_all(reqs, n, UTIL_RESOLVE_TIMEOUT_MS);
	for (k = 0; k < n; k++) {
		char msg[UTIL_HOST_MAX + 200], near[UTIL_HOST_MAX + 8];

		if (reqs[k].rc == 0) {
			who[k]->addr = reqs[k].addr;
			continue;
		}
		failed = true;
		snprintf(msg, sizeof(msg), "cannot resolve '%s': %s", reqs[k].host, reqs[k].err);
		snprintf(near, sizeof(near), "%s:%u", reqs[k].host, reqs[k].port);
		conf_errors_add(errs, nc->file, &who[k]->addr_where, near, msg);
	}
out:
	free(reqs);
	free(who);
	if (!failed)
		return nc;
	conf_free(nc);
	return NULL;
}

/* A reload that waits for the loader thread to read allow/deny files. */
struct core_reload_pending {
	struct conf *nc;
	bool check_only;
};

static void remember(struct core *c, int rc, const char *msg)
{
	c->reload_rc = rc;
	util_strlcpy(c->reload_msg, msg, sizeof(c->reload_msg));
}

/* After a reload failed once the cluster block was applied: the cluster
 * back to the running configuration (an unchanged block was kept, so this
 * changes nothing then). */
static void cluster_back(struct core *c)
{
	char err[256];

	if (core_cluster_apply(c, c->conf, err, sizeof(err)) < 0)
		log_err("reload: the cluster could not go back to the running configuration: %s",
			err);
}

/* The rest of a reload once nc's allow/deny files are read
 * (c->guard_load): check or apply. Takes nc. */
static int reload_apply(struct core *c, struct conf *nc, bool check_only, char *msg, size_t len)
{
	char diff[8192], err[512], ts[32];
	struct core_vrrp_txn *vt;
	struct log_set *logs;

	if (!core_guard_load_report(c, msg, len)) {
		if (!check_only) {
			char first[512];

			util_strlcpy(first, msg, sizeof(first));
			first[strcspn(first, "\n")] = '\0';
			failed(c, first, msg, len);
			core_notify("READY=1");
		}
		core_guard_load_discard(c);
		conf_free(nc);
		return -1;
	}
	core_diff(c->conf, nc, diff, sizeof(diff));
	if (strncmp(diff, "no change", 9) == 0 && c->guard_load != NULL)
		diff[0] = '\0';
	core_guard_load_describe(c, diff, sizeof(diff));
	if (diff[0] == '\0')
		util_strlcpy(diff, "no change", sizeof(diff));
	/* a route that can never match: say so, as sluice -c does */
	for (size_t i = 0, doff = strlen(diff); i < nc->warnings.n; i++) {
		log_warn("%s", nc->warnings.msgs[i]);
		util_bufprintf(diff, sizeof(diff), &doff, "\n%s", nc->warnings.msgs[i]);
	}
	if (check_only) {
		snprintf(msg, len, "%s is valid; a reload would apply:\n%s", c->conf_path, diff);
		core_guard_load_discard(c);
		conf_free(nc);
		return 0;
	}
	/* One transaction: every prepare before any commit. The new log
	 * targets are opened first and installed only once the rest is
	 * applied, so a failed reload logs where it logged before. VRRP
	 * prepares beside the running instances, announce prepares what can
	 * fail (devices, serving addresses), core_apply() binds and builds
	 * before it changes anything (it fails only then); VRRP and announce
	 * commit last, so a rejected reload never sends priority 0 or moves a
	 * VIP. */
	logs = log_set_new(nc->global.logs, nc->global.nlogs, err, sizeof(err));
	vt = logs != NULL ? core_vrrp_prepare(c, nc, err, sizeof(err)) : NULL;
	if (vt == NULL) {
		failed(c, err, msg, len);
		log_set_free(logs);
		core_guard_load_discard(c);
		conf_free(nc);
		core_notify("READY=1");
		return -1;
	}
	/* The cluster block is all or nothing by itself, but it has no
	 * prepare: it is applied (a changed program replaced in place) before
	 * the listeners, and put back if they or announce fail. */
	if (core_cluster_apply(c, nc, err, sizeof(err)) < 0) {
		core_vrrp_rollback(c, vt);
		failed(c, err, msg, len);
		log_set_free(logs);
		core_guard_load_discard(c);
		conf_free(nc);
		core_notify("READY=1");
		return -1;
	}
	if (core_announce_prepare(c, nc, err, sizeof(err)) < 0 ||
	    core_apply(c, nc, err, sizeof(err)) < 0) {
		core_announce_rollback(c);
		core_vrrp_rollback(c, vt);
		cluster_back(c);
		failed(c, err, msg, len);
		log_set_free(logs);
		core_guard_load_discard(c);
		conf_free(nc);
		core_notify("READY=1");
		return -1;
	}
	core_guard_load_discard(c);
	core_vrrp_commit(c, vt);
	core_announce_commit(c);
	log_set_install(logs);
	/* what cannot change without a restart keeps its running value */
	nc->global.workers = c->conf->global.workers;
	nc->global.maxconn = c->conf->global.maxconn;
	conf_free(c->conf);
	c->conf = nc;
	if (core_health_resync(c, err, sizeof(err)) < 0)
		log_err("reload: health checks: %s", err);
	c->reloads_ok++;
	stamp(ts, sizeof(ts));
	snprintf(c->last_reload, sizeof(c->last_reload), "ok at %s", ts);
	log_notice("reload of %s done", c->conf_path);
	log_lines("reload: ", diff);
	snprintf(msg, len, "reload done:\n%s", diff);
	core_notify("READY=1");
	return 0;
}

int core_reload(struct core *c, bool check_only, char *msg, size_t len)
{
	struct conf_errors errs = { 0 };
	struct conf *nc;
	size_t off = 0;
	int rc;

	msg[0] = '\0';
	if (c->pending != NULL) {
		snprintf(msg, len, "a reload is in progress (reading allow/deny files)");
		log_warn("reload not started: %s", msg);
		return -1;
	}
	/* systemd (notify-reload) wants RELOADING=1 then READY=1 for every
	 * reload, failed ones included */
	if (!check_only)
		core_notify_reloading();
	nc = core_load_conf(c->conf_path, c->conf, &errs);
	if (nc == NULL) {
		for (size_t i = 0; i < errs.n; i++) {
			log_err("%s", errs.msgs[i]);
			util_bufprintf(msg, len, &off, "%s%s", i ? "\n" : "", errs.msgs[i]);
		}
		if (!check_only) {
			failed(c, errs.n > 0 ? errs.msgs[0] : "cannot read the file", msg, len);
			core_notify("READY=1");
		}
		conf_errors_clear(&errs);
		remember(c, -1, msg);
		return -1;
	}
	/* allow/deny files that changed are read off the control loop */
	rc = core_guard_load_start(c, nc);
	if (rc > 0) {
		c->pending = malloc(sizeof(*c->pending));
		if (c->pending != NULL) {
			c->pending->nc = nc;
			c->pending->check_only = check_only;
			log_notice("reload: reading the allow/deny files of %d listener%s on a loader "
				   "thread",
				   rc, rc > 1 ? "s" : "");
			snprintf(msg, len, "reading allow/deny files");
			return 1;
		}
		core_guard_load_discard(c);
		rc = -1;
	}
	if (rc < 0) {
		if (!check_only) {
			failed(c, "out of memory reading allow/deny files", msg, len);
			core_notify("READY=1");
		}
		conf_free(nc);
		remember(c, -1, msg);
		return -1;
	}
	rc = reload_apply(c, nc, check_only, msg, len);
	remember(c, rc, msg);
	return rc;
}

void core_reload_files_read(struct core *c)
{
	struct core_reload_pending *p = c->pending;
	char msg[8192];
	int rc;

	if (p == NULL)
		return;
	if (c->stopping) {
		core_reload_abandon(c);
		return;
	}
	c->pending = NULL;
	msg[0] = '\0';
	rc = reload_apply(c, p->nc, p->check_only, msg, sizeof(msg));
	remember(c, rc, msg);
	free(p);
}

void core_reload_abandon(struct core *c)
{
	struct core_reload_pending *p = c->pending;

	core_guard_load_discard(c);
	if (p == NULL)
		return;
	c->pending = NULL;
	conf_free(p->nc);
	free(p);
	remember(c, -1, "reload abandoned: shutting down");
}

int core_reload_poll(void *arg, char *msg, size_t len)
{
	struct core *c = arg;

	if (c->pending != NULL)
		return 1;
	util_strlcpy(msg, c->reload_msg, len);
	return c->reload_rc;
}

int core_reload_hook(void *arg, bool check_only, char *msg, size_t len)
{
	return core_reload(arg, check_only, msg, len);
}
