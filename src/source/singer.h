/*
 * Singer messages (RECORD, SCHEMA, STATE) into source events, so existing
 * Singer taps work unchanged.  Message types are case-insensitive; BATCH is
 * a named bad record (its files are not read).
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
} as_singer;

void as_singer_init(as_singer *sg, const char *stream, int use_state);
void as_singer_free(as_singer *sg);
/* Turn one message into an event: 1 when ev was filled, 0 when the message
 * produced none (ignored), < 0 error.  msg is borrowed. */
int as_singer_message(as_singer *sg, json_t *msg, as_event *ev, as_error *err);

#endif
