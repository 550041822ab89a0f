"""Running things: a child process timed and measured (:func:`run`, :func:`memory_run`), the
runs of one row (:class:`Measure`), and a daemon (:class:`Daemon`), the test suite's own
runner (:class:`chantd.testing.DaemonProcess`) with the benchmarks' timing and stop.

Every child has a timeout; a failure is a :class:`Run` that says why, never an exception.
"""

from __future__ import annotations

import math
import os
import select
import signal
import statistics
import subprocess
import tempfile
import threading
import time

from chantd.testing import DaemonProcess, StartFailed, free_port
from chantlib.client import daemon_alive

from .settings import BIG, FAST_TIMEOUT, START_TIMEOUT, STOP_TIMEOUT

__all__ = ["Daemon", "Measure", "Run", "StartFailed", "memory_run", "percentile", "repeats", "rss_method", "run",
           "stop_stray"]


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


class BareStart:
    """A bare interpreter start (``python -c pass``), run between the measured commands of a
    round: each run goes into the session's ``baseline`` and this size's ``local`` measure,
    and ``last`` is the current round's time (``None`` when it failed), which the round's
    commands are divided by."""

    def __init__(self, python: str, root: str, env: dict | None, baseline: Measure, local: Measure) -> None:
        self.python, self.root, self.env = python, root, env
        self.baseline, self.local = baseline, local
        self.last: float | None = None

    def __call__(self) -> None:
        r = run([self.python, "-c", "pass"], cwd=self.root, timeout=FAST_TIMEOUT, env=self.env)
        self.last = r.wall if r.ok() else None
        if r.ok():
            self.baseline.add(r.wall)
            self.local.add(r.wall)


def repeats(n: int, k: int) -> tuple[int, int]:
    """(fast, slow) repeat counts for size ``n`` when ``--repeat k``."""
    if n >= BIG:
        return max(1, min(k, 5)), max(1, min(k, 3))
    return k, max(1, min(k, 5))


def percentile(sorted_values: list, p: float):
    if not sorted_values:
        return None
    return sorted_values[min(len(sorted_values) - 1, max(0, math.ceil(p * len(sorted_values)) - 1))]


def stop_stray(chant: str, root: str, env: dict, log) -> None:
    """A daemon left running on this repository (an interrupted run): stop it first."""
    if daemon_alive(root):
        log(f"a daemon already runs on {root}: stopping it")
        run([chant, "daemon", "stop", "--timeout", str(STOP_TIMEOUT)], cwd=root, timeout=STOP_TIMEOUT + 30, env=env)


class Daemon:
    """One ``chantd`` spawned by the runner as ``chant daemon start --background`` spawns it
    (``python -m chantd -C ROOT --api-port P --metrics-port Q``, free loopback ports, its own
    session, logging to ``.chant/logs/daemon.log``): the test suite's
    :class:`chantd.testing.DaemonProcess`, with the start timed and the stop made by
    ``chant daemon stop`` (timed too), then SIGTERM and SIGKILL of that PID if it lingers."""

    def __init__(self, python: str, chant: str, root: str, env: dict) -> None:
        self.python = python
        self.chant = chant
        self.root = root
        self.env = env
        self.process: DaemonProcess | None = None
        self.api_port = 0
        self.metrics_port = 0
        self.log_path = os.path.join(root, ".chant", "logs", "daemon.log")

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def alive(self) -> bool:
        return self.process is not None and self.process.alive()

    def start(self, timeout: float = START_TIMEOUT) -> tuple[float, float]:
        """Spawn and wait until fully started: (seconds to ``hello``, seconds to ``watch`` set).
        Raises :class:`StartFailed` with one line (the reason and the log's last lines)."""
        for attempt in range(2):  # a free port can be taken between our probe and the daemon's bind
            self.api_port, self.metrics_port = free_port(), free_port()
            self.process = DaemonProcess(
                self.root, ["--api-port", str(self.api_port), "--metrics-port", str(self.metrics_port)],
                python=self.python, env=self.env, log_path=self.log_path, new_session=True,
            )
            try:
                return self.process.start(timeout)  # stopped again if it fails
            except StartFailed as exc:
                if attempt or "cannot listen" not in exc.log:
                    raise StartFailed(f"{exc.reason}; {self.log_line()}") from None
        raise AssertionError("unreachable")

    def rss(self) -> dict:
        """VmRSS and VmHWM in KiB, from /proc/<pid>/status."""
        return self.process.rss() if self.process is not None else {}

    def log_line(self, lines: int = 2) -> str:
        """The last lines of its log, on one line (for a table cell)."""
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as fh:
                return "log: " + " | ".join(ln.strip() for ln in fh.readlines()[-lines:])[-300:]
        except OSError:
            return "(no log)"

    def stop(self) -> Run | None:
        """``chant daemon stop``; then SIGTERM, then SIGKILL of our PID if it lingers. Returns the Run."""
        if self.process is None or self.process.proc is None:
            return None
        r = None
        if self.alive():
            r = run([self.chant, "daemon", "stop", "--timeout", str(STOP_TIMEOUT)], cwd=self.root,
                    timeout=STOP_TIMEOUT + 30, env=self.env)
        # `stop` returns once the PID is gone; a daemon still starting (no daemon.json yet) gets SIGTERM
        self.process.wait(2.0)
        self.process.stop(timeout=60.0)
        return r
