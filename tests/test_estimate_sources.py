"""Every estimate names where its figure comes from, and each rule's page says
which hardware that figure holds for (issue 18: a figure measured on CPU is
never a GPU's; only a datasheet figure is computed for `--hardware`)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest

from conftest import fixture_files
from greenops_lint.config import Config
from greenops_lint.docs import render_page
from greenops_lint.engine import Linter
from greenops_lint.finding import SOURCE_CPU, SOURCE_DATASHEET, SOURCES
from greenops_lint.plugins import load_rules
from greenops_lint.selection import enabled_rules

ROOT = Path(__file__).resolve().parent.parent
RULES = load_rules().rules
PROFILES = ("generic-gpu", "a100-80gb", "t4", "x86-server-cpu")


@pytest.fixture(scope="module")
def estimates_by_rule():
    """(profile, estimate) for every finding over the rules' INVALID examples
    and the fixtures, on GPU and CPU profiles."""
    sources = [e.source for rule in RULES.values() for e in rule.invalid_examples()]
    sources += [p.read_text(encoding="utf-8") for p in fixture_files() if p.suffix == ".py"]
    found = defaultdict(list)
    for profile in PROFILES:
        config = Config(root=ROOT, select=("ALL",), hardware=profile)
        linter = Linter(config, enabled_rules(RULES, config))
        for text in sources:
            for finding in linter.lint_bytes("snippet.py", text.encode()).findings:
                if finding.estimate is not None:
                    found[finding.code].append((profile, finding.estimate))
    return found


@pytest.mark.parametrize("code", [c for c, r in RULES.items() if r.section("Estimate")])
def test_rule_with_an_estimate_declares_its_sources(code):
    declared = RULES[code].estimate_sources
    assert declared, f"{code} has an estimate but no estimate_sources"
    assert set(declared) <= set(SOURCES), set(declared) - set(SOURCES)
    assert all(holds_for.strip() for holds_for in declared.values())


@pytest.mark.parametrize("code", [c for c, r in RULES.items() if r.estimate_sources])
def test_estimates_carry_exactly_the_declared_sources(code, estimates_by_rule):
    carried = {estimate.source for _, estimate in estimates_by_rule[code]}
    assert carried, f"no example or fixture gives {code} an estimate"
    assert carried == set(RULES[code].estimate_sources), (
        f"{code}: estimates carry {sorted(carried)}, the page declares {sorted(RULES[code].estimate_sources)}"
    )


def test_only_datasheet_figures_name_the_configured_hardware(estimates_by_rule):
    for code, pairs in estimates_by_rule.items():
        for profile, estimate in pairs:
            headline = estimate.headline()
            if estimate.source == SOURCE_DATASHEET:
                assert headline.endswith(f"on {profile}"), (code, headline)
            else:
                assert f"on {profile}" not in headline, (code, estimate.source, headline)
            if estimate.source == SOURCE_CPU:
                assert "measured on CPU" in headline, (code, headline)


def test_page_shows_each_source_and_what_it_holds_for():
    page = render_page(RULES["GO201"])
    for source, holds_for in RULES["GO201"].estimate_sources.items():
        assert f"| {source} | {holds_for} |" in page
