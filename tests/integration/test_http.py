"""The HTTP source against the project's own API server
(tests/fixtures/apiserver.py): every pagination style syncs the whole
catalog; pages reach the engine in order while several are in flight; one
token bucket holds the rate; a 429 halves the concurrency; `kill -9` then
resume fetches only the remaining pages (invariant 4); an incremental run
sends the saved cursor (invariant 8); secrets never appear in any output.

The server helpers here are shared with tests/fault/test_http_faults.py.
"""

import base64
import http.server
import json
import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.request
from datetime import datetime, timezone
from urllib.parse import parse_qs, quote

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from atomsync_test import (FAILED, OK, ROOT, StoreTestCase,  # noqa: E402
                           for_each_store, spawn)

SERVER = os.path.join(ROOT, "tests", "fixtures", "apiserver.py")
RECORDS = 600
COLS = ["id", "name", "downloads", "score", "updatedAt"]

# style -> (path, records path or None, pagination mapping)
STYLES = {
    "offset": ("/v1/mods", "data",
               "{style: offset, offset_param: index, limit_param: pageSize, "
               "limit: 50, total_path: pagination.totalCount}"),
    "page": ("/page/mods", "data",
             "{style: page, page_param: page, limit_param: pageSize, limit: 50, "
             "total_path: pagination.totalCount}"),
    "cursor": ("/cursor/mods", "data",
               "{style: cursor, cursor_param: cursor, cursor_path: pagination.next, "
               "limit_param: pageSize, limit: 50, total_path: pagination.totalCount}"),
    "next_url": ("/next_url/mods", "data",
                 "{style: next_url, next_url_path: links.next, limit_param: pageSize, "
                 "limit: 50, total_path: meta.totalCount}"),
    "link_header": ("/link/mods", None,
                    "{style: link_header, limit_param: per_page, limit: 50, "
                    "total_path: 'header:X-Total-Count'}"),
    "none": ("/none/mods", "data", "{style: none, total_path: meta.totalCount}"),
    # Without a total: sequential, the end is a short page.
    "offset_no_total": ("/v1/mods", "data",
                        "{style: offset, offset_param: index, limit_param: pageSize, "
                        "limit: 50}"),
    "page_no_total": ("/page/mods", "data",
                      "{style: page, page_param: page, limit_param: pageSize, "
                      "limit: 50}"),
    # Without a total, the last page full: the cursor is null there.
    "cursor_null_end": ("/cursor/mods", "data",
                        "{style: cursor, cursor_param: cursor, cursor_path: pagination.next, "
                        "limit_param: pageSize, limit: 50}"),
    # Stripe: keyset on the last record's id, has_more says when it ends.
    "stripe": ("/stripe/mods", "data",
               "{style: cursor, cursor_param: starting_after, cursor_from_record: id, "
               "has_more_path: has_more, limit_param: limit, limit: 50}"),
    # GraphQL (GitHub-style connection): POST, the page cursor in variables.
    "graphql": ("/graphql", "data.items.nodes",
                "{style: cursor, cursor_path: data.items.pageInfo.endCursor, "
                "has_more_path: data.items.pageInfo.hasNextPage, limit: 50}",
                "        method: POST\n"
                "        body:\n"
                "          query: \"query($first: Int!, $after: String) { items(first: "
                "$first, after: $after) { nodes { id name downloadCount score updatedAt } "
                "pageInfo { endCursor hasNextPage } } }\"\n"
                "          variables: {first: \"{limit}\", after: \"{page_cursor}\"}\n"),
    # Notion's database query: POST {start_cursor, page_size}.
    "notion": ("/notion/mods", "results",
               "{style: cursor, cursor_path: next_cursor, has_more_path: has_more, "
               "limit: 50}",
               "        method: POST\n"
               "        body: {page_size: \"{limit}\", start_cursor: \"{page_cursor}\"}\n"),
    # Slack's Web API: next_cursor "" on the last page, errors in the body.
    "slack": ("/slack/mods", "members",
              "{style: cursor, cursor_param: cursor, "
              "cursor_path: response_metadata.next_cursor, limit_param: limit, limit: 50}",
              "        error_path: error\n"
              "        error_retry: [ratelimited]\n"),
    # Zendesk's cursor export: end_of_stream says when it ends.
    "zendesk": ("/zendesk/mods", "mods",
                "{style: cursor, cursor_param: cursor, cursor_path: after_cursor, "
                "stop_path: end_of_stream, limit_param: per_page, limit: 50}"),
}


class ApiServer:
    """apiserver.py on a free loopback port, stopped by pid."""

    def __init__(self, *args):
        self.dir = tempfile.mkdtemp(prefix="atomsync-api-")
        port_file = os.path.join(self.dir, "port")
        self.log = open(os.path.join(self.dir, "server.log"), "w+")
        self.proc = subprocess.Popen(
            [sys.executable, SERVER, "--port", "0", "--port-file", port_file,
             "--records", str(RECORDS)] + list(args),
            stdout=self.log, stderr=self.log, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 15
        while not os.path.exists(port_file):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("apiserver did not start")
            time.sleep(0.02)
        with open(port_file) as f:
            self.port = int(f.read())
        self.base = "http://127.0.0.1:%d" % self.port

    def stop(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()

    def call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method)
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read())

    def faults(self, *faults):
        self.call("POST", "/_faults", {"faults": list(faults)})

    def reset(self):
        self.call("POST", "/_reset", {})

    def stats(self):
        return self.call("GET", "/_stats")

    def catalog(self, **body):
        return self.call("POST", "/_catalog", body)

    def records(self):
        return self.call("GET", "/_catalog?full=1")["data"]


def instant(ts):
    """A timestamp as Unix seconds, whatever ISO 8601 spelling it has."""
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


def expected_rows(records):
    rows = [(r["id"], r["name"], r["downloadCount"], r["score"], instant(r["updatedAt"]))
            for r in records]
    return sorted(rows)


def page_log(stats):
    """The list requests of the server log, in arrival order."""
    return [e for e in stats["log"] if e["page"] is not None]


def run_and_kill(case, server, requests, env=None):
    """`atomsync run` in case.dir, killed with SIGKILL once the server has
    seen `requests` requests (invariant 4's interruption)."""
    proc = spawn(["run"], cwd=case.dir, env=env)
    deadline = time.monotonic() + 30
    while server.stats()["requests"] < requests:
        case.assertIsNone(proc.poll(), "the run ended before the kill")
        case.assertLess(time.monotonic(), deadline)
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stderr.close()


class HttpCase(StoreTestCase):
    """A server per test class; each test starts with a fresh catalog, no
    faults and zeroed counters."""
    server_args = ()

    @classmethod
    def setUpClass(cls):
        cls.server = ApiServer(*cls.server_args)

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def setUp(self):
        super().setUp()
        self.server.faults()
        self.server.catalog(records=RECORDS, seed=1)
        self.server.reset()

    def http_config(self, style="offset", http="", dataset="", name="mods",
                    more="", retry="{attempts: 4, initial: 20ms, max: 200ms}",
                    timeout="5s"):
        """A config with one HTTP dataset (plus `more` datasets verbatim)."""
        path, records, pagination = STYLES[style][:3]
        http = "".join(STYLES[style][3:]) + http
        text = ("store: {store}\n"
                "datasets:\n"
                "  %s:\n"
                "    key: [id]\n"
                "    columns:\n"
                "      id: {type: integer}\n"
                "      name: {type: text}\n"
                "      downloads: {type: integer, path: downloadCount}\n"
                "      score: {type: real}\n"
                "      updatedAt: {type: timestamp}\n"
                "%s"
                "    source:\n"
                "      http:\n"
                "        url: %s%s\n"
                "%s"
                "        pagination: %s\n"
                "        timeout: %s\n"
                "        retry: %s\n"
                "%s%s") % (
                    name, dataset, self.server.base, path,
                    "        records: %s\n" % records if records else "",
                    pagination, timeout, retry, http, more)
        return self.config(text)

    def rows(self, table="mods"):
        """The live rows, updatedAt as Unix seconds."""
        return sorted(r[:4] + (instant(r[4]),) for r in self.store.rows(table, COLS))

    def error_line(self, p, dataset="mods"):
        """The one stderr line of a failed run."""
        lines = [l for l in p.stderr.splitlines() if l.startswith("atomsync: %s:" % dataset)]
        self.assertEqual(len(lines), 1, p.stderr)
        return lines[0]


@for_each_store
class HttpStylesTest(HttpCase):

    def test_each_style_syncs_the_whole_catalog(self):
        want = expected_rows(self.server.records())
        for style in STYLES:
            with self.subTest(style=style):
                self.server.reset()
                self.http_config(style, http="        concurrency: 4\n",
                                 name="m_" + style)
                p = self.atomsync("run", check=OK)
                self.assertIn("600 seen, 600 inserted", p.stdout)
                self.assertEqual(self.rows("m_" + style), want)
                st = self.server.stats()
                pages = page_log(st)
                # Every page once (the styles without a total also ask for
                # the empty page after a full last one).
                counts = {}
                for e in pages:
                    counts[e["page"]] = counts.get(e["page"], 0) + 1
                self.assertEqual(set(counts.values()), {1}, counts)
                expect = 1 if style == "none" else 13 if "no_total" in style else 12
                self.assertEqual(len(pages), expect, counts)

    def test_second_run_is_idempotent(self):
        """Invariant 5 through the HTTP source."""
        self.http_config("offset", http="        concurrency: 4\n")
        self.atomsync("run", check=OK)
        before = self.store.full_rows("mods")
        self.atomsync("run", check=OK)
        self.assertEqual(self.store.full_rows("mods"), before)
        r = self.runs("mods")[0]
        self.assertEqual((r["inserted"], r["updated"], r["deleted"], r["unchanged"]),
                         (0, 0, 0, 600))

    def test_catalog_changes_are_published(self):
        self.http_config("cursor")
        self.atomsync("run", check=OK)
        self.server.catalog(mutate={"update": [3, 99, 450], "delete": [10, 11],
                                    "add": 5})
        p = self.atomsync("run", check=OK)
        self.assertIn("603 seen, 5 inserted, 3 updated, 595 unchanged, 2 deleted",
                      p.stdout)
        self.assertEqual(self.rows(), expected_rows(self.server.records()))

    def test_item_url_config_is_accepted(self):
        self.http_config("offset", http="        item_url: %s/v1/mods/{id}\n"
                         % self.server.base)
        self.atomsync("run", check=OK)
        self.assertEqual(len(self.rows()), 600)


@for_each_store
class HttpListingEndTest(HttpCase):
    """Invariant 3: a listing is complete only when the API says it ended.
    A path that never matches must not end the listing after one page."""

    def set_pagination(self, old, new):
        with open(self.path("atomsync.yml")) as f:
            text = f.read()
        self.assertIn(old, text)
        with open(self.path("atomsync.yml"), "w") as f:
            f.write(text.replace(old, new))

    def refused(self, *needles):
        p = self.atomsync("run", check=FAILED)
        line = self.error_line(p)
        for n in needles:
            self.assertIn(n, line)
        self.assertEqual(self.runs("mods")[0]["status"], "failed")
        self.assertFalse(self.store.query(
            "SELECT 1 FROM atomsync_state WHERE dataset = 'mods' "
            "AND published_run <> 0"))
        return line

    def test_cursor_path_that_never_matches_fails(self):
        """Stripe configured with a cursor_path that matches nothing
        (data.-1.id): page 1 is full, so the run fails naming the path
        instead of publishing 50 of 600 records with exit 0."""
        self.http_config("stripe")
        self.set_pagination("cursor_from_record: id, has_more_path: has_more",
                            "cursor_path: data.-1.id")
        self.refused("/stripe/mods?limit=50: page 1: a full page of 50 records "
                     "with no next cursor at 'data.-1.id' and nothing saying the "
                     "listing ended")
        self.assertEqual(len(page_log(self.server.stats())), 1)

    def test_typo_in_each_sequential_style_fails(self):
        cases = [("cursor_null_end", "cursor_path: pagination.next",
                  "cursor_path: pagination.nxt", "no next cursor at 'pagination.nxt'"),
                 ("next_url", "next_url_path: links.next, limit_param: pageSize, "
                  "limit: 50, total_path: meta.totalCount",
                  "next_url_path: links.nxt, limit_param: pageSize, limit: 50",
                  "no next URL at 'links.nxt'")]
        for style, old, new, needle in cases:
            with self.subTest(style=style):
                self.http_config(style)
                self.set_pagination(old, new)
                self.refused("page 1: a full page of 50 records with " + needle)

    def test_link_header_missing_on_a_full_page_fails(self):
        self.http_config("link_header")
        self.set_pagination("total_path: 'header:X-Total-Count'", "concurrency: 1")
        self.set_pagination("concurrency: 1}", "}")
        body = json.dumps(self.server.records()[:50])
        self.server.faults({"kind": "invalid_json", "body": body, "match": {"page": 1}})
        self.refused("page 1: a full page of 50 records with no Link header")

    def test_full_last_page_with_a_null_cursor_is_the_end(self):
        """600 records in pages of 50: the last page is full and its cursor
        is null: the API said the listing ended."""
        self.http_config("cursor_null_end")
        p = self.atomsync("run", check=OK)
        self.assertIn("600 seen, 600 inserted", p.stdout)

    def test_has_more_path_that_never_matches_fails(self):
        self.http_config("stripe")
        self.set_pagination("has_more_path: has_more", "has_more_path: hasMore")
        self.refused("page 1: nothing at 'hasMore' (has_more_path), not true or false")

    def test_stop_path_makes_a_repeated_cursor_the_end(self):
        """Zendesk may hand back the cursor it was asked with on the last
        page; with end_of_stream true that is the end.  Without stop_path the
        same page is a listing that does not advance."""
        recs = self.server.records()
        own = base64.urlsafe_b64encode(b"o:550").decode().rstrip("=")
        body = json.dumps({"mods": recs[550:], "after_cursor": own,
                           "end_of_stream": True})
        self.server.faults({"kind": "invalid_json", "body": body, "match": {"page": 12}})
        self.http_config("zendesk")
        p = self.atomsync("run", check=OK)
        self.assertIn("600 seen, 600 inserted", p.stdout)
        self.assertEqual(self.rows(), expected_rows(recs))
        self.server.reset()
        self.http_config("zendesk", name="mods2")
        self.set_pagination(", stop_path: end_of_stream", "")
        p = self.atomsync("run", check=FAILED)
        self.assertIn("page 12: the next cursor is this page's own",
                      self.error_line(p, "mods2"))

    def test_has_more_true_without_a_cursor_fails(self):
        self.http_config("zendesk")
        self.set_pagination("stop_path: end_of_stream", "has_more_path: more")
        body = json.dumps({"mods": self.server.records()[:50], "after_cursor": None,
                           "more": True})
        self.server.faults({"kind": "invalid_json", "body": body, "match": {"page": 1}})
        self.refused("page 1: 'more' says more records follow, but the page has "
                     "no next cursor at 'after_cursor'")


@for_each_store
class HttpPostTest(HttpCase):
    """method: POST with a JSON body: {page_cursor} is the page cursor (its
    key left out on the first page), {limit} the page size as a number, a
    GraphQL errors array in a 200 is a failed page (invariant 2)."""

    def test_graphql_bodies(self):
        self.http_config("graphql")
        self.atomsync("run", check=OK)
        bodies = [e["body"] for e in page_log(self.server.stats())]
        self.assertEqual(len(bodies), 12)
        self.assertEqual(bodies[0]["variables"], {"first": 50})
        self.assertIn("items(first: $first", bodies[0]["query"])
        self.assertEqual(bodies[1]["variables"],
                         {"first": 50, "after": base64.urlsafe_b64encode(
                             b"o:50").decode().rstrip("=")})
        self.assertEqual(self.rows(), expected_rows(self.server.records()))

    def test_notion_first_page_has_no_start_cursor(self):
        self.http_config("notion")
        self.atomsync("run", check=OK)
        bodies = [e["body"] for e in page_log(self.server.stats())]
        self.assertEqual(bodies[0], {"page_size": 50})
        self.assertTrue(all(b["start_cursor"] for b in bodies[1:]))

    def test_graphql_errors_fail_the_page(self):
        self.http_config("graphql")
        with open(self.path("atomsync.yml")) as f:
            text = f.read()
        with open(self.path("atomsync.yml"), "w") as f:
            f.write(text.replace("{ items(first:", "{ itemz(first:"))
        p = self.atomsync("run", check=FAILED)
        self.assertIn("/graphql: page 1: the API returned 1 error: Field 'items' "
                      "must be selected", self.error_line(p))
        self.assertFalse(self.store.query(
            "SELECT 1 FROM atomsync_state WHERE published_run <> 0"))

    def test_errors_with_partial_data_fail(self):
        """A GraphQL answer holding data and errors is not a complete page."""
        recs = self.server.records()
        body = json.dumps({"data": {"items": {"nodes": recs[50:100], "pageInfo": {
            "endCursor": "x", "hasNextPage": True}}},
            "errors": [{"message": "timeout resolving field 'score'"}]})
        self.server.faults({"kind": "invalid_json", "body": body, "match": {"page": 2}})
        self.http_config("graphql")
        p = self.atomsync("run", check=FAILED)
        self.assertIn("page 2: the API returned 1 error: timeout resolving field "
                      "'score'", self.error_line(p))


@for_each_store
class HttpConcurrencyTest(HttpCase):

    def test_concurrency_is_used_and_page_order_kept(self):
        """Four pages in flight, and still the engine sees pages in order:
        page 3 (fast) repeats id 100 of page 2 (slow) with another name, and
        the later page must win."""
        recs = self.server.records()
        page3 = [dict(r) for r in recs[100:150]]
        page3[0] = dict(recs[99], name="from page 3")          # id 100 again
        body = json.dumps({"data": page3, "pagination": {
            "index": 100, "pageSize": 50, "resultCount": 50, "totalCount": 600}})
        self.server.faults(
            {"kind": "latency", "ms": 60, "match": {}},
            {"kind": "latency", "ms": 400, "match": {"page": 2}},
            {"kind": "invalid_json", "body": body, "match": {"page": 3}})
        self.http_config("offset", http="        concurrency: 4\n")
        p = self.atomsync("run", check=OK)
        self.assertIn("1 duplicates", p.stdout)
        st = self.server.stats()
        self.assertEqual(st["max_in_flight"], 4)
        rows = {r[0]: r for r in self.rows()}
        self.assertEqual(rows[100][1], "from page 3")
        self.assertNotIn(101, rows)
        self.assertEqual(len(rows), 599)
        # while page 2 was still on the wire, pages after it were fetched
        log = page_log(st)
        t2 = next(e["t"] for e in log if e["page"] == 2)
        self.assertTrue(any(e["page"] >= 6 and e["t"] < t2 + 0.35 for e in log))

    def test_window_is_bounded(self):
        """With one slow page the source holds at most 2 x concurrency pages:
        no page beyond head + 2 x concurrency is asked for until the head
        arrives."""
        self.server.faults({"kind": "latency", "ms": 800, "match": {"page": 2}})
        self.http_config("offset", http="        concurrency: 2\n")
        self.atomsync("run", check=OK)
        log = page_log(self.server.stats())
        t2 = next(e["t"] for e in log if e["page"] == 2)
        before_head = [e["page"] for e in log if e["t"] < t2 + 0.7]
        self.assertLessEqual(max(before_head), 2 + 2 * 2 - 1, before_head)

    def test_rate_limit_is_one_bucket(self):
        """rate_limit 10/s with concurrency 4: in any one-second window the
        server sees at most 10 requests (+ the burst of 1), and the run
        takes as long as the rate says, no longer."""
        self.server.catalog(records=1250, seed=1)
        self.http_config("page", http="        concurrency: 4\n"
                         "        rate_limit: 10/s\n")
        self.atomsync("run", check=OK)
        ts = sorted(self.server.stats()["timestamps"])
        self.assertEqual(len(ts), 25)
        # The server stamps a request when a thread of its own takes it:
        # the first requests, on new connections, are stamped late when
        # the machine is busy, which shortens the span by tens of ms.
        slack = 0.1
        self.assertGreaterEqual(ts[-1] - ts[0], (25 - 1) / 10.0 - slack)
        self.assertLess(ts[-1] - ts[0], (25 - 1) / 10.0 + 0.5)
        for i, t in enumerate(ts):
            in_window = [u for u in ts[i:] if u < t + 1.0]
            self.assertLessEqual(len(in_window), 11)
        # 600/min is the same rate written another way
        self.server.reset()
        self.server.catalog(records=300, seed=1)
        self.http_config("page", http="        concurrency: 4\n"
                         "        rate_limit: 600/min\n        rate_burst: 2\n",
                         name="mods2")
        self.atomsync("run", check=OK)
        ts = sorted(self.server.stats()["timestamps"])
        self.assertGreaterEqual(ts[-1] - ts[0], (6 - 2) / 10.0 - slack)

    def test_429_lowers_concurrency(self):
        """A 429 halves the concurrency (8 -> 4), Retry-After pauses every
        request, and the run still completes."""
        self.server.catalog(records=1200, seed=1)
        self.server.faults(
            {"kind": "latency", "ms": 100, "match": {}},
            {"kind": "status", "status": 429, "retry_after": 1,
             "match": {"page": 6}, "times": 1})
        self.http_config("offset", http="        concurrency: 8\n")
        p = self.atomsync("-v", "run", check=OK)
        self.assertIn("concurrency 8 -> 4", p.stderr)
        log = page_log(self.server.stats())
        t429 = next(e["t"] for e in log if e["status"] == 429)
        after = [e["t"] for e in log if e["t"] > t429 + 0.5]
        # Retry-After 1 s: nothing starts for a second after the 429
        self.assertGreaterEqual(after[0] - t429, 0.95)
        # then at most 4 requests start together (8 did before)
        first_burst = [t for t in after if t < after[0] + 0.05]
        self.assertLessEqual(len(first_burst), 4)
        self.assertEqual(self.rows(), expected_rows(self.server.records()))


@for_each_store
class HttpResumeTest(HttpCase):

    def test_kill_9_then_resume_fetches_only_the_rest(self):
        """Invariant 4: kill -9 mid-run; the next run resumes after the last
        committed page, asks only for the pages after it, and publishes what
        an uninterrupted run publishes."""
        self.server.faults({"kind": "latency", "ms": 40, "match": {}})
        self.http_config("offset", dataset="    batch_size: 20\n",
                         http="        concurrency: 2\n")
        # 10 records a page: 60 pages
        with open(self.path("atomsync.yml")) as f:
            text = f.read().replace("limit: 50", "limit: 10")
        with open(self.path("atomsync.yml"), "w") as f:
            f.write(text)
        run_and_kill(self, self.server, 30)
        cp = self.store.query("SELECT checkpoint FROM atomsync_state "
                              "WHERE dataset = 'mods'")[0][0]
        resume_page = json.loads(cp)["page"]
        self.assertGreater(resume_page, 1)
        self.server.reset()
        p = self.atomsync("run", check=OK)
        self.assertIn("resumed run 1", p.stdout)
        by_page = self.server.stats()["by_page"]
        self.assertEqual(sorted(int(k) for k in by_page),
                         list(range(resume_page, 61)))
        self.assertEqual(set(by_page.values()), {1})
        self.assertEqual(self.rows(), expected_rows(self.server.records()))
        # The same table as an uninterrupted run of the same catalog.
        other = self.path("other.yml")
        with open(other, "w") as f:
            f.write(text.replace("  mods:", "  mods2:"))
        self.atomsync("-c", other, "run", check=OK)
        self.assertEqual(self.rows("mods2"), self.rows("mods"))

    def test_failed_run_resumes_from_its_last_page(self):
        self.http_config("cursor", dataset="    batch_size: 50\n")
        self.server.faults({"kind": "status", "status": 404, "match": {"page": 7}})
        self.atomsync("run", check=FAILED)
        self.server.faults()
        self.server.reset()
        p = self.atomsync("run", check=OK)
        self.assertIn("resumed run 1", p.stdout)
        pages = sorted(int(k) for k in self.server.stats()["by_page"])
        self.assertEqual(pages[0], 7)
        self.assertEqual(self.rows(), expected_rows(self.server.records()))


@for_each_store
class HttpIncrementalTest(HttpCase):

    def test_cursor_param_gets_the_saved_cursor(self):
        """Invariant 8: the first run has no cursor (the param is left out);
        the next one sends the published cursor, URL-encoded."""
        self.http_config("offset", dataset="    mode: incremental\n"
                         "    cursor: updatedAt\n",
                         http="        params: {gameId: 1, updatedSince: \"{cursor}\"}\n"
                         "        concurrency: 4\n")
        self.atomsync("run", check=OK)
        log = page_log(self.server.stats())
        self.assertTrue(all("updatedSince" not in e["query"] for e in log))
        cursor = max(r["updatedAt"] for r in self.server.records())
        saved = self.store.query("SELECT cursor FROM atomsync_state "
                                 "WHERE dataset = 'mods'")[0][0]
        self.assertEqual(instant(saved), instant(cursor))
        self.server.catalog(mutate={"update": [5, 77, 300]})
        self.server.reset()
        p = self.atomsync("run", check=OK)
        self.assertIn("3 seen, 0 inserted, 3 updated", p.stdout)
        log = page_log(self.server.stats())
        self.assertEqual(len(log), 1)
        q = parse_qs(log[0]["query"])
        self.assertEqual(q["updatedSince"], [saved])
        self.assertIn("updatedSince=" + quote(saved, safe=""), log[0]["query"])
        self.assertEqual(self.rows(), expected_rows(self.server.records()))


@for_each_store
class HttpKeyedTest(HttpCase):
    """records: items.* takes the values of an object keyed by id as the
    records, record_key_as: id puts the key into each."""

    def keyed_config(self, records="items.*", extra="        record_key_as: id\n"):
        self.config("store: {store}\n"
                    "datasets:\n"
                    "  mods:\n"
                    "    key: [id]\n"
                    "    columns: {id: {type: text}, name: {type: text}, "
                    "updatedAt: {type: timestamp}}\n"
                    "    source:\n"
                    "      http:\n"
                    "        url: %s/keyed/mods\n"
                    "        records: %s\n"
                    "%s"
                    "        pagination: {style: page, page_param: page, limit_param: "
                    "pageSize, limit: 50, total_path: pagination.totalCount}\n"
                    "        retry: {attempts: 2, initial: 10ms, max: 20ms}\n"
                    % (self.server.base, records, extra))

    def want(self):
        return sorted((str(r["id"]), r["name"]) for r in self.server.records())

    def test_keyed_records(self):
        self.keyed_config()
        p = self.atomsync("run", check=OK)
        self.assertIn("600 seen, 600 inserted", p.stdout)
        self.assertEqual(sorted(self.store.rows("mods", ["id", "name"])), self.want())
        # records_from: values is the same thing spelled out
        self.server.catalog(mutate={"update": [9], "delete": [10]})
        self.keyed_config("items", "        records_from: values\n"
                          "        record_key_as: id\n")
        p = self.atomsync("run", check=OK)
        self.assertIn("599 seen, 0 inserted, 1 updated, 598 unchanged, 1 deleted",
                      p.stdout)
        self.assertEqual(sorted(self.store.rows("mods", ["id", "name"])), self.want())

    def test_without_record_key_as_the_key_column_is_missing(self):
        self.keyed_config(extra="")
        p = self.atomsync("run", check=FAILED)
        self.assertIn("page 1 item 1", p.stderr)

    def test_missing_object_fails(self):
        """Invariant 2: a page without the record object publishes nothing."""
        self.keyed_config()
        self.server.faults({"kind": "missing_records", "match": {"page": 3}})
        p = self.atomsync("run", check=FAILED)
        self.assertIn("page 3: no record object at 'items'", self.error_line(p))
        self.assertFalse(self.store.query(
            "SELECT 1 FROM atomsync_state WHERE published_run <> 0"))


@for_each_store
class HttpPartitionsTest(HttpCase):
    """partitions: an offset listing capped at offset + limit <= 200
    (CurseForge caps at 10,000) synced in one run, one partition per
    category; checkpoints know the partition (invariant 4)."""
    server_args = ("--max-offset", "200")
    CATS = "{param: categoryId, values: [%s]}" % ", ".join(str(i) for i in range(1, 21))

    def part_config(self, partitions=CATS, dataset="", limit=50, name="mods"):
        self.http_config("offset", name=name, dataset=dataset,
                         http="        concurrency: 2\n" +
                         ("        partitions: %s\n" % partitions if partitions else ""))
        if limit != 50:
            with open(self.path("atomsync.yml")) as f:
                text = f.read().replace("limit: 50", "limit: %d" % limit)
            with open(self.path("atomsync.yml"), "w") as f:
                f.write(text)

    def test_ceiling_is_named(self):
        self.part_config(partitions=None)
        p = self.atomsync("run", check=FAILED)
        # With two pages in flight, page 5 (offset 200) or page 6 (offset
        # 250) may fail first; either is past the ceiling and named so.
        m = re.search(r"page (\d+): HTTP 400: \{\"error\":\"index \+ pageSize must "
                      r"be less than or equal to 200\"\} \(at offset (\d+): the API "
                      r"may not list past offset \+ limit (\d+); split the listing "
                      r"with partitions\)", self.error_line(p))
        self.assertIsNotNone(m, self.error_line(p))
        page, offset, past = (int(x) for x in m.groups())
        self.assertIn(page, (5, 6))
        self.assertEqual((offset, past), ((page - 1) * 50, (page - 1) * 50 + 50))

    def test_partitions_in_one_run(self):
        self.part_config(limit=10)
        p = self.atomsync("run", check=OK)
        self.assertIn("600 seen, 600 inserted", p.stdout)
        self.assertEqual(self.rows(), expected_rows(self.server.records()))
        cats = {parse_qs(e["query"])["categoryId"][0] for e in page_log(self.server.stats())}
        self.assertEqual(cats, {str(i) for i in range(1, 21)})
        self.assertEqual(len(self.runs("mods")), 1)
        # the list form, and a second run publishes nothing new
        self.part_config("[%s]" % ", ".join("{categoryId: %d}" % i for i in range(1, 21)))
        p = self.atomsync("run", check=OK)
        self.assertIn("600 seen, 0 inserted, 0 updated, 600 unchanged", p.stdout)

    def test_failure_in_a_partition_publishes_nothing(self):
        """Invariants 2 and 4: a 404 in the seventh partition fails the
        run with the six before it staged; nothing is published, and the
        next run resumes at that partition.  The fault is matched by the
        partition's parameter, not by the arrival number of the request:
        with concurrency 2 each partition also sends a speculative page 2,
        and the order in which the server counts them varies."""
        self.part_config()
        self.atomsync("run", check=OK)
        before = self.store.full_rows("mods")
        self.server.catalog(mutate={"update": [1, 2, 3]})
        self.server.reset()
        self.server.faults({"kind": "status", "status": 404,
                            "match": {"page": 1, "query": {"categoryId": "7"}}})
        p = self.atomsync("run", check=FAILED)
        line = self.error_line(p)
        self.assertIn("categoryId=7&", line)
        self.assertIn("page 1: HTTP 404", line)
        self.assertEqual(self.store.full_rows("mods"), before)
        cp = json.loads(self.store.query("SELECT checkpoint FROM atomsync_state "
                                         "WHERE dataset = 'mods'")[0][0])
        self.assertEqual((cp["part"], cp["page"]), (6, 1))
        self.server.faults()
        self.server.reset()
        p = self.atomsync("run", check=OK)
        self.assertIn("0 inserted, 3 updated, 597 unchanged", p.stdout)
        cats = {int(parse_qs(e["query"])["categoryId"][0])
                for e in page_log(self.server.stats())}
        self.assertEqual(cats, set(range(7, 21)))
        self.assertEqual(self.rows(), expected_rows(self.server.records()))

    def test_kill_9_then_resume_by_partition(self):
        self.server.faults({"kind": "latency", "ms": 40, "match": {}})
        self.part_config(limit=10, dataset="    batch_size: 20\n")
        run_and_kill(self, self.server, 40)
        cp = json.loads(self.store.query("SELECT checkpoint FROM atomsync_state "
                                         "WHERE dataset = 'mods'")[0][0])
        self.assertGreater(cp["part"], 0)
        self.server.reset()
        p = self.atomsync("run", check=OK)
        self.assertIn("(resumed run ", p.stdout)
        log = page_log(self.server.stats())
        cats = {int(parse_qs(e["query"])["categoryId"][0]) for e in log}
        self.assertEqual(min(cats), cp["part"] + 1)
        self.assertEqual(self.rows(), expected_rows(self.server.records()))
        # the same table as an uninterrupted run
        self.server.faults()
        self.part_config(limit=10, name="mods2")
        self.atomsync("run", check=OK)
        self.assertEqual(self.rows("mods2"), self.rows("mods"))


@for_each_store
class HttpCursorFormatTest(HttpCase):
    """cursor_format writes {cursor} for APIs that take epoch seconds,
    milliseconds or ISO 8601 without fractions; rounded down, so records
    at the cursor are fetched again rather than skipped (invariant 8)."""

    def test_formats(self):
        import math
        cases = [("epoch", "updatedSince",
                  lambda saved: str(math.floor(instant(saved)))),
                 ("epoch_ms", "updatedSinceMs",
                  lambda saved: str(math.floor(instant(saved) * 1000))),
                 ("iso8601_seconds", "updatedSince",
                  lambda saved: datetime.fromtimestamp(math.floor(instant(saved)),
                                                       timezone.utc)
                  .strftime("%Y-%m-%dT%H:%M:%SZ"))]
        for fmt, param, want in cases:
            with self.subTest(fmt=fmt):
                self.server.catalog(records=RECORDS, seed=1)
                name = "m_" + fmt
                self.http_config("offset", name=name,
                                 dataset="    mode: incremental\n    cursor: updatedAt\n",
                                 http="        params: {%s: \"{cursor}\"}\n"
                                 "        cursor_format: %s\n" % (param, fmt))
                self.atomsync("run", check=OK)
                saved = self.store.query("SELECT cursor FROM atomsync_state "
                                         "WHERE dataset = '%s'" % name)[0][0]
                self.server.catalog(mutate={"update": [5, 77]})
                self.server.reset()
                p = self.atomsync("run", check=OK)
                self.assertIn("2 seen, 0 inserted, 2 updated", p.stdout)
                q = parse_qs(page_log(self.server.stats())[0]["query"])
                self.assertEqual(q[param], [want(saved)])


SECRET_HEADER = "hdr-SECRET-5f1e9c"
SECRET_PARAM = "prm-SECRET-a7d3"


@for_each_store
class HttpSecretsTest(HttpCase):
    server_args = ("--require-header", "X-Api-Key=" + SECRET_HEADER,
                   "--record-header", "X-Api-Key")

    def secret_config(self, style="next_url"):
        self.http_config(style, http=(
            "        headers: {X-Api-Key: \"${API_KEY}\"}\n"
            "        params: {gameId: 1, token: \"${API_TOKEN}\"}\n"
            "        concurrency: 2\n"))

    def env(self, key=SECRET_HEADER):
        return {"API_KEY": key, "API_TOKEN": SECRET_PARAM}

    def assert_clean(self, *texts):
        for t in texts:
            self.assertNotIn(SECRET_HEADER, t)
            self.assertNotIn(SECRET_PARAM, t)

    def store_bytes(self):
        """The bookkeeping tables as text, and the SQLite files' bytes."""
        out = [repr(self.store.query("SELECT * FROM atomsync_runs")),
               repr(self.store.query("SELECT * FROM atomsync_state"))]
        for name in os.listdir(self.dir):
            if name.startswith("store"):
                with open(self.path(name), "rb") as f:
                    out.append(f.read().decode("latin-1"))
        return "".join(out)

    def test_secrets_never_appear(self):
        self.secret_config()
        env = self.env()
        metrics = self.path("metrics.prom")
        outputs = []
        # A failing run: the error names the URL with the token masked.
        self.server.faults({"kind": "status", "status": 404, "match": {"page": 3}})
        p = self.atomsync("-v", "--metrics-file", metrics, "run", env=env, check=FAILED)
        outputs += [p.stdout, p.stderr]
        line = self.error_line(p)
        self.assertIn("token=***", line)
        self.assertIn("page 3: HTTP 404", line)
        p = self.atomsync("run", "--json", env=env, check=FAILED)
        outputs += [p.stdout, p.stderr]
        # A run through the whole next_url chain (the server echoes the
        # token into every next link) and the checkpoints it commits.
        self.server.faults()
        p = self.atomsync("-v", "--metrics-file", metrics, "run", "--json", env=env,
                          check=OK)
        outputs += [p.stdout, p.stderr]
        for args in (["status", "--json"], ["runs", "mods", "--json"], ["status"],
                     ["runs", "mods"]):
            p = self.atomsync(*args, env=env, check=OK)
            outputs += [p.stdout, p.stderr]
        # A wrong key: 401, named without the key.
        p = self.atomsync("run", env=self.env("wrong-key-value"), check=FAILED)
        self.assertIn("HTTP 401", self.error_line(p))
        outputs += [p.stdout, p.stderr]
        with open(metrics) as f:
            outputs.append(f.read())
        outputs.append(self.store_bytes())
        for name in os.listdir(self.dir):
            if name.endswith(".jsonl"):
                outputs.append(self.read(name))
        self.assert_clean(*outputs)
        # ... while the server did get them.
        st = self.server.stats()
        self.assertIn(SECRET_HEADER, st["headers_seen"]["x-api-key"])
        self.assertTrue(any("token=" + SECRET_PARAM in e["query"] for e in st["log"]))
        self.assertEqual(len(self.rows()), 600)

    def test_secret_in_a_killed_runs_checkpoint(self):
        """The next_url checkpoint keeps the next URL without the token, and
        a resumed run puts it back."""
        self.secret_config()
        self.server.faults({"kind": "status", "status": 500, "match": {"page": 5}})
        self.atomsync("run", env=self.env(), check=FAILED)
        cp = self.store.query("SELECT checkpoint FROM atomsync_state "
                              "WHERE dataset = 'mods'")[0][0]
        self.assertIn("after=", cp)
        self.assert_clean(cp, self.store_bytes())
        self.server.faults()
        self.server.reset()
        self.atomsync("run", env=self.env(), check=OK)
        log = page_log(self.server.stats())
        self.assertTrue(all("token=" + SECRET_PARAM in e["query"] for e in log))
        self.assertEqual(len(self.rows()), 600)


URL_PASS = "urlPASS-4b7d1e"
URL_KEY = "qKEY-81f3a0"


@for_each_store
class HttpUrlSecretsTest(HttpCase):
    """Issue 18.1: ${VAR} as the url's (and item_url's) userinfo password or
    in its query string is a secret like a header's: masked in stderr,
    --json, status and runs (showing a failed run's error), verify,
    atomsync_runs.error (both stores), the metrics file, the reject file
    and the checkpoint, while the server gets it on every page."""
    server_args = ("--require-header", "Authorization=Basic " +
                   base64.b64encode(("reader:" + URL_PASS).encode()).decode())

    def url_config(self, name="mods", dataset=""):
        item = self.server.base.replace("http://", "http://reader:${URL_PASS}@")
        self.http_config("next_url", name=name, dataset=dataset,
                         http=("        concurrency: 2\n"
                               "        item_url: \"%s/v1/mods/{id}?key=${URL_KEY}\"\n"
                               % item))
        with open(self.path("atomsync.yml")) as f:
            text = f.read()
        url = self.server.base + "/next_url/mods"
        self.assertIn(url + "\n", text)
        text = text.replace(url + "\n", '"%s?key=${URL_KEY}"\n' % url.replace(
            "http://", "http://reader:${URL_PASS}@"))
        with open(self.path("atomsync.yml"), "w") as f:
            f.write(text)

    env = {"URL_PASS": URL_PASS, "URL_KEY": URL_KEY}

    def store_bytes(self):
        out = [repr(self.store.query("SELECT * FROM atomsync_runs")),
               repr(self.store.query("SELECT * FROM atomsync_state"))]
        for name in os.listdir(self.dir):
            if name.startswith("store"):
                with open(self.path(name), "rb") as f:
                    out.append(f.read().decode("latin-1"))
        return "".join(out)

    def test_url_secrets_never_appear(self):
        self.url_config()
        metrics = self.path("metrics.prom")
        outputs = []
        self.server.faults({"kind": "status", "status": 404, "match": {"page": 3}})
        p = self.atomsync("-v", "--metrics-file", metrics, "run", env=self.env,
                          check=FAILED)
        outputs += [p.stdout, p.stderr]
        line = self.error_line(p)
        self.assertIn("reader:***@127.0.0.1", line)
        self.assertIn("key=***", line)
        self.assertIn("page 3: HTTP 404", line)
        p = self.atomsync("run", "--json", env=self.env, check=FAILED)
        outputs += [p.stdout, p.stderr]
        # The failed run's error as status and runs show it.
        for args in (["status", "--json"], ["status"], ["runs", "mods", "--json"],
                     ["runs", "mods"]):
            p = self.atomsync(*args, env=self.env, check=OK)
            self.assertIn("page 3: HTTP 404", p.stdout)
            outputs += [p.stdout, p.stderr]
        # A failed run's checkpoint, then the resumed run to the end.
        self.server.faults({"kind": "status", "status": 500, "match": {"page": 5}})
        self.atomsync("run", env=self.env, check=FAILED)
        cp = self.store.query("SELECT checkpoint FROM atomsync_state "
                              "WHERE dataset = 'mods'")[0][0]
        self.assertIn("after=", cp)
        self.server.faults()
        self.server.reset()
        p = self.atomsync("-v", "--metrics-file", metrics, "run", "--json",
                          env=self.env, check=OK)
        outputs += [p.stdout, p.stderr]
        self.assertEqual(json.loads(cp)["page"],
                         min(int(k) for k in self.server.stats()["by_page"]))
        for args in (["status", "--json"], ["runs", "mods", "--json"], ["status"],
                     ["runs", "mods"]):
            p = self.atomsync(*args, env=self.env, check=OK)
            outputs += [p.stdout, p.stderr]
        log = page_log(self.server.stats())
        # verify re-fetches sample rows through item_url: failing items are
        # named by their URL, in text and --json.
        self.server.faults({"kind": "status", "status": 500, "match": {"item": True}})
        for args in (["verify", "mods", "--sample", "3"],
                     ["verify", "mods", "--sample", "3", "--json"]):
            p = self.atomsync(*args, env=self.env)
            self.assertIn("HTTP 500", p.stdout + p.stderr)
            self.assertIn("key=***", p.stdout + p.stderr)
            outputs += [p.stdout, p.stderr]
        self.server.faults()
        # A record that is not an object, in another dataset: the reject
        # file names the page's URL.
        self.server.reset()
        self.url_config(name="rej", dataset="    guard: {max_rejects: 1}\n")
        recs = self.server.records()
        body = json.dumps({"data": [5] + recs[1:50], "links": {"next": None},
                           "meta": {"totalCount": 50}})
        self.server.faults({"kind": "invalid_json", "body": body, "match": {"page": 1}})
        p = self.atomsync("-v", "run", env=self.env, check=OK)
        self.assertIn("1 rejected", p.stdout)
        outputs += [p.stdout, p.stderr]
        self.assertTrue(os.path.exists(self.path("rej.rejects.jsonl")))
        with open(metrics) as f:
            outputs.append(f.read())
        outputs.append(self.store_bytes())
        for name in os.listdir(self.dir):
            if name.endswith(".jsonl"):
                outputs.append(self.read(name))
        self.assertTrue(any("reader:***@" in o for o in outputs))
        for o in outputs:
            self.assertNotIn(URL_PASS, o)
            self.assertNotIn(URL_KEY, o)
        # ... while the server got both on every page (401 otherwise).
        self.assertTrue(log and all("key=" + URL_KEY in e["query"] for e in log))
        self.assertNotIn("401", self.server.stats()["statuses"])
        self.assertEqual(len(self.rows()), 600)


CLIENT_SECRET = "csec-77a1d0e4"


class OAuthCase(HttpCase):
    server_args = ("--oauth", "cid-1:" + CLIENT_SECRET, "--oauth-expires-in", "2")
    client_auth = ""
    env = {"CLIENT_SECRET": CLIENT_SECRET}

    def oauth_config(self, style="offset", dataset=""):
        self.http_config(style, dataset=dataset, http=(
            "        auth:\n"
            "          oauth2:\n"
            "            token_url: %s/oauth/token\n"
            "            client_id: cid-1\n"
            "            client_secret: \"${CLIENT_SECRET}\"\n"
            "            scopes: [read:mods, read:stats]\n"
            "            audience: https://api.example\n"
            "%s" % (self.server.base, self.client_auth)))

    def assert_clean(self, outputs):
        tokens = self.server.stats()["tokens_issued"]
        self.assertTrue(tokens)
        for o in outputs:
            self.assertNotIn(CLIENT_SECRET, o)
            for t in tokens:
                self.assertNotIn(t, o)


@for_each_store
class HttpOAuthTest(OAuthCase):
    """auth.oauth2 (client credentials, the secret as HTTP Basic): a token
    before the first page, renewed before expires_in (2 s here) without a
    401, renewed once on a 401; the token and the secret are printed
    nowhere."""

    def test_token_fetched_renewed_and_never_printed(self):
        self.server.faults({"kind": "latency", "ms": 150, "match": {}})
        self.oauth_config()
        p = self.atomsync("-v", "run", "--json", env=self.env, check=OK)
        st = self.server.stats()
        self.assertEqual(self.rows(), expected_rows(self.server.records()))
        # 12 pages of 150 ms: 1.8 s, past the renewal point (1.6 s)
        self.assertGreaterEqual(st["token_requests"], 2)
        self.assertNotIn("401", st["statuses"])
        form = st["token_forms"][0]
        self.assertEqual(form, {"grant_type": "client_credentials",
                                "scope": "read:mods read:stats",
                                "audience": "https://api.example"})
        outputs = [p.stdout, p.stderr]
        for args in (["status", "--json"], ["runs", "mods", "--json"]):
            q = self.atomsync(*args, env=self.env, check=OK)
            outputs += [q.stdout, q.stderr]
        outputs.append(repr(self.store.query("SELECT * FROM atomsync_runs")))
        self.assert_clean(outputs)

    def test_401_renews_the_token_once(self):
        self.oauth_config()
        self.server.faults({"kind": "status", "status": 401, "match": {"page": 4},
                            "times": 1})
        p = self.atomsync("-v", "run", env=self.env, check=OK)
        self.assertIn("HTTP 401: renewing the access token", p.stderr)
        st = self.server.stats()
        self.assertEqual(st["token_requests"], 2)
        self.assertEqual(st["by_page"]["4"], 2)
        self.assertEqual(self.rows(), expected_rows(self.server.records()))

    def test_401_twice_fails_and_publishes_nothing(self):
        """Invariant 2: a 401 that a new token does not cure fails the run."""
        self.oauth_config()
        self.server.faults({"kind": "status", "status": 401, "match": {"page": 4}})
        p = self.atomsync("run", env=self.env, check=FAILED)
        self.assertIn("page 4: HTTP 401", self.error_line(p))
        self.assertEqual(self.server.stats()["by_page"]["4"], 2)
        self.assertFalse(self.store.query(
            "SELECT 1 FROM atomsync_state WHERE published_run <> 0"))
        self.assert_clean([p.stdout, p.stderr,
                           repr(self.store.query("SELECT * FROM atomsync_runs"))])

    def test_wrong_secret_fails_before_the_first_page(self):
        self.oauth_config()
        p = self.atomsync("run", env={"CLIENT_SECRET": "wrong-secret"}, check=FAILED)
        self.assertIn("oauth2 token from %s/oauth/token: HTTP 401: invalid_client"
                      % self.server.base, self.error_line(p))
        self.assertNotIn("wrong-secret", p.stderr)
        self.assertEqual(page_log(self.server.stats()), [])


@for_each_store
class HttpOAuthBodyTest(OAuthCase):
    """client_auth: body puts client_id and client_secret in the form."""
    server_args = ("--oauth", "cid-1:" + CLIENT_SECRET, "--oauth-client-auth", "body")
    client_auth = "            client_auth: body\n"

    def test_secret_in_the_form(self):
        self.oauth_config("graphql")
        self.atomsync("run", env=self.env, check=OK)
        st = self.server.stats()
        self.assertEqual(st["token_requests"], 1)
        self.assertEqual(st["token_forms"][0]["client_secret"], CLIENT_SECRET)
        self.assertEqual(self.rows(), expected_rows(self.server.records()))


BEARER = "brr-TOKEN-5a9e"


@for_each_store
class HttpBearerTest(HttpCase):
    server_args = ("--require-header", "Authorization=Bearer " + BEARER)

    def test_bearer(self):
        self.http_config("cursor", http="        auth: {bearer: \"${TOKEN}\"}\n")
        p = self.atomsync("-v", "run", env={"TOKEN": BEARER}, check=OK)
        self.assertEqual(len(self.rows()), 600)
        p = self.atomsync("run", env={"TOKEN": BEARER + "x"}, check=FAILED)
        self.assertIn("page 1: HTTP 401", self.error_line(p))
        self.assertNotIn(BEARER, p.stderr)


@for_each_store
class HttpBasicTest(HttpCase):
    server_args = ("--require-header", "Authorization=Basic " +
                   base64.b64encode(b"svc:pw-BASIC-31c").decode())

    def test_basic(self):
        self.http_config("next_url", http="        auth: {basic: {user: svc, "
                         "password: \"${PW}\"}}\n")
        self.atomsync("run", env={"PW": "pw-BASIC-31c"}, check=OK)
        self.assertEqual(len(self.rows()), 600)
        p = self.atomsync("run", "--json", env={"PW": "pw-BASIC-31cz"}, check=FAILED)
        self.assertIn("HTTP 401", p.stdout + p.stderr)
        self.assertNotIn("pw-BASIC-31c", p.stdout + p.stderr)


class _TlsHandler(http.server.BaseHTTPRequestHandler):
    body = json.dumps({"data": [{"id": i, "name": "Addon %d" % i} for i in (1, 2, 3)],
                       "meta": {"totalCount": 3}}).encode()

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args):
        pass


@for_each_store
class HttpTlsTest(StoreTestCase):
    """TLS is verified unless tls_verify: false; ca_bundle names the CA."""

    @classmethod
    def setUpClass(cls):
        if not shutil.which("openssl"):
            raise unittest.SkipTest("openssl is not installed")
        cls.tls_dir = tempfile.mkdtemp(prefix="atomsync-tls-")
        cls.cert = os.path.join(cls.tls_dir, "cert.pem")
        key = os.path.join(cls.tls_dir, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                        "-keyout", key, "-out", cls.cert, "-days", "2",
                        "-subj", "/CN=127.0.0.1", "-addext",
                        "subjectAltName=IP:127.0.0.1"],
                       check=True, capture_output=True)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cls.cert, key)
        cls.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _TlsHandler)
        cls.httpd.socket = ctx.wrap_socket(cls.httpd.socket, server_side=True)
        cls.thread = threading.Thread(target=cls.httpd.serve_forever, daemon=True)
        cls.thread.start()
        cls.url = "https://127.0.0.1:%d/none/mods" % cls.httpd.server_address[1]

    @classmethod
    def tearDownClass(cls):
        cls.httpd.shutdown()
        cls.httpd.server_close()
        shutil.rmtree(cls.tls_dir, ignore_errors=True)

    def tls_config(self, extra=""):
        self.config("store: {store}\n"
                    "datasets:\n"
                    "  mods:\n"
                    "    key: [id]\n"
                    "    columns: {id: {type: integer}, name: {type: text}}\n"
                    "    source:\n"
                    "      http:\n"
                    "        url: %s\n"
                    "        records: data\n"
                    "        pagination: {style: none, total_path: meta.totalCount}\n"
                    "        retry: {attempts: 2, initial: 10ms, max: 20ms}\n"
                    "%s" % (self.url, extra))

    def test_verified_by_default(self):
        self.tls_config()
        p = self.atomsync("run", check=FAILED)
        line = [l for l in p.stderr.splitlines() if l.startswith("atomsync: mods:")]
        self.assertEqual(len(line), 1, p.stderr)
        self.assertIn(self.url + ": page 1: ", line[0])
        self.assertIn("certificate", line[0])

    def test_ca_bundle(self):
        self.tls_config("        ca_bundle: %s\n" % self.cert)
        self.atomsync("run", check=OK)
        self.assertEqual(sorted(self.store.rows("mods", ["id", "name"])),
                         [(1, "Addon 1"), (2, "Addon 2"), (3, "Addon 3")])

    def test_tls_verify_false(self):
        self.tls_config("        tls_verify: false\n")
        self.atomsync("run", check=OK)
        self.assertEqual(len(self.store.rows("mods", ["id"])), 3)


if __name__ == "__main__":
    unittest.main()
