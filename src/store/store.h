/*
 * The store interface: every backend (store/sqlite.c, store/postgres.c)
 * fills one as_store_ops table.  The engine hands the store typed rows in
 * batches and asks it to publish; it never sees SQL, and the store never
 * sees the source.  The invariants of DESIGN.md that live in SQL (1, 2, 3,
 * 5, 6, 8, 10) are upheld here; each function says which.
 */
#ifndef AS_STORE_H
#define AS_STORE_H

#include <stddef.h>
#include <stdint.h>

#include <atomsync.h>

#include "model/model.h"
#include "util/arena.h"
#include "util/error.h"

/* ---- what the store is told about a dataset's table ---- */

enum {
	AS_COL_KEY = 1,	      /* part of the natural key */
	AS_COL_SCOPE = 2,     /* scoped mode: part of the scope */
	AS_COL_CURSOR = 4,    /* incremental mode: the cursor column */
	AS_COL_WHOLE = 8,     /* holds the whole record as JSON (`data`) */
	AS_COL_INFERRED = 16, /* found in the records (schema inference) */
	AS_COL_NEW = 32,      /* not in the live table: its publish adds it */
	AS_COL_WIDENED = 64 /* integer in the live table, real from this run */
};

typedef struct as_col {
	char *name;
	char *path;   /* dotted path in the record; NULL for AS_COL_WHOLE */
	as_type type; /* AS_TYPE_AUTO until resolved */
	unsigned flags;
	int selfnamed; /* path is the name: a field of that name (top level)
			* is this column's own, no collision to check */
} as_col;

typedef struct as_table {
	char *dataset;
	char *table;
	as_mode mode;
	as_col *cols; /* key columns first, in key order */
	size_t ncols;
	size_t nkey;   /* 0 until known (Singer SCHEMA) */
	size_t *scope; /* indexes into cols */
	size_t nscope;
	int cursor; /* index into cols, -1 when none */
	as_history history;
	char *fingerprint; /* hex digest of everything that shapes staging */
	int share_table;   /* scoped: may share the table with other scoped
			    * datasets (as_table_owner_check) */
	char *lease;	   /* the lease guarding runs of the dataset (NULL: its
			    * name); see as_table_lease */
	/* Schema inference (engine/schema.c, docs/config.md): columns are
	 * added as fields appear, after the configured ones. */
	int infer;
	int flatten_depth;
	as_contract contract;
	size_t capcols;	 /* room in cols */
	int live_exists; /* describe found the live table */
	int legacy_json; /* describe found the key + `data` layout */
	/* Columns physically before _atomsync_run, _atomsync_hash and
	 * _atomsync_line in the live and staging tables; the rest follow
	 * them (added by ALTER TABLE).  0: all of them. */
	size_t nfront;
} as_table;

/* The number of columns before the three _atomsync columns. */
static inline size_t as_table_front(const as_table *t)
{
	return t->nfront && t->nfront < t->ncols ? t->nfront : t->ncols;
}

/* Lease names of tables start so; dataset names cannot (identifiers). */
#define AS_TABLE_LEASE_PREFIX "table:"

/* The lease that guards runs of t, which every staging commit and publish
 * checks (invariant 6): the dataset's own, or for a scoped dataset its
 * table's ("table:NAME", lower case), one for every scoped dataset of the
 * table, so datasets sharing it run one at a time and a paused one is
 * fenced by the next. */
static inline const char *as_table_lease(const as_table *t)
{
	return t->lease ? t->lease : t->dataset;
}

/* Whether column i is kept by an unchanged row's staging row (and read by
 * the live scan): key, scope and cursor columns; the rest are NULL. */
static inline int as_col_kept_unchanged(const as_table *t, size_t i)
{
	return i < t->nkey ||
	       (t->cols[i].flags & (AS_COL_SCOPE | AS_COL_CURSOR));
}

/* ---- typed values, rows, batches ---- */

enum { AS_V_NULL = 0, AS_V_INT, AS_V_REAL, AS_V_TEXT };

typedef struct as_val {
	uint8_t kind; /* AS_V_* */
	uint32_t len; /* text length in bytes */
	union {
		int64_t i;
		double r;
		const char *s; /* in the batch arena, not NUL-terminated */
	} u;
} as_val;

enum {
	AS_ROW_LINE = 1, /* line[] holds the hash of the record's exact text */
	AS_ROW_UNCHANGED =
		2,	/* known to equal its live row: stage without lookup */
	AS_ROW_SPAN = 4 /* a span of live rows matched by the scan (below) */
};

typedef struct as_row {
	as_val *v;	   /* ncols values, in the batch arena; an unchanged
			    * row fills only key, scope and cursor columns */
	uint64_t hash;	   /* xxh3 of the values: _atomsync_hash */
	const char *where; /* "file:line" for messages, in the arena */
	unsigned flags;	   /* AS_ROW_* */
	unsigned char line[16]; /* _atomsync_line when AS_ROW_LINE */
	/*
	 * AS_ROW_SPAN: `span` consecutive live rows, in key order, from the
	 * key in v (key columns only) to the key in hi, every one matched by
	 * the scan to a line of this run's input, in input order with nothing
	 * between them: delivered unchanged.  A span stands for those rows
	 * without staging each (scan_open below).
	 */
	as_val *hi; /* nkey values, in the batch arena */
	int64_t span;
} as_row;

/* A live row as the line matcher sees it (live_scan_next). */
typedef struct as_scan_row {
	as_val *v; /* ncols; key, scope and cursor columns filled */
	uint64_t hash;
	int has_line;
	unsigned char line[16];
} as_scan_row;

typedef struct as_batch {
	as_row *rows;
	size_t nrows, caprows;
	as_arena arena;
	as_arena arena2;  /* values mapped by the engine's second mapper */
	char *checkpoint; /* committed with the rows; NULL: keep the old one */
	int64_t seen;	  /* records delivered up to the checkpoint (lineage) */
	int64_t rejected; /* records rejected up to the checkpoint (lineage) */
} as_batch;

/* ---- a run as the store sees it ---- */

/* The public atomsync_store is this struct. */
typedef struct atomsync_store as_store;

/* Called by the store while staging when a row must be rejected (append
 * mode: a different record under a known key).  Returning nonzero aborts
 * the batch. */
typedef int (*as_reject_fn)(void *ud, const as_row *row, const char *why,
			    as_error *err);

typedef struct as_run_ctx {
	/* Set by the engine before run_begin. */
	as_table *table;
	const char *kind; /* "sync", "rollback" */
	char owner[160];  /* host/pid/start-time of this worker */
	int64_t token;	  /* fencing token from lease_acquire */
	int64_t lease_ttl_ms;
	int restart;
	as_reject_fn on_reject;
	void *reject_ud;
	/* Set by the store in run_begin (and stage_prepare). */
	int64_t run_id;
	int64_t resumed_from; /* 0: a fresh staging */
	char *checkpoint;     /* resume point (owned) or NULL */
	int64_t seen;	      /* lineage counts carried by the checkpoint */
	int64_t rejected;
	int64_t conflicts; /* rejects found by the store while staging */
	char *stage_key;   /* key columns of a resumed staging, "a,b" */
	char *cursor;	   /* incremental: the saved cursor (JSON), owned;
			    * a Singer dataset without a cursor column: the
			    * STATE bookmark of the last published run */
	/* Set by the engine before publish: a Singer tap's last STATE,
	 * saved as the bookmark in the publish transaction (invariant 8);
	 * NULL keeps the saved one.  Borrowed. */
	const char *bookmark;
	void *priv; /* backend state for this run */
	void *scan; /* backend state of the live scan */
	/* Set by the engine before the publish (and the rollback): the
	 * events it records in the outbox (invariant 7), resolved from the
	 * dataset's invalidate, webhook and notify against this table
	 * (model/outbox.h); NULL records nothing.  Borrowed. */
	const struct as_outbox_plan *outbox;
	/* Set by the engine before the publish: what the schema contract
	 * discarded (the publish records it with the columns added). */
	int64_t discarded_values, discarded_rows;
} as_run_ctx;

typedef struct as_publish_opts {
	int allow_empty;
	int allow_deletes;
	double max_delete_fraction;
	int64_t min_deletes; /* deletions up to this many pass the fraction */
	/* scoped mode: scopes named on the command line, each nscope values */
	as_val *named_scopes;
	size_t nnamed;
	as_history history;
	const char **snapshot_cols;
	size_t nsnapshot_cols;
	int64_t history_keep_runs; /* 0: keep every run's history */
	int64_t history_keep_ms;   /* 0: keep history of any age */
} as_publish_opts;

typedef struct as_counts {
	int64_t seen, inserted, updated, unchanged, deleted, rejected;
	int64_t duplicates;
	int64_t live_before, live_after;
} as_counts;

/* A row of `status`: one per dataset known to the store. */
typedef struct as_dataset_status {
	char *dataset;
	char *table;
	char *mode;
	int64_t rows;	       /* -1 when the table does not exist yet */
	int64_t published_run; /* 0 when never published */
	char *cursor;	       /* JSON or NULL */
	int resumable;	       /* a checkpoint waits */
	char *lease_owner;     /* NULL when free */
	double lease_expires;  /* Unix seconds */
} as_dataset_status;

typedef struct atomsync_run_info as_run_info;

/* An outbox event: the public struct (include/atomsync.h). */
typedef struct atomsync_outbox_event as_outbox_event;
enum {
	AS_OUTBOX_PENDING = ATOMSYNC_OUTBOX_PENDING, /* only pending events,
						      * after after_id */
	AS_OUTBOX_PAYLOAD = ATOMSYNC_OUTBOX_PAYLOAD  /* fill payload (it may be
						      * megabytes) */
};

typedef struct as_store_ops {
	const char *name;

	void (*close)(as_store *st);

	/* Invariant 6: take the dataset's lease; AS_ELEASE when another live
	 * worker holds it.  The token grows on every acquisition. */
	int (*lease_acquire)(as_store *st, const char *dataset,
			     const char *owner, int64_t ttl_ms, int64_t *token,
			     as_error *err);
	/* AS_EFENCED when the token is no longer current. */
	int (*lease_renew)(as_store *st, const char *dataset, int64_t token,
			   int64_t ttl_ms, as_error *err);
	int (*lease_release)(as_store *st, const char *dataset, int64_t token,
			     as_error *err);

	/* Put the run on record; mark runs left active by dead workers as
	 * failed; decide between resuming the staging and starting over. */
	int (*run_begin)(as_store *st, as_run_ctx *rc, as_error *err);
	/* Fill AS_TYPE_AUTO columns from an existing live or staging table. */
	int (*describe)(as_store *st, as_run_ctx *rc, as_error *err);
	/* Create the live and staging tables once the columns are known. */
	int (*stage_prepare)(as_store *st, as_run_ctx *rc, as_error *err);
	/* Drop the staging being resumed (its checkpoint no longer applies):
	 * the run starts over with an empty staging. */
	int (*stage_discard)(as_store *st, as_run_ctx *rc, as_error *err);
	/* One transaction: rows, checkpoint, counts; fenced (invariants 4, 6).
	 */
	int (*stage_batch)(as_store *st, as_run_ctx *rc, const as_batch *b,
			   as_error *err);
	/*
	 * Optional: the live table in key order on a connection of its own,
	 * for the caller's thread while the writer stages (so a record whose
	 * exact text was published before is known unchanged without being
	 * parsed).  open: 0 and *rows = 0 when there is nothing to scan.
	 * next: 1 with a row (values in arena a), 0 at the end.  seek: the
	 * next row is the first whose key is greater than key.  A store with
	 * a scan accepts AS_ROW_SPAN rows in stage_batch and keeps them with
	 * the staging; its publish counts a span's rows as unchanged, and as
	 * delivered, as if each had been staged.
	 */
	int (*scan_open)(as_store *st, as_run_ctx *rc, int *rows,
			 as_error *err);
	int (*scan_next)(as_store *st, as_run_ctx *rc, as_scan_row *out,
			 as_arena *a, as_error *err);
	int (*scan_seek)(as_store *st, as_run_ctx *rc, const as_val *key,
			 as_error *err);
	void (*scan_close)(as_store *st, as_run_ctx *rc);
	/* One transaction: the publish (invariants 1, 3, 5, 8, 10). */
	int (*publish)(as_store *st, as_run_ctx *rc, const as_publish_opts *po,
		       as_counts *out, as_error *err);
	/* One transaction for several runs (the streams of one Singer
	 * input), on st's connection: each run rcs[i] staged through
	 * stores[i] (a connection to the same store) and is marked
	 * publishing there; then one BEGIN, each run's publish (its fence,
	 * guards, outbox, apply, bookkeeping) with pos[i] into cs[i], one
	 * COMMIT (invariant 1 across tables).  A refusal or failure of any
	 * run rolls back all of them; *bad is that run's index.  Not for
	 * scoped or history datasets. */
	int (*publish_group)(as_store *st, as_store *const *stores,
			     as_run_ctx *const *rcs, const as_publish_opts *pos,
			     as_counts *cs, size_t n, size_t *bad,
			     as_error *err);
	/* Record a failed or refused end; refused also drops the staging. */
	int (*run_end)(as_store *st, as_run_ctx *rc, const char *status,
		       const char *error, as_error *err);
	void (*run_free)(as_store *st, as_run_ctx *rc);

	int (*runs_list)(as_store *st, const char *dataset, size_t limit,
			 as_run_info **out, size_t *n, as_error *err);
	int (*status)(as_store *st, as_dataset_status **out, size_t *n,
		      as_error *err);
	/* Count of live rows, -1 when the table does not exist. */
	int (*table_rows)(as_store *st, const char *table, int64_t *rows,
			  as_error *err);

	/*
	 * The outbox (invariant 7; store/<backend>_outbox.c): events the
	 * publish wrote, read and marked after commit by effects/outbox.c.
	 * list: events of dataset (NULL: all) in event_id order.  With
	 * AS_OUTBOX_PENDING, the pending ones after after_id (at most limit);
	 * without it, every pending event and the most recently delivered
	 * ones.  *out is owned by the caller (as_outbox_events_free).
	 * mark: error NULL records the delivery, else one more failed attempt.
	 */
	int (*outbox_list)(as_store *st, const char *dataset, int64_t after_id,
			   size_t limit, unsigned flags, as_outbox_event **out,
			   size_t *n, as_error *err);
	int (*outbox_mark)(as_store *st, int64_t event_id, const char *error,
			   as_error *err);

	/* ---- history (store/<backend>_history.c) ---- */
	/*
	 * One fenced transaction: restore the live table to its content after
	 * run to_run from <table>_history, recorded as a new run of kind
	 * rc->kind ("rollback") with its counts relative to the live table and
	 * as the dataset's published run; any resumable staging is dropped.
	 * AS_EUSAGE, with nothing changed, when the history cannot restore
	 * to_run.  Sets rc->run_id.
	 */
	int (*rollback)(as_store *st, as_run_ctx *rc, const as_publish_opts *po,
			int64_t to_run, as_counts *out, as_error *err);
	/* Up to n random live rows into out (every column of t, typed as the
	 * engine maps them; values in out's arena). */
	int (*sample)(as_store *st, const as_table *t, size_t n, as_batch *out,
		      as_error *err);
	/* Put a finished run that changed no data on record (kind "verify"):
	 * status, counts and error text; *run_id receives its number. */
	int (*record_run)(as_store *st, const as_table *t, const char *kind,
			  const char *status, const as_counts *c,
			  const char *error, double started, int64_t *run_id,
			  as_error *err);
} as_store_ops;

struct atomsync_store {
	const as_store_ops *ops;
	char *url;     /* as given; may hold a password: never print */
	char *display; /* the url with any password replaced by *** */
};

/* Open by URL: "sqlite:PATH", a path, "postgres://", "postgresql://",
 * or a libpq "key=value" string. */
int as_store_open(as_store **out, const char *url, as_error *err);
void as_store_close(as_store *st);

/* Helpers shared by the backends (store/common.c). */
void as_counts_finish(as_counts *c);
int as_guard_check(const as_table *t, const as_publish_opts *po,
		   const as_counts *c, int64_t scope_rows, as_error *err);
void as_dataset_status_free(as_dataset_status *s, size_t n);
void as_outbox_events_free(as_outbox_event *v, size_t n);
/* A new row of b with room for ncols values (in b's arena); NULL when out
 * of memory. */
as_row *as_batch_add_row(as_batch *b, size_t ncols);
char *as_redact_url(const char *url);
/* A lease name as messages say it, "dataset d" or "table t", in buf. */
const char *as_lease_label(const char *lease, char *buf, size_t cap);
/* AS_EFENCED: the fence found lease taken over (token is this run's). */
int as_lease_lost(const char *lease, int64_t token, as_error *err);
int as_table_key_list(const as_table *t, char *buf, size_t cap);
/* A table belongs to the dataset whose first run created its state: `other`
 * is another dataset recorded on t's table (NULL: none), with its mode's
 * name.  AS_EUSAGE naming the owner unless both are scoped and t says
 * share_table. */
int as_table_owner_check(const as_table *t, const char *other,
			 const char *other_mode, as_error *err);

#endif
