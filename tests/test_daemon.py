"""The daemon as a real process, spoken to with the seed's real clients (nc, curl) and the CLI."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
import time

import pytest

from .support import DaemonProc, run_chant

NC = shutil.which("nc")
CURL = shutil.which("curl")
PROMTOOL = shutil.which("promtool")


@pytest.fixture
def served(repo, daemon_factory):
    repo.write("2026-01-24-001-aaa", "status: pending\nlabels: [bug]", "# Fix the merge driver\n")
    repo.write("auth-2026-01-24-002-bbb", "status: pending", "# Rotate tokens\n")
    repo.write("2026-01-24-003-ccc", "status: completed", "# Done already\n")
    repo.write("2026-01-24-004-ddd", "status: pending\ndepends_on: [2026-01-24-001-aaa]", "# After aaa\n")
    return daemon_factory(repo.root)


def nc(sock: str, line: str, timeout: float = 10.0) -> list[dict]:
    proc = subprocess.run(
        f"echo '{line}' | nc -U {sock}", shell=True, capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, proc.stderr
    return [json.loads(x) for x in proc.stdout.splitlines()]


def curl(url: str, *extra: str, auth=None) -> tuple[int, dict | str]:
    """curl, as a user would; ``auth``: a daemon whose API token to send (the API wants it)."""
    if auth is not None:
        extra = ("-H", f"Authorization: Bearer {auth.token}", *extra)
    proc = subprocess.run(
        [CURL, "-s", "-o", "-", "-w", "\n%{http_code}", *extra, url], capture_output=True, text=True, timeout=20
    )
    body, _, code = proc.stdout.rpartition("\n")
    try:
        return int(code), json.loads(body)
    except ValueError:
        return int(code), body


# --- the socket -------------------------------------------------------------------------------


@pytest.mark.skipif(NC is None, reason="netcat-openbsd (nc) is not installed; .ci/run installs it")
def test_the_seeds_nc_examples_work_as_written(served):
    started = time.monotonic()
    [query] = nc(served.socket, '{"cmd":"query","q":"status:pending"}')
    assert query["ok"] and query["result"]["total"] == 2  # 004 is blocked: pending means not blocked
    [lock] = nc(served.socket, '{"cmd":"lock_acquire","spec":"001-aaa"}')
    assert lock["ok"] and lock["result"]["spec"] == "2026-01-24-001-aaa" and lock["result"]["token"] == 1
    [nxt] = nc(served.socket, '{"cmd":"queue_next","project":"auth"}')
    assert nxt["ok"] and nxt["result"]["spec"]["id"] == "auth-2026-01-24-002-bbb"
    # netcat-openbsd never half-closes: the daemon must close after its one answer
    assert time.monotonic() - started < 8


@pytest.mark.skipif(NC is None, reason="netcat-openbsd (nc) is not installed; .ci/run installs it")
def test_bad_lines_get_error_answers_and_the_daemon_lives_on(served):
    cases = {
        "not json": "bad_request",
        "[1, 2]": "bad_request",
        '{"no": "cmd"}': "bad_request",
        '{"cmd": "fly"}': "bad_params",
        '{"cmd": "list", "ready": "perhaps"}': "bad_params",
        '{"cmd": "show", "spec": "zzz", "id": 7}': "not_found",
        '{"cmd": "search", "q": "(("}': "bad_query",
    }
    for line, code in cases.items():
        [answer] = nc(served.socket, line)
        assert answer["ok"] is False and answer["error"]["code"] == code, (line, answer)
    assert nc(served.socket, '{"cmd": "show", "spec": "zzz", "id": 7}')[0]["id"] == 7
    # hello opens a persistent connection, which nc would hold open: ask with a real client
    assert served.call("hello")["protocol"] == 1


def _connect(path: str) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(path)
    return s


def _lines(sock: socket.socket, n: int) -> list[dict]:
    buf = b""
    while buf.count(b"\n") < n:
        chunk = sock.recv(65536)
        if not chunk:
            break
        buf += chunk
    return [json.loads(x) for x in buf.splitlines()[:n]]


def test_a_hello_connection_stays_open_for_many_requests(served):
    s = _connect(served.socket)
    try:
        s.sendall(b'{"cmd":"hello","id":"h"}\n{"cmd":"list","ready":true,"id":1}\n\n{"cmd":"nope","id":2}\n')
        s.sendall(b"x" * 1_100_000 + b"\n")  # over the 1 MiB cap
        s.sendall(b'{"cmd":"lock_list","id":3}\n')
        answers = _lines(s, 5)
    finally:
        s.close()
    assert [a.get("id") for a in answers] == ["h", 1, 2, None, 3]
    assert answers[0]["result"]["protocol"] == 1
    assert [x["id"] for x in answers[1]["result"]["specs"]] == ["2026-01-24-001-aaa", "auth-2026-01-24-002-bbb"]
    assert answers[2]["error"]["code"] == "bad_params"
    assert answers[3]["error"]["code"] == "bad_request" and "1048576" in answers[3]["error"]["message"]
    assert answers[4]["ok"]


def test_a_connection_without_hello_gets_one_answer(served):
    s = _connect(served.socket)
    try:
        s.sendall(b'{"cmd":"lock_list"}\n{"cmd":"lock_list"}\n')
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    finally:
        s.close()
    assert data.count(b"\n") == 1


def test_socket_file_is_private(served):
    assert stat.S_IMODE(os.stat(served.socket).st_mode) == 0o600


def test_the_fallback_socket_folder_must_be_private(tmp_path):
    from chantd.server import private_socket_dir
    from chantlib.errors import Conflict

    fresh = tmp_path / "fresh"
    private_socket_dir(str(fresh), private=True)
    assert stat.S_IMODE(os.stat(fresh).st_mode) == 0o700
    private_socket_dir(str(fresh), private=True)  # ours already: fine
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    os.chmod(shared, 0o755)
    link = tmp_path / "link"
    link.symlink_to(fresh)
    for folder in (shared, link):
        with pytest.raises(Conflict):
            private_socket_dir(str(folder), private=True)
    private_socket_dir(str(shared / "any"), private=False)  # a configured folder is the user's choice


def test_owner_defaults_to_the_socket_peer(served):
    import getpass

    with _connect(served.socket) as s:
        s.sendall(b'{"cmd":"lock_acquire","spec":"aaa"}\n')
        [answer] = _lines(s, 1)
    assert answer["result"]["owner"] == f"{getpass.getuser()}@{socket.gethostname()}"


def test_no_descriptor_leaks_under_many_connections(served):
    fd_dir = f"/proc/{served.pid}/fd"
    if not os.path.isdir(fd_dir):
        pytest.skip("needs /proc")
    served.call("list")
    before = len(os.listdir(fd_dir))
    for _ in range(200):
        with _connect(served.socket) as s:
            s.sendall(b'{"cmd":"lock_list"}\n')
            _lines(s, 1)
    for _ in range(20):
        with served.client() as c:
            c.call("list")
    time.sleep(0.2)
    assert len(os.listdir(fd_dir)) <= before + 2


# --- HTTP -------------------------------------------------------------------------------------


@pytest.mark.skipif(CURL is None, reason="curl is not installed")
def test_the_seeds_curl_examples_work_as_written(served):
    code, body = curl(f"{served.api}/api/queue/next", auth=served)
    assert code == 200 and body["result"]["spec"]["id"] == "2026-01-24-001-aaa"
    code, body = curl(f"{served.api}/api/lock/acquire/auth-2026-01-24-002-bbb", auth=served)
    assert code == 200 and body["result"]["owner"] == "http@127.0.0.1"
    code, body = curl(f"{served.api}/api/specs?status=pending", auth=served)
    assert code == 200 and [s["id"] for s in body["result"]["specs"]] == [
        "2026-01-24-001-aaa", "auth-2026-01-24-002-bbb",
    ]


@pytest.mark.skipif(CURL is None, reason="curl is not installed")
def test_http_errors_map_to_statuses_and_rpc_takes_the_socket_json(served):
    assert curl(f"{served.api}/api/specs/zzz", auth=served)[0] == 404
    assert curl(f"{served.api}/api/lock/acquire/aaa", "-H", "X-Chant-Owner: one", auth=served)[0] == 200
    code, body = curl(f"{served.api}/api/lock/acquire/aaa", "-H", "X-Chant-Owner: two", auth=served)
    assert code == 409 and body["error"]["code"] == "already_locked" and body["error"]["details"]["holder"] == "one"
    assert curl(f"{served.api}/api/search?q=((", auth=served)[0] == 400
    assert curl(f"{served.api}/api/specs?ready=maybe", auth=served)[0] == 400
    code, body = curl(f"{served.api}/api/rpc", "-X", "POST", "-d", '{"cmd":"show","spec":"ccc","id":9}', auth=served)
    assert code == 200 and body["id"] == 9 and body["result"]["status"] == "completed"
    assert curl(f"{served.api}/api/rpc", "-X", "POST", "-d", "[]", auth=served)[0] == 400
    assert curl(f"{served.api}/api/rpc", "-X", "POST", "-d", '{"cmd":"fly"}', auth=served)[0] == 400
    code, body = curl(f"{served.api}/api/specs", "-X", "POST", "-d", '{"title":"From HTTP","labels":["x"]}', auth=served)
    assert code == 200 and body["result"]["title"] == "From HTTP"
    code, body = curl(f"{served.api}/api/queue/claim?label=bug", "-X", "POST", auth=served)
    assert code == 404 and body["error"]["code"] == "nothing_ready"  # aaa is leased by "one"
    assert curl(f"{served.api}/livez") == (200, "ok\n")
    assert curl(f"{served.api}/readyz")[0] == 200
    code, doc = curl(f"{served.api}/openapi.json")
    assert code == 200 and doc["openapi"].startswith("3.") and "/api/queue/next" in doc["paths"]


@pytest.mark.skipif(CURL is None, reason="curl is not installed")
def test_unknown_paths_and_wrong_methods_answer_the_error_envelope(served):
    code, body = curl(f"{served.api}/api/nope", auth=served)
    assert code == 404 and body == {"ok": False, "error": {"code": "not_found", "message": "No such path: /api/nope"}}
    assert curl(f"http://127.0.0.1:{served.metrics_port}/nope")[1]["error"]["code"] == "not_found"
    code, body = curl(f"{served.api}/api/queue/claim", "-X", "DELETE", auth=served)
    assert code == 405 and body["error"] == {
        "code": "method_not_allowed", "message": "DELETE is not allowed on /api/queue/claim (allowed: GET, HEAD, POST)",
    }
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", served.api_port, timeout=20)
    try:
        conn.request("PUT", "/api/specs")
        response = conn.getresponse()
        response.read()
    finally:
        conn.close()
    assert response.status == 405 and response.getheader("Allow") == "GET, HEAD, POST"
    assert response.getheader("Content-Type") == "application/json"


def test_a_token_guards_the_api(repo, daemon_factory):
    repo.write("2026-01-24-001-aaa")
    d = daemon_factory(repo.root, env={"CHANT_API_TOKEN": "s3cret"})
    assert curl(f"{d.api}/api/status")[0] == 401
    assert curl(f"{d.api}/api/status", "-H", "Authorization: Bearer wrong")[0] == 401
    assert curl(f"{d.api}/api/status", "-H", "Authorization: Bearer s3cret")[0] == 200
    assert curl(f"{d.api}/livez")[0] == 200
    code, _ = curl(f"http://127.0.0.1:{d.metrics_port}/metrics")
    assert code == 200


def test_beyond_loopback_without_a_token_is_refused(repo):
    repo.write("2026-01-24-001-aaa")
    proc = subprocess.run(
        # 192.0.2.1 (TEST-NET-1) is beyond loopback yet on no interface here: should the check
        # ever break, the bind fails instead of listening on the network
        [sys.executable, "-m", "chantd", "-C", repo.root, "--api-host", "192.0.2.1", "--api-port", "1",
         "--metrics-port", "0"],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 2
    assert "set scale.daemon.api_token or CHANT_API_TOKEN" in proc.stderr
    assert not os.path.exists(os.path.join(repo.root, ".chant", "daemon.json"))


# --- metrics ----------------------------------------------------------------------------------


@pytest.mark.skipif(PROMTOOL is None, reason="promtool (Debian package prometheus) is not installed; .ci/run installs it")
def test_metrics_pass_promtool(served):
    served.call("lock_acquire", spec="aaa", owner="w1")
    served.call("search", q="merge")
    served.call("complete", spec="aaa", owner="w1")
    body = subprocess.run([CURL, "-s", f"http://127.0.0.1:{served.metrics_port}/metrics"], capture_output=True,
                          timeout=20).stdout
    check = subprocess.run([PROMTOOL, "check", "metrics"], input=body, capture_output=True, timeout=20)
    assert check.returncode == 0, check.stdout + check.stderr
    text = body.decode()
    for name in (
        "chant_specs{", "chant_specs_ready{", "chant_queue_depth{", "chant_locks_active ", "chant_agents_active ",
        "chant_lock_acquisitions_total{result=\"ok\"} 1.0", "chant_lock_releases_total 1.0",
        "chant_lock_expirations_total 0.0", "chant_agent_completions_total{result=\"success\"} 1.0",
        "chant_spec_duration_seconds_bucket{le=\"60.0\"} 1.0", "chant_queue_wait_seconds_count",
        "chant_index_documents 4.0", "chant_index_updates_total", "chant_index_queries_total 1.0",
        "chant_daemon_uptime_seconds ", "chant_request_duration_seconds_bucket{cmd=\"search\"",
        "chant_build_info{version=",
    ):
        assert name in text, name
    assert "2026-01-24" not in text  # no label holds a spec ID


@pytest.mark.skipif(PROMTOOL is None, reason="promtool (Debian package prometheus) is not installed; .ci/run installs it")
def test_an_empty_queue_is_a_zero_that_passes_promtool(repo, daemon_factory):
    repo.write("2026-01-24-001-aaa", "status: completed")
    repo.write("auth-2026-01-24-002-bbb", "status: pending")
    d = daemon_factory(repo.root, api=False)
    d.call("queue_claim", owner="w1")  # the only ready spec: the queue is empty now
    body = subprocess.run([CURL, "-s", f"http://127.0.0.1:{d.metrics_port}/metrics"], capture_output=True,
                          timeout=20).stdout
    check = subprocess.run([PROMTOOL, "check", "metrics"], input=body, capture_output=True, timeout=20)
    assert check.returncode == 0, check.stdout + check.stderr
    text = body.decode()
    for sample in ('chant_queue_depth{project=""} 0.0', 'chant_queue_depth{project="auth"} 0.0',
                   'chant_specs_ready{project=""} 0.0', 'chant_specs_ready{project="auth"} 1.0'):
        assert sample + "\n" in text, sample


PROMETHEUS = shutil.which("prometheus")


@pytest.mark.slow
@pytest.mark.skipif(PROMETHEUS is None, reason="prometheus (Debian package prometheus) is not installed; .ci/run installs it")
def test_a_real_prometheus_scrapes_the_daemon(served, tmp_path):
    from .support import free_port

    served.call("lock_acquire", spec="aaa", owner="w1")
    web = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n"
        "scrape_configs:\n"
        f"  - job_name: chant\n    static_configs:\n      - targets: ['127.0.0.1:{served.metrics_port}']\n"
    )
    proc = subprocess.Popen(
        [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}",
         f"--web.listen-address=127.0.0.1:{web}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        def query(expr: str):
            code, body = curl(f"http://127.0.0.1:{web}/api/v1/query?query={expr}")
            if code != 200 or not isinstance(body, dict):
                return None
            return body["data"]["result"]

        deadline = time.monotonic() + 60
        up = locks = None
        while time.monotonic() < deadline:
            up = query("up%7Bjob%3D%22chant%22%7D")
            locks = query("chant_locks_active")
            if up and locks:
                break
            time.sleep(0.5)
        assert up and up[0]["value"][1] == "1", up
        assert locks and locks[0]["value"][1] == "1", locks
        ready = query("sum(chant_specs_ready)")
        assert ready and float(ready[0]["value"][1]) == 2
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


# --- lifecycle --------------------------------------------------------------------------------


def test_cli_lifecycle_start_status_stop(cli_daemon):
    repo = cli_daemon
    repo.write("2026-01-24-001-aaa")
    env = {"CHANT_LOG_LEVEL": "warning"}
    try:
        start = run_chant(["daemon", "start", "--background", "--api-port", "0", "--metrics-port", "0"], repo.root,
                          env=env)
        assert start.code == 0 and start.out.startswith("Daemon started (PID ")
        again = run_chant(["daemon", "start", "--background"], repo.root)
        assert again.code == 0 and again.out.startswith("Daemon already running (PID ")
        status = run_chant(["daemon", "status"], repo.root)
        lines = status.out.splitlines()
        assert status.code == 0 and lines[0].startswith("Daemon: running (PID ")
        assert lines[1].startswith("Uptime: ") and lines[2] == "Specs indexed: 1"
        assert lines[3:5] == ["Active locks: 0", "Queue depth: 1"]
        assert json.loads(run_chant(["daemon", "status", "--json"], repo.root).out)["running"] is True
        with open(os.path.join(repo.root, ".chant", "daemon.json"), encoding="utf-8") as fh:
            info = json.load(fh)
    finally:
        stop = run_chant(["daemon", "stop"], repo.root)
    assert stop.code == 0 and stop.out.startswith("Daemon stopped")
    assert not os.path.exists(info["socket"])
    from chantlib.locks import pid_alive

    assert not pid_alive(info["pid"])  # gone (or a zombie its parent has not collected yet)
    assert run_chant(["daemon", "status"], repo.root).out == "Daemon: not running\n"
    assert run_chant(["daemon", "stop"], repo.root).out == "Daemon: not running\n"


def test_kill_9_loses_no_lease_and_restart_replaces_the_stale_socket(repo, daemon_factory):
    repo.write("2026-01-24-001-aaa")
    repo.write("2026-01-24-002-bbb")
    repo.write("2026-01-24-003-ccc")
    d = daemon_factory(repo.root, api=False, metrics=False)
    first = json.loads(run_chant(["lock", "acquire", "aaa", "--json"], repo.root).out)
    claim = json.loads(run_chant(["queue", "next", "--claim", "--owner", "w", "--json"], repo.root).out)
    sock = d.socket
    d.kill()  # SIGKILL: no shutdown at all
    assert os.path.exists(sock)  # the stale socket is left behind
    direct = json.loads(run_chant(["lock", "list", "--json"], repo.root).out)  # no daemon: direct mode
    assert {(x["spec"], x["token"]) for x in direct} == {
        ("2026-01-24-001-aaa", first["token"]), (claim["spec"]["id"], claim["lease"]["token"]),
    }
    d2 = daemon_factory(repo.root, api=False, metrics=False)
    leases = {x["spec"]: x["token"] for x in d2.call("lock_list")["leases"]}
    assert leases == {"2026-01-24-001-aaa": first["token"], claim["spec"]["id"]: claim["lease"]["token"]}
    from chantlib.errors import ChantError

    with pytest.raises(ChantError) as err:
        d2.call("lock_acquire", spec="aaa", owner="someone-else")
    assert err.value.code == "already_locked"
    later = d2.call("lock_acquire", spec="ccc", owner="w2")
    assert later["token"] > max(first["token"], claim["lease"]["token"])


def test_only_one_daemon_per_repository_and_live_sockets_are_never_replaced(repo, daemon_factory, tmp_path):
    repo.write("2026-01-24-001-aaa")
    d = daemon_factory(repo.root, api=False, metrics=False)
    second = subprocess.run([sys.executable, "-m", "chantd", "-C", repo.root, "--api-port", "0", "--metrics-port", "0"],
                            capture_output=True, text=True, timeout=60)
    assert second.returncode == 0 and second.stdout.startswith(f"Daemon already running (PID {d.pid})")
    # another repository configured onto the same (live) socket path: refused
    other = tmp_path / "other"
    (other / ".chant" / "specs").mkdir(parents=True)
    refused = subprocess.run(
        [sys.executable, "-m", "chantd", "-C", str(other), "--socket", d.socket, "--api-port", "0",
         "--metrics-port", "0"],
        capture_output=True, text=True, timeout=60,
    )
    assert refused.returncode == 3 and "not replacing a live socket" in refused.stderr
    assert d.call("hello")["root"] == repo.root


def test_sigint_stops_cleanly(repo, daemon_factory):
    repo.write("2026-01-24-001-aaa")
    d = daemon_factory(repo.root, api=False, metrics=False)
    d.proc.send_signal(signal.SIGINT)
    assert d.proc.wait(30) == 0
    assert not os.path.exists(d.socket)
    assert not os.path.exists(os.path.join(repo.root, ".chant", "daemon.json"))


def test_systemd_notify(repo, tmp_path):
    repo.write("2026-01-24-001-aaa")
    path = str(tmp_path / "notify.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(path)
    listener.settimeout(60)
    d = DaemonProc(repo.root, api=False, metrics=False, env={"NOTIFY_SOCKET": path})
    try:
        assert listener.recv(64) == b"READY=1"
        d.proc.send_signal(signal.SIGTERM)
        assert listener.recv(64) == b"STOPPING=1"
    finally:
        d.stop()
        listener.close()


# --- the watcher ------------------------------------------------------------------------------


def _eventually(check, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def test_edits_reach_queries(repo, daemon_factory):
    repo.write("2026-01-24-001-aaa", "status: pending", "# First\n")
    d = daemon_factory(repo.root, api=False, metrics=False)
    with d.client() as c:
        ids = lambda: [s["id"] for s in c.call("list", {})["specs"]]  # noqa: E731
        repo.write("2026-01-24-002-bbb", "status: pending", "# Created\n")
        _eventually(lambda: "2026-01-24-002-bbb" in ids())
        # an editor's save: a temp file, then a rename over the spec
        tmp = repo.path("2026-01-24-001-aaa") + ".swp"
        with open(tmp, "w") as fh:
            fh.write("---\nstatus: completed\n---\n# First, done\n")
        os.replace(tmp, repo.path("2026-01-24-001-aaa"))
        _eventually(lambda: c.call("show", {"spec": "aaa"})["status"] == "completed")
        # truncate and write in place
        with open(repo.path("2026-01-24-002-bbb"), "w") as fh:
            fh.write("---\nstatus: failed\n---\n# Created, failed\n")
        _eventually(lambda: c.call("show", {"spec": "bbb"})["status"] == "failed")
        _eventually(lambda: c.call("search", {"q": "title:failed"})["total"] == 1)
        # delete, and a rename to another name
        os.unlink(repo.path("2026-01-24-001-aaa"))
        os.rename(repo.path("2026-01-24-002-bbb"), repo.path("2026-01-24-003-ccc"))
        _eventually(lambda: ids() == ["2026-01-24-003-ccc"])
        # a burst of 1,000 files written at once
        for n in range(1000):
            with open(repo.path(f"2026-02-01-{n:03x}-bst"), "w") as fh:
                fh.write(f"---\nstatus: pending\n---\n# Burst {n}\n")
        _eventually(lambda: c.call("search", {"q": "id:2026-02-01-*", "limit": 0})["total"] == 1000, timeout=60)
        assert len(c.call("list", {"ready": True})["specs"]) == 1001  # the burst and the failed one (retry)
        # the config file
        with open(os.path.join(repo.root, ".chant", "config.md"), "w") as fh:
            fh.write("---\nproject: [broken\n---\n")
        _eventually(lambda: any("config.md" in w for w in c.call("list", {})["warnings"]))


def test_polling_mode_sees_changes_too(repo, daemon_factory):
    repo.write("2026-01-24-001-aaa")
    d = daemon_factory(repo.root, api=False, metrics=False, extra=["--poll"])
    assert d.call("daemon_status")["watch"] == "poll"
    repo.write("2026-01-24-002-bbb")
    _eventually(lambda: len(d.call("list")["specs"]) == 2)


# --- the CLI in daemon mode -------------------------------------------------------------------


def test_cli_uses_the_daemon_and_prints_the_same(repo, daemon_factory):
    for n in range(1, 6):
        repo.write(f"2026-01-24-00{n}-aaa", "status: pending\nlabels: [x]", f"# Spec {n}\n")
    before = {args: run_chant(list(args), repo.root) for args in (("list",), ("status",), ("search", "spec"))}
    d = daemon_factory(repo.root, api=False, metrics=False)
    for args, direct in before.items():
        via = run_chant(list(args), repo.root)
        assert (via.code, via.out, via.err) == (direct.code, direct.out, direct.err), args
    # a lease taken through the CLI is the daemon's
    run_chant(["lock", "acquire", "001-aaa"], repo.root)
    assert [x["spec"] for x in d.call("lock_list")["leases"]] == ["2026-01-24-001-aaa"]
    refused = run_chant(["lock", "acquire", "002-aaa", "--direct"], repo.root)
    assert refused.code == 3 and "the daemon of this repository owns its leases" in refused.err
    from chantlib.errors import Conflict

    ws = repo.workspace()  # a script in direct mode: refused on every lease write, not just the first
    assert [lease["spec"] for lease in ws.lock_list()["leases"]] == ["2026-01-24-001-aaa"]
    for _ in range(2):
        with pytest.raises(Conflict):
            ws.lock_acquire("003-aaa", owner="script")


class FakeDaemon:
    """A socket server on the repository's socket path that answers hello with ``root``,
    then either drops the next request (a daemon dying mid-way) or stops."""

    def __init__(self, repo_root: str, hello_root: str, *, drop_request: bool) -> None:
        from chantlib.client import socket_path

        self.path = socket_path(repo_root)
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(self.path)
        self.server.listen(4)
        self.hello_root = hello_root
        self.drop_request = drop_request
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        try:
            conn, _ = self.server.accept()
            with conn:
                conn.recv(65536)
                hello = {"ok": True, "id": 1, "result": {"version": "x", "protocol": 1, "root": self.hello_root}}
                conn.sendall(json.dumps(hello).encode() + b"\n")
                if self.drop_request:
                    conn.recv(65536)
        except OSError:
            pass

    def close(self) -> None:
        self.server.close()
        os.unlink(self.path)
        self.thread.join(10)


def test_cli_falls_back_when_the_daemon_dies_mid_way(repo):
    repo.write("2026-01-24-001-aaa")
    fake = FakeDaemon(repo.root, repo.root, drop_request=True)
    try:
        r = run_chant(["list", "--count"], repo.root)
    finally:
        fake.close()
    assert r.code == 0 and r.out == "1\n"
    assert r.err.startswith("warning: the daemon went away (") and "running this command in direct mode" in r.err
    assert len(r.err.splitlines()) == 1


def test_a_write_the_daemon_may_have_done_is_not_run_again(repo):
    repo.write("2026-01-24-001-aaa")
    fake = FakeDaemon(repo.root, repo.root, drop_request=True)
    try:
        r = run_chant(["lock", "acquire", "aaa", "--owner", "me@host"], repo.root)
    finally:
        fake.close()
    assert r.code == 1 and r.out == ""
    assert "the daemon went away after it was sent `lock_acquire`" in r.err and "not run again" in r.err
    assert len(r.err.splitlines()) == 1
    status = run_chant(["--direct", "lock", "status", "aaa", "--json"], repo.root)
    assert status.code == 0 and json.loads(status.out)["locked"] is False  # not taken a second time here


def test_a_daemon_for_another_root_is_not_trusted(repo, tmp_path):
    repo.write("2026-01-24-001-aaa")
    fake = FakeDaemon(repo.root, str(tmp_path), drop_request=False)
    try:
        r = run_chant(["list", "--count"], repo.root)
    finally:
        fake.close()
    assert r.code == 0 and r.out == "1\n" and r.err == ""  # quietly direct


def test_scale_daemon_enabled_starts_one(cli_daemon):
    repo = cli_daemon
    repo.write("2026-01-24-001-aaa")
    with open(os.path.join(repo.root, ".chant", "config.md"), "w") as fh:
        fh.write("---\nscale:\n  daemon:\n    enabled: true\n    api_port: 0\n    metrics_port: 0\n---\n")
    try:
        r = run_chant(["list", "--count"], repo.root)
        assert r.code == 0 and r.out == "1\n"
        assert r.err.startswith("Started the daemon (PID ")
        assert run_chant(["daemon", "status"], repo.root).code == 0
    finally:
        stop = run_chant(["daemon", "stop"], repo.root)
    assert stop.code == 0


def test_remote_daemon_over_http(repo, daemon_factory, tmp_path):
    repo.write("2026-01-24-001-aaa", "status: pending", "# Remote work\n")
    d = daemon_factory(repo.root, metrics=False, env={"CHANT_API_TOKEN": "tok"})
    elsewhere = tmp_path / "pod"
    elsewhere.mkdir()
    env = {"CHANT_DAEMON": d.api, "CHANT_API_TOKEN": "tok"}
    r = run_chant(["queue", "next", "--claim", "--owner", "pod-7"], str(elsewhere), env=env)
    assert r.code == 0 and r.out.startswith("2026-01-24-001-aaa ○ Remote work\nLease: token 1, owner pod-7")
    bad = run_chant(["list"], str(elsewhere), env={"CHANT_DAEMON": d.api, "CHANT_API_TOKEN": "nope"})
    assert bad.code == 1 and "bearer token" in bad.err
    gone = run_chant(["list"], str(elsewhere), env={"CHANT_DAEMON": "http://127.0.0.1:1"})
    assert gone.code == 1 and gone.err.startswith("error: CHANT_DAEMON=http://127.0.0.1:1: no daemon answers")


def test_request_and_in_process_agree(repo, daemon_factory):
    repo.write("2026-01-24-001-aaa")
    offline = run_chant(["daemon", "request", '{"cmd":"list","ready":true,"id":5}', "--in-process"], repo.root)
    daemon_factory(repo.root, api=False, metrics=False)
    online = run_chant(["daemon", "request", '{"cmd":"list","ready":true,"id":5}'], repo.root)
    assert offline.code == online.code == 0
    assert json.loads(offline.out) == json.loads(online.out)
    assert json.loads(online.out)["id"] == 5


# --- warnings ---------------------------------------------------------------------------------


def test_a_warning_of_one_run_is_not_kept_in_the_cache_of_answers(repo):
    """The daemon keeps encoded answers of reads; a warning that belongs to one run (a file
    that could not be read just then) must not come back in the answers that follow."""
    import asyncio

    from chantd.service import Service

    repo.write("2026-01-24-001-aaa")
    ws = repo.workspace(auto_refresh=False, long_lived=True)
    ws.apply_changes(None)
    service = Service(ws)
    service.mark_loaded()  # as the daemon does once the table and index are in
    fresh = ws._fresh  # what every read runs first (list answers through list_specs_json)
    hiccups = ["cannot read .chant/specs/x.md: a hiccup"]

    def fresh_with_a_hiccup():
        ws.table.warnings.extend(hiccups)  # what a failed read during this run leaves behind
        hiccups.clear()
        return fresh()

    ws._fresh = fresh_with_a_hiccup

    async def ask() -> dict:
        return json.loads(await service.call_encoded("list", {}, "test", None, None))

    try:
        first, second, third = (asyncio.run(ask()) for _ in range(3))
    finally:
        service.close()
    assert first["result"]["warnings"] == ["cannot read .chant/specs/x.md: a hiccup"]
    assert second["result"]["warnings"] == [] == third["result"]["warnings"]
    assert [s["id"] for s in third["result"]["specs"]] == ["2026-01-24-001-aaa"]
    assert len(service._cache) == 1  # the clean answer is kept


def test_warnings_not_about_a_request_go_to_the_log(repo, daemon_factory):
    repo.write("2026-01-24-001-aaa")
    os.makedirs(os.path.join(repo.root, ".chant", ".index", "table.marshal"))  # every save fails
    d = daemon_factory(repo.root, api=False, metrics=False)
    answer = d.call("status")
    assert not [w for w in answer["warnings"] if "cannot save" in w]  # not this request's business
    assert d.stop() == 0
    assert "WARNING chantd: cannot save the spec table in " in d.log()


def test_completing_a_spec_with_broken_yaml_fails_alike_in_both_modes(repo, daemon_factory):
    repo.write("2026-01-24-001-aaa")
    repo.write("2026-01-24-002-bad", raw="---\nstatus: [\n---\n# Broken\n")
    direct = run_chant(["complete", "bad", "--direct"], repo.root)
    daemon_factory(repo.root, api=False, metrics=False)
    via = run_chant(["complete", "bad"], repo.root)
    for r in (direct, via):
        assert r.code == 1 and r.out == "", r
        assert r.err.startswith("error: cannot edit 2026-01-24-002-bad: invalid YAML in frontmatter at line "), r
    assert via.err == direct.err
