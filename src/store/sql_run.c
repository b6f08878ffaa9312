/*
 * The run records both backends keep alike (store/sql.h, as_sql_txn): a
 * run put on record, runs left by dead workers failed, a run's end, and
 * the staging's discard, each in a transaction fenced by the lease; the
 * run's start, but for how the backend reads the state row.
 */
#include <stdlib.h>
#include <string.h>

#include "store/sql.h"

#include "util/crash.h"
#include "util/str.h"

const char *as_sql_run_new(const as_sql *q, as_run_ctx *rc)
{
	char **live_q = calloc(1, q->txn->run_size);

	if (!live_q || !(*live_q = as_quote_ident(rc->table->table))) {
		free(live_q);
		return NULL;
	}
	rc->priv = live_q;
	return *live_q;
}

int as_sql_fail_interrupted(const as_sql *q, const as_table *t, as_error *err)
{
	const as_type ty[] = {AS_TYPE_TEXT};
	const as_val v[] = {as_sql_text_val(t->dataset)};
	as_buf b = AS_BUF_INIT;
	int ret;

	as_buf_adds(&b, "UPDATE atomsync_runs SET status = 'failed', "
			"finished_at = ");
	q->d->now(&b, 0);
	as_buf_adds(&b, ", error = '" AS_SQL_INTERRUPTED "' WHERE dataset = ");
	q->d->param(&b, 1, AS_TYPE_TEXT);
	as_buf_adds(&b, " AND status IN ('active', 'publishing')");
	ret = q->exec_vals(q->conn, as_buf_cstr(&b), v, ty, 1,
			   "recording interrupted runs", err);
	as_buf_free(&b);
	return ret;
}

int as_sql_record_run(const as_sql *q, as_run_ctx *rc, const char *kind,
		      const char *status, int64_t resumed, as_error *err)
{
	const as_table *t = rc->table;
	const as_type ty[] = {AS_TYPE_TEXT, AS_TYPE_TEXT,    AS_TYPE_TEXT,
			      AS_TYPE_TEXT, AS_TYPE_INTEGER, AS_TYPE_INTEGER,
			      AS_TYPE_TEXT};
	as_val v[7];
	as_buf b = AS_BUF_INIT;
	int ret;

	v[0] = as_sql_text_val(t->dataset);
	v[1] = as_sql_text_val(rc->kind ? rc->kind : kind);
	v[2] = as_sql_text_val(as_mode_name(t->mode));
	v[3] = as_sql_text_val(status);
	v[4] = resumed ? as_sql_int_val(resumed) : as_sql_text_val(NULL);
	v[5] = as_sql_int_val(rc->token);
	v[6] = as_sql_text_val(rc->owner);
	as_buf_adds(&b, "INSERT INTO atomsync_runs(dataset, kind, mode, "
			"status, started_at, resumed_from, lease_token, "
			"owner) VALUES(");
	for (size_t i = 0; i < 7; i++) {
		as_buf_adds(&b, i ? ", " : "");
		if (i == 4) { /* started_at */
			q->d->now(&b, 0);
			as_buf_adds(&b, ", ");
		}
		q->d->param(&b, i + 1, ty[i]);
	}
	as_buf_adds(&b, ") RETURNING run_id");
	ret = q->txn->exec_out(q->conn, as_buf_cstr(&b), v, ty, 7, &rc->run_id,
			       NULL, "recording run", err);
	as_buf_free(&b);
	rc->resumed_from = resumed;
	return ret;
}

int as_sql_clear_stage(const as_sql *q, const char *dataset, const char *what,
		       as_error *err)
{
	const as_type ty[] = {AS_TYPE_TEXT};
	const as_val v[] = {as_sql_text_val(dataset)};
	as_buf b = AS_BUF_INIT;
	int ret;

	as_buf_adds(&b, "UPDATE atomsync_state SET stage_table = NULL, "
			"stage_run = NULL, stage_last_run = NULL, "
			"stage_base = NULL, stage_fingerprint = NULL, "
			"stage_key = NULL, checkpoint = NULL, stage_seen = 0, "
			"stage_rejected = 0 WHERE dataset = ");
	q->d->param(&b, 1, AS_TYPE_TEXT);
	ret = q->exec_vals(q->conn, as_buf_cstr(&b), v, ty, 1, what, err);
	as_buf_free(&b);
	return ret;
}

/* The run's end on record, and a refused run's staging dropped (it starts
 * over next time: its delivery was judged). */
static int end_txn(const as_sql *q, as_run_ctx *rc, const char *stage,
		   const char *status, const char *error, as_error *err)
{
	const as_type ty[] = {AS_TYPE_INTEGER, AS_TYPE_TEXT, AS_TYPE_TEXT,
			      AS_TYPE_INTEGER, AS_TYPE_INTEGER};
	const as_val v[] = {as_sql_int_val(rc->run_id), as_sql_text_val(status),
			    as_sql_text_val(error), as_sql_int_val(rc->seen),
			    as_sql_int_val(rc->rejected)};
	const as_val dataset = as_sql_text_val(rc->table->dataset);
	as_buf b = AS_BUF_INIT;
	int ret;

	as_buf_adds(&b, "UPDATE atomsync_runs SET status = ");
	q->d->param(&b, 2, AS_TYPE_TEXT);
	as_buf_adds(&b, ", finished_at = ");
	q->d->now(&b, 0);
	as_buf_adds(&b, ", error = ");
	q->d->param(&b, 3, AS_TYPE_TEXT);
	as_buf_adds(&b, ", seen = ");
	q->d->param(&b, 4, AS_TYPE_INTEGER);
	as_buf_adds(&b, ", rejected = ");
	q->d->param(&b, 5, AS_TYPE_INTEGER);
	as_buf_adds(&b, " WHERE run_id = ");
	q->d->param(&b, 1, AS_TYPE_INTEGER);
	as_buf_adds(&b, " AND status IN ('active', 'publishing')");
	ret = q->exec_vals(q->conn, as_buf_cstr(&b), v, ty, 5,
			   "recording run end", err);
	as_buf_reset(&b);
	if (ret || strcmp(status, "refused") != 0 || !stage ||
	    (ret = q->txn->drop_stage(q->conn, stage, err))) {
		as_buf_free(&b);
		return ret;
	}
	as_buf_adds(&b, "UPDATE atomsync_state SET stage_table = NULL, "
			"checkpoint = NULL, stage_seen = 0, "
			"stage_rejected = 0 WHERE dataset = ");
	q->d->param(&b, 1, AS_TYPE_TEXT);
	ret = q->exec_vals(q->conn, as_buf_cstr(&b), &dataset, ty + 1, 1,
			   "clearing staging", err);
	as_buf_free(&b);
	return ret;
}

int as_sql_run_end(const as_sql *q, as_run_ctx *rc, const char *stage,
		   const char *status, const char *error, as_error *err)
{
	const char *what = "recording the run's end";
	as_error ferr;

	if (!rc->run_id)
		return 0;
	if (q->txn->begin(q->conn, what, err))
		return err->code;
	/* A worker that lost its lease leaves the record to the new holder. */
	as_error_clear(&ferr);
	if (q->txn->fence(q->conn, as_table_lease(rc->table), rc->token,
			  rc->lease_ttl_ms, &ferr)) {
		q->txn->rollback(q->conn);
		if (ferr.code == AS_EFENCED)
			return 0;
		/* The whole error, native code included. */
		if (err)
			*err = ferr;
		return ferr.code;
	}
	if (end_txn(q, rc, stage, status, error, err) ||
	    q->txn->commit(q->conn, what, err)) {
		q->txn->rollback(q->conn);
		return err->code;
	}
	return 0;
}

int as_sql_stage_discard(const as_sql *q, as_run_ctx *rc, const char *stage,
			 as_error *err)
{
	const char *what = "discarding staging";
	const as_type ty[] = {AS_TYPE_INTEGER};
	const as_val v[] = {as_sql_int_val(rc->run_id)};
	as_buf b = AS_BUF_INIT;
	int ret;

	if (q->txn->begin(q->conn, "discarding the staging", err))
		return err->code;
	as_buf_adds(&b, "UPDATE atomsync_runs SET resumed_from = NULL "
			"WHERE run_id = ");
	q->d->param(&b, 1, AS_TYPE_INTEGER);
	if ((ret = q->txn->fence(q->conn, as_table_lease(rc->table), rc->token,
				 rc->lease_ttl_ms, err)) ||
	    (stage && (ret = q->txn->drop_stage(q->conn, stage, err))) ||
	    (ret = as_sql_clear_stage(q, rc->table->dataset, what, err)) ||
	    (ret = q->exec_vals(q->conn, as_buf_cstr(&b), v, ty, 1, what,
				err)) ||
	    (ret = q->txn->commit(q->conn, "discarding the staging", err))) {
		q->txn->rollback(q->conn);
		as_buf_free(&b);
		return ret;
	}
	as_buf_free(&b);
	q->txn->run_free(q->conn, rc);
	if (!as_sql_run_new(q, rc))
		return as_error_set(err, AS_ENOMEM, "out of memory");
	as_sql_run_discarded(rc);
	return 0;
}

typedef struct names {
	char *v[64];
	size_t n;
} names;

static int name_add(void *ud, const char *const *v)
{
	names *nm = ud;

	/* Out of memory: that one waits for a later run. */
	if (v[0] && nm->n < 64 && (nm->v[nm->n] = as_strdup(v[0])))
		nm->n++;
	return 0;
}

/* Drop staging tables no dataset refers to; listed first, dropped once
 * the listing is done. */
static int drop_orphans(const as_sql *q, as_error *err)
{
	const char *what = "finding orphaned staging";
	names nm = {.n = 0};
	int ret;

	ret = q->query_rows(q->conn, q->d->orphans_sql, NULL, 1, name_add, &nm,
			    what, err);
	for (size_t i = 0; i < nm.n; i++) {
		if (!ret)
			ret = q->txn->drop_stage(q->conn, nm.v[i], err);
		free(nm.v[i]);
	}
	if (!ret && q->d->orphans_done)
		ret = q->exec(q->conn, q->d->orphans_done, what, err);
	return ret;
}

/* The run starts over: the staging of stage (if any) is dropped and the
 * state row forgets it. */
static int start_over(const as_sql *q, as_run_ctx *rc, const char *stage,
		      as_error *err)
{
	free(rc->checkpoint);
	free(rc->stage_key);
	rc->checkpoint = rc->stage_key = NULL;
	rc->seen = rc->rejected = 0;
	if (stage && q->txn->drop_stage(q->conn, stage, err))
		return err->code;
	return as_sql_clear_stage(q, rc->table->dataset, "clearing staging",
				  err);
}

/* A resumed staging is this run's now. */
static int adopt_stage(const as_sql *q, as_run_ctx *rc, const char *stage,
		       as_error *err)
{
	const as_type ty[] = {AS_TYPE_TEXT, AS_TYPE_INTEGER};
	const as_val v[] = {as_sql_text_val(rc->table->dataset),
			    as_sql_int_val(rc->run_id)};
	as_buf b = AS_BUF_INIT;
	int ret;

	as_buf_adds(&b, "UPDATE atomsync_state SET stage_last_run = ");
	q->d->param(&b, 2, AS_TYPE_INTEGER);
	as_buf_adds(&b, " WHERE dataset = ");
	q->d->param(&b, 1, AS_TYPE_TEXT);
	ret = q->exec_vals(q->conn, as_buf_cstr(&b), v, ty, 2,
			   "adopting staging", err);
	as_buf_free(&b);
	if (!ret && q->txn->stage_names(rc->priv, stage))
		ret = as_error_set(err, AS_ENOMEM, "out of memory");
	return ret;
}

/* The transaction of run_begin: interrupted runs failed, the state row,
 * resume or start over, orphans dropped, the run recorded. */
static int begin_txn(const as_sql *q, as_run_ctx *rc, as_sql_state_fn state,
		     char **stage, as_error *err)
{
	const as_table *t = rc->table;
	int64_t last_run = 0;
	int resume = 0;

	if (q->txn->fence(q->conn, as_table_lease(t), rc->token,
			  rc->lease_ttl_ms, err) ||
	    as_sql_fail_interrupted(q, t, err) ||
	    state(q->conn, rc, stage, &last_run, &resume, err) ||
	    (!resume && start_over(q, rc, *stage, err)) ||
	    drop_orphans(q, err) ||
	    as_sql_record_run(q, rc, "sync", "active", resume ? last_run : 0,
			      err) ||
	    (resume && adopt_stage(q, rc, *stage, err)))
		return err->code;
	return 0;
}

int as_sql_run_begin(const as_sql *q, as_run_ctx *rc, as_sql_state_fn state,
		     as_error *err)
{
	char *stage = NULL;

	if (!as_sql_run_new(q, rc))
		return as_error_set(err, AS_ENOMEM, "out of memory");
	if (q->txn->begin(q->conn, "starting the run", err))
		return err->code;
	if (begin_txn(q, rc, state, &stage, err) ||
	    q->txn->commit(q->conn, "recording the run", err)) {
		free(stage);
		q->txn->rollback(q->conn);
		return err->code;
	}
	free(stage);
	as_crash_point("run.begun");
	return 0;
}
