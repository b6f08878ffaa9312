/*
 * A live or staging table checked against the dataset's columns, over the
 * backend's catalog query (store/sql.h): the same rule for both backends.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "store/sql.h"
#include "util/str.h"

/* The declared type decl is want, as the dialect compares types. */
int as_sql_same_type(const as_sql_dialect *d, const char *want,
		     const char *decl)
{
	if (!decl)
		decl = "";
	return (d->nocase_types ? strcasecmp(want, decl)
				: strcmp(want, decl)) == 0;
}

typedef struct check_ud {
	const as_sql_dialect *d;
	as_table *t;
	size_t i; /* rows seen */
	int ok;
} check_ud;

static int check_row(void *ud, const char *const *v)
{
	check_ud *x = ud;
	as_table *t = x->t;
	size_t i = x->i++;
	const char *cn = v[0];

	if (i < t->ncols) {
		as_col *c = &t->cols[i];
		as_type ty = x->d->type_of(v[1]);

		if (!as_streq(cn, c->name))
			x->ok = 0;
		else if (c->type == AS_TYPE_AUTO) {
			if (ty == AS_TYPE_AUTO && x->d->strict_decl)
				x->ok = 0;
			else
				c->type = ty;
		} else if (!as_sql_same_type(x->d, x->d->type(c->type), v[1]))
			x->ok = 0;
	} else if (i == t->ncols) {
		x->ok = x->ok && as_streq(cn, "_atomsync_run");
	} else if (i == t->ncols + 1) {
		x->ok = x->ok && as_streq(cn, "_atomsync_hash");
	} else if (i == t->ncols + 2) {
		x->ok = x->ok && as_streq(cn, "_atomsync_line");
	} else {
		x->ok = 0;
	}
	return 0;
}

int as_sql_check_table(const as_sql *q, as_table *t, const char *name,
		       as_error *err)
{
	check_ud x = {q->d, t, 0, 1};
	as_buf want = AS_BUF_INIT;
	int rc;

	if ((rc = q->query_rows(q->conn, q->d->columns_sql, name, 2, check_row,
				&x, "reading table schema", err)))
		return rc;
	if (x.ok && x.i == t->ncols + 3)
		return 0;
	for (size_t k = 0; k < t->ncols; k++)
		as_buf_printf(&want, "%s%s %s", k ? ", " : "", t->cols[k].name,
			      t->cols[k].type == AS_TYPE_AUTO
				      ? "?"
				      : q->d->type(t->cols[k].type));
	as_error_set(err, AS_EUSAGE,
		     "table %s exists but does not have the columns the "
		     "dataset maps (%s, then _atomsync_run, _atomsync_hash, "
		     "_atomsync_line); "
		     "rename the table or migrate it",
		     name, as_buf_cstr(&want));
	as_buf_free(&want);
	return AS_EUSAGE;
}

int as_sql_describe(const as_sql *q, const as_sql_cols *o, as_run_ctx *rc,
		    const char *stage, as_error *err)
{
	as_table *t = rc->table;
	void *conn = q->conn;
	int exists;

	if (as_sql_table_exists(q, t->table, &exists, err))
		return err->code;

	if (t->infer) {
		/* the live table's columns, then those the staging being
		 * resumed added */
		size_t nuser = 0;

		if (exists && o->adopt(conn, rc, t->table, 0, &nuser, err))
			return err->code;
		if (!t->legacy_json && stage &&
		    o->adopt(conn, rc, stage, 1, &nuser, err))
			return err->code;
		return 0;
	}
	if (exists)
		return o->check(conn, t, t->table, err);
	if (stage)
		return o->check(conn, t, stage, err);
	return 0;
}

int as_sql_read_live(const as_sql *q, const as_sql_cols *o, as_run_ctx *rc,
		     const char *live_q, int *exists, size_t *ncols,
		     int *has_rows, as_error *err)
{
	as_table *t = rc->table;
	size_t nuser = t->ncols;
	as_buf b = AS_BUF_INIT;
	int64_t n = 0;
	int ret;

	if (as_sql_table_exists(q, t->table, exists, err))
		return err->code;
	if (!*exists)
		return 0;
	if (t->infer ? o->adopt(q->conn, rc, t->table, 0, &nuser, err)
		     : o->check(q->conn, t, t->table, err))
		return err->code;
	*ncols = nuser;
	as_buf_printf(&b,
		      "SELECT CASE WHEN EXISTS (SELECT 1 FROM %s) THEN 1 "
		      "ELSE 0 END",
		      live_q);
	ret = q->query_ints(q->conn, as_buf_cstr(&b), &n, 1,
			    "reading the live table", err);
	as_buf_free(&b);
	if (!ret)
		*has_rows = n > 0;
	return ret;
}

int as_sql_stage_prepare(void *conn, const as_sql_cols *o, as_run_ctx *rc,
			 const char *stage, as_error *err)
{
	as_table *t = rc->table;
	size_t nuser;

	if (o->read_live(conn, rc, err))
		return err->code;
	if (!stage     ? o->create_stage(conn, rc, err)
	    : t->infer ? o->adopt(conn, rc, stage, 1, &nuser, err)
		       : o->check(conn, t, stage, err))
		return err->code;
	return o->stage_ready(conn, rc, err);
}

void as_sql_run_discarded(as_run_ctx *rc)
{
	free(rc->checkpoint);
	free(rc->stage_key);
	rc->checkpoint = rc->stage_key = NULL;
	rc->seen = rc->rejected = 0;
	rc->resumed_from = 0;
}
