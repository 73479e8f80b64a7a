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


def _rule_module_of(rule) -> str:
    import inspect

    return inspect.getsourcefile(rule)


def test_each_rule_code_has_exactly_one_module_named_after_it():
    from greenops_lint.rules import builtin_rules

    seen = {}
    for rule in builtin_rules():
        path = _rule_module_of(rule)
        stem = path.rsplit("/", 1)[-1][: -len(".py")]
        assert stem == f"go{rule.code[2:]}_{rule.name.replace('-', '_')}", (rule.code, path)
        assert f"/rules/{rule.family}/" in path, (rule.code, path)
        assert path not in seen, f"{rule.code} shares {path} with {seen.get(path)}"
        seen[path] = rule.code


def test_modules_stay_small():
    too_big = []
    for path in sorted(SRC.rglob("*.py")):
        lines = path.read_text(encoding="utf-8").count("\n")
        limit = 400 if path.parent.parent.name == "rules" and path.name.startswith("go") else 800
        if lines > limit:
            too_big.append(f"{path.relative_to(SRC)}: {lines} lines (limit {limit})")
    assert not too_big, too_big


def test_rule_modules_keep_no_hand_kept_lists():
    for path in (SRC / "rules").rglob("*.py"):
        assert "\nRULES = " not in path.read_text(encoding="utf-8"), path


def test_rules_declare_the_shared_analyses_they_read(monkeypatch):
    """Run every rule over its examples and the fixtures, recording which shared
    analyses each rule reads (directly or through a helper): each must be
    declared in its `analyses`, so that a crashing analysis skips exactly them."""
    from conftest import FIXTURES, fixture_files, lint_source
    from greenops_lint.context import FileContext
    from greenops_lint.plugins import load_rules
    from greenops_lint.rule import Rule
    from greenops_lint.walker import TreeWalk

    owner: list = [None]
    read: set[tuple[str, str]] = set()
    original_call, original_analysis = TreeWalk._call, FileContext.analysis

    def call(self, handlers, node):
        for handler in list(handlers):
            owner[0] = getattr(handler, "__self__", None)
            original_call(self, [handler], node)
        owner[0] = None

    def analysis(self, name, building=False):
        if isinstance(owner[0], Rule):
            read.add((owner[0].code, name))
        return original_analysis(self, name, building)

    monkeypatch.setattr(TreeWalk, "_call", call)
    monkeypatch.setattr(FileContext, "analysis", analysis)
    rules = [r for r in load_rules().rules.values() if r.family != "core"]
    for rule in rules:
        invalid, valid = rule.examples()
        for snippet in invalid + valid:
            lint_source(snippet)
    for path in fixture_files():
        if path.suffix == ".py":
            lint_source(path.read_text(encoding="utf-8"), path=str(path.relative_to(FIXTURES)))
    registry = load_rules().rules
    undeclared = sorted(f"{code} reads '{name}'" for code, name in read if name not in registry[code].analyses)
    assert not undeclared, "; ".join(undeclared)
