/* guard_table: the per-source limit table of a listener (see guard-int.h
 * for its shape). Every worker admits and releases connections in it; a
 * source's open connections and its token bucket (GCRA: one "theoretical
 * arrival time" per source, moved by compare-and-swap) are exact across
 * workers. Bounded: a fixed pool of entries; a new source takes a free one
 * or evicts an idle source (no open connection; the least recently active
 * of a small sample), never one with open connections; when none is idle
 * the new source is refused (table-full). */
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "guard-int.h"
#include "sluice/util.h"

#define NIL UINT32_MAX
#define STRIPES 256
/* state word: generation << 33 | live << 32 | open connections */
#define ST_CONNS 0xffffffffull
#define ST_LIVE (1ull << 32)
#define ST_GEN_SHIFT 33
#define FAST_STEPS 32	/* lock-free chain walk; longer chains take the lock */
#define EVICT_SCAN 1024 /* entries an eviction looks at, at most */
#define EVICT_SAMPLE 8	/* idle candidates compared for the least recent */
#define INSERT_TRIES 8

/* One source; one cache line. */
struct src_ent {
	_Atomic uint64_t state;
	_Atomic uint64_t key_hi, key_lo; /* the source's prefix, IPv4 mapped */
	_Atomic uint64_t tat_us;	 /* GCRA: when the bucket is full again */
	_Atomic uint64_t win;		 /* second << 32 | attempts in that second */
	_Atomic uint64_t total;		 /* admitted */
	_Atomic uint32_t refused;
	_Atomic uint32_t prev;	 /* attempts in the second before win's */
	_Atomic uint32_t next;	 /* bucket chain, or free list */
	_Atomic uint32_t last_s; /* last activity, for the eviction order */
} __attribute__((aligned(64)));

struct stripe {
	atomic_flag lock;
	char pad[64 - sizeof(atomic_flag)];
};

struct guard_table {
	struct src_ent *ent;
	_Atomic uint32_t *bucket;
	struct stripe *stripes;
	uint32_t capacity, nbuckets;
	uint8_t group4, group6;
	uint8_t hkey[16];	    /* SipHash key: clients cannot aim at one bucket */
	_Atomic uint64_t freelist;  /* ABA tag << 32 | index of the top */
	_Atomic uint32_t fresh;	    /* entries never used start here */
	_Atomic int64_t used, idle; /* live entries; live with no connection */
	_Atomic uint32_t hand;	    /* eviction sweep */
	_Atomic uint64_t evictions;
	_Atomic(struct guard_table *) older; /* superseded, still counting */
};

struct guard_table *guard_table_new(uint32_t capacity, uint8_t group4, uint8_t group6)
{
	struct guard_table *t = calloc(1, sizeof(*t));
	uint32_t nb = 64;

	if (t == NULL || capacity == 0)
		goto fail;
	while (nb < capacity)
		nb *= 2;
	t->capacity = capacity;
	t->nbuckets = nb;
	t->group4 = group4;
	t->group6 = group6;
	/* calloc: untouched pages of a large table cost no memory yet */
	t->ent = calloc(capacity, sizeof(*t->ent));
	t->bucket = malloc(nb * sizeof(*t->bucket));
	t->stripes = calloc(STRIPES, sizeof(*t->stripes));
	if (t->ent == NULL || t->bucket == NULL || t->stripes == NULL)
		goto fail;
	for (uint32_t i = 0; i < nb; i++)
		atomic_init(&t->bucket[i], NIL);
	for (unsigned i = 0; i < STRIPES; i++)
		atomic_flag_clear(&t->stripes[i].lock);
	atomic_init(&t->freelist, NIL);
	if (getrandom(t->hkey, sizeof(t->hkey), 0) != sizeof(t->hkey)) {
		uint64_t seed = util_now_us() | 1;

		for (size_t i = 0; i < sizeof(t->hkey); i += 8) {
			uint64_t r = util_rand64(&seed);

			memcpy(t->hkey + i, &r, 8);
		}
	}
	return t;
fail:
	guard_table_free(t);
	return NULL;
}

void guard_table_free(struct guard_table *t)
{
	if (t == NULL)
		return;
	free(t->ent);
	free(t->bucket);
	free(t->stripes);
	free(t);
}

bool guard_table_same_shape(const struct guard_table *t, uint32_t capacity, uint8_t group4,
			    uint8_t group6)
{
	return t->capacity == capacity && t->group4 == group4 && t->group6 == group6;
}

struct guard_table *guard_table_older(const struct guard_table *t)
{
	return atomic_load_explicit(&t->older, memory_order_acquire);
}

void guard_table_set_older(struct guard_table *t, struct guard_table *older)
{
	atomic_store_explicit(&t->older, older, memory_order_release);
}

bool guard_table_drained(const struct guard_table *t)
{
	/* no source enters a superseded table, so used is fixed and idle only
	 * grows, as each release's last step */
	return atomic_load(&t->idle) >= atomic_load(&t->used);
}

uint64_t guard_table_used(const struct guard_table *t)
{
	int64_t u = atomic_load_explicit(&t->used, memory_order_relaxed);

	return u > 0 ? (uint64_t)u : 0;
}

uint32_t guard_table_capacity(const struct guard_table *t)
{
	return t->capacity;
}

uint64_t guard_table_memory(const struct guard_table *t)
{
	return sizeof(*t) + (uint64_t)t->capacity * sizeof(*t->ent) +
	       (uint64_t)t->nbuckets * sizeof(*t->bucket) + STRIPES * sizeof(*t->stripes);
}

uint64_t guard_table_evictions(const struct guard_table *t)
{
	return atomic_load_explicit(&t->evictions, memory_order_relaxed);
}

/* ---- keys and chains ---- */

static uint64_t mask64(unsigned bits)
{
	return bits == 0 ? 0 : bits >= 64 ? ~0ull : ~0ull << (64 - bits);
}

/* The source a belongs to in t: its prefix, IPv4 as ::ffff:a.b.c.d. */
static void src_key(const struct guard_table *t, const struct util_addr *a, uint64_t *hi,
		    uint64_t *lo)
{
	if (a->u.sa.sa_family == AF_INET) {
		const uint8_t *p = (const uint8_t *)&a->u.in4.sin_addr;
		uint32_t v4 =
		    (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];

		*hi = 0;
		*lo = 0xffff00000000ull | (v4 & (uint32_t)(mask64(t->group4) >> 32));
		return;
	}
	*hi = guard_be64(a->u.in6.sin6_addr.s6_addr) & mask64(t->group6);
	*lo = guard_be64(a->u.in6.sin6_addr.s6_addr + 8) &
	      mask64(t->group6 > 64 ? t->group6 - 64u : 0);
}

static uint32_t bucket_of(const struct guard_table *t, uint64_t hi, uint64_t lo)
{
	uint64_t k[2] = {hi, lo};

	return (uint32_t)util_siphash13(t->hkey, k, sizeof(k)) & (t->nbuckets - 1);
}

static void lock(struct guard_table *t, uint32_t b)
{
	while (
	    atomic_flag_test_and_set_explicit(&t->stripes[b % STRIPES].lock, memory_order_acquire))
		__builtin_ia32_pause();
}

static void unlock(struct guard_table *t, uint32_t b)
{
	atomic_flag_clear_explicit(&t->stripes[b % STRIPES].lock, memory_order_release);
}

/* The live entry of source (hi, lo) in bucket b, with its state in *s, or
 * NIL. Without the bucket's lock a walk can race an eviction and miss: the
 * caller then looks again under the lock. */
static uint32_t find(const struct guard_table *t, uint32_t b, uint64_t hi, uint64_t lo, uint64_t *s,
		     unsigned max_steps)
{
	uint32_t i = atomic_load_explicit(&t->bucket[b], memory_order_acquire);

	for (unsigned n = 0; i != NIL && n < max_steps; n++) {
		struct src_ent *e = &t->ent[i];

		*s = atomic_load_explicit(&e->state, memory_order_acquire);
		if ((*s & ST_LIVE) &&
		    atomic_load_explicit(&e->key_hi, memory_order_relaxed) == hi &&
		    atomic_load_explicit(&e->key_lo, memory_order_relaxed) == lo)
			return i;
		i = atomic_load_explicit(&e->next, memory_order_acquire);
	}
	return NIL;
}

/* ---- entries: allocation, eviction ---- */

static uint32_t alloc_entry(struct guard_table *t)
{
	uint64_t h = atomic_load(&t->freelist);
	uint32_t f;

	while ((uint32_t)h != NIL) {
		uint32_t nx = atomic_load(&t->ent[(uint32_t)h].next);

		if (atomic_compare_exchange_weak(&t->freelist, &h, ((h >> 32) + 1) << 32 | nx))
			return (uint32_t)h;
	}
	f = atomic_load(&t->fresh);
	while (f < t->capacity)
		if (atomic_compare_exchange_weak(&t->fresh, &f, f + 1))
			return f;
	return NIL;
}

static void free_entry(struct guard_table *t, uint32_t i)
{
	uint64_t h = atomic_load(&t->freelist);

	do
		atomic_store(&t->ent[i].next, (uint32_t)h);
	while (!atomic_compare_exchange_weak(&t->freelist, &h, ((h >> 32) + 1) << 32 | i));
}

/* Unlink entry i from bucket b (its bucket's lock held). */
static void unlink_entry(struct guard_table *t, uint32_t b, uint32_t i)
{
	uint32_t nx = atomic_load(&t->ent[i].next), cur = atomic_load(&t->bucket[b]);

	if (cur == i) {
		atomic_store_explicit(&t->bucket[b], nx, memory_order_release);
		return;
	}
	while (cur != NIL) {
		uint32_t after = atomic_load(&t->ent[cur].next);

		if (after == i) {
			atomic_store_explicit(&t->ent[cur].next, nx, memory_order_release);
			return;
		}
		cur = after;
	}
	abort(); /* a live entry is always on its bucket's chain */
}

/* Free one idle source's entry: the least recently active of the first few
 * idle ones the sweep meets. Returns false when none was found. */
static bool evict_one(struct guard_table *t)
{
	uint32_t limit = UTIL_MIN(atomic_load(&t->fresh), t->capacity);
	uint32_t best = NIL, best_s = 0, found = 0;
	uint64_t best_st = 0, hi, lo;
	uint32_t b;

	if (atomic_load(&t->idle) <= 0 || limit == 0)
		return false;
	for (unsigned n = 0; n < EVICT_SCAN && found < EVICT_SAMPLE; n++) {
		uint32_t i = atomic_fetch_add_explicit(&t->hand, 1, memory_order_relaxed) % limit;
		struct src_ent *e = &t->ent[i];
		uint64_t s = atomic_load(&e->state);
		uint32_t ls;

		if (!(s & ST_LIVE) || (s & ST_CONNS) != 0)
			continue;
		ls = atomic_load_explicit(&e->last_s, memory_order_relaxed);
		if (best == NIL || ls < best_s) {
			best = i;
			best_s = ls;
			best_st = s;
		}
		found++;
	}
	if (best == NIL)
		return false;
	hi = atomic_load(&t->ent[best].key_hi);
	lo = atomic_load(&t->ent[best].key_lo);
	b = bucket_of(t, hi, lo);
	lock(t, b);
	/* still the same idle source? (its key is read before: an unchanged
	 * state means it did not change hands in between) */
	if (!atomic_compare_exchange_strong(&t->ent[best].state, &best_st,
					    ((best_st >> ST_GEN_SHIFT) + 1) << ST_GEN_SHIFT)) {
		unlock(t, b);
		return true; /* it became busy or went: let the caller look again */
	}
	unlink_entry(t, b, best);
	unlock(t, b);
	atomic_fetch_sub(&t->used, 1);
	atomic_fetch_sub(&t->idle, 1);
	atomic_fetch_add_explicit(&t->evictions, 1, memory_order_relaxed);
	free_entry(t, best);
	return true;
}

/* ---- admission ---- */

/* Count an attempt in the entry's per-second window (show sources). */
static void note_attempt(struct src_ent *e, uint32_t now_s)
{
	uint64_t w = atomic_load_explicit(&e->win, memory_order_relaxed);

	if ((uint32_t)(w >> 32) == now_s ||
	    !atomic_compare_exchange_strong(&e->win, &w, (uint64_t)now_s << 32 | 1)) {
		atomic_fetch_add_explicit(&e->win, 1, memory_order_relaxed);
		return;
	}
	atomic_store_explicit(&e->prev, (uint32_t)(w >> 32) + 1 == now_s ? (uint32_t)w : 0,
			      memory_order_relaxed);
}

/* GCRA (the ATM Forum's generic cell rate algorithm, as a token bucket):
 * conforming when the theoretical arrival time is at most tau ahead of
 * now; each admission moves it one interval on. */
static bool rate_ok(_Atomic uint64_t *tat, const struct guard_limits *lim, uint64_t now_us)
{
	uint64_t cur = atomic_load_explicit(tat, memory_order_relaxed), base;

	if (lim->interval_us == 0)
		return true;
	do {
		base = cur > now_us ? cur : now_us;
		if (base - now_us > lim->tau_us)
			return false;
	} while (!atomic_compare_exchange_weak(tat, &cur, base + lim->interval_us));
	return true;
}

/* What the superseded tables still count for a's source: open
 * connections, and the latest bucket time (so a new table does not hand
 * out a fresh burst). */
static void older_state(const struct guard_table *t, const struct util_addr *a, uint32_t *conns,
			uint64_t *tat)
{
	*conns = 0;
	*tat = 0;
	for (const struct guard_table *o = guard_table_older(t); o != NULL;
	     o = guard_table_older(o)) {
		uint64_t hi, lo, s;
		uint32_t i;

		src_key(o, a, &hi, &lo);
		/* nothing enters or leaves a superseded table: its chains hold */
		i = find(o, bucket_of(o, hi, lo), hi, lo, &s, UINT32_MAX);
		if (i == NIL)
			continue;
		*conns += (uint32_t)(s & ST_CONNS);
		*tat = UTIL_MAX(*tat, atomic_load(&o->ent[i].tat_us));
	}
}

/* One more connection on live entry i (state s). Returns GUARD_OK, a
 * refusal, or -1 when the entry changed hands meanwhile (look again). */
static int take(struct guard_table *t, uint32_t i, uint64_t s, const struct guard_limits *lim,
		uint32_t older_conns, uint64_t now_us)
{
	struct src_ent *e = &t->ent[i];
	uint64_t gen = s >> ST_GEN_SHIFT;
	uint32_t now_s = (uint32_t)(now_us / 1000000);

	note_attempt(e, now_s);
	/* a token taken by an attempt that the connection limit then refuses
	 * stays taken: the rate counts attempts that conformed */
	if (!rate_ok(&e->tat_us, lim, now_us)) {
		atomic_fetch_add_explicit(&e->refused, 1, memory_order_relaxed);
		return GUARD_REFUSE_RATE;
	}
	do {
		if (!(s & ST_LIVE) || (s >> ST_GEN_SHIFT) != gen)
			return -1;
		if (lim->conns != 0 && (s & ST_CONNS) + older_conns >= lim->conns) {
			atomic_fetch_add_explicit(&e->refused, 1, memory_order_relaxed);
			return GUARD_REFUSE_CONNS;
		}
	} while (!atomic_compare_exchange_weak(&e->state, &s, s + 1));
	if ((s & ST_CONNS) == 0)
		atomic_fetch_sub(&t->idle, 1);
	atomic_fetch_add_explicit(&e->total, 1, memory_order_relaxed);
	atomic_store_explicit(&e->last_s, now_s, memory_order_relaxed);
	return GUARD_OK;
}

/* The bucket time of a new source's first connection, or false when even
 * that does not conform (a superseded table saw it use its burst). */
static bool first_tat(const struct guard_limits *lim, uint64_t old_tat, uint64_t now_us,
		      uint64_t *tat)
{
	uint64_t base = UTIL_MAX(old_tat, now_us);

	*tat = 0;
	if (lim->interval_us == 0)
		return true;
	if (base - now_us > lim->tau_us)
		return false;
	*tat = base + lim->interval_us;
	return true;
}

/* Enter a new source (bucket b, lock not held) with its first connection.
 * Returns GUARD_OK, a refusal, or -1 when it entered meanwhile (*idx). */
static int insert(struct guard_table *t, uint32_t b, uint64_t hi, uint64_t lo, uint64_t tat,
		  uint64_t now_us, uint32_t *idx)
{
	uint32_t now_s = (uint32_t)(now_us / 1000000);

	for (int n = 0; n < INSERT_TRIES; n++) {
		struct src_ent *e;
		uint64_t s;
		uint32_t i;

		lock(t, b);
		i = find(t, b, hi, lo, &s, UINT32_MAX);
		if (i != NIL) {
			unlock(t, b);
			*idx = i;
			return -1;
		}
		i = alloc_entry(t);
		if (i == NIL) {
			unlock(t, b);
			if (!evict_one(t))
				return GUARD_REFUSE_TABLE_FULL;
			continue;
		}
		e = &t->ent[i];
		/* not live yet: no reader takes it until the state says so */
		atomic_store_explicit(&e->key_hi, hi, memory_order_relaxed);
		atomic_store_explicit(&e->key_lo, lo, memory_order_relaxed);
		atomic_store_explicit(&e->tat_us, tat, memory_order_relaxed);
		atomic_store_explicit(&e->win, (uint64_t)now_s << 32 | 1, memory_order_relaxed);
		atomic_store_explicit(&e->prev, 0, memory_order_relaxed);
		atomic_store_explicit(&e->total, 1, memory_order_relaxed);
		atomic_store_explicit(&e->refused, 0, memory_order_relaxed);
		atomic_store_explicit(&e->last_s, now_s, memory_order_relaxed);
		atomic_store_explicit(&e->next, atomic_load(&t->bucket[b]), memory_order_relaxed);
		s = atomic_load(&e->state);
		atomic_store_explicit(&e->state,
				      ((s >> ST_GEN_SHIFT) + 1) << ST_GEN_SHIFT | ST_LIVE | 1,
				      memory_order_release);
		atomic_store_explicit(&t->bucket[b], i, memory_order_release);
		atomic_fetch_add(&t->used, 1);
		unlock(t, b);
		*idx = i;
		return GUARD_OK;
	}
	return GUARD_REFUSE_TABLE_FULL;
}

enum guard_verdict guard_table_admit(struct guard_table *t, const struct guard_limits *lim,
				     const struct util_addr *a, uint64_t now_us,
				     struct guard_ticket *tk)
{
	uint64_t hi, lo, s, old_tat = 0;
	uint32_t b, older_conns = 0, i;
	int r = -1;

	src_key(t, a, &hi, &lo);
	b = bucket_of(t, hi, lo);
	if (guard_table_older(t) != NULL)
		older_state(t, a, &older_conns, &old_tat);
	for (int n = 0; r < 0 && n < INSERT_TRIES; n++) {
		i = find(t, b, hi, lo, &s, FAST_STEPS);
		if (i == NIL) {
			uint64_t tat;

			if (lim->conns != 0 && older_conns >= lim->conns)
				return GUARD_REFUSE_CONNS;
			if (!first_tat(lim, old_tat, now_us, &tat))
				return GUARD_REFUSE_RATE;
			r = insert(t, b, hi, lo, tat, now_us, &i);
			if (r < 0)
				s = atomic_load(&t->ent[i].state);
		}
		if (r < 0)
			r = take(t, i, s, lim, older_conns, now_us);
	}
	if (r < 0)
		return GUARD_REFUSE_TABLE_FULL; /* a source that kept changing hands */
	if (r == GUARD_OK) {
		tk->t = t;
		tk->idx = i;
	}
	return (enum guard_verdict)r;
}

void guard_table_release(struct guard_table *t, uint32_t idx, uint64_t now_us)
{
	struct src_ent *e = &t->ent[idx];

	atomic_store_explicit(&e->last_s, (uint32_t)(now_us / 1000000), memory_order_relaxed);
	/* the entry cannot change hands while it counts this connection */
	if ((atomic_fetch_sub(&e->state, 1) & ST_CONNS) == 1)
		atomic_fetch_add(&t->idle, 1); /* the last touch of t: see drained() */
}

/* ---- show sources ---- */

static double recent_rate(const struct src_ent *e, uint64_t now_us)
{
	uint64_t w = atomic_load_explicit(&e->win, memory_order_relaxed);
	uint32_t ws = (uint32_t)(w >> 32), now_s = (uint32_t)(now_us / 1000000);
	double left = 1.0 - (double)(now_us % 1000000) / 1e6;

	/* HAProxy's estimate: the previous second weighted by what is left
	 * of this one, plus this one so far */
	if (ws == now_s)
		return atomic_load_explicit(&e->prev, memory_order_relaxed) * left + (uint32_t)w;
	if (ws + 1 == now_s)
		return (uint32_t)w * left;
	return 0.0;
}

static void to_cidr(const struct guard_table *t, uint64_t hi, uint64_t lo, struct util_cidr *c)
{
	memset(c, 0, sizeof(*c));
	if (hi == 0 && lo >> 32 == 0xffff) {
		c->family = AF_INET;
		c->plen = t->group4;
		for (int i = 0; i < 4; i++)
			c->addr[i] = (uint8_t)(lo >> (24 - 8 * i));
		return;
	}
	c->family = AF_INET6;
	c->plen = t->group6;
	for (int i = 0; i < 8; i++) {
		c->addr[i] = (uint8_t)(hi >> (56 - 8 * i));
		c->addr[8 + i] = (uint8_t)(lo >> (56 - 8 * i));
	}
}

/* Keep the best max rows of a ranking in row[0..*n), best first. */
static void rank_insert(struct guard_source *row, size_t *n, size_t max,
			const struct guard_source *s, bool by_rate)
{
	size_t k = *n;

	while (k > 0 && (by_rate ? s->rate > row[k - 1].rate : s->conns > row[k - 1].conns))
		k--;
	if (k >= max)
		return;
	memmove(&row[k + 1], &row[k], (UTIL_MIN(*n, max - 1) - k) * sizeof(*row));
	row[k] = *s;
	*n = UTIL_MIN(*n + 1, max);
}

static int cmp_rows(const void *a, const void *b)
{
	const struct guard_source *x = a, *y = b;

	if (x->conns != y->conns)
		return x->conns > y->conns ? -1 : 1;
	return x->rate > y->rate ? -1 : x->rate < y->rate;
}

size_t guard_table_top(const struct guard_table *t, uint64_t now_us, struct guard_source *out,
		       size_t max)
{
	uint32_t limit = UTIL_MIN(atomic_load(&t->fresh), t->capacity);
	struct guard_source *by_rate = calloc(max + 1, sizeof(*by_rate));
	size_t nc = 0, nr = 0;

	if (by_rate == NULL || max == 0) {
		free(by_rate);
		return 0;
	}
	for (uint32_t i = 0; i < limit; i++) {
		const struct src_ent *e = &t->ent[i];
		uint64_t s = atomic_load_explicit(&e->state, memory_order_acquire);
		struct guard_source row;

		if (!(s & ST_LIVE))
			continue;
		to_cidr(t, atomic_load_explicit(&e->key_hi, memory_order_relaxed),
			atomic_load_explicit(&e->key_lo, memory_order_relaxed), &row.src);
		row.conns = (uint32_t)(s & ST_CONNS);
		row.rate = recent_rate(e, now_us);
		row.total = atomic_load_explicit(&e->total, memory_order_relaxed);
		row.refused = atomic_load_explicit(&e->refused, memory_order_relaxed);
		rank_insert(out, &nc, max, &row, false);
		rank_insert(by_rate, &nr, max, &row, true);
	}
	/* the high-rate ones that are not among the most connected */
	for (size_t k = 0; k < nr; k++) {
		bool dup = false;

		for (size_t j = 0; j < nc && !dup; j++)
			dup = util_cidr_equal(&out[j].src, &by_rate[k].src);
		if (!dup)
			out[nc++] = by_rate[k];
	}
	free(by_rate);
	qsort(out, nc, sizeof(*out), cmp_rows);
	return nc;
}
