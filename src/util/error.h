/*
 * Error values and the error record carried on every handle.
 * A fallible function returns 0 or a negative AS_E* code and fills an
 * as_error; callers add context in front, they never overwrite the cause.
 */
#ifndef AS_UTIL_ERROR_H
#define AS_UTIL_ERROR_H

#include <stdarg.h>

#include <atomsync.h>

/* The internal codes are the public ones (include/atomsync.h). */
enum {
	AS_OK = ATOMSYNC_OK,
	AS_ERROR = ATOMSYNC_ERROR,   /* generic failure */
	AS_EUSAGE = ATOMSYNC_EUSAGE, /* bad command line or configuration (exit
					2) */
	AS_ESOURCE =
		ATOMSYNC_ESOURCE,    /* the source failed: I/O, command, HTTP */
	AS_EINPUT = ATOMSYNC_EINPUT, /* a bad record (invariant 9) */
	AS_ESTORE = ATOMSYNC_ESTORE, /* the store failed: SQL error, lost
					connection */
	AS_EREFUSED =
		ATOMSYNC_EREFUSED, /* a guard refused the publish (exit 3) */
	AS_ELEASE =
		ATOMSYNC_ELEASE, /* another worker holds the lease (exit 4) */
	AS_EFENCED = ATOMSYNC_EFENCED, /* our lease was taken over: nothing more
					  may commit */
	AS_ENOMEM =
		ATOMSYNC_ENOMEM,   /* allocation failed or a size cap was hit */
	AS_EINTR = ATOMSYNC_EINTR, /* interrupted by a signal */
	AS_ENOTFOUND = -11,
	/* internal to the engine: mapping a record needs a schema change
	 * (a new column, a widening), made on the caller's thread */
	AS_ESCHEMA = -12,
	/* internal: schema_contract discard_row dropped the record */
	AS_EDISCARD = -13
};

/* code, native (errno, SQLite code, CURLcode), sqlstate, msg (one line). */
typedef struct atomsync_error as_error;

#define AS_ERROR_MSG_MAX ((int)sizeof(((as_error *)0)->msg))

void as_error_clear(as_error *err);

/* Set the error (replacing a cleared one) and return code. */
int as_error_set(as_error *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
int as_error_vset(as_error *err, int code, const char *fmt, va_list ap);

/* Put "context: " in front of the current message; keeps code and native. */
int as_error_prefix(as_error *err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Set from errno with "what: strerror(errno)". */
int as_error_errno(as_error *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

const char *as_error_code_name(int code);

#endif
