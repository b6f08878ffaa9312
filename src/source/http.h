/*
 * The HTTP source's parts: a request driver over libcurl's multi interface
 * (one token bucket, retries with full-jitter backoff, Retry-After, AIMD
 * concurrency, a circuit breaker, a run deadline), URL and header helpers
 * that keep secrets out of messages, and single-record fetches for verify.
 */
#ifndef AS_SOURCE_HTTP_H
#define AS_SOURCE_HTTP_H

#include <curl/curl.h>
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "util/buf.h"
#include "util/error.h"

/* Fetch one record through http->item_url: each {name} is replaced by the
 * URL-encoded value of the same name, with the source's headers, params
 * ({cursor} ones omitted), timeout, retries, TLS and secret rules.  *out
 * (owned by the caller) is the object at http->records in the response when
 * that path exists there, else the whole body.  AS_ENOTFOUND on HTTP 404. */
int as_http_fetch_item(const as_config *cfg, const as_http_cfg *http,
		       const char *const *names, const char *const *values,
		       size_t n, json_t **out, as_error *err);

/* ---- requests ---------------------------------------------------------- */

typedef enum as_http_state {
	AS_HTTP_IDLE = 0, /* not submitted */
	AS_HTTP_QUEUED,	  /* waiting for a slot, a token or its backoff */
	AS_HTTP_RUNNING,  /* on the wire */
	AS_HTTP_DONE,	  /* a 2xx response is in body */
	AS_HTTP_FAILED	  /* gave up: err says why */
} as_http_state;

struct as_http_client;

typedef struct as_http_req {
	struct as_http_client *client; /* set by as_http_submit */
	char *url;     /* owned; may hold secrets: never print it raw */
	char *payload; /* owned JSON body: POST it (NULL: GET) */
	int64_t page;  /* page number in messages; 0: an item */
	as_http_state state;
	int attempts;	      /* attempts started */
	int64_t not_before;   /* monotonic ms: earliest next attempt */
	int64_t seq;	      /* submission order, for ties */
	CURL *easy;	      /* while RUNNING */
	as_buf body;	      /* response body (capped) */
	long status;	      /* HTTP status of the last response */
	char *link;	      /* Link header values joined by ", " */
	char *total_hdr;      /* value of the header named by total_header */
	double retry_after;   /* seconds from the last response; -1: none */
	int64_t rl_remaining; /* X-RateLimit-Remaining / RateLimit; -1: none */
	double rl_reset;      /* seconds until the limit resets; -1: none */
	as_error err;	      /* FAILED: "url: page N: reason" (redacted) */
	int token_gen;	      /* oauth2: the token the last attempt carried */
	int renewed;	      /* oauth2: a 401 already renewed the token */
	char errbuf[CURL_ERROR_SIZE];
	void *ud; /* the caller's */
} as_http_req;

/* ---- the client -------------------------------------------------------- */

typedef struct as_http_client {
	const as_config *cfg; /* secrets, for redaction; may be NULL */
	const as_http_cfg *h;
	CURLM *multi;
	struct curl_slist *headers;
	CURL **idle; /* easy handles ready for reuse */
	size_t nidle;
	as_http_req **queue; /* QUEUED and RUNNING requests */
	size_t nqueue, capqueue;
	int64_t seq;
	int running;	     /* transfers on the wire */
	int max_conc;	     /* configured concurrency */
	int conc;	     /* current limit (halved on 429) */
	int successes;	     /* in a row, for the additive increase */
	int failures;	     /* consecutive failed attempts (breaker) */
	double tokens;	     /* token bucket; unused when no rate limit */
	double refilled;     /* monotonic seconds of the last refill */
	int64_t pause_until; /* monotonic ms: Retry-After for everyone */
	int64_t deadline;    /* monotonic ms; 0: none */
	uint64_t rng;
	const char *total_header; /* capture this header into total_hdr */
	int64_t started;	  /* attempts started (all requests) */
	as_error fatal;		  /* set when the breaker opened */
	int broken;
	/* auth (http_auth.c) */
	char *token;	     /* oauth2 access token: never printed */
	int64_t token_renew; /* monotonic ms to renew it; 0: never */
	int token_gen;	     /* tokens fetched so far */
	struct curl_slist *
		*retired; /* header lists running transfers may use */
	size_t nretired;
} as_http_client;

int as_http_client_init(as_http_client *c, const as_config *cfg,
			const as_http_cfg *h, as_error *err);
void as_http_client_free(as_http_client *c);

/* Queue r (r->url and r->page set) for its first attempt. */
int as_http_submit(as_http_client *c, as_http_req *r, as_error *err);
/* Stop r if it is queued or running, and reset it to IDLE. */
void as_http_cancel(as_http_client *c, as_http_req *r);
void as_http_req_free(as_http_req *r);

/* Start what may start, wait up to wait_ms for the network, and settle
 * finished transfers (a retry goes back to the queue).  Returns the number
 * of requests that reached DONE or FAILED, or < 0 when the run must stop:
 * the circuit breaker opened, the deadline passed, or a signal came. */
int as_http_step(as_http_client *c, int64_t wait_ms, as_error *err);

/* ---- auth (http_auth.c) ------------------------------------------------ */

/* c->headers rebuilt: the configured headers, Accept, Content-Type for
 * POST, and "Authorization: Bearer token" when token is set.  The old list
 * is kept until the client is freed (transfers on the wire hold it). */
int as_http_set_headers(as_http_client *c, const char *token);
/* oauth2: make sure a token is held that is not due for renewal, fetching
 * one from token_url (client credentials) when needed. */
int as_http_auth_ready(as_http_client *c, as_error *err);
/* Mask the current access token in msg. */
void as_http_auth_redact(const as_http_client *c, char *msg, size_t cap);
void as_http_auth_free(as_http_client *c);

/* ---- helpers (http_util.c) --------------------------------------------- */

/* Append s percent-encoded (RFC 3986 unreserved characters kept). */
int as_http_encode(as_buf *b, const char *s);

/* A copy of url with the values of secret query parameters (names in
 * h->secrets) replaced by "***" and every secret value masked: safe to
 * print.  Never NULL on success; NULL when out of memory. */
char *as_http_redact_url(const as_config *cfg, const as_http_cfg *h,
			 const char *url);
/* A copy of url without the secret query parameters (for checkpoints). */
char *as_http_strip_secrets(const as_http_cfg *h, const char *url);
/* url with the secret parameters (config values) appended again. */
char *as_http_add_secrets(const as_http_cfg *h, const char *url);

/* 1 if the parameter or header name holds a ${VAR} value. */
int as_http_is_secret(const as_http_cfg *h, const char *name);

/* The target of the first link with rel "next" in a Link header value
 * (RFC 8288: several links, quoted or bare rel, several rel values), or
 * NULL.  Owned by the caller. */
char *as_http_link_next(const char *link);

/* ref resolved against base (RFC 3986), or NULL if either is malformed. */
char *as_http_resolve(const char *base, const char *ref);
/* 1 when a and b have the same scheme, host and port. */
int as_http_same_origin(const char *a, const char *b);

/* Retry-After: delta seconds or an HTTP date; -1 if unreadable. */
double as_http_retry_after(const char *value);

/* The value at a dotted path ("a.b.0.c"; digits index arrays), or NULL. */
json_t *as_http_json_path(json_t *root, const char *path);
/* A JSON integer, a whole real or a string of digits as a count; -1 if
 * it is none of these. */
int64_t as_http_json_count(const json_t *v);

#endif
