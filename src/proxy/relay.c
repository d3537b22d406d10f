/* relay: moves bytes for one direction of a connection, through a buffer
 * from the worker's pool or, once a read fills a whole buffer (bulk),
 * through a pooled pipe with splice(). A direction holds a buffer or a pipe
 * only while bytes are in flight, so an idle connection holds neither. It
 * reads only when nothing is pending, so a slow receiver stops the sender. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proxy-int.h"
#include "sluice/util.h"

#define RELAY_MAX_ROUNDS 16 /* reads per event before yielding to others */
#define BUF_CACHE_MAX 256
#define PIPE_CACHE_MAX 32

struct proxy_buf *proxy_buf_get(struct proxy_worker *w)
{
	struct proxy_buf *b = w->free_bufs;

	if (b != NULL) {
		w->free_bufs = b->next;
		w->nfree_bufs--;
		return b;
	}
	return malloc(sizeof(*b) + PROXY_BUF_SLACK + w->e->conf.bufsize);
}

void proxy_buf_put(struct proxy_worker *w, struct proxy_buf *b)
{
	if (w->nfree_bufs >= BUF_CACHE_MAX) {
		free(b);
		return;
	}
	b->next = w->free_bufs;
	w->free_bufs = b;
	w->nfree_bufs++;
}

static struct proxy_pipe *pipe_get(struct proxy_worker *w)
{
	struct proxy_pipe *p = w->free_pipes;

	if (p != NULL) {
		w->free_pipes = p->next;
		w->nfree_pipes--;
		w->pipes_out++;
		return p;
	}
	if (w->pipes_out >= w->e->conf.max_pipes_per_worker)
		return NULL;
	p = malloc(sizeof(*p));
	if (p == NULL)
		return NULL;
	if (pipe2(p->fd, O_NONBLOCK | O_CLOEXEC) < 0) {
		free(p);
		return NULL;
	}
	/* a larger pipe moves more per splice pair; the default 64 KiB is
	 * kept when the per-user pipe budget says no */
	(void)fcntl(p->fd[0], F_SETPIPE_SZ, PROXY_PIPE_SIZE);
	w->pipes_out++;
	return p;
}

static void pipe_destroy(struct proxy_pipe *p)
{
	close(p->fd[0]);
	close(p->fd[1]);
	free(p);
}

/* Return an empty pipe to the pool; a pipe with bytes in it is destroyed. */
static void pipe_put(struct proxy_worker *w, struct proxy_pipe *p, bool empty)
{
	w->pipes_out--;
	if (!empty || w->nfree_pipes >= PIPE_CACHE_MAX) {
		pipe_destroy(p);
		return;
	}
	p->next = w->free_pipes;
	w->free_pipes = p;
	w->nfree_pipes++;
}

void proxy_dir_release(struct proxy_worker *w, struct proxy_dir *d)
{
	if (d->buf != NULL)
		proxy_buf_put(w, d->buf);
	if (d->pipe != NULL)
		pipe_put(w, d->pipe, d->in_pipe == 0);
	d->buf = NULL;
	d->pipe = NULL;
	d->len = d->in_pipe = 0;
}

void proxy_worker_pools_free(struct proxy_worker *w)
{
	while (w->free_bufs != NULL) {
		struct proxy_buf *b = w->free_bufs;

		w->free_bufs = b->next;
		free(b);
	}
	while (w->free_pipes != NULL) {
		struct proxy_pipe *p = w->free_pipes;

		w->free_pipes = p->next;
		pipe_destroy(p);
	}
	w->nfree_bufs = w->nfree_pipes = 0;
}

static bool would_block(void)
{
	return errno == EAGAIN || errno == EWOULDBLOCK;
}

/* Write what is pending. Returns 1 when all is written, 0 when the peer's
 * window is full, -2 on a write error. */
static int relay_flush(struct proxy_session *s, struct proxy_dir *d, int to)
{
	while (d->len > 0) {
		ssize_t n = send(to, d->buf->data + d->off, d->len, MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return would_block() ? 0 : -2;
		}
		d->off += (uint32_t)n;
		d->len -= (uint32_t)n;
		d->sent += (uint64_t)n;
	}
	if (d->buf != NULL) {
		proxy_buf_put(s->w, d->buf);
		d->buf = NULL;
	}
	while (d->in_pipe > 0) {
		ssize_t n = splice(d->pipe->fd[0], NULL, to, NULL, d->in_pipe,
				   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return would_block() ? 0 : -2;
		}
		d->in_pipe -= (uint32_t)n;
		d->sent += (uint64_t)n;
	}
	return 1;
}

/* Read once into the pipe or a buffer. Returns 1 when the read filled the
 * space it had, 3 when it got less (the socket is most likely drained), 0
 * when nothing is there, 2 at end of stream, -1 on error. */
static int relay_read(struct proxy_session *s, struct proxy_dir *d, int from)
{
	struct proxy_worker *w = s->w;
	uint32_t bufsize = w->e->conf.bufsize;
	bool is_short = false;
	ssize_t n;

	if (d->splice && d->pipe == NULL)
		d->pipe = pipe_get(w);
	if (d->splice && d->pipe != NULL) {
		n = splice(from, NULL, d->pipe->fd[1], NULL, PROXY_PIPE_SIZE,
			   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
		if (n > 0) {
			d->in_pipe = (uint32_t)n;
			is_short = n < PROXY_PIPE_SIZE;
		} else {
			/* empty pipe back to the pool: idle holds nothing */
			pipe_put(w, d->pipe, true);
			d->pipe = NULL;
		}
	} else {
		struct proxy_buf *b = proxy_buf_get(w);

		if (b == NULL)
			return 0; /* no memory: try again on the next event */
		n = recv(from, b->data + PROXY_BUF_SLACK, bufsize, 0);
		if (n > 0) {
			d->buf = b;
			d->off = PROXY_BUF_SLACK;
			d->len = (uint32_t)n;
			if ((uint32_t)n == bufsize)
				d->splice = true;
			else
				is_short = true;
		} else {
			proxy_buf_put(w, b);
		}
	}
	if (n > 0) {
		d->bytes += (uint64_t)n;
		s->last_ms = (uint64_t)(ev_now(w->loop) * 1000.0);
		return is_short ? 3 : 1;
	}
	if (n == 0)
		return 2;
	if (errno == EINTR || would_block())
		return 0;
	return -1;
}

int proxy_relay_read_only(struct proxy_session *s, struct proxy_dir *d, int from)
{
	int rc;

	if (d->eof || d->len > 0 || d->in_pipe > 0)
		return 0;
	rc = relay_read(s, d, from);
	if (rc == 2)
		d->eof = true;
	return rc < 0 ? -1 : 0;
}

int proxy_relay(struct proxy_session *s, struct proxy_dir *d, int from, int to, bool may_read)
{
	for (int round = 0;; round++) {
		int rc = relay_flush(s, d, to);

		if (rc <= 0)
			return rc;
		if (d->eof) {
			if (!d->shut) {
				/* when the other way is finished too the session
				 * closes now and close() sends this FIN */
				struct proxy_dir *o = d == &s->c2s ? &s->s2c : &s->c2s;

				if (!(o->eof && o->shut))
					shutdown(to, SHUT_WR);
				d->shut = true;
			}
			return 0;
		}
		/* read only when the socket said it is readable, and not again
		 * after a short read: the socket is most likely empty and a
		 * read would only say EAGAIN. Level-triggered epoll brings us
		 * back if more came, so this saves a system call per message. */
		if (!may_read || round == RELAY_MAX_ROUNDS)
			return 0;
		rc = relay_read(s, d, from);
		if (rc == 0)
			return 0;
		if (rc < 0)
			return -1;
		if (rc == 2)
			d->eof = true;
		if (rc == 3)
			may_read = false;
	}
}
