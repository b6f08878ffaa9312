/*
 * The scalar parsers behind the config's field types: integers, numbers,
 * booleans, durations, sizes, rates, identifiers, paths and URLs, and the
 * "did you mean" hint for a misspelt name.
 */
#include "config/config_int.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct unit {
	const char *name;
	int64_t mult;
};

bool as_cfg_parse_i64(const char *s, int64_t *out)
{
	const char *p = s + (*s == '-' || *s == '+');
	char *end;
	long long v;

	if (!isdigit((unsigned char)*p))
		return false;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || *end)
		return false;
	*out = v;
	return true;
}

bool as_cfg_parse_f64(const char *s, double *out)
{
	char *end;
	double v;

	if (!*s || strspn(s, "0123456789+-.eE") != strlen(s))
		return false;
	errno = 0;
	v = strtod(s, &end);
	if (errno || *end || !isfinite(v))
		return false;
	*out = v;
	return true;
}

bool as_cfg_parse_bool(const char *s, int *out)
{
	static const char *const words[] = {"false", "False", "FALSE",
					    "true",  "True",  "TRUE"};

	for (size_t i = 0; i < NELEM(words); i++) {
		if (!strcmp(s, words[i])) {
			*out = i >= 3;
			return true;
		}
	}
	return false;
}

/* Digits, optional spaces, then one of the units; -1 if malformed. */
static int64_t parse_units(const char *s, const struct unit *u, size_t n,
			   bool spaces)
{
	long long v;
	char *end;

	if (!s || !isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno)
		return -1;
	while (spaces && *end == ' ')
		end++;
	for (size_t i = 0; i < n; i++)
		if (!strcmp(end, u[i].name))
			return v > INT64_MAX / u[i].mult ? -1 : v * u[i].mult;
	return -1;
}

int64_t as_parse_duration_ms(const char *s)
{
	static const struct unit units[] = {
		{"", 1000},   {"ms", 1},      {"s", 1000},
		{"m", 60000}, {"h", 3600000}, {"d", 86400000},
	};

	return parse_units(s, units, NELEM(units), false);
}

/* "16MiB", "512 KiB", "1048576" -> bytes; -1 if malformed. */
int64_t as_cfg_parse_size(const char *s)
{
	static const struct unit units[] = {
		{"", 1},
		{"B", 1},
		{"KiB", 1024},
		{"MiB", 1024 * 1024},
		{"GiB", 1024LL * 1024 * 1024},
	};

	return parse_units(s, units, NELEM(units), true);
}

double as_parse_rate(const char *s)
{
	static const struct unit units[] = {
		{"s", 1}, {"sec", 1}, {"min", 60}, {"m", 60}, {"h", 3600},
	};
	const char *slash = s ? strchr(s, '/') : NULL;
	size_t len = slash ? (size_t)(slash - s) : 0, dots = 0;
	char num[64];
	double v;

	/* Digits with at most one '.': no sign, exponent, hex, inf or nan. */
	for (size_t i = 0; i < len; i++)
		dots += s[i] == '.';
	if (!len || len >= sizeof(num) || strspn(s, "0123456789.") != len ||
	    dots > 1 || dots == len)
		return -1;
	memcpy(num, s, len);
	num[len] = '\0';
	v = strtod(num, NULL);
	if (!(v > 0) || !isfinite(v))
		return -1;
	for (size_t i = 0; i < NELEM(units); i++)
		if (!strcmp(slash + 1, units[i].name))
			return v / (double)units[i].mult;
	return -1;
}

/* [A-Za-z_][A-Za-z0-9_]*, in ASCII whatever the locale. */
bool as_cfg_valid_var(const char *s, size_t len)
{
	if (!len || len > 127 || (*s >= '0' && *s <= '9'))
		return false;
	for (size_t i = 0; i < len; i++)
		if (!s[i] || !strchr(WORD_CHARS, s[i]))
			return false;
	return true;
}

bool as_cfg_is_ident(const char *s)
{
	size_t n = strlen(s);

	return n <= IDENT_MAX && as_cfg_valid_var(s, n);
}

/* "a.b.c": no empty segment. */
bool as_cfg_valid_path(const char *s)
{
	return *s && *s != '.' && s[strlen(s) - 1] != '.' && !strstr(s, "..");
}

bool as_cfg_is_url(const char *s)
{
	return !strncasecmp(s, "http://", 7) || !strncasecmp(s, "https://", 8);
}

/* Levenshtein distance ignoring case, for "did you mean". */
static size_t edit_distance(const char *a, const char *b)
{
	size_t lb = strlen(b), row[33], diag, up;

	if (strlen(a) > 32 || lb > 32)
		return SIZE_MAX;
	for (size_t j = 0; j <= lb; j++)
		row[j] = j;
	for (size_t i = 1; *a; a++, i++) {
		diag = row[0];
		row[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			up = row[j];
			row[j] = diag + (tolower((unsigned char)*a) !=
					 tolower((unsigned char)b[j - 1]));
			if (up + 1 < row[j])
				row[j] = up + 1;
			if (row[j - 1] + 1 < row[j])
				row[j] = row[j - 1] + 1;
			diag = up;
		}
	}
	return row[lb];
}

/* " (did you mean 'x'?)" for the closest of names, or "". */
const char *as_cfg_hint(const char *word, const char *const *names, size_t n,
			char *buf, size_t cap)
{
	size_t best = SIZE_MAX, limit = strlen(word) <= 3 ? 1 : 2;
	const char *pick = NULL;

	for (size_t i = 0; i < n; i++) {
		size_t d = names[i] ? edit_distance(word, names[i]) : SIZE_MAX;

		if (d < best) {
			best = d;
			pick = names[i];
		}
	}
	if (best > limit)
		return "";
	snprintf(buf, cap, " (did you mean '%s'?)", pick);
	return buf;
}
