/* cluster types: what core hands the second-chance forwarding module (the
 * interfaces by index with their MACs, the peers by number) and what it
 * reads back (counters, flows no peer answers). Plain data. */
#ifndef SLUICE_CLUSTER_T_H
#define SLUICE_CLUSTER_T_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sluice/util-t.h"

#define CLUSTER_PEERS_MAX 16	/* as CLUSTER_MAX_PEERS of the BPF maps */
#define CLUSTER_UPLINKS_MAX 8	/* the cluster interface makes 9 of 16 map slots */
#define CLUSTER_SERVED_MAX 1024 /* listening addresses: CLUSTER_MAX_SERVED of the BPF map */
#define CLUSTER_ERRLEN 256

/* How the program is attached. tcx links (kernel 6.6+) belong to the
 * process and vanish with it; tc (clsact + cls_bpf netlink filter) outlives
 * it, so the program then watches a heartbeat and passes everything once
 * the process is gone. auto: tcx where the kernel has it, else tc. */
enum cluster_attach {
	CLUSTER_ATTACH_AUTO,
	CLUSTER_ATTACH_TCX,
	CLUSTER_ATTACH_TC,
};

struct cluster_if {
	int ifindex;
	uint8_t mac[6];
	char name[16];
};

/* What cluster_open() attaches to. The cluster interface may also be an
 * uplink (a pair whose only segment is its uplink). */
struct cluster_setup {
	struct cluster_if cluster;
	struct cluster_if uplinks[CLUSTER_UPLINKS_MAX];
	size_t nuplinks;
	size_t npeers; /* peer numbers 0..npeers-1; MACs come with cluster_set_peer() */
	enum cluster_attach attach;
	const struct util_addr *served; /* listening addresses (cluster_set_served) */
	size_t nserved;
	bool takeover; /* a binary upgrade: the old process's tc filters are ours */
};

/* Counters since the program was loaded (summed over CPUs). Every TCP
 * packet to a served address on an uplink lands in exactly one of the
 * pass_* counters or in forwarded; every forwarded frame received lands in
 * delivered or one of the drop_* counters. */
struct cluster_stats {
	uint64_t pass_syn, pass_socket, pass_cookie, pass_reinjected, pass_inactive;
	uint64_t pass_no_peer, pass_malformed;
	uint64_t forwarded;
	uint64_t delivered, drop_no_owner, drop_not_peer, drop_malformed;
	uint64_t peer_forwarded[CLUSTER_PEERS_MAX]; /* copies sent to each peer */
	uint64_t peer_delivered[CLUSTER_PEERS_MAX]; /* received from each and delivered */
};

/* A forwarded flow whose client keeps repeating the same segment: no peer
 * answers it. */
struct cluster_slow_flow {
	struct util_addr src, dst;
	uint64_t repeating_ms; /* since the segment was first forwarded */
	uint32_t repeats, packets;
};

#endif
