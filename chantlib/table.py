"""SpecTable: every spec's summary row, kept in step with the files, cached on disk.

The table is what ``list``, ``status``, the graph rules, the queue and lint read: one
:class:`Row` per spec file with the frontmatter facts and a few body facts (title,
checkbox counts, word count, referenced IDs). It is persisted to
``.chant/.index/table.marshal`` and refreshed incrementally: a file is re-read only when
its size, mtime or inode changed, or when its mtime was too recent to trust (the "racy"
window: two writes within one timestamp tick look alike, so such files are re-hashed on the
next refresh). A table thrown away is rebuilt from the files with the same content.

This module is on the CLI's fast path: it imports neither the YAML parser nor tantivy
unless a file has to be parsed.
"""

from __future__ import annotations

import marshal
import os
import sys
import time
import zlib
from operator import itemgetter

from .ids import parse_id, resolve_partial, sort_key

__all__ = ["Row", "FullRow", "SpecTable", "summarize", "FIELDS", "HOT_FIELDS", "COLD_FIELDS"]

FORMAT = 7  # 6: the cached config holds what the files said; 7: the hot lint and members fields
RACY_NS = 2_000_000_000
#: How often every archived file is stat'ed even when its folder looks unchanged (see refresh)
ARCHIVE_VERIFY_NS = 60_000_000_000
TABLE_FILE = "table.marshal"

#: What list, the rules, the queue and summaries read on every command.
#: ``members`` (the key) and ``lint`` (the rules of ``lint.ROW_RULES`` the file breaks) are
#: what the queue needs to hold back a spec lint reports an error for.
HOT_FIELDS = (
    "id", "path", "archived", "status", "type", "title", "depends_on", "labels", "priority",
    "approval", "checked", "total", "project", "completed_at", "error", "members", "lint",
)
#: What only lint, the index and show read: kept as one marshal blob per row, decoded on use,
#: so a warm command loads one bytes object per row instead of a dozen small objects.
COLD_FIELDS = (
    "target_files", "commits", "branch", "prompt", "words", "refs", "keys", "created", "raw_status", "raw_type",
)
FIELDS = HOT_FIELDS + COLD_FIELDS
_COLD = len(HOT_FIELDS)
_ID, _PATH, _ARCHIVED, _STATUS, _ERROR = 0, 1, 2, 3, HOT_FIELDS.index("error")


class Row(tuple):
    """A spec's summary: the hot fields, then the cold ones as one blob (see ``FIELDS``)."""

    __slots__ = ()

    @property
    def cold(self) -> tuple:
        return marshal.loads(self[_COLD])

    def to_dict(self) -> dict:
        return dict(zip(FIELDS, self[:_COLD] + self.cold, strict=True))

    def full(self) -> FullRow:
        """Every field as an attribute, the cold ones decoded once (for lint and indexing)."""
        return FullRow(self[:_COLD] + self.cold)


class FullRow:
    """A row with its cold fields decoded: the same attribute names as :class:`Row`."""

    __slots__ = FIELDS

    def __init__(self, values: tuple) -> None:
        for name, value in zip(FIELDS, values, strict=True):
            setattr(self, name, value)

    def full(self) -> FullRow:
        return self


def _cold_getter(i: int):
    return property(lambda self: marshal.loads(self[_COLD])[i])


for _i, _name in enumerate(HOT_FIELDS):
    setattr(Row, _name, property(itemgetter(_i)))
for _i, _name in enumerate(COLD_FIELDS):
    setattr(Row, _name, _cold_getter(_i))


_intern = sys.intern


def _tuple(value) -> tuple:
    # interned: marshal then stores each repeated string once, and loads faster
    return tuple(_intern(v) for v in value) if value else ()


def _opt(value) -> str | None:
    return None if value is None else _intern(str(value))


def summarize(relpath: str, spec) -> tuple:
    """The row of a parsed :class:`~chantlib.spec.Spec` stored at ``relpath``."""
    from .lint import row_findings
    from .spec import priority_value, referenced_ids

    fm = spec.frontmatter
    approval = spec.approval
    parsed = parse_id(spec.id)
    checked, total = spec.criteria
    members_key = fm.get("members")
    raw_status = fm.get("status")
    raw_type = fm.get("type")
    cold = (
        _tuple(spec.target_files),
        _tuple(spec.commits),
        _opt(fm.get("branch")),
        _opt(fm.get("prompt")),
        len(spec.body.split()),
        tuple(referenced_ids(spec.body)),
        tuple(_intern(str(k)) for k in fm),
        _opt(parsed.date) if parsed else None,
        _opt(raw_status),
        _opt(raw_type),
    )
    approval_row = None if approval is None else (
        bool(approval.get("required")),
        _opt(approval.get("status")),
        _opt(approval.get("by")),
        _opt(approval.get("at")),
    )
    return (
        spec.id,
        relpath,
        relpath.startswith("archive/"),
        _intern(spec.status.lower()),
        _intern(spec.type.lower()),
        spec.title,
        None if spec.depends_on is None else _tuple(spec.depends_on),
        _tuple(spec.labels),
        priority_value(fm.get("priority")),
        approval_row,
        checked,
        total,
        _opt(parsed.project) if parsed else None,
        None if fm.get("completed_at") is None else str(fm.get("completed_at")),
        spec.error,
        _tuple(spec.list_value("members")) if members_key is not None else (),
        tuple(_intern(rule) for rule in row_findings(spec, approval_row)),
        marshal.dumps(cold),
    )


def _marshals(value) -> bool:
    try:
        marshal.dumps(value)
    except ValueError:
        return False
    return True


def _marshallable(data: dict) -> dict:
    """``data`` without the entries marshal cannot store: cached facts are left out (they are
    worked out again), rows too, with their file stamps (those files are read again). Every
    value should be plain already; this keeps one that is not from costing the whole table,
    which would make every command read every file."""
    extra = {k: v for k, v in data["extra"].items() if _marshals(v)}
    rows = {rel: row for rel, row in data["rows"].items() if _marshals(row)}
    files = {rel: key for rel, key in data["files"].items() if rel in rows and _marshals(key)}
    return dict(data, extra=extra, rows=rows, files=files)


def _error_row(relpath: str, spec_id: str, error: str) -> tuple:
    parsed = parse_id(spec_id)
    cold = ((), (), None, None, 0, (), (), parsed.date if parsed else None, None, None)
    return (
        spec_id, relpath, relpath.startswith("archive/"), "pending", "code", None, None, (), 50, None,
        0, 0, parsed.project if parsed else None, None, error, (), (), marshal.dumps(cold),
    )


def parse_file(relpath: str, raw: bytes) -> tuple[tuple, object]:
    """Parse one file's bytes: (row, spec or None). Never raises."""
    from .spec import Spec

    spec_id = relpath.rsplit("/", 1)[-1][:-3]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return _error_row(relpath, spec_id, f"file is not valid UTF-8 (byte offset {exc.start})"), None
    spec = Spec.parse(spec_id, text)
    return summarize(relpath, spec), spec


class Changes:
    """What one refresh saw: paths added, changed and removed, and the specs it parsed."""

    __slots__ = ("added", "changed", "removed", "parsed")

    def __init__(self) -> None:
        self.added: list[str] = []
        self.changed: list[str] = []
        self.removed: list[str] = []
        self.parsed: dict = {}

    def __bool__(self) -> bool:
        return bool(self.added or self.changed or self.removed)


class SpecTable:
    """The summary rows of one store, refreshed from the files.

    ``cache_dir``: where to persist the table (``None``: memory only).
    """

    def __init__(self, store, cache_dir: str | None = None) -> None:
        self.store = store
        self.cache_dir = cache_dir
        self.files: dict[str, tuple] = {}  # relpath -> (mtime_ns, size, ino, crc)
        self.folders: dict[str, tuple] = {}  # archive folder prefix -> (mtime_ns, ino) when last read
        self.archive_verified_ns = 0  # when every archived file was last stat'ed
        self.rows: dict[str, tuple] = {}  # relpath -> row tuple (see row())
        self.extra: dict = {}  # other cached facts (config, graph), dropped on any change
        self.generation = 0
        self.warnings: list[str] = []
        self._racy: set[str] = set()
        self._by_id: dict[str, Row] | None = None
        self._active: dict[str, Row] | None = None
        self._archived: dict[str, Row] | None = None
        self._archived_raw: dict[str, tuple] = {}
        self._broken: dict[str, Row] = {}
        self._duplicates: list[tuple[str, list[str]]] = []
        self._graph = None
        self._loaded = False
        self._dirty = False

    # persistence

    def _table_path(self) -> str | None:
        return os.path.join(self.cache_dir, TABLE_FILE) if self.cache_dir else None

    def load(self) -> None:
        """Read the cached table, once (refresh does it too)."""
        if not self._loaded:
            self._load()

    def _load(self) -> None:
        self._loaded = True
        path = self._table_path()
        if path is None:
            return
        try:
            with open(path, "rb") as fh:
                data = marshal.loads(fh.read())
        except (OSError, EOFError, ValueError, TypeError):
            return
        if not isinstance(data, dict) or data.get("format") != (FORMAT, sys.version_info[:2], self.store.root):
            return
        self.files = data["files"]
        self.folders = data["folders"]
        self.archive_verified_ns = data["archive_verified_ns"]
        self.rows = data["rows"]
        self._racy = set(data["racy"])
        self.extra = data["extra"]

    def flush(self) -> None:
        """Save the table if anything in it changed since it was loaded or saved."""
        if self._dirty:
            self.save()

    def save(self) -> None:
        """Write the table (temp file + rename). Silently skipped when the folder is unwritable."""
        path = self._table_path()
        if path is None:
            return
        data = {
            "format": (FORMAT, sys.version_info[:2], self.store.root),
            "files": self.files,
            "folders": self.folders,
            "archive_verified_ns": self.archive_verified_ns,
            "rows": self.rows,
            "racy": sorted(self._racy),
            "extra": self.extra,
        }
        from .errors import StorageError
        from .store import atomic_write

        self._dirty = False
        try:
            try:
                blob = marshal.dumps(data)
            except ValueError:  # a value marshal refuses (a subclass of int, an object)
                blob = marshal.dumps(_marshallable(data))
            atomic_write(path, blob, mode=0o644, durable=False)  # a cache: rebuilt if lost
        except (StorageError, ValueError) as exc:
            self.warnings.append(f"cannot save the spec table in {self.cache_dir}: {getattr(exc, 'message', exc)}")

    # refresh

    def refresh(self, *, save: bool = True, full: bool = False) -> Changes:
        """Bring the table in step with the files; returns what changed.

        Every spec under ``specs/`` is stat'ed on every refresh. Archived specs are history:
        a folder of the archive whose mtime and inode are what they were when it was last
        read is taken as unchanged (adding, removing or renaming a file, and every save that
        writes a new file and renames it over the old one, change the folder), and every
        archived file is stat'ed anyway once a minute, and whenever ``full`` is set. So an
        archived spec edited in place shows within a minute in direct mode; the daemon's
        watcher sees it at once.
        """
        if not self._loaded:
            self._load()
        changes = Changes()
        scan_ns = time.time_ns()
        seen: set[str] = set()
        skipped: set[str] = set()
        files = self.files
        racy = self._racy
        new_racy: set[str] = set()
        racy_since = scan_ns - RACY_NS
        verify = full or scan_ns - self.archive_verified_ns > ARCHIVE_VERIFY_NS
        folders = self.folders

        def keep(prefix: str, key: tuple) -> bool:
            return (
                not verify
                and folders.get(prefix) == key
                and key[0] < racy_since
                and not any(r.startswith(prefix) for r in racy)
            )

        visited: set[str] = set()
        for prefix, entries, folder_key in self.store.scan(keep=keep):
            visited.add(prefix)
            if entries is None:
                skipped.add(prefix)
                continue
            if folder_key is not None:
                folders[prefix] = folder_key
            for entry in entries:
                rel = prefix + entry.name
                try:
                    st = entry.stat()
                except OSError:
                    continue  # gone since the folder was read: removed below
                seen.add(rel)
                old = files.get(rel)
                if (
                    old is not None
                    and old[0] == st.st_mtime_ns
                    and old[1] == st.st_size
                    and old[2] == st.st_ino
                    and rel not in racy
                ):
                    continue
                self._read_one(rel, (st.st_mtime_ns, st.st_size, st.st_ino), old, changes)
                if st.st_mtime_ns >= racy_since:
                    new_racy.add(rel)
        def unread(path: str) -> bool:
            """Below a folder that was skipped, at any depth: not read, so not gone."""
            i = path.find("/")
            while i != -1:
                if path[: i + 1] in skipped:
                    return True
                i = path.find("/", i + 1)
            return False

        for rel in [r for r in files if r not in seen and not unread(r)]:
            del files[rel]
            self.rows.pop(rel, None)
            changes.removed.append(rel)
        for prefix in [p for p in folders if p not in visited and not unread(p[:-1])]:
            del folders[prefix]
        if self.store.temps:
            self.store.remove_dead_temps()
        if verify:
            self.archive_verified_ns = scan_ns
            self._dirty = True
        self._racy = new_racy
        if changes:
            self._changed()
        if changes or racy != new_racy:
            self._dirty = True
        if save:
            self.flush()
        return changes

    def refresh_paths(self, relpaths) -> Changes:
        """Re-read just these files (the daemon's watcher knows what moved)."""
        if not self._loaded:
            self._load()
        changes = Changes()
        before = {rel: self.rows.get(rel) for rel in relpaths}
        for rel in relpaths:
            try:
                st = os.stat(self.store.abspath(rel))
            except FileNotFoundError:
                if rel in self.files:
                    del self.files[rel]
                    self.rows.pop(rel, None)
                    changes.removed.append(rel)
                continue
            except OSError:
                continue
            key = (st.st_mtime_ns, st.st_size, st.st_ino)
            self._read_one(rel, key, self.files.get(rel), changes)
        if changes:
            if not self._patch(before, changes):
                self._changed()
            self._dirty = True
        return changes

    def _patch(self, before: dict, changes: Changes) -> bool:
        """Update the id maps for a few changed files in place, instead of rebuilding them
        from every row (the daemon's watcher applies one file at a time). False when the
        change touches anything unusual (a file that does not parse, two files with one
        ID): the caller then rebuilds from scratch."""
        if self._active is None:
            return False
        new_row = tuple.__new__
        for rel in changes.added + changes.changed + changes.removed:
            old, new = before.get(rel), self.rows.get(rel)
            for t in (old, new):
                if t is not None and (t[_ERROR] is not None or any(t[_ID] == d for d, _paths in self._duplicates)):
                    return False
            if old is not None:
                target = self._archived_raw if old[_ARCHIVED] else self._active
                current = target.get(old[_ID])
                if current is None or current[_PATH] != rel:
                    return False
            if new is not None:
                target = self._archived_raw if new[_ARCHIVED] else self._active
                current = target.get(new[_ID])
                if current is not None and current[_PATH] != rel:
                    return False  # another file holds this ID: a duplicate
        for rel in changes.added + changes.changed + changes.removed:
            old, new = before.get(rel), self.rows.get(rel)
            if old is not None:
                if old[_ARCHIVED]:
                    del self._archived_raw[old[_ID]]
                    if self._archived is not None:
                        del self._archived[old[_ID]]
                else:
                    del self._active[old[_ID]]
            if new is not None:
                if new[_ARCHIVED]:
                    self._archived_raw[new[_ID]] = new
                    if self._archived is not None:
                        self._archived[new[_ID]] = new_row(Row, new)
                else:
                    self._active[new[_ID]] = new_row(Row, new)
        self._invalidate()  # the id maps were patched above: only the derived views go
        return True

    def _read_one(self, rel: str, key: tuple, old, changes: Changes) -> None:
        try:
            with open(self.store.abspath(rel), "rb") as fh:
                raw = fh.read()
        except OSError as exc:
            self.warnings.append(f"cannot read {self.store.abspath(rel)}: {exc.strerror or exc}")
            return
        crc = zlib.crc32(raw)
        self.files[rel] = (key[0], key[1], key[2], crc)
        if old is not None and old[3] == crc and rel in self.rows:
            return
        row, spec = parse_file(rel, raw)
        self.rows[rel] = row
        changes.parsed[rel] = spec
        (changes.changed if old is not None else changes.added).append(rel)

    def _invalidate(self) -> None:
        """Rows changed: a new generation; cached results (but the config) and the graph go."""
        self.generation += 1
        self.extra = {k: v for k, v in self.extra.items() if k.startswith("config")}
        self._by_id = None
        self._graph = None

    def _changed(self) -> None:
        self._invalidate()
        self._active = self._archived = None

    def clear(self) -> None:
        """Forget everything (a rebuild starts here)."""
        self.files.clear()
        self.folders.clear()
        self.archive_verified_ns = 0
        self.rows.clear()
        self._racy.clear()
        self.extra = {}
        self._loaded = True
        self._changed()

    # views

    def row(self, relpath: str) -> Row:
        """The :class:`Row` of one file."""
        return tuple.__new__(Row, self.rows[relpath])

    def _index(self) -> None:
        # Only active rows are wrapped as Row objects up front: the archive is usually most
        # of the table and the rules need just its statuses. Two files with one ID: the
        # smaller path wins (deterministic), and lint reports the duplicate.
        active: dict[str, tuple] = {}
        archived: dict[str, tuple] = {}
        broken: dict[str, Row] = {}
        dup: dict[str, set[str]] = {}
        new = tuple.__new__
        for rel, t in self.rows.items():
            if t[_ERROR] is not None:
                broken[rel] = new(Row, t)
                continue
            target = archived if t[_ARCHIVED] else active
            spec_id = t[_ID]
            other = target.get(spec_id)
            if other is None:
                target[spec_id] = t
                continue
            target[spec_id] = other if other[_PATH] < t[_PATH] else t
            dup.setdefault(spec_id, set()).update((other[_PATH], t[_PATH]))
        self._active = {i: new(Row, t) for i, t in active.items()}
        self._archived_raw, self._broken = archived, broken
        self._archived = None
        self._by_id = None
        self._duplicates = sorted(((k, sorted(v)) for k, v in dup.items()), key=lambda kv: sort_key(kv[0]))

    @property
    def broken(self) -> dict[str, Row]:
        """relpath -> row for files that could not be parsed (left out of every other view)."""
        if self._active is None:
            self._index()
        return self._broken

    @property
    def active(self) -> dict[str, Row]:
        """id -> row for the specs under ``specs/``."""
        if self._active is None:
            self._index()
        return self._active  # type: ignore[return-value]

    @property
    def archived(self) -> dict[str, Row]:
        """id -> row for the archive."""
        if self._active is None:
            self._index()
        if self._archived is None:
            new = tuple.__new__
            self._archived = {i: new(Row, t) for i, t in self._archived_raw.items()}
        return self._archived

    def archived_statuses(self) -> dict[str, str]:
        if self._active is None:
            self._index()
        return {i: t[_STATUS] for i, t in self._archived_raw.items()}

    @property
    def by_id(self) -> dict[str, Row]:
        """id -> row, active specs shadowing archived ones of the same ID."""
        if self._by_id is None:
            by_id = dict(self.archived)
            by_id.update(self.active)
            self._by_id = by_id
        return self._by_id

    @property
    def duplicates(self) -> list[tuple[str, list[str]]]:
        if self._active is None:
            self._index()
        return self._duplicates

    @property
    def graph(self):
        """The :class:`~chantlib.graph.Graph` of the active specs (cached with the table)."""
        if self._graph is None:
            from .graph import Graph

            g = Graph(self.active, self.archived_statuses())
            cached = self.extra.get("graph")  # dropped by _changed(), so present means valid
            if cached is not None:
                g._ready = list(cached[0])
                g._blocked = set(cached[1])
            else:
                self.extra["graph"] = (tuple(g.ready), tuple(sorted(g.blocked)))
                self._dirty = True
            self._graph = g
        return self._graph

    def resolve(self, partial: str, today: str | None = None, *, broken: bool = False) -> Row:
        """The row of a partial ID: active specs first, then the archive (then, with
        ``broken``, files that do not parse)."""
        from .errors import SpecNotFound

        pools = [self.active, self.archived]
        if broken:
            pools.append({row.id: row for row in self.broken.values()})
        for n, pool in enumerate(pools):
            try:
                return pool[resolve_partial(partial, pool, today)]
            except SpecNotFound:
                if n == len(pools) - 1:
                    raise
        raise SpecNotFound(partial)
