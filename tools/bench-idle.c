/* bench-idle: open N connections to an echo service, prove each one works
 * end to end with a one-byte round trip, then hold them idle, for tools/bench
 * memory figures. Prints "ready OK FAILED" once settled and holds until stdin
 * reaches EOF or SIGTERM/SIGINT arrives. */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include "sluice/util.h"

enum bi_state { BI_NEW, BI_CONNECTING, BI_WAITING, BI_OPEN, BI_FAILED };

struct bi_conn {
	int fd;
	enum bi_state state;
};

static volatile sig_atomic_t bi_stop;

static void bi_on_signal(int sig)
{
	(void)sig;
	bi_stop = 1;
}

static void bi_usage(void)
{
	fprintf(stderr, "usage: bench-idle [-c CONCURRENCY] [-t TIMEOUT_S] ADDR:PORT N\n");
}

static long bi_opt(const char *s, long min, long max)
{
	long v;

	if (util_parse_long(s, min, max, &v) < 0) {
		fprintf(stderr, "bench-idle: bad number '%s'\n", s);
		exit(2);
	}
	return v;
}

static void bi_fail(int ep, struct bi_conn *c)
{
	epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	c->fd = -1;
	c->state = BI_FAILED;
}

int main(int argc, char **argv)
{
	long conc = 256, timeout_s = 60, n;
	struct util_addr addr;
	struct bi_conn *conns;
	struct sigaction sa;
	struct rlimit rl;
	char err[128];
	long next = 0, pending = 0, open_n = 0, failed = 0;
	uint64_t hard_ms;
	int opt, ep;

	while ((opt = getopt(argc, argv, "c:t:h")) != -1) {
		switch (opt) {
		case 'c':
			conc = bi_opt(optarg, 1, 10000);
			break;
		case 't':
			timeout_s = bi_opt(optarg, 1, 3600);
			break;
		default:
			bi_usage();
			return 2;
		}
	}
	if (optind != argc - 2) {
		bi_usage();
		return 2;
	}
	if (util_addr_parse(argv[optind], false, &addr, err, sizeof(err)) < 0) {
		fprintf(stderr, "bench-idle: %s: %s\n", argv[optind], err);
		return 2;
	}
	n = bi_opt(argv[optind + 1], 1, 1000000);
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
		if ((rlim_t)n + 16 > rl.rlim_cur) {
			fprintf(stderr,
				"bench-idle: %ld connections exceed the descriptor limit %lu\n", n,
				(unsigned long)rl.rlim_cur);
			return 2;
		}
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = bi_on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	conns = calloc((size_t)n, sizeof(*conns));
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (!conns || ep < 0) {
		perror("bench-idle: setup");
		return 1;
	}
	hard_ms = util_now_ms() + (uint64_t)timeout_s * 1000;
	while ((next < n || pending > 0) && !bi_stop && util_now_ms() < hard_ms) {
		struct epoll_event evs[256];
		int k;

		while (next < n && pending < conc) {
			struct bi_conn *c = &conns[next++];
			struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = c};

			c->fd = socket(addr.u.sa.sa_family,
				       SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
			if (c->fd < 0 ||
			    (connect(c->fd, &addr.u.sa, addr.len) < 0 && errno != EINPROGRESS)) {
				if (c->fd >= 0)
					close(c->fd);
				c->fd = -1;
				c->state = BI_FAILED;
				failed++;
				continue;
			}
			epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
			c->state = BI_CONNECTING;
			pending++;
		}
		k = epoll_wait(ep, evs, 256, 100);
		for (int i = 0; i < k; i++) {
			struct bi_conn *c = evs[i].data.ptr;

			if (c->state == BI_CONNECTING) {
				struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};

				if ((evs[i].events & (EPOLLERR | EPOLLHUP)) ||
				    send(c->fd, "x", 1, MSG_NOSIGNAL) != 1) {
					bi_fail(ep, c);
					pending--;
					failed++;
					continue;
				}
				epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
				c->state = BI_WAITING;
			} else if (c->state == BI_WAITING) {
				char b;
				ssize_t r = recv(c->fd, &b, 1, 0);

				if (r < 0 && (errno == EAGAIN || errno == EINTR))
					continue;
				pending--;
				if (r != 1) {
					bi_fail(ep, c);
					failed++;
					continue;
				}
				/* Idle from now on: no longer watched. */
				epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
				c->state = BI_OPEN;
				open_n++;
			}
		}
	}
	failed += n - open_n - failed;
	printf("ready %ld %ld\n", open_n, failed);
	fflush(stdout);
	while (!bi_stop) {
		char b[64];
		ssize_t r = read(0, b, sizeof(b));

		if (r == 0 || (r < 0 && errno != EINTR))
			break;
	}
	for (long i = 0; i < n; i++)
		if (conns[i].fd > 0)
			close(conns[i].fd);
	free(conns);
	return 0;
}
