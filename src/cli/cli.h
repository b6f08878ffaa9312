/*
 * What the command's verbs share: global options, output helpers, exit
 * codes (all in one place: exit.c), progress and metrics.
 */
#ifndef AS_CLI_H
#define AS_CLI_H

#include <jansson.h>
#include <stdio.h>

/* The command is a client of the public API; src/util is its own toolbox
 * (strings, buffers, errors, logging), as libgit2's CLI uses its util. */
#include <atomsync.h>

#include "util/buf.h"
#include "util/error.h"

/* Exit codes of DESIGN.md. */
enum {
	AS_EXIT_OK = 0,	     /* published, or nothing to do */
	AS_EXIT_FAILED = 1,  /* the run failed; nothing was published */
	AS_EXIT_USAGE = 2,   /* usage or configuration error */
	AS_EXIT_REFUSED = 3, /* a guard refused the publish */
	AS_EXIT_LEASED = 4   /* another worker holds the lease; nothing done */
};

typedef struct as_cli {
	const char *config_path;  /* -c; default atomsync.yml */
	const char *metrics_file; /* --metrics-file */
	int quiet, verbose;
	int progress;	      /* stderr is a terminal */
	atomsync_config *cfg; /* loaded on demand */
} as_cli;

int as_exit_code(int rc);
/* Combine per-dataset results of one command (see exit.c). */
int as_exit_combine(const int *codes, size_t n);

/* Print "atomsync: message" on stderr, redacted. */
void as_cli_error(as_cli *cli, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
int as_cli_load_config(as_cli *cli, as_error *err);
/* Whether the loaded config has a dataset of that name. */
int as_cli_has_dataset(const as_cli *cli, const char *name);
/* The usage error of a verb's getopt_long loop (optstring starting with ':')
 * that returned c, '?' or ':': names the option; returns AS_EXIT_USAGE. */
int as_cli_bad_option(as_cli *cli, char **argv, int c);
/* A count given to opt: decimal digits only, within [min, max]; else a
 * usage error naming opt and arg.  0 or AS_EXIT_USAGE. */
int as_cli_count(as_cli *cli, const char *opt, const char *arg, long long min,
		 long long max, long long *out);
/* Redact secrets of the loaded config from msg. */
void as_cli_redact(as_cli *cli, char *msg, size_t cap);

json_t *as_run_info_json(const atomsync_run_info *ri);
void as_print_json(json_t *v); /* consumes v */
void as_print_run_line(FILE *f, const atomsync_run_info *ri);

void as_progress_print(const atomsync_progress *p, void *ud);
int as_metrics_write(as_cli *cli, atomsync_store *st, as_error *err);
/* The Prometheus text of --metrics-file, appended to out. */
int as_metrics_text(const atomsync_config *cfg, atomsync_store *st, as_buf *out,
		    as_error *err);
/* The documents of `status --json` (only: one dataset) and `runs --json`;
 * *out is owned by the caller (json_decref). */
int as_status_json(const atomsync_config *cfg, atomsync_store *st,
		   const char *only, json_t **out, as_error *err);
int as_runs_json(atomsync_store *st, const char *dataset, size_t limit,
		 json_t **out, as_error *err);

/* Verbs: each returns an exit code. */
int as_cmd_run(as_cli *cli, int argc, char **argv);
int as_cmd_status(as_cli *cli, int argc, char **argv);
int as_cmd_runs(as_cli *cli, int argc, char **argv);
int as_cmd_load(as_cli *cli, int argc, char **argv);
int as_cmd_target(as_cli *cli, int argc, char **argv);
int as_cmd_outbox(as_cli *cli, int argc, char **argv);
int as_cmd_rollback(as_cli *cli, int argc, char **argv);
int as_cmd_verify(as_cli *cli, int argc, char **argv);
int as_cmd_serve(as_cli *cli, int argc, char **argv);

/* The scheduler daemon (src/serve/, the command's own module: it schedules
 * from the config's internals, so it is built apart from src/cli/): serves
 * on addr ("ADDR:PORT") until SIGTERM, or makes one pass (once) with
 * log lines as text or JSON; returns an exit code. */
int as_serve_run(as_cli *cli, const char *addr, int once, int log_json);

#endif
