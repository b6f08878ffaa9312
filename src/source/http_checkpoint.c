/*
 * The HTTP source's checkpoints: a resume point after each page (page
 * number, cursor or next URL without secrets, records and totals so far),
 * refused on resume when the listing's configuration changed.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "source/http_int.h"
#include "util/hash.h"
#include "util/str.h"

#define CP_VERSION 1

static const char *const style_names[] = {
	"none", "offset", "page", "cursor", "next_url", "link_header",
};

/* ---- checkpoints -------------------------------------------------------- */

uint64_t as_http_fingerprint(const as_config *cfg, const as_http_cfg *h)
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
char *as_http_checkpoint(http_src *s, int64_t k, const char *ref, int done)
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
int as_http_off_total(const http_src *s, int64_t n, int64_t t)
{
	return fabs((double)(n - t)) > s->h->total_tolerance * (double)t;
}

int as_http_resume(http_src *s, const char *text, int64_t *first, char **ref,
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
		   (as_http_off_total(s, tmin, tmax) ||
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
