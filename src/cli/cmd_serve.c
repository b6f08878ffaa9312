/*
 * atomsync serve [--listen ADDR:PORT] [--once] [--log-format text|json]:
 * the scheduler daemon (src/serve/).  Runs every dataset with a schedule,
 * serves /metrics, /healthz, /api/... and /status, until SIGTERM.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

int as_cmd_serve(as_cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{"listen", required_argument, NULL, 'l'},
		{"once", no_argument, NULL, 'o'},
		{"log-format", required_argument, NULL, 'f'},
		{"config", required_argument, NULL, 'c'},
		{NULL, 0, NULL, 0}};
	const char *addr = "127.0.0.1:9464";
	int c, once = 0, log_json = 0;
	as_error err;

	optind = 1;
	while ((c = getopt_long(argc, argv, "c:", opts, NULL)) != -1) {
		switch (c) {
		case 'l': addr = optarg; break;
		case 'o': once = 1; break;
		case 'c': cli->config_path = optarg; break;
		case 'f':
			if (strcmp(optarg, "json") == 0)
				log_json = 1;
			else if (strcmp(optarg, "text") != 0) {
				as_cli_error(cli,
					     "--log-format %s: expected text "
					     "or json",
					     optarg);
				return AS_EXIT_USAGE;
			}
			break;
		default: return AS_EXIT_USAGE;
		}
	}
	if (optind < argc) {
		as_cli_error(cli, "serve: unexpected argument '%s'",
			     argv[optind]);
		return AS_EXIT_USAGE;
	}
	if (as_cli_load_config(cli, &err)) {
		as_cli_error(cli, "%s", err.msg);
		return AS_EXIT_USAGE;
	}
	return as_serve_run(cli, addr, once, log_json);
}
