"""Singer as a target: the Meltano Singer SDK's target test streams on every
store with the outcome their README gives, input rules (message types in
any case, invalid SCHEMA, RECORD before SCHEMA, missing key property, BATCH,
\\u0000), streams without key_properties (invariant 5), key columns typed
from SCHEMA, a key change, `load --stream`, and a tap's STATE bookmark kept
with the publish and handed to the next run (invariant 8), with crash points
before and after the publish commit.
"""

import gzip
import json
import os
import signal
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from atomsync_test import (BIN, CRASH_EXIT, FAILED, FIXTURES, OK,  # noqa: E402
                           USAGE, StoreTestCase, for_each_store)

CORPUS = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared",
                      "corpora", "singer-sdk-target-streams")
CORPUS = os.environ.get("ATOMSYNC_SINGER_CORPUS", os.path.normpath(CORPUS))
if not os.path.isdir(CORPUS):
    CORPUS = "/work/shared/corpora/singer-sdk-target-streams"
MULTITAP = os.path.join(FIXTURES, "multitap.py")

# The README's "fail with a clear error" files, and the line named.
ERRORS = {"invalid_schema": 1, "record_before_schema": 1,
          "record_missing_key_property": 2}
# Loaded after another file into the same tables (README: "then").
AFTER = {"user_location_upsert_data": "user_location_data",
         "no_primary_keys_append": "no_primary_keys"}


def messages(path):
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if line.strip():
                yield n, json.loads(line)


def streams_of(path):
    out = []
    for _, m in messages(path):
        s = m.get("stream")
        if s and s not in out:
            out.append(s)
    return out


def reference(paths, stream):
    """What a Singer target must hold for stream after loading paths in
    order: by key_properties, the later record of a key wins; without
    key_properties every distinct record once."""
    keyed, rows = None, {}
    for p in paths:
        for _, m in messages(p):
            if m.get("stream") != stream:
                continue
            t = m["type"].upper()
            if t == "SCHEMA":
                keyed = m.get("key_properties") or None
            elif t == "RECORD":
                r = m["record"]
                k = (tuple(json.dumps(r.get(c)) for c in keyed) if keyed
                     else json.dumps(r, sort_keys=True))
                rows[k] = r
    return sorted((json.dumps(r, sort_keys=True) for r in rows.values()))


def has_nul(path, stream):
    """Whether a RECORD of stream holds a real NUL (not the text \\\\u0000)."""
    def walk(v):
        if isinstance(v, str):
            return "\x00" in v
        if isinstance(v, dict):
            return any(walk(x) for x in v.values())
        if isinstance(v, list):
            return any(walk(x) for x in v)
        return False
    return any(m.get("stream") == stream and walk(m.get("record"))
               for _, m in messages(path))


def table_for(stream):
    return "".join(c if c.isalnum() else "_" for c in stream.lower())


class SingerBase(StoreTestCase):
    """These tests compare the records a table holds with the Singer
    input, so they keep the key + `data` layout (`--schema json`,
    `schema: json`); InferredColumnsTest runs the SDK corpus with the
    default, typed columns."""

    def atomsync(self, *args, **kw):
        if args and args[0] in ("load", "target") and "--schema" not in args:
            args = args + ("--schema", "json")
        return super().atomsync(*args, **kw)

    def table_data(self, table):
        """The `data` column of table, each without the content hash of a
        keyless stream, as sorted canonical JSON."""
        if not self.store.table_exists(table):
            return []
        out = []
        for (d,) in self.store.query('SELECT data FROM "%s"' % table):
            r = json.loads(d)
            r.pop("_record_hash", None)
            out.append(json.dumps(r, sort_keys=True))
        return sorted(out)

    def load(self, path, table, *extra, check=None):
        return self.atomsync("load", self.store.url, table, path, "--format",
                             "singer", *extra, check=check)


@for_each_store
class SdkCorpusTest(SingerBase):

    def test_every_sdk_stream(self):
        """Every file of the SDK's target test streams, each stream into its
        own table (`load --stream`): loaded as a reference target would
        (later record of a key wins, keyless records appended once), or a
        clear error naming file:line where the README expects one.  On
        PostgreSQL a string holding \\u0000 cannot be stored: the run fails
        naming the line and the field, nothing published (invariants 2, 9).
        Prints the table of outcomes."""
        files = sorted(f[:-7] for f in os.listdir(CORPUS) if f.endswith(".singer"))
        self.assertEqual(len(files), 20)
        table = []
        for name in files:
            if name in AFTER.values():
                continue  # loaded first by the file that follows it
            paths = [os.path.join(CORPUS, n + ".singer")
                     for n in ([AFTER[name]] if name in AFTER else []) + [name]]
            for stream in streams_of(paths[-1]):
                tbl = "%s__%s" % (name[:20], table_for(stream))[:60]
                ok, what = True, []
                for i, p in enumerate(paths):
                    base = os.path.basename(p)
                    # incremental: a Singer target upserts what it is sent
                    r = self.load(p, tbl, "--stream", stream, "--mode", "incremental")
                    last = i == len(paths) - 1
                    if name in ERRORS:
                        expected = "error"
                        ok &= r.returncode == FAILED
                        ok &= ("%s:%d:" % (base, ERRORS[name])) in r.stderr
                        ok &= len(r.stderr.strip().splitlines()) == 1
                        ok &= not self.store.table_exists(tbl) or \
                            self.table_data(tbl) == []
                        what.append("exit %d: %s" % (r.returncode, r.stderr.strip()
                                                     .replace(CORPUS + "/", "")[:90]))
                    elif self.store_name == "postgres" and has_nul(p, stream):
                        expected = "reject \\u0000 (line, field)"
                        ok &= r.returncode == FAILED
                        ok &= "%s:" % base in r.stderr and "field '" in r.stderr
                        ok &= "JSON_ALLOW_NUL" not in r.stderr
                        what.append("exit %d: %s" % (r.returncode, r.stderr.strip()
                                                     .replace(CORPUS + "/", "")[:90]))
                    else:
                        expected = "load"
                        ok &= r.returncode == OK
                        if last:
                            want = reference(paths, stream)
                            got = self.table_data(tbl)
                            ok &= got == want
                            what.append("exit %d, %d rows%s" % (
                                r.returncode, len(got),
                                "" if got == want else " (MISMATCH)"))
                    if not ok:
                        what.append(r.stderr.strip()[:200])
                        break
                table.append((name, stream, expected, "; ".join(what), ok))
        sys.stderr.write("\n%-28s %-36s %-20s %s\n" % ("file", "stream", "expected",
                                                       "atomsync (%s)" % self.store_name))
        for row in table:
            sys.stderr.write("%-28s %-36s %-20s %s%s\n" % (
                row[0], row[1][:36], row[2], row[3], "" if row[4] else "  <-- WRONG"))
        self.assertEqual([r for r in table if not r[4]], [])

    def test_keyless_replay_adds_nothing(self):
        """Invariant 5: a stream without key_properties is keyed by a hash
        of each record's content and appended: the same output loaded twice
        adds nothing; the next file's records are added, none deleted."""
        p = os.path.join(CORPUS, "no_primary_keys.singer")
        self.assertIn("3 inserted", self.load(p, "nopk", check=OK).stdout)
        before = self.store.full_rows("nopk")
        r = self.load(p, "nopk", check=OK)
        self.assertIn("0 inserted, 0 updated, 3 unchanged, 0 deleted", r.stdout)
        self.assertEqual(self.store.full_rows("nopk"), before)
        r = self.load(os.path.join(CORPUS, "no_primary_keys_append.singer"), "nopk",
                      check=OK)
        self.assertIn("5 inserted", r.stdout)
        self.assertIn("0 deleted", r.stdout)
        self.assertEqual(len(self.table_data("nopk")), 8)
        # Two identical events in one run: one row, a duplicate.
        dup = self.path("dup.singer")
        with open(dup, "w") as f:
            f.write('{"type":"SCHEMA","stream":"e","key_properties":[],'
                    '"schema":{"properties":{"a":{"type":"integer"}}}}\n')
            f.write('{"type":"RECORD","stream":"e","record":{"a":1}}\n' * 2)
        r = self.load(dup, "ev", check=OK)
        self.assertIn("1 inserted", r.stdout)
        self.assertIn("1 duplicates", r.stdout)


@for_each_store
class SingerRulesTest(SingerBase):

    def write(self, name, msgs):
        with open(self.path(name), "w", encoding="utf-8") as f:
            for m in msgs:
                f.write((m if isinstance(m, str) else json.dumps(m)) + "\n")
        return self.path(name)

    SCHEMA = {"type": "SCHEMA", "stream": "s", "key_properties": ["id"],
              "schema": {"properties": {"id": {"type": "integer"},
                                        "email": {"type": "string"}}}}

    def test_message_types_any_case(self):
        """The Singer spec: message types are case-insensitive; lower-case
        RECORDs are loaded, never dropped."""
        p = self.write("in.singer", [dict(self.SCHEMA, type="schema"),
                                     {"type": "record", "stream": "s",
                                      "record": {"id": 1}},
                                     {"type": "Record", "stream": "s",
                                      "record": {"id": 2}}])
        self.assertIn("2 inserted", self.load(p, "s", check=OK).stdout)

    def test_key_typed_from_schema(self):
        """A run with a SCHEMA and no records makes the key column the type
        the SCHEMA declares, so the next run with records fits it."""
        p = self.write("a.singer", [self.SCHEMA])
        self.load(p, "s", check=OK)
        if self.store_name == "sqlite":
            cols = {r[1]: r[2] for r in self.store.query('PRAGMA table_info("s")')}
        else:
            cols = dict(self.store.query(
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_name = 's'"))
        self.assertIn(cols["id"].lower(), ("integer", "bigint"))
        p = self.write("b.singer", [self.SCHEMA, {"type": "RECORD", "stream": "s",
                                                  "record": {"id": 7}}])
        self.assertIn("1 inserted", self.load(p, "s", check=OK).stdout)

    def test_key_change(self):
        """A SCHEMA that changes key_properties within a run: a clear error
        saying to choose the key; with --key the same input loads; a later
        run whose SCHEMA does not fit the table says so, and --key with the
        table's key loads it."""
        other = dict(self.SCHEMA, key_properties=["email"])
        p = self.write("in.singer", [self.SCHEMA,
                                     {"type": "RECORD", "stream": "s",
                                      "record": {"id": 1, "email": "a@x"}},
                                     other,
                                     {"type": "RECORD", "stream": "s",
                                      "record": {"id": 2, "email": "b@x"}}])
        r = self.load(p, "s", check=USAGE)
        self.assertIn("changes the key_properties from (id) to (email)", r.stderr)
        self.assertIn("set `key`", r.stderr)
        self.assertNotIn("--restart", r.stderr)
        self.assertFalse(self.store.table_exists("s") and self.table_data("s"))
        r = self.load(p, "s", "--key", "id", check=OK)
        self.assertIn("2 inserted", r.stdout)
        q = self.write("q.singer", [other, {"type": "RECORD", "stream": "s",
                                            "record": {"id": 3, "email": "c@x"}}])
        r = self.load(q, "s", check=USAGE)
        self.assertIn("key_properties (email) do not fit the existing table", r.stderr)
        self.load(q, "s", "--key", "id", "--mode", "incremental", check=OK)
        self.assertEqual(len(self.table_data("s")), 3)

    def test_missing_key_and_before_schema_name_the_line(self):
        """Invariant 9: a RECORD before its stream's SCHEMA and a RECORD
        without a key property fail the run naming file:line; nothing is
        published."""
        p = self.write("a.singer", [dict(self.SCHEMA, stream="t"),
                                    {"type": "RECORD", "stream": "t", "record": {"id": 1}},
                                    {"type": "RECORD", "stream": "s", "record": {"id": 1}}])
        r = self.load(p, "s", "--stream", "s", check=FAILED)
        self.assertRegex(r.stderr, r"a\.singer:3: Singer RECORD of stream 's' before "
                                   r"its SCHEMA")
        self.assertEqual(self.table_data("s"), [])
        p = self.write("b.singer", [self.SCHEMA,
                                    {"type": "RECORD", "stream": "s", "record": {"id": 1}},
                                    {"type": "RECORD", "stream": "s", "record": {"x": 1}}])
        r = self.load(p, "s", check=FAILED)
        self.assertIn("b.singer:3: Singer RECORD without key property 'id'", r.stderr)
        self.assertEqual(self.table_data("s"), [])

    def test_batch_messages(self):
        """BATCH: the file:// manifest's JSON-lines files (gzip or plain)
        are read as the stream's records; a bad line in one is named by its
        file and line; any other URL scheme is an error, never a skip."""
        gz = self.path("part1.jsonl.gz")
        with gzip.open(gz, "wt") as f:
            for i in range(1, 4):
                f.write(json.dumps({"id": i, "email": "%d@x" % i}) + "\n")
        plain = self.path("part2.jsonl")
        with open(plain, "w") as f:
            f.write(json.dumps({"id": 4}) + "\n")
        batch = {"type": "BATCH", "stream": "s",
                 "encoding": {"format": "jsonl", "compression": "gzip"},
                 "manifest": ["file://" + gz, "file://" + plain]}
        p = self.write("in.singer", [self.SCHEMA, batch,
                                     {"type": "RECORD", "stream": "s",
                                      "record": {"id": 5}}])
        self.assertIn("5 inserted", self.load(p, "s", check=OK).stdout)
        s3 = dict(batch, manifest=["s3://bucket/x.jsonl.gz"])
        p = self.write("s3.singer", [self.SCHEMA, s3])
        r = self.load(p, "s", check=FAILED)
        self.assertIn("s3.singer:2:", r.stderr)
        self.assertIn("'s3://bucket/x.jsonl.gz': only file:// URLs", r.stderr)
        with open(plain, "a") as f:
            f.write("{broken\n")
        p = self.write("bad.singer", [self.SCHEMA, batch])
        r = self.load(p, "s", check=FAILED)
        self.assertIn("part2.jsonl:2:", r.stderr)
        self.assertEqual(len(self.table_data("s")), 5)

    def test_nul_in_strings(self):
        """\\u0000 inside a string: SQLite keeps it (the text is bound with
        its length); PostgreSQL cannot, and the record is rejected naming the
        line and the field (invariant 9), never a parser flag.  The text
        \\\\u0000 (an escaped backslash) loads on both."""
        p = self.write("in.singer", [
            self.SCHEMA,
            '{"type":"RECORD","stream":"s","record":{"id":1,"email":"a\\\\u0000b"}}',
            '{"type":"RECORD","stream":"s","record":{"id":2,"email":"x\\u0000y"}}'])
        r = self.load(p, "s")
        self.assertNotIn("ALLOW_NUL", r.stderr)
        if self.store_name == "sqlite":
            self.assertEqual(r.returncode, OK, r.stderr)
            got = {json.loads(d)["id"]: json.loads(d)["email"]
                   for (d,) in self.store.query('SELECT data FROM "s"')}
            self.assertEqual(got, {1: "a\\u0000b", 2: "x\x00y"})
            # A text key holding a NUL: bound with its length, kept whole,
            # and a reload finds it unchanged (invariant 5).
            k = self.write("k.singer", [
                '{"type":"SCHEMA","stream":"k","key_properties":["k"],'
                '"schema":{"properties":{"k":{"type":"string"}}}}',
                '{"type":"RECORD","stream":"k","record":{"k":"a\\u0000b"}}'])
            self.load(k, "k", check=OK)
            self.assertEqual(self.store.query('SELECT hex(k) FROM "k"'), [("610062",)])
            self.assertIn("1 unchanged", self.load(k, "k", check=OK).stdout)
        else:
            self.assertEqual(r.returncode, FAILED)
            self.assertIn("in.singer:3", r.stderr)
            self.assertIn("field 'email'", r.stderr)
            self.assertEqual(self.table_data("s"), [])
            r = self.load(p, "s", "--max-rejects", "1", check=OK)
            self.assertEqual(self.table_data("s"),
                             [json.dumps({"email": "a\\u0000b", "id": 1},
                                         sort_keys=True)])

    def test_load_stream(self):
        """`load --stream NAME` takes that stream of a multi-stream file;
        --stream needs --format singer."""
        p = os.path.join(CORPUS, "user_location_data.singer")
        r = self.load(p, "loc", "--stream", "test_locations", check=OK)
        self.assertIn("3 inserted", r.stdout)
        self.assertEqual(self.table_data("loc"), reference([p], "test_locations"))
        r = self.atomsync("load", self.store.url, "x", p, "--key", "id", "--stream",
                          "a", check=USAGE)
        self.assertIn("format singer", r.stderr)


def last_state(path):
    out = None
    for _, m in messages(path):
        if m["type"].upper() == "STATE":
            out = m.get("value")
    return out


@for_each_store
class TargetTest(SingerBase):

    def target(self, path, *extra, env=None):
        with open(path, "rb") as f:
            data = f.read().decode("utf-8")
        return self.atomsync("target", self.store.url, *extra, input=data, env=env)

    def test_sdk_corpus_through_target(self):
        """`atomsync target`: every SDK file on stdin, every stream into its
        own table (named after the stream, normalised) in one pass; the
        file's last STATE on stdout, and only that, after the publish;
        the README's error files fail naming stdin:line with nothing
        published and no STATE (invariants 2, 8, 9).  Prints the table."""
        files = sorted(f[:-7] for f in os.listdir(CORPUS) if f.endswith(".singer"))
        table = []
        for name in files:
            if name in AFTER.values():
                continue
            paths = [os.path.join(CORPUS, n + ".singer")
                     for n in ([AFTER[name]] if name in AFTER else []) + [name]]
            prefix = "t%d_" % len(table)
            ok, what = True, ""
            for i, p in enumerate(paths):
                r = self.target(p, "--prefix", prefix)
                nul = self.store_name == "postgres" and any(
                    has_nul(p, st) for st in streams_of(p))
                if name in ERRORS:
                    expected = "error"
                    ok &= r.returncode == FAILED and r.stdout == ""
                    ok &= ("stdin:%d:" % ERRORS[name]) in r.stderr
                    what = "exit %d: %s" % (r.returncode, r.stderr.strip()
                                            .splitlines()[-1][:90])
                elif nul:
                    expected = "reject \\u0000 (line, field)"
                    ok &= r.returncode == FAILED and r.stdout == ""
                    ok &= "stdin:" in r.stderr and "field '" in r.stderr
                    what = "exit %d: %s" % (r.returncode, r.stderr.strip()
                                            .splitlines()[-1][:90])
                else:
                    expected = "load"
                    ok &= r.returncode == OK
                    st = last_state(p)
                    ok &= r.stdout == ("" if st is None else
                                       json.dumps(st, separators=(",", ":")) + "\n")
                    if i == len(paths) - 1:
                        rows = 0
                        for stream in streams_of(p):
                            got = self.table_data(prefix + table_for(stream))
                            ok &= got == reference(paths, stream)
                            rows += len(got)
                        what = "exit %d, %d streams, %d rows, STATE %s" % (
                            r.returncode, len(streams_of(p)), rows,
                            "out" if r.stdout else "none")
                if not ok:
                    what += " | " + r.stderr.strip()[:300]
                    break
            table.append((name, expected, what, ok))
        sys.stderr.write("\n%-34s %-28s %s\n" % ("file", "expected",
                                                  "atomsync target (%s)" % self.store_name))
        for row in table:
            sys.stderr.write("%-34s %-28s %s%s\n" % (row[0], row[1], row[2],
                                                     "" if row[3] else "  <-- WRONG"))
        self.assertEqual([r for r in table if not r[3]], [])

    def test_state_only_after_publish(self):
        """Invariants 1, 2, 8: every stream of one input is published in
        ONE transaction, and STATE reaches stdout only after it commits: a
        crash at any point of the group publish before its commit (after
        marking, after BEGIN, between two tables, before COMMIT) leaves
        every table and every bookmark as they were and writes no STATE; a
        crash just after the commit has moved all of them together; the
        replayed input then publishes every stream and writes the STATE."""
        def tap(name, count):
            p = self.path(name)
            with open(p, "w") as f:
                subprocess.run([sys.executable, MULTITAP, "--count", str(count),
                                "--streams", "orders,items,customers"],
                               stdout=f, check=True)
            return p
        tables = ("orders", "items", "customers")
        r = self.target(tap("first.singer", 10))
        self.assertEqual(r.returncode, OK, r.stderr)
        t20 = tap("tap.singer", 20)
        for point in ("publish.group_marked", "publish.group_begin",
                      "publish.group_between:1", "publish.group_between:2",
                      "publish.group_before_commit"):
            before = {t: self.store.full_rows(t) for t in tables}
            r = self.target(t20, env={"ATOMSYNC_CRASH": point})
            self.assertEqual(r.returncode, CRASH_EXIT, point + r.stderr)
            self.assertEqual(r.stdout, "")
            for t in tables:
                self.assertEqual(self.store.full_rows(t), before[t], point)
                self.assertEqual(len(self.table_data(t)), 10, point)
                (cur,), = self.store.query(
                    "SELECT cursor FROM atomsync_state WHERE dataset = '%s'" % t)
                self.assertEqual(json.loads(cur)["bookmarks"][t], 10, point)
        r = self.target(t20, env={"ATOMSYNC_CRASH": "publish.group_committed"})
        self.assertEqual(r.returncode, CRASH_EXIT, r.stderr)
        for t in tables:
            self.assertEqual(len(self.table_data(t)), 20)
            (cur,), = self.store.query(
                "SELECT cursor FROM atomsync_state WHERE dataset = '%s'" % t)
            self.assertEqual(json.loads(cur)["bookmarks"][t], 20)
        r = self.target(tap("tap30.singer", 30))
        self.assertEqual(r.returncode, OK, r.stderr)
        self.assertEqual(json.loads(r.stdout)["bookmarks"],
                         {"orders": 30, "items": 30, "customers": 30})
        for t in tables:
            self.assertEqual(len(self.table_data(t)), 30)
        # Replaying the same output changes nothing (invariant 5).
        before = self.store.full_rows("orders")
        r = self.target(tap("tap30.singer", 30))
        self.assertIn("orders: run", r.stderr)
        self.assertIn("0 inserted, 0 updated, 30 unchanged", r.stderr)
        self.assertEqual(self.store.full_rows("orders"), before)

    def test_one_refused_table_refuses_all(self):
        """Invariants 1, 3: a guard that refuses one stream's table refuses
        the whole input: no table is published, every run is recorded
        refused, no STATE is written (exit 3)."""
        def tap(name, n_orders, n_items):
            p = self.path(name)
            with open(p, "w") as f:
                for st, n in (("orders", n_orders), ("items", n_items)):
                    f.write(json.dumps({"type": "SCHEMA", "stream": st,
                                        "key_properties": ["id"],
                                        "schema": {"properties": {"id": {"type": "integer"}}}})
                            + "\n")
                    f.write('{"type":"ACTIVATE_VERSION","stream":"%s","version":1}\n' % st)
                    for i in range(1, n + 1):
                        f.write('{"type":"RECORD","stream":"%s","record":{"id":%d}}\n'
                                % (st, i))
                f.write('{"type":"STATE","value":{"n":%d}}\n' % n_items)
            return p
        r = self.target(tap("a", 100, 100))
        self.assertEqual(r.returncode, OK, r.stderr)
        before = {t: self.store.full_rows(t) for t in ("orders", "items")}
        r = self.target(tap("b", 120, 10))
        self.assertEqual(r.returncode, 3, r.stderr)
        self.assertEqual(r.stdout, "")
        for t in ("orders", "items"):
            self.assertEqual(self.store.full_rows(t), before[t])
            (st,), = self.store.query(
                "SELECT status FROM atomsync_runs WHERE dataset = '%s' "
                "ORDER BY run_id DESC LIMIT 1" % t)
            self.assertEqual(st, "refused", t)
        r = self.target(tap("b", 120, 10), "--allow-deletes")
        self.assertEqual(r.returncode, OK, r.stderr)
        self.assertEqual(len(self.table_data("orders")), 120)
        self.assertEqual(len(self.table_data("items")), 10)

    def test_config_and_prefix(self):
        """--config: a dataset with a singer source naming a stream gives it
        its table; the other streams get tables named after them with the
        prefix; lower-case message types and a BATCH of gzip JSON lines are
        read; a keyless stream is appended."""
        tap = self.path("tap.singer")
        with open(tap, "w") as f:
            import subprocess
            subprocess.run([sys.executable, MULTITAP, "--count", "10", "--lower",
                            "--streams", "orders,items,customers",
                            "--keyless", "customers", "--batch-dir", self.dir,
                            "--batch-stream", "items"], stdout=f, check=True)
        self.config("store: sqlite:unused.db\ndatasets:\n  my_orders:\n"
                    "    key: [id]\n    mode: incremental\n    schema: json\n"
                    "    source: {stdin: true, format: singer, stream: orders}\n",
                    name="streams.yml")
        r = self.target(tap, "--config", "streams.yml", "--prefix", "raw_")
        self.assertEqual(r.returncode, OK, r.stderr)
        self.assertEqual(len(self.table_data("my_orders")), 10)
        self.assertEqual(len(self.table_data("raw_items")), 10)
        self.assertEqual(len(self.table_data("raw_customers")), 10)
        self.assertFalse(self.store.table_exists("raw_orders"))
        r = self.target(tap, "--config", "streams.yml", "--prefix", "raw_")
        self.assertIn("raw_customers: run", r.stderr)
        self.assertNotIn(" 10 inserted", r.stderr)

    def tap_text(self, count, tag):
        return subprocess.run([sys.executable, MULTITAP, "--count", str(count),
                               "--tag", tag], capture_output=True, text=True,
                              check=True).stdout

    def test_kill9_mid_input(self):
        """Invariants 1, 2, 8: a target killed (kill -9) while reading its
        input publishes nothing in any table and writes no STATE; the next
        complete input publishes every stream."""
        r = self.atomsync("target", self.store.url, input=self.tap_text(50, "a"))
        self.assertEqual(r.returncode, OK, r.stderr)
        tables = ("orders", "order_items", "customers")
        before = {t: self.store.full_rows(t) for t in tables}
        text = self.tap_text(3000, "b")
        p = subprocess.Popen([BIN, "target", self.store.url, "--schema", "json"], cwd=self.dir,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True)
        p.stdin.write(text[:len(text) * 2 // 3])
        p.stdin.flush()
        time.sleep(0.5)
        os.kill(p.pid, signal.SIGKILL)
        out = p.stdout.read()
        p.wait()
        p.stdin.close() if not p.stdin.closed else None
        p.stdout.close()
        self.assertEqual(out, "")
        self.assertEqual({t: self.store.full_rows(t) for t in tables}, before)
        r = self.atomsync("target", self.store.url, input=text)
        self.assertEqual(r.returncode, OK, r.stderr)
        self.assertEqual(json.loads(r.stdout)["bookmarks"]["customers"], 3000)
        for t in tables:
            self.assertEqual(len(self.table_data(t)), 3000)
            self.assertEqual({json.loads(d)["tag"] for d in self.table_data(t)}, {"b"})

    def test_activate_version_is_a_full_refresh(self):
        """ACTIVATE_VERSION makes the run a full refresh of that stream's
        table: rows the run did not deliver are deleted at its publish (a
        confirmed end), within the guard: a version that would delete more
        than half the rows is refused (exit 3), nothing published, no STATE
        (invariants 3, 8); without ACTIVATE_VERSION the stream is upserted."""
        def tap(name, ids, activate):
            p = self.path(name)
            with open(p, "w") as f:
                f.write(json.dumps({"type": "SCHEMA", "stream": "s", "key_properties": ["id"],
                                    "schema": {"properties": {"id": {"type": "integer"}}}})
                        + "\n")
                if activate:
                    f.write('{"type":"ACTIVATE_VERSION","stream":"s","version":7}\n')
                for i in ids:
                    f.write('{"type":"RECORD","stream":"s","record":{"id":%d},'
                            '"version":7}\n' % i)
                f.write('{"type":"STATE","value":{"n":%d}}\n' % len(ids))
            return p
        self.assertEqual(self.target(tap("a", range(1, 101), False)).returncode, OK)
        r = self.target(tap("b", range(1, 61), False))
        self.assertIn("0 deleted", r.stderr)
        self.assertEqual(len(self.table_data("s")), 100)
        r = self.target(tap("c", range(1, 61), True))
        self.assertEqual(r.returncode, OK, r.stderr)
        self.assertIn("40 deleted", r.stderr)
        self.assertEqual(len(self.table_data("s")), 60)
        before = self.store.full_rows("s")
        r = self.target(tap("d", range(1, 11), True))
        self.assertEqual(r.returncode, 3, r.stderr)
        self.assertEqual(r.stdout, "")
        self.assertEqual(self.store.full_rows("s"), before)
        r = self.target(tap("d", range(1, 11), True), "--allow-deletes")
        self.assertEqual(r.returncode, OK, r.stderr)
        self.assertEqual(json.loads(r.stdout), {"n": 10})
        self.assertEqual(len(self.table_data("s")), 10)


@for_each_store
class InferredColumnsTest(StoreTestCase):
    """The SDK corpus through `atomsync target` with the default layout:
    typed columns from each stream's SCHEMA (issue 14's inference), no
    `data` column; the README's outcome per file and the reference
    target's row count per stream."""

    def target(self, path, *extra):
        with open(path, "rb") as f:
            data = f.read().decode("utf-8")
        return self.atomsync("target", self.store.url, *extra, input=data)

    def columns(self, table):
        if self.store.name == "sqlite":
            return [n for (n,) in self.store.query(
                "SELECT name FROM pragma_table_info(?)", (table,))]
        return [n for n, _ in self.store.columns(table)]

    def test_sdk_corpus_inferred(self):
        files = sorted(f[:-7] for f in os.listdir(CORPUS) if f.endswith(".singer"))
        wrong = []
        for n, name in enumerate(files):
            if name in AFTER.values():
                continue
            paths = [os.path.join(CORPUS, x + ".singer")
                     for x in ([AFTER[name]] if name in AFTER else []) + [name]]
            prefix = "i%d_" % n
            for i, p in enumerate(paths):
                r = self.target(p, "--prefix", prefix)
                nul = self.store_name == "postgres" and any(
                    has_nul(p, st) for st in streams_of(p))
                if name in ERRORS or nul:
                    if r.returncode != FAILED or "stdin:" not in r.stderr:
                        wrong.append((name, "want a located error", r.stderr))
                    break
                if r.returncode != OK:
                    wrong.append((name, "exit %d" % r.returncode, r.stderr))
                    break
                if i < len(paths) - 1:
                    continue
                for stream in streams_of(p):
                    tbl = prefix + table_for(stream)
                    want = len(reference(paths, stream))
                    got = (self.store.query('SELECT count(*) FROM "%s"' % tbl)[0][0]
                           if self.store.table_exists(tbl) else 0)
                    if got != want:
                        wrong.append((name, stream, "%d rows, want %d" % (got, want)))
                    if self.store.table_exists(tbl) and "data" in self.columns(tbl):
                        wrong.append((name, stream, "a data column"))
        self.assertEqual(wrong, [])

    def test_schema_types_the_columns(self):
        """A stream's SCHEMA types its columns: integer, number, date-time
        string, boolean, nested object flattened, array as json."""
        msgs = [
            {"type": "SCHEMA", "stream": "Orders", "key_properties": ["id"],
             "schema": {"properties": {
                 "id": {"type": "integer"}, "total": {"type": ["null", "number"]},
                 "placedAt": {"type": "string", "format": "date-time"},
                 "paid": {"type": "boolean"}, "tags": {"type": "array"},
                 "ship": {"type": "object", "properties": {"city": {"type": "string"}}}}}},
            {"type": "RECORD", "stream": "Orders", "record": {
                "id": 1, "total": 9.5, "placedAt": "2026-01-02T03:04:05Z",
                "paid": True, "tags": ["a"], "ship": {"city": "Oslo"}}},
            {"type": "STATE", "value": {"bookmarks": {"Orders": 1}}}]
        text = "".join(json.dumps(m) + "\n" for m in msgs)
        r = self.atomsync("target", self.store.url, input=text, check=OK)
        self.assertEqual(json.loads(r.stdout), {"bookmarks": {"Orders": 1}})
        cols = self.columns("orders")
        for c in ("id", "total", "placed_at", "paid", "tags", "ship__city"):
            self.assertIn(c, cols)
        self.assertNotIn("data", cols)
        row = self.store.query('SELECT id, total, ship__city FROM "orders"')
        self.assertEqual([tuple(x) for x in row], [(1, 9.5, "Oslo")])


TAP_CONFIG = """
store: {store}
datasets:
%s
"""

TAP_DS = """  %(name)s:
    mode: incremental
    schema: json
    source:
      exec: "%(py)s %(tap)s --streams orders,items,customers --count %(count)s --state {state} --log tap-%(name)s.log %(args)s"
      format: singer
      stream: %(name)s
"""


@for_each_store
class BookmarkTest(SingerBase):

    def setup_taps(self, count, args=""):
        self.config(TAP_CONFIG % "".join(
            TAP_DS % {"name": n, "py": sys.executable, "tap": MULTITAP, "count": count,
                      "args": args} for n in ("orders", "items")))

    def given(self, name):
        with open(self.path("tap-%s.log" % name)) as f:
            return [json.loads(line)["state"] for line in f]

    def test_state_is_the_next_runs_bookmark(self):
        """Invariant 8: the last STATE of a published run is kept with the
        publish and handed to the next run through {state}: an incremental
        tap continues where the last run ended (mode incremental with no
        cursor); a run of several streams keeps each dataset's own."""
        self.setup_taps(100)
        self.atomsync("run", check=OK)
        self.assertEqual(self.given("orders"), ["{}\n"])
        self.assertEqual(len(self.table_data("orders")), 100)
        self.setup_taps(150)
        r = self.atomsync("run", check=OK)
        self.assertIn("orders: run 3 completed: 50 seen, 50 inserted", r.stdout)
        st = json.loads(self.given("orders")[-1])
        self.assertEqual(st["bookmarks"]["orders"], 100)
        self.assertEqual(len(self.table_data("orders")), 150)
        self.assertEqual(len(self.table_data("items")), 150)
        self.assertEqual(json.loads(self.status()["orders"]["cursor"])
                         ["bookmarks"]["orders"], 150)

    def test_bookmark_moves_only_with_the_publish(self):
        """Invariant 8 (fault test): a run that crashes just before its
        publish commits leaves the bookmark and the table as they were, so
        the published bookmark stays (a plain rerun would resume the staged
        run from its checkpoint; --restart starts over from the bookmark);
        a crash just after the commit has moved both together."""
        self.setup_taps(100)
        self.atomsync("run", "orders", check=OK)
        before = self.store.full_rows("orders")
        self.setup_taps(130)
        r = self.atomsync("run", "orders",
                          env={"ATOMSYNC_CRASH": "publish.before_commit"})
        self.assertEqual(r.returncode, CRASH_EXIT, r.stderr)
        self.assertEqual(self.store.full_rows("orders"), before)
        self.assertEqual(json.loads(self.status()["orders"]["cursor"])
                         ["bookmarks"]["orders"], 100)
        self.assertTrue(self.status()["orders"]["resumable"])
        r = self.atomsync("run", "orders", "--restart",
                          env={"ATOMSYNC_CRASH": "publish.committed"})
        self.assertEqual(r.returncode, CRASH_EXIT, r.stderr)
        self.assertEqual(json.loads(self.given("orders")[-1])["bookmarks"]["orders"], 100)
        self.assertEqual(len(self.table_data("orders")), 130)
        self.assertEqual(json.loads(self.status()["orders"]["cursor"])
                         ["bookmarks"]["orders"], 130)
        self.setup_taps(140)
        self.atomsync("run", "orders", check=OK)
        self.assertEqual(json.loads(self.given("orders")[-1])["bookmarks"]["orders"], 130)
        self.assertEqual(len(self.table_data("orders")), 140)

    def test_rollback_drops_the_bookmark(self):
        """Invariant 8: after a rollback the bookmark of a later publish
        would be ahead of the restored rows: it is dropped, and the next run
        is handed {} (extracts from the start)."""
        self.setup_taps(100)
        with open(self.path("atomsync.yml")) as f:
            text = f.read()
        with open(self.path("atomsync.yml"), "w") as f:
            f.write(text.replace("    mode: incremental\n",
                                 "    mode: incremental\n    history: snapshot\n"
                                 "    key: [id]\n"))
        self.atomsync("run", "orders", check=OK)
        with open(self.path("atomsync.yml")) as f:
            text = f.read()
        with open(self.path("atomsync.yml"), "w") as f:
            f.write(text.replace("--count 100", "--count 120"))
        self.atomsync("run", "orders", check=OK)
        self.assertEqual(json.loads(self.status()["orders"]["cursor"])
                         ["bookmarks"]["orders"], 120)
        first = self.runs("orders")[-1]["run_id"]
        self.atomsync("rollback", "orders", "--to-run", str(first), check=OK)
        self.assertEqual(len(self.table_data("orders")), 100)
        self.assertIsNone(self.status()["orders"]["cursor"])
        self.atomsync("run", "orders", check=OK)
        self.assertEqual(self.given("orders")[-1], "{}\n")
        self.assertEqual(len(self.table_data("orders")), 120)

    def test_key_change_over_a_resumable_staging(self):
        """A tap whose SCHEMA key changes while a failed run's staging
        waits to be resumed: a clear error that says to rerun with
        --restart, nothing published; --restart then publishes with the new
        key (invariants 2, 4)."""
        with open(self.path("recs.jsonl"), "w") as f:
            for i in range(1, 301):
                f.write(json.dumps({"id": i, "email": "u%d@x" % i}) + "\n")
        self.config(TAP_CONFIG % (
            "  items:\n    mode: incremental\n    schema: json\n    source:\n"
            "      exec: \"%s %s --records recs.jsonl --state {state} "
            "--state-every 50\"\n      format: singer\n"
            % (sys.executable, os.path.join(FIXTURES, "tap.py"))))
        self.atomsync("run", env={"TAP_ARGS": "--fail-at 150 --sleep 0.02"},
                      check=FAILED)
        self.assertTrue(self.status()["items"]["resumable"])
        r = self.atomsync("run", env={"TAP_ARGS": "--key email"}, check=USAGE)
        self.assertIn("key_properties (email) differ from the key of the staging "
                      "being resumed (id); rerun with --restart", r.stderr)
        self.assertFalse(self.store.table_exists("items"))
        r = self.atomsync("run", "--restart", env={"TAP_ARGS": "--key email"}, check=OK)
        self.assertIn("300 inserted", r.stdout)
        self.assertEqual(len(self.table_data("items")), 300)

    def test_failed_tap_keeps_bookmark(self):
        """Invariant 8: a tap that fails halfway publishes nothing and the
        bookmark stays; the next run is handed the same STATE."""
        self.setup_taps(100)
        self.atomsync("run", "orders", check=OK)
        self.setup_taps(200, "--fail-at 120")
        self.atomsync("run", "orders", check=FAILED)
        self.assertEqual(json.loads(self.status()["orders"]["cursor"])
                         ["bookmarks"]["orders"], 100)


EVERY_DS = """
store: {store}
datasets:
  shop:
    mode: incremental
    schema: json
    table_prefix: shop_
    source:
      exec: "%(py)s %(tap)s --streams orders,items,customers --count %(count)s --state {state} --log tap.log %(args)s"
      format: singer
      stream: "*"
"""


@for_each_store
class EveryStreamTest(SingerBase):
    """`atomsync run` of a dataset whose singer source takes every stream
    (stream: "*"): each stream its own table, all published in ONE
    transaction, the tap's STATE kept with them and handed back."""

    TABLES = ("shop_orders", "shop_items", "shop_customers")

    def setup_tap(self, count, args=""):
        self.config(EVERY_DS % {"py": sys.executable, "tap": MULTITAP,
                                "count": count, "args": args})

    def given(self):
        with open(self.path("tap.log")) as f:
            return [json.loads(line)["state"] for line in f]

    def bookmark(self, table):
        (cur,), = self.store.query(
            "SELECT cursor FROM atomsync_state WHERE dataset = 'shop.%s'" % table)
        return json.loads(cur)["bookmarks"]

    def test_every_stream_own_table_and_bookmark(self):
        """Every stream into its own table (prefix + stream name), one run
        of the tap; the run line sums the streams; the next run is handed
        the STATE published with the tables (invariant 8), so an
        incremental tap continues."""
        self.setup_tap(50)
        r = self.atomsync("run", check=OK)
        self.assertIn("shop: run", r.stdout)
        self.assertIn("150 seen, 150 inserted", r.stdout)
        for t in self.TABLES:
            self.assertEqual(len(self.table_data(t)), 50)
        self.setup_tap(80)
        r = self.atomsync("run", check=OK)
        self.assertIn("90 seen, 90 inserted", r.stdout)
        self.assertEqual(self.given()[0], "{}\n")
        self.assertEqual(json.loads(self.given()[1])["bookmarks"],
                         {"orders": 50, "items": 50, "customers": 50})
        for t in self.TABLES:
            self.assertEqual(len(self.table_data(t)), 80)
            self.assertEqual(self.bookmark(t)["orders"], 80)

    def test_crash_in_group_publish(self):
        """Invariants 1, 2, 8 (fault test): a crash at any point of the
        group publish before its commit leaves every table and every
        bookmark where they were; the next run (handed the old STATE)
        publishes all; a crash after the commit has moved all together."""
        self.setup_tap(40)
        self.atomsync("run", check=OK)
        before = {t: self.store.full_rows(t) for t in self.TABLES}
        self.setup_tap(60)
        for point in ("publish.group_begin", "publish.group_between:1",
                      "publish.group_between:2", "publish.group_before_commit"):
            r = self.atomsync("run", env={"ATOMSYNC_CRASH": point})
            self.assertEqual(r.returncode, CRASH_EXIT, point + r.stderr)
            for t in self.TABLES:
                self.assertEqual(self.store.full_rows(t), before[t], point)
                self.assertEqual(self.bookmark(t)["items"], 40, point)
        r = self.atomsync("run", env={"ATOMSYNC_CRASH": "publish.group_committed"})
        self.assertEqual(r.returncode, CRASH_EXIT, r.stderr)
        for t in self.TABLES:
            self.assertEqual(len(self.table_data(t)), 60)
            self.assertEqual(self.bookmark(t)["customers"], 60)
        self.assertEqual(json.loads(self.given()[-1])["bookmarks"]["orders"], 40)
        self.setup_tap(70)
        self.atomsync("run", check=OK)
        self.assertEqual(json.loads(self.given()[-1])["bookmarks"]["orders"], 60)
        for t in self.TABLES:
            self.assertEqual(len(self.table_data(t)), 70)

    def test_kill9_mid_group_publish(self):
        """Invariants 1, 2 (fault test): a run killed (kill -9) while it is
        stopped between two tables of its group publish leaves no table
        ahead of another; the next run publishes all of them."""
        self.setup_tap(30)
        self.atomsync("run", check=OK)
        before = {t: self.store.full_rows(t) for t in self.TABLES}
        self.setup_tap(45)
        env = dict(os.environ, ATOMSYNC_CRASH="publish.group_between:2",
                   ATOMSYNC_CRASH_ACTION="stop")
        p = subprocess.Popen([BIN, "run"], cwd=self.dir, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        from atomsync_test import proc_state
        for _ in range(600):
            if proc_state(p.pid) == "T":
                break
            time.sleep(0.05)
        self.assertEqual(proc_state(p.pid), "T")
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
        for t in self.TABLES:
            self.assertEqual(self.store.full_rows(t), before[t])
        self.atomsync("run", check=OK)
        for t in self.TABLES:
            self.assertEqual(len(self.table_data(t)), 45)
            self.assertEqual(self.bookmark(t)["orders"], 45)

    def test_failed_tap_publishes_nothing(self):
        """A tap that exits non-zero halfway publishes no table and the
        bookmark stays (invariants 2, 8)."""
        self.setup_tap(20)
        self.atomsync("run", check=OK)
        self.setup_tap(50, "--fail-at 40")
        r = self.atomsync("run", check=FAILED)
        self.assertIn("nothing was published", r.stderr)
        for t in self.TABLES:
            self.assertEqual(len(self.table_data(t)), 20)
            self.assertEqual(self.bookmark(t)["orders"], 20)

    def test_serve_schedule(self):
        """The daemon reads a stream: "*" dataset's last run from its
        streams' run records: a second `serve --once` within the schedule's
        interval does not run the tap again."""
        self.setup_tap(10)
        with open(self.path("atomsync.yml")) as f:
            text = f.read()
        self.config(text.replace("    mode: incremental\n",
                                 "    mode: incremental\n    schedule: 1h\n"))
        self.atomsync("serve", "--once", "--listen", "127.0.0.1:0", check=OK)
        self.atomsync("serve", "--once", "--listen", "127.0.0.1:0", check=OK)
        self.assertEqual(len(self.given()), 1)
        for t in self.TABLES:
            self.assertEqual(len(self.table_data(t)), 10)

    def test_stream_overrides(self):
        """streams: {NAME: {table, key, mode}} gives one stream its own
        table, key and mode; the others keep the prefix and their SCHEMA
        key. A bad entry is named by file:line."""
        self.setup_tap(20)
        with open(self.path("atomsync.yml")) as f:
            text = f.read()
        self.config(text.replace(
            "    table_prefix: shop_\n",
            "    table_prefix: shop_\n    streams:\n"
            "      orders: {table: sales, key: [stream, id]}\n"
            "      items: {mode: append}\n"))
        r = self.atomsync("run", check=OK)
        self.assertIn("60 inserted", r.stdout)
        self.assertFalse(self.store.table_exists("shop_orders"))
        self.assertEqual(len(self.store.rows("sales", ["stream", "id"])), 20)
        self.assertEqual(len(self.table_data("shop_items")), 20)
        self.assertEqual(len(self.table_data("shop_customers")), 20)
        self.assertEqual(self.runs("shop.shop_items")[0]["mode"], "append")
        self.assertEqual(self.runs("shop.sales")[0]["mode"], "incremental")
        self.config(text.replace(
            "    table_prefix: shop_\n",
            "    table_prefix: shop_\n    streams:\n"
            "      orders: {table: 9bad}\n"))
        r = self.atomsync("run", check=USAGE)
        self.assertIn("atomsync.yml:9", r.stderr)
        self.assertIn("table name", r.stderr)

    def test_config_errors(self):
        """What applies to one table is refused with stream: "*", naming
        file:line; table_prefix needs stream: "*"."""
        self.setup_tap(5)
        with open(self.path("atomsync.yml")) as f:
            text = f.read()
        self.config(text.replace("    mode: incremental\n",
                                 "    mode: incremental\n    key: [id]\n"))
        r = self.atomsync("run", check=USAGE)
        self.assertIn("atomsync.yml:6", r.stderr)
        self.assertIn("'key' in dataset 'shop' applies to one table", r.stderr)
        self.config(text.replace('      stream: "*"\n', ""))
        r = self.atomsync("run", check=USAGE)
        self.assertIn("'table_prefix' in dataset 'shop' needs a singer source "
                      'with stream: "*"', r.stderr)


if __name__ == "__main__":
    unittest.main()
