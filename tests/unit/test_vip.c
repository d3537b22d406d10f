/* Unit tests for vip against the real kernel: the binary moves itself into
 * a private network namespace, builds a veth pair there with ip(8) and
 * checks addresses, link events and ARP / NA frames from the other end.
 * Needs root (CAP_NET_ADMIN, CAP_NET_RAW, CAP_SYS_ADMIN); skips otherwise. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netpacket/packet.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/if_ether.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>

#include "sluice/util.h"
#include "sluice/vip.h"

#define IF_A "sv0" /* VIPs live here */
#define IF_B "sv1" /* the neighbour that listens */
#define DEADLINE_MS 5000

static bool g_ready;
static const char *g_why = "not set up";
static int g_ifa, g_ifb;

#define REQUIRE_NETNS()                                                                            \
	do {                                                                                       \
		if (!g_ready) {                                                                    \
			print_message("skipped: %s\n", g_why);                                     \
			skip();                                                                    \
		}                                                                                  \
	} while (0)

/* Run a shell command inside our namespace; returns its exit status. */
static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
	char cmd[512];
	va_list ap;
	int rc;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	rc = system(cmd);
	return rc == -1 ? -1 : WEXITSTATUS(rc);
}

/* Capture a command's standard output (truncated to len - 1). */
static void sh_output(const char *cmd, char *buf, size_t len)
{
	FILE *f = popen(cmd, "r");
	size_t n = 0;

	buf[0] = '\0';
	assert_non_null(f);
	while (n + 1 < len) {
		size_t r = fread(buf + n, 1, len - 1 - n, f);

		if (r == 0)
			break;
		n += r;
	}
	buf[n] = '\0';
	pclose(f);
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

static int setup_netns(void **state)
{
	(void)state;
	if (geteuid() != 0) {
		g_why = "vip tests need root (a private network namespace and veth links)";
		return 0;
	}
	if (unshare(CLONE_NEWNET) < 0) {
		g_why = "unshare(CLONE_NEWNET) failed: no namespace support or privilege";
		return 0;
	}
	/* IF_A keeps DAD on so that the NODAD flag of IPv6 VIPs matters;
	 * IF_B has it off so that its link-local is usable at once. */
	if (sh("ip link set lo up && ip link add " IF_A " type veth peer name " IF_B) != 0 ||
	    write_file("/proc/sys/net/ipv6/conf/" IF_B "/accept_dad", "0") < 0 ||
	    sh("ip addr add 192.0.2.1/24 dev " IF_A " && ip addr add 192.0.2.2/24 dev " IF_B
	       " && ip link set " IF_A " up && ip link set " IF_B " up") != 0) {
		g_why = "could not create the veth pair with ip(8)";
		return 0;
	}
	g_ifa = (int)if_nametoindex(IF_A);
	g_ifb = (int)if_nametoindex(IF_B);
	g_ready = g_ifa > 0 && g_ifb > 0;
	return 0;
}

static struct util_addr host_addr(const char *s)
{
	struct util_addr a;

	assert_int_equal(util_addr_parse_host(s, &a), 0);
	return a;
}

/* True when `ip -o addr show dev ifname` lists "needle" (e.g. "inet
 * 198.51.100.10/24 "), an independent view of what the kernel holds. */
static bool ip_shows(const char *ifname, const char *needle)
{
	char cmd[128], out[8192];

	snprintf(cmd, sizeof(cmd), "ip -o addr show dev %s", ifname);
	sh_output(cmd, out, sizeof(out));
	return strstr(out, needle) != NULL;
}

static void test_ifindex(void **state)
{
	char err[VIP_ERRLEN], name[64];
	int idx = 0;

	(void)state;
	REQUIRE_NETNS();
	assert_int_equal(vip_ifindex(IF_A, &idx, err, sizeof(err)), 0);
	assert_int_equal(idx, g_ifa);
	assert_string_equal(vip_ifname_fmt(g_ifa, name, sizeof(name)), IF_A);
	assert_int_equal(vip_ifindex("nosuch0", &idx, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "nosuch0"));
	assert_string_equal(vip_ifname_fmt(999999, name, sizeof(name)), "ifindex 999999");
}

static void test_addr_v4(void **state)
{
	struct util_addr vip = host_addr("198.51.100.10");
	char err[VIP_ERRLEN];
	bool present = true;

	(void)state;
	REQUIRE_NETNS();
	assert_int_equal(vip_addr_present(g_ifa, &vip, &present, err, sizeof(err)), 0);
	assert_false(present);
	assert_int_equal(vip_addr_add(g_ifa, &vip, 24, err, sizeof(err)), 0);
	assert_true(ip_shows(IF_A, "inet 198.51.100.10/24 "));
	assert_int_equal(vip_addr_present(g_ifa, &vip, &present, err, sizeof(err)), 0);
	assert_true(present);
	assert_int_equal(vip_addr_present(g_ifb, &vip, &present, err, sizeof(err)), 0);
	assert_false(present);
	/* Idempotent add. */
	assert_int_equal(vip_addr_add(g_ifa, &vip, 24, err, sizeof(err)), 0);
	assert_true(ip_shows(IF_A, "inet 198.51.100.10/24 "));
	assert_int_equal(vip_addr_del(g_ifa, &vip, err, sizeof(err)), 0);
	assert_false(ip_shows(IF_A, "198.51.100.10"));
	assert_int_equal(vip_addr_present(g_ifa, &vip, &present, err, sizeof(err)), 0);
	assert_false(present);
	/* Idempotent delete. */
	assert_int_equal(vip_addr_del(g_ifa, &vip, err, sizeof(err)), 0);
	/* Delete finds the prefix length an operator used. */
	assert_int_equal(sh("ip addr add 198.51.100.11/27 dev " IF_A), 0);
	vip = host_addr("198.51.100.11");
	assert_int_equal(vip_addr_del(g_ifa, &vip, err, sizeof(err)), 0);
	assert_false(ip_shows(IF_A, "198.51.100.11"));
	/* Untouched: the host address. */
	assert_true(ip_shows(IF_A, "inet 192.0.2.1/24 "));
}

static void test_addr_v6(void **state)
{
	struct util_addr vip = host_addr("2001:db8::10");
	char err[VIP_ERRLEN], out[8192], *line;
	bool present = true;

	(void)state;
	REQUIRE_NETNS();
	assert_int_equal(vip_addr_add(g_ifa, &vip, 64, err, sizeof(err)), 0);
	sh_output("ip -o -6 addr show dev " IF_A, out, sizeof(out));
	line = strstr(out, "inet6 2001:db8::10/64 ");
	assert_non_null(line);
	if (strchr(line, '\n') != NULL)
		*strchr(line, '\n') = '\0';
	/* NODAD: usable at once although DAD is on for this interface. */
	assert_null(strstr(line, "tentative"));
	assert_int_equal(vip_addr_present(g_ifa, &vip, &present, err, sizeof(err)), 0);
	assert_true(present);
	assert_int_equal(vip_addr_add(g_ifa, &vip, 64, err, sizeof(err)), 0);
	assert_int_equal(vip_addr_del(g_ifa, &vip, err, sizeof(err)), 0);
	assert_false(ip_shows(IF_A, "2001:db8::10/"));
	assert_int_equal(vip_addr_present(g_ifa, &vip, &present, err, sizeof(err)), 0);
	assert_false(present);
	assert_int_equal(vip_addr_del(g_ifa, &vip, err, sizeof(err)), 0);
}

static void test_addr_errors(void **state)
{
	struct util_addr vip = host_addr("198.51.100.10"), none;
	char err[VIP_ERRLEN];

	(void)state;
	REQUIRE_NETNS();
	assert_int_equal(vip_addr_add(g_ifa, &vip, 33, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "prefix length 33"));
	assert_int_equal(vip_addr_add(999999, &vip, 24, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "add 198.51.100.10/24 on ifindex 999999: "));
	memset(&none, 0, sizeof(none));
	assert_int_equal(vip_addr_add(g_ifa, &none, 24, err, sizeof(err)), -1);
	assert_int_equal(vip_addr_del(g_ifa, &none, err, sizeof(err)), -1);
}

/* Without privilege the error names the operation, address and link. */
static void test_addr_eperm(void **state)
{
	struct util_addr vip = host_addr("198.51.100.10");
	char err[VIP_ERRLEN];
	int pfd[2], status;
	ssize_t n;
	pid_t pid;

	(void)state;
	REQUIRE_NETNS();
	assert_int_equal(pipe(pfd), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* Dropping to nobody drops every capability. */
		if (setresgid(65534, 65534, 65534) < 0 || setresuid(65534, 65534, 65534) < 0)
			_exit(2);
		err[0] = '\0';
		if (vip_addr_add(g_ifa, &vip, 24, err, sizeof(err)) == 0)
			_exit(3);
		n = write(pfd[1], err, strlen(err) + 1);
		_exit(n > 0 ? 0 : 4);
	}
	close(pfd[1]);
	n = read(pfd[0], err, sizeof(err) - 1);
	close(pfd[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_true(n > 0);
	err[n] = '\0';
	assert_string_equal(err, "add 198.51.100.10/24 on " IF_A ": Operation not permitted");
}

static void test_primary4(void **state)
{
	struct util_addr same = host_addr("192.0.2.100"), other = host_addr("198.51.100.30");
	struct util_addr p;
	char err[VIP_ERRLEN], buf[UTIL_ADDR_STRLEN];

	(void)state;
	REQUIRE_NETNS();
	/* A VIP in the host subnet (secondary) and one in another subnet
	 * (primary there, but after the host address). */
	assert_int_equal(vip_addr_add(g_ifa, &same, 24, err, sizeof(err)), 0);
	assert_int_equal(vip_addr_add(g_ifa, &other, 32, err, sizeof(err)), 0);
	assert_int_equal(vip_addr_primary4(g_ifa, &p, err, sizeof(err)), 0);
	assert_string_equal(util_addr_fmt_host(&p, buf, sizeof(buf)), "192.0.2.1");
	assert_int_equal(vip_addr_primary4(g_ifb, &p, err, sizeof(err)), 0);
	assert_string_equal(util_addr_fmt_host(&p, buf, sizeof(buf)), "192.0.2.2");
	assert_int_equal(vip_addr_del(g_ifa, &same, err, sizeof(err)), 0);
	assert_int_equal(vip_addr_del(g_ifa, &other, err, sizeof(err)), 0);
	/* lo has only 127.0.0.1; a link with none gives a clear error. */
	assert_int_equal(vip_addr_primary4(1, &p, err, sizeof(err)), 0);
	assert_string_equal(util_addr_fmt_host(&p, buf, sizeof(buf)), "127.0.0.1");
	assert_int_equal(sh("ip link add sv9 type veth peer name sv10"), 0);
	assert_int_equal(vip_addr_primary4((int)if_nametoindex("sv9"), &p, err, sizeof(err)), -1);
	assert_string_equal(err, "primary IPv4 address on sv9: none configured");
	assert_int_equal(sh("ip link del sv9"), 0);
}

static void test_linklocal6(void **state)
{
	struct util_addr ll;
	char err[VIP_ERRLEN], buf[UTIL_ADDR_STRLEN], needle[UTIL_ADDR_STRLEN + 48];

	(void)state;
	REQUIRE_NETNS();
	assert_int_equal(vip_addr_linklocal6(g_ifb, &ll, err, sizeof(err)), 0);
	assert_int_equal(ll.u.sa.sa_family, AF_INET6);
	assert_true(IN6_IS_ADDR_LINKLOCAL(&ll.u.in6.sin6_addr));
	assert_int_equal(ll.u.in6.sin6_scope_id, (uint32_t)g_ifb);
	assert_non_null(inet_ntop(AF_INET6, &ll.u.in6.sin6_addr, buf, sizeof(buf)));
	snprintf(needle, sizeof(needle), "inet6 %s/64 scope link", buf);
	assert_true(ip_shows(IF_B, needle));
	/* lo has no link-local address. */
	assert_int_equal(vip_addr_linklocal6(1, &ll, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "link-local IPv6 address on lo: "));
}

/* ---- link monitor ---- */

struct link_event {
	int ifindex;
	bool up;
	char name[IF_NAMESIZE];
};

struct link_rec {
	size_t n;
	struct link_event ev[512];
};

static void rec_cb(void *arg, int ifindex, const char *ifname, bool up)
{
	struct link_rec *r = arg;

	if (r->n < UTIL_ARRAY_LEN(r->ev)) {
		r->ev[r->n].ifindex = ifindex;
		r->ev[r->n].up = up;
		util_strlcpy(r->ev[r->n].name, ifname, sizeof(r->ev[r->n].name));
		r->n++;
	}
}

/* The last event for ifindex at or after index from, or NULL. */
static const struct link_event *rec_last(const struct link_rec *r, size_t from, int ifindex)
{
	const struct link_event *last = NULL;

	for (size_t i = from; i < r->n; i++)
		if (r->ev[i].ifindex == ifindex)
			last = &r->ev[i];
	return last;
}

/* Process events until ifindex was last reported in state up (after event
 * index from), polling the monitor's fd with a deadline. */
static bool wait_link(struct vip_linkmon *mon, struct link_rec *r, size_t from, int ifindex,
		      bool up)
{
	uint64_t deadline = util_now_ms() + DEADLINE_MS;
	char err[VIP_ERRLEN];

	for (;;) {
		const struct link_event *e = rec_last(r, from, ifindex);
		struct pollfd pfd = {.fd = vip_linkmon_fd(mon), .events = POLLIN};
		uint64_t now = util_now_ms();

		if (e != NULL && e->up == up)
			return true;
		if (now >= deadline)
			return false;
		if (poll(&pfd, 1, (int)(deadline - now)) > 0)
			assert_int_equal(vip_linkmon_process(mon, err, sizeof(err)), 0);
	}
}

/* Consecutive events of one link always differ: edges only. */
static void assert_edges_only(const struct link_rec *r, int ifindex)
{
	const struct link_event *prev = NULL;

	for (size_t i = 0; i < r->n; i++) {
		if (r->ev[i].ifindex != ifindex)
			continue;
		if (prev != NULL)
			assert_true(prev->up != r->ev[i].up);
		prev = &r->ev[i];
	}
}

static void test_linkmon(void **state)
{
	static struct link_rec rec;
	char err[VIP_ERRLEN];
	struct vip_linkmon *mon;
	size_t from;
	bool up = false;

	(void)state;
	REQUIRE_NETNS();
	memset(&rec, 0, sizeof(rec));
	mon = vip_linkmon_open(rec_cb, &rec, err, sizeof(err));
	assert_non_null(mon);
	assert_true(vip_linkmon_fd(mon) >= 0);
	assert_int_equal(vip_linkmon_query(mon, g_ifa, &up, err, sizeof(err)), 0);
	assert_true(up);
	assert_int_equal(vip_link_is_up(g_ifa, &up, err, sizeof(err)), 0);
	assert_true(up);

	/* Administratively down, then up. */
	from = rec.n;
	assert_int_equal(sh("ip link set " IF_A " down"), 0);
	assert_true(wait_link(mon, &rec, from, g_ifa, false));
	assert_string_equal(rec_last(&rec, from, g_ifa)->name, IF_A);
	assert_int_equal(vip_link_is_up(g_ifa, &up, err, sizeof(err)), 0);
	assert_false(up);
	from = rec.n;
	assert_int_equal(sh("ip link set " IF_A " up"), 0);
	assert_true(wait_link(mon, &rec, from, g_ifa, true));

	/* Carrier: the peer going down takes IF_A's carrier away. */
	from = rec.n;
	assert_int_equal(sh("ip link set " IF_B " down"), 0);
	assert_true(wait_link(mon, &rec, from, g_ifa, false));
	from = rec.n;
	assert_int_equal(sh("ip link set " IF_B " up"), 0);
	assert_true(wait_link(mon, &rec, from, g_ifa, true));

	/* A change that is not a state change is not reported. */
	from = rec.n;
	assert_int_equal(sh("ip link set " IF_A " mtu 1400 && ip link set " IF_A " mtu 1500"), 0);
	assert_int_equal(sh("ip link set " IF_A " down && ip link set " IF_A " up"), 0);
	assert_true(wait_link(mon, &rec, from, g_ifa, true));
	assert_edges_only(&rec, g_ifa);

	/* A deleted link is reported down once. */
	assert_int_equal(sh("ip link add sv2 type veth peer name sv3 && ip link set sv2 up"
			    " && ip link set sv3 up"),
			 0);
	int ifc = (int)if_nametoindex("sv2");

	assert_true(ifc > 0);
	assert_true(wait_link(mon, &rec, 0, ifc, true));
	from = rec.n;
	assert_int_equal(sh("ip link del sv2"), 0);
	assert_true(wait_link(mon, &rec, from, ifc, false));
	assert_int_equal(vip_linkmon_ignored(mon), 0);
	assert_int_equal(vip_link_is_up(ifc, &up, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "query link ifindex"));
	vip_linkmon_close(mon);
}

/* Lost events (receive buffer overrun) are recovered by a resync. */
static void test_linkmon_overrun(void **state)
{
	static struct link_rec rec;
	char err[VIP_ERRLEN];
	struct vip_linkmon *mon;
	int small = 1;
	bool up;

	(void)state;
	REQUIRE_NETNS();
	memset(&rec, 0, sizeof(rec));
	mon = vip_linkmon_open(rec_cb, &rec, err, sizeof(err));
	assert_non_null(mon);
	assert_int_equal(vip_linkmon_query(mon, g_ifa, &up, err, sizeof(err)), 0);
	assert_true(up);
	/* The kernel rounds this up to its minimum: a few messages fit. */
	assert_int_equal(
	    setsockopt(vip_linkmon_fd(mon), SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)), 0);
	for (int i = 0; i < 10; i++)
		assert_int_equal(sh("ip link set " IF_B " down && ip link set " IF_B " up"), 0);
	assert_int_equal(sh("ip link set " IF_A " down"), 0);
	assert_true(wait_link(mon, &rec, 0, g_ifa, false));
	assert_edges_only(&rec, g_ifa);
	assert_int_equal(sh("ip link set " IF_A " up"), 0);
	assert_true(wait_link(mon, &rec, 0, g_ifa, true));
	vip_linkmon_close(mon);
}

/* Netlink messages not from the kernel are counted and dropped. */
static void test_linkmon_foreign(void **state)
{
	static struct link_rec rec;
	struct {
		struct nlmsghdr h;
		struct ifinfomsg ifi;
	} fake;
	static const uint8_t junk[] = {0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5};
	struct sockaddr_nl me, dst = {.nl_family = AF_NETLINK};
	socklen_t mlen = sizeof(me);
	char err[VIP_ERRLEN];
	struct vip_linkmon *mon;
	struct pollfd pfd;
	int fd;

	(void)state;
	REQUIRE_NETNS();
	memset(&rec, 0, sizeof(rec));
	mon = vip_linkmon_open(rec_cb, &rec, err, sizeof(err));
	assert_non_null(mon);
	assert_int_equal(getsockname(vip_linkmon_fd(mon), (struct sockaddr *)&me, &mlen), 0);
	dst.nl_pid = me.nl_pid;
	/* A well-formed "link down" from a user process, then garbage. */
	memset(&fake, 0, sizeof(fake));
	fake.h.nlmsg_len = sizeof(fake);
	fake.h.nlmsg_type = RTM_NEWLINK;
	fake.ifi.ifi_index = g_ifa;
	fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	assert_true(fd >= 0);
	assert_int_equal(sendto(fd, &fake, sizeof(fake), 0, (struct sockaddr *)&dst, sizeof(dst)),
			 sizeof(fake));
	assert_int_equal(sendto(fd, junk, sizeof(junk), 0, (struct sockaddr *)&dst, sizeof(dst)),
			 sizeof(junk));
	close(fd);
	pfd = (struct pollfd){.fd = vip_linkmon_fd(mon), .events = POLLIN};
	assert_int_equal(poll(&pfd, 1, DEADLINE_MS), 1);
	assert_int_equal(vip_linkmon_process(mon, err, sizeof(err)), 0);
	assert_int_equal(rec.n, 0);
	assert_true(vip_linkmon_ignored(mon) >= 1);
	vip_linkmon_close(mon);
}

static void test_linkmon_errors(void **state)
{
	char err[VIP_ERRLEN];

	(void)state;
	REQUIRE_NETNS();
	assert_null(vip_linkmon_open(NULL, NULL, err, sizeof(err)));
	assert_non_null(strstr(err, "no callback"));
	vip_linkmon_close(NULL);
}

/* ---- gratuitous ARP / neighbour advertisement ---- */

/* Parse "link/ether xx:xx:.." from ip(8) for an independent MAC. */
static void ip_mac(const char *ifname, uint8_t mac[6])
{
	char cmd[128], out[4096];
	const char *p;
	unsigned int b[6];

	snprintf(cmd, sizeof(cmd), "ip -o link show dev %s", ifname);
	sh_output(cmd, out, sizeof(out));
	p = strstr(out, "link/ether ");
	assert_non_null(p);
	assert_int_equal(
	    sscanf(p, "link/ether %x:%x:%x:%x:%x:%x", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5]), 6);
	for (int i = 0; i < 6; i++)
		mac[i] = (uint8_t)b[i];
}

/* A packet socket on ifindex receiving frames of ethertype proto. */
static int listen_frames(int ifindex, uint16_t proto)
{
	struct sockaddr_ll sll = {
	    .sll_family = AF_PACKET, .sll_protocol = htons(proto), .sll_ifindex = ifindex};
	int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(proto));

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sll, sizeof(sll)), 0);
	return fd;
}

typedef bool frame_match_fn(const uint8_t *f, size_t len, const void *arg);

/* Receive frames until match() accepts one (copied to buf) or the deadline
 * passes. Returns its length, 0 on timeout. */
static size_t recv_frame(int fd, uint8_t *buf, size_t len, frame_match_fn *match, const void *arg)
{
	uint64_t deadline = util_now_ms() + DEADLINE_MS;

	for (;;) {
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		uint64_t now = util_now_ms();
		ssize_t n;

		if (now >= deadline)
			return 0;
		if (poll(&pfd, 1, (int)(deadline - now)) <= 0)
			continue;
		n = recv(fd, buf, len, 0);
		if (n > 0 && match(buf, (size_t)n, arg))
			return (size_t)n;
	}
}

static bool is_arp_for(const uint8_t *f, size_t len, const void *arg)
{
	return len >= 42 && f[12] == 0x08 && f[13] == 0x06 && memcmp(f + 14 + 14, arg, 4) == 0;
}

static void test_garp(void **state)
{
	struct util_addr vip = host_addr("198.51.100.20");
	const uint8_t *ip4 = (const uint8_t *)&vip.u.in4.sin_addr;
	static const uint8_t bcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
	uint8_t mac[6], mac2[6], f[2048];
	char err[VIP_ERRLEN];
	size_t n;
	int fd;

	(void)state;
	REQUIRE_NETNS();
	ip_mac(IF_A, mac);
	assert_int_equal(vip_link_hwaddr(g_ifa, mac2, err, sizeof(err)), 0);
	assert_memory_equal(mac, mac2, 6);
	fd = listen_frames(g_ifb, ETH_P_ARP);
	assert_int_equal(vip_addr_add(g_ifa, &vip, 24, err, sizeof(err)), 0);
	assert_int_equal(vip_garp_send(g_ifa, &vip, err, sizeof(err)), 0);
	n = recv_frame(fd, f, sizeof(f), is_arp_for, ip4);
	close(fd);
	assert_true(n >= 42);
	assert_memory_equal(f, bcast, 6);	      /* destination */
	assert_memory_equal(f + 6, mac, 6);	      /* source */
	assert_int_equal(f[14] << 8 | f[15], 1);      /* Ethernet */
	assert_int_equal(f[16] << 8 | f[17], 0x0800); /* IPv4 */
	assert_int_equal(f[18], 6);
	assert_int_equal(f[19], 4);
	assert_int_equal(f[20] << 8 | f[21], 1); /* request */
	assert_memory_equal(f + 22, mac, 6);	 /* sender MAC */
	assert_memory_equal(f + 28, ip4, 4);	 /* sender IP */
	assert_memory_equal(f + 32, bcast, 6);	 /* target MAC, as keepalived */
	assert_memory_equal(f + 38, ip4, 4);	 /* target IP */
	assert_int_equal(vip_addr_del(g_ifa, &vip, err, sizeof(err)), 0);
}

static bool is_na_for(const uint8_t *f, size_t len, const void *arg)
{
	return len >= 14 + 40 + 32 && f[12] == 0x86 && f[13] == 0xdd && f[14 + 6] == 58 &&
	       f[54] == 136 && memcmp(f + 54 + 8, arg, 16) == 0;
}

/* RFC 4443 2.3 checksum over the pseudo-header and the ICMPv6 message. */
static uint16_t icmp6_sum(const uint8_t *ip6, const uint8_t *msg, size_t len)
{
	uint32_t sum = 0;

	for (int i = 8; i < 40; i += 2) /* source and destination */
		sum += (uint32_t)(ip6[i] << 8 | ip6[i + 1]);
	sum += (uint32_t)len + 58;
	for (size_t i = 0; i + 1 < len; i += 2)
		sum += (uint32_t)(msg[i] << 8 | msg[i + 1]);
	if (len & 1)
		sum += (uint32_t)(msg[len - 1] << 8);
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)sum;
}

/* Send an NA for vip from interface from (named from_name) and check the
 * frame interface to receives; its source must be src. */
static void check_na(int from, const char *from_name, int to, const struct util_addr *vip,
		     const struct util_addr *src)
{
	const uint8_t *ip6 = vip->u.in6.sin6_addr.s6_addr;
	static const uint8_t all_nodes[16] = {0xff, 0x02, [15] = 0x01};
	static const uint8_t mcast_mac[6] = {0x33, 0x33, 0, 0, 0, 1};
	uint8_t mac[6], f[2048];
	char err[VIP_ERRLEN];
	size_t n, plen;
	int fd;

	ip_mac(from_name, mac);
	fd = listen_frames(to, ETH_P_IPV6);
	assert_int_equal(vip_garp_send(from, vip, err, sizeof(err)), 0);
	n = recv_frame(fd, f, sizeof(f), is_na_for, ip6);
	close(fd);
	assert_true(n >= 14 + 40 + 32);
	assert_memory_equal(f, mcast_mac, 6);
	assert_memory_equal(f + 6, mac, 6);
	plen = (size_t)(f[18] << 8 | f[19]);
	assert_int_equal(plen, 32);
	assert_int_equal(f[21], 255); /* hop limit */
	assert_memory_equal(f + 22, src->u.in6.sin6_addr.s6_addr, 16);
	assert_memory_equal(f + 38, all_nodes, 16); /* destination */
	assert_int_equal(f[54], 136);
	assert_int_equal(f[55], 0);
	assert_int_equal(icmp6_sum(f + 14, f + 54, plen), 0xffff);
	assert_int_equal(f[58], 0x20);	      /* O set; R, S clear */
	assert_memory_equal(f + 62, ip6, 16); /* target */
	assert_int_equal(f[78], 2);	      /* target link-layer address */
	assert_int_equal(f[79], 1);
	assert_memory_equal(f + 80, mac, 6);
}

static void test_unsolicited_na(void **state)
{
	struct util_addr vip = host_addr("2001:db8::20"), ll;
	char err[VIP_ERRLEN];

	(void)state;
	REQUIRE_NETNS();
	assert_int_equal(vip_addr_add(g_ifa, &vip, 64, err, sizeof(err)), 0);
	check_na(g_ifa, IF_A, g_ifb, &vip, &vip);
	assert_int_equal(vip_addr_del(g_ifa, &vip, err, sizeof(err)), 0);
	/* Not (yet) configured: sent from the link-local address instead
	 * (on IF_B, whose link-local is not tentative). */
	assert_int_equal(vip_addr_linklocal6(g_ifb, &ll, err, sizeof(err)), 0);
	check_na(g_ifb, IF_B, g_ifa, &vip, &ll);
}

static void test_garp_errors(void **state)
{
	struct util_addr vip = host_addr("198.51.100.20"), none;
	char err[VIP_ERRLEN];

	(void)state;
	REQUIRE_NETNS();
	assert_int_equal(vip_garp_send(1, &vip, err, sizeof(err)), -1);
	assert_string_equal(err, "gratuitous ARP 198.51.100.20 on lo: hardware address of lo: "
				 "not an Ethernet interface");
	assert_int_equal(vip_garp_send(999999, &vip, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "ifindex 999999"));
	memset(&none, 0, sizeof(none));
	assert_int_equal(vip_garp_send(g_ifa, &none, err, sizeof(err)), -1);
	assert_int_equal(sh("ip link set " IF_A " down"), 0);
	assert_int_equal(vip_garp_send(g_ifa, &vip, err, sizeof(err)), -1);
	assert_string_equal(err, "gratuitous ARP 198.51.100.20 on " IF_A ": Network is down");
	assert_int_equal(sh("ip link set " IF_A " up"), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_ifindex),	    cmocka_unit_test(test_addr_v4),
	    cmocka_unit_test(test_addr_v6),	    cmocka_unit_test(test_addr_errors),
	    cmocka_unit_test(test_addr_eperm),	    cmocka_unit_test(test_primary4),
	    cmocka_unit_test(test_linklocal6),	    cmocka_unit_test(test_garp),
	    cmocka_unit_test(test_unsolicited_na),  cmocka_unit_test(test_garp_errors),
	    cmocka_unit_test(test_linkmon),	    cmocka_unit_test(test_linkmon_overrun),
	    cmocka_unit_test(test_linkmon_foreign), cmocka_unit_test(test_linkmon_errors),
	};

	return cmocka_run_group_tests(tests, setup_netns, NULL);
}
