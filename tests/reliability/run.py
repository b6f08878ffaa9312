#!/usr/bin/env python3
"""`make reliability`: every fault sweep of atomsync, and one summary.

  crash points   tests/fault/test_crash_sweep.py (every named point x pass x
                 mode, SQLite), tests/fault/test_postgres_faults.py
  kill -9        tests/fault/test_kill9.py (seeded; SQLite and PostgreSQL)
  I/O faults     tests/reliability/vfs_driver (fault VFS: read, write, sync,
                 truncate, size, open; I/O error or disk full; once or from
                 then on; a staging batch, the publish, whole runs)
  full disk      tests/reliability/test_full_disk.py (a real tmpfs)
  allocations    tests/reliability/alloc_driver (every allocation of a small
                 run, samples of bigger ones, with threads, persistent
                 failures, rejects allowed, and the config reader)
  fuzzing        tests/fuzz: libFuzzer targets for ATOMSYNC_FUZZ_SECONDS
                 each, and their saved corpus replayed

Usage: run.py --build DIR [--asan-build DIR] [--quick] [--only PART,...]
              [--skip PART,...] [--fuzz-seconds N] [--seed N] [--save-corpus]
              [--json FILE]

--quick is the size CI runs (ctest entries reliability.*); without it the
sweeps are dense (about 30 minutes on two cores, most of it the
allocation sweep under ASan).  The allocation sweeps
and fuzzers use --asan-build (LeakSanitizer, libFuzzer) when it is given
and built, else --build.  Exit status 1 when anything was violated; the
summary's last lines say how to reproduce each failure.
"""

import argparse
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
PARTS = ["crash", "kill9", "pgfaults", "vfs", "fulldisk", "alloc", "fuzz"]
# part -> (summary total, the figure of each row that adds to it)
TOTALS = {"crash": ("crash", "crashes"), "kill9": ("kill", "kills"),
          "vfs": ("io", "faults"), "fulldisk": ("disk", "disk_full_failures"),
          "alloc": ("alloc", "failures"), "fuzz": ("fuzz", "executions")}

# (label, arguments, in --quick)
VFS_SWEEPS = [
    ("staging batch 2, I/O error once",
     ["--after", "stage.committed:1", "--until", "stage.committed:2"], True),
    ("staging batch 2, I/O error persisting",
     ["--after", "stage.committed:1", "--until", "stage.committed:2", "--persist"], False),
    ("staging batch 2, disk full once",
     ["--after", "stage.committed:1", "--until", "stage.committed:2", "--error", "full"], False),
    ("staging batch 2, disk full persisting",
     ["--after", "stage.committed:1", "--until", "stage.committed:2", "--error", "full",
      "--persist"], True),
    ("publish, I/O error once", ["--after", "stage.committed:last"], True),
    ("publish, I/O error persisting", ["--after", "stage.committed:last", "--persist"], False),
    ("publish, disk full once", ["--after", "stage.committed:last", "--error", "full"], False),
    ("publish, disk full persisting",
     ["--after", "stage.committed:last", "--error", "full", "--persist"], True),
    ("whole run (full), I/O error once", [], False),
    ("whole run (full), disk full persisting", ["--error", "full", "--persist"], False),
    ("whole run (incremental), I/O error once", ["--mode", "incremental"], False),
    ("whole run (append), I/O error once", ["--mode", "append"], False),
    ("live-table scan reader, I/O error once", ["--class", "ro"], False),
    ("opening files", ["--kinds", "o"], False),
]

# (label, arguments, in --quick); {seed} is replaced.
ALLOC_SWEEPS = [
    ("every allocation, 200 records", ["--records", "200", "--batch", "50"], True),
    ("sample, 200 records", ["--records", "200", "--batch", "50", "--sample", "250",
                             "--seed", "{seed}"], False),
    ("sample, 2,000 records", ["--records", "2000", "--batch", "300", "--sample", "400",
                               "--seed", "{seed}"], False),
    ("sample, rejects allowed", ["--records", "200", "--batch", "50", "--max-rejects", "5",
                                 "--sample", "150", "--seed", "{seed}"], True),
    ("sample, persisting failure", ["--records", "200", "--batch", "50", "--persist",
                                    "--sample", "200", "--seed", "{seed}"], False),
    ("sample, with threads", ["--records", "200", "--batch", "50", "--threads",
                              "--sample", "200", "--seed", "{seed}"], False),
    ("sample, incremental", ["--mode", "incremental", "--records", "200", "--batch", "50",
                             "--sample", "150", "--seed", "{seed}"], False),
]
# The config reader: a full config, and two that fail (the error paths).
for _name, _quick in (("seed-full", True), ("seed-env", False), ("seed-columns", False)):
    ALLOC_SWEEPS.append(("config reader (%s), every allocation" % _name[5:],
                         ["--target", "config", "--config",
                          os.path.join(HERE, "..", "fuzz", "corpus", "config", _name)], _quick))
FUZZ_TARGETS = ["record", "config", "json"]


class Summary:
    def __init__(self):
        self.rows = []        # (part, label, figures dict)
        self.violations = []  # (part, label, text, reproduce)
        self.seeds = {}

    def add(self, part, label, **fig):
        self.rows.append((part, label, fig))

    def violate(self, part, label, text, repro=""):
        self.violations.append((part, label, text, repro))


def sh(cmd, env=None, timeout=None, cwd=ROOT):
    e = dict(os.environ)
    if env:
        e.update(env)
    t0 = time.time()
    try:
        p = subprocess.run(cmd, env=e, cwd=cwd, capture_output=True, text=True,
                           timeout=timeout, errors="replace")
    except subprocess.TimeoutExpired as x:
        return -1, x.stdout or "", (x.stderr or "") + "\n[timed out]", time.time() - t0
    return p.returncode, p.stdout, p.stderr, time.time() - t0


def last_json(text):
    for line in reversed(text.strip().splitlines()):
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                return None
    return None


def note(msg):
    print(msg, file=sys.stderr, flush=True)


# ---- the existing fault suites, for their figures ----

def unittest_file(path, bin_, env=None, timeout=3000):
    e = {"ATOMSYNC_BIN": bin_, "PYTHONDONTWRITEBYTECODE": "1"}
    e.update(env or {})
    return sh([sys.executable, "-m", "unittest", "-v", path], env=e, timeout=timeout)


def ran_tests(err):
    m = re.search(r"^Ran (\d+) tests?", err, re.M)
    return int(m.group(1)) if m else 0


def part_crash(a, s):
    rc, out, err, dt = unittest_file(os.path.join(ROOT, "tests/fault/test_crash_sweep.py"), a.bin)
    points, attempts = set(), 0
    for mode, passes in re.findall(r"^(\w+): passes (\{.*\})$", err, re.M):
        d = eval(passes, {})  # the test prints a dict literal
        pts = [p for p in d if p in CRASH_POINTS]
        points.update(pts)
        attempts += sum(d[p] for p in pts)
    modes = len(re.findall(r"^(\w+): passes", err, re.M))
    s.add("crash", "crash-point sweep (SQLite)", points=len(points), modes=modes, stores=1,
          crashes=attempts, seconds=round(dt))
    if rc:
        s.violate("crash", "test_crash_sweep.py", tail(err), "python3 -m unittest -v "
                  "tests/fault/test_crash_sweep.py")


CRASH_POINTS = {"run.begun", "stage.begin", "stage.rows", "stage.checkpoint",
                "stage.committed", "publish.marked", "publish.begin", "publish.upserted",
                "publish.deleted", "publish.before_commit", "publish.committed"}


def part_pgfaults(a, s):
    rc, out, err, dt = unittest_file(os.path.join(ROOT, "tests/fault/test_postgres_faults.py"),
                                     a.bin)
    skipped = len(re.findall(r"\.\.\. skipped", err))
    s.add("crash", "PostgreSQL faults (backend killed, server stopped, "
          "workers, readers)", tests=ran_tests(err) - skipped, skipped=skipped,
          seconds=round(dt))
    if rc:
        s.violate("crash", "test_postgres_faults.py", tail(err),
                  "python3 -m unittest -v tests/fault/test_postgres_faults.py")


def part_kill9(a, s):
    env = {"ATOMSYNC_KILL_SEED": str(a.seed)}
    if a.quick:
        env["ATOMSYNC_KILLS"] = "10"
    rc, out, err, dt = unittest_file(os.path.join(ROOT, "tests/fault/test_kill9.py"), a.bin,
                                     env=env)
    kills = [int(k) for k in re.findall(r"^kills (\d+),", err, re.M)]
    resumed = [int(k) for k in re.findall(r"resumed (\d+),", err)]
    s.seeds["kill -9"] = a.seed
    s.add("kill9", "kill -9 during 200,000-record runs", stores=len(kills), kills=sum(kills),
          resumed=sum(resumed), seed=a.seed, seconds=round(dt))
    if rc:
        s.violate("kill9", "test_kill9.py", tail(err), "ATOMSYNC_KILL_SEED=%d python3 -m "
                  "unittest -v tests/fault/test_kill9.py" % a.seed)


def tail(text, n=12):
    return "\n".join(text.strip().splitlines()[-n:])


# ---- the drivers ----

def driver(build, name):
    p = os.path.join(build, "tests", "reliability", name)
    return p if os.path.exists(p) else None


def run_driver(s, part, label, cmd, timeout, env=None):
    rc, out, err, dt = sh(cmd, env=env, timeout=timeout)
    res = last_json(out)
    if res is None or rc not in (0, 1):
        s.violate(part, label, "driver exit %d: %s" % (rc, tail(err)), " ".join(cmd))
        return None, dt
    if res.get("violations"):
        repro = re.findall(r"reproduce: (.*)", err)
        first = [l for l in err.splitlines() if l.startswith("VIOLATION")][:3]
        s.violate(part, label, "%d violations, e.g.\n    %s" % (res["violations"],
                                                            "\n    ".join(first)),
                  repro[0] if repro else " ".join(cmd))
    return res, dt


def part_vfs(a, s, work):
    drv = driver(a.build, "vfs_driver")
    if not drv:
        s.violate("vfs", "vfs_driver", "not built in %s" % a.build)
        return
    for i, (label, args, quick) in enumerate(VFS_SWEEPS):
        if a.quick and not quick:
            continue
        d = os.path.join(work, "vfs%d" % i)
        recs = ["--records", "1200", "--batch", "300"] if a.quick else []
        cmd = [drv, "--dir", d, "--label", label] + recs + args
        note("vfs: %s" % label)
        res, dt = run_driver(s, "vfs", label, cmd, timeout=1800)
        if res:
            s.add("vfs", label, window_ops=res["window_ops"], faults=res["faults_injected"],
                  failed_cleanly=res["failed_cleanly"], published=res["published"],
                  resumed=res["resumed"], ambiguous=res["ambiguous_commit"],
                  by_phase=res["by_phase"], violations=res["violations"], seconds=round(dt))
        shutil.rmtree(d, ignore_errors=True)


def part_fulldisk(a, s):
    rc, out, err, dt = unittest_file(os.path.join(HERE, "test_full_disk.py"), a.bin,
                                     env={"ATOMSYNC_FULL_DISK_STEPS": "7" if a.quick else "14"})
    m = re.search(r"full disk: (\d+) runs, (\d+) failed with a full disk (\{.*?\}), (\d+) fitted",
                  err)
    if "skipped" in err and not m:
        why = re.search(r"skipped '(.*)'", err)
        s.add("fulldisk", "tmpfs full disk", skipped=why.group(1) if why else "skipped")
        return
    if m:
        s.add("fulldisk", "tmpfs full disk (store on a small tmpfs)", runs=int(m.group(1)),
              disk_full_failures=int(m.group(2)), by_phase=eval(m.group(3), {}),
              fitted=int(m.group(4)), seconds=round(dt))
    if rc:
        s.violate("fulldisk", "test_full_disk.py", tail(err),
                  "python3 -m unittest -v tests/reliability/test_full_disk.py")


def part_alloc(a, s, work):
    build = a.asan_build if a.asan_build and driver(a.asan_build, "alloc_driver") else a.build
    drv = driver(build, "alloc_driver")
    if not drv:
        s.violate("alloc", "alloc_driver", "not built in %s" % build)
        return
    env = {"LSAN_OPTIONS": "suppressions=%s" % os.path.join(ROOT, "tests/fuzz/lsan.supp"),
           "ASAN_OPTIONS": "detect_leaks=1"}
    for i, (label, args, quick) in enumerate(ALLOC_SWEEPS):
        if a.quick and not quick:
            continue
        d = os.path.join(work, "alloc%d" % i)
        cmd = [drv, "--dir", d] + [x.replace("{seed}", str(a.seed)) for x in args]
        if a.quick and build == a.asan_build and "--sample" not in args \
                and "--target" not in args:
            # Under the sanitizers every child also runs a leak check:
            # the quick pass samples what the plain build swept whole.
            cmd += ["--sample", "300", "--seed", str(a.seed)]
            label += " (sampled under ASan)"
        note("alloc: %s" % label)
        res, dt = run_driver(s, "alloc", label, cmd, timeout=3600, env=env)
        if res:
            fig = dict(allocations=res.get("allocations_per_run",
                                           res.get("allocations_per_parse")),
                       attempts=res["attempts"], failures=res["failures_injected"],
                       failed_cleanly=res["failed_cleanly"], violations=res["violations"],
                       leak_check=res["leak_check"], seconds=round(dt))
            if "seed" in res and "--sample" in cmd:
                fig["seed"] = res["seed"]
            s.add("alloc", label, **fig)
        shutil.rmtree(d, ignore_errors=True)


def part_fuzz(a, s, work):
    fdir = os.path.join(a.asan_build or "", "tests", "fuzz")
    env = {"LSAN_OPTIONS": "suppressions=%s" % os.path.join(ROOT, "tests/fuzz/lsan.supp")}
    for t in FUZZ_TARGETS:
        corpus = os.path.join(ROOT, "tests", "fuzz", "corpus", t)
        fz = os.path.join(fdir, "fuzz_" + t)
        if a.asan_build and os.path.exists(fz):
            out_dir = os.path.join(work, "corpus-" + t)
            # Crash inputs outlive the run, for the reproduce line.
            art = os.path.join(fdir, "fuzz-artifacts") + "/"
            os.makedirs(out_dir, exist_ok=True)
            os.makedirs(art, exist_ok=True)
            # Only this run's findings: artifacts of earlier runs (kept for
            # their reproduce lines) are not new violations.
            before = set(glob.glob(art + t + "-*"))
            note("fuzz: %s for %d s" % (t, a.fuzz_seconds))
            cmd = [fz, "-max_total_time=%d" % a.fuzz_seconds, "-timeout=10",
                   "-rss_limit_mb=2048", "-max_len=8192", "-print_final_stats=1",
                   "-seed=%d" % a.seed, "-artifact_prefix=" + art + t + "-", out_dir, corpus]
            rc, out, err, dt = sh(cmd, env=env, timeout=a.fuzz_seconds + 600)
            m = re.search(r"stat::number_of_executed_units: (\d+)", err)
            execs = int(m.group(1)) if m else 0
            found = sorted(set(glob.glob(art + t + "-*")) - before)
            s.add("fuzz", "libFuzzer %s (ASan, UBSan, LSan)" % t, executions=execs,
                  seconds=round(dt), new_inputs=len(os.listdir(out_dir)))
            if rc or found:
                s.violate("fuzz", "fuzz_" + t, tail(err, 20),
                          "%s %s" % (fz, found[0] if found else corpus))
            if a.save_corpus and not (rc or found):
                sh([fz, "-merge=1", corpus, out_dir], env=env, timeout=600)
        # The saved corpus replayed (the regression test).
        rp = os.path.join(a.asan_build or a.build, "tests", "fuzz", "fuzz_%s_replay" % t)
        if not os.path.exists(rp):
            rp = os.path.join(a.build, "tests", "fuzz", "fuzz_%s_replay" % t)
        if os.path.exists(rp):
            rc, out, err, dt = sh([rp, corpus], env=env, timeout=1200)
            m = re.search(r"replay: (\d+) inputs", out)
            s.add("fuzz", "saved corpus %s replayed" % t,
                  executions=int(m.group(1)) if m else 0, seconds=round(dt))
            if rc:
                s.violate("fuzz", "replay " + t, tail(err), "%s %s" % (rp, corpus))


def prepare_asan(a):
    """--asan-build auto: configure and build the clang sanitizer build
    (ASan, UBSan, LSan, libFuzzer) next to --build: build -> build-asan.
    ATOMSYNC_ASAN_BUILD names another directory, or "none"."""
    path = os.environ.get("ATOMSYNC_ASAN_BUILD") or a.build.rstrip("/") + "-asan"
    if path == "none":
        return None
    if not shutil.which("clang"):
        note("no clang: allocation sweeps without LeakSanitizer, no libFuzzer runs")
        return None
    path = os.path.abspath(path)
    if not os.path.exists(os.path.join(path, "CMakeCache.txt")):
        note("configuring the sanitizer build in %s" % path)
        rc, out, err, dt = sh(["cmake", "-S", ROOT, "-B", path, "-DCMAKE_BUILD_TYPE=Debug",
                               "-DATOMSYNC_SANITIZE=ON", "-DATOMSYNC_FUZZ=ON"],
                              env={"CC": "clang"})
        if rc:
            note(tail(err))
            return None
    note("building the sanitizer build in %s" % path)
    targets = ["alloc_driver", "vfs_driver", "atomsync-cli"]
    for t in FUZZ_TARGETS:
        targets += ["fuzz_" + t, "fuzz_%s_replay" % t]
    rc, out, err, dt = sh(["cmake", "--build", path, "-j", str(os.cpu_count() or 2),
                           "--target"] + targets)
    if rc:
        note(tail(out + err, 30))
        return None
    return path


# ---- the report ----

def fmt(fig):
    return ", ".join("%s %s" % (k.replace("_", " "), v) for k, v in fig.items())


def report(s, a, dt):
    w = sys.stdout.write
    w("\natomsync reliability summary (%s, seed %d, %.0f s)\n" %
      ("quick" if a.quick else "full", a.seed, dt))
    w("=" * 72 + "\n")
    tot = dict(crash=0, kill=0, io=0, alloc=0, fuzz=0, disk=0)
    for part, label, fig in s.rows:
        w("%-8s %s\n         %s\n" % (part, label, fmt(fig)))
        if part in TOTALS:
            total, figure = TOTALS[part]
            tot[total] += fig.get(figure, 0)
    w("-" * 72 + "\n")
    crash_rows = [f for p, l, f in s.rows if p == "crash" and "points" in f]
    if crash_rows:
        f = crash_rows[0]
        w("crash points x modes x stores:  %d x %d x %d, %d crashes injected\n" %
          (f["points"], f["modes"], f["stores"], tot["crash"]))
    w("kill -9 runs:                   %d\n" % tot["kill"])
    w("I/O faults injected:            %d (+ %d real full-disk failures)\n" %
      (tot["io"], tot["disk"]))
    w("allocation failures injected:   %d\n" % tot["alloc"])
    w("fuzz executions:                %d\n" % tot["fuzz"])
    w("violations found:               %d\n" % len(s.violations))
    for k, v in s.seeds.items():
        w("seed (%s):                 %s\n" % (k, v))
    for part, label, text, repro in s.violations:
        w("\nVIOLATION [%s] %s\n  %s\n" % (part, label, text.replace("\n", "\n  ")))
        if repro:
            w("  reproduce: %s\n" % repro)
    return dict(mode="quick" if a.quick else "full", seed=a.seed, seconds=round(dt),
                totals=tot, rows=[dict(part=p, label=l, **f) for p, l, f in s.rows],
                violations=[dict(part=p, label=l, text=t, reproduce=r)
                            for p, l, t, r in s.violations])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--asan-build")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", default="")
    ap.add_argument("--skip", default="")
    ap.add_argument("--fuzz-seconds", type=int,
                    default=int(os.environ.get("ATOMSYNC_FUZZ_SECONDS") or 0))
    ap.add_argument("--seed", type=int, default=int(os.environ.get("ATOMSYNC_SEED") or
                                                     time.time()) % 1000000)
    ap.add_argument("--save-corpus", action="store_true",
                    default=bool(os.environ.get("ATOMSYNC_FUZZ_SAVE")))
    ap.add_argument("--json")
    a = ap.parse_args()
    a.build = os.path.abspath(a.build)
    a.bin = os.path.join(a.build, "atomsync")
    if a.asan_build == "auto":
        a.asan_build = prepare_asan(a)
    elif a.asan_build:
        a.asan_build = os.path.abspath(a.asan_build)
        if not os.path.isdir(a.asan_build):
            a.asan_build = None
    if not a.fuzz_seconds:
        a.fuzz_seconds = 20 if a.quick else 120
    parts = [p for p in (a.only.split(",") if a.only else PARTS)
             if p and p not in a.skip.split(",")]
    s = Summary()
    t0 = time.time()
    base = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
    work = tempfile.mkdtemp(prefix="atomsync-reliability-", dir=base)
    try:
        for p in parts:
            note("== %s" % p)
            if p == "crash":
                part_crash(a, s)
            elif p == "pgfaults":
                part_pgfaults(a, s)
            elif p == "kill9":
                part_kill9(a, s)
            elif p == "vfs":
                part_vfs(a, s, work)
            elif p == "fulldisk":
                part_fulldisk(a, s)
            elif p == "alloc":
                part_alloc(a, s, work)
            elif p == "fuzz":
                part_fuzz(a, s, work)
            else:
                sys.exit("unknown part %s (parts: %s)" % (p, ", ".join(PARTS)))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out = report(s, a, time.time() - t0)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)
    return 1 if s.violations else 0


if __name__ == "__main__":
    sys.exit(main())
