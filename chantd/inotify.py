"""Linux inotify on the event loop: a file watch that does nothing while nothing changes.

Owns one inotify descriptor (``inotify_init1``, ``inotify_add_watch``, ``inotify_rm_watch``
through ctypes on libc) and the watches on it: one per folder below each recursive root
(walked at the start, and again below every folder created or moved in), one for a flat
root. The descriptor is read by ``loop.add_reader``: no thread, no poll and no timer while
idle; a timer runs only while a batch is collecting. It reports what watchfiles reports, a
set of ``(Change, path)`` per batch, so a consumer of either takes the same data:

- a file created, written (``IN_MODIFY``, ``IN_CLOSE_WRITE``), deleted, moved in or out (a
  rename is a delete and an add);
- a folder created or moved in (watched at once, with everything below it; the files made
  in it before its watch existed raise no event, so the folder itself is the news: look
  below it), removed or moved out (its watches dropped: nothing below it is reported after);
- on a queue overflow (``IN_Q_OVERFLOW``: events were lost) each root, as modified: look
  below it again; the watches are walked again too.

A batch starts with its first event and is handed over once ``step_ms`` pass with nothing
new, or ``debounce_ms`` after its first event, whichever is sooner (watchfiles' rule).

Must not: follow symbolic links below a root (a loop, or a tree outside it), stop on a
folder it cannot read or one that vanishes during a walk (skipped), or fail silently: no
inotify (another OS, a libc without it) and the watch limit (``ENOSPC``) raise ``OSError``
when the watch is made, so the caller falls back to polling; nor make a folder (a root
removed is reported, then its parent watched until a folder of that name is back: it is
watched again and reported as added; should the parent go too, the iteration ends with
:class:`RootGone`).
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import enum
import errno
import logging
import os
import struct
import sys
from collections.abc import AsyncGenerator, Callable, Iterable, Iterator

log = logging.getLogger("chantd.inotify")

__all__ = ["Change", "Inotify", "RootGone", "parse_events", "available"]


class Change(enum.IntEnum):
    """What happened to a path: the values of ``watchfiles.Change``."""

    added = 1
    modified = 2
    deleted = 3


class RootGone(FileNotFoundError):
    """A watched root and the folder it was in are gone: nothing tells when it is back."""


# <sys/inotify.h>
IN_MODIFY = 0x00000002
IN_CLOSE_WRITE = 0x00000008
IN_MOVED_FROM = 0x00000040
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_DELETE = 0x00000200
IN_DELETE_SELF = 0x00000400
IN_MOVE_SELF = 0x00000800
IN_Q_OVERFLOW = 0x00004000
IN_IGNORED = 0x00008000
IN_ONLYDIR = 0x01000000
IN_DONT_FOLLOW = 0x02000000
IN_ISDIR = 0x40000000
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC

#: what each watch asks for: no IN_ACCESS, IN_OPEN, IN_ATTRIB or IN_CLOSE_NOWRITE (reads,
#: including the daemon's own, would wake us for nothing)
MASK = (IN_MODIFY | IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_DELETE_SELF
        | IN_MOVE_SELF | IN_ONLYDIR)
#: struct inotify_event without its name: int wd; uint32_t mask, cookie, len
HEADER = struct.Struct("iIII")
#: a read returns whole events only; one holds at least an event with the longest name
READ_SIZE = 64 * 1024

_libc = None


def _lib():
    """libc's inotify functions, or OSError (another OS; a libc without them)."""
    global _libc
    if _libc is None:
        if not sys.platform.startswith("linux"):
            raise OSError(errno.ENOSYS, f"inotify is Linux only (this is {sys.platform})")
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            init1, add, rm = libc.inotify_init1, libc.inotify_add_watch, libc.inotify_rm_watch
        except (OSError, AttributeError) as exc:
            raise OSError(errno.ENOSYS, f"libc has no inotify: {exc}") from None
        init1.argtypes, init1.restype = [ctypes.c_int], ctypes.c_int
        add.argtypes, add.restype = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32], ctypes.c_int
        rm.argtypes, rm.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
        _libc = libc
    return _libc


def available() -> bool:
    """Whether this platform has inotify (a cheap check: it opens no descriptor)."""
    try:
        _lib()
    except OSError:
        return False
    return True


def parse_events(buf: bytes) -> Iterator[tuple[int, int, int, str]]:
    """``(wd, mask, cookie, name)`` of each event in what one read of the descriptor gave."""
    offset, size = 0, len(buf)
    while offset + HEADER.size <= size:
        wd, mask, cookie, length = HEADER.unpack_from(buf, offset)
        start = offset + HEADER.size
        name = bytes(buf[start:start + length]).split(b"\0", 1)[0]
        yield wd, mask, cookie, os.fsdecode(name)
        offset = start + length


class Inotify:
    """Watches on ``roots`` (each path: watched recursively or not), made when constructed.

    ``async for changes in watch.batches(stop_event)`` yields each batch; ``close()``
    (or ``with``) removes the reader and closes the descriptor. ``watch_filter(change,
    path)`` drops what it says no to before it can start or prolong a batch.
    """

    def __init__(self, roots: dict[str, bool] | Iterable[str], *, recursive: bool = True, step_ms: int = 5,
                 debounce_ms: int = 60, watch_filter: Callable[[Change, str], bool] | None = None) -> None:
        if not isinstance(roots, dict):
            roots = {path: recursive for path in roots}
        self.roots = {os.path.abspath(path): deep for path, deep in roots.items()}
        self.step = step_ms / 1000.0
        self.debounce = debounce_ms / 1000.0
        self.watch_filter = watch_filter
        self._lib = _lib()
        self._wds: dict[int, tuple[str, bool]] = {}  # watch -> (folder, whether what it holds is watched too)
        self._paths: dict[str, int] = {}  # folder -> watch
        self._pending: set[tuple[Change, str]] = set()
        self._first = self._last = 0.0  # when the batch collecting began, when its last event came
        self._timer: asyncio.TimerHandle | None = None
        self._ready = asyncio.Event()  # a batch is due
        self._lost: list[str] = []  # roots removed or moved away, until they are back
        self._helpers: dict[int, str] = {}  # watch -> the parent of a lost root, watched for its return
        self._gone: str | None = None  # a lost root whose parent went too
        self._error: OSError | None = None  # a watch that could not be added while running
        self._loop: asyncio.AbstractEventLoop | None = None
        self.reads = 0  # descriptor reads (tests count them: none while idle)
        fd = self._lib.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if fd < 0:
            code = ctypes.get_errno()
            raise OSError(code, f"inotify_init1: {os.strerror(code)}")
        self.fd = fd
        try:
            for root, deep in self.roots.items():
                if self._add(root, deep, follow=True) is None:
                    raise FileNotFoundError(errno.ENOENT, f"cannot watch {root}: gone, not a folder or not "
                                                          "readable", root)
                if deep:
                    self._walk(root)
        except BaseException:
            self.close()
            raise

    # -- watches ------------------------------------------------------------------------

    def _add(self, folder: str, deep: bool, follow: bool = False) -> int | None:
        """Watch ``folder``; None if it is gone, not a folder or not ours to read. The
        watch limit is an OSError for the caller: a tree we cannot watch whole is not watched.
        A root may be a link to a folder (``follow``); below it links are not followed."""
        wd = self._lib.inotify_add_watch(self.fd, os.fsencode(folder), MASK if follow else MASK | IN_DONT_FOLLOW)
        if wd < 0:
            code = ctypes.get_errno()
            if code in (errno.ENOENT, errno.ENOTDIR, errno.EACCES, errno.EPERM, errno.ELOOP):
                return None
            if code == errno.ENOSPC:
                raise OSError(code, "inotify watch limit reached (fs.inotify.max_user_watches): "
                                    f"cannot watch {folder}", folder)
            raise OSError(code, f"inotify_add_watch {folder}: {os.strerror(code)}", folder)
        old = self._wds.get(wd)
        if old is not None and old[0] != folder:
            self._paths.pop(old[0], None)  # the same folder, reached under a new name
        self._wds[wd] = (folder, deep)
        self._paths[folder] = wd
        return wd

    def _walk(self, top: str) -> None:
        """Watch every folder below ``top`` (watched already); skip what vanishes or is not ours."""
        stack = [top]
        while stack:
            folder = stack.pop()
            try:
                with os.scandir(folder) as entries:
                    subs = [e.path for e in entries if e.is_dir(follow_symlinks=False)]
            except OSError:  # gone, or not ours to list
                continue
            for sub in subs:
                if self._add(sub, True) is not None:
                    stack.append(sub)

    def _drop(self, top: str) -> None:
        """Forget ``top`` and every folder below it (moved away or removed)."""
        prefix = top + os.sep
        for folder in [f for f in self._paths if f == top or f.startswith(prefix)]:
            wd = self._paths.pop(folder)
            self._wds.pop(wd, None)
            if self.fd >= 0:
                self._lib.inotify_rm_watch(self.fd, wd)  # EINVAL when the kernel dropped it first: fine

    def _rewalk(self) -> None:
        """After an overflow: watch what exists now, and forget what is gone."""
        before = set(self._wds)
        self._wds.clear()
        self._paths.clear()
        for root, deep in self.roots.items():
            if self._add(root, deep, follow=True) is not None:
                if root in self._lost:
                    self._back(root)
                if deep:
                    self._walk(root)
        for wd in before - set(self._wds):
            self._lib.inotify_rm_watch(self.fd, wd)

    @property
    def watches(self) -> int:
        return len(self._wds)

    # -- events -------------------------------------------------------------------------

    def handle(self, events: Iterable[tuple[int, int, int, str]]) -> set[tuple[Change, str]]:
        """Turn raw events into changes, keeping the watches in step (folders in and out)."""
        changes: set[tuple[Change, str]] = set()
        overflow = False
        for wd, mask, _cookie, name in events:
            if mask & IN_Q_OVERFLOW:
                overflow = True
                continue
            if wd in self._helpers:
                self._helper_event(wd, mask, name, changes)
                continue
            known = self._wds.get(wd)
            if known is None:
                continue  # a watch already dropped: what was below a folder that left
            folder, deep = known
            path = os.path.join(folder, name) if name else folder
            if mask & IN_IGNORED:  # the watch is gone (its folder removed, or rm_watch)
                self._wds.pop(wd, None)
                if self._paths.get(folder) == wd:
                    del self._paths[folder]
                if folder in self.roots:
                    self._root_gone(folder, changes)
                continue
            if not name:  # the watched folder itself
                if mask & (IN_DELETE_SELF | IN_MOVE_SELF) and folder in self.roots:
                    self._root_gone(folder, changes)
                continue  # a folder below a root: its parent's event tells it
            if mask & IN_ISDIR:
                if mask & (IN_CREATE | IN_MOVED_TO):
                    changes.add((Change.added, path))
                    if path in self._lost:  # a root back, in a folder watched for itself (a flat root)
                        self._found(path, changes)
                    elif deep and self._add(path, True) is not None:
                        self._walk(path)
                elif mask & (IN_DELETE | IN_MOVED_FROM):
                    changes.add((Change.deleted, path))
                    if path in self.roots:  # a root seen leaving from a flat root above it
                        self._root_gone(path, changes)
                    else:
                        self._drop(path)
            elif mask & (IN_CREATE | IN_MOVED_TO):
                changes.add((Change.added, path))
            elif mask & (IN_DELETE | IN_MOVED_FROM):
                changes.add((Change.deleted, path))
            elif mask & (IN_MODIFY | IN_CLOSE_WRITE):
                changes.add((Change.modified, path))
        if overflow:
            log.warning("inotify queue overflow: events were lost; looking below %s again", ", ".join(self.roots))
            self._rewalk()
            changes.update((Change.modified, root) for root in self.roots if root not in self._lost)
        return changes

    def _root_gone(self, root: str, changes: set) -> None:
        """``root`` was removed or moved away: report it, then watch for its return."""
        if root in self._lost:
            return
        self._lost.append(root)
        changes.add((Change.deleted, root))
        self._drop(root)
        parent = os.path.dirname(root)
        if parent in self._paths or parent in self._helpers.values():
            return  # its events tell already
        wd = self._lib.inotify_add_watch(self.fd, os.fsencode(parent),
                                         IN_CREATE | IN_MOVED_TO | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR)
        if wd < 0:
            self._gone = root  # the parent is gone too (or cannot be watched): nothing will tell
            return
        self._helpers[wd] = parent
        if os.path.isdir(root):  # back already, before the parent's watch existed
            self._found(root, changes)

    def _helper_event(self, wd: int, mask: int, name: str, changes: set) -> None:
        parent = self._helpers[wd]
        if mask & (IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF):
            del self._helpers[wd]
            self._gone = next((root for root in self._lost if os.path.dirname(root) == parent), parent)
            return
        path = os.path.join(parent, name)
        if mask & IN_ISDIR and path in self._lost:
            self._found(path, changes)

    def _found(self, root: str, changes: set) -> None:
        """A lost root is a folder again: watch it (and below it), and report it."""
        deep = self.roots[root]
        if self._add(root, deep, follow=True) is None:
            return  # gone again at once: still lost
        self._back(root)
        changes.add((Change.added, root))
        if deep:
            self._walk(root)

    def _back(self, root: str) -> None:
        self._lost.remove(root)
        parent = os.path.dirname(root)
        if any(os.path.dirname(other) == parent for other in self._lost):
            return
        for wd, folder in list(self._helpers.items()):
            if folder == parent:
                del self._helpers[wd]
                self._lib.inotify_rm_watch(self.fd, wd)

    def _on_readable(self) -> None:
        events: list[tuple[int, int, int, str]] = []
        while True:
            try:
                buf = os.read(self.fd, READ_SIZE)
            except (BlockingIOError, InterruptedError):
                break
            self.reads += 1
            if not buf:
                break
            events.extend(parse_events(buf))
        try:
            changes = self.handle(events)
        except OSError as exc:  # the watch limit, met by a new folder: the caller falls back
            self._error = exc
            self._ready.set()
            return
        if self.watch_filter is not None:
            changes = {c for c in changes if self.watch_filter(*c)}
        if self._gone is not None:
            self._ready.set()  # hand over what came, then end: nothing waits for a settle
        if not changes:
            return
        self._pending |= changes
        assert self._loop is not None
        now = self._loop.time()
        if self._timer is None:
            self._first = now
            self._timer = self._loop.call_at(now + self.step, self._on_timer)
        self._last = now

    def _on_timer(self) -> None:
        assert self._loop is not None
        due = min(self._last + self.step, self._first + self.debounce)
        if self._loop.time() >= due:
            self._timer = None
            self._ready.set()
        else:  # events came since: wait for the quiet step after the last one
            self._timer = self._loop.call_at(due, self._on_timer)

    async def batches(self, stop_event: asyncio.Event | None = None) -> AsyncGenerator[set[tuple[Change, str]], None]:
        """Each batch of changes, until ``stop_event`` is set (or a root and its parent are
        gone: :class:`RootGone`, after the batch that told it)."""
        if self.fd < 0:
            raise ValueError("the watch is closed")
        loop = self._loop = asyncio.get_running_loop()
        loop.add_reader(self.fd, self._on_readable)
        stopping = asyncio.ensure_future(stop_event.wait()) if stop_event is not None else None
        try:
            while True:
                ready = asyncio.ensure_future(self._ready.wait())
                waits = {ready} if stopping is None else {ready, stopping}
                try:
                    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    ready.cancel()
                if stopping is not None and stopping.done():
                    return
                self._ready.clear()
                batch, self._pending = self._pending, set()
                if self._error is not None:
                    raise self._error
                if batch:
                    yield batch
                if self._gone is not None:
                    raise RootGone(errno.ENOENT, f"a watched folder is gone, and the folder it was in: {self._gone}",
                                   self._gone)
        finally:
            if stopping is not None:
                stopping.cancel()
            self._stop_reading()

    def _stop_reading(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._loop is not None and self.fd >= 0 and not self._loop.is_closed():
            self._loop.remove_reader(self.fd)
        self._loop = None

    def close(self) -> None:
        """Remove the reader and close the descriptor (its watches go with it). Idempotent."""
        if self.fd < 0:
            return
        self._stop_reading()
        fd, self.fd = self.fd, -1
        os.close(fd)
        self._wds.clear()
        self._paths.clear()
        self._helpers.clear()

    def __enter__(self) -> Inotify:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Inotify fd={self.fd} roots={list(self.roots)} watches={len(self._wds)}>"
