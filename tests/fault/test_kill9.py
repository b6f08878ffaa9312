"""kill -9 at random moments of a 200,000-record full refresh.

Invariant 1: after every kill the live table is exactly the previous state
or exactly the new one (compared by digest of the full row list), never a
mix.  Invariant 2: nothing of the previous state is lost.  Invariant 4: the
run started after a kill resumes from the last committed checkpoint whenever
the killed run left one (resumed_from names the killed run), most of them do,
and the lineage ends in exactly the state and counts of an uninterrupted run.
Invariant 10: every killed run is recorded as failed by the next start.

The delays are seeded; the seed is printed (set ATOMSYNC_KILL_SEED to replay).
ATOMSYNC_KILLS sets the number of kills: by default 50 on SQLite, and 20 on
other stores, whose row reads through their client take several seconds per
kill (the file stays under the time budget of the fault suite).
"""

import os
import random
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from atomsync_test import (OK, StoreTestCase, digest, for_each_store,  # noqa: E402
                           make_records, reference_rows, spawn, write_jsonl)

N = 200_000
COLS = ["id", "name", "downloads", "score"]
CONFIG = """
store: {store}
datasets:
  addons:
    key: [id]
    guard: {max_delete_fraction: 0.5}
    columns:
      id: {type: integer}
      name: {type: text}
      downloads: {type: integer}
      score: {type: real}
    source:
      file: addons.jsonl
"""


def version(base, k):
    """Version k of the dataset: some rows deleted, some updated, some new."""
    out = []
    for r in base:
        i = r["id"]
        if (i + k) % 17 == 0:
            continue
        if (i * k) % 5 == 0:
            r = dict(r)
            r["downloads"] = r["downloads"] + k
        out.append(r)
    out += make_records(2000, seed=100 + k, start=300_000 + k * 5000)
    return out


def counts(old, new):
    o = {r["id"]: tuple(r[c] for c in COLS) for r in old}
    n = {r["id"]: tuple(r[c] for c in COLS) for r in new}
    ins = sum(1 for k in n if k not in o)
    upd = sum(1 for k in n if k in o and o[k] != n[k])
    return {"inserted": ins, "updated": upd, "unchanged": len(n) - ins - upd,
            "deleted": sum(1 for k in o if k not in n), "seen": len(new)}


@for_each_store
class Kill9Test(StoreTestCase):

    def live_digest(self):
        return digest(self.store.rows("addons", COLS))

    def write_input(self, name):
        tmp = self.path("addons.jsonl.tmp")
        shutil.copyfile(self.path(name), tmp)
        os.replace(tmp, self.path("addons.jsonl"))

    def test_kill9_full_refresh(self):
        """Invariants 1, 2, 4, 10 under kill -9 at random moments."""
        seed = int(os.environ.get("ATOMSYNC_KILL_SEED") or time.time())
        want_kills = int(os.environ.get("ATOMSYNC_KILLS") or
                         (50 if self.store_name == "sqlite" else 20))
        print("\nkill -9 seed: %d (ATOMSYNC_KILL_SEED=%d to replay)" % (seed, seed),
              file=sys.stderr)
        rnd = random.Random(seed)
        self.config(CONFIG)
        # Runs alternate between two new versions of the data (each
        # published version is the old state of the next run).
        base = make_records(N)
        versions = {0: base, 1: version(base, 1), 2: version(base, 2)}
        digests = {}
        for v, recs in versions.items():
            write_jsonl(self.path("v%d.jsonl" % v), recs)
            digests[v] = digest(reference_rows(recs, COLS))
        self.assertEqual(len(set(digests.values())), 3)
        cur_v = 0
        self.write_input("v0.jsonl")
        t0 = time.monotonic()
        self.atomsync("run", check=OK)
        duration = time.monotonic() - t0
        cur_digest = self.live_digest()
        self.assertEqual(cur_digest, digests[0])

        want_counts = {}
        kills = after_kill = resumed = landed_after_publish = 0
        k = 0
        while kills < want_kills:
            k += 1
            new_v = 1 if cur_v != 1 else 2
            new_digest = digests[new_v]
            self.write_input("v%d.jsonl" % new_v)
            published = False
            killed_run = None     # (run_id, resumable) of the last killed run
            for attempt in range(8):
                before = self.runs("addons")
                last_id = before[0]["run_id"] if before else 0
                p = spawn(["run"], cwd=self.dir)
                delay = rnd.uniform(0.0, duration * 1.1)
                try:
                    p.wait(timeout=delay)
                    finished = True
                except subprocess.TimeoutExpired:
                    os.kill(p.pid, signal.SIGKILL)
                    p.wait()
                    finished = False
                err = p.stderr.read()
                p.stderr.close()
                runs = self.runs("addons")
                if killed_run is not None and runs[0]["run_id"] != killed_run[0]:
                    # The run after a kill (it got on record): the killed one
                    # is now failed, and this one resumed when it could.
                    this = runs[0]
                    prev = [r for r in runs if r["run_id"] == killed_run[0]][0]
                    self.assertEqual(prev["status"], "failed", prev)
                    after_kill += 1
                    if killed_run[1]:
                        self.assertEqual(this["resumed_from"], killed_run[0],
                                         "run after kill did not resume: %s" % this)
                    if this["resumed_from"]:
                        resumed += 1
                if finished:
                    self.assertEqual(p.returncode, OK, err)
                    self.assertEqual(self.live_digest(), new_digest)
                    published = True
                    break
                kills += 1
                d = self.live_digest()
                # Invariant 1: exactly the old or exactly the new state.
                self.assertIn(d, (cur_digest, new_digest),
                              "mixed state after kill %d (seed %d)" % (kills, seed))
                if d == new_digest:
                    landed_after_publish += 1
                    self.assertEqual(self.runs("addons")[0]["status"], "completed")
                    published = True
                    break
                st = self.status()["addons"]
                # Killed before it got on record: the run to check is still
                # the previous killed one (if any).
                if runs and runs[0]["run_id"] > last_id:
                    killed_run = (runs[0]["run_id"], st["resumable"])
                if kills >= want_kills:
                    break
            if (cur_v, new_v) not in want_counts:
                want_counts[cur_v, new_v] = counts(versions[cur_v], versions[new_v])
            want = want_counts[cur_v, new_v]
            if not published:
                # Finish the lineage with a plain run: it resumes the last
                # killed run and ends as an uninterrupted run would.
                self.atomsync("run", check=OK)
                self.assertEqual(self.live_digest(), new_digest)
                last = self.runs("addons")[0]
                after_kill += 1
                if killed_run and killed_run[1]:
                    self.assertEqual(last["resumed_from"], killed_run[0], last)
                if last["resumed_from"]:
                    resumed += 1
            # The publishing run (first try, resumed, or killed just after
            # its commit) reports the counts of an uninterrupted run.
            last = self.runs("addons")[0]
            self.assertEqual(last["status"], "completed", last)
            self.assertEqual({c: last[c] for c in want}, want, last)
            self.assertEqual(self.store.integrity(), "ok")
            cur_v, cur_digest = new_v, new_digest
        print("kills %d, runs after a kill %d, resumed %d, kills after the publish "
              "committed %d, versions %d" % (kills, after_kill, resumed,
                                             landed_after_publish, k), file=sys.stderr)
        self.assertGreaterEqual(kills, want_kills)
        # Most runs after a kill continue the killed run's staging.
        self.assertGreater(resumed, after_kill // 2,
                           "only %d of %d runs after a kill resumed" % (resumed, after_kill))


if __name__ == "__main__":
    import unittest
    unittest.main()
