/*
 * The store operations (store.h) each SQL backend defines under one scheme of
 * names, as_<p>_<op> (p: pg, sq): declared and put in its as_store_ops by the
 * two macros below, so the list is written once for both backends.
 */
#ifndef AS_STORE_SQL_OPS_H
#define AS_STORE_SQL_OPS_H

#include "store/sql.h"
#include "store/store.h"

/*
 * Why a macro: the prototypes are as_store_ops's fields with a backend's
 * prefix, and were written out twice, once per backend header, where they
 * could drift apart.  Here a new operation is added once; the compiler still
 * checks each backend's definition against these prototypes
 * (-Wmissing-prototypes, conflicting types) and the table's slots against
 * store.h.  The cost: a search for as_pg_publish finds its definition
 * (postgres_publish.c) but no prototype; the backend headers point here.
 */
#define AS_SQL_STORE_OPS_DECLARE(p)                                            \
	int as_##p##_lease_acquire(as_store *st, const char *dataset,          \
				   const char *owner, int64_t ttl_ms,          \
				   int64_t *token, as_error *err);             \
	int as_##p##_lease_renew(as_store *st, const char *dataset,            \
				 int64_t token, int64_t ttl_ms,                \
				 as_error *err);                               \
	int as_##p##_lease_release(as_store *st, const char *dataset,          \
				   int64_t token, as_error *err);              \
	int as_##p##_run_begin(as_store *st, as_run_ctx *rc, as_error *err);   \
	int as_##p##_run_end(as_store *st, as_run_ctx *rc, const char *status, \
			     const char *error, as_error *err);                \
	void as_##p##_run_free(as_store *st, as_run_ctx *rc);                  \
	int as_##p##_describe(as_store *st, as_run_ctx *rc, as_error *err);    \
	int as_##p##_stage_prepare(as_store *st, as_run_ctx *rc,               \
				   as_error *err);                             \
	int as_##p##_stage_discard(as_store *st, as_run_ctx *rc,               \
				   as_error *err);                             \
	int as_##p##_stage_batch(as_store *st, as_run_ctx *rc,                 \
				 const as_batch *b, as_error *err);            \
	int as_##p##_scan_open(as_store *st, as_run_ctx *rc, int *rows,        \
			       as_error *err);                                 \
	int as_##p##_scan_next(as_store *st, as_run_ctx *rc, as_scan_row *out, \
			       as_arena *a, as_error *err);                    \
	int as_##p##_scan_seek(as_store *st, as_run_ctx *rc,                   \
			       const as_val *key, as_error *err);              \
	void as_##p##_scan_close(as_store *st, as_run_ctx *rc);                \
	int as_##p##_publish(as_store *st, as_run_ctx *rc,                     \
			     const as_publish_opts *po, as_counts *c,          \
			     as_error *err);                                   \
	int as_##p##_publish_group(as_store *st, as_store *const *stores,      \
				   as_run_ctx *const *rcs,                     \
				   const as_publish_opts *pos, as_counts *cs,  \
				   size_t n, size_t *bad, as_error *err);      \
	int as_##p##_outbox_list(as_store *st, const char *dataset,            \
				 int64_t after_id, size_t limit,               \
				 unsigned flags, as_outbox_event **out,        \
				 size_t *n, as_error *err);                    \
	int as_##p##_outbox_mark(as_store *st, int64_t event_id,               \
				 const char *error, as_error *err);            \
	int as_##p##_history_rollback(                                         \
		as_store *st, as_run_ctx *rc, const as_publish_opts *po,       \
		int64_t to_run, as_counts *c, as_error *err);                  \
	int as_##p##_history_sample(as_store *st, const as_table *t, size_t n, \
				    as_batch *out, as_error *err);             \
	int as_##p##_history_record_run(                                       \
		as_store *st, const as_table *t, const char *kind,             \
		const char *status, const as_counts *c, const char *error,     \
		double started, int64_t *run_id, as_error *err)

/* An as_store_ops initializer but for .name: those operations, and the
 * backend's own, static in the file holding the table: <p>_close,
 * <p>_runs_list, <p>_status and <p>_table_rows. */
#define AS_SQL_STORE_OPS_INIT(p)                                               \
	.close = p##_close, .lease_acquire = as_##p##_lease_acquire,           \
	.lease_renew = as_##p##_lease_renew,                                   \
	.lease_release = as_##p##_lease_release,                               \
	.run_begin = as_##p##_run_begin, .describe = as_##p##_describe,        \
	.stage_prepare = as_##p##_stage_prepare,                               \
	.stage_discard = as_##p##_stage_discard,                               \
	.stage_batch = as_##p##_stage_batch, .scan_open = as_##p##_scan_open,  \
	.scan_next = as_##p##_scan_next, .scan_seek = as_##p##_scan_seek,      \
	.scan_close = as_##p##_scan_close, .publish = as_##p##_publish,        \
	.publish_group = as_##p##_publish_group, .run_end = as_##p##_run_end,  \
	.run_free = as_##p##_run_free, .runs_list = p##_runs_list,             \
	.status = p##_status, .table_rows = p##_table_rows,                    \
	.outbox_list = as_##p##_outbox_list,                                   \
	.outbox_mark = as_##p##_outbox_mark,                                   \
	.rollback = as_##p##_history_rollback,                                 \
	.sample = as_##p##_history_sample,                                     \
	.record_run = as_##p##_history_record_run

/* ---- written once over as_sql (store/sql_common.c) ---- */

/* table_rows: the live rows of table (-1 when it does not exist). */
int as_sql_table_rows(const as_sql *q, const char *table, int64_t *rows,
		      as_error *err);
/* status's tail: each of the n datasets' rows (v[i].rows, as
 * as_sql_table_rows counts them). */
int as_sql_status_rows(const as_sql *q, as_dataset_status *v, size_t n,
		       as_error *err);

/* outbox_list's statement (store/sql_outbox.c): the events' columns in
 * as_outbox_event's order, of dataset $1 (text; NULL: all), the pending ones
 * after $2 (AS_OUTBOX_PENDING) or every pending one and the delivered ones
 * last, at most $3 (NULL or -1, as the backend binds it: no limit). */
void as_sql_outbox_list_sql(const as_sql_dialect *d, unsigned flags, as_buf *b);

/* After a publish committed (store/sql_publish.c): the staging stage
 * (NULL: none, or the publish made it the live table) dropped by drop over
 * conn; a failure only warns, as the next run drops an orphan. */
void as_sql_drop_stage_after(void *conn,
			     int (*drop)(void *conn, const char *stage,
					 as_error *err),
			     const char *stage);

/* The publish's first checks, in its transaction: the lease is still
 * this run's (invariant 6), and when it staged (stage), the dataset's
 * published run is still base, the run the staging began on
 * (as_sql_check_base; the state row read with the dialect's for_update). */
int as_sql_publish_fence(const as_sql *q, const as_run_ctx *rc,
			 const char *stage, int64_t base, as_error *err);

#endif
