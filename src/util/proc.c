/*
 * Lease owner strings.  The start time from /proc/PID/stat guards against a
 * recycled pid; a process stopped with SIGSTOP still counts as alive, so a
 * paused worker keeps its lease until the lease expires.
 */
#include "util/proc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

volatile sig_atomic_t as_interrupted;
static char self[160];

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
		return 0;
	p++;
	for (int field = 3; field < 22 && p; field++) {
		p = strchr(p + 1, ' ');
	}
	if (p)
		st = strtoull(p + 1, NULL, 10);
	return st;
}

const char *as_owner_self(void)
{
	if (!self[0]) {
		char host[96] = "localhost";

		gethostname(host, sizeof(host) - 1);
		host[sizeof(host) - 1] = '\0';
		snprintf(self, sizeof(self), "%s/%ld/%llu", host, (long)getpid(),
			 start_time((long)getpid()));
	}
	return self;
}

int as_owner_is_dead(const char *owner)
{
	char host[96] = "localhost";
	const char *slash, *slash2;
	unsigned long long st;
	long pid;

	if (!owner || !*owner)
		return 1;
	gethostname(host, sizeof(host) - 1);
	host[sizeof(host) - 1] = '\0';
	slash = strchr(owner, '/');
	if (!slash || (size_t)(slash - owner) != strlen(host) ||
	    strncmp(owner, host, strlen(host)) != 0)
		return 0; /* another host: only the expiry can free it */
	pid = strtol(slash + 1, NULL, 10);
	slash2 = strchr(slash + 1, '/');
	if (pid <= 0 || !slash2)
		return 0;
	st = start_time(pid);
	if (st == 0)
		return 1;
	return st != strtoull(slash2 + 1, NULL, 10);
}
