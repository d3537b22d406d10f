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
		if (pass == 0) {
			size_t cap = UTIL_MAX(b->cap * 2, b->len + (size_t)n + 256);
			char *d = realloc(b->data, cap);

			if (d == NULL) {
				b->oom = true;
				return;
			}
			b->data = d;
			b->cap = cap;
		}
	}
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

static void client_free(struct ctl_client *cl)
{
	struct ctl *c = cl->ctl;

	ev_io_stop(c->loop, &cl->io);
	ev_timer_stop(c->loop, &cl->idle);
	ev_timer_stop(c->loop, &cl->wait_timer);
	close(cl->io.fd);
	if (cl->wait_srv != NULL)
		pool_server_put(cl->wait_srv);
	ctl_buf_free(&cl->out);
	list_del(&cl->link);
	c->nclients--;
	free(cl);
}

static void client_update_io(struct ctl_client *cl)
{
	int ev = 0;

	if (cl->outoff < cl->out.len)
		ev |= EV_WRITE;
	/* stop reading while waiting, closing or holding a big reply */
	if (!cl->closing && cl->wait == CTL_WAIT_NONE && cl->out.len - cl->outoff < CTL_OUT_MAX)
		ev |= EV_READ;
	if ((cl->io.events & (EV_READ | EV_WRITE)) == ev && ev_is_active(&cl->io))
		return;
	ev_io_stop(cl->ctl->loop, &cl->io);
	if (ev != 0) {
		ev_io_modify(&cl->io, ev);
		ev_io_start(cl->ctl->loop, &cl->io);
	}
}

/* Write what is pending. Returns -1 when the client is gone (freed). */
static int client_flush(struct ctl_client *cl)
{
	while (cl->outoff < cl->out.len) {
		ssize_t n = send(cl->io.fd, cl->out.data + cl->outoff, cl->out.len - cl->outoff,
				 MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			client_free(cl);
			return -1;
		}
		cl->outoff += (size_t)n;
	}
	if (cl->outoff == cl->out.len) {
		cl->out.len = cl->outoff = 0;
		if (cl->closing) {
			client_free(cl);
			return -1;
		}
	}
	client_update_io(cl);
	return 0;
}

static void http_request(struct ctl_client *cl)
{
	struct ctl_buf body = { 0 };
	bool metrics = strncmp(cl->in, "GET /metrics ", 13) == 0 ||
		       strncmp(cl->in, "GET /metrics?", 13) == 0;

	if (metrics) {
		ctl_metrics(cl->ctl, &body);
		ctl_buf_printf(&cl->out,
			       "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n"
			       "Content-Length: %zu\r\nConnection: close\r\n\r\n",
			       body.len);
		if (body.len > 0)
			ctl_buf_printf(&cl->out, "%.*s", (int)body.len, body.data);
	} else {
		ctl_buf_printf(&cl->out, "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\n"
					 "Content-Length: 22\r\nConnection: close\r\n\r\n"
					 "try GET /metrics here\n");
	}
	ctl_buf_free(&body);
	cl->closing = true;
}

/* Run the complete lines in the input buffer, in order. A waiting
 * command holds the rest until it ends. */
static void client_run_lines(struct ctl_client *cl)
{
	while (cl->wait == CTL_WAIT_NONE && !cl->closing) {
		char *nl = memchr(cl->in, '\n', cl->inlen);
		size_t used;

		if (nl == NULL)
			break;
		used = (size_t)(nl - cl->in) + 1;
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
}

static void on_client_io(struct ev_loop *loop, ev_io *io, int revents)
{
	struct ctl_client *cl = UTIL_CONTAINER_OF(io, struct ctl_client, io);

	(void)loop;
	if ((revents & EV_READ) && !cl->closing && cl->wait == CTL_WAIT_NONE) {
		ssize_t n = recv(io->fd, cl->in + cl->inlen, CTL_LINE_MAX - cl->inlen, 0);

		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
			client_free(cl);
			return;
		}
		if (n > 0) {
			cl->inlen += (size_t)n;
			ev_timer_again(cl->ctl->loop, &cl->idle);
			if (cl->http) {
				cl->in[cl->inlen] = '\0';
				if (strstr(cl->in, "\r\n\r\n") != NULL || strstr(cl->in, "\n\n"))
					http_request(cl);
				else if (cl->inlen == CTL_LINE_MAX)
					cl->closing = true;
			} else {
				client_run_lines(cl);
				if (cl->inlen == CTL_LINE_MAX && cl->wait == CTL_WAIT_NONE) {
					ctl_buf_printf(&cl->out, "error: command line longer than %d "
								 "bytes\n\n",
						       CTL_LINE_MAX);
					cl->closing = true;
				}
			}
		}
	}
	client_flush(cl);
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
	/* the lines that came behind the wait run now */
	client_run_lines(cl);
	client_flush(cl);
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
		if (c->nclients >= CTL_MAX_CLIENTS || (cl = calloc(1, sizeof(*cl))) == NULL) {
			static const char msg[] = "error: too many control clients\n\n";

			if (!l->http && send(fd, msg, sizeof(msg) - 1, MSG_NOSIGNAL) < 0) {
				/* the client is gone anyway */
			}
			close(fd);
			log_ratelimited(&c->rl, util_now_ms(), 1, LOGL_WARNING,
					"control: refused a client: %u clients already connected",
					c->nclients);
			continue;
		}
		cl->ctl = c;
		cl->level = l->level;
		cl->http = l->http;
		list_add_tail(&c->clients, &cl->link);
		c->nclients++;
		ev_io_init(&cl->io, on_client_io, fd, EV_READ);
		ev_io_start(c->loop, &cl->io);
		ev_init(&cl->idle, on_client_idle);
		cl->idle.repeat = CTL_IDLE_TIMEOUT_S;
		ev_timer_again(c->loop, &cl->idle);
		ev_timer_init(&cl->wait_timer, on_wait_timer, 0.01, 0.01);
	}
}

/* Called by ctl_cmd when a command starts waiting on cl. */
void ctl_client_wait_start(struct ctl_client *cl);
void ctl_client_wait_start(struct ctl_client *cl)
{
	ev_timer_start(cl->ctl->loop, &cl->wait_timer);
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
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
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
