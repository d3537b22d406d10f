/* qsbr: quiescent-state-based reclamation for the snapshots that the
 * control thread publishes and the workers read without locks.
 * Readers (worker threads) mark themselves offline before blocking in their
 * event loop and online after; an object retired at epoch E is freed once
 * every reader has been offline or quiescent after E. Only the control
 * thread retires and reclaims. */
#ifndef SLUICE_QSBR_H
#define SLUICE_QSBR_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define QSBR_OFFLINE UINT64_MAX

typedef void (*qsbr_free_fn)(void *obj);

/* One per reader thread; owned by that thread's worker. */
struct qsbr_reader {
	_Atomic uint64_t seen;
};

struct qsbr_pending {
	void *obj;
	qsbr_free_fn free_fn;
	uint64_t epoch;
};

/* The domain; owned by core. Readers are registered before threads start. */
struct qsbr {
	_Atomic uint64_t epoch;
	struct qsbr_reader **readers;
	size_t nreaders;
	struct qsbr_pending *pending;
	size_t npending, cap;
};

/* Register a reader (initially offline). Returns 0 or -1. Control thread. */
int qsbr_add_reader(struct qsbr *q, struct qsbr_reader *r);

/* Reader side: online after waking, offline before blocking. A reader
 * holds snapshot pointers only while online. */
static inline void qsbr_online(struct qsbr *q, struct qsbr_reader *r)
{
	atomic_store(&r->seen, atomic_load(&q->epoch));
}

static inline void qsbr_offline(struct qsbr_reader *r)
{
	atomic_store(&r->seen, QSBR_OFFLINE);
}

/* Control thread: obj is unreachable for new readers from now on; free it
 * with free_fn once no reader can hold it. Returns 0, or -1 (no memory: the
 * object is then leaked rather than freed early). */
int qsbr_retire(struct qsbr *q, void *obj, qsbr_free_fn free_fn);

/* Control thread: a mark of now. Once qsbr_passed() says so, no reader
 * holds a pointer it loaded before the mark (as qsbr_retire() waits for),
 * for objects whose lifetime is not one free: a table that readers may
 * still have been filling when it was superseded. */
uint64_t qsbr_mark(struct qsbr *q);
bool qsbr_passed(const struct qsbr *q, uint64_t mark);

/* Control thread: free what is safe now. Returns how many remain pending. */
size_t qsbr_reclaim(struct qsbr *q);
/* The same, freeing at most max objects (the oldest first), so that a
 * reload that retired 100 000 servers is freed over several calls rather
 * than in one piece of the control loop. */
size_t qsbr_reclaim_some(struct qsbr *q, size_t max);

/* Free everything pending without checking readers (all readers stopped). */
void qsbr_destroy(struct qsbr *q);

#endif
