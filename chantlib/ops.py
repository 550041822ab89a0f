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
from .values import MAX_TTL, SPEC_FIELDS, STATUS_FILTERS, canon_status

__all__ = ["Param", "Op", "OPS", "dispatch", "dispatch_json", "PROTOCOL_VERSION"]


class Param:
    """One parameter: ``kind`` is ``str``, ``int``, ``float``, ``bool`` or ``list``.

    Constraints, checked here and published in the daemon's OpenAPI document: ``choices``
    (compared in lower case), ``pattern`` (a regular expression the text must match),
    ``minimum`` (``exclusive``: the value must be above it).
    """

    __slots__ = (
        "name", "kind", "default", "required", "aliases", "doc", "choices", "pattern", "minimum", "exclusive", "maximum",
        "hint",
        "fold",
        "_match",
    )

    def __init__(self, name, kind="str", default=None, required=False, aliases=(), doc="", *, choices=None,
                 pattern=None, minimum=None, exclusive=False, maximum=None, hint="has a bad form", fold=None):
        self.name = name
        self.kind = kind
        self.default = default
        self.required = required
        self.aliases = tuple(aliases)
        self.doc = doc
        self.choices = tuple(choices) if choices is not None else None
        self.pattern = pattern
        self.minimum = minimum
        self.exclusive = exclusive
        self.maximum = maximum
        self.hint = hint  # what a value failing ``pattern`` is told
        self.fold = fold  # str -> str: the spellings of one choice to its canonical form (default: lower case)
        # ``pattern`` is published in the OpenAPI document, where JSON Schema reads it as an
        # ECMAScript regex; Python's ``$`` also matches before a final newline, so the check
        # here ends at the true end of the text (``\Z``) to accept exactly what the document says
        self._match = pattern[:-1] + r"\Z" if pattern and pattern.endswith("$") and not pattern.endswith("\\$") \
            else pattern

    def check(self, op: str, value):
        """Apply the constraints to a converted value (to each item of a list)."""
        if self.choices is not None:
            value = [self._choice(op, v) for v in value] if isinstance(value, list) else self._choice(op, value)
        if self.pattern is not None:
            import re

            for item in value if isinstance(value, list) else (value,):
                if re.search(self._match, item) is None:  # re caches compiled patterns
                    raise UsageError(f"{op}: parameter '{self.name}' {self.hint}, got {item!r}", op=op, param=self.name)
        if self.minimum is not None and (value <= self.minimum if self.exclusive else value < self.minimum):
            bound = f"above {self.minimum}" if self.exclusive else f"at least {self.minimum}"
            raise UsageError(f"{op}: parameter '{self.name}' must be {bound}, got {value!r}", op=op, param=self.name)
        if self.maximum is not None and value > self.maximum:
            raise UsageError(
                f"{op}: parameter '{self.name}' must be at most {self.maximum}, got {value!r}", op=op, param=self.name
            )
        return value

    def _choice(self, op: str, value: str) -> str:
        folded = self.fold(value) if self.fold is not None else value.lower()
        if folded not in self.choices:
            raise UsageError(
                f"{op}: parameter '{self.name}' must be one of {', '.join(self.choices)}, got {value!r}",
                op=op,
                param=self.name,
            )
        return folded

    def schema(self) -> dict:
        """This parameter as a JSON schema (for the OpenAPI document)."""
        out = dict(_SCHEMA_OF[self.kind])
        if self.choices is not None:
            if self.kind == "list":
                out["items"] = dict(out["items"], enum=list(self.choices))
            else:
                out["enum"] = list(self.choices)
        if self.pattern is not None:
            if self.kind == "list":
                out["items"] = dict(out["items"], pattern=self.pattern)
            else:
                out["pattern"] = self.pattern
        if self.minimum is not None:
            out["minimum"] = self.minimum
            if self.exclusive:
                out["exclusiveMinimum"] = True
        if self.maximum is not None:
            out["maximum"] = self.maximum
        return out

    def convert(self, op: str, value):
        if value is None:
            return None
        return self.check(op, self._convert(op, value))

    def _convert(self, op: str, value):
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


_SCHEMA_OF = {
    "str": {"type": "string"},
    "int": {"type": "integer"},
    "float": {"type": "number"},
    "bool": {"type": "boolean"},
    "list": {"type": "array", "items": {"type": "string"}},
}

_KIND_WORDS = {
    "str": "a string",
    "int": "an integer",
    "float": "a number",
    "bool": "true or false",
    "list": "a list of strings (or a comma-separated string)",
}


class Op:
    """One operation. ``encoded``: the name of a Workspace method that returns the result's
    JSON text directly (the same bytes as encoding ``method``'s result), for an answer big
    enough that a long-lived workspace gains by encoding it piecewise (see
    :func:`dispatch_json`)."""

    __slots__ = ("name", "method", "params", "doc", "writes", "encoded", "_by_name")

    def __init__(self, name, method, params=(), doc="", writes=False, encoded=None):
        self.name = name
        self.method = method
        self.params = tuple(params)
        self.doc = doc
        self.writes = writes
        self.encoded = encoded
        self._by_name = {}
        for p in self.params:
            self._by_name[p.name] = p
            for alias in p.aliases:
                self._by_name[alias] = p

    def bind(self, raw: dict) -> dict:
        """Check and convert ``raw`` parameters into keyword arguments for the method."""
        by_name = self._by_name
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


_BLANK = r" \t\n\r\f\v"  # values.BLANK in a regex: the class below means the same to Python and ECMAScript
_NOT_BLANK = f"[^{_BLANK}]"
_SPEC = Param(
    "spec", required=True, aliases=("id",), doc="spec ID (partial IDs resolve)", pattern=_NOT_BLANK,
    hint="must not be blank",
)
_OWNER = Param("owner", doc="lease owner (default: CHANT_OWNER, else user@host)")
_TTL = Param(
    "ttl", "float", doc="lease length in seconds (default: scale.locks.ttl)", minimum=0, exclusive=True,
    maximum=MAX_TTL,
)
_TOKEN = Param("token", "int", doc="the lease's fencing token")
_FORCE = Param("force", "bool", False, doc="act even if someone else holds the lease")
_PROJECT = Param("project", doc="only specs of this project")
_QUERY = Param(
    "q", required=True, aliases=("query",), doc="the query (docs/cli.md, Query language)", pattern=_NOT_BLANK,
    hint="must not be blank",
)
_LIMIT = Param("limit", "int", 100, doc="at most this many specs", minimum=0)
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
                Param("status", doc="only this status (ready and blocked are computed)", choices=STATUS_FILTERS,
                      fold=canon_status),
                _LABELS,
                Param("type"),
                _PROJECT,
                Param("fields", "list", doc="only these keys of each spec (default: all of them)",
                      choices=SPEC_FIELDS),
            ),
            doc="active specs in chant order",
            encoded="list_specs_json",
        ),
        Op("show", "show", (_SPEC,), doc="one spec: frontmatter, body and computed state"),
        Op("search", "search", (_QUERY, _LIMIT), doc="query the index (docs/cli.md, Query language)"),
        Op("query", "search", (_QUERY, _LIMIT), doc="the same as search"),
        Op("lint", "lint", (Param("archive", "bool", False, doc="lint archived specs too"),), doc="validate specs"),
        Op("status", "status", doc="counts by status and what needs attention"),
        Op(
            "add",
            "add",
            (
                Param("title", required=True, pattern=rf"^[^\n\r]*[^{_BLANK}][^\n\r]*$", doc="one line",
                      hint="must be one line of text"),
                Param("type", default="code", pattern=r"^[A-Za-z0-9_-]+$", hint="must be letters, digits, '_' or '-'"),
                _LABELS,
                Param("depends_on", "list", pattern=_NOT_BLANK, doc="IDs (partial IDs resolve)",
                      hint="must not hold a blank ID"),
                Param("priority", pattern=r"^(low|normal|high|critical|-?[0-9]+)$",
                      doc="low, normal, high, critical or an integer",
                      hint="must be low, normal, high, critical or an integer"),
                Param("project", pattern=r"^[A-Za-z0-9_][A-Za-z0-9_-]*$", doc="the ID's project prefix",
                      hint="must be letters, digits, '_' and '-'"),
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
        Op("queue_list", "queue_list", (_PROJECT, _LABELS, Param("limit", "int", minimum=0)), doc="the queue, in order"),
        Op(
            "complete",
            "complete",
            (_SPEC, _OWNER, _TOKEN, _FORCE, Param("outcome", default="success", choices=("success", "failure"))),
            doc="mark a spec completed (or failed) and release its lease (fenced by the token)",
            writes=True,
        ),
        Op("index_status", "index_status", doc="the index and spec table"),
        Op("daemon_status", "daemon_status", doc="the daemon's PID, uptime, addresses and counts (daemon only)"),
        Op("index_rebuild", "index_rebuild", doc="rebuild the table and index from the files", writes=True),
    )
}
#: operations that take an owner. Its default is the caller's: the CLI names it (CHANT_OWNER,
#: else user@host) so that a daemon records the owner direct mode would; a request that names
#: none gets the transport's identity of the peer (socket peer credentials, HTTP address)
OWNED = frozenset(name for name, op in OPS.items() if any(p.name == "owner" for p in op.params))


def _bound(name, params) -> tuple[Op, dict]:
    op = OPS.get(name) if isinstance(name, str) else None
    if op is None:
        known = ", ".join(sorted(OPS))
        raise UsageError(f"unknown command {name!r} (known: {known})", cmd=str(name))
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise UsageError(f"{name}: parameters must be an object", op=name)
    return op, op.bind(params)


def dispatch(workspace, name: str, params: dict | None = None):
    """Run operation ``name`` on ``workspace`` with ``params``; returns JSON-able data."""
    op, kwargs = _bound(name, params)
    return getattr(workspace, op.method)(**kwargs)


def dispatch_json(workspace, name: str, params: dict | None = None) -> str:
    """:func:`dispatch`, returning the result as compact ASCII JSON text (what the daemon
    sends): from the operation's ``encoded`` face when it has one."""
    op, kwargs = _bound(name, params)
    if op.encoded is not None:
        return getattr(workspace, op.encoded)(**kwargs)
    import json

    return json.dumps(getattr(workspace, op.method)(**kwargs), separators=(",", ":"))
