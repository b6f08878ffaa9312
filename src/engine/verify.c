/*
 * `atomsync verify`: the source's total against the live rows, and random
 * live rows fetched again through item_url, compared on every mapped column
 * by the engine's mapping; on record as a run of kind "verify".
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/history.h"
#include "source/http.h"
#include "source/http_total.h"
#include "util/log.h"
#include "util/proc.h"
#include "util/str.h"
#include "util/time.h"

#define SHOW_MAX 60 /* characters of a value shown in a mismatch */

void as_verify_clear(as_verify_result *r)
{
	if (!r)
		return;
	json_decref(r->mismatches);
	memset(r, 0, sizeof(*r));
}

/* ---- the count check ---- */

/* Records in a file source: non-blank lines (JSON lines), or RECORD
 * messages of the dataset's stream (Singer). */
static int count_file(const as_source_cfg *src, int64_t *n, as_error *err)
{
	FILE *f = fopen(src->path, "r");
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;

	*n = 0;
	if (!f)
		return as_error_errno(err, AS_ESOURCE, "%s", src->path);
	while ((len = getline(&line, &cap, f)) >= 0) {
		json_t *m;
		const char *type, *stream;

		if (strspn(line, " \t\r\n") == (size_t)len)
			continue;
		if (src->format != AS_FORMAT_SINGER) {
			(*n)++;
			continue;
		}
		m = json_loadb(line, (size_t)len, 0, NULL);
		type = json_string_value(json_object_get(m, "type"));
		stream = json_string_value(json_object_get(m, "stream"));
		if (type && strcmp(type, "RECORD") == 0 &&
		    (!src->stream || as_streq(stream, src->stream)))
			(*n)++;
		json_decref(m);
	}
	free(line);
	if (ferror(f)) {
		as_error_errno(err, AS_ESOURCE, "%s", src->path);
		fclose(f);
		return AS_ESOURCE;
	}
	fclose(f);
	return 0;
}

/*
 * The source's total, where it has one: an HTTP API's total_path, a file's
 * records.  A scoped dataset holds many scopes (a run delivers some), and
 * an incremental file holds only changes: no count applies to them.
 */
static int count_check(const as_config *cfg, const as_dataset_cfg *ds,
		       as_verify_result *out, as_error *err)
{
	const as_source_cfg *src = &ds->source;
	double tolerance = 0;
	int rc;

	if (ds->mode == AS_MODE_SCOPED) {
		snprintf(
			out->count_note, sizeof(out->count_note),
			"not available: a "
			"scoped dataset's source delivers some scopes at a time");
		return 0;
	}
	if (src->kind == AS_SOURCE_HTTP) {
		rc = as_http_total(cfg, &src->http, &out->source_total, err);
		if (rc == AS_ENOTFOUND) {
			snprintf(out->count_note, sizeof(out->count_note),
				 "not available: %s", err->msg);
			as_error_clear(err);
			return 0;
		}
		if (rc)
			return rc;
		tolerance = src->http.total_tolerance;
	} else if (src->kind == AS_SOURCE_FILE &&
		   ds->mode != AS_MODE_INCREMENTAL) {
		if ((rc = count_file(src, &out->source_total, err)))
			return rc;
	} else {
		snprintf(out->count_note, sizeof(out->count_note),
			 "not available: %s",
			 src->kind == AS_SOURCE_FILE
				 ? "an incremental file holds only "
				   "changes"
				 : "the source reports no total");
		return 0;
	}
	out->count_checked = 1;
	out->count_ok = fabs((double)(out->live_rows - out->source_total)) <=
			tolerance * (double)out->source_total;
	snprintf(out->count_note, sizeof(out->count_note),
		 "%lld live rows, the source "
		 "has %lld%s",
		 (long long)out->live_rows, (long long)out->source_total,
		 out->count_ok ? "" : " (differ)");
	return 0;
}

/* ---- the sample check ---- */

static int is_json(const as_col *c)
{
	return c->type == AS_TYPE_JSON || (c->flags & AS_COL_WHOLE);
}

/* Two values of column c equal as the engine maps them; JSON by value
 * (a store may keep it in another spelling), numbers by value. */
static int same(const as_col *c, const as_val *a, const as_val *b)
{
	if (a->kind == AS_V_NULL || b->kind == AS_V_NULL)
		return a->kind == b->kind;
	if (a->kind == AS_V_TEXT || b->kind == AS_V_TEXT) {
		json_t *x, *y;
		int eq;

		if (a->kind != b->kind)
			return 0;
		if (a->len == b->len && memcmp(a->u.s, b->u.s, a->len) == 0)
			return 1;
		if (!is_json(c))
			return 0;
		x = json_loadb(a->u.s, a->len, JSON_DECODE_ANY, NULL);
		y = json_loadb(b->u.s, b->len, JSON_DECODE_ANY, NULL);
		eq = x && y && json_equal(x, y);
		json_decref(x);
		json_decref(y);
		return eq;
	}
	if (a->kind == AS_V_INT && b->kind == AS_V_INT)
		return a->u.i == b->u.i;
	return (a->kind == AS_V_INT ? (double)a->u.i : a->u.r) ==
	       (b->kind == AS_V_INT ? (double)b->u.i : b->u.r);
}

/* A value for messages and JSON output; text cut to SHOW_MAX bytes at a
 * character boundary (text that is not UTF-8 is shown as its length). */
static json_t *shown(const as_val *v)
{
	size_t n = v->len;
	json_t *s;

	switch (v->kind) {
	case AS_V_INT: return json_integer(v->u.i);
	case AS_V_REAL: return json_real(v->u.r);
	case AS_V_TEXT:
		if (n > SHOW_MAX)
			for (n = SHOW_MAX;
			     n > 0 && ((unsigned char)v->u.s[n] & 0xC0) == 0x80;
			     n--)
				;
		s = json_stringn(v->u.s, n);
		return s ? s : json_sprintf("(%u bytes, not UTF-8)", v->len);
	default: return json_null();
	}
}

static void key_text(const as_val *v, char *buf, size_t cap)
{
	switch (v->kind) {
	case AS_V_INT: snprintf(buf, cap, "%lld", (long long)v->u.i); break;
	case AS_V_REAL: snprintf(buf, cap, "%.17g", v->u.r); break;
	case AS_V_TEXT: snprintf(buf, cap, "%.*s", (int)v->len, v->u.s); break;
	default: snprintf(buf, cap, "%s", "");
	}
}

/* The columns of a live row that differ from the source's record mapped
 * by the engine (an empty array when none do). */
static json_t *differences(const as_table *t, const as_row *live,
			   const as_row *src)
{
	json_t *cols = json_array();

	for (size_t i = 0; cols && i < t->ncols; i++) {
		if (same(&t->cols[i], &live->v[i], &src->v[i]))
			continue;
		json_array_append_new(cols,
				      json_pack("{s:s, s:o, s:o}", "column",
						t->cols[i].name, "live",
						shown(&live->v[i]), "source",
						shown(&src->v[i])));
	}
	return cols;
}

/*
 * One sampled row against its record fetched again through item_url (its
 * {placeholders} name key columns, or any other mapped column): a record
 * gone upstream (404), one the mapping refuses, or one with any differing
 * column is a mismatch, added to out->mismatches.  Fails only when the
 * record could not be fetched at all.
 */
static int check_row(const as_config *cfg, const as_http_cfg *http, as_table *t,
		     const as_row *row, as_verify_result *out, as_error *err)
{
	const char **names = calloc(t->ncols, sizeof(char *));
	const char **values = calloc(t->ncols, sizeof(char *));
	char(*text)[256] = calloc(t->ncols, sizeof(*text));
	size_t n = 0;
	json_t *rec = NULL, *key = json_object(), *cols = NULL;
	const char *problem = NULL;
	int missing = 0;
	as_batch fetched;
	as_error why;
	char where[320] = "item";
	int rc;

	as_batch_init(&fetched);
	if (!names || !values || !text || !key) {
		rc = as_error_set(err, AS_ENOMEM, "out of memory");
		goto done;
	}
	for (size_t i = 0; i < t->nkey; i++) {
		key_text(&row->v[i], text[i], sizeof(text[i]));
		json_object_set_new(key, t->cols[i].name, shown(&row->v[i]));
		snprintf(where + strlen(where), sizeof(where) - strlen(where),
			 " %s=%s", t->cols[i].name, text[i]);
	}
	for (size_t i = 0; i < t->ncols; i++) {
		if ((t->cols[i].flags & AS_COL_WHOLE) ||
		    row->v[i].kind == AS_V_NULL)
			continue;
		key_text(&row->v[i], text[i], sizeof(text[i]));
		names[n] = t->cols[i].name;
		values[n++] = text[i];
	}
	as_error_clear(&why);
	rc = as_http_fetch_item(cfg, http, names, values, n, &rec, &why);
	if (rc == AS_ENOTFOUND) {
		problem = "missing upstream (HTTP 404)";
		missing = 1;
		rc = 0;
	} else if (rc == AS_EINPUT) {
		problem = why.msg;
		rc = 0;
	} else if (rc) {
		*err = why;
		goto done;
	} else if (as_record_map(t, rec, NULL, 0, where, &fetched,
				 AS_MAP_SKIP_UNKNOWN, &why)) {
		problem = why.msg;
	} else {
		cols = differences(t, row, &fetched.rows[0]);
		if (!cols) {
			rc = as_error_set(err, AS_ENOMEM, "out of memory");
			goto done;
		}
	}
	out->sampled++;
	if (!problem && json_array_size(cols) == 0) {
		out->matched++;
		goto done;
	}
	if (missing)
		out->missing++;
	else
		out->differing++;
	json_array_append_new(out->mismatches,
			      json_pack("{s:O, s:b, s:s?, s:O?}", "key", key,
					"missing", missing, "error", problem,
					"columns", cols));
done:
	as_batch_free(&fetched);
	json_decref(rec);
	json_decref(key);
	json_decref(cols);
	free(names);
	free(values);
	free(text);
	return rc;
}

static int sample_check(as_store *st, const as_config *cfg,
			const as_dataset_cfg *ds, as_table *t, size_t n,
			as_verify_result *out, as_error *err)
{
	as_batch b;
	int rc = 0;

	if (ds->source.kind != AS_SOURCE_HTTP || !ds->source.http.item_url) {
		snprintf(
			out->sample_note, sizeof(out->sample_note),
			"not available: %s",
			ds->source.kind == AS_SOURCE_HTTP
				? "the http source has no "
				  "item_url"
				: "records are fetched one by one only from an "
				  "http source with item_url");
		return 0;
	}
	if (!st->ops->sample)
		return as_error_set(err, AS_EUSAGE,
				    "the %s store cannot sample rows",
				    st->ops->name);
	out->sample_checked = 1;
	if (n == 0 || out->live_rows <= 0)
		goto done;
	as_batch_init(&b);
	rc = st->ops->sample(st, t, n, &b, err);
	for (size_t i = 0; !rc && i < b.nrows; i++) {
		if (as_interrupted) {
			rc = as_error_set(err, AS_EINTR,
					  "dataset %s: verify interrupted "
					  "by a signal",
					  ds->name);
			break;
		}
		rc = check_row(cfg, &ds->source.http, t, &b.rows[i], out, err);
	}
	as_batch_free(&b);
done:
	out->accuracy = out->sampled
				? (double)out->matched / (double)out->sampled
				: 1.0;
	snprintf(out->sample_note, sizeof(out->sample_note),
		 "%zu of %zu sampled rows "
		 "match the source (%.1f%%)",
		 out->matched, out->sampled, 100.0 * out->accuracy);
	return rc;
}

/* ---- verify ---- */

static void summarize(as_verify_result *r)
{
	size_t n;

	n = (size_t)snprintf(r->summary, sizeof(r->summary),
			     "verify %s: ", r->passed ? "passed" : "failed");
	if (r->sample_checked && n < sizeof(r->summary))
		n += (size_t)snprintf(
			r->summary + n, sizeof(r->summary) - n,
			"sample %zu/%zu match (%.1f%%, threshold %.1f%%)"
			"%s%zu differ, %zu missing upstream",
			r->matched, r->sampled, 100.0 * r->accuracy,
			100.0 * r->threshold, r->sampled ? ": " : "; ",
			r->differing, r->missing);
	else if (n < sizeof(r->summary))
		n += (size_t)snprintf(r->summary + n, sizeof(r->summary) - n,
				      "sample %s", r->sample_note);
	if (n < sizeof(r->summary))
		snprintf(r->summary + n, sizeof(r->summary) - n, "; count %s",
			 r->count_note);
}

int as_verify_dataset(as_store *st, const as_config *cfg, const char *dataset,
		      size_t sample, as_verify_result *out, as_error *err)
{
	const as_dataset_cfg *ds = as_config_dataset(cfg, dataset);
	double started = as_now();
	as_run_ctx rc;
	as_counts c;
	as_table t;
	int ret;

	memset(out, 0, sizeof(*out));
	memset(&rc, 0, sizeof(rc));
	memset(&t, 0, sizeof(t));
	out->mismatches = json_array();
	out->accuracy = 1.0; /* nothing sampled (yet) */
	if (!ds)
		return as_error_set(err, AS_EUSAGE, "%s: no dataset named '%s'",
				    cfg->path ? cfg->path : "config", dataset);
	out->threshold = ds->verify_threshold;
	if ((ret = as_table_build(&t, ds, NULL, 0, err)))
		goto done;
	if (!t.nkey) {
		ret = as_error_set(err, AS_EUSAGE,
				   "dataset %s: verify needs the "
				   "dataset's key in the config (`key`)",
				   ds->name);
		goto done;
	}
	rc.table = &t;
	if ((ret = st->ops->table_rows(st, t.table, &out->live_rows, err)))
		goto done;
	if (out->live_rows < 0) {
		ret = as_error_set(
			err, AS_EUSAGE,
			"dataset %s: table %s does not exist "
			"yet: nothing to verify (run the dataset first)",
			ds->name, t.table);
		goto done;
	}
	/* The live table's types, for the mapping and the comparison. */
	if ((ret = st->ops->describe(st, &rc, err)))
		goto done;
	for (size_t i = 0; i < t.ncols; i++)
		if (t.cols[i].type == AS_TYPE_AUTO)
			t.cols[i].type = AS_TYPE_TEXT;
	if ((ret = count_check(cfg, ds, out, err)) ||
	    (ret = sample_check(st, cfg, ds, &t, sample, out, err)))
		goto done;
	out->passed =
		(!out->count_checked || out->count_ok) &&
		(!out->sample_checked ||
		 out->matched >= out->threshold * (double)out->sampled - 1e-9);
	summarize(out);
	memset(&c, 0, sizeof(c));
	c.seen = (int64_t)out->sampled;
	c.unchanged = (int64_t)out->matched;
	c.updated = (int64_t)out->differing;
	c.deleted = (int64_t)out->missing;
	if (st->ops->record_run &&
	    (ret = st->ops->record_run(
		     st, &t, "verify", out->passed ? "completed" : "failed", &c,
		     out->summary, started, &out->run_id, err)))
		goto done;
done:
	as_table_clear(&t);
	return ret;
}
