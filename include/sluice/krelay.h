/* krelay: the kernel relay of established connections (sockmap). Loads an
 * SK_SKB stream-verdict program (src/cluster/bpf/krelay.bpf.c) and its
 * sockhash, and offers the data plane a small interface over descriptors:
 * add a pair of connected sockets, read and steer each direction's
 * counters, remove the pair. Part of the cluster module (the only libbpf
 * user). krelay_open/close run in the control thread before the workers
 * start and after they stop; the pair calls are thread-safe (each worker
 * only touches its own pairs). */
#ifndef SLUICE_KRELAY_H
#define SLUICE_KRELAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct krelay;

/* One relayed connection: direction i carries the bytes read from the
 * socket given as fd i to the other one. Owned by the caller (embedded). */
struct krelay_pair {
	uint64_t cookie[2];
	uint32_t slot[2];
};

/* What the program did with a direction's bytes since the pair was added. */
struct krelay_count {
	uint64_t fwd;	 /* redirected to the peer socket's egress */
	uint64_t passed; /* passed up to user space (hold, order, cap) */
	uint32_t cut;	 /* segments whose repeated head the program cut off */
	bool broken;	 /* a repeated head could not be cut: bytes were lost */
};

/* Load and attach the program with room for max_pairs connections and
 * nrings note rings (one per worker, at most 64). Needs CAP_BPF and
 * CAP_NET_ADMIN (or root). Returns the handle (caller owns it), or NULL
 * with err saying why (no capability, a kernel without sockmap, the
 * verifier's words). */
struct krelay *krelay_open(uint32_t max_pairs, unsigned nrings, char *err, size_t errlen);

/* Direction slots: krelay_pair.slot[] is below this. */
uint32_t krelay_nslots(const struct krelay *k);

/* Ring `ring` hears of the directions of the pairs added with it: the
 * program writes a note (the direction's slot) when it starts passing bytes
 * up to a direction that had none on their way, so the caller need not
 * watch the sockets for input. krelay_ring_fd() is readable when notes
 * wait; krelay_ring_drain() calls fn(arg, slot) for each. One thread per
 * ring. */
typedef void (*krelay_note_fn)(void *arg, uint32_t slot);
int krelay_ring_fd(const struct krelay *k, unsigned ring);
void krelay_ring_drain(struct krelay *k, unsigned ring, krelay_note_fn fn, void *arg);

/* Free everything; the workers no longer use k. NULL is allowed. */
void krelay_close(struct krelay *k);

/* Put fd0 and fd1 (connected TCP sockets, each with nothing unread that it
 * wants relayed by the kernel) in the sockhash, both directions holding:
 * every byte is passed up to user space until krelay_release(). cap bounds
 * each direction's bytes in flight (redirected or written, not yet
 * acknowledged by the far end). Returns 0, or -1 with errno: EOPNOTSUPP for
 * a socket that is not ESTABLISHED (a FIN came in, or a reset), ENOSPC when
 * max_pairs are in use; nothing stays inserted then. EPIPE: fd1 could not
 * go in, and fd0 passed bytes up while it was in alone; they are gone with
 * its removal, so the connection's stream is broken. */
int krelay_pair_add(struct krelay *k, int fd0, int fd1, uint64_t cap, unsigned ring,
		    struct krelay_pair *p);

/* Take the pair out (before its sockets close). Bytes still queued inside
 * the relay are discarded: call it once both directions are drained, or
 * when the connection ends anyway. */
void krelay_pair_del(struct krelay *k, const struct krelay_pair *p);

/* Let direction i redirect (order and cap still apply). */
void krelay_release(struct krelay *k, const struct krelay_pair *p, int i);

/* Direction i's counters. */
void krelay_count(const struct krelay *k, const struct krelay_pair *p, int i,
		  struct krelay_count *c);

/* Tell direction i how many passed bytes user space has written to the peer
 * (taken) and how many bytes the peer's far end acknowledged since the pair
 * was added (acked). The program redirects again once every passed byte is
 * written and fwd + taken - acked is below the cap. */
void krelay_steer(struct krelay *k, const struct krelay_pair *p, int i, uint64_t taken,
		  uint64_t acked);

#endif
