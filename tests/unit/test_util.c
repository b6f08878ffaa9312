/*
 * Unit tests of util/: capped buffers, string helpers (splitting, SQL and
 * shell quoting checked through /bin/sh), ISO 8601 time, the batch arena,
 * hashes, error records, crash points (in forked children) and lease owner
 * strings (self, reaped, zombie, stopped and remote owners).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* gcc says __SANITIZE_ADDRESS__, clang (the sanitizer build) __has_feature. */
#if defined(__SANITIZE_ADDRESS__)
#define TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TEST_ASAN 1
#endif
#endif
#if defined(TEST_ASAN)
/* From libasan (its header ships with clang only). */
size_t __sanitizer_get_current_allocated_bytes(void);
#endif

#include "util/arena.h"
#include "util/buf.h"
#include "util/crash.h"
#include "util/error.h"
#include "util/hash.h"
#include "util/proc.h"
#include "util/str.h"
#include "util/time.h"

/* ---- buf ---- */

static void test_buf_growth(void **state)
{
	as_buf b = AS_BUF_INIT;
	char expect[10000];

	(void)state;
	for (size_t i = 0; i < sizeof(expect); i++) {
		expect[i] = (char)('a' + i % 26);
		assert_int_equal(as_buf_addc(&b, expect[i]), 0);
		assert_int_equal(b.len, i + 1);
		assert_true(b.cap >= b.len + 1);
		assert_int_equal(b.data[b.len], '\0');
	}
	assert_memory_equal(b.data, expect, sizeof(expect));
	/* Doubling growth: far fewer reallocations than appends. */
	assert_true(b.cap < 2 * (sizeof(expect) + 1) + 64);

	as_buf_reset(&b);
	assert_int_equal(b.len, 0);
	assert_string_equal(as_buf_cstr(&b), "");
	assert_true(b.cap > 0); /* memory kept */
	assert_int_equal(as_buf_adds(&b, "xy"), 0);
	assert_int_equal(as_buf_add(&b, "z\0w", 3), 0);
	assert_int_equal(b.len, 5);
	assert_memory_equal(b.data, "xyz\0w", 6);
	as_buf_free(&b);
	assert_null(b.data);
	assert_int_equal(b.len, 0);

	/* A fresh buffer reads as "" without allocating. */
	as_buf_init(&b, 0);
	assert_string_equal(as_buf_cstr(&b), "");
	assert_null(b.data);
	as_buf_free(&b);
}

static void test_buf_cap(void **state)
{
	as_buf b;

	(void)state;
	as_buf_init(&b, 16);
	assert_int_equal(as_buf_adds(&b, "0123456789"), 0);
	/* Past the cap: AS_ENOMEM, and the buffer is exactly as before. */
	assert_int_equal(as_buf_adds(&b, "abcdefghij"), AS_ENOMEM);
	assert_int_equal(b.len, 10);
	assert_string_equal(b.data, "0123456789");
	assert_int_equal(as_buf_printf(&b, "%s", "ABCDEFG"), AS_ENOMEM);
	assert_int_equal(b.len, 10);
	assert_string_equal(b.data, "0123456789");
	assert_int_equal(as_buf_reserve(&b, 7), AS_ENOMEM);
	assert_int_equal(as_buf_reserve(&b, SIZE_MAX), AS_ENOMEM);
	/* The failure is sticky: text built in several appends is never
	 * missing a middle part, and what it reads as is no valid SQL. */
	assert_int_equal(as_buf_addc(&b, 'x'), AS_ENOMEM);
	assert_int_equal(b.len, 10);
	assert_string_equal(as_buf_cstr(&b), AS_BUF_OOM);
	assert_true(as_buf_text_failed(as_buf_cstr(&b)));
	assert_false(as_buf_text_failed(b.data));
	/* Until a reset.  Up to the cap exactly is fine. */
	as_buf_reset(&b);
	assert_int_equal(as_buf_adds(&b, "0123456789abcdef"), 0);
	assert_int_equal(b.len, 16);
	/* An empty append at the cap is not an error. */
	assert_int_equal(as_buf_add(&b, "", 0), 0);
	assert_int_equal(as_buf_addc(&b, '!'), AS_ENOMEM);
	assert_string_equal(b.data, "0123456789abcdef");
	/* A failed buffer detaches as NULL, not as a cut-short text. */
	assert_null(as_buf_detach(&b));
	assert_int_equal(as_buf_adds(&b, "ok"), 0);
	as_buf_free(&b);

	/* max 0 means the default cap (1 GiB), not "no room". */
	as_buf_init(&b, 0);
	assert_int_equal(as_buf_adds(&b, "ok"), 0);
	assert_int_equal(as_buf_reserve(&b, ((size_t)1 << 30) + 1), AS_ENOMEM);
	assert_string_equal(b.data, "ok");
	as_buf_reset(&b);
	assert_string_equal(as_buf_cstr(&b), "");
	as_buf_free(&b);
}

static void test_buf_printf_detach(void **state)
{
	as_buf b = AS_BUF_INIT;
	char *s;

	(void)state;
	assert_int_equal(as_buf_printf(&b, "%d-%s-%.2f", 42, "x", 1.5), 0);
	assert_int_equal(as_buf_printf(&b, "|%05u", 7u), 0);
	assert_string_equal(b.data, "42-x-1.50|00007");
	assert_int_equal(b.len, strlen("42-x-1.50|00007"));
	/* A long format forces growth inside vprintf. */
	assert_int_equal(as_buf_printf(&b, "%300s", "end"), 0);
	assert_int_equal(b.len, 15 + 300);
	assert_string_equal(b.data + b.len - 3, "end");

	s = as_buf_detach(&b);
	assert_non_null(s);
	assert_int_equal(strlen(s), 315);
	assert_null(b.data);
	assert_int_equal(b.len, 0);
	assert_int_equal(b.cap, 0);
	free(s);

	/* Detaching an empty buffer still hands out a "" to free. */
	s = as_buf_detach(&b);
	assert_non_null(s);
	assert_string_equal(s, "");
	free(s);

	/* printf of "" into an empty buffer gives a real, terminated "". */
	assert_int_equal(as_buf_printf(&b, "%s", ""), 0);
	assert_non_null(b.data);
	assert_string_equal(b.data, "");
	as_buf_free(&b);
}

/* ---- str ---- */

static void check_split(const char *s, char sep, size_t n,
			const char *const *want)
{
	size_t got = 99;
	char **v = as_split(s, sep, &got);

	assert_non_null(v);
	assert_int_equal(got, n);
	for (size_t i = 0; i < n; i++)
		assert_string_equal(v[i], want[i]);
	assert_null(v[n]);
	as_strv_free(v, got);
}

static void test_str_split(void **state)
{
	(void)state;
	check_split("a,b,c", ',', 3, (const char *[]){"a", "b", "c"});
	check_split("abc", ',', 1, (const char *[]){"abc"});
	check_split("", ',', 1, (const char *[]){""});
	check_split(",", ',', 2, (const char *[]){"", ""});
	check_split("a,,b", ',', 3, (const char *[]){"a", "", "b"});
	check_split(",a,", ',', 3, (const char *[]){"", "a", ""});
	check_split("k1;k2", ';', 2, (const char *[]){"k1", "k2"});
	check_split("a b,c", ' ', 2, (const char *[]){"a", "b,c"});
	as_strv_free(NULL, 3); /* NULL-safe */
}

static void check_quoted(int (*fn)(as_buf *, const char *), const char *in,
			 const char *want)
{
	as_buf b = AS_BUF_INIT;

	assert_int_equal(fn(&b, in), 0);
	assert_string_equal(as_buf_cstr(&b), want);
	as_buf_free(&b);
}

static void test_str_quote_sql(void **state)
{
	(void)state;
	check_quoted(as_buf_add_ident, "plain", "\"plain\"");
	check_quoted(as_buf_add_ident, "a\"b", "\"a\"\"b\"");
	check_quoted(as_buf_add_ident, "\"", "\"\"\"\"");
	check_quoted(as_buf_add_ident, "", "\"\"");
	check_quoted(as_buf_add_ident, "it's", "\"it's\"");
	check_quoted(as_buf_add_literal, "it's", "'it''s'");
	check_quoted(as_buf_add_literal, "''", "''''''");
	check_quoted(as_buf_add_literal, "a\"b", "'a\"b'");

	/* A capped buffer reports AS_ENOMEM and stays within its cap. */
	{
		as_buf b;

		as_buf_init(&b, 4);
		assert_int_equal(as_buf_add_ident(&b, "abcdef"), AS_ENOMEM);
		assert_true(b.len <= 4);
		as_buf_free(&b);
	}
}

/* Run `printf %s QUOTED` through /bin/sh and read back what it printed. */
static void shell_round_trip(const char *s)
{
	as_buf cmd = AS_BUF_INIT;
	char out[512];
	size_t n;
	FILE *p;

	as_buf_adds(&cmd, "printf %s ");
	assert_int_equal(as_buf_add_shell(&cmd, s), 0);
	p = popen(as_buf_cstr(&cmd), "r");
	assert_non_null(p);
	n = fread(out, 1, sizeof(out) - 1, p);
	out[n] = '\0';
	assert_int_equal(pclose(p), 0);
	if (strcmp(out, s) != 0)
		fail_msg("shell quoting of [%s] came back as [%s] (command %s)",
			 s, out, as_buf_cstr(&cmd));
	as_buf_free(&cmd);
}

static void test_str_shell_quote(void **state)
{
	static const char *cases[] = {
		"plain",
		"",
		"a b",
		"it's",
		"'",
		"''",
		"'start",
		"end'",
		"$HOME",
		"${PATH}",
		"$(echo pwned)",
		"`echo pwned`",
		"a\"b",
		"back\\slash",
		"line\nbreak",
		"tab\there",
		"*",
		"?",
		"~",
		"a;b|c&d>e<f",
		"!x",
		"%s %d",
		"-n",
		"{\"state\": {\"a\": 1}}",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		shell_round_trip(cases[i]);
	check_quoted(as_buf_add_shell, "it's", "'it'\\''s'");
}

static void check_count(long long n, const char *want)
{
	char buf[40];

	memset(buf, 'X', sizeof(buf));
	assert_string_equal(as_fmt_count(buf, sizeof(buf), n), want);
}

static void test_str_fmt_count(void **state)
{
	char small[6];
	const char *r;

	(void)state;
	check_count(0, "0");
	check_count(7, "7");
	check_count(999, "999");
	check_count(1000, "1,000");
	check_count(12500, "12,500");
	check_count(100000, "100,000");
	check_count(1234567, "1,234,567");
	check_count(-1, "-1");
	check_count(-999, "-999");
	check_count(-1000, "-1,000");
	check_count(-1234567, "-1,234,567");
	check_count(LLONG_MAX, "9,223,372,036,854,775,807");
	check_count(LLONG_MIN, "-9,223,372,036,854,775,808");

	/* A small buffer truncates but stays terminated inside its bounds. */
	memset(small, 'X', sizeof(small));
	r = as_fmt_count(small, sizeof(small), 1234567);
	assert_true(strlen(r) < sizeof(small));
	assert_string_equal(r, "1,23");
	assert_string_equal(as_fmt_count(small, 1, 5), "");
}

static void test_str_misc(void **state)
{
	char *s;

	(void)state;
	assert_true(as_streq(NULL, NULL));
	assert_false(as_streq("a", NULL));
	assert_false(as_streq(NULL, "a"));
	assert_true(as_streq("a", "a"));
	assert_false(as_streq("a", "b"));
	assert_true(as_is_ident("_a1"));
	assert_true(as_is_ident("Z"));
	assert_false(as_is_ident("1a"));
	assert_false(as_is_ident(""));
	assert_false(as_is_ident(NULL));
	assert_false(as_is_ident("a-b"));
	assert_false(as_is_ident("a b"));
	assert_false(as_is_ident("a\"b"));
	assert_null(as_strdup(NULL));
	s = as_strndup("abcdef", 3);
	assert_string_equal(s, "abc");
	free(s);
	s = as_sprintf("%s=%d", "n", 5);
	assert_string_equal(s, "n=5");
	free(s);
}

/* ---- time ---- */

static void check_iso(double t, const char *want)
{
	char buf[48];

	assert_string_equal(as_iso8601(t, buf, sizeof(buf)), want);
}

static void test_time_iso8601_format(void **state)
{
	char buf[48];
	double t, now;

	(void)state;
	check_iso(0, "1970-01-01T00:00:00.000Z");
	check_iso(1700000000, "2023-11-14T22:13:20.000Z");
	check_iso(1700000000.5, "2023-11-14T22:13:20.500Z");
	/* Milliseconds that are not exact in binary must not lose one. */
	check_iso(1700000000.123, "2023-11-14T22:13:20.123Z");
	check_iso(1767225600.001, "2026-01-01T00:00:00.001Z");
	check_iso(1767225599.999, "2025-12-31T23:59:59.999Z");
	check_iso(951782400, "2000-02-29T00:00:00.000Z"); /* leap day */
	/* Before the epoch: floor, not truncation toward zero. */
	check_iso(-0.5, "1969-12-31T23:59:59.500Z");

	now = as_now();
	as_iso8601(now, buf, sizeof(buf));
	assert_int_equal(strlen(buf), 24);
	assert_int_equal(as_parse_iso8601(buf, &t), 0);
	assert_true(t - now < 0.0011 && now - t < 0.0011);
	assert_true(as_mono() > 0);
	assert_true(as_mono_ms() > 0);
}

static void check_parse(const char *s, double want)
{
	double t = -12345;

	if (as_parse_iso8601(s, &t) != 0)
		fail_msg("'%s' did not parse", s);
	if (t < want - 1e-6 || t > want + 1e-6)
		fail_msg("'%s' parsed to %.6f, want %.6f", s, t, want);
}

static void check_bad(const char *s)
{
	double t = 0;

	if (as_parse_iso8601(s, &t) != -1)
		fail_msg("'%s' was accepted (as %.3f)", s, t);
}

static void test_time_parse(void **state)
{
	const double jan1 = 1767225600; /* 2026-01-01T00:00:00Z */

	(void)state;
	check_parse("2026-01-01T00:00:00Z", jan1);
	check_parse("2026-01-01t00:00:00z", jan1);
	check_parse("2026-01-01 00:00:00Z", jan1);
	check_parse("2026-01-01T00:00:00", jan1); /* no zone: UTC */
	check_parse("2026-01-01", jan1);
	check_parse("2026-01-01T00:00Z", jan1);
	check_parse("2026-01-01T02:00:00+02:00", jan1);
	check_parse("2026-01-01T02:00:00+0200", jan1);
	check_parse("2025-12-31T18:30:00-05:30", jan1);
	check_parse("2026-01-01T00:00:00+00:00", jan1);
	check_parse("2026-01-01T00:00:00-00:00", jan1);
	check_parse("2026-01-01T00:00:00.5Z", jan1 + 0.5);
	check_parse("2026-01-01T00:00:00.123Z", jan1 + 0.123);
	check_parse("2026-01-01T00:00:00.123456789Z", jan1 + 0.123456789);
	check_parse("2026-01-01T01:00:00.250+01:00", jan1 + 0.25);
	check_parse("1970-01-01T00:00:00Z", 0);
	check_parse("2000-02-29T12:00:00Z", 951825600);
	check_parse("2026-12-31T23:59:59Z", 1798761599);

	check_bad("");
	check_bad("abc");
	check_bad("2026");
	check_bad("2026-1-01");
	check_bad("2026-01-1");
	check_bad("2026/01/01");
	check_bad("2026-00-01");
	check_bad("2026-13-01");
	check_bad("2026-01-00");
	check_bad("2026-01-32");
	check_bad("2026-01-01T");
	check_bad("2026-01-01T1:00:00Z");
	check_bad("2026-01-01T24:00:00Z");
	check_bad("2026-01-01T00:60:00Z");
	check_bad("2026-01-01T00:00:61Z");
	check_bad("2026-01-01T00:00:00.Z");
	check_bad("2026-01-01T00:00:00Zjunk");
	check_bad("2026-01-01T00:00:00 Z");
	check_bad("2026-01-01T00:00:00+5");
	check_bad("2026-01-01T00:00:00+05:");
	check_bad("2026-01-01junk");
	/* Days that do not exist in their month are not silently moved. */
	check_bad("2026-02-29");
	check_bad("2026-02-30T00:00:00Z");
	check_bad("2026-04-31T00:00:00Z");
	check_bad("1900-02-29T00:00:00Z");
	check_parse("2024-02-29T00:00:00Z", 1709164800);
	/* Offsets out of range. */
	check_bad("2026-01-01T00:00:00+24:00");
	check_bad("2026-01-01T00:00:00+05:60");
}

static void test_time_round_trip(void **state)
{
	char buf[48];
	double t;

	(void)state;
	/* Whole milliseconds survive format -> parse exactly (to the ms). */
	for (long long ms = 1700000000000LL; ms < 1700000000000LL + 5000;
	     ms += 7) {
		double in = (double)ms / 1000.0;

		as_iso8601(in, buf, sizeof(buf));
		assert_int_equal(as_parse_iso8601(buf, &t), 0);
		if (t * 1000.0 < (double)ms - 0.01 ||
		    t * 1000.0 > (double)ms + 0.01)
			fail_msg("%lld ms -> %s -> %.4f", ms, buf, t);
	}
}

/* ---- arena ---- */

static size_t heap_in_use(void)
{
#if defined(TEST_ASAN)
	return __sanitizer_get_current_allocated_bytes();
#else
	struct mallinfo2 mi = mallinfo2();

	return mi.uordblks + mi.hblkhd;
#endif
}

static void test_arena_alignment(void **state)
{
	static const size_t sizes[] = {1, 3, 7, 8, 9, 13, 0, 31, 100, 5};
	char *p[10];
	as_arena a;

	(void)state;
	as_arena_init(&a);
	for (size_t i = 0; i < 10; i++) {
		p[i] = as_arena_alloc(&a, sizes[i]);
		assert_non_null(p[i]);
		assert_int_equal((uintptr_t)p[i] % 8, 0);
		memset(p[i], (int)i + 1, sizes[i]);
	}
	/* No two allocations overlap: every byte still holds its own mark. */
	for (size_t i = 0; i < 10; i++)
		for (size_t k = 0; k < sizes[i]; k++)
			assert_int_equal(p[i][k], (char)(i + 1));
	assert_int_equal(a.used, 8 + 8 + 8 + 8 + 16 + 16 + 0 + 32 + 104 + 8);

	{
		char *s = as_arena_strndup(&a, "hello world", 5);

		assert_string_equal(s, "hello");
		assert_int_equal((uintptr_t)s % 8, 0);
	}
	as_arena_free(&a);
	assert_null(a.head);
	assert_int_equal(a.used, 0);
}

static void test_arena_reuse(void **state)
{
	as_arena a;
	char *p1, *p2, *q1, *q2;
	size_t base, grown;

	(void)state;
	as_arena_init(&a);
	p1 = as_arena_alloc(&a, 100);
	q1 = as_arena_alloc(&a, 200);
	/* Fill more than one standard chunk. */
	for (int i = 0; i < 3000; i++)
		assert_non_null(as_arena_alloc(&a, 200));
	base = heap_in_use();
	as_arena_reset(&a);
	assert_int_equal(a.used, 0);
	/* Standard chunks are kept: the same memory comes back, nothing new
	 * is allocated for a batch of the same size. */
	p2 = as_arena_alloc(&a, 100);
	q2 = as_arena_alloc(&a, 200);
	assert_ptr_equal(p1, p2);
	assert_ptr_equal(q1, q2);
	for (int i = 0; i < 3000; i++)
		assert_non_null(as_arena_alloc(&a, 200));
	grown = heap_in_use();
	assert_true(grown <= base);
	as_arena_free(&a);
}

static void test_arena_oversized(void **state)
{
	const size_t big = 8u << 20; /* 8 MiB: far over the 256 KiB chunks */
	size_t before, during, after;
	as_arena a;
	char *small1, *huge, *small2;

	(void)state;
	as_arena_init(&a);
	small1 = as_arena_alloc(&a, 64);
	before = heap_in_use();
	huge = as_arena_alloc(&a, big);
	assert_non_null(huge);
	assert_int_equal((uintptr_t)huge % 8, 0);
	memset(huge, 0xab, big);
	small2 = as_arena_alloc(&a, 64);
	assert_non_null(small2);
	memset(small2, 0x11, 64);
	assert_int_equal((unsigned char)huge[big - 1], 0xab);
	during = heap_in_use();
	assert_true(during >= before + big);
	as_arena_reset(&a);
	after = heap_in_use();
	/* The huge chunk went back to the heap at the reset. */
	assert_true(after + big <= during);
	/* The standard chunk is still reused. */
	assert_ptr_equal(as_arena_alloc(&a, 64), small1);
	/* An oversized request as the very first allocation works too, and a
	 * reset after it leaves an arena that still works. */
	as_arena_free(&a);
	as_arena_init(&a);
	assert_non_null(as_arena_alloc(&a, big));
	as_arena_reset(&a);
	assert_non_null(as_arena_alloc(&a, 16));
	assert_non_null(as_arena_alloc(&a, big));
	assert_non_null(as_arena_alloc(&a, 16));
	as_arena_free(&a);
	/* Overflowing sizes fail instead of wrapping. */
	as_arena_init(&a);
	assert_null(as_arena_alloc(&a, SIZE_MAX - 3));
	as_arena_free(&a);
}

/* ---- hash ---- */

static void test_hash(void **state)
{
	const char *text = "the quick brown fox jumps over the lazy dog";
	as_hasher h;

	(void)state;
	/* Published XXH3-64 value of the empty input: the hash stored in
	 * `_atomsync_hash` must never change between builds (invariant 5). */
	assert_true(as_hash64("", 0) == 0x2D06800538D394C2ULL);
	assert_true(as_hash64(text, strlen(text)) ==
		    as_hash64(text, strlen(text)));
	assert_true(as_hash64("a", 1) != as_hash64("b", 1));
	assert_true(as_hash64("ab", 2) != as_hash64("ba", 2));
	assert_true(as_hash64("a", 1) != as_hash64("a\0", 2));
	assert_true(as_hash64(text, 10) != as_hash64(text, 11));

	/* Streaming in pieces gives the one-shot value. */
	assert_int_equal(as_hasher_init(&h), 0);
	for (size_t i = 0; i < strlen(text); i += 3)
		as_hasher_update(&h, text + i,
				 strlen(text) - i < 3 ? strlen(text) - i : 3);
	assert_true(as_hasher_digest(&h) == as_hash64(text, strlen(text)));
	as_hasher_free(&h);
	assert_null(h.state);
	as_hasher_free(&h); /* twice is harmless */
	assert_int_equal(as_hasher_init(&h), 0);
	assert_true(as_hasher_digest(&h) == as_hash64("", 0));
	as_hasher_free(&h);
}

/* ---- error ---- */

static void test_error(void **state)
{
	as_error err;
	char longer[3000];

	(void)state;
	as_error_clear(&err);
	assert_int_equal(err.code, 0);
	assert_string_equal(err.msg, "");

	assert_int_equal(as_error_set(&err, AS_EINPUT, "%s:%d: bad\nvalue\r!",
				      "f.jsonl", 3),
			 AS_EINPUT);
	assert_string_equal(err.msg, "f.jsonl:3: bad value !");
	err.native = 19;
	strcpy(err.sqlstate, "23505");

	/* The prefix keeps code, native and sqlstate, and puts context first.
	 */
	assert_int_equal(as_error_prefix(&err, "dataset %s", "addons"),
			 AS_EINPUT);
	assert_int_equal(err.code, AS_EINPUT);
	assert_int_equal(err.native, 19);
	assert_string_equal(err.sqlstate, "23505");
	assert_string_equal(err.msg, "dataset addons: f.jsonl:3: bad value !");

	/* Context with a newline in it does not split the message either. */
	as_error_prefix(&err, "line\none");
	assert_null(strchr(err.msg, '\n'));
	assert_string_equal(err.msg,
			    "line one: dataset addons: f.jsonl:3: bad value !");

	/* A prefix on a cleared error still yields a failure code. */
	as_error_clear(&err);
	assert_int_equal(as_error_prefix(&err, "ctx"), AS_ERROR);
	assert_string_equal(err.msg, "ctx");

	/* errno: message and native code. */
	errno = ENOENT;
	assert_int_equal(as_error_errno(&err, AS_ESOURCE, "open %s", "x.jsonl"),
			 AS_ESOURCE);
	assert_int_equal(err.native, ENOENT);
	assert_int_equal(errno, ENOENT);
	{
		char want[200];

		snprintf(want, sizeof(want), "open x.jsonl: %s",
			 strerror(ENOENT));
		assert_string_equal(err.msg, want);
	}
	/* Setting replaces native and sqlstate. */
	as_error_set(&err, AS_ESTORE, "x");
	assert_int_equal(err.native, 0);

	/* Over-long messages are cut, terminated, within the record. */
	memset(longer, 'x', sizeof(longer) - 1);
	longer[sizeof(longer) - 1] = '\0';
	as_error_set(&err, AS_EINPUT, "%s", longer);
	assert_int_equal(strlen(err.msg), AS_ERROR_MSG_MAX - 1);
	as_error_prefix(&err, "ctx");
	assert_int_equal(strlen(err.msg), AS_ERROR_MSG_MAX - 1);
	assert_memory_equal(err.msg, "ctx: xxx", 8);

	/* NULL error records are allowed and still return the code. */
	assert_int_equal(as_error_set(NULL, AS_ESTORE, "x"), AS_ESTORE);
	assert_int_equal(as_error_errno(NULL, AS_ESOURCE, "x"), AS_ESOURCE);

	assert_string_equal(as_error_code_name(AS_ELEASE), "lease");
	assert_string_equal(as_error_code_name(AS_EFENCED), "fenced");
	assert_string_equal(as_error_code_name(AS_ENOTFOUND), "notfound");
	assert_string_equal(as_error_code_name(-99), "error");
}

/* ---- crash points ---- */

/* In a child: configure crash points from env, pass them as script says
 * ('p' = unit.point, 'o' = unit.other), writing one byte to fd after each
 * pass survived.  Returns the child's wait status. */
static int crash_child(const char *spec, const char *logf, const char *script,
		       char *survived, size_t cap)
{
	int fds[2], status;
	pid_t pid;
	ssize_t n;

	assert_int_equal(pipe(fds), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(fds[0]);
		if (spec)
			setenv("ATOMSYNC_CRASH", spec, 1);
		else
			unsetenv("ATOMSYNC_CRASH");
		if (logf)
			setenv("ATOMSYNC_CRASH_LOG", logf, 1);
		else
			unsetenv("ATOMSYNC_CRASH_LOG");
		as_crash_init();
		if (write(fds[1], as_crash_enabled ? "E" : "D", 1) != 1)
			_exit(3);
		for (const char *s = script; *s; s++) {
			as_crash_point(*s == 'p' ? "unit.point" : "unit.other");
			if (write(fds[1], s, 1) != 1)
				_exit(3);
		}
		_exit(0);
	}
	close(fds[1]);
	n = 0;
	for (;;) {
		ssize_t r = read(fds[0], survived + n, cap - 1 - (size_t)n);

		if (r <= 0)
			break;
		n += r;
	}
	survived[n] = '\0';
	close(fds[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return status;
}

static void test_crash_points(void **state)
{
	char got[64], dir[] = "/tmp/as-util-XXXXXX", logf[128];
	char text[256];
	FILE *f;
	size_t n;
	int st;

	(void)state;
	/* "point:3": the third pass of that point exits 86; other points and
	 * earlier passes go on. */
	st = crash_child("unit.point:3", NULL, "popopop", got, sizeof(got));
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), AS_CRASH_EXIT);
	assert_string_equal(got, "Epopo");

	/* The name alone means the first pass. */
	st = crash_child("unit.point", NULL, "oop", got, sizeof(got));
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), AS_CRASH_EXIT);
	assert_string_equal(got, "Eoo");

	/* N < 1 counts as 1. */
	st = crash_child("unit.point:0", NULL, "p", got, sizeof(got));
	assert_int_equal(WEXITSTATUS(st), AS_CRASH_EXIT);
	assert_string_equal(got, "E");

	/* Fewer passes than N: no crash. */
	st = crash_child("unit.point:5", NULL, "pppp", got, sizeof(got));
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	assert_string_equal(got, "Epppp");

	/* Nothing set: disabled, every pass is a no-op. */
	st = crash_child(NULL, NULL, "pppo", got, sizeof(got));
	assert_int_equal(WEXITSTATUS(st), 0);
	assert_string_equal(got, "Dpppo");

	/* The log records every point passed, the crashing one included. */
	assert_non_null(mkdtemp(dir));
	snprintf(logf, sizeof(logf), "%s/crash.log", dir);
	st = crash_child("unit.point:2", logf, "opop", got, sizeof(got));
	assert_int_equal(WEXITSTATUS(st), AS_CRASH_EXIT);
	assert_string_equal(got, "Eopo");
	f = fopen(logf, "r");
	assert_non_null(f);
	n = fread(text, 1, sizeof(text) - 1, f);
	text[n] = '\0';
	fclose(f);
	assert_string_equal(text,
			    "unit.other\nunit.point\nunit.other\nunit.point\n");
	/* The log alone enables the points without crashing. */
	unlink(logf);
	st = crash_child(NULL, logf, "pp", got, sizeof(got));
	assert_int_equal(WEXITSTATUS(st), 0);
	assert_string_equal(got, "Epp");
	unlink(logf);
	assert_int_equal(rmdir(dir), 0);
}

/* ---- proc ---- */

/* Field 22 of /proc/PID/stat read independently of proc.c; 0 if gone. */
static unsigned long long stat_start(pid_t pid, char *state_out)
{
	char path[64], buf[1024];
	unsigned long long v = 0;
	char *p;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
	f = fopen(path, "r");
	if (!f)
		return 0;
	p = fgets(buf, sizeof(buf), f);
	fclose(f);
	if (!p || !(p = strrchr(buf, ')')))
		return 0;
	if (state_out)
		*state_out = p[2];
	/* ") S ppid ...": after the state come fields 4..22; skip 18 of them.
	 */
	p += 2;
	for (int i = 0; i < 19 && p; i++) {
		p = strchr(p, ' ');
		if (p)
			p++;
	}
	if (p)
		v = strtoull(p, NULL, 10);
	return v;
}

/* The inode of our pid namespace: the last field of an owner string. */
static unsigned long long self_pid_ns(void)
{
	char link[64] = "";
	ssize_t n = readlink("/proc/self/ns/pid", link, sizeof(link) - 1);

	if (n <= 0)
		return 0;
	link[n] = '\0';
	return strchr(link, '[') ? strtoull(strchr(link, '[') + 1, NULL, 10)
				 : 0;
}

static void owner_of(pid_t pid, unsigned long long start, char *out, size_t cap)
{
	char host[96] = "localhost";

	gethostname(host, sizeof(host) - 1);
	host[sizeof(host) - 1] = '\0';
	snprintf(out, cap, "%s/%ld/%llu/%llu", host, (long)pid, start,
		 self_pid_ns());
}

static void test_proc_owner_self(void **state)
{
	char want[200], other[200];
	const char *self = as_owner_self();
	unsigned long long st = stat_start(getpid(), NULL);

	(void)state;
	assert_true(st > 0);
	owner_of(getpid(), st, want, sizeof(want));
	assert_string_equal(self, want);
	assert_ptr_equal(as_owner_self(), self); /* stable */
	assert_int_equal(as_owner_is_dead(self), 0);

	/* Our pid with another start time: a recycled pid, the owner is dead.
	 */
	owner_of(getpid(), st + 1, other, sizeof(other));
	assert_int_equal(as_owner_is_dead(other), 1);
	/* Another host: only the expiry can tell. */
	snprintf(other, sizeof(other), "host-that-is-not-this.invalid/%ld/%llu",
		 (long)getpid(), st + 1);
	assert_int_equal(as_owner_is_dead(other), 0);
	assert_int_equal(as_owner_is_dead("elsewhere/1/1"), 0);
	/* A host name that is a prefix of ours is another host. */
	{
		char host[96] = "";

		gethostname(host, sizeof(host) - 1);
		if (strlen(host) > 1) {
			snprintf(other, sizeof(other), "%.*s/1/1",
				 (int)strlen(host) - 1, host);
			assert_int_equal(as_owner_is_dead(other), 0);
		}
	}
	/* No owner at all: nobody holds it. */
	assert_int_equal(as_owner_is_dead(NULL), 1);
	assert_int_equal(as_owner_is_dead(""), 1);
}

/* Fork a child that waits for a byte on a pipe, then exits. */
static pid_t idle_child(int *wfd)
{
	int fds[2];
	pid_t pid;

	assert_int_equal(pipe(fds), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char c;

		close(fds[1]);
		while (read(fds[0], &c, 1) < 0 && errno == EINTR)
			;
		_exit(0);
	}
	close(fds[0]);
	*wfd = fds[1];
	return pid;
}

static void test_proc_children(void **state)
{
	char owner[200], st_ch = 0;
	unsigned long long start;
	int wfd, status;
	pid_t pid;

	(void)state;
	/* A live child, then stopped (a paused worker keeps its lease), then
	 * a zombie (killed, not reaped: dead), then reaped (dead). */
	pid = idle_child(&wfd);
	start = stat_start(pid, NULL);
	assert_true(start > 0);
	owner_of(pid, start, owner, sizeof(owner));
	assert_int_equal(as_owner_is_dead(owner), 0);

	assert_int_equal(kill(pid, SIGSTOP), 0);
	assert_int_equal(waitpid(pid, &status, WUNTRACED), pid);
	assert_true(WIFSTOPPED(status));
	assert_int_equal(as_owner_is_dead(owner), 0);
	assert_int_equal(kill(pid, SIGCONT), 0);

	assert_int_equal(write(wfd, "x", 1), 1);
	close(wfd);
	for (int i = 0; i < 2000; i++) {
		if (stat_start(pid, &st_ch) == 0 || st_ch == 'Z')
			break;
		usleep(1000);
	}
	assert_int_equal(st_ch, 'Z');
	assert_int_equal(as_owner_is_dead(owner), 1);

	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_int_equal(as_owner_is_dead(owner), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_buf_growth),
		cmocka_unit_test(test_buf_cap),
		cmocka_unit_test(test_buf_printf_detach),
		cmocka_unit_test(test_str_split),
		cmocka_unit_test(test_str_quote_sql),
		cmocka_unit_test(test_str_shell_quote),
		cmocka_unit_test(test_str_fmt_count),
		cmocka_unit_test(test_str_misc),
		cmocka_unit_test(test_time_iso8601_format),
		cmocka_unit_test(test_time_parse),
		cmocka_unit_test(test_time_round_trip),
		cmocka_unit_test(test_arena_alignment),
		cmocka_unit_test(test_arena_reuse),
		cmocka_unit_test(test_arena_oversized),
		cmocka_unit_test(test_hash),
		cmocka_unit_test(test_error),
		cmocka_unit_test(test_crash_points),
		cmocka_unit_test(test_proc_owner_self),
		cmocka_unit_test(test_proc_children),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
