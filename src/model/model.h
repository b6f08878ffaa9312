/*
 * The model types the configuration and the store share: a column's type,
 * a dataset's mode and its history kind, with their names.  Neither layer
 * includes the other for them.
 */
#ifndef AS_MODEL_MODEL_H
#define AS_MODEL_MODEL_H

#include <stddef.h>

typedef enum as_type {
	AS_TYPE_AUTO = 0, /* key column with no declared type: inferred */
	AS_TYPE_INTEGER,
	AS_TYPE_REAL,
	AS_TYPE_TEXT,
	AS_TYPE_BOOLEAN,
	AS_TYPE_JSON,
	AS_TYPE_TIMESTAMP
} as_type;

typedef enum as_mode {
	AS_MODE_FULL = 0,
	AS_MODE_INCREMENTAL,
	AS_MODE_SCOPED,
	AS_MODE_APPEND
} as_mode;

/* How a dataset without declared columns (or with `infer: true`) maps the
 * fields of a record: inferred typed columns (the default), or the key
 * columns plus `data` (`schema: json`). */
typedef enum as_schema { AS_SCHEMA_INFER = 0, AS_SCHEMA_JSON } as_schema;

/* What a run does with a field its table has no column for. */
typedef enum as_contract {
	AS_CONTRACT_EVOLVE = 0,	   /* a new nullable column */
	AS_CONTRACT_FREEZE,	   /* a bad record naming the field */
	AS_CONTRACT_DISCARD_VALUE, /* the field is dropped and counted */
	AS_CONTRACT_DISCARD_ROW	   /* the record goes to the reject file */
} as_contract;

typedef enum as_history {
	AS_HISTORY_NONE = 0,
	AS_HISTORY_SNAPSHOT,
	AS_HISTORY_SCD2
} as_history;

/* Names as written in atomsync.yml and the run records, indexed by value
 * (as_type_names[AS_TYPE_AUTO] is NULL: it is never written). */
extern const char *const as_type_names[7];
extern const char *const as_mode_names[4];
extern const char *const as_history_names[3];
extern const char *const as_schema_names[2];
extern const char *const as_contract_names[4];

const char *as_mode_name(as_mode m);
const char *as_type_name(as_type t);

#endif
