/*
 * The backend-independent part of schema evolution: reading an existing
 * live or staging table's columns into the table spec (inferred columns
 * adopted, the layout of a table made before inference recognised), and
 * the ALTER TABLE statements that add and widen columns.  The backends
 * list the columns and run the statements (sqlite.c, postgres.c).
 */
#include <stdlib.h>
#include <string.h>

#include "store/schema.h"
#include "util/str.h"

int as_table_push_col(as_table *t, const char *name, const char *path,
		      as_type type, unsigned flags)
{
	as_col *c;

	if (t->ncols == t->capcols) {
		size_t cap = t->capcols ? t->capcols * 2 : 8;
		as_col *nc = realloc(t->cols, cap * sizeof(*nc));

		if (!nc)
			return AS_ENOMEM;
		t->cols = nc;
		t->capcols = cap;
	}
	c = &t->cols[t->ncols++];
	c->name = as_strdup(name);
	c->path = path ? as_strdup(path) : NULL;
	c->type = type;
	c->flags = flags;
	c->selfnamed = c->path && c->name && strcmp(c->path, c->name) == 0;
	return c->name && (!path || c->path) ? 0 : AS_ENOMEM;
}

static int is_meta(const char *name, int *which)
{
	static const char *const meta[3] = {"_atomsync_run", "_atomsync_hash",
					    "_atomsync_line"};

	for (int i = 0; i < 3; i++)
		if (strcmp(name, meta[i]) == 0) {
			*which = i;
			return 1;
		}
	return 0;
}

/* Every configured column is there: a key + `data` table is the layout of
 * an earlier version, not an inferred column named data. */
static int legacy_json(const as_table *t, const char *const *names, size_t n)
{
	size_t k = 0;
	int w;

	if (!t->infer)
		return 0;
	for (size_t i = 0; i < t->ncols; i++)
		if (t->cols[i].flags & AS_COL_INFERRED)
			return 0;
	for (size_t i = 0; i < n && !is_meta(names[i], &w); i++, k++)
		if (k < t->ncols ? strcmp(names[i], t->cols[k].name) != 0
				 : (k > t->ncols || strcmp(names[i], "data")))
			return 0;
	return k == t->ncols + 1;
}

int as_schema_adopt(as_table *t, const char *const *names, const as_type *types,
		    size_t n, int stage, size_t *nuser)
{
	size_t k = 0, meta_at = 0;
	int metas = 0, w;

	*nuser = 0;
	if (legacy_json(t, names, n)) {
		t->legacy_json = 1;
		return 0;
	}
	for (size_t i = 0; i < n; i++) {
		if (is_meta(names[i], &w)) {
			if (w != metas || (metas && meta_at != k))
				return -1;
			meta_at = k;
			metas++;
			continue;
		}
		if (k < t->ncols) {
			as_col *c = &t->cols[k];

			if (strcmp(names[i], c->name) != 0 ||
			    types[i] == AS_TYPE_AUTO)
				return -1;
			if (c->type == AS_TYPE_AUTO) {
				c->type = types[i];
			} else if (c->type != types[i]) {
				/* real in the spec, integer in the table: a
				 * SQLite column widened before (it keeps its
				 * declaration), or one this run widened */
				if ((c->flags & AS_COL_INFERRED) &&
				    c->type == AS_TYPE_REAL &&
				    types[i] == AS_TYPE_INTEGER) {
					k++;
					continue;
				}
				if (!(c->flags & AS_COL_INFERRED) ||
				    c->type != AS_TYPE_INTEGER ||
				    types[i] != AS_TYPE_REAL)
					return -1;
				/* widened by the run staged here */
				c->type = AS_TYPE_REAL;
				if (stage && !(c->flags & AS_COL_NEW))
					c->flags |= AS_COL_WIDENED;
			}
		} else {
			if (!t->infer || types[i] == AS_TYPE_AUTO ||
			    as_table_push_col(t, names[i], NULL, types[i],
					      AS_COL_INFERRED |
						      (stage ? AS_COL_NEW : 0)))
				return -1;
		}
		k++;
	}
	if (metas != 3)
		return -1;
	/* Columns the spec has beyond the table's are ones this run found
	 * (the staging or the publish adds them); any other is missing. */
	for (size_t i = k; i < t->ncols; i++)
		if (!(t->cols[i].flags & AS_COL_INFERRED))
			return -1;
	t->nfront = meta_at;
	*nuser = k;
	if (!stage)
		t->live_exists = 1;
	return 0;
}

void as_schema_known(as_table *t, const char *name, const char *type,
		     const char *field)
{
	for (size_t i = 0; i < t->ncols; i++) {
		as_col *c = &t->cols[i];

		if (!(c->flags & AS_COL_INFERRED) || strcmp(c->name, name))
			continue;
		if (!c->path && field)
			c->path = as_strdup(field);
		if (type && !strcmp(type, "real") && c->type == AS_TYPE_INTEGER)
			c->type = AS_TYPE_REAL;
		return;
	}
}

char *as_schema_cols_json(const as_table *t, unsigned flag)
{
	as_buf b = AS_BUF_INIT;
	int n = 0;

	as_buf_addc(&b, '[');
	for (size_t i = 0; i < t->ncols; i++) {
		if (!(t->cols[i].flags & flag))
			continue;
		as_buf_adds(&b, n++ ? ", \"" : "\"");
		for (const char *c = t->cols[i].name; *c; c++) {
			if (*c == '"' || *c == '\\')
				as_buf_addc(&b, '\\');
			as_buf_addc(&b, *c);
		}
		as_buf_addc(&b, '"');
	}
	as_buf_addc(&b, ']');
	return as_buf_detach(&b);
}

int as_schema_alter_sql(as_buf *b, const char *table_q, const as_col *c,
			const char *sqltype, int widen)
{
	as_buf_reset(b);
	as_buf_printf(b, "ALTER TABLE %s ", table_q);
	if (widen) {
		as_buf_adds(b, "ALTER COLUMN ");
		as_buf_add_ident(b, c->name);
		as_buf_printf(b, " TYPE %s", sqltype);
	} else {
		as_buf_adds(b, "ADD COLUMN ");
		as_buf_add_ident(b, c->name);
		as_buf_printf(b, " %s", sqltype);
	}
	return b->failed ? AS_ENOMEM : 0;
}
