/* session: one client connection from accept to close: optional PROXY
 * header, server pick with retries on another server, the bounded queue
 * when every server is full, relay, timeouts and the log line at the end.
 * A session belongs to the worker that accepted it; closing stops its
 * watchers and releases everything at once, memory goes after the loop
 * iteration so a callback may close its own session. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proxy-int.h"
#include "sluice/guard.h"
#include "sluice/log.h"
#include "sluice/pool.h"
#include "sluice/proxy.h"
#include "sluice/proxyproto.h"
#include "sluice/util.h"

static const char *const end_names[] = {
    [PROXY_END_CLIENT_CLOSED] = "client-closed",
    [PROXY_END_SERVER_CLOSED] = "server-closed",
    [PROXY_END_CLIENT_RESET] = "client-reset",
    [PROXY_END_SERVER_RESET] = "server-reset",
    [PROXY_END_IDLE_TIMEOUT] = "idle-timeout",
    [PROXY_END_CONNECT_FAILED] = "connect-failed",
    [PROXY_END_NO_SERVER] = "no-server",
    [PROXY_END_QUEUE_TIMEOUT] = "queue-timeout",
    [PROXY_END_QUEUE_FULL] = "queue-full",
    [PROXY_END_PROXY_HEADER] = "bad-proxy-header",
    [PROXY_END_PROXY_HEADER_TIMEOUT] = "proxy-header-timeout",
    [PROXY_END_SHUTDOWN] = "shutdown",
    [PROXY_END_KILLED] = "killed",
    [PROXY_END_REFUSED] = "refused",
    [PROXY_END_LOCAL_ERROR] = "local-error",
    [PROXY_END_NO_MEMORY] = "no-memory",
    [PROXY_END_HELLO_TIMEOUT] = "hello-timeout",
    [PROXY_END_BAD_HELLO] = "bad-hello",
    [PROXY_END_NOT_TLS] = "not-tls",
    [PROXY_END_NO_ROUTE] = "no-route",
    [PROXY_END_ERROR] = "error",
};

static void connect_next(struct proxy_session *s);
static void connect_failed(struct proxy_session *s, int err);

static uint64_t now_ms(const struct proxy_worker *w)
{
	return (uint64_t)(ev_now(w->loop) * 1000.0);
}

/* Arm the session's single timer for an absolute deadline. */
static void timer_at(struct proxy_session *s, uint64_t deadline_ms)
{
	uint64_t now = now_ms(s->w);

	s->deadline_ms = deadline_ms;
	ev_timer_stop(s->w->loop, &s->timer);
	ev_timer_set(&s->timer, deadline_ms > now ? (double)(deadline_ms - now) / 1000.0 : 0.0,
		     0.0);
	ev_timer_start(s->w->loop, &s->timer);
}

static void set_io(struct ev_loop *loop, ev_io *io, int events)
{
	if ((io->events & (EV_READ | EV_WRITE)) == events && ev_is_active(io) == (events != 0))
		return;
	ev_io_stop(loop, io);
	if (events != 0) {
		ev_io_modify(io, events);
		ev_io_start(loop, io);
	}
}

static bool dir_pending(const struct proxy_dir *d)
{
	return d->len > 0 || d->in_pipe > 0;
}

void proxy_session_update_io(struct proxy_session *s)
{
	int cev = 0, sev = 0;

	switch (s->state) {
	case PROXY_ST_HEADER:
	case PROXY_ST_PEEK: /* TLS routes: peek.c */
		cev = EV_READ;
		break;
	case PROXY_ST_CONNECTING:
		sev = EV_WRITE;
		/* take the client's first bytes meanwhile: the first write then
		 * tells whether the connect worked, with no getsockopt() */
		if (!s->c2s.eof && !dir_pending(&s->c2s))
			cev = EV_READ;
		break;
	case PROXY_ST_RELAY:
		if (!s->c2s.eof && !dir_pending(&s->c2s))
			cev |= EV_READ;
		/* unproven: writability says when the connect ended; a
		 * kernel-relay direction waiting for its destination to take the
		 * redirected bytes is woken by its timer instead */
		if ((dir_pending(&s->c2s) && !s->c2s.kwait) || !s->srv_up)
			sev |= EV_WRITE;
		if (!s->s2c.eof && !dir_pending(&s->s2c))
			sev |= EV_READ;
		if (dir_pending(&s->s2c) && !s->s2c.kwait)
			cev |= EV_WRITE;
		break;
	case PROXY_ST_QUEUED:
	case PROXY_ST_CLOSED:
		break;
	}
	/* in the kernel relay, readability comes from the worker's
	 * edge-triggered set (krelay_glue.c): level-triggered, a socket whose
	 * bytes the kernel is still forwarding reads as readable and spins */
	if (s->kernel) {
		cev &= ~EV_READ;
		sev &= ~EV_READ;
		/* libev keeps a stopped watcher's fd in its epoll set until an
		 * event for it comes back, and a socket whose bytes the kernel
		 * took is never reported readable: it would wake the loop for
		 * every segment, found nothing each time. Asking once for
		 * writability (always true) gets an event, after which libev
		 * drops the fd. */
		if (s->kunwatch_c)
			cev |= EV_WRITE;
		if (s->kunwatch_s)
			sev |= EV_WRITE;
	}
	set_io(s->w->loop, &s->cio, cev);
	if (s->sfd >= 0)
		set_io(s->w->loop, &s->sio, sev);
}

static void set_linger0(int fd)
{
	struct linger l = {.l_onoff = 1, .l_linger = 0};

	if (fd >= 0)
		setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
}

static void log_end(struct proxy_session *s)
{
	char cbuf[UTIL_ADDR_STRLEN];
	uint64_t now = now_ms(s->w);

	/* TLS routes: no pool before one is chosen; sni= alpn= at the end */
	log_info("conn %s %s -> %s/%s up=%llu down=%llu dur=%llums end=%s%s", s->fe->name,
		 util_addr_fmt(&s->client, cbuf, sizeof(cbuf)),
		 s->pool != NULL ? s->pool->name : "-", s->srv != NULL ? s->srv->name : "-",
		 (unsigned long long)s->c2s.bytes, (unsigned long long)s->s2c.bytes,
		 (unsigned long long)(now - s->start_ms), end_names[s->end],
		 proxy_peek_log_tail(s));
}

/* Give back the server slot; wakes queued clients when there are some. */
static void release_server(struct proxy_session *s)
{
	struct pool_server *srv = s->srv;

	if (srv == NULL)
		return;
	s->srv = NULL;
	if (pool_server_release(srv))
		proxy_worker_queue_kick(s->w);
}

static void close_server_fd(struct proxy_session *s)
{
	if (s->sfd < 0)
		return;
	ev_io_stop(s->w->loop, &s->sio);
	close(s->sfd);
	s->sfd = -1;
}

static void leave_queue(struct proxy_session *s)
{
	if (s->state != PROXY_ST_QUEUED)
		return;
	list_del(&s->qlink);
	atomic_fetch_sub(&s->w->nqueued, 1);
	atomic_fetch_sub(&s->pool->queued, 1);
}

void proxy_session_close(struct proxy_session *s, enum proxy_end end)
{
	struct proxy_worker *w = s->w;
	struct proxy_frontend *fe = s->fe;

	if (s->state == PROXY_ST_CLOSED)
		return;
	/* however it ends, a stream the kernel relay lost bytes of is broken */
	if (s->kernel && end != PROXY_END_ERROR && proxy_krelay_lost(s))
		end = PROXY_END_ERROR;
	s->end = end;
	leave_queue(s);
	if (end == PROXY_END_ERROR) {
		/* the stream is broken: neither side may take it as whole */
		set_linger0(s->sfd);
		set_linger0(s->cfd);
	} else if (end == PROXY_END_CLIENT_RESET)
		set_linger0(s->sfd);
	else if (end == PROXY_END_SERVER_RESET || end == PROXY_END_REFUSED)
		set_linger0(s->cfd);
	/* before the log line: it counts the kernel's bytes */
	proxy_krelay_end(s);
	/* a refusal was logged, rate-limited, where it was decided */
	if (log_enabled(LOGL_INFO) && end != PROXY_END_REFUSED)
		log_end(s);
	proxy_peek_end(s); /* TLS routes */
	ev_timer_stop(w->loop, &s->timer);
	ev_io_stop(w->loop, &s->cio);
	close_server_fd(s);
	close(s->cfd);
	s->cfd = -1;
	if (s->srv != NULL) {
		atomic_fetch_add_explicit(&s->srv->bytes_out, s->c2s.bytes, memory_order_relaxed);
		atomic_fetch_add_explicit(&s->srv->bytes_in, s->s2c.bytes, memory_order_relaxed);
	}
	atomic_fetch_add_explicit(&fe->bytes_in, s->c2s.bytes, memory_order_relaxed);
	atomic_fetch_add_explicit(&fe->bytes_out, s->s2c.bytes, memory_order_relaxed);
	proxy_dir_release(w, &s->c2s);
	proxy_dir_release(w, &s->s2c);
	s->state = PROXY_ST_CLOSED;
	list_del(&s->link);
	list_add_tail(&w->dead, &s->link);
	release_server(s);
	if (s->ticket.t != NULL)
		guard_release(&s->ticket, util_now_us());
	atomic_fetch_sub(&fe->cur_conns, 1);
	atomic_fetch_sub(&w->e->cur_conns, 1);
	proxy_worker_slot_freed(w, fe);
	w->nsessions--;
	proxy_worker_after_close(w);
}

void proxy_session_free(struct proxy_session *s)
{
	if (s->pool != NULL)
		pool_put(s->pool);
	proxy_frontend_put(s->fe);
	free(s);
}

/* The connection to s->srv is established: tell the pool once. That is
 * decided when the connect completes (see probe_connect), or earlier by
 * traffic: a write that went through or a read that got bytes or a FIN
 * proves it too. Never by the client: a client that stays silent must not
 * make a server look broken. Until then a failure is a connect failure and
 * a retry is still safe. */
static void server_up(struct proxy_session *s)
{
	if (s->srv_up)
		return;
	s->srv_up = true;
	pool_server_connect_ok(s->srv);
}

/* The server socket reported writable (or an error, which epoll reports
 * with it) while nothing is queued for it: the connect attempt has ended,
 * and SO_ERROR says how. Returns true when it is established; otherwise
 * the attempt was handled as a failure (the session may have closed). */
static bool probe_connect(struct proxy_session *s)
{
	socklen_t len = sizeof(int);
	int err = 0;

	if (getsockopt(s->sfd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err != 0) {
		connect_failed(s, err);
		return false;
	}
	server_up(s);
	return true;
}

/* The connection ends rather than spin on a readable socket. */
void proxy_session_no_memory(struct proxy_session *s)
{
	atomic_fetch_add_explicit(&s->w->e->no_memory, 1, memory_order_relaxed);
	proxy_session_close(s, PROXY_END_NO_MEMORY);
}

/* A relay step failed with rc: end the connection, or retry another
 * server when the server side failed before it was established. */
static void relay_failed(struct proxy_session *s, enum proxy_io rc)
{
	switch (rc) {
	case PROXY_IO_SERVER_ERR:
		if (!s->srv_up) {
			/* the connect failed and nothing reached the server */
			connect_failed(s, errno);
			return;
		}
		proxy_session_close(s, PROXY_END_SERVER_RESET);
		return;
	case PROXY_IO_CLIENT_ERR:
		proxy_session_close(s, PROXY_END_CLIENT_RESET);
		return;
	case PROXY_IO_NO_MEMORY:
		proxy_session_no_memory(s);
		return;
	case PROXY_IO_BROKEN:
		proxy_session_close(s, PROXY_END_ERROR);
		return;
	case PROXY_IO_AGAIN:
	case PROXY_IO_FULL:
	case PROXY_IO_SHORT:
	case PROXY_IO_EOF:
	case PROXY_IO_FLUSHED:
		return;
	}
}

/* Relay both directions, reading from the sockets that reported readable
 * (read_c: the client, read_s: the server), and decide whether the
 * connection is over. */
static void relay_both(struct proxy_session *s, bool read_c, bool read_s)
{
	struct proxy_dir *dirs[2] = {&s->c2s, &s->s2c};
	/* kernel relay: an edge comes once, so every turn reads to EAGAIN */
	bool may_read[2] = {read_c || s->kernel, read_s || s->kernel};

	for (size_t i = 0; i < 2; i++) {
		enum proxy_io rc = proxy_relay(s, dirs[i], may_read[i]);

		/* bytes through either way prove the server connection */
		if (!s->srv_up && (s->c2s.sent > 0 || s->s2c.bytes > 0 || s->s2c.eof))
			server_up(s);
		if (rc != PROXY_IO_AGAIN) {
			relay_failed(s, rc);
			return;
		}
	}
	if (s->kernel)
		proxy_krelay_wrote(s);
	if (s->c2s.shut && s->s2c.shut) {
		proxy_session_close(s, s->end_set ? s->end : PROXY_END_CLIENT_CLOSED);
		return;
	}
	if (!s->end_set && (s->c2s.eof || s->s2c.eof)) {
		/* who closed first names the end of the connection */
		s->end = s->c2s.eof ? PROXY_END_CLIENT_CLOSED : PROXY_END_SERVER_CLOSED;
		s->end_set = true;
	}
	proxy_session_update_io(s);
	if (s->kwant && !s->kernel)
		proxy_krelay_try(s);
}

void proxy_session_relay(struct proxy_session *s)
{
	if (s->state == PROXY_ST_RELAY)
		relay_both(s, false, false);
}

/* The next moment the relay timer must look: idle or half-closed timeout,
 * a pending kill, and the connect timeout while the connect is unproven. */
static uint64_t idle_deadline(const struct proxy_session *s)
{
	bool half = s->c2s.eof || s->s2c.eof;
	uint64_t d = s->last_ms + (half ? s->timeout_half_closed_ms : s->timeout_idle_ms);

	if (s->kill_at_ms != 0 && s->kill_at_ms < d)
		d = s->kill_at_ms;
	if (!s->srv_up && s->connect_deadline_ms < d)
		d = s->connect_deadline_ms;
	return d;
}

void proxy_session_kill_at(struct proxy_session *s, uint64_t delay_ms)
{
	uint64_t now = now_ms(s->w);

	if (s->state == PROXY_ST_CLOSED)
		return;
	if (delay_ms == 0 || s->state != PROXY_ST_RELAY) {
		proxy_session_close(s, PROXY_END_KILLED);
		return;
	}
	s->kill_at_ms = now + delay_ms;
	timer_at(s, idle_deadline(s));
}

/* Put the PROXY header the server expects in front of the client's bytes.
 * Returns false when no buffer could be had: the server must then get
 * nothing rather than bytes without the header it expects. */
static bool prepend_proxy_header(struct proxy_session *s)
{
	uint8_t hdr[PROXYPROTO_MAX_BUILD];
	struct util_addr dst = s->dst;
	struct proxy_dir *d = &s->c2s;
	size_t n;

	if (dst.len == 0) {
		dst.len = sizeof(dst.u);
		if (getsockname(s->cfd, &dst.u.sa, &dst.len) < 0)
			dst.len = 0;
	}
	n = proxyproto_build(s->srv->send_proxy == POOL_PROXY_V1 ? 1 : 2, &s->client, &dst, hdr);
	if (d->buf == NULL) {
		d->buf = UTIL_FAULT("proxy_header_buf") ? NULL : proxy_buf_get(s->w);
		if (d->buf == NULL)
			return false;
		d->off = PROXY_BUF_SLACK;
		d->len = 0;
	}
	/* the buffer is only ever read into at PROXY_BUF_SLACK, so the slack
	 * before d->off is free until the first write */
	d->off -= (uint32_t)n;
	d->len += (uint32_t)n;
	s->hdr_len = (uint8_t)n;
	memcpy(d->buf->data + d->off, hdr, n);
	return true;
}

/* A failed connect takes its PROXY header back: the next server may want
 * another one, or none. Nothing of it was sent (the connect failed). */
static void strip_proxy_header(struct proxy_session *s)
{
	struct proxy_dir *d = &s->c2s;

	if (s->hdr_len == 0 || d->buf == NULL)
		return;
	d->off += s->hdr_len;
	d->len -= s->hdr_len;
	s->hdr_len = 0;
	if (d->len == 0) {
		proxy_buf_put(s->w, d->buf);
		d->buf = NULL;
	}
}

/* Start relaying to the server: a connect in progress too, when the
 * client's first bytes can go out with it (their write tells the result). */
static void start_relay(struct proxy_session *s)
{
	s->state = PROXY_ST_RELAY;
	s->last_ms = now_ms(s->w);
	if (s->srv->send_proxy != POOL_PROXY_NONE && !prepend_proxy_header(s)) {
		proxy_session_no_memory(s);
		return;
	}
	timer_at(s, idle_deadline(s));
	/* write what the client sent; reads wait for their events */
	relay_both(s, false, false);
}

/* The attempt failed here, not at the server (out of descriptors, memory,
 * buffers or ports): the server is not blamed, and another server would
 * fail the same way, so the client is closed with its own end reason. */
static void connect_local_error(struct proxy_session *s, int err)
{
	struct proxy_worker *w = s->w;
	uint32_t suppressed;

	pool_server_local_error(s->srv);
	if (log_ratelimit_ok(&w->rl_local, util_now_ms(), 1, &suppressed))
		log_warn("worker %u: cannot connect to %s/%s: %s (a local error, not the server's; "
			 "end=local-error; %u similar messages suppressed)",
			 w->id, s->pool->name, s->srv->name, strerror(err), suppressed);
	proxy_session_close(s, PROXY_END_LOCAL_ERROR);
}

/* The connect attempt failed with err (ETIMEDOUT for timeout connect). */
static void connect_failed(struct proxy_session *s, int err)
{
	if (util_errno_local(err)) {
		connect_local_error(s, err);
		return;
	}
	if (log_enabled(LOGL_DEBUG)) {
		char abuf[UTIL_ADDR_STRLEN];

		log_debug("connect to %s/%s (%s) failed: %s", s->pool->name, s->srv->name,
			  util_addr_fmt(&s->srv->addr, abuf, sizeof(abuf)),
			  err == ETIMEDOUT ? "timeout" : strerror(err));
	}
	pool_server_connect_failed(s->srv);
	strip_proxy_header(s);
	if (s->pick.ntried < POOL_PICK_MAX_TRIED)
		s->pick.tried[s->pick.ntried++] = s->srv;
	close_server_fd(s);
	release_server(s);
	if (s->retries_left == 0) {
		proxy_session_close(s, PROXY_END_CONNECT_FAILED);
		return;
	}
	s->retries_left--;
	connect_next(s);
}

/* Open the server socket and start a non-blocking connect.
 * Returns 1 when connected at once, 0 in progress, -1 failed (errno). */
static int start_connect(struct proxy_session *s)
{
	const struct util_addr *a = &s->srv->addr;
	int one = 1, fd;

	fd = socket(a->u.sa.sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	s->sfd = fd;
	ev_io_set(&s->sio, fd, EV_WRITE);
	if (connect(fd, &a->u.sa, a->len) == 0)
		return 1;
	return errno == EINPROGRESS ? 0 : -1;
}

static void enqueue(struct proxy_session *s)
{
	struct pool *p = s->pool;

	if (atomic_fetch_add(&p->queued, 1) >= s->pick.queue_max) {
		atomic_fetch_sub(&p->queued, 1);
		atomic_fetch_add_explicit(&p->queue_full, 1, memory_order_relaxed);
		proxy_session_close(s, PROXY_END_QUEUE_FULL);
		return;
	}
	s->state = PROXY_ST_QUEUED;
	list_add_tail(&s->w->queue, &s->qlink);
	atomic_fetch_add(&s->w->nqueued, 1);
	proxy_session_update_io(s);
	timer_at(s, now_ms(s->w) + s->pick.timeout_queue_ms);
}

/* Connect to srv (acquired by a pick). */
static void connect_to(struct proxy_session *s, struct pool_server *srv)
{
	int rc;

	s->srv = srv;
	s->srv_up = false;
	s->state = PROXY_ST_CONNECTING;
	s->connect_deadline_ms = now_ms(s->w) + s->timeout_connect_ms;
	rc = start_connect(s);
	if (rc < 0) {
		connect_failed(s, errno);
		return;
	}
	/* with the client's first bytes in hand, write them at once: a
	 * connect that is still in progress says EAGAIN (then we wait for
	 * writable), one to a nearby server is usually done already, which
	 * saves a trip through the event loop */
	if (rc == 1)
		server_up(s);
	if (rc == 1 || dir_pending(&s->c2s)) {
		start_relay(s);
		return;
	}
	timer_at(s, s->connect_deadline_ms);
	proxy_session_update_io(s);
}

static void no_server(struct proxy_session *s)
{
	if (s->pick.ntried > 0) {
		proxy_session_close(s, PROXY_END_CONNECT_FAILED);
		return;
	}
	atomic_fetch_add_explicit(&s->pool->no_server, 1, memory_order_relaxed);
	proxy_session_close(s, PROXY_END_NO_SERVER);
}

static void connect_next(struct proxy_session *s)
{
	struct pool_server *srv;

	switch (pool_pick(s->pool, &s->pick, &s->w->rng, &srv)) {
	case POOL_PICK_NONE:
		no_server(s);
		return;
	case POOL_PICK_FULL:
		enqueue(s);
		/* a slot may have freed between the pick and the enqueue */
		if (s->state == PROXY_ST_QUEUED)
			proxy_session_retry_queue(s->w);
		return;
	case POOL_PICK_OK:
		connect_to(s, srv);
		return;
	}
}

void proxy_session_routed(struct proxy_session *s)
{
	atomic_fetch_add_explicit(&s->pool->total_conns, 1, memory_order_relaxed);
	connect_next(s);
}

void proxy_session_retry_queue(struct proxy_worker *w)
{
	/* connecting a queued client can free a slot and come back here:
	 * the outer call then runs the queue once more instead */
	if (w->in_queue_retry) {
		w->queue_retry_again = true;
		return;
	}
	w->in_queue_retry = true;
	do {
		struct list_node *n = w->queue.next;

		w->queue_retry_again = false;
		while (n != &w->queue && !w->queue_retry_again) {
			struct proxy_session *s = list_entry(n, struct proxy_session, qlink);
			struct pool_server *srv;
			enum pool_pick_result r;

			n = n->next;
			r = pool_pick(s->pool, &s->pick, &w->rng, &srv);
			if (r == POOL_PICK_FULL)
				continue;
			leave_queue(s);
			s->state = PROXY_ST_CONNECTING;
			ev_timer_stop(w->loop, &s->timer);
			if (r == POOL_PICK_NONE)
				no_server(s);
			else
				connect_to(s, srv);
		}
	} while (w->queue_retry_again);
	w->in_queue_retry = false;
}

static void on_server_io(struct ev_loop *loop, ev_io *io, int revents)
{
	struct proxy_session *s = UTIL_CONTAINER_OF(io, struct proxy_session, sio);

	(void)loop;
	/* with the client's bytes in hand, their write tells whether the
	 * connect worked (no getsockopt on the common path); with nothing to
	 * write, SO_ERROR does */
	if (!s->srv_up && !dir_pending(&s->c2s) && !probe_connect(s))
		return;
	if (revents & EV_WRITE)
		s->kunwatch_s = false;
	if (s->state == PROXY_ST_CONNECTING)
		start_relay(s);
	else
		relay_both(s, false, (revents & EV_READ) != 0);
}

/* Read what the client sent first, without writing (before and while
 * connecting). Returns false when the session closed. */
static bool prefetch(struct proxy_session *s)
{
	enum proxy_io rc = proxy_relay_read_only(s, &s->c2s, s->cfd);

	if (rc == PROXY_IO_AGAIN)
		return true;
	relay_failed(s, rc);
	return false;
}

/* accept-proxy: collect the client's PROXY header in the c2s buffer. */
static void read_header(struct proxy_session *s)
{
	struct proxy_dir *d = &s->c2s;
	uint32_t bufsize = s->w->e->conf.bufsize;
	struct util_addr src, dst;
	size_t used = 0;
	ssize_t n;

	if (d->buf == NULL) {
		d->buf = proxy_buf_get(s->w);
		if (d->buf == NULL) {
			proxy_session_no_memory(s);
			return;
		}
		d->off = PROXY_BUF_SLACK;
		d->len = 0;
	}
	n = recv(s->cfd, d->buf->data + d->off + d->len, bufsize - d->len, 0);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		proxy_session_close(s, n == 0 ? PROXY_END_CLIENT_CLOSED : PROXY_END_CLIENT_RESET);
		return;
	}
	d->len += (uint32_t)n;
	switch (proxyproto_parse((const uint8_t *)d->buf->data + d->off, d->len, bufsize, &src,
				 &dst, &used)) {
	case PROXYPROTO_INCOMPLETE:
		if (d->len < bufsize)
			return;
		/* a header that fills the buffer is not one */
		__attribute__((fallthrough));
	case PROXYPROTO_INVALID:
		atomic_fetch_add_explicit(&s->fe->proxy_header_errors, 1, memory_order_relaxed);
		proxy_session_close(s, PROXY_END_PROXY_HEADER);
		return;
	case PROXYPROTO_OK:
		break;
	}
	if (src.len != 0) {
		s->client = src;
		s->dst = dst;
	}
	/* the real client is known now: the guard decides on it */
	if (guard_active(s->fe->guard) && !proxy_guard_admit(s->w, s->fe, &s->client, &s->ticket)) {
		proxy_session_close(s, PROXY_END_REFUSED);
		return;
	}
	d->off += (uint32_t)used;
	d->len -= (uint32_t)used;
	/* what followed the header in its segment is the client's first
	 * bytes: counted as read (up=, bytes_in), as the relay counts its reads */
	d->bytes += d->len;
	if (d->len == 0) {
		proxy_buf_put(s->w, d->buf);
		d->buf = NULL;
	}
	s->pick.client_hash = util_addr_hash(&s->client, 0);
	if (s->peek != NULL) { /* TLS routes: the hello comes next */
		proxy_peek_begin(s);
		return;
	}
	connect_next(s);
}

static void on_client_io(struct ev_loop *loop, ev_io *io, int revents)
{
	struct proxy_session *s = UTIL_CONTAINER_OF(io, struct proxy_session, cio);

	(void)loop;
	if (revents & EV_WRITE)
		s->kunwatch_c = false;
	if (s->state == PROXY_ST_HEADER)
		read_header(s);
	else if (s->state == PROXY_ST_PEEK) /* TLS routes */
		proxy_peek_read(s);
	else if (s->state == PROXY_ST_RELAY)
		relay_both(s, (revents & EV_READ) != 0, false);
	else if (s->state == PROXY_ST_CONNECTING && prefetch(s))
		proxy_session_update_io(s);
}

static void on_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct proxy_session *s = UTIL_CONTAINER_OF(t, struct proxy_session, timer);
	uint64_t deadline;

	(void)loop;
	(void)revents;
	switch (s->state) {
	case PROXY_ST_HEADER:
		atomic_fetch_add_explicit(&s->fe->proxy_header_timeouts, 1, memory_order_relaxed);
		proxy_session_close(s, PROXY_END_PROXY_HEADER_TIMEOUT);
		return;
	case PROXY_ST_PEEK: /* TLS routes */
		proxy_peek_timeout(s);
		return;
	case PROXY_ST_QUEUED:
		atomic_fetch_add_explicit(&s->pool->queue_timeouts, 1, memory_order_relaxed);
		proxy_session_close(s, PROXY_END_QUEUE_TIMEOUT);
		return;
	case PROXY_ST_CONNECTING:
		connect_failed(s, ETIMEDOUT);
		return;
	case PROXY_ST_RELAY:
		if (!s->srv_up && now_ms(s->w) + 1 >= s->connect_deadline_ms) {
			connect_failed(s, ETIMEDOUT);
			return;
		}
		/* activity only moves last_ms; the timer catches up lazily.
		 * Bytes the kernel relay moved count as activity too. */
		if (s->kernel && proxy_krelay_active(s))
			s->last_ms = now_ms(s->w);
		deadline = idle_deadline(s);
		if (deadline > now_ms(s->w) + 1) {
			timer_at(s, deadline);
			return;
		}
		proxy_session_close(s, s->kill_at_ms != 0 && s->kill_at_ms <= now_ms(s->w)
					   ? PROXY_END_KILLED
					   : PROXY_END_IDLE_TIMEOUT);
		return;
	case PROXY_ST_CLOSED:
		return;
	}
}

void proxy_session_start(struct proxy_worker *w, struct proxy_frontend *fe, int fd,
			 const struct util_addr *client, const struct guard_ticket *tk)
{
	struct proxy_fe_settings *st = atomic_load_explicit(&fe->settings, memory_order_acquire);
	struct proxy_session *s = calloc(1, sizeof(*s));

	if (s == NULL) {
		struct guard_ticket t = *tk;

		guard_release(&t, util_now_us());
		close(fd);
		atomic_fetch_sub(&fe->cur_conns, 1);
		atomic_fetch_sub(&w->e->cur_conns, 1);
		proxy_worker_slot_freed(w, fe);
		return;
	}
	s->w = w;
	s->fe = fe;
	proxy_frontend_get(fe);
	s->cfd = fd;
	s->sfd = -1;
	s->client = *client;
	s->ticket = *tk;
	s->retries_left = (uint8_t)UTIL_MIN(st->retries, 255);
	s->timeout_connect_ms = st->timeout_connect_ms;
	s->timeout_idle_ms = st->timeout_idle_ms;
	s->timeout_half_closed_ms = st->timeout_half_closed_ms;
	s->start_ms = s->last_ms = now_ms(w);
	s->pick.client_hash = util_addr_hash(client, 0);
	list_init(&s->qlink);
	list_add_tail(&w->sessions, &s->link);
	if (++w->nsessions > w->peak_sessions)
		w->peak_sessions = w->nsessions;
	ev_io_init(&s->cio, on_client_io, fd, EV_READ);
	ev_io_init(&s->sio, on_server_io, -1, EV_WRITE);
	ev_timer_init(&s->timer, on_timer, 0.0, 0.0);
	proxy_krelay_init(s);
	atomic_fetch_add_explicit(&fe->total_conns, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&w->e->total_conns, 1, memory_order_relaxed);
	if (st->nroutes > 0) { /* TLS routes: the pool comes with the hello (peek.c) */
		if (proxy_peek_new(s, st) < 0) {
			proxy_session_close(s, PROXY_END_ERROR);
			return;
		}
	} else {
		s->pool = st->pool;
		pool_get(s->pool);
		atomic_fetch_add_explicit(&s->pool->total_conns, 1, memory_order_relaxed);
	}
	if (st->accept_proxy) {
		/* a slow header holds a connection slot: it gets its own, short
		 * deadline (HAProxy's timeout client plays this part) */
		s->state = PROXY_ST_HEADER;
		timer_at(s, s->start_ms + st->timeout_proxy_header_ms);
		proxy_session_update_io(s);
		return;
	}
	if (s->peek != NULL) {
		proxy_peek_begin(s);
		return;
	}
	/* clients usually speak first: take their bytes now, so the first
	 * write can go out with the connect */
	if (prefetch(s))
		connect_next(s);
}
