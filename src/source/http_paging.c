/*
 * The HTTP source's pages as they arrive: the body parsed, its records
 * found, the total taken, and what the page says about the next one in
 * each pagination style; a listing ends only when the API says so.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "source/http_int.h"
#include "util/log.h"
#include "util/str.h"

/* ---- a page arrives ----------------------------------------------------- */

/* The next page's URL from a link in this page: absolute, on the same
 * origin as the configured url (the dataset's headers go nowhere else),
 * with the secret params the link may lack. */
static int next_link(http_src *s, http_page *pg, const char *link, char **out,
		     as_error *err)
{
	char *abs = as_http_resolve(pg->req.url, link);

	*out = NULL;
	if (!abs)
		return as_http_page_error(
			s, pg, err, "the next page's URL is not a valid URL");
	if (!as_http_same_origin(abs, s->base_url)) {
		char *shown = as_http_redact_url(s->cfg, s->h, abs);
		int rc = as_http_page_error(
			s, pg, err,
			"the next page's URL %s is on "
			"another host; the dataset's headers are not sent there",
			shown ? shown : "");

		free(shown);
		free(abs);
		return rc;
	}
	*out = as_http_add_secrets(s->h, abs);
	free(abs);
	return *out ? 0 : as_error_set(err, AS_ENOMEM, "out of memory");
}

static int end_flags(http_src *s, http_page *pg, int *said, int *ended,
		     as_error *err);

/* Offset and page styles: the page size, and with a total the pages;
 * without a total, a short page ends unless an end flag is configured. */
static int paged(http_src *s, http_page *pg, as_error *err)
{
	const as_http_cfg *h = s->h;
	int64_t n = (int64_t)pg->nitems, k = pg->req.page, pages;

	if (!s->size)
		s->size = h->limit > 0 ? h->limit : n;
	/* A server that caps the page size below ours: follow it, and drop
	 * the pages asked for with the old size. */
	if (k == 1 && h->limit > 0 && s->size == h->limit && n > 0 &&
	    n < s->size && s->tmax > n) {
		as_info("%s: the API sends %lld records per page, not %lld; using that",
			pg->shown, (long long)n, (long long)s->size);
		s->size = n;
		for (size_t i = 0; i < s->nslots; i++)
			if (s->slots[i].req.url && s->slots[i].req.page != 1)
				as_http_page_clear(s, &s->slots[i]);
		s->issued = 1;
		s->parallel = 1;
		s->last_page = (s->tmax + n - 1) / n;
		return 0;
	}
	if (h->total_path) {
		pages = s->size > 0 ? (s->tmax + s->size - 1) / s->size : k;
		if (!s->parallel) {
			s->parallel = 1;
			s->last_page = pages > k ? pages : k;
		} else if (pages > s->last_page) {
			s->last_page = pages;
		}
		return 0;
	}
	pg->last = n == 0 || n < s->size;
	if (h->has_more_path || h->stop_path) {
		int said, ended, rc = end_flags(s, pg, &said, &ended, err);

		if (rc)
			return rc;
		if (!ended && n == 0)
			return as_http_page_error(
				s, pg, err,
				"'%s' says more records follow, but "
				"the page is empty",
				h->has_more_path ? h->has_more_path
						 : h->stop_path);
		pg->last = ended;
	}
	s->have_next = !pg->last;
	return 0;
}

/* A cursor value (a string or an integer) as text into *out. */
static int cursor_text(http_src *s, http_page *pg, json_t *v, const char *what,
		       const char *path, char **out, as_error *err)
{
	char num[32];

	if (json_is_integer(v)) {
		snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT,
			 json_integer_value(v));
		*out = as_strdup(num);
	} else if (json_is_string(v)) {
		*out = as_strdup(json_string_value(v));
	} else {
		return as_http_page_error(s, pg, err,
					  "%s '%s' is %s, not a string", what,
					  path, as_http_json_kind(v));
	}
	return *out ? 0 : as_error_set(err, AS_ENOMEM, "out of memory");
}

static int cursor_next(http_src *s, http_page *pg, as_error *err)
{
	const char *field = s->h->cursor_from_record;
	json_t *v;

	if (field) {
		/* Keyset: the last record's field; an empty page ends. */
		json_t *it = pg->nitems
				     ? json_array_get(pg->items, pg->nitems - 1)
				     : NULL;

		if (!it) {
			pg->last = 1;
			return 0;
		}
		v = json_is_object(it) ? as_http_json_path(it, field) : NULL;
		if (!v || json_is_null(v))
			return as_http_page_error(s, pg, err,
						  "the last record has no '%s' "
						  "(cursor_from_record)",
						  field);
		return cursor_text(s, pg, v, "the last record's", field,
				   &pg->next_ref, err);
	}
	v = as_http_json_path(pg->doc, s->h->cursor_path);
	if (!v || json_is_null(v) || json_is_false(v) ||
	    (json_is_string(v) && !json_string_length(v))) {
		pg->last = 1;
		pg->unmarked = !v;
		return 0;
	}
	return cursor_text(s, pg, v, "the cursor at", s->h->cursor_path,
			   &pg->next_ref, err);
}

/* has_more_path (false ends) and stop_path (true ends): *said when either
 * is configured, *ended when one of them says the listing ended. */
static int end_flags(http_src *s, http_page *pg, int *said, int *ended,
		     as_error *err)
{
	const char *paths[2] = {s->h->has_more_path, s->h->stop_path};

	*said = *ended = 0;
	for (int i = 0; i < 2; i++) {
		json_t *v;

		if (!paths[i])
			continue;
		v = as_http_json_path(pg->doc, paths[i]);
		if (!json_is_boolean(v))
			return as_http_page_error(
				s, pg, err,
				"%s at '%s' (%s), not true or false",
				v ? as_http_json_kind(v) : "nothing", paths[i],
				i ? "stop_path" : "has_more_path");
		*said = 1;
		if (json_is_true(v) == (i == 1))
			*ended = 1;
	}
	return 0;
}

/* Where a sequential style looked for the next page, for messages. */
static void next_where(const http_src *s, char *buf, size_t cap)
{
	const as_http_cfg *h = s->h;

	if (h->style == AS_PAGE_LINK_HEADER)
		snprintf(buf, cap, "no Link header");
	else if (h->style == AS_PAGE_NEXT_URL)
		snprintf(buf, cap, "no next URL at '%s'", h->next_url_path);
	else
		snprintf(buf, cap, "no next cursor at '%s'",
			 h->cursor_path ? h->cursor_path
					: h->cursor_from_record);
}

/* Sequential styles: the listing ends only when the API says so.  With
 * has_more_path or stop_path the flag decides (a cursor that repeats on
 * the last page is then the end); without them, a full first page whose
 * next cursor, next URL or Link header is missing altogether is refused,
 * since a wrong path would otherwise end the listing after one page.  A
 * later page was reached through that path, which proves it right: its
 * absence there is how HubSpot (no "paging") and JSON:API (no
 * links.next) end a listing whose last page is full. */
static int confirm_end(http_src *s, http_page *pg, as_error *err)
{
	const as_http_cfg *h = s->h;
	int said, ended, rc = end_flags(s, pg, &said, &ended, err);
	char where[300];

	if (rc)
		return rc;
	next_where(s, where, sizeof(where));
	if (said && ended) {
		pg->last = 1;
		free(pg->next_ref);
		pg->next_ref = NULL;
		return 0;
	}
	if (said && pg->last)
		return as_http_page_error(
			s, pg, err,
			"'%s' says more records follow, but the page "
			"has %s",
			h->has_more_path ? h->has_more_path : h->stop_path,
			where);
	if (!said && pg->last && pg->unmarked && !pg->ref && h->limit > 0 &&
	    (int64_t)pg->nitems >= h->limit && !h->total_path)
		return as_http_page_error(
			s, pg, err,
			"a full page of %zu records with %s and nothing "
			"saying the listing ended: it is not taken as complete "
			"(check the path, or set pagination.has_more_path or "
			"stop_path)",
			pg->nitems, where);
	if (pg->last)
		return 0;
	if (h->style == AS_PAGE_CURSOR && pg->ref &&
	    strcmp(pg->ref, pg->next_ref) == 0)
		return as_http_page_error(s, pg, err,
					  "the next cursor is this page's "
					  "own: the listing does not advance");
	if (h->style != AS_PAGE_CURSOR &&
	    strcmp(pg->req.url, pg->next_ref) == 0)
		return as_http_page_error(
			s, pg, err,
			"the next page's URL is this "
			"page's own: the listing does not advance");
	return 0;
}

static int total(http_src *s, http_page *pg, as_error *err)
{
	const char *path = s->h->total_path;
	int64_t t;

	if (strncmp(path, "header:", 7) == 0) {
		json_t *v = pg->req.total_hdr ? json_string(pg->req.total_hdr)
					      : NULL;

		t = as_http_json_count(v);
		json_decref(v);
		if (t < 0)
			return as_http_page_error(s, pg, err,
						  "no total in the %s header",
						  path + 7);
	} else {
		t = as_http_json_count(as_http_json_path(pg->doc, path));
		if (t < 0)
			return as_http_page_error(s, pg, err,
						  "no total at '%s'", path);
	}
	if (s->tmin < 0 || t < s->tmin)
		s->tmin = t;
	if (t > s->tmax)
		s->tmax = t;
	return 0;
}

/* records: a.*: the object's values, in the page's order, become the
 * record array (kept on the page's document); with record_key_as each
 * record that lacks that field gets its key there. */
static int keyed_records(http_src *s, http_page *pg, as_error *err)
{
	const char *field = s->h->record_key_as, *k;
	json_t *arr, *v;

	if (!json_is_object(pg->items))
		return as_http_page_error(
			s, pg, err, "%s%s%s is %s, not an object of records",
			s->h->records ? "'" : "the body",
			s->h->records ? s->h->records : "",
			s->h->records ? "'" : "", as_http_json_kind(pg->items));
	if (!(arr = json_array()))
		return as_error_set(err, AS_ENOMEM, "out of memory");
	json_object_foreach(pg->items, k, v)
	{
		if (field && json_is_object(v) && !json_object_get(v, field) &&
		    json_object_set_new(v, field, json_string(k)))
			break;
		if (json_array_append(arr, v))
			break;
	}
	pg->keyed = arr;
	if (json_array_size(arr) != json_object_size(pg->items))
		return as_error_set(err, AS_ENOMEM, "out of memory");
	pg->items = arr;
	return 0;
}

/* A GraphQL response with an `errors` array failed, whatever data it has:
 * the first message is the reason. */
static int api_errors(http_src *s, http_page *pg, as_error *err)
{
	json_t *e = json_object_get(pg->doc, "errors"), *first, *m;
	size_t n = json_array_size(e);

	if (!n)
		return 0;
	first = json_array_get(e, 0);
	m = json_object_get(first, "message");
	return as_http_page_error(
		s, pg, err, "the API returned %zu error%s: %s", n,
		n == 1 ? "" : "s",
		json_is_string(m) ? json_string_value(m) : "(no message)");
}

/* The page's body parsed and its records found: pg->items, an array of
 * pg->nitems records (a GraphQL `errors` array fails the page). */
static int page_records(http_src *s, http_page *pg, as_error *err)
{
	const as_http_cfg *h = s->h;
	as_http_req *r = &pg->req;
	json_error_t je;
	int rc;

	pg->doc = json_loadb(r->body.data ? r->body.data : "", r->body.len,
			     JSON_REJECT_DUPLICATES, &je);
	if (!pg->doc)
		return as_http_page_error(
			s, pg, err,
			"the body is not JSON (line %d column %d: %s)", je.line,
			je.column, je.text);
	as_buf_free(&r->body);
	if (h->method_post && (rc = api_errors(s, pg, err)))
		return rc;
	pg->items =
		h->records ? as_http_json_path(pg->doc, h->records) : pg->doc;
	if (!pg->items)
		return as_http_page_error(s, pg, err, "no record %s at '%s'",
					  h->records_from_values ? "object"
								 : "array",
					  h->records);
	if (h->records_from_values && (rc = keyed_records(s, pg, err)))
		return rc;
	if (!json_is_array(pg->items))
		return as_http_page_error(
			s, pg, err, "%s%s%s is %s, not an array of records",
			h->records ? "'" : "the body",
			h->records ? h->records : "", h->records ? "'" : "",
			as_http_json_kind(pg->items));
	pg->nitems = json_array_size(pg->items);
	return 0;
}

/* next_url style: the next page's URL at next_url_path. */
static int next_url_ref(http_src *s, http_page *pg, as_error *err)
{
	json_t *v = as_http_json_path(pg->doc, s->h->next_url_path);

	if (!v || json_is_null(v) ||
	    (json_is_string(v) && !json_string_length(v))) {
		pg->last = 1;
		pg->unmarked = !v;
		return 0;
	}
	if (!json_is_string(v))
		return as_http_page_error(
			s, pg, err, "the next URL at '%s' is %s, not a string",
			s->h->next_url_path, as_http_json_kind(v));
	return next_link(s, pg, json_string_value(v), &pg->next_ref, err);
}

/* link_header style: the Link header's rel="next". */
static int link_header_ref(http_src *s, http_page *pg, as_error *err)
{
	as_http_req *r = &pg->req;
	char *next = r->link ? as_http_link_next(r->link) : NULL;
	int rc = 0;

	if (!next) {
		pg->last = 1;
		pg->unmarked = !r->link;
	} else {
		rc = next_link(s, pg, next, &pg->next_ref, err);
	}
	free(next);
	return rc;
}

/* What the page says about the next one, by pagination style. */
static int next_page(http_src *s, http_page *pg, as_error *err)
{
	switch (s->h->style) {
	case AS_PAGE_OFFSET:
	case AS_PAGE_PAGE: return paged(s, pg, err);
	case AS_PAGE_CURSOR: return cursor_next(s, pg, err);
	case AS_PAGE_NEXT_URL: return next_url_ref(s, pg, err);
	case AS_PAGE_LINK_HEADER: return link_header_ref(s, pg, err);
	default: pg->last = 1; return 0;
	}
}

static int take_page(http_src *s, http_page *pg, as_error *err)
{
	const as_http_cfg *h = s->h;
	as_http_req *r = &pg->req;
	int sequential = h->style != AS_PAGE_OFFSET &&
			 h->style != AS_PAGE_PAGE && h->style != AS_PAGE_NONE;
	int rc;

	pg->parsed = 1;
	s->base.pages++;
	s->base.bytes += (int64_t)r->body.len;
	if (!(pg->shown = as_http_redact_url(s->cfg, h, r->url)))
		return as_error_set(err, AS_ENOMEM, "out of memory");
	if ((rc = page_records(s, pg, err)))
		return rc;
	if (h->total_path && (rc = total(s, pg, err)))
		return rc;
	if ((rc = next_page(s, pg, err)))
		return rc;
	if (sequential && (rc = confirm_end(s, pg, err)))
		return rc;
	if (h->style != AS_PAGE_OFFSET && h->style != AS_PAGE_PAGE &&
	    !pg->last) {
		s->have_next = 1;
		free(s->next_ref);
		if (!(s->next_ref = as_strdup(pg->next_ref)))
			return as_error_set(err, AS_ENOMEM, "out of memory");
	}
	return as_http_fill(s, err);
}

/* A 400 deep into an offset listing is most likely the API's ceiling on
 * offset + limit (CurseForge: 10,000): say so, and how to get past it. */
static void offset_hint(const http_src *s, const http_page *pg, as_error *err)
{
	int64_t size = s->size ? s->size : s->h->limit;
	size_t n = strlen(err->msg);

	if (pg->req.status != 400 || s->h->style != AS_PAGE_OFFSET ||
	    pg->req.page < 2 || size <= 0)
		return;
	snprintf(err->msg + n, sizeof(err->msg) - n,
		 " (at offset %lld: the API may not list past offset + limit "
		 "%lld; split the listing with partitions)",
		 ((long long)pg->req.page - 1) * size,
		 (long long)pg->req.page * size);
}

/* Drive the network up to wait_ms and take the pages that arrived.  Pages
 * asked for ahead of knowing the total are judged once it is known: past
 * the last page they are dropped, whatever became of them. */
int as_http_pump(http_src *s, int64_t wait_ms, as_error *err)
{
	int rc = as_http_step(&s->cl, wait_ms, err), known;

	if (rc <= 0)
		return rc;
	do {
		known = s->parallel;
		for (size_t i = 0; i < s->nslots; i++) {
			http_page *pg = &s->slots[i];
			int64_t k = pg->req.page;

			if (!pg->req.url || pg->parsed ||
			    (pg->req.state != AS_HTTP_DONE &&
			     pg->req.state != AS_HTTP_FAILED))
				continue;
			if (s->parallel && k > s->last_page) {
				as_http_page_clear(s, pg);
				continue;
			}
			if (!s->parallel && k != s->emit && s->speculative)
				continue;
			if (pg->req.state == AS_HTTP_FAILED) {
				*err = pg->req.err;
				err->code = AS_ESOURCE;
				offset_hint(s, pg, err);
				return AS_ESOURCE;
			}
			if ((rc = take_page(s, pg, err)))
				return rc;
		}
	} while (s->parallel != known);
	return 0;
}
