/*
 * The SQL the backends share (store/sql_*.c), written once over what a
 * backend tells it: its dialect (how a thing is spelled) and its driver
 * (how a statement runs).  A backend keeps only what truly differs.
 */
#ifndef AS_STORE_SQL_H
#define AS_STORE_SQL_H

#include "model/outbox.h"
#include "store/store.h"
#include "util/buf.h"

/* How a backend spells what the shared SQL writes. */
typedef struct as_sql_dialect {
	const char *temp;		/* the temp schema: "temp", "pg_temp" */
	const char *true_lit;		/* "1", "true" */
	const char *text_type;		/* "TEXT", "text" */
	const char *temp_suffix;	/* after CREATE TEMP TABLE t(...) */
	const char *(*type)(as_type t); /* a mapped column's type */
} as_sql_dialect;

/* A backend connection as the shared SQL drives it. */
typedef struct as_sql {
	const as_sql_dialect *d;
	void *conn;
	/* Run sql (no result); what names the step in an error. */
	int (*exec)(void *conn, const char *sql, const char *what,
		    as_error *err);
} as_sql;

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

#endif
