/*
 * Singer messages.  RECORD of the chosen stream is a record; SCHEMA gives
 * key_properties; STATE is the checkpoint a tap resumes from (its `value`,
 * handed back through the {state} placeholder).  Message types are
 * case-insensitive, as the Singer spec says.
 *
 * Errors that make the tap's output unusable stop the run with the line:
 * a SCHEMA of our stream without an object `schema` with `properties`
 * (invalid_schema), and a RECORD of our stream before its SCHEMA (another
 * stream's messages are its own dataset's to judge).  A RECORD that
 * lacks a property of its SCHEMA's key_properties is a bad record naming
 * it.  A stream whose SCHEMA has no key_properties (and a dataset without
 * `key`) is keyed by a hash of each record's content, column
 * `_record_hash`, and appended: replaying the same output adds nothing
 * (invariant 5).  BATCH messages are read: each `file://` manifest entry
 * is a JSON-lines file (gzip when named .gz), every line a RECORD of the
 * stream; any other URL scheme is an error.  ACTIVATE_VERSION of our
 * stream makes the run a full refresh of its table (rows the run did not
 * deliver are deleted by its publish, within the guard).
 */
#include "source/singer.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

#include "model/model.h"
#include "util/hash.h"
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

static void batch_close(as_singer *sg)
{
	if (sg->gz)
		gzclose((gzFile)sg->gz);
	sg->gz = NULL;
	free(sg->bfile);
	sg->bfile = NULL;
	free(sg->bline);
	sg->bline = NULL;
	sg->bcap = 0;
	as_strv_free(sg->manifest, sg->nmanifest);
	sg->manifest = NULL;
	sg->nmanifest = sg->imanifest = 0;
}

void as_singer_free(as_singer *sg)
{
	free(sg->stream);
	sg->stream = NULL;
	as_strv_free(sg->key, sg->nkey);
	sg->key = NULL;
	sg->nkey = 0;
	as_strv_free(sg->schemas, sg->nschemas);
	sg->schemas = NULL;
	sg->nschemas = 0;
	batch_close(sg);
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

/* Streams that sent a SCHEMA (a RECORD of any other is an error). */
static int has_schema(const as_singer *sg, const char *st)
{
	if (!st)
		return 0;
	for (size_t i = 0; i < sg->nschemas; i++)
		if (strcmp(sg->schemas[i], st) == 0)
			return 1;
	return 0;
}

static int add_schema(as_singer *sg, const char *st)
{
	char **v;

	if (has_schema(sg, st))
		return 0;
	v = realloc(sg->schemas, (sg->nschemas + 1) * sizeof(char *));
	if (!v)
		return -1;
	sg->schemas = v;
	if (!(v[sg->nschemas] = as_strdup(st)))
		return -1;
	sg->nschemas++;
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
			sg->fixed
				? ""
				: "; set source.stream or --stream to choose");
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

/* A keyless stream's record gets its content hash as its key. */
static int add_hash(json_t *rec, as_error *err)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char h[16];
	char txt[33];
	char *s;

	json_object_del(rec, AS_SINGER_HASH);
	s = json_dumps(rec, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
	if (!s)
		return as_error_set(err, AS_ENOMEM, "out of memory");
	as_hash128(s, strlen(s), 0, h);
	free(s);
	for (int i = 0; i < 16; i++) {
		txt[2 * i] = hex[h[i] >> 4];
		txt[2 * i + 1] = hex[h[i] & 15];
	}
	txt[32] = '\0';
	if (json_object_set_new(rec, AS_SINGER_HASH, json_string(txt)))
		return as_error_set(err, AS_ENOMEM, "out of memory");
	return 0;
}

/* The record of our stream, checked and handed on as ev. */
static int take_record(as_singer *sg, json_t *rec, as_event *ev, as_error *err)
{
	for (size_t i = 0; i < sg->nkey; i++)
		if (!json_object_get(rec, sg->key[i]))
			return bad(ev,
				   "%s: Singer RECORD without key "
				   "property '%s' (SCHEMA key_properties)",
				   sg->key[i]);
	if (sg->hashed) {
		rec = json_deep_copy(rec);
		if (!rec)
			return as_error_set(err, AS_ENOMEM, "out of memory");
		if (add_hash(rec, err)) {
			json_decref(rec);
			return err->code;
		}
	} else {
		json_incref(rec);
	}
	ev->kind = AS_EV_RECORD;
	ev->json = rec;
	ev->raw = NULL; /* the `data` column is the record, not the envelope */
	ev->rawlen = 0;
	return 1;
}

/* BATCH: the manifest's files, read one line at a time by
 * as_singer_pending(). */
static int batch_open(as_singer *sg, json_t *msg, const char *where,
		      as_error *err)
{
	json_t *man = json_object_get(msg, "manifest"), *u;
	json_t *enc = json_object_get(msg, "encoding");
	const char *fmt = json_string_value(json_object_get(enc, "format"));
	size_t i;

	if (fmt && strcasecmp(fmt, "jsonl") != 0)
		return as_error_set(err, AS_EINPUT,
				    "%s: Singer BATCH encoding format '%s' is "
				    "not supported (only jsonl)",
				    where, fmt);
	if (!json_is_array(man))
		return as_error_set(err, AS_EINPUT,
				    "%s: Singer BATCH without a \"manifest\" "
				    "array of file:// URLs",
				    where);
	batch_close(sg);
	sg->manifest = calloc(json_array_size(man) + 1, sizeof(char *));
	if (!sg->manifest)
		return as_error_set(err, AS_ENOMEM, "out of memory");
	json_array_foreach(man, i, u)
	{
		const char *s = json_string_value(u);

		if (!s || strncmp(s, "file://", 7) != 0)
			return as_error_set(
				err, AS_EINPUT,
				"%s: Singer BATCH manifest entry %zu is %s%s%s: "
				"only file:// URLs can be read; nothing was "
				"published",
				where, i + 1, s ? "'" : "not a string",
				s ? s : "", s ? "'" : "");
		if (!(sg->manifest[sg->nmanifest++] = as_strdup(s + 7)))
			return as_error_set(err, AS_ENOMEM, "out of memory");
	}
	return 0;
}

/* The manifest's next file opened when none is; 0 with sg->gz NULL when
 * the manifest is done. */
static int batch_next_file(as_singer *sg, as_error *err)
{
	if (sg->gz)
		return 0;
	if (sg->imanifest >= sg->nmanifest) {
		batch_close(sg);
		return 0;
	}
	free(sg->bfile);
	sg->bfile = as_strdup(sg->manifest[sg->imanifest++]);
	if (!sg->bfile)
		return as_error_set(err, AS_ENOMEM, "out of memory");
	sg->gz = gzopen(sg->bfile, "rb");
	if (!sg->gz)
		return as_error_set(err, AS_ESOURCE,
				    "%s: cannot open Singer BATCH file "
				    "%s: %m",
				    sg->batch_where, sg->bfile);
	sg->bno = 0;
	return 0;
}

/* One line of the BATCH file, however long, into sg->bline: *len its
 * length (0 at the end of the file). */
static int batch_line(as_singer *sg, size_t *len, as_error *err)
{
	*len = 0;
	for (;;) {
		if (sg->bcap - *len < 2) {
			size_t n = sg->bcap ? sg->bcap * 2 : 65536;
			char *p = realloc(sg->bline, n);

			if (!p)
				return as_error_set(err, AS_ENOMEM,
						    "out of memory");
			sg->bline = p;
			sg->bcap = n;
		}
		if (!gzgets((gzFile)sg->gz, sg->bline + *len,
			    (int)(sg->bcap - *len)))
			return 0;
		*len += strlen(sg->bline + *len);
		if (*len && sg->bline[*len - 1] == '\n')
			return 0;
	}
}

/* The end of a BATCH file: an error if reading failed, else closed. */
static int batch_file_end(as_singer *sg, as_error *err)
{
	int e;
	const char *msg = gzerror((gzFile)sg->gz, &e);

	if (e != Z_OK && e != Z_STREAM_END)
		return as_error_set(err, AS_ESOURCE,
				    "%s: reading Singer BATCH file %s: %s",
				    sg->batch_where, sg->bfile, msg);
	gzclose((gzFile)sg->gz);
	sg->gz = NULL;
	return 0;
}

/* A BATCH line (len bytes in sg->bline) as the event. */
static int batch_record(as_singer *sg, size_t len, as_event *ev, as_error *err)
{
	json_t *rec;
	int rc;

	memset(ev, 0, sizeof(*ev));
	snprintf(ev->where, sizeof(ev->where), "%s:%lld", sg->bfile,
		 (long long)sg->bno);
	rec = as_json_parse_record(sg->bline, len, ev->where, &ev->why);
	if (!rec && ev->why.code == AS_ENOMEM) {
		*err = ev->why;
		return AS_ENOMEM;
	}
	if (!rec) {
		ev->kind = AS_EV_BAD;
		return 1;
	}
	rc = take_record(sg, rec, ev, err);
	json_decref(rec);
	return rc;
}

int as_singer_pending(as_singer *sg, as_event *ev, as_error *err)
{
	for (;;) {
		size_t len;
		int rc;

		if ((rc = batch_next_file(sg, err)))
			return rc;
		if (!sg->gz)
			return 0;
		if ((rc = batch_line(sg, &len, err)))
			return rc;
		if (len == 0) {
			if ((rc = batch_file_end(sg, err)))
				return rc;
			continue;
		}
		sg->bno++;
		while (len && (sg->bline[len - 1] == '\n' ||
			       sg->bline[len - 1] == '\r'))
			len--;
		if (len == 0)
			continue;
		return batch_record(sg, len, ev, err);
	}
}

/* The column type a JSON Schema declares for a key property; AUTO when it
 * declares none plainly (anyOf, several types). */
static int key_type(json_t *props, const char *name)
{
	json_t *p = json_object_get(props, name);
	json_t *t = json_object_get(p, "type"), *x;
	const char *one = NULL, *fmt;
	size_t i;

	if (json_is_string(t)) {
		one = json_string_value(t);
	} else if (json_is_array(t)) {
		json_array_foreach(t, i, x)
		{
			const char *s = json_string_value(x);

			if (!s || strcmp(s, "null") == 0)
				continue;
			if (one)
				return AS_TYPE_AUTO;
			one = s;
		}
	}
	if (!one)
		return AS_TYPE_AUTO;
	if (strcmp(one, "integer") == 0)
		return AS_TYPE_INTEGER;
	if (strcmp(one, "number") == 0)
		return AS_TYPE_REAL;
	if (strcmp(one, "boolean") == 0)
		return AS_TYPE_BOOLEAN;
	if (strcmp(one, "string") == 0) {
		fmt = json_string_value(json_object_get(p, "format"));
		return fmt && strcmp(fmt, "date-time") == 0 ? AS_TYPE_TIMESTAMP
							    : AS_TYPE_TEXT;
	}
	return AS_TYPE_AUTO;
}

/* SCHEMA: key_properties (or the content hash), after checking there is
 * a schema with properties. */
static int schema(as_singer *sg, json_t *msg, as_event *ev, as_error *err)
{
	json_t *kp = json_object_get(msg, "key_properties"), *k;
	json_t *sc = json_object_get(msg, "schema");
	const char *st = json_string_value(json_object_get(msg, "stream"));
	size_t i;
	int ours;

	if (!st)
		return as_error_set(err, AS_EINPUT,
				    "%s: Singer SCHEMA without a string "
				    "\"stream\"",
				    ev->where);
	if (add_schema(sg, st))
		return as_error_set(err, AS_ENOMEM, "out of memory");
	/* Another stream's messages are its own dataset's to judge. */
	ours = our_stream(sg, msg, ev->where);
	if (ours != 1)
		return 0;
	if (!json_is_object(sc) ||
	    !json_is_object(json_object_get(sc, "properties")))
		return as_error_set(
			err, AS_EINPUT,
			"%s: invalid Singer SCHEMA for stream '%s': "
			"\"schema\" must be an object with "
			"\"properties\"; nothing was published",
			ev->where, st);
	if (kp && !json_is_array(kp))
		return as_error_set(err, AS_EINPUT,
				    "%s: Singer SCHEMA key_properties must be "
				    "an array of strings",
				    ev->where);
	/* The JSON Schema of the records: the engine declares the columns
	 * it types (engine/schema.c). */
	ev->json = json_incref(sc);
	if (!kp || json_array_size(kp) == 0) {
		keep_key(sg, NULL, 0);
		if (sg->keyed) { /* the dataset's key: the schema alone */
			ev->kind = AS_EV_SCHEMA;
			return 1;
		}
		/* Keyed by content, appended. */
		ev->key = calloc(1, sizeof(char *));
		if (!ev->key || !(ev->key[0] = as_strdup(AS_SINGER_HASH)))
			return as_error_set(err, AS_ENOMEM, "out of memory");
		ev->nkey = 1;
		ev->ktype = calloc(1, sizeof(int));
		if (!ev->ktype)
			return as_error_set(err, AS_ENOMEM, "out of memory");
		ev->ktype[0] = AS_TYPE_TEXT;
		ev->kind = AS_EV_SCHEMA;
		ev->hashed = 1;
		sg->hashed = 1;
		return 1;
	}
	ev->key = calloc(json_array_size(kp), sizeof(char *));
	ev->ktype = calloc(json_array_size(kp), sizeof(int));
	if (!ev->key || !ev->ktype)
		return as_error_set(err, AS_ENOMEM, "out of memory");
	json_array_foreach(kp, i, k)
	{
		if (!json_is_string(k))
			return as_error_set(err, AS_EINPUT,
					    "%s: Singer SCHEMA key_properties "
					    "must be an array of strings",
					    ev->where);
		ev->ktype[i] = key_type(json_object_get(sc, "properties"),
					json_string_value(k));
		if (!(ev->key[ev->nkey++] = as_strdup(json_string_value(k))))
			return as_error_set(err, AS_ENOMEM, "out of memory");
	}
	if (keep_key(sg, ev->key, ev->nkey) < 0)
		return as_error_set(err, AS_ENOMEM, "out of memory");
	sg->hashed = 0;
	ev->kind = AS_EV_SCHEMA;
	return 1;
}

/* A RECORD or BATCH (what) of stream st before its SCHEMA: an error. */
static int before_schema(const as_event *ev, const char *what, const char *st,
			 as_error *err)
{
	return as_error_set(err, AS_EINPUT,
			    "%s: Singer %s of stream '%s' before its SCHEMA "
			    "message; nothing was published",
			    ev->where, what, st);
}

/* RECORD: this stream's record, after its SCHEMA. */
static int record_message(as_singer *sg, json_t *msg, as_event *ev,
			  as_error *err)
{
	json_t *rec = json_object_get(msg, "record");
	const char *st = json_string_value(json_object_get(msg, "stream"));

	/* A bad line of another stream is counted once, by the
	 * dataset of that stream. */
	if (st && sg->stream && strcmp(st, sg->stream) != 0) {
		our_stream(sg, msg, ev->where); /* the one warning */
		sg->ignored++;
		return 0;
	}
	if (!json_is_object(rec))
		return bad(ev,
			   "%s: Singer RECORD without an object \"record\"%s",
			   "");
	switch (our_stream(sg, msg, ev->where)) {
	case -1:
		return bad(ev,
			   "%s: Singer RECORD without a string \"stream\"%s",
			   "");
	case 0: sg->ignored++; return 0;
	}
	if (!has_schema(sg, st))
		return before_schema(ev, "RECORD", st, err);
	return take_record(sg, rec, ev, err);
}

/* SCHEMA: as schema() says; on an error the event holds nothing. */
static int schema_message(as_singer *sg, json_t *msg, as_event *ev,
			  as_error *err)
{
	int rc = schema(sg, msg, ev, err);

	if (rc < 0) {
		json_decref(ev->json);
		ev->json = NULL;
		as_strv_free(ev->key, ev->nkey);
		ev->key = NULL;
		ev->nkey = 0;
		free(ev->ktype);
		ev->ktype = NULL;
		ev->kind = 0;
	}
	return rc;
}

/* BATCH: this stream's manifest opened, its first record read. */
static int batch_message(as_singer *sg, json_t *msg, as_event *ev,
			 as_error *err)
{
	const char *st = json_string_value(json_object_get(msg, "stream"));

	if (!st)
		return as_error_set(err, AS_EINPUT,
				    "%s: Singer BATCH without a string "
				    "\"stream\"",
				    ev->where);
	if (our_stream(sg, msg, ev->where) != 1)
		return 0;
	if (!has_schema(sg, st))
		return before_schema(ev, "BATCH", st, err);
	snprintf(sg->batch_where, sizeof(sg->batch_where), "%s", ev->where);
	if (batch_open(sg, msg, ev->where, err))
		return err->code;
	return as_singer_pending(sg, ev, err);
}

/* STATE: a checkpoint (a tap's resume point) or a bookmark. */
static int state_message(as_singer *sg, json_t *msg, as_event *ev,
			 as_error *err)
{
	json_t *v = json_object_get(msg, "value");

	if (!v)
		return 0;
	ev->checkpoint = as_json_compact(v);
	if (!ev->checkpoint)
		return as_error_set(err, AS_ENOMEM, "out of memory");
	/* A tap's STATE is where it resumes; in a file it is only
	 * the bookmark (the file resumes by offset). */
	ev->kind = sg->use_state ? AS_EV_CHECKPOINT : AS_EV_BOOKMARK;
	return 1;
}

int as_singer_message(as_singer *sg, json_t *msg, as_event *ev, as_error *err)
{
	const char *type = json_string_value(json_object_get(msg, "type"));

	if (!type)
		return bad(ev, "%s: Singer message without a string \"type\"%s",
			   "");
	if (strcasecmp(type, "RECORD") == 0)
		return record_message(sg, msg, ev, err);
	if (strcasecmp(type, "SCHEMA") == 0)
		return schema_message(sg, msg, ev, err);
	if (strcasecmp(type, "BATCH") == 0)
		return batch_message(sg, msg, ev, err);
	if (strcasecmp(type, "ACTIVATE_VERSION") == 0) {
		const char *st =
			json_string_value(json_object_get(msg, "stream"));

		if (!st || !sg->stream || strcmp(st, sg->stream) != 0)
			return 0;
		ev->kind = AS_EV_ACTIVATE;
		return 1;
	}
	if (strcasecmp(type, "STATE") == 0)
		return state_message(sg, msg, ev, err);
	return 0;
}
