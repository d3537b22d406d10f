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

/* Most worker threads. The data plane keeps a 64-bit mask of paused
 * workers, and a listening address has one socket per worker: the arrays of
 * its descriptors and a takeover's SCM_RIGHTS message are sized by it. */
#define UTIL_MAX_WORKERS 64

/* Enough for "[ffff:...:ffff%ifname]:65535". */
#define UTIL_ADDR_STRLEN 80

#endif
