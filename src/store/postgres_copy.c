/*
 * The PostgreSQL store's staging rows encoded for COPY: values in COPY
 * text format, rows the server could not store refused by name, and the
 * duplicate keys of a batch found before it is sent.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "store/postgres_int.h"
#include "util/hash.h"
#include "util/str.h"

/* ---- encoding ---- */

/* Where JSON text holds an escaped NUL (\u0000 that is not the text
 * "\\u0000", an escaped backslash before u0000); NULL when nowhere. */
static const char *json_nul(const char *s, size_t n)
{
	for (size_t i = 0; i + 1 < n; i++) {
		if (s[i] != '\\')
			continue;
		if (s[i + 1] == 'u' && i + 5 < n &&
		    memcmp(s + i + 2, "0000", 4) == 0)
			return s + i;
		i++; /* the escaped character */
	}
	return NULL;
}

/* The name of the field of JSON text s whose string holds the NUL at p:
 * the last object key before it (enough to find it in the record). */
static void nul_field(const char *s, const char *p, char *out, size_t cap)
{
	const char *open = NULL;

	snprintf(out, cap, "?");
	for (const char *q = s; q < p; q++) {
		if (*q == '\\' && open) {
			q++;
			continue;
		}
		if (*q != '"')
			continue;
		if (!open) {
			open = q + 1;
			continue;
		}
		/* a string closed: a key when a colon follows */
		{
			const char *r = q + 1;

			while (r < p && (*r == ' ' || *r == '\t'))
				r++;
			if (r < p && *r == ':')
				snprintf(out, cap, "%.*s", (int)(q - open),
					 open);
		}
		open = NULL;
	}
}

/* PostgreSQL's text and jsonb cannot hold a NUL character: such a record
 * is rejected by name, with its column and field (invariant 9), rather
 * than failing the whole batch. */
const char *as_pg_unstorable(const as_table *t, const as_row *row, char *buf,
			     size_t cap)
{
	for (size_t i = 0; i < t->ncols; i++) {
		const as_val *v = &row->v[i];
		const char *at;

		if (v->kind != AS_V_TEXT)
			continue;
		if (memchr(v->u.s, '\0', v->len)) {
			snprintf(buf, cap,
				 "column '%s': a NUL character (\\u0000) in a "
				 "text value; PostgreSQL cannot store it",
				 t->cols[i].name);
			return buf;
		}
		if (t->cols[i].type == AS_TYPE_JSON &&
		    (at = json_nul(v->u.s, v->len)) != NULL) {
			char field[128];

			nul_field(v->u.s, at, field, sizeof(field));
			snprintf(
				buf, cap,
				"column '%s', field '%s': a NUL character "
				"(\\u0000) in a string; PostgreSQL jsonb cannot "
				"store it",
				t->cols[i].name, field);
			return buf;
		}
	}
	return NULL;
}

static char *put_int(char *p, int64_t v)
{
	char tmp[24];
	uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
	int n = 0;

	do {
		tmp[n++] = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	if (v < 0)
		*p++ = '-';
	while (n)
		*p++ = tmp[--n];
	return p;
}

/* One value in COPY text format: \N for NULL, backslash escapes. */
static int copy_val(as_buf *b, const as_val *v, as_type type)
{
	char *p;

	if (as_buf_reserve(b,
			   v->kind == AS_V_TEXT ? (size_t)v->len * 2 + 2 : 40))
		return AS_ENOMEM;
	p = b->data + b->len;
	switch (v->kind) {
	case AS_V_INT:
		if (type == AS_TYPE_BOOLEAN)
			*p++ = v->u.i ? 't' : 'f';
		else
			p = put_int(p, v->u.i);
		break;
	case AS_V_REAL: p += snprintf(p, 32, "%.17g", v->u.r); break;
	case AS_V_TEXT:
		for (uint32_t i = 0; i < v->len; i++) {
			char c = v->u.s[i];

			switch (c) {
			case '\\':
				*p++ = '\\';
				*p++ = '\\';
				break;
			case '\n':
				*p++ = '\\';
				*p++ = 'n';
				break;
			case '\r':
				*p++ = '\\';
				*p++ = 'r';
				break;
			case '\t':
				*p++ = '\\';
				*p++ = 't';
				break;
			default: *p++ = c; break;
			}
		}
		break;
	default:
		*p++ = '\\';
		*p++ = 'N';
		break;
	}
	b->len = (size_t)(p - b->data);
	return 0;
}

/* cols..., run, hash, line[, idx]: the staging table's shape, plus the row's
 * place in the batch for the batch table (idx < 0: none).  An unchanged
 * row keeps only what the publish needs (the sqlite.c convention). */
static int copy_row(as_buf *b, const as_table *t, const as_row *row,
		    int64_t run, int64_t idx, int unchanged)
{
	static const as_val null_val = {AS_V_NULL, 0, {0}};
	char *p;

	for (size_t i = 0; i < t->ncols; i++) {
		int keep = !unchanged || as_col_kept_unchanged(t, i);

		if (copy_val(b, keep ? &row->v[i] : &null_val, t->cols[i].type))
			return AS_ENOMEM;
		b->data[b->len++] = '\t';
	}
	if (as_buf_reserve(b, 120))
		return AS_ENOMEM;
	p = b->data + b->len;
	if (unchanged) {
		*p++ = '\\';
		*p++ = 'N';
	} else {
		p = put_int(p, run);
	}
	*p++ = '\t';
	p = put_int(p, (int64_t)row->hash);
	*p++ = '\t';
	if (row->flags & AS_ROW_LINE) {
		/* bytea hex input (\x...), its backslash escaped for COPY */
		static const char hex[] = "0123456789abcdef";

		*p++ = '\\';
		*p++ = '\\';
		*p++ = 'x';
		for (int k = 0; k < 16; k++) {
			*p++ = hex[row->line[k] >> 4];
			*p++ = hex[row->line[k] & 15];
		}
	} else {
		*p++ = '\\';
		*p++ = 'N';
	}
	if (idx >= 0) {
		*p++ = '\t';
		p = put_int(p, idx);
	}
	*p++ = '\n';
	b->len = (size_t)(p - b->data);
	return 0;
}

/* A span (store.h, AS_ROW_SPAN) as a line of "<stage>_spans": lo, hi, n. */
static int copy_span(as_buf *b, const as_table *t, const as_row *row)
{
	for (int hi = 0; hi < 2; hi++)
		for (size_t i = 0; i < t->nkey; i++)
			if (copy_val(b, hi ? &row->hi[i] : &row->v[i],
				     t->cols[i].type) ||
			    as_buf_addc(b, '\t'))
				return AS_ENOMEM;
	return as_buf_printf(b, "%lld\n", (long long)row->span) ? AS_ENOMEM : 0;
}

/* One value's hash and equality by its kind: a NULL's union holds nothing,
 * so it is never read. */
static uint64_t val_hash(const as_val *v)
{
	switch (v->kind) {
	case AS_V_INT: return as_hash64(&v->u.i, sizeof(v->u.i));
	case AS_V_REAL: {
		/* PostgreSQL's float8 equality: 0 = -0 and NaN = NaN. */
		double r = v->u.r == 0 ? 0 : isnan(v->u.r) ? NAN : v->u.r;

		return as_hash64(&r, sizeof(r));
	}
	case AS_V_TEXT: return as_hash64(v->u.s, v->len);
	default: return 0;
	}
}

static int same_val(const as_val *x, const as_val *y)
{
	if (x->kind != y->kind)
		return 0;
	switch (x->kind) {
	case AS_V_INT: return x->u.i == y->u.i;
	case AS_V_REAL:
		return x->u.r == y->u.r || (isnan(x->u.r) && isnan(y->u.r));
	case AS_V_TEXT:
		return x->len == y->len && !memcmp(x->u.s, y->u.s, x->len);
	default: return 1;
	}
}

static uint64_t key_hash(const as_table *t, const as_row *row)
{
	uint64_t h = 0x9e3779b97f4a7c15ull;

	for (size_t i = 0; i < t->nkey; i++)
		h = (h ^ val_hash(&row->v[i]) ^ row->v[i].kind) *
		    0x100000001b3ull;
	return h | 1;
}

static int same_key(const as_table *t, const as_row *a, const as_row *b)
{
	for (size_t i = 0; i < t->nkey; i++)
		if (!same_val(&a->v[i], &b->v[i]))
			return 0;
	return 1;
}

/* Does a key repeat within the batch?  Then the later record must win
 * (DISTINCT ON in the classifying INSERT); else that sort is skipped. */
static int has_dup_keys(pg_store *s, const as_table *t, const as_batch *b,
			const unsigned char *skip)
{
	size_t cap = 16, mask;

	while (cap < b->nrows * 2)
		cap *= 2;
	if (cap > s->dup_cap) {
		free(s->dup_slot);
		free(s->dup_row);
		s->dup_slot = malloc(cap * sizeof(*s->dup_slot));
		s->dup_row = malloc(cap * sizeof(*s->dup_row));
		s->dup_cap = s->dup_slot && s->dup_row ? cap : 0;
		if (!s->dup_cap)
			return 1; /* no memory: take the path that handles both
				   */
	}
	memset(s->dup_slot, 0, cap * sizeof(*s->dup_slot));
	mask = cap - 1;
	for (size_t i = 0; i < b->nrows; i++) {
		uint64_t h;
		size_t p;

		if ((skip && skip[i]) || (b->rows[i].flags & AS_ROW_SPAN))
			continue;
		h = key_hash(t, &b->rows[i]);
		for (p = h & mask; s->dup_slot[p]; p = (p + 1) & mask)
			if (s->dup_slot[p] == h &&
			    same_key(t, &b->rows[i], &b->rows[s->dup_row[p]]))
				return 1;
		s->dup_slot[p] = h;
		s->dup_row[p] = (uint32_t)i;
	}
	return 0;
}

int as_pg_encode_job(pg_store *s, as_run_ctx *rc, const as_batch *b,
		     const unsigned char *skip, int64_t conflicts, pg_job *j,
		     as_error *err)
{
	pg_run *r = rc->priv;
	const as_table *t = rc->table;
	int known = 1; /* every row a span or known unchanged */

	as_buf_reset(&j->data);
	as_buf_reset(&j->where);
	as_buf_reset(&j->spans);
	j->data.max = COPY_MAX;
	j->nrows = 0;
	free(j->checkpoint);
	j->checkpoint = NULL;
	if (b->checkpoint && !(j->checkpoint = as_strdup(b->checkpoint)))
		return as_error_set(err, AS_ENOMEM, "out of memory");
	j->seen = b->seen;
	j->rejected = b->rejected + conflicts;
	j->dups = has_dup_keys(s, t, b, skip);
	for (size_t i = 0; i < b->nrows; i++)
		if (!(b->rows[i].flags & (AS_ROW_SPAN | AS_ROW_UNCHANGED)))
			known = 0;
	/* A first load needs no classification: rows go straight into the
	 * staging table (a key staged by an earlier batch makes the commit
	 * fall back to the batch table). */
	j->direct = (!r->live_has_rows || r->live_cap || known) && !j->dups &&
		    t->mode != AS_MODE_APPEND;
	for (size_t i = 0; i < b->nrows; i++) {
		const char *w = b->rows[i].where ? b->rows[i].where : "record";
		int same = j->direct &&
			   ((b->rows[i].flags & AS_ROW_UNCHANGED) ||
			    (r->live_cap &&
			     as_pg_live_unchanged(r, &b->rows[i]) == 1));

		if (skip && skip[i])
			continue;
		if (b->rows[i].flags & AS_ROW_SPAN) {
			if (copy_span(&j->spans, t, &b->rows[i]))
				return as_error_set(err, AS_ENOMEM,
						    "out of memory");
			continue;
		}
		if (copy_row(&j->data, t, &b->rows[i], rc->run_id,
			     j->direct ? -1 : (int64_t)i, same) ||
		    as_buf_add(&j->where, w, strlen(w) + 1))
			return as_error_set(err, AS_ENOMEM,
					    "%s: the batch is too "
					    "large to stage (over %zu bytes)",
					    w, (size_t)COPY_MAX);
		j->nrows++;
	}
	return 0;
}

/* Staging-table lines -> batch-table lines: each gets its index. */
int as_pg_to_batch_format(pg_job *j, as_error *err)
{
	as_buf out = AS_BUF_INIT;
	const char *p = j->data.data, *end = p + j->data.len;
	int64_t idx = 0;

	out.max = COPY_MAX;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));

		if (!nl || as_buf_add(&out, p, (size_t)(nl - p)) ||
		    as_buf_printf(&out, "\t%lld\n", (long long)idx++)) {
			as_buf_free(&out);
			return as_error_set(err, AS_ENOMEM, "out of memory");
		}
		p = nl + 1;
	}
	as_buf_free(&j->data);
	j->data = out;
	j->direct = 0;
	return 0;
}
