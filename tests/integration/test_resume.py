"""Resume (invariant 4): a failed or killed run resumes from its last
checkpoint and publishes exactly what an uninterrupted run would.

A resumed file run proves it skipped the checkpointed prefix: its seen count
(carried over from the checkpoint) equals the number of records in the file
and it counts no duplicates, where reading the prefix again would count
every prefix record twice.
"""

import json
import os
import signal
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from atomsync_test import (FIXTURES, OK, FAILED, StoreTestCase,  # noqa: E402
                           for_each_store, make_records, reference_rows, spawn,
                           write_jsonl)

TAP = os.path.join(FIXTURES, "tap.py")
COLS = ["id", "name", "downloads", "score"]
CONFIG = """
store: {store}
datasets:
  addons:
    key: [id]
    batch_size: 500
    columns:
      id: {type: integer}
      name: {type: text}
      downloads: {type: integer}
      score: {type: real}
%s    source:
      file: addons.jsonl
"""
SINGER = """
store: {store}
datasets:
  addons:
    key: [id]
    batch_size: 200
    columns:
      id: {type: integer}
      name: {type: text}
      downloads: {type: integer}
      score: {type: real}
    source:
      exec: "%s %s --records {dir}/recs.jsonl --state {state} --state-every 100 --log {dir}/tap.log"
      format: singer
""" % (sys.executable, TAP)


def lines_of(recs):
    return [json.dumps(r) + "\n" for r in recs]


@for_each_store
class ResumeTest(StoreTestCase):

    def setUp(self):
        super().setUp()
        self.old = make_records(3000)
        self.new = make_records(3000, version=7)
        self.config(CONFIG % "")
        write_jsonl(self.path("addons.jsonl"), self.old)
        self.atomsync("run", check=OK)
        self.before = self.store.full_rows("addons")

    def write_lines(self, lines):
        with open(self.path("addons.jsonl"), "w") as f:
            f.write("".join(lines))

    def fail_at_line(self, n):
        """The new data with line n broken: the run fails there after
        committing the checkpoints before it."""
        lines = lines_of(self.new)
        good = lines[n - 1]
        lines[n - 1] = '{"id": oops}\n'
        self.write_lines(lines)
        p = self.atomsync("run")
        self.assertEqual(p.returncode, FAILED, p.stderr)
        self.assertIn("addons.jsonl:%d:" % n, p.stderr)
        self.assertEqual(self.store.full_rows("addons"), self.before)
        self.assertTrue(self.status()["addons"]["resumable"])
        lines[n - 1] = good
        return lines, self.runs("addons")[0]["run_id"]

    def assert_resumed(self, failed_id, recs):
        r = self.runs("addons")[0]
        self.assertEqual(r["resumed_from"], failed_id, r)
        self.assertEqual(r["status"], "completed")
        self.assertEqual((r["seen"], r["duplicates"]), (len(recs), 0), r)
        self.assertEqual(self.store.rows("addons", COLS), reference_rows(recs, COLS))
        return r

    def test_failed_run_resumes_from_offset(self):
        """Invariant 4: a run that failed at line 2,500 resumes after the
        checkpoint at line 2,000 and publishes the uninterrupted result."""
        lines, failed_id = self.fail_at_line(2500)
        self.write_lines(lines)
        self.atomsync("run", check=OK)
        r = self.assert_resumed(failed_id, self.new)
        self.assertEqual(r["updated"], 3000)
        self.assertFalse(self.status()["addons"]["resumable"])

    def test_killed_run_resumes(self):
        """Invariant 4: a run killed (kill -9) after some staging commits
        resumes and publishes the uninterrupted result."""
        big = make_records(150_000, version=3)
        write_jsonl(self.path("addons.jsonl"), big)
        p = spawn(["run"], cwd=self.dir)
        end = time.monotonic() + 60
        while not self.status()["addons"]["resumable"] and time.monotonic() < end:
            if p.poll() is not None:
                break
            time.sleep(0.01)
        if p.poll() is None:
            os.kill(p.pid, signal.SIGKILL)
        p.wait()
        p.stderr.close()
        if p.returncode == OK:
            self.skipTest("the run finished before it could be killed")
        killed = self.runs("addons")[0]
        self.assertEqual(self.store.full_rows("addons"), self.before)
        self.atomsync("run", check=OK)
        self.assert_resumed(killed["run_id"], big)

    def test_sigterm_fails_cleanly_and_resumes(self):
        """Invariants 2, 4: SIGTERM (or Ctrl-C) stops a run: it is recorded
        as failed, keeps its committed progress and the next run resumes."""
        self.config(SINGER)
        recs = make_records(3000, version=4)
        write_jsonl(self.path("recs.jsonl"), recs)
        p = spawn(["run"], cwd=self.dir, env={"TAP_ARGS": "--sleep 0.001"})
        end = time.monotonic() + 60
        while not self.status()["addons"]["resumable"] and time.monotonic() < end:
            time.sleep(0.02)
        os.kill(p.pid, signal.SIGTERM)
        self.assertEqual(p.wait(timeout=60), FAILED)
        err = p.stderr.read()
        p.stderr.close()
        own = [l for l in err.splitlines() if l.startswith("atomsync:")]
        self.assertEqual(len(own), 1, err)
        self.assertIn("interrupted", own[0])
        stopped = self.runs("addons")[0]
        self.assertEqual(stopped["status"], "failed")
        self.assertEqual(self.store.full_rows("addons"), self.before)
        self.assertTrue(self.status()["addons"]["resumable"])
        self.atomsync("run", check=OK)
        r = self.assert_resumed(stopped["run_id"], recs)
        self.assertEqual(r["updated"], 3000)

    def test_changed_prefix_starts_over(self):
        """Invariant 4: a file changed before the resume point starts over,
        with a warning, and publishes the new file's content."""
        lines, failed_id = self.fail_at_line(2500)
        changed = [dict(r) for r in self.new]
        changed[9]["name"] = "edited"
        lines[9] = json.dumps(changed[9]) + "\n"
        self.write_lines(lines)
        p = self.atomsync("run", check=OK)
        warn = [l for l in p.stderr.splitlines() if "warning" in l]
        self.assertEqual(len(warn), 1, p.stderr)
        self.assertIn("addons.jsonl changed since the checkpoint", warn[0])
        self.assertIn("starting over", warn[0])
        r = self.runs("addons")[0]
        self.assertIsNone(r["resumed_from"])
        self.assertEqual((r["seen"], r["duplicates"]), (3000, 0))
        self.assertEqual(self.store.rows("addons", COLS), reference_rows(changed, COLS))

    def test_shorter_file_starts_over(self):
        """Invariant 4: a file now shorter than the checkpoint starts over."""
        self.fail_at_line(2500)
        write_jsonl(self.path("addons.jsonl"), self.new[:1500])
        p = self.atomsync("run", "--allow-deletes", check=OK)
        self.assertIn("starting over", p.stderr)
        self.assertIsNone(self.runs("addons")[0]["resumed_from"])
        self.assertEqual(self.store.rows("addons", COLS),
                         reference_rows(self.new[:1500], COLS))

    def test_appended_file_resumes(self):
        """Invariant 4: a file that was still being written (its last line
        cut short) resumes once the writer completed and appended to it."""
        lines = lines_of(self.new)
        cut = "".join(lines[:2300]) + lines[2300][:25]
        with open(self.path("addons.jsonl"), "w") as f:
            f.write(cut)
        p = self.atomsync("run")
        self.assertEqual(p.returncode, FAILED, p.stderr)
        self.assertIn("addons.jsonl:2301:", p.stderr)
        failed_id = self.runs("addons")[0]["run_id"]
        with open(self.path("addons.jsonl"), "a") as f:
            f.write(lines[2300][25:] + "".join(lines[2301:]))
        more = make_records(400, start=9001)
        with open(self.path("addons.jsonl"), "a") as f:
            f.write("".join(lines_of(more)))
        self.atomsync("run", check=OK)
        self.assert_resumed(failed_id, self.new + more)

    def test_restart_starts_over(self):
        """Invariant 4: --restart discards the checkpoint and starts over."""
        lines, failed_id = self.fail_at_line(2500)
        self.write_lines(lines)
        self.atomsync("run", "--restart", check=OK)
        r = self.runs("addons")[0]
        self.assertIsNone(r["resumed_from"])
        self.assertEqual((r["seen"], r["duplicates"], r["updated"]), (3000, 0, 3000))
        self.assertEqual(self.store.rows("addons", COLS), reference_rows(self.new, COLS))

    def test_changed_mapping_starts_over(self):
        """Invariant 4: a staging built for another column mapping is never
        continued: a changed config starts over."""
        lines, failed_id = self.fail_at_line(2500)
        self.write_lines(lines)
        self.config(CONFIG.replace("      score: {type: real}\n",
                                   "      score: {type: real}\n"
                                   "      slug: {type: text}\n") % "")
        # The live table has no `slug`: a mismatch is a configuration error
        # (exit 2), and the staging is not resumed under the new mapping.
        p = self.atomsync("run")
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn("does not have the columns", p.stderr)
        self.assertEqual(self.store.full_rows("addons"), self.before)
        self.config(CONFIG % "")
        self.atomsync("run", check=OK)
        self.assertEqual(self.store.rows("addons", COLS), reference_rows(self.new, COLS))

    # ---- Singer through exec: STATE is the checkpoint ----

    def tap_log(self):
        with open(self.path("tap.log")) as f:
            return [json.loads(l) for l in f]

    def test_singer_resumes_from_committed_state(self):
        """Invariant 4: a tap that fails halfway is started again with the
        last STATE committed with its records, and the run publishes the
        uninterrupted result."""
        self.config(SINGER)
        recs = make_records(3000, version=5)
        write_jsonl(self.path("recs.jsonl"), recs)
        p = self.atomsync("run", env={"TAP_ARGS": "--fail-at 2250"})
        self.assertEqual(p.returncode, FAILED, p.stderr)
        self.assertIn("status 3 after", p.stderr)
        self.assertEqual(self.store.full_rows("addons"), self.before)
        failed_id = self.runs("addons")[0]["run_id"]
        # A kill -9 of the tap later in the resumed run: resumes again.
        p = self.atomsync("run", env={"TAP_ARGS": "--kill-at 2700"})
        self.assertEqual(p.returncode, FAILED, p.stderr)
        killed_id = self.runs("addons")[0]["run_id"]
        self.assertEqual(self.runs("addons")[0]["resumed_from"], failed_id)
        self.atomsync("run", check=OK)
        log = self.tap_log()
        self.assertEqual([x["start"] for x in log], [0, 2200, 2700])
        self.assertEqual(json.loads(log[1]["state"]), {"offset": 2200})
        self.assertEqual(json.loads(log[2]["state"]), {"offset": 2700})
        r = self.runs("addons")[0]
        self.assertEqual(r["resumed_from"], killed_id)
        self.assertEqual((r["seen"], r["duplicates"], r["inserted"], r["updated"],
                          r["deleted"]), (3000, 0, 0, 3000, 0))
        self.assertEqual(self.store.rows("addons", COLS), reference_rows(recs, COLS))
        # A fresh lineage gets no state.
        self.atomsync("run", check=OK)
        self.assertEqual(json.loads(self.tap_log()[-1]["state"]), {})

    def test_singer_restart(self):
        """Invariant 4: --restart hands the tap no state."""
        self.config(SINGER)
        recs = make_records(3000, version=2)
        write_jsonl(self.path("recs.jsonl"), recs)
        self.assertEqual(self.atomsync("run", env={"TAP_ARGS": "--fail-at 2450"}).returncode,
                         FAILED)
        self.atomsync("run", "--restart", check=OK)
        self.assertEqual([x["start"] for x in self.tap_log()], [0, 0])
        self.assertIsNone(self.runs("addons")[0]["resumed_from"])
        self.assertEqual(self.store.rows("addons", COLS), reference_rows(recs, COLS))


if __name__ == "__main__":
    import unittest
    unittest.main()
