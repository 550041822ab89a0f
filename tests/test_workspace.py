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
        "index_status": {},
    }
    for name, params in calls.items():
        result = ops.dispatch(ws, name, params)
        json.dumps(result)  # plain data
    assert set(calls) | {"add", "lock_acquire", "lock_release", "lock_renew", "queue_claim", "complete",
                         "index_rebuild", "daemon_status"} == set(ops.OPS)


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
