/*
 * Lease owner strings "host/pid/start/pidns".  The start time from
 * /proc/PID/stat guards against a recycled pid, the pid namespace against
 * containers that share a hostname; a process stopped with SIGSTOP still
 * counts as alive, so a paused worker keeps its lease until it expires.
 * Whenever liveness cannot be told for sure, the holder counts as alive.
 */
#include "util/proc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sys/types.h>
#include <unistd.h>

volatile sig_atomic_t as_interrupted;
static char self[160];

#define ZOMBIE (~0ULL)

/* The process's start time (clock ticks since boot), ZOMBIE for a zombie,
 * 0 when /proc does not tell (no such process, or hidden from us). */
static unsigned long long start_time(long pid)
{
	char path[64], buf[1024];
	unsigned long long st = 0;
	FILE *f;
	char *p;

	snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
	f = fopen(path, "r");
	if (!f)
		return 0;
	if (!fgets(buf, sizeof(buf), f)) {
		fclose(f);
		return 0;
	}
	fclose(f);
	/* Field 22 (starttime); the command name (field 2) may hold spaces. */
	p = strrchr(buf, ')');
	if (!p || !p[1] || !p[2])
		return 0;
	/* A zombie (killed, not yet reaped) is dead for our purpose. */
	if (p[2] == 'Z' || p[2] == 'X')
		return ZOMBIE;
	p++;
	for (int field = 3; field < 22 && p; field++) {
		p = strchr(p + 1, ' ');
	}
	if (p)
		st = strtoull(p + 1, NULL, 10);
	return st;
}

static unsigned long long pid_ns(void)
{
	char link[64] = "";
	ssize_t n = readlink("/proc/self/ns/pid", link, sizeof(link) - 1);
	const char *br;

	if (n <= 0)
		return 0;
	link[n] = '\0';
	br = strchr(link, '[');
	return br ? strtoull(br + 1, NULL, 10) : 0;
}

static void owner_init(void)
{
	char host[96] = "localhost";

	gethostname(host, sizeof(host) - 1);
	host[sizeof(host) - 1] = '\0';
	snprintf(self, sizeof(self), "%s/%ld/%llu/%llu", host, (long)getpid(),
		 start_time((long)getpid()), pid_ns());
}

/* Made once: a daemon's workers ask for it from several threads at once,
 * and one must not copy it while another is still writing it. */
const char *as_owner_self(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	pthread_once(&once, owner_init);
	return self;
}

int as_owner_is_dead(const char *owner)
{
	char host[96] = "localhost";
	const char *p;
	unsigned long long start, ns, st;
	long pid;
	char *end;

	if (!owner || !*owner)
		return 1;
	gethostname(host, sizeof(host) - 1);
	host[sizeof(host) - 1] = '\0';
	p = strchr(owner, '/');
	if (!p || (size_t)(p - owner) != strlen(host) ||
	    strncmp(owner, host, strlen(host)) != 0)
		return 0; /* another host: only the expiry can free it */
	pid = strtol(p + 1, &end, 10);
	if (pid <= 0 || *end != '/')
		return 0;
	start = strtoull(end + 1, &end, 10);
	if (*end != '/')
		return 0;
	ns = strtoull(end + 1, NULL, 10);
	if (!ns || ns != pid_ns())
		return 0; /* another pid namespace: its pids mean nothing here
			   */
	if (kill((pid_t)pid, 0) != 0 && errno == ESRCH)
		return 1;
	st = start_time(pid);
	if (st == ZOMBIE)
		return 1;
	if (st == 0)
		return 0; /* present but hidden (hidepid): cannot tell, keep it
			   */
	return st != start;
}
