/*
 * A line reader over a file descriptor with a cap on line length: a line
 * past the cap is skipped (and reported) instead of buffered, so one huge
 * record cannot exhaust memory.  It can hash every byte it consumes, which
 * lets a file checkpoint prove on resume that the file's prefix is unchanged.
 */
#ifndef AS_SOURCE_LINES_H
#define AS_SOURCE_LINES_H

#include <stddef.h>
#include <stdint.h>

#include "util/error.h"
#include "util/hash.h"

typedef struct as_lines {
	int fd;
	char *buf;
	size_t cap, start, end; /* unread bytes are buf[start, end) */
	size_t max;		/* longest line accepted, in bytes */
	int eof;
	int skipping;	  /* inside an over-long line: skip to its end first */
	int64_t consumed; /* bytes handed out, newlines included */
	int64_t line;	  /* number of the last line returned */
	int hashing;
	as_hasher hash;	  /* of the consumed bytes */
	const char *name; /* for messages */
} as_lines;

enum {
	AS_LINE_EOF = 0,
	AS_LINE_OK = 1,
	AS_LINE_TOO_LONG = 2,
	AS_LINE_ENDLESS = 3
};

/* How far past the cap an over-long line is read to find its end (and so
 * its exact length) before it is reported without one. */
#define AS_LINE_LOOKAHEAD ((size_t)16 << 20)

int as_lines_init(as_lines *l, int fd, size_t max, int hashing,
		  const char *name);
void as_lines_free(as_lines *l);
/* AS_LINE_OK with the line (no newline, a trailing \r dropped; the cap
 * applies to that length); AS_LINE_TOO_LONG with *len = its length, the line
 * skipped; AS_LINE_ENDLESS when no end of line came within the cap plus
 * AS_LINE_LOOKAHEAD (*len = the bytes read of it): the caller fails, or calls
 * again to skip the rest; AS_LINE_EOF; or a negative error (AS_EINTR once a
 * SIGINT or SIGTERM arrived, so an endless input cannot hold a run). */
int as_lines_next(as_lines *l, const char **line, size_t *len, as_error *err);
/* Consume (and hash) the first n bytes without returning lines: resume.
 * Returns AS_ECHECKPOINT-like -20 when the input is shorter. */
int as_lines_skip(as_lines *l, int64_t n, as_error *err);
uint64_t as_lines_digest(const as_lines *l);
/* 1 while the rest of an over-long line is still to be skipped: no
 * checkpoint may be taken there (it would resume mid-line). */
int as_lines_mid_line(const as_lines *l);

#endif
