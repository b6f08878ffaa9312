/*
 * Singer messages (RECORD, SCHEMA, STATE, BATCH) into source events, so
 * existing Singer taps work unchanged.  Message types are case-insensitive.
 */
#ifndef AS_SOURCE_SINGER_H
#define AS_SOURCE_SINGER_H

#include "source/source.h"

typedef struct as_singer {
	char *stream;	 /* the stream taken; NULL until the first message */
	int fixed;	 /* stream came from the config */
	int warned;	 /* about another stream */
	int use_state;	 /* STATE messages are checkpoints (exec) */
	int64_t ignored; /* records of other streams */
	char **key;	 /* key_properties of the stream's last SCHEMA */
	size_t nkey;
	int keyed;	/* the dataset configures its key */
	int hashed;	/* keyless stream: keyed by AS_SINGER_HASH */
	char **schemas; /* streams that sent a SCHEMA */
	size_t nschemas;
	/* BATCH being read */
	char **manifest;
	size_t nmanifest, imanifest;
	void *gz; /* gzFile */
	char *bfile, *bline;
	size_t bcap;
	long long bno;
	char batch_where[160];
} as_singer;

/* The key column of a stream without key_properties: a hash of the
 * record's content. */
#define AS_SINGER_HASH "_record_hash"

void as_singer_init(as_singer *sg, const char *stream, int use_state);
void as_singer_free(as_singer *sg);
/* Turn one message into an event: 1 when ev was filled, 0 when the message
 * produced none (ignored), < 0 error.  msg is borrowed. */
int as_singer_message(as_singer *sg, json_t *msg, as_event *ev, as_error *err);
/* The next record of a BATCH being read: 1 when ev was filled, 0 when no
 * BATCH is open (read the next message), < 0 error. */
int as_singer_pending(as_singer *sg, as_event *ev, as_error *err);

#endif
