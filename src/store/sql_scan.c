/*
 * The spans' SQL text shared by the SQLite and PostgreSQL stores
 * (store/sql_scan.h): the same statements run on both.
 */
#include "store/sql_scan.h"
#include "util/str.h"

void as_sql_key_tuple(as_buf *b, const as_table *t, const char *prefix,
		      const char *alias)
{
	as_buf_adds(b, "(");
	for (size_t i = 0; i < t->nkey; i++) {
		if (i)
			as_buf_adds(b, ", ");
		if (prefix) {
			as_buf_printf(b, "%s%zu", prefix, i + 1);
		} else {
			as_buf_printf(b, "%s.", alias);
			as_buf_add_ident(b, t->cols[i].name);
		}
	}
	as_buf_adds(b, ")");
}

static void add_key_list(as_buf *b, const as_table *t, const char *alias)
{
	for (size_t i = 0; i < t->nkey; i++) {
		if (i)
			as_buf_adds(b, ", ");
		if (alias)
			as_buf_printf(b, "%s.", alias);
		as_buf_add_ident(b, t->cols[i].name);
	}
}

void as_sql_spans_overlap(as_buf *b, const as_table *t, const char *spans_q)
{
	as_buf_adds(b, "SELECT count(*) FROM (SELECT ");
	for (size_t i = 0; i < t->nkey; i++)
		as_buf_printf(b, "lo%zu, hi%zu, lag(hi%zu) OVER w AS p%zu, ",
			      i + 1, i + 1, i + 1, i + 1);
	as_buf_printf(
		b, "row_number() OVER w AS rn FROM %s WINDOW w AS (ORDER BY ",
		spans_q);
	for (size_t i = 0; i < t->nkey; i++)
		as_buf_printf(b, "%slo%zu", i ? ", " : "", i + 1);
	as_buf_adds(b, ")) AS x WHERE ");
	as_sql_key_tuple(b, t, "lo", NULL);
	as_buf_adds(b, " > ");
	as_sql_key_tuple(b, t, "hi", NULL);
	as_buf_adds(b, " OR (rn > 1 AND ");
	as_sql_key_tuple(b, t, "p", NULL);
	as_buf_adds(b, " >= ");
	as_sql_key_tuple(b, t, "lo", NULL);
	as_buf_adds(b, ")");
}

void as_sql_spans_materialize(as_buf *b, const as_table *t, const char *stage_q,
			      const char *spans_q, const char *live_q)
{
	as_buf_printf(b, "INSERT INTO %s(", stage_q);
	for (size_t i = 0; i < t->ncols; i++) {
		as_buf_add_ident(b, t->cols[i].name);
		as_buf_adds(b, ", ");
	}
	as_buf_adds(b, "\"_atomsync_run\", \"_atomsync_hash\", "
		       "\"_atomsync_line\") SELECT ");
	for (size_t i = 0; i < t->ncols; i++) {
		if (as_col_kept_unchanged(t, i)) {
			as_buf_adds(b, "l.");
			as_buf_add_ident(b, t->cols[i].name);
		} else {
			as_buf_adds(b, "NULL");
		}
		as_buf_adds(b, ", ");
	}
	as_buf_printf(
		b,
		"NULL, l.\"_atomsync_hash\", l.\"_atomsync_line\" FROM %s "
		"AS sp JOIN %s AS l ON ",
		spans_q, live_q);
	as_sql_key_tuple(b, t, NULL, "l");
	as_buf_adds(b, " >= ");
	as_sql_key_tuple(b, t, "sp.lo", NULL);
	as_buf_adds(b, " AND ");
	as_sql_key_tuple(b, t, NULL, "l");
	as_buf_adds(b, " <= ");
	as_sql_key_tuple(b, t, "sp.hi", NULL);
	/* WHERE true: SQLite's parser needs it between a join and ON
	 * CONFLICT. */
	as_buf_printf(b, " WHERE true ON CONFLICT DO NOTHING; DELETE FROM %s",
		      spans_q);
}

void as_sql_gone_filter(as_buf *b, const as_table *t, const char *live_q,
			const char *gone_q)
{
	as_sql_key_tuple(b, t, NULL, live_q);
	as_buf_adds(b, " IN (SELECT ");
	add_key_list(b, t, NULL);
	as_buf_printf(b, " FROM %s)", gone_q);
}

void as_sql_staged_live(as_buf *b, const as_table *t, const char *stage_q,
			const char *live_q)
{
	as_buf_printf(b,
		      "SELECT count(*) FROM %s AS s WHERE EXISTS "
		      "(SELECT 1 FROM %s AS l WHERE ",
		      stage_q, live_q);
	for (size_t i = 0; i < t->nkey; i++) {
		if (i)
			as_buf_adds(b, " AND ");
		as_buf_adds(b, "s.");
		as_buf_add_ident(b, t->cols[i].name);
		as_buf_adds(b, " = l.");
		as_buf_add_ident(b, t->cols[i].name);
	}
	as_buf_adds(b, ")");
}
