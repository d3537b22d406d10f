/* privdrop: after everything that needs root is open, become the
 * configured user and group, keeping only CAP_NET_BIND_SERVICE (reloads
 * bind low ports), CAP_NET_ADMIN and CAP_NET_RAW (VRRP and VIPs), and
 * CAP_BPF when the configuration has a cluster block or uses the kernel
 * relay (a reload may load a program again). Runs
 * before the workers start, since capabilities are per thread (resolver
 * helpers of the start-up lookups may still be exiting: they run nothing
 * more). */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "core.h"
#include "sluice/log.h"

static const cap_value_t keep[] = {CAP_NET_BIND_SERVICE, CAP_NET_ADMIN, CAP_NET_RAW, CAP_BPF};

static bool kept(cap_value_t v, int nkeep)
{
	for (int i = 0; i < nkeep; i++)
		if (keep[i] == v)
			return true;
	return false;
}

int core_drop_privileges(const char *user, const char *group, bool keep_bpf, char *err,
			 size_t errlen)
{
	int nkeep = keep_bpf ? 4 : 3;
	struct passwd *pw = NULL;
	struct group *gr = NULL;
	uid_t uid;
	gid_t gid;
	cap_t caps;

	if (user[0] == '\0' && group[0] == '\0')
		return 0;
	if (user[0] != '\0' && (pw = getpwnam(user)) == NULL) {
		snprintf(err, errlen, "user '%s' does not exist", user);
		return -1;
	}
	if (group[0] != '\0' && (gr = getgrnam(group)) == NULL) {
		snprintf(err, errlen, "group '%s' does not exist", group);
		return -1;
	}
	uid = pw ? pw->pw_uid : getuid();
	gid = gr ? gr->gr_gid : (pw ? pw->pw_gid : getgid());
	/* nothing dropped from the bounding set can come back */
	for (cap_value_t v = 0; v <= CAP_LAST_CAP; v++)
		if (!kept(v, nkeep) && cap_drop_bound(v) < 0 && errno != EINVAL) {
			snprintf(err, errlen, "cannot drop capability %d: %s", (int)v,
				 strerror(errno));
			return -1;
		}
	if (prctl(PR_SET_KEEPCAPS, 1) < 0 || setgroups(1, &gid) < 0 ||
	    setresgid(gid, gid, gid) < 0 || setresuid(uid, uid, uid) < 0) {
		snprintf(err, errlen, "cannot become %s:%s: %s", user[0] ? user : "-",
			 group[0] ? group : "-", strerror(errno));
		return -1;
	}
	caps = cap_init();
	if (caps == NULL || cap_set_flag(caps, CAP_PERMITTED, nkeep, keep, CAP_SET) < 0 ||
	    cap_set_flag(caps, CAP_EFFECTIVE, nkeep, keep, CAP_SET) < 0 || cap_set_proc(caps) < 0) {
		snprintf(err, errlen, "cannot keep the network capabilities: %s", strerror(errno));
		if (caps != NULL)
			cap_free(caps);
		return -1;
	}
	cap_free(caps);
	prctl(PR_SET_KEEPCAPS, 0);
	log_notice(
	    "running as uid %u gid %u with CAP_NET_BIND_SERVICE, CAP_NET_ADMIN, CAP_NET_RAW%s",
	    (unsigned)uid, (unsigned)gid, keep_bpf ? ", CAP_BPF" : "");
	return 0;
}
