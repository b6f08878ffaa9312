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
	if (!v && alloc_failed) {
		as_error_set(err, AS_ENOMEM, "%s: out of memory", where);
		return NULL;
	}
	if (!v && json_error_code(&je) == json_error_null_character) {
		/* Named in our words, not the parser's flag. */
		as_error_set(err, AS_EINPUT,
			     "%s:%d: \\u0000 (a NUL character) inside a string "
			     "is not supported; remove it from the source data",
			     where, je.column);
		return NULL;
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

	return json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY |
				     JSON_REAL_PRECISION(p ? p : 17));
}
