/*
 * Named crash points (SQLite's and curl's fault sweeps, by name), and
 * pauses at a named point (ATOMSYNC_PAUSE="point:MS") so a test can signal
 * a process while it is known to be there.
 */
#include "util/crash.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int as_crash_enabled;
static char target[128];
static long target_n;
static long passes;
static int stop_there; /* ATOMSYNC_CRASH_ACTION=stop */
static FILE *trace;
static char pause_at[128];
static long pause_ms;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

void as_crash_init(void)
{
	const char *spec = getenv("ATOMSYNC_CRASH");
	const char *logf = getenv("ATOMSYNC_CRASH_LOG");
	const char *action;
	const char *pause = getenv("ATOMSYNC_PAUSE");

	if (spec && *spec) {
		const char *colon = strrchr(spec, ':');
		size_t n = colon ? (size_t)(colon - spec) : strlen(spec);

		if (n >= sizeof(target))
			n = sizeof(target) - 1;
		memcpy(target, spec, n);
		target[n] = '\0';
		target_n = colon ? atol(colon + 1) : 1;
		if (target_n < 1)
			target_n = 1;
		as_crash_enabled = 1;
		action = getenv("ATOMSYNC_CRASH_ACTION");
		stop_there = action && !strcmp(action, "stop");
	}
	if (pause && *pause && strchr(pause, ':')) {
		size_t n = (size_t)(strrchr(pause, ':') - pause);

		if (n >= sizeof(pause_at))
			n = sizeof(pause_at) - 1;
		memcpy(pause_at, pause, n);
		pause_at[n] = '\0';
		pause_ms = atol(strrchr(pause, ':') + 1);
		if (pause_ms > 0)
			as_crash_enabled = 1;
	}
	if (logf && *logf) {
		trace = fopen(logf, "a");
		if (trace)
			as_crash_enabled = 1;
	}
}

void as_crash_point_slow(const char *name)
{
	pthread_mutex_lock(&lock);
	if (trace) {
		fprintf(trace, "%s\n", name);
		fflush(trace);
	}
	if (target[0] && strcmp(name, target) == 0 && ++passes == target_n) {
		if (trace)
			fflush(trace);
		if (stop_there) {
			pthread_mutex_unlock(&lock);
			raise(SIGSTOP);
			return;
		}
		_exit(AS_CRASH_EXIT);
	}
	pthread_mutex_unlock(&lock);
	if (pause_ms > 0 && strcmp(name, pause_at) == 0)
		usleep((useconds_t)pause_ms * 1000);
}
