"""How figures are written: times, sizes, RSS, ×bare, and the cells of the tables."""

from __future__ import annotations

from ..runner import Measure


def fmt_time(sec: float | None) -> str:
    if sec is None:
        return "—"
    if sec < 10:
        return f"{sec * 1000:.1f} ms"
    return f"{sec:.2f} s"


def fmt_bytes(n: int | None) -> str:
    if n is None:
        return "—"
    if n < 1024 * 1024:
        return f"{n / 1024:.1f} KiB ({n:,} B)"
    return f"{n / 1024 / 1024:.1f} MiB ({n:,} B)"


def fmt_rss(kib: int | None) -> str:
    return "—" if kib is None else f"{kib / 1024:.1f} MiB"


def times_bare(sec: float | None, bare: float | None) -> str:
    if sec is None or not bare:
        return "—"
    return f"{sec / bare:.1f}×"


def cell(meas: Measure, bare: float | None) -> list[str]:
    """Median, min, ×bare, runs, peak RSS (or the failure)."""
    runs = f"{len(meas.walls)}/{meas.attempts}"
    if not meas.walls:
        why = meas.failures[0] if meas.failures else "not run"
        return [f"**FAILED** ({why})", "—", "—", runs, "—"]
    median = fmt_time(meas.median)
    if meas.failures:
        median += f" ⚠ {len(meas.failures)} failed: {meas.failures[0]}"
    return [median, fmt_time(meas.min), times_bare(meas.median, bare), runs, fmt_rss(meas.peak_rss)]


def ratio_cell(meas: Measure, bare: float, limit: float, fmt) -> str:
    """A ×bare target's figures: the verdict's paired ratio first, then the median against the whole run's bare."""
    whole = meas.median / bare
    flag = "" if whole <= limit else f" (**over {limit:g}×**: see the round's own bare)"
    return (f"{meas.paired:.2f}× its round's bare (median of {len(meas.ratios)}); median {fmt(meas.median)} = "
            f"{whole:.2f}× the run's bare {fmt(bare)}{flag}; min run {meas.min / bare:.2f}×")


def fmt_ms(sec) -> str:
    if sec is None:
        return "—"
    if sec < 0.001:
        return f"{sec * 1e6:.0f} µs"
    if sec < 10:
        return f"{sec * 1000:.{2 if sec < 0.01 else 1}f} ms"
    return f"{sec:.2f} s"


def fmt_rate(x) -> str:
    return "—" if x is None else f"{x:,.0f}"
