"""What keeps the cost of a change flat as the repository grows (issue 7, "Scale").

No timing here (the machines are shared and noisy): each test pins the mechanism that makes a
change cost what it changed, or checks that the large-answer and cold-build paths give the
right results.
"""

from __future__ import annotations

import asyncio
import os

import pytest


def _service(repo, clock):
    """The daemon's service, made as the daemon makes it (closed by ``service.close()``)."""
    from chantd import build

    return build(repo.root, clock=clock, api_port=0, metrics_port=0).service


class _NoWalk(set):
    """A ready set that refuses to be walked: what a per-event walk of the table would do."""

    def __iter__(self):
        raise AssertionError("the whole ready set was walked for one file event")


def test_ready_since_follows_the_graph_without_walking_it(repo):
    now = [1000.0]
    repo.write("2026-01-24-001-aaa", "status: pending")
    repo.write("2026-01-24-002-bbb", "status: pending\ndepends_on: [2026-01-24-001-aaa]")
    service = _service(repo, lambda: now[0])
    try:
        service.apply(None)
        service.mark_loaded()  # what the daemon does once its load is done: requests may run
        graph = service.ws.table.graph
        assert service._ready_since == {"2026-01-24-001-aaa": 1000.0}
        graph._ready_set = _NoWalk(graph._ready_set)
        now[0] = 1010.0
        repo.write("2026-01-24-001-aaa", "status: completed")
        service.apply([".chant/specs/2026-01-24-001-aaa.md"[len(".chant/"):]])
        assert service.ws.table.graph is graph  # followed, not rebuilt
        assert service._ready_since == {"2026-01-24-002-bbb": 1010.0}
        now[0] = 1025.0
        result = asyncio.run(service.call("queue_claim", {"owner": "w"}, "socket"))
        assert result["ok"] and result["result"]["spec"]["id"] == "2026-01-24-002-bbb"
        wait = service.metrics.registry.get_sample_value("chant_queue_wait_seconds_sum")
        assert wait == 15.0  # ready at 1010, claimed at 1025
        # released without finishing: queued again, and waiting from now
        now[0] = 1030.0
        token = result["result"]["lease"]["token"]
        assert asyncio.run(service.call("lock_release", {"spec": "2026-01-24-002-bbb", "token": token}, "socket"))["ok"]
        assert service._ready_since == {"2026-01-24-002-bbb": 1030.0}
    finally:
        service.close()


# --- saving costs what changed: the table and the index state append to a journal -------------


def _daemon_like(repo):
    """A workspace as the daemon keeps one: loaded once, fed file events, flushed on a schedule."""
    ws = repo.workspace(auto_refresh=False, long_lived=True)
    ws.apply_changes(None)
    ws.flush()
    return ws


def _stamp(path):
    st = os.stat(path)
    return st.st_ino, st.st_mtime_ns, st.st_size


def test_a_save_after_one_change_appends_instead_of_rewriting(repo):
    from chantlib.table import SpecTable

    for n in range(1, 30):
        repo.write(f"2026-01-24-{n:03d}-aaa", "status: pending")
    ws = _daemon_like(repo)
    cache = ws.cache_dir
    table_file, state_file = os.path.join(cache, "table.marshal"), os.path.join(cache, "indexed.marshal")
    before = _stamp(table_file), _stamp(state_file)
    repo.write("2026-01-24-001-aaa", "status: completed")
    repo.write("2026-01-25-001-new", "status: pending")
    ws.apply_changes(["specs/2026-01-24-001-aaa.md", "specs/2026-01-25-001-new.md"])
    os.unlink(repo.path("2026-01-24-002-aaa"))
    ws.apply_changes(["specs/2026-01-24-002-aaa.md"])
    ws.flush()
    assert (_stamp(table_file), _stamp(state_file)) == before  # neither rewritten...
    assert os.path.getsize(table_file + ".journal") and os.path.getsize(state_file + ".journal")  # ...appended to
    # what another process loads from the files equals what the daemon holds
    other = SpecTable(ws.store, cache)
    other.load()
    assert other.files == ws.table.files and other.rows == ws.table.rows
    assert other.folders == ws.table.folders and other.archive_verified_ns == ws.table.archive_verified_ns
    assert {k: v for k, v in other.extra.items() if k != "graph"} == {
        k: v for k, v in ws.table.extra.items() if k != "graph"}
    assert "graph" not in other.extra  # computed from rows that changed since the snapshot
    fresh = repo.workspace(auto_refresh=False, long_lived=True)
    assert fresh.index._load_state() == ws.index._load_state()
    assert "specs/2026-01-24-002-aaa.md" not in fresh.index._load_state()
    # and a direct-mode command on top of that sees the same repository, with no work to do
    direct = repo.workspace()
    listed = [s["id"] for s in direct.list_specs(ready=True)["specs"]]
    assert listed == [i for i in ws.table.graph.ready]
    assert direct.index_status()["changed_since_last_run"] == 0 and direct.index_status()["stale"] == 0
    # a clean stop writes it all again, and the journals go
    ws.table.save()
    ws.index._state_full = True
    ws.flush()
    assert not os.path.exists(table_file + ".journal")


def test_a_new_document_is_named_in_the_state_before_its_commit(repo, monkeypatch):
    """The crash-safety rule of the index state (design.md, "The index"), with the journal:
    the state on disk names a new path before tantivy's commit makes its document exist."""
    repo.write("2026-01-24-001-aaa", "status: pending")
    ws = _daemon_like(repo)
    from chantlib.index import Index

    seen = {}
    real_write = Index._write

    def spy(self, todo, gone, parsed, *rest):
        import tantivy

        real_commit = tantivy.IndexWriter.commit

        def commit(writer):
            seen["named"] = Index(ws.table, ws.cache_dir)._load_state().get("specs/2026-01-25-001-new.md")
            return real_commit(writer)

        monkeypatch.setattr(tantivy.IndexWriter, "commit", commit, raising=False)
        try:
            return real_write(self, todo, gone, parsed, *rest)
        finally:
            monkeypatch.setattr(tantivy.IndexWriter, "commit", real_commit, raising=False)

    monkeypatch.setattr(Index, "_write", spy)
    repo.write("2026-01-25-001-new", "status: pending")
    ws.apply_changes(["specs/2026-01-25-001-new.md"])
    assert seen["named"] == -1  # named, with no checksum: indexed again after a crash


def test_a_journal_is_ignored_when_it_is_torn_or_belongs_to_another_snapshot(tmp_path):
    from chantlib.snapshot import Snapshot

    path = str(tmp_path / "state.marshal")
    a = Snapshot(path)
    a.write({"docs": {"x": 1}})
    assert a.append([("put", {"y": 2})]) and a.append([("put", {"z": 3})])
    assert Snapshot(path).load() == ({"docs": {"x": 1}, "token": a._token}, [("put", {"y": 2}), ("put", {"z": 3})])
    with open(path + ".journal", "ab") as fh:  # a writer killed half-way through a record
        fh.write(b"\x40\x00\x00\x00partial")
    assert Snapshot(path).load()[1] == [("put", {"y": 2}), ("put", {"z": 3})]
    # another process writes a new snapshot: this one's appends are refused from then on
    b = Snapshot(path)
    b.load()
    b.write({"docs": {"x": 9}})
    assert not a.append([("put", {"w": 4})])
    assert Snapshot(path).load()[1] == []
    # a journal left behind by an older snapshot (a crash between the two writes) is not replayed
    assert b.append([("put", {"v": 5})])
    with open(path + ".journal", "rb") as fh:
        journal = fh.read()
    b.write({"docs": {}})
    with open(path + ".journal", "wb") as fh:
        fh.write(journal)
    assert Snapshot(path).load()[1] == []


def test_the_journal_is_folded_into_a_new_snapshot_once_it_has_grown(tmp_path):
    from chantlib import snapshot

    path = str(tmp_path / "state.marshal")
    s = snapshot.Snapshot(path)
    s.write({"docs": {}})
    big = "x" * 4096
    appended = 0
    while s.append([("put", {str(appended): big})]):
        appended += 1
    assert s.compact_due() and s.journal_bytes > snapshot.COMPACT_MIN and appended >= 200
    s.write({"docs": {}})
    assert not s.compact_due() and s.append([("put", {"a": 1})])


# --- the client reads a large answer linearly ----------------------------------------------------


class _ChunkedSocket:
    """What a socket delivers: the given bytes, at most ``size`` at a time."""

    def __init__(self, data: bytes, size: int) -> None:
        self.data, self.size, self.pos, self.sent = data, size, 0, b""

    def recv(self, n: int) -> bytes:
        take = min(n, self.size, len(self.data) - self.pos)
        chunk = self.data[self.pos : self.pos + take]
        self.pos += take
        return chunk

    def sendall(self, data: bytes) -> None:
        self.sent += data

    def close(self) -> None:
        pass


def test_the_client_reads_multi_megabyte_answers_in_any_chunking():
    import json

    from chantlib.client import DaemonClient, DaemonGone

    big = {"specs": [{"id": f"2026-01-24-{i:03d}-aaa", "title": "x" * (i % 97)} for i in range(60000)]}
    first = json.dumps({"ok": True, "result": big}, separators=(",", ":")).encode()
    second = json.dumps({"ok": True, "result": {"n": 2}}).encode()
    assert len(first) > 4 << 20
    # small pieces (a quadratic read of 4 MB in 61-byte pieces would take minutes), a newline
    # on a piece boundary, two answers in one piece, and a piece ending just before the end
    for size in (61, 1 << 16, len(first), len(first) + 1, len(first) + 5):
        client = DaemonClient(_ChunkedSocket(first + b"\n" + second + b"\n" + b'{"ok":tr', size), {}, "test")
        assert client.call("list") == big
        assert client.call("hello") == {"n": 2}
        with pytest.raises(DaemonGone):
            client.call("hello")  # the daemon went away half-way through a line


# --- list's daemon face: the same answer, encoded piecewise --------------------------------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from chantlib.values import SPEC_FIELDS, STATUS_FILTERS  # noqa: E402

_list_params = st.fixed_dictionaries(
    {},
    optional={
        "ready": st.booleans(),
        "status": st.sampled_from(STATUS_FILTERS),
        "labels": st.lists(st.sampled_from(["bug", "docs", "cli"]), max_size=2),
        "type": st.sampled_from(["code", "group", "task"]),
        "project": st.sampled_from(["auth", "infra"]),
        "fields": st.lists(st.sampled_from(SPEC_FIELDS), max_size=5, unique=True),
        "form": st.sampled_from(["objects", "columns"]),
    },
)


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    """A long-lived workspace (as the daemon keeps one) on a generated repository, shared by
    the examples, so its memo of encoded specs carries over from one example to the next."""
    from chantlib import Workspace
    from chantlib.generate import generate

    root = str(tmp_path_factory.mktemp("gen") / "repo")
    generate(root, 300, seed=11)
    ws = Workspace(root, auto_refresh=False, long_lived=True)
    ws.apply_changes(None)
    return ws


@settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
@given(params=_list_params, edits=st.lists(st.tuples(st.integers(0, 10**6), st.sampled_from(
    ["completed", "pending", "failed", "in_progress"])), max_size=3))
def test_list_json_is_the_encoding_of_list(live, params, edits):
    import json

    from chantlib.ops import dispatch, dispatch_json

    ws = live
    active = sorted(ws.table.active)
    for pick, status in edits:  # change a few specs, as the watcher would report them
        row = ws.table.active[active[pick % len(active)]]
        path = os.path.join(ws.store.chant_dir, row.path)
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text.replace(f"status: {row.status}", f"status: {status}", 1))
        ws.apply_changes([row.path])
    assert dispatch_json(ws, "list", params) == json.dumps(dispatch(ws, "list", params), separators=(",", ":"))


_STATUSES = ["completed", "pending", "failed", "in_progress", "cancelled", "blocked"]
#: one change to a spec file, as a watcher reports it: (kind, which spec, which status, a number)
_changes = st.lists(st.tuples(st.sampled_from(["status", "title", "new", "member", "remove", "depends"]),
                              st.integers(0, 10**6), st.sampled_from(_STATUSES), st.integers(0, 99)),
                    min_size=1, max_size=6)
#: the kept answers asked after every change: the CLI's lines, its --json, and filtered ones
_KEPT = [
    {"ready": True, "fields": ["id", "title", "status", "type", "blocked", "approval", "held"], "form": "columns"},
    {"ready": True},
    {},
    {"status": "pending", "form": "columns"},
    {"ready": True, "labels": ["bug"], "fields": ["id", "held", "ready"]},
    {"status": "failed", "type": "code", "form": "columns", "fields": ["id", "blocked"]},
]


def _change(ws, kind: str, pick: int, status: str, n: int) -> str:
    """Make one change to the spec files of ``ws``; the path the watcher would report."""
    import re

    active = sorted(ws.table.active)
    row = ws.table.active[active[pick % len(active)]]
    path = os.path.join(ws.store.chant_dir, row.path)
    if kind in ("new", "member"):
        spec_id = f"{row.id}.{n + 1}" if kind == "member" else f"2030-01-01-{n:03d}-new"
        deps = f"depends_on: [{row.id}]\n" if n % 3 == 0 and kind == "new" else ""
        rel = f"specs/{spec_id}.md"
        with open(os.path.join(ws.store.chant_dir, rel), "w", encoding="utf-8") as fh:
            fh.write(f"---\ntype: code\nstatus: {status}\n{deps}---\n# New spec {n}\n\n- [ ] done\n")
        return rel
    if kind == "remove":
        os.unlink(path)
        return row.path
    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    if kind == "status":
        text = re.sub(r"^status: .*$", f"status: {status}", text, count=1, flags=re.M)
    elif kind == "title":
        text = re.sub(r"^# .*$", f"# Retitled {n}", text, count=1, flags=re.M)
    else:  # a dependency on another active spec (a cycle now and then)
        other = active[(pick + n + 1) % len(active)]
        text = re.sub(r"^depends_on:.*\n", "", text, flags=re.M).replace("---\n", f"---\ndepends_on: [{other}]\n", 1)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)
    return row.path


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(changes=_changes)
def test_kept_list_answers_equal_fresh_ones_after_random_changes(live, changes):
    """The daemon's kept answers (chantlib.listing), patched after each change, are the bytes
    a fresh answer encodes to: statuses, titles, specs that come and go, members, dependencies."""
    import json

    from chantlib.ops import dispatch, dispatch_json

    ws = live
    for change in changes:
        ws.apply_changes([_change(ws, *change)])
        for params in _KEPT:
            assert dispatch_json(ws, "list", params) == json.dumps(dispatch(ws, "list", params), separators=(",", ":"))


def test_a_kept_list_answer_after_a_change_looks_at_the_changed_spec_only(repo, monkeypatch):
    """After one file changed, the kept answer of `chant list --ready` is patched: the listed
    specs are not gathered again, and no other spec is encoded again."""
    import json

    from chantlib import listing
    from chantlib.ops import dispatch_json

    for n in range(30):
        repo.write(f"2026-01-24-{n:03d}-aaa", "status: pending")
    ws = repo.workspace(auto_refresh=False, long_lived=True)
    ws.apply_changes(None)
    params = {"ready": True, "fields": ["id", "title", "held"], "form": "columns"}
    assert len(json.loads(dispatch_json(ws, "list", params))["specs"]["id"]) == 30
    monkeypatch.setattr(ws, "_list_rows", lambda *a: pytest.fail("the listed specs were gathered again"))
    encoded = []
    real = listing.piece
    monkeypatch.setattr("chantlib.workspace.piece", lambda value: encoded.append(value) or real(value))
    repo.write("2026-01-24-007-aaa", "status: pending", "# Retitled\n")
    ws.apply_changes(["specs/2026-01-24-007-aaa.md"])
    specs = json.loads(dispatch_json(ws, "list", params))["specs"]
    assert specs["title"][7] == "Retitled" and len(specs["id"]) == 30
    assert encoded == ["2026-01-24-007-aaa", "Retitled", []]  # one spec's three values
    repo.write("2026-01-24-007-aaa", "status: completed")
    ws.apply_changes(["specs/2026-01-24-007-aaa.md"])
    assert "2026-01-24-007-aaa" not in json.loads(dispatch_json(ws, "list", params))["specs"]["id"]


@pytest.mark.parametrize("ready", [False, True])
def test_the_columns_form_prints_what_the_objects_print(repo, ready):
    """`chant list` prints from a columns answer the very lines it prints from spec objects
    (approvals, a conflict, a spec held back by lint, a blocked one, one spec alone too),
    and ``rows_of`` gives the objects back."""
    import argparse
    import io

    from chant_cli.render import LINE_FIELDS, Out, render_list
    from chantlib.columns import rows_of
    from chantlib.ops import dispatch

    repo.write("2026-01-24-001-aaa", "status: pending\napproval: {required: true, status: approved, by: a}")
    repo.write("2026-01-24-002-bbb", "status: pending\napproval: {required: true, status: rejected, by: a}")
    repo.write("2026-01-24-003-ccc", "status: pending\napproval: {required: true, status: pending}")
    repo.write("2026-01-24-004-ddd", "type: conflict\nstatus: failed")
    repo.write("2026-01-24-005-eee", "status: pending", body="no title here\n")  # held: lint's title rule
    repo.write("2026-01-24-006-fff", "status: pending\ndepends_on: [2026-01-24-009-zzz]")  # blocked
    repo.write("2026-01-24-007-ggg", "status: pending\nlabels: [bug]")
    repo.write("2026-01-24-008-hhh", "status: failed\nlabels: [solo]")
    repo.write("2026-01-24-010-jjj", "status: in_progress\nlabels: [bug]")
    ws = repo.workspace()
    args = argparse.Namespace(count=False, json=False, ready=ready, labels=None, status=None, type=None, project=None)
    for filters in ({"labels": ["bug"]}, {}):  # the whole list last
        params = {"ready": ready, "fields": list(LINE_FIELDS), **filters}
        objects = dispatch(ws, "list", params)
        columns = dispatch(ws, "list", dict(params, form="columns"))
        assert rows_of(columns) == objects["specs"]
        printed = []
        for result in (objects, columns):
            out, err = io.StringIO(), io.StringIO()
            assert render_list(Out(out, err, color=True), result, args) == 0
            printed.append((out.getvalue(), err.getvalue()))
        assert printed[0] == printed[1] and printed[0][0]
    assert "[not queued: lint error]" in printed[0][0]
    lone = dispatch(ws, "list", {"ready": ready, "labels": ["solo"], "fields": list(LINE_FIELDS), "form": "columns"})
    assert lone["count"] == 1 and lone["specs"]["id"] == {"all": "2026-01-24-008-hhh"}  # one spec: every key shared


def test_list_fields_pick_keys_and_unknown_ones_are_refused(repo):
    from chantlib.errors import ChantError
    from chantlib.ops import dispatch

    repo.write("2026-01-24-001-aaa", "status: pending\napproval: {required: true, status: pending}")
    ws = repo.workspace()
    specs = dispatch(ws, "list", {"fields": "status,id"})["specs"]
    assert specs == [{"id": "2026-01-24-001-aaa", "status": "pending"}]  # the spec object's order
    full = dispatch(ws, "list", {})["specs"][0]
    assert list(full) == list(SPEC_FIELDS)
    with pytest.raises(ChantError) as err:
        dispatch(ws, "list", {"fields": ["id", "secret"]})
    assert err.value.code == "bad_params"


def test_list_json_follows_a_dependents_state_though_its_row_did_not_change(repo):
    import json

    from chantlib.ops import dispatch_json

    repo.write("2026-01-24-001-aaa", "status: pending")
    repo.write("2026-01-24-002-bbb", "status: pending\ndepends_on: [2026-01-24-001-aaa]")
    ws = repo.workspace(auto_refresh=False, long_lived=True)
    ws.apply_changes(None)

    def states():
        specs = json.loads(dispatch_json(ws, "list", {"fields": ["id", "ready", "blocked"]}))["specs"]
        return {s["id"][-3:]: (s["ready"], s["blocked"]) for s in specs}

    assert states() == {"aaa": (True, False), "bbb": (False, True)}
    repo.write("2026-01-24-001-aaa", "status: completed")
    ws.apply_changes(["specs/2026-01-24-001-aaa.md"])
    assert states() == {"aaa": (False, False), "bbb": (True, False)}


# --- the cold build: bounded memory (nothing parsed is kept, the index commits in batches) ------


def test_a_cold_build_keeps_no_parsed_spec_and_indexes_in_batches(repo, monkeypatch):
    import tantivy

    from chantlib import index as index_module
    from chantlib import table as table_module

    monkeypatch.setattr(table_module, "PARSED_KEEP", 5)
    monkeypatch.setattr(index_module, "BATCH", 7)
    for n in range(1, 31):
        repo.write(f"2026-01-24-{n:03d}-aaa", "status: pending", f"# Spec {n}\n\nword{n} and merge\n")
    commits = []
    real_commit = tantivy.IndexWriter.commit

    def commit(writer):
        commits.append(1)
        return real_commit(writer)

    monkeypatch.setattr(tantivy.IndexWriter, "commit", commit, raising=False)
    ws = repo.workspace(auto_refresh=False, long_lived=True)
    changes = ws.table.refresh(save=False, full=True)
    assert len(changes.added) == 30 and changes.parsed == {}  # the bodies are read again by the index
    assert ws.index.sync(changes.parsed, changes) == 30
    assert len(commits) == 5  # 7 + 7 + 7 + 7 + 2
    assert ws.search("merge", limit=None)["total"] == 30
    assert ws.search("word17")["specs"][0]["id"] == "2026-01-24-017-aaa"
    assert all(crc == ws.table.files[rel][3] for rel, crc in ws.index._load_state().items())
    # a cold start streams: each file read once (no body read again), the same batches
    from chantlib.index import Index

    def no_second_read(self, rel):
        raise AssertionError(f"{rel} read again")

    monkeypatch.setattr(Index, "_read_body", no_second_read)
    import shutil

    ws.close()
    shutil.rmtree(ws.cache_dir)
    commits.clear()
    ws = repo.workspace(auto_refresh=False, long_lived=True)
    assert ws.apply_changes(None).documents == 30
    assert len(commits) == 5
    assert ws.search("merge", limit=None)["total"] == 30
    monkeypatch.undo()
    monkeypatch.setattr(table_module, "PARSED_KEEP", 5)
    monkeypatch.setattr(index_module, "BATCH", 7)
    monkeypatch.setattr(tantivy.IndexWriter, "commit", commit, raising=False)
    # a watcher's batch is small: its parsed specs are handed to the index, one commit
    commits.clear()
    repo.write("2026-01-24-003-aaa", "status: pending", "# Spec 3\n\nchanged\n")
    changes = ws.table.refresh_paths(["specs/2026-01-24-003-aaa.md"])
    assert list(changes.parsed) == ["specs/2026-01-24-003-aaa.md"]
    assert ws.index.sync(changes.parsed, changes) == 1 and len(commits) == 1
    ws.close()


@pytest.mark.parametrize("text", [
    "---\nstatus: pending\n---\n# Title\n\nbody\n",
    "---\nstatus: [\n---\n# Broken YAML\n\nbody\n",
    "---\nstatus: pending\n# never closed\n",
    "# No frontmatter\n\nbody\n",
    "",
    "---\n---\n",
    "---\r\nstatus: pending\r\n---\r\n# CRLF\r\n",
    "---\n- a list, not a mapping\n---\nbody\n",
])
def test_the_index_reads_a_body_as_the_spec_parser_does(repo, text):
    from chantlib.spec import Spec

    path = repo.write("2026-01-24-001-aaa", raw=text)
    ws = repo.workspace()
    assert ws.index._read_body("specs/2026-01-24-001-aaa.md") == Spec.parse("2026-01-24-001-aaa", text).body
    os.unlink(path)


# --- the progress hook -------------------------------------------------------------------------


def test_progress_reports_reading_and_indexing_throttled_and_at_the_end(repo, monkeypatch):
    from chantlib import progress as progress_module

    ticks = [0.0]

    def monotonic():  # every look at the clock is 10 ms later: a report every ~10 items
        ticks[0] += 0.01
        return ticks[0]

    monkeypatch.setattr(progress_module.time, "monotonic", monotonic)
    for n in range(1, 101):
        path = repo.write(f"2026-01-24-{n:03d}-aaa", "status: pending")
        os.utime(path, (os.stat(path).st_mtime - 3600,) * 2)  # out of the racy window: read once
    calls = []
    ws = repo.workspace(auto_refresh=False, long_lived=True)
    ws.progress = lambda phase, done, total: calls.append((phase, done, total))
    ws.apply_changes(None)
    ws.close()  # saved, and its kept index writer let go for the direct-mode workspace below
    for phase in ("reading", "indexing"):
        mine = [c for c in calls if c[0] == phase]
        assert mine[-1] == (phase, 100, 100)  # once at the end, done == total
        assert 5 <= len(mine) <= 12  # about one per 0.1 s of (fake) time, not one per file
        assert [d for _, d, _ in mine] == sorted(d for _, d, _ in mine)
    assert [c[0] for c in calls] == ["reading"] * len([c for c in calls if c[0] == "reading"]) + ["indexing"] * len(
        [c for c in calls if c[0] == "indexing"])
    # refresh() reports reading; index_rebuild() reports both phases again
    calls.clear()
    direct = repo.workspace()
    direct.progress = lambda phase, done, total: calls.append((phase, done, total))
    path = repo.write("2026-01-25-001-new", "status: pending")
    os.utime(path, (os.stat(path).st_mtime - 3600,) * 2)
    direct.refresh()
    assert calls[-1] == ("reading", 1, 1)
    calls.clear()
    direct.index_rebuild()
    assert ("reading", 101, 101) in calls and calls[-1] == ("indexing", 101, 101)
    # nothing to do: nothing reported
    calls.clear()
    direct.refresh()
    assert calls == []


def test_progress_is_called_from_the_daemons_worker_thread(repo):
    import threading

    repo.write("2026-01-24-001-aaa", "status: pending")
    service = _service(repo, lambda: 0.0)
    threads = set()
    service.ws.progress = lambda phase, done, total: threads.add(threading.current_thread().name)
    try:
        asyncio.run(service.apply_async(None))
    finally:
        service.close()
    assert threads and all(name.startswith("chantd-op") for name in threads)


# --- a folder event looks below the folder, not at the whole repository -------------------------


def test_a_folder_event_refreshes_what_is_below_it(repo):
    import shutil

    from chantlib.table import SpecTable

    repo.write("2026-01-10-001-old", "status: completed", archive="2026-01-11")
    repo.write("2026-01-24-001-new", "status: pending\ndepends_on: [2026-01-10-002-two]")
    ws = repo.workspace(auto_refresh=False, long_lived=True)
    ws.apply_changes(None)
    graph = ws.table.graph
    assert ws.table.graph.ready == []

    def same_as_a_full_walk():
        fresh = SpecTable(ws.store)
        fresh.refresh(save=False, full=True)
        assert fresh.rows == ws.table.rows and list(fresh.graph.ready) == list(ws.table.graph.ready)

    # a new archive folder, files and all (archiving on a new day; the files raise no event of
    # their own if they were there before the watch on the folder was)
    repo.write("2026-01-10-002-two", "status: completed", archive="2026-01-12")
    repo.write("2026-01-10-003-six", "status: completed", archive="2026-01-12")
    changes = ws.table.refresh_paths(["archive/2026-01-12/"])
    assert sorted(changes.added) == ["archive/2026-01-12/2026-01-10-002-two.md", "archive/2026-01-12/2026-01-10-003-six.md"]
    assert ws.table.graph is graph and ws.table.graph.ready == ["2026-01-24-001-new"]
    same_as_a_full_walk()
    # renamed: the old folder's entries go, the new one's come
    archive = os.path.join(repo.root, ".chant", "archive")
    os.rename(os.path.join(archive, "2026-01-12"), os.path.join(archive, "2026-01-13"))
    changes = ws.table.refresh_paths(["archive/2026-01-12/", "archive/2026-01-13/"])
    assert len(changes.removed) == 2 and len(changes.added) == 2
    same_as_a_full_walk()
    # removed, with a folder below it
    os.makedirs(os.path.join(archive, "2026-01-13", "sub"))
    repo.write("2026-01-10-004-sub", "status: completed", archive="2026-01-13/sub")
    ws.table.refresh_paths(["archive/2026-01-13/sub/"])
    shutil.rmtree(os.path.join(archive, "2026-01-13"))
    changes = ws.table.refresh_paths(["archive/2026-01-13/"])
    assert len(changes.removed) == 3
    assert ws.table.graph is graph and ws.table.graph.ready == []
    same_as_a_full_walk()


def test_the_daemon_follows_folders_created_renamed_and_removed(repo, daemon_factory):
    import shutil
    import time

    repo.write("2026-01-24-001-new", "status: pending\ndepends_on: [2026-01-10-002-two]")
    d = daemon_factory(repo.root, api=False, metrics=False)
    archive = os.path.join(repo.root, ".chant", "archive")

    def ready():
        return [s["id"] for s in d.call("list", ready=True)["specs"]]

    def eventually(check, timeout=20.0):
        deadline = time.monotonic() + timeout
        while not check():
            assert time.monotonic() < deadline, "the daemon did not follow"
            time.sleep(0.05)

    staging = os.path.join(repo.root, "staging")  # built elsewhere, then moved in: one folder event
    os.makedirs(staging)
    with open(os.path.join(staging, "2026-01-10-002-two.md"), "w") as fh:
        fh.write("---\nstatus: completed\n---\n# Two\n")
    os.rename(staging, os.path.join(archive, "2026-01-12"))
    eventually(lambda: ready() == ["2026-01-24-001-new"])
    os.rename(os.path.join(archive, "2026-01-12"), os.path.join(repo.root, "moved-out"))
    eventually(lambda: ready() == [])
    os.rename(os.path.join(repo.root, "moved-out"), os.path.join(archive, "2026-01-14"))
    eventually(lambda: ready() == ["2026-01-24-001-new"])
    shutil.rmtree(os.path.join(archive, "2026-01-14"))
    eventually(lambda: ready() == [])
    assert d.call("search", q="id:2026-01-10-*")["total"] == 0


# --- the daemon keeps one index writer: a batch is a commit, merges run in the background -------


def test_a_long_lived_index_keeps_one_writer_across_batches(repo, monkeypatch):
    import tantivy

    for n in range(1, 6):
        repo.write(f"2026-01-24-{n:03d}-aaa", "status: pending")
    made, waited = [], []
    real_writer, real_wait = tantivy.Index.writer, tantivy.IndexWriter.wait_merging_threads

    def writer(index, *args, **kwargs):
        made.append(1)
        return real_writer(index, *args, **kwargs)

    def wait(w):
        waited.append(1)
        return real_wait(w)

    monkeypatch.setattr(tantivy.Index, "writer", writer, raising=False)
    monkeypatch.setattr(tantivy.IndexWriter, "wait_merging_threads", wait, raising=False)
    ws = repo.workspace(auto_refresh=False, long_lived=True)
    ws.apply_changes(None)
    for n in range(1, 6):  # five watcher batches
        repo.write(f"2026-01-24-{n:03d}-aaa", "status: pending", f"# Spec {n}\n\nbatch{n}\n")
        ws.apply_changes([f"specs/2026-01-24-{n:03d}-aaa.md"])
        assert ws.search(f"batch{n}")["total"] == 1  # committed and visible at once
    assert len(made) == 1 and waited == []  # one writer, never waited on for its merges
    ws.close()
    assert waited == [1]
    # closed: another writer may be made (by this process or another)
    other = repo.workspace()
    repo.write("2026-01-24-001-aaa", "status: pending", "# Spec 1\n\nafterwards\n")
    assert other.search("afterwards")["total"] == 1


def test_direct_mode_searches_while_the_daemon_holds_the_writer(repo, daemon_factory):
    import time

    from .support import run_chant

    repo.write("2026-01-24-001-aaa", "status: pending", "# First\n")
    d = daemon_factory(repo.root, api=False, metrics=False)
    repo.write("2026-01-24-002-bbb", "status: pending", "# Second\n\nzebra\n")
    deadline = time.monotonic() + 20
    while d.call("search", q="zebra")["total"] != 1:  # the daemon indexed it (and holds the writer)
        assert time.monotonic() < deadline
        time.sleep(0.05)
    # not "busy" (what waiting 60 s for the writer lock would end in): the index as the daemon keeps it
    found = run_chant(["--direct", "search", "zebra"], repo.root)
    assert found.code == 0 and "2026-01-24-002-bbb" in found.out, found
    refused = run_chant(["--direct", "index", "rebuild"], repo.root)
    assert refused.code != 0 and "owns its index" in refused.err
    assert d.call("search", q="zebra")["total"] == 1  # the daemon's index is untouched


def test_after_a_warm_start_the_first_batch_is_compared_path_by_path(repo, monkeypatch):
    from chantlib.index import Index

    for n in range(1, 6):
        repo.write(f"2026-01-24-{n:03d}-aaa", "status: pending")
    first = repo.workspace(auto_refresh=False, long_lived=True)
    first.apply_changes(None)
    first.close()
    calls = []
    real = Index.pending
    monkeypatch.setattr(Index, "pending", lambda self: calls.append(1) or real(self))
    ws = repo.workspace(auto_refresh=False, long_lived=True)
    ws.apply_changes(None)  # a warm start: table and index in step, nothing to write
    repo.write("2026-01-24-001-aaa", "status: pending", "# Spec 1\n\nfresh\n")
    ws.apply_changes(["specs/2026-01-24-001-aaa.md"])
    assert calls == []  # no pass over every row
    assert ws.search("fresh")["total"] == 1
    # the kept writer's background merges rewrite meta.json: not a sign that someone else
    # replaced the index, so no pass over every row either
    meta = os.path.join(ws.cache_dir, "tantivy", "meta.json")
    os.utime(meta, ns=(os.stat(meta).st_atime_ns, os.stat(meta).st_mtime_ns + 10**9))
    assert ws.search("fresh")["total"] == 1
    assert calls == []
    ws.close()


def test_a_read_only_command_leaves_the_graph_computed_for_the_next_one(repo):
    """With the journal, a save appends; the graph (O(ready) to write) goes in only with a
    save that carries no row, so direct mode does not compute it again on every command."""
    from chantlib.table import SpecTable

    def old(path):  # out of the racy window, so that a command reads nothing again
        os.utime(path, (os.stat(path).st_mtime - 3600,) * 2)

    for n in range(1, 6):
        old(repo.write(f"2026-01-24-{n:03d}-aaa", "status: pending"))
    daemon_like = _daemon_like(repo)  # a snapshot, then a journal with rows in it
    old(repo.write("2026-01-24-001-aaa", "status: completed"))
    daemon_like.apply_changes(["specs/2026-01-24-001-aaa.md"])
    daemon_like.flush()
    daemon_like.close()
    first = repo.workspace()
    first.list_specs(ready=True)  # computes the graph (the journal's rows made the saved one stale)
    assert os.path.exists(os.path.join(first.cache_dir, "table.marshal.journal"))  # appended, not rewritten
    table = SpecTable(first.store, first.cache_dir)
    table.load()
    assert table.extra["graph"][0] == tuple(first.table.graph.ready)
    assert list(table.graph.ready) == ["2026-01-24-002-aaa", "2026-01-24-003-aaa", "2026-01-24-004-aaa",
                                       "2026-01-24-005-aaa"]


def test_a_kept_list_answer_is_sent_while_the_index_commits(repo, monkeypatch):
    """After a batch of file events, the daemon makes the answer of a `list` request it
    answered before as soon as the table is in step, and caches it before the index commits:
    a poll of `chant list --ready` waits for neither the commit nor the answer's making."""
    import json
    import threading
    import time

    from chantd import service as service_module

    repo.write("2026-01-24-001-aaa", "status: pending")
    service = _service(repo, time.time)
    params = {"ready": True, "fields": ["id", "title"], "form": "columns"}

    async def scenario():
        await service.apply_async(None)
        service.mark_loaded()
        first = json.loads(await service.call_encoded("list", dict(params), "test", None, None))
        assert first["result"]["specs"]["id"] == {"all": "2026-01-24-001-aaa"}  # one spec: one value
        index = service.ws.index
        real_sync = index.sync
        seen = {}

        answered = threading.Event()

        def sync(*args, **kwargs):  # on the worker thread: the loop is free while the index commits
            seen["answered"] = answered.wait(5)  # a poll is answered before the commit goes on
            return real_sync(*args, **kwargs)

        monkeypatch.setattr(index, "sync", sync)
        made = []
        real = service_module._dispatch_encoded
        monkeypatch.setattr(service_module, "_dispatch_encoded", lambda *a: made.append(a[1]) or real(*a))
        repo.write("2026-01-24-002-bbb", "status: pending")
        batch = asyncio.create_task(service.apply_async(["specs/2026-01-24-002-bbb.md"]))
        while not service._early and not batch.done():  # the batch has begun (or is done already)
            await asyncio.sleep(0.001)
        answer = json.loads(await service.call_encoded("list", dict(params), "test", None, None))
        answered.set()
        await batch
        assert not seen  # the batch itself commits nothing: the index follows after, off the lock
        assert service._indexing is not None
        await service._indexing
        assert seen == {"answered": True} and made == ["list"]  # made once, in the batch, before the commit
        assert not service.ws.index_behind
        assert answer["result"]["specs"]["id"] == ["2026-01-24-001-aaa", "2026-01-24-002-bbb"]
        again = json.loads(await service.call_encoded("list", dict(params), "test", None, None))
        assert again == answer and made == ["list"]  # sent from the cache
        assert threading.current_thread() is threading.main_thread()

    try:
        asyncio.run(scenario())
    finally:
        service.close()
