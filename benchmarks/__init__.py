"""The benchmark runner's modules; ``benchmarks/run.py`` is the command.

- :mod:`benchmarks.settings`: sizes, queries, timeouts
- :mod:`benchmarks.runner`: running processes and daemons, the runs of one row
- :mod:`benchmarks.repos`: the measured installation, the generated repositories, the machine
- :mod:`benchmarks.measures`: what is measured (direct mode, the profile, the daemon, round
  trips, watch latency, the service in process, the scale table, leases during long work)
- :mod:`benchmarks.report`: the markdown of ``docs/benchmarks.md``
- ``benchmarks/programs/``: the programs the measures run in processes of their own
"""
