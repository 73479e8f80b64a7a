"""flake8 plugin: `flake8 --select GO` reports what `greenops-lint check` reports.

Editors that run flake8 (VS Code's flake8 extension, vim ALE, Emacs flymake,
PyCharm) show the findings this way. The project's `[tool.greenops-lint]`
settings apply; flake8's own `--select`/`--ignore`/`noqa` apply on top.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from greenops_lint import __version__

_linters: dict = {}


def _linter_for(filename: str):
    """One Linter per configuration file, built on first use."""
    from greenops_lint.config import ConfigError, load_config
    from greenops_lint.engine import Linter
    from greenops_lint.plugins import load_rules
    from greenops_lint.selection import enabled_rules

    start = Path(filename).resolve().parent if filename not in ("stdin", "-") else Path.cwd()
    registry = load_rules()
    option_types = {c: {n: o.type for n, o in r.options.items()} for c, r in registry.rules.items()}
    try:
        config = load_config(None, start, set(registry.rules), option_types)
    except ConfigError as exc:
        return None, str(exc)
    key = (str(config.source), str(config.root))
    if key not in _linters:
        _linters[key] = Linter(config, enabled_rules(registry.rules, config))
    return _linters[key], None


class GreenOpsChecker:
    name = "greenops-lint"
    version = __version__

    # flake8 classifies plugins by their parameters: asking for `tree` makes this
    # a tree plugin (flake8 parses the AST for pyflakes anyway); the linting
    # itself uses the file's lines.
    def __init__(self, tree, filename: str, lines: list[str]) -> None:
        self.filename = filename
        self.lines = lines

    def run(self) -> Iterator[tuple[int, int, str, type]]:
        from greenops_lint.report.text import format_line

        linter, problem = _linter_for(self.filename)
        if linter is None:
            yield 1, 0, f"GO003 greenops-lint configuration error: {problem}", type(self)
            return
        result = linter.lint_bytes(self.filename, "".join(self.lines).encode("utf-8"))
        for finding in result.findings:
            if not linter.config.shows(finding):
                continue  # below min-severity, as `check` hides it
            if finding.code in ("GO001", "GO002"):
                continue  # flake8 reports unreadable and unparsable files itself (E902, E999)
            text = format_line(finding).split(": ", 1)[1]  # "CODE message (est. ...)"
            yield finding.line, finding.column - 1, text, type(self)
