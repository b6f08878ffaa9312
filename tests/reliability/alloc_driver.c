/*
 * Allocation-failure sweeps (curl's torture mode, SQLite's malloc tests):
 * fail the Nth allocation of a run for N = 1, 2, ... until a run completes
 * without meeting its failure, and check after each that nothing crashed,
 * nothing leaked (LeakSanitizer at the child's exit, in sanitizer builds)
 * and the store holds the old or the new state (harness.c).
 *
 * Which allocations count: everything the project allocates (the link wraps
 * malloc, calloc, realloc, strdup, strndup and vasprintf for the library's
 * objects: -Wl,--wrap=...), SQLite's (SQLITE_CONFIG_MALLOC over its own
 * allocator, lookaside off so small ones count too) and jansson's
 * (json_set_alloc_funcs; the library's own JSON allocator, when it installs
 * one, allocates through the wrapped malloc).  Not counted: libfyaml's and
 * libc's internal allocations (stdio buffers, getaddrinfo, ...).
 *
 * By default threads are refused (pthread_create is wrapped to fail), so
 * the engine writes on the caller's thread and allocation N is the same
 * allocation in every attempt: a failure reproduces with --only N.  With
 * --threads the writer and renewal threads run and N is only approximate.
 *
 *   alloc_driver --dir DIR [--target run|config] [--records N] [--batch N]
 *                [--mode full|incremental|append] [--max-rejects N]
 *                [--persist] [--threads] [--from N] [--to N] [--stride S]
 *                [--sample M --seed S] [--only N] [--config FILE] [-v]
 */
#include <errno.h>
#include <execinfo.h>
#include <jansson.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config/config.h"
#include "harness.h"

/* ---- the counting allocator ---- */

static atomic_int armed;
static atomic_long count, fired;
static long target; /* fail allocation #target (0: count only) */
static int persist; /* ... and every one after it */
static int no_threads = 1;
static _Atomic(const char *) phase;
static char first_site[32], first_phase[64];
static int trace; /* ALLOC_TRACE=1: print the stack of the failed allocation */

static int should_fail(const char *site)
{
	long k;

	if (!atomic_load(&armed))
		return 0;
	k = atomic_fetch_add(&count, 1) + 1;
	if (target <= 0 || (k != target && !(persist && k > target)))
		return 0;
	if (atomic_fetch_add(&fired, 1) == 0) {
		const char *ph = atomic_load(&phase);

		snprintf(first_site, sizeof(first_site), "%s", site);
		snprintf(first_phase, sizeof(first_phase), "%s", ph ? ph : "");
		if (trace) {
			void *frames[32];
			int nf = backtrace(frames, 32);

			fprintf(stderr, "allocation #%ld (%s) failed here:\n",
				k, site);
			backtrace_symbols_fd(frames, nf, 2);
		}
	}
	return 1;
}

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
char *__real_strdup(const char *s);
char *__real_strndup(const char *s, size_t n);
int __real_vasprintf(char **out, const char *fmt, va_list ap);
int __real_pthread_create(pthread_t *t, const pthread_attr_t *a,
			  void *(*fn)(void *), void *arg);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);
char *__wrap_strdup(const char *s);
char *__wrap_strndup(const char *s, size_t n);
int __wrap_vasprintf(char **out, const char *fmt, va_list ap);
int __wrap_pthread_create(pthread_t *t, const pthread_attr_t *a,
			  void *(*fn)(void *), void *arg);

void *__wrap_malloc(size_t n)
{
	return should_fail("malloc") ? NULL : __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t size)
{
	return should_fail("calloc") ? NULL : __real_calloc(n, size);
}

void *__wrap_realloc(void *p, size_t n)
{
	return should_fail("realloc") ? NULL : __real_realloc(p, n);
}

char *__wrap_strdup(const char *s)
{
	return should_fail("strdup") ? NULL : __real_strdup(s);
}

char *__wrap_strndup(const char *s, size_t n)
{
	return should_fail("strndup") ? NULL : __real_strndup(s, n);
}

int __wrap_vasprintf(char **out, const char *fmt, va_list ap)
{
	if (should_fail("vasprintf")) {
		*out = NULL;
		return -1;
	}
	return __real_vasprintf(out, fmt, ap);
}

/* Refusing threads makes the run deterministic (the engine falls back to
 * writing on the caller's thread); see the file comment. */
int __wrap_pthread_create(pthread_t *t, const pthread_attr_t *a,
			  void *(*fn)(void *), void *arg)
{
	if (no_threads)
		return EAGAIN;
	return __real_pthread_create(t, a, fn, arg);
}

static sqlite3_mem_methods sq_orig;

static void *sq_malloc(int n)
{
	return should_fail("sqlite") ? NULL : sq_orig.xMalloc(n);
}

static void *sq_realloc(void *p, int n)
{
	return should_fail("sqlite") ? NULL : sq_orig.xRealloc(p, n);
}

static void *js_malloc(size_t n)
{
	return should_fail("jansson") ? NULL : __real_malloc(n);
}

static void js_free(void *p)
{
	free(p);
}

static int install_allocators(void)
{
	sqlite3_mem_methods m;

	if (sqlite3_config(SQLITE_CONFIG_GETMALLOC, &sq_orig) != SQLITE_OK)
		return -1;
	m = sq_orig;
	m.xMalloc = sq_malloc;
	m.xRealloc = sq_realloc;
	if (sqlite3_config(SQLITE_CONFIG_MALLOC, &m) != SQLITE_OK ||
	    sqlite3_config(SQLITE_CONFIG_LOOKASIDE, 0, 0) != SQLITE_OK)
		return -1;
	json_set_alloc_funcs(js_malloc, js_free);
	return sqlite3_initialize() == SQLITE_OK ? 0 : -1;
}

static void arm(long n)
{
	atomic_store(&armed, 0);
	target = n;
	atomic_store(&count, 0);
	atomic_store(&fired, 0);
	first_site[0] = first_phase[0] = '\0';
	atomic_store(&armed, 1);
}

/* ---- hooks: arm once the config is parsed ---- */

static long cur_n;

static void hook_ready(void *ud)
{
	(void)ud;
	arm(cur_n);
}

static void hook_point(void *ud, const char *name, long pass)
{
	(void)ud;
	(void)pass;
	atomic_store(&phase, name);
}

static void hook_after(void *ud, rh_result *r)
{
	(void)ud;
	atomic_store(&armed, 0);
	r->ops = atomic_load(&count);
	r->fired = atomic_load(&fired);
	snprintf(r->fault, sizeof(r->fault), "allocation #%ld (%s)", target,
		 first_site);
	snprintf(r->phase, sizeof(r->phase), "%s", first_phase);
}

/* ---- the config target: as_config_parse alone ---- */

typedef struct cfg_result {
	int rc, status;
	long count, fired;
	char msg[1024];
} cfg_result;

static int config_child(const char *text, long n, cfg_result *out)
{
	int fds[2];
	pid_t pid;
	ssize_t got;

	memset(out, 0, sizeof(*out));
	fflush(NULL);
	if (pipe(fds))
		return -1;
	pid = fork();
	if (pid == 0) {
		cfg_result r;
		as_config *cfg = NULL;
		as_error err;

		close(fds[0]);
		memset(&r, 0, sizeof(r));
		as_error_clear(&err);
		arm(n);
		r.rc = as_config_parse(&cfg, text, strlen(text), "atomsync.yml",
				       &err);
		atomic_store(&armed, 0);
		r.count = atomic_load(&count);
		r.fired = atomic_load(&fired);
		snprintf(r.msg, sizeof(r.msg), "%s", err.msg);
		as_config_free(cfg);
		if (write(fds[1], &r, sizeof(r)) != (ssize_t)sizeof(r))
			_exit(98);
		exit(0);
	}
	close(fds[1]);
	got = pid > 0 ? read(fds[0], out, sizeof(*out)) : -1;
	close(fds[0]);
	if (pid > 0)
		while (waitpid(pid, &out->status, 0) < 0 && errno == EINTR)
			;
	return got == (ssize_t)sizeof(*out) ? 0 : -1;
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	long n;

	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 &&
	    fseek(f, 0, SEEK_SET) == 0 && (buf = calloc(1, (size_t)n + 1)) &&
	    fread(buf, 1, (size_t)n, f) != (size_t)n) {
		free(buf);
		buf = NULL;
	}
	fclose(f);
	return buf;
}

/* ---- main ---- */

typedef struct opts {
	const char *dir, *mode, *target, *config;
	int records, batch, max_rejects, verbose;
	long from, to, stride, only, sample;
	unsigned long seed;
} opts;

static void usage(void)
{
	fprintf(stderr,
		"usage: alloc_driver --dir DIR [options] (see alloc_driver.c)\n");
	exit(2);
}

static void parse_args(opts *o, int argc, char **argv)
{
	memset(o, 0, sizeof(*o));
	o->mode = "full";
	o->target = "run";
	o->records = 200;
	o->batch = 50;
	o->from = 1;
	o->stride = 1;
	o->seed = 1;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(a, "-v") == 0) {
			o->verbose = 1;
			continue;
		}
		if (strcmp(a, "--persist") == 0) {
			persist = 1;
			continue;
		}
		if (strcmp(a, "--threads") == 0) {
			no_threads = 0;
			continue;
		}
		if (!v)
			usage();
		i++;
		if (strcmp(a, "--dir") == 0)
			o->dir = v;
		else if (strcmp(a, "--mode") == 0)
			o->mode = v;
		else if (strcmp(a, "--target") == 0)
			o->target = v;
		else if (strcmp(a, "--config") == 0)
			o->config = v;
		else if (strcmp(a, "--records") == 0)
			o->records = atoi(v);
		else if (strcmp(a, "--batch") == 0)
			o->batch = atoi(v);
		else if (strcmp(a, "--max-rejects") == 0)
			o->max_rejects = atoi(v);
		else if (strcmp(a, "--from") == 0)
			o->from = atol(v);
		else if (strcmp(a, "--to") == 0)
			o->to = atol(v);
		else if (strcmp(a, "--stride") == 0)
			o->stride = atol(v);
		else if (strcmp(a, "--sample") == 0)
			o->sample = atol(v);
		else if (strcmp(a, "--seed") == 0)
			o->seed = strtoul(v, NULL, 10);
		else if (strcmp(a, "--only") == 0)
			o->only = atol(v);
		else
			usage();
	}
	if (!o->dir || o->stride < 1)
		usage();
}

/* The attempts to make: every N in [from, end] by stride, or a sample. */
static long next_n(const opts *o, long prev, long end, unsigned long *rng)
{
	if (o->only)
		return prev ? 0 : o->only;
	if (o->sample > 0) {
		/* A random walk with mean step end/sample covers the range
		 * evenly; the seed reproduces the same Ns. */
		long mean = end / o->sample > 0 ? end / o->sample : 1, step;

		*rng = *rng * 6364136223846793005UL + 1442695040888963407UL;
		step = 1 + (long)((*rng >> 33) % (unsigned long)(2 * mean));
		prev = prev ? prev + step : o->from + step / 2;
		return prev <= end ? prev : 0;
	}
	prev = prev ? prev + o->stride : o->from;
	return prev <= end ? prev : 0;
}

static void repro(int argc, char **argv, long n)
{
	fprintf(stderr, "  reproduce:");
	for (int i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--only") || !strcmp(argv[i], "--from") ||
		    !strcmp(argv[i], "--to") || !strcmp(argv[i], "--stride") ||
		    !strcmp(argv[i], "--sample") ||
		    !strcmp(argv[i], "--seed")) {
			i++;
			continue;
		}
		fprintf(stderr, " %s", argv[i]);
	}
	fprintf(stderr, " --only %ld\n", n);
}

static char *config_text; /* a global: reachable in every child's leak check */

static int sweep_config(const opts *o, int argc, char **argv)
{
	char why[256],
		*text = config_text = o->config ? slurp(o->config) : NULL;
	long n = 0, end, tried = 0, injected = 0, failed = 0, violations = 0,
	     first = 0;
	int want_rc;
	unsigned long rng = o->seed;
	cfg_result r;

	if (!text) {
		fprintf(stderr,
			"alloc_driver: --target config needs --config FILE\n");
		return 2;
	}
	/* What the fuzz seeds' ${VAR} expansions name (tests/fuzz). */
	setenv("ATOMSYNC_FUZZ_SECRET", "s3cr3t-value", 1);
	setenv("ATOMSYNC_FUZZ_EMPTY", "", 1);
	/* A config that does not parse sweeps the error paths: fine too. */
	if (config_child(text, 0, &r)) {
		fprintf(stderr, "alloc_driver: the counting parse died\n");
		return 2;
	}
	want_rc = r.rc;
	end = o->to > 0 && o->to < r.count ? o->to : r.count;
	while ((n = next_n(o, n, end, &rng)) > 0) {
		const char *bad = NULL;

		if (config_child(text, n, &r))
			bad = "the child died before reporting";
		else if (!rh_child_clean(r.status, why, sizeof(why)))
			bad = why;
		else if (r.fired == 0)
			continue;
		else if (r.rc && r.rc != want_rc &&
			 !strstr(r.msg, "out of memory"))
			bad = r.msg[0] ? r.msg : "failed without a message";
		else if (r.rc == want_rc && want_rc && !r.msg[0])
			bad = "failed without a message";
		tried++;
		injected += r.fired;
		failed += r.rc != 0;
		if (bad) {
			violations++;
			if (!first)
				first = n;
			fprintf(stderr, "VIOLATION config n=%ld: %s\n", n, bad);
			repro(argc, argv, n);
		}
	}
	printf("{\"driver\":\"alloc\",\"label\":\"config\",\"allocations_per_parse\":%ld,"
	       "\"attempts\":%ld,\"failures_injected\":%ld,\"failed_cleanly\":%ld,"
	       "\"violations\":%ld,\"first_violation_n\":%ld,\"leak_check\":%s}\n",
	       end, tried, injected, failed - violations, violations, first,
	       rh_have_lsan() ? "true" : "false");
	free(text);
	config_text = NULL;
	return violations ? 1 : 0;
}

int main(int argc, char **argv)
{
	static const char *const causes[] = {"out of memory", NULL};
	char why[1400], first_violation[1600] = "";
	unsigned long rng;
	rh_scenario sc;
	rh_tally t;
	rh_result r;
	rh_ref ref;
	long n = 0, end, first_n = 0;
	opts o;

	parse_args(&o, argc, argv);
	rng = o.seed;
	trace = getenv("ALLOC_TRACE") && atoi(getenv("ALLOC_TRACE"));
	if (install_allocators()) {
		fprintf(stderr,
			"alloc_driver: cannot install the counting allocators\n");
		return 2;
	}
	if (strcmp(o.target, "config") == 0)
		return sweep_config(&o, argc, argv);
	memset(&t, 0, sizeof(t));
	if (rh_scenario_init(&sc, o.dir, o.mode, o.records, o.batch,
			     o.max_rejects) ||
	    rh_reference(&sc, &ref)) {
		fprintf(stderr,
			"alloc_driver: cannot set up the scenario in %s\n",
			o.dir);
		return 2;
	}
	{
		rh_hooks h = {NULL, hook_ready, hook_point, hook_after, NULL};

		cur_n = 0;
		if (rh_restore(&sc) || rh_run_child(&sc, sc.cfg_new, &h, &r) ||
		    r.rc) {
			fprintf(stderr,
				"alloc_driver: counting run failed: %s\n",
				r.msg);
			return 2;
		}
		end = r.ops;
		if (o.verbose)
			fprintf(stderr,
				"alloc: %ld allocations in a run of %d records\n",
				end, o.records);
	}
	if (o.to > 0 && o.to < end)
		end = o.to;
	while ((n = next_n(&o, n, end + (o.only ? 0 : 50), &rng)) > 0) {
		rh_hooks h = {NULL, hook_ready, hook_point, hook_after, NULL};
		int rc;

		cur_n = n;
		if (rh_restore(&sc)) {
			fprintf(stderr,
				"alloc_driver: cannot restore the old state\n");
			return 2;
		}
		rc = rh_run_child(&sc, sc.cfg_new, &h, &r);
		/* Threads, if allowed, make the count vary a little: go on a
		 * few past the measured end before calling the sweep done. */
		if (rc == 0 && r.fired == 0) {
			if (n > end && !o.sample)
				break;
			continue;
		}
		if (rh_check(&sc, &ref, &r, causes, &t, why, sizeof(why))) {
			fprintf(stderr,
				"VIOLATION alloc n=%ld (%s, after %s): %s\n", n,
				r.fault, r.phase[0] ? r.phase : "start", why);
			repro(argc, argv, n);
			if (!first_n) {
				first_n = n;
				snprintf(first_violation,
					 sizeof(first_violation), "%s", why);
			}
		} else if (o.verbose) {
			fprintf(stderr, "alloc n=%ld %s after %s: %s\n", n,
				r.fault, r.phase[0] ? r.phase : "start",
				r.rc ? r.msg : "published (failure absorbed)");
		}
	}
	printf("{\"driver\":\"alloc\",\"label\":\"run\",\"mode\":\"%s\",\"records\":%d,"
	       "\"threads\":%s,\"persist\":%s,\"allocations_per_run\":%ld,"
	       "\"attempts\":%ld,\"failures_injected\":%ld,\"failed_cleanly\":%ld,"
	       "\"published\":%ld,\"resumed\":%ld,\"violations\":%ld,"
	       "\"leak_check\":%s,\"seed\":%lu,\"first_violation_n\":%ld,"
	       "\"first_violation\":",
	       o.mode, o.records, no_threads ? "false" : "true",
	       persist ? "true" : "false", end, t.attempts, t.injected,
	       t.failed, t.published, t.resumed, t.violations,
	       rh_have_lsan() ? "true" : "false", o.seed, first_n);
	rh_json_str(stdout, first_violation);
	printf("}\n");
	rh_scenario_free(&sc);
	return t.violations ? 1 : 0;
}
