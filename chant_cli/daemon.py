"""``chant daemon start|stop|status|request``: the daemon's lifecycle from the command line."""

from __future__ import annotations

import json
import os
import signal
import time

from chantlib.client import DaemonUnavailable, daemon_alive, runtime_info, socket_path
from chantlib.errors import ChantError, error_envelope
from chantlib.locks import pid_alive
from chantlib.store import find_root


def start(args, out) -> int:
    root = find_root()
    if args.background:
        from chantlib.backends import ANSWER_WAIT, StartFailed

        from .backends import connect_daemon, start_background

        if daemon_alive(root):
            pid = None
            try:  # a daemon still starting names itself once it answers (daemon.json comes then too)
                client = connect_daemon(root, timeout=60, wait=ANSWER_WAIT)
                pid = client.hello.get("pid")
                client.close()
            except DaemonUnavailable:
                pass
            if not isinstance(pid, int):
                pid = (runtime_info(root) or {}).get("pid", "?")
            out.line(f"Daemon already running (PID {pid})")
            return 0
        from chantd.options import start_argv

        try:
            client, pid, started = start_background(root, start_argv(args))
        except StartFailed as exc:
            out.note(f"error: {exc}")
            return exc.code
        client.close()
        if not started:  # another start at the same moment won: only one says "started"
            out.line(f"Daemon already running (PID {pid})")
            return 0
        out.line(f"Daemon started (PID {pid}); log: .chant/logs/daemon.log")
        return 0
    from chantd.server import run_foreground

    return run_foreground(root, args)


def stop(args, out) -> int:
    root = find_root()
    info = runtime_info(root) or {}
    pid = info.get("pid")
    if not daemon_alive(root):
        out.line("Daemon: not running")
        return 0
    if not isinstance(pid, int):
        out.note("error: a daemon holds the instance lock but .chant/daemon.json names no PID; is it still starting?")
        return 1
    sock = info.get("socket") or socket_path(root)
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid) and not daemon_alive(root) and not os.path.lexists(sock):
            out.line(f"Daemon stopped (PID {pid})")
            return 0
        time.sleep(0.02)
    out.note(f"error: the daemon (PID {pid}) did not stop within {args.timeout:g}s; it is still running")
    return 1


def _uptime(seconds: float) -> str:
    s = int(seconds)
    days, s = divmod(s, 86400)
    hours, s = divmod(s, 3600)
    minutes, s = divmod(s, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {s}s"
    return f"{s}s"


def status(args, out) -> int:
    """Running (and what it serves), running but unreachable, or not running: exit 0 only
    for a daemon that answers."""
    from chantlib.backends import ANSWER_WAIT

    from .backends import connect_daemon

    root = find_root()
    try:
        client = connect_daemon(root, timeout=10, wait=ANSWER_WAIT, loaded=False)  # status answers while it loads
    except DaemonUnavailable as exc:
        from chantlib.client import WrongDaemon

        if isinstance(exc, WrongDaemon):  # found by its socket: the repository moved under it
            if args.json:
                out.json({"running": True, "answering": False, "serves": exc.hello.get("root"), "error": str(exc)})
            else:
                out.line(f"Daemon: running (PID {exc.hello.get('pid', '?')}) for {exc.hello.get('root')}, "
                         "not this repository")
                out.note(f"error: {exc} (was the repository moved? that daemon stops once its own path is gone)")
            return 1
        if daemon_alive(root):
            pid = (runtime_info(root) or {}).get("pid")
            where = f" (PID {pid})" if isinstance(pid, int) else ""
            if args.json:
                out.json({"running": True, "answering": False, "pid": pid, "error": str(exc)})
            else:
                out.line(f"Daemon: running{where}, not answering")
                out.note(f"error: it holds this repository but does not answer: {exc}; "
                         "see .chant/logs/daemon.log, or stop it with `chant daemon stop`")
            return 1
        if args.json:
            out.json({"running": False})
        else:
            out.line("Daemon: not running")
        return 1
    try:
        data = client.call("daemon_status", {})
    finally:
        client.close()
    from . import render

    render.warnings(out, data)
    if args.json:
        out.json(dict(render.json_result(data), running=True))
        return 0
    out.line(f"Daemon: running (PID {data['pid']})")
    out.line(f"Uptime: {_uptime(data['uptime_seconds'])}")
    indexed = data.get("specs_indexed")
    progress = data.get("progress")
    if data.get("busy") and progress and progress.get("total"):
        out.line(f"Specs indexed: ({data['busy']}: {progress['phase']} {progress['done']:,} of {progress['total']:,})")
    elif isinstance(indexed, int):
        out.line(f"Specs indexed: {indexed:,}")
    else:
        out.line(f"Specs indexed: ({data.get('busy') or 'rebuilding'})")
    for label, key in (("Active locks", "active_locks"), ("Queue depth", "queue_depth")):
        value = data.get(key)
        out.line(f"{label}: {value:,}" if isinstance(value, int) else f"{label}: (busy)")
    if data.get("claims_waiting"):
        out.line(f"Claims waiting: {data['claims_waiting']:,}")  # long polls: idle workers
    out.line(f"Version: {data['version']} (protocol {data['protocol']})")
    out.line(f"Socket: {data['socket']}")
    out.line(f"API: {data.get('api') or 'off'}")
    out.line(f"Metrics: {data.get('metrics') or 'off'}")
    out.line(f"Watch: {data.get('watch') or 'off'}")
    git = data.get("git")
    if git:
        counts = f" ({git['recorded']} commit(s) recorded, {git['unknown_refs']} unknown ref(s))" \
            if git["state"] == "watching" else ""
        out.line(f"Git: {git['state']}{counts}")
    validation = data.get("validation")
    if validation:
        out.line(f"Invalid specs: {validation['invalid_specs']:,}"
                 + (f" ({validation['specs_with_warnings']:,} with warnings)" if validation["specs_with_warnings"] else ""))
    return 0


def request(args, out) -> int:
    """Send one raw request line and print the raw answer (debugging)."""
    try:
        payload = json.loads(args.json_request)
    except ValueError as exc:
        out.note(f"error: the request is not JSON: {exc}")
        return 2
    if not isinstance(payload, dict):
        out.note("error: a request is a JSON object with a 'cmd'")
        return 2
    root = find_root()
    cmd = payload.pop("cmd", None)
    request_id = payload.pop("id", None)
    if args.in_process:
        answer = _in_process(root, cmd, payload)
    else:
        from .backends import connect_daemon

        try:
            client = connect_daemon(root, timeout=30)
        except DaemonUnavailable as exc:
            out.note(f"error: {exc} (use --in-process to answer without a daemon)")
            return 1
        try:
            answer = {"ok": True, "result": client.call(cmd, payload)}
        except ChantError as exc:
            answer = {"ok": False, "error": exc.to_dict()}
        finally:
            client.close()
    if request_id is not None:
        answer["id"] = request_id
    out.line(json.dumps(answer, separators=(",", ":")))
    return 0 if answer.get("ok") else 1


def _in_process(root: str, cmd, params: dict) -> dict:
    """The answer the daemon would give, computed here by the daemon's own parts."""
    import asyncio

    from chantd import build

    parts = build(root, serve=False)

    async def answer() -> dict:
        async with parts:  # closed however the call ends
            try:
                await parts.load()
                return await parts.service.call(cmd, params, "in-process")
            except Exception as exc:  # noqa: BLE001 - reported like the daemon reports it
                return {"ok": False, "error": error_envelope(exc)}

    return asyncio.run(answer())
