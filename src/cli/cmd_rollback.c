/*
 * atomsync rollback DATASET --to-run N [--json]: restore the dataset's table
 * to its content after run N, in one transaction recorded as a run.  Exit 2
 * when the history cannot restore run N (nothing changed), 4 when another
 * worker holds the dataset.
 */
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

int as_cmd_rollback(as_cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{"to-run", required_argument, NULL, 't'},
		{"json", no_argument, NULL, 'j'},
		{"config", required_argument, NULL, 'c'},
		{NULL, 0, NULL, 0}};
	atomsync_run_info info;
	atomsync_store *st = NULL;
	long long to_run = 0;
	as_error err;
	int c, json = 0, rc;

	optind = 1;
	while ((c = getopt_long(argc, argv, ":c:", opts, NULL)) != -1) {
		switch (c) {
		case 't':
			if (to_run) {
				as_cli_error(cli,
					     "rollback: --to-run given twice");
				return AS_EXIT_USAGE;
			}
			if (as_cli_count(cli, "--to-run", optarg, 1, INT64_MAX,
					 &to_run))
				return AS_EXIT_USAGE;
			break;
		case 'j': json = 1; break;
		case 'c': cli->config_path = optarg; break;
		default: return as_cli_bad_option(cli, argv, c);
		}
	}
	if (optind + 1 < argc) {
		as_cli_error(cli,
			     "rollback: one dataset, not '%s' too (atomsync "
			     "rollback DATASET --to-run N)",
			     argv[optind + 1]);
		return AS_EXIT_USAGE;
	}
	if (optind != argc - 1 || !to_run) {
		as_cli_error(
			cli,
			"rollback: usage: atomsync rollback DATASET --to-run N");
		return AS_EXIT_USAGE;
	}
	if (as_cli_load_config(cli, &err)) {
		as_cli_error(cli, "%s", err.msg);
		return AS_EXIT_USAGE;
	}
	if (!as_cli_has_dataset(cli, argv[optind])) {
		as_cli_error(cli, "%s: no dataset named '%s'", cli->config_path,
			     argv[optind]);
		return AS_EXIT_USAGE;
	}
	if (atomsync_store_open(&st, atomsync_config_store(cli->cfg), &err)) {
		as_cli_error(cli, "%s", err.msg);
		return as_exit_code(err.code);
	}
	as_error_clear(&err);
	rc = atomsync_rollback(st, cli->cfg, argv[optind], to_run, &info, &err);
	/* Most messages name the dataset already. */
	if (rc && strncmp(err.msg, "dataset ", 8) == 0)
		as_cli_error(cli, "%s", err.msg);
	else if (rc)
		as_cli_error(cli, "%s: %s", argv[optind], err.msg);
	if (info.run_id && json)
		as_print_json(as_run_info_json(&info));
	else if (!rc && !cli->quiet) {
		as_print_run_line(stdout, &info);
		printf("%s: %s\n", argv[optind],
		       info.error ? info.error : "rolled back");
	}
	atomsync_run_info_clear(&info);
	atomsync_store_free(st);
	return as_exit_code(rc);
}
