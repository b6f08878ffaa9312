"""Shared helpers for atomsync's integration and fault tests.

The tests drive the real `atomsync` binary against real stores and read the
results back with the store's own client (Python's sqlite3 module for SQLite,
`psql` for PostgreSQL).  Nothing here is mocked.

Environment:
  ATOMSYNC_BIN            the binary (default: build/atomsync)
  ATOMSYNC_TEST_STORES    comma-separated stores to test (default: sqlite;
                          "sqlite,postgres" when a PostgreSQL server is up)
  ATOMSYNC_PG_URL         base URL of a test PostgreSQL server (set by
                          tests/lib/pgserver.py or .ci/run)
"""

import hashlib
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BIN = os.environ.get("ATOMSYNC_BIN") or os.path.join(ROOT, "build", "atomsync")
FIXTURES = os.path.join(ROOT, "tests", "fixtures")

# Exit codes of DESIGN.md
OK, FAILED, USAGE, REFUSED, LEASED = 0, 1, 2, 3, 4
CRASH_EXIT = 86  # util/crash.h


def run(args, cwd=None, env=None, input=None, timeout=300, check=None):
    """Run atomsync; returns CompletedProcess with text stdout/stderr."""
    e = dict(os.environ)
    e.pop("ATOMSYNC_CRASH", None)
    e.pop("ATOMSYNC_CRASH_LOG", None)
    if env:
        e.update(env)
    p = subprocess.run([BIN] + list(args), cwd=cwd, env=e, input=input,
                       capture_output=True, text=True, timeout=timeout)
    if check is not None and p.returncode != check:
        raise AssertionError("atomsync %s: exit %d, expected %d\nstdout: %s\nstderr: %s"
                             % (" ".join(args), p.returncode, check, p.stdout, p.stderr))
    return p


def spawn(args, cwd=None, env=None, stdout=subprocess.DEVNULL,
          stderr=subprocess.PIPE):
    e = dict(os.environ)
    e.pop("ATOMSYNC_CRASH", None)
    if env:
        e.update(env)
    return subprocess.Popen([BIN] + list(args), cwd=cwd, env=e, stdout=stdout,
                            stderr=stderr, text=True)



def proc_state(pid):
    """The state letter of process pid ("T": stopped), or None when gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


# ---- records ----

def wait_for(cond, timeout=30.0, what="condition"):
    """cond()'s first true value, polled every 20 ms; fails after timeout."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = cond()
        if v:
            return v
        time.sleep(0.02)
    raise AssertionError("timed out waiting for " + what)


def make_records(n, seed=1, start=1, version=0):
    """n deterministic addon-like records (about 200 bytes each)."""
    rnd = random.Random(seed)
    out = []
    for i in range(start, start + n):
        out.append({
            "id": i,
            "name": "Addon %d" % i,
            "slug": "addon-%d" % i,
            "downloads": rnd.randrange(0, 10_000_000) + version,
            "category": rnd.randrange(1, 21),
            "score": round(rnd.random() * 100, 3),
            "updated_at": "2026-01-%02dT%02d:00:00Z" % (1 + i % 28, i % 24),
            "tags": ["t%d" % (i % 7), "t%d" % (i % 11)],
        })
    return out


def write_jsonl(path, records):
    with open(path, "w") as f:
        for r in records:
            f.write(json.dumps(r, separators=(",", ":")) + "\n")
    return path


# ---- stores ----

class SqliteStore:
    name = "sqlite"

    def __init__(self, workdir):
        self.path = os.path.join(workdir, "store.db")
        self.url = "sqlite:" + self.path

    def _conn(self):
        c = sqlite3.connect(self.path, timeout=30)
        return c

    def query(self, sql, params=()):
        if not os.path.exists(self.path):
            return []
        c = self._conn()
        try:
            return [tuple(r) for r in c.execute(sql, params).fetchall()]
        finally:
            c.close()

    def execute(self, sql, params=()):
        """A statement with no result, committed (test setup, tampering)."""
        c = self._conn()
        try:
            c.execute(sql, params)
            c.commit()
        finally:
            c.close()

    def table_exists(self, table):
        return bool(self.query("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?",
                               (table,)))

    def tables(self):
        return sorted(r[0] for r in self.query(
            "SELECT name FROM sqlite_master WHERE type='table'"))

    def rows(self, table, cols=None):
        """The live rows, sorted, without atomsync's own columns."""
        if not self.table_exists(table):
            return []
        names = cols or [r[1] for r in self.query('PRAGMA table_info("%s")' % table)
                         if not r[1].startswith("_atomsync")]
        sql = 'SELECT %s FROM "%s" ORDER BY 1, 2' % (
            ", ".join('"%s"' % c for c in names), table)
        if len(names) == 1:
            sql = sql.replace("ORDER BY 1, 2", "ORDER BY 1")
        return self.query(sql)

    def full_rows(self, table):
        """Every column, atomsync's included (for byte-identity checks)."""
        if not self.table_exists(table):
            return []
        return self.query('SELECT * FROM "%s" ORDER BY 1' % table)

    def integrity(self):
        return self.query("PRAGMA integrity_check")[0][0]

    def cleanup(self):
        pass


def digest(rows):
    h = hashlib.sha256()
    for r in rows:
        h.update(repr(r).encode())
    return h.hexdigest()[:16]


PG_CTL = "/usr/lib/postgresql/15/bin/pg_ctl"


def store_names():
    """The stores every @for_each_store test runs on: ATOMSYNC_TEST_STORES,
    else SQLite, and PostgreSQL when a server is given (ATOMSYNC_PG_URL) or
    Debian's server binaries are installed (tests/lib/pgserver.py starts one
    per test process, on first use)."""
    names = os.environ.get("ATOMSYNC_TEST_STORES")
    if names:
        return [n.strip() for n in names.split(",") if n.strip()]
    pg = os.environ.get("ATOMSYNC_PG_URL") or os.path.exists(PG_CTL)
    return ["sqlite"] + (["postgres"] if pg else [])


def make_store(name, workdir):
    if name == "sqlite":
        return SqliteStore(workdir)
    if name == "postgres":
        if HERE not in sys.path:
            sys.path.insert(0, HERE)
        from pgstore import PostgresStore  # tests/lib/pgstore.py
        return PostgresStore(workdir)
    raise ValueError("unknown store " + name)


class StoreTestCase(unittest.TestCase):
    """A test case run once per store (see `for_each_store`).  Each test gets
    a fresh directory and a fresh, empty store."""
    store_name = "sqlite"

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="atomsync-test-")
        self.store = make_store(self.store_name, self.dir)

    def tearDown(self):
        self.store.cleanup()
        if os.environ.get("ATOMSYNC_KEEP_TEST_DIRS"):
            sys.stderr.write("kept %s\n" % self.dir)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)

    # -- helpers --
    def path(self, name):
        return os.path.join(self.dir, name)

    def read(self, name):
        with open(self.path(name)) as f:
            return f.read()

    def config(self, text, name="atomsync.yml"):
        """Write a config; {store} and {dir} are replaced."""
        p = self.path(name)
        with open(p, "w") as f:
            f.write(text.replace("{store}", self.store.url).replace("{dir}", self.dir))
        return p

    def atomsync(self, *args, check=None, **kw):
        kw.setdefault("cwd", self.dir)
        return run(list(args), check=check, **kw)

    def runs(self, dataset):
        p = self.atomsync("runs", dataset, "--json", "--limit", "1000", check=OK)
        return json.loads(p.stdout)

    def status(self):
        p = self.atomsync("status", "--json", check=OK)
        return {d["dataset"]: d for d in json.loads(p.stdout)}


def for_each_store(cls):
    """Class decorator: make one subclass per store under test, named
    <Class>_<store>, and hide the base from unittest discovery."""
    module = sys.modules[cls.__module__]
    for name in store_names():
        sub = type("%s_%s" % (cls.__name__, name), (cls,), {"store_name": name})
        sub.__module__ = cls.__module__
        setattr(module, sub.__name__, sub)
    cls.__test__ = False  # the base itself is not run
    return None


def reference_rows(records, cols, key="id"):
    """What the live table must hold after a full sync of records (later
    records replace earlier ones with the same key)."""
    by_key = {}
    for r in records:
        by_key[r[key]] = tuple(r.get(c) for c in cols)
    return [by_key[k] for k in sorted(by_key)]
