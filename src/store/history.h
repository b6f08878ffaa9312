/*
 * The shape of a dataset's <table>_history, shared by the backends (their
 * own files write and roll back the history in their SQL dialects).
 */
#ifndef AS_STORE_HISTORY_H
#define AS_STORE_HISTORY_H

#include "store/store.h"
#include "util/buf.h"

typedef struct as_hist {
	as_history kind;
	char *name;   /* "<table>_history", unquoted */
	char *q;      /* quoted */
	size_t *cols; /* content columns: indexes into t->cols, key first */
	size_t ncols;
	int full;	/* every mapped column plus hash and line: restorable */
	char *colnames; /* "id,name,...": what the metadata records */
} as_hist;

/* A backend's spelling of the history's own column types. */
typedef struct as_hist_types {
	const char *integer;			/* run numbers and the hash */
	const char *blob;			/* _atomsync_line */
	const char *(*column)(as_type t);	/* a mapped column's type */
	as_type (*column_of)(const char *decl); /* and back (else AUTO) */
} as_hist_types;

/* What <table>_history's metadata row says (atomsync_history_meta). */
typedef struct as_hist_meta {
	int found;
	char kind[16];
	char *columns;
	int restorable;
	int64_t first_run, last_run;
} as_hist_meta;

const char *as_hist_kind_name(as_history k);
void as_hist_free(as_hist *h);
/* The history's content columns: the key, then every mapped column (scd2)
 * or the snapshot columns (snapshot; none listed: every column). */
int as_hist_build(as_hist *h, const as_table *t, const as_publish_opts *po,
		  as_error *err);
/* The history table's columns in order with their types; names and types
 * hold room for t->ncols + 4.  Returns how many. */
size_t as_hist_layout(const as_hist *h, const as_table *t,
		      const as_hist_types *ty, const char **names,
		      const char **types);
/* "c1", "c2", ... of the content (with prefix: p."c1", ...), then the hash
 * and line when the history is full. */
void as_hist_add_content(as_buf *b, const as_hist *h, const as_table *t,
			 const char *prefix);

/* "(run_id, c1, ...)" or "(valid_from_run, valid_to_run, c1, ...)": the
 * history's columns by name (columns added by inference stand after the
 * hash and line). */
void as_hist_add_insert_cols(as_buf *b, const as_hist *h, const as_table *t);
/* An inferring table's history gains the columns it lacks: for each
 * layout column not in present (n names), add(ud, name, type) is called
 * (an inferred content column), or -1 returned (any other).  */
int as_hist_evolve(const as_hist *h, const as_table *t, const as_hist_types *ty,
		   const char *const *present, size_t n,
		   int (*add)(void *ud, const char *name, const char *type),
		   void *ud);

/* Rollback to run n of t: the run as atomsync_runs has it (found, its kind
 * and status) can be the target: AS_EUSAGE saying why not, nothing
 * changed. */
int as_hist_check_run(const as_table *t, int64_t n, int found, const char *kind,
		      const char *status, as_error *err);
/* ... and the history (its metadata m, exists: the table is there) can
 * restore it with every mapped column, as h is now. */
int as_hist_check_meta(const as_table *t, const as_hist *h, int64_t n,
		       const as_hist_meta *m, int exists, as_error *err);

#endif
