/*
 * A command's output: JSON lines, or Singer messages from a tap.  The run
 * counts as complete only when the command exits with status 0; a non-zero
 * exit or a signal fails the run and nothing is published (invariant 3).
 * {state} expands to a file holding the last committed STATE, {cursor} to
 * the saved incremental cursor, both shell-quoted.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "source/lines.h"
#include "source/singer.h"
#include "source/source.h"
#include "util/json.h"
#include "util/str.h"
#include "util/time.h"

typedef struct exec_src {
	as_source base;
	as_lines lines;
	pid_t pid;
	int fd;
	char *name;	  /* short command name for messages */
	char *state_file; /* temp file behind {state}, removed at close */
	as_format format;
	int raw; /* as_source_opts.raw */
	as_singer singer;
	int64_t max;
} exec_src;

static const char *INTERPRETERS[] = {
	"sh", "bash", "python", "python3", "node", "perl", "ruby", "env", NULL};

static char *short_name(const char *cmd)
{
	char *copy = as_strdup(cmd), *tok, *save = NULL, *name = NULL;

	if (!copy)
		return NULL;
	for (tok = strtok_r(copy, " \t", &save); tok;
	     tok = strtok_r(NULL, " \t", &save)) {
		const char *base =
			strrchr(tok, '/') ? strrchr(tok, '/') + 1 : tok;
		int interp = 0;

		for (int i = 0; INTERPRETERS[i]; i++)
			if (strcmp(base, INTERPRETERS[i]) == 0)
				interp = 1;
		/* "python3 -c '...'": the code is not a name; keep the
		 * interpreter's. */
		if (name && strcmp(tok, "-c") == 0)
			break;
		if (*base == '-' || (interp && !name)) {
			if (!name)
				name = as_strdup(base);
			continue;
		}
		free(name);
		name = as_strdup(base);
		break;
	}
	free(copy);
	return name ? name : as_strdup("exec");
}

static int write_state(exec_src *x, const char *state, as_error *err)
{
	const char *dir = getenv("TMPDIR");
	char *path = as_sprintf("%s/atomsync-state-XXXXXX",
				dir && *dir ? dir : "/tmp");
	const char *body = state ? state : "{}";
	int fd;

	if (!path)
		return as_error_set(err, AS_ENOMEM, "out of memory");
	fd = mkstemp(path);
	if (fd < 0) {
		as_error_errno(err, AS_ESOURCE, "state file %s", path);
		free(path);
		return AS_ESOURCE;
	}
	if (write(fd, body, strlen(body)) != (ssize_t)strlen(body) ||
	    write(fd, "\n", 1) != 1) {
		as_error_errno(err, AS_ESOURCE, "state file %s", path);
		close(fd);
		unlink(path);
		free(path);
		return AS_ESOURCE;
	}
	close(fd);
	x->state_file = path;
	return 0;
}

static char *expand(exec_src *x, const char *cmd, const char *cursor)
{
	as_buf b = AS_BUF_INIT;

	for (const char *p = cmd; *p;) {
		if (strncmp(p, "{state}", 7) == 0) {
			as_buf_add_shell(&b, x->state_file ? x->state_file
							   : "/dev/null");
			p += 7;
		} else if (strncmp(p, "{cursor}", 8) == 0) {
			as_buf_add_shell(&b, cursor ? cursor : "");
			p += 8;
		} else {
			as_buf_addc(&b, *p++);
		}
	}
	return as_buf_detach(&b);
}

static int spawn(exec_src *x, const char *cmdline, as_error *err)
{
	int pfd[2];

	if (pipe2(pfd, O_CLOEXEC) < 0)
		return as_error_errno(err, AS_ESOURCE, "%s: pipe", x->name);
	x->pid = fork();
	if (x->pid < 0) {
		close(pfd[0]);
		close(pfd[1]);
		return as_error_errno(err, AS_ESOURCE, "%s: fork", x->name);
	}
	if (x->pid == 0) {
		int null = open("/dev/null", O_RDONLY);

		if (null >= 0)
			dup2(null, 0);
		dup2(pfd[1], 1);
		signal(SIGPIPE, SIG_DFL);
		execl("/bin/sh", "sh", "-c", cmdline, (char *)NULL);
		_exit(127);
	}
	close(pfd[1]);
	x->fd = pfd[0];
	return 0;
}

/* The command's end: status 0 confirms the delivery. */
static int reap(exec_src *x, as_error *err)
{
	int status;
	pid_t r;

	do {
		r = waitpid(x->pid, &status, 0);
	} while (r < 0 && errno == EINTR);
	x->pid = 0;
	if (r < 0)
		return as_error_errno(err, AS_ESOURCE, "%s: wait", x->name);
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		x->base.complete = 1;
		return 0;
	}
	/* sh -c reports a command killed by signal N as status 128 + N (dash
	 * does not exec the last command): name the signal. */
	if (WIFEXITED(status) && WEXITSTATUS(status) > 128 &&
	    WEXITSTATUS(status) < 128 + NSIG)
		return as_error_set(
			err, AS_ESOURCE,
			"%s: command killed by signal %d (%s) after %" PRId64
			" lines (exit status %d from the shell); nothing "
			"was published",
			x->name, WEXITSTATUS(status) - 128,
			strsignal(WEXITSTATUS(status) - 128), x->lines.line,
			WEXITSTATUS(status));
	if (WIFEXITED(status))
		return as_error_set(
			err, AS_ESOURCE,
			"%s: command exited with status %d after %" PRId64
			" lines; nothing was published",
			x->name, WEXITSTATUS(status), x->lines.line);
	return as_error_set(
		err, AS_ESOURCE,
		"%s: command killed by signal %d (%s) after %" PRId64
		" lines; nothing was published",
		x->name, WTERMSIG(status), strsignal(WTERMSIG(status)),
		x->lines.line);
}

static int exec_next(as_source *s, as_event *ev, as_error *err)
{
	exec_src *x = (exec_src *)s;
	const char *line;
	size_t len;
	int rc;

	memset(ev, 0, sizeof(*ev));
	if (x->format == AS_FORMAT_SINGER &&
	    (rc = as_singer_pending(&x->singer, ev, err)) != 0) {
		if (rc > 0 && ev->kind == AS_EV_RECORD)
			x->base.records++;
		return rc;
	}
	for (;;) {
		rc = as_lines_next(&x->lines, &line, &len, err);
		if (rc < 0)
			return rc;
		if (rc == AS_LINE_EOF)
			return reap(x, err);
		snprintf(ev->where, sizeof(ev->where), "%s:%" PRId64, x->name,
			 x->lines.line);
		x->base.bytes = x->lines.consumed;
		/* The reader's cap leaves room for Singer envelopes; a plain
		 * JSON line is the record and must fit max_record_size. */
		if (rc == AS_LINE_OK && x->format == AS_FORMAT_JSONL &&
		    (int64_t)len > x->max)
			rc = AS_LINE_TOO_LONG;
		if (rc == AS_LINE_TOO_LONG || rc == AS_LINE_ENDLESS) {
			as_source_over_cap(ev, rc, len, x->max);
			return 1;
		}
		if (len == 0)
			continue;
		ev->raw = line;
		ev->rawlen = len;
		if (x->format == AS_FORMAT_JSONL || x->raw) {
			/* The engine parses it, unless its exact text is known.
			 */
			x->base.records++;
			ev->kind = AS_EV_RECORD;
			return 1;
		}
		ev->json = as_json_parse_record(line, len, ev->where, &ev->why);
		if (!ev->json && ev->why.code == AS_ENOMEM) {
			*err = ev->why; /* not a bad record: the run fails */
			return AS_ENOMEM;
		}
		if (!ev->json) {
			ev->kind = AS_EV_BAD;
			return 1;
		}
		{
			json_t *msg = ev->json;

			ev->json = NULL;
			rc = as_singer_message(&x->singer, msg, ev, err);
			json_decref(msg);
			if (rc == 0)
				continue;
			if (rc > 0 && ev->kind == AS_EV_RECORD)
				x->base.records++;
			return rc;
		}
	}
}

static void exec_close(as_source *s)
{
	exec_src *x = (exec_src *)s;

	if (x->fd >= 0)
		close(x->fd);
	if (x->pid > 0) {
		/* Stopped before its end: ask, then insist. */
		kill(x->pid, SIGTERM);
		for (int i = 0; i < 50; i++) {
			if (waitpid(x->pid, NULL, WNOHANG) == x->pid) {
				x->pid = 0;
				break;
			}
			as_sleep_ms(40);
		}
		if (x->pid > 0) {
			kill(x->pid, SIGKILL);
			waitpid(x->pid, NULL, 0);
		}
	}
	if (x->state_file) {
		unlink(x->state_file);
		free(x->state_file);
	}
	as_lines_free(&x->lines);
	as_singer_free(&x->singer);
	free(x->name);
	free(x);
}

static const as_source_ops exec_ops = {
	.name = "exec",
	.next = exec_next,
	.close = exec_close,
};

int as_exec_source_open(as_source **out, const as_source_cfg *cfg,
			const as_source_opts *o, as_error *err)
{
	exec_src *x = calloc(1, sizeof(*x));
	char *cmdline = NULL;
	int rc;

	*out = NULL;
	if (!x)
		return as_error_set(err, AS_ENOMEM, "out of memory");
	x->base.ops = &exec_ops;
	x->fd = -1;
	x->format = cfg->format;
	x->raw = o->raw;
	x->name = short_name(cfg->command);
	x->max = o->max_record_bytes > 0 ? o->max_record_bytes
					 : ((int64_t)16 << 20);
	as_singer_init(&x->singer, cfg->stream, 1);
	x->singer.keyed = o->keyed;
	if (strstr(cfg->command, "{state}") &&
	    (rc = write_state(x, o->checkpoint ? o->checkpoint : o->bookmark,
			      err)))
		goto fail;
	cmdline = expand(x, cfg->command, o->cursor);
	if (!cmdline) {
		rc = as_error_set(err, AS_ENOMEM, "out of memory");
		goto fail;
	}
	if ((rc = spawn(x, cmdline, err)))
		goto fail;
	free(cmdline);
	/* Singer envelopes are larger than the records they carry. */
	if (as_lines_init(&x->lines, x->fd, (size_t)x->max + 4096, 0,
			  x->name)) {
		exec_close(&x->base);
		return as_error_set(err, AS_ENOMEM, "out of memory");
	}
	*out = &x->base;
	return 0;
fail:
	free(cmdline);
	exec_close(&x->base);
	return rc;
}
