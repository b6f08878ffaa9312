"""`atomsync verify`: the live table against its source (seed 003: sample
verification at 99%, and the count compared with the source's total).

Against the project's API server (tests/fixtures/apiserver.py): a faithful
table passes; a row edited in the store, or an upstream that changed since
the last run, fails with each mismatch named (key and columns, or missing
upstream); `--repair` runs a full refresh when the count differs.  A file
source has a count check and no sample check.  Every verify is on record as
a run of kind "verify" with its counts (invariant 10) and changes no data.
"""

import json
import os
import sqlite3
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
sys.path.insert(0, HERE)
import test_http as h  # noqa: E402  (ApiServer, HttpCase)
from atomsync_test import (FAILED, OK, USAGE, StoreTestCase,  # noqa: E402
                           for_each_store, make_records, write_jsonl)


def execute(store, sql, params=()):
    """A statement on the store outside atomsync (tampering)."""
    if store.name == "postgres":
        store.execute(sql, params)
        return
    c = sqlite3.connect(store.path, timeout=30)
    try:
        c.execute(sql, params)
        c.commit()
    finally:
        c.close()


def keys(result):
    return sorted(m["key"]["id"] for m in result["mismatches"])


@for_each_store
class VerifyHttpTest(h.HttpCase):

    def setUp(self):
        super().setUp()
        self.cfg()
        self.atomsync("run", check=OK)

    def cfg(self, dataset="", item=True):
        self.http_config("offset", dataset=dataset, http=(
            "        item_url: %s/v1/mods/{id}\n" % self.server.base if item else ""))

    def verify(self, *args, check=None):
        p = self.atomsync("verify", "mods", "--json", *args, check=check)
        return json.loads(p.stdout)

    def items_fetched(self):
        return len([e for e in self.server.stats()["log"] if e["page"] is None])

    def test_faithful_table_passes(self):
        before = self.store.full_rows("mods")
        self.server.reset()
        r = self.verify("--sample", "50", check=OK)
        self.assertTrue(r["passed"])
        self.assertEqual(r["accuracy"], 1.0)
        self.assertEqual((r["count"]["live"], r["count"]["source"], r["count"]["ok"]),
                         (600, 600, True))
        self.assertEqual((r["sample"]["size"], r["sample"]["matched"]), (50, 50))
        self.assertEqual(r["mismatches"], [])
        self.assertEqual(self.items_fetched(), 50)
        run = self.runs("mods")[0]
        self.assertEqual((run["run_id"], run["kind"], run["status"]),
                         (r["run_id"], "verify", "completed"))
        self.assertEqual((run["seen"], run["unchanged"], run["updated"], run["deleted"]),
                         (50, 50, 0, 0))
        self.assertIn("verify passed", run["error"])
        self.assertEqual(self.store.full_rows("mods"), before)

    def test_default_sample_is_100(self):
        r = self.verify(check=OK)
        self.assertEqual(r["sample"]["size"], 100)

    def test_tampered_rows_fail(self):
        """Ten rows edited in the store: every one is found (the whole table
        sampled), named with its column and both values; 590/600 is under
        99%: exit 1, recorded as a failed verify."""
        execute(self.store, "UPDATE mods SET downloads = downloads + 1 WHERE id <= 10")
        r = self.verify("--sample", "1000", check=FAILED)
        self.assertFalse(r["passed"])
        self.assertEqual(keys(r), list(range(1, 11)))
        for m in r["mismatches"]:
            self.assertEqual([c["column"] for c in m["columns"]], ["downloads"])
            c = m["columns"][0]
            self.assertEqual(c["live"], c["source"] + 1)
        self.assertEqual((r["sample"]["matched"], r["sample"]["differing"]), (590, 10))
        self.assertTrue(r["count"]["ok"])
        run = self.runs("mods")[0]
        self.assertEqual((run["kind"], run["status"], run["updated"], run["unchanged"]),
                         ("verify", "failed", 10, 590))

    def test_one_tampered_row_is_within_the_threshold(self):
        """599/600 reaches 99%: exit 0, and the mismatch is still shown."""
        execute(self.store, "UPDATE mods SET name = 'edited' WHERE id = 7")
        p = self.atomsync("verify", "mods", "--sample", "600", check=OK)
        self.assertIn("id=7: name: live \"edited\", source \"", p.stdout)
        self.assertIn("599 of 600 sampled rows match the source (99.8%)", p.stdout)
        self.assertIn("verify passed", p.stdout)

    def test_threshold_from_the_config(self):
        """verify_threshold: 0.95 lets 10 of 600 differ."""
        self.cfg(dataset="    verify_threshold: 0.95\n")
        execute(self.store, "UPDATE mods SET score = score + 1 WHERE id <= 10")
        r = self.verify("--sample", "600", check=OK)
        self.assertEqual((r["threshold"], len(r["mismatches"])), (0.95, 10))

    def test_changed_upstream_fails_then_repair(self):
        """The source changed since the last run: the count differs (603
        against 600), updated records differ, deleted ones are missing
        upstream (404).  --repair runs the dataset; then verify passes."""
        self.server.catalog(mutate={"update": [3, 99, 450], "delete": [10, 11],
                                    "add": 5})
        r = self.verify("--sample", "600", check=FAILED)
        self.assertEqual((r["count"]["live"], r["count"]["source"], r["count"]["ok"]),
                         (600, 603, False))
        missing = sorted(m["key"]["id"] for m in r["mismatches"] if m["missing"])
        self.assertEqual(missing, [10, 11])
        differ = {m["key"]["id"]: sorted(c["column"] for c in m["columns"])
                  for m in r["mismatches"] if not m["missing"]}
        self.assertEqual(differ, {3: ["downloads", "updatedAt"],
                                  99: ["downloads", "updatedAt"],
                                  450: ["downloads", "updatedAt"]})
        self.assertEqual((r["sample"]["differing"], r["sample"]["missing"]), (3, 2))
        run = self.runs("mods")[0]
        self.assertEqual((run["kind"], run["deleted"], run["updated"]), ("verify", 2, 3))
        r = self.verify("--sample", "10", "--repair", check=OK)
        self.assertFalse(r["passed"])
        rep = r["repair"]
        self.assertEqual((rep["kind"], rep["status"], rep["inserted"], rep["updated"],
                          rep["deleted"]), ("sync", "completed", 5, 3, 2))
        self.assertEqual(self.rows(), h.expected_rows(self.server.records()))
        r = self.verify("--sample", "600", check=OK)
        self.assertEqual(r["mismatches"], [])

    def test_repair_only_when_the_count_differs(self):
        """A sample failure alone does not run the dataset (a refresh would
        not rewrite rows whose stored hash is unchanged)."""
        execute(self.store, "UPDATE mods SET downloads = 0 WHERE id <= 50")
        n = len(self.runs("mods"))
        r = self.verify("--sample", "600", "--repair", check=FAILED)
        self.assertNotIn("repair", r)
        self.assertEqual(len(self.runs("mods")), n + 1)

    def test_without_item_url_the_sample_is_not_available(self):
        self.cfg(item=False)
        p = self.atomsync("verify", "mods", check=OK)
        self.assertIn("sample: not available: the http source has no item_url", p.stdout)
        self.assertIn("count: 600 live rows, the source has 600", p.stdout)

    def test_count_check_in_every_pagination_style(self):
        """The total comes from the first page of each style (a header for
        link_header); a style without a total has no count check."""
        self.server.catalog(mutate={"delete": [4, 5]})
        for style in h.STYLES:
            with self.subTest(style=style):
                self.http_config(style)
                p = self.atomsync("verify", "mods", "--json", "--sample", "0")
                r = json.loads(p.stdout)
                if "total_path" not in h.STYLES[style][2]:
                    self.assertEqual(p.returncode, OK, p.stderr)
                    self.assertFalse(r["count"]["checked"])
                    self.assertIn("pagination.total_path", r["count"]["note"])
                else:
                    self.assertEqual(p.returncode, FAILED, p.stderr)
                    self.assertEqual((r["count"]["source"], r["count"]["live"]),
                                     (598, 600))

    def test_source_failure_is_an_error(self):
        """An item that cannot be fetched (500 past the retries) is not a
        mismatch: verify stops with exit 1 and one error line."""
        self.server.faults({"kind": "status", "status": 500, "match": {"item": True}})
        p = self.atomsync("verify", "mods", "--sample", "5", check=FAILED)
        self.assertEqual(len(p.stderr.strip().splitlines()), 1, p.stderr)
        self.assertIn("HTTP 500", p.stderr)


@for_each_store
class VerifyFileTest(StoreTestCase):

    CONFIG = """
store: {store}
datasets:
  d:
    key: [id]
    columns:
      id: {type: integer}
      name: {type: text}
      downloads: {type: integer}
    source:
      file: in.jsonl
"""

    def test_file_source_count_check(self):
        """A file's records are counted; no record can be fetched one by
        one, so the sample check is not available (not a failure)."""
        self.config(self.CONFIG)
        write_jsonl(self.path("in.jsonl"), make_records(100))
        self.atomsync("run", check=OK)
        p = self.atomsync("verify", "d", check=OK)
        self.assertIn("count: 100 live rows, the source has 100", p.stdout)
        self.assertIn("sample: not available", p.stdout)
        execute(self.store, "DELETE FROM d WHERE id = 5")
        p = self.atomsync("verify", "d", check=FAILED)
        self.assertIn("99 live rows, the source has 100 (differ)", p.stdout)
        self.assertIn("verify FAILED (the count differs", p.stdout)
        p = self.atomsync("verify", "d", "--repair", check=OK)
        self.assertIn("1 inserted", p.stdout)
        self.atomsync("verify", "d", check=OK)
        kinds = [r["kind"] for r in self.runs("d")]
        self.assertEqual(kinds, ["verify", "sync", "verify", "verify", "verify", "sync"])

    def test_usage(self):
        self.config(self.CONFIG)
        self.atomsync("verify", check=USAGE)
        self.atomsync("verify", "nope", check=USAGE)
        self.atomsync("verify", "d", "--sample", "x", check=USAGE)
        p = self.atomsync("verify", "d", check=USAGE)
        self.assertIn("does not exist yet", p.stderr)
