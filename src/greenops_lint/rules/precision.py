"""GO4xx: float64 where float32 or lower precision would do.

Framework defaults are float32 for a reason: float64 doubles every byte moved
and, on GPUs, runs on units with 1/2 (datacenter) to 1/64 (consumer and
inference parts) of the float32 throughput, and never on tensor cores.
"""

from __future__ import annotations

from typing import Optional

import libcst as cst

from greenops_lint.analysis.calls import TRUTHY_LITERALS, environ_assignment, get_arg, literal_value
from greenops_lint.analysis.classes import MODEL_NAME, is_model_constructor
from greenops_lint.analysis.dtypes import (
    DOUBLE_TENSOR_TYPES,
    float64_array_source,
    is_float64_dtype,
    literal_numel,
)
from greenops_lint.analysis.functions import returned_values
from greenops_lint.analysis.names import LoopItem
from greenops_lint.analysis.tree import is_self_attr
from greenops_lint.analysis.rewrite import float32_like, method_call, replace_with, string_like, with_keyword
from greenops_lint.finding import Fix
from greenops_lint.rule import Rule
from greenops_lint.savings import extra_bytes_estimate, float64_cost_words, float64_time_factor




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
        """
        import torch
        torch.set_default_dtype(torch.float64)
        """,
        """
        import tensorflow as tf
        tf.keras.backend.set_floatx("float64")
        """,
        """
        from jax import config
        config.update("jax_enable_x64", True)
        """,
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
        if name in self._JAX_UPDATE or name == "os.environ.setdefault":
            value = get_arg(node, None, 1).value
            new = cst.Name("False") if name in self._JAX_UPDATE else (
                string_like(value, "0") if isinstance(value, cst.SimpleString) else None
            )
        else:
            value = get_arg(node, None, 0).value
            new = float32_like(value)
        return Fix(value, replace_with(new), safe=False, title="use float32") if new is not None else None

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
    and runs every layer at the FP64 rate: 2x slower on V100/A100/H100, 32-64x
    on T4/A10/L4/RTX GPUs, and without tensor cores. `.double()` is often added
    to silence "expected scalar type Float but found Double", which comes from
    float64 NumPy input (GO403): fix the input instead.

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
    Time factor of the model's work, as GO401: 2x (memory-bound) up to the
    FP32:FP64 peak ratio of the selected hardware (compute-bound).
    """

    code = "GO402"
    name = "cast-to-float64"
    family = "precision"
    fixable = True
    fix_safety = "unsafe"
    tokens = ("double", "float64", "Double")
    INVALID = [
        """
        import torch.nn as nn
        model = nn.Sequential(nn.Linear(8, 8)).double()
        """,
        """
        import torch
        for x, y in loader:
            out = model(x.to(torch.float64))
        """,
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
        f"torch.{n}" for n in ("zeros", "ones", "empty", "full", "rand", "randn", "tensor", "arange", "linspace", "eye", "as_tensor")
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
        fix = self._dtype_fix(dtype.value)
        if qualified.startswith(("torch.nn.", "keras.layers.")) and qualified.rsplit(".", 1)[-1][:1].isupper():
            self._report(node, f"{qualified.rsplit('.', 1)[-1]}(..., dtype=float64) builds a float64 layer", fix)
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
            dtype = next(a.value for a in node.args if (a.keyword is None or a.keyword.value == "dtype") and is_float64_dtype(self.ctx, a.value))
            fix = self._dtype_fix(dtype)
        elif method == "type" and node.args and (
            is_float64_dtype(self.ctx, node.args[0].value)
            or self.ctx.qualified_name(node.args[0].value) in {"torch.DoubleTensor", "torch.cuda.DoubleTensor"}
            or literal_value(node.args[0].value) in {"torch.DoubleTensor", "torch.cuda.DoubleTensor"}
        ):
            cast = ".type(float64)"
            fix = self._dtype_fix(node.args[0].value)
        else:
            return
        kind = self._receiver_kind(func.value, 0)
        if kind is not None:
            self._report(node, f"{self.ctx.snippet(func.value, 40)}{cast} casts the {kind} to float64", fix)

    @staticmethod
    def _dtype_fix(dtype: cst.BaseExpression) -> Optional[Fix]:
        new = float32_like(dtype)
        return Fix(dtype, replace_with(new), safe=False, title="use float32") if new is not None else None

    def _receiver_kind(self, node: cst.BaseExpression, depth: int) -> Optional[str]:
        """'model', 'batch' or None (unknown, or a scalar such as a loss)."""
        if depth > 4:
            return None
        if isinstance(node, cst.Call):
            if is_model_constructor(self.ctx.call_name(node), node.func, self.ctx.model_classes):
                return "model"
            func = node.func
            if isinstance(func, cst.Attribute) and func.attr.value in ("to", "cuda", "cpu", "train", "eval", "float", "requires_grad_"):
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

    def _report(self, node: cst.CSTNode, what: str, fix: Optional[Fix] = None) -> None:
        hardware = self.ctx.hardware
        self.report(
            node,
            f"{what} ({float64_cost_words(hardware)}); keep float32 and use torch.autocast for bf16/fp16",
            float64_time_factor(hardware),
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
        if isinstance(func, cst.Attribute) and func.attr.value in ("parameters", "named_parameters", "items", "keys", "values", "modules", "children"):
            return False
    return True


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
        """
        import numpy as np, torch
        x = torch.from_numpy(np.random.rand(1000, 3))
        """,
        """
        import numpy as np
        import torch as T
        features = np.loadtxt("train.csv", delimiter=",")
        inputs = T.tensor(features)
        """,
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
                numel * 4, f"{numel} float64 elements take 8 bytes each instead of 4", hardware
            )
        else:
            estimate = float64_time_factor(hardware)
        short = name.replace("tensorflow.", "tf.")
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


RULES = [GlobalFloat64Default, CastToFloat64, NumpyFloat64IntoFramework]
