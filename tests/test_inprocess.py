"""The daemon's parts in process, beside the real-process tests: the service's scheduling,
the socket server on a temporary socket, and the Starlette app through Starlette's
TestClient. No daemon process, no port bound."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import tempfile
import threading

import pytest

from chantlib.ops import OPS


@pytest.fixture
def service(repo):
    from chantd.metrics import Metrics
    from chantd.service import Service

    repo.write("2026-01-24-001-aaa", "status: pending\nlabels: [bug]", "# First\n")
    repo.write("2026-01-24-002-bbb", "status: pending", "# Second\n")
    ws = repo.workspace(auto_refresh=False, long_lived=True)
    metrics = Metrics()
    svc = Service(ws, metrics)
    metrics.bind(svc)
    yield svc
    svc.close()


async def _loaded(service) -> None:
    await service.load()
    service.ready = True


def test_a_lease_is_answered_while_a_slow_read_holds_the_worker_thread(service, monkeypatch):
    """The scheduling by effects, deterministically: a lint is held on the worker thread
    until the test lets it go; meanwhile a claim, a renew and a status are answered."""
    ws = service.ws
    entered, release = threading.Event(), threading.Event()
    real_lint = type(ws).lint

    def held_lint(self, *args, **kwargs):
        entered.set()
        assert release.wait(30), "the test never let the lint go"
        return real_lint(self, *args, **kwargs)

    monkeypatch.setattr(type(ws), "lint", held_lint)

    async def go():
        await _loaded(service)
        slow = asyncio.ensure_future(service.call("lint", {}, "test"))
        await asyncio.get_running_loop().run_in_executor(None, entered.wait, 30)
        claim = await service.call("queue_claim", {"owner": "w", "ttl": 60}, "test")
        renew = await service.call(
            "lock_renew", {"spec": claim["result"]["spec"]["id"], "token": claim["result"]["lease"]["token"]}, "test"
        )
        status = await service.call("daemon_status", {}, "test")
        assert not slow.done()  # all of that while the lint still held the worker thread
        release.set()
        return claim, renew, status, await slow

    claim, renew, status, lint = asyncio.run(go())
    assert claim["ok"] and renew["ok"] and renew["result"]["token"] == claim["result"]["lease"]["token"]
    assert status["result"]["busy"] == "lint"
    assert lint["ok"] and "diagnostics" in lint["result"]


def test_a_write_waits_for_its_turn_without_holding_the_table_lock(service, monkeypatch):
    """A ``complete`` queued behind a slow read waits for the worker thread, not with the
    table lock held: leases are still answered while it waits."""
    ws = service.ws
    entered, release = threading.Event(), threading.Event()
    real_search = type(ws).search

    def held_search(self, *args, **kwargs):
        entered.set()
        assert release.wait(30)
        return real_search(self, *args, **kwargs)

    monkeypatch.setattr(type(ws), "search", held_search)

    async def go():
        await _loaded(service)
        claim = (await service.call("queue_claim", {"owner": "w", "ttl": 60}, "test"))["result"]
        spec, token = claim["spec"]["id"], claim["lease"]["token"]
        slow = asyncio.ensure_future(service.call("search", {"q": "first"}, "test"))
        await asyncio.get_running_loop().run_in_executor(None, entered.wait, 30)
        write = asyncio.ensure_future(service.call("complete", {"spec": spec, "token": token}, "test"))
        await asyncio.sleep(0)  # the write is waiting for its turn now
        assert not service.lock.locked()
        renew = await service.call("lock_renew", {"spec": spec, "token": token}, "test")
        assert not write.done()
        release.set()
        return renew, await slow, await write

    renew, search, complete = asyncio.run(go())
    assert renew["ok"] and search["ok"] and complete["ok"]
    assert complete["result"]["spec"]["status"] == "completed"


def test_the_socket_server_in_process(service):
    from chantd.socket import SocketServer

    async def go():
        await _loaded(service)
        folder = tempfile.mkdtemp(prefix="chant-sock-")
        path = os.path.join(folder, "d.sock")
        server = SocketServer(service, path)
        await server.start()
        try:
            reader, writer = await asyncio.open_unix_connection(path)
            lines = [
                {"cmd": "hello", "id": 1},
                {"cmd": "queue_next", "id": 2},
                {"cmd": "nope", "id": 3},
            ]
            for line in lines:
                writer.write((json.dumps(line) + "\n").encode())
            writer.write(b"{not json\n")
            await writer.drain()
            answers = [json.loads(await reader.readline()) for _ in range(4)]
            writer.close()
            await writer.wait_closed()
            return answers
        finally:
            await server.close()
            os.rmdir(folder)

    hello, nxt, unknown, garbage = asyncio.run(go())
    assert hello["ok"] and hello["id"] == 1 and hello["result"]["loaded"] is True
    assert nxt["ok"] and nxt["id"] == 2 and nxt["result"]["spec"]["id"] == "2026-01-24-001-aaa"
    assert not unknown["ok"] and unknown["id"] == 3 and unknown["error"]["code"] == "bad_params"
    assert not garbage["ok"] and garbage["error"]["code"] == "bad_request"


def _route_path(route: str, spec: str) -> str:
    return route.replace("{spec}", spec)


def test_every_rest_route_of_the_table_answers_through_the_starlette_app(service):
    """Each operation's HTTP face, through httpx's ASGI transport: routed to its operation
    (never 404/405), answered in the envelope."""
    import httpx

    from chantd.http import build_app

    params = {
        "search": {"q": "first"}, "query": {"q": "first"}, "add": {"title": "Third"},
        "lock_acquire": {"owner": "w"}, "lock_release": {"owner": "w"}, "lock_renew": {"owner": "w"},
        "queue_claim": {"owner": "w"}, "record_commit": {"commit": "1a2b3c4d5e6f", "subject": "no spec named"},
    }
    order = ["hello", "list", "show", "search", "query", "lint", "status", "lock_acquire", "lock_renew",
             "lock_status", "lock_list", "lock_release", "queue_next", "queue_stats", "queue_list", "queue_claim",
             "complete", "add", "index_status", "index_rebuild", "daemon_status", "record_commit"]
    assert set(order) == {name for name, op in OPS.items() if op.http is not None}

    async def go():
        await _loaded(service)
        transport = httpx.ASGITransport(app=build_app(service))
        answers = []
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8080") as client:
            for name in order:
                op = OPS[name]
                method = op.http.methods[-1]
                path = op.http.route.replace("{spec}", "aaa" if name == "complete" else "2026-01-24-002-bbb")
                if method == "GET":
                    response = await client.get(path, params=params.get(name, {}))
                else:
                    response = await client.post(path, json=params.get(name, {}))
                answers.append((name, response.status_code, response.json()))
        return answers

    for name, status, body in asyncio.run(go()):
        assert status not in (404, 405), (name, body)
        assert body["ok"] or body["error"]["code"] in ("conflict", "stale_token", "not_holder"), (name, body)
        if name == "queue_stats":
            assert set(body["result"]) >= {"depth", "held", "leased", "by_project"}


def test_the_socket_server_closes_a_busy_persistent_connection_whose_handler_lost_a_cancel(tmp_path):
    """Python 3.11's asyncio.wait_for can lose a cancellation that lands as its inner wait
    completes: the handler then serves on. A client that keeps asking on its persistent
    connection (a worker) must not hold the stop: the close cancels again and the handler
    ends after its current answer."""
    from chantd.service import encode_answer
    from chantd.socket import SocketServer

    class Service:  # answers every request; the first cancellation it sees is lost
        metrics = None
        lost = 0
        inside: asyncio.Event | None = None  # set while a request is being answered

        async def call_encoded(self, cmd, params, transport, owner, request_id, gone=None):
            assert Service.inside is not None
            Service.inside.set()
            try:
                await asyncio.sleep(0.05)
            except asyncio.CancelledError:
                if Service.lost:
                    raise
                Service.lost += 1  # swallowed, as the race does
            finally:
                Service.inside.clear()
            return encode_answer({"ok": True, "result": {"cmd": cmd}}, request_id)

    path = str(tmp_path / "s.sock")

    async def go():
        Service.inside = asyncio.Event()
        server = SocketServer(Service(), path)
        await server.start()
        reader, writer = await asyncio.open_unix_connection(path)
        answered = 0

        async def client():
            nonlocal answered
            writer.write(b'{"cmd":"hello","id":0}\n')
            with contextlib.suppress(ConnectionError):  # the daemon closed the connection
                while True:
                    line = await reader.readline()
                    if not line:
                        return
                    answered += 1
                    writer.write(b'{"cmd":"queue_next","id":1}\n')

        asker = asyncio.create_task(client())
        await asyncio.sleep(0.3)
        assert answered > 3 and not asker.done()
        await asyncio.wait_for(Service.inside.wait(), 5)  # the close lands while a request is answered
        await asyncio.wait_for(server.close(patience=5.0), 10)  # returns: the handler ended
        await asyncio.wait_for(asker, 5)  # and the client saw its connection closed
        writer.close()
        return Service.lost

    assert asyncio.run(go()) == 1  # a cancellation was lost, and the close still ended it
