"""Kept ``list`` answers: one encoded answer kept in step with the spec table, piece by piece.

At 200,000 specs ``list --ready`` holds 23,706 specs. Looking each one up after a change (its
row, its ready and blocked state, the lint gate's verdict) costs about 40 ms; a
:class:`Listing` instead follows the graph (:meth:`Graph.follow
<chantlib.graph.Graph.follow>`), which names the specs an update may have changed, and moves
only those in or out of its sorted lists, so an answer after a change costs what changed plus
one join of the pieces. It starts again from the whole set when it cannot follow: the table
rebuilt its graph, the gate dropped every verdict, the config changed, or more changed than
is worth following. A Hypothesis property checks that it equals a fresh answer after random
changes (``tests/test_scale.py``).

The pieces are each spec's JSON: one text per spec (``form="objects"``), or one per field
(``form="columns"``, see :func:`columns_text`). Import-light: no YAML parser, no tantivy.
"""

from __future__ import annotations

from bisect import bisect_left
from json import dumps
from json.encoder import encode_basestring_ascii

from .ids import sort_key

__all__ = ["Listing", "listed", "follows", "piece", "columns_text"]

_GROUP = "group"


def listed(row, graph, ready, status, labels, type, project) -> bool:
    """Whether ``list`` with these filters shows this active ``row`` (the rule of
    ``Workspace._list_rows`` for one row; ``status="blocked"`` is not followed here)."""
    spec_id = row[0]
    if ready or status == "ready":
        if spec_id not in graph.ready_set or ready and row.type == _GROUP:
            return False
        if ready and status not in (None, "ready") and row.status != status:
            return False
    elif status is None:
        if row.status == "cancelled":
            return False
    elif status == "pending":
        if row.status != "pending" or spec_id in graph.blocked:
            return False
    elif row.status != status:
        return False
    if type is not None and row.type != type.lower():
        return False
    if labels and not set(labels).intersection(row.labels):
        return False
    return project is None or row.project == project


def follows(status) -> bool:
    """Whether a :class:`Listing` can follow ``list`` with this ``status`` filter (the blocked
    list is in ``sort_key`` order alone, where ties keep the order of a set)."""
    return status != "blocked"


class Listing:
    """One ``list`` request's answer (its filters, ``fields`` and ``form``), kept in step.

    :meth:`pieces` gives the answer's columns of pieces (each spec's JSON text, one column
    per field of the answer, or one column of whole spec objects), in chant order, up to date
    with the table.
    """

    __slots__ = ("table", "filters", "width", "_graph", "_follower", "_gate", "_cleared", "_keys", "_kept", "_columns",
                 "_limit")

    def __init__(self, table, filters: tuple, width: int) -> None:
        self.table = table
        self.filters = filters  # (ready, status, labels, type, project)
        self.width = width  # pieces per spec
        self._graph = None
        self._follower = None
        self._gate = None
        self._cleared = -1
        self._keys: list[tuple] = []  # the chant order key of each listed spec, for bisect
        self._kept: dict[str, tuple] = {}  # id -> (its row, its state, its pieces)
        self._columns: list[list[str]] = []
        self._limit = 0

    @property
    def count(self) -> int:
        """How many specs the answer holds (as of the last :meth:`pieces`)."""
        return len(self._keys)

    def close(self) -> None:
        if self._graph is not None and self._follower is not None:
            self._graph.unfollow(self._follower)
        self._graph = self._follower = None

    def pieces(self, rows_now, state, encode, gate) -> list[list[str]]:
        """The answer's columns of pieces. ``rows_now()``: the listed rows from scratch, in
        chant order (for a start); ``state(row)``: what a spec's pieces depend on beyond its
        row (ready, blocked, the lint errors that hold it); ``encode(row)``: its pieces, one
        per column; ``gate``: the lint gate ``state`` asks (``None``: not asked)."""
        graph = self.table.graph
        follower = self._follower
        if (graph is not self._graph or follower is None or follower.lost or gate is not self._gate
                or (gate is not None and gate.cleared != self._cleared) or len(follower.ids) > self._limit):
            self._start(graph, gate, rows_now(), state, encode)
        elif follower.ids:
            changed, follower.ids = follower.ids, set()
            self._patch(graph, changed, state, encode)
        return self._columns

    def _start(self, graph, gate, rows, state, encode) -> None:
        """From the whole set; the pieces of a spec whose row and state are the same are kept."""
        self.close()
        self._graph, self._follower = graph, graph.follow()
        self._gate, self._cleared = gate, gate.cleared if gate is not None else -1
        old, kept = self._kept, {}
        for row in rows:
            spec_id = row[0]
            now = state(row)
            hit = old.get(spec_id)
            if hit is None or hit[0] is not row or hit[1] != now:
                hit = (row, now, encode(row))
            kept[spec_id] = hit
        self._kept = kept
        self._keys = [(sort_key(row[0]), row[0]) for row in rows]
        if kept:
            self._columns = [list(column) for column in zip(*(hit[2] for hit in kept.values()), strict=True)]
        else:
            self._columns = [[] for _ in range(self.width)]
        # past this many changes at once, starting again costs less than following them
        self._limit = max(1000, len(rows) // 4)

    def _patch(self, graph, changed, state, encode) -> None:
        active = self.table.active
        keys, kept, columns = self._keys, self._kept, self._columns
        filters = self.filters
        for spec_id in changed:
            row = active.get(spec_id)
            show = row is not None and listed(row, graph, *filters)
            hit = kept.get(spec_id)
            if hit is None and not show:
                continue
            key = (sort_key(spec_id), spec_id)
            at = bisect_left(keys, key)
            if not show:  # no longer listed
                del keys[at]
                for column in columns:
                    del column[at]
                del kept[spec_id]
                continue
            now = state(row)
            if hit is not None and hit[0] is row and hit[1] == now:
                continue  # decided again, the same (a neighbour of a changed spec, say)
            pieces = encode(row)
            if hit is None:  # listed now
                keys.insert(at, key)
                for column, piece in zip(columns, pieces, strict=True):
                    column.insert(at, piece)
            else:  # its place is its ID's: the pieces change where they are
                for column, piece in zip(columns, pieces, strict=True):
                    column[at] = piece
            kept[spec_id] = (row, now, pieces)


_CONSTANTS = {None: "null", True: "true", False: "false"}


def piece(value) -> str:
    """``value`` as compact ASCII JSON, the bytes ``json.dumps`` gives, with the common
    cases (a string, ``null``, a flag, an empty list) made without an encoder per value."""
    kind = value.__class__
    if kind is str:
        return encode_basestring_ascii(value)
    if value is None or kind is bool:
        return _CONSTANTS[value]
    if kind is list and not value:
        return "[]"
    return dumps(value, separators=(",", ":"))


def columns_text(fields: tuple, columns: list[list[str]]) -> str:
    """The ``specs`` of a ``form="columns"`` answer as JSON text, from each value's JSON text
    (see :func:`chantlib.columns.pack`)."""
    return "{" + ",".join(f'"{name}":' + _column_text(column) for name, column in zip(fields, columns,
                                                                                         strict=True)) + "}"


def _column_text(column: list[str]) -> str:
    first = column[0] if column else None
    if first is not None and column[-1] == first and column.count(first) == len(column):
        return '{"all":' + first + "}"
    return "[" + ",".join(column) + "]"
