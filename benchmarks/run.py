#!/usr/bin/env python3
"""Benchmarks of the real ``chant`` command on generated repositories.

For each size N (500, 5,000 and 50,000 specs by default) a repository is generated with
:mod:`chantlib.generate` (kept under ``benchmarks/out/``, keyed by N, the seed and a hash of
the generator) and the installed ``chant`` executable is run in subprocesses: cold and warm
``list --ready``, warm ``search`` (free text and structured), a ``lock acquire`` +
``lock release`` pair and ``index rebuild``. Each command's wall time (``time.perf_counter``
around spawning and reaping the child) is reported as the median of K runs, next to the
median of a bare ``<python> -c pass`` measured interleaved with the commands, and as a
multiple of it ("×bare"). Peak memory (max RSS) is measured in one extra, untimed run of
each command under ``/usr/bin/time -f %M`` (see :func:`benchmarks.runner.memory_run` for why
not from the timed runs).

Usage::

    python benchmarks/run.py                              # all sizes, print markdown
    python benchmarks/run.py --write docs/benchmarks.md   # what `make bench` does
    python benchmarks/run.py --sizes 500,5000 --repeat 5
    python benchmarks/run.py --quick                      # N=500, K=3: a smoke run
    python benchmarks/run.py --scale                      # the scale table alone (make bench-scale)
    python benchmarks/run.py --renew --sizes 50000        # leases during long work alone
    python benchmarks/run.py --git                        # the daemon following git (make bench-git)
    python benchmarks/run.py --workers                    # the load test alone (make bench-workers)

After all of that (and the profile), :mod:`benchmarks.measures.daemon` measures the daemon on
the same repositories: cold and warm starts, the same CLI commands in daemon mode next to
direct mode, socket and HTTP round trips with 1 and 8 clients, watch latency, the daemon's
RSS and ``lock_renew`` while the daemon rebuilds its index (``--no-daemon`` skips it).

This file is the command; the work is in the package beside it: :mod:`benchmarks.runner`
(processes and daemons: the test suite's daemon runner), :mod:`benchmarks.measures`,
:mod:`benchmarks.report` (the markdown). Every subprocess has a timeout; a failing or
timed-out command is reported in the table, never a crash. Every daemon started is stopped,
on errors too.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time

if __package__ in (None, ""):
    # run as a file: this folder is the package `benchmarks` of the checkout (its own modules
    # must not be importable by their bare names, where they would shadow others')
    _here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _here] + [os.path.dirname(_here)]

from benchmarks.measures import daemon, renew, scale, workers  # noqa: E402
from benchmarks.measures import git as git_measure  # noqa: E402
from benchmarks.measures.direct import bench_size  # noqa: E402
from benchmarks.measures.profile import profile  # noqa: E402
from benchmarks.report import git as git_report  # noqa: E402
from benchmarks.report import renew as renew_report  # noqa: E402
from benchmarks.report import scale as scale_report  # noqa: E402
from benchmarks.report import workers as workers_report  # noqa: E402
from benchmarks.report.document import render, splice, write  # noqa: E402
from benchmarks.repos import (  # noqa: E402
    PACKAGES,
    bytecode_state,
    code_location,
    ensure_repo,
    find_chant,
    machine_info,
    script_python,
    source_stamps,
)
from benchmarks.runner import Measure, run  # noqa: E402
from benchmarks.settings import (  # noqa: E402
    DEFAULT_OUT,
    DEFAULT_REPEAT,
    DEFAULT_SEED,
    DEFAULT_SIZES,
    GIT_SIZES,
    RENEW_SIZES,
    ROOT,
    SCALE_SIZES,
)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="Benchmark the chant CLI on generated repositories.")
    p.add_argument("--sizes", help="comma-separated spec counts (default 500,5000,50000)")
    p.add_argument("--repeat", type=int, default=DEFAULT_REPEAT, help="runs per fast command (default 11)")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help="generator seed (default 7)")
    p.add_argument("--write", metavar="PATH", help="write the markdown to PATH (it is printed as well)")
    p.add_argument("--json", metavar="PATH",
                   help="write the raw runs as JSON to PATH (default with --write: <out>/last-run.json)")
    p.add_argument("--out", default=DEFAULT_OUT, help="where generated repositories are kept (default benchmarks/out)")
    p.add_argument("--chant", metavar="PATH", help="the chant executable to measure (default: the venv's)")
    p.add_argument("--no-compile", dest="compile", action="store_false",
                   help="do not byte-compile chantlib and chant_cli first")
    p.add_argument("--regenerate", action="store_true", help="generate the repositories again")
    p.add_argument("--quick", action="store_true", help="smoke run: --sizes 500 --repeat 3, no profile")
    p.add_argument("--profile", dest="profile", action="store_true", default=None,
                   help="after measuring, split warm list/search into import/operation/start-up at every size, "
                        "importtime at 5,000 and cProfile at 5,000 and the largest size (default: on unless --quick)")
    p.add_argument("--no-profile", dest="profile", action="store_false")
    p.add_argument("--no-daemon", dest="daemon", action="store_false",
                   help="skip the daemon's benchmarks (starts, daemon-mode CLI, round trips, watch latency, RSS)")
    p.add_argument("--scale", action="store_true",
                   help="only the scale table (issue 7: a change's cost up to 200,000 specs; default sizes "
                        "5000,50000,200000); with --write, it replaces that section of the file and nothing else")
    p.add_argument("--before", metavar="JSON",
                   help="with --scale: a scale run's JSON (--json of an earlier run, e.g. of the code before a "
                        "change) whose figures are shown beside this run's")
    p.add_argument("--label", help="with --scale --json: what code this run measured (shown as the 'before' label)")
    p.add_argument("--renew", action="store_true",
                   help="only leases during long work (issue 8: `lock_renew` idle and while the daemon rebuilds "
                        "its index; default size 50000); with --write, it replaces that section of the file alone")
    p.add_argument("--git", action="store_true",
                   help="only the daemon following git (issue 9: commit -> hash recorded, checkout -> index "
                        "follows, idle CPU; default sizes 5000,50000); with --write, it replaces that section alone")
    p.add_argument("--idle-seconds", type=float, default=30.0,
                   help="with --git: how long the daemon's idle CPU is measured, each way (default 30)")
    p.add_argument("--workers", action="store_true",
                   help="only the load test (issue 10: 2,000 ready specs, 32 `chant agent worker` processes, "
                        "socket and HTTP, then with a SIGKILL and a daemon restart; --specs, --worker-count); "
                        "with --write, it replaces that section of the file alone")
    p.add_argument("--specs", type=int, default=workers.SPECS, help="with --workers: ready specs (default 2000)")
    p.add_argument("--worker-count", type=int, default=workers.WORKERS,
                   help="with --workers: worker processes, half on the socket, half over HTTP (default 32)")
    args = p.parse_args(argv)
    if args.quick:
        args.sizes = args.sizes or "500"
        args.repeat = 3
        if args.profile is None:
            args.profile = False
    if args.profile is None:
        args.profile = True
    try:
        args.size_list = [int(s.replace("_", "").replace(",", "")) for s in (args.sizes or "").split(",") if s.strip()]
    except ValueError:
        p.error(f"--sizes: not a list of numbers: {args.sizes!r}")
    if not args.size_list:
        args.size_list = list(SCALE_SIZES if args.scale else RENEW_SIZES if args.renew else
                              GIT_SIZES if args.git else DEFAULT_SIZES)
    if sum((args.scale, args.renew, args.git, args.workers)) > 1:
        p.error("--scale, --renew, --git and --workers each measure their own section: one at a time")
    if args.repeat < 1:
        p.error("--repeat must be at least 1")
    args.out = os.path.abspath(args.out)
    return args


def _ended(info: dict, started: float, log) -> None:
    """The load average at the end, and the total time, of a section's run."""
    try:
        info["loadavg_end"] = os.getloadavg()
    except OSError:
        info["loadavg_end"] = None
    log(f"total {time.perf_counter() - started:.0f}s")


def _publish(args, text: str, section, name: str, raw, log) -> int:
    """A section's markdown spliced into --write's file (``section``: its begin and end
    markers), its raw figures written as JSON (--json, else beside the repositories), and
    the markdown printed."""
    begin, end = section
    if args.write:
        splice(args.write, text, begin, end)
        log(f"wrote the {name} section of {args.write}")
    json_path = args.json or (os.path.join(args.out, f"last-{name}-run.json") if args.write else None)
    if json_path:
        os.makedirs(os.path.dirname(os.path.abspath(json_path)), exist_ok=True)
        with open(json_path, "w", encoding="utf-8") as fh:
            json.dump(raw, fh, indent=2, default=str)
    print(text)
    return 0


def scale_main(args, chant: str, python: str, info: dict, log) -> int:
    """`--scale`: the scale table alone (see :func:`benchmarks.measures.scale.scale_bench`),
    spliced into --write's file."""
    baseline = Measure("bare")
    env = dict(os.environ, NO_COLOR="1")
    env.pop("CHANT_DEBUG", None)
    results = []
    started = time.perf_counter()
    for n in args.size_list:
        root, counts, error = ensure_repo(args.out, n, args.seed, python, args.regenerate, log)
        res = {"n": n, "root": root, "counts": counts}
        if error:
            res["scale"] = {"errors": [error]}
        else:
            t0 = time.perf_counter()
            try:
                res["scale"] = scale.scale_bench(res, args, chant, python, env, baseline,
                                                        log)
            except Exception as exc:  # reported in the document, never a crash (daemons are stopped inside)
                res["scale"] = {"errors": [f"the scale benchmark failed: {type(exc).__name__}: {exc}"]}
            log(f"[{n}] scale done in {time.perf_counter() - t0:.0f}s")
        results.append(res)
    _ended(info, started, log)
    before = None
    if args.before:
        with open(args.before, encoding="utf-8") as fh:
            before = json.load(fh)
    bare = baseline.median
    text = "\n".join(scale_report.render_scale(results, bare, info, before))
    load, load_end = info.get("loadavg"), info.get("loadavg_end")
    raw = {
        "label": args.label or f"commit {info.get('commit')} ({info.get('code')})",
        "date": info.get("date"),
        "load": f"load {load[0]:.2f} → {load_end[0]:.2f}" if load and load_end else "load unknown",
        "info": info,
        "bare": bare,
        "figures": {str(r["n"]): scale_report.scale_figures(r["scale"], bare) for r in results if r.get("scale")},
        "results": [{"n": r["n"], "scale": daemon.to_json(r.get("scale") or {})} for r in results],
    }
    return _publish(args, text, (scale_report.SCALE_BEGIN, scale_report.SCALE_END), "scale", raw, log)


def renew_main(args, chant: str, python: str, info: dict, log) -> int:
    """`--renew`: leases during long work alone (see :mod:`benchmarks.measures.renew`),
    spliced into --write's file."""
    env = dict(os.environ, NO_COLOR="1")
    env.pop("CHANT_DEBUG", None)
    results = []
    for n in args.size_list:
        root, counts, error = ensure_repo(args.out, n, args.seed, python, args.regenerate, log)
        res = {"n": n, "root": root, "counts": counts}
        if error:
            res["renew"] = {"idle": [], "busy": [], "rebuild": None, "errors": [error]}
        else:
            try:
                res["renew"] = renew.renew_bench(res, args, chant, python, env, log)
            except Exception as exc:  # reported in the document, never a crash (the daemon is stopped inside)
                res["renew"] = {"idle": [], "busy": [], "rebuild": None,
                                "errors": [f"the renew benchmark failed: {type(exc).__name__}: {exc}"]}
        results.append(res)
    text = "\n".join(renew_report.render_renew(results, info))
    return _publish(args, text, (renew_report.RENEW_BEGIN, renew_report.RENEW_END), "renew",
                    {"info": info, "results": [{"n": r["n"], "renew": r["renew"]} for r in results]}, log)


def _any_generated(args, n: int, log) -> tuple[str, dict, None] | None:
    """A repository of ``n`` specs and this seed already generated, by this generator or an
    earlier one (the git benchmark only copies it): ``None`` if none, or with --regenerate."""
    import glob

    if args.regenerate:
        return None
    from benchmarks.repos import generator_hash

    found = sorted(glob.glob(os.path.join(args.out, f"n{n}-seed{args.seed}-*", "bench-repo.json")),
                   key=lambda p: (generator_hash() not in p, p))
    if not found:
        return None
    root = os.path.dirname(found[0])
    if generator_hash() not in root:
        log(f"[{n}] using {root} (an earlier generator's; it is copied, never changed)")
    with open(found[0], encoding="utf-8") as fh:
        return root, json.load(fh), None


def git_main(args, chant: str, python: str, info: dict, log) -> int:
    """`--git`: the daemon following git alone (see :mod:`benchmarks.measures.git`), spliced
    into --write's file."""
    env = dict(os.environ, NO_COLOR="1")
    env.pop("CHANT_DEBUG", None)
    r = run(["git", "--version"], cwd=ROOT, timeout=60)
    info["git"] = r.stdout.strip().removeprefix("git version ") if r.ok() else None
    results = []
    started = time.perf_counter()
    for n in args.size_list:
        root, counts, error = _any_generated(args, n, log) or ensure_repo(args.out, n, args.seed, python,
                                                                           args.regenerate, log)
        res = {"n": n, "root": root, "counts": counts}
        if error:
            res["git"] = {"errors": [error], "on": {}, "off": {}}
        else:
            t0 = time.perf_counter()
            try:
                res["git"] = git_measure.git_bench(res, args, chant, python, env, log)
            except Exception as exc:  # reported in the document, never a crash (daemons are stopped inside)
                res["git"] = {"errors": [f"the git benchmark failed: {type(exc).__name__}: {exc}"], "on": {},
                              "off": {}}
            log(f"[{n}] git done in {time.perf_counter() - t0:.0f}s")
        results.append(res)
    _ended(info, started, log)
    text = "\n".join(git_report.render_git(results, info))
    return _publish(args, text, (git_report.GIT_BEGIN, git_report.GIT_END), "git",
                    {"info": info, "results": [{"n": r["n"], "git": r["git"]} for r in results]}, log)


def workers_main(args, chant: str, python: str, info: dict, log) -> int:
    """`--workers`: the load test alone (see :mod:`benchmarks.measures.workers`), spliced into
    --write's file."""
    env = dict(os.environ, NO_COLOR="1")
    env.pop("CHANT_DEBUG", None)
    started = time.perf_counter()
    res = workers.bench([chant], python, chant, env, log, specs=args.specs, workers=args.worker_count)
    _ended(info, started, log)
    text = "\n".join(workers_report.render_workers(res, info))
    return _publish(args, text, (workers_report.WORKERS_BEGIN, workers_report.WORKERS_END), "workers",
                    {"info": info, "workers": res}, log)


def _terminate(signum, _frame):
    raise SystemExit(128 + signum)  # unwinds through the finally blocks that stop daemons


def main(argv=None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    chant = os.path.abspath(args.chant) if args.chant else find_chant()
    python = script_python(chant)
    log(f"chant: {chant}; python: {python}; sizes {args.size_list}; repeat {args.repeat}")
    if args.compile:  # what `make install` does: the CLI must not compile its modules on each start
        r = run([python, "-m", "compileall", "-q", *PACKAGES], cwd=ROOT, timeout=600)
        if not r.ok():
            log(f"warning: compileall failed: {r.why()}")
    info = machine_info(python)
    info["code"] = code_location(python)
    info["bytecode"] = bytecode_state()
    if args.scale:
        return scale_main(args, chant, python, info, log)
    if args.renew:
        return renew_main(args, chant, python, info, log)
    if args.git:
        return git_main(args, chant, python, info, log)
    if args.workers:
        return workers_main(args, chant, python, info, log)
    stamps = source_stamps()
    baseline = Measure("bare")
    results = []
    started = time.perf_counter()
    for n in args.size_list:
        t0 = time.perf_counter()
        results.append(bench_size(n, args, chant, python, baseline, log))
        log(f"[{n}] done in {time.perf_counter() - t0:.0f}s")
    prof = None
    if args.profile:
        prof = profile(results, python, dict(os.environ, NO_COLOR="1"), log)
    if args.daemon:  # last: its probes and leases must not disturb the direct-mode figures
        env = dict(os.environ, NO_COLOR="1")
        env.pop("CHANT_DEBUG", None)
        for r in results:
            if not r.get("root"):
                continue
            t0 = time.perf_counter()
            try:
                r["daemon"] = daemon.bench(r, args, chant, python, env, baseline, log)
            except Exception as exc:  # reported in the document, never a crash (daemons are stopped inside)
                r["daemon"] = {"errors": [f"the daemon benchmark failed: {type(exc).__name__}: {exc}"]}
            log(f"[{r['n']}] daemon done in {time.perf_counter() - t0:.0f}s")
    try:
        info["loadavg_end"] = os.getloadavg()
    except OSError:
        info["loadavg_end"] = None
    info["changed_during_run"] = sorted(k for k, v in source_stamps().items() if stamps.get(k) != v)
    log(f"total {time.perf_counter() - started:.0f}s")
    text = render(results, baseline, info, args, chant, python, prof)
    if args.write:
        write(args.write, text, results)
        log(f"wrote {args.write}")
    json_path = args.json or (os.path.join(args.out, "last-run.json") if args.write else None)
    if json_path:
        raw = {
            "info": info, "baseline": baseline.to_dict(), "profile": prof,
            "results": [
                {k: ({mk: mv.to_dict() for mk, mv in v.items()} if k == "measures" else
                     daemon.to_json(v) if k == "daemon" else
                     v.to_dict() if isinstance(v, Measure) else v) for k, v in r.items()}
                for r in results
            ],
        }
        os.makedirs(os.path.dirname(os.path.abspath(json_path)), exist_ok=True)
        with open(json_path, "w", encoding="utf-8") as fh:
            json.dump(raw, fh, indent=2, default=str)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
