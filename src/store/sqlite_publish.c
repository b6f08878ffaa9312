/*
 * The SQLite store's publish: one transaction that checks the lease and
 * the guards, writes only changed rows, deletes what a confirmed-complete
 * run did not deliver, moves the cursor and records the run.
 */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/schema.h"
#include "store/sqlite_int.h"
#include "util/crash.h"
#include "util/log.h"
#include "util/str.h"
#include "util/time.h"

/* ---- the publish (invariants 1, 3, 5, 8, 10) ---- */

static int sql_exec(sq_store *s, as_buf *sql, int64_t *changes, as_error *err)
{
	int rc = as_sq_exec(s, as_buf_cstr(sql), err);

	as_buf_reset(sql);
	if (!rc && changes)
		*changes = sqlite3_changes64(s->db);
	return rc;
}

/* Counts inside the publish transaction (invariant 10). */
static int publish_counts(sq_store *s, as_run_ctx *rc,
			  const as_publish_opts *po, const sq_spans *sp,
			  as_counts *c, int64_t *staged_changed,
			  int64_t *scope_rows, int64_t *guarded_deletes,
			  as_error *err)
{
	as_sql_run sr;
	as_sql q;
	int exists, ret;

	if ((ret = as_sq_table_exists(s, rc->table->table, &exists, err)))
		return ret;
	as_sq_sql(s, &q);
	as_sq_run_view(rc->priv, &sr);
	return as_sql_publish_counts(&q, &sr, rc->table, exists, sp, po, c,
				     staged_changed, scope_rows,
				     guarded_deletes, err);
}

static int publish_apply(sq_store *s, as_run_ctx *rc, const as_counts *c,
			 int64_t C, as_error *err)
{
	as_sql_run sr;
	as_sql q;

	as_sq_sql(s, &q);
	as_sq_run_view(rc->priv, &sr);
	return as_sql_publish_apply(&q, &sr, rc->table, c, C, err);
}

/* rows_q: the table that now holds the run's rows (the staging table, or
 * the live table when the staging was renamed into place). */
/* Invariant 8: the cursor (or a Singer tap's bookmark, its last STATE)
 * moves only here, with the data behind it. */
static int save_cursor(sq_store *s, as_run_ctx *rc, const char *rows_q,
		       as_error *err)
{
	sq_run *r = rc->priv;
	const as_table *t = rc->table;
	sqlite3_stmt *q;
	as_buf b = AS_BUF_INIT;
	int ret = 0;

	if (t->cursor >= 0 && r->stage) {
		as_buf_adds(
			&b,
			"UPDATE atomsync_state SET cursor = (SELECT max(v) FROM "
			"(SELECT cursor AS v FROM atomsync_state WHERE dataset = ?1 "
			"UNION ALL SELECT max(");
		as_buf_add_ident(&b, t->cols[t->cursor].name);
		as_buf_printf(&b, ") FROM %s)) WHERE dataset = ?1", rows_q);
	} else if (t->cursor < 0 && rc->bookmark) {
		as_buf_adds(&b, "UPDATE atomsync_state SET cursor = ?2 "
				"WHERE dataset = ?1");
	} else {
		return 0;
	}
	ret = as_sq_prepare(s, as_buf_cstr(&b), &q, err);
	as_buf_free(&b);
	if (ret)
		return ret;
	sqlite3_bind_text(q, 1, t->dataset, -1, SQLITE_STATIC);
	if (t->cursor < 0)
		sqlite3_bind_text(q, 2, rc->bookmark, -1, SQLITE_STATIC);
	if (sqlite3_step(q) != SQLITE_DONE)
		ret = as_sq_fail(s, err,
				 t->cursor < 0 ? "saving the STATE bookmark"
					       : "saving cursor");
	sqlite3_finalize(q);
	return ret;
}

/* The state row: this run is the published one, no staging waits. */
static int save_state(sq_store *s, as_run_ctx *rc, as_error *err)
{
	const as_table *t = rc->table;
	sqlite3_stmt *q;
	int ret = 0;

	if ((ret = as_sq_prepare(
		     s,
		     "UPDATE atomsync_state SET published_run = ?2, "
		     "table_name = ?3, mode = ?4, stage_table = NULL, "
		     "stage_run = NULL, stage_last_run = NULL, stage_base = NULL, "
		     "stage_fingerprint = NULL, stage_key = NULL, checkpoint = NULL, "
		     "stage_seen = 0, stage_rejected = 0 WHERE dataset = ?1",
		     &q, err)))
		return ret;
	sqlite3_bind_text(q, 1, t->dataset, -1, SQLITE_STATIC);
	sqlite3_bind_int64(q, 2, rc->run_id);
	sqlite3_bind_text(q, 3, t->table, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 4, as_mode_name(t->mode), -1, SQLITE_STATIC);
	if (sqlite3_step(q) != SQLITE_DONE)
		ret = as_sq_fail(s, err, "saving state");
	sqlite3_finalize(q);
	return ret;
}

/* The run's record: completed, with its counts. */
static int record_completed(sq_store *s, as_run_ctx *rc, const as_counts *c,
			    as_error *err)
{
	sqlite3_stmt *q;
	char now[40];
	int ret;

	if ((ret = as_sq_prepare(
		     s,
		     "UPDATE atomsync_runs SET status = 'completed', "
		     "finished_at = ?2, seen = ?3, inserted = ?4, updated = ?5, "
		     "unchanged = ?6, deleted = ?7, rejected = ?8, "
		     "duplicates = ?9, error = NULL WHERE run_id = ?1",
		     &q, err)))
		return ret;
	sqlite3_bind_int64(q, 1, rc->run_id);
	sqlite3_bind_text(q, 2, as_iso8601(as_now(), now, sizeof(now)), -1,
			  SQLITE_STATIC);
	as_sq_bind_counts(q, 3, c);
	sqlite3_bind_int64(q, 8, c->rejected);
	sqlite3_bind_int64(q, 9, c->duplicates);
	if (sqlite3_step(q) != SQLITE_DONE)
		ret = as_sq_fail(s, err, "recording run");
	sqlite3_finalize(q);
	return ret;
}

static int publish_bookkeeping(sq_store *s, as_run_ctx *rc, const as_counts *c,
			       const char *rows_q, as_error *err)
{
	int ret;

	if ((ret = save_cursor(s, rc, rows_q, err)) ||
	    (ret = save_state(s, rc, err)))
		return ret;
	return record_completed(s, rc, c, err);
}

static int mark_publishing(sq_store *s, as_run_ctx *rc, as_error *err)
{
	sqlite3_stmt *q = NULL;
	int ret;

	if (as_sq_txn(s, "BEGIN IMMEDIATE", "marking the run publishing", err))
		return err->code;
	if ((ret = as_sq_fence(s, NULL, as_table_lease(rc->table), rc->token,
			       rc->lease_ttl_ms, err)))
		goto done;
	if ((ret = as_sq_prepare(
		     s,
		     "UPDATE atomsync_runs SET status = 'publishing' "
		     "WHERE run_id = ?1",
		     &q, err)))
		goto done;
	sqlite3_bind_int64(q, 1, rc->run_id);
	if (sqlite3_step(q) != SQLITE_DONE)
		ret = as_sq_fail(s, err, "marking run publishing");
	sqlite3_finalize(q);
	q = NULL;
	if (!ret)
		ret = as_sq_txn(s, "COMMIT", "marking the run publishing", err);
done:
	if (ret)
		as_sq_rollback(s);
	return ret;
}

/* Invariants 1, 2: the columns this run found join the live table inside
 * the publish transaction (ALTER TABLE is transactional in SQLite), in the
 * order the staging has them, so both keep one layout.  A widened column
 * keeps its INTEGER declaration (it holds reals as they are); the publish
 * records it as real in atomsync_columns. */
static int alter_live(sq_store *s, as_run_ctx *rc, as_error *err)
{
	sq_run *r = rc->priv;
	const as_table *t = rc->table;
	as_buf b = AS_BUF_INIT;
	int ret = 0;

	for (size_t i = r->live_ncols; !ret && i < t->ncols; i++) {
		if (as_schema_alter_sql(&b, r->live_q, &t->cols[i],
					as_sq_col_type(&t->cols[i]), 0))
			ret = as_error_set(err, AS_ENOMEM, "out of memory");
		else
			ret = sql_exec(s, &b, NULL, err);
	}
	as_buf_free(&b);
	if (!ret && r->live_ncols < t->ncols)
		as_crash_point("publish.altered");
	return ret;
}

/* atomsync_columns: the inferred columns of a table with their type and
 * the run that added (or widened) them, for `runs` and the next run. */
static int record_columns(sq_store *s, as_run_ctx *rc, as_error *err)
{
	const as_table *t = rc->table;
	sqlite3_stmt *q = NULL;
	int ret;

	if ((ret = as_sq_exec(s,
			      "CREATE TABLE IF NOT EXISTS atomsync_columns("
			      " table_name TEXT NOT NULL, col TEXT NOT NULL,"
			      " type TEXT NOT NULL, added_run INTEGER,"
			      " widened_run INTEGER, field TEXT,"
			      " PRIMARY KEY (table_name, col))",
			      err)) ||
	    (ret = as_sq_prepare(
		     s,
		     "INSERT INTO atomsync_columns VALUES(?1, ?2, ?3, ?4, ?5, ?6) "
		     "ON CONFLICT (table_name, col) DO UPDATE SET "
		     "type = excluded.type, widened_run = excluded.widened_run",
		     &q, err)))
		return ret;
	for (size_t i = 0; !ret && i < t->ncols; i++) {
		const as_col *c = &t->cols[i];

		if (!(c->flags & (AS_COL_NEW | AS_COL_WIDENED)))
			continue;
		sqlite3_bind_text(q, 1, t->table, -1, SQLITE_STATIC);
		sqlite3_bind_text(q, 2, c->name, -1, SQLITE_STATIC);
		sqlite3_bind_text(q, 3, as_type_name(c->type), -1,
				  SQLITE_STATIC);
		sqlite3_bind_int64(q, 4, rc->run_id);
		if (c->flags & AS_COL_WIDENED)
			sqlite3_bind_int64(q, 5, rc->run_id);
		else
			sqlite3_bind_null(q, 5);
		as_sq_bind_text(q, 6, c->path);
		if (sqlite3_step(q) != SQLITE_DONE)
			ret = as_sq_fail(s, err, "recording columns");
		sqlite3_reset(q);
	}
	sqlite3_finalize(q);
	q = NULL;
	if (!ret)
		ret = as_sq_exec(
			s,
			"CREATE TABLE IF NOT EXISTS atomsync_run_schema("
			" run_id INTEGER PRIMARY KEY,"
			" columns_added TEXT, columns_widened TEXT,"
			" discarded_values INTEGER NOT NULL DEFAULT 0,"
			" discarded_rows INTEGER NOT NULL DEFAULT 0)",
			err);
	if (!ret)
		ret = as_sq_prepare(
			s,
			"INSERT OR REPLACE INTO atomsync_run_schema "
			"VALUES(?1, ?2, ?3, ?4, ?5)",
			&q, err);
	if (!ret) {
		char *added = as_schema_cols_json(t, AS_COL_NEW);
		char *wide = as_schema_cols_json(t, AS_COL_WIDENED);

		sqlite3_bind_int64(q, 1, rc->run_id);
		as_sq_bind_text(q, 2, added);
		as_sq_bind_text(q, 3, wide);
		sqlite3_bind_int64(q, 4, rc->discarded_values);
		sqlite3_bind_int64(q, 5, rc->discarded_rows);
		if (!added || !wide)
			ret = as_error_set(err, AS_ENOMEM, "out of memory");
		else if (sqlite3_step(q) != SQLITE_DONE)
			ret = as_sq_fail(s, err, "recording columns");
		free(added);
		free(wide);
	}
	sqlite3_finalize(q);
	return ret;
}

/* runs: the columns each run added and widened, and what it discarded. */
int as_sq_run_schema_fill(sq_store *s, as_run_info *v, size_t n, as_error *err)
{
	sqlite3_stmt *q;
	int exists;

	if (as_sq_table_exists(s, "atomsync_run_schema", &exists, err))
		return err->code;
	if (!exists || !n)
		return 0;
	if (as_sq_prepare(s,
			  "SELECT columns_added, columns_widened, "
			  "discarded_values, discarded_rows FROM "
			  "atomsync_run_schema WHERE run_id = ?1",
			  &q, err))
		return err->code;
	for (size_t i = 0; i < n; i++) {
		sqlite3_bind_int64(q, 1, v[i].run_id);
		if (sqlite3_step(q) == SQLITE_ROW) {
			const char *a = (const char *)sqlite3_column_text(q, 0);
			const char *w = (const char *)sqlite3_column_text(q, 1);

			v[i].columns_added = a ? as_strdup(a) : NULL;
			v[i].columns_widened = w ? as_strdup(w) : NULL;
			v[i].discarded_values = sqlite3_column_int64(q, 2);
			v[i].discarded_rows = sqlite3_column_int64(q, 3);
		}
		sqlite3_reset(q);
	}
	sqlite3_finalize(q);
	return 0;
}

/* The live table exists (the staging renamed to it on the first publish,
 * *renamed), with its recorded columns and its scope index. */
static int ensure_live(sq_store *s, as_run_ctx *rc, const as_counts *c,
		       int *renamed, as_error *err)
{
	sq_run *r = rc->priv;
	const as_table *t = rc->table;
	int exists, ret;

	if ((ret = as_sq_table_exists(s, t->table, &exists, err)))
		return ret;
	if (!exists && c->unchanged == 0) {
		/* The first publish: the staging table has the live
		 * table's exact schema and holds every row, so it
		 * becomes the live table instead of being copied. */
		as_buf b = AS_BUF_INIT;

		as_buf_printf(
			&b,
			"DROP TABLE IF EXISTS %s; ALTER TABLE %s RENAME TO %s",
			r->spans_q, r->stage_q, r->live_q);
		ret = sql_exec(s, &b, NULL, err);
		as_buf_free(&b);
		*renamed = 1;
	} else {
		char *sql = as_sq_create_sql(t, t->table);

		ret = as_sq_exec(s, sql, err);
		free(sql);
	}
	if (!ret && t->infer)
		ret = record_columns(s, rc, err);
	if (!ret && t->nscope) {
		as_buf b = AS_BUF_INIT;

		as_sql_add_scope_index(&b, t, r->live_q);
		ret = sql_exec(s, &b, NULL, err);
		as_buf_free(&b);
	}
	return ret;
}

/*
 * What one run's publish does inside the publish transaction (BEGIN done,
 * COMMIT after): fence, base, guards, outbox, apply, history, bookkeeping.
 * *renamed: the staging became the live table (nothing to drop after).
 */
static int publish_in_txn(sq_store *s, as_run_ctx *rc,
			  const as_publish_opts *po, as_counts *c, int *renamed,
			  as_error *err)
{
	sq_run *r = rc->priv;
	const as_table *t = rc->table;
	int64_t C = 0, scope_rows = 0, guarded = 0;
	sq_spans sp;
	as_sql q;
	int ret;

	*renamed = 0;
	as_sq_sql(s, &q);
	/* the lease, and the live state the staging was built on */
	if ((ret = as_sql_publish_fence(&q, rc, r->stage, r->stage_base,
					err)) ||
	    (r->live_exists && t->infer && (ret = alter_live(s, rc, err))) ||
	    (ret = as_sq_spans_resolve(s, rc, &sp, err)) ||
	    (ret = publish_counts(s, rc, po, &sp, c, &C, &scope_rows, &guarded,
				  err)))
		return ret;
	if ((ret = as_sql_publish_guards(t, po, c, scope_rows, guarded, err)))
		return ret;
	/* Invariant 7: the outbox events, from the live rows before they
	 * change. */
	if ((ret = as_sq_outbox_publish(s, rc, c, err)))
		return ret;
	if (r->stage && (ret = ensure_live(s, rc, c, renamed, err)))
		return ret;
	/* History (store/sqlite_history.c): SCD2 triggers before the live
	 * table changes, the snapshot or new versions after. */
	if ((ret = as_sq_history_begin(s, rc, po, c, r->live_q, err)) ||
	    (ret = publish_apply(s, rc, c, *renamed ? 0 : C, err)) ||
	    (ret = as_sq_history_end(s, rc, po, r->live_q, err)) ||
	    (ret = publish_bookkeeping(s, rc, c,
				       *renamed ? r->live_q : r->stage_q, err)))
		return ret;
	c->live_after = c->live_before + c->inserted - c->deleted;
	return 0;
}

/* COMMIT of a publish; a failed sync is named as such. */
static int publish_commit(sq_store *s, as_error *err)
{
	int ret = as_sq_txn(s, "COMMIT", "committing the publish", err);

	/* Only the sync failed: every WAL frame, the commit record too, may
	 * be on disk, and recovery would then keep the publish
	 * (tests/reliability saw it).  Say so. */
	if (ret && err->native == SQLITE_IOERR_FSYNC) {
		size_t n = strlen(err->msg);

		snprintf(err->msg + n, sizeof(err->msg) - n,
			 "; the publish may "
			 "still be found committed once the disk recovers "
			 "(`atomsync runs` shows the outcome)");
	}
	return ret;
}

static int drop_stage(void *conn, const char *stage, as_error *err)
{
	return as_sq_drop_stage(conn, stage, err);
}

/* After the commit: each run's staging, unless it became the live table
 * (renamed[i]). */
static void drop_stages_after(sq_store *s, as_run_ctx *const *rcs,
			      const int *renamed, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const sq_run *r = rcs[i]->priv;

		as_sql_drop_stage_after(s, drop_stage,
					renamed[i] ? NULL : r->stage);
	}
}

/*
 * The publish: one transaction that checks the lease and the guards, writes
 * only changed rows, deletes what a confirmed-complete run did not deliver,
 * moves the cursor and records the run.  Any failure rolls all of it back.
 */
int as_sq_publish(as_store *st, as_run_ctx *rc, const as_publish_opts *po,
		  as_counts *c, as_error *err)
{
	sq_store *s = (sq_store *)st;
	int ret, renamed = 0;

	as_sql_counts_start(c, rc);
	if ((ret = mark_publishing(s, rc, err)))
		return ret;
	as_crash_point("publish.marked");
	as_sq_exec(s, "PRAGMA synchronous=FULL", NULL);
	if ((ret = as_sq_txn(s, "BEGIN IMMEDIATE", "beginning the publish",
			     err)))
		goto out;
	as_crash_point("publish.begin");
	if ((ret = publish_in_txn(s, rc, po, c, &renamed, err)))
		goto fail;
	as_crash_point("publish.before_commit");
	if ((ret = publish_commit(s, err)))
		goto fail;
	as_crash_point("publish.committed");
	as_sq_exec(s, "PRAGMA synchronous=NORMAL", NULL);
	drop_stages_after(s, &rc, &renamed, 1);
	return 0;
fail:
	as_sq_rollback(s);
out:
	as_sq_exec(s, "PRAGMA synchronous=NORMAL", NULL);
	return ret;
}

/*
 * The runs of one group (the streams of one Singer input) published in ONE
 * transaction on st's connection (invariant 1 across tables): each run is
 * marked publishing on its own connection (stores[i]), then one BEGIN, each
 * run's publish in turn, one COMMIT.  A run refused or failing rolls back
 * the whole group; *bad is its index.  Every run staged and committed its
 * staging before, so this connection sees it.
 */
int as_sq_publish_group(as_store *st, as_store *const *stores,
			as_run_ctx *const *rcs, const as_publish_opts *pos,
			as_counts *cs, size_t n, size_t *bad, as_error *err)
{
	sq_store *s = (sq_store *)st;
	int *renamed;
	int ret = 0;
	size_t i;

	*bad = 0;
	if (!n)
		return 0;
	renamed = calloc(n, sizeof(int));
	if (!renamed)
		return as_error_set(err, AS_ENOMEM, "out of memory");
	for (i = 0; i < n; i++) {
		as_sql_counts_start(&cs[i], rcs[i]);
		if ((ret = mark_publishing((sq_store *)stores[i], rcs[i],
					   err))) {
			*bad = i;
			free(renamed);
			return ret;
		}
	}
	as_crash_point("publish.group_marked");
	as_sq_exec(s, "PRAGMA synchronous=FULL", NULL);
	if ((ret = as_sq_txn(s, "BEGIN IMMEDIATE",
			     "beginning the group publish", err)))
		goto out;
	as_crash_point("publish.group_begin");
	for (i = 0; i < n; i++) {
		if (i)
			as_crash_point("publish.group_between");
		if ((ret = publish_in_txn(s, rcs[i], &pos[i], &cs[i],
					  &renamed[i], err))) {
			*bad = i;
			goto fail;
		}
	}
	as_crash_point("publish.group_before_commit");
	if ((ret = publish_commit(s, err))) {
		*bad = n ? n - 1 : 0;
		goto fail;
	}
	as_crash_point("publish.group_committed");
	as_sq_exec(s, "PRAGMA synchronous=NORMAL", NULL);
	drop_stages_after(s, rcs, renamed, n);
	free(renamed);
	return 0;
fail:
	as_sq_rollback(s);
out:
	as_sq_exec(s, "PRAGMA synchronous=NORMAL", NULL);
	free(renamed);
	return ret;
}
