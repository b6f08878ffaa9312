/*
 * atomsync runs DATASET [--limit N] [--json]: the run records, newest first.
 */
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "util/str.h"

int as_runs_json(atomsync_store *st, const char *dataset, size_t limit,
		 json_t **out, as_error *err)
{
	atomsync_run_info *v = NULL;
	size_t n = 0;
	int rc;

	*out = NULL;
	if ((rc = atomsync_runs_list(st, dataset, limit, &v, &n, err)))
		return rc;
	*out = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(*out, as_run_info_json(&v[i]));
	atomsync_run_info_free(v, n);
	return 0;
}

/* DATASET.TABLE: a stream's dataset of a configured dataset (a singer
 * source with stream: "*"). */
static int stream_dataset(as_cli *cli, const char *name)
{
	const char *dot = strrchr(name, '.');
	char *parent;
	int ok;

	if (!dot || dot == name || !dot[1])
		return 0;
	parent = strndup(name, (size_t)(dot - name));
	ok = parent && as_cli_has_dataset(cli, parent);
	free(parent);
	return ok;
}

/* runs' options into *limit and *json, and its one DATASET: -1 to go
 * on, or the exit code of a usage error. */
static int runs_options(as_cli *cli, int argc, char **argv, size_t *limit,
			int *json)
{
	static const struct option opts[] = {
		{"json", no_argument, NULL, 'j'},
		{"limit", required_argument, NULL, 'l'},
		{"config", required_argument, NULL, 'c'},
		{NULL, 0, NULL, 0}};
	int c;
	long long v64;

	optind = 1;
	while ((c = getopt_long(argc, argv, ":c:", opts, NULL)) != -1) {
		switch (c) {
		case 'j': *json = 1; break;
		case 'c': cli->config_path = optarg; break;
		case 'l':
			if (as_cli_count(cli, "--limit", optarg, 0, INT64_MAX,
					 &v64))
				return AS_EXIT_USAGE;
			*limit = (size_t)v64;
			break;
		default:
			/* AS_EXIT_USAGE, written out for the analyser */
			as_cli_bad_option(cli, argv, c);
			return AS_EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		as_cli_error(cli,
			     "runs: which dataset? (atomsync runs DATASET)");
		return AS_EXIT_USAGE;
	}
	if (optind + 1 < argc) {
		as_cli_error(cli,
			     "runs: one dataset, not '%s' too (atomsync runs "
			     "DATASET [--limit N] [--json])",
			     argv[optind + 1]);
		return AS_EXIT_USAGE;
	}
	return -1;
}

/* The runs as JSON (--json) or one line each, an error line under a
 * failed one; the exit code. */
static int print_runs(as_cli *cli, const char *dataset, size_t limit, int json)
{
	atomsync_run_info *v = NULL;
	size_t n = 0;
	atomsync_store *st = NULL;
	as_error err;

	if (json) {
		json_t *a = NULL;

		if (atomsync_store_open(&st, atomsync_config_store(cli->cfg),
					&err) ||
		    as_runs_json(st, dataset, limit, &a, &err)) {
			as_cli_error(cli, "%s", err.msg);
			atomsync_store_free(st);
			return as_exit_code(err.code);
		}
		as_print_json(a);
		atomsync_store_free(st);
		return AS_EXIT_OK;
	}
	if (atomsync_store_open(&st, atomsync_config_store(cli->cfg), &err) ||
	    atomsync_runs_list(st, dataset, limit, &v, &n, &err)) {
		as_cli_error(cli, "%s", err.msg);
		atomsync_store_free(st);
		return as_exit_code(err.code);
	}
	for (size_t i = 0; i < n; i++) {
		printf("%-24s ", v[i].started_at ? v[i].started_at : "");
		as_print_run_line(stdout, &v[i]);
		if (v[i].error)
			printf("%-24s   error: %s\n", "", v[i].error);
	}
	atomsync_run_info_free(v, n);
	atomsync_store_free(st);
	return AS_EXIT_OK;
}

int as_cmd_runs(as_cli *cli, int argc, char **argv)
{
	size_t limit = 20;
	as_error err;
	int json = 0, code;

	if ((code = runs_options(cli, argc, argv, &limit, &json)) >= 0)
		return code;
	if (as_cli_load_config(cli, &err)) {
		as_cli_error(cli, "%s", err.msg);
		return AS_EXIT_USAGE;
	}
	if (!as_cli_has_dataset(cli, argv[optind]) &&
	    !stream_dataset(cli, argv[optind])) {
		as_cli_error(cli, "%s: no dataset named '%s'", cli->config_path,
			     argv[optind]);
		return AS_EXIT_USAGE;
	}
	return print_runs(cli, argv[optind], limit, json);
}
