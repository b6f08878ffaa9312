/*
 * The PostgreSQL store's outbox (invariant 7): inside the publish
 * transaction, the rows the publish changes go into a temp table and become
 * one event per run and target in atomsync_outbox, and `notify` is sent with
 * pg_notify() (PostgreSQL delivers it at commit, never before).  After
 * commit the drain (effects/outbox.c) lists and marks events here.  Keys are
 * rendered by SQL expressions over the rows; template text goes as parameters.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/outbox.h"
#include "store/postgres_int.h"
#include "store/sql.h"
#include "util/str.h"

#define FETCH_ROWS 20000

static const char *OUTBOX_SCHEMA =
	"CREATE TABLE IF NOT EXISTS atomsync_outbox("
	" event_id bigserial PRIMARY KEY,"
	" run_id bigint NOT NULL, dataset text NOT NULL,"
	" target text NOT NULL CHECK (target IN ('redis', 'webhook')),"
	" payload json NOT NULL,"
	" status text NOT NULL DEFAULT 'pending'"
	"  CHECK (status IN ('pending', 'delivered')),"
	" attempts integer NOT NULL DEFAULT 0, last_error text,"
	" created_at timestamptz NOT NULL DEFAULT now(), delivered_at timestamptz);"
	"CREATE INDEX IF NOT EXISTS atomsync_outbox_pending"
	" ON atomsync_outbox(dataset, event_id) WHERE status = 'pending';";

static int outbox_exists(pg_store *s, int *exists, as_error *err)
{
	int64_t have;

	if (as_pg_int(
		    s,
		    "SELECT (to_regclass('atomsync_outbox') IS NOT NULL)::int",
		    NULL, &have, "outbox: reading the schema", err))
		return err->code;
	*exists = have != 0;
	return 0;
}

/* In the caller's transaction; concurrent first publishers serialize on
 * the schema's advisory lock (CREATE IF NOT EXISTS races on the catalog). */
static int ensure_outbox(void *conn, as_error *err)
{
	pg_store *s = conn;
	int exists = 0;

	if (outbox_exists(s, &exists, err))
		return err->code;
	if (exists)
		return 0;
	return as_pg_exec(s, "SELECT pg_advisory_xact_lock(2053462381)", NULL,
			  NULL, "outbox: creating the table", err) ||
			       as_pg_exec(s, OUTBOX_SCHEMA, NULL, NULL,
					  "outbox: creating the table", err)
		       ? AS_ESTORE
		       : 0;
}

static int insert_event(void *conn, const as_run_ctx *rc, const char *target,
			const char *payload, size_t len, as_error *err)
{
	as_pg_params p;

	(void)len; /* payload is a C string */
	as_pg_params_init(&p);
	as_pg_param_int(&p, rc->run_id);
	as_pg_param_text(&p, rc->table->dataset);
	as_pg_param_text(&p, target);
	as_pg_param_text(&p, payload);
	return as_pg_exec(
		conn,
		"INSERT INTO atomsync_outbox(run_id, dataset, target, "
		"payload) VALUES($1, $2, $3, $4::json)",
		&p, NULL, "outbox: recording an event", err);
}

/* A cursor over the rendered keys: DECLARE ... FOR SELECT k FROM (SELECT
 * expr AS k FROM changed UNION ALL SELECT ...) x WHERE k IS NOT NULL.
 * *any = 0 when no template has a column. */
static int keys_cursor(pg_store *s, const as_tpl *v, size_t n,
		       const as_table *t, const char *changed_q, int *any,
		       as_error *err)
{
	as_buf b = AS_BUF_INIT;
	as_pg_params p;
	int rc;

	*any = 0;
	as_pg_params_init(&p);
	as_buf_adds(
		&b,
		"DECLARE _atomsync_keys NO SCROLL CURSOR FOR SELECT k FROM (");
	for (size_t i = 0; i < n; i++) {
		if (v[i].pattern || v[i].fixed)
			continue;
		as_buf_adds(&b, (*any)++ ? " UNION ALL SELECT " : "SELECT ");
		for (size_t k = 0; k < v[i].nparts; k++) {
			as_buf_adds(&b, k ? " || " : "");
			if (v[i].parts[k].column) {
				as_buf bq = AS_BUF_INIT;
				const as_col *c = &t->cols[v[i].parts[k].index];

				as_buf_add_ident(&bq, c->name);
				as_pg_text_expr(&b, as_buf_cstr(&bq), c->type);
				as_buf_free(&bq);
			} else {
				if (p.n == AS_PG_MAXP) {
					as_buf_free(&b);
					return as_error_set(
						err, AS_EUSAGE,
						"dataset %s: the "
						"invalidate templates have more than "
						"%d literal parts",
						t->dataset, AS_PG_MAXP);
				}
				as_pg_param_text(&p, v[i].parts[k].text);
				as_buf_printf(&b, "$%d::text", p.n);
			}
		}
		as_buf_printf(&b, " AS k FROM %s", changed_q);
	}
	as_buf_adds(&b, ") x WHERE k IS NOT NULL");
	if (!*any) {
		as_buf_free(&b);
		return 0;
	}
	rc = as_pg_exec(s, as_buf_cstr(&b), &p, NULL, "outbox: rendering keys",
			err);
	as_buf_free(&b);
	return rc;
}

/* The rendered keys to key(ud, ...), FETCH_ROWS at a time. */
static int outbox_keys(void *conn, const as_outbox_plan *plan,
		       const as_table *t, const char *changed_q,
		       as_sql_key_fn key, void *ud, as_error *err)
{
	pg_store *s = conn;
	PGresult *res = NULL;
	int ret, any = 0;

	if ((ret = keys_cursor(s, plan->tpls, plan->ntpls, t, changed_q, &any,
			       err)) ||
	    !any)
		return ret;
	for (;;) {
		int rows;

		if ((ret = as_pg_exec(s, "FETCH 20000 FROM _atomsync_keys",
				      NULL, &res, "outbox: rendering keys",
				      err)))
			return ret;
		rows = PQntuples(res);
		for (int r = 0; r < rows; r++)
			if ((ret = key(ud, PQgetvalue(res, r, 0),
				       (size_t)PQgetlength(res, r, 0), err)))
				goto done;
		PQclear(res);
		res = NULL;
		if (rows < FETCH_ROWS)
			break;
	}
	ret = as_pg_exec(s, "CLOSE _atomsync_keys", NULL, NULL,
			 "outbox: rendering keys", err);
done:
	PQclear(res);
	return ret;
}

/* pg_notify(): PostgreSQL delivers it at commit, never before. */
static int outbox_notify(void *conn, const char *channel, const char *body,
			 as_error *err)
{
	as_pg_params p;

	as_pg_params_init(&p);
	as_pg_param_text(&p, channel);
	as_pg_param_text(&p, body);
	return as_pg_exec(conn, "SELECT pg_notify($1, $2)", &p, NULL,
			  "outbox: NOTIFY", err);
}

const as_sql_outbox_ops as_pg_outbox_ops = {
	.ensure = ensure_outbox,
	.insert = insert_event,
	.keys = outbox_keys,
	.notify = outbox_notify,
};

int as_pg_outbox_publish(pg_store *s, as_run_ctx *rc, const as_counts *c,
			 int live, as_error *err)
{
	as_sql_run sr;
	as_sql q;

	as_pg_sql(s, &q);
	as_pg_run_view(rc, &sr);
	return as_sql_outbox_publish(&q, &sr, rc, c, live, err);
}

/* ---- after commit: list and mark ---- */

static char *cell(const PGresult *res, int r, int c)
{
	return PQgetisnull(res, r, c) ? NULL : as_strdup(PQgetvalue(res, r, c));
}

int as_pg_outbox_list(as_store *st, const char *dataset, int64_t after_id,
		      size_t limit, unsigned flags, as_outbox_event **out,
		      size_t *n, as_error *err)
{
	pg_store *s = (pg_store *)st;
	as_outbox_event *v;
	as_buf b = AS_BUF_INIT;
	as_pg_params p;
	PGresult *res;
	as_sql q;
	int exists = 0, rows, ret;

	*out = NULL;
	*n = 0;
	as_pg_drain(s, NULL);
	if ((ret = outbox_exists(s, &exists, err)) || !exists)
		return ret;
	as_pg_sql(s, &q);
	as_sql_outbox_list_sql(q.d, flags, &b);
	as_pg_params_init(&p);
	as_pg_param_text(&p, dataset);
	as_pg_param_int(&p, after_id);
	if (limit)
		as_pg_param_int(&p, (int64_t)limit);
	else
		as_pg_param_text(&p, NULL);
	ret = as_pg_exec(s, as_buf_cstr(&b), &p, &res, "outbox: listing events",
			 err);
	as_buf_free(&b);
	if (ret)
		return ret;
	rows = PQntuples(res);
	v = calloc(rows ? (size_t)rows : 1, sizeof(*v));
	if (!v) {
		PQclear(res);
		return as_error_set(err, AS_ENOMEM, "out of memory");
	}
	for (int r = 0; r < rows; r++) {
		as_outbox_event *e = &v[r];

		e->event_id = strtoll(PQgetvalue(res, r, 0), NULL, 10);
		e->run_id = strtoll(PQgetvalue(res, r, 1), NULL, 10);
		e->dataset = cell(res, r, 2);
		e->target = cell(res, r, 3);
		e->status = cell(res, r, 4);
		e->attempts = strtoll(PQgetvalue(res, r, 5), NULL, 10);
		e->last_error = cell(res, r, 6);
		e->created_at = cell(res, r, 7);
		e->delivered_at = cell(res, r, 8);
		e->keys = strtoll(PQgetvalue(res, r, 9), NULL, 10);
		e->payload = cell(res, r, 10);
		if (!e->dataset || !e->target || !e->status ||
		    ((flags & AS_OUTBOX_PAYLOAD) && !e->payload)) {
			PQclear(res);
			as_outbox_events_free(v, (size_t)rows);
			return as_error_set(err, AS_ENOMEM, "out of memory");
		}
	}
	PQclear(res);
	*out = v;
	*n = (size_t)rows;
	return 0;
}

/* A delivered event keeps its summary but drops its key list (it may be
 * megabytes); delivered events older than a week are removed. */
int as_pg_outbox_mark(as_store *st, int64_t event_id, const char *error,
		      as_error *err)
{
	pg_store *s = (pg_store *)st;
	as_pg_params p;

	as_pg_drain(s, NULL);
	as_pg_params_init(&p);
	as_pg_param_int(&p, event_id);
	if (error) {
		as_pg_param_text(&p, error);
		return as_pg_exec(
			s,
			"UPDATE atomsync_outbox SET attempts = attempts + 1, "
			"last_error = $2 WHERE event_id = $1 AND "
			"status = 'pending'",
			&p, NULL, "outbox: marking an event", err);
	}
	if (as_pg_exec(s,
		       "UPDATE atomsync_outbox SET status = 'delivered', "
		       "attempts = attempts + 1, last_error = NULL, "
		       "delivered_at = clock_timestamp(), "
		       "payload = (payload::jsonb - 'keys')::json "
		       "WHERE event_id = $1 AND status = 'pending'",
		       &p, NULL, "outbox: marking an event", err))
		return err->code;
	return as_pg_exec(
		s,
		"DELETE FROM atomsync_outbox WHERE status = 'delivered' "
		"AND delivered_at < now() - interval '7 days'",
		NULL, NULL, "outbox: removing old delivered events", err);
}
