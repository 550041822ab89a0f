"""The markdown of ``docs/benchmarks.md``, from what :mod:`benchmarks.measures` returned."""
