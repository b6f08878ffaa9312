/*
 * Redis delivery over hiredis (blocking API with timeouts): the cache URL,
 * AUTH and SELECT, pipelined UNLINK in batches, SCAN MATCH for patterns.
 * A command counts as done only when its reply arrived and was not an
 * error, so a caller marks an event delivered only after Redis confirmed
 * all of it (invariant 7).  Messages never hold the password.
 */
#include "effects/redis.h"

#include <ctype.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "config/config.h"
#include "util/buf.h"
#include "util/crash.h"
#include "util/str.h"

#define DEFAULT_TIMEOUT_MS 2000

struct as_redis {
	redisContext *c;
	const as_redis_url *u; /* borrowed */
	int broken; /* a failed exchange: the stream is out of step */
};

/* ---- the URL ---- */

static int hexval(int c)
{
	return isdigit(c)    ? c - '0'
	       : isxdigit(c) ? (tolower(c) - 'a' + 10)
			     : -1;
}

/* Percent-decoded copy of s[0..n). */
static char *decode(const char *s, size_t n)
{
	char *out = malloc(n + 1), *o = out;

	if (!out)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '%' && i + 2 < n &&
		    hexval((unsigned char)s[i + 1]) >= 0 &&
		    hexval((unsigned char)s[i + 2]) >= 0) {
			*o++ = (char)(hexval((unsigned char)s[i + 1]) * 16 +
				      hexval((unsigned char)s[i + 2]));
			i += 2;
		} else {
			*o++ = s[i];
		}
	}
	*o = '\0';
	return out;
}

void as_redis_url_free(as_redis_url *u)
{
	free(u->host);
	free(u->path);
	free(u->user);
	free(u->password);
	free(u->display);
	memset(u, 0, sizeof(*u));
}

static int bad(as_redis_url *u, as_error *err, const char *why)
{
	as_error_set(err, AS_EUSAGE, "cache %s: %s",
		     u->display ? u->display : "URL", why);
	as_redis_url_free(u);
	return AS_EUSAGE;
}

static int parse_int(const char *s, size_t n, long lo, long hi, long *out)
{
	char buf[24], *end;

	if (n == 0 || n >= sizeof(buf))
		return -1;
	memcpy(buf, s, n);
	buf[n] = '\0';
	*out = strtol(buf, &end, 10);
	return (*end || *out < lo || *out > hi) ? -1 : 0;
}

/* "db=1&timeout=500ms&connect_timeout=1s&password=..&user=.." */
static int parse_query(as_redis_url *u, const char *q, as_error *err)
{
	while (q && *q) {
		const char *amp = strchr(q, '&'), *eq;
		size_t n = amp ? (size_t)(amp - q) : strlen(q);
		char *val;
		long v;
		int64_t ms;

		eq = memchr(q, '=', n);
		if (!eq)
			return bad(u, err, "expected key=value in the query");
		val = decode(eq + 1, n - (size_t)(eq + 1 - q));
		if (!val)
			return bad(u, err, "out of memory");
#define KEY(k) ((size_t)(eq - q) == strlen(k) && strncmp(q, k, strlen(k)) == 0)
		if (KEY("db")) {
			if (parse_int(val, strlen(val), 0, 1 << 20, &v)) {
				free(val);
				return bad(u, err, "db: expected a number");
			}
			u->db = (int)v;
		} else if (KEY("timeout") || KEY("connect_timeout") ||
			   KEY("command_timeout")) {
			ms = as_parse_duration_ms(val);
			if (ms <= 0) {
				free(val);
				return bad(
					u, err,
					"timeout: expected a duration such as 500ms or 2s");
			}
			if (!KEY("command_timeout"))
				u->connect_timeout_ms = ms;
			if (!KEY("connect_timeout"))
				u->command_timeout_ms = ms;
		} else if (KEY("password")) {
			free(u->password);
			u->password = val;
			val = NULL;
		} else if (KEY("user") || KEY("username")) {
			free(u->user);
			u->user = val;
			val = NULL;
		} else {
			free(val);
			return bad(
				u, err,
				"unknown query parameter (known: db, timeout, "
				"connect_timeout, command_timeout, user, password)");
		}
#undef KEY
		free(val);
		q = amp ? amp + 1 : NULL;
	}
	return 0;
}

/* "user:password@" in front of the host or path. */
static int parse_userinfo(as_redis_url *u, const char *s, size_t n)
{
	const char *colon = memchr(s, ':', n);

	if (colon) {
		if (colon > s && !(u->user = decode(s, (size_t)(colon - s))))
			return -1;
		if (!(u->password =
			      decode(colon + 1, n - (size_t)(colon + 1 - s))))
			return -1;
	} else if (n && !(u->password = decode(s, n))) {
		/* redis://secret@host: a password alone (as redis-cli reads it)
		 */
		return -1;
	}
	return 0;
}

/* The display form: scheme://host/path without credentials or query. */
static char *display_form(const char *url)
{
	const char *rest = strstr(url, "://");
	as_buf d = AS_BUF_INIT;

	if (rest) {
		const char *a = strchr(rest + 3, '@'),
			   *stop = strpbrk(rest + 3, "/?");

		as_buf_add(&d, url, (size_t)(rest + 3 - url));
		if (a && (!stop || a < stop))
			as_buf_adds(&d, "***@");
		as_buf_add(&d, a && (!stop || a < stop) ? a + 1 : rest + 3,
			   strcspn(a && (!stop || a < stop) ? a + 1 : rest + 3,
				   "?"));
	} else {
		as_buf_adds(&d, "(not a URL)");
	}
	return as_buf_detach(&d);
}

/* host[:port][/db] of a redis:// URL, from rest up to end. */
static int parse_host(as_redis_url *u, const char *rest, const char *end,
		      as_error *err)
{
	const char *slash = memchr(rest, '/', (size_t)(end - rest));
	const char *hend = slash ? slash : end, *colon;
	long v;

	if (*rest == '[') {
		const char *rb = memchr(rest, ']', (size_t)(hend - rest));

		if (!rb)
			return bad(u, err, "unclosed [ in the host");
		u->host = as_strndup(rest + 1, (size_t)(rb - rest - 1));
		colon = rb + 1 < hend && rb[1] == ':' ? rb + 1 : NULL;
	} else {
		colon = memchr(rest, ':', (size_t)(hend - rest));
		u->host = as_strndup(rest,
				     (size_t)((colon ? colon : hend) - rest));
	}
	if (u->host && !*u->host) {
		free(u->host);
		u->host = as_strdup("127.0.0.1");
	}
	if (colon) {
		if (parse_int(colon + 1, (size_t)(hend - colon - 1), 1, 65535,
			      &v))
			return bad(u, err, "port: expected 1-65535");
		u->port = (int)v;
	}
	if (slash && slash + 1 < end) {
		if (parse_int(slash + 1, (size_t)(end - slash - 1), 0, 1 << 20,
			      &v))
			return bad(u, err, "db: expected a number after the /");
		u->db = (int)v;
	}
	return 0;
}

int as_redis_url_parse(as_redis_url *u, const char *url, as_error *err)
{
	const char *rest, *q, *at, *end;
	int unix_sock;

	memset(u, 0, sizeof(*u));
	u->port = 6379;
	u->connect_timeout_ms = u->command_timeout_ms = DEFAULT_TIMEOUT_MS;
	if (!url || !*url)
		return as_error_set(err, AS_EUSAGE, "cache: no URL");
	rest = strstr(url, "://");
	u->display = display_form(url);
	if (strncmp(url, "rediss://", 9) == 0)
		return bad(u, err,
			   "TLS (rediss://) is not supported; use a local "
			   "TLS proxy or redis://");
	unix_sock = strncmp(url, "unix://", 7) == 0 ||
		    strncmp(url, "redis+unix://", 13) == 0;
	if (!unix_sock && strncmp(url, "redis://", 8) != 0)
		return bad(u, err,
			   "expected redis://[user:password@]host:port/db, "
			   "unix:///path/redis.sock?db=N or redis+unix://");
	rest += 3;
	/* The scheme checks above mean url holds "://". */
	/* NOLINTNEXTLINE(clang-analyzer-core.NonNullParamChecker) */
	q = strchr(rest, '?');
	end = q ? q : rest + strlen(rest);
	at = memchr(rest, '@', (size_t)(end - rest));
	if (at) {
		if (parse_userinfo(u, rest, (size_t)(at - rest)))
			return bad(u, err, "out of memory");
		rest = at + 1;
	}
	if (unix_sock) {
		if (*rest != '/' || end - rest < 2)
			return bad(u, err,
				   "expected an absolute socket path "
				   "(unix:///path/redis.sock)");
		u->path = decode(rest, (size_t)(end - rest));
	} else if (parse_host(u, rest, end, err)) {
		return err->code;
	}
	if ((unix_sock && !u->path) || (!unix_sock && !u->host))
		return bad(u, err, "out of memory");
	if (q && parse_query(u, q + 1, err))
		return AS_EUSAGE;
	return 0;
}

/* ---- the connection ---- */

static struct timeval tv_ms(int64_t ms)
{
	struct timeval tv;

	tv.tv_sec = (time_t)(ms / 1000);
	tv.tv_usec = (suseconds_t)((ms % 1000) * 1000);
	return tv;
}

/* An I/O failure as one line; a timeout says so with its bound. */
static int io_fail(as_redis *r, const char *what, as_error *err)
{
	const char *why = r->c ? r->c->errstr : "out of memory";

	r->broken = 1;
	if (strstr(why, "temporarily unavailable") || strstr(why, "timed out"))
		return as_error_set(err, AS_ESOURCE,
				    "cache %s: %s: no answer within "
				    "%lld ms",
				    r->u->display, what,
				    (long long)r->u->command_timeout_ms);
	return as_error_set(err, AS_ESOURCE, "cache %s: %s: %s", r->u->display,
			    what, *why ? why : "connection lost");
}

/* Read one reply; an error reply or an unexpected type fails. */
static int reply(as_redis *r, const char *what, int want, redisReply **out,
		 as_error *err)
{
	redisReply *rep = NULL;

	if (out)
		*out = NULL;
	if (redisGetReply(r->c, (void **)&rep) != REDIS_OK || !rep)
		return io_fail(r, what, err);
	if (rep->type == REDIS_REPLY_ERROR) {
		as_error_set(err, AS_ESOURCE, "cache %s: %s: %.*s",
			     r->u->display, what,
			     (int)(rep->len > 300 ? 300 : rep->len), rep->str);
		freeReplyObject(rep);
		return AS_ESOURCE;
	}
	if (want >= 0 && rep->type != want) {
		freeReplyObject(rep);
		r->broken = 1;
		return as_error_set(err, AS_ESOURCE,
				    "cache %s: %s: unexpected reply "
				    "type",
				    r->u->display, what);
	}
	if (out)
		*out = rep;
	else
		freeReplyObject(rep);
	return 0;
}

static int command(as_redis *r, const char *what, int argc, const char **argv,
		   const size_t *lens, as_error *err)
{
	if (redisAppendCommandArgv(r->c, argc, argv, lens) != REDIS_OK)
		return io_fail(r, what, err);
	return reply(r, what, -1, NULL, err);
}

int as_redis_open(as_redis **out, const as_redis_url *u, as_error *err)
{
	as_redis *r = calloc(1, sizeof(*r));
	char db[16];
	int rc = 0;

	*out = NULL;
	if (!r)
		return as_error_set(err, AS_ENOMEM, "out of memory");
	r->u = u;
	if (u->path)
		r->c = redisConnectUnixWithTimeout(
			u->path, tv_ms(u->connect_timeout_ms));
	else
		r->c = redisConnectWithTimeout(u->host, u->port,
					       tv_ms(u->connect_timeout_ms));
	if (!r->c || r->c->err) {
		const char *why = r->c ? r->c->errstr : "out of memory";

		rc = as_error_set(err, AS_ESOURCE,
				  "cache %s: cannot connect: %s", u->display,
				  strstr(why, "temporarily unavailable")
					  ? "timed out"
					  : why);
		goto done;
	}
	if (redisSetTimeout(r->c, tv_ms(u->command_timeout_ms)) != REDIS_OK) {
		rc = io_fail(r, "setting the timeout", err);
		goto done;
	}
	if (u->password) {
		const char *argv[3] = {"AUTH", u->user ? u->user : u->password,
				       u->password};

		rc = command(r, "AUTH", u->user ? 3 : 2, argv, NULL, err);
		if (rc)
			goto done;
	}
	if (u->db) {
		const char *argv[2] = {"SELECT", db};

		snprintf(db, sizeof(db), "%d", u->db);
		if ((rc = command(r, "SELECT", 2, argv, NULL, err)))
			goto done;
	}
done:
	if (rc) {
		as_redis_close(r);
		return rc;
	}
	*out = r;
	return 0;
}

void as_redis_close(as_redis *r)
{
	if (!r)
		return;
	if (r->c)
		redisFree(r->c);
	free(r);
}

/* ---- UNLINK and SCAN ---- */

static int append_unlink(as_redis *r, const char *const *keys,
			 const size_t *lens, size_t n, as_error *err)
{
	const char *argv[AS_REDIS_BATCH + 1];
	size_t alen[AS_REDIS_BATCH + 1];

	argv[0] = "UNLINK";
	alen[0] = 6;
	for (size_t i = 0; i < n; i++) {
		argv[i + 1] = keys[i];
		alen[i + 1] = lens ? lens[i] : strlen(keys[i]);
	}
	if (redisAppendCommandArgv(r->c, (int)n + 1, argv, alen) != REDIS_OK)
		return io_fail(r, "UNLINK", err);
	return 0;
}

static int unlink_reply(as_redis *r, int64_t *removed, as_error *err)
{
	redisReply *rep;

	if (reply(r, "UNLINK", REDIS_REPLY_INTEGER, &rep, err))
		return err->code;
	if (removed)
		/* reply() sets rep when it returns 0. */
		/* NOLINTNEXTLINE(clang-analyzer-core.NullDereference) */
		*removed += rep->integer;
	freeReplyObject(rep);
	return 0;
}

/*
 * Up to AS_REDIS_WINDOW commands go out before their replies are read, so
 * a batch costs one round trip per window instead of one per command; every
 * reply is still read and checked, in order.
 */
int as_redis_unlink(as_redis *r, const char *const *keys, const size_t *lens,
		    size_t n, int64_t *removed, as_error *err)
{
	size_t off = 0;

	if (r->broken)
		return as_error_set(err, AS_ESOURCE,
				    "cache %s: connection unusable "
				    "after an earlier failure",
				    r->u->display);
	while (off < n) {
		size_t sent = 0;

		while (sent < AS_REDIS_WINDOW && off < n) {
			size_t k = n - off < AS_REDIS_BATCH ? n - off
							    : AS_REDIS_BATCH;

			if (append_unlink(r, keys + off,
					  lens ? lens + off : NULL, k, err))
				return err->code;
			off += k;
			sent++;
		}
		while (sent--)
			if (unlink_reply(r, removed, err))
				return err->code;
		as_crash_point("outbox.unlink_window");
	}
	return 0;
}

/* SCAN's reply: [cursor, [keys...]]. */
static int scan_reply(as_redis *r, char *cursor, size_t cap, redisReply **keys,
		      redisReply **whole, as_error *err)
{
	redisReply *rep;

	if (reply(r, "SCAN", REDIS_REPLY_ARRAY, &rep, err))
		return err->code;
	/* reply() sets rep when it returns 0. */
	/* NOLINTNEXTLINE(clang-analyzer-core.NullDereference) */
	if (rep->elements != 2 || rep->element[0]->type != REDIS_REPLY_STRING ||
	    rep->element[1]->type != REDIS_REPLY_ARRAY ||
	    rep->element[0]->len >= cap) {
		freeReplyObject(rep);
		r->broken = 1;
		return as_error_set(err, AS_ESOURCE,
				    "cache %s: SCAN: unexpected reply",
				    r->u->display);
	}
	memcpy(cursor, rep->element[0]->str, rep->element[0]->len);
	cursor[rep->element[0]->len] = '\0';
	*keys = rep->element[1];
	*whole = rep;
	return 0;
}

/*
 * SCAN cursor MATCH pattern COUNT 1000, and the UNLINK of each page's keys
 * pipelined with the next SCAN.  SCAN may return a key twice; UNLINK of a
 * gone key is harmless.  Never KEYS: it blocks the server on a large keyspace.
 */
int as_redis_unlink_pattern(as_redis *r, const char *pattern, int64_t *removed,
			    as_error *err)
{
	char cursor[32] = "0";
	int pending_unlink = 0;

	if (r->broken)
		return as_error_set(err, AS_ESOURCE,
				    "cache %s: connection unusable "
				    "after an earlier failure",
				    r->u->display);
	for (;;) {
		const char *argv[6] = {"SCAN",	cursor,	 "MATCH",
				       pattern, "COUNT", "1000"};
		redisReply *keys = NULL, *whole = NULL;
		int rc;

		if (redisAppendCommandArgv(r->c, 6, argv, NULL) != REDIS_OK)
			return io_fail(r, "SCAN", err);
		if (pending_unlink && unlink_reply(r, removed, err))
			return err->code;
		pending_unlink = 0;
		if (scan_reply(r, cursor, sizeof(cursor), &keys, &whole, err))
			return err->code;
		/* keys is element[1] of a checked SCAN reply. */
		/* NOLINTNEXTLINE(clang-analyzer-core.NullDereference) */
		for (size_t off = 0; off < keys->elements;
		     off += AS_REDIS_BATCH) {
			const char *kv[AS_REDIS_BATCH];
			size_t kl[AS_REDIS_BATCH], k = keys->elements - off;

			if (k > AS_REDIS_BATCH)
				k = AS_REDIS_BATCH;
			for (size_t i = 0; i < k; i++) {
				kv[i] = keys->element[off + i]->str;
				kl[i] = keys->element[off + i]->len;
			}
			rc = append_unlink(r, kv, kl, k, err);
			if (!rc && off + k < keys->elements)
				rc = unlink_reply(r, removed, err);
			else if (!rc)
				pending_unlink = 1;
			if (rc) {
				freeReplyObject(whole);
				return rc;
			}
		}
		freeReplyObject(whole);
		if (strcmp(cursor, "0") == 0)
			break;
	}
	if (pending_unlink && unlink_reply(r, removed, err))
		return err->code;
	return 0;
}
