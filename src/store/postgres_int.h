/*
 * Private to the PostgreSQL store (store/postgres*.c): the store and run
 * structs, and the helpers its files use to run SQL with
 * parameters, fence a transaction with the lease, and build SQL text from
 * quoted identifiers.  Values never go into SQL text: only COPY or parameters.
 */
#ifndef AS_STORE_POSTGRES_INT_H
#define AS_STORE_POSTGRES_INT_H

#include <stddef.h>
#include <libpq-fe.h>
#include <pthread.h>

#include "store/history.h"
#include "store/sql.h"
#include "store/sql_ops.h"
#include "store/sql_scan.h"
#include "store/store.h"
#include "util/buf.h"

/* A timestamptz column as ISO 8601 text in UTC, milliseconds. */
#define AS_PG_ISO(col)                                                         \
	"to_char(" col " AT TIME ZONE 'UTC', "                                 \
	"'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

#define COPY_MAX ((size_t)1 << 30) /* bytes: cap of one batch's COPY text */

/* One staging commit, encoded by the engine's thread and committed by the
 * store's (store/postgres_stage.c). */
typedef struct pg_job {
	as_buf data;  /* the rows in COPY text format, capped */
	as_buf where; /* each row's origin, NUL-terminated, in COPY order */
	size_t nrows;
	char *checkpoint; /* owned; NULL: the staging is not resumable yet */
	int64_t seen, rejected;
	as_buf spans; /* AS_ROW_SPAN rows in COPY text format (lo, hi, n) */
	int direct;   /* COPY straight into the staging table */
	int dups;     /* a key repeats within the batch */
} pg_job;

typedef struct pg_store {
	as_store base;
	PGconn *conn;
	/* Staging overlaps the engine's parsing with the server's work: one
	 * job commits on `thread` while the next is encoded. */
	pg_job job[2];
	int next; /* the job[] to encode next */
	pthread_t thread;
	int inflight; /* thread runs job_cur; nothing else uses conn */
	pg_job *job_cur;
	as_run_ctx *job_rc;
	int job_ret;
	as_error job_err;
	uint64_t *dup_slot; /* open-addressing set of key hashes */
	uint32_t *dup_row;
	size_t dup_cap;
} pg_store;

typedef struct pg_run {
	char *live_q; /* the live table, quoted */
	char *stage;  /* staging table name, unquoted; NULL until prepared */
	char *stage_q;
	char *batch_q;	 /* the session's temp batch table, quoted */
	int live_exists; /* the live table existed when staging began */
	int live_has_rows;
	int64_t stage_base; /* published_run when the staging began */
	int adopted; /* the publish renamed the staging into the live table */
	int gone;    /* the publish's deletions are in its gone table (spans,
		      * as_pg_gone_filter) */
	/* The live table's key -> _atomsync_hash, for an integer key: the
	 * client classifies rows itself (store/postgres_stage.c). */
	int64_t *live_key;
	int64_t *live_hash;
	unsigned char *live_used;
	size_t live_cap;     /* slots, a power of two; 0: no map */
	int live_map_wanted; /* to read before the next parsed row is staged */
	size_t live_ncols;   /* the live table's columns (mapped ones) */
	as_type *stage_type; /* the staging's type of each column ... */
	size_t stage_ncols;  /* ... of these (the rest: ALTER ADD COLUMN) */
} pg_run;
/* The shared code allocates the run and sets its live_q (sql.h, run_size). */
_Static_assert(offsetof(pg_run, live_q) == 0, "live_q first");

/* Text parameters for PQexecParams; numbers are formatted into num[]. */
#define AS_PG_MAXP 16
typedef struct as_pg_params {
	const char *v[AS_PG_MAXP];
	int len[AS_PG_MAXP];
	char num[AS_PG_MAXP][32];
	int n;
} as_pg_params;

void as_pg_params_init(as_pg_params *p);
void as_pg_param_text(as_pg_params *p, const char *s);
void as_pg_param_int(as_pg_params *p, int64_t v);
/* A typed value (as_val) as text for a column of type t; text values are
 * copied into the arena a so they are NUL-terminated. */
int as_pg_param_val(as_pg_params *p, const as_val *v, as_type t, as_arena *a);

/* Run sql (with params when p is not NULL) and check the result; *out (if
 * not NULL) receives it for the caller to PQclear.  what names the step
 * for the message. */
int as_pg_exec(pg_store *s, const char *sql, const as_pg_params *p,
	       PGresult **out, const char *what, as_error *err);
/* A statement returning at most one integer; *out = 0 when no row. */
int as_pg_int(pg_store *s, const char *sql, const as_pg_params *p, int64_t *out,
	      const char *what, as_error *err);
/* As as_pg_exec, then as_buf_reset(sql); *changes: rows affected. */
int as_pg_exec_buf(pg_store *s, as_buf *sql, const as_pg_params *p,
		   int64_t *changes, const char *what, as_error *err);
int as_pg_int_buf(pg_store *s, as_buf *sql, const as_pg_params *p, int64_t *out,
		  const char *what, as_error *err);
int as_pg_fail(pg_store *s, const PGresult *res, const char *what,
	       as_error *err);

int as_pg_begin(pg_store *s, int staging, as_error *err);
int as_pg_commit(pg_store *s, const char *what, as_error *err);
void as_pg_rollback(pg_store *s);
/* Inside a transaction: extend our lease, or AS_EFENCED when it was taken
 * (invariant 6).  The lease row stays locked until the transaction ends. */
int as_pg_fence(pg_store *s, const char *dataset, int64_t token, int64_t ttl_ms,
		as_error *err);
int as_pg_table_exists(pg_store *s, const char *name, int *exists,
		       as_error *err);
/* The store's operations (store.h) as as_pg_<op>, declared by store/sql_ops.h:
 * leases (postgres_lease.c), run records (postgres_run.c), tables and
 * staging (postgres_table.c, postgres_stage.c), the live scan
 * (postgres_scan.c), the publish (postgres_publish.c), the outbox
 * (postgres_outbox.c), history and rollback (postgres_history.c,
 * postgres_rollback.c). */
AS_SQL_STORE_OPS_DECLARE(pg);
/* A result's cell as a number (0 when NULL) or an owned copy (NULL). */
int64_t as_pg_cell_int(const PGresult *res, int row, int col);
/* A run record's counts as the next five parameters: seen, inserted,
 * updated, unchanged, deleted. */
void as_pg_param_counts(as_pg_params *p, const as_counts *c);
/* A statement on dataset's state row found it: 0; otherwise res is cleared
 * and the error is AS_ESTORE ("no state row"). */
int as_pg_state_row(PGresult *res, const char *dataset, as_error *err);
char *as_pg_cell_dup(const PGresult *res, int row, int col);
/* A column's type from format_type() (AS_TYPE_AUTO: none of ours). */
as_type as_pg_type_of(const char *decl);
/* Staging (postgres_stage.c) and its COPY encoding (postgres_copy.c). */
/* 1: the row is live with the same content; 0: new or changed; -1: the
 * live map cannot tell. */
int as_pg_live_unchanged(const pg_run *r, const as_row *row);
/* Why row cannot be stored (a NUL in text or JSON, named with its column
 * and field, in buf), or NULL. */
const char *as_pg_unstorable(const as_table *t, const as_row *row, char *buf,
			     size_t cap);
/* A batch's rows as COPY text into j, but those skip marks. */
int as_pg_encode_job(pg_store *s, as_run_ctx *rc, const as_batch *b,
		     const unsigned char *skip, int64_t conflicts, pg_job *j,
		     as_error *err);
/* Staging-table lines -> batch-table lines: each gets its index. */
int as_pg_to_batch_format(pg_job *j, as_error *err);
int as_pg_drop_stage(pg_store *s, const char *stage, as_error *err);
/* Record the staging's columns: its types in physical order (names and
 * types from the catalog), or with names NULL those of the spec as it is
 * created. */
int as_pg_stage_types(as_run_ctx *rc, const as_type *types,
		      const char *const *names, size_t n);
void as_pg_insert_cols(as_buf *b, const as_table *t);
int as_pg_run_schema_fill(pg_store *s, as_run_info *v, size_t n, as_error *err);
int as_pg_create_table(pg_store *s, const as_table *t, const char *name,
		       int unlogged, as_error *err);

const char *as_pg_type(as_type t);
/* This connection as the shared SQL drives it (store/sql.h). */
void as_pg_sql(pg_store *s, as_sql *q);
/* Its transactions and run records (postgres_run.c); its exec_out. */
extern const as_sql_txn as_pg_txn;
int as_pg_exec_out(void *conn, const char *sql, const as_val *v,
		   const as_type *ty, size_t n, int64_t *id, int64_t *changes,
		   const char *what, as_error *err);
/* The run's tables as the shared SQL sees them. */
void as_pg_run_view(const as_run_ctx *rc, as_sql_run *out);
/* An SQL expression rendering expr (a column of type t) as the text the
 * engine uses for that type (timestamps in its canonical UTC form,
 * "2026-01-01T00:00:00.000000Z"). */
void as_pg_text_expr(as_buf *b, const char *expr, as_type t);

/*
 * History (store/postgres_history.c), which the publish and the rollback
 * (store/postgres_rollback.c) both write: its shape checked and evolved, its
 * metadata read, and its rows written after a change of the live table.
 */
void as_pg_add_row_tuple(as_buf *b, const as_table *t, const char *prefix);
int as_pg_exec_run(pg_store *s, as_buf *b, int64_t v, int64_t *changes,
		   const char *what, as_error *err);
int as_pg_history_write(pg_store *s, as_run_ctx *rc, const as_publish_opts *po,
			const as_counts *c, const char *rows_q, as_error *err);
/* The history's own column types (the dialect's hist). */
extern const as_hist_types as_pg_hist_types;
int as_pg_hist_meta_read(pg_store *s, const char *dataset, as_hist_meta *m,
			 as_error *err);

/*
 * The outbox (store/postgres_outbox.c, invariant 7): how this store records
 * the events the shared code builds (store/sql_outbox.c, as_pg_sql fills
 * as_sql.outbox with it), and the publish's hook, after the guards and
 * before it touches the live table (as_sql_outbox_publish).
 */
extern const as_sql_outbox_ops as_pg_outbox_ops;
int as_pg_outbox_publish(pg_store *s, as_run_ctx *rc, const as_counts *c,
			 int live, as_error *err);

/*
 * History (store/postgres_history.c).  After publish_apply, in the publish
 * transaction: the snapshot, or the SCD2 versions of the rows the run
 * changed (c: the publish's counts), the history's metadata and its
 * retention.  Nothing when po->history is none.
 */
int as_pg_history_after(pg_store *s, as_run_ctx *rc, const as_publish_opts *po,
			const as_counts *c, as_error *err);

/*
 * The live scan (store/postgres_scan.c) and spans (store/postgres_spans.c;
 * store.h, AS_ROW_SPAN).  The staging keeps spans in "<stage>_spans"
 * (as_pg_spans_table creates it and gives its quoted name, to free).  In
 * the publish transaction, before the counts, as_pg_spans_resolve either
 * takes them as they are (sp->active; in full mode the deletions go to a
 * temp table of the transaction and r->gone is set), or stages the rows
 * they stand for one by one, so the publish goes on as if no span had been
 * made.
 */
typedef as_spans pg_spans;

int as_pg_spans_table(pg_store *s, as_run_ctx *rc, char **q, as_error *err);
int as_pg_spans_resolve(pg_store *s, as_run_ctx *rc, pg_spans *sp,
			as_error *err);
/* "(k1, k2) IN (SELECT k1, k2 FROM <gone>)" */
void as_pg_gone_filter(as_buf *b, const as_run_ctx *rc);

/* store/postgres_stage.c */
int as_pg_batch_table(pg_store *s, as_run_ctx *rc, as_error *err);
/* Read the live table's hashes for client-side classification, when the
 * key allows it and the table is not too large; else leave it to SQL. */
int as_pg_live_hashes(pg_store *s, as_run_ctx *rc, as_error *err);
/* as_pg_live_hashes when r->live_map_wanted and a row of b was parsed
 * (store/postgres_scan.c). */
int as_pg_live_map_read(pg_store *s, as_run_ctx *rc, const as_batch *b,
			as_error *err);
/* Wait for the staging commit in flight; returns its failure (once) into
 * err, or only waits when err is NULL.  Every use of conn calls it first. */
int as_pg_drain(pg_store *s, as_error *err);
void as_pg_stage_free(pg_store *s);

#endif
