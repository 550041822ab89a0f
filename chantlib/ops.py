"""The operations table: the one dispatch every front end goes through.

Each entry names an operation, its parameters, and the :class:`~chantlib.workspace.Workspace`
method that does it. The CLI in direct mode calls :func:`dispatch` in process; the daemon
calls the same :func:`dispatch` for a socket line or an HTTP request. Parameters arrive as
JSON values or as strings (HTTP query strings, CLI) and are checked and converted here, so
a bad parameter is the same ``bad_params`` error on every transport. Results are plain
JSON-able data. Import-light: no workspace, YAML or tantivy import until a dispatch.
"""

from __future__ import annotations

from ._version import PROTOCOL_VERSION
from .errors import UsageError

__all__ = ["Param", "Op", "OPS", "dispatch", "PROTOCOL_VERSION"]


class Param:
    """One parameter: ``kind`` is ``str``, ``int``, ``float``, ``bool`` or ``list``."""

    __slots__ = ("name", "kind", "default", "required", "aliases", "doc")

    def __init__(self, name, kind="str", default=None, required=False, aliases=(), doc=""):
        self.name = name
        self.kind = kind
        self.default = default
        self.required = required
        self.aliases = tuple(aliases)
        self.doc = doc

    def convert(self, op: str, value):
        if value is None:
            return None
        kind = self.kind
        try:
            if kind == "str":
                if isinstance(value, (dict, list, bool)):
                    raise ValueError
                return str(value)
            if kind == "bool":
                if isinstance(value, bool):
                    return value
                if isinstance(value, (int, float)) and value in (0, 1):
                    return bool(value)
                if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on", ""):
                    return True
                if isinstance(value, str) and value.lower() in ("0", "false", "no", "off"):
                    return False
                raise ValueError
            if kind == "int":
                if isinstance(value, bool) or isinstance(value, float) and not value.is_integer():
                    raise ValueError
                return int(value)
            if kind == "float":
                if isinstance(value, bool):
                    raise ValueError
                result = float(value)
                if result != result:  # NaN
                    raise ValueError
                return result
            if kind == "list":
                if isinstance(value, str):
                    return [v for v in (s.strip() for s in value.split(",")) if v]
                if isinstance(value, (list, tuple)) and all(isinstance(v, (str, int, float)) for v in value):
                    return [str(v) for v in value]
                raise ValueError
        except (TypeError, ValueError, OverflowError):
            pass
        raise UsageError(
            f"{op}: parameter '{self.name}' must be {_KIND_WORDS[kind]}, got {value!r}",
            op=op,
            param=self.name,
        )


_KIND_WORDS = {
    "str": "a string",
    "int": "an integer",
    "float": "a number",
    "bool": "true or false",
    "list": "a list of strings (or a comma-separated string)",
}


class Op:
    __slots__ = ("name", "method", "params", "doc", "writes")

    def __init__(self, name, method, params=(), doc="", writes=False):
        self.name = name
        self.method = method
        self.params = tuple(params)
        self.doc = doc
        self.writes = writes

    def bind(self, raw: dict) -> dict:
        """Check and convert ``raw`` parameters into keyword arguments for the method."""
        by_name = {}
        for p in self.params:
            by_name[p.name] = p
            for alias in p.aliases:
                by_name[alias] = p
        kwargs: dict = {}
        for key, value in raw.items():
            p = by_name.get(key)
            if p is None:
                allowed = ", ".join(p.name for p in self.params) or "none"
                raise UsageError(f"{self.name}: unknown parameter '{key}' (allowed: {allowed})", op=self.name, param=key)
            if p.name in kwargs:
                raise UsageError(f"{self.name}: parameter '{p.name}' given twice", op=self.name, param=p.name)
            kwargs[p.name] = p.convert(self.name, value)
        for p in self.params:
            if kwargs.get(p.name) is None:
                if p.required:
                    raise UsageError(f"{self.name}: parameter '{p.name}' is required", op=self.name, param=p.name)
                kwargs[p.name] = p.default
        return kwargs


_SPEC = Param("spec", required=True, aliases=("id",), doc="spec ID (partial IDs resolve)")
_OWNER = Param("owner", doc="lease owner (default: CHANT_OWNER, else user@host)")
_TTL = Param("ttl", "float", doc="lease length in seconds (default: scale.locks.ttl)")
_TOKEN = Param("token", "int", doc="the lease's fencing token")
_FORCE = Param("force", "bool", False, doc="act even if someone else holds the lease")
_PROJECT = Param("project", doc="only specs of this project")
_LABELS = Param("labels", "list", aliases=("label",), doc="only specs with any of these labels")

OPS: dict[str, Op] = {
    op.name: op
    for op in (
        Op(
            "hello",
            "hello",
            (Param("protocol", "int", doc="the client's protocol version (the client checks the answer)"),),
            doc="daemon and protocol version, repository root",
        ),
        Op(
            "list",
            "list_specs",
            (
                Param("ready", "bool", False, doc="only ready specs (groups left out)"),
                Param("status", doc="only this status (ready and blocked are computed)"),
                _LABELS,
                Param("type"),
                _PROJECT,
            ),
            doc="active specs in chant order",
        ),
        Op("show", "show", (_SPEC,), doc="one spec: frontmatter, body and computed state"),
        Op(
            "search",
            "search",
            (Param("q", required=True, aliases=("query",)), Param("limit", "int", 100)),
            doc="query the index (docs/cli.md, Query language)",
        ),
        Op(
            "query",
            "search",
            (Param("q", required=True, aliases=("query",)), Param("limit", "int", 100)),
            doc="the same as search",
        ),
        Op("lint", "lint", (Param("archive", "bool", False, doc="lint archived specs too"),), doc="validate specs"),
        Op("status", "status", doc="counts by status and what needs attention"),
        Op(
            "add",
            "add",
            (
                Param("title", required=True),
                Param("type", default="code"),
                _LABELS,
                Param("depends_on", "list"),
                Param("priority"),
                _PROJECT,
                Param("criteria", "list", doc="acceptance criteria items"),
                Param("description"),
            ),
            doc="create a spec",
            writes=True,
        ),
        Op("lock_acquire", "lock_acquire", (_SPEC, _OWNER, _TTL, _FORCE), doc="take a lease", writes=True),
        Op("lock_release", "lock_release", (_SPEC, _OWNER, _TOKEN, _FORCE), doc="give a lease up", writes=True),
        Op("lock_renew", "lock_renew", (_SPEC, _OWNER, _TOKEN, _TTL), doc="extend a lease", writes=True),
        Op("lock_list", "lock_list", doc="live leases"),
        Op("lock_status", "lock_status", (_SPEC,), doc="the lease on one spec"),
        Op("queue_next", "queue_next", (_PROJECT, _LABELS), doc="the spec a claim would take (a peek)"),
        Op(
            "queue_claim",
            "queue_claim",
            (_OWNER, _TTL, _PROJECT, _LABELS),
            doc="take the next spec with a lease",
            writes=True,
        ),
        Op("queue_list", "queue_list", (_PROJECT, _LABELS, Param("limit", "int")), doc="the queue, in order"),
        Op(
            "complete",
            "complete",
            (_SPEC, _OWNER, _TOKEN, _FORCE, Param("outcome", default="success", doc="success or failure")),
            doc="mark a spec completed (or failed) and release its lease (fenced by the token)",
            writes=True,
        ),
        Op("index_status", "index_status", doc="the index and spec table"),
        Op("daemon_status", "daemon_status", doc="the daemon's PID, uptime, addresses and counts (daemon only)"),
        Op("index_rebuild", "index_rebuild", doc="rebuild the table and index from the files", writes=True),
    )
}


def dispatch(workspace, name: str, params: dict | None = None):
    """Run operation ``name`` on ``workspace`` with ``params``; returns JSON-able data."""
    op = OPS.get(name) if isinstance(name, str) else None
    if op is None:
        known = ", ".join(sorted(OPS))
        raise UsageError(f"unknown command {name!r} (known: {known})", cmd=str(name))
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise UsageError(f"{name}: parameters must be an object", op=name)
    kwargs = op.bind(params)
    return getattr(workspace, op.method)(**kwargs)
