/*
 * The PostgreSQL store's leases (invariant 6): one row per dataset (or
 * table) in atomsync_leases with an owner, an expiry and a fencing token that
 * grows on every acquisition; every staging commit and publish checks it.
 */
#include <stdlib.h>
#include <string.h>

#include "store/postgres_int.h"
#include "util/proc.h"

/* ---- leases (invariant 6) ---- */

/* The holder of a dataset's lease, read in the current transaction:
 * *busy when another live worker holds it (AS_ELEASE is set). */
static int lease_holder(pg_store *s, const char *dataset, int lock, int *busy,
			as_error *err)
{
	PGresult *res;
	as_pg_params p;
	const char *holder;
	char what[160];

	*busy = 0;
	as_pg_params_init(&p);
	as_pg_param_text(&p, dataset);
	if (as_pg_exec(
		    s,
		    lock ? "SELECT owner, (expires_at > clock_timestamp())::int, " AS_PG_ISO(
				   "expires_at") " FROM atomsync_leases "
						 "WHERE dataset = $1 FOR UPDATE"
			 : "SELECT owner, (expires_at > clock_timestamp())::int, " AS_PG_ISO(
				   "expires_at") " FROM atomsync_leases "
						 "WHERE dataset = $1",
		    &p, &res, "reading lease", err))
		return err->code;
	holder = PQntuples(res) && !PQgetisnull(res, 0, 0)
			 ? PQgetvalue(res, 0, 0)
			 : NULL;
	if (holder && as_pg_cell_int(res, 0, 1) && !as_owner_is_dead(holder)) {
		as_error_set(err, AS_ELEASE,
			     "%s is being run by %s (lease "
			     "expires %s); nothing done",
			     as_lease_label(dataset, what, sizeof(what)),
			     holder, PQgetvalue(res, 0, 2));
		*busy = 1;
	}
	PQclear(res);
	return *busy ? AS_ELEASE : 0;
}

/*
 * A live holder is reported at once, from a plain read.  Otherwise the
 * lease row is locked, checked again and taken: the lock may be held for a
 * while by the backend of a worker that was killed mid-commit (the server
 * rolls it back once its statement ends), so the wait is generous.
 */
int as_pg_lease_acquire(as_store *st, const char *dataset, const char *owner,
			int64_t ttl_ms, int64_t *token, as_error *err)
{
	pg_store *s = (pg_store *)st;
	PGresult *res = NULL;
	as_pg_params p;
	int busy;

	as_pg_drain(s, NULL);
	as_pg_params_init(&p);
	as_pg_param_text(&p, dataset);
	if (as_pg_exec(
		    s,
		    "INSERT INTO atomsync_leases(dataset, token, expires_at) "
		    "VALUES($1, 0, '-infinity') ON CONFLICT (dataset) DO NOTHING",
		    &p, NULL, "taking lease", err))
		return err->code;
	if (as_pg_exec(s, "BEGIN; SET LOCAL lock_timeout = '60s'", NULL, NULL,
		       "taking lease", err))
		return err->code;
	if (lease_holder(s, dataset, 0, &busy, err) ||
	    lease_holder(s, dataset, 1, &busy, err))
		goto fail;
	as_pg_param_text(&p, owner);
	as_pg_param_int(&p, ttl_ms);
	if (as_pg_exec(
		    s,
		    "UPDATE atomsync_leases SET owner = $2, token = token + 1, "
		    "acquired_at = clock_timestamp(), expires_at = "
		    "clock_timestamp() + $3::bigint * interval '1 millisecond' "
		    "WHERE dataset = $1 RETURNING token",
		    &p, &res, "taking lease", err))
		goto fail;
	*token = as_pg_cell_int(res, 0, 0);
	PQclear(res);
	if (as_pg_commit(s, "taking lease", err))
		goto fail;
	return 0;
fail:
	if (strcmp(err->sqlstate, "55P03") == 0) {
		char what[160];

		as_error_set(err, AS_ELEASE,
			     "%s: its lease stayed locked by "
			     "another worker's transaction; nothing done",
			     as_lease_label(dataset, what, sizeof(what)));
	}
	as_pg_rollback(s);
	return err->code;
}

int as_pg_fence(pg_store *s, const char *dataset, int64_t token, int64_t ttl_ms,
		as_error *err)
{
	as_pg_params p;
	PGresult *res;
	int64_t n;

	as_pg_params_init(&p);
	as_pg_param_text(&p, dataset);
	as_pg_param_int(&p, token);
	as_pg_param_int(&p, ttl_ms);
	if (as_pg_exec(
		    s,
		    "UPDATE atomsync_leases SET expires_at = clock_timestamp() "
		    "+ $3::bigint * interval '1 millisecond' WHERE dataset = $1 "
		    "AND token = $2 AND owner IS NOT NULL",
		    &p, &res, "checking lease", err))
		return AS_ESTORE;
	n = strtoll(PQcmdTuples(res), NULL, 10);
	PQclear(res);
	if (n != 1)
		return as_lease_lost(dataset, token, err);
	return 0;
}

int as_pg_lease_renew(as_store *st, const char *dataset, int64_t token,
		      int64_t ttl_ms, as_error *err)
{
	return as_pg_fence((pg_store *)st, dataset, token, ttl_ms, err);
}

int as_pg_lease_release(as_store *st, const char *dataset, int64_t token,
			as_error *err)
{
	pg_store *s = (pg_store *)st;
	as_pg_params p;

	as_pg_drain(s, NULL);
	as_pg_params_init(&p);
	as_pg_param_text(&p, dataset);
	as_pg_param_int(&p, token);
	return as_pg_exec(
		s,
		"UPDATE atomsync_leases SET owner = NULL, expires_at = "
		"'-infinity' WHERE dataset = $1 AND token = $2",
		&p, NULL, "releasing lease", err);
}
