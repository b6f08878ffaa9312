/*
 * Unit tests of util/json: strict record parsing (errors name "where:col"
 * and the reason; invariant 9 needs both) and compact serialization whose
 * reals are short when they can be and always exact.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/json.h"

#define WHERE "addons.jsonl:1812"

/* Expect a rejection reading exactly "WHERE:col: ..." with reason inside;
 * col NOCOL: "WHERE: ...", ANYCOL: either form. */
#define NOCOL 0
#define ANYCOL (-1)

static void expect_error(const char *text, size_t len, int col,
			 const char *reason)
{
	char prefix[64];
	as_error err;
	json_t *v;

	as_error_clear(&err);
	v = as_json_parse_record(text, len, WHERE, &err);
	if (v) {
		json_decref(v);
		fail_msg("accepted: %s", text);
	}
	assert_int_equal(err.code, AS_EINPUT);
	if (col > 0) {
		snprintf(prefix, sizeof(prefix), "%s:%d: ", WHERE, col);
	} else if (col == ANYCOL &&
		   strncmp(err.msg, WHERE ":", strlen(WHERE ":")) == 0 &&
		   atoi(err.msg + strlen(WHERE ":")) > 0) {
		snprintf(prefix, sizeof(prefix), "%s:%d: ", WHERE,
			 atoi(err.msg + strlen(WHERE ":")));
	} else {
		snprintf(prefix, sizeof(prefix), "%s: ", WHERE);
	}
	if (strncmp(err.msg, prefix, strlen(prefix)) != 0)
		fail_msg("'%s' does not start with '%s'", err.msg, prefix);
	if (!strstr(err.msg + strlen(prefix), reason))
		fail_msg("'%s' does not give the reason '%s'", err.msg, reason);
	assert_null(strchr(err.msg, '\n'));
}

static void test_parse_errors(void **state)
{
	static const char bad_utf8[] = "{\"a\":\"\xff\"}";
	static const char bad_cont[] = "{\"name\":\"caf\xc3\"}";
	static const char nul[] = "{\"a\":1}\0{\"b\":2}";

	(void)state;
	/* Syntax: the column is where the parser stopped. */
	expect_error("{\"a\":1,}", 8, 8, "expected");
	expect_error("{\"a\" 1}", 7, 6, "':' expected");
	expect_error("{\"a\":tru}", 9, ANYCOL, "invalid token");
	expect_error("{\"a\":NaN}", 9, 8, "invalid token");
	expect_error("", 0, ANYCOL, "expected");
	/* Duplicate keys are rejected, not resolved silently. */
	expect_error("{\"a\":1,\"a\":2}", 13, 10, "duplicate object key");
	expect_error("{\"o\":{\"k\":1,\"k\":1}}", 19, ANYCOL,
		     "duplicate object key");
	/* Invalid UTF-8 names the byte. */
	expect_error(bad_utf8, sizeof(bad_utf8) - 1, 6,
		     "unable to decode byte 0xff");
	expect_error(bad_cont, sizeof(bad_cont) - 1, ANYCOL,
		     "unable to decode byte");
	/* Trailing garbage, including a second record on the same line. */
	expect_error("{\"a\":1} x", 9, 9, "end of file expected");
	expect_error("{\"a\":1}{\"b\":2}", 14, 8, "end of file expected");
	expect_error(nul, sizeof(nul) - 1, ANYCOL, "");
	/* Not an object. */
	expect_error("[1,2]", 5, NOCOL, "expected a JSON object, got an array");
	expect_error("42", 2, ANYCOL, "expected");
	expect_error("\"s\"", 3, ANYCOL, "expected");
	expect_error("null", 4, ANYCOL, "expected");
	/* A real out of range is an error, never a rounded value (integers
	 * out of the int64 range are kept: test_big_integers). */
	expect_error("{\"a\":1e400}", 11, ANYCOL, "overflow");
	/* A record already holding \u0000 is refused as before. */
	expect_error("{\"s\":\"\\u0000\",\"a\":9223372036854775808}", 37,
		     ANYCOL, "");
}

/* Integers beyond int64 are kept as their exact digits, marked so that a
 * typed column can refuse them, and printed back as numbers. */
static void test_big_integers(void **state)
{
	const char *text =
		"{\"a\":9223372036854775808,\"b\":[-9223372036854775809,"
		"1.5,9223372036854775807],\"s\":\"12345678901234567890123\"}";
	const char *digits = NULL;
	as_error err;
	json_t *v;
	char *out;

	(void)state;
	v = as_json_parse_record(text, strlen(text), WHERE, &err);
	assert_non_null(v);
	assert_true(as_json_big_integer(json_object_get(v, "a"), &digits));
	assert_string_equal(digits, "9223372036854775808");
	assert_true(as_json_big_integer(
		json_array_get(json_object_get(v, "b"), 0), &digits));
	assert_string_equal(digits, "-9223372036854775809");
	assert_true(
		json_is_integer(json_array_get(json_object_get(v, "b"), 2)));
	assert_false(as_json_big_integer(json_object_get(v, "s"), &digits));
	out = as_json_compact(v);
	assert_string_equal(out, text);
	as_json_free(out);
	json_decref(v);
}

/* \u0000 in a string is kept, with its length; a string that would read
 * as a big-integer marker is refused in our words, never a parser flag. */
static void test_parse_nul(void **state)
{
	const char *text = "{\"a\":\"x\\u0000y\"}";
	const char *marked = "{\"a\":\"\\u000012\"}";
	as_error err;
	json_t *v;
	char *out;

	(void)state;
	as_error_clear(&err);
	v = as_json_parse_record(text, strlen(text), "f:3", &err);
	assert_non_null(v);
	assert_int_equal(json_string_length(json_object_get(v, "a")), 3);
	assert_memory_equal(json_string_value(json_object_get(v, "a")), "x\0y",
			    3);
	out = as_json_compact(v);
	assert_string_equal(out, text);
	as_json_free(out);
	json_decref(v);
	v = as_json_parse_record(marked, strlen(marked), "f:4", &err);
	assert_null(v);
	assert_int_equal(err.code, AS_EINPUT);
	assert_non_null(strstr(err.msg, "f:4:"));
	assert_null(strstr(err.msg, "JSON_ALLOW_NUL"));
	/* Inside a string, after an escaped quote, the bytes of a marker are
	 * the string's own: printed back as they were (a fuzzer's find). */
	{
		const char *inside = "{\"sJ\":\"a\\\"\\u00000\"}";

		v = as_json_parse_record(inside, strlen(inside), "f:5", &err);
		assert_non_null(v);
		out = as_json_compact(v);
		assert_string_equal(out, inside);
		as_json_free(out);
		json_decref(v);
	}
}

static void test_parse_columns_any(void **state)
{
	as_error err;
	json_t *v;

	(void)state;
	/* Whatever the error, a column > 0 is printed as "where:col". */
	as_error_clear(&err);
	v = as_json_parse_record("{\"abc\":[1,2,}", 13, "f:1", &err);
	assert_null(v);
	assert_int_equal(strncmp(err.msg, "f:1:", 4), 0);
	assert_true(atoi(err.msg + 4) > 0);
}

static void test_parse_ok(void **state)
{
	const char *text = "  {\"max\":9223372036854775807,"
			   "\"min\":-9223372036854775808,"
			   "\"r\":0.1,\"s\":\"caf\xc3\xa9\",\"n\":null,"
			   "\"nested\":{\"a\":[1,{\"b\":true}]}}  \n";
	as_error err;
	json_t *v;
	char *out;

	(void)state;
	as_error_clear(&err);
	v = as_json_parse_record(text, strlen(text), WHERE, &err);
	assert_non_null(v);
	assert_int_equal(err.code, 0);
	assert_true(json_is_integer(json_object_get(v, "max")));
	assert_true(json_integer_value(json_object_get(v, "max")) == INT64_MAX);
	assert_true(json_integer_value(json_object_get(v, "min")) == INT64_MIN);
	assert_true(json_real_value(json_object_get(v, "r")) == 0.1);
	assert_string_equal(json_string_value(json_object_get(v, "s")),
			    "caf\xc3\xa9");
	out = as_json_compact(v);
	assert_string_equal(out, "{\"max\":9223372036854775807,"
				 "\"min\":-9223372036854775808,"
				 "\"r\":0.1,\"s\":\"caf\xc3\xa9\",\"n\":null,"
				 "\"nested\":{\"a\":[1,{\"b\":true}]}}");
	free(out);
	json_decref(v);

	/* len bounds the text: what follows is not read. */
	v = as_json_parse_record("{\"a\":1}garbage", 7, WHERE, &err);
	assert_non_null(v);
	json_decref(v);
}

/* ---- compact ---- */

static void check_real(double d, const char *want)
{
	json_t *v = json_real(d);
	char *s = as_json_compact(v);

	assert_non_null(s);
	assert_string_equal(s, want);
	free(s);
	json_decref(v);
}

static void test_compact_short_reals(void **state)
{
	(void)state;
	check_real(0.1, "0.1");
	check_real(0.5, "0.5");
	check_real(1.0, "1.0");
	check_real(-2.25, "-2.25");
	check_real(100.0, "100.0");
	check_real(1e300, "1e300");
	check_real(0.30000000000000004, "0.30000000000000004");
	check_real(0.1 + 0.2, "0.30000000000000004");
	check_real(0.7999999999999999, "0.7999999999999999");
	check_real(3.141592653589793, "3.141592653589793");
	check_real(-0.0, "-0.0");
}

/* Every real inside v must read back as the same double. */
static void check_exact(const json_t *v)
{
	char *s = as_json_compact(v);
	json_error_t je;
	json_t *back;

	assert_non_null(s);
	back = json_loads(s, JSON_DECODE_ANY, &je);
	if (!back)
		fail_msg("compact output does not parse: %s (%s)", s, je.text);
	if (!json_equal((json_t *)v, back))
		fail_msg("compact output does not round-trip: %s", s);
	json_decref(back);
	free(s);
}

static void test_compact_mixed(void **state)
{
	json_t *o;
	char *s;

	(void)state;
	/* One real needing 17 digits must not cost the others exactness. */
	o = json_pack("{s:f, s:f, s:[f, i, s], s:n, s:b}", "a", 0.1, "b",
		      0.30000000000000004, "c", 2.0 / 3.0, 7, "x", "n", "t", 1);
	check_exact(o);
	json_decref(o);
	/* Without reals the output is plain compact JSON. */
	o = json_pack("{s:i, s:s, s:[]}", "id", 5, "name", "a\"b", "l");
	s = as_json_compact(o);
	assert_string_equal(s, "{\"id\":5,\"name\":\"a\\\"b\",\"l\":[]}");
	free(s);
	json_decref(o);
	/* Scalars encode too (JSON_ENCODE_ANY). */
	o = json_integer(-9);
	s = as_json_compact(o);
	assert_string_equal(s, "-9");
	free(s);
	json_decref(o);
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ULL;

static uint64_t rng(void)
{
	/* xorshift64*: reproducible across runs. */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 2685821657736338717ULL;
}

static void test_compact_random_doubles(void **state)
{
	int checked = 0;

	(void)state;
	for (int i = 0; i < 60000; i++) {
		uint64_t bits = rng();
		double d;
		json_t *v;
		char *s;

		if (i % 3 ==
		    0) /* also ordinary magnitudes, not only extremes */
			d = (double)(bits >> 11) / 9007199254740992.0 *
			    pow(10, (int)(bits % 40) - 20);
		else
			memcpy(&d, &bits, sizeof(d));
		if (!isfinite(d))
			continue;
		v = json_real(d);
		assert_non_null(v);
		s = as_json_compact(v);
		assert_non_null(s);
		if (strtod(s, NULL) != d ||
		    signbit(strtod(s, NULL)) != signbit(d))
			fail_msg("%.17g printed as %s", d, s);
		/* Never more than the 17 significant digits a double needs. */
		assert_true(strlen(s) <= 24);
		free(s);
		json_decref(v);
		checked++;
	}
	assert_true(checked > 50000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_errors),
		cmocka_unit_test(test_big_integers),
		cmocka_unit_test(test_parse_columns_any),
		cmocka_unit_test(test_parse_nul),
		cmocka_unit_test(test_parse_ok),
		cmocka_unit_test(test_compact_short_reals),
		cmocka_unit_test(test_compact_mixed),
		cmocka_unit_test(test_compact_random_doubles),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
