"""Workspace operations through the one dispatch (chantlib.ops), in process."""

from __future__ import annotations

import json
import os

import pytest

from chantlib import ops
from chantlib.errors import ChantError, NotInitialized, UsageError, error_envelope


@pytest.fixture
def ws(repo):
    repo.write("2026-01-24-001-aaa", "status: pending\nlabels: [x]", "# A\n")
    repo.write("2026-01-24-002-bbb", "status: completed", "# B\n")
    return repo.workspace()


def test_every_operation_returns_json_data(ws):
    calls = {
        "hello": {},
        "list": {"ready": True},
        "show": {"spec": "aaa"},
        "search": {"q": "status:pending"},
        "query": {"q": "status:pending"},
        "lint": {},
        "status": {},
        "lock_list": {},
        "lock_status": {"spec": "aaa"},
        "queue_next": {},
        "queue_list": {},
        "queue_stats": {},
        "index_status": {},
    }
    for name, params in calls.items():
        result = ops.dispatch(ws, name, params)
        json.dumps(result)  # plain data
    assert set(calls) | {"add", "lock_acquire", "lock_release", "lock_renew", "queue_claim", "complete",
                         "index_rebuild", "daemon_status", "record_commit"} == set(ops.OPS)


def test_params_arrive_as_strings_too(ws):
    """HTTP query strings and the CLI send text: the table converts it."""
    result = ops.dispatch(ws, "list", {"ready": "true", "labels": "x,y"})
    assert [s["id"] for s in result["specs"]] == ["2026-01-24-001-aaa"]
    lease = ops.dispatch(ws, "lock_acquire", {"spec": "aaa", "ttl": "30", "owner": "a"})
    assert ops.dispatch(ws, "lock_release", {"id": "aaa", "token": str(lease["token"])})["spec"] == lease["spec"]


@pytest.mark.parametrize(
    ("name", "params", "code", "fragment"),
    [
        ("nope", {}, "bad_params", "unknown command 'nope'"),
        ("list", {"ready": "maybe"}, "bad_params", "parameter 'ready' must be true or false"),
        ("list", {"colour": "red"}, "bad_params", "unknown parameter 'colour'"),
        ("show", {}, "bad_params", "parameter 'spec' is required"),
        ("search", {"q": "x", "limit": "ten"}, "bad_params", "must be an integer"),
        ("search", {"q": "x", "limit": -1}, "bad_params", "parameter 'limit' must be at least 0"),
        ("lock_acquire", {"spec": "aaa", "ttl": 0}, "bad_params", "parameter 'ttl' must be above 0"),
        ("lock_acquire", {"spec": "aaa", "ttl": 1e12}, "bad_params", "parameter 'ttl' must be at most 315360000"),
        ("add", {"title": "x", "project": "../etc"}, "bad_params", "parameter 'project' must be letters"),
        ("search", {"q": "  "}, "bad_params", "parameter 'q' must not be blank"),
        ("lock_acquire", {"spec": "aaa", "ttl": "nan"}, "bad_params", "must be a number"),
        ("list", {"labels": {"a": 1}}, "bad_params", "list of strings"),
        ("show", {"spec": "zzz"}, "not_found", "Spec not found: zzz"),
        ("search", {"q": "("}, "bad_query", "unclosed"),
        ("list", ["not", "an", "object"], "bad_params", "must be an object"),
    ],
)
def test_bad_parameters_are_errors_with_codes(ws, name, params, code, fragment):
    with pytest.raises(ChantError) as err:
        ops.dispatch(ws, name, params)
    envelope = error_envelope(err.value)
    assert envelope["code"] == code
    assert fragment in envelope["message"]


def test_error_envelope_of_an_internal_fault():
    assert error_envelope(RuntimeError("boom")) == {"code": "internal", "message": "internal error: RuntimeError: boom"}


def test_error_round_trips_through_a_dict():
    err = ChantError.from_dict({"code": "already_locked", "message": "held", "details": {"holder": "a"}})
    assert err.code == "already_locked" and err.exit_code == 3 and err.details == {"holder": "a"}
    unknown = ChantError.from_dict({"code": "brand_new", "message": "?"})
    assert unknown.code == "brand_new" and unknown.exit_code == 1


def test_hello(ws):
    hello = ops.dispatch(ws, "hello", {})
    assert hello["protocol"] == ops.PROTOCOL_VERSION and hello["root"] == ws.root


def test_no_repository(tmp_path):
    with pytest.raises(NotInitialized):
        from chantlib import Workspace

        Workspace(tmp_path)


def test_add_uses_the_project_prefix_from_config(repo):
    with open(os.path.join(repo.root, ".chant", "config.md"), "w") as fh:
        fh.write("---\nproject:\n  name: x\n  prefix: auth\n---\n")
    ws = repo.workspace()
    result = ws.add("Prefixed")
    assert result["id"].startswith("auth-")
    assert ws.show(result["id"])["project"] == "auth"


def test_add_refuses_bad_input(ws):
    with pytest.raises(UsageError):
        ws.add("two\nlines")
    with pytest.raises(UsageError):
        ws.add("Ok", priority="urgent")
    with pytest.raises(ChantError) as err:
        ws.add("Ok", depends_on=["nope"])
    assert err.value.code == "not_found"


def test_complete_writes_only_status_and_completed_at(repo, ws):
    before = repo.read("2026-01-24-001-aaa")
    result = ws.complete("aaa")
    after = repo.read("2026-01-24-001-aaa")
    assert result["spec"]["status"] == "completed"
    assert after.replace("status: completed", "status: pending").startswith(before.split("---\n#")[0][:-1])
    assert "completed_at: " in after and after.endswith("---\n# A\n")


def test_the_table_is_reused_between_workspaces(repo, ws, monkeypatch):
    ws.list_specs()
    import chantlib.table as table_mod

    monkeypatch.setattr(table_mod, "parse_file", lambda *a: pytest.fail("nothing changed, nothing to parse"))
    assert len(repo.workspace().list_specs()["specs"]) == 2


def test_memory_only_workspace_writes_no_cache(repo):
    ws = repo.workspace(persist=False)
    repo.write("2026-01-24-001-aaa")
    assert len(ws.list_specs()["specs"]) == 1
    assert not os.path.exists(os.path.join(repo.root, ".chant", ".index", "table.marshal"))


# --- config values in the cached table, and the warnings of every operation ---------------------


def _config(repo, front: str) -> None:
    with open(os.path.join(repo.root, ".chant", "config.md"), "w") as fh:
        fh.write(f"---\n{front}\n---\n")


def test_integers_in_the_config_do_not_stop_the_table_from_being_saved(repo, monkeypatch):
    _config(repo, "scale:\n  locks:\n    ttl: 900\n  limits:\n    max_agents: 4\n    per_project: {auth: 3}")
    repo.write("2026-01-24-001-aaa")
    first = repo.workspace().list_specs()
    assert first["warnings"] == []
    assert os.path.isfile(os.path.join(repo.root, ".chant", ".index", "table.marshal"))
    import chantlib.table as table_mod

    monkeypatch.setattr(table_mod, "parse_file", lambda *a: pytest.fail("the table was saved: nothing to parse"))
    ws = repo.workspace()
    assert [s["id"] for s in ws.list_specs()["specs"]] == ["2026-01-24-001-aaa"]
    assert ws.config.lock_ttl == 900 and ws.config.get("scale.limits.per_project") == {"auth": 3}
    assert type(ws.config.get("scale.limits.max_agents")) is int  # plain, as the cache stores it


def test_the_table_is_saved_whatever_a_cached_fact_holds(repo):
    """A value marshal cannot store stays out of the file; the rest is saved."""
    from chantlib.spec import RawInt
    from chantlib.table import SpecTable

    repo.write("2026-01-24-001-aaa")
    ws = repo.workspace()
    ws.refresh()
    ws.table.extra["odd"] = (RawInt(7, "07"), object())
    ws.table.save()
    assert ws.table.warnings == []
    again = SpecTable(ws.store, ws.cache_dir)
    again.load()
    assert list(again.rows) == ["specs/2026-01-24-001-aaa.md"] and "odd" not in again.extra


def _unsavable(repo) -> None:
    """The table's file is a folder: every save of the table fails."""
    os.makedirs(os.path.join(repo.root, ".chant", ".index", "table.marshal"), exist_ok=True)


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("list", {}), ("show", {"spec": "aaa"}), ("search", {"q": "status:pending"}), ("lint", {}), ("status", {}),
        ("add", {"title": "New"}), ("lock_acquire", {"spec": "aaa", "owner": "me"}), ("lock_status", {"spec": "aaa"}),
        ("queue_next", {}), ("queue_list", {}), ("queue_claim", {"owner": "me"}), ("complete", {"spec": "aaa"}),
        ("index_status", {}), ("index_rebuild", {}),
    ],
)
def test_every_operation_reports_the_warnings_of_its_run(repo, name, params):
    repo.write("2026-01-24-001-aaa", "status: pending", "# A\n")
    _unsavable(repo)
    result = ops.dispatch(repo.workspace(), name, params)
    assert [w for w in result["warnings"] if w.startswith("cannot save the spec table")], result.get("warnings")


def test_a_result_carries_state_warnings_and_run_warnings_once(repo):
    repo.write("2026-01-24-001-aaa")
    repo.write("2026-01-24-002-bad", raw="---\nstatus: [\n---\n# Broken\n")
    _unsavable(repo)
    ws = repo.workspace()
    first = ws.show("aaa")["warnings"]
    assert [w.split(":")[0] for w in first] == ["cannot save the spec table in " + ws.cache_dir, "skipping .chant/specs/2026-01-24-002-bad.md"]
    second = ws.queue_next()["warnings"]  # the save failed once; the broken file is still there
    assert second == [first[1]]
    assert ops.dispatch(ws, "hello", {})["warnings"] == []  # reads no spec: nothing to say about them


def test_ids_of_files_that_do_not_parse_resolve(repo):
    """A broken file exists: naming it is never "not found"; what needs its YAML says why."""
    from chantlib.errors import SpecParseError

    repo.write("2026-01-24-001-bad", raw="---\nstatus: [\n---\n# Broken\n")
    ws = repo.workspace()
    assert ws.show("bad")["error"].startswith("invalid YAML in frontmatter at line ")
    added = ws.add("After the repair", depends_on=["bad"])
    assert ws.show(added["id"])["depends_on"] == ["2026-01-24-001-bad"]
    with pytest.raises(SpecParseError) as err:
        ws.complete("bad")
    assert err.value.message.startswith("cannot edit 2026-01-24-001-bad: invalid YAML in frontmatter at line ")
    assert (err.value.exit_code, err.value.http_status) == (1, 422)
    assert ws.lock_acquire("bad", owner="fixer")["spec"] == "2026-01-24-001-bad"
