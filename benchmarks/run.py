#!/usr/bin/env python3
"""Benchmarks of the real ``chant`` command on generated repositories.

For each size N (500, 5,000 and 50,000 specs by default) a repository is generated with
:mod:`chantlib.generate` (kept under ``benchmarks/out/``, keyed by N, the seed and a hash of
the generator) and the installed ``chant`` executable is run in subprocesses: cold and warm
``list --ready``, warm ``search`` (free text and structured), a ``lock acquire`` +
``lock release`` pair and ``index rebuild``. Each command's wall time (``time.perf_counter``
around spawning and reaping the child) is reported as the median of K runs, next to the
median of a bare ``<python> -c pass`` measured interleaved with the commands, and as a
multiple of it ("×bare"). Peak memory (max RSS) is measured in one extra, untimed run of
each command under ``/usr/bin/time -f %M`` (see :func:`memory_run` for why not from the
timed runs).

Usage::

    python benchmarks/run.py                              # all sizes, print markdown
    python benchmarks/run.py --write docs/benchmarks.md   # what `make bench` does
    python benchmarks/run.py --sizes 500,5000 --repeat 5
    python benchmarks/run.py --quick                      # N=500, K=3: a smoke run

After all of that (and the profile), :mod:`daemon` (``benchmarks/daemon.py``) measures the
daemon on the same repositories: cold and warm starts, the same CLI commands in daemon mode
next to direct mode, socket and HTTP round trips with 1 and 8 clients, watch latency and the
daemon's RSS (``--no-daemon`` skips it).

Every subprocess has a timeout; a failing or timed-out command is reported in the table,
never a crash. Every daemon started is stopped, on errors too.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import json
import os
import platform
import re
import select
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import daemon as daemon_bench  # benchmarks/daemon.py: this script's folder is sys.path[0]

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_OUT = os.path.join(ROOT, "benchmarks", "out")
DEFAULT_SIZES = (500, 5000, 50000)
SCALE_SIZES = (5000, 50000, 200000)  # `--scale` (make bench-scale): too slow for the default run
DEFAULT_SEED = 7
DEFAULT_REPEAT = 11
BIG = 50000  # from this size on, fewer repeats

DIRECT = ["--direct"]  # every measured command runs in process (no daemon), except the auto_list row
FREE_QUERY = "merge driver"
STRUCT_QUERY = "status:ready AND label:bug"

FAST_TIMEOUT = 300.0  # seconds, any single warm command
SLOW_TIMEOUT = 1800.0  # seconds, cold list and index rebuild
GEN_TIMEOUT = 3600.0  # seconds, generating a repository

# the rows of each table, in order: (key, label)
ROWS = [
    ("bare", "bare interpreter (`python -c pass`)"),
    ("cold_list", "cold `chant list --ready`"),
    ("warm_list", "warm `chant list --ready`"),
    ("warm_list_all", "warm `chant list` (every active spec)"),
    ("search_free", f'warm `chant search "{FREE_QUERY}"`'),
    ("search_struct", f"warm `chant search '{STRUCT_QUERY}'`"),
    ("auto_list", "warm `chant list --ready` without `--direct` (daemon probe; none running)"),
    ("lock_pair", "`chant lock acquire` + `lock release`"),
    ("rebuild", "`chant index rebuild`"),
]
LABELS = dict(ROWS)


# --------------------------------------------------------------------------- running


class Run:
    """One finished (or killed) child: wall seconds, peak RSS in KiB, exit code, output."""

    __slots__ = ("wall", "maxrss_kib", "code", "timed_out", "error", "stdout", "stderr")

    def __init__(self, wall=0.0, maxrss_kib=0, code=None, timed_out=False, error=None, stdout="", stderr=""):
        self.wall = wall
        self.maxrss_kib = maxrss_kib
        self.code = code
        self.timed_out = timed_out
        self.error = error
        self.stdout = stdout
        self.stderr = stderr

    def ok(self, codes=(0,)) -> bool:
        return self.error is None and not self.timed_out and self.code in codes

    def why(self) -> str:
        if self.error:
            return self.error
        if self.timed_out:
            return f"timeout after {self.wall:.0f}s"
        tail = (self.stderr.strip().splitlines() or [""])[-1][:120]
        return f"exit {self.code}" + (f": {tail}" if tail else "")


def _wait(proc: subprocess.Popen, timeout: float) -> tuple[int, object, bool]:
    """Reap ``proc`` with ``os.wait4`` (its own rusage), killing it after ``timeout`` s."""
    timed_out = False
    pidfd = None
    if hasattr(os, "pidfd_open"):
        try:
            pidfd = os.pidfd_open(proc.pid)
        except OSError:
            pidfd = None
    if pidfd is not None:
        try:
            ready, _, _ = select.select([pidfd], [], [], timeout)
            if not ready:
                timed_out = True
                os.kill(proc.pid, signal.SIGKILL)  # not reaped yet: the pid is still ours
        finally:
            os.close(pidfd)
        _, status, usage = os.wait4(proc.pid, 0)
    else:  # no pidfd: a timer kills it; `lock` keeps it from killing after the reap
        lock = threading.Lock()
        state = {"done": False, "killed": False}

        def kill():
            with lock:
                if not state["done"]:
                    state["killed"] = True
                    os.kill(proc.pid, signal.SIGKILL)

        timer = threading.Timer(timeout, kill)
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            with lock:
                state["done"] = True
            timer.cancel()
        timed_out = state["killed"]
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, usage, timed_out


def run(argv: list[str], cwd: str, timeout: float, env: dict | None = None) -> Run:
    """Run ``argv``; wall time is ``perf_counter`` from just before the spawn to the reap."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        try:
            started = time.perf_counter()
            proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
            code, usage, timed_out = _wait(proc, timeout)
            wall = time.perf_counter() - started
        except OSError as exc:
            return Run(error=f"cannot run {argv[0]}: {exc}")
        out.seek(0)
        err.seek(0)
        return Run(
            wall=wall,
            maxrss_kib=usage.ru_maxrss,  # KiB on Linux
            code=code,
            timed_out=timed_out,
            stdout=out.read().decode("utf-8", "replace"),
            stderr=err.read().decode("utf-8", "replace"),
        )


TIME_BIN = "/usr/bin/time"


def rss_method() -> str:
    return "time" if os.access(TIME_BIN, os.X_OK) else "wait4"


def memory_run(argv: list[str], cwd: str, timeout: float, env: dict | None = None) -> tuple[Run, int | None]:
    """Run ``argv`` once for its peak RSS in KiB (not timed).

    Under ``/usr/bin/time -f %M``: the child is forked from that small process, so its
    ``ru_maxrss`` is its own. (A child spawned straight from this runner inherits the
    runner's high-water mark through fork/vfork + exec, which floors every figure at the
    runner's own RSS; that is the fallback when ``/usr/bin/time`` is missing.)
    """
    if rss_method() == "wait4":
        r = run(argv, cwd, timeout, env)
        return r, r.maxrss_kib if r.ok((0, 5)) else None
    fd, path = tempfile.mkstemp(prefix="chant-bench-rss-")
    os.close(fd)
    try:
        r = run([TIME_BIN, "-f", "%M", "-o", path, *argv], cwd, timeout, env)
        try:
            with open(path, encoding="utf-8") as fh:
                values = [int(x) for x in fh.read().split() if x.isdigit()]
        except OSError:
            values = []
    finally:
        os.unlink(path)
    return r, (values[-1] if values and r.ok((0, 5)) else None)


class Measure:
    """The runs of one row: medians over the successful ones, the first failure kept."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.walls: list[float] = []
        self.rss: list[int] = []
        self.reported: list[float] = []  # index rebuild: the command's own seconds
        self.failures: list[str] = []
        self.attempts = 0
        self.ratios: list[float] = []  # each run over the bare interpreter of its own round

    def add(self, wall: float, bare: float | None = None) -> None:
        self.walls.append(wall)
        if bare:
            self.ratios.append(wall / bare)

    def add_rss(self, kib: int | None) -> None:
        if kib is not None:
            self.rss.append(kib)

    @property
    def median(self) -> float | None:
        return statistics.median(self.walls) if self.walls else None

    @property
    def min(self) -> float | None:
        return min(self.walls) if self.walls else None

    @property
    def paired(self) -> float | None:
        """Median of the runs' ratios to the bare interpreter run just before them, in the same round."""
        return statistics.median(self.ratios) if self.ratios else None

    @property
    def peak_rss(self) -> int | None:
        return max(self.rss) if self.rss else None

    def to_dict(self) -> dict:
        return {
            "walls": self.walls, "rss_kib": self.rss, "reported": self.reported, "failures": self.failures,
            "attempts": self.attempts, "median": self.median, "min": self.min, "ratios": self.ratios,
            "paired": self.paired,
        }


# --------------------------------------------------------------------------- setup


def find_chant() -> str:
    """The installed ``chant`` script: next to this interpreter, else the project's venv, else PATH."""
    for candidate in (
        os.path.join(os.path.dirname(sys.executable), "chant"),
        os.path.join(ROOT, ".venv", "bin", "chant"),
    ):
        if os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("chant")
    if not found:
        raise SystemExit("error: no `chant` executable (run `make install`)")
    return found


def script_python(script: str) -> str:
    """The interpreter in the script's ``#!`` line (what the bare baseline must start)."""
    try:
        with open(script, "rb") as fh:
            first = fh.readline().decode("utf-8", "replace").strip()
    except OSError:
        return sys.executable
    if first.startswith("#!"):
        parts = first[2:].split()
        if parts and os.path.basename(parts[0]) != "env" and os.access(parts[0], os.X_OK):
            return parts[0]
    return sys.executable


PACKAGES = ("chantlib", "chant_cli", "chantd")  # chantd: the daemon's start-up is measured too


def bytecode_state() -> str:
    """Whether the packages have up-to-date bytecode (they must: PYTHONDONTWRITEBYTECODE)."""
    import importlib.util

    missing = []
    for pkg in PACKAGES:
        folder = os.path.join(ROOT, pkg)
        for name in sorted(os.listdir(folder)):
            if not name.endswith(".py"):
                continue
            src = os.path.join(folder, name)
            pyc = importlib.util.cache_from_source(src)
            try:
                if os.stat(pyc).st_mtime < os.stat(src).st_mtime:
                    missing.append(f"{pkg}/{name}")
            except OSError:
                missing.append(f"{pkg}/{name}")
    return "up to date" if not missing else f"MISSING/STALE for {len(missing)} module(s): {', '.join(missing[:5])}"


def source_stamps() -> dict[str, int]:
    """mtime of every module of the package, to tell whether the code changed during the run."""
    stamps = {}
    for pkg in PACKAGES:
        folder = os.path.join(ROOT, pkg)
        for name in os.listdir(folder):
            if name.endswith(".py"):
                try:
                    stamps[f"{pkg}/{name}"] = os.stat(os.path.join(folder, name)).st_mtime_ns
                except OSError:
                    pass
    return stamps


def generator_hash() -> str:
    with open(os.path.join(ROOT, "chantlib", "generate.py"), "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()[:10]


def ensure_repo(out_dir: str, n: int, seed: int, python: str, regenerate: bool, log) -> tuple[str | None, dict, str | None]:
    """The repository for ``n`` specs (generated if not there yet): (root, counts, error)."""
    key = f"n{n}-seed{seed}-{generator_hash()}"
    root = os.path.join(out_dir, key)
    meta = os.path.join(root, "bench-repo.json")
    if regenerate and os.path.isdir(root):
        shutil.rmtree(root)
    if os.path.isfile(meta):
        with open(meta, encoding="utf-8") as fh:
            return root, json.load(fh), None
    os.makedirs(out_dir, exist_ok=True)
    tmp = os.path.join(out_dir, f".tmp-{key}-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    log(f"[{n}] generating {n} specs (seed {seed}) into {root} ...")
    code = (
        "import json, sys\n"
        "from chantlib.generate import generate\n"
        "counts = generate(sys.argv[1], int(sys.argv[2]), seed=int(sys.argv[3]))\n"
        "json.dump(counts, open(sys.argv[1] + '/bench-repo.json', 'w'))\n"
    )
    r = run([python, "-c", code, tmp, str(n), str(seed)], cwd=ROOT, timeout=GEN_TIMEOUT)
    if not r.ok():
        shutil.rmtree(tmp, ignore_errors=True)
        return None, {}, f"generation failed: {r.why()}"
    os.replace(tmp, root) if not os.path.exists(root) else shutil.rmtree(tmp, ignore_errors=True)
    log(f"[{n}] generated in {r.wall:.1f}s")
    with open(meta, encoding="utf-8") as fh:
        return root, json.load(fh), None


def folder_bytes(path: str) -> int:
    """Apparent size: the sum of the file sizes under ``path``."""
    total = 0
    for folder, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(folder, name)).st_size
            except OSError:
                pass
    return total


# --------------------------------------------------------------------------- one size


def repeats(n: int, k: int) -> tuple[int, int]:
    """(fast, slow) repeat counts for size ``n`` when ``--repeat k``."""
    if n >= BIG:
        return max(1, min(k, 5)), max(1, min(k, 3))
    return k, max(1, min(k, 5))


def bench_size(n: int, args, chant: str, python: str, baseline: Measure, log) -> dict:
    res: dict = {"n": n, "measures": {}, "facts": {}, "errors": []}
    m = {key: Measure(key) for key, _ in ROWS if key != "bare"}
    res["measures"] = m
    local_bare = Measure("bare")
    res["bare_local"] = local_bare

    root, counts, error = ensure_repo(args.out, n, args.seed, python, args.regenerate, log)
    res["counts"] = counts
    if error:
        res["errors"].append(error)
        log(f"[{n}] {error}")
        return res
    res["root"] = root
    index_dir = os.path.join(root, ".chant", ".index")
    env = dict(os.environ)
    env.pop("CHANT_DEBUG", None)
    env.pop("CHANT_DAEMON", None)  # never a remote daemon
    env["NO_COLOR"] = "1"
    # an interrupted daemon benchmark may have left its daemon, probe specs or an edit behind
    daemon_bench.stop_stray(sys.modules[__name__], chant, root, env, log)
    daemon_bench.restore_leftovers(root, log)
    fast, slow = repeats(n, args.repeat)
    res["repeats"] = {"fast": fast, "slow": slow}
    this_round = {"bare": None}  # the bare interpreter's time in the current round

    def bare():
        r = run([python, "-c", "pass"], cwd=root, timeout=FAST_TIMEOUT, env=env)
        this_round["bare"] = r.wall if r.ok() else None
        if r.ok():
            baseline.add(r.wall)
            local_bare.add(r.wall)

    def chant_run(argv, timeout=FAST_TIMEOUT, direct=True) -> Run:
        return run([chant, *DIRECT, *argv] if direct else [chant, *argv], cwd=root, timeout=timeout, env=env)

    def measure(key: str, argv, codes=(0,), timeout=FAST_TIMEOUT, direct=True) -> Run:
        meas = m[key]
        meas.attempts += 1
        r = chant_run(argv, timeout, direct)
        if r.ok(codes):
            meas.add(r.wall, this_round["bare"])
        else:
            meas.failures.append(r.why())
        return r

    def status_json() -> dict | None:
        r = chant_run(["index", "status", "--json"])
        if not r.ok():
            res["errors"].append(f"index status: {r.why()}")
            return None
        try:
            return json.loads(r.stdout)
        except ValueError:
            res["errors"].append("index status: not JSON")
            return None

    # 1. cold list: the cache folder deleted before each run (the OS page cache stays warm)
    log(f"[{n}] cold list x{slow}")
    for _ in range(slow):
        bare()
        shutil.rmtree(index_dir, ignore_errors=True)
        measure("cold_list", ["list", "--ready"], codes=(0, 5), timeout=SLOW_TIMEOUT)

    # 2. warm-up (not measured): bring table and index in step, settle any "racy" files
    for argv in (["list", "--ready"], ["search", FREE_QUERY], ["list", "--ready"], ["search", STRUCT_QUERY]):
        r = chant_run(argv, SLOW_TIMEOUT)
        if not r.ok((0, 5)):
            res["errors"].append(f"warm-up `chant {shlex.join(argv)}`: {r.why()}")
    lock_id = None
    r = chant_run(["list", "--ready", "--json"])
    try:
        ready = json.loads(r.stdout) if r.ok((0, 5)) else None
    except ValueError:
        ready = None
    if isinstance(ready, list):
        res["facts"]["ready"] = len(ready)
        lock_id = ready[0]["id"] if ready else None
    for q, key in ((FREE_QUERY, "hits_free"), (STRUCT_QUERY, "hits_struct")):
        r = chant_run(["search", q, "--json"])
        try:
            res["facts"][key] = json.loads(r.stdout).get("total") if r.ok() else None
        except (ValueError, AttributeError):
            res["facts"][key] = None
    if lock_id is None:
        res["errors"].append("no ready spec to lock")
    else:
        res["facts"]["lock_id"] = lock_id
        chant_run(["lock", "release", lock_id, "--force"])  # a lease left by an interrupted run
    before = status_json()
    if before is not None:
        res["facts"]["warm_before"] = {k: before.get(k) for k in ("changed_since_last_run", "stale")}

    # 3. warm commands, round robin with the baseline so drift hits all of them alike
    log(f"[{n}] warm commands x{fast}")
    for _ in range(fast):
        bare()
        measure("warm_list", ["list", "--ready"], codes=(0, 5))
        measure("warm_list_all", ["list"], codes=(0, 5))
        measure("search_free", ["search", FREE_QUERY])
        measure("search_struct", ["search", STRUCT_QUERY])
        measure("auto_list", ["list", "--ready"], codes=(0, 5), direct=False)
        if lock_id is not None:
            meas = m["lock_pair"]
            meas.attempts += 1
            a = chant_run(["lock", "acquire", lock_id])
            b = chant_run(["lock", "release", lock_id])
            if a.ok() and b.ok():
                meas.add(a.wall + b.wall, this_round["bare"])
            else:
                meas.failures.append(f"acquire {a.why()}" if not a.ok() else f"release {b.why()}")
                chant_run(["lock", "release", lock_id, "--force"])
    after = status_json()
    if after is not None:
        res["facts"]["warm_after"] = {k: after.get(k) for k in ("changed_since_last_run", "stale")}

    # 4. index rebuild (wall time, and the seconds the command reports itself)
    log(f"[{n}] index rebuild x{slow}")
    for _ in range(slow):
        bare()
        r = measure("rebuild", ["index", "rebuild", "--json"], timeout=SLOW_TIMEOUT)
        if r.ok():
            try:
                m["rebuild"].reported.append(float(json.loads(r.stdout)["seconds"]))
            except (ValueError, KeyError, TypeError):
                pass

    # 5. size on disk, right after a rebuild
    stats = status_json()
    if stats is not None:
        res["facts"]["documents"] = stats.get("documents")
        res["facts"]["segments"] = stats.get("segments")
        res["facts"]["reported_size"] = stats.get("size_bytes")
        res["facts"]["specs"] = stats.get("specs")
        res["facts"]["active"] = stats.get("active")
        res["facts"]["archived"] = stats.get("archived")
    if os.path.isdir(index_dir):
        res["facts"]["index_bytes"] = folder_bytes(index_dir)
        res["facts"]["tantivy_bytes"] = folder_bytes(os.path.join(index_dir, "tantivy"))
    # 6. peak memory: one extra, untimed run of each command (see memory_run)
    log(f"[{n}] memory runs")

    def mem(key: str, argv, timeout=FAST_TIMEOUT, direct=True) -> None:
        r, kib = memory_run([chant, *(DIRECT if direct else []), *argv], root, timeout, env)
        m[key].add_rss(kib)
        if kib is None:
            res["errors"].append(f"memory run of `chant {shlex.join(argv)}`: {r.why()}")

    r, kib = memory_run([python, "-c", "pass"], root, FAST_TIMEOUT, env)
    baseline.add_rss(kib)
    local_bare.add_rss(kib)
    mem("warm_list", ["list", "--ready"])
    mem("warm_list_all", ["list"])
    mem("search_free", ["search", FREE_QUERY])
    mem("search_struct", ["search", STRUCT_QUERY])
    mem("auto_list", ["list", "--ready"], direct=False)
    if lock_id is not None:
        mem("lock_pair", ["lock", "acquire", lock_id])
        mem("lock_pair", ["lock", "release", lock_id])
    mem("rebuild", ["index", "rebuild"], SLOW_TIMEOUT)
    shutil.rmtree(index_dir, ignore_errors=True)
    mem("cold_list", ["list", "--ready"], SLOW_TIMEOUT)
    for argv in (["search", FREE_QUERY], ["list", "--ready"]):  # leave table and index warm
        chant_run(argv, SLOW_TIMEOUT)

    bare()
    return res


# --------------------------------------------------------------------------- profiling


_BREAKDOWN = """\
import time
t0 = time.perf_counter()
import io, sys  # already loaded at start-up: free
from chant_cli.main import main
t1 = time.perf_counter()
real, sys.stdout = sys.stdout, io.StringIO()
try:
    code = main(sys.argv[1:])
finally:
    sys.stdout = real
t2 = time.perf_counter()
real.write(f"{t1 - t0!r} {t2 - t1!r} {code!r}\\n")
"""

_CPROFILE = """\
import cProfile, io, pstats, sys
from chant_cli.main import main
pr = cProfile.Profile()
real, sys.stdout = sys.stdout, io.StringIO()
pr.enable()
try:
    main(sys.argv[1:])
finally:
    pr.disable()
    sys.stdout = real
s = io.StringIO()
pstats.Stats(pr, stream=s).sort_stats("tottime").print_stats(14)
print(s.getvalue())
"""

PROFILED = (
    ("warm_list", ["--direct", "list", "--ready"]),
    ("search_free", ["--direct", "search", FREE_QUERY]),
    ("search_struct", ["--direct", "search", STRUCT_QUERY]),
)


def breakdown(root: str, python: str, env: dict, runs: int = 5, commands=PROFILED,
              timeout: float = SLOW_TIMEOUT) -> dict:
    """Split commands into ``import chant_cli.main``, ``main(argv)`` and the rest.

    ``commands`` is a sequence of (key, argv). Each run is a child that times its own import
    and ``main(argv)``; its wall time is taken from outside as for the table, so "rest"
    (start-up, teardown, exit) comes from the same run. Medians of ``runs``, by key.
    """
    out = {}
    for key, argv in commands:
        series: dict[str, list] = {"wall": [], "import": [], "op": [], "rest": []}
        for _ in range(runs):
            r = run([python, "-c", _BREAKDOWN, *argv], cwd=root, timeout=timeout, env=env)
            try:
                imp, op, code = r.stdout.strip().splitlines()[-1].split()
                imp, op = float(imp), float(op)
            except (ValueError, IndexError):
                continue
            if r.ok() and code in ("0", "5"):
                series["wall"].append(r.wall)
                series["import"].append(imp)
                series["op"].append(op)
                series["rest"].append(r.wall - imp - op)
        if series["wall"]:
            out[key] = {k: statistics.median(v) for k, v in series.items()}
    return out


def importtime(root: str, python: str, env: dict, argv: list[str], top: int = 8) -> dict:
    """``python -X importtime -m chant_cli ARGV``: the heaviest top-level imports (microseconds)."""
    r = run([python, "-X", "importtime", "-m", "chant_cli", *argv], cwd=root, timeout=FAST_TIMEOUT, env=env)
    if not r.ok((0, 5)):
        return {"error": r.why()}
    rows = []
    for line in r.stderr.splitlines():
        mt = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)", line)
        if mt:
            rows.append((int(mt.group(2)), int(mt.group(1)), len(mt.group(3)) // 2, mt.group(4)))
    top_level = [row for row in rows if row[2] == 0]  # cumulative covers the whole subtree
    return {
        "modules": len(rows),
        "total_us": sum(row[0] for row in top_level),
        "top": sorted(top_level, reverse=True)[:top],
    }


def cprofile(root: str, python: str, env: dict, argv: list[str]) -> str:
    r = run([python, "-c", _CPROFILE, *argv], cwd=root, timeout=SLOW_TIMEOUT, env=env)
    if not r.ok((0, 5)):
        return f"(failed: {r.why()})"
    lines = r.stdout.splitlines()
    start = next((i for i, ln in enumerate(lines) if "function calls" in ln), 0)
    keep = [ln.rstrip() for ln in lines[start:] if ln.strip() and not ln.strip().startswith(("Ordered by", "List reduced"))]
    return "\n".join(keep).replace(ROOT + "/", "")


def profile(results: list[dict], python: str, env: dict, log) -> dict:
    """Where the warm commands spend their time (after the measurements, never during them)."""
    done = [r for r in results if r.get("root")]
    if not done:
        return {}
    prof: dict = {"breakdown": {}, "importtime": {}, "cprofile": {}}
    for r in done:
        log(f"[{r['n']}] profiling: in-process breakdown")
        prof["breakdown"][r["n"]] = breakdown(r["root"], python, env)
    sizes = {r["n"]: r for r in done}
    target = sizes.get(5000) or min(done, key=lambda r: r["n"])
    log(f"[{target['n']}] profiling: importtime")
    prof["importtime"]["--direct list --ready"] = importtime(target["root"], python, env, ["--direct", "list", "--ready"])
    lock_id = target.get("facts", {}).get("lock_id")
    if lock_id:
        prof["importtime"]["--direct lock acquire"] = importtime(target["root"], python, env,
                                                                 ["--direct", "lock", "acquire", lock_id])
        run([python, "-m", "chant_cli", "--direct", "lock", "release", lock_id, "--force"], target["root"],
            FAST_TIMEOUT, env)
    prof["importtime_n"] = target["n"]
    biggest = max(done, key=lambda x: x["n"])
    for r in sorted({target["n"]: target, biggest["n"]: biggest}.values(), key=lambda x: x["n"]):
        log(f"[{r['n']}] profiling: cProfile")
        prof["cprofile"][r["n"]] = {
            "--direct list --ready": cprofile(r["root"], python, env, ["--direct", "list", "--ready"]),
            f'--direct search "{FREE_QUERY}"': cprofile(r["root"], python, env, ["--direct", "search", FREE_QUERY]),
        }
    return prof


# --------------------------------------------------------------------------- rendering


def fmt_time(sec: float | None) -> str:
    if sec is None:
        return "—"
    if sec < 10:
        return f"{sec * 1000:.1f} ms"
    return f"{sec:.2f} s"


def fmt_bytes(n: int | None) -> str:
    if n is None:
        return "—"
    if n < 1024 * 1024:
        return f"{n / 1024:.1f} KiB ({n:,} B)"
    return f"{n / 1024 / 1024:.1f} MiB ({n:,} B)"


def fmt_rss(kib: int | None) -> str:
    return "—" if kib is None else f"{kib / 1024:.1f} MiB"


def times_bare(sec: float | None, bare: float | None) -> str:
    if sec is None or not bare:
        return "—"
    return f"{sec / bare:.1f}×"


def machine_info(python: str) -> dict:
    info = {"nproc": os.cpu_count()}
    try:
        info["nproc"] = int(subprocess.run(["nproc"], capture_output=True, text=True, timeout=10).stdout.strip())
    except (OSError, ValueError, subprocess.SubprocessError):
        pass
    model = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info["cpu"] = model
    try:
        r = subprocess.run([python, "-c", "import sys; print(sys.version.split()[0])"], capture_output=True,
                           text=True, timeout=30)
        info["python"] = r.stdout.strip() or platform.python_version()
    except (OSError, subprocess.SubprocessError):
        info["python"] = platform.python_version()
    try:
        info["memory"] = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        info["memory"] = None
    info["kernel"] = platform.release()
    try:
        info["loadavg"] = os.getloadavg()
    except OSError:
        info["loadavg"] = None
    for name, argv in (("commit", ["git", "rev-parse", "--short", "HEAD"]), ("dirty", ["git", "status", "--porcelain", "--", *PACKAGES, "pyproject.toml"])):
        try:
            r = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=30)
            info[name] = r.stdout.strip() if r.returncode == 0 else None
        except (OSError, subprocess.SubprocessError):
            info[name] = None
    info["date"] = _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    return info


def cell(meas: Measure, bare: float | None) -> list[str]:
    """Median, min, ×bare, runs, peak RSS (or the failure)."""
    runs = f"{len(meas.walls)}/{meas.attempts}"
    if not meas.walls:
        why = meas.failures[0] if meas.failures else "not run"
        return [f"**FAILED** ({why})", "—", "—", runs, "—"]
    median = fmt_time(meas.median)
    if meas.failures:
        median += f" ⚠ {len(meas.failures)} failed: {meas.failures[0]}"
    return [median, fmt_time(meas.min), times_bare(meas.median, bare), runs, fmt_rss(meas.peak_rss)]


def ratio_cell(meas: Measure, bare: float, limit: float, fmt) -> str:
    """A ×bare target's figures: the verdict's paired ratio first, then the median against the whole run's bare."""
    whole = meas.median / bare
    flag = "" if whole <= limit else f" (**over {limit:g}×**: see the round's own bare)"
    return (f"{meas.paired:.2f}× its round's bare (median of {len(meas.ratios)}); median {fmt(meas.median)} = "
            f"{whole:.2f}× the run's bare {fmt(bare)}{flag}; min run {meas.min / bare:.2f}×")


def target_rows(results: list[dict], bare: float | None) -> list[tuple[str, str, str]]:
    by_n = {r["n"]: r for r in results}

    def ratio_target(n: int, key: str, label: str):
        name = f"{label} at {n:,} specs within 6× a bare interpreter start"
        r = by_n.get(n)
        if r is None or not r["measures"]:
            return name, "not measured (size not run)", "—"
        meas = r["measures"][key]
        if meas.median is None or meas.paired is None or not bare:
            return name, "failed to run", "❌ FAIL"
        return name, ratio_cell(meas, bare, 6, fmt_time), "✅ PASS" if meas.paired <= 6 else "❌ FAIL"

    rows = [
        ratio_target(5000, "warm_list", "warm direct `chant list --ready`"),
        ratio_target(5000, "search_free", f'warm `chant search "{FREE_QUERY}"`'),
        ratio_target(5000, "search_struct", f"warm `chant search '{STRUCT_QUERY}'`"),
    ]
    name = "index build (`chant index rebuild`) of 50,000 specs under 60 s"
    r = by_n.get(50000)
    if r is None or not r["measures"]:
        rows.append((name, "not measured (size not run)", "—"))
    else:
        meas = r["measures"]["rebuild"]
        if meas.median is None:
            rows.append((name, "failed to run", "❌ FAIL"))
        else:
            rep = f"; command reports {statistics.median(meas.reported):.1f} s" if meas.reported else ""
            rows.append((name, f"{meas.median:.1f} s wall (median of {len(meas.walls)}){rep}",
                         "✅ PASS" if meas.median < 60 else "❌ FAIL"))
    return rows


def render_profile(add, prof: dict, results: list[dict], bare: float | None) -> None:
    add("## Where the time goes")
    add("")
    add("Measured after the benchmark, warm, median of 5 runs of a child that times its own "
        "`from chant_cli.main import main` and `main(argv)` (output discarded), while the runner times the whole "
        "child from outside as for the tables. \"Rest\" is that wall time minus the two parts: interpreter "
        f"start-up, teardown and exit (a bare interpreter takes {fmt_time(bare)} for all of it). The split runs "
        "start `python -c` instead of the `chant` wrapper script (no measurable difference) and run after the "
        "tables' runs, so their wall differs a little; on this shared machine single figures move by 5-10%.")
    add("")
    add("| Specs | Command | Wall (table) | Wall (split run) | `import chant_cli.main` | `main(argv)` | Rest |")
    add("|---|---|---|---|---|---|---|")
    by_n = {r["n"]: r for r in results}
    for n, parts in sorted(prof.get("breakdown", {}).items()):
        for key, _argv in PROFILED:
            part = parts.get(key)
            meas = by_n[n]["measures"][key]
            if not part:
                add(f"| {n:,} | {LABELS[key]} | {fmt_time(meas.median)} | failed | — | — | — |")
                continue
            add(f"| {n:,} | {LABELS[key]} | {fmt_time(meas.median)} | {fmt_time(part['wall'])} | "
                f"{fmt_time(part['import'])} | {fmt_time(part['op'])} | {fmt_time(part['rest'])} |")
    add("")
    n = prof.get("importtime_n")
    for name, data in prof.get("importtime", {}).items():
        if "error" in data:
            add(f"`python -X importtime -m chant_cli {name}` ({n:,} specs) failed: {data['error']}")
            add("")
            continue
        add(f"`python -X importtime -m chant_cli {name}` ({n:,} specs): {data['modules']} modules, "
            f"{data['total_us'] / 1000:.1f} ms in top-level imports (start-up's `site`/`encodings` included). "
            "Heaviest: " + ", ".join(f"`{mod}` {cum / 1000:.1f} ms" for cum, _self, _lvl, mod in data["top"]) + ".")
        add("")
    for n, texts in sorted(prof.get("cprofile", {}).items()):
        for name, text in texts.items():
            add(f"cProfile of `chant {name}` at {n:,} specs (in process, `main(argv)`), top functions by own "
                "time (profiler overhead included):")
            add("")
            add("```")
            add(text)
            add("```")
            add("")


def render(results: list[dict], baseline: Measure, info: dict, args, chant: str, python: str, prof: dict | None) -> str:
    bare = baseline.median
    lines: list[str] = []
    add = lines.append
    add("# Benchmarks")
    add("")
    add("Wall time, peak memory and index size of the real `chant` command on generated repositories, "
        "each figure next to the start-up time of a bare Python interpreter measured in the same run; "
        "then the daemon (`chantd`) on the same repositories: start-up, the CLI in daemon mode, socket and "
        "HTTP round trips, watch latency and memory (a \"Daemon\" part in each size's section).")
    add("")
    dirty = " (plus uncommitted changes in `chantlib`/`chant_cli`/`chantd`)" if info.get("dirty") else ""
    mem = f", {info['memory'] / 2**30:.1f} GiB RAM" if info.get("memory") else ""
    load, load_end = info.get("loadavg"), info.get("loadavg_end")
    loads = ""
    if load:
        loads = f" (1-minute load average {load[0]:.2f} at the start"
        loads += f", {load_end[0]:.2f} at the end)" if load_end else ")"
    add(f"- **Machine:** {info['nproc']} CPU(s) (`nproc`), {info['cpu']}{mem}, Linux {info['kernel']}; "
        f"shared and noisy{loads}")
    add(f"- **Python:** {info['python']} (`{python}`)")
    add(f"- **Date:** {info['date']}; **commit:** `{info.get('commit') or 'unknown'}`{dirty}")
    add(f"- **Generator:** `chantlib.generate`, seed {args.seed} (about 60% of specs archived); "
        f"repositories kept in `benchmarks/out/`")
    add(f"- **Bytecode** of `chantlib`/`chant_cli`/`chantd` at the start: {info.get('bytecode')} (`PYTHONDONTWRITEBYTECODE` "
        f"is {'set' if os.environ.get('PYTHONDONTWRITEBYTECODE') else 'not set'}, so the runner compiles it first, "
        "as `make install` does)")
    changed = info.get("changed_during_run")
    if changed:
        add(f"- **Warning:** source changed while the benchmark ran (stale bytecode is recompiled on every start, "
            f"and the numbers may mix two versions): {', '.join(f'`{c}`' for c in changed)}")
    add(f"- **Baseline (bare):** `{os.path.basename(python)} -c pass`, median of {len(baseline.walls)} runs "
        f"interleaved with the commands: **{fmt_time(bare)}** (min {fmt_time(baseline.min)})")
    add("- **Reproduce:** `make bench` (= `.venv/bin/python benchmarks/run.py --write docs/benchmarks.md`); "
        "`--sizes 500,5000`, `--repeat K`, `--quick` for a smoke run")
    add("")

    add("## Targets")
    add("")
    add("| Target | Measured | Verdict |")
    add("|---|---|---|")
    for name, measured, verdict in target_rows(results, bare) + daemon_bench.target_rows(
            results, bare, sys.modules[__name__]):
        add(f"| {name} | {measured} | {verdict} |")
    add("")

    for r in results:
        n = r["n"]
        add(f"## {n:,} specs")
        add("")
        c = r.get("counts") or {}
        f = r.get("facts") or {}
        if c:
            add(f"{c.get('specs', n):,} spec files: {c.get('active', '?'):,} active, {c.get('archived', '?'):,} "
                f"archived, {c.get('members', '?'):,} group members; "
                f"{f.get('ready', '?')} ready; `search \"{FREE_QUERY}\"` matches {f.get('hits_free', '?')}, "
                f"`search '{STRUCT_QUERY}'` matches {f.get('hits_struct', '?')}.")
            add("")
        for err in r["errors"]:
            add(f"- **error:** {err}")
        if r["errors"]:
            add("")
        if not r.get("root"):
            continue
        rep = r.get("repeats", {})
        local = r["bare_local"]
        add(f"Repeats: {rep.get('fast')} for warm commands, {rep.get('slow')} for cold list and rebuild. "
            f"Bare interpreter during this size: median {fmt_time(local.median)} "
            f"({len(local.walls)} runs); ×bare below uses the whole run's {fmt_time(bare)}.")
        add("")
        add("| Measure | Median | Min | ×bare | Runs ok | Peak RSS |")
        add("|---|---|---|---|---|---|")
        add(f"| {LABELS['bare']} | {fmt_time(bare)} | {fmt_time(baseline.min)} | 1.0× | {len(baseline.walls)} | "
            f"{fmt_rss(baseline.peak_rss)} |")
        for key, label in ROWS[1:]:
            add(f"| {label} | " + " | ".join(cell(r["measures"][key], bare)) + " |")
        reb = r["measures"]["rebuild"]
        if reb.reported:
            add(f"| `index rebuild` as reported by the command | {fmt_time(statistics.median(reb.reported))} | "
                f"{fmt_time(min(reb.reported))} | {times_bare(statistics.median(reb.reported), bare)} | "
                f"{len(reb.reported)} | — |")
        add(f"| index size: `.chant/.index/` total | {fmt_bytes(f.get('index_bytes'))} | | | | |")
        add(f"| index size: tantivy part | {fmt_bytes(f.get('tantivy_bytes'))} | | | | |")
        add(f"| index documents / segments (`index status --json`) | {f.get('documents', '—')} / "
            f"{f.get('segments', '—')} | | | | |")
        add("")
        wb, wa = f.get("warm_before"), f.get("warm_after")
        if wb or wa:
            add(f"Warm check (`index status --json` before/after the warm runs): "
                f"changed since last run {wb and wb.get('changed_since_last_run')}/{wa and wa.get('changed_since_last_run')}, "
                f"stale {wb and wb.get('stale')}/{wa and wa.get('stale')}.")
            add("")
        daemon_bench.render_size(add, r, bare, sys.modules[__name__])

    if prof:
        render_profile(add, prof, results, bare)

    add("## Method")
    add("")
    add("- Every command is the installed `chant` script run with `subprocess` (stdin from /dev/null, output "
        "to a temp file), with `--direct` (in process, no daemon probe), except the row \"without `--direct`\", "
        "which shows the default mode's cost when no daemon runs. Wall time is `time.perf_counter()` from just before the spawn to the reap, so it "
        "includes interpreter start-up and imports, as a user sees it.")
    add(f"- Figures are the **median** of K runs (K = `--repeat`, default {DEFAULT_REPEAT}, for the warm commands; at most 5 for "
        "cold list and rebuild, and at 50,000 specs at most 5 warm / 3 slow runs); **min** is the fastest run.")
    add("- **Baseline:** a bare `<venv python> -c pass` (the interpreter in the `chant` script's `#!` line), run "
        "before every round of warm commands, every cold run and every rebuild; its median over the whole run is "
        "the unit of the \"×bare\" column. Per-size medians are printed to show drift.")
    add("- **×bare targets** are judged on the **paired ratio**: each run divided by the bare interpreter run at the "
        "start of its own round, then the median of those ratios. A load spike on this shared machine slows the "
        "bare run and the commands of its round alike, so the paired ratio moves less than a median divided by the "
        "whole run's bare; the Targets table shows both, and flags the second where it is over the limit.")
    add("- **Cold** = `.chant/.index/` deleted before each run (spec table and tantivy index rebuilt from the "
        "files); the OS page cache is **not** dropped, so the spec files are read from memory. **Warm** = the "
        "cache exists and nothing changed (unmeasured warm-up runs first; checked with `index status --json`).")
    add("- `lock` = `lock acquire <id>` then `lock release <id>` on one ready spec, the sum of the two wall times.")
    add("- `index rebuild` runs with `--json`; \"reported by the command\" is its own `seconds` field (in-process "
        "time, without interpreter start-up).")
    if rss_method() == "time":
        add("- **Peak RSS** (max resident set size) comes from one extra, untimed run of each command under "
            "`/usr/bin/time -f %M` (for the lock pair, the larger of the two commands). Not from the timed runs: "
            "a child spawned straight from the Python runner inherits the runner's high-water RSS across "
            "fork/vfork + exec, and `getrusage(RUSAGE_CHILDREN)` is a running maximum over all children, so "
            "neither gives a per-command figure.")
    else:
        add("- **Peak RSS** is `ru_maxrss` from `os.wait4` of one extra run per command (`/usr/bin/time` was "
            "missing). It is an upper bound: it includes the runner's own RSS, inherited across fork + exec.")
    add("- **Index size** is the apparent size (sum of file sizes) of `.chant/.index/` and of its `tantivy/` "
        "folder, measured right after a rebuild.")
    daemon_bench.render_method(add)
    add("- Every subprocess has a timeout; a failed or timed-out run is shown in the table instead of a time.")
    add("")
    return "\n".join(lines)


# --------------------------------------------------------------------------- main


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="Benchmark the chant CLI on generated repositories.")
    p.add_argument("--sizes", help="comma-separated spec counts (default 500,5000,50000)")
    p.add_argument("--repeat", type=int, default=DEFAULT_REPEAT, help="runs per fast command (default 11)")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help="generator seed (default 7)")
    p.add_argument("--write", metavar="PATH", help="write the markdown to PATH (it is printed as well)")
    p.add_argument("--json", metavar="PATH",
                   help="write the raw runs as JSON to PATH (default with --write: <out>/last-run.json)")
    p.add_argument("--out", default=DEFAULT_OUT, help="where generated repositories are kept (default benchmarks/out)")
    p.add_argument("--chant", metavar="PATH", help="the chant executable to measure (default: the venv's)")
    p.add_argument("--no-compile", dest="compile", action="store_false",
                   help="do not byte-compile chantlib and chant_cli first")
    p.add_argument("--regenerate", action="store_true", help="generate the repositories again")
    p.add_argument("--quick", action="store_true", help="smoke run: --sizes 500 --repeat 3, no profile")
    p.add_argument("--profile", dest="profile", action="store_true", default=None,
                   help="after measuring, split warm list/search into import/operation/start-up at every size, "
                        "importtime at 5,000 and cProfile at 5,000 and the largest size (default: on unless --quick)")
    p.add_argument("--no-profile", dest="profile", action="store_false")
    p.add_argument("--no-daemon", dest="daemon", action="store_false",
                   help="skip the daemon's benchmarks (starts, daemon-mode CLI, round trips, watch latency, RSS)")
    p.add_argument("--scale", action="store_true",
                   help="only the scale table (issue 7: a change's cost up to 200,000 specs; default sizes "
                        "5000,50000,200000); with --write, it replaces that section of the file and nothing else")
    p.add_argument("--before", metavar="JSON",
                   help="with --scale: a scale run's JSON (--json of an earlier run, e.g. of the code before a "
                        "change) whose figures are shown beside this run's")
    p.add_argument("--label", help="with --scale --json: what code this run measured (shown as the 'before' label)")
    args = p.parse_args(argv)
    if args.quick:
        args.sizes = args.sizes or "500"
        args.repeat = 3
        if args.profile is None:
            args.profile = False
    if args.profile is None:
        args.profile = True
    try:
        args.size_list = [int(s.replace("_", "").replace(",", "")) for s in (args.sizes or "").split(",") if s.strip()]
    except ValueError:
        p.error(f"--sizes: not a list of numbers: {args.sizes!r}")
    if not args.size_list:
        args.size_list = list(SCALE_SIZES if args.scale else DEFAULT_SIZES)
    if args.repeat < 1:
        p.error("--repeat must be at least 1")
    args.out = os.path.abspath(args.out)
    return args


def code_location(python: str) -> str:
    """Where the measured interpreter imports chantlib from (PYTHONPATH may point elsewhere)."""
    try:
        r = subprocess.run([python, "-c", "import chantlib, os; print(os.path.dirname(os.path.dirname(chantlib.__file__)))"],
                           capture_output=True, text=True, timeout=60, cwd="/")  # not this folder: -c puts it first
        return r.stdout.strip() or "?"
    except (OSError, subprocess.SubprocessError):
        return "?"


def scale_main(args, chant: str, python: str, info: dict, log) -> int:
    """`--scale`: the scale table alone (see daemon.scale_bench), spliced into --write's file."""
    baseline = Measure("bare")
    env = dict(os.environ, NO_COLOR="1")
    env.pop("CHANT_DEBUG", None)
    results = []
    started = time.perf_counter()
    for n in args.size_list:
        root, counts, error = ensure_repo(args.out, n, args.seed, python, args.regenerate, log)
        res = {"n": n, "root": root, "counts": counts}
        if error:
            res["scale"] = {"errors": [error]}
        else:
            t0 = time.perf_counter()
            try:
                res["scale"] = daemon_bench.scale_bench(res, args, sys.modules[__name__], chant, python, env, baseline,
                                                        log)
            except Exception as exc:  # reported in the document, never a crash (daemons are stopped inside)
                res["scale"] = {"errors": [f"the scale benchmark failed: {type(exc).__name__}: {exc}"]}
            log(f"[{n}] scale done in {time.perf_counter() - t0:.0f}s")
        results.append(res)
    try:
        info["loadavg_end"] = os.getloadavg()
    except OSError:
        info["loadavg_end"] = None
    log(f"total {time.perf_counter() - started:.0f}s")
    before = None
    if args.before:
        with open(args.before, encoding="utf-8") as fh:
            before = json.load(fh)
    bare = baseline.median
    text = "\n".join(daemon_bench.render_scale(results, bare, sys.modules[__name__], info, before))
    if args.write:
        splice_scale(args.write, text)
        log(f"wrote the scale section of {args.write}")
    load, load_end = info.get("loadavg"), info.get("loadavg_end")
    raw = {
        "label": args.label or f"commit {info.get('commit')} ({info.get('code')})",
        "date": info.get("date"),
        "load": f"load {load[0]:.2f} → {load_end[0]:.2f}" if load and load_end else "load unknown",
        "info": info,
        "bare": bare,
        "figures": {str(r["n"]): daemon_bench.scale_figures(r["scale"], bare) for r in results if r.get("scale")},
        "results": [{"n": r["n"], "scale": daemon_bench.to_json(r.get("scale") or {})} for r in results],
    }
    json_path = args.json or (os.path.join(args.out, "last-scale-run.json") if args.write else None)
    if json_path:
        os.makedirs(os.path.dirname(os.path.abspath(json_path)), exist_ok=True)
        with open(json_path, "w", encoding="utf-8") as fh:
            json.dump(raw, fh, indent=2, default=str)
    print(text)
    return 0


def splice_scale(path: str, section: str) -> None:
    """Put the scale section into ``path``: in place of the old one, else after the Targets."""
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except FileNotFoundError:
        text = ""
    begin, end = daemon_bench.SCALE_BEGIN, daemon_bench.SCALE_END
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + section + rest.split(end, 1)[1]
    else:
        marker = "\n## 500 specs"
        at = text.find(marker) if marker in text else len(text)
        text = text[:at].rstrip("\n") + "\n\n" + section + "\n" + text[at:]
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)


def kept_scale(path: str | None) -> str | None:
    """The scale section of the file a full run is about to rewrite (kept as it is)."""
    if not path:
        return None
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError:
        return None
    begin, end = daemon_bench.SCALE_BEGIN, daemon_bench.SCALE_END
    if begin in text and end in text:
        return begin + text.split(begin, 1)[1].split(end, 1)[0] + end
    return None


def _terminate(signum, _frame):
    raise SystemExit(128 + signum)  # unwinds through the finally blocks that stop daemons


def main(argv=None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    chant = os.path.abspath(args.chant) if args.chant else find_chant()
    python = script_python(chant)
    log(f"chant: {chant}; python: {python}; sizes {args.size_list}; repeat {args.repeat}")
    if args.compile:  # what `make install` does: the CLI must not compile its modules on each start
        r = run([python, "-m", "compileall", "-q", *PACKAGES], cwd=ROOT, timeout=600)
        if not r.ok():
            log(f"warning: compileall failed: {r.why()}")
    info = machine_info(python)
    info["code"] = code_location(python)
    info["bytecode"] = bytecode_state()
    if args.scale:
        return scale_main(args, chant, python, info, log)
    stamps = source_stamps()
    baseline = Measure("bare")
    results = []
    started = time.perf_counter()
    for n in args.size_list:
        t0 = time.perf_counter()
        results.append(bench_size(n, args, chant, python, baseline, log))
        log(f"[{n}] done in {time.perf_counter() - t0:.0f}s")
    prof = None
    if args.profile:
        prof = profile(results, python, dict(os.environ, NO_COLOR="1"), log)
    if args.daemon:  # last: its probes and leases must not disturb the direct-mode figures
        env = dict(os.environ, NO_COLOR="1")
        env.pop("CHANT_DEBUG", None)
        for r in results:
            if not r.get("root"):
                continue
            t0 = time.perf_counter()
            try:
                r["daemon"] = daemon_bench.bench(r, args, sys.modules[__name__], chant, python, env, baseline, log)
            except Exception as exc:  # reported in the document, never a crash (daemons are stopped inside)
                r["daemon"] = {"errors": [f"the daemon benchmark failed: {type(exc).__name__}: {exc}"]}
            log(f"[{r['n']}] daemon done in {time.perf_counter() - t0:.0f}s")
    try:
        info["loadavg_end"] = os.getloadavg()
    except OSError:
        info["loadavg_end"] = None
    info["changed_during_run"] = sorted(k for k, v in source_stamps().items() if stamps.get(k) != v)
    log(f"total {time.perf_counter() - started:.0f}s")
    text = render(results, baseline, info, args, chant, python, prof)
    if args.write:
        scale = kept_scale(args.write)  # measured by `make bench-scale`, not by this run: kept
        os.makedirs(os.path.dirname(os.path.abspath(args.write)) or ".", exist_ok=True)
        with open(args.write, "w", encoding="utf-8") as fh:
            fh.write(text + "\n")
        if scale is not None:
            splice_scale(args.write, scale)
        log(f"wrote {args.write}")
    json_path = args.json or (os.path.join(args.out, "last-run.json") if args.write else None)
    if json_path:
        raw = {
            "info": info, "baseline": baseline.to_dict(), "profile": prof,
            "results": [
                {k: ({mk: mv.to_dict() for mk, mv in v.items()} if k == "measures" else
                     daemon_bench.to_json(v) if k == "daemon" else
                     v.to_dict() if isinstance(v, Measure) else v) for k, v in r.items()}
                for r in results
            ],
        }
        os.makedirs(os.path.dirname(os.path.abspath(json_path)), exist_ok=True)
        with open(json_path, "w", encoding="utf-8") as fh:
            json.dump(raw, fh, indent=2, default=str)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
