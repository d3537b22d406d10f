/* bench-sources: many distinct client sources, each opening one short
 * connection, for tools/bench-guard (the per-source table under a flood of
 * new addresses). Connection i comes from its own source: 127.16.0.0 + i
 * (bound before connect), or with -6 from 127.0.0.1 with a PROXY v2 header
 * naming 2001:db8:HI:LO::1, a /64 of its own (for an accept-proxy
 * listener). Each sends one byte and waits for its echo (served) or a
 * close or reset (refused), then resets the connection, so that nothing
 * waits in TIME_WAIT. Prints one JSON line: counts, seconds, the slowest
 * connection and the least productive second (a stall shows as 0). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include "sluice/util.h"

#define BS_TIMEOUT_NS 5000000000ULL /* a connection not done by then failed */
#define BS_MAX_SECONDS 3600

enum bs_state { BS_FREE, BS_CONNECTING, BS_READING };

struct bs_slot {
	int fd;
	enum bs_state state;
	uint64_t start_ns;
	uint64_t idx; /* which connection: its source */
};

static uint64_t bs_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* PROXY v2 header (PROXY command, TCP over IPv6) naming src. */
static size_t bs_header(uint8_t *h, uint64_t i, uint16_t dport)
{
	static const uint8_t sig[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
					0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};
	uint8_t src[16] = {0x20, 0x01, 0x0d, 0xb8}, dst[16] = {0};

	memcpy(h, sig, 12);
	h[12] = 0x21;
	h[13] = 0x21;
	h[14] = 0;
	h[15] = 36;
	src[4] = (uint8_t)(i >> 24);
	src[5] = (uint8_t)(i >> 16);
	src[6] = (uint8_t)(i >> 8);
	src[7] = (uint8_t)i;
	src[15] = 1;
	dst[15] = 1;
	memcpy(h + 16, src, 16);
	memcpy(h + 32, dst, 16);
	h[48] = 0x9c;
	h[49] = 0x40;
	h[50] = (uint8_t)(dport >> 8);
	h[51] = (uint8_t)dport;
	return 52;
}

static void bs_reset_close(int fd)
{
	struct linger l = {.l_onoff = 1, .l_linger = 0};

	setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
	close(fd);
}

int main(int argc, char **argv)
{
	uint64_t total = 1000000, conc = 256, next = 0, done = 0, served = 0, refused = 0,
		 failed = 0, worst_ns = 0, over_1s = 0, *per_s;
	struct sockaddr_in dst = {.sin_family = AF_INET};
	bool v6 = false;
	struct bs_slot *slots;
	struct rlimit rl;
	uint64_t t0, last_sec = 0;
	int ep, opt;

	while ((opt = getopt(argc, argv, "n:c:6")) != -1) {
		if (opt == 'n')
			total = strtoull(optarg, NULL, 10);
		else if (opt == 'c')
			conc = strtoull(optarg, NULL, 10);
		else if (opt == '6')
			v6 = true;
		else
			goto usage;
	}
	if (optind + 1 != argc || conc == 0 || conc > 10000 || total == 0 || total > 15000000) {
	usage:
		fprintf(stderr, "usage: bench-sources [-n CONNECTIONS] [-c CONCURRENT] [-6] "
				"127.0.0.1:PORT\n");
		return 2;
	}
	{
		struct util_addr a;
		char err[128];

		if (util_addr_parse(argv[optind], false, &a, err, sizeof(err)) < 0 ||
		    a.u.sa.sa_family != AF_INET) {
			fprintf(stderr, "bench-sources: %s\n", err);
			return 2;
		}
		dst = a.u.in4;
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	slots = calloc(conc, sizeof(*slots));
	per_s = calloc(BS_MAX_SECONDS, sizeof(*per_s));
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (slots == NULL || per_s == NULL || ep < 0)
		return 1;
	t0 = bs_now_ns();
	while (done < total) {
		struct epoll_event ev[256];
		uint64_t now = bs_now_ns();
		int n;

		/* fill free slots */
		for (uint64_t k = 0; k < conc && next < total; k++) {
			struct bs_slot *s = &slots[k];
			struct epoll_event e = {.events = EPOLLOUT, .data.u64 = k};
			int one = 1;

			if (s->state != BS_FREE)
				continue;
			s->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
			if (s->fd < 0)
				break;
			setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
			if (!v6) {
				struct sockaddr_in src = {.sin_family = AF_INET};
				uint32_t a = (127u << 24) + (16u << 16) + (uint32_t)next;

				src.sin_addr.s_addr = htonl(a);
				/* the port is chosen at connect: one source, few ports */
				setsockopt(s->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one,
					   sizeof(one));
				if (bind(s->fd, (struct sockaddr *)&src, sizeof(src)) < 0) {
					close(s->fd);
					failed++;
					done++;
					next++;
					continue;
				}
			}
			if (connect(s->fd, (struct sockaddr *)&dst, sizeof(dst)) < 0 &&
			    errno != EINPROGRESS) {
				close(s->fd);
				failed++;
				done++;
				next++;
				continue;
			}
			s->state = BS_CONNECTING;
			s->start_ns = now;
			s->idx = next;
			epoll_ctl(ep, EPOLL_CTL_ADD, s->fd, &e);
			next++;
		}
		n = epoll_wait(ep, ev, 256, 100);
		now = bs_now_ns();
		for (int j = 0; j < n; j++) {
			struct bs_slot *s = &slots[ev[j].data.u64];
			uint8_t buf[64];
			bool end = false;

			if (s->state == BS_CONNECTING) {
				uint8_t msg[64];
				size_t len = 0;
				int err = 0;
				socklen_t el = sizeof(err);

				getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &el);
				if (err != 0) {
					failed++;
					end = true;
				} else {
					if (v6)
						len = bs_header(msg, s->idx, ntohs(dst.sin_port));
					msg[len++] = 'x';
					if (send(s->fd, msg, len, MSG_NOSIGNAL) < 0) {
						refused++;
						end = true;
					} else {
						struct epoll_event e = {.events = EPOLLIN,
									.data.u64 = ev[j].data.u64};

						s->state = BS_READING;
						epoll_ctl(ep, EPOLL_CTL_MOD, s->fd, &e);
					}
				}
			} else {
				ssize_t r = recv(s->fd, buf, sizeof(buf), 0);

				if (r < 0 && errno == EAGAIN)
					continue;
				if (r > 0)
					served++;
				else
					refused++;
				end = true;
			}
			if (end) {
				uint64_t took = now - s->start_ns, sec = (now - t0) / 1000000000ULL;

				worst_ns = UTIL_MAX(worst_ns, took);
				over_1s += took >= 1000000000ULL; /* a SYN sent again, or a stall */
				if (sec < BS_MAX_SECONDS)
					per_s[sec]++;
				epoll_ctl(ep, EPOLL_CTL_DEL, s->fd, NULL);
				bs_reset_close(s->fd);
				s->state = BS_FREE;
				done++;
			}
		}
		/* time out what hangs */
		for (uint64_t k = 0; k < conc; k++) {
			struct bs_slot *s = &slots[k];

			if (s->state == BS_FREE || now - s->start_ns < BS_TIMEOUT_NS)
				continue;
			epoll_ctl(ep, EPOLL_CTL_DEL, s->fd, NULL);
			bs_reset_close(s->fd);
			s->state = BS_FREE;
			failed++;
			done++;
			worst_ns = UTIL_MAX(worst_ns, now - s->start_ns);
		}
		last_sec = (now - t0) / 1000000000ULL;
	}
	{
		double secs = (double)(bs_now_ns() - t0) / 1e9;
		uint64_t least = UINT64_MAX, empty = 0;

		/* whole seconds only: the last one is partial */
		for (uint64_t s = 0; s < last_sec && s < BS_MAX_SECONDS; s++) {
			least = UTIL_MIN(least, per_s[s]);
			empty += per_s[s] == 0;
		}
		printf("{\"connections\":%" PRIu64 ",\"served\":%" PRIu64 ",\"refused\":%" PRIu64
		       ",\"failed\":%" PRIu64 ",\"seconds\":%.2f,\"per_second\":%.0f,"
		       "\"slowest_ms\":%.1f,\"over_1s\":%" PRIu64 ",\"least_in_a_second\":%" PRIu64
		       ",\"empty_seconds\":%" PRIu64 "}\n",
		       done, served, refused, failed, secs, (double)done / secs,
		       (double)worst_ns / 1e6, over_1s, least == UINT64_MAX ? 0 : least, empty);
	}
	return 0;
}
