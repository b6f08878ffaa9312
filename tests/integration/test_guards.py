"""Guards (invariant 3), idempotency (invariant 5), rejects (invariant 9)
and run records (invariant 10), through the command line."""

import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from atomsync_test import (OK, FAILED, REFUSED, StoreTestCase,  # noqa: E402
                           for_each_store, make_records, reference_rows, write_jsonl)

COLS = ["id", "name", "downloads", "score"]
CONFIG = """
store: {store}
datasets:
  addons:
    key: [id]
%s    columns:
      id: {type: integer}
      name: {type: text}
      downloads: {type: integer}
      score: {type: real}
    source:
      file: addons.jsonl
"""


def own(stderr):
    return [l for l in stderr.splitlines() if l.startswith("atomsync:")]


@for_each_store
class GuardTest(StoreTestCase):

    def publish(self, recs, extra=""):
        self.config(CONFIG % extra)
        write_jsonl(self.path("addons.jsonl"), recs)
        self.atomsync("run", check=OK)
        return self.store.full_rows("addons")

    def assert_refused(self, args, before, words):
        nruns = len(self.runs("addons"))
        p = self.atomsync("run", *args)
        self.assertEqual(p.returncode, REFUSED, p.stderr + p.stdout)
        lines = own(p.stderr)
        self.assertEqual(len(lines), 1, p.stderr)
        for w in words:
            self.assertIn(w, lines[0])
        self.assertEqual(self.store.full_rows("addons"), before)
        runs = self.runs("addons")
        self.assertEqual(len(runs), nruns + 1)
        self.assertEqual(runs[0]["status"], "refused")
        self.assertEqual((runs[0]["inserted"], runs[0]["updated"], runs[0]["deleted"]),
                         (0, 0, 0))
        self.assertIn("refused", runs[0]["error"])
        return lines[0]

    # ---- invariant 3 ----

    def test_empty_delivery_refused(self):
        """Invariant 3: an empty delivery over existing rows is refused with
        exit 3, nothing changed; --allow-empty publishes it."""
        before = self.publish(make_records(100))
        write_jsonl(self.path("addons.jsonl"), [])
        line = self.assert_refused([], before, ["delivered 0 records", "100 rows",
                                                "--allow-empty"])
        self.assertNotIn("\n", line)
        # A refused run is judged: the next run starts over.
        self.atomsync("run", "--allow-empty", check=OK)
        r = self.runs("addons")[0]
        self.assertEqual((r["status"], r["deleted"], r["seen"]), ("completed", 100, 0))
        self.assertIsNone(r["resumed_from"])
        self.assertEqual(self.store.rows("addons", COLS), [])

    def test_empty_allowed_by_config(self):
        """Invariant 3: guard.allow_empty in the config allows it too."""
        self.publish(make_records(20), "    guard: {allow_empty: true}\n")
        write_jsonl(self.path("addons.jsonl"), [])
        self.atomsync("run", check=OK)
        self.assertEqual(self.store.rows("addons", COLS), [])
        self.assertEqual(self.runs("addons")[0]["deleted"], 20)

    def test_delete_fraction_refused(self):
        """Invariant 3: deleting more than max_delete_fraction (50%) of the
        live rows is refused; exactly 50% is allowed; --allow-deletes
        publishes the refused delivery."""
        recs = make_records(1000)
        before = self.publish(recs)
        keep = recs[:399]                                   # 601 deletions
        write_jsonl(self.path("addons.jsonl"), keep)
        self.assert_refused([], before, ["601", "1,000", "max_delete_fraction 50%",
                                         "--allow-deletes"])
        self.assertEqual(self.store.rows("addons", COLS), reference_rows(recs, COLS))
        # Exactly half: within the guard.
        write_jsonl(self.path("addons.jsonl"), recs[:500])
        self.atomsync("run", check=OK)
        self.assertEqual(self.runs("addons")[0]["deleted"], 500)
        self.assertEqual(self.store.rows("addons", COLS), reference_rows(recs[:500], COLS))
        # 251 of 500 is over half again; --allow-deletes publishes it.
        before = self.store.full_rows("addons")
        write_jsonl(self.path("addons.jsonl"), recs[:249])
        self.assert_refused([], before, ["251", "500"])
        self.atomsync("run", "--allow-deletes", check=OK)
        self.assertEqual(self.store.rows("addons", COLS), reference_rows(recs[:249], COLS))
        self.assertEqual(self.runs("addons")[0]["deleted"], 251)

    def test_delete_fraction_from_config(self):
        """Invariant 3: guard.max_delete_fraction is honoured both ways."""
        recs = make_records(100)
        before = self.publish(recs, "    guard: {max_delete_fraction: 0.1}\n")
        write_jsonl(self.path("addons.jsonl"), recs[:89])  # 11% deleted
        self.assert_refused([], before, ["11 of 100", "max_delete_fraction 10%"])
        write_jsonl(self.path("addons.jsonl"), recs[:90])  # 10%: allowed
        self.atomsync("run", check=OK)
        self.config(CONFIG % "    guard: {max_delete_fraction: 0.95}\n")
        write_jsonl(self.path("addons.jsonl"), recs[:5])    # 85 of 90
        self.atomsync("run", check=OK)
        self.assertEqual(self.store.rows("addons", COLS), reference_rows(recs[:5], COLS))

    def test_scoped_delete_guard(self):
        """Invariant 3: in scoped mode the fraction is of the delivered
        scopes' rows; a refused scoped run changes nothing anywhere."""
        cfg = """
store: {store}
datasets:
  ev:
    mode: scoped
    key: [id]
    scope: [user_id]
    columns:
      id: {type: integer}
      user_id: {type: integer}
      title: {type: text}
    source:
      file: ev.jsonl
"""
        self.config(cfg)
        recs = [{"id": i, "user_id": i % 4, "title": "t%d" % i} for i in range(1, 401)]
        write_jsonl(self.path("ev.jsonl"), recs)
        self.atomsync("run", check=OK)
        before = self.store.full_rows("ev")
        # User 1 (100 rows) delivered with 40 rows: 60 of 100 deleted.
        write_jsonl(self.path("ev.jsonl"), [r for r in recs if r["user_id"] == 1][:40])
        p = self.atomsync("run")
        self.assertEqual(p.returncode, REFUSED, p.stderr)
        self.assertIn("60 of 100", p.stderr)
        self.assertEqual(self.store.full_rows("ev"), before)
        self.atomsync("run", "--allow-deletes", check=OK)
        rows = self.store.rows("ev", ["id", "user_id", "title"])
        self.assertEqual(len(rows), 340)
        self.assertEqual(len([r for r in rows if r[1] == 1]), 40)

    # ---- invariant 5 ----

    def test_idempotent_every_mode(self):
        """Invariant 5: the same input twice, in each mode, leaves the table
        byte-identical; the second run reports 0 inserted, updated, deleted."""
        modes = {
            "full": "",
            "incremental": "    mode: incremental\n    cursor: downloads\n",
            "scoped": "    mode: scoped\n    scope: [name]\n",
            "append": "    mode: append\n",
        }
        recs = make_records(1500)
        recs.append(dict(recs[10]))   # an identical repeat inside the run
        for mode, extra in modes.items():
            with self.subTest(mode=mode):
                cfg = CONFIG.replace("addons:", mode + ":").replace(
                    "addons.jsonl", "in.jsonl") % extra
                self.config(cfg)
                write_jsonl(self.path("in.jsonl"), recs)
                self.atomsync("run", mode, check=OK)
                before = self.store.full_rows(mode)
                self.assertEqual(len(before), 1500)
                self.atomsync("run", mode, check=OK)
                self.assertEqual(self.store.full_rows(mode), before)
                r = self.runs(mode)[0]
                self.assertEqual((r["inserted"], r["updated"], r["deleted"],
                                  r["unchanged"], r["seen"]), (0, 0, 0, 1500, 1501))

    # ---- invariant 9: max_rejects ----

    def test_max_rejects(self):
        """Invariant 9: up to max_rejects bad records go to the reject file,
        each with where and why, and the rest is published; one more than
        allowed fails the run with nothing published."""
        extra = "    guard: {max_rejects: 3}\n    reject_file: bad.jsonl\n"
        self.config(CONFIG % extra)
        recs = make_records(10)
        lines = [json.dumps(r) for r in recs]
        lines[2] = '{"id": 3, "name": '                         # malformed
        lines[5] = json.dumps(dict(recs[5], downloads="many"))  # wrong type
        lines[8] = json.dumps({"name": "no key"})               # missing key
        with open(self.path("addons.jsonl"), "w") as f:
            f.write("\n".join(lines) + "\n")
        p = self.atomsync("run", check=OK)
        good = [r for i, r in enumerate(recs) if i not in (2, 5, 8)]
        self.assertEqual(self.store.rows("addons", COLS), reference_rows(good, COLS))
        r = self.runs("addons")[0]
        self.assertEqual((r["seen"], r["rejected"], r["inserted"]), (10, 3, 7), p.stdout)
        with open(self.path("bad.jsonl")) as f:
            rejects = [json.loads(l) for l in f]
        self.assertEqual([x["where"] for x in rejects],
                         ["addons.jsonl:3", "addons.jsonl:6", "addons.jsonl:9"])
        self.assertRegex(rejects[0]["error"], r"addons\.jsonl:3:\d+: ")
        self.assertIn("'downloads': expected an integer, got a string", rejects[1]["error"])
        self.assertIn("missing key 'id'", rejects[2]["error"])
        self.assertEqual(rejects[1]["record"], lines[5])
        self.assertEqual({x["run"] for x in rejects}, {r["run_id"]})
        # Four bad records: one over the limit fails the run.
        before = self.store.full_rows("addons")
        lines[0] = "not json"
        lines[1] = json.dumps(dict(recs[1], name="changed"))
        with open(self.path("addons.jsonl"), "w") as f:
            f.write("\n".join(lines) + "\n")
        p = self.atomsync("run")
        self.assertEqual(p.returncode, FAILED, p.stderr)
        msg = own(p.stderr)
        self.assertEqual(len(msg), 1, p.stderr)
        self.assertIn("addons.jsonl:9", msg[0])
        self.assertIn("over max_rejects 3", msg[0])
        self.assertIn("bad.jsonl", msg[0])
        self.assertEqual(self.store.full_rows("addons"), before)
        r = self.runs("addons")[0]
        self.assertEqual((r["status"], r["rejected"]), ("failed", 4))

    # ---- invariant 10 ----

    def test_every_run_on_record(self):
        """Invariant 10: completed, failed and refused runs each have a row
        with status, times, counts and error."""
        recs = make_records(50)
        self.publish(recs)
        with open(self.path("addons.jsonl"), "w") as f:
            f.write("".join(json.dumps(r) + "\n" for r in recs[:20]) + "{bad\n")
        self.assertEqual(self.atomsync("run").returncode, FAILED)
        write_jsonl(self.path("addons.jsonl"), [])
        self.assertEqual(self.atomsync("run").returncode, REFUSED)
        write_jsonl(self.path("addons.jsonl"), recs[:30])
        self.atomsync("run", check=OK)
        runs = self.runs("addons")
        self.assertEqual([r["status"] for r in runs],
                         ["completed", "refused", "failed", "completed"])
        self.assertEqual([r["run_id"] for r in runs],
                         sorted([r["run_id"] for r in runs], reverse=True))
        for r in runs:
            self.assertTrue(r["started_at"] and r["finished_at"], r)
            self.assertLessEqual(r["started_at"], r["finished_at"])
            self.assertEqual(r["dataset"], "addons")
        done, refused, failed, first = runs
        self.assertEqual((first["seen"], first["inserted"]), (50, 50))
        self.assertIsNone(first["error"])
        self.assertEqual(failed["seen"], 21)
        self.assertEqual(failed["rejected"], 1)
        self.assertIn("addons.jsonl:21", failed["error"])
        self.assertIn("delivered 0 records", refused["error"])
        self.assertEqual((done["seen"], done["unchanged"], done["deleted"]), (30, 30, 20))
        st = self.status()["addons"]
        self.assertEqual(st["last_run"]["run_id"], done["run_id"])
        self.assertEqual(st["rows"], 30)


if __name__ == "__main__":
    import unittest
    unittest.main()
