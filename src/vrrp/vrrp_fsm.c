/* vrrp_fsm: one virtual router's state machine, RFC 9568 section 6.4 with the
 * keepalived behaviour of VRRP-NOTES.md. The VRRP I/O layer feeds it events
 * and now_ms and performs the actions it returns, in order. Pure. Invariant:
 * only the advert timer firing moves the master's advert timer.
 *
 *                  start, priority < 255: DEL_VIPS (leftovers)
 *      +--------+ ------------------------------------------> +----------+
 *      |  INIT  | <------------------------------------------ |  BACKUP  |
 *      +--------+                 shutdown                    +----------+
 *        ^    |                                                 |      ^
 *        |    | start, priority 255             master down     |      | advert with higher
 *        |    |                                 timer fires     |      | priority, or equal from
 *        |    |                                 (a preempting   |      | a higher address:
 *        |    |                                 backup ignores  |      | SEND_ADVERT (one last),
 *        |    |                                 lower adverts)  |      | then DEL_VIPS
 *        |    |   SEND_ADVERT, ADD_VIPS, SEND_GARP              v      |
 *        |    +---------------------------------------------> +----------+
 *        +--------------------------------------------------- |  MASTER  |
 *           shutdown: SEND_ADVERT priority 0, then DEL_VIPS   +----------+
 *
 *   BACKUP, MASTER --link down--> FAULT (a master: DEL_VIPS)
 *   FAULT --link up--> BACKUP (MASTER when priority 255);  FAULT --shutdown--> INIT
 *   MASTER + lower advert (or equal from a lower address): SEND_ADVERT, SEND_GARP
 *   MASTER + priority 0 advert: SEND_ADVERT.  BACKUP + priority 0: down timer = skew.
 *   A new master sends SEND_GARP again VRRP_GARP_REPEAT_MS after taking over.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/vrrp.h"

static uint64_t cs_to_ms(uint16_t cs)
{
	return (uint64_t)cs * 10;
}

/* now + ms, saturating at VRRP_NEVER. */
static uint64_t deadline(uint64_t now_ms, uint64_t ms)
{
	return ms >= VRRP_NEVER - now_ms ? VRRP_NEVER : now_ms + ms;
}

/* ---- actions ------------------------------------------------------------- */

static struct vrrp_action *act_push(struct vrrp_actions *out, enum vrrp_action_type type)
{
	struct vrrp_action *a;

	/* No input produces more than a handful; more is a bug here. */
	if (out->n >= VRRP_ACTIONS_MAX)
		abort();
	a = &out->a[out->n++];
	memset(a, 0, sizeof(*a));
	a->type = type;
	return a;
}

static void act_advert(struct vrrp_actions *out, uint8_t priority)
{
	act_push(out, VRRP_ACT_SEND_ADVERT)->priority = priority;
}

static void reason_text(char *buf, size_t len, enum vrrp_reason reason,
			const struct vrrp_addr *peer)
{
	char host[INET6_ADDRSTRLEN];

	vrrp_addr_fmt(peer, host, sizeof(host));
	switch (reason) {
	case VRRP_REASON_STARTUP:
		snprintf(buf, len, "startup");
		return;
	case VRRP_REASON_OWNER:
		snprintf(buf, len, "address owner (priority 255)");
		return;
	case VRRP_REASON_MASTER_DOWN:
		snprintf(buf, len, "master down timer expired");
		return;
	case VRRP_REASON_MASTER_STOPPED:
		snprintf(buf, len, "master %s left (priority 0)", host);
		return;
	case VRRP_REASON_PREEMPT:
		snprintf(buf, len, "preempting lower priority master %s", host);
		return;
	case VRRP_REASON_HIGHER_PRIO:
		snprintf(buf, len, "higher priority advert from %s", host);
		return;
	case VRRP_REASON_HIGHER_ADDR:
		snprintf(buf, len, "equal priority advert from higher address %s", host);
		return;
	case VRRP_REASON_SHUTDOWN:
		snprintf(buf, len, "shutdown");
		return;
	case VRRP_REASON_LINK_DOWN:
		snprintf(buf, len, "link down");
		return;
	case VRRP_REASON_LINK_UP:
		snprintf(buf, len, "link up");
		return;
	}
	snprintf(buf, len, "?");
}

/* Appends the STATE action and switches to new_state. peer may be NULL. */
static void set_state(struct vrrp_fsm *fsm, struct vrrp_actions *out, enum vrrp_state new_state,
		      enum vrrp_reason reason, const struct vrrp_addr *peer)
{
	struct vrrp_action *a = act_push(out, VRRP_ACT_STATE);
	struct vrrp_addr none = {.family = 0};

	a->old_state = fsm->state;
	a->new_state = new_state;
	a->reason = reason;
	reason_text(a->text, sizeof(a->text), reason, peer != NULL ? peer : &none);
	fsm->state = new_state;
}

/* ---- timers (RFC 9568 section 6.1) --------------------------------------- */

uint64_t vrrp_fsm_skew_ms(const struct vrrp_fsm *fsm)
{
	return (256 - (uint64_t)fsm->priority) * cs_to_ms(fsm->master_adver_int_cs) / 256;
}

uint64_t vrrp_fsm_master_down_ms(const struct vrrp_fsm *fsm)
{
	return 3 * cs_to_ms(fsm->master_adver_int_cs) + vrrp_fsm_skew_ms(fsm);
}

uint64_t vrrp_fsm_next_deadline(const struct vrrp_fsm *fsm)
{
	switch (fsm->state) {
	case VRRP_STATE_INIT:
	case VRRP_STATE_FAULT:
		return VRRP_NEVER;
	case VRRP_STATE_BACKUP:
		return fsm->down_at_ms;
	case VRRP_STATE_MASTER:
		return fsm->adver_at_ms < fsm->garp_at_ms ? fsm->adver_at_ms : fsm->garp_at_ms;
	}
	return VRRP_NEVER;
}

static void disarm(struct vrrp_fsm *fsm)
{
	fsm->adver_at_ms = VRRP_NEVER;
	fsm->garp_at_ms = VRRP_NEVER;
	fsm->down_at_ms = VRRP_NEVER;
	fsm->preempt_at_ms = VRRP_NEVER;
}

/* Arms the Master_Down_Timer for a master that was just heard. */
static void heard_master(struct vrrp_fsm *fsm, uint64_t now_ms, uint16_t interval_cs)
{
	if (fsm->cfg.version == 3 && interval_cs != 0)
		fsm->master_adver_int_cs = interval_cs; /* v3 adopts; v2 intervals are equal */
	fsm->down_at_ms = deadline(now_ms, vrrp_fsm_master_down_ms(fsm));
	fsm->down_reason = VRRP_REASON_MASTER_DOWN;
}

/* ---- transitions --------------------------------------------------------- */

static void become_master(struct vrrp_fsm *fsm, uint64_t now_ms, enum vrrp_reason reason,
			  const struct vrrp_addr *peer, struct vrrp_actions *out)
{
	set_state(fsm, out, VRRP_STATE_MASTER, reason, peer);
	/* Advert first so the peers stand down, then the addresses and ARPs. */
	act_advert(out, fsm->priority);
	act_push(out, VRRP_ACT_ADD_VIPS);
	act_push(out, VRRP_ACT_SEND_GARP);
	fsm->master_addr = fsm->cfg.primary;
	fsm->master_prio = fsm->priority;
	fsm->master_adver_int_cs = fsm->cfg.adver_int_cs;
	disarm(fsm);
	fsm->adver_at_ms = deadline(now_ms, cs_to_ms(fsm->cfg.adver_int_cs));
	fsm->garp_at_ms = deadline(now_ms, fsm->cfg.garp_repeat_ms != 0 ? fsm->cfg.garp_repeat_ms
									: VRRP_GARP_REPEAT_MS);
}

/* From INIT or FAULT: to BACKUP for a full Master_Down_Interval with our own
 * interval, or to MASTER at once when we own the addresses. */
static void start_running(struct vrrp_fsm *fsm, uint64_t now_ms, enum vrrp_reason reason,
			  struct vrrp_actions *out)
{
	if (fsm->priority == VRRP_PRIO_OWNER) {
		become_master(fsm, now_ms, VRRP_REASON_OWNER, NULL, out);
		return;
	}
	set_state(fsm, out, VRRP_STATE_BACKUP, reason, NULL);
	act_push(out, VRRP_ACT_DEL_VIPS); /* a killed predecessor may have left them */
	memset(&fsm->master_addr, 0, sizeof(fsm->master_addr));
	fsm->master_prio = 0;
	fsm->master_adver_int_cs = fsm->cfg.adver_int_cs;
	disarm(fsm);
	heard_master(fsm, now_ms, 0);
}

/* To INIT (shutdown) or FAULT (link down): a master resigns. */
static void stop_running(struct vrrp_fsm *fsm, enum vrrp_state target, enum vrrp_reason reason,
			 struct vrrp_actions *out)
{
	bool was_master = fsm->state == VRRP_STATE_MASTER;

	if (was_master && target == VRRP_STATE_INIT)
		act_advert(out, VRRP_PRIO_STOP); /* the backup takes over after its skew */
	set_state(fsm, out, target, reason, NULL);
	if (was_master)
		act_push(out, VRRP_ACT_DEL_VIPS);
	disarm(fsm);
}

/* ---- inputs -------------------------------------------------------------- */

int vrrp_fsm_init(struct vrrp_fsm *fsm, const struct vrrp_fsm_config *cfg)
{
	bool interval_ok;

	if (cfg->version == 3)
		interval_ok = cfg->adver_int_cs >= 1 && cfg->adver_int_cs <= VRRP_V3_INTERVAL_MAX;
	else if (cfg->version == 2)
		interval_ok = cfg->adver_int_cs >= 100 && cfg->adver_int_cs % 100 == 0 &&
			      cfg->adver_int_cs / 100 <= VRRP_V2_INTERVAL_MAX_S;
	else
		return -1;
	if (!interval_ok || cfg->priority == 0 ||
	    (cfg->primary.family != AF_INET && cfg->primary.family != AF_INET6))
		return -1;

	memset(fsm, 0, sizeof(*fsm));
	fsm->cfg = *cfg;
	fsm->state = VRRP_STATE_INIT;
	fsm->priority = cfg->priority;
	fsm->link_up = true;
	fsm->master_adver_int_cs = cfg->adver_int_cs;
	fsm->down_reason = VRRP_REASON_MASTER_DOWN;
	disarm(fsm);
	return 0;
}

void vrrp_fsm_start(struct vrrp_fsm *fsm, uint64_t now_ms, struct vrrp_actions *out)
{
	out->n = 0;
	if (fsm->state != VRRP_STATE_INIT)
		return;
	if (!fsm->link_up) {
		set_state(fsm, out, VRRP_STATE_FAULT, VRRP_REASON_LINK_DOWN, NULL);
		act_push(out, VRRP_ACT_DEL_VIPS);
		return;
	}
	start_running(fsm, now_ms, VRRP_REASON_STARTUP, out);
}

void vrrp_fsm_shutdown(struct vrrp_fsm *fsm, uint64_t now_ms, struct vrrp_actions *out)
{
	(void)now_ms;
	out->n = 0;
	if (fsm->state != VRRP_STATE_INIT)
		stop_running(fsm, VRRP_STATE_INIT, VRRP_REASON_SHUTDOWN, out);
}

/* True while a preempt delay holds a preempting backup back; the first
 * lower-priority advert starts it (keepalived's preempt_delay). */
static bool preempt_delayed(struct vrrp_fsm *fsm, uint64_t now_ms)
{
	if (fsm->cfg.preempt_delay_ms == 0)
		return false;
	if (fsm->preempt_at_ms == VRRP_NEVER)
		fsm->preempt_at_ms = deadline(now_ms, fsm->cfg.preempt_delay_ms);
	return now_ms < fsm->preempt_at_ms;
}

static void rx_backup(struct vrrp_fsm *fsm, uint64_t now_ms, const struct vrrp_addr *src,
		      uint8_t priority, uint16_t interval_cs)
{
	fsm->master_addr = *src;
	fsm->master_prio = priority;
	if (priority == VRRP_PRIO_STOP) {
		fsm->down_at_ms = deadline(now_ms, vrrp_fsm_skew_ms(fsm));
		fsm->down_reason = VRRP_REASON_MASTER_STOPPED;
		return;
	}
	if (fsm->cfg.preempt && priority < fsm->priority && !preempt_delayed(fsm, now_ms)) {
		/* RFC 9568 6.4.2: discard, so the down timer runs out and we
		 * take over. An equal priority is never preempted. */
		fsm->down_reason = VRRP_REASON_PREEMPT;
		return;
	}
	if (priority >= fsm->priority)
		fsm->preempt_at_ms = VRRP_NEVER;
	heard_master(fsm, now_ms, interval_cs);
}

static void rx_master(struct vrrp_fsm *fsm, uint64_t now_ms, const struct vrrp_addr *src,
		      uint8_t priority, uint16_t interval_cs, struct vrrp_actions *out)
{
	bool higher = priority > fsm->priority;

	if (priority == VRRP_PRIO_STOP) {
		/* Answer at once so backups do not take over; the RFC's timer
		 * reset is left out on purpose (the timer stays exact). */
		act_advert(out, fsm->priority);
		return;
	}
	if (higher || (priority == fsm->priority && vrrp_addr_cmp(src, &fsm->cfg.primary) > 0)) {
		/* keepalived steps down silently; our last advert makes the
		 * winner answer with gratuitous ARPs, so clients follow. */
		act_advert(out, fsm->priority);
		set_state(fsm, out, VRRP_STATE_BACKUP,
			  higher ? VRRP_REASON_HIGHER_PRIO : VRRP_REASON_HIGHER_ADDR, src);
		act_push(out, VRRP_ACT_DEL_VIPS);
		disarm(fsm);
		fsm->master_addr = *src;
		fsm->master_prio = priority;
		heard_master(fsm, now_ms, interval_cs);
		return;
	}
	/* A lower master (or an equal one we beat): assert ourselves at once,
	 * with ARPs so clients on the loser come back (as keepalived). */
	act_advert(out, fsm->priority);
	act_push(out, VRRP_ACT_SEND_GARP);
}

void vrrp_fsm_rx_advert(struct vrrp_fsm *fsm, uint64_t now_ms, const struct vrrp_addr *src,
			uint8_t priority, uint16_t interval_cs, struct vrrp_actions *out)
{
	out->n = 0;
	if (vrrp_addr_equal(src, &fsm->cfg.primary))
		return; /* our own advert looped back: answering would loop */
	switch (fsm->state) {
	case VRRP_STATE_INIT:
	case VRRP_STATE_FAULT:
		return;
	case VRRP_STATE_BACKUP:
		rx_backup(fsm, now_ms, src, priority, interval_cs);
		return;
	case VRRP_STATE_MASTER:
		rx_master(fsm, now_ms, src, priority, interval_cs, out);
		return;
	}
}

void vrrp_fsm_timer(struct vrrp_fsm *fsm, uint64_t now_ms, struct vrrp_actions *out)
{
	uint64_t interval_ms = cs_to_ms(fsm->cfg.adver_int_cs);

	out->n = 0;
	switch (fsm->state) {
	case VRRP_STATE_INIT:
	case VRRP_STATE_FAULT:
		return;
	case VRRP_STATE_BACKUP:
		if (now_ms >= fsm->down_at_ms)
			become_master(fsm, now_ms, fsm->down_reason, &fsm->master_addr, out);
		return;
	case VRRP_STATE_MASTER:
		if (now_ms >= fsm->adver_at_ms) {
			act_advert(out, fsm->priority);
			/* Keep the cadence exact; after a stall, restart
			 * from now rather than send a burst. */
			fsm->adver_at_ms = deadline(fsm->adver_at_ms, interval_ms);
			if (fsm->adver_at_ms <= now_ms)
				fsm->adver_at_ms = deadline(now_ms, interval_ms);
		}
		if (now_ms >= fsm->garp_at_ms) {
			act_push(out, VRRP_ACT_SEND_GARP);
			fsm->garp_at_ms = VRRP_NEVER;
		}
		return;
	}
}

void vrrp_fsm_set_priority(struct vrrp_fsm *fsm, uint64_t now_ms, uint8_t priority,
			   struct vrrp_actions *out)
{
	(void)now_ms;
	out->n = 0;
	if (priority == VRRP_PRIO_STOP)
		priority = 1; /* 0 on the wire means "leaving" */
	if (priority == VRRP_PRIO_OWNER && fsm->cfg.priority != VRRP_PRIO_OWNER)
		priority = VRRP_PRIO_OWNER - 1;
	fsm->priority = priority;
	if (fsm->state == VRRP_STATE_MASTER)
		fsm->master_prio = priority;
}

void vrrp_fsm_link(struct vrrp_fsm *fsm, uint64_t now_ms, bool up, struct vrrp_actions *out)
{
	out->n = 0;
	if (up == fsm->link_up)
		return;
	fsm->link_up = up;
	switch (fsm->state) {
	case VRRP_STATE_INIT:
		return;
	case VRRP_STATE_BACKUP:
	case VRRP_STATE_MASTER:
		if (!up)
			stop_running(fsm, VRRP_STATE_FAULT, VRRP_REASON_LINK_DOWN, out);
		return;
	case VRRP_STATE_FAULT:
		if (up)
			start_running(fsm, now_ms, VRRP_REASON_LINK_UP, out);
		return;
	}
}

/* ---- names --------------------------------------------------------------- */

const char *vrrp_state_name(enum vrrp_state state)
{
	switch (state) {
	case VRRP_STATE_INIT:
		return "INIT";
	case VRRP_STATE_BACKUP:
		return "BACKUP";
	case VRRP_STATE_MASTER:
		return "MASTER";
	case VRRP_STATE_FAULT:
		return "FAULT";
	}
	return "?";
}

const char *vrrp_action_name(enum vrrp_action_type type)
{
	switch (type) {
	case VRRP_ACT_SEND_ADVERT:
		return "SEND_ADVERT";
	case VRRP_ACT_ADD_VIPS:
		return "ADD_VIPS";
	case VRRP_ACT_DEL_VIPS:
		return "DEL_VIPS";
	case VRRP_ACT_SEND_GARP:
		return "SEND_GARP";
	case VRRP_ACT_STATE:
		return "STATE";
	}
	return "?";
}
