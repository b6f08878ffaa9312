"""Schema inference and evolution (issue 14; docs/config.md, "Schema
inference"): typed columns from the records, nested objects flattened,
names normalised, integer widened to real, conflicts as bad records
(invariant 9), new fields added by the publish of the run that delivered
them (invariants 1, 2), history and rollback across a new column, the
schema contracts, tables of the key + `data` layout kept, and an existing
table that does not fit the configured columns refused and left alone.
Every test runs on SQLite and PostgreSQL (@for_each_store)."""

import json
import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from atomsync_test import (FAILED, OK, USAGE, StoreTestCase,  # noqa: E402
                           for_each_store, write_jsonl)

CONFIG = """
store: {store}
datasets:
  items:
    key: [id]
%s    source:
      file: items.jsonl
"""


def user_cols(store, table):
    """The table's columns (name, type), without atomsync's own."""
    if store.name == "sqlite":
        rows = store.query("SELECT name, type FROM pragma_table_info(?)", (table,))
    else:
        rows = store.columns(table)
    return [(n, t) for n, t in rows if not n.startswith("_atomsync")]


TYPE_NAMES = {
    "sqlite": {"integer": "INTEGER", "real": "REAL", "text": "TEXT",
               "boolean": "BOOLEAN", "timestamp": "TIMESTAMP", "json": "JSON"},
    "postgres": {"integer": "bigint", "real": "double precision", "text": "text",
                 "boolean": "boolean", "timestamp": "timestamp with time zone",
                 "json": "jsonb"},
}


@for_each_store
class SchemaTest(StoreTestCase):
    def setUp(self):
        super().setUp()
        self.types = TYPE_NAMES[self.store.name]

    def cfg(self, extra=""):
        self.config(CONFIG % extra)

    def load(self, records, check=OK, extra=""):
        write_jsonl(self.path("items.jsonl"), records)
        self.cfg(extra)
        return self.atomsync("run", check=check)

    def assertCols(self, expect):
        self.assertEqual(user_cols(self.store, "items"),
                         [(n, self.types.get(t, t)) for n, t in expect])

    def test_each_type_and_flattening(self):
        """Each inferred type; objects flattened with __ to depth 2, deeper
        ones and arrays as json; camelCase and other names normalised."""
        self.load([{"id": 1, "name": "a", "score": 1.5, "ok": True,
                    "at": "2026-01-02T03:04:05Z", "tags": ["x", 2],
                    "stats": {"downloadCount": 7, "deep": {"a": 1}},
                    "Weird Name!": "w", "2fa": 0}])
        self.assertCols([("id", "integer"), ("name", "text"), ("score", "real"),
                         ("ok", "boolean"), ("at", "timestamp"), ("tags", "json"),
                         ("stats__download_count", "integer"),
                         ("stats__deep", "json"), ("weird_name", "text"),
                         ("_2fa", "integer")])
        row = self.store.rows("items", ["id", "name", "score", "ok", "at",
                                        "stats__download_count", "weird_name"])
        self.assertEqual(row, [(1, "a", 1.5, 1, "2026-01-02T03:04:05.000000Z",
                                7, "w")])
        tags = self.store.rows("items", ["tags", "stats__deep"])[0]
        self.assertEqual(json.loads(tags[0]), ["x", 2])
        self.assertEqual(json.loads(tags[1]), {"a": 1})
        # Invariant 5: the same input again changes nothing.
        self.atomsync("run", check=OK)
        r = self.runs("items")[0]
        self.assertEqual((r["inserted"], r["updated"], r["unchanged"]), (0, 0, 1))

    def test_flatten_depth(self):
        """flatten_depth: 1 keeps every nested object as json."""
        self.load([{"id": 1, "stats": {"n": 1}}], extra="    flatten_depth: 1\n")
        self.assertCols([("id", "integer"), ("stats", "json")])

    def test_collision_is_a_configuration_error(self):
        """Two fields that normalise to one name: exit 2 naming both;
        nothing is created (invariant 2)."""
        p = self.load([{"id": 1, "userId": 1, "user_id": 2}], check=USAGE)
        self.assertIn("'userId'", p.stderr)
        self.assertIn("'user_id'", p.stderr)
        self.assertFalse(self.store.table_exists("items"))
        # ... and across runs: the column remembers its field.
        self.load([{"id": 1, "userId": 1}])
        p = self.load([{"id": 1, "userId": 1}, {"id": 2, "user_id": 2}],
                      check=USAGE)
        self.assertIn("'userId'", p.stderr)
        self.assertIn("'user_id'", p.stderr)
        self.assertEqual(self.store.rows("items", ["id", "user_id"]), [(1, 1)])

    def test_widening_integer_to_real(self):
        """An integer column that sees a real becomes real, in the run
        and across runs; the integers keep their values."""
        self.load([{"id": 1, "n": 1}, {"id": 2, "n": 2.5}])
        self.assertEqual(self.store.rows("items", ["id", "n"]), [(1, 1), (2, 2.5)])
        self.load([{"id": 1, "n": 1}, {"id": 2, "n": 2}])
        self.load([{"id": 1, "n": 1}, {"id": 2, "n": 2}, {"id": 3, "n": 0.5}])
        self.assertEqual(self.store.rows("items", ["id", "n"]),
                         [(1, 1), (2, 2), (3, 0.5)])
        runs = self.runs("items")
        self.assertEqual(runs[-1]["columns_added"], ["n"])
        self.assertEqual(runs[0]["columns_added"], [])
        r = self.runs("items")[1]
        self.assertEqual((r["inserted"], r["updated"], r["unchanged"]), (0, 1, 1))
        # widened in the live table across runs
        self.load([{"id": 1, "w": 1}, {"id": 2, "w": 2}])
        before = self.store.full_rows("items")
        self.load([{"id": 1, "w": 1}, {"id": 2, "w": 2.25}])
        self.assertEqual(self.runs("items")[0]["columns_widened"], ["w"])
        self.assertNotEqual(self.store.full_rows("items"), before)
        self.assertEqual(self.store.rows("items", ["id", "w"]), [(1, 1), (2, 2.25)])
        if self.store.name == "postgres":
            self.assertIn(("w", "double precision"), user_cols(self.store, "items"))

    def test_each_conflict_is_a_bad_record(self):
        """Invariant 9: every other type conflict is a bad record with its
        file:line, the column and both types; nothing is published."""
        cases = [("n", 1, "x", "integer", "text"),
                 ("s", "x", 1, "text", "integer"),
                 ("b", True, 1, "boolean", "integer"),
                 ("t", "2026-01-01T00:00:00Z", "soon", "timestamp", "text"),
                 ("j", [1], {"a": 1}, "json", "json"),
                 ("r", 1.5, False, "real", "boolean")]
        for col, first, later, want, got in cases:
            if want == got:
                continue
            with self.subTest(col=col):
                self.load([{"id": 1, col: first}, {"id": 2, col: None},
                           {"id": 3, col: later}], check=FAILED)
                p = self.atomsync("run", check=FAILED)
                self.assertIn("items.jsonl:3", p.stderr)
                self.assertIn("column '%s' is %s, got %s" % (col, want, got),
                              p.stderr)
                self.assertFalse(self.store.table_exists("items"))
        # deep in a file (the lines are mapped in chunks on two threads)
        recs = [{"id": i, "n": i} for i in range(1, 3001)]
        recs[2499]["n"] = "x"
        recs[2799]["m"] = 1.5
        write_jsonl(self.path("items.jsonl"), recs)
        p = self.atomsync("run", check=FAILED)
        self.assertIn("items.jsonl:2500: column 'n' is integer, got text",
                      p.stderr)
        self.assertFalse(self.store.table_exists("items"))
        # allowed rejects: the record goes to the reject file
        self.load([{"id": 1, "n": 1}, {"id": 2, "n": "x"}],
                  extra="    guard: {max_rejects: 1}\n")
        rej = [json.loads(line) for line in open(self.path("items.rejects.jsonl"))]
        self.assertEqual(rej[-1]["where"], "items.jsonl:2")
        self.assertEqual(self.store.rows("items", ["id", "n"]), [(1, 1)])

    def test_new_field_mid_run_and_later(self):
        """A field first seen in the middle of a run (past a staging batch)
        becomes a nullable column; one seen by a later run is added by
        that run's publish; rows without it stay unchanged (invariant 5)."""
        recs = [{"id": i, "v": i} for i in range(1, 3001)]
        for r in recs[2000:]:
            r["late"] = "x%d" % r["id"]
        self.load(recs, extra="    batch_size: 500\n")
        self.assertCols([("id", "integer"), ("v", "integer"), ("late", "text")])
        self.assertEqual(self.store.query(
            "SELECT count(*), count(late) FROM items"), [(3000, 1000)])
        recs[5]["later"] = True
        # Every line parsed (no line matching): the rows without the new
        # field hash as before, so they stay unchanged (invariant 5).
        write_jsonl(self.path("items.jsonl"), recs)
        self.atomsync("run", check=OK, env={"ATOMSYNC_NO_LINE_MATCH": "1"})
        r = self.runs("items")[0]
        self.assertEqual((r["inserted"], r["updated"], r["unchanged"]),
                         (0, 1, 2999))
        self.assertEqual(r["columns_added"], ["later"])
        self.assertCols([("id", "integer"), ("v", "integer"), ("late", "text"),
                         ("later", "boolean")])

    def test_failed_run_changes_no_schema(self):
        """Invariants 1, 2: a run that delivers a new field and then fails
        leaves the live table's rows and columns as they were."""
        self.load([{"id": 1, "v": 1}])
        before = self.store.full_rows("items")
        cols = user_cols(self.store, "items")
        self.load([{"id": 1, "v": 2, "extra": "e"}, {"id": 2, "v": "bad"}],
                  check=FAILED)
        self.assertEqual(self.store.full_rows("items"), before)
        self.assertEqual(user_cols(self.store, "items"), cols)
        # A refused run (guard) too.
        self.load([{"id": 1, "v": 1}] + [{"id": i, "v": i} for i in range(2, 40)])
        before = self.store.full_rows("items")
        cols = user_cols(self.store, "items")
        p = self.load([{"id": 1, "v": 1, "extra": "e"}], check=None)
        self.assertEqual(p.returncode, 3, p.stderr)
        self.assertEqual(self.store.full_rows("items"), before)
        self.assertEqual(user_cols(self.store, "items"), cols)

    def test_history_gains_the_column_and_rollback(self):
        """History tables get the new column; a rollback to a run before
        it existed leaves it NULL."""
        for kind in ("snapshot", "scd2"):
            with self.subTest(kind=kind):
                self.store.cleanup()
                self.setUp()
                extra = "    history: %s\n" % kind
                self.load([{"id": 1, "v": 1}, {"id": 2, "v": 2}], extra=extra)
                first = self.runs("items")[0]["run_id"]
                self.load([{"id": 1, "v": 1, "extra": "e"}, {"id": 2, "v": 3}],
                          extra=extra)
                hist = [n for n, _ in user_cols(self.store, "items_history")]
                self.assertIn("extra", hist)
                self.atomsync("rollback", "items", "--to-run", str(first),
                              check=OK)
                self.assertEqual(self.store.rows("items", ["id", "v", "extra"]),
                                 [(1, 1, None), (2, 2, None)])

    def test_wide_history_gains_a_column(self):
        """A history table of more than 512 columns: every existing column
        is seen, so a new field adds only itself (a cap once made the
        publish add an existing column again and fail)."""
        extra = "    history: snapshot\n"
        wide = {"f%03d" % i: i for i in range(600)}
        self.load([dict(wide, id=1), dict(wide, id=2)], extra=extra)
        self.load([dict(wide, id=1, extra="e"), dict(wide, id=2)], extra=extra)
        hist = [n for n, _ in user_cols(self.store, "items_history")]
        self.assertIn("extra", hist)
        self.assertIn("f599", hist)
        self.assertEqual(self.store.rows("items", ["id", "f599", "extra"]),
                         [(1, 599, "e"), (2, 599, None)])

    def test_contracts(self):
        """freeze: an unknown field is a bad record naming it; discard_value
        drops it (counted); discard_row sends the record to the reject
        file; evolve (default) adds it."""
        base = [{"id": 1, "v": 1}, {"id": 2, "v": 2}]
        self.load(base)
        new = [{"id": 1, "v": 1}, {"id": 2, "v": 2, "extra": "e"}]
        p = self.load(new, extra="    schema_contract: freeze\n", check=FAILED)
        self.assertIn("items.jsonl:2", p.stderr)
        self.assertIn("field 'extra'", p.stderr)
        self.assertCols([("id", "integer"), ("v", "integer")])
        self.load(new, extra="    schema_contract: discard_value\n")
        self.assertCols([("id", "integer"), ("v", "integer")])
        self.assertEqual(self.runs("items")[0]["discarded_values"], 1)
        new[1]["v"] = 5
        self.load(new, extra="    schema_contract: discard_row\n")
        # Not delivered: a full run deletes its row, as with a reject.
        self.assertEqual(self.store.rows("items", ["id", "v"]), [(1, 1)])
        rej = [json.loads(line) for line in open(self.path("items.rejects.jsonl"))]
        self.assertEqual(rej[-1]["where"], "items.jsonl:2")
        self.assertEqual(self.runs("items")[0]["discarded_rows"], 1)
        self.load(new)
        self.assertCols([("id", "integer"), ("v", "integer"), ("extra", "text")])

    def test_load_schema_contract_flag(self):
        """--schema-contract on load; bad input keeps its location."""
        write_jsonl(self.path("a.jsonl"), [{"id": 1, "v": 1}])
        self.atomsync("load", self.store.url, "items", "a.jsonl", "--key", "id",
                      check=OK)
        write_jsonl(self.path("a.jsonl"), [{"id": 1, "v": 1}, {"id": 2, "w": 1}])
        p = self.atomsync("load", self.store.url, "items", "a.jsonl", "--key",
                          "id", "--schema-contract", "freeze", check=FAILED)
        self.assertIn("a.jsonl:2", p.stderr)
        self.assertIn("'w'", p.stderr)

    def test_schema_json_and_legacy_tables(self):
        """schema: json keeps the key + data layout; a table of that layout
        made before inference keeps it under the default (with a
        warning), and its rows stay unchanged."""
        recs = [{"id": 1, "v": 1}, {"id": 2, "v": 2}]
        self.load(recs, extra="    schema: json\n")
        self.assertCols([("id", "integer"), ("data", "text" if
                         self.store.name == "sqlite" else "json")])
        p = self.load(recs)
        self.assertIn("data layout", p.stderr)
        r = self.runs("items")[0]
        self.assertEqual((r["inserted"], r["updated"], r["unchanged"]), (0, 0, 2))
        self.assertCols([("id", "integer"), ("data", "text" if
                         self.store.name == "sqlite" else "json")])

    def test_singer_schema_types(self):
        """A Singer SCHEMA types the columns through the same machinery:
        integer, number, string, date-time, boolean, objects flattened,
        arrays as json, ["null", T] as T; a property no record has is a
        column too."""
        schema = {"type": "object", "properties": {
            "id": {"type": "integer"},
            "price": {"type": ["null", "number"]},
            "name": {"type": "string"},
            "at": {"type": "string", "format": "date-time"},
            "ok": {"type": ["boolean", "null"]},
            "tags": {"type": "array", "items": {"type": "string"}},
            "dims": {"type": "object", "properties": {"w": {"type": "integer"}}},
            "never": {"type": ["null", "string"]}}}
        msgs = [{"type": "SCHEMA", "stream": "s", "schema": schema,
                 "key_properties": ["id"]},
                {"type": "RECORD", "stream": "s", "record": {
                    "id": 1, "price": 2, "name": "n", "at": "2026-01-01T00:00:00Z",
                    "ok": None, "tags": ["a"], "dims": {"w": 3}}}]
        with open(self.path("items.jsonl"), "w") as f:
            for m in msgs:
                f.write(json.dumps(m) + "\n")
        self.config(CONFIG.replace("    key: [id]\n", "") % "" +
                    "      format: singer\n")
        self.atomsync("run", check=OK)
        self.assertCols([("id", "integer"), ("price", "real"), ("name", "text"),
                         ("at", "timestamp"), ("ok", "boolean"), ("tags", "json"),
                         ("dims__w", "integer"), ("never", "text")])
        self.assertEqual(self.store.rows("items", ["id", "price", "dims__w", "never"]),
                         [(1, 2, 3, None)])

    def test_infer_with_declared_columns(self):
        """infer: true infers the fields the declared columns do not map."""
        self.load([{"id": 1, "downloadCount": 3, "name": "n"}],
                  extra="    infer: true\n    columns:\n      id: integer\n"
                        "      downloads: {type: integer, path: downloadCount}\n")
        self.assertCols([("id", "integer"), ("downloads", "integer"),
                         ("name", "text")])



DECLARED = """
store: {store}
datasets:
  items:
    key: [id]
    columns:
      id: {type: integer}
      name: {type: text}
    source:
      file: items.jsonl
"""

# What atomsync itself would create for DECLARED, per store.
LIVE_DDL = {
    "sqlite": ('CREATE TABLE items (%s, "_atomsync_run" INTEGER, '
               '"_atomsync_hash" INTEGER, "_atomsync_line" BLOB)'),
    "postgres": ('CREATE TABLE items (%s, "_atomsync_run" bigint, '
                 '"_atomsync_hash" bigint, "_atomsync_line" bytea)'),
}


@for_each_store
class ExistingTableTest(StoreTestCase):
    """A live table that exists before atomsync's first run is checked
    against the configured columns (src/store/sql_table.c, the same rule on
    both stores): one that does not fit is a configuration error, exit 2
    with one line on stderr naming the table and what the dataset maps, and
    the table is left exactly as it was (invariant 1: a run that fails
    changes no live row; invariant 2: nothing is half-applied).  The table
    otherwise has atomsync's own columns, so only the check stands between
    it and the publish."""

    def refused(self, user_cols, insert):
        self.store.execute(LIVE_DDL[self.store.name] % user_cols)
        self.store.execute(insert)
        cols, rows = user_cols_of(self.store), self.store.full_rows("items")
        write_jsonl(self.path("items.jsonl"),
                    [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}])
        self.config(DECLARED)
        p = self.atomsync("run")
        self.assertEqual(p.returncode, USAGE, p.stderr)
        lines = p.stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, p.stderr)
        self.assertIn("table items exists but does not have the columns the "
                      "dataset maps (id %s, name %s, then _atomsync_run, "
                      "_atomsync_hash, _atomsync_line); rename the table or "
                      "migrate it" % (TYPE_NAMES[self.store.name]["integer"],
                                      TYPE_NAMES[self.store.name]["text"]),
                      lines[0])
        self.assertEqual(user_cols_of(self.store), cols)
        self.assertEqual(self.store.full_rows("items"), rows)
        return p

    def test_conflicting_column_type_is_refused(self):
        t = TYPE_NAMES[self.store.name]
        self.refused('"id" %s PRIMARY KEY, "name" %s' % (t["integer"], t["integer"]),
                     "INSERT INTO items VALUES (1, 42, 1, 7, NULL)")

    def test_missing_key_column_is_refused(self):
        self.refused('"name" %s PRIMARY KEY' % TYPE_NAMES[self.store.name]["text"],
                     "INSERT INTO items VALUES ('keep', 1, 7, NULL)")


def user_cols_of(store):
    """Every column of items, atomsync's included, with its type."""
    if store.name == "sqlite":
        return store.query("SELECT name, type FROM pragma_table_info('items')")
    return store.columns("items")


if __name__ == "__main__":
    unittest.main()
