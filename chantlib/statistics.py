"""Statistics: one frozen record of a workspace's figures (docs/library.md, "Statistics").

:meth:`Workspace.statistics <chantlib.workspace.Workspace.statistics>` serves the daemon's
``daemon_status`` and its metrics (scraped every 15 s, at 200,000 specs). What depends on
the specs only (counts by status and project, ready, blocked, the queue's work and what
lint holds back of it) is worked out in one pass over the active specs and the ready ones,
and kept until a spec changes (the table's generation) or the config does (the lint gate);
what the leases change is worked out on every call, from the live leases only. So a call
on an unchanged repository costs what its leases are, and the first after a change one
pass.
"""

from __future__ import annotations

from dataclasses import dataclass

from .table import HOT_FIELDS

__all__ = ["Statistics", "SpecFigures", "spec_figures", "statistics"]

_STATUS, _PROJECT, _TYPE = (HOT_FIELDS.index(name) for name in ("status", "project", "type"))


@dataclass(frozen=True, slots=True)
class Statistics:
    """A workspace's figures at one moment.

    Counts of spec files: ``specs`` (every file the table holds), ``active`` and
    ``archived`` (by ID, as ``list`` and ``show`` see them), ``broken`` (files that do not
    parse). Of the active specs: ``ready`` (groups included, as ``list --status ready``),
    ``blocked`` (as ``--status blocked``), ``queue_depth`` (ready work with no live lease and
    no lint error: what ``queue next`` would hand out, ``queue list``'s ``depth``) and
    ``held`` (ready unleased work lint holds back: ``queue list``'s ``held``). ``leases``
    (live ones) and ``owners`` (distinct owners holding them); ``documents`` in the search
    index when this workspace has it open (the daemon does), else ``None``.

    Breakdowns, as sorted ``(key, count)`` pairs (``dict()`` of one is a mapping; the project
    of a spec without one is ``""``): ``by_status`` (active specs by stored status),
    ``by_status_project`` (by ``(status, project)``), ``ready_by_project`` and
    ``queued_by_project``, each with every project that has an active spec (0 included).

    The lock table's counters since it was made: ``leases_acquired``, ``leases_conflicts``
    (acquisitions refused), ``leases_released``, ``leases_renewed``, ``leases_expired``.
    """

    specs: int
    active: int
    archived: int
    broken: int
    ready: int
    blocked: int
    queue_depth: int
    held: int
    leases: int
    owners: int
    documents: int | None
    by_status: tuple[tuple[str, int], ...]
    by_status_project: tuple[tuple[tuple[str, str], int], ...]
    ready_by_project: tuple[tuple[str, int], ...]
    queued_by_project: tuple[tuple[str, int], ...]
    leases_acquired: int
    leases_conflicts: int
    leases_released: int
    leases_renewed: int
    leases_expired: int

    def to_dict(self) -> dict:
        """Plain JSON-able data: the breakdowns as objects (``status/project`` keys)."""
        out = {name: getattr(self, name) for name in self.__slots__}
        out["by_status"] = dict(self.by_status)
        out["by_status_project"] = {f"{status}/{project}": n for (status, project), n in self.by_status_project}
        out["ready_by_project"] = dict(self.ready_by_project)
        out["queued_by_project"] = dict(self.queued_by_project)
        return out


class SpecFigures:
    """What the specs alone decide (see :func:`spec_figures`): kept while they stay the same."""

    __slots__ = ("key", "specs", "active", "archived", "broken", "ready", "blocked", "by_status_project",
                 "ready_by_project", "free_by_project", "work", "held")

    key: object  # what they were worked out from (see Workspace.statistics)
    specs: int
    active: int
    archived: int
    broken: int
    ready: int
    blocked: int
    by_status_project: dict[tuple[str, str], int]
    ready_by_project: dict[str, int]
    free_by_project: dict[str, int]  # ready work lint does not hold back, leased or not
    work: dict[str, str]  # ready work (groups left out): id -> project
    held: set[str]  # of it, what lint holds back

    def __init__(self, key) -> None:
        self.key = key


def spec_figures(table, gate, key=None) -> SpecFigures:
    """One pass over the active specs and the ready ones of ``table`` (its graph), with
    ``gate`` (a :class:`~chantlib.lint.Gate`) judging the ready work."""
    active = table.active
    figures = SpecFigures(key)
    figures.specs, figures.active = len(table.rows), len(active)
    figures.archived, figures.broken = len(table.archived_statuses()), len(table.broken)
    counts: dict[tuple[str, str], int] = {}
    for row in active.values():
        k = (row[_STATUS], row[_PROJECT] or "")
        counts[k] = counts.get(k, 0) + 1
    graph = table.graph
    projects = {project for _status, project in counts}
    ready_by = dict.fromkeys(projects, 0)
    for spec_id in graph.ready:
        project = active[spec_id][_PROJECT] or ""
        ready_by[project] = ready_by.get(project, 0) + 1
    free_by = dict.fromkeys(projects, 0)
    work: dict[str, str] = {}  # ready work (groups left out): id -> project
    held: set[str] = set()  # of it, what lint holds back
    errors = gate.errors
    for row in graph.queue_rows:
        project = row[_PROJECT] or ""
        work[row[0]] = project
        if errors(row):
            held.add(row[0])
        else:
            free_by[project] = free_by.get(project, 0) + 1
    figures.ready, figures.blocked = len(graph.ready), len(graph.blocked)
    figures.by_status_project, figures.ready_by_project, figures.free_by_project = counts, ready_by, free_by
    figures.work, figures.held = work, held
    return figures


def statistics(figures: SpecFigures, locks, documents: int | None) -> Statistics:
    """The record: ``figures`` with what ``locks`` (a :class:`~chantlib.locks.LockTable`)
    holds now: a leased spec is out of the queue, and out of what lint holds back of it."""
    leases = locks.leases()
    counters = locks.statistics()
    queued = dict(figures.free_by_project)
    held = len(figures.held)
    work, lint_held = figures.work, figures.held
    for lease in leases:
        spec_id = lease.spec
        project = work.get(spec_id)
        if project is None:
            continue  # not ready work: the queue never had it
        if spec_id in lint_held:
            held -= 1
        else:
            queued[project] -= 1
    by_status: dict[str, int] = {}
    for (status, _project), n in figures.by_status_project.items():
        by_status[status] = by_status.get(status, 0) + n
    return Statistics(
        specs=figures.specs,
        active=figures.active,
        archived=figures.archived,
        broken=figures.broken,
        ready=figures.ready,
        blocked=figures.blocked,
        queue_depth=sum(queued.values()),
        held=held,
        leases=len(leases),
        owners=len({lease.owner for lease in leases}),
        documents=documents,
        by_status=tuple(sorted(by_status.items())),
        by_status_project=tuple(sorted(figures.by_status_project.items())),
        ready_by_project=tuple(sorted(figures.ready_by_project.items())),
        queued_by_project=tuple(sorted(queued.items())),
        leases_acquired=counters["acquired"],
        leases_conflicts=counters["conflicts"],
        leases_released=counters["released"],
        leases_renewed=counters["renewed"],
        leases_expired=counters["expired"],
    )
