/*
 * Names both backends spell alike: key and scope column lists, the key
 * match of a join and an upsert's conflict clause (store/sql.h).
 */
#include "store/sql.h"

#include "util/str.h"

int as_sql_exec_buf(const as_sql *q, as_buf *b, const char *what, as_error *err)
{
	int rc = q->exec(q->conn, as_buf_cstr(b), what, err);

	as_buf_reset(b);
	return rc;
}

static void add_list(as_buf *b, const as_table *t, const size_t *idx, size_t n,
		     const char *prefix)
{
	for (size_t i = 0; i < n; i++) {
		if (i)
			as_buf_adds(b, ", ");
		if (prefix)
			as_buf_printf(b, "%s.", prefix);
		as_buf_add_ident(b, t->cols[idx ? idx[i] : i].name);
	}
}

void as_sql_key_list(as_buf *b, const as_table *t, const char *prefix)
{
	add_list(b, t, NULL, t->nkey, prefix);
}

void as_sql_scope_list(as_buf *b, const as_table *t, const char *prefix)
{
	add_list(b, t, t->scope, t->nscope, prefix);
}

void as_sql_key_match(as_buf *b, const as_table *t, const char *a,
		      const char *bq)
{
	for (size_t i = 0; i < t->nkey; i++) {
		if (i)
			as_buf_adds(b, " AND ");
		as_buf_printf(b, "%s.", a);
		as_buf_add_ident(b, t->cols[i].name);
		as_buf_printf(b, " = %s.", bq);
		as_buf_add_ident(b, t->cols[i].name);
	}
}

void as_sql_add_upsert(as_buf *b, const as_table *t, int update)
{
	as_buf_adds(b, " ON CONFLICT (");
	as_sql_key_list(b, t, NULL);
	if (!update) {
		as_buf_adds(b, ") DO NOTHING");
		return;
	}
	as_buf_adds(b, ") DO UPDATE SET ");
	for (size_t i = t->nkey; i < t->ncols; i++) {
		as_buf_add_ident(b, t->cols[i].name);
		as_buf_adds(b, " = excluded.");
		as_buf_add_ident(b, t->cols[i].name);
		as_buf_adds(b, ", ");
	}
	as_buf_adds(b, "\"_atomsync_run\" = excluded.\"_atomsync_run\", "
		       "\"_atomsync_hash\" = excluded.\"_atomsync_hash\", "
		       "\"_atomsync_line\" = excluded.\"_atomsync_line\"");
}
