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
