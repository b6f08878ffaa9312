/*
 * The source of a dataset: exactly one of file, stdin, exec or http, its
 * format, and for http the request (params, headers, TLS), pagination,
 * rate limit, retries and circuit breaker.
 */
#include "config/config_int.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const format_names[] = {"jsonl", "singer"};
static const char *const method_names[] = {"GET", "POST"};
static const char *const records_from_names[] = {"array", "values"};
static const char *const cursor_format_names[] = {"iso8601", "iso8601_seconds",
						  "epoch", "epoch_ms"};
static const char *const style_names[] = {"none",   "offset",	"page",
					  "cursor", "next_url", "link_header"};

static const field source_fields[] = {
	OTHER("file"),
	OTHER("stdin"),
	OTHER("exec"),
	OTHER("http"),
	ENM(as_source_cfg, "format", format, format_names),
	FLD(as_source_cfg, "stream", T_STR, 0, stream, 0, 0),
};

#define H(...) FLD(as_http_cfg, __VA_ARGS__)
static const field http_fields[] = {
	H("url", T_URL, F_REQUIRED | F_SECRET, url, 0, 0),
	ENM(as_http_cfg, "method", method_post, method_names),
	OTHER("body"),
	OTHER("params"),
	OTHER("headers"),
	H("records", T_PATH, 0, records, 0, 0),
	H("error_path", T_PATH, 0, error_path, 0, 0),
	OTHER("error_retry"),
	ENM(as_http_cfg, "records_from", records_from_values,
	    records_from_names),
	H("record_key_as", T_STR, 0, record_key_as, 0, 0),
	OTHER("pagination"),
	H("concurrency", T_INT32, 0, concurrency, 1, 64),
	H("rate_limit", T_RATE, 0, rate_per_sec, 0, 0),
	H("rate_burst", T_INT, 0, rate_burst, 1, INT64_MAX),
	H("timeout", T_DURATION, 0, timeout_ms, 1, 0),
	H("deadline", T_DURATION, 0, deadline_ms, 0, 0),
	OTHER("retry"),
	OTHER("circuit_breaker"),
	H("item_url", T_URL, F_SECRET, item_url, 0, 0),
	H("ca_bundle", T_STR, 0, ca_bundle, 0, 0),
	H("tls_verify", T_NOT_BOOL, 0, insecure, 0, 0),
	OTHER("auth"),
	OTHER("partitions"),
	ENM(as_http_cfg, "cursor_format", cursor_format, cursor_format_names),
};

static const char *const client_auth_names[] = {"basic", "body"};
static const field auth_fields[] = {
	H("bearer", T_STR, F_SECRET, bearer, 0, 0),
	OTHER("basic"),
	OTHER("oauth2"),
};
static const field basic_fields[] = {
	H("user", T_STR, F_REQUIRED | F_SECRET, user, 0, 0),
	H("password", T_STR, F_REQUIRED | F_SECRET, password, 0, 0),
};
static const field oauth2_fields[] = {
	H("token_url", T_URL, F_REQUIRED | F_SECRET, token_url, 0, 0),
	H("client_id", T_STR, F_REQUIRED | F_SECRET, client_id, 0, 0),
	H("client_secret", T_STR, F_REQUIRED | F_SECRET, client_secret, 0, 0),
	OTHER("scopes"),
	H("audience", T_STR, 0, audience, 0, 0),
	ENM(as_http_cfg, "client_auth", client_auth_body, client_auth_names),
};

static const field page_fields[] = {
	ENM(as_http_cfg, "style", style, style_names),
	H("offset_param", T_STR, 0, offset_param, 0, 0),
	H("limit_param", T_STR, 0, limit_param, 0, 0),
	H("limit", T_INT, 0, limit, 1, INT64_MAX),
	H("page_param", T_STR, 0, page_param, 0, 0),
	H("first_page", T_INT, 0, first_page, 0, INT64_MAX),
	H("cursor_param", T_STR, 0, cursor_param, 0, 0),
	H("cursor_path", T_PATH, 0, cursor_path, 0, 0),
	H("next_url_path", T_PATH, 0, next_url_path, 0, 0),
	H("total_path", T_PATH, 0, total_path, 0, 0),
	H("has_more_path", T_PATH, 0, has_more_path, 0, 0),
	H("stop_path", T_PATH, 0, stop_path, 0, 0),
	H("cursor_from_record", T_PATH, 0, cursor_from_record, 0, 0),
	H("total_tolerance", T_REAL, 0, total_tolerance, 0, 1),
};

static const field retry_fields[] = {
	H("attempts", T_INT32, 0, retry_attempts, 1, 1000),
	H("initial", T_DURATION, 0, retry_initial_ms, 1, 0),
	H("max", T_DURATION, 0, retry_max_ms, 1, 0),
};

static const field breaker_fields[] = {
	H("failures", T_INT32, 0, breaker_failures, 1, 1000000),
};

static bool is_header_name(const char *s)
{
	return *s && strspn(s, WORD_CHARS "!#$%&'*+-.^`|~") == strlen(s);
}

/* params or headers: name -> scalar; names of ${VAR} values are secrets. */
static int read_kv(const sect *s, const char *key, as_http_cfg *h, as_kv **dst,
		   size_t *ndst)
{
	const ynode *m = as_cfg_lookup(s, key, NULL);
	const char *what = strcmp(key, "headers") ? "param" : "header";
	int rc = 0, used;

	if (!m)
		return 0;
	if (m->kind != Y_MAP)
		return as_cfg_bad_value(s, m, key, "a mapping", NULL);
	if (!(*dst = calloc(as_cfg_map_len(m) + 1, sizeof(**dst))))
		return as_cfg_oom(s->c);
	for (size_t i = 0; i < m->nkids && !rc; i += 2) {
		const ynode *kn = m->kids[i], *vn = m->kids[i + 1];
		as_kv *kv = &(*dst)[(*ndst)++];

		if (*what == 'h' && !is_header_name(kn->text))
			return as_cfg_fail(s->c, kn,
					   "'%s' %s is not a valid header name",
					   SHOWN(kn->text), s->where);
		if (vn->kind != Y_SCALAR)
			return as_cfg_fail(
				s->c, vn, "%s '%s' %s must be a string, got %s",
				what, SHOWN(kn->text), s->where,
				as_cfg_kind_name(vn));
		if (!(kv->key = strdup(kn->text)))
			return as_cfg_oom(s->c);
		rc = as_cfg_expand(s->c, vn, true, &kv->value, &used);
		if (!rc && strpbrk(kv->value, "\r\n"))
			rc = as_cfg_fail(s->c, vn,
					 "%s '%s' %s contains a line break",
					 what, SHOWN(kn->text), s->where);
		if (!rc && used)
			rc = as_cfg_add_unique(s->c, &h->secrets, &h->nsecrets,
					       kv->key);
	}
	return rc;
}

/* records: a.* is records: a with records_from: values; record_key_as
 * needs the values form. */
static int records_shape(const sect *s, as_http_cfg *h)
{
	size_t n = h->records ? strlen(h->records) : 0;

	if (n && (!strcmp(h->records, "*") ||
		  (n > 2 && !strcmp(h->records + n - 2, ".*")))) {
		h->records_from_values = 1;
		if (n == 1) {
			free(h->records);
			h->records = NULL;
		} else {
			h->records[n - 2] = '\0';
		}
	}
	if (h->records && strchr(h->records, '*'))
		return as_cfg_fail(s->c, as_cfg_lookup(s, "records", NULL),
				   "'records' %s may hold '*' only as its last "
				   "part ('items.*')",
				   s->where);
	if (h->record_key_as && !h->records_from_values)
		return as_cfg_fail(s->c,
				   as_cfg_lookup(s, "record_key_as", NULL),
				   "'record_key_as' %s needs records keyed by "
				   "id ('records: items.*' or 'records_from: "
				   "values')",
				   s->where);
	return 0;
}

/* One name: value of a partition (a scalar, ${VAR} expanded). */
static int partition_kv(const sect *s, const ynode *kn, const char *name,
			const ynode *vn, as_http_partition *p)
{
	as_kv *kv = &p->params[p->nparams];
	int rc;

	if (vn->kind != Y_SCALAR)
		return as_cfg_fail(s->c, vn,
				   "partition value '%s' %s must be a scalar, "
				   "got %s",
				   SHOWN(name), s->where, as_cfg_kind_name(vn));
	if (!(kv->key = strdup(name)))
		return as_cfg_oom(s->c);
	p->nparams++;
	rc = as_cfg_expand(s->c, vn, false, &kv->value, NULL);
	(void)kn;
	return rc;
}

/* partitions: [{name: value, ...}, ...] or {param: NAME, values: [...]}. */
static int read_partitions(const sect *s, as_http_cfg *h)
{
	const ynode *k, *v = as_cfg_lookup(s, "partitions", &k);
	const ynode *param = NULL, *values = NULL;
	size_t n;
	int rc = 0;

	if (!v)
		return 0;
	if (v->kind == Y_MAP) {
		for (size_t i = 0; i < v->nkids; i += 2) {
			const char *key = v->kids[i]->text;

			if (!strcmp(key, "param"))
				param = v->kids[i + 1];
			else if (!strcmp(key, "values"))
				values = v->kids[i + 1];
			else
				return as_cfg_fail(
					s->c, v->kids[i],
					"unknown key '%s' in partitions "
					"%s (param, values)",
					SHOWN(key), s->where);
		}
		if (!param || param->kind != Y_SCALAR || !*param->text ||
		    !values || values->kind != Y_SEQ || !values->nkids)
			return as_cfg_fail(
				s->c, v,
				"partitions %s needs 'param' (a name) "
				"and 'values' (a non-empty list)",
				s->where);
		n = values->nkids;
	} else if (v->kind == Y_SEQ && v->nkids) {
		n = v->nkids;
	} else {
		return as_cfg_bad_value(s, v, "partitions",
					"a non-empty list of mappings or "
					"{param, values}",
					NULL);
	}
	if (!(h->partitions = calloc(n, sizeof(*h->partitions))))
		return as_cfg_oom(s->c);
	h->npartitions = n;
	for (size_t i = 0; i < n && !rc; i++) {
		as_http_partition *p = &h->partitions[i];
		const ynode *item = values ? NULL : v->kids[i];

		if (item && (item->kind != Y_MAP || !item->nkids))
			return as_cfg_fail(s->c, item,
					   "each partition %s must be a "
					   "non-empty mapping of params",
					   s->where);
		p->params =
			calloc(item ? item->nkids / 2 : 1, sizeof(*p->params));
		if (!p->params)
			return as_cfg_oom(s->c);
		if (!item) {
			/* Without item, the {param, values} form: param is set.
			 */
			rc = param ? partition_kv(s, param, param->text,
						  values->kids[i], p)
				   : AS_EUSAGE;
			continue;
		}
		for (size_t j = 0; j < item->nkids && !rc; j += 2)
			rc = partition_kv(s, item->kids[j], item->kids[j]->text,
					  item->kids[j + 1], p);
	}
	return rc;
}

/* A credential is a secret even when written in the file. */
static int keep_secret(const sect *s, const char *v)
{
	if (!v || strlen(v) < 3)
		return 0;
	return as_cfg_add_unique(s->c, &s->c->cfg->secret_values,
				 &s->c->cfg->nsecret_values, v);
}

/* auth: exactly one of bearer, basic, oauth2. */
static int read_auth(const dsctx *d, const sect *s, as_http_cfg *h)
{
	static const char *const kinds[] = {"bearer", "basic", "oauth2"};
	char where[WHERE_MAX], where2[WHERE_MAX];
	const ynode *k, *first = NULL;
	sect a, b;
	int rc;

	snprintf(where, sizeof(where), "in auth of dataset '%s'", d->ds->name);
	rc = as_cfg_read_section(s, "auth", where, auth_fields,
				 NELEM(auth_fields), h, &a);
	if (rc || !a.map)
		return rc;
	for (size_t i = 0; i < NELEM(kinds); i++) {
		as_cfg_lookup(&a, kinds[i], &k);
		if (k && first)
			return as_cfg_fail(s->c, k,
					   "'%s' %s conflicts with '%s': give "
					   "one of bearer, basic, oauth2",
					   kinds[i], where, first->text);
		if (k) {
			first = k;
			h->auth = (as_http_auth)(i + 1);
		}
	}
	if (!first)
		return as_cfg_fail(s->c, a.owner,
				   "auth %s needs one of 'bearer', 'basic' or "
				   "'oauth2'",
				   s->where);
	for (size_t i = 0; i < h->nheaders; i++)
		if (!strcasecmp(h->headers[i].key, "authorization"))
			return as_cfg_fail(s->c, first,
					   "'auth' %s conflicts with the "
					   "Authorization header: give one",
					   s->where);
	if (h->auth == AS_AUTH_BEARER)
		return keep_secret(s, h->bearer);
	snprintf(where2, sizeof(where2), "in auth.%s of dataset '%s'",
		 kinds[h->auth - 1], d->ds->name);
	if (h->auth == AS_AUTH_BASIC) {
		rc = as_cfg_read_section(&a, "basic", where2, basic_fields,
					 NELEM(basic_fields), h, &b);
		return rc ? rc : keep_secret(s, h->password);
	}
	rc = as_cfg_read_section(&a, "oauth2", where2, oauth2_fields,
				 NELEM(oauth2_fields), h, &b);
	if (!rc)
		rc = as_cfg_read_list(&b, "scopes", NULL, NULL, &h->scopes,
				      &h->nscopes);
	return rc ? rc : keep_secret(s, h->client_secret);
}

/* Query parameters of the url whose values hold a ${VAR} are secrets by
 * name, like params: masked in messages, left out of checkpoints. */
static int url_secrets(const sect *s, as_http_cfg *h)
{
	const ynode *v = as_cfg_lookup(s, "url", NULL);
	const char *q = v && v->kind == Y_SCALAR ? strchr(v->text, '?') : NULL;
	int rc = 0;

	for (const char *p = q ? q + 1 : NULL; p && *p && *p != '#' && !rc;) {
		size_t n = strcspn(p, "&#");
		const char *eq = memchr(p, '=', n);
		char name[256];

		if (eq && memmem(eq, n - (size_t)(eq - p), "${", 2) &&
		    (size_t)(eq - p) < sizeof(name)) {
			memcpy(name, p, (size_t)(eq - p));
			name[eq - p] = '\0';
			rc = as_cfg_add_unique(s->c, &h->secrets, &h->nsecrets,
					       name);
		}
		p += n + (p[n] == '&');
	}
	return rc;
}

/* A YAML node as JSON: plain true/false/null and numbers keep their type,
 * every other scalar is a string with ${VAR} expanded (a secret). */
static json_t *yaml_json(const sect *s, const ynode *n, int *rc)
{
	json_t *j = NULL;
	char *text = NULL;

	switch (n->kind) {
	case Y_NULL: return json_null();
	case Y_MAP:
		j = json_object();
		for (size_t i = 0; j && !*rc && i < n->nkids; i += 2) {
			json_t *v = yaml_json(s, n->kids[i + 1], rc);

			if (!v || json_object_set_new(j, n->kids[i]->text, v))
				*rc = *rc ? *rc : as_cfg_oom(s->c);
		}
		break;
	case Y_SEQ:
		j = json_array();
		for (size_t i = 0; j && !*rc && i < n->nkids; i++) {
			json_t *v = yaml_json(s, n->kids[i], rc);

			if (!v || json_array_append_new(j, v))
				*rc = *rc ? *rc : as_cfg_oom(s->c);
		}
		break;
	default:
		if ((*rc = as_cfg_expand(s->c, n, true, &text, NULL)))
			break;
		if (!n->quoted && !strcmp(text, "true"))
			j = json_true();
		else if (!n->quoted && !strcmp(text, "false"))
			j = json_false();
		else if (!n->quoted && *text &&
			 strspn(text + (*text == '-'), "0123456789") ==
				 strlen(text + (*text == '-')) &&
			 text[*text == '-'] && strlen(text) < 19)
			j = json_integer(strtoll(text, NULL, 10));
		else
			j = json_string(text);
		free(text);
		break;
	}
	if (!j && !*rc)
		*rc = as_cfg_oom(s->c);
	if (*rc) {
		json_decref(j);
		return NULL;
	}
	return j;
}

static int read_body(const sect *s, as_http_cfg *h)
{
	const ynode *k, *v = as_cfg_lookup(s, "body", &k);
	json_t *j;
	int rc = 0;

	if (!v)
		return 0;
	if (!h->method_post)
		return as_cfg_fail(s->c, k, "'body' %s needs method: POST",
				   s->where);
	if (v->kind != Y_MAP)
		return as_cfg_bad_value(s, v, "body", "a mapping", NULL);
	if (!(j = yaml_json(s, v, &rc)))
		return rc;
	h->body = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	return h->body ? 0 : as_cfg_oom(s->c);
}

/* 1 when {page_cursor} is in the url, a param or the body. */
static int has_page_cursor(const as_http_cfg *h)
{
	int found = strstr(h->url, "{page_cursor}") != NULL ||
		    (h->body && strstr(h->body, "{page_cursor}"));

	for (size_t i = 0; i < h->nparams && !found; i++)
		found = strstr(h->params[i].value, "{page_cursor}") != NULL;
	return found;
}

/* What each pagination style cannot do without. */
static int page_rules(const sect *s, const as_http_cfg *h)
{
	const char *need = NULL;

	switch (h->style) {
	case AS_PAGE_OFFSET:
		if (!h->offset_param)
			need = "'offset_param'";
		else if (!h->limit_param && !h->limit)
			need = "'limit_param' or 'limit'";
		break;
	case AS_PAGE_PAGE: need = h->page_param ? NULL : "'page_param'"; break;
	case AS_PAGE_CURSOR:
		if (h->cursor_path && h->cursor_from_record)
			return as_cfg_fail(
				s->c,
				as_cfg_lookup(s, "cursor_from_record", NULL),
				"'cursor_from_record' %s conflicts with "
				"'cursor_path': give one of them",
				s->where);
		need = !h->cursor_param && !has_page_cursor(h)
			       ? "'cursor_param' (or {page_cursor} in the url, "
				 "a param or the body)"
		       : !h->cursor_path && !h->cursor_from_record
			       ? "'cursor_path' or 'cursor_from_record'"
			       : NULL;
		break;
	case AS_PAGE_NEXT_URL:
		need = h->next_url_path ? NULL : "'next_url_path'";
		break;
	default: break;
	}
	if (!need && h->cursor_from_record && h->style != AS_PAGE_CURSOR)
		return as_cfg_fail(
			s->c, as_cfg_lookup(s, "cursor_from_record", NULL),
			"'cursor_from_record' %s needs style: cursor",
			s->where);
	if (!need && h->style == AS_PAGE_NONE &&
	    (h->has_more_path || h->stop_path))
		return as_cfg_fail(
			s->c,
			as_cfg_lookup(s,
				      h->has_more_path ? "has_more_path"
						       : "stop_path",
				      NULL),
			"'%s' %s needs a pagination style other than 'none'",
			h->has_more_path ? "has_more_path" : "stop_path",
			s->where);
	if (!need)
		return 0;
	return as_cfg_fail(s->c, as_cfg_lookup(s, "style", NULL),
			   "pagination style '%s' %s needs %s",
			   style_names[h->style], s->where, need);
}

static int parse_http_parts(const dsctx *d, const sect *s, as_http_cfg *h)
{
	char where[WHERE_MAX];
	const ynode *k;
	sect p;
	int rc;

	snprintf(where, sizeof(where), "in pagination of dataset '%s'",
		 d->ds->name);
	rc = as_cfg_read_section(s, "pagination", where, page_fields,
				 NELEM(page_fields), h, &p);
	if (!rc && p.map)
		rc = page_rules(&p, h);
	if (rc)
		return rc;
	snprintf(where, sizeof(where), "in retry of dataset '%s'", d->ds->name);
	rc = as_cfg_read_section(s, "retry", where, retry_fields,
				 NELEM(retry_fields), h, &p);
	if (!rc && h->retry_max_ms < h->retry_initial_ms) {
		const ynode *v = p.map ? as_cfg_lookup(&p, "max", &k) : NULL;

		return as_cfg_fail(s->c, v ? v : p.owner,
				   "'max' %s must be at least 'initial'",
				   where);
	}
	snprintf(where, sizeof(where), "in circuit_breaker of dataset '%s'",
		 d->ds->name);
	if (!rc)
		rc = as_cfg_read_section(s, "circuit_breaker", where,
					 breaker_fields, NELEM(breaker_fields),
					 h, &p);
	return rc;
}

static int parse_http(const dsctx *d, const sect *src, as_http_cfg *h)
{
	char where[WHERE_MAX];
	sect s;
	int rc;

	snprintf(where, sizeof(where), "in http source of dataset '%s'",
		 d->ds->name);
	rc = as_cfg_read_section(src, "http", where, http_fields,
				 NELEM(http_fields), h, &s);
	if (!rc && !s.map)
		return as_cfg_missing(src, "http");
	if (!rc)
		rc = records_shape(&s, h);
	if (!rc)
		rc = as_cfg_read_list(&s, "error_retry", NULL, NULL,
				      &h->error_retry, &h->nerror_retry);
	if (!rc && h->nerror_retry && !h->error_path)
		rc = as_cfg_fail(s.c, as_cfg_lookup(&s, "error_retry", NULL),
				 "'error_retry' %s needs 'error_path'",
				 s.where);
	if (!rc)
		rc = url_secrets(&s, h);
	if (!rc)
		rc = read_kv(&s, "params", h, &h->params, &h->nparams);
	if (!rc)
		rc = read_kv(&s, "headers", h, &h->headers, &h->nheaders);
	if (!rc)
		rc = read_body(&s, h);
	if (!rc)
		rc = read_auth(d, &s, h);
	if (!rc)
		rc = read_partitions(&s, h);
	return rc ? rc : parse_http_parts(d, &s, h);
}

static int source_kind(const dsctx *d, const sect *s, as_source_cfg *src)
{
	static const char *const kinds[] = {"file", "stdin", "exec", "http"};
	static const field file_f =
		FLD(as_source_cfg, "file", T_STR, F_REQUIRED, path, 0, 0);
	static const field exec_f =
		FLD(as_source_cfg, "exec", T_STR, F_REQUIRED, command, 0, 0);
	static const field stdin_f = {"stdin", T_BOOL, F_REQUIRED, 0,
				      0,       0,      NULL,	   0};
	const ynode *first = NULL, *k;
	int rc, on = 0;

	for (size_t i = 0; i < NELEM(kinds); i++) {
		as_cfg_lookup(s, kinds[i], &k);
		if (k && first)
			return as_cfg_fail(
				s->c, k,
				"'%s' %s conflicts with '%s': give exactly one of file, stdin, "
				"exec, http",
				kinds[i], s->where, first->text);
		if (k) {
			first = k;
			src->kind = (as_source_kind)(i + 1);
		}
	}
	if (!first)
		return as_cfg_fail(
			s->c, s->owner,
			"source %s needs one of 'file', 'stdin', 'exec' or 'http'",
			d->where);
	switch (src->kind) {
	case AS_SOURCE_FILE:
		rc = as_cfg_read_fields(s, &file_f, 1, src);
		return rc ? rc : as_cfg_resolve_path(s->c, &src->path);
	case AS_SOURCE_STDIN:
		rc = as_cfg_read_fields(s, &stdin_f, 1, &on);
		if (!rc && !on)
			rc = as_cfg_fail(s->c, as_cfg_lookup(s, "stdin", NULL),
					 "'stdin' %s must be true", s->where);
		return rc;
	case AS_SOURCE_EXEC: return as_cfg_read_fields(s, &exec_f, 1, src);
	default: return parse_http(d, s, &src->http);
	}
}

int as_cfg_parse_source(dsctx *d)
{
	as_source_cfg *src = &d->ds->source;
	const ynode *k, *v = as_cfg_lookup(&d->s, "source", &k);
	char where[WHERE_MAX],
		*text = NULL; /* as_cfg_expand() leaves it on failure */
	sect s;
	int rc;

	if (!v)
		return as_cfg_missing(&d->s, "source");
	src->loc = as_cfg_loc(d->s.c, k);
	if (v->kind == Y_SCALAR) { /* source: stdin */
		rc = as_cfg_expand(d->s.c, v, false, &text, NULL);
		if (!rc && strcmp(text, "stdin"))
			rc = as_cfg_bad_value(&d->s, v, "source",
					      "a mapping or 'stdin'", text);
		free(text);
		src->kind = AS_SOURCE_STDIN;
		return rc;
	}
	snprintf(where, sizeof(where), "in source of dataset '%s'",
		 d->ds->name);
	rc = as_cfg_read_section(&d->s, "source", where, source_fields,
				 NELEM(source_fields), src, &s);
	if (!rc)
		rc = source_kind(d, &s, src);
	if (rc)
		return rc;
	if (src->format == AS_FORMAT_SINGER && src->kind == AS_SOURCE_HTTP)
		return as_cfg_fail(
			s.c, as_cfg_lookup(&s, "format", NULL),
			"format 'singer' %s is only valid for exec, file and stdin sources",
			where);
	if (src->stream && src->format != AS_FORMAT_SINGER) {
		as_cfg_lookup(&s, "stream", &k);
		return as_cfg_fail(s.c, k, "'stream' %s needs format: singer",
				   where);
	}
	return 0;
}
