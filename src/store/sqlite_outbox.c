/*
 * The SQLite store's outbox (invariant 7): inside the publish transaction,
 * the rows the publish changes are collected into a temp table and turned
 * into one event per run and target (atomsync_outbox); after commit the
 * drain (effects/outbox.c) lists and marks them here.  Keys are rendered by
 * SQL expressions over the rows, with the templates' text as parameters.
 */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/outbox.h"
#include "store/sql.h"
#include "store/sqlite_int.h"
#include "util/str.h"
#include "util/time.h"

#define KEEP_DELIVERED_S (7 * 86400.0) /* delivered events kept this long */

static const char *OUTBOX_SCHEMA =
	"CREATE TABLE IF NOT EXISTS atomsync_outbox("
	" event_id INTEGER PRIMARY KEY AUTOINCREMENT,"
	" run_id INTEGER NOT NULL, dataset TEXT NOT NULL,"
	" target TEXT NOT NULL CHECK (target IN ('redis', 'webhook')),"
	" payload TEXT NOT NULL,"
	" status TEXT NOT NULL DEFAULT 'pending'"
	"  CHECK (status IN ('pending', 'delivered')),"
	" attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT,"
	" created_at TEXT NOT NULL, delivered_at TEXT);"
	"CREATE INDEX IF NOT EXISTS atomsync_outbox_pending"
	" ON atomsync_outbox(dataset, event_id) WHERE status = 'pending';";

/* The column as the text a key shows: booleans as true/false and integral
 * reals without ".0", as PostgreSQL renders them. */
static void add_text_expr(as_buf *b, const as_col *c)
{
	switch (c->type) {
	case AS_TYPE_BOOLEAN:
		as_buf_adds(b, "CASE WHEN ");
		as_buf_add_ident(b, c->name);
		as_buf_adds(b, " IS NULL THEN NULL WHEN ");
		as_buf_add_ident(b, c->name);
		as_buf_adds(b, " THEN 'true' ELSE 'false' END");
		break;
	case AS_TYPE_REAL:
		as_buf_adds(b, "CASE WHEN typeof(");
		as_buf_add_ident(b, c->name);
		as_buf_adds(b, ") = 'real' AND abs(");
		as_buf_add_ident(b, c->name);
		as_buf_adds(b, ") < 1e15 AND ");
		as_buf_add_ident(b, c->name);
		as_buf_adds(b, " = CAST(");
		as_buf_add_ident(b, c->name);
		as_buf_adds(b, " AS INTEGER) THEN CAST(CAST(");
		as_buf_add_ident(b, c->name);
		as_buf_adds(b, " AS INTEGER) AS TEXT) ELSE CAST(");
		as_buf_add_ident(b, c->name);
		as_buf_adds(b, " AS TEXT) END");
		break;
	default:
		as_buf_adds(b, "CAST(");
		as_buf_add_ident(b, c->name);
		as_buf_adds(b, " AS TEXT)");
	}
}

static int ensure_outbox(void *conn, as_error *err)
{
	return as_sq_exec(conn, OUTBOX_SCHEMA, err);
}

static int insert_event(void *conn, const as_run_ctx *rc, const char *target,
			const char *payload, size_t len, as_error *err)
{
	sq_store *s = conn;
	sqlite3_stmt *q;
	char now[40];
	int ret = 0;

	if (as_sq_prepare(
		    s,
		    "INSERT INTO atomsync_outbox(run_id, dataset, target, "
		    "payload, created_at) VALUES(?1, ?2, ?3, ?4, ?5)",
		    &q, err))
		return AS_ESTORE;
	sqlite3_bind_int64(q, 1, rc->run_id);
	sqlite3_bind_text(q, 2, rc->table->dataset, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(q, 3, target, -1, SQLITE_STATIC);
	sqlite3_bind_text64(q, 4, payload, len, SQLITE_STATIC, SQLITE_UTF8);
	sqlite3_bind_text(q, 5, as_iso8601(as_now(), now, sizeof(now)), -1,
			  SQLITE_TRANSIENT);
	if (sqlite3_step(q) != SQLITE_DONE)
		ret = as_sq_fail(s, err, "outbox: recording an event");
	sqlite3_finalize(q);
	return ret;
}

/* SELECT k FROM (SELECT expr AS k FROM changed UNION ALL SELECT ...) WHERE
 * k IS NOT NULL, over the templates with columns; literal text is bound.
 * *q = NULL when no template has a column. */
static int keys_query(sq_store *s, const as_tpl *v, size_t n, const as_table *t,
		      const char *changed_q, sqlite3_stmt **q, as_error *err)
{
	as_buf b = AS_BUF_INIT;
	int np = 0, any = 0, rc;

	*q = NULL;
	as_buf_adds(&b, "SELECT k FROM (");
	for (size_t i = 0; i < n; i++) {
		if (v[i].pattern || v[i].fixed)
			continue;
		as_buf_adds(&b, any++ ? " UNION ALL SELECT " : "SELECT ");
		for (size_t k = 0; k < v[i].nparts; k++) {
			as_buf_adds(&b, k ? " || " : "");
			if (v[i].parts[k].column)
				add_text_expr(&b,
					      &t->cols[v[i].parts[k].index]);
			else
				as_buf_printf(&b, "?%d", ++np);
		}
		as_buf_printf(&b, " AS k FROM %s", changed_q);
	}
	as_buf_adds(&b, ") WHERE k IS NOT NULL");
	if (!any) {
		as_buf_free(&b);
		return 0;
	}
	rc = as_sq_prepare(s, as_buf_cstr(&b), q, err);
	as_buf_free(&b);
	if (rc)
		return rc;
	np = 0;
	for (size_t i = 0; i < n; i++)
		for (size_t k = 0;
		     !v[i].pattern && !v[i].fixed && k < v[i].nparts; k++)
			if (!v[i].parts[k].column)
				sqlite3_bind_text(*q, ++np, v[i].parts[k].text,
						  -1, SQLITE_STATIC);
	return 0;
}

/* The rendered keys to key(ud, ...), row by row. */
static int outbox_keys(void *conn, const as_outbox_plan *plan,
		       const as_table *t, const char *changed_q,
		       as_sql_key_fn key, void *ud, as_error *err)
{
	sq_store *s = conn;
	sqlite3_stmt *q = NULL;
	int ret, step;

	if ((ret = keys_query(s, plan->tpls, plan->ntpls, t, changed_q, &q,
			      err)) ||
	    !q)
		return ret;
	while ((step = sqlite3_step(q)) == SQLITE_ROW)
		if ((ret = key(ud, (const char *)sqlite3_column_text(q, 0),
			       (size_t)sqlite3_column_bytes(q, 0), err)))
			goto done;
	if (step != SQLITE_DONE)
		ret = as_sq_fail(s, err, "outbox: rendering keys");
done:
	sqlite3_finalize(q);
	return ret;
}

/* as_sql_outbox_publish, once it is known whether the live table exists. */
int as_sq_outbox_publish(sq_store *s, as_run_ctx *rc, const as_counts *c,
			 as_error *err)
{
	as_sql_run sr;
	as_sql q;
	int ret, live;

	if (!as_outbox_plan_any(rc->outbox))
		return 0;
	as_sq_sql(s, &q);
	as_sq_run_view(rc->priv, &sr);
	if ((ret = as_sq_table_exists(s, rc->table->table, &live, err)))
		return ret;
	return as_sql_outbox_publish(&q, &sr, rc, c, live, err);
}

/* No NOTIFY: a plan with notify never gets here, the run's check refuses
 * it on this store (effects/keys.c, as_outbox_check). */
const as_sql_outbox_ops as_sq_outbox_ops = {
	.ensure = ensure_outbox,
	.insert = insert_event,
	.keys = outbox_keys,
};

/* ---- after commit: list and mark ---- */

static char *col_dup(sqlite3_stmt *q, int i)
{
	const unsigned char *v = sqlite3_column_text(q, i);

	return v ? as_strdup((const char *)v) : NULL;
}

/* The event in q's row (see as_sq_outbox_list's query); -1 when out of
 * memory. */
static int read_event(sqlite3_stmt *q, as_outbox_event *e, unsigned flags)
{
	memset(e, 0, sizeof(*e));
	e->event_id = sqlite3_column_int64(q, 0);
	e->run_id = sqlite3_column_int64(q, 1);
	e->dataset = col_dup(q, 2);
	e->target = col_dup(q, 3);
	e->status = col_dup(q, 4);
	e->attempts = sqlite3_column_int64(q, 5);
	e->last_error = col_dup(q, 6);
	e->created_at = col_dup(q, 7);
	e->delivered_at = col_dup(q, 8);
	e->keys = sqlite3_column_int64(q, 9);
	e->payload = col_dup(q, 10);
	if (!e->dataset || !e->target || !e->status ||
	    ((flags & AS_OUTBOX_PAYLOAD) && !e->payload))
		return -1;
	return 0;
}

int as_sq_outbox_list(as_store *st, const char *dataset, int64_t after_id,
		      size_t limit, unsigned flags, as_outbox_event **out,
		      size_t *n, as_error *err)
{
	sq_store *s = (sq_store *)st;
	as_outbox_event *v = NULL;
	size_t cnt = 0, cap = 0;
	sqlite3_stmt *q = NULL;
	as_buf b = AS_BUF_INIT;
	as_sql sql;
	int exists, ret, step;

	*out = NULL;
	*n = 0;
	if ((ret = as_sq_table_exists(s, "atomsync_outbox", &exists, err)) ||
	    !exists)
		return ret;
	as_sq_sql(s, &sql);
	as_sql_outbox_list_sql(sql.d, flags, &b);
	ret = as_sq_prepare(s, as_buf_cstr(&b), &q, err);
	as_buf_free(&b);
	if (ret)
		return ret;
	as_sq_bind_text(q, 1, dataset);
	sqlite3_bind_int64(q, 2, after_id);
	sqlite3_bind_int64(q, 3, limit ? (int64_t)limit : -1);
	while ((step = sqlite3_step(q)) == SQLITE_ROW) {
		as_outbox_event *e;

		if (cnt == cap) {
			size_t ncap = cap ? cap * 2 : 16;
			as_outbox_event *nv = realloc(v, ncap * sizeof(*nv));

			if (!nv) {
				ret = as_error_set(err, AS_ENOMEM,
						   "out of memory");
				goto done;
			}
			v = nv;
			cap = ncap;
		}
		e = &v[cnt++];
		if (read_event(q, e, flags)) {
			ret = as_error_set(err, AS_ENOMEM, "out of memory");
			goto done;
		}
	}
	if (step != SQLITE_DONE)
		ret = as_sq_fail(s, err, "outbox: listing events");
done:
	sqlite3_finalize(q);
	if (ret) {
		as_outbox_events_free(v, cnt);
		return ret;
	}
	*out = v;
	*n = cnt;
	return 0;
}

/* A delivered event keeps its summary but drops its key list (it may be
 * megabytes); delivered events older than a week are removed. */
int as_sq_outbox_mark(as_store *st, int64_t event_id, const char *error,
		      as_error *err)
{
	sq_store *s = (sq_store *)st;
	sqlite3_stmt *q = NULL;
	char now[40], old[40];
	int ret = 0;

	if (as_sq_prepare(
		    s,
		    error ? "UPDATE atomsync_outbox SET attempts = attempts + 1, "
			    "last_error = ?2 WHERE event_id = ?1 AND "
			    "status = 'pending'"
			  : "UPDATE atomsync_outbox SET status = 'delivered', "
			    "attempts = attempts + 1, last_error = NULL, "
			    "delivered_at = ?2, payload = json_remove(payload, "
			    "'$.keys') WHERE event_id = ?1 AND status = 'pending'",
		    &q, err))
		return AS_ESTORE;
	sqlite3_bind_int64(q, 1, event_id);
	sqlite3_bind_text(
		q, 2, error ? error : as_iso8601(as_now(), now, sizeof(now)),
		-1, SQLITE_TRANSIENT);
	if (sqlite3_step(q) != SQLITE_DONE)
		ret = as_sq_fail(s, err, "outbox: marking an event");
	sqlite3_finalize(q);
	if (ret || error)
		return ret;
	if (as_sq_prepare(
		    s,
		    "DELETE FROM atomsync_outbox WHERE status = 'delivered' "
		    "AND delivered_at < ?1",
		    &q, err))
		return AS_ESTORE;
	sqlite3_bind_text(
		q, 1, as_iso8601(as_now() - KEEP_DELIVERED_S, old, sizeof(old)),
		-1, SQLITE_TRANSIENT);
	if (sqlite3_step(q) != SQLITE_DONE)
		ret = as_sq_fail(s, err,
				 "outbox: removing old delivered events");
	sqlite3_finalize(q);
	return ret;
}
