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
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import test_http as h  # noqa: E402  (ApiServer, helpers)
from atomsync_test import (FAILED, OK, ROOT, StoreTestCase,  # noqa: E402
                           for_each_store)

SECRET = "csec-shapes-91d2"

# Each shape: "== name | API imitated | server | url path | page a fault hits",
# optional "columns:" (where the five compared columns are: id, name,
# downloads, score, updatedAt, as TYPE:PATH) and "dataset:" lines, then the
# http keys as a user writes them.  %(base)s is the server's URL.
SHAPE_TEXT = """
== github | GitHub REST (Link header) | plain | /link/mods | 3
headers: {Accept: application/vnd.github+json}
pagination: {style: link_header, limit_param: per_page, limit: 50}
== stripe | Stripe list (keyset, has_more) | plain | /stripe/mods | 3
records: data
pagination: {style: cursor, cursor_param: starting_after, cursor_from_record: id, has_more_path: has_more, limit_param: limit, limit: 50}
== shopify | Shopify REST Admin (page_info Link) | plain | /shopify/mods | 3
records: mods
pagination: {style: link_header, limit_param: limit, limit: 50}
== slack | Slack Web API (next_cursor, ok/error) | plain | /slack/mods | 3
records: members
error_path: error
error_retry: [ratelimited]
pagination: {style: cursor, cursor_param: cursor, cursor_path: response_metadata.next_cursor, limit_param: limit, limit: 50}
== salesforce | Salesforce query (nextRecordsUrl, done) | plain | /salesforce/query?q=SELECT+Id,Name,DownloadCount__c,Score__c,LastModifiedDate+FROM+Mod__c | 3
columns: text:Id text:Name integer:DownloadCount__c real:Score__c timestamp:LastModifiedDate
headers: {Sforce-Query-Options: "batchSize=50"}
records: records
pagination: {style: next_url, next_url_path: nextRecordsUrl, stop_path: done, total_path: totalSize}
== zendesk | Zendesk cursor export (end_of_stream) | plain | /zendesk/mods | 3
records: mods
pagination: {style: cursor, cursor_param: cursor, cursor_path: after_cursor, stop_path: end_of_stream, limit_param: per_page, limit: 50}
== notion | Notion database query (POST) | plain | /notion/mods | 3
method: POST
body: {page_size: "{limit}", start_cursor: "{page_cursor}"}
records: results
pagination: {style: cursor, cursor_path: next_cursor, has_more_path: has_more, limit: 50}
== hubspot | HubSpot CRM v3 (paging.next.after) | plain | /hubspot/mods | 3
columns: text:id text:properties.name text:properties.downloadcount text:properties.score timestamp:updatedAt
records: results
pagination: {style: cursor, cursor_param: after, cursor_path: paging.next.after, limit_param: limit, limit: 50}
== jsonapi | JSON:API (links.next) | plain | /jsonapi/mods | 3
columns: text:id text:attributes.name integer:attributes.downloadCount real:attributes.score timestamp:attributes.updatedAt
records: data
pagination: {style: next_url, next_url_path: links.next, limit_param: "page[size]", limit: 50}
== curseforge | CurseForge (offset ceiling 200, partitions) | ceiling | /v1/mods | 3
params: {gameId: 1}
records: data
concurrency: 4
partitions: {param: categoryId, values: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20]}
pagination: {style: offset, offset_param: index, limit_param: pageSize, limit: 10, total_path: pagination.totalCount}
== updated_since | updatedSince feed (incremental, epoch) | plain | /page/mods | 1
dataset: {mode: incremental, cursor: updatedAt}
params: {updatedSince: "{cursor}"}
cursor_format: epoch
records: data
pagination: {style: page, page_param: page, limit_param: pageSize, limit: 50}
== oauth2 | OAuth2 marketplace (client credentials) | oauth | /v1/mods | 3
auth:
  oauth2: {token_url: "%(base)s/oauth/token", client_id: market, client_secret: "${CLIENT_SECRET}", scopes: [listings:read]}
records: data
concurrency: 4
pagination: {style: offset, offset_param: index, limit_param: pageSize, limit: 50, total_path: pagination.totalCount}
== keyed | records keyed by id (items.*) | plain | /keyed/mods | 3
columns: text:id
records: items.*
record_key_as: id
pagination: {style: page, page_param: page, limit_param: pageSize, limit: 50, total_path: pagination.totalCount}
== graphql | GraphQL connection (POST) | plain | /graphql | 3
method: POST
body:
  query: "query($first: Int!, $after: String) { items(first: $first, after: $after) { nodes { id name downloadCount score updatedAt } pageInfo { endCursor hasNextPage } } }"
  variables: {first: "{limit}", after: "{page_cursor}"}
records: data.items.nodes
pagination: {style: cursor, cursor_path: data.items.pageInfo.endCursor, has_more_path: data.items.pageInfo.hasNextPage, limit: 50}
== offset | offset + total (the server's plain styles follow) | plain | /offset/mods | 3
records: data
concurrency: 4
pagination: {style: offset, offset_param: index, limit_param: pageSize, limit: 50, total_path: pagination.totalCount}
== page | page, no total (a short page ends) | plain | /page/mods | 3
records: data
pagination: {style: page, page_param: page, limit_param: pageSize, limit: 50}
== cursor | opaque cursor + total | plain | /cursor/mods | 3
records: data
pagination: {style: cursor, cursor_param: cursor, cursor_path: pagination.next, limit_param: pageSize, limit: 50, total_path: pagination.totalCount}
== next_url | next URL in the body | plain | /next_url/mods | 3
records: data
pagination: {style: next_url, next_url_path: links.next, limit_param: pageSize, limit: 50}
== none | one body, no pagination | plain | /none/mods | 1
records: data
pagination: {style: none, total_path: meta.totalCount}
"""
COLUMNS = ("integer:id", "text:name", "integer:downloadCount", "real:score",
           "timestamp:updatedAt")


class Shape:
    """One entry of SHAPE_TEXT."""

    def __init__(self, head, lines):
        self.name, self.api, self.server, self.path, page = [
            f.strip() for f in head.split("|")]
        self.page = int(page)
        self.columns, self.dataset, self.http = list(COLUMNS), "", []
        for line in lines:
            key, _, value = line.partition(": ")
            if key == "columns":
                given = value.split()
                self.columns[:len(given)] = given
            elif key == "dataset":
                self.dataset = "".join("    %s\n" % kv.strip().replace(":", ": ", 1)
                                       for kv in value.strip("{}").split(","))
            else:
                self.http.append(line)

    def column_yaml(self):
        names = ("id", "name", "downloads", "score", "updatedAt")
        return "".join("      %s: {type: %s, path: %s}\n" % ((n,) + tuple(c.split(":", 1)))
                       for n, c in zip(names, self.columns))


def parse_shapes(text):
    shapes, head, lines = {}, None, []
    for line in text.splitlines() + ["== end"]:
        if line.startswith("== "):
            if head:
                shape = Shape(head, lines)
                shapes[shape.name] = shape
            head, lines = line[3:], []
        elif line.strip():
            lines.append(line)
    return shapes


SHAPES = parse_shapes(SHAPE_TEXT)

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
        for name, shape in SHAPES.items():
            config = "; ".join("`%s`" % l.strip() for l in
                               ["url: " + shape.path] + shape.http)
            lines.append("| %s | %s | %s | %s |" % (
                name, shape.api, config.replace("|", "\\|"),
                "; ".join(cls.results.get(name, ["not run"]))))
        with open(os.path.join(out, "http-shapes-%s.md" % cls.store_name), "w") as f:
            f.write("\n".join(lines) + "\n")

    def atomsync(self, *args, **kw):
        kw.setdefault("env", self.env)
        return super().atomsync(*args, **kw)

    def shape_config(self, shape, name, limit=None, batch=""):
        sh = SHAPES[shape]
        self.server = self.servers[sh.server]
        http = "\n".join(sh.http)
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
                    % (name, sh.dataset, batch, sh.column_yaml(), self.server.base,
                       sh.path, http % {"base": self.server.base}))

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
        page = SHAPES[shape].page
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
        h.run_and_kill(self, self.server, 1 if shape == "none" else 20, env=self.env)
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
