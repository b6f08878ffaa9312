/*
 * --metrics-file: Prometheus text format for node_exporter's textfile
 * collector, computed from the run records (so counters survive restarts)
 * and written atomically: a temporary file in the same directory, then
 * rename.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "util/str.h"
#include "util/time.h"

static const char *STATUSES[] = {"completed", "failed",	    "refused",
				 "active",    "publishing", NULL};

/* Label values escape backslash, quote and newline. */
static void label(as_buf *b, const char *v)
{
	for (; *v; v++) {
		if (*v == '\\' || *v == '"')
			as_buf_addc(b, '\\');
		if (*v == '\n') {
			as_buf_adds(b, "\\n");
			continue;
		}
		as_buf_addc(b, *v);
	}
}

static void dataset_metrics(as_buf *runs, as_buf *recs, as_buf *dur,
			    as_buf *last, const char *ds,
			    const atomsync_run_info *v, size_t n)
{
	int64_t by_status[6] = {0}, ins = 0, upd = 0, unch = 0, del = 0,
		rej = 0;
	double last_ok = 0, last_dur = -1;

	for (size_t i = 0; i < n; i++) {
		/* A verify run changes nothing: its counts are of a sample and
		 * its end is not a sync's success. */
		if (as_streq(v[i].kind, "verify"))
			continue;
		for (int k = 0; STATUSES[k]; k++)
			if (as_streq(v[i].status, STATUSES[k]))
				by_status[k]++;
		ins += v[i].inserted;
		upd += v[i].updated;
		unch += v[i].unchanged;
		del += v[i].deleted;
		rej += v[i].rejected;
		if (v[i].finished_at && v[i].started_at) {
			double s, f;

			if (!as_parse_iso8601(v[i].started_at, &s) &&
			    !as_parse_iso8601(v[i].finished_at, &f)) {
				if (last_dur < 0)
					last_dur = f - s; /* newest first */
				if (as_streq(v[i].status, "completed") &&
				    as_streq(v[i].kind, "sync") && f > last_ok)
					last_ok = f;
			}
		}
	}
	for (int k = 0; STATUSES[k]; k++) {
		as_buf_adds(runs, "atomsync_runs_total{dataset=\"");
		label(runs, ds);
		as_buf_printf(runs, "\",status=\"%s\"} %lld\n", STATUSES[k],
			      (long long)by_status[k]);
	}
	{
		const char *names[] = {"inserted", "updated", "unchanged",
				       "deleted", "rejected"};
		int64_t vals[] = {ins, upd, unch, del, rej};

		for (int k = 0; k < 5; k++) {
			as_buf_adds(recs, "atomsync_records_total{dataset=\"");
			label(recs, ds);
			as_buf_printf(recs, "\",outcome=\"%s\"} %lld\n",
				      names[k], (long long)vals[k]);
		}
	}
	if (last_dur >= 0) {
		as_buf_adds(dur, "atomsync_run_duration_seconds{dataset=\"");
		label(dur, ds);
		as_buf_printf(dur, "\"} %.3f\n", last_dur);
	}
	if (last_ok > 0) {
		as_buf_adds(
			last,
			"atomsync_last_success_timestamp_seconds{dataset=\"");
		label(last, ds);
		as_buf_printf(last, "\"} %.3f\n", last_ok);
	}
}

int as_metrics_text(const atomsync_config *cfg, atomsync_store *st, as_buf *out,
		    as_error *err)
{
	as_buf runs = AS_BUF_INIT, recs = AS_BUF_INIT, dur = AS_BUF_INIT,
	       last = AS_BUF_INIT;
	int rc = 0;

	for (size_t i = 0; cfg && i < atomsync_config_ndatasets(cfg); i++) {
		const char *ds = atomsync_config_dataset_name(cfg, i);
		atomsync_run_info *v = NULL;
		size_t n = 0;

		if ((rc = atomsync_runs_list(st, ds, 0, &v, &n, err)))
			goto done;
		dataset_metrics(&runs, &recs, &dur, &last, ds, v, n);
		atomsync_run_info_free(v, n);
	}
	as_buf_printf(
		out,
		"# HELP atomsync_runs_total Runs by final status.\n"
		"# TYPE atomsync_runs_total counter\n%s"
		"# HELP atomsync_records_total Records by outcome.\n"
		"# TYPE atomsync_records_total counter\n%s"
		"# HELP atomsync_run_duration_seconds Duration of the "
		"latest finished run.\n"
		"# TYPE atomsync_run_duration_seconds gauge\n%s"
		"# HELP atomsync_last_success_timestamp_seconds End of "
		"the latest completed run.\n"
		"# TYPE atomsync_last_success_timestamp_seconds gauge\n%s",
		as_buf_cstr(&runs), as_buf_cstr(&recs), as_buf_cstr(&dur),
		as_buf_cstr(&last));
done:
	as_buf_free(&runs);
	as_buf_free(&recs);
	as_buf_free(&dur);
	as_buf_free(&last);
	return rc;
}

int as_metrics_write(as_cli *cli, atomsync_store *st, as_error *err)
{
	as_buf out = AS_BUF_INIT;
	char *tmp = NULL;
	FILE *f = NULL;
	int rc;

	if ((rc = as_metrics_text(cli->cfg, st, &out, err)))
		goto done;
	tmp = as_sprintf("%s.tmp.%ld", cli->metrics_file, (long)getpid());
	f = tmp ? fopen(tmp, "w") : NULL;
	if (!f) {
		rc = as_error_errno(err, AS_ERROR, "metrics file %s",
				    cli->metrics_file);
		goto done;
	}
	if (fwrite(out.data, 1, out.len, f) != out.len || fflush(f) ||
	    fsync(fileno(f))) {
		rc = as_error_errno(err, AS_ERROR, "metrics file %s", tmp);
		goto done;
	}
	fclose(f);
	f = NULL;
	if (rename(tmp, cli->metrics_file) != 0)
		rc = as_error_errno(err, AS_ERROR, "metrics file %s",
				    cli->metrics_file);
done:
	if (f)
		fclose(f);
	if (rc && tmp)
		unlink(tmp);
	free(tmp);
	as_buf_free(&out);
	return rc;
}
