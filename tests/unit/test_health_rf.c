/* Unit tests for the rise/fall hysteresis: exactly `fall` failures in a row
 * take a server down and exactly `rise` successes bring it back; a result
 * of the other kind resets the count; forcing down needs `rise` again. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "sluice/health.h"

static void test_fall_then_rise(void **state)
{
	struct health_rf rf;

	(void)state;
	health_rf_init(&rf, 2, 3, true);
	assert_int_equal(health_rf_update(&rf, false), HEALTH_RF_NONE);
	assert_int_equal(health_rf_update(&rf, false), HEALTH_RF_NONE);
	assert_int_equal(rf.bad, 2);
	assert_int_equal(health_rf_update(&rf, false), HEALTH_RF_WENT_DOWN);
	assert_false(rf.up);
	assert_int_equal(rf.bad, 3);
	assert_int_equal(health_rf_update(&rf, false), HEALTH_RF_NONE);
	assert_int_equal(health_rf_update(&rf, true), HEALTH_RF_NONE);
	assert_int_equal(rf.good, 1);
	assert_int_equal(health_rf_update(&rf, true), HEALTH_RF_WENT_UP);
	assert_true(rf.up);
	assert_int_equal(rf.good, 2);
	assert_int_equal(health_rf_update(&rf, true), HEALTH_RF_NONE);
}

static void test_reset_by_other_result(void **state)
{
	struct health_rf rf;

	(void)state;
	health_rf_init(&rf, 3, 2, true);
	assert_int_equal(health_rf_update(&rf, false), HEALTH_RF_NONE);
	assert_int_equal(health_rf_update(&rf, true), HEALTH_RF_NONE);
	assert_int_equal(rf.bad, 0);
	assert_int_equal(health_rf_update(&rf, false), HEALTH_RF_NONE);
	assert_int_equal(health_rf_update(&rf, false), HEALTH_RF_WENT_DOWN);
	assert_int_equal(health_rf_update(&rf, true), HEALTH_RF_NONE);
	assert_int_equal(health_rf_update(&rf, true), HEALTH_RF_NONE);
	assert_int_equal(health_rf_update(&rf, false), HEALTH_RF_NONE);
	assert_int_equal(rf.good, 0);
	assert_int_equal(health_rf_update(&rf, true), HEALTH_RF_NONE);
	assert_int_equal(health_rf_update(&rf, true), HEALTH_RF_NONE);
	assert_int_equal(health_rf_update(&rf, true), HEALTH_RF_WENT_UP);
}

static void test_one_one(void **state)
{
	struct health_rf rf;

	(void)state;
	health_rf_init(&rf, 0, 0, true); /* clamped to 1 */
	assert_int_equal(health_rf_update(&rf, false), HEALTH_RF_WENT_DOWN);
	assert_int_equal(health_rf_update(&rf, true), HEALTH_RF_WENT_UP);
}

static void test_force_down(void **state)
{
	struct health_rf rf;

	(void)state;
	health_rf_init(&rf, 2, 3, true);
	assert_int_equal(health_rf_update(&rf, false), HEALTH_RF_NONE);
	health_rf_force_down(&rf);
	assert_false(rf.up);
	assert_int_equal(health_rf_update(&rf, true), HEALTH_RF_NONE);
	assert_int_equal(health_rf_update(&rf, true), HEALTH_RF_WENT_UP);
	/* starting down (not used at start-up, but allowed) */
	health_rf_init(&rf, 1, 1, false);
	assert_int_equal(health_rf_update(&rf, true), HEALTH_RF_WENT_UP);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_fall_then_rise),
	    cmocka_unit_test(test_reset_by_other_result),
	    cmocka_unit_test(test_one_one),
	    cmocka_unit_test(test_force_down),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
