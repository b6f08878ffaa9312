/*
 * A fault-injecting SQLite VFS for the reliability drivers only (never
 * linked into the product): it wraps the default VFS, passes everything
 * through (the shared-memory methods included, so WAL stays on) and fails
 * the Nth counted read, write, sync, truncate, size or open with an I/O
 * error or "disk full", once or from then on (SQLite's own I/O-error tests).
 */
#ifndef AS_TEST_FAULTVFS_H
#define AS_TEST_FAULTVFS_H

#include <stddef.h>

/* Operation kinds (a mask selects which ones are counted). */
enum {
	FV_READ = 1,
	FV_WRITE = 2,
	FV_SYNC = 4,
	FV_TRUNCATE = 8,
	FV_FILESIZE = 16,
	FV_OPEN = 32,
	FV_ALL = 63
};

/* Files are counted apart by how they were opened, so each class has a
 * deterministic sequence even when threads overlap: the read-write
 * connections (the engine's, serialized by the run's writer hand-off) and
 * the read-only ones (the live-table scan, on the caller's thread). */
enum { FV_RW = 1, FV_RO = 2 };

enum { FV_EIO = 0, FV_EFULL = 1 };

typedef struct fv_plan {
	unsigned kinds; /* FV_* mask of counted operations */
	int classes;	/* FV_RW and/or FV_RO */
	long n;		/* fail the nth counted operation; 0: count only */
	int error; /* FV_EIO (SQLITE_IOERR_*) or FV_EFULL (SQLITE_FULL, writes)
		    */
	int persist; /* keep failing every counted operation after the nth */
} fv_plan;

/* Wrap the current default VFS and register the wrapper as the default. */
int fv_register(void);
/* Start counting (and failing) per plan from zero, now. */
void fv_arm(const fv_plan *p);
/* Stop counting and failing; the counters keep their values. */
void fv_disarm(void);
int fv_armed(void);
long fv_ops(void);   /* operations counted since fv_arm */
long fv_fired(void); /* faults injected since fv_arm */
/* What the first injected fault was ("write #12 of store.db-wal"), or "". */
const char *fv_first_fault(void);
/* A label stored with the first fault (the engine's phase at that moment). */
void fv_set_phase(const char *phase);
const char *fv_fault_phase(void);

#endif
