/*
 * Schema inference on SQLite: the declared types of inferred columns, and
 * reading an existing table's columns (with what atomsync_columns knows of
 * them) into the table spec.  The backend-independent part is
 * store/schema.c.
 */
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "store/schema.h"
#include "store/sqlite_int.h"
#include "util/str.h"

/* Inferred columns say their type in the declaration (the affinity of
 * BOOLEAN, TIMESTAMP and JSON is NUMERIC, which keeps 0/1, canonical
 * timestamps and JSON arrays and objects as they are), so the next run
 * reads it back; a widened column stays INTEGER, which holds reals too,
 * and atomsync_columns says it is real. */
const char *as_sq_col_type(const as_col *c)
{
	if (!(c->flags & AS_COL_INFERRED))
		return as_sq_sql_type(c->type);
	switch (c->type) {
	case AS_TYPE_BOOLEAN: return "BOOLEAN";
	case AS_TYPE_TIMESTAMP: return "TIMESTAMP";
	case AS_TYPE_JSON: return "JSON";
	default: return as_sq_sql_type(c->type);
	}
}

/* What atomsync_columns knows of the table's inferred columns: the field
 * each was made from, and which were widened to real (a SQLite column
 * keeps its declared type). */
static int known_cols(sq_store *s, as_table *t, as_error *err)
{
	sqlite3_stmt *q;
	int exists;

	if (as_sq_table_exists(s, "atomsync_columns", &exists, err))
		return err->code;
	if (!exists)
		return 0;
	if (as_sq_prepare(s,
			  "SELECT col, type, field FROM atomsync_columns "
			  "WHERE table_name = ?1",
			  &q, err))
		return err->code;
	sqlite3_bind_text(q, 1, t->table, -1, SQLITE_STATIC);
	while (sqlite3_step(q) == SQLITE_ROW)
		as_schema_known(t, (const char *)sqlite3_column_text(q, 0),
				(const char *)sqlite3_column_text(q, 1),
				(const char *)sqlite3_column_text(q, 2));
	sqlite3_finalize(q);
	return 0;
}

/* An inferring spec: adopt the table's columns (store/schema.c). */
int as_sq_adopt_table(sq_store *s, as_table *t, const char *name, int stage,
		      size_t *nuser, as_error *err)
{
	as_buf b = AS_BUF_INIT;
	sqlite3_stmt *q;
	char **names = NULL;
	as_type *types = NULL;
	size_t n = 0, cap = 0;
	int rc, bad, oom = 0;

	as_buf_adds(&b, "PRAGMA table_info(");
	as_buf_add_ident(&b, name);
	as_buf_adds(&b, ")");
	rc = as_sq_prepare(s, as_buf_cstr(&b), &q, err);
	as_buf_free(&b);
	if (rc)
		goto done;
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		const char *cn = (const char *)sqlite3_column_text(q, 1);
		const char *ct = (const char *)sqlite3_column_text(q, 2);

		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 16;
			char **nn = realloc(names, ncap * sizeof(*names));
			as_type *nt;

			if (nn)
				names = nn;
			nt = nn ? realloc(types, ncap * sizeof(*types)) : NULL;
			if (nt)
				types = nt;
			if (!nn || !nt) {
				oom = 1;
				break;
			}
			cap = ncap;
		}
		names[n] = as_strdup(cn ? cn : "");
		types[n] = as_sq_type_of_decl(ct);
		n++;
	}
	sqlite3_finalize(q);
	if (rc != SQLITE_DONE) {
		rc = oom ? as_error_set(err, AS_ENOMEM, "out of memory")
			 : as_sq_fail(s, err, "reading table schema");
		goto done;
	}
	bad = as_schema_adopt(t, (const char *const *)names, types, n, stage,
			      nuser);
	if (!bad && !stage && !t->legacy_json && known_cols(s, t, err)) {
		rc = err->code;
		goto done;
	}
	rc = bad ? as_error_set(err, AS_EUSAGE,
				"table %s exists but does not have the columns "
				"the dataset maps (the configured ones first, "
				"in order, with their types); rename the table "
				"or migrate it",
				name)
		 : 0;
done:
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	free(types);
	return rc;
}
