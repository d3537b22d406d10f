/* ctl_state: the state file, so that runtime changes survive a restart.
 * One line per server whose state was set at runtime:
 *   server POOL NAME ADDRESS admin STATE [weight N] [added [OPTION ...]
 *   [host NAME]]
 * where a server added at runtime keeps its options in the words of a
 * configuration file's server line (srvopt.h: the same table and rules as
 * the file and `server add`). Lines written before that table
 * (backup=0|1, maxconn=N, nocheck) are still read. And one line per
 * announce block the operator withdrew (a node drain is not kept: it is
 * the step before stopping a node, whose restart serves again):
 *   announce NAME withdrawn
 * and one per runtime ACL entry (until: its expiry, wall clock in ms):
 *   acl LISTENER deny|allow CIDR [until MS]
 * Written atomically (temporary file + rename) after every change; read at
 * start-up after the configuration is applied. A line for a server that
 * is not there yet, in a pool whose servers DNS makes, is kept (and
 * written back) until DNS makes it; so is the line of such a server that
 * DNS took away. A server added with a host name keeps it (host NAME), so
 * that it is followed again after a restart. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl-int.h"
#include "sluice/log.h"
#include "sluice/pool.h"
#include "sluice/srvopt.h"
#include "sluice/util.h"

#define STATE_MAX_WORDS 32

static void save_acl(void *arg, const char *listener, bool deny, const struct util_cidr *cidr,
		     uint64_t until_wall_ms)
{
	char buf[UTIL_CIDR_STRLEN];

	fprintf(arg, "acl %s %s %s", listener, deny ? "deny" : "allow",
		util_cidr_fmt(cidr, buf, sizeof(buf)));
	if (until_wall_ms != 0)
		fprintf(arg, " until %llu", (unsigned long long)until_wall_ms);
	fprintf(arg, "\n");
}

int ctl_state_save(struct ctl *c)
{
	char tmp[300];
	size_t n;
	struct pool **pools = c->hooks.pools(c->hooks.arg, &n);
	FILE *f;

	snprintf(tmp, sizeof(tmp), "%s.tmp", c->state_file);
	f = fopen(tmp, "we");
	if (f == NULL)
		return -1;
	fprintf(f, "# sluice state file: runtime changes, rewritten after each one\n");
	for (size_t i = 0; i < n; i++) {
		for (size_t k = 0; k < pools[i]->nservers; k++) {
			const struct pool_server *s = pools[i]->servers[k];
			char abuf[UTIL_ADDR_STRLEN], opts[256];
			struct util_srvopts o = s->opts;
			size_t off = 0;

			if (!s->admin_overridden && !s->weight_overridden && !s->runtime_added)
				continue;
			opts[0] = '\0';
			o.weight = s->weight; /* the one in force, whoever set it */
			if (s->runtime_added) {
				util_bufprintf(opts, sizeof(opts), &off, " added");
				util_srvopts_format(&o, opts, sizeof(opts), &off);
				if (s->host != NULL)
					util_bufprintf(opts, sizeof(opts), &off, " host %s",
						       s->host);
			} else if (s->weight_overridden) {
				util_bufprintf(opts, sizeof(opts), &off, " weight %u", s->weight);
			}
			fprintf(f, "server %s %s %s admin %s%s\n", pools[i]->name, s->name,
				util_addr_fmt(&s->addr, abuf, sizeof(abuf)),
				pool_admin_name(s->admin), opts);
		}
	}
	for (size_t i = 0; i < c->npending; i++) {
		const struct ctl_state_pending *sp = &c->pending[i];
		char abuf[UTIL_ADDR_STRLEN];

		fprintf(f, "server %s %s %s admin %s", sp->pool, sp->name,
			util_addr_fmt(&sp->addr, abuf, sizeof(abuf)), pool_admin_name(sp->admin));
		if (sp->weight_set)
			fprintf(f, " weight %u", sp->weight);
		fprintf(f, "\n");
	}
	if (c->hooks.announces != NULL) {
		struct ctl_node_state node;
		size_t na = c->hooks.announces(c->hooks.arg, NULL, 0, &node);
		struct ctl_announce_row *rows = calloc(na + 1, sizeof(*rows));

		if (rows == NULL) {
			fclose(f);
			unlink(tmp);
			return -1;
		}
		na = UTIL_MIN(na, c->hooks.announces(c->hooks.arg, rows, na, &node));
		for (size_t i = 0; i < na; i++)
			if (rows[i].manual)
				fprintf(f, "announce %s withdrawn\n", rows[i].name);
		free(rows);
	}
	if (c->hooks.acl_each != NULL)
		c->hooks.acl_each(c->hooks.arg, save_acl, f);
	if (fflush(f) != 0 || fsync(fileno(f)) != 0) {
		fclose(f);
		unlink(tmp);
		return -1;
	}
	fclose(f);
	return rename(tmp, c->state_file);
}

struct state_line {
	bool announce; /* "announce NAME withdrawn": only name is set */
	bool acl;      /* an "acl" line: pool holds the listener's name */
	struct util_cidr cidr;
	bool deny;
	uint64_t until_wall_ms;
	char pool[UTIL_NAME_MAX], name[UTIL_NAME_MAX];
	struct util_addr addr;
	enum pool_admin admin;
	bool weight_set; /* "weight N" was written */
	bool added;
	bool legacy_nocheck; /* "nocheck": no check and no agent, where the pool has them */
	struct util_srvopts opts;
	char host[UTIL_HOST_MAX]; /* "host NAME": added with that name */
};

/* One word of the options part: added, a legacy form, or srvopt's table.
 * Returns 0 (*i at its last word) or -1 with err. */
static int parse_opt(char **argv, size_t argc, size_t *i, struct state_line *sl, char *err,
		     size_t errlen)
{
	const char *w = argv[*i];

	if (strcmp(w, "added") == 0) {
		sl->added = true;
	} else if (strcmp(w, "host") == 0 && *i + 1 < argc) {
		const char *h = argv[++*i];

		if (!util_is_host_name(h, strlen(h)) || strlen(h) >= sizeof(sl->host)) {
			snprintf(err, errlen, "bad host name '%s'", h);
			return -1;
		}
		util_strlcpy(sl->host, h, sizeof(sl->host));
	} else if (strcmp(w, "backup=0") == 0 || strcmp(w, "backup=1") == 0) {
		sl->opts.backup = w[7] == '1';
	} else if (strcmp(w, "nocheck") == 0) {
		sl->legacy_nocheck = true;
	} else if (strncmp(w, "maxconn=", 8) == 0) {
		/* the table's rule and message for "maxconn N" */
		const char *pair[2] = {"maxconn", w + 8};
		size_t k = 0;

		return util_srvopt_parse(pair, 2, &k, &sl->opts, NULL, err, errlen);
	} else {
		sl->weight_set |= strcmp(w, "weight") == 0;
		return util_srvopt_parse((const char *const *)argv, argc, i, &sl->opts,
					 ", or added", err, errlen);
	}
	return 0;
}

/* acl LISTENER deny|allow CIDR [until MS] */
static int parse_acl(char **argv, int argc, struct state_line *sl, char *err, size_t errlen)
{
	long long until = 0;
	char *end;

	if ((argc != 4 && argc != 6) ||
	    (strcmp(argv[2], "deny") != 0 && strcmp(argv[2], "allow") != 0)) {
		snprintf(err, errlen, "expected 'acl LISTENER deny|allow CIDR [until MS]'");
		return -1;
	}
	if (util_name_check("listener", argv[1], strlen(argv[1]), err, errlen) < 0 ||
	    util_cidr_parse(argv[3], strlen(argv[3]), &sl->cidr, err, errlen) < 0)
		return -1;
	if (argc == 6) {
		if (strcmp(argv[4], "until") == 0 && argv[5][0] >= '1' && argv[5][0] <= '9')
			until = strtoll(argv[5], &end, 10);
		if (until <= 0 || *end != '\0') {
			snprintf(err, errlen, "expected 'until' and a time in ms, got '%s %s'",
				 argv[4], argv[5]);
			return -1;
		}
	}
	sl->acl = true;
	util_strlcpy(sl->pool, argv[1], sizeof(sl->pool));
	sl->deny = strcmp(argv[2], "deny") == 0;
	sl->until_wall_ms = (uint64_t)until;
	return 0;
}

/* Parse one line. Returns 0, 1 for a blank/comment line, -1 when
 * malformed (err says why). */
static int parse_line(char *line, struct state_line *sl, char *err, size_t errlen)
{
	char *argv[STATE_MAX_WORDS];
	int argc = ctl_tokenize(line, argv, STATE_MAX_WORDS);

	if (argc == 0 || (argc > 0 && argv[0][0] == '#'))
		return 1;
	memset(sl, 0, sizeof(*sl));
	util_srvopts_init(&sl->opts);
	if (argc == 3 && strcmp(argv[0], "announce") == 0 && strcmp(argv[2], "withdrawn") == 0 &&
	    strlen(argv[1]) < UTIL_NAME_MAX) {
		sl->announce = true;
		util_strlcpy(sl->name, argv[1], sizeof(sl->name));
		return 0;
	}
	if (strcmp(argv[0], "acl") == 0)
		return parse_acl(argv, argc, sl, err, errlen);
	if (argc < 6 || strcmp(argv[0], "server") != 0 || strcmp(argv[4], "admin") != 0) {
		snprintf(err, errlen, "expected 'server POOL NAME ADDRESS admin STATE ...'");
		return -1;
	}
	if (util_name_check("pool", argv[1], strlen(argv[1]), err, errlen) < 0 ||
	    util_name_check("server", argv[2], strlen(argv[2]), err, errlen) < 0 ||
	    util_addr_parse(argv[3], false, &sl->addr, err, errlen) < 0)
		return -1;
	if (pool_admin_parse(argv[5], &sl->admin) < 0) {
		snprintf(err, errlen, "unknown admin state '%s' (expected ready, drain or maint)",
			 argv[5]);
		return -1;
	}
	util_strlcpy(sl->pool, argv[1], sizeof(sl->pool));
	util_strlcpy(sl->name, argv[2], sizeof(sl->name));
	for (size_t i = 6; i < (size_t)argc; i++)
		if (parse_opt(argv, (size_t)argc, &i, sl, err, errlen) < 0)
			return -1;
	return 0;
}

/* Keep a line for a server that DNS makes later. */
static void pending_add(struct ctl *c, const char *pool, const char *name,
			const struct util_addr *addr, enum pool_admin admin, bool weight_set,
			uint32_t weight)
{
	struct ctl_state_pending *sp = NULL, *a;

	for (size_t i = 0; i < c->npending && sp == NULL; i++)
		if (strcmp(c->pending[i].pool, pool) == 0 && strcmp(c->pending[i].name, name) == 0)
			sp = &c->pending[i];
	if (sp == NULL) {
		if (c->npending == CTL_STATE_PENDING_MAX) {
			log_warn("state-file: more than %d servers waiting for DNS: %s/%s dropped",
				 CTL_STATE_PENDING_MAX, pool, name);
			return;
		}
		a = realloc(c->pending, (c->npending + 1) * sizeof(*a));
		if (a == NULL) {
			log_err("state-file: out of memory keeping %s/%s", pool, name);
			return;
		}
		c->pending = a;
		sp = &c->pending[c->npending++];
	}
	memset(sp, 0, sizeof(*sp));
	util_strlcpy(sp->pool, pool, sizeof(sp->pool));
	util_strlcpy(sp->name, name, sizeof(sp->name));
	sp->addr = *addr;
	sp->admin = admin;
	sp->weight_set = weight_set;
	sp->weight = weight;
}

void ctl_server_appeared(struct ctl *c, struct pool_server *s)
{
	for (size_t i = 0; i < c->npending; i++) {
		struct ctl_state_pending *sp = &c->pending[i];

		if (strcmp(sp->pool, s->pool->name) != 0 || strcmp(sp->name, s->name) != 0)
			continue;
		s->admin = sp->admin;
		s->admin_overridden = true;
		s->admin_since_ms = util_now_ms();
		if (sp->weight_set) {
			s->weight = sp->weight;
			s->weight_overridden = true;
		}
		log_notice("state-file: server %s/%s restored now that DNS made it: %s, weight %u",
			   sp->pool, sp->name, pool_admin_name(s->admin), s->weight);
		c->pending[i] = c->pending[--c->npending];
		return;
	}
}

bool ctl_server_gone(struct ctl *c, const struct pool_server *s)
{
	if (!s->admin_overridden && !s->weight_overridden)
		return false;
	pending_add(c, s->pool->name, s->name, &s->addr, s->admin, s->weight_overridden, s->weight);
	return true;
}

/* A server added at runtime, back in its pool. NULL after a warning. */
static struct pool_server *restore_added(struct ctl *c, struct pool *p, struct state_line *sl)
{
	struct pool_server *s;
	char err[400];

	if (sl->legacy_nocheck) {
		sl->opts.check.off = p->has_check;
		sl->opts.agent.off = p->has_agent;
	}
	s = pool_server_create(p, sl->name, &sl->addr, &sl->opts, err, sizeof(err));
	if (s == NULL) {
		log_warn("state-file: server %s/%s not restored: %s", sl->pool, sl->name, err);
		return NULL;
	}
	if (sl->host[0] != '\0' && pool_server_set_dns(s, POOL_DNS_NONE, sl->host, NULL) < 0)
		log_warn("state-file: server %s/%s: out of memory: %s is not followed", sl->pool,
			 sl->name, sl->host);
	s->runtime_added = true;
	if (c->hooks.server_added != NULL)
		c->hooks.server_added(c->hooks.arg, s, !s->opts.check.off);
	return s;
}

static void apply_announce(struct ctl *c, const struct state_line *sl)
{
	char msg[256];

	if (c->hooks.announce_admin == NULL ||
	    c->hooks.announce_admin(c->hooks.arg, sl->name, true, msg, sizeof(msg)) < 0) {
		log_warn("state-file: announce %s no longer exists; its withdraw is ignored",
			 sl->name);
		return;
	}
	log_notice("state-file: announce %s restored: withdrawn by the operator", sl->name);
}

static void apply_acl(struct ctl *c, const struct state_line *sl)
{
	char msg[512], buf[UTIL_CIDR_STRLEN];
	int rc;

	util_cidr_fmt(&sl->cidr, buf, sizeof(buf));
	if (c->hooks.acl_restore == NULL)
		return;
	rc = c->hooks.acl_restore(c->hooks.arg, sl->pool, sl->deny, &sl->cidr, sl->until_wall_ms,
				  msg, sizeof(msg));
	if (rc == 0)
		log_notice("state-file: acl %s %s %s restored", sl->pool,
			   sl->deny ? "deny" : "allow", buf);
	else
		log_warn("state-file: acl %s %s %s ignored: %s", sl->pool,
			 sl->deny ? "deny" : "allow", buf, msg);
}

static void apply_line(struct ctl *c, struct state_line *sl)
{
	struct pool *p;
	struct pool_server *s;

	if (sl->announce) {
		apply_announce(c, sl);
		return;
	}
	if (sl->acl) {
		apply_acl(c, sl);
		return;
	}
	p = ctl_find_pool(c, sl->pool);
	if (p == NULL) {
		log_warn("state-file: pool %s no longer exists; %s/%s ignored", sl->pool, sl->pool,
			 sl->name);
		return;
	}
	s = pool_find_server(p, sl->name);
	if (s == NULL && sl->added && (s = restore_added(c, p, sl)) == NULL)
		return;
	if (s == NULL && p->discovers) {
		pending_add(c, sl->pool, sl->name, &sl->addr, sl->admin, sl->weight_set,
			    sl->opts.weight);
		log_notice("state-file: server %s/%s is not there yet: its state is kept until "
			   "DNS makes it",
			   sl->pool, sl->name);
		return;
	}
	if (s == NULL) {
		log_warn("state-file: server %s/%s no longer exists; ignored", sl->pool, sl->name);
		return;
	}
	s->admin = sl->admin;
	s->admin_overridden = true;
	if (sl->weight_set && !s->runtime_added) {
		s->weight = sl->opts.weight;
		s->weight_overridden = true;
	}
	log_notice("state-file: server %s/%s restored: %s, weight %u%s", sl->pool, sl->name,
		   pool_admin_name(s->admin), s->weight,
		   s->runtime_added ? ", added at runtime" : "");
}

int ctl_state_load(struct ctl *c, char *err, size_t errlen)
{
	struct state_line *lines = NULL;
	size_t n = 0, lineno = 0;
	char buf[1024];
	FILE *f;
	int rc = 0;

	if (c->state_file[0] == '\0')
		return 0;
	f = fopen(c->state_file, "re");
	if (f == NULL) {
		if (errno == ENOENT)
			return 0;
		snprintf(err, errlen, "state-file %s: %s", c->state_file, strerror(errno));
		return -1;
	}
	/* parse everything first: a malformed file applies nothing */
	while (fgets(buf, sizeof(buf), f) != NULL) {
		struct state_line sl, *a;
		char why[400];
		int r;

		lineno++;
		buf[strcspn(buf, "\n")] = '\0';
		r = parse_line(buf, &sl, why, sizeof(why));
		if (r == 1)
			continue;
		if (r < 0) {
			snprintf(err, errlen, "state-file %s:%zu: %s", c->state_file, lineno, why);
			rc = -1;
			break;
		}
		a = realloc(lines, (n + 1) * sizeof(*a));
		if (a == NULL) {
			rc = -1;
			snprintf(err, errlen, "state-file: out of memory");
			break;
		}
		lines = a;
		lines[n++] = sl;
	}
	fclose(f);
	for (size_t i = 0; rc == 0 && i < n; i++)
		apply_line(c, &lines[i]);
	if (rc == 0 && n > 0) {
		/* once per pool, not per line */
		size_t np;
		struct pool **pools = c->hooks.pools(c->hooks.arg, &np);

		for (size_t i = 0; i < np; i++)
			pool_publish(pools[i]);
	}
	free(lines);
	return rc;
}
