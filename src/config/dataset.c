/*
 * One dataset of atomsync.yml: its fields, columns, the names of its key,
 * scope, cursor and snapshot columns, history, guard and effects, and the
 * table it writes (valid, not reserved, not taken by another dataset).
 */
#include "config/config_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define RECORD_MAX (1024LL * 1024 * 1024)

#define D(...) FLD(as_dataset_cfg, __VA_ARGS__)
static const field dataset_fields[] = {
	D("table", T_STR, 0, table, 0, 0),
	D("table_prefix", T_STR, 0, table_prefix, 0, 0),
	OTHER("streams"),
	D("share_table", T_BOOL, 0, share_table, 0, 0),
	ENM(as_dataset_cfg, "mode", mode, as_mode_names),
	OTHER("key"),
	OTHER("columns"),
	OTHER("cursor"),
	ENM(as_dataset_cfg, "schema", schema, as_schema_names),
	D("infer", T_BOOL, 0, infer, 0, 0),
	D("flatten_depth", T_INT, 0, flatten_depth, 1, 8),
	ENM(as_dataset_cfg, "schema_contract", contract, as_contract_names),
	OTHER("scope"),
	ENM(as_dataset_cfg, "history", history, as_history_names),
	OTHER("snapshot_columns"),
	OTHER("history_keep"),
	D("verify_threshold", T_REAL, F_OPEN, verify_threshold, 0, 1),
	OTHER("guard"),
	D("reject_file", T_STR, 0, reject_file, 0, 0),
	OTHER("invalidate"),
	D("webhook", T_URL, F_SECRET, webhook, 0, 0),
	D("notify", T_IDENT, 0, notify, 0, 0),
	D("lease_ttl", T_DURATION, 0, lease_ttl_ms, 1000, 0),
	D("batch_size", T_INT, 0, batch_size, 1, INT64_MAX),
	D("max_record_size", T_SIZE, 0, max_record_bytes, 1, RECORD_MAX),
	D("schedule", T_SCHEDULE, 0, schedule, 0, 0),
	D("jitter", T_DURATION, 0, jitter_ms, 0, 0),
	D("timezone", T_TZ, 0, timezone, 0, 0),
	D("retry_after_failure", T_DURATION, 0, retry_after_failure_ms, 1000,
	  0),
	OTHER("source"),
};

static const field stream_fields[] = {
	FLD(as_stream_cfg, "table", T_STR, 0, table, 0, 0),
	ENM(as_stream_cfg, "mode", mode, as_mode_names),
	OTHER("key"),
};

static const field guard_fields[] = {
	FLD(as_guard_cfg, "max_delete_fraction", T_REAL, 0, max_delete_fraction,
	    0, 1),
	FLD(as_guard_cfg, "allow_empty", T_BOOL, 0, allow_empty, 0, 0),
	FLD(as_guard_cfg, "max_rejects", T_INT, 0, max_rejects, 0, INT64_MAX),
	FLD(as_guard_cfg, "min_deletes", T_INT, 0, min_deletes, 0, INT64_MAX),
};

static const field column_fields[] = {
	{"type", T_ENUM, F_REQUIRED, offsetof(as_column_cfg, type), 0, 0,
	 as_type_names, NELEM(as_type_names)},
	FLD(as_column_cfg, "path", T_PATH, 0, path, 0, 0),
};

struct colref {
	const dsctx *d;
	const char *role; /* "key", "scope", ... for messages */
};

const char *as_cfg_name_problem(const char *name, int table)
{
	if (!as_cfg_is_ident(name))
		return "is not a plain identifier (letters, digits and '_', not "
		       "starting with a digit, at most 63 characters)";
	if (!strncasecmp(name, "_atomsync", 9))
		return "is reserved: names starting with _atomsync belong to "
		       "atomsync";
	if (table && !strncasecmp(name, "atomsync_", 9))
		return "is reserved for atomsync's own tables";
	if (table && !strncasecmp(name, "sqlite_", 7))
		return "is reserved: names starting with sqlite_ belong to "
		       "SQLite";
	return NULL;
}

static int check_ident(cx *c, const ynode *n, const char *name,
		       const char *what)
{
	const char *why = as_cfg_name_problem(name, !strcmp(what, "table"));

	if (why)
		return as_cfg_fail(c, n, "%s name '%s' %s", what,
				   as_cfg_is_ident(name) ? name : SHOWN(name),
				   why);
	return 0;
}

/* A column named by key, scope, cursor or snapshot_columns. */
static int check_colref(const sect *s, const ynode *n, const char *name,
			const void *arg)
{
	const struct colref *r = arg;
	const as_dataset_cfg *ds = r->d->ds;
	int rc = check_ident(s->c, n, name, "column");

	if (!rc && !ds->columns && ds->schema == AS_SCHEMA_JSON &&
	    !strcasecmp(name, AS_DATA_COLUMN))
		return as_cfg_fail(
			s->c, n,
			"%s column '%s' %s: with 'schema: json', 'data' is "
			"the column of the whole record; declare 'columns' or "
			"use another name",
			r->role, name, r->d->where);
	for (size_t i = 0; !rc && i < ds->ncolumns; i++)
		/* columns holds ncolumns entries, each named. */
		/* NOLINTNEXTLINE(clang-analyzer-core.NullDereference) */
		if (!strcmp(ds->columns[i].name, name))
			return 0;
	if (!rc && ds->columns)
		rc = as_cfg_fail(
			s->c, n,
			"%s column '%s' %s is not declared in 'columns'",
			r->role, name, r->d->where);
	return rc;
}

static int parse_column(dsctx *d, const ynode *kn, const ynode *vn,
			as_column_cfg *col)
{
	const as_dataset_cfg *ds = d->ds;
	char where[WHERE_MAX], *text;
	int rc = check_ident(d->s.c, kn, kn->text, "column");
	sect s;

	for (size_t i = 0; !rc && ds->columns + i < col; i++)
		/* Mapping keys are scalars (yaml.c refuses others), so text is
		 * set. */
		/* NOLINTNEXTLINE(clang-analyzer-core.NonNullParamChecker) */
		if (!strcasecmp(ds->columns[i].name, kn->text))
			return as_cfg_fail(
				d->s.c, kn,
				"column '%s' %s clashes with column '%s' (names ignore case)",
				kn->text, d->where, ds->columns[i].name);
	if (rc)
		return rc;
	if (!(col->name = strdup(kn->text)))
		return as_cfg_oom(d->s.c);
	col->loc = as_cfg_loc(d->s.c, kn);
	snprintf(where, sizeof(where), "in column '%s' of dataset '%s'",
		 col->name, ds->name);
	s = (sect){d->s.c, vn, where, kn};
	if (vn->kind == Y_SCALAR) { /* short form: "name: text" */
		rc = as_cfg_expand(s.c, vn, false, &text, NULL);
		if (!rc)
			rc = as_cfg_field_store(&s, &column_fields[0], vn, text,
						col);
	} else if (vn->kind == Y_MAP) {
		rc = as_cfg_check_keys(&s, column_fields, NELEM(column_fields));
		if (!rc)
			rc = as_cfg_read_fields(&s, column_fields,
						NELEM(column_fields), col);
	} else {
		rc = as_cfg_fail(
			s.c, vn->kind == Y_NULL ? kn : vn,
			"column '%s' %s needs a type such as 'text' or {type: text}",
			col->name, d->where);
	}
	if (!rc && !col->path && !(col->path = strdup(col->name)))
		rc = as_cfg_oom(s.c);
	return rc;
}

static int parse_columns(dsctx *d)
{
	as_dataset_cfg *ds = d->ds;
	const ynode *v = as_cfg_lookup(&d->s, "columns", NULL);
	int rc = 0;

	if (!v)
		return 0;
	if (v->kind != Y_MAP)
		return as_cfg_bad_value(&d->s, v, "columns",
					"a mapping of column name to type",
					NULL);
	if (!as_cfg_map_len(v))
		return as_cfg_fail(d->s.c, v, "'columns' %s must not be empty",
				   d->where);
	ds->columns = calloc(as_cfg_map_len(v), sizeof(*ds->columns));
	if (!ds->columns)
		return as_cfg_oom(d->s.c);
	for (size_t i = 0; i < v->nkids && !rc; i += 2) {
		as_column_cfg *col = &ds->columns[ds->ncolumns++];

		rc = parse_column(d, v->kids[i], v->kids[i + 1], col);
	}
	return rc;
}

/* Column names ignore case (SQLite's do): a list naming one twice in two
 * spellings names one column twice. */
static int check_case_twice(dsctx *d, const char *key, char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < i; j++)
			if (!strcasecmp(v[i], v[j]))
				return as_cfg_fail(
					d->s.c, as_cfg_lookup(&d->s, key, NULL),
					"'%s' %s lists '%s' twice (as '%s'; "
					"names ignore case)",
					key, d->where, v[i], v[j]);
	return 0;
}

/* key, scope, cursor, snapshot_columns, and the rules of the mode. */
static int parse_names(dsctx *d)
{
	as_dataset_cfg *ds = d->ds;
	const ynode *k, *v, *mode = as_cfg_lookup(&d->s, "mode", NULL);
	int rc;

	rc = as_cfg_read_list(&d->s, "key", check_colref,
			      &(struct colref){d, "key"}, &ds->key, &ds->nkey);
	if (!rc)
		rc = as_cfg_read_list(&d->s, "scope", check_colref,
				      &(struct colref){d, "scope"}, &ds->scope,
				      &ds->nscope);
	if (!rc)
		rc = as_cfg_read_list(&d->s, "snapshot_columns", check_colref,
				      &(struct colref){d, "snapshot"},
				      &ds->snapshot_columns,
				      &ds->nsnapshot_columns);
	if (!rc)
		rc = as_cfg_read_scalar(&d->s, "cursor", "a column name", 0,
					&ds->cursor, &v);
	if (!rc && ds->cursor)
		rc = check_colref(&d->s, v, ds->cursor,
				  &(struct colref){d, "cursor"});
	if (!rc)
		rc = check_case_twice(d, "key", ds->key, ds->nkey);
	if (!rc)
		rc = check_case_twice(d, "scope", ds->scope, ds->nscope);
	if (rc)
		return rc;
	as_cfg_lookup(&d->s, "scope", &k);
	if (k && ds->mode != AS_MODE_SCOPED)
		return as_cfg_fail(d->s.c, k,
				   "'scope' %s is only valid with mode: scoped",
				   d->where);
	if (ds->mode == AS_MODE_SCOPED && !ds->nscope)
		return as_cfg_fail(d->s.c, mode,
				   "mode 'scoped' %s requires 'scope'",
				   d->where);
	as_cfg_lookup(&d->s, "share_table", &k);
	if (k && ds->share_table && ds->mode != AS_MODE_SCOPED)
		return as_cfg_fail(d->s.c, k,
				   "'share_table' %s is only valid with mode: "
				   "scoped (a dataset of another mode deletes "
				   "rows of every scope)",
				   d->where);
	return 0;
}

/* history_keep: a number of runs, or a duration. */
static int parse_keep(dsctx *d)
{
	const char *want =
		"a number of runs (e.g. 30) or a duration (e.g. 90d)";
	as_dataset_cfg *ds = d->ds;
	const ynode *v;
	char *text;
	int64_t n;
	int rc;

	rc = as_cfg_read_scalar(&d->s, "history_keep", want, 0, &text, &v);
	if (rc || !text)
		return rc;
	if (*text && strspn(text, "0123456789") == strlen(text)) {
		if (as_cfg_parse_i64(text, &ds->history_keep_runs))
			goto done;
	} else if ((n = as_parse_duration_ms(text)) >= 0) {
		ds->history_keep_ms = n;
		goto done;
	}
	rc = as_cfg_bad_value(&d->s, v, "history_keep", want, text);
done:
	free(text);
	return rc;
}

static int parse_effects(dsctx *d)
{
	as_dataset_cfg *ds = d->ds;
	char where[WHERE_MAX];
	const ynode *k;
	sect g;
	int rc;

	snprintf(where, sizeof(where), "in guard of dataset '%s'", ds->name);
	rc = as_cfg_read_section(&d->s, "guard", where, guard_fields,
				 NELEM(guard_fields), &ds->guard, &g);
	if (!rc)
		rc = as_cfg_read_list(&d->s, "invalidate", NULL, NULL,
				      &ds->invalidate, &ds->ninvalidate);
	if (!rc && as_cfg_lookup(&d->s, "invalidate", &k) &&
	    !d->s.c->cfg->cache)
		rc = as_cfg_fail(d->s.c, k,
				 "'invalidate' %s needs a top-level 'cache'",
				 d->where);
	return rc;
}

static int check_table(dsctx *d)
{
	const as_config *cfg = d->s.c->cfg;
	const as_dataset_cfg *ds = d->ds;
	const ynode *v = as_cfg_lookup(&d->s, "table", NULL);
	const ynode *at = v ? v : d->s.owner;
	int rc;

	if (!v && !as_cfg_is_ident(ds->name))
		return as_cfg_fail(
			d->s.c, at,
			"dataset name '%s' is not a valid table name; set 'table'",
			ds->name);
	rc = check_ident(d->s.c, at, ds->table, "table");
	if (rc)
		return rc;
	if (ds->history != AS_HISTORY_NONE &&
	    strlen(ds->table) + strlen("_history") > IDENT_MAX)
		return as_cfg_fail(
			d->s.c, at,
			"table name '%s' is too long for its history table (at most %d "
			"characters with '_history')",
			ds->table, IDENT_MAX);
	for (size_t i = 0; cfg->datasets + i < ds; i++)
		if (!strcasecmp(cfg->datasets[i].table, ds->table))
			return as_cfg_fail(
				d->s.c, at,
				"table '%s' of dataset '%s' is already used by dataset '%s'",
				ds->table, ds->name, cfg->datasets[i].name);
	return 0;
}

static int default_str(cx *c, char **dst, const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);

	if (*dst)
		return 0;
	if (!(*dst = malloc(la + lb + 1)))
		return as_cfg_oom(c);
	memcpy(*dst, a, la);
	memcpy(*dst + la, b, lb + 1);
	return 0;
}

static int check_stream_key(const sect *s, const ynode *n, const char *text,
			    const void *arg)
{
	(void)arg;
	return check_ident(s->c, n, text, "column");
}

/* streams: {NAME: {table, key, mode}}: one stream's own settings. */
static int parse_streams(dsctx *d)
{
	as_dataset_cfg *ds = d->ds;
	const ynode *k, *v = as_cfg_lookup(&d->s, "streams", &k);
	int rc = 0;

	if (!v)
		return 0;
	if (v->kind != Y_MAP)
		return as_cfg_bad_value(&d->s, v, "streams",
					"a mapping of stream name to its "
					"table, key and mode",
					NULL);
	ds->streams = calloc(as_cfg_map_len(v) + 1, sizeof(*ds->streams));
	if (!ds->streams)
		return as_cfg_oom(d->s.c);
	for (size_t i = 0; i < v->nkids && !rc; i += 2) {
		const ynode *kn = v->kids[i], *vn = v->kids[i + 1];
		as_stream_cfg *sc = &ds->streams[ds->nstreams++];
		char where[WHERE_MAX];
		sect ss;

		sc->mode = -1;
		if (!(sc->stream = strdup(kn->text)))
			return as_cfg_oom(d->s.c);
		snprintf(where, sizeof(where),
			 "in stream '%.60s' of dataset '%.60s'", kn->text,
			 ds->name);
		if (vn->kind != Y_MAP)
			return as_cfg_fail(d->s.c, vn->kind == Y_NULL ? kn : vn,
					   "stream '%s' %s must be a mapping "
					   "of table, key and mode",
					   kn->text, d->where);
		ss = (sect){d->s.c, vn, where, kn};
		rc = as_cfg_check_keys(&ss, stream_fields,
				       NELEM(stream_fields));
		if (!rc)
			rc = as_cfg_read_fields(&ss, stream_fields,
						NELEM(stream_fields), sc);
		if (!rc)
			rc = as_cfg_read_list(&ss, "key", check_stream_key,
					      NULL, &sc->key, &sc->nkey);
		if (!rc && sc->table)
			rc = check_ident(d->s.c,
					 as_cfg_lookup(&ss, "table", NULL),
					 sc->table, "table");
		if (!rc && sc->mode == AS_MODE_SCOPED)
			rc = as_cfg_fail(
				d->s.c, as_cfg_lookup(&ss, "mode", NULL),
				"mode 'scoped' %s needs scope columns; "
				"configure the stream as a dataset of "
				"its own",
				where);
	}
	return rc;
}

/* reject_file: NAME.rejects.jsonl unless set, relative to the config. */
static int default_reject_file(dsctx *d)
{
	int rc = default_str(d->s.c, &d->ds->reject_file, d->ds->name,
			     ".rejects.jsonl");

	return rc ? rc : as_cfg_resolve_path(d->s.c, &d->ds->reject_file);
}

/* A Singer source taking every stream: each stream gets its own table
 * (table_prefix + the stream's name, normalised) and its key from SCHEMA,
 * so nothing of one table may be configured here. */
static int finish_every_stream(dsctx *d)
{
	static const char *const one_table[] = {
		"table",	"key",	       "columns", "cursor",
		"scope",	"share_table", "history", "snapshot_columns",
		"history_keep", "invalidate"};
	as_dataset_cfg *ds = d->ds;
	const ynode *k;
	int rc;

	for (size_t i = 0; i < NELEM(one_table); i++)
		if (as_cfg_lookup(&d->s, one_table[i], &k))
			return as_cfg_fail(
				d->s.c, k,
				"'%s' %s applies to one table, but stream: "
				"\"*\" gives every stream its own table (use "
				"table_prefix, or one dataset per stream with "
				"stream: NAME)",
				one_table[i], d->where);
	if (ds->mode == AS_MODE_SCOPED) {
		const ynode *m = as_cfg_lookup(&d->s, "mode", NULL);

		return as_cfg_fail(
			d->s.c, m ? m : d->s.owner,
			"mode 'scoped' %s needs scope columns of one "
			"table; stream: \"*\" takes every stream",
			d->where);
	}
	if (ds->table_prefix) {
		const char *p = ds->table_prefix;
		size_t n = strlen(p);

		if (n > 40 || strspn(p, WORD_CHARS) != n ||
		    (n && p[0] >= '0' && p[0] <= '9')) {
			as_cfg_lookup(&d->s, "table_prefix", &k);
			return as_cfg_fail(
				d->s.c, k,
				"table_prefix '%s' %s: letters, "
				"digits and '_', not starting with a "
				"digit, at most 40 characters",
				SHOWN(p), d->where);
		}
	}
	rc = default_str(d->s.c, &ds->table, ds->name, "");
	return rc ? rc : default_reject_file(d);
}

static int finish_dataset(dsctx *d)
{
	as_dataset_cfg *ds = d->ds;
	const ynode *k;
	int rc;

	if (!ds->nkey && ds->source.format != AS_FORMAT_SINGER) {
		as_cfg_lookup(&d->s, "key", &k);
		return as_cfg_fail(
			d->s.c, k ? k : d->s.owner,
			"%s 'key' %s (only a singer source may leave it out)",
			k ? "no value for" : "missing required key", d->where);
	}
	/* A Singer tap's STATE is its bookmark: no cursor column needed. */
	if (ds->mode == AS_MODE_INCREMENTAL && !ds->cursor &&
	    ds->source.format != AS_FORMAT_SINGER) {
		const ynode *m = as_cfg_lookup(&d->s, "mode", NULL);

		return as_cfg_fail(d->s.c, m ? m : d->s.owner,
				   "mode 'incremental' %s requires 'cursor' "
				   "(only a singer source may leave it out)",
				   d->where);
	}
	if (as_every_stream(&ds->source))
		return finish_every_stream(d);
	if (ds->table_prefix || ds->streams) {
		const char *which =
			ds->table_prefix ? "table_prefix" : "streams";

		as_cfg_lookup(&d->s, which, &k);
		return as_cfg_fail(d->s.c, k,
				   "'%s' %s needs a singer source "
				   "with stream: \"*\" (every stream)",
				   which, d->where);
	}
	rc = default_str(d->s.c, &ds->table, ds->name, "");
	if (!rc)
		rc = check_table(d);
	return rc ? rc : default_reject_file(d);
}

int as_cfg_parse_dataset(cx *c, const ynode *kn, const ynode *vn,
			 as_dataset_cfg *ds)
{
	const size_t n = NELEM(dataset_fields);
	size_t len = strlen(kn->text);
	dsctx d;
	int rc;

	if (!len || len > 128 || strspn(kn->text, WORD_CHARS ".-") != len)
		return as_cfg_fail(
			c, kn,
			"dataset name '%s' may only hold letters, digits, '_', '.' and '-' (at "
			"most 128)",
			SHOWN(kn->text));
	if (!(ds->name = strdup(kn->text)))
		return as_cfg_oom(c);
	ds->loc = as_cfg_loc(c, kn);
	d.ds = ds;
	snprintf(d.where, sizeof(d.where), "in dataset '%s'", ds->name);
	d.s = (sect){c, vn, d.where, kn};
	if (vn->kind != Y_MAP)
		return as_cfg_fail(
			c, vn->kind == Y_NULL ? kn : vn,
			"dataset '%s' must be a mapping with at least 'key' and 'source'",
			ds->name);
	rc = as_cfg_check_keys(&d.s, dataset_fields, n);
	if (!rc)
		rc = parse_columns(&d);
	if (!rc)
		rc = as_cfg_read_fields(&d.s, dataset_fields, n, ds);
	if (!rc)
		rc = parse_names(&d);
	if (!rc)
		rc = parse_keep(&d);
	if (!rc)
		rc = parse_effects(&d);
	if (!rc)
		rc = as_cfg_parse_source(&d);
	if (!rc)
		rc = parse_streams(&d);
	return rc ? rc : finish_dataset(&d);
}
