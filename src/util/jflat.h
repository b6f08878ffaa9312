/*
 * A fast scanner for the common record: one JSON object whose values are
 * all scalars.  It accepts only text that jansson (util/json.c) parses to
 * the same values and declines everything else -- any syntax error, nested
 * values, integers beyond 64 bits, reals out of range, duplicate keys,
 * \u escapes, invalid UTF-8, more fields than it has room for, a text
 * longer than AS_JFLAT_MAX_TEXT -- so a caller falls back to
 * as_json_parse_record, which gives the exact error or the full value.
 * Built on simdjson (util/jflat.cpp); the fields' strings stay valid until
 * the thread's next call.
 */
#ifndef AS_UTIL_JFLAT_H
#define AS_UTIL_JFLAT_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
	AS_JF_NULL,
	AS_JF_FALSE,
	AS_JF_TRUE,
	AS_JF_INT,
	AS_JF_REAL,
	AS_JF_STRING
} as_jf_kind;

typedef struct as_jfield {
	const char *key; /* not NUL-terminated; no NUL inside */
	size_t klen;
	as_jf_kind kind;
	const char *s; /* AS_JF_STRING: the decoded bytes, not terminated */
	size_t n;
	int64_t i; /* AS_JF_INT */
	double r;  /* AS_JF_REAL */
} as_jfield;

#define AS_JFLAT_MAX_FIELDS 64
#define AS_JFLAT_MAX_TEXT 65536 /* longer records go the jansson way */

typedef struct as_jflat {
	size_t n;
	as_jfield f[AS_JFLAT_MAX_FIELDS];
} as_jflat;

/* 0 and the fields in text order, or -1: not a record this scanner
 * takes (parse it with jansson). */
int as_jflat_scan(const char *text, size_t len, as_jflat *out);

#endif
