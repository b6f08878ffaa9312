"""Line matching and spans on the PostgreSQL store (store/postgres_scan.c,
store/postgres_spans.c; store.h, AS_ROW_SPAN): test_spans.py's oracle
tests on a real server.  A run with spans is held to the same run parsing
every line (ATOMSYNC_NO_LINE_MATCH) and to one matching lines without spans
(ATOMSYNC_NO_SPANS), each in a database of its own loaded from the same
base: the same table byte for byte (atomsync's columns included), the same
counts (invariants 5 and 10), no staging left behind; the same history,
rollback and outbox events (invariant 7); and a run killed at each crash
point of its staging and publish leaves the table as it was (invariants 1
and 2) and resumes to where the oracle ends (invariant 4).

The scan reads keys in PostgreSQL's order by index range and the engine
compares them as numbers or bytes, so it is offered for a one-column
integer key, and a one-column text key under the "C" collation (a
database created with LC_COLLATE 'C'); compound keys (region text, n), and
text under the test server's C.UTF-8, are parsed line by line, with the
same result.
"""

import json
import os
import random
import shutil
import sys
import tempfile
import unittest

HERE = os.path.dirname(__file__)
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
sys.path.insert(0, HERE)
from atomsync_test import CRASH_EXIT, OK, run  # noqa: E402
import pgserver  # noqa: E402
from test_spans import (COUNTS, VARIANTS, Scenario, line,  # noqa: E402
                        sweep_data, write)


def matched(stderr):
    """(records matched, spans) from the run's -v summary; (0, 0) when no
    line was matched."""
    for s in stderr.splitlines():
        if "matched their published text" in s:
            words = s.split()
            i = words.index("of")
            spans = int(s.rsplit("(", 1)[1].split()[0]) if "spans)" in s else 0
            return int(words[i - 1]), spans
    return 0, 0


@unittest.skipUnless(pgserver.available(), "no PostgreSQL server")
class PostgresSpansTest(unittest.TestCase):

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="atomsync-pgspans-")
        self.stores = []

    def tearDown(self):
        for s in self.stores:
            s.cleanup()
        shutil.rmtree(self.dir, ignore_errors=True)

    def path(self, name):
        return os.path.join(self.dir, name)

    def db(self, collate_c=False):
        """A fresh database; collate_c: its default collation is "C"."""
        sys.path.insert(0, os.path.join(HERE, "..", "lib"))
        from pgstore import PostgresStore
        s = PostgresStore(self.dir)
        if collate_c:
            s.server.drop_database(s.dbname)
            s.server.psql('CREATE DATABASE "%s" TEMPLATE template0 '
                          "LC_COLLATE 'C' LC_CTYPE 'C'" % s.dbname)
        self.stores.append(s)
        return s

    def load(self, store, src, sc, mode, env=None, check=OK):
        return run(["-v", "load", store.url, "t", src, "--key", sc.key_arg(),
                    "--mode", mode, "--max-rejects", "10", "--json"],
                   cwd=self.dir, env=env, check=check)

    def outcome(self, p):
        res = json.loads(p.stdout)
        if isinstance(res, list):
            self.assertEqual(len(res), 1, p.stdout)
            res = res[0]
        return p.returncode, {k: res[k] for k in COUNTS}

    def test_same_result_as_parsing_everything(self):
        """Invariants 5 and 10 over 16 random inputs: spans change neither
        the table nor the counts, on integer and on compound keys."""
        spans_seen = 0
        for seed in range(16):
            compound = seed % 4 == 3
            collate_c = seed % 8 == 3
            mode = "full" if seed % 3 else "incremental"
            sc = Scenario(seed, compound)
            write(self.path("base.jsonl"), [line(r) for r in sc.base])
            write(self.path("next.jsonl"), sc.lines)
            results = {}
            for name, env in VARIANTS.items():
                store = self.db(collate_c)
                self.load(store, self.path("base.jsonl"), sc, mode, check=OK)
                p = self.load(store, self.path("next.jsonl"), sc, mode, env=env)
                self.assertIn(p.returncode, (0, 1, 3), p.stderr)
                results[name] = (self.outcome(p), store.full_rows("t"),
                                 store.tables())
                if name == "spans":
                    hits, spans = matched(p.stderr)
                    spans_seen += spans > 0
                    if compound:
                        self.assertEqual(hits, 0, "no scan of a compound key")
            what = "seed %d (%s, %s, %s)" % (seed, mode, sc.shape,
                                             "compound key" if compound else "id")
            for name in ("spans", "no-spans"):
                for i, part in enumerate(("counts", "table", "tables")):
                    self.assertEqual(results[name][i], results["parse-all"][i],
                                     "%s: %s %s" % (what, name, part))
            for s in self.stores:
                s.cleanup()
            self.stores = []
        self.assertGreaterEqual(spans_seen, 4, "spans were hardly ever made")

    def test_reload_stages_spans_only(self):
        """An unchanged reload of 3,000 rows is staged as spans (one per
        checkpoint of 1,000 lines), counted as 3,000 unchanged, and
        leaves no staging or spans table behind."""
        sc = Scenario(5, False)
        sc.base = [sc.record((i,), 0) for i in range(1, 3001)]
        store = self.db()
        write(self.path("base.jsonl"), [line(r) for r in sc.base])
        self.load(store, self.path("base.jsonl"), sc, "full", check=OK)
        before = store.full_rows("t")
        p = self.load(store, self.path("base.jsonl"), sc, "full", check=OK)
        self.assertIn("3000 of 3000 records matched their published text and "
                      "were not parsed (3 spans)", p.stderr)
        self.assertEqual(self.outcome(p)[1]["unchanged"], 3000)
        self.assertEqual(store.full_rows("t"), before)
        self.assertEqual([t for t in store.tables() if t.startswith("_atomsync_stage_")], [])

    def test_text_key(self):
        """A text key is matched under the C collation (and the result is
        that of parsing everything), not under C.UTF-8 (PostgreSQL orders
        it otherwise than bytewise)."""
        base = [line({"sku": "k-%05d" % i, "name": "n%d" % i})
                for i in range(1, 3001)]
        nxt = [line({"sku": "k-%05d" % i, "name": "x" if i % 50 == 0 else
                     "n%d" % i}) for i in range(1, 3001) if i % 70]
        write(self.path("base.jsonl"), base)
        write(self.path("next.jsonl"), nxt)

        def load(store, src, env=None):
            return run(["-v", "load", store.url, "t", src, "--key", "sku",
                        "--mode", "full", "--json"], cwd=self.dir, env=env,
                       check=OK)

        got = {}
        for name, collate_c in (("c", True), ("utf8", False),
                                ("oracle", True)):
            store = self.db(collate_c)
            load(store, self.path("base.jsonl"))
            p = load(store, self.path("next.jsonl"),
                     VARIANTS["parse-all" if name == "oracle" else "spans"])
            got[name] = (matched(p.stderr), self.outcome(p)[1],
                         store.full_rows("t"))
        # A line after a deleted row misses too (the scan then seeks past it).
        self.assertEqual(got["c"][0], (2958 - 52 - 42, 96))
        self.assertEqual(got["utf8"][0], (0, 0))
        for name in ("c", "utf8"):
            self.assertEqual(got[name][1:], got["oracle"][1:], name)

    HISTORY = """
store: %s
cache: redis://127.0.0.1:1
datasets:
  t:
    key: [id]
    mode: full
    history: scd2
    batch_size: 50
    invalidate: ["t:{id}", "name:{name}"]
    guard: {max_delete_fraction: 0.9}
    columns:
      id: {type: integer}
      name: {type: text}
      score: {type: real}
    source:
      file: in.jsonl
"""

    def test_history_rollback_outbox(self):
        """Invariants 1, 7 and 10: with spans, the SCD2 history, the outbox
        events and a rollback to the first run are those of a run that
        parses everything."""
        rnd = random.Random(7)
        old = [{"id": i, "name": "n%d" % i, "score": rnd.random()}
               for i in range(1, 1201)]
        new = [line(dict(r, name="changed") if r["id"] % 53 == 0 else r)
               for r in old if r["id"] % 41]
        new.append(line({"id": 5000, "name": "new", "score": 1.5}))
        got = {}
        for name in ("spans", "parse-all"):
            store = self.db()
            with open(self.path("atomsync.yml"), "w") as f:
                f.write(self.HISTORY % store.url)
            write(self.path("in.jsonl"), [line(r) for r in old])
            run(["run", "t"], cwd=self.dir, check=OK)
            write(self.path("in.jsonl"), new)
            p = run(["-v", "run", "t", "--json"], cwd=self.dir,
                    env=VARIANTS[name], check=OK)
            res = json.loads(p.stdout)[0]
            if name == "spans":
                self.assertGreater(matched(p.stderr)[1], 0, p.stderr)
            hist = store.query('SELECT * FROM "t_history" ORDER BY 1, 2, 3')
            events = store.query("SELECT run_id, target, payload::text FROM "
                                 "atomsync_outbox ORDER BY event_id")
            run(["rollback", "t", "--to-run", "1"], cwd=self.dir,
                check=OK)
            back = store.full_rows("t")
            got[name] = ({k: res[k] for k in COUNTS}, hist, events, back,
                         store.tables())
        for i, part in enumerate(("counts", "history", "outbox",
                                  "rolled back", "tables")):
            self.assertEqual(got["spans"][i], got["parse-all"][i], part)

    def test_crash_then_resume(self):
        """Invariants 1, 2 and 4: a run with spans killed at each crash
        point of its staging and publish leaves the table as it was; the
        resumed run (using the spans staged before the crash) ends where a
        run that parses everything does."""
        points = ["stage.committed:1", "stage.committed:3", "stage.rows:2",
                  "stage.checkpoint:2", "publish.marked:1", "publish.begin:1",
                  "publish.upserted:1", "publish.deleted:1",
                  "publish.before_commit:1", "publish.committed:1"]
        cfg = ("store: URL\ndatasets:\n  t:\n    key: [id]\n"
               "    mode: full\n    batch_size: 20\n    source:\n"
               "      file: in.jsonl\n")
        old, new = sweep_data()

        def sync(store, env=None, check=OK):
            with open(self.path("atomsync.yml"), "w") as f:
                f.write(cfg.replace("URL", store.url))
            p = run(["-v", "run", "t", "--json"], cwd=self.dir, env=env,
                    check=check)
            res = json.loads(p.stdout)[0] if p.stdout.strip() else {}
            return p, {k: res.get(k) for k in COUNTS if k != "seen"}

        def fresh():
            store = self.db()
            write(self.path("in.jsonl"), [line(r) for r in old])
            sync(store, check=OK)
            write(self.path("in.jsonl"), new)
            return store

        def rows(store):
            return store.query('SELECT id, name, score, "_atomsync_hash", '
                               '"_atomsync_line" FROM t ORDER BY id')

        oracle = fresh()
        _, want_counts = sync(oracle, env=VARIANTS["parse-all"], check=OK)
        want = rows(oracle)
        store = fresh()
        before = rows(store)
        p, got = sync(store, check=OK)
        self.assertGreater(matched(p.stderr)[1], 10, p.stderr)
        self.assertEqual((rows(store), got), (want, want_counts))
        for point in points:
            store = fresh()
            p, _ = sync(store, env={"ATOMSYNC_CRASH": point}, check=None)
            self.assertEqual(p.returncode, CRASH_EXIT, "%s: %s" % (point, p.stderr))
            if point != "publish.committed:1":
                self.assertEqual(rows(store), before, point)
            p, got = sync(store, check=OK)
            self.assertEqual(rows(store), want, point)
            if point != "publish.committed:1":
                self.assertEqual(got, want_counts, point)
            self.assertEqual([t for t in store.tables() if t.startswith("_atomsync_stage_")], [],
                             point)
            store.cleanup()
            self.stores.remove(store)


if __name__ == "__main__":
    unittest.main()
