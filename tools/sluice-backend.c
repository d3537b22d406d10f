/* sluice-backend: a fast single-process test/demo backend (http, echo, sink,
 * source) used by `make demo`, tools/bench and tests. One libev loop; an idle
 * connection holds no buffer: data is read into and written from shared
 * scratch space and only leftovers are copied to per-connection heap buffers. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <ev.h>

#include "sluice/util.h"

#define BE_MAX_LISTENERS 32
#define BE_SCRATCH_SIZE (256 * 1024)
#define BE_INBUF_MAX BE_SCRATCH_SIZE	  /* most unconsumed input we hold */
#define BE_OUT_HIGH (BE_SCRATCH_SIZE / 2) /* stop answering pipelined requests */
#define BE_LINGER_S 5.0
#define BE_MAX_STEPS 16 /* reads per event, so one busy client cannot starve the rest */
#define BE_MAX_BYTES (1ULL << 40)

enum be_mode { BE_HTTP, BE_ECHO, BE_SINK, BE_SOURCE };

struct be_listener {
	ev_io io;
	int fd;
	char name[64];
};

/* A heap buffer taken when leftovers must survive an event; freed when empty. */
struct be_buf {
	char *data;
	size_t off, len, cap; /* valid bytes are data[off, len) */
};

/* Owned by the connection list; freed by be_conn_close(). */
struct be_conn {
	ev_io io;
	ev_timer linger;
	int fd;
	int events;
	const struct be_listener *lsn;
	struct be_conn *prev, *next;
	struct be_buf in, out;
	uint64_t filler_left; /* bytes to send after `out` (/bytes/N, source) */
	uint64_t count;	      /* sink: bytes received */
	bool rd_eof;	      /* peer sent FIN */
	bool close_after;     /* close once all output is written */
	bool shut_after;      /* echo: shutdown(SHUT_WR) once output is written */
	bool wr_shut;
	bool lingering; /* output done, discarding input until EOF */
};

static enum be_mode g_mode = BE_HTTP;
static const char *g_name;
static struct ev_loop *g_loop;
static struct be_listener g_lsn[BE_MAX_LISTENERS];
static size_t g_nlsn;
static struct be_conn *g_conns;
static int g_spare_fd = -1;
static ev_timer g_accept_pause;
static char g_scratch_in[BE_SCRATCH_SIZE];
static char g_scratch_out[BE_SCRATCH_SIZE];
static char g_filler[BE_SCRATCH_SIZE];

static void be_conn_cb(struct ev_loop *loop, ev_io *w, int revents);
static void be_conn_run(struct be_conn *c);

static void be_buf_free(struct be_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->off = b->len = b->cap = 0;
}

static size_t be_buf_used(const struct be_buf *b)
{
	return b->len - b->off;
}

/* Keep the unconsumed bytes p[0, n) in b; p may point into b itself. The
 * buffer is sized to the need (4 KiB at least), never above max.
 * Returns 0 or -1 when out of memory or too large. */
static int be_buf_keep(struct be_buf *b, const char *p, size_t n, size_t max)
{
	if (n == 0) {
		be_buf_free(b);
		return 0;
	}
	if (n > max)
		return -1;
	if (b->data && p >= b->data && p < b->data + b->cap) {
		memmove(b->data, p, n);
	} else {
		if (b->cap < n) {
			size_t cap = UTIL_MAX(n, (size_t)4096);
			char *d = malloc(cap);

			if (!d)
				return -1;
			free(b->data);
			b->data = d;
			b->cap = cap;
		}
		memcpy(b->data, p, n);
	}
	b->off = 0;
	b->len = n;
	return 0;
}

/* Make room to read into b, growing it up to max. Returns free bytes (0 when
 * full at max or out of memory). */
static size_t be_buf_room(struct be_buf *b, size_t max)
{
	if (b->len == b->cap && b->cap < max) {
		size_t cap = UTIL_MIN(b->cap * 2, max);
		char *d = realloc(b->data, cap);

		if (!d)
			return 0;
		b->data = d;
		b->cap = cap;
	}
	return b->cap - b->len;
}

static void be_conn_close(struct be_conn *c)
{
	ev_io_stop(g_loop, &c->io);
	ev_timer_stop(g_loop, &c->linger);
	close(c->fd);
	be_buf_free(&c->in);
	be_buf_free(&c->out);
	if (c->prev)
		c->prev->next = c->next;
	else
		g_conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	free(c);
}

static void be_conn_want(struct be_conn *c, int events)
{
	if (c->events == events)
		return;
	ev_io_stop(g_loop, &c->io);
	c->events = events;
	if (events) {
		ev_io_set(&c->io, c->fd, events);
		ev_io_start(g_loop, &c->io);
	}
}

static void be_linger_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	be_conn_close(UTIL_CONTAINER_OF(w, struct be_conn, linger));
}

/* Find "\r\n\r\n" in p[0, n); returns the head length including it, or 0. */
static size_t be_http_head_len(const char *p, size_t n)
{
	for (size_t i = 3; i < n; i++)
		if (p[i] == '\n' && p[i - 1] == '\r' && p[i - 2] == '\n' && p[i - 3] == '\r')
			return i + 1;
	return 0;
}

/* Does the line [p, e) start with header name h (case-insensitive, then ':')?
 * Returns the value start with leading blanks skipped, or NULL. */
static const char *be_http_header(const char *p, const char *e, const char *h)
{
	size_t hl = strlen(h);

	if ((size_t)(e - p) <= hl || strncasecmp(p, h, hl) != 0 || p[hl] != ':')
		return NULL;
	p += hl + 1;
	while (p < e && (*p == ' ' || *p == '\t'))
		p++;
	return p;
}

struct be_http_req {
	uint64_t bytes;	   /* body size asked by /bytes/N, or UINT64_MAX */
	uint64_t body_len; /* request body (Content-Length) to skip */
	bool close;
	bool bad;
};

/* Parse a complete request head p[0, n). Never fails hard: a malformed head
 * is answered with 400 and the connection closed. */
static void be_http_parse(const char *p, size_t n, struct be_http_req *r)
{
	const char *e = p + n, *sp1, *sp2, *eol;
	bool http10;

	memset(r, 0, sizeof(*r));
	r->bytes = UINT64_MAX;
	eol = memchr(p, '\n', n);
	sp1 = memchr(p, ' ', (size_t)(eol - p));
	sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(eol - sp1 - 1)) : NULL;
	if (!sp1 || !sp2 || eol - sp2 < 9 || strncmp(sp2 + 1, "HTTP/1.", 7) != 0) {
		r->bad = true;
		r->close = true;
		return;
	}
	http10 = sp2[8] == '0';
	r->close = http10;
	if (sp2 - sp1 > 8 && strncmp(sp1 + 1, "/bytes/", 7) == 0) {
		char num[24];
		size_t nl = (size_t)(sp2 - sp1 - 8);
		long v;

		if (nl < sizeof(num)) {
			memcpy(num, sp1 + 8, nl);
			num[nl] = '\0';
			if (util_parse_long(num, 0, (long)BE_MAX_BYTES, &v) == 0)
				r->bytes = (uint64_t)v;
		}
	}
	for (p = eol + 1; p < e; p = eol + 1) {
		const char *v;

		eol = memchr(p, '\n', (size_t)(e - p));
		if (!eol)
			break;
		if ((v = be_http_header(p, eol, "connection")) != NULL) {
			if (strncasecmp(v, "close", 5) == 0)
				r->close = true;
			else if (strncasecmp(v, "keep-alive", 10) == 0)
				r->close = false;
		} else if ((v = be_http_header(p, eol, "content-length")) != NULL) {
			r->body_len = strtoull(v, NULL, 10);
		}
	}
}

/* Answer the complete requests in in[0, n) into the output scratch.
 * Returns the number of input bytes consumed; sets *olen. */
static size_t be_http_process(struct be_conn *c, const char *in, size_t n, size_t *olen)
{
	size_t used = 0, o = 0;

	while (used < n && o < BE_OUT_HIGH && c->filler_left == 0 && !c->close_after) {
		struct be_http_req r;
		size_t hl = be_http_head_len(in + used, n - used);
		char body[96];
		size_t blen = 0;
		int k;

		if (hl == 0)
			break;
		be_http_parse(in + used, hl, &r);
		if (r.body_len > n - used - hl)
			break; /* wait for the whole body; bodies are small in tests */
		used += hl + (size_t)r.body_len;
		if (r.bad) {
			k = snprintf(g_scratch_out + o, BE_SCRATCH_SIZE - o,
				     "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n"
				     "Connection: close\r\n\r\n");
			o += (size_t)k;
			c->close_after = true;
			break;
		}
		if (r.bytes == UINT64_MAX) {
			k = snprintf(body, sizeof(body), "hello from %s\n",
				     g_name ? g_name : c->lsn->name);
			blen = UTIL_MIN((size_t)k, sizeof(body) - 1);
		}
		k = snprintf(g_scratch_out + o, BE_SCRATCH_SIZE - o,
			     "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
			     "Content-Length: %" PRIu64 "\r\n%s\r\n",
			     r.bytes == UINT64_MAX ? (uint64_t)blen : r.bytes,
			     r.close ? "Connection: close\r\n" : "");
		o += (size_t)k;
		if (r.bytes == UINT64_MAX) {
			memcpy(g_scratch_out + o, body, blen);
			o += blen;
		} else if (r.bytes <= BE_SCRATCH_SIZE - o) {
			memset(g_scratch_out + o, 'x', (size_t)r.bytes);
			o += (size_t)r.bytes;
		} else {
			c->filler_left = r.bytes;
		}
		if (r.close)
			c->close_after = true;
	}
	*olen = o;
	return used;
}

/* Consume input p[0, n) according to the mode, producing output into
 * g_scratch_out. Returns bytes consumed (the rest is kept for later). */
static size_t be_process(struct be_conn *c, const char *p, size_t n, size_t *olen)
{
	*olen = 0;
	switch (g_mode) {
	case BE_HTTP:
		return be_http_process(c, p, n, olen);
	case BE_ECHO:
		*olen = n; /* the caller sends the input itself */
		return n;
	case BE_SINK:
		c->count += n;
		return n;
	case BE_SOURCE: {
		const char *nl = memchr(p, '\n', n);
		char num[24];
		size_t len;
		long v = 0;

		if (c->close_after || c->filler_left)
			return n; /* ignore anything after the size line */
		if (!nl) {
			if (n >= sizeof(num))
				c->close_after = true; /* garbage: just close */
			return 0;
		}
		len = (size_t)(nl - p);
		if (len && p[len - 1] == '\r')
			len--;
		if (len < sizeof(num)) {
			memcpy(num, p, len);
			num[len] = '\0';
			if (util_parse_long(num, 0, (long)BE_MAX_BYTES, &v) != 0)
				v = 0;
		}
		c->filler_left = (uint64_t)v;
		c->close_after = true;
		return n;
	}
	}
	return n;
}

/* Write p[0, n). Returns bytes written (maybe short), or -1 on a hard error. */
static ssize_t be_write(struct be_conn *c, const char *p, size_t n)
{
	ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);

	if (w < 0)
		return (errno == EAGAIN || errno == EINTR) ? 0 : -1;
	return w;
}

/* Flush heap output then filler. Returns 1 when all written, 0 when it would
 * block, -1 on error. */
static int be_flush(struct be_conn *c)
{
	while (be_buf_used(&c->out)) {
		ssize_t w = be_write(c, c->out.data + c->out.off, be_buf_used(&c->out));

		if (w <= 0)
			return (int)w;
		c->out.off += (size_t)w;
	}
	be_buf_free(&c->out);
	while (c->filler_left) {
		ssize_t w =
		    be_write(c, g_filler, (size_t)UTIL_MIN(c->filler_left, sizeof(g_filler)));

		if (w <= 0)
			return (int)w;
		c->filler_left -= (uint64_t)w;
	}
	return 1;
}

/* Output finished and close_after set: close now when nothing unread can
 * provoke a reset, else shut our side and discard input until EOF. */
static void be_conn_finish(struct be_conn *c)
{
	if (c->rd_eof || be_buf_used(&c->in) == 0) {
		be_conn_close(c);
		return;
	}
	be_buf_free(&c->in);
	shutdown(c->fd, SHUT_WR);
	c->lingering = true;
	ev_timer_init(&c->linger, be_linger_cb, BE_LINGER_S, 0);
	ev_timer_start(g_loop, &c->linger);
	be_conn_want(c, EV_READ);
}

/* Read once into the heap buffer (when it holds a partial request) or the
 * input scratch. Returns >0 bytes, 0 would block, -1 EOF, -2 error; *p and *n
 * describe all pending input. */
static int be_read(struct be_conn *c, char **p, size_t *n)
{
	ssize_t r;
	char *dst;
	size_t room;

	if (be_buf_used(&c->in)) {
		room = be_buf_room(&c->in, BE_INBUF_MAX);
		if (room == 0)
			return -2; /* request head too large */
		dst = c->in.data + c->in.len;
	} else {
		dst = g_scratch_in;
		room = sizeof(g_scratch_in);
	}
	r = recv(c->fd, dst, room, 0);
	if (r < 0)
		return (errno == EAGAIN || errno == EINTR) ? 0 : -2;
	if (r == 0)
		return -1;
	if (be_buf_used(&c->in)) {
		c->in.len += (size_t)r;
		*p = c->in.data + c->in.off;
		*n = be_buf_used(&c->in);
	} else {
		*p = g_scratch_in;
		*n = (size_t)r;
	}
	return 1;
}

/* Send src[0, olen) (what be_process() produced); keep what the socket did
 * not take. Returns 0, or -1 after closing c. */
static int be_emit(struct be_conn *c, const char *src, size_t olen)
{
	ssize_t w = 0;

	if (olen) {
		w = be_write(c, src, olen);
		if (w < 0) {
			be_conn_close(c);
			return -1;
		}
	}
	if ((size_t)w < olen &&
	    be_buf_keep(&c->out, src + w, olen - (size_t)w, BE_SCRATCH_SIZE) < 0) {
		be_conn_close(c);
		return -1;
	}
	return 0;
}

/* Drive the connection as far as it goes without blocking; may free c. */
static void be_conn_run(struct be_conn *c)
{
	for (int step = 0; step < BE_MAX_STEPS; step++) {
		char *p;
		size_t n, used, olen;
		int rc;

		if (c->lingering) {
			ssize_t r = recv(c->fd, g_scratch_in, sizeof(g_scratch_in), 0);

			if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR))
				be_conn_close(c);
			return;
		}
		rc = be_flush(c);
		if (rc < 0) {
			be_conn_close(c);
			return;
		}
		if (rc == 0) {
			be_conn_want(c, EV_WRITE);
			return;
		}
		if (c->close_after) {
			be_conn_finish(c);
			return;
		}
		if (c->shut_after && !c->wr_shut) {
			shutdown(c->fd, SHUT_WR);
			c->wr_shut = true;
		}
		/* Pending input (a pipelined request held back while output drained). */
		if (be_buf_used(&c->in) && g_mode == BE_HTTP) {
			used = be_process(c, c->in.data + c->in.off, be_buf_used(&c->in), &olen);
			if (used) {
				c->in.off += used;
				if (be_buf_keep(&c->in, c->in.data + c->in.off, be_buf_used(&c->in),
						BE_INBUF_MAX) < 0) {
					be_conn_close(c);
					return;
				}
				if (be_emit(c, g_scratch_out, olen) < 0)
					return;
				continue;
			}
		}
		if (c->rd_eof) {
			if (g_mode == BE_SINK) {
				int k = snprintf(g_scratch_out, sizeof(g_scratch_out),
						 "%" PRIu64 "\n", c->count);

				c->close_after = true;
				if (be_emit(c, g_scratch_out, (size_t)k) < 0)
					return;
				continue;
			}
			if (g_mode == BE_ECHO && !c->wr_shut) {
				c->shut_after = true;
				continue;
			}
			be_conn_close(c);
			return;
		}
		rc = be_read(c, &p, &n);
		if (rc == 0) {
			be_conn_want(c, EV_READ);
			return;
		}
		if (rc == -2) {
			be_conn_close(c);
			return;
		}
		if (rc == -1) {
			c->rd_eof = true;
			continue;
		}
		used = be_process(c, p, n, &olen);
		if (be_buf_keep(&c->in, p + used, n - used, BE_INBUF_MAX) < 0) {
			be_conn_close(c);
			return;
		}
		if (be_emit(c, g_mode == BE_ECHO ? p : g_scratch_out, olen) < 0)
			return;
	}
	/* Still busy: come back on the next loop iteration. A writable socket
	 * fires at once, which also resumes held-back pipelined requests. */
	be_conn_want(c, be_buf_used(&c->out) || c->filler_left ||
				(g_mode == BE_HTTP && be_buf_used(&c->in))
			    ? EV_WRITE
			    : EV_READ);
}

static void be_conn_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	(void)loop;
	(void)revents;
	be_conn_run(UTIL_CONTAINER_OF(w, struct be_conn, io));
}

static void be_accept_resume_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)w;
	(void)revents;
	for (size_t i = 0; i < g_nlsn; i++)
		ev_io_start(loop, &g_lsn[i].io);
}

/* Out of descriptors: shed one pending connection with the spare fd so the
 * client sees a close instead of hanging, and pause accepting for 100 ms. */
static void be_accept_emfile(int lfd)
{
	if (g_spare_fd >= 0) {
		close(g_spare_fd);
		g_spare_fd = -1;
		int fd = accept(lfd, NULL, NULL);

		if (fd >= 0)
			close(fd);
		g_spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	}
	if (ev_is_active(&g_accept_pause))
		return;
	for (size_t i = 0; i < g_nlsn; i++)
		ev_io_stop(g_loop, &g_lsn[i].io);
	ev_timer_set(&g_accept_pause, 0.1, 0);
	ev_timer_start(g_loop, &g_accept_pause);
}

static void be_accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct be_listener *l = UTIL_CONTAINER_OF(w, struct be_listener, io);

	(void)loop;
	(void)revents;
	for (int i = 0; i < 64; i++) {
		int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct be_conn *c;

		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
			    errno == ENOMEM)
				be_accept_emfile(l->fd);
			return; /* EAGAIN, ECONNABORTED, ...: try on the next event */
		}
		c = calloc(1, sizeof(*c));
		if (!c) {
			close(fd);
			continue;
		}
		c->fd = fd;
		c->lsn = l;
		c->next = g_conns;
		if (g_conns)
			g_conns->prev = c;
		g_conns = c;
		ev_init(&c->io, be_conn_cb);
		ev_init(&c->linger, be_linger_cb);
		/* Most clients write right after connecting: try reading at once. */
		be_conn_run(c);
	}
}

static void be_signal_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	(void)w;
	(void)revents;
	ev_break(loop, EVBREAK_ALL);
}

static int be_listen(const char *spec, struct be_listener *l)
{
	struct util_addr a;
	char err[128];
	int one = 1;

	if (util_addr_parse(spec, false, &a, err, sizeof(err)) < 0) {
		fprintf(stderr, "sluice-backend: %s: %s\n", spec, err);
		return -1;
	}
	l->fd = socket(a.u.sa.sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (l->fd < 0) {
		fprintf(stderr, "sluice-backend: socket: %s\n", strerror(errno));
		return -1;
	}
	setsockopt(l->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (a.u.sa.sa_family == AF_INET6)
		setsockopt(l->fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(l->fd, &a.u.sa, a.len) < 0 || listen(l->fd, 4096) < 0) {
		fprintf(stderr, "sluice-backend: %s: %s\n", spec, strerror(errno));
		close(l->fd);
		return -1;
	}
	snprintf(l->name, sizeof(l->name), "%u", util_addr_port(&a));
	ev_io_init(&l->io, be_accept_cb, l->fd, EV_READ);
	ev_io_start(g_loop, &l->io);
	return 0;
}

static void be_usage(void)
{
	fprintf(stderr,
		"usage: sluice-backend [-n NAME] [-m http|echo|sink|source] "
		"ADDR:PORT [ADDR:PORT ...]\n"
		"  http    200 'hello from NAME' to every request; GET /bytes/N sends N bytes\n"
		"  echo    echo bytes back, FIN propagated after the echo\n"
		"  sink    discard input; at EOF write the byte count and close\n"
		"  source  read a decimal line N, write N bytes, close\n");
}

static void be_raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

int main(int argc, char **argv)
{
	ev_signal sig_term, sig_int;
	int opt;

	while ((opt = getopt(argc, argv, "n:m:h")) != -1) {
		switch (opt) {
		case 'n':
			g_name = optarg;
			break;
		case 'm':
			if (strcmp(optarg, "http") == 0)
				g_mode = BE_HTTP;
			else if (strcmp(optarg, "echo") == 0)
				g_mode = BE_ECHO;
			else if (strcmp(optarg, "sink") == 0)
				g_mode = BE_SINK;
			else if (strcmp(optarg, "source") == 0)
				g_mode = BE_SOURCE;
			else {
				be_usage();
				return 2;
			}
			break;
		default:
			be_usage();
			return opt == 'h' ? 0 : 2;
		}
	}
	if (optind >= argc || argc - optind > BE_MAX_LISTENERS) {
		be_usage();
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	be_raise_nofile();
	memset(g_filler, 'x', sizeof(g_filler));
	g_loop = ev_default_loop(EVFLAG_AUTO);
	if (!g_loop) {
		fprintf(stderr, "sluice-backend: cannot create event loop\n");
		return 1;
	}
	for (int i = optind; i < argc; i++) {
		if (be_listen(argv[i], &g_lsn[g_nlsn]) < 0)
			return 1;
		g_nlsn++;
	}
	g_spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	ev_timer_init(&g_accept_pause, be_accept_resume_cb, 0.1, 0);
	ev_signal_init(&sig_term, be_signal_cb, SIGTERM);
	ev_signal_start(g_loop, &sig_term);
	ev_signal_init(&sig_int, be_signal_cb, SIGINT);
	ev_signal_start(g_loop, &sig_int);
	printf("ready\n");
	fflush(stdout);
	ev_run(g_loop, 0);
	while (g_conns)
		be_conn_close(g_conns);
	for (size_t i = 0; i < g_nlsn; i++) {
		ev_io_stop(g_loop, &g_lsn[i].io);
		close(g_lsn[i].fd);
	}
	if (g_spare_fd >= 0)
		close(g_spare_fd);
	ev_loop_destroy(g_loop);
	return 0;
}
