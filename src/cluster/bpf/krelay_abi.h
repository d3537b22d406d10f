/* krelay_abi: the maps shared by the stream-verdict program (krelay.bpf.c)
 * and its loader (krelay.c). Plain fixed-size types, the same layout on both
 * sides; a change here changes both. */
#ifndef SLUICE_KRELAY_ABI_H
#define SLUICE_KRELAY_ABI_H

#include <linux/types.h>

/* conns map: socket cookie -> where its bytes go. Written by user space
 * once per connection, before the socket enters the sockhash. */
struct krelay_link {
	__u64 peer; /* cookie of the socket its bytes are redirected to */
	__u32 slot; /* its direction in the dirs array */
	__u32 pad;
};

/* dirs array (mmapable), one slot per direction: bytes read from one
 * socket and written to its peer. The program writes fwd, passed, cut,
 * seq_next, seq_known and broken (only from the source socket's receive
 * path, one skb at a time); user space writes the rest. */
struct krelay_dir {
	__u64 fwd; /* bytes redirected to the peer's egress */
	__u64 passed; /* bytes passed up to user space (hold, order, cap) */
	__u64 taken; /* of those, bytes user space has written to the peer */
	__u64 acked; /* bytes the peer's remote end acknowledged since insert */
	__u64 cap; /* redirect only while fwd + taken - acked is below it */
	__u32 hold; /* nonzero: pass everything (until user space releases it) */
	__u32 ring; /* the rings entry that hears of this direction */
	__u32 cut; /* segments whose head the kernel handed the program twice */
	__u32 seq_next; /* TCP sequence number of the next new byte */
	__u8 seq_known; /* seq_next is set (from the first segment on) */
	__u8 broken; /* a repeated head could not be cut: the stream lost bytes */
	__u8 fail_cut; /* tests (fault build): act as if every cut failed */
	__u8 pad[5];
};

/* rings: one ring buffer per worker. The program writes a record when it
 * starts passing bytes up to a direction that had none on their way, so a
 * worker that does not watch its sockets for input learns of them. */
#define KRELAY_MAX_RINGS 64
#define KRELAY_RING_BYTES (256 * 1024)

struct krelay_note {
	__u32 slot; /* the direction */
	__u32 pad;
};

#endif
