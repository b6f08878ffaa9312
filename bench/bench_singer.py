#!/usr/bin/env python3
"""bench_singer.py: atomsync as a Singer target (issue 15).

A tap's output of N RECORD messages (default 1,000,000) over three streams
(tests/fixtures/multitap.py, written to a file first so the tap's own speed
is not measured) into an empty SQLite database with

  target  `atomsync target sqlite:DB < tap.singer` (three tables), against
  load    `atomsync load sqlite:DB recs recs.jsonl --key stream,id`: the same
          records as JSON lines into one table (the floor).

Both in the same invocation, alternating (the order rotates each round),
median of --runs rounds; the figure is the ratio target / load of wall
time (the goal: at most 1.3), with the CPU time ratio beside it.

  python3 bench/bench_singer.py --bin build/atomsync [--records N] [--runs 3]

Standard library only.  Results: a table on stdout and bench/out/singer.json.
"""

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TAP = os.path.join(ROOT, "tests", "fixtures", "multitap.py")


def timed(cmd, stdin=None):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    with open(stdin, "rb") if stdin else open(os.devnull, "rb") as f:
        p = subprocess.run(cmd, stdin=f, capture_output=True, text=True)
    wall = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode != 0:
        raise SystemExit("%s failed (%d): %s" % (" ".join(cmd), p.returncode, p.stderr))
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, p


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "atomsync"))
    ap.add_argument("--records", type=int, default=1000000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--dir", help="work directory (default: a temporary one)")
    a = ap.parse_args()

    work = a.dir or tempfile.mkdtemp(prefix="atomsync-bench-singer-")
    os.makedirs(work, exist_ok=True)
    per = (a.records + 2) // 3
    tap = os.path.join(work, "tap-%d.singer" % a.records)
    jsonl = os.path.join(work, "recs-%d.jsonl" % a.records)
    if not os.path.exists(tap):
        with open(tap + ".tmp", "w") as f:
            subprocess.run([sys.executable, TAP, "--count", str(per),
                            "--state-every", "10000"], stdout=f, check=True)
        os.rename(tap + ".tmp", tap)
    if not os.path.exists(jsonl):
        n = 0
        with open(tap) as f, open(jsonl + ".tmp", "w") as out:
            for line in f:
                m = json.loads(line)
                if m["type"] == "RECORD":
                    out.write(json.dumps(m["record"], separators=(",", ":")) + "\n")
                    n += 1
        os.rename(jsonl + ".tmp", jsonl)
    records = sum(1 for _ in open(jsonl))

    tools = {
        "load": lambda db: timed([a.bin, "-q", "load", "sqlite:" + db, "recs", jsonl,
                                  "--key", "stream,id"]),
        "target": lambda db: timed([a.bin, "-q", "target", "sqlite:" + db], stdin=tap),
    }
    samples = {k: [] for k in tools}
    order = list(tools)
    for rnd in range(a.runs):
        for name in order[rnd % 2:] + order[:rnd % 2]:
            db = os.path.join(work, "%s.db" % name)
            for ext in ("", "-wal", "-shm"):
                if os.path.exists(db + ext):
                    os.unlink(db + ext)
            wall, cpu, _ = tools[name](db)
            samples[name].append({"wall": wall, "cpu": cpu})
    med = {k: (statistics.median(s["wall"] for s in v),
               statistics.median(s["cpu"] for s in v)) for k, v in samples.items()}
    print("%d RECORD messages over 3 streams, SQLite, median of %d rounds"
          % (records, a.runs))
    print("%-8s %10s %10s %8s %8s" % ("tool", "wall s", "CPU s", "ratio", "CPU"))
    for k in ("load", "target"):
        print("%-8s %10.2f %10.2f %8.2f %8.2f" % (k, med[k][0], med[k][1],
                                                  med[k][0] / med["load"][0],
                                                  med[k][1] / med["load"][1]))
    os.makedirs(os.path.join(HERE, "out"), exist_ok=True)
    with open(os.path.join(HERE, "out", "singer.json"), "w") as f:
        json.dump({"records": records, "samples": samples}, f, indent=1)
    if not a.dir:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
