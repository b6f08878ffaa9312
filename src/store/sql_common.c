/*
 * Names both backends spell alike: key and scope column lists, the key
 * match of a join and an upsert's conflict clause (store/sql.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/sql.h"
#include "store/sql_ops.h"

#include "util/str.h"

int as_sql_exec_buf(const as_sql *q, as_buf *b, const char *what, as_error *err)
{
	int rc = q->exec(q->conn, as_buf_cstr(b), what, err);

	as_buf_reset(b);
	return rc;
}

as_val as_sql_int_val(int64_t i)
{
	as_val v = {.kind = AS_V_INT};

	v.u.i = i;
	return v;
}

as_val as_sql_text_val(const char *s)
{
	as_val v = {.kind = s ? AS_V_TEXT : AS_V_NULL};

	if (s) {
		v.u.s = s;
		v.len = (uint32_t)strlen(s);
	}
	return v;
}

void as_sql_init(as_sql *q, const as_sql_dialect *d, const as_sql_driver *drv,
		 void *conn)
{
	q->d = d;
	q->conn = conn;
	q->exec = drv->exec;
	q->exec_changes = drv->exec_changes;
	q->query_ints = drv->query_ints;
	q->query_rows = drv->query_rows;
	q->exec_vals = drv->exec_vals;
	q->outbox = drv->outbox;
	q->txn = drv->txn;
}

static int exists_row(void *ud, const char *const *v)
{
	*(int *)ud = v[0] && strtoll(v[0], NULL, 10) > 0;
	return 0;
}

int as_sql_table_exists(const as_sql *q, const char *name, int *exists,
			as_error *err)
{
	*exists = 0;
	return q->query_rows(q->conn, q->d->exists_sql, name, 1, exists_row,
			     exists, "looking up a table", err);
}

int as_sql_table_rows(const as_sql *q, const char *table, int64_t *rows,
		      as_error *err)
{
	as_buf sql = AS_BUF_INIT;
	int exists, rc;

	*rows = -1;
	if ((rc = as_sql_table_exists(q, table, &exists, err)) || !exists)
		return rc;
	as_buf_adds(&sql, "SELECT count(*) FROM ");
	as_buf_add_ident(&sql, table);
	rc = q->query_ints(q->conn, as_buf_cstr(&sql), rows, 1, "counting rows",
			   err);
	as_buf_free(&sql);
	return rc;
}

int as_sql_status_rows(const as_sql *q, as_dataset_status *v, size_t n,
		       as_error *err)
{
	for (size_t i = 0; i < n; i++)
		if (as_sql_table_rows(q, v[i].table, &v[i].rows, err))
			return err->code;
	return 0;
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

void as_sql_scope_index_name(char *out, size_t n, const as_table *t)
{
	snprintf(out, n, "%s_atomsync_scope", t->table);
}

void as_sql_add_scope_index(as_buf *b, const as_table *t, const char *live_q)
{
	char idx[200];

	as_sql_scope_index_name(idx, sizeof(idx), t);
	as_buf_adds(b, "CREATE INDEX IF NOT EXISTS ");
	as_buf_add_ident(b, idx);
	as_buf_printf(b, " ON %s(", live_q);
	as_sql_scope_list(b, t, NULL);
	as_buf_adds(b, ")");
}

void as_sql_add_upsert(as_buf *b, const as_table *t, int update,
		       const char *alias)
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
	if (alias)
		as_buf_printf(b,
			      " WHERE %s.\"_atomsync_hash\" IS DISTINCT FROM "
			      "excluded.\"_atomsync_hash\"",
			      alias);
}
