"""The direct-mode part of the document: its target rows and the profile section."""

from __future__ import annotations

import statistics

from ..measures.direct import LABELS
from ..measures.profile import PROFILED
from ..settings import FREE_QUERY, STRUCT_QUERY
from .text import fmt_time, ratio_cell


def target_rows(results: list[dict], bare: float | None) -> list[tuple[str, str, str]]:
    by_n = {r["n"]: r for r in results}

    def ratio_target(n: int, key: str, label: str):
        name = f"{label} at {n:,} specs within 6× a bare interpreter start"
        r = by_n.get(n)
        if r is None or not r["measures"]:
            return name, "not measured (size not run)", "—"
        meas = r["measures"][key]
        if meas.median is None or meas.paired is None or not bare:
            return name, "failed to run", "❌ FAIL"
        return name, ratio_cell(meas, bare, 6, fmt_time), "✅ PASS" if meas.paired <= 6 else "❌ FAIL"

    rows = [
        ratio_target(5000, "warm_list", "warm direct `chant list --ready`"),
        ratio_target(5000, "search_free", f'warm `chant search "{FREE_QUERY}"`'),
        ratio_target(5000, "search_struct", f"warm `chant search '{STRUCT_QUERY}'`"),
    ]
    name = "index build (`chant index rebuild`) of 50,000 specs under 60 s"
    r = by_n.get(50000)
    if r is None or not r["measures"]:
        rows.append((name, "not measured (size not run)", "—"))
    else:
        meas = r["measures"]["rebuild"]
        if meas.median is None:
            rows.append((name, "failed to run", "❌ FAIL"))
        else:
            rep = f"; command reports {statistics.median(meas.reported):.1f} s" if meas.reported else ""
            rows.append((name, f"{meas.median:.1f} s wall (median of {len(meas.walls)}){rep}",
                         "✅ PASS" if meas.median < 60 else "❌ FAIL"))
    return rows


def render_profile(add, prof: dict, results: list[dict], bare: float | None) -> None:
    add("## Where the time goes")
    add("")
    add("Measured after the benchmark, warm, median of 5 runs of a child that times its own "
        "`from chant_cli.main import main` and `main(argv)` (output discarded), while the runner times the whole "
        "child from outside as for the tables. \"Rest\" is that wall time minus the two parts: interpreter "
        f"start-up, teardown and exit (a bare interpreter takes {fmt_time(bare)} for all of it). The split runs "
        "start `python -c` instead of the `chant` wrapper script (no measurable difference) and run after the "
        "tables' runs, so their wall differs a little; on this shared machine single figures move by 5-10%.")
    add("")
    add("| Specs | Command | Wall (table) | Wall (split run) | `import chant_cli.main` | `main(argv)` | Rest |")
    add("|---|---|---|---|---|---|---|")
    by_n = {r["n"]: r for r in results}
    for n, parts in sorted(prof.get("breakdown", {}).items()):
        for key, _argv in PROFILED:
            part = parts.get(key)
            meas = by_n[n]["measures"][key]
            if not part:
                add(f"| {n:,} | {LABELS[key]} | {fmt_time(meas.median)} | failed | — | — | — |")
                continue
            add(f"| {n:,} | {LABELS[key]} | {fmt_time(meas.median)} | {fmt_time(part['wall'])} | "
                f"{fmt_time(part['import'])} | {fmt_time(part['op'])} | {fmt_time(part['rest'])} |")
    add("")
    n = prof.get("importtime_n")
    for name, data in prof.get("importtime", {}).items():
        if "error" in data:
            add(f"`python -X importtime -m chant_cli {name}` ({n:,} specs) failed: {data['error']}")
            add("")
            continue
        add(f"`python -X importtime -m chant_cli {name}` ({n:,} specs): {data['modules']} modules, "
            f"{data['total_us'] / 1000:.1f} ms in top-level imports (start-up's `site`/`encodings` included). "
            "Heaviest: " + ", ".join(f"`{mod}` {cum / 1000:.1f} ms" for cum, _self, _lvl, mod in data["top"]) + ".")
        add("")
    for n, texts in sorted(prof.get("cprofile", {}).items()):
        for name, text in texts.items():
            add(f"cProfile of `chant {name}` at {n:,} specs (in process, `main(argv)`), top functions by own "
                "time (profiler overhead included):")
            add("")
            add("```")
            add(text)
            add("```")
            add("")
