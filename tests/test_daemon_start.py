"""A daemon's start and its edges: no answer about specs before they are loaded, ports that
cannot be had, a socket file removed under a running daemon, and clients that wait for a load.

Real processes (chantd, the CLI) where the behaviour is the process's; in process where a
condition cannot be made on demand (a load that takes longer than a request may wait).
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest

from .support import DaemonProc, free_port, run_chant


def _specs(repo, n: int) -> list[str]:
    ids = [f"2026-01-24-{i:03x}-aaa" for i in range(1, n + 1)]
    for spec_id in ids:
        repo.write(spec_id, "status: pending\nlabels: [work]", f"# Work item {spec_id}\n\nSome words to index.\n")
    return ids


def _wait_for(predicate, timeout: float = 30.0, step: float = 0.01):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"not within {timeout}s")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


# --- defect: the first answers of a new daemon were empty -------------------------------------


@pytest.mark.slow
def test_a_claim_sent_the_moment_the_socket_appears_sees_every_spec(repo):
    """Start with both HTTP servers and no cached table, then at once claim: 20 times in a
    row. Before the fix the claim raced the load and answered "No ready specs" (exit 5)."""
    ids = set(_specs(repo, 120))
    sock = os.path.join(repo.root, ".chant", "daemon.sock")
    log = open(os.path.join(repo.root, ".chant", "start-test.log"), "ab")
    try:
        for attempt in range(20):
            shutil.rmtree(os.path.join(repo.root, ".chant", ".index"), ignore_errors=True)
            proc = subprocess.Popen(
                [sys.executable, "-m", "chantd", "-C", repo.root, "--api-port", str(free_port()),
                 "--metrics-port", str(free_port()), "--log-level", "warning"],
                stdout=log, stderr=log,
            )
            try:
                _wait_for(lambda p=proc: os.path.exists(sock) or p.poll() is not None, step=0.002)
                claim = run_chant(["queue", "next", "--claim", "--owner", f"w{attempt}", "--json"], repo.root)
                assert claim.code == 0, (attempt, claim)
                taken = json.loads(claim.out)["spec"]["id"]
                assert taken in ids
                listed = run_chant(["list", "--count"], repo.root)
                assert listed.out == f"{len(ids)}\n", (attempt, listed)
                released = run_chant(["lock", "release", taken, "--owner", f"w{attempt}"], repo.root)
                assert released.code == 0, released
            finally:
                _stop(proc)
    finally:
        log.close()


def test_requests_about_specs_wait_for_the_load_and_hello_says_so(repo, monkeypatch):
    from chantd import service as service_module
    from chantd.service import Service
    from chantlib.errors import Loading

    _specs(repo, 3)
    ws = repo.workspace(auto_refresh=False, long_lived=True)
    service = Service(ws)
    monkeypatch.setattr(service_module, "LOAD_WAIT", 0.2)

    async def scenario():
        hello = await service.call("hello", {}, "test")
        assert hello["ok"] and hello["result"]["loaded"] is False
        assert hello["result"]["loading"]["phase"] == "starting"
        refused = await service.call("list", {"ready": True}, "test")
        assert refused == {"ok": False, "error": refused["error"]}
        assert refused["error"]["code"] == "loading" and "list was not run" in refused["error"]["message"]
        assert Loading.http_status == 503
        status = await service.call("daemon_status", {}, "test")
        assert status["ok"] and status["result"]["loaded"] is False and status["result"]["busy"]
        assert status["result"]["queue_depth"] is None  # nothing about specs before the load
        # a request that arrives while the load runs is answered once it is done, not refused
        waiting = asyncio.ensure_future(service.call("queue_next", {}, "test"))
        await asyncio.sleep(0.05)
        assert not waiting.done()
        await service.load()
        answer = await asyncio.wait_for(waiting, 5)
        assert answer["ok"] and answer["result"]["depth"] == 3
        hello = await service.call("hello", {}, "test")
        assert hello["result"]["loaded"] is True and "loading" not in hello["result"]

    try:
        asyncio.run(scenario())
    finally:
        service.close()


# --- defect: a taken port killed the daemon with a traceback -----------------------------------


@pytest.fixture
def taken_port():
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    yield holder.getsockname()[1]
    holder.close()


def _chantd(root: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "chantd", "-C", root, *args], capture_output=True, text=True,
                          timeout=timeout)


def _no_daemon_left(repo) -> None:
    chant_dir = os.path.join(repo.root, ".chant")
    assert not os.path.exists(os.path.join(chant_dir, "daemon.sock"))
    assert not os.path.exists(os.path.join(chant_dir, "daemon.json"))
    assert run_chant(["daemon", "status"], repo.root).out == "Daemon: not running\n"


@pytest.mark.parametrize("server", ["api", "metrics"])
def test_a_taken_port_asked_for_on_the_command_line_is_one_line_and_exit_3(repo, taken_port, server):
    _specs(repo, 1)
    args = ["--api-port", str(taken_port), "--metrics-port", "0"] if server == "api" else \
        ["--api-port", "0", "--metrics-port", str(taken_port)]
    what = "HTTP API" if server == "api" else "metrics"
    proc = _chantd(repo.root, *args)
    assert proc.returncode == 3, proc
    assert proc.stderr.startswith(f"error: cannot listen on 127.0.0.1:{taken_port} for the {what}: ")
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
    _no_daemon_left(repo)
    # the same through `chant daemon start --background`: the daemon's one line, nothing older from the log
    os.makedirs(os.path.join(repo.root, ".chant", "logs"), exist_ok=True)
    with open(os.path.join(repo.root, ".chant", "logs", "daemon.log"), "a") as fh:  # an earlier run's lines
        fh.write("2026-01-01 00:00:00,000 INFO chantd: serving an old run\n" * 20)
    start = run_chant(["daemon", "start", "--background", *args], repo.root)
    assert start.code == 3, start
    assert start.err == proc.stderr and start.out == ""
    _no_daemon_left(repo)


def test_a_taken_port_set_in_the_config_is_asked_for_too(repo, taken_port):
    _specs(repo, 1)
    with open(os.path.join(repo.root, ".chant", "config.md"), "w") as fh:
        fh.write(f"---\nproject:\n  name: test\nscale:\n  daemon:\n    api_port: {taken_port}\n    metrics_port: 0\n---\n")
    proc = _chantd(repo.root)
    assert proc.returncode == 3 and proc.stderr.count("\n") == 1, proc
    assert f"127.0.0.1:{taken_port} for the HTTP API" in proc.stderr and "scale.daemon.api_port" in proc.stderr


def test_a_taken_default_port_is_a_warning_and_the_daemon_serves(repo):
    """Nobody asked for port 8080 (the default): when it is taken the daemon runs without
    the HTTP API and says so in its log."""
    _specs(repo, 1)
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        holder.bind(("127.0.0.1", 8080))
        holder.listen()
    except OSError:
        holder.close()
        holder = None  # taken by something else: taken all the same
    d = None
    try:
        d = DaemonProc(repo.root, api=None, metrics=False)
        assert d.info["api"] is None
        assert "not serving the HTTP API: the default port 127.0.0.1:8080 cannot be had" in d.log()
        assert "Traceback" not in d.log()
        assert run_chant(["list", "--count"], repo.root).out == "1\n"
    finally:
        if d is not None:
            d.stop()
        if holder is not None:
            holder.close()


# --- defect: a socket file removed under a running daemon ----------------------------------------


@pytest.mark.slow
def test_a_removed_socket_is_made_again_and_status_tells_the_truth(repo, daemon_factory):
    _specs(repo, 2)
    d = daemon_factory(repo.root, api=False, metrics=False)
    os.unlink(d.socket)
    status = run_chant(["daemon", "status"], repo.root)  # waits a few seconds for a daemon that holds the repo
    assert status.code == 0 and status.out.startswith(f"Daemon: running (PID {d.pid})"), status
    assert run_chant(["lock", "acquire", "001-aaa"], repo.root).code == 0
    assert [x["spec"] for x in d.call("lock_list")["leases"]] == ["2026-01-24-001-aaa"]
    assert "was removed; listening on it again" in d.log()

    # something that is not a socket takes the name: the daemon leaves it, and everyone says so
    os.unlink(d.socket)
    os.mkdir(d.socket)
    status = run_chant(["daemon", "status"], repo.root)
    assert status.code == 1 and status.out == f"Daemon: running (PID {d.pid}), not answering\n", status
    assert "does not answer" in status.err
    again = run_chant(["daemon", "start", "--background"], repo.root)
    assert again.code == 0 and again.out.startswith(f"Daemon already running (PID {d.pid})"), again
    refused = run_chant(["lock", "acquire", "002-aaa"], repo.root)
    assert refused.code == 3 and "owns its leases" in refused.err and "--direct" not in refused.err, refused
    assert "runs but does not answer" in refused.err
    listed = run_chant(["list", "--count"], repo.root)  # reads are safe on the files
    assert listed.code == 0 and listed.out == "2\n"
    os.rmdir(d.socket)
    _wait_for(lambda: run_chant(["daemon", "status"], repo.root).code == 0, timeout=30, step=0.2)


# --- clients wait for a load while it makes progress ---------------------------------------------


class _FakeDaemon:
    """A client whose hello walks through ``states`` (one per call), then says loaded."""

    def __init__(self, states) -> None:
        self.states = list(states)
        self.hello = {"loaded": False, "loading": self.states.pop(0)} if self.states else {"loaded": True}
        self.calls = 0

    def call(self, cmd, params=None):
        assert cmd == "hello"
        self.calls += 1
        if not self.states:
            return {"loaded": True}
        return {"loaded": False, "loading": self.states.pop(0)}


def test_wait_loaded_waits_while_the_load_moves_and_gives_up_when_it_stalls():
    from chantlib.client import LoadStalled, wait_loaded

    moving = [{"phase": "indexing", "done": i, "total": 30} for i in range(30)]
    seen = []
    client = _FakeDaemon(moving)
    started = time.monotonic()
    hello = wait_loaded(client, seen.append, stall=0.05, poll=0.01)  # the whole wait is longer than `stall`
    assert hello == {"loaded": True} and time.monotonic() - started > 0.05
    assert [s["done"] for s in seen] == list(range(30))
    stuck = _FakeDaemon([{"phase": "reading", "done": 5, "total": 9}] * 1000)
    with pytest.raises(LoadStalled, match="no progress for 0 s .reading 5 of 9."):
        wait_loaded(stuck, stall=0.1, poll=0.01)
    assert wait_loaded(_FakeDaemon([])) == {"loaded": True}  # loaded: no call at all
    assert wait_loaded(type("Old", (), {"hello": {"version": "0.0.1"}})()) == {"version": "0.0.1"}


def test_progress_is_drawn_on_a_terminal_only():
    from chant_cli.progress import Progress

    class Tty(io.StringIO):
        def isatty(self):
            return True

    tty, pipe = Tty(), io.StringIO()
    for stream in (tty, pipe):
        bar = Progress("Loading", stream, every=0)
        bar({"phase": "indexing", "done": 1200, "total": 50000})
        bar.clear()
    assert tty.getvalue() == "\r\x1b[KLoading: indexing 1,200 of 50,000 (2%)\r\x1b[K"
    assert pipe.getvalue() == ""


# --- progress on a terminal ---------------------------------------------------------------------


def _on_a_terminal(args, cwd, timeout: float = 300) -> tuple[int, str, str]:
    """Run the CLI with its stderr on a pseudo-terminal (stdout a pipe); (code, stdout, what
    the terminal showed)."""
    import pty

    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "chant_cli", *args], cwd=cwd, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=slave, env=dict(os.environ, TERM="xterm"))
    os.close(slave)
    shown = b""
    try:
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: every writer of the terminal has closed it
                break
            if not chunk:
                break
            shown += chunk
        out, _ = proc.communicate(timeout=timeout)
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()
    return proc.returncode, out.decode(), shown.decode("utf-8", "replace")


@pytest.mark.slow
def test_a_background_start_and_a_rebuild_show_their_progress_on_a_terminal(cli_daemon):
    import re

    from chantlib.generate import generate

    repo = cli_daemon
    generate(repo.root, 4000, seed=11)
    code, out, shown = _on_a_terminal(["daemon", "start", "--background", "--api-port", "0", "--metrics-port", "0"],
                                      repo.root)
    try:
        assert code == 0 and out.startswith("Daemon started (PID "), (out, shown)
        assert re.search(r"Daemon loading the specs: (reading|indexing) [\d,]+ of [\d,]+", shown), shown
        code, out, shown = _on_a_terminal(["index", "rebuild"], repo.root)  # through the daemon
        assert code == 0 and out.startswith("Indexed "), (out, shown)
        assert re.search(r"Rebuilding the index: (reading|indexing) [\d,]+ of [\d,]+", shown), shown
        assert shown.endswith("\r\x1b[K")  # the line is cleared before the answer is printed
    finally:
        assert run_chant(["daemon", "stop"], repo.root).code == 0
    code, out, shown = _on_a_terminal(["index", "rebuild", "--direct"], repo.root)
    assert code == 0 and re.search(r"Rebuilding the index: (reading|indexing) [\d,]+ of [\d,]+", shown), shown
    # on a pipe, nothing of the kind
    piped = run_chant(["index", "rebuild", "--direct"], repo.root)
    assert piped.code == 0 and "\x1b[K" not in piped.err and "Rebuilding" not in piped.err
