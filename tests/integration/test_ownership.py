"""A table belongs to its dataset (docs/config.md, share_table): a dataset
of another config that names the same table is refused before it stages
anything, so it cannot delete the owner's rows (invariants 2, 3); scoped
datasets may share a table deliberately and then fill disjoint scopes."""

import os
import signal
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from atomsync_test import (LEASED, OK, USAGE, StoreTestCase,  # noqa: E402
                           for_each_store, proc_state, spawn, write_jsonl)

FULL = """
store: {store}
datasets:
  %s:
    table: shared
    key: [id]
    columns:
      id: {type: integer}
      name: {type: text}
    source:
      file: %s
"""

SCOPED = """
store: {store}
datasets:
  %s:
    table: cal
    mode: scoped
    scope: [user_id]
    batch_size: 10
%s    key: [user_id, calendar_id]
    columns:
      user_id: {type: integer}
      calendar_id: {type: integer}
    source:
      file: %s
"""


@for_each_store
class OwnershipTest(StoreTestCase):

    def test_other_dataset_refused(self):
        a = self.config(FULL % ("d1", "a.jsonl"), "a.yml")
        b = self.config(FULL % ("d2", "b.jsonl"), "b.yml")
        write_jsonl(self.path("a.jsonl"), [{"id": i, "name": "a%d" % i} for i in range(50)])
        write_jsonl(self.path("b.jsonl"), [{"id": 1000, "name": "b"}])
        self.atomsync("-c", a, "run", check=OK)
        before = self.store.full_rows("shared")
        p = self.atomsync("-c", b, "run", "--allow-deletes")
        self.assertEqual(p.returncode, USAGE, p.stderr)
        lines = [l for l in p.stderr.splitlines() if l.startswith("atomsync:")]
        self.assertEqual(len(lines), 1, p.stderr)
        self.assertIn("table shared belongs to dataset d1", lines[0])
        self.assertEqual(self.store.full_rows("shared"), before)
        # Nothing left behind: no staging table of d2.
        self.assertFalse([t for t in self.store.tables() if t.startswith("_atomsync_stage")],
                         self.store.tables())
        # The owner keeps running.
        self.atomsync("-c", a, "run", check=OK)
        self.assertEqual(self.store.full_rows("shared"), before)

    def test_scoped_share_needs_consent(self):
        a = self.config(SCOPED % ("u1", "", "a.jsonl"), "a.yml")
        b = self.config(SCOPED % ("u2", "", "b.jsonl"), "b.yml")
        write_jsonl(self.path("a.jsonl"), [{"user_id": 1, "calendar_id": i} for i in range(3)])
        write_jsonl(self.path("b.jsonl"), [{"user_id": 2, "calendar_id": i} for i in range(4)])
        self.atomsync("-c", a, "run", check=OK)
        p = self.atomsync("-c", b, "run")
        self.assertEqual(p.returncode, USAGE, p.stderr)
        self.assertIn("set share_table: true", p.stderr)
        # With share_table both fill their own scopes of one table.
        b = self.config(SCOPED % ("u2", "    share_table: true\n", "b.jsonl"), "b.yml")
        self.atomsync("-c", b, "run", check=OK)
        rows = self.store.rows("cal", ["user_id", "calendar_id"])
        self.assertEqual(sorted(rows), [(1, i) for i in range(3)] + [(2, i) for i in range(4)])
        # u2 replacing its scope leaves u1's rows alone.
        write_jsonl(self.path("b.jsonl"), [{"user_id": 2, "calendar_id": 9}])
        self.atomsync("-c", b, "run", "--allow-deletes", check=OK)
        rows = self.store.rows("cal", ["user_id", "calendar_id"])
        self.assertEqual(sorted(rows), [(1, i) for i in range(3)] + [(2, 9)])

    def test_shared_table_has_one_lease(self):
        """Invariant 6: scoped datasets sharing a table (from two config
        files) run under the table's one lease: while u1 runs, u2 exits 4
        naming the holder, and status shows both as running; a u1 paused
        past its lease_ttl is taken over by u2, and u1, continued, is fenced
        and publishes nothing."""
        def config_u1(ttl):
            return self.config(SCOPED % ("u1", "    share_table: true\n    lease_ttl: %s\n"
                                         % ttl, "a.jsonl"), "a.yml")
        a = config_u1("60s")
        b = self.config(SCOPED % ("u2", "    share_table: true\n", "b.jsonl"), "b.yml")
        write_jsonl(self.path("a.jsonl"), [{"user_id": 1, "calendar_id": i} for i in range(3)])
        write_jsonl(self.path("b.jsonl"), [{"user_id": 2, "calendar_id": i} for i in range(3)])
        self.atomsync("-c", a, "run", check=OK)
        self.atomsync("-c", b, "run", check=OK)
        before = sorted(self.store.rows("cal", ["user_id", "calendar_id"]))
        write_jsonl(self.path("a.jsonl"), [{"user_id": 1, "calendar_id": 100 + i}
                                           for i in range(40)])
        write_jsonl(self.path("b.jsonl"), [{"user_id": 2, "calendar_id": 7}])
        # u1 stopped inside its run, after a staging commit, within its
        # lease: u2 is turned away, naming the table's lease.
        w = self.stopped_run(a)
        try:
            p = self.atomsync("-c", b, "run")
            self.assertEqual(p.returncode, LEASED, p.stderr)
            self.assertIn("dataset u2: every scoped dataset of table cal", p.stderr)
            self.assertIn("table cal is being run by", p.stderr)
            st = {d["dataset"]: d for d in self.status_of(b)}
            self.assertTrue(st["u2"]["lease"], st)
        finally:
            w.kill()
            w.wait()
            w.stderr.close()
        self.assertEqual(sorted(self.store.rows("cal", ["user_id", "calendar_id"])), before)
        # Paused past its lease_ttl: u2 takes the table over, and u1,
        # continued, is fenced.
        a = config_u1("1s")
        w = self.stopped_run(a)
        try:
            time.sleep(1.5)
            self.atomsync("-c", b, "run", check=OK)
        finally:
            os.kill(w.pid, signal.SIGCONT)
        self.assertEqual(w.wait(timeout=60), LEASED)
        err = w.stderr.read()
        w.stderr.close()
        self.assertIn("this worker's lease", err)
        self.assertIn("taken over", err)
        rows = sorted(self.store.rows("cal", ["user_id", "calendar_id"]))
        self.assertEqual([r for r in rows if r[0] == 1], [r for r in before if r[0] == 1])
        self.assertEqual([r for r in rows if r[0] == 2], [(2, 7)])
        # u1 again: it publishes its scope now.
        self.atomsync("-c", a, "run", check=OK)
        rows = sorted(self.store.rows("cal", ["user_id", "calendar_id"]))
        self.assertEqual([r for r in rows if r[0] == 1], [(1, 100 + i) for i in range(40)])

    def stopped_run(self, cfg):
        """A run of cfg stopped (SIGSTOP) after its first staging commit."""
        w = spawn(["-c", cfg, "run", "--restart"], cwd=self.dir,
                  env={"ATOMSYNC_CRASH": "stage.committed:1",
                       "ATOMSYNC_CRASH_ACTION": "stop"})
        deadline = time.monotonic() + 30
        while proc_state(w.pid) != "T" and time.monotonic() < deadline:
            time.sleep(0.02)
        if proc_state(w.pid) != "T":
            w.wait()
            self.fail("the run did not stop: exit %s: %s" % (w.returncode, w.stderr.read()))
        return w

    def status_of(self, cfg):
        import json
        p = self.atomsync("-c", cfg, "status", "--json", check=OK)
        return json.loads(p.stdout)

    def test_share_table_needs_scoped(self):
        self.config(FULL.replace("    table: shared\n", "    table: shared\n    share_table: true\n")
                    % ("d1", "a.jsonl"))
        write_jsonl(self.path("a.jsonl"), [{"id": 1, "name": "a"}])
        p = self.atomsync("run")
        self.assertEqual(p.returncode, USAGE, p.stderr)
        self.assertIn("'share_table'", p.stderr)
        self.assertIn("only valid with mode: scoped", p.stderr)
        self.assertIn("atomsync.yml:", p.stderr)


if __name__ == "__main__":
    import unittest
    unittest.main()
