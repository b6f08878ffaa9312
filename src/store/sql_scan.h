/*
 * SQL text of the spans (store.h, AS_ROW_SPAN) that both SQL stores use
 * as it is: the spans table holds lo1..loK, hi1..hiK and n; the text below
 * is accepted by SQLite and PostgreSQL alike (store/sql_scan.c).
 */
#ifndef AS_STORE_SQL_SCAN_H
#define AS_STORE_SQL_SCAN_H

#include "store/sql.h"
#include "store/store.h"
#include "util/buf.h"

/* What the publish learns of a staging's spans (the stores' resolve;
 * active: taken as they are, else staged row by row). */
typedef as_sql_spans as_spans;

/* "(lo1, lo2)" with prefix "lo", or "(l."a", l."b")" with prefix NULL and
 * alias "l": the key as one row value. */
void as_sql_key_tuple(as_buf *b, const as_table *t, const char *prefix,
		      const char *alias);
/* One count: spans that end before they start or overlap the one before
 * (in key order); 0 when they can be trusted as they are. */
void as_sql_spans_overlap(as_buf *b, const as_table *t, const char *spans_q);
/* Stage every row the spans stand for as an unchanged row (key, scope and
 * cursor values, hash and line) unless its key is staged already, then
 * forget the spans: two statements. */
void as_sql_spans_materialize(as_buf *b, const as_table *t, const char *stage_q,
			      const char *spans_q, const char *live_q);
/* "(l."a", l."b") IN (SELECT "a", "b" FROM gone)": the publish's
 * deletions when spans are taken as they are. */
void as_sql_gone_filter(as_buf *b, const as_table *t, const char *live_q,
			const char *gone_q);
/* A staged row that is also live must lie between spans: the count of
 * staged rows that are live (compared with the gaps' staged rows). */
void as_sql_staged_live(as_buf *b, const as_table *t, const char *stage_q,
			const char *live_q);

#endif
