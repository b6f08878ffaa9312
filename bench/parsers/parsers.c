/*
 * Issue 19: ns per record for the JSON parsers atomsync could use, on the
 * benchmark's JSON-lines file.  Each parse visits every top-level field and
 * reads its value (strings' lengths, integers), as mapping to columns does.
 * Not part of the product.
 *   parsers FILE.jsonl [runs] [mode...]
 * modes: jansson jansson-arena jansson-nodup yajl simdjson jflat
 * (jflat: atomsync's flat-record scanner, src/util/jflat.cpp: simdjson
 * On-Demand plus the checks that keep jansson's rules)
 */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <yajl/yajl_parse.h>

#include "util/jflat.h"

long simd_line(const char *s, size_t n, size_t cap);

#define PAD 64

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---- jansson ---- */

static char *arena;
static size_t arena_off;

static void *bump(size_t n)
{
	size_t need = (n + 15) & ~(size_t)15;

	if (arena_off + need <= 65536) {
		void *p = arena + arena_off;
		arena_off += need;
		return p;
	}
	return malloc(n);
}

static void bump_free(void *p)
{
	if ((char *)p >= arena && (char *)p < arena + 65536)
		return;
	free(p);
}

static long jansson_line(const char *s, size_t n, size_t flags)
{
	json_error_t je;
	json_t *v = json_loadb(s, n, flags, &je), *x;
	const char *k;
	long acc = 0;

	if (!v || !json_is_object(v)) {
		json_decref(v);
		return -1;
	}
	json_object_foreach(v, k, x)
	{
		if (json_is_string(x))
			acc += (long)json_string_length(x);
		else if (json_is_integer(x))
			acc += (long)json_integer_value(x);
	}
	json_decref(v);
	arena_off = 0;
	return acc;
}

/* ---- yajl ---- */

static int y_null(void *ctx)
{
	(void)ctx;
	return 1;
}
static int y_bool(void *ctx, int b)
{
	*(long *)ctx += b;
	return 1;
}
static int y_num(void *ctx, const char *s, size_t n)
{
	/* the number's text: integers stay exact (strtoll / a big-integer
	 * path), reals go to strtod, as jansson does */
	char buf[64];

	if (n >= sizeof(buf))
		return 0;
	memcpy(buf, s, n);
	buf[n] = '\0';
	if (memchr(s, '.', n) || memchr(s, 'e', n) || memchr(s, 'E', n))
		(void)strtod(buf, NULL);
	else
		*(long *)ctx += strtoll(buf, NULL, 10);
	return 1;
}
static int y_str(void *ctx, const unsigned char *s, size_t n)
{
	(void)s;
	*(long *)ctx += (long)n;
	return 1;
}
static int y_key(void *ctx, const unsigned char *s, size_t n)
{
	(void)ctx;
	(void)s;
	(void)n;
	return 1;
}
static int y_map(void *ctx)
{
	(void)ctx;
	return 1;
}

static const yajl_callbacks ycb = {
	y_null, y_bool, NULL,  NULL,  y_num, y_str,
	y_map,	y_key,	y_map, y_map, y_map,
};

static long yajl_line(const char *s, size_t n)
{
	long acc = 0;
	yajl_handle h = yajl_alloc(&ycb, NULL, &acc);
	int ok;

	/* strings validated as UTF-8 by default */
	ok = yajl_parse(h, (const unsigned char *)s, n) == yajl_status_ok &&
	     yajl_complete_parse(h) == yajl_status_ok;
	yajl_free(h);
	return ok ? acc : -1;
}

/* ---- atomsync's scanner ---- */

static long jflat_line(const char *s, size_t n)
{
	static as_jflat j;
	long acc = 0;

	if (as_jflat_scan(s, n, &j))
		return -1;
	for (size_t k = 0; k < j.n; k++)
		if (j.f[k].kind == AS_JF_STRING)
			acc += (long)j.f[k].n;
		else if (j.f[k].kind == AS_JF_INT)
			acc += (long)j.f[k].i;
	return acc;
}

/* ---- driver ---- */

int main(int argc, char **argv)
{
	const char *modes_all[] = {"jansson", "jansson-arena", "jansson-nodup",
				   "yajl",    "simdjson",      "jflat"};
	const char **modes = modes_all;
	int nmodes = 6, runs = argc > 2 ? atoi(argv[2]) : 3;
	FILE *f;
	char *buf;
	long size;
	size_t nlines = 0, *off, *len;

	if (argc < 2) {
		fprintf(stderr, "usage: parsers FILE.jsonl [runs] [mode...]\n");
		return 2;
	}
	if (argc > 3) {
		modes = (const char **)argv + 3;
		nmodes = argc - 3;
	}
	f = fopen(argv[1], "rb");
	if (!f || fseek(f, 0, SEEK_END) || (size = ftell(f)) < 0)
		return perror(argv[1]), 1;
	rewind(f);
	buf = calloc(1, (size_t)size + PAD);
	if (fread(buf, 1, (size_t)size, f) != (size_t)size)
		return perror("read"), 1;
	fclose(f);
	for (long i = 0; i < size; i++)
		nlines += buf[i] == '\n';
	off = malloc(nlines * sizeof(*off));
	len = malloc(nlines * sizeof(*len));
	nlines = 0;
	for (long i = 0, s = 0; i < size; i++)
		if (buf[i] == '\n') {
			off[nlines] = (size_t)s;
			len[nlines++] = (size_t)(i - s);
			s = i + 1;
		}
	arena = malloc(65536);
	for (int m = 0; m < nmodes; m++) {
		double best = 1e30;
		long acc = 0, bad = 0;

		if (!strcmp(modes[m], "jansson-arena"))
			json_set_alloc_funcs(bump, bump_free);
		else
			json_set_alloc_funcs(malloc, free);
		for (int r = 0; r < runs; r++) {
			double t0 = now();

			acc = bad = 0;
			for (size_t i = 0; i < nlines; i++) {
				const char *s = buf + off[i];
				long v;

				if (!strncmp(modes[m], "jansson", 7))
					v = jansson_line(
						s, len[i],
						!strcmp(modes[m],
							"jansson-nodup")
							? 0
							: JSON_REJECT_DUPLICATES);
				else if (!strcmp(modes[m], "jflat"))
					v = jflat_line(s, len[i]);
				else if (!strcmp(modes[m], "yajl"))
					v = yajl_line(s, len[i]);
				else
					v = simd_line(s, len[i],
						      (size_t)size + PAD -
							      off[i]);
				if (v < 0)
					bad++;
				else
					acc += v;
			}
			double t = now() - t0;
			best = t < best ? t : best;
		}
		printf("%-14s %7.0f ns/record  (%zu records, best of %d, "
		       "check %ld, failed %ld)\n",
		       modes[m], best * 1e9 / (double)nlines, nlines, runs, acc,
		       bad);
		fflush(stdout);
	}
	return 0;
}
