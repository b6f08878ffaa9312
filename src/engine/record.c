/*
 * From a JSON record to a typed row: find each column's value by its dotted
 * path, check it against the declared type (a wrong type is a named error,
 * invariant 9, never a silent coercion), and hash the row's content for
 * `_atomsync_hash` so unchanged rows are never rewritten (invariant 5).
 */
#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"
#include "engine/schema.h"
#include "util/hash.h"
#include "util/jflat.h"
#include "util/str.h"
#include "util/time.h"

/* Per-thread buffer for hashing a row; freed when its thread exits. */
static __thread as_buf scratch;
static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;

static void scratch_free(void *p)
{
	free(p);
}

static void scratch_init(void)
{
	pthread_key_create(&scratch_key, scratch_free);
}

void as_batch_init(as_batch *b)
{
	memset(b, 0, sizeof(*b));
	as_arena_init(&b->arena);
	as_arena_init(&b->arena2);
}

void as_batch_reset(as_batch *b)
{
	b->nrows = 0;
	as_arena_reset(&b->arena);
	as_arena_reset(&b->arena2);
	free(b->checkpoint);
	b->checkpoint = NULL;
}

void as_batch_free(as_batch *b)
{
	if (!b)
		return;
	free(b->rows);
	free(b->checkpoint);
	as_arena_free(&b->arena);
	as_arena_free(&b->arena2);
	memset(b, 0, sizeof(*b));
}

/* ---- values ---- */

static const char *json_kind(const json_t *v);

/*
 * The value at a dotted path, in *out (NULL when a step is missing or null:
 * the column is NULL).  A step that is a scalar or an array cannot hold the
 * rest of the path: that record does not have the declared shape, a bad
 * record (invariant 9), not a silent NULL.
 */
static int get_path(json_t *rec, const char *path, json_t **out,
		    const char *where, as_error *err)
{
	const char *seg = path, *dot;
	json_t *v = rec;

	*out = NULL;
	while ((dot = strchr(seg, '.')) != NULL) {
		v = json_object_getn(v, seg, (size_t)(dot - seg));
		if (!v || json_is_null(v))
			return 0;
		if (!json_is_object(v))
			return as_error_set(err, AS_EINPUT,
					    "%s: '%s': '%.*s' is %s, not an "
					    "object",
					    where, path, (int)(dot - path),
					    path, json_kind(v));
		seg = dot + 1;
	}
	*out = json_object_get(v, seg);
	return 0;
}

static const char *json_kind(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT: return "an object";
	case JSON_ARRAY: return "an array";
	case JSON_STRING: return "a string";
	case JSON_INTEGER: return "an integer";
	case JSON_REAL: return "a real";
	case JSON_TRUE:
	case JSON_FALSE: return "a boolean";
	default: return "null";
	}
}

static int set_text(as_val *out, as_arena *a, const char *s, size_t n)
{
	char *p = as_arena_strndup(a, s, n);

	if (!p)
		return AS_ENOMEM;
	out->kind = AS_V_TEXT;
	out->len = (uint32_t)n;
	out->u.s = p;
	return 0;
}

static int set_json(as_val *out, as_arena *a, const json_t *v)
{
	char *s = as_json_compact(v);
	int rc;

	if (!s)
		return AS_ENOMEM;
	rc = set_text(out, a, s, strlen(s));
	as_json_free(s);
	return rc;
}

/* Years 0001-9999 in epoch seconds: a larger integer is probably in
 * milliseconds, and guessing would store a wrong instant. */
#define EPOCH_MIN (-62135596800LL)
#define EPOCH_MAX (253402300799LL)

/*
 * Timestamps are stored as one canonical UTC text with microseconds
 * ("2026-01-01T00:00:00.000000Z"): the same instant is always the same text,
 * and text order is time order, so a cursor on a timestamp column compares
 * correctly (invariant 8).  -1: not a timestamp.
 */
static int set_timestamp(as_val *out, as_arena *a, const json_t *v)
{
	char buf[48];
	int64_t us;

	if (json_is_integer(v)) {
		json_int_t sec = json_integer_value(v);

		if (sec < EPOCH_MIN || sec > EPOCH_MAX)
			return -1;
		us = (int64_t)sec * 1000000;
	} else if (as_parse_iso8601_us(json_string_value(v), &us)) {
		return -1;
	}
	as_format_us(us, buf, sizeof(buf));
	return set_text(out, a, buf, strlen(buf));
}

/* A missing or null value: NULL, but a key or scope column needs one. */
static int missing(const as_col *c, const char *where, as_error *err)
{
	if (c->flags & AS_COL_KEY)
		return as_error_set(err, AS_EINPUT, "%s: missing key '%s'",
				    where, c->path ? c->path : c->name);
	/* A scoped run replaces whole scopes: a record without its
	 * scope belongs to none, and would never be replaced. */
	if (c->flags & AS_COL_SCOPE)
		return as_error_set(err, AS_EINPUT,
				    "%s: missing scope "
				    "column '%s'",
				    where, c->path ? c->path : c->name);
	return 0;
}

/* An AS_TYPE_AUTO column takes the type of its first value. */
static int infer_type(as_col *c, json_t *v, const char *where, as_error *err)
{
	if (json_is_integer(v))
		c->type = AS_TYPE_INTEGER;
	else if (json_is_string(v))
		c->type = AS_TYPE_TEXT;
	else if (json_is_real(v) && !(c->flags & AS_COL_KEY))
		c->type = AS_TYPE_REAL;
	else if (json_is_boolean(v) && !(c->flags & AS_COL_KEY))
		c->type = AS_TYPE_BOOLEAN;
	else
		return as_error_set(err, AS_EINPUT,
				    "%s: '%s' is %s; a key or scope column "
				    "needs an integer or a string (declare "
				    "it under columns)",
				    where, c->path, json_kind(v));
	return 0;
}

static int bad_timestamp(const as_col *c, json_t *v, const char *where,
			 as_error *err)
{
	if (json_is_integer(v))
		return as_error_set(err, AS_EINPUT,
				    "%s: '%s': %lld is out of range for epoch "
				    "seconds (years 1-9999)",
				    where, c->path,
				    (long long)json_integer_value(v));
	return as_error_set(err, AS_EINPUT,
			    "%s: '%s': \"%.40s\" is not an ISO 8601 "
			    "timestamp",
			    where, c->path, json_string_value(v));
}

static int convert(as_col *c, json_t *v, as_val *out, as_arena *a,
		   const char *where, as_error *err)
{
	const char *want = NULL;
	int rc = 0;

	out->kind = AS_V_NULL;
	out->len = 0;
	if (!v || json_is_null(v))
		return missing(c, where, err);
	/* Kept exact for json columns and the whole record; any other
	 * column would have to round or wrap it. */
	if (c->type != AS_TYPE_JSON && as_json_big_integer(v, &want))
		return as_error_set(err, AS_EINPUT,
				    "%s: '%s': integer %s is beyond 64 bits",
				    where, c->path ? c->path : c->name, want);
	if (c->type == AS_TYPE_AUTO && infer_type(c, v, where, err))
		return err->code;
	switch (c->type) {
	case AS_TYPE_INTEGER:
		if (!json_is_integer(v)) {
			want = "an integer";
			break;
		}
		out->kind = AS_V_INT;
		out->u.i = json_integer_value(v);
		break;
	case AS_TYPE_REAL:
		if (!json_is_number(v)) {
			want = "a number";
			break;
		}
		out->kind = AS_V_REAL;
		out->u.r = json_number_value(v);
		break;
	case AS_TYPE_BOOLEAN:
		if (!json_is_boolean(v)) {
			want = "a boolean";
			break;
		}
		out->kind = AS_V_INT;
		out->u.i = json_is_true(v);
		break;
	case AS_TYPE_TEXT:
		if (!json_is_string(v)) {
			want = "a string";
			break;
		}
		rc = set_text(out, a, json_string_value(v),
			      json_string_length(v));
		break;
	case AS_TYPE_TIMESTAMP:
		if (!json_is_string(v) && !json_is_integer(v)) {
			want = "an ISO 8601 timestamp";
			break;
		}
		rc = set_timestamp(out, a, v);
		if (rc == -1)
			return bad_timestamp(c, v, where, err);
		break;
	default: /* json */ rc = set_json(out, a, v); break;
	}
	if (want)
		return as_error_set(err, AS_EINPUT,
				    "%s: '%s': expected %s, got %s", where,
				    c->path, want, json_kind(v));
	if (rc)
		return as_error_set(err, AS_ENOMEM, "%s: out of memory", where);
	return 0;
}

/* ---- inferred columns (engine/schema.c) ---- */

typedef struct map_ctx {
	as_val *vals;
	as_arena *a;
	unsigned flags;
} map_ctx;

static int map_visit(void *ud, as_table *t, const char *name, const char *path,
		     json_t *v, size_t *hint, const char *where, as_error *err)
{
	map_ctx *m = ud;
	ssize_t i = as_schema_find(t, name, hint);
	const char *digits = NULL;
	as_val *out;
	as_col *c;
	int fits, rc = 0;

	if (i < 0) {
		if ((m->flags & AS_MAP_SKIP_UNKNOWN) ||
		    as_schema_configured(t, path))
			return 0;
		err->code = AS_ESCHEMA;
		return AS_ESCHEMA;
	}
	c = &t->cols[i];
	/* Found by its name: a field whose path is that name is the
	 * column's own when the column was made from it. */
	if (!(name == path && c->selfnamed) &&
	    (rc = as_schema_collision(t, c, name, path, err)))
		return rc;
	if (!(c->flags & AS_COL_INFERRED))
		return 0;
	/* A timestamp is parsed once, by set_timestamp (a string that is
	 * not one is the conflict). */
	fits = c->type == AS_TYPE_TIMESTAMP ? json_is_string(v)
					    : as_schema_fits(c->type, v);
	if (fits == -1) {
		err->code = AS_ESCHEMA;
		return AS_ESCHEMA;
	}
	if (!fits)
		return as_error_set(
			err, AS_EINPUT,
			"%s: column '%s' is %s, got %s (field '%s')", where,
			c->name, as_type_name(c->type),
			as_type_name(as_schema_type_of(v)), path);
	if (c->type != AS_TYPE_JSON && as_json_big_integer(v, &digits))
		return as_error_set(err, AS_EINPUT,
				    "%s: '%s': integer %s is beyond 64 bits",
				    where, path, digits);
	out = &m->vals[i];
	switch (c->type) {
	case AS_TYPE_INTEGER:
	case AS_TYPE_REAL:
		/* An integer stays one in a widened column: its hash, and so
		 * the row's, does not change with the widening. */
		if (json_is_integer(v)) {
			out->kind = AS_V_INT;
			out->u.i = json_integer_value(v);
		} else {
			out->kind = AS_V_REAL;
			out->u.r = json_real_value(v);
		}
		break;
	case AS_TYPE_BOOLEAN:
		out->kind = AS_V_INT;
		out->u.i = json_is_true(v);
		break;
	case AS_TYPE_TEXT:
		rc = set_text(out, m->a, json_string_value(v),
			      json_string_length(v));
		break;
	case AS_TYPE_TIMESTAMP:
		rc = set_timestamp(out, m->a, v);
		if (rc == -1)
			return as_error_set(err, AS_EINPUT,
					    "%s: column '%s' is timestamp, got "
					    "text (field '%s')",
					    where, c->name, path);
		break;
	default: rc = set_json(out, m->a, v); break;
	}
	if (rc)
		return as_error_set(err, AS_ENOMEM, "%s: out of memory", where);
	return 0;
}

/* ---- rows ---- */

/* -1 when memory ran out: a hash of part of the row would make a changed
 * row look unchanged, or the reverse. */
static int row_hash(const as_val *v, size_t n, uint64_t *out)
{
	as_buf *b = &scratch;
	char *before = b->data;

	size_t need = 0;
	char *p;

	as_buf_reset(b);
	/* The bytes are those of one as_buf_add per part, written at once:
	 * the same hash, without a capacity check per value. */
	for (size_t i = 0; i < n; i++)
		need += 1 + (v[i].kind == AS_V_TEXT   ? 4 + (size_t)v[i].len
			     : v[i].kind == AS_V_NULL ? 0
						      : 8);
	if (as_buf_reserve(b, need))
		return -1;
	p = b->data;
	for (size_t i = 0; i < n; i++) {
		*p++ = (char)v[i].kind;
		switch (v[i].kind) {
		case AS_V_INT:
			memcpy(p, &v[i].u.i, 8);
			p += 8;
			break;
		case AS_V_REAL:
			memcpy(p, &v[i].u.r, 8);
			p += 8;
			break;
		case AS_V_TEXT:
			memcpy(p, &v[i].len, 4);
			memcpy(p + 4, v[i].u.s, v[i].len);
			p += 4 + v[i].len;
			break;
		default: break;
		}
	}
	b->len = need;
	b->data[need] = '\0';
	if (b->data != before) { /* (re)allocated: track it for thread exit */
		pthread_once(&scratch_once, scratch_init);
		pthread_setspecific(scratch_key, b->data);
	}
	if (b->failed)
		return -1;
	*out = as_hash64(b->data, b->len);
	return 0;
}

static void trim(const char **s, size_t *n)
{
	while (*n && isspace((unsigned char)**s)) {
		(*s)++;
		(*n)--;
	}
	while (*n && isspace((unsigned char)(*s)[*n - 1]))
		(*n)--;
}

as_row *as_batch_add(as_batch *b, size_t ncols)
{
	as_row *row;
	as_val *vals;

	if (b->nrows == b->caprows) {
		size_t cap = b->caprows ? b->caprows * 2 : 1024;
		as_row *nr = realloc(b->rows, cap * sizeof(*nr));

		if (!nr)
			return NULL;
		b->rows = nr;
		b->caprows = cap;
	}
	vals = as_arena_alloc(&b->arena, ncols * sizeof(*vals));
	if (!vals)
		return NULL;
	row = &b->rows[b->nrows];
	memset(row, 0, sizeof(*row));
	row->v = vals;
	return row;
}

static int finish_row(const as_table *t, as_row *row, const char *where,
		      as_batch *b, as_error *err);

int as_record_map(as_table *t, json_t *rec, const char *raw, size_t rawlen,
		  const char *where, as_batch *b, unsigned flags, as_error *err)
{
	as_val *vals;
	as_row *row;
	int rc = 0;

	row = as_batch_add(b, t->ncols);
	if (!row)
		return as_error_set(err, AS_ENOMEM, "out of memory");
	vals = row->v;
	for (size_t i = 0; !rc && i < t->ncols; i++) {
		as_col *c = &t->cols[i];

		if (c->flags & AS_COL_WHOLE) {
			if (raw) {
				trim(&raw, &rawlen);
				rc = set_text(&vals[i], &b->arena, raw, rawlen);
			} else {
				rc = set_json(&vals[i], &b->arena, rec);
			}
			if (rc)
				rc = as_error_set(err, AS_ENOMEM,
						  "out of memory");
			continue;
		}
		if (c->flags & AS_COL_INFERRED) {
			vals[i].kind = AS_V_NULL;
			vals[i].len = 0;
			continue;
		}
		{
			json_t *v;

			rc = get_path(rec, c->path ? c->path : c->name, &v,
				      where, err);
			if (!rc)
				rc = convert(c, v, &vals[i], &b->arena, where,
					     err);
		}
	}
	if (!rc && t->infer) {
		map_ctx m = {.vals = vals, .a = &b->arena, .flags = flags};

		rc = as_schema_walk(t, rec, where, map_visit, &m, err);
	}
	if (rc)
		return rc;
	return finish_row(t, row, where, b, err);
}

/* Hash the mapped row, name where it came from and count it in the batch. */
static int finish_row(const as_table *t, as_row *row, const char *where,
		      as_batch *b, as_error *err)
{
	const as_val *vals = row->v;
	size_t nhash;

	/* Inferred tables gain columns: a row's hash leaves out its trailing
	 * NULLs, so a new column does not change the rows without it. */
	nhash = t->ncols;
	while (t->infer && nhash > t->nkey && vals[nhash - 1].kind == AS_V_NULL)
		nhash--;
	if (row_hash(vals, nhash, &row->hash))
		return as_error_set(err, AS_ENOMEM, "%s: out of memory", where);
	row->where = as_arena_strndup(&b->arena, where, strlen(where));
	if (!row->where)
		return as_error_set(err, AS_ENOMEM, "%s: out of memory", where);
	b->nrows++;
	return 0;
}

/* ---- the fast path for flat records (util/jflat.h) ----
 *
 * A record whose values are all scalars is mapped from the scanner's
 * fields without building a jansson value.  It takes only what the
 * general path (as_record_map) would map without an error, to the same
 * values; anything else -- a conflict, a missing key, a column to add, a
 * field name to normalise, a json column -- declines, and the caller maps
 * the record the general way, which gives the exact error.
 */

#define FLAT_MAX_COLS 256

/* The field whose key is exactly s (n bytes), or -1. */
static ssize_t flat_field(const as_jflat *j, const char *s, size_t n)
{
	for (size_t k = 0; k < j->n; k++)
		if (j->f[k].klen == n && !memcmp(j->f[k].key, s, n))
			return (ssize_t)k;
	return -1;
}

/* A string value as a NUL-terminated timestamp, parsed; -1: decline. */
static int flat_ts_text(const as_jfield *f, int64_t *us)
{
	char buf[64];

	if (f->n >= sizeof(buf))
		return -1;
	memcpy(buf, f->s, f->n);
	buf[f->n] = '\0';
	return as_parse_iso8601_us(buf, us) ? -1 : 0;
}

/* Whether field f maps to column c without an error, as convert() (a
 * configured column) or map_visit() (an inferred one) would; timestamps
 * parsed into *us. */
static int flat_fits(const as_col *c, const as_jfield *f, int64_t *us)
{
	int inferred = (c->flags & AS_COL_INFERRED) != 0;

	switch (c->type) {
	case AS_TYPE_INTEGER: return f->kind == AS_JF_INT;
	case AS_TYPE_REAL: return f->kind == AS_JF_INT || f->kind == AS_JF_REAL;
	case AS_TYPE_BOOLEAN:
		return f->kind == AS_JF_TRUE || f->kind == AS_JF_FALSE;
	case AS_TYPE_TEXT: return f->kind == AS_JF_STRING;
	case AS_TYPE_TIMESTAMP:
		if (f->kind == AS_JF_STRING)
			return flat_ts_text(f, us) == 0;
		if (f->kind != AS_JF_INT || inferred || f->i < EPOCH_MIN ||
		    f->i > EPOCH_MAX)
			return 0;
		*us = f->i * 1000000;
		return 1;
	default: return 0; /* unresolved (AUTO), or json */
	}
}

/* Which field feeds each configured column (src[i], -1 for NULL). */
static int flat_plan_configured(const as_table *t, const as_jflat *j,
				ssize_t *src, int64_t *us)
{
	for (size_t i = 0; i < t->ncols; i++) {
		const as_col *c = &t->cols[i];
		const char *path = c->path ? c->path : c->name;

		src[i] = -1;
		us[i] = 0;
		if (c->flags & (AS_COL_WHOLE | AS_COL_INFERRED))
			continue;
		if (strchr(path, '.'))
			return -1;
		src[i] = flat_field(j, path, strlen(path));
		if (src[i] >= 0 && j->f[src[i]].kind == AS_JF_NULL)
			src[i] = -1;
		if (src[i] < 0 && (c->flags & (AS_COL_KEY | AS_COL_SCOPE)))
			return -1; /* "missing key": the general path says so */
		if (src[i] >= 0 && !flat_fits(c, &j->f[src[i]], &us[i]))
			return -1;
	}
	return 0;
}

/* Which field feeds each inferred column, as as_schema_walk visits them. */
static int flat_plan_inferred(const as_table *t, const as_jflat *j,
			      unsigned flags, ssize_t *src, int64_t *us)
{
	char key[128];
	size_t hint = 0;

	for (size_t k = 0; k < j->n; k++) {
		const as_jfield *f = &j->f[k];
		const as_col *c;
		ssize_t i;

		if (f->klen >= sizeof(key))
			return -1;
		memcpy(key, f->key, f->klen);
		key[f->klen] = '\0';
		if (!as_schema_plain(key, f->klen))
			return -1; /* normalised names: the general path */
		if (f->kind == AS_JF_NULL)
			continue;
		i = as_schema_find(t, key, &hint);
		if (i < 0) {
			if ((flags & AS_MAP_SKIP_UNKNOWN) ||
			    as_schema_configured(t, key))
				continue;
			return -1; /* a new column: as_schema_evolve */
		}
		c = &t->cols[i];
		if (!c->selfnamed)
			return -1;
		if (!(c->flags & AS_COL_INFERRED))
			continue;
		if (!flat_fits(c, f, &us[i]) ||
		    (c->type == AS_TYPE_TIMESTAMP && f->kind != AS_JF_STRING))
			return -1;
		src[i] = (ssize_t)k;
	}
	return 0;
}

/* Column c's value from field f, as the general path stores it. */
static int flat_value(const as_col *c, const as_jfield *f, int64_t us,
		      as_val *out, as_arena *a)
{
	char buf[48];

	switch (c->type) {
	case AS_TYPE_INTEGER:
	case AS_TYPE_REAL:
		/* An inferred column keeps an integer one (map_visit); a
		 * configured real column holds its value as a real. */
		if (f->kind == AS_JF_INT && (c->type == AS_TYPE_INTEGER ||
					     (c->flags & AS_COL_INFERRED))) {
			out->kind = AS_V_INT;
			out->u.i = f->i;
		} else {
			out->kind = AS_V_REAL;
			out->u.r = f->kind == AS_JF_INT ? (double)f->i : f->r;
		}
		return 0;
	case AS_TYPE_BOOLEAN:
		out->kind = AS_V_INT;
		out->u.i = f->kind == AS_JF_TRUE;
		return 0;
	case AS_TYPE_TEXT: return set_text(out, a, f->s, f->n);
	default: /* timestamp */
		as_format_us(us, buf, sizeof(buf));
		return set_text(out, a, buf, strlen(buf));
	}
}

int as_record_map_flat(as_table *t, const char *raw, size_t rawlen,
		       const char *where, as_batch *b, unsigned flags,
		       as_error *err)
{
	ssize_t src[FLAT_MAX_COLS];
	int64_t us[FLAT_MAX_COLS];
	as_jflat j;
	as_row *row;

	if (t->ncols > FLAT_MAX_COLS || as_jflat_scan(raw, rawlen, &j) ||
	    flat_plan_configured(t, &j, src, us) ||
	    (t->infer && flat_plan_inferred(t, &j, flags, src, us)))
		return AS_MAP_DECLINED;
	row = as_batch_add(b, t->ncols);
	if (!row)
		return as_error_set(err, AS_ENOMEM, "out of memory");
	for (size_t i = 0; i < t->ncols; i++) {
		const as_col *c = &t->cols[i];
		as_val *v = &row->v[i];
		int rc = 0;

		v->kind = AS_V_NULL;
		v->len = 0;
		if (c->flags & AS_COL_WHOLE) {
			const char *r = raw;
			size_t n = rawlen;

			trim(&r, &n);
			rc = set_text(v, &b->arena, r, n);
		} else if (src[i] >= 0) {
			rc = flat_value(c, &j.f[src[i]], us[i], v, &b->arena);
		}
		if (rc)
			return as_error_set(err, AS_ENOMEM, "out of memory");
	}
	return finish_row(t, row, where, b, err);
}

int as_scope_value(const as_table *t, const char *spec, as_val *out,
		   size_t *col, as_arena *a, as_error *err)
{
	const char *eq = strchr(spec, '=');
	size_t i;

	if (!eq)
		return as_error_set(err, AS_EUSAGE,
				    "--scope %s: expected COL=VALUE", spec);
	for (i = 0; i < t->nscope; i++) {
		const as_col *c = &t->cols[t->scope[i]];

		if (strlen(c->name) == (size_t)(eq - spec) &&
		    strncmp(c->name, spec, (size_t)(eq - spec)) == 0)
			break;
	}
	if (i == t->nscope)
		return as_error_set(
			err, AS_EUSAGE,
			"--scope %s: '%.*s' is not a scope column of "
			"dataset %s",
			spec, (int)(eq - spec), spec, t->dataset);
	*col = i;
	eq++;
	if (t->cols[t->scope[i]].type == AS_TYPE_INTEGER ||
	    t->cols[t->scope[i]].type == AS_TYPE_BOOLEAN) {
		char *end;
		long long v = strtoll(eq, &end, 10);

		if (!*eq || *end)
			return as_error_set(err, AS_EUSAGE,
					    "--scope %s: expected an integer",
					    spec);
		out->kind = AS_V_INT;
		out->u.i = v;
		return 0;
	}
	if (t->cols[t->scope[i]].type == AS_TYPE_REAL) {
		char *end;

		out->kind = AS_V_REAL;
		out->u.r = strtod(eq, &end);
		if (!*eq || *end)
			return as_error_set(err, AS_EUSAGE,
					    "--scope %s: expected a number",
					    spec);
		return 0;
	}
	return set_text(out, a, eq, strlen(eq))
		       ? as_error_set(err, AS_ENOMEM, "out of memory")
		       : 0;
}
