/* engine: worker threads (one libev loop each), their listening sockets
 * and the accept path with global and per-listener limits. The control
 * thread talks to workers through a small command queue and ev_async;
 * the accept path itself takes no lock. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proxy-int.h"
#include "sluice/guard.h"
#include "sluice/log.h"
#include "sluice/pool.h"
#include "sluice/proxy.h"
#include "sluice/util.h"

#define ACCEPT_BATCH 64
#define EMFILE_PAUSE_S 0.1
#define LISTEN_BACKLOG 4096

/* ---- frontends ---- */

struct proxy_frontend *proxy_frontend_new(const char *name, struct proxy_fe_settings *settings)
{
	struct proxy_frontend *fe = calloc(1, sizeof(*fe));

	if (fe == NULL)
		return NULL;
	util_strlcpy(fe->name, name, sizeof(fe->name));
	atomic_init(&fe->settings, settings);
	atomic_init(&fe->refcnt, 1);
	return fe;
}

void proxy_frontend_get(struct proxy_frontend *fe)
{
	atomic_fetch_add_explicit(&fe->refcnt, 1, memory_order_relaxed);
}

/* Close the sockets never handed to a worker and free the bind. */
static void bind_free(struct proxy_bind *b)
{
	for (size_t i = 0; i < b->nfds; i++)
		if (b->fds[i] >= 0)
			close(b->fds[i]);
	free(b->fds);
	free(b);
}

void proxy_frontend_put(struct proxy_frontend *fe)
{
	if (atomic_fetch_sub_explicit(&fe->refcnt, 1, memory_order_acq_rel) != 1)
		return;
	for (size_t i = 0; i < fe->nbinds; i++)
		bind_free(fe->binds[i]);
	guard_free(fe->guard);
	proxy_fe_settings_free(atomic_load(&fe->settings));
	free(fe->binds);
	free(fe);
}

void proxy_fe_settings_free(void *obj)
{
	struct proxy_fe_settings *s = obj;

	if (s == NULL)
		return;
	if (s->pool != NULL)
		pool_put(s->pool);
	proxy_peek_settings_free(s); /* TLS routes */
	free(s);
}

static int open_listener(const struct util_addr *a, char *err, size_t errlen)
{
	char abuf[UTIL_ADDR_STRLEN];
	int one = 1, fd;

	fd = socket(a->u.sa.sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto fail;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0)
		goto fail;
	if (a->u.sa.sa_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	/* a VRRP backup binds its VIP before it owns the address: a takeover
	 * then costs only the address move (IP_FREEBIND also covers IPv6) */
	setsockopt(fd, IPPROTO_IP, IP_FREEBIND, &one, sizeof(one));
	/* accepted sockets inherit TCP_NODELAY: one system call less each */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (bind(fd, &a->u.sa, a->len) < 0 || listen(fd, LISTEN_BACKLOG) < 0)
		goto fail;
	return fd;
fail:
	snprintf(err, errlen, "cannot listen on %s: %s", util_addr_fmt(a, abuf, sizeof(abuf)),
		 strerror(errno));
	if (fd >= 0)
		close(fd);
	return -1;
}

static int add_bind(struct proxy_frontend *fe, struct proxy_bind *b, char *err, size_t errlen)
{
	static uint64_t next_id = 1; /* control thread only */
	struct proxy_bind **arr = realloc(fe->binds, (fe->nbinds + 1) * sizeof(*arr));

	if (arr == NULL) {
		bind_free(b);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	b->id = next_id++;
	fe->binds = arr;
	arr[fe->nbinds++] = b;
	return 0;
}

/* A bind with room for n sockets, all -1, or NULL. */
static struct proxy_bind *bind_new(const struct util_addr *addr, size_t n)
{
	struct proxy_bind *b = calloc(1, sizeof(*b));

	if (b == NULL || (b->fds = malloc(n * sizeof(*b->fds))) == NULL) {
		free(b);
		return NULL;
	}
	b->addr = *addr;
	b->nfds = n;
	for (size_t i = 0; i < n; i++)
		b->fds[i] = -1;
	return b;
}

int proxy_frontend_bind(struct proxy_engine *e, struct proxy_frontend *fe,
			const struct util_addr *addr, char *err, size_t errlen)
{
	return proxy_frontend_adopt(e, fe, addr, NULL, 0, err, errlen);
}

int proxy_frontend_adopt(struct proxy_engine *e, struct proxy_frontend *fe,
			 const struct util_addr *addr, const int *fds, size_t nfds, char *err,
			 size_t errlen)
{
	size_t n = UTIL_MAX(nfds, e->nworkers);
	struct proxy_bind *b = bind_new(addr, n);

	if (b == NULL) {
		for (size_t i = 0; i < nfds; i++)
			close(fds[i]);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (size_t i = 0; i < nfds; i++)
		b->fds[i] = fds[i];
	for (size_t i = nfds; i < n; i++) {
		b->fds[i] = open_listener(addr, err, errlen);
		if (b->fds[i] < 0) {
			bind_free(b);
			return -1;
		}
	}
	return add_bind(fe, b, err, errlen);
}

void proxy_frontend_close_sockets(struct proxy_frontend *fe)
{
	for (size_t b = 0; b < fe->nbinds; b++) {
		for (size_t i = 0; i < fe->binds[b]->nfds; i++) {
			if (fe->binds[b]->fds[i] >= 0)
				close(fe->binds[b]->fds[i]);
			fe->binds[b]->fds[i] = -1;
		}
	}
}

bool proxy_frontend_has_bind(const struct proxy_frontend *fe, const struct util_addr *addr)
{
	for (size_t i = 0; i < fe->nbinds; i++)
		if (util_addr_equal(&fe->binds[i]->addr, addr))
			return true;
	return false;
}

int proxy_frontend_dup_fds(const struct proxy_frontend *fe, const struct util_addr *addr, int *fds,
			   size_t max)
{
	for (size_t i = 0; i < fe->nbinds; i++) {
		const struct proxy_bind *bd = fe->binds[i];
		int n = 0;

		if (!util_addr_equal(&bd->addr, addr))
			continue;
		for (size_t k = 0; k < bd->nfds && (size_t)n < max; k++) {
			int fd = bd->fds[k] >= 0 ? fcntl(bd->fds[k], F_DUPFD_CLOEXEC, 0) : -1;

			if (fd >= 0)
				fds[n++] = fd;
		}
		return n;
	}
	return 0;
}

void proxy_frontend_set_settings(struct proxy_engine *e, struct proxy_frontend *fe,
				 struct proxy_fe_settings *s)
{
	struct proxy_fe_settings *old = atomic_exchange(&fe->settings, s);

	if (old != NULL && qsbr_retire(e->qsbr, old, proxy_fe_settings_free) < 0)
		log_err("listen %s: out of memory retiring settings", fe->name);
}

/* ---- commands from the control thread ---- */

static void send_cmd_full(struct proxy_worker *w, const struct proxy_cmd *cmd)
{
	pthread_mutex_lock(&w->cmd_lock);
	if (w->ncmds == w->cmd_cap) {
		size_t cap = w->cmd_cap ? w->cmd_cap * 2 : 8;
		struct proxy_cmd *c = realloc(w->cmds, cap * sizeof(*c));

		if (c == NULL) {
			pthread_mutex_unlock(&w->cmd_lock);
			log_err("worker %u: out of memory queueing a command", w->id);
			if (cmd->type == PROXY_CMD_DETACH && cmd->drain)
				atomic_fetch_sub(&w->e->detaching, 1);
			return;
		}
		w->cmds = c;
		w->cmd_cap = cap;
	}
	if (cmd->fe != NULL)
		proxy_frontend_get(cmd->fe);
	if (cmd->srv != NULL)
		pool_server_get(cmd->srv);
	w->cmds[w->ncmds++] = *cmd;
	pthread_mutex_unlock(&w->cmd_lock);
	ev_async_send(w->loop, &w->async);
}

static void send_cmd(struct proxy_worker *w, enum proxy_cmd_type type, struct proxy_frontend *fe)
{
	struct proxy_cmd cmd = {.type = type, .fe = fe, .fd = -1};

	send_cmd_full(w, &cmd);
}

void proxy_engine_close_server(struct proxy_engine *e, struct pool_server *srv, uint32_t spread_ms)
{
	struct proxy_cmd cmd = {
	    .type = PROXY_CMD_CLOSE_SERVER, .srv = srv, .spread_ms = spread_ms, .fd = -1};

	for (unsigned i = 0; i < e->nworkers; i++)
		send_cmd_full(&e->workers[i], &cmd);
}

void proxy_engine_close_sources(struct proxy_engine *e, struct proxy_frontend *fe,
				const struct util_cidr *cidr)
{
	struct proxy_cmd cmd = {.type = PROXY_CMD_CLOSE_SOURCES, .fe = fe, .cidr = *cidr, .fd = -1};

	for (unsigned i = 0; i < e->nworkers; i++)
		send_cmd_full(&e->workers[i], &cmd);
}

void proxy_engine_attach(struct proxy_engine *e, struct proxy_frontend *fe)
{
	for (size_t b = 0; b < fe->nbinds; b++) {
		struct proxy_bind *bd = fe->binds[b];

		if (bd->attached)
			continue;
		bd->attached = true;
		for (size_t i = 0; i < bd->nfds; i++) {
			struct proxy_cmd cmd = {
			    .type = PROXY_CMD_ATTACH, .fe = fe, .bind_id = bd->id};

			/* the worker owns this duplicate; we keep ours */
			cmd.fd = fcntl(bd->fds[i], F_DUPFD_CLOEXEC, 0);
			if (cmd.fd < 0) {
				log_err("listen %s: cannot hand a socket to worker %zu: %s",
					fe->name, i % e->nworkers, strerror(errno));
				continue;
			}
			send_cmd_full(&e->workers[i % e->nworkers], &cmd);
		}
	}
}

void proxy_engine_unbind(struct proxy_engine *e, struct proxy_frontend *fe,
			 const struct util_addr *addr, bool drain)
{
	for (size_t b = 0; b < fe->nbinds; b++) {
		struct proxy_bind *bd = fe->binds[b];

		if (!util_addr_equal(&bd->addr, addr))
			continue;
		if (bd->attached) {
			struct proxy_cmd cmd = {.type = PROXY_CMD_DETACH,
						.fe = fe,
						.bind_id = bd->id,
						.fd = -1,
						.drain = drain};

			if (drain)
				atomic_fetch_add(&e->detaching, e->nworkers);
			for (unsigned i = 0; i < e->nworkers; i++)
				send_cmd_full(&e->workers[i], &cmd);
		}
		bind_free(bd);
		memmove(&fe->binds[b], &fe->binds[b + 1], (fe->nbinds - b - 1) * sizeof(bd));
		fe->nbinds--;
		return;
	}
}

void proxy_engine_detach(struct proxy_engine *e, struct proxy_frontend *fe, bool handover)
{
	struct proxy_cmd cmd = {.type = PROXY_CMD_DETACH, .fe = fe, .fd = -1, .drain = !handover};

	if (cmd.drain)
		atomic_fetch_add(&e->detaching, e->nworkers);
	for (unsigned i = 0; i < e->nworkers; i++)
		send_cmd_full(&e->workers[i], &cmd);
}

void proxy_engine_close_all(struct proxy_engine *e)
{
	for (unsigned i = 0; i < e->nworkers; i++)
		send_cmd(&e->workers[i], PROXY_CMD_CLOSE_ALL, NULL);
}

uint32_t proxy_engine_active(const struct proxy_engine *e)
{
	return atomic_load(&e->cur_conns);
}

uint32_t proxy_engine_closing(const struct proxy_engine *e)
{
	/* in this order: a worker counts its closing listeners before it
	 * marks the command done */
	uint32_t detaching = atomic_load(&e->detaching);

	return detaching + atomic_load(&e->closing_listeners);
}

uint64_t proxy_engine_total(const struct proxy_engine *e)
{
	return atomic_load(&e->total_conns);
}

uint64_t proxy_engine_maxconn_reached(const struct proxy_engine *e)
{
	return atomic_load(&e->maxconn_reached);
}

uint64_t proxy_engine_bufmem_used(const struct proxy_engine *e)
{
	return atomic_load(&e->bufmem_used);
}

uint64_t proxy_engine_no_memory(const struct proxy_engine *e)
{
	return atomic_load(&e->no_memory);
}

void proxy_engine_set_krelay(struct proxy_engine *e, struct krelay *k)
{
	atomic_store_explicit(&e->krelay, k, memory_order_release);
}

uint64_t proxy_engine_krelay_conns(const struct proxy_engine *e)
{
	return atomic_load(&e->krelay_conns);
}

uint64_t proxy_engine_krelay_fallbacks(const struct proxy_engine *e)
{
	return atomic_load(&e->krelay_fallbacks);
}

uint64_t proxy_engine_krelay_broken(const struct proxy_engine *e)
{
	return atomic_load(&e->krelay_broken);
}

uint64_t proxy_engine_krelay_cut(const struct proxy_engine *e)
{
	return atomic_load(&e->krelay_cut);
}

/* ---- accept path ---- */

enum limit_hit { LIMIT_NONE, LIMIT_GLOBAL, LIMIT_LISTENER };

/* Reserve one connection slot globally and on fe, or say which limit is
 * reached. Exact across workers (compare-and-swap). */
static enum limit_hit reserve_slot(struct proxy_engine *e, struct proxy_frontend *fe,
				   uint32_t fe_max)
{
	uint32_t cur = atomic_load_explicit(&e->cur_conns, memory_order_relaxed);

	do {
		if (cur >= e->conf.maxconn)
			return LIMIT_GLOBAL;
	} while (!atomic_compare_exchange_weak(&e->cur_conns, &cur, cur + 1));
	cur = atomic_load_explicit(&fe->cur_conns, memory_order_relaxed);
	do {
		if (fe_max != 0 && cur >= fe_max) {
			atomic_fetch_sub(&e->cur_conns, 1);
			return LIMIT_LISTENER;
		}
	} while (!atomic_compare_exchange_weak(&fe->cur_conns, &cur, cur + 1));
	return LIMIT_NONE;
}

static void unreserve_slot(struct proxy_engine *e, struct proxy_frontend *fe)
{
	atomic_fetch_sub(&fe->cur_conns, 1);
	atomic_fetch_sub(&e->cur_conns, 1);
}

static void pause_listener(struct proxy_worker *w, struct proxy_wlistener *wl)
{
	if (!wl->paused) {
		ev_io_stop(w->loop, &wl->io);
		wl->paused = true;
	}
}

/* Restart paused listeners of w (those of fe only, or all when fe is NULL);
 * each checks its limits again at its next accept. */
static void resume_listeners(struct proxy_worker *w, struct proxy_frontend *fe)
{
	if (w->emfile_paused)
		return;
	for (struct list_node *n = w->listeners.next; n != &w->listeners; n = n->next) {
		struct proxy_wlistener *wl = list_entry(n, struct proxy_wlistener, link);

		if (wl->paused && (fe == NULL || wl->fe == fe)) {
			wl->paused = false;
			ev_io_start(w->loop, &wl->io);
		}
	}
}

/* A limit stopped accepting: count it and say so (rate-limited), since the
 * clients it holds back only wait in the kernel's listen queue. */
static void note_limit(struct proxy_worker *w, struct proxy_wlistener *wl, enum limit_hit hit,
		       uint32_t fe_max)
{
	struct proxy_engine *e = w->e;
	uint32_t suppressed;

	if (hit == LIMIT_GLOBAL)
		atomic_fetch_add_explicit(&e->maxconn_reached, 1, memory_order_relaxed);
	else
		atomic_fetch_add_explicit(&wl->fe->maxconn_reached, 1, memory_order_relaxed);
	if (!log_ratelimit_ok(hit == LIMIT_GLOBAL ? &w->rl_limit : &wl->rl_limit, util_now_ms(), 1,
			      &suppressed))
		return;
	if (hit == LIMIT_GLOBAL)
		log_warn("global maxconn reached (%u of %u connections): new clients wait in the "
			 "listen queues (%u similar messages suppressed)",
			 atomic_load(&e->cur_conns), e->conf.maxconn, suppressed);
	else
		log_warn("listen %s: maxconn reached (%u of %u connections): new clients wait "
			 "in the listen queue (%u similar messages suppressed)",
			 wl->fe->name, atomic_load(&wl->fe->cur_conns), fe_max, suppressed);
}

/* Stop accepting at a limit. The bit says "wake me when a slot frees"; the
 * second check closes the race with a slot that freed before the bit was
 * visible. */
static void pause_at_limit(struct proxy_worker *w, struct proxy_wlistener *wl, enum limit_hit hit,
			   uint32_t fe_max)
{
	struct proxy_engine *e = w->e;
	uint64_t bit = 1ull << w->id;

	note_limit(w, wl, hit, fe_max);
	if (hit == LIMIT_GLOBAL) {
		for (struct list_node *n = w->listeners.next; n != &w->listeners; n = n->next)
			pause_listener(w, list_entry(n, struct proxy_wlistener, link));
		atomic_fetch_or(&e->paused_workers, bit);
		if (atomic_load(&e->cur_conns) < e->conf.maxconn &&
		    (atomic_fetch_and(&e->paused_workers, ~bit) & bit))
			resume_listeners(w, NULL);
		return;
	}
	pause_listener(w, wl);
	atomic_fetch_or(&wl->fe->paused_workers, bit);
	if (atomic_load(&wl->fe->cur_conns) < fe_max &&
	    (atomic_fetch_and(&wl->fe->paused_workers, ~bit) & bit))
		resume_listeners(w, wl->fe);
}

static void wake_paused(struct proxy_worker *w, _Atomic uint64_t *mask, struct proxy_frontend *fe)
{
	uint64_t m = atomic_exchange(mask, 0);

	for (unsigned i = 0; m != 0 && i < w->e->nworkers; i++) {
		struct proxy_worker *o = &w->e->workers[i];

		if (!(m & (1ull << i)))
			continue;
		if (o == w) {
			resume_listeners(w, fe);
		} else {
			atomic_store(&o->kick_resume, true);
			ev_async_send(o->loop, &o->async);
		}
	}
}

void proxy_worker_slot_freed(struct proxy_worker *w, struct proxy_frontend *fe)
{
	if (atomic_load_explicit(&w->e->paused_workers, memory_order_relaxed) != 0)
		wake_paused(w, &w->e->paused_workers, NULL);
	if (atomic_load_explicit(&fe->paused_workers, memory_order_relaxed) != 0)
		wake_paused(w, &fe->paused_workers, fe);
}

void proxy_worker_queue_kick(struct proxy_worker *w)
{
	proxy_session_retry_queue(w);
	for (unsigned i = 0; i < w->e->nworkers; i++) {
		struct proxy_worker *o = &w->e->workers[i];

		if (o != w && atomic_load(&o->nqueued) > 0) {
			atomic_store(&o->kick_queue, true);
			ev_async_send(o->loop, &o->async);
		}
	}
}

static void emfile_pause(struct proxy_worker *w, int err)
{
	log_ratelimited(&w->rl_accept, util_now_ms(), 1, LOGL_ERR,
			"worker %u: accept failed: %s; pausing accepts for %dms", w->id,
			strerror(err), (int)(EMFILE_PAUSE_S * 1000));
	for (struct list_node *n = w->listeners.next; n != &w->listeners; n = n->next)
		pause_listener(w, list_entry(n, struct proxy_wlistener, link));
	w->emfile_paused = true;
	ev_timer_set(&w->pause_timer, EMFILE_PAUSE_S, 0.0);
	ev_timer_start(w->loop, &w->pause_timer);
}

static void on_pause_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct proxy_worker *w = UTIL_CONTAINER_OF(t, struct proxy_worker, pause_timer);

	(void)loop;
	(void)revents;
	w->emfile_paused = false;
	resume_listeners(w, NULL);
}

bool proxy_guard_admit(struct proxy_worker *w, struct proxy_frontend *fe,
		       const struct util_addr *client, struct guard_ticket *tk)
{
	uint64_t now_us = util_now_us();
	enum guard_verdict v = guard_admit(fe->guard, client, now_us, tk);
	char abuf[UTIL_ADDR_STRLEN];
	uint32_t suppressed;

	if (v == GUARD_OK)
		return true;
	/* a flood must not cost a formatted line per client */
	if (!log_enabled(LOGL_NOTICE) ||
	    !log_ratelimit_ok(&w->rl_refused, now_us / 1000, 5, &suppressed))
		return false;
	util_addr_fmt(client, abuf, sizeof(abuf));
	if (suppressed > 0)
		log_notice("listen %s: refused %s: %s (%u similar messages suppressed)", fe->name,
			   abuf, guard_verdict_name(v), suppressed);
	else
		log_notice("listen %s: refused %s: %s", fe->name, abuf, guard_verdict_name(v));
	return false;
}

/* Close a refused client at once with a reset: no state stays behind. */
static void refuse(int fd)
{
	struct linger l = {.l_onoff = 1, .l_linger = 0};

	setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
	close(fd);
}

static void on_accept(struct ev_loop *loop, ev_io *io, int revents)
{
	struct proxy_wlistener *wl = UTIL_CONTAINER_OF(io, struct proxy_wlistener, io);
	struct proxy_worker *w = io->data;
	struct proxy_frontend *fe = wl->fe;
	struct proxy_fe_settings *st = atomic_load_explicit(&fe->settings, memory_order_acquire);

	(void)loop;
	(void)revents;
	for (int i = 0; i < ACCEPT_BATCH; i++) {
		struct util_addr client;
		enum limit_hit hit = reserve_slot(w->e, fe, st->maxconn);
		struct guard_ticket tk = {0};
		int fd;

		if (hit != LIMIT_NONE) {
			pause_at_limit(w, wl, hit, st->maxconn);
			return;
		}
		client.len = sizeof(client.u);
		fd = accept4(io->fd, &client.u.sa, &client.len, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			int err = errno;

			unreserve_slot(w->e, fe);
			if (err == EINTR || err == ECONNABORTED)
				continue;
			if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM)
				emfile_pause(w, err);
			return;
		}
		/* an accept-proxy listener asks once the header named the client */
		if (!st->accept_proxy && guard_active(fe->guard) &&
		    !proxy_guard_admit(w, fe, &client, &tk)) {
			refuse(fd);
			unreserve_slot(w->e, fe);
			continue;
		}
		proxy_session_start(w, fe, fd, &client, &tk);
	}
}

static void attach_bind(struct proxy_worker *w, struct proxy_frontend *fe, uint64_t bind_id, int fd)
{
	struct proxy_wlistener *wl = calloc(1, sizeof(*wl));

	if (wl == NULL) {
		log_err("worker %u: out of memory attaching listen %s", w->id, fe->name);
		close(fd);
		return;
	}
	wl->fe = fe;
	wl->bind_id = bind_id;
	proxy_frontend_get(fe);
	ev_io_init(&wl->io, on_accept, fd, EV_READ);
	wl->io.data = w;
	list_add_tail(&w->listeners, &wl->link);
	if (w->emfile_paused)
		wl->paused = true;
	else
		ev_io_start(w->loop, &wl->io);
}

/* Close this worker's listeners of fe (one bind, or all when bind_id is 0;
 * every listener when fe is NULL); when drain is set, after serving the
 * clients whose handshake the kernel already answered (lclose.c). */
static void detach_fe(struct proxy_worker *w, struct proxy_frontend *fe, uint64_t bind_id,
		      bool drain)
{
	struct list_node *n = w->listeners.next;

	while (n != &w->listeners) {
		struct proxy_wlistener *wl = list_entry(n, struct proxy_wlistener, link);

		n = n->next;
		if (fe != NULL && (wl->fe != fe || (bind_id != 0 && wl->bind_id != bind_id)))
			continue;
		if (drain) {
			proxy_lclose_start(w, wl);
			continue;
		}
		ev_io_stop(w->loop, &wl->io);
		close(wl->io.fd);
		list_del(&wl->link);
		proxy_frontend_put(wl->fe);
		free(wl);
	}
}

static void close_all(struct proxy_worker *w)
{
	while (!list_empty(&w->sessions)) {
		struct proxy_session *s = list_entry(w->sessions.next, struct proxy_session, link);

		proxy_session_close(s, PROXY_END_SHUTDOWN);
	}
}

/* Close the sessions using srv (NULL: every session), each at a random
 * point of the window so that their clients do not all reconnect in the
 * same millisecond. */
static void close_server(struct proxy_worker *w, struct pool_server *srv, uint32_t spread_ms)
{
	struct list_node *n = w->sessions.next;

	while (n != &w->sessions) {
		struct proxy_session *s = list_entry(n, struct proxy_session, link);

		n = n->next;
		if (srv != NULL && s->srv != srv)
			continue;
		proxy_session_kill_at(s, spread_ms ? util_rand64(&w->rng) % spread_ms + 1 : 0);
	}
}

/* Close fe's sessions from clients inside cidr (sources kill). */
static void close_sources(struct proxy_worker *w, struct proxy_frontend *fe,
			  const struct util_cidr *cidr)
{
	struct list_node *n = w->sessions.next;
	char buf[UTIL_CIDR_STRLEN];
	unsigned closed = 0;

	while (n != &w->sessions) {
		struct proxy_session *s = list_entry(n, struct proxy_session, link);

		n = n->next;
		if (s->fe != fe || !util_cidr_contains(cidr, &s->client))
			continue;
		proxy_session_close(s, PROXY_END_KILLED);
		closed++;
	}
	if (closed > 0)
		log_notice("listen %s: worker %u closed %u connection%s from %s (control socket)",
			   fe->name, w->id, closed, closed == 1 ? "" : "s",
			   util_cidr_fmt(cidr, buf, sizeof(buf)));
}

static void free_dead(struct proxy_worker *w)
{
	while (!list_empty(&w->dead)) {
		struct proxy_session *s = list_entry(w->dead.next, struct proxy_session, link);

		list_del(&s->link);
		proxy_session_free(s);
	}
}

static void on_async(struct ev_loop *loop, ev_async *a, int revents)
{
	struct proxy_worker *w = UTIL_CONTAINER_OF(a, struct proxy_worker, async);
	struct proxy_cmd *cmds;
	size_t n;

	(void)revents;
	if (atomic_exchange(&w->kick_resume, false))
		resume_listeners(w, NULL);
	if (atomic_exchange(&w->kick_queue, false))
		proxy_session_retry_queue(w);
	pthread_mutex_lock(&w->cmd_lock);
	cmds = w->cmds;
	n = w->ncmds;
	w->cmds = NULL;
	w->ncmds = w->cmd_cap = 0;
	pthread_mutex_unlock(&w->cmd_lock);
	for (size_t i = 0; i < n; i++) {
		switch (cmds[i].type) {
		case PROXY_CMD_ATTACH:
			attach_bind(w, cmds[i].fe, cmds[i].bind_id, cmds[i].fd);
			break;
		case PROXY_CMD_DETACH:
			detach_fe(w, cmds[i].fe, cmds[i].bind_id, cmds[i].drain);
			if (cmds[i].drain)
				atomic_fetch_sub(&w->e->detaching, 1);
			break;
		case PROXY_CMD_CLOSE_ALL:
			/* now: the listeners still closing too, else they could
			 * add clients nobody closes */
			proxy_lclose_abort(w);
			close_all(w);
			break;
		case PROXY_CMD_CLOSE_SERVER:
			close_server(w, cmds[i].srv, cmds[i].spread_ms);
			break;
		case PROXY_CMD_CLOSE_SOURCES:
			close_sources(w, cmds[i].fe, &cmds[i].cidr);
			break;
		case PROXY_CMD_EXIT:
			detach_fe(w, NULL, 0, false);
			proxy_lclose_abort(w);
			close_all(w);
			ev_break(loop, EVBREAK_ALL);
			break;
		}
		if (cmds[i].fe != NULL)
			proxy_frontend_put(cmds[i].fe);
		if (cmds[i].srv != NULL)
			pool_server_put(cmds[i].srv);
	}
	free(cmds);
}

/* Before blocking: free closed sessions and go QSBR-offline. */
static void on_prepare(struct ev_loop *loop, ev_prepare *p, int revents)
{
	struct proxy_worker *w = UTIL_CONTAINER_OF(p, struct proxy_worker, prepare);

	(void)loop;
	(void)revents;
	free_dead(w);
	qsbr_offline(&w->qs);
}

static void on_check(struct ev_loop *loop, ev_check *c, int revents)
{
	struct proxy_worker *w = UTIL_CONTAINER_OF(c, struct proxy_worker, check);

	(void)loop;
	(void)revents;
	qsbr_online(w->e->qsbr, &w->qs);
}

static void *worker_main(void *arg)
{
	struct proxy_worker *w = arg;

	ev_run(w->loop, 0);
	free_dead(w);
	qsbr_offline(&w->qs);
	return NULL;
}

_Static_assert(UTIL_MAX_WORKERS <= 64, "paused_workers has a bit per worker");

struct proxy_engine *proxy_engine_new(const struct proxy_engine_conf *conf, struct qsbr *q)
{
	struct proxy_engine *e = calloc(1, sizeof(*e));

	if (e == NULL)
		return NULL;
	e->conf = *conf;
	e->qsbr = q;
	e->nworkers = conf->workers;
	e->workers = calloc(conf->workers, sizeof(*e->workers));
	if (e->workers == NULL || conf->workers > UTIL_MAX_WORKERS) {
		free(e->workers);
		free(e);
		return NULL;
	}
	for (unsigned i = 0; i < e->nworkers; i++) {
		struct proxy_worker *w = &e->workers[i];

		w->e = e;
		w->id = i;
		list_init(&w->listeners);
		list_init(&w->closing);
		list_init(&w->sessions);
		list_init(&w->queue);
		list_init(&w->dead);
		pthread_mutex_init(&w->cmd_lock, NULL);
		w->loop = ev_loop_new(EVBACKEND_EPOLL | EVFLAG_NOENV);
		if (w->loop == NULL || qsbr_add_reader(q, &w->qs) < 0) {
			log_err("worker %u: cannot create its event loop", i);
			e->nworkers = i + (w->loop != NULL);
			proxy_engine_free(e);
			return NULL;
		}
		if (getrandom(&w->rng, sizeof(w->rng), 0) != sizeof(w->rng) || w->rng == 0)
			w->rng = util_now_us() | 1;
		ev_timer_init(&w->lclose_timer, NULL, 0.0, 0.0);
		ev_async_init(&w->async, on_async);
		ev_async_start(w->loop, &w->async);
		ev_prepare_init(&w->prepare, on_prepare);
		ev_prepare_start(w->loop, &w->prepare);
		ev_check_init(&w->check, on_check);
		ev_check_start(w->loop, &w->check);
		ev_timer_init(&w->pause_timer, on_pause_timer, 0.0, 0.0);
		proxy_worker_trim_init(w);
		proxy_krelay_worker_init(w);
	}
	return e;
}

int proxy_engine_start(struct proxy_engine *e)
{
	for (unsigned i = 0; i < e->nworkers; i++) {
		if (pthread_create(&e->workers[i].thread, NULL, worker_main, &e->workers[i]) != 0) {
			log_err("cannot start worker %u: %s", i, strerror(errno));
			return -1;
		}
		e->started = true;
	}
	return 0;
}

void proxy_engine_free(struct proxy_engine *e)
{
	if (e == NULL)
		return;
	for (unsigned i = 0; i < e->nworkers && e->started; i++)
		send_cmd(&e->workers[i], PROXY_CMD_EXIT, NULL);
	for (unsigned i = 0; i < e->nworkers; i++) {
		struct proxy_worker *w = &e->workers[i];

		if (e->started && w->thread)
			pthread_join(w->thread, NULL);
		if (w->loop == NULL)
			continue;
		/* commands that arrived after EXIT still hold references */
		for (size_t c = 0; c < w->ncmds; c++) {
			if (w->cmds[c].fd >= 0)
				close(w->cmds[c].fd);
			if (w->cmds[c].fe != NULL)
				proxy_frontend_put(w->cmds[c].fe);
			if (w->cmds[c].srv != NULL)
				pool_server_put(w->cmds[c].srv);
		}
		free(w->cmds);
		detach_fe(w, NULL, 0, false);
		proxy_lclose_abort(w);
		close_all(w);
		free_dead(w);
		proxy_worker_pools_free(w);
		proxy_krelay_worker_free(w);
		ev_loop_destroy(w->loop);
		pthread_mutex_destroy(&w->cmd_lock);
	}
	free(e->workers);
	free(e);
}
