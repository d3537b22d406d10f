/* conf_log: the global `log` keyword. Each line adds one target with its
 * own level (stderr, stdout, a syslog socket, a UDP collector); the first
 * line written replaces the default (stderr at info). Pure: the socket and
 * the address are only checked here, the log module opens them. */
#include <string.h>

#include "conf-int.h"
#include "sluice/conf.h"
#include "sluice/log.h"
#include "sluice/util.h"

static int log_tag(struct conf_ctx *ctx, const struct conf_stmt *st, size_t i, char *out)
{
	const struct conf_tok *t = &st->args[i];
	static const char ok[] =
	    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.";

	if (t->len == 0 || t->len >= LOG_TAG_MAX || strlen(t->text) != t->len ||
	    strspn(t->text, ok) != t->len) {
		conf_error_arg(ctx, st, i,
			       "bad log tag '%s' (expected 1-%d letters, digits, '-', '_', '.')",
			       t->text, LOG_TAG_MAX - 1);
		return -1;
	}
	memcpy(out, t->text, t->len + 1);
	return 0;
}

static int log_option(struct conf_ctx *ctx, const struct conf_stmt *st, size_t i,
		      struct log_target_conf *t)
{
	const char *opt = st->args[i].text;
	const struct conf_tok *v = &st->args[i + 1];

	if (strcmp(opt, "socket") == 0 && t->kind == LOG_TARGET_SYSLOG) {
		if (v->text[0] != '/' || v->len >= sizeof(t->path) || strlen(v->text) != v->len) {
			conf_error_arg(ctx, st, i + 1,
				       "syslog socket must be an absolute path shorter than %zu "
				       "bytes",
				       sizeof(t->path));
			return -1;
		}
		memcpy(t->path, v->text, v->len + 1);
		return 0;
	}
	if (strcmp(opt, "facility") == 0) {
		if (log_facility_parse(v->text, &t->facility) == 0)
			return 0;
		conf_error_arg(
		    ctx, st, i + 1,
		    "unknown syslog facility '%s' (expected kern, user, mail, daemon, "
		    "auth, syslog, lpr, news, uucp, cron, authpriv, ftp or local0-local7)",
		    v->text);
		return -1;
	}
	if (strcmp(opt, "tag") == 0)
		return log_tag(ctx, st, i + 1, t->tag);
	conf_error_arg(ctx, st, i,
		       t->kind == LOG_TARGET_SYSLOG
			   ? "unknown log option '%s' (expected socket PATH, facility F, tag T "
			     "or a level as the last word)"
			   : "unknown log option '%s' (expected facility F, tag T or a level "
			     "as the last word)",
		       opt);
	return -1;
}

/* log stderr|stdout [LEVEL]
 * log syslog [socket PATH] [facility F] [tag T] [LEVEL]
 * log udp ADDRESS:PORT [facility F] [tag T] [LEVEL] */
int conf_log_kw(struct conf_ctx *ctx, const struct conf_stmt *st, void *obj)
{
	struct conf_global *g = obj;
	struct log_target_conf t = {.level = LOGL_INFO, .facility = LOG_FACILITY_DAEMON};
	const char *kind = st->args[1].text;
	char err[160], name[sizeof(((struct log_target_stats *)0)->name)];
	char other[sizeof(name)];
	size_t i = 2;

	util_strlcpy(t.path, LOG_SYSLOG_DEFAULT_PATH, sizeof(t.path));
	util_strlcpy(t.tag, LOG_DEFAULT_TAG, sizeof(t.tag));
	if (strcmp(kind, "stderr") == 0) {
		t.kind = LOG_TARGET_STDERR;
	} else if (strcmp(kind, "stdout") == 0) {
		t.kind = LOG_TARGET_STDOUT;
	} else if (strcmp(kind, "syslog") == 0) {
		t.kind = LOG_TARGET_SYSLOG;
	} else if (strcmp(kind, "udp") == 0) {
		t.kind = LOG_TARGET_UDP;
		if (st->nargs < 3) {
			conf_error_arg(ctx, st, 1, "missing argument: log udp ADDRESS:PORT ...");
			return -1;
		}
		if (util_addr_parse(st->args[2].text, false, &t.addr, err, sizeof(err)) < 0) {
			conf_error_arg(ctx, st, 2, "%s", err);
			return -1;
		}
		i = 3;
	} else {
		conf_error_arg(ctx, st, 1,
			       "unknown log target '%s' (expected stderr, stdout, syslog or udp)",
			       kind);
		return -1;
	}
	for (; i < st->nargs; i += 2) {
		if (i + 1 == st->nargs) {
			/* the last word alone: the level */
			if (log_level_parse(st->args[i].text, &t.level) == 0)
				break;
			conf_error_arg(ctx, st, i,
				       "unknown log level '%s' (expected error, warning, notice, "
				       "info or debug)",
				       st->args[i].text);
			return -1;
		}
		if ((t.kind == LOG_TARGET_STDERR || t.kind == LOG_TARGET_STDOUT)) {
			conf_error_arg(ctx, st, i, "too many arguments: log %s [LEVEL];", kind);
			return -1;
		}
		if (log_option(ctx, st, i, &t) < 0)
			return -1;
	}
	if (g->nlogs == 1 && g->log_where[0].line == 0)
		g->nlogs = 0; /* the first line written replaces the default */
	log_target_describe(&t, name, sizeof(name));
	for (size_t k = 0; k < g->nlogs; k++) {
		if (strcmp(log_target_describe(&g->logs[k], other, sizeof(other)), name) == 0) {
			conf_error_arg(ctx, st, 1, "duplicate log target '%s' (first at line %u)",
				       name, g->log_where[k].line);
			return -1;
		}
	}
	if (g->nlogs == LOG_MAX_TARGETS) {
		conf_error_arg(ctx, st, 0, "too many log targets (at most %d)", LOG_MAX_TARGETS);
		return -1;
	}
	g->log_where[g->nlogs].line = st->args[0].line;
	g->log_where[g->nlogs].col = st->args[0].col;
	g->logs[g->nlogs++] = t;
	return 0;
}
