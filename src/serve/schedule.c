/*
 * Schedule computation for `atomsync serve` (see schedule.h).  Slots are
 * derived from the run records, not from daemon memory, so a restarted or
 * added daemon agrees with the others on what is due.
 */
#include "serve/schedule.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include <atomsync.h>
#include "util/hash.h"
#include "util/str.h"
#include "util/time.h"

int as_sched_from_cfg(as_sched *s, const as_dataset_cfg *ds, char *why,
		      size_t cap)
{
	memset(s, 0, sizeof(*s));
	if (!ds->schedule)
		return 0;
	s->jitter_ms = ds->jitter_ms;
	s->retry_ms = ds->retry_after_failure_ms > 0
			      ? ds->retry_after_failure_ms
			      : 300000;
	s->tz = ds->timezone;
	if (!strpbrk(ds->schedule, " \t")) {
		s->interval_ms = as_parse_duration_ms(ds->schedule);
		if (s->interval_ms <= 0) {
			snprintf(why, cap, "schedule '%s' is not a duration",
				 ds->schedule);
			return -1;
		}
		return 1;
	}
	return as_cron_parse(&s->cron, ds->schedule, why, cap) ? -1 : 1;
}

double as_sched_jitter(const as_sched *s, const char *dataset, double slot)
{
	char buf[256];
	int n;

	if (s->jitter_ms <= 0)
		return 0;
	n = snprintf(buf, sizeof(buf), "%s@%lld", dataset, (long long)slot);
	return (double)(as_hash64(buf, (size_t)n) % (uint64_t)s->jitter_ms) /
	       1000.0;
}

/* The regular slot after t. */
static double slot_after(const as_sched *s, double t)
{
	if (s->interval_ms > 0)
		return t + (double)s->interval_ms / 1000.0;
	return as_cron_next(&s->cron, t, s->tz);
}

double as_sched_next(const as_sched *s, const char *dataset,
		     const as_sched_last *last, double now)
{
	double slot, retry;

	if (!last->have) {
		if (s->interval_ms > 0)
			return now;
		slot = as_cron_next(&s->cron, now, s->tz);
		return slot < 0 ? -1 : slot + as_sched_jitter(s, dataset, slot);
	}
	if (last->finished <= 0)
		return now; /* open: resume it once its lease allows */
	slot = slot_after(s, last->started);
	if (slot < 0)
		return -1;
	if (last->failed) {
		double backoff = (double)s->retry_ms / 1000.0;

		for (int i = 1; i < last->failures && i < 40; i++)
			backoff *= 2;
		retry = last->finished + backoff;
		/* Doubling stops at the schedule: never later than the next
		 * regular slot (an interval's worth after the failure). */
		if (s->interval_ms > 0 &&
		    backoff > (double)s->interval_ms / 1000.0)
			retry = last->finished +
				(double)s->interval_ms / 1000.0;
		if (s->interval_ms <= 0 && retry > slot)
			retry = slot;
		return retry;
	}
	return slot + as_sched_jitter(s, dataset, slot);
}

void as_sched_last_from_runs(as_sched_last *out, const atomsync_run_info *v,
			     size_t n)
{
	const atomsync_run_info *last = NULL;

	memset(out, 0, sizeof(*out));
	if (n)
		out->run_id = v[0].run_id;
	for (size_t i = 0; i < n; i++) {
		if (!as_streq(v[i].kind, "sync"))
			continue;
		if (!last) {
			last = &v[i];
		} else if (!as_streq(v[i].status, "failed"))
			break;
		if (as_streq(v[i].status, "failed"))
			out->failures++;
		else
			break;
	}
	if (!last)
		return;
	out->have = 1;
	if (last->started_at)
		as_parse_iso8601(last->started_at, &out->started);
	if (last->finished_at && !as_streq(last->status, "active") &&
	    !as_streq(last->status, "publishing"))
		as_parse_iso8601(last->finished_at, &out->finished);
	out->failed = as_streq(last->status, "failed");
	if (!out->failed)
		out->failures = 0;
}
