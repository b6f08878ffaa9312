/*
 * The SQLite store's history (`history: snapshot | scd2`): <table>_history
 * written and pruned inside the publish (SCD2 by temporary triggers, so only
 * changed rows cost anything), and rollback in one fenced transaction.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/sqlite_int.h"
#include "util/crash.h"
#include "util/log.h"
#include "util/str.h"
#include "util/time.h"

/* The run writing history, for the triggers; reset: the history starts
 * over at this run; baseline: every live row is written as a new version. */
static const char *RUN_SQL =
	"DROP TABLE IF EXISTS temp._atomsync_history_run;"
	"CREATE TEMP TABLE _atomsync_history_run(run INTEGER, reset INTEGER,"
	" baseline INTEGER)";

static const char *const TRIGGERS[] = {
	"_atomsync_history_i", "_atomsync_history_u", "_atomsync_history_d"};

int as_sq_buf_exec(sq_store *s, as_buf *b, as_error *err)
{
	int rc = as_sq_exec(s, as_buf_cstr(b), err);

	as_buf_reset(b);
	return rc;
}

/* Run b (reset afterwards) with ?1 bound to v; *changes when not NULL. */
int as_sq_buf_exec_int(sq_store *s, as_buf *b, int64_t v, int64_t *changes,
		       as_error *err)
{
	sqlite3_stmt *q;
	int rc = as_sq_prepare(s, as_buf_cstr(b), &q, err);

	as_buf_reset(b);
	if (rc)
		return rc;
	if (sqlite3_bind_parameter_count(q) >= 1)
		sqlite3_bind_int64(q, 1, v);
	rc = sqlite3_step(q);
	sqlite3_finalize(q);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		return as_sq_fail(s, err, "history");
	if (changes)
		*changes = sqlite3_changes64(s->db);
	return 0;
}

static as_type type_of_decl(const char *decl)
{
	if (decl && strcasecmp(decl, "INTEGER") == 0)
		return AS_TYPE_INTEGER;
	if (decl && strcasecmp(decl, "REAL") == 0)
		return AS_TYPE_REAL;
	if (decl && strcasecmp(decl, "TEXT") == 0)
		return AS_TYPE_TEXT;
	return AS_TYPE_AUTO;
}

/* A history column's declared type, as SQLite's history writes them. */
const as_hist_types as_sq_hist_types = {"INTEGER", "BLOB", as_sq_sql_type,
					type_of_decl};

int as_sq_hist_meta_read(sq_store *s, const char *dataset, as_hist_meta *m,
			 as_error *err)
{
	as_sql q;

	as_sq_sql(s, &q);
	return as_sql_hist_meta_read(&q, dataset, m, err);
}

/* "k1" = old."k1" AND ... */
static void add_key_is(as_buf *b, const as_table *t, const char *other)
{
	for (size_t i = 0; i < t->nkey; i++) {
		as_buf_adds(b, i ? " AND " : "");
		as_buf_add_ident(b, t->cols[i].name);
		as_buf_printf(b, " = %s.", other);
		as_buf_add_ident(b, t->cols[i].name);
	}
}

/*
 * SCD2 while the live table changes: an inserted row opens a version, an
 * updated row closes its open version and opens one, a deleted row closes
 * its version.  TEMP triggers fire only for this connection's statements,
 * and are rolled back with the transaction if it fails.
 */
static int add_triggers(sq_store *s, const as_hist *h, const as_table *t,
			const char *live_q, as_error *err)
{
	static const char *RUN = "(SELECT run FROM temp._atomsync_history_run)";
	as_buf ins = AS_BUF_INIT, close = AS_BUF_INIT, b = AS_BUF_INIT;
	int rc;

	as_buf_printf(&ins,
		      "INSERT INTO %s(\"valid_from_run\", \"valid_to_run\", ",
		      h->q);
	as_hist_add_content(&ins, h, t, NULL);
	as_buf_printf(&ins, ") VALUES(%s, NULL, ", RUN);
	as_hist_add_content(&ins, h, t, "new");
	as_buf_adds(&ins, ");");
	as_buf_printf(&close, "UPDATE %s SET \"valid_to_run\" = %s WHERE ",
		      h->q, RUN);
	add_key_is(&close, t, "old");
	as_buf_adds(&close, " AND \"valid_to_run\" IS NULL;");
	as_buf_printf(
		&b,
		"CREATE TEMP TRIGGER \"%s\" AFTER INSERT ON main.%s BEGIN %s END;",
		TRIGGERS[0], live_q, as_buf_cstr(&ins));
	as_buf_printf(
		&b,
		"CREATE TEMP TRIGGER \"%s\" AFTER UPDATE ON main.%s BEGIN %s %s END;",
		TRIGGERS[1], live_q, as_buf_cstr(&close), as_buf_cstr(&ins));
	as_buf_printf(
		&b,
		"CREATE TEMP TRIGGER \"%s\" AFTER DELETE ON main.%s BEGIN %s END;",
		TRIGGERS[2], live_q, as_buf_cstr(&close));
	rc = as_sq_buf_exec(s, &b, err);
	as_buf_free(&ins);
	as_buf_free(&close);
	as_buf_free(&b);
	return rc;
}

static int drop_triggers(sq_store *s, as_error *err)
{
	as_buf b = AS_BUF_INIT;
	int rc;

	for (size_t i = 0; i < sizeof(TRIGGERS) / sizeof(TRIGGERS[0]); i++)
		as_buf_printf(&b, "DROP TRIGGER IF EXISTS temp.\"%s\";",
			      TRIGGERS[i]);
	rc = as_sq_buf_exec(s, &b, err);
	as_buf_free(&b);
	return rc;
}

/*
 * Before the publish (or a rollback) changes the live table: create the
 * history on first use, decide whether its record goes on from the last
 * run that wrote it or starts over (history just turned on, its shape
 * changed, or runs were published without it), and for SCD2 put the
 * triggers in place.  live_q must exist.  c: counts before the change.
 */
int as_sq_history_begin(sq_store *s, as_run_ctx *rc, const as_publish_opts *po,
			const as_counts *c, const char *live_q, as_error *err)
{
	as_table *t = rc->table;
	sqlite3_stmt *q = NULL;
	as_hist_meta m;
	int reset, baseline, ret;
	as_hist h;
	as_sql sql;

	if (po->history == AS_HISTORY_NONE)
		return 0;
	as_sq_sql(s, &sql);
	if ((ret = as_sql_hist_open(&sql, t, po, &h, &m, &reset, err)) ||
	    (ret = drop_triggers(s, err)) ||
	    (ret = as_sq_exec(s, RUN_SQL, err)))
		goto done;
	/* From an empty table every row is new: written whole, no triggers. */
	baseline = reset || c->live_before == 0;
	if ((ret = as_sq_prepare(s,
				 "INSERT INTO temp._atomsync_history_run "
				 "VALUES(?1, ?2, ?3)",
				 &q, err)))
		goto done;
	sqlite3_bind_int64(q, 1, rc->run_id);
	sqlite3_bind_int(q, 2, reset);
	sqlite3_bind_int(q, 3, baseline);
	if (sqlite3_step(q) != SQLITE_DONE) {
		ret = as_sq_fail(s, err, "history");
		goto done;
	}
	if (h.kind == AS_HISTORY_SCD2 && !baseline)
		ret = add_triggers(s, &h, t, live_q, err);
done:
	sqlite3_finalize(q);
	free(m.columns);
	as_hist_free(&h);
	return ret;
}

/*
 * After the live table changed: drop the triggers, write the snapshot of
 * every live row (snapshot) or, when starting over, every live row as an
 * open version (scd2); record which runs the history covers; prune.
 */
int as_sq_history_end(sq_store *s, as_run_ctx *rc, const as_publish_opts *po,
		      const char *live_q, as_error *err)
{
	as_table *t = rc->table;
	int64_t reset = 0, baseline = 0;
	int ret, exists;
	as_hist h;
	as_sql sql;

	if (po->history == AS_HISTORY_NONE)
		return 0;
	if ((ret = as_hist_build(&h, t, po, err)))
		return ret;
	if ((ret = drop_triggers(s, err)) ||
	    (ret = as_sq_query_int(
		     s, "SELECT reset FROM temp._atomsync_history_run", NULL,
		     &reset, err)) ||
	    (ret = as_sq_query_int(
		     s, "SELECT baseline FROM temp._atomsync_history_run", NULL,
		     &baseline, err)) ||
	    (ret = as_sq_table_exists(s, t->table, &exists, err)))
		goto done;
	as_sq_sql(s, &sql);
	if ((ret = as_sql_hist_write_live(&sql, &h, t, live_q, rc->run_id,
					  (int)baseline, exists, err)))
		goto done;
	as_crash_point("history.written");
	if ((ret = as_sql_hist_record(&sql, &h, t, rc->run_id, (int)reset,
				      err)))
		goto done;
	if ((ret = as_sql_hist_prune(&sql, rc, po, &h, err)))
		goto done;
	ret = as_sq_exec(s, "DROP TABLE IF EXISTS temp._atomsync_history_run",
			 err);
done:
	as_hist_free(&h);
	return ret;
}
