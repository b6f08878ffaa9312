/*
 * The run lifecycle: lease -> run record -> records into batches -> staging
 * commits with their checkpoint -> guard and publish -> release.  A run
 * that stops anywhere before the publish commits leaves the live table as it
 * was (invariant 2), and its staging for the next run to resume (invariant 4).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "effects/outbox.h"
#include "engine/history.h"
#include "engine/run_int.h"
#include "util/hash.h"
#include "util/log.h"
#include "util/proc.h"
#include "util/str.h"
#include "util/time.h"

#define FLUSH_INTERVAL                                                         \
	2.0 /* seconds: commit at a checkpoint at least this often */

/* Start a helper thread with SIGINT and SIGTERM blocked, so that a signal
 * reaches the main thread and interrupts its blocking read. */
int as_run_start_thread(pthread_t *t, void *(*fn)(void *), void *arg)
{
	sigset_t block, old;
	int rc;

	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &block, &old);
	rc = pthread_create(t, NULL, fn, arg);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return rc;
}

/* ---- beginning a run ---- */

static int check_supported(const as_dataset_cfg *ds, as_error *err)
{
	/* History: no mapped column may take its table's names. */
	return as_history_check(ds, err);
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

/* jansson seeds its hash tables lazily; seed once, before the threads. */
static void seed_json(void)
{
	json_object_seed(0);
}

/* A run with its defaults, not yet on record; NULL when out of memory. */
static atomsync_run *run_new(as_store *st, const as_config *cfg,
			     const as_dataset_cfg *ds,
			     const atomsync_run_options *opt, int resumable)
{
	atomsync_run *run = calloc(1, sizeof(*run));

	if (!run)
		return NULL;
	pthread_mutex_init(&run->mu, NULL);
	pthread_cond_init(&run->cv, NULL);
	pthread_mutex_init(&run->wmu, NULL);
	pthread_cond_init(&run->wcv, NULL);
	pthread_mutex_init(&run->rmu, NULL);
	pthread_mutex_init(&run->mmu, NULL);
	pthread_cond_init(&run->mcv, NULL);
	as_batch_init(&run->batch);
	as_batch_init(&run->wbatch);
	run->store = st;
	run->cfg = cfg;
	run->ds = ds;
	run->started = as_now();
	run->last_flush = as_mono();
	run->resumable = resumable;
	run->span_at = NO_SPAN;
	run->batch_size = ds->batch_size > 0 ? ds->batch_size : 10000;
	run->max_batch = run->batch_size * 4;
	run->reject_path = as_strdup(ds->reject_file);
	if (!run->reject_path)
		run->reject_path = as_sprintf("%s.rejects.jsonl", ds->name);
	if (opt)
		run->opt = *opt;
	return run;
}

/* Build the table, take the lease, put the run on record (adopting the
 * staging of an interrupted run when it fits) and prepare the staging when
 * the column types are known. */
/* Under the lease: has another worker run the dataset since the caller
 * read its records?  Then this run's slot is taken (AS_ELEASE). */
static int check_last_run(atomsync_run *run, as_error *err)
{
	as_run_info *v = NULL;
	size_t n = 0;
	int64_t newest;
	int rc;

	if ((rc = run->store->ops->runs_list(run->store, run->ds->name, 1, &v,
					     &n, err)))
		return rc;
	newest = n ? v[0].run_id : 0;
	atomsync_run_info_free(v, n);
	if (newest != run->opt.last_run)
		return as_error_set(err, AS_ELEASE,
				    "dataset %s: run %lld began after run %lld "
				    "was read; this slot is taken",
				    run->ds->name, (long long)newest,
				    (long long)run->opt.last_run);
	return 0;
}

/* A table an earlier version made in the key + `data` layout keeps it:
 * inference is the default now, but reshaping a table with data is not
 * something a run does on its own (docs/config.md). */
/* Whether this process warned about dataset's layout already (a daemon
 * runs a dataset again and again: once is enough). */
static int warned_once(const char *dataset)
{
	static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
	static uint64_t seen[64];
	static size_t n;
	uint64_t h = as_hash64(dataset, strlen(dataset));
	int found = 0;

	pthread_mutex_lock(&mu);
	for (size_t i = 0; i < n && !found; i++)
		found = seen[i] == h;
	if (!found && n < 64)
		seen[n++] = h;
	pthread_mutex_unlock(&mu);
	return found;
}

static int legacy_layout(atomsync_run *run, as_error *err)
{
	if (!run->table.legacy_json)
		return 0;
	if (!warned_once(run->table.dataset))
		as_warn("dataset %s: table %s has the key + data layout; it is "
			"kept (set `schema: json` to say so, or rename the "
			"table to have typed columns inferred)",
			run->table.dataset, run->table.table);
	if (as_table_json_layout(&run->table, run->ds))
		return as_error_set(err, AS_ENOMEM, "out of memory");
	return run->store->ops->describe(run->store, &run->rc, err);
}

/* A failed run whose end could not be recorded stays `active` until the
 * dataset's next run records it as interrupted: say so where it happened,
 * with the store's reason (the caller reports the run's own error). */
static void warn_end_lost(const atomsync_run *run, const as_error *e)
{
	as_warn("dataset %s: run %lld: recording its end failed: %s (the "
		"next run records it as interrupted)",
		run->table.dataset, (long long)run->rc.run_id, e->msg);
}

void as_run_end_unpublished(atomsync_run *run, const char *status,
			    const char *why)
{
	as_error e2;

	if (run->store->ops->run_end(run->store, &run->rc, status, why, &e2))
		warn_end_lost(run, &e2);
}

static int run_open(atomsync_run *run, as_error *err)
{
	as_store *st = run->store;
	const as_dataset_cfg *ds = run->ds;
	int rc;

	if ((rc = as_table_build(&run->table, ds, NULL, 0, err)))
		return rc;
	run->rc.table = &run->table;
	run->rc.kind = "sync";
	if ((rc = as_outbox_check(ds, &run->table, st->ops->name,
				  run->cfg->cache, err)))
		return rc;
	snprintf(run->rc.owner, sizeof(run->rc.owner), "%s", as_owner_self());
	run->rc.lease_ttl_ms = ds->lease_ttl_ms > 0 ? ds->lease_ttl_ms : 60000;
	run->rc.restart = run->opt.restart || !run->resumable;
	run->rc.on_reject = as_reject_from_store;
	run->rc.reject_ud = run;
	if ((rc = as_lease_acquire(st, &run->table, &run->rc, err)))
		return rc;
	run->leased = 1;
	if (run->opt.check_last_run && (rc = check_last_run(run, err)))
		return rc;
	if ((rc = st->ops->run_begin(st, &run->rc, err)) ||
	    (rc = adopt_stage_key(run, err)))
		return rc;
	run->seen = run->seen_at_cp = run->rc.seen;
	run->rejected = run->rejected_at_cp = run->rc.rejected;
	if (run->table.nkey && (rc = st->ops->describe(st, &run->rc, err)))
		return rc;
	if ((rc = legacy_layout(run, err)))
		return rc;
	/* Line hashes depend on the mapping: a changed config matches nothing.
	 */
	run->line_seed = as_hash64(run->table.fingerprint,
				   strlen(run->table.fingerprint));
	if (as_stage_types_resolved(&run->table) &&
	    (rc = as_stage_prepare(run, err)))
		return rc;
	return 0;
}

int as_run_begin(atomsync_run **out, as_store *st, const as_config *cfg,
		 const char *dataset, const atomsync_run_options *opt,
		 int resumable, as_error *err)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	const as_dataset_cfg *ds = as_config_dataset(cfg, dataset);
	atomsync_run *run;
	int rc;

	*out = NULL;
	pthread_once(&once, seed_json);
	if (!ds)
		return as_error_set(err, AS_EUSAGE, "%s: no dataset named '%s'",
				    cfg->path ? cfg->path : "config", dataset);
	if (check_supported(ds, err))
		return err->code;
	run = run_new(st, cfg, ds, opt, resumable);
	if (!run)
		return as_error_set(err, AS_ENOMEM, "out of memory");
	if ((rc = run_open(run, err))) {
		if (run->rc.run_id)
			as_run_end_unpublished(run, "failed", err->msg);
		atomsync_run_free(run);
		return rc;
	}
	as_lease_start(run);
	*out = run;
	return 0;
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

/* ---- what the sync driver adjusts ---- */

/* Singer SCHEMA: the key when the dataset configures none. */
int as_run_set_key(atomsync_run *run, char *const *key, const int *ktype,
		   size_t nkey, int hashed, as_error *err)
{
	char have[512], want[512] = "";
	size_t off = 0;
	as_table t;

	if (run->ds->nkey || nkey == 0)
		return 0;
	if (as_mapper_drain(run, err) || as_stage_wait_idle(run, err))
		return err->code;
	for (size_t i = 0; i < nkey && off < sizeof(want); i++)
		off += (size_t)snprintf(want + off, sizeof(want) - off, "%s%s",
					i ? "," : "", key[i]);
	if (run->table.nkey) {
		as_table_key_list(&run->table, have, sizeof(have));
		if (strcmp(have, want) == 0)
			return 0;
		if (run->key_from_schema)
			as_error_set(
				err, AS_EUSAGE,
				"dataset %s: a later SCHEMA changes the "
				"key_properties from (%s) to (%s) within one "
				"run; a table has one key: set `key` for the "
				"dataset (or --key) to choose it; nothing was "
				"published",
				run->table.dataset, have, want);
		else
			as_error_set(
				err, AS_EUSAGE,
				"dataset %s: the SCHEMA key_properties (%s) "
				"differ from the key of the staging being "
				"resumed (%s); rerun with --restart to drop "
				"that staging and start over",
				run->table.dataset, want, have);
		return as_run_fail(run, err);
	}
	if (as_table_build(&t, run->ds, key, nkey, err))
		return as_run_fail(run, err);
	/* Key columns typed from the SCHEMA, not from the first record: a
	 * run of a SCHEMA alone makes the same table as one with records. */
	for (size_t i = 0; ktype && i < nkey && i < t.ncols; i++)
		if (t.cols[i].type == AS_TYPE_AUTO)
			t.cols[i].type = (as_type)ktype[i];
	/* Keyed by content: every new record is a new row; the rows the
	 * run did not deliver stay. */
	if (hashed && t.mode != AS_MODE_SCOPED)
		t.mode = AS_MODE_APPEND;
	as_table_clear(&run->table);
	run->table = t;
	run->rc.table = &run->table;
	run->key_from_schema = 1;
	if (run->store->ops->describe(run->store, &run->rc, err)) {
		if (err->code == AS_EUSAGE)
			as_error_prefix(err,
					"the SCHEMA key_properties (%s) do not "
					"fit the existing table (set `key` for "
					"the dataset, or --key, to the table's "
					"key; or load into a new table)",
					want);
		return as_run_fail(run, err);
	}
	return 0;
}

int as_run_full_refresh(atomsync_run *run, const char *where, as_error *err)
{
	(void)err;
	if (run->table.mode == AS_MODE_FULL ||
	    run->table.mode == AS_MODE_INCREMENTAL) {
		run->table.mode = AS_MODE_FULL;
		return 0;
	}
	if (!run->warned_activate)
		as_warn("%s: ACTIVATE_VERSION ignored: dataset %s is %s (only a "
			"full or incremental table is refreshed in full)",
			where, run->table.dataset,
			as_mode_name(run->table.mode));
	run->warned_activate = 1;
	return 0;
}

/* The caller checks every call's result and ends with a checkpoint or a
 * publish, so a bad record may be reported by a later call: records can
 * then be parsed in chunks on two threads.  atomsync_run_put() keeps its
 * promise of reporting a bad record at once. */
void as_run_allow_deferred(atomsync_run *run)
{
	run->deferred = 1;
}

/* The source refused the checkpoint (the file changed): start over. */
int as_run_discard_checkpoint(atomsync_run *run, as_error *err)
{
	if (as_stage_wait_idle(run, err))
		return err->code;
	if (run->store->ops->stage_discard(run->store, &run->rc, err))
		return as_run_fail(run, err);
	run->prepared = 0;
	run->seen = run->seen_at_cp = 0;
	run->rejected = run->rejected_at_cp = run->conflicts = 0;
	free(run->pending_cp);
	run->pending_cp = NULL;
	run->cp_rows = 0;
	if (as_stage_types_resolved(&run->table) && as_stage_prepare(run, err))
		return as_run_fail(run, err);
	return 0;
}

/* ---- records and checkpoints ---- */

/* The rows mapped before the spec grew from old to ncols columns get NULLs
 * for the new ones (values in the batch's arena). */
static int pad_rows(as_batch *b, as_arena *a, size_t old, size_t ncols)
{
	for (size_t i = 0; i < b->nrows; i++) {
		as_row *row = &b->rows[i];
		as_val *v;

		if (!row->v)
			continue;
		v = as_arena_alloc(a, ncols * sizeof(*v));
		if (!v)
			return AS_ENOMEM;
		memcpy(v, row->v, old * sizeof(*v));
		memset(v + old, 0, (ncols - old) * sizeof(*v));
		row->v = v;
	}
	return 0;
}

int as_run_map(atomsync_run *run, json_t *rec, const char *raw, size_t len,
	       const char *where, as_error *err)
{
	as_table *t = &run->table;
	size_t old = t->ncols;
	int rc = as_record_map(t, rec, raw, len, where, &run->batch, 0, err);

	if (rc != AS_ESCHEMA)
		return rc;
	as_error_clear(err);
	/* The writer reads the spec while it stages: let it finish. */
	if (as_stage_wait_idle(run, err))
		return err->code;
	run->schema.contract_applies = t->live_exists;
	rc = as_schema_evolve(t, rec, where, &run->schema, err);
	if (rc)
		return rc;
	if (t->ncols > old &&
	    (pad_rows(&run->batch, &run->batch.arena, old, t->ncols) ||
	     pad_rows(&run->half[0], &run->batch.arena, old, t->ncols) ||
	     pad_rows(&run->half[1], &run->batch.arena, old, t->ncols)))
		return as_error_set(err, AS_ENOMEM, "out of memory");
	return as_record_map(t, rec, raw, len, where, &run->batch,
			     AS_MAP_SKIP_UNKNOWN, err);
}

int as_run_declare(atomsync_run *run, json_t *schema, as_error *err)
{
	as_table *t = &run->table;
	size_t old = t->ncols;

	if (!t->infer || !t->nkey ||
	    (t->live_exists && t->contract != AS_CONTRACT_EVOLVE))
		return 0;
	if (as_mapper_drain(run, err) || as_stage_wait_idle(run, err))
		return err->code;
	if (as_schema_declare(t, schema, &run->schema, err))
		return as_run_fail(run, err);
	if (t->ncols > old &&
	    (pad_rows(&run->batch, &run->batch.arena, old, t->ncols) ||
	     pad_rows(&run->half[0], &run->batch.arena, old, t->ncols) ||
	     pad_rows(&run->half[1], &run->batch.arena, old, t->ncols))) {
		as_error_set(err, AS_ENOMEM, "out of memory");
		return as_run_fail(run, err);
	}
	return 0;
}

int as_run_mapped(atomsync_run *run, int rc, const char *where, const char *raw,
		  size_t len, as_error *err)
{
	if (rc == AS_EINPUT)
		return as_reject_add(run, err, where, raw, len, err);
	if (rc == AS_EDISCARD)
		return as_reject_discard(run, err, where, raw, len, err);
	return as_run_fail(run, err);
}

/* One record as its text (a JSON line): matched, or parsed and mapped. */
static int put_line(atomsync_run *run, const char *raw, size_t len,
		    const char *where, as_error *err)
{
	unsigned char h[16];
	as_error why;
	json_t *rec;
	as_row *row;
	int rc;

	if (!run->scan_tried && run->prepared && as_match_start(run, err))
		return as_run_fail(run, err);
	if (run->deferred && run->scan_tried && !run->scanning &&
	    as_stage_types_resolved(&run->table))
		return as_mapper_add(run, raw, len, where, err);
	run->seen++;
	as_hash128(raw, len, run->line_seed, h);
	if (run->scanning) {
		rc = as_match_hit(run, h, err);
		if (rc < 0)
			return as_run_fail(run, err);
		if (rc > 0)
			return as_stage_flush_if_full(run, err);
	}
	if (as_span_close(run, err))
		return as_run_fail(run, err);
	/* A flat record without a jansson value (engine/record.c). */
	rc = as_record_map_flat(&run->table, raw, len, where, &run->batch, 0,
				err);
	if (rc == AS_MAP_DECLINED) {
		as_json_arena_begin();
		rec = as_json_parse_record(raw, len, where, &why);
		if (!rec) {
			as_json_arena_end();
			if (why.code == AS_ENOMEM) { /* none is dropped */
				*err = why;
				return as_run_fail(run, err);
			}
			return as_reject_add(run, &why, where, raw, len, err);
		}
		rc = as_run_map(run, rec, raw, len, where, err);
		json_decref(rec);
		as_json_arena_end();
	}
	if (rc)
		return as_run_mapped(run, rc, where, raw, len, err);
	row = &run->batch.rows[run->batch.nrows - 1];
	row->flags |= AS_ROW_LINE;
	memcpy(row->line, h, 16);
	if (as_span_order(run, row->v, err))
		return as_run_fail(run, err);
	if (run->scanning && as_match_resync(run, row->v, err))
		return as_run_fail(run, err);
	return as_stage_flush_if_full(run, err);
}

int as_run_put_value(atomsync_run *run, json_t *rec, const char *raw,
		     size_t rawlen, const char *where, as_error *err)
{
	int rc;

	if (run->failed)
		return as_error_set(err, run->failure.code, "%s",
				    run->failure.msg);
	if (!run->table.nkey) {
		as_stage_prepare(run, err);
		return as_run_fail(run, err);
	}
	if (!rec && raw)
		return put_line(run, raw, rawlen, where, err);
	if (as_span_close(run, err))
		return as_run_fail(run, err);
	run->span_ok = 0; /* records that are not lines: no order kept */
	if (as_mapper_drain(run, err))
		return err->code;
	run->seen++;
	rc = as_run_map(run, rec, raw, rawlen, where, err);
	if (rc)
		return as_run_mapped(run, rc, where, raw, rawlen, err);
	return as_stage_flush_if_full(run, err);
}

int as_run_reject(atomsync_run *run, const as_error *why, const char *where,
		  const char *raw, size_t rawlen, as_error *err)
{
	if (run->failed)
		return as_error_set(err, run->failure.code, "%s",
				    run->failure.msg);
	if (run->chunk.n) {
		as_error why_copy =
			*why; /* why may live in the caller's event */
		as_error cerr;

		as_error_clear(&cerr);
		if (as_mapper_drain(run, &cerr)) {
			*err = cerr;
			return cerr.code;
		}
		run->seen++;
		return as_reject_add(run, &why_copy, where, raw, rawlen, err);
	}
	run->seen++;
	return as_reject_add(run, why, where, raw, rawlen, err);
}

int atomsync_run_put(atomsync_run *run, const char *json, size_t len,
		     const char *where, atomsync_error *err)
{
	int64_t max = run->ds->max_record_bytes;
	as_error why;

	if (!where)
		where = "record";
	if (max > 0 && (int64_t)len > max) {
		as_error_set(&why, AS_EINPUT,
			     "%s: record is %zu bytes, over the "
			     "size cap of %lld bytes (max_record_size)",
			     where, len, (long long)max);
		return as_run_reject(run, &why, where, NULL, 0, err);
	}
	return as_run_put_value(run, NULL, json, len, where, err);
}

int atomsync_run_checkpoint(atomsync_run *run, const char *checkpoint,
			    atomsync_error *err)
{
	char *cp;

	if (run->failed)
		return as_error_set(err, run->failure.code, "%s",
				    run->failure.msg);
	if (as_mapper_drain(run, err))
		return err->code;
	if (as_span_close(run, err)) /* cp_rows then counts whole spans */
		return as_run_fail(run, err);
	cp = as_strdup(checkpoint);
	if (!cp)
		return as_error_set(err, AS_ENOMEM, "out of memory");
	free(run->pending_cp);
	run->pending_cp = cp;
	run->cp_rows = run->batch.nrows;
	run->seen_at_cp = run->seen;
	pthread_mutex_lock(&run->rmu);
	run->rejected_at_cp = run->rejected;
	pthread_mutex_unlock(&run->rmu);
	if (run->batch.nrows >= (size_t)run->batch_size ||
	    (run->batch.nrows > 0 &&
	     as_mono() - run->last_flush >= FLUSH_INTERVAL)) {
		if (as_stage_flush(run, 1, err))
			return as_run_fail(run, err);
	}
	return 0;
}

int as_run_wants_checkpoint(const atomsync_run *run)
{
	return run->batch.nrows >= (size_t)run->batch_size;
}

/* ---- ending a run ---- */

int atomsync_run_abort(atomsync_run *run, const char *reason,
		       atomsync_error *err)
{
	as_error e2;
	int rc = 0;

	if (run->done)
		return 0;
	run->seen +=
		(int64_t)run->chunk.n; /* read, not covered by a checkpoint */
	as_mapper_discard(run);
	as_stage_wait_idle(run, &e2);
	/* Keep the progress up to the last checkpoint: those rows are exactly
	 * what the checkpoint covers, so the next run resumes after them.  Not
	 * when staging them already failed: trying the same rows again would
	 * count (and write) their rejects twice. */
	if (run->pending_cp && run->cp_rows > 0 && !run->lease_lost &&
	    run->prepared && !run->stage_failed &&
	    (!run->failed || (run->failure.code != AS_ESTORE &&
			      run->failure.code != AS_EFENCED))) {
		run->span_at = NO_SPAN; /* spans after the checkpoint are cut */
		run->batch.nrows = run->cp_rows;
		if (as_stage_flush(run, 1, &e2) || as_stage_wait_idle(run, &e2))
			as_debug("keeping staged progress failed: %s", e2.msg);
	}
	/* The run record counts what this run saw; the staging keeps the
	 * lineage's counts at its checkpoint separately. */
	run->rc.seen = run->seen;
	run->rc.rejected = as_reject_total(run);
	if (run->store->ops->run_end(run->store, &run->rc, "failed", reason,
				     err)) {
		rc = err->code;
		warn_end_lost(run, err);
	}
	run->done = 1;
	return rc;
}

void atomsync_run_free(atomsync_run *run)
{
	as_error err;

	if (!run)
		return;
	if (!run->done && run->rc.run_id)
		atomsync_run_abort(run,
				   run->failed ? run->failure.msg
					       : "abandoned by its caller",
				   &err);
	as_stage_writer_stop(run);
	as_mapper_free(run);
	as_match_free(run);
	as_lease_stop(run);
	if (run->leased)
		run->store->ops->lease_release(run->store,
					       as_table_lease(&run->table),
					       run->rc.token, &err);
	run->store->ops->run_free(run->store, &run->rc);
	free(run->rc.checkpoint);
	free(run->rc.stage_key);
	free(run->rc.cursor);
	free(run->bookmark);
	if (run->rejects)
		fclose(run->rejects);
	free(run->reject_path);
	free(run->pending_cp);
	as_batch_free(&run->batch);
	as_table_clear(&run->table);
	as_outbox_plan_free(&run->outbox);
	as_batch_free(&run->wbatch);
	pthread_mutex_destroy(&run->mu);
	pthread_cond_destroy(&run->cv);
	pthread_mutex_destroy(&run->wmu);
	pthread_cond_destroy(&run->wcv);
	pthread_mutex_destroy(&run->rmu);
	pthread_mutex_destroy(&run->mmu);
	pthread_cond_destroy(&run->mcv);
	free(run);
}

const as_error *as_run_failure(const atomsync_run *run)
{
	return run->failed ? &run->failure : NULL;
}
