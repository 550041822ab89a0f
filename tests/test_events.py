"""Events and statistics (issue 8, item 2): what changed, told to subscribers; one record of figures."""

from __future__ import annotations

import json
import os
import shutil
import urllib.request

import pytest

from chantlib.events import Event
from chantlib.locks import MemoryLockTable

A, B, C = "2026-01-24-001-aaa", "2026-01-24-002-bbb", "2026-01-24-003-ccc"


def _told(ws) -> list[Event]:
    events: list[Event] = []
    ws.subscribe(events.append)
    return events


def _spec_events(events) -> list[tuple]:
    return [(e.added, e.modified, e.removed) for e in events if e.added or e.modified or e.removed]


# --- specs: every path tells what changed ---------------------------------------------------------


def test_direct_refreshes_tell_added_modified_and_removed(repo):
    repo.write(A)
    ws = repo.workspace()
    ws.refresh()
    events = _told(ws)
    ws.refresh()
    assert events == []  # nothing changed: nothing told
    repo.write(A, "status: pending\nlabels: [x]")
    ws.refresh()
    assert events[-1].modified == (A,) and not events[-1].added and not events[-1].removed
    repo.write(B)
    ws.list_specs()  # an operation's own refresh tells too
    assert events[-1].added == (B,)
    os.unlink(repo.path(A))
    ws.refresh()
    assert events[-1].removed == (A,)
    assert len(events) == 3


def test_a_workspace_that_has_not_read_its_specs_counts_from_the_saved_table(repo):
    repo.write(A)
    repo.write(B)
    repo.workspace().list_specs()  # a command that saved the table
    repo.write(B, "status: pending\npriority: high")
    ws = repo.workspace()
    events = _told(ws)  # before anything is read
    ws.list_specs()
    assert _spec_events(events) == [((), (B,), ())]  # what changed since the saved table, not every spec
    assert events[0].ready == () and events[0].unready == ()  # B was ready and is


def test_a_cold_daemon_start_tells_every_spec_and_every_ready_one(repo):
    repo.write(A)
    repo.write(B, f"status: pending\ndepends_on: [{A}]")
    ws = repo.workspace(auto_refresh=False, long_lived=True, persist=False)
    events = _told(ws)
    applied = ws.apply_changes(None)
    assert applied.added == (A, B) and applied.documents == 2
    assert events == [Event(added=(A, B), ready=(A,))]
    ws.close()


def test_the_daemons_file_events_tell_what_changed_with_readiness(repo):
    repo.write(A)
    repo.write(B, f"status: pending\ndepends_on: [{A}]")
    ws = repo.workspace(auto_refresh=False, long_lived=True)
    ws.apply_changes(None)
    events = _told(ws)
    repo.write(A, "status: completed")
    applied = ws.apply_changes([f"specs/{A}.md"])
    assert (applied.added, applied.modified, applied.removed) == ((), (A,), ())
    assert applied.documents == 1  # what the daemon counts for chant_index_updates
    assert events == [Event(modified=(A,), ready=(B,), unready=(A,))]
    repo.write(C)
    ws.apply_changes([f"specs/{C}.md"])
    assert events[-1] == Event(added=(C,), ready=(C,))
    os.unlink(repo.path(C))
    ws.apply_changes([f"specs/{C}.md"])
    assert events[-1] == Event(removed=(C,), unready=(C,))
    ws.close()


def test_a_dependency_completed_makes_its_dependent_ready_in_one_event(repo):
    repo.write(A)
    repo.write(B, f"status: pending\ndepends_on: [{A}]")
    ws = repo.workspace()
    ws.refresh()
    events = _told(ws)
    lease = ws.lock_acquire(A)
    assert events[-1].acquired[0].spec == A and events[-1].acquired[0].token == lease["token"]
    ws.complete(A)
    # one operation, one event: the spec written, readiness moved, the lease let go
    assert events[-1].modified == (A,)
    assert events[-1].ready == (B,) and events[-1].unready == (A,)
    assert [lease.spec for lease in events[-1].released] == [A]
    assert len(events) == 2


def test_our_own_add_is_told(repo):
    repo.write(A)
    ws = repo.workspace()
    ws.refresh()
    events = _told(ws)
    added = ws.add("A new spec")
    assert events[-1].added == (added["id"],) and events[-1].ready == (added["id"],)


def test_a_spec_moved_to_the_archive_is_modified(repo):
    repo.write(A, "status: completed")
    ws = repo.workspace()
    ws.refresh()
    events = _told(ws)
    target = repo.path(A, archive="2026-01-24")
    os.makedirs(os.path.dirname(target))
    shutil.move(repo.path(A), target)
    ws.refresh()
    assert _spec_events(events) == [((), (A,), ())]


def test_a_rebuild_tells_only_what_differs(repo):
    repo.write(A)
    repo.write(B)
    ws = repo.workspace()
    ws.refresh()
    events = _told(ws)
    ws.index_rebuild()
    assert _spec_events(events) == []  # every file read again, none of them changed
    repo.write(A, "status: completed")  # not seen by any refresh before the rebuild
    ws.index_rebuild()
    assert _spec_events(events) == [((), (A,), ())]
    assert events[-1].unready == (A,)


def test_without_subscribers_nothing_is_followed(repo):
    repo.write(A)
    ws = repo.workspace()
    ws.lock_acquire(A)
    ws.list_specs()
    listeners = list(ws.table.listeners)  # the gate's (and an index's, once opened)
    assert ws.locks.listeners == []  # nothing follows the leases...
    unsubscribe = ws.subscribe(lambda event: None)
    assert len(ws.table.listeners) == len(listeners) + 1  # ...nor the table, until someone subscribes
    assert len(ws.locks.listeners) == 1  # the lock table made before is followed from now
    unsubscribe()


def test_unsubscribe_stops_the_telling(repo):
    repo.write(A)
    ws = repo.workspace()
    ws.refresh()
    events: list = []
    unsubscribe = ws.subscribe(events.append)
    ws.lock_acquire(A)
    unsubscribe()
    ws.lock_release(A)
    assert len(events) == 1 and events[0].acquired


# --- leases -------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["file", "memory"])
def test_lease_events_acquire_renew_release_and_expire(repo, backend):
    now = [1000.0]
    repo.write(A)
    repo.write(B)
    ws = repo.workspace(clock=lambda: now[0])
    if backend == "memory":
        ws.locks = MemoryLockTable(clock=lambda: now[0])
    ws.refresh()
    events = _told(ws)
    first = ws.lock_acquire(A, owner="w1", ttl=60)
    renewed = ws.lock_renew(A, owner="w1", ttl=120)
    ws.lock_release(A, owner="w1")
    kinds = [(kind, lease.spec, lease.token) for e in events for kind in ("acquired", "renewed", "released",
                                                                          "expired")
             for lease in getattr(e, kind)]
    assert kinds == [("acquired", A, first["token"]), ("renewed", A, first["token"]),
                     ("released", A, first["token"])]
    assert events[1].renewed[0].expires_at == 1120.0 and renewed["token"] == first["token"]
    # an expired lease, freed by another's acquire: told as expired, then the new one
    old = ws.lock_acquire(B, owner="w1", ttl=10)
    now[0] += 11
    new = ws.lock_acquire(B, owner="w2", ttl=10)
    assert [lease.token for lease in events[-1].expired] == [old["token"]]
    assert [lease.token for lease in events[-1].acquired] == [new["token"]]
    # and by the sweep, outside any operation (the daemon's)
    now[0] += 11
    assert ws.locks.sweep()
    assert [(lease.spec, lease.token) for lease in events[-1].expired] == [(B, new["token"])]


def test_a_claim_tells_its_lease(repo):
    repo.write(A)
    ws = repo.workspace()
    ws.refresh()
    events = _told(ws)
    claimed = ws.queue_claim(owner="worker")
    assert [(lease.spec, lease.owner) for lease in events[-1].acquired] == [(A, "worker")]
    assert claimed["lease"]["token"] == events[-1].acquired[0].token


def test_a_swapped_lock_table_is_followed(repo):
    repo.write(A)
    ws = repo.workspace(auto_refresh=False, long_lived=True, persist=False)
    events = _told(ws)
    ws.apply_changes(None)
    ws.locks = MemoryLockTable()  # what the daemon does before it serves
    ws.lock_acquire(A, owner="w")
    assert events[-1].acquired[0].spec == A
    ws.close()


# --- a subscriber that raises ---------------------------------------------------------------------


def test_a_raising_subscriber_is_reported_and_breaks_nothing(repo):
    repo.write(A)
    ws = repo.workspace()
    ws.refresh()
    told: list = []

    def broken(event):
        raise RuntimeError("subscriber bug")

    ws.subscribe(broken)
    ws.subscribe(told.append)
    result = ws.lock_acquire(A)
    assert result["token"]  # the operation did its work...
    assert told and told[-1].acquired  # ...the next subscriber was told...
    assert any("broken" in w and "RuntimeError: subscriber bug" in w for w in result["warnings"])  # ...and it is said
    released = ws.lock_release(A)
    assert any("subscriber bug" in w for w in released["warnings"])  # still subscribed
    assert len(told) == 2


def test_a_subscriber_may_call_the_workspace(repo):
    repo.write(A)
    repo.write(B, f"status: pending\ndepends_on: [{A}]")
    ws = repo.workspace()
    ws.refresh()
    seen: list = []

    def lint_on_save(event):
        for spec_id in event.modified:
            seen.append(ws.show(spec_id)["status"])

    ws.subscribe(lint_on_save)
    ws.complete(A)
    assert seen == ["completed"]


# --- statistics -----------------------------------------------------------------------------------


def _repo_with_everything(repo):
    repo.write(A)
    repo.write(B, f"status: pending\ndepends_on: [{A}]")
    repo.write(C, "status: in_progress")
    repo.write("auth-2026-01-24-004-ddd")
    repo.write("auth-2026-01-24-005-eee", body="no title here\n")  # ready, but lint holds it back
    repo.write("2026-01-24-006-fff", "status: completed", archive="2026-01-24")
    repo.write("2026-01-24-007-ggg", raw="---\nstatus: [unclosed\n---\n# Broken\n")


def test_statistics_agree_with_the_operations(repo):
    _repo_with_everything(repo)
    ws = repo.workspace()
    ws.lock_acquire("auth-2026-01-24-004-ddd", owner="w1")
    stats = ws.statistics()
    assert stats.documents is None  # this workspace has not opened its index
    ws.search("spec")
    assert ws.statistics().documents == 7  # now it has: every file, the broken one too
    queue = ws.queue_list()
    index = ws.index_status()
    assert stats.queue_depth == queue["depth"] == 1  # A: the auth one is leased, the titleless one held
    assert stats.held == queue["held"] == 1
    assert (stats.specs, stats.active, stats.archived, stats.broken) == (
        index["specs"], index["active"], index["archived"], index["broken"]) == (7, 5, 1, 1)
    assert stats.ready == ws.status()["ready_count"] == 3
    assert stats.blocked == 1  # B waits for A
    assert stats.leases == 1 and stats.owners == 1 and stats.leases_acquired == 1
    assert dict(stats.by_status) == {"pending": 4, "in_progress": 1}
    assert dict(stats.by_status_project) == {("pending", ""): 2, ("in_progress", ""): 1, ("pending", "auth"): 2}
    assert dict(stats.ready_by_project) == {"": 1, "auth": 2}
    assert dict(stats.queued_by_project) == {"": 1, "auth": 0}
    assert json.loads(json.dumps(stats.to_dict()))["by_status_project"]["pending/auth"] == 2
    with pytest.raises(AttributeError):
        stats.ready = 0  # frozen


def test_statistics_cost_one_pass_after_a_change_and_none_before(repo, monkeypatch):
    import chantlib.statistics as statistics_module

    _repo_with_everything(repo)
    ws = repo.workspace(auto_refresh=False, long_lived=True)
    ws.locks = MemoryLockTable()
    ws.apply_changes(None)
    passes = []
    real = statistics_module.spec_figures
    monkeypatch.setattr(statistics_module, "spec_figures", lambda *a: passes.append(1) or real(*a))
    first = ws.statistics()
    ws.lock_acquire(A, owner="w")  # a lease changes the queue, not the specs
    leased = ws.statistics()
    assert len(passes) == 1
    assert (first.queue_depth, leased.queue_depth, leased.leases) == (2, 1, 1)
    repo.write(A, "status: completed")
    ws.apply_changes([f"specs/{A}.md"])
    changed = ws.statistics()
    assert len(passes) == 2
    assert dict(changed.by_status)["completed"] == 1 and changed.ready == 3  # A done, B ready
    ws.close()


# --- through the real daemon --------------------------------------------------------------------


def _sample(text: str, name: str, labels: str = "") -> float:
    for line in text.splitlines():
        if line.startswith(name + labels + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name}{labels} not in the metrics")


def test_the_daemons_metrics_and_status_match_the_statistics(repo, daemon_factory):
    _repo_with_everything(repo)
    d = daemon_factory(repo.root, api=False)
    d.call("lock_acquire", spec=C, owner="w1")  # in progress: not queued work
    d.call("lock_acquire", spec=A, owner="w2")  # out of the queue while leased
    status = d.call("daemon_status")
    with urllib.request.urlopen(f"http://127.0.0.1:{d.metrics_port}/metrics", timeout=20) as response:
        text = response.read().decode()
    stats = repo.workspace().statistics()  # the same repository, in this process (its leases read from the files)
    assert (stats.queue_depth, stats.held) == (1, 1)  # the auth spec; the titleless one held back
    assert (status["specs"], status["active_locks"], status["queue_depth"], status["specs_indexed"]) == (
        stats.specs, stats.leases, stats.queue_depth, 7)
    for (status_name, project), n in stats.by_status_project:
        assert _sample(text, "chant_specs", f'{{project="{project}",status="{status_name}"}}') == n
    for project, n in stats.ready_by_project:
        assert _sample(text, "chant_specs_ready", f'{{project="{project}"}}') == n
    for project, n in stats.queued_by_project:
        assert _sample(text, "chant_queue_depth", f'{{project="{project}"}}') == n
    assert _sample(text, "chant_locks_active") == stats.leases == 2
    assert _sample(text, "chant_agents_active") == stats.owners == 2
    assert _sample(text, "chant_index_documents") == 7


def test_a_subscriber_without_leases_is_told_of_specs_only_and_leases_are_not_followed(repo):
    repo.write(A)
    ws = repo.workspace()
    ws.refresh()
    specs_only: list = []
    ws.subscribe(specs_only.append, leases=False)
    ws.lock_acquire(A)
    assert specs_only == [] and ws.locks.listeners == []  # a lease operation costs what it did
    everything: list = []
    unsubscribe = ws.subscribe(everything.append)
    assert len(ws.locks.listeners) == 1
    ws.complete(A)
    assert everything[-1].released and specs_only[-1].modified == (A,)  # both told of the write
    ws.lock_acquire(A)
    assert len(everything) == 2 and len(specs_only) == 1  # a lease alone: only who follows them
    unsubscribe()
    assert ws.locks.listeners == []


def test_a_daemon_restarted_over_its_saved_table_times_every_ready_spec(repo):
    """Events count from the saved table, so a spec ready before the restart and after it is
    told of by none: the service takes the ready set in once its load is done."""
    import asyncio

    from chantd.metrics import Metrics
    from chantd.service import Service

    repo.write(A)
    repo.workspace().list_specs()  # the table saved, A ready in it
    now = [1000.0]
    ws = repo.workspace(auto_refresh=False, long_lived=True)
    ws.locks = MemoryLockTable(clock=lambda: now[0])
    metrics = Metrics()
    service = Service(ws, metrics, clock=lambda: now[0])
    metrics.bind(service)
    try:
        asyncio.run(service.load())
        now[0] = 1042.0
        claimed = asyncio.run(service.call("queue_claim", {"owner": "w"}, "socket"))
        assert claimed["ok"] and claimed["result"]["spec"]["id"] == A
        assert metrics.registry.get_sample_value("chant_queue_wait_seconds_sum") == 42.0
    finally:
        service.close()
