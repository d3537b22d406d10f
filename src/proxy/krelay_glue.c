/* krelay_glue: a session's side of the kernel relay (sluice/krelay.h).
 * Once a session is established and quiet (nothing buffered, no FIN
 * either way, both receive queues empty), both sockets go into the
 * sockhash and the kernel moves the bytes. The session keeps its watchers and its relay code: it
 * still sees a FIN (recv() == 0), a reset, and the bytes the program passes up (after the insert,
 * and over the in-flight cap), and relays those itself. Two rules keep the stream exact: user space
 * writes nothing to a destination until its TCP has taken every byte the program redirected (else
 * later bytes would overtake them), and the program redirects nothing while passed bytes are still
 * on their way through user space. A third: recv() == 0 is the end of the
 * stream only once every passed byte was read; the kernel may hold passed
 * bytes back (its backlog, with small socket buffers) past the FIN. */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/sockios.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proxy-int.h"
#include "sluice/krelay.h"
#include "sluice/log.h"
#include "sluice/util.h"

/* How often a lagging destination is looked at: from 1 ms, doubling while
 * it stays behind (a reader that stopped reading), up to 64 ms. */
#define KRELAY_POLL_MIN_S 0.001
#define KRELAY_POLL_MAX_S 0.064
#define KEP_BATCH 64  /* events per epoll_wait of the kernel relay's set */
#define KEP_ROUNDS 16 /* batches per turn before yielding to the loop */

static void on_ktimer(struct ev_loop *loop, ev_timer *t, int revents);

static struct krelay *engine_krelay(const struct proxy_session *s)
{
	return atomic_load_explicit(&s->w->e->krelay, memory_order_acquire);
}

static int dir_index(const struct proxy_session *s, const struct proxy_dir *d)
{
	return d == &s->c2s ? 0 : 1;
}

static struct proxy_dir *dir_of(struct proxy_session *s, int i)
{
	return i == 0 ? &s->c2s : &s->s2c;
}

/* Direction i writes to the server (0) or the client (1). */
static int dst_fd(const struct proxy_session *s, int i)
{
	return i == 0 ? s->sfd : s->cfd;
}

static bool pending(const struct proxy_dir *d)
{
	return d->len > 0 || d->in_pipe > 0;
}

/* TCP_ESTABLISHED of the kernel's include/net/tcp_states.h */
#define KRELAY_TCP_ESTABLISHED 1

/* fd's TCP state (-1 when unknown); *acked: the bytes its far end
 * acknowledged, *received: the bytes it received in order (0 when
 * unknown; received may be NULL). */
static int tcp_look(int fd, uint64_t *acked, uint64_t *received)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);

	*acked = 0;
	if (received != NULL)
		*received = 0;
	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) < 0)
		return -1;
	if (len >= offsetof(struct tcp_info, tcpi_bytes_acked) + sizeof(ti.tcpi_bytes_acked))
		*acked = ti.tcpi_bytes_acked;
	if (received != NULL &&
	    len >= offsetof(struct tcp_info, tcpi_bytes_received) + sizeof(ti.tcpi_bytes_received))
		*received = ti.tcpi_bytes_received;
	return ti.tcpi_state;
}

/* Bytes the far end acknowledged on fd (0 when unknown). */
static uint64_t bytes_acked(int fd)
{
	uint64_t acked;

	tcp_look(fd, &acked, NULL);
	return acked;
}

static uint64_t ioctl_count(int fd, unsigned long req)
{
	int n = 0;

	return ioctl(fd, req, &n) == 0 && n > 0 ? (uint64_t)n : 0;
}

/* Bytes written to direction i's destination since the insert that its TCP
 * holds or has delivered. Read acked before the queue: what is acked in
 * between then counts once too few, never twice, so this never overstates. */
static uint64_t dst_taken(const struct proxy_session *s, int i)
{
	const struct proxy_kdir *k = &s->kd[i];
	uint64_t acked = bytes_acked(dst_fd(s, i));
	uint64_t outq = ioctl_count(dst_fd(s, i), SIOCOUTQ);
	uint64_t base = k->acked0 + k->outq0;

	return acked + outq > base ? acked + outq - base : 0;
}

void proxy_krelay_init(struct proxy_session *s)
{
	struct proxy_fe_settings *st = atomic_load_explicit(&s->fe->settings, memory_order_acquire);

	s->kwant = st->relay != PROXY_RELAY_USER && engine_krelay(s) != NULL;
	s->kauto = st->relay == PROXY_RELAY_AUTO;
	s->kinflight = st->relay_inflight;
	ev_timer_init(&s->ktimer, on_ktimer, KRELAY_POLL_MIN_S, 0.0);
	s->kpoll_s = KRELAY_POLL_MIN_S;
}

/* The kernel relay's sockets are watched edge-triggered, in a set of the
 * worker's own: a socket whose bytes the kernel is still forwarding reads
 * as readable until they left (its copied_seq lags), so level-triggered
 * it would wake the worker over and over for nothing. An edge comes with
 * each segment, FIN, reset and with each byte the program passes up. */
static void on_kep(struct ev_loop *loop, ev_io *io, int revents)
{
	struct proxy_worker *w = UTIL_CONTAINER_OF(io, struct proxy_worker, kep_io);
	struct epoll_event evs[KEP_BATCH];
	int n = KEP_BATCH;

	(void)loop;
	(void)revents;
	for (int round = 0; round < KEP_ROUNDS && n == KEP_BATCH; round++) {
		n = epoll_wait(w->kep, evs, KEP_BATCH, 0);
		for (int i = 0; i < n; i++) {
			struct proxy_session *s =
			    (struct proxy_session *)(uintptr_t)(evs[i].data.u64 & ~1ull);

			/* a session closed by an earlier event of this batch is
			 * still allocated (freed after this loop iteration) */
			if (s->kernel)
				proxy_session_relay(s);
		}
	}
}

/* What the set watches on a relayed socket: always a FIN (EPOLLRDHUP) and
 * errors; input only while the program passes bytes up (kin), or every
 * redirected segment would wake the worker. */
static uint32_t kep_events(bool kin)
{
	return EPOLLRDHUP | EPOLLET | (kin ? EPOLLIN : 0);
}

/* Watch s's sockets for input too, or no more. Changing the watch looks
 * at the socket again, so bytes already waiting raise an event. */
static void kin_set(struct proxy_session *s, bool kin)
{
	int fds[2] = {s->cfd, s->sfd};

	if (s->kin == kin)
		return;
	s->kin = kin;
	for (int i = 0; i < 2; i++) {
		struct epoll_event ev = {.events = kep_events(kin),
					 .data.u64 = (uintptr_t)s | (uint64_t)i};

		epoll_ctl(s->w->kep, EPOLL_CTL_MOD, fds[i], &ev);
	}
}

/* Input matters while passed bytes are still to be read. Called after the
 * steer: a pass after this look finds passed == taken and writes a note
 * that turns the watch on again. Watching input with nothing passed would
 * wake the worker for every redirected segment, with nothing to read. */
static void kin_update(struct proxy_session *s, struct krelay *k)
{
	bool kin = false;

	for (int i = 0; i < 2; i++) {
		struct krelay_count c;

		krelay_count(k, &s->kp, i, &c);
		if (c.passed != s->kd[i].taken)
			kin = true;
	}
	kin_set(s, kin);
}

static const char *dir_name(int i)
{
	return i == 0 ? "client to server" : "server to client";
}

/* Direction i's stream is broken in the kernel relay: say why and count
 * it. The caller resets both sides (end=error). */
static void broken(struct proxy_session *s, int i, const char *why)
{
	atomic_fetch_add_explicit(&s->w->e->krelay_broken, 1, memory_order_relaxed);
	log_err("kernel relay: %s %s: %s; both sides reset", s->fe->name, dir_name(i), why);
}

/* The program dropped a segment, new bytes with it: it could not cut a
 * repeated head off (no memory), or the sequence numbers it keeps were out
 * of step with the socket's. */
static const char *const LOST = "the program dropped a segment (a repeated head it could not cut "
				"off, or sequence numbers out of step): bytes lost";

/* A note from the program: it started passing bytes up to slot, or it
 * had to drop bytes (broken). */
static void on_note(void *arg, uint32_t slot)
{
	struct proxy_worker *w = arg;
	struct proxy_session *s = w->kslots[slot];

	if (s == NULL || !s->kernel)
		return;
	if (proxy_krelay_lost(s)) {
		proxy_session_close(s, PROXY_END_ERROR);
		return;
	}
	kin_set(s, true);
}

static void on_kring(struct ev_loop *loop, ev_io *io, int revents)
{
	struct proxy_worker *w = UTIL_CONTAINER_OF(io, struct proxy_worker, kring_io);

	(void)loop;
	(void)revents;
	krelay_ring_drain(atomic_load(&w->e->krelay), w->id, on_note, w);
}

void proxy_krelay_worker_init(struct proxy_worker *w)
{
	w->kep = -1;
	ev_io_init(&w->kep_io, on_kep, -1, EV_READ);
	ev_io_init(&w->kring_io, on_kring, -1, EV_READ);
}

void proxy_krelay_worker_free(struct proxy_worker *w)
{
	free(w->kslots);
	w->kslots = NULL;
	if (w->kep < 0)
		return;
	ev_io_stop(w->loop, &w->kep_io);
	ev_io_stop(w->loop, &w->kring_io);
	close(w->kep);
	w->kep = -1;
}

/* The worker's set, its note ring watch and slot table, on first use. */
static int kep_open(struct proxy_worker *w, struct krelay *k)
{
	if (w->kep >= 0)
		return 0;
	w->kslots = calloc(krelay_nslots(k), sizeof(*w->kslots));
	if (w->kslots == NULL)
		return -1;
	w->kep = epoll_create1(EPOLL_CLOEXEC);
	if (w->kep < 0) {
		free(w->kslots);
		w->kslots = NULL;
		return -1;
	}
	ev_io_set(&w->kep_io, w->kep, EV_READ);
	ev_io_start(w->loop, &w->kep_io);
	ev_io_set(&w->kring_io, krelay_ring_fd(k, w->id), EV_READ);
	ev_io_start(w->loop, &w->kring_io);
	return 0;
}

/* Watch s's sockets in the worker's edge-triggered set, input included
 * (the pair starts holding). Returns 0 or -1. */
static int kep_add(struct proxy_session *s, struct krelay *k)
{
	struct proxy_worker *w = s->w;
	int fds[2] = {s->cfd, s->sfd};

	if (kep_open(w, k) < 0)
		return -1;
	s->kin = true;
	for (int i = 0; i < 2; i++) {
		struct epoll_event ev = {.events = kep_events(true),
					 .data.u64 = (uintptr_t)s | (uint64_t)i};

		if (epoll_ctl(w->kep, EPOLL_CTL_ADD, fds[i], &ev) < 0) {
			if (i == 1)
				epoll_ctl(w->kep, EPOLL_CTL_DEL, fds[0], NULL);
			return -1;
		}
	}
	return 0;
}

static void kep_del(struct proxy_session *s)
{
	epoll_ctl(s->w->kep, EPOLL_CTL_DEL, s->cfd, NULL);
	epoll_ctl(s->w->kep, EPOLL_CTL_DEL, s->sfd, NULL);
}

void proxy_krelay_try(struct proxy_session *s)
{
	struct proxy_engine *e = s->w->e;
	struct krelay *k;

	if (!s->kwant || s->kernel || s->state != PROXY_ST_RELAY || !s->srv_up ||
	    pending(&s->c2s) || pending(&s->s2c) || s->c2s.eof || s->s2c.eof)
		return;
	/* relay auto: a connection whose reads filled a whole buffer is bulk,
	 * and bulk moves with less CPU through splice() than through the
	 * kernel relay with a bounded cap; a connection of one request and
	 * one reply ends before the insert pays off (README, Benchmark). So
	 * auto waits for the client to speak again after the first reply. */
	if (s->kauto) {
		if (s->c2s.splice || s->s2c.splice) {
			s->kwant = false;
			return;
		}
		if (s->s2c.bytes == 0)
			return;
		if (s->kreply_at == 0)
			s->kreply_at = s->c2s.bytes + 1;
		if (s->c2s.bytes + 1 <= s->kreply_at)
			return;
	}
	k = engine_krelay(s);
	for (int i = 0; i < 2; i++) {
		struct proxy_kdir *kd = &s->kd[i];

		/* the queue before the acked count: see dst_taken */
		kd->outq0 = ioctl_count(dst_fd(s, i), SIOCOUTQ);
		/* A socket whose FIN (or reset) came in cannot join the
		 * sockhash; trying would put its peer in alone for a moment,
		 * and bytes passed up then go with the peer's removal. Its
		 * end of stream is read soon; no insert after that. The
		 * received count is direction 1 - i's baseline, read before
		 * the empty-queue look below: every byte counted in it was
		 * read by then. */
		if (tcp_look(dst_fd(s, i), &kd->acked0, &s->kd[1 - i].received0) !=
		    KRELAY_TCP_ESTABLISHED)
			return;
		kd->sent0 = dir_of(s, i)->sent;
		kd->bytes0 = dir_of(s, i)->bytes;
		kd->fwd_ok = kd->taken = 0;
	}
	/* Both receive queues must be empty: the program takes a queued skb
	 * whole, so the part of it user space already read would go out a
	 * second time. Bytes that come in after this look arrive whole and
	 * are passed up (the pair starts holding). Not now: the next quiet
	 * moment tries again. */
	if (ioctl_count(s->cfd, SIOCINQ) != 0 || ioctl_count(s->sfd, SIOCINQ) != 0)
		return;
	/* watched first: once in the sockhash, an event must not be missed */
	if (kep_add(s, k) < 0 ||
	    krelay_pair_add(k, s->cfd, s->sfd, s->kinflight, s->w->id, &s->kp) < 0) {
		/* a FIN or reset came in (EOPNOTSUPP), the maps are full, or no
		 * memory for the watch: this connection stays in user space */
		int err = errno;

		if (s->w->kep >= 0)
			kep_del(s);
		s->kwant = false;
		atomic_fetch_add_explicit(&e->krelay_fallbacks, 1, memory_order_relaxed);
		if (err == EPIPE) {
			/* bytes came in and were passed up while only one
			 * socket was in: they went with its removal, so the
			 * stream is broken and both sides must hear it */
			log_warn("kernel relay: %s connection lost bytes to a failed insert; "
				 "both sides reset",
				 s->fe->name);
			proxy_session_close(s, PROXY_END_ERROR);
			return;
		}
		log_debug("kernel relay: %s connection stays in user space: %s", s->fe->name,
			  strerror(err));
		return;
	}
	s->kernel = true;
	s->kunwatch_c = s->kunwatch_s = true;
	s->w->kslots[s->kp.slot[0]] = s->w->kslots[s->kp.slot[1]] = s;
	atomic_fetch_add_explicit(&e->krelay_conns, 1, memory_order_relaxed);
	/* splice() reads the socket's queue behind the program's back */
	s->c2s.splice = s->s2c.splice = false;
	/* From here on a read returns only what the program passed up
	 * (recvmsg of a sockhash member with a verdict program reads the
	 * passed queue alone), so every byte user space writes from now on
	 * is a passed byte: counting from sent0 keeps passed and taken equal
	 * exactly when none is on its way. The hold only covered the moment
	 * when one socket was in the sockhash and its peer not yet. */
	krelay_release(k, &s->kp, 0);
	krelay_release(k, &s->kp, 1);
	/* readability from the edge-triggered set from now on, input only if
	 * the hold passed bytes up */
	proxy_session_update_io(s);
	kin_update(s, k);
}

static void on_ktimer(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct proxy_session *s = UTIL_CONTAINER_OF(t, struct proxy_session, ktimer);

	(void)loop;
	(void)revents;
	proxy_session_relay(s);
}

void proxy_krelay_again(struct proxy_session *s)
{
	if (ev_is_active(&s->ktimer) && ev_timer_remaining(s->w->loop, &s->ktimer) <= 0.0)
		return;
	ev_timer_stop(s->w->loop, &s->ktimer);
	ev_timer_set(&s->ktimer, 0.0, 0.0);
	ev_timer_start(s->w->loop, &s->ktimer);
}

/* Look again after the poll interval, doubling it each time. */
static void kpoll(struct proxy_session *s)
{
	if (ev_is_active(&s->ktimer))
		return;
	ev_timer_set(&s->ktimer, s->kpoll_s, 0.0);
	ev_timer_start(s->w->loop, &s->ktimer);
	s->kpoll_s = UTIL_MIN(s->kpoll_s * 2, KRELAY_POLL_MAX_S);
}

bool proxy_krelay_may_write(struct proxy_session *s, struct proxy_dir *d)
{
	int i = dir_index(s, d);
	struct proxy_kdir *kd = &s->kd[i];
	struct krelay_count c;

	krelay_count(engine_krelay(s), &s->kp, i, &c);
	if (c.fwd != kd->fwd_ok && dst_taken(s, i) < c.fwd + (d->sent - kd->sent0)) {
		d->kwait = true;
		kpoll(s);
		return false;
	}
	s->kpoll_s = KRELAY_POLL_MIN_S;
	kd->fwd_ok = c.fwd;
	d->kwait = false;
	return true;
}

bool proxy_krelay_eof_ok(struct proxy_session *s, struct proxy_dir *d)
{
	int i = dir_index(s, d);
	struct krelay_count c;

	krelay_count(engine_krelay(s), &s->kp, i, &c);
	if (d->bytes - s->kd[i].bytes0 >= c.passed)
		return true;
	kpoll(s);
	return false;
}

bool proxy_krelay_stream_ok(struct proxy_session *s, struct proxy_dir *d)
{
	int i = dir_index(s, d);
	struct krelay_count c;
	uint64_t acked, received, stream, relayed;
	char why[128];

	krelay_count(engine_krelay(s), &s->kp, i, &c);
	if (c.broken) {
		broken(s, i, LOST);
		return false;
	}
	/* tests: a repeat the program cannot see (in the first segment after
	 * the insert) cannot be made on demand */
	if (UTIL_FAULT("krelay_repeat"))
		c.fwd++;
	/* received counts the FIN too (its sequence number): recv() said 0.
	 * Every byte since the insert went either through the program's
	 * redirect or through user space's reads (what the program passed
	 * up, and what was queued at the insert), each once: more is a
	 * repeat, less a loss. */
	if (tcp_look(dst_fd(s, 1 - i), &acked, &received) < 0 || received <= s->kd[i].received0)
		return true;
	stream = received - s->kd[i].received0 - 1;
	relayed = c.fwd + (d->bytes - s->kd[i].bytes0);
	if (relayed == stream)
		return true;
	snprintf(why, sizeof(why), "%llu bytes relayed of a stream of %llu since the insert",
		 (unsigned long long)relayed, (unsigned long long)stream);
	broken(s, i, why);
	return false;
}

void proxy_krelay_wrote(struct proxy_session *s)
{
	struct krelay *k = engine_krelay(s);

	for (int i = 0; i < 2; i++) {
		struct proxy_kdir *kd = &s->kd[i];
		struct proxy_dir *d = dir_of(s, i);
		uint64_t taken, acked;

		taken = d->sent - kd->sent0;
		if (taken == kd->taken)
			continue;
		/* the program counts fwd + taken - acked in flight: acked counts
		 * from the insert, after what was queued before it */
		acked = bytes_acked(dst_fd(s, i));
		acked = acked > kd->acked0 + kd->outq0 ? acked - kd->acked0 - kd->outq0 : 0;
		kd->taken = taken;
		krelay_steer(k, &s->kp, i, taken, acked);
	}
	kin_update(s, k);
}

bool proxy_krelay_lost(struct proxy_session *s)
{
	for (int i = 0; i < 2; i++) {
		struct krelay_count c;

		krelay_count(engine_krelay(s), &s->kp, i, &c);
		if (c.broken) {
			broken(s, i, LOST);
			return true;
		}
	}
	return false;
}

bool proxy_krelay_active(struct proxy_session *s)
{
	struct krelay *k = engine_krelay(s);
	struct krelay_count c0, c1;
	uint64_t seen;

	krelay_count(k, &s->kp, 0, &c0);
	krelay_count(k, &s->kp, 1, &c1);
	seen = c0.fwd + c0.passed + c1.fwd + c1.passed;
	if (seen == s->kseen)
		return false;
	s->kseen = seen;
	return true;
}

void proxy_krelay_end(struct proxy_session *s)
{
	struct krelay *k = engine_krelay(s);

	if (!s->kernel)
		return;
	ev_timer_stop(s->w->loop, &s->ktimer);
	for (int i = 0; i < 2; i++) {
		struct proxy_dir *d = dir_of(s, i);
		struct krelay_count c;

		/* passed bytes went through d already */
		krelay_count(k, &s->kp, i, &c);
		if (c.cut > 0) {
			atomic_fetch_add_explicit(&s->w->e->krelay_cut, c.cut,
						  memory_order_relaxed);
			log_debug("kernel relay: %s %s: %u repeated segment heads cut off",
				  s->fe->name, dir_name(i), c.cut);
		}
		d->bytes += c.fwd;
		d->sent += c.fwd;
	}
	krelay_pair_del(k, &s->kp);
	kep_del(s);
	s->w->kslots[s->kp.slot[0]] = s->w->kslots[s->kp.slot[1]] = NULL;
	s->kernel = false;
}
