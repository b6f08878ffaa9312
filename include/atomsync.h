/*
 * atomsync: copy records from an external source into a database table,
 * publishing each run all at once or not at all.
 *
 * This is the whole public C API.  A program opens a store, loads a config
 * (or builds one in memory), begins a run of a dataset, puts records with
 * checkpoints, and publishes; the `atomsync` command is the first client.
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

/* ---- runs ---- */

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

const char *atomsync_strerror(int code);

#ifdef __cplusplus
}
#endif

#endif
