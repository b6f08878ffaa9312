/*
 * The outbox event format (model/outbox.h): `invalidate:` templates parsed
 * into literal text and column references, the run summary, and the JSON
 * payload of a redis event built key by key under the plan's caps.  The
 * stores render the keys (store/<backend>_outbox.c); this file never sees
 * SQL or the config.
 */
#include "model/outbox.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "util/log.h"
#include "util/str.h"

/* ---- templates ---- */

static int add_part(as_tpl *t, const char *s, size_t n, int column)
{
	as_tpl_part *p = realloc(t->parts, (t->nparts + 1) * sizeof(*p));

	if (!p)
		return AS_ENOMEM;
	t->parts = p;
	p[t->nparts].text = as_strndup(s, n);
	p[t->nparts].column = column;
	if (!p[t->nparts].text)
		return AS_ENOMEM;
	t->nparts++;
	return 0;
}

void as_tpl_free(as_tpl *t)
{
	for (size_t i = 0; i < t->nparts; i++)
		free(t->parts[i].text);
	free(t->parts);
	free(t->src);
	memset(t, 0, sizeof(*t));
}

/*
 * "game:{id}" -> "game:" + column id.  "{{" and "}}" are literal braces
 * (Redis Cluster hash tags: "cart:{{{user_id}}}").  A template without a
 * column is a pattern when it has a glob character, else a fixed key; in a
 * template with a column, glob characters are plain text of the key.
 */
int as_tpl_parse(as_tpl *t, const char *src, as_error *err)
{
	as_buf lit = AS_BUF_INIT;
	const char *p = src;
	int ncols = 0, rc = 0;

	memset(t, 0, sizeof(*t));
	if (!*src)
		return as_error_set(err, AS_EUSAGE,
				    "invalidate: an empty template");
	while (*p) {
		if ((p[0] == '{' && p[1] == '{') ||
		    (p[0] == '}' && p[1] == '}')) {
			as_buf_addc(&lit, *p);
			p += 2;
		} else if (*p == '{') {
			const char *end = strchr(p + 1, '}');

			if (!end || end == p + 1 ||
			    memchr(p + 1, '{', (size_t)(end - p - 1))) {
				rc = as_error_set(
					err, AS_EUSAGE,
					"invalidate '%s': expected "
					"{column} (write {{ for a literal brace)",
					src);
				goto done;
			}
			if (lit.len && add_part(t, lit.data, lit.len, 0))
				goto nomem;
			as_buf_reset(&lit);
			if ((rc = add_part(t, p + 1, (size_t)(end - p - 1), 1)))
				goto nomem;
			ncols++;
			p = end + 1;
		} else if (*p == '}') {
			rc = as_error_set(err, AS_EUSAGE,
					  "invalidate '%s': '}' without "
					  "'{' (write }} for a literal brace)",
					  src);
			goto done;
		} else {
			as_buf_addc(&lit, *p++);
		}
	}
	if (lit.len && (rc = add_part(t, lit.data, lit.len, 0)))
		goto nomem;
	if (!(t->src = as_strdup(src)))
		goto nomem;
	if (!ncols) {
		const char *text = t->nparts ? t->parts[0].text : "";

		t->pattern = strpbrk(text, "*?[") != NULL;
		t->fixed = !t->pattern;
	}
	goto done;
nomem:
	rc = as_error_set(err, AS_ENOMEM, "out of memory");
done:
	as_buf_free(&lit);
	if (rc)
		as_tpl_free(t);
	return rc;
}

void as_tpls_free(as_tpl *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		as_tpl_free(&v[i]);
	free(v);
}

/* ---- payloads ---- */

static json_t *summary_object(const as_outbox_summary *s,
			      const as_outbox_plan *plan, int with_patterns)
{
	json_t *o = json_object(), *pats = json_array();

	json_object_set_new(o, "dataset", json_string(s->dataset));
	json_object_set_new(o, "run_id", json_integer(s->run_id));
	json_object_set_new(o, "kind", json_string(s->kind ? s->kind : "sync"));
	json_object_set_new(o, "counts",
			    json_pack("{s:I, s:I, s:I}", "inserted",
				      (json_int_t)s->inserted, "updated",
				      (json_int_t)s->updated, "deleted",
				      (json_int_t)s->deleted));
	for (size_t i = 0; with_patterns && plan && i < plan->ntpls; i++)
		if (plan->tpls[i].pattern)
			json_array_append_new(pats,
					      json_string(plan->tpls[i].src));
	json_object_set_new(o, "patterns", pats);
	return o;
}

char *as_outbox_summary_json(const as_outbox_summary *s,
			     const as_outbox_plan *plan, int64_t keys_count)
{
	json_t *o = summary_object(s, plan, 1);
	char *text;

	json_object_set_new(o, "keys_count", json_integer(keys_count));
	text = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return text;
}

/* The summary object without its closing brace, then "keys":[ ... */
int as_payload_begin(as_payload *p, const as_outbox_summary *s,
		     const as_outbox_plan *plan, int with_patterns,
		     as_error *err)
{
	json_t *o = summary_object(s, plan, with_patterns);
	char *text = json_dumps(o, JSON_COMPACT);

	json_decref(o);
	p->max_keys =
		plan && plan->max_keys ? plan->max_keys : AS_OUTBOX_MAX_KEYS;
	p->max_payload = plan && plan->max_payload ? plan->max_payload
						   : AS_OUTBOX_MAX_PAYLOAD;
	as_buf_init(&p->buf, p->max_payload + 4096);
	p->nkeys = 0;
	if (!text || as_buf_add(&p->buf, text, strlen(text) - 1) ||
	    as_buf_adds(&p->buf, ",\"keys\":[")) {
		free(text);
		return as_error_set(err, AS_ENOMEM, "outbox: out of memory");
	}
	free(text);
	return 0;
}

/* Length of the UTF-8 sequence at s (at most n bytes), 0 when invalid. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
	size_t len;
	uint32_t cp;

	if (s[0] < 0x80)
		return 1;
	if ((s[0] & 0xE0) == 0xC0) {
		len = 2;
		cp = s[0] & 0x1F;
	} else if ((s[0] & 0xF0) == 0xE0) {
		len = 3;
		cp = s[0] & 0x0F;
	} else if ((s[0] & 0xF8) == 0xF0) {
		len = 4;
		cp = s[0] & 0x07;
	} else {
		return 0;
	}
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xC0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3F);
	}
	if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) ||
	    (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
	    (cp >= 0xD800 && cp <= 0xDFFF))
		return 0;
	return len;
}

int as_payload_add_key(as_payload *p, const char *k, size_t len, as_error *err)
{
	const unsigned char *s = (const unsigned char *)k;
	size_t mark = p->buf.len;
	int rc = 0;

	if (p->nkeys)
		rc |= as_buf_addc(&p->buf, ',');
	rc |= as_buf_addc(&p->buf, '"');
	for (size_t i = 0; i < len && !rc;) {
		size_t n = utf8_len(s + i, len - i);

		if (!n) {
			p->buf.len = mark;
			as_warn("outbox: a key of %zu bytes is not valid UTF-8 and was "
				"not recorded",
				len);
			return 0;
		}
		if (s[i] == '"' || s[i] == '\\')
			rc |= as_buf_addc(&p->buf, '\\') |
			      as_buf_addc(&p->buf, (char)s[i]);
		else if (s[i] < 0x20)
			rc |= as_buf_printf(&p->buf, "\\u%04x", s[i]);
		else
			rc |= as_buf_add(&p->buf, s + i, n);
		i += n;
	}
	rc |= as_buf_addc(&p->buf, '"');
	if (rc)
		return as_error_set(err, AS_ENOMEM,
				    "outbox: a payload over %zu MiB",
				    p->max_payload >> 20);
	p->nkeys++;
	return 0;
}

int as_payload_full(const as_payload *p)
{
	return p->nkeys >= p->max_keys || p->buf.len >= p->max_payload;
}

int as_payload_end(as_payload *p, as_error *err)
{
	if (as_buf_printf(&p->buf, "],\"keys_count\":%lld}",
			  (long long)p->nkeys))
		return as_error_set(err, AS_ENOMEM, "outbox: out of memory");
	return 0;
}

void as_payload_free(as_payload *p)
{
	as_buf_free(&p->buf);
}

void as_outbox_plan_free(as_outbox_plan *p)
{
	if (!p)
		return;
	as_tpls_free(p->tpls, p->ntpls);
	free(p->notify);
	memset(p, 0, sizeof(*p));
}
