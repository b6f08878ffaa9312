/*
 * JSON lines (or Singer messages) from a file or stdin.  A file run
 * checkpoints its byte offset with a hash of everything before it, so a
 * resumed run proves the file's prefix is unchanged before skipping it
 * (an appended file still resumes; an edited one starts over).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "source/lines.h"
#include "source/singer.h"
#include "source/source.h"
#include "util/json.h"
#include "util/str.h"

typedef struct file_src {
	as_source base;
	as_lines lines;
	int fd, is_stdin;
	int raw;    /* as_source_opts.raw */
	char *name; /* as shown in messages */
	as_format format;
	as_singer singer;
	int64_t every, since_cp;
	int64_t max;
	int ended;
	int end_cp; /* the checkpoint at the end of the file was sent */
} file_src;

/* "name:line", without printf: this runs for every line. */
static void format_where(const file_src *f, char *out, size_t cap)
{
	char num[24];
	size_t n = 0, len = strlen(f->name);
	int64_t v = f->lines.line;

	do {
		num[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v && n < sizeof(num));
	if (len + 1 + n + 1 > cap)
		len = cap - n - 2;
	memcpy(out, f->name, len);
	out[len++] = ':';
	while (n)
		out[len++] = num[--n];
	out[len] = '\0';
}

static int emit_checkpoint(file_src *f, as_event *ev, as_error *err)
{
	ev->kind = AS_EV_CHECKPOINT;
	ev->checkpoint = as_sprintf("{\"offset\":%" PRId64 ",\"line\":%" PRId64
				    ",\"prefix\":\"%016" PRIx64 "\"}",
				    f->lines.consumed, f->lines.line,
				    as_lines_digest(&f->lines));
	f->since_cp = 0;
	if (!ev->checkpoint)
		return as_error_set(err, AS_ENOMEM, "%s: out of memory",
				    f->name);
	return 1;
}

/* Whether everything consumed ends with a newline: a checkpoint after an
 * unterminated last line could resume in the middle of a line a writer is
 * still completing. */
static int ends_with_newline(file_src *f)
{
	char c;

	if (f->lines.consumed <= 0)
		return 0;
	return pread(f->fd, &c, 1, (off_t)(f->lines.consumed - 1)) == 1 &&
	       c == '\n';
}

static int file_next(as_source *s, as_event *ev, as_error *err)
{
	file_src *f = (file_src *)s;
	const char *line;
	size_t len;
	int rc;

	memset(ev, 0, sizeof(*ev));
	/* The rest of a BATCH first: no checkpoint falls inside one. */
	if (f->format == AS_FORMAT_SINGER &&
	    (rc = as_singer_pending(&f->singer, ev, err)) != 0)
		return rc;
	for (;;) {
		if (!f->is_stdin && !f->raw && f->since_cp >= f->every &&
		    !as_lines_mid_line(&f->lines))
			return emit_checkpoint(f, ev, err);
		rc = as_lines_next(&f->lines, &line, &len, err);
		if (rc < 0)
			return rc;
		if (rc == AS_LINE_EOF) {
			/* A last checkpoint at the end, so the rows after the
			 * previous one are committed with a resume point too: a
			 * run killed while publishing resumes instead of
			 * reading the whole file again. */
			if (!f->is_stdin && !f->raw && f->since_cp > 0 &&
			    !f->end_cp && ends_with_newline(f)) {
				f->end_cp = 1;
				return emit_checkpoint(f, ev, err);
			}
			f->base.complete = 1;
			return 0;
		}
		format_where(f, ev->where, sizeof(ev->where));
		f->base.bytes = f->lines.consumed;
		if (rc == AS_LINE_TOO_LONG || rc == AS_LINE_ENDLESS) {
			as_source_over_cap(ev, rc, len, f->max);
			f->since_cp++;
			return 1;
		}
		{
			size_t i = 0;

			while (i < len && (line[i] == ' ' || line[i] == '\t'))
				i++;
			if (i == len)
				continue; /* blank line */
		}
		f->since_cp++;
		ev->raw = line;
		ev->rawlen = len;
		if (f->format == AS_FORMAT_JSONL || f->raw) {
			/* The engine parses it, unless its exact text is known.
			 */
			f->base.records++;
			ev->kind = AS_EV_RECORD;
			return 1;
		}
		ev->json = as_json_parse_record(line, len, ev->where, &ev->why);
		if (!ev->json && ev->why.code == AS_ENOMEM) {
			*err = ev->why; /* not a bad record: the run fails */
			return AS_ENOMEM;
		}
		if (!ev->json) {
			ev->kind = AS_EV_BAD;
			return 1;
		}
		{
			json_t *msg = ev->json;

			ev->json = NULL;
			rc = as_singer_message(&f->singer, msg, ev, err);
			json_decref(msg);
			if (rc == 0)
				continue;
			if (rc < 0)
				return rc;
			return 1;
		}
	}
}

static void file_close(as_source *s)
{
	file_src *f = (file_src *)s;

	as_lines_free(&f->lines);
	if (f->fd >= 0 && !f->is_stdin)
		close(f->fd);
	as_singer_free(&f->singer);
	free(f->name);
	free(f);
}

static const as_source_ops file_ops = {
	.name = "file",
	.next = file_next,
	.close = file_close,
};

/* Skip to the checkpoint's offset, checking the prefix hash. */
static int resume(file_src *f, const char *checkpoint, as_error *err)
{
	json_error_t je;
	json_t *cp = json_loads(checkpoint, 0, &je);
	json_int_t offset, line;
	const char *prefix;
	char have[17];
	int rc;

	if (!cp || json_unpack(cp, "{s:I, s:I, s:s}", "offset", &offset, "line",
			       &line, "prefix", &prefix)) {
		json_decref(cp);
		return as_error_set(err, AS_ECHECKPOINT,
				    "%s: the checkpoint is not "
				    "a file position",
				    f->name);
	}
	rc = as_lines_skip(&f->lines, offset, err);
	snprintf(have, sizeof(have), "%016" PRIx64, as_lines_digest(&f->lines));
	if (rc == AS_ECHECKPOINT || (rc == 0 && strcmp(have, prefix) != 0)) {
		as_error_set(err, AS_ECHECKPOINT,
			     "%s changed since the checkpoint "
			     "at line %lld (its first %lld bytes differ)",
			     f->name, (long long)line, (long long)offset);
		json_decref(cp);
		return AS_ECHECKPOINT;
	}
	json_decref(cp);
	if (rc)
		return rc;
	f->lines.line = line;
	return 0;
}

int as_file_source_open(as_source **out, const as_source_cfg *cfg,
			const as_source_opts *o, as_error *err)
{
	file_src *f = calloc(1, sizeof(*f));
	int rc;

	*out = NULL;
	if (!f)
		return as_error_set(err, AS_ENOMEM, "out of memory");
	f->base.ops = &file_ops;
	f->is_stdin = cfg->kind == AS_SOURCE_STDIN ||
		      (cfg->path && strcmp(cfg->path, "-") == 0);
	f->name = as_strdup(f->is_stdin ? "stdin" : cfg->path);
	if (!f->name) {
		free(f);
		return as_error_set(err, AS_ENOMEM, "out of memory");
	}
	f->format = cfg->format;
	f->raw = o->raw;
	f->every = o->checkpoint_every > 0 ? o->checkpoint_every : 1000;
	f->max = o->max_record_bytes > 0 ? o->max_record_bytes
					 : ((int64_t)16 << 20);
	/* A Singer file resumes by offset; its STATE messages are not needed.
	 */
	as_singer_init(&f->singer, cfg->stream, 0);
	f->singer.keyed = o->keyed;
	if (f->is_stdin) {
		f->fd = 0;
	} else {
		/* A file source that is not stdin has a path (config/source.c).
		 */
		/* NOLINTNEXTLINE(clang-analyzer-core.NonNullParamChecker) */
		f->fd = open(cfg->path, O_RDONLY | O_CLOEXEC);
		if (f->fd < 0) {
			as_error_errno(err, AS_ESOURCE, "%s", cfg->path);
			file_close(&f->base);
			return AS_ESOURCE;
		}
	}
	if (as_lines_init(&f->lines, f->fd, (size_t)f->max, !f->is_stdin,
			  f->name)) {
		file_close(&f->base);
		return as_error_set(err, AS_ENOMEM, "out of memory");
	}
	if (o->checkpoint && !f->is_stdin && !f->raw &&
	    (rc = resume(f, o->checkpoint, err))) {
		file_close(&f->base);
		return rc;
	}
	*out = &f->base;
	return 0;
}
