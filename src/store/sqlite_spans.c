/*
 * The SQLite store's spans (store.h, AS_ROW_SPAN): a run of live rows the
 * engine matched, line by line and in key order, to this run's input is
 * staged as one row of "<stage>_spans" instead of one staging row each.
 * The publish then reads only the live rows between spans, where the
 * changed and deleted rows are, instead of joining the whole live table
 * against the staging (an unchanged or slightly changed reload of a large
 * table stages and publishes almost nothing).
 *
 * Spans are taken as they are only when they can be trusted exactly:
 * sorted without overlap, and no staged row is one of their rows (the
 * engine makes spans only while the input's keys strictly increase, so
 * such a row is a later duplicate, which wins).  Otherwise the rows they
 * stand for are staged one by one, as unchanged rows are without spans
 * (a later staged duplicate is kept), and the publish goes on as before.
 */
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "store/sql_scan.h"
#include "store/sqlite_int.h"
#include "util/str.h"

/* "(?from, ...)" */
static void add_params(as_buf *b, size_t n, size_t from)
{
	as_buf_adds(b, "(");
	for (size_t i = 0; i < n; i++)
		as_buf_printf(b, "%s?%zu", i ? ", " : "", from + i);
	as_buf_adds(b, ")");
}

int as_sq_stage_span(sq_store *s, as_run_ctx *rc, const as_row *row,
		     as_error *err)
{
	sq_run *r = rc->priv;
	size_t k = rc->table->nkey;

	if (!row->hi || row->span <= 0)
		return as_error_set(err, AS_ESTORE,
				    "%s: staging a span that is "
				    "not closed (an engine bug); nothing was "
				    "published",
				    s->path);
	if (!r->ins_span) {
		as_buf b = AS_BUF_INIT;
		int rc2;

		as_buf_printf(&b, "INSERT INTO %s VALUES", r->spans_q);
		add_params(&b, 2 * k + 1, 1);
		rc2 = as_sq_prepare(s, as_buf_cstr(&b), &r->ins_span, err);
		as_buf_free(&b);
		if (rc2)
			return rc2;
	}
	for (size_t i = 0; i < k; i++) {
		as_sq_bind_val(r->ins_span, (int)i + 1, &row->v[i]);
		as_sq_bind_val(r->ins_span, (int)(k + i) + 1, &row->hi[i]);
	}
	sqlite3_bind_int64(r->ins_span, (int)(2 * k) + 1, row->span);
	if (sqlite3_step(r->ins_span) != SQLITE_DONE) {
		sqlite3_reset(r->ins_span);
		return as_sq_fail(s, err, "staging a span");
	}
	sqlite3_reset(r->ins_span);
	return 0;
}

void as_sq_add_gone_filter(as_buf *b, const as_table *t, const sq_run *r)
{
	as_sql_gone_filter(b, t, r->live_q, r->gone_q);
}

/* The two integers of a one-row query (as_sq_query_int reads one). */
static int query2(sq_store *s, as_buf *b, int64_t *x, int64_t *y, as_error *err)
{
	sqlite3_stmt *q;
	int rc = as_sq_prepare(s, as_buf_cstr(b), &q, err);

	as_buf_reset(b);
	if (rc)
		return rc;
	rc = sqlite3_step(q);
	if (rc == SQLITE_ROW) {
		*x = sqlite3_column_int64(q, 0);
		*y = sqlite3_column_int64(q, 1);
	}
	sqlite3_finalize(q);
	return rc == SQLITE_ROW ? 0 : as_sq_fail(s, err, "reading spans");
}

/* Stage every row the spans stand for, as an unchanged row (key, scope
 * and cursor values, hash and line), unless that key is staged already;
 * then forget the spans. */
static int materialize(sq_store *s, as_run_ctx *rc, as_error *err)
{
	sq_run *r = rc->priv;
	as_buf b = AS_BUF_INIT;
	int ret;

	as_sql_spans_materialize(&b, rc->table, r->stage_q, r->spans_q,
				 r->live_q);
	ret = as_sq_exec(s, as_buf_cstr(&b), err);
	as_buf_free(&b);
	return ret;
}

/* *bad = 1 when a span ends before it starts or overlaps the one before. */
static int overlapping(sq_store *s, as_run_ctx *rc, int *bad, as_error *err)
{
	sq_run *r = rc->priv;
	as_buf b = AS_BUF_INIT;
	int64_t n = 0;
	int ret;

	as_sql_spans_overlap(&b, rc->table, r->spans_q);
	ret = as_sq_query_int(s, as_buf_cstr(&b), NULL, &n, err);
	as_buf_free(&b);
	*bad = n > 0;
	return ret;
}

typedef struct gap_walk {
	sqlite3_stmt *spans, *first, *mid, *last, *gone;
	sqlite3_value **prev; /* nkey: the last span's hi */
	int64_t rows, staged, deleted;
} gap_walk;

/* SELECT staged?, key... FROM live WHERE key in one gap */
static int prepare_gap(sq_store *s, as_run_ctx *rc, int lower, int upper,
		       sqlite3_stmt **out, as_error *err)
{
	sq_run *r = rc->priv;
	const as_table *t = rc->table;
	as_buf b = AS_BUF_INIT;
	int ret;

	as_buf_printf(&b, "SELECT EXISTS (SELECT 1 FROM %s AS s WHERE ",
		      r->stage_q);
	as_sql_key_match(&b, t, "s", "l");
	as_buf_adds(&b, "), ");
	as_sql_key_list(&b, t, "l");
	as_buf_printf(&b, " FROM %s AS l WHERE ", r->live_q);
	if (lower) {
		as_sql_key_tuple(&b, t, NULL, "l");
		as_buf_adds(&b, " > ");
		add_params(&b, t->nkey, 1);
	}
	if (upper) {
		if (lower)
			as_buf_adds(&b, " AND ");
		as_sql_key_tuple(&b, t, NULL, "l");
		as_buf_adds(&b, " < ");
		add_params(&b, t->nkey, lower ? t->nkey + 1 : 1);
	}
	ret = as_sq_prepare(s, as_buf_cstr(&b), out, err);
	as_buf_free(&b);
	return ret;
}

/* Read the live rows of one gap; bounds are bound already. */
static int walk_gap(sq_store *s, as_run_ctx *rc, gap_walk *w, sqlite3_stmt *g,
		    as_error *err)
{
	size_t k = rc->table->nkey;
	int step;

	while ((step = sqlite3_step(g)) == SQLITE_ROW) {
		w->rows++;
		if (sqlite3_column_int(g, 0)) {
			w->staged++;
			continue;
		}
		w->deleted++;
		if (!w->gone)
			continue;
		for (size_t i = 0; i < k; i++)
			sqlite3_bind_value(w->gone, (int)i + 1,
					   sqlite3_column_value(g, (int)i + 1));
		if (sqlite3_step(w->gone) != SQLITE_DONE) {
			int ret = as_sq_fail(s, err, "recording a deletion");

			sqlite3_reset(w->gone);
			sqlite3_reset(g);
			return ret;
		}
		sqlite3_reset(w->gone);
	}
	if (step != SQLITE_DONE) {
		int ret = as_sq_fail(s, err, "reading the live table");

		sqlite3_reset(g);
		return ret;
	}
	sqlite3_reset(g);
	return 0;
}

static void walk_free(gap_walk *w, size_t k)
{
	sqlite3_finalize(w->spans);
	sqlite3_finalize(w->first);
	sqlite3_finalize(w->mid);
	sqlite3_finalize(w->last);
	sqlite3_finalize(w->gone);
	if (w->prev)
		for (size_t i = 0; i < k; i++)
			sqlite3_value_free(w->prev[i]);
	free(w->prev);
}

/* Walk the gaps between spans (before the first, between each two, after
 * the last): count their live rows, and of those the staged ones; record
 * the others in "<stage>_gone" when the run deletes (full mode). */
static int walk_gaps(sq_store *s, as_run_ctx *rc, gap_walk *w, as_error *err)
{
	sq_run *r = rc->priv;
	const as_table *t = rc->table;
	size_t k = t->nkey;
	as_buf b = AS_BUF_INIT;
	int ret, step, first = 1;

	w->prev = calloc(k, sizeof(*w->prev));
	if (!w->prev)
		return as_error_set(err, AS_ENOMEM, "%s: out of memory",
				    s->path);
	if ((ret = prepare_gap(s, rc, 0, 1, &w->first, err)) ||
	    (ret = prepare_gap(s, rc, 1, 1, &w->mid, err)) ||
	    (ret = prepare_gap(s, rc, 1, 0, &w->last, err)))
		return ret;
	as_buf_adds(&b, "SELECT ");
	for (size_t i = 0; i < k; i++)
		as_buf_printf(&b, "lo%zu, ", i + 1);
	for (size_t i = 0; i < k; i++)
		as_buf_printf(&b, "%shi%zu", i ? ", " : "", i + 1);
	as_buf_printf(&b, " FROM %s ORDER BY ", r->spans_q);
	for (size_t i = 0; i < k; i++)
		as_buf_printf(&b, "%slo%zu", i ? ", " : "", i + 1);
	ret = as_sq_prepare(s, as_buf_cstr(&b), &w->spans, err);
	as_buf_reset(&b);
	if (!ret && t->mode == AS_MODE_FULL) {
		/* A table of the publish transaction, not a temp one: a temp
		 * table needs a file of its own, and failing to open one says
		 * nothing of why. */
		as_buf_printf(&b, "DROP TABLE IF EXISTS %s; CREATE TABLE %s(",
			      r->gone_q, r->gone_q);
		as_sql_key_list(&b, t, NULL);
		as_buf_adds(&b, ")");
		ret = as_sq_exec(s, as_buf_cstr(&b), err);
		as_buf_reset(&b);
		if (!ret) {
			as_buf_printf(&b, "INSERT INTO %s VALUES", r->gone_q);
			add_params(&b, k, 1);
			ret = as_sq_prepare(s, as_buf_cstr(&b), &w->gone, err);
		}
	}
	as_buf_free(&b);
	if (ret)
		return ret;
	while ((step = sqlite3_step(w->spans)) == SQLITE_ROW) {
		sqlite3_stmt *g = first ? w->first : w->mid;

		for (size_t i = 0; i < k; i++) {
			if (!first)
				sqlite3_bind_value(g, (int)i + 1, w->prev[i]);
			sqlite3_bind_value(
				g, (int)(first ? i : k + i) + 1,
				sqlite3_column_value(w->spans, (int)i));
		}
		if ((ret = walk_gap(s, rc, w, g, err)))
			return ret;
		for (size_t i = 0; i < k; i++) {
			sqlite3_value_free(w->prev[i]);
			w->prev[i] = sqlite3_value_dup(
				sqlite3_column_value(w->spans, (int)(k + i)));
			if (!w->prev[i])
				return as_error_set(err, AS_ENOMEM,
						    "%s: out of memory",
						    s->path);
		}
		first = 0;
	}
	if (step != SQLITE_DONE)
		return as_sq_fail(s, err, "reading spans");
	for (size_t i = 0; i < k; i++)
		sqlite3_bind_value(w->last, (int)i + 1, w->prev[i]);
	return walk_gap(s, rc, w, w->last, err);
}

int as_sq_spans_resolve(sq_store *s, as_run_ctx *rc, sq_spans *sp,
			as_error *err)
{
	sq_run *r = rc->priv;
	const as_table *t = rc->table;
	gap_walk w;
	as_buf b = AS_BUF_INIT;
	int64_t nspans = 0, staged_live = 0;
	int ret, exists, bad = 0;

	memset(sp, 0, sizeof(*sp));
	r->gone = 0;
	if (!r->stage)
		return 0;
	if ((ret = as_sq_table_exists(s, r->spans, &exists, err)) || !exists)
		return ret;
	as_buf_printf(&b, "SELECT count(*), coalesce(sum(n), 0) FROM %s",
		      r->spans_q);
	if ((ret = query2(s, &b, &nspans, &sp->rows, err)) || nspans == 0)
		goto done;
	if ((ret = as_sq_table_exists(s, t->table, &exists, err)))
		goto done;
	if (!exists) {
		ret = as_error_set(
			err, AS_ESTORE,
			"%s: table %s was dropped while "
			"this run's staging refers to its rows; nothing "
			"was published (run again with --restart)",
			s->path, t->table);
		goto done;
	}
	/* Scoped and cursor runs need each row's values: the engine makes no
	 * spans for them, but a staging may outlive a configuration. */
	if ((t->mode != AS_MODE_FULL && t->mode != AS_MODE_INCREMENTAL) ||
	    t->nscope || t->cursor >= 0)
		bad = 1;
	else if ((ret = overlapping(s, rc, &bad, err)))
		goto done;
	if (!bad) {
		memset(&w, 0, sizeof(w));
		ret = walk_gaps(s, rc, &w, err);
		walk_free(&w, t->nkey);
		if (ret)
			goto done;
		/* Every staged row that is in the live table must lie in a
		 * gap: one inside a span is a duplicate of a span's row. */
		as_sql_staged_live(&b, t, r->stage_q, r->live_q);
		if ((ret = as_sq_query_int(s, as_buf_cstr(&b), NULL,
					   &staged_live, err)))
			goto done;
		bad = staged_live != w.staged;
		if (!bad) {
			sp->active = 1;
			sp->gap_rows = w.rows;
			sp->gone = t->mode == AS_MODE_FULL ? w.deleted : 0;
			r->gone = t->mode == AS_MODE_FULL;
			goto done;
		}
	}
	sp->rows = 0;
	ret = materialize(s, rc, err);
done:
	as_buf_free(&b);
	return ret;
}
