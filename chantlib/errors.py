"""The one error tree of chant.

Every failure a caller can act on is a :class:`ChantError`. Each class carries

* ``code``: the stable wire code (socket and HTTP error envelopes, ``--json`` output);
* ``http_status``: the status the HTTP API answers with;
* ``exit_code``: the CLI's exit status.

::

    ChantError                     error              500  1
    ├── UsageError                 bad_params         400  2
    │   ├── BadRequest             bad_request        400  2
    │   ├── MethodNotAllowed       method_not_allowed 405  2
    │   ├── QuerySyntaxError       bad_query          400  2
    │   ├── AmbiguousSpecId        ambiguous_id       409  2
    │   └── InvalidValue           invalid_value      400  2
    ├── NotFound                   not_found          404  4
    │   ├── SpecNotFound           not_found          404  4
    │   ├── NotInitialized         not_initialized    404  4
    │   └── LockNotFound           not_locked         404  4
    ├── Conflict                   conflict           409  3
    │   ├── LockHeld               already_locked     409  3
    │   ├── StaleToken             stale_token        409  3
    │   ├── NotHolder              not_holder         409  3
    │   └── AlreadyExists          already_exists     409  3
    ├── NothingReady               nothing_ready      404  5
    ├── Unavailable                unavailable        503  1
    │   └── Loading                loading            503  1
    ├── SpecParseError             parse_error        422  1
    └── StorageError               io_error           500  1

OS errors are translated to :class:`StorageError` in :mod:`chantlib.store` and the lock
backends; tantivy's errors are translated in :mod:`chantlib.index`. :func:`error_envelope`
is the one function that turns an error into the JSON shape both transports send.
"""

from __future__ import annotations

__all__ = [
    "ChantError",
    "UsageError",
    "BadRequest",
    "MethodNotAllowed",
    "QuerySyntaxError",
    "AmbiguousSpecId",
    "InvalidValue",
    "NotFound",
    "SpecNotFound",
    "UnknownSpecRef",
    "NotInitialized",
    "LockNotFound",
    "Conflict",
    "LockHeld",
    "StaleToken",
    "SpecTimedOut",
    "NotHolder",
    "AlreadyExists",
    "NothingReady",
    "Unavailable",
    "Loading",
    "Unauthorized",
    "SpecParseError",
    "StorageError",
    "GitError",
    "error_envelope",
    "status_for_code",
    "EXIT_OK",
    "EXIT_ERROR",
    "EXIT_USAGE",
    "EXIT_CONFLICT",
    "EXIT_NOT_FOUND",
    "EXIT_NOTHING_READY",
]

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_CONFLICT = 3
EXIT_NOT_FOUND = 4
EXIT_NOTHING_READY = 5


class ChantError(Exception):
    """Root of every error chant raises on purpose."""

    code = "error"
    http_status = 500
    exit_code = EXIT_ERROR

    def __init__(self, message: str, **details: object) -> None:
        super().__init__(message)
        self.message = message
        self.details = {k: v for k, v in details.items() if v is not None}

    def to_dict(self) -> dict:
        out: dict = {"code": self.code, "message": self.message}
        if self.details:
            out["details"] = self.details
        return out

    #: attribute -> the detail it is kept in: what :meth:`from_dict` restores, so that an
    #: error received over a transport reads like the one raised in process
    ATTRS: dict[str, str] = {}

    @classmethod
    def from_dict(cls, data: dict) -> ChantError:
        """Rebuild an error received over a transport (the client side of the envelope): the
        class the daemon raised (a code shared by several, ``not_found``, is told apart by its
        details: a spec's is :class:`SpecNotFound`), with its attributes."""
        code = data.get("code", "error")
        details = data.get("details") or {}
        klass = _BY_CODE.get(code, ChantError)
        for refined in _REFINED.get(code, ()):
            if all(key in details for key in refined.ATTRS.values()):
                klass = refined
                break
        err = klass.__new__(klass)
        ChantError.__init__(err, str(data.get("message", code)), **details)
        if klass is ChantError:
            err.code = code
        for attr, key in klass.ATTRS.items():
            setattr(err, attr, details.get(key))
        return err


# "You asked for something that cannot be done as asked."
class UsageError(ChantError):
    code = "bad_params"
    http_status = 400
    exit_code = EXIT_USAGE


class BadRequest(UsageError):
    """A request line or body that is not a JSON object with a ``cmd`` (the transports)."""

    code = "bad_request"


class MethodNotAllowed(UsageError):
    """An HTTP method the path does not take (the answer carries ``Allow``)."""

    code = "method_not_allowed"
    http_status = 405


class QuerySyntaxError(UsageError):
    code = "bad_query"

    def __init__(self, message: str, *, query: str | None = None, position: int | None = None) -> None:
        super().__init__(message, query=query, position=position)
        self.query = query
        self.position = position


class AmbiguousSpecId(UsageError):
    """A partial ID that matches several specs: the request is well formed, the repository
    makes it ambiguous (HTTP 409), and on the command line it is a usage error (exit 2)."""

    code = "ambiguous_id"
    http_status = 409

    def __init__(self, partial: str, matches: list[str]) -> None:
        shown = ", ".join(matches[:10]) + (f", ... ({len(matches)} in all)" if len(matches) > 10 else "")
        super().__init__(f"Ambiguous spec ID '{partial}'. Matches: {shown}", partial=partial, matches=matches)
        self.partial = partial
        self.matches = matches


class InvalidValue(UsageError):
    code = "invalid_value"


class NotFound(ChantError):
    code = "not_found"
    http_status = 404
    exit_code = EXIT_NOT_FOUND


def shown(text: str, limit: int = 80) -> str:
    """``text`` for a message: cut when long (an error never echoes a megabyte back)."""
    return text if len(text) <= limit else f"{text[: limit - 20]}... ({len(text):,} characters)"


class SpecNotFound(NotFound):
    ATTRS = {"partial": "spec"}

    def __init__(self, partial: str) -> None:
        super().__init__(f"Spec not found: {shown(partial)}", spec=shown(partial))
        self.partial = partial


class UnknownSpecRef(SpecNotFound):
    """A commit whose subject names (``chant(<id>): ...``) a spec that does not exist."""

    ATTRS = {"partial": "spec", "commit": "commit"}

    def __init__(self, partial: str, commit: str) -> None:
        NotFound.__init__(self, f"commit {commit} names chant({shown(partial)}), but no spec has that ID",
                          spec=shown(partial), commit=commit)
        self.partial = partial
        self.commit = commit


class NotInitialized(NotFound):
    code = "not_initialized"


class LockNotFound(NotFound):
    code = "not_locked"
    ATTRS = {"spec_id": "spec"}

    def __init__(self, spec_id: str) -> None:
        super().__init__(f"Spec {spec_id} is not locked", spec=spec_id)
        self.spec_id = spec_id


class Conflict(ChantError):
    code = "conflict"
    http_status = 409
    exit_code = EXIT_CONFLICT


class LockHeld(Conflict):
    code = "already_locked"
    ATTRS = {"spec_id": "spec", "holder": "holder", "expires_at": "expires_at", "token": "token"}

    def __init__(self, spec_id: str, holder: str, expires_at: str | None = None, token: int | None = None) -> None:
        until = f" until {expires_at}" if expires_at else ""
        super().__init__(
            f"Spec {spec_id} is already locked by {holder}{until}",
            spec=spec_id,
            holder=holder,
            expires_at=expires_at,
            token=token,
        )
        self.spec_id = spec_id
        self.holder = holder
        self.expires_at = expires_at
        self.token = token


class StaleToken(Conflict):
    code = "stale_token"


class SpecTimedOut(Conflict):
    """A renewal past ``scale.limits.spec_timeout``: the lease was held as long as a spec may
    be; it is left to expire, and the spec goes back to the queue."""

    code = "spec_timeout"
    ATTRS = {"spec_id": "spec"}

    def __init__(self, spec_id: str, timeout: float, acquired_at: str) -> None:
        super().__init__(f"the lease on {spec_id} was taken at {acquired_at}: scale.limits.spec_timeout "
                         f"({timeout:g} s) is used up, so it is not renewed", spec=spec_id, timeout=timeout)
        self.spec_id = spec_id


class NotHolder(Conflict):
    """A release or renew by someone who does not hold the lease (and did not force it)."""

    code = "not_holder"


class AlreadyExists(Conflict):
    code = "already_exists"


class NothingReady(ChantError):
    code = "nothing_ready"
    http_status = 404
    exit_code = EXIT_NOTHING_READY


class Unavailable(ChantError):
    """The service cannot answer now (no daemon, shutting down, not ready)."""

    code = "unavailable"
    http_status = 503


class Loading(Unavailable):
    """The daemon has not finished loading the specs: it answers nothing about them yet.

    Refused before anything was done, so a client may always send the request again
    (``details.loading`` says how far the load is: ``phase``, ``done``, ``total``).
    """

    code = "loading"


class Unauthorized(ChantError):
    """The HTTP API wants a bearer token this request did not bring."""

    code = "unauthorized"
    http_status = 401


class SpecParseError(ChantError):
    code = "parse_error"
    http_status = 422


class GitError(ChantError):
    """Git refused what was asked of it: not a repository, no such revision (HTTP 422)."""

    code = "git_error"
    http_status = 422


class StorageError(ChantError):
    code = "io_error"

    @classmethod
    def from_os_error(cls, exc: OSError, action: str, path: object) -> StorageError:
        reason = exc.strerror or str(exc)
        return cls(f"cannot {action} {path}: {reason}", path=str(path), errno=exc.errno)


_BY_CODE: dict[str, type[ChantError]] = {}
_LEVEL: list[type[ChantError]] = [ChantError]
while _LEVEL:  # every class of the tree, a code's most general class first (NotFound before SpecNotFound)
    _NEXT: list[type[ChantError]] = []
    for _klass in _LEVEL:
        if _klass is not ChantError:
            _BY_CODE.setdefault(_klass.code, _klass)
        _NEXT.extend(_klass.__subclasses__())
    _LEVEL = _NEXT
#: code -> subclasses that share it, told apart by their details (see ChantError.from_dict)
_REFINED: dict[str, tuple] = {"not_found": (UnknownSpecRef, SpecNotFound)}


def status_for_code(code: str) -> int:
    """The HTTP status of an error code (unknown codes 500)."""
    klass = _BY_CODE.get(code)
    return klass.http_status if klass is not None else 500


def error_envelope(exc: BaseException) -> dict:
    """The error object both transports send: ``{"code", "message", "details"?}``.

    Errors that are not :class:`ChantError` are internal faults: they get the code
    ``internal`` and a message naming the exception type, never a traceback.
    """
    if isinstance(exc, ChantError):
        return exc.to_dict()
    return {"code": "internal", "message": f"internal error: {type(exc).__name__}: {exc}"}
