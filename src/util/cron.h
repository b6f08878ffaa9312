/*
 * Five-field cron expressions ("0 * * * *": minute hour day-of-month month
 * day-of-week) and the next time one fires, in UTC or in a named time zone.
 * Debian has no C library for this; the grammar is Vixie cron's.
 */
#ifndef AS_UTIL_CRON_H
#define AS_UTIL_CRON_H

#include <stddef.h>
#include <stdint.h>

typedef struct as_cron {
	uint64_t minute; /* bit m: minute m, 0-59 */
	uint32_t hour;	 /* bit h: hour h, 0-23 */
	uint32_t dom;	 /* bit d: day of month d, 1-31 */
	uint16_t month;	 /* bit m: month m, 1-12 */
	uint8_t dow;	 /* bit d: weekday d, 0-6 (Sunday 0; 7 is read 0) */
	int dom_any, dow_any; /* written '*': only the other day field counts */
} as_cron;

/*
 * Parse text (five fields: numbers, ranges a-b, steps such as a-b/n or
 * a star with /n, lists with ',', names jan..dec and sun..sat).  Returns 0,
 * or -1 with why (cap bytes) naming the field and what is wrong.
 */
int as_cron_parse(as_cron *c, const char *text, char *why, size_t cap);

/*
 * The first time strictly after `after` (Unix seconds) at which c fires,
 * on a whole minute of the wall clock of tz (an IANA name such as
 * "Europe/Paris"; NULL or "UTC": UTC).  A wall-clock minute that a DST
 * change repeats fires once; one it skips does not fire.  -1 when c never
 * fires within eight years (e.g. "0 0 31 2 *").
 */
double as_cron_next(const as_cron *c, double after, const char *tz);

/* 1 when tz names a time zone of the system's database (or is "UTC"). */
int as_tz_valid(const char *tz);

#endif
