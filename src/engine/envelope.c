/*
 * The common Singer RECORD read without parsing its envelope: a scan of
 * the line's top-level keys for "type", "stream" and the text of
 * "record", so that the record's own text goes to the run as a line
 * (engine/target.c's fast path).  Anything unusual is left to the parser.
 */
#include <string.h>

#include "engine/envelope.h"

static size_t skip_ws(const char *s, size_t i, size_t n)
{
	while (i < n &&
	       (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n'))
		i++;
	return i;
}

/* The end of the string opening at s[i] == '"' (past its closing quote),
 * 0 when it does not end; *esc set when it holds an escape. */
static size_t skip_string(const char *s, size_t i, size_t n, int *esc)
{
	for (i++; i < n; i++) {
		if (s[i] == '\\') {
			*esc = 1;
			i++;
		} else if (s[i] == '"') {
			return i + 1;
		}
	}
	return 0;
}

/* The end of the value at s[i], 0 when it is not plainly delimited. */
static size_t skip_value(const char *s, size_t i, size_t n)
{
	int depth = 0, esc = 0;

	if (i >= n)
		return 0;
	if (s[i] == '"')
		return skip_string(s, i, n, &esc);
	if (s[i] != '{' && s[i] != '[') {
		while (i < n && s[i] != ',' && s[i] != '}' && s[i] != ']' &&
		       s[i] != ' ' && s[i] != '\t')
			i++;
		return i;
	}
	for (; i < n; i++) {
		if (s[i] == '"') {
			i = skip_string(s, i, n, &esc);
			if (!i)
				return 0;
			i--;
		} else if (s[i] == '{' || s[i] == '[') {
			depth++;
		} else if (s[i] == '}' || s[i] == ']') {
			if (--depth == 0)
				return i + 1;
		}
	}
	return 0;
}

int as_envelope_scan(const char *s, size_t n, as_span *type, as_span *stream,
		     as_span *record)
{
	size_t i = skip_ws(s, 0, n);

	memset(type, 0, sizeof(*type));
	memset(stream, 0, sizeof(*stream));
	memset(record, 0, sizeof(*record));
	if (i >= n || s[i] != '{')
		return 0;
	i = skip_ws(s, i + 1, n);
	while (i < n && s[i] != '}') {
		size_t k0, k1, v0, v1;
		int esc = 0;
		as_span *into = NULL;

		if (s[i] != '"')
			return 0;
		k0 = i + 1;
		i = skip_string(s, i, n, &esc);
		if (!i || esc)
			return 0;
		k1 = i - 1;
		i = skip_ws(s, i, n);
		if (i >= n || s[i] != ':')
			return 0;
		v0 = skip_ws(s, i + 1, n);
		v1 = skip_value(s, v0, n);
		if (!v1)
			return 0;
		if (k1 - k0 == 4 && memcmp(s + k0, "type", 4) == 0)
			into = type;
		else if (k1 - k0 == 6 && memcmp(s + k0, "stream", 6) == 0)
			into = stream;
		else if (k1 - k0 == 6 && memcmp(s + k0, "record", 6) == 0)
			into = record;
		if (into) {
			if (into->p) /* twice: the parser names it */
				return 0;
			into->p = s + v0;
			into->n = v1 - v0;
		}
		i = skip_ws(s, v1, n);
		if (i < n && s[i] == ',')
			i = skip_ws(s, i + 1, n);
		else if (i >= n || s[i] != '}')
			return 0;
	}
	if (i >= n || skip_ws(s, i + 1, n) != n)
		return 0;
	if (!type->p || !stream->p || !record->p || record->p[0] != '{')
		return 0;
	/* type and stream: strings without escapes; quotes dropped */
	for (as_span *sp = type; sp; sp = sp == type ? stream : NULL) {
		if (sp->n < 2 || sp->p[0] != '"' ||
		    memchr(sp->p + 1, '\\', sp->n - 2))
			return 0;
		sp->p++;
		sp->n -= 2;
	}
	return 1;
}
