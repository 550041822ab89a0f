"""Tests over the real spec corpus (two snapshots of lex00/chant's ``.chant/``).

Nobody here shaped these files, so they check the parser, the ready/blocked rules, lint,
the order and search on real data. Every expectation below was derived by reading the files
and applying docs/chant-format.md by hand, not by copying the code's output.

The corpus lives at ``<project root>/../shared/corpus`` (override: ``CHANT_CORPUS``); the
module is skipped when it is absent. The corpus is read-only: tests work on copies.
"""

from __future__ import annotations

import json
import os
import re

import pytest

from .support import CORPUS, copy_corpus, run_chant

JAN24 = "lex00-chant-2026-01-24"
FEB05 = "lex00-chant-2026-02-05"
SNAPSHOTS = (JAN24, FEB05)

if not os.path.isdir(CORPUS):
    pytest.skip(
        f"real spec corpus not found at {CORPUS} (set CHANT_CORPUS to the folder holding {JAN24}/ and {FEB05}/)",
        allow_module_level=True,
    )
_missing = [s for s in SNAPSHOTS if not os.path.isdir(os.path.join(CORPUS, s, ".chant"))]
if _missing:
    pytest.skip(
        f"corpus at {CORPUS} lacks {', '.join(f'{m}/.chant' for m in _missing)}",
        allow_module_level=True,
    )

from chantlib.spec import Spec  # noqa: E402
from chantlib.workspace import Workspace  # noqa: E402

# --- helpers that do not use the code under test ----------------------------------------------


def spec_files(snapshot: str) -> list[tuple[str, str, bool]]:
    """(spec ID, absolute path, archived) for every spec file of a snapshot, found by walking."""
    chant = os.path.join(CORPUS, snapshot, ".chant")
    out = []
    for sub, archived in (("specs", False), ("archive", True)):
        top = os.path.join(chant, sub)
        for dirpath, _dirs, files in os.walk(top):
            for name in files:
                if name.endswith(".md"):
                    out.append((name[:-3], os.path.join(dirpath, name), archived))
    return sorted(out)


def chant_order(spec_id: str) -> tuple:
    """§5 by hand: date, base-36 sequence as a number, suffix, member numbers as numbers."""
    m = re.fullmatch(r"(\d{4}-\d{2}-\d{2})-([0-9a-z]{3})-([0-9a-z]{3})((?:\.\d+)*)", spec_id)
    assert m, spec_id
    members = tuple(int(n) for n in m.group(4).split(".")[1:])
    return (m.group(1), int(m.group(2), 36), m.group(3), members)


@pytest.fixture(scope="module")
def copies(tmp_path_factory) -> dict[str, str]:
    """One writable copy of each snapshot for the module's read-only checks."""
    base = tmp_path_factory.mktemp("corpus")
    return {s: copy_corpus(s, base) for s in SNAPSHOTS}


def run_cli(args, cwd):
    r = run_chant(args, cwd)
    assert "Traceback" not in r.err, r.err
    return r


def first_tokens(stdout: str) -> list[str]:
    return [line.split()[0] for line in stdout.splitlines() if line.strip()]


# --- the corpus is what we think it is --------------------------------------------------------


def test_corpus_sizes():
    jan = spec_files(JAN24)
    feb = spec_files(FEB05)
    assert (sum(not a for *_, a in jan), sum(a for *_, a in jan)) == (77, 0)
    assert (sum(not a for *_, a in feb), sum(a for *_, a in feb)) == (3, 584)


# --- parse, render, edit: every file of both snapshots ----------------------------------------


def _parsed_files(snapshot, problems):
    """(path, bytes, text, spec) of each spec file of a snapshot that parses; the others go to ``problems``."""
    for spec_id, path, _archived in spec_files(snapshot):
        with open(path, "rb") as fh:
            raw = fh.read()
        text = raw.decode("utf-8")
        spec = Spec.parse(spec_id, text)
        if spec.error is not None:
            problems.append(f"{path}: error {spec.error}")
            continue
        yield path, raw, text, spec


@pytest.mark.parametrize("snapshot", SNAPSHOTS)
def test_every_file_parses_and_renders_byte_identical(snapshot):
    problems = []
    for path, raw, text, spec in _parsed_files(snapshot, problems):
        if not spec.has_frontmatter or "status" not in spec.frontmatter:
            problems.append(f"{path}: no frontmatter/status seen")
        rendered = spec.render()
        if rendered != text or rendered.encode("utf-8") != raw:
            problems.append(f"{path}: render() differs from the file")
    assert not problems, "\n".join(problems)


def _canon(value):
    """A value with its types spelt out (an int written ``0123`` keeps its text)."""
    if isinstance(value, dict):
        return ("map", [(k, _canon(v)) for k, v in value.items()])
    if isinstance(value, list):
        return ("seq", [_canon(v) for v in value])
    return (type(value).__name__, value, getattr(value, "raw", None))


def _same_values(before: dict, after: dict, skip: str) -> list[str]:
    bad = []
    for key, value in before.items():
        if key == skip:
            continue
        if key not in after:
            bad.append(f"lost key {key!r}")
        elif _canon(after[key]) != _canon(value):
            bad.append(f"{key!r}: {value!r} became {after[key]!r}")
    return bad


@pytest.mark.parametrize("snapshot", SNAPSHOTS)
def test_editing_one_key_keeps_everything_else(snapshot):
    problems = []
    for path, raw, text, spec in _parsed_files(snapshot, problems):
        keys = list(spec.frontmatter)

        # status: every file has it, written on one line
        original = spec.frontmatter["status"]
        new_status = "pending" if original == "completed" else "completed"
        changed = spec.with_value("status", new_status)
        why = []
        if changed.error is not None:
            why.append(f"edit broke the file: {changed.error}")
        else:
            if changed.frontmatter.get("status") != new_status:
                why.append(f"status reads back as {changed.frontmatter.get('status')!r}")
            if list(changed.frontmatter) != keys:
                why.append(f"key order {list(changed.frontmatter)} != {keys}")
            why += _same_values(spec.frontmatter, changed.frontmatter, "status")
            if changed.body != spec.body:
                why.append("body changed")
            old_lines = text.splitlines(keepends=True)
            new_lines = changed.render().splitlines(keepends=True)
            diff = [i for i, (a, b) in enumerate(zip(old_lines, new_lines, strict=False)) if a != b]
            if len(old_lines) != len(new_lines) or len(diff) != 1 or not old_lines[diff[0]].startswith("status:"):
                why.append(f"more than the status line changed (lines {diff})")
            back = changed.with_value("status", original)
            if back.render() != text or back.render().encode("utf-8") != raw:
                why.append("setting status back does not give the original bytes")

        # a list key: labels (present in some files, absent in most)
        had_labels = "labels" in spec.frontmatter
        labelled = spec.with_value("labels", ["corpus-test", "x"])
        if labelled.error is not None:
            why.append(f"labels edit broke the file: {labelled.error}")
        else:
            if labelled.frontmatter.get("labels") != ["corpus-test", "x"]:
                why.append(f"labels read back as {labelled.frontmatter.get('labels')!r}")
            want_keys = keys if had_labels else keys + ["labels"]
            if list(labelled.frontmatter) != want_keys:
                why.append(f"key order after labels edit: {list(labelled.frontmatter)}")
            why += _same_values(spec.frontmatter, labelled.frontmatter, "labels")
            if labelled.body != spec.body:
                why.append("body changed by labels edit")
            if not had_labels and labelled.without("labels").render() != text:
                why.append("adding then removing labels does not give the original bytes")
        if why:
            problems.append(f"{path}: " + "; ".join(why))
    assert not problems, "\n".join(problems[:30]) + f"\n({len(problems)} files)"


# --- unquoted all-digit commit hashes ---------------------------------------------------------

# Found with grep: `commits` items written bare and made only of digits (YAML reads them as ints).
DIGIT_COMMITS = [
    (JAN24, "specs/2026-01-24-018-8db.md", "  - 3614866"),
    (JAN24, "specs/2026-01-24-01i-x6r.md", "  - 5636491"),
    (FEB05, "archive/2026-01-24/2026-01-24-018-8db.md", "  - 3614866"),
    (FEB05, "archive/2026-01-24/2026-01-24-01i-x6r.md", "  - 5636491"),
    (FEB05, "archive/2026-01-27/2026-01-27-004-t0x.md", "- 8988467"),
]


def test_digit_commit_list_is_complete():
    found = []
    for snapshot in SNAPSHOTS:
        for _id, path, _a in spec_files(snapshot):
            with open(path, encoding="utf-8") as fh:
                text = fh.read()
            front = text.split("\n---", 1)[0]
            m = re.search(r"^commits:[ \t]*\n((?:[ \t]*- .*\n)+)", front + "\n", re.M)
            if m:
                for line in m.group(1).splitlines():
                    if re.fullmatch(r"[ \t]*- \d+[ \t]*", line):
                        rel = os.path.relpath(path, os.path.join(CORPUS, snapshot, ".chant"))
                        found.append((snapshot, rel.replace(os.sep, "/"), line))
    assert sorted(found) == sorted(DIGIT_COMMITS)


@pytest.mark.parametrize(
    "snapshot,rel,line", DIGIT_COMMITS, ids=[f"{s[-10:]}:{r.rsplit('/', 1)[-1]}" for s, r, _ in DIGIT_COMMITS]
)
def test_unquoted_digit_commits_stay_strings(copies, snapshot, rel, line):
    written = line.strip()[2:]
    spec_id = rel.rsplit("/", 1)[-1][:-3]
    with open(os.path.join(copies[snapshot], ".chant", rel), encoding="utf-8") as fh:
        spec = Spec.parse(spec_id, fh.read())
    assert spec.commits == [written]
    ws = Workspace(copies[snapshot])
    ws.refresh()
    row = ws.table.row(rel)
    assert row.id == spec_id
    assert row.commits == (written,)
    assert all(type(c) is str for c in row.commits)
    assert ws.show(row.id)["commits"] == [written]


# --- lint -------------------------------------------------------------------------------------

# Checked by reading the files:
# - 00s-nzt: its body has the table row "| `{{spec.id}}` | Full spec ID | `2026-01-24-001-x7m` |"
#   (line 31, before any code fence) and 001-x7m is not its own ID: coupling warning.
# - 012-efg: `type: research`, no informed_by/origin (it has target_files): type warning.
#   (Its body names 013-e5s/014-sp3 at lines 125-126, but inside the fence opened at line 100,
#   which is never closed, so no coupling.)
# - 01i-x6r: line 50 "`rm .chant/specs/2026-01-24-01e-o0l.*.md`" is outside the fence at
#   lines 27-44: coupling warning naming 01e-o0l.
# - 01y-73b.2: depends_on 2026-01-24-01y-73b.1, and there is no such file: dependency error.
# Nothing else: documentation specs all have target_files, no spec has more than 10
# acceptance items (01l-ahr and 01r-ubw have 10) or more than 5 target_files (00t-6m6 has 4),
# no approval keys, every spec has a "# " title, the group 01e-o0l has members .1-.5; other IDs
# in bodies are the spec's own ID or sit inside code fences.
JAN24_DIAGNOSTICS = [
    ("2026-01-24-00s-nzt", "coupling", "warning", "2026-01-24-001-x7m"),
    ("2026-01-24-012-efg", "type", "warning", "informed_by"),
    ("2026-01-24-01i-x6r", "coupling", "warning", "2026-01-24-01e-o0l"),
    ("2026-01-24-01y-73b.2", "dependency", "error", "2026-01-24-01y-73b.1"),
]
LINT_KEYS = {"diagnostics", "passed", "warned", "failed", "total"}


def _check_lint(report: dict, snapshot: str) -> None:
    assert LINT_KEYS <= set(report)
    active = sum(not a for *_, a in spec_files(snapshot))
    assert report["total"] == active
    assert report["passed"] + report["warned"] + report["failed"] == report["total"]
    for d in report["diagnostics"]:
        assert set(d) == {"spec_id", "rule", "severity", "message", "suggestion"}, d
    got = [(d["spec_id"], d["rule"], d["severity"]) for d in report["diagnostics"]]
    if snapshot == JAN24:
        assert got == [e[:3] for e in JAN24_DIAGNOSTICS]
        for d, (*_, needle) in zip(report["diagnostics"], JAN24_DIAGNOSTICS, strict=True):
            assert needle in d["message"], d
        assert (report["passed"], report["warned"], report["failed"]) == (73, 3, 1)
    else:
        # the 3 active specs: `type: code`, `status: cancelled`, a title, nothing else
        assert got == []
        assert (report["passed"], report["warned"], report["failed"]) == (3, 0, 0)


@pytest.mark.parametrize("snapshot", SNAPSHOTS)
def test_lint_cli(copies, snapshot):
    proc = run_cli(["lint", "--json"], copies[snapshot])
    report = json.loads(proc.out)
    assert set(report) == LINT_KEYS
    _check_lint(report, snapshot)
    assert proc.code == (1 if snapshot == JAN24 else 0), proc


@pytest.mark.parametrize("snapshot", SNAPSHOTS)
def test_lint_workspace(copies, snapshot):
    report = Workspace(copies[snapshot]).lint()
    json.dumps(report)
    _check_lint(report, snapshot)


def test_lint_with_archive_runs(copies):
    report = Workspace(copies[FEB05]).lint(archive=True)
    assert report["total"] == 587
    assert report["passed"] + report["warned"] + report["failed"] == 587
    assert not [d for d in report["diagnostics"] if d["rule"] == "parse"]


# --- the ready set of lex00-chant-2026-01-24, from the rules (§4) -----------------------------

# Every one of the 77 specs, read by hand. Of the 77: 8 are pending (01f, 01g, 01h, 01k, 01l,
# 01m, 01s, 01t), 2 in_progress (the group 01e-o0l and 01y-73b.2), the rest completed. None is
# failed, none has an approval key, none of the pending ones is a member or has members, and
# only 01k-uln among them has depends_on. The archive is empty in this snapshot.
READY = {
    "2026-01-24-001-cxn": (False, "completed"),
    "2026-01-24-002-u0g": (False, "completed"),
    "2026-01-24-003-rvw": (False, "completed"),
    "2026-01-24-004-gh1": (False, "completed"),
    "2026-01-24-005-n95": (False, "completed"),
    "2026-01-24-006-e1j": (False, "completed"),
    "2026-01-24-007-hzq": (False, "completed"),
    "2026-01-24-008-19q": (False, "completed"),
    "2026-01-24-009-0mq": (False, "completed"),
    "2026-01-24-00a-f6z": (False, "completed"),
    "2026-01-24-00b-t2e": (False, "completed"),
    "2026-01-24-00c-u3c": (False, "completed"),
    "2026-01-24-00d-slz": (False, "completed"),
    "2026-01-24-00e-n1f": (False, "completed"),
    "2026-01-24-00f-025": (False, "completed"),
    "2026-01-24-00g-it2": (False, "completed"),
    "2026-01-24-00h-2sy": (False, "completed"),
    "2026-01-24-00i-x54": (False, "completed"),
    "2026-01-24-00j-tbt": (False, "completed"),
    "2026-01-24-00k-j8k": (False, "completed"),
    "2026-01-24-00l-8a2": (False, "completed"),
    "2026-01-24-00l-rws": (False, "completed"),
    "2026-01-24-00m-khh": (False, "completed (documentation)"),
    "2026-01-24-00n-1nl": (False, "completed (documentation)"),
    "2026-01-24-00o-6w7": (False, "completed (documentation)"),
    "2026-01-24-00p-21x": (False, "completed (documentation)"),
    "2026-01-24-00q-tvp": (False, "completed (documentation)"),
    "2026-01-24-00r-05p": (False, "completed (documentation)"),
    "2026-01-24-00s-nzt": (False, "completed (documentation)"),
    "2026-01-24-00t-6m6": (False, "completed (documentation)"),
    "2026-01-24-00u-5kn": (False, "completed"),
    "2026-01-24-00v-6zj": (False, "completed"),
    "2026-01-24-00w-fq0": (False, "completed (its dep 00v-6zj is completed, irrelevant)"),
    "2026-01-24-00x-1fz": (False, "completed (its dep 00v-6zj is completed, irrelevant)"),
    "2026-01-24-00y-ayy": (False, "completed"),
    "2026-01-24-00z-87n": (False, "completed"),
    "2026-01-24-010-zle": (False, "completed (deps 00v-6zj, 00x-1fz completed, irrelevant)"),
    "2026-01-24-011-sxz": (False, "completed"),
    "2026-01-24-012-efg": (False, "completed (research)"),
    "2026-01-24-013-e5s": (False, "completed (documentation)"),
    "2026-01-24-014-sp3": (False, "completed (documentation)"),
    "2026-01-24-015-a33": (False, "completed"),
    "2026-01-24-016-7e5": (False, "completed"),
    "2026-01-24-017-rnp": (False, "completed"),
    "2026-01-24-018-8db": (False, "completed"),
    "2026-01-24-019-ijh": (False, "completed"),
    "2026-01-24-01a-75r": (False, "completed"),
    "2026-01-24-01b-chy": (False, "completed"),
    "2026-01-24-01c-w2u": (False, "completed"),
    "2026-01-24-01d-0bp": (False, "completed (dep 01c-w2u completed, irrelevant)"),
    "2026-01-24-01e-o0l": (False, "in_progress (type: group, driver of .1-.5)"),
    "2026-01-24-01e-o0l.1": (False, "completed (member, no depends_on)"),
    "2026-01-24-01e-o0l.2": (False, "completed (member, depends on .1)"),
    "2026-01-24-01e-o0l.3": (False, "completed (member, depends on .2)"),
    "2026-01-24-01e-o0l.4": (False, "completed (member, depends on .3)"),
    "2026-01-24-01e-o0l.5": (False, "completed (member, depends on .4)"),
    "2026-01-24-01f-v1w": (True, "pending, no depends_on, no approval, not a member, no members"),
    "2026-01-24-01g-eil": (True, "pending, no depends_on, no approval, not a member, no members"),
    "2026-01-24-01h-76d": (True, "pending, no depends_on, no approval, not a member, no members"),
    "2026-01-24-01i-x6r": (False, "completed (dep 01c-w2u completed, irrelevant)"),
    "2026-01-24-01j-0o8": (False, "completed"),
    "2026-01-24-01k-uln": (False, "pending but depends on 01e-o0l which is in_progress"),
    "2026-01-24-01l-ahr": (True, "pending, no depends_on, no approval, not a member, no members"),
    "2026-01-24-01m-q7e": (True, "pending, no depends_on, no approval, not a member, no members"),
    "2026-01-24-01n-svn": (False, "completed"),
    "2026-01-24-01o-3fh": (False, "completed"),
    "2026-01-24-01p-cmz": (False, "completed"),
    "2026-01-24-01q-snf": (False, "completed"),
    "2026-01-24-01r-ubw": (False, "completed"),
    "2026-01-24-01s-nof": (True, "pending, no depends_on, no approval, not a member, no members"),
    "2026-01-24-01t-0p9": (True, "pending, no keys but type/status, body is only a title"),
    "2026-01-24-01u-2tj": (False, "completed"),
    "2026-01-24-01v-o4m": (False, "completed"),
    "2026-01-24-01w-c0d": (False, "completed"),
    "2026-01-24-01y-73b.2": (False, "in_progress; also depends on 01y-73b.1 which is missing"),
    "2026-01-24-01y-73b.3": (False, "completed (member of absent driver 01y-73b)"),
    "2026-01-24-01y-73b.4": (False, "completed (member of absent driver 01y-73b)"),
}
EXPECTED_READY = sorted((i for i, (ready, _why) in READY.items() if ready), key=chant_order)


@pytest.fixture(scope="module")
def jan_ws(copies):
    ws = Workspace(copies[JAN24])
    ws.refresh()  # read: a test may run first, or alone (pytest -n, -k)
    return ws


def test_ready_table_covers_every_spec():
    on_disk = {i for i, _p, _a in spec_files(JAN24)}
    assert set(READY) == on_disk
    assert EXPECTED_READY == [
        "2026-01-24-01f-v1w",
        "2026-01-24-01g-eil",
        "2026-01-24-01h-76d",
        "2026-01-24-01l-ahr",
        "2026-01-24-01m-q7e",
        "2026-01-24-01s-nof",
        "2026-01-24-01t-0p9",
    ]


def test_ready_set_in_chant_order(jan_ws):
    got = [s["id"] for s in jan_ws.list_specs(ready=True)["specs"]]
    extra = [
        f"{i}: expected not ready ({READY.get(i, (None, 'not in table'))[1]})" for i in got if i not in EXPECTED_READY
    ]
    missing = [f"{i}: expected ready ({READY[i][1]})" for i in EXPECTED_READY if i not in got]
    assert not extra and not missing, "\n".join(extra + missing)
    assert got == EXPECTED_READY


@pytest.mark.parametrize("spec_id", list(READY))
def test_ready_verdict(jan_ws, spec_id):
    expected, why = READY[spec_id]
    row = jan_ws.table.active[spec_id]
    assert jan_ws.table.graph.is_ready(row) is expected, f"{spec_id}: expected ready={expected} because {why}"
    assert jan_ws.show(spec_id)["ready"] is expected, f"{spec_id}: show() says otherwise; expected {expected}: {why}"


def test_blocked_and_pending_views(jan_ws):
    # §4: `blocked` = pending and blocked by the rules (01k-uln); `--status pending` shows the
    # pending specs that are not blocked, which here are exactly the ready ones.
    assert [s["id"] for s in jan_ws.list_specs(status="blocked")["specs"]] == ["2026-01-24-01k-uln"]
    assert [s["id"] for s in jan_ws.list_specs(status="pending")["specs"]] == EXPECTED_READY
    info = jan_ws.show("2026-01-24-01k-uln")
    assert [(b["kind"], b["detail"], b["status"]) for b in info["blocked_by"]] == [
        ("dependency", "2026-01-24-01e-o0l", "in_progress")
    ]
    assert jan_ws.show("2026-01-24-01y-73b.2")["blocked_by"] == [
        {"kind": "dependency", "detail": "2026-01-24-01y-73b.1", "status": "missing"}
    ]


def test_list_order_follows_chant_order(jan_ws):
    # §5: 00l-8a2 before 00l-rws (same sequence, suffix), 01e-o0l then .1-.5, 01y-73b.2-.4 last
    got = [s["id"] for s in jan_ws.list_specs()["specs"]]
    assert got == sorted(READY, key=chant_order)


def test_cli_list_ready(copies):
    proc = run_cli(["list", "--ready"], copies[JAN24])
    assert proc.code == 0, proc
    assert first_tokens(proc.out) == EXPECTED_READY


# --- lex00-chant-2026-02-05: three cancelled active specs and a big archive -------------------

FEB_ACTIVE = ["2026-02-03-002-pyo", "2026-02-03-015-hsk", "2026-02-03-016-2ha"]
# grep -rl bugfix archive/: these four have `bugfix` in `labels:`; a fifth file names it only
# in its body ("chant search --label bugfix" in 2026-01-27-002-p7j).
BUGFIX = ["2026-01-27-001-dke", "2026-01-27-002-t6u", "2026-01-31-002-wfd", "2026-01-31-003-mcp"]
# The word "wizard" is a word of exactly these 8 archived titles (and of no active title).
WIZARD_TITLES = [
    "2026-01-26-00d-3zm",
    "2026-01-26-013-7u4",
    "2026-01-26-014-f5b",
    "2026-01-26-015-3nm",
    "2026-01-26-016-wyc",
    "2026-01-26-017-hg5",
    "2026-01-27-005-5ee",
    "2026-01-29-00m-9pi",
]


@pytest.fixture(scope="module")
def feb_ws(copies):
    return Workspace(copies[FEB05])


def test_feb_table(feb_ws):
    feb_ws.refresh()
    assert len(feb_ws.table.rows) == 587
    assert sorted(feb_ws.table.active) == FEB_ACTIVE
    assert len(feb_ws.table.archived) == 584
    assert not feb_ws.table.broken
    assert all(r.status == "cancelled" for r in feb_ws.table.active.values())
    assert feb_ws.list_specs()["specs"] == []
    assert feb_ws.list_specs(ready=True)["specs"] == []
    assert [s["id"] for s in feb_ws.list_specs(status="cancelled")["specs"]] == FEB_ACTIVE


def test_feb_cli_list(copies):
    proc = run_cli(["list"], copies[FEB05])
    assert proc.code == 0, proc
    assert proc.out == ""
    proc = run_cli(["list", "--status", "cancelled"], copies[FEB05])
    assert proc.code == 0, proc
    assert first_tokens(proc.out) == FEB_ACTIVE


def _grep_count(pattern: str, where) -> list[str]:
    hits = []
    for spec_id, path, archived in spec_files(FEB05):
        if where(archived):
            with open(path, encoding="utf-8") as fh:
                if re.search(pattern, fh.read(), re.M):
                    hits.append(spec_id)
    return sorted(hits)


def test_feb_search_label(feb_ws):
    # the label written as a block-list item right under `labels:` (possibly after other labels)
    assert _grep_count(r"^labels:\n(?:[ \t]*- .*\n)*[ \t]*- bugfix$", lambda a: a) == BUGFIX
    result = feb_ws.search("label:bugfix")
    assert result["total"] == len(BUGFIX) == 4
    assert sorted(s["id"] for s in result["specs"]) == BUGFIX
    assert all(s["archived"] for s in result["specs"])


def test_feb_search_title_word(feb_ws):
    titled = []
    for spec_id, path, _archived in spec_files(FEB05):
        with open(path, encoding="utf-8") as fh:
            body = fh.read().split("\n---", 1)[1]
        title = re.search(r"^# (.*)$", body, re.M).group(1)
        if "wizard" in re.findall(r"[a-z0-9]+", title.lower()):
            titled.append(spec_id)
    assert sorted(titled) == WIZARD_TITLES
    result = feb_ws.search("title:wizard")
    assert result["total"] == 8
    assert sorted(s["id"] for s in result["specs"]) == WIZARD_TITLES
