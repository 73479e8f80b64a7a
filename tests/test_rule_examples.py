"""Each rule's own INVALID examples are flagged and its VALID look-alikes are not.

Test ids are per rule (`GO101-invalid-2`): adding an example to one rule does
not renumber another rule's tests.
"""

from __future__ import annotations

import pytest

from conftest import lint_source
from greenops_lint.plugins import load_rules

RULES = [r for r in load_rules().rules.values() if r.family != "core"]
INVALID = [(r, i, e) for r in RULES for i, e in enumerate(r.invalid_examples())]
VALID = [(r, i, s) for r in RULES for i, s in enumerate(r.examples()[1])]


@pytest.mark.parametrize("rule,index,example", INVALID, ids=[f"{r.code}-invalid-{i}" for r, i, _ in INVALID])
def test_invalid_example_is_flagged(rule, index, example):
    findings = [f for f in lint_source(example.source) if f.code == rule.code]
    assert findings, f"{rule.code} INVALID[{index}] is not flagged"
    if example.line is not None:
        assert example.line in [f.line for f in findings]
    if example.message is not None:
        assert any(example.message in f.message for f in findings), [f.message for f in findings]


@pytest.mark.parametrize(
    "rule,index,example",
    [entry for entry in INVALID if entry[2].fixed is not None],
    ids=[f"{r.code}-fix-{i}" for r, i, e in INVALID if e.fixed is not None],
)
def test_invalid_example_is_fixed_as_pinned(rule, index, example, tmp_path):
    from greenops_lint.config import Config
    from greenops_lint.fixes import fix_paths

    path = tmp_path / "snippet.py"
    path.write_text(example.source)
    fix_paths([str(path)], Config(root=tmp_path, select=(rule.code,)), {rule.code: rule}, unsafe=True)
    assert path.read_text() == example.fixed_source


@pytest.mark.parametrize("rule,index,snippet", VALID, ids=[f"{r.code}-valid-{i}" for r, i, _ in VALID])
def test_valid_example_is_not_flagged(rule, index, snippet):
    assert rule.code not in [f.code for f in lint_source(snippet)]


def test_every_rule_documents_itself():
    for rule in RULES:
        for section in ("What it does", "Why is this bad", "Fix"):
            assert rule.section(section), f"{rule.code} has no '## {section}' section"
        assert rule.INVALID, f"{rule.code} has no INVALID example"
