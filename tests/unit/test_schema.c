/*
 * Schema inference (engine/schema.c): the name rule, the type of a value,
 * which values fit a column, and evolution of a table spec (new columns,
 * widening, collisions, contracts).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "engine/schema.h"

static void norm_is(const char *in, const char *want)
{
	as_buf b = AS_BUF_INIT;

	assert_int_equal(as_schema_norm(in, strlen(in), &b), 0);
	assert_string_equal(as_buf_cstr(&b), want);
	as_buf_free(&b);
}

static void test_names(void **state)
{
	(void)state;
	norm_is("id", "id");
	norm_is("userId", "user_id");
	norm_is("downloadCount2", "download_count2");
	norm_is("v2Name", "v2_name");
	norm_is("HTTPCode", "httpcode");
	norm_is("Weird Name!", "weird_name");
	norm_is("a--b", "a_b");
	norm_is("a.b", "a_b");
	norm_is("2fa", "_2fa");
	norm_is("", "_");
	norm_is("-", "_");
	norm_is("caf\xc3\xa9", "caf");
	norm_is("snake_case_ok", "snake_case_ok");
}

static as_type type_of(const char *json)
{
	json_t *v = json_loads(json, JSON_DECODE_ANY, NULL);
	as_type t;

	assert_non_null(v);
	t = as_schema_type_of(v);
	json_decref(v);
	return t;
}

static void test_types(void **state)
{
	(void)state;
	assert_int_equal(type_of("1"), AS_TYPE_INTEGER);
	assert_int_equal(type_of("1.5"), AS_TYPE_REAL);
	assert_int_equal(type_of("true"), AS_TYPE_BOOLEAN);
	assert_int_equal(type_of("\"x\""), AS_TYPE_TEXT);
	assert_int_equal(type_of("\"2026-01-02T03:04:05Z\""),
			 AS_TYPE_TIMESTAMP);
	assert_int_equal(type_of("\"2026-01-02T03:04:05.123+02:00\""),
			 AS_TYPE_TIMESTAMP);
	/* a date alone, or a date-time-looking text that is not one */
	assert_int_equal(type_of("\"2026-01-02\""), AS_TYPE_TEXT);
	assert_int_equal(type_of("\"2026-13-02T03:04:05Z\""), AS_TYPE_TEXT);
	assert_int_equal(type_of("[1]"), AS_TYPE_JSON);
	assert_int_equal(type_of("{}"), AS_TYPE_JSON);
	assert_int_equal(type_of("null"), AS_TYPE_AUTO);
}

static int fits(as_type t, const char *json)
{
	json_t *v = json_loads(json, JSON_DECODE_ANY, NULL);
	int f = as_schema_fits(t, v);

	json_decref(v);
	return f;
}

static void test_fits(void **state)
{
	(void)state;
	assert_int_equal(fits(AS_TYPE_INTEGER, "1"), 1);
	assert_int_equal(fits(AS_TYPE_INTEGER, "1.5"), -1); /* widen */
	assert_int_equal(fits(AS_TYPE_INTEGER, "\"1\""), 0);
	assert_int_equal(fits(AS_TYPE_INTEGER, "true"), 0);
	assert_int_equal(fits(AS_TYPE_REAL, "1"), 1);
	assert_int_equal(fits(AS_TYPE_REAL, "false"), 0);
	assert_int_equal(fits(AS_TYPE_BOOLEAN, "1"), 0);
	assert_int_equal(fits(AS_TYPE_TEXT, "\"2026-01-02T03:04:05Z\""), 1);
	assert_int_equal(fits(AS_TYPE_TIMESTAMP, "\"soon\""), 0);
	assert_int_equal(fits(AS_TYPE_TIMESTAMP, "1767225600"), 0);
	assert_int_equal(fits(AS_TYPE_JSON, "[]"), 1);
	assert_int_equal(fits(AS_TYPE_JSON, "1"), 0);
}

/* A spec with key id, inferring; the caller clears it. */
static void spec(as_table *t)
{
	memset(t, 0, sizeof(*t));
	t->dataset = strdup("d");
	t->table = strdup("d");
	t->infer = 1;
	t->flatten_depth = 2;
	assert_int_equal(
		as_table_add_col(t, "id", "id", AS_TYPE_INTEGER, AS_COL_KEY),
		0);
	t->nkey = 1;
}

static int evolve(as_table *t, const char *json, as_schema_stats *st,
		  as_error *err)
{
	json_t *v = json_loads(json, 0, NULL);
	int rc;

	assert_non_null(v);
	as_error_clear(err);
	rc = as_schema_evolve(t, v, "f.jsonl:7", st, err);
	json_decref(v);
	return rc;
}

static void test_evolve(void **state)
{
	as_schema_stats st = {0};
	as_error err;
	as_table t;

	(void)state;
	spec(&t);
	assert_int_equal(evolve(&t,
				"{\"id\":1,\"a\":{\"b\":{\"c\":1},\"n\":1},"
				"\"tags\":[1],\"x\":null}",
				&st, &err),
			 0);
	/* a__b is json (depth 2), a__n integer; null makes no column */
	assert_int_equal(t.ncols, 4);
	assert_string_equal(t.cols[1].name, "a__b");
	assert_int_equal(t.cols[1].type, AS_TYPE_JSON);
	assert_string_equal(t.cols[1].path, "a.b");
	assert_string_equal(t.cols[2].name, "a__n");
	assert_int_equal(t.cols[2].type, AS_TYPE_INTEGER);
	assert_int_equal(t.cols[2].flags, AS_COL_INFERRED | AS_COL_NEW);
	assert_string_equal(t.cols[3].name, "tags");
	assert_int_equal(st.added, 3);
	/* a real in an integer column widens it; a column the live table had
	 * is marked widened */
	t.cols[2].flags &= ~(unsigned)AS_COL_NEW;
	assert_int_equal(evolve(&t, "{\"id\":2,\"a\":{\"n\":1.5}}", &st, &err),
			 0);
	assert_int_equal(t.cols[2].type, AS_TYPE_REAL);
	assert_true(t.cols[2].flags & AS_COL_WIDENED);
	/* two fields, one name: a configuration error naming both */
	assert_int_equal(
		evolve(&t, "{\"id\":3,\"userId\":1,\"user_id\":2}", &st, &err),
		AS_EUSAGE);
	assert_non_null(strstr(err.msg, "'userId'"));
	assert_non_null(strstr(err.msg, "'user_id'"));
	/* reserved and too long names */
	assert_int_equal(evolve(&t, "{\"_atomsync_run\":1}", &st, &err),
			 AS_EUSAGE);
	as_table_clear(&t);
}

static void test_contracts(void **state)
{
	as_schema_stats st = {.contract_applies = 1};
	as_error err;
	as_table t;

	(void)state;
	spec(&t);
	t.contract = AS_CONTRACT_FREEZE;
	assert_int_equal(evolve(&t, "{\"id\":1,\"new\":1}", &st, &err),
			 AS_EINPUT);
	assert_string_equal(err.msg, "f.jsonl:7: field 'new' has no column in "
				     "table d (schema_contract: freeze)");
	assert_int_equal(t.ncols, 1);
	t.contract = AS_CONTRACT_DISCARD_VALUE;
	assert_int_equal(evolve(&t, "{\"id\":1,\"new\":1,\"o\":2}", &st, &err),
			 0);
	assert_int_equal(st.discarded_values, 2);
	assert_int_equal(t.ncols, 1);
	t.contract = AS_CONTRACT_DISCARD_ROW;
	assert_int_equal(evolve(&t, "{\"id\":1,\"new\":1}", &st, &err),
			 AS_EDISCARD);
	assert_int_equal(t.ncols, 1);
	/* a table not created yet takes its first columns whatever the
	 * contract */
	st.contract_applies = 0;
	t.contract = AS_CONTRACT_FREEZE;
	assert_int_equal(evolve(&t, "{\"id\":1,\"new\":1}", &st, &err), 0);
	assert_int_equal(t.ncols, 2);
	as_table_clear(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names),	  cmocka_unit_test(test_types),
		cmocka_unit_test(test_fits),	  cmocka_unit_test(test_evolve),
		cmocka_unit_test(test_contracts),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
