/*
 * atomsync.yml read into validated structs.  libfyaml's event parser feeds a
 * small tree that keeps where every node starts (0.7.12 exports no start
 * mark for document nodes); each mapping is then read through a table of
 * the keys it may hold, and the first problem is reported as one
 * "file:line:col: message" line with AS_EUSAGE.
 */
#include "config/config.h"
#include "config/yaml.h"

#include <ctype.h>
#include <errno.h>
#include <libfyaml.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define VALUE_MAX (1024 * 1024) /* one scalar after ${VAR} expansion */
#define IDENT_MAX 63		/* PostgreSQL cuts longer names */
#define RECORD_MAX (1024LL * 1024 * 1024)
#define SECRET_MIN 3 /* so "***" never makes a message longer */
#define WHERE_MAX 256
#define WORD_CHARS                                                             \
	"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_"
#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* Enum fields are read and written through an int. */
_Static_assert(sizeof(as_mode) == sizeof(int), "enum size");
_Static_assert(sizeof(as_type) == sizeof(int), "enum size");

typedef struct sbuf {
	char *p;
	size_t len, cap;
} sbuf;

static int sb_add(cx *c, const ynode *n, sbuf *b, const char *s, size_t len)
{
	if (b->len + len + 1 > VALUE_MAX)
		return as_cfg_fail(c, n, "value longer than %d bytes",
				   VALUE_MAX);
	while (b->len + len + 1 > b->cap) {
		char *p = as_cfg_grow(b->p, b->cap, &b->cap, 1);

		if (!p)
			return as_cfg_oom(c);
		b->p = p;
	}
	memcpy(b->p + b->len, s, len);
	b->len += len;
	b->p[b->len] = '\0';
	return 0;
}

/* Append a copy of s to the list v unless it is there already. */
static int add_unique(cx *c, char ***v, size_t *n, const char *s)
{
	char **grown;

	for (size_t i = 0; i < *n; i++)
		if (!strcmp((*v)[i], s))
			return 0;
	grown = realloc(*v, (*n + 1) * sizeof(*grown));
	if (!grown)
		return as_cfg_oom(c);
	*v = grown;
	if (!(grown[*n] = strdup(s)))
		return as_cfg_oom(c);
	(*n)++;
	return 0;
}

/* [A-Za-z_][A-Za-z0-9_]*, in ASCII whatever the locale. */
static bool valid_var(const char *s, size_t len)
{
	if (!len || len > 127 || (*s >= '0' && *s <= '9'))
		return false;
	for (size_t i = 0; i < len; i++)
		if (!s[i] || !strchr(WORD_CHARS, s[i]))
			return false;
	return true;
}

/* One "${NAME}" at s; *end is set past the '}'. */
static int expand_var(cx *c, const ynode *n, const char *s, bool secret,
		      sbuf *b, const char **end)
{
	const char *close = strchr(s + 2, '}'), *val;
	as_config *cfg = c->cfg;
	char name[128];
	size_t len;
	int rc;

	if (!close)
		return as_cfg_fail(
			c, n, "unterminated '${' (write $$ for a literal $)");
	len = (size_t)(close - (s + 2));
	if (!valid_var(s + 2, len))
		return as_cfg_fail(c, n, "invalid variable reference '${%.*s}'",
				   (int)(len > 40 ? 40 : len), s + 2);
	memcpy(name, s + 2, len);
	name[len] = '\0';
	val = getenv(name);
	if (!val)
		return as_cfg_fail(c, n, "environment variable %s is not set",
				   name);
	*end = close + 1;
	if (secret && strlen(val) >= SECRET_MIN) {
		rc = add_unique(c, &cfg->secret_values, &cfg->nsecret_values,
				val);
		if (rc)
			return rc;
	}
	return sb_add(c, n, b, val, strlen(val));
}

/*
 * The scalar's text with ${VAR} taken from the environment and $$ made $.
 * With secret set, each variable's value joins cfg->secret_values.
 * *used (may be NULL) tells whether a ${VAR} was seen.  *out is malloc'd.
 */
static int expand(cx *c, const ynode *n, bool secret, char **out, int *used)
{
	const char *s = n->text, *d;
	sbuf b = {0};
	int rc = 0;

	if (used)
		*used = 0;
	while (!rc && (d = strchr(s, '$'))) {
		rc = sb_add(c, n, &b, s, (size_t)(d - s));
		if (!rc &&
		    d[1] != '{') { /* "$$" is one '$'; a lone '$' stays */
			rc = sb_add(c, n, &b, "$", 1);
			s = d + (d[1] == '$' ? 2 : 1);
		} else if (!rc) {
			rc = expand_var(c, n, d, secret, &b, &s);
			if (!rc && used)
				*used = 1;
		}
	}
	if (!rc)
		rc = sb_add(c, n, &b, s, strlen(s));
	if (rc) {
		free(b.p);
		return rc;
	}
	*out = b.p;
	return 0;
}

/* ---- small parsers ----------------------------------------------------- */

struct unit {
	const char *name;
	int64_t mult;
};

static bool parse_i64(const char *s, int64_t *out)
{
	const char *p = s + (*s == '-' || *s == '+');
	char *end;
	long long v;

	if (!isdigit((unsigned char)*p))
		return false;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || *end)
		return false;
	*out = v;
	return true;
}

static bool parse_f64(const char *s, double *out)
{
	char *end;
	double v;

	if (!*s || strspn(s, "0123456789+-.eE") != strlen(s))
		return false;
	errno = 0;
	v = strtod(s, &end);
	if (errno || *end || !isfinite(v))
		return false;
	*out = v;
	return true;
}

static bool parse_bool(const char *s, int *out)
{
	static const char *const words[] = {"false", "False", "FALSE",
					    "true",  "True",  "TRUE"};

	for (size_t i = 0; i < NELEM(words); i++) {
		if (!strcmp(s, words[i])) {
			*out = i >= 3;
			return true;
		}
	}
	return false;
}

/* Digits, optional spaces, then one of the units; -1 if malformed. */
static int64_t parse_units(const char *s, const struct unit *u, size_t n,
			   bool spaces)
{
	long long v;
	char *end;

	if (!s || !isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno)
		return -1;
	while (spaces && *end == ' ')
		end++;
	for (size_t i = 0; i < n; i++)
		if (!strcmp(end, u[i].name))
			return v > INT64_MAX / u[i].mult ? -1 : v * u[i].mult;
	return -1;
}

int64_t as_parse_duration_ms(const char *s)
{
	static const struct unit units[] = {
		{"", 1000},   {"ms", 1},      {"s", 1000},
		{"m", 60000}, {"h", 3600000}, {"d", 86400000},
	};

	return parse_units(s, units, NELEM(units), false);
}

/* "16MiB", "512 KiB", "1048576" -> bytes; -1 if malformed. */
static int64_t parse_size(const char *s)
{
	static const struct unit units[] = {
		{"", 1},
		{"B", 1},
		{"KiB", 1024},
		{"MiB", 1024 * 1024},
		{"GiB", 1024LL * 1024 * 1024},
	};

	return parse_units(s, units, NELEM(units), true);
}

double as_parse_rate(const char *s)
{
	static const struct unit units[] = {
		{"s", 1}, {"sec", 1}, {"min", 60}, {"m", 60}, {"h", 3600},
	};
	const char *slash = s ? strchr(s, '/') : NULL;
	size_t len = slash ? (size_t)(slash - s) : 0, dots = 0;
	char num[64];
	double v;

	/* Digits with at most one '.': no sign, exponent, hex, inf or nan. */
	for (size_t i = 0; i < len; i++)
		dots += s[i] == '.';
	if (!len || len >= sizeof(num) || strspn(s, "0123456789.") != len ||
	    dots > 1 || dots == len)
		return -1;
	memcpy(num, s, len);
	num[len] = '\0';
	v = strtod(num, NULL);
	if (!(v > 0) || !isfinite(v))
		return -1;
	for (size_t i = 0; i < NELEM(units); i++)
		if (!strcmp(slash + 1, units[i].name))
			return v / (double)units[i].mult;
	return -1;
}

static bool is_ident(const char *s)
{
	size_t n = strlen(s);

	return n <= IDENT_MAX && valid_var(s, n);
}

/* "a.b.c": no empty segment. */
static bool valid_path(const char *s)
{
	return *s && *s != '.' && s[strlen(s) - 1] != '.' && !strstr(s, "..");
}

static bool is_url(const char *s)
{
	return !strncasecmp(s, "http://", 7) || !strncasecmp(s, "https://", 8);
}

/* Levenshtein distance ignoring case, for "did you mean". */
static size_t edit_distance(const char *a, const char *b)
{
	size_t lb = strlen(b), row[33], diag, up;

	if (strlen(a) > 32 || lb > 32)
		return SIZE_MAX;
	for (size_t j = 0; j <= lb; j++)
		row[j] = j;
	for (size_t i = 1; *a; a++, i++) {
		diag = row[0];
		row[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			up = row[j];
			row[j] = diag + (tolower((unsigned char)*a) !=
					 tolower((unsigned char)b[j - 1]));
			if (up + 1 < row[j])
				row[j] = up + 1;
			if (row[j - 1] + 1 < row[j])
				row[j] = row[j - 1] + 1;
			diag = up;
		}
	}
	return row[lb];
}

/* " (did you mean 'x'?)" for the closest of names, or "". */
static const char *hint(const char *word, const char *const *names, size_t n,
			char *buf, size_t cap)
{
	size_t best = SIZE_MAX, limit = strlen(word) <= 3 ? 1 : 2;
	const char *pick = NULL;

	for (size_t i = 0; i < n; i++) {
		size_t d = names[i] ? edit_distance(word, names[i]) : SIZE_MAX;

		if (d < best) {
			best = d;
			pick = names[i];
		}
	}
	if (best > limit)
		return "";
	snprintf(buf, cap, " (did you mean '%s'?)", pick);
	return buf;
}

#define HINT(w, names, n) hint((w), (names), (n), (char[96]){0}, 96)

/* ---- reading a mapping through a table of its keys ---------------------- */

enum ftype {
	T_OTHER,    /* read by code of its own */
	T_STR,	    /* char *, never empty */
	T_PATH,	    /* char *, dotted path */
	T_URL,	    /* char *, http:// or https:// */
	T_IDENT,    /* char *, plain identifier */
	T_SCHEDULE, /* char *, a duration above 0 kept as text */
	T_INT,	    /* int64_t in [min, max] */
	T_INT32,    /* int in [min, max] */
	T_REAL,	    /* double in [min, max], (min, max] with F_OPEN */
	T_BOOL,	    /* int */
	T_NOT_BOOL, /* int, the negation (tls_verify -> insecure) */
	T_DURATION, /* int64_t ms >= min */
	T_ENUM,	    /* enum (an int) indexed in names */
	T_RATE,	    /* double events per second */
	T_SIZE,	    /* int64_t bytes in [min, max] */
};

enum {
	F_REQUIRED = 1,
	F_SECRET = 2, /* values of ${VAR} here are redacted everywhere */
	F_OPEN = 4,   /* T_REAL: min itself is excluded */
};

typedef struct field {
	const char *key;
	enum ftype type;
	unsigned flags;
	size_t off; /* in the struct the table describes */
	int64_t min, max;
	const char *const *names; /* T_ENUM, NULL entries not selectable */
	size_t nnames;
} field;

#define OTHER(k)                                                               \
	{                                                                      \
		k, T_OTHER, 0, 0, 0, 0, NULL, 0                                \
	}
#define FLD(st, k, t, fl, m, lo, hi)                                           \
	{                                                                      \
		k, t, fl, offsetof(st, m), lo, hi, NULL, 0                     \
	}
#define ENM(st, k, m, names)                                                   \
	{                                                                      \
		k, T_ENUM, 0, offsetof(st, m), 0, 0, names, NELEM(names)       \
	}

static int check_keys(const sect *s, const field *f, size_t n)
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
static const ynode *lookup(const sect *s, const char *key,
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

static int missing(const sect *s, const char *key)
{
	const ynode *k;

	lookup(s, key, &k);
	if (k)
		return as_cfg_fail(s->c, k, "'%s' %s has no value", key,
				   s->where);
	return as_cfg_fail(s->c, s->owner ? s->owner : s->map,
			   "missing required key '%s' %s", key, s->where);
}

static int bad_value(const sect *s, const ynode *v, const char *key,
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
static int read_scalar(const sect *s, const char *key, const char *want,
		       unsigned flags, char **text, const ynode **vn)
{
	const ynode *v = lookup(s, key, NULL);

	*text = NULL;
	if (vn)
		*vn = v;
	if (!v)
		return flags & F_REQUIRED ? missing(s, key) : 0;
	if (v->kind != Y_SCALAR)
		return bad_value(s, v, key, want, NULL);
	return expand(s->c, v, flags & F_SECRET, text, NULL);
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
	case T_SCHEDULE: return "a duration above 0 such as 30s, 15m or 1h";
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
		return parse_i64(text, &v->i) && v->i >= f->min &&
		       v->i <= f->max;
	case T_REAL:
		return parse_f64(text, &v->d) && v->d >= (double)f->min &&
		       v->d <= (double)f->max &&
		       !((f->flags & F_OPEN) && v->d == (double)f->min);
	case T_BOOL:
	case T_NOT_BOOL: return parse_bool(text, &v->b);
	case T_DURATION: return (v->i = as_parse_duration_ms(text)) >= 0;
	case T_SCHEDULE: return as_parse_duration_ms(text) > 0;
	case T_RATE: return (v->d = as_parse_rate(text)) > 0;
	case T_SIZE:
		v->i = parse_size(text);
		return v->i >= f->min && v->i <= f->max;
	case T_PATH: return valid_path(text);
	case T_IDENT: return is_ident(text);
	default: return true;
	}
}

/* Check text (owned) against f and store it at base + f->off. */
static int field_store(const sect *s, const field *f, const ynode *v,
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
		rc = bad_value(s, v, f->key, field_want(f, buf, sizeof(buf)),
			       text);
	} else if (f->type == T_URL && !is_url(text)) {
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

static int read_fields(const sect *s, const field *f, size_t n, void *base)
{
	for (size_t i = 0; i < n; i++) {
		const ynode *v;
		char buf[96], *text;
		int rc;

		if (f[i].type == T_OTHER)
			continue;
		rc = read_scalar(s, f[i].key,
				 field_want(&f[i], buf, sizeof(buf)),
				 f[i].flags, &text, &v);
		if (!rc && text)
			rc = field_store(s, &f[i], v, text, base);
		if (rc)
			return rc;
	}
	return 0;
}

/*
 * The mapping at key read as a section with its own table (out->map NULL
 * when absent): unknown keys are refused, table fields stored in base.
 */
static int read_section(const sect *s, const char *key, const char *where,
			const field *f, size_t n, void *base, sect *out)
{
	const ynode *k, *v = lookup(s, key, &k);
	int rc;

	*out = (sect){s->c, NULL, where, k};
	if (!v)
		return 0;
	if (v->kind != Y_MAP)
		return bad_value(s, v, key, "a mapping", NULL);
	out->map = v;
	rc = check_keys(out, f, n);
	return rc ? rc : read_fields(out, f, n, base);
}

typedef int (*item_check)(const sect *s, const ynode *n, const char *text,
			  const void *arg);

static void free_list(char **v, size_t n)
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
	rc = expand(s->c, n, false, &v[i], NULL);
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
static int read_list(const sect *s, const char *key, item_check chk,
		     const void *arg, char ***dst, size_t *ndst)
{
	const ynode *v = lookup(s, key, NULL);
	const ynode *const *items;
	size_t n, i;
	char **out;
	int rc = 0;

	if (!v)
		return 0;
	if (v->kind == Y_MAP)
		return bad_value(s, v, key, "a string or a list of strings",
				 NULL);
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
		free_list(out, n);
		return rc;
	}
	free_list(*dst, *ndst);
	*dst = out;
	*ndst = n;
	return 0;
}

/* ---- datasets ---------------------------------------------------------- */

static const char *const mode_names[] = {"full", "incremental", "scoped",
					 "append"};
static const char *const type_names[] = {
	NULL, "integer", "real", "text", "boolean", "json", "timestamp"};
static const char *const history_names[] = {"none", "snapshot", "scd2"};
static const char *const format_names[] = {"jsonl", "singer"};
static const char *const style_names[] = {"none",   "offset",	"page",
					  "cursor", "next_url", "link_header"};

#define D(...) FLD(as_dataset_cfg, __VA_ARGS__)
static const field dataset_fields[] = {
	D("table", T_STR, 0, table, 0, 0),
	ENM(as_dataset_cfg, "mode", mode, mode_names),
	OTHER("key"),
	OTHER("columns"),
	OTHER("cursor"),
	OTHER("scope"),
	ENM(as_dataset_cfg, "history", history, history_names),
	OTHER("snapshot_columns"),
	OTHER("history_keep"),
	D("verify_threshold", T_REAL, F_OPEN, verify_threshold, 0, 1),
	OTHER("guard"),
	D("reject_file", T_STR, 0, reject_file, 0, 0),
	OTHER("invalidate"),
	D("webhook", T_URL, F_SECRET, webhook, 0, 0),
	D("notify", T_IDENT, 0, notify, 0, 0),
	D("lease_ttl", T_DURATION, 0, lease_ttl_ms, 1000, 0),
	D("batch_size", T_INT, 0, batch_size, 1, INT64_MAX),
	D("max_record_size", T_SIZE, 0, max_record_bytes, 1, RECORD_MAX),
	D("schedule", T_SCHEDULE, 0, schedule, 0, 0),
	OTHER("source"),
};

static const field guard_fields[] = {
	FLD(as_guard_cfg, "max_delete_fraction", T_REAL, 0, max_delete_fraction,
	    0, 1),
	FLD(as_guard_cfg, "allow_empty", T_BOOL, 0, allow_empty, 0, 0),
	FLD(as_guard_cfg, "max_rejects", T_INT, 0, max_rejects, 0, INT64_MAX),
};

static const field column_fields[] = {
	{"type", T_ENUM, F_REQUIRED, offsetof(as_column_cfg, type), 0, 0,
	 type_names, NELEM(type_names)},
	FLD(as_column_cfg, "path", T_PATH, 0, path, 0, 0),
};

typedef struct dsctx {
	sect s;
	as_dataset_cfg *ds;
	char where[WHERE_MAX]; /* "in dataset 'addons'" */
} dsctx;

struct colref {
	const dsctx *d;
	const char *role; /* "key", "scope", ... for messages */
};

static as_config_loc loc_of(cx *c, const ynode *n)
{
	as_config_loc l = {c->file, n ? n->line : 0, n ? n->col : 0};

	return l;
}

static int check_ident(cx *c, const ynode *n, const char *name,
		       const char *what)
{
	if (!is_ident(name))
		return as_cfg_fail(
			c, n,
			"%s name '%s' is not a plain identifier (letters, digits and '_', not "
			"starting with a digit, at most %d characters)",
			what, SHOWN(name), IDENT_MAX);
	if (!strncasecmp(name, "_atomsync", 9))
		return as_cfg_fail(
			c, n,
			"%s name '%s' is reserved: names starting with _atomsync belong to "
			"atomsync",
			what, name);
	return 0;
}

/* A column named by key, scope, cursor or snapshot_columns. */
static int check_colref(const sect *s, const ynode *n, const char *name,
			const void *arg)
{
	const struct colref *r = arg;
	const as_dataset_cfg *ds = r->d->ds;
	int rc = check_ident(s->c, n, name, "column");

	for (size_t i = 0; !rc && i < ds->ncolumns; i++)
		if (!strcmp(ds->columns[i].name, name))
			return 0;
	if (!rc && ds->columns)
		rc = as_cfg_fail(
			s->c, n,
			"%s column '%s' %s is not declared in 'columns'",
			r->role, name, r->d->where);
	return rc;
}

static int parse_column(dsctx *d, const ynode *kn, const ynode *vn,
			as_column_cfg *col)
{
	const as_dataset_cfg *ds = d->ds;
	char where[WHERE_MAX], *text;
	int rc = check_ident(d->s.c, kn, kn->text, "column");
	sect s;

	for (size_t i = 0; !rc && ds->columns + i < col; i++)
		if (!strcasecmp(ds->columns[i].name, kn->text))
			return as_cfg_fail(
				d->s.c, kn,
				"column '%s' %s clashes with column '%s' (names ignore case)",
				kn->text, d->where, ds->columns[i].name);
	if (rc)
		return rc;
	if (!(col->name = strdup(kn->text)))
		return as_cfg_oom(d->s.c);
	col->loc = loc_of(d->s.c, kn);
	snprintf(where, sizeof(where), "in column '%s' of dataset '%s'",
		 col->name, ds->name);
	s = (sect){d->s.c, vn, where, kn};
	if (vn->kind == Y_SCALAR) { /* short form: "name: text" */
		rc = expand(s.c, vn, false, &text, NULL);
		if (!rc)
			rc = field_store(&s, &column_fields[0], vn, text, col);
	} else if (vn->kind == Y_MAP) {
		rc = check_keys(&s, column_fields, NELEM(column_fields));
		if (!rc)
			rc = read_fields(&s, column_fields,
					 NELEM(column_fields), col);
	} else {
		rc = as_cfg_fail(
			s.c, vn->kind == Y_NULL ? kn : vn,
			"column '%s' %s needs a type such as 'text' or {type: text}",
			col->name, d->where);
	}
	if (!rc && !col->path && !(col->path = strdup(col->name)))
		rc = as_cfg_oom(s.c);
	return rc;
}

static int parse_columns(dsctx *d)
{
	as_dataset_cfg *ds = d->ds;
	const ynode *v = lookup(&d->s, "columns", NULL);
	int rc = 0;

	if (!v)
		return 0;
	if (v->kind != Y_MAP)
		return bad_value(&d->s, v, "columns",
				 "a mapping of column name to type", NULL);
	if (!as_cfg_map_len(v))
		return as_cfg_fail(d->s.c, v, "'columns' %s must not be empty",
				   d->where);
	ds->columns = calloc(as_cfg_map_len(v), sizeof(*ds->columns));
	if (!ds->columns)
		return as_cfg_oom(d->s.c);
	for (size_t i = 0; i < v->nkids && !rc; i += 2) {
		as_column_cfg *col = &ds->columns[ds->ncolumns++];

		rc = parse_column(d, v->kids[i], v->kids[i + 1], col);
	}
	return rc;
}

/* key, scope, cursor, snapshot_columns, and the rules of the mode. */
static int parse_names(dsctx *d)
{
	as_dataset_cfg *ds = d->ds;
	const ynode *k, *v, *mode = lookup(&d->s, "mode", NULL);
	int rc;

	rc = read_list(&d->s, "key", check_colref, &(struct colref){d, "key"},
		       &ds->key, &ds->nkey);
	if (!rc)
		rc = read_list(&d->s, "scope", check_colref,
			       &(struct colref){d, "scope"}, &ds->scope,
			       &ds->nscope);
	if (!rc)
		rc = read_list(&d->s, "snapshot_columns", check_colref,
			       &(struct colref){d, "snapshot"},
			       &ds->snapshot_columns, &ds->nsnapshot_columns);
	if (!rc)
		rc = read_scalar(&d->s, "cursor", "a column name", 0,
				 &ds->cursor, &v);
	if (!rc && ds->cursor)
		rc = check_colref(&d->s, v, ds->cursor,
				  &(struct colref){d, "cursor"});
	if (rc)
		return rc;
	lookup(&d->s, "scope", &k);
	if (k && ds->mode != AS_MODE_SCOPED)
		return as_cfg_fail(d->s.c, k,
				   "'scope' %s is only valid with mode: scoped",
				   d->where);
	if (ds->mode == AS_MODE_SCOPED && !ds->nscope)
		return as_cfg_fail(d->s.c, mode,
				   "mode 'scoped' %s requires 'scope'",
				   d->where);
	if (ds->mode == AS_MODE_INCREMENTAL && !ds->cursor)
		return as_cfg_fail(d->s.c, mode,
				   "mode 'incremental' %s requires 'cursor'",
				   d->where);
	return 0;
}

/* history_keep: a number of runs, or a duration. */
static int parse_keep(dsctx *d)
{
	const char *want =
		"a number of runs (e.g. 30) or a duration (e.g. 90d)";
	as_dataset_cfg *ds = d->ds;
	const ynode *v;
	char *text;
	int64_t n;
	int rc;

	rc = read_scalar(&d->s, "history_keep", want, 0, &text, &v);
	if (rc || !text)
		return rc;
	if (*text && strspn(text, "0123456789") == strlen(text)) {
		if (parse_i64(text, &ds->history_keep_runs))
			goto done;
	} else if ((n = as_parse_duration_ms(text)) >= 0) {
		ds->history_keep_ms = n;
		goto done;
	}
	rc = bad_value(&d->s, v, "history_keep", want, text);
done:
	free(text);
	return rc;
}

static int parse_effects(dsctx *d)
{
	as_dataset_cfg *ds = d->ds;
	char where[WHERE_MAX];
	const ynode *k;
	sect g;
	int rc;

	snprintf(where, sizeof(where), "in guard of dataset '%s'", ds->name);
	rc = read_section(&d->s, "guard", where, guard_fields,
			  NELEM(guard_fields), &ds->guard, &g);
	if (!rc)
		rc = read_list(&d->s, "invalidate", NULL, NULL, &ds->invalidate,
			       &ds->ninvalidate);
	if (!rc && lookup(&d->s, "invalidate", &k) && !d->s.c->cfg->cache)
		rc = as_cfg_fail(d->s.c, k,
				 "'invalidate' %s needs a top-level 'cache'",
				 d->where);
	return rc;
}

/* ---- sources ----------------------------------------------------------- */

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
	H("url", T_URL, F_REQUIRED, url, 0, 0),
	OTHER("params"),
	OTHER("headers"),
	H("records", T_PATH, 0, records, 0, 0),
	OTHER("pagination"),
	H("concurrency", T_INT32, 0, concurrency, 1, 64),
	H("rate_limit", T_RATE, 0, rate_per_sec, 0, 0),
	H("rate_burst", T_INT, 0, rate_burst, 1, INT64_MAX),
	H("timeout", T_DURATION, 0, timeout_ms, 1, 0),
	H("deadline", T_DURATION, 0, deadline_ms, 0, 0),
	OTHER("retry"),
	OTHER("circuit_breaker"),
	H("item_url", T_URL, 0, item_url, 0, 0),
	H("ca_bundle", T_STR, 0, ca_bundle, 0, 0),
	H("tls_verify", T_NOT_BOOL, 0, insecure, 0, 0),
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
	const ynode *m = lookup(s, key, NULL);
	const char *what = strcmp(key, "headers") ? "param" : "header";
	int rc = 0, used;

	if (!m)
		return 0;
	if (m->kind != Y_MAP)
		return bad_value(s, m, key, "a mapping", NULL);
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
		rc = expand(s->c, vn, true, &kv->value, &used);
		if (!rc && strpbrk(kv->value, "\r\n"))
			rc = as_cfg_fail(s->c, vn,
					 "%s '%s' %s contains a line break",
					 what, SHOWN(kn->text), s->where);
		if (!rc && used)
			rc = add_unique(s->c, &h->secrets, &h->nsecrets,
					kv->key);
	}
	return rc;
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
		need = !h->cursor_param	 ? "'cursor_param'"
		       : !h->cursor_path ? "'cursor_path'"
					 : NULL;
		break;
	case AS_PAGE_NEXT_URL:
		need = h->next_url_path ? NULL : "'next_url_path'";
		break;
	default: break;
	}
	if (!need)
		return 0;
	return as_cfg_fail(s->c, lookup(s, "style", NULL),
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
	rc = read_section(s, "pagination", where, page_fields,
			  NELEM(page_fields), h, &p);
	if (!rc && p.map)
		rc = page_rules(&p, h);
	if (rc)
		return rc;
	snprintf(where, sizeof(where), "in retry of dataset '%s'", d->ds->name);
	rc = read_section(s, "retry", where, retry_fields, NELEM(retry_fields),
			  h, &p);
	if (!rc && h->retry_max_ms < h->retry_initial_ms) {
		const ynode *v = p.map ? lookup(&p, "max", &k) : NULL;

		return as_cfg_fail(s->c, v ? v : p.owner,
				   "'max' %s must be at least 'initial'",
				   where);
	}
	snprintf(where, sizeof(where), "in circuit_breaker of dataset '%s'",
		 d->ds->name);
	if (!rc)
		rc = read_section(s, "circuit_breaker", where, breaker_fields,
				  NELEM(breaker_fields), h, &p);
	return rc;
}

static int parse_http(const dsctx *d, const sect *src, as_http_cfg *h)
{
	char where[WHERE_MAX];
	sect s;
	int rc;

	snprintf(where, sizeof(where), "in http source of dataset '%s'",
		 d->ds->name);
	rc = read_section(src, "http", where, http_fields, NELEM(http_fields),
			  h, &s);
	if (!rc && !s.map)
		return missing(src, "http");
	if (!rc)
		rc = read_kv(&s, "params", h, &h->params, &h->nparams);
	if (!rc)
		rc = read_kv(&s, "headers", h, &h->headers, &h->nheaders);
	return rc ? rc : parse_http_parts(d, &s, h);
}

/* A relative file: path is relative to the config file's directory. */
static int resolve_path(cx *c, char **path)
{
	const char *slash = strrchr(c->file, '/');
	size_t dir, len;
	char *p;

	if (**path == '/' || !slash)
		return 0;
	dir = (size_t)(slash - c->file);
	len = strlen(*path);
	if (!(p = malloc(dir + len + 2)))
		return as_cfg_oom(c);
	memcpy(p, c->file, dir);
	p[dir] = '/';
	memcpy(p + dir + 1, *path, len + 1);
	free(*path);
	*path = p;
	return 0;
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
		lookup(s, kinds[i], &k);
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
		rc = read_fields(s, &file_f, 1, src);
		return rc ? rc : resolve_path(s->c, &src->path);
	case AS_SOURCE_STDIN:
		rc = read_fields(s, &stdin_f, 1, &on);
		if (!rc && !on)
			rc = as_cfg_fail(s->c, lookup(s, "stdin", NULL),
					 "'stdin' %s must be true", s->where);
		return rc;
	case AS_SOURCE_EXEC: return read_fields(s, &exec_f, 1, src);
	default: return parse_http(d, s, &src->http);
	}
}

static int parse_source(dsctx *d)
{
	as_source_cfg *src = &d->ds->source;
	const ynode *k, *v = lookup(&d->s, "source", &k);
	char where[WHERE_MAX], *text = NULL; /* expand() leaves it on failure */
	sect s;
	int rc;

	if (!v)
		return missing(&d->s, "source");
	src->loc = loc_of(d->s.c, k);
	if (v->kind == Y_SCALAR) { /* source: stdin */
		rc = expand(d->s.c, v, false, &text, NULL);
		if (!rc && strcmp(text, "stdin"))
			rc = bad_value(&d->s, v, "source",
				       "a mapping or 'stdin'", text);
		free(text);
		src->kind = AS_SOURCE_STDIN;
		return rc;
	}
	snprintf(where, sizeof(where), "in source of dataset '%s'",
		 d->ds->name);
	rc = read_section(&d->s, "source", where, source_fields,
			  NELEM(source_fields), src, &s);
	if (!rc)
		rc = source_kind(d, &s, src);
	if (rc)
		return rc;
	if (src->format == AS_FORMAT_SINGER && src->kind == AS_SOURCE_HTTP)
		return as_cfg_fail(
			s.c, lookup(&s, "format", NULL),
			"format 'singer' %s is only valid for exec, file and stdin sources",
			where);
	if (src->stream && src->format != AS_FORMAT_SINGER) {
		lookup(&s, "stream", &k);
		return as_cfg_fail(s.c, k, "'stream' %s needs format: singer",
				   where);
	}
	return 0;
}

/* ---- datasets and the whole file --------------------------------------- */

static int check_table(dsctx *d)
{
	const as_config *cfg = d->s.c->cfg;
	const as_dataset_cfg *ds = d->ds;
	const ynode *v = lookup(&d->s, "table", NULL);
	const ynode *at = v ? v : d->s.owner;
	int rc;

	if (!v && !is_ident(ds->name))
		return as_cfg_fail(
			d->s.c, at,
			"dataset name '%s' is not a valid table name; set 'table'",
			ds->name);
	rc = check_ident(d->s.c, at, ds->table, "table");
	if (rc)
		return rc;
	if (!strncasecmp(ds->table, "atomsync_", 9))
		return as_cfg_fail(
			d->s.c, at,
			"table name '%s' is reserved for atomsync's own tables",
			ds->table);
	if (ds->history != AS_HISTORY_NONE &&
	    strlen(ds->table) + strlen("_history") > IDENT_MAX)
		return as_cfg_fail(
			d->s.c, at,
			"table name '%s' is too long for its history table (at most %d "
			"characters with '_history')",
			ds->table, IDENT_MAX);
	for (size_t i = 0; cfg->datasets + i < ds; i++)
		if (!strcasecmp(cfg->datasets[i].table, ds->table))
			return as_cfg_fail(
				d->s.c, at,
				"table '%s' of dataset '%s' is already used by dataset '%s'",
				ds->table, ds->name, cfg->datasets[i].name);
	return 0;
}

static int default_str(cx *c, char **dst, const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);

	if (*dst)
		return 0;
	if (!(*dst = malloc(la + lb + 1)))
		return as_cfg_oom(c);
	memcpy(*dst, a, la);
	memcpy(*dst + la, b, lb + 1);
	return 0;
}

static int finish_dataset(dsctx *d)
{
	as_dataset_cfg *ds = d->ds;
	const ynode *k;
	int rc;

	if (!ds->nkey && ds->source.format != AS_FORMAT_SINGER) {
		lookup(&d->s, "key", &k);
		return as_cfg_fail(
			d->s.c, k ? k : d->s.owner,
			"%s 'key' %s (only a singer source may leave it out)",
			k ? "no value for" : "missing required key", d->where);
	}
	rc = default_str(d->s.c, &ds->table, ds->name, "");
	if (!rc)
		rc = check_table(d);
	if (!rc)
		rc = default_str(d->s.c, &ds->reject_file, ds->name,
				 ".rejects.jsonl");
	if (!rc)
		rc = resolve_path(d->s.c, &ds->reject_file);
	return rc;
}

static int parse_dataset(cx *c, const ynode *kn, const ynode *vn,
			 as_dataset_cfg *ds)
{
	const size_t n = NELEM(dataset_fields);
	size_t len = strlen(kn->text);
	dsctx d;
	int rc;

	if (!len || len > 128 || strspn(kn->text, WORD_CHARS ".-") != len)
		return as_cfg_fail(
			c, kn,
			"dataset name '%s' may only hold letters, digits, '_', '.' and '-' (at "
			"most 128)",
			SHOWN(kn->text));
	if (!(ds->name = strdup(kn->text)))
		return as_cfg_oom(c);
	ds->loc = loc_of(c, kn);
	d.ds = ds;
	snprintf(d.where, sizeof(d.where), "in dataset '%s'", ds->name);
	d.s = (sect){c, vn, d.where, kn};
	if (vn->kind != Y_MAP)
		return as_cfg_fail(
			c, vn->kind == Y_NULL ? kn : vn,
			"dataset '%s' must be a mapping with at least 'key' and 'source'",
			ds->name);
	rc = check_keys(&d.s, dataset_fields, n);
	if (!rc)
		rc = parse_columns(&d);
	if (!rc)
		rc = read_fields(&d.s, dataset_fields, n, ds);
	if (!rc)
		rc = parse_names(&d);
	if (!rc)
		rc = parse_keep(&d);
	if (!rc)
		rc = parse_effects(&d);
	if (!rc)
		rc = parse_source(&d);
	return rc ? rc : finish_dataset(&d);
}

static const field top_fields[] = {
	FLD(as_config, "store", T_STR, F_REQUIRED | F_SECRET, store, 0, 0),
	FLD(as_config, "cache", T_STR, F_SECRET, cache, 0, 0),
	OTHER("datasets"),
};

/* A SQLite store's file, like every other path, is relative to the config
 * file's directory, so `-c dir/atomsync.yml` works from anywhere. */
static int resolve_store(cx *c, char **store)
{
	const char *scheme = strncmp(*store, "sqlite://", 9) == 0 ? "sqlite://"
			     : strncmp(*store, "sqlite:", 7) == 0 ? "sqlite:"
								  : NULL;
	char *path, *joined;
	int rc;

	if (!scheme || !strchr(c->file, '/'))
		return 0;
	path = strdup(*store + strlen(scheme));
	if (!path)
		return as_cfg_oom(c);
	if ((rc = resolve_path(c, &path))) {
		free(path);
		return rc;
	}
	joined = malloc(strlen(scheme) + strlen(path) + 1);
	if (!joined) {
		free(path);
		return as_cfg_oom(c);
	}
	strcpy(joined, scheme);
	strcat(joined, path);
	free(path);
	free(*store);
	*store = joined;
	return 0;
}

static int parse_top(cx *c, const ynode *root)
{
	as_config *cfg = c->cfg;
	sect s = {c, root, "at top level", NULL};
	const ynode *v;
	int rc;

	if (!root || root->kind == Y_NULL)
		return as_cfg_fail_at(
			c, 1, 1,
			"configuration is empty: it needs 'store' and 'datasets'");
	if (root->kind != Y_MAP)
		return as_cfg_fail(
			c, root,
			"the top level must be a mapping with 'store' and 'datasets'");
	rc = check_keys(&s, top_fields, NELEM(top_fields));
	if (!rc)
		rc = read_fields(&s, top_fields, NELEM(top_fields), cfg);
	if (!rc)
		rc = resolve_store(c, &cfg->store);
	if (rc)
		return rc;
	v = lookup(&s, "datasets", NULL);
	if (!v)
		return missing(&s, "datasets");
	if (v->kind != Y_MAP)
		return bad_value(&s, v, "datasets",
				 "a mapping of dataset name to dataset", NULL);
	if (!as_cfg_map_len(v))
		return as_cfg_fail(c, v,
				   "'datasets' at top level must not be empty");
	if (!(cfg->datasets =
		      calloc(as_cfg_map_len(v), sizeof(*cfg->datasets))))
		return as_cfg_oom(c);
	for (size_t i = 0; i < v->nkids && !rc; i += 2) {
		as_dataset_cfg *ds = &cfg->datasets[cfg->ndatasets++];

		as_dataset_cfg_defaults(ds);
		rc = parse_dataset(c, v->kids[i], v->kids[i + 1], ds);
	}
	return rc;
}

/* ---- public entry points ----------------------------------------------- */

static int by_length_desc(const void *a, const void *b)
{
	size_t la = strlen(*(char *const *)a), lb = strlen(*(char *const *)b);

	return la < lb ? 1 : la > lb ? -1 : 0;
}

int as_config_parse(as_config **out, const char *text, size_t len,
		    const char *name, as_error *err)
{
	ynode *root = NULL;
	as_config *cfg;
	cx c;
	int rc;

	*out = NULL;
	cfg = calloc(1, sizeof(*cfg));
	if (!cfg || !(cfg->path = strdup(name ? name : "<config>"))) {
		free(cfg);
		return as_error_set(err, AS_ENOMEM, "out of memory");
	}
	memset(&c, 0, sizeof(c));
	c.cfg = cfg;
	c.err = err;
	c.file = cfg->path;
	if (len > CONFIG_MAX_BYTES)
		rc = as_cfg_fail_at(&c, 0, 0,
				    "configuration larger than %d bytes",
				    CONFIG_MAX_BYTES);
	else
		rc = as_cfg_build_tree(&c, text ? text : "", text ? len : 0,
				       &root);
	if (!rc)
		rc = parse_top(&c, root);
	as_cfg_tree_free(&c);
	if (rc) {
		as_config_free(cfg);
		return rc;
	}
	/* Longest first, so a secret inside another is not half-redacted. */
	if (cfg->nsecret_values > 1)
		qsort(cfg->secret_values, cfg->nsecret_values,
		      sizeof(*cfg->secret_values), by_length_desc);
	*out = cfg;
	return 0;
}

int as_config_load(as_config **out, const char *path, as_error *err)
{
	FILE *f = fopen(path, "rb");
	size_t len;
	char *buf;
	int rc;

	*out = NULL;
	if (!f)
		return as_error_errno(err, AS_EUSAGE, "%s", path);
	if (!(buf = malloc(CONFIG_MAX_BYTES + 1))) {
		fclose(f);
		return as_error_set(err, AS_ENOMEM, "%s: out of memory", path);
	}
	/* One byte over the cap tells a too-large file from a full one. */
	len = fread(buf, 1, CONFIG_MAX_BYTES + 1, f);
	if (ferror(f))
		rc = as_error_errno(err, AS_EUSAGE, "%s", path);
	else if (len > CONFIG_MAX_BYTES)
		rc = as_error_set(err, AS_EUSAGE,
				  "%s: configuration larger than %d bytes",
				  path, CONFIG_MAX_BYTES);
	else
		rc = as_config_parse(out, buf, len, path, err);
	fclose(f);
	free(buf);
	return rc;
}

static void free_kv(as_kv *kv, size_t n)
{
	for (size_t i = 0; kv && i < n; i++) {
		free(kv[i].key);
		free(kv[i].value);
	}
	free(kv);
}

static void http_clear(as_http_cfg *h)
{
	free(h->url);
	free_kv(h->params, h->nparams);
	free_kv(h->headers, h->nheaders);
	free(h->records);
	free(h->offset_param);
	free(h->limit_param);
	free(h->page_param);
	free(h->cursor_param);
	free(h->cursor_path);
	free(h->next_url_path);
	free(h->total_path);
	free(h->item_url);
	free(h->ca_bundle);
	free_list(h->secrets, h->nsecrets);
}

/* Frees every owned field and leaves the dataset all zero. */
void as_dataset_cfg_clear(as_dataset_cfg *ds)
{
	if (!ds)
		return;
	free(ds->name);
	free(ds->table);
	free_list(ds->key, ds->nkey);
	for (size_t i = 0; ds->columns && i < ds->ncolumns; i++) {
		free(ds->columns[i].name);
		free(ds->columns[i].path);
	}
	free(ds->columns);
	free(ds->cursor);
	free_list(ds->scope, ds->nscope);
	free_list(ds->snapshot_columns, ds->nsnapshot_columns);
	free(ds->reject_file);
	free_list(ds->invalidate, ds->ninvalidate);
	free(ds->webhook);
	free(ds->notify);
	free(ds->schedule);
	free(ds->source.path);
	free(ds->source.command);
	free(ds->source.stream);
	http_clear(&ds->source.http);
	memset(ds, 0, sizeof(*ds));
}

/*
 * Overwrites *ds (it must not own anything).  Fields derived from the name
 * (table, reject_file) stay NULL: the parser fills them once the name is
 * known, and a caller building a dataset by hand sets them itself.
 */
void as_dataset_cfg_defaults(as_dataset_cfg *ds)
{
	as_http_cfg *h = &ds->source.http;

	memset(ds, 0, sizeof(*ds));
	ds->mode = AS_MODE_FULL;
	ds->history = AS_HISTORY_NONE;
	ds->verify_threshold = 0.99;
	ds->guard.max_delete_fraction = 0.5;
	ds->guard.allow_empty = 0;
	ds->guard.max_rejects = 0;
	ds->lease_ttl_ms = 60000;
	ds->batch_size = 10000;
	ds->max_record_bytes = 16LL * 1024 * 1024;
	ds->source.format = AS_FORMAT_JSONL;
	h->style = AS_PAGE_NONE;
	h->first_page = 1;
	h->concurrency = 1;
	h->rate_burst = 1;
	h->timeout_ms = 30000;
	h->retry_attempts = 5;
	h->retry_initial_ms = 500;
	h->retry_max_ms = 30000;
	h->breaker_failures = 10;
}

void as_config_free(as_config *cfg)
{
	if (!cfg)
		return;
	for (size_t i = 0; cfg->datasets && i < cfg->ndatasets; i++)
		as_dataset_cfg_clear(&cfg->datasets[i]);
	free(cfg->datasets);
	free_list(cfg->secret_values, cfg->nsecret_values);
	free(cfg->store);
	free(cfg->cache);
	free(cfg->path);
	free(cfg);
}

const as_dataset_cfg *as_config_dataset(const as_config *cfg, const char *name)
{
	for (size_t i = 0; cfg && name && i < cfg->ndatasets; i++)
		if (!strcmp(cfg->datasets[i].name, name))
			return &cfg->datasets[i];
	return NULL;
}

void as_config_redact(const as_config *cfg, char *msg, size_t cap)
{
	size_t len;

	if (!cfg || !msg || !cap)
		return;
	len = strnlen(msg, cap);
	if (len == cap)
		msg[--len] = '\0';
	/* Secrets are at least 3 bytes, so "***" never grows the message. */
	for (size_t i = 0; i < cfg->nsecret_values; i++) {
		const char *sec = cfg->secret_values[i];
		size_t sl = strlen(sec);
		char *p = msg;

		while ((p = strstr(p, sec))) {
			memcpy(p, "***", 3);
			memmove(p + 3, p + sl,
				len - (size_t)(p - msg) - sl + 1);
			len -= sl - 3;
			p += 3;
		}
	}
}

const char *as_mode_name(as_mode m)
{
	return (unsigned)m < NELEM(mode_names) ? mode_names[m] : "unknown";
}

const char *as_type_name(as_type t)
{
	if (t == AS_TYPE_AUTO)
		return "auto";
	return (unsigned)t < NELEM(type_names) ? type_names[t] : "unknown";
}
