"""Unchanged lines skip parsing: a JSON line whose exact bytes were
published before (its 128-bit hash is kept in _atomsync_line) is known
valid and unchanged.  These tests check that the shortcut never changes a
result (invariants 5 and 10: the table and the counts equal those of a run
that parses everything) and that it is taken when it should be.  The
matching itself is a SQLite store feature (`matched` is 0 on PostgreSQL)."""

import json
import os
import random
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from atomsync_test import (OK, StoreTestCase, for_each_store,  # noqa: E402
                           make_records, reference_rows, write_jsonl)

CONFIG = """
store: {store}
datasets:
  addons:
    key: [id]
    columns:
      id: {type: integer}
      name: {type: text, path: NAMEPATH}
      downloads: {type: integer}
    source:
      file: in.jsonl
"""
COLS = ["id", "name", "downloads"]


@for_each_store
class LineMatchTest(StoreTestCase):

    def setUp(self):
        super().setUp()
        self.config(CONFIG.replace("NAMEPATH", "name"))

    def sync(self, records=None, text=None, check=OK):
        if text is None:
            write_jsonl(self.path("in.jsonl"), records)
        else:
            with open(self.path("in.jsonl"), "w") as f:
                f.write(text)
        p = self.atomsync("-v", "run", check=check)
        m = re.search(r"addons: ([\d,]+) of ([\d,]+) records matched", p.stderr)
        matched = int(m.group(1).replace(",", "")) if m else 0
        return p, matched, self.runs("addons")[0]

    def counts(self, r):
        return {k: r[k] for k in ("seen", "inserted", "updated", "unchanged",
                                  "deleted", "duplicates")}

    def test_sorted_changes(self):
        """Invariants 5 and 10: 1% changed, 0.5% deleted, 0.5% new; every
        unchanged line is matched, the counts and rows are exact."""
        old = make_records(2000)
        self.sync(old)
        new = [dict(r) for r in old if r["id"] % 200 != 0]             # 10 deleted
        for r in new:
            if r["id"] % 100 == 1:
                r["downloads"] += 1                                     # 20 changed
        new += make_records(10, start=5000)                             # 10 new
        _, matched, r = self.sync(new)
        self.assertEqual(self.counts(r), {"seen": 2000, "inserted": 10, "updated": 20,
                                          "unchanged": 1970, "deleted": 10,
                                          "duplicates": 0})
        self.assertEqual(self.store.rows("addons", COLS), reference_rows(new, COLS))
        if self.store_name == "sqlite":
            self.assertEqual(matched, 1970)

    def test_shuffled_input_same_result(self):
        """Invariant 5: the same records in another order change nothing,
        whether or not lines can be matched."""
        old = make_records(3000)
        self.sync(old)
        before = self.store.full_rows("addons")
        shuffled = list(old)
        random.Random(7).shuffle(shuffled)
        _, matched, r = self.sync(shuffled)
        self.assertEqual((r["inserted"], r["updated"], r["deleted"], r["unchanged"]),
                         (0, 0, 0, 3000))
        self.assertEqual(self.store.full_rows("addons"), before)
        self.assertLess(matched, 3000)

    def test_same_content_other_bytes(self):
        """Invariant 5: a line re-serialized with other whitespace and key
        order is parsed (its bytes are new) and found unchanged: no row is
        rewritten."""
        old = make_records(500)
        self.sync(old)
        before = self.store.full_rows("addons")
        text = "".join(json.dumps(dict(reversed(list(r.items())))) + "\n" for r in old)
        _, matched, r = self.sync(text=text)
        self.assertEqual(matched, 0)
        self.assertEqual((r["updated"], r["unchanged"]), (0, 500))
        self.assertEqual(self.store.full_rows("addons"), before)

    def test_mapping_change_matches_nothing(self):
        """A changed mapping gives every line a new hash: nothing is taken
        as unchanged on the strength of the old mapping."""
        old = make_records(300)
        for r in old:
            r["title"] = "T" + r["name"]
        self.sync(old)
        self.config(CONFIG.replace("NAMEPATH", "title"))
        _, matched, r = self.sync(old)
        self.assertEqual(matched, 0)
        self.assertEqual(r["updated"], 300)
        self.assertEqual(self.store.rows("addons", ["id", "name"]),
                         [(x["id"], x["title"]) for x in old])

    def test_duplicate_and_bad_lines_still_checked(self):
        """Invariants 9 and 10: a repeated published line is a duplicate; a
        bad line among matched ones still fails the run and changes nothing."""
        old = make_records(400)
        self.sync(old)
        lines = [json.dumps(r, separators=(",", ":")) for r in old]
        dup = lines[:200] + [lines[150]] + lines[200:]
        _, matched, r = self.sync(text="\n".join(dup) + "\n")
        self.assertEqual((r["seen"], r["duplicates"], r["unchanged"]), (401, 1, 400))
        before = self.store.full_rows("addons")
        bad = lines[:300] + ['{"id": 301, "name": "x",}'] + lines[301:]
        p, _, r = self.sync(text="\n".join(bad) + "\n", check=1)
        self.assertIn("in.jsonl:301:", p.stderr)
        self.assertEqual(r["status"], "failed")
        self.assertEqual(self.store.full_rows("addons"), before)


if __name__ == "__main__":
    import unittest
    unittest.main()
