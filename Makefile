# Every target sets up what it needs, so each works as the first command on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
STAMP := $(VENV)/.mgc-edge-deps
DEMO ?= demo
PYTEST_ARGS ?=
BENCH_ARGS ?=

.PHONY: install demo test test-fast bench wheel lint format clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[train,dev]'
	touch $(STAMP)

# The dependencies are cached in the venv; the editable link is renewed when the venv serves another checkout.
install: $(STAMP)
	@cd /tmp && $(abspath $(PY)) -c "import mgc_edge, pathlib, sys; \
	sys.exit(pathlib.Path(mgc_edge.__file__).resolve().parents[1] != pathlib.Path('$(CURDIR)').resolve())" \
	2>/dev/null || $(abspath $(PY)) -m pip install -q --no-deps -e $(CURDIR)

demo: install
	DEMO=$(DEMO) BIN=$(BIN) bash scripts/demo.sh

test: install
	$(PY) -m pytest -m "not gpu" $(PYTEST_ARGS)

test-fast: install
	$(PY) -m pytest -m "not gpu and not slow" $(PYTEST_ARGS)

# Every benchmark in one run (<= 10 min on two cores); BENCH_ARGS=--quick for a smaller smoke run.
bench: install
	$(PY) -m benchmarks.run $(BENCH_ARGS)

# The edge box's install (README, "On the edge box"): dist/mgc_edge-<version>-py3-none-any.whl, whose
# dependencies are the runtime's only (no torch). Building needs pip, not the venv's dependencies: the venv's
# Python where there is one, else $(PYTHON). build/ goes first: setuptools never prunes it, and a module
# deleted from the tree would still ship.
wheel:
	rm -rf build
	$(if $(wildcard $(PY)),$(PY),$(PYTHON)) -m pip wheel -q --no-deps --wheel-dir dist .
	rm -rf build
	@ls dist/mgc_edge-*.whl

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) $(DEMO) .pytest_cache .ruff_cache *.egg-info build dist
