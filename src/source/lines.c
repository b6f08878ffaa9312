/*
 * Capped line reader.
 */
#include "source/lines.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "source/source.h"
#include "util/proc.h"

#define CHUNK (1 << 20)

int as_lines_init(as_lines *l, int fd, size_t max, int hashing,
		  const char *name)
{
	memset(l, 0, sizeof(*l));
	l->fd = fd;
	l->max = max ? max : ((size_t)16 << 20);
	l->cap = CHUNK;
	l->buf = malloc(l->cap);
	l->name = name;
	l->hashing = hashing;
	if (!l->buf || (hashing && as_hasher_init(&l->hash)))
		return AS_ENOMEM;
	return 0;
}

void as_lines_free(as_lines *l)
{
	free(l->buf);
	l->buf = NULL;
	if (l->hashing)
		as_hasher_free(&l->hash);
}

static void consume(as_lines *l, size_t n)
{
	if (l->hashing)
		as_hasher_update(&l->hash, l->buf + l->start, n);
	l->start += n;
	l->consumed += (int64_t)n;
}

/* Read more input; 0 at EOF, 1 when bytes arrived, < 0 on error. */
static int fill(as_lines *l, as_error *err)
{
	ssize_t n;

	if (l->start > 0) {
		memmove(l->buf, l->buf + l->start, l->end - l->start);
		l->end -= l->start;
		l->start = 0;
	}
	if (l->end == l->cap) {
		size_t ncap = l->cap * 2;
		char *nb;

		if (ncap > l->max + CHUNK)
			ncap = l->max + CHUNK;
		if (ncap <= l->cap)
			return 1; /* full: the caller handles the over-long line
				   */
		nb = realloc(l->buf, ncap);
		if (!nb)
			return as_error_set(err, AS_ENOMEM, "%s: out of memory",
					    l->name);
		l->buf = nb;
		l->cap = ncap;
	}
	for (;;) {
		/* A signal that found no blocked read (an endless input keeps
		 * read() busy) is seen here. */
		if (as_interrupted)
			return as_error_set(err, AS_EINTR,
					    "%s: interrupted by a signal",
					    l->name);
		n = read(l->fd, l->buf + l->end, l->cap - l->end);
		if (n >= 0)
			break;
		if (errno == EINTR)
			return as_error_set(err, AS_EINTR,
					    "%s: interrupted by a signal",
					    l->name);
		return as_error_errno(err, AS_ESOURCE, "%s: read", l->name);
	}
	if (n == 0) {
		l->eof = 1;
		return 0;
	}
	l->end += (size_t)n;
	return 1;
}

/* Drop the rest of an over-long line, hashing it.  *len counts the line
 * as as_lines_next counts one: without its "\n" or "\r\n".  Returns 0 at
 * its end (or the input's), 1 when more than limit bytes went by without
 * one (l->skipping then says the rest is still to be dropped). */
static int skip_rest(as_lines *l, size_t *len, size_t limit, as_error *err)
{
	char last = '\0';

	for (;;) {
		char *nl = memchr(l->buf + l->start, '\n', l->end - l->start);
		size_t n = nl ? (size_t)(nl - (l->buf + l->start)) + 1
			      : l->end - l->start;

		if (nl) {
			size_t body = n - 1;

			if (body)
				last = l->buf[l->start + body - 1];
			*len += body;
			if (last == '\r' && *len > 0)
				(*len)--;
		} else {
			if (n)
				last = l->buf[l->start + n - 1];
			*len += n;
		}
		consume(l, n);
		l->skipping = !nl;
		if (nl)
			return 0;
		l->start = l->end = 0;
		if (l->eof) { /* do not read again past an end of file */
			l->skipping = 0;
			return 0;
		}
		if (*len > limit)
			return 1;
		int rc = fill(l, err);
		if (rc < 0)
			return rc;
		if (rc == 0) {
			l->skipping = 0;
			return 0;
		}
	}
}

/* The line just found is over the cap: skip it, measuring it as far as the
 * lookahead goes. */
static int over_long(as_lines *l, size_t *len, as_error *err)
{
	size_t total = 0;
	int rc;

	l->line++;
	rc = skip_rest(l, &total, l->max + AS_LINE_LOOKAHEAD, err);
	if (rc < 0)
		return rc;
	*len = total;
	return rc ? AS_LINE_ENDLESS : AS_LINE_TOO_LONG;
}

int as_lines_next(as_lines *l, const char **line, size_t *len, as_error *err)
{
	size_t scanned = 0;

	if (l->skipping) { /* the rest of an endless line reported before */
		size_t rest = 0;
		int rc = skip_rest(l, &rest, SIZE_MAX, err);

		if (rc < 0)
			return rc;
	}
	for (;;) {
		char *p = l->buf + l->start;
		size_t avail = l->end - l->start;
		char *nl = memchr(p + scanned, '\n', avail - scanned);

		if (nl || (l->eof && avail > 0)) {
			size_t n = nl ? (size_t)(nl - p) : avail;
			/* The cap is on the record: a "\r" before the "\n" is
			 * the line's ending, not part of it. */
			size_t body = n && p[n - 1] == '\r' ? n - 1 : n;

			/* A UTF-8 byte order mark opening the input is not
			 * part of the first record (editors on Windows write
			 * one); consumed, so offsets stay byte offsets. */
			if (l->consumed == 0 && n >= 3 &&
			    !memcmp(p, "\xEF\xBB\xBF", 3)) {
				consume(l, 3);
				scanned = 0;
				continue;
			}
			if (body > l->max)
				return over_long(l, len, err);
			consume(l, nl ? n + 1 : n);
			l->line++;
			*line = p;
			*len = body;
			return AS_LINE_OK;
		}
		if (l->eof)
			return AS_LINE_EOF;
		/* max + 1: the last byte may be the "\r" of a "\r\n". */
		if (avail > l->max + 1)
			return over_long(l, len, err);
		/* fill() moves the unread bytes to the front: offsets relative
		 * to start stay valid. */
		scanned = avail;
		{
			int rc = fill(l, err);

			if (rc < 0)
				return rc;
		}
	}
}

int as_lines_skip(as_lines *l, int64_t n, as_error *err)
{
	while (n > 0) {
		size_t avail = l->end - l->start;

		if (avail == 0) {
			l->start = l->end = 0;
			int rc = fill(l, err);
			if (rc < 0)
				return rc;
			if (rc == 0)
				return AS_ECHECKPOINT;
			continue;
		}
		size_t take = (int64_t)avail < n ? avail : (size_t)n;

		for (size_t i = 0; i < take; i++)
			if (l->buf[l->start + i] == '\n')
				l->line++;
		consume(l, take);
		n -= (int64_t)take;
	}
	return 0;
}

uint64_t as_lines_digest(const as_lines *l)
{
	return l->hashing ? as_hasher_digest(&l->hash) : 0;
}

int as_lines_mid_line(const as_lines *l)
{
	return l->skipping;
}
