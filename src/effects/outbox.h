/*
 * The outbox (DESIGN.md invariant 7): what an event holds, the key templates
 * of `invalidate:`, and the drain that delivers pending events after commit
 * (effects/redis.c, effects/webhook.c).  The publish transaction writes the
 * events (store/<backend>_outbox.c); nothing here runs before its commit.
 */
#ifndef AS_EFFECTS_OUTBOX_H
#define AS_EFFECTS_OUTBOX_H

#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "store/store.h"
#include "util/buf.h"
#include "util/error.h"

/* One row of atomsync_outbox: as_outbox_event, the public
 * atomsync_outbox_event (store/store.h). */
void as_outbox_events_free(as_outbox_event *v, size_t n);

/* Keys per event: a larger change is split over several events so that
 * no payload grows past tens of megabytes. */
#define AS_OUTBOX_MAX_KEYS 1000000
/* Cap of one payload in bytes (keys are at most this long in total). */
#define AS_OUTBOX_MAX_PAYLOAD ((size_t)64 << 20)

/* ---- key templates: "game:{id}", "catalog:*", "home" ---- */

typedef struct as_tpl_part {
	char *text; /* literal text, or a column name when column is set */
	int column;
	size_t index; /* the column's index in as_table.cols (as_tpls_load) */
} as_tpl_part;

typedef struct as_tpl {
	int pattern;	    /* no {column} and a glob char: SCAN MATCH */
	int fixed;	    /* no {column}, no glob: one key as written */
	as_tpl_part *parts; /* in order; "{{" and "}}" are literal braces */
	size_t nparts;
} as_tpl;

int as_tpl_parse(as_tpl *t, const char *src, as_error *err);
void as_tpl_free(as_tpl *t);

/* Every template of ds, parsed, with each column resolved in t (AS_EUSAGE
 * naming the template when a column is missing).  *out is owned by the
 * caller: as_tpls_free. */
int as_tpls_load(const as_dataset_cfg *ds, const as_table *t, as_tpl **out,
		 size_t *n, as_error *err);
void as_tpls_free(as_tpl *v, size_t n);

/*
 * Before a run stages anything: every {column} of the dataset's templates
 * names a mapped column of t (when t's columns are known), `notify` only on
 * PostgreSQL, the cache URL parses.  AS_EUSAGE names the dataset.
 */
int as_outbox_check(const as_dataset_cfg *ds, const as_table *t,
		    const char *store_name, const char *cache_url,
		    as_error *err);

/* ---- payloads ---- */

typedef struct as_outbox_summary {
	const char *dataset;
	int64_t run_id;
	const char *kind; /* "sync", "rollback" */
	int64_t inserted, updated, deleted;
} as_outbox_summary;

/* A summary JSON object without keys: counts, patterns, keys_count (the
 * webhook body and the NOTIFY payload).  Owned by the caller. */
char *as_outbox_summary_json(const as_outbox_summary *s,
			     const as_dataset_cfg *ds, int64_t keys_count);

/* A redis event's payload, built key by key (capped, see above). */
typedef struct as_payload {
	as_buf buf;
	int64_t nkeys;
} as_payload;

/* with_patterns: the first event of a run carries the patterns. */
int as_payload_begin(as_payload *p, const as_outbox_summary *s,
		     const as_dataset_cfg *ds, int with_patterns,
		     as_error *err);
/* A key that is not valid UTF-8 cannot go into JSON: it is skipped with a
 * warning (returns 0).  AS_ENOMEM when the payload is full. */
int as_payload_add_key(as_payload *p, const char *k, size_t len, as_error *err);
/* 1 when the event should be written now and a new one begun. */
int as_payload_full(const as_payload *p);
/* Close the JSON; the text is in p->buf. */
int as_payload_end(as_payload *p, as_error *err);
void as_payload_free(as_payload *p);

/* ---- the drain (after commit) ---- */

typedef atomsync_drain_stats as_drain_stats;

/*
 * Deliver the pending events of dataset (NULL: all) in event order: Redis
 * UNLINKs and SCAN patterns through cfg->cache, webhooks to the dataset's
 * `webhook`.  An event is marked delivered only after every command was
 * confirmed; a failed one stays pending with its attempt and error.
 * Returns nonzero only when the store itself fails.
 */
int as_outbox_drain(as_store *st, const as_config *cfg, const char *dataset,
		    as_drain_stats *out, as_error *err);

/* After a run's publish: drain that dataset, warn (never fail) when an
 * event could not be delivered. */
void as_outbox_after_publish(as_store *st, const as_config *cfg,
			     const char *dataset);

#endif
