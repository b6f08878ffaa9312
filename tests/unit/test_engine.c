/*
 * Unit tests of the public C API (include/atomsync.h) end to end on a temp
 * SQLite file: config, store, run begin/put/checkpoint/publish/abort, bad
 * records with and without max_rejects (9), resume from the last checkpoint
 * (4), guards (3), idempotence (5), the run records (10), the lease (6).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <atomsync.h>

typedef struct fx {
	char dir[64];
	char db[128];
	atomsync_config *cfg;
	atomsync_store *st;
} fx;

static const char CONFIG[] = "store: sqlite:%s/e.db\n"
			     "datasets:\n"
			     "  items:\n"
			     "    key: [id]\n"
			     "    columns:\n"
			     "      id: {type: integer}\n"
			     "      name: {type: text}\n"
			     "    batch_size: 2\n"
			     "    guard: {min_deletes: 0}\n"
			     "    reject_file: %s/items.rejects.jsonl\n"
			     "    source: {file: items.jsonl}\n"
			     "  copy:\n"
			     "    key: [id]\n"
			     "    columns:\n"
			     "      id: {type: integer}\n"
			     "      name: {type: text}\n"
			     "    source: {file: items.jsonl}\n"
			     "  slow:\n"
			     "    table: slow_rows\n"
			     "    key: [id]\n"
			     "    columns:\n"
			     "      id: {type: integer}\n"
			     "      name: {type: text}\n"
			     "    batch_size: 100\n"
			     "    source: {file: items.jsonl}\n"
			     "  lenient:\n"
			     "    key: [id]\n"
			     "    schema: json\n"
			     "    guard: {max_rejects: 2}\n"
			     "    reject_file: %s/lenient.rejects.jsonl\n"
			     "    source: {file: lenient.jsonl}\n"
			     "  short:\n"
			     "    key: [id]\n"
			     "    lease_ttl: 1s\n"
			     "    source: {file: items.jsonl}\n"
			     "  orders:\n"
			     "    mode: scoped\n"
			     "    key: [id]\n"
			     "    scope: [grp]\n"
			     "    columns:\n"
			     "      id: {type: integer}\n"
			     "      grp: {type: integer}\n"
			     "      name: {type: text}\n"
			     "    source: {file: orders.jsonl}\n";

static int setup(void **state)
{
	fx *f = calloc(1, sizeof(*f));
	char text[sizeof(CONFIG) + 256];
	atomsync_error err;
	int n;

	assert_non_null(f);
	strcpy(f->dir, "/tmp/as-engine-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->db, sizeof(f->db), "%s/e.db", f->dir);
	n = snprintf(text, sizeof(text), CONFIG, f->dir, f->dir, f->dir);
	assert_true(n > 0 && (size_t)n < sizeof(text));
	memset(&err, 0, sizeof(err));
	if (atomsync_config_parse(&f->cfg, text, (size_t)n, "e.yml", &err))
		fail_msg("config: %s", err.msg);
	assert_int_equal(atomsync_config_ndatasets(f->cfg), 6);
	assert_string_equal(atomsync_config_dataset_name(f->cfg, 0), "items");
	assert_null(atomsync_config_dataset_name(f->cfg, 6));
	if (atomsync_store_open(&f->st, atomsync_config_store(f->cfg), &err))
		fail_msg("store: %s", err.msg);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fx *f = *state;
	static const char *files[] = {"e.db", "e.db-wal", "e.db-shm",
				      "items.rejects.jsonl",
				      "lenient.rejects.jsonl"};
	char p[200];

	atomsync_store_free(f->st);
	atomsync_config_free(f->cfg);
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(p, sizeof(p), "%s/%s", f->dir, files[i]);
		unlink(p);
	}
	assert_int_equal(rmdir(f->dir), 0);
	free(f);
	return 0;
}

/* ---- helpers ---- */

static atomsync_run *begin(fx *f, const char *dataset,
			   const atomsync_run_options *opt)
{
	atomsync_run *run = NULL;
	atomsync_error err;

	memset(&err, 0, sizeof(err));
	if (atomsync_run_begin(&run, f->st, f->cfg, dataset, opt, &err))
		fail_msg("atomsync_run_begin(%s): %s", dataset, err.msg);
	assert_non_null(run);
	assert_true(atomsync_run_id(run) > 0);
	return run;
}

static void put(atomsync_run *run, const char *json, const char *where)
{
	atomsync_error err;

	memset(&err, 0, sizeof(err));
	if (atomsync_run_put(run, json, strlen(json), where, &err))
		fail_msg("put %s: %s", json, err.msg);
}

static int put_rc(atomsync_run *run, const char *json, const char *where,
		  atomsync_error *err)
{
	memset(err, 0, sizeof(*err));
	return atomsync_run_put(run, json, strlen(json), where, err);
}

static void checkpoint(atomsync_run *run, const char *cp)
{
	atomsync_error err;

	memset(&err, 0, sizeof(err));
	if (atomsync_run_checkpoint(run, cp, &err))
		fail_msg("checkpoint %s: %s", cp, err.msg);
}

static void publish(atomsync_run *run, atomsync_run_info *info)
{
	atomsync_error err;

	memset(&err, 0, sizeof(err));
	if (atomsync_run_publish(run, info, &err))
		fail_msg("publish: %s", err.msg);
}

/* Put records {"id":N,"name":"nN"} for N in [from, to]. */
static void put_range(atomsync_run *run, int from, int to)
{
	for (int i = from; i <= to; i++) {
		char json[64], where[32];

		snprintf(json, sizeof(json), "{\"id\":%d,\"name\":\"n%d\"}", i,
			 i);
		snprintf(where, sizeof(where), "t.jsonl:%d", i);
		put(run, json, where);
	}
}

static char *q1(fx *f, const char *sql)
{
	sqlite3 *db;
	sqlite3_stmt *q;
	char *out = NULL;

	assert_int_equal(
		sqlite3_open_v2(f->db, &db, SQLITE_OPEN_READONLY, NULL),
		SQLITE_OK);
	if (sqlite3_prepare_v2(db, sql, -1, &q, NULL) != SQLITE_OK)
		fail_msg("%s: %s", sql, sqlite3_errmsg(db));
	if (sqlite3_step(q) == SQLITE_ROW)
		out = strdup(sqlite3_column_type(q, 0) == SQLITE_NULL
				     ? "NULL"
				     : (const char *)sqlite3_column_text(q, 0));
	else
		out = strdup("");
	sqlite3_finalize(q);
	sqlite3_close(db);
	return out;
}

static void expect_q(fx *f, const char *sql, const char *want)
{
	char *got = q1(f, sql);

	if (strcmp(got, want) != 0)
		fail_msg("%s\n  got:  %s\n  want: %s", sql, got, want);
	free(got);
}

static void expect_live(fx *f, const char *table, const char *want)
{
	char sql[300];

	snprintf(
		sql, sizeof(sql),
		"SELECT coalesce(group_concat(id || '=' || name, ' '), '') FROM "
		"(SELECT * FROM \"%s\" ORDER BY id)",
		table);
	expect_q(f, sql, want);
}

static void expect_info(const atomsync_run_info *ri, const char *status,
			int64_t seen, int64_t ins, int64_t upd, int64_t unch,
			int64_t del, int64_t rej)
{
	assert_non_null(ri->status);
	assert_string_equal(ri->status, status);
	if (ri->seen != seen || ri->inserted != ins || ri->updated != upd ||
	    ri->unchanged != unch || ri->deleted != del || ri->rejected != rej)
		fail_msg(
			"run %lld: seen %lld ins %lld upd %lld unch %lld del %lld "
			"rej %lld; want %lld %lld %lld %lld %lld %lld",
			(long long)ri->run_id, (long long)ri->seen,
			(long long)ri->inserted, (long long)ri->updated,
			(long long)ri->unchanged, (long long)ri->deleted,
			(long long)ri->rejected, (long long)seen,
			(long long)ins, (long long)upd, (long long)unch,
			(long long)del, (long long)rej);
}

/* The newest run record of a dataset (caller frees). */
static atomsync_run_info *last_run(fx *f, const char *dataset)
{
	atomsync_run_info *ri = NULL;
	atomsync_error err;
	size_t n = 0;

	memset(&err, 0, sizeof(err));
	if (atomsync_runs_list(f->st, dataset, 1, &ri, &n, &err))
		fail_msg("runs_list: %s", err.msg);
	assert_int_equal(n, 1);
	return ri;
}

/* ---- tests ---- */

static void test_put_publish(void **state)
{
	fx *f = *state;
	atomsync_run_info info, *ri;
	atomsync_run *run;
	int64_t id;

	run = begin(f, "items", NULL);
	id = atomsync_run_id(run);
	assert_null(atomsync_run_resume_checkpoint(run));
	put_range(run, 1, 3);
	put(run, "{\"id\":2,\"name\":\"again\"}", "t.jsonl:4"); /* replaces 2 */
	memset(&info, 0xff, sizeof(info));
	publish(run, &info);
	atomsync_run_free(run);

	assert_int_equal(info.run_id, id);
	assert_string_equal(info.dataset, "items");
	assert_string_equal(info.kind, "sync");
	assert_string_equal(info.mode, "full");
	assert_null(info.error);
	assert_int_equal(info.resumed_from, 0);
	assert_int_equal(info.duplicates, 1);
	assert_int_equal(strlen(info.started_at), 24);
	assert_non_null(info.finished_at);
	expect_info(&info, "completed", 4, 3, 0, 0, 0, 0);
	atomsync_run_info_clear(&info);
	assert_null(info.dataset);
	atomsync_run_info_clear(&info); /* twice is harmless */

	expect_live(f, "items", "1=n1 2=again 3=n3");
	/* Invariant 10: the same on record. */
	ri = last_run(f, "items");
	assert_int_equal(ri->run_id, id);
	expect_info(ri, "completed", 4, 3, 0, 0, 0, 0);
	assert_int_equal(ri->duplicates, 1);
	assert_non_null(ri->finished_at);
	atomsync_run_info_free(ri, 1);
	atomsync_run_info_free(NULL, 0);
}

static void test_idempotent(void **state)
{
	fx *f = *state;
	atomsync_run_info info;
	atomsync_run *run;
	char *before, *after;
	const char *dump = "SELECT group_concat(quote(id)||quote(name)||"
			   "quote(_atomsync_run)||quote(_atomsync_hash), ';') "
			   "FROM (SELECT * FROM items ORDER BY id)";

	run = begin(f, "items", NULL);
	put_range(run, 1, 5);
	publish(run, &info);
	atomsync_run_free(run);
	expect_info(&info, "completed", 5, 5, 0, 0, 0, 0);
	atomsync_run_info_clear(&info);
	before = q1(f, dump);

	/* Invariant 5: the same input again: nothing inserted, updated or
	 * deleted, and the table byte-identical. */
	run = begin(f, "items", NULL);
	put_range(run, 1, 5);
	publish(run, &info);
	atomsync_run_free(run);
	expect_info(&info, "completed", 5, 0, 0, 5, 0, 0);
	atomsync_run_info_clear(&info);
	after = q1(f, dump);
	assert_string_equal(before, after);
	free(before);
	free(after);
}

static void test_bad_record_fails_run(void **state)
{
	fx *f = *state;
	atomsync_run_info info, *ri;
	atomsync_error err;
	atomsync_run *run;

	/* max_rejects 0 (the default): one bad record fails the run. */
	run = begin(f, "items", NULL);
	put_range(run, 1, 3);
	assert_int_equal(
		put_rc(run, "{\"id\":\"x\",\"name\":\"n\"}", "t.jsonl:4", &err),
		ATOMSYNC_EINPUT);
	assert_int_equal(err.code, ATOMSYNC_EINPUT);
	assert_string_equal(
		err.msg, "t.jsonl:4: 'id': expected an integer, got a string");
	/* The failure is sticky: nothing more is accepted, nothing published.
	 */
	assert_int_equal(
		put_rc(run, "{\"id\":9,\"name\":\"n9\"}", "t.jsonl:5", &err),
		ATOMSYNC_EINPUT);
	assert_non_null(strstr(err.msg, "t.jsonl:4"));
	assert_int_equal(atomsync_run_checkpoint(run, "cp", &err),
			 ATOMSYNC_EINPUT);
	memset(&info, 0, sizeof(info));
	assert_int_equal(atomsync_run_publish(run, &info, &err),
			 ATOMSYNC_EINPUT);
	assert_non_null(strstr(err.msg, "t.jsonl:4"));
	assert_string_equal(info.status, "failed");
	assert_non_null(strstr(info.error, "t.jsonl:4"));
	atomsync_run_info_clear(&info);
	atomsync_run_free(run);

	/* Invariant 2: no live table was created. */
	expect_q(f, "SELECT count(*) FROM sqlite_master WHERE name = 'items'",
		 "0");
	ri = last_run(f, "items");
	assert_string_equal(ri->status, "failed");
	assert_non_null(ri->error);
	assert_non_null(strstr(ri->error,
			       "t.jsonl:4")); /* the cause, not "abandoned" */
	atomsync_run_info_free(ri, 1);

	/* A record that is not JSON is named with its column. */
	run = begin(f, "items", NULL);
	assert_int_equal(put_rc(run, "{\"id\":1,", "t.jsonl:7", &err),
			 ATOMSYNC_EINPUT);
	assert_int_equal(strncmp(err.msg, "t.jsonl:7:", 10), 0);
	assert_true(atoi(err.msg + 10) > 0);
	/* The caller's own reason is what abort records. */
	assert_int_equal(atomsync_run_abort(run, err.msg, &err), 0);
	atomsync_run_free(run);
	ri = last_run(f, "items");
	assert_string_equal(ri->status, "failed");
	assert_int_equal(strncmp(ri->error, "t.jsonl:7:", 10), 0);
	assert_int_equal(ri->seen, 1);
	atomsync_run_info_free(ri, 1);
}

static void test_rejects_allowed(void **state)
{
	fx *f = *state;
	atomsync_run_info info;
	atomsync_error err;
	atomsync_run *run;
	char path[200], line[2048];
	json_t *rej;
	int64_t id;
	FILE *rf;

	/* max_rejects 2: bad records go to the reject file with the reason. */
	run = begin(f, "lenient", NULL);
	id = atomsync_run_id(run);
	put(run, "{\"id\":1,\"v\":\"a\"}",
	    "l.jsonl:1"); /* the key is an integer */
	assert_int_equal(put_rc(run, "{\"id\":2,\"v\":", "l.jsonl:2", &err), 0);
	assert_int_equal(put_rc(run, "{\"id\":1.5}", "l.jsonl:3", &err), 0);
	put(run, "{\"id\":4,\"v\":\"d\"}", "l.jsonl:4");
	publish(run, &info);
	atomsync_run_free(run);
	expect_info(&info, "completed", 4, 2, 0, 0, 0, 2);
	atomsync_run_info_clear(&info);
	expect_q(f,
		 "SELECT group_concat(id || '=' || data, ' ') FROM "
		 "(SELECT * FROM lenient ORDER BY id)",
		 "1={\"id\":1,\"v\":\"a\"} 4={\"id\":4,\"v\":\"d\"}");

	snprintf(path, sizeof(path), "%s/lenient.rejects.jsonl", f->dir);
	rf = fopen(path, "r");
	assert_non_null(rf);
	for (int i = 0; i < 2; i++) {
		json_error_t je;

		assert_non_null(fgets(line, sizeof(line), rf));
		rej = json_loads(line, 0, &je);
		assert_non_null(rej);
		assert_string_equal(
			json_string_value(json_object_get(rej, "dataset")),
			"lenient");
		assert_int_equal(
			json_integer_value(json_object_get(rej, "run")), id);
		if (i == 0) {
			assert_string_equal(json_string_value(json_object_get(
						    rej, "where")),
					    "l.jsonl:2");
			assert_int_equal(
				strncmp(json_string_value(
						json_object_get(rej, "error")),
					"l.jsonl:2:", 10),
				0);
			assert_string_equal(json_string_value(json_object_get(
						    rej, "record")),
					    "{\"id\":2,\"v\":");
		} else {
			assert_string_equal(json_string_value(json_object_get(
						    rej, "where")),
					    "l.jsonl:3");
			assert_string_equal(
				json_string_value(
					json_object_get(rej, "error")),
				"l.jsonl:3: 'id': expected an integer, got a real");
			assert_string_equal(json_string_value(json_object_get(
						    rej, "record")),
					    "{\"id\":1.5}");
		}
		json_decref(rej);
	}
	assert_null(fgets(line, sizeof(line), rf));
	fclose(rf);

	/* The third reject of a run is one too many: the run fails. */
	run = begin(f, "lenient", NULL);
	put(run, "{\"id\":1,\"v\":\"a\"}", "m.jsonl:1");
	assert_int_equal(put_rc(run, "{\"id\":\"s\"}", "m.jsonl:2", &err), 0);
	assert_int_equal(put_rc(run, "[]", "m.jsonl:3", &err), 0);
	assert_int_equal(put_rc(run, "{\"id\":{}}", "m.jsonl:4", &err),
			 ATOMSYNC_EINPUT);
	assert_int_equal(strncmp(err.msg, "m.jsonl:4: 'id'", 15), 0);
	assert_non_null(strstr(err.msg,
			       "(3 rejects, over max_rejects 2; rejected "
			       "records are in "));
	assert_non_null(strstr(err.msg, path));
	assert_int_equal(atomsync_run_publish(run, NULL, &err),
			 ATOMSYNC_EINPUT);
	atomsync_run_free(run);
	/* Nothing of the failed run was published. */
	expect_q(f, "SELECT group_concat(id, ',') FROM lenient", "1,4");
}

/* Invariant 9: a record that is not valid UTF-8 is a reject like any other
 * bad record, with its reason in the reject file. */
static void test_reject_invalid_utf8(void **state)
{
	static const char bad[] = "{\"id\":5,\"v\":\"caf\xc3\"}";
	fx *f = *state;
	atomsync_run_info info;
	atomsync_error err;
	atomsync_run *run;
	int rc;

	run = begin(f, "lenient", NULL);
	put(run, "{\"id\":1}", "u:1");
	rc = put_rc(run, bad, "u:2", &err);
	assert_int_equal(rc, 0);
	put(run, "{\"id\":3}", "u:3");
	publish(run, &info);
	atomsync_run_free(run);
	expect_info(&info, "completed", 3, 2, 0, 0, 0, 1);
	atomsync_run_info_clear(&info);
	/* The rejected bytes are kept exactly, as hex: they are not UTF-8. */
	{
		char path[512], line[4096];
		FILE *fp;

		snprintf(path, sizeof(path), "%s/lenient.rejects.jsonl",
			 f->dir);
		fp = fopen(path, "r");
		assert_non_null(fp);
		assert_non_null(fgets(line, sizeof(line), fp));
		fclose(fp);
		assert_non_null(strstr(line, "\"where\":\"u:2\""));
		assert_non_null(strstr(
			line,
			"\"record_hex\":\"7b226964223a352c2276223a22636166c3227d\""));
	}
}

static void test_resume(void **state)
{
	fx *f = *state;
	atomsync_run_info info, *ri;
	atomsync_run *run;
	int64_t first;
	const char *content =
		"SELECT group_concat(id||'='||name||'#'||_atomsync_hash, ' ') "
		"FROM (SELECT * FROM %s ORDER BY id)";
	char sql[200];
	char *resumed, *straight;

	/* A run checkpoints after 3 records (a batch of 2 is due, so it is
	 * committed), gets a 4th, and is stopped. */
	run = begin(f, "items", NULL);
	first = atomsync_run_id(run);
	put_range(run, 1, 3);
	checkpoint(run, "{\"offset\":3}");
	put_range(run, 4, 4);
	{
		atomsync_error err;

		assert_int_equal(
			atomsync_run_abort(run, "stopped by the test", &err),
			0);
		/* Aborting twice is harmless. */
		assert_int_equal(atomsync_run_abort(run, "again", &err), 0);
	}
	atomsync_run_free(run);
	ri = last_run(f, "items");
	assert_string_equal(ri->status, "failed");
	assert_string_equal(ri->error, "stopped by the test");
	assert_int_equal(ri->seen, 4);
	atomsync_run_info_free(ri, 1);
	expect_q(f, "SELECT count(*) FROM sqlite_master WHERE name = 'items'",
		 "0");

	/* Invariant 4: the next run resumes from the last checkpoint ... */
	run = begin(f, "items", NULL);
	assert_non_null(atomsync_run_resume_checkpoint(run));
	assert_string_equal(atomsync_run_resume_checkpoint(run),
			    "{\"offset\":3}");
	put_range(run, 4, 5);
	checkpoint(run, "{\"offset\":5}");
	publish(run, &info);
	atomsync_run_free(run);
	assert_int_equal(info.resumed_from, first);
	expect_info(&info, "completed", 5, 5, 0, 0, 0, 0);
	atomsync_run_info_clear(&info);

	/* ... and publishes what an uninterrupted run publishes. */
	run = begin(f, "copy", NULL);
	put_range(run, 1, 5);
	publish(run, NULL);
	atomsync_run_free(run);
	snprintf(sql, sizeof(sql), content, "items");
	resumed = q1(f, sql);
	snprintf(sql, sizeof(sql), content, "copy");
	straight = q1(f, sql);
	assert_string_equal(resumed, straight);
	assert_non_null(strstr(resumed, "5=n5"));
	free(resumed);
	free(straight);

	/* A checkpoint not yet committed (batch not due) is committed by the
	 * abort with exactly the rows it covers. */
	run = begin(f, "slow", NULL);
	first = atomsync_run_id(run);
	put_range(run, 1, 2);
	checkpoint(run, "cp-2");
	put_range(run, 3, 3);
	atomsync_run_free(run); /* free aborts an open run */
	ri = last_run(f, "slow");
	assert_string_equal(ri->status, "failed");
	atomsync_run_info_free(ri, 1);
	run = begin(f, "slow", NULL);
	assert_string_equal(atomsync_run_resume_checkpoint(run), "cp-2");
	put_range(run, 3, 3);
	publish(run, &info);
	atomsync_run_free(run);
	assert_int_equal(info.resumed_from, first);
	expect_info(&info, "completed", 3, 3, 0, 0, 0, 0);
	atomsync_run_info_clear(&info);
	expect_live(f, "slow_rows", "1=n1 2=n2 3=n3");

	/* restart discards a waiting checkpoint. */
	run = begin(f, "slow", NULL);
	put_range(run, 1, 1);
	checkpoint(run, "cp-1");
	atomsync_run_free(run);
	{
		atomsync_run_options opt;

		memset(&opt, 0, sizeof(opt));
		opt.restart = 1;
		run = begin(f, "slow", &opt);
		assert_null(atomsync_run_resume_checkpoint(run));
		atomsync_run_free(run);
	}
}

static void test_lease(void **state)
{
	fx *f = *state;
	atomsync_run *a, *b = (atomsync_run *)&b, *other;
	atomsync_run_info *ri = NULL;
	atomsync_error err;
	size_t n = 0;

	/* Invariant 6: one run of a dataset at a time. */
	a = begin(f, "items", NULL);
	memset(&err, 0, sizeof(err));
	assert_int_equal(
		atomsync_run_begin(&b, f->st, f->cfg, "items", NULL, &err),
		ATOMSYNC_ELEASE);
	assert_null(b);
	assert_int_equal(err.code, ATOMSYNC_ELEASE);
	assert_non_null(strstr(err.msg, "dataset items is being run by"));
	/* Other datasets are not blocked. */
	other = begin(f, "copy", NULL);
	atomsync_run_free(other);
	/* "nothing done": the refused begin left no run record. */
	assert_int_equal(atomsync_runs_list(f->st, "items", 0, &ri, &n, &err),
			 0);
	assert_int_equal(n, 1);
	atomsync_run_info_free(ri, n);

	put_range(a, 1, 2);
	publish(a, NULL);
	atomsync_run_free(a);
	/* Released with the run: the next one begins. */
	b = begin(f, "items", NULL);
	atomsync_run_free(b);
	assert_string_equal(atomsync_strerror(ATOMSYNC_ELEASE),
			    "another worker holds the lease");
}

static void test_lease_renewed(void **state)
{
	fx *f = *state;
	atomsync_run *a, *b = NULL;
	atomsync_run_info info;
	atomsync_error err;

	/* Invariant 6: a run longer than its lease_ttl (1 s) keeps its lease:
	 * it is renewed while the run is open, so nobody takes it over. */
	a = begin(f, "short", NULL);
	put(a, "{\"id\":1}", "s:1");
	usleep(1600 * 1000);
	memset(&err, 0, sizeof(err));
	assert_int_equal(
		atomsync_run_begin(&b, f->st, f->cfg, "short", NULL, &err),
		ATOMSYNC_ELEASE);
	assert_null(b);
	put(a, "{\"id\":2}", "s:2");
	publish(a, &info);
	atomsync_run_free(a);
	expect_info(&info, "completed", 2, 2, 0, 0, 0, 0);
	atomsync_run_info_clear(&info);
	expect_q(
		f,
		"SELECT group_concat(id) FROM (SELECT id FROM short ORDER BY id)",
		"1,2");
}

static void test_scoped_named(void **state)
{
	fx *f = *state;
	const char *scopes[] = {"grp=2"};
	const char *bad[] = {"grp=two"};
	atomsync_run_options opt;
	atomsync_run_info info;
	atomsync_error err;
	atomsync_run *run;

	run = begin(f, "orders", NULL);
	put(run, "{\"id\":1,\"grp\":1,\"name\":\"a\"}", "o:1");
	put(run, "{\"id\":2,\"grp\":1,\"name\":\"b\"}", "o:2");
	put(run, "{\"id\":3,\"grp\":2,\"name\":\"c\"}", "o:3");
	put(run, "{\"id\":4,\"grp\":3,\"name\":\"d\"}", "o:4");
	publish(run, NULL);
	atomsync_run_free(run);

	/* Scope 1 is delivered (without 2), scope 2 is named with no records
	 * (emptied), scope 3 is neither (untouched). */
	memset(&opt, 0, sizeof(opt));
	opt.scopes = scopes;
	opt.nscopes = 1;
	run = begin(f, "orders", &opt);
	put(run, "{\"id\":1,\"grp\":1,\"name\":\"a\"}", "p:1");
	publish(run, &info);
	atomsync_run_free(run);
	expect_info(&info, "completed", 1, 0, 0, 1, 2, 0);
	atomsync_run_info_clear(&info);
	expect_live(f, "orders", "1=a 4=d");

	/* A scope value of the wrong type is a usage error; nothing changes. */
	opt.scopes = bad;
	run = begin(f, "orders", &opt);
	put(run, "{\"id\":1,\"grp\":1,\"name\":\"a\"}", "q:1");
	assert_int_equal(atomsync_run_publish(run, NULL, &err),
			 ATOMSYNC_EUSAGE);
	assert_string_equal(err.msg, "--scope grp=two: expected an integer");
	atomsync_run_free(run);
	expect_live(f, "orders", "1=a 4=d");
}

static void test_guard(void **state)
{
	fx *f = *state;
	atomsync_run_options opt;
	atomsync_run_info info, *ri;
	atomsync_error err;
	atomsync_run *run;

	run = begin(f, "items", NULL);
	put_range(run, 1, 4);
	publish(run, NULL);
	atomsync_run_free(run);

	/* Invariant 3: 3 of 4 rows would go: refused, table unchanged. */
	run = begin(f, "items", NULL);
	put_range(run, 1, 1);
	memset(&info, 0, sizeof(info));
	assert_int_equal(atomsync_run_publish(run, &info, &err),
			 ATOMSYNC_EREFUSED);
	assert_non_null(strstr(err.msg, "would delete 3 of 4 rows"));
	assert_string_equal(info.status, "refused");
	assert_non_null(strstr(info.error, "would delete 3 of 4 rows"));
	atomsync_run_info_clear(&info);
	assert_int_equal(atomsync_run_publish(run, NULL, &err),
			 ATOMSYNC_EUSAGE);
	atomsync_run_free(run);
	expect_live(f, "items", "1=n1 2=n2 3=n3 4=n4");
	ri = last_run(f, "items");
	assert_string_equal(ri->status, "refused");
	atomsync_run_info_free(ri, 1);

	/* Zero records where rows exist: refused too. */
	run = begin(f, "items", NULL);
	assert_int_equal(atomsync_run_publish(run, NULL, &err),
			 ATOMSYNC_EREFUSED);
	assert_non_null(strstr(err.msg, "delivered 0 records"));
	atomsync_run_free(run);
	expect_live(f, "items", "1=n1 2=n2 3=n3 4=n4");

	/* Explicitly allowed. */
	memset(&opt, 0, sizeof(opt));
	opt.allow_deletes = 1;
	run = begin(f, "items", &opt);
	put_range(run, 1, 1);
	publish(run, &info);
	atomsync_run_free(run);
	expect_info(&info, "completed", 1, 0, 0, 1, 3, 0);
	atomsync_run_info_clear(&info);
	expect_live(f, "items", "1=n1");
}

static void test_usage_errors(void **state)
{
	fx *f = *state;
	atomsync_run *run = (atomsync_run *)&run;
	atomsync_config *cfg = (atomsync_config *)&cfg;
	atomsync_store *st = (atomsync_store *)&st;
	atomsync_error err;
	atomsync_run_options opt;
	const char *scopes[] = {"id=1"};

	memset(&err, 0, sizeof(err));
	assert_int_equal(
		atomsync_run_begin(&run, f->st, f->cfg, "nope", NULL, &err),
		ATOMSYNC_EUSAGE);
	assert_null(run);
	assert_string_equal(err.msg, "e.yml: no dataset named 'nope'");

	assert_int_equal(
		atomsync_config_parse(&cfg, "datasets: [", 11, "bad.yml", &err),
		ATOMSYNC_EUSAGE);
	assert_null(cfg);
	assert_int_equal(strncmp(err.msg, "bad.yml:", 8), 0);

	assert_int_equal(atomsync_store_open(&st, "", &err), ATOMSYNC_EUSAGE);
	assert_null(st);

	/* --scope on a dataset that is not scoped. */
	memset(&opt, 0, sizeof(opt));
	opt.scopes = scopes;
	opt.nscopes = 1;
	run = begin(f, "items", &opt);
	put_range(run, 1, 1);
	assert_int_equal(atomsync_run_publish(run, NULL, &err),
			 ATOMSYNC_EUSAGE);
	assert_non_null(
		strstr(err.msg, "--scope applies to scoped datasets only"));
	atomsync_run_free(run);
	atomsync_run_free(NULL);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_put_publish),
		T(test_idempotent),
		T(test_bad_record_fails_run),
		T(test_rejects_allowed),
		T(test_reject_invalid_utf8),
		T(test_resume),
		T(test_lease),
		T(test_lease_renewed),
		T(test_scoped_named),
		T(test_guard),
		T(test_usage_errors),
	};
#undef T

	return cmocka_run_group_tests(tests, NULL, NULL);
}
