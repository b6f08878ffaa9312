/*
 * The reliability drivers' shared harness (harness.h): scenarios, runs of
 * the engine in forked children, and the parent's checks on the store.
 *
 * It also stands in for src/util/crash.c: defining the crash-point symbols
 * here keeps crash.o out of the link, so every named point of the engine
 * (stage.begin, publish.committed, ...) calls the driver instead of exiting,
 * which is how a driver arms its faults for one phase of a run.
 */
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config/config.h"
#include "engine/sync.h"
#include "store/store.h"
#include "util/crash.h"
#include "util/hash.h"
#include "util/log.h"

/* ---- the crash points, observed instead of crashing ---- */

int as_crash_enabled = 1; /* every point calls as_crash_point_slow */
static const rh_hooks *cur_hooks;
static struct {
	const char *name;
	long passes;
} seen_points[64];

void as_crash_init(void)
{
}

void as_crash_point_slow(const char *name)
{
	long pass = 0;
	size_t i;

	/* Points pass on the writer thread too; the table is only read and
	 * grown by one thread at a time, since the writer hand-off orders
	 * the engine's threads (engine/stage.c). */
	for (i = 0; i < 64 && seen_points[i].name; i++)
		if (strcmp(seen_points[i].name, name) == 0)
			break;
	if (i < 64) {
		if (!seen_points[i].name)
			seen_points[i].name = name;
		pass = ++seen_points[i].passes;
	}
	if (cur_hooks && cur_hooks->point)
		cur_hooks->point(cur_hooks->ud, name, pass);
}

/* ---- scenarios ---- */

static char *read_text(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));

static char *read_text(const char *fmt, ...)
{
	va_list ap;
	char *p = NULL;

	va_start(ap, fmt);
	if (vasprintf(&p, fmt, ap) < 0)
		p = NULL;
	va_end(ap);
	return p;
}

static const char *COLS_FULL = "    key: [id]\n"
			       "    columns:\n"
			       "      id: {type: integer}\n"
			       "      name: {type: text}\n"
			       "      downloads: {type: integer}\n"
			       "      score: {type: real}\n";
static const char *COLS_INCR = "    mode: incremental\n"
			       "    key: [id]\n"
			       "    cursor: updated\n"
			       "    columns:\n"
			       "      id: {type: integer}\n"
			       "      name: {type: text}\n"
			       "      downloads: {type: integer}\n"
			       "      updated: {type: integer}\n";
static const char *COLS_APPEND = "    mode: append\n"
				 "    key: [tx_hash, log_index]\n"
				 "    columns:\n"
				 "      tx_hash: {type: text}\n"
				 "      log_index: {type: integer}\n"
				 "      value: {type: integer}\n";

static void full_rec(FILE *f, int i, int v, const char *suffix)
{
	fprintf(f,
		"{\"id\":%d,\"name\":\"Addon %d%s\",\"downloads\":%d,"
		"\"score\":%.3f,\"tags\":[\"t%d\"]}\n",
		i, i, suffix, (i * 7919) % 100000 + v, (i % 1000) / 8.0, i % 7);
}

static void incr_rec(FILE *f, int i, int v)
{
	fprintf(f,
		"{\"id\":%d,\"name\":\"n%d v%d\",\"downloads\":%d,\"updated\":%d}\n",
		i, i, v, i * (v + 1), 100000 * v + i);
}

static void append_rec(FILE *f, int i)
{
	fprintf(f, "{\"tx_hash\":\"0x%064x\",\"log_index\":%d,\"value\":%d}\n",
		i / 4, i % 4, i * 7);
}

static int write_inputs(const rh_scenario *sc)
{
	char path[700];
	FILE *o, *n;
	int N = sc->records;

	snprintf(path, sizeof(path), "%s/old.jsonl", sc->dir);
	o = fopen(path, "w");
	snprintf(path, sizeof(path), "%s/new.jsonl", sc->dir);
	n = fopen(path, "w");
	if (!o || !n) {
		if (o)
			fclose(o);
		if (n)
			fclose(n);
		return -1;
	}
	if (strcmp(sc->mode, "full") == 0) {
		for (int i = 1; i <= N; i++) {
			full_rec(o, i, 0, "");
			if (i % 10 == 0)
				continue;		/* deleted */
			full_rec(n, i, i % 7 == 0, ""); /* updated */
		}
		for (int i = 0; i < N / 10; i++)
			full_rec(n, N + 1000 + i, 0, ""); /* inserted */
		for (int i = 1; i <= 5; i++)
			full_rec(n, i, 0, " (again)"); /* later wins */
	} else if (strcmp(sc->mode, "incremental") == 0) {
		for (int i = 1; i <= N; i++)
			incr_rec(o, i, 0);
		for (int i = 3; i <= N; i += 3)
			incr_rec(n, i, 1);
		for (int i = 0; i < N / 2; i++)
			incr_rec(n, N + 500 + i, 1);
	} else {
		for (int i = 0; i < N; i++)
			append_rec(o, i);
		for (int i = 0; i < N + N / 7; i++)
			append_rec(n, i); /* replays known events */
		for (int i = N; i < N + 10; i++)
			append_rec(n, i); /* identical repeats */
	}
	fclose(o);
	return fclose(n) ? -1 : 0;
}

int rh_scenario_init(rh_scenario *sc, const char *dir, const char *mode,
		     int records, int batch, int max_rejects)
{
	const char *cols;

	memset(sc, 0, sizeof(*sc));
	snprintf(sc->dir, sizeof(sc->dir), "%s", dir);
	snprintf(sc->db, sizeof(sc->db), "%s/store.db", dir);
	snprintf(sc->golden, sizeof(sc->golden), "%s/golden.db", dir);
	sc->mode = mode;
	sc->records = records;
	sc->batch = batch;
	sc->max_rejects = max_rejects;
	if (strcmp(mode, "full") == 0)
		cols = COLS_FULL;
	else if (strcmp(mode, "incremental") == 0)
		cols = COLS_INCR;
	else if (strcmp(mode, "append") == 0)
		cols = COLS_APPEND;
	else
		return -1;
	if (mkdir(dir, 0700) && errno != EEXIST)
		return -1;
	if (write_inputs(sc))
		return -1;
	/* lease_ttl 10m: the renewal thread never wakes during a run, so the
	 * read-write connections' operations come in one fixed order. */
	for (int k = 0; k < 2; k++) {
		char *t = read_text("store: sqlite:%s\n"
				    "datasets:\n"
				    "  d:\n"
				    "    table: items\n"
				    "    batch_size: %d\n"
				    "    lease_ttl: 10m\n"
				    "    reject_file: %s/rejects.jsonl\n"
				    "    guard: {max_rejects: %d}\n"
				    "%s"
				    "    source: {file: %s/%s.jsonl}\n",
				    sc->db, batch, dir, max_rejects, cols, dir,
				    k ? "new" : "old");
		if (!t)
			return -1;
		if (k)
			sc->cfg_new = t;
		else
			sc->cfg_old = t;
	}
	return 0;
}

void rh_scenario_free(rh_scenario *sc)
{
	free(sc->cfg_old);
	free(sc->cfg_new);
	sc->cfg_old = sc->cfg_new = NULL;
}

static int copy_file(const char *from, const char *to)
{
	char buf[65536];
	int in = open(from, O_RDONLY), out;
	ssize_t n;

	if (in < 0)
		return errno == ENOENT ? 0 : -1;
	out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (out < 0) {
		close(in);
		return -1;
	}
	while ((n = read(in, buf, sizeof(buf))) > 0)
		if (write(out, buf, (size_t)n) != n) {
			n = -1;
			break;
		}
	close(in);
	return close(out) || n < 0 ? -1 : 0;
}

static void remove_store(const char *db)
{
	static const char *suffix[] = {"", "-wal", "-shm", "-journal"};
	char p[700];

	for (size_t i = 0; i < 4; i++) {
		snprintf(p, sizeof(p), "%s%s", db, suffix[i]);
		unlink(p);
	}
}

int rh_restore(const rh_scenario *sc)
{
	char from[700], to[700];

	remove_store(sc->db);
	snprintf(from, sizeof(from), "%s/rejects.jsonl", sc->dir);
	unlink(from);
	if (copy_file(sc->golden, sc->db))
		return -1;
	snprintf(from, sizeof(from), "%s-wal", sc->golden);
	snprintf(to, sizeof(to), "%s-wal", sc->db);
	return copy_file(from, to);
}

int rh_make_golden(rh_scenario *sc)
{
	char from[700], to[700];
	rh_result r;

	remove_store(sc->db);
	remove_store(sc->golden);
	if (rh_run_child(sc, sc->cfg_old, NULL, &r) || r.rc) {
		fprintf(stderr, "golden run failed: %s\n", r.msg);
		return -1;
	}
	if (copy_file(sc->db, sc->golden))
		return -1;
	snprintf(from, sizeof(from), "%s-wal", sc->db);
	snprintf(to, sizeof(to), "%s-wal", sc->golden);
	return copy_file(from, to);
}

/* ---- runs in children ---- */

static void child_main(const rh_scenario *sc, const char *cfg_text,
		       const rh_hooks *hooks, rh_result *r)
{
	atomsync_run_info info;
	as_config *cfg = NULL;
	as_store *st = NULL;
	as_error err;

	memset(&info, 0, sizeof(info));
	as_error_clear(&err);
	as_log_set_level(AS_LOG_QUIET);
	cur_hooks = hooks;
	if (hooks && hooks->before)
		hooks->before(hooks->ud);
	r->rc = as_config_parse(&cfg, cfg_text, strlen(cfg_text),
				"atomsync.yml", &err);
	if (!r->rc && hooks && hooks->ready)
		hooks->ready(hooks->ud);
	if (!r->rc)
		r->rc = as_store_open(&st, cfg->store, &err);
	if (!r->rc)
		r->rc = as_sync_dataset(st, cfg, "d", NULL, NULL, NULL, &info,
					&err);
	as_store_close(st);
	if (hooks && hooks->after)
		hooks->after(hooks->ud, r);
	cur_hooks = NULL;
	if (r->rc)
		snprintf(r->msg, sizeof(r->msg), "%s", err.msg);
	r->run_id = info.run_id;
	r->seen = info.seen;
	r->inserted = info.inserted;
	r->updated = info.updated;
	r->unchanged = info.unchanged;
	r->deleted = info.deleted;
	r->duplicates = info.duplicates;
	r->resumed_from = info.resumed_from;
	atomsync_run_info_clear(&info);
	as_config_free(cfg);
	(void)sc;
}

int rh_run_child(const rh_scenario *sc, const char *cfg_text,
		 const rh_hooks *hooks, rh_result *out)
{
	int fds[2];
	pid_t pid;
	ssize_t n;

	memset(out, 0, sizeof(*out));
	fflush(NULL);
	if (pipe(fds))
		return -1;
	pid = fork();
	if (pid < 0) {
		close(fds[0]);
		close(fds[1]);
		return -1;
	}
	if (pid == 0) {
		rh_result r;

		close(fds[0]);
		memset(&r, 0, sizeof(r));
		child_main(sc, cfg_text, hooks, &r);
		if (write(fds[1], &r, sizeof(r)) != (ssize_t)sizeof(r))
			_exit(98);
		close(fds[1]);
		exit(0); /* not _exit: LeakSanitizer checks at exit */
	}
	close(fds[1]);
	n = read(fds[0], out, sizeof(*out));
	close(fds[0]);
	while (waitpid(pid, &out->status, 0) < 0 && errno == EINTR)
		;
	if (n != (ssize_t)sizeof(*out)) {
		int status = out->status;

		memset(out, 0, sizeof(*out));
		out->status = status;
		out->rc = -999;
		snprintf(out->msg, sizeof(out->msg),
			 "the child died before reporting");
		return -1;
	}
	return 0;
}

int rh_child_clean(int status, char *why, size_t cap)
{
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 1;
	if (WIFSIGNALED(status))
		snprintf(why, cap, "child killed by signal %d",
			 WTERMSIG(status));
	else if (WEXITSTATUS(status) == 23)
		snprintf(why, cap, "LeakSanitizer found a leak (exit 23)");
	else
		snprintf(why, cap, "child exited %d (a sanitizer report?)",
			 WEXITSTATUS(status));
	return 0;
}

int rh_have_lsan(void)
{
#if defined(__SANITIZE_ADDRESS__)
	return 1;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
	return 1;
#else
	return 0;
#endif
#else
	return 0;
#endif
}

/* ---- the parent's view of the store ---- */

static int64_t query_int(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *q;
	int64_t v = -1;

	if (sqlite3_prepare_v2(db, sql, -1, &q, NULL) != SQLITE_OK)
		return -1;
	if (sqlite3_step(q) == SQLITE_ROW)
		v = sqlite3_column_int64(q, 0);
	sqlite3_finalize(q);
	return v;
}

int rh_read_state(const char *db_path, rh_state *st)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *q = NULL;
	uint64_t h = 1469598103934665603ULL;

	memset(st, 0, sizeof(*st));
	if (sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READWRITE, NULL) !=
	    SQLITE_OK) {
		snprintf(st->integrity, sizeof(st->integrity),
			 "cannot open: %s", db ? sqlite3_errmsg(db) : "?");
		sqlite3_close(db);
		return -1;
	}
	sqlite3_busy_timeout(db, 10000);
	if (sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &q, NULL) ==
		    SQLITE_OK &&
	    sqlite3_step(q) == SQLITE_ROW)
		snprintf(st->integrity, sizeof(st->integrity), "%s",
			 (const char *)sqlite3_column_text(q, 0));
	else
		snprintf(st->integrity, sizeof(st->integrity),
			 "integrity_check: %s", sqlite3_errmsg(db));
	sqlite3_finalize(q);
	/* Every column but _atomsync_run (which run wrote a row differs
	 * between an uninterrupted and a resumed lineage) and _atomsync_line
	 * (a cache of the line's hash for matching: a stale one only costs a
	 * parse), in key order.  _atomsync_hash is kept: unchanged rows are
	 * recognized by it, so a wrong one could hide an update. */
	if (sqlite3_prepare_v2(db, "SELECT * FROM items ORDER BY 1, 2", -1, &q,
			       NULL) == SQLITE_OK) {
		int n = sqlite3_column_count(q);

		while (sqlite3_step(q) == SQLITE_ROW) {
			st->rows++;
			for (int i = 0; i < n; i++) {
				const char *name = sqlite3_column_name(q, i);
				const void *v;
				uint64_t ch;
				int len;

				if (strcmp(name, "_atomsync_run") == 0 ||
				    strcmp(name, "_atomsync_line") == 0)
					continue;
				v = sqlite3_column_blob(q, i);
				len = sqlite3_column_bytes(q, i);
				ch = as_hash64(v ? v : "", (size_t)len) ^
				     (uint64_t)sqlite3_column_type(q, i);
				h = (h ^ ch) * 1099511628211ULL;
			}
		}
		sqlite3_finalize(q);
	}
	st->digest = h;
	if (sqlite3_prepare_v2(db,
			       "SELECT run_id, status FROM atomsync_runs "
			       "ORDER BY run_id DESC LIMIT 1",
			       -1, &q, NULL) == SQLITE_OK) {
		if (sqlite3_step(q) == SQLITE_ROW) {
			st->last_run = sqlite3_column_int64(q, 0);
			snprintf(st->last_status, sizeof(st->last_status), "%s",
				 (const char *)sqlite3_column_text(q, 1));
		}
		sqlite3_finalize(q);
	}
	st->stage_tables = (int)query_int(
		db, "SELECT count(*) FROM sqlite_master "
		    "WHERE name LIKE '\\_atomsync\\_stage\\_%' ESCAPE '\\'");
	st->ok = 1;
	sqlite3_close(db);
	return 0;
}

int rh_run_status(const char *db_path, int64_t run_id, char *out, size_t cap)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *q = NULL;
	int rc = -1;

	out[0] = '\0';
	if (sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READWRITE, NULL) ==
		    SQLITE_OK &&
	    sqlite3_prepare_v2(
		    db, "SELECT status FROM atomsync_runs WHERE run_id = ?1",
		    -1, &q, NULL) == SQLITE_OK) {
		sqlite3_bind_int64(q, 1, run_id);
		if (sqlite3_step(q) == SQLITE_ROW) {
			snprintf(out, cap, "%s",
				 (const char *)sqlite3_column_text(q, 0));
			rc = 0;
		}
	}
	sqlite3_finalize(q);
	sqlite3_close(db);
	return rc;
}

int rh_reference(rh_scenario *sc, rh_ref *ref)
{
	rh_state st;

	memset(ref, 0, sizeof(*ref));
	if (rh_make_golden(sc) || rh_restore(sc) || rh_read_state(sc->db, &st))
		return -1;
	ref->old_digest = st.digest;
	ref->old_rows = st.rows;
	if (rh_restore(sc) || rh_run_child(sc, sc->cfg_new, NULL, &ref->run) ||
	    ref->run.rc || rh_read_state(sc->db, &st)) {
		fprintf(stderr, "reference run failed: %s\n", ref->run.msg);
		return -1;
	}
	ref->new_digest = st.digest;
	ref->new_rows = st.rows;
	if (ref->new_digest == ref->old_digest)
		return -1;
	return 0;
}

static int counts_equal(const rh_result *a, const rh_result *b)
{
	return a->seen == b->seen && a->inserted == b->inserted &&
	       a->updated == b->updated && a->unchanged == b->unchanged &&
	       a->deleted == b->deleted && a->duplicates == b->duplicates;
}

#define FAIL(...)                                                              \
	do {                                                                   \
		snprintf(why, cap, __VA_ARGS__);                               \
		t->violations++;                                               \
		return -1;                                                     \
	} while (0)

int rh_check(const rh_scenario *sc, const rh_ref *ref, const rh_result *r,
	     const char *const *causes, rh_tally *t, char *why, size_t cap)
{
	char cwhy[128], status[32];
	rh_result again;
	rh_state st;
	int published, named = 0;

	why[0] = '\0';
	t->attempts++;
	t->injected += r->fired;
	if (!rh_child_clean(r->status, cwhy, sizeof(cwhy)))
		FAIL("faulted run: %s (rc %d: %s)", cwhy, r->rc, r->msg);
	if (rh_read_state(sc->db, &st) || strcmp(st.integrity, "ok") != 0)
		FAIL("integrity after the fault: %s", st.integrity);
	if (st.digest != ref->old_digest && st.digest != ref->new_digest)
		FAIL("invariant 1: the live table is neither the old nor the new "
		     "state (%lld rows; old %lld, new %lld)",
		     (long long)st.rows, (long long)ref->old_rows,
		     (long long)ref->new_rows);
	published = st.digest == ref->new_digest;
	if (r->rc == 0 && !published)
		FAIL("the run reported a publish, but the live table is the old state");
	if (r->rc != 0 && published) {
		/* A failed sync of the commit leaves a committed-looking WAL
		 * that recovery may keep: the outcome is then unknown to the
		 * engine, but the table must still be all of run N. */
		if (strcmp(st.last_status, "completed") != 0 ||
		    r->run_id != st.last_run)
			FAIL("invariant 2: the run failed (%s) but the live table "
			     "holds its rows",
			     r->msg);
		t->ambiguous++;
	}
	if (r->rc != 0) {
		for (size_t i = 0; causes[i]; i++)
			if (strstr(r->msg, causes[i]))
				named = 1;
		if (!named)
			FAIL("the error does not name the cause: \"%s\"",
			     r->msg);
	}
	if (published)
		t->published++;
	else
		t->failed++;

	/* Invariant 4: a plain rerun ends as the uninterrupted run did. */
	if (rh_run_child(sc, sc->cfg_new, NULL, &again) || again.rc)
		FAIL("invariant 4: the rerun failed: %s", again.msg);
	if (!rh_child_clean(again.status, cwhy, sizeof(cwhy)))
		FAIL("rerun: %s", cwhy);
	if (rh_read_state(sc->db, &st) || strcmp(st.integrity, "ok") != 0)
		FAIL("integrity after the rerun: %s", st.integrity);
	if (st.digest != ref->new_digest)
		FAIL("invariant 4: the rerun's live table differs from an "
		     "uninterrupted run's (%lld rows, want %lld)",
		     (long long)st.rows, (long long)ref->new_rows);
	if (st.stage_tables)
		FAIL("%d staging tables left after a completed run",
		     st.stage_tables);
	if (published) {
		if (again.inserted || again.updated || again.deleted)
			FAIL("invariant 5: the rerun after a publish changed rows "
			     "(%lld/%lld/%lld)",
			     (long long)again.inserted,
			     (long long)again.updated,
			     (long long)again.deleted);
	} else if (!counts_equal(&again, &ref->run)) {
		FAIL("invariant 4: rerun counts seen %lld ins %lld upd %lld unch %lld "
		     "del %lld dup %lld, uninterrupted %lld %lld %lld %lld %lld %lld",
		     (long long)again.seen, (long long)again.inserted,
		     (long long)again.updated, (long long)again.unchanged,
		     (long long)again.deleted, (long long)again.duplicates,
		     (long long)ref->run.seen, (long long)ref->run.inserted,
		     (long long)ref->run.updated, (long long)ref->run.unchanged,
		     (long long)ref->run.deleted,
		     (long long)ref->run.duplicates);
	}
	if (r->run_id > 0) {
		rh_run_status(sc->db, r->run_id, status, sizeof(status));
		if (strcmp(status, published ? "completed" : "failed") != 0)
			FAIL("invariant 10: the faulted run %lld is on record as '%s'",
			     (long long)r->run_id, status);
		if (!published && again.resumed_from == r->run_id)
			t->resumed++;
	}
	return 0;
}

void rh_parse_point(const char *spec, char *name, size_t cap, long *k)
{
	const char *colon = strrchr(spec, ':');
	size_t n = colon ? (size_t)(colon - spec) : strlen(spec);

	*k = !colon ? 1 : strcmp(colon + 1, "last") == 0 ? -1 : atol(colon + 1);
	if (strcmp(spec, "start") == 0)
		n = 0;
	if (n >= cap)
		n = cap - 1;
	memcpy(name, spec, n);
	name[n] = '\0';
}

void rh_json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; s && *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}
