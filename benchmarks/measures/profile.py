"""Where the warm commands spend their time, after the measurements: a child timing its own
import and ``main(argv)``, ``-X importtime``, and cProfile."""

from __future__ import annotations

import re
import statistics

from ..runner import run
from ..settings import FAST_TIMEOUT, FREE_QUERY, ROOT, SLOW_TIMEOUT, STRUCT_QUERY

_BREAKDOWN = """\
import time
t0 = time.perf_counter()
import io, sys  # already loaded at start-up: free
from chant_cli.main import main
t1 = time.perf_counter()
real, sys.stdout = sys.stdout, io.StringIO()
try:
    code = main(sys.argv[1:])
finally:
    sys.stdout = real
t2 = time.perf_counter()
real.write(f"{t1 - t0!r} {t2 - t1!r} {code!r}\\n")
"""


_CPROFILE = """\
import cProfile, io, pstats, sys
from chant_cli.main import main
pr = cProfile.Profile()
real, sys.stdout = sys.stdout, io.StringIO()
pr.enable()
try:
    main(sys.argv[1:])
finally:
    pr.disable()
    sys.stdout = real
s = io.StringIO()
pstats.Stats(pr, stream=s).sort_stats("tottime").print_stats(14)
print(s.getvalue())
"""


PROFILED = (
    ("warm_list", ["--direct", "list", "--ready"]),
    ("search_free", ["--direct", "search", FREE_QUERY]),
    ("search_struct", ["--direct", "search", STRUCT_QUERY]),
)


def breakdown(root: str, python: str, env: dict, runs: int = 5, commands=PROFILED,
              timeout: float = SLOW_TIMEOUT) -> dict:
    """Split commands into ``import chant_cli.main``, ``main(argv)`` and the rest.

    ``commands`` is a sequence of (key, argv). Each run is a child that times its own import
    and ``main(argv)``; its wall time is taken from outside as for the table, so "rest"
    (start-up, teardown, exit) comes from the same run. Medians of ``runs``, by key.
    """
    out = {}
    for key, argv in commands:
        series: dict[str, list] = {"wall": [], "import": [], "op": [], "rest": []}
        for _ in range(runs):
            r = run([python, "-c", _BREAKDOWN, *argv], cwd=root, timeout=timeout, env=env)
            try:
                imp, op, code = r.stdout.strip().splitlines()[-1].split()
                imp, op = float(imp), float(op)
            except (ValueError, IndexError):
                continue
            if r.ok() and code in ("0", "5"):
                series["wall"].append(r.wall)
                series["import"].append(imp)
                series["op"].append(op)
                series["rest"].append(r.wall - imp - op)
        if series["wall"]:
            out[key] = {k: statistics.median(v) for k, v in series.items()}
    return out


def importtime(root: str, python: str, env: dict, argv: list[str], top: int = 8) -> dict:
    """``python -X importtime -m chant_cli ARGV``: the heaviest top-level imports (microseconds)."""
    r = run([python, "-X", "importtime", "-m", "chant_cli", *argv], cwd=root, timeout=FAST_TIMEOUT, env=env)
    if not r.ok((0, 5)):
        return {"error": r.why()}
    rows = []
    for line in r.stderr.splitlines():
        mt = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)", line)
        if mt:
            rows.append((int(mt.group(2)), int(mt.group(1)), len(mt.group(3)) // 2, mt.group(4)))
    top_level = [row for row in rows if row[2] == 0]  # cumulative covers the whole subtree
    return {
        "modules": len(rows),
        "total_us": sum(row[0] for row in top_level),
        "top": sorted(top_level, reverse=True)[:top],
    }


def cprofile(root: str, python: str, env: dict, argv: list[str]) -> str:
    r = run([python, "-c", _CPROFILE, *argv], cwd=root, timeout=SLOW_TIMEOUT, env=env)
    if not r.ok((0, 5)):
        return f"(failed: {r.why()})"
    lines = r.stdout.splitlines()
    start = next((i for i, ln in enumerate(lines) if "function calls" in ln), 0)
    keep = [ln.rstrip() for ln in lines[start:] if ln.strip() and not ln.strip().startswith(("Ordered by", "List reduced"))]
    return "\n".join(keep).replace(ROOT + "/", "")


def profile(results: list[dict], python: str, env: dict, log) -> dict:
    """Where the warm commands spend their time (after the measurements, never during them)."""
    done = [r for r in results if r.get("root")]
    if not done:
        return {}
    prof: dict = {"breakdown": {}, "importtime": {}, "cprofile": {}}
    for r in done:
        log(f"[{r['n']}] profiling: in-process breakdown")
        prof["breakdown"][r["n"]] = breakdown(r["root"], python, env)
    sizes = {r["n"]: r for r in done}
    target = sizes.get(5000) or min(done, key=lambda r: r["n"])
    log(f"[{target['n']}] profiling: importtime")
    prof["importtime"]["--direct list --ready"] = importtime(target["root"], python, env, ["--direct", "list", "--ready"])
    lock_id = target.get("facts", {}).get("lock_id")
    if lock_id:
        prof["importtime"]["--direct lock acquire"] = importtime(target["root"], python, env,
                                                                 ["--direct", "lock", "acquire", lock_id])
        run([python, "-m", "chant_cli", "--direct", "lock", "release", lock_id, "--force"], target["root"],
            FAST_TIMEOUT, env)
    prof["importtime_n"] = target["n"]
    biggest = max(done, key=lambda x: x["n"])
    for r in sorted({target["n"]: target, biggest["n"]: biggest}.values(), key=lambda x: x["n"]):
        log(f"[{r['n']}] profiling: cProfile")
        prof["cprofile"][r["n"]] = {
            "--direct list --ready": cprofile(r["root"], python, env, ["--direct", "list", "--ready"]),
            f'--direct search "{FREE_QUERY}"': cprofile(r["root"], python, env, ["--direct", "search", FREE_QUERY]),
        }
    return prof
