"""A private PostgreSQL server for the tests, from Debian's packages.

One server per Python process (per test file), started on first use in a
temporary directory, listening only on a unix socket in that directory
(listen_addresses = ''), trust authentication, fsync on.  Each test gets its
own database (create_database).  When ATOMSYNC_PG_URL is set (CI may start
one server for the whole suite) that server is used and never stopped here.

initdb refuses to run as root: as root, the server runs as the `postgres`
system user in a data directory that user owns.  The server is stopped at
exit (pg_ctl stop on our own data directory, which signals its postmaster pid).
"""

import atexit
import os
import shutil
import subprocess
import tempfile
import time
import urllib.parse

PG_BIN = os.environ.get("ATOMSYNC_PG_BIN", "/usr/lib/postgresql/15/bin")
PG_CTL = os.path.join(PG_BIN, "pg_ctl")

_server = None


def available():
    return bool(os.environ.get("ATOMSYNC_PG_URL")) or os.path.exists(PG_CTL)


def _as_owner(cmd):
    """Run cmd as the postgres system user when we are root."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--"] + cmd
    return cmd


class PgServer:
    """A server we started (self.owned) or one given by ATOMSYNC_PG_URL."""

    def __init__(self, url=None):
        self.owned = url is None
        self.dir = None
        self.data = None
        self.sockdir = None
        if url:
            self.base_url = url
        else:
            self._start_new()

    # -- lifecycle --
    def _start_new(self):
        self.dir = tempfile.mkdtemp(prefix="atomsync-pg-")
        os.chmod(self.dir, 0o755)
        self.data = os.path.join(self.dir, "data")
        self.sockdir = self.dir
        self.log = os.path.join(self.dir, "server.log")
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        subprocess.run(_as_owner([os.path.join(PG_BIN, "initdb"), "-D", self.data,
                                  "-A", "trust", "-U", "postgres", "-E", "UTF8",
                                  "--locale=C.UTF-8", "--no-sync"]),
                       check=True, capture_output=True, text=True)
        with open(os.path.join(self.data, "postgresql.conf"), "a") as f:
            f.write("\n# atomsync tests\n"
                    "listen_addresses = ''\n"
                    "unix_socket_directories = '%s'\n"
                    "fsync = on\n"
                    "max_connections = 100\n"
                    "shared_buffers = 128MB\n"
                    "max_wal_size = 2GB\n"
                    "log_min_messages = warning\n"
                    "TimeZone = 'UTC'\n" % self.sockdir)
        self.start()
        self.base_url = "postgresql://postgres@/postgres?host=%s" % urllib.parse.quote(
            self.sockdir, safe="/")
        atexit.register(self.shutdown)

    def start(self):
        subprocess.run(_as_owner([PG_CTL, "-D", self.data, "-l", self.log, "-w",
                                  "-t", "60", "start"]),
                       check=True, capture_output=True, text=True)

    def pid(self):
        """The postmaster's pid, from its pid file."""
        with open(os.path.join(self.data, "postmaster.pid")) as f:
            return int(f.readline())

    def stop(self, mode="fast"):
        if not self.owned or not self.data or not os.path.exists(
                os.path.join(self.data, "postmaster.pid")):
            return
        subprocess.run(_as_owner([PG_CTL, "-D", self.data, "-m", mode, "-w", "stop"]),
                       capture_output=True, text=True)

    def shutdown(self):
        """Stop the server and remove its directory (at exit)."""
        self.stop()
        if self.owned and self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = self.data = None

    def restart(self):
        self.stop()
        self.start()

    def wait_ready(self, timeout=30):
        end = time.time() + timeout
        while time.time() < end:
            p = subprocess.run(["psql", "-X", "-A", "-t", "-c", "SELECT 1", self.base_url],
                               capture_output=True, text=True)
            if p.returncode == 0:
                return True
            time.sleep(0.2)
        return False

    # -- databases --
    def url_for(self, dbname):
        u = urllib.parse.urlsplit(self.base_url)
        return urllib.parse.urlunsplit((u.scheme, u.netloc, "/" + dbname, u.query, ""))

    def psql(self, sql, dbname="postgres", check=True):
        p = subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", sql,
                            self.url_for(dbname)], capture_output=True, text=True)
        if check and p.returncode != 0:
            raise RuntimeError("psql: %s: %s" % (sql, p.stderr.strip()))
        return p

    def create_database(self, name):
        self.psql('CREATE DATABASE "%s" TEMPLATE template0' % name)
        return self.url_for(name)

    def drop_database(self, name):
        self.psql('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % name, check=False)


def server():
    """The process's server, started on first use."""
    global _server
    if _server is None:
        _server = PgServer(os.environ.get("ATOMSYNC_PG_URL") or None)
    return _server
