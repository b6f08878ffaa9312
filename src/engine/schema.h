/*
 * Schema inference and evolution (schema.c): names, types, the walk over a
 * record's fields, and the changes a run makes to its table spec.
 */
#ifndef AS_ENGINE_SCHEMA_H
#define AS_ENGINE_SCHEMA_H

#include <sys/types.h>

#include "engine/engine.h"

typedef struct as_schema_stats {
	int contract_applies; /* the table exists: the contract holds */
	int64_t added;	      /* columns added by evolution */
	int64_t discarded_values;
	int64_t discarded_rows;
} as_schema_stats;

/* Append the column name of one field name to out: lower case, a '_'
 * before an upper-case letter that follows a lower-case letter or a digit
 * (camelCase), each run of characters other than [a-z0-9_] as one '_', and
 * a '_' in front of a leading digit (or for an empty name). */
int as_schema_norm(const char *in, size_t n, as_buf *out);
/* Whether a field name is already its column name ([a-z_][a-z0-9_]*). */
int as_schema_plain(const char *in, size_t n);
/* The inferred type of a value (AS_TYPE_AUTO for null). */
as_type as_schema_type_of(const json_t *v);
/* 1: v fits a column of type col; 0: a conflict; -1: an integer column
 * that must widen to real. */
int as_schema_fits(as_type col, const json_t *v);
ssize_t as_schema_find(const as_table *t, const char *name, size_t *hint);
const as_col *as_schema_configured(const as_table *t, const char *path);
/* AS_EUSAGE when column c, found by name, was made from another field. */
int as_schema_collision(const as_table *t, const as_col *c, const char *name,
			const char *path, as_error *err);

/* Called for each leaf field (not null) with its column name and path. */
typedef int (*as_schema_visit)(void *ud, as_table *t, const char *name,
			       const char *path, json_t *v, size_t *hint,
			       const char *where, as_error *err);
int as_schema_walk(as_table *t, json_t *rec, const char *where,
		   as_schema_visit visit, void *ud, as_error *err);

/* Add the columns rec needs, widen integer columns that see a real, or
 * apply the contract: AS_EINPUT (freeze), AS_EDISCARD (discard_row),
 * AS_EUSAGE (two fields, one column).  Caller's thread only. */
int as_schema_evolve(as_table *t, json_t *rec, const char *where,
		     as_schema_stats *st, as_error *err);

/* Singer SCHEMA: add the columns a JSON Schema's properties type
 * (integer, number, string, string with format date-time, boolean,
 * array; objects flattened like records; ["null", T] is T), unless a
 * column of that name exists.  Caller's thread only. */
int as_schema_declare(as_table *t, json_t *schema, as_schema_stats *st,
		      as_error *err);

#endif
