/*
 * atomsync.yml as a whole: reading the file, the top level (store, cache,
 * datasets), paths relative to the config file, defaults, freeing, lookup
 * by name and redaction of secrets in messages.
 */
#include "config/config_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A relative file: path is relative to the config file's directory. */
int as_cfg_resolve_path(cx *c, char **path)
{
	const char *slash = strrchr(c->file, '/');
	size_t dir, len;
	char *p;

	if (**path == '/' || !slash)
		return 0;
	dir = (size_t)(slash - c->file);
	len = strlen(*path);
	if (!(p = malloc(dir + len + 2)))
		return as_cfg_oom(c);
	memcpy(p, c->file, dir);
	p[dir] = '/';
	memcpy(p + dir + 1, *path, len + 1);
	free(*path);
	*path = p;
	return 0;
}

static const field top_fields[] = {
	FLD(as_config, "store", T_STR, F_REQUIRED | F_SECRET, store, 0, 0),
	FLD(as_config, "cache", T_STR, F_SECRET, cache, 0, 0),
	FLD(as_config, "max_parallel", T_INT32, 0, max_parallel, 1, 256),
	FLD(as_config, "auth_token", T_STR, F_SECRET, auth_token, 0, 0),
	OTHER("datasets"),
};

/* A SQLite store's file, like every other path, is relative to the config
 * file's directory, so `-c dir/atomsync.yml` works from anywhere. */
static int resolve_store(cx *c, char **store)
{
	const char *scheme = strncmp(*store, "sqlite://", 9) == 0 ? "sqlite://"
			     : strncmp(*store, "sqlite:", 7) == 0 ? "sqlite:"
								  : NULL;
	char *path, *joined;
	size_t n;
	int rc;

	if (!scheme || !strchr(c->file, '/'))
		return 0;
	path = strdup(*store + strlen(scheme));
	if (!path)
		return as_cfg_oom(c);
	if ((rc = as_cfg_resolve_path(c, &path))) {
		free(path);
		return rc;
	}
	n = strlen(scheme) + strlen(path) + 1;
	joined = malloc(n);
	if (!joined) {
		free(path);
		return as_cfg_oom(c);
	}
	snprintf(joined, n, "%s%s", scheme, path);
	free(path);
	free(*store);
	*store = joined;
	return 0;
}

static int parse_top(cx *c, const ynode *root)
{
	as_config *cfg = c->cfg;
	sect s = {c, root, "at top level", NULL};
	const ynode *v;
	int rc;

	if (!root || root->kind == Y_NULL)
		return as_cfg_fail_at(
			c, 1, 1,
			"configuration is empty: it needs 'store' and 'datasets'");
	if (root->kind != Y_MAP)
		return as_cfg_fail(
			c, root,
			"the top level must be a mapping with 'store' and 'datasets'");
	rc = as_cfg_check_keys(&s, top_fields, NELEM(top_fields));
	if (!rc)
		rc = as_cfg_read_fields(&s, top_fields, NELEM(top_fields), cfg);
	if (!rc)
		rc = resolve_store(c, &cfg->store);
	if (rc)
		return rc;
	v = as_cfg_lookup(&s, "datasets", NULL);
	if (!v)
		return as_cfg_missing(&s, "datasets");
	if (v->kind != Y_MAP)
		return as_cfg_bad_value(&s, v, "datasets",
					"a mapping of dataset name to dataset",
					NULL);
	if (!as_cfg_map_len(v))
		return as_cfg_fail(c, v,
				   "'datasets' at top level must not be empty");
	if (!(cfg->datasets =
		      calloc(as_cfg_map_len(v), sizeof(*cfg->datasets))))
		return as_cfg_oom(c);
	for (size_t i = 0; i < v->nkids && !rc; i += 2) {
		as_dataset_cfg *ds = &cfg->datasets[cfg->ndatasets++];

		as_dataset_cfg_defaults(ds);
		rc = as_cfg_parse_dataset(c, v->kids[i], v->kids[i + 1], ds);
	}
	return rc;
}

static int by_length_desc(const void *a, const void *b)
{
	size_t la = strlen(*(char *const *)a), lb = strlen(*(char *const *)b);

	return la < lb ? 1 : la > lb ? -1 : 0;
}

int as_config_parse(as_config **out, const char *text, size_t len,
		    const char *name, as_error *err)
{
	ynode *root = NULL;
	as_config *cfg;
	cx c;
	int rc;

	*out = NULL;
	cfg = calloc(1, sizeof(*cfg));
	if (!cfg || !(cfg->path = strdup(name ? name : "<config>"))) {
		free(cfg);
		return as_error_set(err, AS_ENOMEM, "out of memory");
	}
	memset(&c, 0, sizeof(c));
	c.cfg = cfg;
	c.err = err;
	c.file = cfg->path;
	cfg->max_parallel = 2;
	if (len > CONFIG_MAX_BYTES)
		rc = as_cfg_fail_at(&c, 0, 0,
				    "configuration larger than %d bytes",
				    CONFIG_MAX_BYTES);
	else
		rc = as_cfg_build_tree(&c, text ? text : "", text ? len : 0,
				       &root);
	if (!rc)
		rc = parse_top(&c, root);
	as_cfg_tree_free(&c);
	if (rc) {
		as_config_free(cfg);
		return rc;
	}
	/* Longest first, so a secret inside another is not half-redacted. */
	if (cfg->nsecret_values > 1)
		qsort(cfg->secret_values, cfg->nsecret_values,
		      sizeof(*cfg->secret_values), by_length_desc);
	*out = cfg;
	return 0;
}

int as_config_load(as_config **out, const char *path, as_error *err)
{
	FILE *f = fopen(path, "rb");
	size_t len;
	char *buf;
	int rc;

	*out = NULL;
	if (!f)
		return as_error_errno(err, AS_EUSAGE, "%s", path);
	if (!(buf = malloc(CONFIG_MAX_BYTES + 1))) {
		fclose(f);
		return as_error_set(err, AS_ENOMEM, "%s: out of memory", path);
	}
	/* One byte over the cap tells a too-large file from a full one. */
	len = fread(buf, 1, CONFIG_MAX_BYTES + 1, f);
	if (ferror(f))
		rc = as_error_errno(err, AS_EUSAGE, "%s", path);
	else if (len > CONFIG_MAX_BYTES)
		rc = as_error_set(err, AS_EUSAGE,
				  "%s: configuration larger than %d bytes",
				  path, CONFIG_MAX_BYTES);
	else
		rc = as_config_parse(out, buf, len, path, err);
	fclose(f);
	free(buf);
	return rc;
}

static void free_kv(as_kv *kv, size_t n)
{
	for (size_t i = 0; kv && i < n; i++) {
		free(kv[i].key);
		free(kv[i].value);
	}
	free(kv);
}

static void http_clear(as_http_cfg *h)
{
	free(h->url);
	free_kv(h->params, h->nparams);
	free_kv(h->headers, h->nheaders);
	free(h->records);
	free(h->record_key_as);
	free(h->offset_param);
	free(h->limit_param);
	free(h->page_param);
	free(h->cursor_param);
	free(h->cursor_path);
	free(h->next_url_path);
	free(h->total_path);
	free(h->body);
	free(h->bearer);
	for (size_t i = 0; i < h->npartitions; i++) {
		for (size_t j = 0; j < h->partitions[i].nparams; j++) {
			free(h->partitions[i].params[j].key);
			free(h->partitions[i].params[j].value);
		}
		free(h->partitions[i].params);
	}
	free(h->partitions);
	free(h->user);
	free(h->password);
	free(h->token_url);
	free(h->client_id);
	free(h->client_secret);
	free(h->audience);
	as_cfg_free_list(h->scopes, h->nscopes);
	free(h->has_more_path);
	free(h->error_path);
	as_cfg_free_list(h->error_retry, h->nerror_retry);
	free(h->stop_path);
	free(h->cursor_from_record);
	free(h->item_url);
	free(h->ca_bundle);
	as_cfg_free_list(h->secrets, h->nsecrets);
}

/* Frees every owned field and leaves the dataset all zero. */
void as_dataset_cfg_clear(as_dataset_cfg *ds)
{
	if (!ds)
		return;
	free(ds->name);
	free(ds->table);
	as_cfg_free_list(ds->key, ds->nkey);
	for (size_t i = 0; ds->columns && i < ds->ncolumns; i++) {
		free(ds->columns[i].name);
		free(ds->columns[i].path);
	}
	free(ds->columns);
	free(ds->cursor);
	as_cfg_free_list(ds->scope, ds->nscope);
	as_cfg_free_list(ds->snapshot_columns, ds->nsnapshot_columns);
	free(ds->reject_file);
	as_cfg_free_list(ds->invalidate, ds->ninvalidate);
	free(ds->webhook);
	free(ds->notify);
	free(ds->schedule);
	free(ds->timezone);
	free(ds->source.path);
	free(ds->source.command);
	free(ds->source.stream);
	free(ds->table_prefix);
	for (size_t i = 0; i < ds->nstreams; i++) {
		free(ds->streams[i].stream);
		free(ds->streams[i].table);
		for (size_t k = 0; k < ds->streams[i].nkey; k++)
			free(ds->streams[i].key[k]);
		free(ds->streams[i].key);
	}
	free(ds->streams);
	http_clear(&ds->source.http);
	memset(ds, 0, sizeof(*ds));
}

/*
 * Overwrites *ds (it must not own anything).  Fields derived from the name
 * (table, reject_file) stay NULL: the parser fills them once the name is
 * known, and a caller building a dataset by hand sets them itself.
 */
void as_dataset_cfg_defaults(as_dataset_cfg *ds)
{
	as_http_cfg *h = &ds->source.http;

	memset(ds, 0, sizeof(*ds));
	ds->mode = AS_MODE_FULL;
	ds->history = AS_HISTORY_NONE;
	ds->verify_threshold = 0.99;
	ds->guard.max_delete_fraction = 0.5;
	ds->guard.allow_empty = 0;
	ds->guard.max_rejects = 0;
	ds->guard.min_deletes = 10;
	ds->lease_ttl_ms = 60000;
	ds->retry_after_failure_ms = 300000;
	ds->batch_size = 10000;
	ds->flatten_depth = 2;
	ds->max_record_bytes = 16LL * 1024 * 1024;
	ds->source.format = AS_FORMAT_JSONL;
	h->style = AS_PAGE_NONE;
	h->first_page = 1;
	h->concurrency = 1;
	h->rate_burst = 1;
	h->timeout_ms = 30000;
	h->retry_attempts = 5;
	h->retry_initial_ms = 500;
	h->retry_max_ms = 30000;
	h->breaker_failures = 10;
}

void as_config_free(as_config *cfg)
{
	if (!cfg)
		return;
	for (size_t i = 0; cfg->datasets && i < cfg->ndatasets; i++)
		as_dataset_cfg_clear(&cfg->datasets[i]);
	free(cfg->datasets);
	as_cfg_free_list(cfg->secret_values, cfg->nsecret_values);
	free(cfg->store);
	free(cfg->cache);
	free(cfg->auth_token);
	free(cfg->path);
	free(cfg);
}

const as_dataset_cfg *as_config_dataset(const as_config *cfg, const char *name)
{
	for (size_t i = 0; cfg && name && i < cfg->ndatasets; i++)
		if (!strcmp(cfg->datasets[i].name, name))
			return &cfg->datasets[i];
	return NULL;
}

void as_config_redact(const as_config *cfg, char *msg, size_t cap)
{
	size_t len;

	if (!cfg || !msg || !cap)
		return;
	len = strnlen(msg, cap);
	if (len == cap)
		msg[--len] = '\0';
	/* Secrets are at least 3 bytes, so "***" never grows the message. */
	for (size_t i = 0; i < cfg->nsecret_values; i++) {
		const char *sec = cfg->secret_values[i];
		size_t sl = strlen(sec);
		char *p = msg;

		while ((p = strstr(p, sec))) {
			memcpy(p, "***", 3);
			memmove(p + 3, p + sl,
				len - (size_t)(p - msg) - sl + 1);
			len -= sl - 3;
			p += 3;
		}
	}
}
