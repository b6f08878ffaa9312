/*
 * Unit tests of the daemon's schedules (src/util/cron.c and
 * src/serve/schedule.c): cron parsing and its errors, next firing times in
 * UTC and across DST changes of a named zone, intervals, jitter, retry
 * backoff and the config keys, all on a fake clock (times are arguments).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "serve/schedule.h"
#include "util/cron.h"
#include "util/time.h"

/* Unix seconds of an ISO 8601 UTC time. */
static double at(const char *iso)
{
	double t;

	assert_int_equal(as_parse_iso8601(iso, &t), 0);
	return t;
}

static const char *iso(double t)
{
	static char buf[8][40];
	static int k;

	k = (k + 1) % 8;
	if (t < 0)
		return "never";
	return as_iso8601(t, buf[k], sizeof(buf[k]));
}

static void expect_next(const char *expr, const char *tz, const char *after,
			const char *want)
{
	as_cron c;
	char why[256];

	assert_int_equal(as_cron_parse(&c, expr, why, sizeof(why)), 0);
	assert_string_equal(iso(as_cron_next(&c, at(after), tz)), want);
}

static void expect_bad(const char *expr, const char *needle)
{
	as_cron c;
	char why[256] = "";

	assert_int_equal(as_cron_parse(&c, expr, why, sizeof(why)), -1);
	if (!strstr(why, needle))
		fail_msg("'%s': '%s' does not mention '%s'", expr, why, needle);
}

static void test_cron_parse_errors(void **state)
{
	(void)state;
	expect_bad("* * * *", "got 4");
	expect_bad("* * * * * *", "got more");
	expect_bad("60 * * * *", "minute field");
	expect_bad("* 24 * * *", "hour field");
	expect_bad("* * 0 * *", "day of month");
	expect_bad("* * * 13 *", "month field");
	expect_bad("* * * * 8", "day of week");
	expect_bad("*/0 * * * *", "step 0");
	expect_bad("x * * * *", "not a number");
	expect_bad("5-1 * * * *", "values go from");
	expect_bad("1,,2 * * * *", "not a number");
}

static void test_cron_next_utc(void **state)
{
	(void)state;
	/* Hourly, at the top of the hour; strictly after `after`. */
	expect_next("0 * * * *", NULL, "2026-03-01T10:00:00Z",
		    "2026-03-01T11:00:00.000Z");
	expect_next("0 * * * *", NULL, "2026-03-01T10:59:59Z",
		    "2026-03-01T11:00:00.000Z");
	expect_next("*/15 * * * *", NULL, "2026-03-01T10:16:00Z",
		    "2026-03-01T10:30:00.000Z");
	expect_next("30 2 * * *", "UTC", "2026-03-01T10:00:00Z",
		    "2026-03-02T02:30:00.000Z");
	/* Weekdays at 09:00: Friday 2026-03-06 -> Monday 03-09. */
	expect_next("0 9 * * mon-fri", NULL, "2026-03-06T09:00:00Z",
		    "2026-03-09T09:00:00.000Z");
	/* 7 is Sunday too. */
	expect_next("0 0 * * 7", NULL, "2026-03-02T00:00:00Z",
		    "2026-03-08T00:00:00.000Z");
	/* Both day fields restricted: either matches (Vixie cron). */
	expect_next("0 0 13 * fri", NULL, "2026-03-01T00:00:00Z",
		    "2026-03-06T00:00:00.000Z");
	/* Month names and lists; year wrap. */
	expect_next("0 0 1 jan,jul *", NULL, "2026-07-01T00:00:00Z",
		    "2027-01-01T00:00:00.000Z");
	/* Leap day: the next 29 February. */
	expect_next("0 12 29 2 *", NULL, "2026-03-01T00:00:00Z",
		    "2028-02-29T12:00:00.000Z");
	/* Never. */
	expect_next("0 0 31 2 *", NULL, "2026-03-01T00:00:00Z", "never");
}

static void test_cron_next_timezone(void **state)
{
	(void)state;
	if (!as_tz_valid("Europe/Paris"))
		skip();
	/* 09:00 in Paris is 08:00 UTC in winter, 07:00 UTC in summer. */
	expect_next("0 9 * * *", "Europe/Paris", "2026-01-10T12:00:00Z",
		    "2026-01-11T08:00:00.000Z");
	expect_next("0 9 * * *", "Europe/Paris", "2026-07-10T12:00:00Z",
		    "2026-07-11T07:00:00.000Z");
	/* Spring forward (2026-03-29 02:00 -> 03:00): 02:30 does not exist
	 * that day; the next one is on 03-30 (00:30 UTC). */
	expect_next("30 2 * * *", "Europe/Paris", "2026-03-28T12:00:00Z",
		    "2026-03-30T00:30:00.000Z");
	/* Fall back (2026-10-25 03:00 -> 02:00): 02:30 happens twice; it
	 * fires once (the first, 00:30 UTC), then the next day. */
	expect_next("30 2 * * *", "Europe/Paris", "2026-10-24T12:00:00Z",
		    "2026-10-25T00:30:00.000Z");
	expect_next("30 2 * * *", "Europe/Paris", "2026-10-25T00:30:00Z",
		    "2026-10-26T01:30:00.000Z");
	/* The process's own zone is left as it was. */
	assert_true(as_tz_valid("UTC"));
	assert_false(as_tz_valid("Mars/Olympus"));
	assert_false(as_tz_valid("../etc/passwd"));
}

static as_config *parse(const char *ds_extra)
{
	char text[1024];
	as_config *cfg = NULL;
	as_error err;

	snprintf(text, sizeof(text),
		 "store: sqlite:x.db\nmax_parallel: 3\ndatasets:\n  a:\n"
		 "    key: [id]\n%s    source: {file: a.jsonl}\n",
		 ds_extra);
	if (as_config_parse(&cfg, text, strlen(text), "t.yml", &err))
		fail_msg("%s", err.msg);
	return cfg;
}

static void expect_cfg_error(const char *ds_extra, const char *needle)
{
	char text[1024];
	as_config *cfg = NULL;
	as_error err;

	snprintf(text, sizeof(text),
		 "store: sqlite:x.db\ndatasets:\n  a:\n"
		 "    key: [id]\n%s    source: {file: a.jsonl}\n",
		 ds_extra);
	assert_int_not_equal(
		as_config_parse(&cfg, text, strlen(text), "t.yml", &err), 0);
	if (!strstr(err.msg, needle))
		fail_msg("'%s' does not mention '%s'", err.msg, needle);
}

static void test_config_keys(void **state)
{
	as_config *cfg;
	as_sched s;
	char why[128];

	(void)state;
	cfg = parse("    schedule: \"0 * * * *\"\n    jitter: 30s\n"
		    "    timezone: UTC\n    retry_after_failure: 1m\n");
	assert_int_equal(cfg->max_parallel, 3);
	assert_int_equal(cfg->datasets[0].jitter_ms, 30000);
	assert_int_equal(cfg->datasets[0].retry_after_failure_ms, 60000);
	assert_int_equal(
		as_sched_from_cfg(&s, &cfg->datasets[0], why, sizeof(why)), 1);
	assert_int_equal(s.interval_ms, 0);
	as_config_free(cfg);
	cfg = parse("");
	assert_int_equal(
		as_sched_from_cfg(&s, &cfg->datasets[0], why, sizeof(why)), 0);
	as_config_free(cfg);
	/* Errors name file:line:col and the field. */
	expect_cfg_error("    schedule: \"61 * * * *\"\n",
			 "t.yml:5:16: 'schedule' in dataset 'a': the minute");
	expect_cfg_error("    schedule: soon\n", "cron expression");
	expect_cfg_error("    timezone: Mars/Olympus\n", "time zone");
	expect_cfg_error("    retry_after_failure: 10ms\n", "at least 1s");
}

static as_sched interval(int64_t ms, int64_t jitter, int64_t retry)
{
	as_sched s;

	memset(&s, 0, sizeof(s));
	s.interval_ms = ms;
	s.jitter_ms = jitter;
	s.retry_ms = retry;
	return s;
}

static void test_interval_slots(void **state)
{
	as_sched s = interval(3600000, 0, 300000);
	as_sched_last l;
	double now = at("2026-03-01T10:00:00Z");

	(void)state;
	memset(&l, 0, sizeof(l));
	/* Never run: due now. */
	assert_true(as_sched_next(&s, "a", &l, now) == now);
	/* Completed at 10:00 (started 10:00): due at 11:00, whatever the
	 * clock says now. */
	l.have = 1;
	l.run_id = 7;
	l.started = now;
	l.finished = now + 20;
	assert_string_equal(iso(as_sched_next(&s, "a", &l, now + 60)),
			    "2026-03-01T11:00:00.000Z");
	/* A run still open (killed, or running elsewhere): due now. */
	l.finished = 0;
	assert_true(as_sched_next(&s, "a", &l, now + 60) == now + 60);
}

static void test_retry_backoff(void **state)
{
	as_sched s = interval(3600000, 0, 300000);
	as_sched_last l;
	double t0 = at("2026-03-01T10:00:00Z");

	(void)state;
	memset(&l, 0, sizeof(l));
	l.have = 1;
	l.started = t0;
	l.finished = t0 + 10;
	l.failed = 1;
	/* 5 min, 10, 20, 40, then capped at the interval (60). */
	for (int k = 1; k <= 6; k++) {
		static const int want[] = {0, 5, 10, 20, 40, 60, 60};

		l.failures = k;
		assert_true(as_sched_next(&s, "a", &l, t0) ==
			    t0 + 10 + want[k] * 60);
	}
	/* Cron: a retry is never later than the next regular slot. */
	{
		as_sched c;
		char why[64];

		memset(&c, 0, sizeof(c));
		assert_int_equal(
			as_cron_parse(&c.cron, "0 * * * *", why, sizeof(why)),
			0);
		c.retry_ms = 300000;
		l.started = t0;
		l.finished = t0 + 10;
		l.failures = 1;
		assert_true(as_sched_next(&c, "a", &l, t0) == t0 + 310);
		l.failures = 5; /* 80 min > the next slot at 11:00 */
		assert_string_equal(iso(as_sched_next(&c, "a", &l, t0)),
				    "2026-03-01T11:00:00.000Z");
	}
}

static void test_jitter(void **state)
{
	as_sched s = interval(60000, 10000, 1000);
	as_sched_last l;
	double t0 = at("2026-03-01T10:00:00Z"), lo = 1e9, hi = -1;

	(void)state;
	memset(&l, 0, sizeof(l));
	l.have = 1;
	l.finished = 1;
	/* Within [0, jitter), the same for every caller (daemon), different
	 * across slots and datasets. */
	for (int k = 0; k < 200; k++) {
		double j;

		l.started = t0 + k * 60;
		l.finished = l.started + 1;
		j = as_sched_next(&s, "a", &l, t0) - (l.started + 60);
		assert_true(j >= 0 && j < 10);
		assert_true(j == as_sched_next(&s, "a", &l, t0 + 5) -
					 (l.started + 60));
		lo = j < lo ? j : lo;
		hi = j > hi ? j : hi;
	}
	assert_true(hi - lo > 5); /* spread over the window */
	assert_true(as_sched_jitter(&s, "a", t0) !=
			    as_sched_jitter(&s, "b", t0) ||
		    as_sched_jitter(&s, "a", t0 + 60) !=
			    as_sched_jitter(&s, "b", t0 + 60));
	s.jitter_ms = 0;
	assert_true(as_sched_jitter(&s, "a", t0) == 0);
}

static void test_last_from_runs(void **state)
{
	atomsync_run_info v[4];
	as_sched_last l;

	(void)state;
	memset(v, 0, sizeof(v));
	v[0].run_id = 9;
	v[0].kind = "verify";
	v[0].status = "completed";
	v[1].run_id = 8;
	v[1].kind = "sync";
	v[1].status = "failed";
	v[1].started_at = "2026-03-01T10:00:00Z";
	v[1].finished_at = "2026-03-01T10:00:05Z";
	v[2] = v[1];
	v[2].run_id = 7;
	v[3] = v[1];
	v[3].run_id = 6;
	v[3].status = "completed";
	as_sched_last_from_runs(&l, v, 4);
	assert_int_equal(l.run_id, 9);
	assert_int_equal(l.have, 1);
	assert_int_equal(l.failed, 1);
	assert_int_equal(l.failures, 2);
	assert_true(l.finished - l.started == 5);
	v[1].status = "active";
	as_sched_last_from_runs(&l, v, 4);
	assert_int_equal(l.failed, 0);
	assert_true(l.finished == 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cron_parse_errors),
		cmocka_unit_test(test_cron_next_utc),
		cmocka_unit_test(test_cron_next_timezone),
		cmocka_unit_test(test_config_keys),
		cmocka_unit_test(test_interval_slots),
		cmocka_unit_test(test_retry_backoff),
		cmocka_unit_test(test_jitter),
		cmocka_unit_test(test_last_from_runs),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
