/*
 * String helpers shared by every layer.
 */
#include "util/str.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *as_strdup(const char *s)
{
	return s ? strdup(s) : NULL;
}

char *as_strndup(const char *s, size_t n)
{
	char *p = malloc(n + 1);

	if (!p)
		return NULL;
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

char *as_sprintf(const char *fmt, ...)
{
	va_list ap;
	char *p = NULL;

	va_start(ap, fmt);
	if (vasprintf(&p, fmt, ap) < 0)
		p = NULL;
	va_end(ap);
	return p;
}

static int add_quoted(as_buf *b, const char *s, char q)
{
	int rc = as_buf_addc(b, q);

	for (; !rc && *s; s++) {
		if (*s == q)
			rc = as_buf_addc(b, q);
		if (!rc)
			rc = as_buf_addc(b, *s);
	}
	return rc ? rc : as_buf_addc(b, q);
}

int as_buf_add_ident(as_buf *b, const char *ident)
{
	return add_quoted(b, ident, '"');
}

char *as_quote_ident(const char *ident)
{
	as_buf b = AS_BUF_INIT;

	as_buf_add_ident(&b, ident);
	return as_buf_detach(&b);
}

int as_buf_add_literal(as_buf *b, const char *text)
{
	return add_quoted(b, text, '\'');
}

int as_buf_add_shell(as_buf *b, const char *s)
{
	int rc = as_buf_addc(b, '\'');

	for (; !rc && *s; s++)
		rc = *s == '\'' ? as_buf_adds(b, "'\\''") : as_buf_addc(b, *s);
	return rc ? rc : as_buf_addc(b, '\'');
}

char **as_split(const char *s, char sep, size_t *n)
{
	size_t cnt = 1, i = 0;
	const char *p, *start;
	char **v;

	for (p = s; *p; p++)
		if (*p == sep)
			cnt++;
	v = calloc(cnt + 1, sizeof(*v));
	if (!v)
		return NULL;
	for (start = p = s;; p++) {
		if (*p == sep || !*p) {
			v[i] = as_strndup(start, (size_t)(p - start));
			if (!v[i]) {
				as_strv_free(v, i);
				return NULL;
			}
			i++;
			if (!*p)
				break;
			start = p + 1;
		}
	}
	*n = i;
	return v;
}

void as_strv_free(char **v, size_t n)
{
	if (!v)
		return;
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

int as_streq(const char *a, const char *b)
{
	if (!a || !b)
		return a == b;
	return strcmp(a, b) == 0;
}

int as_is_ident(const char *s)
{
	if (!s || !(isalpha((unsigned char)*s) || *s == '_'))
		return 0;
	for (s++; *s; s++)
		if (!(isalnum((unsigned char)*s) || *s == '_'))
			return 0;
	return 1;
}

const char *as_fmt_count(char *buf, size_t cap, long long n)
{
	char tmp[32];
	int len, neg = n < 0, o = 0;

	/* The magnitude in unsigned arithmetic: -LLONG_MIN overflows. */
	len = snprintf(tmp, sizeof(tmp), "%llu",
		       neg ? 0ULL - (unsigned long long)n
			   : (unsigned long long)n);
	if (cap < 2)
		return "";
	if (neg)
		buf[o++] = '-';
	for (int i = 0; i < len && (size_t)o + 2 < cap; i++) {
		buf[o++] = tmp[i];
		if ((len - i - 1) % 3 == 0 && i != len - 1)
			buf[o++] = ',';
	}
	buf[o] = '\0';
	return buf;
}
