/* qsbr: deferred freeing of published snapshots (see qsbr.h). The seq_cst
 * order between the publisher's pointer store, its epoch increment and its
 * reads of the readers' epochs is what makes a reader that went online
 * before the increment visible here. */
#include <stdlib.h>

#include "sluice/qsbr.h"

int qsbr_add_reader(struct qsbr *q, struct qsbr_reader *r)
{
	struct qsbr_reader **a = realloc(q->readers, (q->nreaders + 1) * sizeof(*a));

	if (a == NULL)
		return -1;
	atomic_store(&r->seen, QSBR_OFFLINE);
	q->readers = a;
	a[q->nreaders++] = r;
	return 0;
}

int qsbr_retire(struct qsbr *q, void *obj, qsbr_free_fn free_fn)
{
	if (q->npending == q->cap) {
		size_t cap = q->cap ? q->cap * 2 : 16;
		struct qsbr_pending *p = realloc(q->pending, cap * sizeof(*p));

		if (p == NULL)
			return -1;
		q->pending = p;
		q->cap = cap;
	}
	q->pending[q->npending].obj = obj;
	q->pending[q->npending].free_fn = free_fn;
	/* readers that saw an older epoch may still hold obj */
	q->pending[q->npending].epoch = atomic_fetch_add(&q->epoch, 1) + 1;
	q->npending++;
	return 0;
}

/* The oldest epoch a reader may still be in. */
static uint64_t min_seen(const struct qsbr *q)
{
	uint64_t min = QSBR_OFFLINE;

	for (size_t i = 0; i < q->nreaders; i++) {
		uint64_t s = atomic_load(&q->readers[i]->seen);

		if (s < min)
			min = s;
	}
	return min;
}

uint64_t qsbr_mark(struct qsbr *q)
{
	return atomic_fetch_add(&q->epoch, 1) + 1;
}

bool qsbr_passed(const struct qsbr *q, uint64_t mark)
{
	return mark <= min_seen(q);
}

size_t qsbr_reclaim(struct qsbr *q)
{
	return qsbr_reclaim_some(q, SIZE_MAX);
}

size_t qsbr_reclaim_some(struct qsbr *q, size_t max)
{
	uint64_t min = min_seen(q);
	size_t keep = 0;

	for (size_t i = 0; i < q->npending; i++) {
		if (q->pending[i].epoch <= min && max > 0) {
			q->pending[i].free_fn(q->pending[i].obj);
			max--;
		} else {
			q->pending[keep++] = q->pending[i];
		}
	}
	q->npending = keep;
	return keep;
}

void qsbr_destroy(struct qsbr *q)
{
	for (size_t i = 0; i < q->npending; i++)
		q->pending[i].free_fn(q->pending[i].obj);
	free(q->pending);
	free(q->readers);
	q->pending = NULL;
	q->readers = NULL;
	q->npending = q->cap = q->nreaders = 0;
}
