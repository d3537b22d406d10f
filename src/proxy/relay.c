/* relay: moves bytes for one direction of a connection, through a buffer
 * from the worker's pool or, once a read fills a whole buffer (bulk),
 * through a pooled pipe with splice(). A direction holds a buffer or a pipe
 * only while bytes are in flight, so an idle connection holds neither. It
 * reads only when nothing is pending, so a slow receiver stops the sender. */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proxy-int.h"
#include "sluice/log.h"
#include "sluice/util.h"

#define RELAY_MAX_ROUNDS 16 /* reads per event before yielding to others */
#define BUF_CACHE_MAX 256
#define PIPE_CACHE_MAX 32
#define TRIM_MIN_PEAK 64  /* sessions: below that a burst leaves little to trim */
#define TRIM_DELAY_S 1.0  /* quiet time after a burst before trimming */
#define BUF_CACHE_KEEP 16 /* what a trim leaves cached */
#define PIPE_CACHE_KEEP 4

/* Take n bytes of the relay memory ceiling (bufmem), exactly across
 * workers. Returns false when that would pass it; says so, rate-limited. */
static bool bufmem_take(struct proxy_worker *w, uint64_t n)
{
	struct proxy_engine *e = w->e;
	uint64_t used = atomic_load_explicit(&e->bufmem_used, memory_order_relaxed);
	uint32_t suppressed;

	do {
		if (used + n > e->conf.bufmem)
			goto refused;
	} while (!atomic_compare_exchange_weak(&e->bufmem_used, &used, used + n));
	return true;
refused:
	if (log_ratelimit_ok(&w->rl_bufmem, util_now_ms(), 1, &suppressed))
		log_warn("worker %u: relay memory ceiling reached (bufmem: %llu of %llu bytes in "
			 "use): connections that need a buffer now are closed (end=no-memory; "
			 "%u similar messages suppressed)",
			 w->id, (unsigned long long)used, (unsigned long long)e->conf.bufmem,
			 suppressed);
	return false;
}

static void bufmem_give(struct proxy_worker *w, uint64_t n)
{
	atomic_fetch_sub_explicit(&w->e->bufmem_used, n, memory_order_relaxed);
}

static size_t buf_alloc_size(const struct proxy_worker *w)
{
	return sizeof(struct proxy_buf) + PROXY_BUF_SLACK + w->e->conf.bufsize;
}

struct proxy_buf *proxy_buf_get(struct proxy_worker *w)
{
	struct proxy_buf *b = w->free_bufs;
	size_t size = buf_alloc_size(w);

	if (b != NULL) {
		w->free_bufs = b->next;
		w->nfree_bufs--;
		return b;
	}
	/* a cached buffer is already counted: only new memory asks bufmem */
	if (!bufmem_take(w, size))
		return NULL;
	b = malloc(size);
	if (b == NULL) {
		bufmem_give(w, size);
		return NULL;
	}
	return b;
}

static void buf_free(struct proxy_worker *w, struct proxy_buf *b)
{
	free(b);
	bufmem_give(w, buf_alloc_size(w));
}

/* A cached buffer stays counted against bufmem and serves its own worker
 * only, so a worker caches while more than half the ceiling is free: one
 * worker's cache never holds the memory another worker's connections
 * need. */
void proxy_buf_put(struct proxy_worker *w, struct proxy_buf *b)
{
	struct proxy_engine *e = w->e;

	if (w->nfree_bufs >= BUF_CACHE_MAX ||
	    atomic_load_explicit(&e->bufmem_used, memory_order_relaxed) > e->conf.bufmem / 2) {
		buf_free(w, b);
		return;
	}
	b->next = w->free_bufs;
	w->free_bufs = b;
	w->nfree_bufs++;
}

/* A pipe's bytes are kernel memory, counted against bufmem while a
 * direction holds it (an empty cached pipe holds no pages). */
static struct proxy_pipe *pipe_get(struct proxy_worker *w)
{
	struct proxy_pipe *p = w->free_pipes;
	int size;

	if (w->pipes_out >= w->e->conf.max_pipes_per_worker)
		return NULL;
	if (p != NULL) {
		if (!bufmem_take(w, p->size))
			return NULL;
		w->free_pipes = p->next;
		w->nfree_pipes--;
		w->pipes_out++;
		return p;
	}
	if (!bufmem_take(w, PROXY_PIPE_SIZE))
		return NULL;
	p = malloc(sizeof(*p));
	if (p == NULL || pipe2(p->fd, O_NONBLOCK | O_CLOEXEC) < 0) {
		free(p);
		bufmem_give(w, PROXY_PIPE_SIZE);
		return NULL;
	}
	/* a larger pipe moves more per splice pair; the default 64 KiB is
	 * kept when the per-user pipe budget says no */
	size = fcntl(p->fd[0], F_SETPIPE_SZ, PROXY_PIPE_SIZE);
	if (size <= 0)
		size = fcntl(p->fd[0], F_GETPIPE_SZ);
	p->size = size > 0 && size <= PROXY_PIPE_SIZE ? (uint32_t)size : PROXY_PIPE_SIZE;
	bufmem_give(w, PROXY_PIPE_SIZE - p->size);
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
	bufmem_give(w, p->size);
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

/* Free cached buffers and pipes beyond keep_bufs / keep_pipes. Returns
 * how many buffers it freed. */
static uint32_t cache_trim(struct proxy_worker *w, uint32_t keep_bufs, uint32_t keep_pipes)
{
	uint32_t freed = 0;

	while (w->nfree_bufs > keep_bufs) {
		struct proxy_buf *b = w->free_bufs;

		w->free_bufs = b->next;
		w->nfree_bufs--;
		buf_free(w, b);
		freed++;
	}
	while (w->nfree_pipes > keep_pipes) {
		struct proxy_pipe *p = w->free_pipes;

		w->free_pipes = p->next;
		w->nfree_pipes--;
		pipe_destroy(p);
	}
	return freed;
}

void proxy_worker_pools_free(struct proxy_worker *w)
{
	cache_trim(w, 0, 0);
}

/* A second after a burst ended: what the burst left in the caches and in
 * the allocator's free lists goes back to the system, so that a burst does
 * not leave the process several times its idle size. glibc keeps freed
 * memory of a thread's arena resident until its top is free, which a
 * single cached buffer prevents; malloc_trim() returns the free pages of
 * every arena (MADV_DONTNEED). Runs once per burst, never on the hot path. */
static void on_trim_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct proxy_worker *w = UTIL_CONTAINER_OF(t, struct proxy_worker, trim_timer);
	uint32_t peak = w->peak_sessions, freed;

	(void)loop;
	(void)revents;
	if (w->nsessions > peak / 8)
		return; /* busy again: the next quiet moment trims */
	freed = cache_trim(w, BUF_CACHE_KEEP, PIPE_CACHE_KEEP);
#ifdef __GLIBC__
	malloc_trim(0);
#endif
	w->peak_sessions = w->nsessions;
	log_debug("worker %u: burst of %u connections over: %u cached buffers and the "
		  "allocator's free memory returned",
		  w->id, peak, freed);
}

void proxy_worker_trim_init(struct proxy_worker *w)
{
	ev_timer_init(&w->trim_timer, on_trim_timer, TRIM_DELAY_S, 0.0);
}

void proxy_worker_after_close(struct proxy_worker *w)
{
	if (w->peak_sessions < TRIM_MIN_PEAK || w->nsessions > w->peak_sessions / 8 ||
	    ev_is_active(&w->trim_timer))
		return;
	ev_timer_set(&w->trim_timer, TRIM_DELAY_S, 0.0);
	ev_timer_start(w->loop, &w->trim_timer);
}

static bool would_block(void)
{
	return errno == EAGAIN || errno == EWOULDBLOCK;
}

/* The error of a system call on fd, named by its side. */
static enum proxy_io side_err(const struct proxy_session *s, int fd)
{
	return fd == s->cfd ? PROXY_IO_CLIENT_ERR : PROXY_IO_SERVER_ERR;
}

/* Write what is pending. Returns PROXY_IO_FLUSHED when all is written,
 * PROXY_IO_AGAIN when the peer's window is full, or the side's error. */
static enum proxy_io relay_flush(struct proxy_session *s, struct proxy_dir *d, int to)
{
	while (d->len > 0) {
		ssize_t n = send(to, d->buf->data + d->off, d->len, MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return would_block() ? PROXY_IO_AGAIN : side_err(s, to);
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
			return would_block() ? PROXY_IO_AGAIN : side_err(s, to);
		}
		d->in_pipe -= (uint32_t)n;
		d->sent += (uint64_t)n;
	}
	return PROXY_IO_FLUSHED;
}

/* No buffer to read into: only a socket that has bytes needs one. A peek
 * of one byte says whether the connection must end for want of memory or
 * can wait (nothing there yet, or the end of its stream). */
static enum proxy_io read_without_memory(struct proxy_session *s, int from)
{
	char c;
	ssize_t n = recv(from, &c, 1, MSG_PEEK);

	if (n > 0)
		return PROXY_IO_NO_MEMORY;
	if (n == 0)
		return PROXY_IO_EOF;
	return errno == EINTR || would_block() ? PROXY_IO_AGAIN : side_err(s, from);
}

/* Read once into the pipe or a buffer: PROXY_IO_FULL when the read filled
 * the space it had, PROXY_IO_SHORT when it got less (the socket is most
 * likely drained), PROXY_IO_AGAIN when nothing is there, PROXY_IO_EOF,
 * PROXY_IO_NO_MEMORY or the side's error. */
static enum proxy_io relay_read(struct proxy_session *s, struct proxy_dir *d, int from)
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
			return read_without_memory(s, from);
		n = recv(from, b->data + PROXY_BUF_SLACK, bufsize, 0);
		if (n > 0) {
			d->buf = b;
			d->off = PROXY_BUF_SLACK;
			d->len = (uint32_t)n;
			/* not in the kernel relay: splice() would read the
			 * socket's queue behind the program's back */
			if ((uint32_t)n == bufsize && !s->kernel)
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
		return is_short ? PROXY_IO_SHORT : PROXY_IO_FULL;
	}
	if (n == 0)
		return PROXY_IO_EOF;
	if (errno == EINTR || would_block())
		return PROXY_IO_AGAIN;
	return side_err(s, from);
}

enum proxy_io proxy_relay_read_only(struct proxy_session *s, struct proxy_dir *d, int from)
{
	enum proxy_io rc;

	if (d->eof || d->len > 0 || d->in_pipe > 0)
		return PROXY_IO_AGAIN;
	rc = relay_read(s, d, from);
	switch (rc) {
	case PROXY_IO_EOF:
		d->eof = true;
		return PROXY_IO_AGAIN;
	case PROXY_IO_FULL:
	case PROXY_IO_SHORT:
	case PROXY_IO_AGAIN:
	case PROXY_IO_FLUSHED:
		return PROXY_IO_AGAIN;
	case PROXY_IO_CLIENT_ERR:
	case PROXY_IO_SERVER_ERR:
	case PROXY_IO_NO_MEMORY:
	case PROXY_IO_BROKEN:
		break;
	}
	return rc;
}

/* Pass d's FIN on once everything before it went out. */
static void relay_shut(struct proxy_session *s, struct proxy_dir *d, int to)
{
	/* when the other way is finished too the session closes now and
	 * close() sends this FIN */
	struct proxy_dir *o = d == &s->c2s ? &s->s2c : &s->c2s;

	if (d->shut)
		return;
	if (!(o->eof && o->shut))
		shutdown(to, SHUT_WR);
	d->shut = true;
}

enum proxy_io proxy_relay(struct proxy_session *s, struct proxy_dir *d, bool may_read)
{
	int from = d == &s->c2s ? s->cfd : s->sfd;
	int to = d == &s->c2s ? s->sfd : s->cfd;

	for (int round = 0;; round++) {
		enum proxy_io rc;

		/* kernel relay: redirected bytes go out first */
		if (s->kernel && (d->len > 0 || d->in_pipe > 0 || (d->eof && !d->shut)) &&
		    !proxy_krelay_may_write(s, d))
			return PROXY_IO_AGAIN;
		rc = relay_flush(s, d, to);
		if (rc != PROXY_IO_FLUSHED)
			return rc;
		if (d->eof) {
			relay_shut(s, d, to);
			return PROXY_IO_AGAIN;
		}
		/* read only when the socket said it is readable, and not again
		 * after a short read: the socket is most likely empty and a
		 * read would only say EAGAIN. Level-triggered epoll brings us
		 * back if more came, so this saves a system call per message. */
		if (!may_read)
			return PROXY_IO_AGAIN;
		if (round == RELAY_MAX_ROUNDS) {
			/* edge-triggered in the kernel relay: no event brings us
			 * back for what is left, a timer's turn does */
			if (s->kernel)
				proxy_krelay_again(s);
			return PROXY_IO_AGAIN;
		}
		rc = relay_read(s, d, from);
		switch (rc) {
		case PROXY_IO_AGAIN:
			return PROXY_IO_AGAIN;
		case PROXY_IO_EOF:
			if (s->kernel && !proxy_krelay_eof_ok(s, d))
				return PROXY_IO_AGAIN;
			if (s->kernel && !proxy_krelay_stream_ok(s, d))
				return PROXY_IO_BROKEN;
			d->eof = true;
			break;
		case PROXY_IO_SHORT:
			/* edge-triggered in the kernel relay: read to EAGAIN */
			may_read = s->kernel;
			break;
		case PROXY_IO_FULL:
		case PROXY_IO_FLUSHED:
			break;
		case PROXY_IO_CLIENT_ERR:
		case PROXY_IO_SERVER_ERR:
		case PROXY_IO_NO_MEMORY:
		case PROXY_IO_BROKEN:
			return rc;
		}
	}
}
