/*
 * What the files of a run share, one section per file: the lifecycle
 * (run.c), failures and rejects (reject.c), staging and the writer thread
 * (stage.c), line matching and spans (match.c), parallel mapping (mapper.c)
 * and lease renewal (lease.c).  Only those files include it.
 */
#ifndef AS_ENGINE_RUN_INT_H
#define AS_ENGINE_RUN_INT_H

#include "engine/run.h"

#define NO_SPAN ((size_t)-1) /* atomsync_run.span_at: no span open */

/* ---- run.c ---- */

/* Start one of the run's helper threads (renewer, writer, mapper). */
int as_run_start_thread(pthread_t *t, void *(*fn)(void *), void *arg);
/* Record the end of a run that did not publish (status "failed" or
 * "refused"); when the store cannot, warn: the record stays active until
 * the dataset's next run records it as interrupted. */
void as_run_end_unpublished(atomsync_run *run, const char *status,
			    const char *why);

/* ---- reject.c: failures and rejects (invariant 9) ---- */

/* Record err as the run's failure unless one is recorded already (the
 * first one sticks); returns the failure's code. */
int as_run_fail(atomsync_run *run, const as_error *err);
/* A bad record refused on the caller's thread: rejected, or the run fails
 * when the dataset allows no more rejects. */
int as_reject_add(atomsync_run *run, const as_error *why, const char *where,
		  const char *raw, size_t rawlen, as_error *err);
/* as_reject_fn for the store: a reject found while staging, on the
 * writer's thread. */
int as_reject_from_store(void *ud, const as_row *row, const char *why,
			 as_error *err);
/* schema_contract discard_row: to the reject file, counted as discarded. */
int as_reject_discard(atomsync_run *run, const as_error *why, const char *where,
		      const char *raw, size_t rawlen, as_error *err);
/* Rejects so far, both kinds (lineage total). */
int64_t as_reject_total(atomsync_run *run);

/* Map rec into the batch on the caller's thread, evolving the inferred
 * schema when the record needs it (engine/schema.c): AS_EINPUT and
 * AS_EDISCARD are the record's, anything else the run's. */
int as_run_map(atomsync_run *run, json_t *rec, const char *raw, size_t len,
	       const char *where, as_error *err);
/* Handle the result of mapping one record: reject, discard or fail. */
int as_run_mapped(atomsync_run *run, int rc, const char *where, const char *raw,
		  size_t len, as_error *err);

/* ---- stage.c: the staging table and the writer thread ---- */

int as_stage_prepare(atomsync_run *run, as_error *err);
/* Every column's type and the key are known: the staging can be prepared. */
int as_stage_types_resolved(const as_table *t);
int as_stage_flush(atomsync_run *run, int with_cp, as_error *err);
/* Flush when the batch is full, failing the run when that fails. */
int as_stage_flush_if_full(atomsync_run *run, as_error *err);
int as_stage_wait_idle(atomsync_run *run, as_error *err);
void as_stage_writer_stop(atomsync_run *run);

/* ---- match.c: lines matched against the live table, and spans ---- */

int as_match_start(atomsync_run *run, as_error *err);
int as_match_hit(atomsync_run *run, const unsigned char h[16], as_error *err);
int as_match_resync(atomsync_run *run, const as_val *k, as_error *err);
/* Close the scan and free what matching and spans hold. */
void as_match_free(atomsync_run *run);
int as_span_close(atomsync_run *run, as_error *err);
int as_span_order(atomsync_run *run, const as_val *k, as_error *err);

/* ---- mapper.c: parallel mapping of chunks of lines ---- */

int as_mapper_add(atomsync_run *run, const char *raw, size_t len,
		  const char *where, as_error *err);
int as_mapper_drain(atomsync_run *run, as_error *err);
/* Drop the lines waiting in the chunk, unmapped. */
void as_mapper_discard(atomsync_run *run);
/* Stop the mapper thread and free the chunk and the halves. */
void as_mapper_free(atomsync_run *run);

/* ---- lease.c: lease renewal (invariant 6) ---- */

void as_lease_start(atomsync_run *run);
void as_lease_stop(atomsync_run *run);

#endif
