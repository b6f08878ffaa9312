/*
 * Rollback: the dataset's lease, then one store transaction that restores
 * the live table to its content after an earlier run from <table>_history
 * and records it as a run (kind "rollback").  The history settings every
 * publish passes to the store are gathered here too.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "effects/outbox.h"
#include "engine/history.h"
#include "util/log.h"
#include "util/proc.h"
#include "util/str.h"
#include "util/time.h"

/* The history table's own columns: a mapped column must not take a name. */
static const char *reserved(as_history h, const char *name)
{
	if (h == AS_HISTORY_SNAPSHOT && strcmp(name, "run_id") == 0)
		return name;
	if (h == AS_HISTORY_SCD2 && (strcmp(name, "valid_from_run") == 0 ||
				     strcmp(name, "valid_to_run") == 0))
		return name;
	return NULL;
}

int as_history_check(const as_dataset_cfg *ds, as_error *err)
{
	const char *bad = NULL;

	if (ds->history == AS_HISTORY_NONE)
		return 0;
	for (size_t i = 0; !bad && i < ds->nkey; i++)
		bad = reserved(ds->history, ds->key[i]);
	for (size_t i = 0; !bad && i < ds->ncolumns; i++)
		bad = reserved(ds->history, ds->columns[i].name);
	for (size_t i = 0; !bad && i < ds->nscope; i++)
		bad = reserved(ds->history, ds->scope[i]);
	if (!bad && ds->cursor)
		bad = reserved(ds->history, ds->cursor);
	if (bad)
		return as_error_set(
			err, AS_EUSAGE,
			"dataset %s: column '%s' has the name of a column "
			"of its history table (history: %s); rename it",
			ds->name, bad,
			ds->history == AS_HISTORY_SCD2 ? "scd2" : "snapshot");
	return 0;
}

void as_history_publish_opts(const as_dataset_cfg *ds, as_publish_opts *po)
{
	po->history = ds->history;
	po->snapshot_cols = (const char **)ds->snapshot_columns;
	po->nsnapshot_cols = ds->nsnapshot_columns;
	po->history_keep_runs = ds->history_keep_runs;
	po->history_keep_ms = ds->history_keep_ms;
}

static void fill_info(atomsync_run_info *info, const as_table *t,
		      int64_t run_id, const char *status, const as_counts *c,
		      double started, const char *error)
{
	char buf[40];

	if (!info)
		return;
	memset(info, 0, sizeof(*info));
	info->run_id = run_id;
	info->dataset = as_strdup(t->dataset);
	info->kind = as_strdup("rollback");
	info->mode = as_strdup(as_mode_name(t->mode));
	info->status = as_strdup(status);
	info->started_at = as_strdup(as_iso8601(started, buf, sizeof(buf)));
	info->finished_at = as_strdup(as_iso8601(as_now(), buf, sizeof(buf)));
	info->seen = c->seen;
	info->inserted = c->inserted;
	info->updated = c->updated;
	info->unchanged = c->unchanged;
	info->deleted = c->deleted;
	info->error = as_strdup(error);
}

/* Everything that can be refused before the lease is taken. */
static int check_request(as_store *st, const as_dataset_cfg *ds, int64_t to_run,
			 const as_table *t, as_error *err)
{
	if (ds->history == AS_HISTORY_NONE)
		return as_error_set(
			err, AS_EUSAGE,
			"dataset %s has no history (history: none), so no "
			"earlier state of its table is kept to roll back to; "
			"nothing changed",
			ds->name);
	if (to_run <= 0)
		return as_error_set(err, AS_EUSAGE,
				    "--to-run %lld: expected a run "
				    "number (see `atomsync runs %s`)",
				    (long long)to_run, ds->name);
	if (!st->ops->rollback)
		return as_error_set(err, AS_EUSAGE,
				    "the %s store cannot roll back",
				    st->ops->name);
	if (!t->nkey)
		return as_error_set(
			err, AS_EUSAGE,
			"dataset %s: rollback needs the dataset's key in the "
			"config (`key`), not only from a Singer SCHEMA",
			ds->name);
	return as_history_check(ds, err);
}

int as_rollback_dataset(as_store *st, const as_config *cfg, const char *dataset,
			int64_t to_run, atomsync_run_info *info, as_error *err)
{
	const as_dataset_cfg *ds = as_config_dataset(cfg, dataset);
	double started = as_now();
	as_publish_opts po;
	as_outbox_plan plan;
	as_run_ctx rc;
	as_counts c;
	as_table t;
	int ret, leased = 0;

	memset(&plan, 0, sizeof(plan));
	memset(&rc, 0, sizeof(rc));
	memset(&c, 0, sizeof(c));
	memset(&t, 0, sizeof(t));
	if (info)
		memset(info, 0, sizeof(*info));
	if (!ds)
		return as_error_set(err, AS_EUSAGE, "%s: no dataset named '%s'",
				    cfg->path ? cfg->path : "config", dataset);
	if ((ret = as_table_build(&t, ds, NULL, 0, err)) ||
	    (ret = check_request(st, ds, to_run, &t, err)) ||
	    (ret = as_outbox_check(ds, &t, st->ops->name, cfg->cache, err)))
		goto done;
	rc.table = &t;
	rc.kind = "rollback";
	snprintf(rc.owner, sizeof(rc.owner), "%s", as_owner_self());
	rc.lease_ttl_ms = ds->lease_ttl_ms > 0 ? ds->lease_ttl_ms : 60000;
	/* Invariant 6: like a run, and its transaction is fenced. */
	if ((ret = as_lease_acquire(st, &t, &rc, err)))
		goto done;
	leased = 1;
	if ((ret = st->ops->describe(st, &rc, err)))
		goto done;
	/* The rollback records outbox events for its changes. */
	if ((ret = as_outbox_plan_make(ds, &t, &plan, err)))
		goto done;
	rc.outbox = &plan;
	memset(&po, 0, sizeof(po));
	as_history_publish_opts(ds, &po);
	ret = st->ops->rollback(st, &rc, &po, to_run, &c, err);
	if (!ret) {
		char note[96];

		snprintf(note, sizeof(note),
			 "restored the table to its state after "
			 "run %lld",
			 (long long)to_run);
		fill_info(info, &t, rc.run_id, "completed", &c, started, note);
	} else if (ret != AS_EUSAGE && ret != AS_EFENCED &&
		   st->ops->record_run) {
		/* Invariant 10: the failed attempt is on record too. */
		as_counts none;
		int64_t id = 0;
		as_error e2;

		memset(&none, 0, sizeof(none));
		if (st->ops->record_run(st, &t, "rollback", "failed", &none,
					err->msg, started, &id, &e2) == 0)
			fill_info(info, &t, id, "failed", &none, started,
				  err->msg);
	}
done:
	if (leased) {
		as_error e2;

		st->ops->lease_release(st, as_table_lease(&t), rc.token, &e2);
	}
	/* Invariant 7: its cache invalidations go out only after commit. */
	if (!ret)
		as_outbox_after_publish(st, cfg, ds->name);
	as_table_clear(&t);
	as_outbox_plan_free(&plan);
	return ret;
}
