/*
 * The scheduler: one pass every 200 ms reads each dataset's records, starts
 * due runs on worker threads (up to max_parallel), and waits for signals
 * (SIGTERM/SIGINT stop, SIGHUP reloads).  A fleet agrees through the store:
 * the slot comes from the run records, the lease decides who runs it, and
 * the run checks under the lease that nobody ran the slot meanwhile.
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "effects/outbox.h"
#include "serve/serve.h"
#include "util/crash.h"
#include "util/log.h"
#include "util/proc.h"
#include "util/str.h"
#include "util/time.h"

#define TICK_MS 200
#define REFRESH_S 2.0	     /* re-read the records of an idle dataset */
#define OUTBOX_EVERY_S 5     /* redeliver pending outbox events */
#define LEASE_WAIT_S 1.0     /* after a refused lease */
#define NO_RECORD_WAIT_S 5.0 /* after a failure that left no run record */

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;

void as_serve_log(as_serve *sv, const char *level, const char *event,
		  const char *dataset, json_t *fields, const char *fmt, ...)
{
	char msg[2048], ts[40];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	as_log_redact(msg, sizeof(msg));
	as_iso8601(as_now(), ts, sizeof(ts));
	pthread_mutex_lock(&log_mu);
	if (sv->log_json) {
		json_t *o = json_pack("{s:s, s:s, s:s}", "ts", ts, "level",
				      level, "event", event);
		char *s;

		if (dataset)
			json_object_set_new(o, "dataset", json_string(dataset));
		if (fields)
			json_object_update(o, fields);
		json_object_set_new(o, "msg", json_string(msg));
		s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
		if (s) {
			as_log_redact(s, strlen(s) + 1);
			fprintf(stderr, "%s\n", s);
			free(s);
		}
		json_decref(o);
	} else {
		fprintf(stderr, "%s %s %s\n", ts, level, msg);
	}
	fflush(stderr);
	pthread_mutex_unlock(&log_mu);
	json_decref(fields);
}

/* ---- jobs ---- */

static as_job *job_find(as_serve *sv, const char *name)
{
	for (as_job *j = sv->jobs; j; j = j->next_job)
		if (strcmp(j->name, name) == 0)
			return j;
	return NULL;
}

/* Jobs for every dataset of cfg (called with sv->mu held). */
static int jobs_sync(as_serve *sv, const as_config *cfg, as_error *err)
{
	for (as_job *j = sv->jobs; j; j = j->next_job)
		j->removed = 1;
	for (size_t i = 0; i < cfg->ndatasets; i++) {
		const as_dataset_cfg *ds = &cfg->datasets[i];
		as_job *j = job_find(sv, ds->name);
		char why[256];
		int r;

		if (!j) {
			j = calloc(1, sizeof(*j));
			if (!j || !(j->name = strdup(ds->name))) {
				free(j);
				return as_error_set(err, AS_ENOMEM,
						    "out of memory");
			}
			as_job **tail = &sv->jobs;

			while (*tail)
				tail = &(*tail)->next_job;
			j->sv = sv;
			*tail = j; /* config order */
		}
		j->removed = 0;
		r = as_sched_from_cfg(&j->sched, ds, why, sizeof(why));
		if (r < 0)
			return as_error_set(err, AS_EUSAGE,
					    "%s: dataset %s: %s", cfg->path,
					    ds->name, why);
		j->scheduled = r;
		j->refreshed = 0;
	}
	return 0;
}

int as_serve_run_now(as_serve *sv, const char *dataset)
{
	as_job *j;
	int rc = -1;

	pthread_mutex_lock(&sv->mu);
	j = job_find(sv, dataset);
	if (j && !j->removed) {
		j->run_now = 1;
		rc = 0;
	}
	pthread_mutex_unlock(&sv->mu);
	return rc;
}

/* ---- workers ---- */

static void run_end_log(as_serve *sv, const char *name, int rc,
			const atomsync_run_info *ri, const as_error *err,
			double secs)
{
	json_t *f = json_object();

	json_object_set_new(f, "run_id", json_integer(ri->run_id));
	json_object_set_new(f, "status",
			    json_string(rc == AS_ELEASE ? "skipped"
					: ri->status	? ri->status
							: "failed"));
	json_object_set_new(f, "seconds", json_real(secs));
	if (rc == 0) {
		json_object_set_new(f, "seen", json_integer(ri->seen));
		json_object_set_new(f, "inserted", json_integer(ri->inserted));
		json_object_set_new(f, "updated", json_integer(ri->updated));
		json_object_set_new(f, "deleted", json_integer(ri->deleted));
		as_serve_log(sv, "info", "run_end", name, f,
			     "%s: run %lld %s in %.2f s: %lld seen, %lld "
			     "inserted, %lld updated, %lld deleted",
			     name, (long long)ri->run_id, ri->status, secs,
			     (long long)ri->seen, (long long)ri->inserted,
			     (long long)ri->updated, (long long)ri->deleted);
	} else if (rc == AS_ELEASE) {
		as_serve_log(sv, "info", "run_end", name, f, "%s: skipped: %s",
			     name, err->msg);
	} else {
		json_object_set_new(f, "error", json_string(err->msg));
		as_serve_log(sv, "error", "run_end", name, f,
			     "%s: run %lld %s after %.2f s: %s", name,
			     (long long)ri->run_id,
			     rc == AS_EREFUSED ? "refused" : "failed", secs,
			     err->msg);
	}
}

static void *worker_main(void *arg)
{
	as_job *j = arg;
	as_serve *sv = j->sv;
	atomsync_run_options opt;
	atomsync_run_info info;
	as_store *st = NULL;
	as_error err;
	double t0 = as_now();
	int64_t run_id;
	int rc;

	memset(&opt, 0, sizeof(opt));
	memset(&info, 0, sizeof(info));
	as_error_clear(&err);
	/* A manual run is not tied to a slot. */
	opt.check_last_run = !j->manual;
	opt.last_run = j->last.run_id;
	as_serve_log(sv, "info", "run_start", j->name, NULL,
		     "%s: run starting%s", j->name,
		     j->manual ? " (requested)" : "");
	/* Between the scheduler's decision and the lease: the window in
	 * which another daemon may run the slot (check_last_run's case). */
	as_crash_point("serve.worker");
	rc = as_store_open(&st, j->run_cfg->store, &err);
	if (!rc)
		rc = as_sync_dataset(st, j->run_cfg, j->name, &opt, NULL, NULL,
				     &info, &err);
	run_end_log(sv, j->name, rc, &info, &err, as_now() - t0);
	run_id = info.run_id;
	atomsync_run_info_clear(&info);
	as_store_close(st);
	pthread_mutex_lock(&sv->mu);
	if (rc == AS_ELEASE) {
		j->not_before = as_mono() + LEASE_WAIT_S;
		if (j->manual)
			j->run_now = 1;
	} else if (rc && !run_id) {
		/* Failed before a run was on record (the store is down, a
		 * config the engine refuses): no record to back off from. */
		j->not_before = as_mono() + NO_RECORD_WAIT_S;
	}
	j->refreshed = 0;
	j->done = 1;
	sv->running--;
	if (sv->once) {
		int *c = realloc(sv->codes, (sv->ncodes + 1) * sizeof(int));

		if (c) {
			sv->codes = c;
			sv->codes[sv->ncodes++] = as_exit_code(rc);
		}
	}
	pthread_mutex_unlock(&sv->mu);
	return NULL;
}

static void on_kick(int sig)
{
	(void)sig; /* only interrupts a blocked system call */
}

/* ---- the scheduler pass ---- */

/* Re-read j's records and recompute its slot. */
static int refresh(as_serve *sv, as_store *st, as_job *j, double now)
{
	atomsync_run_info *v = NULL;
	size_t n = 0;
	as_error err;
	const as_dataset_cfg *ds = as_config_dataset(sv->cfg, j->name);

	if (!st)
		as_error_set(&err, AS_ESTORE, "the store is not connected");
	/* A dataset taking every stream has its runs under its streams'
	 * datasets (DATASET.TABLE). */
	if (!st ||
	    (ds && as_every_stream(&ds->source)
		     ? as_every_stream_runs(st, j->name, 20, &v, &n, &err)
		     : st->ops->runs_list(st, j->name, 20, &v, &n, &err))) {
		/* Nothing runs on records that could not be read; one line
		 * per outage, not one per pass. */
		if (!j->stale)
			as_serve_log(sv, "warn", "store", j->name, NULL,
				     "%s: reading the run records: %s (will "
				     "retry)",
				     j->name, err.msg);
		j->stale = 1;
		j->refreshed = as_mono();
		j->not_before = as_mono() + REFRESH_S;
		return -1;
	}
	if (j->stale)
		as_serve_log(sv, "info", "store", j->name, NULL,
			     "%s: the run records are readable again", j->name);
	j->stale = 0;
	as_sched_last_from_runs(&j->last, v, n);
	atomsync_run_info_free(v, n);
	j->next = j->scheduled
			  ? as_sched_next(&j->sched, j->name, &j->last, now)
			  : -1;
	j->refreshed = as_mono();
	return 0;
}

/* Does a live worker (anywhere) hold ds's lease? */
static int lease_busy(const as_dataset_status *sv, size_t n, const char *ds,
		      double now)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(sv[i].dataset, ds) == 0)
			return sv[i].lease_owner && sv[i].lease_expires > now &&
			       !as_owner_is_dead(sv[i].lease_owner);
	return 0;
}

static void start_worker(as_serve *sv, as_job *j)
{
	j->manual = j->run_now;
	j->run_now = 0;
	j->run_cfg = sv->cfg;
	j->active = 1;
	j->done = 0;
	sv->running++;
	if (pthread_create(&j->th, NULL, worker_main, j) != 0) {
		j->active = 0;
		sv->running--;
		as_serve_log(sv, "error", "thread", j->name, NULL,
			     "%s: cannot start a worker thread", j->name);
	}
}

/* One pass: join ended workers, refresh, start what is due.  Returns -1
 * when the store could not be read (the caller reconnects). */
static int pass(as_serve *sv, as_store *st)
{
	as_dataset_status *ls = NULL;
	size_t nls = 0;
	int have_ls = 0, broken = 0;
	double now = as_now();

	pthread_mutex_lock(&sv->mu);
	sv->tick = as_mono();
	for (as_job *j = sv->jobs; j; j = j->next_job) {
		int due;

		if (j->done) {
			pthread_mutex_unlock(&sv->mu);
			pthread_join(j->th, NULL);
			pthread_mutex_lock(&sv->mu);
			j->done = 0;
			j->active = 0;
		}
		if (j->active || j->removed)
			continue;
		if (as_mono() >= j->not_before &&
		    (j->refreshed == 0 ||
		     (j->scheduled && j->next >= 0 && now >= j->next) ||
		     as_mono() - j->refreshed >= REFRESH_S))
			broken |= refresh(sv, st, j, now) != 0;
		due = j->run_now ||
		      (j->scheduled && j->next >= 0 && now >= j->next);
		if (!due || j->stale || sv->stopping ||
		    as_mono() < j->not_before ||
		    sv->running >= sv->cfg->max_parallel)
			continue;
		if (!st) {
			/* No connection (the store is down): a run asked for
			 * over HTTP waits for the next pass that has one. */
			broken = 1;
			continue;
		}
		if (!have_ls) {
			as_error err;

			if (st->ops->status(st, &ls, &nls, &err)) {
				nls = 0;
				broken = 1;
			}
			have_ls = 1;
		}
		if (lease_busy(ls, nls, j->name, now)) {
			j->not_before = as_mono() + LEASE_WAIT_S;
			continue;
		}
		start_worker(sv, j);
	}
	pthread_mutex_unlock(&sv->mu);
	as_dataset_status_free(ls, nls);
	return broken ? -1 : 0;
}

/* ---- the outbox loop ---- */

static void *outbox_main(void *arg)
{
	as_serve *sv = arg;
	char last[512] = "";

	while (!as_interrupted) {
		as_store *st = NULL;
		as_drain_stats ds;
		const as_config *cfg;
		as_error err;

		for (int i = 0; i < OUTBOX_EVERY_S * 10 && !as_interrupted; i++)
			as_sleep_ms(100);
		if (as_interrupted)
			break;
		pthread_mutex_lock(&sv->mu);
		cfg = sv->cfg;
		pthread_mutex_unlock(&sv->mu);
		if (as_store_open(&st, cfg->store, &err) ||
		    as_outbox_drain(st, cfg, NULL, &ds, &err)) {
			if (strcmp(last, err.msg) != 0)
				as_serve_log(sv, "warn", "outbox", NULL, NULL,
					     "outbox: %s", err.msg);
			snprintf(last, sizeof(last), "%s", err.msg);
		} else if (ds.delivered || ds.failed) {
			as_serve_log(
				sv, ds.failed ? "warn" : "info", "outbox", NULL,
				json_pack("{s:I, s:I}", "delivered",
					  (json_int_t)ds.delivered, "pending",
					  (json_int_t)ds.failed),
				"outbox: %lld events delivered, %lld "
				"still pending%s%s",
				(long long)ds.delivered, (long long)ds.failed,
				ds.first_error[0] ? ": " : "", ds.first_error);
		}
		as_store_close(st);
	}
	return NULL;
}

/* ---- reload, shutdown, the loop ---- */

static void reload(as_serve *sv)
{
	as_config *cfg = NULL, **old;
	as_error err;

	as_error_clear(&err);
	if (as_config_load(&cfg, sv->cli->config_path, &err)) {
		as_serve_log(sv, "error", "reload", NULL, NULL,
			     "reload: %s; keeping the previous configuration",
			     err.msg);
		return;
	}
	pthread_mutex_lock(&sv->mu);
	if (strcmp(cfg->store, sv->cfg->store) != 0) {
		pthread_mutex_unlock(&sv->mu);
		as_serve_log(sv, "error", "reload", NULL, NULL,
			     "reload: %s: 'store' changed; restart the daemon "
			     "to change stores; keeping the previous "
			     "configuration",
			     sv->cli->config_path);
		as_config_free(cfg);
		return;
	}
	if (jobs_sync(sv, cfg, &err)) {
		jobs_sync(sv, sv->cfg, &err);
		pthread_mutex_unlock(&sv->mu);
		as_serve_log(sv, "error", "reload", NULL, NULL,
			     "reload: %s; keeping the previous configuration",
			     err.msg);
		as_config_free(cfg);
		return;
	}
	/* Workers may still run with the old one: it is freed at exit. */
	old = realloc(sv->old, (sv->nold + 1) * sizeof(*old));
	if (old) {
		sv->old = old;
		sv->old[sv->nold++] = sv->cfg;
	}
	sv->cfg = cfg;
	sv->cli->cfg = cfg;
	pthread_mutex_unlock(&sv->mu);
	as_serve_log(sv, "info", "reload", NULL, NULL,
		     "reload: %s: %zu datasets", sv->cli->config_path,
		     cfg->ndatasets);
}

/* Stop: no new runs; a staging run is interrupted (it stays resumable), a
 * publishing one finishes; wait for every worker. */
static void drain_workers(as_serve *sv, const sigset_t *set)
{
	double kick = 0;

	pthread_mutex_lock(&sv->mu);
	sv->stopping = 1;
	pthread_mutex_unlock(&sv->mu);
	as_interrupted = 1;
	for (;;) {
		struct timespec ts = {0, TICK_MS * 1000000L};
		int running;

		pthread_mutex_lock(&sv->mu);
		running = sv->running;
		/* Wake a worker blocked in a read so it sees the flag. */
		if (running && as_mono() >= kick) {
			for (as_job *j = sv->jobs; j; j = j->next_job)
				if (j->active && !j->done)
					pthread_kill(j->th, SIGUSR1);
			kick = as_mono() + 0.5;
		}
		pthread_mutex_unlock(&sv->mu);
		if (!running)
			break;
		if (sigtimedwait(set, NULL, &ts) > 0) {
			as_serve_log(sv, "warn", "stop", NULL, NULL,
				     "second signal: exiting without waiting "
				     "for the runs (their leases expire)");
			_exit(AS_EXIT_FAILED);
		}
	}
	for (as_job *j = sv->jobs; j; j = j->next_job)
		if (j->active) {
			pthread_join(j->th, NULL);
			j->active = j->done = 0;
		}
}

/* What as_serve_main built, on every way out of it. */
static void serve_free(as_serve *sv)
{
	free(sv->codes);
	sv->codes = NULL;
	for (size_t i = 0; i < sv->nold; i++)
		as_config_free(sv->old[i]);
	free(sv->old);
	sv->old = NULL;
	sv->nold = 0;
	while (sv->jobs) {
		as_job *j = sv->jobs;

		sv->jobs = j->next_job;
		free(j->name);
		free(j);
	}
}

/* Signals arrive at the loop's sigtimedwait, never in a worker: TERM,
 * INT and HUP blocked into *set; SIGUSR1 wakes a worker from a read. */
static void setup_signals(sigset_t *set)
{
	struct sigaction sa;

	sigemptyset(set);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, set, NULL);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_kick;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL); /* no SA_RESTART */
}

static void log_start(as_serve *sv)
{
	int nsched = 0;

	for (as_job *j = sv->jobs; j; j = j->next_job)
		nsched += j->scheduled;
	as_serve_log(sv, "info", "start", NULL,
		     json_pack("{s:s, s:i, s:i}", "listen",
			       sv->once ? "" : sv->bound, "scheduled", nsched,
			       "max_parallel", sv->cfg->max_parallel),
		     "serve: %d of %zu datasets scheduled, max_parallel %d%s%s",
		     nsched, sv->cfg->ndatasets, sv->cfg->max_parallel,
		     sv->once ? ", one pass" : ", listening on ",
		     sv->once ? "" : sv->bound);
}

/* --once: the pass has started what was due; 1 when it has all ended. */
static int once_done(as_serve *sv)
{
	int running;

	pthread_mutex_lock(&sv->mu);
	sv->stopping = 1;
	running = sv->running;
	pthread_mutex_unlock(&sv->mu);
	return !running;
}

/* Passes every tick until a stop signal (or, with --once, until the one
 * pass's runs end); SIGHUP reloads the configuration.  *st is reopened
 * after a lost connection. */
static void serve_loop(as_serve *sv, as_store **st, const sigset_t *set)
{
	double reopen = 0;
	as_error err;

	for (;;) {
		struct timespec ts = {0, TICK_MS * 1000000L};
		int sig;

		if (pass(sv, *st) && as_mono() >= reopen) {
			/* A lost connection (a restarted PostgreSQL): the
			 * next pass reads through a new one. */
			as_store_close(*st);
			*st = NULL;
			as_error_clear(&err);
			if (as_store_open(st, sv->cfg->store, &err))
				*st = NULL;
			reopen = as_mono() + REFRESH_S;
		}
		if (sv->once && once_done(sv))
			break;
		sig = sigtimedwait(set, NULL, &ts);
		if (sig == SIGHUP) {
			reload(sv);
		} else if (sig == SIGTERM || sig == SIGINT) {
			as_serve_log(sv, "info", "stop", NULL, NULL,
				     "serve: %s: stopping (runs staging are "
				     "interrupted, publishing ones finish)",
				     strsignal(sig));
			break;
		}
	}
}

int as_serve_main(as_serve *sv)
{
	sigset_t set;
	pthread_t outbox;
	as_store *st = NULL;
	as_error err;
	int code = AS_EXIT_OK, outbox_on = 0;

	pthread_mutex_init(&sv->mu, NULL);
	sv->cfg = sv->cli->cfg;
	setup_signals(&set);
	/* cron's time zones switch TZ: make it exist before any thread. */
	if (!getenv("TZ"))
		setenv("TZ", ":/etc/localtime", 1);
	as_error_clear(&err);
	if (jobs_sync(sv, sv->cfg, &err) ||
	    as_store_open(&st, sv->cfg->store, &err)) {
		as_cli_error(sv->cli, "%s", err.msg);
		as_store_close(st);
		serve_free(sv);
		return err.code == AS_EUSAGE ? AS_EXIT_USAGE : AS_EXIT_FAILED;
	}
	if (!sv->once && as_http_start(sv, &err)) {
		as_cli_error(sv->cli, "%s", err.msg);
		as_store_close(st);
		serve_free(sv);
		return AS_EXIT_USAGE;
	}
	log_start(sv);
	if (!sv->once)
		outbox_on = pthread_create(&outbox, NULL, outbox_main, sv) == 0;
	serve_loop(sv, &st, &set);
	drain_workers(sv, &set);
	if (outbox_on)
		pthread_join(outbox, NULL);
	as_http_stop(sv);
	as_store_close(st);
	as_serve_log(sv, "info", "stop", NULL, NULL, "serve: stopped");
	/* --once: the combined result of its runs, as `atomsync run`. */
	if (sv->once && sv->ncodes)
		code = as_exit_combine(sv->codes, sv->ncodes);
	serve_free(sv);
	return code;
}

int as_serve_run(as_cli *cli, const char *addr, int once, int log_json)
{
	as_serve sv;

	memset(&sv, 0, sizeof(sv));
	sv.cli = cli;
	sv.listen = addr;
	sv.once = once;
	sv.log_json = log_json;
	return as_serve_main(&sv);
}
