/*
 * The run lifecycle: lease -> run record -> records into batches -> staging
 * commits with their checkpoint -> guard and publish -> release.  A run
 * that stops anywhere before the publish commits leaves the live table as it
 * was (invariant 2), and its staging for the next run to resume (invariant 4).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/run.h"
#include "util/log.h"
#include "util/proc.h"
#include "util/str.h"
#include "util/time.h"

#define FLUSH_INTERVAL 2.0  /* seconds: commit at a checkpoint at least this often */

/* ---- lease renewal (invariant 6) ---- */

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
		rc = run->renew_store->ops->lease_renew(run->renew_store,
							run->table.dataset,
							run->rc.token,
							run->rc.lease_ttl_ms, &err);
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

static void renew_start(atomsync_run *run)
{
	as_error err;

	if (as_store_open(&run->renew_store, run->store->url, &err)) {
		as_warn("dataset %s: no second connection for lease renewal (%s); "
			"the lease is renewed by each staging commit only",
			run->table.dataset, err.msg);
		return;
	}
	if (pthread_create(&run->renewer, NULL, renew_main, run) == 0)
		run->renewing = 1;
}

static void renew_stop(atomsync_run *run)
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

/* ---- failures and rejects (invariant 9) ---- */

static int fail(atomsync_run *run, const as_error *err)
{
	if (!run->failed) {
		run->failure = *err;
		run->failed = 1;
	}
	return run->failure.code;
}

static int write_reject(atomsync_run *run, const char *where, const char *why,
			const char *raw, size_t rawlen, as_error *err)
{
	json_t *o;
	char *line;

	if (!run->rejects) {
		run->rejects = fopen(run->reject_path, "a");
		if (!run->rejects)
			return as_error_errno(err, AS_ESOURCE, "reject file %s",
					      run->reject_path);
	}
	o = json_pack("{s:s, s:s, s:s, s:I}", "where", where, "error", why,
		      "dataset", run->table.dataset, "run", (json_int_t)run->rc.run_id);
	if (o && raw) {
		/* The raw record as a string when it is valid UTF-8, else as hex:
		 * a reject file must hold exactly the bytes that were rejected. */
		json_t *text = json_stringn(raw, rawlen);

		if (text) {
			json_object_set_new(o, "record", text);
		} else {
			as_buf hex = AS_BUF_INIT;

			for (size_t i = 0; i < rawlen; i++)
				as_buf_printf(&hex, "%02x", (unsigned char)raw[i]);
			json_object_set_new(o, "record_hex", json_string(as_buf_cstr(&hex)));
			as_buf_free(&hex);
		}
	}
	line = o ? json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
	json_decref(o);
	if (!line)
		return as_error_set(err, AS_ENOMEM, "out of memory");
	if (fprintf(run->rejects, "%s\n", line) < 0 || fflush(run->rejects)) {
		free(line);
		return as_error_errno(err, AS_ESOURCE, "reject file %s",
				      run->reject_path);
	}
	free(line);
	return 0;
}

/* A bad record: a reject when the dataset allows more, else the run fails. */
static int reject(atomsync_run *run, const as_error *why, const char *where,
		  const char *raw, size_t rawlen, as_error *err)
{
	int64_t max = run->ds->guard.max_rejects;

	run->rejected++;
	if (run->rejected > max) {
		/* why may be err itself: format from a copy. */
		as_error reason = *why;

		if (max > 0)
			as_error_set(err, AS_EINPUT, "%s (%lld rejects, over max_rejects "
				     "%lld; rejected records are in %s)", reason.msg,
				     (long long)run->rejected, (long long)max,
				     run->reject_path);
		else if (err != why)
			*err = *why;
		err->code = AS_EINPUT;
		return fail(run, err);
	}
	if (write_reject(run, where, why->msg, raw, rawlen, err))
		return fail(run, err);
	return 0;
}

static int store_reject(void *ud, const as_row *row, const char *why,
			as_error *err)
{
	atomsync_run *run = ud;
	as_error e;

	as_error_set(&e, AS_EINPUT, "%s: %s", row->where ? row->where : "record", why);
	return reject(run, &e, row->where ? row->where : "record", NULL, 0, err);
}

/* ---- staging ---- */

static int prepare(atomsync_run *run, as_error *err)
{
	const as_store_ops *ops = run->store->ops;

	if (run->prepared)
		return 0;
	if (!run->table.nkey)
		return as_error_set(err, AS_EUSAGE,
				    "dataset %s: no key: set `key` in the dataset, "
				    "or have the source send a Singer SCHEMA message "
				    "with key_properties", run->table.dataset);
	for (size_t i = 0; i < run->table.ncols; i++)
		if (run->table.cols[i].type == AS_TYPE_AUTO)
			run->table.cols[i].type = AS_TYPE_TEXT;
	if (ops->stage_prepare(run->store, &run->rc, err))
		return err->code;
	run->prepared = 1;
	return 0;
}

static int types_resolved(const as_table *t)
{
	for (size_t i = 0; i < t->ncols; i++)
		if (t->cols[i].type == AS_TYPE_AUTO)
			return 0;
	return t->nkey > 0;
}

/* Commit the batch.  with_cp: the pending checkpoint covers every row of
 * the batch and is committed with them; otherwise the staging is marked as
 * not resumable until the next checkpoint commit. */
static int flush(atomsync_run *run, int with_cp, as_error *err)
{
	as_batch *b = &run->batch;
	int rc;

	if (run->lease_lost)
		return as_error_set(err, AS_EFENCED,
				    "dataset %s: this worker's lease was taken over "
				    "by another worker; nothing more is committed",
				    run->table.dataset);
	if (prepare(run, err))
		return err->code;
	if (with_cp && run->pending_cp) {
		b->checkpoint = as_strdup(run->pending_cp);
		b->seen = run->seen_at_cp;
		b->rejected = run->rejected_at_cp;
	} else {
		b->checkpoint = NULL;
		b->seen = run->seen;
		b->rejected = run->rejected;
	}
	rc = run->store->ops->stage_batch(run->store, &run->rc, b, err);
	if (rc) {
		run->stage_failed = 1;
		return rc;
	}
	run->batches++;
	run->staged += (int64_t)b->nrows;
	as_batch_reset(b);
	run->cp_rows = 0;
	run->last_flush = as_mono();
	return 0;
}

/* ---- the public API ---- */

static int check_supported(const as_dataset_cfg *ds, as_error *err)
{
	if (ds->history != AS_HISTORY_NONE)
		return as_error_set(err, AS_EUSAGE,
				    "dataset %s: history is not supported by this "
				    "version yet", ds->name);
	if (ds->ninvalidate || ds->webhook || ds->notify)
		return as_error_set(err, AS_EUSAGE,
				    "dataset %s: invalidate, webhook and notify are "
				    "not supported by this version yet", ds->name);
	return 0;
}

static int adopt_stage_key(atomsync_run *run, as_error *err)
{
	size_t n = 0;
	char **key;
	int rc;

	if (run->table.nkey || !run->rc.stage_key || !*run->rc.stage_key)
		return 0;
	key = as_split(run->rc.stage_key, ',', &n);
	if (!key)
		return as_error_set(err, AS_ENOMEM, "out of memory");
	as_table_clear(&run->table);
	rc = as_table_build(&run->table, run->ds, key, n, err);
	as_strv_free(key, n);
	run->rc.table = &run->table;
	return rc;
}

int as_run_begin(atomsync_run **out, as_store *st, const as_config *cfg,
		 const char *dataset, const atomsync_run_options *opt,
		 int resumable, as_error *err)
{
	const as_dataset_cfg *ds = as_config_dataset(cfg, dataset);
	atomsync_run *run;
	int rc;

	*out = NULL;
	if (!ds)
		return as_error_set(err, AS_EUSAGE, "%s: no dataset named '%s'",
				    cfg->path ? cfg->path : "config", dataset);
	if (check_supported(ds, err))
		return err->code;
	run = calloc(1, sizeof(*run));
	if (!run)
		return as_error_set(err, AS_ENOMEM, "out of memory");
	pthread_mutex_init(&run->mu, NULL);
	pthread_cond_init(&run->cv, NULL);
	as_batch_init(&run->batch);
	run->store = st;
	run->cfg = cfg;
	run->ds = ds;
	run->started = as_now();
	run->last_flush = as_mono();
	run->resumable = resumable;
	run->batch_size = ds->batch_size > 0 ? ds->batch_size : 10000;
	run->max_batch = run->batch_size * 4;
	run->reject_path = as_strdup(ds->reject_file);
	if (!run->reject_path)
		run->reject_path = as_sprintf("%s.rejects.jsonl", ds->name);
	if (opt)
		run->opt = *opt;
	if ((rc = as_table_build(&run->table, ds, NULL, 0, err)))
		goto fail;
	run->rc.table = &run->table;
	run->rc.kind = "sync";
	snprintf(run->rc.owner, sizeof(run->rc.owner), "%s", as_owner_self());
	run->rc.lease_ttl_ms = ds->lease_ttl_ms > 0 ? ds->lease_ttl_ms : 60000;
	run->rc.restart = run->opt.restart || !resumable;
	run->rc.on_reject = store_reject;
	run->rc.reject_ud = run;
	if ((rc = st->ops->lease_acquire(st, ds->name, run->rc.owner,
					 run->rc.lease_ttl_ms, &run->rc.token, err)))
		goto fail;
	run->leased = 1;
	if ((rc = st->ops->run_begin(st, &run->rc, err)) ||
	    (rc = adopt_stage_key(run, err)))
		goto fail;
	run->seen = run->seen_at_cp = run->rc.seen;
	run->rejected = run->rejected_at_cp = run->rc.rejected;
	if (run->table.nkey && (rc = st->ops->describe(st, &run->rc, err)))
		goto fail;
	if (types_resolved(&run->table) && (rc = prepare(run, err)))
		goto fail;
	renew_start(run);
	*out = run;
	return 0;
fail:
	if (run->rc.run_id) {
		as_error e2;
		st->ops->run_end(st, &run->rc, "failed", err->msg, &e2);
	}
	atomsync_run_free(run);
	return rc;
}

int atomsync_run_begin(atomsync_run **out, atomsync_store *store,
		       const atomsync_config *cfg, const char *dataset,
		       const atomsync_run_options *opt, atomsync_error *err)
{
	return as_run_begin(out, store, cfg, dataset, opt, 1, err);
}

const char *atomsync_run_resume_checkpoint(const atomsync_run *run)
{
	return run->rc.checkpoint;
}

int64_t atomsync_run_id(const atomsync_run *run)
{
	return run->rc.run_id;
}

/* Singer SCHEMA: the key when the dataset configures none. */
int as_run_set_key(atomsync_run *run, char *const *key, size_t nkey,
		   as_error *err)
{
	char have[512], want[512] = "";
	size_t off = 0;
	as_table t;

	if (run->ds->nkey || nkey == 0)
		return 0;
	for (size_t i = 0; i < nkey; i++)
		off += (size_t)snprintf(want + off, sizeof(want) - off, "%s%s",
					i ? "," : "", key[i]);
	if (run->table.nkey) {
		as_table_key_list(&run->table, have, sizeof(have));
		if (strcmp(have, want) == 0)
			return 0;
		as_error_set(err, AS_EUSAGE, "dataset %s: the SCHEMA key_properties "
			     "(%s) differ from the key of the staging being resumed "
			     "(%s); rerun with --restart", run->table.dataset, want, have);
		return fail(run, err);
	}
	if (as_table_build(&t, run->ds, key, nkey, err))
		return fail(run, err);
	as_table_clear(&run->table);
	run->table = t;
	run->rc.table = &run->table;
	if (run->store->ops->describe(run->store, &run->rc, err))
		return fail(run, err);
	return 0;
}

/* The source refused the checkpoint (the file changed): start over. */
int as_run_discard_checkpoint(atomsync_run *run, as_error *err)
{
	if (run->store->ops->stage_discard(run->store, &run->rc, err))
		return fail(run, err);
	run->prepared = 0;
	run->seen = run->seen_at_cp = 0;
	run->rejected = run->rejected_at_cp = 0;
	free(run->pending_cp);
	run->pending_cp = NULL;
	run->cp_rows = 0;
	if (types_resolved(&run->table) && prepare(run, err))
		return fail(run, err);
	return 0;
}

int as_run_put_value(atomsync_run *run, json_t *rec, const char *raw,
		     size_t rawlen, const char *where, as_error *err)
{
	int rc;

	if (run->failed)
		return as_error_set(err, run->failure.code, "%s", run->failure.msg);
	if (!run->table.nkey) {
		prepare(run, err);
		return fail(run, err);
	}
	run->seen++;
	rc = as_record_map(&run->table, rec, raw, rawlen, where, &run->batch, err);
	if (rc == AS_EINPUT)
		return reject(run, err, where, raw, rawlen, err);
	if (rc)
		return fail(run, err);
	if (run->batch.nrows >= (size_t)(run->resumable ? run->max_batch
							: run->batch_size)) {
		if ((rc = flush(run, 0, err)))
			return fail(run, err);
	}
	return 0;
}

int as_run_reject(atomsync_run *run, const as_error *why, const char *where,
		  const char *raw, size_t rawlen, as_error *err)
{
	if (run->failed)
		return as_error_set(err, run->failure.code, "%s", run->failure.msg);
	run->seen++;
	return reject(run, why, where, raw, rawlen, err);
}

int atomsync_run_put(atomsync_run *run, const char *json, size_t len,
		     const char *where, atomsync_error *err)
{
	int64_t max = run->ds->max_record_bytes;
	json_t *rec;
	as_error why;
	int rc;

	if (!where)
		where = "record";
	if (max > 0 && (int64_t)len > max) {
		as_error_set(&why, AS_EINPUT, "%s: record is %zu bytes, over the "
			     "size cap of %lld bytes (max_record_size)", where, len,
			     (long long)max);
		return as_run_reject(run, &why, where, NULL, 0, err);
	}
	rec = as_json_parse_record(json, len, where, &why);
	if (!rec)
		return as_run_reject(run, &why, where, json, len, err);
	rc = as_run_put_value(run, rec, json, len, where, err);
	json_decref(rec);
	return rc;
}

int atomsync_run_checkpoint(atomsync_run *run, const char *checkpoint,
			    atomsync_error *err)
{
	char *cp;

	if (run->failed)
		return as_error_set(err, run->failure.code, "%s", run->failure.msg);
	cp = as_strdup(checkpoint);
	if (!cp)
		return as_error_set(err, AS_ENOMEM, "out of memory");
	free(run->pending_cp);
	run->pending_cp = cp;
	run->cp_rows = run->batch.nrows;
	run->seen_at_cp = run->seen;
	run->rejected_at_cp = run->rejected;
	if (run->batch.nrows >= (size_t)run->batch_size ||
	    (run->batch.nrows > 0 && as_mono() - run->last_flush >= FLUSH_INTERVAL)) {
		if (flush(run, 1, err))
			return fail(run, err);
	}
	return 0;
}

int as_run_wants_checkpoint(const atomsync_run *run)
{
	return run->batch.nrows >= (size_t)run->batch_size;
}

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
	info->started_at = as_strdup(as_iso8601(run->started, buf, sizeof(buf)));
	info->finished_at = as_strdup(as_iso8601(as_now(), buf, sizeof(buf)));
	info->seen = run->counts.seen ? run->counts.seen : run->seen;
	info->inserted = run->counts.inserted;
	info->updated = run->counts.updated;
	info->unchanged = run->counts.unchanged;
	info->deleted = run->counts.deleted;
	info->rejected = run->rejected;
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
	po->history = run->ds->history;
	if (!run->opt.nscopes)
		return 0;
	if (t->mode != AS_MODE_SCOPED)
		return as_error_set(err, AS_EUSAGE, "--scope applies to scoped "
				    "datasets only; %s is %s", t->dataset,
				    as_mode_name(t->mode));
	/* Each --scope names one column; a scope needs all of its columns. */
	if (run->opt.nscopes % t->nscope)
		return as_error_set(err, AS_EUSAGE, "dataset %s has %zu scope "
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

			if (as_scope_value(t, run->opt.scopes[k * t->nscope + i], &v,
					   &col, a, err))
				return err->code;
			po->named_scopes[k * t->nscope + col] = v;
		}
	}
	return 0;
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
	if ((rc = build_publish_opts(run, &po, &a, err)))
		goto failed;
	if (run->batch.nrows > 0 || (!run->prepared && run->table.nkey)) {
		if ((rc = flush(run, run->cp_rows == run->batch.nrows, err)))
			goto failed;
	}
	if (run->lease_lost) {
		rc = as_error_set(err, AS_EFENCED, "dataset %s: this worker's lease "
				  "was taken over by another worker; nothing was "
				  "published by this run", run->table.dataset);
		goto failed;
	}
	run->rc.seen = run->seen;
	run->rc.rejected = run->rejected;
	rc = run->store->ops->publish(run->store, &run->rc, &po, &run->counts, err);
	as_arena_free(&a);
	if (rc == AS_EREFUSED) {
		as_error e2;

		run->store->ops->run_end(run->store, &run->rc, "refused", err->msg, &e2);
		run->done = 1;
		fill_info(run, info, "refused", err->msg);
		return rc;
	}
	if (rc) {
		fail(run, err);
		goto ended;
	}
	run->done = 1;
	fill_info(run, info, "completed", NULL);
	return 0;
failed:
	as_arena_free(&a);
	fail(run, err);
ended:
	{
		as_error e2;

		run->rc.seen = run->seen;
		run->rc.rejected = run->rejected;
		run->store->ops->run_end(run->store, &run->rc, "failed", err->msg, &e2);
		run->done = 1;
		fill_info(run, info, "failed", err->msg);
	}
	return rc;
}

int atomsync_run_abort(atomsync_run *run, const char *reason,
		       atomsync_error *err)
{
	as_error e2;
	int rc = 0;

	if (run->done)
		return 0;
	/* Keep the progress up to the last checkpoint: those rows are exactly
	 * what the checkpoint covers, so the next run resumes after them.  Not
	 * when staging them already failed: trying the same rows again would
	 * count (and write) their rejects twice. */
	if (run->pending_cp && run->cp_rows > 0 && !run->lease_lost &&
	    run->prepared && !run->stage_failed &&
	    (!run->failed || (run->failure.code != AS_ESTORE &&
			      run->failure.code != AS_EFENCED))) {
		run->batch.nrows = run->cp_rows;
		if (flush(run, 1, &e2))
			as_debug("keeping staged progress failed: %s", e2.msg);
	}
	/* The run record counts what this run saw; the staging keeps the
	 * lineage's counts at its checkpoint separately. */
	run->rc.seen = run->seen;
	run->rc.rejected = run->rejected;
	if (run->store->ops->run_end(run->store, &run->rc, "failed", reason, err))
		rc = err->code;
	run->done = 1;
	return rc;
}

void atomsync_run_free(atomsync_run *run)
{
	as_error err;

	if (!run)
		return;
	if (!run->done && run->rc.run_id)
		atomsync_run_abort(run, run->failed ? run->failure.msg
						    : "abandoned by its caller", &err);
	renew_stop(run);
	if (run->leased)
		run->store->ops->lease_release(run->store, run->table.dataset,
					       run->rc.token, &err);
	run->store->ops->run_free(run->store, &run->rc);
	free(run->rc.checkpoint);
	free(run->rc.stage_key);
	free(run->rc.cursor);
	if (run->rejects)
		fclose(run->rejects);
	free(run->reject_path);
	free(run->pending_cp);
	as_batch_free(&run->batch);
	as_table_clear(&run->table);
	pthread_mutex_destroy(&run->mu);
	pthread_cond_destroy(&run->cv);
	free(run);
}

const as_error *as_run_failure(const atomsync_run *run)
{
	return run->failed ? &run->failure : NULL;
}
