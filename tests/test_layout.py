"""The code's layout, as issue 16 set it: one module per rule, small modules,
rule.py at the bottom of the dependency graph."""

from __future__ import annotations

import ast

from conftest import ROOT

SRC = ROOT / "src" / "greenops_lint"


def _imported_modules(path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_rule_py_depends_on_nothing_above_it():
    imported = _imported_modules(SRC / "rule.py")
    above = {"greenops_lint.context", "greenops_lint.engine", "greenops_lint.walker"}
    assert not imported & above
    assert not [m for m in imported if m.startswith("greenops_lint.probe")]
