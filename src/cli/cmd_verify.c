/*
 * atomsync verify DATASET [--sample N] [--json] [--repair]: exit 0 when the
 * count agrees and the sampled rows reach verify_threshold, 1 otherwise;
 * --repair runs the dataset when the count differs (exit: that run's).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

static void print_value(json_t *v)
{
	char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);

	fputs(s ? s : "?", stdout);
	free(s);
}

/* "  id=5: downloads: live 100, source 101; name: ..." */
static void print_mismatch(json_t *m)
{
	const char *k, *sep = "";
	json_t *v, *cols = json_object_get(m, "columns");
	size_t i;

	fputs("  ", stdout);
	json_object_foreach(json_object_get(m, "key"), k, v)
	{
		printf("%s%s=", sep, k);
		print_value(v);
		sep = ",";
	}
	fputs(": ", stdout);
	if (json_is_string(json_object_get(m, "error"))) {
		printf("%s\n", json_string_value(json_object_get(m, "error")));
		return;
	}
	sep = "";
	json_array_foreach(cols, i, v)
	{
		printf("%s%s: live ", sep,
		       json_string_value(json_object_get(v, "column")));
		print_value(json_object_get(v, "live"));
		fputs(", source ", stdout);
		print_value(json_object_get(v, "source"));
		sep = "; ";
	}
	fputc('\n', stdout);
}

static json_t *result_json(const char *dataset, const atomsync_verify_result *r,
			   json_t *mismatches)
{
	return json_pack(
		"{s:s, s:I, s:b, s:f, s:f, s:{s:b, s:b, s:I, s:o?, s:s}, "
		"s:{s:b, s:I, s:I, s:I, s:I, s:s}, s:O, s:s}",
		"dataset", dataset, "run_id", (json_int_t)r->run_id, "passed",
		r->passed, "threshold", r->threshold, "accuracy", r->accuracy,
		"count", "checked", r->count_checked, "ok",
		r->count_checked ? r->count_ok : 1, "live",
		(json_int_t)r->live_rows, "source",
		r->count_checked ? json_integer(r->source_total) : NULL, "note",
		r->count_note, "sample", "checked", r->sample_checked, "size",
		(json_int_t)r->sampled, "matched", (json_int_t)r->matched,
		"differing", (json_int_t)r->differing, "missing",
		(json_int_t)r->missing, "note", r->sample_note, "mismatches",
		mismatches, "summary", r->summary);
}

static void print_result(const char *dataset, const atomsync_verify_result *r,
			 json_t *mismatches)
{
	size_t i;
	json_t *m;

	printf("%s: count: %s\n", dataset, r->count_note);
	printf("%s: sample: %s\n", dataset, r->sample_note);
	json_array_foreach(mismatches, i, m) print_mismatch(m);
	if (r->passed)
		printf("%s: verify passed (accuracy %.1f%%, threshold %.1f%%; run %lld)\n",
		       dataset, 100.0 * r->accuracy, 100.0 * r->threshold,
		       (long long)r->run_id);
	else
		printf("%s: verify FAILED (%s%s; run %lld)\n", dataset,
		       r->count_checked && !r->count_ok ? "the count differs"
							: "",
		       r->sample_checked &&
				       r->matched <
					       r->threshold * (double)r->sampled
			       ? (r->count_checked && !r->count_ok
					  ? "; accuracy below the threshold"
					  : "accuracy below the threshold")
			       : "",
		       (long long)r->run_id);
}

/* msg without a leading "dataset NAME: " (the CLI names it already). */
static const char *unprefixed(const char *msg, const char *dataset)
{
	size_t n = strlen(dataset);

	if (strncmp(msg, "dataset ", 8) == 0 &&
	    strncmp(msg + 8, dataset, n) == 0 &&
	    strncmp(msg + 8 + n, ": ", 2) == 0)
		return msg + 10 + n;
	return msg;
}

/* A full refresh: a normal run of the dataset. */
static int repair(as_cli *cli, atomsync_store *st, const char *dataset,
		  json_t *out)
{
	atomsync_run_options opt;
	atomsync_run_info info;
	as_error err;
	int rc;

	memset(&opt, 0, sizeof(opt));
	as_error_clear(&err);
	rc = atomsync_sync(st, cli->cfg, dataset, &opt, as_progress_print, cli,
			   &info, &err);
	if (rc)
		as_cli_error(cli, "%s: repair: %s", dataset, err.msg);
	if (out && info.run_id)
		json_object_set_new(out, "repair", as_run_info_json(&info));
	else if (!out && info.run_id && !rc)
		as_print_run_line(stdout, &info);
	atomsync_run_info_clear(&info);
	return as_exit_code(rc);
}

typedef struct verify_args {
	const char *dataset;
	unsigned long sample; /* rows to sample */
	int json;	      /* --json */
	int fix;	      /* --repair */
} verify_args;

/* verify's options and its DATASET into *a: -1 to go on, or the exit
 * code of a usage error. */
static int verify_options(as_cli *cli, int argc, char **argv, verify_args *a)
{
	static const struct option opts[] = {
		{"sample", required_argument, NULL, 's'},
		{"json", no_argument, NULL, 'j'},
		{"repair", no_argument, NULL, 'r'},
		{"config", required_argument, NULL, 'c'},
		{NULL, 0, NULL, 0}};
	char *end;
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, ":c:", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			a->sample = strtoul(optarg, &end, 10);
			if (*end || !*optarg || optarg[0] == '-' ||
			    a->sample > 1000000) {
				as_cli_error(
					cli,
					"--sample %s: expected a number of rows "
					"(0 to 1000000)",
					optarg);
				return AS_EXIT_USAGE;
			}
			break;
		case 'j': a->json = 1; break;
		case 'r': a->fix = 1; break;
		case 'c': cli->config_path = optarg; break;
		default:
			/* AS_EXIT_USAGE, written out for the analyser */
			as_cli_bad_option(cli, argv, c);
			return AS_EXIT_USAGE;
		}
	}
	if (optind != argc - 1) {
		as_cli_error(
			cli,
			"verify: usage: atomsync verify DATASET [--sample N] "
			"[--json] [--repair]");
		return AS_EXIT_USAGE;
	}
	a->dataset = argv[optind];
	return -1;
}

/* Verify the dataset on st, print the result (and repair when asked and
 * the count differs); the exit code. */
static int verify_dataset(as_cli *cli, atomsync_store *st, const verify_args *a)
{
	atomsync_verify_result *res = NULL;
	json_t *mismatches = NULL, *out = NULL;
	as_error err;
	int rc, code;

	as_error_clear(&err);
	rc = atomsync_verify(st, cli->cfg, a->dataset, a->sample, &res, &err);
	if (rc) {
		as_cli_error(cli, "%s: verify: %s", a->dataset,
			     unprefixed(err.msg, a->dataset));
		atomsync_verify_result_free(res);
		return as_exit_code(rc);
	}
	code = res->passed ? AS_EXIT_OK : AS_EXIT_FAILED;
	mismatches = json_loads(res->mismatches, 0, NULL);
	if (!mismatches)
		mismatches = json_array();
	if (a->json)
		out = result_json(a->dataset, res, mismatches);
	else
		print_result(a->dataset, res, mismatches);
	if (a->fix && res->count_checked && !res->count_ok)
		code = repair(cli, st, a->dataset, out);
	if (out)
		as_print_json(out);
	json_decref(mismatches);
	atomsync_verify_result_free(res);
	return code;
}

int as_cmd_verify(as_cli *cli, int argc, char **argv)
{
	verify_args a = {.sample = 100};
	atomsync_store *st = NULL;
	as_error err;
	int code;

	if ((code = verify_options(cli, argc, argv, &a)) >= 0)
		return code;
	if (as_cli_load_config(cli, &err)) {
		as_cli_error(cli, "%s", err.msg);
		return AS_EXIT_USAGE;
	}
	if (!as_cli_has_dataset(cli, a.dataset)) {
		as_cli_error(cli, "%s: no dataset named '%s'", cli->config_path,
			     a.dataset);
		return AS_EXIT_USAGE;
	}
	if (atomsync_store_open(&st, atomsync_config_store(cli->cfg), &err)) {
		as_cli_error(cli, "%s", err.msg);
		return as_exit_code(err.code);
	}
	code = verify_dataset(cli, st, &a);
	atomsync_store_free(st);
	return code;
}
