/* health: active checks of servers, run in the control thread's libev loop.
 * Each checker owns one socket at a time, is non-blocking and has its own
 * deadline; results go to the owner's callback (core), which applies them
 * through pool. The parsers of check replies are pure (health_parse.c). */
#ifndef SLUICE_HEALTH_H
#define SLUICE_HEALTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sluice/health-t.h"

struct ev_loop;
struct pool_server;

/* "OpenSSL 3.0.x (built with OpenSSL 3.0.y)": the library the TLS checks
 * run with, for sluice --version. Returns buf. */
const char *health_tls_version(char *buf, size_t len);

/* ---- pure parsers (health_parse.c): input is untrusted backend bytes ---- */

/* Parse the status line at the start of buf ("HTTP/1.x NNN ..."). Returns
 * 1 with *code set, 0 when more bytes are needed (no line end yet), -1 when
 * malformed (also when no line end within HEALTH_RBUF bytes). */
int health_http_status(const char *buf, size_t len, int *code);

/* True when code is in one of the n ranges. */
bool health_status_match(const struct health_status_range *r, size_t n, int code);

/* True when pat (patlen > 0 bytes, may hold NUL) occurs in buf. */
bool health_expect_match(const char *buf, size_t len, const char *pat, size_t patlen);

/* Parse an agent reply: the first line of buf (or all of it when it has no
 * line end), words separated by spaces, tabs or commas, '#' starts a reason.
 * Words: N%, ready, drain, maint, up, down, fail, stopped, maxconn:N
 * (ignored); case does not matter. Returns 0, or -1 when no word is known
 * or a percentage is malformed. */
int health_agent_parse(const char *buf, size_t len, struct health_agent_reply *out);

/* Escape s (len bytes) printable into out for logs ("\r\n" -> "\\r\\n").
 * Returns out. */
const char *health_escape(const char *s, size_t len, char *out, size_t cap);

/* Rise/fall: start up (servers start up) with the given thresholds. */
void health_rf_init(struct health_rf *rf, uint32_t rise, uint32_t fall, bool up);
/* Count one result; returns the state change it caused, if any. */
enum health_rf_event health_rf_update(struct health_rf *rf, bool ok);
/* Force down (passive detection): rise good results bring it back. */
void health_rf_force_down(struct health_rf *rf);

/* ---- TLS contexts (health_tls.c) ---- */

/* Create a client context; verify: the peer certificate must verify against
 * ca_file ("" or NULL: the system's default paths). One reference, the
 * caller's. Returns NULL with err set. */
struct health_tls *health_tls_new(bool verify, const char *ca_file, char *err, size_t errlen);
void health_tls_get(struct health_tls *t);
void health_tls_put(struct health_tls *t);

/* ---- checkers (health_check.c) ---- */

/* Create a checker for srv (takes a reference to srv and to conf->tls) on
 * loop, the control thread's. The first check runs at a random moment
 * within one interval (so checks of many servers spread). cb gets every
 * result; it must not free the checker. Returns NULL on no memory. */
struct health_checker *health_checker_new(struct ev_loop *loop, struct pool_server *srv,
					  const struct health_conf *conf, health_result_fn cb,
					  void *arg);

/* Stop, close and free (NULL allowed). Never calls the callback. */
void health_checker_free(struct health_checker *chk);

/* The server was marked down elsewhere (passive): count rise good checks
 * before the next "went up", and check again soon. */
void health_checker_force_down(struct health_checker *chk);

const struct health_rf *health_checker_rf(const struct health_checker *chk);
const struct health_conf *health_checker_conf(const struct health_checker *chk);
struct pool_server *health_checker_server(const struct health_checker *chk);

const char *health_type_name(enum health_type t);

#endif
