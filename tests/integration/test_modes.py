"""The four modes of DESIGN.md and duplicate keys within a run.

full: upsert changed rows, delete what was not delivered (invariant 3
within the guard).  incremental: upsert, never delete, keep the cursor's
maximum (invariant 8).  scoped: replace exactly the scopes delivered or
named, other scopes untouched byte for byte (invariants 1, 2).  append:
insert new keys, ignore known identical ones, reject a different record
under a known key (invariant 9).  Counts on record (invariant 10).
"""

import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from atomsync_test import (OK, FAILED, USAGE, StoreTestCase,  # noqa: E402
                           for_each_store, make_records, reference_rows, write_jsonl)

COLS = ["id", "name", "downloads", "score"]


def cfg(mode, extra="", cols=None, key="[id]"):
    cols = cols or {"id": "integer", "name": "text", "downloads": "integer",
                    "score": "real"}
    return """
store: {store}
datasets:
  d:
    mode: %s
    key: %s
%s    columns:
%s    source:
      file: in.jsonl
""" % (mode, key, extra, "".join("      %s: {type: %s}\n" % kv for kv in cols.items()))


def by_id(rows):
    return {r[0]: r for r in rows}


@for_each_store
class ModesTest(StoreTestCase):

    def run_with(self, recs, *args, check=OK):
        write_jsonl(self.path("in.jsonl"), recs)
        p = self.atomsync("run", *args, check=check)
        return p, self.runs("d")[0]

    def full(self):
        """Every column of every row, in one order on every store (full_rows
        orders by the first column only; append keys are two columns)."""
        return sorted(self.store.full_rows("d"), key=repr)

    def counts(self, r):
        return {k: r[k] for k in ("seen", "inserted", "updated", "unchanged", "deleted",
                                  "duplicates")}

    def test_full(self):
        """full: changed rows upserted, unchanged rows not rewritten,
        undelivered rows deleted; exact counts (invariants 3, 5, 10)."""
        self.config(cfg("full"))
        old = make_records(1000)
        self.run_with(old)
        first = by_id(self.store.full_rows("d"))
        new = [dict(r) for r in old if r["id"] % 4 != 0]        # 250 deleted
        for r in new:
            if r["id"] % 3 == 0:
                r["score"] = r["score"] + 1                      # updated
        new += make_records(10, start=2001)                      # inserted
        _, r = self.run_with(new)
        upd = len([x for x in new if x["id"] % 3 == 0 and x["id"] <= 1000])
        self.assertEqual(self.counts(r), {"seen": 760, "inserted": 10, "updated": upd,
                                          "unchanged": 750 - upd, "deleted": 250,
                                          "duplicates": 0})
        self.assertEqual(self.store.rows("d", COLS), reference_rows(new, COLS))
        # Unchanged rows keep the run that last changed them.
        now = by_id(self.store.full_rows("d"))
        for i, row in now.items():
            if i <= 1000 and i % 3 != 0:
                self.assertEqual(row, first[i])
            else:
                # _atomsync_run, then _atomsync_hash and _atomsync_line
                self.assertEqual(row[-3], r["run_id"])

    def test_incremental(self):
        """incremental: upsert, no deletes, the cursor keeps the maximum."""
        self.config(cfg("incremental", "    cursor: downloads\n"))
        old = make_records(500)
        self.run_with(old)
        changed = [dict(r, name=r["name"] + "*") for r in old[:20]]
        added = make_records(30, start=1001)
        _, r = self.run_with(changed + added)
        self.assertEqual(self.counts(r), {"seen": 50, "inserted": 30, "updated": 20,
                                          "unchanged": 0, "deleted": 0, "duplicates": 0})
        self.assertEqual(self.store.rows("d", COLS),
                         reference_rows(old + changed + added, COLS))
        self.assertEqual(self.status()["d"]["cursor"],
                         str(max(x["downloads"] for x in old + changed + added)))

    # ---- scoped ----

    SCOPED = {"id": "integer", "user_id": "integer", "title": "text"}

    def events(self, users, per=10, tag="t"):
        return [{"id": u * 1000 + i, "user_id": u, "title": "%s %d/%d" % (tag, u, i)}
                for u in users for i in range(per)]

    def test_scoped_replaces_delivered_scopes(self):
        """scoped: exactly the delivered scopes are replaced; rows of other
        scopes are byte-identical (invariants 1, 2)."""
        self.config(cfg("scoped", "    scope: [user_id]\n", self.SCOPED))
        self.run_with(self.events(range(1, 6)))
        before = by_id(self.store.full_rows("d"))
        # User 2: 3 of 10 gone, 1 changed, 2 new.  User 4: unchanged.
        u2 = [e for e in self.events([2]) if e["id"] % 10 not in (0, 1, 2)]
        u2[0]["title"] = "changed"
        u2 += [{"id": 2900 + i, "user_id": 2, "title": "new"} for i in range(2)]
        _, r = self.run_with(u2 + self.events([4]))
        self.assertEqual(self.counts(r), {"seen": 19, "inserted": 2, "updated": 1,
                                          "unchanged": 16, "deleted": 3, "duplicates": 0})
        after = by_id(self.store.full_rows("d"))
        for i, row in before.items():
            if row[1] != 2:
                self.assertEqual(after[i], row)
        self.assertEqual(sorted(i for i, row in after.items() if row[1] == 2),
                         sorted(e["id"] for e in u2))
        self.assertEqual(len(after), 50 - 3 + 2)

    def test_scoped_named_scope_without_records(self):
        """scoped: --scope COL=VALUE with no records for it empties that
        scope (the source said: this user has nothing now)."""
        self.config(cfg("scoped", "    scope: [user_id]\n", self.SCOPED))
        self.run_with(self.events(range(1, 4)))
        before = by_id(self.store.full_rows("d"))
        # Named alone, empty delivery: user 3 emptied, others untouched.
        _, r = self.run_with([], "--scope", "user_id=3")
        self.assertEqual((r["deleted"], r["status"]), (10, "completed"))
        after = by_id(self.store.full_rows("d"))
        self.assertEqual(after, {i: row for i, row in before.items() if row[1] != 3})
        # Named next to delivered records of another scope.
        _, r = self.run_with(self.events([1], per=4), "--scope", "user_id=2",
                             "--allow-deletes")
        self.assertEqual((r["deleted"], r["unchanged"]), (6 + 10, 4))
        self.assertEqual(sorted(row[1] for row in self.store.full_rows("d")), [1] * 4)
        # A scope that never existed: nothing to do, fine.
        _, r = self.run_with([], "--scope", "user_id=77")
        self.assertEqual(r["deleted"], 0)
        # Usage errors: not a scope column, not an integer.
        self.assertEqual(self.run_with([], "--scope", "title=x", check=None)[0].returncode,
                         USAGE)
        self.assertEqual(self.run_with([], "--scope", "user_id=abc",
                                       check=None)[0].returncode, USAGE)

    def test_scoped_record_without_scope(self):
        """scoped: a record without a value for its scope column belongs to
        no scope and could never be replaced: it is named and rejected
        (invariant 9); nothing is published."""
        self.config(cfg("scoped", "    scope: [user_id]\n", self.SCOPED))
        self.run_with(self.events(range(1, 3)))
        before = self.store.full_rows("d")
        recs = self.events([1]) + [{"id": 5, "title": "no user"}]
        p, r = self.run_with(recs, check=FAILED)
        self.assertIn("in.jsonl:11: missing scope column 'user_id'", p.stderr)
        self.assertEqual(self.store.full_rows("d"), before)
        recs[-1]["user_id"] = None
        p, r = self.run_with(recs, check=FAILED)
        self.assertIn("in.jsonl:11: missing scope column 'user_id'", p.stderr)

    def test_scoped_multi_column(self):
        """scoped with two scope columns: a scope is the pair, so (a, 1)
        is replaced and (b, 1) and (a, 2) are not."""
        cols = {"id": "integer", "tenant": "text", "user_id": "integer", "title": "text"}
        self.config(cfg("scoped", "    scope: [tenant, user_id]\n", cols))
        recs = [{"id": n, "tenant": t, "user_id": u, "title": "x%d" % n}
                for n, (t, u) in enumerate([(t, u) for t in "ab" for u in (1, 2)] * 5)]
        self.run_with(recs)
        before = by_id(self.store.full_rows("d"))
        a1 = [r for r in recs if (r["tenant"], r["user_id"]) == ("a", 1)]
        _, r = self.run_with(a1[:3])
        self.assertEqual(r["deleted"], 2)
        after = by_id(self.store.full_rows("d"))
        self.assertEqual(set(before) - set(after), {x["id"] for x in a1[3:]})
        for i in after:
            self.assertEqual(after[i], before[i])
        # Both columns named: (b, 2) emptied, nothing else.
        _, r = self.run_with([], "--scope", "tenant=b", "--scope", "user_id=2")
        self.assertEqual(r["deleted"], 5)
        left = self.store.rows("d", ["id", "tenant", "user_id"])
        self.assertNotIn(("b", 2), {(x[1], x[2]) for x in left})
        self.assertEqual(len(left), 20 - 2 - 5)
        # Half a scope is a usage error.
        p, _ = self.run_with([], "--scope", "tenant=b", check=None)
        self.assertEqual(p.returncode, USAGE)

    def test_scope_option_on_other_modes(self):
        """--scope applies to scoped datasets only (exit 2)."""
        self.config(cfg("full"))
        p, _ = self.run_with(make_records(3), "--scope", "id=1", check=None)
        self.assertEqual(p.returncode, USAGE)
        self.assertIn("scoped", p.stderr)

    # ---- append ----

    APPEND = {"tx_hash": "text", "log_index": "integer", "amount": "integer"}

    def tx(self, n, start=0, amount=1):
        return [{"tx_hash": "0x%08x" % (i // 3), "log_index": i % 3, "amount": i * amount}
                for i in range(start, start + n)]

    def test_append(self):
        """append: new keys inserted, known identical records ignored, known
        rows never rewritten (invariants 5, 10)."""
        self.config(cfg("append", "", self.APPEND, "[tx_hash, log_index]"))
        first = self.tx(300)
        self.run_with(first)
        before = self.full()
        replay = first + self.tx(60, start=300) + first[:5]   # 5 repeats in-run
        _, r = self.run_with(replay)
        self.assertEqual(self.counts(r), {"seen": 365, "inserted": 60, "updated": 0,
                                          "unchanged": 300, "deleted": 0, "duplicates": 5})
        after = self.full()
        self.assertEqual(len(after), 360)
        old_keys = {(x[0], x[1]) for x in before}
        self.assertEqual([x for x in after if (x[0], x[1]) in old_keys], before)
        # Delivering a subset deletes nothing.
        _, r = self.run_with(first[:10])
        self.assertEqual((r["deleted"], r["unchanged"]), (0, 10))
        self.assertEqual(len(self.full()), 360)

    def test_append_conflict_is_reject(self):
        """append: a different record under a known key is a reject named by
        file:line (invariant 9): by default the run fails and nothing is
        published; with max_rejects it goes to the reject file."""
        self.config(cfg("append", "", self.APPEND, "[tx_hash, log_index]"))
        first = self.tx(30)
        self.run_with(first)
        before = self.full()
        bad = self.tx(10, start=30) + [dict(first[7], amount=999)]
        p, r = self.run_with(bad, check=FAILED)
        own = [l for l in p.stderr.splitlines() if l.startswith("atomsync:")]
        self.assertEqual(len(own), 1, p.stderr)
        self.assertIn("in.jsonl:11", own[0])
        self.assertIn("append mode: a different record under a key that is already known",
                      own[0])
        self.assertEqual(self.full(), before)
        self.assertEqual(r["status"], "failed")
        # Within one run: the second, different record of a key conflicts.
        inrun = self.tx(5, start=100) + [dict(self.tx(1, start=101)[0], amount=-1)]
        p, _ = self.run_with(inrun, check=FAILED)
        self.assertIn("in.jsonl:6", p.stderr)
        self.assertEqual(self.full(), before)
        # Allowed rejects: the conflicting record is set aside, the rest lands.
        self.config(cfg("append", "    guard: {max_rejects: 5}\n    reject_file: rej.jsonl\n",
                        self.APPEND, "[tx_hash, log_index]"))
        _, r = self.run_with(bad)
        self.assertEqual((r["inserted"], r["rejected"], r["unchanged"]), (10, 1, 0))
        with open(self.path("rej.jsonl")) as f:
            rej = [json.loads(l) for l in f]
        self.assertEqual([x["where"] for x in rej], ["in.jsonl:11"])
        self.assertIn("append mode", rej[0]["error"])
        rows = self.store.rows("d", ["tx_hash", "log_index", "amount"])
        self.assertIn((first[7]["tx_hash"], first[7]["log_index"], first[7]["amount"]), rows)
        self.assertEqual(len(rows), 40)

    def test_append_conflict_counted_once(self):
        """append: a conflict found while staging a checkpointed batch fails
        the run with exactly one reject on record (invariants 9, 10), and the
        rows staged before it are kept for the next run."""
        self.config(cfg("append", "    batch_size: 500\n", self.APPEND,
                        "[tx_hash, log_index]"))
        known = self.tx(3000)
        self.run_with(known)
        before = self.full()
        bad = known[:1500] + [dict(known[1500], amount=-5)] + known[1501:]
        p, r = self.run_with(bad + self.tx(100, start=3000), check=FAILED)
        self.assertIn("in.jsonl:1501: append mode", p.stderr)
        self.assertEqual((r["status"], r["rejected"]), ("failed", 1))
        self.assertEqual(self.full(), before)
        self.assertTrue(self.status()["d"]["resumable"])
        _, r = self.run_with(known + self.tx(100, start=3000))
        self.assertEqual((r["inserted"], r["unchanged"], r["rejected"]), (100, 3000, 0))

    # ---- duplicates ----

    def test_duplicate_keys_later_wins(self):
        """Within a run a later record with the same key replaces the
        earlier one, and the run counts the duplicates (invariant 10)."""
        for mode, extra in (("full", ""), ("incremental", "    cursor: downloads\n"),
                            ("scoped", "    scope: [name]\n")):
            with self.subTest(mode=mode):
                self.config(cfg(mode, extra).replace("  d:", "  d_%s:" % mode)
                            .replace("in.jsonl", "%s.jsonl" % mode))
                recs = make_records(100)
                dup = [dict(r, downloads=-r["id"]) for r in recs[:7]]
                write_jsonl(self.path("%s.jsonl" % mode), recs + dup + dup[:2])
                self.atomsync("run", "d_" + mode, check=OK)
                r = self.runs("d_" + mode)[0]
                self.assertEqual((r["seen"], r["inserted"], r["duplicates"]), (109, 100, 9))
                got = by_id(self.store.rows("d_" + mode, COLS))
                for x in dup:
                    self.assertEqual(got[x["id"]][2], -x["id"])
                self.assertEqual(len(got), 100)


if __name__ == "__main__":
    import unittest
    unittest.main()
