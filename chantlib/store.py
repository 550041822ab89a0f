"""SpecStore: the files under ``.chant/`` (specs, archive, config) and how they are written.

Owns discovery of the ``.chant/`` folder from any subfolder, the walk over spec files, and
atomic writes (temp file in the same folder, fsync, rename): a reader or a crash never sees
half a file. OS errors become :class:`~chantlib.errors.StorageError` here. The store knows
nothing of the index, locks or rules.
"""

from __future__ import annotations

import os
import re

from .errors import AlreadyExists, Conflict, NotInitialized, StorageError

__all__ = ["SpecStore", "find_root", "atomic_write", "private_dir", "CHANT_DIR", "RUNTIME_IGNORES"]

CHANT_DIR = ".chant"

#: What ``chant init`` writes to ``.chant/.gitignore``: runtime state, never committed.
RUNTIME_IGNORES = (
    "# Local state (not shared)",
    ".locks/",
    ".index/",
    ".store/",
    "store/",
    "logs/",
    "daemon.sock",
    "daemon.json",
    "daemon.token",
    "daemon.pid",
    "daemon.lock",
    "",
    "# Agent configuration (contains API keys, not shared)",
    "agents.md",
)


def find_root(start: str | os.PathLike | None = None) -> str:
    """The nearest folder at or above ``start`` that holds ``.chant/``."""
    here = os.path.abspath(os.fspath(start) if start is not None else os.getcwd())
    probe = here
    while True:
        if os.path.isdir(os.path.join(probe, CHANT_DIR)):
            return probe
        parent = os.path.dirname(probe)
        if parent == probe:
            raise NotInitialized(f"No .chant/ folder in {here} or any parent; run `chant init` first", path=here)
        probe = parent


#: the name atomic_write gives its temp file: ``.<name>.<pid>.<6 hex>.tmp``
_TEMP_RE = re.compile(r"^\..+\.(\d+)\.[0-9a-f]{6}\.tmp$")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


#: how long an edit waits for a spec file to hold still (an editor mid-save) before it refuses
EDIT_WAIT = 2.0
#: a file modified less than this long ago may still be being written: it must hold still this long
QUIET_NS = 100_000_000


class _Moved(Exception):
    """The file changed between the read an edit is based on and its rename."""


def _read_bytes(path: str) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError as exc:
        raise StorageError.from_os_error(exc, "read", path) from None


def _settled_read(path: str, deadline: float) -> bytes:
    """The bytes of ``path`` once a read can be trusted: the file is not empty, and it did
    not change while it was read, nor in the moment after when it had just been written."""
    import time

    while True:
        try:
            with open(path, "rb") as fh:
                before = os.fstat(fh.fileno())
                raw = fh.read()
                after = os.fstat(fh.fileno())
            same = (before.st_mtime_ns, before.st_size) == (after.st_mtime_ns, after.st_size) == (
                after.st_mtime_ns, len(raw))
        except FileNotFoundError:
            raw, same, after = b"", False, None  # between an editor's unlink and its rename
        except OSError as exc:
            raise StorageError.from_os_error(exc, "read", path) from None
        if same and after is not None and raw.strip():
            if time.time_ns() - after.st_mtime_ns >= QUIET_NS:
                return raw
            time.sleep(QUIET_NS / 1e9)  # just written: trusted if it holds still meanwhile
            try:
                again = os.stat(path)
            except OSError:
                again = None
            if again is not None and (again.st_mtime_ns, again.st_size, again.st_ino) == (
                    after.st_mtime_ns, after.st_size, after.st_ino):
                return raw
        if time.monotonic() >= deadline:
            what = "is empty" if same and not raw.strip() else "is being written" if after else "is missing"
            raise Conflict(
                f"cannot edit {path}: the file {what} (an editor saving it?); nothing was written, try again",
                path=path,
            )
        time.sleep(0.05)


def _same_keys(relpath: str, base: bytes, current: bytes, keys) -> None:
    """Refuse when another writer changed one of ``keys`` between ``base`` and ``current``."""
    if not keys:
        return
    from .spec import Spec, plain

    spec_id = relpath.rsplit("/", 1)[-1][:-3]
    old = Spec.parse(spec_id, base.decode("utf-8", "replace"))
    new = Spec.parse(spec_id, current.decode("utf-8", "replace"))
    for key in keys:
        was, now = plain(old.frontmatter.get(key)), plain(new.frontmatter.get(key))
        if was != now:
            raise Conflict(
                f"{key} of {spec_id} was changed by someone else while it was being written "
                f"({was!r} -> {now!r}); not overwritten",
                spec=spec_id,
                key=key,
            )


def private_dir(path: str) -> str:
    """Make ``path`` (and its parents) a folder only its owner can enter: runtime state
    (leases, the daemon's log) is ours alone, whatever the umask (a shared machine is not a
    trust boundary). A folder of ours found open to others is closed; one of another user's
    is left as it is (our writes there then fail with their own clear error)."""
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
        st = os.stat(path)
        if st.st_uid == os.getuid() and st.st_mode & 0o077:
            os.chmod(path, st.st_mode & 0o700)
    except OSError as exc:
        raise StorageError.from_os_error(exc, "create", path) from None
    return path


def atomic_write(
    path: str, data: str | bytes, *, exclusive: bool = False, mode: int | None = None, durable: bool = True,
    before_rename=None,
) -> None:
    """Write ``data`` to ``path`` through a temp file and a rename.

    ``exclusive`` refuses to replace an existing file (the final step is a hard link, which
    fails if the name exists, so two writers can never both succeed). ``durable`` fsyncs the
    data before the rename (survives a power cut, not only a killed process).
    ``before_rename()`` runs once the temp file is complete, just before it replaces
    ``path``: it may raise to call the write off (the temp file is removed).
    """
    tmp = _write_temp(path, data, mode, durable)
    try:
        if before_rename is not None:
            try:
                before_rename()
            except BaseException:
                os.unlink(tmp)
                raise
        if exclusive:
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise AlreadyExists(f"{path} already exists", path=path) from None
            finally:
                os.unlink(tmp)
        else:
            os.replace(tmp, path)
    except OSError as exc:
        _unlink_quietly(tmp)
        raise StorageError.from_os_error(exc, "write", path) from None


def _write_temp(path: str, data: str | bytes, mode: int | None = None, durable: bool = True) -> str:
    """The first half of :func:`atomic_write`: ``data`` in a temp file beside ``path`` (named
    so that :meth:`SpecStore.remove_dead_temps` knows it for ours), synced with ``durable``;
    returns its path."""
    folder = os.path.dirname(path) or "."
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{os.getpid()}.{os.urandom(3).hex()}.tmp")
    raw = data.encode("utf-8") if isinstance(data, str) else data
    try:
        if mode is None:
            try:
                mode = os.stat(path).st_mode & 0o777
            except FileNotFoundError:
                mode = 0o644
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        try:
            view = memoryview(raw)
            while view:
                view = view[os.write(fd, view) :]
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        _unlink_quietly(tmp)
        raise StorageError.from_os_error(exc, "write", path) from None
    return tmp


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


class StagedEdit:
    """An edit of a spec file made ahead of its place (:meth:`SpecStore.stage_text`): the
    new text written and synced to a temp file beside the file, from ``base``, the bytes
    the file had. :meth:`SpecStore.commit_staged` puts it in place; :meth:`discard` drops it
    (idempotent: a staged edit never committed leaves nothing behind)."""

    __slots__ = ("relpath", "path", "base", "text", "tmp")

    def __init__(self, relpath: str, path: str, base: bytes, text: str, tmp: str) -> None:
        self.relpath, self.path, self.base, self.text = relpath, path, base, text
        self.tmp: str | None = tmp

    def discard(self) -> None:
        tmp, self.tmp = self.tmp, None
        if tmp is not None:
            _unlink_quietly(tmp)


class SpecStore:
    """The spec files of one repository."""

    __slots__ = ("root", "chant_dir", "specs_dir", "archive_dir", "config_path", "temps")

    def __init__(self, root: str | os.PathLike) -> None:
        self.temps: list[str] = []  # our temp files the last scan saw (see remove_dead_temps)
        self.root = os.path.abspath(os.fspath(root))
        self.chant_dir = os.path.join(self.root, CHANT_DIR)
        self.specs_dir = os.path.join(self.chant_dir, "specs")
        self.archive_dir = os.path.join(self.chant_dir, "archive")
        self.config_path = os.path.join(self.chant_dir, "config.md")

    @classmethod
    def discover(cls, start: str | os.PathLike | None = None) -> SpecStore:
        return cls(find_root(start))

    def runtime_dir(self, name: str) -> str:
        """A runtime folder under ``.chant/`` (``.index``, ``.locks``, ``logs``), created on demand."""
        path = os.path.join(self.chant_dir, name)
        try:
            os.makedirs(path, exist_ok=True)
        except OSError as exc:
            raise StorageError.from_os_error(exc, "create", path) from None
        return path

    def scan(self, keep=None):
        """Yield ``(prefix, entries, folder_key)`` per folder under specs/ and archive/.

        ``entries`` are the ``os.DirEntry`` objects of the folder's ``*.md`` files; a file's
        path relative to ``.chant/`` is ``prefix + entry.name`` (``/`` separators). Hidden
        files and folders (editor temp files, our own temp files) are skipped. Batches per
        folder keep the per-file cost of the walk low: it runs on every direct command.

        ``keep(prefix, folder_key)`` is asked about each folder below ``archive/``
        (``folder_key`` = the folder's mtime_ns and inode); when it says True the folder is
        not read and ``entries`` is ``None``.
        """
        for top in ("specs", "archive"):
            stack: list[tuple[str, str, tuple[int, int] | None]] = [(os.path.join(self.chant_dir, top), top + "/", None)]
            while stack:
                folder, prefix, key = stack.pop()
                if keep is not None and key is not None and keep(prefix, key):
                    yield prefix, None, key
                    continue
                try:
                    it = os.scandir(folder)
                except (FileNotFoundError, NotADirectoryError):
                    continue
                except OSError as exc:
                    raise StorageError.from_os_error(exc, "read folder", folder) from None
                files = []
                with it:
                    for entry in it:
                        name = entry.name
                        if name[0] == ".":
                            if name.endswith(".tmp"):
                                self.temps.append(entry.path)  # maybe left by a killed writer
                            continue
                        if name.endswith(".md"):
                            if entry.is_file():
                                files.append(entry)
                        elif entry.is_dir():
                            sub_key = None
                            if top == "archive" and keep is not None:
                                try:
                                    st = entry.stat()
                                    sub_key = (st.st_mtime_ns, st.st_ino)
                                except OSError:
                                    sub_key = None
                            stack.append((entry.path, f"{prefix}{name}/", sub_key))
                yield prefix, files, key

    def remove_dead_temps(self) -> list[str]:
        """Remove the temp files the last scan saw whose writer is gone (a process killed
        between writing and renaming, see :func:`atomic_write`); returns their paths. A temp
        file whose process lives (or could: a reused PID) is left, unless it is an hour old."""
        import time

        removed = []
        now = time.time()
        for path in self.temps:
            m = _TEMP_RE.match(os.path.basename(path))
            if m is None:
                continue
            pid = int(m.group(1))
            try:
                age = now - os.lstat(path).st_mtime
            except OSError:
                continue
            if pid == os.getpid() or (_pid_alive(pid) and age < 3600):
                continue
            try:
                os.unlink(path)
                removed.append(path)
            except OSError:
                pass
        self.temps = []
        return removed

    def abspath(self, relpath: str) -> str:
        return os.path.join(self.chant_dir, *relpath.split("/"))

    def read_text(self, relpath: str) -> str:
        """The text of a spec file. Raises ``StorageError`` (unreadable) or ``UnicodeDecodeError``."""
        path = self.abspath(relpath)
        try:
            with open(path, "rb") as fh:
                raw = fh.read()
        except OSError as exc:
            raise StorageError.from_os_error(exc, "read", path) from None
        return raw.decode("utf-8")

    def new_spec_relpath(self, spec_id: str) -> str:
        return f"specs/{spec_id}.md"

    def write_text(self, relpath: str, text: str, *, exclusive: bool = False) -> None:
        path = self.abspath(relpath)
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
        except OSError as exc:
            raise StorageError.from_os_error(exc, "create", os.path.dirname(path)) from None
        atomic_write(path, text, exclusive=exclusive)

    def edit_text(self, relpath: str, change, *, keys=(), wait: float = EDIT_WAIT, base: bytes | None = None) -> str:
        """Rewrite a spec file from its text, as a compare-and-swap; returns the text written.

        ``change(text) -> text`` makes the new text (an edit of a few frontmatter ``keys``).
        The file is the user's, so a write is never based on a read that may not be the file
        they have: a read is trusted only once the file is not empty and holds still (an
        editor saving in place truncates, then writes: waited out up to ``wait`` seconds,
        then :class:`Conflict`, nothing written). Just before the rename the file is read
        again; if it changed meanwhile the edit is made again on the new text, unless one of
        ``keys`` itself changed, which is a :class:`Conflict` (two writers of one key: the
        later one is told, never silently reverted). ``base``: the bytes an earlier read of
        the file found (a staged edit's), from which ``keys`` must not have changed either.
        """
        import time

        path = self.abspath(relpath)
        deadline = time.monotonic() + wait
        if base is None:
            base = _settled_read(path, deadline)
        else:
            current = _settled_read(path, deadline)
            _same_keys(relpath, base, current, keys)
            base = current
        for _attempt in range(8):
            text = change(base.decode("utf-8"))

            def unchanged(base=base) -> None:
                if _read_bytes(path) != base:
                    raise _Moved

            try:
                atomic_write(path, text, before_rename=unchanged)
                return text
            except _Moved:
                current = _settled_read(path, deadline)
                _same_keys(relpath, base, current, keys)
                base = current
        raise Conflict(f"cannot edit {path}: it keeps changing while it is written; try again", path=path)

    def stage_text(self, relpath: str, change, *, wait: float = EDIT_WAIT) -> StagedEdit:
        """The long part of :meth:`edit_text`, done ahead: a read that can be trusted (which
        may wait out an editor's save), the new text, written and synced to a temp file. The
        file itself is not touched; :meth:`commit_staged` puts the edit in place (a daemon
        stages a write before it takes its table lock, so the lock is held for a rename)."""
        import time

        path = self.abspath(relpath)
        base = _settled_read(path, time.monotonic() + wait)
        text = change(base.decode("utf-8"))
        return StagedEdit(relpath, path, base, text, _write_temp(path, text))

    def commit_staged(self, staged: StagedEdit, change, *, keys=(), wait: float = EDIT_WAIT) -> str:
        """Put a staged edit in place if the file is still what it was based on (a rename);
        else the edit is made again on the file as it is now, as :meth:`edit_text` makes it
        (a :class:`Conflict` if one of ``keys`` changed meanwhile). Returns the text written."""
        if staged.tmp is not None and _read_bytes(staged.path) == staged.base:
            tmp, staged.tmp = staged.tmp, None
            try:
                os.replace(tmp, staged.path)
            except OSError as exc:
                _unlink_quietly(tmp)
                raise StorageError.from_os_error(exc, "write", staged.path) from None
            return staged.text
        staged.discard()
        return self.edit_text(staged.relpath, change, keys=keys, wait=wait, base=staged.base)

    def write_gitignore(self) -> None:
        """``.chant/.gitignore``: the runtime entries; one that exists keeps every line it has
        and gains the entries it lacks (a repository made by an older chant)."""
        path = os.path.join(self.chant_dir, ".gitignore")
        try:
            with open(path, encoding="utf-8") as fh:
                text = fh.read()
        except FileNotFoundError:
            atomic_write(path, "\n".join(RUNTIME_IGNORES) + "\n")
            return
        except (OSError, UnicodeDecodeError) as exc:
            raise StorageError(f"cannot read {path}: {exc}", path=path) from None
        have = {line.strip() for line in text.splitlines()}
        missing = [entry for entry in RUNTIME_IGNORES if entry and not entry.startswith("#") and entry not in have]
        if missing:
            sep = "" if not text or text.endswith("\n") else "\n"
            atomic_write(path, f"{text}{sep}\n# Added by chant init\n" + "\n".join(missing) + "\n")

    def init(self, project_name: str | None = None) -> bool:
        """Create ``.chant/`` with its folders, config and .gitignore. False if it existed."""
        existed = os.path.isdir(self.chant_dir)
        for sub in ("", "specs", "archive", "prompts"):
            path = os.path.join(self.chant_dir, sub)
            try:
                os.makedirs(path, exist_ok=True)
            except OSError as exc:
                raise StorageError.from_os_error(exc, "create", path) from None
        self.write_gitignore()
        if not os.path.exists(self.config_path):
            name = project_name or os.path.basename(self.root) or "project"
            from .spec import dump_yaml_value

            front = dump_yaml_value("project", {"name": name}) + dump_yaml_value("defaults", {"prompt": "standard"})
            atomic_write(self.config_path, f"---\n{front}---\n\n# Chant Configuration\n")
        return not existed
