/*
 * atomsync: copy records from an external source into a database table,
 * publishing each run all at once or not at all.
 *
 * This is the whole public C API.  A program opens a store, loads a config
 * (or builds one in memory), and either runs a dataset with its configured
 * source (atomsync_sync, what `atomsync run` does) or feeds a run itself:
 * begins it, puts records with checkpoints, and publishes.  Status, run
 * records, rollback, verification and the outbox are here too; the
 * `atomsync` command is the first client.  Link with `pkg-config --libs
 * atomsync` or CMake's find_package(atomsync).
 *
 * Conventions: functions return 0 on success or a negative ATOMSYNC_E*
 * value; the message is in the atomsync_error passed in.  A `T **out`
 * result is owned by the caller and freed with the matching *_free()
 * function, which accepts NULL.  A returned `const T *` is borrowed.
 */
#ifndef ATOMSYNC_H
#define ATOMSYNC_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ATOMSYNC_VERSION "0.1.0"

/* Return codes (the same numbers as the internal AS_E* codes). */
#define ATOMSYNC_OK 0
#define ATOMSYNC_ERROR -1
#define ATOMSYNC_EUSAGE -2   /* bad config or arguments */
#define ATOMSYNC_ESOURCE -3  /* the source failed */
#define ATOMSYNC_EINPUT -4   /* a bad record */
#define ATOMSYNC_ESTORE -5   /* the store failed */
#define ATOMSYNC_EREFUSED -6 /* a guard refused the publish */
#define ATOMSYNC_ELEASE -7   /* another worker holds the dataset */
#define ATOMSYNC_EFENCED -8  /* this worker lost its lease mid-run */
#define ATOMSYNC_ENOMEM -9
#define ATOMSYNC_EINTR -10

typedef struct atomsync_error {
	int code;	  /* ATOMSYNC_E* */
	long native;	  /* errno, SQLite result code, ... */
	char sqlstate[6]; /* PostgreSQL SQLSTATE or "" */
	char msg[1024];	  /* one line */
} atomsync_error;

typedef struct atomsync_store atomsync_store;
typedef struct atomsync_config atomsync_config;
typedef struct atomsync_run atomsync_run;

/* One row of the run records (invariant 10). */
typedef struct atomsync_run_info {
	int64_t run_id;
	char *dataset;
	char *kind;	   /* "sync", "rollback", "verify" */
	char *mode;	   /* "full", "incremental", "scoped", "append" */
	char *status;	   /* active, publishing, completed, failed, refused */
	char *started_at;  /* ISO 8601 UTC */
	char *finished_at; /* NULL while running */
	int64_t seen, inserted, updated, unchanged, deleted, rejected;
	int64_t duplicates;   /* records replaced by a later one of the same key
			       */
	int64_t resumed_from; /* run whose checkpoint this one continued, or 0
			       */
	char *error;	      /* NULL when none */
	/* Schema inference: the columns the run's publish added and widened
	 * to real (JSON arrays of names; NULL: none), and the fields and
	 * records its schema_contract discarded. */
	char *columns_added;
	char *columns_widened;
	int64_t discarded_values, discarded_rows;
} atomsync_run_info;

typedef struct atomsync_run_options {
	int restart;	     /* discard a resumable checkpoint */
	int allow_empty;     /* publish an empty full delivery */
	int allow_deletes;   /* exceed max_delete_fraction */
	const char **scopes; /* scoped mode: "COL=VALUE" scopes to replace */
	size_t nscopes;
	/* With check_last_run: once the lease is held, the run is begun only
	 * if the dataset's newest run on record is still last_run (0: none);
	 * otherwise ATOMSYNC_ELEASE and nothing is done.  A scheduler that
	 * decided from the records that a run is due uses it so that a fleet
	 * runs each slot once. */
	int check_last_run;
	int64_t last_run;
} atomsync_run_options;

/* Progress of a running sync, reported about every half second and once
 * more at the end (done = 1). */
typedef struct atomsync_progress {
	const char *dataset;
	int64_t records; /* delivered by the source */
	int64_t pages;	 /* HTTP pages */
	int64_t bytes;	 /* bytes read */
	double elapsed;	 /* seconds since the run began */
	int done;	 /* the last call for this run */
} atomsync_progress;

typedef void (*atomsync_progress_fn)(const atomsync_progress *p, void *ud);

/* ---- configuration ---- */

/* Read atomsync.yml; errors are "file:line:col: message". */
int atomsync_config_load(atomsync_config **out, const char *path,
			 atomsync_error *err);
int atomsync_config_parse(atomsync_config **out, const char *text, size_t len,
			  const char *name, atomsync_error *err);
void atomsync_config_free(atomsync_config *cfg);
/* The store URL of the config ("sqlite:PATH", "postgres://..."). */
const char *atomsync_config_store(const atomsync_config *cfg);
size_t atomsync_config_ndatasets(const atomsync_config *cfg);
const char *atomsync_config_dataset_name(const atomsync_config *cfg, size_t i);
/* Replace every secret of cfg (values of ${VAR} in store, cache, URLs,
 * headers, params, webhooks) in msg by "***", in place. */
void atomsync_config_redact(const atomsync_config *cfg, char *msg, size_t cap);

/*
 * A config built in memory: a store and datasets added one by one, each
 * read from a file or stdin (what `atomsync load` runs).  Every string is
 * copied.  Other settings take their atomsync.yml defaults.
 */
typedef struct atomsync_dataset_spec {
	const char *name;  /* dataset name; also the table unless table set */
	const char *table; /* NULL: name */
	const char *key;   /* "col[,col...]"; NULL only with format singer */
	const char *mode; /* "full" (NULL), "incremental", "scoped", "append" */
	const char *scope;   /* scoped: "col[,col...]" */
	const char *cursor;  /* incremental: the cursor column; NULL: none
			      * (each run upserts, no cursor is kept) */
	const char *file;    /* path, or NULL / "-" for stdin */
	const char *format;  /* "jsonl" (NULL) or "singer" */
	int64_t batch_size;  /* records per staging commit; 0: default */
	int64_t max_rejects; /* bad records tolerated; -1: default (0) */
	const char *stream;  /* singer: the stream taken; NULL: the first */
	const char *schema;  /* "infer" (NULL) or "json" (key + data) */
	/* "evolve" (NULL), "freeze", "discard_value" or "discard_row" */
	const char *schema_contract;
} atomsync_dataset_spec;

int atomsync_config_new(atomsync_config **out, const char *store_url,
			atomsync_error *err);
/* ATOMSYNC_EUSAGE naming the field when the spec is not usable. */
int atomsync_config_add_dataset(atomsync_config *cfg,
				const atomsync_dataset_spec *spec,
				atomsync_error *err);

/* ---- stores ---- */

/* url: "sqlite:PATH" (or a path ending .db/.sqlite), "postgres://...". */
int atomsync_store_open(atomsync_store **out, const char *url,
			atomsync_error *err);
void atomsync_store_free(atomsync_store *store);

/* Run records of a dataset, newest first; at most limit (0: all). */
int atomsync_runs_list(atomsync_store *store, const char *dataset, size_t limit,
		       atomsync_run_info **out, size_t *n, atomsync_error *err);
void atomsync_run_info_free(atomsync_run_info *infos, size_t n);
/* Free the strings of one record filled by atomsync_run_publish(). */
void atomsync_run_info_clear(atomsync_run_info *info);

/* What `atomsync status --json` shows of one configured dataset. */
typedef struct atomsync_dataset_status {
	char *dataset;
	char *table;
	char *mode;
	int64_t rows;		    /* -1 when the table does not exist yet */
	int64_t published_run;	    /* 0 when never published */
	char *cursor;		    /* JSON or NULL */
	int resumable;		    /* a checkpoint waits */
	char *lease_owner;	    /* NULL when free */
	double lease_expires;	    /* Unix seconds */
	atomsync_run_info last_run; /* newest sync or rollback; run_id 0:
				     * none */
	atomsync_run_info last_verify; /* newest verify; run_id 0: none */
} atomsync_dataset_status;

/* Status of every dataset of cfg, in config order, or of the one named
 * (ATOMSYNC_EUSAGE when cfg has no such dataset). */
int atomsync_status(atomsync_store *store, const atomsync_config *cfg,
		    const char *dataset, atomsync_dataset_status **out,
		    size_t *n, atomsync_error *err);
void atomsync_dataset_status_free(atomsync_dataset_status *s, size_t n);

/* ---- running a dataset ---- */

/*
 * Run one dataset with its configured source, exactly what `atomsync run
 * DATASET` does: lease, resume or start, stage, publish, deliver the
 * outbox.  Returns 0 when published, ATOMSYNC_EREFUSED when a guard
 * refused it, ATOMSYNC_ELEASE when another worker holds it, another
 * negative code when it failed.  opt and fn may be NULL; info (optional)
 * receives the run record whenever a run was begun (run_id != 0; free its
 * strings with atomsync_run_info_clear).
 */
int atomsync_sync(atomsync_store *st, const atomsync_config *cfg,
		  const char *dataset, const atomsync_run_options *opt,
		  atomsync_progress_fn fn, void *ud, atomsync_run_info *info,
		  atomsync_error *err);

/*
 * Restore the dataset's table to its content after run to_run, in one
 * transaction recorded as a run of kind "rollback" (info receives it).
 * ATOMSYNC_EUSAGE, nothing changed, when the history cannot restore that
 * run; ATOMSYNC_ELEASE when another worker holds the dataset.
 */
int atomsync_rollback(atomsync_store *st, const atomsync_config *cfg,
		      const char *dataset, int64_t to_run,
		      atomsync_run_info *info, atomsync_error *err);

/* The outcome of atomsync_verify, as `atomsync verify --json` prints it. */
typedef struct atomsync_verify_result {
	int64_t run_id; /* the verify run on record; 0 if none */
	int64_t live_rows;
	int count_checked; /* 0: not available (count_note says why) */
	int count_ok;
	int64_t source_total;
	char count_note[256];
	int sample_checked; /* 0: not available (sample_note says why) */
	size_t sampled, matched, differing, missing;
	double accuracy; /* matched / sampled; 1 when nothing sampled */
	char sample_note[256];
	double threshold; /* the dataset's verify_threshold */
	int passed;
	char *mismatches; /* JSON array [{key, missing, error, columns}] */
	char summary[512];
} atomsync_verify_result;

/* Check the live table against the source (count, and sample rows
 * re-fetched through item_url).  Nonzero only when the check itself could
 * not be made; out->passed says whether the data passed. */
int atomsync_verify(atomsync_store *st, const atomsync_config *cfg,
		    const char *dataset, size_t sample,
		    atomsync_verify_result **out, atomsync_error *err);
void atomsync_verify_result_free(atomsync_verify_result *r);

/* ---- the outbox (cache invalidations and webhooks, invariant 7) ---- */

typedef struct atomsync_outbox_event {
	int64_t event_id, run_id;
	char *dataset;
	char *target;	    /* "redis" | "webhook" */
	char *status;	    /* "pending" | "delivered" */
	int64_t attempts;   /* delivery attempts so far */
	char *last_error;   /* NULL when none */
	char *created_at;   /* ISO 8601 UTC */
	char *delivered_at; /* NULL while pending */
	int64_t keys;	    /* keys the event invalidates */
	char *payload;	    /* JSON; NULL unless asked for */
} atomsync_outbox_event;

#define ATOMSYNC_OUTBOX_PENDING 1 /* only pending events */
#define ATOMSYNC_OUTBOX_PAYLOAD 2 /* fill payload (it may be megabytes) */

/* Events of dataset (NULL: all), oldest first.  With
 * ATOMSYNC_OUTBOX_PENDING: the pending events after after_id, at most limit
 * (0: all).  Without: every pending event and the last limit delivered ones
 * (what `atomsync outbox list` shows).  ATOMSYNC_OUTBOX_PAYLOAD fills
 * payload. */
int atomsync_outbox_list(atomsync_store *st, const char *dataset,
			 int64_t after_id, size_t limit, unsigned flags,
			 atomsync_outbox_event **out, size_t *n,
			 atomsync_error *err);
void atomsync_outbox_events_free(atomsync_outbox_event *v, size_t n);

typedef struct atomsync_drain_stats {
	int64_t delivered; /* events delivered by this drain */
	int64_t failed;	   /* events tried and left pending */
	char first_error[512];
} atomsync_drain_stats;

/* Deliver the pending events of dataset (NULL: all), in order, through
 * the config's cache and webhooks.  Nonzero only when the store fails. */
int atomsync_outbox_drain(atomsync_store *st, const atomsync_config *cfg,
			  const char *dataset, atomsync_drain_stats *out,
			  atomsync_error *err);

/* ---- runs fed by the caller ---- */

/*
 * Begin a run of the named dataset: take the dataset's lease (or fail with
 * ATOMSYNC_ELEASE), put the run on record, and either continue the
 * interrupted run's staging or start a new one.  The live table is not
 * touched until atomsync_run_publish().
 */
int atomsync_run_begin(atomsync_run **out, atomsync_store *store,
		       const atomsync_config *cfg, const char *dataset,
		       const atomsync_run_options *opt, atomsync_error *err);

/* The checkpoint to resume the source from, or NULL when starting over. */
const char *atomsync_run_resume_checkpoint(const atomsync_run *run);
int64_t atomsync_run_id(const atomsync_run *run);

/*
 * Put one record (a JSON object).  where names its origin for messages
 * ("addons.jsonl:1812").  A bad record is counted as a reject when the
 * dataset allows rejects, else the call fails with ATOMSYNC_EINPUT.
 */
int atomsync_run_put(atomsync_run *run, const char *json, size_t len,
		     const char *where, atomsync_error *err);

/*
 * Everything put so far is covered by this checkpoint: a later run may
 * resume from it.  It is committed together with the staged records.
 */
int atomsync_run_checkpoint(atomsync_run *run, const char *checkpoint,
			    atomsync_error *err);

/*
 * The source delivered everything (a confirmed end): publish the run in one
 * transaction.  Fails with ATOMSYNC_EREFUSED when a guard refuses it; the
 * live table is then unchanged.  info (optional) receives the run record.
 */
int atomsync_run_publish(atomsync_run *run, atomsync_run_info *info,
			 atomsync_error *err);

/*
 * Stop the run without publishing.  It stays on record as failed with
 * reason, and its checkpoint stays for the next run to resume.
 */
int atomsync_run_abort(atomsync_run *run, const char *reason,
		       atomsync_error *err);

/* Release the lease and free the run (aborting it if still open). */
void atomsync_run_free(atomsync_run *run);

/* ---- a Singer target ---- */

typedef struct atomsync_target_options {
	const char
		*prefix; /* in front of every made table's name; NULL: none */
	/* Optional: a dataset whose source has format singer and `stream: S`
	 * takes stream S (its table, key, mode, columns, guard); NULL: none.
	 * Its store is not used: every stream goes to store_url. */
	const atomsync_config *cfg;
	int allow_empty; /* as atomsync_run_options */
	int allow_deletes;
	/* As atomsync_dataset_spec, for every table made for a stream:
	 * "infer" (NULL: typed columns from the SCHEMA and the records) or
	 * "json" (key + data); the contract, NULL: "evolve". */
	const char *schema;
	const char *schema_contract;
} atomsync_target_options;

/* Given the last STATE value (compact JSON) once the data it covers is
 * published. */
typedef void (*atomsync_state_fn)(const char *state, void *ud);

/*
 * Read Singer messages from fd to its end, as a Singer target: every stream
 * its own dataset and table (named after the stream: lower case, other
 * characters than letters and digits made _, the prefix in front; mode
 * incremental; key from SCHEMA key_properties, or a hash of the record's
 * content, appended, for a stream without them), each with its own run
 * and run record.  At the end every run is published in ONE transaction
 * across all the tables; then on_state is given the last STATE (not when
 * any stream's publish failed or was refused: then no table is
 * published).  *infos (free with
 * atomsync_run_info_free) receives one run record per stream, also on
 * failure.  An error in the input (file:line "stdin:N") publishes nothing.
 */
int atomsync_target(const char *store_url, int fd,
		    const atomsync_target_options *opt,
		    atomsync_state_fn on_state, void *ud,
		    atomsync_run_info **infos, size_t *ninfo,
		    atomsync_error *err);

const char *atomsync_strerror(int code);

#ifdef __cplusplus
}
#endif

#endif
