/*
 * /status: one self-contained HTML page (inline CSS and SVG, no scripts or
 * external assets) with each dataset's rows, next run, last error, its
 * recent runs and a chart of records and durations; it reloads itself.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve/serve.h"
#include "util/log.h"
#include "util/str.h"
#include "util/time.h"

#define RUNS_SHOWN 10
#define RUNS_CHARTED 20

static void esc(as_buf *b, const char *s)
{
	for (; s && *s; s++) {
		switch (*s) {
		case '<': as_buf_adds(b, "&lt;"); break;
		case '>': as_buf_adds(b, "&gt;"); break;
		case '&': as_buf_adds(b, "&amp;"); break;
		case '"': as_buf_adds(b, "&quot;"); break;
		default: as_buf_addc(b, *s);
		}
	}
}

static double duration(const atomsync_run_info *r)
{
	double s, f;

	if (!r->started_at || !r->finished_at ||
	    as_parse_iso8601(r->started_at, &s) ||
	    as_parse_iso8601(r->finished_at, &f))
		return -1;
	return f - s;
}

/* Bars of records seen (upper half) and durations (lower half), oldest
 * on the left; failed runs in red. */
static void chart(as_buf *b, const atomsync_run_info *v, size_t n)
{
	const int W = 560, H = 120, bw = W / RUNS_CHARTED;
	double maxr = 0, maxd = 0;
	size_t m = n < RUNS_CHARTED ? n : RUNS_CHARTED;

	for (size_t i = 0; i < m; i++) {
		if ((double)v[i].seen > maxr)
			maxr = (double)v[i].seen;
		if (duration(&v[i]) > maxd)
			maxd = duration(&v[i]);
	}
	as_buf_printf(b,
		      "<svg class=\"chart\" width=\"%d\" height=\"%d\" "
		      "viewBox=\"0 0 %d %d\" role=\"img\"><title>records and "
		      "duration of the last %zu runs</title>"
		      "<text x=\"2\" y=\"10\">records (max %.0f)</text>"
		      "<text x=\"2\" y=\"%d\">seconds (max %.3f)</text>"
		      "<line x1=\"0\" y1=\"%d\" x2=\"%d\" y2=\"%d\" "
		      "class=\"axis\"/>",
		      W, H + 14, W, H + 14, m, maxr, H / 2 + 12, maxd,
		      H / 2 + 2, W, H / 2 + 2);
	/* The labels say the true maxima; the scale never divides by 0. */
	maxr = maxr > 1 ? maxr : 1;
	maxd = maxd > 0.001 ? maxd : 0.001;
	for (size_t k = 0; k < m; k++) {
		const atomsync_run_info *r = &v[m - 1 - k];
		int x = (int)k * bw + 1, rh, dh;
		double d = duration(r);
		const char *cls = as_streq(r->status, "failed")	     ? "bad"
				  : as_streq(r->status, "refused")   ? "warn"
				  : as_streq(r->status, "completed") ? "ok"
								     : "run";

		rh = (int)((double)r->seen / maxr * (H / 2.0 - 14));
		dh = d > 0 ? (int)(d / maxd * (H / 2.0 - 14)) : 0;
		as_buf_printf(b,
			      "<rect class=\"%s\" x=\"%d\" y=\"%d\" "
			      "width=\"%d\" height=\"%d\"><title>run %lld: "
			      "%lld records</title></rect>",
			      cls, x, H / 2 - rh, bw - 2, rh > 0 ? rh : 1,
			      (long long)r->run_id, (long long)r->seen);
		as_buf_printf(b,
			      "<rect class=\"dur %s\" x=\"%d\" y=\"%d\" "
			      "width=\"%d\" height=\"%d\"><title>run %lld: "
			      "%.2f s</title></rect>",
			      cls, x, H / 2 + 14, bw - 2, dh > 0 ? dh : 1,
			      (long long)r->run_id, d > 0 ? d : 0);
	}
	as_buf_adds(b, "</svg>");
}

static void runs_table(as_buf *b, const atomsync_run_info *v, size_t n)
{
	as_buf_adds(b, "<table><tr><th>run</th><th>status</th><th>started"
		       "</th><th>seconds</th><th>seen</th><th>inserted</th>"
		       "<th>updated</th><th>deleted</th><th>rejected</th>"
		       "<th>error</th></tr>");
	for (size_t i = 0; i < n && i < RUNS_SHOWN; i++) {
		double d = duration(&v[i]);

		as_buf_printf(b, "<tr class=\"%s\"><td>%lld</td><td>",
			      v[i].status ? v[i].status : "",
			      (long long)v[i].run_id);
		esc(b, v[i].status);
		as_buf_adds(b, "</td><td>");
		esc(b, v[i].started_at);
		if (d >= 0)
			as_buf_printf(b, "</td><td>%.3f", d);
		else
			as_buf_adds(b, "</td><td>-");
		as_buf_printf(b,
			      "</td><td>%lld</td><td>%lld</td><td>%lld</td>"
			      "<td>%lld</td><td>%lld</td><td>",
			      (long long)v[i].seen, (long long)v[i].inserted,
			      (long long)v[i].updated, (long long)v[i].deleted,
			      (long long)v[i].rejected);
		esc(b, v[i].error);
		as_buf_adds(b, "</td></tr>");
	}
	as_buf_adds(b, "</table>");
}

static const char STYLE[] =
	"body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}"
	"h1{font-size:20px}h2{font-size:16px;margin:0 0 .3em}"
	"section{border:1px solid #ccc;border-radius:6px;padding:1em;"
	"margin:0 0 1em}table{border-collapse:collapse;margin:.5em 0}"
	"td,th{padding:2px 8px;border-bottom:1px solid #eee;text-align:right}"
	"td:nth-child(2),td:nth-child(3),td:last-child,th:nth-child(2),"
	"th:nth-child(3),th:last-child{text-align:left}"
	"td:nth-child(3){white-space:nowrap}"
	"tr.failed td{color:#b00}.error{color:#b00}.meta span{margin-right:"
	"1.5em}svg text{font-size:10px;fill:#555}.axis{stroke:#999}"
	".ok{fill:#3a7}.bad{fill:#c33}.warn{fill:#d90}.run{fill:#69c}"
	".dur{opacity:.6}";

/* What the status page says of one dataset besides its runs. */
typedef struct ds_state {
	int64_t rows;	      /* rows in its table; -1: no table yet */
	int64_t done, failed; /* of the sync runs listed */
	size_t ns;	      /* sync runs listed */
	double next;	      /* the next run's time; -1: none */
	int active;	      /* running here now */
	int retry;	      /* failed runs in a row being retried */
} ds_state;

/* The scheduler's view of the dataset name, under the lock. */
static void job_state(as_serve *sv, const char *name, ds_state *d)
{
	pthread_mutex_lock(&sv->mu);
	for (as_job *j = sv->jobs; j; j = j->next_job)
		if (strcmp(j->name, name) == 0) {
			d->next = j->scheduled ? j->next : -1;
			d->active = j->active && !j->done;
			d->retry = j->last.failed ? j->last.failures : 0;
		}
	pthread_mutex_unlock(&sv->mu);
}

/* The section's heading and its line of facts. */
static void section_head(as_buf *b, const as_dataset_cfg *ds, const char *table,
			 const ds_state *d)
{
	char ts[40];

	as_buf_adds(b, "<section><h2>");
	esc(b, ds->name);
	as_buf_adds(b, "</h2><p class=\"meta\"><span>table ");
	esc(b, table);
	as_buf_printf(b, "</span><span>%s</span>", as_mode_name(ds->mode));
	if (d->rows >= 0)
		as_buf_printf(b, "<span>%lld rows</span>", (long long)d->rows);
	else
		as_buf_adds(b, "<span>no table yet</span>");
	as_buf_adds(b, "<span>schedule ");
	esc(b, ds->schedule ? ds->schedule : "none");
	as_buf_printf(b,
		      "</span><span>%lld completed, %lld failed of "
		      "the last %zu runs</span><span>next run %s",
		      (long long)d->done, (long long)d->failed, d->ns,
		      d->active	     ? "now (running)"
		      : d->next >= 0 ? as_iso8601(d->next, ts, sizeof(ts))
				     : "none");
	if (!d->active && d->next >= 0 && d->retry)
		as_buf_printf(b, " (retry after %d failed run%s)", d->retry,
			      d->retry > 1 ? "s" : "");
	as_buf_printf(b, "</span>%s</p>",
		      d->active ? "<span>running here</span>" : "");
}

/* One dataset's section: its facts, last error, chart and runs. */
static int dataset_section(as_serve *sv, as_store *st, const as_dataset_cfg *ds,
			   as_buf *b, as_error *err)
{
	const char *table = ds->table ? ds->table : ds->name;
	atomsync_run_info *v = NULL, *sync = NULL;
	size_t n = 0, ns = 0;
	ds_state d = {.rows = -1, .next = -1};
	int rc;

	if ((rc = st->ops->table_rows(st, table, &d.rows, err)) ||
	    (rc = st->ops->runs_list(st, ds->name, 50, &v, &n, err)))
		return rc;
	/* Verify runs are not syncs: the page charts syncs. */
	sync = calloc(n ? n : 1, sizeof(*sync));
	for (size_t k = 0; sync && k < n; k++)
		if (!as_streq(v[k].kind, "verify"))
			sync[ns++] = v[k];
	for (size_t k = 0; k < ns; k++) {
		d.done += as_streq(sync[k].status, "completed");
		d.failed += as_streq(sync[k].status, "failed");
	}
	d.ns = ns;
	job_state(sv, ds->name, &d);
	section_head(b, ds, table, &d);
	if (ns && sync[0].error) {
		as_buf_adds(b, "<p class=\"error\">last error: ");
		esc(b, sync[0].error);
		as_buf_adds(b, "</p>");
	}
	if (ns) {
		chart(b, sync, ns);
		runs_table(b, sync, ns);
	} else {
		as_buf_adds(b, "<p>never run</p>");
	}
	as_buf_adds(b, "</section>");
	free(sync);
	atomsync_run_info_free(v, n);
	return 0;
}

int as_page_render(as_serve *sv, const as_config *cfg, as_store *st, as_buf *b,
		   as_error *err)
{
	char ts[40];
	int rc = 0;

	as_buf_printf(b,
		      "<!DOCTYPE html><html lang=\"en\"><head><meta "
		      "charset=\"utf-8\"><meta http-equiv=\"refresh\" "
		      "content=\"10\"><title>atomsync status</title><style>"
		      "%s</style></head><body><h1>atomsync status</h1>"
		      "<p class=\"meta\">%zu datasets &middot; store %s "
		      "&middot; as of %s</p>",
		      STYLE, cfg->ndatasets,
		      strncmp(cfg->store, "sqlite", 6) == 0 ? "SQLite"
							    : "PostgreSQL",
		      as_iso8601(as_now(), ts, sizeof(ts)));
	for (size_t i = 0; i < cfg->ndatasets && !rc; i++)
		rc = dataset_section(sv, st, &cfg->datasets[i], b, err);
	as_buf_adds(b, "</body></html>\n");
	if (!rc)
		as_log_redact(b->data, b->len + 1);
	return rc;
}
