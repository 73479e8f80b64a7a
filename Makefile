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
	$(BIN)/python -m pip install --quiet -e '.[test]'
	# The runtime probe's tests need torch: the pinned CPU build, never a
	# range that could pull a multi-GB CUDA build.
	$(BIN)/python -m pip install --quiet torch==2.13.0
	touch $@

venv: $(BIN)/greenops-lint

demo: venv
	$(BIN)/greenops-lint check fixtures/ --exit-zero

test: venv
	$(BIN)/python -m pytest

docs: venv
	$(BIN)/greenops-lint rules --write-docs rules/

clean:
	rm -rf $(VENV) .pytest_cache .greenops_lint_cache
