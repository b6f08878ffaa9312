"""The incidents of /work/shared/seeds/ replayed against atomsync: each test
names its seed file and shows the incident cannot happen."""

import json
import os
import signal
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from atomsync_test import (CRASH_EXIT, FIXTURES, OK, FAILED, LEASED, REFUSED,  # noqa: E402
                           StoreTestCase, for_each_store, make_records,
                           reference_rows, spawn, write_jsonl)

TAP = os.path.join(FIXTURES, "tap.py")
ADDON_COLS = ["id", "name", "downloads", "score"]


def tap_source(records="recs.jsonl", args="--state {state} --state-every 100"):
    return ('      exec: "%s %s --records {dir}/%s --log {dir}/tap.log %s"\n'
            '      format: singer\n' % (sys.executable, TAP, records, args))


ADDONS = """
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
    source:
%s"""

CALENDARS = """
store: {store}
datasets:
  managed_calendars:
    mode: scoped
    key: [user_id, calendar_id]
    scope: [user_id]
    batch_size: 50
    columns:
      user_id: {type: integer}
      calendar_id: {type: text}
      summary: {type: text}
      color: {type: text}
    source:
%s"""

NFTS = """
store: {store}
datasets:
  user_nfts:
    mode: scoped
    key: [wallet, contract_address, token_id]
    scope: [wallet]
    batch_size: 100
    columns:
      wallet: {type: text}
      contract_address: {type: text}
      token_id: {type: text}
      name: {type: text}
    source:
%s  transfers:
    mode: append
    key: [tx_hash, log_index]
    columns:
      tx_hash: {type: text}
      log_index: {type: integer}
      token_id: {type: text}
      to: {type: text}
    source:
      file: transfers.jsonl
"""


def wait_for(cond, timeout=30.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.02)
    return False


@for_each_store
class SeedsTest(StoreTestCase):

    def full(self, table):
        """Every column of every row, in one order on every store."""
        return sorted(self.store.full_rows(table), key=repr)

    def tap_log(self):
        with open(self.path("tap.log")) as f:
            return [json.loads(l) for l in f]

    def kill_partway(self, dataset, tap_args):
        """Start a run whose tap is slowed down, wait for a staging commit,
        kill -9 the worker (and its tap)."""
        runs_before = len(self.runs(dataset))
        taps_before = len(self.tap_log())
        p = spawn(["run", dataset], cwd=self.dir, env={"TAP_ARGS": tap_args})
        # An earlier failed run may have left a checkpoint already: wait for
        # this run to be on record and its tap started, then for a commit.
        ok = wait_for(lambda: len(self.runs(dataset)) > runs_before
                      and len(self.tap_log()) > taps_before
                      and self.status()[dataset]["resumable"])
        time.sleep(0.3)
        n = len(self.tap_log())
        self.assertIsNone(p.poll(), "the run ended before the kill: slow the tap more")
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
        p.stderr.close()
        pid = self.tap_log()[n - 1]["pid"]
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
        self.assertTrue(ok, "no staging commit before the kill")

    def test_000_partial_sync(self):
        """Seed 000_a58010ddecbb1b84.txt (invariants 1, 2, 4, 10): an addon
        sync of 12,500 records failing at record 3,901 leaves the table
        entirely the previous state (not 3,900 fresh rows and 8,600 stale
        ones), is recorded as failed, and the next run resumes and completes."""
        self.config(ADDONS % tap_source())
        old = make_records(12_500)
        write_jsonl(self.path("recs.jsonl"), old)
        self.atomsync("run", check=OK)
        before = self.full("addons")
        fresh = make_records(12_500, version=1)
        write_jsonl(self.path("recs.jsonl"), fresh)
        # The API gives up on record 3,901: the tap exits non-zero there.
        p = self.atomsync("run", env={"TAP_ARGS": "--fail-at 3901"})
        self.assertEqual(p.returncode, FAILED, p.stderr)
        self.assertEqual(self.full("addons"), before)
        self.assertEqual(self.store.rows("addons", ADDON_COLS),
                         reference_rows(old, ADDON_COLS))
        failed = self.runs("addons")[0]
        self.assertEqual(failed["status"], "failed")
        self.assertIn("status 3", failed["error"])
        self.assertEqual(failed["seen"], 3901)
        self.assertEqual((failed["inserted"], failed["updated"]), (0, 0))
        self.assertEqual(self.status()["addons"]["last_run"]["status"], "failed")
        # The next run resumes where the failed one stopped, and completes.
        self.atomsync("run", check=OK)
        self.assertEqual(self.tap_log()[-1]["start"], 3900)
        r = self.runs("addons")[0]
        self.assertEqual(r["resumed_from"], failed["run_id"])
        self.assertEqual((r["seen"], r["updated"], r["inserted"], r["deleted"]),
                         (12_500, 12_500, 0, 0))
        self.assertEqual(self.store.rows("addons", ADDON_COLS),
                         reference_rows(fresh, ADDON_COLS))

    def test_001_failed_run_never_deletes(self):
        """Seed 001_20c26c0252d2d7cf.txt (invariants 2, 3): a run that fails
        or is killed partway never deletes rows, even when it was allowed to
        delete; deletions happen only in the publish of a run whose source
        confirmed the end of its data."""
        self.config(ADDONS % tap_source())
        old = make_records(2000)
        write_jsonl(self.path("recs.jsonl"), old)
        self.atomsync("run", check=OK)
        before = self.full("addons")
        # The source now has only 300 projects (1,700 would be deleted).
        write_jsonl(self.path("recs.jsonl"), old[:300])
        # A source failure after partial delivery ("the flush failed").
        p = self.atomsync("run", "--allow-deletes", "--allow-empty",
                          env={"TAP_ARGS": "--fail-at 150"})
        self.assertEqual(p.returncode, FAILED, p.stderr)
        self.assertEqual(self.full("addons"), before)
        # A tap killed by a signal partway.
        p = self.atomsync("run", "--allow-deletes", env={"TAP_ARGS": "--kill-at 250"})
        self.assertEqual(p.returncode, FAILED, p.stderr)
        self.assertEqual(self.full("addons"), before)
        # The worker itself killed partway.
        write_jsonl(self.path("recs.jsonl"), old[:300] + make_records(700, start=5000))
        self.kill_partway("addons", "--sleep 0.002")
        self.assertEqual(self.full("addons"), before)
        self.assertEqual([r["deleted"] for r in self.runs("addons")], [0] * 4)
        # Only a confirmed-complete run deletes, in its publish.
        self.atomsync("run", "--allow-deletes", check=OK)
        r = self.runs("addons")[0]
        self.assertEqual((r["deleted"], r["inserted"]), (1700, 700))
        self.assertEqual(self.store.rows("addons", ADDON_COLS),
                         reference_rows(old[:300] + make_records(700, start=5000),
                                        ADDON_COLS))

    def calendars(self, users, per, tag="v1"):
        return [{"user_id": u, "calendar_id": "cal-%d-%d" % (u, i),
                 "summary": "%s calendar %d of user %d" % (tag, i, u),
                 "color": "#%06x" % (u * 100 + i)}
                for u in users for i in range(per)]

    def test_004_calendar_delete_then_insert(self):
        """Seed 004_d3ea3f13f107b03c.txt (invariants 1, 2, 4): user 7's
        calendar sync (scoped: replace user 7's calendars) fails mid-way;
        user 7's calendars are intact and other users untouched; the retry
        replaces exactly user 7's calendars."""
        self.config(CALENDARS % tap_source("cal.jsonl", "--key user_id,calendar_id "
                                           "--state {state} --state-every 20"))
        everyone = self.calendars(range(1, 11), 12)
        write_jsonl(self.path("cal.jsonl"), everyone)
        self.atomsync("run", check=OK)
        before = self.full("managed_calendars")
        # User 7 now has 10 calendars (3 kept, 7 new); the insert fails at 6.
        mine = self.calendars([7], 3) + self.calendars([7], 10, "v2")[3:]
        write_jsonl(self.path("cal.jsonl"), mine)
        p = self.atomsync("run", env={"TAP_ARGS": "--fail-at 6"})
        self.assertEqual(p.returncode, FAILED, p.stderr)
        self.assertEqual(self.full("managed_calendars"), before)
        # A bad record mid-way fails the same way.
        bad = mine[:4] + [dict(mine[4], color=None, summary=17)] + mine[5:]
        write_jsonl(self.path("cal.jsonl"), bad)
        p = self.atomsync("run", "--restart")
        self.assertEqual(p.returncode, FAILED, p.stderr)
        self.assertIn("'summary': expected a string", p.stderr)
        self.assertEqual(self.full("managed_calendars"), before)
        # The retry replaces exactly user 7's calendars.
        write_jsonl(self.path("cal.jsonl"), mine)
        self.atomsync("run", "--restart", check=OK)
        after = self.full("managed_calendars")
        self.assertEqual([r for r in after if r[0] != 7], [r for r in before if r[0] != 7])
        cols = ["user_id", "calendar_id", "summary", "color"]
        got7 = [r for r in self.store.rows("managed_calendars", cols) if r[0] == 7]
        self.assertEqual(got7, sorted(tuple(c[k] for k in cols) for c in mine))
        r = self.runs("managed_calendars")[0]
        self.assertEqual((r["inserted"], r["updated"], r["unchanged"], r["deleted"]),
                         (0, 7, 3, 2))

    def test_004_small_scope_changes_pass_the_guard(self):
        """Seed 004_d3ea3f13f107b03c.txt (invariant 3): a per-user calendar
        sync makes small changes that delete most or all of one user's rows
        (5 calendars replaced by 3 new ones; 2 of 3 removed).  Deletions up
        to guard.min_deletes (default 10) never trip the fraction, so these
        publish without --allow-deletes, while an upstream that returns
        partial data (35 of a user's 40 calendars missing; every user
        delivered with 2 of 5) is still refused with nothing changed, and
        min_deletes: 0 restores the bare fraction."""
        self.config(CALENDARS % "      file: cal.jsonl\n")
        cols = ["user_id", "calendar_id", "summary", "color"]
        everyone = (self.calendars(range(1, 7), 5) + self.calendars([7], 3)
                    + self.calendars([8], 40))
        write_jsonl(self.path("cal.jsonl"), everyone)
        self.atomsync("run", check=OK)

        def user(u):
            return [r for r in self.store.rows("managed_calendars", cols) if r[0] == u]

        # User 5's 5 calendars replaced by 3 new ones: 5 of 5 deleted.
        new5 = [dict(c, calendar_id=c["calendar_id"] + "-new")
                for c in self.calendars([5], 3, "v2")]
        write_jsonl(self.path("cal.jsonl"), new5)
        self.atomsync("run", check=OK)
        r = self.runs("managed_calendars")[0]
        self.assertEqual((r["status"], r["inserted"], r["deleted"]), ("completed", 3, 5))
        self.assertEqual(user(5), sorted(tuple(c[k] for k in cols) for c in new5))
        # User 7 removes 2 of its 3 calendars.
        write_jsonl(self.path("cal.jsonl"), self.calendars([7], 1))
        self.atomsync("run", check=OK)
        self.assertEqual(self.runs("managed_calendars")[0]["deleted"], 2)
        self.assertEqual(len(user(7)), 1)
        # Partial data for one big scope: 35 of user 8's 40 deleted.
        before = self.full("managed_calendars")
        write_jsonl(self.path("cal.jsonl"), self.calendars([8], 5))
        p = self.atomsync("run")
        self.assertEqual(p.returncode, REFUSED, p.stderr)
        self.assertIn("would delete 35 of 40 rows", p.stderr)
        self.assertEqual(self.full("managed_calendars"), before)
        # Partial data for many small scopes: 2 of 5 left for users 1-4.
        write_jsonl(self.path("cal.jsonl"), self.calendars(range(1, 5), 2))
        p = self.atomsync("run")
        self.assertEqual(p.returncode, REFUSED, p.stderr)
        self.assertIn("would delete 12 of 20 rows", p.stderr)
        self.assertEqual(self.full("managed_calendars"), before)
        # min_deletes: 0 is the bare fraction: 3 of 5 is refused.
        self.config((CALENDARS % "      file: cal.jsonl\n").replace(
            "    batch_size: 50\n", "    batch_size: 50\n    guard: {min_deletes: 0}\n"))
        write_jsonl(self.path("cal.jsonl"), self.calendars([2], 2))
        p = self.atomsync("run")
        self.assertEqual(p.returncode, REFUSED, p.stderr)
        self.assertIn("would delete 3 of 5 rows", p.stderr)
        self.assertEqual(self.full("managed_calendars"), before)

    def test_003_nft_force_refresh(self):
        """Seed 003_e68cdb74ae47b77e.txt (invariants 1, 2, 5, 6): a force
        refresh of a wallet's NFTs interrupted by kill -9 loses nothing; the
        (tx_hash, log_index) transfer stream replayed twice inserts nothing
        twice and changes nothing; two workers cannot run it at once."""
        nfts = [{"wallet": "0xw%d" % w, "contract_address": "0xc%d" % (i % 3),
                 "token_id": str(i), "name": "nft %d" % i}
                for w in range(4) for i in range(300)]
        self.config(NFTS % tap_source("nfts.jsonl", "--key wallet,contract_address,token_id "
                                      "--state {state} --state-every 50"))
        write_jsonl(self.path("nfts.jsonl"), nfts)
        write_jsonl(self.path("transfers.jsonl"), [])
        self.atomsync("run", "user_nfts", check=OK)
        before = self.full("user_nfts")
        # Force refresh of wallet 0xw1 (now 280 NFTs, 20 renamed), killed.
        w1 = [dict(n, name=n["name"] + " (refreshed)" if i < 20 else n["name"])
              for i, n in enumerate([n for n in nfts if n["wallet"] == "0xw1"][:280])]
        write_jsonl(self.path("nfts.jsonl"), w1)
        # 280 records at 10 ms: the kill comes well before the tap's end,
        # even on a loaded machine (at 2 ms the run could finish first).
        self.kill_partway("user_nfts", "--sleep 0.01")
        self.assertEqual(self.full("user_nfts"), before)
        # Two workers: while one runs the refresh, the other is turned away.
        # The tap of the first holds its run open until the second is refused.
        # The killed run's lease may still be on record: wait for the tap
        # of this run to start, which it does only once it holds the lease.
        hold = self.path("hold")
        taps_before = len(self.tap_log())
        a = spawn(["run", "user_nfts"], cwd=self.dir, env={"TAP_ARGS": "--hold " + hold})
        self.assertTrue(wait_for(lambda: len(self.tap_log()) > taps_before
                                 and self.status()["user_nfts"]["lease"]))
        b = self.atomsync("run", "user_nfts")
        open(hold, "w").close()
        self.assertEqual(b.returncode, LEASED, b.stderr)
        self.assertEqual(a.wait(timeout=120), OK, a.stderr.read())
        a.stderr.close()
        runs = self.runs("user_nfts")
        self.assertEqual([r["status"] for r in runs], ["completed", "failed", "completed"])
        self.assertEqual(runs[0]["resumed_from"], runs[1]["run_id"])
        after = self.full("user_nfts")
        self.assertEqual([r for r in after if r[0] != "0xw1"],
                         [r for r in before if r[0] != "0xw1"])
        self.assertEqual(len([r for r in after if r[0] == "0xw1"]), 280)
        self.assertEqual((runs[0]["deleted"], runs[0]["updated"]), (20, 20))
        # The transfer stream, replayed twice: nothing inserted twice.
        transfers = [{"tx_hash": "0x%064x" % (i // 2), "log_index": i % 2,
                      "token_id": str(i % 300), "to": "0xw%d" % (i % 4)}
                     for i in range(1000)]
        write_jsonl(self.path("transfers.jsonl"), transfers)
        self.atomsync("run", "transfers", check=OK)
        first = self.full("transfers")
        self.assertEqual(len(first), 1000)
        write_jsonl(self.path("transfers.jsonl"), transfers + transfers[:500])
        self.atomsync("run", "transfers", check=OK)
        self.atomsync("run", "transfers", check=OK)
        self.assertEqual(self.full("transfers"), first)
        r = self.runs("transfers")[0]
        self.assertEqual((r["inserted"], r["updated"], r["deleted"], r["unchanged"],
                          r["duplicates"]), (0, 0, 0, 1000, 500))


class SeedsCrashTest(StoreTestCase):
    """SQLite only: the named crash points are in src/store/sqlite.c."""
    store_name = "sqlite"

    def test_001_crash_in_publish_never_deletes(self):
        """Seed 001_20c26c0252d2d7cf.txt (invariants 1, 2, 3): a worker that
        dies inside the publish, after the upsert and after the delete
        statements ran but before the commit, deleted nothing."""
        cfg = ADDONS % "      file: in.jsonl\n"
        self.config(cfg)
        old = make_records(2000)
        write_jsonl(self.path("in.jsonl"), old)
        self.atomsync("run", check=OK)
        before = self.store.full_rows("addons")
        write_jsonl(self.path("in.jsonl"), old[:1200])
        for point in ("publish.upserted", "publish.deleted", "publish.before_commit"):
            p = self.atomsync("run", env={"ATOMSYNC_CRASH": point})
            self.assertEqual(p.returncode, CRASH_EXIT, p.stderr)
            self.assertEqual(self.store.full_rows("addons"), before, point)
        self.atomsync("run", check=OK)
        self.assertEqual(self.runs("addons")[0]["deleted"], 800)
        self.assertEqual(self.store.rows("addons", ADDON_COLS),
                         reference_rows(old[:1200], ADDON_COLS))


if __name__ == "__main__":
    import unittest
    unittest.main()
