/*
 * What an outbox event holds (DESIGN.md invariant 7), in the vocabulary the
 * store and effects/ share: the `invalidate:` key templates, the plan of a
 * run's events that the engine resolves from the dataset and hands to the
 * store (as it hands it an as_table), the run summary, and the JSON payload
 * of a redis event built key by key under the plan's caps.  The store
 * writes the events in the publish transaction; effects/ reads them back
 * and delivers them after commit.  Nothing here sees SQL or the config.
 */
#ifndef AS_MODEL_OUTBOX_H
#define AS_MODEL_OUTBOX_H

#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"
#include "util/error.h"

/* Keys per event: a larger change is split over several events so that
 * no payload grows past tens of megabytes. */
#define AS_OUTBOX_MAX_KEYS 1000000
/* Cap of one payload in bytes (keys are at most this long in total). */
#define AS_OUTBOX_MAX_PAYLOAD ((size_t)64 << 20)

/* ---- key templates: "game:{id}", "catalog:*", "home" ---- */

typedef struct as_tpl_part {
	char *text; /* literal text, or a column name when column is set */
	int column;
	size_t index; /* the column's index in as_table.cols (resolved) */
} as_tpl_part;

typedef struct as_tpl {
	char *src;	    /* the template as written */
	int pattern;	    /* no {column} and a glob char: SCAN MATCH */
	int fixed;	    /* no {column}, no glob: one key as written */
	as_tpl_part *parts; /* in order; "{{" and "}}" are literal braces */
	size_t nparts;
} as_tpl;

int as_tpl_parse(as_tpl *t, const char *src, as_error *err);
void as_tpl_free(as_tpl *t);
void as_tpls_free(as_tpl *v, size_t n);

/* ---- the plan of a run's events ---- */

/*
 * Resolved by the engine from the dataset's invalidate, webhook and notify
 * (effects/keys.c, as_outbox_plan_make) against the run's table, before the
 * publish: the store renders keys from tpls, records a webhook event when
 * webhook is set, and sends notify on a store that has NOTIFY.
 */
typedef struct as_outbox_plan {
	as_tpl *tpls; /* columns resolved to indexes of the run's as_table */
	size_t ntpls;
	int webhook;	    /* record a webhook event with the summary */
	char *notify;	    /* NOTIFY channel (PostgreSQL), NULL: none */
	int before;	    /* a template names a non-key column: an updated
			     * row's old values make keys too */
	int64_t max_keys;   /* keys per event (AS_OUTBOX_MAX_KEYS) */
	size_t max_payload; /* bytes per payload (AS_OUTBOX_MAX_PAYLOAD) */
} as_outbox_plan;

/* Whether the plan records anything (NULL: nothing). */
static inline int as_outbox_plan_any(const as_outbox_plan *p)
{
	return p && (p->ntpls || p->webhook || p->notify);
}

void as_outbox_plan_free(as_outbox_plan *p);

/* ---- payloads ---- */

typedef struct as_outbox_summary {
	const char *dataset;
	int64_t run_id;
	const char *kind; /* "sync", "rollback" */
	int64_t inserted, updated, deleted;
} as_outbox_summary;

/* A summary JSON object without keys: counts, the plan's patterns (plan
 * may be NULL), keys_count (the webhook body and the NOTIFY payload).
 * Owned by the caller. */
char *as_outbox_summary_json(const as_outbox_summary *s,
			     const as_outbox_plan *plan, int64_t keys_count);

/* A redis event's payload, built key by key (capped by the plan). */
typedef struct as_payload {
	as_buf buf;
	int64_t nkeys;
	int64_t max_keys;
	size_t max_payload;
} as_payload;

/* with_patterns: the first event of a run carries the patterns. */
int as_payload_begin(as_payload *p, const as_outbox_summary *s,
		     const as_outbox_plan *plan, int with_patterns,
		     as_error *err);
/* A key that is not valid UTF-8 cannot go into JSON: it is skipped with a
 * warning (returns 0).  AS_ENOMEM when the payload is full. */
int as_payload_add_key(as_payload *p, const char *k, size_t len, as_error *err);
/* 1 when the event should be written now and a new one begun. */
int as_payload_full(const as_payload *p);
/* Close the JSON; the text is in p->buf. */
int as_payload_end(as_payload *p, as_error *err);
void as_payload_free(as_payload *p);

#endif
