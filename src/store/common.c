/*
 * Logic every backend shares: the guards of invariant 3, URL redaction,
 * and the dispatch from a store URL to its backend.
 */
#include "store/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/str.h"

extern int as_sqlite_open(as_store **out, const char *url, as_error *err);
extern int as_postgres_open(as_store **out, const char *url, as_error *err);

/* A URL, or a libpq key=value string: its first word is "keyword=". */
static int is_postgres_url(const char *url)
{
	const char *p = url;

	if (strncmp(url, "postgres://", 11) == 0 ||
	    strncmp(url, "postgresql://", 13) == 0)
		return 1;
	while (*p == ' ' || *p == '\t')
		p++;
	if (!((*p >= 'a' && *p <= 'z') || *p == '_'))
		return 0;
	while ((*p >= 'a' && *p <= 'z') || *p == '_')
		p++;
	while (*p == ' ' || *p == '\t')
		p++;
	return *p == '=';
}

static int has_suffix(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);

	return n > k && !strcasecmp(s + n - k, suffix);
}

/* sqlite:PATH (or sqlite://PATH), or a path that says it is a database.
 * Anything else would create a file named after a typo. */
static int is_sqlite_url(const char *url)
{
	if (!strncmp(url, "sqlite://", 9))
		return url[9] != '\0';
	if (!strncmp(url, "sqlite:", 7))
		return url[7] != '\0';
	return !strstr(url, "://") &&
	       (has_suffix(url, ".db") || has_suffix(url, ".sqlite") ||
		has_suffix(url, ".sqlite3"));
}

int as_store_open(as_store **out, const char *url, as_error *err)
{
	*out = NULL;
	if (!url || !*url)
		return as_error_set(err, AS_EUSAGE, "no store given");
	if (is_postgres_url(url))
		return as_postgres_open(out, url, err);
	if (is_sqlite_url(url))
		return as_sqlite_open(out, url, err);
	{
		char *shown = as_redact_url(url);
		int rc = as_error_set(
			err, AS_EUSAGE,
			"store '%s' is not a store: expected sqlite:PATH, a "
			"path ending in .db, .sqlite or .sqlite3, a "
			"postgres:// or postgresql:// URL, or a libpq "
			"key=value string",
			shown ? shown : "?");

		free(shown);
		return rc;
	}
}

void as_store_close(as_store *st)
{
	if (st)
		st->ops->close(st);
}

/* postgres://user:secret@host/db -> postgres://user:***@host/db;
 * key=value strings get password=*** . */
char *as_redact_url(const char *url)
{
	as_buf b = AS_BUF_INIT;
	const char *scheme, *at, *colon, *pw;

	if (!url)
		return NULL;
	scheme = strstr(url, "://");
	if (scheme) {
		at = strchr(scheme + 3, '@');
		colon = at ? memchr(scheme + 3, ':', (size_t)(at - scheme - 3))
			   : NULL;
		if (at && colon) {
			as_buf_add(&b, url, (size_t)(colon - url) + 1);
			as_buf_adds(&b, "***");
			as_buf_adds(&b, at);
		} else {
			as_buf_adds(&b, url);
		}
	} else if ((pw = strstr(url, "password=")) != NULL) {
		const char *end = pw + 9;

		if (*end == '\'') {
			end++;
			while (*end && *end != '\'')
				end += (*end == '\\' && end[1]) ? 2 : 1;
			if (*end)
				end++;
		} else {
			while (*end && *end != ' ')
				end++;
		}
		as_buf_add(&b, url, (size_t)(pw - url) + 9);
		as_buf_adds(&b, "***");
		as_buf_adds(&b, end);
	} else {
		as_buf_adds(&b, url);
	}
	return as_buf_detach(&b);
}

void as_counts_finish(as_counts *c)
{
	int64_t staged = c->inserted + c->updated + c->unchanged;

	c->duplicates = c->seen - c->rejected - staged;
	if (c->duplicates < 0)
		c->duplicates = 0;
}

/*
 * Invariant 3: refuse an empty delivery where rows exist, and a publish that
 * would delete more than the allowed fraction of the live rows (for scoped
 * mode: of the rows of the scopes the run delivered).  scope_rows is that
 * denominator for scoped mode, ignored otherwise.  A run deleting at most
 * po->min_deletes rows in all passes the fraction: a small scope (a user's
 * 5 calendars) changes by a large fraction in normal use, while a partial
 * upstream answer over a table or scope of any size deletes more than that.
 */
int as_guard_check(const as_table *t, const as_publish_opts *po,
		   const as_counts *c, int64_t scope_rows, as_error *err)
{
	char a[32], b[32], m[32];
	int64_t staged = c->inserted + c->updated + c->unchanged;
	int64_t base = t->mode == AS_MODE_SCOPED ? scope_rows : c->live_before;

	if (t->mode == AS_MODE_FULL || t->mode == AS_MODE_SCOPED) {
		if (staged == 0 && c->live_before > 0 && !po->allow_empty &&
		    !(t->mode == AS_MODE_SCOPED && po->nnamed > 0))
			return as_error_set(
				err, AS_EREFUSED,
				"refused: the source delivered 0 records but table "
				"%s has %s rows; nothing was changed (pass "
				"--allow-empty to publish an empty delivery)",
				t->table,
				as_fmt_count(a, sizeof(a), c->live_before));
		if (staged == 0 && po->allow_empty)
			return 0;
		if (c->deleted > po->min_deletes && base > 0 &&
		    !po->allow_deletes &&
		    (double)c->deleted > po->max_delete_fraction * (double)base)
			return as_error_set(
				err, AS_EREFUSED,
				"refused: the run would delete %s of %s rows "
				"(%.1f%%, over max_delete_fraction %.0f%% and "
				"min_deletes %s); nothing was changed (pass "
				"--allow-deletes to publish it)",
				as_fmt_count(a, sizeof(a), c->deleted),
				as_fmt_count(b, sizeof(b), base),
				100.0 * (double)c->deleted / (double)base,
				100.0 * po->max_delete_fraction,
				as_fmt_count(m, sizeof(m), po->min_deletes));
	}
	return 0;
}

int as_table_owner_check(const as_table *t, const char *other,
			 const char *other_mode, as_error *err)
{
	if (!other)
		return 0;
	/* Scoped datasets replace only the scopes they deliver, so several of
	 * them may fill disjoint scopes of one table when they say so. */
	if (t->share_table && t->mode == AS_MODE_SCOPED &&
	    as_streq(other_mode, "scoped"))
		return 0;
	return as_error_set(
		err, AS_EUSAGE,
		"dataset %s: table %s belongs to dataset %s%s; give %s a "
		"table of its own%s",
		t->dataset, t->table, other,
		as_streq(other_mode, "scoped") ? "" : " (not a scoped dataset)",
		t->dataset,
		t->mode == AS_MODE_SCOPED && as_streq(other_mode, "scoped")
			? ", or set share_table: true on it to fill its own "
			  "scopes of the table"
			: "");
}

const char *as_lease_label(const char *lease, char *buf, size_t cap)
{
	size_t n = strlen(AS_TABLE_LEASE_PREFIX);

	if (!strncmp(lease, AS_TABLE_LEASE_PREFIX, n))
		snprintf(buf, cap, "table %s", lease + n);
	else
		snprintf(buf, cap, "dataset %s", lease);
	return buf;
}

int as_lease_lost(const char *lease, int64_t token, as_error *err)
{
	char what[160];

	return as_error_set(err, AS_EFENCED,
			    "%s: this worker's lease (token %lld) was taken "
			    "over by another worker; nothing more is "
			    "committed by this run",
			    as_lease_label(lease, what, sizeof(what)),
			    (long long)token);
}

void as_dataset_status_free(as_dataset_status *s, size_t n)
{
	if (!s)
		return;
	for (size_t i = 0; i < n; i++) {
		free(s[i].dataset);
		free(s[i].table);
		free(s[i].mode);
		free(s[i].cursor);
		free(s[i].lease_owner);
	}
	free(s);
}

int as_table_key_list(const as_table *t, char *buf, size_t cap)
{
	size_t off = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < t->nkey; i++) {
		int n = snprintf(buf + off, cap - off, "%s%s", i ? "," : "",
				 t->cols[i].name);
		if (n < 0 || (size_t)n >= cap - off)
			return -1;
		off += (size_t)n;
	}
	return 0;
}

void as_outbox_events_free(as_outbox_event *v, size_t n)
{
	if (!v)
		return;
	for (size_t i = 0; i < n; i++) {
		free(v[i].dataset);
		free(v[i].target);
		free(v[i].status);
		free(v[i].last_error);
		free(v[i].created_at);
		free(v[i].delivered_at);
		free(v[i].payload);
	}
	free(v);
}

as_row *as_batch_add_row(as_batch *b, size_t ncols)
{
	as_row *row;

	if (b->nrows == b->caprows) {
		size_t cap = b->caprows ? b->caprows * 2 : 64;
		as_row *nr = realloc(b->rows, cap * sizeof(*nr));

		if (!nr)
			return NULL;
		b->rows = nr;
		b->caprows = cap;
	}
	row = &b->rows[b->nrows];
	memset(row, 0, sizeof(*row));
	row->v = as_arena_alloc(&b->arena, ncols * sizeof(as_val));
	return row->v ? row : NULL;
}
