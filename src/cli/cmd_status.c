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

static json_t *dataset_json(const atomsync_dataset_status *s)
{
	json_t *o = json_object();
	char buf[40];

	json_object_set_new(o, "dataset", json_string(s->dataset));
	json_object_set_new(o, "table", json_string(s->table));
	json_object_set_new(o, "mode", json_string(s->mode));
	json_object_set_new(o, "rows",
			    s->rows >= 0 ? json_integer(s->rows) : json_null());
	json_object_set_new(o, "published_run",
			    s->published_run ? json_integer(s->published_run)
					     : json_null());
	json_object_set_new(o, "cursor",
			    s->cursor ? json_string(s->cursor) : json_null());
	json_object_set_new(o, "resumable", json_boolean(s->resumable));
	if (s->lease_owner)
		json_object_set_new(o, "lease",
				    json_pack("{s:s, s:s}", "owner",
					      s->lease_owner, "expires_at",
					      as_iso8601(s->lease_expires, buf,
							 sizeof(buf))));
	else
		json_object_set_new(o, "lease", json_null());
	json_object_set_new(o, "last_run",
			    s->last_run.run_id ? as_run_info_json(&s->last_run)
					       : json_null());
	json_object_set_new(o, "last_verify",
			    s->last_verify.run_id
				    ? as_run_info_json(&s->last_verify)
				    : json_null());
	return o;
}

static void dataset_text(const atomsync_dataset_status *s)
{
	const atomsync_run_info *last =
		s->last_run.run_id ? &s->last_run : NULL;
	const atomsync_run_info *verify =
		s->last_verify.run_id ? &s->last_verify : NULL;
	char a[32];

	printf("%-16s table %-16s %-11s %12s rows", s->dataset, s->table,
	       s->mode,
	       s->rows >= 0 ? as_fmt_count(a, sizeof(a), s->rows) : "-");
	if (last)
		printf("  last %s %lld %s %s",
		       as_streq(last->kind, "rollback") ? "rollback" : "run",
		       (long long)last->run_id, last->status,
		       last->finished_at ? last->finished_at
					 : last->started_at);
	else
		printf("  never run");
	if (s->lease_owner)
		printf("  [running: %s]", s->lease_owner);
	else if (s->resumable)
		printf("  [resumable]");
	putchar('\n');
	if (last && last->error && !as_streq(last->kind, "rollback"))
		printf("%-16s error: %s\n", "", last->error);
	if (verify)
		printf("%-16s verify %lld %s: %s\n", "",
		       (long long)verify->run_id, verify->status,
		       verify->error ? verify->error : "");
}

int as_status_json(const atomsync_config *cfg, atomsync_store *st,
		   const char *only, json_t **out, as_error *err)
{
	atomsync_dataset_status *v = NULL;
	size_t n = 0;
	int rc = atomsync_status(st, cfg, only, &v, &n, err);

	*out = NULL;
	if (rc)
		return rc;
	*out = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(*out, dataset_json(&v[i]));
	atomsync_dataset_status_free(v, n);
	return 0;
}

int as_cmd_status(as_cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{"json", no_argument, NULL, 'j'},
		{"config", required_argument, NULL, 'c'},
		{NULL, 0, NULL, 0}};
	atomsync_store *st = NULL;
	atomsync_dataset_status *v = NULL;
	size_t n = 0;
	json_t *out = NULL;
	const char *only = NULL;
	as_error err;
	int c, json = 0, rc;

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
	if (only && !as_cli_has_dataset(cli, only)) {
		as_cli_error(cli, "%s: no dataset named '%s'", cli->config_path,
			     only);
		return AS_EXIT_USAGE;
	}
	if (atomsync_store_open(&st, atomsync_config_store(cli->cfg), &err)) {
		as_cli_error(cli, "%s", err.msg);
		return as_exit_code(err.code);
	}
	if (json)
		rc = as_status_json(cli->cfg, st, only, &out, &err);
	else
		rc = atomsync_status(st, cli->cfg, only, &v, &n, &err);
	for (size_t i = 0; !rc && i < n; i++)
		dataset_text(&v[i]);
	atomsync_dataset_status_free(v, n);
	if (rc)
		as_cli_error(cli, "%s", err.msg);
	if (out)
		as_print_json(out);
	atomsync_store_free(st);
	return rc ? as_exit_code(err.code) : AS_EXIT_OK;
}
