"""chantlib.connect: one client interface, in process, over the daemon's socket and over HTTP,
shared by threads; and the rules that pick the backend and fall back (the CLI's, moved into
the library: tests/test_daemon.py checks them through the CLI)."""

from __future__ import annotations

import json
import os
import socket
import threading

import pytest

import chantlib
from chantlib import DirectBackend, HttpBackend, SocketBackend, Unavailable, UsageError, connect

from .conftest import run_chant

IDS = [f"2026-01-24-{i:03d}-aaa" for i in range(1, 9)]


@pytest.fixture
def eight(repo):
    for spec_id in IDS:
        repo.write(spec_id)
    return repo


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


# --- each mode ----------------------------------------------------------------------------------


def test_direct_mode_on_a_repository_without_a_daemon(eight):
    with connect(eight.root) as backend:
        assert isinstance(backend, DirectBackend) and backend.mode == "direct" and backend.root == eight.root
        assert [s["id"] for s in backend.call("list", fields=["id"])["specs"]] == IDS
        lease = backend.call("lock_acquire", spec="001-aaa", owner="me@host", ttl=600)
        # a dict (the CLI's way), keywords, or both: keywords win
        status = backend.call("lock_status", {"spec": "nothing"}, spec="001-aaa")
        assert status["locked"] is True and status["lease"]["token"] == lease["token"]
        assert backend.call("lock_release", {"spec": IDS[0], "token": lease["token"]})["token"] == lease["token"]
    with connect(os.path.join(eight.root, ".chant", "specs")) as inside:  # any folder of the repository
        assert inside.mode == "direct" and inside.root == eight.root


def test_direct_is_forced_over_a_daemon_and_chant_daemon(eight, daemon_factory, monkeypatch):
    daemon_factory(eight.root, api=False, metrics=False)
    monkeypatch.setenv("CHANT_DAEMON", "http://127.0.0.1:1")
    with connect(eight.root, direct=True) as backend:
        assert backend.mode == "direct"
        assert backend.call("list", fields=["id"])["specs"][0]["id"] == IDS[0]
    with pytest.raises(UsageError, match="not on http://127.0.0.1:1"):
        connect("http://127.0.0.1:1", direct=True)


def test_socket_mode_uses_the_repositorys_daemon(eight, daemon_factory):
    d = daemon_factory(eight.root, api=False, metrics=False)
    with connect(eight.root) as backend:
        assert isinstance(backend, SocketBackend) and backend.mode == "socket" and backend.root == eight.root
        assert backend.hello["pid"] == d.pid and backend.hello["loaded"] is True
        assert [s["id"] for s in backend.call("list", {"fields": ["id"]})["specs"]] == IDS
        lease = backend.call("lock_acquire", spec="002-aaa", ttl=600)
        assert lease["owner"] == "tester@test"  # the caller's identity (CHANT_OWNER), as the CLI sends it
    assert [x["spec"] for x in d.call("lock_list")["leases"]] == [IDS[1]]  # held by the daemon


def test_http_mode_by_url_and_by_chant_daemon(eight, daemon_factory, monkeypatch, tmp_path):
    d = daemon_factory(eight.root, metrics=False)
    with connect(d.api, token=d.token) as backend:
        assert isinstance(backend, HttpBackend) and backend.mode == "http" and backend.root is None
        assert [s["id"] for s in backend.call("list", fields=["id"])["specs"]] == IDS
        backend.call("lock_acquire", spec="003-aaa", owner="pod-7", ttl=600)
    assert [(x["spec"], x["owner"]) for x in d.call("lock_list")["leases"]] == [(IDS[2], "pod-7")]

    elsewhere = tmp_path / "pod"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # no repository here: the daemon is named by the environment
    monkeypatch.setenv("CHANT_DAEMON", d.api)
    monkeypatch.setenv("CHANT_API_TOKEN", d.token)
    with connect() as backend:
        assert backend.mode == "http" and backend.call("lock_status", spec=IDS[2])["lease"]["owner"] == "pod-7"
    monkeypatch.setenv("CHANT_DAEMON", "http://127.0.0.1:1")
    with pytest.raises(Unavailable, match=r"^CHANT_DAEMON=http://127.0.0.1:1: no daemon answers"):
        connect()
    with pytest.raises(Unavailable, match=r"^no daemon answers at http://127.0.0.1:1"):
        connect("http://127.0.0.1:1")


# --- threads --------------------------------------------------------------------------------------


def _backend(mode: str, repo, daemon_factory):
    if mode == "direct":
        return connect(repo.root)
    d = daemon_factory(repo.root, api=mode == "http", metrics=False)
    return connect(d.api, token=d.token) if mode == "http" else connect(repo.root)


def _hammer(call, threads: int = 8, rounds: int = 50) -> list[str]:
    """``threads`` threads, each with a lease of its own spec, making ``rounds`` calls
    (lock_renew, lock_status, list) through ``call`` at once; what went wrong, if anything."""
    failures: list[str] = []
    start = threading.Barrier(threads)

    def work(i: int) -> None:
        spec, owner = IDS[i], f"worker-{i}@test"
        try:
            lease = call("lock_acquire", {"spec": spec, "owner": owner, "ttl": 600})
            start.wait(30)
            for k in range(rounds):
                kind = k % 3
                if kind == 0:
                    got = call("lock_renew", {"spec": spec, "owner": owner, "token": lease["token"], "ttl": 600})
                    assert (got["spec"], got["owner"], got["token"]) == (spec, owner, lease["token"]), got
                elif kind == 1:
                    got = call("lock_status", {"spec": spec})
                    assert got["spec"] == spec and got["locked"] and got["lease"]["owner"] == owner, got
                else:
                    got = call("list", {"fields": ["id"]})
                    assert [s["id"] for s in got["specs"]] == IDS, got
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            failures.append(f"thread {i}: {type(exc).__name__}: {exc}")
            start.abort()

    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join(120)
    assert not any(t.is_alive() for t in workers), "a thread is still running"
    return failures


@pytest.mark.parametrize("mode", ["direct", "socket", "http"])
def test_one_backend_shared_by_eight_threads(mode, eight, daemon_factory):
    with _backend(mode, eight, daemon_factory) as backend:
        assert backend.mode == mode
        assert _hammer(backend.call) == []
        leases = backend.call("lock_list")["leases"]
    assert sorted((x["spec"], x["owner"]) for x in leases) == [(s, f"worker-{i}@test") for i, s in enumerate(IDS)]


@pytest.mark.parametrize("mode", ["socket", "http"])
def test_one_raw_client_shared_by_eight_threads(mode, eight, daemon_factory):
    """DaemonClient and HttpClient hold one connection: its exchanges take turns."""
    d = daemon_factory(eight.root, api=mode == "http", metrics=False)
    client = chantlib.HttpClient.connect(d.api, token=d.token) if mode == "http" else chantlib.DaemonClient.connect(eight.root)
    with client:
        assert _hammer(client.call) == []


def test_each_thread_has_a_connection_and_close_closes_them_all(eight, daemon_factory):
    daemon_factory(eight.root, api=False, metrics=False)
    before = _open_fds()
    backend = connect(eight.root)
    assert _open_fds() == before + 1
    parked, release = threading.Barrier(5), threading.Event()

    def first_call_then_wait() -> None:
        backend.call("lock_list")
        parked.wait(30)
        release.wait(30)

    threads = [threading.Thread(target=first_call_then_wait) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        parked.wait(30)
        assert _open_fds() == before + 5  # four threads, four connections of their own, and the first
    finally:
        release.set()
        for t in threads:
            t.join(30)
    for _ in range(10):  # threads that ended leave their connection to be closed by the next new one
        t = threading.Thread(target=backend.call, args=("lock_list",))
        t.start()
        t.join(30)
    assert _open_fds() <= before + 3
    backend.close()
    assert _open_fds() == before
    with pytest.raises(ValueError, match="closed"):
        backend.call("lock_list")


# --- progress -------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["direct", "socket"])
def test_call_with_progress_reports_to_the_callback_and_ends_with_none(mode, eight, daemon_factory):
    seen: list = []
    if mode == "socket":
        daemon_factory(eight.root, api=False, metrics=False)
    with connect(eight.root, progress=lambda topic, state: seen.append((topic, state))) as backend:
        assert backend.mode == mode
        assert backend.call_with_progress("index_rebuild")["specs"] == len(IDS)
    assert seen[-1] == ("index_rebuild", None)
    assert all(topic == "index_rebuild" and set(state) >= {"phase", "done", "total"} for topic, state in seen[:-1])
    if mode == "direct":  # the workspace reports each phase's end
        assert ("index_rebuild", {"phase": "reading", "done": len(IDS), "total": len(IDS)}) in seen


# --- the fallback rules ---------------------------------------------------------------------------


def test_a_daemon_that_stops_leaves_each_call_to_direct_mode_with_a_note(eight, daemon_factory):
    d = daemon_factory(eight.root, api=False, metrics=False)
    notes: list[str] = []
    with connect(eight.root, note=notes.append) as backend:
        assert backend.mode == "socket" and backend.call("lock_list")["leases"] == []
        assert d.stop() == 0
        assert [s["id"] for s in backend.call("list", fields=["id"])["specs"]] == IDS  # in direct mode
        assert len(notes) == 1 and notes[0].startswith("warning: the daemon went away (")
        assert notes[0].endswith("running this command in direct mode")
        lease = backend.call("lock_acquire", spec=IDS[0], owner="me@host")  # its request never left: safe
        assert len(notes) == 2
    with connect(eight.root) as direct:
        assert direct.mode == "direct" and direct.call("lock_status", spec=IDS[0])["lease"]["token"] == lease["token"]


class _DroppingDaemon:
    """A daemon of this repository that answers ``hello`` on each connection, reads one
    request and closes without answering it (it died in the middle)."""

    def __init__(self, root: str) -> None:
        from chantlib.client import socket_path

        self.root = root
        self.path = socket_path(root)
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(self.path)
        self.server.listen(8)
        self.requests: list[dict] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        from chantlib._version import PROTOCOL_VERSION

        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            with conn:
                reader = conn.makefile("rb")
                hello = json.loads(reader.readline())
                result = {"version": "x", "protocol": PROTOCOL_VERSION, "root": self.root, "loaded": True}
                conn.sendall(json.dumps({"ok": True, "id": hello.get("id"), "result": result}).encode() + b"\n")
                line = reader.readline()
                if line:
                    self.requests.append(json.loads(line))
                reader.close()

    def close(self) -> None:
        self.server.shutdown(socket.SHUT_RDWR)
        self.server.close()
        self.thread.join(10)
        os.unlink(self.path)


def test_a_write_whose_request_left_fails_and_is_not_run_again(eight):
    fake = _DroppingDaemon(eight.root)
    notes: list[str] = []
    try:
        with connect(eight.root, note=notes.append) as backend:
            assert backend.mode == "socket"
            with pytest.raises(Unavailable, match="went away after it was sent `lock_acquire`.*not run again"):
                backend.call("lock_acquire", spec=IDS[0], owner="me@host")
            assert notes == []
            # a read is safe to run again: direct mode, with a note
            assert backend.call("lock_status", spec=IDS[0])["locked"] is False
            assert len(notes) == 1 and notes[0].startswith("warning: the daemon went away (")
    finally:
        fake.close()
    assert [(r["cmd"], r.get("spec")) for r in fake.requests] == [("lock_acquire", IDS[0]), ("lock_status", IDS[0])]
    with connect(eight.root) as direct:
        assert direct.call("lock_status", spec=IDS[0])["locked"] is False  # not taken a second time here


def test_a_remote_daemon_that_goes_fails_the_call(eight, daemon_factory):
    d = daemon_factory(eight.root, metrics=False)
    with connect(d.api, token=d.token) as backend:
        assert backend.call("lock_list")["leases"] == []
        assert d.stop() == 0
        with pytest.raises(Unavailable, match="the daemon went away in the middle of `list`"):
            backend.call("list")  # no files here to fall back to


def test_scale_daemon_enabled_starts_one_unless_autostart_is_off(cli_daemon):
    repo = cli_daemon
    for spec_id in IDS:
        repo.write(spec_id)
    with open(os.path.join(repo.root, ".chant", "config.md"), "w") as fh:
        fh.write("---\nscale:\n  daemon:\n    enabled: true\n    api_port: 0\n    metrics_port: 0\n---\n")
    with connect(repo.root, autostart=False) as backend:
        assert backend.mode == "direct"
    notes: list[str] = []
    try:
        with connect(repo.root, note=notes.append) as backend:
            assert backend.mode == "socket"
            assert notes == [f"Started the daemon (PID {backend.hello['pid']}) because scale.daemon.enabled is true"]
            assert len(backend.call("list")["specs"]) == len(IDS)
        with connect(repo.root, note=notes.append) as again:  # it runs: used, not started twice
            assert again.mode == "socket" and len(notes) == 1
    finally:
        stop = run_chant(["daemon", "stop"], repo.root)
    assert stop.code == 0


@pytest.mark.slow
def test_an_http_backend_idle_past_the_servers_keep_alive_calls_again_on_a_new_connection(eight, daemon_factory):
    """The daemon closes a kept HTTP connection idle for HTTP_IDLE_SECONDS: the next call's
    request never left, so it is sent again on a new connection, read or write alike."""
    import time

    from chantd.server import HTTP_IDLE_SECONDS

    d = daemon_factory(eight.root, metrics=False)
    with connect(d.api, token=d.token) as backend:
        backend.call("lock_list")
        time.sleep(HTTP_IDLE_SECONDS + 1.5)
        assert backend.call("lock_list")["leases"] == []
        time.sleep(HTTP_IDLE_SECONDS + 1.5)
        lease = backend.call("lock_acquire", spec="002-aaa", owner="pod-7", ttl=600)
    assert [(x["spec"], x["token"]) for x in d.call("lock_list")["leases"]] == [(IDS[1], lease["token"])]


@pytest.mark.parametrize("mode", ["direct", "socket", "http"])
def test_errors_are_the_same_classes_with_the_same_attributes_in_every_mode(mode, eight, daemon_factory):
    from chantlib.errors import LockHeld, SpecNotFound

    if mode != "direct":
        d = daemon_factory(eight.root, metrics=False, api=mode == "http")
    target = eight.root if mode != "http" else d.api
    with connect(target, direct=mode == "direct", token=None if mode != "http" else d.token) as backend:
        with pytest.raises(SpecNotFound) as missing:
            backend.call("show", spec="nosuch")
        assert missing.value.partial == "nosuch" and missing.value.code == "not_found"
        backend.call("lock_acquire", spec="002-aaa", owner="agent-2", ttl=600)
        with pytest.raises(LockHeld) as held:
            backend.call("lock_acquire", spec="002-aaa", owner="agent-3", ttl=600)
        assert (held.value.spec_id, held.value.holder) == (IDS[1], "agent-2")
        assert held.value.expires_at and held.value.token is None or isinstance(held.value.token, int)
