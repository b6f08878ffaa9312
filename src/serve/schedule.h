/*
 * When the daemon runs a dataset next: from its schedule (an interval or a
 * cron expression, with jitter and a retry backoff after a failure) and the
 * dataset's latest runs on record.  Pure functions of their arguments (the
 * clock is a parameter), so every daemon of a fleet computes the same slot
 * from the same store, and the tests drive them with a fake clock.
 */
#ifndef AS_SERVE_SCHEDULE_H
#define AS_SERVE_SCHEDULE_H

#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "util/cron.h"

typedef struct as_sched {
	int64_t interval_ms; /* > 0: every interval; 0: cron */
	as_cron cron;
	int64_t jitter_ms; /* up to this much added to each slot */
	int64_t retry_ms;  /* first retry after a failure; doubles */
	const char *tz;	   /* cron's time zone (borrowed); NULL: UTC */
} as_sched;

/* What the run records say (the daemon reads them from the store). */
typedef struct as_sched_last {
	int64_t run_id;	 /* newest run of any kind; 0: none */
	int have;	 /* a sync run is on record */
	double started;	 /* newest sync run: Unix seconds */
	double finished; /* 0 while it has not ended */
	int failed;	 /* it failed */
	int failures;	 /* consecutive failed sync runs, newest first */
} as_sched_last;

/* ds's schedule; 1 when it has one, 0 when it has none, -1 with why when
 * its text is bad (the config reader has already checked it). */
int as_sched_from_cfg(as_sched *s, const as_dataset_cfg *ds, char *why,
		      size_t cap);

/*
 * The time (Unix seconds) the dataset is due, given its records and now:
 * never run: now (interval) or the next cron slot; last run finished (or
 * refused): the next slot after its start, plus jitter; last run failed:
 * its end plus retry_ms doubled per consecutive failure, no later than the
 * next regular slot; last run still open (killed, or running elsewhere):
 * now, and the lease decides.  -1 when the cron expression never fires.
 */
double as_sched_next(const as_sched *s, const char *dataset,
		     const as_sched_last *last, double now);

/* The jitter of one slot: the same on every daemon (a hash of dataset and
 * slot), in [0, jitter_ms). */
double as_sched_jitter(const as_sched *s, const char *dataset, double slot);

/* The records (newest first, as runs_list returns them) summarised. */
void as_sched_last_from_runs(as_sched_last *out,
			     const struct atomsync_run_info *v, size_t n);

#endif
