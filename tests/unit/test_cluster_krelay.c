/* Unit tests for the kernel relay (src/cluster/krelay.c) through real
 * socket pairs on loopback: the kernel has no BPF_PROG_TEST_RUN for SK_SKB
 * programs. A pair (p, q) plays sluice's two sockets of one connection:
 * a -- p  [relay]  q -- b. Needs CAP_BPF and CAP_NET_ADMIN; skips otherwise. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sluice/krelay.h"
#include "sluice/util.h"

static struct krelay *g_k;

static void drop_note(void *arg, uint32_t slot)
{
	(void)arg;
	(void)slot;
}

/* Forget the notes earlier tests left in the ring. */
static void krelay_drain_all(void)
{
	krelay_ring_drain(g_k, 0, drop_note, NULL);
}
static char g_why[256] = "not loaded";

#define REQUIRE_KRELAY()                                                                           \
	do {                                                                                       \
		if (g_k == NULL) {                                                                 \
			print_message("skipped: %s\n", g_why);                                     \
			skip();                                                                    \
		}                                                                                  \
	} while (0)

struct conn {
	int a, p, q, b; /* client, sluice's client side, sluice's server side, server */
};

/* Two TCP connections on loopback: a -> p and q -> b. */
static void conn_open(struct conn *c)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001)};
	socklen_t len = sizeof(sin);
	int l = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(l >= 0);
	assert_int_equal(bind(l, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(l, 4), 0);
	assert_int_equal(getsockname(l, (struct sockaddr *)&sin, &len), 0);
	c->a = socket(AF_INET, SOCK_STREAM, 0);
	assert_int_equal(connect(c->a, (struct sockaddr *)&sin, sizeof(sin)), 0);
	c->p = accept(l, NULL, NULL);
	c->q = socket(AF_INET, SOCK_STREAM, 0);
	assert_int_equal(connect(c->q, (struct sockaddr *)&sin, sizeof(sin)), 0);
	c->b = accept(l, NULL, NULL);
	assert_true(c->p >= 0 && c->b >= 0);
	close(l);
}

static void conn_close(struct conn *c)
{
	close(c->a);
	close(c->p);
	close(c->q);
	close(c->b);
}

static bool wait_readable(int fd, int ms)
{
	struct pollfd pfd = {.fd = fd, .events = POLLIN};

	return poll(&pfd, 1, ms) == 1;
}

/* Read exactly n bytes from fd within 5 s. */
static void read_exact(int fd, char *buf, size_t n)
{
	size_t got = 0;

	while (got < n) {
		ssize_t r;

		assert_true(wait_readable(fd, 5000));
		r = recv(fd, buf + got, n - got, 0);
		assert_true(r > 0);
		got += (size_t)r;
	}
}

static void send_all(int fd, const char *buf, size_t n)
{
	assert_int_equal(send(fd, buf, n, 0), (ssize_t)n);
}

/* Released, bytes go from a to b and back without user space, counted. */
static void test_redirect_both_ways(void **state)
{
	struct krelay_pair kp;
	struct krelay_count c0, c1;
	struct conn c;
	char buf[64];

	(void)state;
	REQUIRE_KRELAY();
	conn_open(&c);
	assert_int_equal(krelay_pair_add(g_k, c.p, c.q, 1 << 20, 0, &kp), 0);
	krelay_release(g_k, &kp, 0);
	krelay_release(g_k, &kp, 1);
	send_all(c.a, "hello", 5);
	read_exact(c.b, buf, 5);
	assert_memory_equal(buf, "hello", 5);
	send_all(c.b, "world!", 6);
	read_exact(c.a, buf, 6);
	assert_memory_equal(buf, "world!", 6);
	krelay_count(g_k, &kp, 0, &c0);
	krelay_count(g_k, &kp, 1, &c1);
	assert_int_equal(c0.fwd, 5);
	assert_int_equal(c1.fwd, 6);
	assert_int_equal(c0.passed + c1.passed, 0);
	/* nothing reached sluice's sockets */
	assert_false(wait_readable(c.p, 0));
	krelay_pair_del(g_k, &kp);
	conn_close(&c);
}

/* While held, bytes are passed up to the socket they arrived on. */
static void test_hold_passes(void **state)
{
	struct krelay_pair kp;
	struct krelay_count c0;
	struct conn c;
	char buf[64];

	(void)state;
	REQUIRE_KRELAY();
	conn_open(&c);
	assert_int_equal(krelay_pair_add(g_k, c.p, c.q, 1 << 20, 0, &kp), 0);
	send_all(c.a, "early", 5);
	read_exact(c.p, buf, 5);
	assert_memory_equal(buf, "early", 5);
	krelay_count(g_k, &kp, 0, &c0);
	assert_int_equal(c0.passed, 5);
	assert_int_equal(c0.fwd, 0);
	/* released, but a passed byte not written on yet keeps the order:
	 * later bytes are passed too */
	krelay_release(g_k, &kp, 0);
	krelay_release(g_k, &kp, 1);
	send_all(c.a, "late", 4);
	read_exact(c.p, buf, 4);
	assert_memory_equal(buf, "late", 4);
	/* user space wrote them on: redirecting resumes */
	send_all(c.q, "earlylate", 9);
	krelay_steer(g_k, &kp, 0, 9, 0);
	send_all(c.a, "kernel", 6);
	read_exact(c.b, buf, 15);
	assert_memory_equal(buf, "earlylatekernel", 15);
	krelay_count(g_k, &kp, 0, &c0);
	assert_int_equal(c0.fwd, 6);
	assert_int_equal(c0.passed, 9);
	krelay_pair_del(g_k, &kp);
	conn_close(&c);
}

static void on_note(void *arg, uint32_t slot)
{
	uint32_t *got = arg;

	got[got[0] + 1] = slot;
	got[0]++;
}

/* The ring hears when passing starts for a direction with nothing on its
 * way, once per episode: the worker watches no input on relayed sockets. */
static void test_note_when_passing_starts(void **state)
{
	struct krelay_pair kp;
	struct conn c;
	uint32_t got[8] = {0};
	char buf[8];
	struct pollfd pfd;

	(void)state;
	REQUIRE_KRELAY();
	conn_open(&c);
	assert_int_equal(krelay_pair_add(g_k, c.p, c.q, 1 << 20, 0, &kp), 0);
	krelay_drain_all();
	send_all(c.a, "ab", 2);
	pfd.fd = krelay_ring_fd(g_k, 0);
	pfd.events = POLLIN;
	assert_int_equal(poll(&pfd, 1, 5000), 1);
	krelay_ring_drain(g_k, 0, on_note, got);
	assert_int_equal(got[0], 1);
	assert_int_equal(got[1], kp.slot[0]);
	/* more bytes of the same episode (passed, not yet taken): no note */
	read_exact(c.p, buf, 2);
	send_all(c.a, "cd", 2);
	read_exact(c.p, buf, 2);
	krelay_ring_drain(g_k, 0, on_note, got);
	assert_int_equal(got[0], 1);
	krelay_pair_del(g_k, &kp);
	conn_close(&c);
}

/* Once the bytes in flight reach the cap, the next ones are passed up. */
static void test_cap_passes(void **state)
{
	struct krelay_pair kp;
	struct krelay_count c0;
	struct conn c;
	char *big = calloc(1, 8192), buf[16];

	(void)state;
	REQUIRE_KRELAY();
	conn_open(&c);
	assert_int_equal(krelay_pair_add(g_k, c.p, c.q, 4096, 0, &kp), 0);
	krelay_release(g_k, &kp, 0);
	krelay_release(g_k, &kp, 1);
	send_all(c.a, big, 4096);
	/* wait until the program saw them: b gets them */
	read_exact(c.b, big, 4096);
	send_all(c.a, "over", 4);
	read_exact(c.p, buf, 4);
	assert_memory_equal(buf, "over", 4);
	krelay_count(g_k, &kp, 0, &c0);
	assert_int_equal(c0.fwd, 4096);
	assert_int_equal(c0.passed, 4);
	free(big);
	krelay_pair_del(g_k, &kp);
	conn_close(&c);
}

/* A bare FIN is not passed on: the relayed socket reads end of stream,
 * and the far side sees nothing until user space shuts it down. */
static void test_fin_stays(void **state)
{
	struct krelay_pair kp;
	struct conn c;
	char buf[8];

	(void)state;
	REQUIRE_KRELAY();
	conn_open(&c);
	assert_int_equal(krelay_pair_add(g_k, c.p, c.q, 1 << 20, 0, &kp), 0);
	krelay_release(g_k, &kp, 0);
	krelay_release(g_k, &kp, 1);
	send_all(c.a, "x", 1);
	read_exact(c.b, buf, 1);
	shutdown(c.a, SHUT_WR);
	assert_true(wait_readable(c.p, 5000));
	assert_int_equal(recv(c.p, buf, sizeof(buf), 0), 0);
	assert_false(wait_readable(c.b, 50));
	/* the other way still works */
	send_all(c.b, "y", 1);
	read_exact(c.a, buf, 1);
	assert_int_equal(buf[0], 'y');
	krelay_pair_del(g_k, &kp);
	conn_close(&c);
}

/* A socket that already has the peer's FIN cannot be inserted: the caller
 * keeps the connection in user space, and nothing stays in the maps. */
static void test_insert_after_fin_fails(void **state)
{
	struct krelay_pair kp;
	struct conn c;
	char buf[8];

	(void)state;
	REQUIRE_KRELAY();
	conn_open(&c);
	shutdown(c.a, SHUT_WR);
	assert_true(wait_readable(c.p, 5000));
	assert_int_equal(recv(c.p, buf, sizeof(buf), 0), 0);
	assert_int_equal(krelay_pair_add(g_k, c.p, c.q, 1 << 20, 0, &kp), -1);
	assert_int_equal(errno, EOPNOTSUPP);
	/* both slots went back: a new pair of the others still works */
	conn_close(&c);
	conn_open(&c);
	assert_int_equal(krelay_pair_add(g_k, c.p, c.q, 1 << 20, 0, &kp), 0);
	krelay_pair_del(g_k, &kp);
	conn_close(&c);
}

/* max_pairs is a hard limit. */
static void test_full(void **state)
{
	struct krelay_pair kp[5];
	struct conn c[5];
	int i;

	(void)state;
	REQUIRE_KRELAY();
	for (i = 0; i < 4; i++) {
		conn_open(&c[i]);
		assert_int_equal(krelay_pair_add(g_k, c[i].p, c[i].q, 1 << 20, 0, &kp[i]), 0);
	}
	conn_open(&c[4]);
	assert_int_equal(krelay_pair_add(g_k, c[4].p, c[4].q, 1 << 20, 0, &kp[4]), -1);
	assert_int_equal(errno, ENOSPC);
	for (i = 0; i < 4; i++) {
		krelay_pair_del(g_k, &kp[i]);
		conn_close(&c[i]);
	}
	conn_close(&c[4]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_redirect_both_ways),
	    cmocka_unit_test(test_hold_passes),
	    cmocka_unit_test(test_cap_passes),
	    cmocka_unit_test(test_note_when_passing_starts),
	    cmocka_unit_test(test_fin_stays),
	    cmocka_unit_test(test_insert_after_fin_fails),
	    cmocka_unit_test(test_full),
	};
	int rc;

	g_k = krelay_open(4, 1, g_why, sizeof(g_why));
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	krelay_close(g_k);
	return rc;
}
