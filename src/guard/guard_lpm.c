/* guard_lpm: longest-prefix-match tables for source ACLs. Prefixes are
 * collected compactly, sorted (radix sort for IPv4, which is what a list
 * of a million usually is), deduplicated and turned in one pass into a
 * path-compressed binary trie: each node is either a prefix or a branch
 * where two longer prefixes part, so a table of n prefixes has fewer than
 * 2n nodes and a lookup visits at most one node per distinct prefix length
 * on its way down. Tables are immutable once built and reference counted
 * (a reload that keeps a file keeps its table). */
#include <stdlib.h>
#include <string.h>

#include "guard-int.h"
#include "sluice/guard.h"
#include "sluice/util.h"

typedef unsigned __int128 u128;

#define NIL UINT32_MAX
#define VAL_BITS 21
#define VAL_MAX ((1u << VAL_BITS) - 2)
#define VAL_MASK ((1u << VAL_BITS) - 1)
#define NODE_NOVAL 0xffffffu /* in a node's meta: a branch, not a prefix */
#define MAX_PREFIXES (16u << 20)

/* Values 0 and 1 are shared by every file entry (allow, deny: they never
 * expire); others belong to one configuration or runtime entry. */
struct lpm_val {
	uint64_t expires_ms; /* 0: never */
	uint32_t shadow;     /* the entry of the same prefix it hides, or NIL */
	uint8_t action;
	uint8_t origin;
};

/* IPv4 prefix while building: key << 32 | plen << 26 | prio << 21 | val;
 * sorting the words sorts by address, then length, then priority. */
#define W4(key, plen, prio, val)                                                                   \
	((uint64_t)(key) << 32 | (uint64_t)(plen) << 26 | (uint64_t)(prio) << 21 | (val))

/* IPv6 prefix while building: meta = plen << 24 | prio << 21 | val. */
struct pfx6 {
	uint64_t hi, lo;
	uint32_t meta;
};

struct guard_lpm_builder {
	uint64_t *v4;
	size_t n4, cap4;
	struct pfx6 *v6;
	size_t n6, cap6;
	struct lpm_val *vals;
	size_t nvals, capvals;
	guard_pause_fn pause; /* every few hundred microseconds of work */
	void *pause_arg;
	uint32_t work;
};

/* A pause point: units of work (about 50 ns each) done since the last. */
static void work_done(struct guard_lpm_builder *b, uint32_t units)
{
	b->work += units;
	if (b->work < GUARD_PAUSE_WORK)
		return;
	b->work = 0;
	if (b->pause != NULL)
		b->pause(b->pause_arg);
}

void guard_lpm_builder_set_pause(struct guard_lpm_builder *b, guard_pause_fn fn, void *arg)
{
	b->pause = fn;
	b->pause_arg = arg;
}

void guard_lpm_builder_step(struct guard_lpm_builder *b, uint32_t units)
{
	work_done(b, units);
}

/* meta = plen << 24 | value index (NODE_NOVAL: a branch). */
struct node4 {
	uint32_t key;
	uint32_t meta;
	uint32_t child[2];
};

struct node6 {
	uint64_t hi, lo;
	uint32_t meta;
	uint32_t child[2];
};

struct guard_lpm {
	_Atomic uint32_t refcnt;
	struct node4 *n4;
	struct node6 *n6;
	uint32_t nn4, nn6, root4, root6;
	struct lpm_val *vals;
	size_t nvals;
	size_t count; /* distinct prefixes */
};

/* ---- collecting ---- */

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
	size_t ncap = *cap ? *cap : 256;
	void *q;

	if (need <= *cap)
		return 0;
	while (ncap < need)
		ncap *= 2;
	q = realloc(*p, ncap * elem);
	if (q == NULL)
		return -1;
	*p = q;
	*cap = ncap;
	return 0;
}

struct guard_lpm_builder *guard_lpm_builder_new(void)
{
	struct guard_lpm_builder *b = calloc(1, sizeof(*b));

	if (b == NULL || grow((void **)&b->vals, &b->capvals, 2, sizeof(*b->vals)) < 0) {
		free(b);
		return NULL;
	}
	b->vals[0] = (struct lpm_val){.shadow = NIL, .action = GUARD_ALLOW};
	b->vals[1] = (struct lpm_val){.shadow = NIL, .action = GUARD_DENY};
	b->nvals = 2;
	return b;
}

void guard_lpm_builder_free(struct guard_lpm_builder *b)
{
	if (b == NULL)
		return;
	free(b->v4);
	free(b->v6);
	free(b->vals);
	free(b);
}

size_t guard_lpm_builder_count(const struct guard_lpm_builder *b)
{
	return b->n4 + b->n6;
}

int guard_lpm_builder_add(struct guard_lpm_builder *b, const struct guard_rule *r)
{
	uint32_t prio = (uint32_t)r->origin * 2 + (r->action == GUARD_DENY), val;

	if (b->n4 + b->n6 >= MAX_PREFIXES)
		return -1;
	if (r->origin == GUARD_ORIGIN_FILE && r->expires_ms == 0) {
		val = r->action == GUARD_DENY;
	} else {
		if (b->nvals >= VAL_MAX ||
		    grow((void **)&b->vals, &b->capvals, b->nvals + 1, sizeof(*b->vals)) < 0)
			return -1;
		val = (uint32_t)b->nvals++;
		b->vals[val] = (struct lpm_val){.expires_ms = r->expires_ms,
						.shadow = NIL,
						.action = (uint8_t)r->action,
						.origin = (uint8_t)r->origin};
	}
	if (r->cidr.family == AF_INET) {
		uint32_t key = (uint32_t)r->cidr.addr[0] << 24 | (uint32_t)r->cidr.addr[1] << 16 |
			       (uint32_t)r->cidr.addr[2] << 8 | r->cidr.addr[3];

		if (grow((void **)&b->v4, &b->cap4, b->n4 + 1, sizeof(*b->v4)) < 0)
			return -1;
		b->v4[b->n4++] = W4(key, r->cidr.plen, prio, val);
		return 0;
	}
	if (grow((void **)&b->v6, &b->cap6, b->n6 + 1, sizeof(*b->v6)) < 0)
		return -1;
	b->v6[b->n6++] = (struct pfx6){.hi = guard_be64(r->cidr.addr),
				       .lo = guard_be64(r->cidr.addr + 8),
				       .meta = (uint32_t)r->cidr.plen << 24 | prio << 21 | val};
	return 0;
}

/* ---- sorting and deduplication ---- */

/* The end of a sort that moved between v and a scratch copy: the result is
 * in src (one of the two); it must end in v. */
static int sorted(void *v, void *src, void *scratch, size_t bytes)
{
	if (src != v)
		memcpy(v, src, bytes);
	free(scratch);
	return 0;
}

/* LSD radix sort of 64-bit words, a byte at a time; passes where every
 * word has the same byte are skipped. Returns 0 or -1 (no memory). */
static int radix_sort64(struct guard_lpm_builder *b, uint64_t *v, size_t n)
{
	uint64_t *tmp = malloc(n * sizeof(*tmp)), *src = v, *dst = tmp;

	if (tmp == NULL)
		return -1;
	for (unsigned shift = 0; shift < 64; shift += 8) {
		size_t count[256] = {0}, pos = 0;

		for (size_t i = 0; i < n; i++) {
			count[(src[i] >> shift) & 0xff]++;
			if ((i & 0xffff) == 0)
				work_done(b, 2048);
		}
		if (count[(src[0] >> shift) & 0xff] == n)
			continue;
		for (size_t d = 0; d < 256; d++) {
			size_t c = count[d];

			count[d] = pos;
			pos += c;
		}
		for (size_t i = 0; i < n; i++) {
			dst[count[(src[i] >> shift) & 0xff]++] = src[i];
			if ((i & 0xffff) == 0)
				work_done(b, 4096);
		}
		uint64_t *s = src;

		src = dst;
		dst = s;
	}
	return sorted(v, src, tmp, n * sizeof(*v));
}

static bool less6(const struct pfx6 *x, const struct pfx6 *y)
{
	if (x->hi != y->hi)
		return x->hi < y->hi;
	if (x->lo != y->lo)
		return x->lo < y->lo;
	return x->meta < y->meta;
}

/* Bottom-up merge sort of IPv6 prefixes (stable, O(n log n), with pause
 * points, which qsort would not give). Returns 0 or -1 (no memory). */
static int merge_sort6(struct guard_lpm_builder *b, struct pfx6 *v, size_t n)
{
	struct pfx6 *tmp = malloc(n * sizeof(*tmp)), *src = v, *dst = tmp;

	if (tmp == NULL)
		return -1;
	for (size_t width = 1; width < n; width *= 2) {
		for (size_t lo = 0; lo < n; lo += 2 * width) {
			size_t mid = UTIL_MIN(lo + width, n), hi = UTIL_MIN(lo + 2 * width, n);
			size_t i = lo, j = mid, k = lo;

			while (i < mid && j < hi)
				dst[k++] = less6(&src[j], &src[i]) ? src[j++] : src[i++];
			while (i < mid)
				dst[k++] = src[i++];
			while (j < hi)
				dst[k++] = src[j++];
			work_done(b, (uint32_t)UTIL_MIN(hi - lo, 1u << 20) / 4 + 1);
		}
		struct pfx6 *s = src;

		src = dst;
		dst = s;
	}
	return sorted(v, src, tmp, n * sizeof(*v));
}

/* Keep one value per prefix: the last of a run of equal prefixes has the
 * highest priority; the ones it hides become its fallbacks. */
static void chain_shadow(struct lpm_val *vals, uint32_t winner, uint32_t hidden)
{
	if (winner >= 2)
		vals[winner].shadow = hidden;
}

static size_t dedup4(struct guard_lpm_builder *b, uint64_t *v, size_t n, struct lpm_val *vals)
{
	size_t out = 0;

	for (size_t i = 0; i < n; i++) {
		if ((i & 0xffff) == 0)
			work_done(b, 4096);
		if (out > 0 && (v[out - 1] >> 26) == (v[i] >> 26)) {
			chain_shadow(vals, (uint32_t)v[i] & VAL_MASK,
				     (uint32_t)v[out - 1] & VAL_MASK);
			v[out - 1] = v[i];
			continue;
		}
		v[out++] = v[i];
	}
	return out;
}

static size_t dedup6(struct guard_lpm_builder *b, struct pfx6 *v, size_t n, struct lpm_val *vals)
{
	size_t out = 0;

	for (size_t i = 0; i < n; i++) {
		if ((i & 0xffff) == 0)
			work_done(b, 4096);
		if (out > 0 && v[out - 1].hi == v[i].hi && v[out - 1].lo == v[i].lo &&
		    (v[out - 1].meta >> 24) == (v[i].meta >> 24)) {
			chain_shadow(vals, v[i].meta & VAL_MASK, v[out - 1].meta & VAL_MASK);
			v[out - 1] = v[i];
			continue;
		}
		v[out++] = v[i];
	}
	return out;
}

/* ---- building the trie ----
 * Sorted by address then length, a prefix comes right before the prefixes
 * it holds, and they are contiguous. For a run [lo, hi): if its first
 * prefix holds all of them it is the node and the rest split on its next
 * bit; otherwise the node is a branch at the first bit where the first and
 * the last address differ. Each level fixes at least one more bit, so the
 * recursion is at most 129 deep. */

struct bctx {
	bool v6;
	unsigned width;
	const uint64_t *w4;
	const struct pfx6 *w6;
	struct guard_lpm *t;
	struct guard_lpm_builder *b;
};

static u128 mask128(unsigned plen)
{
	return plen == 0 ? 0 : ~(u128)0 << (128 - plen);
}

/* Keys are left-aligned in 128 bits, so that both families share the code. */
static u128 item_key(const struct bctx *b, size_t i)
{
	if (b->v6)
		return (u128)b->w6[i].hi << 64 | b->w6[i].lo;
	return (u128)(b->w4[i] >> 32) << 96;
}

static unsigned item_plen(const struct bctx *b, size_t i)
{
	return b->v6 ? b->w6[i].meta >> 24 : (unsigned)(b->w4[i] >> 26) & 0x3f;
}

static uint32_t item_val(const struct bctx *b, size_t i)
{
	return b->v6 ? b->w6[i].meta & VAL_MASK : (uint32_t)b->w4[i] & VAL_MASK;
}

static unsigned clz128(u128 x)
{
	uint64_t hi = (uint64_t)(x >> 64), lo = (uint64_t)x;

	if (hi != 0)
		return (unsigned)__builtin_clzll(hi);
	return lo != 0 ? 64 + (unsigned)__builtin_clzll(lo) : 128;
}

static unsigned bit_at(u128 k, unsigned pos)
{
	return (unsigned)(k >> (127 - pos)) & 1;
}

static uint32_t emit(struct bctx *b, u128 key, unsigned plen, uint32_t val)
{
	struct guard_lpm *t = b->t;

	work_done(b->b, 1);
	key &= mask128(plen);
	if (b->v6) {
		t->n6[t->nn6] = (struct node6){.hi = (uint64_t)(key >> 64),
					       .lo = (uint64_t)key,
					       .meta = plen << 24 | val,
					       .child = {NIL, NIL}};
		return t->nn6++;
	}
	t->n4[t->nn4] = (struct node4){
	    .key = (uint32_t)(key >> 96), .meta = plen << 24 | val, .child = {NIL, NIL}};
	return t->nn4++;
}

static void set_child(struct bctx *b, uint32_t n, unsigned side, uint32_t c)
{
	if (b->v6)
		b->t->n6[n].child[side] = c;
	else
		b->t->n4[n].child[side] = c;
}

/* The first index of [lo, hi) whose key has bit pos set (they all share
 * the bits before pos, so the bit is 0 then 1 along the run). */
static size_t split_at(const struct bctx *b, size_t lo, size_t hi, unsigned pos)
{
	if (pos >= b->width)
		return hi;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (bit_at(item_key(b, mid), pos))
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo;
}

static uint32_t build(struct bctx *b, size_t lo, size_t hi)
{
	u128 k0 = item_key(b, lo);
	unsigned p0 = item_plen(b, lo), c;
	uint32_t n;
	size_t m;

	if (hi - lo == 1)
		return emit(b, k0, p0, item_val(b, lo));
	c = UTIL_MIN(clz128(k0 ^ item_key(b, hi - 1)), b->width);
	if (p0 <= c) {
		n = emit(b, k0, p0, item_val(b, lo));
		lo++;
		c = p0;
	} else {
		n = emit(b, k0, c, NODE_NOVAL);
	}
	m = split_at(b, lo, hi, c);
	if (m > lo)
		set_child(b, n, 0, build(b, lo, m));
	if (m < hi)
		set_child(b, n, 1, build(b, m, hi));
	return n;
}

struct guard_lpm *guard_lpm_build(struct guard_lpm_builder *b)
{
	struct guard_lpm *t = calloc(1, sizeof(*t));
	struct bctx bc = {.t = t, .b = b};
	size_t n4, n6;

	if (t == NULL || (b->n4 > 0 && radix_sort64(b, b->v4, b->n4) < 0) ||
	    (b->n6 > 0 && merge_sort6(b, b->v6, b->n6) < 0))
		goto fail;
	n4 = dedup4(b, b->v4, b->n4, b->vals);
	n6 = dedup6(b, b->v6, b->n6, b->vals);
	t->n4 = n4 ? malloc((2 * n4 - 1) * sizeof(*t->n4)) : NULL;
	t->n6 = n6 ? malloc((2 * n6 - 1) * sizeof(*t->n6)) : NULL;
	if ((n4 && t->n4 == NULL) || (n6 && t->n6 == NULL))
		goto fail;
	atomic_init(&t->refcnt, 1);
	t->root4 = t->root6 = NIL;
	bc.w4 = b->v4;
	bc.width = 32;
	if (n4 > 0)
		t->root4 = build(&bc, 0, n4);
	bc.v6 = true;
	bc.w6 = b->v6;
	bc.width = 128;
	if (n6 > 0)
		t->root6 = build(&bc, 0, n6);
	t->count = n4 + n6;
	t->vals = b->vals;
	t->nvals = b->nvals;
	b->vals = NULL;
	guard_lpm_builder_free(b);
	return t;
fail:
	if (t != NULL) {
		free(t->n4);
		free(t->n6);
		free(t);
	}
	guard_lpm_builder_free(b);
	return NULL;
}

void guard_lpm_get(struct guard_lpm *t)
{
	atomic_fetch_add_explicit(&t->refcnt, 1, memory_order_relaxed);
}

static _Atomic(guard_reap_fn) reaper;

void guard_set_reaper(guard_reap_fn reap)
{
	atomic_store(&reaper, reap);
}

static void lpm_destroy(void *obj)
{
	struct guard_lpm *t = obj;

	free(t->n4);
	free(t->n6);
	free(t->vals);
	free(t);
}

void guard_lpm_put(struct guard_lpm *t)
{
	guard_reap_fn reap;

	if (t == NULL || atomic_fetch_sub_explicit(&t->refcnt, 1, memory_order_acq_rel) != 1)
		return;
	reap = atomic_load(&reaper);
	if (reap != NULL && guard_lpm_memory(t) >= GUARD_REAP_BYTES)
		reap(lpm_destroy, t);
	else
		lpm_destroy(t);
}

/* ---- lookup ---- */

/* The value that decides for this prefix at now_ms: an expired entry hands
 * over to the one it hides. NIL when none is left. */
static uint32_t live_val(const struct guard_lpm *t, uint32_t v, uint64_t now_ms)
{
	while (v != NIL && t->vals[v].expires_ms != 0 && now_ms >= t->vals[v].expires_ms)
		v = t->vals[v].shadow;
	return v;
}

static int lookup4(const struct guard_lpm *t, uint32_t a, uint64_t now_ms, uint32_t *best)
{
	int len = -1;

	for (uint32_t i = t->root4; i != NIL;) {
		const struct node4 *nd = &t->n4[i];
		unsigned plen = nd->meta >> 24;
		uint32_t v = nd->meta & NODE_NOVAL;

		if (plen != 0 && ((a ^ nd->key) >> (32 - plen)) != 0)
			break;
		if (v != NODE_NOVAL && (v = live_val(t, v, now_ms)) != NIL) {
			*best = v;
			len = (int)plen;
		}
		if (plen == 32)
			break;
		i = nd->child[(a >> (31 - plen)) & 1];
	}
	return len;
}

static int lookup6(const struct guard_lpm *t, u128 a, uint64_t now_ms, uint32_t *best)
{
	int len = -1;

	for (uint32_t i = t->root6; i != NIL;) {
		const struct node6 *nd = &t->n6[i];
		unsigned plen = nd->meta >> 24;
		uint32_t v = nd->meta & NODE_NOVAL;
		u128 key = (u128)nd->hi << 64 | nd->lo;

		if (((a ^ key) & mask128(plen)) != 0)
			break;
		if (v != NODE_NOVAL && (v = live_val(t, v, now_ms)) != NIL) {
			*best = v;
			len = (int)plen;
		}
		if (plen == 128)
			break;
		i = nd->child[bit_at(a, plen)];
	}
	return len;
}

int guard_lpm_lookup(const struct guard_lpm *t, const struct util_addr *a, uint64_t now_ms,
		     enum guard_action *action)
{
	uint32_t best = NIL;
	int len = -1;

	if (a->u.sa.sa_family == AF_INET) {
		const uint8_t *p = (const uint8_t *)&a->u.in4.sin_addr;

		len = lookup4(
		    t, (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3],
		    now_ms, &best);
	} else if (a->u.sa.sa_family == AF_INET6) {
		const uint8_t *p = a->u.in6.sin6_addr.s6_addr;

		len = lookup6(t, (u128)guard_be64(p) << 64 | guard_be64(p + 8), now_ms, &best);
	}
	if (len >= 0)
		*action = (enum guard_action)t->vals[best].action;
	return len;
}

size_t guard_lpm_count(const struct guard_lpm *t)
{
	return t->count;
}

size_t guard_lpm_memory(const struct guard_lpm *t)
{
	return sizeof(*t) + t->nn4 * sizeof(*t->n4) + t->nn6 * sizeof(*t->n6) +
	       t->nvals * sizeof(*t->vals);
}
