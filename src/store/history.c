/*
 * The shape of a dataset's <table>_history: which columns it keeps, their
 * order and types.  The same for every backend.
 */
#include "store/history.h"

#include <stdlib.h>
#include <string.h>

#include "util/str.h"

const char *as_hist_kind_name(as_history k)
{
	return k == AS_HISTORY_SCD2 ? "scd2" : "snapshot";
}

void as_hist_free(as_hist *h)
{
	free(h->name);
	free(h->q);
	free(h->cols);
	free(h->colnames);
	memset(h, 0, sizeof(*h));
}

static int listed(const char *name, const char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(v[i], name) == 0)
			return 1;
	return 0;
}

/* The history's content columns: the key, then every mapped column (scd2)
 * or the snapshot columns (snapshot; none listed: every column). */
int as_hist_build(as_hist *h, const as_table *t, const as_publish_opts *po,
		  as_error *err)
{
	as_buf b = AS_BUF_INIT;

	memset(h, 0, sizeof(*h));
	h->kind = po->history;
	h->name = as_sprintf("%s_history", t->table);
	h->q = h->name ? as_quote_ident(h->name) : NULL;
	h->cols = calloc(t->ncols + 1, sizeof(*h->cols));
	if (!h->q || !h->cols) {
		as_hist_free(h);
		return as_error_set(err, AS_ENOMEM, "out of memory");
	}
	for (size_t i = 0; i < t->ncols; i++) {
		const char *n = t->cols[i].name;

		if (h->kind == AS_HISTORY_SNAPSHOT
			    ? strcmp(n, "run_id") == 0
			    : strcmp(n, "valid_from_run") == 0 ||
				      strcmp(n, "valid_to_run") == 0) {
			as_hist_free(h);
			return as_error_set(
				err, AS_EUSAGE,
				"dataset %s: column '%s' has the name of a "
				"column of its %s history table; rename it",
				t->dataset, n, as_hist_kind_name(po->history));
		}
		if (i < t->nkey || h->kind == AS_HISTORY_SCD2 ||
		    !po->nsnapshot_cols ||
		    listed(n, po->snapshot_cols, po->nsnapshot_cols))
			h->cols[h->ncols++] = i;
	}
	h->full = h->ncols == t->ncols;
	/* An inferring table's columns grow: its history records "*" for
	 * them, so a new column neither restarts the history nor stops a
	 * rollback to a run before it (the column is NULL there). */
	for (size_t i = 0; i < h->ncols; i++)
		if (!(t->cols[h->cols[i]].flags & AS_COL_INFERRED))
			as_buf_printf(&b, "%s%s", i ? "," : "",
				      t->cols[h->cols[i]].name);
	if (t->infer)
		as_buf_adds(&b, b.len ? ",*" : "*");
	h->colnames = as_buf_detach(&b);
	if (!h->colnames) {
		as_hist_free(h);
		return as_error_set(err, AS_ENOMEM, "out of memory");
	}
	return 0;
}

/* The history table's columns in order, with their SQL types; *n of them
 * (names and types hold room for t->ncols + 4). */
size_t as_hist_layout(const as_hist *h, const as_table *t,
		      const as_hist_types *ty, const char **names,
		      const char **types)
{
	size_t n = 0;

	if (h->kind == AS_HISTORY_SCD2) {
		names[n] = "valid_from_run", types[n++] = ty->integer;
		names[n] = "valid_to_run", types[n++] = ty->integer;
	} else {
		names[n] = "run_id", types[n++] = ty->integer;
	}
	for (size_t i = 0; i < h->ncols; i++) {
		names[n] = t->cols[h->cols[i]].name;
		types[n++] = ty->column(t->cols[h->cols[i]].type);
	}
	if (h->full) {
		names[n] = "_atomsync_hash", types[n++] = ty->integer;
		names[n] = "_atomsync_line", types[n++] = ty->blob;
	}
	return n;
}

/* "c1", "c2", ... of the content (with prefix: p."c1", ...), then the hash
 * and line when the history is full. */
void as_hist_add_content(as_buf *b, const as_hist *h, const as_table *t,
			 const char *prefix)
{
	for (size_t i = 0; i < h->ncols; i++) {
		as_buf_adds(b, i ? ", " : "");
		if (prefix)
			as_buf_printf(b, "%s.", prefix);
		as_buf_add_ident(b, t->cols[h->cols[i]].name);
	}
	if (h->full) {
		if (prefix)
			as_buf_printf(
				b,
				", %s.\"_atomsync_hash\", %s.\"_atomsync_line\"",
				prefix, prefix);
		else
			as_buf_adds(b,
				    ", \"_atomsync_hash\", \"_atomsync_line\"");
	}
}

void as_hist_add_insert_cols(as_buf *b, const as_hist *h, const as_table *t)
{
	as_buf_adds(b, h->kind == AS_HISTORY_SCD2
			       ? "(\"valid_from_run\", \"valid_to_run\", "
			       : "(\"run_id\", ");
	as_hist_add_content(b, h, t, NULL);
	as_buf_adds(b, ")");
}

int as_hist_evolve(const as_hist *h, const as_table *t, const as_hist_types *ty,
		   const char *const *present, size_t n,
		   int (*add)(void *ud, const char *name, const char *type),
		   void *ud)
{
	for (size_t i = 0; i < h->ncols; i++) {
		const as_col *c = &t->cols[h->cols[i]];
		size_t k = 0;

		while (k < n && strcmp(present[k], c->name) != 0)
			k++;
		if (k < n)
			continue;
		if (!(c->flags & AS_COL_INFERRED))
			return -1;
		if (add(ud, c->name, ty->column(c->type)))
			return -2;
	}
	return 0;
}

int as_hist_check_run(const as_table *t, int64_t n, int found, const char *kind,
		      const char *status, as_error *err)
{
	if (!found)
		return as_error_set(err, AS_EUSAGE,
				    "dataset %s: there is no run %lld "
				    "of this dataset; nothing changed",
				    t->dataset, (long long)n);
	if (strcmp(kind, "verify") == 0)
		return as_error_set(
			err, AS_EUSAGE,
			"dataset %s: run %lld is a verify "
			"run, which published nothing; name a sync or "
			"rollback run; nothing changed",
			t->dataset, (long long)n);
	if (strcmp(status, "completed") != 0)
		return as_error_set(
			err, AS_EUSAGE,
			"dataset %s: run %lld %s; only the "
			"state after a completed run can be restored; "
			"nothing changed",
			t->dataset, (long long)n,
			strcmp(status, "active") == 0	    ? "is still active"
			: strcmp(status, "publishing") == 0 ? "is publishing"
			: strcmp(status, "refused") == 0    ? "was refused"
							    : "failed");
	return 0;
}

int as_hist_check_meta(const as_table *t, const as_hist *h, int64_t n,
		       const as_hist_meta *m, int exists, as_error *err)
{
	int ret = 0;

	if (!m->found || !exists) {
		ret = as_error_set(
			err, AS_EUSAGE,
			"dataset %s: no history has been "
			"recorded yet (it starts with the next run that "
			"publishes); nothing changed",
			t->dataset);
	} else if (n < m->first_run) {
		ret = as_error_set(
			err, AS_EUSAGE,
			"dataset %s: the history does not "
			"reach back to run %lld (pruned by history_keep, or "
			"recorded only since); the oldest run it can restore "
			"is %lld; nothing changed",
			t->dataset, (long long)n, (long long)m->first_run);
	} else if (n > m->last_run) {
		ret = as_error_set(
			err, AS_EUSAGE,
			"dataset %s: run %lld was published "
			"while its history was off; the newest run the history "
			"can restore is %lld; nothing changed",
			t->dataset, (long long)n, (long long)m->last_run);
	} else if (strcmp(m->kind, as_hist_kind_name(h->kind)) != 0) {
		ret = as_error_set(
			err, AS_EUSAGE,
			"dataset %s: its history was "
			"recorded as %s, but the dataset now says history: %s; "
			"nothing changed",
			t->dataset, m->kind, as_hist_kind_name(h->kind));
	} else if (!m->restorable || !as_streq(m->columns, h->colnames)) {
		ret = as_error_set(
			err, AS_EUSAGE,
			"dataset %s: its %s history holds "
			"the columns %s%s, but a rollback needs every mapped "
			"column (%s)%s; nothing changed",
			t->dataset, m->kind, m->columns ? m->columns : "",
			m->restorable ? "" : " without their hashes",
			h->colnames,
			strcmp(m->kind, "snapshot") == 0
				? ": omit snapshot_columns, or list them all"
				: "");
	}
	return ret;
}
