"""Each rule's own INVALID examples are flagged and its VALID look-alikes are not."""

from __future__ import annotations

import pytest

from conftest import lint_source
from greenops_lint.plugins import load_rules

RULES = [r for r in load_rules().rules.values() if r.family != "core"]
INVALID = [(r.code, s) for r in RULES for s in r.examples()[0]]
VALID = [(r.code, s) for r in RULES for s in r.examples()[1]]


@pytest.mark.parametrize("code,snippet", INVALID, ids=[f"{c}-{i}" for i, (c, _) in enumerate(INVALID)])
def test_invalid_example_is_flagged(code, snippet):
    assert code in [f.code for f in lint_source(snippet)]


@pytest.mark.parametrize("code,snippet", VALID, ids=[f"{c}-{i}" for i, (c, _) in enumerate(VALID)])
def test_valid_example_is_not_flagged(code, snippet):
    assert code not in [f.code for f in lint_source(snippet)]


def test_every_rule_documents_itself():
    for rule in RULES:
        for section in ("What it does", "Why is this bad", "Fix"):
            assert rule.section(section), f"{rule.code} has no '## {section}' section"
        assert rule.INVALID, f"{rule.code} has no INVALID example"
