/*
 * The table spec of a dataset: which columns, in which order (key columns
 * first), with which types, and a fingerprint of everything that shapes the
 * staging table, so a resumed run never continues a staging built for a
 * different mapping.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"
#include "store/schema.h"
#include "util/hash.h"
#include "util/str.h"

static int add_col(as_table *t, const char *name, const char *path,
		   as_type type, unsigned flags);

static as_col *find_col(as_table *t, const char *name)
{
	for (size_t i = 0; i < t->ncols; i++)
		/* Every column has a name (config/dataset.c). */
		/* NOLINTNEXTLINE(clang-analyzer-core.NonNullParamChecker) */
		if (strcmp(t->cols[i].name, name) == 0)
			return &t->cols[i];
	return NULL;
}

int as_table_add_col(as_table *t, const char *name, const char *path,
		     as_type type, unsigned flags)
{
	return add_col(t, name, path, type, flags);
}

static int add_col(as_table *t, const char *name, const char *path,
		   as_type type, unsigned flags)
{
	as_col *c = find_col(t, name);

	if (c) {
		c->flags |= flags;
		return 0;
	}
	return as_table_push_col(t, name, path, type, flags);
}

static const as_column_cfg *cfg_col(const as_dataset_cfg *ds, const char *name)
{
	for (size_t i = 0; i < ds->ncolumns; i++)
		if (strcmp(ds->columns[i].name, name) == 0)
			return &ds->columns[i];
	return NULL;
}

/* A digest of the dataset's mapping as configured (not of what a Singer
 * SCHEMA adds: the staging records its key separately). */
static void fingerprint(as_table *t, const as_dataset_cfg *ds)
{
	as_buf b = AS_BUF_INIT;
	char hex[17];

	as_buf_printf(&b, "%s|%s|", t->table, as_mode_name(t->mode));
	for (size_t i = 0; i < ds->nkey; i++)
		as_buf_printf(&b, "k:%s|", ds->key[i]);
	for (size_t i = 0; i < ds->ncolumns; i++)
		as_buf_printf(&b, "c:%s:%s:%d|", ds->columns[i].name,
			      ds->columns[i].path ? ds->columns[i].path : "",
			      (int)ds->columns[i].type);
	for (size_t i = 0; i < ds->nscope; i++)
		as_buf_printf(&b, "s:%s|", ds->scope[i]);
	as_buf_printf(&b, "u:%s|", ds->cursor ? ds->cursor : "");
	/* Only an inferring mapping adds to it, so a table in the key +
	 * `data` layout keeps the fingerprint (and line hashes) it had.  The
	 * contract is part of it: a line published while discard_value
	 * dropped a field is parsed again once the contract changes. */
	if (t->infer)
		as_buf_printf(&b, "i:%d:%d|", t->flatten_depth,
			      (int)t->contract);
	snprintf(hex, sizeof(hex), "%016llx",
		 (unsigned long long)as_hash64(b.data, b.len));
	/* A hash of part of the mapping would be a wrong fingerprint: leave
	 * it NULL, which the caller reports as out of memory. */
	if (!b.failed)
		t->fingerprint = as_strdup(hex);
	as_buf_free(&b);
}

/* The key columns (key[]), then the configured columns, or without them
 * the scope and cursor columns and (not inferring) `data`. */
static int add_columns(as_table *t, const as_dataset_cfg *ds, char *const *key,
		       size_t nkey, as_error *err)
{
	int rc = 0;

	for (size_t i = 0; !rc && i < nkey; i++) {
		const as_column_cfg *cc = cfg_col(ds, key[i]);

		if (ds->ncolumns && !cc)
			return as_error_set(
				err, AS_EUSAGE,
				"dataset %s: key column '%s' is not one of "
				"its columns",
				ds->name, key[i]);
		if (!as_is_ident(key[i]))
			return as_error_set(
				err, AS_EUSAGE,
				"dataset %s: key '%s' is not a plain "
				"column name",
				ds->name, key[i]);
		rc = add_col(t, key[i], cc ? cc->path : key[i],
			     cc ? cc->type : AS_TYPE_AUTO, AS_COL_KEY);
	}
	t->nkey = nkey;
	if (ds->ncolumns) {
		for (size_t i = 0; !rc && i < ds->ncolumns; i++)
			rc = add_col(t, ds->columns[i].name,
				     ds->columns[i].path, ds->columns[i].type,
				     0);
	} else {
		for (size_t i = 0; !rc && i < ds->nscope; i++)
			rc = add_col(t, ds->scope[i], ds->scope[i],
				     AS_TYPE_AUTO, 0);
		if (!rc && ds->cursor)
			rc = add_col(t, ds->cursor, ds->cursor, AS_TYPE_AUTO,
				     0);
		if (!rc && !t->infer && !find_col(t, "data"))
			rc = add_col(t, "data", NULL, AS_TYPE_JSON,
				     AS_COL_WHOLE);
	}
	if (rc)
		return as_error_set(err, AS_ENOMEM, "out of memory");
	return 0;
}

/* The scope and cursor columns, found among the columns and flagged. */
static int mark_columns(as_table *t, const as_dataset_cfg *ds, as_error *err)
{
	for (size_t i = 0; i < ds->nscope; i++) {
		as_col *c = find_col(t, ds->scope[i]);

		if (!c)
			return as_error_set(
				err, AS_EUSAGE,
				"dataset %s: scope column '%s' is not "
				"one of its columns",
				ds->name, ds->scope[i]);
		c->flags |= AS_COL_SCOPE;
		t->scope[t->nscope++] = (size_t)(c - t->cols);
	}
	if (ds->cursor) {
		as_col *c = find_col(t, ds->cursor);

		if (!c)
			return as_error_set(
				err, AS_EUSAGE,
				"dataset %s: cursor column '%s' is not "
				"one of its columns",
				ds->name, ds->cursor);
		c->flags |= AS_COL_CURSOR;
		t->cursor = (int)(c - t->cols);
	}
	return 0;
}

static int build(as_table *t, const as_dataset_cfg *ds, char *const *key,
		 size_t nkey, as_error *err)
{
	size_t cap;
	int rc;

	memset(t, 0, sizeof(*t));
	if (!key) {
		key = ds->key;
		nkey = ds->nkey;
	}
	cap = ds->ncolumns + nkey + ds->nscope + 2;
	t->cols = calloc(cap, sizeof(*t->cols));
	t->capcols = cap;
	t->infer = ds->ncolumns ? ds->infer : ds->schema == AS_SCHEMA_INFER;
	t->flatten_depth = ds->flatten_depth > 0 ? ds->flatten_depth : 2;
	t->contract = ds->contract;
	t->scope = calloc(ds->nscope + 1, sizeof(*t->scope));
	t->dataset = as_strdup(ds->name);
	t->table = as_strdup(ds->table ? ds->table : ds->name);
	/* Every scoped dataset of a table runs under the table's lease
	 * (store.h, as_table_lease): datasets that share it (share_table)
	 * publish one at a time, and a paused one is fenced by the next. */
	if (ds->mode == AS_MODE_SCOPED && t->table &&
	    (t->lease = as_sprintf(AS_TABLE_LEASE_PREFIX "%s", t->table)))
		for (char *c = t->lease; *c; c++)
			*c = (char)tolower((unsigned char)*c);
	if (!t->cols || !t->scope || !t->dataset || !t->table ||
	    (ds->mode == AS_MODE_SCOPED && !t->lease))
		return as_error_set(err, AS_ENOMEM, "out of memory");
	t->mode = ds->mode;
	t->share_table = ds->share_table;
	t->history = ds->history;
	t->cursor = -1;
	if ((rc = add_columns(t, ds, key, nkey, err)) ||
	    (rc = mark_columns(t, ds, err)))
		return rc;
	fingerprint(t, ds);
	return t->fingerprint ? 0
			      : as_error_set(err, AS_ENOMEM, "out of memory");
}

/* describe found an existing table in the key + `data` layout: keep it. */
int as_table_json_layout(as_table *t, const as_dataset_cfg *ds)
{
	t->infer = 0;
	free(t->fingerprint);
	t->fingerprint = NULL;
	if (!find_col(t, "data") &&
	    add_col(t, "data", NULL, AS_TYPE_JSON, AS_COL_WHOLE))
		return AS_ENOMEM;
	fingerprint(t, ds);
	return t->fingerprint ? 0 : AS_ENOMEM;
}

/* On failure *t is left empty (cleared), so callers need not clear it. */
int as_table_build(as_table *t, const as_dataset_cfg *ds, char *const *key,
		   size_t nkey, as_error *err)
{
	int rc = build(t, ds, key, nkey, err);

	if (rc)
		as_table_clear(t);
	return rc;
}

void as_table_clear(as_table *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->ncols; i++) {
		free(t->cols[i].name);
		free(t->cols[i].path);
	}
	free(t->cols);
	free(t->scope);
	free(t->dataset);
	free(t->table);
	free(t->lease);
	free(t->fingerprint);
	memset(t, 0, sizeof(*t));
}
