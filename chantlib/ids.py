"""Spec IDs: parse, generate, order and resolve (docs/chant-format.md §1, §5, §6).

An ID is ``[repo:][project-]YYYY-MM-DD-SSS-XXX[.N[.M...]]``: ``SSS`` a zero-padded base-36
sequence, ``XXX`` a random base-36 suffix, ``.N`` a group member. Free-form stems
(``001-research-churn-drivers``) are valid IDs too: they parse to nothing and order as
plain strings. This module is import-light on purpose: the CLI's fast paths use it.
"""

from __future__ import annotations

import os
import re

__all__ = [
    "ParsedId",
    "parse_id",
    "sort_key",
    "driver_of",
    "is_member_of",
    "format_base36",
    "parse_base36",
    "generate_id",
    "next_sequence",
    "resolve_partial",
    "ID_REFERENCE_RE",
]

BASE36 = "0123456789abcdefghijklmnopqrstuvwxyz"

_ID_RE = re.compile(
    r"^(?:(?P<repo>[A-Za-z0-9_-]+):)?"
    r"(?:(?P<project>[A-Za-z0-9_][A-Za-z0-9_-]*?)-)?"
    r"(?P<date>\d{4}-\d{2}-\d{2})-(?P<seq>[0-9a-z]{3,})-(?P<suffix>[0-9a-z]{3})"
    r"(?P<members>(?:\.\d+)*)$"
)

#: What lint and commit messages recognise as a reference to a spec.
ID_REFERENCE_RE = re.compile(
    r"\b(?:[A-Za-z][A-Za-z0-9_]*(?:-[A-Za-z][A-Za-z0-9_]*)*-)?"
    r"\d{4}-\d{2}-\d{2}-[0-9a-z]{3}-[0-9a-z]{3}(?:\.\d+)*\b"
)


class ParsedId:
    """The parts of a well-formed ID. ``members`` is ``()`` for a top-level spec."""

    __slots__ = ("repo", "project", "date", "seq", "suffix", "members")

    def __init__(self, repo, project, date, seq, suffix, members):
        self.repo = repo
        self.project = project
        self.date = date
        self.seq = seq
        self.suffix = suffix
        self.members = members

    @property
    def sequence(self) -> int:
        return parse_base36(self.seq)

    @property
    def base(self) -> str:
        """The top-level ID this ID belongs to (itself for a top-level spec), without repo."""
        prefix = f"{self.project}-" if self.project else ""
        return f"{prefix}{self.date}-{self.seq}-{self.suffix}"

    def __str__(self) -> str:
        repo = f"{self.repo}:" if self.repo else ""
        members = "".join(f".{m}" for m in self.members)
        return f"{repo}{self.base}{members}"

    def __repr__(self) -> str:
        return f"ParsedId({str(self)!r})"

    def as_dict(self) -> dict:
        return {
            "repo": self.repo,
            "project": self.project,
            "date": self.date,
            "sequence": self.sequence,
            "suffix": self.suffix,
            "members": list(self.members),
        }


def parse_id(spec_id: str) -> ParsedId | None:
    """Parse an ID; ``None`` for a free-form stem."""
    m = _ID_RE.match(spec_id)
    if m is None:
        return None
    members = m.group("members")
    return ParsedId(
        m.group("repo"),
        m.group("project"),
        m.group("date"),
        m.group("seq"),
        m.group("suffix"),
        tuple(int(x) for x in members[1:].split(".")) if members else (),
    )


def format_base36(n: int, width: int = 3) -> str:
    if n < 0:
        raise ValueError("base-36 numbers here are never negative")
    digits = []
    while n:
        n, r = divmod(n, 36)
        digits.append(BASE36[r])
    return "".join(reversed(digits)).rjust(width, "0")


def parse_base36(text: str) -> int:
    return int(text, 36)


_SORT_KEYS: dict[str, tuple] = {}


def sort_key(spec_id: str) -> tuple:
    """The chant order (§5): date, sequence as a number, suffix, then members as numbers.

    Members follow their driver (``X`` < ``X.1`` < ``X.2`` < ``X.10``). Unparsable IDs
    compare as plain strings against the date of parsable ones, which keeps the order total.
    Keys are remembered: a long-lived process sorts the same IDs over and over.
    """
    key = _SORT_KEYS.get(spec_id)
    if key is not None:
        return key
    p = parse_id(spec_id)
    if p is None:
        key = (spec_id, -1, "", "", ())
    else:
        key = (p.date, int(p.seq, 36), p.suffix, p.project or "", p.members)
    if len(_SORT_KEYS) > 500_000:
        _SORT_KEYS.clear()
    _SORT_KEYS[spec_id] = key
    return key


def driver_of(spec_id: str) -> str | None:
    """The driver of a member (``X`` for ``X.2`` and ``X.2.1``); ``None`` otherwise.

    As upstream: the part before the first ``.`` that is followed by a digit.
    """
    pos = spec_id.find(".")
    while pos != -1:
        if pos + 1 < len(spec_id) and spec_id[pos + 1].isdigit():
            return spec_id[:pos] or None
        pos = spec_id.find(".", pos + 1)
    return None


def is_member_of(member_id: str, driver_id: str) -> bool:
    """True for ``driver_id.N`` and deeper (``driver_id.N.M``)."""
    return (
        len(member_id) > len(driver_id) + 1
        and member_id.startswith(driver_id)
        and member_id[len(driver_id)] == "."
    )


def next_sequence(existing_ids, date: str) -> int:
    """1 + the highest sequence among the top-level IDs of ``date`` (any project)."""
    best = 0
    for spec_id in existing_ids:
        p = parse_id(spec_id)
        if p is not None and p.date == date and not p.members:
            best = max(best, p.sequence)
    return best + 1


def generate_id(existing_ids, date: str, project: str | None = None) -> str:
    """A new top-level ID for ``date`` (``YYYY-MM-DD``), unique among ``existing_ids``."""
    existing = set(existing_ids)
    seq = format_base36(next_sequence(existing, date))
    prefix = f"{project}-" if project else ""
    while True:
        # 36**3 does not divide 2**24; the bias of % over 24 random bits is under 0.3%
        suffix = format_base36(int.from_bytes(os.urandom(3), "big") % 46656)
        candidate = f"{prefix}{date}-{seq}-{suffix}"
        if candidate not in existing:
            return candidate


def resolve_partial(partial: str, ids, today: str | None = None) -> str:
    """Resolve a partial ID against ``ids`` (§6).

    Exact match, else a unique suffix match, else (for three characters) a unique
    ``<today>-<input>-`` prefix, else a unique substring. Raises ``SpecNotFound`` or
    ``AmbiguousSpecId``. ``today`` (``YYYY-MM-DD``) defaults to the local date.
    """
    from .errors import AmbiguousSpecId, SpecNotFound, UsageError
    from .values import BLANK

    partial = partial.strip(BLANK)
    if not partial:
        raise UsageError("Spec ID cannot be empty")
    ids = ids if isinstance(ids, (set, frozenset, dict)) else set(ids)
    if partial in ids:
        return partial
    stages = [lambda i: i.endswith(partial)]
    if len(partial) == 3:
        import time

        head = f"{today or time.strftime('%Y-%m-%d')}-{partial}-"
        stages.append(lambda i: i.startswith(head))
    stages.append(lambda i: partial in i)
    for match in stages:
        found = [i for i in ids if match(i)]
        if len(found) == 1:
            return found[0]
        if found:
            raise AmbiguousSpecId(partial, sorted(found, key=sort_key))
    raise SpecNotFound(partial)
