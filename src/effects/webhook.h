/*
 * Webhook delivery: an HTTP POST of an event's JSON summary, retried with
 * backoff within bounded time.  Messages name the receiver by host and
 * port only: a webhook URL often carries its secret in the path or query.
 */
#ifndef AS_EFFECTS_WEBHOOK_H
#define AS_EFFECTS_WEBHOOK_H

#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

typedef struct as_webhook_opts {
	int attempts;	    /* default 3 */
	int64_t backoff_ms; /* first wait, doubled after each; default 250 */
	int64_t connect_timeout_ms; /* default 2000 */
	int64_t timeout_ms;	    /* whole request; default 5000 */
} as_webhook_opts;

/* "host:port" of url for messages (never its path, query or user info). */
void as_webhook_display(const char *url, char *out, size_t cap);

/* POST body (JSON) to url with X-Atomsync-Event: event_id; 0 on a 2xx.
 * o may be NULL for the defaults. */
int as_webhook_post(const char *url, const char *body, size_t len,
		    int64_t event_id, const as_webhook_opts *o, as_error *err);

#endif
