"""The README's first command (`make run`): a demo repository and a short tour of chant.

Generates a repository with the project's own generator (chantlib.generate), then runs the
real `chant` command on it: the ready list, a search, a lock, and a queue claim in direct
mode; then the daemon: started in the background, asked over its socket (with `nc -U` when
netcat-openbsd is installed) and its HTTP API (with `curl` when installed), watched as a spec
is written, and stopped.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

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
    daemon_tour(target)
    print(f"\nLeases were taken as {env_owner}. Try it yourself: cd {target} && ../.venv/bin/chant --help")
    return 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _shell(title: str, command: list[str], fallback) -> None:
    print(f"\n$ {title}", flush=True)
    if shutil.which(command[0]):
        proc = subprocess.run(command, capture_output=True, text=True, timeout=30)
        text = proc.stdout
    else:
        text = fallback() + f"   (answered in Python: {command[0]} is not installed)"
    print(text.strip()[:400] + (" ..." if len(text.strip()) > 400 else ""))


def daemon_tour(target: str) -> None:
    print("\n--- the daemon: the same commands, served hot ---")
    port = _free_port()
    run(["daemon", "start", "--background", "--api-port", str(port), "--metrics-port", "0"], target)
    try:
        run(["daemon", "status"], target)
        run(["list", "--ready"], target, limit=3)
        with open(os.path.join(target, ".chant", "daemon.json"), encoding="utf-8") as fh:
            sock = json.load(fh)["socket"]
        line = '{"cmd":"query","q":"label:bug","limit":1}'

        def via_socket() -> str:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.connect(sock)
                s.sendall(line.encode() + b"\n")
                return s.makefile().readline()

        _shell(f"echo '{line}' | nc -U {os.path.relpath(sock, target)}", ["sh", "-c", f"echo '{line}' | nc -U {sock}"]
               if shutil.which("nc") else ["nc"], via_socket)
        url = f"http://127.0.0.1:{port}/api/queue/next"
        with open(os.path.join(target, ".chant", "daemon.token"), encoding="utf-8") as fh:
            header = f"Authorization: Bearer {fh.read().strip()}"  # the API wants the token, loopback too

        def via_urllib() -> str:
            request = urllib.request.Request(url, headers={"Authorization": header.split(": ", 1)[1]})
            return urllib.request.urlopen(request, timeout=10).read().decode()

        _shell(f'curl -H "Authorization: Bearer $(cat .chant/daemon.token)" {url}', ["curl", "-s", "-H", header, url],
               via_urllib)
        spec = os.path.join(target, ".chant", "specs", "2030-01-01-001-new.md")
        with open(spec, "w", encoding="utf-8") as fh:
            fh.write("---\ntype: code\nstatus: pending\npriority: 500\n---\n# Written while the daemon watches\n")
        time.sleep(0.5)
        print("\n(a new spec file was just written; the watcher picked it up)")
        run(["queue", "next"], target)
    finally:
        run(["daemon", "stop"], target)
    run(["list", "--ready", "--count"], target)


if __name__ == "__main__":
    raise SystemExit(main())
