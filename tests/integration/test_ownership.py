"""A table belongs to its dataset (docs/config.md, share_table): a dataset
of another config that names the same table is refused before it stages
anything, so it cannot delete the owner's rows (invariants 2, 3); scoped
datasets may share a table deliberately and then fill disjoint scopes."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from atomsync_test import (OK, USAGE, StoreTestCase, for_each_store,  # noqa: E402
                           write_jsonl)

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
