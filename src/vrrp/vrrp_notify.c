/* vrrp_notify: the notify script of a VRRP instance, run with the
 * instance's name and new state at every transition (vrrp_io.c calls it).
 * Never waits: the control loop reaps each child through an ev_child, and
 * at most VRRP_MAX_CHILDREN run at once per instance. */
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

#include "vrrp-int.h"

extern char **environ;

static void on_child(struct ev_loop *loop, ev_child *w, int revents)
{
	struct vrrp_child *ch = (struct vrrp_child *)w;

	(void)revents;
	ev_child_stop(loop, w);
	ch->used = false;
	if (ch->vi != NULL && !(WIFEXITED(w->rstatus) && WEXITSTATUS(w->rstatus) == 0))
		log_warn("vrrp %s: notify %s exited with status %d", ch->vi->cfg.name,
			 ch->vi->cfg.notify,
			 WIFEXITED(w->rstatus) ? WEXITSTATUS(w->rstatus)
					       : 128 + WTERMSIG(w->rstatus));
}

int vrrp_notify_run(struct vrrp_instance *vi, enum vrrp_state state, char *err, size_t errlen)
{
	char *argv[4];
	posix_spawnattr_t attr;
	sigset_t none, dfl;
	struct vrrp_child *ch = NULL;
	pid_t pid;
	int rc;

	if (vi->cfg.notify[0] == '\0')
		return 0;
	for (size_t i = 0; i < VRRP_MAX_CHILDREN && ch == NULL; i++)
		if (!vi->children[i].used)
			ch = &vi->children[i];
	if (ch == NULL) {
		snprintf(err, errlen, "notify %s: %d scripts still running, not starting another",
			 vi->cfg.notify, VRRP_MAX_CHILDREN);
		return -1;
	}
	argv[0] = vi->cfg.notify;
	argv[1] = vi->cfg.name;
	argv[2] = (char *)vrrp_state_name(state);
	argv[3] = NULL;
	sigemptyset(&none);
	sigemptyset(&dfl);
	sigaddset(&dfl, SIGPIPE);
	sigaddset(&dfl, SIGCHLD);
	posix_spawnattr_init(&attr);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setsigdefault(&attr, &dfl);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
	rc = posix_spawn(&pid, vi->cfg.notify, NULL, &attr, argv, environ);
	posix_spawnattr_destroy(&attr);
	if (rc != 0) {
		snprintf(err, errlen, "notify %s: %s", vi->cfg.notify, strerror(rc));
		return -1;
	}
	ch->used = true;
	ch->vi = vi;
	ev_child_init(&ch->w, on_child, pid, 0);
	ev_child_start(vi->loop, &ch->w);
	return 0;
}

void vrrp_notify_detach(struct vrrp_instance *vi)
{
	for (size_t i = 0; i < VRRP_MAX_CHILDREN; i++) {
		/* The loop still reaps the child; nobody is told. */
		if (vi->children[i].used)
			ev_child_stop(vi->loop, &vi->children[i].w);
	}
}
