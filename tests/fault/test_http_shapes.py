"""Every list shape of tests/fixtures/apiserver.py, configured as a user
would configure the API it imitates (docs/config.md), through the same
three trials:

- complete: one run syncs the whole catalog;
- faults: a 5xx, a 429, a 401 and a truncated body (and a page without its
  records) on a page mid-listing, past every retry: each fails the run with
  one line naming the page, publishes nothing (invariant 2) and leaves the
  run on record as failed (invariant 10); then the next run, through one
  429 that is retried, resumes from the last staged page and publishes the
  changed catalog (invariant 4);
- kill -9 mid-run: the next run resumes from the checkpoint and publishes
  the same table as an uninterrupted run (invariant 4).

The shapes are the 14 API imitations (GitHub, Stripe, Shopify, Slack,
Salesforce, Zendesk, Notion, HubSpot, JSON:API, CurseForge with
partitions, an updatedSince feed, an OAuth2 marketplace, records keyed by
id, GraphQL) and the server's plain styles.  Each class writes the table
API | config | result of what it saw to build/test-artifacts/.
"""

import json
import os
import signal
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import test_http as h  # noqa: E402  (ApiServer, helpers)
from atomsync_test import (FAILED, OK, ROOT, StoreTestCase,  # noqa: E402
                           for_each_store, spawn)

SECRET = "csec-shapes-91d2"
QUERY = "SELECT Id, Name, DownloadCount__c, Score__c, LastModifiedDate FROM Mod__c"
GRAPHQL_BODY = (
    "method: POST\n"
    "body:\n"
    "  query: \"query($first: Int!, $after: String) { items(first: $first, after: "
    "$after) { nodes { id name downloadCount score updatedAt } pageInfo { endCursor "
    "hasNextPage } } }\"\n"
    "  variables: {first: \"{limit}\", after: \"{page_cursor}\"}\n")
OAUTH = ("auth:\n"
         "  oauth2: {token_url: \"%(base)s/oauth/token\", client_id: market, "
         "client_secret: \"${CLIENT_SECRET}\", scopes: [listings:read]}\n")


def cols(idtype="integer", name="name", downloads="integer downloadCount",
         score="real score", updated="updatedAt", prefix="", idpath="id"):
    """The mapped columns: id, name, downloads, score, updatedAt."""
    def col(spec):
        typ, _, path = spec.partition(" ")
        return "{type: %s, path: %s%s}" % (typ, prefix, path)
    return ("      id: {type: %s, path: %s}\n"
            "      name: {type: text, path: %s%s}\n"
            "      downloads: %s\n"
            "      score: %s\n"
            "      updatedAt: {type: timestamp, path: %s%s}\n"
            % (idtype, idpath, prefix, name, col(downloads), col(score), prefix, updated))


# name -> API imitated, server, url path, http keys (YAML, one level), columns,
# dataset keys, the page a fault hits
SHAPES = {
    "github": ("GitHub REST (Link header)", "plain", "/link/mods",
               "headers: {Accept: application/vnd.github+json}\n"
               "pagination: {style: link_header, limit_param: per_page, limit: 50}\n",
               cols(), "", 3),
    "stripe": ("Stripe list (keyset, has_more)", "plain", "/stripe/mods",
               "records: data\n"
               "pagination: {style: cursor, cursor_param: starting_after, "
               "cursor_from_record: id, has_more_path: has_more, limit_param: limit, "
               "limit: 50}\n", cols(), "", 3),
    "shopify": ("Shopify REST Admin (page_info Link)", "plain", "/shopify/mods",
                "records: mods\n"
                "pagination: {style: link_header, limit_param: limit, limit: 50}\n",
                cols(), "", 3),
    "slack": ("Slack Web API (next_cursor, ok/error)", "plain", "/slack/mods",
              "records: members\n"
              "error_path: error\n"
              "error_retry: [ratelimited]\n"
              "pagination: {style: cursor, cursor_param: cursor, "
              "cursor_path: response_metadata.next_cursor, limit_param: limit, "
              "limit: 50}\n", cols(), "", 3),
    "salesforce": ("Salesforce query (nextRecordsUrl, done)", "plain",
                   "/salesforce/query?q=" + QUERY.replace(" ", "+"),
                   "headers: {Sforce-Query-Options: \"batchSize=50\"}\n"
                   "records: records\n"
                   "pagination: {style: next_url, next_url_path: nextRecordsUrl, "
                   "stop_path: done, total_path: totalSize}\n",
                   cols("text", "Name", "integer DownloadCount__c", "real Score__c",
                        "LastModifiedDate", idpath="Id"), "", 3),
    "zendesk": ("Zendesk cursor export (end_of_stream)", "plain", "/zendesk/mods",
                "records: mods\n"
                "pagination: {style: cursor, cursor_param: cursor, cursor_path: "
                "after_cursor, stop_path: end_of_stream, limit_param: per_page, "
                "limit: 50}\n", cols(), "", 3),
    "notion": ("Notion database query (POST)", "plain", "/notion/mods",
               "method: POST\n"
               "body: {page_size: \"{limit}\", start_cursor: \"{page_cursor}\"}\n"
               "records: results\n"
               "pagination: {style: cursor, cursor_path: next_cursor, "
               "has_more_path: has_more, limit: 50}\n", cols(), "", 3),
    "hubspot": ("HubSpot CRM v3 (paging.next.after)", "plain", "/hubspot/mods",
                "records: results\n"
                "pagination: {style: cursor, cursor_param: after, cursor_path: "
                "paging.next.after, limit_param: limit, limit: 50}\n",
                cols("text", "properties.name", "text properties.downloadcount",
                     "text properties.score"), "", 3),
    "jsonapi": ("JSON:API (links.next)", "plain", "/jsonapi/mods",
                "records: data\n"
                "pagination: {style: next_url, next_url_path: links.next, "
                "limit_param: \"page[size]\", limit: 50}\n",
                cols("text", "attributes.name", "integer attributes.downloadCount",
                     "real attributes.score", "attributes.updatedAt"), "", 3),
    "curseforge": ("CurseForge (offset ceiling 200, partitions)", "ceiling", "/v1/mods",
                   "params: {gameId: 1}\n"
                   "records: data\n"
                   "concurrency: 4\n"
                   "partitions: {param: categoryId, values: [%s]}\n"
                   "pagination: {style: offset, offset_param: index, limit_param: "
                   "pageSize, limit: 10, total_path: pagination.totalCount}\n"
                   % ", ".join(str(i) for i in range(1, 21)), cols(), "", 3),
    "updated_since": ("updatedSince feed (incremental, epoch)", "plain", "/page/mods",
                      "params: {updatedSince: \"{cursor}\"}\n"
                      "cursor_format: epoch\n"
                      "records: data\n"
                      "pagination: {style: page, page_param: page, limit_param: "
                      "pageSize, limit: 50}\n", cols(),
                      "    mode: incremental\n    cursor: updatedAt\n", 1),
    "oauth2": ("OAuth2 marketplace (client credentials)", "oauth", "/v1/mods",
               OAUTH + "records: data\n"
               "concurrency: 4\n"
               "pagination: {style: offset, offset_param: index, limit_param: pageSize, "
               "limit: 50, total_path: pagination.totalCount}\n", cols(), "", 3),
    "keyed": ("records keyed by id (items.*)", "plain", "/keyed/mods",
              "records: items.*\n"
              "record_key_as: id\n"
              "pagination: {style: page, page_param: page, limit_param: pageSize, "
              "limit: 50, total_path: pagination.totalCount}\n",
              cols("text"), "", 3),
    "graphql": ("GraphQL connection (POST)", "plain", "/graphql",
                GRAPHQL_BODY + "records: data.items.nodes\n"
                "pagination: {style: cursor, cursor_path: data.items.pageInfo.endCursor, "
                "has_more_path: data.items.pageInfo.hasNextPage, limit: 50}\n",
                cols(), "", 3),
    # The server's plain styles
    "offset": ("offset + total", "plain", "/offset/mods",
               "records: data\n"
               "concurrency: 4\n"
               "pagination: {style: offset, offset_param: index, limit_param: pageSize, "
               "limit: 50, total_path: pagination.totalCount}\n", cols(), "", 3),
    "page": ("page, no total (short page ends)", "plain", "/page/mods",
             "records: data\n"
             "pagination: {style: page, page_param: page, limit_param: pageSize, "
             "limit: 50}\n", cols(), "", 3),
    "cursor": ("opaque cursor + total", "plain", "/cursor/mods",
               "records: data\n"
               "pagination: {style: cursor, cursor_param: cursor, cursor_path: "
               "pagination.next, limit_param: pageSize, limit: 50, total_path: "
               "pagination.totalCount}\n", cols(), "", 3),
    "next_url": ("next URL in the body", "plain", "/next_url/mods",
                 "records: data\n"
                 "pagination: {style: next_url, next_url_path: links.next, "
                 "limit_param: pageSize, limit: 50}\n", cols(), "", 3),
    "none": ("one body, no pagination", "plain", "/none/mods",
             "records: data\n"
             "pagination: {style: none, total_path: meta.totalCount}\n", cols(), "", 1),
}

# fault, what the error line says, ... on an OAuth2 listing
FAULTS = [
    ({"kind": "status", "status": 503}, "HTTP 503 after 2 attempts"),
    ({"kind": "status", "status": 429, "retry_after": 0}, "HTTP 429 after 2 attempts"),
    ({"kind": "status", "status": 401}, "HTTP 401"),
    ({"kind": "truncate"}, "truncated body"),
    ({"kind": "missing_records"}, "record"),
]


def where(cp):
    """A checkpoint's page (and partition) in words."""
    part = ", partition %d" % (cp["part"] + 1) if "part" in cp else ""
    return "page %d%s" % (cp["page"], part)


def as_id(value):
    """A record id from its column (an integer, "7", or Salesforce's a0B...7)."""
    return int(value[3:]) if isinstance(value, str) and value.startswith("a0B") else int(value)


class ShapesTest(StoreTestCase):
    SERVERS = {"plain": (), "ceiling": ("--max-offset", "200"),
               "oauth": ("--oauth", "market:" + SECRET, "--oauth-expires-in", "2")}
    env = {"CLIENT_SECRET": SECRET}

    @classmethod
    def setUpClass(cls):
        cls.servers = {}
        for name, args in cls.SERVERS.items():
            cls.servers[name] = h.ApiServer(*args)
        cls.results = {}

    @classmethod
    def tearDownClass(cls):
        for server in cls.servers.values():
            server.stop()
        out = os.path.join(ROOT, "build", "test-artifacts")
        os.makedirs(out, exist_ok=True)
        lines = ["| shape | API | config | result |", "|---|---|---|---|"]
        for name, (api, _, path, http, _, _, _) in SHAPES.items():
            config = "`url: %s`; " % path + "; ".join(
                "`%s`" % l.strip() for l in http.splitlines())
            lines.append("| %s | %s | %s | %s |" % (
                name, api, config.replace("|", "\\|"),
                "; ".join(cls.results.get(name, ["not run"]))))
        with open(os.path.join(out, "http-shapes-%s.md" % cls.store_name), "w") as f:
            f.write("\n".join(lines) + "\n")

    def atomsync(self, *args, **kw):
        kw.setdefault("env", self.env)
        return super().atomsync(*args, **kw)

    def shape_config(self, shape, name, limit=None, batch=""):
        api, server, path, http, columns, dataset, _ = SHAPES[shape]
        self.server = self.servers[server]
        if limit:
            http = (http.replace("limit: 50", "limit: %d" % limit)
                    .replace("limit: 10", "limit: %d" % limit)
                    .replace("batchSize=50", "batchSize=%d" % limit))
        http = "".join("        " + line + "\n" for line in http.splitlines())
        self.config("store: {store}\n"
                    "datasets:\n"
                    "  %s:\n"
                    "    key: [id]\n"
                    "%s%s"
                    "    columns:\n%s"
                    "    source:\n"
                    "      http:\n"
                    "        url: \"%s%s\"\n"
                    "%s"
                    "        timeout: 5s\n"
                    "        retry: {attempts: 2, initial: 10ms, max: 50ms}\n"
                    % (name, dataset, batch, columns, self.server.base, path,
                       http % {"base": self.server.base}))

    def fresh(self):
        for server in self.servers.values():
            server.faults()
            server.catalog(records=h.RECORDS, seed=1)
            server.reset()

    def table(self, name):
        """The live rows as (id, name, downloads, score, updatedAt seconds)."""
        rows = self.store.rows(name, ["id", "name", "downloads", "score", "updatedAt"])
        return sorted((as_id(r[0]), r[1], int(r[2]), float(r[3]), h.instant(r[4]))
                      for r in rows)

    def want(self):
        return h.expected_rows(self.server.records())

    def published(self, name):
        return self.store.full_rows(name)

    def trial_complete(self, shape):
        self.shape_config(shape, "mods")
        p = self.atomsync("run", check=OK)
        self.assertIn("600 seen, 600 inserted", p.stdout)
        self.assertEqual(self.table("mods"), self.want())
        return "complete: 600/600"

    def trial_faults(self, shape):
        page = SHAPES[shape][6]
        before = self.published("mods")
        self.server.catalog(mutate={"update": [1, 2, 3, 200, 599]})
        seen = []
        for fault, needle in FAULTS:
            with self.subTest(fault=fault["kind"], status=fault.get("status")):
                self.server.faults(dict(fault, match={"page": page}))
                self.server.reset()
                p = self.atomsync("run", check=FAILED)
                line = h.HttpCase.error_line(self, p)
                self.assertIn("page %d: " % page, line)
                self.assertIn(needle, line)
                self.assertEqual(self.published("mods"), before)    # invariant 2
                self.assertEqual(self.runs("mods")[0]["status"], "failed")
                seen.append(fault.get("status") or fault["kind"])
        # One 429 on the page after, retried; the run resumes (invariant 4).
        cp = self.checkpoint("mods")
        self.server.faults({"kind": "status", "status": 429, "retry_after": 0,
                            "times": 1, "match": {"page": page + 1}})
        self.server.reset()
        p = self.atomsync("run", check=OK)
        if page > 1:
            self.assertIn("(resumed run ", p.stdout)
            self.assertEqual(cp["page"], page)
            if "part" not in cp:
                pages = [int(k) for k in self.server.stats()["by_page"]]
                self.assertEqual(min(pages), page)
        self.assertIn("5 updated", p.stdout)
        self.assertEqual(self.table("mods"), self.want())
        return "%s on page %d: exit 1, nothing published; next run %s" % (
            "/".join(map(str, seen)), page,
            "(one 429 retried) resumed at %s" % where(cp) if cp else "started over")

    def checkpoint(self, name):
        cp = self.store.query("SELECT checkpoint FROM atomsync_state "
                              "WHERE dataset = '%s'" % name)
        return json.loads(cp[0][0]) if cp and cp[0][0] else None

    def trial_kill(self, shape):
        self.server.faults({"kind": "latency", "ms": 40 if shape != "none" else 2000,
                            "match": {}})
        self.shape_config(shape, "k", limit=10, batch="    batch_size: 20\n")
        self.server.reset()
        proc = spawn(["run"], cwd=self.dir, env=self.env)
        goal = 1 if shape == "none" else 20
        deadline = time.monotonic() + 30
        while self.server.stats()["requests"] < goal:
            self.assertIsNone(proc.poll(), "the run ended before the kill")
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stderr.close()
        cp = self.checkpoint("k")
        if shape != "none":
            self.assertTrue(cp and (cp["page"] > 1 or cp.get("part", 0) > 0), cp)
        self.server.faults()
        self.server.reset()
        p = self.atomsync("run", check=OK)
        if cp:
            self.assertIn("(resumed run ", p.stdout)
        self.assertEqual(self.table("k"), self.want())
        # The same table as an uninterrupted run of the same catalog.
        self.shape_config(shape, "u", limit=10)
        self.atomsync("run", check=OK)
        self.assertEqual(self.table("u"), self.table("k"))
        return "kill -9: %s, table = uninterrupted run's" % (
            "resumed at " + where(cp) if cp else "nothing staged, started over")

    def shape(self, name):
        self.fresh()
        outcome = [self.trial_complete(name), self.trial_faults(name)]
        self.fresh()
        outcome.append(self.trial_kill(name))
        self.results[name] = outcome


def _add(name):
    setattr(ShapesTest, "test_" + name, lambda self: self.shape(name))


for _name in SHAPES:
    _add(_name)
for_each_store(ShapesTest)   # ShapesTest_sqlite, ShapesTest_postgres
del ShapesTest


if __name__ == "__main__":
    unittest.main()
