"""What only the PostgreSQL store has to show: its URL forms, column types,
COPY escaping, redaction of the password, connection retries, the scope
index, append-mode rejects, and that values never reach SQL text.  The
store-independent behaviour is checked by every @for_each_store test, which
runs on PostgreSQL too (tests/lib/atomsync_test.py)."""

import json
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from atomsync_test import (FAILED, OK, USAGE, StoreTestCase,  # noqa: E402
                           make_records, reference_rows, write_jsonl)
import pgserver  # noqa: E402

TYPES = """
store: {store}
datasets:
  things:
    key: [id]
    columns:
      id: {type: integer}
      name: {type: text}
      score: {type: real}
      active: {type: boolean}
      meta: {type: json}
      seen_at: {type: timestamp}
    guard: {max_rejects: 5}
    source:
      file: things.jsonl
"""

TRICKY = [
    "tab\there", "new\nline", "back\\slash", "cr\rlf", "\\N", "quote ' and \"",
    "'); DROP TABLE things; --", "unicode \u00e9\u4e2d\U0001F600", "", " ",
    "\\.", "end\\",
]


@unittest.skipUnless(pgserver.available(), "no PostgreSQL server")
class PostgresStoreTest(StoreTestCase):
    store_name = "postgres"

    def psql(self, sql):
        return self.store.query(sql)

    def test_url_forms(self):
        """postgres://, postgresql:// and libpq's key=value form all reach
        the same database (invariant 5: the second and third load change
        nothing)."""
        recs = make_records(50)
        write_jsonl(self.path("in.jsonl"), recs)
        url = self.store.url
        sockdir = url.split("host=", 1)[1]
        forms = [url.replace("postgresql://", "postgres://", 1), url,
                 "host=%s dbname=%s user=postgres" % (sockdir, self.store.dbname)]
        for i, form in enumerate(forms):
            p = self.atomsync("load", form, "things", "in.jsonl", "--key", "id",
                              check=OK)
            self.assertIn("50 inserted" if i == 0 else "50 unchanged", p.stdout)
        self.assertEqual([r[0] for r in self.store.rows("things", ["id"])],
                         list(range(1, 51)))
        apps = self.psql("SELECT count(*) FROM atomsync_runs")
        self.assertEqual(apps, [(3,)])

    def test_types_and_escaping(self):
        """Each type maps to its PostgreSQL type; text survives COPY's
        escapes byte for byte; an unchanged reload rewrites nothing
        (invariant 5)."""
        recs = []
        for i, s in enumerate(TRICKY, start=1):
            recs.append({"id": i, "name": s, "score": i / 3.0, "active": i % 2 == 0,
                         "meta": {"s": s, "n": [i, None, True]},
                         "seen_at": "2026-01-%02dT10:11:12Z" % i})
        recs.append({"id": 100, "name": None, "score": 1e300, "active": None,
                     "meta": None, "seen_at": None})
        write_jsonl(self.path("things.jsonl"), recs)
        self.config(TYPES)
        self.atomsync("run", check=OK)
        types = dict(self.store.columns("things"))
        self.assertEqual(types, {
            "id": "bigint", "name": "text", "score": "double precision",
            "active": "boolean", "meta": "jsonb",
            "seen_at": "timestamp with time zone",
            "_atomsync_run": "bigint", "_atomsync_hash": "bigint",
            "_atomsync_line": "bytea"})
        rows = self.store.rows("things", ["id", "name", "score", "active", "meta",
                                          "seen_at"])
        self.assertEqual(len(rows), len(recs))
        by_id = {r[0]: r for r in rows}
        for rec in recs:
            row = by_id[rec["id"]]
            self.assertEqual(row[1], rec["name"])
            self.assertEqual(row[2], rec["score"])           # exact double
            self.assertEqual(row[3], None if rec["active"] is None else int(rec["active"]))
            self.assertEqual(None if row[4] is None else json.loads(row[4]), rec["meta"])
            # The engine's canonical timestamp text, as SQLite stores it.
            self.assertEqual(row[5], None if rec["seen_at"] is None
                             else rec["seen_at"].replace("Z", ".000000Z"))
        self.assertTrue(self.store.table_exists("things"))
        before = self.psql('SELECT id, xmin::text FROM things ORDER BY id')
        self.atomsync("run", check=OK)
        r = self.runs("things")[0]
        self.assertEqual((r["inserted"], r["updated"], r["deleted"]), (0, 0, 0))
        # Not one row version was written: xmin is unchanged.
        self.assertEqual(self.psql('SELECT id, xmin::text FROM things ORDER BY id'), before)

    def test_nul_character_is_a_named_reject(self):
        """Invariant 9: PostgreSQL text cannot hold NUL; such a record is
        rejected with its origin and reason, the others are published."""
        recs = make_records(20)
        recs[4]["name"] = "bad\u0000name"
        write_jsonl(self.path("things.jsonl"), recs)
        self.config(TYPES.replace("file: things.jsonl", "file: things.jsonl")
                    .replace("      active: {type: boolean}\n", "")
                    .replace("      meta: {type: json}\n", "")
                    .replace("      seen_at: {type: timestamp}\n", ""))
        p = self.atomsync("run", check=OK)
        self.assertIn("19 inserted", p.stdout)
        with open(self.path("things.rejects.jsonl")) as f:
            rej = [json.loads(line) for line in f]
        self.assertEqual(len(rej), 1)
        self.assertIn("things.jsonl:5", rej[0]["where"])
        self.assertIn("NUL", rej[0]["error"])
        self.assertEqual(self.runs("things")[0]["rejected"], 1)
        # Without allowed rejects the run fails and nothing is published.
        self.config(TYPES.replace("max_rejects: 5", "max_rejects: 0")
                    .replace("      active: {type: boolean}\n", "")
                    .replace("      meta: {type: json}\n", "")
                    .replace("      seen_at: {type: timestamp}\n", ""))
        recs[4]["name"] = "bad\u0000again"
        recs[0]["name"] = "changed"
        write_jsonl(self.path("things.jsonl"), recs)
        before = self.store.full_rows("things")
        p = self.atomsync("run")
        self.assertEqual(p.returncode, FAILED, p.stderr)
        self.assertIn("things.jsonl:5", p.stderr)
        self.assertEqual(self.store.full_rows("things"), before)

    def test_password_never_printed(self):
        """A password in the URL never reaches stderr or stdout; a server
        that is not there is retried for a few seconds, then named."""
        bogus = "postgresql://alice:s3cretpw@/nodb?host=/nonexistent-atomsync-dir"
        write_jsonl(self.path("in.jsonl"), make_records(3))
        t0 = time.monotonic()
        p = self.atomsync("load", bogus, "things", "in.jsonl", "--key", "id")
        elapsed = time.monotonic() - t0
        self.assertEqual(p.returncode, FAILED, p.stderr)
        self.assertNotIn("s3cretpw", p.stderr + p.stdout)
        self.assertIn("alice:***@", p.stderr)
        self.assertIn("cannot connect", p.stderr)
        self.assertGreater(elapsed, 2.0, "no retry before giving up")
        self.assertLess(elapsed, 20.0)
        kv = "host=/nonexistent-atomsync-dir dbname=x password=s3cretpw user=bob"
        p = self.atomsync("load", kv, "things", "in.jsonl", "--key", "id")
        self.assertNotIn("s3cretpw", p.stderr + p.stdout)
        self.assertIn("password=***", p.stderr)
        # Bad syntax is a usage error, at once.
        p = self.atomsync("load", "host=/tmp dbname='unterminated", "things",
                          "in.jsonl", "--key", "id")
        self.assertEqual(p.returncode, USAGE, p.stderr)

    def test_existing_table_with_other_columns(self):
        """A live table that does not match the mapping is a configuration
        error (exit 2), and it is left alone."""
        self.store.execute('CREATE TABLE things (id bigint PRIMARY KEY, x text)')
        self.store.execute("INSERT INTO things VALUES (1, 'keep')")
        write_jsonl(self.path("in.jsonl"), make_records(3))
        p = self.atomsync("load", self.store.url, "things", "in.jsonl", "--key", "id")
        self.assertEqual(p.returncode, USAGE, p.stderr)
        self.assertIn("does not have the columns", p.stderr)
        self.assertEqual(self.psql("SELECT * FROM things"), [(1, "keep")])

    def test_scoped_composite_key_and_index(self):
        """Scoped mode on a composite key: the live table gets its primary
        key and an index on the scope column; replacing one scope leaves the
        others untouched (invariant 3's scope-limited deletion)."""
        recs = [{"user_id": u, "item": i, "qty": u * i} for u in (1, 2, 3)
                for i in range(1, 6)]
        write_jsonl(self.path("in.jsonl"), recs)
        self.atomsync("load", self.store.url, "carts", "in.jsonl", "--key",
                      "user_id,item", "--mode", "scoped", "--scope", "user_id", check=OK)
        idx = self.psql("SELECT indexdef FROM pg_indexes WHERE tablename = 'carts' "
                        "ORDER BY indexname")
        self.assertEqual(len(idx), 2, idx)
        self.assertIn("(user_id)", idx[0][0] + idx[1][0])
        self.assertIn("(user_id, item)", idx[0][0] + idx[1][0])
        # User 2 now has items 1-2 only.
        write_jsonl(self.path("u2.jsonl"), [r for r in recs
                                            if r["user_id"] == 2 and r["item"] <= 2])
        p = self.atomsync("load", self.store.url, "carts", "u2.jsonl", "--key",
                          "user_id,item", "--mode", "scoped", "--scope", "user_id",
                          "--allow-deletes", check=OK)
        self.assertIn("3 deleted", p.stdout)
        left = self.psql("SELECT user_id, count(*) FROM carts GROUP BY 1 ORDER BY 1")
        self.assertEqual(left, [(1, 5), (2, 2), (3, 5)])

    def test_append_conflicts_are_rejects(self):
        """Append mode: an identical duplicate is ignored, a different record
        under a known key (live, or earlier in the run) is a reject named by
        its line (invariant 9)."""
        ev = [{"tx": "a", "i": n, "v": n} for n in range(10)]
        write_jsonl(self.path("e1.jsonl"), ev)
        self.atomsync("load", self.store.url, "events", "e1.jsonl", "--key", "tx,i",
                      "--mode", "append", "--schema", "json", check=OK)
        ev2 = ev[:3] + [{"tx": "a", "i": 4, "v": 99}] + [
            {"tx": "b", "i": 1, "v": 1}, {"tx": "b", "i": 1, "v": 1},
            {"tx": "b", "i": 2, "v": 1}, {"tx": "b", "i": 2, "v": 2}]
        write_jsonl(self.path("e2.jsonl"), ev2)
        p = self.atomsync("load", self.store.url, "events", "e2.jsonl", "--key", "tx,i",
                          "--mode", "append", "--max-rejects", "5", "--schema", "json",
                          check=OK)
        self.assertIn("2 inserted", p.stdout)
        with open(self.path("events.rejects.jsonl")) as f:
            rej = [json.loads(line) for line in f]
        self.assertEqual([r["where"] for r in rej], ["e2.jsonl:4", "e2.jsonl:8"])
        rows = self.psql("SELECT tx, i, data::jsonb->>'v' FROM events "
                         "WHERE tx = 'b' OR i = 4 ORDER BY 1, 2")
        self.assertEqual(rows, [("a", 4, "4"), ("b", 1, "1"), ("b", 2, "1")])
        self.assertEqual(self.psql("SELECT rejected FROM atomsync_runs "
                                   "ORDER BY run_id DESC LIMIT 1"), [(2,)])

    def test_duplicates_across_batches(self):
        """DESIGN.md (a later record replaces an earlier one) and invariant
        10: keys repeated in later batches, on an empty table and on one
        with rows (where the client classifies rows itself), with integer
        and text keys: the live table holds the last record of each key and
        the counts are exact."""
        for key, table in (("id", "things"), ("slug", "slugs")):
            base = make_records(250)
            first = base + [dict(r, downloads=r["downloads"] + 1) for r in base[:50]]
            write_jsonl(self.path("in.jsonl"), first)
            args = ("load", self.store.url, table, "in.jsonl", "--key", key,
                    "--batch-size", "100", "--schema", "json")
            p = self.atomsync(*args, check=OK)
            self.assertIn("250 inserted", p.stdout)
            cols = ["id", "downloads"]
            got = [(json.loads(d)["id"], json.loads(d)["downloads"])
                   for _, d in self.store.rows(table, [key, "data"])]
            self.assertEqual(sorted(got), reference_rows(first, cols))
            # Again over live rows: 40 changed early, changed back later.
            second = [dict(r, downloads=r["downloads"] + 7) if r["id"] <= 40 else r
                      for r in base] + [r for r in base[:40]] + make_records(10, start=900)
            write_jsonl(self.path("in.jsonl"), second)
            p = self.atomsync(*args, check=OK)
            want = reference_rows(second, cols)
            got = [(json.loads(d)["id"], json.loads(d)["downloads"])
                   for _, d in self.store.rows(table, [key, "data"])]
            self.assertEqual(sorted(got), want)
            r = self.psql("SELECT inserted, updated, unchanged, deleted, duplicates "
                          "FROM atomsync_runs ORDER BY run_id DESC LIMIT 1")[0]
            # ids 1-40 end as in base: ids 1-50 had +1 live, so 50 updated.
            self.assertEqual(r, (10, 50, 200, 0, 40))

    def test_staging_is_unlogged_and_dropped(self):
        """Staging lives in UNLOGGED tables while a run is open and is gone
        after the publish; bookkeeping tables exist (DESIGN.md)."""
        write_jsonl(self.path("in.jsonl"), make_records(100))
        self.atomsync("load", self.store.url, "things", "in.jsonl", "--key", "id",
                      check=OK)
        names = {r[0] for r in self.psql(
            "SELECT relname FROM pg_class WHERE relkind = 'r' AND "
            "relnamespace = 'public'::regnamespace")}
        self.assertTrue({"atomsync_runs", "atomsync_leases", "atomsync_state",
                         "things"} <= names, names)
        self.assertFalse([n for n in names if n.startswith("_atomsync_stage")])
        # A run that fails keeps its staging, unlogged, for the next run.
        recs = make_records(100)
        recs[50] = {"broken": True}
        write_jsonl(self.path("in.jsonl"), recs)
        self.atomsync("load", self.store.url, "things", "in.jsonl", "--key", "id",
                      "--batch-size", "10", check=FAILED)
        stage = self.psql("SELECT relname, relpersistence FROM pg_class WHERE "
                          "relkind = 'r' AND relname LIKE '\\_atomsync\\_stage\\_%'")
        self.assertEqual(len(stage), 1, stage)
        self.assertEqual(stage[0][1], "u")


if __name__ == "__main__":
    unittest.main()
