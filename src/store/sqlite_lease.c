/*
 * The SQLite store's leases (invariant 6): one row per dataset (or table)
 * in atomsync_leases with an owner, an expiry and a fencing token that grows
 * on every acquisition; every staging commit and publish checks it.
 */

#include "store/sqlite_int.h"
#include "util/proc.h"
#include "util/time.h"

/* ---- leases (invariant 6) ---- */

/* AS_ELEASE when a live worker holds the dataset's lease. */
static int lease_holder(sq_store *s, const char *dataset, double now,
			as_error *err)
{
	sqlite3_stmt *q;
	char when[40], what[160];
	int rc;

	if (as_sq_prepare(s,
			  "SELECT owner, expires_at FROM atomsync_leases "
			  "WHERE dataset = ?1",
			  &q, err))
		return err->code;
	sqlite3_bind_text(q, 1, dataset, -1, SQLITE_STATIC);
	rc = sqlite3_step(q);
	if (rc == SQLITE_ROW) {
		const char *holder = (const char *)sqlite3_column_text(q, 0);
		double exp = sqlite3_column_double(q, 1);

		rc = 0;
		if (holder && exp > now && !as_owner_is_dead(holder))
			rc = as_error_set(
				err, AS_ELEASE,
				"%s is being run by %s (lease "
				"expires %s); nothing done",
				as_lease_label(dataset, what, sizeof(what)),
				holder, as_iso8601(exp, when, sizeof(when)));
	} else if (rc == SQLITE_DONE) {
		rc = 0;
	} else {
		rc = as_sq_fail(s, err, "reading lease");
	}
	sqlite3_finalize(q);
	return rc;
}

/*
 * The write lock stayed taken for the whole busy timeout.  When the holder
 * is a run of this dataset inside its publish (paused, say: SQLite cannot
 * take a lock from a stopped process), that run holds the dataset: exit 4
 * naming it, not a bare "database is locked" (docs/operations.md).
 */
static int busy_holder(sq_store *s, const char *dataset, as_error *err)
{
	sqlite3_stmt *q;
	as_error busy = *err;
	char what[160];

	if ((busy.native & 0xff) != SQLITE_BUSY)
		return err->code;
	/* The lease is the dataset's, or its table's (as_table_lease). */
	if (as_sq_prepare(s,
			  "SELECT r.run_id, coalesce(l.owner, r.owner, '?') "
			  "FROM atomsync_runs r LEFT JOIN atomsync_leases l ON "
			  "l.dataset = ?1 WHERE r.status = 'publishing' AND "
			  "(r.dataset = ?1 OR ?1 = '" AS_TABLE_LEASE_PREFIX
			  "' || lower((SELECT table_name FROM atomsync_state "
			  "t WHERE t.dataset = r.dataset))) "
			  "ORDER BY r.run_id DESC LIMIT 1",
			  &q, err))
		return err->code;
	sqlite3_bind_text(q, 1, dataset, -1, SQLITE_STATIC);
	if (sqlite3_step(q) == SQLITE_ROW)
		as_error_set(err, AS_ELEASE,
			     "%s is being published by %s (run %lld), "
			     "which holds the store's write lock; nothing done",
			     as_lease_label(dataset, what, sizeof(what)),
			     (const char *)sqlite3_column_text(q, 1),
			     (long long)sqlite3_column_int64(q, 0));
	else
		*err = busy;
	sqlite3_finalize(q);
	return err->code;
}

int as_sq_lease_acquire(as_store *st, const char *dataset, const char *owner,
			int64_t ttl_ms, int64_t *token, as_error *err)
{
	sq_store *s = (sq_store *)st;
	sqlite3_stmt *q = NULL;
	double now = as_now();
	char when[40];

	/* A plain read first (WAL readers never wait): a live holder turns
	 * this run away at once, without waiting for the write lock. */
	if (lease_holder(s, dataset, now, err))
		return err->code;
	if (as_sq_txn(s, "BEGIN IMMEDIATE", "taking the lease", err))
		return busy_holder(s, dataset, err);
	/* Again under the write lock: it may have been taken meanwhile. */
	if (lease_holder(s, dataset, now, err))
		goto fail;
	if (as_sq_prepare(
		    s,
		    "INSERT INTO atomsync_leases(dataset, owner, token, "
		    "acquired_at, expires_at) VALUES(?1, ?2, 1, ?3, ?4) "
		    "ON CONFLICT(dataset) DO UPDATE SET owner = excluded.owner, "
		    "token = token + 1, acquired_at = excluded.acquired_at, "
		    "expires_at = excluded.expires_at RETURNING token",
		    &q, err))
		goto fail;
	sqlite3_bind_text(q, 1, dataset, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 2, owner, -1, SQLITE_STATIC);
	as_sq_bind_text(q, 3, as_iso8601(now, when, sizeof(when)));
	sqlite3_bind_double(q, 4, now + (double)ttl_ms / 1000.0);
	if (sqlite3_step(q) != SQLITE_ROW) {
		as_sq_fail(s, err, "taking lease");
		goto fail;
	}
	*token = sqlite3_column_int64(q, 0);
	sqlite3_finalize(q);
	q = NULL;
	if (as_sq_txn(s, "COMMIT", "taking the lease", err))
		goto fail;
	return 0;
fail:
	sqlite3_finalize(q);
	as_sq_rollback(s);
	return err->code;
}

/* Inside a transaction: extend our lease, or fail if it was taken. */
int as_sq_fence(sq_store *s, sqlite3_stmt **cache, const char *dataset,
		int64_t token, int64_t ttl_ms, as_error *err)
{
	sqlite3_stmt *st = cache ? *cache : NULL;
	int rc;

	if (!st && as_sq_prepare(s,
				 "UPDATE atomsync_leases SET expires_at = ?1 "
				 "WHERE dataset = ?2 AND token = ?3",
				 &st, err))
		return AS_ESTORE;
	sqlite3_bind_double(st, 1, as_now() + (double)ttl_ms / 1000.0);
	sqlite3_bind_text(st, 2, dataset, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, token);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (cache)
		*cache = st;
	else
		sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return as_sq_fail(s, err, "checking lease");
	if (sqlite3_changes(s->db) != 1)
		return as_lease_lost(dataset, token, err);
	return 0;
}

int as_sq_lease_renew(as_store *st, const char *dataset, int64_t token,
		      int64_t ttl_ms, as_error *err)
{
	sq_store *s = (sq_store *)st;
	int rc = as_sq_fence(s, NULL, dataset, token, ttl_ms, err);

	return rc;
}

int as_sq_lease_release(as_store *st, const char *dataset, int64_t token,
			as_error *err)
{
	sq_store *s = (sq_store *)st;
	sqlite3_stmt *q;
	int rc;

	if (as_sq_prepare(s,
			  "UPDATE atomsync_leases SET owner = NULL, "
			  "expires_at = 0 WHERE dataset = ?1 AND token = ?2",
			  &q, err))
		return AS_ESTORE;
	sqlite3_bind_text(q, 1, dataset, -1, SQLITE_STATIC);
	sqlite3_bind_int64(q, 2, token);
	rc = sqlite3_step(q);
	sqlite3_finalize(q);
	return rc == SQLITE_DONE ? 0 : as_sq_fail(s, err, "releasing lease");
}
