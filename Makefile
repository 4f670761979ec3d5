# Every target sets up what it needs, so each works as the first command on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
UV := $(BIN)/uv
STAMP := $(VENV)/.mgc-edge-deps
LATEST ?= .venv-latest
DEMO ?= demo
PYTEST_ARGS ?=
BENCH_ARGS ?=

.PHONY: install lock test-latest demo test test-fast bench wheel lint format clean

# uv first, into the venv, at the version and hashes uv.lock gives it (pip's hash-checking mode).
$(UV): uv.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	awk '/^name = "uv"$$/ { p = 1 } p && /^version = / { printf "uv==%s", $$3 } \
	p && match($$0, /sha256:[0-9a-f]+/) { printf " --hash=%s", substr($$0, RSTART, RLENGTH) } p && /^$$/ { exit }' \
	uv.lock | tr -d '"' > $(VENV)/uv-requirement.txt
	$(PY) -m pip install -q --require-hashes -r $(VENV)/uv-requirement.txt
	touch $(UV)

# Then the venv is uv.lock, exactly (every extra, for this Python); `--locked` refuses a lock that
# pyproject.toml's dependencies have moved away from (`make lock`).
$(STAMP): $(UV) uv.lock pyproject.toml
	UV_PROJECT_ENVIRONMENT=$(abspath $(VENV)) $(UV) sync -q --locked --all-extras --no-install-project
	touch $(STAMP)

# The dependencies are cached in the venv; the editable link is renewed when the venv serves another checkout.
install: $(STAMP)
	@cd /tmp && $(abspath $(PY)) -c "import mgc_edge, pathlib, sys; \
	sys.exit(pathlib.Path(mgc_edge.__file__).resolve().parents[1] != pathlib.Path('$(CURDIR)').resolve())" \
	2>/dev/null || $(abspath $(UV)) pip install -q --python $(abspath $(PY)) --no-deps -e $(CURDIR)

# Upgrades uv.lock to the newest versions pyproject.toml allows (torch held there, in [tool.uv]) and says what
# moved; `make test` then proves the new lock before it is committed. Needs only uv: it also renews a lock
# that a change to pyproject.toml has made stale.
lock: $(UV)
	UV_PROJECT_ENVIRONMENT=$(abspath $(VENV)) $(UV) lock --upgrade

# The suite in a venv of its own, resolved without the lock or its holds: the newest versions the ranges allow
# today. Its result, and what moved against the lock, go into COMPAT.md.
test-latest: install
	test -x $(LATEST)/bin/python || $(PYTHON) -m venv $(LATEST)
	$(UV) pip compile -q --no-config --upgrade --all-extras --python $(LATEST)/bin/python pyproject.toml \
	-o $(LATEST)/requirements.txt
	$(UV) pip sync -q --no-config --python $(LATEST)/bin/python $(LATEST)/requirements.txt
	$(UV) pip install -q --no-config --python $(LATEST)/bin/python --no-deps -e .
	rm -f $(LATEST)/junit.xml
	$(LATEST)/bin/python -m pytest -m "not gpu" --junitxml=$(LATEST)/junit.xml $(PYTEST_ARGS); status=$$?; \
	$(PY) scripts/compat.py $(PY) $(LATEST)/bin/python $(LATEST)/junit.xml; exit $$status

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
	rm -rf $(VENV) $(LATEST) $(DEMO) .pytest_cache .ruff_cache *.egg-info build dist
