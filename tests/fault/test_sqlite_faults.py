"""SQLite faults around a run's end (tests/fault/test_postgres_faults.py has
PostgreSQL's): a worker whose run failed and which then cannot record that
end either.

Another process holds SQLite's write lock (an open write transaction: a
sqlite3 shell, a backup, a stuck writer of the application) from the moment
the run is marked publishing (crash point publish.marked, where the worker
is stopped; it holds no lock there).  The worker is stopped by a signal
while it waits for the lock: the publish fails ("interrupted by a signal
while waiting for the database lock"), and recording the run's end, which
needs the same lock, fails the same way.  The worker says so on stderr
(src/engine/run.c, as_run_end_unpublished: "recording its end failed: ...
(the next run records it as interrupted)"); the run stays `publishing` on
record until the next run of the dataset records it as failed, interrupted
(invariant 10), and that run publishes normally (invariants 1, 2, 4).
"""

import os
import signal
import sqlite3
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from atomsync_test import (wait_for, FAILED, OK, StoreTestCase, proc_state,  # noqa: E402
                           reference_rows, spawn, write_jsonl)

COLS = ["id", "name", "n"]
CONFIG = """
store: {store}
datasets:
  d:
    key: [id]
    guard: {max_delete_fraction: 0.9}
    columns:
      id: {type: integer}
      name: {type: text}
      n: {type: integer}
    source:
      file: d.jsonl
"""
# src/store/sql.h, AS_SQL_INTERRUPTED: the error of a run the next run found
# still active or publishing.
INTERRUPTED = "interrupted: the worker stopped before finishing"


def recs(n, tag):
    return [{"id": i, "name": "%s-%d" % (tag, i), "n": i * 7} for i in range(1, n + 1)]


class SqliteRunEndTest(StoreTestCase):
    store_name = "sqlite"

    def setUp(self):
        super().setUp()
        self.config(CONFIG)
        self.procs = []

    def tearDown(self):
        for pid in self.procs:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        super().tearDown()

    def lock(self):
        """Another writer: an open write transaction on the store."""
        db = sqlite3.connect(self.store.path, timeout=30, isolation_level=None)
        db.execute("BEGIN IMMEDIATE")
        return db

    def test_run_end_not_recorded_then_interrupted(self):
        """Invariant 10: a run whose publish failed and whose end could
        not be recorded is reported on stderr with its number, stays
        `publishing` on record, and the next run records it as failed,
        interrupted, then publishes exactly the new delivery; the live
        table never changed in between (invariants 1, 2)."""
        old, new = recs(300, "old"), recs(350, "new")
        write_jsonl(self.path("d.jsonl"), old)
        self.atomsync("run", check=OK)
        before = self.store.full_rows("d")
        write_jsonl(self.path("d.jsonl"), new)
        a = spawn(["run"], cwd=self.dir,
                  env={"ATOMSYNC_CRASH": "publish.marked",
                       "ATOMSYNC_CRASH_ACTION": "stop"})
        self.procs.append(a.pid)
        wait_for(lambda: proc_state(a.pid) == "T", what="the worker to stop")
        run = self.runs("d")[0]
        self.assertEqual(run["status"], "publishing")
        db = self.lock()
        try:
            # Resumed, it waits for the lock; the signal ends the wait.
            os.kill(a.pid, signal.SIGCONT)
            time.sleep(0.3)
            os.kill(a.pid, signal.SIGTERM)
            rc = a.wait(timeout=60)
            err = a.stderr.read()
            a.stderr.close()
        finally:
            db.execute("ROLLBACK")
            db.close()
        self.assertEqual(rc, FAILED, err)
        self.assertIn("beginning the publish: interrupted by a signal while "
                      "waiting for the database lock", err)
        warn = [line for line in err.splitlines()
                if "recording its end failed" in line]
        self.assertEqual(len(warn), 1, err)
        self.assertIn("dataset d: run %d: recording its end failed: " % run["run_id"],
                      warn[0])
        self.assertIn("recording the run's end", warn[0])
        self.assertTrue(warn[0].endswith("(the next run records it as interrupted)"),
                        warn[0])
        # Not recorded: still publishing, no end, nothing published.
        self.assertEqual(self.runs("d")[0]["run_id"], run["run_id"])
        self.assertEqual(self.runs("d")[0]["status"], "publishing")
        self.assertIsNone(self.runs("d")[0]["finished_at"])
        self.assertEqual(self.store.full_rows("d"), before)

        self.atomsync("run", check=OK)
        runs = {r["run_id"]: r for r in self.runs("d")}
        lost = runs[run["run_id"]]
        self.assertEqual(lost["status"], "failed")
        self.assertTrue(lost["error"].startswith(INTERRUPTED), lost["error"])
        self.assertIsNotNone(lost["finished_at"])
        last = self.runs("d")[0]
        self.assertGreater(last["run_id"], run["run_id"])
        self.assertEqual(last["status"], "completed")
        self.assertEqual((last["inserted"], last["updated"], last["deleted"]),
                         (50, 300, 0))
        self.assertEqual(self.store.rows("d", COLS), reference_rows(new, COLS))
        self.assertEqual(self.store.integrity(), "ok")


if __name__ == "__main__":
    unittest.main()
