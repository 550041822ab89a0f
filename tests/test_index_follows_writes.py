"""Every write reaches the search index, as an editor's edit does.

After each kind of write (complete, complete --failed, add, a claim and its completion, an
edit by hand), searches through the daemon, in direct mode and from a script that searched
before the write all agree with an index built afresh from the files.
"""

from __future__ import annotations

import json

from .support import run_chant

QUERIES = ("status:completed", "status:pending", "status:failed", "status:ready", "label:fresh", "title:brand",
           "NOT status:completed")


def _truth(root: str) -> dict:
    """What a new, in-memory index over the files answers."""
    from chantlib.workspace import Workspace

    ws = Workspace(root, persist=False)
    return {q: sorted(s["id"] for s in ws.search(q, limit=None)["specs"]) for q in QUERIES}


def _answers(search) -> dict:
    return {q: sorted(s["id"] for s in search(q)["specs"]) for q in QUERIES}


def _setup(repo) -> None:
    repo.write("2026-01-24-001-aaa", "status: pending", "# First piece\n")
    repo.write("2026-01-24-002-bbb", "status: pending", "# Second piece\n")
    repo.write("2026-01-24-003-ccc", "status: pending", "# Third piece\n")
    repo.write("2026-01-24-004-ddd", "status: pending\ndepends_on: [2026-01-24-001-aaa]", "# After the first\n")


def _writes(root: str):
    """The kinds of writes, each a step run through the CLI (daemon or not, as it finds)."""
    yield "complete", lambda: run_chant(["complete", "001-aaa"], root)
    yield "complete --failed", lambda: run_chant(["complete", "002-bbb", "--failed"], root)
    yield "add", lambda: run_chant(["add", "Brand new work", "--label", "fresh"], root)
    yield "claim", lambda: run_chant(["queue", "next", "--claim", "--owner", "w"], root)
    yield "complete the claimed", lambda: run_chant(["complete", "004-ddd", "--owner", "w"], root)
    yield "lease only", lambda: run_chant(["lock", "acquire", "003-ccc"], root)


def test_daemon_writes_reach_its_index_and_direct_mode_agrees(repo, daemon_factory):
    _setup(repo)
    d = daemon_factory(repo.root, api=False, metrics=False)
    for kind, step in _writes(repo.root):
        result = step()
        assert result.code == 0, (kind, result)
        want = _truth(repo.root)
        via_daemon = _answers(lambda q: d.call("search", q=q, limit=1000))
        assert via_daemon == want, kind
        direct = {q: sorted(s["id"] for s in json.loads(run_chant(["search", q, "--json", "--direct", "--limit",
                                                                   "1000"], repo.root).out)["specs"])
                  for q in QUERIES}
        assert direct == want, kind
        assert d.call("index_status")["stale"] == 0, kind


def test_a_script_that_searched_before_a_write_sees_it_after(repo):
    from chantlib.workspace import Workspace

    _setup(repo)
    ws = Workspace(repo.root)
    assert _answers(lambda q: ws.search(q, limit=None)) == _truth(repo.root)  # the index is open now
    ws.complete("001-aaa")
    assert _answers(lambda q: ws.search(q, limit=None)) == _truth(repo.root)
    ws.add("Brand new work", labels=["fresh"])
    ws.complete("003-ccc", outcome="failure")
    assert _answers(lambda q: ws.search(q, limit=None)) == _truth(repo.root)
    assert ws.index_status()["stale"] == 0
