/*
 * Staging: the staging table prepared once the key and the column types
 * are known, and the writer thread that commits the filled batches to it
 * with their checkpoints, one batch in flight.
 */
#include "engine/run_int.h"
#include "util/str.h"
#include "util/time.h"

/* ---- the staging table ---- */

int as_stage_prepare(atomsync_run *run, as_error *err)
{
	const as_store_ops *ops = run->store->ops;

	if (run->prepared)
		return 0;
	if (!run->table.nkey)
		return as_error_set(
			err, AS_EUSAGE,
			"dataset %s: no key: set `key` in the dataset, "
			"or have the source send a Singer SCHEMA message "
			"with key_properties",
			run->table.dataset);
	for (size_t i = 0; i < run->table.ncols; i++)
		if (run->table.cols[i].type == AS_TYPE_AUTO)
			run->table.cols[i].type = AS_TYPE_TEXT;
	if (ops->stage_prepare(run->store, &run->rc, err))
		return err->code;
	run->prepared = 1;
	return 0;
}

int as_stage_types_resolved(const as_table *t)
{
	for (size_t i = 0; i < t->ncols; i++)
		if (t->cols[i].type == AS_TYPE_AUTO)
			return 0;
	return t->nkey > 0;
}

/* ---- the writer thread ----
 *
 * Records are parsed and mapped on the caller's thread while the previous
 * batch is written on this one, so JSON parsing and SQLite writing overlap
 * on two cores.  One batch is in flight at a time: batches, and the
 * checkpoints they carry, commit in order.  The store connection is used
 * by the writer while a batch is in flight and by the caller only when the
 * writer is idle (as_stage_wait_idle), which the mutex also orders for memory.
 */

static void *writer_main(void *arg)
{
	atomsync_run *run = arg;

	pthread_mutex_lock(&run->wmu);
	for (;;) {
		as_error err;
		int rc;

		while (!run->wbusy && !run->wstop)
			pthread_cond_wait(&run->wcv, &run->wmu);
		if (!run->wbusy)
			break;
		pthread_mutex_unlock(&run->wmu);
		/* The store adds this batch's conflicts; the earlier ones are
		 * all committed, since batches are written one at a time. */
		pthread_mutex_lock(&run->rmu);
		run->wbatch.rejected += run->conflicts;
		pthread_mutex_unlock(&run->rmu);
		as_error_clear(&err);
		rc = run->store->ops->stage_batch(run->store, &run->rc,
						  &run->wbatch, &err);
		pthread_mutex_lock(&run->wmu);
		if (rc && !run->werr.code)
			run->werr = err;
		if (!rc) {
			run->batches++;
			run->staged += (int64_t)run->wbatch.nrows;
		}
		as_batch_reset(&run->wbatch);
		run->wbusy = 0;
		pthread_cond_broadcast(&run->wcv);
	}
	pthread_mutex_unlock(&run->wmu);
	return NULL;
}

/* Wait until no batch is in flight; a failed write fails the run. */
int as_stage_wait_idle(atomsync_run *run, as_error *err)
{
	as_error werr;

	if (!run->writing)
		return 0;
	pthread_mutex_lock(&run->wmu);
	while (run->wbusy)
		pthread_cond_wait(&run->wcv, &run->wmu);
	werr = run->werr;
	pthread_mutex_unlock(&run->wmu);
	if (werr.code) {
		run->stage_failed = 1;
		*err = werr;
		return as_run_fail(run, err);
	}
	return 0;
}

void as_stage_writer_stop(atomsync_run *run)
{
	if (!run->writing)
		return;
	pthread_mutex_lock(&run->wmu);
	run->wstop = 1;
	pthread_cond_broadcast(&run->wcv);
	pthread_mutex_unlock(&run->wmu);
	pthread_join(run->writer, NULL);
	run->writing = 0;
}

/* Without a writer thread: commit the batch on the caller's thread. */
static int write_here(atomsync_run *run, as_error *err)
{
	as_batch *b = &run->batch;
	int rc;

	b->rejected += run->conflicts;
	rc = run->store->ops->stage_batch(run->store, &run->rc, b, err);
	if (rc) {
		run->stage_failed = 1;
		return rc;
	}
	run->batches++;
	run->staged += (int64_t)b->nrows;
	as_batch_reset(b);
	return 0;
}

/* Hand the batch to the writer.  with_cp: the pending checkpoint covers
 * every row of the batch and is committed with them; otherwise the staging
 * is marked as not resumable until the next checkpoint commit. */
int as_stage_flush(atomsync_run *run, int with_cp, as_error *err)
{
	as_batch tmp, *b = &run->batch;

	if (run->lease_lost)
		return as_error_set(
			err, AS_EFENCED,
			"dataset %s: this worker's lease was taken over "
			"by another worker; nothing more is committed",
			run->table.dataset);
	if (as_span_close(run, err) || as_stage_wait_idle(run, err) ||
	    as_stage_prepare(run, err))
		return err->code;
	if (with_cp && run->pending_cp) {
		b->checkpoint = as_strdup(run->pending_cp);
		b->seen = run->seen_at_cp;
		b->rejected = run->rejected_at_cp;
	} else {
		b->checkpoint = NULL;
		b->seen = run->seen;
		pthread_mutex_lock(&run->rmu);
		b->rejected = run->rejected;
		pthread_mutex_unlock(&run->rmu);
	}
	run->cp_rows = 0;
	run->last_flush = as_mono();
	if (!run->writing) {
		if (as_run_start_thread(&run->writer, writer_main, run) != 0)
			return write_here(run, err); /* no thread */
		run->writing = 1;
	}
	pthread_mutex_lock(&run->wmu);
	tmp = run->wbatch;
	run->wbatch = run->batch;
	run->batch = tmp;
	run->wbusy = 1;
	pthread_cond_broadcast(&run->wcv);
	pthread_mutex_unlock(&run->wmu);
	return 0;
}

int as_stage_flush_if_full(atomsync_run *run, as_error *err)
{
	if (run->batch.nrows >=
	    (size_t)(run->resumable ? run->max_batch : run->batch_size)) {
		if (as_stage_flush(run, 0, err))
			return as_run_fail(run, err);
	}
	return 0;
}
