"""History (`history: snapshot | scd2`) and `atomsync rollback`.

Snapshot: after every run, <table>_history holds a row per live record with
the run id (seed 000: the time series behind trending scores).  SCD2: a
version per change, valid_from_run..valid_to_run.  Both are written in the
publish transaction (invariant 1) and pruned there by history_keep.

Rollback restores the live table to exactly its content after run N
(invariant 1), in one transaction (invariant 2 when it is killed), as a new
run on record with its counts (invariant 10), under the dataset's lease
(invariant 6); a later run counts against the restored state and never
resumes staging built on the state that was rolled back (invariants 4, 5).
A request the history cannot satisfy is refused with exit 2 and nothing
changed.  Seed 003: a chain reorg is a rollback then a normal run.
"""

import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from atomsync_test import (CRASH_EXIT, FAILED, LEASED, OK, USAGE,  # noqa: E402
                           StoreTestCase, for_each_store, make_records, write_jsonl)

COLS = ["id", "name", "downloads", "score"]
TYPES = {"id": "integer", "name": "text", "downloads": "integer", "score": "real"}


def cfg(history="snapshot", mode="full", extra="", cols=None, key="[id]", name="d"):
    cols = cols or TYPES
    return """
store: {store}
datasets:
  %s:
    mode: %s
    key: %s
    history: %s
%s    guard: {max_delete_fraction: 0.9}
    columns:
%s    source:
      file: in.jsonl
""" % (name, mode, key, history, extra,
       "".join("      %s: {type: %s}\n" % kv for kv in cols.items()))


def evolve(recs, step):
    """The catalog of run `step`: some rows updated, some deleted, some new."""
    out = []
    for r in recs:
        if r["id"] % 17 == step:
            continue                                        # deleted
        r = dict(r)
        if r["id"] % 5 == step % 5:
            r["downloads"] += 1000 * step                   # updated
        if r["id"] % 11 == step:
            r["name"] = "renamed %d" % step                 # updated
        out.append(r)
    out += make_records(4, seed=step, start=1000 + 10 * step)  # inserted
    return out


def diff(before, after):
    """(inserted, updated, deleted) from rows `before` to rows `after`."""
    b = {r[0]: r for r in before}
    a = {r[0]: r for r in after}
    ins = len([k for k in a if k not in b])
    upd = len([k for k in a if k in b and a[k] != b[k]])
    return ins, upd, len([k for k in b if k not in a])


class HistoryCase(StoreTestCase):
    history = "snapshot"

    def sync(self, recs, *args, check=OK):
        write_jsonl(self.path("in.jsonl"), recs)
        p = self.atomsync("run", *args, check=check)
        return p, self.runs("d")[0]

    def five_runs(self, extra=""):
        """Five runs with inserts, updates and deletes; returns {run_id:
        (input, live rows right after the run)}."""
        self.config(cfg(self.history, extra=extra))
        recs = make_records(120)
        states = {}
        for step in range(1, 6):
            if step > 1:
                recs = evolve(recs, step)
            _, r = self.sync(recs)
            self.assertEqual(r["status"], "completed")
            states[r["run_id"]] = (recs, self.store.rows("d", COLS))
        return states

    def rollback(self, n, check=OK, *args):
        return self.atomsync("rollback", "d", "--to-run", str(n), *args, check=check)

    def columns(self, table):
        if self.store.name == "postgres":
            return [c[0] for c in self.store.columns(table)]
        return [r[1] for r in self.store.query('PRAGMA table_info("%s")' % table)]

    def unchanged_state(self):
        """Everything a refused rollback must leave as it was."""
        st = self.status()["d"]
        return (self.store.full_rows("d"), len(self.runs("d")),
                st["published_run"], st["resumable"], st["cursor"],
                self.store.query('SELECT count(*) FROM "d_history"'))


@for_each_store
class SnapshotTest(HistoryCase):
    history = "snapshot"

    def test_a_row_per_record_per_run(self):
        """Seed 000: the snapshot of run N is the live table after run N,
        every mapped column, written with the run (invariant 1)."""
        states = self.five_runs()
        for run_id, (_, rows) in states.items():
            snap = self.store.query(
                'SELECT id, name, downloads, score FROM "d_history" WHERE run_id = ? '
                'ORDER BY id', (run_id,))
            self.assertEqual(snap, rows, "snapshot of run %d" % run_id)
        self.assertEqual(self.store.query('SELECT count(*) FROM "d_history"')[0][0],
                         sum(len(rows) for _, rows in states.values()))

    def test_snapshot_columns_only_and_no_rollback(self):
        """snapshot_columns: the key and those columns per run; such a
        history cannot restore a table, and says why (exit 2)."""
        self.config(cfg("snapshot", extra="    snapshot_columns: [downloads]\n"))
        recs = make_records(50)
        _, r1 = self.sync(recs)
        _, r2 = self.sync(evolve(recs, 2))
        self.assertEqual(self.columns("d_history"), ["run_id", "id", "downloads"])
        for run in (r1, r2):
            n = self.store.query('SELECT count(*) FROM "d_history" WHERE run_id = ?',
                                 (run["run_id"],))[0][0]
            self.assertEqual(n, run["seen"])
        before = self.unchanged_state()
        p = self.rollback(r1["run_id"], check=USAGE)
        self.assertIn("needs every mapped column", p.stderr)
        self.assertEqual(self.unchanged_state(), before)


class RollbackCases:
    """Rollback with either kind of history (a mixin: see the classes at
    the end)."""

    def test_rollback_to_each_earlier_run(self):
        """Invariant 1: after `rollback --to-run N` the table holds exactly
        its content after run N, whatever was rolled back before; the
        rollback is a completed run with its counts (invariant 10)."""
        states = self.five_runs()
        ids = sorted(states)
        for n in [ids[2], ids[0], ids[3], ids[1], ids[4], ids[0]]:
            before = self.store.rows("d", COLS)
            p = self.rollback(n)
            self.assertIn("restored the table to its state after run %d" % n, p.stdout)
            self.assertEqual(self.store.rows("d", COLS), states[n][1], "run %d" % n)
            r = self.runs("d")[0]
            self.assertEqual((r["kind"], r["status"]), ("rollback", "completed"))
            ins, upd, dele = diff(before, states[n][1])
            self.assertEqual((r["inserted"], r["updated"], r["deleted"]), (ins, upd, dele))
            self.assertEqual(r["unchanged"], len(states[n][1]) - ins - upd)
            self.assertEqual(self.status()["d"]["published_run"], r["run_id"])
            self.assertEqual(self.store.integrity(), "ok")
        # Rolling back to where the table already is changes nothing.
        self.rollback(ids[0])
        r = self.runs("d")[0]
        self.assertEqual((r["inserted"], r["updated"], r["deleted"]), (0, 0, 0))

    def test_runs_after_a_rollback(self):
        """A run after a rollback counts against the restored state, and
        the same input again changes nothing (invariant 5); a rollback can
        itself be the target of a later rollback."""
        states = self.five_runs()
        ids = sorted(states)
        self.rollback(ids[1])
        rollback_run = self.runs("d")[0]["run_id"]
        _, r = self.sync(states[ids[4]][0])
        ins, upd, dele = diff(states[ids[1]][1], states[ids[4]][1])
        self.assertEqual((r["inserted"], r["updated"], r["deleted"]), (ins, upd, dele))
        self.assertEqual(self.store.rows("d", COLS), states[ids[4]][1])
        _, r = self.sync(states[ids[4]][0])
        self.assertEqual((r["inserted"], r["updated"], r["deleted"], r["unchanged"]),
                         (0, 0, 0, len(states[ids[4]][1])))
        self.rollback(rollback_run)
        self.assertEqual(self.store.rows("d", COLS), states[ids[1]][1])
        # Restored rows carry their hashes: the input of that state is
        # unchanged against them (no row rewritten).
        full = self.store.full_rows("d")
        _, r = self.sync(states[ids[1]][0])
        self.assertEqual((r["inserted"], r["updated"], r["deleted"]), (0, 0, 0))
        self.assertEqual(self.store.full_rows("d"), full)

    def test_rollback_drops_resumable_staging(self):
        """A staging begun before the rollback was built on the state the
        rollback replaced: the rollback drops it, and the next run starts
        over (resumed_from null) and publishes the right counts
        (invariants 4, 10)."""
        states = self.five_runs(extra="    batch_size: 20\n")
        ids = sorted(states)
        # Past the file source's first checkpoint (every 1,000 records).
        recs = evolve(states[ids[4]][0], 6) + make_records(3000, start=5000)
        write_jsonl(self.path("in.jsonl"), recs)
        p = self.atomsync("run", env={"ATOMSYNC_CRASH": "stage.committed:2"})
        self.assertEqual(p.returncode, CRASH_EXIT, p.stderr)
        self.assertTrue(self.status()["d"]["resumable"])
        self.rollback(ids[2])
        self.assertFalse(self.status()["d"]["resumable"])
        stages = [t for t in self.tables() if t.startswith("_atomsync_stage_")]
        self.assertEqual(stages, [])
        _, r = self.sync(recs)
        self.assertIsNone(r["resumed_from"])
        ins, upd, dele = diff(states[ids[2]][1], self.store.rows("d", COLS))
        self.assertEqual((r["inserted"], r["updated"], r["deleted"]), (ins, upd, dele))
        self.assertEqual(r["seen"], len(recs))

    def tables(self):
        if self.store.name == "postgres":
            return [r[0] for r in self.store.query(
                "SELECT relname FROM pg_class WHERE relkind = 'r' AND "
                "relnamespace = current_schema()::regnamespace")]
        return [r[0] for r in self.store.query(
            "SELECT name FROM sqlite_master WHERE type = 'table'")]

    def test_refused_with_nothing_changed(self):
        """Exit 2 with one line saying why, and nothing changed: no run on
        record, the table, state and history as they were."""
        states = self.five_runs()
        ids = sorted(states)
        # A failed run: a bad record fails it (invariant 9).
        write_jsonl(self.path("in.jsonl"), states[ids[4]][0] + [{"id": "x"}])
        self.atomsync("run", check=FAILED)
        failed = self.runs("d")[0]
        self.assertEqual(failed["status"], "failed")
        before = self.unchanged_state()
        cases = [(999999, "there is no run 999999"),
                 (failed["run_id"], "failed; only the state after a completed run")]
        for n, why in cases:
            p = self.rollback(n, check=USAGE)
            self.assertEqual(len(p.stderr.strip().splitlines()), 1, p.stderr)
            self.assertIn(why, p.stderr)
            self.assertIn("nothing changed", p.stderr)
            self.assertEqual(self.unchanged_state(), before)
        for bad in (["--to-run", "0"], ["--to-run", "x"], []):
            self.atomsync("rollback", "d", *bad, check=USAGE)
        self.assertEqual(self.unchanged_state(), before)

    def test_refused_when_history_is_off(self):
        """history: none keeps nothing to restore: exit 2, nothing changed."""
        self.config(cfg("none"))
        _, r1 = self.sync(make_records(30))
        self.sync(evolve(make_records(30), 2))
        before = (self.store.full_rows("d"), len(self.runs("d")))
        p = self.rollback(r1["run_id"], check=USAGE)
        self.assertIn("has no history (history: none)", p.stderr)
        self.assertEqual((self.store.full_rows("d"), len(self.runs("d"))), before)

    def test_refused_for_runs_before_history_began(self):
        """Runs published before history was turned on cannot be restored;
        the message names the oldest one that can."""
        self.config(cfg("none"))
        _, r1 = self.sync(make_records(30))
        self.config(cfg(self.history))
        _, r2 = self.sync(evolve(make_records(30), 2))
        p = self.rollback(r1["run_id"], check=USAGE)
        self.assertIn("oldest run it can restore is %d" % r2["run_id"], p.stderr)

    def test_lease_held_exits_4(self):
        """Invariant 6: a rollback takes the dataset's lease like a run."""
        states = self.five_runs()
        before = self.unchanged_state()
        if self.store.name == "postgres":
            self.store.execute("UPDATE atomsync_leases SET owner = 'elsewhere/1/1/1', "
                         "expires_at = now() + interval '1 hour' WHERE dataset = 'd'")
        else:
            self.store.execute("UPDATE atomsync_leases SET owner = 'elsewhere/1/1/1', "
                         "expires_at = ? WHERE dataset = 'd'", (time.time() + 3600,))
        p = self.rollback(min(states), check=LEASED)
        self.assertIn("being run by elsewhere/1/1/1", p.stderr)
        self.assertEqual(self.unchanged_state(), before)

    def test_killed_rollback_changes_nothing(self):
        """Invariant 2: a rollback killed before its commit leaves the table,
        its history and the run records as they were; run again, it works."""
        states = self.five_runs()
        ids = sorted(states)
        before = self.unchanged_state()
        for point in ("rollback.applied", "history.written", "rollback.before_commit"):
            p = self.atomsync("rollback", "d", "--to-run", str(ids[0]),
                              env={"ATOMSYNC_CRASH": point})
            self.assertEqual(p.returncode, CRASH_EXIT, point + ": " + p.stderr)
            self.assertEqual(self.unchanged_state(), before, point)
        self.rollback(ids[0])
        self.assertEqual(self.store.rows("d", COLS), states[ids[0]][1])

    def test_retention_by_runs(self):
        """history_keep: 2 keeps the history of the last two runs; the
        rollback refuses older ones, naming the oldest it can restore."""
        states = self.five_runs(extra="    history_keep: 2\n")
        ids = sorted(states)
        p = self.rollback(ids[2], check=USAGE)
        self.assertIn("oldest run it can restore is %d" % ids[3], p.stderr)
        self.assertIn("pruned by history_keep", p.stderr)
        if self.history == "snapshot":
            runs = self.store.query('SELECT DISTINCT run_id FROM "d_history" ORDER BY 1')
            self.assertEqual([r[0] for r in runs], ids[3:])
        else:
            old = self.store.query('SELECT count(*) FROM "d_history" WHERE '
                                   'valid_to_run <= ?', (ids[3],))[0][0]
            self.assertEqual(old, 0)
        self.rollback(ids[3])
        self.assertEqual(self.store.rows("d", COLS), states[ids[3]][1])

    def test_retention_by_age(self):
        """history_keep: 2s keeps the history of runs finished in the last
        two seconds (and always the current run's)."""
        self.config(cfg(self.history, extra="    history_keep: 2s\n"))
        recs = make_records(40)
        _, r1 = self.sync(recs)
        _, r2 = self.sync(evolve(recs, 2))
        self.rollback(r1["run_id"])                 # still kept
        time.sleep(2.5)
        _, r4 = self.sync(evolve(recs, 3))
        p = self.rollback(r2["run_id"], check=USAGE)
        self.assertIn("oldest run it can restore is %d" % r4["run_id"], p.stderr)
        if self.history == "snapshot":
            runs = self.store.query('SELECT DISTINCT run_id FROM "d_history"')
            self.assertEqual([r[0] for r in runs], [r4["run_id"]])

    def test_incremental_cursor_follows_the_rollback(self):
        """Invariant 8: after a rollback the cursor is that of the restored
        rows, so the next incremental run asks again from there."""
        self.config(cfg(self.history, mode="incremental", extra="    cursor: downloads\n"))
        recs = make_records(40)
        _, r1 = self.sync(recs)
        cur1 = self.status()["d"]["cursor"]
        more = [dict(r, downloads=r["downloads"] + 10_000_000) for r in recs[:5]]
        self.sync(more)
        self.assertNotEqual(self.status()["d"]["cursor"], cur1)
        self.rollback(r1["run_id"])
        self.assertEqual(self.status()["d"]["cursor"], cur1)
        self.assertEqual(self.store.rows("d", COLS),
                         sorted(tuple(r[c] for c in COLS) for r in recs))

    def test_scoped_rollback(self):
        """A scoped dataset is restored whole, every scope as after run N."""
        cols = {"id": "integer", "user_id": "integer", "title": "text"}
        self.config(cfg(self.history, mode="scoped", extra="    scope: [user_id]\n",
                        cols=cols))

        def ev(users, tag):
            return [{"id": u * 100 + i, "user_id": u, "title": "%s %d" % (tag, i)}
                    for u in users for i in range(5)]
        _, r1 = self.sync(ev([1, 2, 3], "a"))
        after1 = self.store.rows("d", list(cols))
        self.sync(ev([2], "b")[:3])
        self.sync(ev([3, 4], "c"))
        self.rollback(r1["run_id"])
        self.assertEqual(self.store.rows("d", list(cols)), after1)

    def test_reorg_rollback_then_sync(self):
        """Seed 003: events keyed by (tx_hash, log_index) in append mode.
        Blocks 13-14 turn out to be on an abandoned fork: rolling back to
        the run that published block 12, then a normal run of the canonical
        chain, leaves exactly the canonical events."""
        cols = {"tx_hash": "text", "log_index": "integer", "block": "integer",
                "value": "integer"}
        self.config(cfg(self.history, mode="append", key="[tx_hash, log_index]",
                        cols=cols))

        def events(blocks, fork=""):
            return [{"tx_hash": "0x%s%04x%02x" % (fork, b, t), "log_index": i,
                     "block": b, "value": b * 100 + t * 10 + i}
                    for b in blocks for t in range(2) for i in range(2)]
        canonical = events(range(1, 13))
        self.sync(events(range(1, 11)))
        _, at12 = self.sync(events(range(11, 13)))
        self.sync(events(range(13, 15), fork="f"))
        self.assertEqual(len(self.store.rows("d", list(cols))), 14 * 4)
        # Reorg detected at block 13: back to the state after block 12 ...
        p = self.rollback(at12["run_id"])
        r = self.runs("d")[0]
        self.assertEqual((r["kind"], r["deleted"], r["inserted"]), ("rollback", 8, 0))
        # ... then the new canonical chain from block 13.
        canonical += events(range(13, 16))
        _, r = self.sync(events(range(13, 16)))
        self.assertEqual((r["inserted"], r["deleted"]), (12, 0))
        want = sorted(tuple(e[c] for c in cols) for e in canonical)
        self.assertEqual(self.store.rows("d", list(cols)), want)
        self.assertFalse([x for x in self.store.rows("d", list(cols))
                          if x[0].startswith("0xf")], p.stdout)

    def test_json_output(self):
        states = self.five_runs()
        p = self.atomsync("rollback", "d", "--to-run", str(min(states)), "--json",
                          check=OK)
        r = json.loads(p.stdout)
        self.assertEqual((r["kind"], r["status"], r["dataset"]),
                         ("rollback", "completed", "d"))
        self.assertEqual(r, self.runs("d")[0] | {"finished_at": r["finished_at"],
                                                 "started_at": r["started_at"]})


@for_each_store
class SnapshotRollbackTest(RollbackCases, HistoryCase):
    history = "snapshot"


@for_each_store
class Scd2RollbackTest(RollbackCases, HistoryCase):
    history = "scd2"

    def test_validity_ranges(self):
        """SCD2: per key, versions with contiguous, non-overlapping ranges;
        one open version per live row, none for deleted rows; the versions
        valid at run N are the table after run N."""
        states = self.five_runs()
        vers = self.store.query('SELECT id, valid_from_run, valid_to_run, name, '
                                'downloads, score FROM "d_history" '
                                'ORDER BY id, valid_from_run')
        by_id = {}
        for v in vers:
            by_id.setdefault(v[0], []).append(v)
        live = {r[0] for r in self.store.rows("d", COLS)}
        for k, vs in by_id.items():
            for a, b in zip(vs, vs[1:]):
                self.assertEqual(a[2], b[1], "key %d: a gap or an overlap" % k)
            for v in vs:
                self.assertTrue(v[2] is None or v[2] > v[1])
            self.assertEqual(vs[-1][2] is None, k in live, "key %d" % k)
        for n, (_, rows) in states.items():
            at = sorted((v[0], v[3], v[4], v[5]) for v in vers
                        if v[1] <= n and (v[2] is None or v[2] > n))
            self.assertEqual(at, rows, "versions valid at run %d" % n)
        # An unchanged row keeps its version: the number of versions is
        # that of the changes, not of runs times rows.
        changes = len(states[min(states)][1]) + sum(
            sum(diff(states[a][1], states[b][1])[:2])
            for a, b in zip(sorted(states), sorted(states)[1:]))
        self.assertEqual(len(vers), changes)
