/*
 * Diagnostics on stderr: warnings and notes for the operator.  Errors that
 * end a command are printed once by the CLI, not here.  Messages pass
 * through a redaction hook so secrets never reach the terminal.
 */
#ifndef AS_UTIL_LOG_H
#define AS_UTIL_LOG_H

typedef enum {
	AS_LOG_QUIET = 0,
	AS_LOG_WARN,
	AS_LOG_INFO,
	AS_LOG_DEBUG
} as_log_level;

void as_log_set_level(as_log_level lvl);
as_log_level as_log_get_level(void);
/* Called on every message before it is written (secret redaction). */
void as_log_set_redactor(void (*fn)(char *msg, unsigned long cap, void *ud),
			 void *ud);
void as_log_redact(char *msg, unsigned long cap);

void as_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void as_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void as_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
