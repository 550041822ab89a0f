"""The HTTP app and the metrics in process: the ASGI app called directly, no port bound."""

from __future__ import annotations

import asyncio
import json

import pytest


def call(app, method: str, path: str) -> tuple[int, dict, bytes]:
    """One request through the ASGI app: (status, headers, body)."""

    async def go():
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
            "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "", "headers": [],
            "client": ("127.0.0.1", 40000), "server": ("127.0.0.1", 8080),
        }
        sent: list[dict] = []

        async def receive():
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message):
            sent.append(message)

        await app(scope, receive, send)
        start = sent[0]
        headers = {k.decode().lower(): v.decode() for k, v in start["headers"]}
        return start["status"], headers, b"".join(m.get("body", b"") for m in sent[1:])

    return asyncio.run(go())


@pytest.fixture
def service(repo):
    from chantd.metrics import Metrics
    from chantd.service import Service

    ws = repo.workspace(auto_refresh=False, long_lived=True)
    metrics = Metrics()
    svc = Service(ws, metrics)
    metrics.bind(svc)
    svc.ready = True
    yield svc
    svc.close()


@pytest.mark.parametrize("path", ["/nope", "/api/nope", "/api/specs/a/b/c", "/api/lock"])
def test_an_unknown_path_answers_the_error_envelope(service, path):
    from chantd.http import build_app, build_metrics_app

    for app in (build_app(service), build_metrics_app(service, service.metrics)):
        status, headers, body = call(app, "GET", path)
        assert status == 404 and headers["content-type"] == "application/json"
        assert json.loads(body) == {"ok": False, "error": {"code": "not_found", "message": f"No such path: {path}"}}


def test_a_wrong_method_answers_the_error_envelope_and_allow(service):
    from chantd.http import build_app

    app = build_app(service)
    status, headers, body = call(app, "DELETE", "/api/specs")
    assert status == 405 and headers["allow"] == "GET, HEAD, POST" and headers["content-type"] == "application/json"
    assert json.loads(body) == {
        "ok": False,
        "error": {"code": "method_not_allowed",
                  "message": "DELETE is not allowed on /api/specs (allowed: GET, HEAD, POST)"},
    }
    status, headers, body = call(app, "GET", "/api/rpc")
    assert status == 405 and headers["allow"] == "POST" and json.loads(body)["error"]["code"] == "method_not_allowed"
    assert call(app, "GET", "/livez")[0] == 200  # the routes that exist are untouched


def test_metrics_off_is_the_error_envelope_too(service):
    from chantd.http import build_app

    status, headers, body = call(build_app(service, metrics=None), "GET", "/metrics")
    assert status == 404 and json.loads(body)["error"] == {"code": "not_found", "message": "metrics are off"}


def _samples(text: str, name: str) -> dict[str, float]:
    out = {}
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            key, _, value = line.rpartition(" ")
            out[key] = float(value)
    return out


def test_an_empty_queue_is_exported_as_zero(repo, service):
    repo.write("2026-01-24-001-aaa", "status: completed")
    repo.write("auth-2026-01-24-002-bbb", "status: in_progress")
    service.apply(None)
    text = service.metrics.render().decode()
    assert _samples(text, "chant_queue_depth") == {
        'chant_queue_depth{project=""}': 0.0, 'chant_queue_depth{project="auth"}': 0.0,
    }
    assert _samples(text, "chant_specs_ready") == {
        'chant_specs_ready{project=""}': 0.0, 'chant_specs_ready{project="auth"}': 0.0,
    }
    repo.write("auth-2026-01-24-003-ccc", "status: pending")
    service.apply(["specs/auth-2026-01-24-003-ccc.md"])
    text = service.metrics.render().decode()
    assert _samples(text, "chant_queue_depth") == {
        'chant_queue_depth{project=""}': 0.0, 'chant_queue_depth{project="auth"}': 1.0,
    }


def test_no_specs_at_all_is_one_zero_sample(service):
    service.apply(None)
    text = service.metrics.render().decode()
    assert _samples(text, "chant_queue_depth") == {'chant_queue_depth{project=""}': 0.0}
    assert _samples(text, "chant_specs_ready") == {'chant_specs_ready{project=""}': 0.0}


def test_an_idle_http_server_ticks_once_a_second_and_stops_at_once():
    """uvicorn's loop would wake every 100 ms (two servers: most of an idle daemon's CPU)."""
    import asyncio
    import socket

    from chantd.server import _Uvicorn

    async def app(scope, receive, send):  # never asked: nothing connects
        raise AssertionError("no request was made")

    async def scenario():
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        server = _Uvicorn(app, sock)
        ticks = []
        real_tick = server.server.on_tick

        async def counted(counter):
            ticks.append(counter)
            return await real_tick(counter)

        server.server.on_tick = counted
        await server.start()
        await asyncio.sleep(2.5)
        idle_ticks = len(ticks)
        await asyncio.wait_for(server.stop(), 10)
        return idle_ticks, server.task

    idle_ticks, task = asyncio.run(scenario())
    assert 1 <= idle_ticks <= 4, idle_ticks  # ~3 in 2.5 s; uvicorn's own loop: ~25
    assert task.done() and not task.cancelled()  # stopped by stop(), not cancelled
