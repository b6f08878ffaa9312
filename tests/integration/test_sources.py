"""Sources: stdin, a command's JSON lines, and Singer taps through exec.

A source confirms the end of its data only at a clean end (end of input,
exit status 0); only then is a run published (invariant 3), otherwise
nothing is (invariant 2).  Singer: SCHEMA key_properties is the key when
none is configured, STATE is the checkpoint (invariant 4), other streams
are ignored.
"""

import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from atomsync_test import (FIXTURES, OK, FAILED, USAGE, StoreTestCase,  # noqa: E402
                           for_each_store, make_records, reference_rows, write_jsonl)

TAP = os.path.join(FIXTURES, "tap.py")
COLS = ["id", "name", "downloads"]
TYPED = """    key: [id]
    columns:
      id: {type: integer}
      name: {type: text}
      downloads: {type: integer}
"""


def config(source, body=TYPED, extra=""):
    return """
store: {store}
datasets:
  d:
%s%s    source:
%s
""" % (body, extra, source)


def tap(args=""):
    return '      exec: "%s %s --records {dir}/recs.jsonl --log {dir}/tap.log %s"' % (
        sys.executable, TAP, args)


@for_each_store
class SourcesTest(StoreTestCase):

    def test_stdin(self):
        """stdin: records from standard input; the end of input confirms the
        delivery; a failed stdin run starts over next time (not resumable)."""
        self.config(config("      stdin: true"))
        recs = make_records(2500)
        text = "".join(json.dumps(r) + "\n" for r in recs)
        self.atomsync("run", input=text, check=OK)
        self.assertEqual(self.store.rows("d", COLS), reference_rows(recs, COLS))
        before = self.store.full_rows("d")
        changed = [dict(r, name="x") for r in recs]
        bad = "".join(json.dumps(r) + "\n" for r in changed[:2000]) + "{oops\n"
        p = self.atomsync("run", input=bad)
        self.assertEqual(p.returncode, FAILED)
        self.assertIn("stdin:2001:", p.stderr)
        self.assertEqual(self.store.full_rows("d"), before)
        self.assertFalse(self.status()["d"]["resumable"])
        good = "".join(json.dumps(r) + "\n" for r in changed)
        self.atomsync("run", input=good, check=OK)
        r = self.runs("d")[0]
        self.assertIsNone(r["resumed_from"])
        self.assertEqual((r["seen"], r["updated"]), (2500, 2500))
        # The short form `source: stdin` means the same.
        self.config(config("      stdin").replace("    source:\n      stdin", "    source: stdin"))
        self.atomsync("run", input=text, check=OK)
        self.assertEqual(self.store.rows("d", COLS), reference_rows(recs, COLS))

    def test_exec_json_lines(self):
        """exec: a command's JSON lines; published only on exit status 0."""
        recs = make_records(1200)
        write_jsonl(self.path("recs.jsonl"), recs)
        self.config(config(tap("--format jsonl")))
        self.atomsync("run", check=OK)
        self.assertEqual(self.store.rows("d", COLS), reference_rows(recs, COLS))
        self.assertEqual(self.runs("d")[0]["seen"], 1200)

    def test_exec_nonzero_publishes_nothing(self):
        """A command (JSON lines or a Singer tap) that exits non-zero halfway
        publishes nothing (invariants 2, 3)."""
        recs = make_records(1000)
        write_jsonl(self.path("recs.jsonl"), recs)
        self.config(config(tap("--format jsonl")))
        self.atomsync("run", check=OK)
        before = self.store.full_rows("d")
        write_jsonl(self.path("recs.jsonl"), [dict(r, name="new") for r in recs[:600]])
        for fmt in ("jsonl", "singer"):
            with self.subTest(format=fmt):
                src = tap("--format %s --fail-at 300" % fmt)
                if fmt == "singer":
                    src += "\n      format: singer"
                self.config(config(src))
                p = self.atomsync("run")
                self.assertEqual(p.returncode, FAILED, p.stderr)
                self.assertIn("command exited with status 3", p.stderr)
                self.assertIn("nothing was published", p.stderr)
                self.assertEqual(self.store.full_rows("d"), before)
                self.assertEqual(self.runs("d")[0]["status"], "failed")

    def test_singer_key_from_schema(self):
        """Singer: with no key configured, SCHEMA key_properties is the key
        (single and composite); the table holds the key and `data`."""
        recs = make_records(300)
        write_jsonl(self.path("recs.jsonl"), recs)
        self.config(config(tap("--key id --state {state}") + "\n      format: singer",
                           body="    schema: json\n"))
        self.atomsync("run", check=OK)
        rows = self.store.rows("d", ["id", "data"])
        self.assertEqual([r[0] for r in rows], list(range(1, 301)))
        self.assertEqual(json.loads(rows[41][1]), recs[41])
        # Composite key_properties.
        ev = [{"chain": c, "n": n, "v": n * 10} for c in ("a", "b") for n in range(50)]
        write_jsonl(self.path("ev.jsonl"), ev)
        self.config(config(tap("--key chain,n").replace("recs.jsonl", "ev.jsonl") +
                           "\n      format: singer", body="    schema: json\n")
                    .replace("  d:", "  ev:"))
        self.atomsync("run", "ev", check=OK)
        rows = self.store.rows("ev", ["chain", "n", "data"])
        self.assertEqual(len(rows), 100)
        self.assertEqual(sorted((r[0], r[1]) for r in rows),
                         sorted((e["chain"], e["n"]) for e in ev))
        # Without a SCHEMA: a clear error naming the line, nothing created.
        self.config(config(tap("--no-schema") + "\n      format: singer",
                           body="").replace("  d:", "  nokey:"))
        p = self.atomsync("run", "nokey")
        self.assertIn(p.returncode, (FAILED, USAGE))
        self.assertIn("tap.py:1: Singer RECORD of stream 'items' before its SCHEMA",
                      p.stderr)
        self.assertEqual(self.status()["nokey"]["rows"], None)

    def test_singer_configured_key_wins(self):
        """Singer: a configured key and columns are used as they are; the
        SCHEMA's key_properties do not override them."""
        recs = make_records(100)
        write_jsonl(self.path("recs.jsonl"), recs)
        self.config(config(tap("--key name") + "\n      format: singer"))
        self.atomsync("run", check=OK)
        self.assertEqual(self.store.rows("d", COLS), reference_rows(recs, COLS))

    def test_singer_state_is_checkpoint(self):
        """Singer: STATE is the checkpoint; a failed tap leaves the run
        resumable and the next run gets the last committed STATE."""
        recs = make_records(900)
        write_jsonl(self.path("recs.jsonl"), recs)
        self.config(config(tap("--state {state} --state-every 100") +
                           "\n      format: singer", extra="    batch_size: 100\n"))
        p = self.atomsync("run", env={"TAP_ARGS": "--fail-at 550"})
        self.assertEqual(p.returncode, FAILED)
        self.assertTrue(self.status()["d"]["resumable"])
        self.atomsync("run", check=OK)
        with open(self.path("tap.log")) as f:
            log = [json.loads(l) for l in f]
        self.assertEqual(json.loads(log[0]["state"]), {})
        self.assertEqual(json.loads(log[1]["state"]), {"offset": 500})
        r = self.runs("d")[0]
        self.assertEqual((r["seen"], r["inserted"], r["duplicates"]), (900, 900, 0))
        self.assertEqual(self.store.rows("d", COLS), reference_rows(recs, COLS))

    def test_singer_other_stream_ignored(self):
        """Singer: messages of another stream are ignored (with one warning),
        whether the stream is configured or taken from the first message."""
        recs = make_records(200)
        write_jsonl(self.path("recs.jsonl"), recs)
        self.config(config(tap("--other-stream") + "\n      format: singer"))
        p = self.atomsync("run", check=OK)
        warn = [l for l in p.stderr.splitlines() if "other" in l]
        self.assertEqual(len(warn), 1, p.stderr)
        self.assertEqual(self.store.rows("d", COLS), reference_rows(recs, COLS))
        self.assertEqual(self.runs("d")[0]["seen"], 200)
        # Choosing the other stream by name.
        self.config(config(tap("--other-stream") + "\n      format: singer\n"
                           "      stream: other",
                           body="    key: [zzz]\n    schema: json\n")
                    .replace("  d:", "  o:"))
        self.atomsync("run", "o", check=OK)
        rows = self.store.rows("o", ["zzz", "data"])
        self.assertEqual([r[0] for r in rows], list(range(0, 200, 3)))

    def test_singer_from_file(self):
        """Singer messages from a file: RECORDs of the stream are the data."""
        recs = make_records(50)
        msgs = [{"type": "SCHEMA", "stream": "s", "schema": {"properties": {}},
                 "key_properties": ["id"]}]
        msgs += [{"type": "RECORD", "stream": "s", "record": r} for r in recs]
        msgs.append({"type": "STATE", "value": {"done": True}})
        write_jsonl(self.path("in.singer"), msgs)
        self.config(config("      file: in.singer\n      format: singer"))
        self.atomsync("run", check=OK)
        self.assertEqual(self.store.rows("d", COLS), reference_rows(recs, COLS))

    def test_singer_bad_message(self):
        """Singer: a RECORD without a record object is named (invariant 9)."""
        msgs = [{"type": "SCHEMA", "stream": "s", "schema": {"properties": {}},
                 "key_properties": ["id"]},
                {"type": "RECORD", "stream": "s", "record": {"id": 1, "name": "a",
                                                              "downloads": 1}},
                {"type": "RECORD", "stream": "s", "record": [1, 2]}]
        write_jsonl(self.path("in.singer"), msgs)
        self.config(config("      file: in.singer\n      format: singer"))
        p = self.atomsync("run")
        self.assertEqual(p.returncode, FAILED)
        self.assertIn("in.singer:3: Singer RECORD without an object", p.stderr)

    def test_singer_lower_case_types(self):
        """Singer message types are case-insensitive: "record" is a record."""
        recs = make_records(20)
        msgs = [{"type": "schema", "stream": "s", "schema": {"properties": {}},
                 "key_properties": ["id"]}]
        msgs += [{"type": "record", "stream": "s", "record": r} for r in recs]
        write_jsonl(self.path("in.singer"), msgs)
        self.config(config("      file: in.singer\n      format: singer"))
        self.atomsync("run", check=OK)
        self.assertEqual(self.store.rows("d", COLS), reference_rows(recs, COLS))

    def test_singer_missing_key_property(self):
        """Singer: a RECORD without its SCHEMA's key property is named with its
        line, and nothing is published (invariant 9)."""
        msgs = [{"type": "SCHEMA", "stream": "s", "schema": {"properties": {}},
                 "key_properties": ["id"]},
                {"type": "RECORD", "stream": "s", "record": {"id": 1, "name": "a",
                                                              "downloads": 1}},
                {"type": "RECORD", "stream": "s", "record": {"name": "b"}}]
        write_jsonl(self.path("in.singer"), msgs)
        self.config(config("      file: in.singer\n      format: singer"))
        p = self.atomsync("run")
        self.assertEqual(p.returncode, FAILED)
        self.assertIn("in.singer:3: Singer RECORD without key property 'id'", p.stderr)

    def test_singer_batch_not_silent(self):
        """Singer: a BATCH message is read, never a silent skip: a manifest
        file that cannot be opened fails the run naming the message's line
        and the file (invariant 9)."""
        msgs = [{"type": "SCHEMA", "stream": "s", "schema": {"properties": {}},
                 "key_properties": ["id"]},
                {"type": "RECORD", "stream": "s", "record": {"id": 1, "name": "a",
                                                              "downloads": 1}},
                {"type": "BATCH", "stream": "s", "encoding": {"format": "jsonl"},
                 "manifest": ["file:///nonexistent.jsonl"]}]
        write_jsonl(self.path("in.singer"), msgs)
        self.config(config("      file: in.singer\n      format: singer"))
        p = self.atomsync("run")
        self.assertEqual(p.returncode, FAILED)
        self.assertIn("in.singer:3: cannot open Singer BATCH file /nonexistent.jsonl",
                      p.stderr)


if __name__ == "__main__":
    import unittest
    unittest.main()
