"""The real `chant` command in a subprocess: output, exit codes, and every kind of bad input."""

from __future__ import annotations

import json
import os
import re
import shutil

import pytest

from .support import run_chant


def no_traceback(result) -> None:
    assert "Traceback" not in result.err, result.err
    assert "Traceback" not in result.out, result.out


@pytest.fixture
def filled(repo):
    repo.write("2026-01-24-001-aaa", "type: code\nstatus: completed", "# First done\n")
    repo.write("2026-01-24-002-bbb", "type: code\nstatus: pending\nlabels: [bug]", "# Fix the bug\n")
    repo.write("2026-01-24-003-ccc", "type: code\nstatus: pending\ndepends_on: [2026-01-24-002-bbb]", "# After the bug\n")
    repo.write("2026-01-24-004-ddd", "type: task\nstatus: in_progress\nlabels: [docs]", "# Docs work\n")
    repo.write("2026-01-24-005-eee", "type: code\nstatus: cancelled", "# Dropped\n")
    repo.write(
        "2026-01-24-006-fff",
        "status: pending\napproval: {required: true, status: pending}",
        "# Needs a yes\n",
    )
    return repo


def test_init_creates_the_layout(tmp_path):
    target = tmp_path / "fresh"
    target.mkdir()
    r = run_chant(["init"], target)
    assert r.code == 0 and "Initialized" in r.out
    for part in ("specs", "archive", "config.md", ".gitignore"):
        assert (target / ".chant" / part).exists()
    assert ".locks/" in (target / ".chant" / ".gitignore").read_text()
    again = run_chant(["init"], target)
    assert again.code == 0 and "already exists" in again.err


def test_init_again_completes_an_older_gitignore_and_keeps_its_lines(tmp_path):
    target = tmp_path / "old"
    (target / ".chant").mkdir(parents=True)
    (target / ".chant" / ".gitignore").write_text("# mine\nscratch/\n.locks/")  # no final newline
    assert run_chant(["init"], target).code == 0
    text = (target / ".chant" / ".gitignore").read_text()
    assert text.startswith("# mine\nscratch/\n.locks/\n")
    lines = text.splitlines()
    assert lines.count(".locks/") == 1 and "daemon.json" in lines and "daemon.sock" in lines
    assert run_chant(["init"], target).code == 0
    assert (target / ".chant" / ".gitignore").read_text() == text  # nothing more to add


def test_list_prints_upstream_lines(filled, chant):
    r = chant("list")
    assert r.code == 0, r
    assert r.out.splitlines() == [
        "2026-01-24-001-aaa ● First done",
        "2026-01-24-002-bbb ○ Fix the bug",
        "2026-01-24-003-ccc ⊗ After the bug",
        "2026-01-24-004-ddd ◐ Docs work",
        "2026-01-24-006-fff ⊗ Needs a yes [needs approval]",
    ]
    assert r.err == ""


def test_list_filters(filled, chant):
    assert chant("list", "--ready").out.split()[0] == "2026-01-24-002-bbb"
    assert chant("list", "--ready", "--count").out == "1\n"
    assert chant("list", "--status", "blocked", "--count").out == "2\n"
    assert chant("list", "--status", "cancelled").out.startswith("2026-01-24-005-eee ✓")
    assert chant("list", "--label", "docs", "--label", "bug", "--count").out == "2\n"
    assert chant("list", "--type", "task", "--count").out == "1\n"
    data = json.loads(chant("list", "--ready", "--json").out)
    assert data[0]["id"] == "2026-01-24-002-bbb" and data[0]["ready"] is True and data[0]["labels"] == ["bug"]
    empty = chant("list", "--project", "nope")
    assert empty.code == 0 and empty.out == "" and "No specs match." in empty.err


def test_invalid_status_filter(filled, chant):
    r = chant("list", "--status", "bogus")
    assert r.code == 2 and r.out == ""
    assert r.err == (
        "error: list: parameter 'status' must be one of pending, ready, blocked, in_progress, paused, completed, "
        "failed, needs_attention, cancelled, got 'bogus'\n"
    )
    no_traceback(r)


def test_status_filters_take_every_spelling_of_a_status(filled, chant):
    from chantlib.values import KNOWN_STATUSES, STATUS_FILTERS

    assert set(STATUS_FILTERS) == set(KNOWN_STATUSES) | {"ready"}
    expected = chant("list", "--status", "in_progress", "--count")
    assert expected.code == 0 and expected.out == "1\n"
    for spelling in ("in-progress", "inprogress", "In_Progress"):
        r = chant("list", "--status", spelling, "--count")
        assert (r.code, r.out) == (0, "1\n"), spelling


def test_show_and_partial_ids(filled, chant):
    r = chant("show", "ccc")
    assert r.code == 0
    assert r.out.splitlines()[:4] == [
        "2026-01-24-003-ccc ⊗ After the bug",
        "Status:     pending (blocked)",
        "Type:       code",
        "Depends on: 2026-01-24-002-bbb (pending)",
    ]
    data = json.loads(chant("show", "003-ccc", "--json").out)
    assert data["id"] == "2026-01-24-003-ccc" and data["blocked"] is True
    assert data["frontmatter"] == {"type": "code", "status": "pending", "depends_on": ["2026-01-24-002-bbb"]}
    amb = chant("show", "2026-01-24")
    assert amb.code == 2 and amb.err.startswith("error: Ambiguous spec ID '2026-01-24'. Matches: 2026-01-24-001-aaa")
    missing = chant("show", "zzzzzz")
    assert missing.code == 4 and missing.err == "error: Spec not found: zzzzzz\n"
    no_traceback(amb)


def test_search(filled, chant):
    r = chant("search", "label:bug OR label:docs")
    assert r.code == 0
    assert r.out.splitlines() == ["2026-01-24-002-bbb ○ Fix the bug", "2026-01-24-004-ddd ◐ Docs work"]
    assert r.err == 'Found 2 spec(s) matching "label:bug OR label:docs"\n'
    data = json.loads(chant("search", "bug", "--json", "--limit", "1").out)
    assert data["total"] == 2 and len(data["specs"]) == 1


@pytest.mark.parametrize("query", ["(unclosed", "status:", "foo:bar", "created:notadate", 'a "b'])
def test_bad_query_is_one_line_and_exit_2(filled, chant, query):
    r = chant("search", query)
    assert r.code == 2 and r.out == ""
    assert len(r.err.splitlines()) == 1 and r.err.startswith("error: Invalid query: ")
    no_traceback(r)


def test_broken_spec_warns_and_the_rest_loads(filled, chant):
    filled.write("2026-01-24-007-bad", raw="---\nstatus: [pending\n---\n# Broken\n")
    filled.write("2026-01-24-008-bin", raw="")
    with open(filled.path("2026-01-24-009-enc"), "wb") as fh:
        fh.write(b"---\nstatus: pending\n---\n# caf\xe9\n")
    r = chant("list")
    assert r.code == 0
    assert len(r.out.splitlines()) == 6  # the five good ones and the empty file (no frontmatter: pending, no title)
    warnings = r.err.splitlines()
    assert len(warnings) == 2
    assert warnings[0].startswith("warning: skipping .chant/specs/2026-01-24-007-bad.md: invalid YAML in frontmatter at line")
    assert warnings[1] == "warning: skipping .chant/specs/2026-01-24-009-enc.md: file is not valid UTF-8 (byte offset 29)"
    lint = chant("lint")
    assert lint.code == 1
    assert "✗ 2026-01-24-007-bad: [parse] invalid YAML" in lint.out
    shown = chant("show", "007-bad")
    assert shown.code == 0 and "Error:" in shown.out
    for r in (lint, shown):
        no_traceback(r)


def test_lint_json_shape_and_exit_codes(filled, chant):
    ok = chant("lint", "--json")
    data = json.loads(ok.out)
    assert set(data) == {"diagnostics", "passed", "warned", "failed", "total"}
    assert ok.code == 0 and data["total"] == 6
    filled.write("2026-01-24-010-xxx", "status: pending\ndepends_on: [2026-01-01-001-nope]", "no title here\n")
    bad = chant("lint", "--json")
    data = json.loads(bad.out)
    assert bad.code == 1
    rules = {(d["spec_id"], d["rule"], d["severity"]) for d in data["diagnostics"]}
    assert ("2026-01-24-010-xxx", "title", "error") in rules
    assert ("2026-01-24-010-xxx", "dependency", "error") in rules


def test_status(filled, chant):
    r = chant("status")
    assert r.code == 0
    assert "  Pending:     3\n  Ready:       1\n  In Progress: 1\n" in r.out
    assert chant("status", "--brief").out == "chant: 1 done, 1 running, 1 ready\n"
    data = json.loads(chant("status", "--json").out)
    assert data["counts"] == {"pending": 3, "in_progress": 1, "paused": 0, "completed": 1, "failed": 0,
                              "blocked": 0, "ready": 1}
    assert data["ready"] == [{"id": "2026-01-24-002-bbb", "title": "Fix the bug"}]


def test_add_creates_a_spec_with_the_next_id(filled, chant):
    r = chant("add", "Write the daemon", "--label", "daemon", "--criterion", "It starts", "--priority", "high",
              "--depends-on", "bbb")
    assert r.code == 0, r
    spec_id = r.out.strip()
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}-001-[0-9a-z]{3}", spec_id)
    text = filled.read(spec_id)
    assert text.startswith("---\ntype: code\nstatus: pending\npriority: high\nlabels:\n- daemon\n"
                           "depends_on:\n- 2026-01-24-002-bbb\n---\n# Write the daemon\n")
    assert "- [ ] It starts\n" in text
    second = chant("add", "Another one")
    assert second.out.strip().split("-")[3] == "002"
    bad = chant("add", "   ")
    assert bad.code == 2 and bad.err == "error: add: parameter 'title' must be one line of text, got '   '\n"


def test_locks_from_the_cli(filled, chant):
    r = chant("lock", "acquire", "bbb", "--ttl", "60")
    assert r.code == 0 and r.out.startswith("Locked 2026-01-24-002-bbb (token 1, owner tester@test, until ")
    again = chant("lock", "acquire", "bbb")  # same owner: idempotent
    assert again.code == 0 and "token 1," in again.out
    other = chant("lock", "acquire", "bbb", env={"CHANT_OWNER": "other@host"})
    assert other.code == 3 and other.err.startswith("error: Spec 2026-01-24-002-bbb is already locked by tester@test")
    status = chant("lock", "status", "bbb", "--json")
    assert json.loads(status.out)["locked"] is True
    listed = chant("lock", "list", "--json")
    assert [lease["spec"] for lease in json.loads(listed.out)] == ["2026-01-24-002-bbb"]
    assert chant("list", "--ready", "--count").out == "1\n"  # a lease does not change readiness...
    assert chant("queue", "next").code == 5  # ...but it takes the spec out of the queue
    stale = chant("lock", "release", "bbb", "--token", "99")
    assert stale.code == 3 and "stale token" in stale.err
    not_mine = chant("lock", "release", "bbb", env={"CHANT_OWNER": "other@host"})
    assert not_mine.code == 3 and "locked by tester@test, not other@host" in not_mine.err
    renew = chant("lock", "renew", "bbb", "--ttl", "120", "--token", "1")
    assert renew.code == 0 and renew.out.startswith("Renewed 2026-01-24-002-bbb (token 1,")
    released = chant("lock", "release", "bbb")
    assert released.code == 0 and released.out == "Released 2026-01-24-002-bbb (token 1)\n"
    gone = chant("lock", "release", "bbb")
    assert gone.code == 4 and gone.err == "error: Spec 2026-01-24-002-bbb is not locked\n"
    forced = chant("lock", "acquire", "bbb", "--force", env={"CHANT_OWNER": "x@y"})
    assert "token 2," in forced.out
    assert chant("lock", "acquire", "nope").code == 4
    empty = chant("lock", "list")
    assert empty.code == 0


def test_queue_next_and_claim(filled, chant):
    nxt = chant("queue", "next")
    assert nxt.code == 0 and nxt.out == "2026-01-24-002-bbb ○ Fix the bug\n"
    claim = chant("queue", "next", "--claim", "--owner", "worker-1", "--json")
    data = json.loads(claim.out)
    assert data["spec"]["id"] == "2026-01-24-002-bbb" and data["lease"]["owner"] == "worker-1"
    empty = chant("queue", "next", "--claim")
    assert empty.code == 5 and empty.err == "No ready specs in the queue.\n"  # the words of `queue next`
    assert chant("queue", "list").err == "The queue is empty.\n"
    done = chant("complete", "bbb", "--token", str(data["lease"]["token"]))
    assert done.code == 0, done
    assert "status: completed\n" in filled.read("2026-01-24-002-bbb")
    assert chant("queue", "next").out.startswith("2026-01-24-003-ccc")  # its dependent is ready now


def test_complete_is_fenced(filled, chant):
    claim = json.loads(chant("queue", "next", "--claim", "--owner", "w1", "--json").out)
    chant("lock", "acquire", "bbb", "--force", env={"CHANT_OWNER": "w2"})
    late = chant("complete", "bbb", "--token", str(claim["lease"]["token"]))
    assert late.code == 3 and "does not hold a live lease" in late.err
    assert "status: pending" in filled.read("2026-01-24-002-bbb")
    other = chant("complete", "bbb", env={"CHANT_OWNER": "w3"})
    assert other.code == 3 and "locked by w2" in other.err


def test_index_commands(filled, chant):
    rebuilt = chant("index", "rebuild")
    assert rebuilt.code == 0 and rebuilt.out.startswith("Indexed 6 spec(s) in ")
    status = json.loads(chant("index", "status", "--json").out)
    assert status["documents"] == 6 and status["stale"] == 0 and status["size_bytes"] > 0


def test_direct_flag_before_or_after_the_command(filled, chant):
    assert chant("--direct", "list", "--count").out == "5\n"
    assert chant("list", "--direct", "--count").out == "5\n"
    assert chant("lock", "list", "--direct").code == 0


def test_usage_errors_exit_2(filled, chant):
    for args in (["lsit"], ["lock"], ["lock", "grab", "x"], ["list", "--bogus"], ["search"], ["queue", "next", "--ttl", "x"]):
        r = chant(*args)
        assert r.code == 2, (args, r)
        assert r.err.startswith("usage:") or r.err.startswith("error:"), r
        no_traceback(r)
    assert chant().code == 2


def test_outside_a_repository(tmp_path):
    r = run_chant(["list"], tmp_path)
    assert r.code == 4
    assert r.err == f"error: No .chant/ folder in {tmp_path} or any parent; run `chant init` first\n"


def test_works_from_a_subfolder_and_with_C(filled, chant, tmp_path):
    sub = os.path.join(filled.root, "src", "deep")
    os.makedirs(sub)
    assert chant("list", "--count", cwd=sub).out == "5\n"
    assert run_chant(["-C", filled.root, "list", "--count"], tmp_path).out == "5\n"


def test_unwritable_places_give_one_clear_line(filled, chant):
    # the index folder cannot be created: reads still work, with one warning
    shutil.rmtree(os.path.join(filled.root, ".chant", ".index"), ignore_errors=True)
    with open(os.path.join(filled.root, ".chant", ".index"), "w") as fh:
        fh.write("not a folder")
    r = chant("list", "--count")
    assert r.code == 0 and r.out == "5\n"
    assert r.err.startswith("warning: cannot write ") and "running without a cache" in r.err
    s = chant("search", "bug")
    assert s.code == 0 and "2026-01-24-002-bbb" in s.out
    # the specs folder is not a folder: add fails cleanly
    specs = os.path.join(filled.root, ".chant", "specs")
    shutil.rmtree(specs)
    with open(specs, "w") as fh:
        fh.write("oops")
    a = chant("add", "Cannot be written")
    assert a.code == 1 and a.err.startswith("error: cannot ")
    no_traceback(a)
    # the locks folder is a file: lock commands fail cleanly
    with open(os.path.join(filled.root, ".chant", ".locks"), "w") as fh:
        fh.write("oops")
    lk = chant("lock", "list")
    assert lk.code == 1 and lk.err.startswith("error: cannot ")
    no_traceback(lk)


def test_broken_config_warns_and_uses_defaults(filled, chant):
    with open(os.path.join(filled.root, ".chant", "config.md"), "w") as fh:
        fh.write("---\nproject: [broken\n---\n")
    r = chant("list", "--count")
    assert r.code == 0 and r.out == "5\n"
    assert "config.md: invalid YAML in frontmatter at line" in r.err and "using defaults" in r.err


def test_bad_config_value_is_a_clear_error(filled, chant):
    with open(os.path.join(filled.root, ".chant", "config.md"), "w") as fh:
        fh.write("---\nscale:\n  locks:\n    ttl: soon\n---\n")
    r = chant("lock", "acquire", "bbb")
    assert r.code == 2 and r.err == "error: config scale.locks.ttl: expected float, got 'soon'\n"


def test_output_to_a_closed_pipe_is_quiet(filled, tmp_path):
    import subprocess
    import sys

    for n in range(300):
        filled.write(f"2026-02-01-{n:03x}-zzz", "status: pending")
    proc = subprocess.run(
        f"{sys.executable} -m chant_cli list | head -1", shell=True, cwd=filled.root, capture_output=True, text=True
    )
    assert proc.stdout.count("\n") == 1
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr


def test_an_integer_in_the_config_keeps_the_spec_table_saved(filled, chant):
    with open(os.path.join(filled.root, ".chant", "config.md"), "w") as fh:
        fh.write("---\nscale:\n  locks:\n    ttl: 900\n---\n")
    table = os.path.join(filled.root, ".chant", ".index", "table.marshal")
    shutil.rmtree(os.path.dirname(table), ignore_errors=True)
    r = chant("list", "--count")
    assert (r.code, r.out, r.err) == (0, "5\n", "")
    assert os.path.isfile(table)
    lease = chant("lock", "acquire", "bbb", "--json")
    assert lease.code == 0 and lease.err == ""
    data = json.loads(lease.out)
    assert "warnings" not in data  # none to report: the object keeps its shape
    assert data["expires_at"] > data["acquired_at"]


def test_warnings_reach_stderr_and_the_json_object(filled, chant):
    table = os.path.join(filled.root, ".chant", ".index", "table.marshal")
    os.makedirs(table, exist_ok=True)  # a folder where the file goes: every save fails
    want = "warning: cannot save the spec table in "
    for args in (["show", "bbb"], ["queue", "next"], ["lock", "acquire", "bbb"], ["status", "--brief"]):
        r = chant(*args)
        assert r.code == 0, (args, r)
        assert r.err.startswith(want), (args, r.err)
        no_traceback(r)
    shown = chant("show", "bbb", "--json")
    assert shown.err.startswith(want)
    assert [w for w in json.loads(shown.out)["warnings"] if w.startswith("cannot save the spec table")]
    listed = chant("list", "--json")  # an array stays an array: the warning is on stderr only
    assert isinstance(json.loads(listed.out), list) and listed.err.startswith(want)
    linted = json.loads(chant("lint", "--json").out)
    assert linted["warnings"][0].startswith("cannot save the spec table") and linted["failed"] == 0


def test_a_spec_with_broken_yaml_cannot_be_completed_and_says_why(filled, chant):
    broken = "---\nstatus: [pending\n---\n# Broken\n"
    filled.write("2026-01-24-007-bad", raw=broken)
    r = chant("complete", "007-bad")
    assert r.code == 1 and r.out == ""
    assert r.err.startswith("error: cannot edit 2026-01-24-007-bad: invalid YAML in frontmatter at line ")
    assert len(r.err.splitlines()) == 1, r.err
    no_traceback(r)
    assert filled.read("2026-01-24-007-bad") == broken  # untouched
    assert chant("complete", "2026-01-24-007-bad", "--failed").code == 1
    # a lease on it can be taken, seen and given back while someone repairs the file
    assert chant("lock", "acquire", "007-bad").out.startswith("Locked 2026-01-24-007-bad (token ")
    assert json.loads(chant("lock", "status", "bad", "--json").out)["locked"] is True
    assert chant("lock", "release", "bad").code == 0


def test_empty_and_frontmatter_less_files_are_linted_and_never_claimed(repo, chant):
    repo.write("2026-01-24-001-emp", raw="")
    repo.write("2026-01-24-002-spc", raw=" \n\n")
    repo.write("2026-01-24-003-nof", raw="# A plain note\n\nNo frontmatter at all.\n")
    lint = chant("lint", "--json")
    assert lint.code == 1
    found = {(d["spec_id"], d["rule"], d["severity"]) for d in json.loads(lint.out)["diagnostics"]}
    assert found == {
        ("2026-01-24-001-emp", "empty", "error"), ("2026-01-24-002-spc", "empty", "error"),
        ("2026-01-24-003-nof", "frontmatter", "warning"),
    }
    assert "✗ 2026-01-24-001-emp: [empty] File is empty" in chant("lint").out
    # the note without frontmatter is still work; the empty files never are
    listed = chant("list", "--ready")
    assert listed.out.splitlines() == [
        "2026-01-24-001-emp ○ (no title) [not queued: lint error]",
        "2026-01-24-002-spc ○ (no title) [not queued: lint error]",
        "2026-01-24-003-nof ○ A plain note",
    ]
    shown = chant("show", "emp")
    assert "Queue:  held back by lint errors (empty); see `chant lint`\n" in shown.out
    queued = chant("queue", "list")
    assert queued.out == "2026-01-24-003-nof ○ A plain note\n"
    assert queued.err == "(2 ready specs held back by lint errors; see `chant lint`)\n"
    claim = chant("queue", "next", "--claim")
    assert claim.code == 0 and claim.out.startswith("2026-01-24-003-nof ○ A plain note\nLease: token 1,")
    held = "No ready specs in the queue (2 ready specs held back by lint errors; see `chant lint`).\n"
    for args in (["queue", "next"], ["queue", "next", "--claim"], ["queue", "next", "--json"]):
        r = chant(*args)
        assert (r.code, r.err) == (5, held), (args, r)
    assert chant("queue", "list").err == "The queue is empty (2 ready specs held back by lint errors; see `chant lint`).\n"


def test_an_empty_queue_says_the_same_with_and_without_claim(filled, chant):
    for filters, words in (
        ([], "No ready specs in the queue.\n"),
        (["--project", "nope"], "No ready specs in the queue for project nope.\n"),
        (["--label", "docs", "--label", "x"], "No ready specs in the queue for labels docs, x.\n"),
    ):
        if not filters:
            chant("lock", "acquire", "bbb")  # the one ready spec, leased: nothing left
        peek, claim = chant("queue", "next", *filters), chant("queue", "next", "--claim", *filters)
        assert (peek.code, peek.out, peek.err) == (5, "", words)
        assert (claim.code, claim.out, claim.err) == (5, "", words)
        for claiming in ([], ["--claim"]):  # --json: `null` on stdout either way
            r = chant("queue", "next", "--json", *claiming, *filters)
            assert (r.code, r.out, r.err) == (5, "null\n", words), claiming


def test_version(tmp_path):
    import sys

    from chantlib._version import VERSION

    r = run_chant(["--version"], tmp_path)  # anywhere, no repository needed
    assert (r.code, r.out, r.err) == (0, f"chant {VERSION}\n", "")
    import subprocess

    d = subprocess.run([sys.executable, "-m", "chantd", "--version"], cwd=tmp_path, capture_output=True, text=True,
                       timeout=60)
    assert (d.returncode, d.stdout, d.stderr) == (0, f"chantd {VERSION}\n", "")


def test_a_query_may_start_with_a_dash_and_span_several_words(filled, chant):
    want = chant("search", "--", "NOT status:completed")
    assert want.code == 0 and len(want.out.splitlines()) == 5
    for args in (
        ["-status:completed"],
        ["--", "-status:completed"],
        ["-status:completed", "--limit", "10"],
        ["--limit", "10", "-status:completed"],
        ["--limit=10", "-status:completed", "--direct"],
        ["--lim", "10", "-status:completed"],  # an abbreviated option keeps its value
    ):
        r = chant("search", *args)
        assert (r.code, r.out) == (0, want.out), (args, r)
        assert r.err == 'Found 5 spec(s) matching "-status:completed"\n', (args, r)
    words = chant("search", "label:bug", "-status:completed", "--json")
    assert words.code == 0
    data = json.loads(words.out)
    assert data["query"] == "label:bug -status:completed" and [s["id"] for s in data["specs"]] == ["2026-01-24-002-bbb"]
    assert chant("search", "-h").out.startswith("usage: chant search")
    bare = chant("search")
    assert bare.code == 2 and "query" in bare.err
    assert chant("search", "--limit").code == 2


def test_daemon_stop_refuses_a_negative_timeout_and_generate_checks_its_numbers(repo, chant, tmp_path):
    bad = chant("daemon", "stop", "--timeout", "-1")
    assert bad.code == 2 and bad.err.startswith("error: argument --timeout: must be zero or more seconds")
    from chantlib.generate import main as generate_main

    with pytest.raises(SystemExit) as exited:
        generate_main([str(tmp_path / "g"), "--archive-fraction", "2"])
    assert exited.value.code == 2 and not (tmp_path / "g").exists()
