"""Shared fixtures: throw-away repositories and a runner for the real `chant` command."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path_factory, monkeypatch):
    """No test reads the developer's global config or inherits their owner name."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("CHANT_OWNER", "tester@test")
    monkeypatch.delenv("CHANT_GLOBAL_CONFIG", raising=False)
    monkeypatch.delenv("CHANT_LOCK_TTL", raising=False)
    monkeypatch.delenv("CHANT_DEBUG", raising=False)
    monkeypatch.setenv("NO_COLOR", "1")


class Repo:
    """A repository in a temp folder, with helpers to write specs."""

    def __init__(self, root) -> None:
        from chantlib.store import SpecStore

        self.root = str(root)
        SpecStore(self.root).init("test")

    @property
    def specs(self) -> str:
        return os.path.join(self.root, ".chant", "specs")

    def path(self, spec_id: str, archive: str | None = None) -> str:
        if archive:
            return os.path.join(self.root, ".chant", "archive", archive, f"{spec_id}.md")
        return os.path.join(self.specs, f"{spec_id}.md")

    def write(self, spec_id: str, front: str = "status: pending", body: str | None = None, *, archive=None,
              raw: str | None = None) -> str:
        """Write a spec. ``front`` is YAML text; ``body`` defaults to a title from the ID."""
        path = self.path(spec_id, archive)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if raw is None:
            body = f"# Spec {spec_id}\n" if body is None else body
            raw = f"---\n{textwrap.dedent(front).strip()}\n---\n{body}"
        with open(path, "w", encoding="utf-8", newline="") as fh:
            fh.write(raw)
        return path

    def read(self, spec_id: str, archive: str | None = None) -> str:
        with open(self.path(spec_id, archive), encoding="utf-8", newline="") as fh:
            return fh.read()

    def workspace(self, **kwargs):
        from chantlib.workspace import Workspace

        return Workspace(self.root, **kwargs)


@pytest.fixture
def repo(tmp_path) -> Repo:
    return Repo(tmp_path / "repo")


class Result:
    def __init__(self, proc: subprocess.CompletedProcess) -> None:
        self.code = proc.returncode
        self.out = proc.stdout
        self.err = proc.stderr

    def __repr__(self) -> str:
        return f"Result(code={self.code}, out={self.out!r}, err={self.err!r})"


def run_chant(args, cwd, *, env=None, input=None, timeout=60) -> Result:
    """Run the real CLI (``python -m chant_cli``) in a subprocess."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    proc = subprocess.run(
        [sys.executable, "-m", "chant_cli", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        input=input,
        timeout=timeout,
    )
    return Result(proc)


@pytest.fixture
def chant(repo):
    """``chant(*args)`` runs the CLI in the test repository."""

    def _run(*args, cwd=None, **kwargs) -> Result:
        return run_chant(list(args), cwd or repo.root, **kwargs)

    return _run
