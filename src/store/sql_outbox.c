/*
 * The outbox's SQL both backends share (invariant 7): inside the publish
 * (or rollback) transaction, before the live table changes, the rows it
 * will change are collected into a temp table and checked against its own
 * counts; the events are built from them here and recorded through the
 * backend's as_sql_outbox_ops, which binds and reads rows its own way.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/sql.h"
#include "store/sql_ops.h"

#include "util/crash.h"
#include "util/str.h"

#define WHAT "outbox: collecting changed rows"
#define CHANGED_LEN 64

unsigned char *as_sql_outbox_need(const as_outbox_plan *plan, const as_table *t)
{
	unsigned char *need = calloc(t->ncols ? t->ncols : 1, 1);

	for (size_t i = 0; need && i < plan->ntpls; i++)
		for (size_t k = 0; k < plan->tpls[i].nparts; k++)
			if (plan->tpls[i].parts[k].column)
				need[plan->tpls[i].parts[k].index] = 1;
	return need;
}

int as_sql_outbox_agree(const int64_t n[3], const as_counts *c, as_error *err)
{
	if (n[0] == c->inserted && n[1] == c->updated && n[2] == c->deleted)
		return 0;
	return as_error_set(
		err, AS_ESTORE,
		"outbox: the changed rows (%lld "
		"inserted, %lld updated, %lld deleted) disagree with "
		"the publish counts (%lld, %lld, %lld); nothing was "
		"published",
		(long long)n[0], (long long)n[1], (long long)n[2],
		(long long)c->inserted, (long long)c->updated,
		(long long)c->deleted);
}

void as_sql_outbox_summary(as_outbox_summary *sum, const as_run_ctx *rc,
			   const int64_t n[3])
{
	memset(sum, 0, sizeof(*sum));
	sum->dataset = rc->table->dataset;
	sum->run_id = rc->run_id;
	sum->kind = rc->kind;
	sum->inserted = n[0];
	sum->updated = n[1];
	sum->deleted = n[2];
}

/* <temp>."_atomsync_changed" */
static void changed_name(const as_sql *q, char out[CHANGED_LEN])
{
	snprintf(out, CHANGED_LEN, "%s." AS_SQL_CHANGED, q->d->temp);
}

/* "a", "b" or s."a", s."b": the columns the templates name. */
static void add_cols(as_buf *b, const as_table *t, const unsigned char *need,
		     const char *prefix)
{
	for (size_t i = 0; i < t->ncols; i++) {
		if (!need[i])
			continue;
		if (prefix)
			as_buf_printf(b, "%s.", prefix);
		as_buf_add_ident(b, t->cols[i].name);
		as_buf_adds(b, ", ");
	}
}

/* Fill the temp table before the publish touches the live table:
 * changed staged rows as insert/update, the old values of updated rows
 * when a template names a non-key column, and the rows to be deleted. */
int as_sql_outbox_collect(const as_sql *q, const as_sql_run *r,
			  const as_table *t, const as_counts *c, int live,
			  const unsigned char *need, int need_before,
			  as_error *err)
{
	as_buf b = AS_BUF_INIT;
	char changed_q[CHANGED_LEN];
	int ret;

	changed_name(q, changed_q);
	as_buf_printf(
		&b,
		"DROP TABLE IF EXISTS %s; CREATE TEMP TABLE " AS_SQL_CHANGED
		"(",
		changed_q);
	for (size_t i = 0; i < t->ncols; i++) {
		if (!need[i])
			continue;
		as_buf_add_ident(&b, t->cols[i].name);
		as_buf_printf(&b, " %s, ", q->d->type(t->cols[i].type));
	}
	as_buf_printf(&b, "\"_atomsync_op\" %s NOT NULL)%s", q->d->text_type,
		      q->d->temp_suffix);
	if ((ret = as_sql_exec_buf(q, &b, WHAT, err)))
		goto done;
	if (r->stage_q && c->inserted + c->updated > 0) {
		as_buf_printf(&b, "INSERT INTO %s SELECT ", changed_q);
		add_cols(&b, t, need, r->stage_q);
		/* The op of each row: looked up only when the run both inserts
		 * and updates (a full reload of changed rows is all 'update').
		 */
		if (c->inserted == 0) {
			as_buf_adds(&b, "'update'");
		} else if (live && c->live_before > 0 && c->updated > 0) {
			as_buf_printf(
				&b, "CASE WHEN EXISTS (SELECT 1 FROM %s WHERE ",
				r->live_q);
			as_sql_key_match(&b, t, r->live_q, r->stage_q);
			as_buf_adds(&b, ") THEN 'update' ELSE 'insert' END");
		} else {
			as_buf_adds(&b, "'insert'");
		}
		as_buf_printf(&b,
			      " FROM %s WHERE %s.\"_atomsync_run\" IS NOT NULL",
			      r->stage_q, r->stage_q);
		if (t->mode == AS_MODE_APPEND && live && c->live_before > 0) {
			as_buf_printf(
				&b, " AND NOT EXISTS (SELECT 1 FROM %s WHERE ",
				r->live_q);
			as_sql_key_match(&b, t, r->live_q, r->stage_q);
			as_buf_adds(&b, ")");
		}
		if ((ret = as_sql_exec_buf(q, &b, WHAT, err)))
			goto done;
	}
	if (need_before && r->stage_q && live && c->updated > 0) {
		as_buf_printf(&b, "INSERT INTO %s SELECT ", changed_q);
		add_cols(&b, t, need, r->live_q);
		as_buf_printf(&b, "'before' FROM %s JOIN %s ON ", r->live_q,
			      r->stage_q);
		as_sql_key_match(&b, t, r->live_q, r->stage_q);
		as_buf_printf(&b, " WHERE %s.\"_atomsync_run\" IS NOT NULL",
			      r->stage_q);
		if ((ret = as_sql_exec_buf(q, &b, WHAT, err)))
			goto done;
	}
	if (live && c->deleted > 0) {
		as_buf_printf(&b, "INSERT INTO %s SELECT ", changed_q);
		add_cols(&b, t, need, r->live_q);
		as_buf_printf(&b, "'delete' FROM %s WHERE ", r->live_q);
		as_sql_add_delete_filter(q, &b, t, r);
		ret = as_sql_exec_buf(q, &b, WHAT, err);
	}
done:
	as_buf_free(&b);
	return ret;
}

/* Inserted, updated and deleted rows of changed_q ('before' rows: the old
 * values of updated rows, rendered but not counted). */
static int changed_counts(const as_sql *q, const char *changed_q, int64_t n[3],
			  as_error *err)
{
	as_buf b = AS_BUF_INIT;
	int ret;

	as_buf_printf(&b,
		      "SELECT count(CASE WHEN \"_atomsync_op\" = 'insert' THEN "
		      "1 END), count(CASE WHEN \"_atomsync_op\" = 'update' "
		      "THEN 1 END), count(CASE WHEN \"_atomsync_op\" = "
		      "'delete' THEN 1 END) FROM %s",
		      changed_q);
	ret = q->query_ints(q->conn, as_buf_cstr(&b), n, 3,
			    "outbox: counting changed rows", err);
	as_buf_free(&b);
	return ret;
}

/* The redis events being built: p, the one open. */
typedef struct redis_events {
	const as_sql *q;
	const as_run_ctx *rc;
	const as_outbox_summary *sum;
	as_payload p;
	int64_t *nkeys;
	int first; /* p is the first event (the one with the patterns) */
} redis_events;

/* Close p, record it and count its keys. */
static int redis_event(redis_events *e, as_error *err)
{
	*e->nkeys += e->p.nkeys;
	if (as_payload_end(&e->p, err))
		return err->code;
	return e->q->outbox->insert(e->q->conn, e->rc, "redis",
				    as_buf_cstr(&e->p.buf), e->p.buf.len, err);
}

static int add_key(void *ud, const char *key, size_t len, as_error *err)
{
	redis_events *e = ud;
	int ret;

	if ((ret = as_payload_add_key(&e->p, key, len, err)) ||
	    !as_payload_full(&e->p))
		return ret;
	if ((ret = redis_event(e, err)))
		return ret;
	as_payload_free(&e->p);
	e->first = 0;
	return as_payload_begin(&e->p, e->sum, e->rc->outbox, 0, err);
}

/* The redis events: the rendered keys, split every AS_OUTBOX_MAX_KEYS;
 * the first event also carries the fixed keys and the patterns. */
static int write_redis(const as_sql *q, const as_run_ctx *rc,
		       const as_outbox_summary *sum, const char *changed_q,
		       int64_t *nkeys, as_error *err)
{
	const as_outbox_plan *plan = rc->outbox;
	const as_tpl *v = plan->tpls;
	redis_events e;
	int ret, npat = 0;

	memset(&e, 0, sizeof(e));
	e.q = q;
	e.rc = rc;
	e.sum = sum;
	e.nkeys = nkeys;
	e.first = 1;
	if ((ret = as_payload_begin(&e.p, sum, plan, 1, err)))
		goto done;
	for (size_t i = 0; i < plan->ntpls; i++) {
		npat += v[i].pattern;
		if (v[i].fixed &&
		    (ret = as_payload_add_key(&e.p, v[i].parts[0].text,
					      strlen(v[i].parts[0].text), err)))
			goto done;
	}
	if ((ret = q->outbox->keys(q->conn, plan, rc->table, changed_q, add_key,
				   &e, err)))
		goto done;
	/* Nothing to do for Redis (every key NULL, no pattern): no event. */
	if (e.p.nkeys || (e.first && npat))
		ret = redis_event(&e, err);
	else
		*nkeys += e.p.nkeys;
done:
	as_payload_free(&e.p);
	return ret;
}

int as_sql_outbox_write(const as_sql *q, const as_run_ctx *rc, as_error *err)
{
	const as_outbox_plan *plan = rc->outbox;
	as_outbox_summary sum;
	int64_t n[3], nkeys = 0;
	char changed_q[CHANGED_LEN], *body = NULL;
	int ret;

	if (!as_outbox_plan_any(plan))
		return 0;
	changed_name(q, changed_q);
	if ((ret = changed_counts(q, changed_q, n, err)))
		return ret;
	if (n[0] + n[1] + n[2] == 0)
		return 0;
	if ((plan->ntpls || plan->webhook) &&
	    (ret = q->outbox->ensure(q->conn, err)))
		return ret;
	as_sql_outbox_summary(&sum, rc, n);
	if (plan->ntpls &&
	    (ret = write_redis(q, rc, &sum, changed_q, &nkeys, err)))
		return ret;
	if (plan->webhook || plan->notify) {
		body = as_outbox_summary_json(&sum, plan, nkeys);
		if (!body)
			return as_error_set(err, AS_ENOMEM, "out of memory");
	}
	if (plan->webhook)
		ret = q->outbox->insert(q->conn, rc, "webhook", body,
					strlen(body), err);
	if (!ret && plan->notify && q->outbox->notify)
		ret = q->outbox->notify(q->conn, plan->notify, body, err);
	free(body);
	if (!ret)
		as_crash_point("outbox.written");
	return ret;
}

int as_sql_outbox_publish(const as_sql *q, const as_sql_run *r,
			  const as_run_ctx *rc, const as_counts *c, int live,
			  as_error *err)
{
	const as_outbox_plan *plan = rc->outbox;
	const as_table *t = rc->table;
	unsigned char *need = NULL;
	char changed_q[CHANGED_LEN];
	as_buf drop = AS_BUF_INIT;
	int64_t n[3];
	int ret;

	if (!as_outbox_plan_any(plan) ||
	    c->inserted + c->updated + c->deleted == 0)
		return 0;
	if (!(need = as_sql_outbox_need(plan, t)))
		return as_error_set(err, AS_ENOMEM, "out of memory");
	changed_name(q, changed_q);
	if ((ret = as_sql_outbox_collect(q, r, t, c, live, need, plan->before,
					 err)) ||
	    (ret = changed_counts(q, changed_q, n, err)) ||
	    (ret = as_sql_outbox_agree(n, c, err)) ||
	    (ret = as_sql_outbox_write(q, rc, err)))
		goto done;
	as_buf_printf(&drop, "DROP TABLE %s", changed_q);
	ret = as_sql_exec_buf(q, &drop, WHAT, err);
done:
	as_buf_free(&drop);
	free(need);
	return ret;
}

/* (p1 IS NULL OR dataset = p1): p1 the listing's dataset. */
static void dataset_filter(as_buf *b, const as_sql_dialect *d)
{
	as_buf_adds(b, "(");
	d->param(b, 1, AS_TYPE_TEXT);
	as_buf_adds(b, " IS NULL OR dataset = ");
	d->param(b, 1, AS_TYPE_TEXT);
	as_buf_adds(b, ")");
}

void as_sql_outbox_list_sql(const as_sql_dialect *d, unsigned flags, as_buf *b)
{
	/* The dataset filter names $1 twice; "$2 IS NOT NULL" only gives
	 * PostgreSQL $2's type where the listing does not need it. */
	as_buf_adds(b, "SELECT event_id, run_id, dataset, target, status, "
		       "attempts, last_error, ");
	d->iso_time(b, "created_at");
	as_buf_adds(b, ", ");
	d->iso_time(b, "delivered_at");
	as_buf_adds(b, ", ");
	d->json_int(b, "payload", "keys_count");
	as_buf_printf(b, ", %s FROM atomsync_outbox WHERE ",
		      flags & AS_OUTBOX_PAYLOAD ? "payload" : "NULL");
	dataset_filter(b, d);
	if (flags & AS_OUTBOX_PENDING) {
		as_buf_adds(b, " AND status = 'pending' AND event_id > ");
		d->param(b, 2, AS_TYPE_INTEGER);
		as_buf_adds(b, " ORDER BY event_id LIMIT ");
		d->param(b, 3, AS_TYPE_INTEGER);
		return;
	}
	as_buf_adds(b, " AND (status = 'pending' OR event_id IN (SELECT "
		       "event_id FROM atomsync_outbox WHERE status = "
		       "'delivered' AND ");
	dataset_filter(b, d);
	as_buf_adds(b, " ORDER BY event_id DESC LIMIT ");
	d->param(b, 3, AS_TYPE_INTEGER);
	as_buf_adds(b, ")) AND ");
	d->param(b, 2, AS_TYPE_INTEGER);
	as_buf_adds(b, " IS NOT NULL ORDER BY event_id");
}
