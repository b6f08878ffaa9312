/*
 * I/O fault sweeps through the real engine (SQLite's own method): with the
 * fault VFS as SQLite's default, fail the Nth read/write/sync/... of a run
 * for N = 1, 2, ... across a window (a staging batch, the publish, or the
 * whole run), once or from then on, with an I/O error or "disk full", and
 * check the store after each fault and after a fault-free rerun (harness.c:
 * invariants 1, 2, 4, 5, 10 and integrity).  Test-only: never in the product.
 *
 *   vfs_driver --dir DIR [--mode full|incremental|append] [--records N]
 *              [--batch N] [--kinds rwsfto] [--class rw|ro|both]
 *              [--error io|full] [--persist] [--after start|POINT[:K]]
 *              [--until POINT[:K]] [--from N] [--to N] [--stride S]
 *              [--only N] [--label NAME] [-v]
 *
 * --after starts counting at the Kth pass of a named crash point (default:
 * before the store is opened); --until ends the window at one (default: the
 * end of the run, i.e. N grows until a run completes without meeting its
 * fault).  The last line of output is a JSON summary; exit 1 on a violation.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "faultvfs.h"
#include "harness.h"

typedef struct opts {
	const char *dir, *mode, *label;
	int records, batch, verbose;
	fv_plan plan;
	char after[64], until[64];
	long after_k, until_k;
	long from, to, stride, only;
} opts;

/* The child's view: arm at the window start, note its end. */
static struct {
	const opts *o;
	long window, passes;
} ctl;

static void hook_before(void *ud)
{
	(void)ud;
	ctl.window = -1;
	ctl.passes = 0;
	if (!ctl.o->after[0])
		fv_arm(&ctl.o->plan);
}

static void hook_point(void *ud, const char *name, long pass)
{
	(void)ud;
	fv_set_phase(name);
	if (ctl.o->after[0] && strcmp(name, ctl.o->after) == 0)
		ctl.passes = pass;
	if (!fv_armed() && ctl.o->after[0] && strcmp(name, ctl.o->after) == 0 &&
	    pass == ctl.o->after_k)
		fv_arm(&ctl.o->plan);
	if (ctl.o->until[0] && ctl.window < 0 &&
	    strcmp(name, ctl.o->until) == 0 && pass == ctl.o->until_k)
		ctl.window = fv_ops();
}

static void hook_after(void *ud, rh_result *r)
{
	(void)ud;
	fv_disarm();
	r->ops = fv_ops();
	r->fired = fv_fired();
	r->window = ctl.window;
	r->passes = ctl.passes;
	snprintf(r->fault, sizeof(r->fault), "%s", fv_first_fault());
	snprintf(r->phase, sizeof(r->phase), "%s", fv_fault_phase());
}

static unsigned parse_kinds(const char *s)
{
	unsigned k = 0;

	for (; *s; s++)
		switch (*s) {
		case 'r': k |= FV_READ; break;
		case 'w': k |= FV_WRITE; break;
		case 's': k |= FV_SYNC; break;
		case 't': k |= FV_TRUNCATE; break;
		case 'f': k |= FV_FILESIZE; break;
		case 'o': k |= FV_OPEN; break;
		default: break;
		}
	return k;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: vfs_driver --dir DIR [options] (see vfs_driver.c)\n");
	exit(2);
}

static void parse_args(opts *o, int argc, char **argv)
{
	memset(o, 0, sizeof(*o));
	o->mode = "full";
	o->label = "vfs";
	o->records = 3500;
	o->batch = 500;
	o->plan.kinds =
		FV_READ | FV_WRITE | FV_SYNC | FV_TRUNCATE | FV_FILESIZE;
	o->plan.classes = FV_RW;
	o->plan.error = FV_EIO;
	o->from = 1;
	o->stride = 1;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(a, "-v") == 0) {
			o->verbose = 1;
			continue;
		}
		if (strcmp(a, "--persist") == 0) {
			o->plan.persist = 1;
			continue;
		}
		if (!v)
			usage();
		i++;
		if (strcmp(a, "--dir") == 0)
			o->dir = v;
		else if (strcmp(a, "--mode") == 0)
			o->mode = v;
		else if (strcmp(a, "--label") == 0)
			o->label = v;
		else if (strcmp(a, "--records") == 0)
			o->records = atoi(v);
		else if (strcmp(a, "--batch") == 0)
			o->batch = atoi(v);
		else if (strcmp(a, "--kinds") == 0)
			o->plan.kinds = parse_kinds(v);
		else if (strcmp(a, "--class") == 0)
			o->plan.classes = strcmp(v, "ro") == 0 ? FV_RO
					  : strcmp(v, "both") == 0
						  ? FV_RW | FV_RO
						  : FV_RW;
		else if (strcmp(a, "--error") == 0)
			o->plan.error =
				strcmp(v, "full") == 0 ? FV_EFULL : FV_EIO;
		else if (strcmp(a, "--after") == 0)
			rh_parse_point(v, o->after, sizeof(o->after),
				       &o->after_k);
		else if (strcmp(a, "--until") == 0)
			rh_parse_point(v, o->until, sizeof(o->until),
				       &o->until_k);
		else if (strcmp(a, "--from") == 0)
			o->from = atol(v);
		else if (strcmp(a, "--to") == 0)
			o->to = atol(v);
		else if (strcmp(a, "--stride") == 0)
			o->stride = atol(v);
		else if (strcmp(a, "--only") == 0)
			o->only = atol(v);
		else
			usage();
	}
	if (!o->dir || !o->plan.kinds || o->stride < 1)
		usage();
}

static void print_repro(const opts *o, int argc, char **argv, long n)
{
	fprintf(stderr, "  reproduce:");
	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--only") == 0 ||
		    strcmp(argv[i], "--from") == 0 ||
		    strcmp(argv[i], "--to") == 0 ||
		    strcmp(argv[i], "--stride") == 0) {
			i++;
			continue;
		}
		fprintf(stderr, " %s", argv[i]);
	}
	fprintf(stderr, " --only %ld\n", n);
	(void)o;
}

int main(int argc, char **argv)
{
	static const char *const causes[] = {"disk I/O error",
					     "database or disk is full",
					     "unable to open", NULL};
	rh_scenario sc;
	rh_tally t;
	rh_result r;
	rh_ref ref;
	opts o;
	long end, n, by_phase[4] = {0};
	char why[1400], first_violation[1600] = "";
	long first_n = 0;

	parse_args(&o, argc, argv);
	ctl.o = &o;
	memset(&t, 0, sizeof(t));
	if (fv_register() != 0) {
		fprintf(stderr, "vfs_driver: cannot register the fault VFS\n");
		return 2;
	}
	if (rh_scenario_init(&sc, o.dir, o.mode, o.records, o.batch, 0) ||
	    rh_reference(&sc, &ref)) {
		fprintf(stderr,
			"vfs_driver: cannot set up the scenario in %s\n",
			o.dir);
		return 2;
	}
	/* "--after POINT:last": how often the point passes in a run. */
	if (o.after_k < 0) {
		rh_hooks h = {hook_before, NULL, hook_point, hook_after, NULL};
		opts count = o;

		count.plan.n = 0;
		ctl.o = &count;
		if (rh_restore(&sc) || rh_run_child(&sc, sc.cfg_new, &h, &r) ||
		    r.rc || r.passes < 1) {
			fprintf(stderr, "vfs_driver: point %s never passed\n",
				o.after);
			return 2;
		}
		o.after_k = r.passes;
		ctl.o = &o;
	}
	/* A counting run (n = 0) measures the window. */
	{
		rh_hooks h = {hook_before, NULL, hook_point, hook_after, NULL};
		opts count = o;

		count.plan.n = 0;
		ctl.o = &count;
		if (rh_restore(&sc) || rh_run_child(&sc, sc.cfg_new, &h, &r) ||
		    r.rc) {
			fprintf(stderr, "vfs_driver: counting run failed: %s\n",
				r.msg);
			return 2;
		}
		ctl.o = &o;
		end = o.until[0] ? r.window : r.ops;
		if (end < 0) {
			fprintf(stderr,
				"vfs_driver: --until point never passed\n");
			return 2;
		}
		if (o.verbose)
			fprintf(stderr,
				"%s: %ld operations counted in the window (%ld in "
				"the run from its start point)\n",
				o.label, end, r.ops);
	}
	if (o.to > 0 && o.to < end)
		end = o.to;
	for (n = o.only ? o.only : o.from; n <= (o.only ? o.only : end);
	     n += o.stride) {
		rh_hooks h = {hook_before, NULL, hook_point, hook_after, NULL};
		int rc;

		o.plan.n = n;
		if (rh_restore(&sc)) {
			fprintf(stderr,
				"vfs_driver: cannot restore the old state\n");
			return 2;
		}
		rc = rh_run_child(&sc, sc.cfg_new, &h, &r);
		if (rc == 0 && r.fired == 0 && !o.until[0] && !o.only)
			break; /* past the last operation: the run completes */
		if (r.fired == 0 && rc == 0)
			continue;
		if (strncmp(r.phase, "publish.committed", 17) == 0)
			by_phase[3]++;
		else if (strncmp(r.phase, "publish.", 8) == 0)
			by_phase[2]++;
		else if (r.phase[0])
			by_phase[1]++;
		else
			by_phase[0]++;
		if (rh_check(&sc, &ref, &r, causes, &t, why, sizeof(why))) {
			fprintf(stderr,
				"VIOLATION %s n=%ld (%s, after %s): %s\n",
				o.label, n, r.fault,
				r.phase[0] ? r.phase : "start", why);
			print_repro(&o, argc, argv, n);
			if (!first_n) {
				first_n = n;
				snprintf(first_violation,
					 sizeof(first_violation), "%s", why);
			}
		} else if (o.verbose) {
			fprintf(stderr, "%s n=%ld %s after %s: %s\n", o.label,
				n, r.fault, r.phase[0] ? r.phase : "start",
				r.rc ? r.msg : "published (fault absorbed)");
		}
	}
	printf("{\"driver\":\"vfs\",\"label\":");
	rh_json_str(stdout, o.label);
	printf(",\"window\":\"%s:%ld..%s:%ld\"", o.after[0] ? o.after : "start",
	       o.after_k, o.until[0] ? o.until : "end", o.until_k);
	printf(",\"mode\":\"%s\",\"records\":%d,\"window_ops\":%ld,\"attempts\":%ld,"
	       "\"faults_injected\":%ld,\"failed_cleanly\":%ld,\"published\":%ld,"
	       "\"resumed\":%ld,\"ambiguous_commit\":%ld,\"by_phase\":{\"begin\":%ld,"
	       "\"staging\":%ld,\"publish\":%ld,\"after_commit\":%ld},"
	       "\"violations\":%ld,\"first_violation_n\":%ld,\"first_violation\":",
	       o.mode, o.records, end, t.attempts, t.injected, t.failed,
	       t.published, t.resumed, t.ambiguous, by_phase[0], by_phase[1],
	       by_phase[2], by_phase[3], t.violations, first_n);
	rh_json_str(stdout, first_violation);
	printf("}\n");
	rh_scenario_free(&sc);
	return t.violations ? 1 : 0;
}
