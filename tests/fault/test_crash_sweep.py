"""Crash-point sweep (SQLite only: the named crash points live in
src/store/sqlite.c; the PostgreSQL store gets its own points and its own sweep).

For every named point, every mode and every pass N of that point in a run,
the process is made to _exit(86) at the Nth pass (ATOMSYNC_CRASH=point:N),
starting from a published old state.  After each crash:

  - the live table is exactly the old state (or, after publish.committed,
    exactly the new one): invariants 1 and 2, checked on full row lists;
  - the crashed run is on record as active/publishing (or completed after
    the commit), and the next start records it as failed (invariant 10);
  - the incremental cursor is the old one unless the publish committed
    (invariant 8);
  - the next plain `run` resumes from the last committed checkpoint when
    there is one (resumed_from names the crashed run) and ends in exactly
    the state and counts of an uninterrupted run (invariant 4);
  - PRAGMA integrity_check is ok.

Pass counts are discovered with ATOMSYNC_CRASH_LOG on an uninterrupted run.
batch_size 500 with 3,500 records: staging commits at every file checkpoint
(1000 records) and at the end of the file, so the stage points pass 4 times.
Full mode uses 200: its unchanged lines are staged as spans (a row per run
of matched lines, store.h), so a checkpoint's 1,000 lines make about 270
rows, and the sweep crashes inside the span staging and publish too.
"""

import collections
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from atomsync_test import (OK, CRASH_EXIT, FIXTURES, StoreTestCase,  # noqa: E402
                           for_each_store, make_records, make_store,
                           write_jsonl)

POINTS = ["run.begun", "stage.begin", "stage.rows", "stage.checkpoint",
          "stage.committed", "publish.marked", "publish.begin",
          "publish.upserted", "publish.deleted", "publish.before_commit",
          "publish.committed"]

HEAD = """
store: {store}
datasets:
  d:
    table: items
    batch_size: 500
"""


def expected_counts(mode, old, new_list, key, cols, scope=None):
    """Counts of an uninterrupted run, computed independently of atomsync."""
    def tup(r):
        return tuple(r.get(c) for c in cols)

    def k(r):
        return tuple(r[c] for c in key)
    old_by = {k(r): tup(r) for r in old}
    new_by = {}
    for r in new_list:
        if mode == "append" and k(r) in new_by:
            continue
        new_by[k(r)] = tup(r)
    c = collections.Counter()
    for kk, v in new_by.items():
        if kk not in old_by:
            c["inserted"] += 1
        elif old_by[kk] == v:
            c["unchanged"] += 1
        else:
            c["updated"] += 1
    if mode == "full":
        c["deleted"] = len([kk for kk in old_by if kk not in new_by])
    elif mode == "scoped":
        si = [cols.index(s) for s in scope]
        scopes = {tuple(v[i] for i in si) for v in new_by.values()}
        c["deleted"] = len([kk for kk, v in old_by.items()
                            if tuple(v[i] for i in si) in scopes and kk not in new_by])
    c["seen"] = len(new_list)
    c["duplicates"] = len(new_list) - len(new_by)
    return {n: c[n] for n in ("seen", "inserted", "updated", "unchanged", "deleted",
                              "duplicates")}


def expected_rows(mode, old, new_list, key, cols, scope=None):
    def k(r):
        return tuple(r[c] for c in key)
    out = {}
    if mode in ("incremental", "append", "scoped"):
        for r in old:
            out[k(r)] = tuple(r.get(c) for c in cols)
    if mode == "scoped":
        scopes = {tuple(r[s] for s in scope) for r in new_list}
        out = {kk: v for kk, v in out.items()
               if tuple(v[cols.index(s)] for s in scope) not in scopes}
    for r in new_list:
        if mode == "append" and k(r) in out:
            continue
        out[k(r)] = tuple(r.get(c) for c in cols)
    return [out[kk] for kk in sorted(out)]


def scenario(mode):
    """(config body, cols, key, scope, old records, new records)."""
    if mode == "full":
        cols = ["id", "name", "downloads", "score"]
        old = make_records(3500)
        new = []
        for r in old:
            if r["id"] % 10 == 0:
                continue                       # deleted (10%)
            r = dict(r)
            if r["id"] % 7 == 0:
                r["downloads"] += 1            # updated
            new.append(r)
        new += make_records(300, seed=2, start=5001)  # inserted
        for r in new[:5]:
            d = dict(r)
            d["name"] += " (again)"
            new.append(d)                      # duplicates: later wins
        body = """    key: [id]
    columns:
      id: {type: integer}
      name: {type: text}
      downloads: {type: integer}
      score: {type: real}
    source: {file: in.jsonl}
"""
        return body, cols, ["id"], None, old, new
    if mode == "incremental":
        cols = ["id", "name", "downloads", "updated"]

        def rec(i, v):
            return {"id": i, "name": "n%d v%d" % (i, v), "downloads": i * (v + 1),
                    "updated": 100000 * v + i}
        old = [rec(i, 0) for i in range(1, 3501)]
        new = [rec(i, 1) for i in range(1, 3501) if i % 3 == 0]
        new += [rec(i, 1) for i in range(4001, 6334)]
        body = """    mode: incremental
    key: [id]
    cursor: updated
    columns:
      id: {type: integer}
      name: {type: text}
      downloads: {type: integer}
      updated: {type: integer}
    source: {file: in.jsonl}
"""
        return body, cols, ["id"], None, old, new
    if mode == "scoped":
        cols = ["id", "user_id", "name", "downloads"]

        def rec(i, v):
            return {"id": i, "user_id": i % 10, "name": "e%d v%d" % (i, v),
                    "downloads": i + (v if i % 4 == 0 else 0)}
        old = [rec(i, 0) for i in range(1, 3501)]
        new = [rec(i, 1) for i in range(1, 9501)
               if i % 10 < 5 and i % 13 != 0 and (i <= 3500 or i % 2 == 0)]
        body = """    mode: scoped
    key: [id]
    scope: [user_id]
    columns:
      id: {type: integer}
      user_id: {type: integer}
      name: {type: text}
      downloads: {type: integer}
    source: {file: in.jsonl}
"""
        return body, cols, ["id"], ["user_id"], old, new
    if mode == "append":
        cols = ["tx_hash", "log_index", "value"]

        def ev(i):
            return {"tx_hash": "0x%064x" % (i // 4), "log_index": i % 4,
                    "value": i * 7}
        old = [ev(i) for i in range(3000)]
        new = [ev(i) for i in range(3500)]      # replays 3000 known events
        new += [ev(i) for i in range(3000, 3010)]  # identical repeats inside the run
        body = """    mode: append
    key: [tx_hash, log_index]
    columns:
      tx_hash: {type: text}
      log_index: {type: integer}
      value: {type: integer}
    source: {file: in.jsonl}
"""
        return body, cols, ["tx_hash", "log_index"], None, old, new
    raise ValueError(mode)


class CrashSweepTest(StoreTestCase):
    """SQLite only (the crash points are in src/store/sqlite.c)."""
    store_name = "sqlite"

    def reset_store(self):
        for suffix in ("", "-wal", "-shm"):
            p = self.store.path + suffix
            if os.path.exists(p):
                os.unlink(p)

    def publish_old(self, old):
        self.reset_store()
        write_jsonl(self.path("in.jsonl"), old)
        self.atomsync("run", check=OK)
        write_jsonl(self.path("in.jsonl"), self.new)

    def cursor(self):
        r = self.store.query("SELECT cursor FROM atomsync_state WHERE dataset = 'd'")
        return r[0][0] if r else None

    def sweep(self, mode):
        body, cols, key, scope, old, new = scenario(mode)
        self.new = new
        self.config((HEAD.replace("500", "200") if mode == "full" else HEAD) + body)
        old_rows = expected_rows("full", [], old, key, cols)
        new_rows = expected_rows(mode, old, new, key, cols, scope)
        want = expected_counts(mode, old, new, key, cols, scope)
        self.assertNotEqual(old_rows, new_rows)

        # Discover the passes of each point on an uninterrupted run.
        self.publish_old(old)
        self.assertEqual(self.store.rows("items", cols), old_rows)
        old_cursor = self.cursor()
        log = self.path("crash.log")
        self.atomsync("run", env={"ATOMSYNC_CRASH_LOG": log}, check=OK)
        with open(log) as f:
            passes = collections.Counter(line.strip() for line in f)
        os.unlink(log)
        self.assertEqual(self.store.rows("items", cols), new_rows)
        r = self.runs("d")[0]
        self.assertEqual({k: r[k] for k in want}, want, "uninterrupted run counts")
        new_cursor = self.cursor()
        for p in POINTS:
            self.assertGreaterEqual(passes[p], 1, "point %s never passed" % p)
        stage_commits = passes["stage.committed"]
        self.assertGreaterEqual(stage_commits, 4, passes)
        print("\n%s: passes %s" % (mode, dict(passes)), file=sys.stderr)

        for point in POINTS:
            for n in range(1, passes[point] + 1):
                with self.subTest(mode=mode, point=point, n=n):
                    self.crash_once(mode, point, n, stage_commits, old, cols, old_rows,
                                    new_rows, want, old_cursor, new_cursor)

    def crash_once(self, mode, point, n, stage_commits, old, cols, old_rows, new_rows,
                   want, old_cursor, new_cursor):
        self.publish_old(old)
        p = self.atomsync("run", env={"ATOMSYNC_CRASH": "%s:%d" % (point, n)})
        self.assertEqual(p.returncode, CRASH_EXIT, p.stderr)
        committed = point == "publish.committed"

        # Invariants 1, 2: exactly the old state, or exactly the new one.
        rows = self.store.rows("items", cols)
        self.assertEqual(rows, new_rows if committed else old_rows)
        self.assertEqual(self.store.integrity(), "ok")
        # Invariant 8: the cursor moved only with the publish.
        if mode == "incremental":
            self.assertEqual(self.cursor(), new_cursor if committed else old_cursor)

        # Invariant 10: the crashed run is on record.
        crashed = self.runs("d")[0]
        if committed:
            self.assertEqual(crashed["status"], "completed")
            self.assertEqual({k: crashed[k] for k in want}, want)
        elif point.startswith("publish."):
            self.assertEqual(crashed["status"], "publishing")
        else:
            self.assertEqual(crashed["status"], "active")

        # Which staging commits (all with a checkpoint) survived the crash.
        if point == "run.begun":
            checkpoints = 0
        elif point.startswith("stage."):
            checkpoints = n if point == "stage.committed" else n - 1
        else:
            checkpoints = stage_commits
        resumable = checkpoints > 0 and not committed
        self.assertEqual(self.status()["d"]["resumable"], resumable)

        # Invariant 4: the next plain run ends as an uninterrupted run.
        self.atomsync("run", check=OK)
        self.assertEqual(self.store.rows("items", cols), new_rows)
        self.assertEqual(self.store.integrity(), "ok")
        runs = self.runs("d")
        last, before = runs[0], runs[1]
        self.assertEqual(before["run_id"], crashed["run_id"])
        self.assertEqual(before["status"], "completed" if committed else "failed")
        if committed:
            self.assertEqual((last["inserted"], last["updated"], last["deleted"]),
                             (0, 0, 0))
            self.assertIsNone(last["resumed_from"])
        else:
            self.assertEqual({k: last[k] for k in want}, want)
            self.assertEqual(last["resumed_from"],
                             crashed["run_id"] if resumable else None)
        if mode == "incremental":
            self.assertEqual(self.cursor(), new_cursor)
        # No staging left behind after a completed run.
        left = self.store.query("SELECT name FROM sqlite_master WHERE name LIKE "
                                "'\\_atomsync\\_stage\\_%' ESCAPE '\\'")
        self.assertEqual(left, [])

    def test_full(self):
        """Invariants 1, 2, 4, 10: full mode, every point and pass."""
        self.sweep("full")

    def test_incremental(self):
        """Invariants 1, 2, 4, 8, 10: incremental mode, every point and pass."""
        self.sweep("incremental")

    def test_scoped(self):
        """Invariants 1, 2, 4, 10: scoped mode, every point and pass."""
        self.sweep("scoped")

    def test_append(self):
        """Invariants 1, 2, 4, 10: append mode, every point and pass."""
        self.sweep("append")


GROUP = """
store: {store}
datasets:
  shop:
    mode: incremental
    schema: json
    batch_size: 40
    source:
      file: in.singer
      format: singer
      stream: "*"
"""
GROUP_TABLES = ("orders", "items", "customers")


@for_each_store
class GroupCrashSweepTest(StoreTestCase):
    """Every crash point an every-stream run passes (stream: "*": three
    tables staged on three connections, published in ONE transaction),
    every pass: afterwards every table holds the old state, or (after
    publish.group_committed) every table the new one, never a mix
    (invariants 1, 2 across tables); the STATE bookmarks moved only with
    the publish (invariant 8); the next run publishes all of them."""

    def tap(self, count, tag):
        import subprocess
        with open(self.path("in.singer"), "w") as f:
            subprocess.run([sys.executable, os.path.join(FIXTURES, "multitap.py"),
                            "--streams", ",".join(GROUP_TABLES), "--count",
                            str(count), "--tag", tag], stdout=f, check=True)

    def state(self):
        out = {}
        for t in GROUP_TABLES:
            rows = (self.store.rows(t, ["id", "data"])
                    if self.store.table_exists(t) else None)
            cur = self.store.query(
                "SELECT cursor FROM atomsync_state WHERE dataset = 'shop.%s'" % t)
            out[t] = (rows, cur[0][0] if cur else None)
        return out

    def publish_old(self):
        self.tap(100, "a")
        self.atomsync("run", check=OK)
        self.tap(150, "b")

    def test_group_sweep(self):
        self.config(GROUP)
        self.publish_old()
        old = self.state()
        log = self.path("crash.log")
        self.atomsync("run", env={"ATOMSYNC_CRASH_LOG": log}, check=OK)
        with open(log) as f:
            passes = collections.Counter(line.strip() for line in f)
        os.unlink(log)
        new = self.state()
        for t in GROUP_TABLES:
            self.assertNotEqual(old[t], new[t])
        for p in ("publish.group_begin", "publish.group_between",
                  "publish.group_before_commit", "publish.group_committed"):
            self.assertGreaterEqual(passes[p], 1, passes)
        self.assertEqual(passes["publish.group_between"], 2)
        self.assertGreaterEqual(passes["stage.committed"], 3, passes)
        print("\ngroup (%s): passes %s" % (self.store_name, dict(passes)),
              file=sys.stderr)
        for point in sorted(passes):
            for n in range(1, passes[point] + 1):
                with self.subTest(point=point, n=n):
                    self.store.cleanup()
                    for suffix in ("", "-wal", "-shm"):
                        if self.store_name == "sqlite" and \
                                os.path.exists(self.store.path + suffix):
                            os.unlink(self.store.path + suffix)
                    self.store = make_store(self.store_name, self.dir)
                    self.config(GROUP)
                    self.publish_old()
                    p = self.atomsync("run", env={"ATOMSYNC_CRASH": "%s:%d" % (point, n)})
                    self.assertEqual(p.returncode, CRASH_EXIT, p.stderr)
                    got = self.state()
                    want = new if point == "publish.group_committed" else old
                    self.assertEqual(got, want)
                    self.atomsync("run", check=OK)
                    self.assertEqual(self.state(), new)


if __name__ == "__main__":
    import unittest
    unittest.main()
