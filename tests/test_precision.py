"""GO4xx: float64 defaults, casts and NumPy conversions; aliases, helpers, look-alikes, estimates and fixes."""

from __future__ import annotations

import textwrap

import pytest

from conftest import lint_source
from greenops_lint.config import Config
from greenops_lint.fixes import fix_paths
from greenops_lint.plugins import load_rules


def go4(source: str, **kwargs) -> list[tuple[str, int]]:
    return [(f.code, f.line) for f in lint_source(textwrap.dedent(source), **kwargs) if f.code.startswith("GO4")]


def fixed(source: str, tmp_path) -> str:
    """The source after `--fix --unsafe-fixes` of the precision rules."""
    rules = {code: rule for code, rule in load_rules().rules.items() if code.startswith("GO4")}
    path = tmp_path / "train.py"
    path.write_text(textwrap.dedent(source))
    fix_paths([str(path)], Config(root=tmp_path, select=tuple(rules)), rules, unsafe=True)
    return path.read_text()


ALIASED_TORCH = """
import torch as T
T.set_default_dtype(T.float64)
model = T.nn.Linear(4, 4).double()
"""


def test_torch_imported_under_another_name_is_resolved():
    assert go4(ALIASED_TORCH) == [("GO401", 3), ("GO402", 4)]


def test_fix_keeps_the_torch_alias(tmp_path):
    assert fixed(ALIASED_TORCH, tmp_path) == textwrap.dedent(
        """
        import torch as T
        T.set_default_dtype(T.float32)
        model = T.nn.Linear(4, 4).float()
        """
    )


def test_numpy_imported_under_another_name_is_resolved():
    source = """
    import numpy as N
    import torch
    x = torch.from_numpy(N.random.rand(10, 3))
    y = torch.tensor(N.zeros((4, 5)))
    labels = torch.from_numpy(N.arange(10))
    """
    findings = [f for f in lint_source(textwrap.dedent(source)) if f.code == "GO403"]
    assert [f.line for f in findings] == [4, 5]
    assert "(N.random.rand(10, 3))" in findings[0].message


def test_model_built_by_a_helper_one_call_deep_is_a_model():
    source = """
    import torch.nn as nn

    def build():
        return nn.Sequential(nn.Linear(8, 8))

    model = build().double()
    """
    (finding,) = [f for f in lint_source(textwrap.dedent(source)) if f.code == "GO402"]
    assert finding.line == 7 and "casts the model to float64" in finding.message


@pytest.mark.parametrize(
    "source",
    [
        # A function of the module that happens to be named like torch's.
        """
        import torch

        def set_default_dtype(dtype):
            pass

        set_default_dtype(torch.float64)
        """,
        # A helper returning a scalar: `.double()` of a total is not a model.
        """
        import torch

        def total(values):
            return sum(values)

        t = total(xs).double()
        """,
        # Scalar metrics, a dtype from configuration, integer data, loops over range().
        """
        import numpy as np, torch
        accuracy = correct.double() / count
        torch.set_default_dtype(dtype)
        labels = torch.from_numpy(np.random.randint(0, 10, (5,)))
        for i in range(3):
            i.double()
        """,
        # Numerical gradient checks need float64.
        """
        import torch
        from torch.autograd import gradcheck
        torch.set_default_dtype(torch.float64)
        """,
    ],
)
def test_look_alikes_are_not_flagged(source):
    assert go4(source) == []


def test_literal_shape_gives_extra_bytes():
    from greenops_lint.rules.precision.go403_numpy_float64_into_framework import FLOAT32_BYTES, FLOAT64_BYTES

    (finding,) = lint_source("import numpy as np, torch\nx = torch.from_numpy(np.random.rand(1000, 16))\n")
    assert finding.estimate.metric == "memory_bytes"
    assert finding.estimate.low == 1000 * 16 * 4 == 1000 * 16 * (FLOAT64_BYTES - FLOAT32_BYTES)


def test_pages_quote_the_estimate_constants():
    from greenops_lint.rules.precision import go401_global_float64_default as go401
    from greenops_lint.rules.precision import go403_numpy_float64_into_framework as go403
    from greenops_lint.savings import FLOAT64_BYTES_RATIO

    assert f"{FLOAT64_BYTES_RATIO:g}x for memory-bound" in go401.GlobalFloat64Default.section("Estimate")
    extra = go403.FLOAT64_BYTES - go403.FLOAT32_BYTES
    assert f"({extra} bytes an element)" in go403.NumpyFloat64IntoFramework.section("Estimate")


def test_float64_fixes_are_left_out_when_float64_data_would_remain(tmp_path, cli, monkeypatch):
    monkeypatch.chdir(tmp_path)
    source = "import torch\nx = torch.randn(64, 512, dtype=torch.float64)\nmodel = net.double()\nout = model(x)\n"
    (tmp_path / "train.py").write_text(source)
    result = cli("check", "train.py", "--fix", "--unsafe-fixes")
    assert (tmp_path / "train.py").read_text() == source  # .double() -> .float() would break model(x)
    assert "float64 fixes left out" in result.stderr
    assert "GO402" in result.stdout
