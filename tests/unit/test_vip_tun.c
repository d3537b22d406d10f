/* Unit tests for the TUN announce device (vip_tun.c) against the real
 * kernel, in a private network namespace: the device lives exactly as long
 * as a descriptor of it, a name that exists is refused, an inherited
 * descriptor is recognised, and a missing /dev/net/tun is a clear error.
 * Needs root; skips otherwise. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sluice/util.h"
#include "sluice/vip.h"

static bool g_ready;
static const char *g_why = "not set up";

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

/* Does `ip -o addr show dev ifname` list needle? */
static bool ip_shows(const char *ifname, const char *needle)
{
	char cmd[128], out[4096];
	size_t n = 0;
	FILE *f;

	snprintf(cmd, sizeof(cmd), "ip -o addr show dev %s 2>/dev/null", ifname);
	f = popen(cmd, "r");
	assert_non_null(f);
	while (n + 1 < sizeof(out)) {
		size_t r = fread(out + n, 1, sizeof(out) - 1 - n, f);

		if (r == 0)
			break;
		n += r;
	}
	out[n] = '\0';
	pclose(f);
	return strstr(out, needle) != NULL;
}

static int setup_netns(void **state)
{
	(void)state;
	if (geteuid() != 0) {
		g_why = "TUN tests need root (a private network namespace)";
		return 0;
	}
	if (unshare(CLONE_NEWNET) < 0) {
		g_why = "unshare(CLONE_NEWNET) failed";
		return 0;
	}
	if (access("/dev/net/tun", R_OK | W_OK) != 0) {
		g_why = "no usable /dev/net/tun";
		return 0;
	}
	g_ready = sh("ip link set lo up") == 0;
	return 0;
}

static struct util_addr host_addr(const char *s)
{
	struct util_addr a;

	assert_int_equal(util_addr_parse_host(s, &a), 0);
	return a;
}

/* Created up, carries a /32, and goes away with its descriptor: the
 * dead-man switch the routing daemon relies on. */
static void test_create_and_close(void **state)
{
	char err[VIP_ERRLEN];
	struct util_addr a = host_addr("198.51.100.10");
	int ifindex = 0, fd;

	(void)state;
	REQUIRE_NETNS();
	fd = vip_tun_create("vip0", &ifindex, err, sizeof(err));
	assert_true(fd >= 0);
	assert_int_equal(ifindex, (int)if_nametoindex("vip0"));
	assert_int_equal(sh("ip link show dev vip0 | grep -q '[<,]UP[,>]'"), 0);
	assert_int_equal(vip_addr_add(ifindex, &a, 32, err, sizeof(err)), 0);
	assert_true(ip_shows("vip0", "inet 198.51.100.10/32 "));
	close(fd);
	assert_int_equal(if_nametoindex("vip0"), 0);
	assert_false(ip_shows("vip0", "198.51.100.10"));
}

/* A name that exists is never attached to: another link, another
 * process's TUN, a persistent TUN (which would outlive us). */
static void test_name_taken(void **state)
{
	char err[VIP_ERRLEN];
	int ifindex = 0, fd, fd2;

	(void)state;
	REQUIRE_NETNS();
	assert_int_equal(sh("ip link add vx0 type veth peer name vx1"), 0);
	assert_int_equal(vip_tun_create("vx0", &ifindex, err, sizeof(err)), -1);
	assert_string_equal(err, "device vx0 already exists and is not this sluice's TUN device "
				 "(delete it, or name another 'device')");
	assert_true(if_nametoindex("vx0") != 0);
	sh("ip link del vx0");

	assert_int_equal(sh("ip tuntap add dev pt0 mode tun"), 0);
	assert_int_equal(vip_tun_create("pt0", &ifindex, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "pt0 already exists"));
	assert_true(if_nametoindex("pt0") != 0);
	sh("ip tuntap del dev pt0 mode tun");

	fd = vip_tun_create("vip1", &ifindex, err, sizeof(err));
	assert_true(fd >= 0);
	fd2 = vip_tun_create("vip1", &ifindex, err, sizeof(err));
	assert_int_equal(fd2, -1);
	assert_non_null(strstr(err, "vip1 already exists"));
	assert_true(if_nametoindex("vip1") != 0);
	close(fd);
}

/* A binary upgrade: the new process holds a duplicate; the device and its
 * addresses live on when the old descriptor closes. */
static void test_adopt(void **state)
{
	char err[VIP_ERRLEN];
	struct util_addr a = host_addr("2001:db8::10");
	int ifindex = 0, ifindex2 = 0, fd, dup, devnull;

	(void)state;
	REQUIRE_NETNS();
	fd = vip_tun_create("vip2", &ifindex, err, sizeof(err));
	assert_true(fd >= 0);
	assert_int_equal(vip_addr_add(ifindex, &a, 128, err, sizeof(err)), 0);
	dup = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	assert_true(dup >= 0);
	assert_int_equal(vip_tun_adopt(dup, "vip2", &ifindex2, err, sizeof(err)), 0);
	assert_int_equal(ifindex2, ifindex);
	assert_int_equal(vip_tun_adopt(dup, "vip9", &ifindex2, err, sizeof(err)), -1);
	assert_string_equal(err, "device vip9: the inherited descriptor belongs to vip2");
	devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	assert_int_equal(vip_tun_adopt(devnull, "vip2", &ifindex2, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "is not a TUN device"));
	close(devnull);
	close(fd);
	assert_int_equal((int)if_nametoindex("vip2"), ifindex);
	assert_true(ip_shows("vip2", "inet6 2001:db8::10/128 "));
	close(dup);
	assert_int_equal(if_nametoindex("vip2"), 0);
}

/* Without /dev/net/tun (a container without the device): a clear error.
 * A child hides the device under an empty tmpfs in its own mount
 * namespace. */
static void test_no_dev_net_tun(void **state)
{
	int status;
	pid_t pid;

	(void)state;
	REQUIRE_NETNS();
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char err[VIP_ERRLEN];
		int ifindex;

		if (unshare(CLONE_NEWNS) < 0 ||
		    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
		    mount("tmpfs", "/dev/net", "tmpfs", 0, NULL) < 0)
			_exit(2);
		if (vip_tun_create("vip3", &ifindex, err, sizeof(err)) != -1)
			_exit(3);
		if (strcmp(err, "device vip3: cannot open /dev/net/tun: No such file or directory "
				"(announcing needs the kernel's TUN driver)") != 0) {
			fprintf(stderr, "got: %s\n", err);
			_exit(4);
		}
		_exit(if_nametoindex("vip3") == 0 ? 0 : 5);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_create_and_close),
	    cmocka_unit_test(test_name_taken),
	    cmocka_unit_test(test_adopt),
	    cmocka_unit_test(test_no_dev_net_tun),
	};
	return cmocka_run_group_tests(tests, setup_netns, NULL);
}
