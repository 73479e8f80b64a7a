"""Engine behaviour: name resolution, crash isolation, prefilter, positions."""

from __future__ import annotations

import libcst as cst

from conftest import ROOT, lint_source
from greenops_lint.config import Config
from greenops_lint.engine import Linter
from greenops_lint.plugins import load_rules
from greenops_lint.rule import Rule


class ResolvedNames(Rule):
    """Test rule: reports the qualified name of every call.

    ## What it does
    Test only.
    """

    code = "GO991"
    name = "resolved-names"
    family = "core"

    def visit_Call(self, node: cst.Call) -> None:
        self.report(node, str(self.ctx.call_name(node)))


class Crashes(Rule):
    """Test rule that raises."""

    code = "GO992"
    name = "crashes"
    family = "core"

    def visit_Call(self, node: cst.Call) -> None:
        raise ValueError("boom")


def lint_with(rules, source: str):
    registry = load_rules()
    all_rules = {**registry.rules, **{r.code: r for r in rules}}
    linter = Linter(Config(root=ROOT), all_rules)
    return linter.lint_bytes("x.py", source.encode()).findings


def names(source: str) -> list[str]:
    return [f.message for f in lint_with([ResolvedNames], source) if f.code == "GO991"]


def test_aliases_resolve_to_qualified_names():
    source = (
        "import torch as T\n"
        "import torch.nn as nn\n"
        "import os.path\n"
        "from torch.utils.data import DataLoader as DL\n"
        "from numpy import float64 as f64\n"
        "import tensorflow as tf\n"
        "T.zeros(1)\nnn.Linear(1, 1)\nos.path.join('a')\nDL(ds)\nf64(1)\ntf.keras.layers.Dense(1)\nlen([])\n"
    )
    assert names(source) == [
        "torch.zeros",
        "torch.nn.Linear",
        "os.path.join",
        "torch.utils.data.DataLoader",
        "numpy.float64",
        "keras.layers.Dense",
        "builtins.len",
    ]


def test_local_assignment_and_parameters_shadow_imports():
    source = (
        "import numpy as np\n"
        "def f(np):\n    np.load('x')\n"
        "def g():\n    np = Helper()\n    np.load('x')\n"
        "np.load('y')\n"
        "class C:\n    np = 1\n    def m(self):\n        np.load('z')\n"
    )
    assert names(source) == ["None", "None", "None", "numpy.load", "numpy.load"]


def test_relative_and_star_imports_do_not_resolve():
    assert names("from . import torch\nfrom x import *\ntorch.zeros(1)\n") == ["None"]


def test_a_crashing_rule_reports_go003_and_other_rules_still_run():
    findings = lint_with([Crashes], "import torch\ntorch.set_default_dtype(torch.float64)\n")
    assert sorted(f.code for f in findings) == ["GO003", "GO401"]
    go003 = next(f for f in findings if f.code == "GO003")
    assert "GO992 (crashes)" in go003.message and "ValueError: boom" in go003.message


def test_prefilter_skips_files_without_tokens_but_still_reports_syntax_errors():
    assert lint_source("x = 1\n") == []
    findings = lint_source("def f(:\n")
    assert [f.code for f in findings] == ["GO001"]
    assert findings[0].line == 1


def test_positions_are_one_based_and_cover_the_node():
    (finding,) = lint_source("import torch\nif True:\n    m = net.double()\n", select=("GO402",))
    assert (finding.line, finding.column, finding.end_line, finding.end_column) == (3, 9, 3, 21)


def test_hardware_changes_the_estimate():
    source = "import torch\ntorch.set_default_dtype(torch.float64)\n"
    generic = lint_source(source)[0].estimate
    t4 = lint_source(source, hardware="t4")[0].estimate
    a100 = lint_source(source, hardware="a100-80gb")[0].estimate
    # No literal sizes: from overhead-bound (~1x) to the device's worst case.
    assert (generic.low, generic.high) == (1.0, 128.0)  # A10 convolutions: TF32 62.5 / FP64 0.49
    assert (t4.low, t4.high) == (1.0, 32.0)  # 8.1 / 0.25 TFLOPS
    assert (a100.low, a100.high) == (1.0, 16.0)  # TF32 conv 156 / FP64 9.7 TFLOPS
    assert "T4" in lint_source(source, hardware="t4")[0].message


# -- the parse without validation and without the collector ----------------------
def test_no_node_class_overrides_the_validation_hook_that_parsing_skips():
    from libcst._nodes.base import CSTNode

    from greenops_lint import parsing

    assert parsing._VALIDATING_POST_INIT is not None
    overriding = [cls.__name__ for cls in _all_subclasses(CSTNode) if "__post_init__" in cls.__dict__]
    assert overriding == []


def _all_subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _all_subclasses(sub)


def test_fast_parse_builds_the_same_tree_and_restores_validation():
    import gc

    from greenops_lint.parsing import collector_paused, parse_module

    text = (ROOT / "fixtures" / "caching" / "GO101_tabular_training.py").read_text()
    assert parse_module(text).deep_equals(cst.parse_module(text))
    assert parse_module(text).code == text
    # Trees built by hand afterwards (autofix) are validated again.
    try:
        cst.Name("not a name")
    except cst.CSTValidationError:
        pass
    else:  # pragma: no cover - the assertion below explains
        raise AssertionError("node validation was left switched off")
    was_enabled = gc.isenabled()
    with collector_paused():
        assert not gc.isenabled()
    assert gc.isenabled() == was_enabled


def test_a_linted_tree_is_freed_without_the_cycle_collector():
    """The per-file analyses must not keep the tree alive through reference
    cycles: the collector is paused while a file is linted, and a cycle would
    leave each tree for a full collection to find."""
    import gc

    source = (ROOT / "fixtures" / "unused" / "GO201_vision_models.py").read_text()
    linter = Linter(Config(root=ROOT), load_rules().rules)
    gc.collect()
    gc.disable()
    try:
        assert linter.lint_bytes("m.py", source.encode()).findings
        gc.set_debug(gc.DEBUG_SAVEALL)
        gc.collect()
        leaked = [o for o in gc.garbage if isinstance(o, (cst.Module, cst.ClassDef))]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert leaked == []


def test_positions_match_libcst_position_provider_for_every_node():
    """`positions_of` reimplements parts of LibCST's position codegen for speed
    (early stop, a plain context manager); it must agree with the original."""
    from libcst.metadata import MetadataWrapper, PositionProvider

    from greenops_lint.positions import _positions_by_statement, positions_of
    from greenops_lint.walker import children

    for name in ("caching/GO101_lightning_and_helpers.py", "unused/GO204_conv_bn.py", "efficiency/GO503_evaluation.py"):
        path = ROOT / "fixtures" / name
        text = path.read_text()
        module = cst.parse_module(text)
        expected = MetadataWrapper(module, unsafe_skip_copy=True).resolve(PositionProvider)
        nodes = [node for node in expected if not isinstance(node, cst.Module)]
        assert len(nodes) > 100
        found = positions_of(module, nodes)
        assert [found[n] for n in nodes] == [expected[n] for n in nodes], name
        # Per statement, from CPython's line numbers: every node a rule can
        # report (what the walk reaches).
        reachable, pending = [], list(module.body)
        while pending:
            node = pending.pop()
            reachable.append(node)
            pending.extend(children(node))
        assert _positions_by_statement(module, {id(n): n for n in reachable}, text) is not None
        found = positions_of(module, reachable, text)
        assert [found[n] for n in reachable] == [expected[n] for n in reachable], name


def test_positions_per_statement_handle_comments_decorators_and_semicolons():
    from libcst.metadata import MetadataWrapper, PositionProvider

    from greenops_lint.positions import _positions_by_statement, positions_of

    text = (
        "# header comment\n\nimport torch; import numpy as np\n\n\n# about f\n@decorator\n"
        "# between decorators\n@other(1,\n       2)\ndef f(x):\n    return x\n\n"
        "class A:\n    pass\nif True:\n    y = [1,\n         2]\nz = '''a\nb'''; w = 3\n"
    )
    module = cst.parse_module(text)
    expected = MetadataWrapper(module, unsafe_skip_copy=True).resolve(PositionProvider)
    nodes = [n for n in expected if isinstance(n, (cst.BaseStatement, cst.BaseSmallStatement, cst.Name, cst.Decorator))]
    assert _positions_by_statement(module, {id(n): n for n in nodes}, text) is not None
    found = positions_of(module, nodes, text)
    assert [found[n] for n in nodes] == [expected[n] for n in nodes]


def test_operator_chains_broken_over_lines_are_caught_before_libcst_parses_them():
    from greenops_lint.engine import _too_complex

    wrapped = "import torch\nx = (\n" + "".join(f"    a{i} +\n" for i in range(1200)) + "    b)\n"
    leading = "import torch\nx = (\n    a\n" + "".join(f"    | a{i}\n" for i in range(1200)) + ")\n"
    continued = "import torch\nx = a \\\n" + "".join(f"    * a{i} \\\n" for i in range(1200)) + "    * b\n"
    for text in (wrapped, leading, continued):
        assert "chains more than 1000 operands" in (_too_complex(text) or "")
    # A long file of ordinary code is not sent to the check at all.
    ordinary = "".join(f"y{i} = a + b\n" for i in range(5000))
    assert _too_complex(ordinary) is None


# -- shared analyses: declared by name, failures named ---------------------------------------


class UsesAttributes(Rule):
    """Test rule: reads the module-attributes analysis at the end of the module."""

    code = "GO993"
    name = "uses-attributes"
    family = "core"
    analyses = ("module_attributes",)

    def leave_Module(self, node: cst.Module) -> None:
        self.ctx.analysis("module_attributes")
        self.report(node, "read it")


class UsesLoops(Rule):
    """Test rule: declares the walk-fed loop analysis."""

    code = "GO994"
    name = "uses-loops"
    family = "core"
    analyses = ("loops",)

    def visit_For(self, node: cst.For) -> None:
        self.report(node, f"{len(self.ctx.loops.loops)} loops so far")


def test_an_unknown_analysis_name_is_an_error():
    import pytest

    class Misspelt(UsesAttributes):
        code = "GO995"
        analyses = ("loop",)

    with pytest.raises(ValueError, match="unknown analyses"):
        Linter(Config(root=ROOT), {"GO995": Misspelt})
    from greenops_lint.plugins import _check_rule_class

    assert "unknown analyses ['loop']" in _check_rule_class(Misspelt)


def test_a_crashing_analysis_skips_the_rules_that_declare_it_and_names_them(monkeypatch):
    from greenops_lint.analysis import registry

    def explode(ctx):
        raise KeyError("attr-boom")

    spec = registry.ANALYSES["module_attributes"]
    monkeypatch.setitem(registry.ANALYSES, "module_attributes", registry.AnalysisSpec(spec.name, explode, spec.doc))
    findings = lint_with([UsesAttributes], "import torch\ntorch.set_default_dtype(torch.float64)\n")
    assert "GO993" not in [f.code for f in findings]
    assert "GO401" in [f.code for f in findings]  # rules that do not use it still report
    go003 = [f for f in findings if f.code == "GO003"]
    assert len(go003) == 1
    assert "analysis 'module_attributes'" in go003[0].message and "GO993" in go003[0].message
    assert "attr-boom" in go003[0].message


def test_a_walk_fed_analysis_that_crashes_skips_its_rules(monkeypatch):
    from greenops_lint.analysis.loops import LoopAnalysis

    def explode(self, node):
        raise RuntimeError("loop-boom")

    source = "import pandas as pd\nfor epoch in range(3):\n    df = pd.read_csv('a.csv')\n"
    assert "GO101" in [f.code for f in lint_with([UsesLoops], source)]
    monkeypatch.setattr(LoopAnalysis, "visit_For", explode)
    findings = lint_with([UsesLoops], source)
    go003 = [f for f in findings if f.code == "GO003"]
    assert [f.code for f in findings] == ["GO003"]
    assert "analysis 'loops'" in go003[0].message and "GO994" in go003[0].message
    assert "GO101" in go003[0].message  # built-in rules that declare it are named too


def test_a_walk_fed_analysis_cannot_be_read_without_declaring_it():
    class Undeclared(UsesLoops):
        code = "GO996"
        analyses = ()

    findings = lint_with([Undeclared], "import torch\nfor x in range(3):\n    pass\n")
    go003 = [f for f in findings if f.code == "GO003"]
    assert go003 and "declare it in Rule.analyses" in go003[0].message


def test_a_parser_crash_is_an_internal_error_not_a_syntax_error(monkeypatch):
    from greenops_lint import engine

    def explode(text):
        raise ValueError("parser-boom")

    monkeypatch.setattr(engine, "parse_module", explode)
    findings = lint_source("import torch\nx = torch.zeros(3).double()\n")
    assert [f.code for f in findings] == ["GO003"]
    assert "parser-boom" in findings[0].message
