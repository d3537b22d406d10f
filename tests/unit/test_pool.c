/* Unit tests for pool_pick and pool_server_release over real snapshots
 * (pool linked with balance): backups only when no primary is usable, a
 * server never above its maxconn (also when threads race for the last
 * slot), drain, weight 0, slow start, tried servers and the queue verdict,
 * for every balancing algorithm where the rule is the same; and Maglev
 * tables that do not depend on health, file order or reload history. */
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sluice/pool.h"
#include "sluice/util.h"

static struct qsbr q;

static const enum pool_balance all_balances[] = {
    POOL_BALANCE_ROUNDROBIN, POOL_BALANCE_LEASTCONN, POOL_BALANCE_RANDOM,
    POOL_BALANCE_MAGLEV,     POOL_BALANCE_FIRST,
};

static int group_setup(void **state)
{
	(void)state;
	pool_set_qsbr(&q);
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	qsbr_destroy(&q);
	return 0;
}

static struct pool *mkpool(enum pool_balance b)
{
	struct pool *p = pool_new("web");

	assert_non_null(p);
	p->balance = b;
	return p;
}

static struct pool_server *add(struct pool *p, const char *name, uint32_t weight, uint32_t maxconn,
			       bool backup)
{
	struct util_addr a;
	char err[128];
	struct pool_server *s;

	assert_int_equal(util_addr_parse("127.0.0.1:9", false, &a, err, sizeof(err)), 0);
	s = pool_server_new(name, &a);
	assert_non_null(s);
	assert_int_equal(pool_add_server(p, s), 0);
	s->weight = s->opts.weight = s->hs.weight_initial = weight;
	s->maxconn = maxconn;
	s->backup = backup;
	return s;
}

/* Free the pool and its servers; every connection must be released. */
static void done(struct pool *p)
{
	for (size_t i = 0; i < p->nservers; i++)
		assert_int_equal(atomic_load(&p->servers[i]->cur_conns), 0);
	pool_retire(p);
	qsbr_reclaim(&q); /* no readers: frees the servers and the snapshot */
	pool_put(p);
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;

/* One pick for a client; the result, and the server in *out on OK. */
static enum pool_pick_result pick_for(struct pool *p, uint64_t client, struct pool_server **out)
{
	struct pool_pick pk = {.client_hash = client};

	*out = NULL;
	return pool_pick(p, &pk, &rng, out);
}

/* A pick that must succeed; returns the acquired server. */
static struct pool_server *take(struct pool *p, uint64_t client)
{
	struct pool_server *s;

	assert_int_equal(pick_for(p, client, &s), POOL_PICK_OK);
	assert_non_null(s);
	return s;
}

/* n picks, each released at once; counts per server index of p. */
static void count_picks(struct pool *p, size_t n, uint32_t *count)
{
	memset(count, 0, p->nservers * sizeof(*count));
	for (size_t k = 0; k < n; k++) {
		struct pool_server *s = take(p, util_hash64(&k, sizeof(k), 1));
		size_t i = 0;

		while (p->servers[i] != s)
			i++;
		count[i]++;
		pool_server_release(s);
	}
}

static void set_down(struct pool_server *s, bool down)
{
	pool_server_set_health(s, POOL_SRC_CHECK, !down, down ? "test down" : "test up", 1000);
}

/* ---- backups ---- */

static void test_backup_when_no_primary_usable(void **state)
{
	(void)state;
	for (size_t b = 0; b < UTIL_ARRAY_LEN(all_balances); b++) {
		struct pool *p = mkpool(all_balances[b]);
		struct pool_server *a = add(p, "a", 1, 0, false), *c = add(p, "c", 1, 0, false);
		struct pool_server *k = add(p, "k", 1, 0, true), *s;
		uint32_t count[3];

		assert_int_equal(pool_publish(p), 0);
		count_picks(p, 200, count);
		assert_int_equal(count[2], 0); /* the backup, while primaries work */
		assert_int_equal(count[0] + count[1], 200);

		/* each way a primary stops being usable; the last one makes
		 * the pool fall back to its backup */
		set_down(a, true);
		pool_publish(p);
		count_picks(p, 50, count);
		assert_int_equal(count[1], 50);
		pool_server_operator_admin(c, POOL_ADMIN_DRAIN, 1000);
		count_picks(p, 50, count);
		assert_int_equal(count[2], 50);
		pool_server_operator_admin(c, POOL_ADMIN_MAINT, 1000);
		count_picks(p, 50, count);
		assert_int_equal(count[2], 50);
		pool_server_operator_admin(c, POOL_ADMIN_READY, 1000);
		pool_server_operator_weight(c, 0);
		count_picks(p, 50, count);
		assert_int_equal(count[2], 50);
		/* a primary back: the backup gets nothing new at once */
		set_down(a, false);
		pool_publish(p);
		count_picks(p, 50, count);
		assert_int_equal(count[0], 50);

		/* primaries already tried (connect failed) count as unusable
		 * for this client: its retry goes to the backup */
		{
			struct pool_pick pk = {.tried = {a}, .ntried = 1};

			assert_int_equal(pool_pick(p, &pk, &rng, &s), POOL_PICK_OK);
			assert_ptr_equal(s, k);
			pool_server_release(s);
		}
		/* a primary flagged by passive health is skipped the same way */
		atomic_store(&a->hs.passive_flag, true);
		assert_ptr_equal(s = take(p, 7), k);
		pool_server_release(s);
		atomic_store(&a->hs.passive_flag, false);
		done(p);
	}
}

/* The rule's other half: busy primaries (at maxconn) make the client queue;
 * the backup stays idle, also when the other primaries are down. */
static void test_busy_primaries_queue_not_backup(void **state)
{
	(void)state;
	for (size_t b = 0; b < UTIL_ARRAY_LEN(all_balances); b++) {
		struct pool *p = mkpool(all_balances[b]);
		struct pool_server *a = add(p, "a", 1, 1, false), *c = add(p, "c", 1, 1, false);
		struct pool_server *k = add(p, "k", 1, 0, true), *s1, *s2, *s;

		assert_int_equal(pool_publish(p), 0);
		s1 = take(p, 1);
		s2 = take(p, 2);
		assert_ptr_not_equal(s1, s2);
		assert_int_equal(pick_for(p, 3, &s), POOL_PICK_FULL);
		assert_null(s);
		assert_int_equal(atomic_load(&k->cur_conns), 0);
		assert_int_equal(atomic_load(&k->total_conns), 0);

		/* c down, a full: still a queue, not the backup */
		pool_server_release(s1 == c ? s1 : s2);
		set_down(c, true);
		pool_publish(p);
		assert_int_equal(pick_for(p, 4, &s), POOL_PICK_FULL);
		assert_int_equal(atomic_load(&k->total_conns), 0);
		/* a slot frees: the next pick (the queued client) gets a */
		pool_server_release(a);
		assert_ptr_equal(take(p, 5), a);
		/* only now that no primary is usable does the backup serve */
		set_down(a, true);
		pool_publish(p);
		assert_ptr_equal(s = take(p, 6), k);
		pool_server_release(s);
		pool_server_release(a);
		done(p);
	}
}

/* ---- maxconn ---- */

static void test_maxconn_exact(void **state)
{
	(void)state;
	for (size_t b = 0; b < UTIL_ARRAY_LEN(all_balances); b++) {
		struct pool *p = mkpool(all_balances[b]);
		struct pool_server *a = add(p, "a", 1, 3, false), *c = add(p, "c", 3, 2, false);
		struct pool_server *held[5], *s;

		assert_int_equal(pool_publish(p), 0);
		for (int i = 0; i < 5; i++)
			held[i] = take(p, (uint64_t)i * 7919);
		/* 3 + 2 slots, whatever the algorithm preferred */
		assert_int_equal(atomic_load(&a->cur_conns), 3);
		assert_int_equal(atomic_load(&c->cur_conns), 2);
		assert_int_equal(pick_for(p, 99, &s), POOL_PICK_FULL);
		assert_int_equal(pick_for(p, 100, &s), POOL_PICK_FULL);
		assert_int_equal(atomic_load(&a->cur_conns), 3);
		assert_int_equal(atomic_load(&c->cur_conns), 2);
		/* one slot on c frees: the next pick takes exactly that one */
		for (int i = 0; i < 5; i++) {
			if (held[i] == c) {
				pool_server_release(c);
				held[i] = take(p, 12345);
				assert_ptr_equal(held[i], c);
				break;
			}
		}
		assert_int_equal(pick_for(p, 101, &s), POOL_PICK_FULL);
		for (int i = 0; i < 5; i++)
			pool_server_release(held[i]);
		/* maxconn 0: unlimited */
		a->maxconn = 0;
		for (int i = 0; i < 50; i++)
			held[0] = take(p, 5);
		assert_true(atomic_load(&a->cur_conns) >= 48);
		while (atomic_load(&a->cur_conns) > 0)
			pool_server_release(a);
		while (atomic_load(&c->cur_conns) > 0)
			pool_server_release(c);
		done(p);
	}
}

/* A full server is skipped, not waited for: its share goes to the others
 * while it is full and comes back when a slot frees. */
static void test_maxconn_skips_full_server(void **state)
{
	(void)state;
	for (size_t b = 0; b < UTIL_ARRAY_LEN(all_balances); b++) {
		struct pool *p = mkpool(all_balances[b]);
		struct pool_server *a = add(p, "a", 1, 1, false);
		uint32_t count[3];

		add(p, "c", 1, 0, false);
		add(p, "d", 1, 0, false);
		assert_int_equal(pool_publish(p), 0);
		pool_server_get(a); /* fill a by hand: one connection */
		atomic_store(&a->cur_conns, 1);
		count_picks(p, 90, count);
		assert_int_equal(count[0], 0);
		assert_int_equal(count[1] + count[2], 90);
		pool_server_release(a);
		count_picks(p, 90, count);
		/* free again: it takes its share (first: every pick) */
		assert_true(count[0] >= (all_balances[b] == POOL_BALANCE_FIRST ? 90 : 10));
		done(p);
	}
}

/* Two threads race for the last slot of a server over many rounds: never
 * more than its maxconn. The check "usable" and the slot taken are two
 * steps; leastconn scans every server between them (a thousand busy ones
 * here, so the gap lasts microseconds), and the threads start each round
 * together off a spinning barrier, so a slot taken beyond maxconn shows up
 * in most rounds when the second step does not check again. */
#define RACE_ROUNDS 3000
#define RACE_BUSY 1000

struct race {
	struct pool *p;
	struct pool_server *a;
	_Atomic uint32_t arrived; /* spinning barrier: arrivals, both phases */
	_Atomic uint32_t on_a;	  /* picks that got a this round */
	_Atomic uint32_t over;	  /* rounds that went above a's maxconn */
	_Atomic uint32_t failed;  /* picks that did not succeed (none should) */
	_Atomic bool broken;	  /* a barrier timed out: both threads stop */
};

/* Wait until both threads arrived at barrier number n (1, 2, ...). Spins,
 * yielding now and then (the machine may be busy), for 20 s at most: then
 * the race is marked broken and both threads stop. */
static bool race_barrier(struct race *r, uint32_t n)
{
	uint64_t deadline = util_now_ms() + 20000;

	atomic_fetch_add(&r->arrived, 1);
	for (uint32_t spins = 0; atomic_load(&r->arrived) < 2 * n; spins++) {
		if (atomic_load(&r->broken))
			return false;
		if (spins % 1024 == 1023) {
			sched_yield();
			if (util_now_ms() > deadline) {
				atomic_store(&r->broken, true);
				return false;
			}
		}
	}
	return true;
}

static bool race_round(struct race *r, uint32_t round, uint64_t *my_rng)
{
	struct pool_pick pk = {.client_hash = round};
	struct pool_server *s = NULL;

	if (!race_barrier(r, 3 * round + 1))
		return false;
	if (pool_pick(r->p, &pk, my_rng, &s) != POOL_PICK_OK)
		atomic_fetch_add(&r->failed, 1);
	else if (s == r->a)
		atomic_fetch_add(&r->on_a, 1);
	if (race_barrier(r, 3 * round + 2)) {
		/* between the barriers both picks are done and nothing changes */
		if (atomic_load(&r->a->cur_conns) > 1 || atomic_load(&r->on_a) > 1)
			atomic_fetch_add(&r->over, 1); /* both threads may count it */
		if (race_barrier(r, 3 * round + 3))
			atomic_store(&r->on_a, 0);
	}
	if (s != NULL)
		pool_server_release(s);
	return !atomic_load(&r->broken);
}

static void *race_thread(void *arg)
{
	struct race *r = arg;
	uint64_t my_rng = 77;

	for (uint32_t round = 0; round < RACE_ROUNDS && race_round(r, round, &my_rng); round++)
		;
	return NULL;
}

static void test_maxconn_race(void **state)
{
	struct race r = {0};
	pthread_t th;
	uint64_t my_rng = 3;

	(void)state;
	r.p = mkpool(POOL_BALANCE_LEASTCONN);
	r.a = add(r.p, "a", 1, 1, false);
	for (int i = 0; i < RACE_BUSY; i++) {
		char name[16];
		size_t off = 0;

		util_bufprintf(name, sizeof(name), &off, "busy%d", i);
		/* much more loaded than a: picked only when a is full */
		atomic_store(&add(r.p, name, 1, 0, false)->cur_conns, 1000);
	}
	assert_int_equal(pool_publish(r.p), 0);
	assert_int_equal(pthread_create(&th, NULL, race_thread, &r), 0);
	for (uint32_t round = 0; round < RACE_ROUNDS && race_round(&r, round, &my_rng); round++)
		;
	pthread_join(th, NULL);
	assert_false(atomic_load(&r.broken));
	assert_int_equal(atomic_load(&r.failed), 0);
	assert_int_equal(atomic_load(&r.over), 0);
	for (size_t i = 1; i < r.p->nservers; i++)
		atomic_store(&r.p->servers[i]->cur_conns, 0);
	done(r.p);
}

/* ---- drain, weight 0, slow start ---- */

static void test_drain_and_weight0_take_nothing_new(void **state)
{
	(void)state;
	for (size_t b = 0; b < UTIL_ARRAY_LEN(all_balances); b++) {
		struct pool *p = mkpool(all_balances[b]);
		struct pool_server *a = add(p, "a", 1, 0, false), *c = add(p, "c", 1, 0, false);
		struct pool_server *s;
		uint32_t count[2];

		assert_int_equal(pool_publish(p), 0);
		s = take(p, 1); /* an open connection survives the drain */
		pool_server_operator_admin(a, POOL_ADMIN_DRAIN, 1000);
		count_picks(p, 60, count);
		assert_int_equal(count[0], 0);
		assert_int_equal(count[1], 60);
		pool_server_release(s);
		pool_server_operator_admin(a, POOL_ADMIN_READY, 1000);
		count_picks(p, 60, count);
		assert_true(count[0] > 0);

		pool_server_operator_weight(c, 0);
		count_picks(p, 60, count);
		assert_int_equal(count[0], 60);
		/* nothing left: no server, not a queue */
		pool_server_operator_admin(a, POOL_ADMIN_MAINT, 1000);
		assert_int_equal(pick_for(p, 1, &s), POOL_PICK_NONE);
		assert_null(s);
		done(p);
	}
}

static void test_no_snapshot_no_server(void **state)
{
	struct pool *p = mkpool(POOL_BALANCE_ROUNDROBIN);
	struct pool_server *s;

	(void)state;
	add(p, "a", 1, 0, false);
	assert_int_equal(pick_for(p, 1, &s), POOL_PICK_NONE); /* not published yet */
	assert_int_equal(pool_publish(p), 0);
	assert_int_equal(pick_for(p, 1, &s), POOL_PICK_OK);
	pool_server_release(s);
	done(p);
}

/* Slow start: a server that comes back gets a share that grows with time
 * (roundrobin cycles make the shares exact). */
static void test_slowstart_ramps_share(void **state)
{
	struct pool *p = mkpool(POOL_BALANCE_ROUNDROBIN);
	struct pool_server *a = add(p, "a", 1, 0, false), *c = add(p, "c", 1, 0, false);
	uint32_t count[2];

	(void)state;
	p->slowstart_ms = 10000;
	set_down(c, true);
	assert_int_equal(pool_publish(p), 0);
	count_picks(p, 34, count);
	assert_int_equal(count[1], 0);
	/* back up at t=1000: weight 1 of 16 */
	set_down(c, false);
	assert_true(p->ramping);
	pool_publish(p);
	count_picks(p, 34, count);
	assert_int_equal(count[1], 2); /* 1/17 of two whole cycles */
	/* halfway: 8 of 16 */
	assert_true(pool_slowstart_step(p, 6000));
	pool_publish(p);
	count_picks(p, 48, count);
	assert_int_equal(count[1], 16); /* 8/24 */
	/* done: equal shares, no more ramping */
	assert_true(pool_slowstart_step(p, 11000));
	assert_false(p->ramping);
	pool_publish(p);
	count_picks(p, 40, count);
	assert_int_equal(count[0], 20);
	assert_int_equal(count[1], 20);
	(void)a;
	done(p);
}

/* ---- the queue ---- */

/* FULL means "queue"; a release says whether clients wait on the pool, and
 * the slot it frees is the one the next pick gets. */
static void test_queue_verdict_and_release(void **state)
{
	struct pool *p = mkpool(POOL_BALANCE_LEASTCONN);
	struct pool_server *a = add(p, "a", 1, 1, false), *s1, *s;

	(void)state;
	assert_int_equal(pool_publish(p), 0);
	s1 = take(p, 1);
	assert_int_equal(pick_for(p, 2, &s), POOL_PICK_FULL);
	atomic_store(&p->queued, 1); /* the session layer queued that client */
	assert_true(pool_server_release(s1));
	assert_ptr_equal(s = take(p, 2), a);
	atomic_store(&p->queued, 0);
	assert_false(pool_server_release(s));
	assert_int_equal(atomic_load(&a->total_conns), 2);
	done(p);
}

/* ---- Maglev: size and order independent of health and history ---- */

/* The name owning each slot of the primaries' table. */
static const char **maglev_names(struct pool *p, uint32_t *m)
{
	struct pool_lb *lb = atomic_load(&p->lb);
	const struct pool_lb_group *g = &lb->primary;
	const char **names = calloc(g->maglev_size, sizeof(*names));

	assert_non_null(names);
	assert_int_equal(lb->balance, POOL_BALANCE_MAGLEV);
	for (uint32_t j = 0; j < g->maglev_size; j++) {
		assert_true(g->maglev[j] >= 0 && (size_t)g->maglev[j] < g->n);
		names[j] = g->srv[g->maglev[j]]->name;
	}
	*m = g->maglev_size;
	return names;
}

static void assert_same_tables(struct pool *a, struct pool *b)
{
	uint32_t ma, mb;
	const char **na = maglev_names(a, &ma), **nb = maglev_names(b, &mb);

	assert_int_equal(ma, mb);
	for (uint32_t j = 0; j < ma; j++)
		assert_string_equal(na[j], nb[j]);
	free(na);
	free(nb);
}

static const char *const srv_names[] = {
    "web-07", "web-1", "web-10", "db.a", "web-2", "cache_3", "web-11", "x", "web-03", "A1",
};

/* The same servers listed in different orders (reversed, rotated), some
 * of them down or drained: identical tables. */
static void test_maglev_table_ignores_file_order(void **state)
{
	const size_t n = UTIL_ARRAY_LEN(srv_names);
	struct pool *p[3];

	(void)state;
	for (int v = 0; v < 3; v++) {
		p[v] = mkpool(POOL_BALANCE_MAGLEV);
		for (size_t k = 0; k < n; k++) {
			size_t i = v == 0 ? k : v == 1 ? n - 1 - k : (k + 4) % n;

			add(p[v], srv_names[i], i == 3 ? 3 : 1, 0, false);
		}
		assert_int_equal(pool_publish(p[v]), 0);
	}
	assert_same_tables(p[0], p[1]);
	assert_same_tables(p[0], p[2]);
	for (int v = 0; v < 3; v++) {
		set_down(pool_find_server(p[v], "web-10"), true);
		pool_server_operator_admin(pool_find_server(p[v], "x"), POOL_ADMIN_DRAIN, 1000);
	}
	assert_same_tables(p[0], p[1]);
	assert_same_tables(p[0], p[2]);
	for (int v = 0; v < 3; v++)
		done(p[v]);
}

/* A reload that removes a server and adds one (appended to the pool's
 * list, unlike the file) and a server re-created for a new address give
 * the table of a fresh start with the new file. */
static void test_maglev_reload_equals_fresh_start(void **state)
{
	struct pool *old = mkpool(POOL_BALANCE_MAGLEV), *fresh = mkpool(POOL_BALANCE_MAGLEV);
	const char *first[] = {"a", "b", "c", "d", "e"}, *second[] = {"f", "a", "e", "d", "b"};

	(void)state;
	for (size_t i = 0; i < 5; i++)
		add(old, first[i], 1, 0, false);
	assert_int_equal(pool_publish(old), 0);
	/* as update_pool does: c removed, f added, b has a new address */
	pool_remove_server(old, pool_find_server(old, "c"));
	pool_remove_server(old, pool_find_server(old, "b"));
	add(old, "f", 1, 0, false);
	add(old, "b", 1, 0, false);
	assert_int_equal(pool_publish(old), 0);
	for (size_t i = 0; i < 5; i++)
		add(fresh, second[i], 1, 0, false);
	assert_int_equal(pool_publish(fresh), 0);
	assert_same_tables(old, fresh);
	done(old);
	done(fresh);
}

/* The table has the configured size whatever the health, and is rebuilt
 * only when the members change. */
static void test_maglev_size_fixed(void **state)
{
	struct pool *p = mkpool(POOL_BALANCE_MAGLEV);
	struct pool_server *s[12];
	const int32_t *base;

	(void)state;
	assert_int_equal(p->maglev_size, 65537);
	p->maglev_size = 1021;
	for (int i = 0; i < 12; i++) {
		char name[8];
		size_t off = 0;

		util_bufprintf(name, sizeof(name), &off, "s%d", i);
		s[i] = add(p, name, 1, 0, false);
	}
	assert_int_equal(pool_publish(p), 0);
	base = p->maglev[0].table;
	for (int down = 0; down < 11; down++) {
		set_down(s[down], true);
		pool_publish(p);
		assert_int_equal(atomic_load(&p->lb)->primary.maglev_size, 1021);
		assert_int_equal(atomic_load(&p->lb)->primary.n, (size_t)(11 - down));
	}
	assert_ptr_equal(p->maglev[0].table, base); /* health: refill only */
	pool_server_operator_weight(s[11], 2);
	assert_true(p->maglev[0].table != base); /* weights: a new base */
	done(p);
}

/* For every pool size from 2 to 40, one server going down, drained or in
 * maint moves exactly its own clients; the others keep their server. */
static void test_maglev_down_moves_only_its_clients(void **state)
{
	enum { CLIENTS = 4000 };
	static struct pool_server *before[CLIENTS];

	(void)state;
	for (size_t n = 2; n <= 40; n++) {
		struct pool *p = mkpool(POOL_BALANCE_MAGLEV);
		struct pool_server *victim = NULL, *s;
		uint32_t moved = 0, victims = 0;

		for (size_t i = 0; i < n; i++) {
			char name[16];
			size_t off = 0;

			util_bufprintf(name, sizeof(name), &off, "srv-%zu", (i * 7) % n);
			s = add(p, name, 1, 0, false);
			if (i == n / 2)
				victim = s;
		}
		assert_int_equal(pool_publish(p), 0);
		for (size_t c = 0; c < CLIENTS; c++) {
			before[c] = take(p, util_hash64(&c, sizeof(c), 9));
			pool_server_release(before[c]);
		}
		switch (n % 3) {
		case 0:
			set_down(victim, true);
			pool_publish(p);
			break;
		case 1:
			pool_server_operator_admin(victim, POOL_ADMIN_DRAIN, 1000);
			break;
		default:
			pool_server_operator_admin(victim, POOL_ADMIN_MAINT, 1000);
			break;
		}
		for (size_t c = 0; c < CLIENTS; c++) {
			s = take(p, util_hash64(&c, sizeof(c), 9));
			pool_server_release(s);
			assert_ptr_not_equal(s, victim);
			victims += before[c] == victim;
			moved += s != before[c];
		}
		assert_int_equal(moved, victims);
		assert_true(victims > 0);
		done(p);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_backup_when_no_primary_usable),
	    cmocka_unit_test(test_busy_primaries_queue_not_backup),
	    cmocka_unit_test(test_maxconn_exact),
	    cmocka_unit_test(test_maxconn_skips_full_server),
	    cmocka_unit_test(test_maxconn_race),
	    cmocka_unit_test(test_drain_and_weight0_take_nothing_new),
	    cmocka_unit_test(test_no_snapshot_no_server),
	    cmocka_unit_test(test_slowstart_ramps_share),
	    cmocka_unit_test(test_queue_verdict_and_release),
	    cmocka_unit_test(test_maglev_table_ignores_file_order),
	    cmocka_unit_test(test_maglev_reload_equals_fresh_start),
	    cmocka_unit_test(test_maglev_size_fixed),
	    cmocka_unit_test(test_maglev_down_moves_only_its_clients),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
