"""A rollback's cache invalidations (invariant 7): the rows a rollback
changes are invalidated like a run's, recorded in the rollback's own
transaction and delivered after its commit; keys of rows it leaves as they
were stay cached.  Against a real redis-server and each store.
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
sys.path.insert(0, HERE)
import test_outbox as o  # noqa: E402  (OutboxCase, games)
from atomsync_test import OK, for_each_store  # noqa: E402


@for_each_store
class RollbackOutboxTest(o.OutboxCase):

    def test_rollback_invalidates_the_keys_it_changes(self):
        self.write_config(extra="    history: scd2\n")
        self.load(o.games(20))
        self.atomsync("run", check=OK)
        first = self.runs("games")[0]["run_id"]
        # Run 2: game 3 changes price, game 7 is deleted, game 21 is new.
        recs = o.games(21, drop=(7,))
        recs[2]["price"] = 99
        self.load(recs)
        self.atomsync("run", check=OK)
        cached = ["game:%d" % i for i in range(1, 22)] + ["home:top", "catalog:p1",
                                                         "cart:9"]
        self.r.set_many(cached)
        self.atomsync("rollback", "games", "--to-run", str(first), check=OK)
        rollback = self.runs("games")[0]
        self.assertEqual((rollback["kind"], rollback["inserted"], rollback["updated"],
                          rollback["deleted"]), ("rollback", 1, 1, 1))
        self.assertEqual(self.price(3), 13)
        self.assertEqual(set(cached) - self.r.exists_many(cached),
                         {"game:3", "game:7", "game:21", "home:top", "catalog:p1"})
        ev = self.events()
        self.assertEqual(len(ev), 3)
        self.assertEqual((ev[-1]["run_id"], ev[-1]["status"], ev[-1]["keys"]),
                         (rollback["run_id"], "delivered", 3))

    def test_template_over_a_non_key_column_gets_old_and_new_keys(self):
        """title:{title}: the rollback invalidates the title the row had
        before it (its 'before' row) and the title it restores."""
        self.write_config(invalidate=["title:{title}"], extra="    history: snapshot\n")
        self.load(o.games(5))
        self.atomsync("run", check=OK)
        first = self.runs("games")[0]["run_id"]
        recs = o.games(5)
        recs[2]["title"] = "Renamed"
        self.load(recs)
        self.atomsync("run", check=OK)
        cached = ["title:Game %d v0" % i for i in range(1, 6)] + ["title:Renamed"]
        self.r.set_many(cached)
        self.atomsync("rollback", "games", "--to-run", str(first), check=OK)
        self.assertEqual(set(cached) - self.r.exists_many(cached),
                         {"title:Game 3 v0", "title:Renamed"})
