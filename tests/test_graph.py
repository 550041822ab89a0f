"""Ready and blocked (chant-format §4), each rule on a small repository."""

from __future__ import annotations


def ready_ids(repo):
    return [s["id"] for s in repo.workspace().list_specs(ready=True)["specs"]]


def test_pending_and_failed_are_ready_others_not(repo):
    for n, status in enumerate(["pending", "failed", "in_progress", "completed", "paused", "cancelled", "blocked",
                                "needs_attention"], start=1):
        repo.write(f"2026-01-24-00{n}-aaa", f"status: {status}")
    assert ready_ids(repo) == ["2026-01-24-001-aaa", "2026-01-24-002-aaa"]


def test_missing_status_means_pending(repo):
    repo.write("2026-01-24-001-aaa", "type: code")
    assert ready_ids(repo) == ["2026-01-24-001-aaa"]


def test_dependencies_must_be_done(repo):
    repo.write("2026-01-24-001-aaa", "status: completed")
    repo.write("2026-01-24-002-aaa", "status: cancelled")
    repo.write("2026-01-24-003-aaa", "status: in_progress")
    repo.write("2026-01-24-004-aaa", "status: pending\ndepends_on: [2026-01-24-001-aaa, 2026-01-24-002-aaa]")
    repo.write("2026-01-24-005-aaa", "status: pending\ndepends_on: 2026-01-24-003-aaa")
    repo.write("2026-01-24-006-aaa", "status: pending\ndepends_on: [2026-01-24-999-zzz]")
    ws = repo.workspace()
    assert ready_ids(repo) == ["2026-01-24-004-aaa"]
    listed = {s["id"] for s in ws.list_specs(status="blocked")["specs"]}
    assert listed == {"2026-01-24-005-aaa", "2026-01-24-006-aaa"}
    pending = {s["id"] for s in ws.list_specs(status="pending")["specs"]}
    assert pending == {"2026-01-24-004-aaa"}  # --status pending leaves blocked ones out
    shown = ws.show("006")
    assert shown["blocked_by"] == [{"kind": "dependency", "detail": "2026-01-24-999-zzz", "status": "missing"}]


def test_archived_completed_dependency_satisfies(repo):
    """The archive fix: upstream blocks for ever on an archived dependency; we do not."""
    repo.write("2026-01-20-001-old", "status: completed", archive="2026-01-21")
    repo.write("2026-01-24-001-new", "status: pending\ndepends_on: [2026-01-20-001-old]")
    assert ready_ids(repo) == ["2026-01-24-001-new"]


def test_member_waits_for_earlier_siblings_unless_it_has_depends_on(repo):
    d = "2026-01-24-001-drv"
    repo.write(d, "type: group\nstatus: in_progress")
    repo.write(f"{d}.1", "status: pending")
    repo.write(f"{d}.2", "status: pending")
    repo.write(f"{d}.4", "status: pending")  # .3 missing: skipped, not blocking
    repo.write(f"{d}.5", "status: pending\ndepends_on: []")  # explicit key: no sibling order
    assert ready_ids(repo) == [f"{d}.1", f"{d}.5"]
    repo.write(f"{d}.1", "status: completed")
    repo.write(f"{d}.2", "status: cancelled")
    assert ready_ids(repo) == [f"{d}.4", f"{d}.5"]


def test_member_blocked_by_its_drivers_outside_dependency(repo):
    d = "2026-01-24-002-drv"
    repo.write("2026-01-24-001-ext", "status: in_progress")
    repo.write(d, f"type: driver\nstatus: pending\ndepends_on: [2026-01-24-001-ext, {d}.1]")
    repo.write(f"{d}.1", "status: pending")
    ws = repo.workspace()
    assert ready_ids(repo) == []
    assert ws.show(f"{d}.1")["blocked_by"][0]["kind"] == "driver_dependency"
    repo.write("2026-01-24-001-ext", "status: completed")
    # the driver still depends on its own member (a sibling dependency does not block the member)
    assert ready_ids(repo) == [f"{d}.1"]


def test_driver_with_criteria_waits_for_members(repo):
    d = "2026-01-24-001-drv"
    repo.write(d, "status: pending", body="# Driver\n\n## Acceptance Criteria\n\n- [ ] all done\n")
    repo.write(f"{d}.1", "status: completed")
    repo.write(f"{d}.2", "status: cancelled")
    assert ready_ids(repo) == []  # members must be completed, cancelled is not enough
    repo.write(f"{d}.2", "status: completed")
    assert ready_ids(repo) == [d]


def test_driver_without_criteria_does_not_wait(repo):
    d = "2026-01-24-001-drv"
    repo.write(d, "status: pending", body="# Driver\n")
    repo.write(f"{d}.1", "status: pending")
    assert ready_ids(repo) == [d, f"{d}.1"]


def test_approval(repo):
    repo.write("2026-01-24-001-aaa", "status: pending\napproval: {required: true, status: pending}")
    repo.write("2026-01-24-002-aaa", "status: pending\napproval: {required: true, status: approved, by: a, at: x}")
    repo.write("2026-01-24-003-aaa", "status: pending\napproval: {required: false, status: pending}")
    repo.write("2026-01-24-004-aaa", "status: failed\napproval: {required: true, status: rejected}")
    assert ready_ids(repo) == ["2026-01-24-002-aaa", "2026-01-24-003-aaa", "2026-01-24-004-aaa"]
    assert repo.workspace().show("001")["blocked_by"] == [{"kind": "approval", "detail": "pending", "status": None}]


def test_groups_are_left_out_of_list_ready_but_not_status_ready(repo):
    repo.write("2026-01-24-001-grp", "type: group\nstatus: pending")
    ws = repo.workspace()
    assert ws.list_specs(ready=True)["specs"] == []
    assert [s["id"] for s in ws.list_specs(status="ready")["specs"]] == ["2026-01-24-001-grp"]


def test_cycles_are_found_and_reported_by_lint(repo):
    repo.write("2026-01-24-001-aaa", "status: pending\ndepends_on: [2026-01-24-002-aaa]")
    repo.write("2026-01-24-002-aaa", "status: pending\ndepends_on: [2026-01-24-003-aaa]")
    repo.write("2026-01-24-003-aaa", "status: pending\ndepends_on: [2026-01-24-001-aaa]")
    repo.write("2026-01-24-004-aaa", "status: pending\ndepends_on: [2026-01-24-004-aaa]")
    ws = repo.workspace()
    ws.refresh()
    assert ws.table.graph.cycles == [
        ["2026-01-24-001-aaa", "2026-01-24-002-aaa", "2026-01-24-003-aaa", "2026-01-24-001-aaa"],
        ["2026-01-24-004-aaa", "2026-01-24-004-aaa"],
    ]
    report = ws.lint()
    cycles = [d for d in report["diagnostics"] if d["rule"] == "cycle"]
    assert [d["spec_id"] for d in cycles] == ["2026-01-24-001-aaa", "2026-01-24-004-aaa"]
    assert report["failed"] == 2
    assert ready_ids(repo) == []


def test_broken_spec_is_never_ready_and_blocks_its_dependents(repo):
    repo.write("2026-01-24-001-bad", raw="---\nstatus: [\n---\n# broken\n")
    repo.write("2026-01-24-002-aaa", "status: pending\ndepends_on: [2026-01-24-001-bad]")
    repo.write("2026-01-24-003-aaa", "status: pending")
    result = repo.workspace().list_specs(ready=True)
    assert [s["id"] for s in result["specs"]] == ["2026-01-24-003-aaa"]
    assert len(result["warnings"]) == 1 and "2026-01-24-001-bad" in result["warnings"][0]


def test_order_is_chant_order(repo):
    for spec_id in ["2026-01-25-001-aaa", "2026-01-24-010-aaa", "2026-01-24-00z-aaa", "2026-01-24-002-bbb"]:
        repo.write(spec_id)
    assert ready_ids(repo) == ["2026-01-24-002-bbb", "2026-01-24-00z-aaa", "2026-01-24-010-aaa", "2026-01-25-001-aaa"]


# --- the incremental graph (Graph.update) gives what a graph built from scratch gives ----------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from chantlib.graph import Graph  # noqa: E402

_D = "2026-01-24-001-drv"
# a driver with members (nested and out of order), plain specs, a free-form stem, and IDs that
# exist only in the archive: every rule that links one spec's state to another's
_GRAPH_IDS = [_D, f"{_D}.1", f"{_D}.2", f"{_D}.3", f"{_D}.2.1", f"{_D}.10", "2026-01-24-002-aaa",
              "2026-01-24-003-bbb", "2026-01-23-001-old", "free-form-stem"]
_STATUSES = ["pending", "failed", "completed", "cancelled", "in_progress", "blocked"]


class _R:
    """A row as the graph reads it (the table's Row has the same attributes)."""

    __slots__ = ("id", "status", "type", "depends_on", "approval", "total", "priority")

    def __init__(self, spec_id, status, type_, depends_on, approval, total, priority) -> None:
        self.id, self.status, self.type, self.depends_on = spec_id, status, type_, depends_on
        self.approval, self.total, self.priority = approval, total, priority

    def __repr__(self) -> str:
        return f"_R({self.id}, {self.status}, deps={self.depends_on}, total={self.total})"


_row = st.builds(
    _R,
    st.sampled_from(_GRAPH_IDS),
    st.sampled_from(_STATUSES),
    st.sampled_from(["code", "code", "group", "driver"]),
    st.one_of(st.none(), st.lists(st.sampled_from(_GRAPH_IDS + ["2026-01-01-zzz-gone"]), max_size=3).map(tuple)),
    st.sampled_from([None, (True, "pending", None, None), (True, "approved", "a", "x"), (False, None, None, None)]),
    st.sampled_from([0, 0, 2]),
    st.sampled_from([50, 50, 100, 0, None]),
)
_graph_ops = st.lists(
    st.one_of(
        st.tuples(st.just("put"), _row),
        st.tuples(st.just("drop"), st.sampled_from(_GRAPH_IDS)),
        st.tuples(st.just("archive"), st.sampled_from(_GRAPH_IDS), st.sampled_from(_STATUSES + [None])),
        st.tuples(st.just("look"), st.sampled_from(["queue", "ready", "nothing"])),
    ),
    max_size=30,
)


def _graph_view(g: Graph) -> dict:
    return {
        "ready": list(g.ready),
        "ready_set": set(g.ready_set),
        "blocked": set(g.blocked),
        "queue": [(row.id, id(row)) for row in g.queue_rows],
        "display": {i: g.display_status(row) for i, row in g.active.items()},
        "order": list(g.order),
    }


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(_row, max_size=8), _graph_ops)
def test_incremental_graph_equals_a_full_rebuild(start, ops):
    active = {r.id: r for r in start}
    archived: dict[str, str] = {}
    live = Graph(active, archived)
    live.ready  # noqa: B018 - computed now: every change below goes through update()
    assert live.take_ready_changes() is None  # the first call: nothing followed yet
    before_ready = set(live.ready_set)
    reported: set[str] = set()
    for op in ops:
        if op[0] == "look":
            if op[1] == "queue":
                live.queue_rows  # noqa: B018 - from here on the queue is kept in step too
                live.order  # noqa: B018 - and the chant order of every active spec
            elif op[1] == "ready":
                reported |= live.take_ready_changes()
            continue
        if op[0] == "put":
            row = op[1]
            changed = {row.id: active.get(row.id)}
            active[row.id] = row
            live.update(changed)
        elif op[0] == "drop":
            if op[1] not in active:
                continue
            live.update({op[1]: active.pop(op[1])})
        else:
            _, spec_id, status = op
            if status is None:
                archived.pop(spec_id, None)
            else:
                archived[spec_id] = status
            live.update({}, [spec_id])
        fresh = Graph(dict(active), dict(archived))
        assert _graph_view(live) == _graph_view(fresh), op
    reported |= live.take_ready_changes()
    # every spec whose readiness differs from the start was reported (and only changes were)
    assert before_ready ^ set(live.ready_set) <= reported


def test_update_before_first_use_is_followed_by_a_full_computation():
    a = _R("2026-01-24-001-aaa", "pending", "code", None, None, 0, 50)
    active = {a.id: a}
    g = Graph(active)
    b = _R("2026-01-24-002-bbb", "pending", "code", (a.id,), None, 0, 50)
    active[b.id] = b
    g.update({b.id: None})
    assert g.ready == [a.id] and g.blocked == {b.id}
    done = _R(a.id, "completed", "code", None, None, 0, 50)
    active[a.id] = done
    g.update({a.id: a})
    assert g.ready == [b.id] and g.blocked == set()
    assert [r.id for r in g.queue_rows] == [b.id]


# --- the cycles through a few specs: those of the whole search, found from them alone ----------

_cycle_rows = st.lists(
    st.builds(lambda i, deps: _R(_GRAPH_IDS[i], "pending", "code", tuple(_GRAPH_IDS[d] for d in deps) or None,
                                 None, 0, 50),
              st.integers(0, len(_GRAPH_IDS) - 1), st.lists(st.integers(0, len(_GRAPH_IDS) - 1), max_size=3)),
    max_size=10,
)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(_cycle_rows, st.sets(st.sampled_from(_GRAPH_IDS + ["2026-01-01-zzz-gone"]), max_size=4))
def test_cycles_through_some_specs_are_the_whole_searchs_cycles_through_them(rows, wanted):
    active = {r.id: r for r in rows}
    expected = [cycle for cycle in Graph(active).cycles if wanted.intersection(cycle)]
    assert Graph(active).cycles_through(wanted) == expected  # searched from them alone
    warm = Graph(active)
    warm.cycles  # noqa: B018 - the whole search kept: the answer comes from it
    assert warm.cycles_through(wanted) == expected


def test_linting_a_saved_spec_searches_only_what_it_reaches(repo, monkeypatch):
    """A save of a spec with a dependency is linted for the cycles through it: the search
    starts at that spec, not at every active one (at 200,000 specs that was ~70 ms a save)."""
    from chantlib import graph as graph_module
    from chantlib.lint import lint_changes

    for n in range(1, 40):  # specs the save has nothing to do with
        repo.write(f"2026-01-24-{n:03d}-aaa", "status: pending")
    repo.write("2026-01-25-001-cyc", "status: pending\ndepends_on: [2026-01-25-002-cyc]")
    repo.write("2026-01-25-002-cyc", "status: pending\ndepends_on: [2026-01-25-001-cyc]")
    ws = repo.workspace()
    ws.refresh()
    searched: list = []
    whole = graph_module._find_cycles

    def spy(active, roots=None):
        searched.append(None if roots is None else sorted(roots))
        return whole(active, roots)

    monkeypatch.setattr(graph_module, "_find_cycles", spy)
    report = lint_changes(ws.table, ws.config, ["specs/2026-01-25-002-cyc.md"])
    cyc = ["2026-01-25-001-cyc", "2026-01-25-002-cyc"]
    assert searched and all(roots is not None and set(roots) <= set(cyc) for roots in searched), searched
    assert [(d["spec_id"], d["rule"]) for d in report["diagnostics"] if d["rule"] == "cycle"] == [
        ("2026-01-25-001-cyc", "cycle")]  # named on the cycle's first spec, as lint over all does
    searched.clear()
    report = ws.lint(specs=["2026-01-25-001-cyc"])
    assert searched and all(roots is not None and set(roots) <= set(cyc) for roots in searched), searched
    assert [d["rule"] for d in report["diagnostics"]] == ["cycle"]
