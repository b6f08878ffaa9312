/*
 * The SQL the backends share (store/sql_*.c), written once over what a
 * backend tells it: its dialect (how a thing is spelled) and its driver
 * (how a statement runs).  A backend keeps only what truly differs.
 */
#ifndef AS_STORE_SQL_H
#define AS_STORE_SQL_H

#include "model/outbox.h"
#include "store/history.h"
#include "store/store.h"
#include "util/buf.h"

/* The error a run left active or publishing by a dead worker is recorded
 * with, by the next run or rollback of its dataset (invariant 10). */
#define AS_SQL_INTERRUPTED                                                     \
	"interrupted: the worker stopped before finishing (killed, crashed "   \
	"or lost its connection); nothing was published"

/* How a backend spells what the shared SQL writes. */
typedef struct as_sql_dialect {
	const char *temp;	 /* the temp schema: "temp", "pg_temp" */
	const char *main;	 /* before a user table's name: "main.", "" */
	const char *true_lit;	 /* "1", "true" */
	const char *false_lit;	 /* "0", "false" */
	const char *text_type;	 /* "TEXT", "text" */
	const char *blob_type;	 /* "BLOB", "bytea" */
	const char *temp_suffix; /* after CREATE TEMP TABLE t(...) */
	int analyze_temp; /* a filled temp table wants ANALYZE before a join
			   * (PostgreSQL's autovacuum never sees it) */
	const char *(*type)(as_type t);	      /* a mapped column's type */
	as_type (*type_of)(const char *decl); /* and back (unknown: AUTO) */
	int nocase_types; /* declared types compare ignoring case */
	int strict_decl;  /* a column of undeclared type adopts only a
			   * declared type the backend maps */
	/* A table's columns in order as rows (name, declared type), the
	 * table's name bound as parameter 1. */
	const char *columns_sql;
	/* Temp tables take column types and the temp suffix (otherwise
	 * columns are left untyped, as CREATE TABLE AS makes them). */
	int typed_temp;
	const char *bool_type;	     /* a temp table's flag column */
	const char *is_not_distinct; /* " IS ", " IS NOT DISTINCT FROM " */
	/* A timestamp column as ISO 8601 text in UTC, milliseconds. */
	void (*iso_time)(as_buf *b, const char *col);
	/* The integer under key of a JSON column (NULL: none). */
	void (*json_int)(as_buf *b, const char *col, const char *key);
	/* One row, 1 when the table named by parameter 1 exists. */
	const char *exists_sql;
	const char *keyed_suffix; /* after a table keyed by its primary key */
	const char *create_index; /* "CREATE INDEX[ IF NOT EXISTS] " */
	/* Parameter i (from 1) holding a value of type t. */
	void (*param)(as_buf *b, size_t i, as_type t);
	/* The history's own column types (store/sql_history.c). */
	const as_hist_types *hist;
	/* Run before atomsync creates a table of its own on first use, so
	 * concurrent first creations wait for each other (NULL: none). */
	const char *create_lock;
	/* The publish's upsert names the live table so and leaves a row whose
	 * hash it already holds (NULL: neither). */
	const char *upsert_alias;
	/* Run records (store/sql_run.c): the time now, the transaction's or
	 * with clock the clock's (SQLite: the client's, a literal); what
	 * locks a row read in a transaction (or ""); the names of at most 64
	 * staging tables no dataset refers to, and what runs once they are
	 * dropped (NULL: nothing). */
	void (*now)(as_buf *b, int clock);
	/* The time ms milliseconds before now, as atomsync_runs keeps it. */
	void (*ago)(as_buf *b, int64_t ms);
	const char *for_update;
	const char *orphans_sql;
	const char *orphans_done;
} as_sql_dialect;

/* A key the outbox's templates render (store/sql_outbox.c). */
typedef int (*as_sql_key_fn)(void *ud, const char *key, size_t len,
			     as_error *err);

/* How a backend records the outbox's events (invariant 7), in the caller's
 * transaction; what differs is how parameters are bound and rows read. */
typedef struct as_sql_outbox_ops {
	/* Create atomsync_outbox when it does not exist. */
	int (*ensure)(void *conn, as_error *err);
	/* One event of rc's run for target: payload, len bytes of JSON. */
	int (*insert)(void *conn, const as_run_ctx *rc, const char *target,
		      const char *payload, size_t len, as_error *err);
	/* key(ud, ...) for each key that plan's templates with a column
	 * render from changed_q's rows (NULL keys skipped, not deduplicated:
	 * a repeated key costs Redis nothing, a sort costs the publish). */
	int (*keys)(void *conn, const as_outbox_plan *plan, const as_table *t,
		    const char *changed_q, as_sql_key_fn key, void *ud,
		    as_error *err);
	/* Send body on channel at commit; NULL where the store has no
	 * NOTIFY (the run's check refuses such a plan, as_outbox_check). */
	int (*notify)(void *conn, const char *channel, const char *body,
		      as_error *err);
} as_sql_outbox_ops;

/* A backend connection as the shared SQL drives it. */
typedef struct as_sql {
	const as_sql_dialect *d;
	const as_sql_outbox_ops *outbox;
	void *conn;
	/* Run sql (no result); what names the step in an error. */
	int (*exec)(void *conn, const char *sql, const char *what,
		    as_error *err);
	/* Run sql, one statement; *changes: the rows it wrote or deleted. */
	int (*exec_changes)(void *conn, const char *sql, int64_t *changes,
			    const char *what, as_error *err);
	/* The first n columns of sql's one row as integers (NULL: 0). */
	int (*query_ints)(void *conn, const char *sql, int64_t *out, int n,
			  const char *what, as_error *err);
	/* Each row of sql (arg, when not NULL, bound as parameter 1) as its
	 * first n columns in text (SQL NULL: NULL) to row(ud, v); a
	 * nonzero return of row stops and is returned. */
	int (*query_rows)(void *conn, const char *sql, const char *arg, int n,
			  int (*row)(void *ud, const char *const *v), void *ud,
			  const char *what, as_error *err);
	/* Run sql with parameters 1..n bound to v[i] of type ty[i]. */
	int (*exec_vals)(void *conn, const char *sql, const as_val *v,
			 const as_type *ty, size_t n, const char *what,
			 as_error *err);
	const struct as_sql_txn *txn; /* transactions and run records */
} as_sql;

/* *exists: the table name exists (q->d->exists_sql). */
int as_sql_table_exists(const as_sql *q, const char *name, int *exists,
			as_error *err);
/* A backend's driver functions, in as_sql's order: exec, exec_changes,
 * query_ints, query_rows, exec_vals; then its outbox and transactions. */
typedef struct as_sql_driver {
	int (*exec)(void *, const char *, const char *, as_error *);
	int (*exec_changes)(void *, const char *, int64_t *, const char *,
			    as_error *);
	int (*query_ints)(void *, const char *, int64_t *, int, const char *,
			  as_error *);
	int (*query_rows)(void *, const char *, const char *, int,
			  int (*)(void *, const char *const *), void *,
			  const char *, as_error *);
	int (*exec_vals)(void *, const char *, const as_val *, const as_type *,
			 size_t, const char *, as_error *);
	const as_sql_outbox_ops *outbox;
	const struct as_sql_txn *txn;
} as_sql_driver;

/* A bound value: an integer; a text (NULL: SQL NULL), not copied. */
as_val as_sql_int_val(int64_t i);
as_val as_sql_text_val(const char *s);

/* q drives conn with drv, spelling SQL as d says. */
void as_sql_init(as_sql *q, const as_sql_dialect *d, const as_sql_driver *drv,
		 void *conn);
/* Run b's text with q, then empty b. */
int as_sql_exec_buf(const as_sql *q, as_buf *b, const char *what,
		    as_error *err);

/* A run's tables as the shared SQL sees them. */
typedef struct as_sql_run {
	const char *live_q;  /* the live table, quoted */
	const char *stage_q; /* the staging, quoted; NULL: none */
	/* The live rows the publish deletes when a table of its own holds
	 * them (SQLite's spans); NULL: rows not in the staging. */
	void (*gone_filter)(as_buf *b, const as_table *t, const void *ud);
	const void *gone_ud;
} as_sql_run;

/* ---- names (store/sql_common.c) ---- */

/* "k1", "k2" (with prefix: p."k1", ...): the key columns. */
void as_sql_key_list(as_buf *b, const as_table *t, const char *prefix);
/* The scope columns, likewise. */
void as_sql_scope_list(as_buf *b, const as_table *t, const char *prefix);
/* a."k1" = bq."k1" AND ... (a and bq already quoted) */
void as_sql_key_match(as_buf *b, const as_table *t, const char *a,
		      const char *bq);
/* " ON CONFLICT (keys) DO NOTHING", or with update "... DO UPDATE SET" every
 * non-key column and the row's run, hash and line to the new row's; with
 * alias (the target's, else NULL) only where alias's hash differs. */
void as_sql_add_upsert(as_buf *b, const as_table *t, int update,
		       const char *alias);

/* "<table>_atomsync_scope" (at most n bytes): the scope index's name. */
void as_sql_scope_index_name(char *out, size_t n, const as_table *t);
/* CREATE INDEX IF NOT EXISTS of it on live_q's scope columns. */
void as_sql_add_scope_index(as_buf *b, const as_table *t, const char *live_q);

/* ---- tables (store/sql_table.c) ---- */

/* The declared type decl (NULL: none) is want, as d compares types. */
int as_sql_same_type(const as_sql_dialect *d, const char *want,
		     const char *decl);
/* Compare the existing table name with t's columns (then _atomsync_run,
 * _atomsync_hash, _atomsync_line); columns still AS_TYPE_AUTO adopt the
 * declared types.  A mismatch is AS_EUSAGE: atomsync never silently
 * reshapes a table that holds data. */
int as_sql_check_table(const as_sql *q, as_table *t, const char *name,
		       as_error *err);

/* How the shared table steps (store/sql_table.c) reach a backend's own,
 * conn its store. */
typedef struct as_sql_cols {
	/* An inferring spec adopts the columns of table name (stage: a
	 * staging; *nuser: the user columns so far). */
	int (*adopt)(void *conn, as_run_ctx *rc, const char *name, int stage,
		     size_t *nuser, as_error *err);
	/* A configured spec's check of table name. */
	int (*check)(void *conn, as_table *t, const char *name, as_error *err);
	/* The live table as the run finds it (as_sql_read_live). */
	int (*read_live)(void *conn, as_run_ctx *rc, as_error *err);
	/* A new staging for the run, in one fenced transaction. */
	int (*create_stage)(void *conn, as_run_ctx *rc, as_error *err);
	/* The staging ready for the run's rows (its statements). */
	int (*stage_ready)(void *conn, as_run_ctx *rc, as_error *err);
} as_sql_cols;

/* describe: the live table's columns when it exists (adopted, then those
 * the staging being resumed, stage, added; or checked), over q->conn. */
int as_sql_describe(const as_sql *q, const as_sql_cols *o, as_run_ctx *rc,
		    const char *stage, as_error *err);
/* The live table live_q as the run finds it: *exists; if so adopted or
 * checked, *ncols its mapped columns, *has_rows whether it holds any. */
int as_sql_read_live(const as_sql *q, const as_sql_cols *o, as_run_ctx *rc,
		     const char *live_q, int *exists, size_t *ncols,
		     int *has_rows, as_error *err);
/* Create the staging table once the columns are known (a resumed run
 * adopts its predecessor's).  The live table is created only by a publish,
 * so a failed first run leaves no trace in the user's schema.  The live
 * table read, then the staging created (stage NULL) or the resumed one's
 * columns adopted or checked, then made ready. */
int as_sql_stage_prepare(void *conn, const as_sql_cols *o, as_run_ctx *rc,
			 const char *stage, as_error *err);

/* rc after its staging was discarded: no checkpoint, staging key, rows
 * seen or rejected, nor run resumed (the backend renews rc->priv). */
void as_sql_run_discarded(as_run_ctx *rc);

/* ---- run records (store/sql_run.c) ---- */

/* How a backend runs the store's own transactions over conn: what the run
 * records, the staging's discard and the rollback need besides SQL text. */
typedef struct as_sql_txn {
	/* Begin a write transaction (SQLite's BEGIN IMMEDIATE); commit it
	 * (what names the step in an error); roll back whatever is open. */
	int (*begin)(void *conn, const char *what, as_error *err);
	int (*commit)(void *conn, const char *what, as_error *err);
	void (*rollback)(void *conn);
	/* Inside it: extend the lease, or AS_EFENCED when it was taken
	 * (invariant 6). */
	int (*fence)(void *conn, const char *dataset, int64_t token,
		     int64_t ttl_ms, as_error *err);
	/* As exec_vals; *id (not NULL): the first column of the first row
	 * (0: none), *changes (not NULL): the rows written. */
	int (*exec_out)(void *conn, const char *sql, const as_val *v,
			const as_type *ty, size_t n, int64_t *id,
			int64_t *changes, const char *what, as_error *err);
	/* Drop a staging and the tables that go with it. */
	int (*drop_stage)(void *conn, const char *stage, as_error *err);
	/* The run (rc->priv) takes the staging stage; -1: out of memory. */
	int (*stage_names)(void *run, const char *stage);
	/* The backend's run (rc->priv): its size (zeroed, its first member
	 * the live table's quoted name, a char *), and how it is freed. */
	size_t run_size;
	void (*run_free)(as_store *st, as_run_ctx *rc);
} as_sql_txn;

/* What the backend reads in run_begin's transaction (as_sql_run_begin),
 * over conn: the table is not another dataset's, the state row exists,
 * and says whether the run resumes the staging *stage (set either way;
 * the caller frees it) of run *last_run. */
typedef int (*as_sql_state_fn)(void *conn, as_run_ctx *rc, char **stage,
			       int64_t *last_run, int *resume, as_error *err);
/*
 * One fenced transaction: mark runs left active by dead workers as failed
 * (invariant 10), put this run on record, and decide whether it continues
 * the interrupted staging (invariant 4) or starts over; orphaned stagings
 * are dropped.  rc->priv is a new run (as_sql_txn.run_new).
 */
int as_sql_run_begin(const as_sql *q, as_run_ctx *rc, as_sql_state_fn state,
		     as_error *err);

/* rc->priv := a new run of the live table; its quoted name, or NULL when
 * out of memory. */
const char *as_sql_run_new(const as_sql *q, as_run_ctx *rc);
/* Runs of t's dataset left active or publishing by dead workers end failed
 * (AS_SQL_INTERRUPTED; invariant 10), in a transaction holding the lease. */
int as_sql_fail_interrupted(const as_sql *q, const as_table *t, as_error *err);
/* rc's run on record with status (kind: rc->kind, else kind), resumed
 * from resumed (0: none); rc->run_id. */
int as_sql_record_run(const as_sql *q, as_run_ctx *rc, const char *kind,
		      const char *status, int64_t resumed, as_error *err);
/* The state row of dataset forgets its staging. */
int as_sql_clear_stage(const as_sql *q, const char *dataset, const char *what,
		       as_error *err);
/* rc's run ends with status and error (NULL: none), in a fenced
 * transaction: a worker that lost its lease leaves the record to the new
 * holder.  A refused run's staging (stage) is dropped. */
int as_sql_run_end(const as_sql *q, as_run_ctx *rc, const char *stage,
		   const char *status, const char *error, as_error *err);
/* Drop rc's staging (stage, NULL: none) in a fenced transaction; rc then
 * runs without one (a new rc->priv, as_sql_run_discarded). */
int as_sql_stage_discard(const as_sql *q, as_run_ctx *rc, const char *stage,
			 as_error *err);

/* ---- the history table's shape (store/sql_history.c) ---- */

/* Compare the existing <table>_history with the shape this configuration
 * writes (in q->d->hist's types; columns still AS_TYPE_AUTO adopt its
 * types).  A different shape is AS_EUSAGE: history is never silently
 * reshaped or lost. */
int as_sql_hist_check(const as_sql *q, const as_hist *h, as_table *t,
		      as_error *err);
/* What atomsync_history says of dataset (m->found 0: nothing, or no
 * such table yet). */
int as_sql_hist_meta_read(const as_sql *q, const char *dataset, as_hist_meta *m,
			  as_error *err);
/* Create <table>_history in the shape h describes, keyed by run and
 * record key (snapshot) or record key and valid_from_run (SCD2, with an
 * index on valid_to_run). */
int as_sql_hist_create(const as_sql *q, const as_hist *h, const as_table *t,
		       as_error *err);
/* An inferring table: the history gains the columns the live table
 * gained (ALTER TABLE ... ADD COLUMN), inside the publish transaction. */
int as_sql_hist_evolve(const as_sql *q, const as_hist *h, as_table *t,
		       as_error *err);
/* An existing history table fits t: evolved (inferring) or checked. */
/* history_keep (po): drop what only runs before the first run kept need,
 * and move the oldest restorable run up to it; in the publish's
 * transaction (q->txn). */
int as_sql_hist_prune(const as_sql *q, const as_run_ctx *rc,
		      const as_publish_opts *po, const as_hist *h,
		      as_error *err);
int as_sql_hist_fit(const as_sql *q, const as_hist *h, as_table *t,
		    as_error *err);
/* Before a history write, in its transaction: *h built for t and po (the
 * caller's to as_hist_free, also on failure), the metadata table and
 * <table>_history created on first use, or fitted; *m what the metadata
 * says (m->columns the caller's to free); *reset: the history starts over
 * at this run (none yet, another kind, columns or restorability, or runs
 * were published without it). */
int as_sql_hist_open(const as_sql *q, as_table *t, const as_publish_opts *po,
		     as_hist *h, as_hist_meta *m, int *reset, as_error *err);
/* After the live table live_q changed, in the same transaction: starting
 * over (baseline), the SCD2 versions still open close at run; the live rows
 * (exists: the table is there) are written whole as run's snapshot, or as
 * open versions from run when SCD2 starts over. */
int as_sql_hist_write_live(const as_sql *q, const as_hist *h, const as_table *t,
			   const char *live_q, int64_t run, int baseline,
			   int exists, as_error *err);
/* atomsync_history's row for t: this shape, written up to run (and from
 * run too when reset). */
int as_sql_hist_record(const as_sql *q, const as_hist *h, const as_table *t,
		       int64_t run, int reset, as_error *err);

/* ---- the publish (store/sql_publish.c) ---- */

/* The live rows a run's spans stand for (store.h, AS_ROW_SPAN); a backend
 * without spans leaves it zero. */
typedef struct as_sql_spans {
	int active;
	int64_t rows;	  /* live rows the spans stand for */
	int64_t gap_rows; /* live rows outside every span */
	int64_t gone;	  /* of those, the ones not staged (full mode) */
} as_sql_spans;

/* <temp>._atomsync_scopes: the scopes this run replaces (those r's
 * staging delivered), _named marking a scope named on the command line
 * (po) for which no record was delivered. */
int as_sql_fill_scopes(const as_sql *q, const as_sql_run *r, const as_table *t,
		       const as_publish_opts *po, as_error *err);
/* The scoped publish's filters over <temp>._atomsync_scopes. */
void as_sql_add_scope_filter(const as_sql *q, as_buf *b, const as_table *t,
			     const char *live_q, int delivered_only);
/* NOT EXISTS (a row of stage_q with live_q's key) */
void as_sql_add_not_staged(as_buf *b, const as_table *t, const char *live_q,
			   const char *stage_q);
/* The live rows the publish deletes (r's rows not staged, of the replaced
 * scopes in scoped mode). */
void as_sql_add_delete_filter(const as_sql *q, as_buf *b, const as_table *t,
			      const as_sql_run *r);
/*
 * The publish's counts, inside its transaction (invariant 10): live rows
 * before, inserted, updated, unchanged, deleted; *staged_changed, the
 * staged rows that change the live table; in scoped mode *scope_rows (live
 * rows of the delivered scopes) and *guarded_deletes (deletions the guards
 * weigh), after as_sql_fill_scopes with po.  live: the live table
 * exists.
 */
int as_sql_publish_counts(const as_sql *q, const as_sql_run *r,
			  const as_table *t, int live, const as_sql_spans *sp,
			  const as_publish_opts *po, as_counts *c,
			  int64_t *staged_changed, int64_t *scope_rows,
			  int64_t *guarded_deletes, as_error *err);

/* Write only changed rows (invariant 5), then delete what the run did not
 * deliver (as_sql_add_delete_filter); each step must touch exactly the
 * rows c promised: changed, the staged rows that change the live table
 * (0: nothing to write, the staging became the live table). */
int as_sql_publish_apply(const as_sql *q, const as_sql_run *r,
			 const as_table *t, const as_counts *c, int64_t changed,
			 as_error *err);

/* A publish's counts, zero but for what the run saw and rejected. */
void as_sql_counts_start(as_counts *c, const as_run_ctx *rc);
/* The guards (invariant 3) on the publish's counts c; a scoped publish
 * weighs guarded_deletes against scope_rows. */
int as_sql_publish_guards(const as_table *t, const as_publish_opts *po,
			  const as_counts *c, int64_t scope_rows,
			  int64_t guarded_deletes, as_error *err);
/* The run's staging began on the published run base; published is the
 * dataset's published run now (-1: none).  AS_ESTORE when another run
 * published in between (the next run starts over). */
int as_sql_check_base(const as_table *t, int64_t published, int64_t base,
		      as_error *err);

/* ---- the outbox (store/sql_outbox.c, invariant 7) ---- */

/* The table the changed rows are collected in, in the temp schema. */
#define AS_SQL_CHANGED "\"_atomsync_changed\""

/* Which columns of t the plan's templates name (calloc'd, t->ncols
 * flags); NULL when out of memory. */
unsigned char *as_sql_outbox_need(const as_outbox_plan *plan,
				  const as_table *t);
/*
 * Fill <temp>._atomsync_changed before the publish touches the live table:
 * the changed staged rows as insert/update, the old values of updated rows
 * when a template names a non-key column (need_before), and the rows to be
 * deleted.  live: the live table exists.
 */
int as_sql_outbox_collect(const as_sql *q, const as_sql_run *r,
			  const as_table *t, const as_counts *c, int live,
			  const unsigned char *need, int need_before,
			  as_error *err);
/* The collected rows (n: inserted, updated, deleted) agree with the
 * publish's counts; AS_ESTORE when not (the keys would be wrong). */
int as_sql_outbox_agree(const int64_t n[3], const as_counts *c, as_error *err);
/* The summary of rc's events with counts n. */
void as_sql_outbox_summary(as_outbox_summary *sum, const as_run_ctx *rc,
			   const int64_t n[3]);
/*
 * The events of rc->outbox for the rows in <temp>._atomsync_changed, in
 * the caller's transaction: one redis event (split only past
 * AS_OUTBOX_MAX_KEYS keys), one webhook event, the NOTIFY; nothing when no
 * row changed.  The table (as_sql_outbox_collect or as_sql_rollback_changed
 * fill it) holds the columns the templates name and "_atomsync_op":
 * 'insert' and 'update' rows hold the new values, 'delete' rows the values
 * before deletion, 'before' rows (optional) the old values of updated rows,
 * so that a template over a non-key column also invalidates the old key.
 * Keys are rendered from every row; the summary counts insert, update and
 * delete rows.
 */
int as_sql_outbox_write(const as_sql *q, const as_run_ctx *rc, as_error *err);
/* The publish's hook, after the guards and before the live table changes:
 * collect what the publish will change, check it against c (a disagreement
 * fails the publish: the keys would be wrong), record the events and drop
 * the collected rows.  live: the live table exists. */
int as_sql_outbox_publish(const as_sql *q, const as_sql_run *r,
			  const as_run_ctx *rc, const as_counts *c, int live,
			  as_error *err);

/* ---- the rollback (store/sql_rollback.c) ---- */

/* What the rollback leaves to the backend, over q->conn. */
typedef struct as_sql_rollback_ops {
	/* Before its transaction (on) and after it (off): the commit's
	 * durability (NULL: as always). */
	void (*durable)(void *conn, int on);
	/* The live table: when it exists, checked against t (its columns
	 * still AS_TYPE_AUTO adopt its types); then, when it does not,
	 * created (t's columns still undecided are text by then). */
	int (*live)(void *conn, as_table *t, int exists, as_error *err);
	/* The history's rows, around the live table's change (NULL: none). */
	int (*hist_before)(void *conn, as_run_ctx *rc,
			   const as_publish_opts *po, const as_counts *c,
			   const char *live_q, as_error *err);
	int (*hist_after)(void *conn, as_run_ctx *rc, const as_publish_opts *po,
			  const as_counts *c, const char *live_q,
			  as_error *err);
	/* The maximum of the cursor column col, as the state row keeps it. */
	void (*cursor_max)(as_buf *b, const as_col *col);
	const char *cleanup; /* before commit: the temp tables dropped */
	int prefix;	     /* an AS_ESTORE names the dataset */
} as_sql_rollback_ops;

/*
 * `atomsync rollback DATASET --to-run N`: one fenced transaction that
 * checks the history can restore run N, records the rollback as a run,
 * rewrites exactly the rows that differ from N's state (their history and
 * outbox events with them), and makes it the dataset's published run.
 */
int as_sql_history_rollback(const as_sql *q, const as_sql_rollback_ops *o,
			    as_run_ctx *rc, const as_publish_opts *po,
			    int64_t to_run, as_counts *c, as_error *err);

/* <temp>._atomsync_target := the live table's content after run n, from
 * the history h, each row marked with run_id in _atomsync_run when the
 * live table does not hold it exactly (a missing key, or any column or
 * the hash differs). */
int as_sql_rollback_target(const as_sql *q, const char *live_q,
			   const as_table *t, const as_hist *h, int64_t n,
			   int64_t run_id, as_error *err);

/* Its counts: <temp>._atomsync_target (the live table's content after the
 * target run) against the live table live_q. */
int as_sql_rollback_counts(const as_sql *q, const char *live_q,
			   const as_table *t, as_counts *c, as_error *err);
/* <temp>._atomsync_changed for as_sql_outbox_write, before the live table
 * changes: the restored rows as 'insert' and 'update', the removed ones as
 * 'delete', and 'before' rows when a template names a non-key column.
 * Nothing when rc records no outbox events. */
int as_sql_rollback_changed(const as_sql *q, const char *live_q,
			    const as_run_ctx *rc, as_error *err);
/* The live table := <temp>._atomsync_target: changed rows upserted, rows
 * not in the target deleted, each step exactly as c counted (AS_ESTORE
 * otherwise: nothing changes). */
int as_sql_rollback_apply(const as_sql *q, const char *live_q,
			  const as_table *t, const as_counts *c, as_error *err);

#endif
