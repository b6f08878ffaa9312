/*
 * Unit tests of source/lines: lines split across read() boundaries (a
 * forked writer feeds a pipe in small chunks), CRLF, a missing final
 * newline, over-long lines skipped and reported while the next line is
 * still read, and resume by skipping a hashed prefix (as_lines_skip).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "source/lines.h"
#include "source/source.h"
#include "util/buf.h"

/* ---- feeding input ---- */

/* A pipe whose write end is fed by a child writing data in chunks of
 * 1..chunk bytes (0: all at once), pausing pause_us between writes so the
 * reader sees many short reads. */
typedef struct feeder {
	int fd; /* read end */
	pid_t pid;
} feeder;

static feeder feed(const char *data, size_t len, size_t chunk, int pause_us)
{
	int fds[2];
	feeder f;

	assert_int_equal(pipe(fds), 0);
	f.pid = fork();
	assert_true(f.pid >= 0);
	if (f.pid == 0) {
		size_t off = 0, k = 0;

		close(fds[0]);
		signal(SIGPIPE, SIG_DFL);
		while (off < len) {
			size_t n = chunk ? 1 + (k++ % chunk) : len - off;
			ssize_t w;

			if (n > len - off)
				n = len - off;
			w = write(fds[1], data + off, n);
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0)
				_exit(1);
			off += (size_t)w;
			if (pause_us)
				usleep((useconds_t)pause_us);
		}
		_exit(0);
	}
	close(fds[1]);
	f.fd = fds[0];
	return f;
}

static void feed_done(feeder *f)
{
	int status;

	close(f->fd);
	assert_int_equal(waitpid(f->pid, &status, 0), f->pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

static int next(as_lines *l, char *out, size_t cap, size_t *len)
{
	const char *line = NULL;
	as_error err;
	int rc;

	as_error_clear(&err);
	rc = as_lines_next(l, &line, len, &err);
	if (rc < 0)
		fail_msg("as_lines_next: %d %s", rc, err.msg);
	if (rc == AS_LINE_OK) {
		assert_true(*len < cap);
		memcpy(out, line, *len);
		out[*len] = '\0';
	}
	return rc;
}

static void expect_line(as_lines *l, const char *want, int64_t lineno)
{
	char got[8192];
	size_t len = 0;

	assert_int_equal(next(l, got, sizeof(got), &len), AS_LINE_OK);
	assert_int_equal(len, strlen(want));
	assert_string_equal(got, want);
	assert_int_equal(l->line, lineno);
}

static void expect_too_long(as_lines *l, size_t want_len, int64_t lineno)
{
	char got[16];
	size_t len = 0;

	assert_int_equal(next(l, got, sizeof(got), &len), AS_LINE_TOO_LONG);
	assert_int_equal(len, want_len);
	assert_int_equal(l->line, lineno);
}

static void expect_eof(as_lines *l)
{
	char got[16];
	size_t len;

	assert_int_equal(next(l, got, sizeof(got), &len), AS_LINE_EOF);
	/* and it stays at EOF */
	assert_int_equal(next(l, got, sizeof(got), &len), AS_LINE_EOF);
}

static char *repeat(char c, size_t n)
{
	char *s = malloc(n + 1);

	assert_non_null(s);
	memset(s, c, n);
	s[n] = '\0';
	return s;
}

/* ---- tests ---- */

static void test_split_reads(void **state)
{
	char *mid = repeat('m', 3000);
	as_buf in = AS_BUF_INIT;
	as_lines l;
	feeder f;

	(void)state;
	as_buf_adds(&in, "alpha\nbeta\r\ngamma\n\n{\"id\":1}\n");
	as_buf_adds(&in, mid);
	as_buf_adds(&in, "\nx\ry\nlast");
	f = feed(in.data, in.len, 7, 50);
	assert_int_equal(as_lines_init(&l, f.fd, 4096, 1, "pipe"), 0);
	expect_line(&l, "alpha", 1);
	expect_line(&l, "beta", 2);
	expect_line(&l, "gamma", 3);
	expect_line(&l, "", 4);
	expect_line(&l, "{\"id\":1}", 5);
	expect_line(&l, mid, 6);
	expect_line(&l, "x\ry", 7); /* a \r inside a line is data */
	expect_line(&l, "last", 8); /* no final newline */
	expect_eof(&l);
	assert_int_equal(l.consumed, (int64_t)in.len);
	assert_true(as_lines_digest(&l) == as_hash64(in.data, in.len));
	as_lines_free(&l);
	feed_done(&f);
	as_buf_free(&in);
	free(mid);
}

static void test_crlf_and_ends(void **state)
{
	static const char crlf[] = "a\r\nb\r\n\r\nc\r";
	as_lines l;
	feeder f;

	(void)state;
	f = feed(crlf, sizeof(crlf) - 1, 1, 0);
	assert_int_equal(as_lines_init(&l, f.fd, 64, 0, "crlf"), 0);
	expect_line(&l, "a", 1);
	expect_line(&l, "b", 2);
	expect_line(&l, "", 3);
	expect_line(&l, "c", 4);
	expect_eof(&l);
	assert_int_equal(l.consumed, (int64_t)sizeof(crlf) - 1);
	assert_true(as_lines_digest(&l) == 0); /* not hashing */
	as_lines_free(&l);
	feed_done(&f);

	/* Empty input. */
	f = feed("", 0, 0, 0);
	assert_int_equal(as_lines_init(&l, f.fd, 64, 1, "empty"), 0);
	expect_eof(&l);
	assert_int_equal(l.line, 0);
	assert_int_equal(l.consumed, 0);
	assert_true(as_lines_digest(&l) == as_hash64("", 0));
	as_lines_free(&l);
	feed_done(&f);

	/* A lone newline is one empty line, not EOF. */
	f = feed("\n", 1, 0, 0);
	assert_int_equal(as_lines_init(&l, f.fd, 64, 0, "nl"), 0);
	expect_line(&l, "", 1);
	expect_eof(&l);
	as_lines_free(&l);
	feed_done(&f);
}

/* chunk 0: the whole input in one read (the newline of an over-long line
 * is seen at once); chunk 5: the cap is passed before its newline arrives. */
static void too_long(size_t chunk, int pause_us)
{
	char *x16 = repeat('x', 16), *x17 = repeat('x', 17),
	     *x40 = repeat('x', 40);
	char *y20 = repeat('y', 20), *z20 = repeat('z', 20);
	as_buf in = AS_BUF_INIT;
	as_lines l;
	feeder f;

	as_buf_printf(&in, "short\n%s\n%s\n%s\nafter\n%s\r\nok\n%s", x40, x16,
		      x17, z20, y20);
	f = feed(in.data, in.len, chunk, pause_us);
	assert_int_equal(as_lines_init(&l, f.fd, 16, 1, "capped"), 0);
	expect_line(&l, "short", 1);
	expect_too_long(&l, 40, 2); /* skipped, its length reported */
	expect_line(&l, x16, 3);    /* exactly the cap is accepted */
	expect_too_long(&l, 17, 4);
	expect_line(&l, "after", 5); /* the next line is still read */
	expect_too_long(&l, 20, 6);  /* CRLF is not part of the length */
	expect_line(&l, "ok", 7);
	expect_too_long(&l, 20, 8); /* over-long and unterminated at EOF */
	expect_eof(&l);
	/* Skipped bytes are consumed and hashed like any other. */
	assert_int_equal(l.consumed, (int64_t)in.len);
	assert_true(as_lines_digest(&l) == as_hash64(in.data, in.len));
	as_lines_free(&l);
	feed_done(&f);
	as_buf_free(&in);
	free(x16);
	free(x17);
	free(x40);
	free(y20);
	free(z20);
}

static void test_too_long(void **state)
{
	(void)state;
	too_long(0, 0);
	too_long(5, 20);
}

static void test_too_long_huge(void **state)
{
	/* A line far past both the cap and the reader's 1 MiB buffer, so the
	 * skip goes on across many refills; memory stays bounded by the cap. */
	const size_t huge = (size_t)3 << 20;
	char *big = repeat('h', huge);
	as_buf in = AS_BUF_INIT;
	as_lines l;
	feeder f;

	(void)state;
	as_buf_adds(&in, "{\"a\":1}\n");
	as_buf_add(&in, big, huge);
	as_buf_adds(&in, "\n{\"a\":2}\n");
	f = feed(in.data, in.len, 0, 0);
	assert_int_equal(as_lines_init(&l, f.fd, 1000, 1, "huge"), 0);
	expect_line(&l, "{\"a\":1}", 1);
	expect_too_long(&l, huge, 2);
	expect_line(&l, "{\"a\":2}", 3);
	expect_eof(&l);
	assert_true(l.cap <= 1000 + ((size_t)1 << 20));
	assert_true(as_lines_digest(&l) == as_hash64(in.data, in.len));
	as_lines_free(&l);
	feed_done(&f);
	as_buf_free(&in);
	free(big);
}

static void test_long_lines_grow(void **state)
{
	/* Lines longer than the initial 1 MiB buffer but under the cap are
	 * returned whole. */
	const size_t n = ((size_t)1 << 20) + 12345;
	char *big = repeat('g', n);
	as_buf in = AS_BUF_INIT;
	const char *line;
	size_t len;
	as_error err;
	as_lines l;
	feeder f;

	(void)state;
	as_buf_add(&in, big, n);
	as_buf_adds(&in, "\ntail\n");
	f = feed(in.data, in.len, 0, 0);
	assert_int_equal(as_lines_init(&l, f.fd, 4u << 20, 0, "grow"), 0);
	assert_int_equal(as_lines_next(&l, &line, &len, &err), AS_LINE_OK);
	assert_int_equal(len, n);
	assert_memory_equal(line, big, n);
	expect_line(&l, "tail", 2);
	expect_eof(&l);
	as_lines_free(&l);
	feed_done(&f);
	as_buf_free(&in);
	free(big);
}

static void test_skip_digest(void **state)
{
	static const char data[] = "l1\nl2\nl3\nl4\nl5";
	as_error err;
	as_lines l;
	feeder f;

	(void)state;
	/* Skip the first three lines (9 bytes) through 1..3-byte reads: the
	 * digest is the hash of exactly those bytes, reading resumes at l4. */
	f = feed(data, sizeof(data) - 1, 3, 100);
	assert_int_equal(as_lines_init(&l, f.fd, 64, 1, "skip"), 0);
	assert_int_equal(as_lines_skip(&l, 9, &err), 0);
	assert_int_equal(l.consumed, 9);
	assert_int_equal(l.line, 3);
	assert_true(as_lines_digest(&l) == as_hash64(data, 9));
	expect_line(&l, "l4", 4);
	assert_true(as_lines_digest(&l) == as_hash64(data, 12));
	expect_line(&l, "l5", 5);
	expect_eof(&l);
	as_lines_free(&l);
	feed_done(&f);

	/* The digest after reading lines equals the digest after skipping
	 * the same bytes: a checkpoint written while reading matches the
	 * check made when resuming. */
	{
		uint64_t read_digest;
		char got[16];
		size_t len;

		f = feed(data, sizeof(data) - 1, 0, 0);
		assert_int_equal(as_lines_init(&l, f.fd, 64, 1, "read"), 0);
		for (int i = 0; i < 3; i++)
			assert_int_equal(next(&l, got, sizeof(got), &len),
					 AS_LINE_OK);
		read_digest = as_lines_digest(&l);
		assert_int_equal(l.consumed, 9);
		as_lines_free(&l);
		feed_done(&f);
		assert_true(read_digest == as_hash64(data, 9));
	}

	/* Skipping nothing. */
	f = feed(data, sizeof(data) - 1, 0, 0);
	assert_int_equal(as_lines_init(&l, f.fd, 64, 1, "zero"), 0);
	assert_int_equal(as_lines_skip(&l, 0, &err), 0);
	assert_true(as_lines_digest(&l) == as_hash64("", 0));
	expect_line(&l, "l1", 1);
	as_lines_free(&l);
	feed_done(&f);
}

static void test_skip_eof(void **state)
{
	static const char data[] = "a\nb\n";
	as_error err;
	as_lines l;
	feeder f;

	(void)state;
	/* The input is shorter than the checkpoint's offset: the checkpoint
	 * no longer applies. */
	f = feed(data, sizeof(data) - 1, 1, 50);
	assert_int_equal(as_lines_init(&l, f.fd, 64, 1, "short"), 0);
	as_error_clear(&err);
	assert_int_equal(as_lines_skip(&l, 10, &err), AS_ECHECKPOINT);
	assert_int_equal(l.consumed, 4);
	assert_true(as_lines_digest(&l) == as_hash64(data, 4));
	as_lines_free(&l);
	feed_done(&f);

	/* Exactly the whole input is fine. */
	f = feed(data, sizeof(data) - 1, 0, 0);
	assert_int_equal(as_lines_init(&l, f.fd, 64, 1, "exact"), 0);
	assert_int_equal(as_lines_skip(&l, 4, &err), 0);
	expect_eof(&l);
	as_lines_free(&l);
	feed_done(&f);
}

static void test_read_error(void **state)
{
	const char *line;
	as_error err;
	size_t len;
	as_lines l;
	int fd = open("/dev/null", O_RDONLY);

	(void)state;
	assert_true(fd >= 0);
	close(fd); /* now a stale descriptor: read() fails with EBADF */
	assert_int_equal(as_lines_init(&l, fd, 64, 0, "gone.jsonl"), 0);
	as_error_clear(&err);
	assert_int_equal(as_lines_next(&l, &line, &len, &err), AS_ESOURCE);
	assert_int_equal(err.code, AS_ESOURCE);
	assert_int_equal(err.native, EBADF);
	assert_int_equal(strncmp(err.msg, "gone.jsonl: read: ", 18), 0);
	as_lines_free(&l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_split_reads),
		cmocka_unit_test(test_crlf_and_ends),
		cmocka_unit_test(test_too_long),
		cmocka_unit_test(test_too_long_huge),
		cmocka_unit_test(test_long_lines_grow),
		cmocka_unit_test(test_skip_digest),
		cmocka_unit_test(test_skip_eof),
		cmocka_unit_test(test_read_error),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
