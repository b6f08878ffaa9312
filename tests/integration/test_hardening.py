"""Inputs and invocations a hostile probe tried (issue 18): an endless line,
the size cap with CRLF, odd keys, reserved names, store URLs that are not
stores, and odd arguments.  Each is a clear one-line error, and nothing is
lost or left behind (invariants 2, 9)."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from atomsync_test import (BIN, FIXTURES, OK, FAILED, USAGE,  # noqa: E402
                           StoreTestCase, for_each_store, spawn, write_jsonl)

TAP = os.path.join(FIXTURES, "tap.py")
CONFIG = """
store: {store}
datasets:
  d:
    key: [id]
    columns:
      id: {type: integer}
      name: {type: text}
%s    source:
%s"""


def own(stderr):
    return [l for l in stderr.splitlines() if l.startswith("atomsync:")]


def wait_for(cond, timeout=30.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.02)
    return False


@for_each_store
class EndlessInputTest(StoreTestCase):
    """Issue 18 item 2: the size cap ends an endless line, and one SIGTERM
    stops a run in every phase with nothing published (invariant 2)."""

    def setUp(self):
        super().setUp()
        self.config(CONFIG % ("", "      file: in.jsonl\n"))
        write_jsonl(self.path("in.jsonl"), [{"id": 1, "name": "a"}])
        self.atomsync("run", check=OK)
        self.before = self.store.full_rows("d")

    def test_endless_line_ends_at_the_cap(self):
        """Invariant 9: /dev/zero is one line that never ends: the run stops
        at the 16 MiB cap with a located error and exit 1."""
        t0 = time.monotonic()
        p = self.atomsync("load", self.store.url, "z", "/dev/zero", "--key", "id",
                          timeout=60)
        self.assertLess(time.monotonic() - t0, 30)
        self.assertEqual(p.returncode, FAILED, p.stderr)
        lines = own(p.stderr)
        self.assertEqual(len(lines), 1, p.stderr)
        self.assertRegex(lines[0], r"/dev/zero:1: record is over the size cap of "
                         r"16777216 bytes \(max_record_size\)")
        self.assertFalse(self.store.table_exists("z"))
        # The same through a config's file source and a small cap.
        self.config(CONFIG % ("    max_record_size: 1000\n", "      file: /dev/zero\n"))
        p = self.atomsync("run", timeout=60)
        self.assertEqual(p.returncode, FAILED, p.stderr)
        self.assertRegex(own(p.stderr)[0], r"/dev/zero:1: record is over the size "
                         r"cap of 1000 bytes")
        self.assertEqual(self.store.full_rows("d"), self.before)

    def assert_one_sigterm_stops(self, args, ready, env=None):
        """Start atomsync, wait until ready(), send one SIGTERM: it exits 1
        within 5 s, says it was interrupted, and publishes nothing."""
        p = spawn(args, cwd=self.dir, env=env)
        try:
            self.assertTrue(wait_for(ready), "never got going")
            time.sleep(0.3)
            os.kill(p.pid, signal.SIGTERM)
            t0 = time.monotonic()
            rc = p.wait(timeout=20)
            took = time.monotonic() - t0
            err = p.stderr.read()
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
            p.stderr.close()
        self.assertEqual(rc, FAILED, err)
        self.assertLess(took, 5, err)
        self.assertIn("interrupted", err)
        self.assertEqual(self.store.full_rows("d"), self.before)

    def test_sigterm_while_skipping_an_endless_line(self):
        """Invariant 2: with rejects allowed, the reader skips the over-long
        line looking for its end; one SIGTERM stops it."""
        self.config(CONFIG % ("    max_record_size: 1000\n    guard: {max_rejects: 5}\n",
                              "      file: /dev/zero\n"))
        n = len(self.runs("d"))
        self.assert_one_sigterm_stops(["run"], lambda: len(self.runs("d")) > n)
        self.assertEqual(self.runs("d")[0]["status"], "failed")
        # GNU timeout signals the child and then its process group: the two
        # SIGTERMs at once are one request to stop, not a kill.
        for _ in range(3):
            p = subprocess.run(["timeout", "--preserve-status", "-s", "TERM", "1",
                                BIN, "run"], cwd=self.dir, capture_output=True,
                               text=True, timeout=30)
            self.assertEqual(p.returncode, FAILED, p.stderr)
            self.assertIn("interrupted", p.stderr)
            runs = self.runs("d")
            self.assertEqual(runs[0]["status"], "failed")
            self.assertIn("interrupted", runs[0]["error"])
        self.assertEqual(self.store.full_rows("d"), self.before)

    def test_sigterm_while_a_command_streams(self):
        """Invariant 2: one SIGTERM stops a run reading a slow command."""
        write_jsonl(self.path("recs.jsonl"), [{"id": i, "name": "n"} for i in range(5000)])
        self.config(CONFIG % ("", '      exec: "%s %s --records recs.jsonl --format jsonl '
                              '--sleep 0.01 --log tap.log"\n' % (sys.executable, TAP)))
        self.assert_one_sigterm_stops(["run"], lambda: os.path.exists(self.path("tap.log")))

    def test_sigterm_while_waiting_for_a_locked_store(self):
        """Invariant 2: a run waiting for SQLite's write lock (another
        process holds it) stops on one SIGTERM, not after the 30 s busy
        timeout."""
        if self.store_name != "sqlite":
            self.skipTest("SQLite's file lock")
        write_jsonl(self.path("in.jsonl"), [{"id": i, "name": "b"} for i in range(100)])
        db = sqlite3.connect(self.store.path, isolation_level=None)
        db.execute("BEGIN EXCLUSIVE")
        try:
            self.assert_one_sigterm_stops(["run"], lambda: True)
        finally:
            db.execute("ROLLBACK")
            db.close()


class SqliteReadersTest(StoreTestCase):
    """Issue 18 item 9 (docs/operations.md, "Readers of a SQLite store"):
    atomsync holds SQLite's write lock only in its staging commits and its
    publish, never while a run waits for input, and closing takes no
    exclusive lock (SQLite's checkpoint-and-delete of the WAL at the last
    close would fail a reader without a busy timeout that opens meanwhile)."""
    store_name = "sqlite"

    def test_no_lock_while_a_run_waits_for_input(self):
        log = self.path("points.log")
        p = subprocess.Popen([BIN, "load", self.store.url, "t", "-", "--key", "id",
                              "--batch-size", "500"], cwd=self.dir,
                             env=dict(os.environ, ATOMSYNC_CRASH_LOG=log),
                             stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
        try:
            # Lines are read in chunks of 1,024: two chunks, several batches.
            for i in range(2500):
                p.stdin.write(json.dumps({"id": i}) + "\n")
            p.stdin.flush()

            def committed():
                if not os.path.exists(log):
                    return False
                with open(log) as f:
                    return f.read().count("stage.committed") >= 2
            self.assertTrue(wait_for(committed), "no staging commit")
            time.sleep(0.2)
            # The run is idle, waiting for stdin: the lock is free, at once.
            db = sqlite3.connect(self.store.path, timeout=0, isolation_level=None)
            try:
                db.execute("BEGIN IMMEDIATE")
                db.execute("ROLLBACK")
                self.assertEqual(db.execute("SELECT count(*) FROM atomsync_runs")
                                 .fetchone()[0], 1)
            finally:
                db.close()
            p.stdin.close()
            self.assertEqual(p.wait(timeout=60), OK, p.stderr.read())
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
            p.stderr.close()
        self.assertEqual(len(self.store.rows("t", ["id"])), 2500)

    def test_close_takes_no_exclusive_lock(self):
        """The last connection to close checkpoints passively: the WAL stays
        (it was not deleted under the exclusive lock) and the database file
        alone already holds the publish (a copy of it without the WAL is
        complete)."""
        write_jsonl(self.path("in.jsonl"), [{"id": i, "v": "x" * 100} for i in range(500)])
        self.atomsync("load", self.store.url, "t", "in.jsonl", "--key", "id", check=OK)
        self.assertTrue(os.path.exists(self.store.path + "-wal"))
        copy = self.path("copy.db")
        with open(self.store.path, "rb") as src, open(copy, "wb") as dst:
            dst.write(src.read())
        db = sqlite3.connect(copy)
        try:
            self.assertEqual(db.execute("SELECT count(*) FROM t").fetchone()[0], 500)
        finally:
            db.close()


@for_each_store
class SizeCapTest(StoreTestCase):
    """Issue 18 item 3: the cap counts the record, not its line ending."""

    def test_record_of_exactly_the_cap_with_crlf(self):
        """Invariant 9: a record of exactly max_record_size bytes is
        accepted whether its line ends in LF or CRLF; one byte more is
        rejected with its exact size."""
        self.config(CONFIG % ("    max_record_size: 1000\n", "      file: in.jsonl\n"))

        def record(i, size):
            r = json.dumps({"id": i, "name": ""}, separators=(",", ":"))
            return json.dumps({"id": i, "name": "x" * (size - len(r))},
                              separators=(",", ":")).encode()

        exact = [record(i, 1000) for i in (1, 2, 3)]
        self.assertEqual({len(r) for r in exact}, {1000})
        with open(self.path("in.jsonl"), "wb") as f:
            f.write(exact[0] + b"\r\n" + exact[1] + b"\n" + exact[2] + b"\r\n")
        self.atomsync("run", check=OK)
        self.assertEqual(len(self.store.rows("d", ["id"])), 3)
        before = self.store.full_rows("d")
        for end in (b"\r\n", b"\n", b""):
            with self.subTest(end=end):
                with open(self.path("in.jsonl"), "wb") as f:
                    f.write(exact[0] + b"\r\n" + record(2, 1001) + end)
                p = self.atomsync("run")
                self.assertEqual(p.returncode, FAILED, p.stderr)
                self.assertIn("in.jsonl:2: record is 1001 bytes, over the size cap "
                              "of 1000 bytes", own(p.stderr)[0])
                self.assertEqual(self.store.full_rows("d"), before)


@for_each_store
class LoadArgumentsTest(StoreTestCase):
    """Issue 18 items 4 and 6: `load` refuses keys and names it cannot
    honour as usage errors (exit 2, one line), before it touches the store:
    nothing is created or left behind (invariant 2)."""

    def setUp(self):
        super().setUp()
        write_jsonl(self.path("in.jsonl"), [{"id": i, "data": "x"} for i in range(3)])
        self.atomsync("load", self.store.url, "keep", "in.jsonl", "--key", "id", check=OK)
        # For `runs keep`: the same dataset in a config file.
        self.config("store: {store}\ndatasets:\n  keep:\n    key: [id]\n"
                    "    source: {file: in.jsonl}\n")
        self.before = self.store.full_rows("keep")

    def assert_usage(self, args, words):
        nruns = len(self.runs("keep"))
        p = self.atomsync("load", self.store.url, *args)
        self.assertEqual(p.returncode, USAGE, p.stderr)
        lines = own(p.stderr)
        self.assertEqual(len(lines), 1, p.stderr)
        for w in words:
            self.assertIn(w, lines[0])
        self.assertEqual(self.store.full_rows("keep"), self.before)
        self.assertEqual(len(self.runs("keep")), nruns)
        if self.store_name == "sqlite":
            names = [r[0] for r in self.store.query(
                "SELECT name FROM sqlite_master WHERE type = 'table'")]
        else:
            names = [r[0] for r in self.store.query(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
        self.assertEqual([n for n in names if n.lower().startswith("_atomsync_stage")], [],
                         names)
        self.assertNotIn("t", names)
        return lines[0]

    def test_key_data_and_repeated_keys(self):
        """Item 4: --key data would be the whole-record column; a key column
        named twice (in any case) is one column."""
        self.assert_usage(["t", "in.jsonl", "--key", "data", "--schema", "json"],
                          ["key data", "'data'", "whole record"])
        self.assert_usage(["t", "in.jsonl", "--key", "id,data", "--schema", "json"],
                          ["'data'"])
        self.assert_usage(["t", "in.jsonl", "--key", "id,id"], ["key id,id", "'id' twice"])
        self.assert_usage(["t", "in.jsonl", "--key", "id,ID"], ["'ID'", "twice"])
        self.assert_usage(["t", "in.jsonl", "--key", "id,"], ["key id,", "empty"])
        self.assert_usage(["t", "in.jsonl", "--key", "id", "--mode", "scoped",
                           "--scope", "id,id"], ["scope id,id", "twice"])

    def test_reserved_names(self):
        """Item 6: atomsync's and SQLite's own names, in any case, are
        refused like the config file refuses them."""
        for table in ("ATOMSYNC_RUNS", "atomsync_leases", "Atomsync_x",
                      "sqlite_master", "SQLITE_STAT1", "_atomsync_stage_1"):
            with self.subTest(table=table):
                self.assert_usage([table, "in.jsonl", "--key", "id"],
                                  ["table name '%s'" % table, "reserved"])
        for col in ("_atomsync_run", "_ATOMSYNC_HASH"):
            with self.subTest(col=col):
                self.assert_usage(["t", "in.jsonl", "--key", col], ["'%s'" % col, "reserved"])
                self.assert_usage(["t", "in.jsonl", "--key", "id", "--mode", "scoped",
                                   "--scope", col], ["'%s'" % col, "reserved"])
                self.assert_usage(["t", "in.jsonl", "--key", "id", "--mode", "incremental",
                                   "--cursor", col], ["'%s'" % col, "reserved"])
        self.assert_usage(["t", "in.jsonl", "--key", "my-id"], ["'my-id'", "identifier"])

    def test_config_refuses_the_same(self):
        """Items 4, 6: the config file refuses key 'data' without columns,
        a key listed twice in different case, and SQLite's own names."""
        base = ("store: {store}\ndatasets:\n  t:\n%s    source: {file: in.jsonl}\n")
        for body, word in (("    schema: json\n    key: [data]\n", "'data'"),
                           ("    key: [id, ID]\n", "twice"),
                           ("    table: sqlite_master\n    key: [id]\n", "reserved"),
                           ("    table: SQLite_Seq\n    key: [id]\n", "reserved")):
            with self.subTest(body=body):
                self.config(base % body)
                p = self.atomsync("run")
                self.assertEqual(p.returncode, USAGE, p.stderr)
                self.assertEqual(len(own(p.stderr)), 1, p.stderr)
                self.assertIn(word, p.stderr)
                self.assertRegex(p.stderr, r"atomsync\.yml:\d+:\d+: ")


class StoreUrlTest(StoreTestCase):
    """Issue 18 item 7: only sqlite:PATH, a PATH ending .db, .sqlite or
    .sqlite3, and PostgreSQL URLs or key=value strings are stores; anything
    else is a usage error naming the accepted forms, and creates nothing."""

    def test_not_a_store(self):
        write_jsonl(self.path("in.jsonl"), [{"id": 1}])
        for url in ("bogus:x", "foo", "mysql://u:secret@127.0.0.1/db", "sqlite:",
                    "x.txt", "redis://127.0.0.1:6379/0"):
            with self.subTest(url=url):
                p = self.atomsync("load", url, "t", "in.jsonl", "--key", "id")
                self.assertEqual(p.returncode, USAGE, p.stderr)
                lines = own(p.stderr)
                self.assertEqual(len(lines), 1, p.stderr)
                self.assertIn("sqlite:PATH", lines[0])
                self.assertIn("postgres://", lines[0])
                self.assertNotIn("secret", p.stderr)
                self.assertEqual(sorted(os.listdir(self.dir)), ["in.jsonl"])
        # The same from a config file.
        self.config("store: bogus:x\ndatasets:\n  t:\n    key: [id]\n"
                    "    source: {file: in.jsonl}\n")
        p = self.atomsync("run")
        self.assertEqual(p.returncode, USAGE, p.stderr)
        self.assertIn("sqlite:PATH", p.stderr)
        self.assertFalse(os.path.exists(self.path("bogus:x")))

    def test_the_accepted_forms(self):
        write_jsonl(self.path("in.jsonl"), [{"id": 1}])
        for url in ("sqlite:a", "sqlite:b.data", "c.db", "d.sqlite", "e.SQLITE3",
                    "sub/../f.db"):
            with self.subTest(url=url):
                self.atomsync("load", url, "t", "in.jsonl", "--key", "id", check=OK)
                path = url[len("sqlite:"):] if url.startswith("sqlite:") else url
                self.assertTrue(os.path.exists(self.path(os.path.basename(path))), url)


@for_each_store
class CliArgumentsTest(StoreTestCase):
    """Issue 18 item 10: a bad number, an extra or repeated argument, or an
    option without its value is a usage error (exit 2) naming it, before
    anything runs."""

    def setUp(self):
        super().setUp()
        self.config(CONFIG % ("    history: scd2\n", "      file: in.jsonl\n"))
        write_jsonl(self.path("in.jsonl"), [{"id": 1, "name": "a"}])
        self.atomsync("run", check=OK)
        self.before = self.store.full_rows("d")

    def assert_usage(self, args, words):
        nruns = len(self.runs("d"))
        p = self.atomsync(*args)
        self.assertEqual(p.returncode, USAGE, p.stderr)
        lines = own(p.stderr)
        self.assertEqual(len(lines), 1, p.stderr)
        for w in words:
            self.assertIn(w, lines[0])
        self.assertEqual(p.stdout, "")
        self.assertEqual(self.store.full_rows("d"), self.before)
        self.assertEqual(len(self.runs("d")), nruns)

    def test_numbers(self):
        for args, word in ((["runs", "d", "--limit", "-1"], "--limit -1"),
                           (["runs", "d", "--limit", "1x"], "--limit 1x"),
                           (["runs", "d", "--limit", "99999999999999999999"], "--limit"),
                           (["rollback", "d", "--to-run", "18446744073709551617"],
                            "--to-run 18446744073709551617"),
                           (["rollback", "d", "--to-run", "-1"], "--to-run -1"),
                           (["rollback", "d", "--to-run", "0"], "--to-run 0"),
                           (["verify", "d", "--sample", "-5"], "--sample -5")):
            with self.subTest(args=args):
                self.assert_usage(args, [word])
        self.assertEqual(len(json.loads(self.atomsync("runs", "d", "--json", "--limit", "0",
                                                      check=OK).stdout)), 1)

    def test_extra_and_repeated_arguments(self):
        self.assert_usage(["runs", "d", "extra"], ["extra"])
        self.assert_usage(["status", "d", "extra"], ["extra"])
        self.assert_usage(["rollback", "d", "--to-run", "1", "--to-run", "2"],
                          ["--to-run", "twice"])
        self.assert_usage(["rollback", "d", "e", "--to-run", "1"], ["'e'"])

    def test_option_without_its_value(self):
        for args, word in ((["-c"], "-c needs a FILE"),
                           (["--config"], "--config needs a FILE"),
                           (["run", "-c"], "-c"),
                           (["--metrics-file"], "--metrics-file needs a PATH")):
            with self.subTest(args=args):
                p = self.atomsync(*args)
                self.assertEqual(p.returncode, USAGE, p.stderr)
                self.assertIn(word, own(p.stderr)[0])
                self.assertNotIn("unknown option", p.stderr)


@for_each_store
class OddRecordsTest(StoreTestCase):
    """Issue 18 item 10: records a probe sent that were silently mangled or
    refused for no good reason (invariant 9)."""

    CFG = """
store: {store}
datasets:
  d:
    key: [id]
    columns:
      id: {type: integer}
      c: {type: integer, path: a.b.c}
      at: {type: timestamp}
    source:
      file: in.jsonl
"""

    def setUp(self):
        super().setUp()
        self.config(self.CFG)
        write_jsonl(self.path("in.jsonl"), [{"id": 1, "a": {"b": {"c": 7}}},
                                            {"id": 2, "a": None}, {"id": 3}])
        self.atomsync("run", check=OK)
        self.assertEqual(self.store.rows("d", ["id", "c"]), [(1, 7), (2, None), (3, None)])
        self.before = self.store.full_rows("d")

    def assert_bad(self, data, pattern):
        with open(self.path("in.jsonl"), "wb") as f:
            f.write(data)
        p = self.atomsync("run")
        self.assertEqual(p.returncode, FAILED, p.stderr)
        lines = own(p.stderr)
        self.assertEqual(len(lines), 1, p.stderr)
        self.assertRegex(lines[0], pattern)
        self.assertEqual(self.store.full_rows("d"), self.before)

    def test_path_through_a_scalar_or_array(self):
        """A declared path through a scalar or an array is a bad record
        naming the step; a missing or null step stays NULL."""
        self.assert_bad(b'{"id": 1, "a": {"b": {"c": 7}}}\n{"id": 2, "a": 5}\n',
                        r"in\.jsonl:2: 'a\.b\.c': 'a' is an integer, not an object")
        self.assert_bad(b'{"id": 1, "a": {"b": [1, 2]}}\n',
                        r"in\.jsonl:1: 'a\.b\.c': 'a\.b' is an array, not an object")

    def test_year_zero(self):
        """Timestamps are years 1 to 9999, in UTC as well."""
        for at in ("0000-01-01T00:00:00Z", "0001-01-01T00:30:00+01:00"):
            with self.subTest(at=at):
                self.assert_bad(json.dumps({"id": 1, "at": at}).encode() + b"\n",
                                r"in\.jsonl:1: 'at': ")
        write_jsonl(self.path("in.jsonl"), [{"id": 1, "a": {"b": {"c": 7}},
                                             "at": "0001-01-01T00:00:00Z"}])
        self.atomsync("run", check=OK)

    def test_byte_order_mark(self):
        """A UTF-8 byte order mark opening the file is skipped; one inside
        the file is still a bad record."""
        good = b'{"id": 1, "a": {"b": {"c": 8}}}\r\n{"id": 2}\r\n{"id": 3}\r\n'
        with open(self.path("in.jsonl"), "wb") as f:
            f.write(b"\xef\xbb\xbf" + good)
        self.atomsync("run", check=OK)
        self.assertEqual(self.store.rows("d", ["id", "c"]), [(1, 8), (2, None), (3, None)])
        self.before = self.store.full_rows("d")
        self.assert_bad(good + b'\xef\xbb\xbf{"id": 4}\n', r"in\.jsonl:4:")


@for_each_store
class BigIntegerTest(StoreTestCase):
    """Issue 18 item 10: an integer beyond 64 bits in a field no integer
    column maps is kept exactly, as its text, in `data` and in json
    columns; a column that would have to round it refuses the record
    (invariant 9)."""

    BIG = b"123456789012345678901234567890"

    def test_kept_exactly_in_data(self):
        line = (b'{"id":1,"n":' + self.BIG + b',"m":[-99999999999999999999,1.5e3,"x\\"1"]}')
        with open(self.path("in.jsonl"), "wb") as f:
            f.write(line + b"\n")
        self.atomsync("load", self.store.url, "t", "in.jsonl", "--key", "id",
                      "--schema", "json", check=OK)
        data = self.store.rows("t", ["data"])[0][0]
        if not isinstance(data, str):
            data = json.dumps(data, separators=(",", ":"))
        self.assertIn(self.BIG.decode(), data)
        self.assertIn("-99999999999999999999", data)

    def test_json_column_and_mapped_integer(self):
        self.config("store: {store}\ndatasets:\n  d:\n    key: [id]\n    columns:\n"
                    "      id: {type: integer}\n      m: {type: json}\n"
                    "      n: {type: integer}\n    source: {file: in.jsonl}\n")
        with open(self.path("in.jsonl"), "wb") as f:
            f.write(b'{"id":1,"m":{"x":' + self.BIG + b'},"n":2}\n')
        self.atomsync("run", check=OK)
        m = self.store.rows("d", ["m"])[0][0]
        self.assertIn(self.BIG.decode(), m if isinstance(m, str) else json.dumps(m))
        before = self.store.full_rows("d")
        with open(self.path("in.jsonl"), "wb") as f:
            f.write(b'{"id":1,"m":1,"n":' + self.BIG + b'}\n')
        p = self.atomsync("run")
        self.assertEqual(p.returncode, FAILED, p.stderr)
        self.assertIn("in.jsonl:1: 'n': integer %s is beyond 64 bits" % self.BIG.decode(),
                      own(p.stderr)[0])
        self.assertEqual(self.store.full_rows("d"), before)


if __name__ == "__main__":
    import unittest
    unittest.main()
