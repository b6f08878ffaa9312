/*
 * The public API of the verbs, through <atomsync.h> alone and linked
 * against the shared libatomsync.so (so every function used here is
 * exported): configs built in memory and read from files, stores, sync,
 * status, run records, rollback, verify and the outbox, on a real SQLite
 * file, with their error paths (unknown dataset, a store that cannot be
 * opened, a lease held by another worker).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <atomsync.h>

typedef struct fix {
	char dir[64];
	char path[128];	 /* records file */
	char store[160]; /* sqlite:DIR/t.db */
	atomsync_config *cfg;
	atomsync_store *st;
} fix;

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static int setup(void **state)
{
	fix *f = calloc(1, sizeof(*f));
	atomsync_error err;
	atomsync_dataset_spec sp = {
		.name = "items", .key = "id", .max_rejects = -1};

	strcpy(f->dir, "/tmp/atomsync-api-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/in.jsonl", f->dir);
	snprintf(f->store, sizeof(f->store), "sqlite:%s/t.db", f->dir);
	write_file(f->path, "{\"id\":1,\"n\":\"a\"}\n{\"id\":2,\"n\":\"b\"}\n"
			    "{\"id\":3,\"n\":\"c\"}\n");
	sp.file = f->path;
	assert_int_equal(atomsync_config_new(&f->cfg, f->store, &err), 0);
	if (atomsync_config_add_dataset(f->cfg, &sp, &err))
		fail_msg("add_dataset: %s", err.msg);
	if (atomsync_store_open(&f->st, f->store, &err))
		fail_msg("store_open: %s", err.msg);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fix *f = *state;
	char cmd[128];

	atomsync_store_free(f->st);
	atomsync_config_free(f->cfg);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

typedef struct seen_progress {
	int calls, done;
	int64_t records;
} seen_progress;

static void on_progress(const atomsync_progress *p, void *ud)
{
	seen_progress *s = ud;

	s->calls++;
	if (p->done) {
		s->done++;
		s->records = p->records;
	}
}

static void test_sync_and_status(void **state)
{
	fix *f = *state;
	atomsync_run_info info = {0};
	atomsync_dataset_status *sv = NULL;
	seen_progress pr = {0};
	atomsync_error err;
	size_t n = 0;

	if (atomsync_sync(f->st, f->cfg, "items", NULL, on_progress, &pr, &info,
			  &err))
		fail_msg("sync: %s", err.msg);
	assert_int_equal(info.inserted, 3);
	assert_string_equal(info.status, "completed");
	assert_int_equal(pr.done, 1);
	assert_int_equal(pr.records, 3);
	atomsync_run_info_clear(&info);
	/* The same input again changes nothing (invariant 5). */
	assert_int_equal(atomsync_sync(f->st, f->cfg, "items", NULL, NULL, NULL,
				       &info, &err),
			 0);
	assert_int_equal(info.unchanged, 3);
	assert_int_equal(info.inserted + info.updated + info.deleted, 0);

	if (atomsync_status(f->st, f->cfg, NULL, &sv, &n, &err))
		fail_msg("status: %s", err.msg);
	assert_int_equal(n, 1);
	assert_string_equal(sv[0].dataset, "items");
	assert_string_equal(sv[0].table, "items");
	assert_string_equal(sv[0].mode, "full");
	assert_int_equal(sv[0].rows, 3);
	assert_int_equal(sv[0].published_run, info.run_id);
	assert_int_equal(sv[0].last_run.run_id, info.run_id);
	assert_string_equal(sv[0].last_run.status, "completed");
	assert_int_equal(sv[0].last_verify.run_id, 0);
	assert_null(sv[0].lease_owner);
	atomsync_dataset_status_free(sv, n);
	atomsync_run_info_clear(&info);

	assert_int_equal(atomsync_status(f->st, f->cfg, "nope", &sv, &n, &err),
			 ATOMSYNC_EUSAGE);
	assert_null(sv);
	assert_non_null(strstr(err.msg, "no dataset named 'nope'"));
	atomsync_dataset_status_free(NULL, 0);
}

static void test_sync_errors(void **state)
{
	fix *f = *state;
	atomsync_run_info info = {0};
	atomsync_store *bad = NULL;
	atomsync_run *run = NULL;
	atomsync_error err;

	assert_int_equal(atomsync_sync(f->st, f->cfg, "nope", NULL, NULL, NULL,
				       &info, &err),
			 ATOMSYNC_EUSAGE);
	assert_int_equal(info.run_id, 0);
	assert_non_null(strstr(err.msg, "nope"));

	assert_int_not_equal(
		atomsync_store_open(&bad, "sqlite:/nonexistent-dir/x/t.db",
				    &err),
		0);
	assert_null(bad);
	assert_true(err.msg[0] != '\0');

	/* A lease held by another worker (invariant 6). */
	if (atomsync_run_begin(&run, f->st, f->cfg, "items", NULL, &err))
		fail_msg("run_begin: %s", err.msg);
	assert_int_equal(atomsync_sync(f->st, f->cfg, "items", NULL, NULL, NULL,
				       &info, &err),
			 ATOMSYNC_ELEASE);
	assert_int_equal(info.run_id, 0);
	atomsync_run_free(run);
	assert_int_equal(atomsync_sync(f->st, f->cfg, "items", NULL, NULL, NULL,
				       &info, &err),
			 0);
	atomsync_run_info_clear(&info);
}

static void test_config_build_errors(void **state)
{
	fix *f = *state;
	atomsync_error err;
	atomsync_config *cfg = NULL;
	struct {
		atomsync_dataset_spec sp;
		const char *words;
	} bad[] = {
		{{.name = "a", .max_rejects = -1}, "a key"},
		{{.name = "items", .key = "id", .max_rejects = -1},
		 "already in the config"},
		{{.name = "b", .key = "id", .mode = "fast", .max_rejects = -1},
		 "mode 'fast'"},
		{{.name = "c",
		  .key = "id",
		  .mode = "scoped",
		  .max_rejects = -1},
		 "needs a scope"},
		{{.name = "d", .key = "id", .scope = "u", .max_rejects = -1},
		 "scoped only"},
		{{.name = "e",
		  .key = "data",
		  .schema = "json",
		  .max_rejects = -1},
		 "whole record"},
		{{.name = "e", .key = "id", .schema = "csv", .max_rejects = -1},
		 "schema 'csv'"},
		{{.name = "e",
		  .key = "id",
		  .schema_contract = "strict",
		  .max_rejects = -1},
		 "schema contract 'strict'"},
		{{.name = "e", .key = "id,ID", .max_rejects = -1},
		 "key id,ID lists 'ID' twice"},
		{{.name = "e",
		  .key = "id",
		  .mode = "scoped",
		  .scope = "_atomsync_run",
		  .max_rejects = -1},
		 "'_atomsync_run' is reserved"},
		{{.name = "e",
		  .key = "id",
		  .mode = "incremental",
		  .cursor = "a b",
		  .max_rejects = -1},
		 "'a b' is not a plain identifier"},
		{{.name = "atomsync_runs", .key = "id", .max_rejects = -1},
		 "table name 'atomsync_runs' is reserved"},
		{{.name = "e",
		  .table = "SQLITE_master",
		  .key = "id",
		  .max_rejects = -1},
		 "table name 'SQLITE_master' is reserved"},
		{{.name = "f", .key = "id", .format = "csv", .max_rejects = -1},
		 "format 'csv'"},
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&err, 0, sizeof(err));
		assert_int_equal(
			atomsync_config_add_dataset(f->cfg, &bad[i].sp, &err),
			ATOMSYNC_EUSAGE);
		if (!strstr(err.msg, bad[i].words))
			fail_msg("case %zu: '%s' lacks '%s'", i, err.msg,
				 bad[i].words);
	}
	assert_int_equal(atomsync_config_ndatasets(f->cfg), 1);
	assert_int_equal(atomsync_config_new(&cfg, "", &err), ATOMSYNC_EUSAGE);
	assert_null(cfg);
	atomsync_config_free(NULL);
}

/* Stores that cannot be opened: not a store URL (a usage error that
 * creates nothing), a directory that does not exist, a file that is not a
 * database, a PostgreSQL that does not answer. */
static void test_store_open_errors(void **state)
{
	fix *f = *state;
	atomsync_store *st = NULL;
	atomsync_error err;
	char url[256], path[200];
	FILE *fp;

	assert_int_equal(atomsync_store_open(&st, "bogus:x", &err),
			 ATOMSYNC_EUSAGE);
	assert_null(st);
	assert_non_null(strstr(err.msg, "sqlite:PATH"));
	assert_int_not_equal(access("bogus:x", F_OK), 0);
	assert_int_equal(atomsync_store_open(&st, "mysql://u:pw@h/db", &err),
			 ATOMSYNC_EUSAGE);
	assert_null(strstr(err.msg, "pw@"));
	assert_int_equal(atomsync_store_open(
				 &st, "sqlite:/nonexistent-dir/x/t.db", &err),
			 ATOMSYNC_ESTORE);
	assert_null(st);
	assert_non_null(strstr(err.msg, "/nonexistent-dir/x/t.db"));
	snprintf(path, sizeof(path), "%s/text.db", f->dir);
	fp = fopen(path, "w");
	assert_non_null(fp);
	fputs("not a database, only text, long enough to have a header\n", fp);
	fclose(fp);
	snprintf(url, sizeof(url), "sqlite:%s", path);
	assert_int_equal(atomsync_store_open(&st, url, &err), ATOMSYNC_ESTORE);
	assert_null(st);
	assert_non_null(strstr(err.msg, "not a database"));
	assert_int_equal(atomsync_store_open(
				 &st, "postgres://u:pw@127.0.0.1:1/db", &err),
			 ATOMSYNC_ESTORE);
	assert_null(st);
	assert_non_null(strstr(err.msg, "cannot connect"));
	assert_null(strstr(err.msg, ":pw@"));
	atomsync_store_free(NULL);
}

/* Every verb that takes a dataset's lease refuses with ATOMSYNC_ELEASE
 * while another worker holds it (invariant 6), and changes nothing. */
static void test_lease_held(void **state)
{
	fix *f = *state;
	atomsync_run_info info = {0}, *runs = NULL;
	atomsync_config *cfg = NULL;
	atomsync_run *run = NULL;
	atomsync_error err;
	char yml[512];
	size_t n = 0;
	int64_t first;

	snprintf(yml, sizeof(yml),
		 "store: %s\ndatasets:\n  items:\n    key: [id]\n"
		 "    history: snapshot\n    source: {file: %s}\n",
		 f->store, f->path);
	if (atomsync_config_parse(&cfg, yml, strlen(yml), "h.yml", &err))
		fail_msg("parse: %s", err.msg);
	assert_int_equal(atomsync_sync(f->st, cfg, "items", NULL, NULL, NULL,
				       &info, &err),
			 0);
	first = info.run_id;
	atomsync_run_info_clear(&info);
	if (atomsync_run_begin(&run, f->st, cfg, "items", NULL, &err))
		fail_msg("run_begin: %s", err.msg);
	assert_int_equal(
		atomsync_rollback(f->st, cfg, "items", first, &info, &err),
		ATOMSYNC_ELEASE);
	assert_int_equal(info.run_id, 0);
	assert_non_null(strstr(err.msg, "items"));
	assert_int_equal(atomsync_sync(f->st, cfg, "items", NULL, NULL, NULL,
				       &info, &err),
			 ATOMSYNC_ELEASE);
	assert_int_equal(info.run_id, 0);
	/* Neither put a run on record: the first sync and the open run. */
	assert_int_equal(atomsync_runs_list(f->st, "items", 0, &runs, &n, &err),
			 0);
	assert_int_equal(n, 2);
	assert_string_equal(runs[0].status, "active");
	assert_int_equal(runs[0].run_id, atomsync_run_id(run));
	atomsync_run_info_free(runs, n);
	atomsync_run_free(run);
	/* Released: the rollback goes through. */
	if (atomsync_rollback(f->st, cfg, "items", first, &info, &err))
		fail_msg("rollback: %s", err.msg);
	assert_string_equal(info.kind, "rollback");
	atomsync_run_info_clear(&info);
	atomsync_config_free(cfg);
}

/* Run records through the shared library: newest first, a limit, an
 * unknown dataset has none; rollback of an unknown dataset. */
static void test_runs_and_unknown_dataset(void **state)
{
	fix *f = *state;
	atomsync_run_info info = {0}, *runs = NULL;
	atomsync_outbox_event *ev = NULL;
	atomsync_drain_stats ds;
	atomsync_error err;
	size_t n = 0;

	for (int i = 0; i < 3; i++) {
		assert_int_equal(atomsync_sync(f->st, f->cfg, "items", NULL,
					       NULL, NULL, &info, &err),
				 0);
		atomsync_run_info_clear(&info);
	}
	assert_int_equal(atomsync_runs_list(f->st, "items", 2, &runs, &n, &err),
			 0);
	assert_int_equal(n, 2);
	assert_true(runs[0].run_id > runs[1].run_id);
	assert_string_equal(runs[0].kind, "sync");
	assert_int_equal(runs[0].unchanged, 3);
	atomsync_run_info_free(runs, n);
	assert_int_equal(atomsync_runs_list(f->st, "nope", 0, &runs, &n, &err),
			 0);
	assert_int_equal(n, 0);
	atomsync_run_info_free(runs, n);

	assert_int_equal(
		atomsync_rollback(f->st, f->cfg, "nope", 1, &info, &err),
		ATOMSYNC_EUSAGE);
	assert_non_null(strstr(err.msg, "no dataset named 'nope'"));
	assert_int_equal(
		atomsync_outbox_list(f->st, "nope", 0, 0, 0, &ev, &n, &err), 0);
	assert_int_equal(n, 0);
	atomsync_outbox_events_free(ev, n);
	memset(&ds, 0, sizeof(ds));
	assert_int_equal(
		atomsync_outbox_drain(f->st, f->cfg, "nope", &ds, &err), 0);
	assert_int_equal(ds.delivered + ds.failed, 0);
	assert_string_equal(atomsync_strerror(ATOMSYNC_ELEASE),
			    "another worker holds the lease");
}

/* A config file: its errors name file:line:col; a good one is read, and
 * its secrets (values of ${VAR} in the store URL and the HTTP url's
 * userinfo and query) are masked in a message. */
static void test_config_load_and_redact(void **state)
{
	fix *f = *state;
	atomsync_config *cfg = NULL;
	atomsync_error err;
	char path[200], yml[1024], msg[512];

	snprintf(path, sizeof(path), "%s/bad.yml", f->dir);
	write_file(path, "store: sqlite:x.db\ndatasets:\n  d:\n    key: [id]\n"
			 "    mode: sideways\n    source: {file: in.jsonl}\n");
	assert_int_equal(atomsync_config_load(&cfg, path, &err),
			 ATOMSYNC_EUSAGE);
	assert_null(cfg);
	assert_non_null(strstr(err.msg, "bad.yml:5:"));
	assert_int_equal(atomsync_config_load(&cfg, "/nonexistent.yml", &err),
			 ATOMSYNC_EUSAGE);
	assert_non_null(strstr(err.msg, "/nonexistent.yml"));

	setenv("API_PASS", "pass-5e1b9f", 1);
	setenv("API_KEY", "key-77c0a3", 1);
	snprintf(path, sizeof(path), "%s/good.yml", f->dir);
	snprintf(yml, sizeof(yml),
		 "store: %s\ndatasets:\n  a:\n    key: [id]\n"
		 "    source: {file: in.jsonl}\n  b:\n    key: [id]\n"
		 "    source:\n      http:\n        url: "
		 "\"http://u:${API_PASS}@127.0.0.1:1/x?key=${API_KEY}\"\n"
		 "        records: data\n"
		 "        pagination: {style: none}\n",
		 f->store);
	write_file(path, yml);
	if (atomsync_config_load(&cfg, path, &err))
		fail_msg("config_load: %s", err.msg);
	assert_string_equal(atomsync_config_store(cfg), f->store);
	assert_int_equal(atomsync_config_ndatasets(cfg), 2);
	assert_string_equal(atomsync_config_dataset_name(cfg, 1), "b");
	snprintf(msg, sizeof(msg),
		 "b: http://u:pass-5e1b9f@127.0.0.1:1/x?key=key-77c0a3: down");
	atomsync_config_redact(cfg, msg, sizeof(msg));
	assert_null(strstr(msg, "pass-5e1b9f"));
	assert_null(strstr(msg, "key-77c0a3"));
	assert_non_null(strstr(msg, "127.0.0.1:1/x"));
	atomsync_config_free(cfg);
}

static const char *HISTORY_YML = "store: %s\n"
				 "cache: redis://127.0.0.1:1/0?timeout=200ms\n"
				 "datasets:\n"
				 "  items:\n"
				 "    key: [id]\n"
				 "    history: snapshot\n"
				 "    invalidate: [\"item:{id}\"]\n"
				 "    source:\n"
				 "      file: %s\n";

static void test_rollback_verify_outbox(void **state)
{
	fix *f = *state;
	atomsync_config *cfg = NULL;
	atomsync_run_info info = {0}, r1 = {0};
	atomsync_verify_result *vr = NULL;
	atomsync_outbox_event *ev = NULL;
	atomsync_drain_stats ds;
	atomsync_dataset_status *sv = NULL;
	atomsync_error err;
	char yml[1024];
	size_t n = 0;

	snprintf(yml, sizeof(yml), HISTORY_YML, f->store, f->path);
	if (atomsync_config_parse(&cfg, yml, strlen(yml), "h.yml", &err))
		fail_msg("parse: %s", err.msg);
	assert_int_equal(
		atomsync_sync(f->st, cfg, "items", NULL, NULL, NULL, &r1, &err),
		0);
	write_file(f->path, "{\"id\":1,\"n\":\"z\"}\n");
	{
		atomsync_run_options opt = {.allow_deletes = 1};

		if (atomsync_sync(f->st, cfg, "items", &opt, NULL, NULL, &info,
				  &err))
			fail_msg("second sync: %s", err.msg);
	}
	assert_int_equal(info.deleted, 2);
	atomsync_run_info_clear(&info);

	/* Rollback to the first run (a chain reorg). */
	assert_int_equal(
		atomsync_rollback(f->st, cfg, "items", 999, &info, &err),
		ATOMSYNC_EUSAGE);
	if (atomsync_rollback(f->st, cfg, "items", r1.run_id, &info, &err))
		fail_msg("rollback: %s", err.msg);
	assert_string_equal(info.kind, "rollback");
	atomsync_run_info_clear(&info);
	assert_int_equal(atomsync_status(f->st, cfg, "items", &sv, &n, &err),
			 0);
	assert_int_equal(sv[0].rows, 3);
	atomsync_dataset_status_free(sv, n);

	/* Verify: the file has 1 record, the table 3: the count differs. */
	if (atomsync_verify(f->st, cfg, "items", 10, &vr, &err))
		fail_msg("verify: %s", err.msg);
	assert_true(vr->run_id > 0);
	assert_int_equal(vr->live_rows, 3);
	assert_true(vr->count_checked);
	assert_false(vr->count_ok);
	assert_int_equal(vr->source_total, 1);
	assert_string_equal(vr->mismatches, "[]");
	atomsync_verify_result_free(vr);
	assert_int_equal(atomsync_verify(f->st, cfg, "nope", 10, &vr, &err),
			 ATOMSYNC_EUSAGE);
	assert_null(vr);

	/* The outbox: Redis is unreachable, so every event stays pending. */
	if (atomsync_outbox_list(f->st, "items", 0, 0, ATOMSYNC_OUTBOX_PENDING,
				 &ev, &n, &err))
		fail_msg("outbox_list: %s", err.msg);
	assert_true(n >= 2);
	assert_string_equal(ev[0].status, "pending");
	assert_string_equal(ev[0].target, "redis");
	assert_null(ev[0].payload);
	atomsync_outbox_events_free(ev, n);
	memset(&ds, 0, sizeof(ds));
	assert_int_equal(atomsync_outbox_drain(f->st, cfg, "items", &ds, &err),
			 0);
	assert_int_equal(ds.delivered, 0);
	assert_true(ds.failed >= 1);
	assert_non_null(strstr(ds.first_error, "cannot connect"));
	assert_int_equal(atomsync_outbox_list(f->st, "items", 0, 1,
					      ATOMSYNC_OUTBOX_PENDING |
						      ATOMSYNC_OUTBOX_PAYLOAD,
					      &ev, &n, &err),
			 0);
	assert_int_equal(n, 1);
	assert_non_null(ev[0].payload);
	assert_non_null(strstr(ev[0].payload, "item:"));
	atomsync_outbox_events_free(ev, n);
	atomsync_run_info_clear(&r1);
	atomsync_config_free(cfg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_sync_and_status, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_sync_errors, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_config_build_errors, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_rollback_verify_outbox,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_store_open_errors, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_lease_held, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_runs_and_unknown_dataset,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_config_load_and_redact,
						setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
