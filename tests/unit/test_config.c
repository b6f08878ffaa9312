/*
 * Unit tests of config/: atomsync.yml into structs, every default, ${VAR}
 * expansion and secrets, and one "file:line:col: message" line per error
 * class (exit 2 in the CLI comes from AS_EUSAGE).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/config.h"

static as_config *parse_ok(const char *yaml)
{
	as_config *cfg = NULL;
	as_error err;
	int rc;

	as_error_clear(&err);
	rc = as_config_parse(&cfg, yaml, strlen(yaml), "t.yml", &err);
	if (rc)
		fail_msg("unexpected error %d: %s", rc, err.msg);
	assert_non_null(cfg);
	return cfg;
}

static void expect_error(const char *yaml, const char *msg)
{
	as_config *cfg = (as_config *)&cfg; /* must be reset to NULL */
	as_error err;
	int rc;

	as_error_clear(&err);
	rc = as_config_parse(&cfg, yaml, strlen(yaml), "t.yml", &err);
	assert_int_equal(rc, AS_EUSAGE);
	assert_int_equal(err.code, AS_EUSAGE);
	assert_null(cfg);
	assert_string_equal(err.msg, msg);
}

#define HEAD "store: sqlite:t.db\ndatasets:\n  addons:\n"

static const char full_yaml[] =
	"store: \"postgres://app:${AS_T_PGPASS}@db/app\"\n"
	"cache: redis://127.0.0.1:6379/0\n"
	"datasets:\n"
	"  addons:\n"
	"    table: addon_rows\n"
	"    mode: incremental\n"
	"    key: [id, region]\n"
	"    columns:\n"
	"      id: {type: integer}\n"
	"      region: text\n"
	"      name: {type: text, path: info.name}\n"
	"      downloads: {type: integer, path: downloadCount}\n"
	"      updated: {type: timestamp}\n"
	"      score: real\n"
	"      active: boolean\n"
	"      meta: json\n"
	"    cursor: updated\n"
	"    history: snapshot\n"
	"    snapshot_columns: [downloads, score]\n"
	"    history_keep: 90d\n"
	"    verify_threshold: 0.95\n"
	"    guard: {max_delete_fraction: 0.25, allow_empty: true, "
	"max_rejects: 7, min_deletes: 3}\n"
	"    reject_file: /tmp/addons.rejects\n"
	"    invalidate: [\"addon:{id}\", \"trending:*\"]\n"
	"    webhook: \"https://hooks.example/${AS_T_HOOK}\"\n"
	"    notify: addons_changed\n"
	"    lease_ttl: 2m\n"
	"    batch_size: \"${AS_T_BATCH}\"\n"
	"    max_record_size: 2MiB\n"
	"    schedule: 15m\n"
	"    source:\n"
	"      http:\n"
	"        url: \"http://127.0.0.1:8080/v1/mods?sig=${AS_T_SIG}\"\n"
	"        params: {gameId: 1, token: \"${AS_T_TOKEN}\", flag: true}\n"
	"        headers: {x-api-key: \"${AS_T_KEY}\", Accept: application/json}\n"
	"        records: data.items\n"
	"        pagination:\n"
	"          style: offset\n"
	"          offset_param: index\n"
	"          limit_param: pageSize\n"
	"          limit: 50\n"
	"          first_page: 0\n"
	"          total_path: pagination.totalCount\n"
	"          total_tolerance: 0.01\n"
	"        concurrency: 8\n"
	"        rate_limit: 600/min\n"
	"        rate_burst: 4\n"
	"        timeout: 10s\n"
	"        deadline: 1h\n"
	"        retry: {attempts: 3, initial: 250ms, max: 5s}\n"
	"        circuit_breaker: {failures: 4}\n"
	"        item_url: http://127.0.0.1:8080/v1/mods/{id}\n"
	"        ca_bundle: /etc/ssl/ca.pem\n"
	"        tls_verify: false\n"
	"  events:\n"
	"    mode: append\n"
	"    key: [tx_hash, log_index]\n"
	"    history_keep: 30\n"
	"    max_record_size: 4096\n"
	"    source:\n"
	"      exec: \"tap-foo --state {state} --who ${AS_T_WHO} $$HOME $5\"\n"
	"      format: singer\n"
	"      stream: logs\n"
	"  users:\n"
	"    mode: scoped\n"
	"    key: id\n"
	"    scope: [user_id]\n"
	"    source: stdin\n"
	"  plain:\n"
	"    key: id\n"
	"    history: scd2\n"
	"    source:\n"
	"      file: /data/plain.jsonl\n";

static void set_full_env(void)
{
	setenv("AS_T_PGPASS", "pw-secret-1", 1);
	setenv("AS_T_HOOK", "hooktok", 1);
	setenv("AS_T_SIG", "s1", 1); /* too short to be redacted */
	setenv("AS_T_TOKEN", "tok-9876", 1);
	setenv("AS_T_KEY", "key-abcdef", 1);
	setenv("AS_T_BATCH", "500", 1);
	setenv("AS_T_WHO", "world", 1);
}

static void test_full_dataset(void **state)
{
	const as_dataset_cfg *ds;
	as_config *cfg;

	(void)state;
	set_full_env();
	cfg = parse_ok(full_yaml);
	assert_string_equal(cfg->path, "t.yml");
	assert_string_equal(cfg->store, "postgres://app:pw-secret-1@db/app");
	assert_string_equal(cfg->cache, "redis://127.0.0.1:6379/0");
	assert_int_equal(cfg->ndatasets, 4);
	ds = as_config_dataset(cfg, "addons");
	assert_ptr_equal(ds, &cfg->datasets[0]);
	assert_string_equal(ds->name, "addons");
	assert_ptr_equal(ds->loc.file, cfg->path);
	assert_int_equal(ds->loc.line, 4);
	assert_int_equal(ds->loc.col, 3);
	assert_string_equal(ds->table, "addon_rows");
	assert_int_equal(ds->mode, AS_MODE_INCREMENTAL);
	assert_int_equal(ds->nkey, 2);
	assert_string_equal(ds->key[0], "id");
	assert_string_equal(ds->key[1], "region");
	assert_int_equal(ds->ncolumns, 8);
	assert_string_equal(ds->columns[0].name, "id");
	assert_int_equal(ds->columns[0].type, AS_TYPE_INTEGER);
	assert_string_equal(ds->columns[0].path, "id");
	assert_int_equal(ds->columns[0].loc.line, 9);
	assert_int_equal(ds->columns[0].loc.col, 7);
	assert_int_equal(ds->columns[1].type, AS_TYPE_TEXT);
	assert_string_equal(ds->columns[2].path, "info.name");
	assert_string_equal(ds->columns[3].name, "downloads");
	assert_string_equal(ds->columns[3].path, "downloadCount");
	assert_int_equal(ds->columns[4].type, AS_TYPE_TIMESTAMP);
	assert_int_equal(ds->columns[5].type, AS_TYPE_REAL);
	assert_int_equal(ds->columns[6].type, AS_TYPE_BOOLEAN);
	assert_int_equal(ds->columns[7].type, AS_TYPE_JSON);
	assert_string_equal(ds->cursor, "updated");
	assert_int_equal(ds->nscope, 0);
	assert_int_equal(ds->history, AS_HISTORY_SNAPSHOT);
	assert_int_equal(ds->nsnapshot_columns, 2);
	assert_string_equal(ds->snapshot_columns[1], "score");
	assert_int_equal(ds->history_keep_runs, 0);
	assert_true(ds->history_keep_ms == 90LL * 86400000);
	assert_true(ds->verify_threshold == 0.95);
	assert_true(ds->guard.max_delete_fraction == 0.25);
	assert_int_equal(ds->guard.allow_empty, 1);
	assert_int_equal(ds->guard.max_rejects, 7);
	assert_int_equal(ds->guard.min_deletes, 3);
	assert_string_equal(ds->reject_file, "/tmp/addons.rejects");
	assert_int_equal(ds->ninvalidate, 2);
	assert_string_equal(ds->invalidate[0], "addon:{id}");
	assert_string_equal(ds->invalidate[1], "trending:*");
	assert_string_equal(ds->webhook, "https://hooks.example/hooktok");
	assert_string_equal(ds->notify, "addons_changed");
	assert_int_equal(ds->lease_ttl_ms, 120000);
	assert_int_equal(ds->batch_size, 500);
	assert_int_equal(ds->max_record_bytes, 2 * 1024 * 1024);
	assert_string_equal(ds->schedule, "15m");
	as_config_free(cfg);
}

static void test_full_http(void **state)
{
	const as_http_cfg *h;
	as_config *cfg;

	(void)state;
	set_full_env();
	cfg = parse_ok(full_yaml);
	assert_int_equal(cfg->datasets[0].source.kind, AS_SOURCE_HTTP);
	assert_int_equal(cfg->datasets[0].source.loc.line, 31);
	h = &cfg->datasets[0].source.http;
	assert_string_equal(h->url, "http://127.0.0.1:8080/v1/mods?sig=s1");
	assert_int_equal(h->nparams, 3);
	assert_string_equal(h->params[0].key, "gameId");
	assert_string_equal(h->params[0].value, "1");
	assert_string_equal(h->params[1].value, "tok-9876");
	assert_string_equal(h->params[2].value, "true");
	assert_int_equal(h->nheaders, 2);
	assert_string_equal(h->headers[0].key, "x-api-key");
	assert_string_equal(h->headers[0].value, "key-abcdef");
	assert_string_equal(h->headers[1].value, "application/json");
	assert_string_equal(h->records, "data.items");
	assert_int_equal(h->style, AS_PAGE_OFFSET);
	assert_string_equal(h->offset_param, "index");
	assert_string_equal(h->limit_param, "pageSize");
	assert_int_equal(h->limit, 50);
	assert_int_equal(h->first_page, 0);
	assert_string_equal(h->total_path, "pagination.totalCount");
	assert_true(h->total_tolerance == 0.01);
	assert_int_equal(h->concurrency, 8);
	assert_true(h->rate_per_sec == 10.0);
	assert_int_equal(h->rate_burst, 4);
	assert_int_equal(h->timeout_ms, 10000);
	assert_int_equal(h->deadline_ms, 3600000);
	assert_int_equal(h->retry_attempts, 3);
	assert_int_equal(h->retry_initial_ms, 250);
	assert_int_equal(h->retry_max_ms, 5000);
	assert_int_equal(h->breaker_failures, 4);
	assert_string_equal(h->item_url, "http://127.0.0.1:8080/v1/mods/{id}");
	assert_string_equal(h->ca_bundle, "/etc/ssl/ca.pem");
	assert_int_equal(h->insecure, 1);
	/* Names of values that came from ${VAR}: the HTTP layer redacts them
	 * (the url's own query parameters first).
	 */
	assert_int_equal(h->nsecrets, 3);
	assert_string_equal(h->secrets[0], "sig");
	assert_string_equal(h->secrets[1], "token");
	assert_string_equal(h->secrets[2], "x-api-key");
	as_config_free(cfg);
}

static void test_full_other_sources(void **state)
{
	const as_dataset_cfg *ev, *users, *plain;
	as_config *cfg;

	(void)state;
	set_full_env();
	cfg = parse_ok(full_yaml);
	ev = as_config_dataset(cfg, "events");
	assert_non_null(ev);
	assert_int_equal(ev->mode, AS_MODE_APPEND);
	assert_string_equal(ev->table, "events");
	assert_int_equal(ev->history_keep_runs, 30);
	assert_int_equal(ev->history_keep_ms, 0);
	assert_int_equal(ev->max_record_bytes, 4096);
	assert_int_equal(ev->source.kind, AS_SOURCE_EXEC);
	assert_int_equal(ev->source.format, AS_FORMAT_SINGER);
	assert_string_equal(ev->source.stream, "logs");
	assert_string_equal(ev->source.command,
			    "tap-foo --state {state} --who world $HOME $5");
	users = as_config_dataset(cfg, "users");
	assert_int_equal(users->mode, AS_MODE_SCOPED);
	assert_int_equal(users->nkey, 1);
	assert_string_equal(users->key[0], "id");
	assert_int_equal(users->nscope, 1);
	assert_string_equal(users->scope[0], "user_id");
	assert_int_equal(users->source.kind, AS_SOURCE_STDIN);
	assert_int_equal(users->source.format, AS_FORMAT_JSONL);
	plain = as_config_dataset(cfg, "plain");
	assert_int_equal(plain->history, AS_HISTORY_SCD2);
	assert_int_equal(plain->source.kind, AS_SOURCE_FILE);
	assert_string_equal(plain->source.path, "/data/plain.jsonl");
	assert_null(as_config_dataset(cfg, "nope"));
	assert_null(as_config_dataset(NULL, "plain"));
	as_config_free(cfg);
}

static void test_secrets_and_redact(void **state)
{
	char msg[256];
	as_config *cfg;

	(void)state;
	set_full_env();
	cfg = parse_ok(full_yaml);
	/* store, webhook, url (too short), params, headers; longest first. */
	assert_int_equal(cfg->nsecret_values, 4);
	assert_string_equal(cfg->secret_values[0], "pw-secret-1");
	assert_string_equal(cfg->secret_values[1], "key-abcdef");
	assert_string_equal(cfg->secret_values[2], "tok-9876");
	assert_string_equal(cfg->secret_values[3], "hooktok");
	snprintf(msg, sizeof(msg),
		 "connect postgres://app:pw-secret-1@db: "
		 "no; key-abcdef tok-9876 tok-9876 s1 world");
	as_config_redact(cfg, msg, sizeof(msg));
	assert_string_equal(msg, "connect postgres://app:***@db: no; *** *** "
				 "*** s1 world");
	as_config_free(cfg);
}

static void test_redact_overlap(void **state)
{
	char msg[64], small[8];
	as_config *cfg;

	(void)state;
	setenv("AS_T_LONG", "abcdef", 1);
	setenv("AS_T_SHORT", "abc", 1);
	cfg = parse_ok("store: \"sqlite:${AS_T_LONG}\"\n"
		       "cache: \"redis://${AS_T_SHORT}\"\n"
		       "datasets: {d: {key: id, source: stdin}}\n");
	assert_int_equal(cfg->nsecret_values, 2);
	strcpy(msg, "x abcdef y abc z abcd abcabc");
	as_config_redact(cfg, msg, sizeof(msg));
	/* The longer secret goes first: no "def" is left behind. */
	assert_string_equal(msg, "x *** y *** z ***d ******");
	/* A buffer without a terminator within cap is cut, then redacted. */
	memcpy(small, "abcdefgh", 8);
	as_config_redact(cfg, small, sizeof(small));
	assert_string_equal(small, "***g");
	as_config_redact(NULL, msg, sizeof(msg));
	assert_string_equal(msg, "x *** y *** z ***d ******");
	as_config_free(cfg);
}

static void test_defaults(void **state)
{
	const as_dataset_cfg *ds;
	const as_http_cfg *h;
	as_config *cfg;

	(void)state;
	cfg = parse_ok("store: sqlite:t.db\n"
		       "datasets:\n"
		       "  a:\n"
		       "    key: id\n"
		       "    source: {http: {url: \"http://x/y\"}}\n");
	assert_null(cfg->cache);
	assert_int_equal(cfg->nsecret_values, 0);
	ds = &cfg->datasets[0];
	assert_string_equal(ds->table, "a");
	assert_int_equal(ds->mode, AS_MODE_FULL);
	assert_int_equal(ds->ncolumns, 0);
	assert_null(ds->columns);
	assert_null(ds->cursor);
	assert_int_equal(ds->history, AS_HISTORY_NONE);
	assert_int_equal(ds->history_keep_runs, 0);
	assert_int_equal(ds->history_keep_ms, 0);
	assert_true(ds->verify_threshold == 0.99);
	assert_true(ds->guard.max_delete_fraction == 0.5);
	assert_int_equal(ds->guard.allow_empty, 0);
	assert_int_equal(ds->guard.max_rejects, 0);
	assert_int_equal(ds->guard.min_deletes, 10);
	assert_string_equal(ds->reject_file, "a.rejects.jsonl");
	assert_int_equal(ds->ninvalidate, 0);
	assert_null(ds->webhook);
	assert_null(ds->notify);
	assert_int_equal(ds->lease_ttl_ms, 60000);
	assert_int_equal(ds->batch_size, 10000);
	assert_int_equal(ds->max_record_bytes, 16 * 1024 * 1024);
	assert_null(ds->schedule);
	assert_int_equal(ds->source.format, AS_FORMAT_JSONL);
	h = &ds->source.http;
	assert_string_equal(h->url, "http://x/y");
	assert_null(h->records);
	assert_int_equal(h->style, AS_PAGE_NONE);
	assert_int_equal(h->limit, 0);
	assert_int_equal(h->first_page, 1);
	assert_true(h->total_tolerance == 0);
	assert_int_equal(h->concurrency, 1);
	assert_true(h->rate_per_sec == 0);
	assert_int_equal(h->rate_burst, 1);
	assert_int_equal(h->timeout_ms, 30000);
	assert_int_equal(h->deadline_ms, 0);
	assert_int_equal(h->retry_attempts, 5);
	assert_int_equal(h->retry_initial_ms, 500);
	assert_int_equal(h->retry_max_ms, 30000);
	assert_int_equal(h->breaker_failures, 10);
	assert_int_equal(h->insecure, 0);
	assert_int_equal(h->nsecrets, 0);
	as_config_free(cfg);
}

static void test_defaults_by_hand(void **state)
{
	as_dataset_cfg ds;

	(void)state;
	memset(&ds, 0xa5, sizeof(ds)); /* defaults must not read garbage */
	as_dataset_cfg_defaults(&ds);
	assert_null(ds.name);
	assert_null(ds.table);
	assert_null(ds.reject_file);
	assert_int_equal(ds.mode, AS_MODE_FULL);
	assert_int_equal(ds.lease_ttl_ms, 60000);
	assert_int_equal(ds.batch_size, 10000);
	assert_int_equal(ds.max_record_bytes, 16 * 1024 * 1024);
	assert_true(ds.verify_threshold == 0.99);
	assert_true(ds.guard.max_delete_fraction == 0.5);
	assert_int_equal(ds.source.http.first_page, 1);
	assert_int_equal(ds.source.http.retry_attempts, 5);
	assert_int_equal(ds.source.http.timeout_ms, 30000);
	ds.name = strdup("x");
	ds.key = calloc(1, sizeof(*ds.key));
	ds.key[0] = strdup("id");
	ds.nkey = 1;
	as_dataset_cfg_clear(&ds); /* LSan reports what it misses */
	assert_null(ds.name);
	assert_int_equal(ds.nkey, 0);
	as_dataset_cfg_clear(NULL);
	as_config_free(NULL);
}

static void test_short_forms(void **state)
{
	const as_dataset_cfg *ds;
	as_config *cfg;

	(void)state;
	cfg = parse_ok("store: sqlite:t.db\n"
		       "datasets:\n"
		       "  s.1-x:\n"
		       "    table: s1\n"
		       "    key: id\n"
		       "    columns: {id: integer, v: {type: text}}\n"
		       "    max_record_size: 512 KiB\n"
		       "    guard: {max_delete_fraction: 1}\n"
		       "    verify_threshold: 1\n"
		       "    source: {stdin: true, format: singer}\n");
	ds = &cfg->datasets[0];
	assert_string_equal(ds->name, "s.1-x");
	assert_string_equal(ds->reject_file, "s.1-x.rejects.jsonl");
	assert_int_equal(ds->columns[0].type, AS_TYPE_INTEGER);
	assert_string_equal(ds->columns[1].path, "v");
	assert_int_equal(ds->max_record_bytes, 512 * 1024);
	assert_true(ds->guard.max_delete_fraction == 1.0);
	assert_true(ds->verify_threshold == 1.0);
	assert_int_equal(ds->source.kind, AS_SOURCE_STDIN);
	assert_int_equal(ds->source.format, AS_FORMAT_SINGER);
	as_config_free(cfg);

	/* A singer source may leave the key to the SCHEMA message. */
	cfg = parse_ok("store: x\ndatasets:\n  t:\n"
		       "    source: {exec: tap, format: singer}\n");
	assert_int_equal(cfg->datasets[0].nkey, 0);
	assert_null(cfg->datasets[0].key);
	as_config_free(cfg);
}

static void test_env_expansion(void **state)
{
	as_config *cfg;

	(void)state;
	setenv("AS_T_DIR", "/srv/data", 1);
	setenv("AS_T_EMPTY", "", 1);
	cfg = parse_ok("store: \"sqlite:${AS_T_DIR}/db$$1${AS_T_EMPTY}\"\n"
		       "datasets:\n"
		       "  a:\n"
		       "    key: id\n"
		       "    batch_size: ${AS_T_BATCH}\n"
		       "    source: {file: \"${AS_T_DIR}/in.jsonl\"}\n");
	assert_string_equal(cfg->store, "sqlite:/srv/data/db$1");
	assert_string_equal(cfg->datasets[0].source.path, "/srv/data/in.jsonl");
	assert_int_equal(cfg->datasets[0].batch_size, 500);
	/* Only store/cache/http/webhook values are secrets, also as they
	 * appear percent-encoded in a URL. */
	assert_int_equal(cfg->nsecret_values, 2);
	assert_string_equal(cfg->secret_values[0], "%2Fsrv%2Fdata");
	assert_string_equal(cfg->secret_values[1], "/srv/data");
	as_config_free(cfg);
}

static void test_durations(void **state)
{
	(void)state;
	assert_int_equal(as_parse_duration_ms("500ms"), 500);
	assert_int_equal(as_parse_duration_ms("30s"), 30000);
	assert_int_equal(as_parse_duration_ms("5m"), 300000);
	assert_int_equal(as_parse_duration_ms("2h"), 7200000);
	assert_true(as_parse_duration_ms("90d") == 7776000000LL);
	assert_int_equal(as_parse_duration_ms("45"), 45000);
	assert_int_equal(as_parse_duration_ms("0s"), 0);
	assert_true(as_parse_duration_ms("106751991167d") ==
		    106751991167LL * 86400000);
	assert_int_equal(as_parse_duration_ms("106751991168d"), -1);
	assert_int_equal(as_parse_duration_ms("99999999999999999999"), -1);
	assert_int_equal(as_parse_duration_ms("-1s"), -1);
	assert_int_equal(as_parse_duration_ms("+1s"), -1);
	assert_int_equal(as_parse_duration_ms("1.5s"), -1);
	assert_int_equal(as_parse_duration_ms("5x"), -1);
	assert_int_equal(as_parse_duration_ms("5 s"), -1);
	assert_int_equal(as_parse_duration_ms("s"), -1);
	assert_int_equal(as_parse_duration_ms(""), -1);
	assert_int_equal(as_parse_duration_ms(NULL), -1);
}

static void test_rates(void **state)
{
	(void)state;
	assert_true(as_parse_rate("10/s") == 10.0);
	assert_true(as_parse_rate("10/sec") == 10.0);
	assert_true(as_parse_rate("600/min") == 10.0);
	assert_true(as_parse_rate("120/m") == 2.0);
	assert_true(as_parse_rate("3600/h") == 1.0);
	assert_true(as_parse_rate("0.5/s") == 0.5);
	assert_true(as_parse_rate("1.5/min") == 1.5 / 60);
	assert_true(as_parse_rate("0/s") == -1);
	assert_true(as_parse_rate("-1/s") == -1);
	assert_true(as_parse_rate("10") == -1);
	assert_true(as_parse_rate("10/y") == -1);
	assert_true(as_parse_rate("10/") == -1);
	assert_true(as_parse_rate("/s") == -1);
	assert_true(as_parse_rate("./s") == -1);
	assert_true(as_parse_rate("1.2.3/s") == -1);
	assert_true(as_parse_rate("1e3/s") == -1);
	assert_true(as_parse_rate("inf/s") == -1);
	assert_true(as_parse_rate(NULL) == -1);
}

static void test_names(void **state)
{
	(void)state;
	assert_string_equal(as_mode_name(AS_MODE_FULL), "full");
	assert_string_equal(as_mode_name(AS_MODE_INCREMENTAL), "incremental");
	assert_string_equal(as_mode_name(AS_MODE_SCOPED), "scoped");
	assert_string_equal(as_mode_name(AS_MODE_APPEND), "append");
	assert_string_equal(as_type_name(AS_TYPE_INTEGER), "integer");
	assert_string_equal(as_type_name(AS_TYPE_REAL), "real");
	assert_string_equal(as_type_name(AS_TYPE_TEXT), "text");
	assert_string_equal(as_type_name(AS_TYPE_BOOLEAN), "boolean");
	assert_string_equal(as_type_name(AS_TYPE_JSON), "json");
	assert_string_equal(as_type_name(AS_TYPE_TIMESTAMP), "timestamp");
	assert_string_equal(as_type_name(AS_TYPE_AUTO), "auto");
}

/* ---- one test per error class the brief names ----------------------- */

static void test_err_unknown_key(void **state)
{
	(void)state;
	expect_error(HEAD "    tabel: x\n    key: id\n    source: stdin\n",
		     "t.yml:4:5: unknown key 'tabel' in dataset 'addons' "
		     "(did you mean 'table'?)");
	expect_error("store: x\ndataset: {}\n",
		     "t.yml:2:1: unknown key 'dataset' at top level "
		     "(did you mean 'datasets'?)");
	expect_error(HEAD "    key: id\n    zzzz: 1\n    source: stdin\n",
		     "t.yml:5:5: unknown key 'zzzz' in dataset 'addons'");
}

static void test_err_unknown_nested(void **state)
{
	static const struct {
		const char *yaml, *msg;
	} cases[] = {
		{HEAD "    key: id\n    columns: {id: {type: text, pth: a}}\n"
		      "    source: stdin\n",
		 "t.yml:5:32: unknown key 'pth' in column 'id' of dataset "
		 "'addons' (did you mean 'path'?)"},
		{HEAD "    key: id\n    guard: {allow_empt: true}\n"
		      "    source: stdin\n",
		 "t.yml:5:13: unknown key 'allow_empt' in guard of dataset "
		 "'addons' (did you mean 'allow_empty'?)"},
		{HEAD
		 "    key: id\n    source: {stdin: true, fromat: singer}\n",
		 "t.yml:5:27: unknown key 'fromat' in source of dataset "
		 "'addons' (did you mean 'format'?)"},
		{HEAD "    key: id\n    source: {http: {url: http://h, "
		      "header: {}}}\n",
		 "t.yml:5:36: unknown key 'header' in http source of dataset "
		 "'addons' (did you mean 'headers'?)"},
		{HEAD "    key: id\n    source: {http: {url: http://h, "
		      "pagination: {styl: none}}}\n",
		 "t.yml:5:49: unknown key 'styl' in pagination of dataset "
		 "'addons' (did you mean 'style'?)"},
		{HEAD "    key: id\n    source: {http: {url: http://h, "
		      "retry: {attempt: 2}}}\n",
		 "t.yml:5:44: unknown key 'attempt' in retry of dataset "
		 "'addons' (did you mean 'attempts'?)"},
		{HEAD "    key: id\n    source: {http: {url: http://h, "
		      "circuit_breaker: {failure: 2}}}\n",
		 "t.yml:5:54: unknown key 'failure' in circuit_breaker of "
		 "dataset 'addons' (did you mean 'failures'?)"},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		expect_error(cases[i].yaml, cases[i].msg);
}

static void test_err_wrong_type(void **state)
{
	(void)state;
	expect_error(HEAD
		     "    key: id\n    source: stdin\n    batch_size: many\n",
		     "t.yml:6:17: 'batch_size' in dataset 'addons' must be an "
		     "integer >= 1, got 'many'");
	expect_error(HEAD "    key: id\n    source: stdin\n    batch_size: 0\n",
		     "t.yml:6:17: 'batch_size' in dataset 'addons' must be an "
		     "integer >= 1, got '0'");
	expect_error(HEAD "    key: id\n    source: stdin\n    guard: [1]\n",
		     "t.yml:6:12: 'guard' in dataset 'addons' must be a "
		     "mapping, got a list");
	expect_error(HEAD "    key: id\n    source: stdin\n"
			  "    guard: {allow_empty: yes}\n",
		     "t.yml:6:26: 'allow_empty' in guard of dataset 'addons' "
		     "must be true or false, got 'yes'");
	expect_error(HEAD "    key: id\n    source: stdin\n"
			  "    verify_threshold: 0\n",
		     "t.yml:6:23: 'verify_threshold' in dataset 'addons' must "
		     "be a number above 0 and at most 1, got '0'");
	expect_error(HEAD "    key: id\n    source: stdin\n    mode: ful\n",
		     "t.yml:6:11: 'mode' in dataset 'addons' must be one of "
		     "full, incremental, scoped, append, got 'ful' "
		     "(did you mean 'full'?)");
	expect_error(HEAD "    key: id\n    columns: {id: txt}\n"
			  "    source: stdin\n",
		     "t.yml:5:19: 'type' in column 'id' of dataset 'addons' "
		     "must be one of integer, real, text, boolean, json, "
		     "timestamp, got 'txt' (did you mean 'text'?)");
	expect_error(
		HEAD "    key: id\n    source: stdin\n"
		     "    max_record_size: 16MB\n",
		"t.yml:6:22: 'max_record_size' in dataset 'addons' must "
		"be a size from 1 byte to 1GiB, such as 16MiB, got '16MB'");
	expect_error(HEAD "    key: {a: 1}\n    source: stdin\n",
		     "t.yml:4:10: 'key' in dataset 'addons' must be a string "
		     "or a list of strings, got a mapping");
}

static void test_err_missing(void **state)
{
	(void)state;
	expect_error("datasets:\n  addons:\n    key: id\n    source: stdin\n",
		     "t.yml:1:1: missing required key 'store' at top level");
	expect_error("# comment\n\nstore: x\n",
		     "t.yml:3:1: missing required key 'datasets' at top level");
	expect_error("store: x\ndatasets:\n  addons:\n    key: id\n",
		     "t.yml:3:3: missing required key 'source' in dataset "
		     "'addons'");
	expect_error("store:\ndatasets: {a: {key: id, source: stdin}}\n",
		     "t.yml:1:1: 'store' at top level has no value");
	expect_error(
		HEAD "    source: stdin\n",
		"t.yml:3:3: missing required key 'key' in dataset 'addons' "
		"(only a singer source may leave it out)");
	expect_error(HEAD "    key: id\n    source: {http: {records: a}}\n",
		     "t.yml:5:14: missing required key 'url' in http source of "
		     "dataset 'addons'");
	expect_error(HEAD "    key: id\n    columns: {id: {path: x}}\n"
			  "    source: stdin\n",
		     "t.yml:5:15: missing required key 'type' in column 'id' "
		     "of dataset 'addons'");
	expect_error("store: x\ndatasets: {}\n",
		     "t.yml:2:11: 'datasets' at top level must not be empty");
	expect_error("", "t.yml:1:1: configuration is empty: it needs 'store' "
			 "and 'datasets'");
	expect_error("- a\n", "t.yml:1:1: the top level must be a mapping "
			      "with 'store' and 'datasets'");
}

static void test_err_modes(void **state)
{
	(void)state;
	expect_error(HEAD
		     "    mode: incremental\n    key: id\n    source: stdin\n",
		     "t.yml:4:11: mode 'incremental' in dataset 'addons' "
		     "requires 'cursor' (only a singer source may leave it "
		     "out)");
	expect_error(HEAD "    mode: scoped\n    key: id\n    source: stdin\n",
		     "t.yml:4:11: mode 'scoped' in dataset 'addons' requires "
		     "'scope'");
	expect_error(HEAD "    key: id\n    scope: u\n    source: stdin\n",
		     "t.yml:5:5: 'scope' in dataset 'addons' is only valid "
		     "with mode: scoped");
	expect_error(HEAD "    key: []\n    source: stdin\n",
		     "t.yml:4:10: 'key' in dataset 'addons' must not be empty");
}

static void test_err_columns(void **state)
{
	(void)state;
	expect_error(HEAD "    key: [id, slug]\n    columns: {id: integer}\n"
			  "    source: stdin\n",
		     "t.yml:4:15: key column 'slug' in dataset 'addons' is not "
		     "declared in 'columns'");
	expect_error(
		HEAD "    mode: incremental\n    key: id\n    cursor: ts\n"
		     "    columns: {id: integer}\n    source: stdin\n",
		"t.yml:6:13: cursor column 'ts' in dataset 'addons' is not "
		"declared in 'columns'");
	expect_error(HEAD
		     "    key: id\n    columns: {id: integer, bad-name: text}\n"
		     "    source: stdin\n",
		     "t.yml:5:28: column name 'bad-name' is not a plain "
		     "identifier (letters, digits and '_', not starting with a "
		     "digit, at most 63 characters)");
	expect_error(HEAD "    key: _atomsync_run\n    source: stdin\n",
		     "t.yml:4:10: column name '_atomsync_run' is reserved: "
		     "names starting with _atomsync belong to atomsync");
	expect_error(HEAD "    key: id\n    columns: {id: integer, ID: text}\n"
			  "    source: stdin\n",
		     "t.yml:5:28: column 'ID' in dataset 'addons' clashes with "
		     "column 'id' (names ignore case)");
	expect_error(
		"store: x\ndatasets:\n  my-ds:\n    key: id\n"
		"    source: stdin\n",
		"t.yml:3:3: dataset name 'my-ds' is not a valid table name; "
		"set 'table'");
	expect_error("store: x\ndatasets:\n  a b:\n    key: id\n"
		     "    source: stdin\n",
		     "t.yml:3:3: dataset name 'a b' may only hold letters, "
		     "digits, '_', '.' and '-' (at most 128)");
	expect_error("store: x\ndatasets:\n  a: {key: id, source: stdin}\n"
		     "  b: {key: id, table: A, source: stdin}\n",
		     "t.yml:4:23: table 'A' of dataset 'b' is already used by "
		     "dataset 'a'");
}

static void test_err_yaml(void **state)
{
	(void)state;
	expect_error(HEAD "    key: id\n    source: stdin\n    key: name\n",
		     "t.yml:6:5: duplicate key 'key' (first at line 4)");
	expect_error("store: x\ndatasets: {a: {key: id, key: id}}\n",
		     "t.yml:2:25: duplicate key 'key' (first at line 2)");
	expect_error("store: x\ndatasets: [a, b\n",
		     "t.yml:3:1: flow sequence without a closing bracket");
	expect_error("store: \"x\n",
		     "t.yml:1:9: double-quoted scalar without closing quote");
	expect_error("store: x\n---\nstore: y\n",
		     "t.yml:2:1: only one YAML document is allowed");
	expect_error("store: &s x\ncache: *s\n",
		     "t.yml:1:9: YAML anchors and aliases are not supported");
	expect_error("store: x\ncache: *s\n",
		     "t.yml:2:9: YAML anchors and aliases are not supported");
	expect_error("store: x\ndatasets: &d {a: 1}\n",
		     "t.yml:2:12: YAML anchors and aliases are not supported");
}

/* libfyaml must not print anything itself: the one line is ours. */
static void test_err_yaml_quiet(void **state)
{
	char path[] = "/tmp/test_config_stderrXXXXXX";
	int fd = mkstemp(path), saved;
	struct stat st;

	(void)state;
	assert_true(fd >= 0);
	fflush(stderr);
	saved = dup(2);
	dup2(fd, 2);
	expect_error("a: [1\n", "t.yml:2:1: flow sequence without a closing "
				"bracket");
	expect_error("a: 1\n  b: 2\n",
		     "t.yml:1:4: invalid multiline plain key");
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(st.st_size, 0);
	close(fd);
	unlink(path);
}

static void test_err_values(void **state)
{
	(void)state;
	expect_error(HEAD "    key: id\n    source: stdin\n    lease_ttl: 5x\n",
		     "t.yml:6:16: 'lease_ttl' in dataset 'addons' must be a "
		     "duration such as 500ms, 30s, 5m, 2h or 90d, got '5x'");
	expect_error(HEAD
		     "    key: id\n    source: stdin\n    lease_ttl: 500ms\n",
		     "t.yml:6:16: 'lease_ttl' in dataset 'addons' must be at "
		     "least 1s");
	expect_error(HEAD "    key: id\n    source: stdin\n    schedule: 0s\n",
		     "t.yml:6:15: 'schedule' in dataset 'addons' must be a "
		     "duration above 0 such as 30s, 15m or 1h, or a cron "
		     "expression such as \"0 * * * *\", got '0s'");
	expect_error(HEAD "    key: id\n    source: stdin\n"
			  "    history_keep: -3\n",
		     "t.yml:6:19: 'history_keep' in dataset 'addons' must be a "
		     "number of runs (e.g. 30) or a duration (e.g. 90d), got "
		     "'-3'");
	expect_error(
		"store: x\ndatasets:\n  api:\n    key: id\n    source:\n"
		"      http:\n        url: http://h/x\n"
		"        rate_limit: 10/y\n",
		"t.yml:8:21: 'rate_limit' in http source of dataset 'api' "
		"must be a rate such as 10/s, 600/min or 3600/h, got '10/y'");
	expect_error(
		HEAD "    key: id\n    source: {http: {url: ftp://h}}\n",
		"t.yml:5:26: 'url' in http source of dataset 'addons' must "
		"start with http:// or https://");
	expect_error(HEAD "    key: id\n    source: {http: {url: http://h, "
			  "concurrency: 65}}\n",
		     "t.yml:5:49: 'concurrency' in http source of dataset "
		     "'addons' must be an integer from 1 to 64, got '65'");
	expect_error(
		HEAD "    key: id\n    source: {http: {url: http://h, "
		     "retry: {initial: 10s, max: 1s}}}\n",
		"t.yml:5:63: 'max' in retry of dataset 'addons' must be at "
		"least 'initial'");
	expect_error(HEAD "    key: id\n    invalidate: [\"a:{id}\"]\n"
			  "    source: stdin\n",
		     "t.yml:5:5: 'invalidate' in dataset 'addons' needs a "
		     "top-level 'cache'");
}

static void test_err_env(void **state)
{
	(void)state;
	unsetenv("AS_T_UNSET_VAR");
	expect_error(
		"store: \"${AS_T_UNSET_VAR}\"\n",
		"t.yml:1:9: environment variable AS_T_UNSET_VAR is not set");
	expect_error(HEAD
		     "    key: id\n    source:\n      http:\n"
		     "        url: http://h\n"
		     "        headers: {x-api-key: \"${AS_T_UNSET_VAR}\"}\n",
		     "t.yml:8:31: environment variable AS_T_UNSET_VAR is not "
		     "set");
	expect_error("store: \"${AS_T_UNSET\"\n",
		     "t.yml:1:9: unterminated '${' (write $$ for a literal $)");
	expect_error("store: \"${1X}\"\n",
		     "t.yml:1:9: invalid variable reference '${1X}'");
}

static void test_err_sources(void **state)
{
	(void)state;
	expect_error(
		HEAD "    key: id\n    source:\n      file: a.jsonl\n"
		     "      exec: cat a.jsonl\n",
		"t.yml:7:7: 'exec' in source of dataset 'addons' conflicts "
		"with 'file': give exactly one of file, stdin, exec, http");
	expect_error(HEAD "    key: id\n    source: {format: jsonl}\n",
		     "t.yml:5:5: source in dataset 'addons' needs one of "
		     "'file', 'stdin', 'exec' or 'http'");
	expect_error(HEAD "    key: id\n    source: {stdin: false}\n",
		     "t.yml:5:21: 'stdin' in source of dataset 'addons' must "
		     "be true");
	expect_error(HEAD "    key: id\n    source: sdtin\n",
		     "t.yml:5:13: 'source' in dataset 'addons' must be a "
		     "mapping or 'stdin', got 'sdtin'");
	expect_error(
		HEAD "    key: id\n    source: {http: {url: http://h}, "
		     "format: singer}\n",
		"t.yml:5:45: format 'singer' in source of dataset 'addons' "
		"is only valid for exec, file and stdin sources");
	expect_error(HEAD "    key: id\n    source: {file: a, stream: s}\n",
		     "t.yml:5:23: 'stream' in source of dataset 'addons' needs "
		     "format: singer");
	expect_error(HEAD "    key: id\n    source: {http: {url: http://h, "
			  "pagination: {style: offset, limit: 5}}}\n",
		     "t.yml:5:56: pagination style 'offset' in pagination of "
		     "dataset 'addons' needs 'offset_param'");
	expect_error(HEAD "    key: id\n    source: {http: {url: http://h, "
			  "pagination: {style: cursor, cursor_param: c}}}\n",
		     "t.yml:5:56: pagination style 'cursor' in pagination of "
		     "dataset 'addons' needs 'cursor_path' or "
		     "'cursor_from_record'");
	expect_error(HEAD "    key: id\n    source: {http: {url: http://h, "
			  "pagination: {style: cursor, cursor_path: c}}}\n",
		     "t.yml:5:56: pagination style 'cursor' in pagination of "
		     "dataset 'addons' needs 'cursor_param' (or {page_cursor} "
		     "in the url, a param or the body)");
	expect_error(
		HEAD "    key: id\n    source: {http: {url: http://h, "
		     "records: data, record_key_as: id}}\n",
		"t.yml:5:66: 'record_key_as' in http source of dataset "
		"'addons' needs records keyed by id ('records: items.*' or "
		"'records_from: values')");
	expect_error(
		HEAD "    key: id\n    source: {http: {url: http://h, "
		     "partitions: {param: c}}}\n",
		"t.yml:5:48: partitions in http source of dataset "
		"'addons' needs 'param' (a name) and 'values' (a non-empty "
		"list)");
	expect_error(HEAD "    key: id\n    source: {http: {url: http://h, "
			  "error_retry: [ratelimited]}}\n",
		     "t.yml:5:49: 'error_retry' in http source of dataset "
		     "'addons' needs 'error_path'");
	expect_error(HEAD "    key: id\n    source: {http: {url: http://h, "
			  "records: a.*.b}}\n",
		     "t.yml:5:45: 'records' in http source of dataset 'addons' "
		     "may hold '*' only as its last part ('items.*')");
	expect_error(HEAD "    key: id\n    source: {http: {url: http://h, "
			  "body: {a: 1}}}\n",
		     "t.yml:5:36: 'body' in http source of dataset 'addons' "
		     "needs method: POST");
	expect_error(HEAD "    key: id\n    source: {http: {url: http://h, "
			  "pagination: {style: cursor, cursor_param: c, "
			  "cursor_path: a, cursor_from_record: id}}}\n",
		     "t.yml:5:117: 'cursor_from_record' in pagination of "
		     "dataset 'addons' conflicts with 'cursor_path': give one "
		     "of them");
	expect_error(HEAD "    key: id\n    source: {http: {url: http://h, "
			  "pagination: {style: page, page_param: p, "
			  "cursor_from_record: id}}}\n",
		     "t.yml:5:97: 'cursor_from_record' in pagination of "
		     "dataset 'addons' needs style: cursor");
	expect_error(HEAD "    key: id\n    source: {http: {url: http://h, "
			  "pagination: {style: none, has_more_path: more}}}\n",
		     "t.yml:5:77: 'has_more_path' in pagination of dataset "
		     "'addons' needs a pagination style other than 'none'");
	expect_error(HEAD "    key: id\n    source: {http: {url: http://h, "
			  "headers: {\"a b\": x}}}\n",
		     "t.yml:5:47: 'a b' in http source of dataset 'addons' is "
		     "not a valid header name");
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

static void test_load_file(void **state)
{
	char dir[] = "/tmp/test_configXXXXXX", path[64], want[256];
	as_config *cfg = NULL;
	as_error err;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/atomsync.yml", dir);
	write_file(path, "store: sqlite:t.db\n"
			 "datasets:\n"
			 "  rel: {key: id, source: {file: data/in.jsonl}}\n"
			 "  abs: {key: id, source: {file: /abs/in.jsonl}}\n");
	as_error_clear(&err);
	assert_int_equal(as_config_load(&cfg, path, &err), 0);
	assert_string_equal(cfg->path, path);
	snprintf(want, sizeof(want), "%s/data/in.jsonl", dir);
	assert_string_equal(cfg->datasets[0].source.path, want);
	assert_string_equal(cfg->datasets[1].source.path, "/abs/in.jsonl");
	assert_ptr_equal(cfg->datasets[1].loc.file, cfg->path);
	as_config_free(cfg);

	/* Errors carry the path that was given. */
	write_file(path, "store: x\ndatasets: {a: {key: id, source: stdin, "
			 "mode: x}}\n");
	assert_int_equal(as_config_load(&cfg, path, &err), AS_EUSAGE);
	assert_null(cfg);
	snprintf(want, sizeof(want),
		 "%s:2:46: 'mode' in dataset 'a' must be "
		 "one of full, incremental, scoped, append, got 'x'",
		 path);
	assert_string_equal(err.msg, want);
	unlink(path);

	assert_int_equal(as_config_load(&cfg, path, &err), AS_EUSAGE);
	assert_null(cfg);
	snprintf(want, sizeof(want), "%s: %s", path, strerror(ENOENT));
	assert_string_equal(err.msg, want);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_full_dataset),
		cmocka_unit_test(test_full_http),
		cmocka_unit_test(test_full_other_sources),
		cmocka_unit_test(test_secrets_and_redact),
		cmocka_unit_test(test_redact_overlap),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_defaults_by_hand),
		cmocka_unit_test(test_short_forms),
		cmocka_unit_test(test_env_expansion),
		cmocka_unit_test(test_durations),
		cmocka_unit_test(test_rates),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_err_unknown_key),
		cmocka_unit_test(test_err_unknown_nested),
		cmocka_unit_test(test_err_wrong_type),
		cmocka_unit_test(test_err_missing),
		cmocka_unit_test(test_err_modes),
		cmocka_unit_test(test_err_columns),
		cmocka_unit_test(test_err_yaml),
		cmocka_unit_test(test_err_yaml_quiet),
		cmocka_unit_test(test_err_values),
		cmocka_unit_test(test_err_env),
		cmocka_unit_test(test_err_sources),
		cmocka_unit_test(test_load_file),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
