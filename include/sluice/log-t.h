/* log types: levels, log targets, their counters and the rate limiter state. */
#ifndef SLUICE_LOG_T_H
#define SLUICE_LOG_T_H

#include <stdint.h>

#include "sluice/util-t.h"

enum log_level {
	LOGL_ERR = 0,
	LOGL_WARNING,
	LOGL_NOTICE,
	LOGL_INFO,
	LOGL_DEBUG,
};

/* Allows `burst` messages per second; counts what it suppressed.
 * Owned by whoever logs (one per error site); zero-initialise. */
struct log_ratelimit {
	uint64_t window_ms;
	uint32_t count;
	uint32_t suppressed;
};

enum log_target_kind {
	LOG_TARGET_STDERR,
	LOG_TARGET_STDOUT,
	LOG_TARGET_SYSLOG, /* a local datagram socket, RFC 3164 lines as syslog(3) sends */
	LOG_TARGET_UDP,	   /* a remote collector, RFC 5424 over UDP (RFC 5426) */
};

#define LOG_MAX_TARGETS 8
#define LOG_PATH_MAX 108 /* sun_path */
#define LOG_TAG_MAX 33	 /* RFC 5424 APP-NAME: 1-32 printable characters */
#define LOG_FACILITY_DAEMON 3
#define LOG_SYSLOG_DEFAULT_PATH "/dev/log"
#define LOG_DEFAULT_TAG "sluice"

/* One `log` line of the configuration: where lines go and up to which
 * level. Plain data, copied by log_set_new(). */
struct log_target_conf {
	enum log_target_kind kind;
	enum log_level level;
	char path[LOG_PATH_MAX]; /* syslog: the socket */
	struct util_addr addr;	 /* udp: the collector */
	uint32_t facility;	 /* syslog, udp: 0-23 */
	char tag[LOG_TAG_MAX];	 /* syslog, udp: the program name in each line */
};

/* Counters of one running target, for show info and metrics. */
struct log_target_stats {
	char name[LOG_PATH_MAX + 16]; /* as log_target_describe() */
	uint64_t sent;		      /* lines handed to the kernel */
	uint64_t dropped;	      /* lines the target could not take */
};

#endif
