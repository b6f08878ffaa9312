/*
 * The outbox (DESIGN.md invariant 7): a dataset's settings made into a
 * run's plan (model/outbox.h, the event format), and the drain that
 * delivers pending events after commit (effects/redis.c,
 * effects/webhook.c).  The publish transaction writes the events
 * (store/<backend>_outbox.c); nothing here runs before its commit.
 */
#ifndef AS_EFFECTS_OUTBOX_H
#define AS_EFFECTS_OUTBOX_H

#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "model/outbox.h"
#include "store/store.h"
#include "util/buf.h"
#include "util/error.h"

/* Every template of ds, parsed, with each column resolved in t (AS_EUSAGE
 * naming the template when a column is missing).  *out is owned by the
 * caller: as_tpls_free. */
int as_tpls_load(const as_dataset_cfg *ds, const as_table *t, as_tpl **out,
		 size_t *n, as_error *err);

/*
 * Before a run stages anything: every {column} of the dataset's templates
 * names a mapped column of t (when t's columns are known), `notify` only on
 * PostgreSQL, the cache URL parses.  AS_EUSAGE names the dataset.
 */
int as_outbox_check(const as_dataset_cfg *ds, const as_table *t,
		    const char *store_name, const char *cache_url,
		    as_error *err);

/* The plan of a run's events (model/outbox.h) from ds, its templates
 * resolved in t, which has its final columns (the engine makes it before
 * the publish).  Empty when ds records nothing.  as_outbox_plan_free. */
int as_outbox_plan_make(const as_dataset_cfg *ds, const as_table *t,
			as_outbox_plan *out, as_error *err);

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
