/*
 * atomsync run [DATASET...]: sync the named datasets (all when none is
 * named), one after the other.  A dataset another worker holds is skipped
 * and reported; the exit code combines the results (exit.c).
 */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "util/proc.h"

int as_run_datasets(as_cli *cli, atomsync_store *st, const char **names,
		    size_t n, const atomsync_run_options *opt, int json);

int as_run_datasets(as_cli *cli, atomsync_store *st, const char **names,
		    size_t n, const atomsync_run_options *opt, int json)
{
	int *codes = calloc(n ? n : 1, sizeof(int));
	json_t *out = json ? json_array() : NULL;
	int code;

	for (size_t i = 0; i < n; i++) {
		atomsync_run_info info;
		as_error err;
		int rc;

		as_error_clear(&err);
		rc = atomsync_sync(st, cli->cfg, names[i], opt,
				   as_progress_print, cli, &info, &err);
		codes[i] = as_exit_code(rc);
		if (rc == AS_ELEASE)
			as_cli_error(cli, "%s: skipped: %s", names[i], err.msg);
		else if (rc)
			as_cli_error(cli, "%s: %s", names[i], err.msg);
		if (info.run_id) {
			if (out)
				json_array_append_new(out,
						      as_run_info_json(&info));
			else if (rc == 0 && !cli->quiet)
				as_print_run_line(stdout, &info);
		}
		atomsync_run_info_clear(&info);
		if (as_interrupted)
			break;
	}
	if (out)
		as_print_json(out);
	fflush(stdout);
	if (cli->metrics_file) {
		as_error err;

		if (as_metrics_write(cli, st, &err))
			as_cli_error(cli, "%s", err.msg);
	}
	code = as_exit_combine(codes, n);
	free(codes);
	return code;
}

int as_cmd_run(as_cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{"restart", no_argument, NULL, 'r'},
		{"allow-empty", no_argument, NULL, 'e'},
		{"allow-deletes", no_argument, NULL, 'd'},
		{"scope", required_argument, NULL, 's'},
		{"json", no_argument, NULL, 'j'},
		{"config", required_argument, NULL, 'c'},
		{"metrics-file", required_argument, NULL, 'm'},
		{NULL, 0, NULL, 0}};
	atomsync_run_options opt;
	const char **scopes = calloc((size_t)argc, sizeof(char *));
	const char **names = NULL;
	size_t n = 0;
	atomsync_store *st = NULL;
	as_error err;
	int c, json = 0, code;

	memset(&opt, 0, sizeof(opt));
	opt.scopes = scopes;
	optind = 1;
	while ((c = getopt_long(argc, argv, ":c:", opts, NULL)) != -1) {
		switch (c) {
		case 'r': opt.restart = 1; break;
		case 'e': opt.allow_empty = 1; break;
		case 'd': opt.allow_deletes = 1; break;
		case 's': scopes[opt.nscopes++] = optarg; break;
		case 'j': json = 1; break;
		case 'c': cli->config_path = optarg; break;
		case 'm': cli->metrics_file = optarg; break;
		default: free(scopes); return as_cli_bad_option(cli, argv, c);
		}
	}
	if (as_cli_load_config(cli, &err)) {
		as_cli_error(cli, "%s", err.msg);
		free(scopes);
		return AS_EXIT_USAGE;
	}
	if (optind < argc) {
		names = (const char **)(argv + optind);
		n = (size_t)(argc - optind);
		for (size_t i = 0; i < n; i++) {
			if (!as_cli_has_dataset(cli, names[i])) {
				as_cli_error(cli, "%s: no dataset named '%s'",
					     cli->config_path, names[i]);
				free(scopes);
				return AS_EXIT_USAGE;
			}
		}
	} else {
		names = calloc(atomsync_config_ndatasets(cli->cfg) + 1,
			       sizeof(char *));
		for (size_t i = 0; i < atomsync_config_ndatasets(cli->cfg); i++)
			names[n++] = atomsync_config_dataset_name(cli->cfg, i);
	}
	if (opt.nscopes && n != 1) {
		as_cli_error(cli, "--scope needs exactly one dataset");
		code = AS_EXIT_USAGE;
		goto done;
	}
	if (atomsync_store_open(&st, atomsync_config_store(cli->cfg), &err)) {
		as_cli_error(cli, "%s", err.msg);
		code = as_exit_code(err.code);
		goto done;
	}
	code = as_run_datasets(cli, st, names, n, &opt, json);
done:
	atomsync_store_free(st);
	if (optind >= argc)
		free(names);
	free(scopes);
	return code;
}
