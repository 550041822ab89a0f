"""The HTTP transport: a Starlette app of REST routes over the operations table.

Every route turns path, query and JSON-body parameters into one ``service.call``, the same
call the socket makes, and answers with the same envelope (``{"ok": true, "result": ...}``
or ``{"ok": false, "error": {...}}``); the HTTP status comes from the error's class
(``http_status`` in :mod:`chantlib.errors`; the table is in docs/daemon.md).
``POST /api/rpc`` takes the socket's JSON as is. ``/livez``, ``/readyz``, ``/metrics`` and
``/openapi.json`` are open; everything under ``/api`` needs ``Authorization: Bearer
<token>`` when a token is configured (it must be when the API listens beyond loopback).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse as _StarletteJSON
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from chantlib._version import VERSION
from chantlib.client import MAX_LINE
from chantlib.errors import BadRequest, ChantError, MethodNotAllowed, NotFound, Unauthorized, status_for_code
from chantlib.ops import OPS

from .metrics import CONTENT_TYPE
from .service import dump_json, load_request

#: the whole request body must arrive within this long
BODY_SECONDS = 10.0

#: (methods, path, operation): the REST face of the operations table, made from each
#: operation's ``http`` face. The seed's examples (`GET /api/queue/next`, `GET
#: /api/lock/acquire/{id}`, `GET /api/specs?status=pending`) work as written; writes accept
#: POST (with a JSON body) as well.
REST = tuple((op.http.methods, op.http.route, op.name) for op in OPS.values() if op.http is not None)


class JSONResponse(_StarletteJSON):
    """JSON as the socket writes it: ASCII (a lone surrogate echoed in a message cannot make
    the encoding fail) and never NaN or Infinity."""

    def render(self, content) -> bytes:
        return dump_json(content).encode("ascii")


def _error(exc: ChantError) -> JSONResponse:
    return JSONResponse({"ok": False, "error": exc.to_dict()}, status_code=exc.http_status)


async def _routing_error(request: Request, exc: HTTPException) -> Response:
    """Starlette's own refusals (no such path, a method the path does not take) in the error
    envelope every other error has, instead of its text/plain ones."""
    if exc.status_code == 404:
        return _error(NotFound(f"No such path: {request.url.path}"))
    if exc.status_code == 405:
        # Starlette joins a set: sort, so the header and the message are the same every time
        allowed = ", ".join(sorted(m.strip() for m in (exc.headers or {}).get("Allow", "").split(",") if m.strip()))
        response = _error(MethodNotAllowed(f"{request.method} is not allowed on {request.url.path} (allowed: {allowed})"))
        response.headers["Allow"] = allowed
        return response
    error = BadRequest(str(exc.detail))
    return JSONResponse({"ok": False, "error": error.to_dict()}, status_code=exc.status_code, headers=exc.headers)


#: every app of the daemon answers errors in the envelope
_HANDLERS: dict[Any, Any] = {HTTPException: _routing_error}


def _answer(envelope: dict) -> JSONResponse:
    status = 200 if envelope.get("ok") else status_for_code(envelope["error"].get("code", "internal"))
    return JSONResponse(envelope, status_code=status)


async def _json_body(request: Request) -> dict:
    if request.method != "POST":
        return {}
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_LINE:
        raise BadRequest(f"request body over {MAX_LINE} bytes")
    chunks: list[bytes] = []
    size = 0

    async def read() -> None:
        nonlocal size
        async for chunk in request.stream():
            chunks.append(chunk)
            size += len(chunk)
            if size > MAX_LINE:
                raise BadRequest(f"request body over {MAX_LINE} bytes")

    try:
        await asyncio.wait_for(read(), BODY_SECONDS)  # a body that trickles must not hold a connection
    except TimeoutError:
        raise BadRequest(f"the request body did not arrive within {BODY_SECONDS:g} s") from None
    raw = b"".join(chunks)
    if not raw.strip():
        return {}
    body = load_request(raw, "the request body")
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    return body


async def _call(service, request: Request, cmd, params: dict, owner: str) -> dict:
    """``service.call``; a long poll (``Op.waits``) also learns when its client has left, so
    a claim won for nobody is given back instead of held for a whole TTL."""
    op = OPS.get(cmd) if isinstance(cmd, str) else None
    if op is None or op.waits is None or not params.get(op.waits):
        return await service.call(cmd, params, "http", owner)
    left: list[bool] = []

    async def watch() -> None:
        while True:  # after the body, the next message is the client's departure
            message = await request.receive()
            if message.get("type") == "http.disconnect":
                left.append(True)
                return

    watcher = asyncio.create_task(watch())
    try:
        return await service.call(cmd, params, "http", owner, gone=lambda: bool(left))
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await watcher


def _query_params(request: Request, op_name: str) -> dict:
    lists = {p.name for p in OPS[op_name].params if p.kind == "list"}
    lists |= {a for p in OPS[op_name].params if p.kind == "list" for a in p.aliases}
    out: dict = {}
    for key, value in request.query_params.multi_items():
        if key in lists:
            out.setdefault(key, []).append(value)
        else:
            out[key] = value
    return out


def build_app(service, *, token: str | None = None, metrics=None) -> Starlette:
    """The HTTP API of one :class:`~chantd.service.Service`."""

    def authorised(request: Request) -> bool:
        if not token:
            return True
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        return scheme.lower() == "bearer" and secrets.compare_digest(given.strip().encode(), token.encode())

    def owner_of(request: Request) -> str:
        named = request.headers.get("x-chant-owner")
        if named:
            return named
        client = request.client
        return f"http@{client.host}" if client else "http"

    def unauthorised() -> JSONResponse:
        response = _error(Unauthorized("missing or wrong bearer token"))
        response.headers["WWW-Authenticate"] = "Bearer"
        return response

    def rest_endpoint(op_name: str):
        async def endpoint(request: Request) -> Response:
            if not authorised(request):
                return unauthorised()
            try:
                params = _query_params(request, op_name)
                params.update(await _json_body(request))
                params.update(request.path_params)
            except ChantError as exc:
                return _error(exc)
            return _answer(await _call(service, request, op_name, params, owner_of(request)))

        endpoint.__name__ = f"api_{op_name}"
        return endpoint

    async def rpc(request: Request) -> Response:
        if not authorised(request):
            return unauthorised()
        try:
            body = await _json_body(request)
        except ChantError as exc:
            return _error(exc)
        request_id = body.pop("id", None)
        cmd = body.pop("cmd", None)
        envelope = await _call(service, request, cmd, body, owner_of(request))
        if request_id is not None:
            envelope["id"] = request_id
        return _answer(envelope)

    async def readyz(request: Request) -> Response:
        if service.ready:
            return PlainTextResponse("ready\n")
        return PlainTextResponse("starting\n", status_code=503)

    metrics_endpoint = _metrics_endpoint(service, metrics)

    async def openapi(request: Request) -> Response:
        return JSONResponse(openapi_document(secured=bool(token)))

    def by_method(table: dict):
        handlers = {method: rest_endpoint(op_name) for method, op_name in table.items()}

        async def endpoint(request: Request) -> Response:
            return await handlers[request.method if request.method != "HEAD" else "GET"](request)

        return endpoint

    routes = [
        Route("/livez", livez, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
        Route("/api/rpc", rpc, methods=["POST"]),
    ]
    # one route per path (so a 405 lists every method the path has), dispatching by method
    for path, table in _paths().items():
        routes.append(Route(path, by_method(table), methods=list(table)))
    return Starlette(routes=routes, exception_handlers=_HANDLERS)


def _paths() -> dict[str, dict[str, str]]:
    """path -> {method: operation}, in REST order."""
    out: dict[str, dict[str, str]] = {}
    for methods, path, op_name in REST:
        for method in methods:
            out.setdefault(path, {})[method] = op_name
    return out


async def livez(request: Request) -> Response:
    return PlainTextResponse("ok\n")


def _metrics_endpoint(service, metrics):
    """``GET /metrics``: the exposition, rendered under the service's lock (a consistent view)."""

    async def metrics_endpoint(request: Request) -> Response:
        if metrics is None:
            return _error(NotFound("metrics are off"))
        async with service.lock:
            body = metrics.render()
        return Response(body, media_type=CONTENT_TYPE)

    return metrics_endpoint


def build_metrics_app(service, metrics) -> Starlette:
    """The app on ``--metrics-port``: just /metrics and the health checks."""
    return Starlette(routes=[
        Route("/metrics", _metrics_endpoint(service, metrics), methods=["GET"]),
        Route("/livez", livez, methods=["GET"]),
    ], exception_handlers=_HANDLERS)


# --- the OpenAPI document ---------------------------------------------------------------------

_ENVELOPE = {
    "type": "object",
    "required": ["ok"],
    "properties": {
        "ok": {"type": "boolean"},
        "result": {},
        "error": {"$ref": "#/components/schemas/Error"},
        "id": {},
    },
}
_ERROR = {
    "type": "object",
    "required": ["code", "message"],
    "properties": {"code": {"type": "string"}, "message": {"type": "string"}, "details": {"type": "object"}},
}
_ERROR_STATUSES = ("400", "401", "404", "409", "422", "500", "503")


def _responses() -> dict:
    envelope = {"application/json": {"schema": {"$ref": "#/components/schemas/Envelope"}}}
    out = {"200": {"description": "the operation's result", "content": envelope}}
    for status in _ERROR_STATUSES:
        out[status] = {"description": "an error envelope", "content": envelope}
    return out


def openapi_document(secured: bool = False) -> dict:
    """OpenAPI 3.0 for the REST routes and /api/rpc, generated from the operations table."""
    paths: dict = {}
    for methods, path, op_name in REST:
        op = OPS[op_name]
        path_names = {seg[1:-1] for seg in path.split("/") if seg.startswith("{")}
        for method in methods:
            params = []
            by_name = {p.name: p for p in op.params}
            for name in sorted(path_names):
                schema = by_name[name].schema() if name in by_name else {"type": "string"}
                params.append({"name": name, "in": "path", "required": True, "schema": schema})
            body_props = {}
            for p in op.params:
                if p.name in path_names or p.name == "protocol":
                    continue
                schema = p.schema()
                if method == "GET":
                    entry = {"name": p.name, "in": "query", "required": p.required, "schema": schema}
                    if p.doc:
                        entry["description"] = p.doc
                    if p.kind == "list":
                        entry.update(style="form", explode=True)
                    params.append(entry)
                else:
                    body_props[p.name] = schema
            spec: dict = {
                "operationId": f"{op_name}_{method.lower()}",
                "summary": op.doc or op_name,
                "parameters": params,
                "responses": _responses(),
            }
            if method == "POST":
                required = [p.name for p in op.params if p.required and p.name not in path_names]
                body_schema: dict = {"type": "object", "properties": body_props, "additionalProperties": False}
                if required:
                    body_schema["required"] = required
                spec["requestBody"] = {
                    "required": bool(required),
                    "content": {"application/json": {"schema": body_schema}},
                }
            paths.setdefault(path, {})[method.lower()] = spec
    requests = []
    for name in sorted(OPS):
        op = OPS[name]
        props: dict = {"cmd": {"type": "string", "enum": [name]}, "id": {}}
        props.update({p.name: p.schema() for p in op.params})
        requests.append(
            {
                "type": "object",
                "required": ["cmd"] + [p.name for p in op.params if p.required],
                "properties": props,
                "additionalProperties": False,
            }
        )
    paths["/api/rpc"] = {
        "post": {
            "operationId": "rpc",
            "summary": "any operation, as the socket protocol's JSON object",
            "requestBody": {"required": True, "content": {"application/json": {"schema": {"oneOf": requests}}}},
            "responses": _responses(),
        }
    }
    plain = {"200": {"description": "ok", "content": {"text/plain": {"schema": {"type": "string"}}}}}
    paths["/livez"] = {"get": {"operationId": "livez", "summary": "the process answers", "responses": plain}}
    paths["/readyz"] = {
        "get": {
            "operationId": "readyz",
            "summary": "the index is loaded and requests are served",
            "responses": {**plain, "503": {"description": "starting", "content": {"text/plain": {"schema": {"type": "string"}}}}},
        }
    }
    if secured:  # the health checks answer anyone (probes bring no token)
        for path in ("/livez", "/readyz"):
            paths[path]["get"]["security"] = []
    doc: dict = {
        "openapi": "3.0.3",
        "info": {"title": "chant daemon API", "version": VERSION},
        "paths": paths,
        "components": {"schemas": {"Envelope": _ENVELOPE, "Error": _ERROR}},
    }
    if secured:
        doc["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        doc["security"] = [{"bearer": []}]
    return doc
