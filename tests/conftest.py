"""The fixtures: registered here, made of the helpers in :mod:`tests.support`."""

from __future__ import annotations

import os
import signal

import pytest

from .support import (  # noqa: F401 - the helpers stay importable from here too
    CORPUS,
    ROOT,
    WAIT_FOR_GO,
    DaemonProc,
    Repo,
    Result,
    copy_corpus,
    free_port,
    run_chant,
    run_racers,
)


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


@pytest.fixture
def repo(tmp_path) -> Repo:
    return Repo(tmp_path / "repo")


@pytest.fixture
def chant(repo):
    """``chant(*args)`` runs the CLI in the test repository."""

    def _run(*args, cwd=None, **kwargs) -> Result:
        return run_chant(list(args), cwd or repo.root, **kwargs)

    return _run


@pytest.fixture
def daemon_factory():
    """``start(root, **kwargs)``: a :class:`~tests.support.DaemonProc`, stopped at the end."""
    started: list[DaemonProc] = []

    def start(root: str, **kwargs) -> DaemonProc:
        d = DaemonProc(str(root), **kwargs)
        started.append(d)
        return d

    yield start
    for d in started:
        d.stop()


@pytest.fixture
def parts(repo):
    """The daemon's parts on ``repo``, made by :func:`chantd.build` (no transport, no port):
    for in-process tests of the service; closed at the end."""
    from chantd import build

    made = build(repo.root, api_port=0, metrics_port=0)
    yield made
    made.service.close()
    if made.notifier is not None:
        made.notifier.close()


@pytest.fixture
def cli_daemon(repo):
    """For tests that start the daemon through the CLI (`--background`, autostart): whatever
    daemon of ``repo`` still runs at the end, however the test ended, is killed."""
    yield repo
    from chantlib.client import runtime_info
    from chantlib.locks import pid_alive

    pid = (runtime_info(repo.root) or {}).get("pid")
    if isinstance(pid, int) and pid_alive(pid):
        os.kill(pid, signal.SIGKILL)
