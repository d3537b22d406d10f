/* log internals shared by log.c (queues, thread) and log_target.c (the
 * targets: formats and sockets). A set of targets is used by one thread at
 * a time: the log thread, or the caller while logging is synchronous. */
#ifndef SLUICE_LOG_INT_H
#define SLUICE_LOG_INT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "sluice/log.h"

#define LOG_LINE_MAX 2048    /* message text, without any prefix */
#define LOG_STREAM_BUF 65536 /* stderr/stdout: lines gathered per write */
#define LOG_RETRY_MS 1000    /* reconnect a socket target at most this often */
#define LOG_REPORT_MS 10000  /* say a target drops lines at most this often */

/* Header of one queued line; the text follows (len bytes, no newline). */
struct log_rec {
	uint32_t len;
	uint32_t level;
	int64_t sec; /* CLOCK_REALTIME when the line was logged */
	int64_t nsec;
};

struct log_target {
	struct log_target_conf conf;
	char name[sizeof(((struct log_target_stats *)0)->name)];
	int fd;		   /* streams: 1 or 2 (not ours); sockets: ours, -1 until connected */
	uint64_t retry_ms; /* monotonic: next connect attempt */
	_Atomic uint64_t sent, dropped;
	uint64_t report_ms;	   /* monotonic: last "dropping lines" report, 0: none */
	uint64_t dropped_reported; /* dropped at that report */
	int last_errno;
	char *buf; /* streams: pending output */
	size_t buflen;
	int64_t ts_sec; /* cached time prefix of that second */
	char ts[64];
	size_t tslen;
};

struct log_set {
	size_t n;
	struct log_target t[LOG_MAX_TARGETS];
	enum log_level max_level; /* the highest level any target takes */
	char host[256];		  /* RFC 5424 HOSTNAME */
	pid_t pid;
};

/* Hand one line to every target of s whose level takes it. */
void log_set_put(struct log_set *s, const struct log_rec *r, const char *msg, uint64_t now_ms);
/* Write what streams have gathered. */
void log_set_flush(struct log_set *s);
/* A target that dropped lines since its last report and may report again:
 * writes the report and returns true (once per LOG_REPORT_MS). */
bool log_set_report(struct log_set *s, uint64_t now_ms, char *buf, size_t len);
/* Copy the counters of the targets of from that have the same name in to. */
void log_set_carry(struct log_set *to, const struct log_set *from);

#endif
