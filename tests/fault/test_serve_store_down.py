"""atomsync serve while its PostgreSQL restarts.

The daemon outlives the store: runs fail (nothing published, invariant 2),
the scheduler logs the outage once rather than once per pass, reconnects,
and the schedule resumes once the server is back; every run that began is on
record (invariant 10) and runs never overlap (invariant 6).
"""

import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
from atomsync_test import store_names, write_jsonl  # noqa: E402
from test_serve import ServeCase, intervals, recs, wait_for  # noqa: E402

import unittest  # noqa: E402


@unittest.skipUnless("postgres" in store_names(), "needs PostgreSQL")
class TestStoreRestart(ServeCase):
    store_name = "postgres"

    def test_postgres_restart(self):
        import pgserver
        write_jsonl(self.path("a.jsonl"), recs(20))
        self.config("store: {store}\ndatasets:\n  a:\n    key: [id]\n"
                    "    schedule: 1s\n    source: {file: a.jsonl}\n")
        d = self.daemon()
        wait_for(lambda: len(d.event("run_end", status="completed")) >= 2,
                 what="two runs")
        server = pgserver.server()
        if not server.owned:
            self.skipTest("the PostgreSQL server is not this test's to stop")
        server.stop()
        time.sleep(4)
        down = d.event("store")
        self.assertLessEqual(len(down), 2, down)  # once per outage
        server.start()
        server.wait_ready()
        before = len(d.event("run_end", status="completed"))
        wait_for(lambda: len(d.event("run_end", status="completed")) >= before + 2,
                 timeout=20, what="the schedule to resume")
        self.assertEqual(d.stop(), 0)
        runs = [r for r in self.runs("a") if r["status"] != "failed"]
        iv = intervals(runs)
        self.assertEqual([y for x, y in zip(iv, iv[1:]) if y[0] < x[1]], [])
        self.assertEqual(len(self.store.rows("a", ["id"])), 20)


if __name__ == "__main__":
    unittest.main()
