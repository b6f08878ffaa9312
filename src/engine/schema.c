/*
 * Schema inference (docs/config.md, "Schema inference"): the columns of a
 * dataset without declared columns come from the records' fields, nested
 * objects flattened with `__`, names normalised to snake case, types from
 * the values.  Mapping never changes the spec (it may run on the mapper
 * thread); as_schema_evolve, on the caller's thread, adds columns and widens
 * integer to real, and applies the dataset's schema_contract.
 */
#include <ctype.h>
#include <pthread.h>
#include <string.h>

#include "engine/schema.h"
#include "util/str.h"
#include "util/time.h"

/* Already a plain lower-case name ([a-z_][a-z0-9_]*): the common case. */
int as_schema_plain(const char *in, size_t n)
{
	if (!n || (in[0] >= '0' && in[0] <= '9'))
		return 0;
	for (size_t i = 0; i < n; i++) {
		char ch = in[i];

		if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
		      ch == '_'))
			return 0;
	}
	return 1;
}

int as_schema_norm(const char *in, size_t n, as_buf *out)
{
	size_t start = out->len;

	if (as_schema_plain(in, n))
		return as_buf_add(out, in, n) ? AS_ENOMEM : 0;
	int pend = 0; /* a replaced character waits to be written as '_' */

	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)in[i];

		if (isupper(ch) && i > 0 &&
		    (islower((unsigned char)in[i - 1]) ||
		     isdigit((unsigned char)in[i - 1])))
			as_buf_addc(out, '_');
		if (isalnum(ch) || ch == '_') {
			if (pend && out->len > start)
				as_buf_addc(out, '_');
			pend = 0;
			as_buf_addc(out, (char)tolower(ch));
		} else {
			pend = 1;
		}
	}
	if (out->len == start || isdigit((unsigned char)out->data[start])) {
		/* "" or "2fa": a column name cannot start so */
		as_buf_addc(out, '_');
		if (out->len - start > 1) {
			memmove(out->data + start + 1, out->data + start,
				out->len - start - 1);
			out->data[start] = '_';
		}
	}
	return out->failed ? AS_ENOMEM : 0;
}

/* Whether s is an ISO 8601 date-time (a date alone stays text). */
static int is_datetime(const char *s, size_t n)
{
	int64_t us;

	return n >= 16 && n <= 40 && (s[10] == 'T' || s[10] == 't') &&
	       as_parse_iso8601_us(s, &us) == 0;
}

as_type as_schema_type_of(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_INTEGER: return AS_TYPE_INTEGER;
	case JSON_REAL: return AS_TYPE_REAL;
	case JSON_TRUE:
	case JSON_FALSE: return AS_TYPE_BOOLEAN;
	case JSON_STRING:
		return is_datetime(json_string_value(v), json_string_length(v))
			       ? AS_TYPE_TIMESTAMP
			       : AS_TYPE_TEXT;
	case JSON_NULL: return AS_TYPE_AUTO;
	default: return AS_TYPE_JSON;
	}
}

int as_schema_fits(as_type col, const json_t *v)
{
	switch (col) {
	case AS_TYPE_INTEGER:
		return json_is_integer(v) ? 1 : json_is_real(v) ? -1 : 0;
	case AS_TYPE_REAL: return json_is_number(v);
	case AS_TYPE_BOOLEAN: return json_is_boolean(v);
	case AS_TYPE_TEXT: return json_is_string(v);
	case AS_TYPE_TIMESTAMP:
		return json_is_string(v) &&
		       is_datetime(json_string_value(v), json_string_length(v));
	case AS_TYPE_JSON: return json_is_array(v) || json_is_object(v);
	default: return 0;
	}
}

/* The column named name, or -1; hint: where to look first. */
ssize_t as_schema_find(const as_table *t, const char *name, size_t *hint)
{
	if (*hint < t->ncols && strcmp(t->cols[*hint].name, name) == 0)
		return (ssize_t)(*hint)++;
	for (size_t i = 0; i < t->ncols; i++)
		if (strcmp(t->cols[i].name, name) == 0) {
			*hint = i + 1;
			return (ssize_t)i;
		}
	return -1;
}

/* A configured (not inferred) column mapped from path, or NULL. */
const as_col *as_schema_configured(const as_table *t, const char *path)
{
	for (size_t i = 0; i < t->ncols; i++) {
		const as_col *c = &t->cols[i];

		if (!(c->flags & AS_COL_INFERRED) &&
		    strcmp(c->path ? c->path : c->name, path) == 0)
			return c;
	}
	return NULL;
}

/* ---- the walk, shared by mapping and evolution ---- */

typedef struct walk {
	as_table *t;
	const char *where;
	as_schema_visit visit;
	void *ud;
	as_buf name, path;
	size_t hint;
	as_error *err;
} walk;

static int walk_obj(walk *w, json_t *obj, int depth)
{
	int rc = 0;

	for (void *it = json_object_iter(obj); it;
	     it = json_object_iter_next(obj, it)) {
		const char *key = json_object_iter_key(it);
		json_t *v = json_object_iter_value(it);
		size_t nlen = w->name.len, plen = w->path.len;
		size_t klen = json_object_iter_key_len(it);

		/* A top-level scalar with a plain name is its own column name
		 * and path: nothing to build (the common case). */
		if (depth == 1 && !json_is_object(v) &&
		    as_schema_plain(key, klen)) {
			if (!json_is_null(v) &&
			    (rc = w->visit(w->ud, w->t, key, key, v, &w->hint,
					   w->where, w->err)))
				return rc;
			continue;
		}

		if (nlen)
			as_buf_adds(&w->name, "__");
		if (plen)
			as_buf_addc(&w->path, '.');
		as_buf_add(&w->path, key, klen);
		if (as_schema_norm(key, klen, &w->name) ||
		    as_buf_addc(&w->name, '\0') || as_buf_addc(&w->path, '\0'))
			return as_error_set(w->err, AS_ENOMEM, "out of memory");
		w->name.len--;
		w->path.len--;
		if (json_is_object(v) && depth < w->t->flatten_depth)
			rc = walk_obj(w, v, depth + 1);
		else if (!json_is_null(v))
			rc = w->visit(w->ud, w->t, w->name.data, w->path.data,
				      v, &w->hint, w->where, w->err);
		w->name.len = nlen;
		w->path.len = plen;
		if (rc)
			return rc;
	}
	return 0;
}

/* The walk's buffers, kept per thread (a record at a time) and freed
 * when the thread exits. */
static __thread as_buf tl_bufs[2];
static pthread_key_t bufs_key;
static pthread_once_t bufs_once = PTHREAD_ONCE_INIT;

static void bufs_free(void *p)
{
	as_buf *b = p;

	as_buf_free(&b[0]);
	as_buf_free(&b[1]);
}

static void bufs_init(void)
{
	pthread_key_create(&bufs_key, bufs_free);
}

int as_schema_walk(as_table *t, json_t *rec, const char *where,
		   as_schema_visit visit, void *ud, as_error *err)
{
	walk w = {.t = t,
		  .where = where,
		  .visit = visit,
		  .ud = ud,
		  .name = tl_bufs[0],
		  .path = tl_bufs[1],
		  .err = err};
	int rc;

	if (!w.name.data) {
		pthread_once(&bufs_once, bufs_init);
		pthread_setspecific(bufs_key, tl_bufs);
	}
	as_buf_reset(&w.name);
	as_buf_reset(&w.path);
	rc = walk_obj(&w, rec, 1);
	tl_bufs[0] = w.name;
	tl_bufs[1] = w.path;
	return rc;
}

/* ---- evolution ---- */

static int too_long_or_reserved(const char *name, const char *path,
				const as_table *t, as_error *err)
{
	if (strlen(name) > 63)
		return as_error_set(err, AS_EUSAGE,
				    "dataset %s: field '%s' maps to column "
				    "'%.40s...', longer than 63 characters",
				    t->dataset, path, name);
	if (strncmp(name, "_atomsync", 9) == 0)
		return as_error_set(err, AS_EUSAGE,
				    "dataset %s: field '%s' maps to column "
				    "'%s', a name reserved for atomsync",
				    t->dataset, path, name);
	return 0;
}

static int evolve_visit(void *ud, as_table *t, const char *name,
			const char *path, json_t *v, size_t *hint,
			const char *where, as_error *err)
{
	as_schema_stats *st = ud;
	ssize_t i = as_schema_find(t, name, hint);
	int rc;

	if (i < 0 && as_schema_configured(t, path))
		return 0;
	if (i >= 0) {
		as_col *c = &t->cols[i];

		rc = as_schema_collision(t, c, name, path, err);
		if (rc || !(c->flags & AS_COL_INFERRED))
			return rc;
		if (as_schema_fits(c->type, v) == -1) {
			c->type = AS_TYPE_REAL;
			if (!(c->flags & AS_COL_NEW))
				c->flags |= AS_COL_WIDENED;
		}
		return 0;
	}
	switch (st->contract_applies ? t->contract : AS_CONTRACT_EVOLVE) {
	case AS_CONTRACT_FREEZE:
		return as_error_set(err, AS_EINPUT,
				    "%s: field '%s' has no column in table %s "
				    "(schema_contract: freeze)",
				    where, path, t->table);
	case AS_CONTRACT_DISCARD_VALUE: st->discarded_values++; return 0;
	case AS_CONTRACT_DISCARD_ROW:
		return as_error_set(err, AS_EDISCARD,
				    "%s: field '%s' has no column in table %s "
				    "(schema_contract: discard_row)",
				    where, path, t->table);
	default: break;
	}
	if ((rc = too_long_or_reserved(name, path, t, err)))
		return rc;
	if (as_table_add_col(t, name, path, as_schema_type_of(v),
			     AS_COL_INFERRED | AS_COL_NEW))
		return as_error_set(err, AS_ENOMEM, "out of memory");
	st->added++;
	return 0;
}

int as_schema_collision(const as_table *t, const as_col *c, const char *name,
			const char *path, as_error *err)
{
	const char *have = c->path ? c->path : c->name;

	if (!(c->flags & AS_COL_INFERRED) || c->path) {
		if (strcmp(have, path) == 0)
			return 0;
		return as_error_set(err, AS_EUSAGE,
				    "dataset %s: fields '%s' and '%s' both map "
				    "to column '%s'; rename one upstream, or "
				    "declare the columns",
				    t->dataset, have, path, name);
	}
	return 0;
}

/* The JSON Schema type of a property, without "null": "integer", ... */
static const char *schema_type(json_t *s)
{
	json_t *ty = json_object_get(s, "type"), *v;
	size_t i;

	if (json_is_string(ty))
		return json_string_value(ty);
	json_array_foreach(ty, i,
			   v) if (json_is_string(v) &&
				  strcmp(json_string_value(v),
					 "null")) return json_string_value(v);
	return NULL;
}

static int declare(as_table *t, json_t *props, as_buf *name, as_buf *path,
		   int depth, as_schema_stats *st, as_error *err)
{
	const char *key;
	json_t *s;
	int rc = 0;

	json_object_foreach(props, key, s)
	{
		size_t nlen = name->len, plen = path->len;
		const char *ty = schema_type(s);
		const char *fmt =
			json_string_value(json_object_get(s, "format"));
		as_type type = AS_TYPE_AUTO;
		size_t hint = 0;

		if (nlen)
			as_buf_adds(name, "__");
		if (plen)
			as_buf_addc(path, '.');
		as_buf_adds(path, key);
		if (as_schema_norm(key, strlen(key), name) ||
		    as_buf_addc(name, '\0') || as_buf_addc(path, '\0'))
			return as_error_set(err, AS_ENOMEM, "out of memory");
		name->len--;
		path->len--;
		if (ty && !strcmp(ty, "object") && depth < t->flatten_depth &&
		    json_is_object(json_object_get(s, "properties"))) {
			rc = declare(t, json_object_get(s, "properties"), name,
				     path, depth + 1, st, err);
		} else if (ty) {
			if (!strcmp(ty, "integer"))
				type = AS_TYPE_INTEGER;
			else if (!strcmp(ty, "number"))
				type = AS_TYPE_REAL;
			else if (!strcmp(ty, "boolean"))
				type = AS_TYPE_BOOLEAN;
			else if (!strcmp(ty, "string"))
				type = fmt && !strcmp(fmt, "date-time")
					       ? AS_TYPE_TIMESTAMP
					       : AS_TYPE_TEXT;
			else if (!strcmp(ty, "array") || !strcmp(ty, "object"))
				type = AS_TYPE_JSON;
		}
		if (!rc && type != AS_TYPE_AUTO &&
		    as_schema_find(t, name->data, &hint) < 0 &&
		    !as_schema_configured(t, path->data)) {
			rc = too_long_or_reserved(name->data, path->data, t,
						  err);
			if (!rc &&
			    as_table_add_col(t, name->data, path->data, type,
					     AS_COL_INFERRED | AS_COL_NEW))
				rc = as_error_set(err, AS_ENOMEM,
						  "out of memory");
			if (!rc)
				st->added++;
		}
		name->len = nlen;
		path->len = plen;
		if (rc)
			return rc;
	}
	return 0;
}

int as_schema_declare(as_table *t, json_t *schema, as_schema_stats *st,
		      as_error *err)
{
	as_buf name = AS_BUF_INIT, path = AS_BUF_INIT;
	json_t *props = json_object_get(schema, "properties");
	int rc = 0;

	if (json_is_object(props))
		rc = declare(t, props, &name, &path, 1, st, err);
	as_buf_free(&name);
	as_buf_free(&path);
	return rc;
}

int as_schema_evolve(as_table *t, json_t *rec, const char *where,
		     as_schema_stats *st, as_error *err)
{
	return as_schema_walk(t, rec, where, evolve_visit, st, err);
}
