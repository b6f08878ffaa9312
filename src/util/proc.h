/*
 * Process identity for leases: an owner string "host/pid/start" that lets a
 * worker on the same host tell a dead holder from a live (even paused) one.
 */
#ifndef AS_UTIL_PROC_H
#define AS_UTIL_PROC_H

#include <stddef.h>

/* This process's owner string. */
const char *as_owner_self(void);
/* 1 when owner names a process on this host that no longer exists (or whose
 * pid was reused); 0 when it is alive or on another host. */
int as_owner_is_dead(const char *owner);

#include <signal.h>
/* Set by the command line's SIGINT/SIGTERM handler; long loops check it. */
extern volatile sig_atomic_t as_interrupted;

#endif
