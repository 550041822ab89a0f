"""The "Leases during long work" section: ``lock_renew`` idle and during an index rebuild,
side by side (between its markers, so that `--renew` can replace it alone)."""

from __future__ import annotations

import statistics

from ..measures.renew import RENEW_TARGET_P99, TARGET_SIZE
from ..runner import percentile
from .text import fmt_ms

RENEW_BEGIN = "<!-- renew:begin (written by `make bench` and `benchmarks/run.py --renew`) -->"
RENEW_END = "<!-- renew:end -->"


def renew_of(r: dict) -> dict | None:
    """A size's ``renew`` measure: of its daemon benchmarks (a full run), or of ``--renew``."""
    return r.get("renew") or (r.get("daemon") or {}).get("renew")


def _latencies(values: list) -> str:
    if not values:
        return "none"
    vals = sorted(values)
    return (f"{len(vals):,}: p50 {fmt_ms(statistics.median(vals))} / p99 {fmt_ms(percentile(vals, 0.99))} "
            f"(max {fmt_ms(vals[-1])})")


def verdict(m: dict) -> tuple[str, str]:
    """(what was measured, verdict) of the target: p99 during the rebuild at 50,000 specs."""
    if m.get("errors") or not m.get("busy"):
        why = (m.get("errors") or ["no renewal was sent while the rebuild ran"])[0]
        return f"failed to run ({why})", "❌ FAIL"
    p99 = percentile(sorted(m["busy"]), 0.99)
    idle = percentile(sorted(m["idle"]), 0.99) if m.get("idle") else None
    return (f"p99 {fmt_ms(p99)} during a {fmt_ms((m.get('rebuild') or {}).get('seconds'))} rebuild "
            f"({len(m['busy']):,} renewals), beside p99 {fmt_ms(idle)} idle",
            "✅ PASS" if p99 <= RENEW_TARGET_P99 else "❌ FAIL")


def target_rows(results: list[dict]) -> list[tuple[str, str, str]]:
    """The Targets table's row, when a run measured the target's size."""
    name = (f"socket `lock_renew` p99 during an `index rebuild` of {TARGET_SIZE:,} specs ≤ "
            f"{RENEW_TARGET_P99 * 1000:g} ms")
    for r in results:
        if r["n"] == TARGET_SIZE and renew_of(r) is not None:
            return [(name, *verdict(renew_of(r)))]
    return [(name, "not measured (size not run)", "—")]


def render_renew(results: list[dict], info: dict) -> list[str]:
    """The section, for every size that has a ``renew`` measure."""
    done = [(r["n"], renew_of(r)) for r in results if renew_of(r) is not None]
    lines: list[str] = []
    add = lines.append
    add(RENEW_BEGIN)
    add("## Leases during long work: `lock_renew` while the daemon rebuilds its index")
    add("")
    add(f"Measured on {info.get('date')}, commit `{info.get('commit') or 'unknown'}` (`make bench`, or "
        "`benchmarks/run.py --renew --sizes 50000` for this section alone). One persistent socket connection "
        "renews one lease (`lock_renew` by token) in a loop: first with nothing else running (idle), then while "
        "a second connection's `index_rebuild` (the request `chant index rebuild` sends the daemon) runs; a "
        "renewal counts as during the rebuild when it was sent after the rebuild's request and before its "
        "answer. A worker renews its lease from a thread while its agent works: a renewal that waits behind "
        "long work lets the lease expire while its holder is alive. The loop renews as fast as the daemon "
        "answers (thousands a second, far above a fleet renewing every TTL/3), so it competes with the rebuild "
        "for the daemon's interpreter: the rebuild is also timed alone, just before.")
    add("")
    add("| Specs | Idle: renewals, p50 / p99 | During `index rebuild`: renewals, p50 / p99 | Rebuild | "
        f"Target (at {TARGET_SIZE:,}): p99 during ≤ {RENEW_TARGET_P99 * 1000:g} ms |")
    add("|---|---|---|---|---|")
    for n, m in done:
        rebuild = m.get("rebuild") or {}
        docs = rebuild.get("documents")
        took = (f"{fmt_ms(rebuild.get('seconds'))}" + (f" ({docs:,} documents)" if isinstance(docs, int) else "")
                if rebuild else "—")
        if m.get("rebuild_alone") is not None:
            took += f"; alone {fmt_ms(m['rebuild_alone'])}"
        mark = verdict(m)[1] if n == TARGET_SIZE else "—"
        add(f"| {n:,} | {_latencies(m.get('idle') or [])} | {_latencies(m.get('busy') or [])} | {took} | "
            f"{mark} |")
    add("")
    for n, m in done:
        for err in m.get("errors", []):
            add(f"- **error at {n:,}:** {err}")
    add(RENEW_END)
    return lines
