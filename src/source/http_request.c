/*
 * The HTTP source's requests: page URLs (offset, page, cursor and next-URL
 * styles, {cursor} and {page_cursor} applied, partitions' params), POST
 * bodies rendered from the template, and the window of pages submitted.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "source/http_int.h"
#include "util/str.h"
#include "util/time.h"

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
char *as_http_build_base(const as_http_cfg *h, const char *cursor)
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

int as_http_submit_page(http_src *s, int64_t k, const char *ref, as_error *err)
{
	http_page *pg = as_http_slot(s, k);

	as_http_page_clear(s, pg);
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
int as_http_fill(http_src *s, as_error *err)
{
	int rc = 0;

	if (s->parallel) {
		while (!rc && s->issued < s->last_page &&
		       s->issued + 1 - s->emit < (int64_t)s->nslots)
			rc = as_http_submit_page(s, s->issued + 1, NULL, err);
	} else if (s->have_next &&
		   s->issued + 1 - s->emit < (int64_t)s->nslots) {
		s->have_next = 0;
		rc = as_http_submit_page(s, s->issued + 1, s->next_ref, err);
		free(s->next_ref);
		s->next_ref = NULL;
	}
	return rc;
}
/* base_url: the common URL with partition s->part's params. */
int as_http_partition_url(http_src *s, as_error *err)
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

/* The saved cursor as cursor_format writes it: a timestamp in whole
 * seconds or milliseconds (rounded down: the listing may repeat records,
 * never skip them), or ISO 8601 to the second; a cursor of digits is
 * already a number. */
int as_http_format_cursor(const as_http_cfg *h, const char *cur, char **out,
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
