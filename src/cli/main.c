/*
 * atomsync: the command line.  Global options, then one verb per file
 * (cmd_<verb>.c); exit codes are decided in exit.c.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "util/crash.h"
#include "util/log.h"
#include "util/proc.h"

static const char USAGE[] =
	"usage: atomsync [-c FILE] [--metrics-file PATH] [-q|-v] VERB [ARGS]\n"
	"\n"
	"  run [DATASET...] [--restart] [--allow-empty] [--allow-deletes]\n"
	"      [--scope COL=VALUE]... [--json]\n"
	"                        sync datasets (all when none is named)\n"
	"  status [DATASET] [--json]\n"
	"                        rows, last run, lease and checkpoint per dataset\n"
	"  runs DATASET [--limit N] [--json]\n"
	"                        the run records of a dataset, newest first\n"
	"  outbox (list | drain) [DATASET] [--json]\n"
	"                        cache invalidations and webhooks: pending ones\n"
	"                        listed, or delivered (exit 1 while any is pending)\n"
	"  rollback DATASET --to-run N [--json]\n"
	"                        restore the table to its state after run N (exit 2\n"
	"                        when its history cannot, nothing changed)\n"
	"  verify DATASET [--sample N] [--json] [--repair]\n"
	"                        check the table against the source (exit 1 below\n"
	"                        the dataset's verify_threshold)\n"
	"  load STORE TABLE [FILE|-] --key COL[,COL...] [--mode MODE]\n"
	"      [--scope COL[,COL...]] [--cursor COL] [--format jsonl|singer]\n"
	"      [--stream NAME] [--allow-empty] [--allow-deletes] [--restart]\n"
	"      [--max-rejects N] [--schema infer|json]\n"
	"      [--schema-contract evolve|freeze|discard_value|discard_row]\n"
	"                        load one file without a config file; typed\n"
	"                        columns are inferred from the records (--schema\n"
	"                        json: the key plus `data`, the whole record;\n"
	"                        --stream: that Singer stream)\n"
	"  target STORE [--config FILE] [--prefix P] [--json]\n"
	"      [--schema infer|json] [--schema-contract CONTRACT]\n"
	"                        a Singer target: every stream on stdin into\n"
	"                        its own table, all published in one\n"
	"                        transaction; the last STATE to stdout once\n"
	"                        published (run lines on stderr)\n"
	"  serve [--listen ADDR:PORT] [--once] [--log-format text|json]\n"
	"                        the scheduler daemon: runs each dataset with a\n"
	"                        schedule (max_parallel at once) and serves\n"
	"                        /metrics /healthz /status /api/status\n"
	"                        /api/runs/DATASET, POST /api/run/DATASET\n"
	"                        (default 127.0.0.1:9464); SIGHUP reloads,\n"
	"                        SIGTERM stops (--once: one pass, then exit)\n"
	"\n"
	"  -c FILE               config file (default: atomsync.yml)\n"
	"  --metrics-file PATH   write Prometheus metrics after run or load\n"
	"\n"
	"exit: 0 published or nothing to do, 1 failed (nothing published),\n"
	"2 usage or configuration error, 3 refused by a guard (nothing\n"
	"published), 4 another worker holds the lease (nothing done)\n";

/*
 * The first SIGINT/SIGTERM asks the run to stop cleanly (it records itself
 * failed and releases its lease); a second one a second or more later stops
 * the process at once.  A repeat within that second is the same request:
 * GNU timeout signals the child and then its whole process group, so the
 * child gets SIGTERM twice at once.
 */
static struct timespec first_signal;

static void on_signal(int sig)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	if (as_interrupted) {
		if (now.tv_sec - first_signal.tv_sec < 1 ||
		    (now.tv_sec - first_signal.tv_sec == 1 &&
		     now.tv_nsec < first_signal.tv_nsec))
			return;
		signal(sig, SIG_DFL);
		raise(sig);
		return;
	}
	first_signal = now;
	as_interrupted = 1;
}

static void install_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = 0; /* no SA_RESTART: a blocked read returns EINTR */
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

/* The options before the verb, from argv[*i] on; *i is left at the verb.
 * Returns -1 to go on, or the exit code (--help, --version, an error). */
static int global_options(as_cli *cli, int argc, char **argv, int *i)
{
	for (; *i < argc && argv[*i][0] == '-'; ++*i) {
		const char *a = argv[*i];

		if ((strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0 ||
		     strcmp(a, "--metrics-file") == 0) &&
		    *i + 1 >= argc) {
			fprintf(stderr, "atomsync: %s needs a %s\n%s", a,
				a[2] == 'm' ? "PATH" : "FILE", USAGE);
			return AS_EXIT_USAGE;
		} else if (strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0) {
			cli->config_path = argv[++*i];
		} else if (strncmp(a, "--config=", 9) == 0) {
			cli->config_path = a + 9;
		} else if (strcmp(a, "--metrics-file") == 0) {
			cli->metrics_file = argv[++*i];
		} else if (strncmp(a, "--metrics-file=", 15) == 0) {
			cli->metrics_file = a + 15;
		} else if (strcmp(a, "-q") == 0 || strcmp(a, "--quiet") == 0) {
			cli->quiet = 1;
		} else if (strcmp(a, "-v") == 0 ||
			   strcmp(a, "--verbose") == 0) {
			cli->verbose++;
		} else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			fputs(USAGE, stdout);
			return AS_EXIT_OK;
		} else if (strcmp(a, "--version") == 0) {
			printf("atomsync %s\n", ATOMSYNC_VERSION);
			return AS_EXIT_OK;
		} else {
			fprintf(stderr, "atomsync: unknown option %s\n%s", a,
				USAGE);
			return AS_EXIT_USAGE;
		}
	}
	return -1;
}

static const struct {
	const char *name;
	int (*fn)(as_cli *cli, int argc, char **argv);
} verbs[] = {
	{"run", as_cmd_run},	       {"status", as_cmd_status},
	{"runs", as_cmd_runs},	       {"load", as_cmd_load},
	{"target", as_cmd_target},     {"outbox", as_cmd_outbox},
	{"rollback", as_cmd_rollback}, {"verify", as_cmd_verify},
	{"serve", as_cmd_serve},
};

/* The verb argv[0] run with its arguments. */
static int dispatch(as_cli *cli, int argc, char **argv)
{
	const char *verb = argv[0];

	for (size_t k = 0; k < sizeof(verbs) / sizeof(verbs[0]); k++)
		if (strcmp(verb, verbs[k].name) == 0)
			return verbs[k].fn(cli, argc, argv);
	if (strcmp(verb, "help") == 0) {
		fputs(USAGE, stdout);
		return AS_EXIT_OK;
	}
	fprintf(stderr, "atomsync: unknown verb '%s'\n%s", verb, USAGE);
	return AS_EXIT_USAGE;
}

int main(int argc, char **argv)
{
	as_cli cli;
	int i = 1, code;

	memset(&cli, 0, sizeof(cli));
	cli.config_path = "atomsync.yml";
	as_crash_init();
	install_signals();
	if ((code = global_options(&cli, argc, argv, &i)) >= 0)
		return code;
	if (i >= argc) {
		fputs(USAGE, stderr);
		return AS_EXIT_USAGE;
	}
	as_log_set_level(cli.quiet	   ? AS_LOG_QUIET
			 : cli.verbose > 1 ? AS_LOG_DEBUG
			 : cli.verbose	   ? AS_LOG_INFO
					   : AS_LOG_WARN);
	cli.progress = !cli.quiet && isatty(2);
	/* `atomsync VERB --help` is asked for help, not an unknown option. */
	for (int k = i + 1; k < argc && strcmp(argv[k], "--") != 0; k++)
		if (strcmp(argv[k], "--help") == 0) {
			fputs(USAGE, stdout);
			return AS_EXIT_OK;
		}
	code = dispatch(&cli, argc - i, argv + i);
	atomsync_config_free(cli.cfg);
	return code;
}
