/*
 * History, rollback and verification (engine/rollback.c, engine/verify.c):
 * what `atomsync rollback` and `atomsync verify` execute, and the history
 * settings every publish passes to the store.
 */
#ifndef AS_ENGINE_HISTORY_H
#define AS_ENGINE_HISTORY_H

#include <jansson.h>

#include "engine/engine.h"

/* A dataset's history settings are usable: no mapped column is named like
 * a column of its history table.  AS_EUSAGE names the column. */
int as_history_check(const as_dataset_cfg *ds, as_error *err);

/* Fill po's history fields (kind, snapshot columns, retention) from ds. */
void as_history_publish_opts(const as_dataset_cfg *ds, as_publish_opts *po);

/*
 * Restore the dataset's table to its content after run to_run, in one
 * transaction recorded as a run of kind "rollback" (info receives it when
 * one was recorded).  AS_EUSAGE, nothing changed, when the history cannot
 * restore that run; AS_ELEASE when another worker holds the dataset.
 */
int as_rollback_dataset(as_store *st, const as_config *cfg, const char *dataset,
			int64_t to_run, atomsync_run_info *info, as_error *err);

typedef struct as_verify_result {
	int64_t run_id; /* the verify run on record; 0 if none */
	int64_t live_rows;
	/* count check: the source's total against the live rows */
	int count_checked; /* 0: not available (count_note says why) */
	int count_ok;
	int64_t source_total;
	char count_note[256];
	/* sample check: random live rows re-fetched through item_url */
	int sample_checked; /* 0: not available (sample_note says why) */
	size_t sampled, matched, differing, missing;
	double accuracy; /* matched / sampled; 1 when nothing sampled */
	char sample_note[256];
	double threshold; /* the dataset's verify_threshold */
	int passed;
	json_t *mismatches; /* owned: [{key, missing, error, columns}] */
	char summary[512];  /* one line, as put on record */
} as_verify_result;

/*
 * `atomsync verify`: check the live table against the source (count and
 * sample), put the result on record as a run of kind "verify", and say in
 * out->passed whether the accuracy reached the dataset's threshold.
 * Returns nonzero only when the check itself could not be made (store or
 * source failure, configuration).  out is cleared with as_verify_clear.
 */
int as_verify_dataset(as_store *st, const as_config *cfg, const char *dataset,
		      size_t sample, as_verify_result *out, as_error *err);
void as_verify_clear(as_verify_result *r);

#endif
