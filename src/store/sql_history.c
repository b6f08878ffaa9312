/*
 * The shape of an existing <table>_history, checked or evolved over the
 * backend's catalog query (store/sql.h); the backends' own history files
 * write and roll back its rows.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/sql.h"
#include "util/str.h"

typedef struct hist_ud {
	const as_sql_dialect *d;
	const as_hist *h;
	as_table *t;
	const as_hist_types *ty;
	const char **names, **types; /* the layout, n columns */
	size_t n, i;		     /* i: rows seen */
	int ok;
} hist_ud;

static int hist_row(void *ud, const char *const *v)
{
	hist_ud *x = ud;
	const as_hist *h = x->h;
	size_t off = h->kind == AS_HISTORY_SCD2 ? 2 : 1; /* the run columns */
	size_t i = x->i++;
	as_col *c;

	if (i >= x->n || !as_streq(v[0], x->names[i])) {
		x->ok = 0;
		return 0;
	}
	if (as_sql_same_type(x->d, x->types[i], v[1]))
		return 0;
	/* A column of no declared type takes the history's. */
	c = i >= off && i - off < h->ncols ? &x->t->cols[h->cols[i - off]]
					   : NULL;
	if (c && c->type == AS_TYPE_AUTO &&
	    x->ty->column_of(v[1]) != AS_TYPE_AUTO)
		c->type = x->ty->column_of(v[1]);
	else
		x->ok = 0;
	return 0;
}

int as_sql_hist_check(const as_sql *q, const as_hist *h, as_table *t,
		      const as_hist_types *ty, as_error *err)
{
	hist_ud x = {q->d, h, t, ty, NULL, NULL, 0, 0, 1};
	as_buf want = AS_BUF_INIT;
	int rc;

	x.names = calloc(t->ncols + 4, sizeof(char *));
	x.types = calloc(t->ncols + 4, sizeof(char *));
	if (!x.names || !x.types) {
		rc = as_error_set(err, AS_ENOMEM, "out of memory");
		goto done;
	}
	x.n = as_hist_layout(h, t, ty, x.names, x.types);
	if ((rc = q->query_rows(q->conn, q->d->columns_sql, h->name, 2,
				hist_row, &x, "reading the history table",
				err)))
		goto done;
	if (!x.ok || x.i != x.n) {
		for (size_t k = 0; k < x.n; k++)
			as_buf_printf(&want, "%s%s %s", k ? ", " : "",
				      x.names[k], x.types[k]);
		rc = as_error_set(
			err, AS_EUSAGE,
			"table %s exists but does not hold the %s history "
			"dataset %s now writes (%s); rename or drop it, or "
			"restore the dataset's earlier columns and history "
			"settings",
			h->name, as_hist_kind_name(h->kind), t->dataset,
			as_buf_cstr(&want));
	}
done:
	free(x.names);
	free(x.types);
	as_buf_free(&want);
	return rc;
}

static int meta_row(void *ud, const char *const *v)
{
	as_hist_meta *m = ud;

	m->found = 1;
	snprintf(m->kind, sizeof(m->kind), "%s", v[0] ? v[0] : "");
	m->columns = v[1] ? as_strdup(v[1]) : NULL;
	m->restorable = v[2] ? atoi(v[2]) : 0;
	m->first_run = v[3] ? strtoll(v[3], NULL, 10) : 0;
	m->last_run = v[4] ? strtoll(v[4], NULL, 10) : 0;
	return 1; /* the dataset's one row */
}

int as_sql_hist_meta_read(const as_sql *q, const char *dataset, as_hist_meta *m,
			  as_error *err)
{
	as_buf b = AS_BUF_INIT;
	int exists, rc;

	memset(m, 0, sizeof(*m));
	if ((rc = as_sql_table_exists(q, "atomsync_history", &exists, err)) ||
	    !exists)
		return rc;
	as_buf_adds(&b, "SELECT kind, columns, CASE WHEN restorable THEN 1 "
			"ELSE 0 END, first_run, last_run FROM atomsync_history "
			"WHERE dataset = ");
	q->d->param(&b, 1, AS_TYPE_TEXT);
	rc = q->query_rows(q->conn, as_buf_cstr(&b), dataset, 5, meta_row, m,
			   "reading history metadata", err);
	as_buf_free(&b);
	return rc == 1 ? 0 : rc;
}

#define CREATING "creating the history"

/* The columns, NOT NULL for the run and the record key, then the key. */
static void add_create(as_buf *b, const as_sql_dialect *d, const as_hist *h,
		       const as_table *t, const char **names,
		       const char **types, size_t n)
{
	size_t off = h->kind == AS_HISTORY_SCD2 ? 2 : 1; /* the run columns */

	as_buf_printf(b, "CREATE TABLE %s (", h->q);
	for (size_t i = 0; i < n; i++) {
		as_buf_add_ident(b, names[i]);
		as_buf_printf(b, " %s%s, ", types[i],
			      i == 0 || (i >= off && i < off + t->nkey)
				      ? " NOT NULL"
				      : "");
	}
	/* Snapshot rows are written and pruned a run at a time: the run leads
	 * the key.  SCD2 versions are found by their record's key. */
	if (h->kind == AS_HISTORY_SCD2) {
		as_buf_adds(b, "PRIMARY KEY (");
		as_sql_key_list(b, t, NULL);
		as_buf_printf(b, ", \"valid_from_run\"))%s", d->keyed_suffix);
	} else {
		as_buf_adds(b, "PRIMARY KEY (\"run_id\", ");
		as_sql_key_list(b, t, NULL);
		as_buf_printf(b, "))%s", d->keyed_suffix);
	}
}

int as_sql_hist_create(const as_sql *q, const as_hist *h, const as_table *t,
		       const as_hist_types *ty, as_error *err)
{
	const char **names = calloc(t->ncols + 4, sizeof(char *));
	const char **types = calloc(t->ncols + 4, sizeof(char *));
	as_buf b = AS_BUF_INIT;
	int rc;

	if (!names || !types) {
		rc = as_error_set(err, AS_ENOMEM, "out of memory");
		goto done;
	}
	add_create(&b, q->d, h, t, names, types,
		   as_hist_layout(h, t, ty, names, types));
	if ((rc = as_sql_exec_buf(q, &b, CREATING, err)))
		goto done;
	if (h->kind == AS_HISTORY_SCD2) {
		/* Retention, finding the open versions and closing every one
		 * (a baseline) go by valid_to_run. */
		char *idx = as_sprintf("%s_valid_to", h->name);

		as_buf_adds(&b, q->d->create_index);
		as_buf_add_ident(&b, idx);
		as_buf_printf(&b, " ON %s(\"valid_to_run\")", h->q);
		free(idx);
		rc = as_sql_exec_buf(q, &b, CREATING, err);
	}
done:
	free(names);
	free(types);
	as_buf_free(&b);
	return rc;
}

/* The history table's column names, however many: one missed would be
 * added again. */
typedef struct names_ud {
	char **v;
	size_t n, cap;
	as_error *err;
} names_ud;

static int name_row(void *ud, const char *const *v)
{
	names_ud *x = ud;

	if (x->n == x->cap) {
		size_t ncap = x->cap ? x->cap * 2 : 64;
		char **nn = realloc(x->v, ncap * sizeof(*nn));

		if (!nn)
			return as_error_set(x->err, AS_ENOMEM, "out of memory");
		x->v = nn;
		x->cap = ncap;
	}
	if (!(x->v[x->n] = as_strdup(v[0] ? v[0] : "")))
		return as_error_set(x->err, AS_ENOMEM, "out of memory");
	x->n++;
	return 0;
}

typedef struct add_ud {
	const as_sql *q;
	const as_hist *h;
	as_error *err;
} add_ud;

/* as_hist_evolve's callback: one column added to the history table. */
static int hist_add_col(void *ud, const char *name, const char *type)
{
	add_ud *a = ud;
	as_buf b = AS_BUF_INIT;
	int rc;

	as_buf_printf(&b, "ALTER TABLE %s ADD COLUMN ", a->h->q);
	as_buf_add_ident(&b, name);
	as_buf_printf(&b, " %s", type);
	rc = as_sql_exec_buf(a->q, &b, "history: adding columns", a->err);
	as_buf_free(&b);
	return rc;
}

int as_sql_hist_evolve(const as_sql *q, const as_hist *h, as_table *t,
		       const as_hist_types *ty, as_error *err)
{
	names_ud names = {NULL, 0, 0, err};
	add_ud add = {q, h, err};
	int rc;

	rc = q->query_rows(q->conn, q->d->columns_sql, h->name, 1, name_row,
			   &names, "reading the history table", err);
	if (!rc)
		rc = as_hist_evolve(h, t, ty, (const char *const *)names.v,
				    names.n, hist_add_col, &add);
	for (size_t i = 0; i < names.n; i++)
		free(names.v[i]);
	free(names.v);
	if (rc == -1)
		return as_error_set(err, AS_EUSAGE,
				    "table %s exists but lacks a configured "
				    "column of dataset %s; rename or drop it",
				    h->name, t->dataset);
	return rc ? err->code : 0;
}
