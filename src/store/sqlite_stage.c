/*
 * The SQLite store's staging: fenced batch commits carrying their
 * checkpoint (invariants 2, 4, 6), and the live scan that lets the engine
 * recognize records it published before without parsing them.
 */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/schema.h"
#include "store/sqlite_int.h"
#include "util/crash.h"
#include "util/log.h"
#include "util/str.h"
#include "util/time.h"

/* ---- staging (invariants 2, 4, 6) ---- */

static int lookup_hash(sqlite3_stmt *q, const as_table *t, const as_row *row,
		       int64_t *hash)
{
	int rc;

	for (size_t i = 0; i < t->nkey; i++)
		as_sq_bind_val(q, (int)i + 1, &row->v[i]);
	rc = sqlite3_step(q);
	if (rc == SQLITE_ROW)
		*hash = sqlite3_column_int64(q, 0);
	sqlite3_reset(q);
	return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

/* Stage one row; unchanged rows keep only what the publish needs. */
static int stage_row(sq_store *s, as_run_ctx *rc, const as_row *row,
		     int *conflicts, as_error *err)
{
	sq_run *r = rc->priv;
	const as_table *t = rc->table;
	int64_t h = 0;
	int unchanged = 0, found;

	if (t->mode == AS_MODE_APPEND) {
		found = lookup_hash(r->look_stage, t, row, &h);
		if (found < 0)
			return as_sq_fail(s, err, "staging lookup");
		if (found && h == (int64_t)row->hash)
			return 0; /* identical duplicate: ignored */
		if (found)
			goto conflict;
	}
	if (row->flags & AS_ROW_UNCHANGED) {
		unchanged = 1; /* the engine matched its exact text to the live
				  row */
	} else if (r->live_has_rows) {
		found = lookup_hash(r->look_live, t, row, &h);
		if (found < 0)
			return as_sq_fail(s, err, "live lookup");
		if (found && h == (int64_t)row->hash)
			unchanged = 1;
		else if (found && t->mode == AS_MODE_APPEND)
			goto conflict;
	}
	for (size_t i = 0; i < t->ncols; i++) {
		if (unchanged && !as_col_kept_unchanged(t, i))
			sqlite3_bind_null(r->ins, (int)i + 1);
		else
			as_sq_bind_val(r->ins, (int)i + 1, &row->v[i]);
	}
	if (unchanged)
		sqlite3_bind_null(r->ins, (int)t->ncols + 1);
	else
		sqlite3_bind_int64(r->ins, (int)t->ncols + 1, rc->run_id);
	sqlite3_bind_int64(r->ins, (int)t->ncols + 2, (int64_t)row->hash);
	if (row->flags & AS_ROW_LINE)
		sqlite3_bind_blob(r->ins, (int)t->ncols + 3, row->line, 16,
				  SQLITE_STATIC);
	else
		sqlite3_bind_null(r->ins, (int)t->ncols + 3);
	if (sqlite3_step(r->ins) != SQLITE_DONE) {
		sqlite3_reset(r->ins);
		as_sq_fail(s, err, "staging a row");
		as_error_prefix(err, "%s", row->where ? row->where : "record");
		return AS_ESTORE;
	}
	sqlite3_reset(r->ins);
	return 0;
conflict:
	(*conflicts)++;
	return rc->on_reject(rc->reject_ud, row,
			     "append mode: a different record under a key that "
			     "is already known",
			     err);
}

/* Columns found since the last batch join the staging table in this
 * batch's transaction: a crash before the commit leaves neither them nor
 * the rows (invariant 4: the resumed run reads the staging's columns). */
static int stage_alter(sq_store *s, as_run_ctx *rc, as_error *err)
{
	sq_run *r = rc->priv;
	const as_table *t = rc->table;
	as_buf b = AS_BUF_INIT;
	int ret = 0;

	if (t->ncols <= r->stage_ncols)
		return 0;
	for (size_t i = r->stage_ncols; !ret && i < t->ncols; i++) {
		if (as_schema_alter_sql(&b, r->stage_q, &t->cols[i],
					as_sq_col_type(&t->cols[i]), 0))
			ret = as_error_set(err, AS_ENOMEM, "out of memory");
		else
			ret = as_sq_exec(s, as_buf_cstr(&b), err);
	}
	as_buf_free(&b);
	if (ret)
		return ret;
	as_crash_point("stage.alter");
	return as_sq_prepare_insert(s, rc, err);
}

int as_sq_stage_batch(as_store *st, as_run_ctx *rc, const as_batch *b,
		      as_error *err)
{
	sq_store *s = (sq_store *)st;
	sq_run *r = rc->priv;
	int conflicts = 0;

	if (as_sq_txn(s, "BEGIN IMMEDIATE", "staging a batch", err))
		return err->code;
	as_crash_point("stage.begin");
	if (as_sq_fence(s, &r->fence, as_table_lease(rc->table), rc->token,
			rc->lease_ttl_ms, err) ||
	    stage_alter(s, rc, err))
		goto fail;
	for (size_t i = 0; i < b->nrows; i++) {
		const as_row *row = &b->rows[i];

		if ((row->flags & AS_ROW_SPAN)
			    ? as_sq_stage_span(s, rc, row, err)
			    : stage_row(s, rc, row, &conflicts, err))
			goto fail;
	}
	as_crash_point("stage.rows");
	sqlite3_bind_text(r->save, 1, rc->table->dataset, -1, SQLITE_STATIC);
	as_sq_bind_text(r->save, 2, b->checkpoint);
	sqlite3_bind_int64(r->save, 3, b->seen);
	sqlite3_bind_int64(r->save, 4, b->rejected + conflicts);
	if (sqlite3_step(r->save) != SQLITE_DONE) {
		sqlite3_reset(r->save);
		as_sq_fail(s, err, "saving checkpoint");
		goto fail;
	}
	sqlite3_reset(r->save);
	sqlite3_clear_bindings(
		r->save); /* the checkpoint text is the batch's */
	as_crash_point("stage.checkpoint");
	if (as_sq_txn(s, "COMMIT", "committing a staging batch", err))
		goto fail;
	as_crash_point("stage.committed");
	return 0;
fail:
	as_sq_rollback(s);
	return err->code;
}

/* ---- the live scan (for matching lines without parsing them) ---- */

typedef struct sq_scan {
	sqlite3 *db; /* read-only: the writer owns the other */
	sqlite3_stmt *all, *from, *cur;
	size_t *cols; /* table columns selected, key first */
	size_t ncols;
} sq_scan;

void as_sq_scan_close(as_store *st, as_run_ctx *rc)
{
	sq_scan *sc = rc->scan;

	(void)st;
	if (!sc)
		return;
	sqlite3_finalize(sc->all);
	sqlite3_finalize(sc->from);
	if (sc->db)
		sqlite3_close_v2(sc->db);
	free(sc->cols);
	free(sc);
	rc->scan = NULL;
}

int as_sq_scan_open(as_store *st, as_run_ctx *rc, int *rows, as_error *err)
{
	sq_store *s = (sq_store *)st;
	sq_run *r = rc->priv;
	const as_table *t = rc->table;
	as_buf sel = AS_BUF_INIT, b = AS_BUF_INIT;
	sq_scan *sc;
	int ret = 0;

	*rows = 0;
	if (!r || !r->live_has_rows || rc->scan)
		return 0;
	sc = calloc(1, sizeof(*sc));
	if (!sc || !(sc->cols = calloc(t->ncols, sizeof(size_t)))) {
		free(sc);
		return as_error_set(err, AS_ENOMEM, "out of memory");
	}
	rc->scan = sc;
	for (size_t i = 0; i < t->ncols; i++)
		if (as_col_kept_unchanged(t, i)) {
			sc->cols[sc->ncols++] = i;
			as_buf_add_ident(&sel, t->cols[i].name);
			as_buf_adds(&sel, ", ");
		}
	as_buf_adds(&sel, "\"_atomsync_hash\", \"_atomsync_line\"");
	if (sqlite3_open_v2(s->path, &sc->db,
			    SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX,
			    NULL) != SQLITE_OK) {
		ret = as_error_set(err, AS_ESTORE,
				   "%s: cannot open a reader: %s", s->path,
				   sqlite3_errmsg(sc->db));
		goto done;
	}
	sqlite3_busy_handler(sc->db, as_sq_busy, NULL);
	sqlite3_exec(sc->db, "PRAGMA cache_size=-8192", NULL, NULL, NULL);
	as_buf_printf(&b, "SELECT %s FROM %s ORDER BY ", as_buf_cstr(&sel),
		      r->live_q);
	as_sql_key_list(&b, t, NULL);
	if (as_buf_text_failed(as_buf_cstr(&b)))
		goto oom;
	if (sqlite3_prepare_v2(sc->db, as_buf_cstr(&b), -1, &sc->all, NULL) !=
	    SQLITE_OK)
		goto fail;
	as_buf_reset(&b);
	as_buf_printf(&b, "SELECT %s FROM %s WHERE (", as_buf_cstr(&sel),
		      r->live_q);
	as_sql_key_list(&b, t, NULL);
	as_buf_adds(&b, ") > (");
	for (size_t i = 0; i < t->nkey; i++)
		as_buf_printf(&b, "%s?%zu", i ? ", " : "", i + 1);
	as_buf_adds(&b, ") ORDER BY ");
	as_sql_key_list(&b, t, NULL);
	if (as_buf_text_failed(as_buf_cstr(&b)))
		goto oom;
	if (sqlite3_prepare_v2(sc->db, as_buf_cstr(&b), -1, &sc->from, NULL) !=
	    SQLITE_OK)
		goto fail;
	sc->cur = sc->all;
	*rows = 1;
	goto done;
oom:
	ret = as_error_set(err, AS_ENOMEM, "%s: scan: out of memory", s->path);
	goto done;
fail:
	ret = as_error_set(err, AS_ESTORE, "%s: scan: %s", s->path,
			   sqlite3_errmsg(sc->db));
done:
	if (ret)
		as_sq_scan_close(st, rc);
	as_buf_free(&sel);
	as_buf_free(&b);
	return ret;
}

int as_sq_scan_next(as_store *st, as_run_ctx *rc, as_scan_row *out, as_arena *a,
		    as_error *err)
{
	sq_scan *sc = rc->scan;
	int step;

	(void)st;
	if (!sc)
		return 0;
	step = sqlite3_step(sc->cur);
	if (step == SQLITE_DONE)
		return 0;
	if (step != SQLITE_ROW)
		return as_error_set(err, AS_ESTORE,
				    "reading the live table: %s",
				    sqlite3_errmsg(sc->db));
	for (size_t k = 0; k < sc->ncols; k++) {
		as_val *v = &out->v[sc->cols[k]];

		switch (sqlite3_column_type(sc->cur, (int)k)) {
		case SQLITE_INTEGER:
			v->kind = AS_V_INT;
			v->u.i = sqlite3_column_int64(sc->cur, (int)k);
			break;
		case SQLITE_FLOAT:
			v->kind = AS_V_REAL;
			v->u.r = sqlite3_column_double(sc->cur, (int)k);
			break;
		case SQLITE_NULL: v->kind = AS_V_NULL; break;
		default: {
			const char *txt = (const char *)sqlite3_column_text(
				sc->cur, (int)k);
			int n = sqlite3_column_bytes(sc->cur, (int)k);

			v->kind = AS_V_TEXT;
			v->len = (uint32_t)n;
			v->u.s = as_arena_strndup(a, txt ? txt : "", (size_t)n);
			if (!v->u.s)
				return as_error_set(err, AS_ENOMEM,
						    "out of memory");
		}
		}
	}
	out->hash = (uint64_t)sqlite3_column_int64(sc->cur, (int)sc->ncols);
	out->has_line = sqlite3_column_bytes(sc->cur, (int)sc->ncols + 1) == 16;
	if (out->has_line)
		memcpy(out->line,
		       sqlite3_column_blob(sc->cur, (int)sc->ncols + 1), 16);
	return 1;
}

int as_sq_scan_seek(as_store *st, as_run_ctx *rc, const as_val *key,
		    as_error *err)
{
	sq_scan *sc = rc->scan;

	(void)st;
	(void)err;
	if (!sc)
		return 0;
	sqlite3_reset(sc->all);
	sqlite3_reset(sc->from);
	/* Copies: the key lives in a batch the writer may reset meanwhile. */
	for (size_t i = 0; i < rc->table->nkey; i++) {
		if (key[i].kind == AS_V_TEXT)
			sqlite3_bind_text(sc->from, (int)i + 1, key[i].u.s,
					  (int)key[i].len, SQLITE_TRANSIENT);
		else
			as_sq_bind_val(sc->from, (int)i + 1, &key[i]);
	}
	sc->cur = sc->from;
	return 0;
}
