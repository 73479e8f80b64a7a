"""GO401: float64 made the process-wide default dtype."""

from __future__ import annotations

from typing import Optional

import libcst as cst

from greenops_lint.analysis.calls import TRUTHY_LITERALS, environ_assignment, get_arg, literal_value
from greenops_lint.analysis.dtypes import DOUBLE_TENSOR_TYPES, is_float64_dtype
from greenops_lint.analysis.rewrite import replace_with, string_like
from greenops_lint.finding import Fix
from greenops_lint.rule import Invalid, Rule
from greenops_lint.rules.precision._shared import float32_fix
from greenops_lint.savings import float64_cost_words, float64_time_factor

# The page's `## Estimate` is `savings.float64_time_factor`: FLOAT64_BYTES_RATIO (2x)
# for memory-bound work up to the hardware's FP32:FP64 peak ratio (data/hardware.toml).


class GlobalFloat64Default(Rule):
    """Makes float64 the process-wide default dtype.

    ## What it does
    Flags calls that switch a framework's default floating-point type to
    float64 for the whole process: `torch.set_default_dtype(torch.float64)`,
    `torch.set_default_tensor_type(torch.DoubleTensor)`,
    `keras.backend.set_floatx("float64")` (also `tf.keras.backend` and
    `keras.config`), a float64 Keras dtype policy,
    `jax.config.update("jax_enable_x64", True)` and `JAX_ENABLE_X64=1` set in code.

    ## Why is this bad
    Every tensor and layer created afterwards is float64: twice the memory and
    memory traffic, and on GPUs the math runs at the FP64 rate, which is 1/2 of
    FP32 on V100/A100/H100/H200 and 1/32 to 1/64 on T4, A10, L4 and RTX cards.
    float64 never uses tensor cores (TF32/BF16), which are another 8-16x on
    A100/H100. JAX keeps x64 off by default for exactly this reason.

    Not flagged: `set_floatx("float32")`, `jax_enable_x64` set to False, and
    modules that call `gradcheck`/`gradgradcheck` (numerical gradient checks
    need float64). For scientific code that needs float64 everywhere, list its
    paths in `per-file-ignores` (for example `"physics/**" = ["GO4"]`).

    ## Fix
    Remove the call and keep the float32 default; where one computation needs
    float64 (a reduction, a solver), cast just that tensor locally.
    Autofix (unsafe, `--unsafe-fixes`: changes numerics): the call is kept and
    switched to float32 (`torch.float32`, `torch.FloatTensor`, `"float32"`,
    `jax_enable_x64` False, `JAX_ENABLE_X64="0"`).

    ## Estimate
    Time factor of the float64 work: 2x for memory-bound operations, up to the
    FP32:FP64 peak ratio of the selected hardware for compute-bound ones
    (datasheet figures in `data/hardware.toml`).
    """

    code = "GO401"
    name = "global-float64-default"
    family = "precision"
    fixable = True
    fix_safety = "unsafe"
    tokens = ("set_default_dtype", "set_default_tensor_type", "set_floatx", "x64", "X64", "policy")
    INVALID = [
        Invalid(
            """
            import torch
            torch.set_default_dtype(torch.float64)
            """,
            line=2,
            message="torch.set_default_dtype(torch.float64) makes float64 the default for the whole process",
            fixed="""
            import torch
            torch.set_default_dtype(torch.float32)
            """,
        ),
        """
        import tensorflow as tf
        tf.keras.backend.set_floatx("float64")
        """,
        Invalid(
            """
            from jax import config
            config.update("jax_enable_x64", True)
            """,
            line=2,
            message='config.update("jax_enable_x64", True) makes float64 the default',
            fixed="""
            from jax import config
            config.update("jax_enable_x64", False)
            """,
        ),
    ]
    VALID = [
        """
        import torch
        torch.set_default_dtype(torch.float32)
        """,
        """
        import jax
        jax.config.update("jax_enable_x64", False)
        """,
    ]

    _KERAS_FLOATX = frozenset({"keras.backend.set_floatx", "keras.config.set_floatx"})
    _KERAS_POLICY = frozenset(
        {
            "keras.mixed_precision.set_global_policy",
            "keras.mixed_precision.set_dtype_policy",
            "keras.mixed_precision.experimental.set_policy",
            "keras.config.set_dtype_policy",
        }
    )
    _JAX_UPDATE = frozenset({"jax.config.update", "jax.config.config.update"})

    def visit_Call(self, node: cst.Call) -> None:
        name = self.ctx.call_name(node)
        if name is None or self.ctx.calls_gradcheck:
            return
        first = get_arg(node, None, 0)
        if name == "torch.set_default_dtype":
            hit = first is not None and is_float64_dtype(self.ctx, first.value)
        elif name == "torch.set_default_tensor_type":
            hit = first is not None and (
                self.ctx.qualified_name(first.value) in DOUBLE_TENSOR_TYPES
                or literal_value(first.value) in DOUBLE_TENSOR_TYPES
            )
        elif name in self._KERAS_FLOATX or name in self._KERAS_POLICY:
            hit = first is not None and literal_value(first.value) == "float64"
        elif name in self._JAX_UPDATE:
            value = get_arg(node, None, 1)
            hit = (
                first is not None
                and literal_value(first.value) == "jax_enable_x64"
                and value is not None
                and literal_value(value.value) in TRUTHY_LITERALS
            )
        elif name == "os.environ.setdefault":
            value = get_arg(node, None, 1)
            hit = first is not None and literal_value(first.value) == "JAX_ENABLE_X64" and value is not None and literal_value(value.value) in TRUTHY_LITERALS
        else:
            return
        if hit:
            self._report(node, self.ctx.snippet(node, 60), self._fix(name, node))

    def _fix(self, name: str, node: cst.Call) -> Optional[Fix]:
        """Switch the call to float32 (or x64 off), keeping its spelling."""
        if name in self._JAX_UPDATE:
            return float32_fix(get_arg(node, None, 1).value, cst.Name("False"))
        if name == "os.environ.setdefault":
            value = get_arg(node, None, 1).value
            return float32_fix(value, string_like(value, "0")) if isinstance(value, cst.SimpleString) else None
        return float32_fix(get_arg(node, None, 0).value)

    def visit_Assign(self, node: cst.Assign) -> None:
        assignment = environ_assignment(self.ctx, node)  # os.environ["JAX_ENABLE_X64"] = "1"
        if assignment is None or self.ctx.calls_gradcheck:
            return
        name, value = assignment
        if name == "JAX_ENABLE_X64" and literal_value(value) in TRUTHY_LITERALS:
            fix = None
            if isinstance(value, cst.SimpleString):
                fix = Fix(value, replace_with(string_like(value, "0")), safe=False, title="JAX_ENABLE_X64=0")
            self._report(node, "JAX_ENABLE_X64=1", fix)

    def _report(self, node: cst.CSTNode, what: str, fix: Optional[Fix] = None) -> None:
        hardware = self.ctx.hardware
        self.report(
            node,
            f"{what} makes float64 the default for the whole process ({float64_cost_words(hardware)}); "
            "keep the float32 default and cast locally where float64 is needed",
            float64_time_factor(hardware),
            fix=fix,
        )
