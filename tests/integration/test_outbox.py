"""The outbox (DESIGN.md invariant 7): cache invalidations, webhooks and
PostgreSQL NOTIFY are recorded in the publish transaction and delivered after
commit, at least once, never before; an unreachable cache never fails a run.

Every test drives the real binary against a real redis-server (started here
on a unix socket or a loopback port, stopped by pid) and each store.  The
incident behind it is /work/shared/seeds/002_ed1ced1664ab1a8a.txt: an
e-commerce backend that cleared `game:{id}`, `home:*` and `catalog:*` before
its database commit, so readers refilled the cache with the old data.
"""

import http.server
import json
import os
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from atomsync_test import (CRASH_EXIT, OK, FAILED, USAGE,  # noqa: E402
                           StoreTestCase, for_each_store, write_jsonl)
from redisserver import RedisServer  # noqa: E402

SEED = "/work/shared/seeds/002_ed1ced1664ab1a8a.txt"

GAMES = """
store: {store}
cache: %(cache)s
datasets:
  games:
    key: [id]
    columns:
      id: {type: integer}
      title: {type: text}
      slug: {type: text}
      price: {type: real}
    invalidate: %(invalidate)s
%(extra)s    source:
      file: {dir}/games.jsonl
"""


def games(n, start=1, version=0, drop=()):
    return [{"id": i, "title": "Game %d v%d" % (i, version), "slug": "game-%d" % i,
             "price": 10 + i + version} for i in range(start, start + n) if i not in drop]


class OutboxCase(StoreTestCase):
    """A store, a Redis server, and helpers for the games dataset."""

    def setUp(self):
        super().setUp()
        os.makedirs(self.path("redis"))
        self.redis = RedisServer(dir=self.path("redis"))
        self.r = self.redis.client()

    def tearDown(self):
        self.r.close()
        self.redis.stop()
        super().tearDown()

    def write_config(self, invalidate=('game:{id}', 'home:*', 'catalog:*'),
                     cache=None, extra=""):
        self.config(GAMES % {"cache": cache or self.redis.unix_url(timeout="500ms"),
                             "invalidate": json.dumps(list(invalidate)),
                             "extra": extra})

    def load(self, records):
        write_jsonl(self.path("games.jsonl"), records)

    def outbox(self, *args, check=None):
        p = self.atomsync("outbox", *args, "--json", check=check)
        return p, (json.loads(p.stdout) if p.stdout.strip() else None)

    def events(self):
        return self.outbox("list", check=OK)[1]

    def price(self, gid):
        rows = self.store.query('SELECT price FROM games WHERE id = ?', (gid,)) \
            if self.store.table_exists("games") else []
        return rows[0][0] if rows else None


@for_each_store
class TestSeed002(OutboxCase):
    def test_seed_002_invalidates_after_commit_only_changed_keys(self):
        """Seed 002 (002_ed1ced1664ab1a8a.txt): game:{id} of each changed
        row, home:* and catalog:* are removed only after the publish
        committed; keys of unchanged rows stay; one event per run and target
        (invariant 7); a second identical run changes nothing and records no
        event (invariant 5)."""
        self.assertTrue(os.path.exists(SEED))
        self.write_config()
        self.load(games(20))
        self.atomsync("run", check=OK)
        self.assertEqual(len(self.events()), 1)
        cached = ["game:%d" % i for i in range(1, 21)] + ["home:top", "home:new",
                                                         "catalog:p1", "catalog:p2",
                                                         "cart:9"]
        self.r.set_many(cached)
        # Run 2: game 3 changes price, game 7 is deleted, game 21 is new.
        recs = games(21, drop=(7,))
        recs[2]["price"] = 99
        self.load(recs)
        p = self.atomsync("run", check=OK)
        self.assertNotIn("warning", p.stderr)
        self.assertEqual(self.price(3), 99)
        left = self.r.exists_many(cached)
        self.assertEqual(set(cached) - left,
                         {"game:3", "game:7", "home:top", "home:new",
                          "catalog:p1", "catalog:p2"})
        ev = self.events()
        self.assertEqual([e["status"] for e in ev], ["delivered", "delivered"])
        self.assertEqual(ev[1]["keys"], 3)  # game:3, game:7, game:21
        stats = self.r.commandstats()
        self.assertNotIn("keys", stats, "KEYS must never be used")
        self.assertGreaterEqual(stats["scan"]["calls"], 2)
        # Run 3: the same input: nothing changed, no event, no invalidation.
        self.r.set_many(cached)
        self.atomsync("run", check=OK)
        self.assertEqual(len(self.events()), 2)
        self.assertEqual(self.r.exists_many(cached), set(cached))

    def test_watcher_never_sees_a_key_gone_before_the_data(self):
        """Invariant 7 with a watcher: while a run changes 20,000 rows, a
        second process polls Redis and the store; whenever a key is gone, the
        store already shows the new row.  A run killed just before COMMIT
        (crash point publish.before_commit) removes no key and leaves no
        event; the next run publishes and invalidates."""
        n = 20000
        self.write_config(invalidate=["game:{id}"])
        self.load(games(n))
        self.atomsync("run", check=OK)
        watch = [1, 2, n // 2, n - 1, n]
        self.r.set_many("game:%d" % i for i in range(1, n + 1))
        self.load(games(n, version=1))
        p = self.atomsync("run", env={"ATOMSYNC_CRASH": "publish.before_commit"})
        self.assertEqual(p.returncode, CRASH_EXIT, p.stderr)
        self.assertEqual(len(self.r.exists_many("game:%d" % i for i in range(1, n + 1))), n)
        self.assertEqual(len(self.events()), 1)  # only run 1's
        self.assertEqual(self.price(n), 10 + n)

        violations, seen_gone = [], []
        stop = threading.Event()
        c = self.redis.client()

        def watcher():
            while not stop.is_set():
                for gid in watch:
                    if not c.cmd("EXISTS", "game:%d" % gid):
                        price = self.price(gid)
                        seen_gone.append(gid)
                        if price != 10 + gid + 1:
                            violations.append((gid, price))
        t = threading.Thread(target=watcher)
        t.start()
        try:
            self.atomsync("run", check=OK)
            time.sleep(0.2)
        finally:
            stop.set()
            t.join()
            c.close()
        self.assertEqual(violations, [], "a key was removed before its data committed")
        self.assertTrue(seen_gone, "the watcher never saw a key go")
        self.assertEqual(self.r.exists_many("game:%d" % i for i in range(1, n + 1)), set())


@for_each_store
class TestUnreachable(OutboxCase):
    def test_redis_down_run_succeeds_and_drain_delivers(self):
        """An unreachable cache never fails a run (invariant 7): exit 0 and a
        warning; the event stays pending with attempts and last_error;
        `outbox drain` exits 1 while Redis is down, 0 once it delivered."""
        self.write_config()
        self.load(games(5))
        self.redis.kill()
        p = self.atomsync("run", check=OK)
        self.assertIn("warning", p.stderr)
        self.assertIn("not delivered", p.stderr)
        self.assertEqual(self.price(1), 11)
        ev = self.events()
        self.assertEqual(len(ev), 1)
        self.assertEqual((ev[0]["status"], ev[0]["attempts"]), ("pending", 1))
        self.assertIn("cannot connect", ev[0]["last_error"])
        p, out = self.outbox("drain", check=FAILED)
        self.assertEqual(out["failed"], 1)
        self.assertEqual(self.events()[0]["attempts"], 2)
        self.redis.start()
        self.r.close()
        self.r = self.redis.client()
        self.r.set_many(["game:1", "game:5", "home:x", "game:6"])
        p, out = self.outbox("drain", check=OK)
        self.assertEqual((out["delivered"], out["pending"]), (1, []))
        self.assertEqual(self.r.exists_many(["game:1", "game:5", "home:x", "game:6"]),
                         {"game:6"})
        self.assertEqual(self.events()[0]["status"], "delivered")

    def test_next_run_delivers_pending_events(self):
        """Events left pending by one run are delivered by the next run of the
        dataset, even when that run changes nothing (invariant 7)."""
        self.write_config(invalidate=["game:{id}"])
        self.load(games(3))
        self.redis.kill()
        self.atomsync("run", check=OK)
        self.redis.start()
        self.r.close()
        self.r = self.redis.client()
        self.r.set_many(["game:1", "game:2", "game:3"])
        p = self.atomsync("run", check=OK)
        self.assertNotIn("warning", p.stderr)
        self.assertEqual(self.r.exists_many(["game:1", "game:2", "game:3"]), set())
        self.assertEqual([e["status"] for e in self.events()], ["delivered"])

    def test_paused_redis_timeouts_bound_the_wait(self):
        """Redis stopped with SIGSTOP accepts connections but never answers:
        the command timeout (timeout=500ms in the URL) bounds the wait, the
        run exits 0 with a warning, and the event is delivered after SIGCONT."""
        self.write_config(cache=self.redis.unix_url(timeout="500ms"))
        self.load(games(5))
        self.redis.pause()
        try:
            t0 = time.time()
            p = self.atomsync("run", check=OK)
            took = time.time() - t0
        finally:
            self.redis.resume()
        self.assertLess(took, 15, "the run waited %.1f s on a paused Redis" % took)
        self.assertIn("no answer within 500 ms", p.stderr)
        self.assertEqual(self.events()[0]["status"], "pending")
        self.outbox("drain", check=OK)
        self.assertEqual(self.events()[0]["status"], "delivered")

    def test_engine_killed_between_commit_and_delivery(self):
        """Crash point publish.committed: the data is published, the event is
        pending (none lost, none early: the keys are all still there); the
        next start delivers it.  Crash point outbox.delivered (Redis confirmed,
        not yet recorded): the event is delivered again (at least once)."""
        self.write_config(invalidate=["game:{id}"])
        self.load(games(4))
        self.r.set_many(["game:1", "game:4"])
        p = self.atomsync("run", env={"ATOMSYNC_CRASH": "publish.committed"})
        self.assertEqual(p.returncode, CRASH_EXIT, p.stderr)
        self.assertEqual(self.price(4), 14)
        self.assertEqual(self.r.exists_many(["game:1", "game:4"]), {"game:1", "game:4"})
        self.assertEqual([(e["status"], e["attempts"]) for e in self.events()],
                         [("pending", 0)])
        self.atomsync("run", check=OK)
        self.assertEqual(self.r.exists_many(["game:1", "game:4"]), set())
        self.assertEqual(self.events()[0]["status"], "delivered")

        self.load(games(4, version=1))
        p = self.atomsync("run", env={"ATOMSYNC_CRASH": "outbox.delivered"})
        self.assertEqual(p.returncode, CRASH_EXIT, p.stderr)
        self.assertEqual(self.events()[1]["status"], "pending")
        self.r.set_many(["game:2"])
        self.outbox("drain", check=OK)
        self.assertEqual(self.r.exists_many(["game:2"]), set())
        self.assertEqual(self.events()[1]["status"], "delivered")


@for_each_store
class TestVolume(OutboxCase):
    def test_100k_keys_in_pipelined_batches(self):
        """100,000 changed rows: one event with 100,000 keys, delivered as
        UNLINKs of 1,000 keys each (INFO commandstats: 100 calls), every key
        gone (invariant 7)."""
        n = 100000
        self.write_config(invalidate=["game:{id}"])
        self.load(games(n))
        self.r.set_many("game:%d" % i for i in range(1, n + 1))
        before = self.r.commandstats().get("unlink", {}).get("calls", 0)
        self.atomsync("run", check=OK)
        calls = self.r.commandstats()["unlink"]["calls"] - before
        self.assertEqual(calls, n // 1000)
        self.assertEqual(self.r.cmd("DBSIZE"), 0)
        ev = self.events()
        self.assertEqual([(e["keys"], e["status"]) for e in ev], [(n, "delivered")])

    def test_patterns_with_scan(self):
        """A pattern removes every matching key through SCAN MATCH (never
        KEYS), across many SCAN pages; other keys stay."""
        self.write_config(invalidate=["catalog:*", "home:page:?"])
        self.load(games(2))
        self.r.set_many(["catalog:%d" % i for i in range(5000)] +
                        ["home:page:%d" % i for i in range(10)] + ["home:page:10", "keep"])
        self.atomsync("run", check=OK)
        self.assertEqual(self.r.exists_many(["catalog:0", "catalog:4999", "home:page:3",
                                             "home:page:10", "keep"]),
                         {"home:page:10", "keep"})
        self.assertEqual(self.r.cmd("DBSIZE"), 2)
        stats = self.r.commandstats()
        self.assertNotIn("keys", stats)
        self.assertGreater(stats["scan"]["calls"], 5)


@for_each_store
class TestTemplates(OutboxCase):
    def test_deleted_and_updated_rows_render_non_key_columns(self):
        """A template over a non-key column: a deleted row's key is rendered
        from the live row before the DELETE, and an update that changes the
        column invalidates the old and the new key."""
        self.write_config(invalidate=["slug:{slug}", "g:{id}:{slug}", "{{tag}}:{id}"])
        self.load(games(3))
        self.atomsync("run", check=OK)
        recs = games(3, drop=(2,))
        recs[1]["slug"] = "renamed"  # game 3
        self.load(recs)
        keys = ["slug:game-1", "slug:game-2", "slug:game-3", "slug:renamed",
                "g:2:game-2", "g:3:renamed", "g:3:game-3", "{tag}:3", "{tag}:1"]
        self.r.set_many(keys)
        self.atomsync("run", "--allow-deletes", check=OK)
        self.assertEqual(self.r.exists_many(keys), {"slug:game-1", "{tag}:1"})

    def test_bad_templates_and_notify_are_configuration_errors(self):
        """A template naming no column, or an unbalanced brace, is a
        configuration error (exit 2) before anything is staged; so is
        `notify` on SQLite."""
        self.load(games(2))
        self.write_config(invalidate=["game:{idd}"])
        p = self.atomsync("run", check=USAGE)
        self.assertIn("no column 'idd'", p.stderr)
        self.write_config(invalidate=["game:{id"])
        self.atomsync("run", check=USAGE)
        self.assertFalse(self.store.table_exists("games"))
        if self.store_name == "sqlite":
            self.write_config(extra="    notify: games\n")
            p = self.atomsync("run", check=USAGE)
            self.assertIn("notify needs a PostgreSQL store", p.stderr)


@for_each_store
class TestAuth(OutboxCase):
    def setUp(self):
        StoreTestCase.setUp(self)
        os.makedirs(self.path("redis"))
        self.redis = RedisServer(dir=self.path("redis"), tcp=True,
                                 user="alice", password="s3cr3t-pw")
        self.r = self.redis.client()

    def test_auth_user_password_and_db_over_tcp(self):
        """redis://user:password@127.0.0.1:port/3: AUTH with the ACL user,
        SELECT 3; a wrong password leaves the event pending, and the password
        is printed nowhere (stderr, outbox list)."""
        self.r.cmd("SELECT", 3)
        self.r.set_many(["game:1", "game:2"])
        self.write_config(invalidate=["game:{id}"],
                          cache=self.redis.tcp_url(db=3, userinfo="alice:wrong-pw"))
        self.load(games(2))
        p = self.atomsync("run", check=OK)
        self.assertIn("WRONGPASS", p.stderr)
        p2 = self.atomsync("outbox", "list")
        for text in (p.stderr, p.stdout, p2.stdout, p2.stderr):
            self.assertNotIn("wrong-pw", text)
        self.write_config(invalidate=["game:{id}"],
                          cache=self.redis.tcp_url(db=3, userinfo="alice:s3cr3t-pw"))
        p = self.atomsync("outbox", "drain", check=OK)
        self.assertNotIn("s3cr3t", p.stdout + p.stderr)
        self.assertEqual(self.r.exists_many(["game:1", "game:2"]), set())


class Receiver(http.server.BaseHTTPRequestHandler):
    statuses = []
    bodies = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        status = self.statuses.pop(0) if self.statuses else 200
        self.bodies.append((self.path, self.headers.get("X-Atomsync-Event"),
                            json.loads(body), status))
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *a):
        pass


@for_each_store
class TestWebhook(OutboxCase):
    def setUp(self):
        super().setUp()
        Receiver.statuses, Receiver.bodies = [], []
        self.http = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
        self.port = self.http.server_address[1]
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def tearDown(self):
        self.http.shutdown()
        self.http.server_close()
        super().tearDown()

    def test_webhook_post_retried_and_secret_never_printed(self):
        """The webhook receives one POST per run with the summary (dataset,
        run_id, counts, keys count, patterns, event id), after commit; a 500
        is retried within the drain; when the receiver is down the run still
        exits 0, and the URL's secret path is printed nowhere."""
        hook = "http://127.0.0.1:%d/hooks/TOPSECRET" % self.port
        self.write_config(extra="    webhook: %s\n" % hook)
        self.load(games(3))
        Receiver.statuses = [500]
        self.atomsync("run", check=OK)
        self.assertEqual([b[3] for b in Receiver.bodies], [500, 200])
        path, event_id, body, _ = Receiver.bodies[-1]
        self.assertEqual(path, "/hooks/TOPSECRET")
        self.assertEqual(body["dataset"], "games")
        self.assertEqual(body["counts"], {"inserted": 3, "updated": 0, "deleted": 0})
        self.assertEqual(body["keys_count"], 3)
        self.assertEqual(body["patterns"], ["home:*", "catalog:*"])
        self.assertEqual(str(body["event_id"]), event_id)
        self.assertEqual([e["status"] for e in self.events()], ["delivered", "delivered"])
        # The receiver goes away: the run succeeds, the webhook waits.
        self.http.shutdown()
        self.http.server_close()
        self.load(games(4))
        p = self.atomsync("run", check=OK)
        self.assertIn("webhook 127.0.0.1:%d" % self.port, p.stderr)
        p2 = self.atomsync("outbox", "list")
        for text in (p.stderr, p.stdout, p2.stdout, p2.stderr):
            self.assertNotIn("TOPSECRET", text)
        self.assertEqual([e["status"] for e in self.events()][-2:], ["delivered", "pending"])


@for_each_store
class TestNotify(OutboxCase):
    def test_notify_received_only_after_commit(self):
        """PostgreSQL: `notify: channel` sends pg_notify inside the publish
        transaction: a LISTEN session (psql) gets nothing from a publish
        killed before COMMIT, and gets the summary of a committed one, whose
        data it can already read (invariant 7)."""
        if self.store_name != "postgres":
            self.skipTest("NOTIFY is PostgreSQL's")
        self.write_config(invalidate=["game:{id}"], extra="    notify: games_changed\n")
        self.load(games(3))
        psql = subprocess.Popen(["psql", "-X", "-q", "-t", "-A", self.store.url],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, bufsize=1)
        lines = []
        threading.Thread(target=lambda: [lines.append(l) for l in psql.stdout],
                         daemon=True).start()
        psql.stdin.write("LISTEN games_changed;\n")

        def poll(seconds):
            end = time.time() + seconds
            while time.time() < end:
                psql.stdin.write("SELECT 'tick';\n")
                time.sleep(0.05)
                got = [l for l in lines if "Asynchronous notification" in l]
                if got:
                    return got
            return []
        try:
            p = self.atomsync("run", env={"ATOMSYNC_CRASH": "publish.before_commit"})
            self.assertEqual(p.returncode, CRASH_EXIT)
            self.assertEqual(poll(1.0), [], "NOTIFY of a publish that did not commit")
            self.atomsync("run", check=OK)
            got = poll(5.0)
            self.assertEqual(len(got), 1, lines)
            self.assertEqual(self.price(3), 13)  # the data is visible
            payload = json.loads(got[0].split('with payload "', 1)[1].rsplit('" received', 1)[0])
            self.assertEqual(payload["counts"]["inserted"], 3)
            self.assertEqual(payload["keys_count"], 3)
        finally:
            psql.stdin.close()
            psql.wait(timeout=10)
            psql.stdout.close()


if __name__ == "__main__":
    import unittest
    unittest.main()
