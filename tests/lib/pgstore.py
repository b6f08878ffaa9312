"""PostgresStore: the test harness's view of a PostgreSQL store, with the
methods of SqliteStore (url, query, table_exists, rows, full_rows,
integrity, cleanup), read back through `psql` (no Python driver here).

Each store is its own database on the process's server (pgserver.py).
Values are typed from the columns' PostgreSQL types so that rows compare
equal to SQLite's for the same data: integers as int, reals as float,
booleans as 1/0 (SQLite stores them as integers), timestamps as the
canonical text the engine writes ("2026-01-05T05:00:00.000000Z"), json as
text.
"""

import os
import re
import subprocess
import uuid

import pgserver

US = "\x1f"     # field separator
RS = "\x1e"     # record separator
NULL = "\x02N\x03"

INT_TYPES = {"smallint", "integer", "bigint", "oid"}
REAL_TYPES = {"real", "double precision"}


def literal(v):
    """A Python value as an SQL literal (test-side only: query params)."""
    if v is None:
        return "NULL"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    return "'" + str(v).replace("'", "''") + "'"


def substitute(sql, params):
    """Replace SQLite-style ? placeholders (outside quotes) with literals."""
    if not params:
        return sql
    out, it, q = [], iter(params), None
    for ch in sql:
        if q:
            if ch == q:
                q = None
            out.append(ch)
        elif ch in "'\"":
            q = ch
            out.append(ch)
        elif ch == "?":
            out.append(literal(next(it)))
        else:
            out.append(ch)
    return "".join(out)


def convert(value, typ):
    if value == NULL:
        return None
    if typ in INT_TYPES:
        return int(value)
    if typ == "numeric":
        return int(value) if re.fullmatch(r"-?\d+", value) else float(value)
    if typ in REAL_TYPES:
        return float(value)
    if typ == "boolean":
        return 1 if value == "t" else 0
    if typ.startswith("timestamp"):
        return iso(value)
    return value


def iso(value):
    """'2026-01-05 05:00:00.5+00' -> '2026-01-05T05:00:00.500000Z', the
    canonical text the engine stores in SQLite."""
    v = re.sub(r"([+-]\d\d(:\d\d)?)$", "", value)
    day, _, clock = v.partition(" ")
    whole, _, frac = clock.partition(".")
    return "%sT%s.%sZ" % (day, whole, (frac + "000000")[:6])


class PostgresStore:
    name = "postgres"

    def __init__(self, workdir):
        self.server = pgserver.server()
        self.dbname = "atomsync_t_" + uuid.uuid4().hex[:12]
        self.url = self.server.create_database(self.dbname)

    # -- psql --
    def psql(self, sql, check=True, extra=()):
        env = dict(os.environ, PGTZ="UTC", PGOPTIONS="-c client_min_messages=warning")
        p = subprocess.run(["psql", "-X", "-q", "-A", "-t", "-F", US, "-R", RS,
                            "-P", "null=" + NULL, "-v", "ON_ERROR_STOP=1"]
                           + list(extra) + ["-f", "-", self.url],
                           input=sql.encode(), capture_output=True, env=env)
        # Bytes, decoded by hand: text mode would turn a stored \r into \n.
        if check and p.returncode != 0:
            raise RuntimeError("psql: %s\n%s" % (sql, p.stderr.decode(errors="replace").strip()))
        return p.stdout.decode()

    def execute(self, sql, params=()):
        """A statement with no result (test setup, tampering)."""
        self.psql(substitute(sql, params) + ";\n")

    def query(self, sql, params=()):
        sql = substitute(sql, params).strip().rstrip(";")
        head = sql.lstrip("( \n").split(None, 1)[0].upper() if sql.strip() else ""
        if head not in ("SELECT", "WITH", "VALUES", "TABLE"):
            self.psql(sql + ";\n")
            return []
        # \gdesc gives the result's column types, then the rows follow,
        # then psql's ROW_COUNT (zero rows and one empty value look alike).
        mark = RS + "@@@" + RS
        out = self.psql(sql + "\n\\gdesc\n\\echo " + mark + "\n" + sql +
                        ";\n\\echo " + mark + ":ROW_COUNT\n")
        desc, body, count = out.split(mark)
        types = [rec.split(US)[1] for rec in desc.strip("\n").split(RS)
                 if US in rec]
        if int(count.strip()) == 0:
            return []
        body = body[1:-1]   # the newline after \echo; the one ending the rows
        rows = []
        for rec in body.split(RS):
            fields = rec.split(US)
            rows.append(tuple(convert(f, types[i] if i < len(types) else "text")
                              for i, f in enumerate(fields)))
        return rows

    # -- SqliteStore's interface --
    def tables(self):
        return sorted(r[0] for r in self.query(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"))

    def table_exists(self, table):
        return bool(self.query("SELECT to_regclass(quote_ident(?)) IS NOT NULL",
                               (table,))[0][0])

    def columns(self, table):
        """[(name, type)] of a table, in order."""
        return [(r[0], r[1]) for r in self.query(
            "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
            "WHERE attrelid = to_regclass(quote_ident(?)) AND attnum > 0 "
            "AND NOT attisdropped ORDER BY attnum", (table,))]

    def _order(self, cols, types, n):
        """ORDER BY the first n columns as SQLite sorts them: text bytewise,
        NULLs first."""
        parts = []
        for c in cols[:n]:
            coll = ' COLLATE "C"' if types.get(c) in ("text",) else ""
            parts.append('"%s"%s NULLS FIRST' % (c, coll))
        return ", ".join(parts)

    def rows(self, table, cols=None):
        """The live rows, sorted, without atomsync's own columns."""
        if not self.table_exists(table):
            return []
        types = dict(self.columns(table))
        names = cols or [c for c in types if not c.startswith("_atomsync")]
        sql = 'SELECT %s FROM "%s" ORDER BY %s' % (
            ", ".join('"%s"' % c for c in names), table,
            self._order(names, types, 2))
        return self.query(sql)

    def full_rows(self, table):
        """Every column, atomsync's included (for byte-identity checks)."""
        if not self.table_exists(table):
            return []
        types = dict(self.columns(table))
        names = list(types)
        return self.query('SELECT * FROM "%s" ORDER BY %s' % (
            table, self._order(names, types, 1)))

    def integrity(self):
        """'ok' when every btree index of the database checks out (amcheck),
        like SQLite's PRAGMA integrity_check."""
        try:
            self.psql("CREATE EXTENSION IF NOT EXISTS amcheck;\n"
                      "SELECT bt_index_check(c.oid, true) FROM pg_index i "
                      "JOIN pg_class c ON c.oid = i.indexrelid "
                      "JOIN pg_am a ON a.oid = c.relam WHERE a.amname = 'btree' "
                      "AND c.relpersistence <> 't';\n")
        except RuntimeError as e:
            return str(e)
        return "ok"

    def cleanup(self):
        self.server.drop_database(self.dbname)
