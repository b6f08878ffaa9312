/*
 * Lease renewal (invariant 6): a thread with its own store connection
 * extends the run's lease every lease_ttl / 3, and marks the lease lost
 * when another worker has taken it over, so nothing more is committed.
 */
#include <string.h>
#include <time.h>

#include "engine/run_int.h"
#include "util/log.h"

static void *renew_main(void *arg)
{
	atomsync_run *run = arg;
	int64_t period = run->rc.lease_ttl_ms / 3;
	int warned = 0;

	if (period < 50)
		period = 50;
	pthread_mutex_lock(&run->mu);
	while (!run->stop) {
		struct timespec ts;
		as_error err;
		int rc;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += period / 1000;
		ts.tv_nsec += (period % 1000) * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&run->cv, &run->mu, &ts);
		if (run->stop)
			break;
		pthread_mutex_unlock(&run->mu);
		as_error_clear(&err);
		rc = run->renew_store->ops->lease_renew(
			run->renew_store, as_table_lease(&run->table),
			run->rc.token, run->rc.lease_ttl_ms, &err);
		pthread_mutex_lock(&run->mu);
		if (rc == AS_EFENCED) {
			run->lease_lost = 1;
			break;
		}
		if (rc && !warned) {
			as_warn("dataset %s: renewing the lease failed (will retry): %s",
				run->table.dataset, err.msg);
			warned = 1;
		}
	}
	pthread_mutex_unlock(&run->mu);
	return NULL;
}

int as_lease_acquire(as_store *st, const as_table *t, as_run_ctx *rc,
		     as_error *err)
{
	int ret = st->ops->lease_acquire(st, as_table_lease(t), rc->owner,
					 rc->lease_ttl_ms, &rc->token, err);

	if (ret == AS_ELEASE && t->lease && strcmp(t->lease, t->dataset))
		as_error_prefix(err,
				"dataset %s: every scoped dataset of table %s "
				"runs under the table's one lease",
				t->dataset, t->table);
	return ret;
}

void as_lease_start(atomsync_run *run)
{
	as_error err;

	if (as_store_open(&run->renew_store, run->store->url, &err)) {
		as_warn("dataset %s: no second connection for lease renewal (%s); "
			"the lease is renewed by each staging commit only",
			run->table.dataset, err.msg);
		return;
	}
	if (as_run_start_thread(&run->renewer, renew_main, run) == 0)
		run->renewing = 1;
}

void as_lease_stop(atomsync_run *run)
{
	if (run->renewing) {
		pthread_mutex_lock(&run->mu);
		run->stop = 1;
		pthread_cond_signal(&run->cv);
		pthread_mutex_unlock(&run->mu);
		pthread_join(run->renewer, NULL);
		run->renewing = 0;
	}
	as_store_close(run->renew_store);
	run->renew_store = NULL;
}
