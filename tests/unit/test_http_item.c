/*
 * Unit tests of the HTTP source's parts: RFC 8288 Link parsing, Retry-After,
 * URLs with secrets masked, stripped and restored, dotted paths, and
 * as_http_fetch_item (verify's single-record fetch) against the project's
 * API server (tests/fixtures/apiserver.py, started once for the group).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "config/config.h"
#include "source/http.h"

#define SECRET "tok-SECRET-9f3a"

static pid_t server_pid;
static int server_port;
static char server_dir[64];

/* ---- pure helpers ------------------------------------------------------- */

static void expect_next(const char *link, const char *want)
{
	char *got = as_http_link_next(link);

	if (want) {
		if (!got)
			fail_msg("no next link in: %s", link);
		assert_string_equal(got, want);
	} else if (got) {
		fail_msg("unexpected next link %s in: %s", got, link);
	}
	free(got);
}

static void test_link_next(void **state)
{
	(void)state;
	expect_next("<http://a/2>; rel=\"next\", <http://a/9>; rel=\"last\"",
		    "http://a/2");
	expect_next("<http://a/1>; rel=\"first\", <http://a/3>; rel=next",
		    "http://a/3");
	expect_next("<http://a/p?x=1,2>; rel=\"prev next\"",
		    "http://a/p?x=1,2");
	expect_next("<http://a/last>; rel=\"last\"", NULL);
	expect_next("<http://a/t>; title=\"a, <b>; rel=next\"; rel=\"prev\", "
		    "<http://a/n>; REL=\"NEXT\"",
		    "http://a/n");
	expect_next("<http://a/x>; rel=\"next-page\"", NULL);
	expect_next("<http://a/1>; rel=\"prev\"; rel=\"next\"", NULL);
	expect_next("<http://a/y>;rel=next;title=foo", "http://a/y");
	expect_next("</items?page=2>; rel=\"next\"", "/items?page=2");
	expect_next("nonsense, <http://a/z>; rel=next", "http://a/z");
	expect_next("<http://a/w>; rel=\"  last   next \"", "http://a/w");
	expect_next("<http://a/u>; title*=UTF-8'de'n%c3%a4chstes; rel=next",
		    "http://a/u");
	expect_next("", NULL);
	expect_next("<http://a/broken; rel=next", NULL);
}

static void test_retry_after(void **state)
{
	char date[64];
	time_t t = time(NULL) + 30;
	double d;

	(void)state;
	assert_true(as_http_retry_after("120") == 120);
	assert_true(as_http_retry_after(" 3 ") == 3);
	assert_true(as_http_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", gmtime(&t));
	d = as_http_retry_after(date);
	assert_true(d >= 28 && d <= 31);
	assert_true(as_http_retry_after("soon") < 0);
	assert_true(as_http_retry_after("5 minutes") < 0);
}

static void test_json_path(void **state)
{
	json_t *doc = json_loads("{\"a\":{\"b\":[{\"c\":5},{\"c\":\"17\"}]},"
				 "\"n\":2.0,\"neg\":-1,\"s\":\"x1\"}",
				 0, NULL);

	(void)state;
	assert_non_null(doc);
	assert_int_equal(as_http_json_count(as_http_json_path(doc, "a.b.0.c")),
			 5);
	assert_int_equal(as_http_json_count(as_http_json_path(doc, "a.b.1.c")),
			 17);
	assert_null(as_http_json_path(doc, "a.x"));
	assert_null(as_http_json_path(doc, "a.b.7"));
	assert_null(as_http_json_path(doc, "a.b.c"));
	assert_int_equal(as_http_json_count(as_http_json_path(doc, "n")), 2);
	assert_int_equal(as_http_json_count(as_http_json_path(doc, "neg")), -1);
	assert_int_equal(as_http_json_count(as_http_json_path(doc, "s")), -1);
	assert_int_equal(as_http_json_count(NULL), -1);
	json_decref(doc);
}

static void test_urls(void **state)
{
	char *u;

	(void)state;
	u = as_http_resolve("http://h:8/a/b?x=1", "c?y=2");
	assert_string_equal(u, "http://h:8/a/c?y=2");
	free(u);
	u = as_http_resolve("http://h:8/a/b", "/z");
	assert_string_equal(u, "http://h:8/z");
	free(u);
	u = as_http_resolve("http://h:8/a/b", "https://o/q");
	assert_string_equal(u, "https://o/q");
	free(u);
	assert_true(as_http_same_origin("http://h:80/a", "HTTP://H/b"));
	assert_false(as_http_same_origin("http://h/a", "https://h/a"));
	assert_false(as_http_same_origin("http://h:81/a", "http://h/a"));
	assert_false(as_http_same_origin("http://127.0.0.2:5/a",
					 "http://127.0.0.1:5/a"));
}

static as_config *load(const char *http_lines)
{
	char yaml[2048];
	as_config *cfg = NULL;
	as_error err;

	setenv("AS_T_HTTP_TOKEN", SECRET, 1);
	snprintf(
		yaml, sizeof(yaml),
		"store: sqlite:t.db\ndatasets:\n  mods:\n    key: [id]\n    source:\n      http:\n"
		"        url: http://127.0.0.1:%d/v1/mods\n        records: data\n"
		"        params: {gameId: 1, token: \"${AS_T_HTTP_TOKEN}\"}\n"
		"        retry: {attempts: 3, initial: 10ms, max: 50ms}\n        timeout: 2s\n%s",
		server_port, http_lines);
	if (as_config_parse(&cfg, yaml, strlen(yaml), "t.yml", &err))
		fail_msg("config: %s", err.msg);
	return cfg;
}

static const as_http_cfg *http_of(const as_config *cfg)
{
	return &cfg->datasets[0].source.http;
}

static void test_secret_urls(void **state)
{
	as_config *cfg = load("");
	const as_http_cfg *h = http_of(cfg);
	char *u;

	(void)state;
	u = as_http_redact_url(cfg, h, "http://x/a?token=tok%2DSECRET&b=1#f");
	assert_string_equal(u, "http://x/a?token=***&b=1#f");
	free(u);
	u = as_http_redact_url(cfg, h, "http://x/a?b=" SECRET);
	assert_string_equal(u, "http://x/a?b=***");
	free(u);
	u = as_http_strip_secrets(h, "http://x/a?token=zz&b=1&token=yy");
	assert_string_equal(u, "http://x/a?b=1");
	free(u);
	u = as_http_add_secrets(h, "http://x/a?b=1");
	assert_string_equal(u, "http://x/a?b=1&token=" SECRET);
	free(u);
	u = as_http_add_secrets(h, "http://x/a?token=mine");
	assert_string_equal(u, "http://x/a?token=mine");
	free(u);
	u = as_http_add_secrets(h, "http://x/a");
	assert_string_equal(u, "http://x/a?token=" SECRET);
	free(u);
	as_config_free(cfg);
}

/* ---- the server --------------------------------------------------------- */

static size_t discard(char *p, size_t size, size_t n, void *ud)
{
	(void)p;
	(void)ud;
	return size * n;
}

static int control(const char *method, const char *path, const char *body)
{
	char url[256];
	CURL *e = curl_easy_init();
	long status = 0;

	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", server_port, path);
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
	if (body)
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard);
	if (curl_easy_perform(e) == CURLE_OK)
		curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(e);
	return (int)status;
}

static int start_server(void **state)
{
	const char *root = getenv("ATOMSYNC_SOURCE_DIR");
	char script[1024], port_file[128];
	int waited = 0;
	FILE *f;

	(void)state;
	if (!root)
		root = ".";
	snprintf(script, sizeof(script), "%s/tests/fixtures/apiserver.py",
		 root);
	snprintf(server_dir, sizeof(server_dir), "/tmp/atomsync-item-XXXXXX");
	if (!mkdtemp(server_dir))
		return -1;
	snprintf(port_file, sizeof(port_file), "%s/port", server_dir);
	server_pid = fork();
	if (server_pid == 0) {
		freopen("/dev/null", "w", stdout);
		execlp("python3", "python3", script, "--port", "0",
		       "--port-file", port_file, "--records", "100",
		       (char *)NULL);
		_exit(127);
	}
	while (!(f = fopen(port_file, "r"))) {
		if (waited++ > 1500 || waitpid(server_pid, NULL, WNOHANG) != 0)
			return -1;
		usleep(10000);
	}
	if (fscanf(f, "%d", &server_port) != 1)
		server_port = 0;
	fclose(f);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	return server_port ? 0 : -1;
}

static int stop_server(void **state)
{
	char path[160];

	(void)state;
	if (server_pid > 0) {
		kill(server_pid, SIGTERM);
		waitpid(server_pid, NULL, 0);
	}
	snprintf(path, sizeof(path), "%s/port", server_dir);
	unlink(path);
	rmdir(server_dir);
	return 0;
}

static int fresh(void **state)
{
	(void)state;
	control("DELETE", "/_faults", NULL);
	control("POST", "/_reset", "{}");
	return 0;
}

static int fetch(const as_config *cfg, const char *id, json_t **out,
		 as_error *err)
{
	const char *names[] = {"id"}, *values[] = {id};

	as_error_clear(err);
	return as_http_fetch_item(cfg, http_of(cfg), names, values, 1, out,
				  err);
}

static void test_fetch_item(void **state)
{
	char line[160];
	as_config *cfg;
	json_t *rec = NULL;
	as_error err;

	(void)state;
	snprintf(line, sizeof(line),
		 "        item_url: http://127.0.0.1:%d/v1/mods/{id}\n",
		 server_port);
	cfg = load(line);
	assert_int_equal(fetch(cfg, "5", &rec, &err), 0);
	assert_true(json_is_object(rec));
	assert_int_equal(json_integer_value(json_object_get(rec, "id")), 5);
	assert_string_equal(json_string_value(json_object_get(rec, "name")),
			    "Addon 5");
	json_decref(rec);

	/* A record that is not there: AS_ENOTFOUND, the token masked. */
	assert_int_equal(fetch(cfg, "99999", &rec, &err), AS_ENOTFOUND);
	assert_null(rec);
	assert_non_null(
		strstr(err.msg, "/v1/mods/99999?gameId=1&token=***: HTTP 404"));
	assert_null(strstr(err.msg, SECRET));

	/* Two 503s, then the record: retried like a page. */
	control("POST", "/_faults",
		"{\"faults\":[{\"kind\":\"status\",\"status\":503,"
		"\"match\":{\"item\":true},\"times\":2}]}");
	assert_int_equal(fetch(cfg, "7", &rec, &err), 0);
	assert_int_equal(json_integer_value(json_object_get(rec, "id")), 7);
	json_decref(rec);

	/* No "data" in the response: the body is the record. */
	control("POST", "/_faults",
		"{\"faults\":[{\"kind\":\"missing_records\",\"match\":{\"item\":true}}]}");
	assert_int_equal(fetch(cfg, "8", &rec, &err), 0);
	assert_true(json_is_object(rec));
	assert_int_equal(json_object_size(rec), 0);
	json_decref(rec);

	/* Not JSON: a source error naming the URL. */
	control("POST", "/_faults",
		"{\"faults\":[{\"kind\":\"invalid_json\",\"match\":{\"item\":true}}]}");
	assert_int_equal(fetch(cfg, "9", &rec, &err), AS_ESOURCE);
	assert_non_null(strstr(
		err.msg,
		"/v1/mods/9?gameId=1&token=***: the response is not JSON"));

	/* Always 500: gives up after the configured attempts. */
	control("POST", "/_faults",
		"{\"faults\":[{\"kind\":\"status\",\"status\":500,\"match\":{\"item\":true}}]}");
	assert_int_equal(fetch(cfg, "10", &rec, &err), AS_ESOURCE);
	assert_non_null(strstr(err.msg, "HTTP 500 after 3 attempts"));
	assert_null(strstr(err.msg, SECRET));
	as_config_free(cfg);
}

static void test_fetch_item_placeholders(void **state)
{
	char line[200];
	const char *names[] = {"slug", "id"}, *values[] = {"a b/c", "3"};
	as_config *cfg;
	json_t *rec = NULL;
	as_error err;

	(void)state;
	/* {slug} is percent-encoded; a name with no value is a usage error. */
	snprintf(
		line, sizeof(line),
		"        item_url: http://127.0.0.1:%d/v1/mods/{id}?slug={slug}\n",
		server_port);
	cfg = load(line);
	as_error_clear(&err);
	assert_int_equal(as_http_fetch_item(cfg, http_of(cfg), names, values, 2,
					    &rec, &err),
			 0);
	assert_int_equal(json_integer_value(json_object_get(rec, "id")), 3);
	json_decref(rec);
	as_error_clear(&err);
	assert_int_equal(as_http_fetch_item(cfg, http_of(cfg), names + 1,
					    values + 1, 1, &rec, &err),
			 AS_EUSAGE);
	assert_non_null(strstr(err.msg, "{slug}"));
	as_config_free(cfg);

	cfg = load("");
	as_error_clear(&err);
	assert_int_equal(as_http_fetch_item(cfg, http_of(cfg), names, values, 2,
					    &rec, &err),
			 AS_EUSAGE);
	as_config_free(cfg);
}

int main(void)
{
	const struct CMUnitTest pure[] = {
		cmocka_unit_test(test_link_next),
		cmocka_unit_test(test_retry_after),
		cmocka_unit_test(test_json_path),
		cmocka_unit_test(test_urls),
	};
	const struct CMUnitTest served[] = {
		cmocka_unit_test(test_secret_urls),
		cmocka_unit_test_setup(test_fetch_item, fresh),
		cmocka_unit_test_setup(test_fetch_item_placeholders, fresh),
	};
	int failed =
		cmocka_run_group_tests_name("http helpers", pure, NULL, NULL);

	failed += cmocka_run_group_tests_name("http items", served,
					      start_server, stop_server);
	return failed;
}
