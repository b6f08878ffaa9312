/*
 * The total an HTTP API reports for its whole listing, for the count check
 * of `atomsync verify`: one request for the first page, built like the
 * source's own first request but with every {cursor} filter left out.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "source/http.h"
#include "source/http_total.h"
#include "util/str.h"

#define WAIT_MS 200

static void add_param(as_buf *b, const char *name, const char *value)
{
	as_buf_addc(b, strchr(as_buf_cstr(b), '?') ? '&' : '?');
	as_http_encode(b, name);
	as_buf_addc(b, '=');
	as_http_encode(b, value);
}

/* The first page's URL, or NULL with *no_total when the URL's path needs
 * a cursor (the listing cannot be asked for unfiltered). */
static char *first_page(const as_http_cfg *h, int *no_total)
{
	const char *url = h->url, *q = strchr(url, '?');
	size_t plen = q ? (size_t)(q - url) : strlen(url);
	as_buf b = AS_BUF_INIT;
	char num[32];

	/* A POST listing's total is not asked for with a GET, and one
	 * listing's total is not the total of several partitions. */
	*no_total = memmem(url, plen, "{cursor}", 8) != NULL ||
		    memmem(url, plen, "{page_cursor}", 13) != NULL ||
		    h->method_post || h->npartitions;
	if (*no_total)
		return NULL;
	as_buf_add(&b, url, plen);
	for (const char *p = q ? q + 1 : NULL; p && *p;) {
		size_t n = strcspn(p, "&");

		if (n && !memmem(p, n, "{cursor}", 8) &&
		    !memmem(p, n, "{page_cursor}", 13)) {
			as_buf_addc(&b,
				    strchr(as_buf_cstr(&b), '?') ? '&' : '?');
			as_buf_add(&b, p, n);
		}
		p += n + (p[n] == '&');
	}
	for (size_t i = 0; i < h->nparams; i++)
		if (!strstr(h->params[i].value, "{cursor}") &&
		    !strstr(h->params[i].value, "{page_cursor}"))
			add_param(&b, h->params[i].key, h->params[i].value);
	if (h->style == AS_PAGE_OFFSET && h->offset_param) {
		add_param(&b, h->offset_param, "0");
	} else if (h->style == AS_PAGE_PAGE && h->page_param) {
		snprintf(num, sizeof(num), "%lld", (long long)h->first_page);
		add_param(&b, h->page_param, num);
	}
	if (h->limit_param && h->limit > 0 && h->style != AS_PAGE_NONE) {
		snprintf(num, sizeof(num), "%lld", (long long)h->limit);
		add_param(&b, h->limit_param, num);
	}
	return as_buf_detach(&b);
}

int as_http_total(const as_config *cfg, const as_http_cfg *http, int64_t *total,
		  as_error *err)
{
	as_http_client c;
	as_http_req r;
	json_t *doc = NULL;
	char *shown = NULL;
	int rc, no_total;

	*total = -1;
	memset(&c, 0, sizeof(c));
	memset(&r, 0, sizeof(r));
	if (!http->total_path)
		return as_error_set(err, AS_ENOTFOUND,
				    "the API reports no total "
				    "(pagination.total_path is not set)");
	if (!(r.url = first_page(http, &no_total)))
		return !no_total ? as_error_set(err, AS_ENOMEM, "out of memory")
		       : http->method_post
			       ? as_error_set(err, AS_ENOTFOUND,
					      "a POST listing's total is not "
					      "asked for")
		       : http->npartitions
			       ? as_error_set(err, AS_ENOTFOUND,
					      "the listing has partitions: no "
					      "one page reports the total of "
					      "every record")
			       : as_error_set(err, AS_ENOTFOUND,
					      "the listing's URL "
					      "needs a cursor, so its total is "
					      "not of every record");
	r.page = 1;
	if ((rc = as_http_client_init(&c, cfg, http, err)) ||
	    (rc = as_http_submit(&c, &r, err)))
		goto done;
	while (r.state != AS_HTTP_DONE && r.state != AS_HTTP_FAILED)
		if ((rc = as_http_step(&c, WAIT_MS, err)) < 0)
			goto done;
	if (r.state == AS_HTTP_FAILED) {
		*err = r.err;
		rc = err->code = AS_ESOURCE;
		goto done;
	}
	shown = as_http_redact_url(cfg, http, r.url);
	if (strncmp(http->total_path, "header:", 7) == 0) {
		json_t *v = r.total_hdr ? json_string(r.total_hdr) : NULL;

		*total = as_http_json_count(v);
		json_decref(v);
	} else {
		doc = json_loadb(r.body.data ? r.body.data : "", r.body.len, 0,
				 NULL);
		*total = as_http_json_count(
			doc ? as_http_json_path(doc, http->total_path) : NULL);
	}
	rc = *total >= 0 ? 0
			 : as_error_set(err, AS_ESOURCE, "%s: no total at '%s'",
					shown ? shown : "the first page",
					http->total_path);
done:
	if (rc)
		as_config_redact(cfg, err->msg, sizeof(err->msg));
	json_decref(doc);
	free(shown);
	as_http_client_free(&c);
	as_http_req_free(&r);
	return rc;
}
