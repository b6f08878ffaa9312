/*
 * The SQLite store: one database file in WAL mode holding the live tables,
 * per-run staging tables and the bookkeeping tables of DESIGN.md.  Staging
 * commits are short fenced transactions carrying their checkpoint; the
 * publish is one fenced transaction.  Readers never block (WAL).
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "store/sqlite_int.h"
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

void as_sq_bind_counts(sqlite3_stmt *st, int i, const as_counts *c)
{
	sqlite3_bind_int64(st, i, c->seen);
	sqlite3_bind_int64(st, i + 1, c->inserted);
	sqlite3_bind_int64(st, i + 2, c->updated);
	sqlite3_bind_int64(st, i + 3, c->unchanged);
	sqlite3_bind_int64(st, i + 4, c->deleted);
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
	as_sql q;

	as_sq_sql((sq_store *)st, &q);
	return as_sql_table_rows(&q, table, rows, err);
}

static int sq_status(as_store *st, as_dataset_status **out, size_t *n,
		     as_error *err)
{
	sq_store *s = (sq_store *)st;
	as_dataset_status *v = NULL;
	size_t cnt = 0;
	sqlite3_stmt *q;
	as_sql sql;
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
	as_sq_sql(s, &sql);
	return as_sql_status_rows(&sql, v, cnt, err);
}

static const as_store_ops sqlite_ops = {.name = "sqlite",
					AS_SQL_STORE_OPS_INIT(sq)};
