"""The queue: ready specs without a live lease, in priority then chant order, and claims
that never hand one spec to two workers (in one process or many)."""

from __future__ import annotations

import json
import os
import textwrap
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chantlib.errors import EXIT_NOTHING_READY, NothingReady
from chantlib.locks import MemoryLockTable
from chantlib.ops import dispatch
from chantlib.testing import FakeClock

from .support import run_racers

DAY = "2026-01-24"


def sid(seq: int, suffix: str = "abc", project: str | None = None) -> str:
    spec_id = f"{DAY}-{seq:03d}-{suffix}"
    return f"{project}-{spec_id}" if project else spec_id


def ids(rows) -> list[str]:
    return [row.id for row in rows]


def fresh(repo, **kwargs):
    """A workspace (its queue brings the spec table in step with the files by itself)."""
    return repo.workspace(**kwargs)


# order and what is left out


def test_order_is_priority_then_chant_order(repo):
    repo.write(sid(1), "status: pending\npriority: low")
    repo.write(sid(2), "status: pending")  # normal (50) by default
    repo.write(sid(3), "status: pending\npriority: critical")
    repo.write(sid(4), "status: pending\npriority: high")
    repo.write(sid(5), "status: pending\npriority: normal")
    repo.write(sid(6), "status: failed\npriority: 75")  # failed is ready: a retry
    repo.write(sid(7), "status: pending\npriority: critical")
    repo.write(sid(10), "status: pending")  # base 36: 010 comes after 007
    repo.write(sid(8), "status: pending\npriority: -1")
    ws = fresh(repo)
    assert ids(ws.queue.items()) == [sid(3), sid(7), sid(4), sid(6), sid(2), sid(5), sid(10), sid(1), sid(8)]
    assert [row.priority for row in ws.queue.items()] == [200, 200, 100, 75, 50, 50, 50, 0, -1]
    assert ws.queue.next().id == sid(3)
    assert len(ws.queue) == 9


def test_only_ready_specs_and_no_groups(repo):
    repo.write(sid(1), "status: pending")
    repo.write(sid(2), "status: completed")
    repo.write(sid(3), "status: in_progress")
    repo.write(sid(4), f"status: pending\ndepends_on: [{sid(1)}]")  # blocked until 001 is done
    repo.write(sid(5), "type: group\nstatus: pending")
    repo.write(sid(6), "status: pending\napproval:\n  required: true\n  status: pending")
    repo.write(sid(7), "status: cancelled")
    repo.write(sid(8), f"status: pending\ndepends_on: [{sid(2)}]")  # its dependency is done
    ws = fresh(repo)
    assert ids(ws.queue.items()) == [sid(1), sid(8)]
    # the group is ready, just not work
    assert sid(5) in ws.table.graph.ready_set


def test_leased_specs_leave_the_queue_until_release_or_expiry(repo):
    clock = FakeClock(time.time())
    for seq in (1, 2, 3):
        repo.write(sid(seq))
    ws = fresh(repo, clock=clock)
    lease = ws.locks.acquire(sid(1), "alice", 60)
    ws.locks.acquire(sid(2), "bob", 120)
    assert ids(ws.queue.items()) == [sid(3)]
    ws.locks.release(sid(1), token=lease.token)
    assert ids(ws.queue.items()) == [sid(1), sid(3)]
    clock.advance(120)
    assert ids(ws.queue.items()) == [sid(1), sid(2), sid(3)]


def test_project_and_label_filters(repo):
    repo.write(sid(1, project="auth"), "status: pending\nlabels: [backend, urgent]")
    repo.write(sid(2, project="auth"), "status: pending\nlabels: [frontend]")
    repo.write(sid(3, project="web"), "status: pending\nlabels: [frontend, urgent]")
    repo.write(sid(4), "status: pending")
    ws = fresh(repo)
    assert ids(ws.queue.items(project="auth")) == [sid(1, project="auth"), sid(2, project="auth")]
    assert ids(ws.queue.items(project="web")) == [sid(3, project="web")]
    assert ids(ws.queue.items(project="nope")) == []
    assert ids(ws.queue.items(labels=["urgent"])) == [sid(1, project="auth"), sid(3, project="web")]
    assert ids(ws.queue.items(labels=["backend", "frontend"])) == [
        sid(1, project="auth"), sid(2, project="auth"), sid(3, project="web"),
    ]  # any of them
    assert ids(ws.queue.items(project="auth", labels=["frontend"])) == [sid(2, project="auth")]
    assert ids(ws.queue.items(labels=[])) == ids(ws.queue.items())
    row, _ = ws.queue.claim_nowait("w", 60, project="web")
    assert row.id == sid(3, project="web")
    with pytest.raises(NothingReady, match="project web"):
        ws.queue.claim_nowait("w", 60, project="web")
    with pytest.raises(NothingReady, match="labels nothing"):
        ws.queue.claim_nowait("w", 60, labels=["nothing"])


# claims


def test_claims_take_the_queue_in_order_then_nothing_ready(repo):
    repo.write(sid(1))
    repo.write(sid(2), "status: pending\npriority: high")
    repo.write(sid(3))
    ws = fresh(repo)
    claimed = []
    for _ in range(3):
        row, lease = ws.queue.claim_nowait("worker@host", 60)
        assert (lease.spec, lease.owner) == (row.id, "worker@host")
        claimed.append((row.id, lease.token))
    assert claimed == [(sid(2), 1), (sid(1), 2), (sid(3), 3)]
    assert ws.queue.items() == [] and ws.queue.next() is None
    with pytest.raises(NothingReady) as info:
        ws.queue.claim_nowait("worker@host", 60)
    assert info.value.code == "nothing_ready"
    assert info.value.exit_code == EXIT_NOTHING_READY
    assert info.value.http_status == 404


def test_a_claim_never_returns_a_spec_the_owner_already_holds(repo):
    """Workers sharing an owner name must not both get one spec (the queue is not reentrant)."""
    repo.write(sid(1))
    ws = fresh(repo, locks=MemoryLockTable())
    ws.locks.acquire(sid(1), "shared", 60)
    with pytest.raises(NothingReady):
        ws.queue.claim_nowait("shared", 60)


def test_claim_skips_a_spec_won_since_the_snapshot(repo):
    for seq in (1, 2):
        repo.write(sid(seq))
    ws = fresh(repo)
    queue = ws.queue
    snapshot = queue._free  # the claim's view of the queue

    def snapshot_then_raced(*args, **kwargs):
        rows = list(snapshot(*args, **kwargs))
        ws.locks.acquire(sid(1), "other", 60)  # another claimer wins 001 right after our snapshot
        return rows

    queue._free = snapshot_then_raced
    row, lease = queue.claim_nowait("me", 60)
    assert row.id == sid(2)
    assert ws.locks.get(sid(1)).owner == "other"


def test_claim_skips_a_spec_finished_since_the_snapshot(repo):
    """A claimer whose view is a moment old must not take a spec another claimer has just
    completed and released (the lease is free again, but the work is done)."""
    for seq in (1, 2):
        repo.write(sid(seq))
    late, early = fresh(repo), fresh(repo)
    snapshot = late.queue._free

    def snapshot_then_raced(*args, **kwargs):
        rows = list(snapshot(*args, **kwargs))  # its view: 001 and 002 are ready
        first = dispatch(early, "queue_claim", {"owner": "w1", "ttl": 60})
        assert first["spec"]["id"] == sid(1)
        dispatch(early, "complete", {"spec": sid(1), "token": first["lease"]["token"]})
        assert early.locks.get(sid(1)) is None
        return rows

    late.queue._free = snapshot_then_raced
    row, lease = late.queue.claim_nowait("w2", 60)
    assert (row.id, row.status) == (sid(2), "pending")
    assert late.locks.get(sid(1)) is None  # the lease it took on 001 in passing was given back
    assert [lease.spec for lease in late.locks.leases()] == [sid(2)]


def test_claim_returns_the_row_as_it_is_now(repo):
    repo.write(sid(1), "status: pending\nlabels: [old]")
    ws = fresh(repo)
    snapshot = ws.queue._free

    def snapshot_then_edited(*args, **kwargs):
        rows = list(snapshot(*args, **kwargs))
        repo.write(sid(1), "status: pending\nlabels: [new, edited]")
        return rows

    ws.queue._free = snapshot_then_edited
    row, _ = ws.queue.claim_nowait("w", 60)
    assert row.labels == ("new", "edited")


def test_the_queue_sees_the_files_without_an_explicit_refresh(repo):
    ws = repo.workspace()
    assert ws.queue.items() == []
    repo.write(sid(1))
    assert ids(ws.queue.items()) == [sid(1)]
    repo.write(sid(1), "status: completed")
    assert ws.queue.next() is None


def test_claim_waits_then_gives_up(repo):
    ws = fresh(repo)
    started = time.monotonic()
    with pytest.raises(NothingReady):
        ws.queue.claim("w", 60, wait=0.3, poll=0.05)
    assert 0.25 <= time.monotonic() - started < 2.0


def test_claim_waits_for_a_lease_to_end(repo):
    clock = FakeClock(time.time())
    repo.write(sid(1))
    ws = fresh(repo, locks=MemoryLockTable(clock=clock))
    ws.locks.acquire(sid(1), "other", 30)
    with pytest.raises(NothingReady):
        ws.queue.claim("w", 60, wait=0.1, poll=0.02)
    clock.advance(30)
    row, lease = ws.queue.claim("w", 60, wait=0.1, poll=0.02)
    assert row.id == sid(1) and lease.owner == "w"
    assert ws.locks.statistics()["expired"] == 1


def test_claim_binds_the_lease_to_a_pid(repo):
    repo.write(sid(1))
    ws = fresh(repo)
    row, lease = ws.queue.claim_nowait("w", 60, pid=os.getpid())
    assert lease.pid == os.getpid()
    assert ws.locks.get(sid(1)).pid == os.getpid()


# the operations


def test_queue_operations(repo):
    repo.write(sid(1), "status: pending\nlabels: [x]")
    repo.write(sid(2), "status: pending\npriority: high")
    repo.write(sid(3, project="auth"), "status: pending")
    ws = repo.workspace()  # the operations refresh by themselves

    listed = dispatch(ws, "queue_list", {})
    assert [s["id"] for s in listed["specs"]] == [sid(2), sid(1), sid(3, project="auth")]
    assert listed["depth"] == 3
    assert all(s["ready"] for s in listed["specs"])
    limited = dispatch(ws, "queue_list", {"limit": 1})
    assert [s["id"] for s in limited["specs"]] == [sid(2)] and limited["depth"] == 3
    assert dispatch(ws, "queue_list", {"label": "x"})["depth"] == 1
    assert dispatch(ws, "queue_list", {"project": "auth"})["specs"][0]["id"] == sid(3, project="auth")

    peek = dispatch(ws, "queue_next", {})
    assert peek["spec"]["id"] == sid(2) and peek["depth"] == 3
    assert dispatch(ws, "queue_next", {})["spec"]["id"] == sid(2)  # a peek takes nothing

    claimed = dispatch(ws, "queue_claim", {"owner": "w1@host", "ttl": 120})
    assert claimed["spec"]["id"] == sid(2)
    assert claimed["lease"]["owner"] == "w1@host" and claimed["lease"]["spec"] == sid(2)
    assert isinstance(claimed["lease"]["token"], int)
    assert claimed["lease"]["expires_at"].endswith("Z")
    json.dumps(claimed)  # plain data

    assert dispatch(ws, "queue_next", {})["spec"]["id"] == sid(1)
    assert dispatch(ws, "queue_list", {})["depth"] == 2
    assert dispatch(ws, "queue_claim", {"labels": ["x"]})["lease"]["owner"] == "tester@test"  # CHANT_OWNER
    assert dispatch(ws, "queue_claim", {"project": "auth"})["spec"]["id"] == sid(3, project="auth")
    assert dispatch(ws, "queue_next", {}) == {"spec": None, "depth": 0, "held": 0, "limited": 0, "full": None,
                                              "warnings": []}
    assert dispatch(ws, "queue_list", {}) == {"specs": [], "depth": 0, "held": 0, "warnings": []}
    with pytest.raises(NothingReady) as info:
        dispatch(ws, "queue_claim", {"owner": "w1@host"})
    assert info.value.to_dict()["code"] == "nothing_ready"


def test_queue_claim_sees_new_specs(repo):
    ws = repo.workspace()
    with pytest.raises(NothingReady):
        dispatch(ws, "queue_claim", {"owner": "w"})
    repo.write(sid(1))
    assert dispatch(ws, "queue_claim", {"owner": "w"})["spec"]["id"] == sid(1)


# many processes, one repository

WORKER = textwrap.dedent(
    """
    import json, sys, time
    from chantlib.errors import NothingReady
    from chantlib.ops import dispatch
    from chantlib.workspace import Workspace

    root, owner, go, complete = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "1"
    ws = Workspace(root)
    wait_for_go(go)
    deadline = time.monotonic() + 30
    claimed = []
    while time.monotonic() < deadline:
        try:
            got = dispatch(ws, "queue_claim", {"owner": owner, "ttl": 600})
        except NothingReady:
            break
        claimed.append(got["spec"]["id"])
        if complete:
            dispatch(ws, "complete", {"spec": got["spec"]["id"], "token": got["lease"]["token"]})
    print(json.dumps(claimed))
    """
)


def _run_workers(repo, tmp_path, n: int, *, complete: bool) -> list[list[str]]:
    go = str(tmp_path / "go")
    return run_racers(WORKER, [[repo.root, "shared@host", go, "1" if complete else "0"]] * n, go)


def _write_backlog(repo, n: int) -> list[str]:
    """``n`` ready specs (some prioritised) and a few that are not work at all."""
    ready = []
    for seq in range(1, n + 1):
        front = "status: pending" + ("\npriority: high" if seq % 7 == 0 else "")
        repo.write(sid(seq), front)
        ready.append(sid(seq))
    repo.write(sid(n + 1), "status: completed")
    repo.write(sid(n + 2), "type: group\nstatus: pending")
    repo.write(sid(n + 3), "status: in_progress")
    return ready


def test_processes_claiming_from_one_repository(repo, tmp_path):
    ready = _write_backlog(repo, 40)
    assert sorted(ids(fresh(repo).queue.items())) == ready
    results = _run_workers(repo, tmp_path, 4, complete=False)
    claimed = [spec for result in results for spec in result]
    assert len(claimed) == len(set(claimed)), "a spec was claimed twice"
    assert sorted(claimed) == ready
    ws = fresh(repo)
    assert sorted(lease.spec for lease in ws.locks.leases()) == ready
    assert {lease.owner for lease in ws.locks.leases()} == {"shared@host"}
    assert ws.queue.items() == []


def test_processes_claiming_and_completing(repo, tmp_path):
    """Claim, complete, claim again: finished work is never handed out a second time, and
    specs that become ready on the way (dependencies done) are claimed too."""
    ready = _write_backlog(repo, 30)
    chained = []
    for seq in range(60, 66):  # each depends on the one before, the first on spec 001
        before = sid(seq - 1) if chained else sid(1)
        repo.write(sid(seq), f"status: pending\ndepends_on: [{before}]")
        chained.append(sid(seq))
    results = _run_workers(repo, tmp_path, 4, complete=True)
    claimed = [spec for result in results for spec in result]
    assert len(claimed) == len(set(claimed)), f"specs claimed twice: {sorted(s for s in claimed if claimed.count(s) > 1)}"
    assert sorted(claimed) == sorted(ready + chained)
    ws = fresh(repo)
    ws.refresh()
    assert ws.locks.leases() == []
    assert all(ws.table.active[spec].status == "completed" for spec in claimed)


# what lint reports as an error never reaches a worker


def _lint_errors(ws) -> set[str]:
    report = ws.lint()
    return {d["spec_id"] for d in report["diagnostics"] if d["severity"] == "error"}


def test_the_queue_holds_back_every_spec_lint_reports_an_error_for(repo):
    repo.write(sid(1), "status: pending", "# Fine\n")
    repo.write(sid(2), raw="")  # empty
    repo.write(sid(3), raw="\n  \n")  # blank is empty too
    repo.write(sid(4), raw="# Plain markdown, no frontmatter\n")  # a warning only: still work
    repo.write(sid(5), "status: pending", "no title line\n")
    repo.write(sid(6), "status: pending\napproval: {required: true, status: approved}")  # no by, no at
    repo.write(sid(7), "status: pending\nmembers: [2026-01-01-001-nop]")
    repo.write(sid(8), f"status: pending\ndepends_on: [{sid(9)}]")  # the first of a cycle through a done spec
    repo.write(sid(9), f"status: completed\ndepends_on: [{sid(8)}]")
    repo.write(sid(10), "status: pending")
    os.makedirs(os.path.join(repo.specs, "sub"))
    with open(os.path.join(repo.specs, "sub", f"{sid(10)}.md"), "w") as fh:  # a second file with its ID
        fh.write("---\nstatus: pending\n---\n# Twin\n")
    ws = fresh(repo)
    ws.refresh()
    ready = {row.id for row in ws.table.graph.queue_rows}
    assert ready == {sid(n) for n in (1, 2, 3, 4, 5, 6, 7, 8, 10)}  # all of them ready by the rules
    assert _lint_errors(ws) == {sid(n) for n in (2, 3, 5, 6, 7, 8, 10)}
    assert ids(ws.queue.items()) == [sid(1), sid(4)]
    claimed = [ws.queue.claim_nowait("w", 60)[0].id for _ in range(2)]
    assert claimed == [sid(1), sid(4)]
    with pytest.raises(NothingReady) as info:
        ws.queue.claim_nowait("w", 60)
    assert info.value.message == "No ready specs in the queue (7 ready specs held back by lint errors; see `chant lint`)."
    # what the operations say about a held spec
    shown = dispatch(ws, "show", {"spec": sid(2)})
    assert shown["ready"] is True and shown["held"] == ["empty"]
    assert dispatch(ws, "show", {"spec": sid(1)})["held"] == []
    assert dispatch(ws, "queue_next", {})["held"] == 7
    assert [s["held"] for s in dispatch(ws, "list", {"ready": True})["specs"]] == [
        [], ["empty"], ["empty"], [], ["title"], ["approval"], ["dependency"], ["cycle"], ["duplicate"],
    ]


def test_rules_disabled_in_the_config_do_not_hold_a_spec_back(repo):
    with open(os.path.join(repo.root, ".chant", "config.md"), "w") as fh:
        fh.write("---\nlint:\n  disable: [title, empty]\n---\n")
    repo.write(sid(1), raw="")
    repo.write(sid(2), "status: pending", "no title\n")
    repo.write(sid(3), "status: pending\napproval: {required: false, status: approved, by: x}")  # no at: an error
    ws = fresh(repo)
    assert ids(ws.queue.items()) == [sid(1), sid(2)]
    assert _lint_errors(ws) == {sid(3)}


def test_a_claim_lets_go_of_a_spec_that_broke_a_rule_since_the_snapshot(repo):
    for seq in (1, 2):
        repo.write(sid(seq))
    ws = fresh(repo)
    snapshot = ws.queue._free

    def snapshot_then_emptied(*args, **kwargs):
        rows = list(snapshot(*args, **kwargs))
        repo.write(sid(1), raw="")  # someone empties 001 right after our snapshot
        return rows

    ws.queue._free = snapshot_then_emptied
    row, _lease = ws.queue.claim_nowait("w", 60)
    assert row.id == sid(2)
    assert ws.locks.get(sid(1)) is None


_STATUSES = st.sampled_from(["pending", "failed", "completed", "in_progress"])
_spec = st.fixed_dictionaries(
    {
        "status": _STATUSES,
        "title": st.booleans(),
        "frontmatter": st.booleans(),
        "empty": st.integers(0, 9).map(lambda n: n == 0),
        "deps": st.lists(st.integers(1, 7), max_size=2),
        "members": st.lists(st.integers(1, 9), max_size=1),
        "approval": st.sampled_from([None, "approved", "approved-by", "pending"]),
        "twin": st.integers(0, 9).map(lambda n: n == 0),
        "group": st.integers(0, 9).map(lambda n: n == 0),
    }
)


def _spec_file(root: str, n: int, s: dict) -> None:
    """Write spec ``n`` as ``s`` (one draw of ``_spec``) says, its twin too when it has one."""
    path = os.path.join(root, ".chant", "specs", f"{sid(n)}.md")
    if s["empty"]:
        text = ""
    else:
        front = [f"status: {s['status']}"]
        if s["group"]:
            front.append("type: group")
        if s["deps"]:
            front.append(f"depends_on: [{', '.join(sid(d) for d in s['deps'])}]")
        if s["members"]:
            front.append(f"members: [{', '.join(sid(m) for m in s['members'])}]")
        if s["approval"]:
            by = ", by: me, at: '2026-01-01'" if s["approval"].endswith("-by") else ""
            front.append(f"approval: {{required: true, status: {s['approval'].split('-')[0]}{by}}}")
        head = "---\n" + "\n".join(front) + "\n---\n" if s["frontmatter"] else ""
        text = head + (f"# Spec {n}\n" if s["title"] else "body\n")
    with open(path, "w") as fh:
        fh.write(text)
    twin = os.path.join(root, ".chant", "specs", "twin", f"{sid(n)}.md")
    if s["twin"]:
        os.makedirs(os.path.dirname(twin), exist_ok=True)
        with open(twin, "w") as fh:
            fh.write(text or "x\n")
    elif os.path.exists(twin):
        os.unlink(twin)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(_spec, min_size=1, max_size=7), st.sampled_from([[], ["cycle"], ["title", "dependency"]]))
def test_the_queue_is_the_ready_work_lint_finds_no_error_in(tmp_path_factory, specs, disabled):
    """For any repository: queued = ready, not a group, no live lease, and no lint error."""
    from chantlib.store import SpecStore
    from chantlib.workspace import Workspace

    root = tmp_path_factory.mktemp("gate")
    SpecStore(str(root)).init("t")
    if disabled:
        with open(os.path.join(str(root), ".chant", "config.md"), "w") as fh:
            fh.write(f"---\nlint:\n  disable: [{', '.join(disabled)}]\n---\n")
    for n, s in enumerate(specs, 1):
        _spec_file(str(root), n, s)
    ws = Workspace(str(root))
    queued = ids(ws.queue.items())
    ws.refresh()
    graph = ws.table.graph
    work = [row.id for row in graph.queue_rows]
    assert queued == [i for i in work if i not in _lint_errors(ws)]


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(_spec, min_size=1, max_size=6), st.lists(st.tuples(st.integers(1, 6), _spec), min_size=1, max_size=8))
def test_a_long_lived_queue_follows_each_change_as_a_fresh_one_would(tmp_path_factory, specs, edits):
    """The daemon keeps one lint gate for its life: after each file event its queue is the one
    a new workspace over the same files computes (verdicts kept only where nothing moved)."""
    from chantlib.store import SpecStore
    from chantlib.workspace import Workspace

    root = str(tmp_path_factory.mktemp("gate-follows"))
    SpecStore(root).init("t")
    for n, s in enumerate(specs, 1):
        _spec_file(root, n, s)
    daemon = Workspace(root, auto_refresh=False, long_lived=True, persist=False)
    daemon.apply_changes(None)
    for n, s in edits:
        _spec_file(root, n, s)
        daemon.apply_changes([f"specs/{sid(n)}.md", f"specs/twin/{sid(n)}.md"])
        fresh_ws = Workspace(root, persist=False)
        assert ids(daemon.queue.items()) == ids(fresh_ws.queue.items()), (n, s)


def test_a_long_lived_gate_sees_a_cycle_or_a_member_made_by_another_spec(repo):
    """Verdicts the gate keeps for unchanged specs go when another spec's change moves them:
    a spec that closes a cycle onto a ready one, a member that comes to exist."""
    from chantlib.workspace import Workspace

    repo.write(sid(1), f"status: pending\ndepends_on: [{sid(2)}]", "# A\n")
    repo.write(sid(2), "status: completed", "# B\n")
    repo.write(sid(3), f"status: pending\ntype: driver\nmembers: [{sid(9)}]", "# D\n")
    daemon = Workspace(repo.root, auto_refresh=False, long_lived=True, persist=False)
    daemon.apply_changes(None)
    assert ids(daemon.queue.items()) == [sid(1)]  # 3 names a member that does not exist
    repo.write(sid(2), f"status: completed\ndepends_on: [{sid(1)}]", "# B\n")  # closes a cycle onto 1
    daemon.apply_changes([f"specs/{sid(2)}.md"])
    assert ids(daemon.queue.items()) == []  # 1 is now the spec lint names for the cycle
    repo.write(sid(9), "status: completed", "# The member\n")  # on its own, but 3 lists it
    daemon.apply_changes([f"specs/{sid(9)}.md"])
    assert ids(daemon.queue.items()) == [sid(3)]


def test_queue_stats_counts_the_queue_the_leases_and_the_projects(repo, chant):
    repo.write("2026-01-01-001-aaa", "status: pending\nlabels: [bug]")
    repo.write("auth-2026-01-01-002-bbb", "status: pending")
    repo.write("2026-01-01-003-ccc", "status: pending\ndepends_on: [2026-01-01-001-aaa]")
    ws = repo.workspace()
    assert ws.queue_stats() | {"warnings": []} == {
        "depth": 2, "held": 0, "leased": 0, "by_project": {"": 1, "auth": 1}, "leased_by_project": {},
        "limits": None, "limited": 0, "full": None, "warnings": []
    }
    ws.lock_acquire("aaa", owner="w")
    stats = ws.queue_stats()
    assert (stats["depth"], stats["leased"], stats["by_project"]) == (1, 1, {"auth": 1})
    assert ws.queue_stats(labels=["bug"])["depth"] == 0
    out = chant("queue", "stats")
    assert out.code == 0, out.err
    assert out.out == "Queued:  1\nLeased:  1\nProjects: auth 1\n"
