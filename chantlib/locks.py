"""LockTable: leases that keep two agents off one spec (ARCHITECTURE.md, "Leases").

The contract, decided once in :class:`LockTable` and kept by every backend:

* ``acquire(spec, owner, ttl)`` gives a :class:`Lease` or raises
  :class:`~chantlib.errors.LockHeld` naming the holder. The same owner acquiring again gets
  its lease back unchanged (unless ``reentrant=False``, which the queue uses so that two
  workers sharing an owner name never take one spec twice).
* ``token`` is a fencing number that only grows, across restarts, over all specs.
* ``renew`` extends a live lease; ``release`` needs the token, the same owner, or ``force``.
  A stale token is refused (:class:`~chantlib.errors.StaleToken`).
* An expired lease, or one bound to a process on this host that has died, is free to take;
  reclaiming it counts an expiration.

Backends only store: :class:`FileLockTable` keeps one file per lease in ``.chant/.locks/``
(created with a hard link, which fails if the name exists, inside a ``filelock`` critical
section; the token counter is a file of its own) and reads upstream chant's bare-PID lock
files as leases held while that PID lives. :class:`MemoryLockTable` keeps a dict, for the
daemon. Both take a ``clock`` (seconds since the epoch) so expiry is tested without sleeping.
"""

from __future__ import annotations

import errno
import json
import os
import threading
import time

from .errors import Conflict, LockHeld, LockNotFound, NotHolder, StaleToken, StorageError, UsageError
from .values import MAX_TTL

TYPE_CHECKING = False  # no typing import at run time; mypy reads the block
if TYPE_CHECKING:
    from filelock import BaseFileLock

__all__ = ["Lease", "LockTable", "FileLockTable", "MemoryLockTable", "format_time", "pid_alive"]

_HOST: str | None = None


def this_host() -> str:
    global _HOST
    if _HOST is None:
        import socket

        _HOST = socket.gethostname()
    return _HOST


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except (OSError, OverflowError):  # OverflowError: not a PID this system can have
        return False
    # a zombie has exited; only its parent has not collected it yet
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
        return stat[stat.rindex(b")") + 2 : stat.rindex(b")") + 3] != b"Z"
    except (OSError, ValueError):
        return True


def format_time(ts: float | None) -> str | None:
    """UTC ISO 8601 with milliseconds: ``2026-01-24T21:49:10.250Z``."""
    if ts is None:
        return None
    if not -62135596800.0 <= ts < 253402300800.0:  # outside years 1..9999 (a damaged lock file)
        return "9999-12-31T23:59:59.999Z" if ts > 0 else "0001-01-01T00:00:00.000Z"
    whole = int(ts // 1)
    ms = int(round((ts - whole) * 1000))
    if ms == 1000:
        whole, ms = whole + 1, 0
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{ms:03d}Z"


class Lease:
    """A lease on one spec. ``expires_at`` is ``None`` only for upstream's bare-PID locks."""

    __slots__ = ("spec", "owner", "token", "acquired_at", "expires_at", "host", "pid")

    def __init__(self, spec, owner, token, acquired_at, expires_at, host=None, pid=None):
        self.spec = spec
        self.owner = owner
        self.token = token
        self.acquired_at = acquired_at
        self.expires_at = expires_at
        self.host = host
        self.pid = pid

    def expired(self, now: float) -> bool:
        # written "not now <" so that a NaN read from a damaged file counts as expired
        return self.expires_at is not None and not now < self.expires_at

    def dead(self) -> bool:
        """Bound to a process on this host that no longer runs."""
        if self.pid is None or (self.host is not None and self.host != this_host()):
            return False
        return not pid_alive(self.pid)

    def live(self, now: float) -> bool:
        return not self.expired(now) and not self.dead()

    def to_dict(self) -> dict:
        """The wire form (times as UTC ISO 8601)."""
        out = {
            "spec": self.spec,
            "owner": self.owner,
            "token": self.token,
            "acquired_at": format_time(self.acquired_at),
            "expires_at": format_time(self.expires_at),
        }
        if self.pid is not None:
            out["pid"] = self.pid
            out["host"] = self.host
        return out

    def to_record(self) -> dict:
        """The stored form (times as floats)."""
        return {
            "spec": self.spec,
            "owner": self.owner,
            "token": self.token,
            "acquired_at": self.acquired_at,
            "expires_at": self.expires_at,
            "host": self.host,
            "pid": self.pid,
        }

    @classmethod
    def from_record(cls, data: dict) -> Lease:
        return cls(
            str(data["spec"]),
            str(data["owner"]),
            int(data["token"]),
            float(data["acquired_at"]),
            None if data.get("expires_at") is None else float(data["expires_at"]),
            data.get("host"),
            None if data.get("pid") is None else int(data["pid"]),
        )

    def replace(self, **changes) -> Lease:
        values = {name: getattr(self, name) for name in self.__slots__}
        values.update(changes)
        return Lease(**values)

    def __eq__(self, other) -> bool:
        return isinstance(other, Lease) and all(getattr(self, n) == getattr(other, n) for n in self.__slots__)

    def __repr__(self) -> str:
        return f"Lease({self.spec!r}, owner={self.owner!r}, token={self.token})"


class LockTable:
    """The lease contract. Subclasses provide storage; the rules live here.

    Use :meth:`file` or :meth:`memory` to make one.
    """

    default_ttl = 3600.0

    def __init__(self, *, clock=time.time, default_ttl: float | None = None) -> None:
        self.clock = clock
        if default_ttl is not None:
            self.default_ttl = float(default_ttl)
        self._stats = {"acquired": 0, "conflicts": 0, "released": 0, "expired": 0, "renewed": 0}
        #: callables told of the lease changes made through this table, once its critical
        #: section is left: ``fn([(kind, lease), ...])``, ``kind`` one of ``acquired``,
        #: ``released``, ``renewed``, ``expired`` (an expired lease freed: by a sweep, a release
        #: with force, or an acquire that takes it). A listener must not raise. A
        #: :class:`~chantlib.workspace.Workspace` turns them into its events.
        self.listeners: list = []

    @staticmethod
    def file(path: str, **kwargs) -> FileLockTable:
        return FileLockTable(path, **kwargs)

    @staticmethod
    def memory(**kwargs) -> MemoryLockTable:
        return MemoryLockTable(**kwargs)

    # storage, provided by backends; all called inside _critical()

    def _critical(self):
        raise NotImplementedError

    def _read(self, spec: str) -> Lease | None:
        raise NotImplementedError

    def _create(self, lease: Lease) -> None:
        raise NotImplementedError

    def _replace(self, lease: Lease) -> None:
        raise NotImplementedError

    def _delete(self, spec: str) -> None:
        raise NotImplementedError

    def _next_token(self) -> int:
        raise NotImplementedError

    def _all(self) -> list[Lease]:
        raise NotImplementedError

    def critical(self):
        """The table's critical section, re-entrant: hold it to act on a lease and on what
        it guards (a spec write) as one step."""
        return self._critical()

    def check_writable(self) -> None:
        """Raise :class:`Conflict` if this table may not write now (the file backend while a
        daemon owns its folder); a writer that does more than a lease change checks first."""

    # the contract

    def _ttl(self, ttl) -> float:
        if ttl is None:
            return self.default_ttl
        try:
            ttl = float(ttl)
        except (TypeError, ValueError):
            raise UsageError(f"ttl must be a number of seconds, got {ttl!r}") from None
        if not ttl > 0 or ttl == float("inf"):
            raise UsageError(f"ttl must be a positive number of seconds, got {ttl!r}")
        if ttl > MAX_TTL:
            raise UsageError(f"ttl must be at most {MAX_TTL} seconds (ten years), got {ttl!r}")
        return ttl

    def acquire(
        self,
        spec: str,
        owner: str,
        ttl: float | None = None,
        *,
        force: bool = False,
        reentrant: bool = True,
        pid: int | None = None,
    ) -> Lease:
        """Take the lease on ``spec`` for ``owner`` for ``ttl`` seconds.

        ``pid`` binds the lease to a process of this host: it is stale once that process
        dies. ``force`` takes over a live lease held by someone else (its token goes stale).
        """
        if not owner:
            raise UsageError("a lease needs an owner")
        ttl = self._ttl(ttl)
        ended = None  # the lease this one replaces: ("expired" | "released", lease)
        with self._critical():
            now = self.clock()
            current = self._read(spec)
            if current is not None:
                if current.live(now):
                    if current.owner == owner and reentrant and not force:
                        return current
                    if not force:
                        self._stats["conflicts"] += 1
                        raise LockHeld(spec, current.owner, format_time(current.expires_at), current.token)
                    ended = ("released", current)  # taken over by force: it ends here
                else:
                    self._stats["expired"] += 1
                    ended = ("expired", current)
            # the token first: a backend that lost its counter rebuilds it from the leases it
            # stores, this one included
            lease = Lease(spec, owner, self._next_token(), now, now + ttl, this_host() if pid else None, pid)
            if current is not None:
                self._delete(spec)
            self._create(lease)
            self._stats["acquired"] += 1
        if self.listeners:
            self._tell(([ended] if ended is not None else []) + [("acquired", lease)])
        return lease

    def _tell(self, changes: list) -> None:
        for listener in list(self.listeners):
            listener(changes)

    def _held(self, spec: str, now: float) -> Lease:
        current = self._read(spec)
        if current is None:
            raise LockNotFound(spec)
        return current

    def _authorise(self, current: Lease, owner: str | None, token: int | None, action: str) -> None:
        if token is not None:
            if int(token) != current.token:
                raise StaleToken(
                    f"stale token {token} for {current.spec}: the lease now has token {current.token}",
                    spec=current.spec,
                    token=int(token),
                    current_token=current.token,
                )
            return
        # a renewal is never forced: only the holder extends a lease
        ways = "its token or the same owner" if action == "renew" else "its token, the same owner, or force"
        if owner is None:
            raise UsageError(f"{action} needs the lease's {ways.replace('its token', 'token')}")
        if owner != current.owner:
            raise NotHolder(
                f"Spec {current.spec} is locked by {current.owner}, not {owner}; {action} needs {ways}",
                spec=current.spec,
                holder=current.owner,
            )

    def release(self, spec: str, *, owner: str | None = None, token: int | None = None, force: bool = False) -> Lease:
        """Give up the lease on ``spec``; returns the lease that was released.

        An expired lease is not held any more: releasing it is refused like renewing it
        (``stale_token``; ``not_locked`` once a sweep has removed it), whichever backend
        keeps it; ``force`` removes it."""
        with self._critical():
            now = self.clock()
            current = self._held(spec, now)
            if not force:
                self._authorise(current, owner, token, "release")
                self._refuse_expired(current, now)
            kind = "released" if current.live(now) else "expired"
            self._stats[kind] += 1
            self._delete(spec)
        if self.listeners:
            self._tell([(kind, current)])
        return current

    def renew(
        self, spec: str, *, owner: str | None = None, token: int | None = None, ttl: float | None = None
    ) -> Lease:
        """Extend a live lease to ``now + ttl``; the token stays the same."""
        ttl = self._ttl(ttl)
        with self._critical():
            now = self.clock()
            current = self._held(spec, now)
            self._authorise(current, owner, token, "renew")
            self._refuse_expired(current, now)
            lease = current.replace(expires_at=now + ttl)
            self._replace(lease)
            self._stats["renewed"] += 1
        if self.listeners:
            self._tell([("renewed", lease)])
        return lease

    def _refuse_expired(self, current: Lease, now: float) -> None:
        if not current.live(now):
            raise StaleToken(
                f"the lease on {current.spec} expired at {format_time(current.expires_at)}; acquire it again",
                spec=current.spec,
                token=current.token,
            )

    def check(self, spec: str, token: int) -> Lease:
        """The live lease on ``spec`` if ``token`` is its token; else :class:`StaleToken`.

        Writes made on behalf of a lease holder call this first (fencing).
        """
        with self._critical():
            now = self.clock()
            current = self._read(spec)
            if current is None or not current.live(now) or current.token != int(token):
                raise StaleToken(f"token {token} does not hold a live lease on {spec}", spec=spec, token=int(token))
            return current

    def get(self, spec: str) -> Lease | None:
        """The live lease on ``spec``, or ``None``."""
        with self._critical():
            current = self._read(spec)
            return current if current is not None and current.live(self.clock()) else None

    def leases(self) -> list[Lease]:
        """Every live lease, by spec."""
        with self._critical():
            now = self.clock()
            return sorted((lease for lease in self._all() if lease.live(now)), key=lambda lease: lease.spec)

    def held_specs(self) -> set[str]:
        return {lease.spec for lease in self.leases()}

    def sweep(self) -> list[Lease]:
        """Remove expired and dead leases (each counts as an expiration); returns them."""
        with self._critical():
            now = self.clock()
            gone = [lease for lease in self._all() if not lease.live(now)]
            for lease in gone:
                self._delete(lease.spec)
                self._stats["expired"] += 1
        if gone and self.listeners:
            self._tell([("expired", lease) for lease in gone])
        return gone

    def statistics(self) -> dict:
        """Counters since this table was made, and the live lease count."""
        out = dict(self._stats)
        out["active"] = len(self.leases())
        return out


class MemoryLockTable(LockTable):
    """Leases in a dict (the daemon's table). ``start_token``: the last token ever issued.

    ``persist_dir`` makes the table survive a crash. It starts from the leases and fencing
    counter found there (the file backend's format, ``.chant/.locks/``) and owns that folder
    while it lives: every change is appended to ``.journal`` before the call returns (one
    ``write``, no fsync: a killed process loses nothing, only a power cut could), and
    :meth:`compact` folds the journal into the lease files (the daemon does it every few
    seconds and on its way out; a restart does it first). The file backend reads the journal
    too, so direct mode sees these leases even after a ``kill -9``. Tokens are reserved in
    blocks of ``token_block``, so the counter file is written once per block, and a restart,
    or the file backend taking over, always continues above every token handed out.
    """

    def __init__(
        self, *, start_token: int = 0, persist_dir: str | None = None, token_block: int = 1000, **kwargs
    ) -> None:
        super().__init__(**kwargs)
        self._leases: dict[str, Lease] = {}
        self._token = int(start_token)
        self._mutex = threading.RLock()
        self._files: FileLockTable | None = None  # the folder it owns (persist_dir)
        self._journal: int | None = None  # the descriptor of that folder's .journal, while owned
        self._touched: set[str] = set()
        self._reserved = self._token
        self._block = max(1, int(token_block))
        if persist_dir is not None:
            files = FileLockTable(persist_dir, durable=False)
            files.ensure_dir()
            # under the file backend's lock: a direct-mode write either ends before this (and
            # is loaded below) or starts after the journal is owned (and is refused)
            with files.critical():
                self._journal = files.own_journal()  # a second owner is refused here
                files.fold_journal(self._journal)  # what a killed owner left, into the lease files
                for lease in files.stored():
                    self._leases[lease.spec] = lease
                    self._token = max(self._token, lease.token)
                self._token = max(self._token, files.last_token)
            self._reserved = self._token
            self._files = files

    def _critical(self):
        return self._mutex

    def _read(self, spec):
        return self._leases.get(spec)

    def _log(self, entry: dict) -> None:
        journal, files = self._journal, self._files
        assert journal is not None and files is not None  # called only while the folder is owned
        line = (json.dumps(entry, separators=(",", ":")) + "\n").encode("utf-8")
        try:
            written = os.write(journal, line)
            if written != len(line):  # a full disk: take the piece back, the journal holds whole lines
                os.ftruncate(journal, os.fstat(journal).st_size - written)
                raise OSError(errno.ENOSPC, f"wrote {written} of {len(line)} bytes")
        except OSError as exc:
            raise StorageError.from_os_error(exc, "append to", files.journal_path) from None

    def _create(self, lease):
        if self._journal is not None:
            self._log({"put": lease.to_record()})
            self._touched.add(lease.spec)
        self._leases[lease.spec] = lease

    _replace = _create

    def _delete(self, spec):
        if self._journal is not None:
            self._log({"del": spec})
            self._touched.add(spec)
        self._leases.pop(spec, None)

    def compact(self) -> int:
        """Fold the journal into the lease files and empty it; returns the specs written."""
        with self._mutex:
            files = self._files
            if self._journal is None or not self._touched:
                return 0
            assert files is not None  # set with the journal
            done = 0
            for spec in sorted(self._touched):  # a failed write leaves it (and the journal) for next time
                lease = self._leases.get(spec)
                if lease is None:
                    files.remove_file(spec)
                else:
                    files.put_file(lease)
                self._touched.discard(spec)
                done += 1
            os.ftruncate(self._journal, 0)
            return done

    def close(self) -> None:
        """Compact and let go of the folder (the daemon's last step)."""
        with self._mutex:
            if self._journal is not None:
                assert self._files is not None  # set with the journal
                self.compact()
                os.unlink(self._files.journal_path)  # while we still hold it: nothing left to fold
                os.close(self._journal)
                self._journal = None

    def _next_token(self):
        if self._files is not None and self._token >= self._reserved:
            self._files.write_fence(self._token + self._block)
            self._reserved = self._token + self._block
        self._token += 1
        return self._token

    def _all(self):
        return list(self._leases.values())

    @property
    def last_token(self) -> int:
        return self._token

    def snapshot(self) -> dict:
        with self._mutex:
            return {"token": self._token, "leases": [lease.to_record() for lease in self._leases.values()]}

    def restore(self, data: dict) -> None:
        with self._mutex:
            self._token = max(self._token, int(data.get("token", 0)))
            for record in data.get("leases", ()):
                lease = Lease.from_record(record)
                self._leases[lease.spec] = lease
                self._token = max(self._token, lease.token)


_FENCE = ".fence"
_JOURNAL = ".journal"
_MUTEX = ".table.lock"
_UNREADABLE_GRACE = 60.0


class FileLockTable(LockTable):
    """Leases as files in ``path`` (``.chant/.locks/``), safe across processes."""

    def __init__(self, path: str, *, durable: bool = True, **kwargs) -> None:
        super().__init__(**kwargs)
        self.path = path
        self.durable = durable
        self._thread_mutex = threading.RLock()
        self._filelock: BaseFileLock | None = None  # made by the first _enter

    # The folder's storage. The lease rules (LockTable) call the hooks below; a memory table
    # that owns this folder (the daemon's) loads from it and folds its journal into it with
    # the public methods: raw reads and writes that apply no rule, for that owner only.

    def ensure_dir(self) -> None:
        """Create the folder (mode 0700) if it is not there."""
        from .store import private_dir

        private_dir(self.path)

    def _critical(self):
        return _Section(self._enter, self._leave)

    def _enter(self) -> None:
        """In-process mutex, then the cross-process file lock (``filelock``)."""
        self._thread_mutex.acquire()
        try:
            if self._filelock is None:
                from filelock import FileLock

                self.ensure_dir()
                self._filelock = FileLock(os.path.join(self.path, _MUTEX), mode=0o600, thread_local=False)
            self._filelock.acquire()
        except OSError as exc:
            self._thread_mutex.release()
            raise StorageError.from_os_error(exc, "lock", self.path) from None
        except BaseException:
            self._thread_mutex.release()
            raise

    def _leave(self) -> None:
        try:
            assert self._filelock is not None  # _enter made it
            self._filelock.release()
        finally:
            self._thread_mutex.release()

    def _lease_path(self, spec: str) -> str:
        if "/" in spec or spec.startswith(".") or not spec:
            raise UsageError(f"not a spec ID: {spec!r}")
        return os.path.join(self.path, f"{spec}.lock")

    def _parse(self, spec: str, raw: bytes, mtime: float) -> Lease:
        text = raw.decode("utf-8", "replace").strip()
        if text.isascii() and text.isdigit() and len(text) < 20:
            # upstream chant: a bare PID (a 64-bit number at most), held while that process lives
            pid = int(text)
            return Lease(spec, f"pid {pid} (chant)", 0, mtime, None, None, pid)
        try:
            lease = Lease.from_record(json.loads(text))
        except (ValueError, KeyError, TypeError, OverflowError):
            # unreadable: honour it briefly (a writer that is not us may be mid-write)
            return Lease(spec, "unknown (unreadable lock file)", 0, mtime, mtime + _UNREADABLE_GRACE)
        # the file name says which spec a lease is on: a copied or renamed file must never
        # make a sweep or a release act on another spec's file
        return lease if lease.spec == spec else lease.replace(spec=spec)

    # the journal of a memory table that owns (or owned) this folder

    @property
    def journal_path(self) -> str:
        return os.path.join(self.path, _JOURNAL)

    def _journal(self) -> dict[str, Lease | None]:
        """spec -> the journal's last word on it (``None``: released). Empty if no journal."""
        try:
            with open(self.journal_path, "rb") as fh:
                raw = fh.read()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise StorageError.from_os_error(exc, "read", self.journal_path) from None
        out: dict[str, Lease | None] = {}
        for line in raw.split(b"\n"):
            if not line:
                continue
            try:
                entry = json.loads(line)
                if "put" in entry:
                    lease = Lease.from_record(entry["put"])
                    out[lease.spec] = lease
                else:
                    out[str(entry["del"])] = None
            except (ValueError, KeyError, TypeError, OverflowError):
                continue  # a torn line (its writer killed in the middle of it): the rest still counts
        return out

    def own_journal(self) -> int:
        """Open the journal for appending and hold it (flock) for the life of the fd;
        :class:`Conflict` when another process holds it."""
        import fcntl

        try:
            fd = os.open(self.journal_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        except OSError as exc:
            raise StorageError.from_os_error(exc, "open", self.journal_path) from None
        try:
            st = os.fstat(fd)
            if st.st_uid == os.getuid() and st.st_mode & 0o077:
                os.fchmod(fd, 0o600)  # made by an older version: ours alone from now on
        except OSError:
            pass
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise Conflict(
                f"the daemon of this repository owns its leases ({self.path}) while it runs: lease changes "
                "go through it (from a script: chantlib.connect(root)); if it does not answer, see "
                "`chant daemon status`, or stop it with `chant daemon stop`; if no daemon runs, another "
                f"process holds {self.journal_path} (`fuser -v` names it)",
                path=self.path,
            ) from None
        os.set_inheritable(fd, False)
        return fd

    def fold_journal(self, fd: int) -> None:
        """Write the journal's entries to the lease files and empty it (its owner, or a
        process that found it unowned and holds it through ``fd``, does this)."""
        entries = self._journal()
        for spec, lease in entries.items():
            if lease is None:
                self.remove_file(spec)
            else:
                self.put_file(lease)
        if entries:
            os.ftruncate(fd, 0)

    def check_writable(self) -> None:
        """A journal nobody owns (its daemon was killed) is folded in and removed; an owned
        one means a memory table (a daemon) owns this folder: writing behind its back is
        refused with :class:`Conflict`. Call it inside the critical section."""
        if not os.path.exists(self.journal_path):
            return
        fd = self.own_journal()  # raises Conflict when owned
        try:
            self.fold_journal(fd)
            os.unlink(self.journal_path)  # while we hold it; under the table lock no daemon is starting
        finally:
            os.close(fd)

    def _read(self, spec):
        journal = self._journal()
        if spec in journal:
            return journal[spec]
        return self._read_file(spec)

    def _read_file(self, spec):
        path = self._lease_path(spec)
        try:
            with open(path, "rb") as fh:
                raw = fh.read()
                mtime = os.fstat(fh.fileno()).st_mtime
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StorageError.from_os_error(exc, "read", path) from None
        return self._parse(spec, raw, mtime)

    def _encode(self, lease: Lease) -> str:
        return json.dumps(lease.to_record(), sort_keys=True) + "\n"

    def _create(self, lease):
        from .store import atomic_write

        self.check_writable()
        atomic_write(
            self._lease_path(lease.spec), self._encode(lease), exclusive=True, mode=0o600, durable=self.durable
        )

    def _replace(self, lease):
        self.check_writable()
        self.put_file(lease)

    def _delete(self, spec):
        self.check_writable()
        self.remove_file(spec)

    # the raw writes (the journal's owner folds it in with these)

    def put_file(self, lease) -> None:
        """Write ``lease``'s file (temp file + rename), whatever is there."""
        from .store import atomic_write

        atomic_write(self._lease_path(lease.spec), self._encode(lease), mode=0o600, durable=self.durable)

    def remove_file(self, spec) -> None:
        """Remove ``spec``'s lease file, if there is one."""
        try:
            os.unlink(self._lease_path(spec))
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise StorageError.from_os_error(exc, "remove", self._lease_path(spec)) from None

    def _all(self):
        out: list[Lease] = []
        journal = self._journal()  # first: a fold between the two reads then leaves the files complete
        try:
            names = os.listdir(self.path)
        except FileNotFoundError:
            return out
        except OSError as exc:
            raise StorageError.from_os_error(exc, "read folder", self.path) from None
        for name in names:
            if name.endswith(".lock") and not name.startswith("."):
                spec = name[:-5]
                if spec not in journal:
                    lease = self._read_file(spec)
                    if lease is not None:
                        out.append(lease)
        out.extend(lease for lease in journal.values() if lease is not None)
        return out

    def stored(self) -> list[Lease]:
        """Every lease the folder holds (its journal over its files), live or not."""
        return self._all()

    def _next_token(self):
        self.check_writable()
        fence = os.path.join(self.path, _FENCE)
        try:
            with open(fence, "rb") as fh:
                last = int(fh.read().strip() or 0)
        except FileNotFoundError:
            last = None
        except (OSError, ValueError):
            last = None
        if last is None:
            # no counter (new table, or it was lost): never go below a token still on disk
            last = max((lease.token for lease in self._all()), default=0)
        token = last + 1
        self.write_fence(token)
        return token

    def write_fence(self, token: int) -> None:
        """Record ``token`` as the last one issued (the fencing counter file)."""
        from .store import atomic_write

        atomic_write(os.path.join(self.path, _FENCE), f"{token}\n", mode=0o600, durable=self.durable)

    @property
    def last_token(self) -> int:
        try:
            with open(os.path.join(self.path, _FENCE), "rb") as fh:
                return int(fh.read().strip() or 0)
        except (OSError, ValueError):
            return 0


class _Section:
    """A critical section made of two callables (``with`` enters and leaves it)."""

    __slots__ = ("enter", "leave")

    def __init__(self, enter, leave) -> None:
        self.enter = enter
        self.leave = leave

    def __enter__(self):
        self.enter()
        return self

    def __exit__(self, *exc_info):
        self.leave()
        return False
