"""One way to build the daemon (`chantd.build`), one exit stack to stop it, and chantd's
seams: it imports nothing from the CLI, and its lifecycle and watcher use no private
attribute of a chantlib object."""

from __future__ import annotations

import ast
import asyncio
import json
import os

import pytest

from .support import ROOT

CHANTD = os.path.join(ROOT, "chantd")


def _sources(folder: str):
    for name in sorted(os.listdir(folder)):
        if name.endswith(".py"):
            path = os.path.join(folder, name)
            with open(path, encoding="utf-8") as fh:
                yield name, ast.parse(fh.read(), path)


def test_chantd_imports_nothing_from_chant_cli():
    found = []
    for name, tree in _sources(CHANTD):
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                modules = [node.module or ""]
            else:
                continue
            found += [f"{name}:{node.lineno} {m}" for m in modules if m.split(".")[0] == "chant_cli"]
    assert found == []


def test_the_lifecycle_and_the_watcher_touch_no_private_attribute():
    """``x._name`` only on the module's own objects (``self``, ``cls``)."""
    found = []
    for name, tree in _sources(CHANTD):
        if name not in ("server.py", "watch.py", "parts.py", "options.py"):
            continue
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
                    and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))):
                found.append(f"{name}:{node.lineno} .{node.attr}")
    assert found == []


def test_the_cli_loads_chantd_only_for_the_daemon_start_parser(repo):
    from .test_surface import imported_modules

    repo.write("2026-01-24-001-aaa")
    assert "chantd" not in imported_modules(["list", "--ready", "--direct"], cwd=repo.root)
    mods = imported_modules(["daemon", "start", "--help"], full=True)
    assert "chantd.options" in mods
    assert not {"chantd.parts", "chantd.server", "chantd.service"} & mods


def test_build_gives_the_workspace_its_lease_table_at_construction(repo):
    from chantd import build
    from chantlib.errors import ChantError
    from chantlib.locks import MemoryLockTable

    repo.write("2026-01-24-001-aaa")
    parts = build(repo.root, api_port=0, metrics_port=0)
    try:
        assert isinstance(parts.workspace.locks, MemoryLockTable)
        assert parts.workspace.locks.default_ttl == parts.workspace.config.lock_ttl
        assert parts.service.ws is parts.workspace and parts.metrics is not None and parts.watcher is not None
        assert parts.settings.api_port == 0 and parts.settings.socket.endswith("daemon.sock")
        # it owns .chant/.locks/ from the start: a second daemon's table is refused
        with pytest.raises(ChantError):
            build(repo.root, api_port=0, metrics_port=0)

        async def scenario():
            async with parts:
                await parts.load()
                answer = await parts.service.call("lock_acquire", {"spec": "2026-01-24-001-aaa"}, "test")
                assert answer["ok"], answer
                return answer["result"]["token"]

        token = asyncio.run(scenario())
    finally:
        parts.service.close()  # a second close is harmless: the stack closed it already
    # closed: the lease went to the lease files, the folder let go; direct mode sees it
    ws = repo.workspace()
    assert ws.lock_status("2026-01-24-001-aaa")["lease"]["token"] == token
    again = build(repo.root, api_port=0, metrics_port=0)
    again.service.close()


def test_a_failing_step_closes_what_was_built(repo):
    from chantd import build
    from chantlib.errors import InvalidValue

    # settings are resolved after the lease table is open: a refused one closes it again
    with pytest.raises(InvalidValue, match="beyond loopback"):
        build(repo.root, api_port=8080, metrics_port=0, api_host="0.0.0.0")  # and no token
    build(repo.root, api_port=0, metrics_port=0).service.close()  # the lease folder was let go


def test_the_stack_stops_in_reverse_order(repo):
    from chantd import build

    order = []
    parts = build(repo.root, api_port=0, metrics_port=0)

    async def scenario():
        async with parts:
            parts.stack.callback(order.append, "first started")

            async def forever():
                try:
                    await asyncio.Event().wait()
                finally:
                    order.append("task cancelled")

            parts.task(forever())
            parts.stack.callback(order.append, "last started")
            await asyncio.sleep(0)

    asyncio.run(scenario())
    assert order == ["last started", "task cancelled", "first started"]


def test_in_process_answers_through_a_one_shot_service(repo):
    from chantd import build

    repo.write("2026-01-24-001-aaa")
    parts = build(repo.root, serve=False)
    assert parts.settings is None and parts.watcher is None and not parts.workspace.long_lived

    async def scenario():
        async with parts:
            await parts.load()
            return await parts.service.call("list", {"ready": True}, "in-process")

    answer = asyncio.run(scenario())
    assert [s["id"] for s in answer["result"]["specs"]] == ["2026-01-24-001-aaa"]


def test_the_daemon_writes_daemon_json_once_and_removes_it(repo, monkeypatch):
    """One write when every transport listens (not one per step of the start), none while
    it loads or becomes ready, and the file gone once it stopped."""
    from chantd import server as server_module
    from chantlib.client import DaemonClient

    repo.write("2026-01-24-001-aaa")
    info_path = os.path.join(repo.root, ".chant", "daemon.json")
    writes = []
    real_write = server_module.atomic_write

    def counting_write(path, text, **kwargs):
        if os.path.basename(path) == "daemon.json":
            writes.append(json.loads(text))
        return real_write(path, text, **kwargs)

    monkeypatch.setattr(server_module, "atomic_write", counting_write)
    daemon = server_module.Daemon(repo.root, api_port=0, metrics_port=0, socket_arg=None, api_host=None, poll=None)

    def ask_until_started() -> dict:
        import time

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with DaemonClient.connect(repo.root, timeout=10) as client:
                    status = client.call("daemon_status", {})
                if status.get("watch"):
                    return status
            except Exception:  # noqa: BLE001 - not up yet
                pass
            time.sleep(0.05)
        raise AssertionError("the daemon did not start")

    async def scenario():
        main = asyncio.create_task(daemon._main())
        try:
            status = await asyncio.to_thread(ask_until_started)
            with open(info_path, encoding="utf-8") as fh:
                on_disk = json.load(fh)
        finally:
            while daemon.stop_event is None:
                await asyncio.sleep(0.01)
            daemon.stop_event.set()
            code = await main
        return status, on_disk, code

    status, on_disk, code = asyncio.run(scenario())
    assert code == 0 and status["loaded"] is True
    assert len(writes) == 1 and writes[0] == on_disk
    assert on_disk["socket"] == status["socket"] and on_disk["pid"] == os.getpid()
    assert not os.path.exists(info_path) and not os.path.exists(on_disk["socket"])
