/*
 * The shape of an existing <table>_history, checked or evolved over the
 * backend's catalog query (store/sql.h); the backends' own history files
 * write and roll back its rows.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/sql.h"
#include "util/log.h"
#include "util/str.h"

typedef struct hist_ud {
	const as_sql_dialect *d;
	const as_hist *h;
	as_table *t;
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
	    x->d->hist->column_of(v[1]) != AS_TYPE_AUTO)
		c->type = x->d->hist->column_of(v[1]);
	else
		x->ok = 0;
	return 0;
}

int as_sql_hist_check(const as_sql *q, const as_hist *h, as_table *t,
		      as_error *err)
{
	hist_ud x = {q->d, h, t, NULL, NULL, 0, 0, 1};
	as_buf want = AS_BUF_INIT;
	int rc;

	x.names = calloc(t->ncols + 4, sizeof(char *));
	x.types = calloc(t->ncols + 4, sizeof(char *));
	if (!x.names || !x.types) {
		rc = as_error_set(err, AS_ENOMEM, "out of memory");
		goto done;
	}
	x.n = as_hist_layout(h, t, q->d->hist, x.names, x.types);
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
		       as_error *err)
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
		   as_hist_layout(h, t, q->d->hist, names, types));
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
		       as_error *err)
{
	names_ud names = {NULL, 0, 0, err};
	add_ud add = {q, h, err};
	int rc;

	rc = q->query_rows(q->conn, q->d->columns_sql, h->name, 1, name_row,
			   &names, "reading the history table", err);
	if (!rc)
		rc = as_hist_evolve(h, t, q->d->hist,
				    (const char *const *)names.v, names.n,
				    hist_add_col, &add);
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

int as_sql_hist_fit(const as_sql *q, const as_hist *h, as_table *t,
		    as_error *err)
{
	return t->infer ? as_sql_hist_evolve(q, h, t, err)
			: as_sql_hist_check(q, h, t, err);
}

/* The metadata table, created on first use (one row per dataset with
 * history: its shape and the runs it can restore, first_run..last_run;
 * last_run is the newest run that wrote history). */
static int meta_ensure(const as_sql *q, as_error *err)
{
	const as_sql_dialect *d = q->d;
	as_buf b = AS_BUF_INIT;
	int exists, rc;

	if ((rc = as_sql_table_exists(q, "atomsync_history", &exists, err)) ||
	    exists)
		return rc;
	if (d->create_lock &&
	    (rc = q->exec(q->conn, d->create_lock, CREATING, err)))
		return rc;
	as_buf_printf(&b,
		      "CREATE TABLE IF NOT EXISTS atomsync_history("
		      " dataset %s PRIMARY KEY, table_name %s NOT NULL,"
		      " kind %s NOT NULL, columns %s NOT NULL,"
		      " restorable %s NOT NULL, first_run %s NOT NULL,"
		      " last_run %s NOT NULL)",
		      d->text_type, d->text_type, d->text_type, d->text_type,
		      d->bool_type, d->hist->integer, d->hist->integer);
	rc = as_sql_exec_buf(q, &b, CREATING, err);
	as_buf_free(&b);
	return rc;
}

static int int_row(void *ud, const char *const *v)
{
	*(int64_t *)ud = v[0] ? strtoll(v[0], NULL, 10) : 0;
	return 0;
}

int as_sql_hist_open(const as_sql *q, as_table *t, const as_publish_opts *po,
		     as_hist *h, as_hist_meta *m, int *reset, as_error *err)
{
	as_buf b = AS_BUF_INIT;
	int64_t prev = 0;
	int exists, rc;

	memset(m, 0, sizeof(*m));
	if ((rc = as_hist_build(h, t, po, err)) || (rc = meta_ensure(q, err)) ||
	    (rc = as_sql_table_exists(q, h->name, &exists, err)) ||
	    (rc = exists ? as_sql_hist_fit(q, h, t, err)
			 : as_sql_hist_create(q, h, t, err)) ||
	    (rc = as_sql_hist_meta_read(q, t->dataset, m, err)))
		return rc;
	as_buf_adds(&b, "SELECT published_run FROM atomsync_state "
			"WHERE dataset = ");
	q->d->param(&b, 1, AS_TYPE_TEXT);
	rc = q->query_rows(q->conn, as_buf_cstr(&b), t->dataset, 1, int_row,
			   &prev, "reading state", err);
	as_buf_free(&b);
	*reset = !m->found ||
		 strcmp(m->kind, as_hist_kind_name(h->kind)) != 0 ||
		 !as_streq(m->columns, h->colnames) ||
		 m->restorable != h->full || m->last_run != prev;
	return rc;
}

int as_sql_hist_write_live(const as_sql *q, const as_hist *h, const as_table *t,
			   const char *live_q, int64_t run, int baseline,
			   int exists, as_error *err)
{
	static const as_type ty = AS_TYPE_INTEGER;
	as_val v = as_sql_int_val(run);
	as_buf b = AS_BUF_INIT;
	int rc = 0;

	if (h->kind == AS_HISTORY_SCD2 && baseline) {
		as_buf_printf(&b, "UPDATE %s SET \"valid_to_run\" = ", h->q);
		q->d->param(&b, 1, ty);
		as_buf_adds(&b, " WHERE \"valid_to_run\" IS NULL");
		rc = q->exec_vals(q->conn, as_buf_cstr(&b), &v, &ty, 1,
				  "history", err);
		as_buf_reset(&b);
	}
	if (!rc && exists && (h->kind == AS_HISTORY_SNAPSHOT || baseline)) {
		as_buf_printf(&b, "INSERT INTO %s", h->q);
		as_hist_add_insert_cols(&b, h, t);
		as_buf_adds(&b, " SELECT ");
		q->d->param(&b, 1, ty);
		as_buf_adds(&b, h->kind == AS_HISTORY_SCD2 ? ", NULL, " : ", ");
		as_hist_add_content(&b, h, t, NULL);
		as_buf_printf(&b, " FROM %s%s", q->d->main, live_q);
		rc = q->exec_vals(q->conn, as_buf_cstr(&b), &v, &ty, 1,
				  "history", err);
	}
	as_buf_free(&b);
	return rc;
}

int as_sql_hist_record(const as_sql *q, const as_hist *h, const as_table *t,
		       int64_t run, int reset, as_error *err)
{
	static const as_type ty[] = {
		AS_TYPE_TEXT,	 AS_TYPE_TEXT,	  AS_TYPE_TEXT,	  AS_TYPE_TEXT,
		AS_TYPE_BOOLEAN, AS_TYPE_INTEGER, AS_TYPE_BOOLEAN};
	as_val v[] = {as_sql_text_val(t->dataset),
		      as_sql_text_val(t->table),
		      as_sql_text_val(as_hist_kind_name(h->kind)),
		      as_sql_text_val(h->colnames),
		      as_sql_int_val(h->full),
		      as_sql_int_val(run),
		      as_sql_int_val(reset != 0)};
	as_buf b = AS_BUF_INIT;
	int rc;

	as_buf_adds(&b, "INSERT INTO atomsync_history VALUES(");
	for (size_t i = 0; i < 6; i++) {
		q->d->param(&b, i + 1, ty[i]);
		as_buf_adds(&b, ", ");
	}
	q->d->param(&b, 6, ty[5]);
	as_buf_adds(&b,
		    ") ON CONFLICT (dataset) DO UPDATE SET "
		    "table_name = excluded.table_name, kind = excluded.kind, "
		    "columns = excluded.columns, "
		    "restorable = excluded.restorable, first_run = CASE WHEN ");
	q->d->param(&b, 7, ty[6]);
	as_buf_adds(&b, " THEN excluded.first_run ELSE "
			"atomsync_history.first_run END, "
			"last_run = excluded.last_run");
	rc = q->exec_vals(q->conn, as_buf_cstr(&b), v, ty, 7,
			  "recording history", err);
	as_buf_free(&b);
	return rc;
}

/* One of the runs history_keep keeps: sql over (dataset, first run,
 * this run) as parameters 1-3, then ms as its own text. */
static int keep_query(const as_sql *q, const as_run_ctx *rc, int64_t first,
		      const char *head, int64_t arg, const char *tail,
		      int64_t *out, as_error *err)
{
	static const as_type ty[] = {AS_TYPE_TEXT, AS_TYPE_INTEGER,
				     AS_TYPE_INTEGER, AS_TYPE_INTEGER};
	const as_val v[] = {as_sql_text_val(rc->table->dataset),
			    as_sql_int_val(first), as_sql_int_val(rc->run_id),
			    as_sql_int_val(arg)};
	as_buf b = AS_BUF_INIT;
	int ret;

	as_buf_printf(&b, "%s FROM atomsync_runs WHERE dataset = ", head);
	q->d->param(&b, 1, ty[0]);
	as_buf_adds(&b, " AND run_id >= ");
	q->d->param(&b, 2, ty[1]);
	as_buf_adds(&b, " AND (run_id = ");
	q->d->param(&b, 3, ty[2]);
	/* The run being published is not yet completed: it counts as kept. */
	as_buf_adds(&b, " OR (status = 'completed' AND kind IN ('sync', "
			"'rollback')");
	if (tail) {
		as_buf_adds(&b, tail);
		q->d->ago(&b, arg);
		as_buf_adds(&b, "))");
	} else {
		as_buf_adds(&b, ")) ORDER BY run_id DESC LIMIT 1 OFFSET ");
		q->d->param(&b, 4, ty[3]);
	}
	/* An error here must fail the publish, not skip the pruning. */
	ret = q->txn->exec_out(q->conn, as_buf_cstr(&b), v, ty, tail ? 3 : 4,
			       out, NULL, "history retention", err);
	as_buf_free(&b);
	return ret;
}

/* *cutoff: the first run history_keep keeps (0: all). */
static int keep_from(const as_sql *q, const as_run_ctx *rc,
		     const as_publish_opts *po, int64_t first, int64_t *cutoff,
		     as_error *err)
{
	int64_t v = 0;

	*cutoff = 0;
	if (po->history_keep_runs > 0 &&
	    keep_query(q, rc, first, "SELECT run_id", po->history_keep_runs - 1,
		       NULL, cutoff, err))
		return err->code;
	if (po->history_keep_ms > 0 &&
	    keep_query(q, rc, first, "SELECT min(run_id)", po->history_keep_ms,
		       " AND finished_at >= ", &v, err))
		return err->code;
	if (v > *cutoff)
		*cutoff = v;
	return 0;
}

int as_sql_hist_prune(const as_sql *q, const as_run_ctx *rc,
		      const as_publish_opts *po, const as_hist *h,
		      as_error *err)
{
	static const as_type ty[] = {AS_TYPE_INTEGER, AS_TYPE_TEXT};
	as_val v[] = {as_sql_int_val(0), as_sql_text_val(rc->table->dataset)};
	as_buf b = AS_BUF_INIT;
	int64_t first = 0, cutoff, gone = 0;
	int ret;

	if (po->history_keep_runs <= 0 && po->history_keep_ms <= 0)
		return 0;
	as_buf_adds(&b, "SELECT first_run FROM atomsync_history WHERE "
			"dataset = ");
	q->d->param(&b, 1, ty[1]);
	ret = q->txn->exec_out(q->conn, as_buf_cstr(&b), v + 1, ty + 1, 1,
			       &first, NULL, "history retention", err);
	as_buf_reset(&b);
	if (ret || (ret = keep_from(q, rc, po, first, &cutoff, err)) ||
	    cutoff <= first)
		goto done;
	v[0] = as_sql_int_val(cutoff);
	/* A version closed at the cutoff was valid only before it. */
	as_buf_printf(&b, "DELETE FROM %s WHERE %s ", h->q,
		      h->kind == AS_HISTORY_SCD2 ? "\"valid_to_run\" <="
						 : "\"run_id\" <");
	q->d->param(&b, 1, ty[0]);
	if ((ret = q->txn->exec_out(q->conn, as_buf_cstr(&b), v, ty, 1, NULL,
				    &gone, "history retention", err)))
		goto done;
	as_buf_reset(&b);
	as_buf_adds(&b, "UPDATE atomsync_history SET first_run = ");
	q->d->param(&b, 1, ty[0]);
	as_buf_adds(&b, " WHERE dataset = ");
	q->d->param(&b, 2, ty[1]);
	if (!(ret = q->exec_vals(q->conn, as_buf_cstr(&b), v, ty, 2,
				 "history retention", err)))
		as_debug("%s: history before run %lld pruned (%lld rows)",
			 rc->table->dataset, (long long)cutoff,
			 (long long)gone);
done:
	as_buf_free(&b);
	return ret;
}
