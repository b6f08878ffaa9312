/*
 * Unit tests of engine/table.c and engine/record.c: the table spec built
 * from a dataset (column order, flags, errors, fingerprint), records mapped
 * to typed rows for every column type, named errors for bad records
 * (invariant 9), content hashes (invariant 5) and --scope values.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"
#include "util/str.h"

/* ---- building datasets by hand ---- */

typedef struct dsb {
	as_dataset_cfg ds;
	char *key[4];
	char *scope[4];
	as_column_cfg cols[8];
} dsb;

static void ds_init(dsb *b, const char *name, as_mode mode)
{
	memset(b, 0, sizeof(*b));
	as_dataset_cfg_defaults(&b->ds);
	b->ds.name = (char *)name;
	b->ds.mode = mode;
	b->ds.key = b->key;
	b->ds.scope = b->scope;
}

static void ds_key(dsb *b, const char *k)
{
	b->key[b->ds.nkey++] = (char *)k;
}

static void ds_scope(dsb *b, const char *s)
{
	b->scope[b->ds.nscope++] = (char *)s;
}

static void ds_col(dsb *b, const char *name, as_type type, const char *path)
{
	as_column_cfg *c = &b->cols[b->ds.ncolumns++];

	c->name = (char *)name;
	c->type = type;
	c->path = (char *)(path ? path : name);
	b->ds.columns = b->cols;
}

static void build(as_table *t, dsb *b)
{
	as_error err;

	as_error_clear(&err);
	if (as_table_build(t, &b->ds, NULL, 0, &err))
		fail_msg("as_table_build: %s", err.msg);
}

static void build_error(dsb *b, const char *want)
{
	as_error err;
	as_table t;

	as_error_clear(&err);
	assert_int_equal(as_table_build(&t, &b->ds, NULL, 0, &err), AS_EUSAGE);
	assert_string_equal(err.msg, want);
	as_table_clear(&t);
}

/* ---- mapping ---- */

static int map(as_table *t, as_batch *bt, const char *json, const char *raw,
	       as_error *err)
{
	json_error_t je;
	json_t *rec = json_loads(json, 0, &je);
	int rc;

	if (!rec)
		fail_msg("test JSON does not parse: %s: %s", json, je.text);
	as_error_clear(err);
	rc = as_record_map(t, rec, raw, raw ? strlen(raw) : 0, "f.jsonl:3", bt,
			   0, err);
	json_decref(rec);
	return rc;
}

static const as_row *map_ok(as_table *t, as_batch *bt, const char *json)
{
	as_error err;

	if (map(t, bt, json, NULL, &err))
		fail_msg("as_record_map(%s): %s", json, err.msg);
	return &bt->rows[bt->nrows - 1];
}

static void map_error(as_table *t, as_batch *bt, const char *json,
		      const char *want)
{
	size_t before = bt->nrows;
	as_error err;

	assert_int_equal(map(t, bt, json, NULL, &err), AS_EINPUT);
	assert_int_equal(err.code, AS_EINPUT);
	assert_string_equal(err.msg, want);
	assert_int_equal(bt->nrows, before); /* no half row */
}

static void assert_text(const as_val *v, const char *want)
{
	assert_int_equal(v->kind, AS_V_TEXT);
	assert_int_equal(v->len, strlen(want));
	assert_memory_equal(v->u.s, want, v->len);
}

/* ---- table ---- */

static void test_table_columns(void **state)
{
	as_table t;
	dsb b;

	(void)state;
	ds_init(&b, "addons", AS_MODE_FULL);
	ds_key(&b, "id");
	ds_key(&b, "region");
	ds_col(&b, "name", AS_TYPE_TEXT, NULL);
	ds_col(&b, "region", AS_TYPE_TEXT, NULL);
	ds_col(&b, "score", AS_TYPE_REAL, "stats.score");
	ds_col(&b, "id", AS_TYPE_INTEGER, NULL);
	build(&t, &b);
	assert_string_equal(t.dataset, "addons");
	assert_string_equal(t.table, "addons"); /* defaults to the name */
	assert_int_equal(t.nkey, 2);
	assert_int_equal(t.ncols, 4);
	/* Key columns first, in key order, then the rest in config order. */
	assert_string_equal(t.cols[0].name, "id");
	assert_int_equal(t.cols[0].type, AS_TYPE_INTEGER);
	assert_int_equal(t.cols[0].flags, AS_COL_KEY);
	assert_string_equal(t.cols[1].name, "region");
	assert_int_equal(t.cols[1].flags, AS_COL_KEY);
	assert_string_equal(t.cols[2].name, "name");
	assert_int_equal(t.cols[2].flags, 0);
	assert_string_equal(t.cols[3].name, "score");
	assert_string_equal(t.cols[3].path, "stats.score");
	assert_int_equal(t.cols[3].type, AS_TYPE_REAL);
	assert_int_equal(t.cursor, -1);
	assert_int_equal(t.nscope, 0);
	assert_int_equal(strlen(t.fingerprint), 16);
	as_table_clear(&t);

	b.ds.table = (char *)"addon_rows";
	build(&t, &b);
	assert_string_equal(t.table, "addon_rows");
	as_table_clear(&t);
}

static void test_table_defaults(void **state)
{
	char *skey[] = {(char *)"k"};
	as_error err;
	as_table t;
	dsb b;

	(void)state;
	/* No columns, schema: json: the key plus `data`, the whole record. */
	ds_init(&b, "events", AS_MODE_FULL);
	ds_key(&b, "id");
	b.ds.schema = AS_SCHEMA_JSON;
	build(&t, &b);
	assert_int_equal(t.ncols, 2);
	assert_int_equal(t.nkey, 1);
	assert_string_equal(t.cols[0].name, "id");
	assert_string_equal(t.cols[0].path, "id");
	assert_int_equal(t.cols[0].type, AS_TYPE_AUTO);
	assert_int_equal(t.cols[0].flags, AS_COL_KEY);
	assert_string_equal(t.cols[1].name, "data");
	assert_null(t.cols[1].path);
	assert_int_equal(t.cols[1].type, AS_TYPE_JSON);
	assert_int_equal(t.cols[1].flags, AS_COL_WHOLE);
	as_table_clear(&t);

	/* Scoped without columns: the scope column is added and flagged. */
	ds_init(&b, "orders", AS_MODE_SCOPED);
	ds_key(&b, "id");
	ds_scope(&b, "user_id");
	b.ds.schema = AS_SCHEMA_JSON;
	build(&t, &b);
	assert_int_equal(t.ncols, 3);
	assert_string_equal(t.cols[1].name, "user_id");
	assert_int_equal(t.cols[1].flags, AS_COL_SCOPE);
	assert_int_equal(t.cols[1].type, AS_TYPE_AUTO);
	assert_int_equal(t.nscope, 1);
	assert_int_equal(t.scope[0], 1);
	assert_string_equal(t.cols[2].name, "data");
	as_table_clear(&t);

	/* A scope column that is also the key is one column with both flags. */
	ds_init(&b, "orders", AS_MODE_SCOPED);
	ds_key(&b, "user_id");
	ds_key(&b, "id");
	ds_scope(&b, "user_id");
	build(&t, &b);
	/* inferred (the default): no `data`, the other fields come later */
	assert_int_equal(t.infer, 1);
	assert_int_equal(t.ncols, 2);
	assert_int_equal(t.cols[0].flags, AS_COL_KEY | AS_COL_SCOPE);
	assert_int_equal(t.scope[0], 0);
	as_table_clear(&t);

	/* Incremental: the cursor column is flagged and indexed. */
	ds_init(&b, "feed", AS_MODE_INCREMENTAL);
	ds_key(&b, "id");
	b.ds.cursor = (char *)"updated_at";
	build(&t, &b);
	assert_int_equal(t.ncols, 2);
	assert_int_equal(t.cursor, 1);
	assert_string_equal(t.cols[1].name, "updated_at");
	assert_int_equal(t.cols[1].flags, AS_COL_CURSOR);
	as_table_clear(&t);

	/* With columns, the cursor is one of them. */
	ds_init(&b, "feed", AS_MODE_INCREMENTAL);
	ds_key(&b, "id");
	ds_col(&b, "id", AS_TYPE_INTEGER, NULL);
	ds_col(&b, "ts", AS_TYPE_TIMESTAMP, "meta.updated");
	b.ds.cursor = (char *)"ts";
	build(&t, &b);
	assert_int_equal(t.cursor, 1);
	assert_int_equal(t.cols[1].flags, AS_COL_CURSOR);
	assert_int_equal(t.ncols, 2); /* no `data` when columns are given */
	as_table_clear(&t);

	/* A Singer SCHEMA key replaces a missing configured key. */
	ds_init(&b, "tap", AS_MODE_FULL);
	as_error_clear(&err);
	assert_int_equal(as_table_build(&t, &b.ds, skey, 1, &err), 0);
	assert_int_equal(t.nkey, 1);
	assert_string_equal(t.cols[0].name, "k");
	assert_int_equal(t.cols[0].flags, AS_COL_KEY);
	as_table_clear(&t);
	/* ... and without either, the table has no key yet (nor `data`:
	 * the columns are inferred). */
	build(&t, &b);
	assert_int_equal(t.nkey, 0);
	assert_int_equal(t.ncols, 0);
	as_table_clear(&t);
}

static void test_table_errors(void **state)
{
	dsb b;

	(void)state;
	ds_init(&b, "d", AS_MODE_FULL);
	ds_key(&b, "id");
	ds_col(&b, "name", AS_TYPE_TEXT, NULL);
	build_error(&b, "dataset d: key column 'id' is not one of its columns");

	ds_init(&b, "d", AS_MODE_FULL);
	ds_key(&b, "bad-name");
	build_error(&b, "dataset d: key 'bad-name' is not a plain column name");

	ds_init(&b, "d", AS_MODE_SCOPED);
	ds_key(&b, "id");
	ds_col(&b, "id", AS_TYPE_INTEGER, NULL);
	ds_scope(&b, "grp");
	build_error(&b,
		    "dataset d: scope column 'grp' is not one of its columns");

	ds_init(&b, "d", AS_MODE_INCREMENTAL);
	ds_key(&b, "id");
	ds_col(&b, "id", AS_TYPE_INTEGER, NULL);
	b.ds.cursor = (char *)"ts";
	build_error(&b,
		    "dataset d: cursor column 'ts' is not one of its columns");
}

static void test_table_fingerprint(void **state)
{
	char base[17];
	as_table t;
	dsb b;

	(void)state;
#define FRESH()                                                                \
	do {                                                                   \
		ds_init(&b, "d", AS_MODE_INCREMENTAL);                         \
		ds_key(&b, "id");                                              \
		ds_col(&b, "id", AS_TYPE_INTEGER, NULL);                       \
		ds_col(&b, "ts", AS_TYPE_TEXT, NULL);                          \
		b.ds.cursor = (char *)"ts";                                    \
	} while (0)
#define DIFFERS(change)                                                        \
	do {                                                                   \
		FRESH();                                                       \
		change;                                                        \
		build(&t, &b);                                                 \
		if (strcmp(t.fingerprint, base) == 0)                          \
			fail_msg("fingerprint unchanged by: %s", #change);     \
		as_table_clear(&t);                                            \
	} while (0)

	FRESH();
	build(&t, &b);
	strcpy(base, t.fingerprint);
	as_table_clear(&t);
	FRESH();
	build(&t, &b);
	assert_string_equal(t.fingerprint, base); /* stable */
	as_table_clear(&t);

	DIFFERS(b.ds.table = (char *)"other");
	DIFFERS(b.ds.mode = AS_MODE_FULL; b.ds.cursor = NULL);
	DIFFERS(b.cols[1].type = AS_TYPE_TIMESTAMP);
	DIFFERS(b.cols[1].path = (char *)"meta.ts");
	DIFFERS(b.cols[1].name = (char *)"ts2"; b.ds.cursor = (char *)"ts2");
	DIFFERS(ds_col(&b, "extra", AS_TYPE_TEXT, NULL));
	DIFFERS(ds_key(&b, "ts"));
#undef FRESH
#undef DIFFERS
}

/* ---- record mapping ---- */

static void typed_table(as_table *t)
{
	dsb b;

	ds_init(&b, "typed", AS_MODE_FULL);
	ds_key(&b, "id");
	ds_col(&b, "id", AS_TYPE_INTEGER, NULL);
	ds_col(&b, "r", AS_TYPE_REAL, NULL);
	ds_col(&b, "t", AS_TYPE_TEXT, NULL);
	ds_col(&b, "b", AS_TYPE_BOOLEAN, NULL);
	ds_col(&b, "j", AS_TYPE_JSON, NULL);
	ds_col(&b, "ts", AS_TYPE_TIMESTAMP, NULL);
	ds_col(&b, "n", AS_TYPE_INTEGER, "stats.deep.n");
	build(t, &b);
}

static void test_map_types(void **state)
{
	const as_row *r;
	as_batch bt;
	as_table t;

	(void)state;
	typed_table(&t);
	as_batch_init(&bt);
	r = map_ok(&t, &bt,
		   "{\"id\":-9223372036854775808,\"r\":1.5,\"t\":\"h\\u00e9\","
		   "\"b\":true,\"j\":{\"a\":[1,0.1,null]},"
		   "\"ts\":\"2026-01-01T02:00:00+02:00\","
		   "\"stats\":{\"deep\":{\"n\":7}},\"ignored\":1}");
	assert_int_equal(r->v[0].kind, AS_V_INT);
	assert_true(r->v[0].u.i == INT64_MIN);
	assert_int_equal(r->v[1].kind, AS_V_REAL);
	assert_true(r->v[1].u.r == 1.5);
	assert_text(&r->v[2], "h\xc3\xa9");
	assert_int_equal(r->v[3].kind, AS_V_INT);
	assert_int_equal(r->v[3].u.i, 1);
	assert_text(&r->v[4], "{\"a\":[1,0.1,null]}");
	assert_text(&r->v[5], "2026-01-01T00:00:00.000000Z");
	assert_int_equal(r->v[6].kind, AS_V_INT);
	assert_int_equal(r->v[6].u.i, 7);
	assert_string_equal(r->where, "f.jsonl:3");

	/* Missing and null non-key values are NULL; false is 0; a real
	 * column takes an integer; json takes any value. */
	r = map_ok(&t, &bt,
		   "{\"id\":2,\"r\":3,\"b\":false,\"j\":\"s\",\"t\":null}");
	assert_int_equal(r->v[1].kind, AS_V_REAL);
	assert_true(r->v[1].u.r == 3.0);
	assert_int_equal(r->v[2].kind, AS_V_NULL);
	assert_int_equal(r->v[3].kind, AS_V_INT);
	assert_int_equal(r->v[3].u.i, 0);
	assert_text(&r->v[4], "\"s\"");
	assert_int_equal(r->v[5].kind, AS_V_NULL);
	assert_int_equal(r->v[6].kind, AS_V_NULL);

	/* A missing or null step finds nothing; a dotted path through a
	 * scalar or an array is a record of another shape: a bad record. */
	r = map_ok(&t, &bt, "{\"id\":3,\"stats\":{\"deep\":null}}");
	assert_int_equal(r->v[6].kind, AS_V_NULL);
	r = map_ok(&t, &bt, "{\"id\":4,\"stats\":{}}");
	assert_int_equal(r->v[6].kind, AS_V_NULL);
	map_error(&t, &bt, "{\"id\":5,\"stats\":{\"deep\":5}}",
		  "f.jsonl:3: 'stats.deep.n': 'stats.deep' is an integer, not "
		  "an object");
	map_error(&t, &bt, "{\"id\":6,\"stats\":[{\"deep\":{\"n\":1}}]}",
		  "f.jsonl:3: 'stats.deep.n': 'stats' is an array, not an "
		  "object");
	assert_int_equal(bt.nrows, 4);

	as_batch_free(&bt);
	as_table_clear(&t);
}

static const char *ts_of(as_table *t, as_batch *bt, const char *value,
			 char *out, size_t cap)
{
	char json[200];
	const as_row *r;

	snprintf(json, sizeof(json), "{\"id\":1,\"ts\":%s}", value);
	r = map_ok(t, bt, json);
	assert_int_equal(r->v[5].kind, AS_V_TEXT);
	snprintf(out, cap, "%.*s", (int)r->v[5].len, r->v[5].u.s);
	return out;
}

/* A whole-second UTC timestamp in the canonical form: always six digits
 * of fraction, so text order is time order. */
static void assert_ts(const char *got, const char *secs)
{
	char a[64];

	snprintf(a, sizeof(a), "%s.000000Z", secs);
	if (strcmp(got, a) != 0)
		fail_msg("timestamp \"%s\", want \"%s\"", got, a);
}

static void test_map_timestamps(void **state)
{
	char buf[64];
	as_batch bt;
	as_table t;

	(void)state;
	typed_table(&t);
	as_batch_init(&bt);
	/* Normalized to UTC text, so they sort as text (cursor columns). */
	assert_ts(ts_of(&t, &bt, "\"2026-01-01T02:00:00+02:00\"", buf, 64),
		  "2026-01-01T00:00:00");
	assert_ts(ts_of(&t, &bt, "\"2025-12-31T18:30:00-05:30\"", buf, 64),
		  "2026-01-01T00:00:00");
	assert_string_equal(
		ts_of(&t, &bt, "\"2026-01-01T02:00:00.250+02:00\"", buf, 64),
		"2026-01-01T00:00:00.250000Z");
	assert_string_equal(
		ts_of(&t, &bt, "\"2026-01-01T00:00:00.123+00:00\"", buf, 64),
		"2026-01-01T00:00:00.123000Z");
	assert_ts(ts_of(&t, &bt, "\"2026-01-01\"", buf, 64),
		  "2026-01-01T00:00:00");
	assert_ts(ts_of(&t, &bt, "\"2026-01-01T00:00:00\"", buf, 64),
		  "2026-01-01T00:00:00");
	assert_ts(ts_of(&t, &bt, "\"2026-01-01T00:00:00Z\"", buf, 64),
		  "2026-01-01T00:00:00");
	/* Integers are Unix epoch seconds. */
	assert_ts(ts_of(&t, &bt, "1767225600", buf, 64), "2026-01-01T00:00:00");
	assert_ts(ts_of(&t, &bt, "0", buf, 64), "1970-01-01T00:00:00");
	assert_ts(ts_of(&t, &bt, "-1", buf, 64), "1969-12-31T23:59:59");

	/* Bad timestamps are named errors. */
	map_error(
		&t, &bt, "{\"id\":1,\"ts\":\"yesterday\"}",
		"f.jsonl:3: 'ts': \"yesterday\" is not an ISO 8601 timestamp");
	map_error(
		&t, &bt, "{\"id\":1,\"ts\":\"2026-02-30T00:00:00Z\"}",
		"f.jsonl:3: 'ts': \"2026-02-30T00:00:00Z\" is not an ISO 8601 "
		"timestamp");
	map_error(
		&t, &bt, "{\"id\":1,\"ts\":1.5}",
		"f.jsonl:3: 'ts': expected an ISO 8601 timestamp, got a real");
	map_error(
		&t, &bt, "{\"id\":1,\"ts\":true}",
		"f.jsonl:3: 'ts': expected an ISO 8601 timestamp, got a boolean");
	as_batch_free(&bt);
	as_table_clear(&t);
}

/* Values that denote the same instant must map to the same text, and text
 * order must be time order, or a cursor (max of the text) goes wrong. */
static void test_map_timestamps_canonical(void **state)
{
	char a[64], b[64], c[64], d[64], e[64], f[64], g[64];
	as_batch bt;
	as_table t;

	(void)state;
	typed_table(&t);
	as_batch_init(&bt);
	ts_of(&t, &bt, "\"2026-01-01T00:00:00.5Z\"", a, sizeof(a));
	ts_of(&t, &bt, "\"2026-01-01T00:00:00.500+00:00\"", b, sizeof(b));
	ts_of(&t, &bt, "\"2026-01-01T00:00:00Z\"", c, sizeof(c));
	ts_of(&t, &bt, "\"2026-01-01 00:00:00Z\"", d, sizeof(d));
	ts_of(&t, &bt, "\"2026-01-01T00:00:00.9996+00:00\"", e, sizeof(e));
	ts_of(&t, &bt, "\"2026-01-01T01:00:00+01:00\"", f, sizeof(f));
	ts_of(&t, &bt, "\"2026-01-01T01:00:00.250+01:00\"", g, sizeof(g));
	as_batch_free(&bt);
	as_table_clear(&t);
	assert_string_equal(a, b);     /* the same instant, the same text */
	assert_true(strcmp(c, a) < 0); /* text order is time order */
	assert_true(strcmp(f, g) < 0);
	assert_string_equal(d, c); /* a space separator is normalized */
	assert_string_equal(
		e, "2026-01-01T00:00:00.999600Z"); /* microseconds kept */
}

static void test_map_errors(void **state)
{
	as_batch bt;
	as_table t;

	(void)state;
	typed_table(&t);
	as_batch_init(&bt);
	map_error(&t, &bt, "{\"r\":1}", "f.jsonl:3: missing key 'id'");
	map_error(&t, &bt, "{\"id\":null}", "f.jsonl:3: missing key 'id'");
	map_error(&t, &bt, "{\"id\":\"5\"}",
		  "f.jsonl:3: 'id': expected an integer, got a string");
	map_error(&t, &bt, "{\"id\":5.0}",
		  "f.jsonl:3: 'id': expected an integer, got a real");
	map_error(&t, &bt, "{\"id\":1,\"r\":\"1.5\"}",
		  "f.jsonl:3: 'r': expected a number, got a string");
	map_error(&t, &bt, "{\"id\":1,\"t\":5}",
		  "f.jsonl:3: 't': expected a string, got an integer");
	map_error(&t, &bt, "{\"id\":1,\"t\":{}}",
		  "f.jsonl:3: 't': expected a string, got an object");
	map_error(&t, &bt, "{\"id\":1,\"b\":1}",
		  "f.jsonl:3: 'b': expected a boolean, got an integer");
	map_error(&t, &bt, "{\"id\":1,\"b\":\"true\"}",
		  "f.jsonl:3: 'b': expected a boolean, got a string");
	/* The path is named, not the column: that is what the user sees in
	 * the record. */
	map_error(
		&t, &bt, "{\"id\":1,\"stats\":{\"deep\":{\"n\":[1]}}}",
		"f.jsonl:3: 'stats.deep.n': expected an integer, got an array");
	assert_int_equal(bt.nrows, 0);
	as_batch_free(&bt);
	as_table_clear(&t);

	/* A key reached by a dotted path names that path when missing. */
	{
		dsb b;

		ds_init(&b, "d", AS_MODE_FULL);
		ds_key(&b, "id");
		ds_col(&b, "id", AS_TYPE_TEXT, "meta.id");
		build(&t, &b);
		as_batch_init(&bt);
		map_error(&t, &bt, "{\"id\":\"x\"}",
			  "f.jsonl:3: missing key 'meta.id'");
		assert_text(&map_ok(&t, &bt, "{\"meta\":{\"id\":\"x\"}}")->v[0],
			    "x");
		as_batch_free(&bt);
		as_table_clear(&t);
	}
}

static void test_map_auto(void **state)
{
	const as_row *r;
	as_batch bt;
	as_table t;
	dsb b;

	(void)state;
	ds_init(&b, "auto", AS_MODE_FULL);
	ds_key(&b, "id");

	/* The first record decides the key's type ... */
	build(&t, &b);
	as_batch_init(&bt);
	r = map_ok(&t, &bt, "{\"id\":5}");
	assert_int_equal(t.cols[0].type, AS_TYPE_INTEGER);
	assert_int_equal(r->v[0].kind, AS_V_INT);
	assert_int_equal(r->v[0].u.i, 5);
	/* ... and later records must agree. */
	map_error(&t, &bt, "{\"id\":\"6\"}",
		  "f.jsonl:3: 'id': expected an integer, got a string");
	as_batch_free(&bt);
	as_table_clear(&t);

	build(&t, &b);
	as_batch_init(&bt);
	r = map_ok(&t, &bt, "{\"id\":\"abc\"}");
	assert_int_equal(t.cols[0].type, AS_TYPE_TEXT);
	assert_text(&r->v[0], "abc");
	map_error(&t, &bt, "{\"id\":7}",
		  "f.jsonl:3: 'id': expected a string, got an integer");
	as_batch_free(&bt);
	as_table_clear(&t);

	/* A key cannot be a real, a boolean or a structure. */
	build(&t, &b);
	as_batch_init(&bt);
	map_error(&t, &bt, "{\"id\":1.5}",
		  "f.jsonl:3: 'id' is a real; a key or scope column needs an "
		  "integer or a string (declare it under columns)");
	map_error(
		&t, &bt, "{\"id\":true}",
		"f.jsonl:3: 'id' is a boolean; a key or scope column needs an "
		"integer or a string (declare it under columns)");
	map_error(
		&t, &bt, "{\"id\":{\"a\":1}}",
		"f.jsonl:3: 'id' is an object; a key or scope column needs an "
		"integer or a string (declare it under columns)");
	/* Unresolved after the failures: still AUTO. */
	assert_int_equal(t.cols[0].type, AS_TYPE_AUTO);
	as_batch_free(&bt);
	as_table_clear(&t);
}

static void test_map_data_column(void **state)
{
	const char *raw = "  {\"id\":1,  \"x\": 0.10, \"s\":\"a\\u0062\"}\r\n";
	as_error err;
	as_batch bt;
	as_table t;
	dsb b;

	(void)state;
	ds_init(&b, "d", AS_MODE_FULL);
	ds_key(&b, "id");
	b.ds.schema = AS_SCHEMA_JSON;
	build(&t, &b);
	as_batch_init(&bt);
	/* From a line: the record's own text, trimmed, byte for byte. */
	assert_int_equal(map(&t, &bt, raw, raw, &err), 0);
	assert_text(&bt.rows[0].v[1],
		    "{\"id\":1,  \"x\": 0.10, \"s\":\"a\\u0062\"}");
	/* From a parsed value (Singer, HTTP): compact JSON, exact reals. */
	assert_int_equal(map(&t, &bt, raw, NULL, &err), 0);
	assert_text(&bt.rows[1].v[1], "{\"id\":1,\"x\":0.1,\"s\":\"ab\"}");
	/* The key is still a typed column next to `data`. */
	assert_int_equal(bt.rows[1].v[0].kind, AS_V_INT);
	assert_int_equal(bt.rows[1].v[0].u.i, 1);
	as_batch_free(&bt);
	as_table_clear(&t);
}

static void test_map_hash(void **state)
{
	static const char *variants[] = {
		"{\"id\":2,\"r\":1.5,\"t\":\"x\",\"b\":true,\"j\":[1],\"ts\":\"2026-01-01\","
		"\"stats\":{\"deep\":{\"n\":1}}}",
		"{\"id\":1,\"r\":1.25,\"t\":\"x\",\"b\":true,\"j\":[1],\"ts\":\"2026-01-01\","
		"\"stats\":{\"deep\":{\"n\":1}}}",
		"{\"id\":1,\"r\":1.5,\"t\":\"y\",\"b\":true,\"j\":[1],\"ts\":\"2026-01-01\","
		"\"stats\":{\"deep\":{\"n\":1}}}",
		"{\"id\":1,\"r\":1.5,\"t\":\"x\",\"b\":false,\"j\":[1],\"ts\":\"2026-01-01\","
		"\"stats\":{\"deep\":{\"n\":1}}}",
		"{\"id\":1,\"r\":1.5,\"t\":\"x\",\"b\":true,\"j\":[2],\"ts\":\"2026-01-01\","
		"\"stats\":{\"deep\":{\"n\":1}}}",
		"{\"id\":1,\"r\":1.5,\"t\":\"x\",\"b\":true,\"j\":[1],\"ts\":\"2026-01-02\","
		"\"stats\":{\"deep\":{\"n\":1}}}",
		"{\"id\":1,\"r\":1.5,\"t\":\"x\",\"b\":true,\"j\":[1],\"ts\":\"2026-01-01\","
		"\"stats\":{\"deep\":{\"n\":2}}}",
		"{\"id\":1,\"r\":1.5,\"t\":\"x\",\"b\":true,\"j\":[1],\"ts\":\"2026-01-01\"}",
		"{\"id\":1,\"r\":1.5,\"t\":\"\",\"b\":true,\"j\":[1],\"ts\":\"2026-01-01\","
		"\"stats\":{\"deep\":{\"n\":1}}}",
		"{\"id\":1,\"r\":1.5,\"b\":true,\"j\":[1],\"ts\":\"2026-01-01\",\"stats\":{"
		"\"deep\":{\"n\":1}}}",
	};
	const char *same =
		"{\"id\":1,\"r\":1.5,\"t\":\"x\",\"b\":true,\"j\":[1],\"ts\":\"2026-01-"
		"01\",\"stats\":{\"deep\":{\"n\":1}}}";
	/* Same content, other key order and spacing, an extra field. */
	const char *same2 =
		"{ \"stats\":{\"deep\":{\"n\":1}}, \"ts\":\"2026-01-01T00:00:00Z\", "
		"\"j\":[ 1 ],\"b\":true,\"t\":\"x\",\"r\":1.5,\"id\":1,\"other\":0}";
	uint64_t h0, hv[10];
	as_batch bt;
	as_table t;

	(void)state;
	typed_table(&t);
	as_batch_init(&bt);
	h0 = map_ok(&t, &bt, same)->hash;
	assert_true(map_ok(&t, &bt, same)->hash == h0);
	assert_true(map_ok(&t, &bt, same2)->hash == h0);
	for (size_t i = 0; i < 10; i++) {
		hv[i] = map_ok(&t, &bt, variants[i])->hash;
		if (hv[i] == h0)
			fail_msg("hash unchanged by variant %zu: %s", i,
				 variants[i]);
		for (size_t k = 0; k < i; k++)
			if (hv[k] == hv[i])
				fail_msg("variants %zu and %zu hash alike", k,
					 i);
	}
	as_batch_free(&bt);
	as_table_clear(&t);

	/* Text boundaries count: ("ab","c") is not ("a","bc"). */
	{
		dsb b;
		uint64_t h1;

		ds_init(&b, "d", AS_MODE_FULL);
		ds_key(&b, "k");
		ds_col(&b, "k", AS_TYPE_TEXT, NULL);
		ds_col(&b, "a", AS_TYPE_TEXT, NULL);
		ds_col(&b, "b", AS_TYPE_TEXT, NULL);
		build(&t, &b);
		as_batch_init(&bt);
		h1 = map_ok(&t, &bt, "{\"k\":\"1\",\"a\":\"ab\",\"b\":\"c\"}")
			     ->hash;
		assert_true(map_ok(&t, &bt,
				   "{\"k\":\"1\",\"a\":\"a\",\"b\":\"bc\"}")
				    ->hash != h1);
		assert_true(
			map_ok(&t, &bt, "{\"k\":\"1\",\"a\":\"abc\"}")->hash !=
			h1);
		as_batch_free(&bt);
		as_table_clear(&t);
	}
	/* Same digits, other type: an integer 1 is not the text "1". */
	{
		dsb b;
		uint64_t hi, ht;

		ds_init(&b, "d", AS_MODE_FULL);
		ds_key(&b, "k");
		ds_col(&b, "k", AS_TYPE_INTEGER, NULL);
		build(&t, &b);
		as_batch_init(&bt);
		hi = map_ok(&t, &bt, "{\"k\":1}")->hash;
		as_batch_free(&bt);
		as_table_clear(&t);
		b.cols[0].type = AS_TYPE_TEXT;
		build(&t, &b);
		as_batch_init(&bt);
		ht = map_ok(&t, &bt, "{\"k\":\"1\"}")->hash;
		as_batch_free(&bt);
		as_table_clear(&t);
		assert_true(hi != ht);
	}
}

static void test_batch_reset(void **state)
{
	as_batch bt;
	as_table t;

	(void)state;
	typed_table(&t);
	as_batch_init(&bt);
	for (int i = 0; i < 3000; i++) {
		char json[64];

		snprintf(json, sizeof(json), "{\"id\":%d,\"t\":\"row %d\"}", i,
			 i);
		map_ok(&t, &bt, json);
	}
	assert_int_equal(bt.nrows, 3000);
	assert_true(bt.caprows >= 3000);
	assert_int_equal(bt.rows[2999].v[0].u.i, 2999);
	assert_text(&bt.rows[1234].v[2], "row 1234");
	bt.checkpoint = as_strdup("cp");
	as_batch_reset(&bt);
	assert_int_equal(bt.nrows, 0);
	assert_null(bt.checkpoint);
	map_ok(&t, &bt, "{\"id\":1}");
	assert_int_equal(bt.nrows, 1);
	as_batch_free(&bt);
	as_table_clear(&t);
}

/* ---- --scope values ---- */

static void test_scope_value(void **state)
{
	as_error err;
	as_arena a;
	as_table t;
	as_val v;
	size_t col;
	dsb b;

	(void)state;
	ds_init(&b, "orders", AS_MODE_SCOPED);
	ds_key(&b, "id");
	ds_col(&b, "id", AS_TYPE_INTEGER, NULL);
	ds_col(&b, "region", AS_TYPE_TEXT, NULL);
	ds_col(&b, "user_id", AS_TYPE_INTEGER, NULL);
	ds_col(&b, "weight", AS_TYPE_REAL, NULL);
	ds_scope(&b, "user_id");
	ds_scope(&b, "region");
	ds_scope(&b, "weight");
	build(&t, &b);
	as_arena_init(&a);

	/* col is the index in the scope list, not in the columns. */
	assert_int_equal(as_scope_value(&t, "user_id=42", &v, &col, &a, &err),
			 0);
	assert_int_equal(col, 0);
	assert_int_equal(v.kind, AS_V_INT);
	assert_int_equal(v.u.i, 42);
	assert_int_equal(as_scope_value(&t, "user_id=-7", &v, &col, &a, &err),
			 0);
	assert_int_equal(v.u.i, -7);
	assert_int_equal(
		as_scope_value(&t, "region=eu=west", &v, &col, &a, &err), 0);
	assert_int_equal(col, 1);
	assert_text(&v, "eu=west");
	assert_int_equal(as_scope_value(&t, "region=", &v, &col, &a, &err), 0);
	assert_text(&v, "");
	assert_int_equal(as_scope_value(&t, "weight=2.5", &v, &col, &a, &err),
			 0);
	assert_int_equal(col, 2);
	assert_int_equal(v.kind, AS_V_REAL);
	assert_true(v.u.r == 2.5);

#define SCOPE_ERR(spec, want)                                                  \
	do {                                                                   \
		as_error_clear(&err);                                          \
		assert_int_equal(as_scope_value(&t, spec, &v, &col, &a, &err), \
				 AS_EUSAGE);                                   \
		assert_string_equal(err.msg, want);                            \
	} while (0)
	SCOPE_ERR("user_id", "--scope user_id: expected COL=VALUE");
	SCOPE_ERR("id=1",
		  "--scope id=1: 'id' is not a scope column of dataset orders");
	SCOPE_ERR(
		"user=1",
		"--scope user=1: 'user' is not a scope column of dataset orders");
	SCOPE_ERR(
		"user_idx=1",
		"--scope user_idx=1: 'user_idx' is not a scope column of dataset orders");
	SCOPE_ERR("user_id=abc", "--scope user_id=abc: expected an integer");
	SCOPE_ERR("user_id=12abc",
		  "--scope user_id=12abc: expected an integer");
	SCOPE_ERR("user_id=", "--scope user_id=: expected an integer");
	SCOPE_ERR("weight=heavy", "--scope weight=heavy: expected a number");
	SCOPE_ERR("weight=", "--scope weight=: expected a number");
#undef SCOPE_ERR
	as_arena_free(&a);
	as_table_clear(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table_columns),
		cmocka_unit_test(test_table_defaults),
		cmocka_unit_test(test_table_errors),
		cmocka_unit_test(test_table_fingerprint),
		cmocka_unit_test(test_map_types),
		cmocka_unit_test(test_map_timestamps),
		cmocka_unit_test(test_map_timestamps_canonical),
		cmocka_unit_test(test_map_errors),
		cmocka_unit_test(test_map_auto),
		cmocka_unit_test(test_map_data_column),
		cmocka_unit_test(test_map_hash),
		cmocka_unit_test(test_batch_reset),
		cmocka_unit_test(test_scope_value),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
