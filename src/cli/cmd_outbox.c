/*
 * atomsync outbox (list | drain) [DATASET] [--json]: the cache invalidations
 * and webhooks that publishes recorded (invariant 7).  list shows pending
 * events and the latest delivered ones; drain delivers the pending ones
 * and exits 0 only when none is left pending.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

#define RECENT_DELIVERED 20

static json_t *str_or_null(const char *s)
{
	return s ? json_string(s) : json_null();
}

static json_t *event_json(const atomsync_outbox_event *e)
{
	json_t *o = json_object();

	json_object_set_new(o, "event_id", json_integer(e->event_id));
	json_object_set_new(o, "run_id", json_integer(e->run_id));
	json_object_set_new(o, "dataset", json_string(e->dataset));
	json_object_set_new(o, "target", json_string(e->target));
	json_object_set_new(o, "status", json_string(e->status));
	json_object_set_new(o, "attempts", json_integer(e->attempts));
	json_object_set_new(o, "keys", json_integer(e->keys));
	json_object_set_new(o, "last_error", str_or_null(e->last_error));
	json_object_set_new(o, "created_at", str_or_null(e->created_at));
	json_object_set_new(o, "delivered_at", str_or_null(e->delivered_at));
	return o;
}

static void print_events(as_cli *cli, const atomsync_outbox_event *v, size_t n)
{
	if (n == 0) {
		printf("no outbox events\n");
		return;
	}
	printf("%-8s %-8s %-20s %-8s %-10s %8s %9s  %-24s %s\n", "EVENT", "RUN",
	       "DATASET", "TARGET", "STATUS", "ATTEMPTS", "KEYS", "CREATED",
	       "LAST ERROR");
	for (size_t i = 0; i < n; i++) {
		char msg[600];

		snprintf(msg, sizeof(msg), "%s",
			 v[i].last_error ? v[i].last_error : "");
		as_cli_redact(cli, msg, sizeof(msg));
		printf("%-8lld %-8lld %-20s %-8s %-10s %8lld %9lld  %-24s %s\n",
		       (long long)v[i].event_id, (long long)v[i].run_id,
		       v[i].dataset, v[i].target, v[i].status,
		       (long long)v[i].attempts, (long long)v[i].keys,
		       v[i].created_at ? v[i].created_at : "", msg);
	}
}

static int list_events(as_cli *cli, atomsync_store *st, const char *dataset,
		       unsigned flags, int json, int64_t *pending)
{
	atomsync_outbox_event *v = NULL;
	size_t n = 0;
	as_error err;

	if (atomsync_outbox_list(st, dataset, 0, RECENT_DELIVERED, flags, &v,
				 &n, &err)) {
		as_cli_error(cli, "%s", err.msg);
		return as_exit_code(err.code);
	}
	*pending = 0;
	for (size_t i = 0; i < n; i++)
		*pending += strcmp(v[i].status, "pending") == 0;
	if (json) {
		json_t *a = json_array();

		for (size_t i = 0; i < n; i++)
			json_array_append_new(a, event_json(&v[i]));
		as_print_json(a);
	} else if (!(flags & ATOMSYNC_OUTBOX_PENDING)) {
		print_events(cli, v, n);
	}
	atomsync_outbox_events_free(v, n);
	return AS_EXIT_OK;
}

static int drain(as_cli *cli, atomsync_store *st, const char *dataset, int json)
{
	atomsync_drain_stats s;
	atomsync_outbox_event *v = NULL;
	size_t n = 0;
	as_error err;

	if (atomsync_outbox_drain(st, cli->cfg, dataset, &s, &err) ||
	    atomsync_outbox_list(st, dataset, 0, 0, ATOMSYNC_OUTBOX_PENDING, &v,
				 &n, &err)) {
		as_cli_error(cli, "%s", err.msg);
		return as_exit_code(err.code);
	}
	if (json) {
		json_t *o = json_object(), *a = json_array();

		json_object_set_new(o, "delivered", json_integer(s.delivered));
		json_object_set_new(o, "failed", json_integer(s.failed));
		for (size_t i = 0; i < n; i++)
			json_array_append_new(a, event_json(&v[i]));
		json_object_set_new(o, "pending", a);
		as_print_json(o);
	} else if (!cli->quiet) {
		printf("outbox: %lld event%s delivered, %zu pending\n",
		       (long long)s.delivered, s.delivered == 1 ? "" : "s", n);
	}
	if (s.failed)
		as_cli_error(cli, "outbox: %lld event%s not delivered: %s",
			     (long long)s.failed, s.failed == 1 ? "" : "s",
			     s.first_error);
	atomsync_outbox_events_free(v, n);
	return n ? AS_EXIT_FAILED : AS_EXIT_OK;
}

int as_cmd_outbox(as_cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{"json", no_argument, NULL, 'j'},
		{"config", required_argument, NULL, 'c'},
		{NULL, 0, NULL, 0}};
	const char *what, *dataset = NULL;
	atomsync_store *st = NULL;
	as_error err;
	int c, json = 0, code;
	int64_t pending = 0;

	optind = 1;
	while ((c = getopt_long(argc, argv, ":c:", opts, NULL)) != -1) {
		switch (c) {
		case 'j': json = 1; break;
		case 'c': cli->config_path = optarg; break;
		default: return as_cli_bad_option(cli, argv, c);
		}
	}
	if (optind >= argc ||
	    (strcmp(argv[optind], "list") != 0 &&
	     strcmp(argv[optind], "drain") != 0) ||
	    argc - optind > 2) {
		as_cli_error(
			cli,
			"usage: atomsync outbox (list | drain) [DATASET] [--json]");
		return AS_EXIT_USAGE;
	}
	what = argv[optind];
	if (optind + 1 < argc)
		dataset = argv[optind + 1];
	if (as_cli_load_config(cli, &err)) {
		as_cli_error(cli, "%s", err.msg);
		return AS_EXIT_USAGE;
	}
	if (atomsync_store_open(&st, atomsync_config_store(cli->cfg), &err)) {
		as_cli_error(cli, "%s", err.msg);
		return as_exit_code(err.code);
	}
	if (strcmp(what, "list") == 0) {
		code = list_events(cli, st, dataset, 0, json, &pending);
	} else {
		code = drain(cli, st, dataset, json);
	}
	atomsync_store_free(st);
	return code;
}
