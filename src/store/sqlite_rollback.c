/*
 * The SQLite store's rollback (DESIGN.md, history): one fenced transaction
 * restores the live table to its content after a run, from
 * <table>_history, recorded as a run of its own with its outbox events.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/sqlite_int.h"
#include "util/crash.h"
#include "util/str.h"
#include "util/time.h"

/* ---- rollback ---- */

/* Why the history cannot restore run n, or 0 when it can. */
static int check_target(sq_store *s, as_run_ctx *rc, const as_hist *h,
			int64_t n, as_error *err)
{
	const as_table *t = rc->table;
	sqlite3_stmt *q;
	char kind[16] = "", status[16] = "";
	as_hist_meta m;
	int rc2, exists, ret;

	if (as_sq_prepare(
		    s,
		    "SELECT kind, status FROM atomsync_runs WHERE run_id = ?1 "
		    "AND dataset = ?2",
		    &q, err))
		return err->code;
	sqlite3_bind_int64(q, 1, n);
	sqlite3_bind_text(q, 2, t->dataset, -1, SQLITE_TRANSIENT);
	rc2 = sqlite3_step(q);
	if (rc2 == SQLITE_ROW) {
		snprintf(kind, sizeof(kind), "%s", sqlite3_column_text(q, 0));
		snprintf(status, sizeof(status), "%s",
			 sqlite3_column_text(q, 1));
	}
	sqlite3_finalize(q);
	if (rc2 != SQLITE_ROW && rc2 != SQLITE_DONE)
		return as_sq_fail(s, err, "reading runs");
	if ((ret = as_hist_check_run(t, n, rc2 == SQLITE_ROW, kind, status,
				     err)) ||
	    (ret = as_sq_hist_meta_read(s, t->dataset, &m, err)))
		return ret;
	if (!(ret = as_sq_table_exists(s, h->name, &exists, err)))
		ret = as_hist_check_meta(t, h, n, &m, exists, err);
	free(m.columns);
	return ret;
}

/*
 * The dataset's state after the rollback: its published run is the
 * rollback (later staging begins from it), the staging of an interrupted
 * run is dropped (its base is gone), and an incremental cursor is the
 * restored rows' maximum (invariant 8: the cursor goes with the data).
 */
static int rollback_state(sq_store *s, as_run_ctx *rc, as_error *err)
{
	const as_table *t = rc->table;
	sq_run *r = rc->priv;
	as_buf b = AS_BUF_INIT;
	sqlite3_stmt *q = NULL;
	char *stage = NULL;
	int ret = 0;

	if (as_sq_prepare(
		    s,
		    "SELECT stage_table FROM atomsync_state WHERE dataset = ?1",
		    &q, err))
		return err->code;
	sqlite3_bind_text(q, 1, t->dataset, -1, SQLITE_TRANSIENT);
	if (sqlite3_step(q) == SQLITE_ROW)
		stage = as_strdup((const char *)sqlite3_column_text(q, 0));
	sqlite3_finalize(q);
	q = NULL;
	if (stage && (ret = as_sq_drop_stage(s, stage, err)))
		goto done;
	as_buf_adds(
		&b,
		"UPDATE atomsync_state SET published_run = ?2, stage_table = NULL, "
		"stage_run = NULL, stage_last_run = NULL, stage_base = NULL, "
		"stage_fingerprint = NULL, stage_key = NULL, checkpoint = NULL, "
		"stage_seen = 0, stage_rejected = 0");
	if (t->cursor >= 0) {
		as_buf_adds(&b, ", cursor = (SELECT max(");
		as_buf_add_ident(&b, t->cols[t->cursor].name);
		as_buf_printf(&b, ") FROM main.%s)", r->live_q);
	} else {
		/* A Singer bookmark (the STATE of the newest publish) would
		 * be ahead of the restored rows: dropped, so the next run
		 * extracts from the start (invariant 8). */
		as_buf_adds(&b, ", cursor = NULL");
	}
	as_buf_adds(&b, " WHERE dataset = ?1");
	if ((ret = as_sq_prepare(s, as_buf_cstr(&b), &q, err)))
		goto done;
	sqlite3_bind_text(q, 1, t->dataset, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(q, 2, rc->run_id);
	if (sqlite3_step(q) != SQLITE_DONE)
		ret = as_sq_fail(s, err, "saving state");
	else if (sqlite3_changes(s->db) != 1)
		ret = as_error_set(err, AS_EUSAGE,
				   "dataset %s has never been "
				   "published; nothing to roll back",
				   t->dataset);
done:
	sqlite3_finalize(q);
	free(stage);
	as_buf_free(&b);
	return ret;
}

/* The rollback's own run record, put on record (active) in its transaction
 * and completed there: a rollback that does not commit leaves none. */
static int run_open(sq_store *s, as_run_ctx *rc, as_error *err)
{
	const as_table *t = rc->table;
	sqlite3_stmt *q = NULL;
	char now[40];

	as_iso8601(as_now(), now, sizeof(now));
	/* Runs left active by dead workers: this worker holds the lease. */
	if (as_sq_fail_interrupted(s, t, now, err))
		return err->code;
	if (as_sq_prepare(
		    s,
		    "INSERT INTO atomsync_runs(dataset, kind, mode, status, "
		    "started_at, lease_token, owner) VALUES(?1, ?2, ?3, "
		    "'publishing', ?4, ?5, ?6)",
		    &q, err))
		return err->code;
	sqlite3_bind_text(q, 1, t->dataset, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(q, 2, rc->kind ? rc->kind : "rollback", -1,
			  SQLITE_TRANSIENT);
	sqlite3_bind_text(q, 3, as_mode_name(t->mode), -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 4, now, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(q, 5, rc->token);
	sqlite3_bind_text(q, 6, rc->owner, -1, SQLITE_TRANSIENT);
	if (sqlite3_step(q) != SQLITE_DONE)
		goto fail;
	sqlite3_finalize(q);
	rc->run_id = sqlite3_last_insert_rowid(s->db);
	return 0;
fail:
	sqlite3_finalize(q);
	return as_sq_fail(s, err, "recording run");
}

static int run_close(sq_store *s, as_run_ctx *rc, const as_counts *c,
		     int64_t to_run, as_error *err)
{
	sqlite3_stmt *q = NULL;
	char now[40], note[96];
	int ret = 0;

	snprintf(note, sizeof(note),
		 "restored the table to its state after run %lld",
		 (long long)to_run);
	if (as_sq_prepare(
		    s,
		    "UPDATE atomsync_runs SET status = 'completed', "
		    "finished_at = ?2, seen = ?3, inserted = ?4, updated = ?5, "
		    "unchanged = ?6, deleted = ?7, error = ?8 WHERE run_id = ?1",
		    &q, err))
		return err->code;
	sqlite3_bind_int64(q, 1, rc->run_id);
	sqlite3_bind_text(q, 2, as_iso8601(as_now(), now, sizeof(now)), -1,
			  SQLITE_TRANSIENT);
	as_sq_bind_counts(q, 3, c);
	sqlite3_bind_text(q, 8, note, -1, SQLITE_TRANSIENT);
	if (sqlite3_step(q) != SQLITE_DONE)
		ret = as_sq_fail(s, err, "recording run");
	sqlite3_finalize(q);
	return ret;
}

/*
 * `atomsync rollback DATASET --to-run N`: one fenced transaction that
 * checks the history can restore run N, records the rollback as a run,
 * rewrites exactly the rows that differ from N's state (their history and
 * outbox events with them), and makes it the dataset's published run.
 */
int as_sq_history_rollback(as_store *st, as_run_ctx *rc,
			   const as_publish_opts *po, int64_t to_run,
			   as_counts *c, as_error *err)
{
	sq_store *s = (sq_store *)st;
	as_table *t = rc->table;
	sq_run *r = calloc(1, sizeof(*r));
	int ret, exists;
	as_hist h;
	as_sql q;

	memset(c, 0, sizeof(*c));
	memset(&h, 0, sizeof(h));
	as_sq_sql(s, &q);
	if (!r || !(r->live_q = as_quote_ident(t->table))) {
		free(r);
		return as_error_set(err, AS_ENOMEM, "out of memory");
	}
	rc->priv = r;
	if ((ret = as_hist_build(&h, t, po, err)))
		goto out;
	as_sq_exec(s, "PRAGMA synchronous=FULL", NULL);
	if ((ret = as_sq_exec(s, "BEGIN IMMEDIATE", err)))
		goto out;
	if ((ret = as_sq_fence(s, NULL, as_table_lease(t), rc->token,
			       rc->lease_ttl_ms, err)) ||
	    (ret = check_target(s, rc, &h, to_run, err)) ||
	    (ret = as_sql_hist_fit(&q, &h, t, err)))
		goto fail;
	if ((ret = as_sq_table_exists(s, t->table, &exists, err)) ||
	    (exists && (ret = as_sq_check_table(s, t, t->table, err))))
		goto fail;
	for (size_t i = 0; i < t->ncols; i++)
		if (t->cols[i].type == AS_TYPE_AUTO)
			t->cols[i].type = AS_TYPE_TEXT;
	if (!exists) {
		char *sql = as_sq_create_sql(t, t->table);

		ret = as_sq_exec(s, sql, err);
		free(sql);
	}
	if (ret || (ret = run_open(s, rc, err)) ||
	    (ret = as_sql_rollback_target(&q, r->live_q, t, &h, to_run,
					  rc->run_id, err)) ||
	    /* counts relative to the live table (invariant 10), the changed
	     * rows for the outbox (invariant 7) before it changes */
	    (ret = as_sql_rollback_counts(&q, r->live_q, t, c, err)) ||
	    (ret = as_sql_rollback_changed(&q, r->live_q, rc, err)) ||
	    (ret = as_sq_history_begin(s, rc, po, c, r->live_q, err)) ||
	    (ret = as_sql_rollback_apply(&q, r->live_q, t, c, err)) ||
	    (ret = as_sq_history_end(s, rc, po, r->live_q, err)) ||
	    (ret = as_sql_outbox_write(&q, rc, err)) ||
	    (ret = rollback_state(s, rc, err)) ||
	    (ret = run_close(s, rc, c, to_run, err)) ||
	    (ret = as_sq_exec(s,
			      "DROP TABLE temp._atomsync_target; "
			      "DROP TABLE IF EXISTS temp._atomsync_changed",
			      err)))
		goto fail;
	as_crash_point("rollback.before_commit");
	if ((ret = as_sq_exec(s, "COMMIT", err)))
		goto fail;
	as_crash_point("rollback.committed");
	goto out;
fail:
	as_sq_rollback(s);
	rc->run_id = 0;
out:
	as_sq_exec(s, "PRAGMA synchronous=NORMAL", NULL);
	as_hist_free(&h);
	as_sq_run_free(st, rc);
	return ret;
}
