/*
 * The flat-record scanner (util/jflat.h).  Every rule mirrors jansson's
 * lexer, or declines: declining is always safe, accepting differently is
 * not (tests/unit/test_jflat.c compares the two on the JSON test suite).
 */
#include "util/jflat.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

typedef struct cur {
	const char *p, *end;
	as_jflat *out;
} cur;

static void skip_ws(cur *c)
{
	while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' ||
				 *c->p == '\n' || *c->p == '\r'))
		c->p++;
}

/* Length of the well-formed UTF-8 sequence at p (Unicode table 3-7, as
 * jansson's utf8_check_full), or 0. */
static size_t utf8_len(const unsigned char *p, const unsigned char *end)
{
	unsigned char b = p[0];
	size_t n;
	unsigned lo = 0x80, hi = 0xBF;

	if (b >= 0xC2 && b <= 0xDF)
		n = 2;
	else if (b >= 0xE0 && b <= 0xEF)
		n = 3;
	else if (b >= 0xF0 && b <= 0xF4)
		n = 4;
	else
		return 0;
	if ((size_t)(end - p) < n)
		return 0;
	if (b == 0xE0)
		lo = 0xA0;
	else if (b == 0xED)
		hi = 0x9F; /* no surrogates */
	else if (b == 0xF0)
		lo = 0x90;
	else if (b == 0xF4)
		hi = 0x8F; /* up to U+10FFFF */
	if (p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
		if (p[i] < 0x80 || p[i] > 0xBF)
			return 0;
	return n;
}

static int hex4(const char *p, unsigned *out)
{
	unsigned v = 0;

	for (int i = 0; i < 4; i++) {
		char ch = p[i];

		v <<= 4;
		if (ch >= '0' && ch <= '9')
			v |= (unsigned)(ch - '0');
		else if (ch >= 'a' && ch <= 'f')
			v |= (unsigned)(ch - 'a' + 10);
		else if (ch >= 'A' && ch <= 'F')
			v |= (unsigned)(ch - 'A' + 10);
		else
			return -1;
	}
	*out = v;
	return 0;
}

/* One \uXXXX (or a surrogate pair) at p (after the backslash-u) as UTF-8
 * into w; the number of input bytes used after "\u", or -1. */
static int unicode(const char *p, const char *end, char *w, size_t *wn)
{
	unsigned u, lo;
	int used = 4;

	if (end - p < 4 || hex4(p, &u) || u == 0)
		return -1; /* \u0000: jansson's NUL handling decides */
	if (u >= 0xD800 && u <= 0xDBFF) {
		if (end - p < 10 || p[4] != '\\' || p[5] != 'u' ||
		    hex4(p + 6, &lo) || lo < 0xDC00 || lo > 0xDFFF)
			return -1;
		u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
		used = 10;
	} else if (u >= 0xDC00 && u <= 0xDFFF) {
		return -1;
	}
	if (u < 0x80) {
		w[0] = (char)u;
		*wn = 1;
	} else if (u < 0x800) {
		w[0] = (char)(0xC0 | (u >> 6));
		w[1] = (char)(0x80 | (u & 0x3F));
		*wn = 2;
	} else if (u < 0x10000) {
		w[0] = (char)(0xE0 | (u >> 12));
		w[1] = (char)(0x80 | ((u >> 6) & 0x3F));
		w[2] = (char)(0x80 | (u & 0x3F));
		*wn = 3;
	} else {
		w[0] = (char)(0xF0 | (u >> 18));
		w[1] = (char)(0x80 | ((u >> 12) & 0x3F));
		w[2] = (char)(0x80 | ((u >> 6) & 0x3F));
		w[3] = (char)(0x80 | (u & 0x3F));
		*wn = 4;
	}
	return used;
}

/* Decode the escaped string whose body is [p, end) into the scratch. */
static int unescape(cur *c, const char *p, const char *end, const char **s,
		    size_t *n)
{
	as_jflat *o = c->out;
	char *w = o->scratch + o->used, *w0 = w;
	char *lim = o->scratch + AS_JFLAT_SCRATCH;

	while (p < end) {
		const char *e = memchr(p, '\\', (size_t)(end - p));
		size_t run = (size_t)((e ? e : end) - p), wn;
		int used;

		if ((size_t)(lim - w) < run + 4)
			return -1;
		memcpy(w, p, run);
		w += run;
		if (!e)
			break;
		p = e + 2; /* the scan saw a byte after every backslash */
		switch (e[1]) {
		case '"': *w++ = '"'; break;
		case '\\': *w++ = '\\'; break;
		case '/': *w++ = '/'; break;
		case 'b': *w++ = '\b'; break;
		case 'f': *w++ = '\f'; break;
		case 'n': *w++ = '\n'; break;
		case 'r': *w++ = '\r'; break;
		case 't': *w++ = '\t'; break;
		case 'u':
			used = unicode(p, end, w, &wn);
			if (used < 0)
				return -1;
			w += wn;
			p += used;
			break;
		default: return -1;
		}
	}
	*s = w0;
	*n = (size_t)(w - w0);
	o->used += *n;
	return 0;
}

/* A string at c->p (its opening quote). */
static int string(cur *c, const char **s, size_t *n)
{
	const unsigned char *p = (const unsigned char *)c->p + 1;
	const unsigned char *end = (const unsigned char *)c->end;
	const unsigned char *body = p;
	int esc = 0;

	for (;;) {
		size_t u;

		/* the plain ASCII run, the common case */
		while (p < end && *p >= 0x20 && *p < 0x80 && *p != '"' &&
		       *p != '\\')
			p++;
		if (p >= end || *p < 0x20)
			return -1; /* unterminated, or a control character */
		if (*p == '"')
			break;
		if (*p == '\\') {
			if (p + 1 >= end)
				return -1;
			esc = 1;
			p += 2;
			continue;
		}
		if (!(u = utf8_len(p, end)))
			return -1;
		p += u;
	}
	c->p = (const char *)p + 1;
	if (!esc) {
		*s = (const char *)body;
		*n = (size_t)(p - body);
		return 0;
	}
	return unescape(c, (const char *)body, (const char *)p, s, n);
}

/* A number at c->p, by JSON's grammar as jansson lexes it. */
static int number(cur *c, as_jfield *f)
{
	const char *p = c->p, *start = p;
	char buf[64], *endp;
	int real = 0;

	if (p < c->end && *p == '-')
		p++;
	if (p >= c->end)
		return -1;
	if (*p == '0') {
		p++;
	} else if (*p >= '1' && *p <= '9') {
		while (p < c->end && *p >= '0' && *p <= '9')
			p++;
	} else {
		return -1;
	}
	if (p < c->end && *p == '.') {
		real = 1;
		if (++p >= c->end || *p < '0' || *p > '9')
			return -1;
		while (p < c->end && *p >= '0' && *p <= '9')
			p++;
	}
	if (p < c->end && (*p == 'e' || *p == 'E')) {
		real = 1;
		p++;
		if (p < c->end && (*p == '+' || *p == '-'))
			p++;
		if (p >= c->end || *p < '0' || *p > '9')
			return -1;
		while (p < c->end && *p >= '0' && *p <= '9')
			p++;
	}
	if (!real && p - start - (*start == '-') <= 18) {
		/* Up to 18 digits cannot overflow: strtoll's value, without
		 * the copy and the call (the common case: ids, counts). */
		int64_t v = 0;

		for (const char *d = start + (*start == '-'); d < p; d++)
			v = v * 10 + (*d - '0');
		f->kind = AS_JF_INT;
		f->i = *start == '-' ? -v : v;
		c->p = p;
		return 0;
	}
	if ((size_t)(p - start) >= sizeof(buf))
		return -1;
	memcpy(buf, start, (size_t)(p - start));
	buf[p - start] = '\0';
	errno = 0;
	if (real) {
		f->kind = AS_JF_REAL;
		f->r = strtod(buf, &endp);
	} else {
		f->kind = AS_JF_INT;
		f->i = strtoll(buf, &endp, 10);
	}
	if (errno || endp != buf + (p - start))
		return -1; /* out of range: jansson's big-integer path */
	c->p = p;
	return 0;
}

static int word(cur *c, const char *w, size_t n)
{
	if ((size_t)(c->end - c->p) < n || memcmp(c->p, w, n))
		return -1;
	c->p += n;
	return 0;
}

static int value(cur *c, as_jfield *f)
{
	switch (*c->p) {
	case '"': f->kind = AS_JF_STRING; return string(c, &f->s, &f->n);
	case 't': f->kind = AS_JF_TRUE; return word(c, "true", 4);
	case 'f': f->kind = AS_JF_FALSE; return word(c, "false", 5);
	case 'n': f->kind = AS_JF_NULL; return word(c, "null", 4);
	default: return number(c, f);
	}
}

/* A key equal to one before it: jansson rejects the record. */
static int duplicate(const as_jflat *o, const as_jfield *f)
{
	for (size_t i = 0; i < o->n; i++)
		if (o->f[i].klen == f->klen &&
		    !memcmp(o->f[i].key, f->key, f->klen))
			return 1;
	return 0;
}

int as_jflat_scan(const char *text, size_t len, as_jflat *out)
{
	cur c = {.p = text, .end = text + len, .out = out};

	out->n = 0;
	out->used = 0;
	skip_ws(&c);
	if (c.p >= c.end || *c.p++ != '{')
		return -1;
	skip_ws(&c);
	if (c.p < c.end && *c.p == '}') {
		c.p++;
	} else {
		for (;;) {
			as_jfield *f;

			if (out->n == AS_JFLAT_MAX_FIELDS || c.p >= c.end ||
			    *c.p != '"')
				return -1;
			f = &out->f[out->n];
			if (string(&c, &f->key, &f->klen) || duplicate(out, f))
				return -1;
			skip_ws(&c);
			if (c.p >= c.end || *c.p++ != ':')
				return -1;
			skip_ws(&c);
			if (c.p >= c.end || value(&c, f))
				return -1;
			out->n++;
			skip_ws(&c);
			if (c.p < c.end && *c.p == ',') {
				c.p++;
				skip_ws(&c);
				continue;
			}
			if (c.p < c.end && *c.p == '}') {
				c.p++;
				break;
			}
			return -1;
		}
	}
	skip_ws(&c);
	return c.p == c.end ? 0 : -1;
}
