/*
 * The SQLite store's run records: a run put on record and its staging
 * resumed or started over (run_begin), runs left by dead workers failed,
 * orphaned stagings dropped, and a failed or refused end recorded.
 */
#include <stdlib.h>
#include <string.h>

#include "store/sqlite_int.h"
#include "util/crash.h"
#include "util/str.h"
#include "util/time.h"

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

/* ---- run records ---- */

void as_sq_run_free(as_store *st, as_run_ctx *rc)
{
	sq_run *r = rc->priv;

	(void)st;
	if (!r)
		return;
	{ /* its statements and the names it owns */
		sqlite3_stmt *stmts[] = {r->ins,   r->look_live, r->look_stage,
					 r->fence, r->save,	 r->ins_span};
		char *own[] = {r->live_q, r->stage,   r->stage_q,
			       r->spans,  r->spans_q, r->gone_q};

		for (size_t i = 0; i < 6; i++) {
			sqlite3_finalize(stmts[i]);
			free(own[i]);
		}
	}
	free(r);
	rc->priv = NULL;
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
int as_sq_stage_names(void *run, const char *stage)
{
	sq_run *r = run;
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

/* Run sql with the dataset as ?1 (and its table and mode as ?2 and ?3
 * when it has them), expecting no row; what names it in an error. */
static int exec_dataset(sq_store *s, const char *sql, const as_table *t,
			const char *what, as_error *err)
{
	sqlite3_stmt *q;
	int rc = 0;

	if (as_sq_prepare(s, sql, &q, err))
		return err->code;
	sqlite3_bind_text(q, 1, t->dataset, -1, SQLITE_STATIC);
	if (sqlite3_bind_parameter_count(q) >= 3) {
		sqlite3_bind_text(q, 2, t->table, -1, SQLITE_STATIC);
		sqlite3_bind_text(q, 3, as_mode_name(t->mode), -1,
				  SQLITE_STATIC);
	}
	if (sqlite3_step(q) != SQLITE_DONE)
		rc = as_sq_fail(s, err, what);
	sqlite3_finalize(q);
	return rc;
}

/* What the state row says: the published run, the cursor, and a staging
 * this run resumes (*resume, rc's checkpoint and counts) or drops (*stage
 * set either way). */
static int read_state(sq_store *s, as_run_ctx *rc, char **stage,
		      int64_t *last_run, int *resume, as_error *err)
{
	const as_table *t = rc->table;
	sq_run *r = rc->priv;
	sqlite3_stmt *q;
	int64_t published;
	int ok = 1;

	if (as_sq_prepare(
		    s,
		    "SELECT published_run, cursor, stage_table, "
		    "stage_last_run, stage_base, stage_fingerprint, stage_key, "
		    "checkpoint, stage_seen, stage_rejected "
		    "FROM atomsync_state WHERE dataset = ?1",
		    &q, err))
		return err->code;
	sqlite3_bind_text(q, 1, t->dataset, -1, SQLITE_STATIC);
	if (sqlite3_step(q) != SQLITE_ROW) {
		as_sq_fail(s, err, "reading state");
		sqlite3_finalize(q);
		return err->code;
	}
	published = sqlite3_column_int64(q, 0);
	rc->cursor = col_copy(q, 1, &ok);
	*stage = col_copy(q, 2, &ok);
	*last_run = sqlite3_column_int64(q, 3);
	if (*stage && !rc->restart &&
	    sqlite3_column_type(q, 7) != SQLITE_NULL &&
	    sqlite3_column_int64(q, 4) == published &&
	    as_streq((const char *)sqlite3_column_text(q, 5), t->fingerprint)) {
		*resume = 1;
		rc->stage_key = col_copy(q, 6, &ok);
		rc->checkpoint = col_copy(q, 7, &ok);
		rc->seen = sqlite3_column_int64(q, 8);
		rc->rejected = sqlite3_column_int64(q, 9);
		r->stage_base = published;
	}
	sqlite3_finalize(q);
	/* A cursor or checkpoint read as NULL would start over or refetch
	 * everything: fail instead (invariants 4, 8). */
	if (!ok)
		return as_error_set(err, AS_ENOMEM,
				    "%s: reading state: out of memory",
				    s->path);
	return 0;
}

/* The state row, in run_begin's transaction (as_sql_run_begin): the
 * table is this dataset's, the row exists, and it is read; a staging gone
 * from the file is not resumed. */
static int state(void *conn, as_run_ctx *rc, char **stage, int64_t *last_run,
		 int *resume, as_error *err)
{
	sq_store *s = conn;
	const as_table *t = rc->table;
	int exists;

	if (check_owner(s, t, err) ||
	    exec_dataset(
		    s,
		    "INSERT INTO atomsync_state(dataset, table_name, mode) "
		    "VALUES(?1, ?2, ?3) ON CONFLICT(dataset) DO NOTHING",
		    t, "creating state", err) ||
	    read_state(s, rc, stage, last_run, resume, err))
		return err->code;
	if (*resume &&
	    (as_sq_table_exists(s, *stage, &exists, err) || !exists)) {
		if (err->code)
			return err->code;
		*resume = 0;
	}
	return 0;
}

int as_sq_run_begin(as_store *st, as_run_ctx *rc, as_error *err)
{
	as_sql q;

	as_sq_sql((sq_store *)st, &q);
	return as_sql_run_begin(&q, rc, state, err);
}

int as_sq_run_end(as_store *st, as_run_ctx *rc, const char *status,
		  const char *error, as_error *err)
{
	sq_run *r = rc->priv;
	as_sql q;

	as_sq_sql((sq_store *)st, &q);
	return as_sql_run_end(&q, rc, r ? r->stage : NULL, status, error, err);
}

/* ---- the store's own transactions (store/sql.h, as_sql_txn) ---- */

static int txn_begin(void *conn, const char *what, as_error *err)
{
	return as_sq_txn(conn, "BEGIN IMMEDIATE", what, err);
}

static int txn_commit(void *conn, const char *what, as_error *err)
{
	return as_sq_txn(conn, "COMMIT", what, err);
}

static void txn_rollback(void *conn)
{
	as_sq_rollback(conn);
}

static int txn_fence(void *conn, const char *dataset, int64_t token,
		     int64_t ttl_ms, as_error *err)
{
	return as_sq_fence(conn, NULL, dataset, token, ttl_ms, err);
}

static int drop_stage(void *conn, const char *stage, as_error *err)
{
	return as_sq_drop_stage(conn, stage, err);
}

/* BEGIN IMMEDIATE holds the write lock: rows read need no lock of their
 * own (as_sql_dialect.for_update). */
const as_sql_txn as_sq_txn_ops = {
	txn_begin,	   txn_commit,	   txn_rollback,
	txn_fence,	   as_sq_exec_out, drop_stage,
	as_sq_stage_names, sizeof(sq_run), as_sq_run_free};
