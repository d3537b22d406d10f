/* libFuzzer target: the control socket's command parser and commands on
 * untrusted lines. Each input is split into lines; every line runs through
 * ctl_execute() at user level, then at admin level, against a small model
 * (two pools, four servers) rebuilt for every input so that leaks show.
 * Checked: a reply is one non-empty block ending with its only empty line,
 * a user-level line changes nothing, and an error reply changes nothing. */
#include <ev.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/ctl.h"
#include "sluice/log.h"
#include "sluice/pool.h"
#include "sluice/util.h"

#define MAX_LINES 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct qsbr fz_qsbr;
static struct pool *fz_pools[2];
static size_t fz_npools;

static struct pool **hook_pools(void *arg, size_t *n)
{
	(void)arg;
	*n = fz_npools;
	return fz_pools;
}

static void hook_info(void *arg, struct ctl_info *out)
{
	(void)arg;
	out->version = "fuzz";
	out->pid = 1;
	out->uptime_ms = 12345;
	out->workers = 2;
	out->maxconn = 1000;
	out->cur_conns = 3;
	out->total_conns = 99;
	out->conf_file = "/etc/sluice/fuzz \"quoted\".conf";
	out->last_reload = "none";
}

static size_t hook_listeners(void *arg, struct ctl_listener_row *rows, size_t max)
{
	(void)arg;
	if (max < 1)
		return 0;
	memset(rows, 0, sizeof(*rows));
	util_strlcpy(rows[0].name, "www", sizeof(rows[0].name));
	util_strlcpy(rows[0].binds, "127.0.0.1:80,[::1]:80", sizeof(rows[0].binds));
	util_strlcpy(rows[0].pool, "web", sizeof(rows[0].pool));
	rows[0].cur_conns = 3;
	rows[0].total_conns = 99;
	return 1;
}

static void hook_close_server(void *arg, struct pool_server *s, uint32_t spread_ms)
{
	(void)arg;
	(void)s;
	(void)spread_ms;
}

static int hook_reload_start(void *arg, bool check_only, char *msg, size_t len, uint64_t *id)
{
	(void)arg;
	*id = 1;
	snprintf(msg, len, "reload refused");
	return check_only ? 0 : -1;
}

/* The guard hooks: listener "www" only, with a fixed view (the fuzzer
 * exercises parsing and formatting; core's side has its own tests). */
static int guard_listener(const char *name, char *msg, size_t len)
{
	if (strcmp(name, "www") == 0) {
		snprintf(msg, len, "listen www: done");
		return 0;
	}
	snprintf(msg, len, "no listener '%s'", name);
	return -1;
}

static int hook_acl_add(void *arg, const char *listener, bool deny, const struct util_cidr *cidr,
			uint64_t for_ms, char *msg, size_t len)
{
	(void)arg;
	(void)deny;
	(void)cidr;
	(void)for_ms;
	return guard_listener(listener, msg, len);
}

static int hook_acl_del(void *arg, const char *listener, const struct util_cidr *cidr, char *msg,
			size_t len)
{
	(void)arg;
	(void)cidr;
	return guard_listener(listener, msg, len);
}

static int hook_acl_view(void *arg, const char *listener, struct ctl_acl_view *out, char *msg,
			 size_t len)
{
	char err[100];

	(void)arg;
	memset(out, 0, sizeof(*out));
	if (guard_listener(listener, msg, len) < 0)
		return -1;
	out->rules = calloc(2, sizeof(*out->rules));
	out->files = calloc(1, sizeof(*out->files));
	if (out->rules == NULL || out->files == NULL)
		abort();
	util_cidr_parse("2001:db8::/32", 13, &out->rules[0].cidr, err, sizeof(err));
	out->rules[1] = (struct ctl_acl_rule){ .deny = true, .runtime = true, .expires_in_ms = 1500 };
	util_cidr_parse("192.0.2.0/24", 12, &out->rules[1].cidr, err, sizeof(err));
	out->nrules = 2;
	snprintf(out->files[0].path, sizeof(out->files[0].path), "/etc/sluice/\"deny\".list");
	out->nfiles = 1;
	out->file_entries = 1000000;
	return 0;
}

static int hook_sources_view(void *arg, const char *listener, size_t top,
			     struct ctl_sources_view *out, char *msg, size_t len)
{
	(void)arg;
	memset(out, 0, sizeof(*out));
	if (guard_listener(listener, msg, len) < 0)
		return -1;
	out->rows = calloc(2 * top + 1, sizeof(*out->rows));
	if (out->rows == NULL)
		abort();
	for (size_t i = 0; i < top && i < 3; i++) {
		out->rows[i].src.family = AF_INET6;
		out->rows[i].src.plen = 64;
		out->rows[i].src.addr[0] = (uint8_t)i;
		out->rows[i].conns = (uint32_t)i;
		out->rows[i].rate = 1.5 * (double)i;
		out->nrows++;
	}
	out->capacity = 100000;
	out->conns = 100;
	out->rate = 50;
	out->burst = 100;
	out->rate_period_ms = 1000;
	return 0;
}

static int hook_sources_kill(void *arg, const char *listener, const struct util_cidr *cidr,
			     char *msg, size_t len)
{
	(void)arg;
	(void)cidr;
	return guard_listener(listener, msg, len);
}

static int hook_reload_result(void *arg, uint64_t id, char *msg, size_t len)
{
	(void)arg;
	(void)id;
	snprintf(msg, len, "configuration is valid");
	return 0;
}

static struct pool *make_pool(const char *name, enum pool_balance balance,
			      const char *const *servers, size_t n)
{
	struct pool *p = pool_new(name);
	char err[128];

	if (p == NULL)
		abort();
	p->balance = balance;
	for (size_t i = 0; i < n; i++) {
		struct util_addr addr;
		struct util_srvopts o;
		struct pool_server *s;
		char name_buf[8];

		if (util_addr_parse(servers[i], false, &addr, err, sizeof(err)) < 0)
			abort();
		snprintf(name_buf, sizeof(name_buf), "%c", (char)('a' + i));
		util_srvopts_init(&o);
		o.weight = (uint32_t)(i + 1);
		/* the door a configuration file's servers take */
		s = pool_server_create(p, name_buf, &addr, &o, err, sizeof(err));
		if (s == NULL)
			abort();
	}
	if (pool_publish(p) < 0)
		abort();
	return p;
}

static void model_build(void)
{
	static const char *const web[] = { "127.0.0.1:8001", "127.0.0.1:8002", "10.0.0.3:80" };
	static const char *const api[] = { "[::1]:9000" };

	fz_pools[0] = make_pool("web", POOL_BALANCE_ROUNDROBIN, web, 3);
	fz_pools[1] = make_pool("api", POOL_BALANCE_LEASTCONN, api, 1);
	fz_npools = 2;
}

static void model_free(void)
{
	for (size_t i = 0; i < fz_npools; i++) {
		pool_retire(fz_pools[i]);
		pool_put(fz_pools[i]);
	}
	fz_npools = 0;
	qsbr_destroy(&fz_qsbr);
}

/* Everything an operator could change, as text. */
static void model_fingerprint(struct ctl_buf *b)
{
	for (size_t i = 0; i < fz_npools; i++) {
		const struct pool *p = fz_pools[i];

		ctl_buf_printf(b, "pool %s %zu\n", p->name, p->nservers);
		for (size_t k = 0; k < p->nservers; k++) {
			const struct pool_server *s = p->servers[k];
			char abuf[UTIL_ADDR_STRLEN];

			ctl_buf_printf(b, " %s %s admin=%d weight=%u maxconn=%u backup=%d added=%d\n",
				       s->name, util_addr_fmt(&s->addr, abuf, sizeof(abuf)),
				       (int)s->admin, s->weight, s->maxconn, s->backup,
				       s->runtime_added);
		}
	}
}

static bool same(const struct ctl_buf *x, const struct ctl_buf *y)
{
	return x->len == y->len && (x->len == 0 || memcmp(x->data, y->data, x->len) == 0);
}

static void run_line(struct ctl *c, enum ctl_level level, const char *line)
{
	struct ctl_buf before = { 0 }, after = { 0 }, out = { 0 };
	const char *blank;

	model_fingerprint(&before);
	ctl_execute(c, level, line, &out);
	model_fingerprint(&after);
	if (out.oom || before.oom || after.oom)
		abort();
	/* one reply, framed by its only empty line */
	if (out.len < 2 || out.data[out.len - 1] != '\n' || out.data[out.len - 2] != '\n')
		abort();
	blank = memmem(out.data, out.len, "\n\n", 2);
	if (blank != out.data + out.len - 2)
		abort();
	if (out.len >= 7 && memcmp(out.data, "error: ", 7) == 0 && !same(&before, &after))
		abort(); /* an error changed the model */
	if (level == CTL_LEVEL_USER && !same(&before, &after))
		abort(); /* a user-level command changed the model */
	ctl_buf_free(&before);
	ctl_buf_free(&after);
	ctl_buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct ev_loop *loop;
	struct ctl_hooks hooks = {
		.pools = hook_pools,
		.info = hook_info,
		.listeners = hook_listeners,
		.close_server = hook_close_server,
		.acl_add = hook_acl_add,
		.acl_del = hook_acl_del,
		.acl_view = hook_acl_view,
		.sources_view = hook_sources_view,
		.sources_kill = hook_sources_kill,
		.reload_start = hook_reload_start,
		.reload_result = hook_reload_result,
	};
	struct ctl *c;
	char *text = malloc(size + 1);
	char *p = text;
	int nlines = 0;

	if (text == NULL)
		return 0;
	if (loop == NULL) {
		loop = ev_default_loop(0);
		log_set_level(LOGL_ERR);
		pool_set_qsbr(&fz_qsbr);
	}
	memcpy(text, data, size);
	text[size] = '\0';
	model_build();
	c = ctl_new(loop, &hooks, NULL);
	if (c == NULL)
		abort();
	/* as the server does: lines end at '\n', a NUL ends the C string */
	while (p <= text + size && nlines++ < MAX_LINES) {
		char *nl = memchr(p, '\n', (size_t)(text + size - p));

		if (nl != NULL)
			*nl = '\0';
		run_line(c, CTL_LEVEL_USER, p);
		run_line(c, CTL_LEVEL_ADMIN, p);
		if (nl == NULL)
			break;
		p = nl + 1;
	}
	ctl_free(c); /* cancels drains with a deadline: their server references go */
	model_free();
	free(text);
	return 0;
}
