"""The incremental cursor moves only with the data behind it (invariant 8).

The cursor is the maximum of the cursor column over everything published,
saved in atomsync_state in the publish transaction; `status --json` shows
it; an exec source receives it through {cursor}.  A run that fails, is
killed or is turned away by the lease leaves it exactly as it was.
"""

import datetime
import json
import os
import signal
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from atomsync_test import (FIXTURES, OK, FAILED, StoreTestCase,  # noqa: E402
                           for_each_store, reference_rows, spawn, write_jsonl)

TAP = os.path.join(FIXTURES, "tap.py")
COLS = ["id", "name", "updated"]
CONFIG = """
store: {store}
datasets:
  d:
    mode: incremental
    key: [id]
    cursor: updated
    batch_size: 100
    columns:
      id: {type: integer}
      name: {type: text}
      updated: {type: %s}
    source:
%s
"""
FILE_SRC = "      file: in.jsonl"
EXEC_SRC = ('      exec: "%s %s --records {dir}/recs.jsonl --format jsonl '
            '--since {cursor} --since-field updated --log {dir}/tap.log"'
            % (sys.executable, TAP))


def recs(ids, stamp, tag="v"):
    return [{"id": i, "name": "%s%d" % (tag, i), "updated": stamp + i} for i in ids]


@for_each_store
class CursorTest(StoreTestCase):

    def cursor(self):
        return self.status()["d"]["cursor"]

    def instant(self):
        """The saved timestamp cursor as an instant (stores may spell the
        same UTC instant with or without trailing zero microseconds)."""
        c = self.cursor()
        return datetime.datetime.fromisoformat(c.replace("Z", "+00:00")).isoformat()

    def test_cursor_is_max_and_never_goes_back(self):
        """Invariant 8: the cursor is the maximum published so far; a later
        run with older records upserts them without moving it back."""
        self.config(CONFIG % ("integer", FILE_SRC))
        self.assertIsNone(self.cursor())
        first = recs(range(1, 301), 1000)
        write_jsonl(self.path("in.jsonl"), first)
        self.atomsync("run", check=OK)
        self.assertEqual(self.cursor(), "1300")
        older = recs(range(1, 51), 500, "old")          # updated 501..550
        write_jsonl(self.path("in.jsonl"), older)
        self.atomsync("run", check=OK)
        self.assertEqual(self.cursor(), "1300")
        r = self.runs("d")[0]
        self.assertEqual((r["updated"], r["deleted"], r["inserted"]), (50, 0, 0))
        self.assertEqual(self.store.rows("d", COLS),
                         reference_rows(first + older, COLS))
        newer = recs(range(290, 321), 2000)
        write_jsonl(self.path("in.jsonl"), newer)
        self.atomsync("run", check=OK)
        self.assertEqual(self.cursor(), "2320")
        self.assertEqual(self.store.rows("d", COLS),
                         reference_rows(first + older + newer, COLS))
        # An empty incremental delivery is fine and keeps the cursor.
        write_jsonl(self.path("in.jsonl"), [])
        self.atomsync("run", check=OK)
        self.assertEqual(self.cursor(), "2320")

    def test_failed_run_keeps_cursor(self):
        """Invariant 8: a run that fails after staging newer records (a bad
        record at the end) leaves the cursor and the table as they were."""
        self.config(CONFIG % ("integer", FILE_SRC))
        write_jsonl(self.path("in.jsonl"), recs(range(1, 101), 1000))
        self.atomsync("run", check=OK)
        before = self.store.full_rows("d")
        with open(self.path("in.jsonl"), "w") as f:
            for r in recs(range(50, 2051), 90000):
                f.write(json.dumps(r) + "\n")
            f.write('{"id": 9999, "updated": "not a number"}\n')
        p = self.atomsync("run")
        self.assertEqual(p.returncode, FAILED, p.stderr)
        self.assertIn("in.jsonl:2002", p.stderr)
        self.assertEqual(self.cursor(), "1100")
        self.assertEqual(self.store.full_rows("d"), before)
        self.assertTrue(self.status()["d"]["resumable"])

    def test_killed_run_keeps_cursor(self):
        """Invariant 8: a run killed with staged newer records (kill -9)
        leaves the cursor; the resumed run then moves it with its publish."""
        self.config(CONFIG % ("integer", EXEC_SRC.replace("--format jsonl",
                                                          "--format singer --state {state} "
                                                          "--state-every 50")
                                      + "\n      format: singer"))
        write_jsonl(self.path("recs.jsonl"), recs(range(1, 101), 1000))
        self.atomsync("run", check=OK)
        self.assertEqual(self.cursor(), "1100")
        before = self.store.full_rows("d")
        write_jsonl(self.path("recs.jsonl"), recs(range(1, 101), 1000) +
                    recs(range(101, 1001), 5000))
        p = spawn(["run"], cwd=self.dir, env={"TAP_ARGS": "--sleep 0.002"})
        end = time.monotonic() + 30
        while not self.status()["d"]["resumable"] and time.monotonic() < end:
            time.sleep(0.02)
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
        p.stderr.close()
        self.assertTrue(self.status()["d"]["resumable"], "no staging commit in 30 s")
        self.assertEqual(self.cursor(), "1100")
        self.assertEqual(self.store.full_rows("d"), before)
        self.atomsync("run", check=OK)
        self.assertEqual(self.cursor(), "6000")
        self.assertIsNotNone(self.runs("d")[0]["resumed_from"])

    def test_exec_gets_cursor(self):
        """Invariant 8: an exec source receives the saved cursor through
        {cursor}; a failed exec run leaves it unchanged."""
        self.config(CONFIG % ("integer", EXEC_SRC))
        all_recs = recs(range(1, 201), 1000)
        write_jsonl(self.path("recs.jsonl"), all_recs)
        self.atomsync("run", check=OK)
        self.assertEqual(self.cursor(), "1200")
        more = all_recs + recs(range(150, 251), 3000)
        write_jsonl(self.path("recs.jsonl"), more)
        # A failing command: nothing moves.
        before = self.store.full_rows("d")
        p = self.atomsync("run", env={"TAP_ARGS": "--fail-at 280"})
        self.assertEqual(p.returncode, FAILED, p.stderr)
        self.assertEqual(self.cursor(), "1200")
        self.assertEqual(self.store.full_rows("d"), before)
        # The next run gets 1200 and delivers only the newer records.
        self.atomsync("run", check=OK)
        with open(self.path("tap.log")) as f:
            seen = [json.loads(l)["since"] for l in f]
        self.assertEqual(seen, ["", "1200", "1200"])
        r = self.runs("d")[0]
        self.assertEqual((r["seen"], r["inserted"], r["updated"]), (101, 50, 51))
        self.assertEqual(self.cursor(), "3250")
        self.assertEqual(self.store.rows("d", COLS), reference_rows(more, COLS))

    def test_timestamp_cursor(self):
        """Invariant 8: a timestamp cursor is compared as time (offsets are
        normalized to UTC) and shown by status --json."""
        self.config(CONFIG % ("timestamp", FILE_SRC))
        rows = [{"id": 1, "name": "a", "updated": "2026-01-09T23:00:00Z"},
                {"id": 2, "name": "b", "updated": "2026-01-10T09:30:00Z"},
                # 10:00 at +02:00 is 08:00Z: earlier than record 2.
                {"id": 3, "name": "c", "updated": "2026-01-10T10:00:00+02:00"}]
        write_jsonl(self.path("in.jsonl"), rows)
        self.atomsync("run", check=OK)
        self.assertEqual(self.instant(), "2026-01-10T09:30:00+00:00")
        # Sub-second precision orders as time too: .25 s after 11:00:00.
        write_jsonl(self.path("in.jsonl"),
                    [{"id": 4, "name": "d", "updated": "2026-01-10T11:00:00.25Z"},
                     {"id": 5, "name": "e", "updated": "2026-01-10T12:00:00+01:00"}])
        self.atomsync("run", check=OK)
        self.assertEqual(self.instant(), "2026-01-10T11:00:00.250000+00:00")


if __name__ == "__main__":
    import unittest
    unittest.main()
