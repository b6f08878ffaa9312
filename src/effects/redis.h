/*
 * Redis delivery over hiredis: the `cache:` URL, a connection with connect
 * and command timeouts, pipelined UNLINK of keys and SCAN MATCH + UNLINK of
 * patterns (never KEYS), every reply checked.
 */
#ifndef AS_EFFECTS_REDIS_H
#define AS_EFFECTS_REDIS_H

#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

/* A parsed cache URL:
 *   redis://[user:password@]host[:port][/db][?timeout=2s&connect_timeout=..]
 *   unix:///path/redis.sock[?db=N&password=..&user=..&timeout=..]
 *   redis+unix://[user:password@]/path/redis.sock[?db=N...] */
typedef struct as_redis_url {
	char *host;		    /* NULL for a unix socket */
	int port;		    /* default 6379 */
	char *path;		    /* unix socket path, or NULL */
	char *user;		    /* NULL: AUTH with the password alone */
	char *password;		    /* NULL: no AUTH; never printed */
	int db;			    /* SELECT when not 0 */
	int64_t connect_timeout_ms; /* default 2000 */
	int64_t command_timeout_ms; /* default 2000: each reply */
	char *display;		    /* for messages: no credentials */
} as_redis_url;

int as_redis_url_parse(as_redis_url *u, const char *url, as_error *err);
void as_redis_url_free(as_redis_url *u);

typedef struct as_redis as_redis;

/* Connect, AUTH, SELECT.  *out is owned by the caller (as_redis_close). */
int as_redis_open(as_redis **out, const as_redis_url *u, as_error *err);
void as_redis_close(as_redis *r);

/* UNLINK every key, AS_REDIS_BATCH keys per command and AS_REDIS_WINDOW
 * commands in flight; 0 only when Redis answered every command. */
#define AS_REDIS_BATCH 1000
#define AS_REDIS_WINDOW 8
int as_redis_unlink(as_redis *r, const char *const *keys, const size_t *lens,
		    size_t n, int64_t *removed, as_error *err);
/* SCAN MATCH pattern + UNLINK of what it finds, until the cursor is 0. */
int as_redis_unlink_pattern(as_redis *r, const char *pattern, int64_t *removed,
			    as_error *err);

#endif
