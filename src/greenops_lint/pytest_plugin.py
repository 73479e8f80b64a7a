"""pytest plugin: `pytest --greenops` adds one lint item per Python file.

Like pytest-flake8 and pytest-ruff: each `.py` file under the test paths
becomes an item that fails with the file's findings, under the project's
`[tool.greenops-lint]` configuration.
"""

from __future__ import annotations

from pathlib import Path

import pytest


def pytest_addoption(parser) -> None:
    group = parser.getgroup("greenops-lint")
    group.addoption("--greenops", action="store_true", default=False, help="lint .py files with greenops-lint")


def pytest_configure(config) -> None:
    # Registered so that `--strict-markers` projects accept the items' marker.
    config.addinivalue_line("markers", "greenops: greenops-lint check of one file (pytest --greenops)")


def pytest_collect_file(file_path: Path, parent):
    config = parent.config
    if config.getoption("greenops") and file_path.suffix == ".py":
        return GreenOpsFile.from_parent(parent, path=file_path)
    return None


class GreenOpsError(Exception):
    pass


class GreenOpsFile(pytest.File):
    def collect(self):
        yield GreenOpsItem.from_parent(self, name="greenops-lint")


class GreenOpsItem(pytest.Item):
    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_marker("greenops")

    def runtest(self) -> None:
        from greenops_lint.flake8_plugin import _linter_for
        from greenops_lint.report.text import format_line

        linter, problem = _linter_for(str(self.path))
        if linter is None:
            raise GreenOpsError(problem)
        result = linter.lint_path(str(self.path))
        shown = [f for f in result.findings if linter.config.shows(f)]
        if shown:
            raise GreenOpsError("".join(format_line(f) + "\n" for f in shown))

    def repr_failure(self, excinfo, style=None):
        if excinfo.errisinstance(GreenOpsError):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style)

    def reportinfo(self):
        return self.path, None, f"greenops-lint {self.path.name}"
