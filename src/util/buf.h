/*
 * Growing byte buffers with a hard cap (curl's dynbuf): appending past the
 * cap fails with AS_ENOMEM instead of eating memory.  A failed append
 * (the cap, or an allocation) is sticky until as_buf_reset: later appends
 * fail too, so text built in several calls is never missing a middle part,
 * and as_buf_cstr returns AS_BUF_OOM, text no SQL parser accepts, so a
 * statement whose building failed fails instead of running cut short.
 */
#ifndef AS_UTIL_BUF_H
#define AS_UTIL_BUF_H

#include <stdarg.h>
#include <stddef.h>

typedef struct as_buf {
	char *data; /* NUL-terminated when len > 0 or after as_buf_cstr */
	size_t len; /* bytes used, not counting the NUL */
	size_t cap; /* bytes allocated */
	size_t max; /* hard cap on len; 0 means 1 GiB */
	int failed; /* an append failed: see above */
} as_buf;

#define AS_BUF_INIT                                                            \
	{                                                                      \
		NULL, 0, 0, 0, 0                                               \
	}

/* What as_buf_cstr returns for a failed buffer (also found inside text
 * that was built from it: as_buf_text_failed). */
#define AS_BUF_OOM "\001atomsync: out of memory building this text\001"
int as_buf_text_failed(const char *text);

void as_buf_init(as_buf *b, size_t max);
void as_buf_free(as_buf *b);
void as_buf_reset(as_buf *b); /* len = 0, keeps the memory, clears failed */
int as_buf_reserve(as_buf *b, size_t extra);
int as_buf_add(as_buf *b, const void *p, size_t n);
int as_buf_adds(as_buf *b, const char *s);
int as_buf_addc(as_buf *b, char c);
int as_buf_printf(as_buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
int as_buf_vprintf(as_buf *b, const char *fmt, va_list ap);
const char *as_buf_cstr(as_buf *b); /* never NULL; AS_BUF_OOM when failed */
/* Hand the memory to the caller (NUL-terminated); b is reset.  NULL when
 * an append failed or memory ran out. */
char *as_buf_detach(as_buf *b);

#endif
