/* Unit tests for the second-chance tc program: the binary moves itself into
 * a private network namespace, attaches the program to a veth uplink and a
 * veth cluster interface, and runs it on crafted frames (BPF_PROG_TEST_RUN)
 * against real sockets; forwarded copies are captured on the far end of the
 * cluster link. Needs root (CAP_BPF, CAP_NET_ADMIN, CAP_SYS_ADMIN); skips
 * otherwise. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netpacket/packet.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/pkt_cls.h>

#include "sluice/cluster.h"
#include "sluice/util.h"

#define ETH_P_CLUSTER 0x88B5
#define TH_FIN 0x01
#define TH_SYN 0x02
#define TH_RST 0x04
#define TH_ACK 0x10

static bool g_ready;
static const char *g_why = "not set up";
static struct cluster *g_cl;
static int g_up, g_clif, g_cap = -1;
static int g_lis4 = -1, g_lis6 = -1;
static uint16_t g_port4, g_port6;

static const uint8_t MAC_UP[6] = {2, 0, 0, 0, 0, 1};
static const uint8_t MAC_ROUTER[6] = {2, 0, 0, 0, 0, 2};
static const uint8_t MAC_CL[6] = {2, 0, 0, 0, 1, 1};
static const uint8_t MAC_PEER0[6] = {2, 0, 0, 0, 1, 2};
static const uint8_t MAC_PEER1[6] = {2, 0, 0, 0, 1, 3};
static const uint8_t MAC_STRANGER[6] = {2, 0, 0, 0, 1, 9};

#define REQUIRE_NETNS()                                                                            \
	do {                                                                                       \
		if (!g_ready) {                                                                    \
			print_message("skipped: %s\n", g_why);                                     \
			skip();                                                                    \
		}                                                                                  \
	} while (0)

static int sh(const char *cmd)
{
	int rc = system(cmd);

	return rc == -1 ? -1 : WEXITSTATUS(rc);
}

static int write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	int rc;

	if (f == NULL)
		return -1;
	rc = fputs(text, f) < 0 ? -1 : 0;
	return fclose(f) != 0 ? -1 : rc;
}

static int listen_on(int family, uint16_t *port)
{
	struct util_addr a;
	int fd = socket(family, SOCK_STREAM, 0);

	if (fd < 0)
		return -1;
	util_addr_parse_host(family == AF_INET ? "127.0.0.1" : "::1", &a);
	if (bind(fd, &a.u.sa, a.len) < 0 || listen(fd, 16) < 0 ||
	    getsockname(fd, &a.u.sa, &a.len) < 0) {
		close(fd);
		return -1;
	}
	*port = util_addr_port(&a);
	return fd;
}

static int setup(void **state)
{
	struct cluster_setup s;
	struct util_addr served[2];
	char err[CLUSTER_ERRLEN];
	struct sockaddr_ll ll;

	(void)state;
	if (geteuid() != 0) {
		g_why = "cluster tests need root (a private network namespace, BPF)";
		return 0;
	}
	if (unshare(CLONE_NEWNET) < 0) {
		g_why = "unshare(CLONE_NEWNET) failed: no namespace support or privilege";
		return 0;
	}
	if (sh("ip link set lo up && "
	       "ip link add up0 address 02:00:00:00:00:01 type veth peer name up1 && "
	       "ip link add cl0 address 02:00:00:00:01:01 type veth peer name cl1 && "
	       "ip link set up0 up && ip link set up1 up && ip link set cl0 up && "
	       "ip link set cl1 up") != 0) {
		g_why = "could not create the veth pairs with ip(8)";
		return 0;
	}
	/* always answer with SYN cookies, so that a cookie can be tested */
	write_file("/proc/sys/net/ipv4/tcp_syncookies", "2");
	memset(&s, 0, sizeof(s));
	s.cluster.ifindex = g_clif = (int)if_nametoindex("cl0");
	memcpy(s.cluster.mac, MAC_CL, 6);
	util_strlcpy(s.cluster.name, "cl0", sizeof(s.cluster.name));
	s.uplinks[0].ifindex = g_up = (int)if_nametoindex("up0");
	memcpy(s.uplinks[0].mac, MAC_UP, 6);
	util_strlcpy(s.uplinks[0].name, "up0", sizeof(s.uplinks[0].name));
	s.nuplinks = 1;
	s.npeers = 2;
	g_cl = cluster_open(&s, NULL, err, sizeof(err));
	if (g_cl == NULL) {
		static char why[CLUSTER_ERRLEN + 32];

		snprintf(why, sizeof(why), "cannot load: %s", err);
		g_why = why;
		return 0;
	}
	cluster_set_peer(g_cl, 0, MAC_PEER0);
	cluster_set_peer(g_cl, 1, MAC_PEER1);
	g_lis4 = listen_on(AF_INET, &g_port4);
	g_lis6 = listen_on(AF_INET6, &g_port6);
	util_addr_parse_host("127.0.0.1", &served[0]);
	util_addr_set_port(&served[0], g_port4);
	util_addr_parse_host("::1", &served[1]);
	util_addr_set_port(&served[1], g_port6);
	if (g_lis4 < 0 || g_lis6 < 0 || cluster_set_served(g_cl, served, 2, err, sizeof(err)) < 0) {
		g_why = "cannot listen on loopback";
		return 0;
	}
	g_cap = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK, htons(ETH_P_ALL));
	memset(&ll, 0, sizeof(ll));
	ll.sll_family = AF_PACKET;
	ll.sll_protocol = htons(ETH_P_ALL);
	ll.sll_ifindex = (int)if_nametoindex("cl1");
	if (g_cap < 0 || bind(g_cap, (struct sockaddr *)&ll, sizeof(ll)) < 0) {
		g_why = "cannot capture on cl1";
		return 0;
	}
	g_ready = true;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	cluster_close(g_cl, NULL);
	if (g_cap >= 0)
		close(g_cap);
	if (g_lis4 >= 0)
		close(g_lis4);
	if (g_lis6 >= 0)
		close(g_lis6);
	return 0;
}

/* ---- frames ---- */

static uint16_t csum_fold(uint32_t s)
{
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)~s;
}

static uint32_t csum_add(uint32_t s, const void *p, size_t n)
{
	const uint8_t *b = p;

	for (size_t i = 0; i + 1 < n; i += 2)
		s += (uint32_t)(b[i] << 8 | b[i + 1]);
	if (n & 1)
		s += (uint32_t)(b[n - 1] << 8);
	return s;
}

struct tcpseg {
	const struct util_addr *from, *to;
	uint8_t flags;
	uint32_t seq, ack;
	size_t payload;
};

/* Build IP + TCP at buf (checksums right, so that the kernel would take
 * it). Returns the IP packet's length. */
static size_t build_ip(uint8_t *buf, const struct tcpseg *t)
{
	bool v6 = t->from->u.sa.sa_family == AF_INET6;
	size_t iplen = v6 ? 40 : 20, tcplen = 20 + t->payload;
	uint8_t *th = buf + iplen;
	uint32_t s = 0;
	uint8_t ph[40];
	uint16_t c;

	memset(buf, 0, iplen + tcplen);
	if (v6) {
		buf[0] = 0x60;
		buf[4] = (uint8_t)(tcplen >> 8);
		buf[5] = (uint8_t)tcplen;
		buf[6] = IPPROTO_TCP;
		buf[7] = 64;
		memcpy(buf + 8, &t->from->u.in6.sin6_addr, 16);
		memcpy(buf + 24, &t->to->u.in6.sin6_addr, 16);
		s = csum_add(s, buf + 8, 32);
	} else {
		buf[0] = 0x45;
		buf[2] = (uint8_t)((iplen + tcplen) >> 8);
		buf[3] = (uint8_t)(iplen + tcplen);
		buf[8] = 64;
		buf[9] = IPPROTO_TCP;
		memcpy(buf + 12, &t->from->u.in4.sin_addr, 4);
		memcpy(buf + 16, &t->to->u.in4.sin_addr, 4);
		c = csum_fold(csum_add(0, buf, 20));
		buf[10] = (uint8_t)(c >> 8);
		buf[11] = (uint8_t)c;
		s = csum_add(s, buf + 12, 8);
	}
	memset(ph, 0, sizeof(ph));
	ph[1] = IPPROTO_TCP;
	ph[2] = (uint8_t)(tcplen >> 8);
	ph[3] = (uint8_t)tcplen;
	s = csum_add(s, ph, 4);
	th[0] = (uint8_t)(util_addr_port(t->from) >> 8);
	th[1] = (uint8_t)util_addr_port(t->from);
	th[2] = (uint8_t)(util_addr_port(t->to) >> 8);
	th[3] = (uint8_t)util_addr_port(t->to);
	for (int i = 0; i < 4; i++) {
		th[4 + i] = (uint8_t)(t->seq >> (24 - 8 * i));
		th[8 + i] = (uint8_t)(t->ack >> (24 - 8 * i));
	}
	th[12] = 5 << 4;
	th[13] = t->flags;
	th[14] = 0xff;
	th[15] = 0xff;
	memset(th + 20, 'x', t->payload);
	c = csum_fold(csum_add(s, th, tcplen));
	th[16] = (uint8_t)(c >> 8);
	th[17] = (uint8_t)c;
	return iplen + tcplen;
}

static size_t build_frame(uint8_t *buf, const uint8_t *dst, const uint8_t *src, uint16_t type,
			  const struct tcpseg *t)
{
	memcpy(buf, dst, 6);
	memcpy(buf + 6, src, 6);
	buf[12] = (uint8_t)(type >> 8);
	buf[13] = (uint8_t)type;
	return 14 + build_ip(buf + 14, t);
}

static uint16_t ip_type(const struct tcpseg *t)
{
	return t->from->u.sa.sa_family == AF_INET6 ? ETH_P_IPV6 : ETH_P_IP;
}

/* Run the program on a frame arriving on ifindex; the frame as it left
 * the program goes to out (when not NULL). Returns the tc verdict. */
static int run(int ifindex, const uint8_t *in, size_t len, uint8_t *out, size_t *outlen)
{
	struct __sk_buff ctx;
	uint8_t sink[2048];
	LIBBPF_OPTS(bpf_test_run_opts, o);

	memset(&ctx, 0, sizeof(ctx));
	ctx.ifindex = (uint32_t)ifindex;
	o.data_in = in;
	o.data_size_in = (uint32_t)len;
	o.data_out = out != NULL ? out : sink;
	o.data_size_out = out != NULL ? (uint32_t)*outlen : sizeof(sink);
	o.ctx_in = &ctx;
	o.ctx_size_in = sizeof(ctx);
	o.repeat = 1;
	if (bpf_prog_test_run_opts(cluster_prog_fd(g_cl), &o) != 0)
		fail_msg("test run of a %zu-byte frame: %s", len, strerror(errno));
	if (out != NULL)
		*outlen = o.data_size_out;
	return (int)o.retval;
}

static struct cluster_stats stats(void)
{
	struct cluster_stats st;

	assert_int_equal(cluster_stats(g_cl, &st), 0);
	return st;
}

/* Forwarded frames captured on the far end of the cluster link within
 * wait_ms; copies into out (each 2048 bytes) up to max. */
static size_t captured(uint8_t (*out)[2048], size_t *lens, size_t max, int wait_ms)
{
	uint64_t end = util_now_ms() + (uint64_t)wait_ms;
	size_t n = 0;

	for (int guard = 0; guard < 10000; guard++) {
		struct pollfd p = {.fd = g_cap, .events = POLLIN};
		uint64_t now = util_now_ms();
		uint8_t buf[2048];
		ssize_t r;

		if (now >= end)
			break;
		if (poll(&p, 1, (int)(end - now)) <= 0)
			break;
		r = recv(g_cap, buf, sizeof(buf), 0);
		if (r < 14 || buf[12] != (ETH_P_CLUSTER >> 8) || buf[13] != (ETH_P_CLUSTER & 0xff))
			continue;
		if (n < max) {
			memcpy(out[n], buf, (size_t)r);
			lens[n] = (size_t)r;
		}
		n++;
	}
	return n;
}

static void drain_capture(void)
{
	uint8_t buf[2048];

	while (recv(g_cap, buf, sizeof(buf), MSG_DONTWAIT) > 0)
		;
}

static struct util_addr addr(const char *host, uint16_t port)
{
	struct util_addr a;

	assert_int_equal(util_addr_parse_host(host, &a), 0);
	util_addr_set_port(&a, port);
	return a;
}

/* ---- tests ---- */

static void check_syn_passes(const char *client, const char *server, uint16_t port)
{
	struct util_addr from = addr(client, 40001), to = addr(server, port);
	struct tcpseg t = {&from, &to, TH_SYN, 1000, 0, 0};
	struct cluster_stats before = stats(), after;
	uint8_t f[256];
	size_t n = build_frame(f, MAC_UP, MAC_ROUTER, ip_type(&t), &t);

	drain_capture();
	assert_int_equal(run(g_up, f, n, NULL, NULL), TC_ACT_UNSPEC);
	after = stats();
	assert_int_equal(after.pass_syn, before.pass_syn + 1);
	assert_int_equal(after.forwarded, before.forwarded);
	assert_int_equal(captured(NULL, NULL, 0, 50), 0);
}

static void test_syn_passes(void **state)
{
	(void)state;
	REQUIRE_NETNS();
	check_syn_passes("127.0.0.1", "127.0.0.1", g_port4);
	check_syn_passes("::1", "::1", g_port6);
}

/* An ACK of a flow nobody here knows goes to both peers, unchanged but for
 * the Ethernet header, and the original is dropped. */
static void check_unknown_ack(const char *client, const char *server, uint16_t port)
{
	struct util_addr from = addr(client, 40002), to = addr(server, port);
	struct tcpseg t = {&from, &to, TH_ACK, 5000, 7000, 100};
	struct cluster_stats before = stats(), after;
	uint8_t f[256], got[4][2048];
	size_t lens[4], n = build_frame(f, MAC_UP, MAC_ROUTER, ip_type(&t), &t), k;

	drain_capture();
	assert_int_equal(run(g_up, f, n, NULL, NULL), TC_ACT_SHOT);
	after = stats();
	assert_int_equal(after.forwarded, before.forwarded + 1);
	assert_int_equal(after.peer_forwarded[0], before.peer_forwarded[0] + 1);
	assert_int_equal(after.peer_forwarded[1], before.peer_forwarded[1] + 1);
	k = captured(got, lens, 4, 500);
	assert_int_equal(k, 2);
	for (size_t i = 0; i < 2; i++) {
		assert_int_equal(lens[i], n);
		assert_memory_equal(got[i], i == 0 ? MAC_PEER0 : MAC_PEER1, 6);
		assert_memory_equal(got[i] + 6, MAC_CL, 6);
		assert_memory_equal(got[i] + 14, f + 14, n - 14); /* the IP packet as it came */
	}
}

static void test_unknown_ack_forwarded(void **state)
{
	(void)state;
	REQUIRE_NETNS();
	check_unknown_ack("127.0.0.1", "127.0.0.1", g_port4);
	check_unknown_ack("::1", "::1", g_port6);
}

/* A packet of an established connection, from either side's view of the
 * client, passes (and so does a FIN or RST of it). */
static void check_socket_passes(int family, const char *host, uint16_t port)
{
	struct util_addr srv = addr(host, port), cli;
	socklen_t sl = sizeof(cli.u.ss);
	int c = socket(family, SOCK_STREAM, 0), s;
	uint8_t flags[] = {TH_ACK, TH_ACK | TH_FIN, TH_RST};

	assert_true(c >= 0);
	assert_int_equal(connect(c, &srv.u.sa, srv.len), 0);
	s = accept(family == AF_INET ? g_lis4 : g_lis6, NULL, NULL);
	assert_true(s >= 0);
	assert_int_equal(getsockname(c, &cli.u.sa, &sl), 0);
	cli.len = sl;
	for (size_t i = 0; i < sizeof(flags); i++) {
		struct tcpseg t = {&cli, &srv, flags[i], 1, 1, 10};
		struct cluster_stats before = stats(), after;
		uint8_t f[256];
		size_t n = build_frame(f, MAC_UP, MAC_ROUTER, ip_type(&t), &t);

		assert_int_equal(run(g_up, f, n, NULL, NULL), TC_ACT_UNSPEC);
		after = stats();
		assert_int_equal(after.pass_socket, before.pass_socket + 1);
		assert_int_equal(after.forwarded, before.forwarded);
	}
	close(c);
	close(s);
}

static void test_socket_passes(void **state)
{
	(void)state;
	REQUIRE_NETNS();
	check_socket_passes(AF_INET, "127.0.0.1", g_port4);
	check_socket_passes(AF_INET6, "::1", g_port6);
}

/* Truncated or malformed headers pass to the stack (which drops them) and
 * are never forwarded. */
static void test_malformed_not_forwarded(void **state)
{
	struct util_addr from4 = addr("127.0.0.1", 40003), to4 = addr("127.0.0.1", g_port4);
	struct util_addr from6 = addr("::1", 40003), to6 = addr("::1", g_port6);
	struct tcpseg t4 = {&from4, &to4, TH_ACK, 1, 1, 0}, t6 = {&from6, &to6, TH_ACK, 1, 1, 0};
	struct cluster_stats before, after;
	uint8_t f[256];
	size_t n;

	(void)state;
	REQUIRE_NETNS();
	drain_capture();
	before = stats();
	/* every cut of an IPv4 and an IPv6 ACK short of its TCP header (the
	 * kernel builds no skb with less than the IP header: test_run refuses
	 * those, so the cuts start there) */
	n = build_frame(f, MAC_UP, MAC_ROUTER, ETH_P_IP, &t4);
	for (size_t cut = 14 + 20; cut < n; cut++)
		assert_int_equal(run(g_up, f, cut, NULL, NULL), TC_ACT_UNSPEC);
	n = build_frame(f, MAC_UP, MAC_ROUTER, ETH_P_IPV6, &t6);
	for (size_t cut = 14 + 40; cut < n; cut++)
		assert_int_equal(run(g_up, f, cut, NULL, NULL), TC_ACT_UNSPEC);
	/* IHL below 5, IHL beyond the packet, a data offset below 5, IPv6 in
	 * an IPv4 EtherType */
	n = build_frame(f, MAC_UP, MAC_ROUTER, ETH_P_IP, &t4);
	f[14] = 0x44;
	assert_int_equal(run(g_up, f, n, NULL, NULL), TC_ACT_UNSPEC);
	f[14] = 0x4f;
	assert_int_equal(run(g_up, f, n, NULL, NULL), TC_ACT_UNSPEC);
	n = build_frame(f, MAC_UP, MAC_ROUTER, ETH_P_IP, &t4);
	f[14 + 20 + 12] = 4 << 4;
	assert_int_equal(run(g_up, f, n, NULL, NULL), TC_ACT_UNSPEC);
	n = build_frame(f, MAC_UP, MAC_ROUTER, ETH_P_IP, &t6);
	assert_int_equal(run(g_up, f, n, NULL, NULL), TC_ACT_UNSPEC);
	after = stats();
	assert_int_equal(after.forwarded, before.forwarded);
	assert_int_equal(after.pass_malformed, before.pass_malformed + 20 + 20 + 4);
	assert_int_equal(captured(NULL, NULL, 0, 50), 0);
}

/* A forwarded frame from a peer: delivered (EtherType back to IP,
 * re-entering through the uplink with its MAC) only with a local socket;
 * otherwise dropped, as is anything from a MAC that is no peer. */
static void check_from_peer(int family, const char *host, uint16_t port)
{
	struct util_addr srv = addr(host, port), cli, nobody = addr(host, 40004);
	socklen_t sl = sizeof(cli.u.ss);
	int c = socket(family, SOCK_STREAM, 0), s;
	struct cluster_stats before, after;
	uint8_t f[256], out[2048];
	size_t n, outlen = sizeof(out);

	assert_int_equal(connect(c, &srv.u.sa, srv.len), 0);
	s = accept(family == AF_INET ? g_lis4 : g_lis6, NULL, NULL);
	assert_int_equal(getsockname(c, &cli.u.sa, &sl), 0);
	cli.len = sl;
	{
		struct tcpseg t = {&cli, &srv, TH_ACK, 1, 1, 10};

		before = stats();
		n = build_frame(f, MAC_CL, MAC_PEER1, ETH_P_CLUSTER, &t);
		assert_int_equal(run(g_clif, f, n, out, &outlen), TC_ACT_REDIRECT);
		after = stats();
		assert_int_equal(after.delivered, before.delivered + 1);
		assert_int_equal(after.peer_delivered[1], before.peer_delivered[1] + 1);
		assert_int_equal(outlen, n);
		assert_memory_equal(out, MAC_UP, 6);
		assert_int_equal(out[12] << 8 | out[13], ip_type(&t));
		assert_memory_equal(out + 14, f + 14, n - 14);
		/* the same frame from a stranger */
		before = stats();
		n = build_frame(f, MAC_CL, MAC_STRANGER, ETH_P_CLUSTER, &t);
		assert_int_equal(run(g_clif, f, n, NULL, NULL), TC_ACT_SHOT);
		assert_int_equal(stats().drop_not_peer, before.drop_not_peer + 1);
		/* and arriving on an uplink */
		before = stats();
		n = build_frame(f, MAC_UP, MAC_PEER1, ETH_P_CLUSTER, &t);
		assert_int_equal(run(g_up, f, n, NULL, NULL), TC_ACT_SHOT);
		assert_int_equal(stats().drop_not_peer, before.drop_not_peer + 1);
	}
	{
		struct tcpseg t = {&nobody, &srv, TH_ACK, 1, 1, 10};

		drain_capture();
		before = stats();
		n = build_frame(f, MAC_CL, MAC_PEER0, ETH_P_CLUSTER, &t);
		assert_int_equal(run(g_clif, f, n, NULL, NULL), TC_ACT_SHOT);
		after = stats();
		assert_int_equal(after.drop_no_owner, before.drop_no_owner + 1);
		assert_int_equal(after.forwarded, before.forwarded); /* never again */
		assert_int_equal(captured(NULL, NULL, 0, 50), 0);
		/* a truncated inner packet */
		before = stats();
		assert_int_equal(run(g_clif, f, 14 + 10, NULL, NULL), TC_ACT_SHOT);
		assert_int_equal(stats().drop_malformed, before.drop_malformed + 1);
	}
	{
		/* a delivered packet re-entering on the uplink passes */
		struct tcpseg t = {&nobody, &srv, TH_ACK, 1, 1, 10};

		before = stats();
		n = build_frame(f, MAC_UP, MAC_PEER0, ip_type(&t), &t);
		assert_int_equal(run(g_up, f, n, NULL, NULL), TC_ACT_UNSPEC);
		after = stats();
		assert_int_equal(after.pass_reinjected, before.pass_reinjected + 1);
		assert_int_equal(after.forwarded, before.forwarded);
	}
	close(c);
	close(s);
}

static void test_from_peer(void **state)
{
	(void)state;
	REQUIRE_NETNS();
	check_from_peer(AF_INET, "127.0.0.1", g_port4);
	check_from_peer(AF_INET6, "::1", g_port6);
}

/* TCP to an address that is not served, and other protocols, pass without
 * being counted. */
static void test_not_served(void **state)
{
	struct util_addr from = addr("127.0.0.1", 40005), to = addr("127.0.0.1", 1);
	struct tcpseg t = {&from, &to, TH_ACK, 1, 1, 0};
	struct cluster_stats before, after;
	uint8_t f[256];
	size_t n;

	(void)state;
	REQUIRE_NETNS();
	before = stats();
	n = build_frame(f, MAC_UP, MAC_ROUTER, ETH_P_IP, &t);
	assert_int_equal(run(g_up, f, n, NULL, NULL), TC_ACT_UNSPEC);
	f[14 + 9] = IPPROTO_UDP;
	assert_int_equal(run(g_up, f, n, NULL, NULL), TC_ACT_UNSPEC);
	after = stats();
	assert_memory_equal(&after, &before, sizeof(after));
}

/* Read SYN-ACKs from a raw socket until one answers sport; returns its
 * sequence number (the cookie). */
static uint32_t synack_seq(int raw, uint16_t sport, uint16_t dport)
{
	uint64_t end = util_now_ms() + 2000;

	for (int guard = 0; guard < 1000 && util_now_ms() < end; guard++) {
		struct pollfd p = {.fd = raw, .events = POLLIN};
		uint8_t b[512];
		ssize_t r;
		size_t ihl;

		if (poll(&p, 1, 100) <= 0)
			continue;
		r = recv(raw, b, sizeof(b), 0);
		if (r < 40)
			continue;
		ihl = (size_t)(b[0] & 0xf) * 4;
		if ((size_t)r < ihl + 20)
			continue;
		if ((b[ihl] << 8 | b[ihl + 1]) != sport ||
		    (b[ihl + 2] << 8 | b[ihl + 3]) != dport ||
		    (b[ihl + 13] & (TH_SYN | TH_ACK)) != (TH_SYN | TH_ACK))
			continue;
		return (uint32_t)b[ihl + 4] << 24 | (uint32_t)b[ihl + 5] << 16 |
		       (uint32_t)b[ihl + 6] << 8 | b[ihl + 7];
	}
	fail_msg("no SYN-ACK from the listener");
	return 0;
}

/* Under a SYN flood the listener answers with cookies and keeps no state:
 * the client's third ACK has no socket, only a valid cookie, and must pass;
 * a wrong cookie is an unknown flow. */
static void test_syncookie_passes(void **state)
{
	struct util_addr from = addr("127.0.0.1", 40006), to = addr("127.0.0.1", g_port4);
	struct tcpseg syn = {&from, &to, TH_SYN, 77000, 0, 0};
	struct cluster_stats before, after;
	uint8_t ip[128], f[256];
	size_t n;
	int raw, rx, one = 1;
	uint32_t cookie;

	(void)state;
	REQUIRE_NETNS();
	raw = socket(AF_INET, SOCK_RAW, IPPROTO_RAW);
	rx = socket(AF_INET, SOCK_RAW, IPPROTO_TCP);
	assert_true(raw >= 0 && rx >= 0);
	assert_int_equal(setsockopt(raw, IPPROTO_IP, IP_HDRINCL, &one, sizeof(one)), 0);
	n = build_ip(ip, &syn);
	assert_int_equal(sendto(raw, ip, n, 0, &to.u.sa, to.len), (ssize_t)n);
	cookie = synack_seq(rx, g_port4, 40006);
	{
		struct tcpseg ack = {&from, &to, TH_ACK, 77001, cookie + 1, 0};

		before = stats();
		n = build_frame(f, MAC_UP, MAC_ROUTER, ETH_P_IP, &ack);
		assert_int_equal(run(g_up, f, n, NULL, NULL), TC_ACT_UNSPEC);
		after = stats();
		assert_int_equal(after.pass_cookie, before.pass_cookie + 1);
		assert_int_equal(after.forwarded, before.forwarded);
	}
	{
		struct tcpseg ack = {&from, &to, TH_ACK, 77001, cookie + 12345, 0};

		before = stats();
		n = build_frame(f, MAC_UP, MAC_ROUTER, ETH_P_IP, &ack);
		assert_int_equal(run(g_up, f, n, NULL, NULL), TC_ACT_SHOT);
		after = stats();
		assert_int_equal(after.pass_cookie, before.pass_cookie);
		assert_int_equal(after.forwarded, before.forwarded + 1);
	}
	close(raw);
	close(rx);
}

/* A client that repeats the same segment (no peer answers) is reported
 * once per episode; progress is not. */
static void test_slow_flows(void **state)
{
	struct util_addr from = addr("127.0.0.1", 40007), to = addr("127.0.0.1", g_port4);
	struct util_addr from2 = addr("127.0.0.1", 40008);
	struct cluster_slow_flow out[8];
	uint8_t f[256];
	size_t n, k;
	char a[UTIL_ADDR_STRLEN];

	(void)state;
	REQUIRE_NETNS();
	cluster_slow_flows(g_cl, 0, 0, out, 8); /* start clean: earlier tests forwarded */
	for (int i = 0; i < 4; i++) {
		struct tcpseg t = {&from, &to, TH_ACK, 9000, 9100, 10};
		struct tcpseg t2 = {&from2, &to, TH_ACK, 9000 + (uint32_t)i * 10, 9100, 10};

		n = build_frame(f, MAC_UP, MAC_ROUTER, ETH_P_IP, &t);
		assert_int_equal(run(g_up, f, n, NULL, NULL), TC_ACT_SHOT);
		n = build_frame(f, MAC_UP, MAC_ROUTER, ETH_P_IP, &t2);
		assert_int_equal(run(g_up, f, n, NULL, NULL), TC_ACT_SHOT);
	}
	k = cluster_slow_flows(g_cl, 3, 0, out, 8);
	assert_int_equal(k, 1);
	assert_string_equal(util_addr_fmt(&out[0].src, a, sizeof(a)), "127.0.0.1:40007");
	assert_int_equal(out[0].repeats, 3);
	assert_int_equal(out[0].packets, 4);
	assert_int_equal(cluster_slow_flows(g_cl, 3, 0, out, 8), 0); /* once */
}

/* A reload that replaces every listening address at once: 700 served
 * addresses for 700 others (together more than the map holds) are
 * replaced whole, and only the new ones are served after. */
static void test_served_replaced_wholesale(void **state)
{
	enum { N = 700 };
	struct util_addr *a = calloc(2 * N, sizeof(*a)), restore[2];
	struct util_addr from = addr("127.0.0.1", 40009);
	struct cluster_stats before, after;
	char err[CLUSTER_ERRLEN], host[32];
	uint8_t f[256];
	size_t n;

	(void)state;
	REQUIRE_NETNS();
	assert_non_null(a);
	for (int i = 0; i < 2 * N; i++) {
		snprintf(host, sizeof(host), "10.%d.%d.%d", i / N + 1, (i % N) / 256,
			 (i % N) % 256);
		a[i] = addr(host, 80);
	}
	assert_int_equal(cluster_set_served(g_cl, a, N, err, sizeof(err)), 0);
	if (cluster_set_served(g_cl, a + N, N, err, sizeof(err)) < 0)
		fail_msg("replacing %d served addresses with %d others: %s", N, N, err);
	/* the old ones are not served any more (passed, not counted), the new
	 * ones are (an unknown ACK is forwarded) */
	{
		struct tcpseg old = {&from, &a[5], TH_ACK, 1, 1, 0};
		struct tcpseg cur = {&from, &a[N + 5], TH_ACK, 1, 1, 0};

		before = stats();
		n = build_frame(f, MAC_UP, MAC_ROUTER, ETH_P_IP, &old);
		assert_int_equal(run(g_up, f, n, NULL, NULL), TC_ACT_UNSPEC);
		after = stats();
		assert_memory_equal(&after, &before, sizeof(after));
		n = build_frame(f, MAC_UP, MAC_ROUTER, ETH_P_IP, &cur);
		assert_int_equal(run(g_up, f, n, NULL, NULL), TC_ACT_SHOT);
	}
	restore[0] = addr("127.0.0.1", g_port4);
	restore[1] = addr("::1", g_port6);
	assert_int_equal(cluster_set_served(g_cl, restore, 2, err, sizeof(err)), 0);
	free(a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_syn_passes),
	    cmocka_unit_test(test_unknown_ack_forwarded),
	    cmocka_unit_test(test_socket_passes),
	    cmocka_unit_test(test_malformed_not_forwarded),
	    cmocka_unit_test(test_from_peer),
	    cmocka_unit_test(test_not_served),
	    cmocka_unit_test(test_syncookie_passes),
	    cmocka_unit_test(test_slow_flows),
	    cmocka_unit_test(test_served_replaced_wholesale),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
