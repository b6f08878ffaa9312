/*
 * Cron expressions: the parser and the next firing time.  Time zones other
 * than UTC go through the C library's TZ database (localtime_r/mktime with
 * TZ switched under a lock), so the rules are the system's tzdata.
 */
#include "util/cron.h"

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

static const char *const MONTHS[] = {"jan", "feb", "mar", "apr", "may", "jun",
				     "jul", "aug", "sep", "oct", "nov", "dec"};
static const char *const DAYS[] = {"sun", "mon", "tue", "wed",
				   "thu", "fri", "sat"};

typedef struct fspec {
	const char *name;
	int lo, hi;
	const char *const *names; /* lo-based, or NULL */
	int nnames;
} fspec;

static const fspec FIELDS[5] = {
	{"minute", 0, 59, NULL, 0},	  {"hour", 0, 23, NULL, 0},
	{"day of month", 1, 31, NULL, 0}, {"month", 1, 12, MONTHS, 12},
	{"day of week", 0, 7, DAYS, 7},
};

/* A number or a name at *p; advances *p.  -1 when neither. */
static int read_value(const fspec *f, const char **p)
{
	const char *s = *p;

	if (isdigit((unsigned char)*s)) {
		long v = 0;

		while (isdigit((unsigned char)*s) && v < 1000)
			v = v * 10 + (*s++ - '0');
		*p = s;
		return (int)v;
	}
	for (int i = 0; f->names && i < f->nnames; i++)
		if (strncasecmp(s, f->names[i], 3) == 0) {
			*p = s + 3;
			return f->lo + i;
		}
	return -1;
}

/* One field (text of len bytes) into bits; -1 with why. */
static int parse_field(const fspec *f, const char *text, size_t len,
		       uint64_t *bits, int *any, char *why, size_t cap)
{
	char buf[128];
	const char *p;

	if (len >= sizeof(buf)) {
		snprintf(why, cap, "the %s field is too long", f->name);
		return -1;
	}
	memcpy(buf, text, len);
	buf[len] = '\0';
	*bits = 0;
	*any = strcmp(buf, "*") == 0 || strncmp(buf, "*/", 2) == 0;
	p = buf;
	for (;;) {
		int a, b, step = 1;

		if (*p == '*') {
			a = f->lo;
			b = f->hi == 7 ? 6 : f->hi;
			p++;
		} else {
			if ((a = read_value(f, &p)) < 0)
				goto bad;
			b = a;
			if (*p == '-') {
				p++;
				if ((b = read_value(f, &p)) < 0)
					goto bad;
			}
		}
		if (*p == '/') {
			p++;
			if (!isdigit((unsigned char)*p))
				goto bad;
			step = (int)strtol(p, (char **)&p, 10);
			if (step < 1 || step > f->hi) {
				snprintf(
					why, cap,
					"the %s field: step %d is out of range",
					f->name, step);
				return -1;
			}
			if (a == b && buf[0] != '*')
				b = f->hi;
		}
		if (a < f->lo || b > f->hi || a > b) {
			snprintf(why, cap,
				 "the %s field '%s': values go from %d to %d",
				 f->name, buf, f->lo, f->hi);
			return -1;
		}
		for (int v = a; v <= b; v += step)
			*bits |= 1ULL << (f->hi == 7 && v == 7 ? 0 : v);
		if (*p == '\0')
			return 0;
		if (*p++ != ',')
			goto bad;
	}
bad:
	snprintf(why, cap,
		 "the %s field '%s' is not a number, range (a-b), step (*/n) "
		 "or list (a,b)",
		 f->name, buf);
	return -1;
}

int as_cron_parse(as_cron *c, const char *text, char *why, size_t cap)
{
	const char *p = text;
	uint64_t bits[5];
	int any[5], n = 0;

	memset(c, 0, sizeof(*c));
	while (*p) {
		const char *start;

		while (isspace((unsigned char)*p))
			p++;
		if (!*p)
			break;
		start = p;
		while (*p && !isspace((unsigned char)*p))
			p++;
		if (n == 5) {
			snprintf(why, cap,
				 "a cron expression has five fields (minute "
				 "hour day-of-month month day-of-week), "
				 "got more");
			return -1;
		}
		if (parse_field(&FIELDS[n], start, (size_t)(p - start),
				&bits[n], &any[n], why, cap))
			return -1;
		n++;
	}
	if (n != 5) {
		snprintf(why, cap,
			 "a cron expression has five fields (minute hour "
			 "day-of-month month day-of-week), got %d",
			 n);
		return -1;
	}
	c->minute = bits[0];
	c->hour = (uint32_t)bits[1];
	c->dom = (uint32_t)bits[2];
	c->month = (uint16_t)bits[3];
	c->dow = (uint8_t)bits[4];
	c->dom_any = any[2];
	c->dow_any = any[4];
	return 0;
}

int as_tz_valid(const char *tz)
{
	char path[512];
	struct stat sb;

	if (!tz || !*tz || strcmp(tz, "UTC") == 0)
		return 1;
	if (tz[0] == '/' || tz[0] == ':' || strstr(tz, ".."))
		return 0;
	snprintf(path, sizeof(path), "/usr/share/zoneinfo/%s", tz);
	return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

/* ---- wall clocks ---- */

static pthread_mutex_t tz_lock = PTHREAD_MUTEX_INITIALIZER;

typedef struct clock_tz {
	int utc;
	char *saved; /* TZ before the switch; NULL: it was unset */
	int had;
} clock_tz;

/* Switch the process's TZ to tz (under tz_lock) unless tz is UTC. */
static void tz_enter(clock_tz *z, const char *tz)
{
	memset(z, 0, sizeof(*z));
	z->utc = !tz || !*tz || strcmp(tz, "UTC") == 0;
	if (z->utc)
		return;
	pthread_mutex_lock(&tz_lock);
	{
		const char *old = getenv("TZ");

		z->had = old != NULL;
		z->saved = old ? strdup(old) : NULL;
	}
	setenv("TZ", tz, 1);
	tzset();
}

static void tz_leave(clock_tz *z)
{
	if (z->utc)
		return;
	/* Setting TZ back (rather than unsetting it) replaces one pointer of
	 * environ: safe while other threads read the environment. */
	setenv("TZ", z->had && z->saved ? z->saved : ":/etc/localtime", 1);
	tzset();
	free(z->saved);
	pthread_mutex_unlock(&tz_lock);
}

static void to_tm(const clock_tz *z, time_t t, struct tm *tm)
{
	if (z->utc)
		gmtime_r(&t, tm);
	else
		localtime_r(&t, tm);
}

static time_t from_tm(const clock_tz *z, struct tm *tm)
{
	tm->tm_isdst = -1;
	return z->utc ? timegm(tm) : mktime(tm);
}

static int day_matches(const as_cron *c, const struct tm *tm)
{
	int dom = (c->dom >> tm->tm_mday) & 1;
	int dow = (c->dow >> tm->tm_wday) & 1;

	/* Vixie cron: with both day fields restricted, either one matches. */
	if (c->dom_any && c->dow_any)
		return 1;
	if (c->dom_any)
		return dow;
	if (c->dow_any)
		return dom;
	return dom || dow;
}

static int same_minute(const struct tm *a, const struct tm *b)
{
	return a->tm_year == b->tm_year && a->tm_mon == b->tm_mon &&
	       a->tm_mday == b->tm_mday && a->tm_hour == b->tm_hour &&
	       a->tm_min == b->tm_min;
}

double as_cron_next(const as_cron *c, double after, const char *tz)
{
	clock_tz z;
	struct tm tm, prev;
	time_t t, limit, base = (time_t)after;
	double out = -1;

	if (after < 0)
		base = 0;
	tz_enter(&z, tz);
	to_tm(&z, base, &prev);
	t = base - base % 60 + 60;
	limit = t + (time_t)8 * 366 * 86400;
	while (t < limit) {
		time_t nt;

		to_tm(&z, t, &tm);
		if (!((c->month >> (tm.tm_mon + 1)) & 1)) {
			tm.tm_mon++;
			tm.tm_mday = 1;
			tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
		} else if (!day_matches(c, &tm)) {
			tm.tm_mday++;
			tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
		} else if (!((c->hour >> tm.tm_hour) & 1)) {
			t += 3600 - tm.tm_min * 60 - tm.tm_sec;
			continue;
		} else if (!((c->minute >> tm.tm_min) & 1)) {
			t += 60;
			continue;
		} else if (same_minute(&tm, &prev)) {
			/* The wall clock repeats this minute (DST ends): it
			 * fired already. */
			t += 60;
			continue;
		} else {
			out = (double)t;
			break;
		}
		nt = from_tm(&z, &tm);
		/* Normalising across a DST change may not move forward. */
		t = nt > t ? nt : t + 3600 - (t % 3600);
	}
	tz_leave(&z);
	return out;
}
