/*
 * The SQLite store's tables: column types, the live and staging tables
 * created and checked against the spec, describe, and the staging prepared
 * (and discarded) for a run.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/sqlite_int.h"
#include "util/str.h"
#include "util/time.h"

/* ---- tables ---- */

const char *as_sq_sql_type(as_type t)
{
	switch (t) {
	case AS_TYPE_INTEGER:
	case AS_TYPE_BOOLEAN: return "INTEGER";
	case AS_TYPE_REAL: return "REAL";
	default: return "TEXT";
	}
}

static int sql_exec(void *conn, const char *sql, const char *what,
		    as_error *err)
{
	(void)what;
	return as_sq_exec(conn, sql, err);
}

/* sql with v[0..n) bound (as_sql_txn.exec_out): its first row's first
 * column in *id, the rows it changed in *changes (either may be NULL). */
int as_sq_exec_out(void *conn, const char *sql, const as_val *v,
		   const as_type *ty, size_t n, int64_t *id, int64_t *changes,
		   const char *what, as_error *err)
{
	sq_store *s = conn;
	sqlite3_stmt *st;
	int rc;

	(void)ty;
	if (as_sq_prepare(s, sql, &st, err))
		return err->code;
	for (size_t i = 0; i < n; i++)
		as_sq_bind_val(st, (int)i + 1, &v[i]);
	rc = sqlite3_step(st);
	if (id)
		*id = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
	while (rc == SQLITE_ROW)
		rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return as_sq_fail(s, err, what);
	if (changes)
		*changes = sqlite3_changes64(s->db);
	return 0;
}

static int exec_changes(void *conn, const char *sql, int64_t *changes,
			const char *what, as_error *err)
{
	return as_sq_exec_out(conn, sql, NULL, NULL, 0, NULL, changes, what,
			      err);
}

static int query_ints(void *conn, const char *sql, int64_t *out, int n,
		      const char *what, as_error *err)
{
	sq_store *s = conn;
	sqlite3_stmt *st;
	int rc;

	(void)what;
	if (as_sq_prepare(s, sql, &st, err))
		return AS_ESTORE;
	rc = sqlite3_step(st);
	for (int i = 0; i < n; i++)
		out[i] = rc == SQLITE_ROW ? sqlite3_column_int64(st, i) : 0;
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return as_sq_fail(s, err, "query");
	return 0;
}

static int query_rows(void *conn, const char *sql, const char *arg, int n,
		      int (*row)(void *ud, const char *const *v), void *ud,
		      const char *what, as_error *err)
{
	sq_store *s = conn;
	const char *v[8];
	sqlite3_stmt *st;
	int rc, ret = 0;

	if (n > 8 || as_sq_prepare(s, sql, &st, err))
		return n > 8 ? as_error_set(err, AS_ESTORE, "%s", what)
			     : AS_ESTORE;
	if (arg)
		sqlite3_bind_text(st, 1, arg, -1, SQLITE_STATIC);
	while (!ret && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		for (int i = 0; i < n; i++)
			v[i] = (const char *)sqlite3_column_text(st, i);
		ret = row(ud, v);
	}
	sqlite3_finalize(st);
	if (!ret && rc != SQLITE_DONE)
		ret = as_sq_fail(s, err, what);
	return ret;
}

static int exec_vals(void *conn, const char *sql, const as_val *v,
		     const as_type *ty, size_t n, const char *what,
		     as_error *err)
{
	return as_sq_exec_out(conn, sql, v, ty, n, NULL, NULL, what, err);
}

static void sq_param(as_buf *b, size_t i, as_type t)
{
	(void)t;
	as_buf_printf(b, "?%zu", i);
}

static void sq_iso_time(as_buf *b, const char *col)
{
	as_buf_adds(b, col); /* stored as such */
}

static void sq_json_int(as_buf *b, const char *col, const char *key)
{
	as_buf_printf(b, "json_extract(%s, '$.%s')", col, key);
}

/* The client's clock as ISO 8601 text (atomsync_runs keeps text). */
static void sq_now(as_buf *b, int clock)
{
	char now[40];

	(void)clock;
	as_buf_printf(b, "'%s'", as_iso8601(as_now(), now, sizeof(now)));
}

/* The client's clock ms milliseconds ago, as sq_now writes it. */
static void sq_ago(as_buf *b, int64_t ms)
{
	char when[40];

	as_buf_printf(
		b, "'%s'",
		as_iso8601(as_now() - (double)ms / 1000.0, when, sizeof(when)));
}

/* Stagings and their spans and gone tables no dataset refers to. */
static const char SQ_ORPHANS_SQL[] =
	"SELECT name FROM sqlite_master WHERE type = 'table' "
	"AND name LIKE '\\_atomsync\\_stage\\_%' ESCAPE '\\' "
	"AND name NOT IN (SELECT stage_table FROM atomsync_state "
	"WHERE stage_table IS NOT NULL) "
	"AND name NOT IN (SELECT stage_table || '_spans' FROM "
	"atomsync_state WHERE stage_table IS NOT NULL) "
	"AND name NOT IN (SELECT stage_table || '_gone' FROM "
	"atomsync_state WHERE stage_table IS NOT NULL) LIMIT 64";

static const as_sql_dialect sq_dialect = {
	.temp = "temp",
	.main = "main.",
	.true_lit = "1",
	.false_lit = "0",
	.text_type = "TEXT",
	.blob_type = "BLOB",
	.temp_suffix = "",
	.type = as_sq_sql_type,
	.type_of = as_sq_type_of_decl,
	.nocase_types = 1,
	.strict_decl = 0,
	.columns_sql = "SELECT name, type FROM pragma_table_info(?1)",
	.typed_temp = 0,
	.bool_type = "INTEGER",
	.is_not_distinct = " IS ",
	.iso_time = sq_iso_time,
	.json_int = sq_json_int,
	.exists_sql = "SELECT count(*) FROM sqlite_master "
		      "WHERE type = 'table' AND name = ?1",
	.keyed_suffix = " WITHOUT ROWID",
	.create_index = "CREATE INDEX IF NOT EXISTS ",
	.param = sq_param,
	.hist = &as_sq_hist_types,
	.now = sq_now,
	.ago = sq_ago,
	.for_update = "",
	.orphans_sql = SQ_ORPHANS_SQL,
};

static const as_sql_driver sq_driver = {
	sql_exec,  exec_changes,      query_ints,    query_rows,
	exec_vals, &as_sq_outbox_ops, &as_sq_txn_ops};

void as_sq_sql(sq_store *s, as_sql *q)
{
	as_sql_init(q, &sq_dialect, &sq_driver, s);
}

static void gone_filter(as_buf *b, const as_table *t, const void *ud)
{
	as_sq_add_gone_filter(b, t, ud);
}

void as_sq_run_view(const sq_run *r, as_sql_run *out)
{
	memset(out, 0, sizeof(*out));
	out->live_q = r->live_q;
	out->stage_q = r->stage ? r->stage_q : NULL;
	if (r->gone) {
		out->gone_filter = gone_filter;
		out->gone_ud = r;
	}
}

int as_sq_rowid_key(const as_table *t)
{
	return t->nkey == 1 && t->cols[0].type == AS_TYPE_INTEGER;
}

static void add_col_def(as_buf *b, const as_table *t, size_t i)
{
	as_buf_add_ident(b, t->cols[i].name);
	as_buf_printf(b, " %s", as_sq_col_type(&t->cols[i]));
	if (i == 0 && as_sq_rowid_key(t))
		as_buf_adds(b, " PRIMARY KEY");
	else if (i < t->nkey)
		as_buf_adds(b, " NOT NULL");
}

/* The columns before the _atomsync ones (as_table_front), then those, then
 * the columns added since (the layout ALTER TABLE ADD COLUMN makes). */
char *as_sq_create_sql(const as_table *t, const char *name)
{
	as_buf b = AS_BUF_INIT;
	size_t front = as_table_front(t);

	as_buf_adds(&b, "CREATE TABLE IF NOT EXISTS ");
	as_buf_add_ident(&b, name);
	as_buf_adds(&b, " (");
	for (size_t i = 0; i < front; i++) {
		add_col_def(&b, t, i);
		as_buf_adds(&b, ", ");
	}
	as_buf_adds(&b,
		    "\"_atomsync_run\" INTEGER, \"_atomsync_hash\" INTEGER, "
		    "\"_atomsync_line\" BLOB");
	for (size_t i = front; i < t->ncols; i++) {
		as_buf_adds(&b, ", ");
		add_col_def(&b, t, i);
	}
	if (!as_sq_rowid_key(t)) {
		as_buf_adds(&b, ", PRIMARY KEY (");
		as_sql_key_list(&b, t, NULL);
		as_buf_adds(&b, ")) WITHOUT ROWID");
	} else {
		as_buf_adds(&b, ")");
	}
	return as_buf_detach(&b);
}

as_type as_sq_type_of_decl(const char *decl)
{
	if (!decl)
		return AS_TYPE_AUTO;
	if (strcasecmp(decl, "INTEGER") == 0)
		return AS_TYPE_INTEGER;
	if (strcasecmp(decl, "REAL") == 0)
		return AS_TYPE_REAL;
	if (strcasecmp(decl, "TEXT") == 0)
		return AS_TYPE_TEXT;
	if (strcasecmp(decl, "BOOLEAN") == 0)
		return AS_TYPE_BOOLEAN;
	if (strcasecmp(decl, "TIMESTAMP") == 0)
		return AS_TYPE_TIMESTAMP;
	if (strcasecmp(decl, "JSON") == 0)
		return AS_TYPE_JSON;
	return AS_TYPE_AUTO;
}

/*
 * Compare an existing table with the dataset's columns; adopt the declared
 * types of columns still AS_TYPE_AUTO.  A mismatch is a configuration error:
 * atomsync never silently reshapes a table that holds data.
 */
int as_sq_check_table(sq_store *s, as_table *t, const char *name, as_error *err)
{
	as_sql q;
	size_t nuser;

	if (t->infer)
		return as_sq_adopt_table(s, t, name, 0, &nuser, err);
	as_sq_sql(s, &q);
	return as_sql_check_table(&q, t, name, err);
}

/* The table steps store/sql_table.c shares (sq_cols, after them). */
static int adopt_cols(void *conn, as_run_ctx *rc, const char *name, int stage,
		      size_t *nuser, as_error *err)
{
	return as_sq_adopt_table(conn, rc->table, name, stage, nuser, err);
}

static int check_cols(void *conn, as_table *t, const char *name, as_error *err)
{
	return as_sq_check_table(conn, t, name, err);
}

static int read_live(void *conn, as_run_ctx *rc, as_error *err);
static int create_stage(void *conn, as_run_ctx *rc, as_error *err);
static int prepare_statements(void *conn, as_run_ctx *rc, as_error *err);

static const as_sql_cols sq_cols = {adopt_cols, check_cols, read_live,
				    create_stage, prepare_statements};

int as_sq_describe(as_store *st, as_run_ctx *rc, as_error *err)
{
	sq_run *r = rc->priv;
	as_sql q;

	as_sq_sql((sq_store *)st, &q);
	return as_sql_describe(&q, &sq_cols, rc, r ? r->stage : NULL, err);
}

/* The staging insert, naming its columns (the _atomsync ones may stand
 * before columns added later); prepared again when columns are added. */
int as_sq_prepare_insert(sq_store *s, as_run_ctx *rc, as_error *err)
{
	sq_run *r = rc->priv;
	const as_table *t = rc->table;
	as_buf b = AS_BUF_INIT;
	int rc2;

	sqlite3_finalize(r->ins);
	r->ins = NULL;
	as_buf_printf(&b, "INSERT OR REPLACE INTO %s(", r->stage_q);
	for (size_t i = 0; i < t->ncols; i++) {
		as_buf_add_ident(&b, t->cols[i].name);
		as_buf_adds(&b, ", ");
	}
	as_buf_adds(&b, "\"_atomsync_run\", \"_atomsync_hash\", "
			"\"_atomsync_line\") VALUES(");
	for (size_t i = 0; i < t->ncols + 3; i++)
		as_buf_printf(&b, "%s?%zu", i ? ", " : "", i + 1);
	as_buf_adds(&b, ")");
	rc2 = as_sq_prepare(s, as_buf_cstr(&b), &r->ins, err);
	as_buf_free(&b);
	if (!rc2)
		r->stage_ncols = t->ncols;
	return rc2;
}

static int prepare_statements(void *conn, as_run_ctx *rc, as_error *err)
{
	sq_store *s = conn;
	sq_run *r = rc->priv;
	const as_table *t = rc->table;
	as_buf b = AS_BUF_INIT;
	int rc2;

	rc2 = as_sq_prepare_insert(s, rc, err);
	as_buf_reset(&b);
	if (!rc2 && r->live_exists) {
		as_buf_printf(&b, "SELECT \"_atomsync_hash\" FROM %s WHERE ",
			      r->live_q);
		for (size_t i = 0; i < t->nkey; i++) {
			as_buf_adds(&b, i ? " AND " : "");
			as_buf_add_ident(&b, t->cols[i].name);
			as_buf_printf(&b, " = ?%zu", i + 1);
		}
		rc2 = as_sq_prepare(s, as_buf_cstr(&b), &r->look_live, err);
		as_buf_reset(&b);
	}
	if (!rc2 && t->mode == AS_MODE_APPEND) {
		as_buf_printf(&b, "SELECT \"_atomsync_hash\" FROM %s WHERE ",
			      r->stage_q);
		for (size_t i = 0; i < t->nkey; i++) {
			as_buf_adds(&b, i ? " AND " : "");
			as_buf_add_ident(&b, t->cols[i].name);
			as_buf_printf(&b, " = ?%zu", i + 1);
		}
		rc2 = as_sq_prepare(s, as_buf_cstr(&b), &r->look_stage, err);
	}
	if (!rc2)
		rc2 = as_sq_prepare(
			s,
			"UPDATE atomsync_state SET checkpoint = ?2, "
			"stage_seen = ?3, stage_rejected = ?4 "
			"WHERE dataset = ?1",
			&r->save, err);
	as_buf_free(&b);
	return rc2;
}

/* The spans table of a staging (store.h, AS_ROW_SPAN): first and last
 * key of each span, and its count of rows. */
static char *spans_create_sql(const as_table *t, const char *stage)
{
	as_buf b = AS_BUF_INIT;
	char *name = as_sprintf("%s_spans", stage);

	if (!name)
		return NULL;
	as_buf_adds(&b, "CREATE TABLE IF NOT EXISTS ");
	as_buf_add_ident(&b, name);
	free(name);
	as_buf_adds(&b, " (");
	for (size_t i = 0; i < t->nkey; i++)
		as_buf_printf(&b, "lo%zu, ", i + 1);
	for (size_t i = 0; i < t->nkey; i++)
		as_buf_printf(&b, "hi%zu, ", i + 1);
	as_buf_adds(&b, "n INTEGER NOT NULL)");
	return as_buf_detach(&b);
}

/* The live table as this run finds it: checked against the spec (or
 * adopted), its column count, whether it has rows. */
static int read_live(void *conn, as_run_ctx *rc, as_error *err)
{
	sq_run *r = rc->priv;
	as_sql q;

	as_sq_sql(conn, &q);
	return as_sql_read_live(&q, &sq_cols, rc, r->live_q, &r->live_exists,
				&r->live_ncols, &r->live_has_rows, err);
}

/* Record the staging `name` in the dataset's state row; its base. */
static int record_stage(sq_store *s, as_run_ctx *rc, const char *name,
			as_error *err)
{
	sq_run *r = rc->priv;
	as_table *t = rc->table;
	sqlite3_stmt *q;
	char key[512];

	as_table_key_list(t, key, sizeof(key));
	if (as_sq_prepare(s,
			  "UPDATE atomsync_state SET stage_table = ?2, "
			  "stage_run = ?3, stage_last_run = ?3, "
			  "stage_base = published_run, stage_fingerprint = ?4, "
			  "stage_key = ?5, checkpoint = NULL, stage_seen = 0, "
			  "stage_rejected = 0, table_name = ?6, mode = ?7 "
			  "WHERE dataset = ?1 RETURNING stage_base",
			  &q, err))
		return err->code;
	sqlite3_bind_text(q, 1, t->dataset, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 2, name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(q, 3, rc->run_id);
	sqlite3_bind_text(q, 4, t->fingerprint, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 5, key, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 6, t->table, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 7, as_mode_name(t->mode), -1, SQLITE_STATIC);
	if (sqlite3_step(q) != SQLITE_ROW) {
		as_sq_fail(s, err, "recording staging");
		sqlite3_finalize(q);
		return err->code;
	}
	r->stage_base = sqlite3_column_int64(q, 0);
	sqlite3_finalize(q);
	return 0;
}

/* A new staging for this run, with its spans table, in one fenced
 * transaction. */
static int create_stage(void *conn, as_run_ctx *rc, as_error *err)
{
	sq_store *s = conn;
	as_table *t = rc->table;
	char *sql = NULL, name[64];

	snprintf(name, sizeof(name), "_atomsync_stage_%lld",
		 (long long)rc->run_id);
	if (!t->nfront)
		t->nfront = t->ncols;
	if (as_sq_txn(s, "BEGIN IMMEDIATE", "creating the staging table", err))
		return err->code;
	if (as_sq_fence(s, NULL, as_table_lease(t), rc->token, rc->lease_ttl_ms,
			err))
		goto fail;
	sql = as_sq_create_sql(t, name);
	if (as_sq_exec(s, sql, err))
		goto fail;
	free(sql);
	sql = spans_create_sql(t, name);
	if (as_sq_exec(s, sql, err) || record_stage(s, rc, name, err) ||
	    as_sq_txn(s, "COMMIT", "creating the staging table", err))
		goto fail;
	free(sql);
	if (as_sq_stage_names(rc->priv, name))
		return as_error_set(err, AS_ENOMEM, "out of memory");
	return 0;
fail:
	free(sql);
	as_sq_rollback(s);
	return err->code;
}

/* The staging prepared (as_sql_stage_prepare). */
int as_sq_stage_prepare(as_store *st, as_run_ctx *rc, as_error *err)
{
	sq_run *r = rc->priv;

	return as_sql_stage_prepare((sq_store *)st, &sq_cols, rc, r->stage,
				    err);
}

int as_sq_stage_discard(as_store *st, as_run_ctx *rc, as_error *err)
{
	sq_run *r = rc->priv;
	as_sql q;

	as_sq_sql((sq_store *)st, &q);
	return as_sql_stage_discard(&q, rc, r->stage, err);
}
