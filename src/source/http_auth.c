/*
 * HTTP source authentication: the request headers (with a bearer token),
 * and OAuth2 client credentials (RFC 6749 4.4): the token is fetched from
 * token_url before the first request, kept for the run, renewed shortly
 * before expires_in runs out and once on a 401, and never printed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "source/http.h"
#include "util/log.h"
#include "util/proc.h"
#include "util/str.h"
#include "util/time.h"

#define TOKEN_BODY_MAX (1024u * 1024)
#define RENEW_MARGIN_MS 60000 /* at most; a fifth of a short lifetime */

static int add_header(struct curl_slist **l, const char *name,
		      const char *value)
{
	char *line = *value ? as_sprintf("%s: %s", name, value)
			    : as_sprintf("%s;", name);
	struct curl_slist *n = line ? curl_slist_append(*l, line) : NULL;

	free(line);
	if (!n)
		return AS_ENOMEM;
	*l = n;
	return 0;
}

int as_http_set_headers(as_http_client *c, const char *token)
{
	const as_http_cfg *h = c->h;
	struct curl_slist *l = NULL, **kept;
	int has_accept = 0, has_type = 0, rc = 0;
	char *bearer = NULL;

	for (size_t i = 0; i < h->nheaders && !rc; i++) {
		has_accept |= strcasecmp(h->headers[i].key, "accept") == 0;
		has_type |= strcasecmp(h->headers[i].key, "content-type") == 0;
		rc = add_header(&l, h->headers[i].key, h->headers[i].value);
	}
	if (!rc && !has_accept)
		rc = add_header(&l, "Accept", "application/json");
	if (!rc && h->method_post && !has_type)
		rc = add_header(&l, "Content-Type", "application/json");
	if (!rc && token) {
		bearer = as_sprintf("Bearer %s", token);
		rc = bearer ? add_header(&l, "Authorization", bearer)
			    : AS_ENOMEM;
		if (bearer)
			memset(bearer, 0, strlen(bearer));
		free(bearer);
	}
	if (rc) {
		curl_slist_free_all(l);
		return rc;
	}
	if (c->headers) {
		kept = realloc(c->retired,
			       (c->nretired + 1) * sizeof(*c->retired));
		if (!kept) {
			curl_slist_free_all(l);
			return AS_ENOMEM;
		}
		c->retired = kept;
		c->retired[c->nretired++] = c->headers;
	}
	c->headers = l;
	return 0;
}

void as_http_auth_redact(const as_http_client *c, char *msg, size_t cap)
{
	size_t tl, len;
	char *p;

	if (!c->token || (tl = strlen(c->token)) < 3 || !msg || !cap)
		return;
	len = strnlen(msg, cap - 1);
	while ((p = strstr(msg, c->token))) {
		memcpy(p, "***", 3);
		memmove(p + 3, p + tl, len - (size_t)(p - msg) - tl + 1);
		len -= tl - 3;
	}
}

void as_http_auth_free(as_http_client *c)
{
	for (size_t i = 0; i < c->nretired; i++)
		curl_slist_free_all(c->retired[i]);
	free(c->retired);
	if (c->token) {
		memset(c->token, 0, strlen(c->token));
		free(c->token);
	}
	c->retired = NULL;
	c->nretired = 0;
	c->token = NULL;
}

static size_t on_data(char *p, size_t size, size_t n, void *ud)
{
	return as_buf_add(ud, p, size * n) ? 0 : size * n;
}

static void add_form(as_buf *b, const char *name, const char *value)
{
	if (b->len)
		as_buf_addc(b, '&');
	as_buf_adds(b, name);
	as_buf_addc(b, '=');
	as_http_encode(b, value);
}

/* The form of the token request (RFC 6749 4.4.2). */
static char *token_form(const as_http_cfg *h)
{
	as_buf b = AS_BUF_INIT;

	add_form(&b, "grant_type", "client_credentials");
	if (h->nscopes) {
		as_buf sc = AS_BUF_INIT;

		for (size_t i = 0; i < h->nscopes; i++) {
			if (i)
				as_buf_addc(&sc, ' ');
			as_buf_adds(&sc, h->scopes[i]);
		}
		add_form(&b, "scope", as_buf_cstr(&sc));
		as_buf_free(&sc);
	}
	if (h->audience)
		add_form(&b, "audience", h->audience);
	if (h->client_auth_body) {
		add_form(&b, "client_id", h->client_id);
		add_form(&b, "client_secret", h->client_secret);
	}
	return as_buf_detach(&b);
}

/* The token request on e: POST form to token_url, the body into *body,
 * the client's credentials as HTTP Basic unless client_auth_body. */
static void token_request(const as_http_cfg *h, CURL *e, struct curl_slist *hd,
			  const char *form, as_buf *body, char *errbuf)
{
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_URL, h->token_url);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, hd);
	curl_easy_setopt(e, CURLOPT_POSTFIELDS, form);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, body);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS,
			 (long)(h->timeout_ms > 0 ? h->timeout_ms : 30000));
	curl_easy_setopt(e, CURLOPT_USERAGENT, "atomsync/" ATOMSYNC_VERSION);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, h->insecure ? 0L : 1L);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, h->insecure ? 0L : 2L);
	if (h->ca_bundle)
		curl_easy_setopt(e, CURLOPT_CAINFO, h->ca_bundle);
	if (!h->client_auth_body) {
		curl_easy_setopt(e, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
		curl_easy_setopt(e, CURLOPT_USERNAME, h->client_id);
		curl_easy_setopt(e, CURLOPT_PASSWORD, h->client_secret);
	}
}

/* The token endpoint's answer (status, body): 0 with *token (owned) and
 * *expires_in, 1 retryable, 2 not; why says what. */
static int token_response(long status, const as_buf *body, char **token,
			  int64_t *expires_in, char *why, size_t cap)
{
	json_t *doc, *tok, *exp, *type;
	int kind = 2;

	doc = json_loadb(body->data ? body->data : "", body->len, 0, NULL);
	if (status < 200 || status >= 300) {
		json_t *err = json_object_get(doc, "error");

		snprintf(why, cap, "HTTP %ld%s%s", status,
			 json_is_string(err) ? ": " : "",
			 json_is_string(err) ? json_string_value(err) : "");
		json_decref(doc);
		return status == 408 || status == 429 || status >= 500 ? 1 : 2;
	}
	tok = json_object_get(doc, "access_token");
	exp = json_object_get(doc, "expires_in");
	type = json_object_get(doc, "token_type");
	if (!json_is_string(tok) || !json_string_length(tok)) {
		snprintf(why, cap, "the response has no access_token");
	} else if (json_is_string(type) &&
		   strcasecmp(json_string_value(type), "bearer")) {
		snprintf(why, cap, "token_type '%.40s', not Bearer",
			 json_string_value(type));
	} else if (exp && as_http_json_count(exp) < 0) {
		snprintf(why, cap, "expires_in is not a number of seconds");
	} else if (!(*token = as_strdup(json_string_value(tok)))) {
		snprintf(why, cap, "out of memory");
	} else {
		*expires_in = exp ? as_http_json_count(exp) : 0;
		kind = 0;
	}
	json_decref(doc);
	return kind;
}

/* One attempt: 0 with the token, 1 retryable, 2 not; why says what. */
static int token_attempt(as_http_client *c, const char *form, char **token,
			 int64_t *expires_in, char *why, size_t cap)
{
	CURL *e = curl_easy_init();
	struct curl_slist *hd = NULL;
	char errbuf[CURL_ERROR_SIZE] = "";
	as_buf body = AS_BUF_INIT;
	long status = 0;
	CURLcode cc;
	int kind = 2;

	*token = NULL;
	*expires_in = 0;
	if (!e || !(hd = curl_slist_append(NULL, "Accept: application/json"))) {
		snprintf(why, cap, "out of memory");
		goto done;
	}
	as_buf_init(&body, TOKEN_BODY_MAX);
	token_request(c->h, e, hd, form, &body, errbuf);
	cc = curl_easy_perform(e);
	curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
	if (cc != CURLE_OK) {
		snprintf(why, cap, "%s",
			 *errbuf ? errbuf : curl_easy_strerror(cc));
		kind = 1;
		goto done;
	}
	kind = token_response(status, &body, token, expires_in, why, cap);
done:
	/* The body held the token: wipe it before it is freed. */
	if (body.data)
		memset(body.data, 0, body.len);
	as_buf_free(&body);
	curl_slist_free_all(hd);
	if (e)
		curl_easy_cleanup(e);
	return kind;
}

static int fetch_token(as_http_client *c, as_error *err)
{
	const as_http_cfg *h = c->h;
	char *form = token_form(h), *token = NULL, why[512] = "";
	char *shown = as_http_redact_url(c->cfg, h, h->token_url);
	int64_t expires_in = 0, wait = h->retry_initial_ms;
	int kind = 2, attempt;

	for (attempt = 1; form; attempt++) {
		kind = token_attempt(c, form, &token, &expires_in, why,
				     sizeof(why));
		if (kind != 1 || attempt >= h->retry_attempts || as_interrupted)
			break;
		as_debug("oauth2 token: %s; attempt %d in %lld ms", why,
			 attempt + 1, (long long)wait);
		as_sleep_ms(wait);
		wait = wait * 2 < h->retry_max_ms ? wait * 2 : h->retry_max_ms;
	}
	if (form) {
		memset(form, 0, strlen(form));
		free(form);
	}
	if (kind == 0 && !as_http_set_headers(c, token)) {
		if (c->token) {
			memset(c->token, 0, strlen(c->token));
			free(c->token);
		}
		c->token = token;
		c->token_gen++;
		c->token_renew = 0;
		if (expires_in > 0) {
			int64_t life = expires_in * 1000,
				margin = life / 5 < RENEW_MARGIN_MS
						 ? life / 5
						 : RENEW_MARGIN_MS;

			c->token_renew = as_mono_ms() + life - margin;
		}
		as_debug("oauth2: access token %d fetched (expires in %lld s)",
			 c->token_gen, (long long)expires_in);
		free(shown);
		return 0;
	}
	free(token);
	if (kind == 0)
		snprintf(why, sizeof(why), "out of memory");
	as_error_set(err, AS_ESOURCE, "oauth2 token from %s: %s",
		     shown ? shown : "token_url", why);
	if (kind == 1 && attempt > 1) {
		size_t n = strlen(err->msg);

		snprintf(err->msg + n, sizeof(err->msg) - n,
			 " after %d attempts", attempt);
	}
	as_config_redact(c->cfg, err->msg, sizeof(err->msg));
	free(shown);
	return AS_ESOURCE;
}

int as_http_auth_ready(as_http_client *c, as_error *err)
{
	if (c->token && (!c->token_renew || as_mono_ms() < c->token_renew))
		return 0;
	return fetch_token(c, err);
}
