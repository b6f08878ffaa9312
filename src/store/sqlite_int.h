/*
 * Private to the SQLite store: its state and the helpers its files share
 * (sqlite.c: connection, statements, status; sqlite_lease.c: leases;
 * sqlite_run.c: run records; sqlite_table.c: tables and the staging's
 * preparation; sqlite_stage.c: staging and the live scan; sqlite_publish.c:
 * the publish).
 */
#ifndef AS_STORE_SQLITE_INT_H
#define AS_STORE_SQLITE_INT_H

#include <stddef.h>
#include <sqlite3.h>

#include "store/history.h"
#include "store/sql.h"
#include "store/sql_ops.h"
#include "store/sql_scan.h"
#include "store/store.h"
#include "util/buf.h"

typedef struct sq_store {
	as_store base;
	sqlite3 *db;
	char *path;
} sq_store;

typedef struct sq_run {
	char *live_q; /* "table", quoted */
	char *stage;  /* staging table name, unquoted; NULL until prepared */
	char *stage_q;
	int live_exists; /* the live table existed when staging began */
	int live_has_rows;
	int64_t stage_base; /* published_run when the staging began */
	char *spans;	    /* the staging's spans table ("<stage>_spans") */
	char *spans_q;
	char *gone_q; /* "<stage>_gone": the publish's deletions, with spans */
	int gone;     /* the publish's deletions are in gone_q */
	sqlite3_stmt *ins, *look_live, *look_stage, *fence, *save, *ins_span;
	size_t live_ncols;  /* the live table's columns (mapped ones) */
	size_t stage_ncols; /* the columns r->ins inserts */
} sq_run;
/* The shared code allocates the run and sets its live_q (sql.h, run_size). */
_Static_assert(offsetof(sq_run, live_q) == 0, "live_q first");

int as_sq_fail(sq_store *s, as_error *err, const char *what);
/* The busy handler of every connection (see sqlite.c). */
int as_sq_busy(void *ud, int n);
int as_sq_exec(sq_store *s, const char *sql, as_error *err);
int as_sq_txn(sq_store *s, const char *sql, const char *what, as_error *err);
int as_sq_prepare(sq_store *s, const char *sql, sqlite3_stmt **st,
		  as_error *err);
void as_sq_rollback(sq_store *s);
void as_sq_bind_text(sqlite3_stmt *st, int i, const char *v);
/* A run record's counts as parameters i..i+4: seen, inserted, updated,
 * unchanged, deleted. */
void as_sq_bind_counts(sqlite3_stmt *st, int i, const as_counts *c);
void as_sq_bind_val(sqlite3_stmt *st, int i, const as_val *v);
int as_sq_query_int(sq_store *s, const char *sql, const char *arg, int64_t *out,
		    as_error *err);
int as_sq_table_exists(sq_store *s, const char *name, int *exists,
		       as_error *err);
int as_sq_fence(sq_store *s, sqlite3_stmt **cache, const char *dataset,
		int64_t token, int64_t ttl_ms, as_error *err);
int as_sq_drop_table(sq_store *s, const char *name, as_error *err);
int as_sq_drop_stage(sq_store *s, const char *stage, as_error *err);
/* A run's staging names (store/sql.h, as_sql_txn.stage_names). */
int as_sq_stage_names(void *run, const char *stage);
const char *as_sq_sql_type(as_type t);
/* This connection as the shared SQL drives it (store/sql.h). */
void as_sq_sql(sq_store *s, as_sql *q);
/* Its transactions and run records (sqlite_run.c). */
extern const as_sql_txn as_sq_txn_ops;
/* The driver's bound statement (sqlite_table.c; as_sql_txn.exec_out). */
int as_sq_exec_out(void *conn, const char *sql, const as_val *v,
		   const as_type *ty, size_t n, int64_t *id, int64_t *changes,
		   const char *what, as_error *err);
/* The run's tables as the shared SQL sees them. */
void as_sq_run_view(const sq_run *r, as_sql_run *out);
int as_sq_rowid_key(const as_table *t);
char *as_sq_create_sql(const as_table *t, const char *name);
const char *as_sq_col_type(const as_col *c);
as_type as_sq_type_of_decl(const char *decl);
/* An inferring spec: adopt the table's columns (store/sqlite_schema.c). */
int as_sq_adopt_table(sq_store *s, as_table *t, const char *name, int stage,
		      size_t *nuser, as_error *err);
int as_sq_prepare_insert(sq_store *s, as_run_ctx *rc, as_error *err);
int as_sq_run_schema_fill(sq_store *s, as_run_info *v, size_t n, as_error *err);
int as_sq_check_table(sq_store *s, as_table *t, const char *name,
		      as_error *err);
/* The store's operations (store.h) as as_sq_<op>, declared by store/sql_ops.h:
 * leases (sqlite_lease.c), run records (sqlite_run.c), tables (sqlite_table.c),
 * staging and the live scan (sqlite_stage.c), the publish (sqlite_publish.c),
 * the outbox (sqlite_outbox.c), history and rollback (sqlite_history.c,
 * sqlite_rollback.c). */
AS_SQL_STORE_OPS_DECLARE(sq);

/*
 * Spans (store/sqlite_spans.c; store.h, AS_ROW_SPAN).  The staging keeps
 * them in "<stage>_spans" (lo keys, hi keys, n).  In the publish
 * transaction, before the counts, as_sq_spans_resolve either takes them as
 * the unchanged rows they stand for, reading only the live rows between
 * spans (sp->active; in full mode the deletions go to "<stage>_gone", a
 * table of the publish transaction, and r->gone is set), or, where a span
 * cannot be trusted or the publish needs each row, stages the rows they stand
 * for one by one, so the publish goes on exactly as if no span had been made.
 */
typedef as_sql_spans sq_spans; /* store/sql.h */

/* "(k1, k2) IN (SELECT k1, k2 FROM <stage>_gone)" */
void as_sq_add_gone_filter(as_buf *b, const as_table *t, const sq_run *r);
int as_sq_stage_span(sq_store *s, as_run_ctx *rc, const as_row *row,
		     as_error *err);
int as_sq_spans_resolve(sq_store *s, as_run_ctx *rc, sq_spans *sp,
			as_error *err);

/*
 * History (store/sqlite_history.c), which the publish and the rollback
 * (store/sqlite_rollback.c) both write: its shape checked and evolved, its
 * metadata read, and the steps around a change of the live table.
 */
int as_sq_buf_exec(sq_store *s, as_buf *b, as_error *err);
int as_sq_buf_exec_int(sq_store *s, as_buf *b, int64_t v, int64_t *changes,
		       as_error *err);
/* Around a change of the live table (live_q, which must exist), in its
 * transaction: begin puts the SCD2 triggers in place (c: the counts before
 * the change), end writes the snapshot or new versions, the history's
 * metadata and its retention.  Both do nothing when po->history is none. */
int as_sq_history_begin(sq_store *s, as_run_ctx *rc, const as_publish_opts *po,
			const as_counts *c, const char *live_q, as_error *err);
int as_sq_history_end(sq_store *s, as_run_ctx *rc, const as_publish_opts *po,
		      const char *live_q, as_error *err);
/* The history's own column types (the dialect's hist). */
extern const as_hist_types as_sq_hist_types;
int as_sq_hist_meta_read(sq_store *s, const char *dataset, as_hist_meta *m,
			 as_error *err);

/*
 * The outbox (store/sqlite_outbox.c, invariant 7): how this store records
 * the events the shared code builds (store/sql_outbox.c, as_sq_sql fills
 * as_sql.outbox with it), and the publish's hook, after the guards and
 * before it touches the live table (as_sql_outbox_publish).
 */
extern const as_sql_outbox_ops as_sq_outbox_ops;
int as_sq_outbox_publish(sq_store *s, as_run_ctx *rc, const as_counts *c,
			 as_error *err);

#endif
