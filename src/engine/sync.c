/*
 * The sync driver: lease and run record (as_run_begin), the source opened at
 * the run's checkpoint, every event into the run, and the publish only when
 * the source confirmed the end of data.  On any failure the run is aborted:
 * recorded as failed, its staging kept for the next run to resume.
 */
#include "engine/sync.h"

#include <string.h>

#include "source/source.h"
#include "util/log.h"
#include "util/proc.h"
#include "util/str.h"
#include "util/time.h"

static int open_source(atomsync_run *run, const as_dataset_cfg *ds,
		       as_source **src, as_error *err)
{
	as_source_opts so;
	int rc;

	memset(&so, 0, sizeof(so));
	so.dataset = ds->name;
	so.checkpoint = run->rc.checkpoint;
	so.cursor = run->rc.cursor;
	so.max_record_bytes = ds->max_record_bytes;
	so.checkpoint_every = 1000;
	so.cfg = run->cfg;
	so.keyed = ds->nkey > 0;
	/* A Singer dataset without a cursor column keeps the tap's STATE as
	 * its bookmark (in the cursor's place), handed to the tap when the
	 * mode takes what changed; a full dataset's tap must deliver
	 * everything (the publish deletes what it did not), so it gets {}. */
	if (ds->source.format == AS_FORMAT_SINGER && !ds->cursor &&
	    (ds->mode == AS_MODE_INCREMENTAL || ds->mode == AS_MODE_APPEND))
		so.bookmark = run->rc.cursor;
	rc = as_source_open(src, &ds->source, &so, err);
	if (rc != AS_ECHECKPOINT)
		return rc;
	as_warn("dataset %s: %s; starting over", ds->name, err->msg);
	if (as_run_discard_checkpoint(run, err))
		return err->code;
	so.checkpoint = NULL;
	return as_source_open(src, &ds->source, &so, err);
}

/* A Singer STATE: the bookmark the publish saves (invariant 8). */
static int keep_bookmark(atomsync_run *run, const char *state, as_error *err)
{
	char *b;

	if (run->ds->source.format != AS_FORMAT_SINGER || run->ds->cursor)
		return 0;
	if (!(b = as_strdup(state)))
		return as_error_set(err, AS_ENOMEM, "out of memory");
	free(run->bookmark);
	run->bookmark = b;
	run->rc.bookmark = b;
	return 0;
}

static int feed(atomsync_run *run, as_event *ev, as_error *err)
{
	switch (ev->kind) {
	case AS_EV_BOOKMARK: return keep_bookmark(run, ev->checkpoint, err);
	case AS_EV_ACTIVATE: return as_run_full_refresh(run, ev->where, err);
	case AS_EV_RECORD:
		return as_run_put_value(run, ev->json, ev->raw, ev->rawlen,
					ev->where, err);
	case AS_EV_BAD:
		return as_run_reject(run, &ev->why, ev->where, ev->raw,
				     ev->rawlen, err);
	case AS_EV_CHECKPOINT:
		if (keep_bookmark(run, ev->checkpoint, err))
			return err->code;
		return atomsync_run_checkpoint(run, ev->checkpoint, err);
	case AS_EV_SCHEMA:
		if (as_run_set_key(run, ev->key, ev->ktype, ev->nkey,
				   ev->hashed, err))
			return err->code;
		return ev->json ? as_run_declare(run, ev->json, err) : 0;
	}
	return 0;
}

static void report(as_progress_fn fn, void *ud, atomsync_run *run,
		   const as_source *src, int done)
{
	as_progress p;

	if (!fn)
		return;
	p.dataset = run->table.dataset;
	p.records = src ? src->records : 0;
	p.pages = src ? src->pages : 0;
	p.bytes = src ? src->bytes : 0;
	p.elapsed = as_now() - run->started;
	p.done = done;
	fn(&p, ud);
}

/* Every event of src into the run, reporting progress twice a second;
 * stops at the end of the data, an error or a signal. */
static int pump(atomsync_run *run, as_source *src, const char *dataset,
		as_progress_fn fn, void *ud, as_error *err)
{
	double next_report = as_mono() + 0.5;
	unsigned long events = 0;
	as_event ev;
	int rc;

	for (;;) {
		if (as_interrupted)
			return as_error_set(err, AS_EINTR,
					    "dataset %s: interrupted by a "
					    "signal; nothing was published",
					    dataset);
		rc = src->ops->next(src, &ev, err);
		if (rc <= 0)
			return rc < 0 ? rc : 0;
		rc = feed(run, &ev, err);
		as_event_clear(&ev);
		if (rc)
			return rc;
		/* The clock only every 1024 events: it is a system call. */
		if (fn && (++events & 1023) == 0 && as_mono() >= next_report) {
			report(fn, ud, run, src, 0);
			next_report = as_mono() + 0.5;
		}
	}
}

/* The run's record for the caller when it failed before its publish. */
static void failed_info(atomsync_run_info *info, const atomsync_run *run,
			const char *dataset, const as_error *err)
{
	char buf[40];

	memset(info, 0, sizeof(*info));
	info->run_id = run->rc.run_id;
	info->dataset = strdup(dataset);
	info->kind = strdup("sync");
	info->mode = strdup(as_mode_name(run->table.mode));
	info->status = strdup("failed");
	info->error = strdup(err->msg);
	info->seen = run->seen;
	info->rejected = run->rejected;
	info->resumed_from = run->rc.resumed_from;
	info->started_at = strdup(as_iso8601(run->started, buf, sizeof(buf)));
	info->finished_at = strdup(as_iso8601(as_now(), buf, sizeof(buf)));
}

int as_sync_dataset(as_store *st, const as_config *cfg, const char *dataset,
		    const atomsync_run_options *opt, as_progress_fn fn,
		    void *ud, atomsync_run_info *info, as_error *err)
{
	const as_dataset_cfg *ds = as_config_dataset(cfg, dataset);
	atomsync_run *run = NULL;
	as_source *src = NULL;
	int rc;

	if (info)
		memset(info, 0, sizeof(*info));
	if (!ds)
		return as_error_set(err, AS_EUSAGE, "%s: no dataset named '%s'",
				    cfg->path ? cfg->path : "config", dataset);
	if (as_every_stream(&ds->source))
		return as_sync_every_stream(st, cfg, ds, opt, fn, ud, info,
					    err);
	rc = as_run_begin(&run, st, cfg, dataset, opt,
			  as_source_resumable(&ds->source), err);
	if (rc)
		return rc;
	as_run_allow_deferred(run);
	/* A resumed tap run: its checkpoint is the STATE it resumes from. */
	if (ds->source.kind == AS_SOURCE_EXEC && run->rc.checkpoint &&
	    (rc = keep_bookmark(run, run->rc.checkpoint, err)))
		goto abort;
	if ((rc = open_source(run, ds, &src, err)))
		goto abort;
	if ((rc = pump(run, src, dataset, fn, ud, err)))
		goto abort;
	if (!src->complete) {
		rc = as_error_set(
			err, AS_ESOURCE,
			"dataset %s: the source did not "
			"confirm the end of its data; nothing was published",
			dataset);
		goto abort;
	}
	report(fn, ud, run, src, 1);
	as_source_close(src);
	src = NULL;
	rc = atomsync_run_publish(run, info, err);
	atomsync_run_free(run);
	return rc;
abort:
	report(fn, ud, run, src, 1);
	/* Stop the source first: a command is killed before the run is closed.
	 */
	as_source_close(src);
	{
		as_error e2;

		atomsync_run_abort(run, err->msg, &e2);
	}
	if (info)
		failed_info(info, run, dataset, err);
	atomsync_run_free(run);
	return rc;
}
