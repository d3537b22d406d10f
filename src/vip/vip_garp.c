/* vip announcements: gratuitous ARP (IPv4) and unsolicited neighbour
 * advertisement (IPv6) so that hosts and switches move a VIP to this
 * node's MAC at once after a takeover. Each call opens, uses and closes its
 * own socket; frames match what keepalived sends so mixed pairs behave. */
#include <errno.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <netinet/icmp6.h>
#include <netinet/in.h>
#include <netpacket/packet.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <linux/if_ether.h>

#include "sluice/util.h"
#include "sluice/vip.h"

/* Ethernet header (14) + ARP for IPv4 over Ethernet (28), RFC 826. */
#define GARP_FRAME_LEN 42

static const uint8_t bcast_mac[ETH_ALEN] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

int vip_link_hwaddr(int ifindex, uint8_t mac[6], char *err, size_t errlen)
{
	struct ifreq ifr;
	int fd, rc;

	memset(&ifr, 0, sizeof(ifr));
	if (ifindex <= 0 || if_indextoname((unsigned int)ifindex, ifr.ifr_name) == NULL) {
		snprintf(err, errlen, "hardware address of ifindex %d: no such interface", ifindex);
		return -1;
	}
	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "hardware address of %s: socket: %s", ifr.ifr_name,
			 strerror(errno));
		return -1;
	}
	rc = ioctl(fd, SIOCGIFHWADDR, &ifr);
	if (rc < 0)
		snprintf(err, errlen, "hardware address of %s: %s", ifr.ifr_name, strerror(errno));
	close(fd);
	if (rc < 0)
		return -1;
	if (ifr.ifr_hwaddr.sa_family != ARPHRD_ETHER) {
		snprintf(err, errlen, "hardware address of %s: not an Ethernet interface",
			 ifr.ifr_name);
		return -1;
	}
	memcpy(mac, ifr.ifr_hwaddr.sa_data, ETH_ALEN);
	return 0;
}

/* Build the gratuitous ARP request keepalived sends: broadcast, op 1,
 * sender = target = VIP, target hardware address all ones. */
static void garp_build(uint8_t frame[GARP_FRAME_LEN], const uint8_t mac[ETH_ALEN],
		       const struct in_addr *vip)
{
	uint8_t *arp = frame + ETH_HLEN;

	memcpy(frame, bcast_mac, ETH_ALEN);
	memcpy(frame + ETH_ALEN, mac, ETH_ALEN);
	frame[12] = ETH_P_ARP >> 8;
	frame[13] = ETH_P_ARP & 0xff;
	arp[0] = 0; /* hardware type 1: Ethernet */
	arp[1] = ARPHRD_ETHER;
	arp[2] = ETH_P_IP >> 8;
	arp[3] = ETH_P_IP & 0xff;
	arp[4] = ETH_ALEN;
	arp[5] = sizeof(*vip);
	arp[6] = 0;
	arp[7] = ARPOP_REQUEST;
	memcpy(arp + 8, mac, ETH_ALEN);
	memcpy(arp + 14, vip, 4);
	memcpy(arp + 18, bcast_mac, ETH_ALEN);
	memcpy(arp + 24, vip, 4);
}

/* Send one gratuitous ARP. what prefixes error messages. */
static int garp_send4(int ifindex, const struct in_addr *vip, const char *what, char *err,
		      size_t errlen)
{
	uint8_t frame[GARP_FRAME_LEN], mac[ETH_ALEN];
	struct sockaddr_ll sll;
	char herr[128];
	ssize_t n;
	int fd;

	if (vip_link_hwaddr(ifindex, mac, herr, sizeof(herr)) < 0) {
		snprintf(err, errlen, "%s: %s", what, herr);
		return -1;
	}
	garp_build(frame, mac, vip);
	/* Protocol 0: a send-only socket, the kernel queues nothing to it. */
	fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "%s: packet socket: %s", what, strerror(errno));
		return -1;
	}
	memset(&sll, 0, sizeof(sll));
	sll.sll_family = AF_PACKET;
	sll.sll_protocol = htons(ETH_P_ARP);
	sll.sll_ifindex = ifindex;
	sll.sll_halen = ETH_ALEN;
	memcpy(sll.sll_addr, bcast_mac, ETH_ALEN);
	n = sendto(fd, frame, sizeof(frame), 0, (struct sockaddr *)&sll, sizeof(sll));
	if (n != (ssize_t)sizeof(frame))
		snprintf(err, errlen, "%s: %s", what, n < 0 ? strerror(errno) : "short send");
	close(fd);
	return n == (ssize_t)sizeof(frame) ? 0 : -1;
}

/* RFC 4861 4.4: neighbour advertisement with a target link-layer option. */
struct vip_na_msg {
	struct nd_neighbor_advert na;
	struct nd_opt_hdr opt;
	uint8_t mac[ETH_ALEN];
} __attribute__((packed));

/* Open the raw ICMPv6 socket for ifname: bound to it, hop limit 255 as
 * RFC 4861 7.1.2 requires of receivers, receiving nothing. -1 on error. */
static int na_socket(int ifindex, const char *ifname)
{
	int fd = socket(AF_INET6, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_ICMPV6);
	int hops = 255, off = 0;
	struct icmp6_filter filt;

	if (fd < 0)
		return -1;
	ICMP6_FILTER_SETBLOCKALL(&filt);
	if (setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, ifname, (socklen_t)strlen(ifname)) < 0 ||
	    setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_IF, &ifindex, sizeof(ifindex)) < 0 ||
	    setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_HOPS, &hops, sizeof(hops)) < 0 ||
	    setsockopt(fd, IPPROTO_IPV6, IPV6_UNICAST_HOPS, &hops, sizeof(hops)) < 0 ||
	    setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_LOOP, &off, sizeof(off)) < 0 ||
	    setsockopt(fd, IPPROTO_ICMPV6, ICMP6_FILTER, &filt, sizeof(filt)) < 0) {
		int e = errno;

		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

/* sendmsg to ff02::1 on ifindex, from src when not NULL. */
static ssize_t na_sendmsg(int fd, int ifindex, const struct vip_na_msg *m,
			  const struct in6_addr *src)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(struct in6_pktinfo))];
	} ctl;
	struct sockaddr_in6 dst = {.sin6_family = AF_INET6, .sin6_scope_id = (uint32_t)ifindex};
	struct iovec iov = {.iov_base = (void *)m, .iov_len = sizeof(*m)};
	struct msghdr mh = {
	    .msg_name = &dst, .msg_namelen = sizeof(dst), .msg_iov = &iov, .msg_iovlen = 1};

	dst.sin6_addr.s6_addr[0] = 0xff; /* ff02::1, all nodes */
	dst.sin6_addr.s6_addr[1] = 0x02;
	dst.sin6_addr.s6_addr[15] = 0x01;
	if (src != NULL) {
		struct in6_pktinfo pi = {.ipi6_addr = *src, .ipi6_ifindex = (unsigned)ifindex};
		struct cmsghdr *c;

		memset(&ctl, 0, sizeof(ctl));
		mh.msg_control = ctl.buf;
		mh.msg_controllen = sizeof(ctl.buf);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = IPPROTO_IPV6;
		c->cmsg_type = IPV6_PKTINFO;
		c->cmsg_len = CMSG_LEN(sizeof(pi));
		memcpy(CMSG_DATA(c), &pi, sizeof(pi));
	}
	return sendmsg(fd, &mh, 0);
}

/* Send one unsolicited neighbour advertisement (RFC 4861 7.2.6). The
 * kernel fills in the ICMPv6 checksum of raw ICMPv6 sockets. */
static int na_send6(int ifindex, const struct in6_addr *vip, const char *what, char *err,
		    size_t errlen)
{
	char ifname[IF_NAMESIZE], herr[128];
	struct vip_na_msg m;
	uint8_t mac[ETH_ALEN];
	ssize_t n;
	int fd;

	if (vip_link_hwaddr(ifindex, mac, herr, sizeof(herr)) < 0) {
		snprintf(err, errlen, "%s: %s", what, herr);
		return -1;
	}
	memset(&m, 0, sizeof(m));
	m.na.nd_na_type = ND_NEIGHBOR_ADVERT;
	m.na.nd_na_flags_reserved = ND_NA_FLAG_OVERRIDE; /* unsolicited: S clear */
	m.na.nd_na_target = *vip;
	m.opt.nd_opt_type = ND_OPT_TARGET_LINKADDR;
	m.opt.nd_opt_len = 1; /* units of 8 bytes */
	memcpy(m.mac, mac, ETH_ALEN);

	if (if_indextoname((unsigned int)ifindex, ifname) == NULL ||
	    (fd = na_socket(ifindex, ifname)) < 0) {
		snprintf(err, errlen, "%s: ICMPv6 socket: %s", what, strerror(errno));
		return -1;
	}
	/* Source the VIP itself, as the kernel's own unsolicited NAs do; when
	 * it is not configured (yet), let the kernel pick a link-local. */
	n = na_sendmsg(fd, ifindex, &m, vip);
	if (n < 0 && (errno == EINVAL || errno == EADDRNOTAVAIL))
		n = na_sendmsg(fd, ifindex, &m, NULL);
	if (n != (ssize_t)sizeof(m))
		snprintf(err, errlen, "%s: %s", what, n < 0 ? strerror(errno) : "short send");
	close(fd);
	return n == (ssize_t)sizeof(m) ? 0 : -1;
}

int vip_garp_send(int ifindex, const struct util_addr *addr, char *err, size_t errlen)
{
	char host[UTIL_ADDR_STRLEN], ifn[IF_NAMESIZE + 16], what[160];
	int family = addr->len ? addr->u.sa.sa_family : AF_UNSPEC;

	util_addr_fmt_host(addr, host, sizeof(host));
	snprintf(what, sizeof(what), "%s %s on %s",
		 family == AF_INET6 ? "neighbour advertisement" : "gratuitous ARP", host,
		 vip_ifname_fmt(ifindex, ifn, sizeof(ifn)));
	if (family == AF_INET)
		return garp_send4(ifindex, &addr->u.in4.sin_addr, what, err, errlen);
	if (family == AF_INET6)
		return na_send6(ifindex, &addr->u.in6.sin6_addr, what, err, errlen);
	snprintf(err, errlen, "%s: not an IPv4 or IPv6 address", what);
	return -1;
}
