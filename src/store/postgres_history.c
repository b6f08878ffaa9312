/*
 * The PostgreSQL store's history (`history: snapshot | scd2`): <table>_history
 * written inside the publish transaction from the rows it changed, pruned
 * there by history_keep, and the rollback that restores the live table to a
 * run's state in one fenced transaction.  No DDL touches a live table.
 */
#include <stdlib.h>
#include <string.h>

#include "store/postgres_int.h"
#include "util/crash.h"
#include "util/log.h"
#include "util/str.h"

static const as_hist_types TYPES = {"bigint", "bytea", as_pg_type,
				    as_pg_type_of};

/* One row per dataset with history: its shape and the runs it can restore
 * (first_run..last_run; last_run is the newest run that wrote history). */
static const char *META_SQL =
	"CREATE TABLE IF NOT EXISTS atomsync_history("
	" dataset text PRIMARY KEY, table_name text NOT NULL, kind text NOT NULL,"
	" columns text NOT NULL, restorable boolean NOT NULL,"
	" first_run bigint NOT NULL, last_run bigint NOT NULL)";

/* (p.c1, ..., p."_atomsync_hash"): every mapped column and the hash. */
void as_pg_add_row_tuple(as_buf *b, const as_table *t, const char *prefix)
{
	as_buf_adds(b, "(");
	for (size_t i = 0; i < t->ncols; i++) {
		as_buf_printf(b, "%s.", prefix);
		as_buf_add_ident(b, t->cols[i].name);
		as_buf_adds(b, ", ");
	}
	as_buf_printf(b, "%s.\"_atomsync_hash\")", prefix);
}

/* Run b (reset afterwards) with $1 = v when b uses it. */
int as_pg_exec_run(pg_store *s, as_buf *b, int64_t v, int64_t *changes,
		   const char *what, as_error *err)
{
	as_pg_params p;

	as_pg_params_init(&p);
	if (strstr(as_buf_cstr(b), "$1"))
		as_pg_param_int(&p, v);
	return as_pg_exec_buf(s, b, &p, changes, what, err);
}

/* An inferring table: the history gains the columns the live table
 * gained, inside the publish transaction. */
int as_pg_hist_evolve(pg_store *s, const as_hist *h, as_table *t, as_error *err)
{
	as_sql q;

	as_pg_sql(s, &q);
	return as_sql_hist_evolve(&q, h, t, &TYPES, err);
}

/* An existing history table has the shape this configuration writes
 * (store/sql_history.c). */
int as_pg_hist_check(pg_store *s, const as_hist *h, as_table *t, as_error *err)
{
	as_sql q;

	as_pg_sql(s, &q);
	return as_sql_hist_check(&q, h, t, &TYPES, err);
}

/* The metadata table and the history table with its indexes, created on
 * first use; an existing history table must have this shape. */
static int hist_ensure(pg_store *s, const as_hist *h, as_table *t,
		       as_error *err)
{
	as_sql q;
	int exists, rc;

	if ((rc = as_pg_table_exists(s, "atomsync_history", &exists, err)))
		return rc;
	/* Concurrent first publishes serialize on the schema's advisory
	 * lock (CREATE IF NOT EXISTS races on the catalog). */
	if (!exists &&
	    ((rc = as_pg_exec(s, "SELECT pg_advisory_xact_lock(2053462381)",
			      NULL, NULL, "creating the history", err)) ||
	     (rc = as_pg_exec(s, META_SQL, NULL, NULL, "creating the history",
			      err))))
		return rc;
	if ((rc = as_pg_table_exists(s, h->name, &exists, err)))
		return rc;
	if (exists)
		return t->infer ? as_pg_hist_evolve(s, h, t, err)
				: as_pg_hist_check(s, h, t, err);
	as_pg_sql(s, &q);
	return as_sql_hist_create(&q, h, t, &TYPES, err);
}

int as_pg_hist_meta_read(pg_store *s, const char *dataset, as_hist_meta *m,
			 as_error *err)
{
	as_sql q;

	as_pg_sql(s, &q);
	return as_sql_hist_meta_read(&q, dataset, m, err);
}

static int published_run(pg_store *s, const char *dataset, int64_t *out,
			 as_error *err)
{
	as_pg_params p;

	as_pg_params_init(&p);
	as_pg_param_text(&p, dataset);
	return as_pg_int(
		s,
		"SELECT published_run FROM atomsync_state WHERE dataset = $1",
		&p, out, "reading state", err);
}

/*
 * SCD2 from the rows a run changed (rows_q: the table holding the run's
 * rows, changed ones with _atomsync_run set): close the open version of
 * each changed key whose content differs from the live row, and of each
 * key no longer live (deleted: only when the run deleted rows), then open
 * a version for every changed key left without one.
 */
static int scd2_changes(pg_store *s, as_run_ctx *rc, const as_hist *h,
			const as_counts *c, const char *rows_q, as_error *err)
{
	const as_table *t = rc->table;
	pg_run *r = rc->priv;
	as_buf b = AS_BUF_INIT;
	int ret = 0;

	if (c->deleted > 0) {
		as_buf_printf(
			&b,
			"UPDATE %s AS hv SET \"valid_to_run\" = $1 WHERE "
			"hv.\"valid_to_run\" IS NULL AND NOT EXISTS (SELECT 1 "
			"FROM %s AS l WHERE ",
			h->q, r->live_q);
		as_sql_key_match(&b, t, "l", "hv");
		as_buf_adds(&b, ")");
		if ((ret = as_pg_exec_run(s, &b, rc->run_id, NULL,
					  "history: deleted rows", err)))
			goto done;
	}
	if (!rows_q)
		goto done;
	as_buf_printf(&b,
		      "UPDATE %s AS hv SET \"valid_to_run\" = $1 FROM %s AS sr "
		      "JOIN %s AS l ON ",
		      h->q, rows_q, r->live_q);
	as_sql_key_match(&b, t, "sr", "l");
	as_buf_adds(&b, " WHERE sr.\"_atomsync_run\" IS NOT NULL AND "
			"hv.\"valid_to_run\" IS NULL AND ");
	as_sql_key_match(&b, t, "hv", "l");
	as_buf_adds(&b, " AND ");
	as_pg_add_row_tuple(&b, t, "hv");
	as_buf_adds(&b, " IS DISTINCT FROM ");
	as_pg_add_row_tuple(&b, t, "l");
	if ((ret = as_pg_exec_run(s, &b, rc->run_id, NULL,
				  "history: changed rows", err)))
		goto done;
	as_buf_printf(&b, "INSERT INTO %s", h->q);
	as_hist_add_insert_cols(&b, h, t);
	as_buf_adds(&b, " SELECT $1, NULL, ");
	as_hist_add_content(&b, h, t, "l");
	as_buf_printf(&b, " FROM %s AS sr JOIN %s AS l ON ", rows_q, r->live_q);
	as_sql_key_match(&b, t, "sr", "l");
	as_buf_printf(&b,
		      " WHERE sr.\"_atomsync_run\" IS NOT NULL AND NOT EXISTS "
		      "(SELECT 1 FROM %s AS hv WHERE ",
		      h->q);
	as_sql_key_match(&b, t, "hv", "l");
	as_buf_adds(&b, " AND hv.\"valid_to_run\" IS NULL)");
	ret = as_pg_exec_run(s, &b, rc->run_id, NULL, "history: new versions",
			     err);
done:
	as_buf_free(&b);
	return ret;
}

/* The oldest run to keep under history_keep, or 0 to keep everything. */
static int keep_from(pg_store *s, as_run_ctx *rc, const as_publish_opts *po,
		     int64_t first, int64_t *cutoff, as_error *err)
{
	as_pg_params p;
	int64_t v;

	*cutoff = 0;
	/* The run being published is not yet completed: it counts as kept. */
	if (po->history_keep_runs > 0) {
		as_pg_params_init(&p);
		as_pg_param_text(&p, rc->table->dataset);
		as_pg_param_int(&p, first);
		as_pg_param_int(&p, rc->run_id);
		as_pg_param_int(&p, po->history_keep_runs - 1);
		if (as_pg_int(
			    s,
			    "SELECT run_id FROM atomsync_runs WHERE dataset = $1 "
			    "AND run_id >= $2 AND (run_id = $3 OR (status = 'completed' "
			    "AND kind IN ('sync', 'rollback'))) ORDER BY run_id DESC "
			    "LIMIT 1 OFFSET $4",
			    &p, &v, "history retention", err))
			return err->code;
		*cutoff = v;
	}
	if (po->history_keep_ms > 0) {
		as_pg_params_init(&p);
		as_pg_param_text(&p, rc->table->dataset);
		as_pg_param_int(&p, first);
		as_pg_param_int(&p, rc->run_id);
		as_pg_param_int(&p, po->history_keep_ms);
		if (as_pg_int(
			    s,
			    "SELECT min(run_id) FROM atomsync_runs WHERE dataset = $1 "
			    "AND run_id >= $2 AND (run_id = $3 OR (status = 'completed' "
			    "AND kind IN ('sync', 'rollback') AND finished_at >= "
			    "clock_timestamp() - $4::bigint * interval '1 millisecond'))",
			    &p, &v, "history retention", err))
			return err->code;
		if (v > *cutoff)
			*cutoff = v;
	}
	return 0;
}

/* history_keep: drop what only runs before the cutoff need, and move the
 * oldest restorable run up to it. */
static int prune(pg_store *s, as_run_ctx *rc, const as_publish_opts *po,
		 const as_hist *h, as_error *err)
{
	as_buf b = AS_BUF_INIT;
	int64_t first = 0, cutoff, gone = 0;
	as_pg_params p;
	int ret;

	if (po->history_keep_runs <= 0 && po->history_keep_ms <= 0)
		return 0;
	as_pg_params_init(&p);
	as_pg_param_text(&p, rc->table->dataset);
	if ((ret = as_pg_int(
		     s,
		     "SELECT first_run FROM atomsync_history WHERE dataset = $1",
		     &p, &first, "history retention", err)) ||
	    (ret = keep_from(s, rc, po, first, &cutoff, err)) ||
	    cutoff <= first)
		return ret;
	/* A version closed at the cutoff was valid only before it. */
	if (h->kind == AS_HISTORY_SCD2)
		as_buf_printf(&b, "DELETE FROM %s WHERE \"valid_to_run\" <= $1",
			      h->q);
	else
		as_buf_printf(&b, "DELETE FROM %s WHERE \"run_id\" < $1", h->q);
	if ((ret = as_pg_exec_run(s, &b, cutoff, &gone, "history retention",
				  err)))
		goto done;
	as_pg_param_int(&p, cutoff);
	ret = as_pg_exec(
		s,
		"UPDATE atomsync_history SET first_run = $2 WHERE dataset = $1",
		&p, NULL, "history retention", err);
	if (!ret)
		as_debug("%s: history before run %lld pruned (%lld rows)",
			 rc->table->dataset, (long long)cutoff,
			 (long long)gone);
done:
	as_buf_free(&b);
	return ret;
}

/*
 * After the publish (or a rollback) changed the live table, in its
 * transaction: create the history on first use; decide whether its record
 * goes on from the last run that wrote it or starts over (history just
 * turned on, its shape changed, or runs were published without it); write
 * the snapshot of every live row, or the SCD2 versions of what changed
 * (every live row when starting over or coming from an empty table);
 * record which runs the history covers, and prune.
 */
int as_pg_history_write(pg_store *s, as_run_ctx *rc, const as_publish_opts *po,
			const as_counts *c, const char *rows_q, as_error *err)
{
	as_table *t = rc->table;
	pg_run *r = rc->priv;
	as_buf b = AS_BUF_INIT;
	as_pg_params p;
	as_hist_meta m;
	int64_t prev = 0;
	int reset, baseline, ret, exists;
	as_hist h;

	memset(&m, 0, sizeof(m));
	if ((ret = as_hist_build(&h, t, po, err)))
		return ret;
	if ((ret = hist_ensure(s, &h, t, err)) ||
	    (ret = as_pg_hist_meta_read(s, t->dataset, &m, err)) ||
	    (ret = published_run(s, t->dataset, &prev, err)) ||
	    (ret = as_pg_table_exists(s, t->table, &exists, err)))
		goto done;
	reset = !m.found || strcmp(m.kind, as_hist_kind_name(h.kind)) != 0 ||
		!as_streq(m.columns, h.colnames) || m.restorable != h.full ||
		m.last_run != prev;
	baseline = reset || c->live_before == 0;
	if (h.kind == AS_HISTORY_SCD2 && baseline) {
		as_buf_printf(&b,
			      "UPDATE %s SET \"valid_to_run\" = $1 WHERE "
			      "\"valid_to_run\" IS NULL",
			      h.q);
		if ((ret = as_pg_exec_run(s, &b, rc->run_id, NULL, "history",
					  err)))
			goto done;
	}
	if (exists && (h.kind == AS_HISTORY_SNAPSHOT || baseline)) {
		as_buf_printf(&b, "INSERT INTO %s", h.q);
		as_hist_add_insert_cols(&b, &h, t);
		as_buf_printf(&b, " SELECT $1, %s",
			      h.kind == AS_HISTORY_SCD2 ? "NULL, " : "");
		as_hist_add_content(&b, &h, t, NULL);
		as_buf_printf(&b, " FROM %s", r->live_q);
		if ((ret = as_pg_exec_run(s, &b, rc->run_id, NULL, "history",
					  err)))
			goto done;
	} else if (exists && (ret = scd2_changes(s, rc, &h, c, rows_q, err))) {
		goto done;
	}
	as_crash_point("history.written");
	as_pg_params_init(&p);
	as_pg_param_text(&p, t->dataset);
	as_pg_param_text(&p, t->table);
	as_pg_param_text(&p, as_hist_kind_name(h.kind));
	as_pg_param_text(&p, h.colnames);
	as_pg_param_text(&p, h.full ? "t" : "f");
	as_pg_param_int(&p, rc->run_id);
	as_pg_param_text(&p, reset ? "t" : "f");
	if ((ret = as_pg_exec(
		     s,
		     "INSERT INTO atomsync_history VALUES($1, $2, $3, $4, "
		     "$5::boolean, $6, $6) ON CONFLICT (dataset) DO UPDATE SET "
		     "table_name = excluded.table_name, kind = excluded.kind, "
		     "columns = excluded.columns, restorable = excluded.restorable, "
		     "first_run = CASE WHEN $7::boolean THEN excluded.first_run "
		     "ELSE atomsync_history.first_run END, "
		     "last_run = excluded.last_run",
		     &p, NULL, "recording history", err)))
		goto done;
	ret = prune(s, rc, po, &h, err);
done:
	free(m.columns);
	as_buf_free(&b);
	as_hist_free(&h);
	return ret;
}

/* ---- the hook in the publish (store/postgres_publish.c) ---- */

int as_pg_history_after(pg_store *s, as_run_ctx *rc, const as_publish_opts *po,
			const as_counts *c, as_error *err)
{
	pg_run *r = rc->priv;

	if (po->history == AS_HISTORY_NONE)
		return 0;
	return as_pg_history_write(s, rc, po, c,
				   !r->stage	? NULL
				   : r->adopted ? r->live_q
						: r->stage_q,
				   err);
}
