/*
 * The PostgreSQL store's run records: a run put on record and its staging
 * resumed or started over (run_begin), runs left by dead workers failed,
 * orphaned stagings dropped, and a failed or refused end recorded.
 */
#include <stdlib.h>
#include <string.h>

#include "store/postgres_int.h"
#include "util/crash.h"
#include "util/log.h"
#include "util/str.h"

/* ---- run records ---- */

void as_pg_run_free(as_store *st, as_run_ctx *rc)
{
	pg_store *s = (pg_store *)st;
	pg_run *r = rc->priv;

	if (!r)
		return;
	as_pg_drain(s, NULL);
	if (r->batch_q && s->conn && PQstatus(s->conn) == CONNECTION_OK &&
	    PQtransactionStatus(s->conn) == PQTRANS_IDLE) {
		as_buf b = AS_BUF_INIT;

		as_buf_printf(&b, "DROP TABLE IF EXISTS pg_temp.%s",
			      r->batch_q);
		PQclear(PQexec(s->conn, as_buf_cstr(&b)));
		as_buf_free(&b);
	}
	free(r->live_q);
	free(r->stage);
	free(r->stage_q);
	free(r->batch_q);
	free(r->stage_type);
	free(r->live_key);
	free(r->live_hash);
	free(r->live_used);
	free(r);
	rc->priv = NULL;
}

int as_pg_drop_stage(pg_store *s, const char *stage, as_error *err)
{
	char *spans = as_sprintf("%s_spans", stage);
	as_buf b = AS_BUF_INIT;
	as_pg_params p;

	as_buf_adds(&b, "DROP TABLE IF EXISTS ");
	as_buf_add_ident(&b, stage);
	as_buf_adds(&b, ", "); /* and its spans (postgres_spans.c) */
	as_buf_add_ident(&b, spans ? spans : stage);
	free(spans);
	if (as_pg_exec_buf(s, &b, NULL, NULL, "dropping a staging table",
			   err)) {
		as_buf_free(&b);
		return err->code;
	}
	as_buf_free(&b);
	as_pg_params_init(&p);
	as_pg_param_text(&p, stage);
	return as_pg_exec(
		s, "DELETE FROM atomsync_stage_alive WHERE stage_table = $1",
		&p, NULL, "dropping a staging table", err);
}

/* Drop staging tables no dataset refers to (left by a crash after a
 * publish committed but before its staging was dropped). */
static int drop_orphans(pg_store *s, as_error *err)
{
	PGresult *res;
	int rc = 0;

	if (as_pg_exec(s,
		       "SELECT c.relname FROM pg_class c "
		       "WHERE c.relnamespace = current_schema()::regnamespace "
		       "AND c.relkind = 'r' AND c.relname LIKE "
		       "'\\_atomsync\\_stage\\_%' AND c.relname NOT IN "
		       "(SELECT stage_table FROM atomsync_state "
		       "WHERE stage_table IS NOT NULL UNION ALL SELECT "
		       "stage_table || '_spans' FROM atomsync_state "
		       "WHERE stage_table IS NOT NULL) LIMIT 64",
		       NULL, &res, "finding orphaned staging", err))
		return err->code;
	for (int i = 0; !rc && i < PQntuples(res); i++)
		rc = as_pg_drop_stage(s, PQgetvalue(res, i, 0), err);
	PQclear(res);
	if (!rc)
		rc = as_pg_exec(
			s,
			"DELETE FROM atomsync_stage_alive WHERE stage_table "
			"NOT IN (SELECT stage_table FROM atomsync_state "
			"WHERE stage_table IS NOT NULL)",
			NULL, NULL, "finding orphaned staging", err);
	return rc;
}

int as_pg_clear_stage_state(pg_store *s, const char *dataset, as_error *err)
{
	as_pg_params p;

	as_pg_params_init(&p);
	as_pg_param_text(&p, dataset);
	return as_pg_exec(
		s,
		"UPDATE atomsync_state SET stage_table = NULL, "
		"stage_run = NULL, stage_last_run = NULL, "
		"stage_base = NULL, stage_fingerprint = NULL, "
		"stage_key = NULL, checkpoint = NULL, stage_seen = 0, "
		"stage_rejected = 0 WHERE dataset = $1",
		&p, NULL, "clearing staging", err);
}

/* Decide from the state row whether this run continues the staging. */
/* Inside the run's first transaction: is the table another dataset's?  The
 * advisory lock (per table name, until commit) keeps two first runs of
 * different datasets from both finding the table free.  A non-scoped owner
 * sorts first: it refuses sharing. */
static int check_owner(pg_store *s, const as_table *t, as_error *err)
{
	PGresult *res;
	as_pg_params p;
	int rc;

	as_pg_params_init(&p);
	as_pg_param_text(&p, t->dataset);
	as_pg_param_text(&p, t->table);
	if (as_pg_exec(
		    s,
		    "SELECT pg_advisory_xact_lock(hashtext('atomsync table ' "
		    "|| $2)), (SELECT dataset || '|' || coalesce(mode, '') "
		    "FROM atomsync_state WHERE table_name = $2 AND dataset <> "
		    "$1 ORDER BY mode = 'scoped', dataset LIMIT 1)",
		    &p, &res, "reading the table's owner", err))
		return err->code;
	if (PQgetisnull(res, 0, 1)) {
		rc = 0;
	} else {
		char *other = as_pg_cell_dup(res, 0, 1), *bar;

		if (!other) {
			PQclear(res);
			return as_error_set(err, AS_ENOMEM, "out of memory");
		}
		/* Mode names hold no '|': the last one ends the name. */
		bar = strrchr(other, '|');
		*bar = '\0';
		rc = as_table_owner_check(t, other, bar + 1, err);
		free(other);
	}
	PQclear(res);
	return rc;
}

static int read_state(pg_store *s, as_run_ctx *rc, char **stage,
		      int64_t *last_run, int *resume, as_error *err)
{
	pg_run *r = rc->priv;
	as_table *t = rc->table;
	PGresult *res;
	as_pg_params p;
	int alive;

	as_pg_params_init(&p);
	as_pg_param_text(&p, t->dataset);
	if (as_pg_exec(
		    s,
		    "SELECT published_run, cursor, stage_table, "
		    "stage_last_run, stage_base, stage_fingerprint, stage_key, "
		    "checkpoint, stage_seen, stage_rejected, "
		    "(to_regclass(quote_ident(stage_table)) IS NOT NULL AND "
		    "EXISTS (SELECT 1 FROM atomsync_stage_alive a "
		    "WHERE a.stage_table = s.stage_table))::int "
		    "FROM atomsync_state s WHERE dataset = $1 FOR UPDATE",
		    &p, &res, "reading state", err))
		return err->code;
	if (as_pg_state_row(res, t->dataset, err))
		return err->code;
	rc->cursor = as_pg_cell_dup(res, 0, 1);
	*stage = as_pg_cell_dup(res, 0, 2);
	*last_run = as_pg_cell_int(res, 0, 3);
	alive = (int)as_pg_cell_int(res, 0, 10);
	if (*stage && !rc->restart && !PQgetisnull(res, 0, 7) &&
	    as_pg_cell_int(res, 0, 4) == as_pg_cell_int(res, 0, 0) &&
	    as_streq(PQgetvalue(res, 0, 5), t->fingerprint)) {
		if (alive) {
			*resume = 1;
			rc->stage_key = as_pg_cell_dup(res, 0, 6);
			rc->checkpoint = as_pg_cell_dup(res, 0, 7);
			rc->seen = as_pg_cell_int(res, 0, 8);
			rc->rejected = as_pg_cell_int(res, 0, 9);
			r->stage_base = as_pg_cell_int(res, 0, 0);
		} else {
			as_warn("dataset %s: the staging of run %lld was lost in a "
				"database server crash (staging tables are unlogged); "
				"starting over",
				t->dataset, (long long)*last_run);
		}
	}
	PQclear(res);
	return 0;
}

/* The run starts over: the staging of *stage (if any) is dropped and the
 * state row forgets it. */
static int start_over(pg_store *s, as_run_ctx *rc, char **stage, as_error *err)
{
	free(rc->checkpoint);
	free(rc->stage_key);
	rc->checkpoint = rc->stage_key = NULL;
	rc->seen = rc->rejected = 0;
	if (*stage && as_pg_drop_stage(s, *stage, err))
		return err->code;
	if (as_pg_clear_stage_state(s, rc->table->dataset, err))
		return err->code;
	free(*stage);
	*stage = NULL;
	return 0;
}

/* The run's record (active); rc->run_id. */
static int record_run(pg_store *s, as_run_ctx *rc, int resume, int64_t last_run,
		      as_error *err)
{
	const as_table *t = rc->table;
	PGresult *res;
	as_pg_params p;

	as_pg_params_init(&p);
	as_pg_param_text(&p, t->dataset);
	as_pg_param_text(&p, rc->kind ? rc->kind : "sync");
	as_pg_param_text(&p, as_mode_name(t->mode));
	if (resume)
		as_pg_param_int(&p, last_run);
	else
		as_pg_param_text(&p, NULL);
	as_pg_param_int(&p, rc->token);
	as_pg_param_text(&p, rc->owner);
	if (as_pg_exec(s,
		       "INSERT INTO atomsync_runs(dataset, kind, mode, status, "
		       "started_at, resumed_from, lease_token, owner) "
		       "VALUES($1, $2, $3, 'active', now(), $4, $5, $6) "
		       "RETURNING run_id",
		       &p, &res, "recording run", err))
		return err->code;
	rc->run_id = as_pg_cell_int(res, 0, 0);
	PQclear(res);
	rc->resumed_from = resume ? last_run : 0;
	return 0;
}

/* A resumed staging is this run's now (it takes *stage). */
static int adopt_stage(pg_store *s, as_run_ctx *rc, char **stage, as_error *err)
{
	pg_run *r = rc->priv;
	as_pg_params p;

	as_pg_params_init(&p);
	as_pg_param_text(&p, rc->table->dataset);
	as_pg_param_int(&p, rc->run_id);
	if (as_pg_exec(s,
		       "UPDATE atomsync_state SET stage_last_run = $2 "
		       "WHERE dataset = $1",
		       &p, NULL, "adopting staging", err))
		return err->code;
	r->stage = *stage;
	r->stage_q = as_quote_ident(*stage);
	*stage = NULL;
	return 0;
}

/* The transaction of run_begin: interrupted runs failed, the state row,
 * resume or start over, orphans dropped, the run recorded. */
int as_pg_fail_interrupted(pg_store *s, const as_table *t, as_error *err)
{
	as_pg_params p;

	as_pg_params_init(&p);
	as_pg_param_text(&p, t->dataset);
	return as_pg_exec(s,
			  "UPDATE atomsync_runs SET status = 'failed', "
			  "finished_at = now(), error = '" AS_SQL_INTERRUPTED
			  "' WHERE dataset = $1 AND status IN ('active', "
			  "'publishing')",
			  &p, NULL, "recording interrupted runs", err);
}

static int begin_txn(pg_store *s, as_run_ctx *rc, char **stage, as_error *err)
{
	as_table *t = rc->table;
	as_pg_params p;
	int64_t last_run = 0;
	int resume = 0;

	if (as_pg_fence(s, as_table_lease(t), rc->token, rc->lease_ttl_ms, err))
		return err->code;
	if (as_pg_fail_interrupted(s, t, err) || check_owner(s, t, err))
		return err->code;
	as_pg_params_init(&p);
	as_pg_param_text(&p, t->dataset);
	as_pg_param_text(&p, t->table);
	as_pg_param_text(&p, as_mode_name(t->mode));
	if (as_pg_exec(s,
		       "INSERT INTO atomsync_state(dataset, table_name, mode) "
		       "VALUES($1, $2, $3) ON CONFLICT (dataset) DO NOTHING",
		       &p, NULL, "creating state", err) ||
	    read_state(s, rc, stage, &last_run, &resume, err) ||
	    (!resume && start_over(s, rc, stage, err)) ||
	    drop_orphans(s, err) || record_run(s, rc, resume, last_run, err) ||
	    (resume && adopt_stage(s, rc, stage, err)))
		return err->code;
	return 0;
}

/*
 * One fenced transaction: mark runs left active by dead workers as failed
 * (invariant 10), put this run on record, and decide whether it continues
 * the interrupted staging (invariant 4) or starts over.
 */
int as_pg_run_begin(as_store *st, as_run_ctx *rc, as_error *err)
{
	pg_store *s = (pg_store *)st;
	pg_run *r = calloc(1, sizeof(*r));
	char *stage = NULL;

	as_pg_drain(s, NULL);
	if (!r)
		return as_error_set(err, AS_ENOMEM, "out of memory");
	rc->priv = r;
	r->live_q = as_quote_ident(rc->table->table);
	if (as_pg_begin(s, 0, err))
		return err->code;
	if (begin_txn(s, rc, &stage, err) ||
	    as_pg_commit(s, "recording run", err)) {
		free(stage);
		as_pg_rollback(s);
		return err->code;
	}
	as_crash_point("run.begun");
	return 0;
}

int as_pg_run_end(as_store *st, as_run_ctx *rc, const char *status,
		  const char *error, as_error *err)
{
	pg_store *s = (pg_store *)st;
	pg_run *r = rc->priv;
	as_pg_params p;
	as_error ferr;

	as_pg_drain(s, NULL);
	if (!rc->run_id)
		return 0;
	if (as_pg_begin(s, 0, err))
		return err->code;
	/* A worker that lost its lease leaves the record to the new holder. */
	as_error_clear(&ferr);
	if (as_pg_fence(s, as_table_lease(rc->table), rc->token,
			rc->lease_ttl_ms, &ferr)) {
		as_pg_rollback(s);
		if (ferr.code == AS_EFENCED)
			return 0;
		*err = ferr;
		return err->code;
	}
	as_pg_params_init(&p);
	as_pg_param_int(&p, rc->run_id);
	as_pg_param_text(&p, status);
	as_pg_param_text(&p, error);
	as_pg_param_int(&p, rc->seen);
	as_pg_param_int(&p, rc->rejected);
	if (as_pg_exec(
		    s,
		    "UPDATE atomsync_runs SET status = $2, finished_at = now(), "
		    "error = $3, seen = $4, rejected = $5 WHERE run_id = $1 "
		    "AND status IN ('active', 'publishing')",
		    &p, NULL, "recording run end", err))
		goto fail;
	/* A refused run starts over next time: its delivery was judged. */
	if (strcmp(status, "refused") == 0 && r && r->stage) {
		if (as_pg_drop_stage(s, r->stage, err))
			goto fail;
		as_pg_params_init(&p);
		as_pg_param_text(&p, rc->table->dataset);
		if (as_pg_exec(s,
			       "UPDATE atomsync_state SET stage_table = NULL, "
			       "checkpoint = NULL, stage_seen = 0, "
			       "stage_rejected = 0 WHERE dataset = $1",
			       &p, NULL, "clearing staging", err))
			goto fail;
	}
	return as_pg_commit(s, "recording run end", err);
fail:
	as_pg_rollback(s);
	return err->code;
}
