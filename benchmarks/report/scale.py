"""The "Scale" section of the document (between its markers; `make bench` keeps it)."""

from __future__ import annotations

import statistics

from ..measures.scale import SCALE_RSS_RATIO, SCALE_TARGET_P50, SCALE_TARGET_P99
from ..runner import percentile
from .text import fmt_ms, fmt_rss

SCALE_BEGIN = "<!-- scale:begin (written by `make bench-scale`; `make bench` keeps it) -->"


SCALE_END = "<!-- scale:end -->"


def _p(vals: list, q: float):
    return percentile(sorted(vals), q) if vals else None


def scale_figures(sc: dict, bare: float | None) -> dict:
    """The numbers of one size's column (also what a later run shows as "before")."""
    out: dict = {}
    for series, prefix in (("watch_list", "watch"), ("watch_search", "search")):
        for key in ("new", "edit"):
            s = (sc.get(series) or {}).get(key) or {}
            vals = s.get("samples") or []
            out[f"{prefix}_{key}"] = (_p(vals, 0.5), _p(vals, 0.99), len(vals), s.get("missed", 0)) if vals else None
    for key in ("list", "list_all"):
        m = (sc.get("cli") or {}).get(key)
        if isinstance(m, dict):  # loaded from JSON
            walls, ratios = m.get("walls") or [], m.get("ratios") or []
        else:
            walls, ratios = (m.walls, m.ratios) if m is not None else ([], [])
        out[key] = (statistics.median(walls), statistics.median(ratios) if ratios else None) if walls else None
    out["rtt"] = sc.get("rtt") or {}
    rss = sc.get("rss") or {}
    cold, steady, start = rss.get("cold") or {}, rss.get("steady") or {}, rss.get("start") or {}
    out["rss"] = (cold.get("VmHWM"), steady.get("VmRSS"), start.get("VmRSS"))
    out["starts"] = sc.get("starts") or {}
    out["counts"] = (sc.get("specs"), sc.get("listed"), sc.get("ready"))
    out["journal"] = sc.get("journal") or {}
    out["bare"] = bare
    return out


def _lat(cell) -> str:
    if not cell:
        return "—"
    p50, p99, k, missed = cell
    return f"{fmt_ms(p50)} / {fmt_ms(p99)}" + (f" ({missed} not seen)" if missed else "")


def render_scale(results: list[dict], bare: float | None, info: dict, before: dict | None = None) -> list[str]:
    """The "Scale" section of docs/benchmarks.md (between its markers)."""
    lines: list[str] = []
    add = lines.append
    done = [r for r in results if r.get("scale")]
    sizes = [r["n"] for r in done]
    fig = {r["n"]: scale_figures(r["scale"], bare) for r in done}
    old = {int(k): v for k, v in (before or {}).get("figures", {}).items()}
    add(SCALE_BEGIN)
    add("## Scale: the cost of a change, up to 200,000 specs")
    add("")
    load, load_end = info.get("loadavg"), info.get("loadavg_end")
    loads = f"1-minute load average {load[0]:.2f} at the start, {load_end[0]:.2f} at the end" if load and load_end \
        else "load unknown"
    add(f"Measured by `make bench-scale` (= `benchmarks/run.py --scale --sizes 5000,50000,200000 --write "
        f"docs/benchmarks.md`) on {info.get('date')}, commit `{info.get('commit') or 'unknown'}`, code from "
        f"`{info.get('code') or '?'}`; {info.get('nproc')} CPUs, shared ({loads}). Daemon mode throughout; the "
        "repositories are the generator's (about 60% archived). Each figure sits beside its baseline from the "
        "same run: the bare interpreter for the CLI, `hello` on the same connection for `list --ready`, the "
        "same daemon's steady RSS for the cold build's peak.")
    if before:
        add("")
        add(f"\"Before\" figures (→ left of the arrow) are the same runner on the same repositories with the code "
            f"of {before.get('label')}, measured {before.get('date')} ({before.get('load')}).")
    add("")
    head = "| Measure | " + " | ".join(f"{n:,}" for n in sizes) + " | Target |"
    add(head)
    add("|---" * (len(sizes) + 2) + "|")

    def row(label: str, render, target: str = "") -> None:
        cells = []
        for n in sizes:
            now = render(fig[n])
            was = render(old[n]) if n in old else None
            cells.append(f"{was} → {now}" if was not in (None, "—") else now)
        add(f"| {label} | " + " | ".join(cells) + f" | {target} |")

    row("specs / listed by `chant list` / by `chant list --ready`", lambda f: " / ".join(
        f"{x:,}" if isinstance(x, int) else "?" for x in f["counts"]))
    row("write → visible in `list --ready`, p50 / p99: a new spec file", lambda f: _lat(f["watch_new"]),
        "p50 ≤ 60 ms, p99 ≤ 120 ms")
    row("write → visible in `list --ready`, p50 / p99: a spec's title edited in place", lambda f: _lat(f["watch_edit"]),
        "p50 ≤ 60 ms, p99 ≤ 120 ms")

    row("… the same writes seen through `search` (a small answer: the daemon's own part), new / edit",
        lambda f: f"{_lat(f.get('search_new'))}; {_lat(f.get('search_edit'))}", "flat across sizes")

    def cli(key):
        def render(f):
            v = f.get(key)
            if not v:
                return "—"
            return f"{v[1]:.1f}× ({fmt_ms(v[0])})" if v[1] else fmt_ms(v[0])
        return render

    row("daemon-mode `chant list` (every active spec but cancelled ones), ×bare (median)", cli("list_all"),
        "linear in the answer")

    def per_spec(f):
        v, counts = f.get("list_all"), f.get("counts")
        if not v or not counts or not counts[1]:
            return "—"
        return f"{(v[0] - (f.get('bare') or 0)) / counts[1] * 1e6:.1f} µs"

    row("… its time beyond the bare interpreter, per listed spec", per_spec, "flat across sizes")
    row("daemon-mode `chant list --ready`, ×bare (median)", cli("list"))

    def rtt(kind):
        def render(f):
            v = f["rtt"].get(kind)
            if not v:
                return "—"
            return f"{fmt_ms(v['list'])} = {v['list'] / v['hello']:.1f}× `hello` ({fmt_ms(v['hello'])})"
        return render

    row("socket round trip of `list --ready`'s request, the cached answer", rtt("cached"))
    row("… the answer computed (a lease taken and given back before each)", rtt("fresh"))

    def rss(f):
        peak, steady, start = f["rss"]
        if not peak or not steady:
            return "—"
        also = f" (÷ the warm start's {fmt_rss(start)}: {peak / start:.2f}×)" if start else ""
        return f"{fmt_rss(peak)} / {fmt_rss(steady)} = {peak / steady:.2f}×{also}"

    row("peak RSS of a cold build (VmHWM) / steady RSS (VmRSS after the above)", rss, "≤ 2×")
    row("RSS just after a warm start", lambda f: fmt_rss(f["rss"][2]) if f["rss"][2] else "—")
    row("daemon start to fully started: cold / warm", lambda f: " / ".join(
        fmt_ms(f["starts"].get(k)) for k in ("cold", "warm")))

    def saves(f):
        j = f.get("journal") or {}
        if not j:
            return "—"
        return f"{j.get('grew', 0):,} B appended in {j.get('seconds', 0):.0f} s"

    row("the daemon's saves during the latency series (the journals' growth)", saves)
    add("")
    verdicts = []
    for n in sizes:
        f = fig[n]
        for key, what in (("watch_new", "new file"), ("watch_edit", "edit")):
            cell = f[key]
            ok = bool(cell) and cell[0] <= SCALE_TARGET_P50 and cell[1] <= SCALE_TARGET_P99 and not cell[3]
            verdicts.append((f"write → visible in `list --ready` at {n:,} ({what})", _lat(cell), ok))
        peak, steady, _ = f["rss"]
        ok = bool(peak and steady) and peak <= SCALE_RSS_RATIO * steady
        verdicts.append((f"cold build peak RSS at {n:,} within 2× steady", rss(f), ok))
    # linear: the time each further listed spec adds is the same between the larger sizes as between the
    # smaller ones (a quadratic read would add ever more per spec)
    pts = [(fig[n]["counts"][1], fig[n]["list_all"][0]) for n in sizes
           if fig[n].get("list_all") and fig[n].get("counts") and fig[n]["counts"][1]]
    if len(pts) >= 3 and pts[1][0] > pts[0][0] and pts[2][0] > pts[1][0]:
        low = (pts[1][1] - pts[0][1]) / (pts[1][0] - pts[0][0])
        high = (pts[2][1] - pts[1][1]) / (pts[2][0] - pts[1][0])
        ratio = high / low if low > 0 else float("inf")
        verdicts.append(("`chant list` linear: the time per further listed spec between the two larger sizes "
                         "within 2× that between the two smaller ones",
                         f"{high * 1e6:.1f} µs vs {low * 1e6:.1f} µs = {ratio:.2f}×", ratio <= 2.0))
    add("| Target | Measured | Verdict |")
    add("|---|---|---|")
    for name, measured, ok in verdicts:
        add(f"| {name} | {measured} | {'✅ PASS' if ok else '❌ FAIL'} |")
    add("")
    for r in done:
        for err in r["scale"].get("errors", []):
            add(f"- **error at {r['n']:,}:** {err}")
    add("Method: the cold start deletes `.chant/.index/` and times the spawn to fully started; its `VmHWM` is "
        "the peak of the build. The steady RSS is the warm daemon's `VmRSS` after all of the measures here. "
        "`chant list` and `chant list --ready` run without `--direct`, each round after a bare interpreter "
        "(the paired ratio). The latency series write a new spec file (or rewrite a ready spec's title in place) "
        "and poll over one connection every ~1 ms with the request `chant list --ready` sends, decoding the whole "
        "answer, until it shows the change; the daemon saves its table every 5 s meanwhile (the journals' "
        "growth shows those saves). Each list sample holds the poll in flight when the change lands and one "
        "whole answer after it, so it cannot be shorter than about the daemon's part (the `search` row, "
        "whose answers are small) plus one to two round trips of the `list --ready` answer (the socket row): "
        "at 200,000 specs that answer holds 23,706 specs. The OS page cache is not dropped, but this machine's is small: a cold start "
        "may read from disk.")
    add(SCALE_END)
    return lines
