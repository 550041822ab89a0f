"""The README's tour, run as written with the real CLI and the real daemon in a fresh folder,
so the README cannot drift from what chant does."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from .support import ROOT, free_port


def tour_lines() -> list[str]:
    """The commands of the first ``sh`` block under "A one-minute tour", comments dropped."""
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as fh:
        text = fh.read()
    section = text[text.index("## A one-minute tour"):]
    block = section[section.index("```sh\n") + len("```sh\n"):]
    block = block[: block.index("```")]
    return [command for command in (_without_comment(line) for line in block.splitlines()) if command]


def _without_comment(line: str) -> str:
    """``line`` up to a ``#`` that starts a shell comment (after white space, outside quotes)."""
    quote = None
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1] in " \t"):
            return line[:i].strip()
    return line.strip()


def test_the_tour_has_the_commands_the_test_knows():
    lines = tour_lines()
    assert lines[0] == "mkdir tour && cd tour" and lines[1] == "chant init"
    assert any("8080" in line for line in lines) and any("9090" in line for line in lines)
    assert lines[-1] == "chant daemon stop"


@pytest.mark.skipif(shutil.which("nc") is None or shutil.which("curl") is None,
                    reason="the tour uses nc (netcat-openbsd) and curl; .ci/run installs them")
def test_the_readme_tour_runs_as_written(tmp_path):
    from chantlib.client import daemon_alive, runtime_info

    today = time.strftime("%Y-%m-%d")
    ports = {"8080": str(free_port()), "9090": str(free_port())}  # free loopback ports for the README's
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    where = tmp_path / "pwd"
    cwd = str(tmp_path)
    ran = []
    try:
        for line in tour_lines():
            command = line
            for port, free in ports.items():
                command = command.replace(port, free)
            # run the line as written in the folder the tour is in, then note where it ends up
            script = f'{command}\nstatus=$?\npwd > "{where}"\nexit $status\n'
            proc = subprocess.run(["bash", "-c", script], cwd=cwd, env=env, capture_output=True, text=True,
                                  timeout=120)
            cwd = where.read_text().strip()
            ran.append((line, proc))
            assert proc.returncode == 0, (line, proc.stdout, proc.stderr)
            assert "Traceback" not in proc.stderr and "error:" not in proc.stderr, (line, proc.stderr)
            if line.startswith("chant show 001"):
                assert proc.stdout.startswith(f"{today}-001-") and "Fix the login redirect" in proc.stdout
            if line.startswith("chant queue next --claim"):
                assert proc.stdout.startswith(f"{today}-002-") and "\nLease: token " in proc.stdout
            if line.startswith(("echo ", "curl ")):
                answer = json.loads(proc.stdout)
                assert answer["ok"] is True and answer["result"]["spec"]["title"] == "Rotate the API tokens", answer
    finally:
        # the daemon the tour started is stopped, whatever happened (killed if it will not stop)
        for folder in {cwd, str(tmp_path / "tour")}:
            if not os.path.isdir(os.path.join(folder, ".chant")) or not daemon_alive(folder):
                continue
            pid = (runtime_info(folder) or {}).get("pid")
            subprocess.run([sys.executable, "-m", "chant_cli", "daemon", "stop", "--timeout", "20"], cwd=folder,
                           env=env, capture_output=True, timeout=60)
            if daemon_alive(folder) and isinstance(pid, int):
                os.kill(pid, signal.SIGKILL)
    assert [line for line, _proc in ran] == tour_lines()
