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

const as_hist_types as_pg_hist_types = {"bigint", "bytea", as_pg_type,
					as_pg_type_of};

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

int as_pg_hist_meta_read(pg_store *s, const char *dataset, as_hist_meta *m,
			 as_error *err)
{
	as_sql q;

	as_pg_sql(s, &q);
	return as_sql_hist_meta_read(&q, dataset, m, err);
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
	as_hist_meta m;
	int reset, baseline, ret, exists;
	as_hist h;
	as_sql q;

	as_pg_sql(s, &q);
	if ((ret = as_sql_hist_open(&q, t, po, &h, &m, &reset, err)) ||
	    (ret = as_pg_table_exists(s, t->table, &exists, err)))
		goto done;
	baseline = reset || c->live_before == 0;
	if ((ret = as_sql_hist_write_live(&q, &h, t, r->live_q, rc->run_id,
					  baseline, exists, err)) ||
	    (exists && h.kind == AS_HISTORY_SCD2 && !baseline &&
	     (ret = scd2_changes(s, rc, &h, c, rows_q, err))))
		goto done;
	as_crash_point("history.written");
	if ((ret = as_sql_hist_record(&q, &h, t, rc->run_id, reset, err)))
		goto done;
	ret = as_sql_hist_prune(&q, rc, po, &h, err);
done:
	free(m.columns);
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
