#!/usr/bin/env python3
"""bench_outbox.py: what cache invalidation costs (issue 5, invariant 7).

For N changed rows (default 100,000; every row of a table updated at once)
it measures, median of --runs rounds:

  publish   the publish of the update without `invalidate` (the floor) and
            with `invalidate: ["game:{id}"]`; the ratio is the extra cost of
            collecting the changed rows and recording the outbox event in
            the publish transaction;
  delivery  keys per second from the commit of the event to Redis's last
            UNLINK reply (pipelined UNLINKs of 1,000 keys), as the engine
            logs it (-v), against a real redis-server on a unix socket.

  python3 bench/bench_outbox.py --bin build/atomsync [--rows N] [--runs 3]
                                [--stores sqlite,postgres]

Standard library only; PostgreSQL through tests/lib (a private server).
Results: a table on stdout and bench/out/outbox.json.
"""

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))
from redisserver import RedisServer  # noqa: E402

CONFIG = """store: %(store)s
%(cache)sdatasets:
  games:
    key: [id]
    batch_size: 20000
    columns:
      id: {type: integer}
      title: {type: text}
      price: {type: integer}
%(invalidate)s    source:
      file: %(dir)s/games.jsonl
"""


def write_games(path, n, version):
    with open(path, "w") as f:
        for i in range(1, n + 1):
            f.write('{"id":%d,"title":"Game %d","price":%d}\n' % (i, i, 100 * version + i))


def run(bin, d, *args):
    p = subprocess.run([bin, "-v"] + list(args), cwd=d, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit("atomsync %s failed (%d): %s" % (" ".join(args), p.returncode,
                                                           p.stderr))
    return p.stderr


def one_round(bin, store_name, n, invalidate, redis):
    d = tempfile.mkdtemp(prefix="bench-outbox-")
    try:
        if store_name == "sqlite":
            url, store = "sqlite:%s/store.db" % d, None
        else:
            from atomsync_test import make_store
            store = make_store("postgres", d)
            url = store.url
        with open(os.path.join(d, "atomsync.yml"), "w") as f:
            f.write(CONFIG % {
                "store": url, "dir": d,
                "cache": "cache: %s\n" % redis.unix_url() if invalidate else "",
                "invalidate": '    invalidate: ["game:{id}"]\n' if invalidate else ""})
        write_games(os.path.join(d, "games.jsonl"), n, 0)
        run(bin, d, "run")
        write_games(os.path.join(d, "games.jsonl"), n, 1)
        c = redis.client()
        c.cmd("FLUSHALL")
        if invalidate:
            c.set_many("game:%d" % i for i in range(1, n + 1))
        c.close()
        err = run(bin, d, "run")
        publish = float(re.search(r"publish took ([0-9.]+) s", err).group(1))
        m = re.search(r"(\d+) keys and \d+ patterns delivered in ([0-9.]+) s", err)
        delivery = (int(m.group(1)), float(m.group(2))) if m else None
        if store:
            store.cleanup()
        return publish, delivery
    finally:
        shutil.rmtree(d, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "atomsync"))
    ap.add_argument("--rows", type=int, default=100000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--stores", default="sqlite")
    args = ap.parse_args()
    redis = RedisServer()
    results = {}
    try:
        for store in args.stores.split(","):
            base, inv, rates = [], [], []
            for _ in range(args.runs):
                # alternate, so a busy moment of the machine hits both
                base.append(one_round(args.bin, store, args.rows, False, redis)[0])
                p, (keys, secs) = one_round(args.bin, store, args.rows, True, redis)
                inv.append(p)
                rates.append(keys / secs if secs > 0 else float("inf"))
            results[store] = {
                "rows": args.rows, "publish_s": base, "publish_invalidate_s": inv,
                "keys_per_s": rates,
                "publish_ratio": statistics.median(inv) / statistics.median(base),
            }
    finally:
        redis.stop()
    print("%-9s %9s %12s %16s %7s %14s" % ("store", "rows", "publish (s)",
                                          "+invalidate (s)", "ratio", "delivery keys/s"))
    for store, r in results.items():
        print("%-9s %9d %12.3f %16.3f %7.2f %14.0f" % (
            store, r["rows"], statistics.median(r["publish_s"]),
            statistics.median(r["publish_invalidate_s"]), r["publish_ratio"],
            statistics.median(r["keys_per_s"])))
    os.makedirs(os.path.join(HERE, "out"), exist_ok=True)
    with open(os.path.join(HERE, "out", "outbox.json"), "w") as f:
        json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
