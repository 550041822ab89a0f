"""What a daemon bounds: connections (a cap, timeouts), its log, the input it accepts, the
files it leaves readable, and its own life when its repository goes.

The real daemon process where a real client can show it; in process (a real Unix socket or
TCP port in the test's own event loop) where a bound is a timeout too long to wait for.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import socket
import stat
import subprocess
import sys
import time

import pytest

from .support import run_chant


def _specs(repo, n: int = 2) -> None:
    for i in range(1, n + 1):
        repo.write(f"2026-01-24-{i:03x}-aaa")


def _config(repo, daemon: str) -> None:
    with open(os.path.join(repo.root, ".chant", "config.md"), "w") as fh:
        fh.write(f"---\nproject:\n  name: test\nscale:\n  daemon:\n{daemon}---\n")


def _read_until_closed(sock: socket.socket, timeout: float = 10.0) -> bytes:
    sock.settimeout(timeout)
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk


# --- connections --------------------------------------------------------------------------------


def test_the_socket_refuses_connections_over_the_cap_with_one_line(repo, daemon_factory):
    _specs(repo)
    _config(repo, "    max_connections: 4\n")
    d = daemon_factory(repo.root, api=False, metrics=False)
    idle = []
    try:
        for _ in range(4):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(d.socket)
            idle.append(s)
        time.sleep(0.2)  # let the daemon accept them all
        extra = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        extra.connect(d.socket)
        answer = json.loads(_read_until_closed(extra))
        extra.close()
        assert answer["ok"] is False and answer["error"]["code"] == "unavailable"
        assert "4 connections open" in answer["error"]["message"]
        # the idle ones are still served
        idle[0].sendall(b'{"cmd":"queue_next"}\n')
        assert json.loads(_read_until_closed(idle[0]))["result"]["depth"] == 2
    finally:
        for s in idle:
            s.close()
    time.sleep(0.2)
    assert run_chant(["list", "--count"], repo.root).out == "2\n"  # room again: the CLI is served


def test_an_http_connection_over_the_cap_gets_the_envelope(repo, daemon_factory):
    _specs(repo)
    _config(repo, "    max_connections: 3\n")
    d = daemon_factory(repo.root, metrics=False)
    idle = []
    try:
        for _ in range(3):
            idle.append(socket.create_connection(("127.0.0.1", d.api_port)))
        time.sleep(0.2)
        extra = socket.create_connection(("127.0.0.1", d.api_port))
        extra.sendall(b"GET /api/queue/next HTTP/1.1\r\nhost: x\r\n\r\n")
        raw = _read_until_closed(extra)
        extra.close()
        head, _, body = raw.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 503 ") and b"application/json" in head
        assert json.loads(body)["error"]["code"] == "unavailable"
    finally:
        for s in idle:
            s.close()


def _serve_socket(service, path, **limits):
    from chantd.socket import SocketServer

    return SocketServer(service, path, **limits)


def test_silent_and_idle_socket_connections_are_closed_and_the_client_reconnects(repo, tmp_path):
    from chantd.service import Service
    from chantlib.client import DaemonClient

    _specs(repo)
    ws = repo.workspace(auto_refresh=False, long_lived=True)
    service = Service(ws)
    path = str(tmp_path / "s.sock")

    async def scenario():
        await service.load()
        server = _serve_socket(service, path, first_line_seconds=0.3, idle_seconds=0.5)
        await server.start()
        try:
            # silent from the start: closed after the first-line timeout
            silent = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            silent.connect(path)
            silent.setblocking(False)
            started = time.monotonic()
            loop = asyncio.get_running_loop()
            assert await asyncio.wait_for(loop.sock_recv(silent, 10), 5) == b""
            assert 0.2 < time.monotonic() - started < 4
            silent.close()
            # a client idle for longer than the idle timeout finds its connection closed and
            # opens a new one before sending (nothing is lost, nothing sent twice)
            client = await asyncio.to_thread(DaemonClient.connect, repo.root, path=path)
            first = client.sock
            await asyncio.sleep(1.5)
            depth = (await asyncio.to_thread(client.call, "queue_next", {}))["depth"]
            assert depth == 2 and client.sock is not first
            client.close()
        finally:
            await server.close()

    try:
        asyncio.run(scenario())
    finally:
        service.close()


def test_an_http_request_head_that_does_not_come_is_closed(monkeypatch):
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from chantd import server as server_module

    monkeypatch.setattr(server_module, "HTTP_HEAD_SECONDS", 0.3)

    async def hello(request):
        return PlainTextResponse("hi")

    async def scenario():
        sock = server_module.listen("127.0.0.1", 0)
        port = sock.getsockname()[1]
        http = server_module._Uvicorn(Starlette(routes=[Route("/", hello)]), sock)
        await http.start()
        try:
            def probe(payload: bytes) -> tuple[bytes, float]:
                c = socket.create_connection(("127.0.0.1", port))
                started = time.monotonic()
                if payload:
                    c.sendall(payload)
                data = _read_until_closed(c, timeout=10)
                c.close()
                return data, time.monotonic() - started

            nothing, waited = await asyncio.to_thread(probe, b"")
            assert nothing == b"" and waited < 5
            trickled, waited = await asyncio.to_thread(probe, b"GET / HTTP/1.1\r\nhost: x\r\n")  # no end of head
            assert trickled == b"" and waited < 5
            answered, _ = await asyncio.to_thread(probe, b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            assert answered.startswith(b"HTTP/1.1 200 ") and answered.endswith(b"hi")
        finally:
            await http.stop()

    asyncio.run(scenario())


# --- the log ------------------------------------------------------------------------------------------


def test_a_repeated_message_is_rate_limited_and_the_next_one_says_how_many_were_dropped():
    from chantd.logs import RateLimit

    now = [0.0]
    limit = RateLimit(burst=3, window=60.0, clock=lambda: now[0])
    records = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record.getMessage())

    logger = logging.getLogger("chantd.test-rate")
    logger.propagate = False
    handler = Keep()
    handler.addFilter(limit)
    logger.addHandler(handler)
    try:
        for i in range(1000):
            logger.warning("refusing a connection: %d are open", i)
        logger.warning("something else")
        assert len(records) == 4 and records[-1] == "something else"
        now[0] = 61.0
        logger.warning("refusing a connection: %d are open", 5000)
        assert records[-1] == "(997 more like this were not logged in the last 60 s) refusing a connection: 5000 are open"
    finally:
        logger.removeHandler(handler)


def test_a_background_daemon_logs_to_a_private_rotating_file(cli_daemon):
    repo = cli_daemon
    _specs(repo)
    start = run_chant(["daemon", "start", "--background", "--api-port", "0", "--metrics-port", "0"], repo.root)
    try:
        assert start.code == 0, start
        logs = os.path.join(repo.root, ".chant", "logs")
        assert stat.S_IMODE(os.stat(logs).st_mode) == 0o700
        assert stat.S_IMODE(os.stat(os.path.join(logs, "daemon.log")).st_mode) == 0o600
        chant_dir = os.path.join(repo.root, ".chant")
        assert run_chant(["lock", "acquire", "001-aaa"], repo.root).code == 0
        assert stat.S_IMODE(os.stat(os.path.join(chant_dir, "daemon.json")).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(os.path.join(chant_dir, "daemon.lock")).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(os.path.join(chant_dir, ".locks")).st_mode) == 0o700
        assert stat.S_IMODE(os.stat(os.path.join(chant_dir, ".locks", ".journal")).st_mode) == 0o600
    finally:
        stop = run_chant(["daemon", "stop"], repo.root)
    assert stop.code == 0
    leases = [n for n in os.listdir(os.path.join(repo.root, ".chant", ".locks")) if n.endswith(".lock")]
    assert leases and all(
        stat.S_IMODE(os.stat(os.path.join(repo.root, ".chant", ".locks", n)).st_mode) == 0o600 for n in leases
    )


# --- malformed input --------------------------------------------------------------------------------


def _strict(name):
    raise AssertionError(f"the answer holds {name}, which is not JSON")


@pytest.mark.parametrize(
    ("line", "code"),
    [
        (b"[" * 100000, "bad_request"),
        (b'{"cmd":"hello","id":NaN}', "bad_request"),
        (b'{"cmd":"hello","id":Infinity}', "bad_request"),
        (b'{"cmd":"search","q":"\\ud800"}', "bad_request"),
        (b'{"cmd":"list","x":' + b'{"a":' * 50 + b"1" + b"}" * 50 + b"}", "bad_request"),
        (b'{"cmd":"search","q":"' + b"(" * 5000 + b"a" + b")" * 5000 + b'"}', "bad_query"),
        (b'{"cmd":"search","q":"' + b"NOT " * 5000 + b'a"}', "bad_query"),
        (b'{"cmd":"lock_acquire","spec":"' + b"x" * 5000 + b'"}', "not_found"),
        (b'{"cmd":"lock_status","spec":"2026-' + b"x" * 300 + b'"}', "not_found"),
    ],
)
def test_malformed_socket_requests_get_a_4xx_envelope_and_the_daemon_lives_on(repo, daemon_factory, line, code):
    _specs(repo)
    d = daemon_factory(repo.root, api=False, metrics=False)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(d.socket)
    s.sendall(line + b"\n")
    raw = _read_until_closed(s)
    s.close()
    answer = json.loads(raw, parse_constant=_strict)  # valid JSON (no NaN), whatever was sent
    assert answer["ok"] is False and answer["error"]["code"] == code
    assert "Traceback" not in d.log()
    assert d.call("queue_next")["depth"] == 2


def test_a_very_long_id_in_direct_mode_is_not_found(repo):
    _specs(repo)
    for args in (["lock", "acquire", "x" * 5000], ["lock", "status", "2026-" + "x" * 300], ["show", "y" * 5000]):
        result = run_chant([*args, "--direct"], repo.root)
        assert result.code == 4 and result.err.startswith("error: Spec not found: "), result
        assert len(result.err) < 200  # the message does not echo the whole input


# --- orphans ----------------------------------------------------------------------------------------


def test_a_daemon_whose_repository_is_deleted_stops_and_frees_its_port(repo, daemon_factory, tmp_path):
    _specs(repo)
    d = daemon_factory(repo.root, metrics=False)
    port = d.api_port
    shutil.rmtree(repo.root)
    assert d.proc.wait(30) == 0  # a clean stop, not a crash
    # the port is free again: a daemon of another repository can have it
    other = tmp_path / "other"
    (other / ".chant" / "specs").mkdir(parents=True)
    proc = subprocess.Popen([sys.executable, "-m", "chantd", "-C", str(other), "--api-port", str(port),
                             "--metrics-port", "0", "--log-level", "warning"], stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not os.path.exists(other / ".chant" / "daemon.json"):
            assert proc.poll() is None, "the second daemon did not start: the port was not freed"
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        proc.terminate()
        proc.wait(30)


def test_a_moved_repository_is_said_so_and_its_daemon_stops(repo, daemon_factory, tmp_path):
    _specs(repo)
    d = daemon_factory(repo.root, api=False, metrics=False)
    moved = str(tmp_path / "moved")
    os.rename(repo.root, moved)
    status = run_chant(["daemon", "status"], moved)
    # either it is caught in the second before it stops, or it has stopped already
    if status.out.startswith("Daemon: running"):
        assert status.code == 1 and f"(PID {d.pid}) for {repo.root}, not this repository" in status.out
    assert d.proc.wait(30) == 0
    assert run_chant(["daemon", "status"], moved).out == "Daemon: not running\n"
    assert run_chant(["list", "--count"], moved).out == "2\n"


# --- smaller ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["direct", "daemon"])
def test_releasing_an_expired_lease_is_refused_in_both_modes(repo, daemon_factory, mode):
    _specs(repo)
    if mode == "daemon":
        daemon_factory(repo.root, api=False, metrics=False)
    taken = json.loads(run_chant(["lock", "acquire", "001-aaa", "--ttl", "0.5", "--json"], repo.root).out)
    time.sleep(0.8)
    for how in (["--token", str(taken["token"])], []):
        refused = run_chant(["lock", "release", "001-aaa", *how], repo.root)
        assert refused.code == 3 and "expired" in refused.err, (mode, refused)
    assert run_chant(["lock", "release", "001-aaa", "--force"], repo.root).code == 0


def test_temp_files_left_by_killed_writers_are_removed_at_the_next_walk(repo):
    _specs(repo)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(gone.stdout)
    dead = os.path.join(repo.specs, f".2026-01-24-001-aaa.md.{dead_pid}.a1b2c3.tmp")
    live = os.path.join(repo.specs, f".2026-01-24-002-aaa.md.{os.getpid()}.d4e5f6.tmp")  # a writer at work
    other = os.path.join(repo.specs, ".notes.tmp")  # not ours: never touched
    for path in (dead, live, other):
        with open(path, "w") as fh:
            fh.write("half a spec")
    assert run_chant(["list", "--count", "--direct"], repo.root).out == "2\n"
    assert not os.path.exists(dead)
    assert os.path.exists(live) and os.path.exists(other)


@pytest.mark.slow
def test_concurrent_background_starts_say_started_once(cli_daemon):
    repo = cli_daemon
    _specs(repo)
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    procs = [
        subprocess.Popen([sys.executable, "-m", "chant_cli", "daemon", "start", "--background", "--api-port", "0",
                          "--metrics-port", "0"], cwd=repo.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, env=env)
        for _ in range(4)
    ]
    try:
        outs = [p.communicate(timeout=120) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(10)
    assert all(p.returncode == 0 for p in procs), outs
    lines = [out.strip() for out, _err in outs]
    started = [line for line in lines if line.startswith("Daemon started (PID ")]
    assert len(started) == 1, lines
    pid = started[0].split("PID ")[1].split(")")[0]
    assert all(line == f"Daemon already running (PID {pid})" for line in lines if line not in started), lines
    assert run_chant(["daemon", "stop"], repo.root).code == 0


def test_a_foreign_holder_of_the_instance_lock_is_named_not_taken_for_a_daemon(repo):
    _specs(repo)
    lock = os.path.join(repo.root, ".chant", "daemon.lock")
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDONLY | os.O_CREAT); "
         "fcntl.flock(fd, fcntl.LOCK_SH); print('held', flush=True); time.sleep(60)", lock],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        proc = subprocess.run([sys.executable, "-m", "chantd", "-C", repo.root, "--api-port", "0", "--metrics-port",
                               "0"], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 3, proc
        assert proc.stderr.startswith(f"error: another process holds {lock}") and proc.stderr.count("\n") == 1
    finally:
        holder.kill()
        holder.wait(10)
        holder.stdout.close()


# --- the HTTP door ---------------------------------------------------------------------------------


def _get(port: int, path: str, token: str | None = None) -> tuple[int, bytes]:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    try:
        conn.request("GET", path, headers={"Authorization": f"Bearer {token}"} if token else {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_the_http_api_wants_a_token_on_loopback_too_and_makes_one(repo, daemon_factory):
    """Loopback is not a trust boundary on a shared machine: with no token configured, the
    daemon makes one (0600, kept out of git, the same across restarts) and wants it."""
    _specs(repo)
    d = daemon_factory(repo.root)
    path = os.path.join(repo.root, ".chant", "daemon.token")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    with open(os.path.join(repo.root, ".chant", ".gitignore")) as fh:
        assert "daemon.token" in fh.read().split()
    token = d.token
    for route in ("/api/queue/next", "/api/specs", "/api/lock/acquire/001-aaa", "/api/daemon", "/api/hello"):
        status, body = _get(d.api_port, route)
        assert status == 401 and json.loads(body)["error"]["code"] == "unauthorized", route
    assert _get(d.api_port, "/api/lock/acquire/001-aaa", "wrong")[0] == 401
    assert d.call("lock_list")["leases"] == []  # nothing was done by the refused requests
    assert _get(d.api_port, "/api/queue/next", token)[0] == 200
    for route in ("/livez", "/readyz", "/metrics", "/openapi.json"):
        assert _get(d.api_port, route)[0] == 200, route
    # the CLI in the repository finds the token by itself; from elsewhere it must be given
    via_http = run_chant(["list", "--count"], repo.root, env={"CHANT_DAEMON": d.api})
    assert via_http.code == 0 and via_http.out == "2\n", via_http
    elsewhere = run_chant(["list", "--count"], os.path.dirname(repo.root), env={"CHANT_DAEMON": d.api})
    assert elsewhere.code == 1 and "bearer token" in elsewhere.err, elsewhere
    d.stop()
    again = daemon_factory(repo.root)
    assert again.token == token  # clients holding it keep working across restarts


def test_loopback_is_decided_by_resolving_the_name():
    from chantlib.client import is_loopback

    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("[::1]") and is_loopback("localhost")
    assert is_loopback("127.5.6.7")
    for host in ("127.attacker.example", "0.0.0.0", "::", "10.0.0.1", "192.0.2.1", "no-such-host.invalid"):
        assert not is_loopback(host), host


def test_a_name_that_only_looks_like_loopback_needs_a_configured_token(repo):
    _specs(repo)
    proc = subprocess.run([sys.executable, "-m", "chantd", "-C", repo.root, "--api-host", "127.attacker.example",
                           "--api-port", "18099", "--metrics-port", "0"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "reachable beyond loopback" in proc.stderr, proc
