/* Unit tests for log: each target's line format (stderr, RFC 3164 on a
 * syslog socket, RFC 5424 over UDP), per-target levels, drops counted and
 * reported when a collector is gone, the log thread and a target set
 * replaced while it runs, and rate-limited lines saying how many were
 * suppressed. The sockets are the test's own, on loopback or in /tmp. */
#include <errno.h>
#include <poll.h>
#include <regex.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "sluice/log.h"
#include "sluice/util.h"

#define DEADLINE_MS 5000

struct sink {
	int fd;
	char path[108];
	struct util_addr addr;
};

static void sink_unix(struct sink *s)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};

	snprintf(s->path, sizeof(s->path), "/tmp/sluice-test-log-%d-%d.sock", (int)getpid(),
		 rand());
	memcpy(sun.sun_path, s->path, strlen(s->path) + 1);
	s->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(s->fd >= 0);
	assert_int_equal(bind(s->fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
}

static void sink_udp(struct sink *s)
{
	char err[64];

	s->fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(s->fd >= 0);
	assert_int_equal(util_addr_parse("127.0.0.1:0", true, &s->addr, err, sizeof(err)), 0);
	assert_int_equal(bind(s->fd, &s->addr.u.sa, s->addr.len), 0);
	s->addr.len = sizeof(s->addr.u.ss);
	assert_int_equal(getsockname(s->fd, &s->addr.u.sa, &s->addr.len), 0);
}

static void sink_close(struct sink *s)
{
	close(s->fd);
	if (s->path[0] != '\0')
		unlink(s->path);
}

/* The next datagram within the deadline, NUL-terminated; "" at timeout. */
static const char *sink_recv(struct sink *s, char *buf, size_t len)
{
	struct pollfd p = {.fd = s->fd, .events = POLLIN};
	ssize_t n;

	buf[0] = '\0';
	if (poll(&p, 1, DEADLINE_MS) != 1)
		return buf;
	n = recv(s->fd, buf, len - 1, 0);
	buf[n > 0 ? n : 0] = '\0';
	return buf;
}

/* Nothing more queued right now (the lines before were all received). */
static bool sink_empty(struct sink *s)
{
	char b[16];

	return recv(s->fd, b, sizeof(b), MSG_DONTWAIT) < 0 && errno == EAGAIN;
}

static void assert_match(const char *text, const char *re)
{
	regex_t rx;
	int rc;

	assert_int_equal(regcomp(&rx, re, REG_EXTENDED | REG_NOSUB), 0);
	rc = regexec(&rx, text, 0, NULL, 0);
	regfree(&rx);
	if (rc != 0)
		print_error("'%s' does not match /%s/\n", text, re);
	assert_int_equal(rc, 0);
}

static struct log_target_conf syslog_target(const struct sink *s, enum log_level lvl)
{
	struct log_target_conf t = {.kind = LOG_TARGET_SYSLOG, .level = lvl, .facility = 19};

	util_strlcpy(t.path, s->path, sizeof(t.path));
	util_strlcpy(t.tag, "lbtest", sizeof(t.tag));
	return t;
}

static struct log_target_conf udp_target(const struct sink *s, enum log_level lvl)
{
	struct log_target_conf t = {.kind = LOG_TARGET_UDP, .level = lvl, .facility = 3};

	t.addr = s->addr;
	util_strlcpy(t.tag, "sluice", sizeof(t.tag));
	return t;
}

static void test_syslog_format_and_levels(void **state)
{
	struct sink sy = {0};
	struct log_target_conf t;
	char err[128], buf[4096], want[256];

	(void)state;
	sink_unix(&sy);
	t = syslog_target(&sy, LOGL_NOTICE);
	assert_int_equal(log_configure(&t, 1, err, sizeof(err)), 0);
	log_warn("server web/a DOWN: connect refused (3/3)");
	/* RFC 3164 as syslog(3) sends it: local time, tag[pid]; local3.warning = 19*8+4 */
	snprintf(want, sizeof(want),
		 "^<156>[A-Z][a-z]{2} [ 1-3][0-9] [0-2][0-9]:[0-5][0-9]:[0-6][0-9] lbtest\\[%d\\]: "
		 "server web/a DOWN: connect refused \\(3/3\\)$",
		 (int)getpid());
	assert_match(sink_recv(&sy, buf, sizeof(buf)), want);
	log_info("conn www 127.0.0.1:1 -> web/a up=1 down=1 dur=1ms end=client-closed");
	log_notice("second");
	/* info is above this target's level: the next datagram is the notice */
	assert_match(sink_recv(&sy, buf, sizeof(buf)), "^<157>.*: second$");
	assert_true(sink_empty(&sy));
	log_stop();
	sink_close(&sy);
}

static void test_udp_rfc5424(void **state)
{
	struct sink u = {0};
	struct log_target_conf t;
	char err[128], buf[4096], want[512], host[256];

	(void)state;
	sink_udp(&u);
	t = udp_target(&u, LOGL_INFO);
	assert_int_equal(log_configure(&t, 1, err, sizeof(err)), 0);
	assert_int_equal(gethostname(host, sizeof(host)), 0);
	log_info("conn www 127.0.0.1:47608 -> web/a up=1 down=13 dur=1ms end=client-closed");
	/* RFC 5424 section 6: <PRI>VERSION SP TIMESTAMP SP HOSTNAME SP APP-NAME SP
	 * PROCID SP MSGID SP STRUCTURED-DATA SP MSG; daemon.info = 3*8+6 */
	snprintf(
	    want, sizeof(want),
	    "^<30>1 [0-9]{4}-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-6][0-9]\\.[0-9]{3}Z "
	    "%s sluice %d - - conn www 127\\.0\\.0\\.1:47608 -> web/a up=1 down=13 dur=1ms "
	    "end=client-closed$",
	    host, (int)getpid());
	assert_match(sink_recv(&u, buf, sizeof(buf)), want);
	log_debug("not sent");
	log_err("third");
	assert_match(sink_recv(&u, buf, sizeof(buf)), "^<27>1 .* - - third$");
	log_stop();
	sink_close(&u);
}

static void test_stderr_format(void **state)
{
	struct log_target_conf t = {.kind = LOG_TARGET_STDERR, .level = LOGL_INFO};
	int p[2], saved = dup(2);
	char err[128], buf[512] = "";
	ssize_t n;

	(void)state;
	assert_int_equal(pipe(p), 0);
	assert_int_equal(dup2(p[1], 2), 2);
	assert_int_equal(log_configure(&t, 1, err, sizeof(err)), 0);
	log_info("hello %d", 42);
	dup2(saved, 2);
	close(saved);
	close(p[1]);
	n = read(p[0], buf, sizeof(buf) - 1);
	close(p[0]);
	buf[n > 0 ? n : 0] = '\0';
	assert_match(buf, "^[0-9]{4}-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-6][0-9]\\."
			  "[0-9]{3}Z info: hello 42\n$");
	log_stop();
}

/* Several targets, each with its own level, through the log thread. */
static void test_thread_and_levels(void **state)
{
	struct sink a = {0}, b = {0};
	struct log_target_conf t[2];
	char err[128], buf[4096];

	(void)state;
	sink_unix(&a);
	sink_udp(&b);
	t[0] = syslog_target(&a, LOGL_WARNING);
	t[1] = udp_target(&b, LOGL_DEBUG);
	assert_int_equal(log_configure(t, 2, err, sizeof(err)), 0);
	assert_int_equal(log_start(), 0);
	assert_true(log_enabled(LOGL_DEBUG));
	log_debug("d1");
	log_warn("w1");
	assert_match(sink_recv(&b, buf, sizeof(buf)), " - - d1$");
	assert_match(sink_recv(&b, buf, sizeof(buf)), " - - w1$");
	assert_match(sink_recv(&a, buf, sizeof(buf)), "\\]: w1$");
	assert_true(sink_empty(&a));
	log_stop();
	sink_close(&a);
	sink_close(&b);
}

/* A UDP collector that is gone: the kernel refuses sends (ICMP port
 * unreachable on loopback); those lines are counted and a report goes to
 * the other targets, at most once per 10 s. */
static void test_drops_counted_and_reported(void **state)
{
	struct sink gone = {0}, sy = {0};
	struct log_target_conf t[2];
	struct log_target_stats st[LOG_MAX_TARGETS];
	char err[128], buf[4096];
	size_t n;

	(void)state;
	sink_udp(&gone);
	sink_unix(&sy);
	t[0] = udp_target(&gone, LOGL_INFO);
	t[1] = syslog_target(&sy, LOGL_WARNING);
	close(gone.fd); /* nobody listens on that port any more */
	assert_int_equal(log_configure(t, 2, err, sizeof(err)), 0);
	for (int i = 0; i < 20; i++)
		log_info("line %d", i);
	n = log_stats(st, LOG_MAX_TARGETS);
	assert_int_equal(n, 2);
	assert_true(strncmp(st[0].name, "udp 127.0.0.1:", 14) == 0);
	assert_true(st[0].dropped > 0);
	assert_int_equal(st[0].sent + st[0].dropped, 20 + 1); /* and the report itself */
	assert_match(sink_recv(&sy, buf, sizeof(buf)),
		     "lbtest\\[[0-9]+\\]: log udp 127\\.0\\.0\\.1:[0-9]+: cannot send: Connection "
		     "refused; 1 lines dropped \\(all are counted; this is said at most every "
		     "10s\\)$");
	assert_true(sink_empty(&sy)); /* no second report within 10 s */
	log_stop();
	sink_close(&sy);
}

/* A syslog daemon that restarts (its socket gone, then bound anew): the
 * lines in between are counted as dropped, and the target connects again
 * by itself (at most once a second) and delivers. */
static void test_syslog_reconnects(void **state)
{
	struct sink sy = {0};
	struct log_target_conf t;
	struct log_target_stats st[LOG_MAX_TARGETS];
	char err[128], buf[4096];
	bool back = false;

	(void)state;
	sink_unix(&sy);
	t = syslog_target(&sy, LOGL_INFO);
	assert_int_equal(log_configure(&t, 1, err, sizeof(err)), 0);
	log_info("before");
	assert_match(sink_recv(&sy, buf, sizeof(buf)), ": before$");
	sink_close(&sy); /* the daemon stops: its socket file is gone */
	log_info("while gone");
	assert_int_equal(log_stats(st, LOG_MAX_TARGETS), 1);
	assert_true(st[0].dropped >= 1);
	sy.path[0] = '\0';
	{
		struct sockaddr_un sun = {.sun_family = AF_UNIX};

		/* it comes back on the same path */
		memcpy(sun.sun_path, t.path, strlen(t.path) + 1);
		sy.fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		assert_int_equal(bind(sy.fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
		util_strlcpy(sy.path, t.path, sizeof(sy.path));
	}
	/* a line every 20 ms until one arrives: bounded by count and time */
	for (int i = 0; i < 250 && !back; i++) {
		struct pollfd p = {.fd = sy.fd, .events = POLLIN};

		log_info("again %d", i);
		back = poll(&p, 1, 20) == 1;
	}
	assert_true(back);
	assert_match(sink_recv(&sy, buf, sizeof(buf)), ": again [0-9]+$");
	log_stop();
	sink_close(&sy);
}

/* A reload installs a new set while the thread runs: a target that stays
 * keeps its counters, a new one starts at zero. */
static void test_replace_keeps_counters(void **state)
{
	struct sink a = {0}, b = {0};
	struct log_target_conf t[2];
	struct log_target_stats st[LOG_MAX_TARGETS];
	char err[128], buf[4096];

	(void)state;
	sink_unix(&a);
	sink_udp(&b);
	t[0] = syslog_target(&a, LOGL_INFO);
	t[1] = udp_target(&b, LOGL_INFO);
	assert_int_equal(log_configure(t, 1, err, sizeof(err)), 0);
	assert_int_equal(log_start(), 0);
	log_info("before");
	assert_match(sink_recv(&a, buf, sizeof(buf)), "before$");
	assert_int_equal(log_configure(t, 2, err, sizeof(err)), 0);
	log_info("after");
	assert_match(sink_recv(&a, buf, sizeof(buf)), "after$");
	assert_match(sink_recv(&b, buf, sizeof(buf)), "after$");
	/* the log thread counts a line once send() returned, which may be just
	 * after the datagram arrived: poll the counters, bounded */
	for (int i = 0; i < 500; i++) {
		assert_int_equal(log_stats(st, LOG_MAX_TARGETS), 2);
		if (st[0].sent == 2 && st[1].sent == 1)
			break;
		poll(NULL, 0, 10);
	}
	assert_int_equal(st[0].sent, 2);
	assert_int_equal(st[1].sent, 1);
	log_stop();
	sink_close(&a);
	sink_close(&b);
}

static void test_ratelimited_says_suppressed(void **state)
{
	struct log_ratelimit rl = {0};
	struct sink sy = {0};
	struct log_target_conf t;
	char err[128], buf[4096];

	(void)state;
	sink_unix(&sy);
	t = syslog_target(&sy, LOGL_INFO);
	assert_int_equal(log_configure(&t, 1, err, sizeof(err)), 0);
	for (int i = 0; i < 5; i++) /* burst 2 in the second starting at 10 000 ms */
		log_ratelimited(&rl, 10000 + (uint64_t)i, 2, LOGL_WARNING, "refused %d", i);
	assert_match(sink_recv(&sy, buf, sizeof(buf)), ": refused 0$");
	assert_match(sink_recv(&sy, buf, sizeof(buf)), ": refused 1$");
	assert_true(sink_empty(&sy));
	log_ratelimited(&rl, 11000, 2, LOGL_WARNING, "refused %d", 5);
	assert_match(sink_recv(&sy, buf, sizeof(buf)),
		     ": refused 5 \\(3 similar messages suppressed\\)$");
	log_stop();
	sink_close(&sy);
}

static void test_names(void **state)
{
	uint32_t f;

	(void)state;
	assert_int_equal(log_facility_parse("local7", &f), 0);
	assert_int_equal(f, 23);
	assert_int_equal(log_facility_parse("daemon", &f), 0);
	assert_int_equal(f, 3);
	assert_int_equal(log_facility_parse("local8", &f), -1);
	assert_string_equal(log_facility_name(10), "authpriv");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_syslog_format_and_levels),
	    cmocka_unit_test(test_udp_rfc5424),
	    cmocka_unit_test(test_stderr_format),
	    cmocka_unit_test(test_thread_and_levels),
	    cmocka_unit_test(test_drops_counted_and_reported),
	    cmocka_unit_test(test_syslog_reconnects),
	    cmocka_unit_test(test_replace_keeps_counters),
	    cmocka_unit_test(test_ratelimited_says_suppressed),
	    cmocka_unit_test(test_names),
	};

	srand((unsigned)getpid());
	return cmocka_run_group_tests(tests, NULL, NULL);
}
