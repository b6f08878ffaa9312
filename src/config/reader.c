/*
 * Reading a YAML mapping through a table of the keys it may hold: unknown
 * keys are refused with a hint, each field is checked against its type and
 * stored at its offset, and the first problem names the key and its place.
 */
#include "config/config_int.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/cron.h"

/* Enum fields are read and written through an int. */
_Static_assert(sizeof(as_mode) == sizeof(int), "enum size");
_Static_assert(sizeof(as_type) == sizeof(int), "enum size");

as_config_loc as_cfg_loc(cx *c, const ynode *n)
{
	as_config_loc l = {c->file, n ? n->line : 0, n ? n->col : 0};

	return l;
}

int as_cfg_check_keys(const sect *s, const field *f, size_t n)
{
	const char *names[32];

	for (size_t i = 0; i < n && i < NELEM(names); i++)
		names[i] = f[i].key;
	for (size_t i = 0; i < s->map->nkids; i += 2) {
		const ynode *k = s->map->kids[i];
		size_t j;

		for (j = 0; j < n && strcmp(k->text, f[j].key); j++)
			;
		if (j == n)
			return as_cfg_fail(s->c, k, "unknown key '%s' %s%s",
					   SHOWN(k->text), s->where,
					   HINT(k->text, names, n));
	}
	return 0;
}

/* The value of key, NULL when absent or null; *keynode NULL when absent. */
const ynode *as_cfg_lookup(const sect *s, const char *key,
			   const ynode **keynode)
{
	const ynode *m = s->map;

	if (keynode)
		*keynode = NULL;
	for (size_t i = 0; i < as_cfg_map_len(m) * 2; i += 2) {
		if (strcmp(m->kids[i]->text, key))
			continue;
		if (keynode)
			*keynode = m->kids[i];
		return m->kids[i + 1]->kind == Y_NULL ? NULL : m->kids[i + 1];
	}
	return NULL;
}

int as_cfg_missing(const sect *s, const char *key)
{
	const ynode *k;

	as_cfg_lookup(s, key, &k);
	if (k)
		return as_cfg_fail(s->c, k, "'%s' %s has no value", key,
				   s->where);
	return as_cfg_fail(s->c, s->owner ? s->owner : s->map,
			   "missing required key '%s' %s", key, s->where);
}

int as_cfg_bad_value(const sect *s, const ynode *v, const char *key,
		     const char *want, const char *text)
{
	if (v->kind != Y_SCALAR || !text)
		return as_cfg_fail(s->c, v, "'%s' %s must be %s, got %s", key,
				   s->where, want, as_cfg_kind_name(v));
	return as_cfg_fail(s->c, v, "'%s' %s must be %s, got '%s'", key,
			   s->where, want, SHOWN(text));
}

/*
 * The expanded scalar at key: *text NULL when absent (or null).  A mapping
 * or a list where a scalar belongs is an error naming what was wanted.
 */
int as_cfg_read_scalar(const sect *s, const char *key, const char *want,
		       unsigned flags, char **text, const ynode **vn)
{
	const ynode *v = as_cfg_lookup(s, key, NULL);

	*text = NULL;
	if (vn)
		*vn = v;
	if (!v)
		return flags & F_REQUIRED ? as_cfg_missing(s, key) : 0;
	if (v->kind != Y_SCALAR)
		return as_cfg_bad_value(s, v, key, want, NULL);
	return as_cfg_expand(s->c, v, flags & F_SECRET, text, NULL);
}

/* Match text against names (index = enum value). */
static int enum_value(const sect *s, const ynode *v, const char *key,
		      const char *text, const char *const *names, size_t n,
		      int *dst)
{
	char list[256] = "";

	for (size_t i = 0; i < n; i++) {
		if (names[i] && !strcmp(text, names[i])) {
			*dst = (int)i;
			return 0;
		}
	}
	for (size_t i = 0; i < n; i++) {
		if (!names[i])
			continue;
		if (*list)
			strncat(list, ", ", sizeof(list) - strlen(list) - 1);
		strncat(list, names[i], sizeof(list) - strlen(list) - 1);
	}
	return as_cfg_fail(s->c, v, "'%s' %s must be one of %s, got '%s'%s",
			   key, s->where, list, SHOWN(text),
			   HINT(text, names, n));
}

/* What a field's value must look like, for messages. */
static const char *field_want(const field *f, char *buf, size_t cap)
{
	const long long lo = f->min, hi = f->max;

	switch (f->type) {
	case T_INT:
	case T_INT32:
		if (f->max == INT64_MAX)
			snprintf(buf, cap, "an integer >= %lld", lo);
		else
			snprintf(buf, cap, "an integer from %lld to %lld", lo,
				 hi);
		return buf;
	case T_REAL:
		snprintf(buf, cap,
			 f->flags & F_OPEN
				 ? "a number above %lld and at most %lld"
				 : "a number from %lld to %lld",
			 lo, hi);
		return buf;
	case T_BOOL:
	case T_NOT_BOOL: return "true or false";
	case T_DURATION: return "a duration such as 500ms, 30s, 5m, 2h or 90d";
	case T_SCHEDULE:
		return "a duration above 0 such as 30s, 15m or 1h, or a cron "
		       "expression such as \"0 * * * *\"";
	case T_TZ: return "a time zone such as UTC or Europe/Paris";
	case T_RATE: return "a rate such as 10/s, 600/min or 3600/h";
	case T_SIZE: return "a size from 1 byte to 1GiB, such as 16MiB";
	case T_PATH: return "a dotted path such as 'a.b'";
	case T_IDENT: return "a name of letters, digits and '_'";
	default: return "a string";
	}
}

typedef union fvalue {
	int64_t i;
	double d;
	int b;
} fvalue;

/* Parse text as f wants it; false if it does not fit. */
static bool field_parse(const field *f, const char *text, fvalue *v)
{
	switch (f->type) {
	case T_INT:
	case T_INT32:
		return as_cfg_parse_i64(text, &v->i) && v->i >= f->min &&
		       v->i <= f->max;
	case T_REAL:
		return as_cfg_parse_f64(text, &v->d) &&
		       v->d >= (double)f->min && v->d <= (double)f->max &&
		       !((f->flags & F_OPEN) && v->d == (double)f->min);
	case T_BOOL:
	case T_NOT_BOOL: return as_cfg_parse_bool(text, &v->b);
	case T_DURATION: return (v->i = as_parse_duration_ms(text)) >= 0;
	case T_SCHEDULE:
		return strpbrk(text, " \t") || as_parse_duration_ms(text) > 0;
	case T_TZ: return as_tz_valid(text);
	case T_RATE: return (v->d = as_parse_rate(text)) > 0;
	case T_SIZE:
		v->i = as_cfg_parse_size(text);
		return v->i >= f->min && v->i <= f->max;
	case T_PATH: return as_cfg_valid_path(text);
	case T_IDENT: return as_cfg_is_ident(text);
	default: return true;
	}
}

/* Check text (owned) against f and store it at base + f->off. */
int as_cfg_field_store(const sect *s, const field *f, const ynode *v,
		       char *text, void *base)
{
	char *p = (char *)base + f->off, buf[96];
	fvalue val = {0};
	int rc = 0, e = 0;

	if (f->type == T_ENUM) {
		rc = enum_value(s, v, f->key, text, f->names, f->nnames, &e);
		if (!rc)
			*(int *)(void *)p = e;
	} else if (!*text) {
		rc = as_cfg_fail(s->c, v, "'%s' %s must not be empty", f->key,
				 s->where);
	} else if (!field_parse(f, text, &val)) {
		rc = as_cfg_bad_value(s, v, f->key,
				      field_want(f, buf, sizeof(buf)), text);
	} else if (f->type == T_SCHEDULE && strpbrk(text, " \t") &&
		   as_cron_parse(&(as_cron){0}, text, buf, sizeof(buf))) {
		rc = as_cfg_fail(s->c, v, "'%s' %s: %s", f->key, s->where, buf);
	} else if (f->type == T_URL && !as_cfg_is_url(text)) {
		/* The value may hold a secret: never quote it. */
		rc = as_cfg_fail(s->c, v,
				 "'%s' %s must start with http:// or https://",
				 f->key, s->where);
	} else if (f->type == T_DURATION && val.i < f->min) {
		rc = as_cfg_fail(
			s->c, v, "'%s' %s must be at least %lld%s", f->key,
			s->where,
			(long long)(f->min % 1000 ? f->min : f->min / 1000),
			f->min % 1000 ? "ms" : "s");
	} else {
		switch (f->type) {
		case T_INT:
		case T_DURATION:
		case T_SIZE: memcpy(p, &val.i, sizeof(val.i)); break;
		case T_INT32: *(int *)(void *)p = (int)val.i; break;
		case T_REAL:
		case T_RATE: memcpy(p, &val.d, sizeof(val.d)); break;
		case T_BOOL: *(int *)(void *)p = val.b; break;
		case T_NOT_BOOL: *(int *)(void *)p = !val.b; break;
		default:
			free(*(char **)(void *)p);
			*(char **)(void *)p = text;
			return 0;
		}
	}
	free(text);
	return rc;
}

int as_cfg_read_fields(const sect *s, const field *f, size_t n, void *base)
{
	for (size_t i = 0; i < n; i++) {
		const ynode *v;
		char buf[96], *text;
		int rc;

		if (f[i].type == T_OTHER)
			continue;
		rc = as_cfg_read_scalar(s, f[i].key,
					field_want(&f[i], buf, sizeof(buf)),
					f[i].flags, &text, &v);
		if (!rc && text)
			rc = as_cfg_field_store(s, &f[i], v, text, base);
		if (rc)
			return rc;
	}
	return 0;
}

/*
 * The mapping at key read as a section with its own table (out->map NULL
 * when absent): unknown keys are refused, table fields stored in base.
 */
int as_cfg_read_section(const sect *s, const char *key, const char *where,
			const field *f, size_t n, void *base, sect *out)
{
	const ynode *k, *v = as_cfg_lookup(s, key, &k);
	int rc;

	*out = (sect){s->c, NULL, where, k};
	if (!v)
		return 0;
	if (v->kind != Y_MAP)
		return as_cfg_bad_value(s, v, key, "a mapping", NULL);
	out->map = v;
	rc = as_cfg_check_keys(out, f, n);
	return rc ? rc : as_cfg_read_fields(out, f, n, base);
}

void as_cfg_free_list(char **v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		free(v[i]);
	free(v);
}

static int list_item(const sect *s, const char *key, const ynode *n, char **v,
		     size_t i, item_check chk, const void *arg)
{
	int rc;

	if (n->kind != Y_SCALAR)
		return as_cfg_fail(s->c, n,
				   "items of '%s' %s must be strings, got %s",
				   key, s->where, as_cfg_kind_name(n));
	rc = as_cfg_expand(s->c, n, false, &v[i], NULL);
	if (rc)
		return rc;
	if (!*v[i])
		return as_cfg_fail(s->c, n,
				   "items of '%s' %s must not be empty", key,
				   s->where);
	for (size_t j = 0; j < i; j++)
		if (!strcmp(v[j], v[i]))
			return as_cfg_fail(s->c, n, "'%s' %s lists '%s' twice",
					   key, s->where, SHOWN(v[i]));
	return chk ? chk(s, n, v[i], arg) : 0;
}

/* A string or a list of strings at key (none empty), each passed to chk. */
int as_cfg_read_list(const sect *s, const char *key, item_check chk,
		     const void *arg, char ***dst, size_t *ndst)
{
	const ynode *v = as_cfg_lookup(s, key, NULL);
	const ynode *const *items;
	size_t n, i;
	char **out;
	int rc = 0;

	if (!v)
		return 0;
	if (v->kind == Y_MAP)
		return as_cfg_bad_value(s, v, key,
					"a string or a list of strings", NULL);
	if (v->kind == Y_SEQ && !v->nkids)
		return as_cfg_fail(s->c, v, "'%s' %s must not be empty", key,
				   s->where);
	items = v->kind == Y_SEQ ? (const ynode *const *)v->kids : &v;
	n = v->kind == Y_SEQ ? v->nkids : 1;
	out = calloc(n + 1, sizeof(*out));
	if (!out)
		return as_cfg_oom(s->c);
	for (i = 0; i < n && !rc; i++)
		rc = list_item(s, key, items[i], out, i, chk, arg);
	if (rc) {
		as_cfg_free_list(out, n);
		return rc;
	}
	as_cfg_free_list(*dst, *ndst);
	*dst = out;
	*ndst = n;
	return 0;
}
