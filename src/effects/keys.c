/*
 * A dataset's outbox settings as a run's plan: its `invalidate:` templates
 * resolved against the run's table, its webhook and notify; and the check a
 * run makes before it stages anything (the one place each of these rules
 * is checked).  The event format is model/outbox.c; the stores write the
 * events.
 */
#include <stdlib.h>
#include <string.h>

#include "effects/outbox.h"
#include "effects/redis.h"
#include "util/str.h"

static int resolve(const as_dataset_cfg *ds, size_t i, as_tpl *tpl,
		   const as_table *t, as_error *err)
{
	for (size_t k = 0; k < tpl->nparts; k++) {
		size_t c;

		if (!tpl->parts[k].column)
			continue;
		for (c = 0; c < t->ncols; c++)
			if (strcmp(t->cols[c].name, tpl->parts[k].text) == 0)
				break;
		if (c == t->ncols) {
			as_buf names = AS_BUF_INIT;

			for (c = 0; c < t->ncols; c++)
				as_buf_printf(&names, "%s%s", c ? ", " : "",
					      t->cols[c].name);
			as_error_set(err, AS_EUSAGE,
				     "dataset %s: invalidate '%s': no "
				     "column '%s' (columns: %s)",
				     ds->name, ds->invalidate[i],
				     tpl->parts[k].text, as_buf_cstr(&names));
			as_buf_free(&names);
			return AS_EUSAGE;
		}
		tpl->parts[k].index = c;
	}
	return 0;
}

int as_tpls_load(const as_dataset_cfg *ds, const as_table *t, as_tpl **out,
		 size_t *n, as_error *err)
{
	as_tpl *v = calloc(ds->ninvalidate ? ds->ninvalidate : 1, sizeof(*v));
	size_t i;
	int rc = 0;

	*out = NULL;
	*n = 0;
	if (!v)
		return as_error_set(err, AS_ENOMEM, "out of memory");
	for (i = 0; i < ds->ninvalidate && !rc; i++) {
		if ((rc = as_tpl_parse(&v[i], ds->invalidate[i], err)))
			as_error_prefix(err, "dataset %s", ds->name);
		else
			rc = resolve(ds, i, &v[i], t, err);
	}
	if (rc) {
		as_tpls_free(v, i);
		return rc;
	}
	*out = v;
	*n = i;
	return 0;
}

int as_outbox_check(const as_dataset_cfg *ds, const as_table *t,
		    const char *store_name, const char *cache_url,
		    as_error *err)
{
	if (ds->notify && !as_streq(store_name, "postgres"))
		return as_error_set(
			err, AS_EUSAGE,
			"dataset %s: notify needs a "
			"PostgreSQL store (NOTIFY is sent in the publish "
			"transaction); this store is %s",
			ds->name, store_name);
	if (ds->ninvalidate) {
		as_redis_url u;

		if (!cache_url)
			return as_error_set(err, AS_EUSAGE,
					    "dataset %s: invalidate "
					    "needs a top-level cache",
					    ds->name);
		if (as_redis_url_parse(&u, cache_url, err))
			return err->code;
		as_redis_url_free(&u);
	}
	if (ds->ninvalidate && t && t->nkey) {
		as_tpl *v;
		size_t n;

		if (as_tpls_load(ds, t, &v, &n, err))
			return err->code;
		as_tpls_free(v, n);
	} else {
		for (size_t i = 0; i < ds->ninvalidate; i++) {
			as_tpl tpl;

			if (as_tpl_parse(&tpl, ds->invalidate[i], err))
				return as_error_prefix(err, "dataset %s",
						       ds->name);
			as_tpl_free(&tpl);
		}
	}
	return 0;
}

int as_outbox_plan_make(const as_dataset_cfg *ds, const as_table *t,
			as_outbox_plan *out, as_error *err)
{
	int rc;

	memset(out, 0, sizeof(*out));
	if (!ds || !(ds->ninvalidate || ds->webhook || ds->notify))
		return 0;
	if (ds->ninvalidate &&
	    (rc = as_tpls_load(ds, t, &out->tpls, &out->ntpls, err)))
		return rc;
	for (size_t i = 0; i < out->ntpls; i++)
		for (size_t k = 0; k < out->tpls[i].nparts; k++)
			out->before |= out->tpls[i].parts[k].column &&
				       out->tpls[i].parts[k].index >= t->nkey;
	out->webhook = ds->webhook != NULL;
	out->max_keys = AS_OUTBOX_MAX_KEYS;
	out->max_payload = AS_OUTBOX_MAX_PAYLOAD;
	if (ds->notify && !(out->notify = as_strdup(ds->notify))) {
		as_outbox_plan_free(out);
		return as_error_set(err, AS_ENOMEM, "out of memory");
	}
	return 0;
}
