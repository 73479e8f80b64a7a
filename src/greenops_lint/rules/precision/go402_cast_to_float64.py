"""GO402: a model, its layers or a training batch cast to float64."""

from __future__ import annotations

from typing import Optional

import libcst as cst

from greenops_lint.analysis.calls import get_arg, literal_value
from greenops_lint.analysis.classes import MODEL_NAME, is_model_constructor
from greenops_lint.analysis.dtypes import is_float64_dtype
from greenops_lint.analysis.functions import returned_values
from greenops_lint.analysis.names import LoopItem
from greenops_lint.analysis.rewrite import replace_with
from greenops_lint.analysis.tree import is_self_attr, last_part
from greenops_lint.finding import Fix
from greenops_lint.rule import Invalid, Rule
from greenops_lint.rules.precision._shared import cost_words, float32_fix, float64_estimate
from greenops_lint.savings import SOURCE_DATASHEET

# The page's `## Estimate` is GO401's: `savings.float64_time_factor` of the file's workload.


class CastToFloat64(Rule):
    """Casts a model, its layers or a training batch to float64.

    ## What it does
    Flags `.double()`, `.to(torch.float64)`, `.to(dtype=torch.double)` and
    `.type(torch.DoubleTensor)` on a model (an `nn.Module` subclass of the
    module, a `torch.nn` layer, a loaded pretrained model, or a name such as
    `model`/`net`/`encoder` when nothing else is known) or on the items of a
    batch loop (`for x, y in loader: x.double()`); layers built with
    `dtype=torch.float64` or Keras `dtype="float64"`; and float64 tensor
    factories inside a model's own methods.

    ## Why is this bad
    A float64 model stores twice the parameter, gradient and optimizer bytes
    and runs every layer at the FP64 rate, without TF32/BF16 tensor cores:
    about the FP32 rate for matmuls on A100/H100/H200 (FP64 tensor cores),
    8-16x slower than PyTorch's default TF32 convolutions there, and 32-64x on
    T4/A10/L4/RTX GPUs. `.double()` is often added to silence "expected
    scalar type Float but found Double", which comes from float64 NumPy input
    (GO403): fix the input instead.

    Not flagged: scalar losses and metrics (`loss.double()`,
    `total.double()`), accumulators outside model code, and modules that call
    `gradcheck`.

    ## Fix
    Keep the model and its inputs in float32, and use `torch.autocast` for
    bf16/fp16 where the hardware supports it. Autofix (unsafe, numerics):
    `.double()` becomes `.float()`, and a float64 dtype (`torch.float64`,
    `torch.double`, `torch.DoubleTensor`, `"float64"`) its float32 spelling;
    a dtype imported as a bare name (`from torch import float64`) is left alone.

    ## Estimate
    As GO401: the float64/float32 step-time factor on the selected hardware,
    sized from the file's literal layer shapes, batch size, framework and TF32
    switch (a tiny model ~1x, a wide MLP 1-2x, a conv net 4x or more on
    `a100-80gb`); the range spans the cases when the sizes are not literal.
    Always material: the model's memory doubles whatever the time factor.
    """

    code = "GO402"
    name = "cast-to-float64"
    family = "precision"
    estimate_sources = {
        SOURCE_DATASHEET: "the selected `--hardware` profile: its datasheet rates in `data/hardware.toml`",
    }
    fixable = True
    fix_safety = "unsafe"
    analyses = ("model_classes", "literal_sizes")
    tokens = ("double", "float64", "Double")
    INVALID = [
        Invalid(
            """
            import torch.nn as nn
            model = nn.Sequential(nn.Linear(8, 8)).double()
            """,
            line=2,
            message="nn.Sequential(nn.Linear(8, 8)).double() casts the model to float64",
            fixed="""
            import torch.nn as nn
            model = nn.Sequential(nn.Linear(8, 8)).float()
            """,
        ),
        Invalid(
            """
            import torch
            for x, y in loader:
                out = model(x.to(torch.float64))
            """,
            line=3,
            message="x.to(float64) casts the batch to float64",
            fixed="""
            import torch
            for x, y in loader:
                out = model(x.to(torch.float32))
            """,
        ),
        """
        import torch
        from torch import nn
        layer = nn.Linear(512, 512, dtype=torch.float64)
        """,
    ]
    VALID = [
        """
        total_loss = loss.double()
        """,
        """
        import torch
        model = model.to(torch.float32)
        """,
    ]

    _FACTORIES = frozenset(
        f"torch.{n}"
        for n in ("zeros", "ones", "empty", "full", "rand", "randn", "tensor", "arange", "linspace", "eye", "as_tensor")
    )

    def visit_Call(self, node: cst.Call) -> None:
        if self.ctx.calls_gradcheck:
            return
        func = node.func
        if isinstance(func, cst.Attribute) and self.ctx.qualified_name(func) is None:
            self._check_method_cast(node, func)
            return
        qualified = self.ctx.call_name(node)
        if qualified is None:
            return
        dtype = get_arg(node, "dtype")
        if dtype is None or not is_float64_dtype(self.ctx, dtype.value):
            return
        fix = float32_fix(dtype.value)
        if qualified.startswith(("torch.nn.", "keras.layers.")) and last_part(qualified)[:1].isupper():
            framework = "tensorflow" if qualified.startswith("keras.") else "torch"
            self._report(node, f"{last_part(qualified)}(..., dtype=float64) builds a float64 layer", fix, framework)
        elif qualified in self._FACTORIES and self._in_model_method():
            self._report(node, f"{qualified}(..., dtype=float64) inside model code creates float64 activations", fix)

    def _check_method_cast(self, node: cst.Call, func: cst.Attribute) -> None:
        method = func.attr.value
        fix: Optional[Fix] = None
        if method == "double" and not node.args:
            cast = ".double()"
            fix = Fix(func.attr, replace_with(cst.Name("float")), safe=False, title=".float()")
        elif method == "to" and any(
            (a.keyword is None or a.keyword.value == "dtype") and is_float64_dtype(self.ctx, a.value) for a in node.args
        ):
            cast = ".to(float64)"
            dtype = next(
                a.value
                for a in node.args
                if (a.keyword is None or a.keyword.value == "dtype") and is_float64_dtype(self.ctx, a.value)
            )
            fix = float32_fix(dtype)
        elif (
            method == "type"
            and node.args
            and (
                is_float64_dtype(self.ctx, node.args[0].value)
                or self.ctx.qualified_name(node.args[0].value) in {"torch.DoubleTensor", "torch.cuda.DoubleTensor"}
                or literal_value(node.args[0].value) in {"torch.DoubleTensor", "torch.cuda.DoubleTensor"}
            )
        ):
            cast = ".type(float64)"
            fix = float32_fix(node.args[0].value)
        else:
            return
        kind = self._receiver_kind(func.value, 0)
        if kind is not None:
            self._report(node, f"{self.ctx.snippet(func.value, 40)}{cast} casts the {kind} to float64", fix)

    def _receiver_kind(self, node: cst.BaseExpression, depth: int) -> Optional[str]:
        """'model', 'batch' or None (unknown, or a scalar such as a loss)."""
        if depth > 4:
            return None
        if isinstance(node, cst.Call):
            if is_model_constructor(self.ctx.call_name(node), node.func, self.ctx.model_classes):
                return "model"
            func = node.func
            if isinstance(func, cst.Attribute) and func.attr.value in (
                "to",
                "cuda",
                "cpu",
                "train",
                "eval",
                "float",
                "requires_grad_",
            ):
                return self._receiver_kind(func.value, depth + 1)
            # A helper of this module that builds the model, one call deep.
            for value in returned_values(self.ctx, node):
                if isinstance(value, cst.Call) and self._receiver_kind(value, depth + 1) == "model":
                    return "model"
            return None
        if isinstance(node, cst.Subscript):
            return "batch" if self._receiver_kind(node.value, depth + 1) == "batch" else None
        if isinstance(node, (cst.Name, cst.Attribute)):
            value = self.ctx.value_of(node)
            if isinstance(value, LoopItem):
                return "batch" if _iterates_data(self, value.iterable) else None
            if isinstance(value, cst.BaseExpression):
                return self._receiver_kind(value, depth + 1)
            if value is None and isinstance(node, cst.Attribute) and not is_self_attr(node):
                return None
            name = node.value if isinstance(node, cst.Name) else node.attr.value
            return "model" if MODEL_NAME.search(name) else None
        return None

    def _in_model_method(self) -> bool:
        cls = self.ctx.enclosing_class()
        return cls is not None and self.ctx.model_classes.is_model_class(cls.name.value)

    def _report(self, node: cst.CSTNode, what: str, fix: Optional[Fix] = None, framework: Optional[str] = None) -> None:
        estimate = float64_estimate(self.ctx, framework)
        mixed = "a mixed_bfloat16 dtype policy" if framework == "tensorflow" else "torch.autocast for bf16/fp16"
        self.report(
            node,
            f"{what} ({cost_words(estimate, self.ctx.hardware)}); keep float32 and use {mixed}",
            estimate,
            fix=fix,
        )


def _iterates_data(rule: Rule, iterable: cst.BaseExpression) -> bool:
    """A loop over data (a loader, a dataset), not over `range(...)` or a literal."""
    if isinstance(iterable, (cst.List, cst.Tuple, cst.Set, cst.Dict, cst.SimpleString, cst.Integer)):
        return False
    if isinstance(iterable, cst.Call):
        name = rule.ctx.call_name(iterable)
        if name == "builtins.range":
            return False
        if name in ("builtins.enumerate", "builtins.zip") or name == "tqdm.tqdm" or name == "tqdm.auto.tqdm":
            return any(_iterates_data(rule, a.value) for a in iterable.args if a.keyword is None)
        func = iterable.func
        if isinstance(func, cst.Attribute) and func.attr.value in (
            "parameters",
            "named_parameters",
            "items",
            "keys",
            "values",
            "modules",
            "children",
        ):
            return False
    return True
