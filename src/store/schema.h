/*
 * Schema evolution shared by the store backends (store/schema.c).
 */
#ifndef AS_STORE_SCHEMA_H
#define AS_STORE_SCHEMA_H

#include "store/store.h"
#include "util/buf.h"

/* Append a column to the spec (it grows as inference finds fields). */
int as_table_push_col(as_table *t, const char *name, const char *path,
		      as_type type, unsigned flags);

/*
 * Read an existing table's columns (names and types, in physical order)
 * into t: configured columns must match, an inferring spec adopts the
 * columns beyond them (stage: flagged as new, the run being resumed added
 * them), the position of the _atomsync columns sets t->nfront, and a key +
 * `data` table sets t->legacy_json instead.  *nuser: the table's columns
 * before and after the _atomsync ones.  -1: the table does not fit.
 */
int as_schema_adopt(as_table *t, const char *const *names, const as_type *types,
		    size_t n, int stage, size_t *nuser);

/* atomsync_columns said column name was made from field (its dotted path
 * in the record) with type: the adopted column takes them, so a later
 * field that normalises to the same name is a collision, and a widened
 * SQLite column is real. */
void as_schema_known(as_table *t, const char *name, const char *type,
		     const char *field);

/* The names of t's columns with flag (AS_COL_NEW, AS_COL_WIDENED) as a
 * JSON array; NULL when out of memory. */
char *as_schema_cols_json(const as_table *t, unsigned flag);

/* "ALTER TABLE t ADD COLUMN c type" or, widen, "... ALTER COLUMN c TYPE". */
int as_schema_alter_sql(as_buf *b, const char *table_q, const as_col *c,
			const char *sqltype, int widen);

#endif
