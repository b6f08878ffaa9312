/*
 * The run lifecycle: lease -> run record -> records into batches -> staging
 * commits with their checkpoint -> guard and publish -> release.  A run
 * that stops anywhere before the publish commits leaves the live table as it
 * was (invariant 2), and its staging for the next run to resume (invariant 4).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "effects/outbox.h"
#include "engine/history.h"
#include "engine/run.h"
#include "util/hash.h"
#include "util/log.h"
#include "util/proc.h"
#include "util/str.h"
#include "util/time.h"

#define FLUSH_INTERVAL                                                         \
	2.0 /* seconds: commit at a checkpoint at least this often */

/* Start a helper thread with SIGINT and SIGTERM blocked, so that a signal
 * reaches the main thread and interrupts its blocking read. */
static int start_thread(pthread_t *t, void *(*fn)(void *), void *arg)
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

static int chunk_process(atomsync_run *run, as_error *err);
static int span_close(atomsync_run *run, as_error *err);

#define NO_SPAN ((size_t)-1) /* atomsync_run.span_at: no span open */

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
		rc = run->renew_store->ops->lease_renew(
			run->renew_store, run->table.dataset, run->rc.token,
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
	if (start_thread(&run->renewer, renew_main, run) == 0)
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
		      "dataset", run->table.dataset, "run",
		      (json_int_t)run->rc.run_id);
	if (o && raw) {
		/* The raw record as a string when it is valid UTF-8, else as
		 * hex: a reject file must hold exactly the bytes that were
		 * rejected. */
		json_t *text = json_stringn(raw, rawlen);

		if (text) {
			json_object_set_new(o, "record", text);
		} else {
			as_buf hex = AS_BUF_INIT;

			for (size_t i = 0; i < rawlen; i++)
				as_buf_printf(&hex, "%02x",
					      (unsigned char)raw[i]);
			json_object_set_new(o, "record_hex",
					    json_string(as_buf_cstr(&hex)));
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

/*
 * A bad record: a reject when the dataset allows more, else an error.  It
 * runs on the caller's thread (records the source or the mapping refused)
 * and on the writer's (append-mode conflicts the store finds), hence the
 * lock; the two kinds are counted apart so each checkpoint carries exactly
 * the rejects before it.
 */
static int count_reject(atomsync_run *run, int conflict, const as_error *why,
			const char *where, const char *raw, size_t rawlen,
			as_error *err)
{
	int64_t max = run->ds->guard.max_rejects, total;
	as_error reason = *why; /* why may be err itself */
	int rc = 0;

	pthread_mutex_lock(&run->rmu);
	if (conflict)
		run->conflicts++;
	else
		run->rejected++;
	total = run->rejected + run->conflicts;
	if (total > max) {
		if (max > 0)
			as_error_set(err, AS_EINPUT,
				     "%s (%lld rejects, over max_rejects "
				     "%lld; rejected records are in %s)",
				     reason.msg, (long long)total,
				     (long long)max, run->reject_path);
		else
			*err = reason;
		err->code = AS_EINPUT;
		rc = AS_EINPUT;
	} else {
		rc = write_reject(run, where, reason.msg, raw, rawlen, err);
	}
	pthread_mutex_unlock(&run->rmu);
	return rc;
}

static int reject(atomsync_run *run, const as_error *why, const char *where,
		  const char *raw, size_t rawlen, as_error *err)
{
	if (count_reject(run, 0, why, where, raw, rawlen, err))
		return fail(run, err);
	return 0;
}

/* The store found a reject while staging: on the writer's thread. */
static int store_reject(void *ud, const as_row *row, const char *why,
			as_error *err)
{
	atomsync_run *run = ud;
	const char *where = row->where ? row->where : "record";
	as_error e;

	as_error_set(&e, AS_EINPUT, "%s: %s", where, why);
	return count_reject(run, 1, &e, where, NULL, 0, err);
}

static int64_t total_rejected(atomsync_run *run)
{
	int64_t n;

	pthread_mutex_lock(&run->rmu);
	n = run->rejected + run->conflicts;
	pthread_mutex_unlock(&run->rmu);
	return n;
}

/* ---- staging ---- */

static int prepare(atomsync_run *run, as_error *err)
{
	const as_store_ops *ops = run->store->ops;

	if (run->prepared)
		return 0;
	if (!run->table.nkey)
		return as_error_set(
			err, AS_EUSAGE,
			"dataset %s: no key: set `key` in the dataset, "
			"or have the source send a Singer SCHEMA message "
			"with key_properties",
			run->table.dataset);
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

/* ---- the writer thread ----
 *
 * Records are parsed and mapped on the caller's thread while the previous
 * batch is written on this one, so JSON parsing and SQLite writing overlap
 * on two cores.  One batch is in flight at a time: batches, and the
 * checkpoints they carry, commit in order.  The store connection is used
 * by the writer while a batch is in flight and by the caller only when the
 * writer is idle (wait_idle), which the mutex also orders for memory.
 */

static void *writer_main(void *arg)
{
	atomsync_run *run = arg;

	pthread_mutex_lock(&run->wmu);
	for (;;) {
		as_error err;
		int rc;

		while (!run->wbusy && !run->wstop)
			pthread_cond_wait(&run->wcv, &run->wmu);
		if (!run->wbusy)
			break;
		pthread_mutex_unlock(&run->wmu);
		/* The store adds this batch's conflicts; the earlier ones are
		 * all committed, since batches are written one at a time. */
		pthread_mutex_lock(&run->rmu);
		run->wbatch.rejected += run->conflicts;
		pthread_mutex_unlock(&run->rmu);
		as_error_clear(&err);
		rc = run->store->ops->stage_batch(run->store, &run->rc,
						  &run->wbatch, &err);
		pthread_mutex_lock(&run->wmu);
		if (rc && !run->werr.code)
			run->werr = err;
		if (!rc) {
			run->batches++;
			run->staged += (int64_t)run->wbatch.nrows;
		}
		as_batch_reset(&run->wbatch);
		run->wbusy = 0;
		pthread_cond_broadcast(&run->wcv);
	}
	pthread_mutex_unlock(&run->wmu);
	return NULL;
}

/* Wait until no batch is in flight; a failed write fails the run. */
static int wait_idle(atomsync_run *run, as_error *err)
{
	as_error werr;

	if (!run->writing)
		return 0;
	pthread_mutex_lock(&run->wmu);
	while (run->wbusy)
		pthread_cond_wait(&run->wcv, &run->wmu);
	werr = run->werr;
	pthread_mutex_unlock(&run->wmu);
	if (werr.code) {
		run->stage_failed = 1;
		*err = werr;
		return fail(run, err);
	}
	return 0;
}

static void writer_stop(atomsync_run *run)
{
	if (!run->writing)
		return;
	pthread_mutex_lock(&run->wmu);
	run->wstop = 1;
	pthread_cond_broadcast(&run->wcv);
	pthread_mutex_unlock(&run->wmu);
	pthread_join(run->writer, NULL);
	run->writing = 0;
}

/* Hand the batch to the writer.  with_cp: the pending checkpoint covers
 * every row of the batch and is committed with them; otherwise the staging
 * is marked as not resumable until the next checkpoint commit. */
static int flush(atomsync_run *run, int with_cp, as_error *err)
{
	as_batch tmp, *b = &run->batch;

	if (run->lease_lost)
		return as_error_set(
			err, AS_EFENCED,
			"dataset %s: this worker's lease was taken over "
			"by another worker; nothing more is committed",
			run->table.dataset);
	if (span_close(run, err) || wait_idle(run, err) || prepare(run, err))
		return err->code;
	if (with_cp && run->pending_cp) {
		b->checkpoint = as_strdup(run->pending_cp);
		b->seen = run->seen_at_cp;
		b->rejected = run->rejected_at_cp;
	} else {
		b->checkpoint = NULL;
		b->seen = run->seen;
		pthread_mutex_lock(&run->rmu);
		b->rejected = run->rejected;
		pthread_mutex_unlock(&run->rmu);
	}
	run->cp_rows = 0;
	run->last_flush = as_mono();
	if (!run->writing) {
		if (start_thread(&run->writer, writer_main, run) != 0) {
			/* No thread: write on this one. */
			int rc;

			b->rejected += run->conflicts;
			rc = run->store->ops->stage_batch(run->store, &run->rc,
							  b, err);

			if (rc) {
				run->stage_failed = 1;
				return rc;
			}
			run->batches++;
			run->staged += (int64_t)b->nrows;
			as_batch_reset(b);
			return 0;
		}
		run->writing = 1;
	}
	pthread_mutex_lock(&run->wmu);
	tmp = run->wbatch;
	run->wbatch = run->batch;
	run->batch = tmp;
	run->wbusy = 1;
	pthread_cond_broadcast(&run->wcv);
	pthread_mutex_unlock(&run->wmu);
	return 0;
}

/* ---- the public API ---- */

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
	run = calloc(1, sizeof(*run));
	if (!run)
		return as_error_set(err, AS_ENOMEM, "out of memory");
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
	if ((rc = as_table_build(&run->table, ds, NULL, 0, err)))
		goto fail;
	run->rc.table = &run->table;
	run->rc.kind = "sync";
	run->rc.effects = ds; /* the publish records its outbox events */
	if ((rc = as_outbox_check(ds, &run->table, st->ops->name, cfg->cache,
				  err)))
		goto fail;
	/* Line hashes depend on the mapping: a changed config matches nothing.
	 */
	run->line_seed = as_hash64(run->table.fingerprint,
				   strlen(run->table.fingerprint));
	snprintf(run->rc.owner, sizeof(run->rc.owner), "%s", as_owner_self());
	run->rc.lease_ttl_ms = ds->lease_ttl_ms > 0 ? ds->lease_ttl_ms : 60000;
	run->rc.restart = run->opt.restart || !resumable;
	run->rc.on_reject = store_reject;
	run->rc.reject_ud = run;
	if ((rc = st->ops->lease_acquire(st, ds->name, run->rc.owner,
					 run->rc.lease_ttl_ms, &run->rc.token,
					 err)))
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
	if (chunk_process(run, err) || wait_idle(run, err))
		return err->code;
	for (size_t i = 0; i < nkey; i++)
		off += (size_t)snprintf(want + off, sizeof(want) - off, "%s%s",
					i ? "," : "", key[i]);
	if (run->table.nkey) {
		as_table_key_list(&run->table, have, sizeof(have));
		if (strcmp(have, want) == 0)
			return 0;
		as_error_set(
			err, AS_EUSAGE,
			"dataset %s: the SCHEMA key_properties "
			"(%s) differ from the key of the staging being resumed "
			"(%s); rerun with --restart",
			run->table.dataset, want, have);
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
	if (wait_idle(run, err))
		return err->code;
	if (run->store->ops->stage_discard(run->store, &run->rc, err))
		return fail(run, err);
	run->prepared = 0;
	run->seen = run->seen_at_cp = 0;
	run->rejected = run->rejected_at_cp = run->conflicts = 0;
	free(run->pending_cp);
	run->pending_cp = NULL;
	run->cp_rows = 0;
	if (types_resolved(&run->table) && prepare(run, err))
		return fail(run, err);
	return 0;
}

/* ---- matching lines to published rows ----
 *
 * Every row published from a line keeps the 128-bit hash of that line's
 * exact bytes (seeded with the mapping's fingerprint) in _atomsync_line.
 * While records arrive, the live table is read in key order alongside:
 * a line whose hash equals the next live row's is that row, byte for byte,
 * so it is valid and unchanged and needs no parsing (an unchanged reload
 * costs a hash per line instead of a JSON parse).  A line that does not
 * match is parsed as usual and the scan moves past its key; input in
 * another order than the key's just parses everything, as without this.
 */

#define SCAN_PROBE 4096 /* lines before judging whether matching pays */

static void scan_stop(atomsync_run *run)
{
	if (run->scanning && run->store->ops->scan_close)
		run->store->ops->scan_close(run->store, &run->rc);
	run->scanning = 0;
	run->scan_have = 0;
}

static int scan_start(atomsync_run *run, as_error *err)
{
	const as_store_ops *ops = run->store->ops;
	int rows = 0;

	run->scan_tried = 1;
	if (!ops->scan_open || !run->prepared ||
	    getenv("ATOMSYNC_NO_LINE_MATCH"))
		return 0;
	run->scan_row.v = calloc(run->table.ncols, sizeof(as_val));
	if (!run->scan_row.v)
		return as_error_set(err, AS_ENOMEM, "out of memory");
	if (ops->scan_open(run->store, &run->rc, &rows, err))
		return err->code;
	run->scanning = rows > 0;
	/* Spans stand for unchanged rows only where the publish needs nothing
	 * else of them: no scope or cursor values (scoped mode replaces the
	 * scopes delivered, the cursor takes the maximum delivered), no append
	 * conflicts, and no staging from an earlier attempt (whose input
	 * order this run cannot see). */
	run->span_ok = run->scanning && !run->rc.resumed_from &&
		       (run->table.mode == AS_MODE_FULL ||
			run->table.mode == AS_MODE_INCREMENTAL) &&
		       run->table.nscope == 0 && run->table.cursor < 0 &&
		       !getenv("ATOMSYNC_NO_SPANS");
	if (run->span_ok) {
		run->last_key = calloc(run->table.nkey, sizeof(as_val));
		run->last_text = calloc(run->table.nkey, sizeof(as_buf));
		if (!run->last_key || !run->last_text)
			return as_error_set(err, AS_ENOMEM, "out of memory");
	}
	return 0;
}

/* The live row under the cursor, read on demand; 0 when the scan ended. */
static int scan_peek(atomsync_run *run, as_error *err)
{
	int rc;

	if (run->scan_have)
		return 1;
	as_arena_reset(&run->scan_arena);
	memset(run->scan_row.v, 0, run->table.ncols * sizeof(as_val));
	rc = run->store->ops->scan_next(run->store, &run->rc, &run->scan_row,
					&run->scan_arena, err);
	if (rc < 0)
		return rc;
	if (rc == 0) {
		scan_stop(run);
		return 0;
	}
	run->scan_have = 1;
	return 1;
}

/* Order of two key tuples as SQL orders them: NULL < numbers < text. */
static int key_cmp(const as_table *t, const as_val *a, const as_val *b)
{
	for (size_t i = 0; i < t->nkey; i++) {
		const as_val *x = &a[i], *y = &b[i];
		int c;

		if (x->kind != y->kind) {
			int rx = x->kind == AS_V_TEXT	? 2
				 : x->kind == AS_V_NULL ? 0
							: 1;
			int ry = y->kind == AS_V_TEXT	? 2
				 : y->kind == AS_V_NULL ? 0
							: 1;

			if (rx != ry)
				return rx < ry ? -1 : 1;
		}
		if (x->kind == AS_V_TEXT) {
			size_t n = x->len < y->len ? x->len : y->len;

			c = memcmp(x->u.s, y->u.s, n);
			if (!c)
				c = x->len < y->len ? -1 : x->len > y->len;
		} else {
			double dx =
				x->kind == AS_V_INT ? (double)x->u.i : x->u.r;
			double dy =
				y->kind == AS_V_INT ? (double)y->u.i : y->u.r;

			if (x->kind == AS_V_INT && y->kind == AS_V_INT)
				c = x->u.i < y->u.i ? -1 : x->u.i > y->u.i;
			else
				c = dx < dy ? -1 : dx > dy;
		}
		if (c)
			return c;
	}
	return 0;
}

/* ---- spans ----
 *
 * While the input's keys strictly increase, consecutive hits are staged as
 * one span row (store.h, AS_ROW_SPAN: first key, last key, count) instead
 * of one row each, so an unchanged reload stages almost nothing and the
 * publish reads only the live rows between spans.  Strictly increasing
 * keys are what make a span exact: a record after a span in the input
 * has a greater key than every row of it, so no later record can be a
 * row the span already stands for, except as a duplicate the store
 * detects at the publish (it then stages the span's rows one by one).
 * A span closes at every non-hit, checkpoint and batch hand-over, so a
 * batch cut back to its last checkpoint (atomsync_run_abort) holds only
 * whole spans.
 */

static int copy_key(const as_table *t, as_val *dst, const as_val *src,
		    as_arena *a)
{
	for (size_t i = 0; i < t->nkey; i++) {
		dst[i] = src[i];
		if (src[i].kind == AS_V_TEXT &&
		    !(dst[i].u.s = as_arena_strndup(a, src[i].u.s, src[i].len)))
			return AS_ENOMEM;
	}
	return 0;
}

static int span_close(atomsync_run *run, as_error *err)
{
	as_row *row;

	if (run->span_at == NO_SPAN)
		return 0;
	row = &run->batch.rows[run->span_at];
	run->span_at = NO_SPAN;
	row->hi = as_arena_alloc(&run->batch.arena,
				 run->table.nkey * sizeof(as_val));
	if (!row->hi ||
	    copy_key(&run->table, row->hi, run->last_key, &run->batch.arena))
		return as_error_set(err, AS_ENOMEM, "out of memory");
	return 0;
}

/* Record key k as the last record's; spans end for good at a key that
 * does not increase. */
static int span_order(atomsync_run *run, const as_val *k, as_error *err)
{
	if (!run->span_ok)
		return 0;
	if (run->have_last && key_cmp(&run->table, k, run->last_key) <= 0) {
		if (span_close(run, err))
			return err->code;
		run->span_ok = 0;
		return 0;
	}
	for (size_t i = 0; i < run->table.nkey; i++) {
		as_val v = k[i];

		if (v.kind == AS_V_TEXT) {
			as_buf *b = &run->last_text[i];

			as_buf_reset(b);
			if (as_buf_add(b, v.u.s, v.len) || b->failed)
				return as_error_set(err, AS_ENOMEM,
						    "out of memory");
			v.u.s = b->data ? b->data : "";
		}
		run->last_key[i] = v;
	}
	run->have_last = 1;
	return 0;
}

/* A hit while spans are made: extend the open span or open one.  *took
 * is 0 when the order broke and the hit is to be staged as a row. */
static int span_take(atomsync_run *run, int *took, as_error *err)
{
	as_row *row;

	*took = 0;
	if (span_order(run, run->scan_row.v, err))
		return err->code;
	if (!run->span_ok)
		return 0;
	*took = 1;
	if (run->span_at != NO_SPAN) {
		run->batch.rows[run->span_at].span++;
		return 0;
	}
	row = as_batch_add(&run->batch, run->table.ncols);
	if (!row ||
	    copy_key(&run->table, row->v, run->scan_row.v, &run->batch.arena))
		return as_error_set(err, AS_ENOMEM, "out of memory");
	row->flags = AS_ROW_SPAN;
	row->span = 1;
	run->span_at = run->batch.nrows++;
	run->spans++;
	return 0;
}

/* A hit: the live row itself, staged as unchanged without parsing. */
static int scan_take(atomsync_run *run, const unsigned char h[16],
		     as_error *err)
{
	as_row *row;
	int took;

	if (run->span_ok) {
		if (span_take(run, &took, err))
			return err->code;
		if (took) {
			run->scan_have = 0;
			run->scan_hits++;
			return 0;
		}
	}
	row = as_batch_add(&run->batch, run->table.ncols);
	if (!row)
		return as_error_set(err, AS_ENOMEM, "out of memory");
	for (size_t i = 0; i < run->table.ncols; i++) {
		as_val v = run->scan_row.v[i];

		if (v.kind == AS_V_TEXT) {
			v.u.s = as_arena_strndup(&run->batch.arena, v.u.s,
						 v.len);
			if (!v.u.s)
				return as_error_set(err, AS_ENOMEM,
						    "out of memory");
		}
		row->v[i] = v;
	}
	row->hash = run->scan_row.hash;
	row->flags = AS_ROW_UNCHANGED | AS_ROW_LINE;
	memcpy(row->line, h, 16);
	run->batch.nrows++;
	run->scan_have = 0;
	run->scan_hits++;
	return 0;
}

/* A miss that parsed to key k: move the scan past k. */
static int scan_resync(atomsync_run *run, const as_val *k, as_error *err)
{
	run->scan_misses++;
	if (run->scan_hits + run->scan_misses == SCAN_PROBE &&
	    run->scan_hits * 10 < SCAN_PROBE) {
		scan_stop(run); /* another order, or rows not from lines */
		return 0;
	}
	if (run->scan_have && key_cmp(&run->table, run->scan_row.v, k) == 0) {
		run->scan_have = 0; /* this row is the one just parsed */
		return 0;
	}
	run->scan_have = 0;
	if (run->store->ops->scan_seek(run->store, &run->rc, k, err))
		return err->code;
	return 0;
}

static int batch_full(atomsync_run *run, as_error *err)
{
	if (run->batch.nrows >=
	    (size_t)(run->resumable ? run->max_batch : run->batch_size)) {
		if (flush(run, 0, err))
			return fail(run, err);
	}
	return 0;
}

/* ---- parallel mapping ----
 *
 * A load that parses every record spends most of its CPU in JSON parsing.
 * Lines are collected in chunks; each chunk is parsed and mapped by this
 * thread and a mapper thread, half each, into the batch's two arenas, then
 * merged in input order: rejects, duplicates and checkpoints behave exactly
 * as with one thread.  Used once the column types are known (the first
 * record resolves undeclared ones) and when lines are not being matched
 * against the live table (a reload parses almost nothing).
 */

#define CHUNK_LINES 1024

static void map_range(atomsync_run *run, size_t lo, size_t hi, as_batch *h)
{
	as_chunk *c = &run->chunk;

	for (size_t i = lo; i < hi; i++) {
		as_chunk_line *ln = &c->lines[i];
		const char *raw = c->buf.data + ln->off;
		const char *where = c->buf.data + ln->woff;
		as_error why;
		json_t *rec;
		as_row *row;
		int rc;

		as_error_clear(&why);
		as_json_arena_begin();
		rec = as_json_parse_record(raw, ln->len, where, &why);
		if (rec) {
			rc = as_record_map(&run->table, rec, raw, ln->len,
					   where, h, &why);
			json_decref(rec);
		} else {
			rc = why.code ? why.code : AS_EINPUT;
		}
		as_json_arena_end();
		if (rc) {
			ln->err = malloc(sizeof(*ln->err));
			if (ln->err)
				*ln->err = why;
			ln->row = (size_t)-1;
			continue;
		}
		ln->row = h->nrows - 1;
		row = &h->rows[ln->row];
		row->flags |= AS_ROW_LINE;
		as_hash128(raw, ln->len, run->line_seed, row->line);
	}
}

static void *mapper_main(void *arg)
{
	atomsync_run *run = arg;

	pthread_mutex_lock(&run->mmu);
	for (;;) {
		while (!run->mbusy && !run->mstop)
			pthread_cond_wait(&run->mcv, &run->mmu);
		if (!run->mbusy)
			break;
		pthread_mutex_unlock(&run->mmu);
		map_range(run, run->mlo, run->mhi, &run->half[1]);
		pthread_mutex_lock(&run->mmu);
		run->mbusy = 0;
		pthread_cond_broadcast(&run->mcv);
	}
	pthread_mutex_unlock(&run->mmu);
	return NULL;
}

static void mapper_stop(atomsync_run *run)
{
	if (!run->mapper_on)
		return;
	pthread_mutex_lock(&run->mmu);
	run->mstop = 1;
	pthread_cond_broadcast(&run->mcv);
	pthread_mutex_unlock(&run->mmu);
	pthread_join(run->mapper, NULL);
	run->mapper_on = 0;
}

static void chunk_clear(as_chunk *c)
{
	for (size_t i = 0; i < c->n; i++) {
		free(c->lines[i].err);
		c->lines[i].err = NULL;
	}
	c->n = 0;
	as_buf_reset(&c->buf);
}

/* Append a mapped row (values already in the batch's arenas). */
static int batch_append(as_batch *b, const as_row *row)
{
	if (b->nrows == b->caprows) {
		size_t cap = b->caprows ? b->caprows * 2 : 1024;
		as_row *nr = realloc(b->rows, cap * sizeof(*nr));

		if (!nr)
			return AS_ENOMEM;
		b->rows = nr;
		b->caprows = cap;
	}
	b->rows[b->nrows++] = *row;
	return 0;
}

/* Parse and map the waiting lines, then add them to the batch in order. */
static int chunk_process(atomsync_run *run, as_error *err)
{
	as_chunk *c = &run->chunk;
	size_t mid = c->n;
	int rc = 0;

	if (!c->n)
		return 0;
	if (!run->mapper_on && c->n >= 64 &&
	    start_thread(&run->mapper, mapper_main, run) == 0)
		run->mapper_on = 1;
	/* Each half maps into one of the batch's arenas; the batch is not
	 * touched meanwhile (the writer has its own). */
	run->half[0].arena = run->batch.arena;
	run->half[1].arena = run->batch.arena2;
	run->half[0].nrows = run->half[1].nrows = 0;
	if (run->mapper_on && c->n >= 64) {
		mid = c->n / 2;
		pthread_mutex_lock(&run->mmu);
		run->mlo = mid;
		run->mhi = c->n;
		run->mbusy = 1;
		pthread_cond_broadcast(&run->mcv);
		pthread_mutex_unlock(&run->mmu);
	}
	map_range(run, 0, mid, &run->half[0]);
	if (mid < c->n) {
		pthread_mutex_lock(&run->mmu);
		while (run->mbusy)
			pthread_cond_wait(&run->mcv, &run->mmu);
		pthread_mutex_unlock(&run->mmu);
	}
	run->batch.arena = run->half[0].arena;
	run->batch.arena2 = run->half[1].arena;
	for (size_t i = 0; !rc && i < c->n; i++) {
		as_chunk_line *ln = &c->lines[i];

		run->seen++;
		if (ln->err) {
			if (ln->err->code == AS_EINPUT)
				rc = reject(
					run, ln->err, c->buf.data + ln->woff,
					c->buf.data + ln->off, ln->len, err);
			else
				rc = fail(run, ln->err);
		} else if (ln->row == (size_t)-1) {
			rc = fail(run, &(as_error){.code = AS_ENOMEM,
						   .msg = "out of memory"});
		} else if (batch_append(
				   &run->batch,
				   &run->half[i < mid ? 0 : 1].rows[ln->row])) {
			rc = fail(run, &(as_error){.code = AS_ENOMEM,
						   .msg = "out of memory"});
		}
	}
	chunk_clear(c);
	if (rc && run->failed)
		*err = run->failure;
	return rc;
}

/* Queue a line for chunk_process (copying it: the source's buffer moves). */
static int chunk_add(atomsync_run *run, const char *raw, size_t len,
		     const char *where, as_error *err)
{
	as_chunk *c = &run->chunk;
	as_chunk_line *ln;

	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : CHUNK_LINES;
		as_chunk_line *nl = realloc(c->lines, cap * sizeof(*nl));

		if (!nl) {
			as_error_set(err, AS_ENOMEM, "out of memory");
			return fail(run, err);
		}
		c->lines = nl;
		c->cap = cap;
	}
	ln = &c->lines[c->n];
	memset(ln, 0, sizeof(*ln));
	ln->off = c->buf.len;
	ln->len = len;
	if (as_buf_add(&c->buf, raw, len) || as_buf_addc(&c->buf, '\0')) {
		as_error_set(err, AS_ENOMEM, "out of memory");
		return fail(run, err);
	}
	ln->woff = c->buf.len;
	if (as_buf_add(&c->buf, where, strlen(where) + 1)) {
		as_error_set(err, AS_ENOMEM, "out of memory");
		return fail(run, err);
	}
	c->n++;
	if (c->n >= CHUNK_LINES) {
		if (chunk_process(run, err))
			return err->code ? err->code : run->failure.code;
		return batch_full(run, err);
	}
	return 0;
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

	if (!run->scan_tried && run->prepared && scan_start(run, err))
		return fail(run, err);
	if (run->deferred && run->scan_tried && !run->scanning &&
	    types_resolved(&run->table))
		return chunk_add(run, raw, len, where, err);
	run->seen++;
	as_hash128(raw, len, run->line_seed, h);
	if (run->scanning) {
		rc = scan_peek(run, err);
		if (rc < 0)
			return fail(run, err);
		if (rc > 0 && run->scan_row.has_line &&
		    memcmp(run->scan_row.line, h, 16) == 0) {
			if (scan_take(run, h, err))
				return fail(run, err);
			return batch_full(run, err);
		}
	}
	if (span_close(run, err))
		return fail(run, err);
	as_json_arena_begin();
	rec = as_json_parse_record(raw, len, where, &why);
	if (!rec) {
		as_json_arena_end();
		if (why.code ==
		    AS_ENOMEM) { /* not a bad record: none is dropped */
			*err = why;
			return fail(run, err);
		}
		return reject(run, &why, where, raw, len, err);
	}
	rc = as_record_map(&run->table, rec, raw, len, where, &run->batch, err);
	json_decref(rec);
	as_json_arena_end();
	if (rc == AS_EINPUT)
		return reject(run, err, where, raw, len, err);
	if (rc)
		return fail(run, err);
	row = &run->batch.rows[run->batch.nrows - 1];
	row->flags |= AS_ROW_LINE;
	memcpy(row->line, h, 16);
	if (span_order(run, row->v, err))
		return fail(run, err);
	if (run->scanning && scan_resync(run, row->v, err))
		return fail(run, err);
	return batch_full(run, err);
}

int as_run_put_value(atomsync_run *run, json_t *rec, const char *raw,
		     size_t rawlen, const char *where, as_error *err)
{
	int rc;

	if (run->failed)
		return as_error_set(err, run->failure.code, "%s",
				    run->failure.msg);
	if (!run->table.nkey) {
		prepare(run, err);
		return fail(run, err);
	}
	if (!rec && raw)
		return put_line(run, raw, rawlen, where, err);
	if (span_close(run, err))
		return fail(run, err);
	run->span_ok = 0; /* records that are not lines: no order kept */
	if (chunk_process(run, err))
		return err->code;
	run->seen++;
	rc = as_record_map(&run->table, rec, raw, rawlen, where, &run->batch,
			   err);
	if (rc == AS_EINPUT)
		return reject(run, err, where, raw, rawlen, err);
	if (rc)
		return fail(run, err);
	return batch_full(run, err);
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
		if (chunk_process(run, &cerr)) {
			*err = cerr;
			return cerr.code;
		}
		run->seen++;
		return reject(run, &why_copy, where, raw, rawlen, err);
	}
	run->seen++;
	return reject(run, why, where, raw, rawlen, err);
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
	if (chunk_process(run, err))
		return err->code;
	if (span_close(run, err)) /* cp_rows then counts whole spans */
		return fail(run, err);
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
	info->started_at =
		as_strdup(as_iso8601(run->started, buf, sizeof(buf)));
	info->finished_at = as_strdup(as_iso8601(as_now(), buf, sizeof(buf)));
	info->seen = run->counts.seen ? run->counts.seen : run->seen;
	info->inserted = run->counts.inserted;
	info->updated = run->counts.updated;
	info->unchanged = run->counts.unchanged;
	info->deleted = run->counts.deleted;
	info->rejected = total_rejected(run);
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

int atomsync_run_publish(atomsync_run *run, atomsync_run_info *info,
			 atomsync_error *err)
{
	as_publish_opts po;
	as_arena a;
	double t0;
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
	if ((rc = chunk_process(run, err)) || (rc = batch_full(run, err)))
		goto failed;
	if ((rc = build_publish_opts(run, &po, &a, err)))
		goto failed;
	if (run->batch.nrows > 0 || (!run->prepared && run->table.nkey)) {
		if ((rc = flush(run, run->cp_rows == run->batch.nrows, err)))
			goto failed;
	}
	if ((rc = wait_idle(run, err)))
		goto failed;
	if (run->lease_lost) {
		rc = as_error_set(
			err, AS_EFENCED,
			"dataset %s: this worker's lease "
			"was taken over by another worker; nothing was "
			"published by this run",
			run->table.dataset);
		goto failed;
	}
	run->rc.seen = run->seen;
	run->rc.rejected = total_rejected(run);
	t0 = as_mono();
	as_info("%s: %lld records staged in %.2f s; publishing",
		run->table.dataset, (long long)run->seen,
		as_now() - run->started);
	rc = run->store->ops->publish(run->store, &run->rc, &po, &run->counts,
				      err);
	as_info("%s: publish took %.2f s", run->table.dataset, as_mono() - t0);
	as_arena_free(&a);
	if (rc == AS_EREFUSED) {
		as_error e2;

		run->store->ops->run_end(run->store, &run->rc, "refused",
					 err->msg, &e2);
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
	/* Invariant 7: effects only now, after commit; never fails the run. */
	as_outbox_after_publish(run->store, run->cfg, run->table.dataset);
	if (run->scan_hits)
		as_info("%s: %lld of %lld records matched their published text and "
			"were not parsed (%lld spans)",
			run->table.dataset, (long long)run->scan_hits,
			(long long)run->seen, (long long)run->spans);
	return 0;
failed:
	as_arena_free(&a);
	fail(run, err);
ended : {
	as_error e2;

	/* The store is the writer's until its batch is done. */
	wait_idle(run, &e2);
	run->rc.seen = run->seen;
	run->rc.rejected = total_rejected(run);
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
	run->seen +=
		(int64_t)run->chunk.n; /* read, not covered by a checkpoint */
	chunk_clear(&run->chunk);
	wait_idle(run, &e2);
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
		if (flush(run, 1, &e2) || wait_idle(run, &e2))
			as_debug("keeping staged progress failed: %s", e2.msg);
	}
	/* The run record counts what this run saw; the staging keeps the
	 * lineage's counts at its checkpoint separately. */
	run->rc.seen = run->seen;
	run->rc.rejected = total_rejected(run);
	if (run->store->ops->run_end(run->store, &run->rc, "failed", reason,
				     err))
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
		atomsync_run_abort(run,
				   run->failed ? run->failure.msg
					       : "abandoned by its caller",
				   &err);
	writer_stop(run);
	mapper_stop(run);
	chunk_clear(&run->chunk);
	free(run->chunk.lines);
	as_buf_free(&run->chunk.buf);
	free(run->half[0].rows);
	free(run->half[1].rows);
	scan_stop(run);
	free(run->scan_row.v);
	as_arena_free(&run->scan_arena);
	if (run->last_text)
		for (size_t i = 0; i < run->table.nkey; i++)
			as_buf_free(&run->last_text[i]);
	free(run->last_text);
	free(run->last_key);
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
