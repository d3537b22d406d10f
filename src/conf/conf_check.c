/* conf_check: the health keywords of a pool (`check TYPE { ... }`, `agent`,
 * `observe-errors`, `slowstart`, `on-down`) and whether its servers' `check`
 * and `agent` options have a block to refer to. Called from conf_parse.c's
 * pool table; pure like the rest of conf: values are validated here,
 * nothing is opened or resolved. */
#include <stdio.h>
#include <string.h>

#include "conf-int.h"
#include "sluice/conf.h"
#include "sluice/util.h"

#define CHECK_MAX_DURATION_MS (3600ull * 1000)
#define CHECK_MIN_INTERVAL_MS 100
#define CHECK_MIN_TIMEOUT_MS 10
#define CHECK_MAX_RISE_FALL 100
#define CHECK_MAX_JITTER 50
#define CHECK_MAX_OBSERVE 1000

static const char *const check_type_names[] = {
    [CONF_CHECK_NONE] = "none", [CONF_CHECK_TCP] = "tcp", [CONF_CHECK_EXPECT] = "expect",
    [CONF_CHECK_HTTP] = "http", [CONF_CHECK_TLS] = "tls", [CONF_CHECK_HTTPS] = "https",
};

/* ---- value helpers (same wording as conf_parse.c's) ---- */

static int hc_port(struct conf_ctx *ctx, const struct conf_stmt *st, size_t i, const char *what,
		   uint16_t *out)
{
	long v;

	if (conf_arg_long(ctx, st, i, what, 1, 65535, &v) < 0)
		return -1;
	*out = (uint16_t)v;
	return 0;
}

static int hc_duration(struct conf_ctx *ctx, const struct conf_stmt *st, size_t i, const char *what,
		       uint64_t min_ms, uint64_t *out)
{
	return conf_arg_duration(ctx, st, i, what, min_ms, CHECK_MAX_DURATION_MS, out);
}

/* Copy a string argument (may hold NUL bytes when binary is true). */
static int hc_string(struct conf_ctx *ctx, const struct conf_stmt *st, size_t i, const char *what,
		     bool binary, char *out, size_t cap, size_t *len_out)
{
	const struct conf_tok *t = &st->args[i];

	if (t->len == 0) {
		conf_error_arg(ctx, st, i, "empty %s", what);
		return -1;
	}
	if (t->len >= cap) {
		conf_error_arg(ctx, st, i, "%s too long (at most %zu bytes)", what, cap - 1);
		return -1;
	}
	if (!binary && strlen(t->text) != t->len) {
		conf_error_arg(ctx, st, i, "%s must not contain NUL bytes", what);
		return -1;
	}
	memcpy(out, t->text, t->len);
	out[t->len] = '\0';
	if (len_out != NULL)
		*len_out = t->len;
	return 0;
}

/* A printable name without spaces (host names, SNI). */
static int hc_hostname(struct conf_ctx *ctx, const struct conf_stmt *st, size_t i, const char *what,
		       char *out, size_t cap)
{
	const char *s = st->args[i].text;

	if (hc_string(ctx, st, i, what, false, out, cap, NULL) < 0)
		return -1;
	for (size_t k = 0; s[k] != '\0'; k++) {
		unsigned char c = (unsigned char)s[k];

		if (c <= 0x20 || c >= 0x7f) {
			conf_error_arg(ctx, st, i,
				       "bad %s '%s' (expected a host name without spaces or "
				       "control characters)",
				       what, s);
			return -1;
		}
	}
	return 0;
}

static int hc_onoff(struct conf_ctx *ctx, const struct conf_stmt *st, size_t i, const char *what,
		    bool *out)
{
	if (strcmp(st->args[i].text, "on") == 0) {
		*out = true;
		return 0;
	}
	if (strcmp(st->args[i].text, "off") == 0) {
		*out = false;
		return 0;
	}
	conf_error_arg(ctx, st, i, "bad %s '%s' (expected on or off)", what, st->args[i].text);
	return -1;
}

/* ---- the check block ---- */

struct check_obj {
	struct conf_check *ck;
	const struct conf_tok *ca_tok, *vname_tok, *sni_tok;
	bool seen_status;
};

typedef int (*hc_kw_fn)(struct conf_ctx *ctx, const struct conf_stmt *st, struct check_obj *o);

struct hc_keyword {
	const char *name;
	size_t min_args, max_args;
	unsigned types; /* bit per enum conf_check_type it applies to */
	hc_kw_fn fn;
	const char *usage;
};

#define T(x) (1u << (x))
#define T_ALL                                                                                      \
	(T(CONF_CHECK_TCP) | T(CONF_CHECK_EXPECT) | T(CONF_CHECK_HTTP) | T(CONF_CHECK_TLS) |       \
	 T(CONF_CHECK_HTTPS))
#define T_HTTP (T(CONF_CHECK_HTTP) | T(CONF_CHECK_HTTPS))
#define T_TLS (T(CONF_CHECK_TLS) | T(CONF_CHECK_HTTPS))

static int ck_interval(struct conf_ctx *ctx, const struct conf_stmt *st, struct check_obj *o)
{
	return hc_duration(ctx, st, 1, "check interval", CHECK_MIN_INTERVAL_MS,
			   &o->ck->interval_ms);
}

static int ck_timeout(struct conf_ctx *ctx, const struct conf_stmt *st, struct check_obj *o)
{
	return hc_duration(ctx, st, 1, "check timeout", CHECK_MIN_TIMEOUT_MS, &o->ck->timeout_ms);
}

static int ck_rise(struct conf_ctx *ctx, const struct conf_stmt *st, struct check_obj *o)
{
	return conf_arg_u32(ctx, st, 1, "rise", 1, CHECK_MAX_RISE_FALL, &o->ck->rise);
}

static int ck_fall(struct conf_ctx *ctx, const struct conf_stmt *st, struct check_obj *o)
{
	return conf_arg_u32(ctx, st, 1, "fall", 1, CHECK_MAX_RISE_FALL, &o->ck->fall);
}

static int ck_jitter(struct conf_ctx *ctx, const struct conf_stmt *st, struct check_obj *o)
{
	const char *s = st->args[1].text;
	size_t n = strlen(s);
	char num[16];
	long v;

	if (n >= 2 && n < sizeof(num) && s[n - 1] == '%') {
		memcpy(num, s, n - 1);
		num[n - 1] = '\0';
		if (util_parse_long(num, 0, CHECK_MAX_JITTER, &v) == 0) {
			o->ck->jitter_pct = (uint32_t)v;
			return 0;
		}
	}
	conf_error_arg(ctx, st, 1, "bad jitter '%s' (expected a percentage 0%%-%d%%, such as 10%%)",
		       s, CHECK_MAX_JITTER);
	return -1;
}

static int ck_port(struct conf_ctx *ctx, const struct conf_stmt *st, struct check_obj *o)
{
	return hc_port(ctx, st, 1, "check port", &o->ck->port);
}

static int ck_send(struct conf_ctx *ctx, const struct conf_stmt *st, struct check_obj *o)
{
	return hc_string(ctx, st, 1, "send string", true, o->ck->send, sizeof(o->ck->send),
			 &o->ck->send_len);
}

static int ck_expect(struct conf_ctx *ctx, const struct conf_stmt *st, struct check_obj *o)
{
	return hc_string(ctx, st, 1, "expect string", true, o->ck->expect, sizeof(o->ck->expect),
			 &o->ck->expect_len);
}

static int ck_path(struct conf_ctx *ctx, const struct conf_stmt *st, struct check_obj *o)
{
	const char *s = st->args[1].text;

	if (s[0] != '/') {
		conf_error_arg(ctx, st, 1,
			       "bad check path '%s' (expected an absolute path such "
			       "as /healthz)",
			       s);
		return -1;
	}
	for (size_t k = 0; s[k] != '\0'; k++) {
		unsigned char c = (unsigned char)s[k];

		if (c <= 0x20 || c >= 0x7f) {
			conf_error_arg(ctx, st, 1,
				       "bad check path (spaces and control characters must be "
				       "%%-encoded)");
			return -1;
		}
	}
	return hc_string(ctx, st, 1, "check path", false, o->ck->path, sizeof(o->ck->path), NULL);
}

static int ck_host(struct conf_ctx *ctx, const struct conf_stmt *st, struct check_obj *o)
{
	return hc_hostname(ctx, st, 1, "host", o->ck->host, sizeof(o->ck->host));
}

/* status CODE|LO-HI ...; */
static int ck_status(struct conf_ctx *ctx, const struct conf_stmt *st, struct check_obj *o)
{
	o->ck->nstatus = 0;
	o->seen_status = true;
	for (size_t i = 1; i < st->nargs; i++) {
		const char *s = st->args[i].text, *dash = strchr(s, '-');
		char lo[8], hi[8];
		long a, b;

		if (dash == NULL) {
			util_strlcpy(lo, s, sizeof(lo));
			util_strlcpy(hi, s, sizeof(hi));
		} else if ((size_t)(dash - s) < sizeof(lo) && strlen(dash + 1) < sizeof(hi)) {
			memcpy(lo, s, (size_t)(dash - s));
			lo[dash - s] = '\0';
			util_strlcpy(hi, dash + 1, sizeof(hi));
		} else {
			lo[0] = hi[0] = '\0';
		}
		if (strlen(s) >= 16 || util_parse_long(lo, 100, 599, &a) < 0 ||
		    util_parse_long(hi, 100, 599, &b) < 0 || a > b) {
			conf_error_arg(ctx, st, i,
				       "bad status '%s' (expected a code 100-599 or a range such "
				       "as 200-399)",
				       s);
			return -1;
		}
		o->ck->status[o->ck->nstatus].lo = (uint16_t)a;
		o->ck->status[o->ck->nstatus].hi = (uint16_t)b;
		o->ck->nstatus++;
	}
	return 0;
}

static int ck_sni(struct conf_ctx *ctx, const struct conf_stmt *st, struct check_obj *o)
{
	o->sni_tok = &st->args[0];
	return hc_hostname(ctx, st, 1, "sni", o->ck->sni, sizeof(o->ck->sni));
}

static int ck_verify(struct conf_ctx *ctx, const struct conf_stmt *st, struct check_obj *o)
{
	return hc_onoff(ctx, st, 1, "verify", &o->ck->verify);
}

static int ck_ca(struct conf_ctx *ctx, const struct conf_stmt *st, struct check_obj *o)
{
	o->ca_tok = &st->args[0];
	return hc_string(ctx, st, 1, "ca file name", false, o->ck->ca, sizeof(o->ck->ca), NULL);
}

static int ck_verify_name(struct conf_ctx *ctx, const struct conf_stmt *st, struct check_obj *o)
{
	o->vname_tok = &st->args[0];
	return hc_hostname(ctx, st, 1, "verify-name", o->ck->verify_name,
			   sizeof(o->ck->verify_name));
}

static const struct hc_keyword check_kw[] = {
    {"interval", 2, 2, T_ALL, ck_interval, "interval DURATION;"},
    {"timeout", 2, 2, T_ALL, ck_timeout, "timeout DURATION;"},
    {"rise", 2, 2, T_ALL, ck_rise, "rise N;"},
    {"fall", 2, 2, T_ALL, ck_fall, "fall N;"},
    {"jitter", 2, 2, T_ALL, ck_jitter, "jitter PERCENT%;"},
    {"port", 2, 2, T_ALL, ck_port, "port N;"},
    {"send", 2, 2, T(CONF_CHECK_EXPECT), ck_send, "send \"STRING\";"},
    {"expect", 2, 2, T(CONF_CHECK_EXPECT), ck_expect, "expect \"STRING\";"},
    {"path", 2, 2, T_HTTP, ck_path, "path /PATH;"},
    {"host", 2, 2, T_HTTP, ck_host, "host NAME;"},
    {"status", 2, 1 + CONF_CHECK_MAX_STATUS, T_HTTP, ck_status, "status CODE|LOW-HIGH ...;"},
    {"sni", 2, 2, T_TLS, ck_sni, "sni NAME;"},
    {"verify", 2, 2, T_TLS, ck_verify, "verify on|off;"},
    {"ca", 2, 2, T_TLS, ck_ca, "ca FILE;"},
    {"verify-name", 2, 2, T_TLS, ck_verify_name, "verify-name NAME;"},
    {NULL, 0, 0, 0, NULL, NULL},
};

void conf_check_keywords(conf_keyword_fn fn, void *arg)
{
	for (size_t k = 0; check_kw[k].name != NULL; k++)
		fn(arg, "check", check_kw[k].name, check_kw[k].usage, false);
}

static void types_of(unsigned mask, char *buf, size_t len)
{
	size_t off = 0, k = 0, n = 0;

	buf[0] = '\0';
	for (size_t t = CONF_CHECK_TCP; t < UTIL_ARRAY_LEN(check_type_names); t++)
		n += (mask & T(t)) != 0;
	for (size_t t = CONF_CHECK_TCP; t < UTIL_ARRAY_LEN(check_type_names); t++)
		if (mask & T(t)) {
			k++;
			util_bufprintf(buf, len, &off, "%s%s",
				       k == 1 ? "" : (k == n ? " and " : ", "),
				       check_type_names[t]);
		}
}

/* Same checks and wording as conf_parse.c's run_block, plus the check type
 * each keyword applies to. */
static void check_block(struct conf_ctx *ctx, const struct conf_stmt *block, struct check_obj *o)
{
	for (size_t i = 0; i < block->nkids; i++) {
		const struct conf_stmt *st = &block->kids[i];
		const struct hc_keyword *kw = NULL;
		char names[256];

		for (size_t k = 0; check_kw[k].name != NULL; k++) {
			if (strcmp(check_kw[k].name, st->args[0].text) == 0) {
				kw = &check_kw[k];
				break;
			}
		}
		if (kw == NULL) {
			size_t off = 0;

			names[0] = '\0';
			for (size_t k = 0; check_kw[k].name != NULL; k++)
				if (check_kw[k].types & T(o->ck->type))
					util_bufprintf(names, sizeof(names), &off, "%s%s",
						       off ? ", " : "", check_kw[k].name);
			conf_error(ctx, st->args[0].line, st->args[0].col, st->args[0].text,
				   "unknown keyword '%s' in check %s (expected one of: %s)",
				   st->args[0].text, check_type_names[o->ck->type], names);
			continue;
		}
		if (st->has_block) {
			conf_error(ctx, st->args[0].line, st->args[0].col, st->args[0].text,
				   "'%s' takes no block (expected ';'): %s", kw->name, kw->usage);
			continue;
		}
		if (!(kw->types & T(o->ck->type))) {
			types_of(kw->types, names, sizeof(names));
			conf_error_arg(ctx, st, 0,
				       "'%s' applies to %s checks only (this is a %s "
				       "check)",
				       kw->name, names, check_type_names[o->ck->type]);
			continue;
		}
		if (conf_check_arity(ctx, st, kw->min_args, kw->max_args, kw->usage))
			kw->fn(ctx, st, o);
	}
}

/* check TYPE { ... } */
int conf_check_kw_check(struct conf_ctx *ctx, const struct conf_stmt *st, void *obj)
{
	struct conf_pool *p = obj;
	struct conf_check *ck = &p->health.check;
	struct check_obj o = {.ck = ck};
	const char *type = st->args[1].text;

	if (ck->type != CONF_CHECK_NONE) {
		conf_error_arg(ctx, st, 0, "duplicate check block in pool '%s' (first at line %u)",
			       p->name, ck->where.line);
		return -1;
	}
	for (size_t t = CONF_CHECK_TCP; t < UTIL_ARRAY_LEN(check_type_names); t++)
		if (strcmp(type, check_type_names[t]) == 0)
			ck->type = (enum conf_check_type)t;
	if (ck->type == CONF_CHECK_NONE) {
		conf_error_arg(ctx, st, 1,
			       "unknown check type '%s' (expected tcp, expect, http, tls or https)",
			       type);
		return -1;
	}
	ck->where.line = st->args[0].line;
	ck->where.col = st->args[0].col;
	check_block(ctx, st, &o);
	if (ck->type == CONF_CHECK_EXPECT && ck->expect_len == 0) {
		conf_error(ctx, st->end_line, st->end_col, NULL,
			   "check expect needs an 'expect \"STRING\";' line");
		return -1;
	}
	if (!ck->verify && (o.ca_tok != NULL || o.vname_tok != NULL)) {
		const struct conf_tok *t = o.ca_tok != NULL ? o.ca_tok : o.vname_tok;

		conf_error(ctx, t->line, t->col, t->text, "'%s' needs 'verify on;'", t->text);
		return -1;
	}
	if (ck->verify && ck->sni[0] == '\0' && ck->verify_name[0] == '\0') {
		conf_error(ctx, st->end_line, st->end_col, NULL,
			   "'verify on' needs a name to match the certificate against "
			   "(expected 'sni NAME;' or 'verify-name NAME;')");
		return -1;
	}
	if ((ck->type == CONF_CHECK_HTTP || ck->type == CONF_CHECK_HTTPS) && ck->path[0] == '\0')
		util_strlcpy(ck->path, "/", sizeof(ck->path));
	if ((ck->type == CONF_CHECK_HTTP || ck->type == CONF_CHECK_HTTPS) && ck->nstatus == 0) {
		ck->status[0].lo = 200;
		ck->status[0].hi = 399;
		ck->nstatus = 1;
	}
	return 0;
}

/* agent port N [interval DURATION] [timeout DURATION]; */
int conf_check_kw_agent(struct conf_ctx *ctx, const struct conf_stmt *st, void *obj)
{
	struct conf_pool_health *h = &((struct conf_pool *)obj)->health;

	for (size_t i = 1; i < st->nargs; i += 2) {
		const char *opt = st->args[i].text;

		if (strcmp(opt, "port") != 0 && strcmp(opt, "interval") != 0 &&
		    strcmp(opt, "timeout") != 0) {
			conf_error_arg(ctx, st, i,
				       "unknown agent option '%s' (expected port N, interval "
				       "DURATION or timeout DURATION)",
				       opt);
			return -1;
		}
		if (i + 1 >= st->nargs) {
			conf_error_arg(ctx, st, i, "'%s' needs a value", opt);
			return -1;
		}
		if (strcmp(opt, "port") == 0 &&
		    hc_port(ctx, st, i + 1, "agent port", &h->agent_port) < 0)
			return -1;
		if (strcmp(opt, "interval") == 0 &&
		    hc_duration(ctx, st, i + 1, "agent interval", CHECK_MIN_INTERVAL_MS,
				&h->agent_interval_ms) < 0)
			return -1;
		if (strcmp(opt, "timeout") == 0 &&
		    hc_duration(ctx, st, i + 1, "agent timeout", CHECK_MIN_TIMEOUT_MS,
				&h->agent_timeout_ms) < 0)
			return -1;
	}
	if (h->agent_port == 0) {
		conf_error_arg(ctx, st, 0, "agent needs a port (expected 'agent port N ...;')");
		return -1;
	}
	return 0;
}

int conf_check_kw_observe(struct conf_ctx *ctx, const struct conf_stmt *st, void *obj)
{
	struct conf_pool_health *h = &((struct conf_pool *)obj)->health;

	h->observe_set = true;
	h->observe_where.line = st->args[0].line;
	h->observe_where.col = st->args[0].col;
	return conf_arg_u32(ctx, st, 1, "observe-errors", 0, CHECK_MAX_OBSERVE, &h->observe_errors);
}

int conf_check_kw_slowstart(struct conf_ctx *ctx, const struct conf_stmt *st, void *obj)
{
	struct conf_pool_health *h = &((struct conf_pool *)obj)->health;

	return hc_duration(ctx, st, 1, "slowstart", 0, &h->slowstart_ms);
}

int conf_check_kw_on_down(struct conf_ctx *ctx, const struct conf_stmt *st, void *obj)
{
	struct conf_pool_health *h = &((struct conf_pool *)obj)->health;

	if (strcmp(st->args[1].text, "keep") == 0) {
		h->on_down = CONF_ON_DOWN_KEEP;
	} else if (strcmp(st->args[1].text, "shutdown") == 0) {
		h->on_down = CONF_ON_DOWN_SHUTDOWN;
	} else {
		conf_error_arg(ctx, st, 1,
			       "unknown on-down action '%s' (expected keep or shutdown)",
			       st->args[1].text);
		return -1;
	}
	return 0;
}

void conf_check_pool_init(struct conf_pool *p)
{
	struct conf_pool_health *h = &p->health;

	memset(h, 0, sizeof(*h));
	h->check.type = CONF_CHECK_NONE;
	h->check.interval_ms = 2000;
	h->check.timeout_ms = 1000;
	h->check.rise = 2;
	h->check.fall = 3;
	h->agent_interval_ms = 2000;
	h->agent_timeout_ms = 1000;
	h->on_down = CONF_ON_DOWN_KEEP;
}

void conf_check_pool_done(struct conf_ctx *ctx, struct conf_pool *p)
{
	struct conf_pool_health *h = &p->health;

	if (h->check.type == CONF_CHECK_NONE && h->observe_set && h->observe_errors > 0)
		conf_error(ctx, h->observe_where.line, h->observe_where.col, "observe-errors",
			   "observe-errors needs a check block in pool '%s' (active checks "
			   "bring the server back)",
			   p->name);
	if (!h->observe_set && h->check.type != CONF_CHECK_NONE)
		h->observe_errors = 3;
	for (size_t i = 0; i < p->nservers; i++) {
		const struct conf_server *s = &p->servers[i];

		if (h->check.type == CONF_CHECK_NONE && (s->opts.check.port || s->opts.check.off))
			conf_error(ctx, s->where.line, s->where.col, s->name,
				   "server '%s' has check options but pool '%s' has no check "
				   "block",
				   s->name, p->name);
		if (h->agent_port == 0 && (s->opts.agent.port || s->opts.agent.off))
			conf_error(ctx, s->where.line, s->where.col, s->name,
				   "server '%s' has agent options but pool '%s' has no agent",
				   s->name, p->name);
	}
}
