"""Faults injected by tests/fixtures/apiserver.py into the HTTP source.

A fault that a retry cures (5xx, 408, 429, resets, hangs, truncated bodies,
Retry-After) ends in a completed run and the server's counters show the
retries and the waits.  A fault that no retry cures fails the run with one
line naming the URL, the page and the reason, and publishes nothing
(invariant 2): invalid JSON, a missing record array, 404, exhausted retries,
the circuit breaker, the deadline, a total that does not match (an empty
page in the middle, a catalog that shifted under the run).  A record that
is not an object is a reject named by page and item (invariant 9).
"""

import base64
import json
import os
import signal
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import test_http as h  # noqa: E402  (ApiServer, HttpCase, helpers)
from atomsync_test import FAILED, OK, for_each_store, spawn  # noqa: E402


def cursor_for(offset):
    return base64.urlsafe_b64encode(("o:%d" % offset).encode()).decode().rstrip("=")


class FaultCase(h.HttpCase):

    def baseline(self, style="offset", **kw):
        """Publish the catalog, then change it, so that any publish by the
        next run would change the table."""
        self.http_config(style, **kw)
        self.atomsync("run", check=OK)
        self.before = self.store.full_rows("mods")
        self.server.catalog(mutate={"update": [1, 2, 3, 200, 599]})
        self.server.reset()

    def expect_failure(self, *needles):
        """Exit 1, one stderr line holding every needle, nothing published,
        the run on record as failed with the same error."""
        p = self.atomsync("run", check=FAILED)
        line = self.error_line(p)
        for n in needles:
            self.assertIn(n, line)
        self.assertEqual(self.store.full_rows("mods"), self.before)
        r = self.runs("mods")[0]
        self.assertEqual(r["status"], "failed")
        self.assertIn(r["error"], line)
        return line

    def completes(self):
        p = self.atomsync("run", check=OK)
        self.assertEqual(self.rows(), h.expected_rows(self.server.records()))
        return p

    def page_times(self, page):
        return [e["t"] for e in h.page_log(self.server.stats()) if e["page"] == page]


@for_each_store
class RetriedTest(FaultCase):

    def test_503_with_retry_after_twice_then_success(self):
        self.baseline()
        self.server.faults({"kind": "status", "status": 503, "retry_after": 1,
                            "match": {"page": 4}, "times": 2})
        p = self.completes()
        self.assertIn("page 4: HTTP 503 with Retry-After 1 s: waiting", p.stderr)
        t = self.page_times(4)
        self.assertEqual(len(t), 3)
        self.assertGreaterEqual(t[1] - t[0], 0.95)
        self.assertGreaterEqual(t[2] - t[1], 0.95)
        self.assertEqual(self.server.stats()["statuses"].get("503"), 2)

    def test_retry_after_as_an_http_date(self):
        self.baseline()
        when = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 2))
        self.server.faults({"kind": "status", "status": 429, "retry_after": when,
                            "match": {"page": 2}, "times": 1})
        self.completes()
        t = self.page_times(2)
        self.assertEqual(len(t), 2)
        self.assertGreaterEqual(t[1] - t[0], 0.9)

    def test_transient_faults_are_retried(self):
        """500, 408, 429, a reset, a hang past the timeout and a truncated
        body: each once, each retried, the run completes."""
        self.baseline(timeout="1s")
        self.server.faults(
            {"kind": "status", "status": 500, "match": {"page": 2}, "times": 1},
            {"kind": "status", "status": 408, "match": {"page": 3}, "times": 1},
            {"kind": "status", "status": 429, "match": {"page": 4}, "times": 1},
            {"kind": "reset", "match": {"page": 5}, "times": 1},
            {"kind": "hang", "ms": 5000, "match": {"page": 7}, "times": 1},
            {"kind": "truncate", "match": {"page": 9}, "times": 1})
        self.completes()
        by_page = self.server.stats()["by_page"]
        for page in (2, 3, 4, 5, 7, 9):
            self.assertEqual(by_page[str(page)], 2, page)
        for page in (1, 6, 8, 10, 11, 12):
            self.assertEqual(by_page[str(page)], 1, page)
        t = self.page_times(7)
        self.assertGreaterEqual(t[1] - t[0], 0.95)   # the timeout, not the hang


@for_each_store
class RateLimitTest(FaultCase):
    """Rate-limit signals beyond 429/503: GitHub's 403 with the limit spent
    waits for X-RateLimit-Reset; RateLimit-* headers on a 2xx pause the run
    before the limit is hit; a plain 403 still fails (invariant 2)."""

    def test_github_403_waits_for_the_reset(self):
        self.baseline()
        reset = int(time.time()) + 2
        self.server.faults({"kind": "status", "status": 403, "times": 1,
                            "match": {"page": 3},
                            "headers": {"X-RateLimit-Remaining": "0",
                                        "X-RateLimit-Reset": str(reset)},
                            "body": {"message": "API rate limit exceeded"}})
        self.completes()
        t = self.page_times(3)
        self.assertEqual(len(t), 2)
        self.assertGreaterEqual(t[1] - t[0], 0.9)
        self.assertEqual(self.server.stats()["statuses"].get("403"), 1)

    def test_ratelimit_headers_pause_before_the_limit(self):
        for headers in ({"RateLimit-Remaining": "0", "RateLimit-Reset": "1"},
                        {"RateLimit": "limit=10, remaining=0, reset=1"},
                        {"RateLimit": '"default";r=0;t=1'}):
            with self.subTest(headers=headers):
                self.baseline()
                self.server.faults({"kind": "headers", "headers": headers, "times": 1,
                                    "match": {"page": 2}})
                p = self.atomsync("-v", "run", check=OK)
                self.assertIn("rate limit spent (remaining 0): pausing 1 s", p.stderr)
                log = h.page_log(self.server.stats())
                t2 = next(e["t"] for e in log if e["page"] == 2)
                later = [e["t"] for e in log if e["page"] > 2]
                self.assertGreaterEqual(min(later) - t2, 0.95)
                self.assertEqual(set(self.server.stats()["statuses"]), {"200"})

    def test_body_error_retried_or_failed(self):
        """Slack answers 200 {"ok": false, "error": ...}: ratelimited is
        retried (error_retry), another error fails the run with the API's
        text and publishes nothing."""
        self.baseline("slack")
        body = json.dumps({"ok": False, "error": "ratelimited"})
        self.server.faults({"kind": "invalid_json", "body": body, "times": 2,
                            "match": {"page": 3}})
        self.completes()
        self.assertEqual(self.server.stats()["by_page"]["3"], 3)
        self.server.catalog(mutate={"update": [7]})
        self.before = self.store.full_rows("mods")
        self.server.reset()
        body = json.dumps({"ok": False, "error": "invalid_auth"})
        self.server.faults({"kind": "invalid_json", "body": body, "match": {"page": 2}})
        self.expect_failure("page 2: HTTP 200 with an error at 'error': invalid_auth")
        self.assertEqual(self.server.stats()["by_page"]["2"], 1)

    def test_plain_403_fails(self):
        self.baseline()
        self.server.faults({"kind": "status", "status": 403, "match": {"page": 3},
                            "headers": {"X-RateLimit-Remaining": "12"}})
        self.expect_failure("page 3: HTTP 403")
        self.assertEqual(self.server.stats()["by_page"]["3"], 1)


@for_each_store
class FailedTest(FaultCase):

    def test_invalid_json(self):
        self.baseline()
        self.server.faults({"kind": "invalid_json", "match": {"page": 4}})
        line = self.expect_failure("/v1/mods?index=150&pageSize=50: page 4: "
                                   "the body is not JSON")
        self.assertTrue(line.startswith("atomsync: mods: %s" % self.server.base))

    def test_truncated_body(self):
        self.baseline()
        self.server.faults({"kind": "truncate", "match": {"page": 4}})
        self.expect_failure("index=150", "page 4: truncated body", "after 4 attempts")
        self.assertEqual(self.server.stats()["by_page"]["4"], 4)

    def test_missing_records(self):
        self.baseline()
        self.server.faults({"kind": "missing_records", "match": {"page": 4}})
        self.expect_failure("index=150", "page 4: no record array at 'data'")

    def test_link_body_without_array(self):
        self.baseline("link_header")
        self.server.faults({"kind": "missing_records", "match": {"page": 3}})
        self.expect_failure("/link/mods?", "page 3: the body is an object, not an "
                            "array of records")

    def test_404_is_not_retried(self):
        self.baseline()
        self.server.faults({"kind": "status", "status": 404, "match": {"page": 4}})
        self.expect_failure("index=150", "page 4: HTTP 404")
        self.assertEqual(self.server.stats()["by_page"]["4"], 1)

    def test_503_until_retries_run_out(self):
        self.baseline(retry="{attempts: 3, initial: 20ms, max: 100ms}")
        self.server.faults({"kind": "status", "status": 503, "retry_after": 1,
                            "match": {"page": 4}})
        self.expect_failure("index=150&pageSize=50: page 4: HTTP 503 after 3 "
                            "attempts (Retry-After 1 s)")
        self.assertEqual(self.server.stats()["by_page"]["4"], 3)

    def test_circuit_breaker_stops_the_run(self):
        self.baseline(retry="{attempts: 10, initial: 10ms, max: 50ms}",
                      http="        circuit_breaker: {failures: 4}\n")
        self.server.faults({"kind": "status", "status": 500, "match": {}})
        self.expect_failure("circuit breaker opened after 4 consecutive failed "
                            "requests", "page 1: HTTP 500")
        time.sleep(0.3)
        self.assertEqual(self.server.stats()["requests"], 4)

    def test_breaker_counts_failures_across_pages(self):
        """Concurrent pages failing together open the breaker too; the
        requests stop at once."""
        self.baseline(retry="{attempts: 10, initial: 200ms, max: 400ms}",
                      http="        concurrency: 4\n"
                           "        circuit_breaker: {failures: 6}\n")
        self.server.faults({"kind": "reset", "match": {}})
        self.expect_failure("circuit breaker opened after 6 consecutive")
        time.sleep(0.5)
        self.assertLessEqual(self.server.stats()["requests"], 9)

    def test_deadline(self):
        self.baseline(http="        deadline: 1s\n")
        self.server.faults({"kind": "latency", "ms": 300, "match": {}})
        t0 = time.monotonic()
        self.expect_failure("the run's deadline of 1 s passed")
        self.assertLess(time.monotonic() - t0, 3)

    def test_wrong_total_within_and_beyond_tolerance(self):
        self.baseline(http="        concurrency: 2\n")
        with open(self.path("atomsync.yml")) as f:
            text = f.read()
        with open(self.path("atomsync.yml"), "w") as f:
            f.write(text.replace("total_path: pagination.totalCount",
                                 "total_path: pagination.totalCount, "
                                 "total_tolerance: 0.02"))
        # 2% of 600 = 12: a total off by 7 passes, one off by 30 does not
        self.server.faults({"kind": "wrong_total", "delta": 7, "match": {}})
        self.completes()
        self.before = self.store.full_rows("mods")
        self.server.catalog(mutate={"update": [9]})
        self.server.faults({"kind": "wrong_total", "delta": 30, "match": {}})
        self.expect_failure("600 records received, but the API reported a total "
                            "of 630")

    def test_non_object_record_is_a_reject(self):
        """Invariant 9: item 7 of page 4 is a number: by default it fails the
        run, named by URL, page and item; with max_rejects it goes to the
        reject file with the same name."""
        self.baseline()
        recs = self.server.records()[150:200]
        recs[6] = 7
        body = json.dumps({"data": recs, "pagination": {
            "index": 150, "pageSize": 50, "resultCount": 50, "totalCount": 600}})
        self.server.faults({"kind": "invalid_json", "body": body, "match": {"page": 4}})
        self.expect_failure("index=150&pageSize=50 page 4 item 7: the record is a "
                            "number, not a JSON object")
        with open(self.path("atomsync.yml")) as f:
            text = f.read()
        with open(self.path("atomsync.yml"), "w") as f:
            f.write(text.replace("    source:\n", "    guard: {max_rejects: 1}\n"
                                 "    source:\n"))
        p = self.atomsync("run", check=OK)
        self.assertIn("1 rejected", p.stdout)
        with open(self.path("mods.rejects.jsonl")) as f:
            rej = [json.loads(l) for l in f]
        self.assertEqual(len(rej), 1)
        self.assertTrue(rej[0]["where"].endswith("index=150&pageSize=50 page 4 item 7"))
        self.assertTrue(rej[0]["where"].startswith(self.server.base))

    def test_cursor_that_does_not_advance(self):
        self.baseline("cursor")
        body = json.dumps({"data": self.server.records()[50:100],
                           "pagination": {"next": cursor_for(50), "totalCount": 600}})
        self.server.faults({"kind": "invalid_json", "body": body, "match": {"page": 2}})
        self.expect_failure("page 2: the next cursor is this page's own")

    def test_next_url_to_another_host_is_refused(self):
        self.baseline("next_url")
        body = json.dumps({"data": self.server.records()[50:100],
                           "links": {"next": "http://127.0.0.2:%d/next_url/mods?after=100"
                                     % self.server.port},
                           "meta": {"totalCount": 600}})
        self.server.faults({"kind": "invalid_json", "body": body, "match": {"page": 2}})
        self.expect_failure("page 2: the next page's URL", "is on another host")


@for_each_store
class OAuthFaultsTest(h.OAuthCase, FaultCase):
    """An OAuth2 listing: faults publish nothing (invariant 2), kill -9
    then resume reaches the uninterrupted table (invariant 4) with a token
    fetched afresh by the resumed run."""
    server_args = ("--oauth", "cid-1:" + h.CLIENT_SECRET, "--oauth-expires-in", "30")

    def atomsync(self, *args, **kw):
        kw.setdefault("env", self.env)
        return super().atomsync(*args, **kw)

    def test_faults_publish_nothing(self):
        cases = [({"kind": "status", "status": 503, "match": {"page": 3}},
                  "page 3: HTTP 503 after 4 attempts"),
                 ({"kind": "truncate", "match": {"page": 5}}, "page 5: truncated body"),
                 ({"kind": "status", "status": 403, "match": {"page": 2}},
                  "page 2: HTTP 403")]
        for fault, needle in cases:
            with self.subTest(fault=fault["kind"]):
                self.server.faults()
                self.server.catalog(records=h.RECORDS, seed=1)
                self.oauth_config()
                self.atomsync("run", check=OK)
                self.before = self.store.full_rows("mods")
                self.server.catalog(mutate={"update": [1, 2, 3, 200, 599]})
                self.server.faults(fault)
                self.expect_failure(needle)

    def test_kill_9_then_resume(self):
        self.server.faults({"kind": "latency", "ms": 40, "match": {}})
        self.oauth_config("offset", dataset="    batch_size: 20\n")
        with open(self.path("atomsync.yml")) as f:
            text = f.read().replace("limit: 50", "limit: 10")
        with open(self.path("atomsync.yml"), "w") as f:
            f.write(text)
        h.run_and_kill(self, self.server, 25, env=self.env)
        cp = json.loads(self.store.query("SELECT checkpoint FROM atomsync_state "
                                         "WHERE dataset = 'mods'")[0][0])
        self.server.reset()
        p = self.atomsync("run", check=OK)
        self.assertIn("(resumed run ", p.stdout)
        st = self.server.stats()
        self.assertEqual(sorted(int(k) for k in st["by_page"]), list(range(cp["page"], 61)))
        self.assertEqual(st["token_requests"], 1)
        self.assertEqual(self.rows(), h.expected_rows(self.server.records()))
        self.assert_clean([cp and json.dumps(cp), p.stdout, p.stderr])


@for_each_store
class TotalsTest(FaultCase):

    def test_empty_page_in_the_middle(self):
        """Without the total the run would end or lose 50 records quietly;
        with it the run fails, and the next run starts over (the staged
        pages came from an inconsistent listing) and completes."""
        self.baseline(http="        concurrency: 3\n")
        self.server.faults({"kind": "empty_page", "match": {"page": 4}, "times": 1})
        self.expect_failure("550 records received, but the API reported a total "
                            "of 600", "page 4 had 0 records, not 50")
        self.server.reset()
        p = self.completes()
        self.assertIn("starting over", p.stderr)
        self.assertEqual(len(self.server.stats()["by_page"]), 12)

    def test_duplicates_between_pages_are_counted(self):
        self.baseline(http="        concurrency: 3\n")
        with open(self.path("atomsync.yml")) as f:
            text = f.read()
        with open(self.path("atomsync.yml"), "w") as f:
            f.write(text.replace("total_path: pagination.totalCount",
                                 "total_path: pagination.totalCount, "
                                 "total_tolerance: 0.01"))
        self.server.faults({"kind": "duplicate", "match": {"page": 3}, "times": 1})
        p = self.completes()
        self.assertIn("601 seen", p.stdout)
        r = self.runs("mods")[0]
        self.assertEqual((r["seen"], r["duplicates"]), (601, 1))

    def test_shifted_catalog_is_caught(self):
        """Records inserted or deleted ahead of the reader repeat or skip
        records in offset pagination; the changing total gives it away."""
        for count in (1, -1):
            with self.subTest(count=count):
                self.server.catalog(records=h.RECORDS, seed=1)
                self.baseline()
                self.server.faults({"kind": "shift", "count": count,
                                    "match": {"page": 2}, "times": 1})
                self.expect_failure("but the API reported a total of",
                                    "it changed between")
                # the next run starts over on the changed catalog
                self.server.faults()
                p = self.completes()
                self.assertIn("starting over", p.stderr)

    def test_sigterm_stops_a_waiting_run(self):
        self.baseline()
        self.server.faults({"kind": "hang", "ms": 20000, "match": {"page": 3}})
        proc = spawn(["run"], cwd=self.dir)
        time.sleep(1.0)
        t0 = time.monotonic()
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
        self.assertLess(time.monotonic() - t0, 2)
        self.assertEqual(proc.returncode, FAILED)
        with proc.stderr:
            self.assertIn("interrupted", proc.stderr.read())
        self.assertEqual(self.store.full_rows("mods"), self.before)


if __name__ == "__main__":
    unittest.main()
