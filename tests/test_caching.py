"""GO1xx caching rules and the candidate machinery they stand on (analysis/candidates.py):
guards, calls followed into helpers, invariance, estimates and the rule modules."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import libcst as cst
import pytest

from conftest import ROOT, lint_source
from greenops_lint.analysis.candidates import CandidateRule, bound_arguments, call_paths
from greenops_lint.config import Config
from greenops_lint.engine import Linter
from greenops_lint.finding import SavingsEstimate
from greenops_lint.plugins import load_rules
from greenops_lint.rules.caching._shared import TYPICAL_EPOCHS, UNKNOWN_REPEATS

CACHING = ROOT / "src" / "greenops_lint" / "rules" / "caching"


def lines_of(findings, code):
    return [f.line for f in findings if f.code == code]


def only(code, source, path="snippet.py"):
    return lines_of(lint_source(source, select=(code,), path=path), code)


def epoch_loop(body: str, head: str = "import pandas as pd") -> str:
    """A training loop whose epoch body (at line 4) is `body`."""
    return (
        f"{head}\ndef train(model, loader, opt, args, cache, data):\n    for epoch in range(10):\n"
        + textwrap.indent(textwrap.dedent(body).strip("\n"), "        ")
        + "\n        for x in loader:\n            model(x).backward()\n            opt.step()\n"
    )


# -- guards ---------------------------------------------------------------------


def test_an_unguarded_load_in_the_epoch_loop_is_flagged():
    assert only("GO101", epoch_loop('df = pd.read_csv("train.csv")')) == [4]


@pytest.mark.parametrize(
    "guard",
    [
        "if data is None:",  # once-guard
        "if epoch == 0:",
        "if not cache:",
        "if args.resume:",
        'if "train" not in cache:',
        "if hasattr(model, 'table'):",
        "if epoch % 5 == 0:",  # periodic guard
    ],
)
def test_an_if_guard_around_the_load_silences_it(guard):
    assert only("GO101", epoch_loop(f'{guard}\n    df = pd.read_csv("train.csv")')) == []


@pytest.mark.parametrize("exception", ["FileNotFoundError", "EOFError"])
def test_a_try_that_catches_file_not_found_is_a_guard(exception):
    source = epoch_loop(f'try:\n    df = pd.read_csv("cache.csv")\nexcept {exception}:\n    df = build()')
    assert only("GO101", source) == []


def test_except_exception_is_not_a_guard():
    source = epoch_loop('try:\n    df = pd.read_csv("train.csv")\nexcept Exception:\n    df = None')
    assert only("GO101", source) == [5]


def test_a_load_in_an_except_exception_handler_is_still_flagged():
    # The caching rules keep today's behaviour: a handler is not a guard for them
    # (the GO5xx rules count one through their own `extra_guard`).
    source = epoch_loop('try:\n    df = fetch()\nexcept Exception:\n    df = pd.read_csv("fallback.csv")')
    assert only("GO101", source) == [7]


def test_a_guard_outside_the_loop_does_not_guard_it():
    source = """\
    import pandas as pd
    if args.train:
        for epoch in range(10):
            df = pd.read_csv("train.csv")
            for x in loader:
                model(x).backward()
    """
    assert only("GO101", source) == [4]


def test_a_guard_in_an_inner_loop_also_guards_the_outer_ones():
    source = """\
    import pandas as pd
    for epoch in range(10):
        for x in loader:
            if df is None:
                df = pd.read_csv("train.csv")
            model(x).backward()
    """
    assert only("GO101", source) == []


# -- calls followed into helpers ------------------------------------------------------


HELPER = """\
import pandas as pd
def load():
    return pd.read_csv("train.csv")
def load_twice():
    return load()
"""


def test_a_load_in_a_helper_one_call_deep_is_flagged():
    assert only("GO101", HELPER + epoch_loop("df = load()", head="")) == [3]


def test_a_load_two_calls_deep_is_flagged():
    assert only("GO101", HELPER + epoch_loop("df = load_twice()", head="")) == [3]


def test_a_guard_in_the_helper_silences_it():
    source = """\
    import pandas as pd
    def load():
        if CACHE is None:
            return pd.read_csv("train.csv")
    for epoch in range(10):
        df = load()
        for x in loader:
            model(x).backward()
    """
    assert only("GO101", source) == []


def test_a_guard_around_the_call_site_silences_the_helper():
    assert only("GO101", HELPER + epoch_loop("if epoch == 0:\n    df = load()", head="")) == []


def test_a_guard_around_the_call_site_outside_the_loop_does_not():
    source = (
        HELPER
        + """\
if args.train:
    for epoch in range(10):
        df = load()
        for x in loader:
            model(x).backward()
"""
    )
    assert only("GO101", source) == [3]


@pytest.mark.parametrize("path", ['f"part-{epoch}.csv"', "shard", "paths[epoch]"])
def test_a_load_whose_arguments_change_in_the_loop_is_new_work(path):
    assert only("GO101", epoch_loop(f"shard = files[epoch]\ndf = pd.read_csv({path})")) == []


@pytest.mark.parametrize("argument,expected", [('"train.csv"', [3]), ('f"part-{epoch}.csv"', [])])
def test_a_helper_argument_is_followed_to_the_call_site(argument, expected):
    source = "import pandas as pd\ndef load(path):\n    return pd.read_csv(path)\n" + epoch_loop(
        f"df = load({argument})", head=""
    )
    assert only("GO101", source) == expected


def test_a_guard_in_a_framework_step_silences_it():
    source = """\
    import torch
    import torch.nn as nn
    class Net(nn.Module):
        def forward(self, x):
            if self.table is None:
                self.table = torch.load("table.pt")
            return x + torch.load("bias.pt")
    """
    assert only("GO101", source) == [7]


def test_an_aliased_import_is_resolved():
    source = epoch_loop('state = T.load("ckpt.pt")', head="import torch as T")
    findings = [f for f in lint_source(source, select=("GO101",)) if f.code == "GO101"]
    assert [f.line for f in findings] == [4]
    assert (
        'T.load("ckpt.pt") loads the same data on every iteration of the epoch loop (10 iterations)'
        in findings[0].message
    )


@pytest.mark.parametrize(
    "source",
    [
        # a retry loop
        'import pandas as pd\nfor attempt in range(3):\n    df = pd.read_csv("a.csv")\n',
        # a memoised helper
        "import functools, pandas as pd\n@functools.cache\ndef load():\n    return pd.read_csv('a.csv')\n"
        + epoch_loop("df = load()", head=""),
        # lazy per-sample loading
        "import torch\nclass DS:\n    def __getitem__(self, i):\n        return torch.load('x.pt')\n"
        + epoch_loop("x = ds[0]", head=""),
    ],
    ids=["retry", "memoised", "per-sample"],
)
def test_what_is_loaded_once_by_design_is_not_flagged(source):
    assert only("GO101", source) == []


# -- the machinery, for any rule ----------------------------------------------------------


class SyncProbe(CandidateRule):
    """A test rule built on the machinery as the GO5xx loop rules would be: `.item()` in any loop."""

    code = "GO999"
    name = "test-sync"
    family = "efficiency"

    def extra_guard(self, node, child, variant):
        return isinstance(node, cst.ExceptHandler) or (
            isinstance(node, cst.If) and child is node.body and any(n.value in variant for n in _names(node.test))
        )

    def visit_Call(self, node):
        if isinstance(node.func, cst.Attribute) and node.func.attr.value == "item":
            self.record(node)

    def leave_Module(self, node):
        for candidate in self.candidates:
            if self.repetition(candidate, accept=lambda loop: True) is not None:
                self.report(candidate.node, "sync")


class NoFollowProbe(SyncProbe):
    follow_calls = False


def _names(node):
    from greenops_lint.analysis.tree import walk_expr

    return [n for n in walk_expr(node) if isinstance(n, cst.Name)]


def probe_lines(rule, source):
    linter = Linter(Config(root=ROOT, select=(rule.code,)), {rule.code: rule})
    return [f.line for f in linter.lint_bytes("snippet.py", textwrap.dedent(source).encode()).findings]


def test_a_rule_widens_the_guard_rule_with_extra_guard():
    source = """\
    for i, x in enumerate(xs):
        a = x.item()
        try:
            run(x)
        except ValueError:
            b = x.item()
        if i == last:
            c = x.item()
        else:
            d = x.item()
        if data is None:
            e = x.item()
    """
    # line 6: an exception handler; line 8: an `if` body testing a loop variant;
    # the `else` is not guarded by that test; line 12: the documented once-guard.
    assert probe_lines(SyncProbe, source) == [2, 10]


def test_follow_calls_off_stops_at_the_function():
    source = """\
    def helper(x):
        return x.item()
    for x in xs:
        helper(x)
    """
    assert probe_lines(SyncProbe, source) == [2]
    assert probe_lines(NoFollowProbe, source) == []


def test_same_arguments_is_off_for_rules_about_the_operation_itself():
    # `x` changes every iteration: a load of it would be new work, a sync on it is not.
    assert probe_lines(SyncProbe, "for x in xs:\n    x.item()\n") == [2]


def test_call_paths_lists_guards_and_loops_but_not_nested_functions():
    module = cst.parse_module("for a in b:\n    if c is None:\n        f(a)\ndef g():\n    h()\n")
    loop = module.body[0]
    paths = call_paths(module, {id(loop)})
    (path,) = paths.values()  # h() is in another frame
    assert [type(node).__name__ for node, _ in path] == ["If", "For"]
    assert path[0][1] is loop.body.body[0].body


def test_bound_arguments_maps_parameters_to_the_call():
    function = cst.parse_module("def f(self, path, *, mode='r', n=1):\n    pass\n").body[0]
    call = cst.parse_expression("self.f(p, mode=m)")
    assert [cst.Module([]).code_for_node(e) for e in bound_arguments(function, call, {"path", "mode"})] in (
        ["p", "m"],
        ["m", "p"],
    )
    assert bound_arguments(function, call, {"n"}) == []  # left at its default
    assert bound_arguments(function, call, {"local"}) is None  # not a parameter
    assert bound_arguments(function, cst.parse_expression("self.f(*args)"), {"path"}) is None


# -- estimates ----------------------------------------------------------------------------


def test_epoch_loop_count_gives_the_repeated_work():
    source = """\
    import pandas as pd
    def train(model, loader, opt, epochs=30):
        for epoch in range(epochs):
            df = pd.read_csv("train.csv")
            for x in loader:
                model(x).backward()
                opt.step()
    """
    (finding,) = [f for f in lint_source(source) if f.code == "GO101"]
    assert (finding.estimate.metric, finding.estimate.low, finding.estimate.high) == ("repeated_work", 29.0, 29.0)
    assert "30 iterations" in finding.message


def test_an_unknown_count_gives_the_documented_range():
    source = epoch_loop('df = pd.read_csv("train.csv")').replace("range(10)", "range(args.epochs)")
    (finding,) = [f for f in lint_source(source) if f.code == "GO101"]
    assert (finding.estimate.low, finding.estimate.high) == UNKNOWN_REPEATS
    assert f"{TYPICAL_EPOCHS[0]}-{TYPICAL_EPOCHS[1]} epochs" in finding.estimate.assumptions[0]


def test_the_estimate_sections_state_the_figures_the_code_uses():
    figure = f"{UNKNOWN_REPEATS[0]:g}-{UNKNOWN_REPEATS[1]:g}"
    rule = load_rules().rules["GO101"]
    assert figure in " ".join(rule.section("Estimate").split())


def test_go102_per_request_load_estimate():
    source = """\
    from transformers import pipeline
    @app.post("/predict")
    def predict(text):
        return pipeline("sentiment-analysis")(text)
    """
    (finding,) = [f for f in lint_source(source) if f.code == "GO102"]
    assert "on every request handled by predict()" in finding.message
    assert isinstance(finding.estimate, SavingsEstimate)
    assert (finding.estimate.low, finding.estimate.high) == UNKNOWN_REPEATS


# -- a few decisions of the other rules -------------------------------------------------


def test_go103_ignores_a_loader_without_workers():
    source = epoch_loop("dl = DataLoader(ds, num_workers=0)", head="from torch.utils.data import DataLoader")
    assert only("GO103", source) == []
    assert only("GO103", source.replace("num_workers=0", "num_workers=4")) == [4]


def test_go104_needs_more_than_one_epoch():
    source = "import tensorflow as tf\nds = tf.data.TFRecordDataset(files).map(parse)\nmodel.fit(ds, epochs={})\n"
    assert only("GO104", source.format(1)) == []
    assert only("GO104", source.format(5)) == [2]


def test_go105_follows_a_loader_passed_to_the_function_that_iterates_it():
    source = """\
    from torch.utils.data import DataLoader
    def train_one_epoch(model, loader):
        for x, y in loader:
            model(x).sum().backward()
    train_loader = DataLoader(train_set, batch_size=64, num_workers=8)
    for epoch in range(10):
        train_one_epoch(model, train_loader)
    """
    assert only("GO105", source) == [5]


# -- the family package: one module per rule ------------------------------------------------


def test_each_caching_rule_has_one_module_named_after_it():
    rules = [r for r in load_rules().rules.values() if r.family == "caching"]
    assert sorted(r.code for r in rules) == ["GO101", "GO102", "GO103", "GO104", "GO105"]
    for rule in rules:
        expected = f"go{rule.code[2:]}_{rule.name.replace('-', '_')}"
        assert rule.__module__ == f"greenops_lint.rules.caching.{expected}"
        assert len((CACHING / f"{expected}.py").read_text().splitlines()) <= 400
    assert not (CACHING.parent / "caching.py").exists()


def test_estimate_figures_are_not_hand_typed_in_the_rule_modules():
    for path in CACHING.glob("go1*.py"):
        code = Path(path).read_text()
        assert not re.search(r"low=\d|high=\d", code), path.name


# -- GO101's hoist: one round per loop, linear in the loads (issue 21) ----------------------


def _fixed(tmp_path, source, code="GO101"):
    from greenops_lint.fixes import fix_paths

    path = tmp_path / "train.py"
    path.write_text(textwrap.dedent(source))
    rules = load_rules().rules
    fix_paths([str(path)], Config(root=tmp_path, select=(code,)), {code: rules[code]}, unsafe=True)
    return path.read_text()


def test_every_load_of_a_loop_is_hoisted_in_one_fix_keeping_their_order(tmp_path):
    source = """\
    import pandas as pd
    import torch
    for epoch in range(10):
        a = pd.read_csv("a.csv")
        for fold in range(3):
            c = torch.load("c.pt")
        b = torch.load("b.pt")  # noqa: GO501
        d = torch.load("d.pt")  # noqa: GO101
        e = torch.load("e.pt")
        for x in loader:
            model(x).backward()
    """
    assert _fixed(tmp_path, source) == textwrap.dedent("""\
    import pandas as pd
    import torch
    a = pd.read_csv("a.csv")
    b = torch.load("b.pt")  # noqa: GO501
    e = torch.load("e.pt")
    for epoch in range(10):
        for fold in range(3):
            c = torch.load("c.pt")
        d = torch.load("d.pt")  # noqa: GO101
        for x in loader:
            model(x).backward()
    """)


def test_hoists_from_an_inner_and_an_outer_loop_in_the_same_round(tmp_path):
    source = """\
    import torch
    for epoch in range(10):
        for batch in loader:
            w = torch.load("w.pt")
            model(batch, w).backward()
        s = torch.load("s.pt")
    """
    # the inner hoist adds a line to the outer body in the same round: the outer
    # hoist finds its statement by its code, not by its old index
    assert _fixed(tmp_path, source) == textwrap.dedent("""\
    import torch
    s = torch.load("s.pt")
    w = torch.load("w.pt")
    for epoch in range(10):
        for batch in loader:
            model(batch, w).backward()
    """)


def test_many_loads_in_one_loop_stay_linear():
    """5,000 loads took 242 s (each load re-scanned the loop body); see
    benchmarks/bench_loop_loads.py for the timed run."""
    import time

    from greenops_lint.analysis import candidates

    body = "".join(f"    x{i} = torch.load('w{i}.pt')\n" for i in range(1500))
    source = "import torch\nfor epoch in range(10):\n" + body + "    for b in loader:\n        model(b).backward()\n"
    start = time.process_time()
    findings = lint_source(source, select=("GO101",))
    assert len(findings) == 1500
    assert time.process_time() - start < 20  # quadratic took minutes
    assert candidates.changes_any([], {"x"}) is False
