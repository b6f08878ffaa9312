/*
 * The outbox's SQL both backends share (invariant 7): inside the publish
 * transaction, before the live table changes, the rows the publish will
 * change are collected into a temp table and checked against the publish's
 * own counts; the backend renders keys from it and records the events.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/sql.h"

#include "util/str.h"

#define WHAT "outbox: collecting changed rows"

unsigned char *as_sql_outbox_need(const as_outbox_plan *plan, const as_table *t)
{
	unsigned char *need = calloc(t->ncols ? t->ncols : 1, 1);

	for (size_t i = 0; need && i < plan->ntpls; i++)
		for (size_t k = 0; k < plan->tpls[i].nparts; k++)
			if (plan->tpls[i].parts[k].column)
				need[plan->tpls[i].parts[k].index] = 1;
	return need;
}

int as_sql_outbox_agree(const int64_t n[3], const as_counts *c, as_error *err)
{
	if (n[0] == c->inserted && n[1] == c->updated && n[2] == c->deleted)
		return 0;
	return as_error_set(
		err, AS_ESTORE,
		"outbox: the changed rows (%lld "
		"inserted, %lld updated, %lld deleted) disagree with "
		"the publish counts (%lld, %lld, %lld); nothing was "
		"published",
		(long long)n[0], (long long)n[1], (long long)n[2],
		(long long)c->inserted, (long long)c->updated,
		(long long)c->deleted);
}

void as_sql_outbox_summary(as_outbox_summary *sum, const as_run_ctx *rc,
			   const int64_t n[3])
{
	memset(sum, 0, sizeof(*sum));
	sum->dataset = rc->table->dataset;
	sum->run_id = rc->run_id;
	sum->kind = rc->kind;
	sum->inserted = n[0];
	sum->updated = n[1];
	sum->deleted = n[2];
}

/* "a", "b" or s."a", s."b": the columns the templates name. */
static void add_cols(as_buf *b, const as_table *t, const unsigned char *need,
		     const char *prefix)
{
	for (size_t i = 0; i < t->ncols; i++) {
		if (!need[i])
			continue;
		if (prefix)
			as_buf_printf(b, "%s.", prefix);
		as_buf_add_ident(b, t->cols[i].name);
		as_buf_adds(b, ", ");
	}
}

/* Fill the temp table before the publish touches the live table:
 * changed staged rows as insert/update, the old values of updated rows
 * when a template names a non-key column, and the rows to be deleted. */
int as_sql_outbox_collect(const as_sql *q, const as_sql_run *r,
			  const as_table *t, const as_counts *c, int live,
			  const unsigned char *need, int need_before,
			  as_error *err)
{
	as_buf b = AS_BUF_INIT;
	char changed_q[64];
	int ret;

	snprintf(changed_q, sizeof(changed_q), "%s." AS_SQL_CHANGED,
		 q->d->temp);
	as_buf_printf(
		&b,
		"DROP TABLE IF EXISTS %s; CREATE TEMP TABLE " AS_SQL_CHANGED
		"(",
		changed_q);
	for (size_t i = 0; i < t->ncols; i++) {
		if (!need[i])
			continue;
		as_buf_add_ident(&b, t->cols[i].name);
		as_buf_printf(&b, " %s, ", q->d->type(t->cols[i].type));
	}
	as_buf_printf(&b, "\"_atomsync_op\" %s NOT NULL)%s", q->d->text_type,
		      q->d->temp_suffix);
	if ((ret = as_sql_exec_buf(q, &b, WHAT, err)))
		goto done;
	if (r->stage_q && c->inserted + c->updated > 0) {
		as_buf_printf(&b, "INSERT INTO %s SELECT ", changed_q);
		add_cols(&b, t, need, r->stage_q);
		/* The op of each row: looked up only when the run both inserts
		 * and updates (a full reload of changed rows is all 'update').
		 */
		if (c->inserted == 0) {
			as_buf_adds(&b, "'update'");
		} else if (live && c->live_before > 0 && c->updated > 0) {
			as_buf_printf(
				&b, "CASE WHEN EXISTS (SELECT 1 FROM %s WHERE ",
				r->live_q);
			as_sql_key_match(&b, t, r->live_q, r->stage_q);
			as_buf_adds(&b, ") THEN 'update' ELSE 'insert' END");
		} else {
			as_buf_adds(&b, "'insert'");
		}
		as_buf_printf(&b,
			      " FROM %s WHERE %s.\"_atomsync_run\" IS NOT NULL",
			      r->stage_q, r->stage_q);
		if (t->mode == AS_MODE_APPEND && live && c->live_before > 0) {
			as_buf_printf(
				&b, " AND NOT EXISTS (SELECT 1 FROM %s WHERE ",
				r->live_q);
			as_sql_key_match(&b, t, r->live_q, r->stage_q);
			as_buf_adds(&b, ")");
		}
		if ((ret = as_sql_exec_buf(q, &b, WHAT, err)))
			goto done;
	}
	if (need_before && r->stage_q && live && c->updated > 0) {
		as_buf_printf(&b, "INSERT INTO %s SELECT ", changed_q);
		add_cols(&b, t, need, r->live_q);
		as_buf_printf(&b, "'before' FROM %s JOIN %s ON ", r->live_q,
			      r->stage_q);
		as_sql_key_match(&b, t, r->live_q, r->stage_q);
		as_buf_printf(&b, " WHERE %s.\"_atomsync_run\" IS NOT NULL",
			      r->stage_q);
		if ((ret = as_sql_exec_buf(q, &b, WHAT, err)))
			goto done;
	}
	if (live && c->deleted > 0) {
		as_buf_printf(&b, "INSERT INTO %s SELECT ", changed_q);
		add_cols(&b, t, need, r->live_q);
		as_buf_printf(&b, "'delete' FROM %s WHERE ", r->live_q);
		as_sql_add_delete_filter(q, &b, t, r);
		ret = as_sql_exec_buf(q, &b, WHAT, err);
	}
done:
	as_buf_free(&b);
	return ret;
}
