"""Bad input is named, never silently dropped (invariant 9), and nothing is
lost when a run fails on it (invariant 2).

Each bad input fails the run (max_rejects 0) with one line on stderr that
names file:line (and :col when the parser knows it) and why; the run is on
record as failed with the same error (invariant 10); the live table is
byte-identical (atomsync's own columns included) to what it was.  Inputs
that are fine (CRLF, blank lines, exact 64-bit integers) are accepted.
"""

import json
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from atomsync_test import (FIXTURES, OK, FAILED, REFUSED, StoreTestCase,  # noqa: E402
                           for_each_store, write_jsonl)

TAP = os.path.join(FIXTURES, "tap.py")
CONFIG = """
store: {store}
datasets:
  d:
    key: [id]
    columns:
      id: {type: integer}
      name: {type: text}
      at: {type: timestamp}
%s    source:
      file: in.jsonl
"""
GOOD = [{"id": i, "name": "n%d" % i, "at": "2026-01-02T03:04:05Z"} for i in range(1, 6)]


def good_lines():
    return "".join(json.dumps(r) + "\n" for r in GOOD).encode()


@for_each_store
class BadInputTest(StoreTestCase):

    def setUp(self):
        super().setUp()
        self.config(CONFIG % "")
        write_jsonl(self.path("in.jsonl"), GOOD)
        self.atomsync("run", check=OK)
        self.before = self.store.full_rows("d")
        self.assertEqual(len(self.before), 5)

    def write(self, data, name="in.jsonl"):
        with open(self.path(name), "wb") as f:
            f.write(data)

    def own_lines(self, stderr):
        return [l for l in stderr.splitlines() if l.startswith("atomsync:")]

    def assert_named(self, data, pattern, extra_config=None):
        """The run fails on `data` with one error line matching pattern;
        nothing changes; the run is on record as failed with that error."""
        if extra_config is not None:
            self.config(CONFIG % extra_config)
        nruns = len(self.runs("d"))
        self.write(data)
        p = self.atomsync("run")
        self.assertEqual(p.returncode, FAILED, p.stderr)
        own = self.own_lines(p.stderr)
        self.assertEqual(len(own), 1, p.stderr)
        self.assertRegex(own[0], pattern)
        self.assertEqual(self.store.full_rows("d"), self.before)
        runs = self.runs("d")
        self.assertEqual(len(runs), nruns + 1)
        self.assertEqual(runs[0]["status"], "failed")
        self.assertRegex(runs[0]["error"], pattern)
        self.assertEqual((runs[0]["inserted"], runs[0]["updated"], runs[0]["deleted"]),
                         (0, 0, 0))
        return own[0]

    def bad_after_good(self, line):
        """Four good lines, then the bad line 5 (the good data changed, so a
        publish would show)."""
        head = "".join(json.dumps(dict(r, name=r["name"] + "!")) + "\n"
                       for r in GOOD[:4]).encode()
        return head + line

    def test_malformed_json(self):
        """Invariant 9: malformed JSON is named by file:line:col."""
        self.assert_named(self.bad_after_good(b'{"id":5 "name":"x"}\n'),
                          r"in\.jsonl:5:\d+: .*expected")

    def test_truncated_last_line(self):
        """Invariant 9: a truncated last line (no newline) is named."""
        self.assert_named(self.bad_after_good(b'{"id":5,"na'),
                          r"in\.jsonl:5:\d+: premature end of input")

    def test_invalid_utf8(self):
        """Invariant 9: invalid UTF-8 is named with the byte."""
        self.assert_named(self.bad_after_good(b'{"id":5,"name":"a\xff\xfeb"}\n'),
                          r"in\.jsonl:5:\d+: .*(0xff|UTF-8)")

    def test_wrong_type(self):
        """Invariant 9: a wrong type for a declared column is named, not coerced."""
        self.assert_named(self.bad_after_good(b'{"id":5,"name":17}\n'),
                          r"in\.jsonl:5: 'name': expected a string, got an integer")

    def test_wrong_type_key(self):
        """Invariant 9: a string where the integer key is declared."""
        self.assert_named(self.bad_after_good(b'{"id":"5","name":"x"}\n'),
                          r"in\.jsonl:5: 'id': expected an integer, got a string")

    def test_bad_timestamp(self):
        """Invariant 9: a value that is not a timestamp is named."""
        self.assert_named(self.bad_after_good(b'{"id":5,"name":"x","at":"yesterday"}\n'),
                          r"in\.jsonl:5: 'at': .*yesterday.*not an ISO 8601 timestamp")

    def test_missing_key(self):
        """Invariant 9: a record without its key is named."""
        self.assert_named(self.bad_after_good(b'{"name":"x"}\n'),
                          r"in\.jsonl:5: missing key 'id'")
        self.assert_named(self.bad_after_good(b'{"id":null,"name":"x"}\n'),
                          r"in\.jsonl:5: missing key 'id'")

    def test_duplicate_key_in_object(self):
        """Invariant 9: {"id":1,"id":2} is ambiguous and named."""
        self.assert_named(self.bad_after_good(b'{"id":5,"name":"a","name":"b"}\n'),
                          r"in\.jsonl:5:\d+: duplicate object key")

    def test_not_an_object(self):
        """Invariant 9: a line that is not a JSON object is named."""
        self.assert_named(self.bad_after_good(b'[5, "x"]\n'),
                          r"in\.jsonl:5: expected a JSON object, got an array")
        self.assert_named(self.bad_after_good(b'"just a string"\n'),
                          r"in\.jsonl:5(:\d+)?: .*(expected a JSON object|'\{' expected)")

    def test_nul_bytes(self):
        """Invariant 9: NUL bytes, inside or outside a string, are named."""
        self.assert_named(self.bad_after_good(b'{"id":5,"name":"a\x00b"}\n'),
                          r"in\.jsonl:5:\d+: .*(control character 0x0|NUL|\\u0000)")
        self.assert_named(self.bad_after_good(b'{"id":5,\x00"name":"a"}\n'),
                          r"in\.jsonl:5(:\d+)?: ")

    def test_huge_integer(self):
        """Invariant 9: an integer beyond 64 bits in a mapped integer or
        text column is rejected, never rounded or wrapped (one in an
        unmapped field is kept exactly: test_hardening.BigIntegerTest)."""
        self.assert_named(self.bad_after_good(b'{"id":18446744073709551616,"name":"x"}\n'),
                          r"in\.jsonl:5: 'id': integer 18446744073709551616 is beyond "
                          r"64 bits")
        self.assert_named(self.bad_after_good(b'{"id":5,"name":-123456789012345678901}\n'),
                          r"in\.jsonl:5: 'name': integer -123456789012345678901 is beyond "
                          r"64 bits")

    def test_record_over_default_cap(self):
        """Invariant 9: a 17 MiB record is over the default 16 MiB cap: named
        with its size, without buffering it whole."""
        big = json.dumps({"id": 5, "name": "x" * (17 << 20)}).encode() + b"\n"
        line = self.assert_named(self.bad_after_good(big),
                                 r"in\.jsonl:5: record is (\d+) bytes, over the size "
                                 r"cap of 16777216 bytes")
        self.assertEqual(int(re.search(r"record is (\d+) bytes", line).group(1)),
                         len(big) - 1)

    def test_record_over_small_cap(self):
        """Invariant 9: max_record_size applies to file and exec sources."""
        line = json.dumps({"id": 5, "name": "x" * 200}).encode()
        self.assert_named(self.bad_after_good(line + b"\n"),
                          r"in\.jsonl:5: record is %d bytes, over the size cap of 100 "
                          r"bytes" % len(line), extra_config="    max_record_size: 100\n")
        # The same record from a command's JSON lines.
        with open(self.path("big.jsonl"), "wb") as f:
            f.write(self.bad_after_good(line + b"\n"))
        self.config(CONFIG.replace("file: in.jsonl", 'exec: "%s %s --records big.jsonl '
                                   '--format jsonl"' % (sys.executable, TAP))
                    % "    max_record_size: 100\n")
        p = self.atomsync("run")
        self.assertEqual(p.returncode, FAILED, p.stderr)
        compact = json.dumps({"id": 5, "name": "x" * 200}, separators=(",", ":"))
        self.assertRegex(self.own_lines(p.stderr)[0],
                         r"tap\.py:5: record is %d bytes, over the size cap of 100"
                         % len(compact))
        self.assertEqual(self.store.full_rows("d"), self.before)

    def test_empty_file_refused_over_rows(self):
        """Invariants 3, 9: an empty delivery where rows exist is refused
        (exit 3) with nothing changed; on an empty table it is fine."""
        self.write(b"")
        p = self.atomsync("run")
        self.assertEqual(p.returncode, REFUSED, p.stderr)
        self.assertEqual(len(self.own_lines(p.stderr)), 1, p.stderr)
        self.assertIn("delivered 0 records", p.stderr)
        self.assertEqual(self.store.full_rows("d"), self.before)
        self.assertEqual(self.runs("d")[0]["status"], "refused")
        # A fresh dataset on an empty store: nothing to do, exit 0.
        self.config(CONFIG.replace("  d:", "  e:").replace("file: in.jsonl",
                                                            "file: empty.jsonl") % "")
        self.write(b"", "empty.jsonl")
        p = self.atomsync("run", "e")
        self.assertEqual(p.returncode, OK, p.stderr)
        r = self.runs("e")[0]
        self.assertEqual((r["status"], r["seen"], r["inserted"]), ("completed", 0, 0))
        self.assertEqual(self.status()["e"]["rows"], 0)

    def exec_config(self, tap_args):
        write_jsonl(self.path("recs.jsonl"),
                    [dict(r, name=r["name"] + "?") for r in GOOD] +
                    [{"id": i, "name": "more %d" % i, "at": "2026-01-01T00:00:00Z"}
                     for i in range(6, 200)])
        self.config(CONFIG.replace("file: in.jsonl", 'exec: "%s %s --records recs.jsonl '
                                   '--format jsonl %s"' % (sys.executable, TAP, tap_args))
                    % "")

    def test_command_exits_nonzero_halfway(self):
        """Invariants 2, 3, 9: a command that exits non-zero after delivering
        half its records publishes nothing and says so."""
        self.exec_config("--fail-at 100")
        p = self.atomsync("run")
        self.assertEqual(p.returncode, FAILED, p.stderr)
        own = self.own_lines(p.stderr)
        self.assertEqual(len(own), 1, p.stderr)
        self.assertRegex(own[0], r"tap\.py: command exited with status 3 after 100 lines; "
                                 r"nothing was published")
        self.assertEqual(self.store.full_rows("d"), self.before)
        self.assertEqual(self.runs("d")[0]["status"], "failed")

    def test_command_killed_by_signal(self):
        """Invariants 2, 3, 9: a command killed by a signal publishes nothing."""
        self.exec_config("--kill-at 100")
        p = self.atomsync("run")
        self.assertEqual(p.returncode, FAILED, p.stderr)
        own = self.own_lines(p.stderr)
        self.assertEqual(len(own), 1, p.stderr)
        self.assertRegex(own[0], r"tap\.py: command killed by signal 9 \(Killed\) after "
                                 r"100 lines.*; nothing was published")
        self.assertEqual(self.store.full_rows("d"), self.before)

    def test_accepted_crlf_blank_lines(self):
        """CRLF line endings are accepted and blank lines skipped; the data
        is the same as with plain newlines (nothing changes)."""
        text = good_lines().replace(b"\n", b"\r\n")
        text = b"\r\n" + text[:60] + text[60:].replace(b"\r\n", b"\r\n  \n\t\n", 1)
        self.write(text)
        p = self.atomsync("run", check=OK)
        r = self.runs("d")[0]
        self.assertEqual((r["seen"], r["unchanged"], r["inserted"], r["updated"]),
                         (5, 5, 0, 0), p.stdout)
        self.assertEqual(self.store.full_rows("d"), self.before)

    def test_exact_64bit_integers(self):
        """Integers that do not fit a double are stored exactly, in integer
        columns and in the `data` column."""
        vals = [9007199254740993, -9223372036854775808, 9223372036854775807]
        self.config(CONFIG.replace("  d:", "  e:").replace("file: in.jsonl",
                                                            "file: ints.jsonl") % "" +
                    "  raw:\n    key: [id]\n    schema: json\n"
                    "    source: {file: ints.jsonl}\n")
        lines = ['{"id":%d,"name":"v%d"}' % (v, i) for i, v in enumerate(vals)]
        self.write(("\n".join(lines) + "\n").encode(), "ints.jsonl")
        self.atomsync("run", "e", "raw", check=OK)
        self.assertEqual(sorted(r[0] for r in self.store.rows("e", ["id"])), sorted(vals))
        raw = self.store.rows("raw", ["id", "data"])
        self.assertEqual(sorted(r[0] for r in raw), sorted(vals))
        for key, data in raw:
            self.assertEqual(json.loads(data)["id"], key)


if __name__ == "__main__":
    import unittest
    unittest.main()
