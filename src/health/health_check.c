/* health_check: the checker engine. One checker per server and kind (check
 * or agent), each a small state machine on the control thread's libev loop:
 *
 *   IDLE --due--> CONNECTING --> [HANDSHAKE] --> [SENDING] --> [READING] --> IDLE
 *                      \______________ deadline / error ________________/
 *
 * Every check has its own deadline (the same timer that waits for the next
 * check); nothing blocks. Checks keep a fixed cadence from their due time
 * (plus jitter), so a slow check never shifts the others. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "health-int.h"
#include "sluice/log.h"
#include "sluice/pool.h"
#include "sluice/util.h"

#define HEALTH_LOCAL_RETRY_MS 100 /* first retry after a local error */

static void finish_reply(struct health_checker *chk, bool ok, const char *cause,
			 const struct health_agent_reply *reply);

static void finish(struct health_checker *chk, bool ok, const char *cause)
{
	finish_reply(chk, ok, cause, NULL);
}

static void finish_local(struct health_checker *chk, const char *cause);

/* The connect step failed with err: a local error is no verdict. */
static void finish_conn_error(struct health_checker *chk, int err, const char *cause)
{
	if (util_errno_local(err))
		finish_local(chk, cause);
	else
		finish(chk, false, cause);
}

static void arm(struct health_checker *chk, uint64_t at_ms, uint64_t now_ms)
{
	ev_timer_stop(chk->loop, &chk->timer);
	ev_timer_set(&chk->timer, at_ms > now_ms ? (double)(at_ms - now_ms) / 1000.0 : 0.0, 0.0);
	ev_timer_start(chk->loop, &chk->timer);
}

void health_want(struct health_checker *chk, int events)
{
	if (ev_is_active(&chk->io) && (chk->io.events & (EV_READ | EV_WRITE)) == events)
		return;
	ev_io_stop(chk->loop, &chk->io);
	ev_io_set(&chk->io, chk->fd, events);
	ev_io_start(chk->loop, &chk->io);
}

static uint64_t jittered(struct health_checker *chk, uint64_t base_ms)
{
	uint64_t span = base_ms * chk->conf.jitter_pct / 100;

	if (span == 0)
		return base_ms;
	return base_ms - span + util_rand64(&chk->rng) % (2 * span + 1);
}

/* Close the connection of the current check, if any. A reset rather than a
 * FIN: hundreds of checks a second must not fill the port range with
 * TIME_WAIT sockets. */
static void close_conn(struct health_checker *chk)
{
	struct linger lg = {.l_onoff = 1, .l_linger = 0};

	if (chk->ssl != NULL)
		health_tls_end(chk);
	ev_io_stop(chk->loop, &chk->io);
	if (chk->fd >= 0) {
		setsockopt(chk->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		close(chk->fd);
		chk->fd = -1;
	}
}

static void schedule_next(struct health_checker *chk, uint64_t now_ms)
{
	chk->phase = HEALTH_PH_IDLE;
	chk->due_ms += jittered(chk, chk->conf.interval_ms);
	if (chk->due_ms < now_ms)
		chk->due_ms = now_ms; /* the last check ran past its interval */
	arm(chk, chk->due_ms, now_ms);
}

static void conn_cause(int err, char *cause, size_t len)
{
	if (err == ECONNREFUSED)
		snprintf(cause, len, "connect refused");
	else
		snprintf(cause, len, "connect failed: %s", strerror(err));
}

static void build_request(struct health_checker *chk)
{
	size_t off = 0;

	chk->req[0] = '\0';
	util_bufprintf(chk->req, sizeof(chk->req), &off, "GET %s HTTP/1.0\r\n", chk->conf.path);
	if (chk->conf.host[0] != '\0')
		util_bufprintf(chk->req, sizeof(chk->req), &off, "Host: %s\r\n", chk->conf.host);
	util_bufprintf(chk->req, sizeof(chk->req), &off,
		       "User-Agent: sluice-check\r\nConnection: close\r\n\r\n");
	chk->reqlen = off;
	chk->reqoff = 0;
}

static void start_sending(struct health_checker *chk)
{
	chk->phase = HEALTH_PH_SENDING;
	health_want(chk, EV_WRITE);
}

static void start_reading(struct health_checker *chk)
{
	chk->phase = HEALTH_PH_READING;
	health_want(chk, EV_READ);
}

/* What follows a finished TLS handshake. */
static void after_handshake(struct health_checker *chk)
{
	if (chk->conf.type == HEALTH_HTTPS) {
		build_request(chk);
		start_sending(chk);
		return;
	}
	finish(chk, true, "TLS handshake ok");
}

static void do_handshake(struct health_checker *chk)
{
	char cause[HEALTH_CAUSE_MAX];
	int rc = health_tls_handshake(chk, cause, sizeof(cause));

	if (rc < 0)
		finish(chk, false, cause);
	else if (rc > 0)
		after_handshake(chk);
}

/* What follows a successful connect. */
static void after_connect(struct health_checker *chk)
{
	char cause[HEALTH_CAUSE_MAX];

	switch (chk->conf.type) {
	case HEALTH_TCP:
		finish(chk, true, "connect ok");
		return;
	case HEALTH_TLS:
	case HEALTH_HTTPS:
		if (health_tls_start(chk, cause, sizeof(cause)) < 0) {
			finish(chk, false, cause);
			return;
		}
		chk->phase = HEALTH_PH_HANDSHAKE;
		do_handshake(chk);
		return;
	case HEALTH_EXPECT:
		if (chk->conf.send_len > 0) {
			memcpy(chk->req, chk->conf.send, chk->conf.send_len);
			chk->reqlen = chk->conf.send_len;
			chk->reqoff = 0;
			start_sending(chk);
		} else {
			start_reading(chk);
		}
		return;
	case HEALTH_HTTP:
		build_request(chk);
		start_sending(chk);
		return;
	case HEALTH_AGENT:
		start_reading(chk);
		return;
	}
}

static void do_send(struct health_checker *chk)
{
	char cause[HEALTH_CAUSE_MAX];

	while (chk->reqoff < chk->reqlen) {
		const char *p = chk->req + chk->reqoff;
		size_t n = chk->reqlen - chk->reqoff;
		ssize_t w;

		if (chk->ssl != NULL) {
			w = health_tls_write(chk, p, n, cause, sizeof(cause));
			if (w == 0)
				return;
		} else {
			w = send(chk->fd, p, n, MSG_NOSIGNAL);
			if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
				health_want(chk, EV_WRITE);
				return;
			}
			if (w < 0)
				snprintf(cause, sizeof(cause), "send failed: %s", strerror(errno));
		}
		if (w < 0) {
			finish(chk, false, cause);
			return;
		}
		chk->reqoff += (size_t)w;
	}
	start_reading(chk);
}

/* Judge the reply so far. Returns true when the check finished. */
static bool evaluate(struct health_checker *chk, bool eof)
{
	char cause[HEALTH_CAUSE_MAX], esc[96];
	bool full = chk->rlen >= sizeof(chk->rbuf);
	int code = 0, rc;

	switch (chk->conf.type) {
	case HEALTH_EXPECT:
		health_escape(chk->conf.expect, chk->conf.expect_len, esc, sizeof(esc));
		if (health_expect_match(chk->rbuf, chk->rlen, chk->conf.expect,
					chk->conf.expect_len)) {
			snprintf(cause, sizeof(cause), "expect \"%s\" matched", esc);
			finish(chk, true, cause);
			return true;
		}
		if (!eof && !full)
			return false;
		snprintf(cause, sizeof(cause), "expect \"%s\" not found %s", esc,
			 eof ? "(connection closed)" : "in the first 4096 bytes");
		finish(chk, false, cause);
		return true;
	case HEALTH_HTTP:
	case HEALTH_HTTPS:
		rc = health_http_status(chk->rbuf, chk->rlen, &code);
		if (rc == 0 && !eof)
			return false;
		if (rc > 0) {
			snprintf(cause, sizeof(cause), "HTTP %d", code);
			finish(chk, health_status_match(chk->conf.status, chk->conf.nstatus, code),
			       cause);
		} else if (rc < 0) {
			health_escape(chk->rbuf, UTIL_MIN(chk->rlen, 40), esc, sizeof(esc));
			snprintf(cause, sizeof(cause), "bad HTTP status line \"%s\"", esc);
			finish(chk, false, cause);
		} else {
			finish(chk, false, "connection closed before the HTTP status");
		}
		return true;
	case HEALTH_AGENT: {
		struct health_agent_reply reply;
		size_t n;

		if (!eof && !full && memchr(chk->rbuf, '\n', chk->rlen) == NULL)
			return false;
		if (chk->rlen == 0) {
			finish(chk, false, "agent: no reply");
			return true;
		}
		n = chk->rlen;
		if (memchr(chk->rbuf, '\n', n) != NULL)
			n = (size_t)((char *)memchr(chk->rbuf, '\n', n) - chk->rbuf);
		while (n > 0 && chk->rbuf[n - 1] == '\r')
			n--;
		health_escape(chk->rbuf, UTIL_MIN(n, 80), esc, sizeof(esc));
		if (health_agent_parse(chk->rbuf, chk->rlen, &reply) < 0) {
			snprintf(cause, sizeof(cause), "agent: bad reply \"%s\"", esc);
			finish(chk, false, cause);
			return true;
		}
		snprintf(cause, sizeof(cause), "agent says \"%s\"", esc);
		finish_reply(chk, true, cause, &reply);
		return true;
	}
	case HEALTH_TCP:
	case HEALTH_TLS:
		break;
	}
	finish(chk, true, "ok");
	return true;
}

static void do_read(struct health_checker *chk)
{
	char cause[HEALTH_CAUSE_MAX];

	for (;;) {
		size_t room = sizeof(chk->rbuf) - chk->rlen;
		ssize_t n;

		if (room == 0) {
			evaluate(chk, false);
			return;
		}
		if (chk->ssl != NULL) {
			n = health_tls_read(chk, chk->rbuf + chk->rlen, room, cause, sizeof(cause));
			if (n == 0)
				return;
			if (n == -2) {
				evaluate(chk, true);
				return;
			}
		} else {
			n = recv(chk->fd, chk->rbuf + chk->rlen, room, 0);
			if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
				health_want(chk, EV_READ);
				return;
			}
			if (n == 0) {
				evaluate(chk, true);
				return;
			}
			if (n < 0)
				snprintf(cause, sizeof(cause), "read failed: %s", strerror(errno));
		}
		if (n < 0) {
			finish(chk, false, cause);
			return;
		}
		chk->rlen += (size_t)n;
		if (evaluate(chk, false))
			return;
	}
}

static void on_io(struct ev_loop *loop, ev_io *w, int revents)
{
	struct health_checker *chk = w->data;
	char cause[HEALTH_CAUSE_MAX];
	int err = 0;
	socklen_t elen = sizeof(err);

	(void)loop;
	(void)revents;
	switch (chk->phase) {
	case HEALTH_PH_CONNECTING:
		if (getsockopt(chk->fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0)
			err = errno;
		if (err != 0) {
			conn_cause(err, cause, sizeof(cause));
			finish_conn_error(chk, err, cause);
			return;
		}
		after_connect(chk);
		return;
	case HEALTH_PH_HANDSHAKE:
		do_handshake(chk);
		return;
	case HEALTH_PH_SENDING:
		do_send(chk);
		return;
	case HEALTH_PH_READING:
		do_read(chk);
		return;
	case HEALTH_PH_IDLE:
		ev_io_stop(chk->loop, &chk->io);
		return;
	}
}

static void start_check(struct health_checker *chk)
{
	char cause[HEALTH_CAUSE_MAX];
	uint64_t now = util_now_ms();
	const struct util_addr *a = &chk->conf.addr;
	int one = 1;

	/* maint pauses active checks; the agent keeps asking (it may say ready) */
	if (chk->srv->admin == POOL_ADMIN_MAINT && chk->conf.type != HEALTH_AGENT) {
		schedule_next(chk, now);
		return;
	}
	chk->started_ms = now;
	chk->started_us = util_now_us();
	chk->rlen = 0;
	chk->reqlen = chk->reqoff = 0;
	arm(chk, now + chk->conf.timeout_ms, now);
	chk->fd = socket(a->u.sa.sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (chk->fd < 0) {
		int err = errno;

		snprintf(cause, sizeof(cause), "socket failed: %s", strerror(err));
		finish_conn_error(chk, err, cause);
		return;
	}
	setsockopt(chk->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	chk->phase = HEALTH_PH_CONNECTING;
	if (connect(chk->fd, &a->u.sa, a->len) == 0) {
		after_connect(chk);
		return;
	}
	if (errno != EINPROGRESS) {
		int err = errno;

		conn_cause(err, cause, sizeof(cause));
		finish_conn_error(chk, err, cause);
		return;
	}
	health_want(chk, EV_WRITE);
}

static void on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct health_checker *chk = w->data;
	char cause[HEALTH_CAUSE_MAX];

	(void)loop;
	(void)revents;
	if (chk->phase == HEALTH_PH_IDLE) {
		start_check(chk);
		return;
	}
	snprintf(cause, sizeof(cause), "timeout after %ums", chk->conf.timeout_ms);
	finish(chk, false, cause);
}

/* The check could not run for a local reason (out of descriptors, memory,
 * buffers or ports): that says nothing about the server, so rise/fall is
 * left alone and the check runs again soon, backing off from
 * HEALTH_LOCAL_RETRY_MS up to its interval while the errors last. */
static void finish_local(struct health_checker *chk, const char *cause)
{
	struct health_result r = {.local = true};
	uint64_t now = util_now_ms();
	uint64_t first = UTIL_MIN(HEALTH_LOCAL_RETRY_MS, chk->conf.interval_ms);

	close_conn(chk);
	util_strlcpy(r.cause, cause, sizeof(r.cause));
	r.late_ms = chk->started_ms > chk->due_ms ? chk->started_ms - chk->due_ms : 0;
	chk->local_retry_ms = chk->local_retry_ms == 0
				  ? first
				  : UTIL_MIN(chk->local_retry_ms * 2, chk->conf.interval_ms);
	chk->phase = HEALTH_PH_IDLE;
	chk->due_ms = now + chk->local_retry_ms;
	arm(chk, chk->due_ms, now);
	chk->cb(chk->cb_arg, chk, &r);
}

/* End the current check: close, count, schedule the next, report. */
static void finish_reply(struct health_checker *chk, bool ok, const char *cause,
			 const struct health_agent_reply *reply)
{
	struct health_result r = {.ok = ok, .agent = reply};
	uint64_t now = util_now_ms();

	close_conn(chk);
	chk->local_retry_ms = 0;
	util_strlcpy(r.cause, cause, sizeof(r.cause));
	r.late_ms = chk->started_ms > chk->due_ms ? chk->started_ms - chk->due_ms : 0;
	r.late_us =
	    chk->started_us > chk->due_ms * 1000u ? chk->started_us - chk->due_ms * 1000u : 0;
	if (chk->conf.type != HEALTH_AGENT) {
		r.event = health_rf_update(&chk->rf, ok);
		if (chk->rf.up) {
			r.count = r.event == HEALTH_RF_WENT_UP ? chk->rf.good : chk->rf.bad;
			r.of = r.event == HEALTH_RF_WENT_UP ? chk->rf.rise : chk->rf.fall;
		} else {
			r.count = r.event == HEALTH_RF_WENT_DOWN ? chk->rf.bad : chk->rf.good;
			r.of = r.event == HEALTH_RF_WENT_DOWN ? chk->rf.fall : chk->rf.rise;
		}
	}
	/* schedule first: the callback may force the state down */
	schedule_next(chk, now);
	chk->cb(chk->cb_arg, chk, &r);
}

struct health_checker *health_checker_new(struct ev_loop *loop, struct pool_server *srv,
					  const struct health_conf *conf, health_result_fn cb,
					  void *arg)
{
	struct health_checker *chk = calloc(1, sizeof(*chk));
	uint64_t now = util_now_ms();

	if (chk == NULL)
		return NULL;
	chk->loop = loop;
	chk->conf = *conf;
	if (chk->conf.interval_ms == 0)
		chk->conf.interval_ms = 1000;
	chk->srv = srv;
	pool_server_get(srv);
	if (conf->tls != NULL)
		health_tls_get(conf->tls);
	chk->cb = cb;
	chk->cb_arg = arg;
	chk->fd = -1;
	chk->rng = util_addr_hash(&conf->addr, now) ^ (uint64_t)(uintptr_t)chk ^ now;
	chk->rng |= 1;
	chk->rng ^= util_addr_port(&conf->addr);
	if (chk->rng == 0)
		chk->rng = 0x9e3779b97f4a7c15ull;
	health_rf_init(&chk->rf, conf->rise, conf->fall, true);
	ev_init(&chk->timer, on_timer);
	chk->timer.data = chk;
	ev_init(&chk->io, on_io);
	chk->io.data = chk;
	chk->phase = HEALTH_PH_IDLE;
	/* spread the first checks of many servers over one interval */
	chk->due_ms = now + util_rand64(&chk->rng) % chk->conf.interval_ms;
	arm(chk, chk->due_ms, now);
	return chk;
}

void health_checker_free(struct health_checker *chk)
{
	if (chk == NULL)
		return;
	ev_timer_stop(chk->loop, &chk->timer);
	close_conn(chk);
	if (chk->conf.tls != NULL)
		health_tls_put(chk->conf.tls);
	pool_server_put(chk->srv);
	free(chk);
}

void health_checker_force_down(struct health_checker *chk)
{
	health_rf_force_down(&chk->rf);
}

const struct health_rf *health_checker_rf(const struct health_checker *chk)
{
	return &chk->rf;
}

const struct health_conf *health_checker_conf(const struct health_checker *chk)
{
	return &chk->conf;
}

struct pool_server *health_checker_server(const struct health_checker *chk)
{
	return chk->srv;
}
