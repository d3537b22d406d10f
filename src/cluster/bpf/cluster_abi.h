/* cluster_abi: the maps shared by the tc program (cluster.bpf.c) and its
 * loader (cluster.c). Plain fixed-size types only, the same layout on both
 * sides; a change here changes both. */
#ifndef SLUICE_CLUSTER_ABI_H
#define SLUICE_CLUSTER_ABI_H

#include <linux/types.h>

#define CLUSTER_MAX_PEERS 16
#define CLUSTER_MAX_IFACES 16
#define CLUSTER_MAX_SERVED 1024
#define CLUSTER_MAX_SLOW 4096 /* flows remembered while forwarded */

/* The EtherType of a forwarded frame: IEEE 802 "local experimental 1".
 * A kernel without our program (a crashed or stopped sluice) has no handler
 * for it and drops the frame silently: it never answers a forwarded packet
 * with a reset. The receiving program puts the IP EtherType back. */
#define CLUSTER_ETH_P 0x88B5

/* Roles of an interface (ifaces map, keyed by ifindex). */
#define CLUSTER_ROLE_UPLINK 1u	/* client packets arrive here */
#define CLUSTER_ROLE_CLUSTER 2u /* forwarded frames leave and arrive here */

struct cluster_iface {
	__u32 role;
	__u8 mac[6]; /* the interface's own address */
	__u8 pad[2];
};

/* cfg map, index 0. */
struct cluster_cfg {
	__u32 cluster_ifindex;
	__u32 reinject_ifindex; /* an uplink: where delivered packets re-enter */
	__u8 reinject_mac[6];
	__u8 cluster_mac[6];
	__u32 npeers;	/* entries 0..npeers-1 of the peers map are configured */
	__u64 stale_ns; /* 0: always active; else pass all once the heartbeat is older */
};

/* peers map, index = peer number in the configuration. */
struct cluster_peer {
	__u8 mac[6];
	__u8 valid; /* the MAC is known (neighbour table) */
	__u8 pad;
};

/* served map: a listening address (port in network order, address as in
 * the packet; IPv4 in the first 4 bytes). addr all zero: any address. */
struct cluster_served {
	__u8 family; /* 4 or 6 */
	__u8 pad;
	__be16 port;
	__u8 addr[16];
};

/* Counters: per-CPU array stats, index below; and per peer (per-CPU array
 * peer_stats, index peer * 2 + CLUSTER_PEER_*). */
enum cluster_stat {
	CLUSTER_PASS_SYN,	 /* a SYN to a served address */
	CLUSTER_PASS_SOCKET,	 /* a local socket (established or handshake) */
	CLUSTER_PASS_COOKIE,	 /* an ACK with a valid SYN cookie of this node */
	CLUSTER_PASS_REINJECTED, /* delivered from a peer, re-entering on the uplink */
	CLUSTER_PASS_INACTIVE,	 /* the loader is gone (tc mode): pass as if absent */
	CLUSTER_PASS_NO_PEER,	 /* no peer with a known MAC: nowhere to send it */
	CLUSTER_PASS_MALFORMED,	 /* truncated or bad header: the stack decides */
	CLUSTER_FORWARDED,	 /* packets forwarded (each once, whatever the peers) */
	CLUSTER_DELIVERED,	 /* from a peer, with a local socket */
	CLUSTER_DROP_NO_OWNER,	 /* from a peer, no local socket */
	CLUSTER_DROP_NOT_PEER,	 /* forwarded frame from a MAC that is no peer */
	CLUSTER_DROP_MALFORMED,	 /* forwarded frame with a bad inner packet */
	CLUSTER_STAT_NR,
};

enum cluster_peer_stat {
	CLUSTER_PEER_FORWARDED, /* copies sent to the peer */
	CLUSTER_PEER_DELIVERED, /* received from the peer and delivered */
	CLUSTER_PEER_STAT_NR,
};

/* slow map (LRU): forwarded flows whose client repeats the same segment:
 * a retransmitting client means no node owns the flow. */
struct cluster_flow_key {
	__u8 family;
	__u8 pad;
	__be16 sport, dport;
	__u8 pad2[2];
	__u8 saddr[16], daddr[16];
};

struct cluster_flow_val {
	__u32 seq, ack; /* of the last packet (network order) */
	__u64 first_ns; /* when this seq/ack was first forwarded */
	__u64 last_ns;
	__u32 repeats; /* packets with the same seq/ack after the first */
	__u32 packets; /* forwarded packets of the flow */
};

#endif
