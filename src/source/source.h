/*
 * Record sources behind one interface: file, stdin, exec, http.  A source
 * yields events (records, unparseable records, checkpoints, Singer keys) and
 * reports a confirmed end of data only at a clean end: end of file, or the
 * command's exit status 0, or pagination that ended normally (invariant 3).
 */
#ifndef AS_SOURCE_H
#define AS_SOURCE_H

#include <jansson.h>
#include <stdint.h>

#include "config/config.h"
#include "util/error.h"

typedef enum as_event_kind {
	AS_EV_RECORD = 1, /* json (and raw when the record was one line) */
	AS_EV_BAD,	  /* a record that could not be parsed: why */
	AS_EV_CHECKPOINT, /* everything before this event can be resumed from */
	AS_EV_SCHEMA,	  /* Singer SCHEMA key_properties (and its schema) */
	AS_EV_BOOKMARK,	  /* Singer STATE of a file or stdin: checkpoint holds
			   * its value (the bookmark, not a resume point) */
	AS_EV_ACTIVATE	  /* Singer ACTIVATE_VERSION: the run is the stream's
			   * whole table (a full refresh) */
} as_event_kind;

typedef struct as_event {
	as_event_kind kind;
	json_t *json;	 /* RECORD (SCHEMA: its schema): owned by the event */
	const char *raw; /* RECORD/BAD: the line, borrowed until next() */
	size_t rawlen;
	char where[160];  /* RECORD/BAD: "file:line" or "page 3 item 7" */
	as_error why;	  /* BAD */
	char *checkpoint; /* CHECKPOINT: owned */
	char **key;	  /* SCHEMA: owned */
	size_t nkey;
	int hashed; /* SCHEMA: no key_properties, keyed by content (append) */
	int *ktype; /* SCHEMA: nkey as_type values from the schema (AUTO:
		     * not declared), owned */
} as_event;

typedef struct as_source as_source;

typedef struct as_source_ops {
	const char *name;
	/* 1: an event in ev; 0: end of data (s->complete says whether it was
	 * confirmed); < 0: the source failed. */
	int (*next)(as_source *s, as_event *ev, as_error *err);
	void (*close)(as_source *s);
} as_source_ops;

struct as_source {
	const as_source_ops *ops;
	int complete;	 /* reached a confirmed end of data */
	int64_t records; /* records delivered so far (progress) */
	int64_t pages;	 /* HTTP pages fetched (progress) */
	int64_t bytes;	 /* bytes read (progress) */
};

typedef struct as_source_opts {
	const char *dataset;
	const char *checkpoint;	  /* resume point from the store, or NULL */
	const char *cursor;	  /* incremental cursor (raw text), or NULL */
	const char *bookmark;	  /* Singer: the STATE of the last published
				   * run, {state} of a fresh run; or NULL */
	int64_t max_record_bytes; /* a longer record is a bad record */
	int64_t checkpoint_every; /* line sources: records between checkpoints
				   */
	const as_config *cfg;	  /* secrets, for redaction */
	int keyed; /* the dataset configures its key (Singer: no hash key) */
	/* Singer, every stream (engine/target.c): each message line as an
	 * AS_EV_RECORD with only raw/rawlen (not parsed, no checkpoints);
	 * the reader of the messages makes them events. */
	int raw;
} as_source_opts;

/* A source refuses a checkpoint that no longer applies (the file changed):
 * the run starts over. */
#define AS_ECHECKPOINT (-20)

int as_source_open(as_source **out, const as_source_cfg *cfg,
		   const as_source_opts *o, as_error *err);
void as_source_close(as_source *s);
/* Whether runs of this source can resume from a checkpoint. */
int as_source_resumable(const as_source_cfg *cfg);
void as_event_clear(as_event *ev);
/* Make ev the bad record of a line over max_record_size: rc is the line
 * reader's AS_LINE_TOO_LONG (len is the record's size) or AS_LINE_ENDLESS
 * (no end of line in the first len bytes).  ev->where is set already. */
void as_source_over_cap(as_event *ev, int rc, size_t len, int64_t max);

/* Backends (one file each). */
int as_file_source_open(as_source **out, const as_source_cfg *cfg,
			const as_source_opts *o, as_error *err);
int as_exec_source_open(as_source **out, const as_source_cfg *cfg,
			const as_source_opts *o, as_error *err);
int as_http_source_open(as_source **out, const as_source_cfg *cfg,
			const as_source_opts *o, as_error *err);

#endif
