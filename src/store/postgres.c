/*
 * The PostgreSQL store: live tables, UNLOGGED per-run staging tables filled
 * with COPY, and the bookkeeping tables of DESIGN.md in one database that
 * many workers on many hosts share.  Leases live in the database (expiry by
 * the server's clock) and fence every staging commit and the publish.
 * Staging is in store/postgres_stage.c, the publish in postgres_publish.c.
 */
#include <stdlib.h>
#include <string.h>

#include "store/postgres_int.h"
#include "util/log.h"
#include "util/str.h"
#include "util/time.h"

#define CONNECT_BUDGET 5.0 /* seconds of connection retries */

/* Timestamps as the engine writes them (ISO 8601 UTC, milliseconds). */

static const char *RUN_COLS =
	"run_id, dataset, kind, mode, status, " AS_PG_ISO("started_at") ", " AS_PG_ISO(
		"finished_at") ", seen, inserted, updated, unchanged, deleted, "
			       "rejected, duplicates, resumed_from, error";

/* ---- parameters, statements, errors ---- */

void as_pg_params_init(as_pg_params *p)
{
	p->n = 0;
}

void as_pg_param_text(as_pg_params *p, const char *s)
{
	p->len[p->n] = 0;
	p->v[p->n++] = s;
}

void as_pg_param_int(as_pg_params *p, int64_t v)
{
	snprintf(p->num[p->n], sizeof(p->num[0]), "%lld", (long long)v);
	p->len[p->n] = 0;
	p->v[p->n] = p->num[p->n];
	p->n++;
}

int as_pg_param_val(as_pg_params *p, const as_val *v, as_type t, as_arena *a)
{
	char *s;

	switch (v->kind) {
	case AS_V_INT:
		if (t == AS_TYPE_BOOLEAN)
			as_pg_param_text(p, v->u.i ? "t" : "f");
		else
			as_pg_param_int(p, v->u.i);
		return 0;
	case AS_V_REAL:
		snprintf(p->num[p->n], sizeof(p->num[0]), "%.17g", v->u.r);
		as_pg_param_text(p, p->num[p->n]);
		return 0;
	case AS_V_TEXT:
		s = as_arena_strndup(a, v->u.s, v->len);
		if (!s)
			return AS_ENOMEM;
		as_pg_param_text(p, s);
		return 0;
	default: as_pg_param_text(p, NULL); return 0;
	}
}

/* The first line of libpq's message (its messages may span lines). */
static void first_line(const char *msg, char *out, size_t cap)
{
	size_t n = 0;

	while (msg && msg[n] && msg[n] != '\n' && n + 1 < cap) {
		out[n] = msg[n];
		n++;
	}
	out[n] = '\0';
}

int as_pg_fail(pg_store *s, const PGresult *res, const char *what,
	       as_error *err)
{
	const char *state =
		res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	const char *msg =
		res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
	char line[600];

	if (!msg)
		first_line(PQerrorMessage(s->conn), line, sizeof(line));
	else
		first_line(msg, line, sizeof(line));
	if (PQstatus(s->conn) == CONNECTION_BAD)
		as_error_set(err, AS_ESTORE,
			     "postgres: %s: connection lost: %s", what,
			     line[0] ? line : "server closed the connection");
	else
		as_error_set(err, AS_ESTORE, "postgres: %s: %s", what,
			     line[0] ? line : "unknown error");
	if (state && strlen(state) == 5)
		memcpy(err->sqlstate, state, 6);
	else if (PQstatus(s->conn) == CONNECTION_BAD)
		memcpy(err->sqlstate, "08006", 6);
	return AS_ESTORE;
}

int as_pg_exec(pg_store *s, const char *sql, const as_pg_params *p,
	       PGresult **out, const char *what, as_error *err)
{
	PGresult *res;
	ExecStatusType st;

	if (out)
		*out = NULL;
	if (p && p->n)
		res = PQexecParams(s->conn, sql, p->n, NULL, p->v, NULL, NULL,
				   0);
	else
		res = PQexec(s->conn, sql);
	st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
		as_pg_fail(s, res, what, err);
		PQclear(res);
		return AS_ESTORE;
	}
	if (out)
		*out = res;
	else
		PQclear(res);
	return 0;
}

int64_t as_pg_cell_int(const PGresult *res, int row, int col)
{
	if (row >= PQntuples(res) || PQgetisnull(res, row, col))
		return 0;
	return strtoll(PQgetvalue(res, row, col), NULL, 10);
}

void as_pg_param_counts(as_pg_params *p, const as_counts *c)
{
	as_pg_param_int(p, c->seen);
	as_pg_param_int(p, c->inserted);
	as_pg_param_int(p, c->updated);
	as_pg_param_int(p, c->unchanged);
	as_pg_param_int(p, c->deleted);
}

int as_pg_state_row(PGresult *res, const char *dataset, as_error *err)
{
	if (PQntuples(res) == 1)
		return 0;
	PQclear(res);
	return as_error_set(err, AS_ESTORE,
			    "postgres: dataset %s: no state row", dataset);
}

char *as_pg_cell_dup(const PGresult *res, int row, int col)
{
	if (row >= PQntuples(res) || PQgetisnull(res, row, col))
		return NULL;
	return as_strdup(PQgetvalue(res, row, col));
}

int as_pg_int(pg_store *s, const char *sql, const as_pg_params *p, int64_t *out,
	      const char *what, as_error *err)
{
	PGresult *res;

	*out = 0;
	if (as_pg_exec(s, sql, p, &res, what, err))
		return AS_ESTORE;
	*out = as_pg_cell_int(res, 0, 0);
	PQclear(res);
	return 0;
}

int as_pg_exec_buf(pg_store *s, as_buf *sql, const as_pg_params *p,
		   int64_t *changes, const char *what, as_error *err)
{
	PGresult *res;
	int rc = as_pg_exec(s, as_buf_cstr(sql), p, &res, what, err);

	as_buf_reset(sql);
	if (rc)
		return rc;
	if (changes)
		*changes = strtoll(PQcmdTuples(res), NULL, 10);
	PQclear(res);
	return 0;
}

int as_pg_int_buf(pg_store *s, as_buf *sql, const as_pg_params *p, int64_t *out,
		  const char *what, as_error *err)
{
	int rc = as_pg_int(s, as_buf_cstr(sql), p, out, what, err);

	as_buf_reset(sql);
	return rc;
}

/* Staging transactions need not wait for the WAL flush: their tables are
 * UNLOGGED (lost in a server crash anyway, which run_begin detects) and a
 * lost checkpoint commit only means resuming from an earlier one. */
int as_pg_begin(pg_store *s, int staging, as_error *err)
{
	return as_pg_exec(s,
			  staging ? "BEGIN; SET LOCAL synchronous_commit = off"
				  : "BEGIN",
			  NULL, NULL, "begin", err);
}

int as_pg_commit(pg_store *s, const char *what, as_error *err)
{
	return as_pg_exec(s, "COMMIT", NULL, NULL, what, err);
}

void as_pg_rollback(pg_store *s)
{
	if (s->conn && PQstatus(s->conn) == CONNECTION_OK &&
	    PQtransactionStatus(s->conn) != PQTRANS_IDLE)
		PQclear(PQexec(s->conn, "ROLLBACK"));
}

int as_pg_table_exists(pg_store *s, const char *name, int *exists,
		       as_error *err)
{
	as_pg_params p;
	int64_t n;
	int rc;

	as_pg_params_init(&p);
	as_pg_param_text(&p, name);
	rc = as_pg_int(s,
		       "SELECT (to_regclass(quote_ident($1)) IS NOT NULL)::int",
		       &p, &n, "looking up a table", err);
	*exists = n > 0;
	return rc;
}

/* ---- SQL text from identifiers ---- */

const char *as_pg_type(as_type t)
{
	switch (t) {
	case AS_TYPE_INTEGER: return "bigint";
	case AS_TYPE_REAL: return "double precision";
	case AS_TYPE_BOOLEAN: return "boolean";
	case AS_TYPE_JSON: return "jsonb";
	case AS_TYPE_TIMESTAMP: return "timestamp with time zone";
	default: return "text";
	}
}

static int sql_exec(void *conn, const char *sql, const char *what,
		    as_error *err)
{
	return as_pg_exec(conn, sql, NULL, NULL, what, err);
}

static int exec_changes(void *conn, const char *sql, int64_t *changes,
			const char *what, as_error *err)
{
	PGresult *res;

	if (as_pg_exec(conn, sql, NULL, &res, what, err))
		return err->code;
	*changes = strtoll(PQcmdTuples(res), NULL, 10);
	PQclear(res);
	return 0;
}

static int query_ints(void *conn, const char *sql, int64_t *out, int n,
		      const char *what, as_error *err)
{
	PGresult *res;

	if (as_pg_exec(conn, sql, NULL, &res, what, err))
		return err->code;
	for (int i = 0; i < n; i++)
		out[i] = as_pg_cell_int(res, 0, i);
	PQclear(res);
	return 0;
}

static int query_rows(void *conn, const char *sql, const char *arg, int n,
		      int (*row)(void *ud, const char *const *v), void *ud,
		      const char *what, as_error *err)
{
	const char *v[8];
	PGresult *res;
	as_pg_params p;
	int rows, ret = 0;

	if (n > 8)
		return as_error_set(err, AS_ESTORE, "%s", what);
	as_pg_params_init(&p);
	if (arg)
		as_pg_param_text(&p, arg);
	if (as_pg_exec(conn, sql, arg ? &p : NULL, &res, what, err))
		return err->code;
	rows = PQntuples(res);
	for (int r = 0; !ret && r < rows; r++) {
		for (int i = 0; i < n; i++)
			v[i] = PQgetisnull(res, r, i) ? NULL
						      : PQgetvalue(res, r, i);
		ret = row(ud, v);
	}
	PQclear(res);
	return ret;
}

int as_pg_exec_out(void *conn, const char *sql, const as_val *v,
		   const as_type *ty, size_t n, int64_t *id, int64_t *changes,
		   const char *what, as_error *err)
{
	PGresult *res = NULL;
	as_pg_params p;
	as_arena a;
	int ret = 0;

	as_arena_init(&a);
	as_pg_params_init(&p);
	for (size_t i = 0; !ret && i < n; i++)
		if (as_pg_param_val(&p, &v[i], ty[i], &a))
			ret = as_error_set(err, AS_ENOMEM, "out of memory");
	if (!ret && !(ret = as_pg_exec(conn, sql, &p, &res, what, err))) {
		if (id)
			*id = PQntuples(res) > 0 ? as_pg_cell_int(res, 0, 0)
						 : 0;
		if (changes)
			*changes = strtoll(PQcmdTuples(res), NULL, 10);
		PQclear(res);
	}
	as_arena_free(&a);
	return ret;
}

static int exec_vals(void *conn, const char *sql, const as_val *v,
		     const as_type *ty, size_t n, const char *what,
		     as_error *err)
{
	return as_pg_exec_out(conn, sql, v, ty, n, NULL, NULL, what, err);
}

static void pg_param(as_buf *b, size_t i, as_type t)
{
	as_buf_printf(b, "$%zu::%s", i, as_pg_type(t));
}

static void pg_iso_time(as_buf *b, const char *col)
{
	as_buf_printf(b, AS_PG_ISO("%s"), col);
}

static void pg_json_int(as_buf *b, const char *col, const char *key)
{
	as_buf_printf(b, "(%s->>'%s')::bigint", col, key);
}

static void pg_now(as_buf *b, int clock)
{
	as_buf_adds(b, clock ? "clock_timestamp()" : "now()");
}

static void pg_ago(as_buf *b, int64_t ms)
{
	as_buf_printf(b,
		      "clock_timestamp() - %lld::bigint * interval "
		      "'1 millisecond'",
		      (long long)ms);
}

/* Stagings and their spans tables (postgres_spans.c) no dataset refers to;
 * then the liveness marks of stagings gone (postgres_stage.c). */
static const char PG_ORPHANS_SQL[] =
	"SELECT c.relname FROM pg_class c "
	"WHERE c.relnamespace = current_schema()::regnamespace "
	"AND c.relkind = 'r' AND c.relname LIKE "
	"'\\_atomsync\\_stage\\_%' AND c.relname NOT IN "
	"(SELECT stage_table FROM atomsync_state "
	"WHERE stage_table IS NOT NULL UNION ALL SELECT "
	"stage_table || '_spans' FROM atomsync_state "
	"WHERE stage_table IS NOT NULL) LIMIT 64";

static const char PG_COLUMNS_SQL[] =
	"SELECT a.attname, format_type(a.atttypid, a.atttypmod) "
	"FROM pg_attribute a WHERE a.attrelid = "
	"to_regclass(quote_ident($1)) AND a.attnum > 0 AND NOT "
	"a.attisdropped ORDER BY a.attnum";

static const as_sql_dialect pg_dialect = {
	.temp = "pg_temp",
	.main = "",
	.true_lit = "true",
	.false_lit = "false",
	.text_type = "text",
	.blob_type = "bytea",
	.analyze_temp = 1,
	.temp_suffix = " ON COMMIT DROP",
	.type = as_pg_type,
	.type_of = as_pg_type_of,
	.nocase_types = 0,
	.strict_decl = 1,
	.columns_sql = PG_COLUMNS_SQL,
	.typed_temp = 1,
	.bool_type = "boolean",
	.is_not_distinct = " IS NOT DISTINCT FROM ",
	.iso_time = pg_iso_time,
	.json_int = pg_json_int,
	.exists_sql = "SELECT (to_regclass(quote_ident($1)) IS NOT NULL)::int",
	.keyed_suffix = "",
	.upsert_alias = "t",
	.hist = &as_pg_hist_types,
	/* the schema's advisory lock: CREATE IF NOT EXISTS races on the
	 * catalog */
	.create_lock = "SELECT pg_advisory_xact_lock(2053462381)",
	.create_index = "CREATE INDEX ",
	.param = pg_param,
	.now = pg_now,
	.ago = pg_ago,
	.for_update = " FOR UPDATE",
	.orphans_sql = PG_ORPHANS_SQL,
	.orphans_done = "DELETE FROM atomsync_stage_alive WHERE stage_table "
			"NOT IN (SELECT stage_table FROM atomsync_state "
			"WHERE stage_table IS NOT NULL)",
};

static const as_sql_driver pg_driver = {
	sql_exec,  exec_changes,      query_ints, query_rows,
	exec_vals, &as_pg_outbox_ops, &as_pg_txn};

void as_pg_sql(pg_store *s, as_sql *q)
{
	as_sql_init(q, &pg_dialect, &pg_driver, s);
}

static void gone_filter(as_buf *b, const as_table *t, const void *ud)
{
	(void)t;
	as_pg_gone_filter(b, ud);
}

void as_pg_run_view(const as_run_ctx *rc, as_sql_run *out)
{
	const pg_run *r = rc->priv;

	memset(out, 0, sizeof(*out));
	out->live_q = r->live_q;
	out->stage_q = r->stage ? r->stage_q : NULL;
	if (r->gone) { /* the spans' deletions (postgres_spans.c) */
		out->gone_filter = gone_filter;
		out->gone_ud = rc;
	}
}

as_type as_pg_type_of(const char *decl)
{
	static const as_type types[] = {AS_TYPE_INTEGER, AS_TYPE_REAL,
					AS_TYPE_TEXT,	 AS_TYPE_BOOLEAN,
					AS_TYPE_JSON,	 AS_TYPE_TIMESTAMP};

	for (size_t i = 0; decl && i < sizeof(types) / sizeof(types[0]); i++)
		if (strcmp(decl, as_pg_type(types[i])) == 0)
			return types[i];
	return AS_TYPE_AUTO;
}

void as_pg_text_expr(as_buf *b, const char *expr, as_type t)
{
	if (t == AS_TYPE_TIMESTAMP)
		as_buf_printf(b,
			      "to_char(%s AT TIME ZONE 'UTC', "
			      "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')",
			      expr);
	else
		as_buf_printf(b, "(%s)::text", expr);
}

/* The columns before the _atomsync ones (as_table_front), then those, then
 * the columns added since (the layout ALTER TABLE ADD COLUMN makes). */
int as_pg_create_table(pg_store *s, const as_table *t, const char *name,
		       int unlogged, as_error *err)
{
	as_buf b = AS_BUF_INIT;
	size_t front = as_table_front(t);

	as_buf_printf(&b, "CREATE %sTABLE IF NOT EXISTS ",
		      unlogged ? "UNLOGGED " : "");
	as_buf_add_ident(&b, name);
	as_buf_adds(&b, " (");
	for (size_t i = 0; i < front; i++) {
		as_buf_add_ident(&b, t->cols[i].name);
		as_buf_printf(&b, " %s, ", as_pg_type(t->cols[i].type));
	}
	as_buf_adds(&b, "\"_atomsync_run\" bigint, \"_atomsync_hash\" bigint, "
			"\"_atomsync_line\" bytea, ");
	for (size_t i = front; i < t->ncols; i++) {
		as_buf_add_ident(&b, t->cols[i].name);
		as_buf_printf(&b, " %s, ", as_pg_type(t->cols[i].type));
	}
	as_buf_adds(&b, "PRIMARY KEY (");
	as_sql_key_list(&b, t, NULL);
	as_buf_adds(&b, "))");
	if (as_pg_exec_buf(s, &b, NULL, NULL, "creating a table", err)) {
		as_buf_free(&b);
		return err->code;
	}
	as_buf_free(&b);
	return 0;
}

/* "(c1, ..., _atomsync_run, _atomsync_hash, _atomsync_line)": the columns
 * of a staging insert by name (the _atomsync ones may stand before columns
 * added later). */
void as_pg_insert_cols(as_buf *b, const as_table *t)
{
	as_buf_adds(b, "(");
	for (size_t i = 0; i < t->ncols; i++) {
		as_buf_add_ident(b, t->cols[i].name);
		as_buf_adds(b, ", ");
	}
	as_buf_adds(b, "\"_atomsync_run\", \"_atomsync_hash\", "
		       "\"_atomsync_line\")");
}

/* ---- opening ---- */

static const char *SCHEMA =
	"CREATE TABLE IF NOT EXISTS atomsync_meta("
	" key text PRIMARY KEY, value text);"
	"INSERT INTO atomsync_meta VALUES('schema_version', '1') "
	" ON CONFLICT (key) DO NOTHING;"
	"CREATE TABLE IF NOT EXISTS atomsync_runs("
	" run_id bigserial PRIMARY KEY,"
	" dataset text NOT NULL, kind text NOT NULL DEFAULT 'sync', mode text,"
	" status text NOT NULL, started_at timestamptz NOT NULL DEFAULT now(),"
	" finished_at timestamptz,"
	" seen bigint NOT NULL DEFAULT 0, inserted bigint NOT NULL DEFAULT 0,"
	" updated bigint NOT NULL DEFAULT 0, unchanged bigint NOT NULL DEFAULT 0,"
	" deleted bigint NOT NULL DEFAULT 0, rejected bigint NOT NULL DEFAULT 0,"
	" duplicates bigint NOT NULL DEFAULT 0, resumed_from bigint,"
	" error text, lease_token bigint, owner text);"
	"CREATE INDEX IF NOT EXISTS atomsync_runs_dataset"
	" ON atomsync_runs(dataset, run_id);"
	"CREATE TABLE IF NOT EXISTS atomsync_leases("
	" dataset text PRIMARY KEY, owner text, token bigint NOT NULL DEFAULT 0,"
	" acquired_at timestamptz, expires_at timestamptz NOT NULL);"
	"CREATE TABLE IF NOT EXISTS atomsync_state("
	" dataset text PRIMARY KEY, table_name text NOT NULL, mode text,"
	" published_run bigint NOT NULL DEFAULT 0, cursor text,"
	" stage_table text, stage_run bigint, stage_last_run bigint,"
	" stage_base bigint, stage_fingerprint text, stage_key text,"
	" checkpoint text, stage_seen bigint NOT NULL DEFAULT 0,"
	" stage_rejected bigint NOT NULL DEFAULT 0);"
	/* A row per staging table, in an UNLOGGED table: a server crash
	 * empties every unlogged table together, so a staging whose row is
	 * gone lost its rows too and must not be resumed (invariant 4). */
	"CREATE UNLOGGED TABLE IF NOT EXISTS atomsync_stage_alive("
	" stage_table text PRIMARY KEY);";

static const as_store_ops postgres_ops;

static void quiet_notice(void *arg, const char *message)
{
	(void)arg;
	as_debug("postgres: %s", message);
}

/* A connection failure that waiting will not cure. */
static int permanent_failure(const char *msg)
{
	return strstr(msg, "authentication failed") ||
	       strstr(msg, "does not exist") || strstr(msg, "password") ||
	       strstr(msg, "invalid ") || strstr(msg, "no pg_hba.conf entry");
}

/* Connect, retrying with backoff for a few seconds (a server restarting,
 * a failover): connect_timeout bounds each attempt; the URL may override
 * it and application_name. */
static int connect_db(pg_store *s, const char *url, as_error *err)
{
	const char *keys[] = {"fallback_application_name", "connect_timeout",
			      "dbname", NULL};
	const char *vals[] = {"atomsync", "5", url, NULL};
	double deadline = as_mono() + CONNECT_BUDGET;
	int64_t delay = 200;
	char line[600];
	char *perr = NULL;
	PQconninfoOption *opts = PQconninfoParse(url, &perr);

	if (!opts && strncmp(url, "postgres", 8) != 0) {
		first_line(perr ? perr : "cannot parse", line, sizeof(line));
		PQfreemem(perr);
		return as_error_set(err, AS_EUSAGE, "store %s: %s",
				    s->base.display, line);
	}
	PQconninfoFree(opts);
	PQfreemem(perr);
	for (;;) {
		s->conn = PQconnectdbParams(keys, vals, 1);
		if (s->conn && PQstatus(s->conn) == CONNECTION_OK)
			return 0;
		first_line(s->conn ? PQerrorMessage(s->conn) : "out of memory",
			   line, sizeof(line));
		PQfinish(s->conn);
		s->conn = NULL;
		if (permanent_failure(line) ||
		    as_mono() + (double)delay / 1000.0 > deadline)
			break;
		as_sleep_ms(delay);
		delay *= 2;
	}
	as_error_set(err, AS_ESTORE, "store %s: cannot connect: %s",
		     s->base.display, line);
	memcpy(err->sqlstate, "08001", 6);
	return AS_ESTORE;
}

/* Create the bookkeeping tables once; concurrent first workers serialize
 * on an advisory lock (CREATE IF NOT EXISTS races on the catalog). */
static int ensure_schema(pg_store *s, as_error *err)
{
	int64_t have;

	if (as_pg_int(s,
		      "SELECT (to_regclass('atomsync_stage_alive') IS NOT NULL "
		      "AND to_regclass('atomsync_state') IS NOT NULL)::int",
		      NULL, &have, "reading the schema", err))
		return err->code;
	if (have)
		return 0;
	if (as_pg_exec(s, "BEGIN; SELECT pg_advisory_xact_lock(2053462381)",
		       NULL, NULL, "creating the schema", err) ||
	    as_pg_exec(s, SCHEMA, NULL, NULL, "creating the schema", err) ||
	    as_pg_commit(s, "creating the schema", err)) {
		as_pg_rollback(s);
		return err->code;
	}
	return 0;
}

int as_postgres_open(as_store **out, const char *url, as_error *err);
int as_postgres_open(as_store **out, const char *url, as_error *err)
{
	pg_store *s = calloc(1, sizeof(*s));

	*out = NULL;
	if (!s)
		return as_error_set(err, AS_ENOMEM, "out of memory");
	s->base.ops = &postgres_ops;
	s->base.url = as_strdup(url);
	s->base.display = as_redact_url(url);
	if (connect_db(s, url, err))
		goto fail;
	PQsetNoticeProcessor(s->conn, quiet_notice, NULL);
	if (as_pg_exec(s, "SET client_min_messages = warning", NULL, NULL,
		       "configuring the session", err) ||
	    ensure_schema(s, err)) {
		as_error_prefix(err, "opening store %s", s->base.display);
		goto fail;
	}
	*out = &s->base;
	return 0;
fail:
	postgres_ops.close(&s->base);
	return err->code;
}

static void pg_close(as_store *st)
{
	pg_store *s = (pg_store *)st;

	if (!s)
		return;
	as_pg_drain(s, NULL);
	as_pg_stage_free(s);
	PQfinish(s->conn);
	free(s->base.url);
	free(s->base.display);
	free(s);
}

/* ---- reading records ---- */

static int pg_runs_list(as_store *st, const char *dataset, size_t limit,
			as_run_info **out, size_t *n, as_error *err)
{
	pg_store *s = (pg_store *)st;
	as_buf sql = AS_BUF_INIT;
	as_run_info *v = NULL;
	PGresult *res;
	as_pg_params p;
	int rows;

	as_pg_drain(s, NULL);
	*out = NULL;
	*n = 0;
	as_pg_params_init(&p);
	as_buf_printf(&sql,
		      "SELECT %s FROM atomsync_runs %s ORDER BY run_id DESC",
		      RUN_COLS, dataset ? "WHERE dataset = $1" : "");
	if (dataset)
		as_pg_param_text(&p, dataset);
	if (limit) {
		as_pg_param_int(&p, (int64_t)limit);
		as_buf_printf(&sql, " LIMIT $%d::bigint", p.n);
	}
	if (as_pg_exec(s, as_buf_cstr(&sql), &p, &res, "reading runs", err)) {
		as_buf_free(&sql);
		return err->code;
	}
	as_buf_free(&sql);
	rows = PQntuples(res);
	if (rows > 0 && !(v = calloc((size_t)rows, sizeof(*v)))) {
		PQclear(res);
		return as_error_set(err, AS_ENOMEM, "out of memory");
	}
	for (int i = 0; i < rows; i++) {
		as_run_info *ri = &v[i];

		ri->run_id = as_pg_cell_int(res, i, 0);
		ri->dataset = as_pg_cell_dup(res, i, 1);
		ri->kind = as_pg_cell_dup(res, i, 2);
		ri->mode = as_pg_cell_dup(res, i, 3);
		ri->status = as_pg_cell_dup(res, i, 4);
		ri->started_at = as_pg_cell_dup(res, i, 5);
		ri->finished_at = as_pg_cell_dup(res, i, 6);
		ri->seen = as_pg_cell_int(res, i, 7);
		ri->inserted = as_pg_cell_int(res, i, 8);
		ri->updated = as_pg_cell_int(res, i, 9);
		ri->unchanged = as_pg_cell_int(res, i, 10);
		ri->deleted = as_pg_cell_int(res, i, 11);
		ri->rejected = as_pg_cell_int(res, i, 12);
		ri->duplicates = as_pg_cell_int(res, i, 13);
		ri->resumed_from = as_pg_cell_int(res, i, 14);
		ri->error = as_pg_cell_dup(res, i, 15);
	}
	PQclear(res);
	*out = v;
	*n = (size_t)rows;
	return as_pg_run_schema_fill(s, v, (size_t)rows, err);
}

static int pg_table_rows(as_store *st, const char *table, int64_t *rows,
			 as_error *err)
{
	pg_store *s = (pg_store *)st;
	as_sql q;

	as_pg_drain(s, NULL);
	as_pg_sql(s, &q);
	return as_sql_table_rows(&q, table, rows, err);
}

static int pg_status(as_store *st, as_dataset_status **out, size_t *n,
		     as_error *err)
{
	pg_store *s = (pg_store *)st;
	as_dataset_status *v = NULL;
	PGresult *res;
	as_sql q;
	int rows;

	as_pg_drain(s, NULL);
	*out = NULL;
	*n = 0;
	if (as_pg_exec(
		    s,
		    "SELECT s.dataset, s.table_name, s.mode, s.published_run, "
		    "s.cursor, (s.checkpoint IS NOT NULL)::int, "
		    "CASE WHEN l.expires_at > clock_timestamp() THEN l.owner END, "
		    "extract(epoch FROM l.expires_at) "
		    "FROM atomsync_state s LEFT JOIN atomsync_leases l "
		    "ON l.dataset = CASE s.mode WHEN 'scoped' THEN '" AS_TABLE_LEASE_PREFIX
		    "' || lower(s.table_name) "
		    "ELSE s.dataset END ORDER BY s.dataset",
		    NULL, &res, "reading status", err))
		return err->code;
	rows = PQntuples(res);
	if (rows > 0 && !(v = calloc((size_t)rows, sizeof(*v)))) {
		PQclear(res);
		return as_error_set(err, AS_ENOMEM, "out of memory");
	}
	for (int i = 0; i < rows; i++) {
		as_dataset_status *d = &v[i];
		const char *exp = PQgetvalue(res, i, 7);

		d->dataset = as_pg_cell_dup(res, i, 0);
		d->table = as_pg_cell_dup(res, i, 1);
		d->mode = as_pg_cell_dup(res, i, 2);
		d->published_run = as_pg_cell_int(res, i, 3);
		d->cursor = as_pg_cell_dup(res, i, 4);
		d->resumable = (int)as_pg_cell_int(res, i, 5);
		d->lease_owner = as_pg_cell_dup(res, i, 6);
		d->lease_expires =
			PQgetisnull(res, i, 7) || exp[0] == '-' || exp[0] == 'I'
				? 0
				: strtod(exp, NULL);
		d->rows = -1;
	}
	PQclear(res);
	*out = v;
	*n = (size_t)rows;
	as_pg_sql(s, &q);
	return as_sql_status_rows(&q, v, *n, err);
}

static const as_store_ops postgres_ops = {.name = "postgres",
					  AS_SQL_STORE_OPS_INIT(pg)};
