/*
 * The SQLite store's history (`history: snapshot | scd2`): <table>_history
 * written and pruned inside the publish (SCD2 by temporary triggers, so only
 * changed rows cost anything), and rollback in one fenced transaction.
 */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "model/outbox.h"
#include "store/history.h"
#include "store/sqlite_int.h"
#include "util/crash.h"
#include "util/log.h"
#include "util/str.h"
#include "util/time.h"

static const as_hist_types TYPES = {"INTEGER", "BLOB", as_sq_sql_type};

/* One row per dataset with history: its shape and the runs it can restore
 * (first_run..last_run; last_run is the newest run that wrote history). */
static const char *META_SQL =
	"CREATE TABLE IF NOT EXISTS atomsync_history("
	" dataset TEXT PRIMARY KEY, table_name TEXT NOT NULL, kind TEXT NOT NULL,"
	" columns TEXT NOT NULL, restorable INTEGER NOT NULL,"
	" first_run INTEGER NOT NULL, last_run INTEGER NOT NULL)";

/* The run writing history, for the triggers; reset: the history starts
 * over at this run; baseline: every live row is written as a new version. */
static const char *RUN_SQL =
	"DROP TABLE IF EXISTS temp._atomsync_history_run;"
	"CREATE TEMP TABLE _atomsync_history_run(run INTEGER, reset INTEGER,"
	" baseline INTEGER)";

static const char *const TRIGGERS[] = {
	"_atomsync_history_i", "_atomsync_history_u", "_atomsync_history_d"};

static int buf_exec(sq_store *s, as_buf *b, as_error *err)
{
	int rc = as_sq_exec(s, as_buf_cstr(b), err);

	as_buf_reset(b);
	return rc;
}

/* Run b (reset afterwards) with ?1 bound to v; *changes when not NULL. */
static int buf_exec_int(sq_store *s, as_buf *b, int64_t v, int64_t *changes,
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

/* as_hist_evolve's callback: one column added to the history table. */
static int hist_add_col(void *ud, const char *name, const char *type)
{
	void **a = ud;
	sq_store *s = a[0];
	const as_hist *h = a[1];
	as_buf b = AS_BUF_INIT;
	int rc;

	as_buf_printf(&b, "ALTER TABLE %s ADD COLUMN ", h->q);
	as_buf_add_ident(&b, name);
	as_buf_printf(&b, " %s", type);
	rc = as_sq_exec(s, as_buf_cstr(&b), a[2]);
	as_buf_free(&b);
	return rc;
}

/* An inferring table: the history gains the columns the live table
 * gained, inside the publish transaction. */
static int hist_evolve(sq_store *s, const as_hist *h, as_table *t,
		       as_error *err)
{
	as_buf b = AS_BUF_INIT;
	sqlite3_stmt *q = NULL;
	char **names = NULL;
	size_t n = 0, cap = 0;
	void *ud[3] = {s, (void *)h, err};
	int rc, step;

	as_buf_adds(&b, "PRAGMA table_info(");
	as_buf_add_ident(&b, h->name);
	as_buf_adds(&b, ")");
	rc = as_sq_prepare(s, as_buf_cstr(&b), &q, err);
	as_buf_free(&b);
	if (rc)
		return rc;
	/* Every column, however many: one missed would be added again. */
	while ((step = sqlite3_step(q)) == SQLITE_ROW) {
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 64;
			char **nn = realloc(names, ncap * sizeof(*names));

			if (!nn)
				break;
			names = nn;
			cap = ncap;
		}
		if (!(names[n] = as_strdup(
			      (const char *)sqlite3_column_text(q, 1))))
			break;
		n++;
	}
	if (step == SQLITE_ROW)
		rc = as_error_set(err, AS_ENOMEM, "out of memory");
	else if (step != SQLITE_DONE)
		rc = as_sq_fail(s, err, "reading the history table");
	sqlite3_finalize(q);
	if (!rc)
		rc = as_hist_evolve(h, t, &TYPES, (const char *const *)names, n,
				    hist_add_col, ud);
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	if (rc == -1)
		return as_error_set(err, AS_EUSAGE,
				    "table %s exists but lacks a configured "
				    "column of dataset %s; rename or drop it",
				    h->name, t->dataset);
	return rc ? err->code : 0;
}

/*
 * Compare an existing history table with the shape this configuration
 * writes (columns still AS_TYPE_AUTO adopt its types).  A different shape
 * is a configuration error: history is never silently reshaped or lost.
 */
static int hist_check(sq_store *s, const as_hist *h, as_table *t, as_error *err)
{
	const char **names = calloc(t->ncols + 4, sizeof(char *));
	const char **types = calloc(t->ncols + 4, sizeof(char *));
	as_buf b = AS_BUF_INIT, want = AS_BUF_INIT;
	size_t off = h->kind == AS_HISTORY_SCD2 ? 2 : 1; /* the run columns */
	sqlite3_stmt *q = NULL;
	size_t n, i = 0;
	int ok = 1, rc;

	if (!names || !types) {
		rc = as_error_set(err, AS_ENOMEM, "out of memory");
		goto done;
	}
	n = as_hist_layout(h, t, &TYPES, names, types);
	as_buf_adds(&b, "PRAGMA table_info(");
	as_buf_add_ident(&b, h->name);
	as_buf_adds(&b, ")");
	if ((rc = as_sq_prepare(s, as_buf_cstr(&b), &q, err)))
		goto done;
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		const char *cn = (const char *)sqlite3_column_text(q, 1);
		const char *ct = (const char *)sqlite3_column_text(q, 2);

		if (i >= n || !as_streq(cn, names[i])) {
			ok = 0;
		} else if (strcasecmp(types[i], ct ? ct : "") != 0) {
			/* A column of no declared type takes the history's. */
			as_col *c = i >= off && i - off < h->ncols
					    ? &t->cols[h->cols[i - off]]
					    : NULL;

			if (c && c->type == AS_TYPE_AUTO &&
			    type_of_decl(ct) != AS_TYPE_AUTO)
				c->type = type_of_decl(ct);
			else
				ok = 0;
		}
		i++;
	}
	if (rc != SQLITE_DONE) {
		rc = as_sq_fail(s, err, "reading the history table");
		goto done;
	}
	rc = 0;
	if (!ok || i != n) {
		for (size_t k = 0; k < n; k++)
			as_buf_printf(&want, "%s%s %s", k ? ", " : "", names[k],
				      types[k]);
		rc = as_error_set(
			err, AS_EUSAGE,
			"table %s exists but does not hold the %s history "
			"dataset %s now writes (%s); rename or drop it, or "
			"restore the dataset's earlier columns and history "
			"settings",
			h->name, as_hist_kind_name(h->kind), t->dataset,
			as_buf_cstr(&want));
	}
done:
	sqlite3_finalize(q);
	free(names);
	free(types);
	as_buf_free(&b);
	as_buf_free(&want);
	return rc;
}

/* The metadata table and the history table with its indexes, created on
 * first use; an existing history table must have this shape. */
static int hist_ensure(sq_store *s, const as_hist *h, as_table *t,
		       as_error *err)
{
	const char **names = calloc(t->ncols + 4, sizeof(char *));
	const char **types = calloc(t->ncols + 4, sizeof(char *));
	as_buf b = AS_BUF_INIT;
	int exists, rc;
	size_t n, off;

	if (!names || !types) {
		rc = as_error_set(err, AS_ENOMEM, "out of memory");
		goto done;
	}
	if ((rc = as_sq_exec(s, META_SQL, err)) ||
	    (rc = as_sq_table_exists(s, h->name, &exists, err)))
		goto done;
	if (exists) {
		rc = t->infer ? hist_evolve(s, h, t, err)
			      : hist_check(s, h, t, err);
		goto done;
	}
	n = as_hist_layout(h, t, &TYPES, names, types);
	off = h->kind == AS_HISTORY_SCD2 ? 2 : 1;
	as_buf_printf(&b, "CREATE TABLE %s (", h->q);
	for (size_t i = 0; i < n; i++) {
		as_buf_add_ident(&b, names[i]);
		as_buf_printf(&b, " %s%s, ", types[i],
			      i == 0 || (i >= off && i < off + t->nkey)
				      ? " NOT NULL"
				      : "");
	}
	/* Snapshot rows are written and pruned a run at a time: the run leads
	 * the key.  A version is found by its record's key (the triggers). */
	if (h->kind == AS_HISTORY_SCD2) {
		as_buf_adds(&b, "PRIMARY KEY (");
		as_sql_key_list(&b, t, NULL);
		as_buf_adds(&b, ", \"valid_from_run\")) WITHOUT ROWID");
	} else {
		as_buf_adds(&b, "PRIMARY KEY (\"run_id\", ");
		as_sql_key_list(&b, t, NULL);
		as_buf_adds(&b, ")) WITHOUT ROWID");
	}
	if ((rc = buf_exec(s, &b, err)))
		goto done;
	if (h->kind == AS_HISTORY_SCD2) {
		/* Retention and the closing of every open version (a baseline)
		 * go by valid_to_run. */
		char *idx = as_sprintf("%s_valid_to", h->name);

		as_buf_adds(&b, "CREATE INDEX IF NOT EXISTS ");
		as_buf_add_ident(&b, idx);
		as_buf_printf(&b, " ON %s(\"valid_to_run\")", h->q);
		free(idx);
		rc = buf_exec(s, &b, err);
	}
done:
	free(names);
	free(types);
	as_buf_free(&b);
	return rc;
}

static int meta_read(sq_store *s, const char *dataset, as_hist_meta *m,
		     as_error *err)
{
	sqlite3_stmt *q;
	int exists, rc;

	memset(m, 0, sizeof(*m));
	if ((rc = as_sq_table_exists(s, "atomsync_history", &exists, err)) ||
	    !exists)
		return rc;
	if ((rc = as_sq_prepare(
		     s,
		     "SELECT kind, columns, restorable, first_run, "
		     "last_run FROM atomsync_history WHERE dataset = ?1",
		     &q, err)))
		return rc;
	sqlite3_bind_text(q, 1, dataset, -1, SQLITE_TRANSIENT);
	rc = sqlite3_step(q);
	if (rc == SQLITE_ROW) {
		m->found = 1;
		snprintf(m->kind, sizeof(m->kind), "%s",
			 sqlite3_column_text(q, 0));
		m->columns = as_strdup((const char *)sqlite3_column_text(q, 1));
		m->restorable = sqlite3_column_int(q, 2);
		m->first_run = sqlite3_column_int64(q, 3);
		m->last_run = sqlite3_column_int64(q, 4);
	}
	sqlite3_finalize(q);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return as_sq_fail(s, err, "reading history metadata");
	return 0;
}

static int published_run(sq_store *s, const char *dataset, int64_t *out,
			 as_error *err)
{
	return as_sq_query_int(s,
			       "SELECT published_run FROM atomsync_state "
			       "WHERE dataset = ?1",
			       dataset, out, err);
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
	rc = buf_exec(s, &b, err);
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
	rc = buf_exec(s, &b, err);
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
static int history_begin(sq_store *s, as_run_ctx *rc, const as_publish_opts *po,
			 const as_counts *c, const char *live_q, as_error *err)
{
	as_table *t = rc->table;
	sqlite3_stmt *q = NULL;
	as_hist_meta m;
	int64_t prev = 0;
	int reset, baseline, ret;
	as_hist h;

	memset(&m, 0, sizeof(m));
	if ((ret = as_hist_build(&h, t, po, err)))
		return ret;
	if ((ret = hist_ensure(s, &h, t, err)) ||
	    (ret = meta_read(s, t->dataset, &m, err)) ||
	    (ret = published_run(s, t->dataset, &prev, err)) ||
	    (ret = drop_triggers(s, err)) ||
	    (ret = as_sq_exec(s, RUN_SQL, err)))
		goto done;
	reset = !m.found || strcmp(m.kind, as_hist_kind_name(h.kind)) != 0 ||
		!as_streq(m.columns, h.colnames) || m.restorable != h.full ||
		m.last_run != prev;
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

/* The oldest run to keep under history_keep, or 0 to keep everything. */
static int keep_from(sq_store *s, as_run_ctx *rc, const as_publish_opts *po,
		     int64_t first, int64_t *cutoff, as_error *err)
{
	sqlite3_stmt *q = NULL;
	int ret = 0;

	*cutoff = 0;
	/* The run being published is not yet completed: it counts as kept. */
	if (po->history_keep_runs > 0) {
		if ((ret = as_sq_prepare(
			     s,
			     "SELECT run_id FROM atomsync_runs WHERE "
			     "dataset = ?1 AND run_id >= ?2 AND (run_id = ?3 "
			     "OR (status = 'completed' AND kind IN ('sync', "
			     "'rollback'))) ORDER BY run_id DESC LIMIT 1 "
			     "OFFSET ?4",
			     &q, err)))
			return ret;
		sqlite3_bind_text(q, 1, rc->table->dataset, -1,
				  SQLITE_TRANSIENT);
		sqlite3_bind_int64(q, 2, first);
		sqlite3_bind_int64(q, 3, rc->run_id);
		sqlite3_bind_int64(q, 4, po->history_keep_runs - 1);
		ret = sqlite3_step(q);
		if (ret == SQLITE_ROW)
			*cutoff = sqlite3_column_int64(q, 0);
		else if (ret != SQLITE_DONE)
			as_sq_fail(s, err, "history retention");
		sqlite3_finalize(q);
		q = NULL;
		if (ret != SQLITE_ROW && ret != SQLITE_DONE)
			return AS_ESTORE;
	}
	if (po->history_keep_ms > 0) {
		char since[40];

		as_iso8601(as_now() - (double)po->history_keep_ms / 1000.0,
			   since, sizeof(since));
		if ((ret = as_sq_prepare(
			     s,
			     "SELECT min(run_id) FROM atomsync_runs WHERE "
			     "dataset = ?1 AND run_id >= ?2 AND (run_id = ?3 "
			     "OR (status = 'completed' AND kind IN ('sync', "
			     "'rollback') AND finished_at >= ?4))",
			     &q, err)))
			return ret;
		sqlite3_bind_text(q, 1, rc->table->dataset, -1,
				  SQLITE_TRANSIENT);
		sqlite3_bind_int64(q, 2, first);
		sqlite3_bind_int64(q, 3, rc->run_id);
		sqlite3_bind_text(q, 4, since, -1, SQLITE_TRANSIENT);
		/* An error here must fail the publish, not skip the pruning. */
		ret = sqlite3_step(q);
		if (ret == SQLITE_ROW && sqlite3_column_int64(q, 0) > *cutoff)
			*cutoff = sqlite3_column_int64(q, 0);
		else if (ret != SQLITE_ROW && ret != SQLITE_DONE)
			as_sq_fail(s, err, "history retention");
		sqlite3_finalize(q);
		if (ret != SQLITE_ROW && ret != SQLITE_DONE)
			return AS_ESTORE;
	}
	return 0;
}

/* history_keep: drop what only runs before the cutoff need, and move the
 * oldest restorable run up to it. */
static int prune(sq_store *s, as_run_ctx *rc, const as_publish_opts *po,
		 const as_hist *h, as_error *err)
{
	as_buf b = AS_BUF_INIT;
	int64_t first = 0, cutoff, gone = 0;
	sqlite3_stmt *q = NULL;
	int ret;

	if (po->history_keep_runs <= 0 && po->history_keep_ms <= 0)
		return 0;
	if ((ret = as_sq_query_int(s,
				   "SELECT first_run FROM atomsync_history "
				   "WHERE dataset = ?1",
				   rc->table->dataset, &first, err)) ||
	    (ret = keep_from(s, rc, po, first, &cutoff, err)) ||
	    cutoff <= first)
		return ret;
	/* A version closed at the cutoff was valid only before it. */
	if (h->kind == AS_HISTORY_SCD2)
		as_buf_printf(&b, "DELETE FROM %s WHERE \"valid_to_run\" <= ?1",
			      h->q);
	else
		as_buf_printf(&b, "DELETE FROM %s WHERE \"run_id\" < ?1", h->q);
	if ((ret = buf_exec_int(s, &b, cutoff, &gone, err)))
		goto done;
	if ((ret = as_sq_prepare(s,
				 "UPDATE atomsync_history SET first_run = ?2 "
				 "WHERE dataset = ?1",
				 &q, err)))
		goto done;
	sqlite3_bind_text(q, 1, rc->table->dataset, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(q, 2, cutoff);
	if (sqlite3_step(q) != SQLITE_DONE)
		ret = as_sq_fail(s, err, "history retention");
	else
		as_debug("%s: history before run %lld pruned (%lld rows)",
			 rc->table->dataset, (long long)cutoff,
			 (long long)gone);
done:
	sqlite3_finalize(q);
	as_buf_free(&b);
	return ret;
}

/*
 * After the live table changed: drop the triggers, write the snapshot of
 * every live row (snapshot) or, when starting over, every live row as an
 * open version (scd2); record which runs the history covers; prune.
 */
static int history_end(sq_store *s, as_run_ctx *rc, const as_publish_opts *po,
		       const char *live_q, as_error *err)
{
	as_table *t = rc->table;
	as_buf b = AS_BUF_INIT;
	sqlite3_stmt *q = NULL;
	int64_t reset = 0, baseline = 0;
	int ret, exists;
	as_hist h;

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
	if (h.kind == AS_HISTORY_SCD2 && baseline) {
		as_buf_printf(&b,
			      "UPDATE %s SET \"valid_to_run\" = ?1 WHERE "
			      "\"valid_to_run\" IS NULL",
			      h.q);
		if ((ret = buf_exec_int(s, &b, rc->run_id, NULL, err)))
			goto done;
	}
	if (exists && (h.kind == AS_HISTORY_SNAPSHOT || baseline)) {
		as_buf_printf(&b, "INSERT INTO %s", h.q);
		as_hist_add_insert_cols(&b, &h, t);
		as_buf_printf(&b, " SELECT ?1, %s",
			      h.kind == AS_HISTORY_SCD2 ? "NULL, " : "");
		as_hist_add_content(&b, &h, t, NULL);
		as_buf_printf(&b, " FROM main.%s", live_q);
		if ((ret = buf_exec_int(s, &b, rc->run_id, NULL, err)))
			goto done;
	}
	as_crash_point("history.written");
	if ((ret = as_sq_prepare(
		     s,
		     "INSERT INTO atomsync_history VALUES(?1, ?2, ?3, ?4, "
		     "?5, ?6, ?6) ON CONFLICT(dataset) DO UPDATE SET "
		     "table_name = excluded.table_name, kind = excluded.kind, "
		     "columns = excluded.columns, restorable = excluded.restorable, "
		     "first_run = CASE WHEN ?7 THEN excluded.first_run "
		     "ELSE first_run END, last_run = excluded.last_run",
		     &q, err)))
		goto done;
	sqlite3_bind_text(q, 1, t->dataset, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(q, 2, t->table, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(q, 3, as_hist_kind_name(h.kind), -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 4, h.colnames, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int(q, 5, h.full);
	sqlite3_bind_int64(q, 6, rc->run_id);
	sqlite3_bind_int(q, 7, reset != 0);
	if (sqlite3_step(q) != SQLITE_DONE) {
		ret = as_sq_fail(s, err, "recording history");
		goto done;
	}
	if ((ret = prune(s, rc, po, &h, err)))
		goto done;
	ret = as_sq_exec(s, "DROP TABLE IF EXISTS temp._atomsync_history_run",
			 err);
done:
	sqlite3_finalize(q);
	as_buf_free(&b);
	as_hist_free(&h);
	return ret;
}

/* ---- the hooks in the publish (store/sqlite_publish.c) ---- */

int as_sq_history_before(sq_store *s, as_run_ctx *rc, const as_publish_opts *po,
			 const as_counts *c, as_error *err)
{
	sq_run *r = rc->priv;

	if (po->history == AS_HISTORY_NONE)
		return 0;
	return history_begin(s, rc, po, c, r->live_q, err);
}

int as_sq_history_after(sq_store *s, as_run_ctx *rc, const as_publish_opts *po,
			as_error *err)
{
	sq_run *r = rc->priv;

	if (po->history == AS_HISTORY_NONE)
		return 0;
	return history_end(s, rc, po, r->live_q, err);
}

/* ---- rollback ---- */

/* Why the history cannot restore run n, or 0 when it can. */
static int check_target(sq_store *s, as_run_ctx *rc, const as_hist *h,
			int64_t n, as_error *err)
{
	const as_table *t = rc->table;
	sqlite3_stmt *q;
	char kind[16] = "", status[16] = "";
	as_hist_meta m;
	int rc2, exists, ret;

	if (as_sq_prepare(
		    s,
		    "SELECT kind, status FROM atomsync_runs WHERE run_id = ?1 "
		    "AND dataset = ?2",
		    &q, err))
		return err->code;
	sqlite3_bind_int64(q, 1, n);
	sqlite3_bind_text(q, 2, t->dataset, -1, SQLITE_TRANSIENT);
	rc2 = sqlite3_step(q);
	if (rc2 == SQLITE_ROW) {
		snprintf(kind, sizeof(kind), "%s", sqlite3_column_text(q, 0));
		snprintf(status, sizeof(status), "%s",
			 sqlite3_column_text(q, 1));
	}
	sqlite3_finalize(q);
	if (rc2 != SQLITE_ROW && rc2 != SQLITE_DONE)
		return as_sq_fail(s, err, "reading runs");
	if ((ret = as_hist_check_run(t, n, rc2 == SQLITE_ROW, kind, status,
				     err)) ||
	    (ret = meta_read(s, t->dataset, &m, err)))
		return ret;
	if (!(ret = as_sq_table_exists(s, h->name, &exists, err)))
		ret = as_hist_check_meta(t, h, n, &m, exists, err);
	free(m.columns);
	return ret;
}

/* A TEMP table shaped like the live table (and its staging tables). */
static int create_target(sq_store *s, const as_table *t, as_error *err)
{
	as_buf b = AS_BUF_INIT;
	int rc;

	as_buf_adds(&b, "DROP TABLE IF EXISTS temp._atomsync_target; "
			"CREATE TEMP TABLE _atomsync_target (");
	for (size_t i = 0; i < t->ncols; i++) {
		as_buf_add_ident(&b, t->cols[i].name);
		as_buf_printf(&b, " %s, ", as_sq_sql_type(t->cols[i].type));
	}
	as_buf_adds(&b,
		    "\"_atomsync_run\" INTEGER, \"_atomsync_hash\" INTEGER, "
		    "\"_atomsync_line\" BLOB, PRIMARY KEY (");
	as_sql_key_list(&b, t, NULL);
	as_buf_adds(&b, "))");
	rc = buf_exec(s, &b, err);
	as_buf_free(&b);
	return rc;
}

/*
 * temp._atomsync_target := the live table's content after run n, each row
 * marked with run R in _atomsync_run when the live table does not hold it
 * exactly (a missing key, or any column or the hash differs).
 */
static int fill_target(sq_store *s, as_run_ctx *rc, const as_hist *h, int64_t n,
		       as_error *err)
{
	const as_table *t = rc->table;
	sq_run *r = rc->priv;
	as_buf b = AS_BUF_INIT;
	int ret;

	as_buf_adds(&b, "INSERT INTO temp._atomsync_target SELECT ");
	for (size_t i = 0; i < t->ncols; i++) {
		as_buf_add_ident(&b, t->cols[i].name);
		as_buf_adds(&b, ", ");
	}
	as_buf_printf(
		&b,
		"NULL, \"_atomsync_hash\", \"_atomsync_line\" FROM %s WHERE ",
		h->q);
	if (h->kind == AS_HISTORY_SCD2)
		as_buf_adds(
			&b,
			"\"valid_from_run\" <= ?1 AND (\"valid_to_run\" IS NULL "
			"OR \"valid_to_run\" > ?1)");
	else
		as_buf_adds(&b, "\"run_id\" = ?1");
	if ((ret = buf_exec_int(s, &b, n, NULL, err)))
		goto done;
	as_buf_printf(&b,
		      "UPDATE temp._atomsync_target SET \"_atomsync_run\" = ?1 "
		      "WHERE NOT EXISTS (SELECT 1 FROM main.%s AS l WHERE ",
		      r->live_q);
	for (size_t i = 0; i < t->ncols; i++) {
		as_buf_adds(&b, i ? " AND " : "");
		as_buf_adds(&b, "l.");
		as_buf_add_ident(&b, t->cols[i].name);
		as_buf_adds(&b, i < t->nkey ? " = " : " IS ");
		as_buf_adds(&b, "_atomsync_target.");
		as_buf_add_ident(&b, t->cols[i].name);
	}
	/* A row whose stored hash went stale (edited in place) is rewritten. */
	as_buf_adds(
		&b,
		" AND l.\"_atomsync_hash\" IS _atomsync_target.\"_atomsync_hash\")");
	ret = buf_exec_int(s, &b, rc->run_id, NULL, err);
done:
	as_buf_free(&b);
	return ret;
}

/* Counts relative to the live table (invariant 10). */
static int rollback_counts(sq_store *s, as_run_ctx *rc, as_counts *c,
			   as_error *err)
{
	const as_table *t = rc->table;
	sq_run *r = rc->priv;
	as_buf b = AS_BUF_INIT;
	int64_t S, C;
	int ret;

	as_buf_printf(&b, "SELECT count(*) FROM main.%s", r->live_q);
	if ((ret = as_sq_query_int(s, as_buf_cstr(&b), NULL, &c->live_before,
				   err)) ||
	    (ret = as_sq_query_int(s,
				   "SELECT count(*) FROM temp._atomsync_target",
				   NULL, &S, err)) ||
	    (ret = as_sq_query_int(s,
				   "SELECT count(\"_atomsync_run\") FROM "
				   "temp._atomsync_target",
				   NULL, &C, err)))
		goto done;
	as_buf_reset(&b);
	as_buf_printf(
		&b,
		"SELECT count(*) FROM temp._atomsync_target AS tt WHERE "
		"\"_atomsync_run\" IS NOT NULL AND NOT EXISTS (SELECT 1 FROM "
		"main.%s AS l WHERE ",
		r->live_q);
	as_sql_key_match(&b, t, "l", "tt");
	as_buf_adds(&b, ")");
	if ((ret = as_sq_query_int(s, as_buf_cstr(&b), NULL, &c->inserted,
				   err)))
		goto done;
	c->seen = S;
	c->updated = C - c->inserted;
	c->unchanged = S - C;
	c->deleted = c->live_before - (S - c->inserted);
	c->live_after = S;
done:
	as_buf_free(&b);
	return ret;
}

/*
 * The changed rows for the outbox (invariant 7): temp._atomsync_changed
 * holds the mapped columns and _atomsync_op: 'insert' and 'update' rows
 * with the restored values, 'delete' rows with a deleted row's last values,
 * and when a template names a non-key column 'before' rows with an updated
 * row's current values (the contract of
 * as_sq_outbox_write).  Built before the live table changes, and only when
 * the run records outbox events (rc->outbox).
 */
static int rollback_changed(sq_store *s, as_run_ctx *rc, as_error *err)
{
	const as_table *t = rc->table;
	sq_run *r = rc->priv;
	as_buf b = AS_BUF_INIT, cols = AS_BUF_INIT;
	int ret, before;

	if (!as_outbox_plan_any(rc->outbox))
		return 0;
	before = rc->outbox->before;
	for (size_t i = 0; i < t->ncols; i++) {
		as_buf_adds(&cols, i ? ", " : "");
		as_buf_add_ident(&cols, t->cols[i].name);
	}
	as_buf_printf(&b,
		      "DROP TABLE IF EXISTS temp._atomsync_changed; "
		      "CREATE TEMP TABLE _atomsync_changed AS SELECT %s, "
		      "CASE WHEN EXISTS (SELECT 1 FROM main.%s AS l WHERE ",
		      as_buf_cstr(&cols), r->live_q);
	as_sql_key_match(&b, t, "l", "tt");
	as_buf_printf(
		&b,
		") THEN 'update' ELSE 'insert' END AS \"_atomsync_op\" "
		"FROM temp._atomsync_target AS tt WHERE \"_atomsync_run\" IS NOT "
		"NULL UNION ALL SELECT %s, CASE WHEN EXISTS (SELECT 1 FROM "
		"temp._atomsync_target AS tt WHERE ",
		as_buf_cstr(&cols));
	as_sql_key_match(&b, t, "tt", "l");
	as_buf_printf(
		&b,
		") THEN 'before' ELSE 'delete' END FROM main.%s AS l "
		"WHERE NOT EXISTS (SELECT 1 FROM temp._atomsync_target AS tt WHERE ",
		r->live_q);
	as_sql_key_match(&b, t, "tt", "l");
	/* Without 'before' rows: only live rows whose key is not restored. */
	as_buf_printf(&b, " AND (tt.\"_atomsync_run\" IS NULL%s))",
		      before ? "" : " OR 1");
	ret = buf_exec(s, &b, err);
	as_buf_free(&b);
	as_buf_free(&cols);
	return ret;
}

/* The outbox events of the rows the rollback changes, in its transaction. */
static int rollback_outbox(sq_store *s, as_run_ctx *rc, as_error *err)
{
	if (!as_outbox_plan_any(rc->outbox))
		return 0;
	return as_sq_outbox_write(s, rc, "temp._atomsync_changed", err);
}

/* The live table := temp._atomsync_target: changed rows upserted, rows
 * not in the target deleted, each step exactly as counted. */
static int rollback_apply(sq_store *s, as_run_ctx *rc, const as_counts *c,
			  as_error *err)
{
	const as_table *t = rc->table;
	sq_run *r = rc->priv;
	as_buf b = AS_BUF_INIT;
	int64_t changes = 0;
	int ret = 0;

	if (c->inserted + c->updated > 0) {
		as_buf_printf(&b, "INSERT INTO main.%s(", r->live_q);
		for (size_t i = 0; i < t->ncols; i++) {
			as_buf_add_ident(&b, t->cols[i].name);
			as_buf_adds(&b, ", ");
		}
		as_buf_adds(&b,
			    "\"_atomsync_run\", \"_atomsync_hash\", "
			    "\"_atomsync_line\") SELECT * FROM "
			    "temp._atomsync_target WHERE \"_atomsync_run\" IS "
			    "NOT NULL ON CONFLICT(");
		as_sql_key_list(&b, t, NULL);
		as_buf_adds(&b, ") DO UPDATE SET ");
		for (size_t i = t->nkey; i < t->ncols; i++) {
			as_buf_add_ident(&b, t->cols[i].name);
			as_buf_adds(&b, " = excluded.");
			as_buf_add_ident(&b, t->cols[i].name);
			as_buf_adds(&b, ", ");
		}
		as_buf_adds(&b,
			    "\"_atomsync_run\" = excluded.\"_atomsync_run\", "
			    "\"_atomsync_hash\" = excluded.\"_atomsync_hash\", "
			    "\"_atomsync_line\" = excluded.\"_atomsync_line\"");
		if ((ret = buf_exec_int(s, &b, 0, &changes, err)))
			goto done;
		if (changes != c->inserted + c->updated) {
			ret = as_error_set(err, AS_ESTORE,
					   "rollback wrote %lld rows, "
					   "expected %lld; nothing changed",
					   (long long)changes,
					   (long long)c->inserted + c->updated);
			goto done;
		}
	}
	if (c->deleted > 0) {
		as_buf_printf(
			&b,
			"DELETE FROM main.%s WHERE NOT EXISTS (SELECT 1 FROM "
			"temp._atomsync_target AS tt WHERE ",
			r->live_q);
		as_sql_key_match(&b, t, "tt", r->live_q);
		as_buf_adds(&b, ")");
		if ((ret = buf_exec_int(s, &b, 0, &changes, err)))
			goto done;
		if (changes != c->deleted) {
			ret = as_error_set(err, AS_ESTORE,
					   "rollback deleted %lld rows, "
					   "expected %lld; nothing changed",
					   (long long)changes,
					   (long long)c->deleted);
			goto done;
		}
	}
	as_crash_point("rollback.applied");
done:
	as_buf_free(&b);
	return ret;
}

/*
 * The dataset's state after the rollback: its published run is the
 * rollback (later staging begins from it), the staging of an interrupted
 * run is dropped (its base is gone), and an incremental cursor is the
 * restored rows' maximum (invariant 8: the cursor goes with the data).
 */
static int rollback_state(sq_store *s, as_run_ctx *rc, as_error *err)
{
	const as_table *t = rc->table;
	sq_run *r = rc->priv;
	as_buf b = AS_BUF_INIT;
	sqlite3_stmt *q = NULL;
	char *stage = NULL;
	int ret = 0;

	if (as_sq_prepare(
		    s,
		    "SELECT stage_table FROM atomsync_state WHERE dataset = ?1",
		    &q, err))
		return err->code;
	sqlite3_bind_text(q, 1, t->dataset, -1, SQLITE_TRANSIENT);
	if (sqlite3_step(q) == SQLITE_ROW)
		stage = as_strdup((const char *)sqlite3_column_text(q, 0));
	sqlite3_finalize(q);
	q = NULL;
	if (stage && (ret = as_sq_drop_stage(s, stage, err)))
		goto done;
	as_buf_adds(
		&b,
		"UPDATE atomsync_state SET published_run = ?2, stage_table = NULL, "
		"stage_run = NULL, stage_last_run = NULL, stage_base = NULL, "
		"stage_fingerprint = NULL, stage_key = NULL, checkpoint = NULL, "
		"stage_seen = 0, stage_rejected = 0");
	if (t->cursor >= 0) {
		as_buf_adds(&b, ", cursor = (SELECT max(");
		as_buf_add_ident(&b, t->cols[t->cursor].name);
		as_buf_printf(&b, ") FROM main.%s)", r->live_q);
	} else {
		/* A Singer bookmark (the STATE of the newest publish) would
		 * be ahead of the restored rows: dropped, so the next run
		 * extracts from the start (invariant 8). */
		as_buf_adds(&b, ", cursor = NULL");
	}
	as_buf_adds(&b, " WHERE dataset = ?1");
	if ((ret = as_sq_prepare(s, as_buf_cstr(&b), &q, err)))
		goto done;
	sqlite3_bind_text(q, 1, t->dataset, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(q, 2, rc->run_id);
	if (sqlite3_step(q) != SQLITE_DONE)
		ret = as_sq_fail(s, err, "saving state");
	else if (sqlite3_changes(s->db) != 1)
		ret = as_error_set(err, AS_EUSAGE,
				   "dataset %s has never been "
				   "published; nothing to roll back",
				   t->dataset);
done:
	sqlite3_finalize(q);
	free(stage);
	as_buf_free(&b);
	return ret;
}

/* The rollback's own run record, put on record (active) in its transaction
 * and completed there: a rollback that does not commit leaves none. */
static int run_open(sq_store *s, as_run_ctx *rc, as_error *err)
{
	const as_table *t = rc->table;
	sqlite3_stmt *q = NULL;
	char now[40];

	as_iso8601(as_now(), now, sizeof(now));
	/* Runs left active by dead workers: this worker holds the lease. */
	if (as_sq_prepare(
		    s,
		    "UPDATE atomsync_runs SET status = 'failed', "
		    "finished_at = ?2, error = 'interrupted: the worker "
		    "stopped before finishing (killed, crashed or lost its "
		    "connection); nothing was published' "
		    "WHERE dataset = ?1 AND status IN ('active', 'publishing')",
		    &q, err))
		return err->code;
	sqlite3_bind_text(q, 1, t->dataset, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(q, 2, now, -1, SQLITE_TRANSIENT);
	if (sqlite3_step(q) != SQLITE_DONE)
		goto fail;
	sqlite3_finalize(q);
	if (as_sq_prepare(
		    s,
		    "INSERT INTO atomsync_runs(dataset, kind, mode, status, "
		    "started_at, lease_token, owner) VALUES(?1, ?2, ?3, "
		    "'publishing', ?4, ?5, ?6)",
		    &q, err))
		return err->code;
	sqlite3_bind_text(q, 1, t->dataset, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(q, 2, rc->kind ? rc->kind : "rollback", -1,
			  SQLITE_TRANSIENT);
	sqlite3_bind_text(q, 3, as_mode_name(t->mode), -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 4, now, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(q, 5, rc->token);
	sqlite3_bind_text(q, 6, rc->owner, -1, SQLITE_TRANSIENT);
	if (sqlite3_step(q) != SQLITE_DONE)
		goto fail;
	sqlite3_finalize(q);
	rc->run_id = sqlite3_last_insert_rowid(s->db);
	return 0;
fail:
	sqlite3_finalize(q);
	return as_sq_fail(s, err, "recording run");
}

static int run_close(sq_store *s, as_run_ctx *rc, const as_counts *c,
		     int64_t to_run, as_error *err)
{
	sqlite3_stmt *q = NULL;
	char now[40], note[96];
	int ret = 0;

	snprintf(note, sizeof(note),
		 "restored the table to its state after run %lld",
		 (long long)to_run);
	if (as_sq_prepare(
		    s,
		    "UPDATE atomsync_runs SET status = 'completed', "
		    "finished_at = ?2, seen = ?3, inserted = ?4, updated = ?5, "
		    "unchanged = ?6, deleted = ?7, error = ?8 WHERE run_id = ?1",
		    &q, err))
		return err->code;
	sqlite3_bind_int64(q, 1, rc->run_id);
	sqlite3_bind_text(q, 2, as_iso8601(as_now(), now, sizeof(now)), -1,
			  SQLITE_TRANSIENT);
	sqlite3_bind_int64(q, 3, c->seen);
	sqlite3_bind_int64(q, 4, c->inserted);
	sqlite3_bind_int64(q, 5, c->updated);
	sqlite3_bind_int64(q, 6, c->unchanged);
	sqlite3_bind_int64(q, 7, c->deleted);
	sqlite3_bind_text(q, 8, note, -1, SQLITE_TRANSIENT);
	if (sqlite3_step(q) != SQLITE_DONE)
		ret = as_sq_fail(s, err, "recording run");
	sqlite3_finalize(q);
	return ret;
}

/*
 * `atomsync rollback DATASET --to-run N`: one fenced transaction that
 * checks the history can restore run N, records the rollback as a run,
 * rewrites exactly the rows that differ from N's state (their history and
 * outbox events with them), and makes it the dataset's published run.
 */
int as_sq_history_rollback(as_store *st, as_run_ctx *rc,
			   const as_publish_opts *po, int64_t to_run,
			   as_counts *c, as_error *err)
{
	sq_store *s = (sq_store *)st;
	as_table *t = rc->table;
	sq_run *r = calloc(1, sizeof(*r));
	int ret, exists;
	as_hist h;

	memset(c, 0, sizeof(*c));
	memset(&h, 0, sizeof(h));
	if (!r || !(r->live_q = as_quote_ident(t->table))) {
		free(r);
		return as_error_set(err, AS_ENOMEM, "out of memory");
	}
	rc->priv = r;
	if ((ret = as_hist_build(&h, t, po, err)))
		goto out;
	as_sq_exec(s, "PRAGMA synchronous=FULL", NULL);
	if ((ret = as_sq_exec(s, "BEGIN IMMEDIATE", err)))
		goto out;
	if ((ret = as_sq_fence(s, NULL, as_table_lease(t), rc->token,
			       rc->lease_ttl_ms, err)) ||
	    (ret = check_target(s, rc, &h, to_run, err)) ||
	    (ret = t->infer ? hist_evolve(s, &h, t, err)
			    : hist_check(s, &h, t, err)))
		goto fail;
	if ((ret = as_sq_table_exists(s, t->table, &exists, err)) ||
	    (exists && (ret = as_sq_check_table(s, t, t->table, err))))
		goto fail;
	for (size_t i = 0; i < t->ncols; i++)
		if (t->cols[i].type == AS_TYPE_AUTO)
			t->cols[i].type = AS_TYPE_TEXT;
	if (!exists) {
		char *sql = as_sq_create_sql(t, t->table);

		ret = as_sq_exec(s, sql, err);
		free(sql);
	}
	if (ret || (ret = run_open(s, rc, err)) ||
	    (ret = create_target(s, t, err)) ||
	    (ret = fill_target(s, rc, &h, to_run, err)) ||
	    (ret = rollback_counts(s, rc, c, err)) ||
	    (ret = rollback_changed(s, rc, err)) ||
	    (ret = history_begin(s, rc, po, c, r->live_q, err)) ||
	    (ret = rollback_apply(s, rc, c, err)) ||
	    (ret = history_end(s, rc, po, r->live_q, err)) ||
	    (ret = rollback_outbox(s, rc, err)) ||
	    (ret = rollback_state(s, rc, err)) ||
	    (ret = run_close(s, rc, c, to_run, err)) ||
	    (ret = as_sq_exec(s,
			      "DROP TABLE temp._atomsync_target; "
			      "DROP TABLE IF EXISTS temp._atomsync_changed",
			      err)))
		goto fail;
	as_crash_point("rollback.before_commit");
	if ((ret = as_sq_exec(s, "COMMIT", err)))
		goto fail;
	as_crash_point("rollback.committed");
	goto out;
fail:
	as_sq_rollback(s);
	rc->run_id = 0;
out:
	as_sq_exec(s, "PRAGMA synchronous=NORMAL", NULL);
	as_hist_free(&h);
	as_sq_run_free(st, rc);
	return ret;
}

/* ---- verify: a sample of live rows, and its run record ---- */

static as_row *add_row(as_batch *b, size_t ncols)
{
	as_row *row;

	if (b->nrows == b->caprows) {
		size_t cap = b->caprows ? b->caprows * 2 : 64;
		as_row *nr = realloc(b->rows, cap * sizeof(*nr));

		if (!nr)
			return NULL;
		b->rows = nr;
		b->caprows = cap;
	}
	row = &b->rows[b->nrows];
	memset(row, 0, sizeof(*row));
	row->v = as_arena_alloc(&b->arena, ncols * sizeof(as_val));
	return row->v ? row : NULL;
}

int as_sq_history_sample(as_store *st, const as_table *t, size_t n,
			 as_batch *out, as_error *err)
{
	sq_store *s = (sq_store *)st;
	as_buf b = AS_BUF_INIT;
	sqlite3_stmt *q = NULL;
	int rc;

	as_buf_adds(&b, "SELECT ");
	for (size_t i = 0; i < t->ncols; i++) {
		as_buf_adds(&b, i ? ", " : "");
		as_buf_add_ident(&b, t->cols[i].name);
	}
	as_buf_adds(&b, " FROM ");
	as_buf_add_ident(&b, t->table);
	as_buf_adds(&b, " ORDER BY random() LIMIT ?1");
	rc = as_sq_prepare(s, as_buf_cstr(&b), &q, err);
	as_buf_free(&b);
	if (rc)
		return rc;
	sqlite3_bind_int64(q, 1, (int64_t)n);
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		as_row *row = add_row(out, t->ncols);

		if (!row) {
			sqlite3_finalize(q);
			return as_error_set(err, AS_ENOMEM, "out of memory");
		}
		for (size_t i = 0; i < t->ncols; i++) {
			as_val *v = &row->v[i];

			switch (sqlite3_column_type(q, (int)i)) {
			case SQLITE_INTEGER:
				v->kind = AS_V_INT;
				v->u.i = sqlite3_column_int64(q, (int)i);
				break;
			case SQLITE_FLOAT:
				v->kind = AS_V_REAL;
				v->u.r = sqlite3_column_double(q, (int)i);
				break;
			case SQLITE_NULL: v->kind = AS_V_NULL; break;
			default:
				v->kind = AS_V_TEXT;
				v->len = (uint32_t)sqlite3_column_bytes(q,
									(int)i);
				v->u.s = as_arena_strndup(
					&out->arena,
					(const char *)sqlite3_column_text(
						q, (int)i),
					v->len);
				if (!v->u.s) {
					sqlite3_finalize(q);
					return as_error_set(err, AS_ENOMEM,
							    "out of memory");
				}
			}
		}
		out->nrows++;
	}
	sqlite3_finalize(q);
	return rc == SQLITE_DONE ? 0 : as_sq_fail(s, err, "sampling live rows");
}

int as_sq_history_record_run(as_store *st, const as_table *t, const char *kind,
			     const char *status, const as_counts *c,
			     const char *error, double started, int64_t *run_id,
			     as_error *err)
{
	sq_store *s = (sq_store *)st;
	sqlite3_stmt *q;
	char a[40], b[40];
	int rc;

	if (as_sq_prepare(
		    s,
		    "INSERT INTO atomsync_runs(dataset, kind, mode, status, "
		    "started_at, finished_at, seen, inserted, updated, unchanged, "
		    "deleted, rejected, error, owner) VALUES(?1, ?2, ?3, ?4, ?5, "
		    "?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, NULL)",
		    &q, err))
		return err->code;
	sqlite3_bind_text(q, 1, t->dataset, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(q, 2, kind, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(q, 3, as_mode_name(t->mode), -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 4, status, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(q, 5, as_iso8601(started, a, sizeof(a)), -1,
			  SQLITE_TRANSIENT);
	sqlite3_bind_text(q, 6, as_iso8601(as_now(), b, sizeof(b)), -1,
			  SQLITE_TRANSIENT);
	sqlite3_bind_int64(q, 7, c->seen);
	sqlite3_bind_int64(q, 8, c->inserted);
	sqlite3_bind_int64(q, 9, c->updated);
	sqlite3_bind_int64(q, 10, c->unchanged);
	sqlite3_bind_int64(q, 11, c->deleted);
	sqlite3_bind_int64(q, 12, c->rejected);
	as_sq_bind_text(q, 13, error);
	rc = sqlite3_step(q);
	sqlite3_finalize(q);
	if (rc != SQLITE_DONE)
		return as_sq_fail(s, err, "recording run");
	*run_id = sqlite3_last_insert_rowid(s->db);
	return 0;
}
