/*
 * The SQLite store: one database file in WAL mode holding the live tables,
 * per-run staging tables and the bookkeeping tables of DESIGN.md.  Staging
 * commits are short fenced transactions carrying their checkpoint; the
 * publish is one fenced transaction.  Readers never block (WAL).
 */
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/schema.h"
#include "store/sqlite_int.h"
#include "util/crash.h"
#include "util/log.h"
#include "util/proc.h"
#include "util/str.h"
#include "util/time.h"

static const char *RUN_COLS =
	"run_id, dataset, kind, mode, status, started_at, finished_at, seen, "
	"inserted, updated, unchanged, deleted, rejected, duplicates, "
	"resumed_from, error";

/* ---- errors and statements ---- */

/*
 * SQLite's wait for another connection's lock: up to 30 s in steps of 10 ms,
 * but no more than about 1 s in all once SIGINT or SIGTERM arrived, so a run
 * waiting on a store locked by another process stops promptly, while our
 * own connections' short transactions still get their turn.
 */
int as_sq_busy(void *ud, int n)
{
	(void)ud;
	if (n >= 3000 || (as_interrupted && n >= 100))
		return 0;
	sqlite3_sleep(10);
	return 1;
}

int as_sq_fail(sq_store *s, as_error *err, const char *what)
{
	int ext = sqlite3_extended_errcode(s->db);

	if ((ext & 0xff) == SQLITE_BUSY && as_interrupted) {
		as_error_set(err, AS_EINTR,
			     "%s: %s: interrupted by a signal while waiting "
			     "for the database lock",
			     s->path, what);
		if (err)
			err->native = ext;
		return AS_EINTR;
	}
	as_error_set(err, AS_ESTORE, "%s: %s: %s", s->path, what,
		     sqlite3_errmsg(s->db));
	if (err)
		err->native = ext;
	return AS_ESTORE;
}

/* SQL built in an as_buf whose growth failed (util/buf.h): out of memory,
 * named as such, and never run. */
static int oom_sql(sq_store *s, const char *sql, as_error *err)
{
	if (!sql || as_buf_text_failed(sql))
		return as_error_set(err, AS_ENOMEM, "%s: out of memory",
				    s->path);
	return 0;
}

int as_sq_exec(sq_store *s, const char *sql, as_error *err)
{
	char *msg = NULL;

	if (oom_sql(s, sql, err))
		return AS_ENOMEM;
	if (sqlite3_exec(s->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		int ext = sqlite3_extended_errcode(s->db);

		int code = (ext & 0xff) == SQLITE_BUSY && as_interrupted
				   ? AS_EINTR
				   : AS_ESTORE;

		/* err may be NULL: best-effort pragmas (sqlite_publish.c). */
		if (code == AS_EINTR)
			as_error_set(err, code,
				     "%s: interrupted by a signal while "
				     "waiting for the database lock",
				     s->path);
		else
			as_error_set(err, code, "%s: %s", s->path,
				     msg ? msg : sqlite3_errmsg(s->db));
		if (err)
			err->native = ext;
		sqlite3_free(msg);
		return code;
	}
	return 0;
}

/* BEGIN or COMMIT, failing as "PATH: what: cause": an I/O error or a full
 * disk at a commit must say which step of the run it stopped. */
int as_sq_txn(sq_store *s, const char *sql, const char *what, as_error *err)
{
	if (sqlite3_exec(s->db, sql, NULL, NULL, NULL) != SQLITE_OK)
		return as_sq_fail(s, err, what);
	return 0;
}

int as_sq_prepare(sq_store *s, const char *sql, sqlite3_stmt **st,
		  as_error *err)
{
	*st = NULL;
	if (oom_sql(s, sql, err))
		return AS_ENOMEM;
	if (sqlite3_prepare_v2(s->db, sql, -1, st, NULL) != SQLITE_OK) {
		*st = NULL;
		return as_sq_fail(s, err, "prepare");
	}
	return 0;
}

void as_sq_rollback(sq_store *s)
{
	if (!sqlite3_get_autocommit(s->db))
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
}

/*
 * Text is bound without a copy (SQLITE_STATIC): it must stay valid until
 * the statement has been stepped, as every caller binds and steps at once.
 * A copy can fail for memory, and a failed bind leaves the parameter NULL
 * without failing the step: the allocation sweep (tests/reliability) saw
 * "WHERE name = ?1" match nothing, a live table taken for missing, and a
 * publish that kept rows it should have deleted.  Same for every bind in
 * this store, except the live scan's seek (sqlite_stage.c).
 */
void as_sq_bind_text(sqlite3_stmt *st, int i, const char *v)
{
	if (v)
		sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, i);
}

void as_sq_bind_val(sqlite3_stmt *st, int i, const as_val *v)
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
int as_sq_query_int(sq_store *s, const char *sql, const char *arg, int64_t *out,
		    as_error *err)
{
	sqlite3_stmt *st;
	int rc;

	if (as_sq_prepare(s, sql, &st, err))
		return AS_ESTORE;
	if (arg)
		sqlite3_bind_text(st, 1, arg, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	*out = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return as_sq_fail(s, err, "query");
	return 0;
}

int as_sq_table_exists(sq_store *s, const char *name, int *exists,
		       as_error *err)
{
	int64_t n = 0;
	int rc = as_sq_query_int(s,
				 "SELECT count(*) FROM sqlite_master "
				 "WHERE type = 'table' AND name = ?1",
				 name, &n, err);

	*exists = n > 0;
	return rc;
}

/* Inside the run's first transaction: is the table another dataset's?
 * SQLite's table names are case-insensitive, so the match is too.  A
 * non-scoped owner sorts first: it refuses sharing. */
static int check_owner(sq_store *s, const as_table *t, as_error *err)
{
	sqlite3_stmt *q;
	int rc;

	if (as_sq_prepare(s,
			  "SELECT dataset, mode FROM atomsync_state WHERE "
			  "table_name = ?2 COLLATE NOCASE AND dataset <> ?1 "
			  "ORDER BY mode = 'scoped', dataset LIMIT 1",
			  &q, err))
		return AS_ESTORE;
	sqlite3_bind_text(q, 1, t->dataset, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 2, t->table, -1, SQLITE_STATIC);
	rc = sqlite3_step(q);
	if (rc == SQLITE_ROW)
		rc = as_table_owner_check(
			t, (const char *)sqlite3_column_text(q, 0),
			(const char *)sqlite3_column_text(q, 1), err);
	else if (rc == SQLITE_DONE)
		rc = 0;
	else
		rc = as_sq_fail(s, err, "reading the table's owner");
	sqlite3_finalize(q);
	return rc;
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

/* Only a store without its bookkeeping tables is written to on open: a
 * reader (status, runs) must not wait for the write lock of a publish. */
static int create_schema(sq_store *s, as_error *err)
{
	sqlite3_stmt *q;
	int have = 0;

	if (as_sq_prepare(s,
			  "SELECT count(*) FROM sqlite_master WHERE type = "
			  "'table' AND name IN ('atomsync_meta', "
			  "'atomsync_runs', 'atomsync_leases', "
			  "'atomsync_state')",
			  &q, err))
		return err->code;
	if (sqlite3_step(q) == SQLITE_ROW)
		have = sqlite3_column_int(q, 0) == 4;
	sqlite3_finalize(q);
	return have ? 0 : as_sq_exec(s, SCHEMA, err);
}

static const char *url_path(const char *url)
{
	if (strncmp(url, "sqlite://", 9) == 0)
		return url + 9;
	if (strncmp(url, "sqlite:", 7) == 0)
		return url + 7;
	return url;
}

/*
 * SQLite's memory statistics take one global mutex on every allocation,
 * which the writer thread and the live-scan reader then contend for (about
 * a tenth of a reload's time).  atomsync reads no statistic, so turn them
 * off, once, if nothing in the process has initialized SQLite yet (a host
 * program that has keeps its own configuration: sqlite3_config() then
 * refuses, harmlessly).
 */
static void sq_configure(void)
{
	sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

int as_sqlite_open(as_store **out, const char *url, as_error *err);
int as_sqlite_open(as_store **out, const char *url, as_error *err)
{
	sq_store *s = calloc(1, sizeof(*s));
	const char *path = url_path(url);
	int rc;

	static pthread_once_t once = PTHREAD_ONCE_INIT;

	*out = NULL;
	pthread_once(&once, sq_configure);
	if (!s)
		return as_error_set(err, AS_ENOMEM, "out of memory");
	s->base.ops = &sqlite_ops;
	s->base.url = as_strdup(url);
	s->base.display = as_strdup(url);
	s->path = as_strdup(path);
	if (!s->base.url || !s->base.display || !s->path) {
		sqlite_ops.close(&s->base);
		return as_error_set(err, AS_ENOMEM, "out of memory");
	}
	if (!*path) {
		sqlite_ops.close(&s->base);
		return as_error_set(err, AS_EUSAGE, "store %s: no file name",
				    url);
	}
	rc = sqlite3_open_v2(path, &s->db,
			     SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
				     SQLITE_OPEN_NOMUTEX,
			     NULL);
	if (rc != SQLITE_OK) {
		as_error_set(err, AS_ESTORE, "%s: cannot open: %s", path,
			     s->db ? sqlite3_errmsg(s->db)
				   : sqlite3_errstr(rc));
		sqlite_ops.close(&s->base);
		return AS_ESTORE;
	}
	sqlite3_extended_result_codes(s->db, 1);
	sqlite3_busy_handler(s->db, as_sq_busy, NULL);
	/* Closing checkpoints without the exclusive lock (sq_close). */
	sqlite3_db_config(s->db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
	/*
	 * WAL: readers see the last committed publish while a run stages and
	 * publishes (invariant 1 for readers).  synchronous=NORMAL for staging
	 * (a power cut loses at most the last batches, and their checkpoint
	 * with them); the publish switches to FULL so a reported publish is
	 * durable.
	 */
	if (as_sq_exec(s, "PRAGMA journal_mode=WAL", err) ||
	    as_sq_exec(s,
		       "PRAGMA synchronous=NORMAL;"
		       "PRAGMA cache_size=-32768;"
		       "PRAGMA wal_autocheckpoint=8192;"
		       "PRAGMA foreign_keys=OFF",
		       err) ||
	    create_schema(s, err)) {
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
	/*
	 * The last connection to close would take the database's exclusive
	 * lock to checkpoint and delete the WAL: a reader opening meanwhile
	 * without a busy timeout would fail with "database is locked".  A
	 * passive checkpoint copies the WAL into the database file without
	 * that lock (readers go on), and the WAL file is left in place.
	 */
	if (s->db) {
		sqlite3_wal_checkpoint_v2(
			s->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
		sqlite3_close_v2(s->db);
	}
	free(s->path);
	free(s->base.url);
	free(s->base.display);
	free(s);
}

/* ---- leases (invariant 6) ---- */

/* AS_ELEASE when a live worker holds the dataset's lease. */
static int lease_holder(sq_store *s, const char *dataset, double now,
			as_error *err)
{
	sqlite3_stmt *q;
	char when[40], what[160];
	int rc;

	if (as_sq_prepare(s,
			  "SELECT owner, expires_at FROM atomsync_leases "
			  "WHERE dataset = ?1",
			  &q, err))
		return err->code;
	sqlite3_bind_text(q, 1, dataset, -1, SQLITE_STATIC);
	rc = sqlite3_step(q);
	if (rc == SQLITE_ROW) {
		const char *holder = (const char *)sqlite3_column_text(q, 0);
		double exp = sqlite3_column_double(q, 1);

		rc = 0;
		if (holder && exp > now && !as_owner_is_dead(holder))
			rc = as_error_set(
				err, AS_ELEASE,
				"%s is being run by %s (lease "
				"expires %s); nothing done",
				as_lease_label(dataset, what, sizeof(what)),
				holder, as_iso8601(exp, when, sizeof(when)));
	} else if (rc == SQLITE_DONE) {
		rc = 0;
	} else {
		rc = as_sq_fail(s, err, "reading lease");
	}
	sqlite3_finalize(q);
	return rc;
}

/*
 * The write lock stayed taken for the whole busy timeout.  When the holder
 * is a run of this dataset inside its publish (paused, say: SQLite cannot
 * take a lock from a stopped process), that run holds the dataset: exit 4
 * naming it, not a bare "database is locked" (docs/operations.md).
 */
static int busy_holder(sq_store *s, const char *dataset, as_error *err)
{
	sqlite3_stmt *q;
	as_error busy = *err;
	char what[160];

	if ((busy.native & 0xff) != SQLITE_BUSY)
		return err->code;
	/* The lease is the dataset's, or its table's (as_table_lease). */
	if (as_sq_prepare(s,
			  "SELECT r.run_id, coalesce(l.owner, r.owner, '?') "
			  "FROM atomsync_runs r LEFT JOIN atomsync_leases l ON "
			  "l.dataset = ?1 WHERE r.status = 'publishing' AND "
			  "(r.dataset = ?1 OR ?1 = '" AS_TABLE_LEASE_PREFIX
			  "' || lower((SELECT table_name FROM atomsync_state "
			  "t WHERE t.dataset = r.dataset))) "
			  "ORDER BY r.run_id DESC LIMIT 1",
			  &q, err))
		return err->code;
	sqlite3_bind_text(q, 1, dataset, -1, SQLITE_STATIC);
	if (sqlite3_step(q) == SQLITE_ROW)
		as_error_set(err, AS_ELEASE,
			     "%s is being published by %s (run %lld), "
			     "which holds the store's write lock; nothing done",
			     as_lease_label(dataset, what, sizeof(what)),
			     (const char *)sqlite3_column_text(q, 1),
			     (long long)sqlite3_column_int64(q, 0));
	else
		*err = busy;
	sqlite3_finalize(q);
	return err->code;
}

static int sq_lease_acquire(as_store *st, const char *dataset,
			    const char *owner, int64_t ttl_ms, int64_t *token,
			    as_error *err)
{
	sq_store *s = (sq_store *)st;
	sqlite3_stmt *q = NULL;
	double now = as_now();
	char when[40];

	/* A plain read first (WAL readers never wait): a live holder turns
	 * this run away at once, without waiting for the write lock. */
	if (lease_holder(s, dataset, now, err))
		return err->code;
	if (as_sq_txn(s, "BEGIN IMMEDIATE", "taking the lease", err))
		return busy_holder(s, dataset, err);
	/* Again under the write lock: it may have been taken meanwhile. */
	if (lease_holder(s, dataset, now, err))
		goto fail;
	if (as_sq_prepare(
		    s,
		    "INSERT INTO atomsync_leases(dataset, owner, token, "
		    "acquired_at, expires_at) VALUES(?1, ?2, 1, ?3, ?4) "
		    "ON CONFLICT(dataset) DO UPDATE SET owner = excluded.owner, "
		    "token = token + 1, acquired_at = excluded.acquired_at, "
		    "expires_at = excluded.expires_at RETURNING token",
		    &q, err))
		goto fail;
	sqlite3_bind_text(q, 1, dataset, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 2, owner, -1, SQLITE_STATIC);
	as_sq_bind_text(q, 3, as_iso8601(now, when, sizeof(when)));
	sqlite3_bind_double(q, 4, now + (double)ttl_ms / 1000.0);
	if (sqlite3_step(q) != SQLITE_ROW) {
		as_sq_fail(s, err, "taking lease");
		goto fail;
	}
	*token = sqlite3_column_int64(q, 0);
	sqlite3_finalize(q);
	q = NULL;
	if (as_sq_txn(s, "COMMIT", "taking the lease", err))
		goto fail;
	return 0;
fail:
	sqlite3_finalize(q);
	as_sq_rollback(s);
	return err->code;
}

/* Inside a transaction: extend our lease, or fail if it was taken. */
int as_sq_fence(sq_store *s, sqlite3_stmt **cache, const char *dataset,
		int64_t token, int64_t ttl_ms, as_error *err)
{
	sqlite3_stmt *st = cache ? *cache : NULL;
	int rc;

	if (!st && as_sq_prepare(s,
				 "UPDATE atomsync_leases SET expires_at = ?1 "
				 "WHERE dataset = ?2 AND token = ?3",
				 &st, err))
		return AS_ESTORE;
	sqlite3_bind_double(st, 1, as_now() + (double)ttl_ms / 1000.0);
	sqlite3_bind_text(st, 2, dataset, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, token);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (cache)
		*cache = st;
	else
		sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return as_sq_fail(s, err, "checking lease");
	if (sqlite3_changes(s->db) != 1)
		return as_lease_lost(dataset, token, err);
	return 0;
}

static int sq_lease_renew(as_store *st, const char *dataset, int64_t token,
			  int64_t ttl_ms, as_error *err)
{
	sq_store *s = (sq_store *)st;
	int rc = as_sq_fence(s, NULL, dataset, token, ttl_ms, err);

	return rc;
}

static int sq_lease_release(as_store *st, const char *dataset, int64_t token,
			    as_error *err)
{
	sq_store *s = (sq_store *)st;
	sqlite3_stmt *q;
	int rc;

	if (as_sq_prepare(s,
			  "UPDATE atomsync_leases SET owner = NULL, "
			  "expires_at = 0 WHERE dataset = ?1 AND token = ?2",
			  &q, err))
		return AS_ESTORE;
	sqlite3_bind_text(q, 1, dataset, -1, SQLITE_STATIC);
	sqlite3_bind_int64(q, 2, token);
	rc = sqlite3_step(q);
	sqlite3_finalize(q);
	return rc == SQLITE_DONE ? 0 : as_sq_fail(s, err, "releasing lease");
}

/* ---- run records ---- */

void as_sq_run_free(as_store *st, as_run_ctx *rc)
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
	sqlite3_finalize(r->ins_span);
	free(r->live_q);
	free(r->stage);
	free(r->stage_q);
	free(r->spans);
	free(r->spans_q);
	free(r->gone_q);
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
	int rc = 0, step = SQLITE_DONE;

	if (as_sq_prepare(
		    s,
		    "SELECT name FROM sqlite_master WHERE type = 'table' "
		    "AND name LIKE '\\_atomsync\\_stage\\_%' ESCAPE '\\' "
		    "AND name NOT IN (SELECT stage_table FROM atomsync_state "
		    "WHERE stage_table IS NOT NULL) "
		    "AND name NOT IN (SELECT stage_table || '_spans' FROM "
		    "atomsync_state WHERE stage_table IS NOT NULL) "
		    "AND name NOT IN (SELECT stage_table || '_gone' FROM "
		    "atomsync_state WHERE stage_table IS NOT NULL)",
		    &q, err))
		return AS_ESTORE;
	while (n < 64 && (step = sqlite3_step(q)) == SQLITE_ROW)
		if ((names[n] = as_strdup(
			     (const char *)sqlite3_column_text(q, 0))))
			n++; /* out of memory: that one waits for a later run */
	/* A failed step (out of memory) may have rolled the transaction
	 * back: the caller must not go on as if it were still open. */
	if (step != SQLITE_ROW && step != SQLITE_DONE)
		rc = as_sq_fail(s, err, "listing orphan staging tables");
	sqlite3_finalize(q);
	for (size_t i = 0; i < n; i++) {
		as_buf b = AS_BUF_INIT;

		as_buf_adds(&b, "DROP TABLE IF EXISTS ");
		as_buf_add_ident(&b, names[i]);
		if (!rc)
			rc = as_sq_exec(s, as_buf_cstr(&b), err);
		as_buf_free(&b);
		free(names[i]);
	}
	return rc;
}

int as_sq_drop_table(sq_store *s, const char *name, as_error *err)
{
	as_buf b = AS_BUF_INIT;
	int rc;

	as_buf_adds(&b, "DROP TABLE IF EXISTS ");
	as_buf_add_ident(&b, name);
	rc = as_sq_exec(s, as_buf_cstr(&b), err);
	as_buf_free(&b);
	return rc;
}

/* A staging table, its spans table and the deletions of its publish. */
int as_sq_drop_stage(sq_store *s, const char *stage, as_error *err)
{
	char *spans = as_sprintf("%s_spans", stage);
	char *gone = as_sprintf("%s_gone", stage);
	int rc;

	if (!spans || !gone)
		rc = as_error_set(err, AS_ENOMEM, "%s: out of memory", s->path);
	else if (!(rc = as_sq_drop_table(s, stage, err)) &&
		 !(rc = as_sq_drop_table(s, spans, err)))
		rc = as_sq_drop_table(s, gone, err);
	free(spans);
	free(gone);
	return rc;
}

/* Set the run's staging and spans table names; -1 when memory ran out. */
int as_sq_stage_names(sq_run *r, const char *stage)
{
	char *gone = as_sprintf("%s_gone", stage);

	r->stage = as_strdup(stage);
	r->spans = as_sprintf("%s_spans", stage);
	r->stage_q = r->stage ? as_quote_ident(r->stage) : NULL;
	r->spans_q = r->spans ? as_quote_ident(r->spans) : NULL;
	r->gone_q = gone ? as_quote_ident(gone) : NULL;
	free(gone);
	return r->stage && r->spans && r->stage_q && r->spans_q && r->gone_q
		       ? 0
		       : -1;
}

/* A text column, copied.  *ok = 0 when memory ran out (SQLite's text
 * conversion or the copy), which a NULL result alone does not tell from
 * SQL NULL. */
static char *col_copy(sqlite3_stmt *q, int i, int *ok)
{
	const char *v;
	char *p;

	if (sqlite3_column_type(q, i) == SQLITE_NULL)
		return NULL;
	v = (const char *)sqlite3_column_text(q, i);
	p = v ? as_strdup(v) : NULL;
	if (!p)
		*ok = 0;
	return p;
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
	int resume = 0, exists, ok = 1;
	char *stage = NULL;
	int64_t published = 0, last_run = 0;

	if (!r)
		return as_error_set(err, AS_ENOMEM, "out of memory");
	rc->priv = r;
	r->live_q = as_quote_ident(t->table);
	if (!r->live_q)
		return as_error_set(err, AS_ENOMEM, "out of memory");
	as_iso8601(as_now(), now, sizeof(now));
	if (as_sq_txn(s, "BEGIN IMMEDIATE", "starting the run", err))
		return err->code;
	if (as_sq_fence(s, NULL, as_table_lease(t), rc->token, rc->lease_ttl_ms,
			err))
		goto fail;
	if (as_sq_prepare(
		    s,
		    "UPDATE atomsync_runs SET status = 'failed', "
		    "finished_at = ?2, error = 'interrupted: the worker "
		    "stopped before finishing (killed, crashed or lost its "
		    "connection); nothing was published' "
		    "WHERE dataset = ?1 AND status IN ('active', 'publishing')",
		    &q, err))
		goto fail;
	sqlite3_bind_text(q, 1, t->dataset, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 2, now, -1, SQLITE_STATIC);
	if (sqlite3_step(q) != SQLITE_DONE) {
		as_sq_fail(s, err, "recording interrupted runs");
		goto fail;
	}
	sqlite3_finalize(q);
	q = NULL;
	if (check_owner(s, t, err))
		goto fail;
	if (as_sq_prepare(
		    s,
		    "INSERT INTO atomsync_state(dataset, table_name, mode) "
		    "VALUES(?1, ?2, ?3) ON CONFLICT(dataset) DO NOTHING",
		    &q, err))
		goto fail;
	sqlite3_bind_text(q, 1, t->dataset, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 2, t->table, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 3, as_mode_name(t->mode), -1, SQLITE_STATIC);
	if (sqlite3_step(q) != SQLITE_DONE) {
		as_sq_fail(s, err, "creating state");
		goto fail;
	}
	sqlite3_finalize(q);
	if (as_sq_prepare(
		    s,
		    "SELECT published_run, cursor, stage_table, "
		    "stage_last_run, stage_base, stage_fingerprint, stage_key, "
		    "checkpoint, stage_seen, stage_rejected "
		    "FROM atomsync_state WHERE dataset = ?1",
		    &q, err))
		goto fail;
	sqlite3_bind_text(q, 1, t->dataset, -1, SQLITE_STATIC);
	if (sqlite3_step(q) != SQLITE_ROW) {
		as_sq_fail(s, err, "reading state");
		goto fail;
	}
	published = sqlite3_column_int64(q, 0);
	rc->cursor = col_copy(q, 1, &ok);
	stage = col_copy(q, 2, &ok);
	last_run = sqlite3_column_int64(q, 3);
	if (stage && !rc->restart && sqlite3_column_type(q, 7) != SQLITE_NULL &&
	    sqlite3_column_int64(q, 4) == published &&
	    as_streq((const char *)sqlite3_column_text(q, 5), t->fingerprint)) {
		resume = 1;
		rc->stage_key = col_copy(q, 6, &ok);
		rc->checkpoint = col_copy(q, 7, &ok);
		rc->seen = sqlite3_column_int64(q, 8);
		rc->rejected = sqlite3_column_int64(q, 9);
		r->stage_base = published;
	}
	if (!ok) {
		/* A cursor or checkpoint read as NULL would start over or
		 * refetch everything: fail instead (invariants 4, 8). */
		as_error_set(err, AS_ENOMEM, "%s: reading state: out of memory",
			     s->path);
		goto fail;
	}
	sqlite3_finalize(q);
	q = NULL;
	if (resume && (as_sq_table_exists(s, stage, &exists, err) || !exists)) {
		if (err->code)
			goto fail;
		resume = 0;
	}
	if (!resume) {
		free(rc->checkpoint);
		free(rc->stage_key);
		rc->checkpoint = rc->stage_key = NULL;
		rc->seen = rc->rejected = 0;
		if (stage && as_sq_drop_stage(s, stage, err))
			goto fail;
		if (as_sq_prepare(
			    s,
			    "UPDATE atomsync_state SET stage_table = NULL, "
			    "stage_run = NULL, stage_last_run = NULL, "
			    "stage_base = NULL, stage_fingerprint = NULL, "
			    "stage_key = NULL, checkpoint = NULL, stage_seen = 0, "
			    "stage_rejected = 0 WHERE dataset = ?1",
			    &q, err))
			goto fail;
		sqlite3_bind_text(q, 1, t->dataset, -1, SQLITE_STATIC);
		if (sqlite3_step(q) != SQLITE_DONE) {
			as_sq_fail(s, err, "clearing staging");
			goto fail;
		}
		sqlite3_finalize(q);
		q = NULL;
		free(stage);
		stage = NULL;
	}
	if (drop_orphans(s, err))
		goto fail;
	if (as_sq_prepare(
		    s,
		    "INSERT INTO atomsync_runs(dataset, kind, mode, status, "
		    "started_at, resumed_from, lease_token, owner) "
		    "VALUES(?1, ?2, ?3, 'active', ?4, ?5, ?6, ?7)",
		    &q, err))
		goto fail;
	sqlite3_bind_text(q, 1, t->dataset, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 2, rc->kind ? rc->kind : "sync", -1,
			  SQLITE_STATIC);
	sqlite3_bind_text(q, 3, as_mode_name(t->mode), -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 4, now, -1, SQLITE_STATIC);
	if (resume)
		sqlite3_bind_int64(q, 5, last_run);
	else
		sqlite3_bind_null(q, 5);
	sqlite3_bind_int64(q, 6, rc->token);
	sqlite3_bind_text(q, 7, rc->owner, -1, SQLITE_STATIC);
	if (sqlite3_step(q) != SQLITE_DONE) {
		as_sq_fail(s, err, "recording run");
		goto fail;
	}
	sqlite3_finalize(q);
	q = NULL;
	rc->run_id = sqlite3_last_insert_rowid(s->db);
	rc->resumed_from = resume ? last_run : 0;
	if (resume) {
		if (as_sq_prepare(
			    s,
			    "UPDATE atomsync_state SET stage_last_run = ?2 "
			    "WHERE dataset = ?1",
			    &q, err))
			goto fail;
		sqlite3_bind_text(q, 1, t->dataset, -1, SQLITE_STATIC);
		sqlite3_bind_int64(q, 2, rc->run_id);
		if (sqlite3_step(q) != SQLITE_DONE) {
			as_sq_fail(s, err, "adopting staging");
			goto fail;
		}
		sqlite3_finalize(q);
		q = NULL;
		if (as_sq_stage_names(r, stage)) {
			as_error_set(err, AS_ENOMEM, "out of memory");
			goto fail;
		}
	}
	if (as_sq_txn(s, "COMMIT", "recording the run", err))
		goto fail;
	free(stage);
	as_crash_point("run.begun");
	return 0;
fail:
	sqlite3_finalize(q);
	free(stage);
	as_sq_rollback(s);
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
	if (as_sq_txn(s, "BEGIN IMMEDIATE", "recording the run's end", err))
		return err->code;
	/* A worker that lost its lease leaves the record to the new holder. */
	if (as_sq_fence(s, NULL, as_table_lease(rc->table), rc->token,
			rc->lease_ttl_ms, &ferr)) {
		as_sq_rollback(s);
		if (ferr.code == AS_EFENCED)
			return 0;
		/* The whole error, native SQLite code included. */
		if (err)
			*err = ferr;
		return ferr.code;
	}
	if (as_sq_prepare(
		    s,
		    "UPDATE atomsync_runs SET status = ?2, finished_at = ?3, "
		    "error = ?4, seen = ?5, rejected = ?6 WHERE run_id = ?1 "
		    "AND status IN ('active', 'publishing')",
		    &q, err))
		goto fail;
	sqlite3_bind_int64(q, 1, rc->run_id);
	sqlite3_bind_text(q, 2, status, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 3, now, -1, SQLITE_STATIC);
	as_sq_bind_text(q, 4, error);
	sqlite3_bind_int64(q, 5, rc->seen);
	sqlite3_bind_int64(q, 6, rc->rejected);
	if (sqlite3_step(q) != SQLITE_DONE) {
		as_sq_fail(s, err, "recording run end");
		goto fail;
	}
	sqlite3_finalize(q);
	q = NULL;
	/* A refused run starts over next time: its delivery was judged. */
	if (strcmp(status, "refused") == 0 && r && r->stage) {
		if (as_sq_drop_stage(s, r->stage, err))
			goto fail;
		if (as_sq_prepare(
			    s,
			    "UPDATE atomsync_state SET stage_table = NULL, "
			    "checkpoint = NULL, stage_seen = 0, "
			    "stage_rejected = 0 WHERE dataset = ?1",
			    &q, err))
			goto fail;
		sqlite3_bind_text(q, 1, rc->table->dataset, -1, SQLITE_STATIC);
		if (sqlite3_step(q) != SQLITE_DONE) {
			as_sq_fail(s, err, "clearing staging");
			goto fail;
		}
		sqlite3_finalize(q);
		q = NULL;
	}
	return as_sq_txn(s, "COMMIT", "recording the run's end", err);
fail:
	sqlite3_finalize(q);
	as_sq_rollback(s);
	return err->code;
}

/* ---- tables ---- */

const char *as_sq_sql_type(as_type t)
{
	switch (t) {
	case AS_TYPE_INTEGER:
	case AS_TYPE_BOOLEAN: return "INTEGER";
	case AS_TYPE_REAL: return "REAL";
	default: return "TEXT";
	}
}

static int sql_exec(void *conn, const char *sql, const char *what,
		    as_error *err)
{
	(void)what;
	return as_sq_exec(conn, sql, err);
}

static const as_sql_dialect sq_dialect = {
	.temp = "temp",
	.true_lit = "1",
	.text_type = "TEXT",
	.temp_suffix = "",
	.type = as_sq_sql_type,
};

void as_sq_sql(sq_store *s, as_sql *q)
{
	q->d = &sq_dialect;
	q->conn = s;
	q->exec = sql_exec;
}

int as_sq_rowid_key(const as_table *t)
{
	return t->nkey == 1 && t->cols[0].type == AS_TYPE_INTEGER;
}

static void add_col_def(as_buf *b, const as_table *t, size_t i)
{
	as_buf_add_ident(b, t->cols[i].name);
	as_buf_printf(b, " %s", as_sq_col_type(&t->cols[i]));
	if (i == 0 && as_sq_rowid_key(t))
		as_buf_adds(b, " PRIMARY KEY");
	else if (i < t->nkey)
		as_buf_adds(b, " NOT NULL");
}

/* The columns before the _atomsync ones (as_table_front), then those, then
 * the columns added since (the layout ALTER TABLE ADD COLUMN makes). */
char *as_sq_create_sql(const as_table *t, const char *name)
{
	as_buf b = AS_BUF_INIT;
	size_t front = as_table_front(t);

	as_buf_adds(&b, "CREATE TABLE IF NOT EXISTS ");
	as_buf_add_ident(&b, name);
	as_buf_adds(&b, " (");
	for (size_t i = 0; i < front; i++) {
		add_col_def(&b, t, i);
		as_buf_adds(&b, ", ");
	}
	as_buf_adds(&b,
		    "\"_atomsync_run\" INTEGER, \"_atomsync_hash\" INTEGER, "
		    "\"_atomsync_line\" BLOB");
	for (size_t i = front; i < t->ncols; i++) {
		as_buf_adds(&b, ", ");
		add_col_def(&b, t, i);
	}
	if (!as_sq_rowid_key(t)) {
		as_buf_adds(&b, ", PRIMARY KEY (");
		as_sql_key_list(&b, t, NULL);
		as_buf_adds(&b, ")) WITHOUT ROWID");
	} else {
		as_buf_adds(&b, ")");
	}
	return as_buf_detach(&b);
}

as_type as_sq_type_of_decl(const char *decl)
{
	if (!decl)
		return AS_TYPE_AUTO;
	if (strcasecmp(decl, "INTEGER") == 0)
		return AS_TYPE_INTEGER;
	if (strcasecmp(decl, "REAL") == 0)
		return AS_TYPE_REAL;
	if (strcasecmp(decl, "TEXT") == 0)
		return AS_TYPE_TEXT;
	if (strcasecmp(decl, "BOOLEAN") == 0)
		return AS_TYPE_BOOLEAN;
	if (strcasecmp(decl, "TIMESTAMP") == 0)
		return AS_TYPE_TIMESTAMP;
	if (strcasecmp(decl, "JSON") == 0)
		return AS_TYPE_JSON;
	return AS_TYPE_AUTO;
}

/*
 * Compare an existing table with the dataset's columns; adopt the declared
 * types of columns still AS_TYPE_AUTO.  A mismatch is a configuration error:
 * atomsync never silently reshapes a table that holds data.
 */
int as_sq_check_table(sq_store *s, as_table *t, const char *name, as_error *err)
{
	as_buf b = AS_BUF_INIT;
	sqlite3_stmt *q;
	size_t i = 0, nuser;
	int ok = 1, rc;

	if (t->infer)
		return as_sq_adopt_table(s, t, name, 0, &nuser, err);

	as_buf_adds(&b, "PRAGMA table_info(");
	as_buf_add_ident(&b, name);
	as_buf_adds(&b, ")");
	rc = as_sq_prepare(s, as_buf_cstr(&b), &q, err);
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
				c->type = as_sq_type_of_decl(ct);
			else if (strcasecmp(as_sq_sql_type(c->type),
					    ct ? ct : "") != 0)
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
		return as_sq_fail(s, err, "reading table schema");
	if (!ok || i != t->ncols + 3) {
		as_buf want = AS_BUF_INIT;

		for (size_t k = 0; k < t->ncols; k++)
			as_buf_printf(
				&want, "%s%s %s", k ? ", " : "",
				t->cols[k].name,
				t->cols[k].type == AS_TYPE_AUTO
					? "?"
					: as_sq_sql_type(t->cols[k].type));
		as_error_set(
			err, AS_EUSAGE,
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

	if (as_sq_table_exists(s, rc->table->table, &exists, err))
		return err->code;
	if (rc->table->infer) {
		/* the live table's columns, then those the staging being
		 * resumed added */
		size_t nuser = 0;

		if (exists && as_sq_adopt_table(s, rc->table, rc->table->table,
						0, &nuser, err))
			return err->code;
		if (!rc->table->legacy_json && r && r->stage &&
		    as_sq_adopt_table(s, rc->table, r->stage, 1, &nuser, err))
			return err->code;
		return 0;
	}
	if (exists)
		return as_sq_check_table(s, rc->table, rc->table->table, err);
	if (r && r->stage)
		return as_sq_check_table(s, rc->table, r->stage, err);
	return 0;
}

/* The staging insert, naming its columns (the _atomsync ones may stand
 * before columns added later); prepared again when columns are added. */
int as_sq_prepare_insert(sq_store *s, as_run_ctx *rc, as_error *err)
{
	sq_run *r = rc->priv;
	const as_table *t = rc->table;
	as_buf b = AS_BUF_INIT;
	int rc2;

	sqlite3_finalize(r->ins);
	r->ins = NULL;
	as_buf_printf(&b, "INSERT OR REPLACE INTO %s(", r->stage_q);
	for (size_t i = 0; i < t->ncols; i++) {
		as_buf_add_ident(&b, t->cols[i].name);
		as_buf_adds(&b, ", ");
	}
	as_buf_adds(&b, "\"_atomsync_run\", \"_atomsync_hash\", "
			"\"_atomsync_line\") VALUES(");
	for (size_t i = 0; i < t->ncols + 3; i++)
		as_buf_printf(&b, "%s?%zu", i ? ", " : "", i + 1);
	as_buf_adds(&b, ")");
	rc2 = as_sq_prepare(s, as_buf_cstr(&b), &r->ins, err);
	as_buf_free(&b);
	if (!rc2)
		r->stage_ncols = t->ncols;
	return rc2;
}

static int prepare_statements(sq_store *s, as_run_ctx *rc, as_error *err)
{
	sq_run *r = rc->priv;
	const as_table *t = rc->table;
	as_buf b = AS_BUF_INIT;
	int rc2;

	rc2 = as_sq_prepare_insert(s, rc, err);
	as_buf_reset(&b);
	if (!rc2 && r->live_exists) {
		as_buf_printf(&b, "SELECT \"_atomsync_hash\" FROM %s WHERE ",
			      r->live_q);
		for (size_t i = 0; i < t->nkey; i++) {
			as_buf_adds(&b, i ? " AND " : "");
			as_buf_add_ident(&b, t->cols[i].name);
			as_buf_printf(&b, " = ?%zu", i + 1);
		}
		rc2 = as_sq_prepare(s, as_buf_cstr(&b), &r->look_live, err);
		as_buf_reset(&b);
	}
	if (!rc2 && t->mode == AS_MODE_APPEND) {
		as_buf_printf(&b, "SELECT \"_atomsync_hash\" FROM %s WHERE ",
			      r->stage_q);
		for (size_t i = 0; i < t->nkey; i++) {
			as_buf_adds(&b, i ? " AND " : "");
			as_buf_add_ident(&b, t->cols[i].name);
			as_buf_printf(&b, " = ?%zu", i + 1);
		}
		rc2 = as_sq_prepare(s, as_buf_cstr(&b), &r->look_stage, err);
	}
	if (!rc2)
		rc2 = as_sq_prepare(
			s,
			"UPDATE atomsync_state SET checkpoint = ?2, "
			"stage_seen = ?3, stage_rejected = ?4 "
			"WHERE dataset = ?1",
			&r->save, err);
	as_buf_free(&b);
	return rc2;
}

/* The spans table of a staging (store.h, AS_ROW_SPAN): first and last
 * key of each span, and its count of rows. */
static char *spans_create_sql(const as_table *t, const char *stage)
{
	as_buf b = AS_BUF_INIT;
	char *name = as_sprintf("%s_spans", stage);

	if (!name)
		return NULL;
	as_buf_adds(&b, "CREATE TABLE IF NOT EXISTS ");
	as_buf_add_ident(&b, name);
	free(name);
	as_buf_adds(&b, " (");
	for (size_t i = 0; i < t->nkey; i++)
		as_buf_printf(&b, "lo%zu, ", i + 1);
	for (size_t i = 0; i < t->nkey; i++)
		as_buf_printf(&b, "hi%zu, ", i + 1);
	as_buf_adds(&b, "n INTEGER NOT NULL)");
	return as_buf_detach(&b);
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
	int64_t n = 0;

	if (as_sq_table_exists(s, t->table, &r->live_exists, err))
		return err->code;
	if (r->live_exists) {
		size_t nuser = t->ncols;

		if (t->infer ? as_sq_adopt_table(s, t, t->table, 0, &nuser, err)
			     : as_sq_check_table(s, t, t->table, err))
			return err->code;
		r->live_ncols = nuser;
		as_buf b = AS_BUF_INIT;
		as_buf_printf(&b, "SELECT EXISTS (SELECT 1 FROM %s)",
			      r->live_q);
		int rc2 = as_sq_query_int(s, as_buf_cstr(&b), NULL, &n, err);
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
		if (!t->nfront)
			t->nfront = t->ncols;
		if (as_sq_txn(s, "BEGIN IMMEDIATE",
			      "creating the staging table", err))
			return err->code;
		if (as_sq_fence(s, NULL, as_table_lease(t), rc->token,
				rc->lease_ttl_ms, err))
			goto fail;
		sql = as_sq_create_sql(t, name);
		if (as_sq_exec(s, sql, err))
			goto fail;
		free(sql);
		sql = spans_create_sql(t, name);
		if (as_sq_exec(s, sql, err))
			goto fail;
		if (as_sq_prepare(
			    s,
			    "UPDATE atomsync_state SET stage_table = ?2, "
			    "stage_run = ?3, stage_last_run = ?3, "
			    "stage_base = published_run, stage_fingerprint = ?4, "
			    "stage_key = ?5, checkpoint = NULL, stage_seen = 0, "
			    "stage_rejected = 0, table_name = ?6, mode = ?7 "
			    "WHERE dataset = ?1 RETURNING stage_base",
			    &q, err))
			goto fail;
		sqlite3_bind_text(q, 1, t->dataset, -1, SQLITE_STATIC);
		sqlite3_bind_text(q, 2, name, -1, SQLITE_STATIC);
		sqlite3_bind_int64(q, 3, rc->run_id);
		sqlite3_bind_text(q, 4, t->fingerprint, -1, SQLITE_STATIC);
		sqlite3_bind_text(q, 5, key, -1, SQLITE_STATIC);
		sqlite3_bind_text(q, 6, t->table, -1, SQLITE_STATIC);
		sqlite3_bind_text(q, 7, as_mode_name(t->mode), -1,
				  SQLITE_STATIC);
		if (sqlite3_step(q) != SQLITE_ROW) {
			as_sq_fail(s, err, "recording staging");
			goto fail;
		}
		r->stage_base = sqlite3_column_int64(q, 0);
		sqlite3_finalize(q);
		q = NULL;
		if (as_sq_txn(s, "COMMIT", "creating the staging table", err))
			goto fail;
		free(sql);
		if (as_sq_stage_names(r, name))
			return as_error_set(err, AS_ENOMEM, "out of memory");
	} else if (t->infer) {
		size_t nuser;

		if (as_sq_adopt_table(s, t, r->stage, 1, &nuser, err))
			return err->code;
	} else if (as_sq_check_table(s, t, r->stage, err)) {
		return err->code;
	}
	return prepare_statements(s, rc, err);
fail:
	free(sql);
	sqlite3_finalize(q);
	as_sq_rollback(s);
	return err->code;
}

static int sq_stage_discard(as_store *st, as_run_ctx *rc, as_error *err)
{
	sq_store *s = (sq_store *)st;
	sq_run *r = rc->priv;
	sqlite3_stmt *q = NULL;

	if (as_sq_txn(s, "BEGIN IMMEDIATE", "discarding the staging", err))
		return err->code;
	if (as_sq_fence(s, NULL, as_table_lease(rc->table), rc->token,
			rc->lease_ttl_ms, err))
		goto fail;
	if (r->stage && as_sq_drop_stage(s, r->stage, err))
		goto fail;
	if (as_sq_prepare(
		    s,
		    "UPDATE atomsync_state SET stage_table = NULL, "
		    "stage_run = NULL, stage_last_run = NULL, stage_base = NULL, "
		    "stage_fingerprint = NULL, stage_key = NULL, checkpoint = NULL, "
		    "stage_seen = 0, stage_rejected = 0 WHERE dataset = ?1",
		    &q, err))
		goto fail;
	sqlite3_bind_text(q, 1, rc->table->dataset, -1, SQLITE_STATIC);
	if (sqlite3_step(q) != SQLITE_DONE) {
		as_sq_fail(s, err, "discarding staging");
		goto fail;
	}
	sqlite3_finalize(q);
	q = NULL;
	if (as_sq_prepare(s,
			  "UPDATE atomsync_runs SET resumed_from = NULL "
			  "WHERE run_id = ?1",
			  &q, err))
		goto fail;
	sqlite3_bind_int64(q, 1, rc->run_id);
	if (sqlite3_step(q) != SQLITE_DONE) {
		as_sq_fail(s, err, "discarding staging");
		goto fail;
	}
	sqlite3_finalize(q);
	q = NULL;
	if (as_sq_txn(s, "COMMIT", "discarding the staging", err))
		goto fail;
	as_sq_run_free(st, rc);
	rc->priv = calloc(1, sizeof(sq_run));
	if (!rc->priv)
		return as_error_set(err, AS_ENOMEM, "out of memory");
	((sq_run *)rc->priv)->live_q = as_quote_ident(rc->table->table);
	if (!((sq_run *)rc->priv)->live_q)
		return as_error_set(err, AS_ENOMEM, "out of memory");
	free(rc->checkpoint);
	free(rc->stage_key);
	rc->checkpoint = rc->stage_key = NULL;
	rc->seen = rc->rejected = 0;
	rc->resumed_from = 0;
	return 0;
fail:
	sqlite3_finalize(q);
	as_sq_rollback(s);
	return err->code;
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
	as_buf_printf(&sql,
		      "SELECT %s FROM atomsync_runs %s ORDER BY run_id DESC",
		      RUN_COLS, dataset ? "WHERE dataset = ?1" : "");
	if (limit)
		as_buf_printf(&sql, " LIMIT %zu", limit);
	rc = as_sq_prepare(s, as_buf_cstr(&sql), &q, err);
	as_buf_free(&sql);
	if (rc)
		return rc;
	if (dataset)
		sqlite3_bind_text(q, 1, dataset, -1, SQLITE_STATIC);
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
		return as_sq_fail(s, err, "reading runs");
	return as_sq_run_schema_fill(s, v, cnt, err);
}

static int sq_table_rows(as_store *st, const char *table, int64_t *rows,
			 as_error *err)
{
	sq_store *s = (sq_store *)st;
	as_buf sql = AS_BUF_INIT;
	int exists, rc;

	*rows = -1;
	if (as_sq_table_exists(s, table, &exists, err))
		return err->code;
	if (!exists)
		return 0;
	as_buf_adds(&sql, "SELECT count(*) FROM ");
	as_buf_add_ident(&sql, table);
	rc = as_sq_query_int(s, as_buf_cstr(&sql), NULL, rows, err);
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
	if (as_sq_prepare(
		    s,
		    "SELECT s.dataset, s.table_name, s.mode, s.published_run, "
		    "s.cursor, s.checkpoint IS NOT NULL, l.owner, l.expires_at "
		    "FROM atomsync_state s LEFT JOIN atomsync_leases l "
		    "ON l.dataset = CASE s.mode WHEN 'scoped' THEN '" AS_TABLE_LEASE_PREFIX
		    "' || lower(s.table_name) "
		    "ELSE s.dataset END ORDER BY s.dataset",
		    &q, err))
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
		return as_sq_fail(s, err, "reading status");
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
	.stage_batch = as_sq_stage_batch,
	.scan_open = as_sq_scan_open,
	.scan_next = as_sq_scan_next,
	.scan_seek = as_sq_scan_seek,
	.scan_close = as_sq_scan_close,
	.publish = as_sq_publish,
	.publish_group = as_sq_publish_group,
	.run_end = sq_run_end,
	.run_free = as_sq_run_free,
	.runs_list = sq_runs_list,
	.status = sq_status,
	.table_rows = sq_table_rows,
	.outbox_list = as_sq_outbox_list,
	.outbox_mark = as_sq_outbox_mark,
	.rollback = as_sq_history_rollback,
	.sample = as_sq_history_sample,
	.record_run = as_sq_history_record_run,
};
