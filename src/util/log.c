/*
 * Diagnostics on stderr, one line each, redacted.
 */
#include "util/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>

static as_log_level level = AS_LOG_WARN;
static void (*redactor)(char *, unsigned long, void *);
static void *redactor_ud;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

void as_log_set_level(as_log_level lvl)
{
	level = lvl;
}
as_log_level as_log_get_level(void)
{
	return level;
}

void as_log_set_redactor(void (*fn)(char *, unsigned long, void *), void *ud)
{
	redactor = fn;
	redactor_ud = ud;
}

void as_log_redact(char *msg, unsigned long cap)
{
	if (redactor)
		redactor(msg, cap, redactor_ud);
}

static void emit(as_log_level lvl, const char *tag, const char *fmt, va_list ap)
{
	char msg[2048];

	if (lvl > level)
		return;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	as_log_redact(msg, sizeof(msg));
	pthread_mutex_lock(&lock);
	fprintf(stderr, "atomsync: %s%s\n", tag, msg);
	fflush(stderr);
	pthread_mutex_unlock(&lock);
}

void as_warn(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	emit(AS_LOG_WARN, "warning: ", fmt, ap);
	va_end(ap);
}

void as_info(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	emit(AS_LOG_INFO, "", fmt, ap);
	va_end(ap);
}

void as_debug(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	emit(AS_LOG_DEBUG, "debug: ", fmt, ap);
	va_end(ap);
}
