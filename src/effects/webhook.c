/*
 * Webhook delivery over libcurl: POST the event's JSON, 2xx is delivered,
 * anything else (or no answer) is retried with doubling backoff and then
 * left pending for the next drain.  The receiver may see an event twice
 * (at least once): X-Atomsync-Event carries the event id to deduplicate on.
 */
#include "effects/webhook.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "util/proc.h"
#include "util/time.h"

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc;

static void global_init(void)
{
	global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

void as_webhook_display(const char *url, char *out, size_t cap)
{
	CURLU *h = curl_url();
	char *host = NULL, *port = NULL;

	if (h && curl_url_set(h, CURLUPART_URL, url, 0) == CURLUE_OK &&
	    curl_url_get(h, CURLUPART_HOST, &host, 0) == CURLUE_OK) {
		if (curl_url_get(h, CURLUPART_PORT, &port,
				 CURLU_DEFAULT_PORT) != CURLUE_OK)
			port = NULL;
		snprintf(out, cap, "%s%s%s", host, port ? ":" : "",
			 port ? port : "");
	} else {
		snprintf(out, cap, "(unparsable URL)");
	}
	curl_free(host);
	curl_free(port);
	curl_url_cleanup(h);
}

static size_t discard(char *p, size_t size, size_t n, void *ud)
{
	(void)p;
	(void)ud;
	return size * n;
}

/* One POST: 0 on 2xx, else AS_ESOURCE with the status or curl's reason. */
static int post_once(CURL *c, const char *who, as_error *err)
{
	char ebuf[CURL_ERROR_SIZE] = "";
	long status = 0;
	CURLcode cc;

	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, ebuf);
	cc = curl_easy_perform(c);
	if (cc != CURLE_OK) {
		/* curl's message may quote the URL: give only the code's text.
		 */
		as_error_set(err, AS_ESOURCE, "webhook %s: %s", who,
			     curl_easy_strerror(cc));
		err->native = cc;
		return AS_ESOURCE;
	}
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	if (status < 200 || status > 299) {
		as_error_set(err, AS_ESOURCE, "webhook %s: HTTP %ld", who,
			     status);
		err->native = status;
		return AS_ESOURCE;
	}
	return 0;
}

int as_webhook_post(const char *url, const char *body, size_t len,
		    int64_t event_id, const as_webhook_opts *o, as_error *err)
{
	as_webhook_opts d = {3, 250, 2000, 5000};
	struct curl_slist *hdr = NULL;
	char who[300], line[64];
	int64_t wait;
	CURL *c;
	int rc = AS_ESOURCE;

	if (!o)
		o = &d;
	as_webhook_display(url, who, sizeof(who));
	pthread_once(&global_once, global_init);
	if (global_rc != CURLE_OK || !(c = curl_easy_init()))
		return as_error_set(err, AS_ESOURCE,
				    "webhook %s: libcurl did not "
				    "initialize",
				    who);
	snprintf(line, sizeof(line), "X-Atomsync-Event: %lld",
		 (long long)event_id);
	hdr = curl_slist_append(hdr, "Content-Type: application/json");
	hdr = curl_slist_append(hdr, line);
	hdr = curl_slist_append(hdr, "Expect:");
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "atomsync/" ATOMSYNC_VERSION);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
			 (long)o->connect_timeout_ms);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)o->timeout_ms);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
	/* A redirect would resend the body elsewhere: not followed. */
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	wait = o->backoff_ms;
	for (int i = 0; i < o->attempts; i++) {
		if (i) {
			if (as_interrupted)
				break;
			as_sleep_ms(wait);
			wait *= 2;
		}
		if ((rc = post_once(c, who, err)) == 0)
			break;
	}
	if (rc && o->attempts > 1)
		as_error_prefix(err, "after %d attempts", o->attempts);
	curl_slist_free_all(hdr);
	curl_easy_cleanup(c);
	return rc;
}
