/*
 * The HTTP source's internals, shared by http.c (events, open and close),
 * http_request.c (page URLs and POST bodies), http_paging.c (what a page
 * says about the next one, by pagination style) and http_checkpoint.c
 * (resume points).  Not for use outside src/source/http*.c.
 */
#ifndef AS_SOURCE_HTTP_INT_H
#define AS_SOURCE_HTTP_INT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "source/http.h"
#include "source/source.h"

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

/* Page k's slot: page k lives in slots[(k - 1) % nslots]. */
static inline http_page *as_http_slot(http_src *s, int64_t k)
{
	return &s->slots[(size_t)(k - 1) % s->nslots];
}

/* ---- http.c ------------------------------------------------------------ */

/* Stop pg's request and free all it holds: the slot is free again. */
void as_http_page_clear(http_src *s, http_page *pg);
/* "url: page N: why" as the run's error (redacted, code AS_ESOURCE). */
int as_http_page_error(http_src *s, const http_page *pg, as_error *err,
		       const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* "an object", "an array", ... for messages. */
const char *as_http_json_kind(const json_t *v);

/* ---- http_request.c ---------------------------------------------------- */

/* The url with {cursor} applied (owned by the caller; NULL: no memory). */
char *as_http_build_base(const as_http_cfg *h, const char *cursor);
/* s->base_url: the common URL with partition s->part's params. */
int as_http_partition_url(http_src *s, as_error *err);
/* The saved cursor as cursor_format writes it, into *out (owned). */
int as_http_format_cursor(const as_http_cfg *h, const char *cur, char **out,
			  as_error *err);
/* Ask for page k (ref: the cursor or URL it was announced by). */
int as_http_submit_page(http_src *s, int64_t k, const char *ref, as_error *err);
/* Submit what the window allows. */
int as_http_fill(http_src *s, as_error *err);

/* ---- http_paging.c ----------------------------------------------------- */

/* Drive the network up to wait_ms and take the pages that arrived. */
int as_http_pump(http_src *s, int64_t wait_ms, as_error *err);

/* ---- http_checkpoint.c ------------------------------------------------- */

/* A hash of the settings that shape the listing. */
uint64_t as_http_fingerprint(const as_config *cfg, const as_http_cfg *h);
/* The resume point before page k (owned; NULL: no memory). */
char *as_http_checkpoint(http_src *s, int64_t k, const char *ref, int done);
/* Beyond the tolerance? (n against the API's total t) */
int as_http_off_total(const http_src *s, int64_t n, int64_t t);
/* Restore s from a checkpoint: *first the page to ask for, *ref (owned)
 * how to ask for it. */
int as_http_resume(http_src *s, const char *text, int64_t *first, char **ref,
		   as_error *err);

#endif
