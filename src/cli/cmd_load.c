/*
 * atomsync load STORE TABLE [FILE|-] --key COL[,COL...]: the ad-hoc form for
 * one file, no config file (like `sqlite-utils insert`).  It builds a
 * one-dataset config in memory, named after the table, and runs it with the
 * same engine and guarantees as `run`.
 */
#include <getopt.h>
#include <stdint.h>
#include <string.h>

#include "cli/cli.h"

int as_run_datasets(as_cli *cli, atomsync_store *st, const char **names,
		    size_t n, const atomsync_run_options *opt, int json);

/* One option of the loop below into sp or opt; 0, or an exit code. */
static int load_option(as_cli *cli, int c, atomsync_dataset_spec *sp,
		       atomsync_run_options *opt, int *json)
{
	long long v;

	switch (c) {
	case 'k': sp->key = optarg; break;
	case 'M': sp->mode = optarg; break;
	case 's': sp->scope = optarg; break;
	case 'u': sp->cursor = optarg; break;
	case 'f': sp->format = optarg; break;
	case 'S': sp->stream = optarg; break;
	case 'e': opt->allow_empty = 1; break;
	case 'd': opt->allow_deletes = 1; break;
	case 'r': opt->restart = 1; break;
	case 'x':
	case 'b':
		if (as_cli_count(cli,
				 c == 'x' ? "--max-rejects" : "--batch-size",
				 optarg, c == 'b', INT64_MAX, &v))
			return AS_EXIT_USAGE;
		if (c == 'x')
			sp->max_rejects = v;
		else
			sp->batch_size = v;
		break;
	case 'I': sp->schema = optarg; break;
	case 'C': sp->schema_contract = optarg; break;
	case 'j': *json = 1; break;
	case 'm': cli->metrics_file = optarg; break;
	default: return -1;
	}
	return 0;
}

int as_cmd_load(as_cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{"key", required_argument, NULL, 'k'},
		{"mode", required_argument, NULL, 'M'},
		{"scope", required_argument, NULL, 's'},
		{"cursor", required_argument, NULL, 'u'},
		{"format", required_argument, NULL, 'f'},
		{"stream", required_argument, NULL, 'S'},
		{"allow-empty", no_argument, NULL, 'e'},
		{"allow-deletes", no_argument, NULL, 'd'},
		{"restart", no_argument, NULL, 'r'},
		{"max-rejects", required_argument, NULL, 'x'},
		{"batch-size", required_argument, NULL, 'b'},
		{"schema", required_argument, NULL, 'I'},
		{"schema-contract", required_argument, NULL, 'C'},
		{"json", no_argument, NULL, 'j'},
		{"metrics-file", required_argument, NULL, 'm'},
		{NULL, 0, NULL, 0}};
	atomsync_dataset_spec sp = {.max_rejects = -1};
	atomsync_run_options opt;
	atomsync_store *st = NULL;
	atomsync_config *cfg = NULL;
	atomsync_error err;
	int c, rc, json = 0, code;

	memset(&opt, 0, sizeof(opt));
	optind = 1;
	while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1)
		if ((rc = load_option(cli, c, &sp, &opt, &json)))
			return rc > 0 ? rc : as_cli_bad_option(cli, argv, c);
	if (argc - optind < 2 || argc - optind > 3) {
		as_cli_error(cli,
			     "usage: atomsync load STORE TABLE [FILE|-] --key "
			     "COL[,COL...] [--mode MODE]");
		return AS_EXIT_USAGE;
	}
	/* A one-dataset config named after the table, checked before the
	 * store is opened: a bad name or key leaves nothing behind. */
	sp.name = argv[optind + 1];
	sp.file = argc - optind == 3 ? argv[optind + 2] : NULL;
	rc = atomsync_config_new(&cfg, argv[optind], &err);
	cli->cfg = cfg;
	if (!rc)
		rc = atomsync_config_add_dataset(cfg, &sp, &err);
	if (rc) {
		as_cli_error(cli, "load: %s", err.msg);
		return as_exit_code(rc);
	}
	if ((rc = atomsync_store_open(&st, argv[optind], &err))) {
		as_cli_error(cli, "%s", err.msg);
		return as_exit_code(rc);
	}
	code = as_run_datasets(cli, st, &sp.name, 1, &opt, json);
	atomsync_store_free(st);
	return code;
}
