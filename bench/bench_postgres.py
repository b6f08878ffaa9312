#!/usr/bin/env python3
"""PostgreSQL store benchmark (not a test): atomsync load vs psql \\copy and
pgloader.

1,000,000 deterministic records (~200-byte JSON lines) are loaded with
`atomsync load <pg url> addons FILE --key id --mode full` into an empty
database (first load), then loaded again unchanged (unchanged reload).  The
baseline is `psql -c "\\copy ..."` of the same rows as CSV (id, the JSON
line) into a table (id bigint PRIMARY KEY, data jsonb): the shape atomsync
creates.  pgloader (Debian's package, when installed) loads the same CSV
into the same table shape: what a user would pick for a bulk load.  They
are run alternately, three rounds; medians are reported with the ratios to
\\copy (goals: first load <= 2.0, unchanged reload <= 1.0) and atomsync's
peak RSS (ru_maxrss from wait4).  Output: bench/out/postgres.json.

  python3 bench/bench_postgres.py [--bin build/atomsync] [--records N]
                                  [--rounds 3] [--url URL]

Without --url (or ATOMSYNC_PG_URL) it starts a private server with
tests/lib/pgserver.py (fsync on) and stops it at the end.
"""

import argparse
import csv
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))
import pgserver  # noqa: E402

WORDS = ("quest bag bank auction loot map raid dungeon boss timer frame bar "
         "unit party arena guild chat mail tooltip action cast aura buff").split()


def generate(n, path_jsonl, path_csv, seed=1):
    """n records of about 200 bytes, a pure function of (n, seed)."""
    rnd = random.Random(seed)
    with open(path_jsonl, "w") as fj, open(path_csv, "w", newline="") as fc:
        w = csv.writer(fc)
        for i in range(1, n + 1):
            rec = {"id": i,
                   "name": " ".join(rnd.choice(WORDS) for _ in range(3)).title(),
                   "slug": "addon-%d" % i,
                   "summary": " ".join(rnd.choice(WORDS) for _ in range(8)),
                   "downloads": rnd.randrange(0, 10_000_000),
                   "category": rnd.randrange(1, 40),
                   "score": round(rnd.random() * 100, 3),
                   "updated_at": "2026-01-%02dT%02d:%02d:00Z" % (
                       1 + i % 28, i % 24, i % 60)}
            line = json.dumps(rec, separators=(",", ":"))
            fj.write(line + "\n")
            w.writerow([i, line])


def run_rss(cmd):
    """(seconds, peak RSS in KiB, stdout) of one command, reaped with wait4
    so ru_maxrss is the child's own."""
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # Read output before reaping; the pipes are small (one summary line).
    out = p.stdout.read()
    err = p.stderr.read()
    _, status, ru = os.wait4(p.pid, 0)
    dt = time.monotonic() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    p.stdout.close()
    p.stderr.close()
    if p.returncode != 0:
        raise RuntimeError("%s: exit %d\n%s" % (" ".join(cmd), p.returncode,
                                                 err.decode(errors="replace")))
    return dt, ru.ru_maxrss, out.decode()


def pgloader_url(url, table):
    """pgloader's spelling of a libpq URL (unix socket as unix:DIR:PORT)."""
    u = urllib.parse.urlsplit(url)
    q = urllib.parse.parse_qs(u.query)
    user = u.username or "postgres"
    db = u.path.lstrip("/") or "postgres"
    port = u.port or 5432
    if "host" in q:
        host = "unix:%s:%d" % (q["host"][0], port)
    else:
        host = "%s:%d" % (u.hostname or "localhost", port)
    return "postgresql://%s@%s/%s?tablename=%s" % (user, host, db, table)


def pgloader_load(csvf, url, work):
    """Seconds for pgloader to load csvf into pgl_addons (created first)."""
    subprocess.run(["psql", "-X", "-q", "-c",
                    "CREATE TABLE pgl_addons (id bigint PRIMARY KEY, data jsonb)",
                    url], check=True)
    cmdf = os.path.join(work, "load.pgl")
    with open(cmdf, "w") as f:
        f.write("LOAD CSV\n"
                "  FROM '%s' (id, data)\n"
                "  INTO %s\n"
                "  WITH fields optionally enclosed by '\"',\n"
                "       fields escaped by double-quote,\n"
                "       fields terminated by ',';\n" % (csvf, pgloader_url(url, "pgl_addons")))
    dt, _, _ = run_rss(["pgloader", "--quiet", "--root-dir", os.path.join(work, "pgloader"),
                        cmdf])
    n = subprocess.run(["psql", "-X", "-At", "-c", "SELECT count(*) FROM pgl_addons", url],
                       check=True, capture_output=True, text=True).stdout.strip()
    subprocess.run(["psql", "-X", "-q", "-c", "DROP TABLE pgl_addons", url], check=True)
    return dt, int(n)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.environ.get("ATOMSYNC_BIN")
                    or os.path.join(ROOT, "build", "atomsync"))
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--url", default=os.environ.get("ATOMSYNC_PG_URL"))
    ap.add_argument("--out", default=os.path.join(HERE, "out", "postgres.json"))
    a = ap.parse_args()

    if a.url:
        os.environ["ATOMSYNC_PG_URL"] = a.url
    srv = pgserver.server()
    work = tempfile.mkdtemp(prefix="atomsync-bench-pg-")
    jsonl, csvf = os.path.join(work, "addons.jsonl"), os.path.join(work, "addons.csv")
    t0 = time.monotonic()
    generate(a.records, jsonl, csvf)
    print("generated %d records (%.0f MB) in %.1fs" % (
        a.records, os.path.getsize(jsonl) / 1e6, time.monotonic() - t0), flush=True)

    copy_t, first_t, again_t, rss, pgl_t = [], [], [], [], []
    have_pgloader = shutil.which("pgloader") is not None
    if not have_pgloader:
        print("pgloader not installed (Debian package pgloader): left out", flush=True)
    try:
        for rnd in range(a.rounds):
            db = "bench_pg_%d" % rnd
            srv.drop_database(db)
            url = srv.create_database(db)
            # Baseline: \copy of the same rows into the same table shape.
            subprocess.run(["psql", "-X", "-q", "-c",
                            "CREATE TABLE copy_addons (id bigint PRIMARY KEY, data jsonb)",
                            url], check=True)
            dt, _, _ = run_rss(["psql", "-X", "-q", "-c",
                                "\\copy copy_addons FROM '%s' WITH (FORMAT csv)" % csvf,
                                url])
            copy_t.append(dt)
            subprocess.run(["psql", "-X", "-q", "-c", "DROP TABLE copy_addons", url],
                           check=True)
            subprocess.run(["psql", "-X", "-q", "-c", "CHECKPOINT", url], check=True)
            if have_pgloader:
                dt, n = pgloader_load(csvf, url, work)
                if n != a.records:
                    raise RuntimeError("pgloader loaded %d rows of %d" % (n, a.records))
                pgl_t.append(dt)
                subprocess.run(["psql", "-X", "-q", "-c", "CHECKPOINT", url], check=True)
            cmd = [a.bin, "load", url, "addons", jsonl, "--key", "id", "--mode", "full"]
            dt, maxrss, out = run_rss(cmd)
            first_t.append(dt)
            rss.append(maxrss)
            assert "%d inserted" % a.records in out.replace(",", ""), out
            subprocess.run(["psql", "-X", "-q", "-c", "CHECKPOINT", url], check=True)
            dt, maxrss, out = run_rss(cmd)
            again_t.append(dt)
            rss.append(maxrss)
            assert "%d unchanged" % a.records in out.replace(",", ""), out
            print("round %d: \\copy %.2fs, pgloader %s, first load %.2fs, unchanged "
                  "reload %.2fs" % (rnd + 1, copy_t[-1],
                                    "%.2fs" % pgl_t[-1] if pgl_t else "-",
                                    first_t[-1], again_t[-1]), flush=True)
            srv.drop_database(db)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    med = statistics.median
    result = {
        "records": a.records,
        "rounds": a.rounds,
        "copy_seconds": copy_t,
        "first_load_seconds": first_t,
        "unchanged_reload_seconds": again_t,
        "copy_median": med(copy_t),
        "first_load_median": med(first_t),
        "unchanged_reload_median": med(again_t),
        "first_load_ratio": med(first_t) / med(copy_t),
        "unchanged_reload_ratio": med(again_t) / med(copy_t),
        "goals": {"first_load_ratio": 2.0, "unchanged_reload_ratio": 1.0},
        "pgloader_seconds": pgl_t,
        "pgloader_median": med(pgl_t) if pgl_t else None,
        "pgloader_ratio": med(pgl_t) / med(copy_t) if pgl_t else None,
        "first_load_vs_pgloader": med(first_t) / med(pgl_t) if pgl_t else None,
        "peak_rss_mib": max(rss) / 1024.0,
        "records_per_second_first_load": a.records / med(first_t),
    }
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    with open(a.out, "w") as f:
        json.dump(result, f, indent=2)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
