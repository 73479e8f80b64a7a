# Two commands set everything up on a fresh machine:
#   make demo   -- lint the bundled ML fixtures (the main job)
#   make test   -- run the whole test suite
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin

.PHONY: demo test test-all lint format docs venv clean

$(BIN)/greenops-lint: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $@

# The test environment: test extras, and torch for the runtime probe's tests,
# pinned to the one version this workplace provides (a CPU build on local
# disk). Elsewhere a pinned torch from PyPI on Linux is still a multi-GB CUDA
# build: pass the CPU wheel index, `make test TORCH_INDEX=https://download.pytorch.org/whl/cpu`.
TORCH_INDEX ?=
$(VENV)/.test-deps: $(BIN)/greenops-lint
	$(BIN)/python -m pip install --quiet -e '.[test]'
	$(BIN)/python -m pip install --quiet torch==2.13.0 $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	touch $@

venv: $(BIN)/greenops-lint

demo: venv
	$(BIN)/greenops-lint check fixtures/ --exit-zero

test: $(VENV)/.test-deps
	$(BIN)/python -m pytest

# The suite on every supported CPython found here (PATH or pyenv), each in its own
# venv (.venv-3.X); torch only where the pinned build installs.
SUPPORTED = 3.10 3.11 3.12 3.13
test-all:
	@set -e; for v in $(SUPPORTED); do \
	  py=$$(ls -d $$HOME/.pyenv/versions/$$v*/bin/python$$v 2>/dev/null | tail -1); \
	  [ -n "$$py" ] || py=$$(command -v python$$v || true); \
	  if [ -z "$$py" ] || ! $$py -c "" 2>/dev/null; then echo "== Python $$v: not found, skipped"; continue; fi; \
	  echo "== Python $$v ($$py)"; \
	  [ -x .venv-$$v/bin/python ] || $$py -m venv .venv-$$v; \
	  .venv-$$v/bin/python -m pip install --quiet -e '.[test]'; \
	  .venv-$$v/bin/python -m pip install --quiet torch==2.13.0 || echo "   (no torch build for $$v: probe tests skip)"; \
	  .venv-$$v/bin/python -m pytest -p no:cacheprovider; \
	done

# The project lints itself: ruff (pinned in the test extras) for lint and format.
lint: $(VENV)/.test-deps
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

format: $(VENV)/.test-deps
	$(BIN)/ruff check --fix src tests benchmarks
	$(BIN)/ruff format src tests benchmarks

docs: venv
	$(BIN)/greenops-lint rules --write-docs rules/

clean:
	rm -rf $(VENV) .pytest_cache .greenops_lint_cache
