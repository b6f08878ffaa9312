/*
 * The PostgreSQL store's tables: an existing live or staging table checked
 * against the spec or adopted (schema inference), describe, and the staging
 * prepared (and discarded) for a run.
 */
#include <stdlib.h>

#include "store/postgres_int.h"
#include "store/schema.h"
#include "util/str.h"

/* ---- tables ---- */

/*
 * Compare an existing table with the dataset's columns; adopt the declared
 * types of columns still AS_TYPE_AUTO.  A mismatch is a configuration error:
 * atomsync never silently reshapes a table that holds data.
 */
/* What atomsync_columns knows of the table's inferred columns: the field
 * each was made from (store/schema.c, as_schema_known). */
static int known_cols(pg_store *s, as_table *t, as_error *err)
{
	PGresult *res;
	as_pg_params p;
	int exists;

	if (as_pg_table_exists(s, "atomsync_columns", &exists, err))
		return err->code;
	if (!exists)
		return 0;
	as_pg_params_init(&p);
	as_pg_param_text(&p, t->table);
	if (as_pg_exec(s,
		       "SELECT col, type, field FROM atomsync_columns WHERE "
		       "table_name = $1",
		       &p, &res, "reading columns", err))
		return err->code;
	for (int i = 0; i < PQntuples(res); i++)
		as_schema_known(t, PQgetvalue(res, i, 0), PQgetvalue(res, i, 1),
				PQgetisnull(res, i, 2) ? NULL
						       : PQgetvalue(res, i, 2));
	PQclear(res);
	return 0;
}

/* A table's columns, in order, with their declared types. */
static const char TABLE_COLUMNS_SQL[] =
	"SELECT a.attname, format_type(a.atttypid, a.atttypmod) "
	"FROM pg_attribute a WHERE a.attrelid = "
	"to_regclass(quote_ident($1)) AND a.attnum > 0 AND NOT "
	"a.attisdropped ORDER BY a.attnum";

static int adopt_table(void *conn, as_run_ctx *rc, const char *name, int stage,
		       size_t *nuser, as_error *err);
static int check_table(void *conn, as_table *t, const char *name,
		       as_error *err);
static int read_live(void *conn, as_run_ctx *rc, as_error *err);
static int create_stage(void *conn, as_run_ctx *rc, as_error *err);

/* The staging's COPY batch table (store/postgres_stage.c). */
static int stage_ready(void *conn, as_run_ctx *rc, as_error *err)
{
	return as_pg_batch_table(conn, rc, err);
}

/* The table steps store/sql_table.c shares. */
static const as_sql_cols pg_cols = {adopt_table, check_table, read_live,
				    create_stage, stage_ready};

/* An inferring spec: adopt the table's columns (store/schema.c).  A
 * staging records its types for stage_alter. */
static int adopt_table(void *conn, as_run_ctx *rc, const char *name, int stage,
		       size_t *nuser, as_error *err)
{
	pg_store *s = conn;
	as_table *t = rc->table;
	PGresult *res;
	as_pg_params p;
	const char **names = NULL;
	as_type *types = NULL;
	int n, bad = 0;

	as_pg_params_init(&p);
	as_pg_param_text(&p, name);
	if (as_pg_exec(s, TABLE_COLUMNS_SQL, &p, &res, "reading table schema",
		       err))
		return err->code;
	n = PQntuples(res);
	names = calloc((size_t)n + 1, sizeof(*names));
	types = calloc((size_t)n + 1, sizeof(*types));
	if (!names || !types) {
		bad = -2;
		goto done;
	}
	for (int i = 0; i < n; i++) {
		names[i] = PQgetvalue(res, i, 0);
		types[i] = as_pg_type_of(PQgetvalue(res, i, 1));
	}
	bad = as_schema_adopt(t, names, types, (size_t)n, stage, nuser);
	if (!bad && !stage && !t->legacy_json && known_cols(s, t, err)) {
		bad = -3;
		goto done;
	}
	if (!bad && stage && !t->legacy_json)
		bad = as_pg_stage_types(rc, types, names, (size_t)n) ? -2 : 0;
done:
	PQclear(res);
	free(names);
	free(types);
	if (bad == -3)
		return err->code;
	if (bad == -2)
		return as_error_set(err, AS_ENOMEM, "out of memory");
	if (bad)
		return as_error_set(err, AS_EUSAGE,
				    "table %s exists but does not have the "
				    "columns the dataset maps (the configured "
				    "ones first, in order, with their types); "
				    "rename the table or migrate it",
				    name);
	return 0;
}

static int check_table(void *conn, as_table *t, const char *name, as_error *err)
{
	as_sql q;

	as_pg_sql(conn, &q);
	return as_sql_check_table(&q, t, name, err);
}

/* The live table as this run finds it: checked against the spec (or
 * adopted), its column count, whether it has rows (and their hashes). */
static int read_live(void *conn, as_run_ctx *rc, as_error *err)
{
	pg_run *r = rc->priv;
	as_sql q;

	as_pg_sql(conn, &q);
	if (as_sql_read_live(&q, &pg_cols, rc, r->live_q, &r->live_exists,
			     &r->live_ncols, &r->live_has_rows, err))
		return err->code;
	/* Read by the first batch with a parsed row (an unchanged reload
	 * matched by the scan needs none). */
	if (r->live_exists)
		r->live_map_wanted = r->live_has_rows;
	return 0;
}

/* Record the staging `name` (alive, and in the dataset's state row); its
 * base. */
static int record_stage(pg_store *s, as_run_ctx *rc, const char *name,
			as_error *err)
{
	pg_run *r = rc->priv;
	as_table *t = rc->table;
	PGresult *res;
	as_pg_params p;
	char key[512];

	as_table_key_list(t, key, sizeof(key));
	as_pg_params_init(&p);
	as_pg_param_text(&p, name);
	if (as_pg_exec(s,
		       "INSERT INTO atomsync_stage_alive VALUES($1) "
		       "ON CONFLICT DO NOTHING",
		       &p, NULL, "recording staging", err))
		return err->code;
	as_pg_params_init(&p);
	as_pg_param_text(&p, t->dataset);
	as_pg_param_text(&p, name);
	as_pg_param_int(&p, rc->run_id);
	as_pg_param_text(&p, t->fingerprint);
	as_pg_param_text(&p, key);
	as_pg_param_text(&p, t->table);
	as_pg_param_text(&p, as_mode_name(t->mode));
	if (as_pg_exec(s,
		       "UPDATE atomsync_state SET stage_table = $2, "
		       "stage_run = $3, stage_last_run = $3, "
		       "stage_base = published_run, stage_fingerprint = $4, "
		       "stage_key = $5, checkpoint = NULL, stage_seen = 0, "
		       "stage_rejected = 0, table_name = $6, mode = $7 "
		       "WHERE dataset = $1 RETURNING stage_base",
		       &p, &res, "recording staging", err))
		return err->code;
	if (as_pg_state_row(res, t->dataset, err))
		return err->code;
	r->stage_base = as_pg_cell_int(res, 0, 0);
	PQclear(res);
	return 0;
}

/* A new staging for this run, in one fenced transaction. */
static int create_stage(void *conn, as_run_ctx *rc, as_error *err)
{
	pg_store *s = conn;
	pg_run *r = rc->priv;
	as_table *t = rc->table;
	char name[64];

	snprintf(name, sizeof(name), "_atomsync_stage_%lld",
		 (long long)rc->run_id);
	if (!t->nfront)
		t->nfront = t->ncols;
	if (as_pg_stage_types(rc, NULL, NULL, 0))
		return as_error_set(err, AS_ENOMEM, "out of memory");
	if (as_pg_begin(s, 0, err))
		return err->code;
	if (as_pg_fence(s, as_table_lease(t), rc->token, rc->lease_ttl_ms,
			err) ||
	    as_pg_create_table(s, t, name, 1, err) ||
	    record_stage(s, rc, name, err) ||
	    as_pg_commit(s, "recording staging", err)) {
		as_pg_rollback(s);
		return err->code;
	}
	r->stage = as_strdup(name);
	r->stage_q = as_quote_ident(name);
	return 0;
}

/* The staging prepared (as_sql_stage_prepare), once the pipeline is
 * drained. */
int as_pg_stage_prepare(as_store *st, as_run_ctx *rc, as_error *err)
{
	pg_store *s = (pg_store *)st;
	pg_run *r = rc->priv;

	as_pg_drain(s, NULL);
	return as_sql_stage_prepare(s, &pg_cols, rc, r->stage, err);
}

int as_pg_describe(as_store *st, as_run_ctx *rc, as_error *err)
{
	pg_store *s = (pg_store *)st;
	pg_run *r = rc->priv;
	as_sql q;

	as_pg_drain(s, NULL);
	as_pg_sql(s, &q);
	return as_sql_describe(&q, &pg_cols, rc, r ? r->stage : NULL, err);
}

int as_pg_stage_discard(as_store *st, as_run_ctx *rc, as_error *err)
{
	pg_store *s = (pg_store *)st;
	pg_run *r = rc->priv;
	as_sql q;

	as_pg_drain(s, NULL);
	as_pg_sql(s, &q);
	return as_sql_stage_discard(&q, rc, r->stage, err);
}
