"""`cmake --install` of the library (issue 13): the shared and static
libraries, header, pkg-config and CMake package files, man pages and bash
completion land under the prefix; the shared library exports only the
atomsync_* API; examples/embed builds against the installed prefix both
through pkg-config and through find_package(atomsync), and syncs."""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from atomsync_test import BIN, write_jsonl  # noqa: E402

SRC = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.path.dirname(os.path.abspath(BIN))


def sh(args, **kw):
    p = subprocess.run(args, capture_output=True, text=True, **kw)
    if p.returncode:
        raise AssertionError("%s: exit %d\n%s%s" % (" ".join(args), p.returncode,
                                                  p.stdout, p.stderr))
    return p.stdout


def sanitized(lib):
    out = sh(["nm", "-D", "--undefined-only", lib])
    return "__asan_" in out or "__sanitizer_cov" in out


class InstallTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="atomsync-install-")
        cls.prefix = os.path.join(cls.dir, "prefix")
        sh(["cmake", "--install", BUILD, "--prefix", cls.prefix])
        libdirs = [os.path.join(cls.prefix, d) for d in ("lib", "lib64")]
        libdirs += [os.path.join(d, x) for d in libdirs if os.path.isdir(d)
                    for x in os.listdir(d) if x.endswith("-linux-gnu")]
        cls.libdir = [d for d in libdirs
                      if os.path.exists(os.path.join(d, "libatomsync.a"))][0]

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)

    def test_files(self):
        for rel in ["bin/atomsync", "include/atomsync.h",
                    "share/man/man1/atomsync.1", "share/man/man5/atomsync.yml.5",
                    "share/man/man3/libatomsync.3",
                    "share/bash-completion/completions/atomsync",
                    "share/doc/atomsync/config.md"]:
            self.assertTrue(os.path.exists(os.path.join(self.prefix, rel)), rel)
        for rel in ["libatomsync.a", "libatomsync.so", "libatomsync.so.0",
                    "pkgconfig/atomsync.pc", "cmake/atomsync/atomsyncConfig.cmake",
                    "cmake/atomsync/atomsyncConfigVersion.cmake"]:
            self.assertTrue(os.path.exists(os.path.join(self.libdir, rel)), rel)
        soname = sh(["objdump", "-p", os.path.join(self.libdir, "libatomsync.so")])
        self.assertIn("SONAME               libatomsync.so.0", soname)

    def test_exports_only_the_api(self):
        out = sh(["nm", "-D", "--defined-only", os.path.join(self.libdir, "libatomsync.so")])
        names = [l.split()[-1].split("@")[0] for l in out.splitlines() if l.strip()]
        others = [n for n in names if not n.startswith("atomsync_") and n != "ATOMSYNC_0"]
        self.assertEqual(others, [])
        for fn in ["atomsync_sync", "atomsync_status", "atomsync_rollback",
                   "atomsync_verify", "atomsync_outbox_list", "atomsync_outbox_drain",
                   "atomsync_config_new", "atomsync_config_add_dataset"]:
            self.assertIn(fn, names)

    def run_embed(self, exe):
        work = os.path.join(self.dir, os.path.basename(exe) + "-work")
        os.makedirs(work, exist_ok=True)
        write_jsonl(os.path.join(work, "in.jsonl"), [{"id": i, "v": i * 2} for i in range(5)])
        env = dict(os.environ, LD_LIBRARY_PATH=self.libdir)
        p = subprocess.run([exe, "sqlite:" + os.path.join(work, "t.db"),
                            os.path.join(work, "in.jsonl")],
                           capture_output=True, text=True, env=env, cwd=work)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("completed: 5 seen, 5 inserted, 0 updated", p.stdout)
        # The same file again: unchanged (invariant 5); a missing one fails.
        p = subprocess.run([exe, "sqlite:" + os.path.join(work, "t.db"),
                            os.path.join(work, "in.jsonl")],
                           capture_output=True, text=True, env=env, cwd=work)
        self.assertIn("5 unchanged", p.stdout)
        p = subprocess.run([exe, "sqlite:" + os.path.join(work, "t.db"),
                            os.path.join(work, "missing.jsonl")],
                           capture_output=True, text=True, env=env, cwd=work)
        self.assertEqual(p.returncode, 1)
        self.assertIn("missing.jsonl", p.stderr)

    def test_embed_with_pkg_config(self):
        if sanitized(os.path.join(self.libdir, "libatomsync.so")):
            self.skipTest("a sanitizer build's library links only with the sanitizer")
        env = dict(os.environ, PKG_CONFIG_PATH=os.path.join(self.libdir, "pkgconfig"))
        flags = sh(["pkg-config", "--cflags", "--libs", "atomsync"], env=env).split()
        exe = os.path.join(self.dir, "embed-pc")
        sh(["cc", "-Wall", "-Werror", os.path.join(SRC, "examples/embed/embed.c"),
            "-o", exe] + flags)
        self.run_embed(exe)

    def test_embed_static(self):
        """The static libatomsync.a with its dependencies' shared libraries
        (Debian ships no static libpq's own dependencies, so `pkg-config
        --static` cannot link it): the command of docs/api.md."""
        if sanitized(os.path.join(self.libdir, "libatomsync.so")):
            self.skipTest("a sanitizer build's library links only with the sanitizer")
        env = dict(os.environ, PKG_CONFIG_PATH=os.path.join(self.libdir, "pkgconfig"))
        cflags = sh(["pkg-config", "--cflags", "atomsync"], env=env).split()
        deps = sh(["pkg-config", "--print-requires-private", "atomsync"], env=env).split()
        libs = sh(["pkg-config", "--libs"] + deps, env=env).split()
        exe = os.path.join(self.dir, "embed-static")
        sh(["cc", "-Wall", "-Werror", os.path.join(SRC, "examples/embed/embed.c")] + cflags
           + [os.path.join(self.libdir, "libatomsync.a")] + libs
           + ["-lstdc++", "-lpthread", "-lm", "-o", exe])
        self.assertNotIn("libatomsync", sh(["ldd", exe]))
        self.run_embed(exe)

    def test_embed_with_find_package(self):
        if sanitized(os.path.join(self.libdir, "libatomsync.so")):
            self.skipTest("a sanitizer build's library links only with the sanitizer")
        b = os.path.join(self.dir, "build-embed")
        sh(["cmake", "-S", os.path.join(SRC, "examples/embed"), "-B", b,
            "-DCMAKE_PREFIX_PATH=" + self.prefix])
        sh(["cmake", "--build", b])
        self.run_embed(os.path.join(b, "embed"))


CLI_DIR = os.path.join(SRC, "src", "cli")


class CliIsAClientTest(unittest.TestCase):
    """The command is a client of <atomsync.h>, with src/util as its
    toolbox: src/cli/ includes nothing of engine/, store/, config/,
    effects/, source/ (its include path does not even hold them), and its
    objects call no internal function but its own and src/util's (a
    prototype declared by hand would bypass the include path)."""

    def test_includes_and_include_path(self):
        import re
        for name in sorted(os.listdir(CLI_DIR)):
            with open(os.path.join(CLI_DIR, name)) as f:
                for n, l in enumerate(f, 1):
                    m = re.match(r'\s*#\s*include\s+"([^"]+)"', l)
                    if m:
                        self.assertRegex(m.group(1), r"^(cli|util)/[a-z_]+\.h$",
                                         "%s:%d" % (name, n))
        with open(os.path.join(BUILD, "compile_commands.json")) as f:
            cmds = [c for c in json.load(f) if "/src/cli/" in c["file"]
                    and "atomsync-cli.dir" in c.get("command", c.get("output", ""))]
        self.assertTrue(cmds)
        for c in cmds:
            args = c.get("command", " ".join(c.get("arguments", []))).split()
            incs = [a[2:] for a in args if a.startswith("-I")]
            self.assertEqual(sorted(os.path.realpath(i) for i in incs),
                             sorted([os.path.join(SRC, "include"),
                                     os.path.realpath(os.path.join(BUILD, "cli-include"))]),
                             c["file"])
            for d in os.listdir(os.path.join(BUILD, "cli-include")):
                self.assertIn(d, ("cli", "util"))

    def test_calls_only_the_api_and_util(self):
        objs = os.path.join(BUILD, "CMakeFiles")

        def symbols(target, sub, flag):
            d = os.path.join(objs, target + ".dir", "src", sub)
            files = [os.path.join(d, f) for f in os.listdir(d) if f.endswith(".o")]
            self.assertTrue(files, d)
            out = sh(["nm", flag] + files)
            return {l.split()[-1] for l in out.splitlines()
                    if l.strip() and not l.endswith(":")}
        used = symbols("atomsync-cli", "cli", "--undefined-only")
        own = (symbols("atomsync-cli", "cli", "--defined-only")
               | symbols("atomsync_obj", "util", "--defined-only"))
        internal = sorted(s for s in used - own if s.startswith("as_"))
        # The daemon's entry point is the command's own module.
        self.assertEqual(internal, ["as_serve_run"])
        self.assertIn("atomsync_sync", used)


if __name__ == "__main__":
    unittest.main()
