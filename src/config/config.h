/*
 * atomsync.yml read into validated structs.  Everything the engine, the
 * sources and the stores need about a dataset is here; nothing below this
 * layer reads YAML.  Errors are reported as "file:line:col: message".
 */
#ifndef AS_CONFIG_H
#define AS_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "model/model.h"
#include "util/error.h"

typedef enum as_source_kind {
	AS_SOURCE_FILE = 1,
	AS_SOURCE_STDIN,
	AS_SOURCE_EXEC,
	AS_SOURCE_HTTP
} as_source_kind;

typedef enum as_format { AS_FORMAT_JSONL = 0, AS_FORMAT_SINGER } as_format;

typedef enum as_pagination {
	AS_PAGE_NONE = 0,
	AS_PAGE_OFFSET,
	AS_PAGE_PAGE,
	AS_PAGE_CURSOR,
	AS_PAGE_NEXT_URL,
	AS_PAGE_LINK_HEADER
} as_pagination;

/* A "file:line:col" origin of a config value, for later error messages. */
typedef struct as_config_loc {
	const char *file; /* borrowed from as_config.path */
	int line, col;	  /* 1-based; 0 when unknown */
} as_config_loc;

typedef struct as_kv {
	char *key;
	char *value; /* ${VAR} already expanded */
} as_kv;

typedef struct as_column_cfg {
	char *name;
	as_type type;
	char *path; /* dotted path in the record; defaults to name */
	as_config_loc loc;
} as_column_cfg;

typedef enum as_http_auth {
	AS_AUTH_NONE = 0,
	AS_AUTH_BEARER,
	AS_AUTH_BASIC,
	AS_AUTH_OAUTH2
} as_http_auth;

/* One partition of a listing: params added to each of its requests. */
typedef struct as_http_partition {
	as_kv *params;
	size_t nparams;
} as_http_partition;

typedef struct as_http_cfg {
	char *url;
	int method_post; /* method: POST */
	char *body;	 /* POST: the JSON body template (compact text) */
	as_kv *params;
	size_t nparams;
	as_kv *headers;
	size_t nheaders;
	char *records; /* dotted path of the record array; NULL: page is the
			  array */
	int records_from_values; /* records: a.* / records_from: values:
				    the object's values are the records */
	char *record_key_as;	 /* ... each gets its key as this field */
	as_pagination style;
	char *offset_param;
	char *limit_param;
	int64_t limit; /* page size; 0: unset */
	char *page_param;
	int64_t first_page; /* default 1 */
	char *cursor_param;
	char *cursor_path;
	char *next_url_path;
	char *total_path;
	char *error_path;   /* a 2xx with a value here failed */
	char **error_retry; /* ... and is retried when it is one of these */
	size_t nerror_retry;
	char *has_more_path;	  /* the listing ends when this is false */
	char *stop_path;	  /* the listing ends when this is true */
	char *cursor_from_record; /* next cursor: this field of the last record
				   */
	double total_tolerance;	  /* fraction; 0: exact count required */
	int cursor_format;   /* {cursor}: 0 iso8601, iso8601_seconds, epoch,
				epoch_ms */
	int concurrency;     /* default 1 */
	double rate_per_sec; /* 0: unlimited; "600/min" -> 10.0 */
	int64_t rate_burst;  /* token bucket size; default 1 */
	int64_t timeout_ms;  /* per request; default 30000 */
	int64_t deadline_ms; /* whole run; 0: none */
	int retry_attempts;  /* default 5 */
	int64_t retry_initial_ms; /* default 500 */
	int64_t retry_max_ms;	  /* default 30000 */
	int breaker_failures;	  /* default 10 */
	char *item_url;
	char *ca_bundle;
	int insecure; /* verify TLS unless set (tls_verify: false) */
	as_http_partition *partitions; /* NULL: one listing */
	size_t npartitions;
	as_http_auth auth;
	char *bearer;	       /* auth.bearer */
	char *user, *password; /* auth.basic */
	char *token_url;       /* auth.oauth2 (client credentials) */
	char *client_id, *client_secret, *audience;
	char **scopes;
	size_t nscopes;
	int client_auth_body; /* client_auth: body (default basic) */
	/* Names of params/headers whose values came from ${VAR}: redacted. */
	char **secrets;
	size_t nsecrets;
} as_http_cfg;

typedef struct as_source_cfg {
	as_source_kind kind;
	char *path;    /* file */
	char *command; /* exec; may hold {state} and {cursor} */
	char *stream;  /* singer: the stream to take; NULL: the only one;
			* "*" (AS_EVERY_STREAM): every stream, each its own
			* table, one publish (engine/target.c) */
	as_format format;
	as_http_cfg http;
	as_config_loc loc;
} as_source_cfg;

#define AS_EVERY_STREAM "*"
/* A Singer source that takes every stream of the tap. */
#define as_every_stream(src)                                                   \
	((src)->format == AS_FORMAT_SINGER && (src)->stream &&                 \
	 strcmp((src)->stream, AS_EVERY_STREAM) == 0)

typedef struct as_guard_cfg {
	double max_delete_fraction; /* default 0.5 */
	int allow_empty;	    /* default 0 */
	int64_t max_rejects;	    /* default 0 */
	int64_t min_deletes;	    /* deletions up to this many never trip the
				       fraction; default 10 */
} as_guard_cfg;

/* streams: NAME: {...} of a dataset taking every stream. */
typedef struct as_stream_cfg {
	char *stream;
	char *table; /* NULL: the prefix and the stream's name */
	char **key;  /* NULL/0: the SCHEMA's key_properties */
	size_t nkey;
	int mode; /* an as_mode, -1: the dataset's */
} as_stream_cfg;

typedef struct as_dataset_cfg {
	char *name;
	char *table;	    /* defaults to name */
	char *table_prefix; /* singer, stream "*": before each stream's table */
	as_stream_cfg *streams; /* singer, stream "*": per-stream settings */
	size_t nstreams;
	int share_table; /* scoped: the table may hold other scoped datasets */
	as_mode mode;
	char **key; /* NULL/0: from Singer SCHEMA key_properties */
	size_t nkey;
	as_column_cfg *columns; /* NULL/0: key columns plus `data` */
	size_t ncolumns;
	as_schema schema;     /* without columns: inferred, or key + data */
	int infer;	      /* with columns: infer the other fields too */
	int flatten_depth;    /* nested objects flattened to this depth */
	as_contract contract; /* schema_contract */
	char *cursor; /* incremental: the column whose maximum is kept */
	char **scope; /* scoped: the scope columns */
	size_t nscope;
	as_history history;
	char **snapshot_columns;
	size_t nsnapshot_columns;
	int64_t history_keep_runs; /* 0: keep all */
	int64_t history_keep_ms;   /* 0: keep all */
	double verify_threshold;   /* default 0.99 */
	as_guard_cfg guard;
	char *reject_file; /* default "<name>.rejects.jsonl" */
	char **invalidate; /* key templates and patterns */
	size_t ninvalidate;
	char *webhook;	      /* optional URL for the outbox */
	char *notify;	      /* optional PostgreSQL NOTIFY channel */
	int64_t lease_ttl_ms; /* default 60000 */
	int64_t batch_size;   /* records per staging commit; default 10000 */
	int64_t max_record_bytes; /* default 16 MiB */
	char *schedule;	   /* daemon: "15m" or a cron expression; NULL: none */
	int64_t jitter_ms; /* daemon: added to each slot, 0..this */
	char *timezone;	   /* daemon: cron's zone; NULL: UTC */
	int64_t retry_after_failure_ms; /* daemon: first retry; default 5m */
	as_source_cfg source;
	as_config_loc loc;
} as_dataset_cfg;

/* The public atomsync_config is this struct. */
typedef struct atomsync_config {
	char *path;  /* file name used in messages */
	char *store; /* "sqlite:PATH" or postgres URL/conninfo; ${VAR} expanded
		      */
	char *cache; /* redis URL or NULL */
	as_dataset_cfg *datasets;
	size_t ndatasets;
	int max_parallel; /* serve: datasets run at once; default 2 */
	char *auth_token; /* serve: needed by the HTTP API when set */
	/* Values of every ${VAR} used in store, cache, http url, params,
	 * headers, item_url and webhook (>= 3 bytes), longest first: what
	 * as_config_redact hides. */
	char **secret_values;
	size_t nsecret_values;
} as_config;

/* Read and validate a config file.  *out is owned by the caller. */
int as_config_load(as_config **out, const char *path, as_error *err);

/* Same, from memory; name is used in messages. */
int as_config_parse(as_config **out, const char *text, size_t len,
		    const char *name, as_error *err);

void as_config_free(as_config *cfg);

const as_dataset_cfg *as_config_dataset(const as_config *cfg, const char *name);

/* Fill a dataset with every default (used by `load` and by the parser). */
void as_dataset_cfg_defaults(as_dataset_cfg *ds);
/* Why name cannot name a table (table != 0) or a column, as the words that
 * follow "table name 'x' ", or NULL when it can: not a plain identifier, or
 * reserved in any case (_atomsync*, and for tables atomsync_* and SQLite's
 * sqlite_*).  The config file and `atomsync load` apply the same rules. */
const char *as_cfg_name_problem(const char *name, int table);
/* The column that holds the whole record when 'columns' is omitted. */
#define AS_DATA_COLUMN "data"
void as_dataset_cfg_clear(as_dataset_cfg *ds);

/* "500ms", "30s", "5m", "2h", "90d" -> milliseconds; -1 if malformed. */
int64_t as_parse_duration_ms(const char *s);

/* "10/s", "600/min", "3600/h" -> events per second; -1 if malformed. */
double as_parse_rate(const char *s);

/* Replace, in place, each secret value in msg (a buffer of cap bytes) with
 * "***"; the message never grows. */
void as_config_redact(const as_config *cfg, char *msg, size_t cap);

#endif
