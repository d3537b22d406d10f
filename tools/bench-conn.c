/* bench-conn: open-loop fresh-connection latency at a fixed rate, for
 * tools/bench. Connection i is due at start + i/rate; its latency runs from
 * that scheduled time (not from when we got round to it, so a stall is
 * charged in full: no coordinated omission) to the last byte of the reply.
 * The request is an HTTP GET, or with -x the bytes of a file (a captured
 * TLS ClientHello) that an echo backend sends back whole. */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>

#include "sluice/util.h"

#define BC_RESP_MAX 4096

enum bc_state { BC_FREE, BC_CONNECTING, BC_READING };

struct bc_slot {
	int fd;
	enum bc_state state;
	uint64_t sched_ns;
	size_t got;  /* bytes of reply received */
	size_t want; /* head + body length once the head is known, else 0 */
	char head[BC_RESP_MAX];
};

static uint64_t bc_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static int bc_cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static uint32_t bc_pct(const uint32_t *v, size_t n, double p)
{
	size_t i;

	if (n == 0)
		return 0;
	i = (size_t)(p / 100.0 * (double)(n - 1) + 0.5);
	return v[UTIL_MIN(i, n - 1)];
}

/* Parse the head once complete; sets s->want. Returns false when malformed. */
static bool bc_parse_head(struct bc_slot *s)
{
	const char *end = memmem(s->head, s->got, "\r\n\r\n", 4);
	const char *p;
	uint64_t cl = 0;

	if (!end)
		return s->got < BC_RESP_MAX - 1;
	if (s->got < 12 || strncmp(s->head + 9, "200", 3) != 0)
		return false;
	for (p = s->head; p && p < end; p = memchr(p, '\n', (size_t)(end - p))) {
		if (*p == '\n')
			p++;
		if (strncasecmp(p, "content-length:", 15) == 0)
			cl = strtoull(p + 15, NULL, 10);
	}
	s->want = (size_t)(end - s->head) + 4 + (size_t)cl;
	return true;
}

static void bc_usage(void)
{
	fprintf(stderr,
		"usage: bench-conn [-r RATE] [-d SECONDS] [-w WARMUP_S] [-t TIMEOUT_MS] "
		"[-m MAX_INFLIGHT] [-p PATH | -x FILE] ADDR:PORT\n"
		"prints one JSON line: counts and latency percentiles in microseconds\n"
		"  -x FILE  send FILE's bytes (at most 64 KiB) instead of an HTTP request and\n"
		"           wait for as many back (an echo backend)\n");
}

/* The bytes of path (at most max) into a new buffer; exits on error. */
static char *bc_slurp(const char *path, size_t max, size_t *len)
{
	char *buf = malloc(max + 1);
	FILE *f = fopen(path, "rb");

	if (buf == NULL || f == NULL) {
		fprintf(stderr, "bench-conn: %s: %s\n", path, strerror(errno));
		exit(2);
	}
	*len = fread(buf, 1, max + 1, f);
	fclose(f);
	if (*len == 0 || *len > max) {
		fprintf(stderr, "bench-conn: %s: empty or larger than %zu bytes\n", path, max);
		exit(2);
	}
	return buf;
}

static long bc_opt(const char *s, long min, long max)
{
	long v;

	if (util_parse_long(s, min, max, &v) < 0) {
		fprintf(stderr, "bench-conn: bad number '%s'\n", s);
		exit(2);
	}
	return v;
}

int main(int argc, char **argv)
{
	long rate = 2000, dur_s = 10, warm_s = 1, timeout_ms = 2000, max_inflight = 1000;
	const char *path = "/", *payload = NULL;
	struct util_addr addr;
	char err[128], reqbuf[512], *req = reqbuf;
	size_t reqlen, total, warm, next = 0, ok = 0, nlat = 0, inflight = 0;
	size_t errors = 0, timeouts = 0, dropped = 0;
	uint64_t t0, step_ns, timeout_ns, last_scan = 0, deadline;
	struct bc_slot *slots;
	uint32_t *lat;
	int opt, ep, tfd;
	double sum = 0;

	while ((opt = getopt(argc, argv, "r:d:w:t:m:p:x:h")) != -1) {
		switch (opt) {
		case 'r':
			rate = bc_opt(optarg, 1, 1000000);
			break;
		case 'd':
			dur_s = bc_opt(optarg, 1, 3600);
			break;
		case 'w':
			warm_s = bc_opt(optarg, 0, 3600);
			break;
		case 't':
			timeout_ms = bc_opt(optarg, 1, 60000);
			break;
		case 'm':
			max_inflight = bc_opt(optarg, 1, 15000);
			break;
		case 'p':
			path = optarg;
			break;
		case 'x':
			payload = optarg;
			break;
		default:
			bc_usage();
			return 2;
		}
	}
	if (optind != argc - 1) {
		bc_usage();
		return 2;
	}
	if (util_addr_parse(argv[optind], false, &addr, err, sizeof(err)) < 0) {
		fprintf(stderr, "bench-conn: %s: %s\n", argv[optind], err);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	{
		struct rlimit rl;

		if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
			rl.rlim_cur = rl.rlim_max;
			setrlimit(RLIMIT_NOFILE, &rl);
		}
	}
	if (payload != NULL)
		req = bc_slurp(payload, 65536, &reqlen);
	else
		reqlen = (size_t)snprintf(
		    req, sizeof(reqbuf),
		    "GET %s HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n", path);
	if (reqlen >= sizeof(reqbuf) && payload == NULL) {
		fprintf(stderr, "bench-conn: path too long\n");
		return 2;
	}
	total = (size_t)(rate * (dur_s + warm_s));
	warm = (size_t)(rate * warm_s);
	step_ns = 1000000000ULL / (uint64_t)rate;
	timeout_ns = (uint64_t)timeout_ms * 1000000ULL;
	slots = calloc((size_t)max_inflight, sizeof(*slots));
	lat = calloc(total, sizeof(*lat));
	ep = epoll_create1(EPOLL_CLOEXEC);
	tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (!slots || !lat || ep < 0 || tfd < 0) {
		perror("bench-conn: setup");
		return 1;
	}
	{
		struct epoll_event ev = {.events = EPOLLIN, .data.u64 = UINT64_MAX};

		epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &ev);
	}
	t0 = bc_now_ns() + 10000000ULL;
	deadline = t0 + (uint64_t)(dur_s + warm_s) * 1000000000ULL + timeout_ns + 1000000000ULL;
	for (;;) {
		struct epoll_event evs[256];
		uint64_t now = bc_now_ns();
		int n;

		/* Start every connection that is due. */
		while (next < total && t0 + next * step_ns <= now) {
			struct bc_slot *s = NULL;

			for (size_t k = 0; k < (size_t)max_inflight; k++) {
				/* slots are reused round-robin from a rotating origin */
				size_t idx = (next + k) % (size_t)max_inflight;

				if (slots[idx].state == BC_FREE) {
					s = &slots[idx];
					break;
				}
			}
			if (!s) {
				dropped++;
				next++;
				continue;
			}
			memset(s, 0, offsetof(struct bc_slot, head));
			s->sched_ns = t0 + next * step_ns;
			next++;
			s->fd = socket(addr.u.sa.sa_family,
				       SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
			if (s->fd < 0 ||
			    (connect(s->fd, &addr.u.sa, addr.len) < 0 && errno != EINPROGRESS)) {
				if (s->fd >= 0)
					close(s->fd);
				errors++;
				continue;
			}
			struct epoll_event ev = {.events = EPOLLOUT,
						 .data.u64 = (uint64_t)(s - slots)};

			epoll_ctl(ep, EPOLL_CTL_ADD, s->fd, &ev);
			s->state = BC_CONNECTING;
			inflight++;
		}
		/* Expire stuck connections every 10 ms. */
		if (now - last_scan > 10000000ULL) {
			last_scan = now;
			for (size_t k = 0; k < (size_t)max_inflight; k++) {
				struct bc_slot *s = &slots[k];

				if (s->state != BC_FREE && now - s->sched_ns > timeout_ns) {
					close(s->fd);
					s->state = BC_FREE;
					inflight--;
					timeouts++;
				}
			}
		}
		if (next >= total && inflight == 0)
			break;
		if (now > deadline)
			break;
		if (next < total) {
			struct itimerspec its = {0};
			uint64_t due = t0 + next * step_ns;

			its.it_value.tv_sec = (time_t)(due / 1000000000ULL);
			its.it_value.tv_nsec = (long)(due % 1000000000ULL);
			timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL);
		}
		n = epoll_wait(ep, evs, 256, 10);
		for (int i = 0; i < n; i++) {
			struct bc_slot *s;
			bool fail = false, done = false;

			if (evs[i].data.u64 == UINT64_MAX) {
				uint64_t exp;

				if (read(tfd, &exp, sizeof(exp)) < 0)
					(void)0; /* nothing to do: the loop checks the clock */
				continue;
			}
			s = &slots[evs[i].data.u64];
			if (s->state == BC_CONNECTING) {
				if (evs[i].events & (EPOLLERR | EPOLLHUP) ||
				    send(s->fd, req, reqlen, MSG_NOSIGNAL) != (ssize_t)reqlen) {
					fail = true;
				} else {
					struct epoll_event ev = {.events = EPOLLIN,
								 .data.u64 = evs[i].data.u64};

					epoll_ctl(ep, EPOLL_CTL_MOD, s->fd, &ev);
					s->state = BC_READING;
				}
			} else if (s->state == BC_READING) {
				char sink[65536];
				ssize_t r;
				char *dst =
				    s->got < BC_RESP_MAX - 1 && s->want == 0 && payload == NULL
					? s->head + s->got
					: sink;
				size_t room = dst == sink ? sizeof(sink) : BC_RESP_MAX - 1 - s->got;

				r = recv(s->fd, dst, room, 0);
				if (r > 0 && payload != NULL) {
					/* the echo of the payload, whole */
					s->got += (size_t)r;
					if (s->got > reqlen)
						fail = true;
					else if (s->got == reqlen)
						done = true;
				} else if (r > 0) {
					s->got += (size_t)r;
					if (s->want == 0 && !bc_parse_head(s))
						fail = true;
					else if (s->want && s->got >= s->want)
						done = true;
				} else if (r == 0) {
					fail = true; /* EOF before the whole reply */
				} else if (errno != EAGAIN && errno != EINTR) {
					fail = true;
				}
			}
			if (done) {
				size_t idx = (size_t)((s->sched_ns - t0) / step_ns);
				uint64_t us = (bc_now_ns() - s->sched_ns) / 1000;

				ok++;
				if (idx >= warm) {
					lat[nlat++] = (uint32_t)UTIL_MIN(us, (uint64_t)UINT32_MAX);
					sum += (double)us;
				}
			}
			if (done || fail) {
				close(s->fd);
				s->state = BC_FREE;
				inflight--;
				if (fail)
					errors++;
			}
		}
	}
	timeouts += inflight;
	qsort(lat, nlat, sizeof(*lat), bc_cmp_u32);
	printf("{\"scheduled\": %zu, \"ok\": %zu, \"errors\": %zu, \"timeouts\": %zu, "
	       "\"dropped\": %zu, \"measured\": %zu, \"rate\": %ld, \"mean_us\": %.1f, "
	       "\"p50_us\": %u, \"p90_us\": %u, \"p99_us\": %u, \"p999_us\": %u, \"max_us\": %u}\n",
	       next, ok, errors, timeouts, dropped, nlat, rate, nlat ? sum / (double)nlat : 0.0,
	       bc_pct(lat, nlat, 50), bc_pct(lat, nlat, 90), bc_pct(lat, nlat, 99),
	       bc_pct(lat, nlat, 99.9), nlat ? lat[nlat - 1] : 0);
	free(lat);
	free(slots);
	if (req != reqbuf)
		free(req);
	return 0;
}
