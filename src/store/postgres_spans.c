/*
 * The PostgreSQL store's spans (store.h, AS_ROW_SPAN; the scan that makes
 * them is store/postgres_scan.c): a run of live rows the engine matched,
 * line by line and in key order, to this run's input is staged as one row
 * of "<stage>_spans" (lo keys, hi keys, n) instead of one staging row each.
 * In the publish transaction, before the counts, as_pg_spans_resolve either
 * takes them as they are, reading only the live rows between spans (the
 * gaps, where the changed and deleted rows are) with one statement, or,
 * when they cannot be trusted exactly, stages the rows they stand for one
 * by one so the publish goes on as if no span had been made.  The rules
 * are SQLite's (store/sqlite_spans.c); the SQL they share is sql_scan.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/postgres_int.h"
#include "store/sql_scan.h"
#include "util/str.h"

static char *spans_name(const pg_run *r)
{
	return as_sprintf("%s_spans", r->stage);
}

/* pg_temp."_atomsync_gone_<run>": the deletions of a publish with spans. */
static void gone_name(const as_run_ctx *rc, char *buf, size_t cap)
{
	snprintf(buf, cap, "pg_temp.\"_atomsync_gone_%lld\"",
		 (long long)rc->run_id);
}

int as_pg_spans_table(pg_store *s, as_run_ctx *rc, char **q, as_error *err)
{
	const as_table *t = rc->table;
	char *name = spans_name(rc->priv);
	as_buf b = AS_BUF_INIT;
	int ret;

	*q = name ? as_quote_ident(name) : NULL;
	free(name);
	if (!*q)
		return as_error_set(err, AS_ENOMEM, "out of memory");
	as_buf_printf(&b, "CREATE UNLOGGED TABLE IF NOT EXISTS %s(", *q);
	for (int hi = 0; hi < 2; hi++)
		for (size_t i = 0; i < t->nkey; i++)
			as_buf_printf(&b, "%s%zu %s, ", hi ? "hi" : "lo", i + 1,
				      as_pg_type(t->cols[i].type));
	as_buf_adds(&b, "n bigint)");
	ret = as_pg_exec_buf(s, &b, NULL, NULL, "staging: spans", err);
	as_buf_free(&b);
	return ret;
}

void as_pg_gone_filter(as_buf *b, const as_run_ctx *rc)
{
	const pg_run *r = rc->priv;
	char gone[96];

	gone_name(rc, gone, sizeof(gone));
	as_sql_gone_filter(b, rc->table, r->live_q, gone);
}

/* The live rows of one kind of gap: before the first span (which 0),
 * between two (1), after the last (2); x is the span after the gap. */
static void add_gap(as_buf *b, const as_table *t, const char *live_q, int which)
{
	as_buf_adds(b, "SELECT ");
	as_sql_key_list(b, t, "l");
	if (which == 0)
		as_buf_adds(b, " FROM (SELECT * FROM sp WHERE rn = 1) x");
	else if (which == 1)
		as_buf_adds(b, " FROM (SELECT * FROM sp WHERE rn > 1) x");
	else
		as_buf_adds(b, " FROM (SELECT * FROM sp ORDER BY rn DESC "
			       "LIMIT 1) x");
	as_buf_printf(b, " CROSS JOIN LATERAL (SELECT * FROM %s AS l WHERE ",
		      live_q);
	as_sql_key_tuple(b, t, NULL, "l");
	as_buf_adds(b, which == 2 ? " > " : " < ");
	as_sql_key_tuple(b, t, which == 2 ? "x.hi" : "x.lo", NULL);
	if (which == 1) {
		as_buf_adds(b, " AND ");
		as_sql_key_tuple(b, t, NULL, "l");
		as_buf_adds(b, " > ");
		as_sql_key_tuple(b, t, "x.p", NULL);
	}
	as_buf_adds(b, ") l");
}

/* One statement over every gap: their live rows, of those the staged
 * ones, and the others into the gone table when the run deletes. */
static int walk_gaps(pg_store *s, as_run_ctx *rc, const char *spans_q,
		     int64_t *rows, int64_t *staged, as_error *err)
{
	pg_run *r = rc->priv;
	const as_table *t = rc->table;
	as_buf b = AS_BUF_INIT;
	PGresult *res;
	char gone[96];
	int ret, full = t->mode == AS_MODE_FULL;

	gone_name(rc, gone, sizeof(gone));
	if (full) {
		as_buf_printf(&b,
			      "DROP TABLE IF EXISTS %s; CREATE TEMP TABLE "
			      "%s ON COMMIT DROP AS SELECT ",
			      gone, gone);
		as_sql_key_list(&b, t, NULL);
		as_buf_printf(&b, " FROM %s WITH NO DATA", r->live_q);
		if ((ret = as_pg_exec_buf(s, &b, NULL, NULL, "publish: spans",
					  err)))
			goto done;
	}
	as_buf_adds(&b, "WITH sp AS (SELECT *");
	for (size_t i = 0; i < t->nkey; i++)
		as_buf_printf(&b, ", lag(hi%zu) OVER w AS p%zu", i + 1, i + 1);
	as_buf_printf(&b,
		      ", row_number() OVER w AS rn FROM %s WINDOW w AS "
		      "(ORDER BY ",
		      spans_q);
	for (size_t i = 0; i < t->nkey; i++)
		as_buf_printf(&b, "%slo%zu", i ? ", " : "", i + 1);
	as_buf_adds(&b, ")), g AS (");
	for (int which = 0; which < 3; which++) {
		if (which)
			as_buf_adds(&b, " UNION ALL ");
		add_gap(&b, t, r->live_q, which);
	}
	as_buf_printf(&b,
		      "), h AS (SELECT g.*, EXISTS (SELECT 1 FROM %s AS s "
		      "WHERE ",
		      r->stage_q);
	as_sql_key_match(&b, t, "s", "g");
	as_buf_adds(&b, ") AS st FROM g)");
	if (full) {
		as_buf_printf(&b, ", d AS (INSERT INTO %s SELECT ", gone);
		as_sql_key_list(&b, t, NULL);
		as_buf_adds(&b, " FROM h WHERE NOT st)");
	}
	as_buf_adds(&b, " SELECT count(*), count(*) FILTER (WHERE st) FROM h");
	/* The planner cannot know the gaps are small: its estimate would
	 * start JIT compilation, which costs more than the statement. */
	if ((ret = as_pg_exec(s, "SET LOCAL jit = off", NULL, NULL,
			      "publish: spans", err)) ||
	    (ret = as_pg_exec(s, as_buf_cstr(&b), NULL, &res, "publish: spans",
			      err)))
		goto done;
	*rows = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	*staged = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
	PQclear(res);
	ret = as_pg_exec(s, "RESET jit", NULL, NULL, "publish: spans", err);
done:
	as_buf_free(&b);
	return ret;
}

/* Spans taken as they are: the gaps hold every other live row, and every
 * staged row that is live lies in a gap (one inside a span is a duplicate
 * of a span's row, which the engine leaves to this check). *ok = 0
 * otherwise. */
static int take_spans(pg_store *s, as_run_ctx *rc, const char *spans_q,
		      pg_spans *sp, int *ok, as_error *err)
{
	pg_run *r = rc->priv;
	const as_table *t = rc->table;
	as_buf b = AS_BUF_INIT;
	int64_t bad = 0, rows = 0, staged = 0, staged_live = 0;
	int ret;

	*ok = 0;
	/* Scoped and cursor runs need each row's values: the engine makes no
	 * spans for them, but a staging may outlive a configuration. */
	if ((t->mode != AS_MODE_FULL && t->mode != AS_MODE_INCREMENTAL) ||
	    t->nscope || t->cursor >= 0)
		return 0;
	as_sql_spans_overlap(&b, t, spans_q);
	if ((ret = as_pg_int_buf(s, &b, NULL, &bad, "publish: spans", err)) ||
	    bad)
		goto done;
	if ((ret = walk_gaps(s, rc, spans_q, &rows, &staged, err)))
		goto done;
	as_sql_staged_live(&b, t, r->stage_q, r->live_q);
	if ((ret = as_pg_int_buf(s, &b, NULL, &staged_live, "publish: spans",
				 err)) ||
	    staged_live != staged)
		goto done;
	*ok = 1;
	sp->active = 1;
	sp->gap_rows = rows;
	sp->gone = t->mode == AS_MODE_FULL ? rows - staged : 0;
	r->gone = t->mode == AS_MODE_FULL;
done:
	as_buf_free(&b);
	return ret;
}

int as_pg_spans_resolve(pg_store *s, as_run_ctx *rc, pg_spans *sp,
			as_error *err)
{
	pg_run *r = rc->priv;
	const as_table *t = rc->table;
	as_buf b = AS_BUF_INIT;
	char *name = NULL, *q = NULL;
	PGresult *res;
	int64_t nspans = 0;
	int ret = 0, exists = 0, ok = 0;

	memset(sp, 0, sizeof(*sp));
	r->gone = 0;
	if (!r->stage)
		return 0;
	if (!(name = spans_name(r)) || !(q = as_quote_ident(name))) {
		ret = as_error_set(err, AS_ENOMEM, "out of memory");
		goto done;
	}
	if ((ret = as_pg_table_exists(s, name, &exists, err)) || !exists)
		goto done;
	as_buf_printf(&b, "SELECT count(*), coalesce(sum(n), 0) FROM %s", q);
	if ((ret = as_pg_exec(s, as_buf_cstr(&b), NULL, &res, "publish: spans",
			      err)))
		goto done;
	as_buf_reset(&b);
	nspans = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	sp->rows = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
	PQclear(res);
	if (nspans == 0)
		goto done;
	if ((ret = as_pg_table_exists(s, t->table, &exists, err)))
		goto done;
	if (!exists) {
		ret = as_error_set(err, AS_ESTORE,
				   "table %s was dropped while this run's "
				   "staging refers to its rows; nothing was "
				   "published (run again with --restart)",
				   t->table);
		goto done;
	}
	if ((ret = take_spans(s, rc, q, sp, &ok, err)) || ok)
		goto done;
	memset(sp, 0, sizeof(*sp));
	r->gone = 0;
	as_sql_spans_materialize(&b, t, r->stage_q, q, r->live_q);
	ret = as_pg_exec_buf(s, &b, NULL, NULL, "publish: spans", err);
done:
	as_buf_free(&b);
	free(name);
	free(q);
	return ret;
}
