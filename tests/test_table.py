"""The spec table's refresh: what is re-read, and when (including the archive's shortcut)."""

from __future__ import annotations

import os


def _old(path: str, seconds: float = 3600) -> None:
    """Back-date a file (or folder) out of the racy window."""
    when = os.stat(path).st_mtime - seconds
    os.utime(path, (when, when))


def test_archive_folders_that_did_not_change_are_not_read(repo):
    repo.write("2026-01-10-001-old", "status: completed", "# Old\n", archive="2026-01-11")
    repo.write("2026-01-24-001-new", "status: pending\ndepends_on: [2026-01-10-001-old]", "# New\n")
    folder = os.path.dirname(repo.path("2026-01-10-001-old", archive="2026-01-11"))
    _old(repo.path("2026-01-10-001-old", archive="2026-01-11"))
    _old(folder)
    ws = repo.workspace()
    ws.refresh()
    ws.flush()
    assert ws.table.folders["archive/2026-01-11/"][0] == os.stat(folder).st_mtime_ns
    # an archived file edited in place (its folder unchanged): not seen until the periodic check
    path = repo.path("2026-01-10-001-old", archive="2026-01-11")
    folder_times = os.stat(folder)
    with open(path, "w") as fh:
        fh.write("---\nstatus: pending\n---\n# Old, reopened\n")
    _old(path, 1800)
    os.utime(folder, ns=(folder_times.st_atime_ns, folder_times.st_mtime_ns))
    ws2 = repo.workspace()
    assert [s["id"] for s in ws2.list_specs(ready=True)["specs"]] == ["2026-01-24-001-new"]
    ws2.table.archive_verified_ns -= 120 * 10**9  # a minute and more later
    ws2.table.save()
    ws3 = repo.workspace()
    assert ws3.list_specs(ready=True)["specs"] == []  # now seen: the dependency is open again
    assert ws3.show("old")["status"] == "pending"


def test_archiving_and_removing_are_seen_at_once(repo):
    repo.write("2026-01-10-001-old", "status: completed", "# Old\n", archive="2026-01-11")
    folder = os.path.dirname(repo.path("2026-01-10-001-old", archive="2026-01-11"))
    _old(folder)
    ws = repo.workspace()
    ws.refresh()
    ws.flush()
    # a new archived spec in the same folder, and a new folder
    repo.write("2026-01-10-002-two", "status: completed", "# Two\n", archive="2026-01-11")
    repo.write("2026-01-12-001-three", "status: completed", "# Three\n", archive="2026-01-13")
    ws2 = repo.workspace()
    assert sorted(ws2.refresh().added) == ["archive/2026-01-11/2026-01-10-002-two.md",
                                           "archive/2026-01-13/2026-01-12-001-three.md"]
    ws2.flush()
    os.unlink(repo.path("2026-01-10-001-old", archive="2026-01-11"))
    import shutil

    shutil.rmtree(os.path.dirname(repo.path("2026-01-12-001-three", archive="2026-01-13")))
    ws3 = repo.workspace()
    assert sorted(ws3.refresh().removed) == ["archive/2026-01-11/2026-01-10-001-old.md",
                                             "archive/2026-01-13/2026-01-12-001-three.md"]
    assert "archive/2026-01-13/" not in ws3.table.folders


def test_a_nested_archive_folder_stays_known_below_a_skipped_one(repo):
    repo.write("2026-01-10-001-top", "status: completed", "# Top\n", archive="2026-01-11")
    top = os.path.dirname(repo.path("2026-01-10-001-top", archive="2026-01-11"))
    os.makedirs(os.path.join(top, "sub"))
    nested = os.path.join(top, "sub", "2026-01-10-002-deep.md")
    with open(nested, "w") as fh:
        fh.write("---\nstatus: completed\n---\n# Deep\n")
    for path in (nested, os.path.join(top, "sub"), repo.path("2026-01-10-001-top", archive="2026-01-11"), top):
        _old(path)
    ws = repo.workspace()
    assert "archive/2026-01-11/sub/2026-01-10-002-deep.md" in ws.refresh().added
    ws.flush()
    for _ in range(3):  # the top folder is skipped from now on: the nested file must not come and go
        again = repo.workspace()
        changes = again.refresh()
        assert not changes.added and not changes.removed, (changes.added, changes.removed)
        assert "archive/2026-01-11/sub/2026-01-10-002-deep.md" in again.table.files
        assert "archive/2026-01-11/sub/" in again.table.folders
        again.flush()


def test_a_full_refresh_reads_every_archived_file(repo):
    repo.write("2026-01-10-001-old", "status: completed", "# Old\n", archive="2026-01-11")
    path = repo.path("2026-01-10-001-old", archive="2026-01-11")
    folder = os.path.dirname(path)
    _old(path)
    _old(folder)
    ws = repo.workspace()
    ws.refresh()
    ws.flush()
    folder_times = os.stat(folder)
    with open(path, "w") as fh:
        fh.write("---\nstatus: cancelled\n---\n# Old\n")
    _old(path, 1800)
    os.utime(folder, ns=(folder_times.st_atime_ns, folder_times.st_mtime_ns))
    ws2 = repo.workspace()
    assert ws2.refresh().changed == []  # the folder looks the same: trusted for now
    assert ws2.table.refresh(full=True).changed == ["archive/2026-01-11/2026-01-10-001-old.md"]


# --- the daemon's incremental path gives what a full rebuild gives -----------------------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_IDS = ["2026-01-24-001-aaa", "2026-01-24-002-bbb", "2026-01-24-002-bbb.1", "2026-01-24-003-ccc"]
_ops = st.lists(
    st.tuples(
        st.sampled_from(["active", "archived", "archived2", "broken", "delete", "move"]),
        st.sampled_from(_IDS),
        st.sampled_from(["pending", "completed", "failed"]),
        st.sampled_from([None, "2026-01-24-001-aaa", "2026-01-24-003-ccc"]),
    ),
    min_size=1,
    max_size=12,
)


def _view(table) -> dict:
    return {
        "active": {i: r.path for i, r in table.active.items()},
        "archived": {i: r.path for i, r in table.archived.items()},
        "broken": sorted(table.broken),
        "duplicates": table.duplicates,
        "ready": list(table.graph.ready),
        "blocked": sorted(table.graph.blocked),
        "queue": [(r.id, r.path, r.status) for r in table.graph.queue_rows],
        "display": {i: table.graph.display_status(r) for i, r in table.active.items()},
        "by_id": {i: r.path for i, r in table.by_id.items()},
    }


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(_ops)
def test_refresh_paths_matches_a_full_refresh(tmp_path_factory, ops):
    from chantlib.store import SpecStore
    from chantlib.table import SpecTable

    root = tmp_path_factory.mktemp("incremental")
    store = SpecStore(str(root))
    store.init("t")
    live = SpecTable(store)
    live.refresh(save=False)
    live.active  # noqa: B018 - build the maps, so the next changes patch them
    graph = live.graph
    graph.queue_rows  # noqa: B018 - and the graph, which the patches keep in step
    places = ("specs/{}.md", "archive/2026-01-25/{}.md", "archive/2026-01-26/{}.md")
    for kind, spec_id, status, dep in ops:
        rel = places[1 if kind == "archived" else 2 if kind == "archived2" else 0].format(spec_id)
        path = store.abspath(rel)
        touched = [rel]
        if kind in ("delete", "move"):
            there = [p.format(spec_id) for p in places if os.path.exists(store.abspath(p.format(spec_id)))]
            for candidate in there:
                touched.append(candidate)
                if kind == "delete":
                    os.unlink(store.abspath(candidate))
            if kind == "move" and there:  # one batch: gone from one folder, come in another
                target = places[(places.index(next(p for p in places if p.format(spec_id) == there[0])) + 1) % 3]
                target = target.format(spec_id)
                os.makedirs(os.path.dirname(store.abspath(target)), exist_ok=True)
                os.replace(store.abspath(there[0]), store.abspath(target))
                touched.append(target)
        else:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            text = (
                "---\nstatus: [\n---\n# broken\n" if kind == "broken"
                else f"---\nstatus: {status}\n" + (f"depends_on: [{dep}]\n" if dep else "") + f"---\n# {spec_id}\n"
            )
            with open(path, "w") as fh:
                fh.write(text)
        had_duplicates = bool(live.duplicates)
        live.refresh_paths(touched)
        if not had_duplicates and not live.duplicates:
            assert live.graph is graph  # followed, not rebuilt (two files with one ID rebuild it)
        graph = live.graph
        fresh = SpecTable(store)
        fresh.refresh(save=False, full=True)
        assert _view(live) == _view(fresh)


def test_row_field_declarations_follow_fields():
    """What the type checker is told a row holds (``table._Fields``) is FIELDS, in order."""
    from chantlib import table

    assert tuple(table._Fields.__annotations__) == table.FIELDS
