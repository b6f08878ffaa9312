/*
 * Fuzz target: the record path, from bytes in a file to a published table.
 * An input is one selector byte, then a first delivery A, "\n===\n", and a
 * second delivery B (no separator: B alone).  The selector picks a dataset
 * (JSON lines in each mode and with typed, dotted and JSON columns, or
 * Singer messages) and whether records go through the file source and
 * as_sync_dataset or line by line through atomsync_run_put.
 *
 * Besides what the sanitizers catch, each input checks two invariants on a
 * fresh SQLite store in a tmpfs directory:
 *   2: B failing leaves the live table exactly as A left it;
 *   5: B published twice leaves it byte-identical, the second run reporting
 *      0 inserted, 0 updated, 0 deleted.
 * A violation aborts, so libFuzzer saves the input.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sqlite3.h>
#include <unistd.h>

#include "config/config.h"
#include "engine/sync.h"
#include "store/store.h"
#include "util/hash.h"
#include "util/log.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct fz_dataset {
	const char *name, *table;
	int singer;
} fz_dataset;

static const fz_dataset DATASETS[] = {
	{"j_full", "t_full", 0},     {"j_auto", "t_auto", 0},
	{"j_incr", "t_incr", 0},     {"j_scoped", "t_scoped", 0},
	{"j_append", "t_append", 0}, {"j_text", "t_text", 0},
	{"s_full", "t_singer", 1},   {"s_keyed", "t_skeyed", 1},
};
#define NDATASETS (sizeof(DATASETS) / sizeof(DATASETS[0]))

static const char *CONFIG =
	"store: sqlite:%s/fuzz.db\n"
	"datasets:\n"
	"  j_full:\n"
	"    table: t_full\n"
	"    batch_size: 3\n"
	"    max_record_size: 2048\n"
	"    guard: {max_rejects: 2}\n"
	"    reject_file: %s/rejects.jsonl\n"
	"    key: [id]\n"
	"    columns:\n"
	"      id: {type: integer}\n"
	"      name: {type: text}\n"
	"      score: {type: real}\n"
	"      ok: {type: boolean}\n"
	"      at: {type: timestamp}\n"
	"      meta: {type: json, path: a.b}\n"
	"      n: {type: integer, path: a.n}\n"
	"    source: {file: %s/in.jsonl}\n"
	"  j_auto:\n"
	"    table: t_auto\n"
	"    batch_size: 2\n"
	"    key: [k]\n"
	"    source: {file: %s/in.jsonl}\n"
	"  j_incr:\n"
	"    table: t_incr\n"
	"    mode: incremental\n"
	"    key: [id]\n"
	"    cursor: u\n"
	"    columns:\n"
	"      id: {type: integer}\n"
	"      u: {type: integer}\n"
	"      v: {type: text}\n"
	"    source: {file: %s/in.jsonl}\n"
	"  j_scoped:\n"
	"    table: t_scoped\n"
	"    mode: scoped\n"
	"    key: [id]\n"
	"    scope: [user]\n"
	"    guard: {max_rejects: 1}\n"
	"    reject_file: %s/rejects.jsonl\n"
	"    columns:\n"
	"      id: {type: integer}\n"
	"      user: {type: text}\n"
	"      v: {type: real}\n"
	"    source: {file: %s/in.jsonl}\n"
	"  j_append:\n"
	"    table: t_append\n"
	"    mode: append\n"
	"    key: [tx, i]\n"
	"    guard: {max_rejects: 3}\n"
	"    reject_file: %s/rejects.jsonl\n"
	"    columns:\n"
	"      tx: {type: text}\n"
	"      i: {type: integer}\n"
	"      v: {type: json}\n"
	"    source: {file: %s/in.jsonl}\n"
	"  j_text:\n"
	"    table: t_text\n"
	"    batch_size: 1\n"
	"    key: [a, b]\n"
	"    columns:\n"
	"      a: {type: text}\n"
	"      b: {type: text, path: x.y.z}\n"
	"      t: {type: timestamp}\n"
	"    source: {file: %s/in.jsonl}\n"
	"  s_full:\n"
	"    table: t_singer\n"
	"    source: {file: %s/in.singer, format: singer}\n"
	"  s_keyed:\n"
	"    table: t_skeyed\n"
	"    key: [id]\n"
	"    guard: {max_rejects: 2}\n"
	"    reject_file: %s/rejects.jsonl\n"
	"    source: {file: %s/in.singer, format: singer, stream: s}\n";

static char dir[256];
static as_config *cfg;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
	as_error err;
	char *text;
	int n;

	(void)argc;
	(void)argv;
	as_log_set_level(AS_LOG_QUIET);
	snprintf(dir, sizeof(dir), "%s/atomsync-fuzz-XXXXXX", base);
	if (!mkdtemp(dir))
		abort();
	n = snprintf(NULL, 0, CONFIG, dir, dir, dir, dir, dir, dir, dir, dir,
		     dir, dir, dir, dir, dir, dir, dir);
	text = malloc((size_t)n + 1);
	if (!text)
		abort();
	snprintf(text, (size_t)n + 1, CONFIG, dir, dir, dir, dir, dir, dir, dir,
		 dir, dir, dir, dir, dir, dir, dir, dir);
	if (as_config_parse(&cfg, text, (size_t)n, "fuzz.yml", &err)) {
		fprintf(stderr, "fuzz_record: config: %s\n", err.msg);
		abort();
	}
	free(text);
	return 0;
}

static void write_file(const char *name, const uint8_t *p, size_t n)
{
	char path[300];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	if (!f || (n && fwrite(p, 1, n, f) != n) || fclose(f))
		abort();
}

static void remove_store(void)
{
	static const char *suffix[] = {"fuzz.db", "fuzz.db-wal", "fuzz.db-shm",
				       "rejects.jsonl"};
	char path[300];

	for (size_t i = 0; i < 4; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, suffix[i]);
		unlink(path);
	}
}

/* Every column of the live table, in key order: what "byte-identical"
 * means for invariant 5 (and "as it was" for 2). */
static uint64_t digest(const char *table)
{
	char path[300], sql[128];
	sqlite3 *db = NULL;
	sqlite3_stmt *q = NULL;
	uint64_t h = 1469598103934665603ULL;

	snprintf(path, sizeof(path), "%s/fuzz.db", dir);
	snprintf(sql, sizeof(sql), "SELECT * FROM \"%s\" ORDER BY 1, 2", table);
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) ==
		    SQLITE_OK &&
	    sqlite3_prepare_v2(db, sql, -1, &q, NULL) == SQLITE_OK) {
		int n = sqlite3_column_count(q);

		while (sqlite3_step(q) == SQLITE_ROW)
			for (int i = 0; i < n; i++) {
				const void *v = sqlite3_column_blob(q, i);
				int len = sqlite3_column_bytes(q, i);

				h = (h ^ as_hash64(v ? v : "", (size_t)len) ^
				     (uint64_t)sqlite3_column_type(q, i)) *
				    1099511628211ULL;
			}
	}
	sqlite3_finalize(q);
	sqlite3_close(db);
	return h;
}

/* Records one line at a time through the public API, with a checkpoint
 * every 2 lines. */
static int put_lines(as_store *st, const char *ds, const uint8_t *p, size_t n,
		     atomsync_run_info *info, as_error *err)
{
	/* restart: these checkpoints (line numbers) do not identify the
	 * content, so a run must not continue another input's staging. */
	atomsync_run_options opt = {1, 1, 1, NULL, 0, 0, 0};
	atomsync_run *run = NULL;
	size_t start = 0, lineno = 0;
	int rc;

	memset(info, 0, sizeof(*info));
	if ((rc = atomsync_run_begin(&run, st, cfg, ds, &opt, err)))
		return rc;
	while (start < n) {
		const uint8_t *nl = memchr(p + start, '\n', n - start);
		size_t len = nl ? (size_t)(nl - (p + start)) : n - start;
		char where[32], cp[32];

		snprintf(where, sizeof(where), "input:%zu", ++lineno);
		if (len && (rc = atomsync_run_put(run, (const char *)p + start,
						  len, where, err)))
			goto out;
		snprintf(cp, sizeof(cp), "%zu", lineno);
		if (lineno % 2 == 0 &&
		    (rc = atomsync_run_checkpoint(run, cp, err)))
			goto out;
		start += len + 1;
	}
	rc = atomsync_run_publish(run, info, err);
out:
	atomsync_run_free(run);
	return rc;
}

static int sync_once(as_store *st, const fz_dataset *d, int api,
		     const uint8_t *p, size_t n, atomsync_run_info *info,
		     as_error *err)
{
	atomsync_run_options opt = {0, 1, 1, NULL, 0, 0, 0};

	write_file(d->singer ? "in.singer" : "in.jsonl", p, n);
	if (api && !d->singer)
		return put_lines(st, d->name, p, n, info, err);
	return as_sync_dataset(st, cfg, d->name, &opt, NULL, NULL, info, err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char SEP[] = "\n===\n";
	const fz_dataset *d;
	const uint8_t *a = NULL, *b;
	size_t alen = 0, blen;
	atomsync_run_info info;
	as_store *st = NULL;
	as_error err;
	uint64_t before, after;
	int api, rc;

	if (size < 1 || size > 8192)
		return 0;
	d = &DATASETS[data[0] % NDATASETS];
	api = (data[0] / NDATASETS) & 1;
	b = data + 1;
	blen = size - 1;
	for (size_t i = 0; i + sizeof(SEP) - 1 <= blen; i++)
		if (memcmp(b + i, SEP, sizeof(SEP) - 1) == 0) {
			a = b;
			alen = i + 1; /* keep A's newline */
			b += i + sizeof(SEP) - 1;
			blen -= i + sizeof(SEP) - 1;
			break;
		}
	remove_store();
	if (as_store_open(&st, cfg->store, &err)) {
		fprintf(stderr, "fuzz_record: %s\n", err.msg);
		abort();
	}
	if (a) {
		sync_once(st, d, api, a, alen, &info, &err);
		atomsync_run_info_clear(&info);
	}
	before = digest(d->table);
	rc = sync_once(st, d, api, b, blen, &info, &err);
	atomsync_run_info_clear(&info);
	after = digest(d->table);
	if (rc != 0 && after != before) {
		fprintf(stderr,
			"invariant 2: dataset %s: the run failed (%s) but the "
			"live table changed\n",
			d->name, err.msg);
		abort();
	}
	if (rc == 0) {
		rc = sync_once(st, d, api, b, blen, &info, &err);
		if (rc != 0 || info.inserted || info.updated || info.deleted ||
		    digest(d->table) != after) {
			fprintf(stderr,
				"invariant 5: dataset %s: the same input again: rc %d "
				"(%s), inserted %lld updated %lld deleted %lld, table %s\n",
				d->name, rc, rc ? err.msg : "",
				(long long)info.inserted,
				(long long)info.updated,
				(long long)info.deleted,
				digest(d->table) == after ? "identical"
							  : "changed");
			abort();
		}
		atomsync_run_info_clear(&info);
	}
	as_store_close(st);
	return 0;
}
