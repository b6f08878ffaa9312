/*
 * Clocks and timestamps: wall time for records (ISO 8601 UTC), monotonic
 * time for timeouts and rates.
 */
#ifndef AS_UTIL_TIME_H
#define AS_UTIL_TIME_H

#include <stddef.h>
#include <stdint.h>

double as_now(void);  /* wall clock, Unix seconds */
double as_mono(void); /* monotonic seconds */
int64_t as_mono_ms(void);
void as_sleep_ms(int64_t ms);

/* "2026-11-22T05:50:00.123Z" into buf (at least 32 bytes). */
const char *as_iso8601(double t, char *buf, size_t cap);
/* Parse ISO 8601 / RFC 3339 ("2026-01-01T00:00:00Z", offsets, fractions)
 * into Unix seconds; -1 when malformed. */
int as_parse_iso8601(const char *s, double *out);
/* The same, exactly: microseconds since the epoch. */
int as_parse_iso8601_us(const char *s, int64_t *out);
/* Canonical, sortable UTC text: "2026-01-01T00:00:00.000000Z" (32 bytes). */
const char *as_format_us(int64_t us, char *buf, size_t cap);

#endif
