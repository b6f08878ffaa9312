"""Schema evolution under faults (issue 14), on SQLite and PostgreSQL.

A run delivers a field the live table has no column for, first seen past
the first staging commit.  The staging gains the column in the batch
transaction that first holds it (crash point stage.alter), the live table
in the publish transaction (publish.altered).  Each pass of those points
and of the points around them is crashed (ATOMSYNC_CRASH=point:N), and a
run is killed with SIGKILL after the column reached the staging.  After
each: the live table's rows AND columns are exactly the old ones
(invariants 1, 2), and the next plain run resumes (invariant 4) and
publishes the column with every row as an uninterrupted run would.
"""

import collections
import os
import signal
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from atomsync_test import (CRASH_EXIT, OK, StoreTestCase,  # noqa: E402
                           for_each_store, make_store, spawn, write_jsonl)

POINTS = ["stage.begin", "stage.alter", "stage.committed", "publish.begin",
          "publish.altered", "publish.before_commit"]

CONFIG = """
store: {store}
datasets:
  d:
    table: items
    key: [id]
    batch_size: 300
    history: scd2
    source:
      file: in.jsonl
"""

OLD = [{"id": i, "v": i} for i in range(1, 1201)]
NEW = [dict(r, v=r["v"] + (1 if r["id"] % 7 == 0 else 0)) for r in OLD]
for _r in NEW[1100:]:
    _r["extra"] = "e%d" % _r["id"]
for _r in NEW[500:]:
    _r["stats"] = {"n": _r["id"]}


def user_cols(store):
    if store.name == "sqlite":
        rows = store.query("SELECT name, type FROM pragma_table_info('items')")
    else:
        rows = store.columns("items")
    return sorted(n for n, _ in rows if not n.startswith("_atomsync"))


@for_each_store
class SchemaFaultTest(StoreTestCase):
    def fresh(self):
        self.store.cleanup()
        if self.store_name == "sqlite":
            for suffix in ("", "-wal", "-shm"):
                if os.path.exists(self.store.path + suffix):
                    os.unlink(self.store.path + suffix)
        self.store = make_store(self.store_name, self.dir)
        self.config(CONFIG)
        write_jsonl(self.path("in.jsonl"), OLD)
        self.atomsync("run", check=OK)
        write_jsonl(self.path("in.jsonl"), NEW)

    def state(self):
        return (user_cols(self.store), self.store.full_rows("items"))

    def test_crash_sweep_around_alter(self):
        """Invariants 1, 2, 4 at every pass of the points around the
        ALTERs."""
        self.fresh()
        old_state = self.state()
        log = self.path("crash.log")
        self.atomsync("run", env={"ATOMSYNC_CRASH_LOG": log}, check=OK)
        with open(log) as f:
            passes = collections.Counter(line.strip() for line in f)
        new_state = self.state()
        self.assertEqual(new_state[0], ["extra", "id", "stats__n", "v"])
        for p in POINTS:
            self.assertGreaterEqual(passes[p], 1, (p, dict(passes)))
        # one staging batch gains stats__n, a later one extra
        self.assertEqual(passes["stage.alter"], 2, dict(passes))
        for point in POINTS:
            for n in range(1, passes[point] + 1):
                with self.subTest(point=point, n=n):
                    self.fresh()
                    p = self.atomsync("run", env={"ATOMSYNC_CRASH":
                                                  "%s:%d" % (point, n)})
                    self.assertEqual(p.returncode, CRASH_EXIT, p.stderr)
                    self.assertEqual(self.state(), old_state)
                    self.atomsync("run", check=OK)
                    self.assertEqual(user_cols(self.store), new_state[0])
                    self.assertEqual(self.store.rows("items", new_state[0]),
                                     self.expected_rows(new_state[0]))
                    last = self.runs("d")[0]
                    self.assertEqual(sorted(last["columns_added"]),
                                     ["extra", "stats__n"])

    def expected_rows(self, cols):
        out = []
        for r in NEW:
            flat = dict(r)
            if "stats" in flat:
                flat["stats__n"] = flat.pop("stats")["n"]
            out.append(tuple(flat.get(c) for c in cols))
        return sorted(out, key=lambda t: t[cols.index("id")])

    def test_kill9_with_new_column(self):
        """SIGKILL after the new column reached the staging: the live table
        keeps its rows and columns; the next run resumes and publishes
        the column."""
        self.fresh()
        old_state = self.state()
        log = self.path("crash.log")
        proc = spawn(["run"], cwd=self.dir,
                     env={"ATOMSYNC_CRASH_LOG": log,
                          "ATOMSYNC_PAUSE": "stage.committed:400"})
        deadline = time.time() + 60
        while time.time() < deadline:
            if os.path.exists(log):
                with open(log) as f:
                    seen = [line.strip() for line in f]
                if "stage.alter" in seen and seen[-1] == "stage.committed":
                    break
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        self.assertIn("stage.alter", seen)
        self.assertEqual(self.state(), old_state)
        self.atomsync("run", check=OK)
        cols = user_cols(self.store)
        self.assertEqual(cols, ["extra", "id", "stats__n", "v"])
        self.assertEqual(self.store.rows("items", cols), self.expected_rows(cols))
        runs = self.runs("d")
        self.assertEqual(runs[0]["resumed_from"], runs[1]["run_id"])
        self.assertEqual(sorted(runs[0]["columns_added"]), ["extra", "stats__n"])


if __name__ == "__main__":
    unittest.main()
