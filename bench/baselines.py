"""Hand-written sync jobs that bench/run.py measures atomsync against.

Each runs as its own process (python3 bench/baselines.py VERB ...), so its
time includes interpreter start-up as atomsync's includes process start, and
its peak RSS is measured the same way (os.wait4 in the runner).

  upsert-loop DB FILE      the pattern of shared/seeds/000: one autocommit
                           INSERT ... ON CONFLICT DO UPDATE per record
  scoped-setup DB FILE     create the W4 table and bulk-load it (untimed)
  scoped-replace DB FILE   the pattern of shared/seeds/004, done right: delete
                           each delivered scope and insert its new rows, all in
                           one transaction
"""
import json
import sqlite3
import sys
import time

from datagen import ADDON_FIELDS


def _connect(db):
    conn = sqlite3.connect(db, isolation_level=None)  # autocommit
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


def upsert_loop(db, path):
    conn = _connect(db)
    cols = ", ".join(ADDON_FIELDS)
    conn.execute("CREATE TABLE IF NOT EXISTS addons (id INTEGER PRIMARY KEY, "
                 "name TEXT, slug TEXT, summary TEXT, downloads INTEGER, "
                 "category TEXT, score REAL, updated_at TEXT)")
    sql = ("INSERT INTO addons (%s) VALUES (%s) ON CONFLICT(id) DO UPDATE SET %s"
           % (cols, ", ".join("?" * len(ADDON_FIELDS)),
              ", ".join("%s = excluded.%s" % (c, c) for c in ADDON_FIELDS[1:])))
    n = 0
    with open(path) as f:
        for line in f:
            rec = json.loads(line)
            conn.execute(sql, [rec.get(c) for c in ADDON_FIELDS])
            n += 1
    conn.close()
    return n


def scoped_setup(db, path):
    conn = _connect(db)
    conn.execute("CREATE TABLE subs (id INTEGER PRIMARY KEY, user_id INTEGER "
                 "NOT NULL, data TEXT)")
    conn.execute("CREATE INDEX subs_user ON subs(user_id)")
    conn.execute("BEGIN")
    with open(path) as f:
        conn.executemany("INSERT INTO subs VALUES (?, ?, ?)",
                         ((r["id"], r["user_id"], line.rstrip("\n"))
                          for line in f for r in [json.loads(line)]))
    conn.execute("COMMIT")
    conn.close()
    return 0


def scoped_replace(db, path):
    by_user = {}
    with open(path) as f:
        for line in f:
            r = json.loads(line)
            by_user.setdefault(r["user_id"], []).append(
                (r["id"], r["user_id"], line.rstrip("\n")))
    conn = _connect(db)
    conn.execute("BEGIN IMMEDIATE")
    for uid, rows in by_user.items():
        conn.execute("DELETE FROM subs WHERE user_id = ?", (uid,))
        conn.executemany("INSERT INTO subs VALUES (?, ?, ?)", rows)
    conn.execute("COMMIT")
    conn.close()
    return sum(len(r) for r in by_user.values())


def main(argv):
    verbs = {"upsert-loop": upsert_loop, "scoped-setup": scoped_setup,
             "scoped-replace": scoped_replace}
    if len(argv) != 4 or argv[1] not in verbs:
        sys.stderr.write("usage: baselines.py (%s) DB FILE\n" % "|".join(verbs))
        return 2
    t0 = time.perf_counter()
    n = verbs[argv[1]](argv[2], argv[3])
    print(json.dumps({"rows": n, "seconds": time.perf_counter() - t0}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
