/*
 * atomsync load STORE TABLE [FILE|-] --key COL[,COL...]: the ad-hoc form for
 * one file, no config file (like `sqlite-utils insert`).  It builds a
 * one-dataset config in memory, named after the table, and runs it with the
 * same engine and guarantees as `run`.
 */
#include <getopt.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "config/config.h"
#include "store/store.h"
#include "util/buf.h"
#include "util/str.h"

int as_run_datasets(as_cli *cli, atomsync_store *st, const char **names,
		    size_t n, const atomsync_run_options *opt, int json);

static int parse_mode(const char *s, as_mode *m)
{
	static const char *names[] = {"full", "incremental", "scoped",
				      "append"};

	for (int i = 0; i < 4; i++)
		if (strcmp(s, names[i]) == 0) {
			*m = (as_mode)i;
			return 0;
		}
	return -1;
}

/* The config file's rules for the columns named by opt (--key, --scope,
 * --cursor): plain, not reserved, not the whole-record column 'data', none
 * twice (names ignore case).  Checked before the store is opened, so a bad
 * name leaves nothing behind. */
static int check_columns(as_cli *cli, const char *opt, const char *arg,
			 char **v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const char *why = as_cfg_name_problem(v[i], 0);

		if (!*v[i])
			why = "is empty";
		else if (!why && !strcasecmp(v[i], AS_DATA_COLUMN))
			why = "is the column of the whole record (load keeps "
			      "each record as JSON in 'data'); use another "
			      "column";
		if (why) {
			as_cli_error(cli, "load: %s %s: column name '%s' %s",
				     opt, arg, v[i], why);
			return -1;
		}
		for (size_t j = 0; j < i; j++)
			if (!strcasecmp(v[i], v[j])) {
				as_cli_error(cli,
					     "load: %s %s lists '%s' twice%s",
					     opt, arg, v[i],
					     strcmp(v[i], v[j])
						     ? " (names ignore case)"
						     : "");
				return -1;
			}
	}
	return 0;
}

static int check_names(as_cli *cli, as_dataset_cfg *ds, const char *table)
{
	const char *why = as_cfg_name_problem(table, 1);
	as_buf key = AS_BUF_INIT, scope = AS_BUF_INIT;
	int rc = 0;

	if (why) {
		as_cli_error(cli, "load: table name '%s' %s", table, why);
		return -1;
	}
	for (size_t i = 0; i < ds->nkey; i++)
		as_buf_printf(&key, "%s%s", i ? "," : "", ds->key[i]);
	for (size_t i = 0; i < ds->nscope; i++)
		as_buf_printf(&scope, "%s%s", i ? "," : "", ds->scope[i]);
	if (check_columns(cli, "--key", as_buf_cstr(&key), ds->key, ds->nkey) ||
	    check_columns(cli, "--scope", as_buf_cstr(&scope), ds->scope,
			  ds->nscope) ||
	    (ds->cursor &&
	     check_columns(cli, "--cursor", ds->cursor, &ds->cursor, 1)))
		rc = -1;
	as_buf_free(&key);
	as_buf_free(&scope);
	return rc;
}

int as_cmd_load(as_cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{"key", required_argument, NULL, 'k'},
		{"mode", required_argument, NULL, 'M'},
		{"scope", required_argument, NULL, 's'},
		{"cursor", required_argument, NULL, 'u'},
		{"format", required_argument, NULL, 'f'},
		{"allow-empty", no_argument, NULL, 'e'},
		{"allow-deletes", no_argument, NULL, 'd'},
		{"restart", no_argument, NULL, 'r'},
		{"max-rejects", required_argument, NULL, 'x'},
		{"batch-size", required_argument, NULL, 'b'},
		{"json", no_argument, NULL, 'j'},
		{"metrics-file", required_argument, NULL, 'm'},
		{NULL, 0, NULL, 0}};
	as_config *cfg = calloc(1, sizeof(*cfg));
	as_dataset_cfg *ds = calloc(1, sizeof(*ds));
	atomsync_run_options opt;
	as_store *st = NULL;
	as_error err;
	int c, json = 0, code = AS_EXIT_USAGE;
	char *name;

	memset(&opt, 0, sizeof(opt));
	if (!cfg || !ds) {
		free(cfg);
		free(ds);
		return AS_EXIT_FAILED;
	}
	cfg->path = as_strdup("load");
	cfg->datasets = ds;
	cfg->ndatasets = 1;
	as_dataset_cfg_defaults(ds);
	cli->cfg = cfg;
	optind = 1;
	while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
		switch (c) {
		case 'k': ds->key = as_split(optarg, ',', &ds->nkey); break;
		case 'M':
			if (parse_mode(optarg, &ds->mode)) {
				as_cli_error(
					cli,
					"--mode %s: expected full, incremental, "
					"scoped or append",
					optarg);
				return AS_EXIT_USAGE;
			}
			break;
		case 's': ds->scope = as_split(optarg, ',', &ds->nscope); break;
		case 'u':
			free(ds->cursor);
			ds->cursor = as_strdup(optarg);
			break;
		case 'f':
			if (strcmp(optarg, "jsonl") == 0)
				ds->source.format = AS_FORMAT_JSONL;
			else if (strcmp(optarg, "singer") == 0)
				ds->source.format = AS_FORMAT_SINGER;
			else {
				as_cli_error(
					cli,
					"--format %s: expected jsonl or singer",
					optarg);
				return AS_EXIT_USAGE;
			}
			break;
		case 'e': opt.allow_empty = 1; break;
		case 'd': opt.allow_deletes = 1; break;
		case 'r': opt.restart = 1; break;
		case 'x':
		case 'b': {
			long long v;

			if (as_cli_count(cli,
					 c == 'x' ? "--max-rejects"
						  : "--batch-size",
					 optarg, c == 'b', INT64_MAX, &v))
				return AS_EXIT_USAGE;
			if (c == 'x')
				ds->guard.max_rejects = v;
			else
				ds->batch_size = v;
			break;
		}
		case 'j': json = 1; break;
		case 'm': cli->metrics_file = optarg; break;
		default: return as_cli_bad_option(cli, argv, c);
		}
	}
	if (argc - optind < 2 || argc - optind > 3) {
		as_cli_error(cli,
			     "usage: atomsync load STORE TABLE [FILE|-] --key "
			     "COL[,COL...] [--mode MODE]");
		return AS_EXIT_USAGE;
	}
	if (!ds->nkey && ds->source.format != AS_FORMAT_SINGER) {
		as_cli_error(cli, "load: --key COL[,COL...] is required");
		return AS_EXIT_USAGE;
	}
	if (ds->mode == AS_MODE_SCOPED && !ds->nscope) {
		as_cli_error(cli,
			     "load: --mode scoped needs --scope COL[,COL...]");
		return AS_EXIT_USAGE;
	}
	if (ds->mode != AS_MODE_SCOPED && ds->nscope) {
		as_cli_error(cli,
			     "load: --scope applies to --mode scoped only");
		return AS_EXIT_USAGE;
	}
	cfg->store = as_strdup(argv[optind]);
	name = argv[optind + 1];
	if (check_names(cli, ds, name))
		return AS_EXIT_USAGE;
	ds->name = as_strdup(name);
	ds->table = as_strdup(name);
	free(ds->reject_file);
	ds->reject_file = as_sprintf("%s.rejects.jsonl", name);
	if (argc - optind == 3 && strcmp(argv[optind + 2], "-") != 0) {
		ds->source.kind = AS_SOURCE_FILE;
		ds->source.path = as_strdup(argv[optind + 2]);
	} else {
		ds->source.kind = AS_SOURCE_STDIN;
	}
	if (as_store_open(&st, cfg->store, &err)) {
		as_cli_error(cli, "%s", err.msg);
		return as_exit_code(err.code);
	}
	code = as_run_datasets(cli, st, (const char **)&ds->name, 1, &opt,
			       json);
	as_store_close(st);
	return code;
}
