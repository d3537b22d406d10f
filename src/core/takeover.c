/* takeover: binary upgrade without closing a listener. The new process
 * (sluice --takeover SOCKET) asks the running one over its control socket;
 * the old one sends every listening socket with SCM_RIGHTS, then stops
 * accepting and drains its connections. Since both processes hold the same
 * sockets in between, no connection is refused during the hand-over.
 * Announce devices go along ("tun NAME" with its descriptor: the device
 * and its addresses live on in the new process, so no route flaps), and
 * so do the announce blocks the operator withdrew ("announce-withdrawn
 * NAME").
 * Wire format: fixed 128-byte records "bind ADDR" / "metrics ADDR" / "tun
 * NAME" (with the descriptors attached), "announce-withdrawn NAME" and
 * "end", then the usual text reply. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "core.h"
#include "sluice/ctl.h"
#include "sluice/log.h"
#include "sluice/proxy.h"
#include "sluice/util.h"

#define REC_LEN 128
#define REC_MAX_FDS UTIL_MAX_WORKERS /* one socket per worker */

static int send_record(int fd, const char *text, const int *fds, size_t nfds)
{
	char rec[REC_LEN] = {0};
	char cbuf[CMSG_SPACE(sizeof(int) * REC_MAX_FDS)];
	struct iovec iov = {.iov_base = rec, .iov_len = REC_LEN};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};

	util_strlcpy(rec, text, sizeof(rec));
	if (nfds > 0) {
		struct cmsghdr *cm;

		memset(cbuf, 0, sizeof(cbuf));
		mh.msg_control = cbuf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(cm), fds, sizeof(int) * nfds);
	}
	while (sendmsg(fd, &mh, MSG_NOSIGNAL) < 0) {
		if (errno != EINTR)
			return -1;
	}
	return 0;
}

int core_takeover_hook(void *arg, int fd, char *msg, size_t len)
{
	struct core *c = arg;
	int flags = fcntl(fd, F_GETFL), n = 0;

	if (c->stopping) {
		snprintf(msg, len, "this process is already stopping");
		return -1;
	}
	if (c->reload != NULL) {
		/* its listeners may be changing: hand over a settled set */
		snprintf(msg, len, "a reload is in progress; try again when it is over");
		return -1;
	}
	fcntl(fd, F_SETFL, flags & ~O_NONBLOCK); /* a few small records */
	for (size_t i = 0; i < c->nlisteners; i++) {
		struct proxy_frontend *fe = c->listeners[i].fe;

		for (size_t b = 0; b < fe->nbinds; b++) {
			char rec[REC_LEN], abuf[UTIL_ADDR_STRLEN];
			int fds[REC_MAX_FDS];
			size_t k = 0;

			for (size_t j = 0; j < fe->binds[b]->nfds && k < REC_MAX_FDS; j++)
				if (fe->binds[b]->fds[j] >= 0)
					fds[k++] = fe->binds[b]->fds[j];
			snprintf(rec, sizeof(rec), "bind %s",
				 util_addr_fmt(&fe->binds[b]->addr, abuf, sizeof(abuf)));
			if (send_record(fd, rec, fds, k) < 0)
				goto fail;
			n += (int)k;
		}
	}
	if (c->conf->global.metrics.len != 0) {
		int mfd = ctl_metrics_fd(c->ctl);
		char rec[REC_LEN], abuf[UTIL_ADDR_STRLEN];

		snprintf(rec, sizeof(rec), "metrics %s",
			 util_addr_fmt(&c->conf->global.metrics, abuf, sizeof(abuf)));
		if (mfd >= 0 && send_record(fd, rec, &mfd, 1) < 0)
			goto fail;
	}
	{
		struct core_announce_fd an[64];
		size_t nan = core_announce_handover(c, an, UTIL_ARRAY_LEN(an));

		for (size_t i = 0; i < nan; i++) {
			char rec[REC_LEN];

			snprintf(rec, sizeof(rec), "%s %s",
				 an[i].fd >= 0 ? "tun" : "announce-withdrawn", an[i].name);
			if (send_record(fd, rec, &an[i].fd, an[i].fd >= 0 ? 1 : 0) < 0)
				goto fail;
			if (an[i].fd >= 0)
				log_notice("takeover: announce device %s handed over with its "
					   "addresses",
					   an[i].name);
		}
	}
	if (send_record(fd, "end", NULL, 0) < 0)
		goto fail;
	fcntl(fd, F_SETFL, flags);
	log_notice("takeover: %d listening sockets handed to a new process", n);
	ctl_close_metrics(c->ctl);
	c->handing_over = true;
	core_begin_shutdown(c, "takeover");
	snprintf(msg, len,
		 "takeover: %d sockets handed over; this process stops accepting and "
		 "drains",
		 n);
	return 0;
fail:
	fcntl(fd, F_SETFL, flags);
	snprintf(msg, len, "takeover failed while sending sockets: %s", strerror(errno));
	log_err("%s", msg);
	return -1;
}

static int add_inherited(struct core *c, const char *what, const char *addr, const int *fds,
			 size_t n, char *err, size_t errlen)
{
	struct core_inherited *a = realloc(c->inherited, (c->ninherited + 1) * sizeof(*a));
	struct core_inherited *in;
	char perr[128];

	if (a == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	c->inherited = a;
	in = &a[c->ninherited];
	memset(in, 0, sizeof(*in));
	if (strcmp(what, "tun") == 0 || strcmp(what, "announce-withdrawn") == 0) {
		if (what[0] == 't')
			util_strlcpy(in->tun, addr, sizeof(in->tun));
		else
			util_strlcpy(in->announce_withdrawn, addr, sizeof(in->announce_withdrawn));
		memcpy(in->fds, fds, n * sizeof(int));
		in->nfds = n;
		c->ninherited++;
		return 0;
	}
	if (util_addr_parse(addr, false, &in->addr, perr, sizeof(perr)) < 0) {
		snprintf(err, errlen, "takeover: bad address '%s' from the old process", addr);
		return -1;
	}
	in->metrics = strcmp(what, "metrics") == 0;
	memcpy(in->fds, fds, n * sizeof(int));
	in->nfds = n;
	c->ninherited++;
	return 0;
}

int core_takeover_receive(struct core *c, const char *path, char *err, size_t errlen)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	struct timeval tv = {.tv_sec = 10};
	char reply[512];
	size_t rlen = 0;
	int fd;

	util_strlcpy(sun.sun_path, path, sizeof(sun.sun_path));
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		snprintf(err, errlen, "takeover: cannot connect to %s: %s", path, strerror(errno));
		goto fail;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (send(fd, "takeover\n", 9, MSG_NOSIGNAL) != 9) {
		snprintf(err, errlen, "takeover: send failed: %s", strerror(errno));
		goto fail;
	}
	for (;;) {
		char rec[REC_LEN + 1], cbuf[CMSG_SPACE(sizeof(int) * REC_MAX_FDS)];
		struct iovec iov = {.iov_base = rec, .iov_len = REC_LEN};
		struct msghdr mh = {.msg_iov = &iov,
				    .msg_iovlen = 1,
				    .msg_control = cbuf,
				    .msg_controllen = sizeof(cbuf)};
		int fds[REC_MAX_FDS];
		size_t nfds = 0;
		ssize_t n = recvmsg(fd, &mh, MSG_WAITALL | MSG_CMSG_CLOEXEC);
		char *sp;

		for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); n > 0 && cm != NULL;
		     cm = CMSG_NXTHDR(&mh, cm)) {
			if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
				continue;
			nfds = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			memcpy(fds, CMSG_DATA(cm), nfds * sizeof(int));
		}
		if (n <= 0 || (n < REC_LEN && strncmp(rec, "error: ", 7) != 0)) {
			snprintf(err, errlen, "takeover: the old process closed the connection");
			goto fail;
		}
		rec[n] = '\0';
		if (strncmp(rec, "error: ", 7) == 0) {
			rec[strcspn(rec, "\n")] = '\0';
			snprintf(err, errlen, "takeover refused by the old process: %s", rec + 7);
			goto fail;
		}
		if (strcmp(rec, "end") == 0)
			break;
		sp = strchr(rec, ' ');
		if (sp == NULL) {
			snprintf(err, errlen, "takeover: unexpected record from the old process");
			goto fail;
		}
		*sp = '\0';
		if (add_inherited(c, rec, sp + 1, fds, nfds, err, errlen) < 0)
			goto fail;
	}
	/* the text reply ends with an empty line */
	while (rlen < sizeof(reply) - 1) {
		ssize_t n = recv(fd, reply + rlen, sizeof(reply) - 1 - rlen, 0);

		if (n <= 0)
			break;
		rlen += (size_t)n;
		reply[rlen] = '\0';
		if (strstr(reply, "\n\n") != NULL)
			break;
	}
	close(fd);
	reply[rlen] = '\0';
	reply[strcspn(reply, "\n")] = '\0';
	log_notice("takeover from %s: %s", path, reply);
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	return -1;
}

int core_takeover_fds(struct core *c, const struct util_addr *addr, bool metrics, int *fds,
		      size_t max)
{
	for (size_t i = 0; i < c->ninherited; i++) {
		struct core_inherited *in = &c->inherited[i];
		size_t n;

		if (in->used || in->metrics != metrics || in->tun[0] != '\0' ||
		    in->announce_withdrawn[0] != '\0' || !util_addr_equal(&in->addr, addr))
			continue;
		n = UTIL_MIN(in->nfds, max);
		memcpy(fds, in->fds, n * sizeof(int));
		in->used = true;
		return (int)n;
	}
	return 0;
}

int core_takeover_tun(struct core *c, const char *name)
{
	for (size_t i = 0; i < c->ninherited; i++) {
		struct core_inherited *in = &c->inherited[i];

		if (in->used || in->nfds != 1 || strcmp(in->tun, name) != 0)
			continue;
		in->used = true;
		return in->fds[0];
	}
	return -1;
}

bool core_takeover_announce_withdrawn(struct core *c, const char *name)
{
	for (size_t i = 0; i < c->ninherited; i++)
		if (strcmp(c->inherited[i].announce_withdrawn, name) == 0)
			return true;
	return false;
}

void core_takeover_done(struct core *c)
{
	for (size_t i = 0; i < c->ninherited; i++) {
		if (c->inherited[i].used)
			continue;
		for (size_t k = 0; k < c->inherited[i].nfds; k++)
			close(c->inherited[i].fds[k]);
	}
	free(c->inherited);
	c->inherited = NULL;
	c->ninherited = 0;
}
