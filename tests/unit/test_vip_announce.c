/* Unit tests for the announce decision (vip_announce.c): a clock and a
 * list of conditions in, the kernel actions and causes out. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "sluice/vip.h"

#define POOL_DOWN "pool web has no usable server"

static enum vip_announce_action step(struct vip_announce *a, const char *cause, uint64_t now,
				     uint64_t *next)
{
	return vip_announce_step(a, cause, now, 1000000 + now, next);
}

/* Healthy from the start: announced exactly when the hold-down has passed. */
static void test_hold_down(void **state)
{
	struct vip_announce a;
	uint64_t next;

	(void)state;
	vip_announce_init(&a, 2000, false, 100, 0);
	assert_int_equal(a.state, VIP_ANNOUNCE_WITHDRAWN);
	assert_string_equal(a.cause, "starting");
	assert_int_equal(step(&a, NULL, 100, &next), VIP_ANNOUNCE_KEEP);
	assert_int_equal(a.state, VIP_ANNOUNCE_HOLD_DOWN);
	assert_int_equal(next, 2100);
	assert_int_equal(step(&a, NULL, 2099, &next), VIP_ANNOUNCE_KEEP);
	assert_int_equal(next, 2100);
	assert_int_equal(step(&a, NULL, 2100, &next), VIP_ANNOUNCE_DO_ADD);
	assert_int_equal(a.state, VIP_ANNOUNCE_ANNOUNCED);
	assert_int_equal(next, UINT64_MAX);
	assert_string_equal(a.cause, "");
	assert_int_equal(a.since_ms, 2100);
	assert_int_equal(a.since_wall_ms, 1002100);
	assert_int_equal(a.announces, 1);
	/* staying healthy changes nothing */
	assert_int_equal(step(&a, NULL, 9000, &next), VIP_ANNOUNCE_KEEP);
	assert_int_equal(a.announces, 1);
}

/* A failing condition withdraws at once, with its cause; recovery waits a
 * full hold-down again. */
static void test_withdraw_and_recover(void **state)
{
	struct vip_announce a;
	uint64_t next;

	(void)state;
	vip_announce_init(&a, 500, false, 0, 0);
	step(&a, NULL, 0, &next);
	assert_int_equal(step(&a, NULL, 500, &next), VIP_ANNOUNCE_DO_ADD);
	assert_int_equal(step(&a, POOL_DOWN, 700, &next), VIP_ANNOUNCE_DO_DEL);
	assert_int_equal(a.state, VIP_ANNOUNCE_WITHDRAWN);
	assert_string_equal(a.cause, POOL_DOWN);
	assert_int_equal(a.withdrawn_ms, 700);
	assert_int_equal(a.withdraws, 1);
	assert_int_equal(next, UINT64_MAX);
	/* still down, another cause: no second withdraw, the cause follows */
	assert_int_equal(step(&a, "node drained", 800, &next), VIP_ANNOUNCE_KEEP);
	assert_string_equal(a.cause, "node drained");
	assert_int_equal(a.withdraws, 1);
	assert_int_equal(step(&a, NULL, 1000, &next), VIP_ANNOUNCE_KEEP);
	assert_int_equal(next, 1500);
	assert_int_equal(step(&a, NULL, 1500, &next), VIP_ANNOUNCE_DO_ADD);
	assert_int_equal(a.announces, 2);
}

/* A flap during the hold-down starts it again: flap damping. */
static void test_flap_restarts_hold_down(void **state)
{
	struct vip_announce a;
	uint64_t next;

	(void)state;
	vip_announce_init(&a, 1000, false, 0, 0);
	step(&a, NULL, 0, &next);
	assert_int_equal(step(&a, POOL_DOWN, 900, &next), VIP_ANNOUNCE_KEEP);
	assert_int_equal(a.state, VIP_ANNOUNCE_WITHDRAWN);
	assert_int_equal(a.withdraws, 0); /* never announced: nothing to withdraw */
	assert_int_equal(step(&a, NULL, 950, &next), VIP_ANNOUNCE_KEEP);
	assert_int_equal(next, 1950);
	assert_int_equal(step(&a, NULL, 1000, &next), VIP_ANNOUNCE_KEEP);
	assert_int_equal(step(&a, NULL, 1950, &next), VIP_ANNOUNCE_DO_ADD);
}

/* Zero hold-down: announced in the step that sees every condition hold. */
static void test_zero_hold_down(void **state)
{
	struct vip_announce a;
	uint64_t next;

	(void)state;
	vip_announce_init(&a, 0, false, 10, 0);
	assert_int_equal(step(&a, NULL, 10, &next), VIP_ANNOUNCE_DO_ADD);
	assert_int_equal(a.state, VIP_ANNOUNCE_ANNOUNCED);
}

/* Inherited through a binary upgrade: announced with no hold-down, and
 * withdrawn as soon as a condition fails. */
static void test_inherited(void **state)
{
	struct vip_announce a;
	uint64_t next;

	(void)state;
	vip_announce_init(&a, 2000, true, 50, 0);
	assert_int_equal(a.state, VIP_ANNOUNCE_ANNOUNCED);
	assert_int_equal(step(&a, NULL, 50, &next), VIP_ANNOUNCE_KEEP);
	assert_int_equal(a.announces, 0);
	assert_int_equal(step(&a, "shutting down", 60, &next), VIP_ANNOUNCE_DO_DEL);
	assert_string_equal(a.cause, "shutting down");
}

/* An add that failed: withdrawn with the error, retried no sooner than
 * VIP_ANNOUNCE_RETRY_MS later even with no hold-down. */
static void test_failed_add_retries(void **state)
{
	struct vip_announce a;
	uint64_t next;

	(void)state;
	vip_announce_init(&a, 0, false, 0, 0);
	assert_int_equal(step(&a, NULL, 100, &next), VIP_ANNOUNCE_DO_ADD);
	vip_announce_failed(&a, "add 198.51.100.10/32 on vip0: No such device", 100, 0);
	assert_int_equal(a.state, VIP_ANNOUNCE_WITHDRAWN);
	assert_string_equal(a.cause, "error: add 198.51.100.10/32 on vip0: No such device");
	assert_int_equal(a.errors, 1);
	assert_int_equal(a.announces, 0);
	assert_int_equal(step(&a, NULL, 101, &next), VIP_ANNOUNCE_KEEP);
	assert_int_equal(next, 100 + VIP_ANNOUNCE_RETRY_MS);
	assert_int_equal(step(&a, NULL, 100 + VIP_ANNOUNCE_RETRY_MS, &next), VIP_ANNOUNCE_DO_ADD);
	assert_int_equal(a.announces, 1);
	assert_int_equal(a.retry_at_ms, 0);
}

/* A reload that shortens the hold-down applies to a block waiting now. */
static void test_reload_hold_down(void **state)
{
	struct vip_announce a;
	uint64_t next;

	(void)state;
	vip_announce_init(&a, 10000, false, 0, 0);
	step(&a, NULL, 0, &next);
	assert_int_equal(next, 10000);
	vip_announce_set_hold_down(&a, 300);
	assert_int_equal(step(&a, NULL, 200, &next), VIP_ANNOUNCE_KEEP);
	assert_int_equal(next, 300);
	assert_int_equal(step(&a, NULL, 300, &next), VIP_ANNOUNCE_DO_ADD);
	assert_string_equal(vip_announce_state_name(a.state), "announced");
}

/* A cause longer than the buffer is cut, never overrun. */
static void test_long_cause(void **state)
{
	struct vip_announce a;
	char big[600];
	uint64_t next;

	(void)state;
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	vip_announce_init(&a, 0, true, 0, 0);
	assert_int_equal(step(&a, big, 1, &next), VIP_ANNOUNCE_DO_DEL);
	assert_int_equal(strlen(a.cause), sizeof(a.cause) - 1);
	vip_announce_failed(&a, big, 2, 0);
	assert_int_equal(strlen(a.cause), sizeof(a.cause) - 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_hold_down),
	    cmocka_unit_test(test_withdraw_and_recover),
	    cmocka_unit_test(test_flap_restarts_hold_down),
	    cmocka_unit_test(test_zero_hold_down),
	    cmocka_unit_test(test_inherited),
	    cmocka_unit_test(test_failed_add_retries),
	    cmocka_unit_test(test_reload_hold_down),
	    cmocka_unit_test(test_long_cause),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
