/* util/resolve: host names to addresses through the system resolver. The
 * only name lookups in sluice: core resolves the server names of a file
 * when it is loaded (start, check, reload) and for `server add`. All names
 * are looked up in parallel by helper threads, and the caller waits for at
 * most a deadline, so a DNS server that does not answer holds the control
 * thread for a bounded time; a lookup still running then finishes unseen. */
#include <netdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "sluice/util.h"

#define RESOLVE_THREADS 16
#define RESOLVE_MAX_HELPERS 64 /* alive, in all batches */

static _Atomic unsigned resolve_helpers;

/* Shared by the caller and the helper threads; the last one to let go of
 * it (refs) frees it. */
struct resolve_batch {
	pthread_mutex_t lock;
	pthread_cond_t done;
	unsigned refs;
	size_t n, next, pending;
	bool abandoned; /* the caller gave up waiting: take no new name */
	struct util_resolve_req reqs[];
};

static int resolve_one(const char *host, uint16_t port, const struct util_addr *prev,
		       struct util_addr *out, char *err, size_t errlen)
{
	struct addrinfo hints, *res = NULL;
	const struct addrinfo *pick;
	int rc;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_protocol = IPPROTO_TCP;
	rc = getaddrinfo(host, NULL, &hints, &res);
	if (rc != 0 || res == NULL) {
		snprintf(err, errlen, "%s", rc != 0 ? gai_strerror(rc) : "no address");
		if (res != NULL)
			freeaddrinfo(res);
		return -1;
	}
	pick = res;
	for (const struct addrinfo *ai = res; ai != NULL && prev->len != 0; ai = ai->ai_next) {
		struct util_addr a = { 0 };

		memcpy(&a.u.ss, ai->ai_addr, ai->ai_addrlen);
		a.len = ai->ai_addrlen;
		util_addr_set_port(&a, port);
		if (util_addr_equal(&a, prev)) {
			pick = ai;
			break;
		}
	}
	memset(out, 0, sizeof(*out));
	memcpy(&out->u.ss, pick->ai_addr, pick->ai_addrlen);
	out->len = pick->ai_addrlen;
	util_addr_set_port(out, port);
	freeaddrinfo(res);
	return 0;
}

static void batch_put(struct resolve_batch *b)
{
	bool last = --b->refs == 0; /* under b->lock */

	pthread_mutex_unlock(&b->lock);
	if (!last)
		return;
	pthread_cond_destroy(&b->done);
	pthread_mutex_destroy(&b->lock);
	free(b);
}

static void *resolve_thread(void *arg)
{
	struct resolve_batch *b = arg;

	pthread_mutex_lock(&b->lock);
	while (!b->abandoned && b->next < b->n) {
		struct util_resolve_req r = b->reqs[b->next];
		size_t i = b->next++;

		b->reqs[i].started = true;
		pthread_mutex_unlock(&b->lock);
		r.rc = resolve_one(r.host, r.port, &r.prev, &r.addr, r.err, sizeof(r.err));
		pthread_mutex_lock(&b->lock);
		b->reqs[i] = r;
		b->reqs[i].done = true;
		if (--b->pending == 0)
			pthread_cond_signal(&b->done);
	}
	batch_put(b);
	atomic_fetch_sub(&resolve_helpers, 1);
	return NULL;
}

void util_resolve_all(struct util_resolve_req *reqs, size_t n, uint32_t timeout_ms)
{
	struct resolve_batch *b;
	struct timespec until;
	unsigned nthreads = n < RESOLVE_THREADS ? (unsigned)n : RESOLVE_THREADS;
	pthread_attr_t attr;
	pthread_condattr_t ca;

	for (size_t i = 0; i < n; i++) {
		reqs[i].rc = -1;
		reqs[i].started = reqs[i].done = false;
		snprintf(reqs[i].err, sizeof(reqs[i].err), "no answer within %ums", timeout_ms);
	}
	if (n == 0)
		return;
	b = calloc(1, sizeof(*b) + n * sizeof(*reqs));
	if (b == NULL) {
		for (size_t i = 0; i < n; i++)
			snprintf(reqs[i].err, sizeof(reqs[i].err), "out of memory");
		return;
	}
	pthread_mutex_init(&b->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&b->done, &ca);
	pthread_condattr_destroy(&ca);
	memcpy(b->reqs, reqs, n * sizeof(*reqs));
	b->n = b->pending = n;
	b->refs = 1;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_mutex_lock(&b->lock);
	pthread_attr_setstacksize(&attr, 256 * 1024);
	for (unsigned t = 0; t < nthreads; t++) {
		pthread_t tid;

		if (atomic_fetch_add(&resolve_helpers, 1) >= RESOLVE_MAX_HELPERS) {
			atomic_fetch_sub(&resolve_helpers, 1);
			break;
		}
		b->refs++;
		if (pthread_create(&tid, &attr, resolve_thread, b) != 0) {
			b->refs--;
			atomic_fetch_sub(&resolve_helpers, 1);
		}
	}
	pthread_attr_destroy(&attr);
	if (b->refs == 1) { /* no helper: never look up here, without a deadline */
		for (size_t i = 0; i < n; i++)
			snprintf(reqs[i].err, sizeof(reqs[i].err),
				 "cannot start a lookup (%u still running)",
				 atomic_load(&resolve_helpers));
		batch_put(b);
		return;
	}
	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += timeout_ms / 1000;
	until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	while (b->pending > 0) {
		if (pthread_cond_timedwait(&b->done, &b->lock, &until) != 0 && b->pending > 0)
			break; /* deadline (or error): what is not done stays unanswered */
	}
	b->abandoned = true;
	for (size_t i = 0; i < n; i++) {
		if (b->reqs[i].done)
			reqs[i] = b->reqs[i];
		else if (!b->reqs[i].started)
			snprintf(reqs[i].err, sizeof(reqs[i].err),
				 "not looked up within %ums (too many names)", timeout_ms);
	}
	batch_put(b);
}

int util_addr_resolve(const char *host, uint16_t port, struct util_addr *out, char *err,
		      size_t errlen)
{
	struct util_resolve_req r = { .port = port };

	util_strlcpy(r.host, host, sizeof(r.host));
	util_resolve_all(&r, 1, UTIL_RESOLVE_TIMEOUT_MS);
	if (r.rc == 0)
		*out = r.addr;
	else
		snprintf(err, errlen, "%s", r.err);
	return r.rc;
}
