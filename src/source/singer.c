/*
 * Singer messages.  RECORD of the chosen stream is a record; SCHEMA gives
 * key_properties; STATE is the checkpoint a tap resumes from (its `value`,
 * handed back through the {state} placeholder).  Message types are
 * case-insensitive, as the Singer spec says.  A RECORD of our stream that
 * lacks a property of its SCHEMA's key_properties is a bad record naming it.
 * BATCH (records in files the message points to) is not read: a named bad
 * record, never a silent skip.  ACTIVATE_VERSION carries nothing a table
 * sync needs and is ignored.
 */
#include "source/singer.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/json.h"
#include "util/log.h"
#include "util/str.h"

void as_singer_init(as_singer *sg, const char *stream, int use_state)
{
	memset(sg, 0, sizeof(*sg));
	sg->stream = as_strdup(stream);
	sg->fixed = stream != NULL;
	sg->use_state = use_state;
}

void as_singer_free(as_singer *sg)
{
	free(sg->stream);
	sg->stream = NULL;
	as_strv_free(sg->key, sg->nkey);
	sg->key = NULL;
	sg->nkey = 0;
}

/* Remember the stream's key_properties, for the missing-key check. */
static int keep_key(as_singer *sg, char **key, size_t nkey)
{
	size_t i;

	as_strv_free(sg->key, sg->nkey);
	sg->key = NULL;
	sg->nkey = 0;
	if (nkey == 0)
		return 0;
	sg->key = calloc(nkey, sizeof(char *));
	if (!sg->key)
		return -1;
	for (i = 0; i < nkey; i++) {
		sg->key[i] = as_strdup(key[i]);
		if (!sg->key[i])
			return -1;
		sg->nkey++;
	}
	return 0;
}

/* 1 when the message belongs to our stream, 0 for another stream, -1 when
 * it names none. */
static int our_stream(as_singer *sg, json_t *msg, const char *where)
{
	const char *st = json_string_value(json_object_get(msg, "stream"));

	if (!st)
		return -1;
	if (!sg->stream) {
		sg->stream = as_strdup(st);
		return 1;
	}
	if (strcmp(st, sg->stream) == 0)
		return 1;
	if (!sg->warned) {
		as_warn("%s: ignoring messages of stream '%s' (this dataset takes "
			"stream '%s'%s)",
			where, st, sg->stream,
			sg->fixed ? "" : "; set source.stream to choose");
		sg->warned = 1;
	}
	return 0;
}

static int bad(as_event *ev, const char *fmt, const char *what)
{
	ev->kind = AS_EV_BAD;
	as_error_set(&ev->why, AS_EINPUT, fmt, ev->where, what);
	return 1;
}

int as_singer_message(as_singer *sg, json_t *msg, as_event *ev, as_error *err)
{
	const char *type = json_string_value(json_object_get(msg, "type"));

	(void)err;
	if (!type)
		return bad(ev, "%s: Singer message without a string \"type\"%s",
			   "");
	if (strcasecmp(type, "RECORD") == 0) {
		json_t *rec = json_object_get(msg, "record");

		if (!json_is_object(rec))
			return bad(
				ev,
				"%s: Singer RECORD without an object \"record\"%s",
				"");
		switch (our_stream(sg, msg, ev->where)) {
		case -1:
			return bad(
				ev,
				"%s: Singer RECORD without a string \"stream\"%s",
				"");
		case 0: sg->ignored++; return 0;
		}
		for (size_t i = 0; i < sg->nkey; i++)
			if (!json_object_get(rec, sg->key[i]))
				return bad(
					ev,
					"%s: Singer RECORD without key "
					"property '%s' (SCHEMA key_properties)",
					sg->key[i]);
		ev->kind = AS_EV_RECORD;
		ev->json = json_incref(rec);
		ev->raw = NULL; /* the `data` column is the record, not the
				   envelope */
		ev->rawlen = 0;
		return 1;
	}
	if (strcasecmp(type, "SCHEMA") == 0) {
		json_t *kp = json_object_get(msg, "key_properties"), *k;
		size_t i;

		if (our_stream(sg, msg, ev->where) != 1)
			return 0;
		/* The JSON Schema of the records: the engine declares the
		 * columns it types (engine/schema.c). */
		if (json_is_object(json_object_get(
			    json_object_get(msg, "schema"), "properties"))) {
			ev->json = json_incref(json_object_get(msg, "schema"));
			ev->kind = AS_EV_SCHEMA;
		}
		if (!json_is_array(kp) || json_array_size(kp) == 0) {
			keep_key(sg, NULL, 0);
			return ev->json ? 1 : 0;
		}
		ev->key = calloc(json_array_size(kp), sizeof(char *));
		if (!ev->key)
			return as_error_set(err, AS_ENOMEM, "out of memory");
		json_array_foreach(kp, i, k)
		{
			if (!json_is_string(k)) {
				as_strv_free(ev->key, ev->nkey);
				ev->key = NULL;
				ev->nkey = 0;
				return bad(
					ev,
					"%s: SCHEMA key_properties must be %s",
					"strings");
			}
			ev->key[ev->nkey++] = as_strdup(json_string_value(k));
		}
		if (keep_key(sg, ev->key, ev->nkey) < 0)
			return as_error_set(err, AS_ENOMEM, "out of memory");
		ev->kind = AS_EV_SCHEMA;
		return 1;
	}
	if (strcasecmp(type, "BATCH") == 0)
		return bad(ev,
			   "%s: Singer BATCH messages are not supported%s (the "
			   "tap must send RECORD messages)",
			   "");
	if (strcasecmp(type, "STATE") == 0) {
		json_t *v = json_object_get(msg, "value");

		if (!sg->use_state || !v)
			return 0;
		ev->checkpoint = as_json_compact(v);
		if (!ev->checkpoint)
			return as_error_set(err, AS_ENOMEM, "out of memory");
		ev->kind = AS_EV_CHECKPOINT;
		return 1;
	}
	return 0;
}
