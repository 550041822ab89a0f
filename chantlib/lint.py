"""Validation rules (docs/chant-format.md §8), run over the spec table.

Upstream's rules (``parse``, ``title``, ``dependency``, ``type``, ``complexity``,
``coupling``, ``approval``) and ours: ``cycle`` (dependency cycles, an error), ``status`` and
``value`` (unknown status/type values and unusable priorities, warnings: they load, but
upstream would refuse them), ``duplicate`` (two files with one ID, an error), ``empty`` (a
file with nothing in it, an error) and ``frontmatter`` (no YAML frontmatter, a warning).
Rules named in the config's ``lint.disable`` are skipped. Everything here reads rows, so
lint needs no second pass over the files.

The queue never hands out a spec lint reports an error for (a worker must not run an agent
on nothing). :class:`Gate` gives that verdict at a claim's cost: the rules that look at one
file only are decided when its row is built (:func:`row_findings`, the row's ``lint``
field), and the few that look at other specs are checked for the ready rows a queue asks
about.
"""

from __future__ import annotations

from .ids import driver_of, sort_key
from .table import HOT_FIELDS, weakly
from .values import KNOWN_STATUSES, KNOWN_TYPES

__all__ = ["lint_rows", "lint_changes", "RULES", "ROW_RULES", "row_findings", "Gate"]

RULES = (
    "parse", "empty", "frontmatter", "title", "dependency", "cycle", "type", "complexity", "complexity_words",
    "coupling", "approval", "status", "value", "duplicate",
)
#: the rules one file decides alone, and their severity (see row_findings)
ROW_RULES = {"empty": "error", "frontmatter": "warning", "title": "error", "approval": "error"}


def _approval_missing(approval) -> list[str]:
    """What an approved or rejected approval lacks (``by``, ``at``); ``approval`` is the
    row's ``(required, status, by, at)``."""
    _required, status, by, at = approval
    if status not in ("approved", "rejected"):
        return []
    return [name for name, value in (("by", by), ("at", at)) if not value]


def row_findings(spec, approval) -> tuple[str, ...]:
    """The rules of :data:`ROW_RULES` a parsed spec breaks, for its row's ``lint`` field
    (``approval``: the row's approval tuple, or ``None``). An empty file breaks ``empty``
    and nothing else: there is nothing else to say about it."""
    if not spec.text.strip():
        return ("empty",)
    found = []
    if not spec.has_frontmatter:
        found.append("frontmatter")
    if not spec.title:
        found.append("title")
    if approval is not None and _approval_missing(approval):
        found.append("approval")
    return tuple(found)

_DEPENDS_HINT = "Use depends_on for dependencies instead of referencing spec IDs in the body"


def _diag(spec_id, rule, severity, message, suggestion=None) -> dict:
    return {"spec_id": spec_id, "rule": rule, "severity": severity, "message": message, "suggestion": suggestion}


def _row_rules(row, table, config) -> list[dict]:
    """Rules that look at one spec (and, for references, at which IDs exist)."""
    out: list[dict] = []
    row = row.full()
    sid = row.id
    if row.error:
        out.append(_diag(sid, "parse", "error", row.error, "Fix the YAML between the '---' lines"))
        return out
    found = row.lint
    if "empty" in found:
        out.append(_diag(sid, "empty", "error", "File is empty", "Write the spec (frontmatter and a '# ' title) or delete the file"))
        return out
    if "frontmatter" in found:
        out.append(
            _diag(sid, "frontmatter", "warning", "File has no frontmatter: read as a pending code spec",
                  "Start the file with a '---' block holding at least type and status")
        )
    if "title" in found:
        out.append(_diag(sid, "title", "error", "Spec has no title (a body line starting with '# ')"))
    known = table.by_id
    for dep in row.depends_on or ():
        if dep not in known:
            out.append(_diag(sid, "dependency", "error", f"depends_on names unknown spec '{dep}'"))
    for member in row.members:
        if member not in known:
            out.append(_diag(sid, "dependency", "error", f"members names unknown spec '{member}'"))
    keys = set(row.keys)
    if row.raw_status is not None and row.status not in KNOWN_STATUSES:
        out.append(
            _diag(sid, "status", "warning", f"Unknown status '{row.raw_status}'", "Valid: " + ", ".join(KNOWN_STATUSES))
        )
    if row.raw_type is not None and row.type not in KNOWN_TYPES:
        out.append(_diag(sid, "value", "warning", f"Unknown type '{row.raw_type}'", "Valid: " + ", ".join(KNOWN_TYPES)))
    if row.priority is None:
        out.append(_diag(sid, "value", "warning", "priority is not low/normal/high/critical or an integer"))
    if row.type == "documentation" and not keys & {"tracks", "target_files"}:
        out.append(_diag(sid, "type", "warning", "Documentation spec has neither tracks nor target_files"))
    if row.type == "research":
        if not keys & {"informed_by", "origin"}:
            out.append(_diag(sid, "type", "warning", "Research spec has neither informed_by nor origin"))
        if "target_files" not in keys:
            out.append(_diag(sid, "type", "warning", "Research spec has no target_files for its output"))
    if row.type in ("driver", "group") and not row.members and not table.graph.members(sid):
        out.append(_diag(sid, "type", "warning", f"{row.type.capitalize()} spec has no members"))
    max_criteria = config.lint_threshold("complexity_criteria")
    if row.total > max_criteria:
        out.append(
            _diag(
                sid, "complexity", "warning",
                f"Spec has {row.total} acceptance criteria (>{max_criteria}) - consider splitting",
                f"Consider using 'chant split {sid}'",
            )
        )
    max_files = config.lint_threshold("complexity_files")
    if len(row.target_files) > max_files:
        out.append(
            _diag(
                sid, "complexity", "warning",
                f"Spec touches {len(row.target_files)} files (>{max_files}) - consider splitting",
                f"Consider using 'chant split {sid}'",
            )
        )
    if "complexity_words" not in config.lint_disabled:
        max_words = config.lint_threshold("complexity_words")
        if row.words > max_words:
            out.append(
                _diag(
                    sid, "complexity", "warning",
                    f"Spec description is {row.words} words (>{max_words})",
                    f"Consider using 'chant split {sid}'",
                )
            )
    out.extend(_coupling(row))
    if "approval" in found:
        missing = _approval_missing(row.approval)
        out.append(_diag(sid, "approval", "error", f"Approval is {row.approval[1]} but has no {' or '.join(missing)}"))
    return out


def _coupling(row) -> list[dict]:
    if row.type in ("driver", "group"):
        return []
    sid = row.id
    refs = sorted({r for r in row.refs if not r.startswith(sid) and not sid.startswith(r)}, key=sort_key)
    driver = driver_of(sid)
    if driver is not None:
        refs = [r for r in refs if driver_of(r) == driver]
        if refs:
            return [
                _diag(
                    sid, "coupling", "warning",
                    f"Spec references sibling spec(s): {', '.join(refs)} - member specs should be independent",
                    _DEPENDS_HINT,
                )
            ]
        return []
    if refs:
        return [
            _diag(
                sid, "coupling", "warning",
                f"Spec references other spec ID(s) in body: {', '.join(refs)} - use depends_on for dependencies",
                _DEPENDS_HINT,
            )
        ]
    return []


def lint_rows(table, config, *, include_archive: bool = False, ids=None) -> dict:
    """Lint the table's specs (and the files that do not parse); upstream's JSON shape."""
    if ids is None:
        rows = dict(table.active)
        if include_archive:
            for spec_id, row in table.archived.items():
                rows.setdefault(spec_id, row)
    else:  # a few specs (a save, a commit): their rows alone, not a copy of the table
        active, by_id = table.active, table.by_id  # a view: the archive's rows are not all made
        rows = {}
        for i in ids:
            row = active.get(i)
            if row is None and include_archive:
                row = by_id.get(i)
            if row is not None:
                rows[i] = row
    disabled = config.lint_disabled
    per_spec: dict[str, list[dict]] = {sid: _row_rules(row, table, config) for sid, row in rows.items()}
    for row in table.broken.values():  # files that do not parse are left out of every other view
        if (include_archive or not row.archived) and (ids is None or row.id in ids):
            per_spec.setdefault(row.id, []).extend(_row_rules(row, table, config))
    # a spec can be the one lint names for a cycle only if it depends on something; for a
    # few specs, only the cycles through them are looked for (what they reach, not the table)
    graph = table.graph
    cycles = graph.cycles if ids is None else graph.cycles_through(r.id for r in rows.values() if r.depends_on)
    for cycle in cycles:
        head = cycle[0]
        if head in per_spec:
            per_spec[head].append(
                _diag(head, "cycle", "error", "Dependency cycle: " + " -> ".join(cycle), "Remove one depends_on link")
            )
    for spec_id, paths in table.duplicates:
        if spec_id in per_spec:
            per_spec[spec_id].append(
                _diag(spec_id, "duplicate", "error", f"Several files hold this ID: {', '.join(paths)}")
            )
    diagnostics: list[dict] = []
    passed = warned = failed = 0
    for sid in sorted(per_spec, key=sort_key):
        found = [d for d in per_spec[sid] if d["rule"] not in disabled]
        diagnostics.extend(found)
        if any(d["severity"] == "error" for d in found):
            failed += 1
        elif found:
            warned += 1
        else:
            passed += 1
    return {"diagnostics": diagnostics, "passed": passed, "warned": warned, "failed": failed, "total": len(per_spec)}


_ID, _DEPS, _MEMBERS = (HOT_FIELDS.index(name) for name in ("id", "depends_on", "members"))


def lint_changes(table, config, changed, removed=()) -> dict:
    """:func:`lint_rows` over the specs some changes touch: those of the files ``changed``
    (relpaths, ``specs/<id>.md``: added or edited; archived ones too), and the specs the
    changes break elsewhere: the spec lint names for a dependency cycle through one of them
    (the cycle is reported on its first spec in chant order), and the specs whose
    ``depends_on`` or ``members`` name an ID that the files ``removed`` took away. What
    judging a change costs: the rules of those specs, a walk of what they depend on, and one
    pass over the active specs when something was removed (the pre-commit hook; a validation on save could use it too)."""
    rows = table.rows
    touched = {rows[rel][_ID] for rel in changed if rel in rows}
    ids = set(touched)
    known = table.by_id
    gone = {spec_id for spec_id in (rel.rsplit("/", 1)[-1][:-3] for rel in removed) if spec_id not in known}
    if gone:
        for row in table.active.values():
            if gone.intersection(row.depends_on or ()) or gone.intersection(row.members):
                ids.add(row.id)
    # only a spec that depends on something can be in a cycle, and only the cycles through
    # those are looked for: what they reach, never a walk of the whole table
    cyclic = [rows[rel][_ID] for rel in changed if rel in rows and rows[rel][_DEPS]]
    for cycle in table.graph.cycles_through(cyclic):
        ids.add(cycle[0])
    return lint_rows(table, config, include_archive=True, ids=ids)




class Gate:
    """Which ready specs the queue holds back: those :func:`lint_rows` reports an error for.

    Built for one table and one config, and asked about ready rows only, which is what makes it cheap: a row's own rules were decided when it was
    read (``row.lint``), and of the rules that look at other specs only three can hold for a
    ready spec: ``members`` naming an unknown ID (the ``dependency`` rule), ``duplicate``, and
    being the spec lint names for a dependency ``cycle``. The ``depends_on`` half of the
    ``dependency`` rule never does: a ready spec's dependencies are all done, so all exist.
    A verdict is kept for as long as its row is the same row object and nothing it depends
    on moved. The set-level rules read only IDs, folders, dependencies, members and
    brokenness, so a status or title edit drops no verdict but the edited row's (a new row
    object); a spec that comes, goes or changes those drops only its own verdict when it is
    on its own (no dependencies or members, and no spec depends on it or lists it as a
    member), and every verdict otherwise. The gate follows the table's changes as a
    listener, so a daemon keeps one gate for its life and a change costs what changed.
    """

    __slots__ = ("table", "config", "_disabled", "_duplicates", "_verdicts", "_member_refs", "cleared", "__weakref__")

    def __init__(self, table, config) -> None:
        self.table = table
        self.config = config
        self._disabled = config.lint_disabled
        self._duplicates: frozenset | None = None
        self._verdicts: dict[str, tuple] = {}  # id -> (the row judged, its verdict)
        self._member_refs: set | None = None  # every ID some active spec lists in `members`
        #: how many times every verdict was dropped: a view that holds verdicts (the daemon's
        #: kept ``list`` answers) starts again when it moved; else only moved specs' changed
        self.cleared = 0
        table.listeners.append(weakly(self._noted))  # the table must not keep its gates alive

    def _noted(self, changes) -> None:
        if changes.moved:
            self._moved(changes.moved)

    def _moved(self, moved) -> None:
        self._duplicates = None  # cheap to find again, and a spec that came may make one
        alone = []
        for before, after in moved:
            for row in (before, after):
                if row is None:
                    continue
                if row[_DEPS] or row[_MEMBERS]:
                    self._clear()
                    return
                alone.append(row[_ID])
        graph = self.table.graph
        refs = self._members_listed()
        for spec_id in alone:
            if graph.dependents(spec_id) or spec_id in refs:
                self._clear()
                return
        for spec_id in alone:
            self._verdicts.pop(spec_id, None)

    def _clear(self) -> None:
        self.cleared += 1
        self._verdicts = {}
        self._member_refs = None

    def _members_listed(self) -> set:
        refs = self._member_refs
        if refs is None:
            refs = self._member_refs = {m for row in self.table.active.values() for m in row.members}
        return refs

    def errors(self, row) -> tuple[str, ...]:
        """The rules lint reports an error of for ``row`` (a ready active row); ``()``: none."""
        hit = self._verdicts.get(row.id)
        if hit is not None and hit[0] is row:
            return hit[1]
        verdict = self._judge(row)
        self._verdicts[row.id] = (row, verdict)
        return verdict

    def _judge(self, row) -> tuple[str, ...]:
        disabled = self._disabled
        own = row.lint
        found = [rule for rule in own if ROW_RULES[rule] == "error" and rule not in disabled] if own else []
        if row.members and "dependency" not in disabled:
            known = self.table.by_id
            if any(member not in known for member in row.members):
                found.append("dependency")
        if row.depends_on and "cycle" not in disabled and self._names_cycle(row.id):
            found.append("cycle")
        if "duplicate" not in disabled:
            if self._duplicates is None:
                self._duplicates = frozenset(spec_id for spec_id, _paths in self.table.duplicates)
            if row.id in self._duplicates:
                found.append("duplicate")
        return tuple(found)

    def _reach(self, start: str) -> set[str]:
        """Active specs reachable from ``start`` through ``depends_on`` (the edges lint's cycle
        rule follows)."""
        active = self.table.active
        seen: set[str] = set()
        todo = [start]
        while todo:
            for dep in active[todo.pop()].depends_on or ():
                if dep in active and dep not in seen:
                    seen.add(dep)
                    todo.append(dep)
        return seen

    def _names_cycle(self, spec_id: str) -> bool:
        """Lint reports a cycle on the first spec of it in chant order (the first of its
        strongly connected component): is that ``spec_id``? A walk of its dependencies,
        which for a ready spec are done ones, usually a handful."""
        reach = self._reach(spec_id)
        if spec_id not in reach:
            return False
        key = sort_key(spec_id)
        return not any(sort_key(other) < key and spec_id in self._reach(other) for other in reach)
