/*
 * Clocks and timestamps.
 */
#include "util/time.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

double as_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double as_mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int64_t as_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void as_sleep_ms(int64_t ms)
{
	struct timespec ts;

	if (ms <= 0)
		return;
	ts.tv_sec = ms / 1000;
	ts.tv_nsec = (long)(ms % 1000) * 1000000L;
	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

const char *as_iso8601(double t, char *buf, size_t cap)
{
	/* Round to the millisecond, then split with floor semantics:
	 * 1700000000.123 is 1700000000.1229999 in binary (truncating printed
	 * .122), and a time before 1970 must not have its seconds truncated
	 * toward zero. */
	double msd = floor(t * 1000.0 + 0.5);
	int64_t total = msd > -9.2e18 && msd < 9.2e18 ? (int64_t)msd : 0;
	time_t s = (time_t)(total / 1000);
	int ms = (int)(total % 1000);
	struct tm tm;

	if (ms < 0) {
		ms += 1000;
		s -= 1;
	}
	gmtime_r(&s, &tm);
	snprintf(buf, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
		 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		 tm.tm_min, tm.tm_sec, ms);
	return buf;
}

static int digits(const char **p, int n, int *out)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if (!isdigit((unsigned char)**p))
			return -1;
		v = v * 10 + (**p - '0');
		(*p)++;
	}
	*out = v;
	return 0;
}

/* Days since 1970-01-01 of a proleptic Gregorian date, and back (H.
 * Hinnant's algorithms): exact for every year, and without the time zone
 * machinery of timegm and gmtime_r, which showed in mapping timestamps. */
static int64_t days_from_civil(int64_t y, int m, int d)
{
	int64_t era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int *y, int *m, int *d)
{
	int64_t era, doe, yoe, doy, mp;

	z += 719468;
	era = (z >= 0 ? z : z - 146096) / 146097;
	doe = z - era * 146097;
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	*d = (int)(doy - (153 * mp + 2) / 5 + 1);
	*m = (int)(mp < 10 ? mp + 3 : mp - 9);
	*y = (int)(yoe + era * 400 + (*m <= 2));
}

/* timegm would silently move 2026-02-30 to March 2: reject it instead. */
static int days_in_month(int y, int m)
{
	static const int days[12] = {31, 28, 31, 30, 31, 30,
				     31, 31, 30, 31, 30, 31};
	int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

	return m == 2 && leap ? 29 : days[m - 1];
}

/* Exact: microseconds since the epoch (digits past the sixth are rounded). */
int as_parse_iso8601_us(const char *s, int64_t *out)
{
	const char *p = s;
	int Y, M, D, h = 0, m = 0, sec = 0, oh = 0, om = 0, sign = 0;
	int64_t frac = 0; /* microseconds */
	time_t t;

	if (digits(&p, 4, &Y) || *p++ != '-' || digits(&p, 2, &M) ||
	    *p++ != '-' || digits(&p, 2, &D))
		return -1;
	if (*p == 'T' || *p == 't' || *p == ' ') {
		p++;
		if (digits(&p, 2, &h) || *p++ != ':' || digits(&p, 2, &m))
			return -1;
		if (*p == ':') {
			p++;
			if (digits(&p, 2, &sec))
				return -1;
			if (*p == '.') {
				int n = 0;

				p++;
				if (!isdigit((unsigned char)*p))
					return -1;
				while (isdigit((unsigned char)*p)) {
					if (n < 6)
						frac = frac * 10 + (*p - '0');
					else if (n == 6 && *p >= '5')
						frac++; /* round at the seventh
							   digit */
					n++;
					p++;
				}
				for (; n < 6; n++)
					frac *= 10;
			}
		}
		if (*p == 'Z' || *p == 'z') {
			p++;
		} else if (*p == '+' || *p == '-') {
			sign = *p++ == '-' ? -1 : 1;
			if (digits(&p, 2, &oh))
				return -1;
			if (*p == ':')
				p++;
			if (digits(&p, 2, &om))
				return -1;
		}
	}
	if (*p || Y < 1 || M < 1 || M > 12 || D < 1 ||
	    D > days_in_month(Y, M) || h > 23 || m > 59 || sec > 60 ||
	    oh > 23 || om > 59)
		return -1;
	t = (time_t)(days_from_civil(Y, M, D) * 86400 + h * 3600 + m * 60 +
		     sec);
	t -= sign * (oh * 3600 + om * 60);
	/* Years 1 to 9999 in UTC too: an offset must not move the instant
	 * out of the range the text form can print. */
	if (t < -62135596800LL || t > 253402300799LL)
		return -1;
	*out = (int64_t)t * 1000000 + frac;
	return 0;
}

int as_parse_iso8601(const char *s, double *out)
{
	int64_t us;

	if (as_parse_iso8601_us(s, &us))
		return -1;
	*out = (double)us / 1e6;
	return 0;
}

static void put_digits(char *p, int v, int n)
{
	for (int i = n - 1; i >= 0; i--) {
		p[i] = (char)('0' + v % 10);
		v /= 10;
	}
}

const char *as_format_us(int64_t us, char *buf, size_t cap)
{
	int64_t sec = us >= 0 ? us / 1000000 : -((-us + 999999) / 1000000);
	int64_t frac = us - sec * 1000000;
	int64_t day = (sec >= 0 ? sec : sec - 86399) / 86400;
	int64_t tod = sec - day * 86400;
	time_t t = (time_t)sec;
	struct tm tm;
	int y, mo, d;

	civil_from_days(day, &y, &mo, &d);
	if (cap >= 28 && y >= 1 && y <= 9999) {
		/* By hand: snprintf was a visible part of mapping a record with
		 * a timestamp. */
		put_digits(buf, y, 4);
		buf[4] = '-';
		put_digits(buf + 5, mo, 2);
		buf[7] = '-';
		put_digits(buf + 8, d, 2);
		buf[10] = 'T';
		put_digits(buf + 11, (int)(tod / 3600), 2);
		buf[13] = ':';
		put_digits(buf + 14, (int)(tod / 60 % 60), 2);
		buf[16] = ':';
		put_digits(buf + 17, (int)(tod % 60), 2);
		buf[19] = '.';
		put_digits(buf + 20, (int)frac, 6);
		buf[26] = 'Z';
		buf[27] = '\0';
		return buf;
	}
	gmtime_r(&t, &tm);
	snprintf(buf, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ",
		 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		 tm.tm_min, tm.tm_sec, (int)frac);
	return buf;
}
