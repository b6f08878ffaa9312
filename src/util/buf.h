/*
 * Growing byte buffers with a hard cap (curl's dynbuf): appending past the
 * cap fails with AS_ENOMEM instead of eating memory.
 */
#ifndef AS_UTIL_BUF_H
#define AS_UTIL_BUF_H

#include <stdarg.h>
#include <stddef.h>

typedef struct as_buf {
	char *data;   /* NUL-terminated when len > 0 or after as_buf_cstr */
	size_t len;   /* bytes used, not counting the NUL */
	size_t cap;   /* bytes allocated */
	size_t max;   /* hard cap on len; 0 means 1 GiB */
} as_buf;

#define AS_BUF_INIT {NULL, 0, 0, 0}

void as_buf_init(as_buf *b, size_t max);
void as_buf_free(as_buf *b);
void as_buf_reset(as_buf *b);  /* len = 0, keeps the memory */
int as_buf_reserve(as_buf *b, size_t extra);
int as_buf_add(as_buf *b, const void *p, size_t n);
int as_buf_adds(as_buf *b, const char *s);
int as_buf_addc(as_buf *b, char c);
int as_buf_printf(as_buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
int as_buf_vprintf(as_buf *b, const char *fmt, va_list ap);
const char *as_buf_cstr(as_buf *b); /* never NULL */
/* Hand the memory to the caller (NUL-terminated); b is reset. */
char *as_buf_detach(as_buf *b);

#endif
