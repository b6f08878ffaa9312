"""Spans: runs of unchanged lines, matched to consecutive live rows while
the input's keys increase, are staged as one span row each, and the
publish reads only the live rows between spans (SQLite store; store.h,
AS_ROW_SPAN).  These tests hold a run with spans to the result of the same
run that parses every line (ATOMSYNC_NO_LINE_MATCH) and of one that matches
lines without spans (ATOMSYNC_NO_SPANS): the same table, byte for byte, and
the same counts (invariants 5 and 10), over random inputs with changes,
deletions, new keys, duplicates, bad lines and keys out of order; and after
a crash at each step of a run with spans, the table is the old one
(invariant 1) and the resumed run ends where the oracle does (invariant 4).
"""

import json
import os
import random
import shutil
import sqlite3
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from atomsync_test import CRASH_EXIT, OK, run  # noqa: E402

VARIANTS = {
    "spans": {},
    "no-spans": {"ATOMSYNC_NO_SPANS": "1"},
    "parse-all": {"ATOMSYNC_NO_LINE_MATCH": "1"},
}
COUNTS = ("seen", "inserted", "updated", "unchanged", "deleted", "rejected",
          "duplicates")


def line(rec):
    return json.dumps(rec, separators=(",", ":"))


class Scenario:
    """A published table and the next input, from one seed."""

    def __init__(self, seed, compound):
        rnd = random.Random(seed)
        self.rnd = rnd
        self.compound = compound
        n = rnd.choice([40, 300, 1500, 4200])
        keys = set()
        while len(keys) < n:
            keys.add(self.new_key())
        self.base = [self.record(k, 0) for k in sorted(keys)]
        self.lines = self.next_input(keys)

    def new_key(self):
        if self.compound:
            return (self.rnd.choice(["eu", "us", "ap", "sa"]),
                    self.rnd.randrange(1, 5000))
        return (self.rnd.randrange(1, 20000),)

    def record(self, k, v):
        r = {"region": k[0], "n": k[1]} if self.compound else {"id": k[0]}
        r["name"] = "item %s v%d" % ("-".join(map(str, k)), v)
        r["score"] = (hash(k) % 1000) / 8.0 + v
        return r

    def key_of(self, rec):
        return (rec["region"], rec["n"]) if self.compound else (rec["id"],)

    def next_input(self, keys):
        rnd = self.rnd
        p_del = rnd.choice([0, 0.005, 0.05, 0.3])
        p_mod = rnd.choice([0, 0.01, 0.1])
        out = []
        for r in self.base:
            x = rnd.random()
            if x < p_del:
                continue
            if x < p_del + p_mod:
                out.append(line(self.record(self.key_of(r), 1)))
            else:
                out.append(line(r))
        for _ in range(rnd.choice([0, 3, 40])):        # new keys, in order
            k = self.new_key()
            if k not in keys:
                keys.add(k)
                out.append(line(self.record(k, 2)))
        out.sort(key=lambda s: self.key_of(json.loads(s)))
        for _ in range(rnd.choice([0, 0, 1, 5])):       # duplicates
            if not out:
                break
            src = rnd.randrange(len(out))
            dup = out[src]
            if rnd.random() < 0.5:                      # changed duplicate
                dup = line(self.record(self.key_of(json.loads(dup)), 3))
            out.insert(rnd.randrange(len(out) + 1), dup)
        shape = rnd.choice(["sorted", "sorted", "sorted", "swaps", "block",
                            "reversed", "shuffled"])
        if shape == "swaps":
            for _ in range(3):
                i = rnd.randrange(max(1, len(out) - 1))
                out[i:i + 2] = out[i:i + 2][::-1]
        elif shape == "block" and len(out) > 20:
            i = rnd.randrange(len(out) - 10)
            block = out[i:i + 10]
            del out[i:i + 10]
            out[0:0] = block
        elif shape == "reversed":
            out.reverse()
        elif shape == "shuffled":
            rnd.shuffle(out)
        for _ in range(rnd.choice([0, 0, 2])):         # bad lines
            out.insert(rnd.randrange(len(out) + 1), '{"id": oops}')
        self.shape = shape
        return out

    def key_arg(self):
        return "region,n" if self.compound else "id"


def sweep_data():
    """The crash sweeps' data (SQLite's and PostgreSQL's): 5,000 records,
    then the same with every 97th deleted, every 89th changed and 40 new
    ones, as lines."""
    rnd = random.Random(101)
    old = [{"id": i, "name": "item %d" % i, "score": rnd.random()}
           for i in range(1, 5001)]
    new = []
    for r in old:
        if r["id"] % 97 == 0:
            continue                                    # deleted
        if r["id"] % 89 == 0:
            r = dict(r, name="changed")                 # changed
        new.append(line(r))
    new += [line({"id": i, "name": "new"}) for i in range(6000, 6040)]
    return old, new


def write(path, lines):
    with open(path, "w") as f:
        f.write("".join(s + "\n" for s in lines))


def table(db, with_run=True):
    """Every row, atomsync's columns included (without _atomsync_run, the
    publishing run's id, when runs were numbered differently)."""
    c = sqlite3.connect(db)
    try:
        cols = [r[1] for r in c.execute('PRAGMA table_info("t")')
                if with_run or r[1] != "_atomsync_run"]
        return c.execute('SELECT %s FROM "t" ORDER BY 1, 2' % ", ".join(
            '"%s"' % x for x in cols)).fetchall()
    finally:
        c.close()


def tables(db):
    c = sqlite3.connect(db)
    try:
        return sorted(r[0] for r in c.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'"))
    finally:
        c.close()


class SpansTest(unittest.TestCase):

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="atomsync-spans-")

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def path(self, name):
        return os.path.join(self.dir, name)

    def load(self, db, src, sc, mode, env=None, check=None):
        return run(["-v", "load", "sqlite:" + db, "t", src, "--key",
                    sc.key_arg(), "--mode", mode, "--max-rejects", "10",
                    "--json"], cwd=self.dir, env=env, check=check)

    def base_db(self, sc, mode):
        base = self.path("base.db")
        for f in (base, base + "-wal", base + "-shm"):
            if os.path.exists(f):
                os.unlink(f)
        write(self.path("base.jsonl"), [line(r) for r in sc.base])
        self.load(base, self.path("base.jsonl"), sc, mode, check=OK)
        write(self.path("next.jsonl"), sc.lines)
        return base

    def copy(self, base, name):
        db = self.path(name + ".db")
        c = sqlite3.connect(base)
        d = sqlite3.connect(db)
        c.backup(d)
        c.close()
        d.close()
        return db

    def outcome(self, p):
        """Exit code and counts; a run that was refused or failed has its
        record too."""
        res = json.loads(p.stdout)
        if isinstance(res, list):
            self.assertEqual(len(res), 1, p.stdout)
            res = res[0]
        for k in COUNTS:
            self.assertIsInstance(res.get(k), int, p.stdout)
        return p.returncode, {k: res[k] for k in COUNTS}

    def test_same_result_as_parsing_everything(self):
        """Invariants 5 and 10 over 48 random inputs: spans change neither
        the table nor the counts."""
        spans_seen = 0
        for seed in range(48):
            compound = seed % 2 == 1
            mode = "full" if seed % 3 else "incremental"
            sc = Scenario(seed, compound)
            base = self.base_db(sc, mode)
            results = {}
            for name, env in VARIANTS.items():
                db = self.copy(base, name)
                p = self.load(db, self.path("next.jsonl"), sc, mode, env=env)
                self.assertIn(p.returncode, (0, 1, 3), p.stderr)
                results[name] = (self.outcome(p), table(db), tables(db))
                if name == "spans" and "spans)" in p.stderr and \
                        " (0 spans)" not in p.stderr:
                    spans_seen += 1
            what = "seed %d (%s, %s, %s)" % (seed, mode, sc.shape,
                                             "compound key" if compound else "id")
            for name in ("spans", "no-spans"):
                self.assertEqual(results[name][0], results["parse-all"][0],
                                 "%s: %s counts" % (what, name))
                self.assertEqual(results[name][1], results["parse-all"][1],
                                 "%s: %s table" % (what, name))
                # Nothing of the staging is left behind.
                self.assertEqual(results[name][2], results["parse-all"][2],
                                 "%s: %s tables" % (what, name))
        self.assertGreater(spans_seen, 20, "spans were hardly ever made")

    def test_reload_stages_spans_only(self):
        """An unchanged reload of 3,000 rows is staged as spans (one per
        checkpoint of 1,000 lines) and counted as 3,000 unchanged."""
        sc = Scenario(5, False)
        sc.base = [sc.record((i,), 0) for i in range(1, 3001)]
        base = self.base_db(sc, "full")
        write(self.path("next.jsonl"), [line(r) for r in sc.base])
        p = self.load(base, self.path("next.jsonl"), sc, "full", check=OK)
        self.assertIn("3000 of 3000 records matched their published text and "
                      "were not parsed (3 spans)", p.stderr)
        self.assertEqual(self.outcome(p)[1]["unchanged"], 3000)
        self.assertEqual(len(table(base)), 3000)

    def test_crash_then_resume(self):
        """Invariants 1 and 4: a run with spans killed at each step of
        staging and publish leaves the table as it was; the resumed run
        (which uses the spans staged before the crash) ends exactly where
        a run that parses everything does."""
        points = ["stage.committed:1", "stage.committed:3", "stage.rows:2",
                  "publish.marked:1", "publish.begin:1", "publish.upserted:1",
                  "publish.deleted:1", "publish.before_commit:1",
                  "publish.committed:1"]
        cfg = ("store: sqlite:DB\ndatasets:\n  t:\n    key: [id]\n"
               "    mode: full\n    batch_size: 20\n    source:\n"
               "      file: in.jsonl\n")
        old, new = sweep_data()

        def sync(db, env=None, check=None):
            with open(self.path("atomsync.yml"), "w") as f:
                f.write(cfg.replace("DB", db))
            p = run(["-v", "run", "t", "--json"], cwd=self.dir, env=env,
                    check=check)
            res = json.loads(p.stdout)[0] if p.stdout.strip() else {}
            return p, {k: res.get(k) for k in COUNTS if k != "seen"}

        base = self.path("base.db")
        write(self.path("in.jsonl"), [line(r) for r in old])
        sync(base, check=OK)
        write(self.path("in.jsonl"), new)
        oracle = self.copy(base, "oracle")
        _, want_counts = sync(oracle, env=VARIANTS["parse-all"], check=OK)
        want = table(oracle, with_run=False)
        before = table(base)
        db = self.copy(base, "spans")
        p, got = sync(db, check=OK)
        self.assertRegex(p.stderr, r"\((1[0-9]|[2-9][0-9]|1[0-9][0-9]) spans\)")
        self.assertEqual((table(db, with_run=False), got), (want, want_counts))
        for point in points:
            db = self.copy(base, "crash")
            p, _ = sync(db, env={"ATOMSYNC_CRASH": point})
            self.assertEqual(p.returncode, CRASH_EXIT, "%s: %s" % (point, p.stderr))
            if point != "publish.committed:1":
                self.assertEqual(table(db), before, point)
            p, got = sync(db, check=OK)
            self.assertEqual(table(db, with_run=False), want, point)
            if point != "publish.committed:1":
                self.assertEqual(got, want_counts, point)
            self.assertEqual([t for t in tables(db) if "_stage_" in t], [], point)
            os.unlink(db)


if __name__ == "__main__":
    unittest.main()
