// SPDX-License-Identifier: GPL-2.0
/* krelay.bpf.c: the kernel relay's stream-verdict program. Each segment a
 * relayed socket receives is redirected to its peer's egress, unless user
 * space must see it: during the hold after insert, while bytes passed
 * earlier are still on their way through user space (so order is kept), or
 * when the bytes in flight towards the peer reached the cap (so a fast
 * sender meets TCP backpressure instead of filling the kernel). */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "krelay_abi.h"

/* sizes are set by the loader before load */
struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, 2);
	__type(key, __u64);
	__type(value, __u64);
} socks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 2);
	__type(key, __u64);
	__type(value, struct krelay_link);
} conns SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, struct krelay_dir);
} dirs SEC(".maps");

struct krelay_ring {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, KRELAY_RING_BYTES);
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, KRELAY_MAX_RINGS);
	__type(key, __u32);
	__array(values, struct krelay_ring);
} rings SEC(".maps");

/* Tell the direction's worker that bytes now wait in the socket: it watches
 * the relayed sockets for a FIN or an error only, not for input, or every
 * redirected segment would wake it. */
static void note(struct krelay_dir *d, __u32 slot)
{
	struct krelay_note n = { .slot = slot };
	__u32 ring = d->ring;
	void *rb = bpf_map_lookup_elem(&rings, &ring);

	if (rb != NULL)
		bpf_ringbuf_output(rb, &n, sizeof(n), 0);
}

/* Cut steps of at most 4095 bytes (what one bpf_skb_adjust_room may take
 * off): 64 of them cover a 256 KiB head, past any segment here. */
#define CUT_STEP 0xfff
#define CUT_STEPS 64

/* The kernel may queue a segment whose head the socket already received:
 * a retransmission that overlaps bytes which arrived (its sequence number
 * is below rcv_nxt, the rest is new). recv() skips such a head, but the
 * verdict path hands the program the whole skb, so the head would go to
 * the peer a second time. Cut it off. For a stream-verdict program, cb[0]
 * and cb[1] are the start of the skb's control block: the segment's
 * sequence number and end sequence number (TCP_SKB_CB). Returns 1 to go
 * on with what is left (perhaps nothing but a FIN), 0 to drop the skb:
 * its new bytes are lost, and broken says so. */
static int cut_repeat(struct __sk_buff *skb, struct krelay_dir *d)
{
	__u32 seq = skb->cb[0], end = skb->cb[1];
	__u32 old;

	/* the first segment after the insert starts where user space
	 * stopped reading; no earlier one to compare with */
	if (!d->seq_known || (__s32)(seq - d->seq_next) >= 0) {
		d->seq_next = end;
		d->seq_known = 1;
		return 1;
	}
	/* TCP queues no segment without a new byte (or FIN): the sequence
	 * number kept here is wrong, and so may be what went before */
	if ((__s32)(end - d->seq_next) <= 0) {
		d->broken = 1;
		return 0;
	}
	old = d->seq_next - seq;
	for (int i = 0; i < CUT_STEPS && old > 0; i++) {
		__u32 n = old < CUT_STEP ? old : CUT_STEP;

		if (d->fail_cut || bpf_skb_adjust_room(skb, -(__s32)n, 0, 0) < 0)
			break;
		old -= n;
	}
	if (old > 0) {
		/* no memory: the new bytes go with the drop */
		d->broken = 1;
		return 0;
	}
	d->seq_next = end;
	d->cut++;
	return 1;
}

SEC("sk_skb/stream_verdict")
int krelay_verdict(struct __sk_buff *skb)
{
	__u64 cookie = bpf_get_socket_cookie(skb);
	struct krelay_link *l;
	struct krelay_dir *d;
	__u32 len = skb->len;

	/* A bare FIN arrives as an empty skb. Passed or redirected, it made
	 * peers see EPIPE; dropped, the socket still records the FIN and user
	 * space learns it from recv() == 0, then shuts the peer down once the
	 * peer's TCP has taken every byte. */
	if (len == 0)
		return SK_DROP;
	l = bpf_map_lookup_elem(&conns, &cookie);
	if (l == NULL)
		return SK_PASS;
	d = bpf_map_lookup_elem(&dirs, &l->slot);
	if (d == NULL)
		return SK_PASS;
	/* A broken stream loses every later byte, and user space resets both
	 * sides when it hears of it: a note with each drop, as a full ring
	 * may lose one. */
	if (d->broken || !cut_repeat(skb, d)) {
		note(d, l->slot);
		return SK_DROP;
	}
	/* what is left of a repeat that carried a FIN: dropped as above */
	len = skb->len;
	if (len == 0)
		return SK_DROP;
	if (d->hold || d->passed != d->taken || d->fwd + d->taken - d->acked >= d->cap) {
		/* the first bytes of an episode: none was on its way */
		if (d->passed == d->taken)
			note(d, l->slot);
		__sync_fetch_and_add(&d->passed, len);
		return SK_PASS;
	}
	__sync_fetch_and_add(&d->fwd, len);
	return bpf_sk_redirect_hash(skb, &socks, &l->peer, 0);
}

char LICENSE[] SEC("license") = "GPL";
