/*
 * Fuzz target: one record's text through the strict record parser and the
 * compact serializer (util/json.c), the step every JSON-lines record takes.
 * A record that parses must serialize, and its serialization must parse to
 * the same serialization (what the `data` and json columns store must read
 * back as itself).  A rejected one must say where, on one line.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	as_error err;
	json_t *rec;

	if (size > 1 << 16)
		return 0;
	as_error_clear(&err);
	rec = as_json_parse_record((const char *)data, size, "input:1", &err);
	if (!rec) {
		if (strncmp(err.msg, "input:1", 7) != 0 ||
		    strchr(err.msg, '\n')) {
			fprintf(stderr, "bad rejection message: [%s]\n",
				err.msg);
			abort();
		}
		return 0;
	}
	{
		char *once = as_json_compact(rec), *twice = NULL;
		json_t *again;

		if (!once)
			abort();
		again = as_json_parse_record(once, strlen(once), "again", &err);
		if (!again) {
			fprintf(stderr,
				"compact form does not parse: %s: [%s]\n",
				err.msg, once);
			abort();
		}
		twice = as_json_compact(again);
		if (!twice || strcmp(once, twice) != 0) {
			fprintf(stderr,
				"compact form is not stable:\n[%s]\n[%s]\n",
				once, twice ? twice : "(null)");
			abort();
		}
		free(once);
		free(twice);
		json_decref(again);
	}
	json_decref(rec);
	return 0;
}
