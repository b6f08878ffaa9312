/*
 * The total an HTTP API reports for its listing (pagination.total_path),
 * read from the first page: what `atomsync verify` compares the live row
 * count with (source/http_total.c).
 */
#ifndef AS_SOURCE_HTTP_TOTAL_H
#define AS_SOURCE_HTTP_TOTAL_H

#include <stdint.h>

#include "config/config.h"
#include "util/error.h"

/*
 * Fetch the listing's first page (without any {cursor} filter, so the
 * total covers every record) with the source's headers, params, retries
 * and TLS rules, and read the total at http->total_path (a dotted path in
 * the body, or header:NAME).  AS_ENOTFOUND when the source has no
 * total_path or its URL path needs a cursor; AS_ESOURCE when the request
 * fails or the page has no total.  Messages are redacted.
 */
int as_http_total(const as_config *cfg, const as_http_cfg *http, int64_t *total,
		  as_error *err);

#endif
