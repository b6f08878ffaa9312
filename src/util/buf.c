/*
 * Growing byte buffers with a cap.  Doubling growth; every append checks the
 * cap first so a runaway record is an error, not an out-of-memory kill.
 */
#include "util/buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/error.h"

#define DEFAULT_MAX ((size_t)1 << 30)

void as_buf_init(as_buf *b, size_t max)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	b->max = max;
	b->failed = 0;
}

void as_buf_free(as_buf *b)
{
	if (!b)
		return;
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
	b->failed = 0;
}

void as_buf_reset(as_buf *b)
{
	b->len = 0;
	b->failed = 0;
	if (b->data)
		b->data[0] = '\0';
}

int as_buf_reserve(as_buf *b, size_t extra)
{
	size_t max = b->max ? b->max : DEFAULT_MAX;
	size_t need, ncap;
	char *p;

	if (b->failed)
		return AS_ENOMEM;
	if (extra > max || b->len > max - extra) {
		b->failed = 1;
		return AS_ENOMEM;
	}
	need = b->len + extra + 1;
	if (need <= b->cap)
		return 0;
	ncap = b->cap ? b->cap : 64;
	while (ncap < need)
		ncap *= 2;
	p = realloc(b->data, ncap);
	if (!p) {
		b->failed = 1;
		return AS_ENOMEM;
	}
	b->data = p;
	b->cap = ncap;
	return 0;
}

int as_buf_add(as_buf *b, const void *p, size_t n)
{
	if (as_buf_reserve(b, n))
		return AS_ENOMEM;
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

int as_buf_adds(as_buf *b, const char *s)
{
	return as_buf_add(b, s, strlen(s));
}

int as_buf_addc(as_buf *b, char c)
{
	return as_buf_add(b, &c, 1);
}

int as_buf_vprintf(as_buf *b, const char *fmt, va_list ap)
{
	va_list cp;
	int n;

	va_copy(cp, ap);
	n = vsnprintf(NULL, 0, fmt, cp);
	va_end(cp);
	if (n < 0) {
		b->failed = 1;
		return AS_ERROR;
	}
	if (as_buf_reserve(b, (size_t)n))
		return AS_ENOMEM;
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	b->len += (size_t)n;
	return 0;
}

int as_buf_printf(as_buf *b, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = as_buf_vprintf(b, fmt, ap);
	va_end(ap);
	return rc;
}

const char *as_buf_cstr(as_buf *b)
{
	if (b->failed)
		return AS_BUF_OOM;
	return b->data ? b->data : "";
}

int as_buf_text_failed(const char *text)
{
	return text && strstr(text, AS_BUF_OOM) != NULL;
}

char *as_buf_detach(as_buf *b)
{
	char *p = b->data;

	if (b->failed) {
		free(p);
		p = NULL;
	} else if (!p) {
		p = calloc(1, 1);
	}
	b->data = NULL;
	b->len = b->cap = 0;
	b->failed = 0;
	return p;
}
