"""GitWatcher: git events read from what git itself records, the reflogs.

Owns: finding a repository's git folders (``.git`` may be a file: a linked worktree, a
submodule), following its reflogs (``logs/HEAD`` of every worktree, ``logs/refs/heads/**``
and ``logs/refs/remotes/**`` of the common folder) from a kept position, telling each move
once as a :class:`GitEvent`, and keeping that position across restarts (a small JSON file,
written atomically). It never guesses from file churn and never runs git: the reflog is a
one-line-per-move text format (``<old> <new> <name> <email> <unix-ts> <tz>\\t<message>``,
docs/chant-format.md §13) that git has kept stable for twenty years; docs/design.md ("The
git watcher") tells why this beats pygit2 and the git command here, with numbers.

Must not: import anything heavy (it is loaded by a daemon's start and by scripts), write
into the repository, or act on an event (recording a commit into a spec, refreshing an
index and notifying are the daemon's, which subscribes to what :meth:`GitWatcher.poll`
returns).

How one move is told once. A commit on a branch is written twice by git: a line in the
worktree's ``HEAD`` log, then a line in the branch's log (in the common folder, shared by
all worktrees), both while git holds that worktree's ``HEAD.lock``. The branch line is the
event (it names the branch, and every worktree shares it); the ``HEAD`` line with the same
old hash, new hash, time and message only tells in which worktree it happened. A poll reads
the branch logs before the ``HEAD`` logs, so a branch line read always finds its ``HEAD``
line. A ``HEAD`` line left without a branch line is a move of ``HEAD`` alone (a checkout, a
commit on a detached ``HEAD``), unless its branch line was not written yet: the poll then
looks at ``HEAD.lock`` (absent: git is done, so the branch logs are read once more and are
final) and otherwise keeps the line for the next poll.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["GitWatcher", "GitEvent", "KINDS", "find_git_dirs"]


def _log(level: str, message: str, *args: object) -> None:
    """Log on the ``chantlib.gitwatch`` logger; :mod:`logging` is loaded on the first line
    (a script that never meets one does not pay for it; a daemon has it loaded anyway)."""
    import logging

    getattr(logging.getLogger("chantlib.gitwatch"), level)(message, *args)

#: every value of :attr:`GitEvent.kind`
KINDS = ("commit", "merge", "pull", "checkout", "rebase", "reset", "push", "fetch", "branch", "other")

#: the folders of ``logs/`` followed, below the common git folder
REF_LOG_DIRS = ("logs/refs/heads", "logs/refs/remotes")

STATE_VERSION = 1
#: fingerprints of the last lines read, kept per reflog to tell old lines from new ones in a
#: rewritten reflog whose last line read is gone (lines of that same second)
RECENT_PER_LOG = 8
#: branch lines told without their HEAD line (kept so that a late HEAD line is not told again)
RECENT_KEYS = 256
#: a HEAD line waits this long at most for its branch line while HEAD.lock stays (a git
#: process that died holding the lock leaves it behind)
PENDING_SECONDS = 30.0
#: a folder changed this recently is listed again even if its mtime looks the same
#: (the racy-timestamp rule git uses for its index)
RACY_NS = 2_000_000_000
#: sorts after every line of a poll
_LAST = 1 << 62


@dataclass(frozen=True, slots=True)
class GitEvent:
    """One move of a ref, as git recorded it.

    - ``kind``: one of :data:`KINDS`. ``commit`` (``git commit``, ``--amend``, cherry-pick,
      revert, am), ``merge`` (fast-forward or merge commit), ``pull``, ``checkout`` (``HEAD``
      moved to another branch or commit: ``source`` → ``target``), ``rebase`` (told once,
      when it finishes), ``reset``, ``push`` (a remote-tracking ref updated by ``git push``),
      ``fetch`` (one updated by a fetch or pull), ``branch`` (created, renamed, ``branch -f``),
      ``other`` (any move git recorded with another message).
    - ``ref``: the full ref that moved (``refs/heads/main``, ``refs/remotes/origin/main``);
      ``None`` for a move of ``HEAD`` alone (a checkout, a commit on a detached ``HEAD``).
    - ``old``, ``new``: full hashes before and after (all zeros: the ref did not exist).
    - ``worktree``: the root of the worktree it happened in, when git recorded it in that
      worktree's ``HEAD`` log; ``None`` for a push, a fetch, or a ref moved without ``HEAD``.
    - ``message``: the reflog message as git wrote it; ``time``: its unix time.
    - ``subject``: the commit's subject (``commit`` events, and a merge concluded with
      ``git commit``); ``amend``: ``git commit --amend`` (``old`` is the commit it replaced).
    - ``fast_forward``: a merge or pull that made no merge commit.
    - ``source``: what was merged or pulled (``feat``, ``origin main``), the branch or commit
      a checkout left, or how a commit was made (``cherry-pick``, ``revert``, ``am``).
    - ``target``: where a checkout went, what a reset moved to (``HEAD~1``), the commit a
      rebase went onto.
    """

    kind: str
    ref: str | None
    old: str
    new: str
    worktree: str | None
    message: str
    time: int
    subject: str | None = None
    amend: bool = False
    fast_forward: bool = False
    source: str | None = None
    target: str | None = None

    @property
    def branch(self) -> str | None:
        """The short name of the ref: ``main`` for ``refs/heads/main``, ``origin/main`` for
        ``refs/remotes/origin/main``; ``None`` for a move of HEAD alone (a checkout says
        where it went in ``target``, as git wrote it: a branch, a tag, a commit)."""
        if self.ref is None:
            return None
        for prefix in ("refs/heads/", "refs/remotes/"):
            if self.ref.startswith(prefix):
                return self.ref[len(prefix) :]
        return self.ref

    @property
    def remote(self) -> str | None:
        """The remote of a remote-tracking ref (``origin``), else ``None``."""
        if self.ref and self.ref.startswith("refs/remotes/"):
            return self.ref[len("refs/remotes/") :].split("/", 1)[0]
        return None


_HEX = frozenset("0123456789abcdef")


def _is_hash(text: str) -> bool:
    """A full object name: SHA-1 (40) or SHA-256 (64) hex digits."""
    return len(text) in (40, 64) and _HEX.issuperset(text)


def _is_zero(oid: str) -> bool:
    return not oid.strip("0")


def find_git_dirs(root: str | os.PathLike[str]) -> tuple[str, str, str | None] | str:
    """``(git_dir, common_dir, main_worktree)`` of the repository holding ``root``, or the
    reason there is none (a string). Like git, looks in ``root`` and then in its parents;
    a ``.git`` file (``gitdir: <path>``) is followed, and a ``commondir`` file in the git
    folder names the common one (linked worktrees)."""
    start = os.path.abspath(os.fspath(root))
    folder = start
    while True:
        dotgit = os.path.join(folder, ".git")
        if os.path.isdir(dotgit):
            git_dir = dotgit
            break
        if os.path.isfile(dotgit):
            try:
                with open(dotgit, encoding="utf-8", errors="replace") as fh:
                    first = fh.readline().strip()
            except OSError as exc:
                return f"cannot read {dotgit}: {exc.strerror}"
            if not first.startswith("gitdir:"):
                return f"{dotgit} is not a gitdir file"
            git_dir = os.path.normpath(os.path.join(folder, first[len("gitdir:") :].strip()))
            if not os.path.isdir(git_dir):
                return f"{dotgit} points at {git_dir}, which does not exist"
            break
        parent = os.path.dirname(folder)
        if parent == folder:
            return f"not a git repository: {start}"
        folder = parent
    common = git_dir
    try:
        with open(os.path.join(git_dir, "commondir"), encoding="utf-8") as fh:
            common = os.path.normpath(os.path.join(git_dir, fh.read().strip()))
    except FileNotFoundError:
        pass
    except OSError as exc:
        return f"cannot read {git_dir}/commondir: {exc.strerror}"
    if os.path.isdir(os.path.join(common, "reftable")):
        return f"{common} keeps its refs in a reftable, which has no reflog files to follow"
    main = os.path.dirname(common) if os.path.basename(common) == ".git" else None
    return git_dir, common, main


@dataclass(slots=True)
class _Line:
    """One reflog line: where it came from, its fields, and its fingerprint."""

    log: str  # the reflog, relative to the common folder
    old: str
    new: str
    time: int
    message: str
    fingerprint: str
    seq: int = 0  # read order within a poll
    since: float = 0.0  # for a pending HEAD line: when it was first read (monotonic)

    @property
    def key(self) -> str:
        """What a branch line and its HEAD line share."""
        return _digest(f"{self.old} {self.new} {self.time}\t{self.message}".encode())


def _digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=8).hexdigest()


def _parse(log_key: str, raw: bytes) -> _Line | None:
    head, tab, message = raw.partition(b"\t")
    parts = head.split(b" ")
    if len(parts) < 4:
        return None
    try:
        stamp = int(parts[-2])
    except ValueError:
        return None
    old, new = parts[0].decode("ascii", "replace"), parts[1].decode("ascii", "replace")
    if not (_is_hash(old) and _is_hash(new) and len(old) == len(new)):
        return None
    text = message.decode("utf-8", "replace") if tab else ""
    return _Line(log_key, old, new, stamp, text, _digest(raw))


@dataclass(slots=True)
class _Log:
    """Where one reflog was read up to."""

    offset: int = 0  # bytes read (always just after a newline)
    tail: str = ""  # fingerprint of the last line read
    tail_len: int = 0  # its length, newline included
    time: int = 0  # its time
    recent: tuple[str, ...] = ()  # fingerprints of the last lines read, newest last
    stat: tuple[int, int, int] | None = None  # (inode, size, mtime) when last read

    def to_json(self) -> dict[str, Any]:
        return {"offset": self.offset, "tail": self.tail, "tail_len": self.tail_len, "time": self.time,
                "recent": list(self.recent)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> _Log:
        return cls(int(data["offset"]), str(data["tail"]), int(data["tail_len"]), int(data["time"]),
                   tuple(str(x) for x in data.get("recent", ())))

    def advance(self, raws: list[bytes], end: int) -> None:
        """Now read up to ``end``, where the line ``raws[-1]`` ends (``raws``: the last
        lines before ``end``, oldest first)."""
        if not raws:
            return
        last = raws[-1]
        line = _parse("", last)
        self.offset, self.tail, self.tail_len = end, _digest(last), len(last) + 1
        if line is not None:
            self.time = line.time
        recent = dict.fromkeys(self.recent + tuple(_digest(r) for r in raws[-RECENT_PER_LOG:]))
        self.recent = tuple(recent)[-RECENT_PER_LOG:]


def _split(data: bytes) -> tuple[list[bytes], int]:
    """Complete lines of ``data`` and the length they cover (a line still being written,
    with no newline yet, is left for the next read)."""
    end = data.rfind(b"\n") + 1
    if not end:
        return [], 0
    return data[: end - 1].split(b"\n"), end


class GitWatcher:
    """Git events of the repository holding ``root``, from its reflogs.

    ``poll()`` returns the moves since the last poll (the first poll: since the watcher was
    made, or with a kept state, since the position kept). With ``state_path``, that position
    (per reflog: an offset and a fingerprint of the last line read) is saved after each poll
    that moved it (``autosave``), or when :meth:`save` is called, atomically; a watcher made
    again with that file returns first what happened meanwhile (``resume=False``: start from
    now instead). Without a kept state the watcher starts from now: history is never told.

    A folder in no git repository gives a watcher that is off: ``enabled`` is false,
    ``reason`` says why (also logged once), ``poll()`` returns ``[]``.
    """

    def __init__(self, root: str | os.PathLike[str] = ".", *, state_path: str | os.PathLike[str] | None = None,
                 resume: bool = True, autosave: bool = True,
                 clock: Callable[[], float] = time.monotonic) -> None:
        # clock: monotonic seconds, only for how long a HEAD line may wait (PENDING_SECONDS)
        self.root = os.path.abspath(os.fspath(root))
        self.state_path = os.fspath(state_path) if state_path is not None else None
        self.autosave = autosave
        self._clock = clock
        self._mutex = threading.RLock()
        self._closed = False
        self._logs: dict[str, _Log] = {}
        self._dirs: dict[str, tuple[int, list[str], list[str]]] = {}
        self._worktree_roots: dict[str, str | None] = {}
        self._pending: list[_Line] = []
        self._recent_keys: deque[str] = deque(maxlen=RECENT_KEYS)
        self._dirty = False
        self._seq = 0
        self.git_dir: str | None = None
        self.common_dir: str | None = None
        self.main_worktree: str | None = None
        #: whether the first poll continues from a kept state (else it starts from now)
        self.resumed = False
        #: false when ``root`` is in no git repository; ``reason`` then says why
        self.enabled = False
        self.reason: str | None = None
        found = find_git_dirs(self.root)
        if isinstance(found, str):
            self.reason = found
            _log("info", "git watcher off: %s", found)
            return
        self.enabled = True
        self.git_dir, self.common_dir, self.main_worktree = found
        self.resumed = bool(resume and self._load_state())
        if not self.resumed:
            self._start_from_now()

    def __repr__(self) -> str:
        where = self.common_dir if self.enabled else f"off: {self.reason}"
        return f"<GitWatcher {where}>"

    def __enter__(self) -> GitWatcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the API a daemon uses ------------------------------------------------------------

    def poll(self) -> list[GitEvent]:
        """The moves git recorded since the last poll, oldest first (by time; within one
        second, in each worktree's own order). Cheap when nothing moved: one ``stat`` per
        reflog file and per folder of reflogs."""
        with self._mutex:
            if self._closed:
                raise ValueError("poll() on a closed GitWatcher")
            if not self.enabled:
                return []
            # branch logs first: a branch line read then has its HEAD line written already
            branch_lines = self._read("ref")
            head_lines = self._pending + self._read("head")
            self._pending = []
            events: list[tuple[int, tuple[int, int, int], GitEvent]] = []
            left = self._match(branch_lines, head_lines, events)
            waiting = [ln for ln in left if self._needs_branch_line(ln)]
            if waiting:
                locked = {ln.log for ln in waiting if os.path.exists(self._head_lock(ln.log))}
                # HEAD.lock gone: git finished, so the branch logs read now are final for it
                waiting_ids = {id(ln) for ln in waiting}
                late = self._read("ref")
                left = [ln for ln in left if id(ln) not in waiting_ids] + self._match(late, waiting, events)
                now = self._clock()
                for ln in left:
                    if ln.log in locked and self._needs_branch_line(ln) and now - ln.since < PENDING_SECONDS:
                        self._pending.append(ln)
            pending_ids = {id(ln) for ln in self._pending}
            for ln in left:
                if id(ln) not in pending_ids:
                    event = self._event(ln, None, head_only=True)
                    if event is not None:
                        events.append((ln.time, (ln.seq, 0, 0), event))
            if self._pending:
                self._dirty = True
            events.sort(key=lambda item: (item[0], item[1]))
            if self._dirty and self.autosave:
                self.save()
            return [event for _, _, event in events]

    def paths_to_watch(self) -> tuple[str, ...]:
        """What a file watcher should watch (recursively) to know when to poll: the common
        folder's ``logs/`` and ``worktrees/``; the git folder itself while ``logs/`` does not
        exist yet (no commit yet). The set can grow (the first commit, the first ``git
        worktree add``): ask again after a poll. A watcher with a filter must let ``.git``
        paths through (watchfiles' default filter drops them)."""
        if not self.enabled or self.common_dir is None:
            return ()
        logs = os.path.join(self.common_dir, "logs")
        paths = [logs if os.path.isdir(logs) else self.common_dir]
        worktrees = os.path.join(self.common_dir, "worktrees")
        if os.path.isdir(worktrees) and paths[0] != self.common_dir:
            paths.append(worktrees)
        return tuple(paths)

    @property
    def unsaved(self) -> bool:
        """Whether the position moved since it was last saved (with ``autosave=False``: call
        :meth:`save` once what :meth:`poll` returned is handled)."""
        return self._dirty

    def save(self) -> None:
        """Write the position to ``state_path`` (temp file, fsync, rename). A daemon that
        wants every event handled at least once passes ``autosave=False`` and calls this once
        it has handled what a poll returned."""
        with self._mutex:
            if self.state_path is None or not self.enabled:
                self._dirty = False
                return
            from .store import atomic_write

            state = {
                "version": STATE_VERSION,
                "common_dir": self.common_dir,
                "logs": {key: entry.to_json() for key, entry in sorted(self._logs.items())},
                "recent_keys": list(self._recent_keys),
                "pending": [[ln.log, ln.old, ln.new, ln.time, ln.message, ln.fingerprint] for ln in self._pending],
            }
            folder = os.path.dirname(os.path.abspath(self.state_path))
            os.makedirs(folder, exist_ok=True)
            import json

            atomic_write(self.state_path, json.dumps(state, indent=1, sort_keys=True) + "\n")
            self._dirty = False

    def close(self) -> None:
        """Save the position (with ``autosave``) and stop; idempotent."""
        with self._mutex:
            if self._closed:
                return
            if self._dirty and self.autosave:
                self.save()
            self._closed = True

    # -- state ----------------------------------------------------------------------------

    def _load_state(self) -> bool:
        if self.state_path is None:
            return False
        import json

        try:
            with open(self.state_path, encoding="utf-8") as fh:
                state = json.load(fh)
            if state.get("version") != STATE_VERSION:
                raise ValueError(f"version {state.get('version')!r}")
            if state.get("common_dir") != self.common_dir:
                _log("warning", "git watcher: %s was kept for %s, not %s: starting from now",
                            self.state_path, state.get("common_dir"), self.common_dir)
                return False
            self._logs = {str(k): _Log.from_json(v) for k, v in state["logs"].items()}
            self._recent_keys.extend(str(k) for k in state.get("recent_keys", ()))
            now = self._clock()
            self._pending = [_Line(str(p[0]), str(p[1]), str(p[2]), int(p[3]), str(p[4]), str(p[5]), since=now)
                             for p in state.get("pending", ())]
        except FileNotFoundError:
            return False
        except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
            _log("warning", "git watcher: unreadable state %s (%s): starting from now", self.state_path, exc)
            self._logs, self._pending = {}, []
            self._recent_keys.clear()
            return False
        return True

    def _start_from_now(self) -> None:
        """Every reflog there now is read up to its end: only later moves are told."""
        for key in self._ref_logs() + self._head_logs():
            entry = _Log()
            try:
                with open(os.path.join(self.common_dir or "", key), "rb") as fh:
                    size = os.fstat(fh.fileno()).st_size
                    back = min(size, 65536)
                    fh.seek(size - back)
                    raws, end = _split(fh.read(back))
                    if back < size:
                        raws = raws[1:]  # the first may be cut
                        if not raws:  # one line longer than what we read: read it all
                            fh.seek(0)
                            raws, end = _split(fh.read())
                            back = size
            except OSError:
                continue
            entry.advance(raws, size - back + end)
            self._logs[key] = entry
        self._dirty = True
        self.save()  # "now" is kept at once, autosave or not: it is where the first poll starts

    # -- finding the reflogs --------------------------------------------------------------

    def _ref_logs(self) -> list[str]:
        found: list[str] = []
        for folder in REF_LOG_DIRS:
            self._walk(folder, found)
        return found

    def _head_logs(self) -> list[str]:
        common = self.common_dir or ""
        found = []
        if os.path.exists(os.path.join(common, "logs", "HEAD")):
            found.append("logs/HEAD")
        names = self._listing("worktrees")
        if names is not None:
            for name in names[0]:
                key = f"worktrees/{name}/logs/HEAD"
                if os.path.exists(os.path.join(common, key)):
                    found.append(key)
        return found

    def _listing(self, rel: str) -> tuple[list[str], list[str]] | None:
        """(subfolders, files) of a folder below the common one, listed again only when its
        mtime moved (or is too recent to trust)."""
        path = os.path.join(self.common_dir or "", rel)
        try:
            mtime = os.stat(path).st_mtime_ns
        except OSError:
            self._dirs.pop(rel, None)
            return None
        cached = self._dirs.get(rel)
        if cached is None or cached[0] != mtime or time.time_ns() - mtime < RACY_NS:
            subdirs, files = [], []
            try:
                with os.scandir(path) as entries:
                    for entry in entries:
                        if entry.is_dir(follow_symlinks=False):
                            subdirs.append(entry.name)
                        elif not entry.name.endswith(".lock"):
                            files.append(entry.name)
            except OSError:
                self._dirs.pop(rel, None)
                return None
            cached = (mtime, sorted(subdirs), sorted(files))
            self._dirs[rel] = cached
        return cached[1], cached[2]

    def _walk(self, rel: str, found: list[str]) -> None:
        listing = self._listing(rel)
        if listing is None:
            return
        subdirs, files = listing
        found.extend(f"{rel}/{name}" for name in files)
        for name in subdirs:
            self._walk(f"{rel}/{name}", found)

    def _head_lock(self, log_key: str) -> str:
        # logs/HEAD -> HEAD.lock; worktrees/<name>/logs/HEAD -> worktrees/<name>/HEAD.lock
        return os.path.join(self.common_dir or "", log_key[: -len("logs/HEAD")] + "HEAD.lock")

    def _worktree_of(self, log_key: str) -> str | None:
        if log_key == "logs/HEAD":
            return self.main_worktree
        if log_key not in self._worktree_roots:
            folder = os.path.join(self.common_dir or "", log_key[: -len("/logs/HEAD")])
            try:
                with open(os.path.join(folder, "gitdir"), encoding="utf-8", errors="replace") as fh:
                    # the worktree's .git file; relative to this folder with worktree.useRelativePaths
                    dotgit = os.path.normpath(os.path.join(folder, fh.read().strip()))
                self._worktree_roots[log_key] = os.path.dirname(dotgit)
            except OSError:
                return None  # not cached: the worktree may be being made
        return self._worktree_roots[log_key]

    # -- reading --------------------------------------------------------------------------

    def _read(self, group: str) -> list[_Line]:
        """New complete lines of the reflogs of ``group`` (``"ref"``: branches and
        remote-tracking refs; ``"head"``: every worktree's HEAD); forgets the reflogs gone."""
        keys = self._ref_logs() if group == "ref" else self._head_logs()
        out: list[_Line] = []
        for key in keys:
            out.extend(self._read_one(key))
        present = set(keys)
        for key in [k for k in self._logs if _group(k) == group and k not in present]:
            if not os.path.exists(os.path.join(self.common_dir or "", key)):
                del self._logs[key]
                self._worktree_roots.pop(key, None)
                self._dirty = True
        return out

    def _read_one(self, key: str) -> list[_Line]:
        path = os.path.join(self.common_dir or "", key)
        entry = self._logs.get(key)
        if entry is None:  # a reflog that appeared after we started: all of it is new
            entry = self._logs[key] = _Log()
            self._dirty = True
        try:
            st = os.stat(path)  # all an unchanged reflog costs
            if (st.st_ino, st.st_size, st.st_mtime_ns) == entry.stat:
                return []
            with open(path, "rb") as fh:
                st = os.fstat(fh.fileno())  # the file read (it may have been replaced since)
                stat = (st.st_ino, st.st_size, st.st_mtime_ns)
                tell: list[bytes] | None = None
                start = entry.offset - entry.tail_len
                if st.st_size >= entry.offset:
                    fh.seek(start)
                    raws, end = _split(fh.read())
                    if not entry.tail_len:
                        tell, seen = raws, raws
                    elif raws and _digest(raws[0]) == entry.tail:
                        tell, seen = raws[1:], raws
                    end += start
                if tell is None:  # rewritten, or shorter than our position
                    fh.seek(0)
                    seen, end = _split(fh.read())
                    tell = self._resync(key, entry, seen)
        except FileNotFoundError:
            return []
        except OSError as exc:
            _log("warning", "git watcher: cannot read %s: %s", path, exc.strerror)
            return []
        entry.stat = stat if end == st.st_size else None  # a half-written last line: read again
        if end != entry.offset or (seen and _digest(seen[-1]) != entry.tail):
            entry.advance(seen, end)
            if not seen:
                entry.offset, entry.tail, entry.tail_len = 0, "", 0
            self._dirty = True
        lines = []
        for raw in tell:
            line = _parse(key, raw)
            if line is None:
                _log("debug", "git watcher: skipped a malformed line of %s: %r", key, raw[:200])
                continue
            self._seq += 1
            line.seq, line.since = self._seq, self._clock()
            lines.append(line)
        return lines

    def _resync(self, key: str, entry: _Log, raws: list[bytes]) -> list[bytes]:
        """The lines to tell of a reflog rewritten (``git reflog expire``, ``reflog
        delete``), cut shorter, or deleted and made again: those after our last line if it
        is still there, else those newer than it (by time; in its very second, those not
        among the last lines we read)."""
        if not entry.tail_len:
            return raws
        _log("info", "git watcher: %s was rewritten; resynchronising", key)
        for index in range(len(raws) - 1, -1, -1):
            if _digest(raws[index]) == entry.tail:
                return raws[index + 1 :]
        fresh = []
        for raw in raws:
            line = _parse(key, raw)
            if line is None:
                continue
            if line.time > entry.time or (line.time == entry.time and line.fingerprint not in entry.recent):
                fresh.append(raw)
        return fresh

    # -- telling ------------------------------------------------------------------------

    def _match(self, branch_lines: list[_Line], head_lines: list[_Line],
               events: list[tuple[int, tuple[int, int, int], GitEvent]]) -> list[_Line]:
        """Events of the branch lines, each with the worktree of its HEAD line; returns the
        HEAD lines no branch line claimed."""
        by_key: dict[str, list[_Line]] = {}
        by_finish: dict[tuple[str, str], _Line] = {}
        for ln in head_lines:
            by_key.setdefault(ln.key, []).append(ln)
            ref = _returning_to(ln.message)
            if ref is not None:
                by_finish[(ref, ln.new)] = ln
        claimed: set[int] = set()
        told: list[tuple[_Line, _Line | None]] = []
        for ln in branch_lines:
            ref = ln.log[len("logs/") :]
            partners = by_key.get(ln.key)
            head = partners.pop(0) if partners else by_finish.pop((ref, ln.new), None)
            if head is not None:
                claimed.add(id(head))
            else:
                self._recent_keys.append(ln.key)
                self._dirty = True
            told.append((ln, head))
        # Order: a move with a HEAD line takes its place in that worktree's HEAD log; one
        # without (a branch created, a push) goes just before the next move of the same ref
        # that has one, or after everything when there is none.
        next_seq: dict[str, int] = {}
        for ln, head in reversed(told):
            if head is not None:
                order = (head.seq, 0, 0)
                next_seq[ln.log] = head.seq
            else:
                order = (next_seq.get(ln.log, _LAST + ln.seq), -1, ln.seq)
            event = self._event(ln, head, head_only=False)
            if event is not None:
                events.append((ln.time, order, event))
        left = []
        for ln in head_lines:
            if id(ln) in claimed or _returning_to(ln.message) is not None:
                continue
            if ln.key in self._recent_keys:  # its branch line was told earlier
                continue
            left.append(ln)
        return left

    @staticmethod
    def _needs_branch_line(ln: _Line) -> bool:
        """A HEAD line that a branch line may still claim (anything but a move of HEAD alone
        by checkout or a rebase step, and anything that moved)."""
        action = ln.message.partition(": ")[0]
        if ln.old == ln.new or not ln.message or action == "checkout" or _rebase_step(action):
            return False
        return True

    def _event(self, ln: _Line, head: _Line | None, *, head_only: bool) -> GitEvent | None:
        ref = None if head_only else ln.log[len("logs/") :]
        worktree = self._worktree_of(ln.log) if head_only else (self._worktree_of(head.log) if head else None)
        action, sep, rest = ln.message.partition(": ")
        if not sep:
            action, rest = ln.message, ""
        fields: dict[str, Any] = {}
        if ref is not None and ref.startswith("refs/remotes/"):
            kind = "push" if action == "update by push" else "fetch"
            if kind == "fetch":
                fields["source"] = action
        elif action == "checkout" and rest.startswith("moving from "):
            source, _, target = rest[len("moving from ") :].partition(" to ")
            kind, fields = "checkout", {"source": source, "target": target}
        elif head_only and (not ln.message or ln.old == ln.new):
            return None  # HEAD made (worktree add) or set where it was: no move
        elif ln.old == ln.new:
            return None
        elif action == "commit" or action.startswith("commit ("):
            kind = "merge" if action == "commit (merge)" else "commit"
            fields = {"subject": rest, "amend": action == "commit (amend)"}
        elif action in ("cherry-pick", "revert", "am"):
            kind, fields = "commit", {"subject": rest, "source": action}
        elif action.startswith("merge "):
            kind = "merge"
            fields = {"source": action[len("merge ") :], "fast_forward": rest.startswith("Fast-forward")}
        elif _rebase_step(action):
            step = action[action.rindex("(") + 1 : -1]
            if head_only and step != "abort":
                return None  # a rebase's own moves of a detached HEAD: told once, at its finish
            kind = "pull" if action.startswith("pull") else "rebase"
            onto = rest.rpartition(" onto ")[2] if " onto " in rest else None
            fields = {"target": onto, "source": action.rpartition(" (")[0] if kind == "pull" else None}
        elif action == "pull" or action.startswith("pull "):
            kind = "pull"
            fields = {"source": action[len("pull") :].strip() or None, "fast_forward": rest.startswith("Fast-forward")}
        elif action == "reset":
            kind, fields = "reset", {"target": rest.removeprefix("moving to ")}
        elif action in ("branch", "Branch"):
            kind, fields = "branch", {"source": rest or None}
        else:
            kind = "other"
        return GitEvent(kind, ref, ln.old, ln.new, worktree, ln.message, ln.time, **fields)


def _group(key: str) -> str:
    return "head" if key.endswith("logs/HEAD") else "ref"


def _rebase_step(action: str) -> bool:
    """``rebase (pick)``, ``rebase -i (finish)``, ``pull --rebase (start)``..."""
    return action.endswith(")") and " (" in action and (action.startswith("rebase") or action.startswith("pull"))


def _returning_to(message: str) -> str | None:
    """The ref of a HEAD line ``rebase (finish): returning to refs/heads/x``, else ``None``."""
    action, _, rest = message.partition(": ")
    if _rebase_step(action) and action.endswith("(finish)") and rest.startswith("returning to "):
        return rest[len("returning to ") :]
    return None
