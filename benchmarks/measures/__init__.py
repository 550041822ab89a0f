"""What is measured: each module runs one family of measures and returns plain data (and :class:`~benchmarks.runner.Measure` objects); :mod:`benchmarks.report` renders it."""
