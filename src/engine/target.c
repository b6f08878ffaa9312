/*
 * atomsync as a Singer target: Singer messages from a file descriptor (a
 * tap's output on stdin), every stream into its own table.  Each stream is
 * a dataset of its own (a configured one with a singer source naming the
 * stream, else one made here: table named after the stream, normalised,
 * with the prefix; mode incremental; key from SCHEMA key_properties, or
 * the content hash and append for a stream without them), with its own
 * run, staging, guards, counts and run record, all fed in one pass of the
 * input.  At the confirmed end (end of input) every run is published, then
 * the last STATE is handed to the caller (written to stdout by the
 * command): a STATE is given out only after the data it covers is
 * committed, and each run saves it as its bookmark in its publish
 * (invariant 8).
 *
 * All the runs are published in ONE transaction across their tables
 * (as_run_publish_group, invariant 1 across tables): each run stages
 * through its own connection, and the group publishes on the first run's
 * connection, which sees every committed staging.  When any run's publish
 * fails or is refused, no table is published and no STATE is given out, so
 * the orchestrator replays from the previous STATE, which is idempotent
 * (invariant 5).
 *
 * `atomsync run` of a dataset whose singer source takes every stream
 * (stream: "*") goes the same way (as_sync_every_stream): the source's
 * lines, read raw, feed the same reader.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "engine/envelope.h"
#include "engine/run.h"
#include "engine/sync.h"
#include "source/lines.h"
#include "source/source.h"
#include "source/singer.h"
#include "util/json.h"
#include "util/log.h"
#include "util/proc.h"
#include "util/str.h"
#include "util/time.h"

typedef struct tstream {
	char *name;		    /* the Singer stream */
	char *dataset;		    /* its dataset */
	atomsync_config *own;	    /* the config made for it, or NULL */
	const atomsync_config *cfg; /* the config its dataset is in */
	atomsync_store *st;	    /* its own connection */
	atomsync_run *run;
	as_singer sg;
	int published;
} tstream;

typedef struct target {
	const char *url;
	const atomsync_target_options *opt;
	/* `atomsync run` of a dataset whose singer source takes every
	 * stream (stream: "*"): its config and run options; NULL: target. */
	const as_dataset_cfg *every;
	const as_config *every_cfg;
	const atomsync_run_options *ro;
	tstream *v;
	size_t n, cap;
	char *state; /* the last STATE value, compact JSON */
} target;

/* The dataset (and table) name of a stream: lower case, every other
 * character than a letter, digit or _ made _, the prefix in front. */
static char *normalise(const char *prefix, const char *stream)
{
	as_buf b = AS_BUF_INIT;
	char *out;

	as_buf_adds(&b, prefix ? prefix : "");
	if (!prefix && isdigit((unsigned char)*stream))
		as_buf_adds(&b, "s_");
	for (const char *p = stream; *p; p++) {
		unsigned char c = (unsigned char)*p;

		as_buf_addc(&b, (char)(isalnum(c) ? tolower(c) : '_'));
	}
	out = b.failed ? NULL : as_strdup(as_buf_cstr(&b));
	as_buf_free(&b);
	return out;
}

static tstream *find(target *t, const char *stream)
{
	for (size_t i = 0; i < t->n; i++)
		if (strcmp(t->v[i].name, stream) == 0)
			return &t->v[i];
	return NULL;
}

/* The configured dataset for stream (a singer source naming it), or NULL. */
static const char *configured(const atomsync_config *cfg, const char *stream)
{
	if (!cfg)
		return NULL;
	for (size_t i = 0; i < cfg->ndatasets; i++) {
		const as_dataset_cfg *ds = &cfg->datasets[i];

		if (ds->source.format == AS_FORMAT_SINGER &&
		    ds->source.stream && strcmp(ds->source.stream, stream) == 0)
			return ds->name;
	}
	return NULL;
}

/* AS_EUSAGE when another stream of the run, or another dataset of the
 * config, already makes `table`. */
static int table_taken(const target *t, const tstream *s, const char *table,
		       const char *where, as_error *err)
{
	const as_dataset_cfg *pd = t->every;

	for (size_t i = 0; i + 1 < t->n; i++)
		if (strcmp(t->v[i].own->datasets[0].table, table) == 0)
			return as_error_set(
				err, AS_EUSAGE,
				"%s: streams '%s' and '%s' of dataset %s "
				"both make table %s; nothing was "
				"published",
				where, t->v[i].name, s->name, pd->name, table);
	for (size_t i = 0; i < t->every_cfg->ndatasets; i++) {
		const as_dataset_cfg *o = &t->every_cfg->datasets[i];

		if (o != pd && !as_every_stream(&o->source) &&
		    strcasecmp(o->table, table) == 0)
			return as_error_set(
				err, AS_EUSAGE,
				"%s: stream '%s' of dataset %s makes "
				"table %s, the table of dataset %s; set "
				"a table_prefix; nothing was published",
				where, s->name, pd->name, table, o->name);
	}
	return 0;
}

/* A stream's dataset takes the every-stream dataset's name (as a prefix),
 * reject file (with the table's name), guards and settings; NULL strings
 * when out of memory. */
static void inherit(as_dataset_cfg *nd, const as_dataset_cfg *pd)
{
	const char *suffix = ".rejects.jsonl";
	size_t plen = strlen(pd->reject_file), slen = strlen(suffix);

	free(nd->name);
	nd->name = as_sprintf("%s.%s", pd->name, nd->table);
	free(nd->reject_file);
	if (plen > slen && strcmp(pd->reject_file + plen - slen, suffix) == 0)
		nd->reject_file =
			as_sprintf("%.*s.%s%s", (int)(plen - slen),
				   pd->reject_file, nd->table, suffix);
	else
		nd->reject_file =
			as_sprintf("%s.%s", pd->reject_file, nd->table);
	nd->guard = pd->guard;
	nd->infer = pd->infer;
	nd->flatten_depth = pd->flatten_depth;
	nd->verify_threshold = pd->verify_threshold;
	nd->lease_ttl_ms = pd->lease_ttl_ms;
	nd->batch_size = pd->batch_size;
	nd->max_record_bytes = pd->max_record_bytes;
	nd->webhook = pd->webhook ? as_strdup(pd->webhook) : NULL;
	nd->notify = pd->notify ? as_strdup(pd->notify) : NULL;
}

/*
 * The dataset of a stream of a dataset taking every stream (stream: "*"):
 * named "DATASET.TABLE", its table the prefix and the stream's name
 * (normalised), its key from SCHEMA; mode, schema, contract, guard, batch
 * and size caps, lease and effects those of the dataset.
 */
static int every_stream_config(target *t, tstream *s, const char *where,
			       as_error *err)
{
	const as_dataset_cfg *pd = t->every;
	atomsync_dataset_spec sp;
	as_dataset_cfg *nd;
	char *table;
	const as_stream_cfg *ov = NULL;
	char *key = NULL;

	for (size_t i = 0; i < pd->nstreams; i++)
		if (strcmp(pd->streams[i].stream, s->name) == 0)
			ov = &pd->streams[i];
	table = ov && ov->table ? as_strdup(ov->table)
				: normalise(pd->table_prefix, s->name);
	if (!table)
		return as_error_set(err, AS_ENOMEM, "out of memory");
	if (ov && ov->nkey) {
		as_buf b = AS_BUF_INIT;

		for (size_t i = 0; i < ov->nkey; i++) {
			as_buf_adds(&b, i ? "," : "");
			as_buf_adds(&b, ov->key[i]);
		}
		key = b.failed ? NULL : as_strdup(as_buf_cstr(&b));
		as_buf_free(&b);
		if (!key) {
			free(table);
			return as_error_set(err, AS_ENOMEM, "out of memory");
		}
	}
	if (table_taken(t, s, table, where, err)) {
		free(table);
		free(key);
		return AS_EUSAGE;
	}
	memset(&sp, 0, sizeof(sp));
	sp.name = table;
	sp.format = "singer";
	sp.mode = as_mode_name(ov && ov->mode >= 0 ? (as_mode)ov->mode
						   : pd->mode);
	sp.key = key;
	sp.stream = s->name;
	sp.schema = as_schema_names[pd->schema];
	sp.schema_contract = as_contract_names[pd->contract];
	sp.max_rejects = pd->guard.max_rejects;
	if (atomsync_config_new(&s->own, t->url, err) ||
	    atomsync_config_add_dataset(s->own, &sp, err)) {
		as_error_prefix(err, "%s: stream '%s'", where, s->name);
		free(table);
		free(key);
		return err->code ? err->code : AS_ERROR;
	}
	free(table);
	free(key);
	nd = &s->own->datasets[0];
	inherit(nd, pd);
	s->cfg = s->own;
	s->dataset = as_strdup(nd->name);
	if (!nd->name || !nd->reject_file || !s->dataset ||
	    (pd->webhook && !nd->webhook) || (pd->notify && !nd->notify))
		return as_error_set(err, AS_ENOMEM, "out of memory");
	return 0;
}

/* A zeroed stream named stream at the end of t->v, or NULL. */
static tstream *new_stream(target *t, const char *stream, as_error *err)
{
	tstream *s;

	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 8;
		tstream *v = realloc(t->v, cap * sizeof(*v));

		if (!v) {
			as_error_set(err, AS_ENOMEM, "out of memory");
			return NULL;
		}
		t->v = v;
		t->cap = cap;
	}
	s = &t->v[t->n];
	memset(s, 0, sizeof(*s));
	s->name = as_strdup(stream);
	if (!s->name) {
		as_error_set(err, AS_ENOMEM, "out of memory");
		return NULL;
	}
	t->n++;
	return s;
}

/* A stream no dataset is configured for: a dataset of its own, named by
 * the prefix and the stream, incremental, keyed as its SCHEMA says. */
static int own_config(target *t, tstream *s, const char *stream,
		      const char *where, as_error *err)
{
	atomsync_dataset_spec sp;

	memset(&sp, 0, sizeof(sp));
	s->dataset = normalise(t->opt->prefix, stream);
	if (!s->dataset)
		return as_error_set(err, AS_ENOMEM, "out of memory");
	for (size_t i = 0; i + 1 < t->n; i++)
		if (strcmp(t->v[i].dataset, s->dataset) == 0)
			return as_error_set(err, AS_EUSAGE,
					    "%s: streams '%s' and '%s' both "
					    "make table %s; configure a table "
					    "for one of them (--config)",
					    where, t->v[i].name, stream,
					    s->dataset);
	sp.name = s->dataset;
	sp.format = "singer";
	sp.mode = "incremental";
	sp.stream = stream;
	sp.schema = t->opt->schema;
	sp.schema_contract = t->opt->schema_contract;
	sp.max_rejects = -1;
	if (atomsync_config_new(&s->own, t->url, err) ||
	    atomsync_config_add_dataset(s->own, &sp, err)) {
		as_error_prefix(err, "%s: stream '%s'", where, stream);
		return err->code ? err->code : AS_ERROR;
	}
	s->cfg = s->own;
	return 0;
}

/* The stream's store connection and its run, begun. */
static int begin_stream_run(target *t, tstream *s, as_error *err)
{
	atomsync_run_options ro;

	if (atomsync_store_open(&s->st, t->url, err))
		return err->code ? err->code : AS_ERROR;
	memset(&ro, 0, sizeof(ro));
	if (t->ro) {
		ro = *t->ro;
		ro.check_last_run = 0;
	}
	ro.allow_empty |= t->opt->allow_empty;
	ro.allow_deletes |= t->opt->allow_deletes;
	/* Input on a pipe cannot be read again: never resumed. */
	if (as_run_begin(&s->run, s->st, s->cfg, s->dataset, &ro, 0, err))
		return err->code ? err->code : AS_ERROR;
	as_run_allow_deferred(s->run);
	return 0;
}

/* A new stream (its first SCHEMA): its dataset, connection and run. */
static tstream *add_stream(target *t, const char *stream, const char *where,
			   as_error *err)
{
	const char *dsname;
	tstream *s = new_stream(t, stream, err);

	if (!s)
		return NULL;
	dsname = t->every ? NULL : configured(t->opt->cfg, stream);
	if (t->every) {
		if (every_stream_config(t, s, where, err))
			return NULL;
	} else if (dsname) {
		s->cfg = t->opt->cfg;
		s->dataset = as_strdup(dsname);
	} else if (own_config(t, s, stream, where, err)) {
		return NULL;
	}
	if (!s->dataset) {
		as_error_set(err, AS_ENOMEM, "out of memory");
		return NULL;
	}
	as_singer_init(&s->sg, stream, 0);
	s->sg.keyed = as_config_dataset(s->cfg, s->dataset)->nkey > 0;
	if (begin_stream_run(t, s, err))
		return NULL;
	return s;
}

static void stream_free(tstream *s)
{
	if (s->run)
		atomsync_run_free(s->run);
	if (s->st)
		atomsync_store_free(s->st);
	as_singer_free(&s->sg);
	atomsync_config_free(s->own);
	free(s->name);
	free(s->dataset);
}

/* One event of a stream's singer into its run. */
static int feed(tstream *s, as_event *ev, as_error *err)
{
	switch (ev->kind) {
	case AS_EV_RECORD:
		return as_run_put_value(s->run, ev->json, NULL, 0, ev->where,
					err);
	case AS_EV_BAD:
		return as_run_reject(s->run, &ev->why, ev->where, NULL, 0, err);
	case AS_EV_SCHEMA:
		if (as_run_set_key(s->run, ev->key, ev->ktype, ev->nkey,
				   ev->hashed, err))
			return err->code;
		return ev->json ? as_run_declare(s->run, ev->json, err) : 0;
	case AS_EV_ACTIVATE: return as_run_full_refresh(s->run, ev->where, err);
	default: return 0;
	}
}

/* One message of the input. */
static int message(target *t, json_t *msg, const char *where, as_error *err)
{
	const char *type = json_string_value(json_object_get(msg, "type"));
	const char *st = json_string_value(json_object_get(msg, "stream"));
	tstream *s;
	as_event ev;
	int rc;

	if (!type)
		return as_error_set(err, AS_EINPUT,
				    "%s: Singer message without a string "
				    "\"type\"",
				    where);
	if (strcasecmp(type, "STATE") == 0) {
		json_t *v = json_object_get(msg, "value");
		char *c;

		if (!v)
			return 0;
		if (!(c = as_json_compact(v)))
			return as_error_set(err, AS_ENOMEM, "out of memory");
		as_json_free(t->state);
		t->state = c;
		return 0;
	}
	if (strcasecmp(type, "RECORD") && strcasecmp(type, "SCHEMA") &&
	    strcasecmp(type, "BATCH") && strcasecmp(type, "ACTIVATE_VERSION"))
		return 0; /* others carry nothing a table needs */
	if (!st)
		return as_error_set(err, AS_EINPUT,
				    "%s: Singer %s without a string \"stream\"",
				    where, type);
	s = find(t, st);
	if (!s && strcasecmp(type, "ACTIVATE_VERSION") == 0)
		return 0; /* a stream of no rows: nothing to refresh */
	if (!s && strcasecmp(type, "SCHEMA") != 0)
		return as_error_set(err, AS_EINPUT,
				    "%s: Singer %s of stream '%s' before its "
				    "SCHEMA message; nothing was published",
				    where, type, st);
	if (!s) {
		/* An invalid SCHEMA is named before any run is begun. */
		json_t *sc = json_object_get(msg, "schema");

		if (!json_is_object(sc) ||
		    !json_is_object(json_object_get(sc, "properties")))
			return as_error_set(
				err, AS_EINPUT,
				"%s: invalid Singer SCHEMA for "
				"stream '%s': \"schema\" must be an "
				"object with \"properties\"; nothing "
				"was published",
				where, st);
	}
	if (!s && !(s = add_stream(t, st, where, err)))
		return err->code ? err->code : AS_ERROR;
	memset(&ev, 0, sizeof(ev));
	snprintf(ev.where, sizeof(ev.where), "%s", where);
	rc = as_singer_message(&s->sg, msg, &ev, err);
	while (rc > 0) {
		rc = feed(s, &ev, err);
		as_event_clear(&ev);
		if (rc)
			return rc;
		/* The rest of a BATCH. */
		rc = as_singer_pending(&s->sg, &ev, err);
	}
	as_event_clear(&ev);
	return rc;
}

/* A RECORD of a known keyed stream, its text to the run as a line (the
 * engine maps lines on two threads).  1: taken; 0: read it the slow way. */
static int fast_record(target *t, const char *line, size_t len,
		       const char *where, as_error *err)
{
	as_span ty, st, rec;
	tstream *s = NULL;

	if (!as_envelope_scan(line, len, &ty, &st, &rec) || ty.n != 6 ||
	    strncasecmp(ty.p, "RECORD", 6) != 0)
		return 0;
	for (size_t i = 0; i < t->n; i++)
		if (strlen(t->v[i].name) == st.n &&
		    memcmp(t->v[i].name, st.p, st.n) == 0) {
			s = &t->v[i];
			break;
		}
	/* Unknown streams and content-hashed ones go the slow way; a
	 * missing key property is named by the mapping ("missing key"). */
	if (!s || s->sg.hashed)
		return 0;
	if (as_run_put_value(s->run, NULL, rec.p, rec.n, where, err))
		return err->code ? err->code : AS_ERROR;
	return 1;
}

static void info_of(tstream *s, const char *status, const char *error,
		    atomsync_run_info *info)
{
	memset(info, 0, sizeof(*info));
	info->run_id = s->run ? atomsync_run_id(s->run) : 0;
	info->dataset = as_strdup(s->dataset);
	info->status = as_strdup(status);
	info->error = as_strdup(error);
	if (s->run) {
		info->seen = s->run->seen;
		info->rejected = s->run->rejected;
	}
}

/* One line of the input. */
static int take_line(target *t, const char *line, size_t len, const char *where,
		     as_error *err)
{
	json_t *msg;
	as_error why;
	int rc;
	size_t i = 0;

	while (i < len && (line[i] == ' ' || line[i] == '\t'))
		i++;
	if (i == len)
		return 0;
	rc = fast_record(t, line, len, where, err);
	if (rc < 0)
		return rc;
	if (rc > 0)
		return 0;
	msg = as_json_parse_record(line, len, where, &why);
	if (!msg) {
		*err = why;
		return why.code ? why.code : AS_EINPUT;
	}
	rc = message(t, msg, where, err);
	json_decref(msg);
	return rc;
}

/* The confirmed end: every stream in one transaction (invariant 1 across
 * tables), each with the last STATE as its bookmark (invariant 8). */
static int publish_all(target *t, atomsync_run_info *out, as_error *err)
{
	atomsync_run **runs = calloc(t->n ? t->n : 1, sizeof(*runs));
	int rc;

	if (!runs)
		return as_error_set(err, AS_ENOMEM, "out of memory");
	for (size_t i = 0; i < t->n; i++) {
		tstream *s = &t->v[i];

		if (t->state && !s->run->ds->cursor) {
			free(s->run->bookmark);
			s->run->bookmark = as_strdup(t->state);
			s->run->rc.bookmark = s->run->bookmark;
		}
		runs[i] = s->run;
	}
	rc = as_run_publish_group(runs, t->n, out, err);
	free(runs);
	return rc;
}

/* Every run ended failed with err's message (nothing published). */
static void fail_all(target *t, as_error *err, atomsync_run_info **infos,
		     size_t *ninfo)
{
	char reason[AS_ERROR_MSG_MAX];
	atomsync_run_info *out = calloc(t->n ? t->n : 1, sizeof(*out));

	snprintf(reason, sizeof(reason), "%s", err->msg);
	for (size_t i = 0; i < t->n; i++) {
		as_error e2;

		if (t->v[i].run)
			atomsync_run_abort(t->v[i].run, reason, &e2);
		if (out)
			info_of(&t->v[i], "failed", reason, &out[i]);
	}
	if (out) {
		*infos = out;
		*ninfo = t->n;
	}
	snprintf(err->msg, sizeof(err->msg), "%s", reason);
}

static void target_free(target *t)
{
	for (size_t i = 0; i < t->n; i++)
		stream_free(&t->v[i]);
	free(t->v);
	as_json_free(t->state);
}

int atomsync_target(const char *store_url, int fd,
		    const atomsync_target_options *opt,
		    atomsync_state_fn on_state, void *ud,
		    atomsync_run_info **infos, size_t *ninfo,
		    atomsync_error *err)
{
	static const atomsync_target_options none;
	target t;
	as_lines lines;
	const char *line;
	size_t len;
	char where[160];
	int rc;
	atomsync_run_info *out = NULL;

	*infos = NULL;
	*ninfo = 0;
	memset(&t, 0, sizeof(t));
	t.url = store_url;
	t.opt = opt ? opt : &none;
	if (as_lines_init(&lines, fd, ((size_t)16 << 20) + 4096, 0, "stdin"))
		return as_error_set(err, AS_ENOMEM, "out of memory");
	for (;;) {
		if (as_interrupted) {
			rc = as_error_set(err, AS_EINTR,
					  "target: interrupted by a signal; "
					  "nothing was published");
			goto fail;
		}
		rc = as_lines_next(&lines, &line, &len, err);
		if (rc < 0)
			goto fail;
		if (rc == AS_LINE_EOF)
			break;
		snprintf(where, sizeof(where), "stdin:%lld",
			 (long long)lines.line);
		if (rc != AS_LINE_OK) {
			rc = as_error_set(err, AS_EINPUT,
					  "%s: message over 16 MiB; nothing "
					  "was published",
					  where);
			goto fail;
		}
		if ((rc = take_line(&t, line, len, where, err)))
			goto fail;
	}
	out = calloc(t.n ? t.n : 1, sizeof(*out));
	if (!out) {
		rc = as_error_set(err, AS_ENOMEM, "out of memory");
		goto fail;
	}
	rc = publish_all(&t, out, err);
	if (!rc && t.state && on_state)
		on_state(t.state, ud);
	*infos = out;
	*ninfo = t.n;
	goto done;
fail:
	fail_all(&t, err, infos, ninfo);
done:
	target_free(&t);
	as_lines_free(&lines);
	return rc;
}

/* ---- `atomsync run` of a dataset taking every stream ---- */

/* The bookmark of a dataset taking every stream: the STATE its last
 * published group saved (all of its streams' datasets save the same one in
 * the same transaction, so the newest published run's is it). */
static int every_bookmark(as_store *st, const as_dataset_cfg *ds, char **out,
			  as_error *err)
{
	as_dataset_status *v = NULL;
	size_t n = 0, len = strlen(ds->name);
	int64_t best = 0;

	*out = NULL;
	if (st->ops->status(st, &v, &n, err))
		return err->code;
	for (size_t i = 0; i < n; i++) {
		if (strncmp(v[i].dataset, ds->name, len) != 0 ||
		    v[i].dataset[len] != '.' || !v[i].cursor ||
		    v[i].published_run <= best)
			continue;
		best = v[i].published_run;
		free(*out);
		*out = as_strdup(v[i].cursor);
	}
	as_dataset_status_free(v, n);
	return 0;
}

/* The runs of the group as one result: counts summed, the first run's id,
 * the worst status; each stream's outcome logged. */
static void sum_infos(const as_dataset_cfg *ds, atomsync_run_info *v, size_t n,
		      int rc, const as_error *err, atomsync_run_info *info)
{
	char buf[40];

	if (!info)
		return;
	memset(info, 0, sizeof(*info));
	info->dataset = as_strdup(ds->name);
	info->kind = as_strdup("sync");
	info->mode = as_strdup(as_mode_name(ds->mode));
	for (size_t i = 0; i < n; i++) {
		if (!info->run_id)
			info->run_id = v[i].run_id;
		info->seen += v[i].seen;
		info->inserted += v[i].inserted;
		info->updated += v[i].updated;
		info->unchanged += v[i].unchanged;
		info->deleted += v[i].deleted;
		info->rejected += v[i].rejected;
		info->duplicates += v[i].duplicates;
		if (!info->started_at && v[i].started_at)
			info->started_at = as_strdup(v[i].started_at);
		as_info("%s: run %lld %s: %lld seen, %lld inserted, %lld "
			"updated, %lld unchanged, %lld deleted",
			v[i].dataset ? v[i].dataset : "?",
			(long long)v[i].run_id, v[i].status ? v[i].status : "?",
			(long long)v[i].seen, (long long)v[i].inserted,
			(long long)v[i].updated, (long long)v[i].unchanged,
			(long long)v[i].deleted);
	}
	info->status = as_strdup(rc == 0	     ? "completed"
				 : rc == AS_EREFUSED ? "refused"
						     : "failed");
	info->error = rc ? as_strdup(err->msg) : NULL;
	if (!info->started_at)
		info->started_at =
			as_strdup(as_iso8601(as_now(), buf, sizeof(buf)));
	info->finished_at = as_strdup(as_iso8601(as_now(), buf, sizeof(buf)));
}

/* The tap's output read to its end into t's streams, each record staged
 * on its stream's run; the source must confirm the end of its data. */
static int read_tap(target *t, const as_config *cfg, const as_dataset_cfg *ds,
		    const char *bookmark, as_error *err)
{
	as_source_opts so;
	as_source *src = NULL;
	as_event ev;
	int rc;

	memset(&so, 0, sizeof(so));
	so.dataset = ds->name;
	so.bookmark = bookmark;
	so.max_record_bytes = ds->max_record_bytes;
	so.cfg = cfg;
	so.raw = 1;
	if ((rc = as_source_open(&src, &ds->source, &so, err)))
		goto done;
	for (;;) {
		if (as_interrupted) {
			rc = as_error_set(err, AS_EINTR,
					  "dataset %s: interrupted by a "
					  "signal; nothing was published",
					  ds->name);
			goto done;
		}
		rc = src->ops->next(src, &ev, err);
		if (rc <= 0)
			break;
		if (ev.kind == AS_EV_BAD) {
			*err = ev.why;
			rc = err->code ? err->code : AS_EINPUT;
			as_error_prefix(err, "dataset %s", ds->name);
			as_event_clear(&ev);
			goto done;
		}
		rc = ev.kind == AS_EV_RECORD
			     ? take_line(t, ev.raw, ev.rawlen, ev.where, err)
			     : 0;
		as_event_clear(&ev);
		if (rc)
			goto done;
	}
	if (!rc && !src->complete)
		rc = as_error_set(err, AS_ESOURCE,
				  "dataset %s: the source did not confirm the "
				  "end of its data; nothing was published",
				  ds->name);
done:
	as_source_close(src);
	return rc;
}

int as_sync_every_stream(as_store *st, const as_config *cfg,
			 const as_dataset_cfg *ds,
			 const atomsync_run_options *opt, as_progress_fn fn,
			 void *ud, atomsync_run_info *info, as_error *err)
{
	static const atomsync_target_options none;
	atomsync_run_options defaults;
	target t;
	char *bookmark = NULL;
	atomsync_run_info *out = NULL;
	size_t nout = 0;
	int rc;

	(void)fn;
	(void)ud;
	memset(&defaults, 0, sizeof(defaults));
	memset(&t, 0, sizeof(t));
	t.url = cfg->store;
	t.opt = &none;
	t.every = ds;
	t.every_cfg = cfg;
	t.ro = opt ? opt : &defaults;
	/* The tap's STATE is handed to it when the mode takes what changed;
	 * a full dataset's tap must deliver everything: {}. */
	if ((ds->mode == AS_MODE_INCREMENTAL || ds->mode == AS_MODE_APPEND) &&
	    !t.ro->restart && (rc = every_bookmark(st, ds, &bookmark, err)))
		return rc;
	if ((rc = read_tap(&t, cfg, ds, bookmark, err)))
		goto fail;
	if (t.n == 0)
		as_warn("dataset %s: the tap sent no stream; nothing to "
			"publish",
			ds->name);
	out = calloc(t.n ? t.n : 1, sizeof(*out));
	if (!out) {
		rc = as_error_set(err, AS_ENOMEM, "out of memory");
		goto fail;
	}
	nout = t.n;
	rc = publish_all(&t, out, err);
	goto done;
fail:
	fail_all(&t, err, &out, &nout);
done:
	sum_infos(ds, out, nout, rc, err, info);
	for (size_t i = 0; out && i < nout; i++)
		atomsync_run_info_clear(&out[i]);
	free(out);
	free(bookmark);
	target_free(&t);
	return rc;
}

/* The run records of a dataset taking every stream: those of its streams'
 * datasets (DATASET.*), newest first, at most limit (0: all). */
int as_every_stream_runs(as_store *st, const char *name, size_t limit,
			 atomsync_run_info **out, size_t *nout, as_error *err)
{
	as_dataset_status *sv = NULL;
	size_t ns = 0, len = strlen(name), n = 0;
	atomsync_run_info *all = NULL;
	int rc = 0;

	*out = NULL;
	*nout = 0;
	if (st->ops->status(st, &sv, &ns, err))
		return err->code;
	for (size_t i = 0; i < ns && !rc; i++) {
		atomsync_run_info *v = NULL, *grown;
		size_t k = 0;

		if (strncmp(sv[i].dataset, name, len) != 0 ||
		    sv[i].dataset[len] != '.')
			continue;
		if ((rc = st->ops->runs_list(st, sv[i].dataset, limit, &v, &k,
					     err)))
			break;
		grown = realloc(all, (n + k + 1) * sizeof(*all));
		if (!grown) {
			atomsync_run_info_free(v, k);
			rc = as_error_set(err, AS_ENOMEM, "out of memory");
			break;
		}
		all = grown;
		memcpy(all + n, v, k * sizeof(*v));
		n += k;
		free(v); /* its entries moved into all */
	}
	as_dataset_status_free(sv, ns);
	if (rc) {
		atomsync_run_info_free(all, n);
		return rc;
	}
	/* newest first */
	for (size_t i = 1; i < n; i++)
		for (size_t j = i; j > 0 && all[j].run_id > all[j - 1].run_id;
		     j--) {
			atomsync_run_info t = all[j];

			all[j] = all[j - 1];
			all[j - 1] = t;
		}
	if (limit && n > limit) {
		for (size_t i = limit; i < n; i++)
			atomsync_run_info_clear(&all[i]);
		n = limit;
	}
	*out = all;
	*nout = n;
	return 0;
}
