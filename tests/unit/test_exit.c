/*
 * Unit tests of cli/exit.c (compiled into this test: the CLI is not in the
 * library): the exit code of each error class (DESIGN.md "Exit codes") and
 * how the results of several datasets of one command combine.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "cli/cli.h"

static void test_exit_code(void **state)
{
	(void)state;
	assert_int_equal(as_exit_code(AS_OK), 0);
	assert_int_equal(as_exit_code(AS_EUSAGE), 2);
	assert_int_equal(as_exit_code(AS_EREFUSED), 3);
	assert_int_equal(as_exit_code(AS_ELEASE), 4);
	/* A run whose lease was taken over published nothing: another worker
	 * has the dataset. */
	assert_int_equal(as_exit_code(AS_EFENCED), 4);
	/* Everything else is a failed run: nothing published. */
	assert_int_equal(as_exit_code(AS_ERROR), 1);
	assert_int_equal(as_exit_code(AS_ESOURCE), 1);
	assert_int_equal(as_exit_code(AS_EINPUT), 1);
	assert_int_equal(as_exit_code(AS_ESTORE), 1);
	assert_int_equal(as_exit_code(AS_ENOMEM), 1);
	assert_int_equal(as_exit_code(AS_EINTR), 1);
	assert_int_equal(as_exit_code(AS_ENOTFOUND), 1);
	assert_int_equal(as_exit_code(-99), 1);
	/* The constants are the documented numbers. */
	assert_int_equal(AS_EXIT_OK, 0);
	assert_int_equal(AS_EXIT_FAILED, 1);
	assert_int_equal(AS_EXIT_USAGE, 2);
	assert_int_equal(AS_EXIT_REFUSED, 3);
	assert_int_equal(AS_EXIT_LEASED, 4);
}

#define COMBINE(...)                                                           \
	as_exit_combine((const int[]){__VA_ARGS__},                            \
			sizeof((const int[]){__VA_ARGS__}) / sizeof(int))

static void test_exit_combine(void **state)
{
	(void)state;
	/* Nothing to run, or everything published. */
	assert_int_equal(as_exit_combine(NULL, 0), 0);
	assert_int_equal(COMBINE(0), 0);
	assert_int_equal(COMBINE(0, 0, 0), 0);
	/* A single result is itself. */
	assert_int_equal(COMBINE(1), 1);
	assert_int_equal(COMBINE(2), 2);
	assert_int_equal(COMBINE(3), 3);
	assert_int_equal(COMBINE(4), 4);
	/* usage > failed > refused, in any order. */
	assert_int_equal(COMBINE(3, 1, 2), 2);
	assert_int_equal(COMBINE(2, 1, 3), 2);
	assert_int_equal(COMBINE(0, 4, 2), 2);
	assert_int_equal(COMBINE(3, 1), 1);
	assert_int_equal(COMBINE(1, 3), 1);
	assert_int_equal(COMBINE(4, 1, 0), 1);
	assert_int_equal(COMBINE(0, 3), 3);
	assert_int_equal(COMBINE(3, 4), 3);
	assert_int_equal(COMBINE(4, 3, 4), 3);
	/* Leased: 4 only when every dataset was skipped; a dataset that
	 * another worker runs is not this worker's failure. */
	assert_int_equal(COMBINE(4, 4, 4), 4);
	assert_int_equal(COMBINE(0, 4), 0);
	assert_int_equal(COMBINE(4, 0, 4), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exit_code),
		cmocka_unit_test(test_exit_combine),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
