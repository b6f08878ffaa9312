/*
 * Small string helpers: allocation that cannot silently fail, SQL
 * identifier quoting, splitting, and shell quoting.
 */
#ifndef AS_UTIL_STR_H
#define AS_UTIL_STR_H

#include <stddef.h>

#include "util/buf.h"

/* strdup/malloc that abort only on programming-error sizes: callers check NULL.
 */
char *as_strdup(const char *s); /* NULL in, NULL out */
char *as_strndup(const char *s, size_t n);
char *as_sprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Append "ident" with embedded quotes doubled (SQLite and PostgreSQL). */
int as_buf_add_ident(as_buf *b, const char *ident);
/* The same as a new string (free it); NULL when memory ran out. */
char *as_quote_ident(const char *ident);
/* Append 'text' with embedded quotes doubled. */
int as_buf_add_literal(as_buf *b, const char *text);
/* Append s single-quoted for /bin/sh. */
int as_buf_add_shell(as_buf *b, const char *s);

/* Split "a,b,c" into a NULL-terminated array (owned by caller: as_strv_free).
 */
char **as_split(const char *s, char sep, size_t *n);
void as_strv_free(char **v, size_t n);

int as_streq(const char *a, const char *b); /* NULL-safe */
int as_is_ident(const char *s);		    /* [A-Za-z_][A-Za-z0-9_]* */

/* Format n with thousands separators into buf ("12,500"). */
const char *as_fmt_count(char *buf, size_t cap, long long n);

#endif
