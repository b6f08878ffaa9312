/*
 * HTTP JSON API source: pages of records in one of six pagination styles,
 * fetched through http_client.c and handed to the engine strictly in page
 * order, each page followed by a checkpoint ("every page before the next
 * one is staged").  Offset and page styles with a total fetch up to
 * `concurrency` pages at once, holding at most 2 x concurrency pages.
 * The end of data is confirmed only when pagination ended normally and the
 * records received match every total the API reported (invariant 3).
 * `total_path: header:NAME` takes the total from a response header.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "source/http.h"
#include "source/source.h"
#include "util/hash.h"
#include "util/log.h"
#include "util/str.h"
#include "util/time.h"

#define PUMP_WAIT_MS 200
#define CP_VERSION 1

static const char *const style_names[] = {
	"none", "offset", "page", "cursor", "next_url", "link_header",
};

typedef struct http_page {
	as_http_req req; /* req.url NULL: the slot is free; req.page: number */
	char *ref;	 /* the cursor or URL this page was asked for */
	char *shown;	 /* req.url redacted, for where and messages */
	json_t *doc;	 /* parsed body */
	json_t *items;	 /* the record array, borrowed from doc or keyed */
	json_t *keyed;	 /* records: a.*: the array of the object's values */
	size_t nitems;
	size_t next;	/* items handed out */
	char *next_ref; /* cursor or URL of the following page */
	int last;	/* sequential styles: no page follows */
	int unmarked;	/* ... and nothing in the page said so: no value at
			   the cursor or next URL path, no Link header */
	int parsed;
} http_page;

typedef struct http_src {
	as_source base;
	const as_config *cfg; /* secrets, for redaction */
	const as_http_cfg *h;
	as_http_client cl;
	http_page *slots;   /* page k lives in slots[(k - 1) % nslots] */
	size_t nslots;	    /* 2 x concurrency: the memory bound */
	char *base_url;	    /* url and params, {cursor} applied, and the
			       partition's params */
	char *common_url;   /* the same without the partition's params */
	size_t part;	    /* the partition being listed */
	json_t *body;	    /* POST: the body template */
	char *cursor;	    /* the saved cursor, for {cursor} in the body */
	uint64_t fp;	    /* fingerprint of the listing's configuration */
	int64_t emit;	    /* the page being (or next to be) emitted */
	int64_t issued;	    /* the highest page submitted */
	int parallel;	    /* offset/page with a total: pages are known */
	int speculative;    /* pages were asked for before the total came */
	int filtered;	    /* {cursor} applied: likely a short listing */
	int64_t last_page;  /* parallel: the last page number */
	int64_t size;	    /* offset/page: records per page; 0 unknown */
	int have_next;	    /* sequential: page issued + 1 may be submitted */
	char *next_ref;	    /* ... with this cursor or URL (owned) */
	int64_t seen;	    /* items received, resumed runs included */
	int64_t tmin, tmax; /* totals the API reported; -1: none */
	int64_t deficit;    /* records missing from short pages (parallel) */
	int64_t short_page, short_n; /* the first short page, its records */
	int ended;		     /* the last page was emitted and checked */
	int failed;		     /* an error waits for the next call */
	as_error fail;
} http_src;

static http_page *slot(http_src *s, int64_t k)
{
	return &s->slots[(size_t)(k - 1) % s->nslots];
}

static void page_clear(http_src *s, http_page *pg)
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

/* "url: page N: why" as the run's error (redacted, code AS_ESOURCE). */
static int page_error(http_src *s, const http_page *pg, as_error *err,
		      const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int page_error(http_src *s, const http_page *pg, as_error *err,
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

static const char *json_kind(const json_t *v)
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

/* ---- URLs --------------------------------------------------------------- */

/* text with each {cursor} replaced by the cursor, percent-encoded. */
static void add_with_cursor(as_buf *b, const char *text, size_t n,
			    const char *cursor)
{
	const char *end = text + n, *p;

	while (text < end &&
	       (p = memmem(text, (size_t)(end - text), "{cursor}", 8))) {
		as_buf_add(b, text, (size_t)(p - text));
		if (cursor)
			as_http_encode(b, cursor);
		text = p + 8;
	}
	as_buf_add(b, text, (size_t)(end - text));
}

/* The url with {cursor} applied (a query pair holding it is left out when
 * there is no cursor), then every param. */
static char *build_base(const as_http_cfg *h, const char *cursor)
{
	const char *url = h->url, *q = strchr(url, '?');
	as_buf b = AS_BUF_INIT;
	int has_query = 0;

	add_with_cursor(&b, url, q ? (size_t)(q - url) : strlen(url), cursor);
	for (const char *p = q ? q + 1 : NULL; p && *p;) {
		size_t n = strcspn(p, "&");

		if (n && (cursor || !memmem(p, n, "{cursor}", 8))) {
			as_buf_addc(&b, has_query ? '&' : '?');
			has_query = 1;
			add_with_cursor(&b, p, n, cursor);
		}
		p += n + (p[n] == '&');
	}
	for (size_t i = 0; i < h->nparams; i++) {
		const as_kv *kv = &h->params[i];
		int templ = strstr(kv->value, "{cursor}") != NULL;
		char *v;

		if (templ && !cursor)
			continue;
		as_buf_addc(&b, has_query ? '&' : '?');
		has_query = 1;
		as_http_encode(&b, kv->key);
		as_buf_addc(&b, '=');
		if (!templ) {
			as_http_encode(&b, kv->value);
			continue;
		}
		{
			as_buf raw = AS_BUF_INIT;
			const char *p = kv->value, *m;

			while ((m = strstr(p, "{cursor}"))) {
				as_buf_add(&raw, p, (size_t)(m - p));
				as_buf_adds(&raw, cursor);
				p = m + 8;
			}
			as_buf_adds(&raw, p);
			v = as_buf_detach(&raw);
			if (v)
				as_http_encode(&b, v);
			free(v);
		}
	}
	return as_buf_detach(&b);
}

/* url with {page_cursor} (as written or percent-encoded) replaced by the
 * encoded cursor; without one, a query pair holding it is left out. */
static char *with_page_cursor(const char *url, const char *ref)
{
	static const char *const tok[] = {"{page_cursor}", "%7Bpage_cursor%7D"};
	const char *q = strchr(url, '?');
	size_t head = q ? (size_t)(q - url) : strlen(url);
	as_buf b = AS_BUF_INIT;
	int first = 1;

	for (int pass = 0; pass < 2; pass++) {
		const char *p = pass ? (q ? q + 1 : NULL) : url;
		const char *end =
			pass ? (q ? q + strlen(q) : NULL) : url + head;

		while (p && p < end) {
			size_t n = pass ? strcspn(p, "&") : (size_t)(end - p);
			int has = 0;

			for (int t = 0; t < 2; t++)
				has |= memmem(p, n, tok[t], strlen(tok[t])) !=
				       NULL;
			if (pass && (!n || (has && !ref))) {
				p += n + (p[n] == '&');
				continue;
			}
			if (pass)
				as_buf_addc(&b, first ? '?' : '&');
			first = first && !pass;
			for (size_t i = 0; i < n;) {
				size_t m = 0;

				for (int t = 0; t < 2 && !m; t++)
					if (n - i >= strlen(tok[t]) &&
					    !memcmp(p + i, tok[t],
						    strlen(tok[t])))
						m = strlen(tok[t]);
				if (m) {
					if (ref)
						as_http_encode(&b, ref);
					i += m;
				} else {
					as_buf_addc(&b, p[i++]);
				}
			}
			p += n + (pass && p[n] == '&');
		}
	}
	return as_buf_detach(&b);
}

static void add_param(as_buf *b, const char *name, const char *value)
{
	as_buf_addc(b, strchr(as_buf_cstr(b), '?') ? '&' : '?');
	as_http_encode(b, name);
	as_buf_addc(b, '=');
	as_http_encode(b, value);
}

/* The URL of page k; ref is the cursor or next URL it was announced by. */
static char *page_url(http_src *s, int64_t k, const char *ref)
{
	const as_http_cfg *h = s->h;
	as_buf b = AS_BUF_INIT;
	char num[32];

	if ((h->style == AS_PAGE_NEXT_URL || h->style == AS_PAGE_LINK_HEADER) &&
	    ref)
		return as_strdup(ref);
	as_buf_adds(&b, s->base_url);
	switch (h->style) {
	case AS_PAGE_OFFSET:
		snprintf(num, sizeof(num), "%lld",
			 ((long long)k - 1) * s->size);
		add_param(&b, h->offset_param, num);
		break;
	case AS_PAGE_PAGE:
		snprintf(num, sizeof(num), "%lld",
			 (long long)(h->first_page + k - 1));
		add_param(&b, h->page_param, num);
		break;
	case AS_PAGE_CURSOR:
		if (ref && h->cursor_param)
			add_param(&b, h->cursor_param, ref);
		break;
	default: break;
	}
	if (h->limit_param && h->limit > 0 && h->style != AS_PAGE_NONE) {
		snprintf(num, sizeof(num), "%lld", (long long)h->limit);
		add_param(&b, h->limit_param, num);
	}
	{
		char *url = as_buf_detach(&b), *out;

		if (!url || (!strstr(url, "{page_cursor}") &&
			     !strstr(url, "%7Bpage_cursor%7D")))
			return url;
		out = with_page_cursor(url,
				       h->style == AS_PAGE_CURSOR ? ref : NULL);
		free(url);
		return out;
	}
}

/* ---- POST bodies -------------------------------------------------------- */

/* A copy of the template with {page_cursor}, {cursor} and {limit}
 * applied: a value that is exactly {limit} becomes the number; a string
 * naming a cursor there is none of is left out, with its key. */
static json_t *render(json_t *t, const char *page, const char *cursor,
		      int64_t limit, int *drop)
{
	*drop = 0;
	if (json_is_object(t)) {
		json_t *o = json_object();
		const char *k;
		json_t *v;

		json_object_foreach(t, k, v)
		{
			int d;
			json_t *c = render(v, page, cursor, limit, &d);

			if (!d && (!c || json_object_set_new(o, k, c))) {
				json_decref(o);
				return NULL;
			}
		}
		return o;
	}
	if (json_is_array(t)) {
		json_t *a = json_array(), *v;
		size_t i;

		json_array_foreach(t, i, v)
		{
			int d;
			json_t *c = render(v, page, cursor, limit, &d);

			if (!d && (!c || json_array_append_new(a, c))) {
				json_decref(a);
				return NULL;
			}
		}
		return a;
	}
	if (json_is_string(t)) {
		const char *str = json_string_value(t);
		static const char *const names[] = {"{page_cursor}", "{cursor}",
						    "{limit}"};
		const char *vals[3] = {page, cursor, NULL};
		char num[32];
		as_buf b = AS_BUF_INIT;
		json_t *out;

		snprintf(num, sizeof(num), "%lld", (long long)limit);
		vals[2] = limit > 0 ? num : NULL;
		if (!strcmp(str, "{limit}") && limit > 0)
			return json_integer(limit);
		for (int i = 0; i < 3; i++)
			if (strstr(str, names[i]) && !vals[i]) {
				*drop = 1;
				return NULL;
			}
		while (*str) {
			int hit = 0;

			for (int i = 0; i < 3 && !hit; i++) {
				size_t n = strlen(names[i]);

				if (!strncmp(str, names[i], n)) {
					as_buf_adds(&b, vals[i]);
					str += n;
					hit = 1;
				}
			}
			if (!hit)
				as_buf_addc(&b, *str++);
		}
		out = json_string(as_buf_cstr(&b));
		as_buf_free(&b);
		return out;
	}
	return json_incref(t);
}

static int submit_page(http_src *s, int64_t k, const char *ref, as_error *err)
{
	http_page *pg = slot(s, k);

	page_clear(s, pg);
	pg->req.page = k;
	pg->req.url = page_url(s, k, ref);
	if (!pg->req.url || (ref && !(pg->ref = as_strdup(ref))))
		return as_error_set(err, AS_ENOMEM, "out of memory");
	if (s->h->method_post) {
		int drop;
		json_t *b =
			s->body ? render(s->body,
					 s->h->style == AS_PAGE_CURSOR ? ref
								       : NULL,
					 s->cursor, s->h->limit, &drop)
				: json_object();

		pg->req.payload = b ? json_dumps(b, JSON_COMPACT) : NULL;
		json_decref(b);
		if (!pg->req.payload)
			return as_error_set(err, AS_ENOMEM, "out of memory");
	}
	s->issued = k;
	return as_http_submit(&s->cl, &pg->req, err);
}

/* Submit what the window allows: known pages (parallel), or the page the
 * last one announced (sequential). */
static int fill(http_src *s, as_error *err)
{
	int rc = 0;

	if (s->parallel) {
		while (!rc && s->issued < s->last_page &&
		       s->issued + 1 - s->emit < (int64_t)s->nslots)
			rc = submit_page(s, s->issued + 1, NULL, err);
	} else if (s->have_next &&
		   s->issued + 1 - s->emit < (int64_t)s->nslots) {
		s->have_next = 0;
		rc = submit_page(s, s->issued + 1, s->next_ref, err);
		free(s->next_ref);
		s->next_ref = NULL;
	}
	return rc;
}

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
		return page_error(s, pg, err,
				  "the next page's URL is not a valid URL");
	if (!as_http_same_origin(abs, s->base_url)) {
		char *shown = as_http_redact_url(s->cfg, s->h, abs);
		int rc = page_error(
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
				page_clear(s, &s->slots[i]);
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
			return page_error(s, pg, err,
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
		return page_error(s, pg, err, "%s '%s' is %s, not a string",
				  what, path, json_kind(v));
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
			return page_error(s, pg, err,
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
			return page_error(s, pg, err,
					  "%s at '%s' (%s), not true or false",
					  v ? json_kind(v) : "nothing",
					  paths[i],
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
		return page_error(s, pg, err,
				  "'%s' says more records follow, but the page "
				  "has %s",
				  h->has_more_path ? h->has_more_path
						   : h->stop_path,
				  where);
	if (!said && pg->last && pg->unmarked && !pg->ref && h->limit > 0 &&
	    (int64_t)pg->nitems >= h->limit && !h->total_path)
		return page_error(
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
		return page_error(s, pg, err,
				  "the next cursor is this page's "
				  "own: the listing does not advance");
	if (h->style != AS_PAGE_CURSOR &&
	    strcmp(pg->req.url, pg->next_ref) == 0)
		return page_error(s, pg, err,
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
			return page_error(s, pg, err,
					  "no total in the %s header",
					  path + 7);
	} else {
		t = as_http_json_count(as_http_json_path(pg->doc, path));
		if (t < 0)
			return page_error(s, pg, err, "no total at '%s'", path);
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
		return page_error(
			s, pg, err, "%s%s%s is %s, not an object of records",
			s->h->records ? "'" : "the body",
			s->h->records ? s->h->records : "",
			s->h->records ? "'" : "", json_kind(pg->items));
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
	return page_error(s, pg, err, "the API returned %zu error%s: %s", n,
			  n == 1 ? "" : "s",
			  json_is_string(m) ? json_string_value(m)
					    : "(no message)");
}

static int take_page(http_src *s, http_page *pg, as_error *err)
{
	const as_http_cfg *h = s->h;
	as_http_req *r = &pg->req;
	json_error_t je;
	int rc = 0;

	pg->parsed = 1;
	s->base.pages++;
	s->base.bytes += (int64_t)r->body.len;
	if (!(pg->shown = as_http_redact_url(s->cfg, h, r->url)))
		return as_error_set(err, AS_ENOMEM, "out of memory");
	pg->doc = json_loadb(r->body.data ? r->body.data : "", r->body.len,
			     JSON_REJECT_DUPLICATES, &je);
	if (!pg->doc)
		return page_error(
			s, pg, err,
			"the body is not JSON (line %d column %d: %s)", je.line,
			je.column, je.text);
	as_buf_free(&r->body);
	if (h->method_post && (rc = api_errors(s, pg, err)))
		return rc;
	pg->items =
		h->records ? as_http_json_path(pg->doc, h->records) : pg->doc;
	if (!pg->items)
		return page_error(s, pg, err, "no record %s at '%s'",
				  h->records_from_values ? "object" : "array",
				  h->records);
	if (h->records_from_values && (rc = keyed_records(s, pg, err)))
		return rc;
	if (!json_is_array(pg->items))
		return page_error(s, pg, err,
				  "%s%s%s is %s, not an array of records",
				  h->records ? "'" : "the body",
				  h->records ? h->records : "",
				  h->records ? "'" : "", json_kind(pg->items));
	pg->nitems = json_array_size(pg->items);
	if (h->total_path && (rc = total(s, pg, err)))
		return rc;
	switch (h->style) {
	case AS_PAGE_OFFSET:
	case AS_PAGE_PAGE: rc = paged(s, pg, err); break;
	case AS_PAGE_CURSOR: rc = cursor_next(s, pg, err); break;
	case AS_PAGE_NEXT_URL: {
		json_t *v = as_http_json_path(pg->doc, h->next_url_path);

		if (!v || json_is_null(v) ||
		    (json_is_string(v) && !json_string_length(v))) {
			pg->last = 1;
			pg->unmarked = !v;
		} else if (!json_is_string(v))
			rc = page_error(
				s, pg, err,
				"the next URL at '%s' is %s, not a string",
				h->next_url_path, json_kind(v));
		else
			rc = next_link(s, pg, json_string_value(v),
				       &pg->next_ref, err);
		break;
	}
	case AS_PAGE_LINK_HEADER: {
		char *next = r->link ? as_http_link_next(r->link) : NULL;

		if (!next) {
			pg->last = 1;
			pg->unmarked = !r->link;
		} else {
			rc = next_link(s, pg, next, &pg->next_ref, err);
		}
		free(next);
		break;
	}
	default: pg->last = 1; break;
	}
	if (!rc && h->style != AS_PAGE_OFFSET && h->style != AS_PAGE_PAGE &&
	    h->style != AS_PAGE_NONE)
		rc = confirm_end(s, pg, err);
	if (rc)
		return rc;
	if (h->style != AS_PAGE_OFFSET && h->style != AS_PAGE_PAGE &&
	    !pg->last) {
		s->have_next = 1;
		free(s->next_ref);
		if (!(s->next_ref = as_strdup(pg->next_ref)))
			return as_error_set(err, AS_ENOMEM, "out of memory");
	}
	return fill(s, err);
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
static int pump(http_src *s, int64_t wait_ms, as_error *err)
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
				page_clear(s, pg);
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

/* ---- checkpoints -------------------------------------------------------- */

static uint64_t fingerprint(const as_config *cfg, const as_http_cfg *h)
{
	as_buf b = AS_BUF_INIT;
	uint64_t fp;
	char *url = as_strdup(h->url);

	if (url)
		as_config_redact(cfg, url, strlen(url) + 1);
	as_buf_printf(&b, "%s|%s|%s|%s|%s|%lld|%s|%lld|%s|%s|%s|%s",
		      style_names[h->style], url ? url : "",
		      h->records ? h->records : "",
		      h->offset_param ? h->offset_param : "",
		      h->limit_param ? h->limit_param : "", (long long)h->limit,
		      h->page_param ? h->page_param : "",
		      (long long)h->first_page,
		      h->cursor_param ? h->cursor_param : "",
		      h->cursor_path ? h->cursor_path : "",
		      h->next_url_path ? h->next_url_path : "",
		      h->total_path ? h->total_path : "");
	/* Keys added later only when set: older checkpoints still match. */
	if (h->has_more_path)
		as_buf_printf(&b, "|has_more=%s", h->has_more_path);
	if (h->stop_path)
		as_buf_printf(&b, "|stop=%s", h->stop_path);
	if (h->cursor_from_record)
		as_buf_printf(&b, "|from_record=%s", h->cursor_from_record);
	if (h->records_from_values)
		as_buf_printf(&b, "|values=%s",
			      h->record_key_as ? h->record_key_as : "");
	for (size_t i = 0; i < h->npartitions; i++) {
		as_buf_adds(&b, i ? ";" : "|partitions=");
		for (size_t j = 0; j < h->partitions[i].nparams; j++)
			as_buf_printf(&b, "%s%s=%s", j ? "," : "",
				      h->partitions[i].params[j].key,
				      h->partitions[i].params[j].value);
	}
	if (h->method_post) {
		char *body = as_strdup(h->body ? h->body : "");

		if (body)
			as_config_redact(cfg, body, strlen(body) + 1);
		as_buf_printf(&b, "|POST=%s", body ? body : "");
		free(body);
	}
	for (size_t i = 0; i < h->nparams; i++)
		as_buf_printf(&b, "|%s=%s", h->params[i].key,
			      as_http_is_secret(h, h->params[i].key)
				      ? "***"
				      : h->params[i].value);
	fp = as_hash64(b.data ? b.data : "", b.len);
	as_buf_free(&b);
	free(url);
	return fp;
}

/* The resume point before page k; ref is how page k is asked for. */
static char *checkpoint(http_src *s, int64_t k, const char *ref, int done)
{
	json_t *o = json_object();
	char fp[24], *text = NULL, *kept = NULL;

	if (!o)
		return NULL;
	snprintf(fp, sizeof(fp), "%016" PRIx64, s->fp);
	if (ref && (s->h->style == AS_PAGE_NEXT_URL ||
		    s->h->style == AS_PAGE_LINK_HEADER))
		ref = kept = as_http_strip_secrets(s->h, ref);
	if (!json_object_set_new(o, "v", json_integer(CP_VERSION)) &&
	    !json_object_set_new(o, "style",
				 json_string(style_names[s->h->style])) &&
	    !json_object_set_new(o, "fp", json_string(fp)) &&
	    !json_object_set_new(o, "page", json_integer(k)) &&
	    !json_object_set_new(o, "records", json_integer(s->seen)) &&
	    !json_object_set_new(o, "size", json_integer(s->size)) &&
	    !json_object_set_new(o, "tmin", json_integer(s->tmin)) &&
	    !json_object_set_new(o, "tmax", json_integer(s->tmax)) &&
	    !json_object_set_new(o, "deficit", json_integer(s->deficit)) &&
	    !json_object_set_new(o, "short", json_integer(s->short_page)) &&
	    !json_object_set_new(o, "done", json_boolean(done)) &&
	    (!s->h->npartitions ||
	     !json_object_set_new(o, "part",
				  json_integer((json_int_t)s->part))) &&
	    (!ref || !json_object_set_new(o, "ref", json_string(ref))))
		text = json_dumps(o, JSON_COMPACT);
	free(kept);
	json_decref(o);
	return text;
}

/* Beyond the tolerance? (n against the API's total t) */
static int off_total(const http_src *s, int64_t n, int64_t t)
{
	return fabs((double)(n - t)) > s->h->total_tolerance * (double)t;
}

static int resume(http_src *s, const char *text, int64_t *first, char **ref,
		  as_error *err)
{
	json_t *cp = json_loads(text, 0, NULL);
	const char *style = NULL, *fp = NULL, *r = NULL;
	json_int_t page = 0, records = 0, size = 0, tmin = -1, tmax = -1,
		   deficit = 0, shortp = 0, part = 0;
	int done = 0, version = 0, rc = 0;
	char want[24];

	snprintf(want, sizeof(want), "%016" PRIx64, s->fp);
	if (!cp ||
	    json_unpack(
		    cp,
		    "{s:i, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:b, s?s, "
		    "s?I}",
		    "v", &version, "style", &style, "fp", &fp, "page", &page,
		    "records", &records, "size", &size, "tmin", &tmin, "tmax",
		    &tmax, "deficit", &deficit, "short", &shortp, "done", &done,
		    "ref", &r, "part", &part) ||
	    version != CP_VERSION || page < 1 || part < 0 ||
	    (part > 0 && (size_t)part >= s->h->npartitions)) {
		rc = as_error_set(
			err, AS_ECHECKPOINT,
			"the checkpoint is not an HTTP page position");
	} else if (strcmp(style, style_names[s->h->style]) ||
		   strcmp(fp, want)) {
		rc = as_error_set(
			err, AS_ECHECKPOINT,
			"the http source's configuration changed since the checkpoint");
	} else if (!done && !r && page > 1 &&
		   (s->h->style == AS_PAGE_CURSOR ||
		    s->h->style == AS_PAGE_NEXT_URL ||
		    s->h->style == AS_PAGE_LINK_HEADER)) {
		rc = as_error_set(err, AS_ECHECKPOINT,
				  "the checkpoint has no cursor for page %lld",
				  (long long)page);
	} else if (tmin >= 0 &&
		   (off_total(s, tmin, tmax) ||
		    deficit > s->h->total_tolerance * (double)tmax)) {
		rc = as_error_set(
			err, AS_ECHECKPOINT,
			"the listing changed or "
			"had short pages before the checkpoint (page %lld)",
			(long long)page);
	}
	if (!rc) {
		*first = page;
		s->part = (size_t)part;
		s->seen = records;
		s->size = size;
		s->tmin = tmin;
		s->tmax = tmax;
		s->deficit = deficit;
		s->short_page = shortp;
		s->ended = done;
		if (r &&
		    !(*ref = s->h->style == AS_PAGE_NEXT_URL ||
					     s->h->style == AS_PAGE_LINK_HEADER
				     ? as_http_add_secrets(s->h, r)
				     : as_strdup(r)))
			rc = as_error_set(err, AS_ENOMEM, "out of memory");
	}
	json_decref(cp);
	return rc;
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
			     ev->where, json_kind(it));
	}
	return 1;
}

/* The end of the listing: the records received against every total. */
static int final_checks(http_src *s, http_page *pg, as_error *err)
{
	char more[256] = "";
	size_t n = 0;

	if (s->tmin < 0 || (!off_total(s, s->seen, s->tmin) &&
			    !off_total(s, s->seen, s->tmax)))
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
	return page_error(s, pg, err,
			  "%lld records received, but the API "
			  "reported a total of %lld%s (total_tolerance %g)",
			  (long long)s->seen, (long long)s->tmax, more,
			  s->h->total_tolerance);
}

/* base_url: the common URL with partition s->part's params. */
static int partition_url(http_src *s, as_error *err)
{
	as_buf b = AS_BUF_INIT;

	as_buf_adds(&b, s->common_url);
	if (s->h->npartitions) {
		const as_http_partition *p = &s->h->partitions[s->part];

		for (size_t i = 0; i < p->nparams; i++)
			add_param(&b, p->params[i].key, p->params[i].value);
	}
	free(s->base_url);
	if (!(s->base_url = as_buf_detach(&b)))
		return as_error_set(err, AS_ENOMEM, "out of memory");
	return 0;
}

static int start_listing(http_src *s, int64_t first, const char *ref,
			 as_error *err);

/* The next partition's listing, from its first page. */
static int next_partition(http_src *s, as_error *err)
{
	for (size_t i = 0; i < s->nslots; i++)
		page_clear(s, &s->slots[i]);
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
	return partition_url(s, err);
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
		page_clear(s, pg);
		if ((rc = next_partition(s, err)))
			return rc;
		ev->checkpoint = checkpoint(s, 1, NULL, 0);
		if (!ev->checkpoint)
			return as_error_set(err, AS_ENOMEM, "out of memory");
		if (start_listing(s, 1, NULL, err)) {
			s->failed = 1;
			s->fail = *err;
		}
		return 1;
	}
	ev->checkpoint = checkpoint(s, k + 1, last ? NULL : pg->next_ref, last);
	if (!ev->checkpoint)
		return as_error_set(err, AS_ENOMEM, "out of memory");
	page_clear(s, pg);
	s->emit = k + 1;
	s->ended = last;
	/* Keep the window full while the engine stages this page. */
	if (!last && (fill(s, err) || pump(s, 0, err) < 0)) {
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
		http_page *pg = slot(s, s->emit);

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
		if ((rc = pump(s, PUMP_WAIT_MS, err)) < 0)
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
	int rc = submit_page(s, first, ref, err);

	if (rc || !paged_style || !h->total_path)
		return rc;
	if (first > 1 && s->tmax >= 0 && s->size > 0) {
		int64_t pages = (s->tmax + s->size - 1) / s->size;

		s->parallel = 1;
		s->last_page = pages > first ? pages : first;
		return fill(s, err);
	}
	if (first == 1 && h->limit > 0 && h->concurrency > 1 && !s->filtered) {
		s->size = h->limit;
		s->speculative = 1;
		while (!rc && s->issued < h->concurrency)
			rc = submit_page(s, s->issued + 1, NULL, err);
	}
	return rc;
}

static void http_close(as_source *src)
{
	http_src *s = (http_src *)src;

	for (size_t i = 0; s->slots && i < s->nslots; i++)
		page_clear(s, &s->slots[i]);
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

/* The saved cursor as cursor_format writes it: a timestamp in whole
 * seconds or milliseconds (rounded down: the listing may repeat records,
 * never skip them), or ISO 8601 to the second; a cursor of digits is
 * already a number. */
static int format_cursor(const as_http_cfg *h, const char *cur, char **out,
			 as_error *err)
{
	int64_t us;
	char buf[64];

	*out = NULL;
	if (!cur)
		return 0;
	if (!h->cursor_format || (h->cursor_format >= 2 && *cur &&
				  strspn(cur, "0123456789") == strlen(cur))) {
		*out = as_strdup(cur);
		return *out ? 0 : as_error_set(err, AS_ENOMEM, "out of memory");
	}
	if (as_parse_iso8601_us(cur, &us))
		return as_error_set(
			err, AS_ESOURCE,
			"the saved cursor '%.60s' is not a timestamp, "
			"which cursor_format %s needs",
			cur,
			h->cursor_format == 1	? "iso8601_seconds"
			: h->cursor_format == 2 ? "epoch"
						: "epoch_ms");
	us -= ((us % 1000) + 1000) % 1000;
	if (h->cursor_format == 1) {
		time_t t =
			(time_t)((us - (((us % 1000000) + 1000000) % 1000000)) /
				 1000000);
		struct tm tm;

		gmtime_r(&t, &tm);
		strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
	} else if (h->cursor_format == 2) {
		int64_t sec = us / 1000000 - (us % 1000000 < 0);

		snprintf(buf, sizeof(buf), "%lld", (long long)sec);
	} else {
		snprintf(buf, sizeof(buf), "%lld", (long long)(us / 1000));
	}
	*out = as_strdup(buf);
	return *out ? 0 : as_error_set(err, AS_ENOMEM, "out of memory");
}

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
	if ((rc = format_cursor(h, o->cursor, &s->cursor, err)))
		goto fail;
	s->common_url = build_base(h, s->cursor);
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
	s->fp = fingerprint(o->cfg, h);
	if (o->checkpoint && (rc = resume(s, o->checkpoint, &first, &ref, err)))
		goto fail;
	if ((rc = partition_url(s, err)))
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
