/*
 * The PostgreSQL publish: one transaction, fenced by the lease row it
 * locks, that counts, applies the guards, upserts only changed rows,
 * deletes what a confirmed-complete run did not deliver, moves the cursor
 * and records the run.  Readers of the live table see it before or after
 * (MVCC), never in between, and are never blocked: no DDL on a live table
 * beyond creating it on the first publish.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/postgres_int.h"
#include "store/schema.h"
#include "util/crash.h"
#include "util/log.h"
#include "util/str.h"

/* Counts inside the publish transaction (invariant 10). */
static int publish_counts(pg_store *s, as_run_ctx *rc,
			  const as_publish_opts *po, const pg_spans *sp,
			  as_counts *c, int64_t *staged_changed,
			  int64_t *scope_rows, int64_t *guarded_deletes,
			  int *exists, as_error *err)
{
	as_sql_run sr;
	as_sql q;
	int ret;

	if ((ret = as_pg_table_exists(s, rc->table->table, exists, err)))
		return ret;
	as_pg_sql(s, &q);
	as_pg_run_view(rc, &sr);
	return as_sql_publish_counts(&q, &sr, rc->table, *exists, sp, po, c,
				     staged_changed, scope_rows,
				     guarded_deletes, err);
}

/* The upsert and the deletions (store/sql_publish.c); an adopted staging
 * is already the live table. */
static int publish_apply(pg_store *s, as_run_ctx *rc, const as_counts *c,
			 int64_t C, as_error *err)
{
	pg_run *r = rc->priv;
	as_sql_run sr;
	as_sql q;

	as_pg_sql(s, &q);
	as_pg_run_view(rc, &sr);
	return as_sql_publish_apply(&q, &sr, rc->table, c, r->adopted ? 0 : C,
				    err);
}

/* Invariant 8: the cursor moves only here, with the data behind it; the
 * larger of the saved cursor and the run's maximum, compared as the
 * column's type (text bytewise, as SQLite does). */
static int save_cursor(pg_store *s, as_run_ctx *rc, as_error *err)
{
	pg_run *r = rc->priv;
	const as_table *t = rc->table;
	const as_col *col = &t->cols[t->cursor];
	const char *ty = as_pg_type(col->type);
	as_buf b = AS_BUF_INIT;
	as_pg_params p;
	int ret;

	as_buf_adds(&b, "UPDATE atomsync_state SET cursor = (SELECT ");
	as_pg_text_expr(&b,
			col->type == AS_TYPE_TEXT ? "max(v COLLATE \"C\")"
						  : "max(v)",
			col->type);
	as_buf_printf(&b,
		      " FROM (SELECT cursor::%s AS v FROM atomsync_state "
		      "WHERE dataset = $1 UNION ALL SELECT max(",
		      ty);
	as_buf_add_ident(&b, col->name);
	as_buf_printf(&b, "%s) FROM %s) x) WHERE dataset = $1",
		      col->type == AS_TYPE_TEXT ? " COLLATE \"C\"" : "",
		      r->adopted ? r->live_q : r->stage_q);
	as_pg_params_init(&p);
	as_pg_param_text(&p, t->dataset);
	ret = as_pg_exec_buf(s, &b, &p, NULL, "publish: saving cursor", err);
	as_buf_free(&b);
	return ret;
}

static int publish_bookkeeping(pg_store *s, as_run_ctx *rc, const as_counts *c,
			       as_error *err)
{
	pg_run *r = rc->priv;
	const as_table *t = rc->table;
	as_pg_params p;

	if (t->cursor >= 0 && r->stage && save_cursor(s, rc, err))
		return err->code;
	/* Invariant 8: a Singer tap's bookmark (its last STATE) moves only
	 * here, with the data it covers. */
	if (t->cursor < 0 && rc->bookmark) {
		as_pg_params_init(&p);
		as_pg_param_text(&p, t->dataset);
		as_pg_param_text(&p, rc->bookmark);
		if (as_pg_exec(s,
			       "UPDATE atomsync_state SET cursor = $2 "
			       "WHERE dataset = $1",
			       &p, NULL, "publish: saving the STATE bookmark",
			       err))
			return err->code;
	}
	as_pg_params_init(&p);
	as_pg_param_text(&p, t->dataset);
	as_pg_param_int(&p, rc->run_id);
	as_pg_param_text(&p, t->table);
	as_pg_param_text(&p, as_mode_name(t->mode));
	if (as_pg_exec(
		    s,
		    "UPDATE atomsync_state SET published_run = $2, "
		    "table_name = $3, mode = $4, stage_table = NULL, "
		    "stage_run = NULL, stage_last_run = NULL, stage_base = NULL, "
		    "stage_fingerprint = NULL, stage_key = NULL, checkpoint = NULL, "
		    "stage_seen = 0, stage_rejected = 0 WHERE dataset = $1",
		    &p, NULL, "publish: saving state", err))
		return err->code;
	as_pg_params_init(&p);
	as_pg_param_int(&p, rc->run_id);
	as_pg_param_counts(&p, c);
	as_pg_param_int(&p, c->rejected);
	as_pg_param_int(&p, c->duplicates);
	return as_pg_exec(
		s,
		"UPDATE atomsync_runs SET status = 'completed', "
		"finished_at = clock_timestamp(), seen = $2, inserted = $3, "
		"updated = $4, unchanged = $5, deleted = $6, rejected = $7, "
		"duplicates = $8, error = NULL WHERE run_id = $1",
		&p, NULL, "publish: recording run", err);
}

static int mark_publishing(pg_store *s, as_run_ctx *rc, as_error *err)
{
	as_pg_params p;

	if (as_pg_begin(s, 0, err))
		return err->code;
	as_pg_params_init(&p);
	as_pg_param_int(&p, rc->run_id);
	if (as_pg_fence(s, as_table_lease(rc->table), rc->token,
			rc->lease_ttl_ms, err) ||
	    as_pg_exec(s,
		       "UPDATE atomsync_runs SET status = 'publishing' "
		       "WHERE run_id = $1",
		       &p, NULL, "marking run publishing", err) ||
	    as_pg_commit(s, "marking run publishing", err)) {
		as_pg_rollback(s);
		return err->code;
	}
	return 0;
}

static int create_live(pg_store *s, as_run_ctx *rc, int exists, as_error *err)
{
	const as_table *t = rc->table;
	pg_run *r = rc->priv;
	as_buf b = AS_BUF_INIT;
	as_pg_params p;
	char idx[200];
	int64_t have;
	int ret = 0;

	if (!exists && as_pg_create_table(s, t, t->table, 0, err))
		return err->code;
	if (!t->nscope)
		return 0;
	/* Only when missing: CREATE INDEX IF NOT EXISTS would still take a
	 * SHARE lock on the live table, stalling its writers. */
	as_sql_scope_index_name(idx, sizeof(idx), t);
	as_pg_params_init(&p);
	as_pg_param_text(&p, idx);
	if (as_pg_int(s,
		      "SELECT (to_regclass(quote_ident($1)) IS NOT NULL)::int",
		      &p, &have, "publish: scope index", err))
		return err->code;
	if (have)
		return 0;
	as_sql_add_scope_index(&b, t, r->live_q);
	ret = as_pg_exec_buf(s, &b, NULL, NULL, "publish: scope index", err);
	as_buf_free(&b);
	return ret;
}

/*
 * The first publish of a table: every staged row is new, so the staging
 * table itself becomes the live table (made durable by SET LOGGED, which
 * writes it to the WAL in one pass) instead of being copied row by row.
 * Nobody can read a table that does not exist yet; all of it is undone
 * if the transaction rolls back.
 */
static int adopt_stage(pg_store *s, as_run_ctx *rc, as_error *err)
{
	pg_run *r = rc->priv;
	const as_table *t = rc->table;
	as_buf b = AS_BUF_INIT;
	as_pg_params p;
	char from[200], to[200];
	int64_t taken;
	int ret;

	as_buf_printf(&b, "ALTER TABLE %s SET LOGGED", r->stage_q);
	if ((ret = as_pg_exec_buf(s, &b, NULL, NULL,
				  "publish: making the staging "
				  "durable",
				  err)))
		goto done;
	as_buf_printf(&b, "ALTER TABLE %s RENAME TO %s", r->stage_q, r->live_q);
	if ((ret = as_pg_exec_buf(s, &b, NULL, NULL,
				  "publish: creating the table", err)))
		goto done;
	snprintf(from, sizeof(from), "%s_pkey", r->stage);
	snprintf(to, sizeof(to), "%s_pkey", t->table);
	as_pg_params_init(&p);
	as_pg_param_text(&p, to);
	if ((ret = as_pg_int(
		     s,
		     "SELECT (to_regclass(quote_ident($1)) IS NOT NULL)::int",
		     &p, &taken, "publish: naming the key", err)))
		goto done;
	if (!taken) {
		as_buf_adds(&b, "ALTER INDEX ");
		as_buf_add_ident(&b, from);
		as_buf_adds(&b, " RENAME TO ");
		as_buf_add_ident(&b, to);
		if ((ret = as_pg_exec_buf(s, &b, NULL, NULL,
					  "publish: naming the key", err)))
			goto done;
	}
	as_pg_params_init(&p);
	as_pg_param_text(&p, r->stage);
	if ((ret = as_pg_exec(
		     s,
		     "DELETE FROM atomsync_stage_alive WHERE stage_table = $1",
		     &p, NULL, "publish: creating the table", err)))
		goto done;
	r->adopted = 1;
done:
	as_buf_free(&b);
	return ret;
}

/* COMMIT's answer was lost with the connection: the run row, written in
 * the same transaction, tells whether it committed. */
static int commit_outcome(pg_store *s, as_run_ctx *rc, as_error *err)
{
	as_pg_params p;
	PGresult *res;
	int done;

	if (PQstatus(s->conn) != CONNECTION_BAD)
		return err->code;
	PQreset(s->conn);
	if (PQstatus(s->conn) != CONNECTION_OK)
		return err->code;
	as_pg_params_init(&p);
	as_pg_param_int(&p, rc->run_id);
	res = PQexecParams(s->conn,
			   "SELECT status FROM atomsync_runs WHERE run_id = $1",
			   1, NULL, p.v, NULL, NULL, 0);
	done = res && PQresultStatus(res) == PGRES_TUPLES_OK &&
	       PQntuples(res) == 1 &&
	       strcmp(PQgetvalue(res, 0, 0), "completed") == 0;
	PQclear(res);
	if (!done)
		return err->code;
	as_warn("dataset %s: the connection was lost at COMMIT, but run %lld is "
		"recorded as completed: the publish committed",
		rc->table->dataset, (long long)rc->run_id);
	as_error_clear(err);
	return 0;
}

/* Invariants 1, 2: the columns this run found join the live table inside
 * the publish transaction (ALTER TABLE is transactional in PostgreSQL), in
 * the order the staging has them, so both keep one layout; an integer
 * column that saw a real becomes double precision. */
static int alter_live(pg_store *s, as_run_ctx *rc, as_error *err)
{
	pg_run *r = rc->priv;
	const as_table *t = rc->table;
	as_buf b = AS_BUF_INIT;
	int ret = 0, changed = 0;

	for (size_t i = 0; !ret && i < t->ncols; i++) {
		int widen = i < r->live_ncols &&
			    (t->cols[i].flags & AS_COL_WIDENED);

		if (i < r->live_ncols && !widen)
			continue;
		changed = 1;
		if (as_schema_alter_sql(&b, r->live_q, &t->cols[i],
					as_pg_type(t->cols[i].type), widen))
			ret = as_error_set(err, AS_ENOMEM, "out of memory");
		else
			ret = as_pg_exec_buf(s, &b, NULL, NULL,
					     "publish: adding columns", err);
	}
	as_buf_free(&b);
	if (!ret && changed)
		as_crash_point("publish.altered");
	return ret;
}

static const char COLUMNS_SQL[] =
	"CREATE TABLE IF NOT EXISTS atomsync_columns("
	" table_name text NOT NULL, col text NOT NULL,"
	" type text NOT NULL, added_run bigint,"
	" widened_run bigint, field text,"
	" PRIMARY KEY (table_name, col));"
	"CREATE TABLE IF NOT EXISTS atomsync_run_schema("
	" run_id bigint PRIMARY KEY,"
	" columns_added text, columns_widened text,"
	" discarded_values bigint NOT NULL DEFAULT 0,"
	" discarded_rows bigint NOT NULL DEFAULT 0)";

/* The schema bookkeeping tables, made by the first publish that needs
 * them.  Concurrent first publishes serialize on the schema's advisory
 * lock (CREATE IF NOT EXISTS races on the catalog: two workers on two
 * datasets would both try to create the type, and one would fail). */
static int column_tables(pg_store *s, as_error *err)
{
	int64_t have;

	if (as_pg_int(
		    s,
		    "SELECT (to_regclass('atomsync_columns') IS NOT NULL "
		    "AND to_regclass('atomsync_run_schema') IS NOT NULL)::int",
		    NULL, &have, "publish: recording columns", err))
		return err->code;
	if (have)
		return 0;
	return as_pg_exec(s, "SELECT pg_advisory_xact_lock(2053462381)", NULL,
			  NULL, "publish: recording columns", err) ||
			       as_pg_exec(s, COLUMNS_SQL, NULL, NULL,
					  "publish: recording columns", err)
		       ? err->code
		       : 0;
}

/* atomsync_columns: the inferred columns of a table with their type and
 * the run that added (or widened) them, for `runs`. */
static int record_columns(pg_store *s, as_run_ctx *rc, as_error *err)
{
	const as_table *t = rc->table;
	as_pg_params p;
	int ret;

	if ((ret = column_tables(s, err)))
		return ret;
	for (size_t i = 0; !ret && i < t->ncols; i++) {
		const as_col *c = &t->cols[i];

		if (!(c->flags & (AS_COL_NEW | AS_COL_WIDENED)))
			continue;
		as_pg_params_init(&p);
		as_pg_param_text(&p, t->table);
		as_pg_param_text(&p, c->name);
		as_pg_param_text(&p, as_type_name(c->type));
		as_pg_param_int(&p, rc->run_id);
		if (c->flags & AS_COL_WIDENED)
			as_pg_param_int(&p, rc->run_id);
		else
			as_pg_param_text(&p, NULL);
		as_pg_param_text(&p, c->path);
		ret = as_pg_exec(
			s,
			"INSERT INTO atomsync_columns VALUES($1, $2, $3, $4, "
			"$5, $6) ON CONFLICT (table_name, col) DO UPDATE SET "
			"type = excluded.type, widened_run = excluded.widened_run",
			&p, NULL, "publish: recording columns", err);
	}
	if (!ret) {
		char *added = as_schema_cols_json(t, AS_COL_NEW);
		char *wide = as_schema_cols_json(t, AS_COL_WIDENED);

		as_pg_params_init(&p);
		as_pg_param_int(&p, rc->run_id);
		as_pg_param_text(&p, added);
		as_pg_param_text(&p, wide);
		as_pg_param_int(&p, rc->discarded_values);
		as_pg_param_int(&p, rc->discarded_rows);
		ret = !added || !wide
			      ? as_error_set(err, AS_ENOMEM, "out of memory")
			      : as_pg_exec(s,
					   "INSERT INTO atomsync_run_schema "
					   "VALUES($1, $2, $3, $4, $5) ON "
					   "CONFLICT (run_id) DO NOTHING",
					   &p, NULL,
					   "publish: recording columns", err);
		free(added);
		free(wide);
	}
	return ret;
}

/* runs: the columns each run added and widened, and what it discarded. */
int as_pg_run_schema_fill(pg_store *s, as_run_info *v, size_t n, as_error *err)
{
	as_pg_params p;
	PGresult *res;
	int exists;

	if (!n)
		return 0;
	if (as_pg_table_exists(s, "atomsync_run_schema", &exists, err))
		return err->code;
	if (!exists)
		return 0;
	for (size_t i = 0; i < n; i++) {
		as_pg_params_init(&p);
		as_pg_param_int(&p, v[i].run_id);
		if (as_pg_exec(s,
			       "SELECT columns_added, columns_widened, "
			       "discarded_values, discarded_rows FROM "
			       "atomsync_run_schema WHERE run_id = $1",
			       &p, &res, "reading runs", err))
			return err->code;
		if (PQntuples(res) == 1) {
			if (!PQgetisnull(res, 0, 0))
				v[i].columns_added =
					as_strdup(PQgetvalue(res, 0, 0));
			if (!PQgetisnull(res, 0, 1))
				v[i].columns_widened =
					as_strdup(PQgetvalue(res, 0, 1));
			v[i].discarded_values =
				strtoll(PQgetvalue(res, 0, 2), NULL, 10);
			v[i].discarded_rows =
				strtoll(PQgetvalue(res, 0, 3), NULL, 10);
		}
		PQclear(res);
	}
	return 0;
}

/* What one run's publish does inside the publish transaction (BEGIN done,
 * COMMIT after): fence, base, guards, outbox, apply, history, bookkeeping. */
static int publish_in_txn(pg_store *s, as_run_ctx *rc,
			  const as_publish_opts *po, as_counts *c,
			  as_error *err)
{
	pg_run *r = rc->priv;
	const as_table *t = rc->table;
	int64_t C = 0, scope_rows = 0, guarded = 0;
	pg_spans sp;
	int ret, exists = 0;
	as_sql q;

	as_pg_sql(s, &q);
	/* the lease, and the live state the staging was built on */
	if ((ret = as_sql_publish_fence(&q, rc, r->stage, r->stage_base,
					err)) ||
	    (r->live_exists && t->infer && (ret = alter_live(s, rc, err))) ||
	    (ret = as_pg_spans_resolve(s, rc, &sp, err)) ||
	    (ret = publish_counts(s, rc, po, &sp, c, &C, &scope_rows, &guarded,
				  &exists, err)))
		return ret;
	if ((ret = as_sql_publish_guards(t, po, c, scope_rows, guarded, err)))
		return ret;
	/* Invariant 7: the outbox events (and NOTIFY), from the live rows
	 * before they change. */
	if ((ret = as_pg_outbox_publish(s, rc, c, exists, err)))
		return ret;
	if (r->stage && !exists && C > 0 && c->unchanged == 0 &&
	    (ret = adopt_stage(s, rc, err)))
		return ret;
	if (r->stage && (ret = create_live(s, rc, exists || r->adopted, err)))
		return ret;
	if (t->infer && (ret = record_columns(s, rc, err)))
		return ret;
	/* History (store/postgres_history.c): from the rows the run changed. */
	if ((ret = publish_apply(s, rc, c, C, err)) ||
	    (ret = as_pg_history_after(s, rc, po, c, err)) ||
	    (ret = publish_bookkeeping(s, rc, c, err)))
		return ret;
	c->live_after = c->live_before + c->inserted - c->deleted;
	return 0;
}

static int drop_stage(void *conn, const char *stage, as_error *err)
{
	return as_pg_drop_stage(conn, stage, err);
}

/* After the commit: the staging, unless it became the live table. */
static void drop_stage_after(pg_store *s, const pg_run *r)
{
	as_sql_drop_stage_after(s, drop_stage, r->adopted ? NULL : r->stage);
}

/*
 * The publish: one transaction that checks the lease and the guards, writes
 * only changed rows, deletes what a confirmed-complete run did not deliver,
 * moves the cursor and records the run.  Any failure rolls all of it back.
 */
int as_pg_publish(as_store *st, as_run_ctx *rc, const as_publish_opts *po,
		  as_counts *c, as_error *err)
{
	pg_store *s = (pg_store *)st;
	pg_run *r = rc->priv;
	const as_table *t = rc->table;
	int ret;

	as_sql_counts_start(c, rc);
	r->adopted = 0;
	if ((ret = as_pg_drain(s, err)) || (ret = mark_publishing(s, rc, err)))
		return ret;
	as_crash_point("publish.marked");
	if ((ret = as_pg_begin(s, 0, err)))
		return ret;
	as_crash_point("publish.begin");
	if ((ret = publish_in_txn(s, rc, po, c, err)))
		goto fail;
	as_crash_point("publish.before_commit");
	if (as_pg_commit(s, "publish: commit", err) &&
	    (ret = commit_outcome(s, rc, err)))
		goto fail;
	as_crash_point("publish.committed");
	drop_stage_after(s, r);
	return 0;
fail:
	as_pg_rollback(s);
	r->adopted = 0;
	if (ret == AS_ESTORE)
		as_error_prefix(err, "dataset %s", t->dataset);
	return ret;
}

/*
 * The runs of one group (the streams of one Singer input) published in ONE
 * transaction on st's connection (invariant 1 across tables): each run is
 * marked publishing on its own connection (stores[i], its staging drained
 * first), then one BEGIN, each run's publish in turn, one COMMIT.  A run
 * refused or failing rolls back the whole group; *bad is its index.
 */
int as_pg_publish_group(as_store *st, as_store *const *stores,
			as_run_ctx *const *rcs, const as_publish_opts *pos,
			as_counts *cs, size_t n, size_t *bad, as_error *err)
{
	pg_store *s = (pg_store *)st;
	int ret = 0;
	size_t i;

	*bad = 0;
	if (!n)
		return 0;
	for (i = 0; i < n; i++) {
		pg_store *own = (pg_store *)stores[i];

		as_sql_counts_start(&cs[i], rcs[i]);
		((pg_run *)rcs[i]->priv)->adopted = 0;
		if ((ret = as_pg_drain(own, err)) ||
		    (ret = mark_publishing(own, rcs[i], err))) {
			*bad = i;
			return ret;
		}
	}
	if ((ret = as_pg_drain(s, err)))
		return ret;
	as_crash_point("publish.group_marked");
	if ((ret = as_pg_begin(s, 0, err)))
		return ret;
	as_crash_point("publish.group_begin");
	for (i = 0; i < n; i++) {
		if (i)
			as_crash_point("publish.group_between");
		if ((ret = publish_in_txn(s, rcs[i], &pos[i], &cs[i], err))) {
			*bad = i;
			goto fail;
		}
	}
	as_crash_point("publish.group_before_commit");
	if (n && as_pg_commit(s, "publish: commit", err) &&
	    (ret = commit_outcome(s, rcs[n - 1], err))) {
		*bad = n - 1;
		goto fail;
	}
	as_crash_point("publish.group_committed");
	for (i = 0; i < n; i++)
		drop_stage_after(s, rcs[i]->priv);
	return 0;
fail:
	as_pg_rollback(s);
	for (i = 0; i < n; i++)
		((pg_run *)rcs[i]->priv)->adopted = 0;
	if (ret == AS_ESTORE)
		as_error_prefix(err, "dataset %s", rcs[*bad]->table->dataset);
	return ret;
}
