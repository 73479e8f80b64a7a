# Two commands set everything up on a fresh machine:
#   make demo   -- lint the bundled ML fixtures (the main job)
#   make test   -- run the whole test suite
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin

.PHONY: demo test docs venv clean

$(BIN)/greenops-lint: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $@

# The test environment: test extras, and torch for the runtime probe's tests,
# pinned to the one version this workplace provides (a CPU build on local
# disk); never a range, which could pull a multi-GB CUDA build.
$(VENV)/.test-deps: $(BIN)/greenops-lint
	$(BIN)/python -m pip install --quiet -e '.[test]'
	$(BIN)/python -m pip install --quiet torch==2.13.0
	touch $@

venv: $(BIN)/greenops-lint

demo: venv
	$(BIN)/greenops-lint check fixtures/ --exit-zero

test: $(VENV)/.test-deps
	$(BIN)/python -m pytest

docs: venv
	$(BIN)/greenops-lint rules --write-docs rules/

clean:
	rm -rf $(VENV) .pytest_cache .greenops_lint_cache
