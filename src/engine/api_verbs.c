/*
 * The public API of the verbs (include/atomsync.h): sync, status,
 * rollback, verify, the outbox, and configs built in memory.  Each is the
 * engine function the command line used to call directly, behind the
 * public types.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "effects/outbox.h"
#include "engine/engine.h"
#include "engine/history.h"
#include "engine/sync.h"
#include "util/str.h"

/* ---- configs built in memory ---- */

int atomsync_config_new(atomsync_config **out, const char *store_url,
			atomsync_error *err)
{
	as_config *cfg;

	*out = NULL;
	if (!store_url || !*store_url)
		return as_error_set(err, AS_EUSAGE, "config: no store URL");
	cfg = calloc(1, sizeof(*cfg));
	if (!cfg || !(cfg->path = as_strdup("config")) ||
	    !(cfg->store = as_strdup(store_url))) {
		as_config_free(cfg);
		return as_error_set(err, AS_ENOMEM, "out of memory");
	}
	*out = cfg;
	return 0;
}

static int spec_mode(const char *s, as_mode *m)
{
	static const char *const names[] = {"full", "incremental", "scoped",
					    "append"};

	if (!s) {
		*m = AS_MODE_FULL;
		return 0;
	}
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (!strcmp(s, names[i])) {
			*m = (as_mode)i;
			return 0;
		}
	return -1;
}

/* A column list of the spec (key, scope, cursor) under the config file's
 * rules: plain names, not reserved, not 'data' (without columns it holds
 * the whole record), none twice (names ignore case). */
static int check_cols(const atomsync_dataset_spec *sp, const char *field,
		      const char *list, as_error *err)
{
	size_t n = 0;
	char **v = as_split(list, ',', &n);
	int rc = 0;

	if (!v)
		return as_error_set(err, AS_ENOMEM, "out of memory");
	for (size_t i = 0; i < n && !rc; i++) {
		const char *why = as_cfg_name_problem(v[i], 0);

		if (!*v[i])
			why = "is empty";
		else if (!why && sp->schema && !strcmp(sp->schema, "json") &&
			 !strcasecmp(v[i], AS_DATA_COLUMN))
			why = "is the column of the whole record (each record "
			      "is kept as JSON in 'data'); use another column";
		if (why)
			rc = as_error_set(
				err, AS_EUSAGE,
				"dataset %s: %s %s: column name '%s' %s",
				sp->name, field, list, v[i], why);
		for (size_t j = 0; j < i && !rc; j++)
			if (!strcasecmp(v[i], v[j]))
				rc = as_error_set(
					err, AS_EUSAGE,
					"dataset %s: %s %s lists '%s' "
					"twice%s",
					sp->name, field, list, v[i],
					strcmp(v[i], v[j])
						? " (names ignore case)"
						: "");
	}
	as_strv_free(v, n);
	return rc;
}

/* The dataset name (and table) under the config file's rules. */
static int check_names(const atomsync_config *cfg,
		       const atomsync_dataset_spec *sp, as_error *err)
{
	const char *table = sp->table ? sp->table : sp->name;
	const char *why;

	if (!sp->name)
		return as_error_set(err, AS_EUSAGE, "dataset: no name");
	if (sp->table && (why = as_cfg_name_problem(sp->name, 0)))
		return as_error_set(err, AS_EUSAGE, "dataset name '%s' %s",
				    sp->name, why);
	/* Without a table the name is the table's. */
	if ((why = as_cfg_name_problem(table, 1)))
		return as_error_set(err, AS_EUSAGE, "table name '%s' %s", table,
				    why);
	if (as_config_dataset(cfg, sp->name))
		return as_error_set(err, AS_EUSAGE,
				    "dataset '%s' is already in the config",
				    sp->name);
	return 0;
}

static int enum_index(const char *v, const char *const *names, int n)
{
	for (int i = 0; i < n; i++)
		if (strcmp(v, names[i]) == 0)
			return i;
	return -1;
}

/* The checks of a dataset spec, each naming the field. */
static int spec_check(const atomsync_config *cfg,
		      const atomsync_dataset_spec *sp, as_mode *mode,
		      as_error *err)
{
	int singer = sp->format && !strcmp(sp->format, "singer");
	int rc;

	if ((rc = check_names(cfg, sp, err)))
		return rc;
	if (spec_mode(sp->mode, mode))
		return as_error_set(err, AS_EUSAGE,
				    "dataset %s: mode '%s': expected full, "
				    "incremental, scoped or append",
				    sp->name, sp->mode);
	if (sp->format && !singer && strcmp(sp->format, "jsonl"))
		return as_error_set(err, AS_EUSAGE,
				    "dataset %s: format '%s': expected jsonl "
				    "or singer",
				    sp->name, sp->format);
	if (sp->stream && !singer)
		return as_error_set(err, AS_EUSAGE,
				    "dataset %s: a stream applies to format "
				    "singer only",
				    sp->name);
	if ((!sp->key || !*sp->key) && !singer)
		return as_error_set(err, AS_EUSAGE,
				    "dataset %s: a key (COL[,COL...]) is "
				    "required",
				    sp->name);
	if (*mode == AS_MODE_SCOPED && (!sp->scope || !*sp->scope))
		return as_error_set(err, AS_EUSAGE,
				    "dataset %s: mode scoped needs a scope "
				    "(COL[,COL...])",
				    sp->name);
	if (*mode != AS_MODE_SCOPED && sp->scope)
		return as_error_set(err, AS_EUSAGE,
				    "dataset %s: a scope applies to mode "
				    "scoped only",
				    sp->name);
	if (sp->schema && enum_index(sp->schema, as_schema_names, 2) < 0)
		return as_error_set(err, AS_EUSAGE,
				    "dataset %s: schema '%s': expected infer "
				    "or json",
				    sp->name, sp->schema);
	if (sp->schema_contract &&
	    enum_index(sp->schema_contract, as_contract_names, 4) < 0)
		return as_error_set(
			err, AS_EUSAGE,
			"dataset %s: schema contract '%s': expected "
			"evolve, freeze, discard_value or "
			"discard_row",
			sp->name, sp->schema_contract);
	if (sp->batch_size < 0 || sp->max_rejects < -1)
		return as_error_set(err, AS_EUSAGE,
				    "dataset %s: batch_size and max_rejects "
				    "cannot be negative",
				    sp->name);
	if (sp->key && *sp->key && (rc = check_cols(sp, "key", sp->key, err)))
		return rc;
	if (sp->scope && (rc = check_cols(sp, "scope", sp->scope, err)))
		return rc;
	return sp->cursor ? check_cols(sp, "cursor", sp->cursor, err) : 0;
}

static int spec_fill(as_dataset_cfg *ds, const atomsync_dataset_spec *sp,
		     as_mode mode)
{
	int ok = 1;

	as_dataset_cfg_defaults(ds);
	ds->mode = mode;
	ok &= !!(ds->name = as_strdup(sp->name));
	ok &= !!(ds->table = as_strdup(sp->table ? sp->table : sp->name));
	if (sp->key && *sp->key)
		ok &= !!(ds->key = as_split(sp->key, ',', &ds->nkey));
	if (sp->scope)
		ok &= !!(ds->scope = as_split(sp->scope, ',', &ds->nscope));
	if (sp->cursor)
		ok &= !!(ds->cursor = as_strdup(sp->cursor));
	free(ds->reject_file);
	ok &= !!(ds->reject_file = as_sprintf("%s.rejects.jsonl", sp->name));
	if (sp->format && !strcmp(sp->format, "singer"))
		ds->source.format = AS_FORMAT_SINGER;
	if (sp->stream)
		ok &= !!(ds->source.stream = as_strdup(sp->stream));
	if (sp->file && strcmp(sp->file, "-")) {
		ds->source.kind = AS_SOURCE_FILE;
		ok &= !!(ds->source.path = as_strdup(sp->file));
	} else {
		ds->source.kind = AS_SOURCE_STDIN;
	}
	if (sp->batch_size > 0)
		ds->batch_size = sp->batch_size;
	if (sp->schema)
		ds->schema =
			(as_schema)enum_index(sp->schema, as_schema_names, 2);
	if (sp->schema_contract)
		ds->contract = (as_contract)enum_index(sp->schema_contract,
						       as_contract_names, 4);
	if (sp->max_rejects >= 0)
		ds->guard.max_rejects = sp->max_rejects;
	return ok ? 0 : AS_ENOMEM;
}

int atomsync_config_add_dataset(atomsync_config *cfg,
				const atomsync_dataset_spec *sp,
				atomsync_error *err)
{
	as_dataset_cfg *v;
	as_mode mode = AS_MODE_FULL;
	int rc;

	if ((rc = spec_check(cfg, sp, &mode, err)))
		return rc;
	v = realloc(cfg->datasets, (cfg->ndatasets + 1) * sizeof(*v));
	if (!v)
		return as_error_set(err, AS_ENOMEM, "out of memory");
	cfg->datasets = v;
	memset(&v[cfg->ndatasets], 0, sizeof(*v));
	/* Counted before it is filled, so a partial one is freed with cfg. */
	cfg->ndatasets++;
	if (spec_fill(&v[cfg->ndatasets - 1], sp, mode))
		return as_error_set(err, AS_ENOMEM, "out of memory");
	return 0;
}

/* ---- status ---- */

static char *take(char **p)
{
	char *s = *p;

	*p = NULL;
	return s;
}

static void status_move(atomsync_dataset_status *o, as_dataset_status *s)
{
	o->published_run = s->published_run;
	o->cursor = take(&s->cursor);
	o->resumable = s->resumable;
	o->lease_owner = take(&s->lease_owner);
	o->lease_expires = s->lease_expires;
}

static const as_dataset_status *status_of(as_dataset_status *v, size_t n,
					  const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (as_streq(v[i].dataset, name))
			return &v[i];
	return NULL;
}

/* The newest sync/rollback and the newest verify among the last runs. */
static int last_runs(as_store *st, atomsync_dataset_status *o, as_error *err)
{
	atomsync_run_info *runs = NULL;
	size_t n = 0;
	int rc = st->ops->runs_list(st, o->dataset, 50, &runs, &n, err);

	for (size_t k = 0; !rc && k < n; k++) {
		atomsync_run_info *dst = as_streq(runs[k].kind, "verify")
						 ? &o->last_verify
						 : &o->last_run;

		if (!dst->run_id) {
			*dst = runs[k];
			memset(&runs[k], 0, sizeof(runs[k]));
		}
	}
	atomsync_run_info_free(runs, n);
	return rc;
}

static int status_one(as_store *st, const as_dataset_cfg *ds,
		      as_dataset_status *sv, size_t sn,
		      atomsync_dataset_status *o, as_error *err)
{
	as_dataset_status *s = (as_dataset_status *)status_of(sv, sn, ds->name);

	if (!(o->dataset = as_strdup(ds->name)) ||
	    !(o->table = as_strdup(ds->table ? ds->table : ds->name)) ||
	    !(o->mode = as_strdup(as_mode_name(ds->mode))))
		return as_error_set(err, AS_ENOMEM, "out of memory");
	if (s)
		status_move(o, s);
	if (st->ops->table_rows(st, o->table, &o->rows, err))
		return err->code;
	return last_runs(st, o, err);
}

int atomsync_status(atomsync_store *st, const atomsync_config *cfg,
		    const char *dataset, atomsync_dataset_status **out,
		    size_t *n, atomsync_error *err)
{
	as_dataset_status *sv = NULL;
	atomsync_dataset_status *v;
	size_t sn = 0, k = 0;
	int rc;

	*out = NULL;
	*n = 0;
	if (dataset && !as_config_dataset(cfg, dataset))
		return as_error_set(err, AS_EUSAGE, "%s: no dataset named '%s'",
				    cfg->path, dataset);
	v = calloc(cfg->ndatasets + 1, sizeof(*v));
	if (!v)
		return as_error_set(err, AS_ENOMEM, "out of memory");
	rc = st->ops->status(st, &sv, &sn, err);
	for (size_t i = 0; !rc && i < cfg->ndatasets; i++) {
		const as_dataset_cfg *ds = &cfg->datasets[i];

		if (dataset && strcmp(dataset, ds->name))
			continue;
		rc = status_one(st, ds, sv, sn, &v[k++], err);
	}
	as_dataset_status_free(sv, sn);
	if (rc) {
		atomsync_dataset_status_free(v, k);
		return rc;
	}
	*out = v;
	*n = k;
	return 0;
}

void atomsync_dataset_status_free(atomsync_dataset_status *v, size_t n)
{
	if (!v)
		return;
	for (size_t i = 0; i < n; i++) {
		free(v[i].dataset);
		free(v[i].table);
		free(v[i].mode);
		free(v[i].cursor);
		free(v[i].lease_owner);
		atomsync_run_info_clear(&v[i].last_run);
		atomsync_run_info_clear(&v[i].last_verify);
	}
	free(v);
}

/* ---- runs, rollback, verify ---- */

int atomsync_sync(atomsync_store *st, const atomsync_config *cfg,
		  const char *dataset, const atomsync_run_options *opt,
		  atomsync_progress_fn fn, void *ud, atomsync_run_info *info,
		  atomsync_error *err)
{
	atomsync_run_options none;

	if (!opt) {
		memset(&none, 0, sizeof(none));
		opt = &none;
	}
	return as_sync_dataset(st, cfg, dataset, opt, fn, ud, info, err);
}

int atomsync_rollback(atomsync_store *st, const atomsync_config *cfg,
		      const char *dataset, int64_t to_run,
		      atomsync_run_info *info, atomsync_error *err)
{
	return as_rollback_dataset(st, cfg, dataset, to_run, info, err);
}

static int verify_copy(atomsync_verify_result *o, const as_verify_result *r)
{
	o->run_id = r->run_id;
	o->live_rows = r->live_rows;
	o->count_checked = r->count_checked;
	o->count_ok = r->count_ok;
	o->source_total = r->source_total;
	memcpy(o->count_note, r->count_note, sizeof(o->count_note));
	o->sample_checked = r->sample_checked;
	o->sampled = r->sampled;
	o->matched = r->matched;
	o->differing = r->differing;
	o->missing = r->missing;
	o->accuracy = r->accuracy;
	memcpy(o->sample_note, r->sample_note, sizeof(o->sample_note));
	o->threshold = r->threshold;
	o->passed = r->passed;
	memcpy(o->summary, r->summary, sizeof(o->summary));
	o->mismatches = r->mismatches ? json_dumps(r->mismatches, JSON_COMPACT)
				      : as_strdup("[]");
	return o->mismatches ? 0 : AS_ENOMEM;
}

int atomsync_verify(atomsync_store *st, const atomsync_config *cfg,
		    const char *dataset, size_t sample,
		    atomsync_verify_result **out, atomsync_error *err)
{
	as_verify_result r;
	atomsync_verify_result *o;
	int rc;

	*out = NULL;
	memset(&r, 0, sizeof(r));
	rc = as_verify_dataset(st, cfg, dataset, sample, &r, err);
	if (!rc) {
		o = calloc(1, sizeof(*o));
		if (!o || verify_copy(o, &r)) {
			atomsync_verify_result_free(o);
			rc = as_error_set(err, AS_ENOMEM, "out of memory");
		} else {
			*out = o;
		}
	}
	as_verify_clear(&r);
	return rc;
}

void atomsync_verify_result_free(atomsync_verify_result *r)
{
	if (!r)
		return;
	free(r->mismatches);
	free(r);
}

/* ---- the outbox ---- */

int atomsync_outbox_list(atomsync_store *st, const char *dataset,
			 int64_t after_id, size_t limit, unsigned flags,
			 atomsync_outbox_event **out, size_t *n,
			 atomsync_error *err)
{
	*out = NULL;
	*n = 0;
	return st->ops->outbox_list(st, dataset, after_id, limit, flags, out, n,
				    err);
}

void atomsync_outbox_events_free(atomsync_outbox_event *v, size_t n)
{
	as_outbox_events_free(v, n);
}

int atomsync_outbox_drain(atomsync_store *st, const atomsync_config *cfg,
			  const char *dataset, atomsync_drain_stats *out,
			  atomsync_error *err)
{
	atomsync_drain_stats none;

	return as_outbox_drain(st, cfg, dataset, out ? out : &none, err);
}
