/*
 * The rollback's SQL both backends share: <temp>._atomsync_target (the
 * live table's content after the target run, from the history), its counts
 * and the changed rows for the outbox against the live table, before the
 * live table changes; then the change itself.
 */
#include <stdio.h>

#include "store/sql.h"

#include "util/crash.h"
#include "util/str.h"

int as_sql_rollback_target(const as_sql *q, const char *live_q,
			   const as_table *t, const as_hist *h, int64_t n,
			   int64_t run_id, as_error *err)
{
	const as_sql_dialect *d = q->d;
	const char *integer = d->type(AS_TYPE_INTEGER);
	as_buf b = AS_BUF_INIT;
	int ret;

	as_buf_printf(&b,
		      "DROP TABLE IF EXISTS %s._atomsync_target; CREATE TEMP "
		      "TABLE _atomsync_target (",
		      d->temp);
	for (size_t i = 0; i < t->ncols; i++) {
		as_buf_add_ident(&b, t->cols[i].name);
		as_buf_printf(&b, " %s, ", d->type(t->cols[i].type));
	}
	as_buf_printf(&b,
		      "\"_atomsync_run\" %s, \"_atomsync_hash\" %s, "
		      "\"_atomsync_line\" %s, PRIMARY KEY (",
		      integer, integer, d->blob_type);
	as_sql_key_list(&b, t, NULL);
	as_buf_printf(&b, "))%s", d->temp_suffix);
	if ((ret = as_sql_exec_buf(q, &b, "rollback: target", err)))
		goto done;
	as_buf_printf(&b, "INSERT INTO %s._atomsync_target SELECT ", d->temp);
	for (size_t i = 0; i < t->ncols; i++) {
		as_buf_add_ident(&b, t->cols[i].name);
		as_buf_adds(&b, ", ");
	}
	as_buf_printf(
		&b,
		"NULL, \"_atomsync_hash\", \"_atomsync_line\" FROM %s WHERE ",
		h->q);
	if (h->kind == AS_HISTORY_SCD2)
		as_buf_printf(
			&b,
			"\"valid_from_run\" <= %lld AND (\"valid_to_run\" "
			"IS NULL OR \"valid_to_run\" > %lld)",
			(long long)n, (long long)n);
	else
		as_buf_printf(&b, "\"run_id\" = %lld", (long long)n);
	if ((ret = as_sql_exec_buf(q, &b, "rollback: reading the history",
				   err)))
		goto done;
	if (d->analyze_temp) {
		as_buf_printf(&b, "ANALYZE %s._atomsync_target", d->temp);
		if ((ret = as_sql_exec_buf(q, &b, "rollback: target", err)))
			goto done;
	}
	as_buf_printf(&b,
		      "UPDATE %s._atomsync_target SET \"_atomsync_run\" = %lld "
		      "WHERE NOT EXISTS (SELECT 1 FROM %s%s AS l WHERE ",
		      d->temp, (long long)run_id, d->main, live_q);
	for (size_t i = 0; i < t->ncols; i++) {
		as_buf_adds(&b, i ? " AND l." : "l.");
		as_buf_add_ident(&b, t->cols[i].name);
		as_buf_printf(&b, "%s_atomsync_target.",
			      i < t->nkey ? " = " : d->is_not_distinct);
		as_buf_add_ident(&b, t->cols[i].name);
	}
	/* A row whose stored hash went stale (edited in place) is rewritten. */
	as_buf_printf(&b,
		      " AND l.\"_atomsync_hash\"%s"
		      "_atomsync_target.\"_atomsync_hash\")",
		      d->is_not_distinct);
	ret = as_sql_exec_buf(q, &b, "rollback: comparing", err);
done:
	as_buf_free(&b);
	return ret;
}

int as_sql_rollback_counts(const as_sql *q, const char *live_q,
			   const as_table *t, as_counts *c, as_error *err)
{
	const char *what = "rollback: counting";
	as_buf b = AS_BUF_INIT;
	int64_t sc[2]; /* target rows, changed ones among them */
	int ret;

	as_buf_printf(&b, "SELECT count(*) FROM %s%s", q->d->main, live_q);
	if ((ret = q->query_ints(q->conn, as_buf_cstr(&b), &c->live_before, 1,
				 what, err)))
		goto done;
	as_buf_reset(&b);
	as_buf_printf(&b,
		      "SELECT count(*), count(\"_atomsync_run\") FROM "
		      "%s._atomsync_target",
		      q->d->temp);
	if ((ret = q->query_ints(q->conn, as_buf_cstr(&b), sc, 2, what, err)))
		goto done;
	as_buf_reset(&b);
	as_buf_printf(&b,
		      "SELECT count(*) FROM %s._atomsync_target AS tt WHERE "
		      "\"_atomsync_run\" IS NOT NULL AND NOT EXISTS (SELECT 1 "
		      "FROM %s%s AS l WHERE ",
		      q->d->temp, q->d->main, live_q);
	as_sql_key_match(&b, t, "l", "tt");
	as_buf_adds(&b, ")");
	if ((ret = q->query_ints(q->conn, as_buf_cstr(&b), &c->inserted, 1,
				 what, err)))
		goto done;
	c->seen = sc[0];
	c->updated = sc[1] - c->inserted;
	c->unchanged = sc[0] - sc[1];
	c->deleted = c->live_before - (sc[0] - c->inserted);
	c->live_after = sc[0];
done:
	as_buf_free(&b);
	return ret;
}

int as_sql_rollback_changed(const as_sql *q, const char *live_q,
			    const as_run_ctx *rc, as_error *err)
{
	const as_table *t = rc->table;
	const char *tmp = q->d->temp;
	as_buf b = AS_BUF_INIT, cols = AS_BUF_INIT;
	int before, ret;

	if (!as_outbox_plan_any(rc->outbox))
		return 0;
	before = rc->outbox->before;
	for (size_t i = 0; i < t->ncols; i++) {
		as_buf_adds(&cols, i ? ", " : "");
		as_buf_add_ident(&cols, t->cols[i].name);
	}
	as_buf_printf(&b,
		      "DROP TABLE IF EXISTS %s._atomsync_changed; "
		      "CREATE TEMP TABLE _atomsync_changed%s AS SELECT %s, "
		      "CASE WHEN EXISTS (SELECT 1 FROM %s%s AS l WHERE ",
		      tmp, q->d->temp_suffix, as_buf_cstr(&cols), q->d->main,
		      live_q);
	as_sql_key_match(&b, t, "l", "tt");
	as_buf_printf(&b,
		      ") THEN 'update' ELSE 'insert' END AS \"_atomsync_op\" "
		      "FROM %s._atomsync_target AS tt WHERE \"_atomsync_run\" "
		      "IS NOT NULL UNION ALL SELECT %s, CASE WHEN EXISTS "
		      "(SELECT 1 FROM %s._atomsync_target AS tt WHERE ",
		      tmp, as_buf_cstr(&cols), tmp);
	as_sql_key_match(&b, t, "tt", "l");
	as_buf_printf(&b,
		      ") THEN 'before' ELSE 'delete' END FROM %s%s AS l WHERE "
		      "NOT EXISTS (SELECT 1 FROM %s._atomsync_target AS tt "
		      "WHERE ",
		      q->d->main, live_q, tmp);
	as_sql_key_match(&b, t, "tt", "l");
	/* Without 'before' rows: only live rows whose key is not restored. */
	as_buf_printf(&b, " AND (tt.\"_atomsync_run\" IS NULL%s%s))",
		      before ? "" : " OR ", before ? "" : q->d->true_lit);
	ret = as_sql_exec_buf(q, &b, "rollback: changed rows", err);
	as_buf_free(&b);
	as_buf_free(&cols);
	return ret;
}

int as_sql_rollback_apply(const as_sql *q, const char *live_q,
			  const as_table *t, const as_counts *c, as_error *err)
{
	as_buf b = AS_BUF_INIT;
	int64_t changes = 0;
	int ret = 0;

	if (c->inserted + c->updated > 0) {
		as_buf_printf(&b, "INSERT INTO %s%s(", q->d->main, live_q);
		for (size_t i = 0; i < t->ncols; i++) {
			as_buf_add_ident(&b, t->cols[i].name);
			as_buf_adds(&b, ", ");
		}
		as_buf_printf(&b,
			      "\"_atomsync_run\", \"_atomsync_hash\", "
			      "\"_atomsync_line\") SELECT * FROM "
			      "%s._atomsync_target WHERE \"_atomsync_run\" IS "
			      "NOT NULL",
			      q->d->temp);
		as_sql_add_upsert(&b, t, 1, NULL);
		if ((ret = q->exec_changes(q->conn, as_buf_cstr(&b), &changes,
					   "rollback: upsert", err)))
			goto done;
		if (changes != c->inserted + c->updated) {
			ret = as_error_set(err, AS_ESTORE,
					   "rollback wrote %lld rows, "
					   "expected %lld; nothing changed",
					   (long long)changes,
					   (long long)c->inserted + c->updated);
			goto done;
		}
		as_buf_reset(&b);
	}
	if (c->deleted > 0) {
		as_buf_printf(
			&b,
			"DELETE FROM %s%s WHERE NOT EXISTS (SELECT 1 FROM "
			"%s._atomsync_target AS tt WHERE ",
			q->d->main, live_q, q->d->temp);
		as_sql_key_match(&b, t, "tt", live_q);
		as_buf_adds(&b, ")");
		if ((ret = q->exec_changes(q->conn, as_buf_cstr(&b), &changes,
					   "rollback: delete", err)))
			goto done;
		if (changes != c->deleted) {
			ret = as_error_set(err, AS_ESTORE,
					   "rollback deleted %lld rows, "
					   "expected %lld; nothing changed",
					   (long long)changes,
					   (long long)c->deleted);
			goto done;
		}
	}
	as_crash_point("rollback.applied");
done:
	as_buf_free(&b);
	return ret;
}
