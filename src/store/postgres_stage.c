/*
 * PostgreSQL staging (invariants 2, 4, 6): each batch is one transaction
 * that COPYs its rows, classifies them against the live table, saves the
 * checkpoint and checks the lease.  The engine's thread encodes a batch
 * while the store's thread commits the previous one; a failed commit is
 * reported by the next call, so nothing after it is taken as staged.
 */
#include <stdlib.h>
#include <string.h>

#include "store/postgres_int.h"
#include "store/schema.h"
#include "util/crash.h"
#include "util/str.h"

#define COPY_CHUNK ((size_t)1 << 20) /* bytes per PQputCopyData */
#define LIVE_MAP_MAX 4000000 /* live rows: beyond, SQL classifies (RSS) */

/* Non-key json and timestamp columns wait in the batch table as text: an
 * unchanged row is then never parsed by the server, only compared. */
static int batch_text(const as_table *t, size_t i)
{
	return i >= t->nkey && (t->cols[i].type == AS_TYPE_JSON ||
				t->cols[i].type == AS_TYPE_TIMESTAMP);
}

/* The session's batch table: COPY lands here, then one INSERT ... SELECT
 * classifies the batch into the staging table.  Temporary (no WAL, no
 * catalog entry other sessions see), emptied at every commit. */
int as_pg_batch_table(pg_store *s, as_run_ctx *rc, as_error *err)
{
	pg_run *r = rc->priv;
	const as_table *t = rc->table;
	as_buf b = AS_BUF_INIT;
	char name[64];
	int ret;

	snprintf(name, sizeof(name), "_atomsync_batch_%lld",
		 (long long)rc->run_id);
	free(r->batch_q);
	r->batch_q = as_quote_ident(name);
	as_buf_printf(&b, "CREATE TEMP TABLE IF NOT EXISTS %s (", r->batch_q);
	for (size_t i = 0; i < t->ncols; i++) {
		as_buf_add_ident(&b, t->cols[i].name);
		as_buf_printf(&b, " %s, ",
			      batch_text(t, i) ? "text"
					       : as_pg_type(t->cols[i].type));
	}
	as_buf_adds(&b, "\"_atomsync_run\" bigint, \"_atomsync_hash\" bigint, "
			"\"_atomsync_line\" bytea, \"_atomsync_idx\" integer) "
			"ON COMMIT DELETE ROWS");
	ret = as_pg_exec_buf(s, &b, NULL, NULL, "creating the batch table",
			     err);
	as_buf_free(&b);
	return ret;
}

int as_pg_stage_types(as_run_ctx *rc, const as_type *types,
		      const char *const *names, size_t n)
{
	pg_run *r = rc->priv;
	const as_table *t = rc->table;
	size_t k = 0;

	free(r->stage_type);
	r->stage_type = calloc(t->ncols + 1, sizeof(*r->stage_type));
	if (!r->stage_type)
		return AS_ENOMEM;
	if (!names) {
		for (k = 0; k < t->ncols; k++)
			r->stage_type[k] = t->cols[k].type;
	} else {
		for (size_t i = 0; i < n && k < t->ncols; i++)
			if (strncmp(names[i], "_atomsync_", 10) != 0)
				r->stage_type[k++] = types[i];
	}
	r->stage_ncols = k;
	return 0;
}

/* Columns found since the last batch join the staging table, and integer
 * columns that saw a real become double precision, in the batch's
 * transaction (a crash before its commit leaves neither); the session's
 * batch table is made again with the new shape. */
static int stage_alter(pg_store *s, as_run_ctx *rc, as_error *err)
{
	pg_run *r = rc->priv;
	const as_table *t = rc->table;
	as_buf b = AS_BUF_INIT;
	int ret = 0, changed = 0;

	if (!t->infer || !r->stage_type)
		return 0;
	for (size_t i = 0; !ret && i < t->ncols; i++) {
		int widen = i < r->stage_ncols &&
			    r->stage_type[i] != t->cols[i].type;

		if (i < r->stage_ncols && !widen)
			continue;
		changed = 1;
		if (as_schema_alter_sql(&b, r->stage_q, &t->cols[i],
					as_pg_type(t->cols[i].type), widen))
			ret = as_error_set(err, AS_ENOMEM, "out of memory");
		else
			ret = as_pg_exec_buf(s, &b, NULL, NULL,
					     "staging: adding columns", err);
	}
	if (!ret && changed) {
		as_buf_reset(&b);
		as_buf_printf(&b, "DROP TABLE IF EXISTS %s", r->batch_q);
		ret = as_pg_exec_buf(s, &b, NULL, NULL, "staging", err);
		if (!ret)
			ret = as_pg_batch_table(s, rc, err);
		as_crash_point("stage.alter");
	}
	as_buf_free(&b);
	if (!ret && changed && as_pg_stage_types(rc, NULL, NULL, 0))
		ret = as_error_set(err, AS_ENOMEM, "out of memory");
	return ret;
}

/* ---- the live table's hashes ---- */

static uint64_t mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static void live_map_free(pg_run *r)
{
	free(r->live_key);
	free(r->live_hash);
	free(r->live_used);
	r->live_key = r->live_hash = NULL;
	r->live_used = NULL;
	r->live_cap = 0;
}

static void live_map_put(pg_run *r, int64_t key, int64_t hash)
{
	size_t mask = r->live_cap - 1, p = mix64((uint64_t)key) & mask;

	while (r->live_used[p] && r->live_key[p] != key)
		p = (p + 1) & mask;
	r->live_used[p] = 1;
	r->live_key[p] = key;
	r->live_hash[p] = hash;
}

/* 1: the row is live with the same content; 0: new or changed; -1: the
 * map cannot tell (none, or not an integer key). */
int as_pg_live_unchanged(const pg_run *r, const as_row *row)
{
	size_t mask, p;
	int64_t key;

	if (!r->live_cap || row->v[0].kind != AS_V_INT)
		return -1;
	key = row->v[0].u.i;
	mask = r->live_cap - 1;
	for (p = mix64((uint64_t)key) & mask; r->live_used[p];
	     p = (p + 1) & mask)
		if (r->live_key[p] == key)
			return r->live_hash[p] == (int64_t)row->hash;
	return 0;
}

/*
 * For a single integer key, the staging is classified by the client: the
 * live table's (key, hash) pairs are read once (COPY TO), and an unchanged
 * row is sent as its key and hash only, straight into the staging table.
 * The live table cannot change meanwhile: only a publish of this dataset
 * writes it, and the publish checks that none happened (check_base).
 */
int as_pg_live_hashes(pg_store *s, as_run_ctx *rc, as_error *err)
{
	pg_run *r = rc->priv;
	const as_table *t = rc->table;
	as_buf sql = AS_BUF_INIT;
	PGresult *res;
	int64_t n;
	size_t cap = 1024, count = 0;
	char *line;
	int len, ret = 0;

	if (t->nkey != 1 || t->cols[0].type != AS_TYPE_INTEGER ||
	    t->mode == AS_MODE_APPEND || r->live_cap)
		return 0;
	as_buf_printf(&sql, "SELECT count(*) FROM %s", r->live_q);
	if ((ret = as_pg_int_buf(s, &sql, NULL, &n, "reading live hashes",
				 err)))
		goto done;
	if (n > LIVE_MAP_MAX)
		goto done;
	while (cap < (size_t)n * 2)
		cap *= 2;
	r->live_key = malloc(cap * sizeof(*r->live_key));
	r->live_hash = malloc(cap * sizeof(*r->live_hash));
	r->live_used = calloc(cap, 1);
	r->live_cap = cap;
	if (!r->live_key || !r->live_hash || !r->live_used) {
		live_map_free(r); /* no memory: SQL classifies */
		goto done;
	}
	as_buf_adds(&sql, "COPY (SELECT ");
	as_buf_add_ident(&sql, t->cols[0].name);
	as_buf_printf(&sql, ", \"_atomsync_hash\" FROM %s) TO STDOUT",
		      r->live_q);
	res = PQexec(s->conn, as_buf_cstr(&sql));
	if (!res || PQresultStatus(res) != PGRES_COPY_OUT) {
		ret = as_pg_fail(s, res, "reading live hashes", err);
		PQclear(res);
		live_map_free(r);
		goto done;
	}
	PQclear(res);
	while ((len = PQgetCopyData(s->conn, &line, 0)) > 0) {
		char *tab = memchr(line, '\t', (size_t)len);

		/* More rows than counted (written meanwhile by someone else):
		 * stop filling, let SQL classify. */
		if (r->live_cap && (!tab || ++count > cap / 4 * 3))
			live_map_free(r);
		if (r->live_cap)
			live_map_put(r, strtoll(line, NULL, 10),
				     strtoll(tab + 1, NULL, 10));
		PQfreemem(line);
	}
	res = PQgetResult(s->conn);
	if (len == -2 || !res || PQresultStatus(res) != PGRES_COMMAND_OK) {
		ret = as_pg_fail(s, res, "reading live hashes", err);
		live_map_free(r);
	}
	while (res) {
		PQclear(res);
		res = PQgetResult(s->conn);
	}
done:
	as_buf_free(&sql);
	return ret;
}

/* ---- the commit ---- */

/* "COPY ..., line N" in an error's context: back to the record's origin. */
static const char *copy_error_where(const PGresult *res, const pg_job *j)
{
	const char *ctx = res ? PQresultErrorField(res, PG_DIAG_CONTEXT) : NULL;
	const char *l = ctx ? strstr(ctx, ", line ") : NULL;
	const char *w = j->where.data;
	long line;

	if (!l || !w)
		return NULL;
	line = strtol(l + 7, NULL, 10);
	for (long k = 1; k < line && w < j->where.data + j->where.len; k++)
		w += strlen(w) + 1;
	return w < j->where.data + j->where.len ? w : NULL;
}

static int copy_in(pg_store *s, const char *table_q, const as_table *t,
		   const pg_job *j, const char *what, as_error *err)
{
	as_buf sql = AS_BUF_INIT;
	PGresult *res;
	const char *where;
	int ok = 1, ret = 0;

	as_buf_printf(&sql, "COPY %s", table_q);
	if (t)
		as_pg_insert_cols(&sql, t);
	as_buf_adds(&sql, " FROM STDIN");
	res = PQexec(s->conn, as_buf_cstr(&sql));
	as_buf_free(&sql);
	if (!res || PQresultStatus(res) != PGRES_COPY_IN) {
		as_pg_fail(s, res, what, err);
		PQclear(res);
		return AS_ESTORE;
	}
	PQclear(res);
	for (size_t off = 0; ok && off < j->data.len; off += COPY_CHUNK) {
		size_t n = j->data.len - off < COPY_CHUNK ? j->data.len - off
							  : COPY_CHUNK;

		ok = PQputCopyData(s->conn, j->data.data + off, (int)n) == 1;
	}
	if (ok)
		ok = PQputCopyEnd(s->conn, NULL) == 1;
	res = PQgetResult(s->conn);
	if (!ok || !res || PQresultStatus(res) != PGRES_COMMAND_OK) {
		ret = as_pg_fail(s, res, what, err);
		where = copy_error_where(res, j);
		if (where)
			as_error_prefix(err, "%s", where);
	}
	while (res) {
		PQclear(res);
		res = PQgetResult(s->conn);
	}
	return ret;
}

/* Value of column i in the INSERT ... SELECT from the batch: an unchanged
 * row keeps only what the publish needs (the sqlite.c convention). */
static void add_staged_col(as_buf *b, const as_table *t, size_t i, int join)
{
	int nulled = join && !as_col_kept_unchanged(t, i);

	if (nulled)
		as_buf_adds(
			b,
			"CASE WHEN l.\"_atomsync_hash\" = b.\"_atomsync_hash\" "
			"THEN NULL ELSE ");
	as_buf_adds(b, "b.");
	as_buf_add_ident(b, t->cols[i].name);
	if (batch_text(t, i))
		as_buf_printf(b, "::%s", as_pg_type(t->cols[i].type));
	if (nulled)
		as_buf_adds(b, " END");
}

/* Append mode: a record whose key is known (staged earlier, live, or
 * first seen earlier in this batch) with different content is a reject;
 * those rows leave the batch and are reported in input order. */
static int append_conflicts(pg_store *s, as_run_ctx *rc, const as_batch *bt,
			    int64_t *conflicts, as_error *err)
{
	pg_run *r = rc->priv;
	const as_table *t = rc->table;
	as_buf b = AS_BUF_INIT;
	PGresult *res;
	int n, ret = 0;
	long *idx = NULL;

	as_buf_adds(&b, "WITH c AS (SELECT b.\"_atomsync_idx\" FROM (SELECT *, "
			"first_value(\"_atomsync_hash\") OVER (PARTITION BY ");
	as_sql_key_list(&b, t, NULL);
	as_buf_printf(&b,
		      " ORDER BY \"_atomsync_idx\") AS _first FROM %s) b "
		      "LEFT JOIN %s s ON ",
		      r->batch_q, r->stage_q);
	as_sql_key_match(&b, t, "s", "b");
	if (r->live_has_rows) {
		as_buf_printf(&b, " LEFT JOIN %s l ON ", r->live_q);
		as_sql_key_match(&b, t, "l", "b");
	}
	as_buf_printf(
		&b,
		" WHERE b.\"_atomsync_hash\" <> coalesce(s.\"_atomsync_hash\", %s"
		"b._first)) DELETE FROM %s d USING c WHERE d.\"_atomsync_idx\" "
		"= c.\"_atomsync_idx\" RETURNING d.\"_atomsync_idx\"",
		r->live_has_rows ? "l.\"_atomsync_hash\", " : "", r->batch_q);
	ret = as_pg_exec(s, as_buf_cstr(&b), NULL, &res,
			 "staging: append conflicts", err);
	as_buf_free(&b);
	if (ret)
		return ret;
	n = PQntuples(res);
	if (n > 0 && !(idx = malloc((size_t)n * sizeof(*idx)))) {
		PQclear(res);
		return as_error_set(err, AS_ENOMEM, "out of memory");
	}
	for (int i = 0; i < n; i++)
		idx[i] = strtol(PQgetvalue(res, i, 0), NULL, 10);
	PQclear(res);
	/* Report in input order (RETURNING has none). */
	for (int i = 1; i < n; i++)
		for (int k = i; k > 0 && idx[k - 1] > idx[k]; k--) {
			long tmp = idx[k];

			idx[k] = idx[k - 1];
			idx[k - 1] = tmp;
		}
	for (int i = 0; !ret && i < n; i++) {
		if (idx[i] < 0 || (size_t)idx[i] >= bt->nrows)
			continue;
		(*conflicts)++;
		ret = rc->on_reject(
			rc->reject_ud, &bt->rows[idx[i]],
			"append mode: a different record under a key "
			"that is already known",
			err);
	}
	free(idx);
	return ret;
}

/* Plain INSERT first: a key staged by an earlier batch is rare, and the
 * ON CONFLICT form costs twice as much per row; on a unique violation the
 * statement is redone with it, from a savepoint. */
static int insert_or_upsert(pg_store *s, as_buf *sql, size_t plain_len,
			    const as_pg_params *p, as_error *err)
{
	char *full = as_strndup(sql->data, sql->len);
	int ret;

	if (!full)
		return as_error_set(err, AS_ENOMEM, "out of memory");
	sql->len = plain_len;
	sql->data[plain_len] = '\0';
	if ((ret = as_pg_exec(s, "SAVEPOINT atomsync_insert", NULL, NULL,
			      "staging", err)))
		goto done;
	ret = as_pg_exec(s, sql->data, p, NULL, "staging: classifying rows",
			 err);
	/* Callers always pass err. */
	/* NOLINTNEXTLINE(clang-analyzer-core.NonNullParamChecker) */
	if (ret && strcmp(err->sqlstate, "23505") == 0) {
		as_error_clear(err);
		if (!(ret = as_pg_exec(s,
				       "ROLLBACK TO SAVEPOINT atomsync_insert",
				       NULL, NULL, "staging", err)))
			ret = as_pg_exec(s, full, p, NULL,
					 "staging: classifying rows", err);
	}
done:
	free(full);
	return ret;
}

/* The batch into the staging table, classified against the live table;
 * a later record replaces an earlier one with the same key. */
static int stage_insert(pg_store *s, as_run_ctx *rc, int dups, as_error *err)
{
	pg_run *r = rc->priv;
	const as_table *t = rc->table;
	int join = r->live_has_rows;
	as_buf b = AS_BUF_INIT;
	as_pg_params p;
	size_t plain;
	int ret = 0;

	/* The planner knows nothing of a fresh temp table and would hash
	 * the whole live table for every batch: one index probe per row is
	 * what a batch much smaller than the table wants. */
	if (join && (ret = as_pg_exec(s,
				      "SET LOCAL enable_hashjoin = off; "
				      "SET LOCAL enable_mergejoin = off",
				      NULL, NULL, "staging", err)))
		return ret;
	as_buf_printf(&b, "INSERT INTO %s", r->stage_q);
	as_pg_insert_cols(&b, t);
	as_buf_adds(&b, " SELECT ");
	if (dups && t->mode != AS_MODE_APPEND) {
		as_buf_adds(&b, "DISTINCT ON (");
		as_sql_key_list(&b, t, "b");
		as_buf_adds(&b, ") ");
	}
	for (size_t i = 0; i < t->ncols; i++) {
		add_staged_col(&b, t, i, join);
		as_buf_adds(&b, ", ");
	}
	if (join)
		as_buf_adds(
			&b,
			"CASE WHEN l.\"_atomsync_hash\" = b.\"_atomsync_hash\" "
			"THEN NULL ELSE $1::bigint END, ");
	else
		as_buf_adds(&b, "$1::bigint, ");
	as_buf_printf(&b,
		      "b.\"_atomsync_hash\", b.\"_atomsync_line\" FROM %s b",
		      r->batch_q);
	if (join) {
		as_buf_printf(&b, " LEFT JOIN %s l ON ", r->live_q);
		as_sql_key_match(&b, t, "l", "b");
	}
	if (dups && t->mode != AS_MODE_APPEND) {
		as_buf_adds(&b, " ORDER BY ");
		as_sql_key_list(&b, t, "b");
		as_buf_adds(&b, ", b.\"_atomsync_idx\" DESC");
	}
	plain = b.len;
	as_sql_add_upsert(&b, t, t->mode != AS_MODE_APPEND, NULL);
	as_pg_params_init(&p);
	as_pg_param_int(&p, rc->run_id);
	if (as_buf_cstr(&b)[0] == '\0')
		ret = as_error_set(err, AS_ENOMEM, "out of memory");
	else
		ret = insert_or_upsert(s, &b, plain, &p, err);
	as_buf_free(&b);
	return ret;
}

/* Rows of the job into the staging table, inside the transaction. */
static int stage_rows(pg_store *s, as_run_ctx *rc, pg_job *j, const as_batch *b,
		      int64_t *conflicts, as_error *err)
{
	pg_run *r = rc->priv;

	if (j->direct) {
		if (as_pg_exec(s, "SAVEPOINT atomsync_direct", NULL, NULL,
			       "staging", err))
			return err->code;
		if (!copy_in(s, r->stage_q, rc->table, j, "staging: COPY", err))
			return 0;
		/* Callers always pass err. */
		/* NOLINTNEXTLINE(clang-analyzer-core.NonNullParamChecker) */
		if (strcmp(err->sqlstate, "23505") != 0)
			return err->code;
		/* A key an earlier batch staged: classify through the batch
		 * table. */
		as_error_clear(err);
		if (as_pg_exec(s, "ROLLBACK TO SAVEPOINT atomsync_direct", NULL,
			       NULL, "staging", err) ||
		    as_pg_to_batch_format(j, err))
			return err->code;
	}
	if (copy_in(s, r->batch_q, NULL, j, "staging: COPY", err))
		return err->code;
	if (b && rc->table->mode == AS_MODE_APPEND &&
	    append_conflicts(s, rc, b, conflicts, err))
		return err->code;
	return stage_insert(s, rc, j->dups, err);
}

/* The job's spans into "<stage>_spans" (store/postgres_spans.c). */
static int stage_spans(pg_store *s, as_run_ctx *rc, const pg_job *j,
		       as_error *err)
{
	pg_job v;
	char *q;
	int ret;

	memset(&v, 0, sizeof(v));
	v.data = j->spans;
	if ((ret = as_pg_spans_table(s, rc, &q, err)))
		return ret;
	ret = copy_in(s, q, NULL, &v, "staging: spans", err);
	free(q);
	return ret;
}

/* One staging transaction: rows, checkpoint, lease check, commit.  b is
 * the engine's batch when called on its thread (append mode reports
 * conflicts through rc->on_reject), NULL on the store's thread. */
static int stage_commit(pg_store *s, as_run_ctx *rc, pg_job *j,
			const as_batch *b, as_error *err)
{
	const as_table *t = rc->table;
	int64_t conflicts = 0;
	as_pg_params p;

	as_error_clear(err);
	if (as_pg_begin(s, 1, err))
		goto fail;
	as_crash_point("stage.begin");
	if (stage_alter(s, rc, err) ||
	    (j->nrows && stage_rows(s, rc, j, b, &conflicts, err)) ||
	    (j->spans.len && stage_spans(s, rc, j, err)))
		goto fail;
	as_crash_point("stage.rows");
	as_pg_params_init(&p);
	as_pg_param_text(&p, t->dataset);
	as_pg_param_text(&p, j->checkpoint);
	as_pg_param_int(&p, j->seen);
	as_pg_param_int(&p, j->rejected + conflicts);
	if (as_pg_exec(
		    s,
		    "UPDATE atomsync_state SET checkpoint = $2, "
		    "stage_seen = $3, stage_rejected = $4 WHERE dataset = $1",
		    &p, NULL, "saving checkpoint", err))
		goto fail;
	as_crash_point("stage.checkpoint");
	/* The fence last: the lease row is locked only for the commit. */
	if (as_pg_fence(s, as_table_lease(t), rc->token, rc->lease_ttl_ms,
			err) ||
	    as_pg_commit(s, "staging commit", err))
		goto fail;
	as_crash_point("stage.committed");
	return 0;
fail:
	as_pg_rollback(s);
	if (err->code == AS_ESTORE)
		as_error_prefix(err, "dataset %s", t->dataset);
	return err->code;
}

int as_pg_drain(pg_store *s, as_error *err)
{
	int ret;

	if (!s->inflight)
		return 0;
	pthread_join(s->thread, NULL);
	s->inflight = 0;
	ret = s->job_ret;
	s->job_ret = 0;
	if (ret && err)
		*err = s->job_err;
	return err ? ret : 0;
}

int as_pg_stage_batch(as_store *st, as_run_ctx *rc, const as_batch *b,
		      as_error *err)
{
	pg_store *s = (pg_store *)st;
	const as_table *t = rc->table;
	unsigned char *skip = NULL;
	int64_t conflicts = 0;
	pg_job *j = &s->job[s->next];
	int ret = 0;

	as_error_clear(err);
	for (size_t i = 0; i < b->nrows; i++) {
		char wbuf[400];
		/* A span holds keys only (v beyond them is not set). */
		const char *why =
			b->rows[i].flags & AS_ROW_SPAN
				? NULL
				: as_pg_unstorable(t, &b->rows[i], wbuf,
						   sizeof(wbuf));

		if (!why)
			continue;
		if (!skip && !(skip = calloc(b->nrows, 1))) {
			ret = as_error_set(err, AS_ENOMEM, "out of memory");
			goto done;
		}
		skip[i] = 1;
		conflicts++;
		if ((ret = rc->on_reject(rc->reject_ud, &b->rows[i], why, err)))
			goto done;
	}
	if ((ret = as_pg_live_map_read(s, rc, b, err)) ||
	    (ret = as_pg_encode_job(s, rc, b, skip, conflicts, j, err)) ||
	    (ret = as_pg_drain(s, err)))
		goto done;
	if (t->mode == AS_MODE_APPEND) {
		/* Its rejects are reported to the engine before the commit. */
		ret = stage_commit(s, rc, j, b, err);
		goto done;
	}
	/* Committed here, on the engine's writer thread: the engine already
	 * overlaps parsing with writing, and a second thread of our own on
	 * the same connection would only add a way to share it by mistake. */
	ret = stage_commit(s, rc, j, NULL, err);
	s->next ^= 1;
done:
	free(skip);
	return ret;
}

void as_pg_stage_free(pg_store *s)
{
	for (int i = 0; i < 2; i++) {
		as_buf_free(&s->job[i].data);
		as_buf_free(&s->job[i].where);
		as_buf_free(&s->job[i].spans);
		free(s->job[i].checkpoint);
	}
	free(s->dup_slot);
	free(s->dup_row);
}
