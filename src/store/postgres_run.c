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

/* The state row, in run_begin's transaction (as_sql_run_begin): the
 * table is this dataset's, the row exists, and it is read. */
static int state(void *conn, as_run_ctx *rc, char **stage, int64_t *last_run,
		 int *resume, as_error *err)
{
	pg_store *s = conn;
	as_table *t = rc->table;
	as_pg_params p;

	if (check_owner(s, t, err))
		return err->code;
	as_pg_params_init(&p);
	as_pg_param_text(&p, t->dataset);
	as_pg_param_text(&p, t->table);
	as_pg_param_text(&p, as_mode_name(t->mode));
	if (as_pg_exec(s,
		       "INSERT INTO atomsync_state(dataset, table_name, mode) "
		       "VALUES($1, $2, $3) ON CONFLICT (dataset) DO NOTHING",
		       &p, NULL, "creating state", err))
		return err->code;
	return read_state(s, rc, stage, last_run, resume, err);
}

int as_pg_run_begin(as_store *st, as_run_ctx *rc, as_error *err)
{
	pg_store *s = (pg_store *)st;
	as_sql q;

	as_pg_drain(s, NULL);
	as_pg_sql(s, &q);
	return as_sql_run_begin(&q, rc, state, err);
}

int as_pg_run_end(as_store *st, as_run_ctx *rc, const char *status,
		  const char *error, as_error *err)
{
	pg_store *s = (pg_store *)st;
	pg_run *r = rc->priv;
	as_sql q;

	as_pg_drain(s, NULL);
	as_pg_sql(s, &q);
	return as_sql_run_end(&q, rc, r ? r->stage : NULL, status, error, err);
}

/* ---- the store's own transactions (store/sql.h, as_sql_txn) ---- */

static int txn_begin(void *conn, const char *what, as_error *err)
{
	(void)what;
	return as_pg_begin(conn, 0, err);
}

static int txn_commit(void *conn, const char *what, as_error *err)
{
	return as_pg_commit(conn, what, err);
}

static void txn_rollback(void *conn)
{
	as_pg_rollback(conn);
}

static int txn_fence(void *conn, const char *dataset, int64_t token,
		     int64_t ttl_ms, as_error *err)
{
	return as_pg_fence(conn, dataset, token, ttl_ms, err);
}

static int drop_stage(void *conn, const char *stage, as_error *err)
{
	return as_pg_drop_stage(conn, stage, err);
}

static int stage_names(void *run, const char *stage)
{
	pg_run *r = run;

	r->stage = as_strdup(stage);
	r->stage_q = as_quote_ident(stage);
	return r->stage && r->stage_q ? 0 : -1;
}

const as_sql_txn as_pg_txn = {txn_begin,   txn_commit,	   txn_rollback,
			      txn_fence,   as_pg_exec_out, drop_stage,
			      stage_names, sizeof(pg_run), as_pg_run_free};
