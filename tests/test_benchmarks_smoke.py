"""Smoke test of the benchmark runner: `benchmarks/run.py --quick` runs and prints its table.

Not a timing test: nothing here looks at the numbers.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from .support import ROOT

ROWS = [
    "bare interpreter (`python -c pass`)",
    "cold `chant list --ready`",
    "warm `chant list --ready`",
    "warm `chant list` (every active spec)",
    'warm `chant search "merge driver"`',
    "warm `chant search 'status:ready AND label:bug'`",
    "warm `chant list --ready` without `--direct` (daemon probe; none running)",
    "`chant lock acquire` + `lock release`",
    "`chant index rebuild`",
    "`index rebuild` as reported by the command",
    "index size: `.chant/.index/` total",
    "index size: tantivy part",
]

# the daemon's part of each size (benchmarks/daemon.py): starts, the CLI in daemon mode next to
# direct mode, socket and HTTP round trips, watch latency, memory
DAEMON_ROWS = [
    "cold start (`.chant/.index/` deleted)",
    "warm restart (cache in place, after a clean stop)",
    "`chant daemon stop` (clean stop: table saved, socket removed)",
    "bare interpreter (`python -c pass`)",
    "`chant list --ready`: direct vs daemon mode (repeated: the daemon's cached answer)",
    "`chant list --ready`: direct vs daemon mode, first after a write (answer computed)",
    '`chant search "merge driver"`: direct vs daemon mode (repeated: the daemon\'s cached answer)',
    '`chant search "merge driver"`: direct vs daemon mode, first after a write (answer computed)',
    "`chant lock acquire` + `lock release`: direct vs daemon mode",
    "`chant list` (every active spec): direct vs daemon mode (repeated)",
    "cold direct `chant list --ready` vs daemon mode",
    "socket `hello` | 1",
    "socket `hello` | 8",
    "socket `lock_acquire` + `lock_release` (one pair) | 1",
    "socket `lock_acquire` + `lock_release` (one pair) | 8",
    "socket `queue_claim` (then `lock_release` by token) | 1",
    "socket `queue_claim` (then `lock_release` by token) | 8",
    "HTTP `GET /api/queue/next` (keep-alive) | 1",
    "HTTP `GET /api/queue/next` (keep-alive) | 8",
    "new spec file written | `search`",
    "existing spec edited in place | `search`",
    "new spec file written | `list --ready`",
    "existing spec edited in place | `list --ready`",
    "a cold start, once fully started: VmHWM is the peak of its build (table and index from the files)",
    "just after a warm start (and 200 `hello`s)",
    "steady state: after the watch benchmark too (all of the above)",
]


@pytest.mark.slow
def test_quick_benchmark_prints_the_table(tmp_path):
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "benchmarks", "run.py"), "--quick", "--out", str(tmp_path / "out")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "## Targets" in out
    assert "## 500 specs" in out
    assert "| Measure | Median | Min | ×bare | Runs ok | Peak RSS |" in out
    for row in ROWS:
        assert f"| {row} |" in out, row
    assert "### Daemon (500 specs)" in out
    daemon_part = out.split("### Daemon (500 specs)", 1)[1]
    for row in DAEMON_ROWS:
        assert f"| {row} |" in daemon_part, row
    assert "every daemon-mode command was served by the daemon" in daemon_part
    assert "Side by side (the measure of the lock target): one client alternating" in daemon_part
    # the daemon rows of the targets table (the 5,000/50,000 ones say "not measured" at --quick)
    assert "| daemon-mode `chant list --ready` at 5,000 specs within 3× a bare interpreter start |" in out
    assert "`lock_release` round trip at 500 specs within 3× a `hello` round trip" in out
    # leases during long work: lock_renew idle and during a rebuild, its own section
    assert "| socket `lock_renew` p99 during an `index rebuild` of 50,000 specs ≤ 50 ms |" in out
    assert "## Leases during long work: `lock_renew` while the daemon rebuilds its index" in out
    assert "| 500 | " in out.split("## Leases during long work", 1)[1]
    # no daemon left behind, no probe spec left in the repository
    repo = next(p for p in (tmp_path / "out").iterdir() if p.name.startswith("n500-"))
    assert not (repo / ".chant" / "daemon.sock").exists()
    assert not (repo / ".chant" / "daemon.json").exists()
    assert not list((repo / ".chant" / "specs").glob("2099-12-31-*"))
    assert not (repo / "bench-watch-backup.json").exists()
    # every command ran (a failure would be reported in the table instead of a time)
    assert "FAILED" not in out, out
    assert "**error:**" not in out, out
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]


SCALE_ROWS = [
    "write → visible in `list --ready`, p50 / p99: a new spec file",
    "write → visible in `list --ready`, p50 / p99: a spec's title edited in place",
    "daemon-mode `chant list` (every active spec but cancelled ones), ×bare (median)",
    "peak RSS of a cold build (VmHWM) / steady RSS (VmRSS after the above)",
]


@pytest.mark.slow
def test_quick_scale_run_replaces_only_its_section(tmp_path):
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n\n## Targets\n\nkept\n\n## 500 specs\n\nkept too\n", encoding="utf-8")
    argv = [sys.executable, os.path.join(ROOT, "benchmarks", "run.py"), "--scale", "--quick", "--sizes", "300",
            "--out", str(tmp_path / "out"), "--write", str(doc)]
    for _ in range(2):  # the second run replaces the first one's section
        proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
    text = doc.read_text(encoding="utf-8")
    assert text.count("## Scale: the cost of a change") == 1
    assert text.index("## Targets") < text.index("## Scale") < text.index("## 500 specs")
    assert "kept\n" in text and "kept too" in text
    for row in SCALE_ROWS:
        assert f"| {row} |" in text, row
    assert "**error" not in text and "Traceback" not in proc.stderr
    repo = next(p for p in (tmp_path / "out").iterdir() if p.name.startswith("n300-"))
    assert not (repo / ".chant" / "daemon.json").exists()
    assert not list((repo / ".chant" / "specs").glob("2099-12-31-*"))


@pytest.mark.slow
def test_renew_alone_replaces_only_its_section(tmp_path):
    """`--renew`: lock_renew idle and while the daemon rebuilds, standalone, into its section."""
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n\n## Targets\n\nkept\n\n## 300 specs\n\nkept too\n", encoding="utf-8")
    argv = [sys.executable, os.path.join(ROOT, "benchmarks", "run.py"), "--renew", "--quick", "--sizes", "300",
            "--out", str(tmp_path / "out"), "--write", str(doc)]
    for _ in range(2):  # the second run replaces the first one's section
        proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
    text = doc.read_text(encoding="utf-8")
    assert text.count("## Leases during long work") == 1
    assert text.index("## Targets") < text.index("## Leases during long work") < text.index("## 300 specs")
    assert "kept\n" in text and "kept too" in text
    section = text.split("<!-- renew:begin", 1)[1].split("<!-- renew:end -->", 1)[0]
    row = next(line for line in section.splitlines() if line.startswith("| 300 |"))
    assert " p99 " in row and "documents" in row  # idle and during the rebuild, and the rebuild itself
    assert "**error" not in text and "Traceback" not in proc.stderr
    repo = next(p for p in (tmp_path / "out").iterdir() if p.name.startswith("n300-"))
    assert not (repo / ".chant" / "daemon.json").exists()
    assert not (repo / ".chant" / "daemon.sock").exists()


GIT_ROWS = [
    "commit → hash in the spec file, p50 / p99, from `git commit`'s return",
    "baseline: `git commit` itself (one unrelated file)",
    "baseline: a spec's title edited in place → visible in `search` (the file watcher)",
    "baseline: the same checkouts, git watcher off (the file watcher alone), from the return",
    "index documents written per checkout (`chant_index_updates_total`), git watcher on / off",
    "idle CPU, git watcher on (% of one core)",
    "baseline: idle CPU, git watcher off (`scale.daemon.git_watch.enabled: false`)",
]


@pytest.mark.slow
def test_git_alone_replaces_only_its_section(tmp_path):
    """`--git`: commit -> recorded, checkout -> index follows, idle CPU, into its own section;
    the generated repository is copied and committed elsewhere, never made a git repository."""
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n\n## Targets\n\nkept\n\n## 300 specs\n\nkept too\n", encoding="utf-8")
    argv = [sys.executable, os.path.join(ROOT, "benchmarks", "run.py"), "--git", "--quick", "--sizes", "300",
            "--idle-seconds", "1", "--out", str(tmp_path / "out"), "--write", str(doc)]
    for _ in range(2):  # the second run replaces the first one's section
        proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
    text = doc.read_text(encoding="utf-8")
    assert text.count("## Git: commit → hash recorded") == 1
    assert text.index("## Targets") < text.index("## Git:") < text.index("## 300 specs")
    assert "kept\n" in text and "kept too" in text
    section = text.split("<!-- git:begin", 1)[1].split("<!-- git:end -->", 1)[0]
    for row in GIT_ROWS:
        line = next((ln for ln in section.splitlines() if ln.startswith(f"| {row} |")), None)
        assert line is not None, row
        assert "| — |" not in line, line  # measured
    assert "| a checkout at 300 writes what changed (~3 documents, not N) | 3 " in section
    assert "**error" not in text and "not seen" not in section and "Traceback" not in proc.stderr
    repo = next(p for p in (tmp_path / "out").iterdir() if p.name.startswith("n300-"))
    assert not (repo / ".git").exists()
    assert not (repo / ".chant" / "daemon.json").exists()
