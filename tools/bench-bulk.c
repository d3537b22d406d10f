/* bench-bulk: bulk upload throughput over S parallel streams, for tools/bench.
 * Each stream sends as fast as it can for D seconds, then half-closes and
 * reads the byte count a `sluice-backend -m sink` writes back at EOF: only
 * bytes the far end confirmed are counted, over the time until the last
 * confirmation arrived. */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sys/epoll.h>
#include <sys/socket.h>

#include "sluice/util.h"

#define BB_MAX_STREAMS 256
#define BB_CHUNK (256 * 1024)

enum bb_state { BB_CONNECTING, BB_SENDING, BB_WAITING, BB_DONE, BB_FAILED };

struct bb_stream {
	int fd;
	enum bb_state state;
	uint64_t sent;
	uint64_t confirmed;
	char reply[32];
	size_t rlen;
};

static char bb_buf[BB_CHUNK];

static uint64_t bb_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void bb_usage(void)
{
	fprintf(stderr, "usage: bench-bulk [-s STREAMS] [-d SECONDS] [-t TIMEOUT_S] ADDR:PORT\n"
			"the far end must be `sluice-backend -m sink`; prints one JSON line\n");
}

static long bb_opt(const char *s, long min, long max)
{
	long v;

	if (util_parse_long(s, min, max, &v) < 0) {
		fprintf(stderr, "bench-bulk: bad number '%s'\n", s);
		exit(2);
	}
	return v;
}

static void bb_set(int ep, struct bb_stream *s, uint32_t events, int op)
{
	struct epoll_event ev = {.events = events, .data.ptr = s};

	epoll_ctl(ep, op, s->fd, &ev);
}

/* The stream's deadline passed: stop sending and ask for the count. */
static void bb_half_close(int ep, struct bb_stream *s)
{
	shutdown(s->fd, SHUT_WR);
	s->state = BB_WAITING;
	bb_set(ep, s, EPOLLIN, EPOLL_CTL_MOD);
}

/* Handle readiness of one stream; returns true when it has finished. */
static bool bb_step(int ep, struct bb_stream *s, uint32_t events, uint64_t stop_ns)
{
	if (s->state == BB_CONNECTING) {
		int soerr = 0;
		socklen_t sl = sizeof(soerr);

		if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0 || soerr) {
			s->state = BB_FAILED;
			return true;
		}
		s->state = BB_SENDING;
	}
	if (s->state == BB_SENDING) {
		/* A bounded burst, so the other streams get their turn. */
		for (int i = 0; i < 64; i++) {
			ssize_t w;

			if (bb_now_ns() >= stop_ns) {
				bb_half_close(ep, s);
				return false;
			}
			w = send(s->fd, bb_buf, sizeof(bb_buf), MSG_NOSIGNAL);
			if (w < 0) {
				if (errno == EAGAIN || errno == EINTR)
					return false;
				s->state = BB_FAILED;
				return true;
			}
			s->sent += (uint64_t)w;
		}
		return false;
	}
	if (s->state == BB_WAITING && (events & (EPOLLIN | EPOLLHUP | EPOLLERR))) {
		ssize_t r = recv(s->fd, s->reply + s->rlen, sizeof(s->reply) - 1 - s->rlen, 0);

		if (r > 0) {
			s->rlen += (size_t)r;
			s->reply[s->rlen] = '\0';
			if (s->rlen < sizeof(s->reply) - 1 && !memchr(s->reply, '\n', s->rlen))
				return false;
		} else if (r < 0 && (errno == EAGAIN || errno == EINTR)) {
			return false;
		}
		if (s->rlen && memchr(s->reply, '\n', s->rlen)) {
			s->confirmed = strtoull(s->reply, NULL, 10);
			s->state = BB_DONE;
		} else {
			s->state = BB_FAILED;
		}
		return true;
	}
	return false;
}

int main(int argc, char **argv)
{
	long nstreams = 1, dur_s = 5, timeout_s = 30;
	struct bb_stream streams[BB_MAX_STREAMS];
	struct util_addr addr;
	char err[128];
	uint64_t t0, t_end, stop_ns, hard_ns, sent = 0, confirmed = 0;
	long left, failed = 0;
	int opt, ep;

	while ((opt = getopt(argc, argv, "s:d:t:h")) != -1) {
		switch (opt) {
		case 's':
			nstreams = bb_opt(optarg, 1, BB_MAX_STREAMS);
			break;
		case 'd':
			dur_s = bb_opt(optarg, 1, 3600);
			break;
		case 't':
			timeout_s = bb_opt(optarg, 1, 3600);
			break;
		default:
			bb_usage();
			return 2;
		}
	}
	if (optind != argc - 1) {
		bb_usage();
		return 2;
	}
	if (util_addr_parse(argv[optind], false, &addr, err, sizeof(err)) < 0) {
		fprintf(stderr, "bench-bulk: %s: %s\n", argv[optind], err);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	memset(bb_buf, 'b', sizeof(bb_buf));
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0) {
		perror("bench-bulk: epoll_create1");
		return 1;
	}
	t0 = bb_now_ns();
	stop_ns = t0 + (uint64_t)dur_s * 1000000000ULL;
	hard_ns = stop_ns + (uint64_t)timeout_s * 1000000000ULL;
	left = nstreams;
	for (long i = 0; i < nstreams; i++) {
		struct bb_stream *s = &streams[i];

		memset(s, 0, sizeof(*s));
		s->fd = socket(addr.u.sa.sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (s->fd < 0 ||
		    (connect(s->fd, &addr.u.sa, addr.len) < 0 && errno != EINPROGRESS)) {
			fprintf(stderr, "bench-bulk: connect: %s\n", strerror(errno));
			return 1;
		}
		s->state = BB_CONNECTING;
		bb_set(ep, s, EPOLLOUT, EPOLL_CTL_ADD);
	}
	t_end = t0;
	while (left > 0) {
		struct epoll_event evs[BB_MAX_STREAMS];
		uint64_t now = bb_now_ns();
		int n;

		if (now >= hard_ns)
			break;
		/* Streams stalled in a full send buffer still stop on time. */
		if (now >= stop_ns)
			for (long i = 0; i < nstreams; i++)
				if (streams[i].state == BB_SENDING)
					bb_half_close(ep, &streams[i]);
		n = epoll_wait(ep, evs, BB_MAX_STREAMS, 20);
		for (int i = 0; i < n; i++) {
			struct bb_stream *s = evs[i].data.ptr;

			if (s->state == BB_DONE || s->state == BB_FAILED)
				continue;
			if (bb_step(ep, s, evs[i].events, stop_ns)) {
				left--;
				t_end = bb_now_ns();
				epoll_ctl(ep, EPOLL_CTL_DEL, s->fd, NULL);
			}
		}
	}
	for (long i = 0; i < nstreams; i++) {
		sent += streams[i].sent;
		confirmed += streams[i].confirmed;
		if (streams[i].state != BB_DONE)
			failed++;
		close(streams[i].fd);
	}
	{
		double secs = (double)(t_end - t0) / 1e9;

		printf("{\"streams\": %ld, \"sent\": %" PRIu64 ", \"bytes\": %" PRIu64
		       ", \"failed\": %ld, \"seconds\": %.3f, \"gbps\": %.4f}\n",
		       nstreams, sent, confirmed, failed, secs,
		       secs > 0 ? (double)confirmed / secs / 1e9 : 0.0);
	}
	return failed ? 1 : 0;
}
