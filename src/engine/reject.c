/*
 * Failures and rejects (invariant 9): the run's first failure, which sticks;
 * bad records counted against max_rejects and written to the reject file,
 * from the caller's thread and from the writer's.
 */
#include <stdlib.h>

#include "engine/run_int.h"

int as_run_fail(atomsync_run *run, const as_error *err)
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

int as_reject_add(atomsync_run *run, const as_error *why, const char *where,
		  const char *raw, size_t rawlen, as_error *err)
{
	if (count_reject(run, 0, why, where, raw, rawlen, err))
		return as_run_fail(run, err);
	return 0;
}

/* The store found a reject while staging: on the writer's thread. */
int as_reject_from_store(void *ud, const as_row *row, const char *why,
			 as_error *err)
{
	atomsync_run *run = ud;
	const char *where = row->where ? row->where : "record";
	as_error e;

	as_error_set(&e, AS_EINPUT, "%s: %s", where, why);
	return count_reject(run, 1, &e, where, NULL, 0, err);
}

/* schema_contract discard_row: the record goes to the reject file and is
 * counted as discarded, not as a reject (it is the configured outcome). */
int as_reject_discard(atomsync_run *run, const as_error *why, const char *where,
		      const char *raw, size_t rawlen, as_error *err)
{
	as_error reason = *why;
	int rc;

	pthread_mutex_lock(&run->rmu);
	rc = write_reject(run, where, reason.msg, raw, rawlen, err);
	pthread_mutex_unlock(&run->rmu);
	if (rc)
		return as_run_fail(run, err);
	run->schema.discarded_rows++;
	return 0;
}

int64_t as_reject_total(atomsync_run *run)
{
	int64_t n;

	pthread_mutex_lock(&run->rmu);
	n = run->rejected + run->conflicts;
	pthread_mutex_unlock(&run->rmu);
	return n;
}
