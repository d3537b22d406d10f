/* log: leveled log lines to several targets (stderr, stdout, a syslog
 * socket, a UDP collector), each with its own level, written by a log thread
 * so that no caller ever blocks on a log's descriptor or a dead collector. */
#ifndef SLUICE_LOG_H
#define SLUICE_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sluice/log-t.h"

/* Parse "err", "warning", "notice", "info", "debug". Returns 0 or -1. */
int log_level_parse(const char *s, enum log_level *out);
const char *log_level_name(enum log_level lvl);

/* Parse a syslog facility name (kern, user, mail, daemon, auth, syslog, lpr,
 * news, uucp, cron, authpriv, ftp, local0-local7). Returns 0 or -1. */
int log_facility_parse(const char *s, uint32_t *out);
const char *log_facility_name(uint32_t facility);

/* "stderr", "syslog /dev/log", "udp 192.0.2.1:514": a target's name in
 * messages, show info and metrics labels. Returns buf. */
const char *log_target_describe(const struct log_target_conf *t, char *buf, size_t len);

/* A running set of targets. log_set_new() copies the n target descriptions
 * and opens their sockets (a socket that cannot reach its peer yet is not
 * an error: it is retried every second and its lines counted as dropped).
 * Returns NULL with err only when a socket cannot be created at all.
 * n == 0 means stderr at info. */
struct log_set;
struct log_set *log_set_new(const struct log_target_conf *targets, size_t n, char *err,
			    size_t errlen);
/* Free a set that was never installed (a reload that failed later). */
void log_set_free(struct log_set *s);
/* Make s the running set; takes ownership. The previous set is closed by
 * the log thread once the lines queued before this call are written
 * (synchronously when the thread is not running). Counters of targets that
 * stay (same description) carry over. */
void log_set_install(struct log_set *s);
/* log_set_new() then log_set_install(). Returns 0 or -1 (err). */
int log_configure(const struct log_target_conf *targets, size_t n, char *err, size_t errlen);

/* True when some target takes lines of this level: callers may skip
 * building an expensive message otherwise. */
bool log_enabled(enum log_level lvl);

/* Set the level of every line until the next log_set_install() (tests and
 * fuzzers that want quiet; targets keep their own levels). */
void log_set_level(enum log_level lvl);

/* Start the log thread. Until this is called, and after log_stop(), lines
 * are written synchronously by the caller. Returns 0 or -1 (errno). */
int log_start(void);
/* Write what is queued, stop the log thread and close the targets. */
void log_stop(void);

/* Log one line. Never blocks once log_start() ran: a full queue drops the
 * line and counts it (reported on the next line that fits); a target that
 * cannot take a line counts it as dropped. */
void log_msg(enum log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* True when a rate-limited message may be logged now (at most `burst` per
 * second per limiter); *suppressed_out receives the count skipped since the
 * last allowed one, for the caller to mention. */
bool log_ratelimit_ok(struct log_ratelimit *rl, uint64_t now_ms, uint32_t burst,
		      uint32_t *suppressed_out);
/* Log through a limiter: at most `burst` lines per second; a line after
 * suppressed ones ends with "(N similar messages suppressed)". now_ms is
 * monotonic milliseconds. */
void log_ratelimited(struct log_ratelimit *rl, uint64_t now_ms, uint32_t burst, enum log_level lvl,
		     const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* Counters of the running targets, at most max. Returns how many. */
size_t log_stats(struct log_target_stats *out, size_t max);
/* Lines dropped because a thread's queue was full, since start. */
uint64_t log_queue_dropped(void);

#define log_err(...) log_msg(LOGL_ERR, __VA_ARGS__)
#define log_warn(...) log_msg(LOGL_WARNING, __VA_ARGS__)
#define log_notice(...) log_msg(LOGL_NOTICE, __VA_ARGS__)
#define log_info(...) log_msg(LOGL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOGL_DEBUG, __VA_ARGS__)

#endif
