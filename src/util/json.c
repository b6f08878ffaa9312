/*
 * JSON helpers over jansson.
 */
#include "util/json.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the record arena ---- */

#define ARENA_SIZE (64 * 1024) /* a typical record needs 1-2 KiB */

static __thread char *arena;
static __thread size_t arena_off;
static __thread int arena_on;
static pthread_once_t alloc_once = PTHREAD_ONCE_INIT;
static pthread_key_t arena_key; /* frees a thread's arena when it exits */
/* An allocation failed since as_json_parse_record began on this thread:
 * jansson reports that as a syntax error ("invalid token"), which would
 * reject a good record as bad input (and with max_rejects, publish the
 * run without it).  Found by tests/reliability/alloc_driver. */
static __thread int alloc_failed;

static void *json_alloc(size_t n)
{
	void *p;

	if (arena_on) {
		size_t need = (n + 15) & ~(size_t)15;

		if (need >= n && arena_off + need <= ARENA_SIZE) {
			p = arena + arena_off;
			arena_off += need;
			return p;
		}
	}
	p = malloc(n);
	if (!p)
		alloc_failed = 1;
	return p;
}

void as_json_free(void *p)
{
	/* Arena memory is released all at once by as_json_arena_end(). */
	if (arena && (char *)p >= arena && (char *)p < arena + ARENA_SIZE)
		return;
	free(p);
}

static void install(void)
{
	pthread_key_create(&arena_key, free);
	json_set_alloc_funcs(json_alloc, as_json_free);
}

void as_json_arena_begin(void)
{
	pthread_once(&alloc_once, install);
	if (!arena) {
		arena = malloc(ARENA_SIZE);
		pthread_setspecific(arena_key, arena);
	}
	arena_off = 0;
	arena_on = arena != NULL;
}

void as_json_arena_end(void)
{
	arena_on = 0;
	arena_off = 0;
}

/* ---- integers beyond 64 bits ---- */

/* How a marked integer opens in JSON text: a string starting with NUL. */
static const char MARK[] = "\"\\u0000";
#define MARK_LEN (sizeof(MARK) - 1)

/* An integer literal of text[0, n) that int64 cannot hold. */
static int too_big(const char *s, size_t n)
{
	const char *lim = "9223372036854775807";
	size_t d = n - (*s == '-');

	if (*s == '-')
		lim = "9223372036854775808", s++;
	return d > 19 || (d == 19 && memcmp(s, lim, 19) > 0);
}

/*
 * A copy of text in which every integer literal beyond 64 bits is the
 * string AS_JSON_BIG (a NUL) followed by its digits, so jansson parses the
 * record and the digits survive exactly; NULL when there is none, or when
 * the text already holds \u0000 (a marker would then be ambiguous).
 */
static char *mark_big_integers(const char *text, size_t len, size_t *outlen)
{
	char *out = NULL;
	size_t o = 0, i = 0;
	int found = 0;

	if (!memmem(text, len, "\\u0000", 6) &&
	    (out = malloc(len + len / 2 * 8 + 8)) != NULL)
		while (i < len) {
			char ch = text[i];

			if (ch == '"') { /* copy a string whole */
				out[o++] = text[i++];
				while (i < len && text[i] != '"') {
					if (text[i] == '\\' && i + 1 < len)
						out[o++] = text[i++];
					out[o++] = text[i++];
				}
				if (i < len)
					out[o++] = text[i++];
			} else if (ch == '-' || (ch >= '0' && ch <= '9')) {
				size_t j = i + (ch == '-');

				while (j < len && text[j] >= '0' &&
				       text[j] <= '9')
					j++;
				if ((j == len || !strchr(".eE", text[j])) &&
				    j > i + (ch == '-') &&
				    too_big(text + i, j - i)) {
					memcpy(out + o, MARK, MARK_LEN);
					o += MARK_LEN;
					memcpy(out + o, text + i, j - i);
					o += j - i;
					out[o++] = '"';
					found = 1;
				} else {
					memcpy(out + o, text + i, j - i);
					o += j - i;
				}
				i = j;
				while (i < len &&
				       strchr(".eE+-0123456789", text[i]))
					out[o++] = text[i++];
			} else {
				out[o++] = text[i++];
			}
		}
	if (!found) {
		free(out);
		return NULL;
	}
	*outlen = o;
	return out;
}

int as_json_big_integer(const json_t *v, const char **digits)
{
	const char *s;
	size_t n;

	if (!json_is_string(v) || (n = json_string_length(v)) < 2)
		return 0;
	s = json_string_value(v);
	if (s[0] != '\0' || (s[1] != '-' && (s[1] < '0' || s[1] > '9')))
		return 0;
	for (size_t i = 2; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return 0;
	*digits = s + 1;
	return 1;
}

/* Does any string of v look like a big-integer marker? */
static int looks_marked(json_t *v)
{
	const char *k, *d;
	json_t *x;
	size_t i;

	if (as_json_big_integer(v, &d))
		return 1;
	if (json_is_object(v)) {
		json_object_foreach(v, k, x) if (looks_marked(x)) return 1;
	} else if (json_is_array(v)) {
		json_array_foreach(v, i, x) if (looks_marked(x)) return 1;
	}
	return 0;
}

json_t *as_json_parse_record(const char *text, size_t len, const char *where,
			     as_error *err)
{
	json_error_t je;
	json_t *v;

	/* Our allocator, so a failed allocation is told from bad input. */
	pthread_once(&alloc_once, install);
	alloc_failed = 0;
	/* DECODE_ANY: a scalar line is parsed, then named as not an object. */
	v = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY,
		       &je);
	if (!v && !alloc_failed && strstr(je.text, "too big") &&
	    strstr(je.text, "integer")) {
		/* Kept as its exact text; a column that maps it refuses it
		 * (engine/record.c). */
		size_t n;
		char *marked = mark_big_integers(text, len, &n);

		if (marked) {
			json_error_t je2;

			v = json_loadb(marked, n,
				       JSON_REJECT_DUPLICATES |
					       JSON_DECODE_ANY | JSON_ALLOW_NUL,
				       &je2);
			free(marked);
		}
	}
	if (!v && alloc_failed) {
		as_error_set(err, AS_ENOMEM, "%s: out of memory", where);
		return NULL;
	}
	if (!v && json_error_code(&je) == json_error_null_character) {
		/* A NUL inside a string is kept: the stores bind text with
		 * its length (PostgreSQL, which cannot hold it, rejects the
		 * record naming the field).  Not when the text also holds an
		 * integer beyond 64 bits: its marker begins with a NUL. */
		v = json_loadb(text, len,
			       JSON_REJECT_DUPLICATES | JSON_DECODE_ANY |
				       JSON_ALLOW_NUL,
			       &je);
		if (v && looks_marked(v)) {
			json_decref(v);
			as_error_set(err, AS_EINPUT,
				     "%s: a string that begins with \\u0000 "
				     "and digits cannot be told from an "
				     "integer beyond 64 bits; not loaded",
				     where);
			return NULL;
		}
		if (!v && alloc_failed) {
			as_error_set(err, AS_ENOMEM, "%s: out of memory",
				     where);
			return NULL;
		}
	}
	if (!v) {
		if (je.column > 0)
			as_error_set(err, AS_EINPUT, "%s:%d: %s", where,
				     je.column, je.text);
		else
			as_error_set(err, AS_EINPUT, "%s: %s", where, je.text);
		return NULL;
	}
	if (!json_is_object(v)) {
		as_error_set(err, AS_EINPUT,
			     "%s: expected a JSON object, got %s", where,
			     json_is_array(v) ? "an array" : "a scalar");
		json_decref(v);
		return NULL;
	}
	return v;
}

/* ---- compact serialization with exact, short reals ---- */

static int real_digits(double d)
{
	char buf[40];

	for (int p = 15; p < 17; p++) {
		snprintf(buf, sizeof(buf), "%.*g", p, d);
		if (strtod(buf, NULL) == d)
			return p;
	}
	return 17;
}

static int max_digits(const json_t *v)
{
	int m = 0, d;
	const char *k;
	json_t *x;
	size_t i;

	switch (json_typeof(v)) {
	case JSON_REAL: return real_digits(json_real_value(v));
	case JSON_OBJECT:
		json_object_foreach((json_t *)v, k, x)
		{
			d = max_digits(x);
			m = d > m ? d : m;
		}
		return m;
	case JSON_ARRAY:
		json_array_foreach(v, i, x)
		{
			d = max_digits(x);
			m = d > m ? d : m;
		}
		return m;
	default: return 0;
	}
}

/*
 * jansson prints every real with one precision (17 digits by default, so 0.1
 * becomes 0.10000000000000001).  Use the fewest digits that still reproduce
 * every real of the value exactly.
 */
char *as_json_compact(const json_t *v)
{
	int p = max_digits(v);
	char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY |
					JSON_REAL_PRECISION(p ? p : 17));
	char *out, *r, *w;

	/* Integers beyond 64 bits, held as marked strings, are printed as
	 * the numbers they were. */
	if (!s || !strstr(s, MARK))
		return s;
	out = malloc(strlen(s) + 1);
	if (!out) {
		as_json_free(s);
		return NULL;
	}
	/* Only a whole string can be a marker: inside a string (after an
	 * escaped quote, say) the same bytes are the string's own. */
	for (r = s, w = out; *r;) {
		if (*r != '"') {
			*w++ = *r++;
			continue;
		}
		if (!strncmp(r, MARK, MARK_LEN) &&
		    (r[MARK_LEN] == '-' ||
		     (r[MARK_LEN] >= '0' && r[MARK_LEN] <= '9'))) {
			char *e = r + MARK_LEN + 1;

			while (*e >= '0' && *e <= '9')
				e++;
			if (*e == '"') {
				size_t n = (size_t)(e - r) - MARK_LEN;

				memcpy(w, r + MARK_LEN, n);
				w += n;
				r = e + 1;
				continue;
			}
		}
		/* Any other string, copied whole with its escapes. */
		*w++ = *r++;
		while (*r && *r != '"') {
			if (*r == '\\' && r[1])
				*w++ = *r++;
			*w++ = *r++;
		}
		if (*r)
			*w++ = *r++;
	}
	*w = '\0';
	as_json_free(s);
	return out;
}
