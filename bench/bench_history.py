#!/usr/bin/env python3
"""The cost of history in the publish (issue 6), on SQLite.

For each of `history: none | snapshot | scd2`: load the base file (1,000,000
addon records by default; not timed), then time the publish of the changed
file (bench/datagen.py's W3: 1% of records changed, 0.5% deleted, 0.5% new)
from `atomsync -v`'s "publish took X s".  Each round starts from a copy of
the loaded store, the modes alternate (the order rotates each round), and the
figure is the median of --runs rounds, reported as a ratio to the publish
without history (ratio of medians, and the median of per-round ratios).

    python3 bench/bench_history.py --bin build/atomsync [--records N] [--runs 3]

Standard library only.  Stores and logs go to a temporary directory (removed
unless --keep); results to bench/out/history.json.
"""
import argparse
import json
import os
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import datagen  # noqa: E402

MODES = ["none", "snapshot", "scd2"]
CONFIG = """store: sqlite:store.db
datasets:
  addons:
    key: [id]
    history: %s
    guard: {max_delete_fraction: 0.5}
    columns:
      id: {type: integer}
      name: {type: text}
      slug: {type: text}
      summary: {type: text}
      downloads: {type: integer}
      category: {type: text}
      score: {type: real}
      updated_at: {type: timestamp}
    source:
      file: %s
"""


def run(binary, cwd, log):
    """One `atomsync -v run`; (publish seconds, wall seconds, run line)."""
    t0 = time.monotonic()
    p = subprocess.run([binary, "-v", "run"], cwd=cwd, capture_output=True, text=True)
    wall = time.monotonic() - t0
    with open(log, "a") as f:
        f.write(p.stdout + p.stderr)
    if p.returncode != 0:
        sys.exit("atomsync failed in %s (exit %d):\n%s" % (cwd, p.returncode, p.stderr))
    m = re.search(r"publish took ([0-9.]+) s", p.stderr)
    if not m:
        sys.exit("no 'publish took' in the output of %s:\n%s" % (cwd, p.stderr))
    return float(m.group(1)), wall, p.stdout.strip()


def checkpoint(db):
    """Fold the WAL into the file so one copy holds the whole store."""
    c = sqlite3.connect(db)
    c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    c.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", default=os.path.join(HERE, "..", "build", "atomsync"))
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--data-dir", default=os.path.join(HERE, "data"))
    ap.add_argument("--out", default=os.path.join(HERE, "out", "history.json"))
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    a = ap.parse_args()
    binary = os.path.abspath(a.bin)
    os.makedirs(a.data_dir, exist_ok=True)
    base = os.path.abspath(datagen.base_file(a.data_dir, a.records, a.seed))
    changed, counts = datagen.changed_file(a.data_dir, a.records, a.seed)
    changed = os.path.abspath(changed)
    work = tempfile.mkdtemp(prefix="atomsync-bench-history-")
    log = os.path.join(work, "atomsync.log")
    seeds = {}
    try:
        for mode in MODES:
            d = os.path.join(work, "base-" + mode)
            os.makedirs(d)
            with open(os.path.join(d, "atomsync.yml"), "w") as f:
                f.write(CONFIG % (mode, base))
            pub, wall, line = run(binary, d, log)
            print("%-8s base load: publish %.2f s, run %.1f s: %s" % (mode, pub, wall, line),
                  flush=True)
            checkpoint(os.path.join(d, "store.db"))
            seeds[mode] = d
        samples = {m: [] for m in MODES}
        for r in range(a.runs):
            order = MODES[r % 3:] + MODES[:r % 3]
            for mode in order:
                d = os.path.join(work, "round%d-%s" % (r, mode))
                os.makedirs(d)
                shutil.copy(os.path.join(seeds[mode], "store.db"), d)
                with open(os.path.join(d, "atomsync.yml"), "w") as f:
                    f.write(CONFIG % (mode, changed))
                pub, wall, line = run(binary, d, log)
                samples[mode].append({"publish_s": pub, "run_s": wall})
                print("round %d %-8s publish %.3f s, run %.1f s: %s"
                      % (r + 1, mode, pub, wall, line), flush=True)
                shutil.rmtree(d)
    finally:
        if a.keep:
            print("kept " + work)
        else:
            shutil.rmtree(work, ignore_errors=True)
    med = {m: statistics.median(s["publish_s"] for s in samples[m]) for m in MODES}
    print("\n%d records, changed file: %s (%d updated, %d deleted, %d inserted); "
          "median of %d" % (a.records, os.path.basename(changed), counts["updated"],
                            counts["deleted"], counts["inserted"], a.runs))
    print("%-9s %10s %8s %8s" % ("history", "publish s", "ratio", "paired"))
    result = {"records": a.records, "runs": a.runs, "changed": counts, "modes": {}}
    for m in MODES:
        paired = statistics.median(s["publish_s"] / n["publish_s"]
                                   for s, n in zip(samples[m], samples["none"]))
        ratio = med[m] / med["none"]
        print("%-9s %10.3f %8.2f %8.2f" % (m, med[m], ratio, paired))
        result["modes"][m] = {"samples": samples[m], "median_publish_s": med[m],
                              "ratio": ratio, "paired": paired}
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    with open(a.out, "w") as f:
        json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
