"""The command-line contract: verbs, --json shapes, exit codes, metrics,
idempotency (invariant 5) and run records (invariant 10)."""

import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from atomsync_test import (OK, FAILED, USAGE, REFUSED, StoreTestCase,  # noqa: E402
                           for_each_store, make_records, reference_rows,
                           write_jsonl)

CONFIG = """
store: {store}
datasets:
  addons:
    key: [id]
    columns:
      id: {type: integer}
      name: {type: text}
      downloads: {type: integer}
      score: {type: real}
    source:
      file: addons.jsonl
"""

COLS = ["id", "name", "downloads", "score"]


@for_each_store
class CliTest(StoreTestCase):

    def test_run_status_runs(self):
        recs = make_records(500)
        write_jsonl(self.path("addons.jsonl"), recs)
        self.config(CONFIG)
        p = self.atomsync("run", check=OK)
        self.assertIn("addons: run 1 completed: 500 seen, 500 inserted", p.stdout)
        self.assertEqual(self.store.rows("addons"), reference_rows(recs, COLS))
        st = self.status()["addons"]
        self.assertEqual(st["rows"], 500)
        self.assertEqual(st["table"], "addons")
        self.assertEqual(st["mode"], "full")
        self.assertEqual(st["last_run"]["status"], "completed")
        self.assertEqual(st["last_run"]["inserted"], 500)
        self.assertIsNone(st["last_run"]["error"])
        runs = self.runs("addons")
        self.assertEqual([r["run_id"] for r in runs], [1])
        for k in ("run_id", "dataset", "status", "started_at", "finished_at", "seen",
                  "inserted", "updated", "unchanged", "deleted", "rejected", "error"):
            self.assertIn(k, runs[0])

    def test_idempotent_invariant_5(self):
        """Invariant 5: the same input twice leaves the table byte-identical;
        the second run reports 0 inserted, 0 updated, 0 deleted."""
        write_jsonl(self.path("addons.jsonl"), make_records(2000))
        self.config(CONFIG)
        self.atomsync("run", check=OK)
        before = self.store.full_rows("addons")
        self.atomsync("run", check=OK)
        self.assertEqual(self.store.full_rows("addons"), before)
        r = self.runs("addons")[0]
        self.assertEqual((r["inserted"], r["updated"], r["deleted"], r["unchanged"]),
                         (0, 0, 0, 2000))

    def test_counts_invariant_10(self):
        """Invariant 10: every run on record with exact counts."""
        recs = make_records(1000)
        write_jsonl(self.path("addons.jsonl"), recs)
        self.config(CONFIG)
        self.atomsync("run", check=OK)
        changed = [dict(r) for r in recs if r["id"] % 10 != 0]   # 100 deleted
        for r in changed:
            if r["id"] % 7 == 0:
                r["downloads"] += 1                               # updated
        changed += make_records(25, start=5000)                   # inserted
        changed.append(dict(changed[3]))                          # a duplicate
        write_jsonl(self.path("addons.jsonl"), changed)
        self.atomsync("run", check=OK)
        r = self.runs("addons")[0]
        upd = len([x for x in recs if x["id"] % 10 != 0 and x["id"] % 7 == 0])
        self.assertEqual(r["seen"], 926)
        self.assertEqual(r["inserted"], 25)
        self.assertEqual(r["updated"], upd)
        self.assertEqual(r["deleted"], 100)
        self.assertEqual(r["unchanged"], 900 - upd)
        self.assertEqual(r["duplicates"], 1)
        self.assertEqual(r["status"], "completed")
        self.assertEqual(self.store.rows("addons"), reference_rows(changed, COLS))

    def test_exit_codes(self):
        self.config(CONFIG)
        # 2: unknown dataset, bad config, bad option
        self.assertEqual(self.atomsync("run", "nope").returncode, USAGE)
        self.assertEqual(self.atomsync("run", "--bogus").returncode, USAGE)
        self.assertEqual(self.atomsync("-c", "missing.yml", "run").returncode, USAGE)
        # 1: the source file is missing
        p = self.atomsync("run")
        self.assertEqual(p.returncode, FAILED)
        self.assertIn("addons.jsonl", p.stderr)
        self.assertEqual(len(p.stderr.strip().splitlines()), 1, p.stderr)
        # 3: refused (empty delivery over existing rows)
        write_jsonl(self.path("addons.jsonl"), make_records(10))
        self.atomsync("run", check=OK)
        write_jsonl(self.path("addons.jsonl"), [])
        self.assertEqual(self.atomsync("run").returncode, REFUSED)

    def test_failed_run_json_matches_its_record(self):
        """Invariant 10: `run --json` of a run that fails before reading
        anything says what the run record says (kind, mode, finish)."""
        self.config(CONFIG)
        p = self.atomsync("run", "--json")
        self.assertEqual(p.returncode, FAILED, p.stderr)
        out = json.loads(p.stdout)[0]
        rec = self.runs("addons")[0]
        self.assertEqual(out["status"], "failed")
        for k in ("run_id", "dataset", "kind", "mode", "status", "error"):
            self.assertEqual(out[k], rec[k], k)
        self.assertEqual((out["kind"], out["mode"]), ("sync", "full"))
        self.assertIsNotNone(out["finished_at"])

    def test_verb_help(self):
        """`atomsync VERB --help` prints the usage and does nothing else,
        even without a config file."""
        for verb in ("run", "load", "status", "verify", "rollback"):
            p = self.atomsync(verb, "--help", check=OK)
            self.assertIn("usage: atomsync", p.stdout)
            self.assertEqual(p.stderr, "")
        self.assertFalse(os.path.exists(self.path("atomsync.db")))

    def test_load_without_config(self):
        recs = make_records(300)
        write_jsonl(self.path("in.jsonl"), recs)
        p = self.atomsync("load", self.store.url, "things", "in.jsonl", "--key", "id",
                          "--schema", "json", check=OK)
        self.assertIn("things: run 1 completed", p.stdout)
        rows = self.store.rows("things", ["id", "data"])
        self.assertEqual([r[0] for r in rows], list(range(1, 301)))
        self.assertEqual(json.loads(rows[5][1]), recs[5])
        # stdin
        p = self.atomsync("load", self.store.url, "things", "-", "--key", "id",
                          "--schema", "json", input=self.read("in.jsonl"), check=OK)
        self.assertIn("300 unchanged", p.stdout)
        # usage errors
        self.assertEqual(self.atomsync("load", self.store.url, "t", "in.jsonl").returncode,
                         USAGE)
        self.assertEqual(self.atomsync("load", self.store.url, "t", "in.jsonl", "--key",
                                       "id", "--mode", "bogus").returncode, USAGE)

    def test_metrics_file(self):
        write_jsonl(self.path("addons.jsonl"), make_records(50))
        self.config(CONFIG)
        self.atomsync("--metrics-file", "m.prom", "run", check=OK)
        write_jsonl(self.path("addons.jsonl"), [])
        self.atomsync("--metrics-file", "m.prom", "run")
        text = self.read("m.prom")
        self.assertIn('atomsync_runs_total{dataset="addons",status="completed"} 1', text)
        self.assertIn('atomsync_runs_total{dataset="addons",status="refused"} 1', text)
        self.assertIn('atomsync_records_total{dataset="addons",outcome="inserted"} 50', text)
        self.assertIn('atomsync_run_duration_seconds{dataset="addons"}', text)
        self.assertIn('atomsync_last_success_timestamp_seconds{dataset="addons"}', text)
        self.assertIn("# TYPE atomsync_runs_total counter", text)
        self.assertFalse([f for f in os.listdir(self.dir) if ".tmp." in f])

    def test_verify_runs_kept_apart(self):
        """Invariant 10: a verify run is on record, but it is not the table's
        last run in `status`, and metrics count neither its sample as
        changed records nor its end as a sync's success."""
        write_jsonl(self.path("addons.jsonl"), make_records(40))
        self.config(CONFIG)
        self.atomsync("--metrics-file", "m.prom", "run", check=OK)
        self.atomsync("verify", "addons", "--json", check=OK)
        st = self.status()["addons"]
        self.assertEqual(st["last_run"]["kind"], "sync")
        self.assertEqual(st["last_verify"]["kind"], "verify")
        self.assertEqual([r["kind"] for r in self.runs("addons")], ["verify", "sync"])
        self.atomsync("--metrics-file", "m.prom", "run", check=OK)
        text = self.read("m.prom")
        self.assertIn('atomsync_runs_total{dataset="addons",status="completed"} 2', text)
        self.assertIn('atomsync_records_total{dataset="addons",outcome="inserted"} 40', text)
        self.assertIn('atomsync_records_total{dataset="addons",outcome="unchanged"} 40', text)

    def test_json_status_before_any_run(self):
        self.config(CONFIG)
        st = self.status()["addons"]
        self.assertIsNone(st["last_run"])
        self.assertIsNone(st["rows"])


if __name__ == "__main__":
    import unittest
    unittest.main()
