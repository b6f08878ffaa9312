"""A private Redis server for the tests, from Debian's redis-server package.

RedisServer() starts `redis-server --port 0 --unixsocket <tmp>/redis.sock
--save '' --appendonly no` (optionally also on a loopback TCP port, with a
password or an ACL user) and stops it by its pid.  RedisClient speaks RESP
over the socket with the standard library only, so tests can fill the cache,
read INFO commandstats and watch keys without a Python driver.
"""

import atexit
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


def available():
    return os.path.exists(REDIS_SERVER)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class RedisError(Exception):
    pass


class RedisClient:
    """A minimal blocking RESP client (unix socket path or (host, port))."""

    def __init__(self, addr, password=None, user=None, timeout=10):
        if isinstance(addr, str):
            self.sock = socket.socket(socket.AF_UNIX)
        else:
            self.sock = socket.socket(socket.AF_INET)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect(addr)
        except OSError:
            self.sock.close()
            raise
        self.buf = b""
        if password:
            self.cmd(*(["AUTH", user, password] if user else ["AUTH", password]))

    def close(self):
        self.sock.close()

    @staticmethod
    def encode(args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            if not isinstance(a, bytes):
                a = str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        return b"".join(out)

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise RedisError("connection closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exact(self, n):
        while len(self.buf) < n + 2:
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise RedisError("connection closed")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def read(self):
        line = self._line()
        t, rest = line[:1], line[1:]
        if t == b"+":
            return rest.decode()
        if t == b"-":
            raise RedisError(rest.decode())
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            return None if n < 0 else self._exact(n).decode("utf-8", "replace")
        if t == b"*":
            n = int(rest)
            return None if n < 0 else [self.read() for _ in range(n)]
        raise RedisError("bad reply %r" % line)

    def cmd(self, *args):
        self.sock.sendall(self.encode(args))
        return self.read()

    def pipeline(self, commands):
        self.sock.sendall(b"".join(self.encode(c) for c in commands))
        return [self.read() for _ in commands]

    # -- conveniences --
    def set_many(self, keys, value="cached"):
        keys = list(keys)
        for i in range(0, len(keys), 1000):
            chunk = keys[i:i + 1000]
            args = ["MSET"]
            for k in chunk:
                args += [k, value]
            self.cmd(*args)

    def exists_many(self, keys):
        """The subset of keys that exist."""
        keys = list(keys)
        res = self.pipeline([("EXISTS", k) for k in keys])
        return {k for k, r in zip(keys, res) if r}

    def commandstats(self):
        """{'unlink': {'calls': n, ...}, ...} from INFO commandstats."""
        out = {}
        for line in self.cmd("INFO", "commandstats").splitlines():
            if not line.startswith("cmdstat_"):
                continue
            name, rest = line[len("cmdstat_"):].split(":", 1)
            fields = {}
            for kv in rest.split(","):
                k, v = kv.split("=", 1)
                try:
                    fields[k] = float(v) if "." in v else int(v)
                except ValueError:
                    fields[k] = v
            out[name] = fields
        return out


class RedisServer:
    def __init__(self, tcp=False, password=None, user=None, dir=None):
        self.dir = dir or tempfile.mkdtemp(prefix="atomsync-redis-")
        self.own_dir = dir is None
        self.sock = os.path.join(self.dir, "redis.sock")
        self.port = free_port() if tcp else 0
        self.password = password
        self.user = user
        self.proc = None
        self.start()
        atexit.register(self.stop)

    def start(self):
        if self.proc and self.proc.poll() is None:
            return
        if os.path.exists(self.sock):
            os.unlink(self.sock)
        args = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1",
                "--unixsocket", self.sock, "--unixsocketperm", "700",
                "--save", "", "--appendonly", "no", "--dir", self.dir,
                "--daemonize", "no", "--loglevel", "warning"]
        if self.password and not self.user:
            args += ["--requirepass", self.password]
        if self.user:
            # redis-server joins the words after --user into one ACL line
            args += ["--user", "default", "off",
                     "--user", self.user, "on", ">" + self.password, "~*", "&*", "+@all"]
        with open(os.path.join(self.dir, "redis.log"), "a") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=log)
        self.logname = log.name
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                c = self.client()
                c.cmd("PING")
                c.close()
                return
            except (OSError, RedisError):
                if self.proc.poll() is not None:
                    raise RuntimeError("redis-server exited: see %s" % self.logname)
                time.sleep(0.02)
        raise RuntimeError("redis-server did not start")

    def client(self, timeout=10):
        return RedisClient(self.sock, self.password, self.user, timeout=timeout)

    def unix_url(self, db=0, **query):
        q = ["db=%d" % db] + ["%s=%s" % kv for kv in query.items()]
        return "unix://%s?%s" % (self.sock, "&".join(q))

    def tcp_url(self, db=0, userinfo=None, port=None, **query):
        auth = userinfo + "@" if userinfo else ""
        url = "redis://%s127.0.0.1:%d/%d" % (auth, port or self.port, db)
        if query:
            url += "?" + "&".join("%s=%s" % kv for kv in query.items())
        return url

    def pause(self):
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self):
        os.kill(self.proc.pid, signal.SIGCONT)

    def kill(self):
        """SIGKILL, as a crash; start() brings up an empty server again."""
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if self.own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.own_dir = False
