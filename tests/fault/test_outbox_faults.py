"""Faults around the outbox (DESIGN.md invariant 7, with 1 and 2): the engine
killed at every named crash point of the publish and the delivery, and Redis
killed before the commit, after it and in the middle of a delivery.  After
each fault: keys are gone only if the data they describe is committed, a
committed run's events exist (none lost), and the next start delivers them.
Real redis-server and real stores; a loopback proxy decides when Redis dies.
"""

import os
import socket
import sys
import threading

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from atomsync_test import (CRASH_EXIT, OK, StoreTestCase,  # noqa: E402
                           for_each_store, write_jsonl)
from redisserver import RedisServer  # noqa: E402

CONFIG = """
store: {store}
cache: %s
datasets:
  games:
    key: [id]
    columns:
      id: {type: integer}
      price: {type: integer}
    invalidate: ["game:{id}", "list:*"]
    source:
%s"""

POINTS = ["publish.marked", "publish.begin", "outbox.written", "publish.upserted",
          "publish.deleted", "publish.before_commit", "publish.committed",
          "outbox.unlink_window", "outbox.delivered"]


class KillingProxy:
    """Loopback TCP proxy to the Redis unix socket that SIGKILLs the server
    once the client has sent `after` UNLINK commands (0: on connect)."""

    def __init__(self, redis, after):
        self.redis, self.after = redis, after
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(8)
        self.port = self.lsock.getsockname()[1]
        self.unlinks = 0
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            if self.after == 0:
                self.redis.kill()
                c.close()
                continue
            up = socket.socket(socket.AF_UNIX)
            try:
                up.connect(self.redis.sock)
            except OSError:
                c.close()
                continue
            threading.Thread(target=self.pump, args=(c, up, True), daemon=True).start()
            threading.Thread(target=self.pump, args=(up, c, False), daemon=True).start()

    def pump(self, src, dst, count):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if count:
                    self.unlinks += data.count(b"$6\r\nUNLINK\r\n")
                    if self.unlinks >= self.after:
                        self.redis.kill()
                        break
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.close()
            except OSError:
                pass

    def close(self):
        self.lsock.close()


@for_each_store
class TestOutboxFaults(StoreTestCase):
    def setUp(self):
        super().setUp()
        os.makedirs(self.path("redis"))
        self.redis = RedisServer(dir=self.path("redis"))

    def tearDown(self):
        self.redis.stop()
        super().tearDown()

    def setup(self, n, cache=None, source=None):
        self.n = n
        self.config(CONFIG % (cache or self.redis.unix_url(timeout="1s"),
                              source or "      file: {dir}/games.jsonl\n"))

    def load(self, version, n=None):
        write_jsonl(self.path("games.jsonl"),
                    [{"id": i, "price": 100 * version + i} for i in range(1, (n or self.n) + 1)])

    def keys(self):
        return ["game:%d" % i for i in range(1, self.n + 1)] + ["list:a", "list:b"]

    def cache_all(self):
        c = self.redis.client()
        c.set_many(self.keys())
        c.close()

    def present(self):
        c = self.redis.client()
        try:
            return c.exists_many(self.keys())
        finally:
            c.close()

    def events(self, run_id=None):
        import json
        p = self.atomsync("outbox", "list", "--json", check=OK)
        ev = json.loads(p.stdout)
        return [e for e in ev if run_id is None or e["run_id"] == run_id]

    def committed(self, version):
        rows = self.store.query("SELECT price FROM games WHERE id = 1")
        return bool(rows) and rows[0][0] == 100 * version + 1

    def test_crash_point_sweep(self):
        """Kill the engine at each crash point of the publish and delivery.
        Not committed: every key is still cached and the run left no event
        (invariants 2, 7).  Committed: its event exists, pending or
        delivered (none lost).  Then a clean run delivers everything and
        every key of the changed rows is gone."""
        self.setup(50)
        self.load(0)
        self.atomsync("run", check=OK)
        version = 0
        for point in POINTS:
            with self.subTest(point=point):
                version += 1
                self.load(version)
                self.cache_all()
                runs_before = len(self.runs("games"))
                p = self.atomsync("run", env={"ATOMSYNC_CRASH": point})
                self.assertEqual(p.returncode, CRASH_EXIT, "%s: %s" % (point, p.stderr))
                run_id = runs_before + 1
                if self.committed(version):
                    self.assertTrue(self.events(run_id), "%s: committed run lost its event"
                                    % point)
                else:
                    self.assertEqual(self.present(), set(self.keys()),
                                     "%s: a key went before the commit" % point)
                    self.assertEqual(self.events(run_id), [], point)
                self.atomsync("run", check=OK)
                self.assertTrue(self.committed(version), point)
                self.assertEqual(self.present(), set(), point)
                self.assertEqual({e["status"] for e in self.events()}, {"delivered"}, point)

    def test_redis_killed_before_commit(self):
        """Redis dies while the run is still staging (an exec source kills it
        before the end of data): the run publishes and exits 0, its event
        waits; the restarted Redis gets it from `outbox drain`."""
        self.setup(20, source='      exec: "cat {dir}/games.jsonl; kill -9 %d"\n'
                   % self.redis.proc.pid)
        self.load(1)
        self.cache_all()
        p = self.atomsync("run", check=OK)
        self.assertIn("not delivered", p.stderr)
        self.assertTrue(self.committed(1))
        self.assertEqual([e["status"] for e in self.events()], ["pending"])
        self.redis.kill()
        self.redis.start()
        self.cache_all()
        self.atomsync("outbox", "drain", check=OK)
        self.assertEqual(self.present(), set())

    def test_redis_killed_after_commit(self):
        """Redis dies between the commit and the delivery (the proxy kills it
        when the delivery connects): exit 0, the event stays pending with its
        error, and the next run delivers it."""
        self.setup(20)
        proxy = KillingProxy(self.redis, after=0)
        self.config(CONFIG % ("redis://127.0.0.1:%d/0?timeout=1s" % proxy.port,
                              "      file: {dir}/games.jsonl\n"))
        self.load(1)
        self.cache_all()
        p = self.atomsync("run", check=OK)
        proxy.close()
        self.assertIn("not delivered", p.stderr)
        self.assertTrue(self.committed(1))
        ev = self.events()
        self.assertEqual((ev[0]["status"], ev[0]["attempts"]), ("pending", 1))
        self.redis.start()
        self.cache_all()
        self.setup(20)
        self.atomsync("run", check=OK)
        self.assertEqual(self.present(), set())
        self.assertEqual([e["status"] for e in self.events()], ["delivered"])

    def test_redis_killed_mid_delivery(self):
        """Redis dies after 20 of the 100 UNLINKs of a 100,000-key event:
        the event is not marked delivered (not every command was confirmed);
        after a restart the drain delivers all of it."""
        self.setup(100000)
        self.load(0)
        proxy = KillingProxy(self.redis, after=20)
        self.config(CONFIG % ("redis://127.0.0.1:%d/0?timeout=2s" % proxy.port,
                              "      file: {dir}/games.jsonl\n"))
        self.cache_all()
        p = self.atomsync("run", check=OK)
        proxy.close()
        self.assertGreaterEqual(proxy.unlinks, 20)
        self.assertIn("not delivered", p.stderr)
        self.assertEqual([e["status"] for e in self.events()], ["pending"])
        self.redis.start()
        self.cache_all()
        self.setup(100000)
        self.atomsync("outbox", "drain", check=OK)
        self.assertEqual(self.present(), set())


if __name__ == "__main__":
    import unittest
    unittest.main()
