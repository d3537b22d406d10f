/* cluster.bpf: the tc ingress program of second-chance forwarding. On an
 * uplink, a TCP packet to a served address that is neither a SYN nor part of
 * a flow this node has a socket for is sent to every peer over the cluster
 * interface (Ethernet rewrite, EtherType CLUSTER_ETH_P) and dropped here, so
 * this node never resets a flow it does not own. A forwarded frame is
 * delivered only when this node has a socket for it, else dropped: it is
 * never forwarded again and never answered. Anything else passes untouched.
 * Loaded and attached by cluster.c; maps in cluster_abi.h. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/pkt_cls.h>
#include <linux/tcp.h>

#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "cluster_abi.h"

#define AF_INET 2
#define AF_INET6 10
#define IP_MF 0x2000
#define IP_OFFSET 0x1FFF
#define ETH_ALEN 6

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct cluster_cfg);
} cfg SEC(".maps");

/* the loader's heartbeat (ns, bpf_ktime_get_ns clock), in its own map so
 * that writing it never tears the configuration */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} alive SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, CLUSTER_MAX_IFACES);
	__type(key, __u32);
	__type(value, struct cluster_iface);
} ifaces SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, CLUSTER_MAX_PEERS);
	__type(key, __u32);
	__type(value, struct cluster_peer);
} peers SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, CLUSTER_MAX_SERVED);
	__type(key, struct cluster_served);
	__type(value, __u8);
} served SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, CLUSTER_STAT_NR);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, CLUSTER_MAX_PEERS *CLUSTER_PEER_STAT_NR);
	__type(key, __u32);
	__type(value, __u64);
} peer_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, CLUSTER_MAX_SLOW);
	__type(key, struct cluster_flow_key);
	__type(value, struct cluster_flow_val);
} slow SEC(".maps");

/* A parsed TCP/IP packet: offsets from skb->data, and what lookups need. */
struct pkt {
	__u32 l3_off, l4_off, ip_len;
	__u8 family; /* 4 or 6 */
	__u8 flags;  /* byte 13 of the TCP header */
	__u32 seq, ack;
	struct bpf_sock_tuple tuple;
};

static __always_inline void count(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&stats, &idx);

	if (v != NULL)
		*v += 1;
}

static __always_inline void count_peer(__u32 peer, __u32 what)
{
	__u32 idx = peer * CLUSTER_PEER_STAT_NR + what;
	__u64 *v = bpf_map_lookup_elem(&peer_stats, &idx);

	if (v != NULL)
		*v += 1;
}

/* Parse the IP + TCP headers at l3_off. Returns 1 for TCP (p filled), 0 for
 * anything that is not ours to judge (other protocols, fragments, IPv6
 * extension headers), -1 for a truncated or malformed header. */
static __always_inline int parse(struct __sk_buff *skb, __u32 l3_off, int v6, struct pkt *p)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct tcphdr *th;

	p->l3_off = l3_off;
	if (!v6) {
		struct iphdr *ip = data + l3_off;
		__u32 ihl;

		if ((void *)(ip + 1) > end)
			return -1;
		if (ip->version != 4 || ip->ihl < 5)
			return -1;
		if (ip->protocol != IPPROTO_TCP)
			return 0;
		if (ip->frag_off & bpf_htons(IP_MF | IP_OFFSET))
			return 0;
		ihl = ip->ihl * 4;
		p->ip_len = sizeof(*ip);
		p->l4_off = l3_off + ihl;
		p->family = 4;
		p->tuple.ipv4.saddr = ip->saddr;
		p->tuple.ipv4.daddr = ip->daddr;
	} else {
		struct ipv6hdr *ip6 = data + l3_off;

		if ((void *)(ip6 + 1) > end)
			return -1;
		if (ip6->version != 6)
			return -1;
		if (ip6->nexthdr != IPPROTO_TCP)
			return 0;
		p->ip_len = sizeof(*ip6);
		p->l4_off = l3_off + sizeof(*ip6);
		p->family = 6;
		__builtin_memcpy(p->tuple.ipv6.saddr, &ip6->saddr, 16);
		__builtin_memcpy(p->tuple.ipv6.daddr, &ip6->daddr, 16);
	}
	if (p->l4_off > 1500)
		return -1;
	th = data + p->l4_off;
	if ((void *)(th + 1) > end)
		return -1;
	if (th->doff < 5)
		return -1;
	p->flags = ((__u8 *)th)[13];
	p->seq = th->seq;
	p->ack = th->ack_seq;
	if (p->family == 4) {
		p->tuple.ipv4.sport = th->source;
		p->tuple.ipv4.dport = th->dest;
	} else {
		p->tuple.ipv6.sport = th->source;
		p->tuple.ipv6.dport = th->dest;
	}
	return 1;
}

/* Is the destination an address and port this node serves? */
static __always_inline int is_served(const struct pkt *p)
{
	struct cluster_served k = {};

	k.family = p->family;
	if (p->family == 4) {
		k.port = p->tuple.ipv4.dport;
		__builtin_memcpy(k.addr, &p->tuple.ipv4.daddr, 4);
	} else {
		k.port = p->tuple.ipv6.dport;
		__builtin_memcpy(k.addr, p->tuple.ipv6.daddr, 16);
	}
	if (bpf_map_lookup_elem(&served, &k) != NULL)
		return 1;
	__builtin_memset(k.addr, 0, sizeof(k.addr));
	return bpf_map_lookup_elem(&served, &k) != NULL;
}

#define TCP_FLAG_SYN 0x02
#define TCP_FLAG_RST 0x04
#define TCP_FLAG_ACK 0x10

enum owner { OWNER_NONE, OWNER_SOCKET, OWNER_COOKIE };

/* Does this node own the flow: a socket that is not a listener (established,
 * a handshake in progress, closing), or a listener and a valid SYN cookie? */
static __always_inline enum owner owner(struct __sk_buff *skb, struct pkt *p)
{
	struct bpf_sock *sk;
	enum owner o = OWNER_NONE;

	if (p->family == 4)
		sk = bpf_skc_lookup_tcp(skb, &p->tuple, sizeof(p->tuple.ipv4), BPF_F_CURRENT_NETNS,
					0);
	else
		sk = bpf_skc_lookup_tcp(skb, &p->tuple, sizeof(p->tuple.ipv6), BPF_F_CURRENT_NETNS,
					0);
	if (sk == NULL)
		return OWNER_NONE;
	if (sk->state != BPF_TCP_LISTEN) {
		o = OWNER_SOCKET;
	} else if ((p->flags & (TCP_FLAG_SYN | TCP_FLAG_RST | TCP_FLAG_ACK)) == TCP_FLAG_ACK) {
		void *data = (void *)(long)skb->data;
		void *end = (void *)(long)skb->data_end;
		void *iph = data + p->l3_off;
		struct tcphdr *th = data + p->l4_off;

		/* offsets were checked by parse(); the verifier wants it again */
		if (p->l3_off > 64 || p->l4_off > 1500)
			goto out;
		if (p->family == 4) {
			if (iph + sizeof(struct iphdr) > end || (void *)(th + 1) > end)
				goto out;
			if (bpf_tcp_check_syncookie(sk, iph, sizeof(struct iphdr), th,
						    sizeof(*th)) == 0)
				o = OWNER_COOKIE;
		} else {
			if (iph + sizeof(struct ipv6hdr) > end || (void *)(th + 1) > end)
				goto out;
			if (bpf_tcp_check_syncookie(sk, iph, sizeof(struct ipv6hdr), th,
						    sizeof(*th)) == 0)
				o = OWNER_COOKIE;
		}
	}
out:
	bpf_sk_release(sk);
	return o;
}

/* Remember a forwarded flow; a client that keeps sending the same segment
 * is retransmitting: no peer answers it (user space reports it). */
static __always_inline void track(const struct pkt *p)
{
	struct cluster_flow_key k = {};
	struct cluster_flow_val *v, nv = {};
	__u64 now = bpf_ktime_get_ns();

	k.family = p->family;
	if (p->family == 4) {
		k.sport = p->tuple.ipv4.sport;
		k.dport = p->tuple.ipv4.dport;
		__builtin_memcpy(k.saddr, &p->tuple.ipv4.saddr, 4);
		__builtin_memcpy(k.daddr, &p->tuple.ipv4.daddr, 4);
	} else {
		k.sport = p->tuple.ipv6.sport;
		k.dport = p->tuple.ipv6.dport;
		__builtin_memcpy(k.saddr, p->tuple.ipv6.saddr, 16);
		__builtin_memcpy(k.daddr, p->tuple.ipv6.daddr, 16);
	}
	v = bpf_map_lookup_elem(&slow, &k);
	if (v == NULL) {
		nv.seq = p->seq;
		nv.ack = p->ack;
		nv.first_ns = nv.last_ns = now;
		nv.packets = 1;
		bpf_map_update_elem(&slow, &k, &nv, BPF_ANY);
		return;
	}
	/* the same segment again within 10 s is a retransmission; progress,
	 * or a long silence (keepalives), starts over */
	if (v->seq == p->seq && v->ack == p->ack && now - v->last_ns < 10000000000ull) {
		v->repeats += 1;
	} else {
		v->seq = p->seq;
		v->ack = p->ack;
		v->first_ns = now;
		v->repeats = 0;
	}
	v->last_ns = now;
	v->packets += 1;
}

/* Send a copy to every peer with a known MAC, drop the original. */
static __always_inline int forward(struct __sk_buff *skb, const struct cluster_cfg *c,
				   struct pkt *p)
{
	struct ethhdr eh;
	__u32 sent = 0;

	__builtin_memcpy(eh.h_source, c->cluster_mac, ETH_ALEN);
	eh.h_proto = bpf_htons(CLUSTER_ETH_P);
	for (__u32 i = 0; i < CLUSTER_MAX_PEERS; i++) {
		__u32 idx = i;
		struct cluster_peer *peer;

		if (i >= c->npeers)
			break;
		peer = bpf_map_lookup_elem(&peers, &idx);
		if (peer == NULL || !peer->valid)
			continue;
		__builtin_memcpy(eh.h_dest, peer->mac, ETH_ALEN);
		if (bpf_skb_store_bytes(skb, 0, &eh, sizeof(eh), 0) < 0)
			break;
		if (bpf_clone_redirect(skb, c->cluster_ifindex, 0) == 0) {
			count_peer(i, CLUSTER_PEER_FORWARDED);
			sent++;
		}
	}
	if (sent == 0) {
		/* nowhere to send it: the stack answers, as without us; put
		 * the header back if we touched it */
		count(CLUSTER_PASS_NO_PEER);
		return TC_ACT_UNSPEC;
	}
	count(CLUSTER_FORWARDED);
	track(p);
	return TC_ACT_SHOT;
}

static __always_inline int mac_equal(const __u8 *a, const __u8 *b)
{
	return a[0] == b[0] && a[1] == b[1] && a[2] == b[2] && a[3] == b[3] && a[4] == b[4] &&
	       a[5] == b[5];
}

static __always_inline int is_peer_mac(const struct cluster_cfg *c, const __u8 *mac,
				       __u32 *peer_out)
{
	for (__u32 i = 0; i < CLUSTER_MAX_PEERS; i++) {
		__u32 idx = i;
		struct cluster_peer *peer;

		if (i >= c->npeers)
			break;
		peer = bpf_map_lookup_elem(&peers, &idx);
		if (peer == NULL || !peer->valid)
			continue;
		if (mac_equal(peer->mac, mac)) {
			*peer_out = i;
			return 1;
		}
	}
	return 0;
}

/* A forwarded frame on the cluster interface. */
static __always_inline int from_peer(struct __sk_buff *skb, const struct cluster_cfg *c,
				     const struct cluster_iface *me)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct pkt p = {};
	__u8 src[ETH_ALEN], dst[ETH_ALEN];
	__u32 peer = 0, uplink;
	__be16 proto;
	int v6, rc;

	if (!(me->role & CLUSTER_ROLE_CLUSTER) || (void *)(eth + 1) > end) {
		count(CLUSTER_DROP_NOT_PEER);
		return TC_ACT_SHOT;
	}
	__builtin_memcpy(src, eth->h_source, ETH_ALEN);
	if (!is_peer_mac(c, src, &peer)) {
		count(CLUSTER_DROP_NOT_PEER);
		return TC_ACT_SHOT;
	}
	if (data + sizeof(*eth) + 1 > end) {
		count(CLUSTER_DROP_MALFORMED);
		return TC_ACT_SHOT;
	}
	v6 = (((__u8 *)data)[sizeof(*eth)] >> 4) == 6;
	rc = parse(skb, sizeof(*eth), v6, &p);
	if (rc <= 0 || !is_served(&p)) {
		count(CLUSTER_DROP_MALFORMED);
		return TC_ACT_SHOT;
	}
	if (owner(skb, &p) == OWNER_NONE) {
		count(CLUSTER_DROP_NO_OWNER);
		return TC_ACT_SHOT;
	}
	/* Re-enter through an uplink as an ordinary IP frame: the stack then
	 * sees it arrive where the client's route points, so strict reverse
	 * path filtering accepts it, and the uplink's program passes it (its
	 * source MAC is a peer's). */
	uplink = c->reinject_ifindex;
	__builtin_memcpy(dst, c->reinject_mac, ETH_ALEN);
	if (me->role & CLUSTER_ROLE_UPLINK) {
		uplink = skb->ifindex;
		__builtin_memcpy(dst, me->mac, ETH_ALEN);
	}
	proto = bpf_htons(v6 ? ETH_P_IPV6 : ETH_P_IP);
	if (bpf_skb_store_bytes(skb, offsetof(struct ethhdr, h_proto), &proto, sizeof(proto), 0) <
		0 ||
	    bpf_skb_store_bytes(skb, 0, dst, ETH_ALEN, 0) < 0) {
		count(CLUSTER_DROP_MALFORMED);
		return TC_ACT_SHOT;
	}
	count(CLUSTER_DELIVERED);
	count_peer(peer, CLUSTER_PEER_DELIVERED);
	return bpf_redirect(uplink, BPF_F_INGRESS);
}

/* A client packet on an uplink. */
static __always_inline int from_client(struct __sk_buff *skb, const struct cluster_cfg *c, int v6)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	__u8 src[ETH_ALEN];
	struct pkt p = {};
	__u32 zero = 0, peer;
	__u64 *beat;
	int rc;

	rc = parse(skb, sizeof(*eth), v6, &p);
	if (rc == 0)
		return TC_ACT_UNSPEC;
	if (rc < 0) {
		count(CLUSTER_PASS_MALFORMED);
		return TC_ACT_UNSPEC;
	}
	if (!is_served(&p))
		return TC_ACT_UNSPEC;
	data = (void *)(long)skb->data;
	end = (void *)(long)skb->data_end;
	eth = data;
	if ((void *)(eth + 1) > end)
		return TC_ACT_UNSPEC;
	__builtin_memcpy(src, eth->h_source, ETH_ALEN);
	if (is_peer_mac(c, src, &peer)) {
		count(CLUSTER_PASS_REINJECTED);
		return TC_ACT_UNSPEC;
	}
	if (c->stale_ns != 0) {
		beat = bpf_map_lookup_elem(&alive, &zero);
		if (beat == NULL || bpf_ktime_get_ns() - *beat > c->stale_ns) {
			count(CLUSTER_PASS_INACTIVE);
			return TC_ACT_UNSPEC;
		}
	}
	if ((p.flags & (TCP_FLAG_SYN | TCP_FLAG_ACK)) == TCP_FLAG_SYN) {
		count(CLUSTER_PASS_SYN);
		return TC_ACT_UNSPEC;
	}
	switch (owner(skb, &p)) {
	case OWNER_SOCKET:
		count(CLUSTER_PASS_SOCKET);
		return TC_ACT_UNSPEC;
	case OWNER_COOKIE:
		count(CLUSTER_PASS_COOKIE);
		return TC_ACT_UNSPEC;
	case OWNER_NONE:
		break;
	}
	return forward(skb, c, &p);
}

SEC("tc")
int sluice_cluster(struct __sk_buff *skb)
{
	__u32 zero = 0, ifindex = skb->ifindex;
	struct cluster_iface *me;
	struct cluster_cfg *c;

	me = bpf_map_lookup_elem(&ifaces, &ifindex);
	c = bpf_map_lookup_elem(&cfg, &zero);
	if (me == NULL || c == NULL)
		return TC_ACT_UNSPEC;
	if (skb->protocol == bpf_htons(CLUSTER_ETH_P))
		return from_peer(skb, c, me);
	if (!(me->role & CLUSTER_ROLE_UPLINK))
		return TC_ACT_UNSPEC;
	if (skb->protocol == bpf_htons(ETH_P_IP))
		return from_client(skb, c, 0);
	if (skb->protocol == bpf_htons(ETH_P_IPV6))
		return from_client(skb, c, 1);
	return TC_ACT_UNSPEC;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
