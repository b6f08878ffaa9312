/*
 * Unit tests of source/singer: RECORD, SCHEMA and STATE messages into source
 * events, stream selection (configured or the first one seen) with other
 * streams ignored, malformed messages turned into named bad records, and the
 * errors that stop a run (invalid SCHEMA, RECORD before SCHEMA, BATCH
 * without a file:// manifest).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"
#include "source/singer.h"
#include "util/log.h"

/* Feed one message; returns as_singer_message's result, ev filled. */
static int msg(as_singer *sg, const char *text, as_event *ev)
{
	json_error_t je;
	json_t *m = json_loads(text, 0, &je);
	as_error err;
	int rc;

	if (!m)
		fail_msg("test message does not parse: %s", text);
	memset(ev, 0, sizeof(*ev));
	snprintf(ev->where, sizeof(ev->where), "tap:7");
	as_error_clear(&err);
	rc = as_singer_message(sg, m, ev, &err);
	json_decref(m); /* the event holds its own references */
	return rc;
}

#define PROPS "\"schema\":{\"properties\":{}}"

/* A message that stops the run: < 0 and the message in err. */
static void expect_error(as_singer *sg, const char *text, const char *why)
{
	json_error_t je;
	json_t *m = json_loads(text, 0, &je);
	as_event ev;
	as_error err;

	if (!m)
		fail_msg("test message does not parse: %s", text);
	memset(&ev, 0, sizeof(ev));
	snprintf(ev.where, sizeof(ev.where), "tap:7");
	as_error_clear(&err);
	assert_int_equal(as_singer_message(sg, m, &ev, &err), AS_EINPUT);
	json_decref(m);
	assert_string_equal(err.msg, why);
	assert_null(ev.json);
	assert_null(ev.key);
	as_event_clear(&ev);
}

static void schema_of(as_singer *sg, const char *stream)
{
	char text[200];
	as_event ev;

	snprintf(text, sizeof(text),
		 "{\"type\":\"SCHEMA\",\"stream\":\"%s\"," PROPS
		 ",\"key_properties\":[\"id\"]}",
		 stream);
	assert_true(msg(sg, text, &ev) >= 0);
	as_event_clear(&ev);
}

static void expect_none(as_singer *sg, const char *text)
{
	as_event ev;

	assert_int_equal(msg(sg, text, &ev), 0);
	assert_null(ev.json);
	assert_null(ev.checkpoint);
	assert_null(ev.key);
	as_event_clear(&ev);
}

static void expect_bad(as_singer *sg, const char *text, const char *why)
{
	as_event ev;

	assert_int_equal(msg(sg, text, &ev), 1);
	assert_int_equal(ev.kind, AS_EV_BAD);
	assert_int_equal(ev.why.code, AS_EINPUT);
	assert_string_equal(ev.why.msg, why);
	assert_null(ev.json);
	assert_null(ev.key);
	as_event_clear(&ev);
}

static void test_record(void **state)
{
	as_singer sg;
	as_event ev;
	char *s;

	(void)state;
	as_singer_init(&sg, NULL, 0);
	schema_of(&sg, "users");
	assert_int_equal(msg(&sg,
			     "{\"type\":\"RECORD\",\"stream\":\"users\","
			     "\"record\":{\"id\":1,\"name\":\"a\"},"
			     "\"time_extracted\":\"2026-01-01T00:00:00Z\"}",
			     &ev),
			 1);
	assert_int_equal(ev.kind, AS_EV_RECORD);
	/* The record, not the envelope; no raw text for the `data` column. */
	s = json_dumps(ev.json, JSON_COMPACT);
	assert_string_equal(s, "{\"id\":1,\"name\":\"a\"}");
	free(s);
	assert_null(ev.raw);
	assert_int_equal(ev.rawlen, 0);
	assert_string_equal(ev.where, "tap:7");
	as_event_clear(&ev);
	/* The first stream seen is taken. */
	assert_string_equal(sg.stream, "users");
	assert_int_equal(sg.fixed, 0);
	as_singer_free(&sg);
	assert_null(sg.stream);
}

static void test_schema(void **state)
{
	as_singer sg;
	as_event ev;

	(void)state;
	as_singer_init(&sg, NULL, 0);
	assert_int_equal(msg(&sg,
			     "{\"type\":\"SCHEMA\",\"stream\":\"users\","
			     "\"schema\":{\"type\":\"object\",\"properties\":{"
			     "\"tenant\":{\"type\":\"string\"},"
			     "\"id\":{\"type\":[\"null\",\"integer\"]}}},"
			     "\"key_properties\":[\"tenant\",\"id\"]}",
			     &ev),
			 1);
	assert_int_equal(ev.kind, AS_EV_SCHEMA);
	assert_int_equal(ev.nkey, 2);
	assert_string_equal(ev.key[0], "tenant");
	assert_string_equal(ev.key[1], "id");
	/* Key columns typed as the schema declares them. */
	assert_int_equal(ev.ktype[0], AS_TYPE_TEXT);
	assert_int_equal(ev.ktype[1], AS_TYPE_INTEGER);
	assert_int_equal(ev.hashed, 0);
	as_event_clear(&ev);
	assert_null(ev.key);
	/* No key properties (or an empty list): keyed by content. */
	assert_int_equal(
		msg(&sg, "{\"type\":\"SCHEMA\",\"stream\":\"users\"," PROPS "}",
		    &ev),
		1);
	assert_int_equal(ev.kind, AS_EV_SCHEMA);
	assert_int_equal(ev.hashed, 1);
	assert_int_equal(ev.nkey, 1);
	assert_string_equal(ev.key[0], AS_SINGER_HASH);
	assert_non_null(ev.json); /* the schema, for the typed columns */
	as_event_clear(&ev);
	/* ... unless the dataset configures its key: the schema alone. */
	sg.keyed = 1;
	assert_int_equal(msg(&sg,
			     "{\"type\":\"SCHEMA\",\"stream\":\"users\"," PROPS
			     ",\"key_properties\":[]}",
			     &ev),
			 1);
	assert_int_equal(ev.kind, AS_EV_SCHEMA);
	assert_int_equal(ev.nkey, 0);
	assert_non_null(ev.json);
	as_event_clear(&ev);
	sg.keyed = 0;
	/* A SCHEMA of another stream is not ours. */
	expect_none(&sg, "{\"type\":\"SCHEMA\",\"stream\":\"orders\"," PROPS
			 ",\"key_properties\":[\"oid\"]}");
	/* Keys must be an array of strings. */
	expect_error(&sg,
		     "{\"type\":\"SCHEMA\",\"stream\":\"users\"," PROPS
		     ",\"key_properties\":[\"id\",2]}",
		     "tap:7: Singer SCHEMA key_properties must be an array of "
		     "strings");
	expect_error(&sg,
		     "{\"type\":\"SCHEMA\",\"stream\":\"users\"," PROPS
		     ",\"key_properties\":\"id\"}",
		     "tap:7: Singer SCHEMA key_properties must be an array of "
		     "strings");
	/* invalid_schema: no properties. */
	expect_error(
		&sg,
		"{\"type\":\"SCHEMA\",\"stream\":\"users\","
		"\"schema\":{\"type\":\"object\"},\"key_properties\":[]}",
		"tap:7: invalid Singer SCHEMA for stream 'users': \"schema\" "
		"must be an object with \"properties\"; nothing was "
		"published");
	as_singer_free(&sg);
}

static void test_state(void **state)
{
	as_singer sg;
	as_event ev;

	(void)state;
	/* With use_state, STATE's value is the checkpoint, compact, exact. */
	as_singer_init(&sg, NULL, 1);
	assert_int_equal(
		msg(&sg,
		    "{\"type\":\"STATE\",\"value\":{\"bookmarks\":"
		    "{\"users\":{\"since\":\"2026-01-01\",\"w\":0.1}}}}",
		    &ev),
		1);
	assert_int_equal(ev.kind, AS_EV_CHECKPOINT);
	assert_string_equal(
		ev.checkpoint,
		"{\"bookmarks\":{\"users\":{\"since\":\"2026-01-01\",\"w\":0.1}}}");
	as_event_clear(&ev);
	/* A scalar state is a state too. */
	assert_int_equal(msg(&sg, "{\"type\":\"STATE\",\"value\":42}", &ev), 1);
	assert_string_equal(ev.checkpoint, "42");
	as_event_clear(&ev);
	/* No value: nothing. */
	expect_none(&sg, "{\"type\":\"STATE\"}");
	as_singer_free(&sg);

	/* Without use_state (a file of messages), STATE is the bookmark
	 * only, not a resume point. */
	as_singer_init(&sg, NULL, 0);
	assert_int_equal(
		msg(&sg, "{\"type\":\"STATE\",\"value\":{\"a\":1}}", &ev), 1);
	assert_int_equal(ev.kind, AS_EV_BOOKMARK);
	assert_string_equal(ev.checkpoint, "{\"a\":1}");
	as_event_clear(&ev);
	as_singer_free(&sg);
}

static void test_other_types(void **state)
{
	as_singer sg;
	as_event ev;

	(void)state;
	as_singer_init(&sg, NULL, 1);
	expect_none(
		&sg,
		"{\"type\":\"ACTIVATE_VERSION\",\"stream\":\"users\",\"version\":1}");
	assert_null(sg.stream); /* it chose no stream */
	/* A RECORD before its stream's SCHEMA stops the run. */
	expect_error(&sg,
		     "{\"type\":\"RECORD\",\"stream\":\"users\",\"record\":{}}",
		     "tap:7: Singer RECORD of stream 'users' before its SCHEMA "
		     "message; nothing was published");
	/* BATCH is never a silent skip. */
	expect_error(&sg, "{\"type\":\"BATCH\",\"stream\":\"users\"}",
		     "tap:7: Singer BATCH of stream 'users' before its SCHEMA "
		     "message; nothing was published");
	schema_of(&sg, "users");
	/* ACTIVATE_VERSION of our stream: a full refresh. */
	assert_int_equal(msg(&sg,
			     "{\"type\":\"ACTIVATE_VERSION\",\"stream\":"
			     "\"users\",\"version\":2}",
			     &ev),
			 1);
	assert_int_equal(ev.kind, AS_EV_ACTIVATE);
	as_event_clear(&ev);
	expect_none(&sg, "{\"type\":\"ACTIVATE_VERSION\",\"stream\":"
			 "\"other\",\"version\":2}");
	expect_error(&sg, "{\"type\":\"BATCH\",\"stream\":\"users\"}",
		     "tap:7: Singer BATCH without a \"manifest\" array of "
		     "file:// URLs");
	expect_error(&sg,
		     "{\"type\":\"BATCH\",\"stream\":\"users\","
		     "\"manifest\":[\"https://x/y.jsonl\"]}",
		     "tap:7: Singer BATCH manifest entry 1 is "
		     "'https://x/y.jsonl': only file:// URLs can be read; "
		     "nothing was published");
	as_singer_free(&sg);
}

/* Message types are case-insensitive (the Singer spec). */
static void test_lower_case(void **state)
{
	as_singer sg;
	as_event ev;

	(void)state;
	as_singer_init(&sg, NULL, 1);
	assert_int_equal(msg(&sg,
			     "{\"type\":\"schema\",\"stream\":\"users\"," PROPS
			     ",\"key_properties\":[\"id\"]}",
			     &ev),
			 1);
	assert_int_equal(ev.kind, AS_EV_SCHEMA);
	as_event_clear(&ev);
	assert_int_equal(msg(&sg,
			     "{\"type\":\"record\",\"stream\":\"users\","
			     "\"record\":{\"id\":1}}",
			     &ev),
			 1);
	assert_int_equal(ev.kind, AS_EV_RECORD);
	as_event_clear(&ev);
	assert_int_equal(
		msg(&sg, "{\"type\":\"State\",\"value\":{\"a\":1}}", &ev), 1);
	assert_int_equal(ev.kind, AS_EV_CHECKPOINT);
	assert_string_equal(ev.checkpoint, "{\"a\":1}");
	as_event_clear(&ev);
	as_singer_free(&sg);
}

/* A RECORD lacking a key property of its SCHEMA is named, with the line. */
static void test_missing_key(void **state)
{
	as_singer sg;
	as_event ev;

	(void)state;
	as_singer_init(&sg, NULL, 0);
	assert_int_equal(msg(&sg,
			     "{\"type\":\"SCHEMA\",\"stream\":\"m\"," PROPS
			     ",\"key_properties\":[\"id\"]}",
			     &ev),
			 1);
	as_event_clear(&ev);
	expect_bad(&sg,
		   "{\"type\":\"RECORD\",\"stream\":\"m\","
		   "\"record\":{\"metric\":8214}}",
		   "tap:7: Singer RECORD without key property 'id' (SCHEMA "
		   "key_properties)");
	/* A later SCHEMA without keys lifts the check (keyed by content). */
	assert_int_equal(msg(&sg,
			     "{\"type\":\"SCHEMA\",\"stream\":\"m\"," PROPS
			     ",\"key_properties\":[]}",
			     &ev),
			 1);
	assert_int_equal(ev.hashed, 1);
	as_event_clear(&ev);
	assert_int_equal(msg(&sg,
			     "{\"type\":\"RECORD\",\"stream\":\"m\","
			     "\"record\":{\"metric\":1}}",
			     &ev),
			 1);
	assert_int_equal(ev.kind, AS_EV_RECORD);
	/* The record carries its content hash as its key. */
	assert_int_equal(
		json_string_length(json_object_get(ev.json, AS_SINGER_HASH)),
		32);
	as_event_clear(&ev);
	as_singer_free(&sg);
}

static void test_streams(void **state)
{
	as_singer sg;
	as_event ev;

	(void)state;
	/* A configured stream: others are ignored and counted, even first. */
	as_singer_init(&sg, "orders", 0);
	assert_int_equal(sg.fixed, 1);
	schema_of(&sg, "users");
	schema_of(&sg, "orders");
	sg.warned = 0;
	expect_none(
		&sg,
		"{\"type\":\"RECORD\",\"stream\":\"users\",\"record\":{\"id\":1}}");
	expect_none(
		&sg,
		"{\"type\":\"RECORD\",\"stream\":\"users\",\"record\":{\"id\":2}}");
	assert_int_equal(sg.ignored, 2);
	assert_int_equal(sg.warned, 1); /* one warning, not one per record */
	assert_int_equal(msg(&sg,
			     "{\"type\":\"RECORD\",\"stream\":\"orders\","
			     "\"record\":{\"id\":9,\"oid\":9}}",
			     &ev),
			 1);
	assert_int_equal(ev.kind, AS_EV_RECORD);
	assert_int_equal(json_integer_value(json_object_get(ev.json, "oid")),
			 9);
	as_event_clear(&ev);
	assert_int_equal(sg.ignored, 2);
	as_singer_free(&sg);

	/* Unconfigured: the first stream wins, later ones are ignored. */
	as_singer_init(&sg, NULL, 0);
	schema_of(&sg, "a");
	schema_of(&sg, "b");
	assert_int_equal(
		msg(&sg, "{\"type\":\"RECORD\",\"stream\":\"a\",\"record\":{}}",
		    &ev),
		1);
	as_event_clear(&ev);
	expect_none(&sg,
		    "{\"type\":\"RECORD\",\"stream\":\"b\",\"record\":{}}");
	assert_int_equal(
		msg(&sg, "{\"type\":\"RECORD\",\"stream\":\"a\",\"record\":{}}",
		    &ev),
		1);
	as_event_clear(&ev);
	assert_int_equal(sg.ignored, 1);
	assert_string_equal(sg.stream, "a");
	as_singer_free(&sg);
}

static void test_malformed(void **state)
{
	as_singer sg;
	as_event ev;
	int rc;

	(void)state;
	as_singer_init(&sg, NULL, 1);
	expect_bad(&sg, "{\"stream\":\"a\",\"record\":{}}",
		   "tap:7: Singer message without a string \"type\"");
	expect_bad(&sg, "{\"type\":1,\"record\":{}}",
		   "tap:7: Singer message without a string \"type\"");
	expect_bad(&sg, "{\"type\":\"RECORD\",\"stream\":\"a\"}",
		   "tap:7: Singer RECORD without an object \"record\"");
	expect_bad(&sg, "{\"type\":\"RECORD\",\"stream\":\"a\",\"record\":[1]}",
		   "tap:7: Singer RECORD without an object \"record\"");
	expect_bad(&sg,
		   "{\"type\":\"RECORD\",\"stream\":\"a\",\"record\":\"{}\"}",
		   "tap:7: Singer RECORD without an object \"record\"");
	/* A malformed message is bad while no stream is chosen... */
	expect_bad(&sg,
		   "{\"type\":\"RECORD\",\"stream\":\"zz\",\"record\":null}",
		   "tap:7: Singer RECORD without an object \"record\"");
	assert_null(sg.stream);
	/* ... and once one is, only in its own stream's dataset: the
	 * dataset of another stream counts it, not this one. */
	schema_of(&sg, "a");
	assert_int_equal(msg(&sg,
			     "{\"type\":\"RECORD\",\"stream\":\"a\","
			     "\"record\":{\"id\":1}}",
			     &ev),
			 1);
	as_event_clear(&ev);
	expect_none(&sg,
		    "{\"type\":\"RECORD\",\"stream\":\"zz\",\"record\":null}");
	expect_bad(&sg, "{\"type\":\"RECORD\",\"stream\":\"a\",\"record\":1}",
		   "tap:7: Singer RECORD without an object \"record\"");
	as_singer_free(&sg);
	as_singer_init(&sg, NULL, 1);

	/* Invariant 9: a RECORD without a stream cannot be matched to ours;
	 * it must be named, not silently counted as another stream's. */
	rc = msg(&sg, "{\"type\":\"RECORD\",\"record\":{\"id\":1}}", &ev);
	assert_int_equal(rc, 1);
	assert_int_equal(ev.kind, AS_EV_BAD);
	assert_non_null(strstr(ev.why.msg, "without a string \"stream\""));
	as_event_clear(&ev);
	as_singer_free(&sg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_record),
		cmocka_unit_test(test_schema),
		cmocka_unit_test(test_state),
		cmocka_unit_test(test_other_types),
		cmocka_unit_test(test_lower_case),
		cmocka_unit_test(test_missing_key),
		cmocka_unit_test(test_streams),
		cmocka_unit_test(test_malformed),
	};

	as_log_set_level(AS_LOG_QUIET); /* the other-stream warnings */
	return cmocka_run_group_tests(tests, NULL, NULL);
}
