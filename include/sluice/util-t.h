/* util types: socket addresses and small value types shared by every module.
 * Plain data, no ownership beyond the struct itself. */
#ifndef SLUICE_UTIL_T_H
#define SLUICE_UTIL_T_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* An IPv4 or IPv6 socket address; len is 0 when unset. */
#define UTIL_HOST_MAX 254 /* a DNS host name and its NUL */

struct util_addr {
	union {
		struct sockaddr sa;
		struct sockaddr_in in4;
		struct sockaddr_in6 in6;
		struct sockaddr_storage ss;
	} u;
	socklen_t len;
};

/* Enough for "[ffff:...:ffff%ifname]:65535". */
#define UTIL_ADDR_STRLEN 80

/* An IPv4 or IPv6 prefix (cidr.c): family AF_INET or AF_INET6, the address
 * in network byte order (4 or 16 bytes used, the rest zero) with every bit
 * past plen zero. */
struct util_cidr {
	uint8_t addr[16];
	uint8_t plen; /* 0-32 or 0-128 */
	uint8_t family;
};

/* Enough for "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255/128". */
#define UTIL_CIDR_STRLEN 56

#endif
