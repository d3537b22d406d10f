/* Unit tests for vrrp_fsm: election timing, transitions and the exact action
 * lists of RFC 9568 section 6.4 with keepalived's behaviour. Deterministic:
 * every input carries its own now_ms. */
#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "sluice/util.h"
#include "sluice/vrrp.h"

/* ---- helpers ------------------------------------------------------------- */

static struct vrrp_addr ip(const char *s)
{
	struct vrrp_addr a;

	memset(&a, 0, sizeof(a));
	a.family = AF_INET;
	assert_int_equal(inet_pton(AF_INET, s, &a.u.in4), 1);
	return a;
}

/* Our own primary address is 10.0.0.2 in every test. */
static struct vrrp_fsm_config config(uint8_t priority, uint16_t adver_int_cs, bool preempt,
				     uint64_t preempt_delay_ms)
{
	struct vrrp_fsm_config cfg = {
	    .version = 3,
	    .priority = priority,
	    .adver_int_cs = adver_int_cs,
	    .preempt = preempt,
	    .preempt_delay_ms = preempt_delay_ms,
	};

	cfg.primary = ip("10.0.0.2");
	return cfg;
}

static void setup(struct vrrp_fsm *fsm, const struct vrrp_fsm_config *cfg)
{
	assert_int_equal(vrrp_fsm_init(fsm, cfg), 0);
	assert_int_equal(fsm->state, VRRP_STATE_INIT);
	assert_int_equal(vrrp_fsm_next_deadline(fsm), VRRP_NEVER);
}

/* The actions as one line, e.g. "SEND_ADVERT(100) MASTER>BACKUP DEL_VIPS". */
static const char *acts(const struct vrrp_actions *out)
{
	static char buf[512];
	size_t off = 0;
	unsigned i;

	buf[0] = '\0';
	for (i = 0; i < out->n; i++) {
		const struct vrrp_action *a = &out->a[i];

		util_bufprintf(buf, sizeof(buf), &off, "%s", i ? " " : "");
		switch (a->type) {
		case VRRP_ACT_SEND_ADVERT:
			util_bufprintf(buf, sizeof(buf), &off, "SEND_ADVERT(%u)", a->priority);
			break;
		case VRRP_ACT_STATE:
			util_bufprintf(buf, sizeof(buf), &off, "%s>%s",
				       vrrp_state_name(a->old_state),
				       vrrp_state_name(a->new_state));
			break;
		case VRRP_ACT_ADD_VIPS:
		case VRRP_ACT_DEL_VIPS:
		case VRRP_ACT_SEND_GARP:
			util_bufprintf(buf, sizeof(buf), &off, "%s", vrrp_action_name(a->type));
			break;
		}
	}
	return buf;
}

/* The text of the (only) STATE action. */
static const char *state_text(const struct vrrp_actions *out)
{
	unsigned i;

	for (i = 0; i < out->n; i++)
		if (out->a[i].type == VRRP_ACT_STATE)
			return out->a[i].text;
	fail_msg("no STATE action in: %s", acts(out));
	return NULL;
}

static void rx(struct vrrp_fsm *fsm, uint64_t now, const char *src, uint8_t prio,
	       uint16_t interval_cs, struct vrrp_actions *out)
{
	struct vrrp_addr a = ip(src);

	vrrp_fsm_rx_advert(fsm, now, &a, prio, interval_cs, out);
}

/* Start at t=0 and let the master down timer make us master. */
static uint64_t make_master(struct vrrp_fsm *fsm, struct vrrp_actions *out)
{
	uint64_t t;

	vrrp_fsm_start(fsm, 0, out);
	t = vrrp_fsm_next_deadline(fsm);
	vrrp_fsm_timer(fsm, t, out);
	assert_int_equal(fsm->state, VRRP_STATE_MASTER);
	return t;
}

/* ---- timing -------------------------------------------------------------- */

static void test_timing_formulas(void **state)
{
	static const struct {
		uint8_t prio;
		uint16_t cs;
		uint64_t skew, down;
	} cases[] = {
	    {100, 100, 609, 3609}, /* 156 * 1000 / 256 = 609.375 */
	    {200, 100, 218, 3218}, /* 56 * 1000 / 256 = 218.75 */
	    {1, 100, 996, 3996},	{254, 100, 7, 3007},
	    {100, 10, 60, 360},		/* 100 ms adverts */
	    {150, 4095, 16955, 139805}, /* 106 * 40950 / 256 = 16955.9 */
	};
	struct vrrp_fsm fsm;
	struct vrrp_fsm_config cfg;
	unsigned i;

	(void)state;
	for (i = 0; i < UTIL_ARRAY_LEN(cases); i++) {
		cfg = config(cases[i].prio, cases[i].cs, true, 0);
		setup(&fsm, &cfg);
		assert_int_equal(vrrp_fsm_skew_ms(&fsm), cases[i].skew);
		assert_int_equal(vrrp_fsm_master_down_ms(&fsm), cases[i].down);
	}
}

static void test_start_backup_then_master_on_timer(void **state)
{
	struct vrrp_fsm_config cfg = config(100, 100, true, 0);
	struct vrrp_fsm fsm;
	struct vrrp_actions out;

	(void)state;
	setup(&fsm, &cfg);
	vrrp_fsm_start(&fsm, 1000, &out);
	/* Leftover VIPs from a killed predecessor go first. */
	assert_string_equal(acts(&out), "INIT>BACKUP DEL_VIPS");
	assert_string_equal(state_text(&out), "startup");
	assert_int_equal(out.a[0].reason, VRRP_REASON_STARTUP);
	assert_int_equal(vrrp_fsm_next_deadline(&fsm), 1000 + 3000 + 609);

	vrrp_fsm_timer(&fsm, 4608, &out);
	assert_int_equal(out.n, 0);
	assert_int_equal(fsm.state, VRRP_STATE_BACKUP);

	vrrp_fsm_timer(&fsm, 4609, &out);
	assert_string_equal(acts(&out), "BACKUP>MASTER SEND_ADVERT(100) ADD_VIPS SEND_GARP");
	assert_string_equal(state_text(&out), "master down timer expired");
	assert_int_equal(out.a[0].reason, VRRP_REASON_MASTER_DOWN);
	assert_true(vrrp_addr_equal(&fsm.master_addr, &cfg.primary));
	assert_int_equal(vrrp_fsm_next_deadline(&fsm), 5609);

	vrrp_fsm_timer(&fsm, 5609, &out);
	assert_string_equal(acts(&out), "SEND_ADVERT(100)");
	assert_int_equal(vrrp_fsm_next_deadline(&fsm), 6609);

	/* A second start is a no-op. */
	vrrp_fsm_start(&fsm, 6000, &out);
	assert_int_equal(out.n, 0);
}

static void test_backup_advert_restarts_down_timer(void **state)
{
	struct vrrp_fsm_config cfg = config(100, 100, true, 0);
	struct vrrp_fsm fsm;
	struct vrrp_actions out;
	char buf[64];

	(void)state;
	setup(&fsm, &cfg);
	vrrp_fsm_start(&fsm, 0, &out);
	rx(&fsm, 2000, "10.0.0.9", 150, 100, &out);
	assert_int_equal(out.n, 0);
	assert_int_equal(vrrp_fsm_next_deadline(&fsm), 2000 + 3609);
	assert_string_equal(vrrp_addr_fmt(&fsm.master_addr, buf, sizeof(buf)), "10.0.0.9");
	assert_int_equal(fsm.master_prio, 150);
	/* A master advertising every second keeps us backup for ever. */
	for (uint64_t t = 3000; t < 60000; t += 1000) {
		rx(&fsm, t, "10.0.0.9", 150, 100, &out);
		vrrp_fsm_timer(&fsm, t + 1, &out);
		assert_int_equal(out.n, 0);
	}
	assert_int_equal(fsm.state, VRRP_STATE_BACKUP);
}

static void test_owner_goes_master_at_once(void **state)
{
	struct vrrp_fsm_config cfg = config(255, 100, true, 0);
	struct vrrp_fsm fsm;
	struct vrrp_actions out;

	(void)state;
	setup(&fsm, &cfg);
	vrrp_fsm_start(&fsm, 500, &out);
	assert_string_equal(acts(&out), "INIT>MASTER SEND_ADVERT(255) ADD_VIPS SEND_GARP");
	assert_int_equal(out.a[0].reason, VRRP_REASON_OWNER);
	assert_int_equal(vrrp_fsm_next_deadline(&fsm), 1500);
}

/* ---- master receiving adverts -------------------------------------------- */

static void test_master_steps_down_on_higher_priority(void **state)
{
	struct vrrp_fsm_config cfg = config(100, 100, true, 0);
	struct vrrp_fsm fsm;
	struct vrrp_actions out;
	uint64_t t;

	(void)state;
	setup(&fsm, &cfg);
	t = make_master(&fsm, &out);
	rx(&fsm, t + 300, "10.0.0.9", 150, 200, &out);
	/* One last advert first (keepalived steps down silently), then the VIPs go. */
	assert_string_equal(acts(&out), "SEND_ADVERT(100) MASTER>BACKUP DEL_VIPS");
	assert_string_equal(state_text(&out), "higher priority advert from 10.0.0.9");
	assert_int_equal(out.a[1].reason, VRRP_REASON_HIGHER_PRIO);
	/* The new master's 2 s interval is adopted (v3). */
	assert_int_equal(fsm.master_adver_int_cs, 200);
	assert_int_equal(vrrp_fsm_next_deadline(&fsm), t + 300 + 6000 + 1218);
	assert_int_equal(fsm.master_prio, 150);
}

static void test_master_equal_priority_tie_break(void **state)
{
	struct vrrp_fsm_config cfg = config(100, 100, true, 0);
	struct vrrp_fsm fsm;
	struct vrrp_actions out;
	uint64_t t;

	(void)state;
	setup(&fsm, &cfg);
	t = make_master(&fsm, &out);
	/* 10.0.0.1 < 10.0.0.2: we win, and say so with GARPs at once. */
	rx(&fsm, t + 10, "10.0.0.1", 100, 100, &out);
	assert_string_equal(acts(&out), "SEND_ADVERT(100) SEND_GARP");
	assert_int_equal(fsm.state, VRRP_STATE_MASTER);
	/* 10.0.0.10 > 10.0.0.2 numerically (not as strings): we lose. */
	rx(&fsm, t + 20, "10.0.0.10", 100, 100, &out);
	assert_string_equal(acts(&out), "SEND_ADVERT(100) MASTER>BACKUP DEL_VIPS");
	assert_int_equal(out.a[1].reason, VRRP_REASON_HIGHER_ADDR);
	assert_string_equal(state_text(&out),
			    "equal priority advert from higher address 10.0.0.10");
}

static void test_master_answers_lower_priority(void **state)
{
	struct vrrp_fsm_config cfg = config(100, 100, true, 0);
	struct vrrp_fsm fsm;
	struct vrrp_actions out;
	uint64_t t;

	(void)state;
	setup(&fsm, &cfg);
	t = make_master(&fsm, &out);
	rx(&fsm, t + 1, "10.0.0.9", 50, 100, &out);
	assert_string_equal(acts(&out), "SEND_ADVERT(100) SEND_GARP");
	assert_int_equal(fsm.state, VRRP_STATE_MASTER);
	/* A leaving master's priority 0: answer so backups do not take over. */
	rx(&fsm, t + 2, "10.0.0.9", 0, 100, &out);
	assert_string_equal(acts(&out), "SEND_ADVERT(100)");
	assert_int_equal(fsm.state, VRRP_STATE_MASTER);
}

static void test_advert_timer_not_moved_by_rx(void **state)
{
	struct vrrp_fsm_config cfg = config(100, 100, true, 0);
	struct vrrp_fsm fsm;
	struct vrrp_actions out;
	uint64_t t, next;
	unsigned i;

	(void)state;
	setup(&fsm, &cfg);
	t = make_master(&fsm, &out);
	next = vrrp_fsm_next_deadline(&fsm);
	assert_int_equal(next, t + 1000);
	/* A storm of adverts (keepalived restarts its timer on each: we do not). */
	for (i = 0; i < 200; i++) {
		static const uint8_t prios[] = {0, 1, 50, 99, 100};

		rx(&fsm, t + 1 + i * 4, "10.0.0.1", prios[i % UTIL_ARRAY_LEN(prios)], 100, &out);
		assert_int_equal(vrrp_fsm_next_deadline(&fsm), next);
	}
	vrrp_fsm_timer(&fsm, next, &out);
	assert_string_equal(acts(&out), "SEND_ADVERT(100)");
	assert_int_equal(vrrp_fsm_next_deadline(&fsm), next + 1000);
}

static void test_own_advert_ignored(void **state)
{
	struct vrrp_fsm_config cfg = config(100, 100, true, 0);
	struct vrrp_fsm fsm;
	struct vrrp_actions out;
	uint64_t t;

	(void)state;
	setup(&fsm, &cfg);
	t = make_master(&fsm, &out);
	/* Answering our own looped-back advert would loop for ever. */
	rx(&fsm, t + 1, "10.0.0.2", 100, 100, &out);
	assert_int_equal(out.n, 0);
}

static void test_master_timer_late_no_burst(void **state)
{
	struct vrrp_fsm_config cfg = config(100, 100, true, 0);
	struct vrrp_fsm fsm;
	struct vrrp_actions out;
	uint64_t t, next;

	(void)state;
	setup(&fsm, &cfg);
	t = make_master(&fsm, &out);
	next = vrrp_fsm_next_deadline(&fsm);
	vrrp_fsm_timer(&fsm, next - 1, &out);
	assert_int_equal(out.n, 0);
	vrrp_fsm_timer(&fsm, next + 9500, &out); /* the loop stalled */
	assert_string_equal(acts(&out), "SEND_ADVERT(100) SEND_GARP");
	assert_int_equal(vrrp_fsm_next_deadline(&fsm), next + 9500 + 1000);
	(void)t;
}

/* garp delay from the configuration: another delay, or none at all. */
static void test_garp_repeat_configurable(void **state)
{
	struct vrrp_fsm_config cfg = config(100, 300, true, 0);
	struct vrrp_fsm fsm;
	struct vrrp_actions out;
	uint64_t t;

	(void)state;
	cfg.garp_repeat_ms = 1000;
	setup(&fsm, &cfg);
	t = make_master(&fsm, &out);
	assert_int_equal(vrrp_fsm_next_deadline(&fsm), t + 1000);
	vrrp_fsm_timer(&fsm, t + 1000, &out);
	assert_string_equal(acts(&out), "SEND_GARP");
	assert_int_equal(vrrp_fsm_next_deadline(&fsm), t + 3000);

	cfg.garp_repeat_ms = VRRP_NEVER;
	setup(&fsm, &cfg);
	t = make_master(&fsm, &out);
	assert_int_equal(fsm.garp_at_ms, VRRP_NEVER);
	assert_int_equal(vrrp_fsm_next_deadline(&fsm), t + 3000);
}

static void test_master_repeats_garp_once(void **state)
{
	struct vrrp_fsm_config cfg = config(100, 300, true, 0);
	struct vrrp_fsm fsm;
	struct vrrp_actions out;
	uint64_t t;

	(void)state;
	setup(&fsm, &cfg);
	t = make_master(&fsm, &out);
	assert_string_equal(acts(&out), "BACKUP>MASTER SEND_ADVERT(100) ADD_VIPS SEND_GARP");
	vrrp_fsm_timer(&fsm, vrrp_fsm_next_deadline(&fsm), &out);
	assert_string_equal(acts(&out), "SEND_ADVERT(100)");
	/* 5 s after the takeover, between two adverts 3 s apart. */
	assert_int_equal(vrrp_fsm_next_deadline(&fsm), t + VRRP_GARP_REPEAT_MS);
	vrrp_fsm_timer(&fsm, t + VRRP_GARP_REPEAT_MS, &out);
	assert_string_equal(acts(&out), "SEND_GARP");
	assert_int_equal(vrrp_fsm_next_deadline(&fsm), t + 6000);
	vrrp_fsm_timer(&fsm, t + 6000, &out);
	assert_string_equal(acts(&out), "SEND_ADVERT(100)");
	assert_int_equal(vrrp_fsm_next_deadline(&fsm), t + 9000);
	vrrp_fsm_timer(&fsm, t + 9000, &out);
	assert_string_equal(acts(&out), "SEND_ADVERT(100)");

	/* A master that steps down before the repeat does not send it. */
	setup(&fsm, &cfg);
	t = make_master(&fsm, &out);
	rx(&fsm, t + 1000, "10.0.0.9", 200, 300, &out);
	assert_int_equal(fsm.state, VRRP_STATE_BACKUP);
	assert_int_equal(fsm.garp_at_ms, VRRP_NEVER);
	rx(&fsm, t + 4000, "10.0.0.9", 200, 300, &out);
	vrrp_fsm_timer(&fsm, t + VRRP_GARP_REPEAT_MS, &out);
	assert_int_equal(out.n, 0);
}

/* ---- backup receiving adverts -------------------------------------------- */

static void test_priority0_master_after_skew_only(void **state)
{
	struct vrrp_fsm_config cfg = config(100, 100, true, 0);
	struct vrrp_fsm fsm;
	struct vrrp_actions out;

	(void)state;
	setup(&fsm, &cfg);
	vrrp_fsm_start(&fsm, 0, &out);
	rx(&fsm, 1000, "10.0.0.9", 150, 100, &out);
	rx(&fsm, 1500, "10.0.0.9", 0, 100, &out);
	assert_int_equal(out.n, 0);
	assert_int_equal(vrrp_fsm_next_deadline(&fsm), 1500 + 609);
	vrrp_fsm_timer(&fsm, 2108, &out);
	assert_int_equal(out.n, 0);
	vrrp_fsm_timer(&fsm, 2109, &out);
	assert_string_equal(acts(&out), "BACKUP>MASTER SEND_ADVERT(100) ADD_VIPS SEND_GARP");
	assert_int_equal(out.a[0].reason, VRRP_REASON_MASTER_STOPPED);
	assert_string_equal(state_text(&out), "master 10.0.0.9 left (priority 0)");
}

static void test_priority0_skew_at_100ms(void **state)
{
	struct vrrp_fsm_config cfg = config(100, 10, true, 0);
	struct vrrp_fsm fsm;
	struct vrrp_actions out;

	(void)state;
	setup(&fsm, &cfg);
	vrrp_fsm_start(&fsm, 0, &out);
	rx(&fsm, 100, "10.0.0.9", 150, 10, &out);
	rx(&fsm, 150, "10.0.0.9", 0, 10, &out);
	assert_int_equal(vrrp_fsm_next_deadline(&fsm), 150 + 60);
}

static void test_preempt_on_takes_over_lower_master(void **state)
{
	struct vrrp_fsm_config cfg = config(150, 100, true, 0);
	struct vrrp_fsm fsm;
	struct vrrp_actions out;
	uint64_t t;

	(void)state;
	setup(&fsm, &cfg);
	vrrp_fsm_start(&fsm, 0, &out);
	assert_int_equal(vrrp_fsm_next_deadline(&fsm), 3414); /* 3000 + 106*1000/256 */
	/* Lower-priority adverts are discarded: the down timer runs out. */
	for (t = 1000; t < 3414; t += 1000) {
		rx(&fsm, t, "10.0.0.9", 100, 100, &out);
		assert_int_equal(out.n, 0);
		assert_int_equal(vrrp_fsm_next_deadline(&fsm), 3414);
	}
	vrrp_fsm_timer(&fsm, 3414, &out);
	assert_string_equal(acts(&out), "BACKUP>MASTER SEND_ADVERT(150) ADD_VIPS SEND_GARP");
	assert_int_equal(out.a[0].reason, VRRP_REASON_PREEMPT);
	assert_string_equal(state_text(&out), "preempting lower priority master 10.0.0.9");
}

static void test_preempt_off_accepts_any_master(void **state)
{
	struct vrrp_fsm_config cfg = config(150, 100, false, 0);
	struct vrrp_fsm fsm;
	struct vrrp_actions out;
	uint64_t t;

	(void)state;
	setup(&fsm, &cfg);
	vrrp_fsm_start(&fsm, 0, &out);
	for (t = 1000; t < 30000; t += 1000) {
		rx(&fsm, t, "10.0.0.9", 100, 100, &out);
		assert_int_equal(vrrp_fsm_next_deadline(&fsm), t + 3414);
		vrrp_fsm_timer(&fsm, t + 999, &out);
		assert_int_equal(out.n, 0);
	}
	assert_int_equal(fsm.state, VRRP_STATE_BACKUP);
	/* Once the lower master is gone we do take over. */
	vrrp_fsm_timer(&fsm, 29000 + 3414, &out);
	assert_int_equal(fsm.state, VRRP_STATE_MASTER);
	assert_int_equal(out.a[0].reason, VRRP_REASON_MASTER_DOWN);
}

static void test_backup_never_preempts_equal(void **state)
{
	struct vrrp_fsm_config cfg = config(100, 100, true, 0);
	struct vrrp_fsm fsm;
	struct vrrp_actions out;

	(void)state;
	setup(&fsm, &cfg);
	vrrp_fsm_start(&fsm, 0, &out);
	/* Equal priority from a lower address: still accepted as master. */
	rx(&fsm, 1000, "10.0.0.1", 100, 100, &out);
	assert_int_equal(vrrp_fsm_next_deadline(&fsm), 1000 + 3609);
	rx(&fsm, 2000, "10.0.0.1", 100, 100, &out);
	assert_int_equal(vrrp_fsm_next_deadline(&fsm), 2000 + 3609);
}

static void test_preempt_delay(void **state)
{
	struct vrrp_fsm_config cfg = config(150, 100, true, 5000);
	struct vrrp_fsm fsm;
	struct vrrp_actions out;
	uint64_t t;

	(void)state;
	setup(&fsm, &cfg);
	vrrp_fsm_start(&fsm, 0, &out);
	/* The first lower advert starts the 5 s delay; until it ends the
	 * lower master is accepted. */
	for (t = 1000; t < 6000; t += 1000) {
		rx(&fsm, t, "10.0.0.9", 100, 100, &out);
		assert_int_equal(vrrp_fsm_next_deadline(&fsm), t + 3414);
	}
	assert_int_equal(fsm.preempt_at_ms, 6000);
	/* From 6 s on its adverts are discarded: take over 3414 ms after the
	 * last accepted one. */
	rx(&fsm, 6000, "10.0.0.9", 100, 100, &out);
	assert_int_equal(vrrp_fsm_next_deadline(&fsm), 5000 + 3414);
	rx(&fsm, 7000, "10.0.0.9", 100, 100, &out);
	rx(&fsm, 8000, "10.0.0.9", 100, 100, &out);
	vrrp_fsm_timer(&fsm, 8413, &out);
	assert_int_equal(out.n, 0);
	vrrp_fsm_timer(&fsm, 8414, &out);
	assert_string_equal(acts(&out), "BACKUP>MASTER SEND_ADVERT(150) ADD_VIPS SEND_GARP");
	assert_int_equal(out.a[0].reason, VRRP_REASON_PREEMPT);
	assert_int_equal(fsm.preempt_at_ms, VRRP_NEVER);
}

static void test_preempt_delay_restarts_after_higher_master(void **state)
{
	struct vrrp_fsm_config cfg = config(150, 100, true, 5000);
	struct vrrp_fsm fsm;
	struct vrrp_actions out;

	(void)state;
	setup(&fsm, &cfg);
	vrrp_fsm_start(&fsm, 0, &out);
	rx(&fsm, 1000, "10.0.0.9", 100, 100, &out);
	assert_int_equal(fsm.preempt_at_ms, 6000);
	/* A higher master cancels the running delay ... */
	rx(&fsm, 2000, "10.0.0.8", 200, 100, &out);
	assert_int_equal(fsm.preempt_at_ms, VRRP_NEVER);
	/* ... and the next lower one starts a fresh one. */
	rx(&fsm, 7000, "10.0.0.9", 100, 100, &out);
	assert_int_equal(fsm.preempt_at_ms, 12000);
	assert_int_equal(vrrp_fsm_next_deadline(&fsm), 7000 + 3414);
}

static void test_interval_adoption_v3_not_v2(void **state)
{
	struct vrrp_fsm_config cfg = config(100, 100, true, 0);
	struct vrrp_fsm fsm;
	struct vrrp_actions out;

	(void)state;
	setup(&fsm, &cfg);
	vrrp_fsm_start(&fsm, 0, &out);
	rx(&fsm, 100, "10.0.0.9", 200, 50, &out);
	assert_int_equal(fsm.master_adver_int_cs, 50);
	assert_int_equal(vrrp_fsm_skew_ms(&fsm), 304); /* 156 * 500 / 256 */
	assert_int_equal(vrrp_fsm_next_deadline(&fsm), 100 + 1500 + 304);
	/* As master we advertise our own interval again. */
	vrrp_fsm_timer(&fsm, 1904, &out);
	assert_int_equal(fsm.state, VRRP_STATE_MASTER);
	assert_int_equal(fsm.master_adver_int_cs, 100);
	assert_int_equal(vrrp_fsm_next_deadline(&fsm), 2904);

	cfg.version = 2;
	setup(&fsm, &cfg);
	vrrp_fsm_start(&fsm, 0, &out);
	rx(&fsm, 100, "10.0.0.9", 200, 200, &out);
	assert_int_equal(fsm.master_adver_int_cs, 100);
	assert_int_equal(vrrp_fsm_next_deadline(&fsm), 100 + 3609);
}

/* ---- shutdown, link, priority -------------------------------------------- */

static void test_shutdown(void **state)
{
	struct vrrp_fsm_config cfg = config(100, 100, true, 0);
	struct vrrp_fsm fsm;
	struct vrrp_actions out;
	uint64_t t;

	(void)state;
	setup(&fsm, &cfg);
	t = make_master(&fsm, &out);
	vrrp_fsm_shutdown(&fsm, t + 10, &out);
	assert_string_equal(acts(&out), "SEND_ADVERT(0) MASTER>INIT DEL_VIPS");
	assert_string_equal(state_text(&out), "shutdown");
	assert_int_equal(vrrp_fsm_next_deadline(&fsm), VRRP_NEVER);
	vrrp_fsm_shutdown(&fsm, t + 20, &out);
	assert_int_equal(out.n, 0);

	/* A backup just leaves; it holds no VIPs. */
	setup(&fsm, &cfg);
	vrrp_fsm_start(&fsm, 0, &out);
	vrrp_fsm_shutdown(&fsm, 10, &out);
	assert_string_equal(acts(&out), "BACKUP>INIT");
	assert_int_equal(vrrp_fsm_next_deadline(&fsm), VRRP_NEVER);
	/* It can start again. */
	vrrp_fsm_start(&fsm, 20, &out);
	assert_string_equal(acts(&out), "INIT>BACKUP DEL_VIPS");
}

static void test_link_down_up(void **state)
{
	struct vrrp_fsm_config cfg = config(100, 100, true, 0);
	struct vrrp_fsm fsm;
	struct vrrp_actions out;
	uint64_t t;

	(void)state;
	setup(&fsm, &cfg);
	t = make_master(&fsm, &out);
	vrrp_fsm_link(&fsm, t + 10, false, &out);
	assert_string_equal(acts(&out), "MASTER>FAULT DEL_VIPS");
	assert_string_equal(state_text(&out), "link down");
	assert_int_equal(vrrp_fsm_next_deadline(&fsm), VRRP_NEVER);
	vrrp_fsm_link(&fsm, t + 11, false, &out); /* repeated event */
	assert_int_equal(out.n, 0);
	/* Nothing moves in FAULT. */
	rx(&fsm, t + 20, "10.0.0.9", 50, 100, &out);
	assert_int_equal(out.n, 0);
	vrrp_fsm_timer(&fsm, t + 100000, &out);
	assert_int_equal(out.n, 0);
	assert_int_equal(fsm.state, VRRP_STATE_FAULT);

	vrrp_fsm_link(&fsm, 50000, true, &out);
	assert_string_equal(acts(&out), "FAULT>BACKUP DEL_VIPS");
	assert_string_equal(state_text(&out), "link up");
	assert_int_equal(vrrp_fsm_next_deadline(&fsm), 50000 + 3609);

	vrrp_fsm_link(&fsm, 50001, false, &out);
	assert_string_equal(acts(&out), "BACKUP>FAULT");
	vrrp_fsm_shutdown(&fsm, 50002, &out);
	assert_string_equal(acts(&out), "FAULT>INIT");
}

static void test_start_with_link_down(void **state)
{
	struct vrrp_fsm_config cfg = config(255, 100, true, 0);
	struct vrrp_fsm fsm;
	struct vrrp_actions out;

	(void)state;
	setup(&fsm, &cfg);
	vrrp_fsm_link(&fsm, 0, false, &out);
	assert_int_equal(out.n, 0);
	vrrp_fsm_start(&fsm, 10, &out);
	assert_string_equal(acts(&out), "INIT>FAULT DEL_VIPS");
	/* The owner goes straight to MASTER when the carrier comes. */
	vrrp_fsm_link(&fsm, 20, true, &out);
	assert_string_equal(acts(&out), "FAULT>MASTER SEND_ADVERT(255) ADD_VIPS SEND_GARP");
}

static void test_set_priority_master_keeps_advertising(void **state)
{
	struct vrrp_fsm_config cfg = config(100, 100, true, 0);
	struct vrrp_fsm fsm;
	struct vrrp_actions out;
	uint64_t t, next;

	(void)state;
	setup(&fsm, &cfg);
	t = make_master(&fsm, &out);
	next = vrrp_fsm_next_deadline(&fsm);
	vrrp_fsm_set_priority(&fsm, t + 5, 60, &out);
	assert_int_equal(out.n, 0);
	assert_int_equal(fsm.state, VRRP_STATE_MASTER);
	assert_int_equal(vrrp_fsm_next_deadline(&fsm), next);
	vrrp_fsm_timer(&fsm, next, &out);
	assert_string_equal(acts(&out), "SEND_ADVERT(60)");
	/* A backup at 80 now preempts us. */
	rx(&fsm, next + 10, "10.0.0.9", 80, 100, &out);
	assert_string_equal(acts(&out), "SEND_ADVERT(60) MASTER>BACKUP DEL_VIPS");
	/* Bounds: 0 means "leaving" on the wire, 255 is for owners. */
	vrrp_fsm_set_priority(&fsm, next + 20, 0, &out);
	assert_int_equal(fsm.priority, 1);
	vrrp_fsm_set_priority(&fsm, next + 20, 255, &out);
	assert_int_equal(fsm.priority, 254);
}

static void test_set_priority_backup_preempts(void **state)
{
	struct vrrp_fsm_config cfg = config(100, 100, true, 0);
	struct vrrp_fsm fsm;
	struct vrrp_actions out;

	(void)state;
	setup(&fsm, &cfg);
	vrrp_fsm_start(&fsm, 0, &out);
	rx(&fsm, 1000, "10.0.0.9", 120, 100, &out);
	assert_int_equal(vrrp_fsm_next_deadline(&fsm), 1000 + 3609);
	vrrp_fsm_set_priority(&fsm, 1500, 150, &out);
	assert_int_equal(out.n, 0);
	/* The master at 120 is now lower: its adverts no longer hold us. */
	rx(&fsm, 2000, "10.0.0.9", 120, 100, &out);
	rx(&fsm, 3000, "10.0.0.9", 120, 100, &out);
	assert_int_equal(vrrp_fsm_next_deadline(&fsm), 1000 + 3609);
	vrrp_fsm_timer(&fsm, 4609, &out);
	assert_string_equal(acts(&out), "BACKUP>MASTER SEND_ADVERT(150) ADD_VIPS SEND_GARP");
	assert_int_equal(out.a[0].reason, VRRP_REASON_PREEMPT);
}

static void test_init_ignores_input_and_rejects_bad_config(void **state)
{
	struct vrrp_fsm_config cfg = config(100, 100, true, 0), bad;
	struct vrrp_fsm fsm;
	struct vrrp_actions out;

	(void)state;
	setup(&fsm, &cfg);
	rx(&fsm, 1, "10.0.0.9", 200, 100, &out);
	assert_int_equal(out.n, 0);
	vrrp_fsm_timer(&fsm, 100000, &out);
	assert_int_equal(out.n, 0);
	assert_int_equal(fsm.state, VRRP_STATE_INIT);

	bad = cfg;
	bad.version = 4;
	assert_int_equal(vrrp_fsm_init(&fsm, &bad), -1);
	bad = cfg;
	bad.priority = 0;
	assert_int_equal(vrrp_fsm_init(&fsm, &bad), -1);
	bad = cfg;
	bad.adver_int_cs = 0;
	assert_int_equal(vrrp_fsm_init(&fsm, &bad), -1);
	bad.adver_int_cs = 4096;
	assert_int_equal(vrrp_fsm_init(&fsm, &bad), -1);
	bad = cfg;
	bad.version = 2;
	bad.adver_int_cs = 150;
	assert_int_equal(vrrp_fsm_init(&fsm, &bad), -1);
	bad.adver_int_cs = 200;
	assert_int_equal(vrrp_fsm_init(&fsm, &bad), 0);
	bad = cfg;
	memset(&bad.primary, 0, sizeof(bad.primary));
	assert_int_equal(vrrp_fsm_init(&fsm, &bad), -1);
}

static void test_names(void **state)
{
	(void)state;
	assert_string_equal(vrrp_state_name(VRRP_STATE_INIT), "INIT");
	assert_string_equal(vrrp_state_name(VRRP_STATE_BACKUP), "BACKUP");
	assert_string_equal(vrrp_state_name(VRRP_STATE_MASTER), "MASTER");
	assert_string_equal(vrrp_state_name(VRRP_STATE_FAULT), "FAULT");
	assert_string_equal(vrrp_action_name(VRRP_ACT_SEND_GARP), "SEND_GARP");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_timing_formulas),
	    cmocka_unit_test(test_start_backup_then_master_on_timer),
	    cmocka_unit_test(test_backup_advert_restarts_down_timer),
	    cmocka_unit_test(test_owner_goes_master_at_once),
	    cmocka_unit_test(test_master_steps_down_on_higher_priority),
	    cmocka_unit_test(test_master_equal_priority_tie_break),
	    cmocka_unit_test(test_master_answers_lower_priority),
	    cmocka_unit_test(test_advert_timer_not_moved_by_rx),
	    cmocka_unit_test(test_own_advert_ignored),
	    cmocka_unit_test(test_master_timer_late_no_burst),
	    cmocka_unit_test(test_master_repeats_garp_once),
	    cmocka_unit_test(test_garp_repeat_configurable),
	    cmocka_unit_test(test_priority0_master_after_skew_only),
	    cmocka_unit_test(test_priority0_skew_at_100ms),
	    cmocka_unit_test(test_preempt_on_takes_over_lower_master),
	    cmocka_unit_test(test_preempt_off_accepts_any_master),
	    cmocka_unit_test(test_backup_never_preempts_equal),
	    cmocka_unit_test(test_preempt_delay),
	    cmocka_unit_test(test_preempt_delay_restarts_after_higher_master),
	    cmocka_unit_test(test_interval_adoption_v3_not_v2),
	    cmocka_unit_test(test_shutdown),
	    cmocka_unit_test(test_link_down_up),
	    cmocka_unit_test(test_start_with_link_down),
	    cmocka_unit_test(test_set_priority_master_keeps_advertising),
	    cmocka_unit_test(test_set_priority_backup_preempts),
	    cmocka_unit_test(test_init_ignores_input_and_rejects_bad_config),
	    cmocka_unit_test(test_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
