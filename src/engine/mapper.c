/*
 * Parallel mapping: lines collected in chunks, each chunk parsed and mapped
 * half by the caller's thread and half by a mapper thread, then merged
 * into the batch in input order.
 */
#include <stdlib.h>
#include <string.h>

#include "engine/run_int.h"
#include "util/hash.h"

/* ---- parallel mapping ----
 *
 * A load that parses every record spends most of its CPU in JSON parsing.
 * Lines are collected in chunks; each chunk is parsed and mapped by this
 * thread and a mapper thread, half each, into the batch's two arenas, then
 * merged in input order: rejects, duplicates and checkpoints behave exactly
 * as with one thread.  Used once the column types are known (the first
 * record resolves undeclared ones) and when lines are not being matched
 * against the live table (a reload parses almost nothing).
 */

#define CHUNK_LINES 1024

static void map_range(atomsync_run *run, size_t lo, size_t hi, as_batch *h)
{
	as_chunk *c = &run->chunk;

	for (size_t i = lo; i < hi; i++) {
		as_chunk_line *ln = &c->lines[i];
		const char *raw = c->buf.data + ln->off;
		const char *where = c->buf.data + ln->woff;
		as_error why;
		json_t *rec;
		as_row *row;
		int rc;

		as_error_clear(&why);
		/* A flat record without a jansson value; any other, and every
		 * error, the general way (the same rows, the same errors). */
		rc = as_record_map_flat(&run->table, raw, ln->len, where, h, 0,
					&why);
		if (rc == AS_MAP_DECLINED) {
			as_json_arena_begin();
			rec = as_json_parse_record(raw, ln->len, where, &why);
			if (rec) {
				rc = as_record_map(&run->table, rec, raw,
						   ln->len, where, h, 0, &why);
				json_decref(rec);
			} else {
				rc = why.code ? why.code : AS_EINPUT;
			}
			as_json_arena_end();
		}
		if (rc) {
			ln->err = malloc(sizeof(*ln->err));
			if (ln->err)
				*ln->err = why;
			ln->row = (size_t)-1;
			continue;
		}
		ln->row = h->nrows - 1;
		row = &h->rows[ln->row];
		row->flags |= AS_ROW_LINE;
		as_hash128(raw, ln->len, run->line_seed, row->line);
	}
}

static void *mapper_main(void *arg)
{
	atomsync_run *run = arg;

	pthread_mutex_lock(&run->mmu);
	for (;;) {
		while (!run->mbusy && !run->mstop)
			pthread_cond_wait(&run->mcv, &run->mmu);
		if (!run->mbusy)
			break;
		pthread_mutex_unlock(&run->mmu);
		map_range(run, run->mlo, run->mhi, &run->half[1]);
		pthread_mutex_lock(&run->mmu);
		run->mbusy = 0;
		pthread_cond_broadcast(&run->mcv);
	}
	pthread_mutex_unlock(&run->mmu);
	return NULL;
}

static void mapper_stop(atomsync_run *run)
{
	if (!run->mapper_on)
		return;
	pthread_mutex_lock(&run->mmu);
	run->mstop = 1;
	pthread_cond_broadcast(&run->mcv);
	pthread_mutex_unlock(&run->mmu);
	pthread_join(run->mapper, NULL);
	run->mapper_on = 0;
}

static void chunk_clear(as_chunk *c)
{
	for (size_t i = 0; i < c->n; i++) {
		free(c->lines[i].err);
		c->lines[i].err = NULL;
	}
	c->n = 0;
	as_buf_reset(&c->buf);
}

/* Append a mapped row (values already in the batch's arenas). */
static int batch_append(as_batch *b, const as_row *row)
{
	if (b->nrows == b->caprows) {
		size_t cap = b->caprows ? b->caprows * 2 : 1024;
		as_row *nr = realloc(b->rows, cap * sizeof(*nr));

		if (!nr)
			return AS_ENOMEM;
		b->rows = nr;
		b->caprows = cap;
	}
	b->rows[b->nrows++] = *row;
	return 0;
}

/* Map the chunk's lines into the two halves, the mapper thread taking the
 * second half when it runs; returns where the second half starts. */
static size_t map_chunk(atomsync_run *run)
{
	as_chunk *c = &run->chunk;
	size_t mid = c->n;

	if (!run->mapper_on && c->n >= 64 &&
	    as_run_start_thread(&run->mapper, mapper_main, run) == 0)
		run->mapper_on = 1;
	/* Each half maps into one of the batch's arenas; the batch is not
	 * touched meanwhile (the writer has its own). */
	run->half[0].arena = run->batch.arena;
	run->half[1].arena = run->batch.arena2;
	run->half[0].nrows = run->half[1].nrows = 0;
	if (run->mapper_on && c->n >= 64) {
		mid = c->n / 2;
		pthread_mutex_lock(&run->mmu);
		run->mlo = mid;
		run->mhi = c->n;
		run->mbusy = 1;
		pthread_cond_broadcast(&run->mcv);
		pthread_mutex_unlock(&run->mmu);
	}
	map_range(run, 0, mid, &run->half[0]);
	if (mid < c->n) {
		pthread_mutex_lock(&run->mmu);
		while (run->mbusy)
			pthread_cond_wait(&run->mcv, &run->mmu);
		pthread_mutex_unlock(&run->mmu);
	}
	run->batch.arena = run->half[0].arena;
	run->batch.arena2 = run->half[1].arena;
	return mid;
}

/* Add the mapped lines to the batch in input order, each refused line
 * rejected (or failing the run) where it stands; stops at the first error. */
static int merge_chunk(atomsync_run *run, size_t mid, as_error *err)
{
	as_chunk *c = &run->chunk;
	int rc = 0;

	for (size_t i = 0; !rc && i < c->n; i++) {
		as_chunk_line *ln = &c->lines[i];

		run->seen++;
		if (ln->err && ln->err->code == AS_ESCHEMA) {
			/* The record needs a new column or a widening: mapped
			 * again here, where the spec may change. */
			const char *raw = c->buf.data + ln->off;
			const char *where = c->buf.data + ln->woff;
			as_error why;
			json_t *rec;

			as_error_clear(&why);
			as_json_arena_begin();
			rec = as_json_parse_record(raw, ln->len, where, &why);
			rc = rec ? as_run_map(run, rec, raw, ln->len, where,
					      &why)
				 : AS_ENOMEM;
			json_decref(rec);
			as_json_arena_end();
			if (rc) {
				rc = as_run_mapped(run, rc, where, raw, ln->len,
						   &why);
				if (rc)
					*err = why;
			} else {
				as_row *row =
					&run->batch.rows[run->batch.nrows - 1];

				row->flags |= AS_ROW_LINE;
				as_hash128(raw, ln->len, run->line_seed,
					   row->line);
			}
		} else if (ln->err) {
			if (ln->err->code == AS_EINPUT)
				rc = as_reject_add(
					run, ln->err, c->buf.data + ln->woff,
					c->buf.data + ln->off, ln->len, err);
			else
				rc = as_run_fail(run, ln->err);
		} else if (ln->row == (size_t)-1) {
			rc = as_run_fail(run,
					 &(as_error){.code = AS_ENOMEM,
						     .msg = "out of memory"});
		} else if (batch_append(
				   &run->batch,
				   &run->half[i < mid ? 0 : 1].rows[ln->row])) {
			rc = as_run_fail(run,
					 &(as_error){.code = AS_ENOMEM,
						     .msg = "out of memory"});
		}
	}
	return rc;
}

/* Parse and map the waiting lines, then add them to the batch in order. */
int as_mapper_drain(atomsync_run *run, as_error *err)
{
	int rc;

	if (!run->chunk.n)
		return 0;
	rc = merge_chunk(run, map_chunk(run), err);
	chunk_clear(&run->chunk);
	if (rc && run->failed)
		*err = run->failure;
	return rc;
}

/* Queue a line for as_mapper_drain (copying it: the source's buffer moves). */
int as_mapper_add(atomsync_run *run, const char *raw, size_t len,
		  const char *where, as_error *err)
{
	as_chunk *c = &run->chunk;
	as_chunk_line *ln;

	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : CHUNK_LINES;
		as_chunk_line *nl = realloc(c->lines, cap * sizeof(*nl));

		if (!nl) {
			as_error_set(err, AS_ENOMEM, "out of memory");
			return as_run_fail(run, err);
		}
		c->lines = nl;
		c->cap = cap;
	}
	ln = &c->lines[c->n];
	memset(ln, 0, sizeof(*ln));
	ln->off = c->buf.len;
	ln->len = len;
	if (as_buf_add(&c->buf, raw, len) || as_buf_addc(&c->buf, '\0')) {
		as_error_set(err, AS_ENOMEM, "out of memory");
		return as_run_fail(run, err);
	}
	ln->woff = c->buf.len;
	if (as_buf_add(&c->buf, where, strlen(where) + 1)) {
		as_error_set(err, AS_ENOMEM, "out of memory");
		return as_run_fail(run, err);
	}
	c->n++;
	if (c->n >= CHUNK_LINES) {
		if (as_mapper_drain(run, err))
			return err->code ? err->code : run->failure.code;
		return as_stage_flush_if_full(run, err);
	}
	return 0;
}

void as_mapper_discard(atomsync_run *run)
{
	chunk_clear(&run->chunk);
}

void as_mapper_free(atomsync_run *run)
{
	mapper_stop(run);
	chunk_clear(&run->chunk);
	free(run->chunk.lines);
	as_buf_free(&run->chunk.buf);
	free(run->half[0].rows);
	free(run->half[1].rows);
}
