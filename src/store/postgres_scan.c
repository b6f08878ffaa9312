/*
 * The PostgreSQL store's live scan (store.h, scan_*): the live table read
 * in key order, a page at a time (keyset paging: WHERE key > last ORDER BY
 * key LIMIT n, through the primary key's index), on a connection of its
 * own, so the engine matches input lines to published rows while the
 * store's connection stages.  The engine compares keys as numbers, or text
 * bytewise; the scan is offered only for keys PostgreSQL orders the same
 * way and reads by index range: one integer column, or one text column
 * whose collation is "C" or "POSIX".  Any other key reads nothing, and the
 * run parses every line.
 *
 * The spans it makes possible are in store/postgres_spans.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/postgres_int.h"
#include "util/str.h"

#define SCAN_PAGE 20000 /* rows per page */

typedef struct pg_scan {
	PGconn *conn;
	PGresult *res; /* the current page */
	int row;       /* the next row of res */
	int last;      /* res is the last page */
	int inflight;  /* the page after res is asked for */
	size_t *cols;  /* table columns selected, key first */
	size_t ncols;
	char *first_sql, *from_sql;
	/* After a seek beyond the page: the key to read from, as text. */
	int pending;
	char *from[AS_PG_MAXP];
} pg_scan;

static void scan_free(pg_scan *sc)
{
	PQclear(sc->res);
	if (sc->conn)
		PQfinish(sc->conn);
	for (size_t i = 0; i < AS_PG_MAXP; i++)
		free(sc->from[i]);
	free(sc->first_sql);
	free(sc->from_sql);
	free(sc->cols);
	free(sc);
}

void as_pg_scan_close(as_store *st, as_run_ctx *rc)
{
	(void)st;
	if (rc->scan)
		scan_free(rc->scan);
	rc->scan = NULL;
}

/* The select list, read in binary: kept columns as bigint, float8 or the
 * engine's text, then hash (bigint) and line (bytea). */
static int scan_sql(pg_scan *sc, const as_table *t, const char *live_q)
{
	as_buf sel = AS_BUF_INIT, b = AS_BUF_INIT, col = AS_BUF_INIT;

	if (!(sc->cols = calloc(t->ncols, sizeof(size_t))))
		return AS_ENOMEM;
	for (size_t i = 0; i < t->ncols; i++) {
		const char *c;
		as_type ty = t->cols[i].type;

		if (!as_col_kept_unchanged(t, i))
			continue;
		sc->cols[sc->ncols++] = i;
		as_buf_reset(&col);
		as_buf_add_ident(&col, t->cols[i].name);
		c = as_buf_cstr(&col);
		if (ty == AS_TYPE_INTEGER)
			as_buf_printf(&sel, "(%s)::bigint", c);
		else if (ty == AS_TYPE_BOOLEAN)
			as_buf_printf(&sel, "(%s)::int::bigint", c);
		else if (ty == AS_TYPE_REAL)
			as_buf_printf(&sel, "(%s)::float8", c);
		else
			as_pg_text_expr(&sel, c, ty);
		as_buf_adds(&sel, ", ");
	}
	as_buf_adds(&sel, "(\"_atomsync_hash\")::bigint, \"_atomsync_line\"");
	as_buf_printf(&b, "SELECT %s FROM %s ORDER BY ", as_buf_cstr(&sel),
		      live_q);
	as_sql_key_list(&b, t, NULL);
	as_buf_printf(&b, " LIMIT %d", SCAN_PAGE);
	sc->first_sql = as_buf_detach(&b);
	as_buf_printf(&b, "SELECT %s FROM %s WHERE (", as_buf_cstr(&sel),
		      live_q);
	as_sql_key_list(&b, t, NULL);
	as_buf_adds(&b, ") > (");
	for (size_t i = 0; i < t->nkey; i++)
		as_buf_printf(&b, "%s$%zu::%s", i ? ", " : "", i + 1,
			      as_pg_type(t->cols[i].type));
	as_buf_adds(&b, ") ORDER BY ");
	as_sql_key_list(&b, t, NULL);
	as_buf_printf(&b, " LIMIT %d", SCAN_PAGE);
	sc->from_sql = as_buf_detach(&b);
	as_buf_free(&sel);
	as_buf_free(&col);
	return sc->first_sql && sc->from_sql &&
			       !as_buf_text_failed(sc->first_sql) &&
			       !as_buf_text_failed(sc->from_sql)
		       ? 0
		       : AS_ENOMEM;
}

/* 1 when the key orders as the engine compares: one integer column, or
 * one text column under the "C" or "POSIX" collation. */
static int keys_ordered(pg_scan *sc, const as_table *t, const char *live_q)
{
	const char *v[2];
	PGresult *res;
	int ok = 1;

	/* One key column: PostgreSQL's btree bounds a scan on a row value
	 * (k1, k2) > (a, b) by k1 alone, so a page, or a gap between spans,
	 * would read every row of its first column's value. */
	if (t->nkey != 1)
		return 0;
	for (size_t i = 0; ok && i < t->nkey; i++) {
		if (t->cols[i].type == AS_TYPE_INTEGER)
			continue;
		if (t->cols[i].type != AS_TYPE_TEXT)
			return 0;
		v[0] = live_q;
		v[1] = t->cols[i].name;
		res = PQexecParams(
			sc->conn,
			"SELECT 1 FROM pg_attribute a JOIN pg_collation c ON "
			"c.oid = a.attcollation JOIN pg_database d ON "
			"d.datname = current_database() WHERE a.attrelid = "
			"$1::regclass AND a.attname = $2 AND (c.collname IN "
			"('C', 'POSIX') OR (c.collname = 'default' AND "
			"d.datlocprovider = 'c' AND d.datcollate IN "
			"('C', 'POSIX')))",
			2, NULL, v, NULL, NULL, 0);
		ok = res && PQresultStatus(res) == PGRES_TUPLES_OK &&
		     PQntuples(res) == 1;
		PQclear(res);
	}
	return ok;
}

int as_pg_scan_open(as_store *st, as_run_ctx *rc, int *rows, as_error *err)
{
	pg_store *s = (pg_store *)st;
	pg_run *r = rc->priv;
	const as_table *t = rc->table;
	const char *keys[] = {"fallback_application_name", "connect_timeout",
			      "dbname", NULL};
	const char *vals[] = {"atomsync", "5", s->base.url, NULL};
	pg_scan *sc;

	*rows = 0;
	if (!r || !r->live_has_rows || rc->scan)
		return 0;
	if (!(sc = calloc(1, sizeof(*sc))))
		return as_error_set(err, AS_ENOMEM, "out of memory");
	rc->scan = sc;
	sc->conn = PQconnectdbParams(keys, vals, 1);
	if (!sc->conn || PQstatus(sc->conn) != CONNECTION_OK) {
		/* Nothing is lost but speed: every line is parsed. */
		as_pg_scan_close(st, rc);
		return 0;
	}
	if (!keys_ordered(sc, t, r->live_q)) {
		as_pg_scan_close(st, rc);
		return 0;
	}
	if (scan_sql(sc, t, r->live_q)) {
		as_pg_scan_close(st, rc);
		return as_error_set(err, AS_ENOMEM, "out of memory");
	}
	*rows = 1;
	return 0;
}

/* The result of the query in flight on the scan's connection (NULL when
 * it failed); the connection is free again after. */
static PGresult *collect(pg_scan *sc)
{
	PGresult *res = PQgetResult(sc->conn), *more;

	while ((more = PQgetResult(sc->conn)) != NULL)
		PQclear(more);
	sc->inflight = 0;
	if (res && PQresultStatus(res) != PGRES_TUPLES_OK) {
		PQclear(res);
		res = NULL;
	}
	return res;
}

/* Ask for the page after res's last row while the engine reads res. */
static void prefetch(pg_scan *sc, size_t nkey)
{
	const char *v[AS_PG_MAXP];
	int len[AS_PG_MAXP], fmt[AS_PG_MAXP];
	int n = PQntuples(sc->res);

	if (sc->last || n == 0)
		return;
	for (size_t i = 0; i < nkey; i++)
		v[i] = PQgetvalue(sc->res, n - 1, (int)i);
	for (size_t i = 0; i < nkey; i++) {
		len[i] = PQgetlength(sc->res, n - 1, (int)i);
		fmt[i] = 1;
	}
	sc->inflight = PQsendQueryParams(sc->conn, sc->from_sql, (int)nkey,
					 NULL, v, len, fmt, 1) == 1;
}

/* The next page: the first, from the pending seek, or the one after res
 * (asked for already, unless that failed; a page asked for before a seek
 * is read and dropped). */
static int fetch(pg_scan *sc, size_t nkey, as_error *err)
{
	PGresult *res = NULL;

	if (!sc->inflight && sc->res && !sc->pending)
		prefetch(sc, nkey);
	if (sc->inflight) {
		res = collect(sc);
		if (sc->pending) {
			PQclear(res);
			res = NULL;
		}
	}
	if (sc->pending)
		res = PQexecParams(sc->conn, sc->from_sql, (int)nkey, NULL,
				   (const char *const *)sc->from, NULL, NULL,
				   1);
	else if (!sc->res)
		res = PQexecParams(sc->conn, sc->first_sql, 0, NULL, NULL, NULL,
				   NULL, 1);
	if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
		as_error_set(err, AS_ESTORE, "reading the live table: %s",
			     PQerrorMessage(sc->conn));
		PQclear(res);
		return AS_ESTORE;
	}
	PQclear(sc->res);
	sc->res = res;
	sc->row = 0;
	sc->pending = 0;
	sc->last = PQntuples(res) < SCAN_PAGE;
	prefetch(sc, nkey);
	return 0;
}

/* A binary bigint or float8 (network byte order). */
static uint64_t be64(const char *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | (unsigned char)p[i];
	return v;
}

/* One value of a row, from its binary column (scan_sql's types). */
static int cell(as_val *v, const PGresult *res, int i, int j, as_type type,
		as_arena *a)
{
	const char *p = PQgetvalue(res, i, j);
	uint64_t u;

	memset(v, 0, sizeof(*v));
	if (PQgetisnull(res, i, j))
		return 0;
	if (type == AS_TYPE_INTEGER || type == AS_TYPE_BOOLEAN) {
		v->kind = AS_V_INT;
		v->u.i = (int64_t)be64(p);
	} else if (type == AS_TYPE_REAL) {
		v->kind = AS_V_REAL;
		u = be64(p);
		memcpy(&v->u.r, &u, sizeof(u));
	} else {
		v->kind = AS_V_TEXT;
		v->len = (uint32_t)PQgetlength(res, i, j);
		v->u.s = as_arena_strndup(a, p, v->len);
		if (!v->u.s)
			return AS_ENOMEM;
	}
	return 0;
}

int as_pg_scan_next(as_store *st, as_run_ctx *rc, as_scan_row *out, as_arena *a,
		    as_error *err)
{
	pg_scan *sc = rc->scan;
	const as_table *t = rc->table;
	const char *line;
	int i, k = (int)(sc ? sc->ncols : 0);

	(void)st;
	if (!sc)
		return 0;
	if (sc->pending || !sc->res || sc->row >= PQntuples(sc->res)) {
		if (!sc->pending && sc->res && sc->last)
			return 0;
		if (fetch(sc, t->nkey, err))
			return err->code;
		if (PQntuples(sc->res) == 0)
			return 0;
	}
	i = sc->row++;
	for (int j = 0; j < k; j++)
		if (cell(&out->v[sc->cols[j]], sc->res, i, j,
			 t->cols[sc->cols[j]].type, a))
			return as_error_set(err, AS_ENOMEM, "out of memory");
	out->hash = PQgetisnull(sc->res, i, k)
			    ? 0
			    : be64(PQgetvalue(sc->res, i, k));
	line = PQgetvalue(sc->res, i, k + 1);
	out->has_line = PQgetlength(sc->res, i, k + 1) == 16;
	if (out->has_line)
		memcpy(out->line, line, 16);
	return 1;
}

/* Order of row i's key and key (both of the kinds keys_ordered allows). */
static int row_cmp(const pg_scan *sc, const as_table *t, int i,
		   const as_val *key)
{
	for (size_t j = 0; j < t->nkey; j++) {
		const char *x = PQgetvalue(sc->res, i, (int)j);
		int c;

		if (key[j].kind == AS_V_INT) {
			int64_t v = (int64_t)be64(x);

			c = v < key[j].u.i ? -1 : v > key[j].u.i;
		} else {
			size_t n = (size_t)PQgetlength(sc->res, i, (int)j);
			size_t m = n < key[j].len ? n : key[j].len;

			c = memcmp(x, key[j].u.s, m);
			if (!c)
				c = n < key[j].len ? -1 : n > key[j].len;
		}
		if (c)
			return c;
	}
	return 0;
}

int as_pg_scan_seek(as_store *st, as_run_ctx *rc, const as_val *key,
		    as_error *err)
{
	pg_scan *sc = rc->scan;
	const as_table *t = rc->table;
	int n, lo, hi;

	(void)err;
	if (!sc)
		return 0;
	for (size_t j = 0; j < t->nkey; j++)
		if (key[j].kind != (t->cols[j].type == AS_TYPE_INTEGER
					    ? AS_V_INT
					    : AS_V_TEXT)) {
			/* Not a key the live table can hold: nothing more
			 * to match (every line is parsed). */
			as_pg_scan_close(st, rc);
			return 0;
		}
	n = sc->res && !sc->pending ? PQntuples(sc->res) : 0;
	if (n > 0 && row_cmp(sc, t, 0, key) <= 0 &&
	    row_cmp(sc, t, n - 1, key) > 0) {
		/* Within the page: the first row after key. */
		lo = 0;
		hi = n - 1;
		while (lo < hi) {
			int mid = lo + (hi - lo) / 2;

			if (row_cmp(sc, t, mid, key) > 0)
				hi = mid;
			else
				lo = mid + 1;
		}
		sc->row = lo;
		return 0;
	}
	if (n > 0 && sc->last && row_cmp(sc, t, 0, key) <= 0) {
		sc->row = n;
		return 0;
	}
	/* Copies: the key lives in a batch the writer may reset meanwhile. */
	for (size_t j = 0; j < t->nkey; j++) {
		free(sc->from[j]);
		sc->from[j] =
			key[j].kind == AS_V_INT
				? as_sprintf("%lld", (long long)key[j].u.i)
				: as_strndup(key[j].u.s, key[j].len);
		if (!sc->from[j])
			return as_error_set(err, AS_ENOMEM, "out of memory");
	}
	sc->pending = 1;
	return 0;
}

/* A run whose rows the scan matched needs no live map to classify them:
 * it is read for the first batch holding a parsed row. */
int as_pg_live_map_read(pg_store *s, as_run_ctx *rc, const as_batch *b,
			as_error *err)
{
	pg_run *r = rc->priv;

	if (!r->live_map_wanted)
		return 0;
	for (size_t i = 0; i < b->nrows; i++)
		if (!(b->rows[i].flags & (AS_ROW_SPAN | AS_ROW_UNCHANGED))) {
			r->live_map_wanted = 0;
			if (as_pg_drain(s, err))
				return err->code;
			return as_pg_live_hashes(s, rc, err);
		}
	return 0;
}
