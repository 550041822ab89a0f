"""Garbage at the daemon: every line and every request gets an answer, and the daemon lives on.

Hypothesis drives 10,000 socket lines and 10,000 HTTP requests at one real daemon process;
schemathesis checks the HTTP API against its own OpenAPI document.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chantlib.ops import OPS

pytestmark = pytest.mark.slow

CASES = int(os.environ.get("CHANT_FUZZ_CASES", "10000"))
_SETTINGS = settings(
    max_examples=CASES, deadline=None, database=None, derandomize=True,
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory):
    from chantlib.generate import generate

    from .support import DaemonProc

    root = tmp_path_factory.mktemp("fuzz") / "repo"
    generate(str(root), 80, seed=3)
    config = root / ".chant" / "config.md"
    # claims that wait for work (a long poll) are held to 0.2 s: the fuzzer sends any wait
    config.write_text(config.read_text().replace("---\n", "---\nscale:\n  daemon:\n    max_wait: 0.2\n", 1))
    d = DaemonProc(str(root), metrics=False)
    yield d
    code = d.stop()
    assert code == 0, d.log()


_json_scalar = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20))
_json = st.recursive(_json_scalar, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=6)
_param_names = st.sampled_from(sorted({p.name for op in OPS.values() for p in op.params} | {"id", "x", ""}))
# no add/rebuild from garbage: they would grow the repository or rebuild it thousands of times
_cmds = st.one_of(st.sampled_from(sorted(set(OPS) - {"add", "index_rebuild"})), st.text(max_size=12))
_requests = st.builds(
    lambda cmd, params: dict(params, cmd=cmd), _cmds, st.dictionaries(_param_names, _json, max_size=4)
)
#: the shapes a chaos run found answered 500 or not at all: deep nesting, NaN and Infinity,
#: lone surrogates, deep queries, IDs no file could have
_hostile = st.sampled_from([
    b"[" * 5000, b'{"a":' * 200 + b"1" + b"}" * 200, b'{"cmd":"hello","id":NaN}', b'{"cmd":"hello","id":-Infinity}',
    b'{"cmd":"search","q":"\\ud800"}', b'{"cmd":"show","spec":"\\udfff"}',
    b'{"cmd":"search","q":"' + b"(" * 3000 + b"a" + b")" * 3000 + b'"}',
    b'{"cmd":"lock_acquire","spec":"' + b"x" * 5000 + b'"}',
])
_lines = st.one_of(
    _hostile,
    _requests.map(lambda r: json.dumps(r).encode()),
    st.binary(max_size=200).filter(lambda b: b"\n" not in b),
    _json.map(lambda v: json.dumps(v).encode()),
    st.text(max_size=100).map(lambda t: t.replace("\n", " ").encode("utf-8", "surrogatepass")),
).filter(lambda b: b.strip() != b"")


class _Conn:
    def __init__(self, path: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(30)
        self.sock.connect(path)
        self.buf = b""
        self.sock.sendall(b'{"cmd":"hello"}\n')
        assert self.read()["ok"]

    def read(self) -> dict:
        while b"\n" not in self.buf:
            chunk = self.sock.recv(1 << 16)
            assert chunk, "the daemon closed the connection"
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return json.loads(line)


def test_socket_garbage(fuzzed):
    conn = _Conn(fuzzed.socket)
    seen = {"ok": 0, "error": 0}

    @_SETTINGS
    @given(_lines)
    def one(line):
        conn.sock.sendall(line + b"\n")
        answer = conn.read()
        assert isinstance(answer["ok"], bool)
        if not answer["ok"]:
            assert answer["error"]["code"] != "internal", answer
            assert isinstance(answer["error"]["message"], str)
        seen["ok" if answer["ok"] else "error"] += 1

    try:
        one()
    finally:
        conn.sock.close()
    assert seen["ok"] + seen["error"] >= CASES * 0.9
    assert fuzzed.proc.poll() is None
    assert fuzzed.call("hello")["protocol"] == 1


def test_socket_garbage_on_fresh_connections(fuzzed):
    """Arbitrary bytes, newlines included, on one-shot connections: answered or closed, never a hang."""

    @settings(max_examples=max(100, CASES // 20), deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(st.binary(max_size=300))
    def one(data):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(30)
            s.connect(fuzzed.socket)
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
            received = b""
            while True:
                chunk = s.recv(1 << 16)
                if not chunk:
                    break
                received += chunk
        for line in received.splitlines():
            assert isinstance(json.loads(line)["ok"], bool)

    one()
    assert fuzzed.call("hello")["protocol"] == 1


_paths = st.one_of(
    st.sampled_from([
        "/api/specs", "/api/queue/next", "/api/queue", "/api/locks", "/api/status", "/api/lint", "/api/search",
        "/api/rpc", "/api/hello", "/api/daemon", "/api/index", "/livez", "/readyz", "/openapi.json", "/nope",
    ]),
    st.builds(lambda a, b: f"/api/{a}/{quote(b, safe='')}", st.sampled_from(["specs", "lock", "lock/acquire",
                                                                              "lock/release", "lock/renew"]),
              st.text(min_size=1, max_size=20)),
)
_query = st.dictionaries(_param_names, st.text(max_size=15), max_size=3).map(
    lambda d: "&".join(f"{quote(k)}={quote(v)}" for k, v in d.items())
)
_bodies = st.one_of(st.just(b""), _requests.map(lambda r: json.dumps(r).encode()), st.binary(max_size=100),
                    _json.map(lambda v: json.dumps(v).encode()), _hostile)


def test_http_garbage(fuzzed):
    conn = http.client.HTTPConnection("127.0.0.1", fuzzed.api_port, timeout=30)
    statuses: dict[int, int] = {}

    @_SETTINGS
    @given(st.sampled_from(["GET", "POST", "PUT", "DELETE"]), _paths, _query, _bodies,
           st.sampled_from([True, True, True, False]))
    def one(method, path, query, body, with_token):
        url = path + (f"?{query}" if query else "")
        headers = {"Content-Type": "application/json"}
        if with_token:  # mostly a client that has the token; now and then one that has not
            headers["Authorization"] = f"Bearer {fuzzed.token}"
        conn.request(method, url, body=body if method != "GET" else None, headers=headers)
        response = conn.getresponse()
        raw = response.read()
        assert response.status < 500, (method, url, body, raw)
        statuses[response.status] = statuses.get(response.status, 0) + 1
        # every answer under /api, and every refusal anywhere (but a /readyz still starting),
        # is the JSON envelope; redirects aside
        enveloped = path.startswith("/api/") or (response.status >= 400 and path != "/readyz")
        if enveloped and not 300 <= response.status < 400:
            try:
                data = json.loads(raw)
            except ValueError:
                raise AssertionError(f"not JSON: {method} {url} {body!r} -> {response.status} {raw!r}") from None
            assert isinstance(data["ok"], bool)

    try:
        one()
    finally:
        conn.close()
    assert statuses.get(200, 0) > 0 and statuses.get(400, 0) > 0 and statuses.get(401, 0) > 0
    assert fuzzed.proc.poll() is None
    assert fuzzed.call("hello")["protocol"] == 1


@pytest.mark.skipif(shutil.which("schemathesis") is None and not os.path.exists(
    os.path.join(os.path.dirname(sys.executable), "schemathesis")), reason="schemathesis is not installed")
def test_schemathesis_against_the_openapi_document(fuzzed):
    here = os.path.dirname(os.path.abspath(__file__))
    exe = os.path.join(os.path.dirname(sys.executable), "schemathesis")
    proc = subprocess.run(
        [exe, "--config-file", os.path.join(here, "data", "schemathesis.toml"), "run",
         f"{fuzzed.api}/openapi.json", "-H", f"Authorization: Bearer {fuzzed.token}", "--max-examples", os.environ.get("CHANT_SCHEMATHESIS_EXAMPLES", "25"),
         "--workers", "1", "--seed", "1"],
        capture_output=True, text=True, timeout=600, env=dict(os.environ, NO_COLOR="1"),
    )
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    assert fuzzed.call("hello")["protocol"] == 1
