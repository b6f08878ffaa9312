"""Faults only a shared PostgreSQL store has: its backend terminated in
the middle of a staging transaction and of the publish, the server stopped
with `pg_ctl stop -m immediate` in the middle of the publish, a server that
comes up while atomsync is connecting, several workers on one config (one
of them paused past its lease), and readers that read the live table in a
loop while runs publish.

The moments are made deterministic with locks a test session holds: a
staging transaction waits on the dataset's state row (its checkpoint
update), the publish waits on one live row it is about to update (after
writing the rows before it).  The atomsync backend is then found waiting in
pg_stat_activity (application_name 'atomsync') and terminated, or the
server is stopped.
"""

import json
import os
import signal
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from atomsync_test import (wait_for, FAILED, FIXTURES, LEASED, OK, StoreTestCase,  # noqa: E402
                           digest, proc_state, reference_rows, spawn, write_jsonl)
import pgserver  # noqa: E402

TAP = os.path.join(FIXTURES, "tap.py")
COLS = ["id", "name", "downloads"]
CONFIG = """
store: {store}
datasets:
%s"""
DATASET = """
  %(name)s:
    key: [id]
    lease_ttl: %(ttl)s
    batch_size: 100
    guard: {max_delete_fraction: 0.9}
    columns:
      id: {type: integer}
      name: {type: text}
      downloads: {type: integer}
    source:
      exec: "%(py)s %(tap)s --records {dir}/%(name)s.jsonl --state {state} --state-every 50 --log {dir}/%(name)s.log"
      format: singer
"""


def recs(n, tag, start=1):
    return [{"id": i, "name": "%s %d" % (tag, i), "downloads": i * 3}
            for i in range(start, start + n)]


class Session:
    """A psql session kept open, to hold locks while atomsync runs."""

    def __init__(self, url):
        self.p = subprocess.Popen(["psql", "-X", "-q", "-A", "-t", "-v",
                                   "ON_ERROR_STOP=1", url], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                  text=True)

    def run(self, sql):
        """Send sql and wait until psql has executed it."""
        self.p.stdin.write(sql + "\n\\echo @@done\n")
        self.p.stdin.flush()
        out = []
        for line in self.p.stdout:
            if line.strip() == "@@done":
                return out
            out.append(line.rstrip("\n"))
        raise AssertionError("psql session ended")

    def close(self):
        try:
            self.p.stdin.close()
        except OSError:
            pass
        try:
            self.p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.p.kill()   # our own psql, by its Popen
            self.p.wait()
        self.p.stdout.close()


@unittest.skipUnless(pgserver.available(), "no PostgreSQL server")
class PostgresFaultTest(StoreTestCase):
    store_name = "postgres"

    def setUp(self):
        super().setUp()
        self.procs = []
        self.sessions = []

    def tearDown(self):
        for s in self.sessions:
            s.close()
        for pid in self.procs:       # only processes this test started
            for sig in (signal.SIGCONT, signal.SIGKILL):
                try:
                    os.kill(pid, sig)
                except OSError:
                    pass
        super().tearDown()

    # -- helpers --
    def setup(self, names=("d",), ttl="60s", n=600):
        text = "".join(DATASET % {"name": nm, "ttl": ttl, "py": sys.executable,
                                  "tap": TAP} for nm in names)
        self.config(CONFIG % text)
        for nm in names:
            write_jsonl(self.path(nm + ".jsonl"), recs(n, "old"))
        self.atomsync("run", *names, check=OK)

    def session(self):
        s = Session(self.store.url)
        self.sessions.append(s)
        return s

    def tap_log(self, name="d"):
        p = self.path(name + ".log")
        if not os.path.exists(p):
            return []
        with open(p) as f:
            return [json.loads(line) for line in f]

    def start_worker(self, tap_args, *args, name="d"):
        n = len(self.tap_log(name))
        p = spawn(["run"] + list(args), cwd=self.dir, env={"TAP_ARGS": tap_args})
        self.procs.append(p.pid)
        log = wait_for(lambda: self.tap_log(name)[n:], what="the tap to start")
        self.procs.append(log[0]["pid"])
        return p, log[0]["pid"]

    def waiting_backend(self, query_prefix):
        """pid of the atomsync backend waiting on a lock in query_prefix."""
        rows = self.store.query(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND application_name = 'atomsync' AND wait_event_type = 'Lock' "
            "AND query LIKE ?", (query_prefix + "%",))
        return rows[0][0] if rows else None

    def finish(self, p):
        rc = p.wait(timeout=60)
        err = p.stderr.read()
        p.stderr.close()
        return rc, err

    def live(self, name="d"):
        return self.store.rows(name, COLS)

    def stall_publish(self, new):
        """Hold a lock on the live row the publish updates last, so the
        publish transaction stops after writing every row before it."""
        last = max(r["id"] for r in new)
        s = self.session()
        s.run("BEGIN; SELECT id FROM d WHERE id = %d FOR UPDATE;" % last)
        return s

    # -- tests --
    def test_backend_terminated_mid_staging(self):
        """Invariants 2, 4, 10: the backend is terminated inside a staging
        transaction (after its COPY, before its commit): the run fails,
        the live table is untouched, the run is recorded failed by the next
        start, which resumes from the last committed checkpoint and ends in
        the uninterrupted result."""
        self.setup()
        before = self.store.full_rows("d")
        new = recs(700, "new")
        write_jsonl(self.path("d.jsonl"), new)
        a, tap = self.start_worker("--sleep 0.002 --stop-at 300")
        wait_for(lambda: proc_state(tap) == "T", what="the tap to stop")
        wait_for(lambda: self.status()["d"]["resumable"], what="a staging commit")
        killed = self.runs("d")[0]
        s = self.session()
        s.run("BEGIN; SELECT 1 FROM atomsync_state WHERE dataset = 'd' FOR UPDATE;")
        os.kill(tap, signal.SIGCONT)
        pid = wait_for(lambda: self.waiting_backend("UPDATE atomsync_state SET checkpoint"),
                       what="a staging transaction waiting")
        self.store.query("SELECT pg_terminate_backend(?)", (pid,))
        s.run("COMMIT;")
        rc, err = self.finish(a)
        self.assertEqual(rc, FAILED, err)
        self.assertIn("connection", err)
        self.assertEqual(self.store.full_rows("d"), before)
        self.atomsync("run", check=OK)
        runs = self.runs("d")
        self.assertEqual(runs[0]["resumed_from"], killed["run_id"])
        self.assertEqual([r["status"] for r in runs if r["run_id"] == killed["run_id"]],
                         ["failed"])
        self.assertGreater(self.tap_log()[-1]["start"], 0)
        self.assertEqual(self.live(), reference_rows(new, COLS))
        self.assertEqual((runs[0]["inserted"], runs[0]["updated"], runs[0]["deleted"]),
                         (100, 600, 0))

    def test_backend_terminated_mid_publish(self):
        """Invariants 1, 2, 4, 10: the backend is terminated inside the
        publish transaction, after it upserted most rows: nothing of it is
        visible, the run is recorded failed on the next start, and the next
        run resumes the complete staging and publishes it."""
        self.setup()
        before = self.store.full_rows("d")
        new = recs(500, "new")
        write_jsonl(self.path("d.jsonl"), new)
        s = self.stall_publish(new)
        a = spawn(["run"], cwd=self.dir)
        self.procs.append(a.pid)
        pid = wait_for(lambda: self.waiting_backend('INSERT INTO "d"'),
                       what="the publish waiting")
        killed = self.runs("d")[0]
        self.assertEqual(killed["status"], "publishing")
        self.store.query("SELECT pg_terminate_backend(?)", (pid,))
        s.run("COMMIT;")
        rc, err = self.finish(a)
        self.assertEqual(rc, FAILED, err)
        self.assertEqual(self.store.full_rows("d"), before)
        p = self.atomsync("run", check=OK)
        runs = self.runs("d")
        self.assertEqual([r["status"] for r in runs if r["run_id"] == killed["run_id"]],
                         ["failed"])
        self.assertEqual(runs[0]["resumed_from"], killed["run_id"], p.stdout)
        self.assertEqual(self.live(), reference_rows(new, COLS))
        self.assertEqual((runs[0]["updated"], runs[0]["deleted"]), (500, 100))

    @unittest.skipIf(os.environ.get("ATOMSYNC_PG_URL"), "needs a server of its own")
    def test_server_stopped_immediately_mid_publish(self):
        """Invariants 1, 2, 10: `pg_ctl stop -m immediate` while the publish
        has written most rows: after the restart the live table is exactly
        the old state, the run is recorded failed on the next start, and the
        next run (its staging, UNLOGGED, did not survive the crash) starts
        over and publishes the uninterrupted result."""
        self.setup()
        old = self.live()
        new = recs(500, "new")
        write_jsonl(self.path("d.jsonl"), new)
        self.stall_publish(new)
        a = spawn(["run"], cwd=self.dir)
        self.procs.append(a.pid)
        wait_for(lambda: self.waiting_backend('INSERT INTO "d"'), what="the publish waiting")
        killed = self.runs("d")[0]
        srv = pgserver.server()
        srv.stop("immediate")
        rc, err = self.finish(a)
        self.assertEqual(rc, FAILED, err)
        # The failure could not be recorded either, and the worker says so
        # (invariant 10: the next start records it).
        self.assertIn("recording its end failed", err)
        self.assertIn("the next run records it as interrupted", err)
        srv.start()
        self.assertEqual(self.live(), old)
        p = self.atomsync("run", check=OK)
        self.assertIn("lost in a database server crash", p.stderr)
        runs = self.runs("d")
        self.assertEqual([r["status"] for r in runs if r["run_id"] == killed["run_id"]],
                         ["failed"])
        self.assertIsNone(runs[0]["resumed_from"])
        self.assertEqual(self.live(), reference_rows(new, COLS))
        self.assertEqual(self.store.integrity(), "ok")

    @unittest.skipIf(os.environ.get("ATOMSYNC_PG_URL"), "needs a server of its own")
    def test_server_stopped_immediately_mid_staging(self):
        """Invariants 2, 4: the server crashes while a run stages; the run
        fails, the live table is intact after the restart, and the next run
        does not resume a staging the crash emptied: it starts over."""
        self.setup()
        old = self.live()
        new = recs(700, "new")
        write_jsonl(self.path("d.jsonl"), new)
        a, tap = self.start_worker("--sleep 0.002 --stop-at 300")
        wait_for(lambda: proc_state(tap) == "T", what="the tap to stop")
        wait_for(lambda: self.status()["d"]["resumable"], what="a staging commit")
        srv = pgserver.server()
        srv.stop("immediate")
        os.kill(tap, signal.SIGCONT)
        rc, err = self.finish(a)
        self.assertEqual(rc, FAILED, err)
        srv.start()
        self.assertEqual(self.live(), old)
        self.atomsync("run", check=OK)
        self.assertEqual(self.tap_log()[-1]["start"], 0)
        self.assertEqual(self.live(), reference_rows(new, COLS))

    @unittest.skipIf(os.environ.get("ATOMSYNC_PG_URL"), "needs a server of its own")
    def test_connect_retries_until_the_server_is_up(self):
        """A server that comes up within a few seconds is waited for."""
        self.setup()
        write_jsonl(self.path("d.jsonl"), recs(650, "new"))
        srv = pgserver.server()
        srv.stop()
        a = spawn(["run"], cwd=self.dir)
        self.procs.append(a.pid)
        time.sleep(1.0)
        srv.start()
        rc, err = self.finish(a)
        self.assertEqual(rc, OK, err)
        self.assertEqual(self.live(), reference_rows(recs(650, "new"), COLS))

    def paused_worker_case(self, workers):
        """Invariant 6 with `workers` workers started at once, twice: of
        the first group one runs and is paused (SIGSTOP) past its lease, the
        rest exit 4; of the second group one takes over and publishes, the
        rest exit 4; the paused one, continued, exits 4 and commits nothing.
        Exactly one publish."""
        self.setup(ttl="2s")
        first = recs(600, "first")
        write_jsonl(self.path("d.jsonl"), first)
        group = [spawn(["run"], cwd=self.dir,
                       env={"TAP_ARGS": "--sleep 0.003 --stop-at 300"})
                 for _ in range(workers)]
        self.procs += [p.pid for p in group]
        log = wait_for(lambda: self.tap_log()[1:], what="a tap to start")
        tap = log[0]["pid"]
        self.procs.append(tap)
        wait_for(lambda: proc_state(tap) == "T", what="the tap to stop")
        wait_for(lambda: self.status()["d"]["resumable"], what="a staging commit")
        holders = [p for p in group if p.poll() is None]
        self.assertEqual(len(holders), 1, "one worker holds the lease")
        a = holders[0]
        for p in group:
            if p is not a:
                rc, err = self.finish(p)
                self.assertEqual(rc, LEASED, err)
        a_run = self.runs("d")[0]["run_id"]
        os.kill(a.pid, signal.SIGSTOP)
        wait_for(lambda: proc_state(a.pid) == "T", what="worker A to stop")
        try:
            time.sleep(2.5)
            second = recs(650, "second")
            write_jsonl(self.path("d.jsonl"), second)
            group2 = [spawn(["run"], cwd=self.dir) for _ in range(workers)]
            self.procs += [p.pid for p in group2]
            codes = sorted(self.finish(p)[0] for p in group2)
        finally:
            os.kill(a.pid, signal.SIGCONT)
        self.assertEqual(codes, [OK] + [LEASED] * (workers - 1))
        start = self.tap_log()[-1]["start"]
        want = reference_rows(first[:start] + second[start:], COLS)
        self.assertEqual(self.live(), want)
        snapshot = self.store.full_rows("d")
        os.kill(tap, signal.SIGCONT)
        rc, err = self.finish(a)
        self.assertEqual(rc, LEASED, err)
        self.assertIn("taken over", err)
        self.assertEqual(self.store.full_rows("d"), snapshot)
        runs = self.runs("d")
        completed = [r for r in runs if r["status"] == "completed"]
        self.assertEqual(len(completed), 2, runs)  # the setup's and one more
        self.assertEqual([r["status"] for r in runs if r["run_id"] == a_run], ["failed"])

    def test_two_workers_one_paused(self):
        self.paused_worker_case(2)

    def test_four_workers_one_paused(self):
        self.paused_worker_case(4)

    def test_workers_share_datasets(self):
        """Invariant 6: three workers run the same three datasets, started a
        second apart: each skips the datasets another holds (exit 0, named
        as skipped), and each dataset is written by exactly one run."""
        names = ("d1", "d2", "d3")
        self.setup(names)
        news = {}
        for k, nm in enumerate(names):
            news[nm] = recs(400, "new%d" % k)
            write_jsonl(self.path(nm + ".jsonl"), news[nm])
        # Each dataset takes about 4 s to read.
        env = {"TAP_ARGS": "--sleep 0.01"}
        procs = []
        for _ in range(3):
            procs.append(spawn(["run"], cwd=self.dir, env=env))
            self.procs.append(procs[-1].pid)
            time.sleep(1.0)
        results = [self.finish(p) for p in procs]
        self.assertEqual([rc for rc, _ in results], [OK, OK, OK], results)
        skipped = sum(err.count("skipped") for _, err in results)
        self.assertGreaterEqual(skipped, 3, results)
        for nm in names:
            self.assertEqual(self.store.rows(nm, COLS), reference_rows(news[nm], COLS))
            writers = [r for r in self.runs(nm)[:-1] if r["status"] == "completed"
                       and (r["inserted"] or r["updated"] or r["deleted"])]
            self.assertEqual(len(writers), 1, self.runs(nm))

    def test_readers_never_see_a_mix(self):
        """Invariant 1: a reader polling the live table while five runs
        publish sees, in every snapshot, exactly one version's state
        (count, sum of versions, sum of checksums), never a mix."""
        cfg = """
store: {store}
datasets:
  v:
    key: [id]
    guard: {max_delete_fraction: 0.9}
    columns:
      id: {type: integer}
      version: {type: integer}
      checksum: {type: integer}
    source:
      file: v.jsonl
"""
        self.config(cfg)
        n = 20000

        def version(v):
            return [{"id": i, "version": v, "checksum": (i * 7919 + v * 104729) % 1000003}
                    for i in range(v * 1000, v * 1000 + n)]

        states = {}
        for v in range(6):
            rows = version(v)
            states[(n, n * v, sum(r["checksum"] for r in rows))] = v
        write_jsonl(self.path("v.jsonl"), version(0))
        self.atomsync("run", check=OK)
        reader = subprocess.Popen(
            ["psql", "-X", "-q", "-A", "-t", "-F", ",", self.store.url],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            text=True)
        reader.stdin.write("SELECT count(*), coalesce(sum(version), 0), "
                           "coalesce(sum(checksum), 0) FROM v\n\\watch 0.005\n")
        reader.stdin.flush()
        try:
            for v in range(1, 6):
                write_jsonl(self.path("v.jsonl"), version(v))
                self.atomsync("run", check=OK)
        finally:
            reader.send_signal(signal.SIGINT)
            time.sleep(0.2)
            reader.stdin.close()
            out = reader.stdout.read()
            reader.wait(timeout=10)
        seen = []
        for line in out.splitlines():
            parts = line.split(",")
            if len(parts) != 3 or not parts[0].isdigit():
                continue
            t = tuple(int(x) for x in parts)
            self.assertIn(t, states, "a snapshot mixing two runs: %s" % (t,))
            seen.append(states[t])
        self.assertGreater(len(seen), 20, "the reader read too little")
        self.assertEqual(seen, sorted(seen), "states went backwards")
        self.assertGreaterEqual(len(set(seen)), 4, set(seen))
        self.assertEqual(digest(self.store.rows("v", ["id", "version", "checksum"])),
                         digest(reference_rows(version(5), ["id", "version", "checksum"])))


if __name__ == "__main__":
    unittest.main()
