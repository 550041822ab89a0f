"""What the benchmarks run and how long anything may take: one place for the runner's constants."""

from __future__ import annotations

import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_OUT = os.path.join(ROOT, "benchmarks", "out")
DEFAULT_SIZES = (500, 5000, 50000)
SCALE_SIZES = (5000, 50000, 200000)  # `--scale` (make bench-scale): too slow for the default run
RENEW_SIZES = (50000,)  # `--renew`: the size of the target
GIT_SIZES = (5000, 50000)  # `--git` (make bench-git): the sizes of issue 9's targets
DEFAULT_SEED = 7
DEFAULT_REPEAT = 11
BIG = 50000  # from this size on, fewer repeats

DIRECT = ["--direct"]  # every measured command runs in process (no daemon), except the auto_list row
FREE_QUERY = "merge driver"
STRUCT_QUERY = "status:ready AND label:bug"

FAST_TIMEOUT = 300.0  # seconds, any single warm command
SLOW_TIMEOUT = 1800.0  # seconds, cold list and index rebuild
GEN_TIMEOUT = 3600.0  # seconds, generating a repository
START_TIMEOUT = 900.0  # seconds from spawn to fully started (a cold start at 50,000 takes tens)
STOP_TIMEOUT = 120.0  # seconds for `chant daemon stop` (it saves the table)
