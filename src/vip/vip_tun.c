/* vip_tun: the TUN device that carries announced addresses. sluice creates
 * it (never persistent) and keeps its descriptor for the life of the
 * process, so a dead sluice takes the device and its addresses with it and
 * the routing daemon withdraws them by itself: a dead-man switch with no
 * watchdog. Nothing is ever read from or written to the descriptor. */
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <linux/if_tun.h>

#include "sluice/util.h"
#include "sluice/vip.h"

#define TUN_PATH "/dev/net/tun"

/* IFF_UP on ifname (with an ioctl: no libnl object needed for one flag). */
static int tun_set_up(const char *name, char *err, size_t errlen)
{
	struct ifreq ifr;
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	int rc = -1;

	if (s < 0) {
		snprintf(err, errlen, "device %s: socket: %s", name, strerror(errno));
		return -1;
	}
	memset(&ifr, 0, sizeof(ifr));
	util_strlcpy(ifr.ifr_name, name, sizeof(ifr.ifr_name));
	if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0) {
		snprintf(err, errlen, "device %s: get flags: %s", name, strerror(errno));
	} else if (!(ifr.ifr_flags & IFF_UP)) {
		ifr.ifr_flags |= IFF_UP;
		if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
			snprintf(err, errlen, "device %s: set up: %s", name, strerror(errno));
		else
			rc = 0;
	} else {
		rc = 0;
	}
	close(s);
	return rc;
}

/* No IPv6 link-local address on the device: nothing but the announced
 * addresses should show up there for the routing daemon. Best effort (a
 * host without IPv6 has no such setting). */
static void no_link_local(const char *name)
{
	char path[96];
	int fd;

	snprintf(path, sizeof(path), "/proc/sys/net/ipv6/conf/%s/addr_gen_mode", name);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	if (write(fd, "1", 1) != 1) {
		/* IN6_ADDR_GEN_MODE_NONE refused: a link-local is harmless */
	}
	close(fd);
}

/* The name and flags of the device fd is attached to. Returns 0 or -1. */
static int tun_info(int fd, char *name, size_t len, short *flags)
{
	struct ifreq ifr;

	memset(&ifr, 0, sizeof(ifr));
	if (ioctl(fd, TUNGETIFF, &ifr) < 0)
		return -1;
	util_strlcpy(name, ifr.ifr_name, len);
	*flags = ifr.ifr_flags;
	return 0;
}

int vip_tun_create(const char *name, int *ifindex_out, char *err, size_t errlen)
{
	struct ifreq ifr;
	char got[IF_NAMESIZE];
	short flags = 0;
	int fd;

	if (name == NULL || name[0] == '\0' || strlen(name) >= IF_NAMESIZE) {
		snprintf(err, errlen, "device '%s': invalid name", name ? name : "");
		return -1;
	}
	/* Attaching to an existing device would make us depend on whoever
	 * made it: a persistent one outlives us (no dead-man switch), and
	 * another process's is not ours to announce on. */
	if (if_nametoindex(name) != 0) {
		snprintf(err, errlen,
			 "device %s already exists and is not this sluice's TUN device "
			 "(delete it, or name another 'device')",
			 name);
		return -1;
	}
	fd = open(TUN_PATH, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		bool no_driver = errno == ENOENT || errno == ENODEV || errno == ENXIO;

		snprintf(err, errlen, "device %s: cannot open %s: %s%s", name, TUN_PATH,
			 strerror(errno),
			 no_driver ? " (announcing needs the kernel's TUN driver)" : "");
		return -1;
	}
	memset(&ifr, 0, sizeof(ifr));
	ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
	util_strlcpy(ifr.ifr_name, name, sizeof(ifr.ifr_name));
	if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
		snprintf(err, errlen, "device %s: cannot create the TUN device: %s", name,
			 errno == EBUSY || errno == EINVAL ? "the name is taken by another device"
							   : strerror(errno));
		close(fd);
		return -1;
	}
	/* the name could have appeared between the check and TUNSETIFF */
	if (tun_info(fd, got, sizeof(got), &flags) < 0 || strcmp(got, name) != 0 ||
	    (flags & IFF_PERSIST)) {
		snprintf(err, errlen,
			 "device %s already exists and is not this sluice's TUN device "
			 "(delete it, or name another 'device')",
			 name);
		close(fd);
		return -1;
	}
	no_link_local(name);
	if (tun_set_up(name, err, errlen) < 0 || vip_ifindex(name, ifindex_out, err, errlen) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

int vip_tun_adopt(int fd, const char *name, int *ifindex_out, char *err, size_t errlen)
{
	char got[IF_NAMESIZE];
	short flags = 0;

	if (tun_info(fd, got, sizeof(got), &flags) < 0) {
		snprintf(err, errlen, "device %s: the inherited descriptor is not a TUN device: %s",
			 name, strerror(errno));
		return -1;
	}
	if (strcmp(got, name) != 0 || !(flags & IFF_TUN)) {
		snprintf(err, errlen, "device %s: the inherited descriptor belongs to %s", name,
			 got);
		return -1;
	}
	if (tun_set_up(name, err, errlen) < 0)
		return -1;
	return vip_ifindex(name, ifindex_out, err, errlen);
}
