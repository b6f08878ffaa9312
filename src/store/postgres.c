/*
 * The PostgreSQL store: live tables, UNLOGGED per-run staging tables filled
 * with COPY, and the bookkeeping tables of DESIGN.md in one database that
 * many workers on many hosts share.  Leases live in the database (expiry by
 * the server's clock) and fence every staging commit and the publish.
 * Staging is in store/postgres_stage.c, the publish in postgres_publish.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/postgres_int.h"
#include "store/schema.h"
#include "util/crash.h"
#include "util/log.h"
#include "util/proc.h"
#include "util/str.h"
#include "util/time.h"

#define CONNECT_BUDGET 5.0 /* seconds of connection retries */

/* Timestamps as the engine writes them (ISO 8601 UTC, milliseconds). */
#define ISO(col)                                                               \
	"to_char(" col " AT TIME ZONE 'UTC', "                                 \
	"'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

static const char *RUN_COLS =
	"run_id, dataset, kind, mode, status, " ISO("started_at") ", " ISO(
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

static int64_t cell_int(const PGresult *res, int row, int col)
{
	if (row >= PQntuples(res) || PQgetisnull(res, row, col))
		return 0;
	return strtoll(PQgetvalue(res, row, col), NULL, 10);
}

static char *cell_dup(const PGresult *res, int row, int col)
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
	*out = cell_int(res, 0, 0);
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

static as_type type_of_pg(const char *decl)
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

void as_pg_key_list(as_buf *b, const as_table *t, const char *prefix)
{
	for (size_t i = 0; i < t->nkey; i++) {
		if (i)
			as_buf_adds(b, ", ");
		if (prefix)
			as_buf_printf(b, "%s.", prefix);
		as_buf_add_ident(b, t->cols[i].name);
	}
}

void as_pg_scope_list(as_buf *b, const as_table *t, const char *prefix)
{
	for (size_t i = 0; i < t->nscope; i++) {
		if (i)
			as_buf_adds(b, ", ");
		if (prefix)
			as_buf_printf(b, "%s.", prefix);
		as_buf_add_ident(b, t->cols[t->scope[i]].name);
	}
}

void as_pg_key_match(as_buf *b, const as_table *t, const char *a,
		     const char *bq)
{
	for (size_t i = 0; i < t->nkey; i++) {
		if (i)
			as_buf_adds(b, " AND ");
		as_buf_printf(b, "%s.", a);
		as_buf_add_ident(b, t->cols[i].name);
		as_buf_printf(b, " = %s.", bq);
		as_buf_add_ident(b, t->cols[i].name);
	}
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
	as_pg_key_list(&b, t, NULL);
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

/* ---- leases (invariant 6) ---- */

/* The holder of a dataset's lease, read in the current transaction:
 * *busy when another live worker holds it (AS_ELEASE is set). */
static int lease_holder(pg_store *s, const char *dataset, int lock, int *busy,
			as_error *err)
{
	PGresult *res;
	as_pg_params p;
	const char *holder;
	char what[160];

	*busy = 0;
	as_pg_params_init(&p);
	as_pg_param_text(&p, dataset);
	if (as_pg_exec(
		    s,
		    lock ? "SELECT owner, (expires_at > clock_timestamp())::int, " ISO(
				   "expires_at") " FROM atomsync_leases "
						 "WHERE dataset = $1 FOR UPDATE"
			 : "SELECT owner, (expires_at > clock_timestamp())::int, " ISO(
				   "expires_at") " FROM atomsync_leases "
						 "WHERE dataset = $1",
		    &p, &res, "reading lease", err))
		return err->code;
	holder = PQntuples(res) && !PQgetisnull(res, 0, 0)
			 ? PQgetvalue(res, 0, 0)
			 : NULL;
	if (holder && cell_int(res, 0, 1) && !as_owner_is_dead(holder)) {
		as_error_set(err, AS_ELEASE,
			     "%s is being run by %s (lease "
			     "expires %s); nothing done",
			     as_lease_label(dataset, what, sizeof(what)),
			     holder, PQgetvalue(res, 0, 2));
		*busy = 1;
	}
	PQclear(res);
	return *busy ? AS_ELEASE : 0;
}

/*
 * A live holder is reported at once, from a plain read.  Otherwise the
 * lease row is locked, checked again and taken: the lock may be held for a
 * while by the backend of a worker that was killed mid-commit (the server
 * rolls it back once its statement ends), so the wait is generous.
 */
static int pg_lease_acquire(as_store *st, const char *dataset,
			    const char *owner, int64_t ttl_ms, int64_t *token,
			    as_error *err)
{
	pg_store *s = (pg_store *)st;
	PGresult *res = NULL;
	as_pg_params p;
	int busy;

	as_pg_drain(s, NULL);
	as_pg_params_init(&p);
	as_pg_param_text(&p, dataset);
	if (as_pg_exec(
		    s,
		    "INSERT INTO atomsync_leases(dataset, token, expires_at) "
		    "VALUES($1, 0, '-infinity') ON CONFLICT (dataset) DO NOTHING",
		    &p, NULL, "taking lease", err))
		return err->code;
	if (as_pg_exec(s, "BEGIN; SET LOCAL lock_timeout = '60s'", NULL, NULL,
		       "taking lease", err))
		return err->code;
	if (lease_holder(s, dataset, 0, &busy, err) ||
	    lease_holder(s, dataset, 1, &busy, err))
		goto fail;
	as_pg_param_text(&p, owner);
	as_pg_param_int(&p, ttl_ms);
	if (as_pg_exec(
		    s,
		    "UPDATE atomsync_leases SET owner = $2, token = token + 1, "
		    "acquired_at = clock_timestamp(), expires_at = "
		    "clock_timestamp() + $3::bigint * interval '1 millisecond' "
		    "WHERE dataset = $1 RETURNING token",
		    &p, &res, "taking lease", err))
		goto fail;
	*token = cell_int(res, 0, 0);
	PQclear(res);
	if (as_pg_commit(s, "taking lease", err))
		goto fail;
	return 0;
fail:
	if (strcmp(err->sqlstate, "55P03") == 0) {
		char what[160];

		as_error_set(err, AS_ELEASE,
			     "%s: its lease stayed locked by "
			     "another worker's transaction; nothing done",
			     as_lease_label(dataset, what, sizeof(what)));
	}
	as_pg_rollback(s);
	return err->code;
}

int as_pg_fence(pg_store *s, const char *dataset, int64_t token, int64_t ttl_ms,
		as_error *err)
{
	as_pg_params p;
	PGresult *res;
	int64_t n;

	as_pg_params_init(&p);
	as_pg_param_text(&p, dataset);
	as_pg_param_int(&p, token);
	as_pg_param_int(&p, ttl_ms);
	if (as_pg_exec(
		    s,
		    "UPDATE atomsync_leases SET expires_at = clock_timestamp() "
		    "+ $3::bigint * interval '1 millisecond' WHERE dataset = $1 "
		    "AND token = $2 AND owner IS NOT NULL",
		    &p, &res, "checking lease", err))
		return AS_ESTORE;
	n = strtoll(PQcmdTuples(res), NULL, 10);
	PQclear(res);
	if (n != 1)
		return as_lease_lost(dataset, token, err);
	return 0;
}

static int pg_lease_renew(as_store *st, const char *dataset, int64_t token,
			  int64_t ttl_ms, as_error *err)
{
	return as_pg_fence((pg_store *)st, dataset, token, ttl_ms, err);
}

static int pg_lease_release(as_store *st, const char *dataset, int64_t token,
			    as_error *err)
{
	pg_store *s = (pg_store *)st;
	as_pg_params p;

	as_pg_drain(s, NULL);
	as_pg_params_init(&p);
	as_pg_param_text(&p, dataset);
	as_pg_param_int(&p, token);
	return as_pg_exec(
		s,
		"UPDATE atomsync_leases SET owner = NULL, expires_at = "
		"'-infinity' WHERE dataset = $1 AND token = $2",
		&p, NULL, "releasing lease", err);
}

/* ---- run records ---- */

static void pg_run_free(as_store *st, as_run_ctx *rc)
{
	pg_store *s = (pg_store *)st;
	pg_run *r = rc->priv;

	if (!r)
		return;
	as_pg_drain(s, NULL);
	if (r->batch_q && s->conn && PQstatus(s->conn) == CONNECTION_OK &&
	    PQtransactionStatus(s->conn) == PQTRANS_IDLE) {
		as_buf b = AS_BUF_INIT;

		as_buf_printf(&b, "DROP TABLE IF EXISTS pg_temp.%s",
			      r->batch_q);
		PQclear(PQexec(s->conn, as_buf_cstr(&b)));
		as_buf_free(&b);
	}
	free(r->live_q);
	free(r->stage);
	free(r->stage_q);
	free(r->batch_q);
	free(r->stage_type);
	free(r->live_key);
	free(r->live_hash);
	free(r->live_used);
	free(r);
	rc->priv = NULL;
}

int as_pg_drop_stage(pg_store *s, const char *stage, as_error *err)
{
	char *spans = as_sprintf("%s_spans", stage);
	as_buf b = AS_BUF_INIT;
	as_pg_params p;

	as_buf_adds(&b, "DROP TABLE IF EXISTS ");
	as_buf_add_ident(&b, stage);
	as_buf_adds(&b, ", "); /* and its spans (postgres_spans.c) */
	as_buf_add_ident(&b, spans ? spans : stage);
	free(spans);
	if (as_pg_exec_buf(s, &b, NULL, NULL, "dropping a staging table",
			   err)) {
		as_buf_free(&b);
		return err->code;
	}
	as_buf_free(&b);
	as_pg_params_init(&p);
	as_pg_param_text(&p, stage);
	return as_pg_exec(
		s, "DELETE FROM atomsync_stage_alive WHERE stage_table = $1",
		&p, NULL, "dropping a staging table", err);
}

/* Drop staging tables no dataset refers to (left by a crash after a
 * publish committed but before its staging was dropped). */
static int drop_orphans(pg_store *s, as_error *err)
{
	PGresult *res;
	int rc = 0;

	if (as_pg_exec(s,
		       "SELECT c.relname FROM pg_class c "
		       "WHERE c.relnamespace = current_schema()::regnamespace "
		       "AND c.relkind = 'r' AND c.relname LIKE "
		       "'\\_atomsync\\_stage\\_%' AND c.relname NOT IN "
		       "(SELECT stage_table FROM atomsync_state "
		       "WHERE stage_table IS NOT NULL UNION ALL SELECT "
		       "stage_table || '_spans' FROM atomsync_state "
		       "WHERE stage_table IS NOT NULL) LIMIT 64",
		       NULL, &res, "finding orphaned staging", err))
		return err->code;
	for (int i = 0; !rc && i < PQntuples(res); i++)
		rc = as_pg_drop_stage(s, PQgetvalue(res, i, 0), err);
	PQclear(res);
	if (!rc)
		rc = as_pg_exec(
			s,
			"DELETE FROM atomsync_stage_alive WHERE stage_table "
			"NOT IN (SELECT stage_table FROM atomsync_state "
			"WHERE stage_table IS NOT NULL)",
			NULL, NULL, "finding orphaned staging", err);
	return rc;
}

static int clear_stage_state(pg_store *s, const char *dataset, as_error *err)
{
	as_pg_params p;

	as_pg_params_init(&p);
	as_pg_param_text(&p, dataset);
	return as_pg_exec(
		s,
		"UPDATE atomsync_state SET stage_table = NULL, "
		"stage_run = NULL, stage_last_run = NULL, "
		"stage_base = NULL, stage_fingerprint = NULL, "
		"stage_key = NULL, checkpoint = NULL, stage_seen = 0, "
		"stage_rejected = 0 WHERE dataset = $1",
		&p, NULL, "clearing staging", err);
}

/* Decide from the state row whether this run continues the staging. */
/* Inside the run's first transaction: is the table another dataset's?  The
 * advisory lock (per table name, until commit) keeps two first runs of
 * different datasets from both finding the table free.  A non-scoped owner
 * sorts first: it refuses sharing. */
static int check_owner(pg_store *s, const as_table *t, as_error *err)
{
	PGresult *res;
	as_pg_params p;
	int rc;

	as_pg_params_init(&p);
	as_pg_param_text(&p, t->dataset);
	as_pg_param_text(&p, t->table);
	if (as_pg_exec(
		    s,
		    "SELECT pg_advisory_xact_lock(hashtext('atomsync table ' "
		    "|| $2)), (SELECT dataset || '|' || coalesce(mode, '') "
		    "FROM atomsync_state WHERE table_name = $2 AND dataset <> "
		    "$1 ORDER BY mode = 'scoped', dataset LIMIT 1)",
		    &p, &res, "reading the table's owner", err))
		return err->code;
	if (PQgetisnull(res, 0, 1)) {
		rc = 0;
	} else {
		char *other = cell_dup(res, 0, 1), *bar;

		if (!other) {
			PQclear(res);
			return as_error_set(err, AS_ENOMEM, "out of memory");
		}
		/* Mode names hold no '|': the last one ends the name. */
		bar = strrchr(other, '|');
		*bar = '\0';
		rc = as_table_owner_check(t, other, bar + 1, err);
		free(other);
	}
	PQclear(res);
	return rc;
}

static int read_state(pg_store *s, as_run_ctx *rc, char **stage,
		      int64_t *last_run, int *resume, as_error *err)
{
	pg_run *r = rc->priv;
	as_table *t = rc->table;
	PGresult *res;
	as_pg_params p;
	int alive;

	as_pg_params_init(&p);
	as_pg_param_text(&p, t->dataset);
	if (as_pg_exec(
		    s,
		    "SELECT published_run, cursor, stage_table, "
		    "stage_last_run, stage_base, stage_fingerprint, stage_key, "
		    "checkpoint, stage_seen, stage_rejected, "
		    "(to_regclass(quote_ident(stage_table)) IS NOT NULL AND "
		    "EXISTS (SELECT 1 FROM atomsync_stage_alive a "
		    "WHERE a.stage_table = s.stage_table))::int "
		    "FROM atomsync_state s WHERE dataset = $1 FOR UPDATE",
		    &p, &res, "reading state", err))
		return err->code;
	if (PQntuples(res) != 1) {
		PQclear(res);
		return as_error_set(err, AS_ESTORE,
				    "postgres: dataset %s: no state row",
				    t->dataset);
	}
	rc->cursor = cell_dup(res, 0, 1);
	*stage = cell_dup(res, 0, 2);
	*last_run = cell_int(res, 0, 3);
	alive = (int)cell_int(res, 0, 10);
	if (*stage && !rc->restart && !PQgetisnull(res, 0, 7) &&
	    cell_int(res, 0, 4) == cell_int(res, 0, 0) &&
	    as_streq(PQgetvalue(res, 0, 5), t->fingerprint)) {
		if (alive) {
			*resume = 1;
			rc->stage_key = cell_dup(res, 0, 6);
			rc->checkpoint = cell_dup(res, 0, 7);
			rc->seen = cell_int(res, 0, 8);
			rc->rejected = cell_int(res, 0, 9);
			r->stage_base = cell_int(res, 0, 0);
		} else {
			as_warn("dataset %s: the staging of run %lld was lost in a "
				"database server crash (staging tables are unlogged); "
				"starting over",
				t->dataset, (long long)*last_run);
		}
	}
	PQclear(res);
	return 0;
}

/*
 * One fenced transaction: mark runs left active by dead workers as failed
 * (invariant 10), put this run on record, and decide whether it continues
 * the interrupted staging (invariant 4) or starts over.
 */
static int pg_run_begin(as_store *st, as_run_ctx *rc, as_error *err)
{
	pg_store *s = (pg_store *)st;
	as_table *t = rc->table;
	pg_run *r = calloc(1, sizeof(*r));
	PGresult *res = NULL;
	as_pg_params p;
	char *stage = NULL;
	int64_t last_run = 0;
	int resume = 0;

	as_pg_drain(s, NULL);
	if (!r)
		return as_error_set(err, AS_ENOMEM, "out of memory");
	rc->priv = r;
	r->live_q = as_quote_ident(t->table);
	if (as_pg_begin(s, 0, err))
		return err->code;
	if (as_pg_fence(s, as_table_lease(t), rc->token, rc->lease_ttl_ms, err))
		goto fail;
	as_pg_params_init(&p);
	as_pg_param_text(&p, t->dataset);
	if (as_pg_exec(
		    s,
		    "UPDATE atomsync_runs SET status = 'failed', "
		    "finished_at = now(), error = 'interrupted: the worker "
		    "stopped before finishing (killed, crashed or lost its "
		    "connection); nothing was published' "
		    "WHERE dataset = $1 AND status IN ('active', 'publishing')",
		    &p, NULL, "recording interrupted runs", err))
		goto fail;
	if (check_owner(s, t, err))
		goto fail;
	as_pg_param_text(&p, t->table);
	as_pg_param_text(&p, as_mode_name(t->mode));
	if (as_pg_exec(s,
		       "INSERT INTO atomsync_state(dataset, table_name, mode) "
		       "VALUES($1, $2, $3) ON CONFLICT (dataset) DO NOTHING",
		       &p, NULL, "creating state", err))
		goto fail;
	if (read_state(s, rc, &stage, &last_run, &resume, err))
		goto fail;
	if (!resume) {
		free(rc->checkpoint);
		free(rc->stage_key);
		rc->checkpoint = rc->stage_key = NULL;
		rc->seen = rc->rejected = 0;
		if (stage && as_pg_drop_stage(s, stage, err))
			goto fail;
		if (clear_stage_state(s, t->dataset, err))
			goto fail;
		free(stage);
		stage = NULL;
	}
	if (drop_orphans(s, err))
		goto fail;
	as_pg_params_init(&p);
	as_pg_param_text(&p, t->dataset);
	as_pg_param_text(&p, rc->kind ? rc->kind : "sync");
	as_pg_param_text(&p, as_mode_name(t->mode));
	if (resume)
		as_pg_param_int(&p, last_run);
	else
		as_pg_param_text(&p, NULL);
	as_pg_param_int(&p, rc->token);
	as_pg_param_text(&p, rc->owner);
	if (as_pg_exec(s,
		       "INSERT INTO atomsync_runs(dataset, kind, mode, status, "
		       "started_at, resumed_from, lease_token, owner) "
		       "VALUES($1, $2, $3, 'active', now(), $4, $5, $6) "
		       "RETURNING run_id",
		       &p, &res, "recording run", err))
		goto fail;
	rc->run_id = cell_int(res, 0, 0);
	PQclear(res);
	res = NULL;
	rc->resumed_from = resume ? last_run : 0;
	if (resume) {
		as_pg_params_init(&p);
		as_pg_param_text(&p, t->dataset);
		as_pg_param_int(&p, rc->run_id);
		if (as_pg_exec(s,
			       "UPDATE atomsync_state SET stage_last_run = $2 "
			       "WHERE dataset = $1",
			       &p, NULL, "adopting staging", err))
			goto fail;
		r->stage = stage;
		r->stage_q = as_quote_ident(stage);
		stage = NULL;
	}
	if (as_pg_commit(s, "recording run", err))
		goto fail;
	as_crash_point("run.begun");
	return 0;
fail:
	PQclear(res);
	free(stage);
	as_pg_rollback(s);
	return err->code;
}

static int pg_run_end(as_store *st, as_run_ctx *rc, const char *status,
		      const char *error, as_error *err)
{
	pg_store *s = (pg_store *)st;
	pg_run *r = rc->priv;
	as_pg_params p;
	as_error ferr;

	as_pg_drain(s, NULL);
	if (!rc->run_id)
		return 0;
	if (as_pg_begin(s, 0, err))
		return err->code;
	/* A worker that lost its lease leaves the record to the new holder. */
	as_error_clear(&ferr);
	if (as_pg_fence(s, as_table_lease(rc->table), rc->token,
			rc->lease_ttl_ms, &ferr)) {
		as_pg_rollback(s);
		if (ferr.code == AS_EFENCED)
			return 0;
		*err = ferr;
		return err->code;
	}
	as_pg_params_init(&p);
	as_pg_param_int(&p, rc->run_id);
	as_pg_param_text(&p, status);
	as_pg_param_text(&p, error);
	as_pg_param_int(&p, rc->seen);
	as_pg_param_int(&p, rc->rejected);
	if (as_pg_exec(
		    s,
		    "UPDATE atomsync_runs SET status = $2, finished_at = now(), "
		    "error = $3, seen = $4, rejected = $5 WHERE run_id = $1 "
		    "AND status IN ('active', 'publishing')",
		    &p, NULL, "recording run end", err))
		goto fail;
	/* A refused run starts over next time: its delivery was judged. */
	if (strcmp(status, "refused") == 0 && r && r->stage) {
		if (as_pg_drop_stage(s, r->stage, err))
			goto fail;
		as_pg_params_init(&p);
		as_pg_param_text(&p, rc->table->dataset);
		if (as_pg_exec(s,
			       "UPDATE atomsync_state SET stage_table = NULL, "
			       "checkpoint = NULL, stage_seen = 0, "
			       "stage_rejected = 0 WHERE dataset = $1",
			       &p, NULL, "clearing staging", err))
			goto fail;
	}
	return as_pg_commit(s, "recording run end", err);
fail:
	as_pg_rollback(s);
	return err->code;
}

/* ---- tables ---- */

/*
 * Compare an existing table with the dataset's columns; adopt the declared
 * types of columns still AS_TYPE_AUTO.  A mismatch is a configuration error:
 * atomsync never silently reshapes a table that holds data.
 */
/* What atomsync_columns knows of the table's inferred columns: the field
 * each was made from (store/schema.c, as_schema_known). */
static int known_cols(pg_store *s, as_table *t, as_error *err)
{
	PGresult *res;
	as_pg_params p;
	int exists;

	if (as_pg_table_exists(s, "atomsync_columns", &exists, err))
		return err->code;
	if (!exists)
		return 0;
	as_pg_params_init(&p);
	as_pg_param_text(&p, t->table);
	if (as_pg_exec(s,
		       "SELECT col, type, field FROM atomsync_columns WHERE "
		       "table_name = $1",
		       &p, &res, "reading columns", err))
		return err->code;
	for (int i = 0; i < PQntuples(res); i++)
		as_schema_known(t, PQgetvalue(res, i, 0), PQgetvalue(res, i, 1),
				PQgetisnull(res, i, 2) ? NULL
						       : PQgetvalue(res, i, 2));
	PQclear(res);
	return 0;
}

/* A table's columns, in order, with their declared types. */
static const char TABLE_COLUMNS_SQL[] =
	"SELECT a.attname, format_type(a.atttypid, a.atttypmod) "
	"FROM pg_attribute a WHERE a.attrelid = "
	"to_regclass(quote_ident($1)) AND a.attnum > 0 AND NOT "
	"a.attisdropped ORDER BY a.attnum";

/* An inferring spec: adopt the table's columns (store/schema.c).  A
 * staging records its types for stage_alter. */
static int adopt_table(pg_store *s, as_run_ctx *rc, const char *name, int stage,
		       size_t *nuser, as_error *err)
{
	as_table *t = rc->table;
	PGresult *res;
	as_pg_params p;
	const char **names = NULL;
	as_type *types = NULL;
	int n, bad = 0;

	as_pg_params_init(&p);
	as_pg_param_text(&p, name);
	if (as_pg_exec(s, TABLE_COLUMNS_SQL, &p, &res, "reading table schema",
		       err))
		return err->code;
	n = PQntuples(res);
	names = calloc((size_t)n + 1, sizeof(*names));
	types = calloc((size_t)n + 1, sizeof(*types));
	if (!names || !types) {
		bad = -2;
		goto done;
	}
	for (int i = 0; i < n; i++) {
		names[i] = PQgetvalue(res, i, 0);
		types[i] = type_of_pg(PQgetvalue(res, i, 1));
	}
	bad = as_schema_adopt(t, names, types, (size_t)n, stage, nuser);
	if (!bad && !stage && !t->legacy_json && known_cols(s, t, err)) {
		bad = -3;
		goto done;
	}
	if (!bad && stage && !t->legacy_json)
		bad = as_pg_stage_types(rc, types, names, (size_t)n) ? -2 : 0;
done:
	PQclear(res);
	free(names);
	free(types);
	if (bad == -3)
		return err->code;
	if (bad == -2)
		return as_error_set(err, AS_ENOMEM, "out of memory");
	if (bad)
		return as_error_set(err, AS_EUSAGE,
				    "table %s exists but does not have the "
				    "columns the dataset maps (the configured "
				    "ones first, in order, with their types); "
				    "rename the table or migrate it",
				    name);
	return 0;
}

static int check_table(pg_store *s, as_table *t, const char *name,
		       as_error *err)
{
	PGresult *res;
	as_pg_params p;
	int ok = 1, n;

	as_pg_params_init(&p);
	as_pg_param_text(&p, name);
	if (as_pg_exec(s, TABLE_COLUMNS_SQL, &p, &res, "reading table schema",
		       err))
		return err->code;
	n = PQntuples(res);
	for (int i = 0; i < n; i++) {
		const char *cn = PQgetvalue(res, i, 0);
		as_type ty = type_of_pg(PQgetvalue(res, i, 1));

		if ((size_t)i < t->ncols) {
			as_col *c = &t->cols[i];

			if (!as_streq(cn, c->name) || ty == AS_TYPE_AUTO)
				ok = 0;
			else if (c->type == AS_TYPE_AUTO)
				c->type = ty;
			else if (c->type != ty)
				ok = 0;
		} else if ((size_t)i == t->ncols) {
			ok = ok && as_streq(cn, "_atomsync_run");
		} else if ((size_t)i == t->ncols + 1) {
			ok = ok && as_streq(cn, "_atomsync_hash");
		} else if ((size_t)i == t->ncols + 2) {
			ok = ok && as_streq(cn, "_atomsync_line");
		}
	}
	PQclear(res);
	if (!ok || (size_t)n != t->ncols + 3) {
		as_buf want = AS_BUF_INIT;

		for (size_t k = 0; k < t->ncols; k++)
			as_buf_printf(&want, "%s%s %s", k ? ", " : "",
				      t->cols[k].name,
				      t->cols[k].type == AS_TYPE_AUTO
					      ? "?"
					      : as_pg_type(t->cols[k].type));
		as_error_set(
			err, AS_EUSAGE,
			"table %s exists but does not have the columns the "
			"dataset maps (%s, then _atomsync_run, _atomsync_hash, "
			"_atomsync_line); "
			"rename the table or migrate it",
			name, as_buf_cstr(&want));
		as_buf_free(&want);
		return AS_EUSAGE;
	}
	return 0;
}

static int pg_describe(as_store *st, as_run_ctx *rc, as_error *err)
{
	pg_store *s = (pg_store *)st;
	pg_run *r = rc->priv;
	int exists;

	as_pg_drain(s, NULL);
	if (as_pg_table_exists(s, rc->table->table, &exists, err))
		return err->code;
	if (rc->table->infer) {
		/* the live table's columns, then those the staging being
		 * resumed added */
		size_t nuser = 0;

		if (exists &&
		    adopt_table(s, rc, rc->table->table, 0, &nuser, err))
			return err->code;
		if (!rc->table->legacy_json && r && r->stage &&
		    adopt_table(s, rc, r->stage, 1, &nuser, err))
			return err->code;
		return 0;
	}
	if (exists)
		return check_table(s, rc->table, rc->table->table, err);
	if (r && r->stage)
		return check_table(s, rc->table, r->stage, err);
	return 0;
}

/*
 * Create the staging table once the columns are known (a resumed run
 * adopts its predecessor's).  The live table is created only by a publish,
 * so a failed first run leaves no trace in the user's schema.
 */
static int pg_stage_prepare(as_store *st, as_run_ctx *rc, as_error *err)
{
	pg_store *s = (pg_store *)st;
	pg_run *r = rc->priv;
	as_table *t = rc->table;
	PGresult *res = NULL;
	as_pg_params p;
	char key[512];
	int64_t n;

	as_pg_drain(s, NULL);
	if (as_pg_table_exists(s, t->table, &r->live_exists, err))
		return err->code;
	if (r->live_exists) {
		as_buf b = AS_BUF_INIT;
		int rc2;
		size_t nuser = t->ncols;

		if (t->infer ? adopt_table(s, rc, t->table, 0, &nuser, err)
			     : check_table(s, t, t->table, err))
			return err->code;
		r->live_ncols = nuser;
		as_buf_printf(&b, "SELECT EXISTS (SELECT 1 FROM %s)::int",
			      r->live_q);
		rc2 = as_pg_int_buf(s, &b, NULL, &n, "reading the live table",
				    err);
		as_buf_free(&b);
		if (rc2)
			return rc2;
		r->live_has_rows = n > 0;
		/* Read by the first batch with a parsed row (an unchanged
		 * reload matched by the scan needs none). */
		r->live_map_wanted = r->live_has_rows;
	}
	if (!r->stage) {
		char name[64];

		snprintf(name, sizeof(name), "_atomsync_stage_%lld",
			 (long long)rc->run_id);
		as_table_key_list(t, key, sizeof(key));
		if (!t->nfront)
			t->nfront = t->ncols;
		if (as_pg_stage_types(rc, NULL, NULL, 0))
			return as_error_set(err, AS_ENOMEM, "out of memory");
		if (as_pg_begin(s, 0, err))
			return err->code;
		if (as_pg_fence(s, as_table_lease(t), rc->token,
				rc->lease_ttl_ms, err) ||
		    as_pg_create_table(s, t, name, 1, err))
			goto fail;
		as_pg_params_init(&p);
		as_pg_param_text(&p, name);
		if (as_pg_exec(s,
			       "INSERT INTO atomsync_stage_alive VALUES($1) "
			       "ON CONFLICT DO NOTHING",
			       &p, NULL, "recording staging", err))
			goto fail;
		as_pg_params_init(&p);
		as_pg_param_text(&p, t->dataset);
		as_pg_param_text(&p, name);
		as_pg_param_int(&p, rc->run_id);
		as_pg_param_text(&p, t->fingerprint);
		as_pg_param_text(&p, key);
		as_pg_param_text(&p, t->table);
		as_pg_param_text(&p, as_mode_name(t->mode));
		if (as_pg_exec(
			    s,
			    "UPDATE atomsync_state SET stage_table = $2, "
			    "stage_run = $3, stage_last_run = $3, "
			    "stage_base = published_run, stage_fingerprint = $4, "
			    "stage_key = $5, checkpoint = NULL, stage_seen = 0, "
			    "stage_rejected = 0, table_name = $6, mode = $7 "
			    "WHERE dataset = $1 RETURNING stage_base",
			    &p, &res, "recording staging", err))
			goto fail;
		if (PQntuples(res) != 1) {
			as_error_set(err, AS_ESTORE,
				     "postgres: dataset %s: no state row",
				     t->dataset);
			goto fail;
		}
		r->stage_base = cell_int(res, 0, 0);
		PQclear(res);
		res = NULL;
		if (as_pg_commit(s, "recording staging", err))
			goto fail;
		r->stage = as_strdup(name);
		r->stage_q = as_quote_ident(name);
	} else if (t->infer) {
		size_t nuser;

		if (adopt_table(s, rc, r->stage, 1, &nuser, err))
			return err->code;
	} else if (check_table(s, t, r->stage, err)) {
		return err->code;
	}
	return as_pg_batch_table(s, rc, err);
fail:
	PQclear(res);
	as_pg_rollback(s);
	return err->code;
}

static int pg_stage_discard(as_store *st, as_run_ctx *rc, as_error *err)
{
	pg_store *s = (pg_store *)st;
	pg_run *r = rc->priv;
	as_pg_params p;

	as_pg_drain(s, NULL);
	if (as_pg_begin(s, 0, err))
		return err->code;
	if (as_pg_fence(s, as_table_lease(rc->table), rc->token,
			rc->lease_ttl_ms, err))
		goto fail;
	if (r->stage && as_pg_drop_stage(s, r->stage, err))
		goto fail;
	if (clear_stage_state(s, rc->table->dataset, err))
		goto fail;
	as_pg_params_init(&p);
	as_pg_param_int(&p, rc->run_id);
	if (as_pg_exec(s,
		       "UPDATE atomsync_runs SET resumed_from = NULL "
		       "WHERE run_id = $1",
		       &p, NULL, "discarding staging", err))
		goto fail;
	if (as_pg_commit(s, "discarding staging", err))
		goto fail;
	pg_run_free(st, rc);
	rc->priv = calloc(1, sizeof(pg_run));
	if (!rc->priv)
		return as_error_set(err, AS_ENOMEM, "out of memory");
	((pg_run *)rc->priv)->live_q = as_quote_ident(rc->table->table);
	free(rc->checkpoint);
	free(rc->stage_key);
	rc->checkpoint = rc->stage_key = NULL;
	rc->seen = rc->rejected = 0;
	rc->resumed_from = 0;
	return 0;
fail:
	as_pg_rollback(s);
	return err->code;
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

		ri->run_id = cell_int(res, i, 0);
		ri->dataset = cell_dup(res, i, 1);
		ri->kind = cell_dup(res, i, 2);
		ri->mode = cell_dup(res, i, 3);
		ri->status = cell_dup(res, i, 4);
		ri->started_at = cell_dup(res, i, 5);
		ri->finished_at = cell_dup(res, i, 6);
		ri->seen = cell_int(res, i, 7);
		ri->inserted = cell_int(res, i, 8);
		ri->updated = cell_int(res, i, 9);
		ri->unchanged = cell_int(res, i, 10);
		ri->deleted = cell_int(res, i, 11);
		ri->rejected = cell_int(res, i, 12);
		ri->duplicates = cell_int(res, i, 13);
		ri->resumed_from = cell_int(res, i, 14);
		ri->error = cell_dup(res, i, 15);
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
	as_buf sql = AS_BUF_INIT;
	int exists, rc;

	as_pg_drain(s, NULL);
	*rows = -1;
	if (as_pg_table_exists(s, table, &exists, err))
		return err->code;
	if (!exists)
		return 0;
	as_buf_adds(&sql, "SELECT count(*) FROM ");
	as_buf_add_ident(&sql, table);
	rc = as_pg_int_buf(s, &sql, NULL, rows, "counting rows", err);
	as_buf_free(&sql);
	return rc;
}

static int pg_status(as_store *st, as_dataset_status **out, size_t *n,
		     as_error *err)
{
	pg_store *s = (pg_store *)st;
	as_dataset_status *v = NULL;
	PGresult *res;
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

		d->dataset = cell_dup(res, i, 0);
		d->table = cell_dup(res, i, 1);
		d->mode = cell_dup(res, i, 2);
		d->published_run = cell_int(res, i, 3);
		d->cursor = cell_dup(res, i, 4);
		d->resumable = (int)cell_int(res, i, 5);
		d->lease_owner = cell_dup(res, i, 6);
		d->lease_expires =
			PQgetisnull(res, i, 7) || exp[0] == '-' || exp[0] == 'I'
				? 0
				: strtod(exp, NULL);
		d->rows = -1;
	}
	PQclear(res);
	*out = v;
	*n = (size_t)rows;
	for (int i = 0; i < rows; i++)
		if (pg_table_rows(st, v[i].table, &v[i].rows, err))
			return err->code;
	return 0;
}

static const as_store_ops postgres_ops = {
	.name = "postgres",
	.close = pg_close,
	.lease_acquire = pg_lease_acquire,
	.lease_renew = pg_lease_renew,
	.lease_release = pg_lease_release,
	.run_begin = pg_run_begin,
	.describe = pg_describe,
	.stage_prepare = pg_stage_prepare,
	.stage_discard = pg_stage_discard,
	.stage_batch = as_pg_stage_batch,
	.scan_open = as_pg_scan_open,
	.scan_next = as_pg_scan_next,
	.scan_seek = as_pg_scan_seek,
	.scan_close = as_pg_scan_close,
	.publish = as_pg_publish,
	.publish_group = as_pg_publish_group,
	.run_end = pg_run_end,
	.run_free = pg_run_free,
	.runs_list = pg_runs_list,
	.status = pg_status,
	.table_rows = pg_table_rows,
	.outbox_list = as_pg_outbox_list,
	.outbox_mark = as_pg_outbox_mark,
	.rollback = as_pg_history_rollback,
	.sample = as_pg_history_sample,
	.record_run = as_pg_history_record_run,
};
