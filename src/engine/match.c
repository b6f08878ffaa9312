/*
 * Lines matched against the live table read in key order: a hit is staged
 * as unchanged without parsing, and runs of hits as spans.  The store's
 * scan_* calls read the live rows.
 */
#include <stdlib.h>
#include <string.h>

#include "engine/run_int.h"

/* ---- matching lines to published rows ----
 *
 * Every row published from a line keeps the 128-bit hash of that line's
 * exact bytes (seeded with the mapping's fingerprint) in _atomsync_line.
 * While records arrive, the live table is read in key order alongside:
 * a line whose hash equals the next live row's is that row, byte for byte,
 * so it is valid and unchanged and needs no parsing (an unchanged reload
 * costs a hash per line instead of a JSON parse).  A line that does not
 * match is parsed as usual and the scan moves past its key; input in
 * another order than the key's just parses everything, as without this.
 */

#define SCAN_PROBE 4096 /* lines before judging whether matching pays */

static void scan_stop(atomsync_run *run)
{
	if (run->scanning && run->store->ops->scan_close)
		run->store->ops->scan_close(run->store, &run->rc);
	run->scanning = 0;
	run->scan_have = 0;
}

/* Open the scan, once per run: nothing to match when the store cannot scan,
 * the live table is empty, or matching is turned off. */
int as_match_start(atomsync_run *run, as_error *err)
{
	const as_store_ops *ops = run->store->ops;
	int rows = 0;

	run->scan_tried = 1;
	if (!ops->scan_open || !run->prepared ||
	    getenv("ATOMSYNC_NO_LINE_MATCH"))
		return 0;
	/* The scan fills key, scope and cursor columns, which come first:
	 * columns the run adds later (inference) are never read here. */
	run->scan_ncols = run->table.ncols;
	run->scan_row.v = calloc(run->table.ncols, sizeof(as_val));
	if (!run->scan_row.v)
		return as_error_set(err, AS_ENOMEM, "out of memory");
	if (ops->scan_open(run->store, &run->rc, &rows, err))
		return err->code;
	run->scanning = rows > 0;
	/* Spans stand for unchanged rows only where the publish needs nothing
	 * else of them: no scope or cursor values (scoped mode replaces the
	 * scopes delivered, the cursor takes the maximum delivered), no append
	 * conflicts, and no staging from an earlier attempt (whose input
	 * order this run cannot see). */
	run->span_ok = run->scanning && !run->rc.resumed_from &&
		       (run->table.mode == AS_MODE_FULL ||
			run->table.mode == AS_MODE_INCREMENTAL) &&
		       run->table.nscope == 0 && run->table.cursor < 0 &&
		       !getenv("ATOMSYNC_NO_SPANS");
	if (run->span_ok) {
		run->last_key = calloc(run->table.nkey, sizeof(as_val));
		run->last_text = calloc(run->table.nkey, sizeof(as_buf));
		if (!run->last_key || !run->last_text)
			return as_error_set(err, AS_ENOMEM, "out of memory");
	}
	return 0;
}

/* The live row under the cursor, read on demand; 0 when the scan ended. */
static int scan_peek(atomsync_run *run, as_error *err)
{
	int rc;

	if (run->scan_have)
		return 1;
	as_arena_reset(&run->scan_arena);
	memset(run->scan_row.v, 0, run->scan_ncols * sizeof(as_val));
	rc = run->store->ops->scan_next(run->store, &run->rc, &run->scan_row,
					&run->scan_arena, err);
	if (rc < 0)
		return rc;
	if (rc == 0) {
		scan_stop(run);
		return 0;
	}
	run->scan_have = 1;
	return 1;
}

/* Order of two key tuples as SQL orders them: NULL < numbers < text. */
static int key_cmp(const as_table *t, const as_val *a, const as_val *b)
{
	for (size_t i = 0; i < t->nkey; i++) {
		const as_val *x = &a[i], *y = &b[i];
		int c;

		if (x->kind != y->kind) {
			int rx = x->kind == AS_V_TEXT	? 2
				 : x->kind == AS_V_NULL ? 0
							: 1;
			int ry = y->kind == AS_V_TEXT	? 2
				 : y->kind == AS_V_NULL ? 0
							: 1;

			if (rx != ry)
				return rx < ry ? -1 : 1;
		}
		if (x->kind == AS_V_TEXT) {
			size_t n = x->len < y->len ? x->len : y->len;

			c = memcmp(x->u.s, y->u.s, n);
			if (!c)
				c = x->len < y->len ? -1 : x->len > y->len;
		} else {
			double dx =
				x->kind == AS_V_INT ? (double)x->u.i : x->u.r;
			double dy =
				y->kind == AS_V_INT ? (double)y->u.i : y->u.r;

			if (x->kind == AS_V_INT && y->kind == AS_V_INT)
				c = x->u.i < y->u.i ? -1 : x->u.i > y->u.i;
			else
				c = dx < dy ? -1 : dx > dy;
		}
		if (c)
			return c;
	}
	return 0;
}

/* ---- spans ----
 *
 * While the input's keys strictly increase, consecutive hits are staged as
 * one span row (store.h, AS_ROW_SPAN: first key, last key, count) instead
 * of one row each, so an unchanged reload stages almost nothing and the
 * publish reads only the live rows between spans.  Strictly increasing
 * keys are what make a span exact: a record after a span in the input
 * has a greater key than every row of it, so no later record can be a
 * row the span already stands for, except as a duplicate the store
 * detects at the publish (it then stages the span's rows one by one).
 * A span closes at every non-hit, checkpoint and batch hand-over, so a
 * batch cut back to its last checkpoint (atomsync_run_abort) holds only
 * whole spans.
 */

static int copy_key(const as_table *t, as_val *dst, const as_val *src,
		    as_arena *a)
{
	for (size_t i = 0; i < t->nkey; i++) {
		dst[i] = src[i];
		if (src[i].kind == AS_V_TEXT &&
		    !(dst[i].u.s = as_arena_strndup(a, src[i].u.s, src[i].len)))
			return AS_ENOMEM;
	}
	return 0;
}

int as_span_close(atomsync_run *run, as_error *err)
{
	as_row *row;

	if (run->span_at == NO_SPAN)
		return 0;
	row = &run->batch.rows[run->span_at];
	run->span_at = NO_SPAN;
	row->hi = as_arena_alloc(&run->batch.arena,
				 run->table.nkey * sizeof(as_val));
	if (!row->hi ||
	    copy_key(&run->table, row->hi, run->last_key, &run->batch.arena))
		return as_error_set(err, AS_ENOMEM, "out of memory");
	return 0;
}

/* Record key k as the last record's; spans end for good at a key that
 * does not increase. */
int as_span_order(atomsync_run *run, const as_val *k, as_error *err)
{
	if (!run->span_ok)
		return 0;
	if (run->have_last && key_cmp(&run->table, k, run->last_key) <= 0) {
		if (as_span_close(run, err))
			return err->code;
		run->span_ok = 0;
		return 0;
	}
	for (size_t i = 0; i < run->table.nkey; i++) {
		as_val v = k[i];

		if (v.kind == AS_V_TEXT) {
			as_buf *b = &run->last_text[i];

			as_buf_reset(b);
			if (as_buf_add(b, v.u.s, v.len) || b->failed)
				return as_error_set(err, AS_ENOMEM,
						    "out of memory");
			v.u.s = b->data ? b->data : "";
		}
		run->last_key[i] = v;
	}
	run->have_last = 1;
	return 0;
}

/* A hit while spans are made: extend the open span or open one.  *took
 * is 0 when the order broke and the hit is to be staged as a row. */
static int span_take(atomsync_run *run, int *took, as_error *err)
{
	as_row *row;

	*took = 0;
	if (as_span_order(run, run->scan_row.v, err))
		return err->code;
	if (!run->span_ok)
		return 0;
	*took = 1;
	if (run->span_at != NO_SPAN) {
		run->batch.rows[run->span_at].span++;
		return 0;
	}
	row = as_batch_add(&run->batch, run->table.ncols);
	if (!row ||
	    copy_key(&run->table, row->v, run->scan_row.v, &run->batch.arena))
		return as_error_set(err, AS_ENOMEM, "out of memory");
	row->flags = AS_ROW_SPAN;
	row->span = 1;
	run->span_at = run->batch.nrows++;
	run->spans++;
	return 0;
}

/* A hit: the live row itself, staged as unchanged without parsing. */
static int scan_take(atomsync_run *run, const unsigned char h[16],
		     as_error *err)
{
	as_row *row;
	int took;

	if (run->span_ok) {
		if (span_take(run, &took, err))
			return err->code;
		if (took) {
			run->scan_have = 0;
			run->scan_hits++;
			return 0;
		}
	}
	row = as_batch_add(&run->batch, run->table.ncols);
	if (!row)
		return as_error_set(err, AS_ENOMEM, "out of memory");
	for (size_t i = 0; i < run->table.ncols; i++) {
		as_val v = i < run->scan_ncols ? run->scan_row.v[i]
					       : (as_val){.kind = AS_V_NULL};

		if (v.kind == AS_V_TEXT) {
			v.u.s = as_arena_strndup(&run->batch.arena, v.u.s,
						 v.len);
			if (!v.u.s)
				return as_error_set(err, AS_ENOMEM,
						    "out of memory");
		}
		row->v[i] = v;
	}
	row->hash = run->scan_row.hash;
	row->flags = AS_ROW_UNCHANGED | AS_ROW_LINE;
	memcpy(row->line, h, 16);
	run->batch.nrows++;
	run->scan_have = 0;
	run->scan_hits++;
	return 0;
}

/* Does the line hashed to h match the live row under the cursor?  1: it
 * did and is staged; 0: it did not (the caller parses it); or an error. */
int as_match_hit(atomsync_run *run, const unsigned char h[16], as_error *err)
{
	int rc = scan_peek(run, err);

	if (rc <= 0)
		return rc;
	if (!run->scan_row.has_line || memcmp(run->scan_row.line, h, 16) != 0)
		return 0;
	if ((rc = scan_take(run, h, err)))
		return rc;
	return 1;
}

/* A miss that parsed to key k: move the scan past k. */
int as_match_resync(atomsync_run *run, const as_val *k, as_error *err)
{
	run->scan_misses++;
	if (run->scan_hits + run->scan_misses == SCAN_PROBE &&
	    run->scan_hits * 10 < SCAN_PROBE) {
		scan_stop(run); /* another order, or rows not from lines */
		return 0;
	}
	if (run->scan_have && key_cmp(&run->table, run->scan_row.v, k) == 0) {
		run->scan_have = 0; /* this row is the one just parsed */
		return 0;
	}
	run->scan_have = 0;
	if (run->store->ops->scan_seek(run->store, &run->rc, k, err))
		return err->code;
	return 0;
}

void as_match_free(atomsync_run *run)
{
	scan_stop(run);
	free(run->scan_row.v);
	as_arena_free(&run->scan_arena);
	if (run->last_text)
		for (size_t i = 0; i < run->table.nkey; i++)
			as_buf_free(&run->last_text[i]);
	free(run->last_text);
	free(run->last_key);
}
