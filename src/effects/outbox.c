/*
 * The outbox drain (invariant 7): after a publish commits, its events are
 * read back from the store and delivered, oldest first; each is marked
 * delivered only once Redis confirmed every command (or the webhook answered
 * 2xx).  Whatever fails stays pending with its attempts and error, for the
 * next run, `atomsync outbox drain`, or the daemon: at least once, never
 * before commit (an event exists only once its publish committed).
 */
#include "effects/outbox.h"

#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "effects/redis.h"
#include "effects/webhook.h"
#include "util/crash.h"
#include "util/log.h"
#include "util/proc.h"
#include "util/str.h"
#include "util/time.h"

/* What one drain knows: the Redis connection (opened on first use) and
 * the targets that already failed, so one dead receiver costs one timeout
 * per drain, not one per event. */
typedef struct drain {
	as_store *st;
	const as_config *cfg;
	as_redis_url url;
	int have_url;
	as_redis *redis;
	int redis_down;
	as_error redis_err;
	char **hook_down; /* datasets whose webhook failed in this drain */
	as_error *hook_err;
	size_t nhook_down;
} drain;

static int redis_connect(drain *d, as_error *err)
{
	if (d->redis_down) {
		*err = d->redis_err;
		return err->code;
	}
	if (d->redis)
		return 0;
	if (!d->cfg->cache) {
		as_error_set(err, AS_EUSAGE,
			     "no cache in the config to deliver to");
		goto down;
	}
	if (!d->have_url) {
		if (as_redis_url_parse(&d->url, d->cfg->cache, err))
			goto down;
		d->have_url = 1;
	}
	if (as_redis_open(&d->redis, &d->url, err))
		goto down;
	return 0;
down:
	d->redis_down = 1;
	d->redis_err = *err;
	return err->code;
}

static void redis_failed(drain *d, const as_error *err)
{
	as_redis_close(d->redis);
	d->redis = NULL;
	d->redis_down = 1;
	d->redis_err = *err;
}

/* UNLINK the event's keys, then its patterns through SCAN. */
static int deliver_redis(drain *d, const as_outbox_event *ev, as_error *err)
{
	json_error_t jerr;
	json_t *p = json_loads(ev->payload ? ev->payload : "", 0, &jerr);
	json_t *keys = p ? json_object_get(p, "keys") : NULL;
	json_t *pats = p ? json_object_get(p, "patterns") : NULL;
	const char **kv = NULL;
	size_t *kl = NULL, n = json_array_size(keys);
	int64_t removed = 0;
	double t0;
	int rc = 0;

	if (!p || (keys && !json_is_array(keys)) ||
	    (pats && !json_is_array(pats))) {
		rc = as_error_set(err, AS_ESOURCE,
				  "event %lld: payload is not an "
				  "outbox event (%s)",
				  (long long)ev->event_id,
				  p ? "keys or patterns not arrays"
				    : jerr.text);
		goto done;
	}
	if ((rc = redis_connect(d, err)))
		goto done;
	t0 = as_mono();
	kv = calloc(n ? n : 1, sizeof(*kv));
	kl = calloc(n ? n : 1, sizeof(*kl));
	if (!kv || !kl) {
		rc = as_error_set(err, AS_ENOMEM, "out of memory");
		goto done;
	}
	for (size_t i = 0; i < n; i++) {
		json_t *k = json_array_get(keys, i);

		kv[i] = json_string_value(k);
		kl[i] = json_string_length(k);
		if (!kv[i]) {
			rc = as_error_set(err, AS_ESOURCE,
					  "event %lld: key %zu is not "
					  "a string",
					  (long long)ev->event_id, i);
			goto done;
		}
	}
	if ((rc = as_redis_unlink(d->redis, kv, kl, n, &removed, err)))
		goto failed;
	for (size_t i = 0; i < json_array_size(pats); i++) {
		const char *pat = json_string_value(json_array_get(pats, i));

		if (pat && (rc = as_redis_unlink_pattern(d->redis, pat,
							 &removed, err)))
			goto failed;
	}
	as_info("%s: outbox event %lld: %zu keys and %zu patterns delivered in "
		"%.3f s (%lld keys were cached)",
		ev->dataset, (long long)ev->event_id, n, json_array_size(pats),
		as_mono() - t0, (long long)removed);
	goto done;
failed:
	redis_failed(d, err);
done:
	free(kv);
	free(kl);
	json_decref(p);
	return rc;
}

static int deliver_webhook(drain *d, const as_outbox_event *ev, as_error *err)
{
	const as_dataset_cfg *ds = as_config_dataset(d->cfg, ev->dataset);
	json_t *p;
	char *body;
	int rc;

	for (size_t i = 0; i < d->nhook_down; i++) {
		if (strcmp(d->hook_down[i], ev->dataset) == 0) {
			*err = d->hook_err[i];
			return err->code;
		}
	}
	if (!ds || !ds->webhook)
		return as_error_set(err, AS_EUSAGE,
				    "dataset %s has no webhook in "
				    "the config",
				    ev->dataset);
	p = json_loads(ev->payload ? ev->payload : "", 0, NULL);
	if (!p || !json_is_object(p)) {
		json_decref(p);
		return as_error_set(err, AS_ESOURCE,
				    "event %lld: payload is not a "
				    "JSON object",
				    (long long)ev->event_id);
	}
	json_object_set_new(p, "event_id", json_integer(ev->event_id));
	body = json_dumps(p, JSON_COMPACT);
	json_decref(p);
	if (!body)
		return as_error_set(err, AS_ENOMEM, "out of memory");
	rc = as_webhook_post(ds->webhook, body, strlen(body), ev->event_id,
			     NULL, err);
	free(body);
	if (rc) {
		char **names = realloc(d->hook_down,
				       (d->nhook_down + 1) * sizeof(*names));
		as_error *errs;

		if (names) {
			d->hook_down = names;
			errs = realloc(d->hook_err,
				       (d->nhook_down + 1) * sizeof(*errs));
			if (errs) {
				d->hook_err = errs;
				errs[d->nhook_down] = *err;
				names[d->nhook_down] = as_strdup(ev->dataset);
				if (names[d->nhook_down])
					d->nhook_down++;
			}
		}
	}
	return rc;
}

static void drain_free(drain *d)
{
	as_redis_close(d->redis);
	if (d->have_url)
		as_redis_url_free(&d->url);
	for (size_t i = 0; i < d->nhook_down; i++)
		free(d->hook_down[i]);
	free(d->hook_down);
	free(d->hook_err);
}

/* hiredis writes with write(2): a Redis that closed the connection would
 * raise SIGPIPE and kill an embedding program that does not ignore it.  The
 * drain blocks it on its thread and consumes one that became pending. */
static void sigpipe_block(sigset_t *old)
{
	sigset_t pipe;

	sigemptyset(&pipe);
	sigaddset(&pipe, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe, old);
}

static void sigpipe_restore(const sigset_t *old)
{
	const struct timespec zero = {0, 0};
	sigset_t pipe, pending;

	sigemptyset(&pipe);
	sigaddset(&pipe, SIGPIPE);
	if (sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE) &&
	    !sigismember(old, SIGPIPE))
		sigtimedwait(&pipe, NULL, &zero);
	pthread_sigmask(SIG_SETMASK, old, NULL);
}

int as_outbox_drain(as_store *st, const as_config *cfg, const char *dataset,
		    as_drain_stats *out, as_error *err)
{
	drain d;
	sigset_t mask;
	int64_t after = 0;
	int rc = 0;

	memset(out, 0, sizeof(*out));
	memset(&d, 0, sizeof(d));
	d.st = st;
	d.cfg = cfg;
	if (!st->ops->outbox_list)
		return 0;
	sigpipe_block(&mask);
	while (!as_interrupted) {
		as_outbox_event *ev = NULL;
		as_error e;
		size_t n = 0;
		int drc;

		if ((rc = st->ops->outbox_list(st, dataset, after, 1,
					       AS_OUTBOX_PENDING |
						       AS_OUTBOX_PAYLOAD,
					       &ev, &n, err)))
			break;
		if (n == 0) {
			as_outbox_events_free(ev, n);
			break;
		}
		after = ev->event_id;
		as_error_clear(&e);
		if (strcmp(ev->target, "redis") == 0)
			drc = deliver_redis(&d, ev, &e);
		else if (strcmp(ev->target, "webhook") == 0)
			drc = deliver_webhook(&d, ev, &e);
		else
			drc = as_error_set(&e, AS_EUSAGE, "unknown target '%s'",
					   ev->target);
		if (drc == 0) {
			/* Delivered but not yet recorded: a crash here delivers
			 * the event again on the next drain (at least once). */
			as_crash_point("outbox.delivered");
			rc = st->ops->outbox_mark(st, ev->event_id, NULL, err);
			out->delivered++;
		} else {
			as_log_redact(e.msg, sizeof(e.msg));
			rc = st->ops->outbox_mark(st, ev->event_id, e.msg, err);
			if (!out->failed++)
				snprintf(out->first_error,
					 sizeof(out->first_error), "%s", e.msg);
		}
		as_outbox_events_free(ev, n);
		if (rc)
			break;
	}
	drain_free(&d);
	sigpipe_restore(&mask);
	return rc;
}

void as_outbox_after_publish(as_store *st, const as_config *cfg,
			     const char *dataset)
{
	as_drain_stats s;
	as_error err;

	as_error_clear(&err);
	if (as_outbox_drain(st, cfg, dataset, &s, &err)) {
		as_warn("dataset %s: the outbox could not be read or updated (%s); "
			"its pending events are delivered by the next run or "
			"`atomsync outbox drain`",
			dataset, err.msg);
		return;
	}
	if (s.failed)
		as_warn("dataset %s: %lld outbox event%s not delivered and left "
			"pending (%s); the next run or `atomsync outbox drain` "
			"delivers %s",
			dataset, (long long)s.failed, s.failed == 1 ? "" : "s",
			s.first_error, s.failed == 1 ? "it" : "them");
	else if (s.delivered)
		as_info("%s: %lld outbox event%s delivered", dataset,
			(long long)s.delivered, s.delivered == 1 ? "" : "s");
}
