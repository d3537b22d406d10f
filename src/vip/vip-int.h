/* vip internals shared by vip_addr.c and vip_neigh.c. Only src/vip
 * includes it. */
#ifndef SLUICE_VIP_INT_H
#define SLUICE_VIP_INT_H

#include <stddef.h>

struct nl_sock;

/* Open a connected NETLINK_ROUTE socket (caller frees it with
 * nl_socket_free). NULL with err set on failure. */
struct nl_sock *vip_nl_route_open(char *err, size_t errlen);

#endif
