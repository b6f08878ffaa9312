/*
 * The PostgreSQL store's rollback (DESIGN.md, history): one fenced
 * transaction restores the live table to its content after a run, from
 * <table>_history, recorded as a run of its own with its outbox events
 * (store/sql_rollback.c); here what PostgreSQL does its own way.
 */
#include "store/postgres_int.h"
#include "util/str.h"

/* ---- rollback ---- */

/* The live table is created when missing, not checked. */
static int rb_live(void *conn, as_table *t, int exists, as_error *err)
{
	return exists ? 0 : as_pg_create_table(conn, t, t->table, 0, err);
}

/* The history's rows from the target (the restored rows marked). */
static int rb_hist_after(void *conn, as_run_ctx *rc, const as_publish_opts *po,
			 const as_counts *c, const char *live_q, as_error *err)
{
	(void)live_q;
	return as_pg_history_write(conn, rc, po, c, "pg_temp._atomsync_target",
				   err);
}

/* The cursor as the engine's text of its type, compared byte-wise. */
static void rb_cursor_max(as_buf *b, const as_col *col)
{
	as_buf max = AS_BUF_INIT;

	as_buf_adds(&max, "max(");
	as_buf_add_ident(&max, col->name);
	as_buf_adds(&max, col->type == AS_TYPE_TEXT ? " COLLATE \"C\")" : ")");
	as_pg_text_expr(b, as_buf_cstr(&max), col->type);
	as_buf_free(&max);
}

/* The state row is taken FOR UPDATE (as_pg_txn); the temp tables go with
 * the commit (ON COMMIT DROP). */
static const as_sql_rollback_ops pg_rollback = {
	.live = rb_live,
	.hist_after = rb_hist_after,
	.cursor_max = rb_cursor_max,
	.prefix = 1,
};

int as_pg_history_rollback(as_store *st, as_run_ctx *rc,
			   const as_publish_opts *po, int64_t to_run,
			   as_counts *c, as_error *err)
{
	pg_store *s = (pg_store *)st;
	as_sql q;

	as_pg_drain(s, NULL);
	as_pg_sql(s, &q);
	return as_sql_history_rollback(&q, &pg_rollback, rc, po, to_run, c,
				       err);
}
