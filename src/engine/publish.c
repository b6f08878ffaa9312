/*
 * The publish of a run, or of a group of runs in one transaction
 * (invariant 1): the guards' inputs, the outbox plan resolved in the
 * table's final columns, the store's publish, and the run's info after it,
 * whether it published, was refused by a guard or failed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "effects/outbox.h"
#include "engine/history.h"
#include "engine/run_int.h"
#include "util/log.h"
#include "util/str.h"
#include "util/time.h"

static void fill_info(atomsync_run *run, atomsync_run_info *info,
		      const char *status, const char *error)
{
	char buf[40];

	if (!info)
		return;
	memset(info, 0, sizeof(*info));
	info->run_id = run->rc.run_id;
	info->dataset = as_strdup(run->table.dataset);
	info->kind = as_strdup("sync");
	info->mode = as_strdup(as_mode_name(run->table.mode));
	info->status = as_strdup(status);
	info->started_at =
		as_strdup(as_iso8601(run->started, buf, sizeof(buf)));
	info->finished_at = as_strdup(as_iso8601(as_now(), buf, sizeof(buf)));
	info->seen = run->counts.seen ? run->counts.seen : run->seen;
	info->inserted = run->counts.inserted;
	info->updated = run->counts.updated;
	info->unchanged = run->counts.unchanged;
	info->deleted = run->counts.deleted;
	info->rejected = as_reject_total(run);
	info->duplicates = run->counts.duplicates;
	info->resumed_from = run->rc.resumed_from;
	info->error = as_strdup(error);
}

static int build_publish_opts(atomsync_run *run, as_publish_opts *po,
			      as_arena *a, as_error *err)
{
	const as_table *t = &run->table;

	memset(po, 0, sizeof(*po));
	po->allow_empty = run->opt.allow_empty || run->ds->guard.allow_empty;
	po->allow_deletes = run->opt.allow_deletes;
	po->max_delete_fraction = run->ds->guard.max_delete_fraction;
	po->min_deletes = run->ds->guard.min_deletes;
	as_history_publish_opts(run->ds, po); /* engine/rollback.c */
	if (!run->opt.nscopes)
		return 0;
	if (t->mode != AS_MODE_SCOPED)
		return as_error_set(err, AS_EUSAGE,
				    "--scope applies to scoped "
				    "datasets only; %s is %s",
				    t->dataset, as_mode_name(t->mode));
	/* Each --scope names one column; a scope needs all of its columns. */
	if (run->opt.nscopes % t->nscope)
		return as_error_set(err, AS_EUSAGE,
				    "dataset %s has %zu scope "
				    "columns; give each in --scope COL=VALUE",
				    t->dataset, t->nscope);
	po->nnamed = run->opt.nscopes / t->nscope;
	po->named_scopes = as_arena_alloc(a, run->opt.nscopes * sizeof(as_val));
	if (!po->named_scopes)
		return as_error_set(err, AS_ENOMEM, "out of memory");
	for (size_t k = 0; k < po->nnamed; k++) {
		for (size_t i = 0; i < t->nscope; i++) {
			as_val v;
			size_t col;

			if (as_scope_value(t,
					   run->opt.scopes[k * t->nscope + i],
					   &v, &col, a, err))
				return err->code;
			po->named_scopes[k * t->nscope + col] = v;
		}
	}
	return 0;
}

/* What the publish needs: every delivered row committed to the staging,
 * the options built (their values in arena a), the lease still ours. */
static int publish_ready(atomsync_run *run, as_publish_opts *po, as_arena *a,
			 as_error *err)
{
	int rc;

	if ((rc = as_mapper_drain(run, err)) ||
	    (rc = as_stage_flush_if_full(run, err)))
		return rc;
	if ((rc = build_publish_opts(run, po, a, err)))
		return rc;
	if (run->batch.nrows > 0 || (!run->prepared && run->table.nkey)) {
		if ((rc = as_stage_flush(run, run->cp_rows == run->batch.nrows,
					 err)))
			return rc;
	}
	if ((rc = as_stage_wait_idle(run, err)))
		return rc;
	if (run->lease_lost)
		return as_error_set(
			err, AS_EFENCED,
			"dataset %s: this worker's lease "
			"was taken over by another worker; nothing was "
			"published by this run",
			run->table.dataset);
	/* The table has its final columns: the events the publish records
	 * (invariant 7), resolved in them. */
	as_outbox_plan_free(&run->outbox);
	if ((rc = as_outbox_plan_make(run->ds, &run->table, &run->outbox, err)))
		return rc;
	run->rc.outbox = &run->outbox;
	return 0;
}

/* The store's publish (its guards, then the one commit), timed. */
static int publish_staged(atomsync_run *run, const as_publish_opts *po,
			  as_error *err)
{
	double t0;
	int rc;

	run->rc.seen = run->seen;
	run->rc.rejected = as_reject_total(run);
	t0 = as_mono();
	as_info("%s: %lld records staged in %.2f s; publishing",
		run->table.dataset, (long long)run->seen,
		as_now() - run->started);
	run->rc.discarded_values = run->schema.discarded_values;
	run->rc.discarded_rows = run->schema.discarded_rows;
	rc = run->store->ops->publish(run->store, &run->rc, po, &run->counts,
				      err);
	as_info("%s: publish took %.2f s", run->table.dataset, as_mono() - t0);
	return rc;
}

static void publish_completed(atomsync_run *run, atomsync_run_info *info)
{
	run->done = 1;
	fill_info(run, info, "completed", NULL);
	/* Invariant 7: effects only now, after commit; never fails the run. */
	as_outbox_after_publish(run->store, run->cfg, run->table.dataset);
	if (run->scan_hits)
		as_info("%s: %lld of %lld records matched their published text and "
			"were not parsed (%lld spans)",
			run->table.dataset, (long long)run->scan_hits,
			(long long)run->seen, (long long)run->spans);
}

/* A guard refused the publish: the run ends refused (the store drops the
 * staging). */
static int publish_refused(atomsync_run *run, atomsync_run_info *info,
			   as_error *err, int rc)
{
	as_run_end_unpublished(run, "refused", err->msg);
	run->done = 1;
	fill_info(run, info, "refused", err->msg);
	return rc;
}

/* The publish failed, or what it needed did: the run ends failed. */
static int publish_failed(atomsync_run *run, atomsync_run_info *info,
			  as_error *err, int rc)
{
	as_error e2;

	as_run_fail(run, err);
	/* The store is the writer's until its batch is done. */
	as_stage_wait_idle(run, &e2);
	run->rc.seen = run->seen;
	run->rc.rejected = as_reject_total(run);
	as_run_end_unpublished(run, "failed", err->msg);
	run->done = 1;
	fill_info(run, info, "failed", err->msg);
	return rc;
}

int atomsync_run_publish(atomsync_run *run, atomsync_run_info *info,
			 atomsync_error *err)
{
	as_publish_opts po;
	as_arena a;
	int rc;

	if (info)
		memset(info, 0, sizeof(*info));
	if (run->done)
		return as_error_set(err, AS_EUSAGE, "run already ended");
	if (run->failed) {
		/* A put already failed: end the run with that cause. */
		*err = run->failure;
		atomsync_run_abort(run, run->failure.msg, &(as_error){0});
		fill_info(run, info, "failed", run->failure.msg);
		return run->failure.code;
	}
	as_arena_init(&a);
	if ((rc = publish_ready(run, &po, &a, err))) {
		as_arena_free(&a);
		return publish_failed(run, info, err, rc);
	}
	rc = publish_staged(run, &po, err);
	as_arena_free(&a);
	if (rc == AS_EREFUSED)
		return publish_refused(run, info, err, rc);
	if (rc)
		return publish_failed(run, info, err, rc);
	publish_completed(run, info);
	return 0;
}

/* The others of a group whose publish did not happen: each ends with why
 * (refused when a guard refused the group, else failed). */
static void group_not_published(atomsync_run *run, atomsync_run_info *info,
				const char *status, const char *why)
{
	as_error e2;

	as_stage_wait_idle(run, &e2);
	run->rc.seen = run->seen;
	run->rc.rejected = as_reject_total(run);
	as_run_end_unpublished(run, status, why);
	run->done = 1;
	fill_info(run, info, status, why);
}

/* Each run of a group ready to publish (*bad: the one that is not), its
 * context and store in rcs[i] and stores[i]. */
static int group_ready(atomsync_run **runs, size_t n, as_publish_opts *pos,
		       as_run_ctx **rcs, as_store **stores, as_arena *a,
		       size_t *bad, as_error *err)
{
	int rc;

	for (size_t i = 0; i < n; i++) {
		atomsync_run *run = runs[i];

		*bad = i;
		if (run->done)
			return as_error_set(err, AS_EUSAGE,
					    "run already ended");
		if (run->failed) {
			*err = run->failure;
			return err->code;
		}
		if ((rc = publish_ready(run, &pos[i], a, err)))
			return rc;
		run->rc.seen = run->seen;
		run->rc.rejected = as_reject_total(run);
		run->rc.discarded_values = run->schema.discarded_values;
		run->rc.discarded_rows = run->schema.discarded_rows;
		rcs[i] = &run->rc;
		stores[i] = run->store;
	}
	return 0;
}

/* The group was not published (rc, err: why; bad: the run it was about):
 * every run not yet ended ends refused or failed. */
static void group_failed(atomsync_run **runs, size_t n,
			 atomsync_run_info *infos, size_t bad, int rc,
			 as_error *err)
{
	char why[AS_ERROR_MSG_MAX + 100];

	snprintf(why, sizeof(why),
		 "not published: dataset %s of the same group: %s",
		 n ? runs[bad]->table.dataset : "?", err->msg);
	for (size_t i = 0; i < n; i++) {
		atomsync_run_info *info = infos ? &infos[i] : NULL;

		if (runs[i]->done)
			continue;
		if (i == bad && rc == AS_EREFUSED)
			publish_refused(runs[i], info, err, rc);
		else if (i == bad)
			publish_failed(runs[i], info, err, rc);
		else if (rc == AS_EREFUSED)
			group_not_published(runs[i], info, "refused", why);
		else {
			as_error e2;

			atomsync_run_abort(runs[i], why, &e2);
			fill_info(runs[i], info, "failed", why);
		}
	}
}

int as_run_publish_group(atomsync_run **runs, size_t n,
			 atomsync_run_info *infos, as_error *err)
{
	as_publish_opts *pos = calloc(n ? n : 1, sizeof(*pos));
	as_counts *cs = calloc(n ? n : 1, sizeof(*cs));
	as_run_ctx **rcs = calloc(n ? n : 1, sizeof(*rcs));
	as_store **stores = calloc(n ? n : 1, sizeof(*stores));
	as_arena a;
	size_t bad = 0;
	int rc = 0;
	double t0;

	for (size_t i = 0; infos && i < n; i++)
		memset(&infos[i], 0, sizeof(infos[i]));
	as_arena_init(&a);
	if (!pos || !cs || !rcs || !stores)
		rc = as_error_set(err, AS_ENOMEM, "out of memory");
	else
		rc = group_ready(runs, n, pos, rcs, stores, &a, &bad, err);
	if (!rc) {
		t0 = as_mono();
		as_info("publishing %zu tables in one transaction", n);
		if (n)
			rc = runs[0]->store->ops->publish_group(
				runs[0]->store, stores, rcs, pos, cs, n, &bad,
				err);
		as_info("group publish took %.2f s", as_mono() - t0);
	}
	if (rc || !cs) { /* !cs: out of memory, rc says so */
		group_failed(runs, n, infos, bad, rc, err);
	} else {
		for (size_t i = 0; i < n; i++) {
			runs[i]->counts = cs[i];
			publish_completed(runs[i], infos ? &infos[i] : NULL);
		}
	}
	as_arena_free(&a);
	free(pos);
	free(cs);
	free(rcs);
	free(stores);
	return rc;
}
