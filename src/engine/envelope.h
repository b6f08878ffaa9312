/*
 * A scan of a Singer message's envelope without a JSON parse (envelope.c).
 */
#ifndef AS_ENGINE_ENVELOPE_H
#define AS_ENGINE_ENVELOPE_H

#include <stddef.h>

/* A piece of the scanned line (borrowed; not NUL-terminated). */
typedef struct as_span {
	const char *p;
	size_t n;
} as_span;

/* A top-level object whose keys have no escapes, read for its "type" and
 * "stream" (strings without escapes; their quotes dropped) and the text of
 * its "record" (an object).  1 when the line has that plain form, every
 * key once; 0: let the parser read it (it then also reports what is wrong
 * with it). */
int as_envelope_scan(const char *s, size_t n, as_span *type, as_span *stream,
		     as_span *record);

#endif
