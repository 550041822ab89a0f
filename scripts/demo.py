"""The README's first command (`make run`): a demo repository and a short tour of chant.

Generates a repository with the project's own generator (chantlib.generate), then runs the
real `chant` command on it: the ready list, a search, a lock, and a queue claim.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
CHANT = os.path.join(os.path.dirname(sys.executable), "chant")


def run(args: list[str], cwd: str, limit: int | None = None) -> str:
    print(f"\n$ chant {' '.join(a if ' ' not in a else repr(a) for a in args)}", flush=True)
    proc = subprocess.run([CHANT, *args], cwd=cwd, capture_output=True, text=True)
    lines = proc.stdout.splitlines()
    shown = lines if limit is None else lines[:limit]
    for line in shown:
        print(line)
    if limit is not None and len(lines) > limit:
        print(f"... ({len(lines) - limit} more lines)")
    for line in proc.stderr.splitlines():
        print(f"[stderr] {line}")
    if proc.returncode not in (0, 5):
        print(f"[exit {proc.returncode}]")
    return proc.stdout


def main() -> int:
    target = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "demo")
    specs = int(os.environ.get("DEMO_SPECS", "400"))
    if os.path.isdir(target):
        shutil.rmtree(target)
    os.makedirs(target)
    from chantlib.generate import generate

    counts = generate(target, specs, seed=11)
    print(
        f"Demo repository: {target} ({counts['active']} active specs, {counts['archived']} archived, "
        f"{counts['members']} group members)"
    )
    env_owner = os.environ.setdefault("CHANT_OWNER", "demo-worker@localhost")
    run(["status"], target)
    run(["list", "--ready"], target, limit=8)
    run(["search", "status:ready AND merge"], target, limit=5)
    run(["search", "label:bug OR label:docs", "--limit", "5"], target)
    first = run(["queue", "next"], target).split(" ", 1)[0]
    if first:
        run(["lock", "acquire", first, "--ttl", "600"], target)
        run(["lock", "list"], target)
        run(["queue", "next", "--claim", "--owner", "agent-2@pod-7"], target)
        run(["lock", "release", first], target)
        run(["show", first], target, limit=12)
    print(f"\nLeases were taken as {env_owner}. Try it yourself: cd {target} && ../.venv/bin/chant --help")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
