/* vip_announce: whether an announce block's addresses belong on its TUN
 * device now, given its conditions (core says which one fails, if any) and
 * a clock. Pure: no I/O, no globals; core does the netlink work it asks
 * for. Invariant: the addresses are on the device only in ANNOUNCED, which
 * is entered only after every condition held for the whole hold-down. */
#include <stdint.h>
#include <string.h>

#include "sluice/util.h"
#include "sluice/vip.h"

#define CAUSE_HOLD_DOWN "every condition holds; waiting for the hold-down"

const char *vip_announce_state_name(enum vip_announce_state s)
{
	switch (s) {
	case VIP_ANNOUNCE_WITHDRAWN:
		return "withdrawn";
	case VIP_ANNOUNCE_HOLD_DOWN:
		return "hold-down";
	case VIP_ANNOUNCE_ANNOUNCED:
		return "announced";
	}
	return "?";
}

static void enter(struct vip_announce *a, enum vip_announce_state s, uint64_t now_ms,
		  uint64_t wall_ms)
{
	a->state = s;
	a->since_ms = now_ms;
	a->since_wall_ms = wall_ms;
}

void vip_announce_init(struct vip_announce *a, uint64_t hold_down_ms, bool announced,
		       uint64_t now_ms, uint64_t wall_ms)
{
	memset(a, 0, sizeof(*a));
	a->hold_down_ms = hold_down_ms;
	if (announced) {
		enter(a, VIP_ANNOUNCE_ANNOUNCED, now_ms, wall_ms);
		a->healthy_since_ms = now_ms;
	} else {
		enter(a, VIP_ANNOUNCE_WITHDRAWN, now_ms, wall_ms);
		util_strlcpy(a->cause, "starting", sizeof(a->cause));
	}
}

void vip_announce_set_hold_down(struct vip_announce *a, uint64_t hold_down_ms)
{
	a->hold_down_ms = hold_down_ms;
}

enum vip_announce_action vip_announce_step(struct vip_announce *a, const char *cause,
					   uint64_t now_ms, uint64_t wall_ms, uint64_t *next_ms)
{
	uint64_t due;

	*next_ms = UINT64_MAX;
	if (cause != NULL) {
		util_strlcpy(a->cause, cause, sizeof(a->cause));
		switch (a->state) {
		case VIP_ANNOUNCE_ANNOUNCED:
			enter(a, VIP_ANNOUNCE_WITHDRAWN, now_ms, wall_ms);
			a->withdrawn_ms = now_ms;
			a->withdraws++;
			return VIP_ANNOUNCE_DO_DEL;
		case VIP_ANNOUNCE_HOLD_DOWN:
			enter(a, VIP_ANNOUNCE_WITHDRAWN, now_ms, wall_ms);
			return VIP_ANNOUNCE_KEEP;
		case VIP_ANNOUNCE_WITHDRAWN:
			return VIP_ANNOUNCE_KEEP;
		}
		return VIP_ANNOUNCE_KEEP;
	}
	switch (a->state) {
	case VIP_ANNOUNCE_ANNOUNCED:
		return VIP_ANNOUNCE_KEEP;
	case VIP_ANNOUNCE_WITHDRAWN:
		enter(a, VIP_ANNOUNCE_HOLD_DOWN, now_ms, wall_ms);
		a->healthy_since_ms = now_ms;
		util_strlcpy(a->cause, CAUSE_HOLD_DOWN, sizeof(a->cause));
		break;
	case VIP_ANNOUNCE_HOLD_DOWN:
		break;
	}
	due = UTIL_MAX(a->healthy_since_ms + a->hold_down_ms, a->retry_at_ms);
	if (now_ms < due) {
		*next_ms = due;
		return VIP_ANNOUNCE_KEEP;
	}
	enter(a, VIP_ANNOUNCE_ANNOUNCED, now_ms, wall_ms);
	a->cause[0] = '\0';
	a->retry_at_ms = 0;
	a->announces++;
	return VIP_ANNOUNCE_DO_ADD;
}

void vip_announce_failed(struct vip_announce *a, const char *err, uint64_t now_ms, uint64_t wall_ms)
{
	/* the step that asked for the add counted it as done: it was not */
	if (a->state == VIP_ANNOUNCE_ANNOUNCED && a->announces > 0)
		a->announces--;
	enter(a, VIP_ANNOUNCE_WITHDRAWN, now_ms, wall_ms);
	util_strlcpy(a->cause, "error: ", sizeof(a->cause));
	util_strlcpy(a->cause + 7, err, sizeof(a->cause) - 7);
	a->errors++;
	a->retry_at_ms = now_ms + VIP_ANNOUNCE_RETRY_MS;
}
