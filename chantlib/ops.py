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
from .values import DEFAULT_TYPE, MAX_CLAIM_WAIT, MAX_TTL, SEARCH_LIMIT, SPEC_FIELDS, STATUS_FILTERS, canon_status

__all__ = ["Param", "Op", "Cli", "Http", "OPS", "GROUPS", "lookup", "dispatch", "prepare", "dispatch_json", "PROTOCOL_VERSION"]


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
        "flag",
        "metavar",
        "_match",
    )

    def __init__(self, name, kind="str", default=None, required=False, aliases=(), doc="", *, choices=None,
                 pattern=None, minimum=None, exclusive=False, maximum=None, hint="has a bad form", fold=None, flag=None,
                 metavar=None):
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
        self.flag = flag or name.replace("_", "-")  # the CLI's option: --flag
        self.metavar = metavar  # the CLI's name for its value (a positional's: the first alias, else the name)
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
        assert self.choices is not None  # check() asks only then
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


_SCHEMA_OF: dict[str, dict] = {
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


class Cli:
    """How the ``chant`` command offers an operation: ``path`` is its command words
    (``"lock acquire"``); ``positional`` names the parameters given as bare words, in
    order (the last one may take every remaining word, joined by spaces: ``words``); every
    other parameter is a flag derived from it (``--name``; a ``bool`` is a switch, a
    ``list`` repeats). ``consts`` maps a parameter to a switch that sets it to one value
    (``--failed`` for ``outcome: failure``) instead; ``hidden`` parameters have no flag
    (the command sets them itself). ``switch``: this operation shares ``path`` with
    another, and is the one run when ``--<switch>`` is given (``queue next --claim``).
    ``extra``: switches for the renderer alone, never sent (``(flag, help)``)."""

    __slots__ = ("path", "help", "positional", "words", "consts", "hidden", "switch", "extra")

    def __init__(self, path: str, help: str, *, positional=(), words: bool = False, consts=None, hidden=(),
                 switch: str | None = None, extra=()) -> None:
        self.path = tuple(path.split())
        self.help = help
        self.positional = tuple(positional)
        self.words = words
        self.consts = dict(consts or {})  # param -> (flag, value, help)
        self.hidden = frozenset(hidden)
        self.switch = switch
        self.extra = tuple(extra)


class Http:
    """The REST face of an operation: its methods and route (``{name}`` is a parameter)."""

    __slots__ = ("methods", "route")

    def __init__(self, methods: str, route: str) -> None:
        self.methods = tuple(methods.split())
        self.route = route


class Op:
    """One operation, the whole of its description: everything that offers it (the CLI's
    subcommands, the REST routes, the OpenAPI document, the daemon's scheduling and its cache
    of answers) is made from this entry, and its parameters are checked here, once.

    Effects, what the daemon schedules by:

    - ``specs``: ``"read"`` or ``"write"`` (spec files, the table, the index), or ``None``;
    - ``leases``: ``"read"`` or ``"write"``, or ``None``;
    - ``slow``: may read files or take long: it runs on the daemon's worker thread; the
      others run on its event loop in microseconds (what a worker's lease waits on);
    - ``pure``: its answer depends on the files alone (not on leases, not on the clock): a
      daemon keeps it until a spec changes;
    - ``anytime``: it says nothing about specs and is answered before they are loaded and
      whatever the daemon is busy with (``hello``);
    - ``prepare``: a Workspace method that does the long part of a ``specs: write``
      operation without changing anything another operation reads (a rebuild reads every
      file into a new table; complete writes and syncs its new text to a temp file); the
      method then takes its result and makes the short change. A result with ``discard()``
      is discarded if the operation never ran.

    - ``waits``: the name of a parameter (seconds) for which it may wait for work when there
      is none yet (a long poll: ``queue_claim``'s ``wait``). The daemon never waits inside
      the operation: it runs it without waiting, and again whenever the workspace tells of a
      change that could let it succeed (a spec ready or changed, a lease let go or expired),
      until it succeeds or the time is up, holding no lock in between; in process the
      method waits itself (it polls the files).

    ``encoded``: the name of a Workspace method that returns the result's JSON text
    directly (the same bytes as encoding ``method``'s result), for an answer big enough that
    a long-lived workspace gains by encoding it piecewise (see :func:`dispatch_json`).
    ``cli`` and ``http``: its faces (:class:`Cli`, :class:`Http`), if it has them.
    """

    __slots__ = ("name", "method", "params", "doc", "specs", "leases", "slow", "pure", "anytime", "prepare",
                 "waits", "encoded", "cli", "http", "_by_name")

    def __init__(self, name, method, params=(), doc="", *, specs=None, leases=None, slow=False, pure=False,
                 anytime=False, prepare=None, waits=None, encoded=None, cli=None, http=None):
        self.name = name
        self.method = method
        self.params = tuple(params)
        self.doc = doc
        if specs not in (None, "read", "write") or leases not in (None, "read", "write"):
            raise ValueError(f"{name}: specs and leases are None, 'read' or 'write'")
        self.specs = specs
        self.leases = leases
        self.slow = slow
        self.pure = pure
        self.anytime = anytime
        self.prepare = prepare
        self.waits = waits
        self.encoded = encoded
        self.cli = cli
        self.http = http
        self._by_name = {}
        for p in self.params:
            self._by_name[p.name] = p
            for alias in p.aliases:
                self._by_name[alias] = p
        if waits is not None and (waits not in self._by_name or slow):
            raise ValueError(f"{name}: waits names one of its parameters, and a waiting operation is not slow")

    @property
    def writes(self) -> bool:
        """It changes something (a spec or a lease): never run twice for one request."""
        return self.specs == "write" or self.leases == "write"

    @property
    def owned(self) -> bool:
        """It takes an ``owner``, whose default is the caller's identity."""
        return "owner" in self._by_name

    def check(self, kwargs: dict) -> dict:
        """A library caller's keyword arguments (a Workspace method called directly), checked
        by the same constraints as a request's; ``None`` is left to the method's default."""
        by_name = self._by_name
        for key, value in kwargs.items():
            p = by_name.get(key)
            if p is not None and value is not None:
                kwargs[key] = p.convert(self.name, value)
        return kwargs

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
    "spec", required=True, aliases=("id",), doc="spec ID (a unique part is enough)", pattern=_NOT_BLANK,
    hint="must not be blank",
)
_OWNER = Param("owner", doc="lease owner (default: CHANT_OWNER, else user@host)", metavar="O")
_TTL = Param(
    "ttl", "float", doc="lease length in seconds (default: scale.locks.ttl, 3600)", minimum=0, exclusive=True,
    maximum=MAX_TTL, metavar="S",
)
_TOKEN = Param("token", "int", doc="the lease's fencing token", metavar="N")
_FORCE = Param("force", "bool", False, doc="act even if someone else holds the lease")
_PROJECT = Param("project", doc="only specs of this project", metavar="P")
_QUERY = Param(
    "q", required=True, aliases=("query",), doc="the query (docs/cli.md, Query language)", pattern=_NOT_BLANK,
    hint="must not be blank",
)
_LIMIT = Param("limit", "int", SEARCH_LIMIT, doc="at most this many specs", minimum=0, metavar="N")
_LABELS = Param("labels", "list", aliases=("label",), doc="only specs with any of these labels (repeatable)",
                flag="label", metavar="L")

#: the CLI's command groups (``chant lock ...``): their help
GROUPS = {"lock": "leases on specs", "queue": "the queue of ready work", "index": "the search index",
          "git": "git integration: commits recorded in specs"}

_READ = {"specs": "read", "slow": True}  # the usual effects of a read of specs
_LEASE = {"specs": "read", "leases": "write"}  # and of a lease change (on the loop)

OPS: dict[str, Op] = {
    op.name: op
    for op in (
        Op(
            "hello",
            "hello",
            (Param("protocol", "int", doc="the client's protocol version (the client checks the answer)"),),
            doc="daemon and protocol version, repository root",
            anytime=True,
            http=Http("GET", "/api/hello"),
        ),
        Op(
            "add",
            "add",
            (
                Param("title", required=True, pattern=rf"^[^\n\r]*[^{_BLANK}][^\n\r]*$", doc="one line",
                      hint="must be one line of text"),
                Param("type", default=DEFAULT_TYPE, pattern=r"^[A-Za-z0-9_-]+$", hint="must be letters, digits, '_' or '-'",
                      doc="the spec's type"),
                Param("labels", "list", aliases=("label",), doc="a label (repeatable)", flag="label", metavar="L"),
                Param("depends_on", "list", pattern=_NOT_BLANK, doc="a dependency (repeatable; partial IDs resolve)",
                      hint="must not hold a blank ID", metavar="ID"),
                Param("priority", pattern=r"^(low|normal|high|critical|-?[0-9]+)$",
                      doc="low, normal, high, critical or an integer",
                      hint="must be low, normal, high, critical or an integer"),
                Param("project", pattern=r"^[A-Za-z0-9_][A-Za-z0-9_-]*$",
                      doc="the ID's project prefix (default: project.prefix)",
                      hint="must be letters, digits, '_' and '-'"),
                Param("criteria", "list", doc="an acceptance criterion (repeatable)", flag="criterion",
                      metavar="TEXT"),
                Param("description", doc="a paragraph under the title", metavar="TEXT"),
            ),
            doc="create a spec",
            specs="write", slow=True,
            cli=Cli("add", "create a spec", positional=("title",)),
            http=Http("POST", "/api/specs"),
        ),
        Op(
            "list",
            "list_specs",
            (
                Param("ready", "bool", False, doc="only ready specs (groups left out)"),
                Param("status", doc="only this status: pending, ready, blocked, in_progress, completed, failed, ... "
                      "(ready and blocked are computed)", choices=STATUS_FILTERS, fold=canon_status, metavar="S"),
                _LABELS,
                Param("type", doc="only this type", metavar="T"),
                _PROJECT,
                Param("fields", "list", doc="only these keys of each spec (default: all of them)",
                      choices=SPEC_FIELDS),
                Param("form", default="objects", choices=("objects", "columns"),
                      doc="objects: specs is a list of spec objects; columns: an object of one array per key "
                          "(far less to decode at scale)"),
            ),
            doc="active specs in chant order",
            **_READ, pure=True,
            encoded="list_specs_json",
            cli=Cli("list", "list active specs", hidden=("fields", "form"),
                    extra=(("count", "print only the number of specs"),)),
            http=Http("GET", "/api/specs"),
        ),
        Op("show", "show", (_SPEC,), doc="one spec: frontmatter, body and computed state", **_READ, leases="read",
           cli=Cli("show", "show one spec", positional=("spec",)), http=Http("GET", "/api/specs/{spec}")),
        Op("search", "search", (_QUERY, _LIMIT), doc="query the index (docs/cli.md, Query language)", **_READ,
           pure=True,
           cli=Cli("search", "search specs (see the query language in docs/cli.md)", positional=("q",), words=True),
           http=Http("GET", "/api/search")),
        Op("query", "search", (_QUERY, _LIMIT), doc="the same as search", **_READ, pure=True,
           http=Http("GET", "/api/query")),
        Op("lint", "lint", (Param("archive", "bool", False, doc="lint archived specs too"),
                            Param("specs", "list", aliases=("spec",), flag="spec", metavar="ID",
                                  doc="only these specs and what they break elsewhere (a unique part of an ID "
                                      "is enough; repeatable)", pattern=_NOT_BLANK, hint="must not be blank"),
                            Param("removed", "list", metavar="ID", pattern=_NOT_BLANK, hint="must not be blank",
                                  doc="IDs of spec files that went: report the specs that still name them")),
           doc="validate specs",
           **_READ, pure=True, cli=Cli("lint", "validate specs (exit 1 on errors)"), http=Http("GET", "/api/lint")),
        Op("status", "status", doc="counts by status and what needs attention", **_READ,
           cli=Cli("status", "counts by status, attention, ready queue", extra=(("brief", "one line"),)),
           http=Http("GET", "/api/status")),
        Op(
            "complete",
            "complete",
            (_SPEC, _OWNER, _TOKEN, _FORCE, Param("outcome", default="success", choices=("success", "failure"),
                                                  doc="success, or failure (status failed)")),
            doc="mark a spec completed (or failed) and release its lease (fenced by the token)",
            specs="write", leases="write", slow=True, prepare="prepare_complete",
            cli=Cli("complete", "mark a spec completed (and release its lease)", positional=("spec",),
                    consts={"outcome": ("failed", "failure", "the work failed: set status failed instead")}),
            http=Http("POST", "/api/specs/{spec}/complete"),
        ),
        Op(
            "record_commit",
            "record_commit",
            (
                Param("commit", default="HEAD", doc="the commit: a hash, or any revision git knows (default HEAD)",
                      pattern=r"^[A-Za-z0-9_.~^@{}/:+][A-Za-z0-9_.~^@{}/:+-]*$",
                      hint="must be a revision (a hash, HEAD, HEAD~1, a branch: letters, digits and _.~^@{}/:+-, "
                           "not starting with -)", metavar="REV"),
                Param("subject", doc="its subject (default: asked of git); chant(<id>): ... names the spec",
                      metavar="TEXT"),
                Param("replaces", doc="the hash of the commit it rewrote (amend, rebase): replaced, not kept",
                      pattern=r"^[0-9a-fA-F]{4,64}$", hint="must be a commit hash", metavar="HASH"),
            ),
            doc="record a commit's short hash in the commits: of the spec its subject names (chant(<id>): ...)",
            specs="write", slow=True,
            cli=Cli("git record", "record a commit in the spec its subject names", positional=("commit",)),
            http=Http("POST", "/api/git/commits"),
        ),
        Op("lock_acquire", "lock_acquire", (_SPEC, _OWNER, _TTL, _FORCE), doc="take a lease", **_LEASE,
           cli=Cli("lock acquire", "take the lease on a spec", positional=("spec",)),
           http=Http("GET POST", "/api/lock/acquire/{spec}")),
        Op("lock_release", "lock_release", (_SPEC, _OWNER, _TOKEN, _FORCE), doc="give a lease up", **_LEASE,
           cli=Cli("lock release", "give up a lease", positional=("spec",)),
           http=Http("GET POST", "/api/lock/release/{spec}")),
        Op("lock_renew", "lock_renew", (_SPEC, _OWNER, _TOKEN, _TTL), doc="extend a lease", **_LEASE,
           cli=Cli("lock renew", "extend a lease", positional=("spec",)),
           http=Http("GET POST", "/api/lock/renew/{spec}")),
        Op("lock_status", "lock_status", (_SPEC,), doc="the lease on one spec", specs="read", leases="read",
           cli=Cli("lock status", "show the lease on a spec", positional=("spec",)),
           http=Http("GET", "/api/lock/{spec}")),
        Op("lock_list", "lock_list", doc="live leases", leases="read", cli=Cli("lock list", "list live leases"),
           http=Http("GET", "/api/locks")),
        Op("queue_next", "queue_next", (_PROJECT, _LABELS), doc="the spec a claim would take (a peek)",
           specs="read", leases="read",
           cli=Cli("queue next", "the next spec (--claim takes it)"), http=Http("GET", "/api/queue/next")),
        Op(
            "queue_claim",
            "queue_claim",
            (_OWNER, _TTL, _PROJECT, _LABELS,
             Param("wait", "float", 0.0, doc=f"when nothing is ready, wait up to this many seconds for work (at most "
                   f"{MAX_CLAIM_WAIT:g}); then nothing_ready", minimum=0, maximum=MAX_CLAIM_WAIT, metavar="S")),
            doc="take the next spec with a lease (waiting for one up to wait seconds)",
            **_LEASE, waits="wait",
            cli=Cli("queue next", "take it with a lease", switch="claim"),
            http=Http("GET POST", "/api/queue/claim"),
        ),
        Op("queue_stats", "queue_stats", (_PROJECT, _LABELS),
           doc="the queue's figures: ready, held back by lint, leased, by project",
           specs="read", leases="read",
           cli=Cli("queue stats", "the queue's figures"), http=Http("GET", "/api/queue/stats")),
        Op("queue_list", "queue_list", (_PROJECT, _LABELS, Param("limit", "int", minimum=0, doc="show at most this many (default: all)", metavar="N")),
           doc="the queue, in order", **_READ, leases="read",
           cli=Cli("queue list", "the queue in order"), http=Http("GET", "/api/queue")),
        Op("index_status", "index_status", doc="the index and spec table", **_READ,
           cli=Cli("index status", "size and freshness"), http=Http("GET", "/api/index")),
        Op("index_rebuild", "index_rebuild", doc="rebuild the table and index from the files",
           specs="write", slow=True, prepare="prepare_rebuild",
           cli=Cli("index rebuild", "rebuild from the files"), http=Http("POST", "/api/index/rebuild")),
        Op("daemon_status", "daemon_status", doc="the daemon's PID, uptime, addresses and counts (daemon only)",
           anytime=True, http=Http("GET", "/api/daemon")),
    )
}
#: operations that take an owner. Its default is the caller's: the CLI names it (CHANT_OWNER,
#: else user@host) so that a daemon records the owner direct mode would; a request that names
#: none gets the transport's identity of the peer (socket peer credentials, HTTP address)
OWNED = frozenset(name for name, op in OPS.items() if op.owned)


def lookup(name) -> Op:
    """The operation called ``name``; an unknown one is a :class:`~chantlib.errors.UsageError`."""
    op = OPS.get(name) if isinstance(name, str) else None
    if op is None:
        known = ", ".join(sorted(OPS))
        raise UsageError(f"unknown command {name!r} (known: {known})", cmd=str(name))
    return op


_BY_METHOD: dict[str, Op] = {}


def for_method(method: str) -> Op | None:
    """The operation a Workspace method serves (the first, when several share it)."""
    if not _BY_METHOD:
        for op in OPS.values():
            _BY_METHOD.setdefault(op.method, op)
            if op.encoded is not None:
                _BY_METHOD.setdefault(op.encoded, op)
    return _BY_METHOD.get(method)


def _bound(name, params) -> tuple[Op, dict]:
    op = lookup(name)
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise UsageError(f"{name}: parameters must be an object", op=name)
    return op, op.bind(params)


def dispatch(workspace, name: str, params: dict | None = None, *, prepared=None):
    """Run operation ``name`` on ``workspace`` with ``params``; returns JSON-able data.

    ``prepared``: what :func:`prepare` returned for the same call, for an operation with a
    ``prepare`` step (without it, the method prepares for itself)."""
    op, kwargs = _bound(name, params)
    if prepared is not None:
        kwargs["prepared"] = prepared
    return getattr(workspace, op.method)(**kwargs)


def prepare(workspace, name: str, params: dict | None = None):
    """The long part of operation ``name`` (its ``prepare`` method), which changes nothing
    another operation reads; hand its result to :func:`dispatch` as ``prepared``."""
    op, kwargs = _bound(name, params)
    if op.prepare is None:
        raise ValueError(f"{name} has no prepare step")
    return getattr(workspace, op.prepare)(**kwargs)


def dispatch_json(workspace, name: str, params: dict | None = None) -> str:
    """:func:`dispatch`, returning the result as compact ASCII JSON text (what the daemon
    sends): from the operation's ``encoded`` face when it has one."""
    op, kwargs = _bound(name, params)
    if op.encoded is not None:
        return getattr(workspace, op.encoded)(**kwargs)
    import json

    return json.dumps(getattr(workspace, op.method)(**kwargs), separators=(",", ":"))
