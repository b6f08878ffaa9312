/*
 * The store interface's conformance test: every operation through the
 * vtable, with hand-built tables and batches, run once against SQLite (a
 * temp file) and once against a real PostgreSQL (ATOMSYNC_TEST_PG_URL, a
 * fresh database started by tests/unit/with_postgres.py): leases and
 * fencing (6), the publish of each mode with its counts and live rows (1, 5,
 * 8, 10), guards (3), resume and restart (4), the runs and status
 * records, and the rollback to an earlier run of a snapshot history.  An
 * observer connection of its own reads the tables; the few queries that differ
 * between the two SQL dialects are translated here.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <libpq-fe.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/store.h"
#include "util/buf.h"
#include "util/hash.h"
#include "util/proc.h"
#include "util/str.h"

/* The store under test: "sqlite" or "postgres" (main() runs both). */
static const char *backend = "sqlite";

/* ---- fixture: a store and a read-only observer ---- */

typedef struct fx {
	char dir[64];
	char path[128];
	as_store *st;
	const as_store_ops *ops;
	int pg;
	sqlite3 *db;  /* SQLite: our own connection, to look at the tables */
	PGconn *conn; /* PostgreSQL: the same */
	int rejects;  /* rows the store rejected while staging */
	char last_reject[256];
} fx;

/* PostgreSQL: every test starts from an empty schema of its own. */
static void pg_reset(PGconn *c)
{
	PGresult *r = PQexec(c, "SET client_min_messages = warning; DROP "
				"SCHEMA public CASCADE; CREATE SCHEMA public");

	if (PQresultStatus(r) != PGRES_COMMAND_OK)
		fail_msg("resetting the schema: %s", PQerrorMessage(c));
	PQclear(r);
}

static int setup(void **state)
{
	fx *f = calloc(1, sizeof(*f));
	char url[160];
	const char *pgurl = getenv("ATOMSYNC_TEST_PG_URL");
	as_error err;

	assert_non_null(f);
	f->pg = !strcmp(backend, "postgres");
	if (f->pg) {
		f->conn = PQconnectdb(pgurl);
		if (PQstatus(f->conn) != CONNECTION_OK)
			fail_msg("observer: %s", PQerrorMessage(f->conn));
		pg_reset(f->conn);
		snprintf(url, sizeof(url), "%s", pgurl);
	} else {
		strcpy(f->dir, "/tmp/as-store-XXXXXX");
		assert_non_null(mkdtemp(f->dir));
		snprintf(f->path, sizeof(f->path), "%s/t.db", f->dir);
		snprintf(url, sizeof(url), "sqlite:%s", f->path);
	}
	as_error_clear(&err);
	if (as_store_open(&f->st, url, &err))
		fail_msg("as_store_open: %s", err.msg);
	f->ops = f->st->ops;
	assert_string_equal(f->ops->name, backend);
	if (!f->pg)
		assert_int_equal(sqlite3_open_v2(f->path, &f->db,
						 SQLITE_OPEN_READONLY, NULL),
				 SQLITE_OK);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fx *f = *state;
	char p[200];

	as_store_close(f->st);
	if (f->pg) {
		PQfinish(f->conn);
		free(f);
		return 0;
	}
	sqlite3_close(f->db);
	unlink(f->path);
	snprintf(p, sizeof(p), "%s-wal", f->path);
	unlink(p);
	snprintf(p, sizeof(p), "%s-shm", f->path);
	unlink(p);
	assert_int_equal(rmdir(f->dir), 0);
	free(f);
	return 0;
}

/* The end of the parenthesised argument list starting at p (after '('). */
static const char *close_paren(const char *p, const char **comma)
{
	int depth = 0, quoted = 0;

	*comma = NULL;
	for (; *p; p++) {
		if (*p == '\'')
			quoted = !quoted;
		else if (quoted)
			continue;
		else if (*p == '(')
			depth++;
		else if (*p == ')' && depth-- == 0)
			return p;
		else if (*p == ',' && depth == 0)
			*comma = p;
	}
	fail_msg("unbalanced SQL");
	return p;
}

/*
 * The observer's SQLite queries in PostgreSQL's words:
 * group_concat(x[, sep]) is string_agg((x)::text, sep), quote(x) is
 * quote_nullable(x); the tests write booleans as CASE, so both agree.
 */
static char *pg_sql(const char *sql)
{
	as_buf b = AS_BUF_INIT;
	const char *p = sql;

	while (*p) {
		if (!strncmp(p, "group_concat(", 13)) {
			const char *comma, *end = close_paren(p + 13, &comma);

			char *arg = as_strndup(
				p + 13,
				(size_t)((comma ? comma : end) - (p + 13)));
			char *inner = pg_sql(arg);

			as_buf_printf(&b, "string_agg((%s)::text, ", inner);
			free(inner);
			free(arg);
			if (comma)
				as_buf_add(&b, comma + 1,
					   (size_t)(end - comma - 1));
			else
				as_buf_adds(&b, "','");
			as_buf_adds(&b, ")");
			p = end + 1;
		} else if (!strncmp(p, "quote(", 6)) {
			as_buf_adds(&b, "quote_nullable(");
			p += 6;
		} else {
			as_buf_add(&b, p++, 1);
		}
	}
	return as_buf_detach(&b);
}

/* First column of the first row as text ("NULL" for NULL, "" for none). */
static char *q1(fx *f, const char *sql)
{
	sqlite3_stmt *q;
	char *out;
	int rc;

	if (f->pg) {
		char *t = pg_sql(sql);
		PGresult *r = PQexec(f->conn, t);

		if (PQresultStatus(r) != PGRES_TUPLES_OK)
			fail_msg("%s: %s", t, PQerrorMessage(f->conn));
		out = as_strdup(!PQntuples(r)	       ? ""
				: PQgetisnull(r, 0, 0) ? "NULL"
						       : PQgetvalue(r, 0, 0));
		PQclear(r);
		free(t);
		return out;
	}
	if (sqlite3_prepare_v2(f->db, sql, -1, &q, NULL) != SQLITE_OK)
		fail_msg("%s: %s", sql, sqlite3_errmsg(f->db));
	rc = sqlite3_step(q);
	if (rc == SQLITE_ROW)
		out = as_strdup(
			sqlite3_column_type(q, 0) == SQLITE_NULL
				? "NULL"
				: (const char *)sqlite3_column_text(q, 0));
	else
		out = as_strdup("");
	sqlite3_finalize(q);
	return out;
}

static void expect_q(fx *f, const char *sql, const char *want)
{
	char *got = q1(f, sql);

	if (strcmp(got, want) != 0)
		fail_msg("%s: %s\n  got:  %s\n  want: %s", backend, sql, got,
			 want);
	free(got);
}

/* A statement from outside the store (a user's own table, say). */
static void exec_other(fx *f, const char *sql)
{
	if (f->pg) {
		PGresult *r = PQexec(f->conn, sql);

		if (PQresultStatus(r) != PGRES_COMMAND_OK)
			fail_msg("%s: %s", sql, PQerrorMessage(f->conn));
		PQclear(r);
	} else {
		sqlite3 *w;

		assert_int_equal(sqlite3_open(f->path, &w), SQLITE_OK);
		if (sqlite3_exec(w, sql, NULL, NULL, NULL) != SQLITE_OK)
			fail_msg("%s: %s", sql, sqlite3_errmsg(w));
		sqlite3_close(w);
	}
}

/* How many per-run staging tables exist. */
static int stage_tables(fx *f)
{
	char *v = q1(f, f->pg ? "SELECT count(*) FROM pg_tables WHERE "
				"tablename LIKE '\\_atomsync\\_stage\\_%'"
			      : "SELECT count(*) FROM sqlite_master WHERE "
				"name LIKE '\\_atomsync\\_stage\\_%' ESCAPE "
				"'\\'");
	int n = atoi(v);

	free(v);
	return n;
}

/* "id=name" pairs in key order: the live content a reader sees. */
static void expect_live(fx *f, const char *table, const char *want)
{
	char sql[300];

	snprintf(
		sql, sizeof(sql),
		"SELECT coalesce(group_concat(id || '=' || name, ' '), '') FROM "
		"(SELECT * FROM \"%s\" ORDER BY id) s",
		table);
	expect_q(f, sql, want);
}

/* Every byte of every live row, types included. */
static char *dump(fx *f, const char *table)
{
	char sql[400];

	snprintf(
		sql, sizeof(sql),
		"SELECT group_concat(quote(id)||','||quote(name)||','||quote(grp)"
		"||','||quote(ver)||','||quote(_atomsync_run)||','||"
		"quote(_atomsync_hash), ';') FROM (SELECT * FROM \"%s\" ORDER BY id) s",
		table);
	return q1(f, sql);
}

static int table_exists(fx *f, const char *name)
{
	char sql[200], *v;
	int n;

	snprintf(sql, sizeof(sql),
		 f->pg ? "SELECT count(*) FROM pg_tables WHERE tablename = '%s'"
		       : "SELECT count(*) FROM sqlite_master WHERE "
			 "type = 'table' AND name = '%s'",
		 name);
	v = q1(f, sql);
	n = atoi(v);
	free(v);
	return n;
}

/* ---- tables and rows built by hand ---- */

typedef struct spec {
	int64_t id;
	const char *name;
	int64_t grp;
	int64_t ver;
} spec;

typedef struct tbl {
	as_table t;
	as_col cols[4];
	size_t scope[1];
} tbl;

/* id (key) | name | grp (scope in scoped mode) | ver (cursor in incremental) */
static void mk_table(tbl *x, const char *dataset, as_mode mode)
{
	static const char *names[4] = {"id", "name", "grp", "ver"};
	static const as_type types[4] = {AS_TYPE_INTEGER, AS_TYPE_TEXT,
					 AS_TYPE_INTEGER, AS_TYPE_INTEGER};

	memset(x, 0, sizeof(*x));
	for (int i = 0; i < 4; i++) {
		x->cols[i].name = (char *)names[i];
		x->cols[i].path = (char *)names[i];
		x->cols[i].type = types[i];
	}
	x->cols[0].flags = AS_COL_KEY;
	x->t.dataset = (char *)dataset;
	x->t.table = (char *)dataset;
	x->t.mode = mode;
	x->t.cols = x->cols;
	x->t.ncols = 4;
	x->t.nkey = 1;
	x->t.scope = x->scope;
	x->t.cursor = -1;
	x->t.fingerprint = (char *)"fp-1";
	if (mode == AS_MODE_SCOPED) {
		x->cols[2].flags |= AS_COL_SCOPE;
		x->scope[0] = 2;
		x->t.nscope = 1;
	}
	if (mode == AS_MODE_INCREMENTAL) {
		x->cols[3].flags |= AS_COL_CURSOR;
		x->t.cursor = 3;
	}
}

/* Batches are built here, not with the engine's helpers: the store is
 * tested on its own. */
static void batch_init(as_batch *b)
{
	memset(b, 0, sizeof(*b));
	as_arena_init(&b->arena);
}

static void batch_free(as_batch *b)
{
	free(b->rows);
	free(b->checkpoint);
	as_arena_free(&b->arena);
	memset(b, 0, sizeof(*b));
}

static void fill_batch(as_batch *b, const spec *rows, size_t n)
{
	b->nrows = 0;
	if (b->caprows < n) {
		b->rows = realloc(b->rows, n * sizeof(*b->rows));
		assert_non_null(b->rows);
		b->caprows = n;
	}
	for (size_t i = 0; i < n; i++) {
		as_val *v = as_arena_alloc(&b->arena, 4 * sizeof(*v));
		char key[200], where[32];

		assert_non_null(v);
		memset(&b->rows[i], 0, sizeof(b->rows[i]));
		v[0].kind = AS_V_INT;
		v[0].u.i = rows[i].id;
		v[1].kind = AS_V_TEXT;
		v[1].len = (uint32_t)strlen(rows[i].name);
		v[1].u.s = as_arena_strndup(&b->arena, rows[i].name, v[1].len);
		v[2].kind = AS_V_INT;
		v[2].u.i = rows[i].grp;
		v[3].kind = AS_V_INT;
		v[3].u.i = rows[i].ver;
		snprintf(key, sizeof(key), "%lld|%s|%lld|%lld",
			 (long long)rows[i].id, rows[i].name,
			 (long long)rows[i].grp, (long long)rows[i].ver);
		snprintf(where, sizeof(where), "rows:%zu", i + 1);
		b->rows[i].v = v;
		b->rows[i].hash = as_hash64(key, strlen(key));
		b->rows[i].where =
			as_arena_strndup(&b->arena, where, strlen(where));
	}
	b->nrows = n;
}

/* ---- driving runs ---- */

static int on_reject(void *ud, const as_row *row, const char *why,
		     as_error *err)
{
	fx *f = ud;

	(void)err;
	f->rejects++;
	snprintf(f->last_reject, sizeof(f->last_reject), "%s: %s", row->where,
		 why);
	return 0;
}

static int64_t lease(fx *f, const char *dataset)
{
	int64_t token = 0;
	as_error err;

	as_error_clear(&err);
	if (f->ops->lease_acquire(f->st, dataset, as_owner_self(), 60000,
				  &token, &err))
		fail_msg("lease_acquire: %s", err.msg);
	return token;
}

static void begin(fx *f, as_run_ctx *rc, as_table *t, int64_t token,
		  int restart)
{
	as_error err;

	memset(rc, 0, sizeof(*rc));
	rc->table = t;
	rc->kind = "sync";
	snprintf(rc->owner, sizeof(rc->owner), "%s", as_owner_self());
	rc->token = token;
	rc->lease_ttl_ms = 60000;
	rc->restart = restart;
	rc->on_reject = on_reject;
	rc->reject_ud = f;
	as_error_clear(&err);
	if (f->ops->run_begin(f->st, rc, &err))
		fail_msg("run_begin: %s", err.msg);
	assert_true(rc->run_id > 0);
	if (f->ops->describe(f->st, rc, &err))
		fail_msg("describe: %s", err.msg);
	if (f->ops->stage_prepare(f->st, rc, &err))
		fail_msg("stage_prepare: %s", err.msg);
}

static void stage(fx *f, as_run_ctx *rc, const spec *rows, size_t n,
		  const char *checkpoint, int64_t seen)
{
	as_batch b;
	as_error err;

	batch_init(&b);
	fill_batch(&b, rows, n);
	b.checkpoint = as_strdup(checkpoint);
	b.seen = seen;
	as_error_clear(&err);
	if (f->ops->stage_batch(f->st, rc, &b, &err))
		fail_msg("stage_batch: %s", err.msg);
	rc->seen = seen;
	batch_free(&b);
}

static void finish(fx *f, as_run_ctx *rc)
{
	f->ops->run_free(f->st, rc);
	free(rc->checkpoint);
	free(rc->stage_key);
	free(rc->cursor);
	rc->checkpoint = rc->stage_key = rc->cursor = NULL;
}

static void end_run(fx *f, as_run_ctx *rc, const char *status, const char *why)
{
	as_error err;

	as_error_clear(&err);
	if (f->ops->run_end(f->st, rc, status, why, &err))
		fail_msg("run_end: %s", err.msg);
	finish(f, rc);
}

static as_publish_opts popts(void)
{
	as_publish_opts po;

	memset(&po, 0, sizeof(po));
	po.max_delete_fraction = 0.5;
	return po;
}

static void expect_counts(const as_counts *c, int64_t seen, int64_t ins,
			  int64_t upd, int64_t unch, int64_t del)
{
	if (c->seen != seen || c->inserted != ins || c->updated != upd ||
	    c->unchanged != unch || c->deleted != del)
		fail_msg(
			"counts seen %lld ins %lld upd %lld unch %lld del %lld; want "
			"%lld %lld %lld %lld %lld",
			(long long)c->seen, (long long)c->inserted,
			(long long)c->updated, (long long)c->unchanged,
			(long long)c->deleted, (long long)seen, (long long)ins,
			(long long)upd, (long long)unch, (long long)del);
}

/* One whole run: begin, one batch, publish; returns the publish's code. */
static int run_once(fx *f, as_table *t, int64_t token, const spec *rows,
		    size_t n, const as_publish_opts *po, as_counts *c,
		    as_error *err, int64_t *run_id)
{
	as_run_ctx rc;
	int ret;

	begin(f, &rc, t, token, 0);
	if (n)
		stage(f, &rc, rows, n, "cp", (int64_t)n);
	rc.seen = (int64_t)n;
	as_error_clear(err);
	ret = f->ops->publish(f->st, &rc, po, c, err);
	if (run_id)
		*run_id = rc.run_id;
	if (ret == AS_EREFUSED)
		end_run(f, &rc, "refused", err->msg);
	else if (ret)
		end_run(f, &rc, "failed", err->msg);
	else
		finish(f, &rc);
	return ret;
}

static void run_ok(fx *f, as_table *t, int64_t token, const spec *rows,
		   size_t n, as_counts *c, int64_t *run_id)
{
	as_publish_opts po = popts();
	as_error err;

	if (run_once(f, t, token, rows, n, &po, c, &err, run_id))
		fail_msg("publish: %s", err.msg);
}

/* The run record as stored (invariant 10). */
static void expect_run_row(fx *f, int64_t run_id, const char *status,
			   int64_t seen, int64_t ins, int64_t upd, int64_t unch,
			   int64_t del)
{
	char sql[300], want[200];

	snprintf(sql, sizeof(sql),
		 "SELECT status||' '||seen||' '||inserted||' '||updated||' '||"
		 "unchanged||' '||deleted||' '||(CASE WHEN finished_at IS NULL "
		 "THEN 0 ELSE 1 END) FROM "
		 "atomsync_runs WHERE run_id = %lld",
		 (long long)run_id);
	snprintf(want, sizeof(want), "%s %lld %lld %lld %lld %lld 1", status,
		 (long long)seen, (long long)ins, (long long)upd,
		 (long long)unch, (long long)del);
	expect_q(f, sql, want);
}

/* ---- leases (invariant 6) ---- */

static void test_lease(void **state)
{
	fx *f = *state;
	char dead[200], host[96] = "localhost";
	int64_t tok = 0, tok2 = 0;
	as_error err;

	as_error_clear(&err);
	assert_int_equal(f->ops->lease_acquire(f->st, "d", as_owner_self(),
					       60000, &tok, &err),
			 0);
	assert_int_equal(tok, 1);
	/* Held by a live worker: refused, and the message names the holder. */
	assert_int_equal(f->ops->lease_acquire(f->st, "d", "elsewhere/1/1",
					       60000, &tok2, &err),
			 AS_ELEASE);
	assert_int_equal(err.code, AS_ELEASE);
	assert_non_null(strstr(err.msg, as_owner_self()));
	assert_non_null(strstr(err.msg, "dataset d is being run by"));
	/* Another dataset is independent. */
	assert_int_equal(f->ops->lease_acquire(f->st, "other", "elsewhere/1/1",
					       60000, &tok2, &err),
			 0);
	assert_int_equal(tok2, 1);

	assert_int_equal(f->ops->lease_renew(f->st, "d", tok, 60000, &err), 0);
	assert_int_equal(f->ops->lease_renew(f->st, "d", tok + 1, 60000, &err),
			 AS_EFENCED);
	assert_int_equal(f->ops->lease_release(f->st, "d", tok, &err), 0);
	expect_q(f,
		 f->pg ? "SELECT quote(owner)||' '||(CASE WHEN expires_at = "
			 "'-infinity' THEN 1 ELSE 0 END) FROM atomsync_leases "
			 "WHERE dataset = 'd'"
		       : "SELECT quote(owner)||' '||(CASE WHEN expires_at = 0 "
			 "THEN 1 ELSE 0 END) FROM atomsync_leases WHERE "
			 "dataset = 'd'",
		 "NULL 1");

	/* Released: the next holder gets the next token. */
	assert_int_equal(f->ops->lease_acquire(f->st, "d", "elsewhere/1/1", 1,
					       &tok2, &err),
			 0);
	assert_int_equal(tok2, 2);
	/* Expired (1 ms): taken over with token + 1, even from another host. */
	usleep(20000);
	assert_int_equal(f->ops->lease_acquire(f->st, "d", as_owner_self(),
					       60000, &tok, &err),
			 0);
	assert_int_equal(tok, 3);
	/* The old holder is fenced out: renew fails, release is a no-op. */
	assert_int_equal(f->ops->lease_renew(f->st, "d", 2, 60000, &err),
			 AS_EFENCED);
	assert_non_null(strstr(err.msg, "token 2"));
	assert_int_equal(f->ops->lease_release(f->st, "d", 2, &err), 0);
	assert_int_equal(f->ops->lease_acquire(f->st, "d", "elsewhere/1/1",
					       60000, &tok2, &err),
			 AS_ELEASE);
	assert_int_equal(f->ops->lease_renew(f->st, "d", 3, 60000, &err), 0);

	/* A holder on this host whose process is gone does not block. */
	gethostname(host, sizeof(host) - 1);
	/* Our pid and pid namespace, with a start time no process of ours has.
	 */
	snprintf(dead, sizeof(dead), "%s/%ld/1/%s", host, (long)getpid(),
		 strrchr(as_owner_self(), '/') + 1);
	assert_int_equal(
		f->ops->lease_acquire(f->st, "z", dead, 60000, &tok, &err), 0);
	assert_int_equal(f->ops->lease_acquire(f->st, "z", as_owner_self(),
					       60000, &tok2, &err),
			 0);
	assert_int_equal(tok2, tok + 1);
	/* A live holder on another host does block until expiry. */
	assert_int_equal(f->ops->lease_acquire(f->st, "y", "elsewhere/1/1",
					       60000, &tok, &err),
			 0);
	assert_int_equal(f->ops->lease_acquire(f->st, "y", as_owner_self(),
					       60000, &tok2, &err),
			 AS_ELEASE);
}

/* ---- publish per mode ---- */

static void test_full_mode(void **state)
{
	static const spec run1[] = {
		{1, "a", 0, 0}, {2, "b", 0, 0}, {3, "c", 0, 0}, {4, "d", 0, 0}};
	static const spec run2[] = {
		{1, "a", 0, 0}, {2, "B", 0, 0}, {3, "c", 0, 0}, {5, "e", 0, 0}};
	fx *f = *state;
	int64_t tok = lease(f, "items"), r1, r2, r3;
	char *before, *after;
	as_counts c;
	tbl x;

	mk_table(&x, "items", AS_MODE_FULL);
	run_ok(f, &x.t, tok, run1, 4, &c, &r1);
	expect_counts(&c, 4, 4, 0, 0, 0);
	assert_int_equal(c.live_before, 0);
	assert_int_equal(c.live_after, 4);
	expect_live(f, "items", "1=a 2=b 3=c 4=d");
	expect_run_row(f, r1, "completed", 4, 4, 0, 0, 0);

	/* 1 and 3 unchanged, 2 updated, 5 new, 4 not delivered: deleted. */
	run_ok(f, &x.t, tok, run2, 4, &c, &r2);
	expect_counts(&c, 4, 1, 1, 2, 1);
	assert_int_equal(c.live_before, 4);
	assert_int_equal(c.live_after, 4);
	assert_int_equal(c.duplicates, 0);
	expect_live(f, "items", "1=a 2=B 3=c 5=e");
	expect_run_row(f, r2, "completed", 4, 1, 1, 2, 1);
	/* Unchanged rows are not rewritten: they keep the run that wrote them.
	 */
	{
		char want[100];

		snprintf(want, sizeof(want), "1:%lld 2:%lld 3:%lld 5:%lld",
			 (long long)r1, (long long)r2, (long long)r1,
			 (long long)r2);
		expect_q(
			f,
			"SELECT group_concat(id||':'||_atomsync_run, ' ') FROM "
			"(SELECT * FROM items ORDER BY id) s",
			want);
	}

	/* Invariant 5: the same input again changes nothing, byte for byte. */
	before = dump(f, "items");
	run_ok(f, &x.t, tok, run2, 4, &c, &r3);
	expect_counts(&c, 4, 0, 0, 4, 0);
	after = dump(f, "items");
	assert_string_equal(before, after);
	expect_run_row(f, r3, "completed", 4, 0, 0, 4, 0);
	free(before);
	free(after);

	/* A later record with the same key replaces the earlier one; the run
	 * counts it as a duplicate. */
	{
		static const spec dup[] = {{1, "a", 0, 0},
					   {2, "x", 0, 0},
					   {3, "c", 0, 0},
					   {5, "e", 0, 0},
					   {2, "B2", 0, 0}};

		run_ok(f, &x.t, tok, dup, 5, &c, NULL);
		expect_counts(&c, 5, 0, 1, 3, 0);
		assert_int_equal(c.duplicates, 1);
		expect_live(f, "items", "1=a 2=B2 3=c 5=e");
	}
	/* No staging table is left behind. */
	assert_int_equal(stage_tables(f), 0);
}

static void test_incremental_mode(void **state)
{
	static const spec run1[] = {{1, "a", 0, 5}, {2, "b", 0, 7}};
	static const spec run2[] = {{3, "c", 0, 6}};
	static const spec run3[] = {{1, "a2", 0, 9}};
	static const spec run4[] = {{4, "d", 0, 100}};
	fx *f = *state;
	int64_t tok = lease(f, "feed");
	as_run_ctx rc;
	as_counts c;
	tbl x;

	mk_table(&x, "feed", AS_MODE_INCREMENTAL);
	run_ok(f, &x.t, tok, run1, 2, &c, NULL);
	expect_counts(&c, 2, 2, 0, 0, 0);
	expect_q(f, "SELECT cursor FROM atomsync_state WHERE dataset = 'feed'",
		 "7");

	/* Rows not delivered are kept; the cursor never goes back. */
	run_ok(f, &x.t, tok, run2, 1, &c, NULL);
	expect_counts(&c, 1, 1, 0, 0, 0);
	expect_live(f, "feed", "1=a 2=b 3=c");
	expect_q(f, "SELECT cursor FROM atomsync_state WHERE dataset = 'feed'",
		 "7");

	run_ok(f, &x.t, tok, run3, 1, &c, NULL);
	expect_counts(&c, 1, 0, 1, 0, 0);
	expect_live(f, "feed", "1=a2 2=b 3=c");
	expect_q(f, "SELECT cursor FROM atomsync_state WHERE dataset = 'feed'",
		 "9");

	/* Invariant 8: a run that staged newer records but did not publish
	 * leaves the cursor where it was; the next run is handed it. */
	begin(f, &rc, &x.t, tok, 0);
	assert_string_equal(rc.cursor, "9");
	stage(f, &rc, run4, 1, "cp", 1);
	expect_q(f, "SELECT cursor FROM atomsync_state WHERE dataset = 'feed'",
		 "9");
	end_run(f, &rc, "failed", "stopped");
	expect_q(f, "SELECT cursor FROM atomsync_state WHERE dataset = 'feed'",
		 "9");
	expect_live(f, "feed", "1=a2 2=b 3=c");
}

static void test_scoped_mode(void **state)
{
	static const spec run1[] = {{1, "a", 1, 0},
				    {2, "b", 1, 0},
				    {3, "c", 2, 0},
				    {4, "d", 2, 0},
				    {5, "e", 3, 0}};
	static const spec run2[] = {{1, "a", 1, 0}};
	static const spec run3[] = {{1, "A", 1, 0}, {6, "f", 1, 0}};
	fx *f = *state;
	int64_t tok = lease(f, "orders");
	as_publish_opts po = popts();
	as_counts c;
	as_error err;
	as_val named;
	tbl x;

	mk_table(&x, "orders", AS_MODE_SCOPED);
	run_ok(f, &x.t, tok, run1, 5, &c, NULL);
	expect_counts(&c, 5, 5, 0, 0, 0);

	/* Scope 1 delivered without row 2: 2 goes, scopes 2 and 3 untouched
	 * (1 of the scope's 2 rows: at the 50% limit, not over). */
	run_ok(f, &x.t, tok, run2, 1, &c, NULL);
	expect_counts(&c, 1, 0, 0, 1, 1);
	expect_live(f, "orders", "1=a 3=c 4=d 5=e");

	/* A scope named with no records delivered is emptied; a delivered
	 * scope is replaced; the rest stays. */
	named.kind = AS_V_INT;
	named.u.i = 2;
	po.named_scopes = &named;
	po.nnamed = 1;
	assert_int_equal(run_once(f, &x.t, tok, run3, 2, &po, &c, &err, NULL),
			 0);
	expect_counts(&c, 2, 1, 1, 0, 2);
	expect_live(f, "orders", "1=A 5=e 6=f");

	/* Over the limit within the delivered scope: refused, unchanged. */
	{
		static const spec grow[] = {
			{7, "g", 4, 0}, {8, "h", 4, 0}, {9, "i", 4, 0}};
		static const spec shrink[] = {{7, "g", 4, 0}};
		char *before;

		run_ok(f, &x.t, tok, grow, 3, &c, NULL);
		before = dump(f, "orders");
		po = popts();
		assert_int_equal(
			run_once(f, &x.t, tok, shrink, 1, &po, &c, &err, NULL),
			AS_EREFUSED);
		assert_non_null(strstr(err.msg, "would delete 2 of 3 rows"));
		{
			char *after = dump(f, "orders");

			assert_string_equal(before, after);
			free(after);
		}
		free(before);
	}
}

static void test_append_mode(void **state)
{
	static const spec run1[] = {{1, "a", 0, 0}, {2, "b", 0, 0}};
	static const spec run2[] = {{2, "b", 0, 0}, {3, "c", 0, 0},
				    {3, "c", 0, 0}, {1, "X", 0, 0},
				    {4, "d", 0, 0}, {4, "D", 0, 0}};
	fx *f = *state;
	int64_t tok = lease(f, "events");
	as_counts c;
	tbl x;

	mk_table(&x, "events", AS_MODE_APPEND);
	run_ok(f, &x.t, tok, run1, 2, &c, NULL);
	expect_counts(&c, 2, 2, 0, 0, 0);
	assert_int_equal(f->rejects, 0);

	/* Known and identical: ignored; new: inserted; an identical duplicate
	 * within the run: ignored; a different record under a known key
	 * (live or staged): a reject, never an update. */
	run_ok(f, &x.t, tok, run2, 6, &c, NULL);
	assert_int_equal(f->rejects, 2);
	assert_non_null(strstr(f->last_reject,
			       "rows:6: append mode: a different "
			       "record under a key that is already known"));
	assert_int_equal(c.inserted, 2);
	assert_int_equal(c.updated, 0);
	assert_int_equal(c.unchanged, 1);
	assert_int_equal(c.deleted, 0);
	expect_live(f, "events", "1=a 2=b 3=c 4=d");
}

/* ---- guards (invariant 3) ---- */

static void test_guards(void **state)
{
	static const spec four[] = {
		{1, "a", 0, 0}, {2, "b", 0, 0}, {3, "c", 0, 0}, {4, "d", 0, 0}};
	static const spec one[] = {{1, "a", 0, 0}};
	fx *f = *state;
	int64_t tok = lease(f, "items"), rid;
	as_publish_opts po = popts();
	char *before, *after;
	as_run_ctx rc;
	as_counts c;
	as_error err;
	tbl x;

	mk_table(&x, "items", AS_MODE_FULL);
	run_ok(f, &x.t, tok, four, 4, &c, NULL);
	before = dump(f, "items");

	/* 3 of 4 deletions (75% > 50%): refused, nothing changed. */
	assert_int_equal(run_once(f, &x.t, tok, one, 1, &po, &c, &err, &rid),
			 AS_EREFUSED);
	assert_int_equal(err.code, AS_EREFUSED);
	assert_non_null(strstr(err.msg,
			       "refused: the run would delete 3 of 4 rows "
			       "(75.0%, over max_delete_fraction 50% and "
			       "min_deletes 0)"));
	after = dump(f, "items");
	assert_string_equal(before, after);
	free(after);
	{
		char sql[200];

		snprintf(sql, sizeof(sql),
			 "SELECT status||':'||(CASE WHEN error LIKE "
			 "'refused:%%' THEN 1 ELSE 0 END) "
			 "FROM atomsync_runs WHERE run_id = %lld",
			 (long long)rid);
		expect_q(f, sql, "refused:1");
	}
	/* The refused delivery is not resumed by the next run. */
	begin(f, &rc, &x.t, tok, 0);
	assert_null(rc.checkpoint);
	assert_int_equal(rc.resumed_from, 0);
	end_run(f, &rc, "failed", "test");

	/* Zero records where rows exist: refused. */
	assert_int_equal(run_once(f, &x.t, tok, NULL, 0, &po, &c, &err, NULL),
			 AS_EREFUSED);
	assert_non_null(strstr(
		err.msg, "delivered 0 records but table items has 4 rows"));
	after = dump(f, "items");
	assert_string_equal(before, after);
	free(after);
	free(before);

	/* A stricter fraction refuses a smaller deletion. */
	{
		static const spec three[] = {
			{1, "a", 0, 0}, {2, "b", 0, 0}, {3, "c", 0, 0}};

		po.max_delete_fraction = 0.2;
		assert_int_equal(
			run_once(f, &x.t, tok, three, 3, &po, &c, &err, NULL),
			AS_EREFUSED);
		po.max_delete_fraction = 0.5;
	}

	/* Explicitly allowed: published. */
	po.allow_deletes = 1;
	assert_int_equal(run_once(f, &x.t, tok, one, 1, &po, &c, &err, NULL),
			 0);
	expect_counts(&c, 1, 0, 0, 1, 3);
	expect_live(f, "items", "1=a");
	po.allow_deletes = 0;
	po.allow_empty = 1;
	assert_int_equal(run_once(f, &x.t, tok, NULL, 0, &po, &c, &err, NULL),
			 0);
	expect_counts(&c, 0, 0, 0, 0, 1);
	expect_live(f, "items", "");
}

/* ---- fencing (invariant 6) ---- */

static void test_fenced_staging(void **state)
{
	static const spec rows[] = {{1, "a", 0, 0}, {2, "b", 0, 0}};
	fx *f = *state;
	int64_t tok = lease(f, "items"), tok2 = 0;
	as_publish_opts po = popts();
	char stage_name[64], sql[200];
	as_run_ctx rc;
	as_counts c;
	as_error err;
	as_batch b;
	tbl x;

	mk_table(&x, "items", AS_MODE_FULL);
	run_ok(f, &x.t, tok, rows, 1, &c, NULL);

	/* This worker's lease lapses (it was paused) and another takes over. */
	begin(f, &rc, &x.t, tok, 0);
	rc.lease_ttl_ms = 1;
	assert_int_equal(f->ops->lease_renew(f->st, "items", tok, 1, &err), 0);
	usleep(20000);
	assert_int_equal(f->ops->lease_acquire(f->st, "items", "elsewhere/1/1",
					       60000, &tok2, &err),
			 0);
	assert_int_equal(tok2, tok + 1);

	/* The staging commit checks the token in its own transaction. */
	batch_init(&b);
	fill_batch(&b, rows, 2);
	b.checkpoint = as_strdup("cp-2");
	b.seen = 2;
	as_error_clear(&err);
	assert_int_equal(f->ops->stage_batch(f->st, &rc, &b, &err), AS_EFENCED);
	assert_non_null(strstr(err.msg, "was taken over by another worker"));
	batch_free(&b);
	snprintf(stage_name, sizeof(stage_name), "_atomsync_stage_%lld",
		 (long long)rc.run_id);
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM \"%s\"", stage_name);
	expect_q(f, sql, "0");
	expect_q(
		f,
		"SELECT quote(checkpoint)||' '||stage_seen FROM atomsync_state "
		"WHERE dataset = 'items'",
		"NULL 0");

	/* And so does the publish: nothing reaches the live table. */
	rc.seen = 2;
	assert_int_equal(f->ops->publish(f->st, &rc, &po, &c, &err),
			 AS_EFENCED);
	expect_live(f, "items", "1=a");
	/* The fenced worker does not even record its end: the run is left to
	 * the new holder, whose next run marks it interrupted. */
	end_run(f, &rc, "failed", "fenced");
	snprintf(sql, sizeof(sql),
		 "SELECT status FROM atomsync_runs WHERE run_id = %lld",
		 (long long)rc.run_id);
	expect_q(f, sql, "active");
	{
		int64_t old = rc.run_id;

		begin(f, &rc, &x.t, tok2, 0);
		snprintf(sql, sizeof(sql),
			 "SELECT status||': '||error FROM "
			 "atomsync_runs WHERE run_id = %lld",
			 (long long)old);
		{
			char *got = q1(f, sql);

			assert_int_equal(
				strncmp(got, "failed: interrupted", 19), 0);
			free(got);
		}
		/* The old worker still cannot begin anything. */
		{
			as_run_ctx rc2;

			memset(&rc2, 0, sizeof(rc2));
			rc2.table = &x.t;
			rc2.token = tok;
			rc2.lease_ttl_ms = 60000;
			assert_int_equal(f->ops->run_begin(f->st, &rc2, &err),
					 AS_EFENCED);
			finish(f, &rc2);
		}
		end_run(f, &rc, "failed", "test");
	}
}

/* ---- resume (invariant 4) ---- */

static void test_resume(void **state)
{
	static const spec b1[] = {{1, "a", 0, 0}, {2, "b", 0, 0}};
	static const spec b2[] = {{3, "c", 0, 0}};
	static const spec b3[] = {{4, "d", 0, 0}};
	fx *f = *state;
	int64_t tok = lease(f, "items"), first;
	as_publish_opts po = popts();
	as_run_ctx rc;
	as_counts c;
	as_error err;
	tbl x;

	mk_table(&x, "items", AS_MODE_FULL);
	/* Run A stages two checkpointed batches and dies. */
	begin(f, &rc, &x.t, tok, 0);
	assert_null(rc.checkpoint);
	assert_int_equal(rc.resumed_from, 0);
	first = rc.run_id;
	stage(f, &rc, b1, 2, "cp-2", 2);
	stage(f, &rc, b2, 1, "cp-3", 3);
	assert_int_equal(table_exists(f, "items"), 0); /* nothing live yet */
	end_run(f, &rc, "failed", "killed");

	/* Run B continues from cp-3 with the lineage's counts. */
	begin(f, &rc, &x.t, tok, 0);
	assert_non_null(rc.checkpoint);
	assert_string_equal(rc.checkpoint, "cp-3");
	assert_int_equal(rc.resumed_from, first);
	assert_int_equal(rc.seen, 3);
	stage(f, &rc, b3, 1, "cp-4", 4);
	as_error_clear(&err);
	assert_int_equal(f->ops->publish(f->st, &rc, &po, &c, &err), 0);
	expect_counts(&c, 4, 4, 0, 0, 0);
	expect_live(f, "items", "1=a 2=b 3=c 4=d");
	{
		char sql[200], want[40];

		snprintf(sql, sizeof(sql),
			 "SELECT resumed_from FROM atomsync_runs WHERE "
			 "run_id = %lld",
			 (long long)rc.run_id);
		snprintf(want, sizeof(want), "%lld", (long long)first);
		expect_q(f, sql, want);
	}
	finish(f, &rc);

	/* After a publish there is nothing to resume. */
	begin(f, &rc, &x.t, tok, 0);
	assert_null(rc.checkpoint);
	stage(f, &rc, b1, 2, "cp-x", 2);
	end_run(f, &rc, "failed", "x");

	/* restart: start over even though a checkpoint waits. */
	begin(f, &rc, &x.t, tok, 1);
	assert_null(rc.checkpoint);
	assert_int_equal(rc.resumed_from, 0);
	assert_int_equal(rc.seen, 0);
	stage(f, &rc, b1, 2, "cp-y", 2);
	end_run(f, &rc, "failed", "x");

	/* Another mapping (fingerprint): the staging does not apply. */
	x.t.fingerprint = (char *)"fp-2";
	begin(f, &rc, &x.t, tok, 0);
	assert_null(rc.checkpoint);
	assert_int_equal(rc.resumed_from, 0);
	stage(f, &rc, b1, 2, "cp-z", 2);
	end_run(f, &rc, "failed", "x");

	/* A commit without a checkpoint makes the staging not resumable. */
	begin(f, &rc, &x.t, tok, 0);
	assert_string_equal(rc.checkpoint, "cp-z");
	stage(f, &rc, b2, 1, NULL, 3);
	end_run(f, &rc, "failed", "x");
	begin(f, &rc, &x.t, tok, 0);
	assert_null(rc.checkpoint);
	assert_int_equal(rc.resumed_from, 0);
	stage(f, &rc, b1, 2, "cp-w", 2);
	end_run(f, &rc, "failed", "x");

	/* stage_discard (the source refused the checkpoint): a fresh staging.
	 */
	begin(f, &rc, &x.t, tok, 0);
	assert_string_equal(rc.checkpoint, "cp-w");
	assert_true(rc.resumed_from > 0);
	assert_int_equal(f->ops->stage_discard(f->st, &rc, &err), 0);
	assert_null(rc.checkpoint);
	assert_int_equal(rc.resumed_from, 0);
	assert_int_equal(rc.seen, 0);
	assert_int_equal(f->ops->stage_prepare(f->st, &rc, &err), 0);
	stage(f, &rc, b3, 1, "cp-1", 1);
	po.allow_deletes = 1;
	assert_int_equal(f->ops->publish(f->st, &rc, &po, &c, &err), 0);
	expect_counts(&c, 1, 0, 0, 1, 3);
	expect_live(f, "items", "4=d");
	{
		char sql[200];

		snprintf(sql, sizeof(sql),
			 "SELECT quote(resumed_from) FROM atomsync_runs "
			 "WHERE run_id = %lld",
			 (long long)rc.run_id);
		expect_q(f, sql, "NULL");
	}
	finish(f, &rc);
	/* Every abandoned staging table was dropped on the way. */
	assert_int_equal(stage_tables(f), 0);
}

/* Invariant 1: while a run stages, readers see the last publish only. */
static void test_staging_invisible(void **state)
{
	static const spec run1[] = {{1, "a", 0, 0}, {2, "b", 0, 0}};
	static const spec run2[] = {
		{1, "A", 0, 0}, {2, "B", 0, 0}, {3, "C", 0, 0}};
	fx *f = *state;
	int64_t tok = lease(f, "items");
	as_publish_opts po = popts();
	char *before, *after;
	as_run_ctx rc;
	as_counts c;
	as_error err;
	tbl x;

	mk_table(&x, "items", AS_MODE_FULL);
	run_ok(f, &x.t, tok, run1, 2, &c, NULL);
	before = dump(f, "items");
	begin(f, &rc, &x.t, tok, 0);
	stage(f, &rc, run2, 3, "cp", 3);
	after = dump(f, "items");
	assert_string_equal(before, after);
	free(after);
	assert_int_equal(f->ops->publish(f->st, &rc, &po, &c, &err), 0);
	expect_live(f, "items", "1=A 2=B 3=C");
	finish(f, &rc);
	free(before);
}

/* ---- records: runs and status ---- */

static void test_runs_and_status(void **state)
{
	static const spec rows[] = {{1, "a", 0, 3}, {2, "b", 0, 4}};
	fx *f = *state;
	int64_t tok = lease(f, "items"), tok2 = lease(f, "feed"), r1, r2;
	as_dataset_status *ds = NULL;
	as_run_info *ri = NULL;
	as_run_ctx rc;
	as_counts c;
	as_error err;
	size_t n = 0;
	tbl x, y;

	mk_table(&x, "items", AS_MODE_FULL);
	mk_table(&y, "feed", AS_MODE_INCREMENTAL);
	run_ok(f, &x.t, tok, rows, 2, &c, &r1);
	run_ok(f, &y.t, tok2, rows, 2, &c, NULL);
	begin(f, &rc, &x.t, tok, 0);
	stage(f, &rc, rows, 1, "cp-1", 1);
	end_run(f, &rc, "failed", "the source failed: HTTP 500");
	begin(f, &rc, &x.t, tok, 0); /* left active */
	r2 = rc.run_id;

	as_error_clear(&err);
	assert_int_equal(f->ops->runs_list(f->st, "items", 0, &ri, &n, &err),
			 0);
	assert_int_equal(n, 3);
	/* Newest first. */
	assert_int_equal(ri[0].run_id, r2);
	assert_true(ri[1].run_id < ri[0].run_id && ri[2].run_id < ri[1].run_id);
	assert_int_equal(ri[2].run_id, r1);
	assert_string_equal(ri[0].status, "active");
	assert_null(ri[0].finished_at);
	assert_null(ri[0].error);
	assert_int_equal(ri[0].resumed_from, ri[1].run_id);
	assert_string_equal(ri[1].status, "failed");
	assert_string_equal(ri[1].error, "the source failed: HTTP 500");
	assert_non_null(ri[1].finished_at);
	assert_string_equal(ri[2].status, "completed");
	assert_string_equal(ri[2].dataset, "items");
	assert_string_equal(ri[2].kind, "sync");
	assert_string_equal(ri[2].mode, "full");
	assert_int_equal(ri[2].seen, 2);
	assert_int_equal(ri[2].inserted, 2);
	assert_int_equal(ri[2].resumed_from, 0);
	assert_null(ri[2].error);
	assert_int_equal(strlen(ri[2].started_at), 24);
	assert_int_equal(ri[2].started_at[23], 'Z');
	assert_true(strcmp(ri[2].started_at, ri[2].finished_at) <= 0);
	atomsync_run_info_free(ri, n);

	assert_int_equal(f->ops->runs_list(f->st, "items", 1, &ri, &n, &err),
			 0);
	assert_int_equal(n, 1);
	assert_int_equal(ri[0].run_id, r2);
	atomsync_run_info_free(ri, n);
	assert_int_equal(f->ops->runs_list(f->st, NULL, 0, &ri, &n, &err), 0);
	assert_int_equal(n, 4);
	atomsync_run_info_free(ri, n);
	assert_int_equal(f->ops->runs_list(f->st, "nope", 0, &ri, &n, &err), 0);
	assert_int_equal(n, 0);
	atomsync_run_info_free(ri, n);

	assert_int_equal(f->ops->status(f->st, &ds, &n, &err), 0);
	assert_int_equal(n, 2);
	/* Sorted by dataset. */
	assert_string_equal(ds[0].dataset, "feed");
	assert_string_equal(ds[0].mode, "incremental");
	assert_string_equal(ds[0].cursor, "4");
	assert_int_equal(ds[0].rows, 2);
	assert_int_equal(ds[0].resumable, 0);
	assert_string_equal(ds[1].dataset, "items");
	assert_string_equal(ds[1].table, "items");
	assert_string_equal(ds[1].mode, "full");
	assert_int_equal(ds[1].rows, 2);
	assert_int_equal(ds[1].published_run, r1);
	assert_null(ds[1].cursor);
	assert_int_equal(ds[1].resumable, 1); /* the active run holds cp-1 */
	assert_string_equal(ds[1].lease_owner, as_owner_self());
	assert_true(ds[1].lease_expires > 0);
	as_dataset_status_free(ds, n);

	end_run(f, &rc, "failed", "x");
	assert_int_equal(f->ops->lease_release(f->st, "items", tok, &err), 0);
	assert_int_equal(f->ops->status(f->st, &ds, &n, &err), 0);
	assert_null(ds[1].lease_owner);
	as_dataset_status_free(ds, n);

	{
		int64_t rows_n = 0;

		assert_int_equal(
			f->ops->table_rows(f->st, "items", &rows_n, &err), 0);
		assert_int_equal(rows_n, 2);
		assert_int_equal(
			f->ops->table_rows(f->st, "missing", &rows_n, &err), 0);
		assert_int_equal(rows_n, -1);
	}
}

/* A table that exists with other columns is a configuration error. */
static void test_table_mismatch(void **state)
{
	fx *f = *state;
	int64_t tok = lease(f, "items");
	as_run_ctx rc;
	as_error err;
	tbl x;

	exec_other(f, "CREATE TABLE items(id bigint, other text)");
	mk_table(&x, "items", AS_MODE_FULL);
	memset(&rc, 0, sizeof(rc));
	rc.table = &x.t;
	rc.token = tok;
	rc.lease_ttl_ms = 60000;
	as_error_clear(&err);
	assert_int_equal(f->ops->run_begin(f->st, &rc, &err), 0);
	assert_int_equal(f->ops->describe(f->st, &rc, &err), AS_EUSAGE);
	assert_non_null(strstr(err.msg,
			       "table items exists but does not have the "
			       "columns the dataset maps"));
	end_run(f, &rc, "failed", "x");
	expect_q(f,
		 f->pg ? "SELECT group_concat(attname) FROM (SELECT attname "
			 "FROM pg_attribute WHERE attrelid = 'items'::regclass "
			 "AND attnum > 0 AND NOT attisdropped ORDER BY attnum) "
			 "a"
		       : "SELECT group_concat(name) FROM "
			 "pragma_table_info('items')",
		 "id,other");
}

/* ---- rollback (invariants 1, 10; DESIGN.md, history) ---- */

/*
 * Full mode with snapshot history: run A publishes keys {1,2,3}, run B
 * {1,2,4} (2 changed, 3 deleted, deletions confirmed); the rollback to A
 * must bring 3 back, rewrite 2 and delete 4, the row that was not in the
 * target run, and count each (invariant 10).  A rollback that only upserts
 * the target's rows leaves 4 live.
 */
static void test_rollback_deletes(void **state)
{
	static const spec runa[] = {
		{1, "a", 0, 0}, {2, "b", 0, 0}, {3, "c", 0, 0}};
	static const spec runb[] = {
		{1, "a", 0, 0}, {2, "B", 0, 0}, {4, "d", 0, 0}};
	fx *f = *state;
	int64_t tok = lease(f, "items"), ra, rb;
	as_publish_opts po = popts();
	as_run_ctx rc;
	as_counts c;
	as_error err;
	tbl x;

	mk_table(&x, "items", AS_MODE_FULL);
	x.t.history = AS_HISTORY_SNAPSHOT;
	po.history = AS_HISTORY_SNAPSHOT;
	po.allow_deletes = 1;
	if (run_once(f, &x.t, tok, runa, 3, &po, &c, &err, &ra))
		fail_msg("publish A: %s", err.msg);
	if (run_once(f, &x.t, tok, runb, 3, &po, &c, &err, &rb))
		fail_msg("publish B: %s", err.msg);
	expect_counts(&c, 3, 1, 1, 1, 1);
	expect_live(f, "items", "1=a 2=B 4=d");

	memset(&rc, 0, sizeof(rc));
	rc.table = &x.t;
	rc.kind = "rollback";
	snprintf(rc.owner, sizeof(rc.owner), "%s", as_owner_self());
	rc.token = tok;
	rc.lease_ttl_ms = 60000;
	as_error_clear(&err);
	if (f->ops->describe(f->st, &rc, &err))
		fail_msg("describe: %s", err.msg);
	memset(&c, 0, sizeof(c));
	if (f->ops->rollback(f->st, &rc, &po, ra, &c, &err))
		fail_msg("rollback: %s", err.msg);
	/* 1 unchanged, 2 rewritten, 3 back, 4 (not in run A) gone. */
	expect_counts(&c, 3, 1, 1, 1, 1);
	assert_int_equal(c.live_before, 3);
	assert_int_equal(c.live_after, 3);
	expect_live(f, "items", "1=a 2=b 3=c");
	assert_true(rc.run_id > rb);
	expect_run_row(f, rc.run_id, "completed", 3, 1, 1, 1, 1);
	assert_int_equal(stage_tables(f), 0);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_lease),
		T(test_full_mode),
		T(test_incremental_mode),
		T(test_scoped_mode),
		T(test_append_mode),
		T(test_guards),
		T(test_fenced_staging),
		T(test_resume),
		T(test_staging_invisible),
		T(test_runs_and_status),
		T(test_table_mismatch),
		T(test_rollback_deletes),
	};
#undef T

	int failed;

	/* Both stores, unless ATOMSYNC_TEST_PG_URL is missing: then the run
	 * fails after SQLite, so a CI without PostgreSQL cannot pass. */
	backend = "sqlite";
	failed = cmocka_run_group_tests_name("sqlite", tests, NULL, NULL);
	if (!getenv("ATOMSYNC_TEST_PG_URL")) {
		fprintf(stderr,
			"test_store: ATOMSYNC_TEST_PG_URL is not set "
			"(run it through tests/unit/with_postgres.py)\n");
		return 1;
	}
	backend = "postgres";
	failed += cmocka_run_group_tests_name("postgres", tests, NULL, NULL);
	return failed;
}
