/*
 * The SQLite store: one database file in WAL mode holding the live tables,
 * per-run staging tables and the bookkeeping tables of DESIGN.md.  Staging
 * commits are short fenced transactions carrying their checkpoint; the
 * publish is one fenced transaction.  Readers never block (WAL).
 */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store.h"
#include "util/crash.h"
#include "util/log.h"
#include "util/proc.h"
#include "util/str.h"
#include "util/time.h"

typedef struct sq_store {
	as_store base;
	sqlite3 *db;
	char *path;
} sq_store;

typedef struct sq_run {
	char *live_q;       /* "table", quoted */
	char *stage;        /* staging table name, unquoted; NULL until prepared */
	char *stage_q;
	int live_exists;    /* the live table existed when staging began */
	int live_has_rows;
	int64_t stage_base; /* published_run when the staging began */
	sqlite3_stmt *ins, *look_live, *look_stage, *fence, *save;
} sq_run;

static const char *RUN_COLS =
	"run_id, dataset, kind, mode, status, started_at, finished_at, seen, "
	"inserted, updated, unchanged, deleted, rejected, duplicates, "
	"resumed_from, error";

/* ---- errors and statements ---- */

static int sq_fail(sq_store *s, as_error *err, const char *what)
{
	int ext = sqlite3_extended_errcode(s->db);

	as_error_set(err, AS_ESTORE, "%s: %s: %s", s->path, what,
		     sqlite3_errmsg(s->db));
	err->native = ext;
	return AS_ESTORE;
}

static int sq_exec(sq_store *s, const char *sql, as_error *err)
{
	char *msg = NULL;

	if (sqlite3_exec(s->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		int ext = sqlite3_extended_errcode(s->db);

		as_error_set(err, AS_ESTORE, "%s: %s", s->path,
			     msg ? msg : sqlite3_errmsg(s->db));
		err->native = ext;
		sqlite3_free(msg);
		return AS_ESTORE;
	}
	return 0;
}

static int sq_prepare(sq_store *s, const char *sql, sqlite3_stmt **st,
		      as_error *err)
{
	if (sqlite3_prepare_v2(s->db, sql, -1, st, NULL) != SQLITE_OK) {
		*st = NULL;
		return sq_fail(s, err, "prepare");
	}
	return 0;
}

static void sq_rollback(sq_store *s)
{
	if (!sqlite3_get_autocommit(s->db))
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
}

static void bind_text(sqlite3_stmt *st, int i, const char *v)
{
	if (v)
		sqlite3_bind_text(st, i, v, -1, SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(st, i);
}

static void bind_val(sqlite3_stmt *st, int i, const as_val *v)
{
	switch (v->kind) {
	case AS_V_INT: sqlite3_bind_int64(st, i, v->u.i); break;
	case AS_V_REAL: sqlite3_bind_double(st, i, v->u.r); break;
	case AS_V_TEXT:
		sqlite3_bind_text(st, i, v->u.s, (int)v->len, SQLITE_STATIC);
		break;
	default: sqlite3_bind_null(st, i); break;
	}
}

/* Run a statement that returns at most one integer; *out = 0 when no row. */
static int query_int(sq_store *s, const char *sql, const char *arg,
		     int64_t *out, as_error *err)
{
	sqlite3_stmt *st;
	int rc;

	if (sq_prepare(s, sql, &st, err))
		return AS_ESTORE;
	if (arg)
		sqlite3_bind_text(st, 1, arg, -1, SQLITE_TRANSIENT);
	rc = sqlite3_step(st);
	*out = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return sq_fail(s, err, "query");
	return 0;
}

static int table_exists(sq_store *s, const char *name, int *exists,
			as_error *err)
{
	int64_t n;
	int rc = query_int(s, "SELECT count(*) FROM sqlite_master "
			      "WHERE type = 'table' AND name = ?1", name, &n, err);

	*exists = n > 0;
	return rc;
}

static char *quote_ident(const char *name)
{
	as_buf b = AS_BUF_INIT;

	as_buf_add_ident(&b, name);
	return as_buf_detach(&b);
}

/* ---- opening ---- */

static const char *SCHEMA =
	"CREATE TABLE IF NOT EXISTS atomsync_meta("
	" key TEXT PRIMARY KEY, value TEXT);"
	"INSERT OR IGNORE INTO atomsync_meta VALUES('schema_version', '1');"
	"CREATE TABLE IF NOT EXISTS atomsync_runs("
	" run_id INTEGER PRIMARY KEY AUTOINCREMENT,"
	" dataset TEXT NOT NULL, kind TEXT NOT NULL DEFAULT 'sync', mode TEXT,"
	" status TEXT NOT NULL, started_at TEXT NOT NULL, finished_at TEXT,"
	" seen INTEGER NOT NULL DEFAULT 0, inserted INTEGER NOT NULL DEFAULT 0,"
	" updated INTEGER NOT NULL DEFAULT 0, unchanged INTEGER NOT NULL DEFAULT 0,"
	" deleted INTEGER NOT NULL DEFAULT 0, rejected INTEGER NOT NULL DEFAULT 0,"
	" duplicates INTEGER NOT NULL DEFAULT 0, resumed_from INTEGER,"
	" error TEXT, lease_token INTEGER, owner TEXT);"
	"CREATE INDEX IF NOT EXISTS atomsync_runs_dataset"
	" ON atomsync_runs(dataset, run_id);"
	"CREATE TABLE IF NOT EXISTS atomsync_leases("
	" dataset TEXT PRIMARY KEY, owner TEXT, token INTEGER NOT NULL,"
	" acquired_at TEXT, expires_at REAL NOT NULL);"
	"CREATE TABLE IF NOT EXISTS atomsync_state("
	" dataset TEXT PRIMARY KEY, table_name TEXT NOT NULL, mode TEXT,"
	" published_run INTEGER NOT NULL DEFAULT 0, cursor,"
	" stage_table TEXT, stage_run INTEGER, stage_last_run INTEGER,"
	" stage_base INTEGER, stage_fingerprint TEXT, stage_key TEXT,"
	" checkpoint TEXT, stage_seen INTEGER NOT NULL DEFAULT 0,"
	" stage_rejected INTEGER NOT NULL DEFAULT 0);";

static const as_store_ops sqlite_ops;

static const char *url_path(const char *url)
{
	if (strncmp(url, "sqlite://", 9) == 0)
		return url + 9;
	if (strncmp(url, "sqlite:", 7) == 0)
		return url + 7;
	return url;
}

int as_sqlite_open(as_store **out, const char *url, as_error *err);
int as_sqlite_open(as_store **out, const char *url, as_error *err)
{
	sq_store *s = calloc(1, sizeof(*s));
	const char *path = url_path(url);
	int rc;

	*out = NULL;
	if (!s)
		return as_error_set(err, AS_ENOMEM, "out of memory");
	s->base.ops = &sqlite_ops;
	s->base.url = as_strdup(url);
	s->base.display = as_strdup(url);
	s->path = as_strdup(path);
	if (!*path) {
		sqlite_ops.close(&s->base);
		return as_error_set(err, AS_EUSAGE, "store %s: no file name", url);
	}
	rc = sqlite3_open_v2(path, &s->db,
			     SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
				     SQLITE_OPEN_NOMUTEX,
			     NULL);
	if (rc != SQLITE_OK) {
		as_error_set(err, AS_ESTORE, "%s: cannot open: %s", path,
			     s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
		sqlite_ops.close(&s->base);
		return AS_ESTORE;
	}
	sqlite3_extended_result_codes(s->db, 1);
	sqlite3_busy_timeout(s->db, 30000);
	/*
	 * WAL: readers see the last committed publish while a run stages and
	 * publishes (invariant 1 for readers).  synchronous=NORMAL for staging
	 * (a power cut loses at most the last batches, and their checkpoint
	 * with them); the publish switches to FULL so a reported publish is
	 * durable.
	 */
	if (sq_exec(s, "PRAGMA journal_mode=WAL", err) ||
	    sq_exec(s, "PRAGMA synchronous=NORMAL;"
		       "PRAGMA cache_size=-32768;"
		       "PRAGMA wal_autocheckpoint=8192;"
		       "PRAGMA foreign_keys=OFF", err) ||
	    sq_exec(s, SCHEMA, err)) {
		as_error_prefix(err, "opening store");
		sqlite_ops.close(&s->base);
		return err->code;
	}
	*out = &s->base;
	return 0;
}

static void sq_close(as_store *st)
{
	sq_store *s = (sq_store *)st;

	if (!s)
		return;
	if (s->db)
		sqlite3_close_v2(s->db);
	free(s->path);
	free(s->base.url);
	free(s->base.display);
	free(s);
}

/* ---- leases (invariant 6) ---- */

static int sq_lease_acquire(as_store *st, const char *dataset,
			    const char *owner, int64_t ttl_ms, int64_t *token,
			    as_error *err)
{
	sq_store *s = (sq_store *)st;
	sqlite3_stmt *q = NULL;
	double now = as_now();
	char when[40];
	int rc;

	if (sq_exec(s, "BEGIN IMMEDIATE", err))
		return err->code;
	if (sq_prepare(s, "SELECT owner, expires_at FROM atomsync_leases "
			  "WHERE dataset = ?1", &q, err))
		goto fail;
	sqlite3_bind_text(q, 1, dataset, -1, SQLITE_TRANSIENT);
	rc = sqlite3_step(q);
	if (rc == SQLITE_ROW) {
		const char *holder = (const char *)sqlite3_column_text(q, 0);
		double exp = sqlite3_column_double(q, 1);

		if (holder && exp > now && !as_owner_is_dead(holder)) {
			as_error_set(err, AS_ELEASE,
				     "dataset %s is being run by %s (lease "
				     "expires %s); nothing done",
				     dataset, holder, as_iso8601(exp, when, sizeof(when)));
			goto fail;
		}
	} else if (rc != SQLITE_DONE) {
		sq_fail(s, err, "reading lease");
		goto fail;
	}
	sqlite3_finalize(q);
	if (sq_prepare(s, "INSERT INTO atomsync_leases(dataset, owner, token, "
			  "acquired_at, expires_at) VALUES(?1, ?2, 1, ?3, ?4) "
			  "ON CONFLICT(dataset) DO UPDATE SET owner = excluded.owner, "
			  "token = token + 1, acquired_at = excluded.acquired_at, "
			  "expires_at = excluded.expires_at RETURNING token",
		       &q, err))
		goto fail;
	sqlite3_bind_text(q, 1, dataset, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(q, 2, owner, -1, SQLITE_TRANSIENT);
	bind_text(q, 3, as_iso8601(now, when, sizeof(when)));
	sqlite3_bind_double(q, 4, now + (double)ttl_ms / 1000.0);
	if (sqlite3_step(q) != SQLITE_ROW) {
		sq_fail(s, err, "taking lease");
		goto fail;
	}
	*token = sqlite3_column_int64(q, 0);
	sqlite3_finalize(q);
	q = NULL;
	if (sq_exec(s, "COMMIT", err))
		goto fail;
	return 0;
fail:
	sqlite3_finalize(q);
	sq_rollback(s);
	return err->code;
}

/* Inside a transaction: extend our lease, or fail if it was taken. */
static int fence(sq_store *s, sqlite3_stmt **cache, const char *dataset,
		 int64_t token, int64_t ttl_ms, as_error *err)
{
	sqlite3_stmt *st = cache ? *cache : NULL;
	int rc;

	if (!st && sq_prepare(s, "UPDATE atomsync_leases SET expires_at = ?1 "
				"WHERE dataset = ?2 AND token = ?3", &st, err))
		return AS_ESTORE;
	sqlite3_bind_double(st, 1, as_now() + (double)ttl_ms / 1000.0);
	sqlite3_bind_text(st, 2, dataset, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 3, token);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (cache)
		*cache = st;
	else
		sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return sq_fail(s, err, "checking lease");
	if (sqlite3_changes(s->db) != 1)
		return as_error_set(err, AS_EFENCED,
				    "dataset %s: this worker's lease (token %lld) "
				    "was taken over by another worker; nothing "
				    "more is committed by this run",
				    dataset, (long long)token);
	return 0;
}

static int sq_lease_renew(as_store *st, const char *dataset, int64_t token,
			  int64_t ttl_ms, as_error *err)
{
	sq_store *s = (sq_store *)st;
	int rc = fence(s, NULL, dataset, token, ttl_ms, err);

	return rc;
}

static int sq_lease_release(as_store *st, const char *dataset, int64_t token,
			    as_error *err)
{
	sq_store *s = (sq_store *)st;
	sqlite3_stmt *q;
	int rc;

	if (sq_prepare(s, "UPDATE atomsync_leases SET owner = NULL, "
			  "expires_at = 0 WHERE dataset = ?1 AND token = ?2",
		       &q, err))
		return AS_ESTORE;
	sqlite3_bind_text(q, 1, dataset, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(q, 2, token);
	rc = sqlite3_step(q);
	sqlite3_finalize(q);
	return rc == SQLITE_DONE ? 0 : sq_fail(s, err, "releasing lease");
}

/* ---- run records ---- */

static void sq_run_free(as_store *st, as_run_ctx *rc)
{
	sq_run *r = rc->priv;

	(void)st;
	if (!r)
		return;
	sqlite3_finalize(r->ins);
	sqlite3_finalize(r->look_live);
	sqlite3_finalize(r->look_stage);
	sqlite3_finalize(r->fence);
	sqlite3_finalize(r->save);
	free(r->live_q);
	free(r->stage);
	free(r->stage_q);
	free(r);
	rc->priv = NULL;
}

/* Drop staging tables no dataset refers to (left by a crash after a
 * publish committed but before its staging was dropped). */
static int drop_orphans(sq_store *s, as_error *err)
{
	sqlite3_stmt *q;
	char *names[64];
	size_t n = 0;
	int rc = 0;

	if (sq_prepare(s, "SELECT name FROM sqlite_master WHERE type = 'table' "
			  "AND name LIKE '\\_atomsync\\_stage\\_%' ESCAPE '\\' "
			  "AND name NOT IN (SELECT stage_table FROM atomsync_state "
			  "WHERE stage_table IS NOT NULL)", &q, err))
		return AS_ESTORE;
	while (n < 64 && sqlite3_step(q) == SQLITE_ROW)
		names[n++] = as_strdup((const char *)sqlite3_column_text(q, 0));
	sqlite3_finalize(q);
	for (size_t i = 0; i < n; i++) {
		as_buf b = AS_BUF_INIT;

		as_buf_adds(&b, "DROP TABLE IF EXISTS ");
		as_buf_add_ident(&b, names[i]);
		if (!rc)
			rc = sq_exec(s, as_buf_cstr(&b), err);
		as_buf_free(&b);
		free(names[i]);
	}
	return rc;
}

static int drop_table(sq_store *s, const char *name, as_error *err)
{
	as_buf b = AS_BUF_INIT;
	int rc;

	as_buf_adds(&b, "DROP TABLE IF EXISTS ");
	as_buf_add_ident(&b, name);
	rc = sq_exec(s, as_buf_cstr(&b), err);
	as_buf_free(&b);
	return rc;
}

/*
 * One fenced transaction: mark runs left active by dead workers as failed
 * (invariant 10), put this run on record, and decide whether it continues
 * the interrupted staging (invariant 4) or starts over.
 */
static int sq_run_begin(as_store *st, as_run_ctx *rc, as_error *err)
{
	sq_store *s = (sq_store *)st;
	as_table *t = rc->table;
	sqlite3_stmt *q = NULL;
	sq_run *r = calloc(1, sizeof(*r));
	char now[40];
	int resume = 0, exists;
	char *stage = NULL;
	int64_t published = 0, last_run = 0;

	if (!r)
		return as_error_set(err, AS_ENOMEM, "out of memory");
	rc->priv = r;
	r->live_q = quote_ident(t->table);
	as_iso8601(as_now(), now, sizeof(now));
	if (sq_exec(s, "BEGIN IMMEDIATE", err))
		return err->code;
	if (fence(s, NULL, t->dataset, rc->token, rc->lease_ttl_ms, err))
		goto fail;
	if (sq_prepare(s, "UPDATE atomsync_runs SET status = 'failed', "
			  "finished_at = ?2, error = 'interrupted: the worker "
			  "stopped before finishing (killed, crashed or lost its "
			  "connection); nothing was published' "
			  "WHERE dataset = ?1 AND status IN ('active', 'publishing')",
		       &q, err))
		goto fail;
	sqlite3_bind_text(q, 1, t->dataset, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(q, 2, now, -1, SQLITE_TRANSIENT);
	if (sqlite3_step(q) != SQLITE_DONE) {
		sq_fail(s, err, "recording interrupted runs");
		goto fail;
	}
	sqlite3_finalize(q);
	if (sq_prepare(s, "INSERT INTO atomsync_state(dataset, table_name, mode) "
			  "VALUES(?1, ?2, ?3) ON CONFLICT(dataset) DO NOTHING",
		       &q, err))
		goto fail;
	sqlite3_bind_text(q, 1, t->dataset, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(q, 2, t->table, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(q, 3, as_mode_name(t->mode), -1, SQLITE_STATIC);
	if (sqlite3_step(q) != SQLITE_DONE) {
		sq_fail(s, err, "creating state");
		goto fail;
	}
	sqlite3_finalize(q);
	if (sq_prepare(s, "SELECT published_run, cursor, stage_table, "
			  "stage_last_run, stage_base, stage_fingerprint, stage_key, "
			  "checkpoint, stage_seen, stage_rejected "
			  "FROM atomsync_state WHERE dataset = ?1", &q, err))
		goto fail;
	sqlite3_bind_text(q, 1, t->dataset, -1, SQLITE_TRANSIENT);
	if (sqlite3_step(q) != SQLITE_ROW) {
		sq_fail(s, err, "reading state");
		goto fail;
	}
	published = sqlite3_column_int64(q, 0);
	rc->cursor = as_strdup((const char *)sqlite3_column_text(q, 1));
	stage = as_strdup((const char *)sqlite3_column_text(q, 2));
	last_run = sqlite3_column_int64(q, 3);
	if (stage && !rc->restart && sqlite3_column_type(q, 7) != SQLITE_NULL &&
	    sqlite3_column_int64(q, 4) == published &&
	    as_streq((const char *)sqlite3_column_text(q, 5), t->fingerprint)) {
		resume = 1;
		rc->stage_key = as_strdup((const char *)sqlite3_column_text(q, 6));
		rc->checkpoint = as_strdup((const char *)sqlite3_column_text(q, 7));
		rc->seen = sqlite3_column_int64(q, 8);
		rc->rejected = sqlite3_column_int64(q, 9);
		r->stage_base = published;
	}
	sqlite3_finalize(q);
	q = NULL;
	if (resume && (table_exists(s, stage, &exists, err) || !exists)) {
		if (err->code)
			goto fail;
		resume = 0;
	}
	if (!resume) {
		free(rc->checkpoint);
		free(rc->stage_key);
		rc->checkpoint = rc->stage_key = NULL;
		rc->seen = rc->rejected = 0;
		if (stage && drop_table(s, stage, err))
			goto fail;
		if (sq_prepare(s, "UPDATE atomsync_state SET stage_table = NULL, "
				  "stage_run = NULL, stage_last_run = NULL, "
				  "stage_base = NULL, stage_fingerprint = NULL, "
				  "stage_key = NULL, checkpoint = NULL, stage_seen = 0, "
				  "stage_rejected = 0 WHERE dataset = ?1", &q, err))
			goto fail;
		sqlite3_bind_text(q, 1, t->dataset, -1, SQLITE_TRANSIENT);
		if (sqlite3_step(q) != SQLITE_DONE) {
			sq_fail(s, err, "clearing staging");
			goto fail;
		}
		sqlite3_finalize(q);
		q = NULL;
		free(stage);
		stage = NULL;
	}
	if (drop_orphans(s, err))
		goto fail;
	if (sq_prepare(s, "INSERT INTO atomsync_runs(dataset, kind, mode, status, "
			  "started_at, resumed_from, lease_token, owner) "
			  "VALUES(?1, ?2, ?3, 'active', ?4, ?5, ?6, ?7)", &q, err))
		goto fail;
	sqlite3_bind_text(q, 1, t->dataset, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(q, 2, rc->kind ? rc->kind : "sync", -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(q, 3, as_mode_name(t->mode), -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 4, now, -1, SQLITE_TRANSIENT);
	if (resume)
		sqlite3_bind_int64(q, 5, last_run);
	else
		sqlite3_bind_null(q, 5);
	sqlite3_bind_int64(q, 6, rc->token);
	sqlite3_bind_text(q, 7, rc->owner, -1, SQLITE_TRANSIENT);
	if (sqlite3_step(q) != SQLITE_DONE) {
		sq_fail(s, err, "recording run");
		goto fail;
	}
	sqlite3_finalize(q);
	q = NULL;
	rc->run_id = sqlite3_last_insert_rowid(s->db);
	rc->resumed_from = resume ? last_run : 0;
	if (resume) {
		if (sq_prepare(s, "UPDATE atomsync_state SET stage_last_run = ?2 "
				  "WHERE dataset = ?1", &q, err))
			goto fail;
		sqlite3_bind_text(q, 1, t->dataset, -1, SQLITE_TRANSIENT);
		sqlite3_bind_int64(q, 2, rc->run_id);
		if (sqlite3_step(q) != SQLITE_DONE) {
			sq_fail(s, err, "adopting staging");
			goto fail;
		}
		sqlite3_finalize(q);
		q = NULL;
		r->stage = stage;
		r->stage_q = quote_ident(stage);
		stage = NULL;
	}
	if (sq_exec(s, "COMMIT", err))
		goto fail;
	as_crash_point("run.begun");
	return 0;
fail:
	sqlite3_finalize(q);
	free(stage);
	sq_rollback(s);
	return err->code;
}

static int sq_run_end(as_store *st, as_run_ctx *rc, const char *status,
		      const char *error, as_error *err)
{
	sq_store *s = (sq_store *)st;
	sq_run *r = rc->priv;
	sqlite3_stmt *q = NULL;
	char now[40];
	as_error ferr;

	if (!rc->run_id)
		return 0;
	as_iso8601(as_now(), now, sizeof(now));
	if (sq_exec(s, "BEGIN IMMEDIATE", err))
		return err->code;
	/* A worker that lost its lease leaves the record to the new holder. */
	if (fence(s, NULL, rc->table->dataset, rc->token, rc->lease_ttl_ms, &ferr)) {
		sq_rollback(s);
		return ferr.code == AS_EFENCED ? 0 : as_error_set(err, ferr.code, "%s", ferr.msg);
	}
	if (sq_prepare(s, "UPDATE atomsync_runs SET status = ?2, finished_at = ?3, "
			  "error = ?4, seen = ?5, rejected = ?6 WHERE run_id = ?1 "
			  "AND status IN ('active', 'publishing')", &q, err))
		goto fail;
	sqlite3_bind_int64(q, 1, rc->run_id);
	sqlite3_bind_text(q, 2, status, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(q, 3, now, -1, SQLITE_TRANSIENT);
	bind_text(q, 4, error);
	sqlite3_bind_int64(q, 5, rc->seen);
	sqlite3_bind_int64(q, 6, rc->rejected);
	if (sqlite3_step(q) != SQLITE_DONE) {
		sq_fail(s, err, "recording run end");
		goto fail;
	}
	sqlite3_finalize(q);
	q = NULL;
	/* A refused run starts over next time: its delivery was judged. */
	if (strcmp(status, "refused") == 0 && r && r->stage) {
		if (drop_table(s, r->stage, err))
			goto fail;
		if (sq_prepare(s, "UPDATE atomsync_state SET stage_table = NULL, "
				  "checkpoint = NULL, stage_seen = 0, "
				  "stage_rejected = 0 WHERE dataset = ?1", &q, err))
			goto fail;
		sqlite3_bind_text(q, 1, rc->table->dataset, -1, SQLITE_TRANSIENT);
		if (sqlite3_step(q) != SQLITE_DONE) {
			sq_fail(s, err, "clearing staging");
			goto fail;
		}
		sqlite3_finalize(q);
		q = NULL;
	}
	return sq_exec(s, "COMMIT", err);
fail:
	sqlite3_finalize(q);
	sq_rollback(s);
	return err->code;
}

/* ---- tables ---- */

static const char *sql_type(as_type t)
{
	switch (t) {
	case AS_TYPE_INTEGER:
	case AS_TYPE_BOOLEAN: return "INTEGER";
	case AS_TYPE_REAL: return "REAL";
	default: return "TEXT";
	}
}

static int rowid_key(const as_table *t)
{
	return t->nkey == 1 && t->cols[0].type == AS_TYPE_INTEGER;
}

static void add_key_list(as_buf *b, const as_table *t, const char *prefix)
{
	for (size_t i = 0; i < t->nkey; i++) {
		if (i)
			as_buf_adds(b, ", ");
		if (prefix)
			as_buf_printf(b, "%s.", prefix);
		as_buf_add_ident(b, t->cols[i].name);
	}
}

static void add_scope_list(as_buf *b, const as_table *t, const char *prefix)
{
	for (size_t i = 0; i < t->nscope; i++) {
		if (i)
			as_buf_adds(b, ", ");
		if (prefix)
			as_buf_printf(b, "%s.", prefix);
		as_buf_add_ident(b, t->cols[t->scope[i]].name);
	}
}

/* "a"."k1" = "b"."k1" AND ... (a and b already quoted) */
static void add_key_match(as_buf *b, const as_table *t, const char *a,
			  const char *bq)
{
	for (size_t i = 0; i < t->nkey; i++) {
		if (i)
			as_buf_adds(b, " AND ");
		as_buf_printf(b, "%s.", a);
		as_buf_add_ident(b, t->cols[i].name);
		as_buf_printf(b, " = %s.", bq);
		as_buf_add_ident(b, t->cols[i].name);
	}
}

static char *create_sql(const as_table *t, const char *name)
{
	as_buf b = AS_BUF_INIT;

	as_buf_adds(&b, "CREATE TABLE IF NOT EXISTS ");
	as_buf_add_ident(&b, name);
	as_buf_adds(&b, " (");
	for (size_t i = 0; i < t->ncols; i++) {
		as_buf_add_ident(&b, t->cols[i].name);
		as_buf_printf(&b, " %s", sql_type(t->cols[i].type));
		if (i == 0 && rowid_key(t))
			as_buf_adds(&b, " PRIMARY KEY");
		else if (i < t->nkey)
			as_buf_adds(&b, " NOT NULL");
		as_buf_adds(&b, ", ");
	}
	as_buf_adds(&b, "\"_atomsync_run\" INTEGER, \"_atomsync_hash\" INTEGER, "
			"\"_atomsync_line\" BLOB");
	if (!rowid_key(t)) {
		as_buf_adds(&b, ", PRIMARY KEY (");
		add_key_list(&b, t, NULL);
		as_buf_adds(&b, ")) WITHOUT ROWID");
	} else {
		as_buf_adds(&b, ")");
	}
	return as_buf_detach(&b);
}

static as_type type_of_decl(const char *decl)
{
	if (!decl)
		return AS_TYPE_AUTO;
	if (strcasecmp(decl, "INTEGER") == 0)
		return AS_TYPE_INTEGER;
	if (strcasecmp(decl, "REAL") == 0)
		return AS_TYPE_REAL;
	if (strcasecmp(decl, "TEXT") == 0)
		return AS_TYPE_TEXT;
	return AS_TYPE_AUTO;
}

/*
 * Compare an existing table with the dataset's columns; adopt the declared
 * types of columns still AS_TYPE_AUTO.  A mismatch is a configuration error:
 * atomsync never silently reshapes a table that holds data.
 */
static int check_table(sq_store *s, as_table *t, const char *name,
		       as_error *err)
{
	as_buf b = AS_BUF_INIT;
	sqlite3_stmt *q;
	size_t i = 0;
	int ok = 1, rc;

	as_buf_adds(&b, "PRAGMA table_info(");
	as_buf_add_ident(&b, name);
	as_buf_adds(&b, ")");
	rc = sq_prepare(s, as_buf_cstr(&b), &q, err);
	as_buf_free(&b);
	if (rc)
		return rc;
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		const char *cn = (const char *)sqlite3_column_text(q, 1);
		const char *ct = (const char *)sqlite3_column_text(q, 2);

		if (i < t->ncols) {
			as_col *c = &t->cols[i];

			if (!as_streq(cn, c->name))
				ok = 0;
			else if (c->type == AS_TYPE_AUTO)
				c->type = type_of_decl(ct);
			else if (strcasecmp(sql_type(c->type), ct ? ct : "") != 0)
				ok = 0;
		} else if (i == t->ncols) {
			ok = ok && as_streq(cn, "_atomsync_run");
		} else if (i == t->ncols + 1) {
			ok = ok && as_streq(cn, "_atomsync_hash");
		} else if (i == t->ncols + 2) {
			ok = ok && as_streq(cn, "_atomsync_line");
		} else {
			ok = 0;
		}
		i++;
	}
	sqlite3_finalize(q);
	if (rc != SQLITE_DONE)
		return sq_fail(s, err, "reading table schema");
	if (!ok || i != t->ncols + 3) {
		as_buf want = AS_BUF_INIT;

		for (size_t k = 0; k < t->ncols; k++)
			as_buf_printf(&want, "%s%s %s", k ? ", " : "", t->cols[k].name,
				      t->cols[k].type == AS_TYPE_AUTO ? "?" : sql_type(t->cols[k].type));
		as_error_set(err, AS_EUSAGE,
			     "table %s exists but does not have the columns the "
			     "dataset maps (%s, then _atomsync_run, _atomsync_hash, "
			     "_atomsync_line); "
			     "rename the table or migrate it",
			     name, as_buf_cstr(&want));
		as_buf_free(&want);
		return AS_EUSAGE;
	}
	return 0;
}

static int sq_describe(as_store *st, as_run_ctx *rc, as_error *err)
{
	sq_store *s = (sq_store *)st;
	sq_run *r = rc->priv;
	int exists;

	if (table_exists(s, rc->table->table, &exists, err))
		return err->code;
	if (exists)
		return check_table(s, rc->table, rc->table->table, err);
	if (r && r->stage)
		return check_table(s, rc->table, r->stage, err);
	return 0;
}

static int prepare_statements(sq_store *s, as_run_ctx *rc, as_error *err)
{
	sq_run *r = rc->priv;
	const as_table *t = rc->table;
	as_buf b = AS_BUF_INIT;
	int rc2;

	as_buf_printf(&b, "INSERT OR REPLACE INTO %s VALUES(", r->stage_q);
	for (size_t i = 0; i < t->ncols + 3; i++)
		as_buf_printf(&b, "%s?%zu", i ? ", " : "", i + 1);
	as_buf_adds(&b, ")");
	rc2 = sq_prepare(s, as_buf_cstr(&b), &r->ins, err);
	as_buf_reset(&b);
	if (!rc2 && r->live_exists) {
		as_buf_printf(&b, "SELECT \"_atomsync_hash\" FROM %s WHERE ", r->live_q);
		for (size_t i = 0; i < t->nkey; i++) {
			as_buf_adds(&b, i ? " AND " : "");
			as_buf_add_ident(&b, t->cols[i].name);
			as_buf_printf(&b, " = ?%zu", i + 1);
		}
		rc2 = sq_prepare(s, as_buf_cstr(&b), &r->look_live, err);
		as_buf_reset(&b);
	}
	if (!rc2 && t->mode == AS_MODE_APPEND) {
		as_buf_printf(&b, "SELECT \"_atomsync_hash\" FROM %s WHERE ", r->stage_q);
		for (size_t i = 0; i < t->nkey; i++) {
			as_buf_adds(&b, i ? " AND " : "");
			as_buf_add_ident(&b, t->cols[i].name);
			as_buf_printf(&b, " = ?%zu", i + 1);
		}
		rc2 = sq_prepare(s, as_buf_cstr(&b), &r->look_stage, err);
	}
	if (!rc2)
		rc2 = sq_prepare(s, "UPDATE atomsync_state SET checkpoint = ?2, "
				    "stage_seen = ?3, stage_rejected = ?4 "
				    "WHERE dataset = ?1", &r->save, err);
	as_buf_free(&b);
	return rc2;
}

/*
 * Create the staging table once the columns are known (a resumed run
 * adopts its predecessor's).  The live table is created only by a publish,
 * so a failed first run leaves no trace in the user's schema.
 */
static int sq_stage_prepare(as_store *st, as_run_ctx *rc, as_error *err)
{
	sq_store *s = (sq_store *)st;
	sq_run *r = rc->priv;
	as_table *t = rc->table;
	sqlite3_stmt *q = NULL;
	char *sql = NULL, key[512];
	int64_t n;

	if (table_exists(s, t->table, &r->live_exists, err))
		return err->code;
	if (r->live_exists) {
		if (check_table(s, t, t->table, err))
			return err->code;
		as_buf b = AS_BUF_INIT;
		as_buf_printf(&b, "SELECT EXISTS (SELECT 1 FROM %s)", r->live_q);
		int rc2 = query_int(s, as_buf_cstr(&b), NULL, &n, err);
		as_buf_free(&b);
		if (rc2)
			return rc2;
		r->live_has_rows = n > 0;
	}
	if (!r->stage) {
		char name[64];

		snprintf(name, sizeof(name), "_atomsync_stage_%lld",
			 (long long)rc->run_id);
		as_table_key_list(t, key, sizeof(key));
		if (sq_exec(s, "BEGIN IMMEDIATE", err))
			return err->code;
		if (fence(s, NULL, t->dataset, rc->token, rc->lease_ttl_ms, err))
			goto fail;
		sql = create_sql(t, name);
		if (sq_exec(s, sql, err))
			goto fail;
		if (sq_prepare(s, "UPDATE atomsync_state SET stage_table = ?2, "
				  "stage_run = ?3, stage_last_run = ?3, "
				  "stage_base = published_run, stage_fingerprint = ?4, "
				  "stage_key = ?5, checkpoint = NULL, stage_seen = 0, "
				  "stage_rejected = 0, table_name = ?6, mode = ?7 "
				  "WHERE dataset = ?1 RETURNING stage_base", &q, err))
			goto fail;
		sqlite3_bind_text(q, 1, t->dataset, -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(q, 2, name, -1, SQLITE_TRANSIENT);
		sqlite3_bind_int64(q, 3, rc->run_id);
		sqlite3_bind_text(q, 4, t->fingerprint, -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(q, 5, key, -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(q, 6, t->table, -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(q, 7, as_mode_name(t->mode), -1, SQLITE_STATIC);
		if (sqlite3_step(q) != SQLITE_ROW) {
			sq_fail(s, err, "recording staging");
			goto fail;
		}
		r->stage_base = sqlite3_column_int64(q, 0);
		sqlite3_finalize(q);
		q = NULL;
		if (sq_exec(s, "COMMIT", err))
			goto fail;
		free(sql);
		r->stage = as_strdup(name);
		r->stage_q = quote_ident(name);
	} else if (check_table(s, t, r->stage, err)) {
		return err->code;
	}
	return prepare_statements(s, rc, err);
fail:
	free(sql);
	sqlite3_finalize(q);
	sq_rollback(s);
	return err->code;
}

static int sq_stage_discard(as_store *st, as_run_ctx *rc, as_error *err)
{
	sq_store *s = (sq_store *)st;
	sq_run *r = rc->priv;
	sqlite3_stmt *q = NULL;

	if (sq_exec(s, "BEGIN IMMEDIATE", err))
		return err->code;
	if (fence(s, NULL, rc->table->dataset, rc->token, rc->lease_ttl_ms, err))
		goto fail;
	if (r->stage && drop_table(s, r->stage, err))
		goto fail;
	if (sq_prepare(s, "UPDATE atomsync_state SET stage_table = NULL, "
			  "stage_run = NULL, stage_last_run = NULL, stage_base = NULL, "
			  "stage_fingerprint = NULL, stage_key = NULL, checkpoint = NULL, "
			  "stage_seen = 0, stage_rejected = 0 WHERE dataset = ?1", &q, err))
		goto fail;
	sqlite3_bind_text(q, 1, rc->table->dataset, -1, SQLITE_TRANSIENT);
	if (sqlite3_step(q) != SQLITE_DONE) {
		sq_fail(s, err, "discarding staging");
		goto fail;
	}
	sqlite3_finalize(q);
	q = NULL;
	if (sq_prepare(s, "UPDATE atomsync_runs SET resumed_from = NULL "
			  "WHERE run_id = ?1", &q, err))
		goto fail;
	sqlite3_bind_int64(q, 1, rc->run_id);
	if (sqlite3_step(q) != SQLITE_DONE) {
		sq_fail(s, err, "discarding staging");
		goto fail;
	}
	sqlite3_finalize(q);
	q = NULL;
	if (sq_exec(s, "COMMIT", err))
		goto fail;
	sq_run_free(st, rc);
	rc->priv = calloc(1, sizeof(sq_run));
	if (!rc->priv)
		return as_error_set(err, AS_ENOMEM, "out of memory");
	((sq_run *)rc->priv)->live_q = quote_ident(rc->table->table);
	free(rc->checkpoint);
	free(rc->stage_key);
	rc->checkpoint = rc->stage_key = NULL;
	rc->seen = rc->rejected = 0;
	rc->resumed_from = 0;
	return 0;
fail:
	sqlite3_finalize(q);
	sq_rollback(s);
	return err->code;
}

/* ---- staging (invariants 2, 4, 6) ---- */

static int lookup_hash(sqlite3_stmt *q, const as_table *t, const as_row *row,
		       int64_t *hash)
{
	int rc;

	for (size_t i = 0; i < t->nkey; i++)
		bind_val(q, (int)i + 1, &row->v[i]);
	rc = sqlite3_step(q);
	if (rc == SQLITE_ROW)
		*hash = sqlite3_column_int64(q, 0);
	sqlite3_reset(q);
	return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

/* Stage one row; unchanged rows keep only what the publish needs. */
static int stage_row(sq_store *s, as_run_ctx *rc, const as_row *row,
		     int *conflicts, as_error *err)
{
	sq_run *r = rc->priv;
	const as_table *t = rc->table;
	int64_t h = 0;
	int unchanged = 0, found;

	if (t->mode == AS_MODE_APPEND) {
		found = lookup_hash(r->look_stage, t, row, &h);
		if (found < 0)
			return sq_fail(s, err, "staging lookup");
		if (found && h == (int64_t)row->hash)
			return 0; /* identical duplicate: ignored */
		if (found)
			goto conflict;
	}
	if (row->flags & AS_ROW_UNCHANGED) {
		unchanged = 1; /* the engine matched its exact text to the live row */
	} else if (r->live_has_rows) {
		found = lookup_hash(r->look_live, t, row, &h);
		if (found < 0)
			return sq_fail(s, err, "live lookup");
		if (found && h == (int64_t)row->hash)
			unchanged = 1;
		else if (found && t->mode == AS_MODE_APPEND)
			goto conflict;
	}
	for (size_t i = 0; i < t->ncols; i++) {
		if (unchanged && i >= t->nkey &&
		    !(t->cols[i].flags & (AS_COL_SCOPE | AS_COL_CURSOR)))
			sqlite3_bind_null(r->ins, (int)i + 1);
		else
			bind_val(r->ins, (int)i + 1, &row->v[i]);
	}
	if (unchanged)
		sqlite3_bind_null(r->ins, (int)t->ncols + 1);
	else
		sqlite3_bind_int64(r->ins, (int)t->ncols + 1, rc->run_id);
	sqlite3_bind_int64(r->ins, (int)t->ncols + 2, (int64_t)row->hash);
	if (row->flags & AS_ROW_LINE)
		sqlite3_bind_blob(r->ins, (int)t->ncols + 3, row->line, 16, SQLITE_STATIC);
	else
		sqlite3_bind_null(r->ins, (int)t->ncols + 3);
	if (sqlite3_step(r->ins) != SQLITE_DONE) {
		sqlite3_reset(r->ins);
		sq_fail(s, err, "staging a row");
		as_error_prefix(err, "%s", row->where ? row->where : "record");
		return AS_ESTORE;
	}
	sqlite3_reset(r->ins);
	return 0;
conflict:
	(*conflicts)++;
	return rc->on_reject(rc->reject_ud, row,
			     "append mode: a different record under a key that "
			     "is already known", err);
}

static int sq_stage_batch(as_store *st, as_run_ctx *rc, const as_batch *b,
			  as_error *err)
{
	sq_store *s = (sq_store *)st;
	sq_run *r = rc->priv;
	int conflicts = 0;

	if (sq_exec(s, "BEGIN IMMEDIATE", err))
		return err->code;
	as_crash_point("stage.begin");
	if (fence(s, &r->fence, rc->table->dataset, rc->token,
		  rc->lease_ttl_ms, err))
		goto fail;
	for (size_t i = 0; i < b->nrows; i++)
		if (stage_row(s, rc, &b->rows[i], &conflicts, err))
			goto fail;
	as_crash_point("stage.rows");
	sqlite3_bind_text(r->save, 1, rc->table->dataset, -1, SQLITE_TRANSIENT);
	bind_text(r->save, 2, b->checkpoint);
	sqlite3_bind_int64(r->save, 3, b->seen);
	sqlite3_bind_int64(r->save, 4, b->rejected + conflicts);
	if (sqlite3_step(r->save) != SQLITE_DONE) {
		sqlite3_reset(r->save);
		sq_fail(s, err, "saving checkpoint");
		goto fail;
	}
	sqlite3_reset(r->save);
	as_crash_point("stage.checkpoint");
	if (sq_exec(s, "COMMIT", err))
		goto fail;
	as_crash_point("stage.committed");
	return 0;
fail:
	sq_rollback(s);
	return err->code;
}

/* ---- the live scan (for matching lines without parsing them) ---- */

typedef struct sq_scan {
	sqlite3 *db;                /* read-only: the writer owns the other */
	sqlite3_stmt *all, *from, *cur;
	size_t *cols;               /* table columns selected, key first */
	size_t ncols;
} sq_scan;

static void sq_scan_close(as_store *st, as_run_ctx *rc)
{
	sq_scan *sc = rc->scan;

	(void)st;
	if (!sc)
		return;
	sqlite3_finalize(sc->all);
	sqlite3_finalize(sc->from);
	if (sc->db)
		sqlite3_close_v2(sc->db);
	free(sc->cols);
	free(sc);
	rc->scan = NULL;
}

static int sq_scan_open(as_store *st, as_run_ctx *rc, int *rows, as_error *err)
{
	sq_store *s = (sq_store *)st;
	sq_run *r = rc->priv;
	const as_table *t = rc->table;
	as_buf sel = AS_BUF_INIT, b = AS_BUF_INIT;
	sq_scan *sc;
	int ret = 0;

	*rows = 0;
	if (!r || !r->live_has_rows || rc->scan)
		return 0;
	sc = calloc(1, sizeof(*sc));
	if (!sc || !(sc->cols = calloc(t->ncols, sizeof(size_t)))) {
		free(sc);
		return as_error_set(err, AS_ENOMEM, "out of memory");
	}
	rc->scan = sc;
	for (size_t i = 0; i < t->ncols; i++)
		if (i < t->nkey || (t->cols[i].flags & (AS_COL_SCOPE | AS_COL_CURSOR))) {
			sc->cols[sc->ncols++] = i;
			as_buf_add_ident(&sel, t->cols[i].name);
			as_buf_adds(&sel, ", ");
		}
	as_buf_adds(&sel, "\"_atomsync_hash\", \"_atomsync_line\"");
	if (sqlite3_open_v2(s->path, &sc->db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX,
			    NULL) != SQLITE_OK) {
		ret = as_error_set(err, AS_ESTORE, "%s: cannot open a reader: %s", s->path,
				   sqlite3_errmsg(sc->db));
		goto done;
	}
	sqlite3_busy_timeout(sc->db, 30000);
	sqlite3_exec(sc->db, "PRAGMA cache_size=-8192", NULL, NULL, NULL);
	as_buf_printf(&b, "SELECT %s FROM %s ORDER BY ", as_buf_cstr(&sel), r->live_q);
	add_key_list(&b, t, NULL);
	if (sqlite3_prepare_v2(sc->db, as_buf_cstr(&b), -1, &sc->all, NULL) != SQLITE_OK)
		goto fail;
	as_buf_reset(&b);
	as_buf_printf(&b, "SELECT %s FROM %s WHERE (", as_buf_cstr(&sel), r->live_q);
	add_key_list(&b, t, NULL);
	as_buf_adds(&b, ") > (");
	for (size_t i = 0; i < t->nkey; i++)
		as_buf_printf(&b, "%s?%zu", i ? ", " : "", i + 1);
	as_buf_adds(&b, ") ORDER BY ");
	add_key_list(&b, t, NULL);
	if (sqlite3_prepare_v2(sc->db, as_buf_cstr(&b), -1, &sc->from, NULL) != SQLITE_OK)
		goto fail;
	sc->cur = sc->all;
	*rows = 1;
	goto done;
fail:
	ret = as_error_set(err, AS_ESTORE, "%s: scan: %s", s->path, sqlite3_errmsg(sc->db));
done:
	if (ret)
		sq_scan_close(st, rc);
	as_buf_free(&sel);
	as_buf_free(&b);
	return ret;
}

static int sq_scan_next(as_store *st, as_run_ctx *rc, as_scan_row *out,
			as_arena *a, as_error *err)
{
	sq_scan *sc = rc->scan;
	int step;

	(void)st;
	if (!sc)
		return 0;
	step = sqlite3_step(sc->cur);
	if (step == SQLITE_DONE)
		return 0;
	if (step != SQLITE_ROW)
		return as_error_set(err, AS_ESTORE, "scan: %s", sqlite3_errmsg(sc->db));
	for (size_t k = 0; k < sc->ncols; k++) {
		as_val *v = &out->v[sc->cols[k]];

		switch (sqlite3_column_type(sc->cur, (int)k)) {
		case SQLITE_INTEGER:
			v->kind = AS_V_INT;
			v->u.i = sqlite3_column_int64(sc->cur, (int)k);
			break;
		case SQLITE_FLOAT:
			v->kind = AS_V_REAL;
			v->u.r = sqlite3_column_double(sc->cur, (int)k);
			break;
		case SQLITE_NULL:
			v->kind = AS_V_NULL;
			break;
		default: {
			const char *txt = (const char *)sqlite3_column_text(sc->cur, (int)k);
			int n = sqlite3_column_bytes(sc->cur, (int)k);

			v->kind = AS_V_TEXT;
			v->len = (uint32_t)n;
			v->u.s = as_arena_strndup(a, txt ? txt : "", (size_t)n);
			if (!v->u.s)
				return as_error_set(err, AS_ENOMEM, "out of memory");
		}
		}
	}
	out->hash = (uint64_t)sqlite3_column_int64(sc->cur, (int)sc->ncols);
	out->has_line = sqlite3_column_bytes(sc->cur, (int)sc->ncols + 1) == 16;
	if (out->has_line)
		memcpy(out->line, sqlite3_column_blob(sc->cur, (int)sc->ncols + 1), 16);
	return 1;
}

static int sq_scan_seek(as_store *st, as_run_ctx *rc, const as_val *key,
			as_error *err)
{
	sq_scan *sc = rc->scan;

	(void)st;
	(void)err;
	if (!sc)
		return 0;
	sqlite3_reset(sc->all);
	sqlite3_reset(sc->from);
	/* Copies: the key lives in a batch the writer may reset meanwhile. */
	for (size_t i = 0; i < rc->table->nkey; i++) {
		if (key[i].kind == AS_V_TEXT)
			sqlite3_bind_text(sc->from, (int)i + 1, key[i].u.s, (int)key[i].len,
					  SQLITE_TRANSIENT);
		else
			bind_val(sc->from, (int)i + 1, &key[i]);
	}
	sc->cur = sc->from;
	return 0;
}

/* ---- the publish (invariants 1, 3, 5, 8, 10) ---- */

static int sql_int(sq_store *s, as_buf *sql, int64_t *out, as_error *err)
{
	int rc = query_int(s, as_buf_cstr(sql), NULL, out, err);

	as_buf_reset(sql);
	return rc;
}

static int sql_exec(sq_store *s, as_buf *sql, int64_t *changes, as_error *err)
{
	int rc = sq_exec(s, as_buf_cstr(sql), err);

	as_buf_reset(sql);
	if (!rc && changes)
		*changes = sqlite3_changes64(s->db);
	return rc;
}

/* temp._atomsync_scopes: the scopes this run replaces; _named marks a scope
 * given on the command line for which no record was delivered. */
static int fill_scopes(sq_store *s, as_run_ctx *rc, const as_publish_opts *po,
		       as_error *err)
{
	sq_run *r = rc->priv;
	const as_table *t = rc->table;
	as_buf b = AS_BUF_INIT;
	sqlite3_stmt *q = NULL;
	int ret;

	as_buf_adds(&b, "DROP TABLE IF EXISTS temp._atomsync_scopes; "
			"CREATE TEMP TABLE _atomsync_scopes(");
	add_scope_list(&b, t, NULL);
	as_buf_adds(&b, ", _named INTEGER); INSERT INTO temp._atomsync_scopes SELECT DISTINCT ");
	add_scope_list(&b, t, NULL);
	as_buf_printf(&b, ", 0 FROM %s", r->stage_q);
	if ((ret = sql_exec(s, &b, NULL, err)))
		goto done;
	as_buf_adds(&b, "INSERT INTO temp._atomsync_scopes SELECT ");
	for (size_t i = 0; i < t->nscope; i++)
		as_buf_printf(&b, "?%zu, ", i + 1);
	as_buf_adds(&b, "1 WHERE NOT EXISTS (SELECT 1 FROM temp._atomsync_scopes WHERE ");
	for (size_t i = 0; i < t->nscope; i++) {
		as_buf_adds(&b, i ? " AND " : "");
		as_buf_add_ident(&b, t->cols[t->scope[i]].name);
		as_buf_printf(&b, " IS ?%zu", i + 1);
	}
	as_buf_adds(&b, ")");
	if ((ret = sq_prepare(s, as_buf_cstr(&b), &q, err)))
		goto done;
	for (size_t k = 0; k < po->nnamed; k++) {
		for (size_t i = 0; i < t->nscope; i++)
			bind_val(q, (int)i + 1, &po->named_scopes[k * t->nscope + i]);
		if (sqlite3_step(q) != SQLITE_DONE) {
			ret = sq_fail(s, err, "recording named scopes");
			goto done;
		}
		sqlite3_reset(q);
	}
done:
	sqlite3_finalize(q);
	as_buf_free(&b);
	return ret;
}

/* "WHERE (s1, s2) IN (SELECT s1, s2 FROM temp._atomsync_scopes [WHERE _named = 0])" */
static void add_scope_filter(as_buf *b, const as_table *t, const char *live_q,
			     int delivered_only)
{
	as_buf_adds(b, "(");
	add_scope_list(b, t, live_q);
	as_buf_adds(b, ") IN (SELECT ");
	add_scope_list(b, t, NULL);
	as_buf_adds(b, " FROM temp._atomsync_scopes");
	if (delivered_only)
		as_buf_adds(b, " WHERE _named = 0");
	as_buf_adds(b, ")");
}

static void add_not_staged(as_buf *b, const as_table *t, const char *live_q,
			   const char *stage_q)
{
	as_buf_printf(b, "NOT EXISTS (SELECT 1 FROM %s WHERE ", stage_q);
	add_key_match(b, t, stage_q, live_q);
	as_buf_adds(b, ")");
}

/* Counts inside the publish transaction (invariant 10). */
static int publish_counts(sq_store *s, as_run_ctx *rc,
			  const as_publish_opts *po, as_counts *c,
			  int64_t *staged_changed, int64_t *scope_rows,
			  int64_t *guarded_deletes, as_error *err)
{
	sq_run *r = rc->priv;
	const as_table *t = rc->table;
	as_buf b = AS_BUF_INIT;
	int64_t S = 0, C = 0;
	int ret = 0, exists;

	if ((ret = table_exists(s, t->table, &exists, err)))
		goto done;
	if (exists) {
		as_buf_printf(&b, "SELECT count(*) FROM %s", r->live_q);
		if ((ret = sql_int(s, &b, &c->live_before, err)))
			goto done;
	}
	if (r->stage) {
		as_buf_printf(&b, "SELECT count(*) FROM %s", r->stage_q);
		if ((ret = sql_int(s, &b, &S, err)))
			goto done;
		as_buf_printf(&b, "SELECT count(\"_atomsync_run\") FROM %s", r->stage_q);
		if ((ret = sql_int(s, &b, &C, err)))
			goto done;
	}
	if (c->live_before == 0 || C == 0) {
		c->inserted = C;
	} else {
		as_buf_printf(&b, "SELECT count(*) FROM %s WHERE \"_atomsync_run\" "
			      "IS NOT NULL AND ", r->stage_q);
		add_not_staged(&b, t, r->stage_q, r->live_q);
		if ((ret = sql_int(s, &b, &c->inserted, err)))
			goto done;
	}
	c->updated = C - c->inserted;
	c->unchanged = S - C;
	*staged_changed = C;
	if (t->mode == AS_MODE_FULL) {
		c->deleted = c->live_before - (S - c->inserted);
	} else if (t->mode == AS_MODE_SCOPED && exists && r->stage) {
		if ((ret = fill_scopes(s, rc, po, err)))
			goto done;
		as_buf_printf(&b, "SELECT count(*) FROM %s WHERE ", r->live_q);
		add_scope_filter(&b, t, r->live_q, 1);
		if ((ret = sql_int(s, &b, scope_rows, err)))
			goto done;
		for (int pass = 0; pass < 2; pass++) {
			as_buf_printf(&b, "SELECT count(*) FROM %s WHERE ", r->live_q);
			add_scope_filter(&b, t, r->live_q, pass == 0);
			as_buf_adds(&b, " AND ");
			add_not_staged(&b, t, r->live_q, r->stage_q);
			if ((ret = sql_int(s, &b, pass ? &c->deleted : guarded_deletes, err)))
				goto done;
		}
	}
	as_counts_finish(c);
done:
	as_buf_free(&b);
	return ret;
}

static int publish_apply(sq_store *s, as_run_ctx *rc, const as_counts *c,
			 int64_t C, as_error *err)
{
	sq_run *r = rc->priv;
	const as_table *t = rc->table;
	as_buf b = AS_BUF_INIT;
	int64_t changes = 0, expect;
	int ret = 0;

	if (r->stage && C > 0) {
		as_buf_printf(&b, "INSERT INTO %s SELECT * FROM %s", r->live_q, r->stage_q);
		/* Into an empty table with every row new, the plain form lets
		 * SQLite copy b-tree content without re-encoding records. */
		if (c->live_before > 0 || c->unchanged > 0) {
			as_buf_adds(&b, " WHERE \"_atomsync_run\" IS NOT NULL ON CONFLICT(");
			add_key_list(&b, t, NULL);
			if (t->mode == AS_MODE_APPEND) {
				as_buf_adds(&b, ") DO NOTHING");
			} else {
				as_buf_adds(&b, ") DO UPDATE SET ");
				for (size_t i = t->nkey; i < t->ncols; i++) {
					as_buf_add_ident(&b, t->cols[i].name);
					as_buf_adds(&b, " = excluded.");
					as_buf_add_ident(&b, t->cols[i].name);
					as_buf_adds(&b, ", ");
				}
				as_buf_adds(&b, "\"_atomsync_run\" = excluded.\"_atomsync_run\", "
						"\"_atomsync_hash\" = excluded.\"_atomsync_hash\", "
						"\"_atomsync_line\" = excluded.\"_atomsync_line\"");
			}
		}
		if ((ret = sql_exec(s, &b, &changes, err)))
			goto done;
		expect = t->mode == AS_MODE_APPEND ? c->inserted : C;
		if (changes != expect) {
			ret = as_error_set(err, AS_ESTORE,
					   "publish wrote %lld rows, expected %lld; "
					   "nothing was published",
					   (long long)changes, (long long)expect);
			goto done;
		}
	}
	as_crash_point("publish.upserted");
	if (c->deleted > 0) {
		as_buf_printf(&b, "DELETE FROM %s WHERE ", r->live_q);
		if (t->mode == AS_MODE_SCOPED) {
			add_scope_filter(&b, t, r->live_q, 0);
			as_buf_adds(&b, " AND ");
		}
		if (r->stage)
			add_not_staged(&b, t, r->live_q, r->stage_q);
		else
			as_buf_adds(&b, "1");
		if ((ret = sql_exec(s, &b, &changes, err)))
			goto done;
		if (changes != c->deleted) {
			ret = as_error_set(err, AS_ESTORE,
					   "publish deleted %lld rows, expected %lld; "
					   "nothing was published",
					   (long long)changes, (long long)c->deleted);
			goto done;
		}
	}
	as_crash_point("publish.deleted");
done:
	as_buf_free(&b);
	return ret;
}

/* rows_q: the table that now holds the run's rows (the staging table, or
 * the live table when the staging was renamed into place). */
static int publish_bookkeeping(sq_store *s, as_run_ctx *rc, const as_counts *c,
			       const char *rows_q, as_error *err)
{
	sq_run *r = rc->priv;
	const as_table *t = rc->table;
	sqlite3_stmt *q = NULL;
	as_buf b = AS_BUF_INIT;
	char now[40];
	int ret = 0;

	/* Invariant 8: the cursor moves only here, with the data behind it. */
	if (t->cursor >= 0 && r->stage) {
		as_buf_adds(&b, "UPDATE atomsync_state SET cursor = (SELECT max(v) FROM "
				"(SELECT cursor AS v FROM atomsync_state WHERE dataset = ?1 "
				"UNION ALL SELECT max(");
		as_buf_add_ident(&b, t->cols[t->cursor].name);
		as_buf_printf(&b, ") FROM %s)) WHERE dataset = ?1", rows_q);
		ret = sq_prepare(s, as_buf_cstr(&b), &q, err);
		if (!ret) {
			sqlite3_bind_text(q, 1, t->dataset, -1, SQLITE_TRANSIENT);
			if (sqlite3_step(q) != SQLITE_DONE)
				ret = sq_fail(s, err, "saving cursor");
			sqlite3_finalize(q);
			q = NULL;
		}
		if (ret)
			goto done;
	}
	if ((ret = sq_prepare(s, "UPDATE atomsync_state SET published_run = ?2, "
				 "table_name = ?3, mode = ?4, stage_table = NULL, "
				 "stage_run = NULL, stage_last_run = NULL, stage_base = NULL, "
				 "stage_fingerprint = NULL, stage_key = NULL, checkpoint = NULL, "
				 "stage_seen = 0, stage_rejected = 0 WHERE dataset = ?1",
			      &q, err)))
		goto done;
	sqlite3_bind_text(q, 1, t->dataset, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(q, 2, rc->run_id);
	sqlite3_bind_text(q, 3, t->table, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(q, 4, as_mode_name(t->mode), -1, SQLITE_STATIC);
	if (sqlite3_step(q) != SQLITE_DONE) {
		ret = sq_fail(s, err, "saving state");
		goto done;
	}
	sqlite3_finalize(q);
	q = NULL;
	if ((ret = sq_prepare(s, "UPDATE atomsync_runs SET status = 'completed', "
				 "finished_at = ?2, seen = ?3, inserted = ?4, updated = ?5, "
				 "unchanged = ?6, deleted = ?7, rejected = ?8, "
				 "duplicates = ?9, error = NULL WHERE run_id = ?1",
			      &q, err)))
		goto done;
	sqlite3_bind_int64(q, 1, rc->run_id);
	sqlite3_bind_text(q, 2, as_iso8601(as_now(), now, sizeof(now)), -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(q, 3, c->seen);
	sqlite3_bind_int64(q, 4, c->inserted);
	sqlite3_bind_int64(q, 5, c->updated);
	sqlite3_bind_int64(q, 6, c->unchanged);
	sqlite3_bind_int64(q, 7, c->deleted);
	sqlite3_bind_int64(q, 8, c->rejected);
	sqlite3_bind_int64(q, 9, c->duplicates);
	if (sqlite3_step(q) != SQLITE_DONE)
		ret = sq_fail(s, err, "recording run");
done:
	sqlite3_finalize(q);
	as_buf_free(&b);
	return ret;
}

static int mark_publishing(sq_store *s, as_run_ctx *rc, as_error *err)
{
	sqlite3_stmt *q = NULL;
	int ret;

	if (sq_exec(s, "BEGIN IMMEDIATE", err))
		return err->code;
	if ((ret = fence(s, NULL, rc->table->dataset, rc->token,
			 rc->lease_ttl_ms, err)))
		goto done;
	if ((ret = sq_prepare(s, "UPDATE atomsync_runs SET status = 'publishing' "
				 "WHERE run_id = ?1", &q, err)))
		goto done;
	sqlite3_bind_int64(q, 1, rc->run_id);
	if (sqlite3_step(q) != SQLITE_DONE)
		ret = sq_fail(s, err, "marking run publishing");
	sqlite3_finalize(q);
	q = NULL;
	if (!ret)
		ret = sq_exec(s, "COMMIT", err);
done:
	if (ret)
		sq_rollback(s);
	return ret;
}

static int check_base(sq_store *s, as_run_ctx *rc, as_error *err)
{
	sq_run *r = rc->priv;
	int64_t published;
	sqlite3_stmt *q;
	int rc2;

	if (!r->stage)
		return 0;
	if (sq_prepare(s, "SELECT published_run FROM atomsync_state WHERE dataset = ?1",
		       &q, err))
		return AS_ESTORE;
	sqlite3_bind_text(q, 1, rc->table->dataset, -1, SQLITE_TRANSIENT);
	rc2 = sqlite3_step(q);
	published = rc2 == SQLITE_ROW ? sqlite3_column_int64(q, 0) : -1;
	sqlite3_finalize(q);
	if (published != r->stage_base)
		return as_error_set(err, AS_ESTORE,
				    "dataset %s was published by run %lld after this "
				    "staging began; nothing was published (the next "
				    "run starts over)",
				    rc->table->dataset, (long long)published);
	return 0;
}

/*
 * The publish: one transaction that checks the lease and the guards, writes
 * only changed rows, deletes what a confirmed-complete run did not deliver,
 * moves the cursor and records the run.  Any failure rolls all of it back.
 */
static int sq_publish(as_store *st, as_run_ctx *rc, const as_publish_opts *po,
		      as_counts *c, as_error *err)
{
	sq_store *s = (sq_store *)st;
	sq_run *r = rc->priv;
	const as_table *t = rc->table;
	int64_t C = 0, scope_rows = 0, guarded = 0;
	as_counts gc;
	int ret, renamed = 0;

	memset(c, 0, sizeof(*c));
	c->seen = rc->seen;
	c->rejected = rc->rejected;
	if ((ret = mark_publishing(s, rc, err)))
		return ret;
	as_crash_point("publish.marked");
	sq_exec(s, "PRAGMA synchronous=FULL", NULL);
	if ((ret = sq_exec(s, "BEGIN IMMEDIATE", err)))
		goto out;
	as_crash_point("publish.begin");
	if ((ret = fence(s, NULL, t->dataset, rc->token, rc->lease_ttl_ms, err)) ||
	    (ret = check_base(s, rc, err)) ||
	    (ret = publish_counts(s, rc, po, c, &C, &scope_rows, &guarded, err)))
		goto fail;
	gc = *c;
	if (t->mode == AS_MODE_SCOPED)
		gc.deleted = guarded;
	if ((ret = as_guard_check(t, po, &gc, scope_rows, err)))
		goto fail;
	if (r->stage) {
		int exists;

		if ((ret = table_exists(s, t->table, &exists, err)))
			goto fail;
		if (!exists && c->unchanged == 0) {
			/* The first publish: the staging table has the live
			 * table's exact schema and holds every row, so it
			 * becomes the live table instead of being copied. */
			as_buf b = AS_BUF_INIT;

			as_buf_printf(&b, "ALTER TABLE %s RENAME TO %s", r->stage_q, r->live_q);
			ret = sql_exec(s, &b, NULL, err);
			as_buf_free(&b);
			renamed = 1;
		} else {
			char *sql = create_sql(t, t->table);

			ret = sq_exec(s, sql, err);
			free(sql);
		}
		if (!ret && t->nscope) {
			as_buf b = AS_BUF_INIT;
			char idx[200];

			snprintf(idx, sizeof(idx), "%s_atomsync_scope", t->table);
			as_buf_adds(&b, "CREATE INDEX IF NOT EXISTS ");
			as_buf_add_ident(&b, idx);
			as_buf_printf(&b, " ON %s(", r->live_q);
			add_scope_list(&b, t, NULL);
			as_buf_adds(&b, ")");
			ret = sql_exec(s, &b, NULL, err);
			as_buf_free(&b);
		}
		if (ret)
			goto fail;
	}
	if ((ret = publish_apply(s, rc, c, renamed ? 0 : C, err)) ||
	    (ret = publish_bookkeeping(s, rc, c, renamed ? r->live_q : r->stage_q, err)))
		goto fail;
	c->live_after = c->live_before + c->inserted - c->deleted;
	as_crash_point("publish.before_commit");
	if ((ret = sq_exec(s, "COMMIT", err)))
		goto fail;
	as_crash_point("publish.committed");
	sq_exec(s, "PRAGMA synchronous=NORMAL", NULL);
	if (r->stage && !renamed) {
		as_error derr;

		if (drop_table(s, r->stage, &derr))
			as_warn("could not drop staging table %s (dropped by a later "
				"run): %s", r->stage, derr.msg);
	}
	return 0;
fail:
	sq_rollback(s);
out:
	sq_exec(s, "PRAGMA synchronous=NORMAL", NULL);
	return ret;
}

/* ---- reading records ---- */

static char *col_dup(sqlite3_stmt *q, int i)
{
	return as_strdup((const char *)sqlite3_column_text(q, i));
}

static int sq_runs_list(as_store *st, const char *dataset, size_t limit,
			as_run_info **out, size_t *n, as_error *err)
{
	sq_store *s = (sq_store *)st;
	as_buf sql = AS_BUF_INIT;
	as_run_info *v = NULL;
	size_t cnt = 0, cap = 0;
	sqlite3_stmt *q;
	int rc;

	*out = NULL;
	*n = 0;
	as_buf_printf(&sql, "SELECT %s FROM atomsync_runs %s ORDER BY run_id DESC",
		      RUN_COLS, dataset ? "WHERE dataset = ?1" : "");
	if (limit)
		as_buf_printf(&sql, " LIMIT %zu", limit);
	rc = sq_prepare(s, as_buf_cstr(&sql), &q, err);
	as_buf_free(&sql);
	if (rc)
		return rc;
	if (dataset)
		sqlite3_bind_text(q, 1, dataset, -1, SQLITE_TRANSIENT);
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		as_run_info *ri;

		if (cnt == cap) {
			as_run_info *nv;

			cap = cap ? cap * 2 : 16;
			nv = realloc(v, cap * sizeof(*v));
			if (!nv)
				break;
			v = nv;
		}
		ri = &v[cnt++];
		memset(ri, 0, sizeof(*ri));
		ri->run_id = sqlite3_column_int64(q, 0);
		ri->dataset = col_dup(q, 1);
		ri->kind = col_dup(q, 2);
		ri->mode = col_dup(q, 3);
		ri->status = col_dup(q, 4);
		ri->started_at = col_dup(q, 5);
		ri->finished_at = col_dup(q, 6);
		ri->seen = sqlite3_column_int64(q, 7);
		ri->inserted = sqlite3_column_int64(q, 8);
		ri->updated = sqlite3_column_int64(q, 9);
		ri->unchanged = sqlite3_column_int64(q, 10);
		ri->deleted = sqlite3_column_int64(q, 11);
		ri->rejected = sqlite3_column_int64(q, 12);
		ri->duplicates = sqlite3_column_int64(q, 13);
		ri->resumed_from = sqlite3_column_int64(q, 14);
		ri->error = col_dup(q, 15);
	}
	sqlite3_finalize(q);
	*out = v;
	*n = cnt;
	if (rc != SQLITE_DONE)
		return sq_fail(s, err, "reading runs");
	return 0;
}

static int sq_table_rows(as_store *st, const char *table, int64_t *rows,
			 as_error *err)
{
	sq_store *s = (sq_store *)st;
	as_buf sql = AS_BUF_INIT;
	int exists, rc;

	*rows = -1;
	if (table_exists(s, table, &exists, err))
		return err->code;
	if (!exists)
		return 0;
	as_buf_adds(&sql, "SELECT count(*) FROM ");
	as_buf_add_ident(&sql, table);
	rc = query_int(s, as_buf_cstr(&sql), NULL, rows, err);
	as_buf_free(&sql);
	return rc;
}

static int sq_status(as_store *st, as_dataset_status **out, size_t *n,
		     as_error *err)
{
	sq_store *s = (sq_store *)st;
	as_dataset_status *v = NULL;
	size_t cnt = 0;
	sqlite3_stmt *q;
	int rc;

	*out = NULL;
	*n = 0;
	if (sq_prepare(s, "SELECT s.dataset, s.table_name, s.mode, s.published_run, "
			  "s.cursor, s.checkpoint IS NOT NULL, l.owner, l.expires_at "
			  "FROM atomsync_state s LEFT JOIN atomsync_leases l "
			  "ON l.dataset = s.dataset ORDER BY s.dataset", &q, err))
		return AS_ESTORE;
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		as_dataset_status *d, *nv = realloc(v, (cnt + 1) * sizeof(*v));

		if (!nv)
			break;
		v = nv;
		d = &v[cnt++];
		memset(d, 0, sizeof(*d));
		d->dataset = col_dup(q, 0);
		d->table = col_dup(q, 1);
		d->mode = col_dup(q, 2);
		d->published_run = sqlite3_column_int64(q, 3);
		d->cursor = col_dup(q, 4);
		d->resumable = sqlite3_column_int(q, 5);
		if (sqlite3_column_double(q, 7) > as_now())
			d->lease_owner = col_dup(q, 6);
		d->lease_expires = sqlite3_column_double(q, 7);
		d->rows = -1;
	}
	sqlite3_finalize(q);
	*out = v;
	*n = cnt;
	if (rc != SQLITE_DONE)
		return sq_fail(s, err, "reading status");
	for (size_t i = 0; i < cnt; i++)
		if (sq_table_rows(st, v[i].table, &v[i].rows, err))
			return err->code;
	return 0;
}

static const as_store_ops sqlite_ops = {
	.name = "sqlite",
	.close = sq_close,
	.lease_acquire = sq_lease_acquire,
	.lease_renew = sq_lease_renew,
	.lease_release = sq_lease_release,
	.run_begin = sq_run_begin,
	.describe = sq_describe,
	.stage_prepare = sq_stage_prepare,
	.stage_discard = sq_stage_discard,
	.stage_batch = sq_stage_batch,
	.scan_open = sq_scan_open,
	.scan_next = sq_scan_next,
	.scan_seek = sq_scan_seek,
	.scan_close = sq_scan_close,
	.publish = sq_publish,
	.run_end = sq_run_end,
	.run_free = sq_run_free,
	.runs_list = sq_runs_list,
	.status = sq_status,
	.table_rows = sq_table_rows,
};
