/*
 * Unit tests of util/jflat (the flat-record scanner) and of the fast path
 * that maps with it (as_record_map_flat, engine/record.c): what the
 * scanner takes, jansson parses to the same values; what it declines --
 * every error (duplicate key, bad UTF-8, an integer beyond 64 bits, deep
 * nesting, ...) -- the general path still rejects with its own message
 * (invariant 9); and on the JSON test suite and the record corpus the fast
 * path maps exactly the rows (values and content hash, invariant 5) that
 * jansson and as_record_map map.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"
#include "engine/schema.h"
#include "util/jflat.h"
#include "util/json.h"

#define WHERE "f.jsonl:9"

/* ---- the scanner against jansson ---- */

/* 1 when the scanner took text (and agreed with jansson), 0 when it
 * declined; fails the test when the two disagree. */
static int agree(const char *text, size_t len)
{
	static as_jflat j;
	as_error err;
	json_t *rec;
	size_t k = 0;
	const char *key;
	json_t *v;

	if (as_jflat_scan(text, len, &j))
		return 0;
	as_error_clear(&err);
	rec = as_json_parse_record(text, len, WHERE, &err);
	if (!rec)
		fail_msg("scanner took what jansson rejects (%s): %.*s",
			 err.msg, (int)len, text);
	assert_int_equal(json_object_size(rec), j.n);
	json_object_foreach(rec, key, v)
	{
		const as_jfield *f = &j.f[k++];

		assert_int_equal(strlen(key), f->klen);
		assert_memory_equal(key, f->key, f->klen);
		switch (f->kind) {
		case AS_JF_NULL: assert_true(json_is_null(v)); break;
		case AS_JF_TRUE: assert_true(json_is_true(v)); break;
		case AS_JF_FALSE: assert_true(json_is_false(v)); break;
		case AS_JF_INT:
			assert_true(json_is_integer(v));
			assert_true(json_integer_value(v) == f->i);
			break;
		case AS_JF_REAL:
			assert_true(json_is_real(v));
			assert_memory_equal(&f->r,
					    &(double){json_real_value(v)},
					    sizeof(double));
			break;
		case AS_JF_STRING:
			assert_true(json_is_string(v));
			assert_int_equal(json_string_length(v), f->n);
			assert_memory_equal(json_string_value(v), f->s, f->n);
			break;
		}
	}
	json_decref(rec);
	return 1;
}

static void declines(const char *text, const char *reason)
{
	as_jflat j;
	as_error err;
	json_t *rec;

	if (!as_jflat_scan(text, strlen(text), &j))
		fail_msg("scanner took: %s", text);
	if (!reason)
		return;
	/* Declined, the record goes to jansson, whose error is today's. */
	as_error_clear(&err);
	rec = as_json_parse_record(text, strlen(text), WHERE, &err);
	if (rec)
		fail_msg("jansson took: %s", text);
	assert_int_equal(err.code, AS_EINPUT);
	if (!strstr(err.msg, reason))
		fail_msg("'%s' does not say '%s'", err.msg, reason);
}

static void test_scan_values(void **state)
{
	static const char *ok[] = {
		"{}",
		" {\"a\" : 1 , \"b\":\"x\"}\r",
		"{\"max\":9223372036854775807,\"min\":-9223372036854775808}",
		/* integers of 18 and 19 digits */
		"{\"a\":999999999999999999,\"b\":-999999999999999999}",
		"{\"c\":1000000000000000000,\"d\":-1000000000000000000}",
		"{\"z\":-0,\"r\":-0.0,\"e\":1E+2,\"f\":0.1,\"g\":1e-300}",
		"{\"t\":true,\"f\":false,\"n\":null}",
		"{\"s\":\"caf\xc3\xa9 \xf0\x9f\x98\x80 \xe2\x82\xac\"}",
		"{\"e\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\ud83d\\ude00\"}",
		"{\"k\\u0041y\":1,\"kAy2\":2}",
	};
	as_jflat j;

	(void)state;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		if (!agree(ok[i], strlen(ok[i])))
			fail_msg("declined: %s", ok[i]);
	assert_int_equal(as_jflat_scan(ok[8], strlen(ok[8]), &j), 0);
	assert_int_equal(j.f[0].n, 14);
	assert_memory_equal(j.f[0].s, "\"\\/\b\f\n\r\t\xc3\xa9\xf0\x9f\x98\x80",
			    14);
}

static void test_scan_declines(void **state)
{
	char big[AS_JFLAT_MAX_TEXT + 64], many[AS_JFLAT_MAX_FIELDS * 8 + 8];
	char *p;

	(void)state;
	/* Errors: declined, and jansson's message stands. */
	declines("{\"a\":1,\"a\":2}", "duplicate object key");
	declines("{\"a\":1,\"\\u0061\":2}", "duplicate object key");
	declines("{\"a\":\"\xff\"}", "unable to decode byte");
	declines("{\"a\":\"\xc0\xaf\"}",
		 "unable to decode byte"); /* overlong */
	declines("{\"a\":\"\xed\xa0\x80\"}",
		 "unable to decode byte"); /* surrogate */
	declines("{\"a\":\"\xf4\x90\x80\x80\"}",
		 "unable to decode byte"); /* > U+10FFFF */
	declines("{\"a\":\"caf\xc3\"}",
		 "unable to decode byte"); /* truncated */
	declines("{\"a\":\"\\ud800\"}", "invalid Unicode");
	declines("{\"a\":01}", "invalid token");
	declines("{\"a\":1.}", "invalid token");
	declines("{\"a\":1} x", "end of file expected");
	declines("{\"a\":\"\t\"}", "control character");
	declines("{\"a\":1e400}", "overflow");
	declines("{\"a\":tru}", "invalid token");
	declines("[1]", "expected a JSON object");
	declines("", "");
	/* Not errors, but not flat: jansson maps them. */
	declines("{\"n\":92233720368547758070}", NULL); /* kept exact */
	declines("{\"n\":-9223372036854775809}", NULL);
	declines("{\"o\":{\"a\":1}}", NULL);
	declines("{\"o\":[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]}", NULL);
	declines("{\"s\":\"a\\u0000b\"}", NULL);
	/* Past its fixed room: declined, never cut short. */
	p = big + sprintf(big, "{\"s\":\"");
	for (size_t i = 0; i <= AS_JFLAT_MAX_TEXT / 2; i++)
		p += sprintf(p, "\\n");
	sprintf(p, "\"}");
	declines(big, NULL);
	p = many + sprintf(many, "{");
	for (int i = 0; i <= AS_JFLAT_MAX_FIELDS; i++)
		p += sprintf(p, "%s\"%d\":1", i ? "," : "", i);
	sprintf(p, "}");
	declines(many, NULL);
}

/* ---- the corpus: the scanner and both mappings agree ---- */

typedef struct tables {
	as_table inferred, configured, whole;
	as_batch fast, slow;
	size_t taken, lines;
} tables;

static void add(as_table *t, const char *name, const char *path, as_type ty,
		unsigned flags)
{
	assert_int_equal(as_table_add_col(t, name, path, ty, flags), 0);
}

static void table_init(as_table *t, int infer)
{
	memset(t, 0, sizeof(*t));
	t->dataset = strdup("d");
	t->table = strdup("d");
	t->infer = infer;
	t->flatten_depth = 2;
	t->cursor = -1;
}

static void tables_init(tables *tb)
{
	as_schema_stats st = {0};
	const char *first = "{\"id\":1,\"name\":\"n\",\"n\":2,\"score\":1.5,"
			    "\"ok\":true,\"at\":\"2026-01-02T03:04:05Z\"}";
	json_t *v = json_loads(first, 0, NULL);
	as_error err;

	memset(tb, 0, sizeof(*tb));
	/* Inferring, columns found in a first record (the default). */
	table_init(&tb->inferred, 1);
	add(&tb->inferred, "id", "id", AS_TYPE_INTEGER, AS_COL_KEY);
	tb->inferred.nkey = 1;
	as_error_clear(&err);
	assert_int_equal(as_schema_evolve(&tb->inferred, v, WHERE, &st, &err),
			 0);
	json_decref(v);
	/* Configured columns of every type the fast path maps. */
	table_init(&tb->configured, 0);
	add(&tb->configured, "id", "id", AS_TYPE_TEXT, AS_COL_KEY);
	add(&tb->configured, "n", "n", AS_TYPE_INTEGER, 0);
	add(&tb->configured, "score", "score", AS_TYPE_REAL, 0);
	add(&tb->configured, "ok", "ok", AS_TYPE_BOOLEAN, 0);
	add(&tb->configured, "at", "at", AS_TYPE_TIMESTAMP, 0);
	tb->configured.nkey = 1;
	/* The key + `data` layout. */
	table_init(&tb->whole, 0);
	add(&tb->whole, "id", "id", AS_TYPE_INTEGER, AS_COL_KEY);
	add(&tb->whole, "data", NULL, AS_TYPE_JSON, AS_COL_WHOLE);
	tb->whole.nkey = 1;
	as_batch_init(&tb->fast);
	as_batch_init(&tb->slow);
}

static void tables_free(tables *tb)
{
	as_table_clear(&tb->inferred);
	as_table_clear(&tb->configured);
	as_table_clear(&tb->whole);
	as_batch_free(&tb->fast);
	as_batch_free(&tb->slow);
}

static void same_row(const as_table *t, const as_row *a, const as_row *b)
{
	assert_true(a->hash == b->hash);
	assert_string_equal(a->where, b->where);
	for (size_t i = 0; i < t->ncols; i++) {
		assert_int_equal(a->v[i].kind, b->v[i].kind);
		switch (a->v[i].kind) {
		case AS_V_INT: assert_true(a->v[i].u.i == b->v[i].u.i); break;
		case AS_V_REAL:
			assert_memory_equal(&a->v[i].u.r, &b->v[i].u.r, 8);
			break;
		case AS_V_TEXT:
			assert_int_equal(a->v[i].len, b->v[i].len);
			assert_memory_equal(a->v[i].u.s, b->v[i].u.s,
					    a->v[i].len);
			break;
		default: break;
		}
	}
}

/* Map text both ways into t; the fast path must decline or agree. */
static void map_both(tables *tb, as_table *t, const char *text, size_t len)
{
	size_t before = tb->fast.nrows;
	as_error err;
	json_t *rec;
	int rc;

	as_error_clear(&err);
	rc = as_record_map_flat(t, text, len, WHERE, &tb->fast, 0, &err);
	if (rc == AS_MAP_DECLINED) {
		assert_int_equal(tb->fast.nrows, before); /* no half row */
		return;
	}
	assert_int_equal(rc, 0);
	tb->taken++;
	as_error_clear(&err);
	rec = as_json_parse_record(text, len, WHERE, &err);
	if (!rec)
		fail_msg("fast path took what jansson rejects: %s", err.msg);
	rc = as_record_map(t, rec, text, len, WHERE, &tb->slow, 0, &err);
	json_decref(rec);
	if (rc)
		fail_msg("fast path took what as_record_map refuses (%s): "
			 "%.*s",
			 err.msg, (int)len, text);
	same_row(t, &tb->fast.rows[tb->fast.nrows - 1],
		 &tb->slow.rows[tb->slow.nrows - 1]);
}

static void check_text(tables *tb, const char *text, size_t len)
{
	tb->lines++;
	agree(text, len);
	map_both(tb, &tb->inferred, text, len);
	map_both(tb, &tb->configured, text, len);
	map_both(tb, &tb->whole, text, len);
}

/* Each file of dir whole, then each of its lines. */
static void check_dir(tables *tb, const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	size_t files = 0;

	if (!d)
		fail_msg("no corpus at %s", dir);
	while ((e = readdir(d)) != NULL) {
		char path[4096], *buf;
		FILE *f;
		long n;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if (!(f = fopen(path, "rb")))
			continue;
		fseek(f, 0, SEEK_END);
		n = ftell(f);
		rewind(f);
		buf = malloc((size_t)n + 1);
		assert_non_null(buf);
		assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
		fclose(f);
		files++;
		check_text(tb, buf, (size_t)n);
		for (char *s = buf, *nl; s < buf + n; s = nl + 1) {
			nl = memchr(s, '\n', (size_t)(buf + n - s));
			if (!nl)
				nl = buf + n;
			check_text(tb, s, (size_t)(nl - s));
		}
		free(buf);
	}
	closedir(d);
	assert_true(files > 100);
}

static const char *corpus_dir(const char *which, char *out, size_t cap)
{
	const char *here = __FILE__, *slash = strrchr(here, '/');

	snprintf(out, cap, "%.*s/../fuzz/corpus/%s",
		 slash ? (int)(slash - here) : 1, slash ? here : ".", which);
	return out;
}

static void test_corpus_same_rows(void **state)
{
	static const char *records[] = {
		"{\"id\":7,\"name\":\"x\",\"n\":-3,\"score\":2,\"ok\":false,"
		"\"at\":\"2026-01-02T03:04:05.5+02:00\"}",
		"{\"id\":\"7\",\"n\":1,\"score\":0.25,\"ok\":true,"
		"\"at\":1767225600}",
		"{\"at\":\"2026-01-02T03:04:05Z\",\"id\":8,\"name\":null}",
		"{\"id\":9,\"name\":\"caf\\u00e9\",\"extra\":1}", /* new: no */
		"{\"id\":10,\"n\":1.5}",      /* widen: no */
		"{\"id\":11,\"Name\":\"x\"}", /* normalised name: no */
		"{\"n\":1}",		      /* no key: no */
	};
	char dir[4096];
	tables tb;

	(void)state;
	tables_init(&tb);
	for (size_t i = 0; i < sizeof(records) / sizeof(records[0]); i++)
		check_text(&tb, records[i], strlen(records[i]));
	/* 0-2 by the tables whose types they have; 3-5 by key + data. */
	assert_int_equal(tb.taken, 8);
	check_dir(&tb, corpus_dir("json", dir, sizeof(dir)));
	check_dir(&tb, corpus_dir("record", dir, sizeof(dir)));
	/* The comparison is not vacuous. */
	assert_true(tb.taken > 20);
	tables_free(&tb);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_scan_values),
		cmocka_unit_test(test_scan_declines),
		cmocka_unit_test(test_corpus_same_rows),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
