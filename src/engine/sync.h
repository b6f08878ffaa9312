/*
 * The sync driver: one dataset's source pulled into one run, from lease to
 * publish.  This is what `atomsync run` and `atomsync load` execute.
 */
#ifndef AS_ENGINE_SYNC_H
#define AS_ENGINE_SYNC_H

#include "engine/run.h"

/* The public progress report (include/atomsync.h). */
typedef atomsync_progress as_progress;
typedef atomsync_progress_fn as_progress_fn;

/*
 * Run one dataset.  Returns 0 when published (info says what changed),
 * AS_EREFUSED when a guard refused it, AS_ELEASE when another worker holds
 * it, another negative code when it failed.  info (optional) receives the
 * run record whenever a run was begun (info->run_id != 0).
 */
int as_sync_dataset(as_store *st, const as_config *cfg, const char *dataset,
		    const atomsync_run_options *opt, as_progress_fn fn,
		    void *ud, atomsync_run_info *info, as_error *err);

/* Run a dataset whose Singer source takes every stream (stream: "*"):
 * each stream its own dataset "DATASET.TABLE" and table, all published in
 * ONE transaction (engine/target.c); info sums the streams' runs. */
int as_sync_every_stream(as_store *st, const as_config *cfg,
			 const as_dataset_cfg *ds,
			 const atomsync_run_options *opt, as_progress_fn fn,
			 void *ud, atomsync_run_info *info, as_error *err);

/* The run records of such a dataset: its streams' datasets' runs, newest
 * first, at most limit (0: all); free with atomsync_run_info_free. */
int as_every_stream_runs(as_store *st, const char *name, size_t limit,
			 atomsync_run_info **out, size_t *nout, as_error *err);

#endif
