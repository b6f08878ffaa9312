/*
 * Engine internals shared by its files: the table spec built from a
 * dataset, record mapping, and the run lifecycle used by the CLI driver.
 */
#ifndef AS_ENGINE_H
#define AS_ENGINE_H

#include <jansson.h>
#include <pthread.h>

#include "config/config.h"
#include "store/store.h"
#include "util/buf.h"
#include "util/json.h"

/* Build the table spec of a dataset.  key/nkey override the configured key
 * (a Singer SCHEMA's key_properties); NULL keeps the configured one. */
int as_table_build(as_table *t, const as_dataset_cfg *ds, char *const *key,
		   size_t nkey, as_error *err);
void as_table_clear(as_table *t);
/* Append a column (the spec grows as inference finds fields). */
int as_table_add_col(as_table *t, const char *name, const char *path,
		     as_type type, unsigned flags);
/* Switch an inferring spec to the key + `data` layout of a table made by
 * an earlier version (describe set t->legacy_json). */
int as_table_json_layout(as_table *t, const as_dataset_cfg *ds);

/* Take the lease of t (as_table_lease) for rc->owner for rc->lease_ttl_ms,
 * setting rc->token (invariant 6); AS_ELEASE names the holder, and for a
 * scoped dataset says that the lease is its table's (lease.c). */
int as_lease_acquire(as_store *st, const as_table *t, as_run_ctx *rc,
		     as_error *err);

/* Map one record (a JSON object) into a row appended to the batch.
 * Resolves AS_TYPE_AUTO columns from the record when still unresolved.
 * raw/rawlen: the record's text when it came from a line (kept as the
 * `data` column verbatim), or NULL.  An inferring table (t->infer) that
 * needs a new column or a widening for rec returns AS_ESCHEMA and leaves t
 * as it was: as_schema_evolve changes it, on the caller's thread. */
int as_record_map(as_table *t, json_t *rec, const char *raw, size_t rawlen,
		  const char *where, as_batch *b, unsigned flags,
		  as_error *err);
/* as_record_map flags: fields with no column are left out (the contract
 * discards them) rather than AS_ESCHEMA. */
#define AS_MAP_SKIP_UNKNOWN 1u

/* The same from the record's text, without a jansson value, for a flat
 * record (every value a scalar, util/jflat.h) that maps without an error
 * or a schema change: 0 (row added), AS_ENOMEM, or AS_MAP_DECLINED, when
 * the caller maps it with as_json_parse_record and as_record_map, which
 * give the exact error or the change.  Never changes t. */
int as_record_map_flat(as_table *t, const char *raw, size_t rawlen,
		       const char *where, as_batch *b, unsigned flags,
		       as_error *err);
#define AS_MAP_DECLINED 1

/* Convert "COL=VALUE" for a scope column to a typed value in arena a. */
int as_scope_value(const as_table *t, const char *spec, as_val *out,
		   size_t *col, as_arena *a, as_error *err);

/* A new row at the end of the batch with room for ncols values (not yet
 * counted in nrows: the caller commits it with b->nrows++). */
as_row *as_batch_add(as_batch *b, size_t ncols);
void as_batch_init(as_batch *b);
void as_batch_reset(as_batch *b);
void as_batch_free(as_batch *b);

#endif
