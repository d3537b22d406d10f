/* log: every thread formats into its own single-producer ring; one log
 * thread drains the rings to the output fd. Producers never block and never
 * take a lock after their ring is registered; a full ring drops the line and
 * counts it. */
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

#include "sluice/log.h"
#include "sluice/util.h"

#define LOG_RING_SIZE (256 * 1024) /* power of two */
#define LOG_LINE_MAX 2048

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
static int log_fd = 2;
static int log_wake_fd = -1;
static pthread_t log_thread;

static const char *const log_names[] = { "error", "warning", "notice", "info", "debug" };

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

void log_set_level(enum log_level lvl)
{
	atomic_store(&log_threshold, (int)lvl);
}

bool log_enabled(enum log_level lvl)
{
	return (int)lvl <= atomic_load_explicit(&log_threshold, memory_order_relaxed);
}

static void write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return;
		}
		p += w;
		n -= (size_t)w;
	}
}

/* Drain every ring once. Returns the number of bytes written. */
static size_t log_drain(void)
{
	size_t total = 0;

	for (struct log_ring *r = atomic_load(&log_rings); r != NULL; r = r->next) {
		uint64_t head = atomic_load_explicit(&r->head, memory_order_acquire);
		uint64_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);

		while (tail != head) {
			size_t off = (size_t)(tail & (LOG_RING_SIZE - 1));
			size_t n = UTIL_MIN((size_t)(head - tail), LOG_RING_SIZE - off);

			write_all(log_fd, r->data + off, n);
			tail += n;
			total += n;
		}
		atomic_store_explicit(&r->tail, tail, memory_order_release);
	}
	return total;
}

static void *log_thread_main(void *arg)
{
	(void)arg;
	for (;;) {
		struct pollfd pfd = { .fd = log_wake_fd, .events = POLLIN };
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

int log_start(int fd)
{
	if (atomic_load(&log_async))
		return 0;
	log_fd = fd;
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
	uint64_t one = 1;
	struct log_ring *r;

	if (!atomic_load(&log_async))
		return;
	atomic_store(&log_async, false);
	atomic_store(&log_stopping, true);
	if (write(log_wake_fd, &one, sizeof(one)) < 0) {
		/* the thread wakes within a second anyway */
	}
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

/* Copy a formatted line into this thread's ring, or count it as dropped. */
static void log_enqueue(const char *line, size_t n)
{
	struct log_ring *r = log_ring_get();
	uint64_t head, tail;
	size_t off, first;

	if (r == NULL)
		return;
	head = atomic_load_explicit(&r->head, memory_order_relaxed);
	tail = atomic_load_explicit(&r->tail, memory_order_acquire);
	if (LOG_RING_SIZE - (size_t)(head - tail) < n) {
		atomic_fetch_add_explicit(&r->dropped, 1, memory_order_relaxed);
		return;
	}
	off = (size_t)(head & (LOG_RING_SIZE - 1));
	first = UTIL_MIN(n, LOG_RING_SIZE - off);
	memcpy(r->data + off, line, first);
	memcpy(r->data, line + first, n - first);
	atomic_store_explicit(&r->head, head + n, memory_order_release);
	if (atomic_load(&log_sleeping)) {
		uint64_t one = 1;

		if (write(log_wake_fd, &one, sizeof(one)) < 0) {
			/* eventfd full means the thread is awake already */
		}
	}
}

void log_msg(enum log_level lvl, const char *fmt, ...)
{
	char line[LOG_LINE_MAX];
	struct timespec ts;
	struct tm tm;
	size_t off = 0;
	va_list ap;
	int n;

	if (!log_enabled(lvl))
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	off = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
	util_bufprintf(line, sizeof(line), &off, ".%03ldZ %s: ", ts.tv_nsec / 1000000,
		       log_level_name(lvl));
	if (log_my_ring != NULL && atomic_load_explicit(&log_my_ring->dropped,
						       memory_order_relaxed) > 0) {
		uint64_t d = atomic_exchange(&log_my_ring->dropped, 0);

		util_bufprintf(line, sizeof(line), &off, "(%llu log lines dropped) ",
			       (unsigned long long)d);
	}
	va_start(ap, fmt);
	n = vsnprintf(line + off, sizeof(line) - off - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	off += UTIL_MIN((size_t)n, sizeof(line) - off - 2);
	line[off++] = '\n';
	if (atomic_load(&log_async))
		log_enqueue(line, off);
	else
		write_all(2, line, off);
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
