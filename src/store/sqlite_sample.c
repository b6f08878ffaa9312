/*
 * What verify reads from the SQLite store: a random sample of live rows,
 * typed as the engine maps them, and the record of a run that changed no
 * data.
 */
#include <stdlib.h>
#include <string.h>

#include "store/sqlite_int.h"
#include "util/str.h"
#include "util/time.h"

/* ---- verify: a sample of live rows, and its run record ---- */

int as_sq_history_sample(as_store *st, const as_table *t, size_t n,
			 as_batch *out, as_error *err)
{
	sq_store *s = (sq_store *)st;
	as_buf b = AS_BUF_INIT;
	sqlite3_stmt *q = NULL;
	int rc;

	as_buf_adds(&b, "SELECT ");
	for (size_t i = 0; i < t->ncols; i++) {
		as_buf_adds(&b, i ? ", " : "");
		as_buf_add_ident(&b, t->cols[i].name);
	}
	as_buf_adds(&b, " FROM ");
	as_buf_add_ident(&b, t->table);
	as_buf_adds(&b, " ORDER BY random() LIMIT ?1");
	rc = as_sq_prepare(s, as_buf_cstr(&b), &q, err);
	as_buf_free(&b);
	if (rc)
		return rc;
	sqlite3_bind_int64(q, 1, (int64_t)n);
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		as_row *row = as_batch_add_row(out, t->ncols);

		if (!row) {
			sqlite3_finalize(q);
			return as_error_set(err, AS_ENOMEM, "out of memory");
		}
		for (size_t i = 0; i < t->ncols; i++) {
			as_val *v = &row->v[i];

			switch (sqlite3_column_type(q, (int)i)) {
			case SQLITE_INTEGER:
				v->kind = AS_V_INT;
				v->u.i = sqlite3_column_int64(q, (int)i);
				break;
			case SQLITE_FLOAT:
				v->kind = AS_V_REAL;
				v->u.r = sqlite3_column_double(q, (int)i);
				break;
			case SQLITE_NULL: v->kind = AS_V_NULL; break;
			default:
				v->kind = AS_V_TEXT;
				v->len = (uint32_t)sqlite3_column_bytes(q,
									(int)i);
				v->u.s = as_arena_strndup(
					&out->arena,
					(const char *)sqlite3_column_text(
						q, (int)i),
					v->len);
				if (!v->u.s) {
					sqlite3_finalize(q);
					return as_error_set(err, AS_ENOMEM,
							    "out of memory");
				}
			}
		}
		out->nrows++;
	}
	sqlite3_finalize(q);
	return rc == SQLITE_DONE ? 0 : as_sq_fail(s, err, "sampling live rows");
}

int as_sq_history_record_run(as_store *st, const as_table *t, const char *kind,
			     const char *status, const as_counts *c,
			     const char *error, double started, int64_t *run_id,
			     as_error *err)
{
	sq_store *s = (sq_store *)st;
	sqlite3_stmt *q;
	char a[40], b[40];
	int rc;

	if (as_sq_prepare(
		    s,
		    "INSERT INTO atomsync_runs(dataset, kind, mode, status, "
		    "started_at, finished_at, seen, inserted, updated, unchanged, "
		    "deleted, rejected, error, owner) VALUES(?1, ?2, ?3, ?4, ?5, "
		    "?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, NULL)",
		    &q, err))
		return err->code;
	sqlite3_bind_text(q, 1, t->dataset, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(q, 2, kind, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(q, 3, as_mode_name(t->mode), -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 4, status, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(q, 5, as_iso8601(started, a, sizeof(a)), -1,
			  SQLITE_TRANSIENT);
	sqlite3_bind_text(q, 6, as_iso8601(as_now(), b, sizeof(b)), -1,
			  SQLITE_TRANSIENT);
	as_sq_bind_counts(q, 7, c);
	sqlite3_bind_int64(q, 12, c->rejected);
	as_sq_bind_text(q, 13, error);
	rc = sqlite3_step(q);
	sqlite3_finalize(q);
	if (rc != SQLITE_DONE)
		return as_sq_fail(s, err, "recording run");
	*run_id = sqlite3_last_insert_rowid(s->db);
	return 0;
}
