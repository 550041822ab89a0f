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

TYPE_CHECKING = False  # typing is not imported at run time (the CLI's fast path); mypy reads the block
if TYPE_CHECKING:
    from .graph import Graph
    from .snapshot import Snapshot

__all__ = ["Row", "FullRow", "SpecTable", "summarize", "weakly", "FIELDS", "HOT_FIELDS", "COLD_FIELDS"]

FORMAT = 7  # 6: the cached config holds what the files said; 7: the hot lint and members fields
RACY_NS = 2_000_000_000
#: How often every archived file is stat'ed even when its folder looks unchanged (see refresh)
ARCHIVE_VERIFY_NS = 60_000_000_000
TABLE_FILE = "table.marshal"
#: a refresh that parses more files than this keeps none of the parsed specs (see _read_many)
PARSED_KEEP = 1000

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
#: what the set-level lint rules read across rows (dependency edges, members, who is active)
_STRUCTURE = tuple(HOT_FIELDS.index(name) for name in ("id", "archived", "depends_on", "error", "members"))


class _Fields:
    """The fields of a row by name, for the type checker: :class:`Row` reads them from its
    tuple (properties made below), :class:`FullRow` holds them. In ``FIELDS`` order."""

    __slots__ = ()

    # HOT_FIELDS
    id: str
    path: str
    archived: bool
    status: str
    type: str
    title: str | None
    depends_on: tuple[str, ...] | None  # None: no depends_on key
    labels: tuple[str, ...]
    priority: int | None
    approval: tuple[bool, str | None, str | None, str | None] | None  # (required, status, by, at)
    checked: int
    total: int
    project: str | None
    completed_at: str | None
    error: str | None
    members: tuple[str, ...]
    lint: tuple[str, ...]
    # COLD_FIELDS
    target_files: tuple[str, ...]
    commits: tuple[str, ...]
    branch: str | None
    prompt: str | None
    words: int
    refs: tuple[str, ...]
    keys: tuple[str, ...]
    created: str | None
    raw_status: str | None
    raw_type: str | None


class Row(tuple, _Fields):
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


class FullRow(_Fields):
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


def weakly(method):
    """A listener that calls the bound ``method`` while its object lives, and does nothing
    after: a table (or a lock table) must not keep what listens to it alive (an index and
    the writer lock it holds, a gate, a workspace's subscribers)."""
    import weakref

    ref = weakref.WeakMethod(method)

    def call(*args) -> None:
        bound = ref()
        if bound is not None:
            bound(*args)

    return call


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


class _ArchivedStatuses:
    """id -> status of the archive, read through its rows: what the graph asks of the archive
    (is a dependency done?), without a dict of its own to build or keep in step."""

    __slots__ = ("_raw",)

    def __init__(self, raw: dict) -> None:
        self._raw = raw

    def get(self, spec_id: str, default=None):
        t = self._raw.get(spec_id)
        return default if t is None else t[_STATUS]

    def __contains__(self, spec_id) -> bool:
        return spec_id in self._raw

    def __getitem__(self, spec_id: str) -> str:
        return self._raw[spec_id][_STATUS]

    def __len__(self) -> int:
        return len(self._raw)

    def __iter__(self):
        return iter(self._raw)


class _ById:
    """The active specs over the archived ones, looked up in both: see ``SpecTable.by_id``.
    A read-only mapping (not a ``collections.abc.Mapping``: that import is not on the CLI's
    fast path) over the table's two id maps as they are when it is made."""

    __slots__ = ("_active", "_archived")

    def __init__(self, active: dict, archived_raw: dict) -> None:
        self._active = active
        self._archived = archived_raw

    def __getitem__(self, spec_id: str) -> Row:
        row = self._active.get(spec_id)
        if row is not None:
            return row
        t = self._archived[spec_id]
        return tuple.__new__(Row, t)

    def __contains__(self, spec_id) -> bool:
        return spec_id in self._active or spec_id in self._archived

    def __iter__(self):
        active = self._active
        yield from active
        for spec_id in self._archived:
            if spec_id not in active:
                yield spec_id

    def __len__(self) -> int:
        active = self._active
        return len(active) + sum(1 for spec_id in self._archived if spec_id not in active)

    def get(self, spec_id: str, default=None):
        try:
            return self[spec_id]
        except KeyError:
            return default

    def keys(self):
        return iter(self)

    def items(self):
        return ((spec_id, self[spec_id]) for spec_id in self)

    def values(self):
        return (self[spec_id] for spec_id in self)


class Changes:
    """What one refresh saw: paths added, changed and removed, the specs it parsed, and
    where the structure moved (``moved``: ``(row before, row after)`` for each spec that came
    or went, or whose ID, folder, dependencies, members or brokenness changed: what the
    set-level lint rules look at; ``None`` on the side where there is no row)."""

    __slots__ = ("added", "changed", "removed", "parsed", "moved")

    def __init__(self) -> None:
        self.added: list[str] = []
        self.changed: list[str] = []
        self.removed: list[str] = []
        self.parsed: dict = {}
        self.moved: list[tuple] = []

    @property
    def structural(self) -> bool:
        return bool(self.moved)

    def __bool__(self) -> bool:
        return bool(self.added or self.changed or self.removed)


class SpecTable:
    """The summary rows of one store, refreshed from the files.

    ``cache_dir``: where to persist the table (``None``: memory only).
    """

    def __init__(self, store, cache_dir: str | None = None, *, rows: dict | None = None) -> None:
        # rows: a table of these rows alone, in memory, taken as loaded (see overlay)
        self.store = store
        self.cache_dir = cache_dir
        self.files: dict[str, tuple] = {}  # relpath -> (mtime_ns, size, ino, crc)
        self.folders: dict[str, tuple] = {}  # archive folder prefix -> (mtime_ns, ino) when last read
        self.archive_verified_ns = 0  # when every archived file was last stat'ed
        self.rows: dict[str, tuple] = rows if rows is not None else {}  # relpath -> row tuple (see row())
        self.extra: dict = {}  # other cached facts (config, graph), dropped on any change
        self.generation = 0
        self.warnings: list[str] = []
        #: callables told of every refresh that changed rows (``fn(changes)``): the index of
        #: this process follows every change this way, whoever made it (our writes included)
        self.listeners: list = []
        self._racy: set[str] = set()
        self._active: dict[str, Row] | None = None
        self._archived: dict[str, Row] | None = None
        self._archived_raw: dict[str, tuple] = {}
        self._broken: dict[str, Row] = {}
        self._duplicates: list[tuple[str, list[str]]] = []
        self._graph: Graph | None = None
        self._loaded = rows is not None
        self._dirty = False
        # what changed since the last save, for appending it (see flush)
        self._snapshot: Snapshot | None = None
        self._touched: set[str] = set()  # relpaths whose entry changed
        self._meta_changed = False  # folders, the archive check time or the racy set changed
        self._full_save = False  # the next save must write everything (after clear, a foreign file)

    # persistence

    def _table_path(self) -> str | None:
        return os.path.join(self.cache_dir, TABLE_FILE) if self.cache_dir else None

    @property
    def loaded(self) -> bool:
        """The cached table was read (or the table was cleared): the rows are the table's."""
        return self._loaded

    def remember(self, key: str, value) -> None:
        """Cache a fact with the table (``extra[key]``; saved with it, dropped when a row
        changes unless ``key`` starts with ``config``): the parsed config, the index's mark."""
        self.extra[key] = value
        self._dirty = True

    def load(self) -> None:
        """Read the cached table, once (refresh does it too)."""
        if not self._loaded:
            self._load()

    def _load(self) -> None:
        self._loaded = True
        path = self._table_path()
        if path is None:
            return
        from .snapshot import Snapshot

        self._snapshot = snapshot = Snapshot(path)
        loaded = snapshot.load()
        if loaded is None:
            return
        data, records = loaded
        if data.get("format") != (FORMAT, sys.version_info[:2], self.store.root):
            self._full_save = True  # a foreign table: never append to it
            return
        files, rows, extra = data["files"], data["rows"], data["extra"]
        folders, verified, racy = data["folders"], data["archive_verified_ns"], data["racy"]
        stale_graph = False  # a row changed since the graph in ``extra`` was computed
        for record in records:  # what the owner appended since (see _append)
            kind = record[0]
            if kind == "put":
                files[record[1]], rows[record[1]] = record[2], record[3]
                stale_graph = True
            elif kind == "del":
                files.pop(record[1], None)
                rows.pop(record[1], None)
                stale_graph = True
            elif kind == "meta":
                folders, verified, racy = record[1], record[2], record[3]
            elif kind == "extra":
                new = dict(record[1])
                if "graph" in new:
                    stale_graph = False  # computed from every row up to this record
                elif "graph" in extra and not stale_graph:
                    new["graph"] = extra["graph"]  # still true of the rows
                extra = new
        if stale_graph and "graph" in extra:
            del extra["graph"]  # computed from rows that changed since
        self.files, self.rows, self.extra = files, rows, extra
        self.folders, self.archive_verified_ns, self._racy = folders, verified, set(racy)

    def flush(self) -> None:
        """Save what changed since the table was loaded or saved: appended to the journal of
        the saved table when that is cheaper (see :mod:`chantlib.snapshot`), else in full."""
        if self._dirty:
            if not self._append():
                self.save()

    def _append(self) -> bool:
        """Append the entries changed since the last save to the table's journal: a save
        that costs what changed. False when a full save is due instead."""
        snapshot = self._snapshot
        if snapshot is None or self._full_save or len(self._touched) * 8 > len(self.rows):
            return False
        files, rows = self.files, self.rows
        records: list = []
        for rel in self._touched:
            entry, row = files.get(rel), rows.get(rel)
            records.append(("put", rel, entry, row) if entry is not None and row is not None else ("del", rel))
        if self._meta_changed:
            records.append(("meta", self.folders, self.archive_verified_ns, sorted(self._racy)))
        extra = {k: v for k, v in self.extra.items() if k != "graph"}
        g = self._graph
        if g is not None and g.computed and not records:
            # no row changed in this save (a command that only read): the graph goes in, so the
            # next command finds it computed; a save that carries rows (the daemon's) leaves it
            # out, O(ready) to write each time, for the next full table
            extra["graph"] = (tuple(g.ready), tuple(sorted(g.blocked)))
        records.append(("extra", extra))
        try:
            if not snapshot.append(records):
                return False
        except ValueError:  # a value marshal cannot store: the full save reports it
            return False
        self._touched.clear()
        self._meta_changed = False
        self._dirty = False
        return True

    def save(self) -> None:
        """Write the whole table (temp file + rename) and drop its journal. Silently skipped
        (with a warning) when the folder is unwritable."""
        path = self._table_path()
        if path is None:
            return
        g = self._graph
        if g is not None:
            # the live graph, kept in step with every patch, is saved as computed results
            self.extra["graph"] = (tuple(g.ready), tuple(sorted(g.blocked)))
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
        from .snapshot import Snapshot

        snapshot = self._snapshot
        if snapshot is None:
            snapshot = self._snapshot = Snapshot(path)
        self._dirty = False
        try:
            try:
                snapshot.write(data)
            except ValueError:  # a value marshal refuses (a subclass of int, an object)
                snapshot.write(_marshallable(data))
        except (StorageError, ValueError) as exc:
            self.warnings.append(f"cannot save the spec table in {self.cache_dir}: {getattr(exc, 'message', exc)}")
            return
        self._touched.clear()
        self._meta_changed = False
        self._full_save = False

    # refresh

    def refresh(self, *, save: bool = True, full: bool = False, progress=None, stream=None) -> Changes:
        """Bring the table in step with the files; returns what changed.

        ``progress``: a callable ``(phase, done, total)`` told how the parsing goes (phase
        ``"reading"``, see :mod:`chantlib.progress`). ``stream``: see :meth:`_read_many`.

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
        folders_before = dict(folders)  # a few thousand entries at most (one per archive day)

        def keep(prefix: str, key: tuple) -> bool:
            return (
                not verify
                and folders.get(prefix) == key
                and key[0] < racy_since
                and not any(r.startswith(prefix) for r in racy)
            )

        visited: set[str] = set()
        to_read: list[tuple] = []  # (relpath, stat key, old entry): read once the walk is done
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
                to_read.append((rel, (st.st_mtime_ns, st.st_size, st.st_ino), old))
                if st.st_mtime_ns >= racy_since:
                    new_racy.add(rel)
        self._read_many(to_read, changes, progress, stream)
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
            changes.moved.append((self.rows.pop(rel, None), None))
            self._touched.add(rel)
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
        if verify or racy != new_racy or folders_before != folders:
            self._meta_changed = self._dirty = True
        if changes:
            self._tell(changes)
        if save:
            self.flush()
        return changes

    def _tell(self, changes: Changes) -> None:
        for listener in self.listeners:
            listener(changes)

    def refresh_paths(self, relpaths) -> Changes:
        """Re-read just these files (the daemon's watcher knows what moved). An entry ending
        in ``/`` names a folder (created, removed or renamed): every spec file below it now,
        and every one the table had below it, is looked at again."""
        if not self._loaded:
            self._load()
        relpaths = list(dict.fromkeys(relpaths))  # each once: a path named twice is read once
        folders = [rel for rel in relpaths if rel.endswith("/")]
        if folders:
            relpaths = sorted({rel for rel in relpaths if not rel.endswith("/")}.union(
                *(self._below(prefix) for prefix in folders)))
        changes = Changes()
        before = {rel: self.rows.get(rel) for rel in relpaths}
        to_read = []
        for rel in relpaths:
            try:
                st = os.stat(self.store.abspath(rel))
            except FileNotFoundError:
                if rel in self.files:
                    del self.files[rel]
                    changes.moved.append((self.rows.pop(rel, None), None))
                    self._touched.add(rel)
                    changes.removed.append(rel)
                continue
            except OSError:
                continue
            to_read.append((rel, (st.st_mtime_ns, st.st_size, st.st_ino), self.files.get(rel)))
        self._read_many(to_read, changes)
        if changes:
            if not self._patch(before, changes):
                self._changed()
            self._dirty = True
            self._tell(changes)
        return changes

    def _patch(self, before: dict, changes: Changes) -> bool:
        """Update the id maps and the graph for a few changed files in place, instead of
        rebuilding them from every row (the daemon's watcher applies one batch at a time).
        False when the change touches two files with one ID: the caller then rebuilds."""
        if self._active is None:
            return False
        rels = changes.added + changes.changed + changes.removed
        duplicated = {spec_id for spec_id, _paths in self._duplicates}
        leaving: set[tuple] = set()  # (archived, id) of the rows this batch takes away
        for rel in rels:
            old = before.get(rel)
            if old is not None and old[_ID] in duplicated:
                return False
            if old is not None and old[_ERROR] is None:
                target = self._archived_raw if old[_ARCHIVED] else self._active
                current = target.get(old[_ID])
                if current is None or current[_PATH] != rel:
                    return False
                leaving.add((old[_ARCHIVED], old[_ID]))
        arriving: set[tuple] = set()
        for rel in rels:
            new = self.rows.get(rel)
            if new is None or new[_ERROR] is not None:
                continue
            if new[_ID] in duplicated:
                return False
            place = (new[_ARCHIVED], new[_ID])
            target = self._archived_raw if new[_ARCHIVED] else self._active
            current = target.get(new[_ID])
            if place in arriving or (current is not None and current[_PATH] != rel and place not in leaving):
                return False  # another file holds this ID: a duplicate
            arriving.add(place)
        new_row = tuple.__new__
        active = self._active
        active_changed: dict[str, Row | None] = {}  # id -> its row before this batch
        archived_changed: list[str] = []
        for rel in rels:  # what leaves first, so that a spec moved between folders arrives after
            old = before.get(rel)
            if old is None:
                continue
            if old[_ERROR] is not None:
                self._broken.pop(rel, None)
            elif old[_ARCHIVED]:
                del self._archived_raw[old[_ID]]
                if self._archived is not None:
                    del self._archived[old[_ID]]
                archived_changed.append(old[_ID])
            else:
                active_changed.setdefault(old[_ID], active[old[_ID]])
                del active[old[_ID]]
        for rel in rels:
            new = self.rows.get(rel)
            if new is None:
                continue
            if new[_ERROR] is not None:
                self._broken[rel] = new_row(Row, new)
            elif new[_ARCHIVED]:
                self._archived_raw[new[_ID]] = new
                if self._archived is not None:
                    self._archived[new[_ID]] = new_row(Row, new)
                archived_changed.append(new[_ID])
            else:
                active_changed.setdefault(new[_ID], active.get(new[_ID]))
                active[new[_ID]] = new_row(Row, new)
        self._invalidate()
        if self._graph is not None:
            self._graph.update(active_changed, archived_changed)
        return True

    def _below(self, prefix: str) -> set[str]:
        """The spec files below folder ``prefix`` (``specs/sub/``): on disk now, and known to
        the table (the table's keys are scanned: a folder event is rare, and a scan of
        strings costs a few milliseconds where a walk of the files would stat every one)."""
        found = {rel for rel in self.files if rel.startswith(prefix)}
        stack = [prefix]
        while stack:
            folder = stack.pop()
            try:
                with os.scandir(self.store.abspath(folder[:-1])) as it:
                    for entry in it:
                        if entry.name.startswith("."):
                            continue
                        if entry.name.endswith(".md") and entry.is_file():
                            found.add(folder + entry.name)
                        elif entry.is_dir():
                            stack.append(f"{folder}{entry.name}/")
            except OSError:
                continue  # gone, or not a folder: only the table's entries below it are left
        return found

    def _read_many(self, to_read: list, changes: Changes, progress=None, stream=None) -> None:
        """Read the files a walk found changed. The parsed specs are kept for the index only
        when they are few (a watcher's batch, a command's refresh): a cold build's would hold
        every spec's text at once. ``stream(total)`` may give a sink for that case instead (the
        index's, see :meth:`Index.stream <chantlib.index.Index.stream>`): it is handed the
        parsed specs PARSED_KEEP at a time, as they are read, and closed at the end, so each
        file is read once and no more than a batch of texts is held."""
        keep = len(to_read) <= PARSED_KEEP
        sink = stream(len(to_read)) if stream is not None and not keep else None
        report = None
        if progress is not None:
            from .progress import phase

            report = phase(progress, "reading", len(to_read))
        batch: dict = {}
        try:
            for rel, key, old in to_read:
                spec = self._read_one(rel, key, old, changes, keep)
                if sink is not None and spec is not None:
                    batch[rel] = spec
                    if len(batch) >= PARSED_KEEP:
                        sink(batch)
                        batch = {}
                if report is not None:
                    report.step()
            if sink is not None and batch:
                sink(batch)
        finally:
            if sink is not None:
                sink.close()

    def _read_one(self, rel: str, key: tuple, old, changes: Changes, keep: bool = True):
        """Read one file into the table; the parsed spec when it was parsed (else None)."""
        try:
            with open(self.store.abspath(rel), "rb") as fh:
                raw = fh.read()
        except OSError as exc:
            self.warnings.append(f"cannot read {self.store.abspath(rel)}: {exc.strerror or exc}")
            return
        crc = zlib.crc32(raw)
        self.files[rel] = (key[0], key[1], key[2], crc)
        self._touched.add(rel)
        if old is not None and old[3] == crc and rel in self.rows:
            return
        row, spec = parse_file(rel, raw)
        before = self.rows.get(rel)
        if before is None or any(before[i] != row[i] for i in _STRUCTURE):
            changes.moved.append((before, row))
        self.rows[rel] = row
        if keep:
            changes.parsed[rel] = spec
        (changes.changed if old is not None else changes.added).append(rel)
        return spec

    def _invalidate(self) -> None:
        """Rows changed: a new generation; cached results but the config go (the live graph
        is kept in step by the caller, and written back into ``extra`` when saved)."""
        self.generation += 1
        self.extra = {k: v for k, v in self.extra.items() if k.startswith("config")}

    def _changed(self) -> None:
        """Rows changed in ways not worth following: the id maps and the graph are rebuilt."""
        self._invalidate()
        self._active = self._archived = None
        self._graph = None

    def clear(self) -> None:
        """Forget everything (a rebuild starts here)."""
        self.files.clear()
        self.folders.clear()
        self.archive_verified_ns = 0
        self.rows.clear()
        self._racy.clear()
        self.extra = {}
        self._touched.clear()
        self._full_save = True
        self._loaded = True
        self._changed()

    def handover(self) -> dict:
        """Everything this table read and computed (its rows, id maps and graph), for
        :meth:`adopt` by the table in use (a rebuild's table is read aside, then handed over)."""
        if self._active is None:
            self._index()
        return {
            "files": self.files, "folders": self.folders, "rows": self.rows,
            "archive_verified_ns": self.archive_verified_ns, "racy": set(self._racy), "active": self._active,
            "archived": self._archived, "archived_raw": self._archived_raw, "broken": self._broken,
            "duplicates": self._duplicates, "graph": self.graph, "generation": self.generation,
            "warnings": list(self.warnings),
        }

    def adopt(self, other: SpecTable) -> None:
        """Take over what ``other`` read (a rebuild's table): its files, folders and rows, and
        the id maps and graph computed from them, in one step that costs no walk. Listeners are
        not told: whoever follows this table (the index) was brought in step with ``other``.
        The next save writes everything."""
        state = other.handover()
        self.files, self.folders, self.rows = state["files"], state["folders"], state["rows"]
        self.archive_verified_ns = state["archive_verified_ns"]
        self._racy = state["racy"]
        self._active, self._archived, self._archived_raw = state["active"], state["archived"], state["archived_raw"]
        self._broken, self._duplicates, self._graph = state["broken"], state["duplicates"], state["graph"]
        self.warnings.extend(state["warnings"])
        self.extra = {k: v for k, v in self.extra.items() if k.startswith("config")}
        self.generation = max(self.generation, state["generation"]) + 1
        self._touched.clear()
        self._loaded = True
        self._full_save = self._dirty = self._meta_changed = True

    def overlay(self, texts: dict) -> SpecTable:
        """This table as it would be were some files different: ``texts`` maps a relpath
        (``specs/<id>.md``) to the bytes it would hold, or to ``None`` for a file that would
        not be there. What lint judges another version of some files by (the pre-commit hook:
        the staged content, with the rest as the commit has it) without writing or copying
        a file. Memory only, never saved or refreshed, and no listener is told; the rows of
        the other files are this table's (shared: a row is never changed in place)."""
        rows = dict(self.rows)
        for rel, raw in texts.items():
            if raw is None:
                rows.pop(rel, None)
            else:
                rows[rel] = parse_file(rel, raw)[0]
        return SpecTable(self.store, None, rows=rows)

    # views

    def row(self, relpath: str) -> Row:
        """The :class:`Row` of one file."""
        return tuple.__new__(Row, self.rows[relpath])

    def _index(self) -> dict[str, Row]:
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
        self._active = active_rows = {i: new(Row, t) for i, t in active.items()}
        self._archived_raw, self._broken = archived, broken
        self._archived = None
        self._duplicates = sorted(((k, sorted(v)) for k, v in dup.items()), key=lambda kv: sort_key(kv[0]))
        return active_rows

    @property
    def broken(self) -> dict[str, Row]:
        """relpath -> row for files that could not be parsed (left out of every other view)."""
        if self._active is None:
            self._index()
        return self._broken

    @property
    def active(self) -> dict[str, Row]:
        """id -> row for the specs under ``specs/``."""
        active = self._active
        if active is None:
            active = self._index()
        return active

    @property
    def archived(self) -> dict[str, Row]:
        """id -> row for the archive."""
        if self._active is None:
            self._index()
        if self._archived is None:
            new = tuple.__new__
            self._archived = {i: new(Row, t) for i, t in self._archived_raw.items()}
        return self._archived

    def archived_statuses(self) -> _ArchivedStatuses:
        """id -> status of the archive (a view over the rows)."""
        if self._active is None:
            self._index()
        return _ArchivedStatuses(self._archived_raw)

    @property
    def by_id(self) -> _ById:
        """id -> row, active specs shadowing archived ones of the same ID (a view: nothing
        is copied, so a long-lived table pays nothing for it when rows change)."""
        active = self._active
        if active is None:
            active = self._index()
        return _ById(active, self._archived_raw)

    @property
    def duplicates(self) -> list[tuple[str, list[str]]]:
        if self._active is None:
            self._index()
        return self._duplicates

    @property
    def graph(self):
        """The :class:`~chantlib.graph.Graph` of the active specs: built once, then kept in
        step with every patch (cached with the table when saved)."""
        if self._graph is None:
            from .graph import Graph

            g = Graph(self.active, _ArchivedStatuses(self._archived_raw))
            cached = self.extra.get("graph")  # dropped by _invalidate(), so present means valid
            if cached is not None:
                g.restore(cached[0], cached[1])
            else:
                self._dirty = True  # the graph goes into the saved table (see save)
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
