"""The measured installation and the generated repositories: the `chant` executable and its
interpreter, the bytecode check, a repository per size (generated once, kept under
``benchmarks/out/``), and the facts about the machine printed at the top of the document."""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys

from .runner import run
from .settings import GEN_TIMEOUT, ROOT


def find_chant() -> str:
    """The installed ``chant`` script: next to this interpreter, else the project's venv, else PATH."""
    for candidate in (
        os.path.join(os.path.dirname(sys.executable), "chant"),
        os.path.join(ROOT, ".venv", "bin", "chant"),
    ):
        if os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("chant")
    if not found:
        raise SystemExit("error: no `chant` executable (run `make install`)")
    return found


def script_python(script: str) -> str:
    """The interpreter in the script's ``#!`` line (what the bare baseline must start)."""
    try:
        with open(script, "rb") as fh:
            first = fh.readline().decode("utf-8", "replace").strip()
    except OSError:
        return sys.executable
    if first.startswith("#!"):
        parts = first[2:].split()
        if parts and os.path.basename(parts[0]) != "env" and os.access(parts[0], os.X_OK):
            return parts[0]
    return sys.executable


PACKAGES = ("chantlib", "chant_cli", "chantd")  # chantd: the daemon's start-up is measured too


def bytecode_state() -> str:
    """Whether the packages have up-to-date bytecode (they must: PYTHONDONTWRITEBYTECODE)."""
    import importlib.util

    missing = []
    for pkg in PACKAGES:
        folder = os.path.join(ROOT, pkg)
        for name in sorted(os.listdir(folder)):
            if not name.endswith(".py"):
                continue
            src = os.path.join(folder, name)
            pyc = importlib.util.cache_from_source(src)
            try:
                if os.stat(pyc).st_mtime < os.stat(src).st_mtime:
                    missing.append(f"{pkg}/{name}")
            except OSError:
                missing.append(f"{pkg}/{name}")
    return "up to date" if not missing else f"MISSING/STALE for {len(missing)} module(s): {', '.join(missing[:5])}"


def source_stamps() -> dict[str, int]:
    """mtime of every module of the package, to tell whether the code changed during the run."""
    stamps = {}
    for pkg in PACKAGES:
        folder = os.path.join(ROOT, pkg)
        for name in os.listdir(folder):
            if name.endswith(".py"):
                try:
                    stamps[f"{pkg}/{name}"] = os.stat(os.path.join(folder, name)).st_mtime_ns
                except OSError:
                    pass
    return stamps


def generator_hash() -> str:
    with open(os.path.join(ROOT, "chantlib", "generate.py"), "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()[:10]


def ensure_repo(out_dir: str, n: int, seed: int, python: str, regenerate: bool, log) -> tuple[str | None, dict, str | None]:
    """The repository for ``n`` specs (generated if not there yet): (root, counts, error)."""
    key = f"n{n}-seed{seed}-{generator_hash()}"
    root = os.path.join(out_dir, key)
    meta = os.path.join(root, "bench-repo.json")
    if regenerate and os.path.isdir(root):
        shutil.rmtree(root)
    if os.path.isfile(meta):
        with open(meta, encoding="utf-8") as fh:
            return root, json.load(fh), None
    os.makedirs(out_dir, exist_ok=True)
    tmp = os.path.join(out_dir, f".tmp-{key}-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    log(f"[{n}] generating {n} specs (seed {seed}) into {root} ...")
    code = (
        "import json, sys\n"
        "from chantlib.generate import generate\n"
        "counts = generate(sys.argv[1], int(sys.argv[2]), seed=int(sys.argv[3]))\n"
        "json.dump(counts, open(sys.argv[1] + '/bench-repo.json', 'w'))\n"
    )
    r = run([python, "-c", code, tmp, str(n), str(seed)], cwd=ROOT, timeout=GEN_TIMEOUT)
    if not r.ok():
        shutil.rmtree(tmp, ignore_errors=True)
        return None, {}, f"generation failed: {r.why()}"
    os.replace(tmp, root) if not os.path.exists(root) else shutil.rmtree(tmp, ignore_errors=True)
    log(f"[{n}] generated in {r.wall:.1f}s")
    with open(meta, encoding="utf-8") as fh:
        return root, json.load(fh), None


def folder_bytes(path: str) -> int:
    """Apparent size: the sum of the file sizes under ``path``."""
    total = 0
    for folder, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(folder, name)).st_size
            except OSError:
                pass
    return total


def machine_info(python: str) -> dict:
    info = {"nproc": os.cpu_count()}
    try:
        info["nproc"] = int(subprocess.run(["nproc"], capture_output=True, text=True, timeout=10).stdout.strip())
    except (OSError, ValueError, subprocess.SubprocessError):
        pass
    model = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info["cpu"] = model
    try:
        r = subprocess.run([python, "-c", "import sys; print(sys.version.split()[0])"], capture_output=True,
                           text=True, timeout=30)
        info["python"] = r.stdout.strip() or platform.python_version()
    except (OSError, subprocess.SubprocessError):
        info["python"] = platform.python_version()
    try:
        info["memory"] = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        info["memory"] = None
    info["kernel"] = platform.release()
    try:
        info["loadavg"] = os.getloadavg()
    except OSError:
        info["loadavg"] = None
    for name, argv in (("commit", ["git", "rev-parse", "--short", "HEAD"]), ("dirty", ["git", "status", "--porcelain", "--", *PACKAGES, "pyproject.toml"])):
        try:
            r = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=30)
            info[name] = r.stdout.strip() if r.returncode == 0 else None
        except (OSError, subprocess.SubprocessError):
            info[name] = None
    info["date"] = _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    return info


def code_location(python: str) -> str:
    """Where the measured interpreter imports chantlib from (PYTHONPATH may point elsewhere)."""
    try:
        r = subprocess.run([python, "-c", "import chantlib, os; print(os.path.dirname(os.path.dirname(chantlib.__file__)))"],
                           capture_output=True, text=True, timeout=60, cwd="/")  # not this folder: -c puts it first
        return r.stdout.strip() or "?"
    except (OSError, subprocess.SubprocessError):
        return "?"
