"""Snapshot: a cache file that is a full marshal'ed state plus a journal of later changes.

The spec table (``table.marshal``) and the index state (``indexed.marshal``) are caches of
what the files say, and a long-lived process (the daemon) changes a few entries of them at
a time. Writing the whole state again for each save costs in proportion to the repository
(70 MB and most of a second at 200,000 specs, with the interpreter's lock held all along),
so :class:`Snapshot` writes the whole state rarely (:meth:`write`) and appends each save's
changes to ``<file>.journal`` in between (:meth:`append`): a save costs what changed.

A journal belongs to one snapshot: its first record names the snapshot's token, and a
journal whose token is not the snapshot's (a crash between the two writes, another process
that wrote a new snapshot meanwhile) is ignored. A torn last record (a process killed while
appending) ends the journal. Either way nothing is lost but cached work: every owner
re-validates entries against the files. Appends are refused (the caller writes a full
snapshot instead) when the snapshot on disk is no longer the one this process last read or
wrote, so changes never go onto another process's snapshot.

What the records mean is the owner's business; here they are marshal-able values. This
module imports only the standard library (and :mod:`chantlib.store` to write).
"""

from __future__ import annotations

import marshal
import os

__all__ = ["Snapshot"]

_LEN = 4  # bytes of each record's length prefix (little-endian)
#: a journal may grow to this share of the snapshot before the owner should write a new one
COMPACT_RATIO = 4
COMPACT_MIN = 1 << 20  # ... and never needs compacting below this many bytes


def _frame(value) -> bytes:
    raw = marshal.dumps(value)
    return len(raw).to_bytes(_LEN, "little") + raw


def _stamp(st: os.stat_result) -> tuple:
    return (st.st_ino, st.st_mtime_ns, st.st_size)


class Snapshot:
    """``path``: the snapshot file; its journal is ``path + ".journal"``."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.journal_path = path + ".journal"
        self._token: bytes | None = None  # of the snapshot this process last read or wrote
        self._stamp: tuple | None = None  # (inode, mtime, size) of that snapshot file
        self.journal_bytes = 0  # the journal's size as this process last saw or left it

    def load(self):
        """``(state, records)``: the snapshot's state (a dict) and the journal's records in
        order; ``None`` when there is no readable snapshot. Never raises for a bad file."""
        try:
            with open(self.path, "rb") as fh:
                st = os.fstat(fh.fileno())
                state = marshal.loads(fh.read())
        except (OSError, EOFError, ValueError, TypeError):
            return None
        if not isinstance(state, dict):
            return None
        self._token = state.get("token")
        self._stamp = _stamp(st)
        return state, self._read_journal()

    def _read_journal(self) -> list:
        self.journal_bytes = 0
        try:
            with open(self.journal_path, "rb") as fh:
                data = fh.read()
        except OSError:
            return []
        records = []
        view = memoryview(data)
        pos, end = 0, len(data)
        first = True
        while pos + _LEN <= end:
            size = int.from_bytes(view[pos : pos + _LEN], "little")
            if pos + _LEN + size > end:
                break  # torn: the writer died in the middle of this record
            try:
                value = marshal.loads(view[pos + _LEN : pos + _LEN + size])
            except (EOFError, ValueError, TypeError):
                break
            pos += _LEN + size
            if first:
                if value != ("journal", self._token) or self._token is None:
                    return []  # the journal of another snapshot
                first = False
                continue
            records.append(value)
        self.journal_bytes = pos
        return records

    def write(self, state: dict, *, mode: int = 0o644) -> None:
        """Write ``state`` as the new snapshot (temp file + rename) and drop the journal.
        Raises :class:`~chantlib.errors.StorageError` (and ValueError for a value marshal
        cannot store)."""
        from .store import atomic_write

        token = os.urandom(8)
        state = dict(state, token=token)
        atomic_write(self.path, marshal.dumps(state), mode=mode, durable=False)  # a cache: rebuilt if lost
        self._token = token
        try:
            self._stamp = _stamp(os.stat(self.path))
        except OSError:
            self._stamp = None
        try:
            os.unlink(self.journal_path)  # named the old token: it would be ignored anyway
        except FileNotFoundError:
            pass
        except OSError:
            self._stamp = None  # a journal we cannot remove: do not append to it
        self.journal_bytes = 0

    def append(self, records: list) -> bool:
        """Append ``records`` to the journal in one write; False (nothing written) when the
        snapshot on disk is not the one this process knows, or the journal has grown enough
        that a new snapshot is due (see :meth:`compact_due`): write a full one then."""
        if self._stamp is None or self._token is None or self.compact_due():
            return False  # (a snapshot without a token was written by an older version)
        try:
            if _stamp(os.stat(self.path)) != self._stamp:
                return False  # another process wrote a snapshot since
            fd = os.open(self.journal_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError:
            return False
        try:
            size = os.fstat(fd).st_size
            data = b"".join(_frame(r) for r in records)
            if size == 0:
                data = _frame(("journal", self._token)) + data
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            self.journal_bytes = size + len(data)
        except (OSError, ValueError):
            return False
        finally:
            os.close(fd)
        return True

    def compact_due(self) -> bool:
        """The journal has grown past its share of the snapshot (its replay would cost more
        than it saves)."""
        size = self._stamp[2] if self._stamp is not None else 0
        return self.journal_bytes > max(COMPACT_MIN, size // COMPACT_RATIO)
