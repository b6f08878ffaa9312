/*
 * Output: one-line errors on stderr (redacted), run records as text or JSON
 * on stdout, and the progress line on a terminal.
 */
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "util/log.h"
#include "util/str.h"

void as_cli_redact(as_cli *cli, char *msg, size_t cap)
{
	if (cli && cli->cfg)
		atomsync_config_redact(cli->cfg, msg, cap);
}

void as_cli_error(as_cli *cli, const char *fmt, ...)
{
	char msg[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	as_cli_redact(cli, msg, sizeof(msg));
	if (cli && cli->progress)
		fputs("\r\033[K", stderr);
	fprintf(stderr, "atomsync: %s\n", msg);
	fflush(stderr);
}

int as_cli_bad_option(as_cli *cli, char **argv, int c)
{
	const char *a = optind > 0 ? argv[optind - 1] : "?";

	if (c == ':')
		as_cli_error(cli, "%s: %s needs a value", argv[0], a);
	else if (optopt && strncmp(a, "--", 2) != 0)
		as_cli_error(cli, "%s: unknown option -%c", argv[0], optopt);
	else
		as_cli_error(cli, "%s: unknown option %s", argv[0], a);
	return AS_EXIT_USAGE;
}

int as_cli_count(as_cli *cli, const char *opt, const char *arg, long long min,
		 long long max, long long *out)
{
	unsigned long long v = 0;
	const char *p = arg;

	for (; *p >= '0' && *p <= '9'; p++) {
		if (v > (ULLONG_MAX - 9) / 10)
			break;
		v = v * 10 + (unsigned)(*p - '0');
	}
	if (!*arg || *p || v < (unsigned long long)min ||
	    v > (unsigned long long)max) {
		as_cli_error(cli,
			     "%s %s: expected a whole number from %lld to %lld",
			     opt, arg, min, max);
		return AS_EXIT_USAGE;
	}
	*out = (long long)v;
	return 0;
}

static void log_redactor(char *msg, unsigned long cap, void *ud)
{
	as_cli_redact(ud, msg, cap);
}

int as_cli_has_dataset(const as_cli *cli, const char *name)
{
	size_t n = atomsync_config_ndatasets(cli->cfg);

	for (size_t i = 0; i < n; i++)
		if (!strcmp(atomsync_config_dataset_name(cli->cfg, i), name))
			return 1;
	return 0;
}

int as_cli_load_config(as_cli *cli, as_error *err)
{
	if (cli->cfg)
		return 0;
	if (atomsync_config_load(&cli->cfg, cli->config_path, err)) {
		if (access(cli->config_path, F_OK) != 0 &&
		    strstr(err->msg, cli->config_path) == NULL)
			as_error_prefix(err, "%s", cli->config_path);
		return err->code;
	}
	as_log_set_redactor(log_redactor, cli);
	return 0;
}

static json_t *str_or_null(const char *s)
{
	return s ? json_string(s) : json_null();
}

/* A JSON array stored as text by the store; [] when none. */
static json_t *names_array(const char *text)
{
	json_t *a = text ? json_loads(text, 0, NULL) : NULL;

	if (!json_is_array(a)) {
		json_decref(a);
		a = json_array();
	}
	return a;
}

json_t *as_run_info_json(const atomsync_run_info *ri)
{
	json_t *o = json_object();

	json_object_set_new(o, "run_id", json_integer(ri->run_id));
	json_object_set_new(o, "dataset", str_or_null(ri->dataset));
	json_object_set_new(o, "kind", str_or_null(ri->kind));
	json_object_set_new(o, "mode", str_or_null(ri->mode));
	json_object_set_new(o, "status", str_or_null(ri->status));
	json_object_set_new(o, "started_at", str_or_null(ri->started_at));
	json_object_set_new(o, "finished_at", str_or_null(ri->finished_at));
	json_object_set_new(o, "seen", json_integer(ri->seen));
	json_object_set_new(o, "inserted", json_integer(ri->inserted));
	json_object_set_new(o, "updated", json_integer(ri->updated));
	json_object_set_new(o, "unchanged", json_integer(ri->unchanged));
	json_object_set_new(o, "deleted", json_integer(ri->deleted));
	json_object_set_new(o, "rejected", json_integer(ri->rejected));
	json_object_set_new(o, "duplicates", json_integer(ri->duplicates));
	json_object_set_new(o, "columns_added", names_array(ri->columns_added));
	json_object_set_new(o, "columns_widened",
			    names_array(ri->columns_widened));
	json_object_set_new(o, "discarded_values",
			    json_integer(ri->discarded_values));
	json_object_set_new(o, "discarded_rows",
			    json_integer(ri->discarded_rows));
	json_object_set_new(o, "resumed_from",
			    ri->resumed_from ? json_integer(ri->resumed_from)
					     : json_null());
	json_object_set_new(o, "error", str_or_null(ri->error));
	return o;
}

void as_print_json(json_t *v)
{
	char *s = json_dumps(v, JSON_INDENT(2) | JSON_PRESERVE_ORDER);

	if (s) {
		as_log_redact(s, strlen(s) + 1);
		fputs(s, stdout);
		fputc('\n', stdout);
		free(s);
	}
	json_decref(v);
	fflush(stdout);
}

void as_print_run_line(FILE *f, const atomsync_run_info *ri)
{
	char a[32], b[32], c[32], d[32], e[32], g[32];

	fprintf(f,
		"%s: %s %lld %s: %s seen, %s inserted, %s updated, "
		"%s unchanged, %s deleted, %s rejected",
		ri->dataset ? ri->dataset : "?",
		ri->kind && !as_streq(ri->kind, "sync") ? ri->kind : "run",
		(long long)ri->run_id, ri->status ? ri->status : "?",
		as_fmt_count(a, sizeof(a), ri->seen),
		as_fmt_count(b, sizeof(b), ri->inserted),
		as_fmt_count(c, sizeof(c), ri->updated),
		as_fmt_count(d, sizeof(d), ri->unchanged),
		as_fmt_count(e, sizeof(e), ri->deleted),
		as_fmt_count(g, sizeof(g), ri->rejected));
	if (ri->duplicates)
		fprintf(f, ", %lld duplicates", (long long)ri->duplicates);
	if (ri->resumed_from)
		fprintf(f, " (resumed run %lld)", (long long)ri->resumed_from);
	fputc('\n', f);
}

void as_progress_print(const atomsync_progress *p, void *ud)
{
	as_cli *cli = ud;
	char a[32], b[32];
	double rate = p->elapsed > 0 ? (double)p->records / p->elapsed : 0;

	if (!cli->progress)
		return;
	if (p->done) {
		fputs("\r\033[K", stderr);
		fflush(stderr);
		return;
	}
	fprintf(stderr, "\r\033[K%s: %s records  %s/s", p->dataset,
		as_fmt_count(a, sizeof(a), p->records),
		as_fmt_count(b, sizeof(b), (long long)rate));
	if (p->pages)
		fprintf(stderr, "  %lld pages", (long long)p->pages);
	fprintf(stderr, "  %.1f s", p->elapsed);
	fflush(stderr);
}
