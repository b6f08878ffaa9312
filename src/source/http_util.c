/*
 * HTTP source helpers with no network: percent-encoding, URLs that are safe
 * to print or to keep in a checkpoint (secret parameters masked or left
 * out), RFC 8288 Link headers, Retry-After, and dotted paths into a page.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "source/http.h"
#include "util/str.h"

int as_http_encode(as_buf *b, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	int rc = 0;

	for (const unsigned char *p = (const unsigned char *)s; *p && !rc;
	     p++) {
		if (isalnum(*p) || strchr("-._~", *p)) {
			rc = as_buf_addc(b, (char)*p);
		} else {
			char e[3] = {'%', hex[*p >> 4], hex[*p & 15]};

			rc = as_buf_add(b, e, 3);
		}
	}
	return rc;
}

int as_http_is_secret(const as_http_cfg *h, const char *name)
{
	for (size_t i = 0; i < h->nsecrets; i++)
		if (strcmp(h->secrets[i], name) == 0)
			return 1;
	return 0;
}

/* The name of a "name=value" query pair, percent-decoded, into buf. */
static void pair_name(const char *p, size_t n, char *buf, size_t cap)
{
	size_t o = 0;

	for (size_t i = 0; i < n && p[i] != '=' && o + 1 < cap; i++) {
		if (p[i] == '%' && i + 2 < n &&
		    isxdigit((unsigned char)p[i + 1]) &&
		    isxdigit((unsigned char)p[i + 2])) {
			char hx[3] = {p[i + 1], p[i + 2], 0};

			buf[o++] = (char)strtol(hx, NULL, 16);
			i += 2;
		} else {
			buf[o++] = p[i] == '+' ? ' ' : p[i];
		}
	}
	buf[o] = '\0';
}

/* Rewrite the query of url pair by pair: a secret pair is kept with its
 * value masked (mask) or dropped (!mask). */
static char *rewrite_query(const as_http_cfg *h, const char *url, int mask)
{
	const char *q = strchr(url, '?'), *frag, *p;
	as_buf b = AS_BUF_INIT;
	int first = 1;

	if (!q)
		return as_strdup(url);
	frag = strchr(q, '#');
	if (!frag)
		frag = q + strlen(q);
	as_buf_add(&b, url, (size_t)(q - url));
	for (p = q + 1; p < frag;) {
		const char *amp = memchr(p, '&', (size_t)(frag - p));
		size_t n = (size_t)((amp ? amp : frag) - p);
		char name[256];

		pair_name(p, n, name, sizeof(name));
		if (n && !as_http_is_secret(h, name)) {
			as_buf_addc(&b, first ? '?' : '&');
			as_buf_add(&b, p, n);
			first = 0;
		} else if (n && mask) {
			const char *eq = memchr(p, '=', n);

			as_buf_addc(&b, first ? '?' : '&');
			as_buf_add(&b, p, eq ? (size_t)(eq - p) : n);
			as_buf_adds(&b, "=***");
			first = 0;
		}
		p += n + (amp ? 1 : 0);
	}
	as_buf_adds(&b, frag);
	return as_buf_detach(&b);
}

/* The userinfo of url ("user:pass" before '@' in the authority): its
 * offset and length in *at, *len; 0 when there is none. */
static int userinfo(const char *url, size_t *at, size_t *len)
{
	const char *p = strstr(url, "://"), *end, *amp;

	if (!p)
		return 0;
	p += 3;
	end = p + strcspn(p, "/?#");
	amp = NULL;
	for (const char *q = p; q < end; q++)
		if (*q == '@')
			amp = q;
	if (!amp)
		return 0;
	*at = (size_t)(p - url);
	*len = (size_t)(amp - p);
	return 1;
}

char *as_http_redact_url(const as_config *cfg, const as_http_cfg *h,
			 const char *url)
{
	char *out = rewrite_query(h, url, 1);
	size_t at, len;

	/* A password in the URL is masked whatever its origin. */
	if (out && userinfo(out, &at, &len)) {
		const char *colon = memchr(out + at, ':', len);

		if (colon) {
			size_t from = (size_t)(colon + 1 - out), to = at + len;
			as_buf b = AS_BUF_INIT;

			as_buf_add(&b, out, from);
			as_buf_adds(&b, "***");
			as_buf_adds(&b, out + to);
			free(out);
			out = as_buf_detach(&b);
		}
	}
	if (out)
		as_config_redact(cfg, out, strlen(out) + 1);
	return out;
}

char *as_http_strip_secrets(const as_http_cfg *h, const char *url)
{
	char *out = rewrite_query(h, url, 0);
	size_t at, len;

	if (out && userinfo(out, &at, &len))
		memmove(out + at, out + at + len + 1,
			strlen(out + at + len + 1) + 1);
	return out;
}

/* 1 if the query of url has a pair named name. */
static int has_param(const char *url, const char *name)
{
	const char *q = strchr(url, '?');
	char got[256];

	while (q && *q && *q != '#') {
		const char *p = q + 1;
		size_t n = strcspn(p, "&#");

		pair_name(p, n, got, sizeof(got));
		if (strcmp(got, name) == 0)
			return 1;
		q = p[n] == '&' ? p + n : NULL;
	}
	return 0;
}

char *as_http_add_secrets(const as_http_cfg *h, const char *url)
{
	const char *frag = strchr(url, '#');
	size_t head = frag ? (size_t)(frag - url) : strlen(url), at, len, uat,
	       ulen;
	as_buf b = AS_BUF_INIT;
	int has_query = memchr(url, '?', head) != NULL;
	const char *q = strchr(h->url, '?');

	/* The configured url's userinfo, on its own origin only. */
	if (userinfo(h->url, &at, &len) && !userinfo(url, &uat, &ulen) &&
	    as_http_same_origin(url, h->url) && strstr(url, "://")) {
		size_t host = (size_t)(strstr(url, "://") + 3 - url);

		as_buf_add(&b, url, host);
		as_buf_add(&b, h->url + at, len + 1);
		as_buf_add(&b, url + host, head - host);
	} else {
		as_buf_add(&b, url, head);
	}
	/* The configured url's own secret query pairs, as written there. */
	for (const char *p = q ? q + 1 : NULL; p && *p && *p != '#';) {
		size_t n = strcspn(p, "&#");
		char name[256];

		pair_name(p, n, name, sizeof(name));
		if (n && as_http_is_secret(h, name) && !has_param(url, name) &&
		    !memmem(p, n, "{cursor}", 8)) {
			as_buf_addc(&b, has_query ? '&' : '?');
			has_query = 1;
			as_buf_add(&b, p, n);
		}
		p += n + (p[n] == '&');
	}
	for (size_t i = 0; i < h->nparams; i++) {
		const as_kv *kv = &h->params[i];

		if (!as_http_is_secret(h, kv->key) || has_param(url, kv->key) ||
		    strstr(kv->value, "{cursor}"))
			continue;
		as_buf_addc(&b, has_query ? '&' : '?');
		has_query = 1;
		as_http_encode(&b, kv->key);
		as_buf_addc(&b, '=');
		as_http_encode(&b, kv->value);
	}
	if (frag)
		as_buf_adds(&b, frag);
	return as_buf_detach(&b);
}

/* ---- RFC 8288 Link ------------------------------------------------------ */

static const char *skip_ws(const char *p)
{
	while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
		p++;
	return p;
}

/* A token or quoted-string at p into out (unescaped); returns the end. */
static const char *param_value(const char *p, as_buf *out)
{
	as_buf_reset(out);
	if (*p == '"') {
		for (p++; *p && *p != '"'; p++) {
			if (*p == '\\' && p[1])
				p++;
			as_buf_addc(out, *p);
		}
		return *p ? p + 1 : p;
	}
	while (*p && !strchr(";, \t", *p))
		as_buf_addc(out, *p++);
	return p;
}

/* 1 if the space-separated relation types in rels include "next". */
static int rel_has_next(const char *rels)
{
	const char *p = rels;

	while (*(p = skip_ws(p))) {
		size_t n = strcspn(p, " \t\r\n");

		if (n == 4 && strncasecmp(p, "next", 4) == 0)
			return 1;
		p += n;
	}
	return 0;
}

char *as_http_link_next(const char *link)
{
	as_buf val = AS_BUF_INIT;
	const char *p = link;
	char *found = NULL;

	while (!found && (p = strchr(p, '<'))) {
		const char *uri = p + 1, *end = strchr(uri, '>'), *q;
		int rel_seen = 0, next = 0;

		if (!end)
			break;
		/* The link's parameters: ; name[=token|"quoted"] ... */
		for (q = skip_ws(end + 1); *q == ';'; q = skip_ws(q)) {
			const char *name = q = skip_ws(q + 1);
			size_t nlen;

			while (*q && !strchr("=;, \t", *q))
				q++;
			nlen = (size_t)(q - name);
			q = skip_ws(q);
			as_buf_reset(&val);
			if (*q == '=')
				q = param_value(skip_ws(q + 1), &val);
			/* Only the first rel parameter counts (RFC 8288 3.3).
			 */
			if (nlen == 3 && strncasecmp(name, "rel", 3) == 0 &&
			    !rel_seen) {
				rel_seen = 1;
				next = rel_has_next(as_buf_cstr(&val));
			}
		}
		if (next)
			found = as_strndup(uri, (size_t)(end - uri));
		p = q;
	}
	as_buf_free(&val);
	return found;
}

/* ---- URLs --------------------------------------------------------------- */

char *as_http_resolve(const char *base, const char *ref)
{
	CURLU *u = curl_url();
	char *got = NULL, *out = NULL;

	if (!u)
		return NULL;
	if (curl_url_set(u, CURLUPART_URL, base, 0) == CURLUE_OK &&
	    curl_url_set(u, CURLUPART_URL, ref, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_URL, &got, 0) == CURLUE_OK)
		out = as_strdup(got);
	curl_free(got);
	curl_url_cleanup(u);
	return out;
}

static int origin(const char *url, char **scheme, char **host, char **port)
{
	CURLU *u = curl_url();
	int ok;

	*scheme = *host = *port = NULL;
	if (!u)
		return 0;
	ok = curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
	     curl_url_get(u, CURLUPART_SCHEME, scheme, 0) == CURLUE_OK &&
	     curl_url_get(u, CURLUPART_HOST, host, 0) == CURLUE_OK &&
	     curl_url_get(u, CURLUPART_PORT, port, CURLU_DEFAULT_PORT) ==
		     CURLUE_OK;
	curl_url_cleanup(u);
	return ok;
}

int as_http_same_origin(const char *a, const char *b)
{
	char *s1, *h1, *p1, *s2, *h2, *p2;
	int ok1 = origin(a, &s1, &h1, &p1), ok2 = origin(b, &s2, &h2, &p2);
	int same = ok1 && ok2 && strcasecmp(s1, s2) == 0 &&
		   strcasecmp(h1, h2) == 0 && strcmp(p1, p2) == 0;

	curl_free(s1);
	curl_free(h1);
	curl_free(p1);
	curl_free(s2);
	curl_free(h2);
	curl_free(p2);
	return same;
}

/* ---- Retry-After, JSON paths -------------------------------------------- */

double as_http_retry_after(const char *value)
{
	const char *p = skip_ws(value);
	char *end;
	time_t t;

	if (isdigit((unsigned char)*p)) {
		double d = strtod(p, &end);

		return *skip_ws(end) ? -1 : d;
	}
	t = curl_getdate(p, NULL);
	if (t == (time_t)-1)
		return -1;
	return t > time(NULL) ? (double)(t - time(NULL)) : 0;
}

json_t *as_http_json_path(json_t *root, const char *path)
{
	const char *p = path;
	json_t *v = root;

	while (v && *p) {
		size_t n = strcspn(p, ".");
		char seg[256];

		if (n >= sizeof(seg))
			return NULL;
		memcpy(seg, p, n);
		seg[n] = '\0';
		if (json_is_object(v)) {
			v = json_object_get(v, seg);
		} else if (json_is_array(v) && n &&
			   strspn(seg, "0123456789") == n) {
			v = json_array_get(v, (size_t)strtoull(seg, NULL, 10));
		} else {
			return NULL;
		}
		p += n + (p[n] == '.');
	}
	return v;
}

int64_t as_http_json_count(const json_t *v)
{
	if (json_is_integer(v))
		return json_integer_value(v) >= 0 ? json_integer_value(v) : -1;
	if (json_is_real(v)) {
		double d = json_real_value(v);

		return d >= 0 && d < 9e18 && d == (double)(int64_t)d
			       ? (int64_t)d
			       : -1;
	}
	if (json_is_string(v)) {
		const char *s = json_string_value(v);
		size_t n = strspn(s, "0123456789");

		return n && n < 19 && !s[n] ? (int64_t)strtoll(s, NULL, 10)
					    : -1;
	}
	return -1;
}
