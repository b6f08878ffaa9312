/*
 * The public C API entry points that are thin wrappers over the layers
 * below (config, stores, run records).  The run lifecycle is in run.c.
 */
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"

int atomsync_config_load(atomsync_config **out, const char *path,
			 atomsync_error *err)
{
	return as_config_load(out, path, err);
}

int atomsync_config_parse(atomsync_config **out, const char *text, size_t len,
			  const char *name, atomsync_error *err)
{
	return as_config_parse(out, text, len, name, err);
}

void atomsync_config_free(atomsync_config *cfg)
{
	as_config_free(cfg);
}

const char *atomsync_config_store(const atomsync_config *cfg)
{
	return cfg->store;
}

size_t atomsync_config_ndatasets(const atomsync_config *cfg)
{
	return cfg->ndatasets;
}

const char *atomsync_config_dataset_name(const atomsync_config *cfg, size_t i)
{
	return i < cfg->ndatasets ? cfg->datasets[i].name : NULL;
}

void atomsync_config_redact(const atomsync_config *cfg, char *msg, size_t cap)
{
	as_config_redact(cfg, msg, cap);
}

int atomsync_store_open(atomsync_store **out, const char *url,
			atomsync_error *err)
{
	return as_store_open(out, url, err);
}

void atomsync_store_free(atomsync_store *store)
{
	as_store_close(store);
}

int atomsync_runs_list(atomsync_store *store, const char *dataset, size_t limit,
		       atomsync_run_info **out, size_t *n, atomsync_error *err)
{
	return store->ops->runs_list(store, dataset, limit, out, n, err);
}

void atomsync_run_info_clear(atomsync_run_info *info)
{
	if (!info)
		return;
	free(info->dataset);
	free(info->kind);
	free(info->mode);
	free(info->status);
	free(info->started_at);
	free(info->finished_at);
	free(info->error);
	free(info->columns_added);
	free(info->columns_widened);
	memset(info, 0, sizeof(*info));
}

void atomsync_run_info_free(atomsync_run_info *infos, size_t n)
{
	if (!infos)
		return;
	for (size_t i = 0; i < n; i++)
		atomsync_run_info_clear(&infos[i]);
	free(infos);
}

const char *atomsync_strerror(int code)
{
	switch (code) {
	case ATOMSYNC_OK: return "ok";
	case ATOMSYNC_EUSAGE: return "usage or configuration error";
	case ATOMSYNC_ESOURCE: return "the source failed";
	case ATOMSYNC_EINPUT: return "bad input";
	case ATOMSYNC_ESTORE: return "the store failed";
	case ATOMSYNC_EREFUSED: return "refused by a guard";
	case ATOMSYNC_ELEASE: return "another worker holds the lease";
	case ATOMSYNC_EFENCED: return "the lease was taken over";
	case ATOMSYNC_ENOMEM: return "out of memory or over a size cap";
	case ATOMSYNC_EINTR: return "interrupted";
	default: return "error";
	}
}
