"""The whole of ``docs/benchmarks.md``, and the splicing of a section a run does not
measure (the scale table, leases during long work) into the file it rewrites."""

from __future__ import annotations

import os
import re
import statistics

from ..measures.direct import LABELS, ROWS
from ..runner import Measure, rss_method
from ..settings import DEFAULT_REPEAT, FREE_QUERY, STRUCT_QUERY
from . import daemon, direct, renew
from .git import GIT_BEGIN, GIT_END
from .renew import RENEW_BEGIN, RENEW_END
from .scale import SCALE_BEGIN, SCALE_END
from .text import cell, fmt_bytes, fmt_rss, fmt_time, times_bare
from .workers import WORKERS_BEGIN, WORKERS_END


def render(results: list[dict], baseline: Measure, info: dict, args, chant: str, python: str, prof: dict | None) -> str:
    bare = baseline.median
    lines: list[str] = []
    add = lines.append
    add("# Benchmarks")
    add("")
    add("Wall time, peak memory and index size of the real `chant` command on generated repositories, "
        "each figure next to the start-up time of a bare Python interpreter measured in the same run; "
        "then the daemon (`chantd`) on the same repositories: start-up, the CLI in daemon mode, socket and "
        "HTTP round trips, watch latency and memory (a \"Daemon\" part in each size's section).")
    add("")
    dirty = " (plus uncommitted changes in `chantlib`/`chant_cli`/`chantd`)" if info.get("dirty") else ""
    mem = f", {info['memory'] / 2**30:.1f} GiB RAM" if info.get("memory") else ""
    load, load_end = info.get("loadavg"), info.get("loadavg_end")
    loads = ""
    if load:
        loads = f" (1-minute load average {load[0]:.2f} at the start"
        loads += f", {load_end[0]:.2f} at the end)" if load_end else ")"
    add(f"- **Machine:** {info['nproc']} CPU(s) (`nproc`), {info['cpu']}{mem}, Linux {info['kernel']}; "
        f"shared and noisy{loads}")
    add(f"- **Python:** {info['python']} (`{python}`)")
    add(f"- **Date:** {info['date']}; **commit:** `{info.get('commit') or 'unknown'}`{dirty}")
    add(f"- **Generator:** `chantlib.generate`, seed {args.seed} (about 60% of specs archived); "
        f"repositories kept in `benchmarks/out/`")
    add(f"- **Bytecode** of `chantlib`/`chant_cli`/`chantd` at the start: {info.get('bytecode')} (`PYTHONDONTWRITEBYTECODE` "
        f"is {'set' if os.environ.get('PYTHONDONTWRITEBYTECODE') else 'not set'}, so the runner compiles it first, "
        "as `make install` does)")
    changed = info.get("changed_during_run")
    if changed:
        add(f"- **Warning:** source changed while the benchmark ran (stale bytecode is recompiled on every start, "
            f"and the numbers may mix two versions): {', '.join(f'`{c}`' for c in changed)}")
    add(f"- **Baseline (bare):** `{os.path.basename(python)} -c pass`, median of {len(baseline.walls)} runs "
        f"interleaved with the commands: **{fmt_time(bare)}** (min {fmt_time(baseline.min)})")
    add("- **Reproduce:** `make bench` (= `.venv/bin/python benchmarks/run.py --write docs/benchmarks.md`); "
        "`--sizes 500,5000`, `--repeat K`, `--quick` for a smoke run")
    add("")

    add("## Targets")
    add("")
    add("| Target | Measured | Verdict |")
    add("|---|---|---|")
    for name, measured, verdict in (direct.target_rows(results, bare) + daemon.target_rows(results, bare)
                                    + renew.target_rows(results)):
        add(f"| {name} | {measured} | {verdict} |")
    add("")
    if any(renew.renew_of(r) is not None for r in results):
        lines.extend(renew.render_renew(results, info))
        add("")

    for r in results:
        n = r["n"]
        add(f"## {n:,} specs")
        add("")
        c = r.get("counts") or {}
        f = r.get("facts") or {}
        if c:
            add(f"{c.get('specs', n):,} spec files: {c.get('active', '?'):,} active, {c.get('archived', '?'):,} "
                f"archived, {c.get('members', '?'):,} group members; "
                f"{f.get('ready', '?')} ready; `search \"{FREE_QUERY}\"` matches {f.get('hits_free', '?')}, "
                f"`search '{STRUCT_QUERY}'` matches {f.get('hits_struct', '?')}.")
            add("")
        for err in r["errors"]:
            add(f"- **error:** {err}")
        if r["errors"]:
            add("")
        if not r.get("root"):
            continue
        rep = r.get("repeats", {})
        local = r["bare_local"]
        add(f"Repeats: {rep.get('fast')} for warm commands, {rep.get('slow')} for cold list and rebuild. "
            f"Bare interpreter during this size: median {fmt_time(local.median)} "
            f"({len(local.walls)} runs); ×bare below uses the whole run's {fmt_time(bare)}.")
        add("")
        add("| Measure | Median | Min | ×bare | Runs ok | Peak RSS |")
        add("|---|---|---|---|---|---|")
        add(f"| {LABELS['bare']} | {fmt_time(bare)} | {fmt_time(baseline.min)} | 1.0× | {len(baseline.walls)} | "
            f"{fmt_rss(baseline.peak_rss)} |")
        for key, label in ROWS[1:]:
            add(f"| {label} | " + " | ".join(cell(r["measures"][key], bare)) + " |")
        reb = r["measures"]["rebuild"]
        if reb.reported:
            add(f"| `index rebuild` as reported by the command | {fmt_time(statistics.median(reb.reported))} | "
                f"{fmt_time(min(reb.reported))} | {times_bare(statistics.median(reb.reported), bare)} | "
                f"{len(reb.reported)} | — |")
        add(f"| index size: `.chant/.index/` total | {fmt_bytes(f.get('index_bytes'))} | | | | |")
        add(f"| index size: tantivy part | {fmt_bytes(f.get('tantivy_bytes'))} | | | | |")
        add(f"| index documents / segments (`index status --json`) | {f.get('documents', '—')} / "
            f"{f.get('segments', '—')} | | | | |")
        add("")
        wb, wa = f.get("warm_before"), f.get("warm_after")
        if wb or wa:
            add(f"Warm check (`index status --json` before/after the warm runs): "
                f"changed since last run {wb and wb.get('changed_since_last_run')}/{wa and wa.get('changed_since_last_run')}, "
                f"stale {wb and wb.get('stale')}/{wa and wa.get('stale')}.")
            add("")
        daemon.render_size(add, r, bare)

    if prof:
        direct.render_profile(add, prof, results, bare)

    add("## Method")
    add("")
    add("- Every command is the installed `chant` script run with `subprocess` (stdin from /dev/null, output "
        "to a temp file), with `--direct` (in process, no daemon probe), except the row \"without `--direct`\", "
        "which shows the default mode's cost when no daemon runs. Wall time is `time.perf_counter()` from just before the spawn to the reap, so it "
        "includes interpreter start-up and imports, as a user sees it.")
    add(f"- Figures are the **median** of K runs (K = `--repeat`, default {DEFAULT_REPEAT}, for the warm commands; at most 5 for "
        "cold list and rebuild, and at 50,000 specs at most 5 warm / 3 slow runs); **min** is the fastest run.")
    add("- **Baseline:** a bare `<venv python> -c pass` (the interpreter in the `chant` script's `#!` line), run "
        "before every round of warm commands, every cold run and every rebuild; its median over the whole run is "
        "the unit of the \"×bare\" column. Per-size medians are printed to show drift.")
    add("- **×bare targets** are judged on the **paired ratio**: each run divided by the bare interpreter run at the "
        "start of its own round, then the median of those ratios. A load spike on this shared machine slows the "
        "bare run and the commands of its round alike, so the paired ratio moves less than a median divided by the "
        "whole run's bare; the Targets table shows both, and flags the second where it is over the limit.")
    add("- **Cold** = `.chant/.index/` deleted before each run (spec table and tantivy index rebuilt from the "
        "files); the OS page cache is **not** dropped, so the spec files are read from memory. **Warm** = the "
        "cache exists and nothing changed (unmeasured warm-up runs first; checked with `index status --json`).")
    add("- `lock` = `lock acquire <id>` then `lock release <id>` on one ready spec, the sum of the two wall times.")
    add("- `index rebuild` runs with `--json`; \"reported by the command\" is its own `seconds` field (in-process "
        "time, without interpreter start-up).")
    if rss_method() == "time":
        add("- **Peak RSS** (max resident set size) comes from one extra, untimed run of each command under "
            "`/usr/bin/time -f %M` (for the lock pair, the larger of the two commands). Not from the timed runs: "
            "a child spawned straight from the Python runner inherits the runner's high-water RSS across "
            "fork/vfork + exec, and `getrusage(RUSAGE_CHILDREN)` is a running maximum over all children, so "
            "neither gives a per-command figure.")
    else:
        add("- **Peak RSS** is `ru_maxrss` from `os.wait4` of one extra run per command (`/usr/bin/time` was "
            "missing). It is an upper bound: it includes the runner's own RSS, inherited across fork + exec.")
    add("- **Index size** is the apparent size (sum of file sizes) of `.chant/.index/` and of its `tantivy/` "
        "folder, measured right after a rebuild.")
    daemon.render_method(add)
    add("- Every subprocess has a timeout; a failed or timed-out run is shown in the table instead of a time.")
    add("")
    return "\n".join(lines)


#: where a section of its own goes in a file that has none yet: before the first size's section
_FIRST_SIZE = re.compile(r"\n## [0-9,]+ specs\n")


def splice(path: str, section: str, begin: str, end: str) -> None:
    """Put ``section`` (from its ``begin`` marker to its ``end`` marker) into ``path``: in
    place of the old one, else after the Targets, before the first size's section."""
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except FileNotFoundError:
        text = ""
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + section + rest.split(end, 1)[1]
    else:
        found = _FIRST_SIZE.search(text)
        at = found.start() if found else len(text)
        text = text[:at].rstrip("\n") + "\n\n" + section + "\n" + text[at:]
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)


def kept(path: str | None, begin: str, end: str) -> str | None:
    """The section between ``begin`` and ``end`` of the file a run is about to rewrite (kept
    as it is when this run does not measure it)."""
    if not path:
        return None
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError:
        return None
    if begin in text and end in text:
        return begin + text.split(begin, 1)[1].split(end, 1)[0] + end
    return None


def write(path: str, text: str, results: list[dict]) -> None:
    """Write the whole document to ``path``, keeping the sections this run did not measure:
    the scale table (`make bench-scale`), the git section (`make bench-git`), the load test
    (`make bench-workers`), and leases during long work when the daemon's
    benchmarks were skipped."""
    keep = [(kept(path, SCALE_BEGIN, SCALE_END), SCALE_BEGIN, SCALE_END),
            (kept(path, GIT_BEGIN, GIT_END), GIT_BEGIN, GIT_END),
            (kept(path, WORKERS_BEGIN, WORKERS_END), WORKERS_BEGIN, WORKERS_END)]
    if not any(renew.renew_of(r) is not None for r in results):
        keep.append((kept(path, RENEW_BEGIN, RENEW_END), RENEW_BEGIN, RENEW_END))
    os.makedirs(os.path.dirname(os.path.abspath(path)) or ".", exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text + "\n")
    for section, begin, end in keep:
        if section is not None:
            splice(path, section, begin, end)
