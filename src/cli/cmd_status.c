/*
 * atomsync status [DATASET] [--json]: per dataset its table, rows, last
 * run, lease holder and whether a checkpoint waits to be resumed.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "util/str.h"
#include "util/time.h"

static const as_dataset_status *find(const as_dataset_status *v, size_t n,
				     const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(v[i].dataset, name) == 0)
			return &v[i];
	return NULL;
}

static json_t *dataset_json(const as_dataset_cfg *ds,
			    const as_dataset_status *s, int64_t rows,
			    const atomsync_run_info *last,
			    const atomsync_run_info *verify)
{
	json_t *o = json_object();
	char buf[40];

	json_object_set_new(o, "dataset", json_string(ds->name));
	json_object_set_new(o, "table",
			    json_string(ds->table ? ds->table : ds->name));
	json_object_set_new(o, "mode", json_string(as_mode_name(ds->mode)));
	json_object_set_new(o, "rows",
			    rows >= 0 ? json_integer(rows) : json_null());
	json_object_set_new(o, "published_run",
			    s && s->published_run
				    ? json_integer(s->published_run)
				    : json_null());
	json_object_set_new(o, "cursor",
			    s && s->cursor ? json_string(s->cursor)
					   : json_null());
	json_object_set_new(o, "resumable", json_boolean(s && s->resumable));
	if (s && s->lease_owner)
		json_object_set_new(o, "lease",
				    json_pack("{s:s, s:s}", "owner",
					      s->lease_owner, "expires_at",
					      as_iso8601(s->lease_expires, buf,
							 sizeof(buf))));
	else
		json_object_set_new(o, "lease", json_null());
	json_object_set_new(o, "last_run",
			    last ? as_run_info_json(last) : json_null());
	json_object_set_new(o, "last_verify",
			    verify ? as_run_info_json(verify) : json_null());
	return o;
}

static void dataset_text(const as_dataset_cfg *ds, const as_dataset_status *s,
			 int64_t rows, const atomsync_run_info *last,
			 const atomsync_run_info *verify)
{
	char a[32];

	printf("%-16s table %-16s %-11s %12s rows", ds->name,
	       ds->table ? ds->table : ds->name, as_mode_name(ds->mode),
	       rows >= 0 ? as_fmt_count(a, sizeof(a), rows) : "-");
	if (last)
		printf("  last %s %lld %s %s",
		       as_streq(last->kind, "rollback") ? "rollback" : "run",
		       (long long)last->run_id, last->status,
		       last->finished_at ? last->finished_at
					 : last->started_at);
	else
		printf("  never run");
	if (s && s->lease_owner)
		printf("  [running: %s]", s->lease_owner);
	else if (s && s->resumable)
		printf("  [resumable]");
	putchar('\n');
	if (last && last->error && !as_streq(last->kind, "rollback"))
		printf("%-16s error: %s\n", "", last->error);
	if (verify)
		printf("%-16s verify %lld %s: %s\n", "",
		       (long long)verify->run_id, verify->status,
		       verify->error ? verify->error : "");
}

int as_cmd_status(as_cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{"json", no_argument, NULL, 'j'},
		{"config", required_argument, NULL, 'c'},
		{NULL, 0, NULL, 0}};
	as_dataset_status *sv = NULL;
	size_t sn = 0;
	as_store *st = NULL;
	json_t *out = NULL;
	const char *only = NULL;
	as_error err;
	int c, json = 0, code = AS_EXIT_OK;

	optind = 1;
	while ((c = getopt_long(argc, argv, ":c:", opts, NULL)) != -1) {
		if (c == 'j')
			json = 1;
		else if (c == 'c')
			cli->config_path = optarg;
		else
			return as_cli_bad_option(cli, argv, c);
	}
	if (optind + 1 < argc) {
		as_cli_error(cli,
			     "status: at most one dataset, not '%s' too "
			     "(atomsync status [DATASET] [--json])",
			     argv[optind + 1]);
		return AS_EXIT_USAGE;
	}
	if (optind < argc)
		only = argv[optind];
	if (as_cli_load_config(cli, &err)) {
		as_cli_error(cli, "%s", err.msg);
		return AS_EXIT_USAGE;
	}
	if (only && !as_config_dataset(cli->cfg, only)) {
		as_cli_error(cli, "%s: no dataset named '%s'", cli->config_path,
			     only);
		return AS_EXIT_USAGE;
	}
	if (as_store_open(&st, cli->cfg->store, &err) ||
	    st->ops->status(st, &sv, &sn, &err)) {
		as_cli_error(cli, "%s", err.msg);
		as_store_close(st);
		return as_exit_code(err.code);
	}
	out = json ? json_array() : NULL;
	for (size_t i = 0; i < cli->cfg->ndatasets; i++) {
		const as_dataset_cfg *ds = &cli->cfg->datasets[i];
		const as_dataset_status *s = find(sv, sn, ds->name);
		atomsync_run_info *last = NULL;
		size_t nl = 0;
		int64_t rows = -1;

		if (only && strcmp(only, ds->name) != 0)
			continue;
		/* The last sync or rollback is the table's state; a verify run
		 * is reported on its own. */
		if (st->ops->table_rows(st, ds->table ? ds->table : ds->name,
					&rows, &err) ||
		    st->ops->runs_list(st, ds->name, 50, &last, &nl, &err)) {
			as_cli_error(cli, "%s", err.msg);
			code = as_exit_code(err.code);
			break;
		}
		const atomsync_run_info *lr = NULL, *lv = NULL;

		for (size_t k = 0; k < nl; k++) {
			if (as_streq(last[k].kind, "verify"))
				lv = lv ? lv : &last[k];
			else
				lr = lr ? lr : &last[k];
		}
		if (out)
			json_array_append_new(
				out, dataset_json(ds, s, rows, lr, lv));
		else
			dataset_text(ds, s, rows, lr, lv);
		atomsync_run_info_free(last, nl);
	}
	if (out)
		as_print_json(out);
	as_dataset_status_free(sv, sn);
	as_store_close(st);
	return code;
}
