/*
 * Source dispatch and the parts every source shares.
 */
#include "source/source.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "source/lines.h"
#include "util/str.h"

int as_source_open(as_source **out, const as_source_cfg *cfg,
		   const as_source_opts *o, as_error *err)
{
	*out = NULL;
	switch (cfg->kind) {
	case AS_SOURCE_FILE:
	case AS_SOURCE_STDIN: return as_file_source_open(out, cfg, o, err);
	case AS_SOURCE_EXEC: return as_exec_source_open(out, cfg, o, err);
	case AS_SOURCE_HTTP: return as_http_source_open(out, cfg, o, err);
	}
	return as_error_set(err, AS_EUSAGE, "dataset %s: no source",
			    o->dataset);
}

void as_source_close(as_source *s)
{
	if (s)
		s->ops->close(s);
}

/* stdin cannot be read twice, and a command's JSON lines carry no position
 * to restart from, so those runs start over; files (by offset), Singer taps
 * (by STATE) and HTTP APIs (by page) resume. */
int as_source_resumable(const as_source_cfg *cfg)
{
	switch (cfg->kind) {
	case AS_SOURCE_FILE:
	case AS_SOURCE_HTTP: return 1;
	case AS_SOURCE_EXEC:
		return cfg->format == AS_FORMAT_SINGER && cfg->command &&
		       strstr(cfg->command, "{state}") != NULL;
	default: return 0;
	}
}

void as_event_clear(as_event *ev)
{
	json_decref(ev->json);
	free(ev->checkpoint);
	as_strv_free(ev->key, ev->nkey);
	free(ev->ktype);
	memset(ev, 0, sizeof(*ev));
}

void as_source_over_cap(as_event *ev, int rc, size_t len, int64_t max)
{
	ev->kind = AS_EV_BAD;
	if (rc == AS_LINE_ENDLESS)
		as_error_set(&ev->why, AS_EINPUT,
			     "%s: record is over the size cap of %" PRId64
			     " bytes (max_record_size): no end of line in its "
			     "first %zu bytes",
			     ev->where, max, len);
	else
		as_error_set(&ev->why, AS_EINPUT,
			     "%s: record is %zu bytes, over the size cap of "
			     "%" PRId64 " bytes (max_record_size)",
			     ev->where, len, max);
}
