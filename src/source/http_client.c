/*
 * The HTTP request driver on libcurl's multi interface.  Every attempt of
 * every request takes a token from one bucket; failures that may pass
 * (connection errors, timeouts, truncated bodies, 408, 429, 5xx) are
 * retried after a full-jitter backoff or the server's Retry-After; a 429
 * halves the concurrency, which grows back by one after a run of successes;
 * too many failures in a row open the circuit breaker and stop the run.
 */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "source/http.h"
#include "util/log.h"
#include "util/proc.h"
#include "util/str.h"
#include "util/time.h"

#define BODY_MAX (256u * 1024 * 1024) /* one response body */
#define POLL_MAX_MS 200		      /* wake up this often for signals */
#define SNIPPET 120		      /* body text quoted in an error */

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc;

static void global_init(void)
{
	global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static uint64_t next_rand(as_http_client *c)
{
	/* xorshift64*: jitter needs no more */
	c->rng ^= c->rng >> 12;
	c->rng ^= c->rng << 25;
	c->rng ^= c->rng >> 27;
	return c->rng * 2685821657736338717ULL;
}

int as_http_client_init(as_http_client *c, const as_config *cfg,
			const as_http_cfg *h, as_error *err)
{
	memset(c, 0, sizeof(*c));
	c->cfg = cfg;
	c->h = h;
	pthread_once(&global_once, global_init);
	if (global_rc != CURLE_OK)
		return as_error_set(err, AS_ESOURCE, "libcurl: %s",
				    curl_easy_strerror(global_rc));
	if (!(c->multi = curl_multi_init()))
		return as_error_set(err, AS_ENOMEM, "out of memory");
	if (as_http_set_headers(c,
				h->auth == AS_AUTH_BEARER ? h->bearer : NULL))
		return as_error_set(err, AS_ENOMEM, "out of memory");
	c->max_conc = c->conc = h->concurrency > 0 ? h->concurrency : 1;
	c->tokens = h->rate_burst > 0 ? (double)h->rate_burst : 1;
	c->refilled = as_mono();
	if (h->deadline_ms > 0)
		c->deadline = as_mono_ms() + h->deadline_ms;
	c->rng = ((uint64_t)as_mono_ms() << 20) ^ (uint64_t)getpid() ^
		 (uint64_t)(uintptr_t)c;
	if (!c->rng)
		c->rng = 88172645463325252ULL;
	if (h->total_path && strncmp(h->total_path, "header:", 7) == 0)
		c->total_header = h->total_path + 7;
	curl_multi_setopt(c->multi, CURLMOPT_MAXCONNECTS,
			  (long)c->max_conc + 4);
	return 0;
}

void as_http_req_free(as_http_req *r)
{
	if (!r)
		return;
	free(r->url);
	free(r->payload);
	free(r->link);
	free(r->total_hdr);
	as_buf_free(&r->body);
	r->url = r->payload = r->link = r->total_hdr = NULL;
}

static void dequeue(as_http_client *c, as_http_req *r)
{
	for (size_t i = 0; i < c->nqueue; i++) {
		if (c->queue[i] == r) {
			memmove(c->queue + i, c->queue + i + 1,
				(c->nqueue - i - 1) * sizeof(*c->queue));
			c->nqueue--;
			return;
		}
	}
}

/* Take r's easy handle off the wire and keep it for the next request. */
static void release_easy(as_http_client *c, as_http_req *r)
{
	CURL **idle;

	if (!r->easy)
		return;
	curl_multi_remove_handle(c->multi, r->easy);
	idle = realloc(c->idle, (c->nidle + 1) * sizeof(*idle));
	if (idle) {
		c->idle = idle;
		c->idle[c->nidle++] = r->easy;
	} else {
		curl_easy_cleanup(r->easy);
	}
	r->easy = NULL;
	c->running--;
}

void as_http_cancel(as_http_client *c, as_http_req *r)
{
	release_easy(c, r);
	dequeue(c, r);
	r->state = AS_HTTP_IDLE;
}

void as_http_client_free(as_http_client *c)
{
	while (c->nqueue)
		as_http_cancel(c, c->queue[0]);
	for (size_t i = 0; i < c->nidle; i++)
		curl_easy_cleanup(c->idle[i]);
	as_http_auth_free(c);
	free(c->idle);
	free(c->queue);
	if (c->multi)
		curl_multi_cleanup(c->multi);
	curl_slist_free_all(c->headers);
	memset(c, 0, sizeof(*c));
}

int as_http_submit(as_http_client *c, as_http_req *r, as_error *err)
{
	if (c->nqueue == c->capqueue) {
		size_t cap = c->capqueue ? c->capqueue * 2 : 16;
		as_http_req **q = realloc(c->queue, cap * sizeof(*q));

		if (!q)
			return as_error_set(err, AS_ENOMEM, "out of memory");
		c->queue = q;
		c->capqueue = cap;
	}
	c->queue[c->nqueue++] = r;
	r->client = c;
	r->state = AS_HTTP_QUEUED;
	r->attempts = 0;
	r->not_before = 0;
	r->seq = ++c->seq;
	as_error_clear(&r->err);
	return 0;
}

/* ---- one transfer ------------------------------------------------------- */

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
	as_http_req *r = ud;

	return as_buf_add(&r->body, p, size * n) ? 0 : size * n;
}

static char *header_value(const char *p, size_t n)
{
	while (n && (*p == ' ' || *p == '\t'))
		p++, n--;
	while (n && strchr(" \t\r\n", p[n - 1]))
		n--;
	return as_strndup(p, n);
}

/* Keep Link (all of them), Retry-After and the total header of the last
 * response (a 100 Continue or a redirect starts a new one). */
/* A header's whole number; -1 if it is not one. */
static int64_t rl_number(const char *v)
{
	char *end;
	long long n;

	while (*v == ' ')
		v++;
	if (*v < '0' || *v > '9')
		return -1;
	n = strtoll(v, &end, 10);
	return *end && !strchr(" ,;.", *end) ? -1 : (int64_t)n;
}

/* A reset as seconds to wait: large values are Unix times (GitHub's
 * X-RateLimit-Reset), small ones delays (the RateLimit draft). */
static double rl_reset(int64_t n)
{
	time_t now = time(NULL);

	if (n < 0)
		return -1;
	if (n > 1000000000)
		return n > (int64_t)now ? (double)(n - (int64_t)now) : 0;
	return (double)n;
}

/* RateLimit: "limit=100, remaining=0, reset=5" (draft 03) or
 * "default";r=0;t=5 (draft 07 and later). */
static void rl_combined(as_http_req *r, const char *v)
{
	static const char *const rem[] = {"remaining=", ";r=", " r="};
	static const char *const rst[] = {"reset=", ";t=", " t="};
	const char *p;

	for (int i = 0; i < 3; i++) {
		if ((p = strstr(v, rem[i])))
			r->rl_remaining = rl_number(p + strlen(rem[i]));
		if ((p = strstr(v, rst[i])))
			r->rl_reset = rl_reset(rl_number(p + strlen(rst[i])));
	}
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
	as_http_req *r = ud;
	const char *colon, *total = r->client ? r->client->total_header : NULL;
	size_t len = size * n, name;
	char *v;

	if (len >= 5 && strncmp(p, "HTTP/", 5) == 0) {
		free(r->link);
		free(r->total_hdr);
		r->link = r->total_hdr = NULL;
		r->retry_after = -1;
		r->rl_remaining = -1;
		r->rl_reset = -1;
		return len;
	}
	if (!(colon = memchr(p, ':', len)))
		return len;
	name = (size_t)(colon - p);
	if (name == 4 && strncasecmp(p, "link", 4) == 0) {
		if (!(v = header_value(colon + 1, len - name - 1)))
			return 0;
		if (r->link) {
			char *joined = as_sprintf("%s, %s", r->link, v);

			free(v);
			if (!(v = joined))
				return 0;
		}
		free(r->link);
		r->link = v;
	} else if (name == 11 && strncasecmp(p, "retry-after", 11) == 0) {
		if ((v = header_value(colon + 1, len - name - 1)))
			r->retry_after = as_http_retry_after(v);
		free(v);
	} else if ((name == 21 &&
		    !strncasecmp(p, "x-ratelimit-remaining", 21)) ||
		   (name == 19 && !strncasecmp(p, "ratelimit-remaining", 19))) {
		if ((v = header_value(colon + 1, len - name - 1)))
			r->rl_remaining = rl_number(v);
		free(v);
	} else if ((name == 17 && !strncasecmp(p, "x-ratelimit-reset", 17)) ||
		   (name == 15 && !strncasecmp(p, "ratelimit-reset", 15))) {
		if ((v = header_value(colon + 1, len - name - 1)))
			r->rl_reset = rl_reset(rl_number(v));
		free(v);
	} else if (name == 9 && !strncasecmp(p, "ratelimit", 9)) {
		if ((v = header_value(colon + 1, len - name - 1)))
			rl_combined(r, v);
		free(v);
	} else if (total && strlen(total) == name &&
		   strncasecmp(p, total, name) == 0) {
		free(r->total_hdr);
		r->total_hdr = header_value(colon + 1, len - name - 1);
	}
	return len;
}

static int set_common(as_http_client *c, CURL *e)
{
	const as_http_cfg *h = c->h;
	CURLcode rc = CURLE_OK;

#define SET(opt, val)                                                          \
	if (rc == CURLE_OK)                                                    \
	rc = curl_easy_setopt(e, opt, val)
	SET(CURLOPT_NOSIGNAL, 1L);
	if (h->auth == AS_AUTH_BASIC) {
		SET(CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
		SET(CURLOPT_USERNAME, h->user);
		SET(CURLOPT_PASSWORD, h->password);
	}
	SET(CURLOPT_WRITEFUNCTION, on_body);
	SET(CURLOPT_HEADERFUNCTION, on_header);
	SET(CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
	SET(CURLOPT_PROTOCOLS_STR, "http,https");
	SET(CURLOPT_ACCEPT_ENCODING, "");
	SET(CURLOPT_USERAGENT, "atomsync/" ATOMSYNC_VERSION);
	SET(CURLOPT_FOLLOWLOCATION, 0L);
	SET(CURLOPT_TCP_KEEPALIVE, 1L);
	SET(CURLOPT_SSL_VERIFYPEER, h->insecure ? 0L : 1L);
	SET(CURLOPT_SSL_VERIFYHOST, h->insecure ? 0L : 2L);
	if (h->ca_bundle)
		SET(CURLOPT_CAINFO, h->ca_bundle);
#undef SET
	return rc == CURLE_OK ? 0 : -1;
}

static int start(as_http_client *c, as_http_req *r, int64_t now, as_error *err)
{
	int64_t timeout = c->h->timeout_ms > 0 ? c->h->timeout_ms : 30000;
	CURL *e;

	if (c->h->auth == AS_AUTH_OAUTH2 && as_http_auth_ready(c, err))
		return err->code;
	if (c->nidle) {
		e = c->idle[--c->nidle];
	} else {
		if (!(e = curl_easy_init()))
			return as_error_set(err, AS_ENOMEM, "out of memory");
		if (set_common(c, e)) {
			curl_easy_cleanup(e);
			return as_error_set(
				err, AS_ESOURCE,
				"libcurl refused an option (is it older than 7.85?)");
		}
	}
	if (c->deadline && c->deadline - now < timeout)
		timeout = c->deadline - now > 0 ? c->deadline - now : 1;
	if (!r->body.max)
		as_buf_init(&r->body, BODY_MAX);
	as_buf_reset(&r->body);
	free(r->link);
	free(r->total_hdr);
	r->link = r->total_hdr = NULL;
	r->retry_after = -1;
	r->rl_remaining = -1;
	r->rl_reset = -1;
	r->status = 0;
	r->errbuf[0] = '\0';
	curl_easy_setopt(e, CURLOPT_URL, r->url);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, c->headers);
	r->token_gen = c->token_gen;
	if (r->payload) {
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE,
				 (long)strlen(r->payload));
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->payload);
	} else {
		curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
	}
	curl_easy_setopt(e, CURLOPT_PRIVATE, (char *)r);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)timeout);
	curl_easy_setopt(e, CURLOPT_PIPEWAIT,
			 strncasecmp(r->url, "https:", 6) == 0 ? 1L : 0L);
	r->easy = e;
	if (curl_multi_add_handle(c->multi, e) != CURLM_OK) {
		r->easy = NULL;
		curl_easy_cleanup(e);
		return as_error_set(err, AS_ESOURCE,
				    "libcurl: cannot start a transfer");
	}
	r->attempts++;
	r->state = AS_HTTP_RUNNING;
	c->running++;
	c->started++;
	return 0;
}

/* ---- outcomes ----------------------------------------------------------- */

static const char *fmt_ms(int64_t ms, char *buf, size_t cap)
{
	if (ms % 1000 == 0)
		snprintf(buf, cap, "%lld s", (long long)(ms / 1000));
	else if (ms >= 1000)
		snprintf(buf, cap, "%.1f s", (double)ms / 1000);
	else
		snprintf(buf, cap, "%lld ms", (long long)ms);
	return buf;
}

/* ": <start of the body>" on one line, for a status that fails the run. */
static void snippet(const as_http_req *r, char *buf, size_t cap)
{
	size_t n = r->body.len < SNIPPET ? r->body.len : SNIPPET, o = 0;

	buf[0] = '\0';
	if (!n || cap < 8)
		return;
	buf[o++] = ':';
	buf[o++] = ' ';
	for (size_t i = 0; i < n && o + 4 < cap; i++) {
		unsigned char ch = (unsigned char)r->body.data[i];

		buf[o++] = ch < 32 || ch == 127 ? ' ' : (char)ch;
	}
	if (r->body.len > n && o + 4 < cap) {
		memcpy(buf + o, "...", 3);
		o += 3;
	}
	buf[o] = '\0';
}

/* error_path: a 2xx whose body holds an error there (Slack's
 * {"ok": false, "error": "ratelimited"}) failed with the API's text;
 * retried when the text is one of error_retry. */
static int body_error(as_http_client *c, as_http_req *r, char *why, size_t cap)
{
	const as_http_cfg *h = c->h;
	json_t *doc = json_loadb(r->body.data ? r->body.data : "", r->body.len,
				 0, NULL);
	json_t *v = as_http_json_path(doc, h->error_path), *m;
	char *text = NULL;
	int kind = 0;

	if (!v || json_is_null(v) || json_is_false(v) ||
	    (json_is_string(v) && !json_string_length(v))) {
		json_decref(doc);
		return 0;
	}
	m = json_is_object(v) ? json_object_get(v, "message") : NULL;
	if (json_is_string(v))
		text = as_strdup(json_string_value(v));
	else if (json_is_string(m))
		text = as_strdup(json_string_value(m));
	else
		text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
	kind = 2;
	for (size_t i = 0; text && i < h->nerror_retry; i++)
		if (!strcmp(text, h->error_retry[i]))
			kind = 1;
	snprintf(why, cap, "HTTP %ld with an error at '%s': %.200s", r->status,
		 h->error_path, text ? text : "");
	free(text);
	json_decref(doc);
	return kind;
}

/* What one attempt came to: 0 a 2xx response, 1 a failure that a retry may
 * cure, 2 a failure that no retry will cure.  why says what happened. */
static int classify(as_http_client *c, as_http_req *r, CURLcode cc, char *why,
		    size_t cap)
{
	char body[SNIPPET + 16], d[32];

	curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &r->status);
	switch (cc) {
	case CURLE_OK:
		if (r->status >= 200 && r->status < 300)
			return c->h->error_path ? body_error(c, r, why, cap)
						: 0;
		/* GitHub: 403 with the limit spent is a rate limit; wait
		 * for its reset like a Retry-After. */
		if ((r->status == 403 || r->status == 429) &&
		    r->rl_remaining == 0 && r->rl_reset >= 0) {
			if (r->retry_after < 0)
				r->retry_after = r->rl_reset;
			snprintf(why, cap, "HTTP %ld (rate limit spent)",
				 r->status);
			return 1;
		}
		if (r->status == 408 || r->status == 429 || r->status >= 500) {
			snprintf(why, cap, "HTTP %ld", r->status);
			return 1;
		}
		snippet(r, body, sizeof(body));
		snprintf(why, cap, "HTTP %ld%s", r->status, body);
		return 2;
	case CURLE_OPERATION_TIMEDOUT:
		snprintf(why, cap, "no complete response within %s (timeout)",
			 fmt_ms(c->h->timeout_ms, d, sizeof(d)));
		return 1;
	case CURLE_PARTIAL_FILE:
		snprintf(why, cap, "truncated body (%s)",
			 *r->errbuf ? r->errbuf : curl_easy_strerror(cc));
		return 1;
	case CURLE_WRITE_ERROR:
		snprintf(why, cap, "response body over %u MiB",
			 BODY_MAX / (1024 * 1024));
		return 2;
	case CURLE_URL_MALFORMAT:
	case CURLE_UNSUPPORTED_PROTOCOL:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_OUT_OF_MEMORY:
	case CURLE_FILESIZE_EXCEEDED:
	case CURLE_TOO_MANY_REDIRECTS:
	case CURLE_NOT_BUILT_IN:
	case CURLE_BAD_FUNCTION_ARGUMENT:
	case CURLE_UNKNOWN_OPTION:
		snprintf(why, cap, "%s",
			 *r->errbuf ? r->errbuf : curl_easy_strerror(cc));
		return 2;
	default:
		snprintf(why, cap, "%s",
			 *r->errbuf ? r->errbuf : curl_easy_strerror(cc));
		return 1;
	}
}

/* random(0, min(max, initial * 2^retry)) milliseconds: full jitter. */
static int64_t backoff(as_http_client *c, int retry)
{
	double cap = (double)c->h->retry_initial_ms *
		     ldexp(1.0, retry > 62 ? 62 : retry);

	if (cap > (double)c->h->retry_max_ms)
		cap = (double)c->h->retry_max_ms;
	return (int64_t)((double)(next_rand(c) >> 11) / 9007199254740992.0 *
			 cap);
}

/* "url: page N: " (redacted) into buf. */
static void where(as_http_client *c, const as_http_req *r, char *buf,
		  size_t cap)
{
	char *shown = as_http_redact_url(c->cfg, c->h, r->url);

	if (r->page)
		snprintf(buf, cap, "%s: page %lld", shown ? shown : "(url)",
			 (long long)r->page);
	else
		snprintf(buf, cap, "%s", shown ? shown : "(url)");
	free(shown);
}

static void fail_req(as_http_client *c, as_http_req *r, const char *why,
		     int retryable)
{
	char at[1024], ra[48] = "", tries[48] = "";

	where(c, r, at, sizeof(at));
	if (retryable && r->attempts > 1)
		snprintf(tries, sizeof(tries), " after %d attempts",
			 r->attempts);
	if (r->retry_after >= 0)
		snprintf(ra, sizeof(ra), " (Retry-After %g s)", r->retry_after);
	as_error_set(&r->err, r->status == 404 ? AS_ENOTFOUND : AS_ESOURCE,
		     "%s: %s%s%s", at, why, tries, ra);
	as_config_redact(c->cfg, r->err.msg, sizeof(r->err.msg));
	as_http_auth_redact(c, r->err.msg, sizeof(r->err.msg));
	r->state = AS_HTTP_FAILED;
	dequeue(c, r);
}

static int breaker_open(as_http_client *c, as_http_req *r, const char *why,
			as_error *err)
{
	char at[1024];

	where(c, r, at, sizeof(at));
	c->broken = 1;
	as_error_set(&c->fatal, AS_ESOURCE,
		     "circuit breaker opened after %d "
		     "consecutive failed requests; the last: %s: %s",
		     c->failures, at, why);
	as_config_redact(c->cfg, c->fatal.msg, sizeof(c->fatal.msg));
	as_http_auth_redact(c, c->fatal.msg, sizeof(c->fatal.msg));
	*err = c->fatal;
	return AS_ESOURCE;
}

static int deadline_passed(as_http_client *c, as_error *err);

/* oauth2: a 401 renews the token (unless another request did already)
 * and tries again at once, one time per request. */
static int renew_and_retry(as_http_client *c, as_http_req *r)
{
	r->renewed = 1;
	if (r->token_gen == c->token_gen) {
		as_info("HTTP 401: renewing the access token");
		c->token_renew = 1;
	}
	r->not_before = 0;
	r->state = AS_HTTP_QUEUED;
	return 0;
}

/* A successful attempt: the breaker's count reset, the concurrency
 * raised by one after 2 x conc successes in a row (AIMD). */
static int succeeded(as_http_client *c, as_http_req *r)
{
	if (r->rl_remaining == 0 && r->rl_reset > 0) {
		/* The limit is spent: wait for its reset before the next
		 * request rather than take a 429 or 403. */
		int64_t until = as_mono_ms() + (int64_t)(r->rl_reset * 1000);

		if (until > c->pause_until) {
			c->pause_until = until;
			as_info("rate limit spent (remaining 0): pausing %g s until "
				"it resets",
				r->rl_reset);
		}
	}
	c->failures = 0;
	if (c->conc < c->max_conc && ++c->successes >= 2 * c->conc) {
		c->conc++;
		c->successes = 0;
	}
	r->state = AS_HTTP_DONE;
	dequeue(c, r);
	return 1;
}

/* A throttled response (429, 503, or 403 with the limit spent, each with
 * Retry-After) pauses every request; a 429 halves the concurrency.
 * Returns 1 when r was throttled. */
static int throttle(as_http_client *c, as_http_req *r, CURLcode cc, int64_t now,
		    const char *why)
{
	int throttled = cc == CURLE_OK &&
			(r->status == 429 || r->status == 503 ||
			 (r->status == 403 && r->rl_remaining == 0)) &&
			r->retry_after >= 0;

	if (cc == CURLE_OK && r->status == 429 && c->conc > 1) {
		as_info("HTTP 429: concurrency %d -> %d", c->conc, c->conc / 2);
		c->conc /= 2;
	}
	if (throttled &&
	    now + (int64_t)(r->retry_after * 1000) > c->pause_until)
		c->pause_until = now + (int64_t)(r->retry_after * 1000);
	if (throttled && r->retry_after * 1000 > (double)c->h->retry_max_ms) {
		char at[1024];

		where(c, r, at, sizeof(at));
		as_warn("%s: %s with Retry-After %g s: waiting that long (the run's "
			"deadline bounds it)",
			at, why, r->retry_after);
	}
	return throttled;
}

/* A failed attempt (kind 1: may be retried, 2: may not): the breaker, the
 * last attempt, or the next one queued after its backoff or Retry-After
 * when the deadline leaves time for it.  why (cap bytes) may be added to. */
static int retry_or_fail(as_http_client *c, as_http_req *r, int kind,
			 int throttled, int64_t now, char *why, size_t cap,
			 as_error *err)
{
	const as_http_cfg *h = c->h;
	int64_t wait;

	if (h->breaker_failures > 0 && c->failures >= h->breaker_failures)
		return breaker_open(c, r, why, err);
	if (kind == 2 || r->attempts >= h->retry_attempts) {
		fail_req(c, r, why, kind == 1);
		return 1;
	}
	wait = throttled ? (int64_t)(r->retry_after * 1000)
			 : backoff(c, r->attempts - 1);
	if (c->deadline && now + wait >= c->deadline) {
		char d[32];
		size_t n = strlen(why);

		snprintf(
			why + n, cap - n,
			"; no time for another attempt within the deadline of %s",
			fmt_ms(h->deadline_ms, d, sizeof(d)));
		fail_req(c, r, why, 1);
		return 1;
	}
	r->not_before = now + wait;
	r->state = AS_HTTP_QUEUED;
	as_debug("page %lld: %s; attempt %d in %lld ms", (long long)r->page,
		 why, r->attempts + 1, (long long)wait);
	return 0;
}

/* One finished attempt: done, queued again, or failed.  Returns 1 when r
 * reached DONE or FAILED, 0 when it waits for a retry, < 0 when the circuit
 * breaker opened. */
static int settle(as_http_client *c, as_http_req *r, CURLcode cc, as_error *err)
{
	int kind, throttled;
	int64_t now;
	char why[512];

	kind = classify(c, r, cc, why, sizeof(why));
	release_easy(c, r);
	if (cc == CURLE_OK && r->status == 401 &&
	    c->h->auth == AS_AUTH_OAUTH2 && !r->renewed)
		return renew_and_retry(c, r);
	if (kind == 0)
		return succeeded(c, r);
	now = as_mono_ms();
	/* A transfer cut short by the deadline fails the run as the deadline.
	 */
	if (c->deadline && now >= c->deadline)
		return deadline_passed(c, err);
	c->successes = 0;
	c->failures++;
	throttled = throttle(c, r, cc, now, why);
	return retry_or_fail(c, r, kind, throttled, now, why, sizeof(why), err);
}

/* ---- the loop ----------------------------------------------------------- */

/* Start queued requests while a slot, a token and their time allow; *wake
 * is how long until one more could start (-1: nothing is waiting). */
static int start_ready(as_http_client *c, int64_t now, int64_t *wake,
		       as_error *err)
{
	const as_http_cfg *h = c->h;

	*wake = -1;
	while (c->running < c->conc) {
		as_http_req *best = NULL;
		int64_t soonest = INT64_MAX;

		for (size_t i = 0; i < c->nqueue; i++) {
			as_http_req *q = c->queue[i];

			if (q->state != AS_HTTP_QUEUED)
				continue;
			if (q->not_before > now) {
				if (q->not_before < soonest)
					soonest = q->not_before;
			} else if (!best || q->page < best->page ||
				   (q->page == best->page &&
				    q->seq < best->seq)) {
				best = q;
			}
		}
		if (!best) {
			if (soonest != INT64_MAX)
				*wake = soonest - now;
			return 0;
		}
		if (c->pause_until > now) {
			*wake = c->pause_until - now;
			return 0;
		}
		if (h->rate_per_sec > 0) {
			double t = as_mono(),
			       burst = h->rate_burst > 0 ? (double)h->rate_burst
							 : 1;

			c->tokens += (t - c->refilled) * h->rate_per_sec;
			if (c->tokens > burst)
				c->tokens = burst;
			c->refilled = t;
			if (c->tokens < 1) {
				*wake = (int64_t)ceil((1 - c->tokens) /
						      h->rate_per_sec * 1000);
				return 0;
			}
			c->tokens -= 1;
		}
		if (start(c, best, now, err))
			return err->code;
	}
	return 0;
}

static int deadline_passed(as_http_client *c, as_error *err)
{
	as_http_req *first = NULL;
	char d[32], at[1024];

	for (size_t i = 0; i < c->nqueue; i++)
		if (!first || c->queue[i]->page < first->page)
			first = c->queue[i];
	fmt_ms(c->h->deadline_ms, d, sizeof(d));
	if (!first)
		return as_error_set(err, AS_ESOURCE,
				    "the run's deadline of %s passed", d);
	where(c, first, at, sizeof(at));
	as_error_set(err, AS_ESOURCE,
		     "%s: the run's deadline of %s passed (attempt %d)", at, d,
		     first->attempts);
	as_config_redact(c->cfg, err->msg, sizeof(err->msg));
	return AS_ESOURCE;
}

int as_http_step(as_http_client *c, int64_t wait_ms, as_error *err)
{
	int64_t now = as_mono_ms(), wake;
	int still, settled = 0, rc;
	CURLMsg *m;

	if (c->broken) {
		*err = c->fatal;
		return c->fatal.code;
	}
	if (as_interrupted)
		return as_error_set(err, AS_EINTR, "interrupted by a signal");
	if (c->deadline && now >= c->deadline)
		return deadline_passed(c, err);
	if ((rc = start_ready(c, now, &wake, err)))
		return rc;
	curl_multi_perform(c->multi, &still);
	if (wake >= 0 && wake < wait_ms)
		wait_ms = wake;
	if (c->deadline && c->deadline - now < wait_ms)
		wait_ms = c->deadline - now;
	if (wait_ms > POLL_MAX_MS)
		wait_ms = POLL_MAX_MS;
	if (wait_ms > 0)
		curl_multi_poll(c->multi, NULL, 0, (int)wait_ms, NULL);
	curl_multi_perform(c->multi, &still);
	while ((m = curl_multi_info_read(c->multi, &still))) {
		as_http_req *r = NULL;
		CURLcode cc = m->data.result;

		if (m->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE,
				  (char **)&r);
		rc = settle(c, r, cc, err);
		if (rc < 0)
			return rc;
		settled += rc;
	}
	return settled;
}

/* ---- one record, for verify --------------------------------------------- */

static const char *value_of(const char *name, size_t len,
			    const char *const *names, const char *const *values,
			    size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strlen(names[i]) == len &&
		    strncmp(names[i], name, len) == 0)
			return values[i];
	return NULL;
}

static char *item_url(const as_http_cfg *h, const char *const *names,
		      const char *const *values, size_t n, as_error *err)
{
	const char *p = h->item_url;
	as_buf b = AS_BUF_INIT;
	int has_query;

	while (*p) {
		const char *close = *p == '{' ? strchr(p, '}') : NULL;
		const char *v;

		if (!close) {
			as_buf_addc(&b, *p++);
			continue;
		}
		v = value_of(p + 1, (size_t)(close - p - 1), names, values, n);
		if (!v) {
			as_error_set(
				err, AS_EUSAGE,
				"item_url has {%.*s} but no value for it was given",
				(int)(close - p - 1), p + 1);
			as_buf_free(&b);
			return NULL;
		}
		as_http_encode(&b, v);
		p = close + 1;
	}
	has_query = strchr(as_buf_cstr(&b), '?') != NULL;
	for (size_t i = 0; i < h->nparams; i++) {
		if (strstr(h->params[i].value, "{cursor}"))
			continue;
		as_buf_addc(&b, has_query ? '&' : '?');
		has_query = 1;
		as_http_encode(&b, h->params[i].key);
		as_buf_addc(&b, '=');
		as_http_encode(&b, h->params[i].value);
	}
	return as_buf_detach(&b);
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

int as_http_fetch_item(const as_config *cfg, const as_http_cfg *http,
		       const char *const *names, const char *const *values,
		       size_t n, json_t **out, as_error *err)
{
	as_http_client c;
	as_http_req r;
	json_error_t je;
	json_t *doc = NULL, *rec;
	char *shown = NULL;
	int rc;

	*out = NULL;
	memset(&r, 0, sizeof(r));
	memset(&c, 0, sizeof(c));
	if (!http->item_url)
		return as_error_set(err, AS_EUSAGE,
				    "the http source has no item_url");
	if (!(r.url = item_url(http, names, values, n, err)))
		return err->code
			       ? err->code
			       : as_error_set(err, AS_ENOMEM, "out of memory");
	if ((rc = as_http_client_init(&c, cfg, http, err)))
		goto done;
	if ((rc = as_http_submit(&c, &r, err)))
		goto done;
	while (r.state != AS_HTTP_DONE && r.state != AS_HTTP_FAILED)
		if ((rc = as_http_step(&c, POLL_MAX_MS, err)) < 0)
			goto done;
	if (r.state == AS_HTTP_FAILED) {
		*err = r.err;
		rc = r.err.code;
		goto done;
	}
	shown = as_http_redact_url(cfg, http, r.url);
	doc = json_loadb(r.body.data ? r.body.data : "", r.body.len, 0, &je);
	if (!doc) {
		rc = as_error_set(
			err, AS_ESOURCE,
			"%s: the response is not JSON (line %d column %d: %s)",
			shown, je.line, je.column, je.text);
		goto done;
	}
	rec = http->records ? as_http_json_path(doc, http->records) : NULL;
	if (!rec)
		rec = doc;
	if (!json_is_object(rec)) {
		rc = as_error_set(err, AS_EINPUT,
				  "%s: the record is %s, not a JSON object",
				  shown, json_kind(rec));
		goto done;
	}
	*out = json_incref(rec);
	rc = 0;
done:
	if (rc)
		as_config_redact(cfg, err->msg, sizeof(err->msg));
	json_decref(doc);
	free(shown);
	as_http_client_free(&c);
	as_http_req_free(&r);
	return rc;
}
