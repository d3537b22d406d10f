/* krelay: loads the kernel relay's stream-verdict program (bpf/krelay.bpf.c,
 * embedded as a bpftool skeleton), attaches it to its sockhash, and manages
 * the per-connection maps. The direction slots live in an mmapped array,
 * so reading counters and steering costs no system call. Invariant: a
 * socket is in the sockhash only while its conns entry and slot are valid;
 * they are written before the insert and removed after the delete. */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "bpf/krelay_abi.h"
#include "krelay.skel.h"
#include "sluice/krelay.h"
#include "sluice/log.h"
#include "sluice/util.h"

/* Owned by core; workers borrow it while they run. */
struct krelay {
	struct krelay_bpf *skel;
	int socks_fd, conns_fd;
	struct krelay_dir *dirs; /* mmapped, nslots entries */
	size_t map_len;
	uint32_t nslots;
	pthread_mutex_t lock; /* free slot queue */
	uint32_t *free_slots; /* a ring of nslots: nfree free ones from free_head */
	uint32_t free_head;
	uint32_t nfree;
	struct krelay_ring *rings;
	unsigned nrings;
};

/* A note ring: the kernel's ring buffer map and libbpf's reader of it. */
struct krelay_ring {
	int map_fd;
	struct ring_buffer *rb;
	krelay_note_fn fn; /* set for the length of a drain */
	void *arg;
};

static char libbpf_last[256];

static int on_libbpf_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	char line[256];
	size_t n;

	if (level == LIBBPF_DEBUG)
		return 0;
	vsnprintf(line, sizeof(line), fmt, ap);
	n = strlen(line);
	while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == ' '))
		line[--n] = '\0';
	if (n > 0)
		util_strlcpy(libbpf_last, line, sizeof(libbpf_last));
	return 0;
}

static void fail(char *err, size_t errlen, const char *what, int e)
{
	snprintf(err, errlen, "kernel relay: %s: %s%s%s%s", what, strerror(e),
		 libbpf_last[0] ? " (libbpf: " : "", libbpf_last, libbpf_last[0] ? ")" : "");
}

static int on_note(void *ctx, void *data, size_t size)
{
	struct krelay_ring *r = ctx;
	const struct krelay_note *n = data;

	if (size >= sizeof(*n))
		r->fn(r->arg, n->slot);
	return 0;
}

/* Create the note rings and put them in the program's rings map. */
static int rings_open(struct krelay *k, unsigned nrings, char *err, size_t errlen)
{
	int outer = bpf_map__fd(k->skel->maps.rings);

	k->rings = calloc(nrings, sizeof(*k->rings));
	if (k->rings == NULL) {
		fail(err, errlen, "rings", ENOMEM);
		return -1;
	}
	for (unsigned i = 0; i < nrings; i++) {
		struct krelay_ring *r = &k->rings[i];

		r->map_fd = bpf_map_create(BPF_MAP_TYPE_RINGBUF, "krelay_ring", 0, 0,
					   KRELAY_RING_BYTES, NULL);
		if (r->map_fd < 0) {
			fail(err, errlen, "cannot create a note ring", errno);
			return -1;
		}
		k->nrings = i + 1;
		if (bpf_map_update_elem(outer, &i, &r->map_fd, BPF_ANY) < 0) {
			fail(err, errlen, "cannot install a note ring", errno);
			return -1;
		}
		r->rb = ring_buffer__new(r->map_fd, on_note, r, NULL);
		if (r->rb == NULL) {
			fail(err, errlen, "cannot read a note ring", errno);
			return -1;
		}
	}
	return 0;
}

struct krelay *krelay_open(uint32_t max_pairs, unsigned nrings, char *err, size_t errlen)
{
	struct krelay *k = calloc(1, sizeof(*k));
	uint32_t nslots = max_pairs * 2;
	long page = sysconf(_SC_PAGESIZE);
	int rc, prog_fd;

	libbpf_last[0] = '\0';
	if (k == NULL || max_pairs == 0 || max_pairs > (1u << 24) || nrings == 0 ||
	    nrings > KRELAY_MAX_RINGS) {
		snprintf(err, errlen, "kernel relay: bad size %u or %u rings", max_pairs, nrings);
		free(k);
		return NULL;
	}
	pthread_mutex_init(&k->lock, NULL);
	k->socks_fd = k->conns_fd = -1;
	k->nslots = nslots;
	k->free_slots = malloc(sizeof(uint32_t) * nslots);
	if (k->free_slots == NULL) {
		fail(err, errlen, "slots", ENOMEM);
		goto out;
	}
	for (uint32_t i = 0; i < nslots; i++)
		k->free_slots[i] = i;
	k->free_head = 0;
	k->nfree = nslots;
	libbpf_set_print(on_libbpf_print);
	k->skel = krelay_bpf__open();
	if (k->skel == NULL) {
		fail(err, errlen, "open", errno);
		goto out;
	}
	bpf_map__set_max_entries(k->skel->maps.socks, nslots);
	bpf_map__set_max_entries(k->skel->maps.conns, nslots);
	bpf_map__set_max_entries(k->skel->maps.dirs, nslots);
	rc = krelay_bpf__load(k->skel);
	if (rc != 0) {
		fail(err, errlen,
		     "cannot load the verdict program (needs CAP_BPF and CAP_NET_ADMIN)", -rc);
		goto out;
	}
	k->socks_fd = bpf_map__fd(k->skel->maps.socks);
	k->conns_fd = bpf_map__fd(k->skel->maps.conns);
	prog_fd = bpf_program__fd(k->skel->progs.krelay_verdict);
	if (bpf_prog_attach(prog_fd, k->socks_fd, BPF_SK_SKB_STREAM_VERDICT, 0) < 0) {
		fail(err, errlen, "cannot attach the verdict program to the sockhash", errno);
		goto out;
	}
	k->map_len =
	    ((size_t)nslots * sizeof(struct krelay_dir) + (size_t)page - 1) & ~((size_t)page - 1);
	k->dirs = mmap(NULL, k->map_len, PROT_READ | PROT_WRITE, MAP_SHARED,
		       bpf_map__fd(k->skel->maps.dirs), 0);
	if (k->dirs == MAP_FAILED) {
		k->dirs = NULL;
		fail(err, errlen, "cannot map the counters", errno);
		goto out;
	}
	if (rings_open(k, nrings, err, errlen) < 0)
		goto out;
	return k;
out:
	krelay_close(k);
	return NULL;
}

void krelay_close(struct krelay *k)
{
	if (k == NULL)
		return;
	for (unsigned i = 0; i < k->nrings; i++) {
		ring_buffer__free(k->rings[i].rb);
		close(k->rings[i].map_fd);
	}
	free(k->rings);
	if (k->dirs != NULL)
		munmap(k->dirs, k->map_len);
	/* the sockhash goes with the object; its sockets are ours and closed */
	krelay_bpf__destroy(k->skel);
	free(k->free_slots);
	pthread_mutex_destroy(&k->lock);
	free(k);
}

/* Free slots are reused first in, first out: a slot freed now is the last
 * one handed out again. Removing a socket from the sockhash does not wait
 * for a program run already under way on another CPU, which may still
 * write the old direction's counters and sequence number; reused at once,
 * the slot would carry them into a new connection's direction. */
static int slot_get(struct krelay *k, uint32_t *slot)
{
	int rc = -1;

	pthread_mutex_lock(&k->lock);
	if (k->nfree > 0) {
		*slot = k->free_slots[k->free_head];
		k->free_head = (k->free_head + 1) % k->nslots;
		k->nfree--;
		rc = 0;
	}
	pthread_mutex_unlock(&k->lock);
	return rc;
}

static void slot_put(struct krelay *k, uint32_t slot)
{
	pthread_mutex_lock(&k->lock);
	k->free_slots[(k->free_head + k->nfree) % k->nslots] = slot;
	k->nfree++;
	pthread_mutex_unlock(&k->lock);
}

static int cookie_of(int fd, uint64_t *cookie)
{
	socklen_t len = sizeof(*cookie);

	return getsockopt(fd, SOL_SOCKET, SO_COOKIE, cookie, &len);
}

uint32_t krelay_nslots(const struct krelay *k)
{
	return k->nslots;
}

int krelay_ring_fd(const struct krelay *k, unsigned ring)
{
	return ring_buffer__epoll_fd(k->rings[ring].rb);
}

void krelay_ring_drain(struct krelay *k, unsigned ring, krelay_note_fn fn, void *arg)
{
	struct krelay_ring *r = &k->rings[ring];

	r->fn = fn;
	r->arg = arg;
	ring_buffer__consume(r->rb);
}

int krelay_pair_add(struct krelay *k, int fd0, int fd1, uint64_t cap, unsigned ring,
		    struct krelay_pair *p)
{
	int fds[2] = {fd0, fd1}, i, e;
	int inserted = 0, linked = 0, slots = 0;

	for (i = 0; i < 2; i++)
		if (cookie_of(fds[i], &p->cookie[i]) < 0)
			return -1;
	for (; slots < 2; slots++) {
		if (slot_get(k, &p->slot[slots]) < 0) {
			e = ENOSPC;
			goto undo;
		}
	}
	for (i = 0; i < 2; i++) {
		struct krelay_dir *d = &k->dirs[p->slot[i]];

		memset(d, 0, sizeof(*d));
		d->cap = cap;
		d->ring = ring < k->nrings ? ring : 0;
		/* tests: a failed cut (no memory) cannot be made on demand */
		d->fail_cut = UTIL_FAULT("krelay_cut");
		__atomic_store_n(&d->hold, 1, __ATOMIC_RELEASE);
	}
	for (; linked < 2; linked++) {
		struct krelay_link l = {.peer = p->cookie[1 - linked], .slot = p->slot[linked]};

		if (bpf_map_update_elem(k->conns_fd, &p->cookie[linked], &l, BPF_ANY) < 0) {
			e = errno;
			goto undo;
		}
	}
	for (; inserted < 2; inserted++) {
		uint64_t fd = (uint64_t)fds[inserted];

		if (bpf_map_update_elem(k->socks_fd, &p->cookie[inserted], &fd, BPF_NOEXIST) < 0) {
			e = errno;
			goto undo;
		}
	}
	return 0;
undo:
	while (inserted-- > 0) {
		bpf_map_delete_elem(k->socks_fd, &p->cookie[inserted]);
		/* what it passed up while in went with the removal */
		if (__atomic_load_n(&k->dirs[p->slot[inserted]].passed, __ATOMIC_ACQUIRE) != 0)
			e = EPIPE;
	}
	while (linked-- > 0)
		bpf_map_delete_elem(k->conns_fd, &p->cookie[linked]);
	while (slots-- > 0)
		slot_put(k, p->slot[slots]);
	errno = e;
	return -1;
}

void krelay_pair_del(struct krelay *k, const struct krelay_pair *p)
{
	for (int i = 0; i < 2; i++)
		bpf_map_delete_elem(k->socks_fd, &p->cookie[i]);
	for (int i = 0; i < 2; i++) {
		bpf_map_delete_elem(k->conns_fd, &p->cookie[i]);
		slot_put(k, p->slot[i]);
	}
}

void krelay_release(struct krelay *k, const struct krelay_pair *p, int i)
{
	__atomic_store_n(&k->dirs[p->slot[i]].hold, 0, __ATOMIC_RELEASE);
}

void krelay_count(const struct krelay *k, const struct krelay_pair *p, int i,
		  struct krelay_count *c)
{
	const struct krelay_dir *d = &k->dirs[p->slot[i]];

	c->fwd = __atomic_load_n(&d->fwd, __ATOMIC_ACQUIRE);
	c->passed = __atomic_load_n(&d->passed, __ATOMIC_ACQUIRE);
	c->cut = __atomic_load_n(&d->cut, __ATOMIC_ACQUIRE);
	c->broken = __atomic_load_n(&d->broken, __ATOMIC_ACQUIRE) != 0;
}

void krelay_steer(struct krelay *k, const struct krelay_pair *p, int i, uint64_t taken,
		  uint64_t acked)
{
	struct krelay_dir *d = &k->dirs[p->slot[i]];

	/* taken first: a program that sees the new taken with the old acked
	 * overestimates what is in flight and passes, which is safe */
	__atomic_store_n(&d->taken, taken, __ATOMIC_RELEASE);
	__atomic_store_n(&d->acked, acked, __ATOMIC_RELEASE);
}
