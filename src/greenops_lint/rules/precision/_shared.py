"""What only the GO4xx rules share: the unsafe fix that puts float32 where float64 was, and the
file's float64 workload (literal layer sizes, batch, framework, TF32) for the estimate."""

from __future__ import annotations

import ast
import re
from typing import Any, Iterator, Optional

import libcst as cst

from greenops_lint.analysis.ast_index import AstIndex, chain, torch_layers
from greenops_lint.analysis.dtypes import is_float64_dtype
from greenops_lint.analysis.rewrite import float32_like, replace_with
from greenops_lint.analysis.tree import descendants, last_word
from greenops_lint.finding import Fix, SavingsEstimate
from greenops_lint.savings import HardwareProfile, Workload, float64_time_factor
from greenops_lint.walker import children as walker_children


def float32_fix(value: cst.BaseExpression, new: Optional[cst.BaseExpression] = None) -> Optional[Fix]:
    """Replace `value` (a float64 dtype, or a switch's argument) with `new`, by
    default its float32 spelling; None when there is nothing to write."""
    if new is None:
        new = float32_like(value)
    return Fix(value, replace_with(new), safe=False, title="use float32") if new is not None else None


# -- what the file says about the float64 work: layers, batch, framework, TF32 ------------


_KERAS_PREFIXES = ("keras.layers.", "tensorflow.keras.layers.", "tf_keras.layers.")


def _keras_layers(index: AstIndex) -> tuple[list[tuple], list[tuple], bool, bool, Optional[tuple]]:
    """Keras Dense/Conv2D sizes chained in source order: a layer's input is
    the previous layer's units (or a literal `Input(shape=...)`/`input_shape=`)."""
    linears, convs, dense_seen, conv_seen = [], [], False, False
    width: Optional[int] = None
    channels: Optional[int] = None
    image: Optional[tuple] = None
    for call in index.calls:
        name = index.call_name(call)
        tail = name.rsplit(".", 1)[-1]
        if tail in ("Input", "InputLayer") and name.startswith(("keras.", "tensorflow.keras.", "tf_keras.")):
            shape = index.arg(call, 0, "shape")
            if isinstance(shape, (tuple, list)) and shape and all(isinstance(v, int) for v in shape):
                if len(shape) == 1:
                    width = shape[0]
                elif len(shape) == 3:
                    image, channels = (shape[0], shape[1]), shape[2]
            continue
        if not name.startswith(_KERAS_PREFIXES):
            continue
        declared = None
        for keyword in call.keywords:
            if keyword.arg in ("input_shape", "input_dim"):
                declared = index.literal(keyword.value)
        if tail == "Dense":
            dense_seen = True
            units = index.int_arg(call, 0, "units")
            if isinstance(declared, int):
                width = declared
            elif isinstance(declared, (tuple, list)) and len(declared) == 1 and isinstance(declared[0], int):
                width = declared[0]
            if units and width:
                linears.append((width, units))
            width = units
        elif tail == "Conv2D":
            conv_seen = True
            filters, kernel = index.int_arg(call, 0, "filters"), index.int_arg(call, 1, "kernel_size") or 3
            if isinstance(declared, (tuple, list)) and len(declared) == 3 and all(isinstance(v, int) for v in declared):
                image, channels = (declared[0], declared[1]), declared[2]
            if filters and channels:
                convs.append((channels, filters, kernel))
            channels = filters
    return linears, convs, dense_seen, conv_seen, image


def _torch_image(index: AstIndex, channels: int) -> Optional[tuple[tuple, Optional[int]]]:
    """(H, W) and batch of a literal 4-D tensor whose channels match the first convolution."""
    factories = {f"torch.{n}" for n in ("randn", "rand", "zeros", "ones", "empty")}
    for call in index.calls:
        if index.call_name(call) not in factories:
            continue
        values = [index.literal(a) for a in call.args]
        if len(values) == 1 and isinstance(values[0], (tuple, list)):
            values = list(values[0])
        if len(values) == 4 and all(isinstance(v, int) and v > 0 for v in values) and values[1] == channels:
            return (values[2], values[3]), values[0]
    return None


def _tf32_matmul(index: AstIndex) -> bool:
    """The file switches TF32 on for float32 matmuls."""
    for call in index.calls:
        if index.call_name(call) == "torch.set_float32_matmul_precision" and index.arg(call, 0, "precision") in (
            "high",
            "medium",
        ):
            return True
    for assign in index.assigns:
        for target in assign.targets:
            if (
                index.qualified(target) == "torch.backends.cuda.matmul.allow_tf32"
                and index.literal(assign.value) is True
            ):
                return True
    return False


def file_workload(ctx: Any, framework: Optional[str] = None) -> Workload:
    """The float64 work of this file as far as its code says: literal layer
    shapes (`nn.Linear(in, out)`, `nn.Conv2d(in, out, k)`, Keras `Dense`/`Conv2D`
    chained from a literal input), a literal batch size, the framework (the
    caller's when it knows: `keras...set_floatx` is TensorFlow's) and whether
    TF32 is switched on for matmuls."""
    cache = ctx.__dict__.setdefault("_precision_workloads", {})
    if framework in cache:
        return cache[framework]
    index = ctx.analysis("literal_sizes")
    modules = index.modules()
    linears, linear_seen = torch_layers(index, "Linear")
    convs, conv_seen = torch_layers(index, "Conv2d")
    image: Optional[tuple] = None
    batch = index.batch_size()
    if framework is None:
        if linear_seen or conv_seen or "torch" in modules:
            framework = "torch"
        elif modules & {"tensorflow", "keras", "tf_keras"}:
            framework = "tensorflow"
        elif modules & {"jax", "flax"}:
            framework = "jax"
        else:
            framework = "torch"
    if not (linear_seen or conv_seen) and framework == "tensorflow":
        linears, convs, linear_seen, conv_seen, image = _keras_layers(index)
    linears, convs = chain(linears), chain(convs)
    if convs and image is None:
        found = _torch_image(index, convs[0][0])
        if found is not None:
            image, batch = found[0], batch or found[1]
    if conv_seen and not convs:
        # Convolutions whose sizes are not literal: a literal MLP head alone
        # would understate the work, so the range spans the cases.
        linears = []
    kind = "conv" if conv_seen else "mlp" if linear_seen else "unknown"
    workload = Workload(
        kind,
        linears=tuple(linears),
        convs=tuple(convs),
        image=image or (32, 32),
        batch=batch,
        framework=framework,
        tf32_matmul=_tf32_matmul(index),
    )
    cache[framework] = workload
    return workload


_FLOAT64_SPELLINGS = frozenset({"torch.float64", "torch.double", "torch.DoubleTensor", "torch.cuda.DoubleTensor"})


def float64_model_in_file(ctx: Any) -> bool:
    """The file runs its model in float64: a float64 default (GO401) or a
    `.double()` / `.to(torch.float64)` cast (GO402)."""
    cache = ctx.__dict__.setdefault("_precision_workloads", {})
    if "float64_model" not in cache:
        index = ctx.analysis("literal_sizes")
        found = False
        for call in index.calls:
            name = index.call_name(call)
            method = call.func.attr if isinstance(call.func, ast.Attribute) else ""
            args = [index.qualified(a) or index.literal(a) for a in call.args]
            if method == "double" and not call.args:
                found = True
            elif name in ("torch.set_default_dtype", "torch.set_default_tensor_type") or method in ("to", "type"):
                found = any(
                    a in _FLOAT64_SPELLINGS or a in ("torch.DoubleTensor", "torch.cuda.DoubleTensor") for a in args
                )
            elif name.endswith("set_floatx"):
                found = args[:1] == ["float64"]
            elif name.endswith("config.update"):
                found = (
                    args[:1] == ["jax_enable_x64"] and index.literal(call.args[1]) is True
                    if len(call.args) > 1
                    else False
                )
            if found:
                break
        cache["float64_model"] = found
    return cache["float64_model"]


def float64_estimate(ctx: Any, framework: Optional[str] = None) -> SavingsEstimate:
    """The float64 time factor of this file's work on the selected hardware."""
    return float64_time_factor(ctx.hardware, file_workload(ctx, framework))


def cost_words(estimate: SavingsEstimate, hardware: HardwareProfile) -> str:
    """The time factor in a few words, from the estimate itself, so that a
    message never claims more than the estimate it carries."""
    low, high = estimate.low, estimate.high
    where = "depending on the GPU and the work" if hardware.is_generic else f"on {hardware.label}"
    if high <= 1.05:
        return f"2x memory; about the same step time as float32 {where}"
    span = f"{low:g}" if low == high else f"{low:g}-{high:g}"
    return f"2x memory; {span}x slower {where}"


# -- GO403: where a tensor goes (a model, a data set, a training loop, a plot), by name ---------


def trains(loop: cst.CSTNode) -> bool:
    """A loop whose body calls `.backward()` or an optimizer's `.step()`."""
    for node in children(loop.body):
        if isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute):
            method = node.func.attr.value
            if method == "backward" or (
                method in ("step", "apply_gradients")
                and last_word(node.func.value).lower().startswith(("opt", "self.opt"))
            ):
                return True
    return False


TRANSPARENT_METHODS = frozenset(
    {
        "to",
        "cuda",
        "cpu",
        "requires_grad_",
        "reshape",
        "view",
        "unsqueeze",
        "squeeze",
        "contiguous",
        "pin_memory",
        "clone",
        "detach",
        "permute",
        "transpose",
        "flatten",
    }
)
DATA_SINKS = frozenset(
    {
        "torch.utils.data.TensorDataset",
        "torch.utils.data.DataLoader",
        "torch.utils.data.dataset.TensorDataset",
        "tensorflow.data.Dataset.from_tensor_slices",
        "tensorflow.data.Dataset.from_tensors",
    }
)
FIT_METHODS = frozenset({"fit", "partial_fit", "train_on_batch", "fit_generator", "forward"})
PLOT_PREFIXES = ("matplotlib.", "seaborn.", "plotly.", "sklearn.metrics.", "torchmetrics.", "scipy.stats.")
PLOT_METHODS = frozenset(
    {"plot", "scatter", "imshow", "hist", "bar", "savefig", "add_scalar", "add_histogram", "add_image", "fill_between"}
)
PLOT_WORDS = re.compile(r"plot|metric|score|demo|visuali[sz]|figure|accuracy", re.IGNORECASE)
SHAPE_ATTRIBUTES = frozenset({"shape", "size", "dtype", "device", "ndim", "nbytes"})


def children(node: cst.CSTNode) -> Iterator[cst.CSTNode]:
    """Every meaningful node below `node` (the walker's fast children)."""
    return descendants(node, walker_children)


def target_keys(target: cst.BaseExpression) -> list[str]:
    """`x` -> ["x"], `self.x` -> ["self.x"], `store[i]` -> its base, tuples element-wise."""
    if isinstance(target, cst.Name):
        return [target.value]
    if isinstance(target, cst.Attribute) and isinstance(target.value, cst.Name) and target.value.value == "self":
        return [f"self.{target.attr.value}"]
    if isinstance(target, cst.Subscript):
        return target_keys(target.value)
    if isinstance(target, (cst.Tuple, cst.List)):
        return [k for e in target.elements for k in target_keys(e.value)]
    return []


# -- GO403: casts along a tensor's chain -------------------------------------------------
_NARROWING = frozenset({"float", "half", "bfloat16"})


def narrows_dtype(ctx, method: str, call: cst.Call) -> bool:
    """`.float()`, `.half()`, `.to(torch.float32)`, `.type(torch.FloatTensor)`."""
    if method in _NARROWING:
        return True
    if method in ("to", "type", "astype"):
        return any(
            (a.keyword is None or a.keyword.value == "dtype")
            and not is_float64_dtype(ctx, a.value)
            and (ctx.qualified_name(a.value) or "").startswith(
                (
                    "torch.float",
                    "torch.half",
                    "torch.bfloat",
                    "torch.FloatTensor",
                    "torch.cuda.FloatTensor",
                    "tensorflow.float",
                )
            )
            for a in call.args
        )
    return False


def widens_dtype(ctx, method: str, call: cst.Call) -> bool:
    """`.double()` or `.to(torch.float64)`: the author asks for float64 in so many words."""
    if method == "double" and not call.args:
        return True
    return method in ("to", "type") and any(
        (a.keyword is None or a.keyword.value == "dtype") and is_float64_dtype(ctx, a.value) for a in call.args
    )
