/*
 * The rollback's SQL both backends share: <temp>._atomsync_target (the
 * live table's content after the target run, from the history), its counts
 * and the changed rows for the outbox against the live table, before the
 * live table changes; then the change itself, and the whole rollback
 * around them (as_sql_history_rollback).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/sql.h"

#include "util/crash.h"
#include "util/str.h"

int as_sql_rollback_target(const as_sql *q, const char *live_q,
			   const as_table *t, const as_hist *h, int64_t n,
			   int64_t run_id, as_error *err)
{
	const as_sql_dialect *d = q->d;
	const char *integer = d->type(AS_TYPE_INTEGER);
	as_buf b = AS_BUF_INIT;
	int ret;

	as_buf_printf(&b,
		      "DROP TABLE IF EXISTS %s._atomsync_target; CREATE TEMP "
		      "TABLE _atomsync_target (",
		      d->temp);
	for (size_t i = 0; i < t->ncols; i++) {
		as_buf_add_ident(&b, t->cols[i].name);
		as_buf_printf(&b, " %s, ", d->type(t->cols[i].type));
	}
	as_buf_printf(&b,
		      "\"_atomsync_run\" %s, \"_atomsync_hash\" %s, "
		      "\"_atomsync_line\" %s, PRIMARY KEY (",
		      integer, integer, d->blob_type);
	as_sql_key_list(&b, t, NULL);
	as_buf_printf(&b, "))%s", d->temp_suffix);
	if ((ret = as_sql_exec_buf(q, &b, "rollback: target", err)))
		goto done;
	as_buf_printf(&b, "INSERT INTO %s._atomsync_target SELECT ", d->temp);
	for (size_t i = 0; i < t->ncols; i++) {
		as_buf_add_ident(&b, t->cols[i].name);
		as_buf_adds(&b, ", ");
	}
	as_buf_printf(
		&b,
		"NULL, \"_atomsync_hash\", \"_atomsync_line\" FROM %s WHERE ",
		h->q);
	if (h->kind == AS_HISTORY_SCD2)
		as_buf_printf(
			&b,
			"\"valid_from_run\" <= %lld AND (\"valid_to_run\" "
			"IS NULL OR \"valid_to_run\" > %lld)",
			(long long)n, (long long)n);
	else
		as_buf_printf(&b, "\"run_id\" = %lld", (long long)n);
	if ((ret = as_sql_exec_buf(q, &b, "rollback: reading the history",
				   err)))
		goto done;
	if (d->analyze_temp) {
		as_buf_printf(&b, "ANALYZE %s._atomsync_target", d->temp);
		if ((ret = as_sql_exec_buf(q, &b, "rollback: target", err)))
			goto done;
	}
	as_buf_printf(&b,
		      "UPDATE %s._atomsync_target SET \"_atomsync_run\" = %lld "
		      "WHERE NOT EXISTS (SELECT 1 FROM %s%s AS l WHERE ",
		      d->temp, (long long)run_id, d->main, live_q);
	for (size_t i = 0; i < t->ncols; i++) {
		as_buf_adds(&b, i ? " AND l." : "l.");
		as_buf_add_ident(&b, t->cols[i].name);
		as_buf_printf(&b, "%s_atomsync_target.",
			      i < t->nkey ? " = " : d->is_not_distinct);
		as_buf_add_ident(&b, t->cols[i].name);
	}
	/* A row whose stored hash went stale (edited in place) is rewritten. */
	as_buf_printf(&b,
		      " AND l.\"_atomsync_hash\"%s"
		      "_atomsync_target.\"_atomsync_hash\")",
		      d->is_not_distinct);
	ret = as_sql_exec_buf(q, &b, "rollback: comparing", err);
done:
	as_buf_free(&b);
	return ret;
}

int as_sql_rollback_counts(const as_sql *q, const char *live_q,
			   const as_table *t, as_counts *c, as_error *err)
{
	const char *what = "rollback: counting";
	as_buf b = AS_BUF_INIT;
	int64_t sc[2]; /* target rows, changed ones among them */
	int ret;

	as_buf_printf(&b, "SELECT count(*) FROM %s%s", q->d->main, live_q);
	if ((ret = q->query_ints(q->conn, as_buf_cstr(&b), &c->live_before, 1,
				 what, err)))
		goto done;
	as_buf_reset(&b);
	as_buf_printf(&b,
		      "SELECT count(*), count(\"_atomsync_run\") FROM "
		      "%s._atomsync_target",
		      q->d->temp);
	if ((ret = q->query_ints(q->conn, as_buf_cstr(&b), sc, 2, what, err)))
		goto done;
	as_buf_reset(&b);
	as_buf_printf(&b,
		      "SELECT count(*) FROM %s._atomsync_target AS tt WHERE "
		      "\"_atomsync_run\" IS NOT NULL AND NOT EXISTS (SELECT 1 "
		      "FROM %s%s AS l WHERE ",
		      q->d->temp, q->d->main, live_q);
	as_sql_key_match(&b, t, "l", "tt");
	as_buf_adds(&b, ")");
	if ((ret = q->query_ints(q->conn, as_buf_cstr(&b), &c->inserted, 1,
				 what, err)))
		goto done;
	c->seen = sc[0];
	c->updated = sc[1] - c->inserted;
	c->unchanged = sc[0] - sc[1];
	c->deleted = c->live_before - (sc[0] - c->inserted);
	c->live_after = sc[0];
done:
	as_buf_free(&b);
	return ret;
}

int as_sql_rollback_changed(const as_sql *q, const char *live_q,
			    const as_run_ctx *rc, as_error *err)
{
	const as_table *t = rc->table;
	const char *tmp = q->d->temp;
	as_buf b = AS_BUF_INIT, cols = AS_BUF_INIT;
	int before, ret;

	if (!as_outbox_plan_any(rc->outbox))
		return 0;
	before = rc->outbox->before;
	for (size_t i = 0; i < t->ncols; i++) {
		as_buf_adds(&cols, i ? ", " : "");
		as_buf_add_ident(&cols, t->cols[i].name);
	}
	as_buf_printf(&b,
		      "DROP TABLE IF EXISTS %s._atomsync_changed; "
		      "CREATE TEMP TABLE _atomsync_changed%s AS SELECT %s, "
		      "CASE WHEN EXISTS (SELECT 1 FROM %s%s AS l WHERE ",
		      tmp, q->d->temp_suffix, as_buf_cstr(&cols), q->d->main,
		      live_q);
	as_sql_key_match(&b, t, "l", "tt");
	as_buf_printf(&b,
		      ") THEN 'update' ELSE 'insert' END AS \"_atomsync_op\" "
		      "FROM %s._atomsync_target AS tt WHERE \"_atomsync_run\" "
		      "IS NOT NULL UNION ALL SELECT %s, CASE WHEN EXISTS "
		      "(SELECT 1 FROM %s._atomsync_target AS tt WHERE ",
		      tmp, as_buf_cstr(&cols), tmp);
	as_sql_key_match(&b, t, "tt", "l");
	as_buf_printf(&b,
		      ") THEN 'before' ELSE 'delete' END FROM %s%s AS l WHERE "
		      "NOT EXISTS (SELECT 1 FROM %s._atomsync_target AS tt "
		      "WHERE ",
		      q->d->main, live_q, tmp);
	as_sql_key_match(&b, t, "tt", "l");
	/* Without 'before' rows: only live rows whose key is not restored. */
	as_buf_printf(&b, " AND (tt.\"_atomsync_run\" IS NULL%s%s))",
		      before ? "" : " OR ", before ? "" : q->d->true_lit);
	ret = as_sql_exec_buf(q, &b, "rollback: changed rows", err);
	as_buf_free(&b);
	as_buf_free(&cols);
	return ret;
}

int as_sql_rollback_apply(const as_sql *q, const char *live_q,
			  const as_table *t, const as_counts *c, as_error *err)
{
	as_buf b = AS_BUF_INIT;
	int64_t changes = 0;
	int ret = 0;

	if (c->inserted + c->updated > 0) {
		as_buf_printf(&b, "INSERT INTO %s%s(", q->d->main, live_q);
		for (size_t i = 0; i < t->ncols; i++) {
			as_buf_add_ident(&b, t->cols[i].name);
			as_buf_adds(&b, ", ");
		}
		as_buf_printf(&b,
			      "\"_atomsync_run\", \"_atomsync_hash\", "
			      "\"_atomsync_line\") SELECT * FROM "
			      "%s._atomsync_target WHERE \"_atomsync_run\" IS "
			      "NOT NULL",
			      q->d->temp);
		as_sql_add_upsert(&b, t, 1, NULL);
		if ((ret = q->exec_changes(q->conn, as_buf_cstr(&b), &changes,
					   "rollback: upsert", err)))
			goto done;
		if (changes != c->inserted + c->updated) {
			ret = as_error_set(err, AS_ESTORE,
					   "rollback wrote %lld rows, "
					   "expected %lld; nothing changed",
					   (long long)changes,
					   (long long)c->inserted + c->updated);
			goto done;
		}
		as_buf_reset(&b);
	}
	if (c->deleted > 0) {
		as_buf_printf(
			&b,
			"DELETE FROM %s%s WHERE NOT EXISTS (SELECT 1 FROM "
			"%s._atomsync_target AS tt WHERE ",
			q->d->main, live_q, q->d->temp);
		as_sql_key_match(&b, t, "tt", live_q);
		as_buf_adds(&b, ")");
		if ((ret = q->exec_changes(q->conn, as_buf_cstr(&b), &changes,
					   "rollback: delete", err)))
			goto done;
		if (changes != c->deleted) {
			ret = as_error_set(err, AS_ESTORE,
					   "rollback deleted %lld rows, "
					   "expected %lld; nothing changed",
					   (long long)changes,
					   (long long)c->deleted);
			goto done;
		}
	}
	as_crash_point("rollback.applied");
done:
	as_buf_free(&b);
	return ret;
}

/* ---- the whole rollback ---- */

typedef struct target_row {
	char kind[16], status[16];
	int found;
} target_row;

static int target_row_read(void *ud, const char *const *v)
{
	target_row *tr = ud;

	snprintf(tr->kind, sizeof(tr->kind), "%s", v[0] ? v[0] : "");
	snprintf(tr->status, sizeof(tr->status), "%s", v[1] ? v[1] : "");
	tr->found = 1;
	return 0;
}

/* Why the history cannot restore run n, or 0 when it can. */
static int check_target(const as_sql *q, as_run_ctx *rc, const as_hist *h,
			int64_t n, as_error *err)
{
	const as_table *t = rc->table;
	target_row tr = {"", "", 0};
	as_hist_meta m;
	as_buf b = AS_BUF_INIT;
	int exists, ret;

	as_buf_printf(&b,
		      "SELECT kind, status FROM atomsync_runs WHERE run_id = "
		      "%lld AND dataset = ",
		      (long long)n);
	q->d->param(&b, 1, AS_TYPE_TEXT);
	ret = q->query_rows(q->conn, as_buf_cstr(&b), t->dataset, 2,
			    target_row_read, &tr, "reading runs", err);
	as_buf_free(&b);
	if (ret ||
	    (ret = as_hist_check_run(t, n, tr.found, tr.kind, tr.status,
				     err)) ||
	    (ret = as_sql_hist_meta_read(q, t->dataset, &m, err)))
		return ret;
	if (!(ret = as_sql_table_exists(q, h->name, &exists, err)))
		ret = as_hist_check_meta(t, h, n, &m, exists, err);
	free(m.columns);
	return ret;
}

static int stage_read(void *ud, const char *const *v)
{
	char **stage = ud;

	if (v[0] && !(*stage = as_strdup(v[0])))
		return AS_ENOMEM;
	return 0;
}

/* The state row's update: published_run := the rollback's run, no
 * staging, and the cursor (below). */
static void state_sql(const as_sql *q, const as_sql_rollback_ops *o,
		      const as_table *t, const char *live_q, as_buf *b)
{
	as_buf_adds(b, "UPDATE atomsync_state SET published_run = ");
	q->d->param(b, 2, AS_TYPE_INTEGER);
	as_buf_adds(
		b,
		", stage_table = NULL, stage_run = NULL, stage_last_run = NULL, "
		"stage_base = NULL, stage_fingerprint = NULL, stage_key = NULL, "
		"checkpoint = NULL, stage_seen = 0, stage_rejected = 0");
	if (t->cursor >= 0) {
		as_buf_adds(b, ", cursor = (SELECT ");
		o->cursor_max(b, &t->cols[t->cursor]);
		as_buf_printf(b, " FROM %s%s)", q->d->main, live_q);
	} else {
		/* A Singer bookmark (the STATE of the newest publish) would
		 * be ahead of the restored rows: dropped, so the next run
		 * extracts from the start (invariant 8). */
		as_buf_adds(b, ", cursor = NULL");
	}
	as_buf_adds(b, " WHERE dataset = ");
	q->d->param(b, 1, AS_TYPE_TEXT);
}

/*
 * The dataset's state after the rollback: its published run is the
 * rollback (later staging begins from it), the staging of an interrupted
 * run is dropped (its base is gone), and an incremental cursor is the
 * restored rows' maximum (invariant 8: the cursor goes with the data).
 */
static int rollback_state(const as_sql *q, const as_sql_rollback_ops *o,
			  as_run_ctx *rc, const char *live_q, as_error *err)
{
	const as_table *t = rc->table;
	const as_type ty[] = {AS_TYPE_TEXT, AS_TYPE_INTEGER};
	as_val v[2] = {{.kind = AS_V_TEXT}, {.kind = AS_V_INT}};
	as_buf b = AS_BUF_INIT;
	char *stage = NULL;
	int64_t changed = 0;
	int ret;

	as_buf_adds(&b, "SELECT stage_table FROM atomsync_state WHERE "
			"dataset = ");
	q->d->param(&b, 1, AS_TYPE_TEXT);
	as_buf_adds(&b, q->d->for_update);
	ret = q->query_rows(q->conn, as_buf_cstr(&b), t->dataset, 1, stage_read,
			    &stage, "rollback: reading state", err);
	if (ret == AS_ENOMEM && !err->code)
		ret = as_error_set(err, AS_ENOMEM, "out of memory");
	as_buf_reset(&b);
	if (ret || (stage && (ret = q->txn->drop_stage(q->conn, stage, err))))
		goto done;
	state_sql(q, o, t, live_q, &b);
	v[0].u.s = t->dataset;
	v[0].len = (uint32_t)strlen(t->dataset);
	v[1].u.i = rc->run_id;
	ret = q->txn->exec_out(q->conn, as_buf_cstr(&b), v, ty, 2, NULL,
			       &changed, "rollback: saving state", err);
	if (!ret && changed != 1)
		ret = as_error_set(err, AS_EUSAGE,
				   "dataset %s has never been "
				   "published; nothing to roll back",
				   t->dataset);
done:
	free(stage);
	as_buf_free(&b);
	return ret;
}

/* The rollback's own run record, completed in its transaction: a rollback
 * that does not commit leaves none. */
static int run_close(const as_sql *q, as_run_ctx *rc, const as_counts *c,
		     int64_t to_run, as_error *err)
{
	const as_type ty[] = {AS_TYPE_INTEGER, AS_TYPE_INTEGER, AS_TYPE_INTEGER,
			      AS_TYPE_INTEGER, AS_TYPE_INTEGER, AS_TYPE_INTEGER,
			      AS_TYPE_TEXT};
	const int64_t n[] = {rc->run_id, c->seen,      c->inserted,
			     c->updated, c->unchanged, c->deleted};
	const char *col[] = {"seen",	  "inserted", "updated",
			     "unchanged", "deleted",  "error"};
	char note[96];
	as_val v[7];
	as_buf b = AS_BUF_INIT;
	int ret;

	snprintf(note, sizeof(note),
		 "restored the table to its state after run %lld",
		 (long long)to_run);
	for (size_t i = 0; i < 6; i++)
		v[i] = (as_val){.kind = AS_V_INT, .u.i = n[i]};
	v[6] = (as_val){
		.kind = AS_V_TEXT, .len = (uint32_t)strlen(note), .u.s = note};
	as_buf_adds(&b, "UPDATE atomsync_runs SET status = 'completed', "
			"finished_at = ");
	q->d->now(&b, 1);
	for (size_t i = 0; i < 6; i++) {
		as_buf_printf(&b, ", %s = ", col[i]);
		q->d->param(&b, i + 2, ty[i + 1]);
	}
	as_buf_adds(&b, " WHERE run_id = ");
	q->d->param(&b, 1, AS_TYPE_INTEGER);
	ret = q->exec_vals(q->conn, as_buf_cstr(&b), v, ty, 7, "recording run",
			   err);
	as_buf_free(&b);
	return ret;
}

/* Inside the fenced transaction, before anything is written: the target
 * can be restored, the history has its shape, the live table exists (its
 * columns still undecided are text). */
static int check_all(const as_sql *q, const as_sql_rollback_ops *o,
		     as_run_ctx *rc, const as_hist *h, int64_t to_run,
		     as_error *err)
{
	as_table *t = rc->table;
	int ret, exists;

	if ((ret = q->txn->fence(q->conn, as_table_lease(t), rc->token,
				 rc->lease_ttl_ms, err)) ||
	    (ret = check_target(q, rc, h, to_run, err)) ||
	    (ret = as_sql_hist_fit(q, h, t, err)) ||
	    (ret = as_sql_table_exists(q, t->table, &exists, err)) ||
	    (exists && (ret = o->live(q->conn, t, 1, err))))
		return ret;
	for (size_t i = 0; i < t->ncols; i++)
		if (t->cols[i].type == AS_TYPE_AUTO)
			t->cols[i].type = AS_TYPE_TEXT;
	return exists ? 0 : o->live(q->conn, t, 0, err);
}

/* The rollback's writes, in its transaction, up to the commit. */
static int rollback_txn(const as_sql *q, const as_sql_rollback_ops *o,
			as_run_ctx *rc, const as_publish_opts *po,
			const as_hist *h, const char *live_q, int64_t to_run,
			as_counts *c, as_error *err)
{
	as_table *t = rc->table;
	int ret;

	if ((ret = check_all(q, o, rc, h, to_run, err)) ||
	    /* Runs left active by dead workers: this worker holds the lease. */
	    (ret = as_sql_fail_interrupted(q, t, err)) ||
	    (ret = as_sql_record_run(q, rc, "rollback", "publishing", 0,
				     err)) ||
	    (ret = as_sql_rollback_target(q, live_q, t, h, to_run, rc->run_id,
					  err)) ||
	    /* counts relative to the live table (invariant 10), the changed
	     * rows for the outbox (invariant 7) before it changes */
	    (ret = as_sql_rollback_counts(q, live_q, t, c, err)) ||
	    (ret = as_sql_rollback_changed(q, live_q, rc, err)) ||
	    (o->hist_before &&
	     (ret = o->hist_before(q->conn, rc, po, c, live_q, err))) ||
	    (ret = as_sql_rollback_apply(q, live_q, t, c, err)) ||
	    (o->hist_after &&
	     (ret = o->hist_after(q->conn, rc, po, c, live_q, err))) ||
	    (ret = as_sql_outbox_write(q, rc, err)) ||
	    (ret = rollback_state(q, o, rc, live_q, err)) ||
	    (ret = run_close(q, rc, c, to_run, err)) ||
	    (o->cleanup &&
	     (ret = q->exec(q->conn, o->cleanup, "rollback: cleanup", err))))
		return ret;
	as_crash_point("rollback.before_commit");
	return q->txn->commit(q->conn, "rollback: commit", err);
}

int as_sql_history_rollback(const as_sql *q, const as_sql_rollback_ops *o,
			    as_run_ctx *rc, const as_publish_opts *po,
			    int64_t to_run, as_counts *c, as_error *err)
{
	as_table *t = rc->table;
	const char *live_q;
	as_hist h;
	int ret;

	memset(c, 0, sizeof(*c));
	memset(&h, 0, sizeof(h));
	if (!(live_q = as_sql_run_new(q, rc)))
		return as_error_set(err, AS_ENOMEM, "out of memory");
	if ((ret = as_hist_build(&h, t, po, err)))
		goto out;
	if (o->durable)
		o->durable(q->conn, 1);
	if ((ret = q->txn->begin(q->conn, "rollback: begin", err)))
		goto out;
	if ((ret = rollback_txn(q, o, rc, po, &h, live_q, to_run, c, err))) {
		q->txn->rollback(q->conn);
		rc->run_id = 0;
		if (ret == AS_ESTORE && o->prefix)
			as_error_prefix(err, "dataset %s", t->dataset);
		goto out;
	}
	as_crash_point("rollback.committed");
out:
	if (o->durable)
		o->durable(q->conn, 0);
	as_hist_free(&h);
	q->txn->run_free(q->conn, rc);
	return ret;
}
