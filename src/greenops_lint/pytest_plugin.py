"""pytest plugin: `pytest --greenops` adds one lint item per Python file.

Like pytest-flake8 and pytest-ruff: each `.py` file under the test paths
becomes an item that fails with the file's findings, under the project's
`[tool.greenops-lint]` configuration. Files that `exclude` / `extend-exclude`
match are not collected, and results go through the result cache that
`check` uses (`.greenops_lint_cache/`), so unchanged files are not linted again.
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


def _projects(config):
    from greenops_lint.editor import Projects

    projects = getattr(config, "_greenops_projects", None)
    if projects is None:
        projects = config._greenops_projects = Projects(cwd=Path(str(config.rootpath)))
    return projects


def pytest_collect_file(file_path: Path, parent):
    config = parent.config
    if config.getoption("greenops") and file_path.suffix == ".py":
        from greenops_lint.config import ConfigError

        try:
            if _projects(config).for_path(str(file_path)).excluded(str(file_path)):
                return None
        except ConfigError:
            pass  # the item reports it
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
        from greenops_lint.config import ConfigError
        from greenops_lint.engine import INTERNAL_ERROR
        from greenops_lint.report.text import format_line
        from greenops_lint.source import SourceError, read_bytes

        path = str(self.path)
        try:
            project = _projects(self.config).for_path(path)
        except ConfigError as exc:
            raise GreenOpsError(str(exc)) from None
        try:
            raw = read_bytes(path)
        except SourceError:
            findings = project.linter.lint_path(path).findings
        else:
            cache = project.cache
            key = cache.key(path, raw) if cache is not None else None
            hit = cache.get(key) if cache is not None else None
            if hit is not None:
                findings = hit[0]
            else:
                result = project.linter.lint_bytes(path, raw)
                findings = result.findings
                if cache is not None and not any(f.code == INTERNAL_ERROR for f in findings):
                    cache.put(key, result.findings, result.suppressed, result.script)
        shown = [f for f in findings if project.config.shows(f)]
        if shown:
            raise GreenOpsError("".join(format_line(f) + "\n" for f in shown))

    def repr_failure(self, excinfo, style=None):
        if excinfo.errisinstance(GreenOpsError):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style)

    def reportinfo(self):
        return self.path, None, f"greenops-lint {self.path.name}"
