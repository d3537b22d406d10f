/* ctl: the control socket (UNIX stream, one command per line, a reply
 * ends with an empty line), Prometheus metrics (also over HTTP) and the
 * state file. Runs in the control thread's libev loop. */
#ifndef SLUICE_CTL_H
#define SLUICE_CTL_H

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>

#include "sluice/ctl-t.h"
#include "sluice/util-t.h"

struct ctl;

/* A growable output buffer for replies. */
struct ctl_buf {
	char *data;
	size_t len, cap;
	bool oom; /* an append failed: the reply is incomplete */
};

void ctl_buf_printf(struct ctl_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* s as a JSON string (quoted, escaped) into b: for every name that comes
 * from a file or the kernel (an interface may be called 'a"b'). */
void ctl_json_str(struct ctl_buf *b, const char *s);
/* Append n bytes of s (no formatting: the cheap path for long output). */
void ctl_buf_append(struct ctl_buf *b, const char *s, size_t n);
void ctl_buf_free(struct ctl_buf *b);
/* For metric families written outside ctl (a hook): "# HELP" and "# TYPE"
 * of a family, and a label value escaped (backslash, quote, newline). */
void ctl_metrics_family(struct ctl_buf *b, const char *name, const char *type, const char *help);
void ctl_metrics_label(struct ctl_buf *b, const char *s);

/* Append s as a JSON string (quoted, escaped) to b. */
void ctl_json_str(struct ctl_buf *b, const char *s);

/* Create the control server; state_file may be NULL or "". Copies hooks. */
struct ctl *ctl_new(struct ev_loop *loop, const struct ctl_hooks *hooks, const char *state_file);
/* Listen on a UNIX socket: the directory is created if missing, a stale
 * socket file is replaced, a live one is an error unless replace_live (a
 * binary upgrade takes the path over). Returns 0 or -1. */
int ctl_listen_unix(struct ctl *c, const char *path, unsigned mode, enum ctl_level level,
		    bool replace_live, char *err, size_t errlen);
/* Serve GET /metrics over HTTP on addr, on the inherited listening socket
 * fd when fd >= 0. Returns 0 or -1. */
int ctl_listen_metrics(struct ctl *c, const struct util_addr *addr, int fd, char *err,
		       size_t errlen);
/* The metrics listening socket, or -1. */
int ctl_metrics_fd(const struct ctl *c);
/* Stop serving metrics (binary upgrade: the new process has the socket). */
void ctl_close_metrics(struct ctl *c);
/* The most descriptors the control side can hold with ncontrol control
 * sockets and, when metrics, the metrics port: each door's listening
 * socket and its clients (for the daemon's descriptor reserve). */
unsigned ctl_fds_max(size_t ncontrol, bool metrics);
/* Close every socket and client; unlink the socket files. */
void ctl_free(struct ctl *c);

/* Run one command line now (no waiting commands) and append its reply,
 * which ends with an empty line. For tests and the fuzzer. */
void ctl_execute(struct ctl *c, enum ctl_level level, const char *line, struct ctl_buf *out);

/* Every command of the command table: its first one or two words (w2 NULL
 * for a one-word command), usage line and whether it needs the admin
 * level; for `sluice --dump-keywords`, which the manual page test reads. */
typedef void (*ctl_command_fn)(void *arg, const char *w1, const char *w2, const char *usage,
			       bool admin);
void ctl_commands(ctl_command_fn fn, void *arg);

/* Write all pools' Prometheus metrics. */
void ctl_metrics(struct ctl *c, struct ctl_buf *out);

/* Load the state file (admin states, runtime weights, servers added at
 * runtime) and apply it to the model; missing file is not an error.
 * Returns 0, or -1 with err (nothing applied from a malformed file). */
int ctl_state_load(struct ctl *c, char *err, size_t errlen);
/* Write the state file now (atomically). Returns 0 or -1. */
int ctl_state_save(struct ctl *c);
/* A change made outside the control socket (DNS) that the state file
 * must keep: saved now, as after a command. */
void ctl_state_changed(struct ctl *c);
/* Server s was just made (from DNS): a line of the state file kept for
 * it until now is applied (admin state, weight). */
void ctl_server_appeared(struct ctl *c, struct pool_server *s);
/* Server s (made by DNS) is being taken out: what the operator set on it
 * is kept, as for a server not there yet, until DNS makes it again.
 * Returns true when something was kept: the caller then saves the state
 * (ctl_state_changed), once the model is whole again. */
bool ctl_server_gone(struct ctl *c, const struct pool_server *s);

/* Tokenize a command line into at most max words (in place: line is
 * modified). Returns the count, or -1 when there are more words or bytes
 * that are not printable text. */
int ctl_tokenize(char *line, char **argv, int max);

#endif
