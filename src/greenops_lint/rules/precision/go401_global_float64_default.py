"""GO401: float64 made the process-wide default dtype."""

from __future__ import annotations

from typing import Optional

import libcst as cst

from greenops_lint.analysis.calls import TRUTHY_LITERALS, environ_assignment, get_arg, literal_value
from greenops_lint.analysis.dtypes import DOUBLE_TENSOR_TYPES, is_float64_dtype
from greenops_lint.analysis.rewrite import replace_with, string_like
from greenops_lint.finding import Fix
from greenops_lint.rule import Invalid, Rule
from greenops_lint.rules.precision._shared import cost_words, float32_fix, float64_estimate
from greenops_lint.savings import SOURCE_DATASHEET

# The page's `## Estimate` is `savings.float64_time_factor` of the file's workload
# (`_shared.file_workload`: literal layer sizes, batch, framework, TF32 switch).


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
    memory traffic, and the math runs at the FP64 rate. How much slower that
    is depends on the GPU and on the work: on A100/H100/H200 float64 matmuls
    run on FP64 tensor cores at about the FP32 rate (but never as TF32/BF16),
    float64 convolutions compare with the TF32 convolutions PyTorch and
    TensorFlow use by default (8-16x on A100), and T4, A10, L4 and RTX cards
    run FP64 at 1/32 to 1/64 of FP32. A tiny model (an RL policy, a 4-wide
    MLP) is bound by per-op overhead and costs about the same in either dtype;
    it still takes twice the memory. JAX keeps x64 off by default for exactly
    this reason.

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
    Time factor of a training step in float64 vs float32 on the selected
    hardware (`--hardware`), sized from what the file says: literal layer
    shapes (`nn.Linear(in, out)`, `nn.Conv2d(in, out, k)`, Keras `Dense` and
    `Conv2D` chained from a literal `Input(shape=...)`), a literal batch size
    (`batch_size=64`, an argparse default, a `BATCH_SIZE` constant), the
    framework (PyTorch matmuls in full FP32 unless the file switches TF32 on
    with `torch.backends.cuda.matmul.allow_tf32 = True` or
    `torch.set_float32_matmul_precision("high")`; TensorFlow and JAX in TF32
    by default) and the datasheet rates in `data/hardware.toml`. With literal
    shapes a per-kernel roofline gives the range (on `a100-80gb`: ~1x for a
    4-wide MLP, 1.3-2x for an 8192-wide one, 6.5-13x for a ResNet-like conv
    net); without them the range spans the cases (overhead-bound ~1x,
    memory-bound 2x, matmuls, convolutions) and the estimate names each. The
    message quotes the same range. Always material: float64 doubles the
    model's memory whatever the time factor.
    """

    code = "GO401"
    name = "global-float64-default"
    family = "precision"
    analyses = ("literal_sizes",)
    estimate_sources = {
        SOURCE_DATASHEET: "the selected `--hardware` profile: its datasheet rates in `data/hardware.toml`",
    }
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
            hit = (
                first is not None
                and literal_value(first.value) == "JAX_ENABLE_X64"
                and value is not None
                and literal_value(value.value) in TRUTHY_LITERALS
            )
        else:
            return
        if hit:
            framework = "torch" if name.startswith("torch.") else "tensorflow" if "keras" in name else "jax"
            self._report(node, self.ctx.snippet(node, 60), self._fix(name, node), framework)

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
            self._report(node, "JAX_ENABLE_X64=1", fix, "jax")

    def _report(self, node: cst.CSTNode, what: str, fix: Optional[Fix], framework: str) -> None:
        estimate = float64_estimate(self.ctx, framework)
        self.report(
            node,
            f"{what} makes float64 the default for the whole process ({cost_words(estimate, self.ctx.hardware)}); "
            "keep the float32 default and cast locally where float64 is needed",
            estimate,
            fix=fix,
        )
