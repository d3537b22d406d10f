/* log_target: the places log lines go. Streams (stderr, stdout) gather
 * lines and write them in batches; a syslog socket gets one RFC 3164
 * datagram per line as syslog(3) sends it; a UDP collector gets one
 * RFC 5424 message per line (RFC 5426). Sockets never block: a line a
 * socket cannot take is counted as dropped, never waited for. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "log-int.h"
#include "sluice/util.h"

/* RFC 5424 section 6.2.1, table 1; "security" and the clock daemons have
 * no name in syslog(3) and are left out. */
static const char *const facility_names[] = {
    "kern",   "user",	"mail",	    "daemon", "auth",	"syslog", "lpr",    "news",
    "uucp",   "cron",	"authpriv", "ftp",    NULL,	NULL,	  NULL,	    NULL,
    "local0", "local1", "local2",   "local3", "local4", "local5", "local6", "local7",
};

/* RFC 5424 table 2: error 3, warning 4, notice 5, informational 6, debug 7. */
static unsigned severity_of(enum log_level lvl)
{
	return 3u + (unsigned)lvl;
}

int log_facility_parse(const char *s, uint32_t *out)
{
	for (size_t i = 0; i < UTIL_ARRAY_LEN(facility_names); i++) {
		if (facility_names[i] != NULL && strcmp(s, facility_names[i]) == 0) {
			*out = (uint32_t)i;
			return 0;
		}
	}
	return -1;
}

const char *log_facility_name(uint32_t facility)
{
	if (facility < UTIL_ARRAY_LEN(facility_names) && facility_names[facility] != NULL)
		return facility_names[facility];
	return "?";
}

const char *log_target_describe(const struct log_target_conf *t, char *buf, size_t len)
{
	char a[UTIL_ADDR_STRLEN];

	switch (t->kind) {
	case LOG_TARGET_STDERR:
		snprintf(buf, len, "stderr");
		break;
	case LOG_TARGET_STDOUT:
		snprintf(buf, len, "stdout");
		break;
	case LOG_TARGET_SYSLOG:
		snprintf(buf, len, "syslog %s", t->path);
		break;
	case LOG_TARGET_UDP:
		snprintf(buf, len, "udp %s", util_addr_fmt(&t->addr, a, sizeof(a)));
		break;
	}
	return buf;
}

/* Connect a socket target; on failure fd stays -1 and the next attempt
 * waits LOG_RETRY_MS. Returns 0, or -1 with errno. */
static int target_connect(struct log_target *t, uint64_t now_ms)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	const struct sockaddr *sa;
	socklen_t salen;
	int fd, e;

	t->retry_ms = now_ms + LOG_RETRY_MS;
	if (t->conf.kind == LOG_TARGET_SYSLOG) {
		memcpy(sun.sun_path, t->conf.path, strlen(t->conf.path) + 1);
		sa = (const struct sockaddr *)&sun;
		salen = sizeof(sun);
		fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	} else {
		sa = &t->conf.addr.u.sa;
		salen = t->conf.addr.len;
		fd = socket(sa->sa_family, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	}
	if (fd < 0)
		return -1;
	if (connect(fd, sa, salen) < 0) {
		e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	t->fd = fd;
	return 0;
}

struct log_set *log_set_new(const struct log_target_conf *targets, size_t n, char *err,
			    size_t errlen)
{
	static const struct log_target_conf dflt = {.kind = LOG_TARGET_STDERR, .level = LOGL_INFO};
	struct log_set *s = calloc(1, sizeof(*s));
	uint64_t now = util_now_ms();

	if (s == NULL) {
		snprintf(err, errlen, "log: out of memory");
		return NULL;
	}
	if (n == 0) {
		targets = &dflt;
		n = 1;
	}
	s->pid = getpid();
	if (gethostname(s->host, sizeof(s->host) - 1) < 0 || s->host[0] == '\0')
		util_strlcpy(s->host, "-", sizeof(s->host));
	/* RFC 5424 HOSTNAME is PRINTUSASCII: no spaces, nothing outside 33-126 */
	for (char *p = s->host; *p != '\0'; p++)
		if (*p < 33 || *p > 126)
			*p = '_';
	s->max_level = LOGL_ERR;
	for (size_t i = 0; i < n && i < LOG_MAX_TARGETS; i++) {
		struct log_target *t = &s->t[i];

		t->conf = targets[i];
		t->fd = -1;
		log_target_describe(&t->conf, t->name, sizeof(t->name));
		if (t->conf.level > s->max_level)
			s->max_level = t->conf.level;
		s->n++;
		if (t->conf.kind == LOG_TARGET_STDERR || t->conf.kind == LOG_TARGET_STDOUT) {
			t->fd = t->conf.kind == LOG_TARGET_STDOUT ? 1 : 2;
			t->buf = malloc(LOG_STREAM_BUF);
			if (t->buf == NULL) {
				snprintf(err, errlen, "log %s: out of memory", t->name);
				log_set_free(s);
				return NULL;
			}
			continue;
		}
		if (t->conf.tag[0] == '\0')
			util_strlcpy(t->conf.tag, LOG_DEFAULT_TAG, sizeof(t->conf.tag));
		if (target_connect(t, now) < 0) {
			/* a peer that is not there yet is retried; no socket at all is fatal */
			if (errno == EMFILE || errno == ENFILE || errno == ENOMEM ||
			    errno == EAFNOSUPPORT) {
				snprintf(err, errlen, "log %s: cannot create a socket: %s", t->name,
					 strerror(errno));
				log_set_free(s);
				return NULL;
			}
			t->last_errno = errno;
		}
	}
	return s;
}

void log_set_free(struct log_set *s)
{
	if (s == NULL)
		return;
	for (size_t i = 0; i < s->n; i++) {
		struct log_target *t = &s->t[i];

		if (t->conf.kind == LOG_TARGET_SYSLOG || t->conf.kind == LOG_TARGET_UDP) {
			if (t->fd >= 0)
				close(t->fd);
		}
		free(t->buf);
	}
	free(s);
}

void log_set_carry(struct log_set *to, const struct log_set *from)
{
	for (size_t i = 0; i < to->n; i++) {
		for (size_t j = 0; j < from->n; j++) {
			if (strcmp(to->t[i].name, from->t[j].name) != 0)
				continue;
			atomic_store(&to->t[i].sent, atomic_load(&from->t[j].sent));
			atomic_store(&to->t[i].dropped, atomic_load(&from->t[j].dropped));
			to->t[i].report_ms = from->t[j].report_ms;
			to->t[i].dropped_reported = from->t[j].dropped_reported;
			break;
		}
	}
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

void log_set_flush(struct log_set *s)
{
	for (size_t i = 0; i < s->n; i++) {
		struct log_target *t = &s->t[i];

		if (t->buf != NULL && t->buflen > 0) {
			write_all(t->fd, t->buf, t->buflen);
			t->buflen = 0;
		}
	}
}

/* The time prefix of r's second in the target's format, cached per second. */
static void time_prefix(struct log_target *t, const struct log_rec *r)
{
	time_t sec = (time_t)r->sec;
	struct tm tm;

	if (t->tslen > 0 && t->ts_sec == r->sec)
		return;
	t->ts_sec = r->sec;
	if (t->conf.kind == LOG_TARGET_SYSLOG) {
		/* what syslog(3) sends: local time, "Mmm dd hh:mm:ss" */
		localtime_r(&sec, &tm);
		t->tslen = strftime(t->ts, sizeof(t->ts), "%b %e %H:%M:%S", &tm);
	} else {
		gmtime_r(&sec, &tm);
		t->tslen = strftime(t->ts, sizeof(t->ts), "%Y-%m-%dT%H:%M:%S", &tm);
	}
}

static void stream_put(struct log_target *t, const struct log_rec *r, const char *msg)
{
	char pre[96];
	size_t off;

	time_prefix(t, r);
	off = t->tslen;
	memcpy(pre, t->ts, off);
	util_bufprintf(pre, sizeof(pre), &off, ".%03dZ %s: ", (int)(r->nsec / 1000000),
		       log_level_name((enum log_level)r->level));
	if (t->buflen + off + r->len + 1 > LOG_STREAM_BUF) {
		write_all(t->fd, t->buf, t->buflen);
		t->buflen = 0;
	}
	memcpy(t->buf + t->buflen, pre, off);
	memcpy(t->buf + t->buflen + off, msg, r->len);
	t->buflen += off + r->len;
	t->buf[t->buflen++] = '\n';
	atomic_fetch_add_explicit(&t->sent, 1, memory_order_relaxed);
}

static void socket_put(struct log_set *s, struct log_target *t, const struct log_rec *r,
		       const char *msg, uint64_t now_ms)
{
	char dgram[LOG_LINE_MAX + 512];
	unsigned pri = t->conf.facility * 8 + severity_of((enum log_level)r->level);
	size_t off = 0, n;

	if (t->fd < 0) {
		if (now_ms >= t->retry_ms && target_connect(t, now_ms) < 0)
			t->last_errno = errno;
		if (t->fd < 0) {
			atomic_fetch_add_explicit(&t->dropped, 1, memory_order_relaxed);
			return;
		}
	}
	time_prefix(t, r);
	if (t->conf.kind == LOG_TARGET_SYSLOG)
		util_bufprintf(dgram, sizeof(dgram), &off, "<%u>%s %s[%d]: ", pri, t->ts,
			       t->conf.tag, (int)s->pid);
	else /* RFC 5424 section 6: <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD MSG */
		util_bufprintf(dgram, sizeof(dgram), &off, "<%u>1 %s.%03dZ %s %s %d - - ", pri,
			       t->ts, (int)(r->nsec / 1000000), s->host, t->conf.tag, (int)s->pid);
	n = UTIL_MIN((size_t)r->len, sizeof(dgram) - off);
	memcpy(dgram + off, msg, n);
	if (send(t->fd, dgram, off + n, MSG_DONTWAIT | MSG_NOSIGNAL) >= 0) {
		atomic_fetch_add_explicit(&t->sent, 1, memory_order_relaxed);
		return;
	}
	t->last_errno = errno;
	atomic_fetch_add_explicit(&t->dropped, 1, memory_order_relaxed);
	/* a syslog daemon that restarted has a new socket: connect again (a
	 * connected UDP socket stays usable after an ICMP error) */
	if (t->conf.kind == LOG_TARGET_SYSLOG && errno != EAGAIN && errno != ENOBUFS) {
		close(t->fd);
		t->fd = -1;
		t->retry_ms = now_ms;
	}
}

void log_set_put(struct log_set *s, const struct log_rec *r, const char *msg, uint64_t now_ms)
{
	for (size_t i = 0; i < s->n; i++) {
		struct log_target *t = &s->t[i];

		if (r->level > (uint32_t)t->conf.level)
			continue;
		if (t->buf != NULL)
			stream_put(t, r, msg);
		else
			socket_put(s, t, r, msg, now_ms);
	}
}

bool log_set_report(struct log_set *s, uint64_t now_ms, char *buf, size_t len)
{
	for (size_t i = 0; i < s->n; i++) {
		struct log_target *t = &s->t[i];
		uint64_t d = atomic_load_explicit(&t->dropped, memory_order_relaxed);

		if (d == t->dropped_reported ||
		    (t->report_ms != 0 && now_ms - t->report_ms < LOG_REPORT_MS))
			continue;
		if (t->report_ms == 0)
			snprintf(buf, len,
				 "log %s: cannot send: %s; %llu lines dropped (all are counted; "
				 "this is said at most every %ds)",
				 t->name, strerror(t->last_errno),
				 (unsigned long long)(d - t->dropped_reported),
				 LOG_REPORT_MS / 1000);
		else
			snprintf(buf, len, "log %s: %llu more lines dropped: %s", t->name,
				 (unsigned long long)(d - t->dropped_reported),
				 strerror(t->last_errno));
		t->report_ms = now_ms;
		t->dropped_reported = d;
		return true;
	}
	return false;
}
