"""atomsync serve: the scheduler daemon, its endpoints and its fleet.

- Every endpoint: /healthz, /metrics, /api/status (the document of
  `status --json`), /api/runs/DATASET (of `runs --json`), /status, POST
  /api/run/DATASET, the token, errors (404, 405, 401), a non-loopback
  listen without a token refused.
- Two and three daemons on one store (SQLite file; PostgreSQL): runs of a
  dataset never overlap (invariant 6) and each slot runs once.
- kill -9 of a daemon mid-run: another daemon takes the lease over and the
  run resumes from its checkpoint (invariants 2, 4, 10).
- SIGTERM during staging (the run is interrupted, stays resumable, the lease
  is released, exit 0; invariants 2, 4) and during publish (the publish
  finishes; invariant 1).
- SIGHUP with a bad config keeps the old one and logs file:line:col.
- The status page in headless Chromium, screenshot saved, text checked.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from atomsync_test import (wait_for, BIN, FIXTURES, OK, ROOT, USAGE,  # noqa: E402
                           StoreTestCase, for_each_store, run, store_names,
                           write_jsonl)

TAP = os.path.join(FIXTURES, "tap.py")


def recs(n, tag="r"):
    return [{"id": i, "name": "%s %d" % (tag, i)} for i in range(1, n + 1)]


class Daemon:
    """One `atomsync serve` with JSON logs in a file."""

    def __init__(self, case, name="d", env=None, args=()):
        self.case = case
        self.log_path = case.path("serve-%s.log" % name)
        e = dict(os.environ)
        e.pop("ATOMSYNC_CRASH", None)
        e.update(env or {})
        self.log = open(self.log_path, "w")
        self.p = subprocess.Popen(
            [BIN, "-c", case.path("atomsync.yml"), "serve", "--listen",
             "127.0.0.1:0", "--log-format", "json"] + list(args),
            cwd=case.dir, env=e, stdout=subprocess.DEVNULL, stderr=self.log)
        start = wait_for(lambda: self.event("start") or self.dead(), 10,
                         "the daemon to start")
        if self.p.poll() is not None:
            raise AssertionError("serve exited %d: %s" % (self.p.returncode,
                                                          self.text()))
        self.base = "http://%s" % start[0]["listen"]

    def dead(self):
        return self.p.poll() is not None

    def text(self):
        with open(self.log_path) as f:
            return f.read()

    def lines(self):
        out = []
        for line in self.text().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                out.append({"event": "text", "msg": line})
        return out

    def event(self, name, **match):
        return [x for x in self.lines() if x.get("event") == name
                and all(x.get(k) == v for k, v in match.items())]

    def get(self, path, token=None, method="GET"):
        req = urllib.request.Request(self.base + path, method=method)
        if token:
            req.add_header("Authorization", "Bearer " + token)
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, r.headers.get("Content-Type"), r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.headers.get("Content-Type"), e.read().decode()

    def stop(self, sig=signal.SIGTERM, timeout=15):
        if self.p.poll() is None:
            self.p.send_signal(sig)
        try:
            rc = self.p.wait(timeout)
        finally:
            self.log.close()
        return rc

    def kill(self):
        self.p.kill()
        self.p.wait()
        self.log.close()


class ServeCase(StoreTestCase):
    def setUp(self):
        super().setUp()
        self.daemons = []

    def tearDown(self):
        for d in self.daemons:
            if d.p.poll() is None:
                d.kill()
        super().tearDown()

    def daemon(self, **kw):
        d = Daemon(self, "d%d" % len(self.daemons), **kw)
        self.daemons.append(d)
        return d

    def sync_runs(self, ds):
        return [r for r in self.runs(ds) if r["kind"] == "sync"]


def intervals(runs):
    """(start, end) of each finished run, oldest first, as Unix seconds."""
    from datetime import datetime
    out = []
    for r in runs:
        s = datetime.fromisoformat(r["started_at"].replace("Z", "+00:00"))
        f = datetime.fromisoformat(r["finished_at"].replace("Z", "+00:00"))
        out.append((s.timestamp(), f.timestamp(), r["run_id"]))
    return sorted(out)


def next_runs(metrics):
    out = {}
    for line in metrics.splitlines():
        if line.startswith("atomsync_next_run_timestamp_seconds{"):
            out[line.split('"')[1]] = float(line.split()[-1])
    return out


class TestEndpoints(ServeCase):
    CONFIG = """
store: {store}
%s
datasets:
  good:
    key: [id]
    schedule: 1h
    source: {file: good.jsonl}
  bad:
    key: [id]
    schedule: "0 * * * *"
    source: {file: missing.jsonl}
"""

    def test_endpoints(self):
        write_jsonl(self.path("good.jsonl"), recs(5))
        self.config(self.CONFIG % "")
        d = self.daemon()
        # Interval: runs at once; cron: waits for its slot.
        wait_for(lambda: d.event("run_end", dataset="good"), what="a run")
        code, ctype, body = d.get("/healthz")
        self.assertEqual((code, body), (200, "ok\n"))
        # The next slot is computed on the scheduler's next pass.
        def settled():
            b = d.get("/metrics")[2]
            return (next_runs(b).get("good", 0) > time.time() + 60 and
                    'atomsync_run_active{dataset="good"} 0' in b)
        wait_for(settled, what="the next slot in /metrics")
        code, ctype, body = d.get("/metrics")
        self.assertEqual(code, 200)
        self.assertTrue(ctype.startswith("text/plain"))
        self.assertIn("atomsync_up 1\n", body)
        self.assertIn('atomsync_runs_total{dataset="good",status="completed"} 1', body)
        self.assertIn('atomsync_run_active{dataset="good"} 0', body)
        nxt = next_runs(body)
        self.assertAlmostEqual(nxt["good"] - time.time(), 3600, delta=30)
        self.assertEqual(int(nxt["bad"]) % 3600, 0)  # the top of an hour
        # /api/status and /api/runs are the CLI's documents.
        code, ctype, body = d.get("/api/status")
        self.assertEqual((code, ctype), (200, "application/json"))
        cli = self.atomsync("status", "--json", check=OK).stdout
        self.assertEqual(json.loads(body), json.loads(cli))
        self.assertEqual(body, cli)
        code, _, body = d.get("/api/runs/good")
        self.assertEqual(body, self.atomsync("runs", "good", "--json",
                                             check=OK).stdout)
        self.assertEqual(d.get("/api/runs/good?limit=0")[2], body)
        for bad in ("abc", "-1", "99999999999999999999", ""):
            code, _, text = d.get("/api/runs/good?limit=" + bad)
            self.assertEqual(code, 400, bad)
            self.assertIn("limit: expected a whole number", text)
        self.assertEqual(d.get("/api/runs/nope")[0], 404)
        self.assertEqual(d.get("/nope")[0], 404)
        self.assertEqual(d.get("/api/run/good")[0], 405)
        self.assertEqual(d.get("/api/run/nope", method="POST")[0], 404)
        code, ctype, body = d.get("/status")
        self.assertEqual(code, 200)
        self.assertIn("text/html", ctype)
        self.assertIn("good", body)
        self.assertNotIn("http://", body.replace("http-equiv", ""))
        # POST /api/run: the cron dataset runs now, fails, is on record.
        code, _, body = d.get("/api/run/bad", method="POST")
        self.assertEqual(code, 202)
        self.assertEqual(json.loads(body), {"dataset": "bad", "queued": True})
        end = wait_for(lambda: d.event("run_end", dataset="bad"), what="bad")
        self.assertEqual(end[0]["status"], "failed")
        self.assertIn("missing.jsonl", end[0]["error"])
        self.assertEqual(self.sync_runs("bad")[0]["status"], "failed")
        starts = d.event("run_start")
        self.assertEqual(len(starts), 2)  # one line per start, one per end
        self.assertEqual(d.stop(signal.SIGINT), 0)  # Ctrl-C stops like SIGTERM
        self.assertIn("Interrupt: stopping", d.event("stop")[0]["msg"])

    def test_token_and_listen(self):
        write_jsonl(self.path("good.jsonl"), recs(2))
        self.config(self.CONFIG % "auth_token: ${SERVE_TOKEN}")
        env = {"SERVE_TOKEN": "s3cret-token"}
        d = self.daemon(env=env)
        self.assertEqual(d.get("/healthz")[0], 200)
        for path in ("/metrics", "/api/status", "/status", "/api/runs/good"):
            self.assertEqual(d.get(path)[0], 401, path)
            self.assertEqual(d.get(path, token="s3cret-token")[0], 200, path)
        self.assertEqual(d.get("/status?token=s3cret-token")[0], 200)
        self.assertEqual(d.get("/api/run/good", token="wrong", method="POST")[0], 401)
        self.assertEqual(d.get("/api/run/good", token="s3cret-token",
                               method="POST")[0], 202)
        self.assertEqual(d.stop(), 0)
        self.assertNotIn("s3cret-token", d.text())
        # Without a token, only loopback.
        self.config(self.CONFIG % "")
        p = self.atomsync("serve", "--listen", "0.0.0.0:0", check=USAGE)
        self.assertIn("not a loopback address; set auth_token", p.stderr)
        p = self.atomsync("serve", "--listen", "localhost", check=USAGE)
        self.assertIn("--listen localhost: expected ADDR:PORT", p.stderr)

    def test_once(self):
        write_jsonl(self.path("good.jsonl"), recs(3))
        self.config(self.CONFIG % "max_parallel: 1")
        p = self.atomsync("serve", "--once", check=OK, timeout=30)
        self.assertIn("good: run 1 completed", p.stderr)
        self.assertEqual(self.runs("bad"), [])  # its cron slot is not due
        self.assertEqual(self.store.rows("good", ["id"]), [(i,) for i in range(1, 4)])
        # A failed run makes --once exit 1, as `run` would.
        os.unlink(self.path("good.jsonl"))
        self.config(self.CONFIG.replace("schedule: 1h", "schedule: 1s") % "")
        time.sleep(1.1)
        p = self.atomsync("serve", "--once", check=1, timeout=30)
        self.assertIn("good: run 2 failed", p.stderr)


FLEET = """
store: {store}
max_parallel: 2
datasets:
  a:
    key: [id]
    schedule: 1s
    lease_ttl: 3s
    source:
      exec: "python3 %s --records {dir}/a.jsonl --format jsonl --sleep 0.01"
  b:
    key: [id]
    schedule: 2s
    lease_ttl: 3s
    source:
      exec: "python3 %s --records {dir}/b.jsonl --format jsonl --sleep 0.01"
""" % (TAP, TAP)


class FleetCase(ServeCase):
    def fleet(self, n, seconds):
        write_jsonl(self.path("a.jsonl"), recs(25, "a"))
        write_jsonl(self.path("b.jsonl"), recs(10, "b"))
        self.config(FLEET)
        ds = [self.daemon() for _ in range(n)]
        time.sleep(seconds)
        for d in ds:
            self.assertEqual(d.stop(), 0, d.text())
        found = {}
        for name, every in (("a", 1.0), ("b", 2.0)):
            runs = self.sync_runs(name)
            # The SIGTERM at the end interrupts a run that was staging.
            if runs and runs[0]["status"] == "failed":
                self.assertIn("interrupted", runs[0]["error"])
                runs = runs[1:]
            self.assertTrue(all(r["status"] == "completed" for r in runs),
                            "%s\n%s" % (runs, "\n".join(d.text() for d in ds)))
            iv = intervals(runs)
            overlaps = sum(1 for x, y in zip(iv, iv[1:]) if y[0] < x[1])
            # One run per slot: a slot begins `every` after the previous
            # run's start (200 ms of tick and clock rounding allowed).
            early = sum(1 for x, y in zip(iv, iv[1:]) if y[0] - x[0] < every - 0.01)
            self.assertEqual(overlaps, 0, iv)
            self.assertEqual(early, 0, iv)
            # Enough runs for the checks above to mean something; how many
            # fit in the time depends on the machine's load, not on the
            # daemons' agreement, so no more is asked.
            self.assertGreaterEqual(len(iv), 2, iv)
            by = {}
            for d in ds:
                for e in d.event("run_end", dataset=name, status="completed"):
                    by[e["run_id"]] = d
            found[name] = (len(iv), overlaps, len(set(map(id, by.values()))))
        sys.stderr.write("fleet of %d on %s: runs, overlaps, daemons that "
                         "ran: %s\n" % (n, self.store_name, found))
        return found


@for_each_store
class TestFleet(FleetCase):
    def test_two_daemons(self):
        self.fleet(2, 5)

    def test_three_daemons(self):
        self.fleet(3, 6)

    def test_one_run_per_slot(self):
        """Both daemons find the hourly slot due before either holds the
        lease; the first runs it, the second gets the lease afterwards and
        must see, holding it, that the slot has been run (one run per slot,
        not one per daemon).  Each waits at serve.worker, between the
        scheduler's decision and the lease, to hold that order."""
        write_jsonl(self.path("a.jsonl"), recs(5, "a"))
        self.config("store: {store}\ndatasets:\n  a:\n    key: [id]\n"
                    "    schedule: 1h\n    source: {file: a.jsonl}\n")
        first = self.daemon(env={"ATOMSYNC_PAUSE": "serve.worker:1500"})
        second = self.daemon(env={"ATOMSYNC_PAUSE": "serve.worker:3500"})
        wait_for(lambda: first.event("run_end") and second.event("run_end"),
                 timeout=20, what="both workers")
        self.assertEqual(first.event("run_end")[0]["status"], "completed")
        self.assertEqual(second.event("run_end")[0]["status"], "skipped",
                         second.text())
        self.assertEqual(len(self.sync_runs("a")), 1)
        for d in (first, second):
            self.assertEqual(d.stop(), 0)


SLOW = """
store: {store}
datasets:
  s:
    key: [id]
    schedule: %s
    lease_ttl: %s
    batch_size: 50
    source:
      exec: "python3 %s --records {dir}/s.jsonl --state {state} --state-every 50 --sleep %s"
      format: singer
"""


@for_each_store
class TestSignals(ServeCase):
    def slow(self, n=400, sleep=0.005, schedule="1h", ttl="10s"):
        write_jsonl(self.path("s.jsonl"), recs(n, "s"))
        self.config(SLOW % (schedule, ttl, TAP, sleep))

    def test_sigterm_staging(self):
        self.slow()
        d = self.daemon()
        wait_for(lambda: self.status()["s"]["resumable"], what="a checkpoint")
        t0 = time.monotonic()
        self.assertEqual(d.stop(), 0)
        self.assertLess(time.monotonic() - t0, 10)  # within lease_ttl
        end = d.event("run_end", dataset="s")[0]
        self.assertEqual(end["status"], "failed")
        self.assertIn("interrupted", end["error"])
        st = self.status()["s"]
        self.assertIsNone(st["lease"])  # released
        self.assertTrue(st["resumable"])
        self.assertFalse(self.store.table_exists("s") and self.store.rows("s", ["id"]))
        # Invariant 4: the next run resumes the interrupted one.
        killed = self.sync_runs("s")[0]["run_id"]
        p = self.atomsync("run", "s", "--json", check=OK)
        self.assertEqual(json.loads(p.stdout)[0]["resumed_from"], killed)
        self.assertEqual(len(self.store.rows("s", ["id"])), 400)

    def test_sigterm_publish(self):
        self.slow(n=100, sleep=0)
        trace = self.path("points.log")
        d = self.daemon(env={"ATOMSYNC_PAUSE": "publish.upserted:2000",
                             "ATOMSYNC_CRASH_LOG": trace})

        def publishing():
            # The publish transaction is open and paused at this point.
            if not os.path.exists(trace):
                return False
            with open(trace) as f:
                return "publish.upserted" in f.read()
        wait_for(publishing, what="the publish")
        self.assertEqual(d.stop(), 0)
        end = d.event("run_end", dataset="s")[0]
        self.assertEqual(end["status"], "completed", d.text())
        self.assertEqual(len(self.store.rows("s", ["id"])), 100)
        self.assertIsNone(self.status()["s"]["lease"])

    def test_kill9_takeover(self):
        # Invariants 2, 4, 10: a daemon killed mid-run; another one on the
        # same store takes the lease (the holder is dead) and resumes.
        self.slow(n=600, sleep=0.005, schedule="1h", ttl="3s")
        a = self.daemon()
        wait_for(lambda: self.status()["s"]["resumable"], what="a checkpoint")
        a.kill()
        killed = self.sync_runs("s")[0]
        self.assertEqual(killed["status"], "active")
        b = self.daemon()
        end = wait_for(lambda: b.event("run_end", dataset="s", status="completed"),
                       timeout=30, what="the takeover")
        runs = self.sync_runs("s")
        self.assertEqual(runs[0]["run_id"], end[0]["run_id"])
        self.assertEqual(runs[0]["resumed_from"], killed["run_id"])
        self.assertEqual(runs[1]["status"], "failed")  # the killed one
        self.assertEqual(len(self.store.rows("s", ["id"])), 600)
        self.assertEqual(b.stop(), 0)


PARALLEL = """
store: {store}
max_parallel: %d
datasets:
""" + "".join("""  p%d:
    key: [id]
    schedule: 1h
    source:
      exec: "python3 %s --records {dir}/p.jsonl --format jsonl --sleep 0.02"
""" % (i, TAP) for i in range(4))


def most_at_once(iv):
    """The largest number of (start, end) intervals open at one instant."""
    events = sorted([(s, 1) for s, _, _ in iv] + [(e, -1) for _, e, _ in iv],
                    key=lambda x: (x[0], x[1]))
    now = peak = 0
    for _, step in events:
        now += step
        peak = max(peak, now)
    return peak


class TestParallel(ServeCase):
    """Four datasets due at once, each run about 0.5 s: one daemon runs at
    most max_parallel of them at a time, and does use that many."""

    def parallel(self, limit):
        write_jsonl(self.path("p.jsonl"), recs(25))
        self.config(PARALLEL % limit)
        d = self.daemon()
        wait_for(lambda: len(d.event("run_end")) == 4, timeout=30, what="four runs")
        self.assertEqual(d.stop(), 0)
        iv = []
        for i in range(4):
            runs = self.sync_runs("p%d" % i)
            self.assertEqual([r["status"] for r in runs], ["completed"])
            iv += intervals(runs)
        self.assertEqual(most_at_once(iv), limit, iv)

    def test_max_parallel_1(self):
        self.parallel(1)

    def test_max_parallel_2(self):
        self.parallel(2)


class TestRetry(ServeCase):
    CONFIG = """
store: {store}
datasets:
  r:
    key: [id]
    schedule: 1h
    retry_after_failure: 1s
    source: {file: r.jsonl}
"""

    def test_backoff_doubles(self):
        """A failing dataset is retried 1 s, 2 s, then 4 s after each
        failure ends; every failure stays on record; once the source is
        back the retry completes and the next run waits for the schedule."""
        self.config(self.CONFIG)
        d = self.daemon()
        wait_for(lambda: len(d.event("run_end", dataset="r")) == 4, timeout=20,
                 what="four failed runs")
        write_jsonl(self.path("r.jsonl"), recs(3))
        end = wait_for(lambda: d.event("run_end", dataset="r", status="completed"),
                       timeout=20, what="the retry that completes")
        time.sleep(1)
        self.assertEqual(d.stop(), 0)
        runs = list(reversed(self.sync_runs("r")))
        self.assertEqual([r["status"] for r in runs], ["failed"] * 4 + ["completed"])
        self.assertTrue(all("r.jsonl" in r["error"] for r in runs[:4]))
        iv = intervals(runs)
        waits = [b[0] - a[1] for a, b in zip(iv, iv[1:])]
        for got, want in zip(waits, (1, 2, 4, 8)):
            self.assertGreaterEqual(got, want - 0.05, waits)
        for got, want in zip(waits[:3], (1, 2, 4)):
            self.assertLess(got, want + 0.8, waits)
        self.assertEqual(end[0]["run_id"], runs[-1]["run_id"])
        self.assertEqual(len(d.event("run_start", dataset="r")), 5)


class TestExamples(ServeCase):
    """examples/systemd and examples/k8s stay true to the command line."""

    def example(self, *parts):
        with open(os.path.join(ROOT, "examples", *parts)) as f:
            return f.read()

    def test_systemd_unit(self):
        unit = self.example("systemd", "atomsync.service")
        start = [l for l in unit.splitlines() if l.startswith("ExecStart=")][0]
        argv = start.split("=", 1)[1].split()
        self.assertEqual(argv[:3], ["/usr/local/bin/atomsync", "-c",
                                    "/etc/atomsync/atomsync.yml"])
        self.assertIn("ExecReload=/bin/kill -HUP $MAINPID", unit)
        self.assertIn("KillSignal=SIGTERM", unit)
        # Its arguments, on a config of ours, make a daemon that starts.
        write_jsonl(self.path("good.jsonl"), recs(2))
        self.config(TestEndpoints.CONFIG % "")
        args = [a for a in argv[3:] if a != "--listen" and ":9464" not in a]
        p = self.atomsync("-c", self.path("atomsync.yml"), *args, "--once",
                          check=OK, timeout=30)
        self.assertIn('"event":"run_end"', p.stderr)
        if shutil.which("systemd-analyze"):
            path = self.path("atomsync.service")
            with open(path, "w") as f:
                f.write(unit.replace("/usr/local/bin/atomsync", BIN))
            q = subprocess.run(["systemd-analyze", "verify", path],
                               capture_output=True, text=True)
            problems = [l for l in q.stderr.splitlines()
                        if "man atomsync" not in l and l.strip()]
            self.assertEqual(problems, [], q.stderr)

    def test_kubernetes_cronjob(self):
        job = self.example("k8s", "cronjob.yaml")
        self.assertIn("kind: CronJob", job)
        self.assertIn("concurrencyPolicy: Forbid", job)
        line = [l for l in job.splitlines() if "args:" in l][0]
        args = json.loads(line.split("args:", 1)[1])
        self.assertEqual(args[:2], ["-c", "/etc/atomsync/atomsync.yml"])
        # The same verb and dataset on a config of ours.
        write_jsonl(self.path("c.jsonl"), recs(2))
        self.config("store: {store}\ndatasets:\n  %s:\n    key: [id]\n"
                    "    source: {file: c.jsonl}\n" % args[-1])
        p = self.atomsync("-c", self.path("atomsync.yml"), *args[2:], check=OK)
        self.assertIn("%s: run 1 completed" % args[-1], p.stdout)


@for_each_store
class TestPausedDaemon(ServeCase):
    def test_lease_expires_then_takeover(self):
        """Invariants 4 and 6: a daemon that stops answering mid-run (SIGSTOP:
        a frozen VM, a host cut off) still holds the lease; another daemon
        waits for lease_ttl, takes over and resumes; the first one, woken
        up, commits nothing."""
        write_jsonl(self.path("s.jsonl"), recs(600, "s"))
        self.config(SLOW % ("1h", "3s", TAP, 0.005))
        a = self.daemon()
        wait_for(lambda: self.status()["s"]["resumable"], what="a checkpoint")
        a.p.send_signal(signal.SIGSTOP)
        stopped = time.time()
        try:
            b = self.daemon()
            end = wait_for(lambda: b.event("run_end", dataset="s",
                                           status="completed"),
                           timeout=40, what="the takeover")
        finally:
            a.p.send_signal(signal.SIGCONT)
        runs = self.sync_runs("s")
        started = intervals([runs[0]])[0][0]
        self.assertGreaterEqual(started, stopped + 1.5, runs)  # not before expiry
        self.assertEqual(runs[0]["run_id"], end[0]["run_id"])
        self.assertEqual(runs[0]["resumed_from"], runs[1]["run_id"])
        self.assertEqual(len(self.store.rows("s", ["id"])), 600)
        before = self.store.full_rows("s")
        failed = wait_for(lambda: a.event("run_end", dataset="s"), timeout=20,
                          what="the woken daemon's run to end")
        self.assertNotEqual(failed[0]["status"], "completed", a.text())
        self.assertEqual(self.store.full_rows("s"), before)
        for d in (a, b):
            self.assertEqual(d.stop(), 0)


class TestReload(ServeCase):
    GOOD = """
store: {store}
datasets:
  a:
    key: [id]
    schedule: 1h
    source: {file: a.jsonl}
%s"""

    def test_sighup_bad_config(self):
        write_jsonl(self.path("a.jsonl"), recs(3))
        self.config(self.GOOD % "")
        d = self.daemon()
        wait_for(lambda: d.event("run_end", dataset="a"), what="a run")
        # A bad config: the old one stays, the error names file:line:col.
        self.config(self.GOOD % "  b:\n    key: [id]\n    schedule: 61s\n"
                    "    source: {file: a.jsonl}\n    bogus: 1\n")
        d.p.send_signal(signal.SIGHUP)
        err = wait_for(lambda: [e for e in d.event("reload")
                                if "keeping" in e["msg"]], what="reload")
        self.assertRegex(err[0]["msg"], r"atomsync\.yml:12:5: unknown key 'bogus'")
        self.assertEqual(d.get("/healthz")[0], 200)
        self.assertEqual(json.loads(d.get("/api/status")[1] and
                                    d.get("/api/status")[2])[0]["dataset"], "a")
        self.assertEqual(len(json.loads(d.get("/api/status")[2])), 1)
        # A good one is taken: the new dataset runs.
        self.config(self.GOOD % "  b:\n    key: [id]\n    schedule: 1h\n"
                    "    source: {file: a.jsonl}\n")
        d.p.send_signal(signal.SIGHUP)
        wait_for(lambda: d.event("run_end", dataset="b"), what="b to run")
        self.assertEqual(len(json.loads(d.get("/api/status")[2])), 2)
        self.assertEqual(d.stop(), 0)


class TestOutboxLoop(ServeCase):
    CONFIG = """
store: {store}
cache: %s
datasets:
  g:
    key: [id]
    schedule: 1h
    invalidate: ["g:{id}"]
    source: {file: g.jsonl}
"""

    def test_pending_events_redelivered(self):
        # Invariant 7: Redis is down at publish; the run succeeds, its
        # events wait, and the daemon's own loop delivers them later.
        sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))
        from redisserver import RedisServer, available
        if not available():
            self.skipTest("redis-server is not installed")
        os.makedirs(self.path("redis"))
        redis = RedisServer(dir=self.path("redis"))
        try:
            self.config(self.CONFIG % redis.unix_url(timeout="300ms"))
            write_jsonl(self.path("g.jsonl"), recs(3))
            redis.kill()
            d = self.daemon()
            end = wait_for(lambda: d.event("run_end", dataset="g"), what="run")
            self.assertEqual(end[0]["status"], "completed")
            p = self.atomsync("outbox", "list", "--json", check=OK)
            self.assertIn('"pending"', p.stdout)
            redis.start()
            r = redis.client()
            r.set_many(["g:1", "g:2", "g:3", "other"])
            wait_for(lambda: d.event("outbox") and
                     d.event("outbox")[-1].get("delivered") == 1,
                     timeout=15, what="redelivery")
            self.assertEqual(r.exists_many(["g:1", "g:2", "g:3", "other"]),
                             {"other"})
            r.close()
            self.assertEqual(d.stop(), 0)
        finally:
            redis.stop()


class TestStatusPage(ServeCase):
    def test_chromium(self):
        chromium = shutil.which("chromium") or shutil.which("chromium-browser")
        if not chromium:
            self.skipTest("chromium is not installed (scripts/deps.sh test "
                          "installs it); the status page was not rendered")
        write_jsonl(self.path("good.jsonl"), recs(40))
        self.config(TestEndpoints.CONFIG % "")
        d = self.daemon()
        wait_for(lambda: d.event("run_end", dataset="good"), what="a run")
        d.get("/api/run/bad", method="POST")
        wait_for(lambda: d.event("run_end", dataset="bad"), what="a failure")
        write_jsonl(self.path("good.jsonl"), recs(55))
        d.get("/api/run/good", method="POST")
        wait_for(lambda: len(d.event("run_end", dataset="good")) == 2,
                 what="a second run")
        out_dir = os.path.join(ROOT, "build", "test-artifacts")
        os.makedirs(out_dir, exist_ok=True)
        shot = os.path.join(out_dir, "serve-status.png")
        if os.path.exists(shot):
            os.unlink(shot)
        profile = self.path("chromium-profile")
        base = [chromium, "--headless", "--no-sandbox", "--disable-gpu",
                "--user-data-dir=" + profile, "--window-size=1100,900"]
        p = subprocess.run(base + ["--screenshot=" + shot, d.base + "/status"],
                           capture_output=True, text=True, timeout=60)
        self.assertTrue(os.path.exists(shot), p.stderr[-2000:])
        with open(shot, "rb") as f:
            self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")
        self.assertGreater(os.path.getsize(shot), 5000)
        p = subprocess.run(base + ["--dump-dom", d.base + "/status"],
                           capture_output=True, text=True, timeout=60)
        dom = p.stdout
        for text in ("atomsync status", "good", "bad", "completed", "failed",
                     "55 rows", "missing.jsonl", "next run", "<svg",
                     "(retry after 1 failed run)"):
            self.assertIn(text, dom)
        sys.stderr.write("status page screenshot: %s\n" % shot)
        self.assertEqual(d.stop(), 0)


if __name__ == "__main__":
    import unittest
    unittest.main()
