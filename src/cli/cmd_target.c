/*
 * atomsync target STORE [--config FILE] [--prefix P] [--schema infer|json]
 * [--schema-contract C]: a Singer target.
 * Singer messages on stdin, every stream its own table; each STATE is
 * written to stdout as one JSON line once the data it covers is published
 * (the last one, after the publish at the end of the input), so an
 * orchestrator's state backend can keep it.  Run lines go to stderr:
 * stdout carries STATE only.
 */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"

static void write_state(const char *state, void *ud)
{
	(void)ud;
	fputs(state, stdout);
	fputc('\n', stdout);
	fflush(stdout);
}

int as_cmd_target(as_cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{"config", required_argument, NULL, 'c'},
		{"prefix", required_argument, NULL, 'p'},
		{"allow-empty", no_argument, NULL, 'e'},
		{"allow-deletes", no_argument, NULL, 'd'},
		{"json", no_argument, NULL, 'j'},
		{"schema", required_argument, NULL, 'I'},
		{"schema-contract", required_argument, NULL, 'C'},
		{NULL, 0, NULL, 0}};
	atomsync_target_options o;
	atomsync_run_info *infos = NULL;
	atomsync_config *cfg = NULL;
	atomsync_error err;
	size_t n = 0;
	int c, rc, json = 0, code;
	const char *config = NULL;

	memset(&o, 0, sizeof(o));
	optind = 1;
	while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
		switch (c) {
		case 'c': config = optarg; break;
		case 'p': o.prefix = optarg; break;
		case 'e': o.allow_empty = 1; break;
		case 'd': o.allow_deletes = 1; break;
		case 'j': json = 1; break;
		case 'I': o.schema = optarg; break;
		case 'C': o.schema_contract = optarg; break;
		default: return as_cli_bad_option(cli, argv, c);
		}
	}
	if (argc - optind != 1) {
		as_cli_error(
			cli,
			"usage: atomsync target STORE [--config FILE] "
			"[--prefix P] [--schema infer|json] "
			"[--schema-contract C]  (Singer messages on stdin)");
		return AS_EXIT_USAGE;
	}
	if (config) {
		if ((rc = atomsync_config_load(&cfg, config, &err))) {
			as_cli_error(cli, "%s", err.msg);
			return as_exit_code(rc);
		}
		cli->cfg = cfg;
		o.cfg = cfg;
	}
	rc = atomsync_target(argv[optind], STDIN_FILENO, &o, write_state, NULL,
			     &infos, &n, &err);
	for (size_t i = 0; i < n; i++) {
		if (json) {
			char *s;
			json_t *v = as_run_info_json(&infos[i]);

			s = json_dumps(v, JSON_COMPACT);
			if (s)
				fprintf(stderr, "%s\n", s);
			free(s);
			json_decref(v);
		} else if (!cli->quiet && infos[i].status) {
			as_print_run_line(stderr, &infos[i]);
		}
	}
	atomsync_run_info_free(infos, n);
	code = rc ? as_exit_code(rc) : AS_EXIT_OK;
	if (rc)
		as_cli_error(cli, "target: %s", err.msg);
	return code;
}
