/*
 * The run object behind atomsync_run, and the entry points the sync driver
 * uses beyond the public API (parsed records, Singer keys, rejects counted
 * for records the source could not even parse).  What the run's own files
 * share beyond this is in run_int.h.
 */
#ifndef AS_ENGINE_RUN_H
#define AS_ENGINE_RUN_H

#include <pthread.h>
#include <stdio.h>

#include "engine/engine.h"
#include "engine/schema.h"
#include "model/outbox.h"

/* A line waiting in a chunk to be parsed and mapped. */
typedef struct as_chunk_line {
	size_t off, len; /* the line, in the chunk's buffer */
	size_t woff;	 /* its "where", in the chunk's buffer */
	as_error *err;	 /* why it was refused, or NULL */
	size_t row;	 /* else: its row in its half */
} as_chunk_line;

typedef struct as_chunk {
	as_buf buf; /* the lines' bytes and "where" strings */
	as_chunk_line *lines;
	size_t n, cap;
} as_chunk;

struct atomsync_run {
	/* the run (run.c): what it syncs, its run record and its outcome */
	as_store *store;
	const as_config *cfg;
	const as_dataset_cfg *ds;
	as_table table;
	as_run_ctx rc;
	as_outbox_plan outbox; /* made before the publish (rc.outbox) */
	atomsync_run_options opt;
	int leased, done;
	int resumable;		/* the source can resume from a checkpoint */
	int64_t seen;		/* records delivered (lineage total) */
	double started;		/* wall clock */
	as_counts counts;	/* of the publish */
	as_schema_stats schema; /* inference: columns added, values and
				 * records discarded by the contract */
	/* the checkpoint (run.c), committed with the batch that covers it */
	char *pending_cp; /* newest checkpoint, not yet committed */
	size_t cp_rows;	  /* rows of the batch it covers */
	int64_t seen_at_cp, rejected_at_cp;
	/* failures and rejects (reject.c) */
	int failed;
	as_error failure;    /* the first failure; sticky */
	int64_t rejected;    /* refused on this thread (lineage total; rmu) */
	int64_t conflicts;   /* refused by the store while writing (rmu) */
	FILE *rejects;	     /* the reject file, opened at the first reject */
	char *reject_path;   /* owned */
	pthread_mutex_t rmu; /* reject counts and the reject file */
	/* staging (stage.c): the batch being filled, handed to the writer */
	as_batch batch;
	int prepared;	    /* the staging table is ready */
	int stage_failed;   /* a staging commit failed: its rows were tried */
	int64_t batch_size; /* rows per staging commit at a checkpoint */
	int64_t max_batch;  /* rows before a commit without a checkpoint */
	double last_flush;  /* monotonic */
	int64_t batches, staged;
	/* the writer thread (stage.c): one batch in flight (wbusy), in order */
	pthread_t writer;
	int writing, wbusy, wstop;
	as_batch wbatch; /* the batch being written */
	as_error werr;	 /* the first failed write */
	pthread_mutex_t wmu;
	pthread_cond_t wcv;
	/* matching lines to live rows in key order (match.c; the store's
	 * scan_*) */
	int scan_tried, scanning, scan_have;
	as_scan_row scan_row; /* the live row under the cursor */
	size_t scan_ncols;    /* values in scan_row.v */
	as_arena scan_arena;  /* its text values */
	int64_t scan_hits, scan_misses;
	uint64_t line_seed; /* seed of the line hashes: the fingerprint */
	/* spans (match.c): runs of hits staged as one row each (AS_ROW_SPAN) */
	int span_ok;	  /* hits may still make spans */
	size_t span_at;	  /* the open span's row in the batch; NO_SPAN */
	int have_last;	  /* last_key holds the last record's key */
	as_val *last_key; /* nkey values; text in last_text[i] */
	as_buf *last_text;
	int64_t spans; /* span rows made */
	/* parallel mapping of parsed lines (mapper.c; chunk of raw lines; two
	 * halves) */
	int deferred;	     /* errors may surface at a later call (chunks) */
	int key_from_schema; /* the key came from a Singer SCHEMA this run */
	char *bookmark;	     /* Singer: the last STATE value of this run */
	int warned_activate; /* about an ACTIVATE_VERSION not applied */
	as_chunk chunk;
	as_batch half[2]; /* rows of each half; values in the batch's arenas */
	pthread_t mapper;
	int mapper_on, mbusy, mstop;
	size_t mlo, mhi; /* the mapper's half of the chunk */
	pthread_mutex_t mmu;
	pthread_cond_t mcv;
	/* the lease renewal thread and its own connection (lease.c) */
	as_store *renew_store;
	pthread_t renewer;
	int renewing, stop;
	volatile int lease_lost;
	pthread_mutex_t mu;
	pthread_cond_t cv;
};

int as_run_begin(atomsync_run **out, as_store *st, const as_config *cfg,
		 const char *dataset, const atomsync_run_options *opt,
		 int resumable, as_error *err);
int as_run_put_value(atomsync_run *run, json_t *rec, const char *raw,
		     size_t rawlen, const char *where, as_error *err);
/* A record the source could not parse: counted and rejected (or fatal). */
int as_run_reject(atomsync_run *run, const as_error *why, const char *where,
		  const char *raw, size_t rawlen, as_error *err);
/* Singer SCHEMA: the key when the dataset configures none, typed as the
 * schema declares (ktype: NULL or nkey as_type values); hashed: the stream
 * has no key_properties (keyed by content, appended). */
int as_run_set_key(atomsync_run *run, char *const *key, const int *ktype,
		   size_t nkey, int hashed, as_error *err);
int as_run_discard_checkpoint(atomsync_run *run, as_error *err);
/* Singer ACTIVATE_VERSION: publish this run as a full refresh (a full or
 * incremental table; an append or scoped one is left as it is, with a
 * warning).  where names the message. */
/* Publish runs (each begun on its own connection to one store, fed and
 * ended) in ONE transaction (invariant 1 across tables): every guard is
 * checked, and one refusal or failure leaves all of them unpublished, each
 * ended refused or failed with why.  infos (n, or NULL) receives each
 * run's outcome.  Not for scoped or history datasets. */
int as_run_publish_group(atomsync_run **runs, size_t n,
			 atomsync_run_info *infos, as_error *err);
int as_run_full_refresh(atomsync_run *run, const char *where, as_error *err);
/* Singer SCHEMA: the columns its JSON Schema types, for an inferring
 * table (engine/schema.c, as_schema_declare). */
int as_run_declare(atomsync_run *run, json_t *schema, as_error *err);
void as_run_allow_deferred(atomsync_run *run);
int as_run_wants_checkpoint(const atomsync_run *run);
const as_error *as_run_failure(const atomsync_run *run);

#endif
