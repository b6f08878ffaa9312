/*
 * The SQLite store's rollback (DESIGN.md, history): one fenced transaction
 * restores the live table to its content after a run, from
 * <table>_history, recorded as a run of its own with its outbox events
 * (store/sql_rollback.c); here what SQLite does its own way.
 */
#include <stdlib.h>

#include "store/sqlite_int.h"
#include "util/str.h"

/* ---- rollback ---- */

/* The rollback's commit syncs in full (BEGIN IMMEDIATE holds the write
 * lock to it, as_sq_txn_ops). */
static void rb_durable(void *conn, int on)
{
	as_sq_exec(conn,
		   on ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL",
		   NULL);
}

static int rb_live(void *conn, as_table *t, int exists, as_error *err)
{
	char *sql;
	int ret;

	if (exists)
		return as_sq_check_table(conn, t, t->table, err);
	sql = as_sq_create_sql(t, t->table);
	ret = as_sq_exec(conn, sql, err);
	free(sql);
	return ret;
}

/* The SCD2 triggers before the live table changes, the rows after. */
static int rb_hist_before(void *conn, as_run_ctx *rc, const as_publish_opts *po,
			  const as_counts *c, const char *live_q, as_error *err)
{
	return as_sq_history_begin(conn, rc, po, c, live_q, err);
}

static int rb_hist_after(void *conn, as_run_ctx *rc, const as_publish_opts *po,
			 const as_counts *c, const char *live_q, as_error *err)
{
	(void)c;
	return as_sq_history_end(conn, rc, po, live_q, err);
}

static void rb_cursor_max(as_buf *b, const as_col *col)
{
	as_buf_adds(b, "max(");
	as_buf_add_ident(b, col->name);
	as_buf_adds(b, ")");
}

static const as_sql_rollback_ops sq_rollback = {
	.durable = rb_durable,
	.live = rb_live,
	.hist_before = rb_hist_before,
	.hist_after = rb_hist_after,
	.cursor_max = rb_cursor_max,
	.cleanup = "DROP TABLE temp._atomsync_target; "
		   "DROP TABLE IF EXISTS temp._atomsync_changed",
};

int as_sq_history_rollback(as_store *st, as_run_ctx *rc,
			   const as_publish_opts *po, int64_t to_run,
			   as_counts *c, as_error *err)
{
	as_sql q;

	as_sq_sql((sq_store *)st, &q);
	return as_sql_history_rollback(&q, &sq_rollback, rc, po, to_run, c,
				       err);
}
