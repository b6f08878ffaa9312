/*
 * What verify reads from the PostgreSQL store: a random sample of live rows,
 * typed as the engine maps them, and the record of a run that changed no
 * data.
 */
#include <stdlib.h>
#include <string.h>

#include "store/postgres_int.h"
#include "util/str.h"

/* ---- verify: a sample of live rows, and its run record ---- */

/* One sampled value, from the text the query rendered it as. */
static int cell(as_val *v, const PGresult *res, int i, int j, as_type type,
		as_arena *a)
{
	const char *text = PQgetvalue(res, i, j);

	memset(v, 0, sizeof(*v));
	if (PQgetisnull(res, i, j))
		return 0;
	switch (type) {
	case AS_TYPE_INTEGER:
	case AS_TYPE_BOOLEAN:
		v->kind = AS_V_INT;
		v->u.i = strtoll(text, NULL, 10);
		return 0;
	case AS_TYPE_REAL:
		v->kind = AS_V_REAL;
		v->u.r = strtod(text, NULL);
		return 0;
	default:
		v->kind = AS_V_TEXT;
		v->len = (uint32_t)PQgetlength(res, i, j);
		v->u.s = as_arena_strndup(a, text, v->len);
		return v->u.s ? 0 : AS_ENOMEM;
	}
}

int as_pg_history_sample(as_store *st, const as_table *t, size_t n,
			 as_batch *out, as_error *err)
{
	pg_store *s = (pg_store *)st;
	as_buf b = AS_BUF_INIT, col = AS_BUF_INIT;
	PGresult *res;
	as_pg_params p;
	int rows, rc;

	as_pg_drain(s, NULL);
	as_buf_adds(&b, "SELECT ");
	for (size_t i = 0; i < t->ncols; i++) {
		as_buf_reset(&col);
		as_buf_add_ident(&col, t->cols[i].name);
		as_buf_adds(&b, i ? ", " : "");
		if (t->cols[i].type == AS_TYPE_BOOLEAN)
			as_buf_printf(&b, "(%s)::int", as_buf_cstr(&col));
		else
			as_pg_text_expr(&b, as_buf_cstr(&col), t->cols[i].type);
	}
	as_buf_adds(&b, " FROM ");
	as_buf_add_ident(&b, t->table);
	as_buf_adds(&b, " ORDER BY random() LIMIT $1::bigint");
	as_buf_free(&col);
	as_pg_params_init(&p);
	as_pg_param_int(&p, (int64_t)n);
	rc = as_pg_exec(s, as_buf_cstr(&b), &p, &res, "sampling live rows",
			err);
	as_buf_free(&b);
	if (rc)
		return rc;
	rows = PQntuples(res);
	for (int i = 0; i < rows; i++) {
		as_row *row = as_batch_add_row(out, t->ncols);

		for (size_t j = 0; row && j < t->ncols; j++)
			if (cell(&row->v[j], res, i, (int)j, t->cols[j].type,
				 &out->arena))
				row = NULL;
		if (!row) {
			PQclear(res);
			return as_error_set(err, AS_ENOMEM, "out of memory");
		}
		out->nrows++;
	}
	PQclear(res);
	return 0;
}

int as_pg_history_record_run(as_store *st, const as_table *t, const char *kind,
			     const char *status, const as_counts *c,
			     const char *error, double started, int64_t *run_id,
			     as_error *err)
{
	pg_store *s = (pg_store *)st;
	as_pg_params p;
	char when[32];

	as_pg_drain(s, NULL);
	snprintf(when, sizeof(when), "%.6f", started);
	as_pg_params_init(&p);
	as_pg_param_text(&p, t->dataset);
	as_pg_param_text(&p, kind);
	as_pg_param_text(&p, as_mode_name(t->mode));
	as_pg_param_text(&p, status);
	as_pg_param_text(&p, when);
	as_pg_param_counts(&p, c);
	as_pg_param_int(&p, c->rejected);
	as_pg_param_text(&p, error);
	return as_pg_int(
		s,
		"INSERT INTO atomsync_runs(dataset, kind, mode, status, "
		"started_at, finished_at, seen, inserted, updated, unchanged, "
		"deleted, rejected, error) VALUES($1, $2, $3, $4, "
		"to_timestamp($5::double precision), clock_timestamp(), $6, $7, "
		"$8, $9, $10, $11, $12) RETURNING run_id",
		&p, run_id, "recording run", err);
}
