"""The lease (invariant 6): one publisher per dataset.

- A second run of a dataset another live worker is running exits 4 at once,
  does nothing and puts nothing on record.
- A worker stopped with SIGSTOP keeps its lease until the lease expires; past
  lease_ttl another worker takes the lease, resumes the staging and
  publishes; the first worker, continued, cannot commit staging or publish:
  it exits 4 and the table stays exactly the second worker's result.
- A lease held by a dead process on the same host is taken over at once.
"""

import json
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from atomsync_test import (wait_for, FIXTURES, OK, LEASED, StoreTestCase,  # noqa: E402
                           for_each_store, proc_state, reference_rows, spawn,
                           write_jsonl)

TAP = os.path.join(FIXTURES, "tap.py")
COLS = ["id", "name", "downloads"]
CONFIG = """
store: {store}
datasets:
  d:
    key: [id]
    lease_ttl: %s
    batch_size: 100
    columns:
      id: {type: integer}
      name: {type: text}
      downloads: {type: integer}
    source:
      exec: "%s %s --records {dir}/recs.jsonl --state {state} --state-every 50 --log {dir}/tap.log"
      format: singer
"""


def recs(n, tag):
    return [{"id": i, "name": "%s %d" % (tag, i), "downloads": i * 3} for i in range(1, n + 1)]


@for_each_store
class LeaseTest(StoreTestCase):

    def setUp(self):
        super().setUp()
        self.procs = []

    def tearDown(self):
        # Only the processes this test started, by pid.
        for pid in self.procs:
            for sig in (signal.SIGCONT, signal.SIGKILL):
                try:
                    os.kill(pid, sig)
                except OSError:
                    pass
        super().tearDown()

    def setup_dataset(self, ttl, old):
        self.config(CONFIG % (ttl, sys.executable, TAP))
        write_jsonl(self.path("recs.jsonl"), old)
        self.atomsync("run", check=OK)

    def tap_log(self):
        if not os.path.exists(self.path("tap.log")):
            return []
        with open(self.path("tap.log")) as f:
            return [json.loads(line) for line in f]

    def start_worker(self, tap_args):
        n = len(self.tap_log())
        p = spawn(["run"], cwd=self.dir, env={"TAP_ARGS": tap_args})
        self.procs.append(p.pid)
        log = wait_for(lambda: self.tap_log()[n:], what="the tap to start")
        self.procs.append(log[0]["pid"])
        return p, log[0]["pid"]

    def test_second_run_exits_4_at_once(self):
        """Invariant 6: while a live worker holds the lease, another run of
        the dataset exits 4 at once, with nothing done and nothing on record."""
        old = recs(300, "old")
        self.setup_dataset("60s", old)
        before = self.store.full_rows("d")
        a, tap = self.start_worker("--sleep 0.02")
        wait_for(lambda: self.runs("d")[0]["status"] == "active", what="run 2 active")
        nruns = len(self.runs("d"))
        t0 = time.monotonic()
        p = self.atomsync("run")
        elapsed = time.monotonic() - t0
        self.assertEqual(p.returncode, LEASED, p.stderr)
        self.assertLess(elapsed, 5.0, "the second worker waited for the lease")
        self.assertEqual(len(p.stderr.strip().splitlines()), 1, p.stderr)
        self.assertIn("being run by", p.stderr)
        self.assertEqual(len(self.runs("d")), nruns)
        self.assertEqual(self.store.full_rows("d"), before)
        self.assertTrue(self.status()["d"]["lease"])
        # The holder finishes normally.
        self.assertEqual(a.wait(timeout=60), OK, a.stderr.read())
        a.stderr.close()
        self.assertEqual(self.store.rows("d", COLS), reference_rows(old, COLS))

    def test_stopped_worker_cannot_commit_after_takeover(self):
        """Invariant 6: a worker paused (SIGSTOP) past lease_ttl cannot commit
        staging or publish once another worker took the lease: the second
        publishes, the first exits 4 and the table is the second's result."""
        self.setup_dataset("3s", recs(600, "old"))
        first = recs(600, "first")
        write_jsonl(self.path("recs.jsonl"), first)
        a, tap = self.start_worker("--sleep 0.003 --stop-at 300")
        # The tap stops itself after record 300 (and its STATE): worker A then
        # waits on the pipe, outside any transaction.  Stop A there.
        wait_for(lambda: proc_state(tap) == "T", what="the tap to stop")
        wait_for(lambda: self.status()["d"]["resumable"], what="a staging commit")
        time.sleep(0.5)
        a_run_id = self.runs("d")[0]["run_id"]
        os.kill(a.pid, signal.SIGSTOP)
        wait_for(lambda: proc_state(a.pid) == "T", what="worker A to stop")
        try:
            # Stopped but alive: it keeps the lease until it expires.
            p = self.atomsync("run")
            self.assertEqual(p.returncode, LEASED, p.stderr)
            time.sleep(3.5)
            # Past lease_ttl: B takes over, resumes A's staging with new data.
            second = recs(650, "second")
            write_jsonl(self.path("recs.jsonl"), second)
            b = self.atomsync("run", check=OK)
        finally:
            os.kill(a.pid, signal.SIGCONT)
        b_log = self.tap_log()[-1]
        start = b_log["start"]
        self.assertGreater(start, 0, "B did not resume A's staging: %s" % b.stdout)
        want = reference_rows(first[:start] + second[start:], COLS)
        self.assertEqual(self.store.rows("d", COLS), want)
        snapshot = self.store.full_rows("d")
        last_b = self.runs("d")[0]
        self.assertEqual(last_b["status"], "completed")
        self.assertEqual(last_b["resumed_from"], a_run_id)

        # A continues (so does its tap): it must not commit anything.
        os.kill(tap, signal.SIGCONT)
        rc = a.wait(timeout=60)
        err = a.stderr.read()
        a.stderr.close()
        self.assertEqual(rc, LEASED, err)
        own = [l for l in err.splitlines() if l.startswith("atomsync:")]
        self.assertEqual(len(own), 1, err)
        self.assertIn("taken over", own[0])
        self.assertEqual(self.store.full_rows("d"), snapshot)
        runs = self.runs("d")
        self.assertEqual(runs[0]["run_id"], last_b["run_id"])
        self.assertEqual(runs[0]["status"], "completed")
        a_run = [r for r in runs if r["run_id"] == a_run_id][0]
        self.assertEqual(a_run["status"], "failed")
        # Nothing left half-done: the next run starts a fresh lineage.
        self.atomsync("run", check=OK)
        self.assertIsNone(self.runs("d")[0]["resumed_from"])
        self.assertEqual(self.store.rows("d", COLS), reference_rows(second, COLS))

    def test_dead_holder_taken_over_at_once(self):
        """Invariant 6: a lease whose holder died (kill -9) on this host is
        taken over at once, long before lease_ttl, and the run resumes."""
        self.setup_dataset("60s", recs(300, "old"))
        new = recs(400, "new")
        write_jsonl(self.path("recs.jsonl"), new)
        a, tap = self.start_worker("--sleep 0.003 --stop-at 200")
        wait_for(lambda: proc_state(tap) == "T", what="the tap to stop")
        wait_for(lambda: self.status()["d"]["resumable"], what="a staging commit")
        killed = self.runs("d")[0]
        os.kill(a.pid, signal.SIGKILL)
        a.wait()
        a.stderr.close()
        os.kill(tap, signal.SIGKILL)
        t0 = time.monotonic()
        self.atomsync("run", check=OK)
        self.assertLess(time.monotonic() - t0, 30.0)
        runs = self.runs("d")
        self.assertEqual(runs[0]["resumed_from"], killed["run_id"])
        self.assertEqual([r["status"] for r in runs if r["run_id"] == killed["run_id"]],
                         ["failed"])
        self.assertEqual(self.store.rows("d", COLS), reference_rows(new, COLS))


class PausedPublishTest(StoreTestCase):
    """SQLite only: its write lock cannot be taken from a stopped process."""
    store_name = "sqlite"

    def test_paused_publish_holds_the_dataset(self):
        """Invariant 6 (docs/operations.md, "Paused publish"): a worker
        stopped inside its publish, past its lease, still holds SQLite's
        write lock.  A second run exits 4 naming the publishing run (not
        exit 1 "database is locked") and does nothing; the first, continued,
        completes its publish, which no other worker could have touched."""
        self.config(CONFIG % ("1s", sys.executable, TAP))
        old, new = recs(200, "old"), recs(250, "new")
        write_jsonl(self.path("recs.jsonl"), old)
        self.atomsync("run", check=OK)
        write_jsonl(self.path("recs.jsonl"), new)
        a = spawn(["run"], cwd=self.dir,
                  env={"ATOMSYNC_CRASH": "publish.before_commit",
                       "ATOMSYNC_CRASH_ACTION": "stop"})
        try:
            wait_for(lambda: proc_state(a.pid) == "T", what="the publish to stop")
            time.sleep(1.5)  # past lease_ttl
            before = self.store.full_rows("d")
            nruns = len(self.runs("d"))
            p = self.atomsync("run", "--json")
            self.assertEqual(p.returncode, LEASED, p.stderr)
            own = [l for l in p.stderr.splitlines() if l.startswith("atomsync:")]
            self.assertEqual(len(own), 1, p.stderr)
            self.assertIn("being published by", own[0])
            self.assertIn("run %d" % self.runs("d")[0]["run_id"], own[0])
            self.assertEqual(self.store.full_rows("d"), before)
            self.assertEqual(len(self.runs("d")), nruns)
        finally:
            os.kill(a.pid, signal.SIGCONT)
        self.assertEqual(a.wait(timeout=60), OK, a.stderr.read())
        a.stderr.close()
        self.assertEqual(self.store.rows("d", COLS), reference_rows(new, COLS))
        self.assertEqual(self.runs("d")[0]["status"], "completed")
        self.atomsync("run", check=OK)


if __name__ == "__main__":
    import unittest
    unittest.main()
