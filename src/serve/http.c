/*
 * The daemon's HTTP endpoints (libmicrohttpd, one internal thread):
 * /healthz, /metrics, /api/status, /api/runs/DATASET, /status and
 * POST /api/run/DATASET.  Loopback only unless auth_token is set; with a
 * token every endpoint but /healthz needs it.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "serve/serve.h"
#include "util/log.h"
#include "util/str.h"
#include "util/time.h"

static int reply(struct MHD_Connection *c, unsigned code, const char *type,
		 char *body) /* takes body */
{
	struct MHD_Response *r = MHD_create_response_from_buffer(
		strlen(body), body, MHD_RESPMEM_MUST_FREE);
	int rc;

	MHD_add_response_header(r, "Content-Type", type);
	MHD_add_response_header(r, "Cache-Control", "no-store");
	rc = MHD_queue_response(c, code, r);
	MHD_destroy_response(r);
	return rc;
}

static int reply_text(struct MHD_Connection *c, unsigned code, const char *text)
{
	return reply(c, code, "text/plain; charset=utf-8", strdup(text));
}

static int reply_json(struct MHD_Connection *c, unsigned code, json_t *v)
{
	char *s = json_dumps(v, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	char *body;

	json_decref(v);
	if (!s)
		return reply_text(c, 500, "out of memory\n");
	as_log_redact(s, strlen(s) + 1);
	body = as_sprintf("%s\n", s);
	free(s);
	return reply(c, code, "application/json", body);
}

static int reply_error(struct MHD_Connection *c, unsigned code, const char *msg)
{
	return reply_json(c, code, json_pack("{s:s}", "error", msg));
}

/* given == token, in a time that does not depend on where they differ. */
static int same_secret(const char *given, const char *token)
{
	size_t gl = strlen(given), tl = strlen(token);
	unsigned char diff = gl != tl;

	for (size_t i = 0; i < tl; i++)
		diff |= (unsigned char)(token[i] ^ (i < gl ? given[i] : 0));
	return diff == 0;
}

static int token_ok(struct MHD_Connection *c, const char *token)
{
	const char *h, *q;

	h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
	if (h && strncmp(h, "Bearer ", 7) == 0 && same_secret(h + 7, token))
		return 1;
	q = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "token");
	return q && same_secret(q, token);
}

/* ?limit=N of /api/runs: as `runs --limit` takes it (0: every run);
 * -1 when it is not a whole number. */
static long long runs_limit(struct MHD_Connection *c)
{
	const char *l =
		MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "limit");
	long long v = 0;

	if (!l)
		return 20;
	if (!*l || strlen(l) > 9 || strspn(l, "0123456789") != strlen(l))
		return -1;
	for (; *l; l++)
		v = v * 10 + (*l - '0');
	return v;
}

/* The daemon's own gauges, after the run-record metrics. */
static void own_metrics(as_serve *sv, as_buf *b)
{
	as_buf_adds(b, "# HELP atomsync_up 1 while the daemon runs.\n"
		       "# TYPE atomsync_up gauge\natomsync_up 1\n"
		       "# HELP atomsync_next_run_timestamp_seconds When the "
		       "dataset is due next.\n"
		       "# TYPE atomsync_next_run_timestamp_seconds gauge\n");
	pthread_mutex_lock(&sv->mu);
	for (as_job *j = sv->jobs; j; j = j->next_job)
		if (!j->removed && j->scheduled && j->next >= 0)
			as_buf_printf(b,
				      "atomsync_next_run_timestamp_seconds{"
				      "dataset=\"%s\"} %.3f\n",
				      j->name, j->next);
	as_buf_adds(b, "# HELP atomsync_run_active 1 while this daemon runs "
		       "the dataset.\n"
		       "# TYPE atomsync_run_active gauge\n");
	for (as_job *j = sv->jobs; j; j = j->next_job)
		if (!j->removed)
			as_buf_printf(
				b, "atomsync_run_active{dataset=\"%s\"} %d\n",
				j->name, j->active && !j->done);
	pthread_mutex_unlock(&sv->mu);
}

/* /healthz: 200 while the scheduler ticks, 503 when it stalled. */
static int healthz(as_serve *sv, struct MHD_Connection *c)
{
	double age;

	pthread_mutex_lock(&sv->mu);
	age = as_mono() - sv->tick;
	pthread_mutex_unlock(&sv->mu);
	return age < 10 ? reply_text(c, 200, "ok\n")
			: reply_text(c, 503, "scheduler stalled\n");
}

/* /: to /status. */
static int redirect_status(struct MHD_Connection *c)
{
	struct MHD_Response *r =
		MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT);
	int rc;

	MHD_add_response_header(r, "Location", "/status");
	rc = MHD_queue_response(c, 302, r);
	MHD_destroy_response(r);
	return rc;
}

/* /metrics: the run records' metrics and the daemon's own. */
static int metrics(as_serve *sv, struct MHD_Connection *c, const as_config *cfg,
		   as_store *st, as_error *err)
{
	as_buf b = AS_BUF_INIT;

	if (as_metrics_text(cfg, st, &b, err)) {
		as_buf_free(&b);
		return reply_error(c, 503, err->msg);
	}
	own_metrics(sv, &b);
	return reply(c, 200, "text/plain; version=0.0.4", as_buf_detach(&b));
}

/* /api/runs/NAME[?limit=N]: the dataset's runs as `runs --json`. */
static int runs(struct MHD_Connection *c, as_store *st, const char *name,
		as_error *err)
{
	long long limit = runs_limit(c);
	json_t *v;

	if (limit < 0)
		return reply_error(c, 400,
				   "limit: expected a whole number from 0 "
				   "to 999999999 (0: every run)");
	return as_runs_json(st, name, (size_t)limit, &v, err)
		       ? reply_error(c, 503, err->msg)
		       : reply_json(c, 200, v);
}

/* /status: the HTML page. */
static int status_page(as_serve *sv, struct MHD_Connection *c,
		       const as_config *cfg, as_store *st, as_error *err)
{
	as_buf b = AS_BUF_INIT;

	if (as_page_render(sv, cfg, st, &b, err)) {
		as_buf_free(&b);
		return reply_error(c, 503, err->msg);
	}
	return reply(c, 200, "text/html; charset=utf-8", as_buf_detach(&b));
}

static int get(as_serve *sv, struct MHD_Connection *c, const char *url)
{
	const as_config *cfg;
	as_store *st = NULL;
	as_error err;
	int rc;

	pthread_mutex_lock(&sv->mu);
	cfg = sv->cfg;
	pthread_mutex_unlock(&sv->mu);
	if (strcmp(url, "/healthz") == 0)
		return healthz(sv, c);
	if (strcmp(url, "/metrics") != 0 && strcmp(url, "/api/status") != 0 &&
	    strncmp(url, "/api/runs/", 10) != 0 &&
	    strcmp(url, "/status") != 0 && strcmp(url, "/") != 0)
		return reply_error(c, 404, "no such endpoint");
	if (strcmp(url, "/") == 0)
		return redirect_status(c);
	if (strncmp(url, "/api/runs/", 10) == 0 &&
	    !as_config_dataset(cfg, url + 10))
		return reply_error(c, 404, "no such dataset");
	as_error_clear(&err);
	if (as_store_open(&st, cfg->store, &err)) {
		rc = reply_error(c, 503, err.msg);
	} else if (strcmp(url, "/metrics") == 0) {
		rc = metrics(sv, c, cfg, st, &err);
	} else if (strcmp(url, "/api/status") == 0) {
		json_t *v;

		rc = as_status_json(cfg, st, NULL, &v, &err)
			     ? reply_error(c, 503, err.msg)
			     : reply_json(c, 200, v);
	} else if (strncmp(url, "/api/runs/", 10) == 0) {
		rc = runs(c, st, url + 10, &err);
	} else {
		rc = status_page(sv, c, cfg, st, &err);
	}
	as_store_close(st);
	return rc;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c,
			      const char *url, const char *method,
			      const char *version, const char *upload,
			      size_t *upload_size, void **state)
{
	static int marker;
	as_serve *sv = cls;
	const char *token;

	if (!*state) {
		*state = &marker; /* the body, if any, comes in later calls */
		if (strcmp(method, "POST") == 0)
			return MHD_YES;
	}
	if (*upload_size) {
		*upload_size = 0; /* a body is not used */
		return MHD_YES;
	}
	pthread_mutex_lock(&sv->mu);
	token = sv->cfg->auth_token;
	pthread_mutex_unlock(&sv->mu);
	if (token && strcmp(url, "/healthz") != 0 && !token_ok(c, token))
		return reply_error(c, 401,
				   "this endpoint needs the auth_token "
				   "(Authorization: Bearer TOKEN)") == MHD_YES
			       ? MHD_YES
			       : MHD_NO;
	if (strncmp(url, "/api/run/", 9) == 0) {
		if (strcmp(method, "POST") != 0)
			return reply_error(c, 405, "use POST") == MHD_YES
				       ? MHD_YES
				       : MHD_NO;
		if (as_serve_run_now(sv, url + 9))
			return reply_error(c, 404, "no such dataset") == MHD_YES
				       ? MHD_YES
				       : MHD_NO;
		as_serve_log(sv, "info", "api", url + 9, NULL,
			     "%s: run requested over HTTP", url + 9);
		return reply_json(c, 202,
				  json_pack("{s:s, s:b}", "dataset", url + 9,
					    "queued", 1)) == MHD_YES
			       ? MHD_YES
			       : MHD_NO;
	}
	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
		return reply_error(c, 405, "use GET") == MHD_YES ? MHD_YES
								 : MHD_NO;
	return get(sv, c, url) == MHD_YES ? MHD_YES : MHD_NO;
}

/* "ADDR:PORT" or "[ADDR]:PORT" into a bound, listening socket. */
static int listen_on(as_serve *sv, const char *token, as_error *err)
{
	char host[64];
	const char *spec = sv->listen, *colon = strrchr(spec, ':');
	struct sockaddr_storage ss;
	socklen_t sl, bl;
	size_t hl;
	long port;
	char *end;
	int fd, one = 1, loop;

	memset(&ss, 0, sizeof(ss));
	if (!colon || colon == spec)
		return as_error_set(err, AS_EUSAGE,
				    "--listen %s: expected ADDR:PORT", spec);
	port = strtol(colon + 1, &end, 10);
	hl = (size_t)(colon - spec);
	if (*end || port < 0 || port > 65535 || !colon[1])
		return as_error_set(err, AS_EUSAGE,
				    "--listen %s: the port must be 0 to 65535",
				    spec);
	if (spec[0] == '[' && hl >= 2 && spec[hl - 1] == ']') {
		spec++;
		hl -= 2;
	}
	if (hl >= sizeof(host))
		return as_error_set(err, AS_EUSAGE, "--listen %s: bad address",
				    sv->listen);
	memcpy(host, spec, hl);
	host[hl] = '\0';
	if (inet_pton(AF_INET, host, &((struct sockaddr_in *)&ss)->sin_addr) ==
	    1) {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;

		a->sin_family = AF_INET;
		a->sin_port = htons((uint16_t)port);
		loop = (ntohl(a->sin_addr.s_addr) >> 24) == 127;
		sl = sizeof(*a);
	} else if (inet_pton(AF_INET6, host,
			     &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;

		a->sin6_family = AF_INET6;
		a->sin6_port = htons((uint16_t)port);
		loop = IN6_IS_ADDR_LOOPBACK(&a->sin6_addr);
		sl = sizeof(*a);
	} else {
		return as_error_set(err, AS_EUSAGE,
				    "--listen %s: '%s' is not an IP address",
				    sv->listen, host);
	}
	if (!loop && !token)
		return as_error_set(
			err, AS_EUSAGE,
			"--listen %s: not a loopback address; set auth_token "
			"in the config to serve other hosts",
			sv->listen);
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return as_error_errno(err, AS_ERROR, "--listen %s: socket",
				      sv->listen);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	bl = sizeof(ss);
	if (bind(fd, (struct sockaddr *)&ss, sl) != 0 || listen(fd, 64) != 0 ||
	    getsockname(fd, (struct sockaddr *)&ss, &bl) != 0) {
		as_error_errno(err, AS_EUSAGE, "--listen %s", sv->listen);
		close(fd);
		return err->code;
	}
	snprintf(sv->bound, sizeof(sv->bound),
		 ss.ss_family == AF_INET6 ? "[%s]:%d" : "%s:%d", host,
		 ntohs(ss.ss_family == AF_INET6
			       ? ((struct sockaddr_in6 *)&ss)->sin6_port
			       : ((struct sockaddr_in *)&ss)->sin_port));
	return fd;
}

int as_http_start(as_serve *sv, as_error *err)
{
	int fd = listen_on(sv, sv->cfg->auth_token, err);

	if (fd < 0)
		return fd;
	sv->http = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL,
				    NULL, &handle, sv, MHD_OPTION_LISTEN_SOCKET,
				    fd, MHD_OPTION_CONNECTION_TIMEOUT,
				    (unsigned)30, MHD_OPTION_END);
	if (!sv->http) {
		close(fd);
		return as_error_set(
			err, AS_ERROR,
			"--listen %s: the HTTP server did not start",
			sv->listen);
	}
	return 0;
}

void as_http_stop(as_serve *sv)
{
	if (sv->http)
		MHD_stop_daemon(sv->http);
	sv->http = NULL;
}
