"""GO403: a float64 NumPy array turned into a framework tensor."""

from __future__ import annotations

from typing import Optional

import libcst as cst

from greenops_lint.analysis.calls import get_arg
from greenops_lint.analysis.dtypes import float64_array_source, is_float64_dtype, literal_numel
from greenops_lint.analysis.rewrite import method_call, with_keyword
from greenops_lint.analysis.tree import display_name
from greenops_lint.finding import Fix
from greenops_lint.rule import Invalid, Rule
from greenops_lint.savings import extra_bytes_estimate, float64_cost_words, float64_time_factor

# The page's `## Estimate`: with a literal shape, the extra bytes of the float64
# copy, FLOAT64_BYTES - FLOAT32_BYTES an element; otherwise GO401's time factor.
FLOAT64_BYTES, FLOAT32_BYTES = 8, 4


class NumpyFloat64IntoFramework(Rule):
    """Turns a float64 NumPy array into a framework tensor.

    ## What it does
    Flags `torch.from_numpy(x)`, `torch.tensor(x)`, `torch.as_tensor(x)`,
    `tf.convert_to_tensor(x)` and `tf.constant(x)` without a float32 `dtype=`,
    where `x` is float64 by NumPy's default: `np.random.rand/randn/random/...`,
    `rng.random()` of `np.random.default_rng()`, `np.zeros/ones/empty/eye/
    linspace` without a dtype, `np.arange` or `np.array` of float literals,
    `np.loadtxt/genfromtxt`, `.astype(float)` / `.astype(np.float64)`, and the
    `.values` / `.to_numpy()` of a frame read with a pandas reader. The array
    may be the argument itself or a name assigned from one of these.

    ## Why is this bad
    NumPy creates float64 by default and the conversion keeps the dtype: the
    tensor takes twice the host memory and host-to-device bytes of float32.
    Then either the model fails with "expected Float but found Double" (and
    somebody adds `.double()`, GO402) or the data is cast on every batch.

    Not flagged: integer data (`np.arange(10)`, `np.random.randint`), a dtype
    given to the factory or the conversion, and a conversion followed at once
    by `.float()`, `.half()`, `.bfloat16()` or `.to(torch.float32)`.

    ## Fix
    Create float32 at the source (`rng.random(size, dtype=np.float32)`,
    `np.zeros(n, dtype=np.float32)`, `.astype(np.float32)`), or convert with
    `torch.as_tensor(x, dtype=torch.float32)`. Autofix (unsafe, numerics):
    `torch.tensor/as_tensor(x)` and `tf.convert_to_tensor/constant(x)` get
    `dtype=<module>.float32`; `torch.from_numpy(x)` becomes
    `torch.from_numpy(x).float()`.

    ## Estimate
    Extra bytes of the float64 copy (4 bytes an element) when the array's shape
    is literal; otherwise the float64 time factor of GO401 for the tensor's use.
    """

    code = "GO403"
    name = "numpy-float64-into-framework"
    family = "precision"
    fixable = True
    fix_safety = "unsafe"
    tokens = ("from_numpy", "tensor", "convert_to_tensor", "constant")
    INVALID = [
        Invalid(
            """
            import numpy as np, torch
            x = torch.from_numpy(np.random.rand(1000, 3))
            """,
            line=2,
            message="torch.from_numpy() of a float64 NumPy array (np.random.rand(1000, 3)) makes a float64 tensor",
            fixed="""
            import numpy as np, torch
            x = torch.from_numpy(np.random.rand(1000, 3)).float()
            """,
        ),
        Invalid(
            """
            import numpy as np
            import torch as T
            features = np.loadtxt("train.csv", delimiter=",")
            inputs = T.tensor(features)
            """,
            line=4,
            message='torch.tensor() of a float64 NumPy array (np.loadtxt("train.csv", delimiter=","))',
            fixed="""
            import numpy as np
            import torch as T
            features = np.loadtxt("train.csv", delimiter=",")
            inputs = T.tensor(features, dtype=T.float32)
            """,
        ),
    ]
    VALID = [
        """
        import numpy as np, torch
        x = torch.from_numpy(np.random.rand(1000, 3)).float()
        """,
        """
        import numpy as np, torch
        labels = torch.from_numpy(np.arange(10))
        """,
        """
        import numpy as np, torch
        x = torch.tensor(np.random.rand(8), dtype=torch.float32)
        """,
    ]

    _CONVERTERS = frozenset(
        {"torch.from_numpy", "torch.tensor", "torch.as_tensor", "torch.asarray", "tensorflow.convert_to_tensor", "tensorflow.constant"}
    )
    _NARROWING = frozenset({"float", "half", "bfloat16"})

    def visit_Call(self, node: cst.Call) -> None:
        name = self.ctx.call_name(node)
        if name not in self._CONVERTERS or self.ctx.calls_gradcheck:
            return
        if name != "torch.from_numpy" and get_arg(node, "dtype") is not None:
            return
        data = get_arg(node, None, 0)
        if data is None or self._narrowed_at_once(node):
            return
        source = float64_array_source(self.ctx, data.value)
        if source is None:
            return
        hardware = self.ctx.hardware
        numel = literal_numel(self.ctx, source) if isinstance(source, cst.Call) else None
        if numel:
            estimate = extra_bytes_estimate(
                numel * (FLOAT64_BYTES - FLOAT32_BYTES),
                f"{numel} float64 elements take {FLOAT64_BYTES} bytes each instead of {FLOAT32_BYTES}",
                hardware,
            )
        else:
            estimate = float64_time_factor(hardware)
        short = display_name(name)
        self.report(
            node,
            f"{short}() of a float64 NumPy array ({self.ctx.snippet(source, 40)}) makes a float64 tensor "
            f"({float64_cost_words(hardware)}); create float32 data or pass "
            f"dtype={'tf' if name.startswith('tensorflow.') else 'torch'}.float32",
            estimate,
            fix=self._fix(name, node),
        )

    @staticmethod
    def _fix(name: str, node: cst.Call) -> Optional[Fix]:
        func = node.func
        if name == "torch.from_numpy" or not isinstance(func, cst.Attribute):
            return Fix(node, lambda updated: method_call(updated, "float"), safe=False, title=".float()")
        dtype = cst.Attribute(value=func.value, attr=cst.Name("float32"))
        return Fix(node, lambda updated: with_keyword(updated, "dtype", dtype), safe=False, title="dtype=float32")

    def _narrowed_at_once(self, node: cst.Call) -> bool:
        """`torch.from_numpy(x).float()` or `.to(torch.float32)`: only a transient copy."""
        attribute, call = self.ctx.parent(1), self.ctx.parent(2)
        if not (isinstance(attribute, cst.Attribute) and attribute.value is node and isinstance(call, cst.Call)):
            return False
        method = attribute.attr.value
        if method in self._NARROWING:
            return True
        if method in ("to", "type", "astype"):
            return any(
                (a.keyword is None or a.keyword.value == "dtype") and not is_float64_dtype(self.ctx, a.value)
                and (self.ctx.qualified_name(a.value) or "").startswith(("torch.float", "torch.half", "torch.bfloat", "tensorflow.float"))
                for a in call.args
            )
        return False
