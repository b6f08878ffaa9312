#!/usr/bin/env python3
"""W5: the HTTP source against tests/fixtures/apiserver.py (a benchmark, not a test).

    python3 bench/bench_http.py [--bin build/atomsync] [--runs 3]

The server holds 12,500 records served as 250 pages of 50 with 100 ms of
latency on every page; `atomsync run` (SQLite store, a fresh database each
run) syncs them in three set-ups, each timed against its floor:

  concurrency 8, no rate limit   floor 250 x 0.1 s / 8 = 3.125 s   goal <= 1.15
  rate_limit 600/min (conc. 8)   floor 250 / 10 per s  = 25 s      goal <= 1.05
  concurrency 1                  floor 250 x 0.1 s     = 25 s      goal <= 1.05
  GraphQL (POST, cursor)         floor 250 x 0.1 s     = 25 s      goal <= 1.05
  OAuth2, concurrency 8          floor 250 x 0.1 s / 8 = 3.125 s   goal <= 1.15

(the GraphQL listing is sequential by nature: each page's cursor comes
from the one before; the OAuth2 one gets tokens that expire after 1 s from
a second server started with --oauth, so the run renews its token about
every 0.8 s) and the CPU time (user + sys of the atomsync process, from os.wait4) per
1,000 records.  Each figure is the median of --runs rounds; the set-ups
alternate within a round.  A table goes to stdout and every sample to
bench/out/http.json.  Standard library only.
"""
import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SERVER = os.path.join(ROOT, "tests", "fixtures", "apiserver.py")
RECORDS, PAGE, LATENCY_MS = 12_500, 50, 100
PAGES = RECORDS // PAGE

OFFSET = """        url: {base}/v1/mods
        params: {{gameId: 1}}
        records: data
        pagination: {{style: offset, offset_param: index, limit_param: pageSize,
                     limit: {page}, total_path: pagination.totalCount}}
"""
GRAPHQL = """        url: {base}/graphql
        method: POST
        body:
          query: "query($first: Int!, $after: String) {{ items(first: $first, after: $after) {{ nodes {{ id name downloadCount score updatedAt }} pageInfo {{ endCursor hasNextPage }} }} }}"
          variables: {{first: "{{limit}}", after: "{{page_cursor}}"}}
        records: data.items.nodes
        pagination: {{style: cursor, cursor_path: data.items.pageInfo.endCursor,
                     has_more_path: data.items.pageInfo.hasNextPage, limit: {page}}}
"""
OAUTH = OFFSET + """        auth:
          oauth2: {{token_url: "{base}/oauth/token", client_id: bench,
                   client_secret: bench-secret}}
"""

SETUPS = [
    # name, source template, extra http config, floor seconds, goal ratio, server
    ("concurrency 8", OFFSET, "        concurrency: 8\n", PAGES * LATENCY_MS / 1000 / 8,
     1.15, "plain"),
    ("rate 600/min", OFFSET, "        concurrency: 8\n        rate_limit: 600/min\n",
     PAGES / 10.0, 1.05, "plain"),
    ("concurrency 1", OFFSET, "        concurrency: 1\n", PAGES * LATENCY_MS / 1000, 1.05,
     "plain"),
    ("graphql POST", GRAPHQL, "", PAGES * LATENCY_MS / 1000, 1.05, "plain"),
    ("oauth2 conc. 8", OAUTH, "        concurrency: 8\n", PAGES * LATENCY_MS / 1000 / 8,
     1.15, "oauth"),
]

CONFIG = """store: sqlite:{db}
datasets:
  mods:
    key: [id]
    columns:
      id: {{type: integer}}
      name: {{type: text}}
      downloads: {{type: integer, path: downloadCount}}
      score: {{type: real}}
      updatedAt: {{type: timestamp}}
    source:
      http:
{source}{extra}"""


class Server:
    def __init__(self, workdir, name="plain", *args):
        port_file = os.path.join(workdir, "port-" + name)
        self.log = open(os.path.join(workdir, "server-%s.log" % name), "w")
        self.proc = subprocess.Popen(
            [sys.executable, SERVER, "--port", "0", "--port-file", port_file,
             "--records", str(RECORDS), "--latency-ms", str(LATENCY_MS)] + list(args),
            stdout=self.log, stderr=self.log, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while not os.path.exists(port_file):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("apiserver did not start")
            time.sleep(0.05)
        with open(port_file) as f:
            self.base = "http://127.0.0.1:%d" % int(f.read())

    def call(self, method, path):
        req = urllib.request.Request(self.base + path, data=b"{}" if method == "POST"
                                     else None, method=method)
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read())

    def stop(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=10)
        self.log.close()


def run_once(binary, workdir, server, name, source, extra):
    """One timed `atomsync run` on a fresh database: wall s, cpu s, stats."""
    db = os.path.join(workdir, "bench.db")
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(db + suffix):
            os.unlink(db + suffix)
    cfg = os.path.join(workdir, "atomsync.yml")
    with open(cfg, "w") as f:
        f.write(CONFIG.format(db=db, source=source.format(base=server.base, page=PAGE),
                              extra=extra))
    server.call("POST", "/_reset")
    os.sync()
    out = open(os.path.join(workdir, "run.out"), "w+")
    t0 = time.monotonic()
    p = subprocess.Popen([binary, "-c", cfg, "run"], cwd=workdir, stdout=out,
                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.monotonic() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    out.seek(0)
    text = out.read()
    out.close()
    stats = server.call("GET", "/_stats")
    if p.returncode != 0 or "12,500 seen, 12,500 inserted" not in text:
        raise RuntimeError("%s: atomsync exited %d: %s" % (name, p.returncode, text))
    return {"wall_s": round(wall, 4), "cpu_s": round(ru.ru_utime + ru.ru_stime, 4),
            "requests": stats["requests"], "max_in_flight": stats["max_in_flight"],
            "token_requests": stats.get("token_requests", 0)}


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bin", default=os.environ.get("ATOMSYNC_BIN")
                   or os.path.join(ROOT, "build", "atomsync"))
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--out", default=os.path.join(HERE, "out", "http.json"))
    p.add_argument("--only", help="run only the set-ups whose name contains this")
    args = p.parse_args(argv)
    setups = [s for s in SETUPS if not args.only or args.only in s[0]]
    workdir = tempfile.mkdtemp(prefix="atomsync-bench-http-")
    servers = {}
    samples = {s[0]: [] for s in setups}
    try:
        servers["plain"] = Server(workdir)
        servers["oauth"] = Server(workdir, "oauth", "--oauth", "bench:bench-secret",
                                  "--oauth-expires-in", "1")
        for rnd in range(args.runs):
            order = setups[rnd % len(setups):] + setups[:rnd % len(setups)]
            for name, source, extra, _, _, srv in order:
                s = run_once(args.bin, workdir, servers[srv], name, source, extra)
                samples[name].append(s)
                print("  round %d %-14s %6.2f s  cpu %.3f s  %d requests, "
                      "%d in flight, %d tokens" % (
                          rnd + 1, name, s["wall_s"], s["cpu_s"], s["requests"],
                          s["max_in_flight"], s["token_requests"]),
                      file=sys.stderr, flush=True)
    finally:
        for server in servers.values():
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    results, ok = {}, True
    print("\nW5 HTTP source: %d records, %d pages of %d, %d ms latency per page, "
          "median of %d" % (RECORDS, PAGES, PAGE, LATENCY_MS, args.runs))
    print("%-15s %9s %9s %7s %6s %6s %14s" % ("set-up", "time s", "floor s", "ratio",
                                              "goal", "", "cpu ms/1k rec"))
    for name, _, _, floor, goal, _ in setups:
        wall = statistics.median(s["wall_s"] for s in samples[name])
        cpu = statistics.median(s["cpu_s"] for s in samples[name])
        ratio = wall / floor
        passed = ratio <= goal
        ok &= passed
        per_k = cpu * 1000 / (RECORDS / 1000)
        results[name] = {"median_s": round(wall, 4), "floor_s": floor,
                         "ratio": round(ratio, 4), "goal": goal, "pass": passed,
                         "cpu_ms_per_1k_records": round(per_k, 3),
                         "samples": samples[name]}
        print("%-15s %9.3f %9.3f %7.3f %6.2f %6s %14.2f" % (
            name, wall, floor, ratio, goal, "PASS" if passed else "FAIL", per_k))
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"workload": "W5", "records": RECORDS, "pages": PAGES,
                   "page_size": PAGE, "latency_ms": LATENCY_MS, "runs": args.runs,
                   "binary": os.path.abspath(args.bin), "setups": results}, f, indent=1)
    print("results: %s" % os.path.relpath(args.out))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
