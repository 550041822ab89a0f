# One command file for people and CI: install, run, test, bench, lint.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
DEMO   ?= demo

.PHONY: install run test test-fast bench bench-scale bench-git bench-workers lint clean

# A venv with the project (editable, path-based: no import hook on the CLI's startup path)
# and its dev tools. Bytecode is compiled up front so the CLI starts fast even where
# PYTHONDONTWRITEBYTECODE is set.
$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]' --config-settings editable_mode=compat
	touch $@

install: $(BIN)/.installed
	@$(BIN)/python -m compileall -q chantlib chant_cli chantd

# The main job on a demo repository: generate it, then list, search, lock and claim.
run: install
	@$(BIN)/python scripts/demo.py $(DEMO)

# Two processes (pytest-xdist): most tests wait on real processes (daemons, git, workers),
# so two share the two cores well; every test stands alone (its own repository, ports, daemon).
test: install
	$(BIN)/python -m pytest -q -n 2

test-fast: install
	$(BIN)/python -m pytest -q -n 2 -m "not slow"

# SIZES=5000,200000 picks the repository sizes (default 500,5000,50000; 200000 works, slowly)
bench: install
	$(BIN)/python benchmarks/run.py --write docs/benchmarks.md $(if $(SIZES),--sizes $(SIZES))

# The scale table alone (issue 7: a change's cost at 5,000, 50,000 and 200,000 specs): it
# replaces that section of docs/benchmarks.md, which `make bench` keeps. About 20 minutes.
bench-scale: install
	$(BIN)/python benchmarks/run.py --scale --write docs/benchmarks.md $(if $(SIZES),--sizes $(SIZES))

# The daemon following git alone (issue 9: commit -> hash recorded, checkout -> index follows,
# idle CPU with the git watcher on) at 5,000 and 50,000 specs, each on a committed copy of the
# generated repository: it replaces that section of docs/benchmarks.md, which `make bench`
# keeps. About 10 minutes (most of it copying and committing 50,000 spec files, and two starts).
bench-git: install
	$(BIN)/python benchmarks/run.py --git --write docs/benchmarks.md $(if $(SIZES),--sizes $(SIZES))

# The load test alone (issue 10: 2,000 ready specs, 32 workers, socket and HTTP, then a SIGKILL
# and a daemon restart): it replaces the Workers section of docs/benchmarks.md, which
# `make bench` keeps. About 4 minutes.
bench-workers: install
	$(BIN)/python benchmarks/run.py --workers --write docs/benchmarks.md

# ruff over everything, then mypy over the library and the daemon ([tool.mypy] in pyproject.toml)
lint: install
	$(BIN)/ruff check chantlib chant_cli chantd tests benchmarks scripts
	$(BIN)/mypy

clean:
	rm -rf $(VENV) $(DEMO) .pytest_cache .hypothesis .mypy_cache build *.egg-info
