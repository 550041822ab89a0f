"""What the tests share: throw-away repositories, the real `chant` command, a real daemon
process, racing processes and the real spec corpus. The fixtures that hand these out are
registered in ``conftest.py``; tests import the helpers from here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from chantd.testing import DaemonProcess, free_port

__all__ = ["CORPUS", "ROOT", "WAIT_FOR_GO", "DaemonProc", "Git", "Receiver", "Repo", "Result", "copy_corpus", "free_port",
           "isolated_git_env", "run_chant", "run_racers"]

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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


class Git:
    """A git repository in a temp folder, isolated from the user's configuration (``env``:
    :func:`isolated_git_env`); ``git(*args)`` runs git in it and returns its output."""

    def __init__(self, path, env):
        self.path = str(path)
        self.env = env

    def __call__(self, *args, cwd=None, check=True) -> str:
        proc = subprocess.run(["git", *args], cwd=cwd or self.path, env=self.env, capture_output=True,
                              text=True, timeout=60)
        if check and proc.returncode:
            raise AssertionError(f"git {' '.join(args)} failed: {proc.stdout}{proc.stderr}")
        return proc.stdout.strip()

    def configure(self, cwd=None):
        for key, value in (("user.name", "Test"), ("user.email", "test@example.com"), ("gc.auto", "0"),
                           ("maintenance.auto", "false"), ("commit.gpgsign", "false")):
            self("config", key, value, cwd=cwd)

    def commit(self, message, cwd=None, name="f") -> str:
        folder = cwd or self.path
        with open(os.path.join(folder, name), "a", encoding="utf-8") as fh:
            fh.write(message + "\n")
        self("add", name, cwd=folder)
        self("commit", "-q", "-m", message, cwd=folder)
        return self("rev-parse", "HEAD", cwd=folder)

    def head(self, cwd=None) -> str:
        return self("rev-parse", "HEAD", cwd=cwd)

    def log_path(self, rel) -> str:
        return os.path.join(self.path, ".git", rel)


    @classmethod
    def init(cls, path, env, *, first: str | None = "first") -> Git:
        """``git init`` at ``path`` (an existing folder is fine), configured; with a first
        commit of a file ``f`` unless ``first`` is ``None``."""
        g = cls(path, env)
        os.makedirs(g.path, exist_ok=True)
        subprocess.run(["git", "init", "-q", "-b", "main", g.path], env=env, check=True, capture_output=True)
        g.configure()
        if first is not None:
            g.commit(first)
        return g


def isolated_git_env(home) -> dict:
    """The environment for git in a test: no global or system config, no GIT_* inherited."""
    os.makedirs(home, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(HOME=str(home), GIT_CONFIG_GLOBAL=os.devnull, GIT_CONFIG_NOSYSTEM="1", LC_ALL="C")
    return env


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        pass  # a client that timed out and left: the late answer has nowhere to go


class Receiver:
    """An HTTP server on loopback (port 0, a thread of the test) recording what it was sent
    (``requests``, ``bodies()``) and answering from a script: ``answers`` in turn, 200 once
    they are used up; ``hold``: each request waits for ``release``. Start its ``thread``,
    call ``stop()``."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: list[dict] = []
        #: (status, headers) answered in turn; 200 once they are used up
        self.answers: list[tuple[int, dict]] = []
        self.hold = False  # hold each request until `release` is set
        self.release = threading.Event()
        self.arrived = threading.Event()
        self.server = _Server(("127.0.0.1", 0), _Handler)
        self.server.receiver = self  # type: ignore[attr-defined]
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       name="test-receiver", daemon=True)

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def bodies(self) -> list:
        with self.lock:
            return [json.loads(r["body"]) for r in self.requests]

    def stop(self) -> None:
        self.release.set()  # a held request answers (to a client long gone)
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        rec: Receiver = self.server.receiver  # type: ignore[attr-defined]
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with rec.lock:
            rec.requests.append({"method": self.command, "path": self.path, "headers": dict(self.headers),
                                 "body": body})
            status, headers = rec.answers.pop(0) if rec.answers else (200, {})
        rec.arrived.set()
        if rec.hold:
            rec.release.wait(10)
        payload = b"ok" if status < 300 else b"no_service\nmore"
        self.send_response(status)
        for name, value in {"Content-Length": str(len(payload)), **headers}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format, *args) -> None:  # noqa: A002 - the base class's name
        pass


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


class DaemonProc(DaemonProcess):
    """`chantd` running on a repository, as a real process; stopped by the test.

    ``api``/``metrics``: serve on a free loopback port (True), not at all (False), or pass no
    option so the config or the default decides (None). Started (fully: ``daemon.json``
    written, the watcher running) when made; ``info`` is its ``daemon.json``. The process
    itself is :class:`chantd.testing.DaemonProcess`, as the benchmarks run it."""

    def __init__(self, root: str, *, api: bool | None = True, metrics: bool | None = True, extra=(),
                 env=None) -> None:
        self.api_port = free_port() if api else 0
        self.metrics_port = free_port() if metrics else 0
        args = ["--log-level", "warning", *extra]
        if api is not None:
            args += ["--api-port", str(self.api_port)]
        if metrics is not None:
            args += ["--metrics-port", str(self.metrics_port)]
        full_env = dict(os.environ)
        full_env.update(env or {})
        super().__init__(root, args, env=full_env, log_path=os.path.join(root, ".chant", "test-daemon.log"))
        self.start(timeout=60.0, poll=0.02)  # stopped again if it fails
        self.info = self.read_info()
        if not self.info.get("socket") or "api" not in self.info:
            self.kill()
            raise RuntimeError(f"chantd wrote an incomplete daemon.json: {self.info}")

    @property
    def socket(self) -> str:
        return self.info["socket"]

    @property
    def token(self) -> str:
        """The HTTP API's token: the one configured, else the one the daemon made."""
        from chantlib.client import read_token

        return self.env.get("CHANT_API_TOKEN") or read_token(self.root)

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"


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
            results.append(json.loads(out))
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
