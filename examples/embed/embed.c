/*
 * A program that embeds atomsync: it builds a config in memory (a SQLite
 * store and one dataset read from a JSON-lines file), syncs the dataset
 * and prints its run record.
 *
 *   cc embed.c $(pkg-config --cflags --libs atomsync) -o embed
 *   ./embed sqlite:demo.db addons.jsonl
 */
#include <atomsync.h>
#include <inttypes.h>
#include <stdio.h>

int main(int argc, char **argv)
{
	atomsync_config *cfg = NULL;
	atomsync_store *st = NULL;
	atomsync_run_info info = {0};
	atomsync_error err;
	atomsync_dataset_spec spec = {
		.name = "addons", .key = "id", .max_rejects = -1};
	int rc;

	if (argc != 3) {
		fprintf(stderr, "usage: %s STORE FILE.jsonl\n", argv[0]);
		return 2;
	}
	spec.file = argv[2];
	rc = atomsync_config_new(&cfg, argv[1], &err);
	if (!rc)
		rc = atomsync_config_add_dataset(cfg, &spec, &err);
	if (!rc)
		rc = atomsync_store_open(&st, atomsync_config_store(cfg), &err);
	if (!rc)
		rc = atomsync_sync(st, cfg, "addons", NULL, NULL, NULL, &info,
				   &err);
	if (info.run_id)
		printf("run %" PRId64 " %s: %" PRId64 " seen, %" PRId64
		       " inserted, %" PRId64 " updated, %" PRId64
		       " unchanged, %" PRId64 " deleted\n",
		       info.run_id, info.status, info.seen, info.inserted,
		       info.updated, info.unchanged, info.deleted);
	if (rc)
		fprintf(stderr, "embed: %s\n", err.msg);
	atomsync_run_info_clear(&info);
	atomsync_store_free(st);
	atomsync_config_free(cfg);
	return rc ? 1 : 0;
}
