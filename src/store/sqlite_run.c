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

int as_sq_fail_interrupted(sq_store *s, const as_table *t, const char *now,
			   as_error *err)
{
	sqlite3_stmt *q;
	int rc = 0;

	if (as_sq_prepare(
		    s,
		    "UPDATE atomsync_runs SET status = 'failed', "
		    "finished_at = ?2, error = '" AS_SQL_INTERRUPTED "' "
		    "WHERE dataset = ?1 AND status IN ('active', 'publishing')",
		    &q, err))
		return err->code;
	sqlite3_bind_text(q, 1, t->dataset, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 2, now, -1, SQLITE_STATIC);
	if (sqlite3_step(q) != SQLITE_DONE)
		rc = as_sq_fail(s, err, "recording interrupted runs");
	sqlite3_finalize(q);
	return rc;
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

/* The run starts over: the staging of *stage (if any) is dropped and the
 * state row forgets it. */
static int start_over(sq_store *s, as_run_ctx *rc, char **stage, as_error *err)
{
	free(rc->checkpoint);
	free(rc->stage_key);
	rc->checkpoint = rc->stage_key = NULL;
	rc->seen = rc->rejected = 0;
	if (*stage && as_sq_drop_stage(s, *stage, err))
		return err->code;
	if (exec_dataset(s,
			 "UPDATE atomsync_state SET stage_table = NULL, "
			 "stage_run = NULL, stage_last_run = NULL, "
			 "stage_base = NULL, stage_fingerprint = NULL, "
			 "stage_key = NULL, checkpoint = NULL, stage_seen = 0, "
			 "stage_rejected = 0 WHERE dataset = ?1",
			 rc->table, "clearing staging", err))
		return err->code;
	free(*stage);
	*stage = NULL;
	return 0;
}

/* The run's record (active); rc->run_id. */
static int record_run(sq_store *s, as_run_ctx *rc, const char *now, int resume,
		      int64_t last_run, as_error *err)
{
	const as_table *t = rc->table;
	sqlite3_stmt *q;

	if (as_sq_prepare(
		    s,
		    "INSERT INTO atomsync_runs(dataset, kind, mode, status, "
		    "started_at, resumed_from, lease_token, owner) "
		    "VALUES(?1, ?2, ?3, 'active', ?4, ?5, ?6, ?7)",
		    &q, err))
		return err->code;
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
		sqlite3_finalize(q);
		return err->code;
	}
	sqlite3_finalize(q);
	rc->run_id = sqlite3_last_insert_rowid(s->db);
	rc->resumed_from = resume ? last_run : 0;
	return 0;
}

/* A resumed staging is this run's now. */
static int adopt_stage(sq_store *s, as_run_ctx *rc, const char *stage,
		       as_error *err)
{
	sqlite3_stmt *q;
	int ret = 0;

	if (as_sq_prepare(s,
			  "UPDATE atomsync_state SET stage_last_run = ?2 "
			  "WHERE dataset = ?1",
			  &q, err))
		return err->code;
	sqlite3_bind_text(q, 1, rc->table->dataset, -1, SQLITE_STATIC);
	sqlite3_bind_int64(q, 2, rc->run_id);
	if (sqlite3_step(q) != SQLITE_DONE)
		ret = as_sq_fail(s, err, "adopting staging");
	sqlite3_finalize(q);
	if (!ret && as_sq_stage_names(rc->priv, stage))
		ret = as_error_set(err, AS_ENOMEM, "out of memory");
	return ret;
}

/* The transaction of run_begin: interrupted runs failed, the state row,
 * resume or start over, orphans dropped, the run recorded. */
static int begin_txn(sq_store *s, as_run_ctx *rc, const char *now, char **stage,
		     as_error *err)
{
	as_table *t = rc->table;
	int64_t last_run = 0;
	int resume = 0, exists;

	if (as_sq_fence(s, NULL, as_table_lease(t), rc->token, rc->lease_ttl_ms,
			err) ||
	    as_sq_fail_interrupted(s, t, now, err) || check_owner(s, t, err) ||
	    exec_dataset(
		    s,
		    "INSERT INTO atomsync_state(dataset, table_name, mode) "
		    "VALUES(?1, ?2, ?3) ON CONFLICT(dataset) DO NOTHING",
		    t, "creating state", err) ||
	    read_state(s, rc, stage, &last_run, &resume, err))
		return err->code;
	if (resume &&
	    (as_sq_table_exists(s, *stage, &exists, err) || !exists)) {
		if (err->code)
			return err->code;
		resume = 0;
	}
	if ((!resume && start_over(s, rc, stage, err)) ||
	    drop_orphans(s, err) ||
	    record_run(s, rc, now, resume, last_run, err) ||
	    (resume && adopt_stage(s, rc, *stage, err)))
		return err->code;
	return 0;
}

/*
 * One fenced transaction: mark runs left active by dead workers as failed
 * (invariant 10), put this run on record, and decide whether it continues
 * the interrupted staging (invariant 4) or starts over.
 */
int as_sq_run_begin(as_store *st, as_run_ctx *rc, as_error *err)
{
	sq_store *s = (sq_store *)st;
	sq_run *r = calloc(1, sizeof(*r));
	char *stage = NULL;
	char now[40];

	if (!r)
		return as_error_set(err, AS_ENOMEM, "out of memory");
	rc->priv = r;
	r->live_q = as_quote_ident(rc->table->table);
	if (!r->live_q)
		return as_error_set(err, AS_ENOMEM, "out of memory");
	as_iso8601(as_now(), now, sizeof(now));
	if (as_sq_txn(s, "BEGIN IMMEDIATE", "starting the run", err))
		return err->code;
	if (begin_txn(s, rc, now, &stage, err) ||
	    as_sq_txn(s, "COMMIT", "recording the run", err)) {
		free(stage);
		as_sq_rollback(s);
		return err->code;
	}
	free(stage);
	as_crash_point("run.begun");
	return 0;
}

int as_sq_run_end(as_store *st, as_run_ctx *rc, const char *status,
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
