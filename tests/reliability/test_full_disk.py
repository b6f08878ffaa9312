"""A real full disk: the SQLite store on a small tmpfs (mounted by the test,
as root), filled by a filler file so that a run runs out of space at
different moments: while staging, while publishing, after the commit.

After every failure:
  - the run exits 1 with one line naming the cause ("database or disk is
    full") and the live table is exactly the old state (invariants 1, 2);
  - PRAGMA integrity_check is ok;
  - once space is freed (the filler deleted, or the tmpfs remounted
    bigger), a plain rerun completes and publishes exactly what an
    uninterrupted run publishes, counts included (invariant 4).

Mounting needs root (CAP_SYS_ADMIN); where it is refused (an unprivileged
container) the test is skipped with the reason.  ATOMSYNC_FULL_DISK_STEPS
sets how many amounts of free space are tried (default 12).
"""

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from atomsync_test import (FAILED, OK, digest, make_records, run,  # noqa: E402
                           write_jsonl)

COLS = ["id", "name", "slug", "downloads", "score", "updated_at"]
CONFIG = """
store: sqlite:{db}
datasets:
  addons:
    key: [id]
    batch_size: 2000
    guard: {{max_delete_fraction: 0.9}}
    columns:
      id: {{type: integer}}
      name: {{type: text}}
      slug: {{type: text}}
      downloads: {{type: integer}}
      score: {{type: real}}
      updated_at: {{type: text}}
    source:
      file: {src}
"""
SIZE_MB = 24


def rows(db):
    c = sqlite3.connect(db)
    try:
        if not c.execute("SELECT 1 FROM sqlite_master WHERE name='addons'").fetchall():
            return []
        return c.execute("SELECT %s FROM addons ORDER BY id" % ", ".join(COLS)).fetchall()
    finally:
        c.close()


def integrity(db):
    c = sqlite3.connect(db)
    try:
        return c.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        c.close()


def free_bytes(path):
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


class FullDiskTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.work = tempfile.mkdtemp(prefix="atomsync-fulldisk-")
        cls.mnt = os.path.join(cls.work, "mnt")
        os.mkdir(cls.mnt)
        p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%dm,mode=0700" % SIZE_MB,
                            "tmpfs", cls.mnt], capture_output=True, text=True)
        if p.returncode != 0:
            shutil.rmtree(cls.work, ignore_errors=True)
            raise unittest.SkipTest("cannot mount a tmpfs here (%s): the full-disk "
                                    "test needs root with CAP_SYS_ADMIN"
                                    % (p.stderr.strip() or "exit %d" % p.returncode))
        cls.mounted = True

    @classmethod
    def tearDownClass(cls):
        if getattr(cls, "mounted", False):
            subprocess.run(["umount", cls.mnt], capture_output=True)
        shutil.rmtree(cls.work, ignore_errors=True)

    def setUp(self):
        self.db = os.path.join(self.mnt, "store.db")
        self.src = os.path.join(self.work, "addons.jsonl")
        self.golden = os.path.join(self.work, "golden.db")
        self.cfg = os.path.join(self.work, "atomsync.yml")
        with open(self.cfg, "w") as f:
            f.write(CONFIG.format(db=self.db, src=self.src))

    def atomsync(self, *args, check=None):
        return run(["-c", self.cfg] + list(args), cwd=self.work, check=check)

    def clear_mnt(self):
        for n in os.listdir(self.mnt):
            os.unlink(os.path.join(self.mnt, n))

    def restore_old(self):
        self.clear_mnt()
        shutil.copyfile(self.golden, self.db)
        write_jsonl(self.src, self.new)

    def fill(self, leave):
        """A filler file taking all but `leave` bytes of the tmpfs."""
        filler = os.path.join(self.mnt, "filler")
        n = free_bytes(self.mnt) - leave
        with open(filler, "wb") as f:
            chunk = b"\0" * (1 << 20)
            while n > 0:
                k = min(n, len(chunk))
                f.write(chunk[:k])
                n -= k
        return filler

    def test_full_disk_sweep(self):
        """Invariants 1, 2, 4: a run that fills the disk fails cleanly,
        keeps the old state, and completes once space is freed."""
        old = make_records(5000)
        self.new = [dict(r, downloads=r["downloads"] + 1) if r["id"] % 3 == 0 else r
                    for r in old if r["id"] % 11] + make_records(25000, seed=7, start=10001)
        cols = COLS
        ref_old = [tuple(r[c] for c in cols) for r in old]
        by = {r["id"]: tuple(r[c] for c in cols) for r in self.new}
        ref_new = [by[k] for k in sorted(by)]

        # The golden old state, and the uninterrupted run's result.
        self.clear_mnt()
        write_jsonl(self.src, old)
        self.atomsync("run", check=OK)
        self.assertEqual(rows(self.db), ref_old)
        shutil.copyfile(self.db, self.golden)
        self.restore_old()
        p = self.atomsync("run", "--json", check=OK)
        want = {k: json.loads(p.stdout)[0][k]
                for k in ("seen", "inserted", "updated", "unchanged", "deleted")}
        self.assertEqual(rows(self.db), ref_new)
        need = sum(os.path.getsize(os.path.join(self.mnt, n)) for n in os.listdir(self.mnt))

        # Free space from a few pages to past what the run needs (its
        # files' size at the end: staging and the WAL need more meanwhile),
        # so runs stop while staging, while publishing, or not at all.
        steps = int(os.environ.get("ATOMSYNC_FULL_DISK_STEPS") or 14)
        fractions = [0.01, 0.05, 0.15, 0.3, 0.45, 0.6, 0.7, 0.8, 0.9, 1.0, 1.15,
                     1.3, 1.6, 2.0]
        fractions = fractions[::max(1, len(fractions) // steps)][:steps]
        leaves = sorted({int(need * f) for f in fractions})
        failures, phases, published = 0, {}, 0
        for i, leave in enumerate(leaves):
            with self.subTest(leave=leave):
                self.restore_old()
                filler = self.fill(leave)
                p = self.atomsync("run")
                got = rows(self.db)
                self.assertEqual(integrity(self.db), "ok")
                if p.returncode == OK:
                    # It fitted: exactly the new state.
                    self.assertEqual(got, ref_new)
                    published += 1
                    os.unlink(filler)
                    continue
                self.assertEqual(p.returncode, FAILED, p.stderr)
                failures += 1
                err = p.stderr.strip().splitlines()
                self.assertEqual(len(err), 1, p.stderr)
                self.assertIn("database or disk is full", err[0])
                phase = ("publish" if "publish" in err[0] else
                         "staging" if "stag" in err[0] else "begin")
                phases[phase] = phases.get(phase, 0) + 1
                if os.environ.get("ATOMSYNC_FULL_DISK_VERBOSE"):
                    print("\nleave %d: %s" % (leave, err[0]), file=sys.stderr)
                # Invariants 1, 2: the old state, exactly.
                self.assertEqual(digest(got), digest(ref_old), err[0])
                last = json.loads(self.atomsync("runs", "addons", "--json",
                                                check=OK).stdout)[0]
                # Invariant 10, as far as a full disk allows: the run is on
                # record as failed (or still active if even that write
                # failed), unless it could not be put on record at all.
                if last["run_id"] == 1:
                    self.assertRegex(err[0], "taking the lease|recording the run")
                else:
                    self.assertIn(last["status"], ("failed", "active"), last)
                # Free the space: delete the filler, or (every other time)
                # remount the tmpfs bigger with the filler still there.
                if i % 2:
                    subprocess.run(["mount", "-o", "remount,size=%dm" % (SIZE_MB * 3),
                                    self.mnt], check=True)
                else:
                    os.unlink(filler)
                p = self.atomsync("run", "--json")
                self.assertEqual(p.returncode, OK, p.stderr)
                last = json.loads(p.stdout)[0]
                self.assertEqual(rows(self.db), ref_new)
                self.assertEqual(integrity(self.db), "ok")
                self.assertEqual({k: last[k] for k in want}, want, last)
                if os.path.exists(filler):
                    os.unlink(filler)
                if i % 2:
                    subprocess.run(["mount", "-o", "remount,size=%dm" % SIZE_MB,
                                    self.mnt], check=True)
        print("\nfull disk: %d runs, %d failed with a full disk %s, %d fitted "
              "(the run needs about %d KB)" % (len(leaves), failures, phases, published,
                                               need // 1024), file=sys.stderr)
        self.assertGreater(failures, 0, "no run ran out of space")


if __name__ == "__main__":
    unittest.main()
