"""IDs: parse, base 36, order, generate, partial resolution (chant-format §1, §5, §6)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chantlib.errors import AmbiguousSpecId, SpecNotFound, UsageError
from chantlib.ids import (
    driver_of,
    format_base36,
    generate_id,
    is_member_of,
    next_sequence,
    parse_base36,
    parse_id,
    resolve_partial,
    sort_key,
)


@pytest.mark.parametrize(("n", "text"), [(1, "001"), (10, "00a"), (36, "010"), (97, "02p"), (46655, "zzz")])
def test_base36_examples_from_the_format(n, text):
    assert format_base36(n) == text
    assert parse_base36(text) == n


@given(st.integers(min_value=0, max_value=36**5))
def test_base36_round_trip(n):
    assert parse_base36(format_base36(n)) == n


def test_parse_full_id():
    p = parse_id("backend:auth-2026-01-22-001-x7m.2.1")
    assert (p.repo, p.project, p.date, p.seq, p.suffix, p.members) == (
        "backend", "auth", "2026-01-22", "001", "x7m", (2, 1),
    )
    assert p.sequence == 1
    assert p.base == "auth-2026-01-22-001-x7m"
    assert str(p) == "backend:auth-2026-01-22-001-x7m.2.1"


def test_project_with_dashes_and_free_form_stems():
    assert parse_id("my-proj-2026-01-22-00a-abc").project == "my-proj"
    assert parse_id("2026-01-22-00a-abc").project is None
    assert parse_id("001-research-churn-drivers") is None
    assert parse_id("2026-01-22") is None


def test_order_follows_the_format():
    ids = [
        "2026-01-25-010-xxx",
        "2026-01-25-00z-yyy",
        "2026-01-24-01e-o0l.10",
        "2026-01-24-01e-o0l.2",
        "2026-01-24-01e-o0l",
        "2026-01-24-01e-o0l.2.1",
        "001-research-churn-drivers",
        "2026-01-24-001-cxn",
    ]
    assert sorted(ids, key=sort_key) == [
        "001-research-churn-drivers",
        "2026-01-24-001-cxn",
        "2026-01-24-01e-o0l",
        "2026-01-24-01e-o0l.2",
        "2026-01-24-01e-o0l.2.1",
        "2026-01-24-01e-o0l.10",
        "2026-01-25-00z-yyy",
        "2026-01-25-010-xxx",
    ]


def test_drivers_and_members():
    assert driver_of("X.2") == "X"
    assert driver_of("2026-01-24-01e-o0l.2.1") == "2026-01-24-01e-o0l"
    assert driver_of("2026-01-24-01e-o0l") is None
    assert driver_of("v1.x-notes") is None
    assert is_member_of("a.1", "a") and is_member_of("a.1.2", "a")
    assert not is_member_of("a", "a") and not is_member_of("ab.1", "a")


def test_next_sequence_and_generate():
    ids = ["2026-01-24-001-aaa", "2026-01-24-00z-bbb", "2026-01-24-00z-bbb.3", "auth-2026-01-24-010-ccc", "2026-01-23-0zz-ddd"]
    assert next_sequence(ids, "2026-01-24") == 37
    new = generate_id(ids, "2026-01-24")
    assert re.fullmatch(r"2026-01-24-011-[0-9a-z]{3}", new)
    assert re.fullmatch(r"auth-2026-01-25-001-[0-9a-z]{3}", generate_id(ids, "2026-01-25", "auth"))


def test_resolve_partial_stages():
    ids = {"2026-01-24-001-x7m", "2026-01-24-002-abc", "2026-01-24-002-abc.1", "2026-01-25-003-abd"}
    assert resolve_partial("2026-01-24-002-abc", ids) == "2026-01-24-002-abc"  # exact, despite the member
    assert resolve_partial("x7m", ids) == "2026-01-24-001-x7m"  # suffix
    assert resolve_partial("abc.1", ids) == "2026-01-24-002-abc.1"
    assert resolve_partial("003", ids, today="2026-01-25") == "2026-01-25-003-abd"  # today's sequence
    assert resolve_partial("25-003", ids) == "2026-01-25-003-abd"  # substring
    with pytest.raises(AmbiguousSpecId) as err:
        resolve_partial("2026-01-24", ids)
    assert err.value.code == "ambiguous_id" and len(err.value.matches) == 3
    assert str(err.value).startswith("Ambiguous spec ID '2026-01-24'. Matches: 2026-01-24-001-x7m, ")
    with pytest.raises(SpecNotFound) as err:
        resolve_partial("nope", ids)
    assert str(err.value) == "Spec not found: nope"
    with pytest.raises(UsageError):
        resolve_partial("  ", ids)
