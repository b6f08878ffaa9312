/*
 * Unit tests of effects/: `invalidate:` templates (columns, patterns, fixed
 * keys, escaped braces, errors), the cache URL (TCP, unix sockets, AUTH,
 * db, timeouts, redaction), payload JSON (escaping, invalid UTF-8, the
 * split into events) and the webhook's display of a URL without secrets.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "effects/outbox.h"
#include "effects/redis.h"
#include "effects/webhook.h"

/* ---- templates ---- */

static void test_tpl_parts(void **state)
{
	as_tpl t;
	as_error err;

	(void)state;
	assert_int_equal(as_tpl_parse(&t, "game:{id}:{slug}", &err), 0);
	assert_false(t.pattern);
	assert_false(t.fixed);
	assert_int_equal(t.nparts, 4);
	assert_string_equal(t.parts[0].text, "game:");
	assert_false(t.parts[0].column);
	assert_string_equal(t.parts[1].text, "id");
	assert_true(t.parts[1].column);
	assert_string_equal(t.parts[2].text, ":");
	assert_string_equal(t.parts[3].text, "slug");
	as_tpl_free(&t);

	assert_int_equal(as_tpl_parse(&t, "cart:{{{user_id}}}", &err), 0);
	assert_int_equal(t.nparts, 3);
	assert_string_equal(t.parts[0].text, "cart:{");
	assert_string_equal(t.parts[1].text, "user_id");
	assert_string_equal(t.parts[2].text, "}");
	as_tpl_free(&t);

	/* glob characters in a key template are plain text of the key */
	assert_int_equal(as_tpl_parse(&t, "img[{id}]*", &err), 0);
	assert_false(t.pattern);
	as_tpl_free(&t);
}

static void test_tpl_patterns_and_fixed(void **state)
{
	static const char *pats[] = {"catalog:*", "home:page:?", "x[ab]"};
	as_tpl t;
	as_error err;

	(void)state;
	for (size_t i = 0; i < 3; i++) {
		assert_int_equal(as_tpl_parse(&t, pats[i], &err), 0);
		assert_true(t.pattern);
		assert_false(t.fixed);
		as_tpl_free(&t);
	}
	assert_int_equal(as_tpl_parse(&t, "home", &err), 0);
	assert_true(t.fixed);
	assert_string_equal(t.parts[0].text, "home");
	as_tpl_free(&t);
}

static void test_tpl_errors(void **state)
{
	static const char *bad[] = {"", "game:{id", "game:{}", "game:id}",
				    "a:{b{c}"};
	as_tpl t;
	as_error err;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		as_error_clear(&err);
		assert_int_equal(as_tpl_parse(&t, bad[i], &err), AS_EUSAGE);
		assert_int_equal(t.nparts, 0);
	}
}

static void test_tpls_resolve(void **state)
{
	as_col cols[3] = {{"id", NULL, AS_TYPE_INTEGER, AS_COL_KEY, 0},
			  {"slug", "slug", AS_TYPE_TEXT, 0, 1},
			  {"price", "price", AS_TYPE_REAL, 0, 1}};
	as_table t;
	as_dataset_cfg ds;
	char *inv[2] = {"p:{price}:{id}", "slugs:*"};
	char *bad[1] = {"x:{nope}"};
	as_tpl *v;
	size_t n;
	as_error err;

	(void)state;
	memset(&t, 0, sizeof(t));
	memset(&ds, 0, sizeof(ds));
	t.dataset = "games";
	t.cols = cols;
	t.ncols = 3;
	t.nkey = 1;
	ds.name = "games";
	ds.invalidate = inv;
	ds.ninvalidate = 2;
	assert_int_equal(as_tpls_load(&ds, &t, &v, &n, &err), 0);
	assert_int_equal(n, 2);
	assert_int_equal(v[0].parts[1].index, 2);
	assert_int_equal(v[0].parts[3].index, 0);
	assert_true(v[1].pattern);
	as_tpls_free(v, n);
	ds.invalidate = bad;
	ds.ninvalidate = 1;
	as_error_clear(&err);
	assert_int_equal(as_tpls_load(&ds, &t, &v, &n, &err), AS_EUSAGE);
	assert_non_null(strstr(err.msg, "no column 'nope'"));
	assert_non_null(strstr(err.msg, "id, slug, price"));
	assert_int_equal(
		as_outbox_check(&ds, &t, "sqlite", "redis://h/0", &err),
		AS_EUSAGE);
	ds.ninvalidate = 0;
	ds.notify = "ch";
	assert_int_equal(as_outbox_check(&ds, &t, "sqlite", NULL, &err),
			 AS_EUSAGE);
	assert_int_equal(as_outbox_check(&ds, &t, "postgres", NULL, &err), 0);
}

/* ---- the cache URL ---- */

static void test_url_tcp(void **state)
{
	as_redis_url u;
	as_error err;

	(void)state;
	assert_int_equal(
		as_redis_url_parse(&u,
				   "redis://alice:p%40ss@cache.local:6380/4"
				   "?timeout=500ms",
				   &err),
		0);
	assert_string_equal(u.host, "cache.local");
	assert_int_equal(u.port, 6380);
	assert_int_equal(u.db, 4);
	assert_string_equal(u.user, "alice");
	assert_string_equal(u.password, "p@ss");
	assert_int_equal(u.connect_timeout_ms, 500);
	assert_int_equal(u.command_timeout_ms, 500);
	assert_null(strstr(u.display, "p%40ss"));
	assert_null(strstr(u.display, "alice"));
	assert_string_equal(u.display, "redis://***@cache.local:6380/4");
	as_redis_url_free(&u);

	assert_int_equal(as_redis_url_parse(&u, "redis://127.0.0.1", &err), 0);
	assert_int_equal(u.port, 6379);
	assert_int_equal(u.db, 0);
	assert_null(u.password);
	assert_int_equal(u.command_timeout_ms, 2000);
	as_redis_url_free(&u);

	assert_int_equal(
		as_redis_url_parse(&u,
				   "redis://:onlypw@[::1]:7000?"
				   "connect_timeout=1s&command_timeout=3s",
				   &err),
		0);
	assert_string_equal(u.host, "::1");
	assert_int_equal(u.port, 7000);
	assert_null(u.user);
	assert_string_equal(u.password, "onlypw");
	assert_int_equal(u.connect_timeout_ms, 1000);
	assert_int_equal(u.command_timeout_ms, 3000);
	as_redis_url_free(&u);
}

static void test_url_unix(void **state)
{
	as_redis_url u;
	as_error err;

	(void)state;
	assert_int_equal(as_redis_url_parse(&u,
					    "unix:///run/redis/redis.sock?db=2"
					    "&password=pw",
					    &err),
			 0);
	assert_null(u.host);
	assert_string_equal(u.path, "/run/redis/redis.sock");
	assert_int_equal(u.db, 2);
	assert_string_equal(u.password, "pw");
	assert_string_equal(u.display, "unix:///run/redis/redis.sock");
	as_redis_url_free(&u);
	assert_int_equal(
		as_redis_url_parse(&u, "redis+unix://bob:pw@/tmp/r.sock", &err),
		0);
	assert_string_equal(u.path, "/tmp/r.sock");
	assert_string_equal(u.user, "bob");
	as_redis_url_free(&u);
}

static void test_url_errors(void **state)
{
	static const char *bad[] = {"",
				    "http://x",
				    "rediss://h:1/0",
				    "redis://h:0/0",
				    "redis://h:99999",
				    "redis://h/x",
				    "unix://rel.sock",
				    "redis://h/0?timeout=soon",
				    "redis://h/0?tls=1",
				    "redis://h/0?db"};
	as_redis_url u;
	as_error err;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		as_error_clear(&err);
		assert_int_equal(as_redis_url_parse(&u, bad[i], &err),
				 AS_EUSAGE);
	}
	as_error_clear(&err);
	as_redis_url_parse(&u, "redis://u:hunter2@h:1/0?timeout=x", &err);
	assert_null(strstr(err.msg, "hunter2"));
}

/* ---- payloads ---- */

static void test_payload_json(void **state)
{
	as_outbox_summary s = {"games", 7, "sync", 1, 2, 3};
	as_tpl tpls[2];
	as_outbox_plan plan;
	as_payload p;
	as_error err;
	json_t *j;

	(void)state;
	memset(&plan, 0, sizeof(plan));
	assert_int_equal(as_tpl_parse(&tpls[0], "game:{id}", &err), 0);
	assert_int_equal(as_tpl_parse(&tpls[1], "home:*", &err), 0);
	plan.tpls = tpls;
	plan.ntpls = 2;
	assert_int_equal(as_payload_begin(&p, &s, &plan, 1, &err), 0);
	assert_int_equal(as_payload_add_key(&p, "a\"b\\c", 5, &err), 0);
	assert_int_equal(as_payload_add_key(&p, "tab\there", 8, &err), 0);
	assert_int_equal(as_payload_add_key(&p, "caf\xc3\xa9", 5, &err), 0);
	assert_int_equal(as_payload_add_key(&p, "bad\xff", 4, &err),
			 0); /* skipped */
	assert_int_equal(as_payload_add_key(&p, "z", 1, &err), 0);
	assert_int_equal(as_payload_end(&p, &err), 0);
	j = json_loads(as_buf_cstr(&p.buf), 0, NULL);
	assert_non_null(j);
	assert_int_equal(json_integer_value(json_object_get(j, "keys_count")),
			 4);
	assert_int_equal(json_array_size(json_object_get(j, "keys")), 4);
	assert_string_equal(json_string_value(json_array_get(
				    json_object_get(j, "keys"), 0)),
			    "a\"b\\c");
	assert_string_equal(json_string_value(json_array_get(
				    json_object_get(j, "keys"), 3)),
			    "z");
	assert_string_equal(json_string_value(json_array_get(
				    json_object_get(j, "patterns"), 0)),
			    "home:*");
	assert_int_equal(json_integer_value(json_object_get(
				 json_object_get(j, "counts"), "deleted")),
			 3);
	assert_int_equal(json_integer_value(json_object_get(j, "run_id")), 7);
	json_decref(j);
	assert_false(as_payload_full(&p));
	p.nkeys = AS_OUTBOX_MAX_KEYS;
	assert_true(as_payload_full(&p));
	as_payload_free(&p);

	/* later parts carry no patterns */
	assert_int_equal(as_payload_begin(&p, &s, &plan, 0, &err), 0);
	assert_int_equal(as_payload_end(&p, &err), 0);
	j = json_loads(as_buf_cstr(&p.buf), 0, NULL);
	assert_int_equal(json_array_size(json_object_get(j, "patterns")), 0);
	json_decref(j);
	as_payload_free(&p);

	/* the plan's caps bound a payload */
	plan.max_keys = 2;
	assert_int_equal(as_payload_begin(&p, &s, &plan, 0, &err), 0);
	assert_int_equal(as_payload_add_key(&p, "a", 1, &err), 0);
	assert_false(as_payload_full(&p));
	assert_int_equal(as_payload_add_key(&p, "b", 1, &err), 0);
	assert_true(as_payload_full(&p));
	as_payload_free(&p);
	as_tpl_free(&tpls[0]);
	as_tpl_free(&tpls[1]);
}

/* The engine's plan: templates resolved in the table, webhook and notify
 * as the dataset says, before set when a template names a non-key column;
 * a dataset without effects makes an empty plan. */
static void test_plan_make(void **state)
{
	as_col cols[2] = {{"id", NULL, AS_TYPE_INTEGER, AS_COL_KEY, 0},
			  {"slug", "slug", AS_TYPE_TEXT, 0, 1}};
	char *inv[2] = {"g:{id}", "s:*"};
	as_outbox_plan plan;
	as_dataset_cfg ds;
	as_table t;
	as_error err;

	(void)state;
	memset(&t, 0, sizeof(t));
	memset(&ds, 0, sizeof(ds));
	t.dataset = ds.name = "games";
	t.cols = cols;
	t.ncols = 2;
	t.nkey = 1;
	assert_int_equal(as_outbox_plan_make(&ds, &t, &plan, &err), 0);
	assert_false(as_outbox_plan_any(&plan));
	assert_false(as_outbox_plan_any(NULL));
	ds.invalidate = inv;
	ds.ninvalidate = 2;
	ds.webhook = "http://127.0.0.1:9/h";
	ds.notify = "ch";
	assert_int_equal(as_outbox_plan_make(&ds, &t, &plan, &err), 0);
	assert_true(as_outbox_plan_any(&plan));
	assert_int_equal(plan.ntpls, 2);
	assert_int_equal(plan.tpls[0].parts[1].index, 0);
	assert_false(plan.before);
	assert_true(plan.webhook);
	assert_string_equal(plan.notify, "ch");
	assert_string_equal(plan.tpls[1].src, "s:*");
	assert_int_equal(plan.max_keys, AS_OUTBOX_MAX_KEYS);
	as_outbox_plan_free(&plan);
	inv[0] = "g:{slug}";
	assert_int_equal(as_outbox_plan_make(&ds, &t, &plan, &err), 0);
	assert_true(plan.before);
	as_outbox_plan_free(&plan);
	inv[0] = "g:{nope}";
	assert_int_equal(as_outbox_plan_make(&ds, &t, &plan, &err), AS_EUSAGE);
	assert_false(as_outbox_plan_any(&plan));
}

static void test_summary_json(void **state)
{
	as_outbox_summary s = {"games", 3, "rollback", 0, 5, 0};
	char *text = as_outbox_summary_json(&s, NULL, 42);
	json_t *j = json_loads(text, 0, NULL);

	(void)state;
	assert_non_null(j);
	assert_string_equal(json_string_value(json_object_get(j, "kind")),
			    "rollback");
	assert_int_equal(json_integer_value(json_object_get(j, "keys_count")),
			 42);
	assert_null(json_object_get(j, "keys"));
	json_decref(j);
	free(text);
}

static void test_webhook_display(void **state)
{
	char out[200];

	(void)state;
	as_webhook_display(
		"https://u:pw@hooks.example.com/T0/B1/SECRET?token=x", out,
		sizeof(out));
	assert_string_equal(out, "hooks.example.com:443");
	as_webhook_display("http://127.0.0.1:8080/x", out, sizeof(out));
	assert_string_equal(out, "127.0.0.1:8080");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tpl_parts),
		cmocka_unit_test(test_tpl_patterns_and_fixed),
		cmocka_unit_test(test_tpl_errors),
		cmocka_unit_test(test_tpls_resolve),
		cmocka_unit_test(test_url_tcp),
		cmocka_unit_test(test_url_unix),
		cmocka_unit_test(test_url_errors),
		cmocka_unit_test(test_payload_json),
		cmocka_unit_test(test_plan_make),
		cmocka_unit_test(test_summary_json),
		cmocka_unit_test(test_webhook_display),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
