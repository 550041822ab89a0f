"""Index: the tantivy full-text index of the specs, and the query language compiled to it.

The index lives in ``.chant/.index/tantivy/`` next to the spec table
(:mod:`chantlib.table`) it follows. :meth:`Index.sync` brings it in step with the table:
only specs whose content changed are re-indexed (the table's CRC per file is compared with
the CRC each document was indexed from, kept in ``indexed.marshal``). Documents are keyed by
their path, so re-indexing is delete-then-add and a crash between the tantivy commit and the
state file only means re-doing the same work. Rebuilding from scratch gives the same answers.

tantivy errors are translated to :class:`~chantlib.errors.ChantError` here and only here.
"""

from __future__ import annotations

import datetime as _dt
import os
import sys

import tantivy

from .errors import ChantError, QuerySyntaxError, SpecParseError, StorageError
from .ids import parse_id
from .query import FIELDS, And, Not, Or, Term, parse_query, tokenize
from .values import PRIORITY_NAMES, SEARCH_LIMIT

TYPE_CHECKING = False  # mypy reads the block; nothing in it is imported at run time
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Literal, NoReturn

    from filelock import BaseFileLock

    from .snapshot import Snapshot

__all__ = ["Index", "SearchResult"]

STATE_FILE = "indexed.marshal"
TANTIVY_DIR = "tantivy"
SCHEMA_VERSION = 2
SCHEMA_MARKER = f"chant-schema-{SCHEMA_VERSION}"

#: a write of more documents than this commits every BATCH of them (see _write)
BATCH = 5000
BIG_HEAP = 48_000_000  # bytes of tantivy's indexing arena for such a write
_UTC = _dt.UTC
_KEYWORD_FIELDS = ("status", "type", "project", "label", "prompt")
_EXACT_FIELDS = ("id", "target_files", "commit", "branch", "depends_on", "archived")


def _schema():
    sb = tantivy.SchemaBuilder()
    sb.add_text_field("path", stored=True, tokenizer_name="raw")
    for name in _KEYWORD_FIELDS + _EXACT_FIELDS:
        sb.add_text_field(name, tokenizer_name="raw")
    sb.add_date_field("created", indexed=True, fast=True)
    sb.add_date_field("completed", indexed=True, fast=True)
    sb.add_integer_field("priority", indexed=True, fast=True)
    sb.add_text_field("title", tokenizer_name="default")
    sb.add_text_field("body", tokenizer_name="default")
    sb.add_text_field("sortkey", fast=True, tokenizer_name="raw")
    return sb.build()


def sortkey_text(row) -> str:
    """A string whose byte order follows the chant order, ending in the path (unique)."""
    p = parse_id(row.id)
    if p is None:
        head = row.id
    else:
        members = "".join(f"{m:010d}" for m in p.members)
        head = f"{p.date}{int(p.seq, 36):010d}{p.suffix}{p.project or ''}\x00{members}"
    return f"{head}\x00{row.path}"


def _give_back_freed_memory() -> None:
    """Hand the pages the C allocator holds free back to the system (glibc's malloc_trim).

    Building documents frees as much as it allocates, but glibc keeps freed pages that lie
    below live ones, so a daemon that indexed 200,000 specs at its start would carry them
    for its whole life. Elsewhere (no glibc) this does nothing.
    """
    global _malloc_trim
    if _malloc_trim is None:
        try:
            import ctypes

            _malloc_trim = ctypes.CDLL(None).malloc_trim
        except (OSError, AttributeError):
            _malloc_trim = False
    if _malloc_trim:
        _malloc_trim(0)


_malloc_trim: Callable[[int], int] | Literal[False] | None = None  # False: there is none


def _rmtree(folder: str) -> None:
    import shutil  # not at import time: shutil pulls in bz2 and lzma, and searches never need it

    shutil.rmtree(folder, ignore_errors=True)


def _parse_date(text: str | None):
    if not text:
        return None
    try:
        value = _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        try:
            value = _dt.datetime.strptime(text[:10], "%Y-%m-%d")
        except ValueError:
            return None
    return value if value.tzinfo else value.replace(tzinfo=_UTC)


class SearchResult:
    """``total`` matches; ``paths`` the first ``limit`` of them, best first."""

    __slots__ = ("total", "paths", "scored")

    def __init__(self, total: int, paths: list[str], scored: bool) -> None:
        self.total = total
        self.paths = paths
        self.scored = scored


class Index:
    """The tantivy index of one :class:`~chantlib.table.SpecTable`.

    ``path``: the index folder (``None``: in memory, rebuilt by each process).
    ``defer_state``: write the indexed-state file on :meth:`flush` (a long-lived process: the
    daemon flushes every few seconds and on its way out), and at once only when a new path
    enters the index, so that the file always names every document: one that lags behind
    only means re-indexing a few documents, which is idempotent.
    ``keep_writer``: keep one tantivy writer open between writes (the daemon), so that a
    watcher's batch is a commit and nothing more: a writer made and closed per batch waits,
    at its close, for the segment merges its commit set off (hundreds of milliseconds now and
    then at 50,000 specs), where a kept writer merges in the background. It holds the index's
    writer lock until :meth:`close`; meanwhile a direct-mode process searches the index as
    the daemon keeps it instead of writing it.
    """

    def __init__(self, table, path: str | None = None, *, defer_state: bool = False,
                 keep_writer: bool = False) -> None:
        self.table = table
        self.path = path
        self.defer_state = defer_state
        self.keep_writer = keep_writer
        self._writer: tantivy.IndexWriter | None = None  # the kept writer (keep_writer), with the writer lock held for it
        #: documents written by streams (see :meth:`stream`) since the owner last looked
        self.streamed = 0
        self._state_dirty = False
        self._state_snapshot: Snapshot | None = None
        self._state_changes: dict[str, int | None] = {}  # path -> crc (None: deleted) since the last write
        self._state_full = False  # the next write of the state must be a full one
        #: paths the table changed since this process last wrote them to the index (every
        #: change is told, see SpecTable.listeners), with the specs parsed for them when few
        self._unsynced: set[str] = set()
        self._parsed: dict = {}
        #: a sync of this process compared the index with the whole table (and every change
        #: since is in ``_unsynced``): only then may a sync compare just the changed paths
        self._synced = False
        from .table import weakly

        # the table must not keep its index alive (nor the writer lock it holds)
        self._listener = weakly(self._noted)
        table.listeners.append(self._listener)
        self._schema: tantivy.Schema | None = None
        self._lock: BaseFileLock | None = None
        self._indexed: dict[str, int] | None = None
        self._index: tantivy.Index | None = None
        self._searcher: tantivy.Searcher | None = None

    def follow(self, table) -> None:
        """Index ``table`` from now on, told of its changes (a rebuild's new table while it is
        read, then the table that adopts it)."""
        if table is self.table:
            return
        if self._listener in self.table.listeners:
            self.table.listeners.remove(self._listener)
        table.listeners.append(self._listener)
        self.table = table

    # opening

    def _tantivy_dir(self) -> str | None:
        return os.path.join(self.path, TANTIVY_DIR) if self.path else None

    def _state_path(self) -> str | None:
        return os.path.join(self.path, STATE_FILE) if self.path else None

    @property
    def schema(self):
        if self._schema is None:
            self._schema = self._open().schema
        return self._schema

    def _writer_lock(self):
        """The cross-process lock around creating and writing the index (filelock; one
        instance per Index, so taking it again inside is re-entrant, never a self-deadlock)."""
        if self._lock is None:
            from filelock import FileLock

            assert self.path is not None  # an index in memory is never written by another process
            self._lock = FileLock(os.path.join(self.path, ".writer.lock"), timeout=60)
        return self._lock

    def _open_existing(self, folder: str):
        if os.path.exists(os.path.join(folder, SCHEMA_MARKER)) and os.path.exists(os.path.join(folder, "meta.json")):
            try:
                return tantivy.Index.open(folder)
            except ValueError:
                return None
        return None

    def _open(self):
        """Open the index; an existing one of this schema version is opened as it is (no
        schema to build), anything else is thrown away and created anew, under the writer
        lock: the files are the truth."""
        if self._index is not None:
            return self._index
        folder = self._tantivy_dir()
        try:
            if folder is None:
                self._index = tantivy.Index(_schema())
                return self._index
            self._index = self._open_existing(folder)
            if self._index is not None:
                return self._index
            from filelock import Timeout

            try:
                with self._writer_lock():
                    self._index = self._open_existing(folder)  # made meanwhile by another process?
                    if self._index is None:
                        _rmtree(folder)
                        self._forget_state()
                        os.makedirs(folder, exist_ok=True)
                        self._index = tantivy.Index(_schema(), path=folder, reuse=False)
                        with open(os.path.join(folder, SCHEMA_MARKER), "w") as fh:
                            fh.write(f"{SCHEMA_VERSION}\n")
            except Timeout:
                raise ChantError(f"the index in {self.path} is busy (another process is writing it)") from None
        except OSError as exc:
            raise StorageError.from_os_error(exc, "open the index in", folder) from None
        except ValueError as exc:
            raise ChantError(f"cannot create the index in {folder}: {exc}") from None
        return self._index

    def _forget_state(self) -> None:
        """A new, empty index: nothing in it was indexed from any file."""
        self._synced = False
        self._indexed = {}
        self._state_changes.clear()
        self._state_full = True
        path = self._state_path()
        if path is not None:
            for name in (path, path + ".journal"):
                try:
                    os.unlink(name)
                except FileNotFoundError:
                    pass

    def _load_state(self) -> dict[str, int]:
        if self._indexed is None:
            self._indexed = {}
            self._state_changes.clear()
            path = self._state_path()
            if path:
                from .snapshot import Snapshot

                self._state_snapshot = Snapshot(path)
                loaded = self._state_snapshot.load()
                if loaded is not None:
                    data, records = loaded
                    if data.get("format") == (SCHEMA_VERSION, sys.version_info[:2]):
                        docs = data["docs"]
                        for record in records:  # appended since (see _write_state)
                            if record[0] == "put":
                                docs.update(record[1])
                            elif record[0] == "del":
                                for rel in record[1]:
                                    docs.pop(rel, None)
                        self._indexed = docs
                        self._state_full = False
                    else:
                        self._state_full = True  # another version's file: replaced, never appended to
        return self._indexed

    def flush(self) -> None:
        """Write the indexed-state file if it changed (see ``defer_state``)."""
        if self._state_dirty:
            self._state_dirty = False
            self._write_state()

    def _save_state(self) -> None:
        if self.defer_state:
            self._state_dirty = True
        else:
            self._write_state()

    def _write_state(self) -> None:
        """Save the state: the entries changed since the last write, appended to the state
        file's journal (a few records for a watcher's batch), or the whole map when that is
        due (see :mod:`chantlib.snapshot`)."""
        path = self._state_path()
        if path is None:
            return
        from .snapshot import Snapshot

        if self._state_snapshot is None:
            self._state_snapshot = Snapshot(path)
        changes = self._state_changes
        indexed = self._indexed if self._indexed is not None else {}
        if not self._state_full and len(changes) * 8 <= len(indexed):
            puts = {rel: crc for rel, crc in changes.items() if crc is not None}
            gone = [rel for rel, crc in changes.items() if crc is None]
            records = ([("put", puts)] if puts else []) + ([("del", gone)] if gone else [])
            if not records or self._state_snapshot.append(records):
                changes.clear()
                return
        self._state_snapshot.write({"format": (SCHEMA_VERSION, sys.version_info[:2]), "docs": indexed})
        changes.clear()
        self._state_full = False

    # keeping in step

    def _meta_stamp(self):
        folder = self._tantivy_dir()
        if folder is None:
            return None
        try:
            st = os.stat(os.path.join(folder, "meta.json"))
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def in_step(self) -> bool:
        """True when the index was synced with the table as it is now (no state to load).

        The table drops this mark whenever a row changes; the stamp of tantivy's meta.json
        catches an index that was replaced or deleted behind the table's back.
        """
        mark = self.table.extra.get("index_synced")
        if mark is not None and self._writer is not None:
            # this process holds the writer, so nobody replaced the index: and the merges the
            # writer runs in the background rewrite meta.json, which must not look like a change
            return True
        return mark is not None and self.path is not None and mark == self._meta_stamp()

    def _mark_in_step(self) -> None:
        """The index is in step with the table: this process compared them (or wrote what
        differed), and the saved table remembers it for the next process."""
        self._synced = True
        if self.path is not None:
            stamp = self._meta_stamp()
            if self.table.extra.get("index_synced") != stamp:
                self.table.remember("index_synced", stamp)

    def pending(self) -> tuple[list[str], list[str]]:
        """(paths to (re)index, paths to delete) to bring the index in step with the table."""
        indexed = self._load_state()
        files = self.table.files
        todo = [rel for rel, st in files.items() if rel in self.table.rows and indexed.get(rel) != st[3]]
        gone = [rel for rel in indexed if rel not in self.table.rows]
        return todo, gone

    def _noted(self, changes) -> None:
        paths = changes.added + changes.changed + changes.removed
        self._unsynced.update(paths)
        if changes.parsed and len(self._parsed) + len(changes.parsed) <= 1000:  # a batch, not a cold build
            self._parsed.update(changes.parsed)
        for rel in changes.removed:
            self._parsed.pop(rel, None)

    def sync(self, parsed: dict | None = None, changes=None, *, progress=None) -> int:
        """Index what changed; returns how many documents were written or deleted.

        ``parsed``: specs a refresh has just parsed (path -> Spec), to spare a second read.
        ``changes``: what that refresh saw (a :class:`~chantlib.table.Changes`). When this
        process has synced before, only those paths are compared instead of every row (the
        daemon's watcher knows exactly what moved). ``progress``: a callable ``(phase,
        done, total)`` told how the writing goes (phase ``"indexing"``).
        """
        if self._synced and self._indexed is not None and self._index is not None:
            # this process has synced before, and has been told of every change since: only
            # those paths are compared (whoever changed them: a watcher's batch, our own write)
            indexed, files, rows = self._indexed, self.table.files, self.table.rows
            paths = sorted(self._unsynced)
            todo = [r for r in paths if r in rows and indexed.get(r) != files[r][3]]
            gone = [r for r in paths if r not in rows and r in indexed]
            if not todo and not gone:
                self._unsynced.clear()
                self._parsed.clear()
                self._mark_in_step()
                return 0
            known = dict(self._parsed)
            known.update(parsed or {})
            return self._locked_write(todo, gone, known, recheck=False, progress=progress)
        if self.in_step():
            self._unsynced.clear()  # in step with the table as it is: nothing is owed
            self._parsed.clear()
            self._synced = True
            if self.defer_state:
                # a long-lived owner (the daemon's start): have the state at hand, so that the
                # next batch is compared path by path, not by a pass over every row
                self._open()
                self._load_state()
            return 0
        self._open()  # a missing or foreign index is created anew here, and the state forgotten
        todo, gone = self.pending()
        if not todo and not gone:
            self._unsynced.clear()  # compared against every row: nothing is owed
            self._parsed.clear()
            self._mark_in_step()
            return 0
        return self._locked_write(todo, gone, parsed or {}, recheck=True, progress=progress)

    def _locked_write(self, todo: list[str], gone: list[str], parsed: dict, *, recheck: bool, progress=None) -> int:
        if self.path is None:
            return self._write(todo, gone, parsed, progress)
        lock = self._take_writer_lock()
        if lock is None:
            # the daemon holds the writer and keeps the index in step with the files: search
            # it as it is (its documents are at least as new as our table)
            return 0
        try:
            if recheck:
                # another process may have done it while we waited
                if not self.defer_state:
                    self._indexed = None
                todo, gone = self.pending()
                if not todo and not gone:
                    self._unsynced.clear()
                    self._parsed.clear()
                    self._reload()
                    self._mark_in_step()
                    return 0
            written = self._write(todo, gone, parsed, progress)
            self._mark_in_step()
            return written
        finally:
            lock.release()

    def _daemon_runs(self) -> bool:
        from .client import daemon_alive

        return daemon_alive(self.table.store.root)

    def close(self) -> None:
        """Close the kept writer, if any: waits for its merges, then lets the writer lock go."""
        writer, self._writer = self._writer, None
        if writer is None:
            return
        try:
            writer.wait_merging_threads()
        except ValueError as exc:
            raise ChantError(f"cannot close the index writer: {exc}") from None
        finally:
            self._writer_lock().release()
        self._reload()

    def _new_writer(self, index, big: bool):
        """A writer for one write: the kept one, or a new one (kept when ``keep_writer``)."""
        if self._writer is not None and not big:
            return self._writer
        self.close()  # a big write gets its own writer, with the arena it needs
        try:
            # one indexing thread and a small arena, committed every BATCH documents: memory
            # stays bounded however many documents a cold build writes (a 128 MB arena on
            # every core held far more than the table itself), and the Python side, which
            # builds the documents, is the bottleneck anyway. tantivy's minimum is 15 MB.
            writer = index.writer(heap_size=BIG_HEAP if big else 16_000_000, num_threads=1)
        except ValueError as exc:
            raise ChantError(f"cannot write the index: {exc}") from None
        if self.keep_writer and not big and self.path is not None:
            self._writer_lock().acquire(timeout=60)  # held for the kept writer, until close()
            self._writer = writer
        return writer

    def _write(self, todo: list[str], gone: list[str], parsed: dict, progress=None) -> int:
        index = self._open()
        indexed = self._load_state()
        changes = self._state_changes
        big = len(todo) > BATCH
        writer = self._new_writer(index, big)
        try:
            fresh = not indexed and len(todo) == len(self.table.rows)
            if fresh:
                # no document survives this: a crash before the state is saved rebuilds again
                writer.delete_all_documents()
            else:
                # the state file may lag, but must always name every path the index holds, or
                # a document whose file goes while we are down is never deleted: new paths go
                # in before the first commit (with no checksum, so they are indexed again if
                # need be; an append to the state's journal, see _write_state)
                new = [rel for rel in todo if rel not in indexed]
                if new:
                    for rel in new:
                        indexed[rel] = changes[rel] = -1
                    self._write_state()
            for rel in gone:
                writer.delete_documents_by_term("path", rel)
                indexed.pop(rel, None)
                changes[rel] = None
            from .progress import phase

            report = phase(progress, "indexing", len(todo))
            in_batch = 0
            for rel in todo:
                row = self.table.row(rel)
                spec = parsed.get(rel)
                body = spec.body if spec is not None else self._read_body(rel)
                if not fresh:
                    writer.delete_documents_by_term("path", rel)
                writer.add_document(self._document(row, body))
                indexed[rel] = changes[rel] = self.table.files[rel][3]
                if report is not None:
                    report.step()
                in_batch += 1
                if in_batch == BATCH:
                    writer.commit()
                    in_batch = 0
                    _give_back_freed_memory()
            writer.commit()
            if writer is not self._writer:
                writer.wait_merging_threads()  # closes it
        except ValueError as exc:
            if writer is self._writer:  # a writer that failed is not used again
                self._writer = None
                self._writer_lock().release()
            raise ChantError(f"cannot write the index: {exc}") from None
        if big:
            _give_back_freed_memory()
        self._save_state()
        self._reload()
        if fresh:
            self._unsynced.clear()
            self._parsed.clear()
        else:
            self._unsynced.difference_update(todo)
            self._unsynced.difference_update(gone)
            for rel in todo:
                self._parsed.pop(rel, None)
        return len(todo) + len(gone)

    def _reload(self) -> None:
        if self._index is not None:
            self._index.reload()
        self._searcher = None

    def _read_body(self, rel: str) -> str:
        """The body of a spec file, as ``Spec.parse(...).body`` gives it, without parsing
        the frontmatter (a cold build reads every body again: the table kept no parsed spec)."""
        try:
            text = self.table.store.read_text(rel)
        except (StorageError, UnicodeDecodeError):
            return ""
        from .spec import split_document

        try:
            parts = split_document(text)
        except SpecParseError:
            return text
        return text if parts is None else parts[3]

    def _document(self, row, body: str):
        row = row.full()
        doc = tantivy.Document()
        doc.add_text("path", row.path)
        doc.add_text("sortkey", sortkey_text(row))
        doc.add_text("id", row.id)
        doc.add_text("status", row.status)
        doc.add_text("type", row.type)
        if row.project:
            doc.add_text("project", row.project.lower())
        for label in row.labels:
            doc.add_text("label", label.lower())
        if row.prompt:
            doc.add_text("prompt", row.prompt.lower())
        for path in row.target_files:
            doc.add_text("target_files", path)
        for commit in row.commits:
            doc.add_text("commit", commit)
        if row.branch:
            doc.add_text("branch", row.branch)
        for dep in row.depends_on or ():
            doc.add_text("depends_on", dep)
        doc.add_text("archived", "true" if row.archived else "false")
        created = _parse_date(row.created)
        if created is not None:
            doc.add_date("created", created)
        completed = _parse_date(row.completed_at)
        if completed is not None:
            doc.add_date("completed", completed)
        doc.add_integer("priority", row.priority if row.priority is not None else 50)
        if row.title:
            doc.add_text("title", row.title)
        doc.add_text("body", body)
        return doc

    def rebuild(self, *, progress=None) -> int:
        """Throw the index away and index every spec again; returns the document count."""
        self.reset()
        self.sync(progress=progress)
        return self.indexed()

    def indexed(self) -> int:
        """How many paths the indexed-state file names (what a sync compares against)."""
        return len(self._load_state())

    def documents(self) -> int:
        """Documents in the index, as a searcher sees it (tantivy's count)."""
        return self.searcher().num_docs

    def reset(self) -> None:
        """Throw the index away (its folder and state): the next sync indexes every spec."""
        if not self.keep_writer and self.path is not None and self._daemon_runs():
            from .errors import Conflict

            raise Conflict("a daemon serves this repository and owns its index: rebuild it through the daemon "
                           "(`chant index rebuild` without --direct)")
        self.close()
        self._index = None
        self._schema = None
        self._searcher = None
        folder = self._tantivy_dir()
        if folder is not None:
            _rmtree(folder)
        self._forget_state()

    def stream(self, progress=None):
        """A ``stream`` for :meth:`SpecTable.refresh <chantlib.table.SpecTable.refresh>`:
        ``stream(total)`` gives a sink that indexes the specs a cold build parses, a batch at
        a time as the table reads them (each file read once, no more than a batch of texts
        held), or ``None`` when this process may not write the index (a daemon holds it).

        The sink holds the writer lock and one writer for the whole refresh. An index with no
        state yet is built fresh: every old document is deleted in the first commit, and none
        is deleted one by one; a crash half-way leaves no state, so the next start builds
        fresh again. Otherwise each batch's new paths are named in the state before the
        commit that may add them, as every write does (see ``_write``)."""

        def start(total: int):
            state = self._stream_open(total, progress)
            if state is None:
                return None
            return _Sink(lambda batch: self._stream_batch(state, batch), lambda: self._stream_close(state))

        return start

    def _take_writer_lock(self):
        """The index's writer lock, taken (waiting up to a minute for another writer), or
        ``None`` when a running daemon holds it (it keeps the index in step itself)."""
        from filelock import Timeout

        lock = self._writer_lock()
        try:
            try:
                lock.acquire(timeout=0)
            except Timeout:
                if not self.keep_writer and self._daemon_runs():
                    return None
                lock.acquire(timeout=60)
        except Timeout:
            raise ChantError(f"the index in {self.path} is busy (another process is writing it)") from None
        except OSError as exc:
            raise StorageError.from_os_error(exc, "lock the index in", self.path) from None
        return lock

    def _stream_open(self, total: int, progress) -> _StreamState | None:
        lock = None
        if self.path is not None:
            lock = self._take_writer_lock()
            if lock is None:
                return None  # the daemon's: the sync after the refresh searches what it keeps
        try:
            self.close()  # the kept writer, if any: this write gets its own, with a bigger arena
            tantivy_index = self._open()
            try:
                writer = tantivy_index.writer(heap_size=BIG_HEAP, num_threads=1)
            except ValueError as exc:
                raise ChantError(f"cannot write the index: {exc}") from None
            from .progress import phase

            state = _StreamState(writer, lock, self._load_state(), phase(progress, "indexing", total))
            if state.fresh:
                writer.delete_all_documents()
            return state
        except BaseException:
            if lock is not None:
                lock.release()
            raise

    def _stream_batch(self, state: _StreamState, batch: dict) -> None:
        writer, indexed = state.writer, state.indexed
        table, changes = self.table, self._state_changes
        files = table.files
        todo = [rel for rel in batch if rel in table.rows and indexed.get(rel) != files[rel][3]]
        try:
            if not state.fresh:
                new = [rel for rel in todo if rel not in indexed]
                if new:
                    for rel in new:
                        indexed[rel] = changes[rel] = -1
                    self._write_state()
            for rel in todo:
                if not state.fresh:
                    writer.delete_documents_by_term("path", rel)
                writer.add_document(self._document(table.row(rel), batch[rel].body))
                indexed[rel] = changes[rel] = files[rel][3]
                state.written += 1
                state.in_batch += 1
                if state.in_batch == BATCH:
                    writer.commit()
                    state.in_batch = 0
                    _give_back_freed_memory()
        except ValueError as exc:
            raise ChantError(f"cannot write the index: {exc}") from None
        if state.report is not None:
            state.report.step(len(batch))

    def _stream_close(self, state: _StreamState) -> None:
        """The last commit; the writer closed (its merges waited for) and the lock let go."""
        try:
            state.writer.commit()
            state.writer.wait_merging_threads()
        except ValueError as exc:
            raise ChantError(f"cannot write the index: {exc}") from None
        finally:
            if state.lock is not None:
                state.lock.release()
        _give_back_freed_memory()
        if state.report is not None:
            state.report.finish()
        self._save_state()
        self._reload()
        self.streamed += state.written

    # reading

    def searcher(self):
        if self._searcher is None:
            self._searcher = self._open().searcher()
        return self._searcher

    def statistics(self) -> dict:
        todo, gone = self.pending()
        size = 0
        folder = self._tantivy_dir()
        if folder and os.path.isdir(folder):
            for entry in os.scandir(folder):
                if entry.is_file():
                    size += entry.stat().st_size
        searcher = self.searcher()
        return {
            "path": folder,
            "documents": searcher.num_docs,
            "segments": searcher.num_segments,
            "size_bytes": size,
            "stale": len(todo) + len(gone),
        }

    def search(self, query: str, *, limit: int | None = SEARCH_LIMIT, graph=None) -> SearchResult:
        """Run ``query`` (the chant query language); ``graph`` serves ``status:ready|blocked``."""
        ast = parse_query(query)
        compiler = _Compiler(self.schema, self.table, graph)
        compiled = compiler.compile(ast)
        searcher = self.searcher()
        total_docs = searcher.num_docs
        want = total_docs if limit is None else min(limit, total_docs)
        try:
            if compiler.scored:
                result = searcher.search(compiled, limit=max(want, 1), count=True)
                paths = [searcher.doc(addr)["path"][0] for _score, addr in result.hits[:want]]
            else:
                result = searcher.search(
                    compiled, limit=max(want, 1), count=True, order_by_field="sortkey", order=tantivy.Order.Asc
                )
                paths = [key.rsplit("\x00", 1)[1] for key, _addr in result.hits[:want]]
        except ValueError as exc:
            raise QuerySyntaxError(f"Invalid query: {exc}", query=query) from None
        return SearchResult(result.count, paths, compiler.scored)


class _StreamState:
    """What one stream (see :meth:`Index.stream`) carries from batch to batch."""

    __slots__ = ("writer", "lock", "indexed", "fresh", "report", "in_batch", "written")

    def __init__(self, writer, lock, indexed: dict, report) -> None:
        self.writer = writer
        self.lock = lock
        self.indexed = indexed
        self.fresh = not indexed
        self.report = report
        self.in_batch = 0
        self.written = 0


class _Sink:
    """A stream's face for the table: called with each batch, closed at the end."""

    __slots__ = ("add", "close")

    def __init__(self, add, close) -> None:
        self.add = add
        self.close = close

    def __call__(self, batch: dict) -> None:
        self.add(batch)


# --- the query compiler ---------------------------------------------------------------------

_Q = tantivy.Query
_OCC = tantivy.Occur


def _wildcard_regex(value: str) -> str:
    """A wildcard term as a tantivy regex: ``*`` any run, ``?`` one character, the rest literal.

    Every character but a letter, a digit or ``_`` is written as ``\\x{HEX}``: a backslash before
    punctuation is not always a literal there (``\\<`` and ``\\>`` are word boundaries, which
    tantivy refuses), a code point escape always is.
    """
    out = []
    for ch in value:
        if ch == "*":
            out.append(".*")
        elif ch == "?":
            out.append(".")
        elif ch.isalnum() or ch == "_":
            out.append(ch)
        else:
            out.append(f"\\x{{{ord(ch):X}}}")
    return "".join(out)


def _date_bounds(text: str, pos: int, query_field: str):
    """(start, end) datetimes of a date, a month (YYYY-MM) or a year (YYYY); end exclusive."""
    try:
        if len(text) == 4:
            y = int(text)
            return _dt.datetime(y, 1, 1, tzinfo=_UTC), _dt.datetime(y + 1, 1, 1, tzinfo=_UTC)
        if len(text) == 7:
            y, m = int(text[:4]), int(text[5:7])
            start = _dt.datetime(y, m, 1, tzinfo=_UTC)
            end = _dt.datetime(y + (m == 12), m % 12 + 1, 1, tzinfo=_UTC)
            return start, end
        start = _dt.datetime.strptime(text[:10], "%Y-%m-%d").replace(tzinfo=_UTC)
        if len(text) > 10:
            exact = _parse_date(text)
            if exact is None:
                raise ValueError(text)
            return exact, exact + _dt.timedelta(seconds=1)
        return start, start + _dt.timedelta(days=1)
    except ValueError:
        raise QuerySyntaxError(
            f"Invalid query: {query_field}: '{text}' is not a date (use YYYY, YYYY-MM or YYYY-MM-DD) at position {pos}",
            position=pos,
        ) from None


class _Compiler:
    def __init__(self, schema, table, graph) -> None:
        self.schema = schema
        self.table = table
        self.graph = graph
        self.scored = False

    def compile(self, node):
        if isinstance(node, Term):
            return self.term(node)
        if isinstance(node, And):
            musts = []
            nots = []
            for item in node.items:
                if isinstance(item, Not):
                    nots.append((_OCC.MustNot, self.compile(item.item)))
                else:
                    musts.append((_OCC.Must, self.compile(item)))
            if not musts:
                musts.append((_OCC.Must, _Q.all_query()))
            return _Q.boolean_query(musts + nots)
        if isinstance(node, Or):
            return _Q.boolean_query([(_OCC.Should, self.compile(item)) for item in node.items])
        if isinstance(node, Not):
            return _Q.boolean_query([(_OCC.Must, _Q.all_query()), (_OCC.MustNot, self.compile(node.item))])
        raise TypeError(node)

    def paths_query(self, ids) -> tantivy.Query:
        active = self.table.active
        return _Q.term_set_query(self.schema, "path", [active[i].path for i in ids if i in active])

    def term(self, t: Term):
        field = t.field
        if field is None:
            self.scored = True
            return _Q.boolean_query(
                [
                    (_OCC.Should, _Q.boost_query(self.text(t, "title"), 2.0)),
                    (_OCC.Should, self.text(t, "body")),
                ]
            )
        kind = FIELDS[field]
        if kind == "text":
            self.scored = True
            return self.text(t, field)
        if kind == "date":
            return self.date(t, field)
        if kind == "int":
            return self.number(t, field)
        if t.kind == "range" or t.kind == "cmp":
            self.fail(t, f"field '{field}' does not take a range")
        value = t.value
        if kind == "keyword" or kind == "bool":
            value = value.lower()
        if field == "status" and self.graph is not None and value in ("ready", "blocked", "pending"):
            if value == "ready":
                return self.paths_query(self.graph.ready)
            blocked = self.paths_query(self.graph.blocked)
            if value == "blocked":
                return blocked
            return _Q.boolean_query(
                [(_OCC.Must, _Q.term_query(self.schema, "status", "pending")), (_OCC.MustNot, blocked)]
            )
        if kind == "bool" and value not in ("true", "false"):
            self.fail(t, f"field '{field}' takes true or false")
        if t.wildcard:
            return self.wildcard(t, field, value)
        return _Q.term_query(self.schema, field, value)

    def text(self, t: Term, field: str) -> tantivy.Query:
        if t.wildcard:
            return self.wildcard(t, field, t.value.lower())
        words = tokenize(t.value)
        if not words:
            return _Q.empty_query()
        if len(words) == 1:
            return _Q.term_query(self.schema, field, words[0])
        return _Q.phrase_query(self.schema, field, words)  # type: ignore[arg-type]  # tantivy's stub wants list[str | tuple[int, str]], a list[str] is as good

    def wildcard(self, t: Term, field: str, value: str) -> tantivy.Query:
        try:
            return _Q.regex_query(self.schema, field, _wildcard_regex(value))
        except ValueError as exc:  # tantivy refused the pattern: the term's fault, not an internal error
            self.fail(t, f"the wildcard term cannot be searched ({exc})")

    def fail(self, t: Term, message: str) -> NoReturn:
        raise QuerySyntaxError(f"Invalid query: {message} at position {t.pos}", position=t.pos)

    def date(self, t: Term, field: str):
        ft = tantivy.FieldType.Date
        if t.kind in ("word", "phrase"):
            if t.wildcard:
                self.fail(t, f"field '{field}' takes a date, not a wildcard")
            lo, hi = _date_bounds(t.value, t.pos, field)
            return _Q.range_query(self.schema, field, ft, lo, hi, include_upper=False)
        if t.kind == "cmp":
            op, text = t.value
            lo, hi = _date_bounds(text, t.pos, field)
            if op == ">":
                return _Q.range_query(self.schema, field, ft, hi, None)
            if op == ">=":
                return _Q.range_query(self.schema, field, ft, lo, None)
            if op == "<":
                return _Q.range_query(self.schema, field, ft, None, lo, include_upper=False)
            return _Q.range_query(self.schema, field, ft, None, hi, include_upper=False)
        lo_text, hi_text, lo_inc, hi_inc = t.value
        lo = hi = None
        if lo_text is not None:
            a, b = _date_bounds(lo_text, t.pos, field)
            lo = a if lo_inc else b
        if hi_text is not None:
            a, b = _date_bounds(hi_text, t.pos, field)
            hi = b if hi_inc else a
        return _Q.range_query(self.schema, field, ft, lo, hi, include_lower=True, include_upper=hi is None)

    def number(self, t: Term, field: str):
        ft = tantivy.FieldType.Integer

        def num(text: str) -> int:
            if text.lower() in PRIORITY_NAMES:
                return PRIORITY_NAMES[text.lower()]
            try:
                return int(text)
            except ValueError:
                self.fail(t, f"field '{field}' takes a number or low/normal/high/critical, not '{text}'")

        if t.kind in ("word", "phrase"):
            n = num(t.value)
            return _Q.range_query(self.schema, field, ft, n, n)
        if t.kind == "cmp":
            op, text = t.value
            n = num(text)
            if op in (">", ">="):
                return _Q.range_query(self.schema, field, ft, n, None, include_lower=op == ">=")
            return _Q.range_query(self.schema, field, ft, None, n, include_upper=op == "<=")
        lo_text, hi_text, lo_inc, hi_inc = t.value
        lo = None if lo_text is None else num(lo_text)
        hi = None if hi_text is None else num(hi_text)
        return _Q.range_query(
            self.schema, field, ft, lo, hi, include_lower=lo_inc or lo is None, include_upper=hi_inc or hi is None
        )
