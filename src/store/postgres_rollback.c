/*
 * The PostgreSQL store's rollback (DESIGN.md, history): one fenced
 * transaction restores the live table to its content after a run, from
 * <table>_history, recorded as a run of its own with its outbox events.
 */
#include <stdlib.h>
#include <string.h>

#include "store/postgres_int.h"
#include "util/crash.h"
#include "util/str.h"

/* ---- rollback ---- */

/* Why the history cannot restore run n, or 0 when it can. */
static int check_target(pg_store *s, as_run_ctx *rc, const as_hist *h,
			int64_t n, as_error *err)
{
	const as_table *t = rc->table;
	char kind[16] = "", status[16] = "";
	as_pg_params p;
	PGresult *res;
	as_hist_meta m;
	int found, exists, ret;

	as_pg_params_init(&p);
	as_pg_param_int(&p, n);
	as_pg_param_text(&p, t->dataset);
	if (as_pg_exec(
		    s,
		    "SELECT kind, status FROM atomsync_runs WHERE run_id = $1 "
		    "AND dataset = $2",
		    &p, &res, "reading runs", err))
		return err->code;
	found = PQntuples(res) == 1;
	if (found) {
		snprintf(kind, sizeof(kind), "%s", PQgetvalue(res, 0, 0));
		snprintf(status, sizeof(status), "%s", PQgetvalue(res, 0, 1));
	}
	PQclear(res);
	if ((ret = as_hist_check_run(t, n, found, kind, status, err)) ||
	    (ret = as_pg_hist_meta_read(s, t->dataset, &m, err)))
		return ret;
	if (!(ret = as_pg_table_exists(s, h->name, &exists, err)))
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
static int rollback_state(pg_store *s, as_run_ctx *rc, as_error *err)
{
	const as_table *t = rc->table;
	pg_run *r = rc->priv;
	as_buf b = AS_BUF_INIT;
	as_pg_params p;
	PGresult *res;
	int64_t changed = 0;
	int ret = 0;

	as_pg_params_init(&p);
	as_pg_param_text(&p, t->dataset);
	if (as_pg_exec(
		    s,
		    "SELECT stage_table FROM atomsync_state WHERE dataset = $1 "
		    "FOR UPDATE",
		    &p, &res, "rollback: reading state", err))
		return err->code;
	if (PQntuples(res) == 1 && !PQgetisnull(res, 0, 0))
		ret = as_pg_drop_stage(s, PQgetvalue(res, 0, 0), err);
	PQclear(res);
	if (ret)
		return ret;
	as_buf_adds(
		&b,
		"UPDATE atomsync_state SET published_run = $2, stage_table = NULL, "
		"stage_run = NULL, stage_last_run = NULL, stage_base = NULL, "
		"stage_fingerprint = NULL, stage_key = NULL, checkpoint = NULL, "
		"stage_seen = 0, stage_rejected = 0");
	if (t->cursor >= 0) {
		const as_col *col = &t->cols[t->cursor];
		as_buf max = AS_BUF_INIT;

		as_buf_adds(&max, "max(");
		as_buf_add_ident(&max, col->name);
		as_buf_adds(&max, col->type == AS_TYPE_TEXT ? " COLLATE \"C\")"
							    : ")");
		as_buf_adds(&b, ", cursor = (SELECT ");
		as_pg_text_expr(&b, as_buf_cstr(&max), col->type);
		as_buf_printf(&b, " FROM %s)", r->live_q);
		as_buf_free(&max);
	} else {
		/* A Singer bookmark (the STATE of the newest publish) would
		 * be ahead of the restored rows: dropped, so the next run
		 * extracts from the start (invariant 8). */
		as_buf_adds(&b, ", cursor = NULL");
	}
	as_buf_adds(&b, " WHERE dataset = $1");
	as_pg_param_int(&p, rc->run_id);
	ret = as_pg_exec_buf(s, &b, &p, &changed, "rollback: saving state",
			     err);
	if (!ret && changed != 1)
		ret = as_error_set(err, AS_EUSAGE,
				   "dataset %s has never been "
				   "published; nothing to roll back",
				   t->dataset);
	as_buf_free(&b);
	return ret;
}

/* The rollback's own run record, put on record in its transaction and
 * completed there: a rollback that does not commit leaves none. */
static int run_open(pg_store *s, as_run_ctx *rc, as_error *err)
{
	const as_table *t = rc->table;
	as_pg_params p;

	/* Runs left active by dead workers: this worker holds the lease. */
	if (as_pg_fail_interrupted(s, t, err))
		return err->code;
	as_pg_params_init(&p);
	as_pg_param_text(&p, t->dataset);
	as_pg_param_text(&p, rc->kind ? rc->kind : "rollback");
	as_pg_param_text(&p, as_mode_name(t->mode));
	as_pg_param_int(&p, rc->token);
	as_pg_param_text(&p, rc->owner);
	return as_pg_int(
		s,
		"INSERT INTO atomsync_runs(dataset, kind, mode, status, "
		"started_at, lease_token, owner) VALUES($1, $2, $3, "
		"'publishing', now(), $4, $5) RETURNING run_id",
		&p, &rc->run_id, "recording run", err);
}

static int run_close(pg_store *s, as_run_ctx *rc, const as_counts *c,
		     int64_t to_run, as_error *err)
{
	char note[96];
	as_pg_params p;

	snprintf(note, sizeof(note),
		 "restored the table to its state after run %lld",
		 (long long)to_run);
	as_pg_params_init(&p);
	as_pg_param_int(&p, rc->run_id);
	as_pg_param_counts(&p, c);
	as_pg_param_text(&p, note);
	return as_pg_exec(
		s,
		"UPDATE atomsync_runs SET status = 'completed', "
		"finished_at = clock_timestamp(), seen = $2, inserted = $3, "
		"updated = $4, unchanged = $5, deleted = $6, error = $7 "
		"WHERE run_id = $1",
		&p, NULL, "recording run", err);
}

/*
 * `atomsync rollback DATASET --to-run N`: one fenced transaction that
 * checks the history can restore run N, records the rollback as a run,
 * rewrites exactly the rows that differ from N's state (their history and
 * outbox events with them), and makes it the dataset's published run.
 */
int as_pg_history_rollback(as_store *st, as_run_ctx *rc,
			   const as_publish_opts *po, int64_t to_run,
			   as_counts *c, as_error *err)
{
	pg_store *s = (pg_store *)st;
	as_table *t = rc->table;
	pg_run *r = calloc(1, sizeof(*r));
	int ret, exists;
	as_hist h;
	as_sql q;

	memset(c, 0, sizeof(*c));
	memset(&h, 0, sizeof(h));
	as_pg_sql(s, &q);
	as_pg_drain(s, NULL);
	if (!r || !(r->live_q = as_quote_ident(t->table))) {
		free(r);
		return as_error_set(err, AS_ENOMEM, "out of memory");
	}
	rc->priv = r;
	if ((ret = as_hist_build(&h, t, po, err)) ||
	    (ret = as_pg_begin(s, 0, err)))
		goto out;
	if ((ret = as_pg_fence(s, as_table_lease(t), rc->token,
			       rc->lease_ttl_ms, err)) ||
	    (ret = check_target(s, rc, &h, to_run, err)) ||
	    (ret = as_sql_hist_fit(&q, &h, t, err)) ||
	    (ret = as_pg_table_exists(s, t->table, &exists, err)))
		goto fail;
	for (size_t i = 0; i < t->ncols; i++)
		if (t->cols[i].type == AS_TYPE_AUTO)
			t->cols[i].type = AS_TYPE_TEXT;
	if ((!exists && (ret = as_pg_create_table(s, t, t->table, 0, err))) ||
	    (ret = run_open(s, rc, err)) ||
	    (ret = as_sql_rollback_target(&q, r->live_q, t, &h, to_run,
					  rc->run_id, err)) ||
	    /* counts relative to the live table (invariant 10), the changed
	     * rows for the outbox (invariant 7) before it changes */
	    (ret = as_sql_rollback_counts(&q, r->live_q, t, c, err)) ||
	    (ret = as_sql_rollback_changed(&q, r->live_q, rc, err)) ||
	    (ret = as_sql_rollback_apply(&q, r->live_q, t, c, err)) ||
	    (ret = as_pg_history_write(s, rc, po, c, "pg_temp._atomsync_target",
				       err)) ||
	    (ret = as_sql_outbox_write(&q, rc, err)) ||
	    (ret = rollback_state(s, rc, err)) ||
	    (ret = run_close(s, rc, c, to_run, err)))
		goto fail;
	as_crash_point("rollback.before_commit");
	if ((ret = as_pg_commit(s, "rollback: commit", err)))
		goto fail;
	as_crash_point("rollback.committed");
	goto out;
fail:
	as_pg_rollback(s);
	rc->run_id = 0;
	if (ret == AS_ESTORE)
		as_error_prefix(err, "dataset %s", t->dataset);
out:
	as_hist_free(&h);
	free(r->live_q);
	free(r);
	rc->priv = NULL;
	return ret;
}
