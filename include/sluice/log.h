/* log: leveled log lines to stderr or a file, written by a log thread so
 * that no caller ever blocks on the log's file descriptor. */
#ifndef SLUICE_LOG_H
#define SLUICE_LOG_H

#include <stdbool.h>
#include <stdint.h>

#include "sluice/log-t.h"

/* Parse "err", "warning", "notice", "info", "debug". Returns 0 or -1. */
int log_level_parse(const char *s, enum log_level *out);
const char *log_level_name(enum log_level lvl);

/* Set the threshold; lines above it are discarded before formatting. */
void log_set_level(enum log_level lvl);
bool log_enabled(enum log_level lvl);

/* Start asynchronous logging to fd (not closed by log; pass 2 for stderr).
 * Until this is called, and after log_stop(), lines are written synchronously
 * to stderr. Returns 0 or -1 (errno). */
int log_start(int fd);
/* Flush what is queued and stop the log thread. */
void log_stop(void);

/* Log one line. Never blocks once log_start() ran: a full queue drops the
 * line and counts it (reported on the next line that fits). */
void log_msg(enum log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* True when a rate-limited message may be logged now (at most `burst` per
 * second per limiter); *suppressed_out receives the count skipped since the
 * last allowed one, for the caller to mention. */
bool log_ratelimit_ok(struct log_ratelimit *rl, uint64_t now_ms, uint32_t burst,
		      uint32_t *suppressed_out);

#define log_err(...) log_msg(LOGL_ERR, __VA_ARGS__)
#define log_warn(...) log_msg(LOGL_WARNING, __VA_ARGS__)
#define log_notice(...) log_msg(LOGL_NOTICE, __VA_ARGS__)
#define log_info(...) log_msg(LOGL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOGL_DEBUG, __VA_ARGS__)

#endif
