"""Leases never wait behind long work: the daemon schedules by each operation's effects.

A rebuild reads every file into a new table and rewrites the index while the table in use
stays as it was; lease and queue operations run on the event loop meanwhile. These tests
order events (a renew answered while ``daemon_status`` still says the rebuild runs), never
time them.
"""

from __future__ import annotations

import threading

import pytest

from chantlib.client import DaemonClient
from chantlib.ops import OPS

pytestmark = pytest.mark.slow


def test_every_operation_declares_effects_the_daemon_can_schedule():
    for op in OPS.values():
        assert op.specs in (None, "read", "write") and op.leases in (None, "read", "write"), op.name
        if op.leases == "write" and op.specs != "write":
            assert not op.slow, f"{op.name} changes a lease: it must run on the event loop"
        if op.prepare is not None:
            assert op.specs == "write", f"{op.name}: a prepare step is for a change to the specs"
        if op.pure:
            assert op.specs == "read" and op.leases is None and not op.anytime, op.name


def _generated(tmp_path, n: int) -> str:
    from chantlib.generate import generate

    root = str(tmp_path / "big")
    generate(root, n, seed=5)
    return root


def test_leases_and_claims_answer_while_a_rebuild_runs(tmp_path, daemon_factory):
    root = _generated(tmp_path, 3000)
    daemon = daemon_factory(root, api=False, metrics=False)
    with DaemonClient.connect(root, timeout=60) as client:
        claim = client.call("queue_claim", {"owner": "w1", "ttl": 600})
        spec, token = claim["spec"]["id"], claim["lease"]["token"]

    done = threading.Event()
    rebuilt: dict = {}

    def rebuild() -> None:
        try:
            with DaemonClient.connect(root, timeout=300) as c:
                rebuilt.update(c.call("index_rebuild", {}))
        finally:
            done.set()

    thread = threading.Thread(target=rebuild)
    thread.start()
    answered_during = 0
    claimed_during = []
    try:
        with DaemonClient.connect(root, timeout=60) as client:
            while not done.is_set():
                status = client.call("daemon_status", {})
                renewed = client.call("lock_renew", {"spec": spec, "token": token, "ttl": 600})
                assert renewed["token"] == token
                after = client.call("daemon_status", {})
                if status.get("busy") == "index_rebuild" and after.get("busy") == "index_rebuild":
                    answered_during += 1  # the renew was answered between two looks that saw it run
                    if len(claimed_during) < 3:
                        got = client.call("queue_claim", {"owner": "w2", "ttl": 600})
                        claimed_during.append(got["spec"]["id"])
    finally:
        thread.join(timeout=300)
    assert rebuilt.get("documents") == 3000
    assert answered_during >= 1, "no lease renewal was answered while the rebuild ran"
    # claims made during the rebuild are distinct, and still held after it: nothing was lost
    assert len(set(claimed_during)) == len(claimed_during)
    with DaemonClient.connect(root, timeout=60) as client:
        held = {lease["spec"] for lease in client.call("lock_list", {})["leases"]}
        assert {spec, *claimed_during} <= held
        # the table the rebuild made is the one in use: the spec is found and the queue goes on
        assert client.call("show", {"spec": spec})["id"] == spec
        nxt = client.call("queue_claim", {"owner": "w3", "ttl": 600})["spec"]["id"]
        assert nxt not in held
        assert client.call("search", {"q": f"id:{spec}"})["total"] == 1
    daemon.stop()
