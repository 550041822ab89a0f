"""`chant agent worker` and the long-poll claim, with real processes: the daemon, workers as
`python -m chant_cli agent worker` subprocesses, kill -9, SIGSTOP, a daemon restart. Every
process is stopped by the test and every wait is bounded; nothing asserts on timings."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request

import pytest

from chantlib.client import DaemonClient, HttpClient
from chantlib.errors import NothingReady

from .support import ROOT, Repo

pytestmark = pytest.mark.slow

A, B, C = "2026-01-01-001-aaa", "2026-01-01-002-bbb", "2026-01-01-003-ccc"


def wait_until(check, timeout: float = 30.0, what: str = "the condition", poll: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(poll)


def read(path: str) -> str:
    with open(path, encoding="utf-8", errors="replace") as fh:
        return fh.read()


def status(repo: Repo, spec_id: str) -> str:
    m = re.search(r"^status: (\S+)", repo.read(spec_id), re.M)
    return m.group(1) if m else ""


def metric(d, name: str, **labels) -> float:
    """A sample of the daemon's /metrics (0 when absent)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{d.metrics_port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    for line in text.splitlines():
        if not line.startswith(name):
            continue
        head, _, value = line.rpartition(" ")
        if head == name or head.startswith(name + "{") and all(f'{k}="{v}"' in head for k, v in labels.items()):
            return float(value)
    return 0.0


class Worker:
    """One `chant agent worker` process; its stderr goes to a file (``err()``)."""

    def __init__(self, repo: Repo, args, env=None, name="worker") -> None:
        self.repo = repo
        self.err_path = os.path.join(repo.root, f"{name}-{time.monotonic_ns()}.err")
        full_env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
        full_env.pop("CHANT_DAEMON", None)
        full_env.update(env or {})
        with open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen([sys.executable, "-m", "chant_cli", "agent", "worker", *args],
                                         cwd=repo.root, env=full_env, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=err)

    def err(self) -> str:
        with open(self.err_path, encoding="utf-8", errors="replace") as fh:
            return fh.read()

    def said(self, text: str, timeout: float = 30.0) -> str:
        return wait_until(lambda: text in self.err() and self.err(), timeout, f"the worker to say {text!r}")

    def signal(self, sig) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)

    def wait(self, timeout: float = 60.0) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the worker did not exit within {timeout:g} s:\n{self.err()}") from None

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)
            self.proc.kill()
        self.proc.wait(timeout=30)


@pytest.fixture
def workers(repo):
    started: list[Worker] = []

    def start(*args, env=None, name="worker") -> Worker:
        w = Worker(repo, list(args), env, name)
        started.append(w)
        return w

    yield start
    for w in started:
        w.kill()


@pytest.fixture
def pids():
    """PIDs of agent commands a test leaves running (a worker killed with -9): killed at the end."""
    found: list[str] = []
    yield found
    for path in found:
        try:
            os.kill(int(read(path).strip()), signal.SIGKILL)
        except (OSError, ValueError):
            pass


def pending(repo: Repo, *ids: str) -> None:
    for spec_id in ids:
        repo.write(spec_id)


# --- the long-poll claim ------------------------------------------------------------------------


def test_a_waiting_claim_wakes_on_a_new_spec_and_a_renewal_meanwhile_is_answered(repo, daemon_factory):
    pending(repo, A)
    d = daemon_factory(repo.root)
    holder = d.client()
    held = holder.call("lock_acquire", {"spec": A, "owner": "holder", "ttl": 60})
    waiter = d.client(timeout=2.0)  # shorter than the wait: the client's read timeout must fit it
    answer: dict = {}

    def claim() -> None:
        try:
            answer["claim"] = waiter.call("queue_claim", {"owner": "waiter", "ttl": 60, "wait": 30})
        except Exception as exc:  # noqa: BLE001 - reported by the test
            answer["error"] = exc

    thread = threading.Thread(target=claim)
    thread.start()
    try:
        time.sleep(0.5)  # the claim is waiting now (nothing is ready: A is held)
        renewed = holder.call("lock_renew", {"spec": A, "token": held["token"], "ttl": 60})
        assert renewed["token"] == held["token"]
        assert thread.is_alive(), answer  # answered while the claim still waits
        repo.write(B)  # a spec becomes ready: the waiting claim takes it
        thread.join(20)
        assert not thread.is_alive()
        assert "error" not in answer, answer
        assert answer["claim"]["spec"]["id"] == B
    finally:
        thread.join(30)
        holder.close()
        waiter.close()


def test_a_waiting_claim_runs_out_as_nothing_ready_over_socket_and_http(repo, daemon_factory):
    d = daemon_factory(repo.root)
    with DaemonClient.connect(repo.root, timeout=0.5) as client, pytest.raises(NothingReady):
        client.call("queue_claim", {"owner": "w", "wait": 1.5})
    http = HttpClient(d.api, token=d.token, timeout=0.5)
    try:
        with pytest.raises(NothingReady):
            http.call("queue_claim", {"owner": "w", "wait": 1.5})
    finally:
        http.close()
    code = subprocess.run([sys.executable, "-m", "chant_cli", "queue", "next", "--claim", "--wait", "0.5"],
                          cwd=repo.root, capture_output=True, text=True, timeout=60).returncode
    assert code == 5


def test_a_waiting_claim_wakes_when_a_lease_is_released(repo, daemon_factory):
    pending(repo, A)
    d = daemon_factory(repo.root)
    with d.client() as holder, d.client() as waiter:
        lease = holder.call("lock_acquire", {"spec": A, "owner": "holder", "ttl": 60})
        answer: dict = {}
        thread = threading.Thread(target=lambda: answer.update(
            claim=waiter.call("queue_claim", {"owner": "waiter", "wait": 30})))
        thread.start()
        time.sleep(0.3)
        holder.call("lock_release", {"spec": A, "token": lease["token"]})
        thread.join(20)
        assert not thread.is_alive() and answer["claim"]["spec"]["id"] == A


@pytest.mark.skipif(not (shutil.which("nc") and shutil.which("curl")), reason="nc and curl: .ci/run installs them")
def test_a_daemon_stopping_answers_its_waiting_claims_unavailable_over_socket_and_http(repo, daemon_factory):
    import json

    d = daemon_factory(repo.root)  # no spec: every claim waits
    line = '{"cmd":"queue_claim","owner":"w","wait":60}'
    over_socket = subprocess.Popen(f"echo '{line}' | nc -U {d.socket}", shell=True, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
    over_http = subprocess.Popen(
        ["curl", "-s", "-w", "\n%{http_code}", "-H", f"Authorization: Bearer {d.token}", "-d", line,
         f"{d.api}/api/rpc"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        with d.client() as client:
            wait_until(lambda: client.call("daemon_status")["claims_waiting"] == 2, what="both claims waiting")
        assert "Claims waiting: 2" in subprocess.run(
            [sys.executable, "-m", "chant_cli", "daemon", "status"], cwd=repo.root, capture_output=True, text=True,
            timeout=60).stdout
        d.stop()
        socket_out, _ = over_socket.communicate(timeout=30)
        http_out, _ = over_http.communicate(timeout=30)
    finally:
        for proc in (over_socket, over_http):
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
    # answered (nothing was claimed: send it again), not cut off: the socket's line, HTTP's 503
    [answer] = [json.loads(x) for x in socket_out.splitlines()]
    body, _, code = http_out.rpartition("\n")
    for got in (answer, json.loads(body)):
        assert got["ok"] is False and got["error"]["code"] == "unavailable", got
        assert got["error"]["details"] == {"stopping": True}
    assert code == "503"
    assert "Traceback" not in read(d.log_path)


def test_direct_mode_claim_waits_by_polling_the_files(repo):
    ws = repo.workspace()
    answer: dict = {}
    thread = threading.Thread(target=lambda: answer.update(claim=ws.queue_claim(owner="w", wait=20)))
    thread.start()
    time.sleep(0.3)
    repo.write(A)
    thread.join(20)
    assert not thread.is_alive() and answer["claim"]["spec"]["id"] == A
    ws.close()


# --- completing specs ---------------------------------------------------------------------------

RECORD = "echo {id} $CHANT_SPEC_ID $CHANT_LEASE_TOKEN $CHANT_OWNER {path} >> done.txt"


def done_lines(repo: Repo) -> list[str]:
    try:
        with open(os.path.join(repo.root, "done.txt")) as fh:
            return fh.read().splitlines()
    except FileNotFoundError:
        return []


def test_a_worker_completes_specs_over_the_socket(repo, daemon_factory, workers):
    pending(repo, A, B)
    daemon_factory(repo.root)
    w = workers("--exec", RECORD, "--concurrency", "2", "--ttl", "30", "--wait", "5", "--owner", "w1")
    wait_until(lambda: status(repo, A) == "completed" and status(repo, B) == "completed", what="both completed")
    w.said(f"{B}: completed in")
    w.said(f"{A}: completed in")  # the summary lines: written to the spec's log before stderr
    lines = sorted(done_lines(repo))
    assert [line.split()[:2] for line in lines] == [[A, A], [B, B]]
    for line in lines:
        spec_id, _, token, owner, path = line.split()
        assert int(token) > 0 and owner == "w1" and path == repo.path(spec_id)
    log = read(os.path.join(repo.root, ".chant", "logs", f"{A}.log"))
    assert log.startswith("--- ") and f"{A} (lease token" in log and f"{A}: completed in" in log
    assert "completed_at:" in repo.read(A)
    w.signal(signal.SIGTERM)
    assert w.wait() == 0
    assert f"{A}: completed in" in w.err()


def test_a_worker_completes_over_http_with_a_token(repo, daemon_factory, workers):
    pending(repo, A)
    d = daemon_factory(repo.root)
    w = workers("--exec", RECORD, "--once", "--wait", "10",
                env={"CHANT_DAEMON": d.api, "CHANT_API_TOKEN": d.token})
    assert w.wait() == 0, w.err()
    assert "http mode" in w.err()
    assert status(repo, A) == "completed"
    assert done_lines(repo)[0].split()[0] == A


def test_a_worker_in_direct_mode_uses_file_leases(repo, workers):
    pending(repo, A)
    w = workers("--exec", RECORD, "--once")
    assert w.wait() == 0, w.err()
    assert "direct mode" in w.err() and status(repo, A) == "completed"
    again = workers("--exec", RECORD, "--once", "--wait", "0.5")
    assert again.wait() == 5  # nothing ready
    locks = os.listdir(os.path.join(repo.root, ".chant", ".locks"))
    assert ".fence" in locks and not [name for name in locks if name.startswith(A)]  # file leases, released


def test_a_failing_command_fails_the_spec_then_it_needs_attention(repo, daemon_factory, workers):
    with open(os.path.join(repo.root, ".chant", "config.md"), "w") as fh:
        fh.write("---\nwatch:\n  failure:\n    max_retries: 1\n---\n# Config\n")
    pending(repo, A)
    daemon_factory(repo.root)
    w = workers("--exec", "echo trying {id}; exit 2", "--wait", "5")
    wait_until(lambda: status(repo, A) == "needs_attention", what="needs_attention")
    text = repo.read(A)
    assert re.search(r"retry_state:\n  attempts: 2\n  last_retry_time: ", text), text
    err = w.said("needs attention")
    assert f"{A}: failed (exit 2)" in err and "ready to retry" in err
    log = read(os.path.join(repo.root, ".chant", "logs", f"{A}.log"))
    assert log.count("\ntrying") == 2 and log.count("(lease token") == 2  # one header line per run
    w.signal(signal.SIGTERM)
    assert w.wait() == 0


def test_an_idle_worker_long_polls_and_takes_a_spec_written_later(repo, daemon_factory, workers):
    d = daemon_factory(repo.root)
    w = workers("--exec", RECORD, "--wait", "30")
    w.said("slot")  # started
    time.sleep(3)  # idle: one claim waits on the daemon, none is answered meanwhile
    idle = metric(d, "chant_request_duration_seconds_count", cmd="queue_claim")
    assert idle <= 2, idle  # a busy loop would have asked many times by now
    repo.write(A)
    wait_until(lambda: status(repo, A) == "completed", what="the spec written later completed")
    w.signal(signal.SIGTERM)
    assert w.wait() == 0


# --- signals and faults -------------------------------------------------------------------------


def test_sigterm_gives_grace_then_stops_the_command_and_releases(repo, daemon_factory, workers):
    pending(repo, A)
    d = daemon_factory(repo.root)
    w = workers("--exec", "echo $$ > cmd.pid; exec sleep 60", "--grace", "1", "--ttl", "30")
    wait_until(lambda: d.call("lock_list")["leases"], what="the claim")
    pid_file = os.path.join(repo.root, "cmd.pid")
    wait_until(lambda: os.path.exists(pid_file) and read(pid_file).strip(), what="the command")
    cmd_pid = int(read(pid_file))
    w.signal(signal.SIGTERM)
    assert w.wait() == 0
    assert "stopped after" in w.err() and "lease released" in w.err()
    assert d.call("lock_list")["leases"] == []
    assert status(repo, A) == "pending"
    with pytest.raises(ProcessLookupError):
        os.kill(cmd_pid, 0)


def test_a_worker_killed_with_sigkill_lets_its_lease_expire(repo, daemon_factory, workers, pids):
    pending(repo, A)
    d = daemon_factory(repo.root)
    pid_file = os.path.join(repo.root, "cmd.pid")
    pids.append(pid_file)
    w = workers("--exec", "echo $$ > cmd.pid; exec sleep 60", "--ttl", "2")
    wait_until(lambda: d.call("lock_list")["leases"], what="the claim")
    # killed once its agent runs: a kill between the claim and the spawn leaves no agent to check
    wait_until(lambda: os.path.exists(pid_file) and read(pid_file).strip(), what="the command")
    agent = int(read(pid_file).strip())
    before = metric(d, "chant_lock_expirations_total")
    w.signal(signal.SIGKILL)
    w.wait()
    with d.client() as c:
        claim = wait_until(lambda: _claim(c, "other"), 30, "the spec claimable again")
    assert claim["spec"]["id"] == A
    assert metric(d, "chant_lock_expirations_total") >= before + 1
    if shutil.which("setpriv"):  # the agent died with its worker: no two agents on one spec
        wait_until(lambda: not _alive(agent), 10, "the killed worker's agent gone")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie nobody reaped yet is gone for our purpose
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _claim(client, owner):
    try:
        return client.call("queue_claim", {"owner": owner, "ttl": 30, "wait": 1})
    except NothingReady:
        return None


def test_a_worker_paused_past_its_ttl_writes_nothing(repo, daemon_factory, workers):
    pending(repo, A)
    d = daemon_factory(repo.root)
    paused = workers("--exec", "sleep 2", "--once", "--ttl", "2", name="paused")
    wait_until(lambda: d.call("lock_list")["leases"], what="the first claim")
    paused.signal(signal.SIGSTOP)
    # the other worker waits for the lease to expire, takes the spec, fails it
    other = workers("--exec", "exit 1", "--once", "--wait", "30", "--ttl", "30", name="other")
    assert other.wait() == 1, other.err()
    assert status(repo, A) == "failed"
    after_other = repo.read(A)
    paused.signal(signal.SIGCONT)
    assert paused.wait() == 1  # --once: the spec was not completed
    assert "lost its lease: not completed" in paused.err()
    assert repo.read(A) == after_other  # its command succeeded, but its complete was refused


def test_a_daemon_restart_mid_run_keeps_the_command_and_the_lease(repo, daemon_factory, workers):
    pending(repo, A)
    d = daemon_factory(repo.root)
    w = workers("--exec", "while [ ! -f go ]; do sleep 0.1; done; echo done {id} >> done.txt", "--ttl", "9",
                "--wait", "5")
    lease = wait_until(lambda: d.call("lock_list")["leases"], what="the claim")[0]
    d.stop()
    w.said("cannot renew the lease", timeout=30)
    d.start(timeout=60.0, poll=0.02)
    w.said("lease re-asserted", timeout=30)
    assert d.call("lock_list")["leases"][0]["token"] == lease["token"]
    open(os.path.join(repo.root, "go"), "w").close()
    wait_until(lambda: status(repo, A) == "completed", what="completed after the restart")
    assert done_lines(repo) == [f"done {A}"]
    w.signal(signal.SIGTERM)
    assert w.wait() == 0


@pytest.mark.parametrize("pidfd", [True, False])
def test_the_end_of_a_command_is_seen_with_a_pidfd_or_without(monkeypatch, pidfd):
    import subprocess

    from chantlib import worker as worker_module

    if not pidfd:
        monkeypatch.delattr(worker_module.os, "pidfd_open", raising=False)
    elif not hasattr(os, "pidfd_open"):
        pytest.skip("no pidfd_open here")
    proc = subprocess.Popen(["/bin/sh", "-c", "read line; exit 7"], stdin=subprocess.PIPE)
    ended = worker_module._Exit(proc)
    try:
        assert (ended.fd is not None) is pidfd
        assert not ended.wait(0.05) and proc.returncode is None  # still running
        proc.stdin.write(b"go\n")
        proc.stdin.close()
        assert ended.wait(10) and proc.returncode == 7  # ended, reaped, its status kept
    finally:
        ended.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_the_command_runs_in_a_shell_of_its_own_under_the_keeper(tmp_path):
    """``$$`` in an agent command is its own shell's PID, as with ``sh -c`` alone (a command
    that writes its PID and execs the agent writes the agent's)."""
    import subprocess

    from chantlib import worker as worker_module

    out = tmp_path / "pid"
    proc = subprocess.Popen(worker_module._argv(f"echo $$ > {out}; exec sleep 30"), start_new_session=True)
    try:
        deadline = time.monotonic() + 10
        while not (out.exists() and out.read_text().strip()) and time.monotonic() < deadline:
            time.sleep(0.01)
        agent = int(out.read_text())
        with open(f"/proc/{agent}/cmdline", "rb") as fh:
            assert fh.read().split(b"\0")[0].endswith(b"sleep")  # the exec replaced the shell $$ named
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # its own group: the keeper and the command
        proc.wait()
