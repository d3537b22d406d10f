/* log: every thread queues its lines in its own single-producer ring; one log
 * thread drains the rings and hands each line to the targets (log_target.c).
 * Producers never block and never take a lock after their ring is
 * registered; a full ring drops the line and counts it. The set of targets
 * belongs to the log thread while it runs, to the logging caller otherwise. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "log-int.h"
#include "sluice/util.h"

#define LOG_RING_SIZE (256 * 1024) /* power of two */

/* One per thread that logs; owned by the global list, freed by log_stop(). */
struct log_ring {
	struct log_ring *next;
	_Atomic uint64_t head; /* written by the producer */
	_Atomic uint64_t tail; /* written by the log thread */
	_Atomic uint64_t dropped;
	char data[LOG_RING_SIZE];
};

static _Atomic int log_threshold = LOGL_INFO;
static pthread_mutex_t log_rings_lock = PTHREAD_MUTEX_INITIALIZER;
static struct log_ring *_Atomic log_rings;
static _Thread_local struct log_ring *log_my_ring;
static _Atomic bool log_async;
static _Atomic bool log_stopping;
static _Atomic bool log_sleeping;
static _Atomic uint64_t log_queue_drops;
static int log_wake_fd = -1;
static pthread_t log_thread;

/* log_cur is used by the log thread (or by the synchronous caller under
 * log_sync_lock); log_pending is handed over under log_set_lock, which
 * also guards reading log_cur's counters from other threads. */
static pthread_mutex_t log_set_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t log_sync_lock = PTHREAD_MUTEX_INITIALIZER;
static struct log_set *log_cur;
static struct log_set *log_pending;

static const char *const log_names[] = {"error", "warning", "notice", "info", "debug"};

int log_level_parse(const char *s, enum log_level *out)
{
	for (size_t i = 0; i < UTIL_ARRAY_LEN(log_names); i++) {
		if (strcmp(s, log_names[i]) == 0 || (i == 0 && strcmp(s, "err") == 0)) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	return -1;
}

const char *log_level_name(enum log_level lvl)
{
	return (unsigned)lvl < UTIL_ARRAY_LEN(log_names) ? log_names[lvl] : "?";
}

bool log_enabled(enum log_level lvl)
{
	return (int)lvl <= atomic_load_explicit(&log_threshold, memory_order_relaxed);
}

void log_set_level(enum log_level lvl)
{
	atomic_store(&log_threshold, (int)lvl);
}

/* Take the pending set, if any; the old one is flushed and freed. Called
 * by whoever owns log_cur. */
static void adopt_pending(void)
{
	struct log_set *n, *old;

	pthread_mutex_lock(&log_set_lock);
	n = log_pending;
	log_pending = NULL;
	old = log_cur;
	if (n != NULL) {
		if (old != NULL) {
			log_set_flush(old);
			log_set_carry(n, old);
		}
		log_cur = n;
	}
	pthread_mutex_unlock(&log_set_lock);
	if (n != NULL)
		log_set_free(old);
}

static void ring_copy_out(const struct log_ring *r, uint64_t pos, void *dst, size_t n)
{
	size_t off = (size_t)(pos & (LOG_RING_SIZE - 1));
	size_t first = UTIL_MIN(n, LOG_RING_SIZE - off);

	memcpy(dst, r->data + off, first);
	memcpy((char *)dst + first, r->data, n - first);
}

/* Say which targets drop lines; called without log_sync_lock held. */
static void report_drops(struct log_set *s, uint64_t now_ms)
{
	char msg[512];

	while (s != NULL && log_set_report(s, now_ms, msg, sizeof(msg)))
		log_msg(LOGL_WARNING, "%s", msg);
}

/* Drain every ring once. Returns the number of lines handed out. */
static size_t log_drain(void)
{
	char text[LOG_LINE_MAX];
	uint64_t now = util_now_ms();
	size_t lines = 0;

	adopt_pending();
	for (struct log_ring *r = atomic_load(&log_rings); r != NULL; r = r->next) {
		uint64_t head = atomic_load_explicit(&r->head, memory_order_acquire);
		uint64_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);

		while (tail != head) {
			struct log_rec rec;

			ring_copy_out(r, tail, &rec, sizeof(rec));
			ring_copy_out(r, tail + sizeof(rec), text, rec.len);
			tail += sizeof(rec) + rec.len;
			if (log_cur != NULL)
				log_set_put(log_cur, &rec, text, now);
			lines++;
		}
		atomic_store_explicit(&r->tail, tail, memory_order_release);
	}
	if (log_cur != NULL) {
		log_set_flush(log_cur);
		report_drops(log_cur, now);
	}
	return lines;
}

static void *log_thread_main(void *arg)
{
	(void)arg;
	for (;;) {
		struct pollfd pfd = {.fd = log_wake_fd, .events = POLLIN};
		uint64_t v;

		log_drain();
		atomic_store(&log_sleeping, true);
		/* a producer that wrote before seeing the flag is caught here */
		if (log_drain() == 0 && !atomic_load(&log_stopping))
			poll(&pfd, 1, 1000);
		atomic_store(&log_sleeping, false);
		if (read(log_wake_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
			break;
		if (atomic_load(&log_stopping)) {
			log_drain();
			break;
		}
	}
	return NULL;
}

static void wake_thread(void)
{
	uint64_t one = 1;

	if (write(log_wake_fd, &one, sizeof(one)) < 0) {
		/* eventfd full means the thread is awake already */
	}
}

void log_set_install(struct log_set *s)
{
	atomic_store(&log_threshold, (int)s->max_level);
	pthread_mutex_lock(&log_set_lock);
	log_set_free(log_pending);
	log_pending = s;
	pthread_mutex_unlock(&log_set_lock);
	if (atomic_load(&log_async)) {
		wake_thread();
		return;
	}
	pthread_mutex_lock(&log_sync_lock);
	adopt_pending();
	pthread_mutex_unlock(&log_sync_lock);
}

int log_configure(const struct log_target_conf *targets, size_t n, char *err, size_t errlen)
{
	struct log_set *s = log_set_new(targets, n, err, errlen);

	if (s == NULL)
		return -1;
	log_set_install(s);
	return 0;
}

int log_start(void)
{
	if (atomic_load(&log_async))
		return 0;
	log_wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (log_wake_fd < 0)
		return -1;
	atomic_store(&log_stopping, false);
	if (pthread_create(&log_thread, NULL, log_thread_main, NULL) != 0) {
		close(log_wake_fd);
		log_wake_fd = -1;
		return -1;
	}
	atomic_store(&log_async, true);
	return 0;
}

void log_stop(void)
{
	struct log_ring *r;

	if (atomic_load(&log_async)) {
		atomic_store(&log_async, false);
		atomic_store(&log_stopping, true);
		wake_thread();
		pthread_join(log_thread, NULL);
		close(log_wake_fd);
		log_wake_fd = -1;
		pthread_mutex_lock(&log_rings_lock);
		r = atomic_exchange(&log_rings, NULL);
		while (r != NULL) {
			struct log_ring *next = r->next;

			free(r);
			r = next;
		}
		pthread_mutex_unlock(&log_rings_lock);
		log_my_ring = NULL;
	}
	pthread_mutex_lock(&log_set_lock);
	log_set_free(log_pending);
	log_set_free(log_cur);
	log_pending = log_cur = NULL;
	pthread_mutex_unlock(&log_set_lock);
	atomic_store(&log_threshold, LOGL_INFO);
}

static struct log_ring *log_ring_get(void)
{
	struct log_ring *r = log_my_ring;

	if (r != NULL)
		return r;
	r = calloc(1, sizeof(*r));
	if (r == NULL)
		return NULL;
	pthread_mutex_lock(&log_rings_lock);
	r->next = atomic_load(&log_rings);
	atomic_store(&log_rings, r);
	pthread_mutex_unlock(&log_rings_lock);
	log_my_ring = r;
	return r;
}

/* Copy a record (header and text) into this thread's ring, or count it as
 * dropped. */
static void log_enqueue(const char *rec, size_t n)
{
	struct log_ring *r = log_ring_get();
	uint64_t head, tail;
	size_t off, first;

	if (r == NULL) {
		atomic_fetch_add_explicit(&log_queue_drops, 1, memory_order_relaxed);
		return;
	}
	head = atomic_load_explicit(&r->head, memory_order_relaxed);
	tail = atomic_load_explicit(&r->tail, memory_order_acquire);
	if (LOG_RING_SIZE - (size_t)(head - tail) < n) {
		atomic_fetch_add_explicit(&r->dropped, 1, memory_order_relaxed);
		atomic_fetch_add_explicit(&log_queue_drops, 1, memory_order_relaxed);
		return;
	}
	off = (size_t)(head & (LOG_RING_SIZE - 1));
	first = UTIL_MIN(n, LOG_RING_SIZE - off);
	memcpy(r->data + off, rec, first);
	memcpy(r->data, rec + first, n - first);
	atomic_store_explicit(&r->head, head + n, memory_order_release);
	if (atomic_load(&log_sleeping))
		wake_thread();
}

/* Without the log thread: the caller writes to the targets itself. */
static void log_sync_put(const struct log_rec *rec, const char *text)
{
	uint64_t now = util_now_ms();
	struct log_set *s;

	pthread_mutex_lock(&log_sync_lock);
	adopt_pending();
	s = log_cur;
	if (s == NULL) {
		char dflt_err[64];

		/* nothing configured yet: stderr at info, as the default */
		s = log_set_new(NULL, 0, dflt_err, sizeof(dflt_err));
		pthread_mutex_lock(&log_set_lock);
		log_cur = s;
		pthread_mutex_unlock(&log_set_lock);
	}
	if (s != NULL) {
		log_set_put(s, rec, text, now);
		log_set_flush(s);
	}
	pthread_mutex_unlock(&log_sync_lock);
	/* only the owner frees a set; with no thread that is us, and a report
	 * logs synchronously again (the failing target counts, reports no more) */
	if (s != NULL && !atomic_load(&log_async))
		report_drops(s, now);
}

void log_msg(enum log_level lvl, const char *fmt, ...)
{
	char buf[sizeof(struct log_rec) + LOG_LINE_MAX];
	char *text = buf + sizeof(struct log_rec);
	struct log_rec rec = {.level = (uint32_t)lvl};
	struct timespec ts;
	size_t off = 0;
	va_list ap;
	int n;

	if (!log_enabled(lvl))
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	rec.sec = ts.tv_sec;
	rec.nsec = ts.tv_nsec;
	if (log_my_ring != NULL &&
	    atomic_load_explicit(&log_my_ring->dropped, memory_order_relaxed) > 0) {
		uint64_t d = atomic_exchange(&log_my_ring->dropped, 0);

		util_bufprintf(text, LOG_LINE_MAX, &off, "(%llu log lines dropped) ",
			       (unsigned long long)d);
	}
	va_start(ap, fmt);
	n = vsnprintf(text + off, LOG_LINE_MAX - off, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	off += UTIL_MIN((size_t)n, LOG_LINE_MAX - off - 1);
	rec.len = (uint32_t)off;
	memcpy(buf, &rec, sizeof(rec));
	if (atomic_load(&log_async))
		log_enqueue(buf, sizeof(rec) + off);
	else
		log_sync_put(&rec, text);
}

bool log_ratelimit_ok(struct log_ratelimit *rl, uint64_t now_ms, uint32_t burst,
		      uint32_t *suppressed_out)
{
	if (now_ms - rl->window_ms >= 1000) {
		rl->window_ms = now_ms;
		rl->count = 0;
	}
	if (rl->count >= burst) {
		rl->suppressed++;
		return false;
	}
	rl->count++;
	*suppressed_out = rl->suppressed;
	rl->suppressed = 0;
	return true;
}

void log_ratelimited(struct log_ratelimit *rl, uint64_t now_ms, uint32_t burst, enum log_level lvl,
		     const char *fmt, ...)
{
	char msg[LOG_LINE_MAX - 64];
	uint32_t suppressed = 0;
	va_list ap;

	if (!log_enabled(lvl) || !log_ratelimit_ok(rl, now_ms, burst, &suppressed))
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (suppressed > 0)
		log_msg(lvl, "%s (%u similar messages suppressed)", msg, suppressed);
	else
		log_msg(lvl, "%s", msg);
}

size_t log_stats(struct log_target_stats *out, size_t max)
{
	size_t n = 0;

	pthread_mutex_lock(&log_set_lock);
	for (size_t i = 0; log_cur != NULL && i < log_cur->n && n < max; i++, n++) {
		const struct log_target *t = &log_cur->t[i];

		util_strlcpy(out[n].name, t->name, sizeof(out[n].name));
		out[n].sent = atomic_load_explicit(&t->sent, memory_order_relaxed);
		out[n].dropped = atomic_load_explicit(&t->dropped, memory_order_relaxed);
	}
	pthread_mutex_unlock(&log_set_lock);
	return n;
}

uint64_t log_queue_dropped(void)
{
	return atomic_load_explicit(&log_queue_drops, memory_order_relaxed);
}
