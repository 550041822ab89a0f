"""Smoke test of the benchmark runner: `benchmarks/run.py --quick` runs and prints its table.

Not a timing test: nothing here looks at the numbers.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from .conftest import ROOT

ROWS = [
    "bare interpreter (`python -c pass`)",
    "cold `chant list --ready`",
    "warm `chant list --ready`",
    'warm `chant search "merge driver"`',
    "warm `chant search 'status:ready AND label:bug'`",
    "warm `chant list --ready` without `--direct` (daemon probe; none running)",
    "`chant lock acquire` + `lock release`",
    "`chant index rebuild`",
    "`index rebuild` as reported by the command",
    "index size: `.chant/.index/` total",
    "index size: tantivy part",
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
    # every command ran (a failure would be reported in the table instead of a time)
    assert "FAILED" not in out, out
    assert "**error:**" not in out, out
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
