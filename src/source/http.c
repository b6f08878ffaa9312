/*
 * HTTP JSON API source: pages of records in one of six pagination styles,
 * fetched through http_client.c and handed to the engine strictly in page
 * order, each page followed by a checkpoint ("every page before the next
 * one is staged").  Offset and page styles with a total fetch up to
 * `concurrency` pages at once, holding at most 2 x concurrency pages.
 * The end of data is confirmed only when pagination ended normally and the
 * records received match every total the API reported (invariant 3).
 * `total_path: header:NAME` takes the total from a response header.
 * This file holds the events, open and close; http_int.h lists the rest.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "source/http_int.h"
#include "util/str.h"

#define PUMP_WAIT_MS 200

void as_http_page_clear(http_src *s, http_page *pg)
{
	as_http_cancel(&s->cl, &pg->req);
	as_http_req_free(&pg->req);
	json_decref(pg->doc);
	json_decref(pg->keyed);
	free(pg->ref);
	free(pg->shown);
	free(pg->next_ref);
	memset(pg, 0, sizeof(*pg));
}

int as_http_page_error(http_src *s, const http_page *pg, as_error *err,
		       const char *fmt, ...)
{
	char why[768];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	as_error_set(err, AS_ESOURCE, "%s: page %lld: %s",
		     pg->shown ? pg->shown : "(url)", (long long)pg->req.page,
		     why);
	as_config_redact(s->cfg, err->msg, sizeof(err->msg));
	as_http_auth_redact(&s->cl, err->msg, sizeof(err->msg));
	return AS_ESOURCE;
}

const char *as_http_json_kind(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT: return "an object";
	case JSON_ARRAY: return "an array";
	case JSON_STRING: return "a string";
	case JSON_INTEGER:
	case JSON_REAL: return "a number";
	case JSON_TRUE:
	case JSON_FALSE: return "a boolean";
	default: return "null";
	}
}

/* ---- events ------------------------------------------------------------- */

static void fmt_where(char *buf, size_t cap, const char *url, int64_t k,
		      size_t item)
{
	char tail[64];
	size_t room, n = strlen(url);

	snprintf(tail, sizeof(tail), " page %lld item %zu", (long long)k, item);
	room = cap - strlen(tail) - 1;
	if (n <= room)
		snprintf(buf, cap, "%s%s", url, tail);
	else
		snprintf(buf, cap, "%.*s...%s", (int)(room - 3), url, tail);
}

static int emit_item(http_src *s, http_page *pg, as_event *ev)
{
	json_t *it = json_array_get(pg->items, pg->next++);

	fmt_where(ev->where, sizeof(ev->where), pg->shown, pg->req.page,
		  pg->next);
	s->seen++;
	if (json_is_object(it)) {
		ev->kind = AS_EV_RECORD;
		ev->json = json_incref(it);
		s->base.records++;
	} else {
		ev->kind = AS_EV_BAD;
		as_error_set(&ev->why, AS_EINPUT,
			     "%s: the record is %s, not a JSON object",
			     ev->where, as_http_json_kind(it));
	}
	return 1;
}

/* The end of the listing: the records received against every total. */
static int final_checks(http_src *s, http_page *pg, as_error *err)
{
	char more[256] = "";
	size_t n = 0;

	if (s->tmin < 0 || (!as_http_off_total(s, s->seen, s->tmin) &&
			    !as_http_off_total(s, s->seen, s->tmax)))
		return 0;
	if (s->tmin != s->tmax)
		n += (size_t)snprintf(
			more + n, sizeof(more) - n,
			" (it changed between %lld and %lld during the run)",
			(long long)s->tmin, (long long)s->tmax);
	if (s->short_page)
		snprintf(more + n, sizeof(more) - n,
			 "; page %lld had %lld records, not %lld",
			 (long long)s->short_page, (long long)s->short_n,
			 (long long)s->size);
	return as_http_page_error(
		s, pg, err,
		"%lld records received, but the API "
		"reported a total of %lld%s (total_tolerance %g)",
		(long long)s->seen, (long long)s->tmax, more,
		s->h->total_tolerance);
}

static int start_listing(http_src *s, int64_t first, const char *ref,
			 as_error *err);

/* The next partition's listing, from its first page. */
static int next_partition(http_src *s, as_error *err)
{
	for (size_t i = 0; i < s->nslots; i++)
		as_http_page_clear(s, &s->slots[i]);
	s->part++;
	s->parallel = s->speculative = 0;
	s->last_page = s->size = 0;
	s->have_next = 0;
	free(s->next_ref);
	s->next_ref = NULL;
	s->seen = s->deficit = s->short_page = s->short_n = 0;
	s->tmin = s->tmax = -1;
	s->emit = 1;
	s->issued = 0;
	return as_http_partition_url(s, err);
}

/* A page's records are out: its checkpoint, or the confirmed end. */
static int end_page(http_src *s, http_page *pg, as_event *ev, as_error *err)
{
	int64_t k = pg->req.page;
	int last = s->parallel ? k >= s->last_page : pg->last;
	int rc;

	if (s->parallel && !last && (int64_t)pg->nitems < s->size) {
		s->deficit += s->size - (int64_t)pg->nitems;
		if (!s->short_page) {
			s->short_page = k;
			s->short_n = (int64_t)pg->nitems;
		}
	}
	if (last && (rc = final_checks(s, pg, err)))
		return rc;
	ev->kind = AS_EV_CHECKPOINT;
	if (last && s->part + 1 < s->h->npartitions) {
		/* This partition is complete: resume at the next one. */
		as_http_page_clear(s, pg);
		if ((rc = next_partition(s, err)))
			return rc;
		ev->checkpoint = as_http_checkpoint(s, 1, NULL, 0);
		if (!ev->checkpoint)
			return as_error_set(err, AS_ENOMEM, "out of memory");
		if (start_listing(s, 1, NULL, err)) {
			s->failed = 1;
			s->fail = *err;
		}
		return 1;
	}
	ev->checkpoint =
		as_http_checkpoint(s, k + 1, last ? NULL : pg->next_ref, last);
	if (!ev->checkpoint)
		return as_error_set(err, AS_ENOMEM, "out of memory");
	as_http_page_clear(s, pg);
	s->emit = k + 1;
	s->ended = last;
	/* Keep the window full while the engine stages this page. */
	if (!last && (as_http_fill(s, err) || as_http_pump(s, 0, err) < 0)) {
		s->failed = 1;
		s->fail = *err;
	}
	return 1;
}

static int http_next(as_source *src, as_event *ev, as_error *err)
{
	http_src *s = (http_src *)src;
	int rc;

	memset(ev, 0, sizeof(*ev));
	for (;;) {
		http_page *pg = as_http_slot(s, s->emit);

		if (s->failed) {
			*err = s->fail;
			return err->code;
		}
		if (s->ended) {
			s->base.complete = 1;
			return 0;
		}
		if (pg->req.url && pg->req.page == s->emit && pg->parsed) {
			if (pg->next < pg->nitems)
				return emit_item(s, pg, ev);
			return end_page(s, pg, ev, err);
		}
		if ((rc = as_http_pump(s, PUMP_WAIT_MS, err)) < 0)
			return rc;
	}
}

/* The first request, and with offset/page and a total, the window: on a
 * resumed run the checkpoint's total says which pages exist; a new run
 * with a fixed page size asks for `concurrency` pages before the total
 * comes back, saving a round trip. */
static int start_listing(http_src *s, int64_t first, const char *ref,
			 as_error *err)
{
	const as_http_cfg *h = s->h;
	int paged_style =
		h->style == AS_PAGE_OFFSET || h->style == AS_PAGE_PAGE;
	int rc = as_http_submit_page(s, first, ref, err);

	if (rc || !paged_style || !h->total_path)
		return rc;
	if (first > 1 && s->tmax >= 0 && s->size > 0) {
		int64_t pages = (s->tmax + s->size - 1) / s->size;

		s->parallel = 1;
		s->last_page = pages > first ? pages : first;
		return as_http_fill(s, err);
	}
	if (first == 1 && h->limit > 0 && h->concurrency > 1 && !s->filtered) {
		s->size = h->limit;
		s->speculative = 1;
		while (!rc && s->issued < h->concurrency)
			rc = as_http_submit_page(s, s->issued + 1, NULL, err);
	}
	return rc;
}

static void http_close(as_source *src)
{
	http_src *s = (http_src *)src;

	for (size_t i = 0; s->slots && i < s->nslots; i++)
		as_http_page_clear(s, &s->slots[i]);
	as_http_client_free(&s->cl);
	free(s->slots);
	free(s->base_url);
	free(s->common_url);
	free(s->next_ref);
	json_decref(s->body);
	free(s->cursor);
	free(s);
}

static const as_source_ops http_ops = {
	.name = "http",
	.next = http_next,
	.close = http_close,
};

int as_http_source_open(as_source **out, const as_source_cfg *cfg,
			const as_source_opts *o, as_error *err)
{
	const as_http_cfg *h = &cfg->http;
	http_src *s = calloc(1, sizeof(*s));
	int64_t first = 1;
	char *ref = NULL;
	int rc;

	*out = NULL;
	if (!s)
		return as_error_set(err, AS_ENOMEM, "out of memory");
	s->base.ops = &http_ops;
	s->cfg = o->cfg;
	s->h = h;
	s->tmin = s->tmax = -1;
	s->nslots = 2 * (size_t)(h->concurrency > 0 ? h->concurrency : 1);
	s->slots = calloc(s->nslots, sizeof(*s->slots));
	if ((rc = as_http_format_cursor(h, o->cursor, &s->cursor, err)))
		goto fail;
	s->common_url = as_http_build_base(h, s->cursor);
	if (h->body && !(s->body = json_loads(h->body, 0, NULL))) {
		rc = as_error_set(err, AS_ENOMEM, "out of memory");
		goto fail;
	}
	if (o->cursor) {
		s->filtered = strstr(h->url, "{cursor}") != NULL ||
			      (h->body && strstr(h->body, "{cursor}"));
		for (size_t i = 0; i < h->nparams; i++)
			s->filtered |=
				strstr(h->params[i].value, "{cursor}") != NULL;
	}
	if (!s->slots || !s->common_url) {
		rc = as_error_set(err, AS_ENOMEM, "out of memory");
		goto fail;
	}
	if ((rc = as_http_client_init(&s->cl, o->cfg, h, err)))
		goto fail;
	s->fp = as_http_fingerprint(o->cfg, h);
	if (o->checkpoint &&
	    (rc = as_http_resume(s, o->checkpoint, &first, &ref, err)))
		goto fail;
	if ((rc = as_http_partition_url(s, err)))
		goto fail;
	s->emit = first;
	s->issued = first - 1;
	if (!s->ended && (rc = start_listing(s, first, ref, err)))
		goto fail;
	free(ref);
	*out = &s->base;
	return 0;
fail:
	free(ref);
	http_close(&s->base);
	as_config_redact(o->cfg, err->msg, sizeof(err->msg));
	return rc;
}
