"""Shared fixtures: throw-away repositories and a runner for the real `chant` command."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path_factory, monkeypatch):
    """No test reads the developer's global config or inherits their owner name."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("CHANT_OWNER", "tester@test")
    monkeypatch.delenv("CHANT_GLOBAL_CONFIG", raising=False)
    monkeypatch.delenv("CHANT_LOCK_TTL", raising=False)
    monkeypatch.delenv("CHANT_DEBUG", raising=False)
    monkeypatch.setenv("NO_COLOR", "1")


class Repo:
    """A repository in a temp folder, with helpers to write specs."""

    def __init__(self, root) -> None:
        from chantlib.store import SpecStore

        self.root = str(root)
        SpecStore(self.root).init("test")

    @property
    def specs(self) -> str:
        return os.path.join(self.root, ".chant", "specs")

    def path(self, spec_id: str, archive: str | None = None) -> str:
        if archive:
            return os.path.join(self.root, ".chant", "archive", archive, f"{spec_id}.md")
        return os.path.join(self.specs, f"{spec_id}.md")

    def write(self, spec_id: str, front: str = "status: pending", body: str | None = None, *, archive=None,
              raw: str | None = None) -> str:
        """Write a spec. ``front`` is YAML text; ``body`` defaults to a title from the ID."""
        path = self.path(spec_id, archive)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if raw is None:
            body = f"# Spec {spec_id}\n" if body is None else body
            raw = f"---\n{textwrap.dedent(front).strip()}\n---\n{body}"
        with open(path, "w", encoding="utf-8", newline="") as fh:
            fh.write(raw)
        return path

    def read(self, spec_id: str, archive: str | None = None) -> str:
        with open(self.path(spec_id, archive), encoding="utf-8", newline="") as fh:
            return fh.read()

    def workspace(self, **kwargs):
        from chantlib.workspace import Workspace

        return Workspace(self.root, **kwargs)


@pytest.fixture
def repo(tmp_path) -> Repo:
    return Repo(tmp_path / "repo")


class Result:
    def __init__(self, proc: subprocess.CompletedProcess) -> None:
        self.code = proc.returncode
        self.out = proc.stdout
        self.err = proc.stderr

    def __repr__(self) -> str:
        return f"Result(code={self.code}, out={self.out!r}, err={self.err!r})"


def run_chant(args, cwd, *, env=None, input=None, timeout=60) -> Result:
    """Run the real CLI (``python -m chant_cli``) in a subprocess."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    proc = subprocess.run(
        [sys.executable, "-m", "chant_cli", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        input=input,
        timeout=timeout,
    )
    return Result(proc)


@pytest.fixture
def chant(repo):
    """``chant(*args)`` runs the CLI in the test repository."""

    def _run(*args, cwd=None, **kwargs) -> Result:
        return run_chant(list(args), cwd or repo.root, **kwargs)

    return _run


# --- a real daemon process ---------------------------------------------------------------------

import json as _json  # noqa: E402
import signal as _signal  # noqa: E402
import socket as _socket  # noqa: E402
import time as _time  # noqa: E402


def free_port() -> int:
    with _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class DaemonProc:
    """`chantd` running on a repository, as a real process; stopped by the test.

    ``api``/``metrics``: serve on a free loopback port (True), not at all (False), or pass no
    option so the config or the default decides (None)."""

    def __init__(self, root: str, *, api: bool | None = True, metrics: bool | None = True, extra=(),
                 env=None) -> None:
        self.root = root
        self.api_port = free_port() if api else 0
        self.metrics_port = free_port() if metrics else 0
        args = [sys.executable, "-m", "chantd", "-C", root, "--log-level", "warning", *extra]
        if api is not None:
            args += ["--api-port", str(self.api_port)]
        if metrics is not None:
            args += ["--metrics-port", str(self.metrics_port)]
        self.log_path = os.path.join(root, ".chant", "test-daemon.log")
        self._log = open(self.log_path, "ab")
        full_env = dict(os.environ)
        full_env.update(env or {})
        self._env = full_env
        self.proc = subprocess.Popen(args, stdout=self._log, stderr=self._log, env=full_env, cwd=root)
        try:
            self.info = self._wait_ready()
        except BaseException:
            self.kill()
            self._log.close()
            raise

    def _wait_ready(self, timeout: float = 60.0) -> dict:
        from chantlib.client import DaemonClient, DaemonUnavailable

        deadline = _time.monotonic() + timeout
        while _time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"chantd exited with {self.proc.returncode}:\n{self.log()}")
            try:
                with DaemonClient.connect(self.root, timeout=10) as client:
                    status = client.call("daemon_status", {})
            except DaemonUnavailable:
                _time.sleep(0.05)
                continue
            if status.get("watch"):  # the last thing the daemon sets up
                with open(os.path.join(self.root, ".chant", "daemon.json"), encoding="utf-8") as fh:
                    info = _json.load(fh)
                if info.get("socket") and ("api" in info):
                    return info
            _time.sleep(0.02)
        raise RuntimeError(f"chantd did not answer within {timeout}s:\n{self.log()}")

    @property
    def socket(self) -> str:
        return self.info["socket"]

    @property
    def token(self) -> str:
        """The HTTP API's token: the one configured, else the one the daemon made."""
        from chantlib.client import read_token

        return self._env.get("CHANT_API_TOKEN") or read_token(self.root)

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def client(self):
        from chantlib.client import DaemonClient

        return DaemonClient.connect(self.root)

    def call(self, cmd: str, **params):
        with self.client() as c:
            return c.call(cmd, params)

    def log(self) -> str:
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as fh:
                return fh.read()[-4000:]
        except OSError:
            return ""

    def stop(self, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(_signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if not self._log.closed:
            self._log.close()
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def daemon_factory():
    started: list[DaemonProc] = []

    def start(root: str, **kwargs) -> DaemonProc:
        d = DaemonProc(str(root), **kwargs)
        started.append(d)
        return d

    yield start
    for d in started:
        d.stop()


@pytest.fixture
def cli_daemon(repo):
    """For tests that start the daemon through the CLI (`--background`, autostart): whatever
    daemon of ``repo`` still runs at the end, however the test ended, is killed."""
    yield repo
    from chantlib.client import runtime_info
    from chantlib.locks import pid_alive

    pid = (runtime_info(repo.root) or {}).get("pid")
    if isinstance(pid, int) and pid_alive(pid):
        os.kill(pid, _signal.SIGKILL)


#: for scripts run by :func:`run_racers`: ``wait_for_go(path)`` blocks until the start signal
WAIT_FOR_GO = textwrap.dedent(
    """
    import os as _os, sys as _sys, time as _time

    def wait_for_go(go, limit=30):
        deadline = _time.monotonic() + limit
        while not _os.path.exists(go):
            if _time.monotonic() > deadline:
                _sys.exit("no start signal")
            _time.sleep(0.002)
    """
)


def run_racers(script: str, argvs: list[list[str]], go: str, timeout: float = 60) -> list:
    """Start ``python -c script *argv`` for each argv (this checkout on the path), let them all
    go at once (they wait for the file ``go``), and return what each printed, as JSON, in
    order. A racer that fails fails the test; none outlives it."""
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    procs = []
    try:
        for argv in argvs:
            procs.append(subprocess.Popen([sys.executable, "-c", WAIT_FOR_GO + script, *argv],
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env))
        with open(go, "w"):
            pass
        results = []
        for index, proc in enumerate(procs):
            out, err = proc.communicate(timeout=timeout)
            assert proc.returncode == 0, f"racer {index} failed: {err}"
            results.append(_json.loads(out))
        return results
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)


#: the real spec corpus beside the project (``CHANT_CORPUS`` overrides): test data, never copied in
CORPUS = os.path.abspath(os.environ.get("CHANT_CORPUS") or os.path.join(ROOT, "..", "shared", "corpus"))


def copy_corpus(snapshot: str, dest) -> str:
    """A writable copy of one corpus snapshot under ``dest`` (the corpus itself is read-only);
    skips the test, with the reason, where the corpus is absent."""
    import shutil
    import stat

    src = os.path.join(CORPUS, snapshot)
    if not os.path.isdir(os.path.join(src, ".chant")):
        pytest.skip(f"real spec corpus not found at {src} (set CHANT_CORPUS)")
    target = os.path.join(str(dest), snapshot)
    shutil.copytree(src, target)
    os.chmod(target, os.stat(target).st_mode | stat.S_IWUSR)
    for folder, dirs, files in os.walk(target):
        for name in dirs + files:
            path = os.path.join(folder, name)
            os.chmod(path, os.stat(path).st_mode | stat.S_IWUSR)
    return target
