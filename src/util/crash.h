/*
 * Named crash points for fault tests.  ATOMSYNC_CRASH="point:N" makes the
 * process _exit(AS_CRASH_EXIT) at the Nth pass of that point ("point" alone
 * means N = 1); with ATOMSYNC_CRASH_ACTION=stop it stops itself there
 * (SIGSTOP) instead, as a paused worker would.  ATOMSYNC_CRASH_LOG=FILE
 * appends every point passed, so a sweep can learn how often each point is
 * reached.  ATOMSYNC_PAUSE="point:MS" sleeps MS milliseconds at every pass
 * of that point (to signal a process while it is there).  With none set, a
 * pass costs one branch.
 */
#ifndef AS_UTIL_CRASH_H
#define AS_UTIL_CRASH_H

#define AS_CRASH_EXIT 86

void as_crash_init(void);
void as_crash_point_slow(const char *name);
extern int as_crash_enabled;

#define as_crash_point(name)                                                   \
	do {                                                                   \
		if (as_crash_enabled)                                          \
			as_crash_point_slow(name);                             \
	} while (0)

#endif
