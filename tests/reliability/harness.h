/*
 * What the reliability drivers share: a scenario (an old published state
 * and a new delivery, as JSON-lines files and a config), runs of the real
 * engine (as_sync_dataset) each in a forked child so a fault, a crash or a
 * leak (LeakSanitizer runs at the child's exit) is pinned to one attempt,
 * and the invariant checks a parent makes on the store afterwards with a
 * plain SQLite connection.
 */
#ifndef AS_TEST_RELIABILITY_HARNESS_H
#define AS_TEST_RELIABILITY_HARNESS_H

#include <stdint.h>
#include <stdio.h>

typedef struct rh_scenario {
	char dir[512];
	char db[600];		 /* store.db in dir */
	char golden[600];	 /* the old state, published, copied before each
				    attempt */
	char *cfg_old, *cfg_new; /* config texts (owned) */
	const char *mode;	 /* full | incremental | append */
	int records;
	int batch;	 /* batch_size */
	int max_rejects; /* guard.max_rejects of the dataset */
} rh_scenario;

/* One run of the engine in a child, as the parent sees it. */
typedef struct rh_result {
	int rc;		/* as_sync_dataset's return (0: published) */
	int status;	/* the child's wait status */
	char msg[1024]; /* the error message when rc != 0 */
	int64_t run_id, seen, inserted, updated, unchanged, deleted, duplicates;
	int64_t resumed_from;
	long ops, fired; /* counted operations and injected faults */
	long window;	 /* ops counted when the window-end point passed */
	long passes;	 /* passes of the window-start point */
	char fault[160]; /* the first injected fault */
	char phase[64];	 /* the crash point passed last before it */
} rh_result;

/* The state of the store as a fresh connection reads it. */
typedef struct rh_state {
	char integrity[256];
	uint64_t digest; /* of the live rows (user columns and content hash) */
	int64_t rows;
	char last_status[32]; /* status of the newest run record */
	int64_t last_run;
	int stage_tables; /* _atomsync_stage_* tables present */
	int ok;		  /* the store could be read at all */
} rh_state;

/* Hooks a driver sets: called in the child around the run. */
typedef struct rh_hooks {
	void (*before)(void *ud); /* first thing in the child */
	void (*ready)(void *ud);  /* the config is parsed */
	void (*point)(void *ud, const char *name,
		      long pass); /* every crash point */
	void (*after)(void *ud,
		      rh_result *r); /* the run returned: disarm, fill */
	void *ud;
} rh_hooks;

int rh_scenario_init(rh_scenario *sc, const char *dir, const char *mode,
		     int records, int batch, int max_rejects);
void rh_scenario_free(rh_scenario *sc);
/* Remove the store and put the golden old state in its place. */
int rh_restore(const rh_scenario *sc);
/* Create the golden state: a fresh store, the old delivery published. */
int rh_make_golden(rh_scenario *sc);

/* Run a sync of the new delivery in a child with hooks (NULL: none).
 * Returns 0 when the child reported a result, -1 when it died first. */
int rh_run_child(const rh_scenario *sc, const char *cfg_text,
		 const rh_hooks *hooks, rh_result *out);
/* Whether a child's wait status is a clean exit (no sanitizer report). */
int rh_child_clean(int status, char *why, size_t cap);

int rh_read_state(const char *db, rh_state *st);

/* The status of one run record ("" when there is none). */
int rh_run_status(const char *db, int64_t run_id, char *out, size_t cap);

/* The fault-free reference: the old state and an uninterrupted run. */
typedef struct rh_ref {
	uint64_t old_digest, new_digest;
	int64_t old_rows, new_rows;
	rh_result run; /* its counts */
} rh_ref;

/* What a sweep saw, for its summary. */
typedef struct rh_tally {
	long attempts;	/* faulted runs */
	long injected;	/* faults injected (a persistent fault counts each) */
	long failed;	/* ... that failed and published nothing */
	long published; /* ... that published anyway (fault absorbed) */
	long resumed;	/* reruns that resumed from the faulted run's checkpoint
			 */
	long ambiguous; /* failed with a failed commit sync, yet committed */
	long violations;
} rh_tally;

int rh_reference(rh_scenario *sc, rh_ref *ref);

/*
 * Check one faulted attempt r (the store as the child left it) and then a
 * fault-free rerun: the child ended cleanly (no crash, no leak), integrity
 * is ok, the live rows are exactly the old or the new state and agree with
 * what the run reported (invariants 1, 2), a failure names its cause (one
 * of causes), the run is on record as failed (10), and the rerun publishes
 * exactly the uninterrupted result (4; 5 when the attempt had published).
 * Returns 0, or -1 with why filled.
 */
int rh_check(const rh_scenario *sc, const rh_ref *ref, const rh_result *r,
	     const char *const *causes, rh_tally *t, char *why, size_t cap);

/* Parse "point:k" (k defaults to 1; "last" gives -1); "start" gives an
 * empty name. */
void rh_parse_point(const char *spec, char *name, size_t cap, long *k);

/* Whether LeakSanitizer runs at the children's exit. */
int rh_have_lsan(void);

/* JSON string escaping for the summaries. */
void rh_json_str(FILE *f, const char *s);

#endif
