"""A real ``chantd`` process, for tests and benchmarks (this project's, and a worker's).

:class:`DaemonProcess` spawns ``python -m chantd -C ROOT ...`` as a child, waits until it is
fully started (its socket answers ``hello``, then ``daemon_status`` shows ``watch``: the last
thing the daemon sets up) and stops it for sure: SIGTERM, then SIGKILL of that one PID. The
child is reaped as soon as it exits (``chant daemon stop`` waits for its PID to be gone, and
an unreaped child would look alive), and is told to die with its parent (Linux's
``PR_SET_PDEATHSIG``), so an interrupted run leaves no daemon behind. The test suite's
``DaemonProc`` and the benchmarks' daemon runner are both built on it.

Only the standard library and the light client (:mod:`chantlib.client`) are imported.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Any

from chantlib.client import INFO_FILE, DaemonClient, DaemonGone, DaemonUnavailable
from chantlib.errors import ChantError

__all__ = ["DaemonProcess", "StartFailed", "free_port", "log_tail"]


class StartFailed(RuntimeError):
    """The daemon exited, or did not come up in time. ``reason`` says which in one line; the
    message adds the tail of the daemon's log below it."""

    def __init__(self, reason: str, log: str = "") -> None:
        super().__init__(f"{reason}:\n{log}" if log else reason)
        self.reason = reason
        self.log = log


def free_port() -> int:
    """A loopback TCP port nobody listens on just now (it may be taken before it is used)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def log_tail(path: str, chars: int = 4000) -> str:
    """The last ``chars`` characters of a log file ("" if there is none)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read()[-chars:]
    except OSError:
        return ""


try:
    _PRCTL: Any = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):
    _PRCTL = None
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # preexec_fn: SIGTERM when the parent dies, even by SIGKILL
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


class DaemonProcess:
    """One ``chantd`` on ``root``, as a child process.

    ``args``: more ``chantd`` options (ports, ``--log-level``, ...). ``log_path``: where its
    stdout and stderr go, appended (default ``.chant/logs/daemon.log``). ``env``: its whole
    environment (default: ours). ``new_session``: detached from our terminal's signals, as
    ``chant daemon start --background`` runs it.
    """

    def __init__(self, root: str, args=(), *, python: str = sys.executable, env: dict | None = None,
                 log_path: str | None = None, new_session: bool = False) -> None:
        self.root = root
        self.args = list(args)
        self.python = python
        self.env = dict(os.environ) if env is None else env
        self.log_path = log_path or os.path.join(root, ".chant", "logs", "daemon.log")
        self.new_session = new_session
        self.proc: subprocess.Popen | None = None
        self._reaper: threading.Thread | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    def spawn(self) -> None:
        """Start the process (not waiting for it: see :meth:`wait_started`)."""
        os.makedirs(os.path.dirname(self.log_path), exist_ok=True)
        argv = [self.python, "-m", "chantd", "-C", self.root, *self.args]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                argv, cwd=self.root, env=self.env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=self.new_session, close_fds=True, preexec_fn=_die_with_parent,
            )
        self._reaper = threading.Thread(target=self.proc.wait, name=f"reap-chantd-{self.proc.pid}", daemon=True)
        self._reaper.start()

    def start(self, timeout: float = 60.0, poll: float = 0.005) -> tuple[float, float]:
        """Spawn and wait until fully started; returns the seconds from the spawn until its
        socket answered ``hello`` and until it was fully started. On a failure the process
        is stopped and :class:`StartFailed` raised."""
        started = time.perf_counter()
        self.spawn()
        try:
            return self.wait_started(started, timeout, poll)
        except BaseException:
            self.stop()
            raise

    def wait_started(self, since: float, timeout: float, poll: float = 0.005) -> tuple[float, float]:
        deadline = since + timeout
        client = None
        try:
            while client is None:
                self._check_running()
                left = deadline - time.perf_counter()
                if left <= 0:
                    raise StartFailed(f"chantd did not answer hello within {timeout:g}s", self.log())
                try:
                    client = DaemonClient.connect(self.root, timeout=max(1.0, min(left, 10.0)))
                except DaemonUnavailable:
                    time.sleep(poll)
            to_hello = time.perf_counter() - since
            while True:
                try:
                    status = client.call("daemon_status", {})
                except (ChantError, DaemonGone, OSError, ValueError) as exc:
                    self._check_running()
                    raise StartFailed(f"daemon_status failed: {exc}", self.log()) from None
                if status.get("watch"):  # the last thing the daemon sets up
                    return to_hello, time.perf_counter() - since
                if time.perf_counter() > deadline:
                    raise StartFailed(f"chantd was not fully started within {timeout:g}s", self.log())
                time.sleep(poll)
        finally:
            if client is not None:
                client.close()

    def _check_running(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise StartFailed(f"chantd exited with status {self.proc.returncode}", self.log())

    def read_info(self) -> dict:
        """What it wrote to ``.chant/daemon.json``."""
        with open(os.path.join(self.root, ".chant", INFO_FILE), encoding="utf-8") as fh:
            return json.load(fh)

    def client(self, timeout: float = 30.0) -> DaemonClient:
        return DaemonClient.connect(self.root, timeout=timeout)

    def call(self, cmd: str, **params):
        with self.client() as c:
            return c.call(cmd, params)

    def log(self, chars: int = 4000) -> str:
        return log_tail(self.log_path, chars)

    def rss(self) -> dict:
        """``VmRSS`` and ``VmHWM`` in KiB, from ``/proc/<pid>/status`` ({} if it cannot be read)."""
        out = {}
        try:
            with open(f"/proc/{self.pid}/status", encoding="ascii", errors="replace") as fh:
                for line in fh:
                    key, _, value = line.partition(":")
                    if key in ("VmRSS", "VmHWM"):
                        out[key] = int(value.split()[0])
        except (OSError, ValueError, TypeError):
            pass
        return out

    def wait(self, timeout: float) -> int | None:
        """Its exit status once it exited within ``timeout`` seconds, else None."""
        if self._reaper is not None:
            self._reaper.join(timeout)
        return None if self.proc is None else self.proc.returncode

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM (a clean stop), then SIGKILL if it is still there after ``timeout``
        seconds; returns its exit status. Safe to call again, or on a process long gone."""
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10.0)):
            if not self.alive():
                break
            with contextlib.suppress(ProcessLookupError):
                assert self.proc is not None  # alive() says so
                os.kill(self.proc.pid, sig)  # still our unreaped child (the reaper sets returncode): ours
            self.wait(wait)
        return None if self.proc is None else self.proc.returncode

    def kill(self) -> None:
        """SIGKILL at once (a crash), and wait for it to be gone."""
        if self.alive():
            assert self.proc is not None  # alive() says so
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGKILL)
            self.wait(10.0)
