"""Every fixture under fixtures/ reports exactly the lines marked `# expect: CODE`."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import FIXTURES, expected_findings, finding_key, fixture_files
from greenops_lint.config import load_config
from greenops_lint.engine import Linter
from greenops_lint.plugins import load_rules
from greenops_lint.selection import enabled_rules

FIXTURE_FILES = fixture_files()


@pytest.fixture(scope="module")
def fixture_linter():
    registry = load_rules()
    option_types = {c: {n: o.type for n, o in r.options.items()} for c, r in registry.rules.items()}
    # The same configuration `greenops-lint check fixtures/` uses.
    config = load_config(None, FIXTURES, set(registry.rules), option_types)
    return Linter(config, enabled_rules(registry.rules, config))


def test_there_are_fixtures():
    assert len(FIXTURE_FILES) >= 5


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=lambda p: str(p.relative_to(FIXTURES)))
def test_fixture_reports_exactly_the_marked_lines(path: Path, fixture_linter):
    result = fixture_linter.lint_path(str(path))
    reported = {finding_key(f) for f in result.findings}
    assert reported == expected_findings(path), "\n".join(
        f"{f.location()} {f.code} {f.message}" for f in result.findings
    )


def test_every_rule_has_positive_fixtures():
    registry = load_rules()
    marked = {code for path in FIXTURE_FILES for _, code in expected_findings(path)}
    missing = [code for code, rule in registry.rules.items() if rule.family != "core" and code not in marked]
    assert not missing, f"rules without a positive fixture: {missing}"


def test_every_rule_has_negative_examples():
    registry = load_rules()
    missing = [code for code, rule in registry.rules.items() if rule.family != "core" and not rule.VALID]
    assert not missing, f"rules without VALID look-alikes: {missing}"
