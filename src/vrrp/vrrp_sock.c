/* vrrp_sock: the raw IP protocol 112 socket of a VRRP instance (vrrp_io.c
 * owns the instance): opening it on the interface (multicast group joined,
 * or unicast), sending an encoded advert from the primary address, and
 * reading packets with the IP facts the codec needs (TTL / hop limit,
 * source, destination). Knows nothing of the protocol above that. */
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "sluice/util.h"
#include "vrrp-int.h"

#define VRRP_RX_BUDGET 256 /* packets read per readiness event */
#define VRRP_RX_BUF 2048
#define VRRP_IP_TOS 0xc0 /* network control, as keepalived */

int vrrp_sock_send(struct vrrp_instance *vi, const uint8_t *buf, size_t len,
		   const struct vrrp_addr *dst)
{
	union {
		char b[CMSG_SPACE(sizeof(struct in6_pktinfo))];
		struct cmsghdr align;
	} ctl;
	struct util_addr to;
	struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.b};
	struct cmsghdr *cm;

	memset(&ctl, 0, sizeof(ctl));
	vrrp_addr_to_util(dst, &to);
	mh.msg_name = &to.u.sa;
	mh.msg_namelen = to.len;
	cm = (struct cmsghdr *)ctl.b;
	if (dst->family == AF_INET) {
		struct in_pktinfo pi = {.ipi_ifindex = vi->ifindex,
					.ipi_spec_dst = vi->primary.u.in4};

		cm->cmsg_level = IPPROTO_IP;
		cm->cmsg_type = IP_PKTINFO;
		cm->cmsg_len = CMSG_LEN(sizeof(pi));
		memcpy(CMSG_DATA(cm), &pi, sizeof(pi));
		mh.msg_controllen = CMSG_SPACE(sizeof(pi));
	} else {
		struct in6_pktinfo pi = {.ipi6_addr = vi->primary.u.in6,
					 .ipi6_ifindex = (unsigned)vi->ifindex};

		to.u.in6.sin6_scope_id = (uint32_t)vi->ifindex;
		cm->cmsg_level = IPPROTO_IPV6;
		cm->cmsg_type = IPV6_PKTINFO;
		cm->cmsg_len = CMSG_LEN(sizeof(pi));
		memcpy(CMSG_DATA(cm), &pi, sizeof(pi));
		mh.msg_controllen = CMSG_SPACE(sizeof(pi));
	}
	return sendmsg(vi->fd, &mh, MSG_DONTWAIT) == (ssize_t)len ? 0 : -1;
}

/* IPv4 raw sockets deliver the IP header: read TTL, addresses, length.
 * Returns the offset of the payload and sets *plen, or -1. */
static int parse_ip4(const uint8_t *buf, size_t n, struct vrrp_rx_info *rx, size_t *plen)
{
	size_t ihl, tot;

	if (n < 20 || (buf[0] >> 4) != 4)
		return -1;
	ihl = (size_t)(buf[0] & 0x0f) * 4;
	tot = (size_t)buf[2] << 8 | buf[3];
	if (ihl < 20 || ihl > n || tot < ihl)
		return -1;
	if (tot > n)
		tot = n; /* the codec reports the truncation */
	memset(rx, 0, sizeof(*rx));
	rx->family = AF_INET;
	rx->ttl = buf[8];
	rx->src.family = rx->dst.family = AF_INET;
	memcpy(&rx->src.u.in4, buf + 12, 4);
	memcpy(&rx->dst.u.in4, buf + 16, 4);
	*plen = tot - ihl;
	return (int)ihl;
}

static void read_v4(struct vrrp_instance *vi)
{
	uint8_t buf[VRRP_RX_BUF];

	for (int k = 0; k < VRRP_RX_BUDGET; k++) {
		ssize_t n = recv(vi->fd, buf, sizeof(buf), MSG_DONTWAIT);
		struct vrrp_rx_info rx;
		size_t plen;
		int off;

		if (n < 0)
			return;
		off = parse_ip4(buf, (size_t)n, &rx, &plen);
		if (off < 0) {
			vi->io_drops[VRRP_IODROP_SHORT]++;
			continue;
		}
		vrrp_io_rx(vi, buf + off, plen, &rx);
	}
}

static void read_v6(struct vrrp_instance *vi)
{
	uint8_t buf[VRRP_RX_BUF];
	union {
		char b[CMSG_SPACE(sizeof(struct in6_pktinfo)) + CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} ctl;

	for (int k = 0; k < VRRP_RX_BUDGET; k++) {
		struct sockaddr_in6 from;
		struct iovec iov = {.iov_base = buf, .iov_len = sizeof(buf)};
		struct msghdr mh = {.msg_name = &from,
				    .msg_namelen = sizeof(from),
				    .msg_iov = &iov,
				    .msg_iovlen = 1,
				    .msg_control = ctl.b,
				    .msg_controllen = sizeof(ctl.b)};
		struct vrrp_rx_info rx;
		bool have_dst = false, have_hops = false;
		ssize_t n = recvmsg(vi->fd, &mh, MSG_DONTWAIT);

		if (n < 0)
			return;
		memset(&rx, 0, sizeof(rx));
		rx.family = AF_INET6;
		rx.src.family = rx.dst.family = AF_INET6;
		rx.src.u.in6 = from.sin6_addr;
		for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm != NULL;
		     cm = CMSG_NXTHDR(&mh, cm)) {
			if (cm->cmsg_level != IPPROTO_IPV6)
				continue;
			if (cm->cmsg_type == IPV6_PKTINFO &&
			    cm->cmsg_len >= CMSG_LEN(sizeof(struct in6_pktinfo))) {
				struct in6_pktinfo pi;

				memcpy(&pi, CMSG_DATA(cm), sizeof(pi));
				rx.dst.u.in6 = pi.ipi6_addr;
				have_dst = true;
			} else if (cm->cmsg_type == IPV6_HOPLIMIT &&
				   cm->cmsg_len >= CMSG_LEN(sizeof(int))) {
				int hops;

				memcpy(&hops, CMSG_DATA(cm), sizeof(hops));
				rx.ttl = (uint8_t)hops;
				have_hops = true;
			}
		}
		if (!have_dst || !have_hops) {
			vi->io_drops[VRRP_IODROP_SHORT]++;
			continue;
		}
		vrrp_io_rx(vi, buf, (size_t)n, &rx);
	}
}

static int sockopt(int fd, int level, int name, int val)
{
	return setsockopt(fd, level, name, &val, sizeof(val));
}

static int open_socket4(struct vrrp_instance *vi, char *err, size_t errlen)
{
	struct ip_mreqn mr;
	int fd = socket(AF_INET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, VRRP_IPPROTO);

	if (fd < 0) {
		snprintf(err, errlen, "raw socket: %s", strerror(errno));
		return -1;
	}
	vi->fd = fd;
	memset(&mr, 0, sizeof(mr));
	mr.imr_multiaddr = vi->group.u.in4;
	mr.imr_ifindex = vi->ifindex;
	if (setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, vi->cfg.ifname, strlen(vi->cfg.ifname)) <
		0 ||
	    sockopt(fd, IPPROTO_IP, IP_TTL, VRRP_TTL) < 0 ||
	    sockopt(fd, IPPROTO_IP, IP_MULTICAST_TTL, VRRP_TTL) < 0 ||
	    sockopt(fd, IPPROTO_IP, IP_TOS, VRRP_IP_TOS) < 0 ||
	    sockopt(fd, IPPROTO_IP, IP_MULTICAST_LOOP, 0) < 0 ||
	    sockopt(fd, IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_DONT) < 0 ||
	    setsockopt(fd, IPPROTO_IP, IP_MULTICAST_IF, &mr, sizeof(mr)) < 0 ||
	    (vi->cfg.npeers == 0 &&
	     setsockopt(fd, IPPROTO_IP, IP_ADD_MEMBERSHIP, &mr, sizeof(mr)) < 0)) {
		snprintf(err, errlen, "raw socket on %s: %s", vi->cfg.ifname, strerror(errno));
		return -1;
	}
	return 0;
}

static int open_socket6(struct vrrp_instance *vi, char *err, size_t errlen)
{
	struct ipv6_mreq mr;
	int fd = socket(AF_INET6, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, VRRP_IPPROTO);

	if (fd < 0) {
		snprintf(err, errlen, "raw socket: %s", strerror(errno));
		return -1;
	}
	vi->fd = fd;
	memset(&mr, 0, sizeof(mr));
	mr.ipv6mr_multiaddr = vi->group.u.in6;
	mr.ipv6mr_interface = (unsigned)vi->ifindex;
	if (setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, vi->cfg.ifname, strlen(vi->cfg.ifname)) <
		0 ||
	    sockopt(fd, IPPROTO_IPV6, IPV6_UNICAST_HOPS, VRRP_TTL) < 0 ||
	    sockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_HOPS, VRRP_TTL) < 0 ||
	    sockopt(fd, IPPROTO_IPV6, IPV6_TCLASS, VRRP_IP_TOS) < 0 ||
	    sockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_LOOP, 0) < 0 ||
	    sockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_IF, vi->ifindex) < 0 ||
	    sockopt(fd, IPPROTO_IPV6, IPV6_RECVHOPLIMIT, 1) < 0 ||
	    sockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, 1) < 0 ||
	    (vi->cfg.npeers == 0 &&
	     setsockopt(fd, IPPROTO_IPV6, IPV6_ADD_MEMBERSHIP, &mr, sizeof(mr)) < 0)) {
		snprintf(err, errlen, "raw socket on %s: %s", vi->cfg.ifname, strerror(errno));
		return -1;
	}
	return 0;
}

int vrrp_sock_open(struct vrrp_instance *vi, char *err, size_t errlen)
{
	if ((vi->primary.family == AF_INET ? open_socket4(vi, err, errlen)
					   : open_socket6(vi, err, errlen)) < 0) {
		if (vi->fd >= 0)
			close(vi->fd);
		vi->fd = -1;
		return -1;
	}
	return 0;
}

void vrrp_sock_read(struct vrrp_instance *vi)
{
	if (vi->primary.family == AF_INET)
		read_v4(vi);
	else
		read_v6(vi);
}
