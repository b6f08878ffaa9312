/*
 * The fault-injecting VFS (faultvfs.h).  Every file method forwards to the
 * wrapped file; the counted ones first ask should_fail(), which numbers the
 * operation and decides.  Counters are atomics: the engine writes on its
 * writer thread while the caller's thread scans the live table.
 */
#include "faultvfs.h"

#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

typedef struct fv_file {
	sqlite3_file base;
	sqlite3_file *real; /* the wrapped file, right after this struct */
	int cls;	    /* FV_RW or FV_RO */
	char name[64];	    /* the file's base name, for messages */
} fv_file;

static sqlite3_vfs *orig;
static sqlite3_vfs fv_vfs;
static sqlite3_io_methods fv_io_v1, fv_io_v3;

static fv_plan plan;
static atomic_int armed;
static atomic_long ops, fired;
static _Atomic(const char *) phase;
static char first[160];
static char first_phase[64];
/* The class of the database file this thread last locked: a connection
 * opens its WAL (always read-write) right after locking its database, on
 * the same thread, so the WAL takes the class of that connection. */
static __thread int tls_cls;

static const char *kind_name(unsigned kind)
{
	switch (kind) {
	case FV_READ: return "read";
	case FV_WRITE: return "write";
	case FV_SYNC: return "sync";
	case FV_TRUNCATE: return "truncate";
	case FV_FILESIZE: return "size";
	default: return "open";
	}
}

/* Number this operation if it is counted; 0 to proceed, else the error. */
static int should_fail(unsigned kind, int cls, const char *name)
{
	long k;
	int err;

	if (!atomic_load(&armed) || !(plan.kinds & kind) ||
	    !(plan.classes & cls))
		return 0;
	/* Disk full happens to writes; the other operations just proceed. */
	if (plan.error == FV_EFULL && kind != FV_WRITE)
		return 0;
	k = atomic_fetch_add(&ops, 1) + 1;
	if (plan.n <= 0 || (k != plan.n && !(plan.persist && k > plan.n)))
		return 0;
	if (atomic_fetch_add(&fired, 1) == 0) {
		const char *ph = atomic_load(&phase);

		snprintf(first, sizeof(first), "%s #%ld of %s", kind_name(kind),
			 k, name);
		snprintf(first_phase, sizeof(first_phase), "%s", ph ? ph : "");
	}
	if (plan.error == FV_EFULL)
		return SQLITE_FULL;
	switch (kind) {
	case FV_READ: err = SQLITE_IOERR_READ; break;
	case FV_WRITE: err = SQLITE_IOERR_WRITE; break;
	case FV_SYNC: err = SQLITE_IOERR_FSYNC; break;
	case FV_TRUNCATE: err = SQLITE_IOERR_TRUNCATE; break;
	case FV_FILESIZE: err = SQLITE_IOERR_FSTAT; break;
	default: err = SQLITE_CANTOPEN; break;
	}
	return err;
}

/* ---- file methods: forward, with faults where counted ---- */

#define REAL(f) (((fv_file *)(f))->real)
#define FV(f) ((fv_file *)(f))

static int fv_close(sqlite3_file *f)
{
	int rc = REAL(f)->pMethods ? REAL(f)->pMethods->xClose(REAL(f))
				   : SQLITE_OK;

	f->pMethods = NULL;
	return rc;
}

static int fv_read(sqlite3_file *f, void *buf, int n, sqlite3_int64 off)
{
	int rc = should_fail(FV_READ, FV(f)->cls, FV(f)->name);

	return rc ? rc : REAL(f)->pMethods->xRead(REAL(f), buf, n, off);
}

static int fv_write(sqlite3_file *f, const void *buf, int n, sqlite3_int64 off)
{
	int rc = should_fail(FV_WRITE, FV(f)->cls, FV(f)->name);

	return rc ? rc : REAL(f)->pMethods->xWrite(REAL(f), buf, n, off);
}

static int fv_truncate(sqlite3_file *f, sqlite3_int64 size)
{
	int rc = should_fail(FV_TRUNCATE, FV(f)->cls, FV(f)->name);

	return rc ? rc : REAL(f)->pMethods->xTruncate(REAL(f), size);
}

static int fv_sync(sqlite3_file *f, int flags)
{
	int rc = should_fail(FV_SYNC, FV(f)->cls, FV(f)->name);

	return rc ? rc : REAL(f)->pMethods->xSync(REAL(f), flags);
}

static int fv_file_size(sqlite3_file *f, sqlite3_int64 *size)
{
	int rc = should_fail(FV_FILESIZE, FV(f)->cls, FV(f)->name);

	return rc ? rc : REAL(f)->pMethods->xFileSize(REAL(f), size);
}

static int fv_lock(sqlite3_file *f, int l)
{
	tls_cls = FV(f)->cls;
	return REAL(f)->pMethods->xLock(REAL(f), l);
}

static int fv_unlock(sqlite3_file *f, int l)
{
	return REAL(f)->pMethods->xUnlock(REAL(f), l);
}

static int fv_check_lock(sqlite3_file *f, int *out)
{
	return REAL(f)->pMethods->xCheckReservedLock(REAL(f), out);
}

static int fv_file_control(sqlite3_file *f, int op, void *arg)
{
	return REAL(f)->pMethods->xFileControl(REAL(f), op, arg);
}

static int fv_sector_size(sqlite3_file *f)
{
	return REAL(f)->pMethods->xSectorSize(REAL(f));
}

static int fv_device_chars(sqlite3_file *f)
{
	return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f));
}

/* The shared-memory methods pass straight through: the WAL index works
 * exactly as without the wrapper (faults are file I/O only). */
static int fv_shm_map(sqlite3_file *f, int pg, int pgsz, int extend,
		      void volatile **pp)
{
	return REAL(f)->pMethods->xShmMap(REAL(f), pg, pgsz, extend, pp);
}

static int fv_shm_lock(sqlite3_file *f, int offset, int n, int flags)
{
	return REAL(f)->pMethods->xShmLock(REAL(f), offset, n, flags);
}

static void fv_shm_barrier(sqlite3_file *f)
{
	REAL(f)->pMethods->xShmBarrier(REAL(f));
}

static int fv_shm_unmap(sqlite3_file *f, int del)
{
	return REAL(f)->pMethods->xShmUnmap(REAL(f), del);
}

static int fv_fetch(sqlite3_file *f, sqlite3_int64 off, int n, void **pp)
{
	/* No memory-mapped reads: they would bypass xRead and its faults. */
	(void)f;
	(void)off;
	(void)n;
	*pp = NULL;
	return SQLITE_OK;
}

static int fv_unfetch(sqlite3_file *f, sqlite3_int64 off, void *p)
{
	(void)f;
	(void)off;
	(void)p;
	return SQLITE_OK;
}

/* ---- the VFS ---- */

static int fv_open(sqlite3_vfs *vfs, const char *zname, sqlite3_file *f,
		   int flags, int *out_flags)
{
	fv_file *p = (fv_file *)f;
	const char *base = zname ? strrchr(zname, '/') : NULL;
	int rc;

	(void)vfs;
	memset(p, 0, sizeof(*p));
	p->real = (sqlite3_file *)(p + 1);
	if (flags & SQLITE_OPEN_MAIN_DB)
		p->cls = (flags & SQLITE_OPEN_READONLY) ? FV_RO : FV_RW;
	else
		p->cls = tls_cls ? tls_cls : FV_RW;
	snprintf(p->name, sizeof(p->name), "%s",
		 base	 ? base + 1
		 : zname ? zname
			 : "(temp)");
	if ((rc = should_fail(FV_OPEN, p->cls, p->name)))
		return rc;
	rc = orig->xOpen(orig, zname, p->real, flags, out_flags);
	if (!p->real->pMethods) {
		f->pMethods = NULL; /* nothing to close */
		return rc;
	}
	f->pMethods = p->real->pMethods->iVersion >= 3 ? &fv_io_v3 : &fv_io_v1;
	return rc;
}

static int fv_delete(sqlite3_vfs *v, const char *z, int sync)
{
	(void)v;
	return orig->xDelete(orig, z, sync);
}

static int fv_access(sqlite3_vfs *v, const char *z, int flags, int *out)
{
	(void)v;
	return orig->xAccess(orig, z, flags, out);
}

static int fv_full_path(sqlite3_vfs *v, const char *z, int n, char *out)
{
	(void)v;
	return orig->xFullPathname(orig, z, n, out);
}

static void *fv_dl_open(sqlite3_vfs *v, const char *z)
{
	(void)v;
	return orig->xDlOpen(orig, z);
}

static void fv_dl_error(sqlite3_vfs *v, int n, char *z)
{
	(void)v;
	orig->xDlError(orig, n, z);
}

static void (*fv_dl_sym(sqlite3_vfs *v, void *h, const char *z))(void)
{
	(void)v;
	return orig->xDlSym(orig, h, z);
}

static void fv_dl_close(sqlite3_vfs *v, void *h)
{
	(void)v;
	orig->xDlClose(orig, h);
}

static int fv_randomness(sqlite3_vfs *v, int n, char *out)
{
	(void)v;
	return orig->xRandomness(orig, n, out);
}

static int fv_sleep(sqlite3_vfs *v, int us)
{
	(void)v;
	return orig->xSleep(orig, us);
}

static int fv_current_time(sqlite3_vfs *v, double *t)
{
	(void)v;
	return orig->xCurrentTime(orig, t);
}

static int fv_last_error(sqlite3_vfs *v, int n, char *z)
{
	(void)v;
	return orig->xGetLastError ? orig->xGetLastError(orig, n, z) : 0;
}

static int fv_current_time64(sqlite3_vfs *v, sqlite3_int64 *t)
{
	(void)v;
	return orig->xCurrentTimeInt64(orig, t);
}

int fv_register(void)
{
	if (orig)
		return SQLITE_OK;
	sqlite3_initialize();
	orig = sqlite3_vfs_find(NULL);
	if (!orig)
		return SQLITE_ERROR;

	fv_io_v1 = (sqlite3_io_methods){1,
					fv_close,
					fv_read,
					fv_write,
					fv_truncate,
					fv_sync,
					fv_file_size,
					fv_lock,
					fv_unlock,
					fv_check_lock,
					fv_file_control,
					fv_sector_size,
					fv_device_chars,
					NULL,
					NULL,
					NULL,
					NULL,
					NULL,
					NULL};
	fv_io_v3 = fv_io_v1;
	fv_io_v3.iVersion = 3;
	fv_io_v3.xShmMap = fv_shm_map;
	fv_io_v3.xShmLock = fv_shm_lock;
	fv_io_v3.xShmBarrier = fv_shm_barrier;
	fv_io_v3.xShmUnmap = fv_shm_unmap;
	fv_io_v3.xFetch = fv_fetch;
	fv_io_v3.xUnfetch = fv_unfetch;

	fv_vfs = (sqlite3_vfs){2,
			       (int)sizeof(fv_file) + orig->szOsFile,
			       orig->mxPathname,
			       NULL,
			       "faultvfs",
			       NULL,
			       fv_open,
			       fv_delete,
			       fv_access,
			       fv_full_path,
			       fv_dl_open,
			       fv_dl_error,
			       fv_dl_sym,
			       fv_dl_close,
			       fv_randomness,
			       fv_sleep,
			       fv_current_time,
			       fv_last_error,
			       fv_current_time64,
			       NULL,
			       NULL,
			       NULL};
	return sqlite3_vfs_register(&fv_vfs, 1);
}

void fv_arm(const fv_plan *p)
{
	atomic_store(&armed, 0);
	plan = *p;
	atomic_store(&ops, 0);
	atomic_store(&fired, 0);
	first[0] = first_phase[0] = '\0';
	atomic_store(&armed, 1);
}

void fv_disarm(void)
{
	atomic_store(&armed, 0);
}

int fv_armed(void)
{
	return atomic_load(&armed);
}

long fv_ops(void)
{
	return atomic_load(&ops);
}

long fv_fired(void)
{
	return atomic_load(&fired);
}

const char *fv_first_fault(void)
{
	return first;
}

void fv_set_phase(const char *ph)
{
	atomic_store(&phase, ph);
}

const char *fv_fault_phase(void)
{
	return first_phase;
}
