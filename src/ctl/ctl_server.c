/* ctl_server: the control socket's I/O in the control thread: listening
 * sockets (UNIX, and HTTP for metrics), clients with a bounded line buffer,
 * pipelined commands answered in order, waiting commands, idle timeouts,
 * and drains with a deadline. A client can never block or crash the loop:
 * long lines, junk, floods and vanishing clients just close that client. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "ctl-int.h"
#include "sluice/log.h"
#include "sluice/pool.h"
#include "sluice/util.h"

/* Room for n more bytes and a NUL. Returns 0, or -1 (b->oom set). */
static int buf_grow(struct ctl_buf *b, size_t n)
{
	size_t cap = UTIL_MAX(b->cap * 2, b->len + n + 256);
	char *d = realloc(b->data, cap);

	if (d == NULL) {
		b->oom = true;
		return -1;
	}
	b->data = d;
	b->cap = cap;
	return 0;
}

void ctl_buf_printf(struct ctl_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (int pass = 0; pass < 2; pass++) {
		size_t room = b->cap - b->len;

		va_start(ap, fmt);
		n = vsnprintf(b->data ? b->data + b->len : NULL, room, fmt, ap);
		va_end(ap);
		if (n < 0)
			return;
		if ((size_t)n < room) {
			b->len += (size_t)n;
			return;
		}
		if (pass == 0 && buf_grow(b, (size_t)n) < 0)
			return;
	}
}

void ctl_buf_append(struct ctl_buf *b, const char *s, size_t n)
{
	if (b->cap - b->len <= n && buf_grow(b, n) < 0)
		return;
	memcpy(b->data + b->len, s, n);
	b->len += n;
	b->data[b->len] = '\0';
}

void ctl_buf_free(struct ctl_buf *b)
{
	free(b->data);
	memset(b, 0, sizeof(*b));
}

void ctl_json_str(struct ctl_buf *b, const char *s)
{
	ctl_buf_printf(b, "\"");
	for (; *s != '\0'; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			ctl_buf_printf(b, "\\%c", ch);
		else if (ch < 0x20)
			ctl_buf_printf(b, "\\u%04x", ch);
		else
			ctl_buf_printf(b, "%c", ch);
	}
	ctl_buf_printf(b, "\"");
}

/* ---- clients ---- */

/* A scrape's body: the shared text, or its compressed form. */
static const struct ctl_buf *body_buf(const struct ctl_client *cl)
{
	return cl->body_gz ? &cl->body->gz : &cl->body->buf;
}

/* Bytes queued for the client and not sent yet. */
static size_t pending(const struct ctl_client *cl)
{
	size_t n = cl->out.len - cl->outoff;

	/* a scrape's body goes out once its headers are queued */
	if (cl->body != NULL && cl->job.kind == CTL_JOB_NONE)
		n += body_buf(cl)->len - cl->bodyoff;
	return n;
}

static void client_free(struct ctl_client *cl)
{
	struct ctl *c = cl->ctl;

	ev_io_stop(c->loop, &cl->io);
	ev_timer_stop(c->loop, &cl->idle);
	ev_timer_stop(c->loop, &cl->wait_timer);
	close(cl->io.fd);
	if (cl->wait_srv != NULL)
		pool_server_put(cl->wait_srv);
	free(cl->wait_add);
	if (cl->job.text != NULL)
		ctl_metrics_put(c, cl->job.text);
	if (cl->body != NULL)
		ctl_metrics_put(c, cl->body);
	ctl_buf_free(&cl->out);
	if (cl->queued)
		list_del(&cl->run);
	list_del(&cl->link);
	if (cl->door != NULL)
		cl->door->nclients--;
	free(cl);
}

/* A complete command line is waiting in the input. */
static bool has_line(const struct ctl_client *cl)
{
	return !cl->http && memchr(cl->in, '\n', cl->inlen) != NULL;
}

/* May the client produce more output now? Its own unsent output and, for
 * user-level doors, everyone's hold it back. */
static bool may_produce(const struct ctl_client *cl)
{
	if (cl->closing || cl->lingering || pending(cl) >= CTL_OUT_SOFT)
		return false;
	return cl->level == CTL_LEVEL_ADMIN || cl->ctl->out_bytes < CTL_OUT_TOTAL_MAX;
}

/* Work the scheduler can do for cl now: send, render, or run a command. */
static bool runnable(const struct ctl_client *cl)
{
	if (pending(cl) > 0 && cl->writable)
		return true;
	if (cl->http && cl->job.kind == CTL_JOB_METRICS)
		return true; /* a scrape helps render what it shares */
	if (!may_produce(cl))
		return false;
	return cl->job.kind != CTL_JOB_NONE || (cl->wait == CTL_WAIT_NONE && has_line(cl));
}

/* Nothing left to do for a client whose input ended. */
static bool finished(const struct ctl_client *cl)
{
	return cl->eof && cl->wait == CTL_WAIT_NONE && cl->job.kind == CTL_JOB_NONE &&
	       !has_line(cl) && pending(cl) == 0 && cl->body == NULL;
}

/* Set the watchers and the queue after any change. Returns -1 when the
 * client was freed. */
static int client_update(struct ctl_client *cl)
{
	struct ctl *c = cl->ctl;
	int ev = 0;

	if (finished(cl)) {
		client_free(cl);
		return -1;
	}
	if (pending(cl) > 0 && !cl->writable)
		ev |= EV_WRITE;
	/* read while there is room for a line, not during a wait; commands
	 * that were read wait in the buffer until the output drains */
	if (cl->lingering ||
	    (!cl->closing && !cl->eof && cl->wait == CTL_WAIT_NONE && cl->inlen < CTL_LINE_MAX &&
	     !(cl->http && (cl->job.kind != CTL_JOB_NONE || cl->body != NULL))))
		ev |= EV_READ;
	if ((cl->io.events & (EV_READ | EV_WRITE)) != ev || !ev_is_active(&cl->io)) {
		ev_io_stop(c->loop, &cl->io);
		if (ev != 0) {
			ev_io_modify(&cl->io, ev);
			ev_io_start(c->loop, &cl->io);
		}
	}
	if (!cl->queued && runnable(cl)) {
		/* the operator's own socket goes first */
		if (cl->level == CTL_LEVEL_ADMIN)
			list_add_tail(c->runq.next, &cl->run); /* before the first */
		else
			list_add_tail(&c->runq, &cl->run);
		cl->queued = true;
		if (!ev_is_active(&c->work)) {
			/* at the next iteration, after what is due now */
			ev_timer_set(&c->work, 0.0, 0.0);
			ev_timer_start(c->loop, &c->work);
		}
	}
	return 0;
}

/* The whole reply is sent. HTTP: half-close and drop what the client
 * still sends, so that closing does not reset the reply away. Returns
 * -1 when the client was freed. */
static int reply_sent(struct ctl_client *cl)
{
	char ch;

	if (cl->out.cap > 2 * CTL_OUT_SOFT)
		ctl_buf_free(&cl->out); /* an idle client holds no big buffer */
	cl->out.len = cl->outoff = 0;
	if (cl->body != NULL) {
		ctl_metrics_put(cl->ctl, cl->body);
		cl->body = NULL;
	}
	if (!cl->closing)
		return 0;
	if (!cl->http) {
		client_free(cl);
		return -1;
	}
	/* nothing unread: closing now cannot reset the reply away, and the
	 * slot is free for the next scrape at once */
	if (recv(cl->io.fd, &ch, 1, MSG_PEEK | MSG_DONTWAIT) <= 0) {
		client_free(cl);
		return -1;
	}
	cl->closing = false;
	cl->lingering = true;
	shutdown(cl->io.fd, SHUT_WR);
	ev_timer_stop(cl->ctl->loop, &cl->idle);
	ev_timer_set(&cl->idle, CTL_HTTP_LINGER_S, 0.0);
	ev_timer_start(cl->ctl->loop, &cl->idle);
	return 0;
}

/* One send of at most CTL_SEND_MAX. Returns -1 when the client is gone. */
static int client_send(struct ctl_client *cl)
{
	const char *p;
	size_t n;
	ssize_t w;

	if (cl->outoff < cl->out.len) {
		p = cl->out.data + cl->outoff;
		n = cl->out.len - cl->outoff;
	} else {
		p = body_buf(cl)->data + cl->bodyoff;
		n = body_buf(cl)->len - cl->bodyoff;
	}
	w = send(cl->io.fd, p, UTIL_MIN(n, CTL_SEND_MAX), MSG_NOSIGNAL | MSG_DONTWAIT);
	if (w < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
			cl->writable = errno == EINTR;
			return 0;
		}
		client_free(cl);
		return -1;
	}
	if (cl->outoff < cl->out.len)
		cl->outoff += (size_t)w;
	else
		cl->bodyoff += (size_t)w;
	if ((size_t)w < UTIL_MIN(n, CTL_SEND_MAX))
		cl->writable = false; /* the socket is full: wait for EV_WRITE */
	/* a reader making progress is not idle */
	if (!cl->lingering)
		ev_timer_again(cl->ctl->loop, &cl->idle);
	if (pending(cl) == 0)
		return reply_sent(cl);
	return 0;
}

/* The answer to an HTTP request that is not a scrape, then close. */
static void http_error(struct ctl_client *cl, enum ctl_http_status st)
{
	static const char body_400[] = "bad request\n";
	static const char body_404[] = "try GET /metrics here\n";
	static const char body_405[] = "only GET and HEAD\n";
	static const char body_408[] = "the request took too long\n";
	const char *reason = "Bad Request", *body = body_400, *extra = "";

	if (st == CTL_HTTP_TIMEOUT) {
		reason = "Request Timeout";
		body = body_408;
	} else if (st == CTL_HTTP_NOT_FOUND) {
		reason = "Not Found";
		body = body_404;
	} else if (st == CTL_HTTP_METHOD) {
		reason = "Method Not Allowed";
		body = body_405;
		extra = "Allow: GET, HEAD\r\n";
	}
	ctl_buf_printf(&cl->out,
		       "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n%s"
		       "Connection: close\r\n\r\n%s",
		       (int)st, reason, strlen(body), extra, body);
	cl->closing = true;
}

/* Look at the request bytes received so far. */
static void http_input(struct ctl_client *cl)
{
	struct ctl_http_req req;
	enum ctl_http_status st = ctl_http_parse(cl->in, cl->inlen, CTL_LINE_MAX, &req);

	if (st == CTL_HTTP_MORE)
		return;
	cl->inlen = 0; /* nothing more is read before the reply */
	if (st != CTL_HTTP_OK) {
		http_error(cl, st);
		return;
	}
	cl->http_head = req.head;
	cl->http_gzip = req.gzip;
	cl->job.kind = CTL_JOB_METRICS; /* the scrape: see scrape_step() */
	/* the request is in: from now on only a reply without progress ends it */
	ev_timer_stop(cl->ctl->loop, &cl->idle);
	cl->idle.repeat = CTL_HTTP_SEND_IDLE_S;
	ev_timer_again(cl->ctl->loop, &cl->idle);
}

/* A scrape: take a share of the current rendering (or start one), help
 * render it, then queue the headers; the body is sent from the shared
 * text itself. */
static void scrape_step(struct ctl_client *cl)
{
	struct ctl *c = cl->ctl;

	if (cl->body == NULL) {
		cl->body = ctl_metrics_get(c, CTL_METRICS_REUSE_MS, util_now_ms());
		if (cl->body == NULL)
			return; /* CTL_METRICS_TEXTS_MAX alive: later */
	}
	if (!cl->body->done && !ctl_metrics_step(c, cl->body))
		return;
	/* compressed once per rendering, for every scrape that accepts it */
	if (cl->http_gzip && !ctl_metrics_gzip_step(cl->body))
		return;
	cl->body_gz = cl->http_gzip && cl->body->gz_done;
	ctl_buf_printf(&cl->out,
		       "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n%s"
		       "Content-Length: %zu\r\nConnection: close\r\n\r\n",
		       cl->body_gz ? "Content-Encoding: gzip\r\nVary: Accept-Encoding\r\n" : "",
		       body_buf(cl)->len);
	if (cl->http_head) {
		ctl_metrics_put(c, cl->body);
		cl->body = NULL;
	}
	cl->job.kind = CTL_JOB_NONE;
	cl->closing = true;
}

/* Run the next complete command line. */
static void run_line(struct ctl_client *cl)
{
	char *nl = memchr(cl->in, '\n', cl->inlen);
	size_t used = (size_t)(nl - cl->in) + 1;
	/* a NUL would hide the rest of the line from the parser */
	bool nul = memchr(cl->in, '\0', used - 1) != NULL;

	*nl = '\0';
	if (nl > cl->in && nl[-1] == '\r')
		nl[-1] = '\0';
	if (nul)
		ctl_buf_printf(&cl->out, "error: unreadable command (NUL byte)\n\n");
	else
		ctl_cmd_run(cl->ctl, cl, cl->level, cl->in, &cl->out);
	memmove(cl->in, cl->in + used, cl->inlen - used);
	cl->inlen -= used;
}

/* One step of work for cl: a send, a part of a reply, or one command, so
 * that no client holds the loop for long. Returns -1 when it was freed. */
static int client_step(struct ctl_client *cl)
{
	if (pending(cl) > 0 && cl->writable)
		return client_send(cl);
	if (cl->http) {
		if (cl->job.kind == CTL_JOB_METRICS)
			scrape_step(cl);
		return 0;
	}
	if (!may_produce(cl))
		return 0;
	if (cl->job.kind != CTL_JOB_NONE)
		ctl_job_step(cl->ctl, &cl->job, &cl->out);
	else if (cl->wait == CTL_WAIT_NONE && has_line(cl))
		run_line(cl);
	return 0;
}

static size_t out_total(struct ctl *c)
{
	size_t n = 0;

	for (struct list_node *i = c->clients.next; i != &c->clients; i = i->next)
		n += list_entry(i, struct ctl_client, link)->out.cap;
	return n;
}

/* The scheduler: clients with work take turns, one step each, until the
 * queue is empty or the slice is used up. Then the thread rests as long
 * as it worked before it takes the next slice: the loop runs its timers
 * in between, and a thread that sleeps half the time is one the kernel
 * wakes at once for a check or an advert even on a busy machine (a
 * thread that never sleeps waits behind everyone else's turn). */
static void on_work(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct ctl *c = UTIL_CONTAINER_OF(w, struct ctl, work);
	uint64_t t0 = util_now_us(), used;

	(void)revents;
	c->out_bytes = out_total(c);
	for (unsigned steps = 0; !list_empty(&c->runq) && steps < CTL_SLICE_STEPS_MAX; steps++) {
		struct ctl_client *cl = list_entry(c->runq.next, struct ctl_client, run);

		list_del(&cl->run);
		cl->queued = false;
		if (client_step(cl) == 0 && client_update(cl) == 0 && cl->queued &&
		    cl->level == CTL_LEVEL_ADMIN) {
			/* an admin client queued itself first again: take turns */
			list_del(&cl->run);
			list_add_tail(&c->runq, &cl->run);
		}
		if (util_now_us() - t0 >= CTL_SLICE_US)
			break;
	}
	if (list_empty(&c->runq))
		return;
	used = util_now_us() - t0;
	ev_timer_set(w, (double)UTIL_MAX(used, CTL_REST_MIN_US) / 1e6, 0.0);
	ev_timer_start(loop, w);
}

/* Read what the client sent: commands wait in the buffer for the
 * scheduler. Returns -1 when the client was freed. */
static int client_read(struct ctl_client *cl)
{
	ssize_t n;

	if (cl->lingering) {
		char drop[4096];

		n = recv(cl->io.fd, drop, sizeof(drop), 0);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
			client_free(cl);
			return -1;
		}
		return 0;
	}
	n = recv(cl->io.fd, cl->in + cl->inlen, CTL_LINE_MAX - cl->inlen, 0);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	if (n < 0 || (n == 0 && cl->http)) {
		client_free(cl);
		return -1;
	}
	if (n == 0) {
		cl->eof = true; /* answer what was sent, then close */
		return 0;
	}
	cl->inlen += (size_t)n;
	if (cl->http) {
		http_input(cl);
		return 0;
	}
	ev_timer_again(cl->ctl->loop, &cl->idle);
	if (cl->inlen == CTL_LINE_MAX && !has_line(cl)) {
		ctl_buf_printf(&cl->out, "error: command line longer than %d bytes\n\n",
			       CTL_LINE_MAX);
		cl->inlen = 0;
		cl->closing = true;
	}
	return 0;
}

static void on_client_io(struct ev_loop *loop, ev_io *io, int revents)
{
	struct ctl_client *cl = UTIL_CONTAINER_OF(io, struct ctl_client, io);

	(void)loop;
	if (revents & EV_WRITE)
		cl->writable = true;
	if ((revents & EV_READ) && client_read(cl) < 0)
		return;
	client_update(cl);
}

static void on_client_idle(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct ctl_client *cl = UTIL_CONTAINER_OF(t, struct ctl_client, idle);

	(void)loop;
	(void)revents;
	if (cl->wait != CTL_WAIT_NONE) {
		ev_timer_again(cl->ctl->loop, &cl->idle);
		return;
	}
	if (cl->http && !cl->closing && !cl->lingering && cl->job.kind == CTL_JOB_NONE &&
	    cl->body == NULL) {
		/* the request is not complete by its deadline: say so, briefly */
		http_error(cl, CTL_HTTP_TIMEOUT);
		cl->inlen = 0;
		ev_timer_set(&cl->idle, CTL_HTTP_LINGER_S, 0.0);
		ev_timer_start(cl->ctl->loop, &cl->idle);
		client_update(cl);
		return;
	}
	client_free(cl);
}

static void on_wait_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct ctl_client *cl = UTIL_CONTAINER_OF(t, struct ctl_client, wait_timer);
	char c;

	(void)loop;
	(void)revents;
	/* input is not read during a wait: notice a client that went away,
	 * or it would hold one of the limited slots until the timeout */
	if (recv(cl->io.fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) == 0) {
		client_free(cl);
		return;
	}
	if (!ctl_wait_check(cl->ctl, cl, util_now_ms(), &cl->out))
		return;
	ev_timer_stop(cl->ctl->loop, &cl->wait_timer);
	ev_timer_again(cl->ctl->loop, &cl->idle);
	/* the lines that came behind the wait run from the scheduler */
	client_update(cl);
}

/* Refuse a client over its door's limit, saying so where the protocol
 * allows it (best effort: the socket is new, its buffer has room). */
static void refuse(struct ctl_listener *l, int fd)
{
	static const char msg[] = "error: too many control clients\n\n";
	static const char busy[] = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
				   "Connection: close\r\n\r\n";
	struct ctl *c = l->ctl;

	if (send(fd, l->http ? busy : msg, l->http ? sizeof(busy) - 1 : sizeof(msg) - 1,
		 MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
		/* the client is gone anyway */
	}
	close(fd);
	log_ratelimited(&c->rl, util_now_ms(), 1, LOGL_WARNING,
			"control: refused a client: %u clients already connected to %s, its limit",
			l->nclients, l->http ? "the metrics port" : l->path);
}

static void on_accept(struct ev_loop *loop, ev_io *io, int revents)
{
	struct ctl_listener *l = UTIL_CONTAINER_OF(io, struct ctl_listener, io);
	struct ctl *c = l->ctl;

	(void)loop;
	(void)revents;
	for (int i = 0; i < 16; i++) {
		struct ctl_client *cl;
		int fd = accept4(io->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0)
			return;
		if (l->nclients >= l->max_clients || (cl = calloc(1, sizeof(*cl))) == NULL) {
			refuse(l, fd);
			continue;
		}
		cl->ctl = c;
		cl->door = l;
		cl->level = l->level;
		cl->http = l->http;
		cl->writable = true;
		list_add_tail(&c->clients, &cl->link);
		l->nclients++;
		ev_io_init(&cl->io, on_client_io, fd, EV_READ);
		ev_io_start(c->loop, &cl->io);
		ev_init(&cl->idle, on_client_idle);
		/* metrics: the whole request within its deadline, not reset by
		 * a byte now and then */
		cl->idle.repeat = l->http ? CTL_HTTP_REQUEST_S : CTL_IDLE_TIMEOUT_S;
		ev_timer_again(c->loop, &cl->idle);
		ev_timer_init(&cl->wait_timer, on_wait_timer, 0.01, 0.01);
	}
}

/* Called by ctl_cmd when a command starts waiting on cl. */
void ctl_client_wait_start(struct ctl_client *cl)
{
	ev_timer_start(cl->ctl->loop, &cl->wait_timer);
}

unsigned ctl_fds_max(size_t ncontrol, bool metrics)
{
	return (unsigned)ncontrol * (CTL_CONTROL_CLIENTS_MAX + 1) +
	       (metrics ? CTL_METRICS_CLIENTS_MAX + 1 : 0);
}

/* ---- listening ---- */

static struct ctl_listener *add_listener(struct ctl *c, int fd, enum ctl_level level, bool http,
					 const char *path)
{
	struct ctl_listener *l = calloc(1, sizeof(*l));

	if (l == NULL)
		return NULL;
	l->ctl = c;
	l->level = level;
	l->http = http;
	l->max_clients = http ? CTL_METRICS_CLIENTS_MAX : CTL_CONTROL_CLIENTS_MAX;
	util_strlcpy(l->path, path, sizeof(l->path));
	ev_io_init(&l->io, on_accept, fd, EV_READ);
	ev_io_start(c->loop, &l->io);
	list_add_tail(&c->listeners, &l->link);
	return l;
}

/* mkdir -p for the socket's directory. */
static int make_parent_dir(const char *path)
{
	char dir[108];
	char *slash;

	util_strlcpy(dir, path, sizeof(dir));
	slash = strrchr(dir, '/');
	if (slash == NULL || slash == dir)
		return 0;
	*slash = '\0';
	for (char *p = dir + 1; *p != '\0'; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(dir, 0755) < 0 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	return mkdir(dir, 0755) < 0 && errno != EEXIST ? -1 : 0;
}

int ctl_listen_unix(struct ctl *c, const char *path, unsigned mode, enum ctl_level level,
		    bool replace_live, char *err, size_t errlen)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	int fd;

	util_strlcpy(sun.sun_path, path, sizeof(sun.sun_path));
	if (make_parent_dir(path) < 0) {
		snprintf(err, errlen, "control socket %s: cannot create its directory: %s", path,
			 strerror(errno));
		return -1;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto fail;
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		int probe;

		if (errno != EADDRINUSE)
			goto fail;
		/* someone answering there is a live daemon; nobody is a stale file */
		probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (!replace_live && probe >= 0 &&
		    connect(probe, (struct sockaddr *)&sun, sizeof(sun)) == 0) {
			close(probe);
			close(fd);
			snprintf(err, errlen, "control socket %s is in use by a running process",
				 path);
			return -1;
		}
		if (probe >= 0)
			close(probe);
		unlink(path);
		if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0)
			goto fail;
	}
	if (chmod(path, mode) < 0 || listen(fd, 64) < 0)
		goto fail;
	{
		struct ctl_listener *l = add_listener(c, fd, level, false, path);
		struct stat st;

		if (l == NULL)
			goto fail;
		if (stat(path, &st) == 0) {
			l->ino = st.st_ino;
			l->dev = st.st_dev;
		}
	}
	return 0;
fail:
	snprintf(err, errlen, "control socket %s: %s", path, strerror(errno));
	if (fd >= 0)
		close(fd);
	return -1;
}

int ctl_listen_metrics(struct ctl *c, const struct util_addr *addr, int fd, char *err,
		       size_t errlen)
{
	char abuf[UTIL_ADDR_STRLEN];
	int one = 1;

	if (fd >= 0) {
		fcntl(fd, F_SETFL, O_NONBLOCK);
		if (add_listener(c, fd, CTL_LEVEL_USER, true, "") == NULL)
			goto fail;
		return 0;
	}
	fd = socket(addr->u.sa.sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto fail;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, &addr->u.sa, addr->len) < 0 || listen(fd, 64) < 0)
		goto fail;
	if (add_listener(c, fd, CTL_LEVEL_USER, true, "") == NULL)
		goto fail;
	return 0;
fail:
	snprintf(err, errlen, "metrics on %s: %s", util_addr_fmt(addr, abuf, sizeof(abuf)),
		 strerror(errno));
	if (fd >= 0)
		close(fd);
	return -1;
}

/* ---- drains with a deadline ---- */

static void drain_free(struct ctl_drain *d)
{
	ev_timer_stop(d->ctl->loop, &d->timer);
	list_del(&d->link);
	pool_server_put(d->srv);
	free(d);
}

static void on_drain_deadline(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct ctl_drain *d = UTIL_CONTAINER_OF(t, struct ctl_drain, timer);
	struct ctl *c = d->ctl;
	uint32_t n = atomic_load(&d->srv->cur_conns);

	(void)loop;
	(void)revents;
	if (n > 0 && c->hooks.close_server != NULL) {
		/* spread the closes so the clients do not reconnect at once */
		uint32_t spread = UTIL_MIN(2000, UTIL_MAX(100, n * 10));

		log_notice("server %s/%s: drain deadline passed, closing %u connections over %ums",
			   d->srv->pool->name, d->srv->name, n, spread);
		c->hooks.close_server(c->hooks.arg, d->srv, spread);
	}
	drain_free(d);
}

void ctl_drain_cancel(struct ctl *c, struct pool_server *s)
{
	for (struct list_node *n = c->drains.next; n != &c->drains;) {
		struct ctl_drain *d = list_entry(n, struct ctl_drain, link);

		n = n->next;
		if (d->srv == s)
			drain_free(d);
	}
}

void ctl_drain_schedule(struct ctl *c, struct pool_server *s, uint64_t delay_ms)
{
	struct ctl_drain *d;

	ctl_drain_cancel(c, s);
	d = calloc(1, sizeof(*d));
	if (d == NULL)
		return;
	d->ctl = c;
	d->srv = s;
	pool_server_get(s);
	ev_timer_init(&d->timer, on_drain_deadline, (double)delay_ms / 1000.0, 0.0);
	ev_timer_start(c->loop, &d->timer);
	list_add_tail(&c->drains, &d->link);
}

/* Close a listener; its socket file goes only if it is still ours (after
 * a binary upgrade the path belongs to the new process). */
static void listener_free(struct ctl_listener *l)
{
	struct stat st;

	/* its clients finish on their own; they just stop counting here */
	for (struct list_node *n = l->ctl->clients.next; n != &l->ctl->clients; n = n->next) {
		struct ctl_client *cl = list_entry(n, struct ctl_client, link);

		if (cl->door == l)
			cl->door = NULL;
	}
	ev_io_stop(l->ctl->loop, &l->io);
	if (l->path[0] != '\0' && stat(l->path, &st) == 0 && st.st_ino == l->ino &&
	    st.st_dev == l->dev)
		unlink(l->path);
	close(l->io.fd);
	list_del(&l->link);
	free(l);
}

void ctl_changed(struct ctl *c)
{
	if (c->state_file[0] != '\0' && ctl_state_save(c) < 0)
		log_err("state-file %s: cannot write: %s", c->state_file, strerror(errno));
}

void ctl_state_changed(struct ctl *c)
{
	ctl_changed(c);
}

struct ctl *ctl_new(struct ev_loop *loop, const struct ctl_hooks *hooks, const char *state_file)
{
	struct ctl *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return NULL;
	c->loop = loop;
	c->hooks = *hooks;
	if (state_file != NULL)
		util_strlcpy(c->state_file, state_file, sizeof(c->state_file));
	list_init(&c->listeners);
	list_init(&c->clients);
	list_init(&c->drains);
	list_init(&c->runq);
	ev_init(&c->work, on_work);
	return c;
}

void ctl_free(struct ctl *c)
{
	if (c == NULL)
		return;
	while (!list_empty(&c->clients))
		client_free(list_entry(c->clients.next, struct ctl_client, link));
	while (!list_empty(&c->drains))
		drain_free(list_entry(c->drains.next, struct ctl_drain, link));
	while (!list_empty(&c->listeners))
		listener_free(list_entry(c->listeners.next, struct ctl_listener, link));
	free(c->pending);
	ev_timer_stop(c->loop, &c->work);
	if (c->metrics != NULL)
		ctl_metrics_put(c, c->metrics);
	free(c);
}

void ctl_close_metrics(struct ctl *c)
{
	for (struct list_node *n = c->listeners.next; n != &c->listeners;) {
		struct ctl_listener *l = list_entry(n, struct ctl_listener, link);

		n = n->next;
		if (l->http)
			listener_free(l);
	}
}

int ctl_metrics_fd(const struct ctl *c)
{
	for (const struct list_node *n = c->listeners.next; n != &c->listeners; n = n->next) {
		const struct ctl_listener *l = list_entry(n, struct ctl_listener, link);

		if (l->http)
			return l->io.fd;
	}
	return -1;
}
