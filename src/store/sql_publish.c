/*
 * The publish's counts both backends share (invariant 10): what the staging
 * holds against the live table, counted inside the publish transaction
 * before anything changes, for the guards (invariant 3) and the run record.
 */
#include <stdlib.h>
#include <string.h>

#include "store/sql.h"
#include "store/sql_ops.h"
#include "util/crash.h"
#include "util/log.h"
#include "util/str.h"

#define WHAT "publish: counting"

/* <temp>._atomsync_scopes from r's staging and po's named scopes. */
static int create_scopes(const as_sql *q, const as_sql_run *r,
			 const as_table *t, as_error *err)
{
	const as_sql_dialect *d = q->d;
	as_buf b = AS_BUF_INIT;
	int ret;

	as_buf_printf(&b,
		      "DROP TABLE IF EXISTS %s._atomsync_scopes; "
		      "CREATE TEMP TABLE _atomsync_scopes(",
		      d->temp);
	for (size_t i = 0; i < t->nscope; i++) {
		as_buf_add_ident(&b, t->cols[t->scope[i]].name);
		if (d->typed_temp)
			as_buf_printf(&b, " %s",
				      d->type(t->cols[t->scope[i]].type));
		as_buf_adds(&b, ", ");
	}
	as_buf_printf(&b, "_named %s)%s", d->bool_type, d->temp_suffix);
	if (!(ret = as_sql_exec_buf(q, &b, "publish: scopes", err))) {
		as_buf_printf(
			&b, "INSERT INTO %s._atomsync_scopes SELECT DISTINCT ",
			d->temp);
		as_sql_scope_list(&b, t, NULL);
		as_buf_printf(&b, ", %s FROM %s", d->false_lit, r->stage_q);
		ret = as_sql_exec_buf(q, &b, "publish: scopes", err);
	}
	as_buf_free(&b);
	return ret;
}

int as_sql_fill_scopes(const as_sql *q, const as_sql_run *r, const as_table *t,
		       const as_publish_opts *po, as_error *err)
{
	const as_sql_dialect *d = q->d;
	as_buf b = AS_BUF_INIT;
	as_type *ty = NULL;
	int ret;

	if ((ret = create_scopes(q, r, t, err)) || !po->nnamed)
		return ret;
	if (!(ty = calloc(t->nscope ? t->nscope : 1, sizeof(*ty))))
		return as_error_set(err, AS_ENOMEM, "out of memory");
	as_buf_printf(&b, "INSERT INTO %s._atomsync_scopes SELECT ", d->temp);
	for (size_t i = 0; i < t->nscope; i++) {
		ty[i] = t->cols[t->scope[i]].type;
		d->param(&b, i + 1, ty[i]);
		as_buf_adds(&b, ", ");
	}
	as_buf_printf(&b,
		      "%s WHERE NOT EXISTS (SELECT 1 FROM "
		      "%s._atomsync_scopes WHERE ",
		      d->true_lit, d->temp);
	for (size_t i = 0; i < t->nscope; i++) {
		as_buf_adds(&b, i ? " AND " : "");
		as_buf_add_ident(&b, t->cols[t->scope[i]].name);
		as_buf_adds(&b, d->is_not_distinct);
		d->param(&b, i + 1, ty[i]);
	}
	as_buf_adds(&b, ")");
	for (size_t k = 0; !ret && k < po->nnamed; k++)
		ret = q->exec_vals(q->conn, as_buf_cstr(&b),
				   &po->named_scopes[k * t->nscope], ty,
				   t->nscope, "publish: recording named scopes",
				   err);
	free(ty);
	as_buf_free(&b);
	return ret;
}

void as_sql_add_scope_filter(const as_sql *q, as_buf *b, const as_table *t,
			     const char *live_q, int delivered_only)
{
	as_buf_adds(b, "(");
	as_sql_scope_list(b, t, live_q);
	as_buf_adds(b, ") IN (SELECT ");
	as_sql_scope_list(b, t, NULL);
	as_buf_printf(b, " FROM %s._atomsync_scopes", q->d->temp);
	if (delivered_only)
		as_buf_printf(b, " WHERE _named = %s", q->d->false_lit);
	as_buf_adds(b, ")");
}

void as_sql_add_not_staged(as_buf *b, const as_table *t, const char *live_q,
			   const char *stage_q)
{
	as_buf_printf(b, "NOT EXISTS (SELECT 1 FROM %s WHERE ", stage_q);
	as_sql_key_match(b, t, stage_q, live_q);
	as_buf_adds(b, ")");
}

void as_sql_add_delete_filter(const as_sql *q, as_buf *b, const as_table *t,
			      const as_sql_run *r)
{
	if (t->mode == AS_MODE_SCOPED) {
		as_sql_add_scope_filter(q, b, t, r->live_q, 0);
		as_buf_adds(b, " AND ");
	}
	if (r->gone_filter)
		r->gone_filter(b, t, r->gone_ud);
	else if (r->stage_q)
		as_sql_add_not_staged(b, t, r->live_q, r->stage_q);
	else
		as_buf_adds(b, q->d->true_lit);
}

/* b's one integer, then b emptied. */
static int query_int(const as_sql *q, as_buf *b, int64_t *out, as_error *err)
{
	int rc = q->query_ints(q->conn, as_buf_cstr(b), out, 1, WHAT, err);

	as_buf_reset(b);
	return rc;
}

/* Scoped mode: the live rows of the delivered scopes, and the deletions
 * among the delivered (guarded) and all replaced scopes. */
static int scoped_counts(const as_sql *q, const as_sql_run *r,
			 const as_table *t, as_counts *c, int64_t *scope_rows,
			 int64_t *guarded_deletes, as_error *err)
{
	as_buf b = AS_BUF_INIT;
	int ret;

	as_buf_printf(&b, "SELECT count(*) FROM %s WHERE ", r->live_q);
	as_sql_add_scope_filter(q, &b, t, r->live_q, 1);
	if ((ret = query_int(q, &b, scope_rows, err)))
		goto done;
	for (int pass = 0; pass < 2; pass++) {
		as_buf_printf(&b, "SELECT count(*) FROM %s WHERE ", r->live_q);
		as_sql_add_scope_filter(q, &b, t, r->live_q, pass == 0);
		as_buf_adds(&b, " AND ");
		as_sql_add_not_staged(&b, t, r->live_q, r->stage_q);
		if ((ret = query_int(
			     q, &b, pass ? &c->deleted : guarded_deletes, err)))
			goto done;
	}
done:
	as_buf_free(&b);
	return ret;
}

int as_sql_publish_counts(const as_sql *q, const as_sql_run *r,
			  const as_table *t, int live, const as_sql_spans *sp,
			  const as_publish_opts *po, as_counts *c,
			  int64_t *staged_changed, int64_t *scope_rows,
			  int64_t *guarded_deletes, as_error *err)
{
	as_buf b = AS_BUF_INIT;
	int64_t sc[2] = {0, 0}; /* staged rows, changed ones among them */
	int ret = 0;

	if (sp->active) {
		/* Spans and gaps partition the live table. */
		c->live_before = sp->rows + sp->gap_rows;
	} else if (live) {
		as_buf_printf(&b, "SELECT count(*) FROM %s", r->live_q);
		if ((ret = query_int(q, &b, &c->live_before, err)))
			goto done;
	}
	if (r->stage_q) {
		as_buf_printf(
			&b, "SELECT count(*), count(\"_atomsync_run\") FROM %s",
			r->stage_q);
		ret = q->query_ints(q->conn, as_buf_cstr(&b), sc, 2, WHAT, err);
		as_buf_reset(&b);
		if (ret)
			goto done;
	}
	if (c->live_before == 0 || sc[1] == 0) {
		c->inserted = sc[1];
	} else {
		as_buf_printf(&b,
			      "SELECT count(*) FROM %s WHERE \"_atomsync_run\" "
			      "IS NOT NULL AND ",
			      r->stage_q);
		as_sql_add_not_staged(&b, t, r->stage_q, r->live_q);
		if ((ret = query_int(q, &b, &c->inserted, err)))
			goto done;
	}
	c->updated = sc[1] - c->inserted;
	c->unchanged = sc[0] - sc[1] + sp->rows;
	*staged_changed = sc[1];
	if (t->mode == AS_MODE_FULL && sp->active) {
		c->deleted = sp->gone;
	} else if (t->mode == AS_MODE_FULL) {
		c->deleted = c->live_before - (sc[0] - c->inserted);
	} else if (t->mode == AS_MODE_SCOPED && live && r->stage_q) {
		if ((ret = as_sql_fill_scopes(q, r, t, po, err)) ||
		    (ret = scoped_counts(q, r, t, c, scope_rows,
					 guarded_deletes, err)))
			goto done;
	}
	as_counts_finish(c);
done:
	as_buf_free(&b);
	return ret;
}

void as_sql_counts_start(as_counts *c, const as_run_ctx *rc)
{
	memset(c, 0, sizeof(*c));
	c->seen = rc->seen;
	c->rejected = rc->rejected;
}

int as_sql_publish_guards(const as_table *t, const as_publish_opts *po,
			  const as_counts *c, int64_t scope_rows,
			  int64_t guarded_deletes, as_error *err)
{
	as_counts gc = *c;

	if (t->mode == AS_MODE_SCOPED)
		gc.deleted = guarded_deletes;
	return as_guard_check(t, po, &gc, scope_rows, err);
}

int as_sql_check_base(const as_table *t, int64_t published, int64_t base,
		      as_error *err)
{
	if (published == base)
		return 0;
	return as_error_set(err, AS_ESTORE,
			    "dataset %s was published by run %lld after this "
			    "staging began; nothing was published (the next "
			    "run starts over)",
			    t->dataset, (long long)published);
}

static int published_row(void *ud, const char *const *v)
{
	*(int64_t *)ud = v[0] ? strtoll(v[0], NULL, 10) : 0;
	return 0;
}

int as_sql_publish_fence(const as_sql *q, const as_run_ctx *rc,
			 const char *stage, int64_t base, as_error *err)
{
	const as_table *t = rc->table;
	as_buf b = AS_BUF_INIT;
	int64_t published = -1; /* no state row */
	int ret;

	if ((ret = q->txn->fence(q->conn, as_table_lease(t), rc->token,
				 rc->lease_ttl_ms, err)) ||
	    !stage)
		return ret;
	as_buf_adds(&b, "SELECT published_run FROM atomsync_state "
			"WHERE dataset = ");
	q->d->param(&b, 1, AS_TYPE_TEXT);
	as_buf_adds(&b, q->d->for_update);
	ret = q->query_rows(q->conn, as_buf_cstr(&b), t->dataset, 1,
			    published_row, &published, "publish: reading state",
			    err);
	as_buf_free(&b);
	return ret ? ret : as_sql_check_base(t, published, base, err);
}

/* Run b's one statement with q and empty b; AS_ESTORE, in verb's words,
 * when it did not touch exactly expect rows. */
static int apply_step(const as_sql *q, as_buf *b, int64_t expect,
		      const char *verb, const char *what, as_error *err)
{
	int64_t changes = 0;
	int ret = q->exec_changes(q->conn, as_buf_cstr(b), &changes, what, err);

	as_buf_reset(b);
	if (!ret && changes != expect)
		ret = as_error_set(err, AS_ESTORE,
				   "publish %s %lld rows, expected %lld; "
				   "nothing was published",
				   verb, (long long)changes, (long long)expect);
	return ret;
}

int as_sql_publish_apply(const as_sql *q, const as_sql_run *r,
			 const as_table *t, const as_counts *c, int64_t changed,
			 as_error *err)
{
	const char *alias = q->d->upsert_alias;
	as_buf b = AS_BUF_INIT;
	int ret = 0;

	if (r->stage_q && changed > 0) {
		as_buf_printf(&b, "INSERT INTO %s%s%s SELECT * FROM %s",
			      r->live_q, alias ? " AS " : "",
			      alias ? alias : "", r->stage_q);
		/* Into an empty table with every row new, the plain form lets
		 * SQLite copy b-tree content without re-encoding records. */
		if (c->live_before > 0 || c->unchanged > 0) {
			as_buf_adds(&b, " WHERE \"_atomsync_run\" IS NOT NULL");
			as_sql_add_upsert(&b, t, t->mode != AS_MODE_APPEND,
					  alias);
		}
		if ((ret = apply_step(q, &b,
				      t->mode == AS_MODE_APPEND ? c->inserted
								: changed,
				      "wrote", "publish: upsert", err)))
			goto done;
	}
	as_crash_point("publish.upserted");
	if (c->deleted > 0) {
		as_buf_printf(&b, "DELETE FROM %s WHERE ", r->live_q);
		as_sql_add_delete_filter(q, &b, t, r);
		if ((ret = apply_step(q, &b, c->deleted, "deleted",
				      "publish: delete", err)))
			goto done;
	}
	as_crash_point("publish.deleted");
done:
	as_buf_free(&b);
	return ret;
}

void as_sql_drop_stage_after(void *conn,
			     int (*drop)(void *conn, const char *stage,
					 as_error *err),
			     const char *stage)
{
	as_error derr;

	if (stage && drop(conn, stage, &derr))
		as_warn("could not drop staging table %s (dropped by a later "
			"run): %s",
			stage, derr.msg);
}
