/*
 * ${VAR} expansion of config scalars: each variable is taken from the
 * environment, $$ stands for one '$', and the values of variables used where
 * secrets belong are kept on the config so messages can be redacted.
 */
#include "config/config_int.h"

#include <stdbool.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#define VALUE_MAX (1024 * 1024) /* one scalar after ${VAR} expansion */
#define SECRET_MIN 3		/* so "***" never makes a message longer */

typedef struct sbuf {
	char *p;
	size_t len, cap;
} sbuf;

static int sb_add(cx *c, const ynode *n, sbuf *b, const char *s, size_t len)
{
	if (b->len + len + 1 > VALUE_MAX)
		return as_cfg_fail(c, n, "value longer than %d bytes",
				   VALUE_MAX);
	while (b->len + len + 1 > b->cap) {
		char *p = as_cfg_grow(b->p, b->cap, &b->cap, 1);

		if (!p)
			return as_cfg_oom(c);
		b->p = p;
	}
	/* The loop above made b->p hold len + 1 more bytes. */
	/* NOLINTNEXTLINE(clang-analyzer-core.NonNullParamChecker) */
	memcpy(b->p + b->len, s, len);
	b->len += len;
	b->p[b->len] = '\0';
	return 0;
}

/* Append a copy of s to the list v unless it is there already. */
int as_cfg_add_unique(cx *c, char ***v, size_t *n, const char *s)
{
	char **grown;

	for (size_t i = 0; i < *n; i++)
		if (!strcmp((*v)[i], s))
			return 0;
	grown = realloc(*v, (*n + 1) * sizeof(*grown));
	if (!grown)
		return as_cfg_oom(c);
	*v = grown;
	if (!(grown[*n] = strdup(s)))
		return as_cfg_oom(c);
	(*n)++;
	return 0;
}

/* A secret as it appears percent-encoded in a URL (RFC 3986 unreserved
 * characters kept), masked as well when it differs. */
static int add_encoded(cx *c, const char *val)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = strlen(val), o = 0;
	char *enc = malloc(3 * n + 1);
	int rc = 0;

	if (!enc)
		return as_cfg_oom(c);
	for (const unsigned char *p = (const unsigned char *)val; *p; p++) {
		if (isalnum(*p) || strchr("-._~", *p)) {
			enc[o++] = (char)*p;
		} else {
			enc[o++] = '%';
			enc[o++] = hex[*p >> 4];
			enc[o++] = hex[*p & 15];
		}
	}
	enc[o] = '\0';
	if (o != n)
		rc = as_cfg_add_unique(c, &c->cfg->secret_values,
				       &c->cfg->nsecret_values, enc);
	free(enc);
	return rc;
}

/* One "${NAME}" at s; *end is set past the '}'. */
static int expand_var(cx *c, const ynode *n, const char *s, bool secret,
		      sbuf *b, const char **end)
{
	const char *close = strchr(s + 2, '}'), *val;
	as_config *cfg = c->cfg;
	char name[128];
	size_t len;
	int rc;

	if (!close)
		return as_cfg_fail(
			c, n, "unterminated '${' (write $$ for a literal $)");
	len = (size_t)(close - (s + 2));
	if (!as_cfg_valid_var(s + 2, len))
		return as_cfg_fail(c, n, "invalid variable reference '${%.*s}'",
				   (int)(len > 40 ? 40 : len), s + 2);
	memcpy(name, s + 2, len);
	name[len] = '\0';
	val = getenv(name);
	if (!val)
		return as_cfg_fail(c, n, "environment variable %s is not set",
				   name);
	*end = close + 1;
	if (secret && strlen(val) >= SECRET_MIN) {
		rc = as_cfg_add_unique(c, &cfg->secret_values,
				       &cfg->nsecret_values, val);
		if (!rc)
			rc = add_encoded(c, val);
		if (rc)
			return rc;
	}
	return sb_add(c, n, b, val, strlen(val));
}

/*
 * The scalar's text with ${VAR} taken from the environment and $$ made $.
 * With secret set, each variable's value joins cfg->secret_values.
 * *used (may be NULL) tells whether a ${VAR} was seen.  *out is malloc'd.
 */
int as_cfg_expand(cx *c, const ynode *n, bool secret, char **out, int *used)
{
	const char *s = n->text, *d;
	sbuf b = {0};
	int rc = 0;

	if (used)
		*used = 0;
	while (!rc && (d = strchr(s, '$'))) {
		rc = sb_add(c, n, &b, s, (size_t)(d - s));
		if (!rc &&
		    d[1] != '{') { /* "$$" is one '$'; a lone '$' stays */
			rc = sb_add(c, n, &b, "$", 1);
			s = d + (d[1] == '$' ? 2 : 1);
		} else if (!rc) {
			rc = expand_var(c, n, d, secret, &b, &s);
			if (!rc && used)
				*used = 1;
		}
	}
	if (!rc)
		rc = sb_add(c, n, &b, s, strlen(s));
	if (rc) {
		free(b.p);
		return rc;
	}
	*out = b.p;
	return 0;
}
