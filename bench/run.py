#!/usr/bin/env python3
"""atomsync's benchmark (issue 7): `make bench`, or python3 bench/run.py --bin PATH.

Runs each workload against atomsync and the alternatives on the same
generated data in the same run, alternating the tools, and reports the median
of --runs samples as a ratio to the workload's floor (the machine is shared and
noisy: absolute seconds mean little, ratios measured side by side do).
Writes bench/out/results.json with every sample.  Standard library only.
"""
import argparse
import datetime
import json
import os
import platform
import shlex
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import datagen  # noqa: E402

WORKLOADS = ["W1", "W2", "W3", "W4", "W5", "W6"]
SMALL = 100_000  # W1 is also run at this size, to show RSS does not grow

ATOMSYNC = "atomsync"
# The same with `--schema json` (key + data, the layout before inference):
# W1 and W2 compare inferred columns with it in the same run.
ATOMSYNC_JSON = "atomsync schema:json"
IMPORT = "sqlite3 .import"
IMPORT_JSON = "sqlite3 .import id,data"
UTILS = "sqlite-utils"
LOOP = "per-row upsert (py)"
SCOPED_TXN = "delete+insert txn (py)"
BULK = "bulk insert (py)"

# The floor each workload's ratio is taken against.
FLOOR = {"W1": IMPORT, "W1@100k": IMPORT, "W2": IMPORT, "W3": IMPORT,
         "W4": SCOPED_TXN, "W4 setup": BULK}

IDDATA_DDL = ("PRAGMA journal_mode=WAL; CREATE TABLE addons (id INTEGER "
              "PRIMARY KEY, data TEXT);")
ADDONS_DDL = ("PRAGMA journal_mode=WAL; CREATE TABLE addons (id INTEGER "
              "PRIMARY KEY, name TEXT, slug TEXT, summary TEXT, downloads "
              "INTEGER, category TEXT, score REAL, updated_at TEXT);")


def slug(tool):
    return "".join(c if c.isalnum() else "-" for c in tool).strip("-")


PG_BIN_DEFAULT = "/usr/lib/postgresql/15/bin"


def pg_available():
    """What tests/lib/pgserver.py needs: a server URL or pg_ctl."""
    return bool(os.environ.get("ATOMSYNC_PG_URL")) or os.path.exists(
        os.path.join(os.environ.get("ATOMSYNC_PG_BIN", PG_BIN_DEFAULT),
                     "pg_ctl"))


def gnu_time():
    """/usr/bin/time if it is GNU time (it takes -f and -o)."""
    path = "/usr/bin/time"
    try:
        p = subprocess.run([path, "-f", "%M", "-o", os.devnull, "--", "true"],
                           capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return path if p.returncode == 0 else None


def log(msg):
    sys.stderr.write(msg + "\n")
    sys.stderr.flush()


class Bench:
    def __init__(self, args):
        self.a = args
        self.samples = []
        self.checks = []
        self.notes = []
        self.failed = False
        self.external = {}
        self.bin = os.path.abspath(args.bin)
        self.py = sys.executable or "python3"
        self.loop_n = min(args.loop_records, args.records)
        self.gnu_time = gnu_time()
        if not self.gnu_time:
            self.notes.append("GNU time (/usr/bin/time) not found: peak RSS "
                              "is os.wait4's, which includes the runner's "
                              "own ~25 MiB at fork")

    # ---- one measured process ----

    def measure(self, workload, tool, argv, cwd, rnd, records, scale=1.0,
                timed=True, expect=None):
        """Run argv to completion: wall time, CPU time (os.wait4) and peak
        RSS (KiB; GNU time's wait4 when there is one, see below).  The time
        is multiplied by `scale` for a run on a prefix.  A sample with
        timed=False is setup: it is kept in results.json but not in the
        medians."""
        out_path = os.path.join(cwd, ".stdout")
        err_path = os.path.join(cwd, ".stderr")
        rss_path = os.path.join(cwd, ".rss")
        full = argv
        if self.gnu_time:
            full = [self.gnu_time, "-f", "%M", "-o", rss_path, "--"] + argv
        os.sync()  # earlier runs' dirty pages are not this run's cost
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            t0 = time.perf_counter()
            p = subprocess.Popen(full, cwd=cwd, stdout=out, stderr=err,
                                 stdin=subprocess.DEVNULL)
            _, status, ru = os.wait4(p.pid, 0)
            secs = time.perf_counter() - t0
        p.returncode = code = os.waitstatus_to_exitcode(status)
        with open(out_path, "rb") as f:
            stdout = f.read().decode(errors="replace")
        with open(err_path, "rb") as f:
            stderr = f.read().decode(errors="replace")
        # os.wait4's ru_maxrss of a child this process started counts this
        # (Python, ~25 MiB) process's pages as of the fork: Linux carries the
        # old mm's high-water mark across exec.  GNU time forks from a small
        # process, so its wait4 of the real child is that child's own peak.
        rss = ru.ru_maxrss
        if self.gnu_time:
            try:
                with open(rss_path) as f:
                    rss = int(f.read().split()[-1])
            except (OSError, ValueError, IndexError):
                pass
        s = {"workload": workload, "tool": tool, "round": rnd,
             "records": records, "seconds": secs * scale, "scale": scale,
             "measured_seconds": secs, "user_s": ru.ru_utime,
             "sys_s": ru.ru_stime, "rss_kib": rss,
             "rss_kib_wait4": ru.ru_maxrss, "exit": code,
             "timed": timed, "argv": argv}
        if tool in (ATOMSYNC, ATOMSYNC_JSON) and code == 0:
            try:
                info = json.loads(stdout)[0]
                s["counts"] = {k: info.get(k) for k in
                               ("seen", "inserted", "updated", "unchanged",
                                "deleted", "rejected")}
            except (ValueError, IndexError, KeyError, TypeError):
                pass
        if argv[1:2] == [os.path.join(HERE, "baselines.py")] and code == 0:
            try:  # the job's own time, without interpreter start-up
                s["inner_seconds"] = json.loads(stdout)["seconds"] * scale
            except (ValueError, KeyError, TypeError):
                pass
        if code != 0:
            s["stderr"] = stderr[-2000:]
            self.failed = True
            log("  FAILED (exit %d): %s\n%s" % (code, " ".join(argv),
                                                 stderr[-2000:]))
        if expect and "counts" in s:
            bad = {k: (s["counts"].get(k), v) for k, v in expect.items()
                   if s["counts"].get(k) != v}
            self.check("%s %s round %d counts" % (workload, tool, rnd),
                       not bad, "got/expected %s" % bad if bad else "")
        self.samples.append(s)
        log("  [%d] %-8s %-24s %8.3fs%s  %6.1f MiB%s" % (
            rnd, workload, tool, s["seconds"],
            " (x%.0f extrapolated)" % scale if scale != 1 else "",
            rss / 1024, "" if timed else "  (setup)"))
        return s

    def check(self, what, ok, detail=""):
        self.checks.append({"check": what, "ok": bool(ok), "detail": detail})
        if not ok:
            self.failed = True
            log("  CHECK FAILED: %s %s" % (what, detail))

    def count_rows(self, db, table, want, what):
        try:
            conn = sqlite3.connect("file:%s?mode=ro" % db, uri=True)
            n = conn.execute("SELECT count(*) FROM %s" % table).fetchone()[0]
            conn.close()
        except sqlite3.Error as e:
            n = "error: %s" % e
        self.check(what, n == want, "" if n == want else
                   "%s rows, expected %s" % (n, want))

    # ---- the tools ----

    def atomsync(self, db, table, path, extra=()):
        return [self.bin, "load", "sqlite:" + db, table, path, "--key", "id",
                "--json"] + list(extra)

    def sqlite3_setup(self, db, ddl):
        subprocess.run(["sqlite3", db, ddl], check=True,
                       stdout=subprocess.DEVNULL)

    @staticmethod
    def csv_of(path):
        return path[:-len(".jsonl")] + ".csv"

    def import_argv(self, db, path):
        return ["sqlite3", db, ".import --csv --skip 1 %s addons"
                % self.csv_of(path)]

    # ---- workloads ----

    def rotate(self, items, rnd):
        k = rnd % len(items)
        return items[k:] + items[:k]

    def run_addons(self, rnd, wd, sel):
        """W1 (first load), W2 (the same file again), W3 (1% changed, 0.5%
        deleted, 0.5% new) in one chain per tool, tools alternating."""
        n = self.a.records
        base, w3 = self.files["base"], self.files.get("w3")
        dbs = {t: os.path.join(wd, "w1-%s.db" % slug(t))
               for t in (ATOMSYNC, ATOMSYNC_JSON, IMPORT, UTILS, LOOP,
                         IMPORT_JSON)}
        chain = ("W2" in sel or "W3" in sel)
        want_w1 = "W1" in sel
        # W1: first load.  (Also the untimed setup of W2/W3 when W1 is not run.)
        if want_w1 or chain:
            steps = [ATOMSYNC, ATOMSYNC_JSON, IMPORT, UTILS] + (
                [LOOP, IMPORT_JSON] if want_w1 else [])
            for tool in self.rotate(steps, rnd):
                if tool == IMPORT and not want_w1:
                    continue
                self.w1_step(tool, dbs[tool], base, wd, rnd, n, want_w1)
            if want_w1:
                for tool in (ATOMSYNC, ATOMSYNC_JSON, IMPORT, UTILS,
                             IMPORT_JSON):
                    self.count_rows(dbs[tool], "addons", n,
                                    "W1 %s round %d rows" % (tool, rnd))
                self.count_rows(dbs[LOOP], "addons", self.loop_n,
                                "W1 %s round %d rows" % (LOOP, rnd))
            if want_w1 and n > SMALL:
                small = self.files["small"]
                for tool in self.rotate([ATOMSYNC, IMPORT], rnd):
                    db = os.path.join(wd, "small-%s.db" % slug(tool))
                    self.w1_step(tool, db, small, wd, rnd, SMALL, True,
                                 workload="W1@100k")
        # W2: the same file again; the floor imports it into an empty table.
        if "W2" in sel:
            for tool in self.rotate([ATOMSYNC, ATOMSYNC_JSON, IMPORT, UTILS],
                                    rnd):
                if tool in (ATOMSYNC, ATOMSYNC_JSON):
                    extra = ["--mode", "full"] + (
                        ["--schema", "json"] if tool == ATOMSYNC_JSON else [])
                    self.measure("W2", tool, self.atomsync(dbs[tool], "addons",
                                 base, extra), wd, rnd, n,
                                 expect={"inserted": 0, "updated": 0,
                                         "deleted": 0, "unchanged": n})
                elif tool == IMPORT:
                    db = os.path.join(wd, "w2-import.db")
                    self.sqlite3_setup(db, ADDONS_DDL)
                    self.measure("W2", tool, self.import_argv(db, base), wd,
                                 rnd, n)
                    os.unlink(db)
                else:
                    self.measure("W2", tool, ["sqlite-utils", "upsert",
                                 dbs[tool], "addons", base, "--nl", "--pk",
                                 "id"], wd, rnd, n)
        # W3: 1% changed, 0.5% deleted, 0.5% new, over the W1 state.
        if "W3" in sel:
            exp = self.files["w3_counts"]
            for tool in self.rotate([ATOMSYNC, IMPORT, UTILS], rnd):
                if tool == ATOMSYNC:
                    self.measure("W3", tool, self.atomsync(dbs[tool], "addons",
                                 w3, ["--mode", "full"]), wd, rnd, n,
                                 expect=exp)
                    self.count_rows(dbs[tool], "addons",
                                    n - exp["deleted"] + exp["inserted"],
                                    "W3 atomsync round %d rows" % rnd)
                elif tool == IMPORT:
                    db = os.path.join(wd, "w3-import.db")
                    self.sqlite3_setup(db, ADDONS_DDL)
                    self.measure("W3", tool, self.import_argv(db, w3), wd,
                                 rnd, n)
                    os.unlink(db)
                else:
                    self.measure("W3", tool, ["sqlite-utils", "upsert",
                                 dbs[tool], "addons", w3, "--nl", "--pk",
                                 "id"], wd, rnd, n)
        for db in dbs.values():
            for suffix in ("", "-wal", "-shm"):
                if os.path.exists(db + suffix):
                    os.unlink(db + suffix)

    def w1_step(self, tool, db, path, wd, rnd, n, timed, workload="W1"):
        if tool in (ATOMSYNC, ATOMSYNC_JSON):
            extra = ["--mode", "full"] + (
                ["--schema", "json"] if tool == ATOMSYNC_JSON else [])
            self.measure(workload, tool, self.atomsync(db, "addons", path,
                         extra), wd, rnd, n, timed=timed,
                         expect={"inserted": n, "deleted": 0})
        elif tool == IMPORT:
            self.sqlite3_setup(db, ADDONS_DDL)
            self.measure(workload, tool, self.import_argv(db, path), wd, rnd,
                         n, timed=timed)
        elif tool == IMPORT_JSON:
            self.sqlite3_setup(db, IDDATA_DDL)
            self.measure(workload, tool, ["sqlite3", db, ".import --csv %s "
                                          "addons" % self.files["iddata"]],
                         wd, rnd, n, timed=timed)
        elif tool == UTILS:
            # The same journal mode as the others (sqlite-utils keeps it).
            self.sqlite3_setup(db, "PRAGMA journal_mode=WAL;")
            self.measure(workload, tool, ["sqlite-utils", "insert", db,
                         "addons", path, "--nl", "--pk", "id"], wd, rnd, n,
                         timed=timed)
        else:
            self.measure(workload, tool, [self.py, os.path.join(
                HERE, "baselines.py"), "upsert-loop", db, self.files["loop"]],
                wd, rnd, n, scale=n / self.loop_n, timed=timed)

    def run_scoped(self, rnd, wd):
        """W4: replace 100 of 10,000 scopes (user_id) of 20 rows each."""
        init, repl, exp = self.files["w4"]
        adb = os.path.join(wd, "w4-atomsync.db")
        bdb = os.path.join(wd, "w4-baseline.db")
        scoped = ["--mode", "scoped", "--scope", "user_id"]
        n0 = self.a.scopes * self.a.scope_rows
        for tool in self.rotate([ATOMSYNC, BULK], rnd):
            if tool == ATOMSYNC:
                self.measure("W4 setup", tool, self.atomsync(adb, "subs", init,
                             scoped), wd, rnd, n0, expect={"inserted": n0})
            else:
                self.measure("W4 setup", tool, [self.py, os.path.join(
                    HERE, "baselines.py"), "scoped-setup", bdb, init], wd,
                    rnd, n0)
        for tool in self.rotate([ATOMSYNC, SCOPED_TXN], rnd):
            if tool == ATOMSYNC:
                self.measure("W4", tool, self.atomsync(adb, "subs", repl,
                             scoped), wd, rnd, n0, expect=exp)
            else:
                self.measure("W4", tool, [self.py, os.path.join(
                    HERE, "baselines.py"), "scoped-replace", bdb, repl], wd,
                    rnd, n0)
        for db in (adb, bdb):
            self.count_rows(db, "subs", n0 - exp["deleted"] + exp["inserted"],
                            "W4 %s round %d rows" % (
                os.path.basename(db), rnd))
            for suffix in ("", "-wal", "-shm"):
                if os.path.exists(db + suffix):
                    os.unlink(db + suffix)

    # ---- W5, W6: the HTTP and PostgreSQL scripts ----

    def run_external(self, workload, script):
        path = os.path.join(HERE, script)
        name = script[:-len(".py")]
        if not os.path.exists(path):
            self.notes.append("%s skipped: bench/%s is not there yet"
                              % (workload, script))
            return
        if workload == "W6" and not pg_available():
            self.notes.append("W6 skipped: no PostgreSQL (set ATOMSYNC_PG_URL, "
                              "or install Debian's postgresql for pg_ctl in "
                              "$ATOMSYNC_PG_BIN, default %s)" % PG_BIN_DEFAULT)
            return
        short = name[len("bench_"):]
        out = os.path.join(self.a.out_dir, short + ".json")
        try:
            helptext = subprocess.run([self.py, path, "--help"],
                                      capture_output=True, text=True,
                                      timeout=60).stdout
        except subprocess.TimeoutExpired:
            helptext = ""
        argv = [self.py, path]
        offered = [("--bin", self.bin), ("--runs", str(self.a.runs)),
                   ("--out", out), ("--data-dir", self.a.data_dir),
                   ("--seed", str(self.a.seed))]
        if "--runs" not in helptext:  # bench_postgres.py calls them rounds
            offered.append(("--rounds", str(self.a.runs)))
        if self.a.records_given:
            offered.append(("--records", str(self.a.records)))
        for opt, val in offered:
            if opt in helptext:
                argv += [opt, val]
        log("%s: %s" % (workload, " ".join(argv)))
        t0 = time.time()
        # Its stdout is echoed as it comes (to stderr: stdout is our table)
        # and kept for results.json.
        p = subprocess.Popen(argv, cwd=os.path.dirname(HERE), text=True,
                             stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
        lines = []
        for line in p.stdout:
            sys.stderr.write(line)
            sys.stderr.flush()
            lines.append(line)
        p.wait()
        p.stdout.close()
        said = "".join(lines)
        cands = [out] + [os.path.join(self.a.out_dir, n + ".json") for n in
                         (name, workload)]
        found = [c for c in cands if os.path.exists(c)
                 and os.path.getmtime(c) >= t0 - 1]
        ext = {"script": script, "argv": argv, "exit": p.returncode,
               "seconds": time.time() - t0, "stdout": said[-20000:]}
        if found:
            try:
                with open(found[0]) as f:
                    ext["json"] = json.load(f)
                ext["json_path"] = found[0]
            except ValueError as e:
                ext["json_error"] = str(e)
        doc = ext.get("json")
        if p.returncode == 77 or (isinstance(doc, dict) and doc.get("skipped")):
            why = (doc or {}).get("skipped") or said.strip()[-300:]
            self.notes.append("%s skipped by bench/%s: %s" % (workload, script,
                                                             why))
        elif "json" not in ext:
            self.notes.append("%s: bench/%s exited %d and wrote no JSON "
                              "(looked for %s)" % (workload, script,
                                                   p.returncode,
                                                   ", ".join(cands)))
            self.failed = True
        elif p.returncode != 0:
            # bench_http.py exits 1 when one of its own goals fails; the
            # figures are still good.
            self.notes.append("%s: bench/%s exited %d (its own goals); its "
                              "figures are in the table" % (workload, script,
                                                            p.returncode))
        self.external[workload] = ext

    def external_rows(self):
        """Table rows from the scripts' JSON: bench_http.py's `setups`,
        bench_postgres.py's medians, or a generic list of rows under
        rows/summary/results (workload, tool, median_s, ratio, rss_mib)."""
        rows = []

        def row(w, tool, med, ratio, rss=None, n=None, note="", src=""):
            rows.append({"workload": w, "tool": tool, "median_s": med,
                         "ratio": ratio, "rss_mib": rss, "n": n,
                         "note": note, "source": src})
        for w, ext in self.external.items():
            doc, src = ext.get("json"), ext["script"]
            if isinstance(doc, dict) and isinstance(doc.get("setups"), dict):
                for setup, r in doc["setups"].items():
                    row(w, "atomsync (%s)" % setup, r.get("median_s"),
                        r.get("ratio"), None, doc.get("runs"),
                        "floor %.3f s (latency-bound); goal <= %s: %s" % (
                            r.get("floor_s") or 0, r.get("goal"),
                            "PASS" if r.get("pass") else "FAIL"), src)
                continue
            if isinstance(doc, dict) and "first_load_median" in doc:
                n, rss = doc.get("rounds"), doc.get("peak_rss_mib")
                g = doc.get("goals") or {}
                row(w + " 1st", "atomsync (postgres)",
                    doc["first_load_median"], doc.get("first_load_ratio"),
                    rss, n, "goal <= %s" % g.get("first_load_ratio"), src)
                row(w + " 1st", "psql \\copy", doc.get("copy_median"), 1.0,
                    None, n, "floor", src)
                if doc.get("pgloader_median"):
                    row(w + " 1st", "pgloader", doc["pgloader_median"],
                        doc.get("pgloader_ratio"), None, n,
                        "atomsync %.2fx pgloader's time"
                        % doc.get("first_load_vs_pgloader"), src)
                row(w + " again", "atomsync (postgres)",
                    doc.get("unchanged_reload_median"),
                    doc.get("unchanged_reload_ratio"), rss, n,
                    "vs \\copy into an empty table; goal <= %s"
                    % g.get("unchanged_reload_ratio"), src)
                continue
            lst = None
            if isinstance(doc, dict):
                for k in ("rows", "summary", "results", "table"):
                    if isinstance(doc.get(k), list):
                        lst = doc[k]
                        break
            elif isinstance(doc, list):
                lst = doc
            for r in lst or []:
                if isinstance(r, dict) and "tool" in r:
                    row(str(r.get("workload") or w), str(r["tool"]),
                        r.get("median_s"), r.get("ratio"), r.get("rss_mib"),
                        r.get("n"), r.get("note") or "", src)
        return rows

    # ---- the whole run ----

    def prepare_data(self, sel):
        a = self.a
        os.makedirs(a.data_dir, exist_ok=True)
        t0 = time.time()
        log("data: generating or reusing %s records (seed %d) in %s"
            % (format(a.records, ","), a.seed, a.data_dir))
        self.files = {}
        if sel & {"W1", "W2", "W3"}:
            self.files["base"] = datagen.base_file(a.data_dir, a.records, a.seed)
            self.loop_n = min(a.loop_records, a.records)
            self.files["iddata"] = datagen.iddata_csv(self.files["base"])
            self.files["loop"] = datagen.prefix_file(self.files["base"],
                                                     self.loop_n, a.data_dir)
            if a.records > SMALL:
                self.files["small"] = datagen.base_file(a.data_dir, SMALL,
                                                        a.seed)
        if "W3" in sel:
            self.files["w3"], self.files["w3_counts"] = datagen.changed_file(
                a.data_dir, a.records, a.seed)
        if "W4" in sel:
            self.files["w4"] = datagen.scoped_files(
                a.data_dir, a.scopes, a.scope_rows, a.replace_scopes, a.seed)
        log("data: ready in %.1fs" % (time.time() - t0))

    def run(self):
        a = self.a
        sel = set(a.only)
        self.started = datetime.datetime.now(datetime.timezone.utc)
        self.prepare_data(sel)
        work = os.path.join(a.work_dir, "run-%d" % os.getpid())
        local = sel & {"W1", "W2", "W3", "W4"}
        for rnd in range(1, (a.runs if local else 0) + 1):
            log("round %d of %d" % (rnd, a.runs))
            wd = os.path.join(work, "r%d" % rnd)
            os.makedirs(wd, exist_ok=True)
            if sel & {"W1", "W2", "W3"}:
                self.run_addons(rnd, wd, sel)
            if "W4" in sel:
                self.run_scoped(rnd, wd)
            if not a.keep:
                shutil.rmtree(wd, ignore_errors=True)
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)
        if "W5" in sel:
            self.run_external("W5", "bench_http.py")
        if "W6" in sel:
            self.run_external("W6", "bench_postgres.py")
        self.finished = datetime.datetime.now(datetime.timezone.utc)

    # ---- results ----

    def machine(self):
        model = ""
        try:
            with open("/proc/cpuinfo") as f:
                for line in f:
                    if line.startswith("model name"):
                        model = line.split(":", 1)[1].strip()
                        break
        except OSError:
            pass
        mem = None
        try:
            with open("/proc/meminfo") as f:
                mem = int(f.readline().split()[1]) // 1024
        except (OSError, ValueError, IndexError):
            pass

        def cmd(argv):
            try:
                return subprocess.run(argv, capture_output=True, text=True,
                                      timeout=30).stdout.strip()
            except (OSError, subprocess.TimeoutExpired):
                return None
        repo = os.path.dirname(HERE)
        return {
            "nproc": os.cpu_count(), "cpu_model": model,
            "kernel": platform.release(), "uname": " ".join(platform.uname()),
            "mem_total_mib": mem, "loadavg_at_end": os.getloadavg(),
            "python": platform.python_version(),
            "sqlite3": cmd(["sqlite3", "--version"]),
            "sqlite_utils": cmd(["sqlite-utils", "--version"]),
        }, {
            "bin": self.bin, "version": cmd([self.bin, "--version"]),
            "commit": self.a.bin_commit or cmd(["git", "-C", repo,
                                                 "rev-parse", "HEAD"]),
            "dirty": False if self.a.bin_commit else
            bool(cmd(["git", "-C", repo, "status", "--porcelain",
                      "--untracked-files=no"])),
        }

    def report(self):
        rows = summarize(self.samples, self.loop_n)
        ext = self.external_rows()
        machine, atomsync = self.machine()
        doc = {
            "schema": 1,
            "date": self.started.isoformat(timespec="seconds"),
            "duration_s": (self.finished - self.started).total_seconds(),
            "machine": machine, "atomsync": atomsync,
            "config": {k: v for k, v in vars(self.a).items()
                       if k not in ("records_given", "report")},
            "command": " ".join(shlex.quote(x) for x in sys.argv),
            "summary": rows, "external_summary": ext,
            "goals": goals_of(rows + ext, self.samples, self.a.records),
            "checks": self.checks, "notes": self.notes,
            "samples": self.samples, "external": self.external,
        }
        os.makedirs(self.a.out_dir, exist_ok=True)
        path = os.path.join(self.a.out_dir, "results.json")
        with open(path + ".tmp", "w") as f:
            json.dump(doc, f, indent=1)
        os.replace(path + ".tmp", path)
        print_report(doc, path)


def summarize(samples, loop_n):
    """Per workload and tool: the median of the timed samples, its ratio to
    the floor's median, and the median of the per-round ratios (each tool's
    time over the floor's in the same round: noise that slows a whole round
    cancels out)."""
    groups = {}
    for s in samples:
        if s["timed"]:
            groups.setdefault((s["workload"], s["tool"]), []).append(s)
    med, cpu, by_round = {}, {}, {}
    for key, ss in groups.items():
        ok = [s for s in ss if s["exit"] == 0]
        med[key] = statistics.median(s["seconds"] for s in ok) if ok else None
        cpu[key] = statistics.median((s["user_s"] + s["sys_s"]) * s["scale"]
                                     for s in ok) if ok else None
        by_round[key] = {s["round"]: s["seconds"] for s in ok}
    rows = []
    order = ["W1", "W1@100k", "W2", "W3", "W4 setup", "W4"]
    for key in sorted(groups, key=lambda k: (order.index(k[0]) if k[0] in
                                             order else 99, k[1] != ATOMSYNC,
                                             k[1])):
        w, tool = key
        ss = groups[key]
        ok = [s for s in ss if s["exit"] == 0]
        fkey = (w, FLOOR.get(w))
        floor = med.get(fkey)
        m = med[key]
        paired = [t / by_round[fkey][r] for r, t in by_round[key].items()
                  if by_round.get(fkey, {}).get(r)]
        note = []
        if tool == LOOP:
            note.append("%s-record prefix, extrapolated linearly"
                        % format(loop_n, ","))
        if tool == UTILS and w == "W3":
            note.append("upsert: deletes nothing")
        if tool == IMPORT_JSON:
            note.append("(id, data) CSV into atomsync's table shape; not "
                        "the floor")
        if tool == IMPORT and w in ("W2", "W3"):
            note.append("into an empty table")
        if tool == FLOOR.get(w):
            note.append("floor")
        inner = [s["inner_seconds"] for s in ok if "inner_seconds" in s]
        if inner:
            note.append("%.3f s without interpreter start-up"
                        % statistics.median(inner))
        if len(ok) < len(ss):
            note.append("%d of %d runs failed" % (len(ss) - len(ok), len(ss)))
        rows.append({
            "workload": w, "tool": tool, "median_s": m,
            "ratio": (m / floor) if (m is not None and floor) else None,
            "ratio_paired": statistics.median(paired) if paired else None,
            "floor": FLOOR.get(w),
            "rss_mib": max(s["rss_kib"] for s in ss) / 1024,
            "median_cpu_s": cpu[key],
            "cpu_ratio": cpu[key] / cpu[fkey] if cpu[key] is not None
            and cpu.get(fkey) else None,
            "n": len(ok), "note": "; ".join(note)})
    return rows


def goals_of(rows, samples, records):
    """Issue 2's and issue 7's goals against the summary."""
    def find(w, tool, field):
        for r in rows:
            if r["workload"] == w and r["tool"] == tool:
                return r[field]
        return None
    out = []

    def goal(name, value, op, target, unit="x", note=""):
        if value is None:
            res = "not measured"
        else:
            res = "PASS" if (value <= target if op == "<=" else
                             value >= target) else "FAIL"
        out.append({"goal": name, "target": "%s %g%s" % (op, target, unit),
                    "measured": value, "unit": unit, "result": res,
                    "note": note})

    def paired(w):
        v = find(w, ATOMSYNC, "ratio_paired")
        return "per-round median %.2fx" % v if v is not None else ""
    w1 = find("W1", ATOMSYNC, "ratio")
    goal("issue 2: W1 first load vs .import", w1, "<=", 3.0, note=paired("W1"))
    goal("issue 7 / product: W1 first load vs .import", w1, "<=", 1.5,
         note=paired("W1"))
    su, at = find("W1", UTILS, "median_s"), find("W1", ATOMSYNC, "median_s")
    goal("issue 7: W1 speed-up over sqlite-utils", su / at if su and at
         else None, ">=", 10.0)
    w2 = find("W2", ATOMSYNC, "ratio")
    goal("issue 2: W2 unchanged reload vs .import", w2, "<=", 1.5,
         note=paired("W2"))
    goal("issue 7: W2 unchanged reload vs .import", w2, "<=", 1.0,
         note=paired("W2"))
    goal("issue 7: W3 1% change vs .import", find("W3", ATOMSYNC, "ratio"),
         "<=", 0.5, note=paired("W3"))
    # Issue 14: inferred columns cost at most 10% over key + data on W1.
    wj = find("W1", ATOMSYNC_JSON, "median_s")
    goal("issue 14: W1 inferred columns vs schema: json", at / wj
         if at and wj else None, "<=", 1.10)
    pg = "atomsync (postgres)"
    if find("W6 1st", pg, "ratio") is not None:
        goal("issue 7: W6 first load into PostgreSQL vs \\copy",
             find("W6 1st", pg, "ratio"), "<=", 2.0)
        goal("issue 4: W6 unchanged reload vs \\copy",
             find("W6 again", pg, "ratio"), "<=", 1.0)
    rss = [s["rss_kib"] / 1024 for s in samples
           if s["tool"] == ATOMSYNC and s["records"] >= records
           and s["workload"] in ("W1", "W2", "W3")]
    goal("issue 7: atomsync peak RSS at %s records" % format(records, ","),
         max(rss) if rss else None, "<=", 64, " MiB",
         "" if records >= 1_000_000 else
         "the goal is stated at 1,000,000 records")
    return out


def print_report(doc, path):
    machine, atomsync, cfg = doc["machine"], doc["atomsync"], doc["config"]

    def f(v, fmt):
        return fmt % v if isinstance(v, (int, float)) else "-"
    print()
    print("atomsync %s (%s%s) on %s, %s CPUs, kernel %s; %s records, "
          "median of %d; %s" % (
              (atomsync["version"] or "?").split()[-1],
              (atomsync["commit"] or "?")[:10],
              "+dirty" if atomsync["dirty"] else "", machine["cpu_model"],
              machine["nproc"], machine["kernel"],
              format(cfg["records"], ","), cfg["runs"], doc["date"]))
    print("%-9s %-24s %9s %7s %7s %7s %8s %3s  %s" % (
        "workload", "tool", "median s", "ratio", "paired", "CPU", "RSS MiB",
        "n", "note"))
    for r in doc["summary"] + doc["external_summary"]:
        print("%-9s %-24s %9s %7s %7s %7s %8s %3s  %s" % (
            r["workload"], r["tool"][:24], f(r["median_s"], "%.3f"),
            f(r["ratio"], "%.2fx"), f(r.get("ratio_paired"), "%.2fx"),
            f(r.get("cpu_ratio"), "%.2fx"), f(r["rss_mib"], "%.1f"),
            r["n"] if r["n"] is not None else "-", r["note"] or ""))
    print("(ratio: median wall time over the floor's; paired: median of the "
          "per-round ratios; CPU: median user+sys over the floor's)")
    print()
    print("%-48s %-10s %-10s %s" % ("goal", "target", "measured", "result"))
    for g in doc["goals"]:
        v = g["measured"]
        print("%-48s %-10s %-10s %s%s" % (
            g["goal"], g["target"],
            "-" if v is None else "%.2f%s" % (v, g["unit"]), g["result"],
            "  (%s)" % g["note"] if g["note"] else ""))
    bad = [c for c in doc["checks"] if not c["ok"]]
    print()
    print("checks: %d passed, %d failed%s" % (
        len(doc["checks"]) - len(bad), len(bad),
        "".join("\n  FAILED %s %s" % (c["check"], c["detail"])
                for c in bad)))
    for n in doc["notes"]:
        print("note: " + n)
    print("results: %s" % path)


def parse_args(argv):
    env = shlex.split(os.environ.get("ATOMSYNC_BENCH_ARGS", ""))
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Extra arguments can also come from $ATOMSYNC_BENCH_ARGS "
               "(e.g. ATOMSYNC_BENCH_ARGS='--records 100000' make bench).")
    p.add_argument("--bin", help="the atomsync executable (required)")
    p.add_argument("--report", metavar="RESULTS_JSON",
                   help="print the table of an earlier run and exit")
    p.add_argument("--runs", type=int, default=3,
                   help="samples per tool and workload (median; default 3)")
    p.add_argument("--records", type=int, default=None,
                   help="records in W1-W3 (default 1,000,000)")
    p.add_argument("--only", default=",".join(WORKLOADS),
                   help="comma-separated workloads (default: %(default)s)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--loop-records", type=int, default=20_000,
                   help="prefix the per-row upsert loop runs on (default "
                        "%(default)s; its time is scaled to --records)")
    p.add_argument("--scopes", type=int, default=10_000)
    p.add_argument("--scope-rows", type=int, default=20)
    p.add_argument("--replace-scopes", type=int, default=100)
    p.add_argument("--data-dir", default=os.path.join(HERE, "data"))
    p.add_argument("--out-dir", default=os.path.join(HERE, "out"))
    p.add_argument("--work-dir", default=None,
                   help="where the databases go (default OUT_DIR/work)")
    p.add_argument("--bin-commit", default=None,
                   help="the commit --bin was built from, for the record "
                        "(default: this tree's HEAD, +dirty if it has changes)")
    p.add_argument("--keep", action="store_true",
                   help="keep the databases of every round")
    a = p.parse_args(env + argv)
    if not a.bin and not a.report:
        p.error("--bin is required")
    a.records_given = a.records is not None
    if a.records is None:
        a.records = 1_000_000
    a.only = [w.strip().upper() for w in a.only.split(",") if w.strip()]
    for w in a.only:
        if w not in WORKLOADS:
            p.error("--only: unknown workload %s (have %s)"
                    % (w, ", ".join(WORKLOADS)))
    if a.runs < 1 or a.records < 1 or a.loop_records < 1:
        p.error("--runs, --records and --loop-records must be positive")
    if a.replace_scopes > a.scopes or a.scope_rows < 4:
        p.error("--replace-scopes must be <= --scopes; --scope-rows >= 4")
    a.data_dir = os.path.abspath(a.data_dir)
    a.out_dir = os.path.abspath(a.out_dir)
    a.work_dir = os.path.abspath(a.work_dir or os.path.join(a.out_dir, "work"))
    return a


def reprint(path):
    """The table of an earlier results.json, recomputed from its samples."""
    with open(path) as f:
        doc = json.load(f)
    cfg = doc["config"]
    doc["summary"] = summarize(doc["samples"], min(cfg["loop_records"],
                                                   cfg["records"]))
    doc["goals"] = goals_of(doc["summary"] + doc.get("external_summary", []),
                            doc["samples"], cfg["records"])
    print_report(doc, path)
    return 0


def main(argv):
    a = parse_args(argv)
    if a.report:
        return reprint(a.report)
    if not os.access(a.bin, os.X_OK):
        log("run.py: %s is not an executable (build atomsync first)" % a.bin)
        return 2
    missing = [t for t in ("sqlite3", "sqlite-utils") if not shutil.which(t)]
    if missing:
        log("run.py: %s not found (Debian packages sqlite3, sqlite-utils)"
            % " and ".join(missing))
        return 2
    b = Bench(a)
    b.run()
    b.report()
    return 1 if b.failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
