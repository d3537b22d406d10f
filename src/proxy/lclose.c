/* lclose: close a worker's listening socket without resetting a client
 * whose handshake the kernel already answered. Called by engine.c when a
 * listener goes away (SIGTERM, reload); the closing listener keeps being
 * served until its SYN queue and accept queue are both empty. */
#include <errno.h>
#include <linux/filter.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proxy-int.h"
#include "sluice/guard.h"
#include "sluice/log.h"
#include "sluice/proxy.h"
#include "sluice/util.h"

/* the second look, then the next ones: a SYN that passed just before the
 * filter was attached is in the SYN queue well within the first */
#define LCLOSE_FIRST_S 0.001
#define LCLOSE_POLL_S 0.005
#define LCLOSE_POLL_MAX_S 0.25
/* a handshake whose final ACK is lost waits for the SYN-ACK retransmit
 * (1 s, then 3 s): beyond this the listener closes anyway */
#define LCLOSE_MAX_MS 3500
#define TCPF_SYN_RECV_BIT (1u << 3) /* TCP_SYN_RECV == 3 */

/* Drop segments that open a connection (SYN without ACK) and let all
 * others through: the last ACK of a handshake already answered, and the
 * data behind it, still reach the socket. The offsets are from the TCP
 * header, where a TCP socket filter starts. */
static int lclose_stop_syns(int fd)
{
	struct sock_filter code[] = {
	    BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 13),	     /* flags */
	    BPF_STMT(BPF_ALU | BPF_AND | BPF_K, 0x12),	     /* SYN | ACK */
	    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0x02, 0, 1), /* SYN alone? */
	    BPF_STMT(BPF_RET | BPF_K, 0),
	    BPF_STMT(BPF_RET | BPF_K, 0xffffffffu),
	};
	struct sock_fprog prog = {.len = sizeof(code) / sizeof(code[0]), .filter = code};

	return setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof(prog));
}

/* Does the sock_diag record m describe a connection to the local address
 * of the listener at ss (any address when it listens on all)? */
static bool lclose_matches(const struct inet_diag_msg *m, const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)ss;

		return m->id.idiag_sport == in->sin_port &&
		       (in->sin_addr.s_addr == htonl(INADDR_ANY) ||
			memcmp(m->id.idiag_src, &in->sin_addr, 4) == 0);
	}
	const struct sockaddr_in6 *in6 = (const void *)ss;

	return m->id.idiag_sport == in6->sin6_port &&
	       (IN6_IS_ADDR_UNSPECIFIED(&in6->sin6_addr) ||
		memcmp(m->id.idiag_src, &in6->sin6_addr, 16) == 0);
}

/* Count the matching records of one reply batch into the pending count of
 * every closing listener of w they belong to; returns 1 when the dump is
 * over, 0 for more, -1 on error. */
static int lclose_count_batch(struct proxy_worker *w, const char *buf, int len)
{
	/* len stays signed: NLMSG_NEXT may take it below zero */
	for (const struct nlmsghdr *h = (const void *)buf; NLMSG_OK(h, len);
	     h = NLMSG_NEXT(h, len)) {
		if (h->nlmsg_type == NLMSG_DONE) {
			/* a dump that failed part-way says so here */
			if (h->nlmsg_len >= NLMSG_LENGTH(sizeof(int)) &&
			    *(const int *)NLMSG_DATA(h) < 0)
				return -1;
			return 1;
		}
		if (h->nlmsg_type == NLMSG_ERROR)
			return -1;
		if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY ||
		    h->nlmsg_len < NLMSG_LENGTH(sizeof(struct inet_diag_msg)))
			continue;
		const struct inet_diag_msg *m = NLMSG_DATA(h);

		for (struct list_node *n = w->closing.next; n != &w->closing; n = n->next) {
			struct proxy_wlistener *wl = list_entry(n, struct proxy_wlistener, link);

			if (wl->local.ss_family == m->idiag_family && wl->pending >= 0 &&
			    lclose_matches(m, &wl->local))
				wl->pending++;
		}
	}
	return 0;
}

/* One sock_diag dump of the handshakes the kernel answered (SYN-ACK sent)
 * and that are not completed yet, in one address family: the request
 * sockets in state SYN_RECV. Each record is counted for the closing
 * listeners of w on its local address. The kernel walks every TCP socket
 * of the host for a dump (tens of thousands of TIME_WAIT ones on a busy
 * front door), so a worker makes one dump per family and look, never one
 * per closing listener. Returns 0, or -1 if that cannot be asked. */
static int lclose_dump(struct proxy_worker *w, int family)
{
	struct {
		struct nlmsghdr nh;
		struct inet_diag_req_v2 r;
	} req;
	struct sockaddr_nl nl = {.nl_family = AF_NETLINK};
	char buf[8192] __attribute__((aligned(NLMSG_ALIGNTO)));
	int nfd, done = 0;

	memset(&req, 0, sizeof(req));
	req.nh.nlmsg_len = sizeof(req);
	req.nh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
	req.nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	req.r.sdiag_family = (uint8_t)family;
	req.r.sdiag_protocol = IPPROTO_TCP;
	req.r.idiag_states = TCPF_SYN_RECV_BIT;
	nfd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
	if (nfd < 0)
		return -1;
	if (sendto(nfd, &req, sizeof(req), 0, (struct sockaddr *)&nl, sizeof(nl)) < 0) {
		close(nfd);
		return -1;
	}
	while (done == 0) {
		ssize_t n = recv(nfd, buf, sizeof(buf), 0);

		if (n < 0 && errno == EINTR)
			continue;
		done = n <= 0 ? -1 : lclose_count_batch(w, buf, (int)n);
	}
	close(nfd);
	return done < 0 ? -1 : 0;
}

/* Look at the SYN queues of every closing listener of w: sets each one's
 * pending count (-1 when it could not be read). Returns how long the look
 * took, in seconds. */
static double lclose_look(struct proxy_worker *w)
{
	static const int families[] = {AF_INET, AF_INET6};
	uint64_t t0 = util_now_us();

	for (size_t f = 0; f < sizeof(families) / sizeof(families[0]); f++) {
		bool any = false;

		for (struct list_node *n = w->closing.next; n != &w->closing; n = n->next) {
			struct proxy_wlistener *wl = list_entry(n, struct proxy_wlistener, link);

			if (wl->local.ss_family != families[f])
				continue;
			wl->pending = 0;
			any = true;
		}
		if (!any || lclose_dump(w, families[f]) == 0)
			continue;
		for (struct list_node *n = w->closing.next; n != &w->closing; n = n->next) {
			struct proxy_wlistener *wl = list_entry(n, struct proxy_wlistener, link);

			if (wl->local.ss_family == families[f])
				wl->pending = -1;
		}
	}
	return (double)(util_now_us() - t0) / 1e6;
}

/* Serve what waits in the accept queue, above the limits: these clients
 * are connected already. */
static void lclose_accept_all(struct proxy_worker *w, struct proxy_wlistener *wl)
{
	wl->accept_blocked = false;
	for (int i = 0; i < 100000; i++) {
		struct util_addr client;
		int fd;

		client.len = sizeof(client.u);
		fd = accept4(wl->io.fd, &client.u.sa, &client.len, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
			    errno == ENOMEM) {
				/* out of descriptors: the timer tries again, the
				 * watcher would only spin */
				wl->accept_blocked = true;
				ev_io_stop(w->loop, &wl->io);
			}
			return;
		}
		struct proxy_fe_settings *st = atomic_load(&wl->fe->settings);
		struct guard_ticket tk = {0};

		/* the listener closes, its policy still holds */
		if (!st->accept_proxy && guard_active(wl->fe->guard) &&
		    !proxy_guard_admit(w, wl->fe, &client, &tk)) {
			close(fd);
			continue;
		}
		atomic_fetch_add(&w->e->cur_conns, 1);
		atomic_fetch_add(&wl->fe->cur_conns, 1);
		proxy_session_start(w, wl->fe, fd, &client, &tk);
	}
}

static void lclose_on_accept(struct ev_loop *loop, ev_io *io, int revents)
{
	struct proxy_wlistener *wl = UTIL_CONTAINER_OF(io, struct proxy_wlistener, io);

	(void)loop;
	(void)revents;
	lclose_accept_all(io->data, wl);
}

static void lclose_finish(struct proxy_worker *w, struct proxy_wlistener *wl)
{
	ev_io_stop(w->loop, &wl->io);
	close(wl->io.fd);
	list_del(&wl->link);
	proxy_frontend_put(wl->fe);
	free(wl);
	atomic_fetch_sub(&w->e->closing_listeners, 1);
}

static void log_no_diag_once(const struct proxy_wlistener *wl)
{
	static _Atomic bool said;

	if (!atomic_exchange(&said, true))
		log_notice("listen %s: cannot read its SYN queue through sock_diag: closing 100ms "
			   "after it stopped taking new clients",
			   wl->fe->name);
}

/* Close the listeners whose SYN queue was empty at the previous look and
 * still is, after serving their accept queue. The SYN queue as sock_diag
 * shows it holds both the request sockets and the new sockets not yet
 * established, and a new socket joins the accept queue before it leaves
 * SYN_RECV: a handshake that is no longer seen there is in the accept
 * queue, which is served after the look. */
static void lclose_on_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct proxy_worker *w = UTIL_CONTAINER_OF(t, struct proxy_worker, lclose_timer);
	double took = lclose_look(w), every;
	uint64_t now = util_now_ms();
	struct list_node *n = w->closing.next;

	(void)loop;
	(void)revents;
	while (n != &w->closing) {
		struct proxy_wlistener *wl = list_entry(n, struct proxy_wlistener, link);
		int pending = wl->local.ss_family != 0 ? wl->pending : -1;
		bool over = now >= wl->close_deadline_ms;

		n = n->next;
		lclose_accept_all(w, wl);
		if (!wl->accept_blocked && !ev_is_active(&wl->io))
			ev_io_start(w->loop, &wl->io);
		if (pending < 0) {
			/* no sock_diag (no inet_diag in the kernel, or no
			 * descriptor left): allow answered handshakes 100 ms */
			if (!over && now < wl->close_deadline_ms - LCLOSE_MAX_MS + 100)
				continue;
			if (!wl->accept_blocked) {
				log_no_diag_once(wl);
				lclose_finish(w, wl);
				continue;
			}
		}
		if ((pending == 0 && wl->syn_quiet && !wl->accept_blocked) || over) {
			if (pending > 0 || wl->accept_blocked)
				log_warn(
				    "listen %s: closing after %dms with %d handshakes unfinished%s",
				    wl->fe->name, LCLOSE_MAX_MS, pending > 0 ? pending : 0,
				    wl->accept_blocked ? " and clients left in its accept queue "
							 "(out of descriptors)"
						       : "");
			lclose_finish(w, wl);
			continue;
		}
		wl->syn_quiet = pending == 0;
	}
	if (list_empty(&w->closing)) {
		ev_timer_stop(w->loop, t);
		return;
	}
	/* a look costs what the host's socket tables cost to walk: keep it
	 * under a fifth of the worker's time, whatever the host holds */
	every = UTIL_MIN(LCLOSE_POLL_MAX_S, UTIL_MAX(LCLOSE_POLL_S, 4.0 * took));
	if (every != t->repeat) {
		ev_timer_stop(w->loop, t);
		ev_timer_set(t, every, every);
		ev_timer_start(w->loop, t);
	}
}

void proxy_lclose_start(struct proxy_worker *w, struct proxy_wlistener *wl)
{
	ev_io_stop(w->loop, &wl->io);
	list_del(&wl->link);
	list_add_tail(&w->closing, &wl->link);
	atomic_fetch_add(&w->e->closing_listeners, 1);
	wl->close_deadline_ms = util_now_ms() + LCLOSE_MAX_MS;
	if (lclose_stop_syns(wl->io.fd) < 0) {
		log_warn("listen %s: cannot stop new clients before closing: %s", wl->fe->name,
			 strerror(errno));
		lclose_accept_all(w, wl);
		lclose_finish(w, wl);
		return;
	}
	{
		socklen_t sl = sizeof(wl->local);

		if (getsockname(wl->io.fd, (struct sockaddr *)&wl->local, &sl) < 0 ||
		    (wl->local.ss_family != AF_INET && wl->local.ss_family != AF_INET6))
			wl->local.ss_family = 0;
	}
	/* the timer's first look comes within LCLOSE_FIRST_S; two quiet looks
	 * close the listener */
	wl->syn_quiet = false;
	ev_set_cb(&wl->io, lclose_on_accept);
	ev_io_start(w->loop, &wl->io);
	lclose_accept_all(w, wl);
	if (!ev_is_active(&w->lclose_timer)) {
		ev_timer_init(&w->lclose_timer, lclose_on_timer, LCLOSE_FIRST_S, LCLOSE_POLL_S);
		ev_timer_start(w->loop, &w->lclose_timer);
	}
}

void proxy_lclose_abort(struct proxy_worker *w)
{
	while (!list_empty(&w->closing))
		lclose_finish(w, list_entry(w->closing.next, struct proxy_wlistener, link));
	if (w->loop != NULL)
		ev_timer_stop(w->loop, &w->lclose_timer);
}
