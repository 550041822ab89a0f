"""A generator of realistic spec repositories, for the demo, the tests and the benchmarks.

The shape follows the real ``.chant/`` folders in the shared corpus: mostly ``type: code``
with some documentation, task, research and group specs; bodies of 100-500 words with
Problem / Acceptance Criteria / Notes sections; ``depends_on`` chains onto earlier specs;
groups with ``.N`` members; completed specs carrying ``commits``, ``completed_at`` and
``model``; older work archived under ``archive/YYYY-MM-DD/``; now and then labels, a
project prefix, an approval block or a priority. The same seed gives the same files.

Usage: ``python -m chantlib.generate DIR --specs N [--seed S] [--archive-fraction F]``.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import random

from .ids import format_base36
from .spec import dump_yaml_value
from .store import SpecStore

__all__ = ["generate", "main"]

_VERBS = [
    "Add", "Fix", "Refactor", "Document", "Validate", "Support", "Remove", "Rename", "Cache", "Speed up",
    "Harden", "Test", "Split", "Merge", "Parse", "Render", "Detect", "Retry", "Archive", "Migrate",
]
_OBJECTS = [
    "spec finalization", "lock files", "the merge driver", "branch naming", "config loading", "the MCP server",
    "status output", "the worktree cleanup", "agent rotation", "approval flow", "dependency checks",
    "search results", "the archive command", "commit detection", "the lint rules", "member specs",
    "prompt templates", "the watch loop", "log streaming", "the split command", "silent mode", "PR creation",
    "output schemas", "the export command", "retry state", "the site generator", "provider selection",
]
_TAILS = [
    "for parallel runs", "when the branch exists", "in non-interactive mode", "across worktrees",
    "with clear errors", "without data loss", "for archived specs", "on large repositories", "under load",
    "for remote workers", "", "", "",
]
_WORDS = (
    "spec agent branch commit merge worktree status config prompt lint archive queue lock lease index search "
    "daemon worker driver member dependency approval label project target file output schema retry finalize "
    "validate parse render detect record warn error test fixture regression edge case path cache refresh "
    "handler command option flag default timeout signal process socket request response metric counter "
    "should must the a an of to in for with when if after before each every all any no not and or but "
    "ensure keep make sure avoid handle return update read write create remove check verify compare load save"
).split()
_FILES = [
    "src/main.rs", "src/spec.rs", "src/config.rs", "src/git.rs", "src/merge.rs", "src/lock.rs", "src/cmd/work.rs",
    "src/cmd/lint.rs", "src/cmd/list.rs", "src/mcp/server.rs", "docs/cli.md", "docs/config.md", "README.md",
    "tests/integration.rs", "src/worktree.rs", "src/prompt.rs",
]
_LABELS = ["bug", "enhancement", "docs", "ux", "refactor", "cli", "config", "performance", "v0.4.0", "mcp"]
_MODELS = ["haiku", "sonnet", "opus", "claude-opus-4-5", "claude-sonnet-4-5-20250929"]
_PROJECTS = ["auth", "payments", "infra"]


def _sentence(rng: random.Random, words: int) -> str:
    text = " ".join(rng.choice(_WORDS) for _ in range(words))
    return text[0].upper() + text[1:] + "."


def _paragraph(rng: random.Random, words: int) -> str:
    out, left = [], words
    while left > 0:
        n = min(left, rng.randint(8, 18))
        out.append(_sentence(rng, n))
        left -= n
    return " ".join(out)


def _body(rng: random.Random, title: str, done: bool, refs: list[str]) -> str:
    words = rng.randint(100, 500)
    criteria = rng.randint(2, 8)
    problem = _paragraph(rng, max(30, words // 2))
    notes = _paragraph(rng, max(20, words - words // 2 - criteria * 8))
    lines = [f"# {title}", "", "## Problem", "", problem, ""]
    if refs and rng.random() < 0.3:
        lines += [f"Follows up on {refs[0]}.", ""]
    lines += ["## Acceptance Criteria", ""]
    for _ in range(criteria):
        box = "x" if done else ("x" if rng.random() < 0.2 else " ")
        lines.append(f"- [{box}] {_sentence(rng, rng.randint(5, 10))[:-1]}")
    lines += ["", "## Implementation Notes", "", notes, ""]
    if rng.random() < 0.25:
        lines += ["```rust", "fn example() -> Result<()> {", "    Ok(())", "}", "```", ""]
    return "\n".join(lines)


class _Day:
    __slots__ = ("date", "seq")

    def __init__(self, date: _dt.date) -> None:
        self.date = date
        self.seq = 0


def generate(
    root: str,
    specs: int,
    *,
    seed: int = 7,
    archive_fraction: float = 0.6,
    start: _dt.date = _dt.date(2025, 6, 1),
    per_day: int = 40,
) -> dict:
    """Write a repository of ``specs`` spec files under ``root`` (``.chant/`` is created).

    Returns counts: ``{"specs", "active", "archived", "members", "with_dependencies"}``.
    """
    rng = random.Random(seed)
    store = SpecStore(root)
    store.init("demo")
    n_archive = int(specs * archive_fraction)
    made: list[tuple[str, str]] = []  # (id, status) in creation order
    counts = {"specs": 0, "active": 0, "archived": 0, "members": 0, "with_dependencies": 0}
    day = _Day(start)
    folders: set[str] = set()

    def new_id(project: str | None) -> tuple[str, _dt.date]:
        if day.seq >= per_day or (day.seq and rng.random() < 1 / per_day):
            day.date += _dt.timedelta(days=1)
            day.seq = 0
        day.seq += 1
        suffix = "".join(rng.choice("0123456789abcdefghijklmnopqrstuvwxyz") for _ in range(3))
        prefix = f"{project}-" if project else ""
        return f"{prefix}{day.date.isoformat()}-{format_base36(day.seq)}-{suffix}", day.date

    def write(spec_id: str, date: _dt.date, front: dict, body: str, archived: bool) -> None:
        if archived:
            folder = os.path.join(store.archive_dir, date.isoformat())
            rel = f"archive/{date.isoformat()}/{spec_id}.md"
        else:
            folder = store.specs_dir
            rel = f"specs/{spec_id}.md"
        if folder not in folders:
            os.makedirs(folder, exist_ok=True)
            folders.add(folder)
        text = "---\n" + "".join(dump_yaml_value(k, v) for k, v in front.items()) + "---\n" + body
        _write_plain(store.abspath(rel), text)
        counts["specs"] += 1
        counts["archived" if archived else "active"] += 1

    i = 0
    while i < specs:
        archived = i < n_archive
        project = rng.choice(_PROJECTS) if rng.random() < 0.1 else None
        spec_id, date = new_id(project)
        title = f"{rng.choice(_VERBS)} {rng.choice(_OBJECTS)} {rng.choice(_TAILS)}".strip()
        r = rng.random()
        spec_type = (
            "code" if r < 0.82 else "documentation" if r < 0.88 else "task" if r < 0.92
            else "research" if r < 0.95 else "group"
        )
        if archived:
            status = "completed" if rng.random() < 0.97 else "cancelled"
        else:
            r = rng.random()
            status = (
                "completed" if r < 0.45 else "pending" if r < 0.80 else "in_progress" if r < 0.88
                else "failed" if r < 0.92 else "cancelled" if r < 0.96 else "paused"
            )
        front: dict = {"type": spec_type, "status": status}
        if rng.random() < 0.12:
            front["labels"] = rng.sample(_LABELS, rng.randint(1, 2))
        if rng.random() < 0.04 and not archived:
            front["priority"] = rng.choice(["low", "high", "critical", 75])
        deps: list[str] = []
        if made and rng.random() < 0.18:
            window = made[-200:]
            deps = sorted({rng.choice(window)[0] for _ in range(rng.randint(1, 2))})
            front["depends_on"] = deps
            counts["with_dependencies"] += 1
        if spec_type == "documentation":
            front["tracks"] = [rng.choice(_FILES)]
        if spec_type == "research":
            front["informed_by"] = [rng.choice(_FILES)]
        front["target_files"] = rng.sample(_FILES, rng.randint(1, 3))
        if not archived and status == "pending" and rng.random() < 0.03:
            front["approval"] = {"required": True, "status": rng.choice(["pending", "approved"])}
            if front["approval"]["status"] == "approved":
                front["approval"].update(by="reviewer", at=f"{date.isoformat()}T12:00:00Z")
        done = status == "completed"
        if done:
            front["commits"] = ["".join(rng.choice("0123456789abcdef") for _ in range(7)) for _ in range(rng.randint(1, 2))]
            front["completed_at"] = f"{date.isoformat()}T{rng.randint(8, 20):02d}:{rng.randint(0, 59):02d}:00Z"
            front["model"] = rng.choice(_MODELS)
        write(spec_id, date, front, _body(rng, title, done, deps), archived)
        made.append((spec_id, status))
        i += 1
        if spec_type == "group":
            members = min(rng.randint(2, 5), specs - i)
            for n in range(1, members + 1):
                m_status = status if archived or status == "completed" else rng.choice(["completed", "pending", "pending"])
                m_front = {"type": "code", "status": m_status, "target_files": rng.sample(_FILES, 1)}
                if m_status == "completed":
                    m_front["commits"] = ["".join(rng.choice("0123456789abcdef") for _ in range(7))]
                    m_front["completed_at"] = f"{date.isoformat()}T21:00:00Z"
                m_title = f"{rng.choice(_VERBS)} {rng.choice(_OBJECTS)} (part {n})"
                write(f"{spec_id}.{n}", date, m_front, _body(rng, m_title, m_status == "completed", []), archived)
                counts["members"] += 1
                i += 1
    return counts


def _write_plain(path: str, text: str) -> None:
    # generation writes thousands of new files into a fresh folder: no fsync per file
    with open(path, "w", encoding="utf-8", newline="") as fh:
        fh.write(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chantlib.generate", description=__doc__.splitlines()[0])
    parser.add_argument("root", help="folder to create the repository in")
    parser.add_argument("--specs", type=int, default=300, metavar="N", help="how many spec files (default: 300)")
    parser.add_argument("--seed", type=int, default=7, help="the random seed: one seed, one repository (default: 7)")
    parser.add_argument("--archive-fraction", type=float, default=0.6, metavar="F",
                        help="the share of specs written to the archive, 0 to 1 (default: 0.6)")
    args = parser.parse_args(argv)
    if args.specs < 0 or not 0 <= args.archive_fraction <= 1:
        parser.error("--specs must be zero or more and --archive-fraction between 0 and 1")
    counts = generate(args.root, args.specs, seed=args.seed, archive_fraction=args.archive_fraction)
    print(
        f"wrote {counts['specs']} specs to {os.path.join(args.root, '.chant')} "
        f"({counts['active']} active, {counts['archived']} archived, {counts['members']} members)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
