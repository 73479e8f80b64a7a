from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from greenops_lint.cli import main
from greenops_lint.config import Config
from greenops_lint.engine import Linter
from greenops_lint.plugins import load_rules

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
EXPECT = re.compile(r"#\s*expect:\s*(?P<codes>GO\d{3}(?:\s*,\s*GO\d{3})*)")


def expected_findings(path: Path) -> set[tuple]:
    """(where, code) pairs marked with `# expect: GO101[, GO102]` in a fixture;
    `where` is the line, or (cell, line) in a notebook (see `finding_key`)."""
    if path.suffix == ".ipynb":
        import json

        marks = set()
        for cell_number, cell in enumerate(json.loads(path.read_text(encoding="utf-8"))["cells"], start=1):
            source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
            for where, code in _marks(source):
                marks.add(((cell_number, where), code))
        return marks
    return _marks(path.read_text(encoding="utf-8"))


def _marks(text: str) -> set[tuple[int, str]]:
    marks = set()
    for number, line in enumerate(text.splitlines(), start=1):
        match = EXPECT.search(line)
        if match:
            for code in match.group("codes").split(","):
                marks.add((number, code.strip()))
    return marks


def finding_key(finding) -> tuple:
    """The `(where, code)` of a finding, comparable with `expected_findings`."""
    where = (finding.cell, finding.line) if finding.cell is not None else finding.line
    return (where, finding.code)


def fixture_files() -> list[Path]:
    return sorted(
        p
        for p in FIXTURES.rglob("*")
        if p.suffix in (".py", ".ipynb") and ".fixed." not in p.name and ".greenops_lint_cache" not in p.parts
    )


@pytest.fixture(scope="session")
def registry():
    return load_rules()


def lint_source(source: str, *, select=("ALL",), hardware="generic-gpu", options=(), path="snippet.py"):
    """Lint a snippet with the given selection; returns the findings."""
    registry = load_rules()
    from greenops_lint.selection import enabled_rules

    config = Config(root=ROOT, select=tuple(select), hardware=hardware, rule_options=tuple(options))
    rules = enabled_rules(registry.rules, config)  # ALL: every rule, the default-off ones too
    linter = Linter(config, rules)
    return linter.lint_bytes(path, textwrap.dedent(source).encode()).findings


def codes(findings) -> list[str]:
    return [f.code for f in findings]


@pytest.fixture
def cli():
    runner = CliRunner()

    def invoke(*args, **kwargs):
        return runner.invoke(main, [str(a) for a in args], catch_exceptions=False, **kwargs)

    return invoke
