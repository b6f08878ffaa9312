/*
 * The error record: set once by whoever saw the failure, prefixed with
 * context on the way up, printed once by the command line.
 */
#include "util/error.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

void as_error_clear(as_error *err)
{
	if (!err)
		return;
	err->code = 0;
	err->native = 0;
	err->sqlstate[0] = '\0';
	err->msg[0] = '\0';
}

/* Keep messages on one line: a newline in a record must not split it. */
static void one_line(char *msg)
{
	for (char *p = msg; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
}

int as_error_vset(as_error *err, int code, const char *fmt, va_list ap)
{
	if (!err)
		return code;
	err->code = code;
	err->native = 0;
	err->sqlstate[0] = '\0';
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	one_line(err->msg);
	return code;
}

int as_error_set(as_error *err, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	as_error_vset(err, code, fmt, ap);
	va_end(ap);
	return code;
}

int as_error_prefix(as_error *err, const char *fmt, ...)
{
	char ctx[AS_ERROR_MSG_MAX], old[AS_ERROR_MSG_MAX];
	va_list ap;

	if (!err)
		return AS_ERROR;
	va_start(ap, fmt);
	vsnprintf(ctx, sizeof(ctx), fmt, ap);
	va_end(ap);
	memcpy(old, err->msg, sizeof(old));
	if (old[0])
		snprintf(err->msg, sizeof(err->msg), "%s: %s", ctx, old);
	else
		snprintf(err->msg, sizeof(err->msg), "%s", ctx);
	one_line(err->msg);
	if (!err->code)
		err->code = AS_ERROR;
	return err->code;
}

int as_error_errno(as_error *err, int code, const char *fmt, ...)
{
	char what[AS_ERROR_MSG_MAX];
	int saved = errno;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	as_error_set(err, code, "%s: %s", what, strerror(saved));
	if (err)
		err->native = saved;
	errno = saved;
	return code;
}

const char *as_error_code_name(int code)
{
	switch (code) {
	case AS_OK: return "ok";
	case AS_EUSAGE: return "usage";
	case AS_ESOURCE: return "source";
	case AS_EINPUT: return "input";
	case AS_ESTORE: return "store";
	case AS_EREFUSED: return "refused";
	case AS_ELEASE: return "lease";
	case AS_EFENCED: return "fenced";
	case AS_ENOMEM: return "nomem";
	case AS_EINTR: return "interrupted";
	case AS_ENOTFOUND: return "notfound";
	default: return "error";
	}
}
