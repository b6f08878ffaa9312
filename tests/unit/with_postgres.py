"""Run a unit test binary with a fresh database of a private PostgreSQL
(tests/lib/pgserver.py) in ATOMSYNC_TEST_PG_URL:
    with_postgres.py BINARY [ARGS...]
The server is stopped when the binary exits; its exit status is ours."""

import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import pgserver  # noqa: E402


def main():
    srv = pgserver.server()
    name = "store_conformance_%d" % os.getpid()
    env = dict(os.environ, ATOMSYNC_TEST_PG_URL=srv.create_database(name))
    try:
        return subprocess.call(sys.argv[1:], env=env)
    finally:
        srv.drop_database(name)


if __name__ == "__main__":
    sys.exit(main())
