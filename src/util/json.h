/*
 * JSON helpers over jansson: strict record parsing with positions, and
 * compact serialization that keeps reals exact but short.
 */
#ifndef AS_UTIL_JSON_H
#define AS_UTIL_JSON_H

#include <jansson.h>

#include "util/error.h"

/* Parse one record: a JSON object; duplicate keys, invalid UTF-8 and
 * trailing garbage rejected (AS_EINPUT).  Errors read "where:col: message".
 * Running out of memory is AS_ENOMEM, not a rejected record. */
json_t *as_json_parse_record(const char *text, size_t len, const char *where,
			     as_error *err);

/* An integer beyond 64 bits in a parsed record is kept as a marked string
 * of its exact digits: 1 (and *digits, borrowed) when v is one. */
int as_json_big_integer(const json_t *v, const char **digits);

/* Serialize compactly; reals get the fewest digits that reproduce them.
 * Free the result with as_json_free(). */
char *as_json_compact(const json_t *v);

/*
 * A record is parsed, mapped and freed on one thread; between these two
 * calls jansson allocates from a per-thread bump arena instead of malloc
 * (most of a parse's cost is otherwise malloc and free).  Every value
 * created between them must be freed before as_json_arena_end().
 */
void as_json_arena_begin(void);
void as_json_arena_end(void);
void as_json_free(void *p);

#endif
