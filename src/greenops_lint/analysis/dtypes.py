"""Which expressions name float64, and which NumPy arrays are float64 by default."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

import libcst as cst

from greenops_lint.analysis.calls import NOT_LITERAL, get_arg, literal_value
from greenops_lint.analysis.names import LoopItem

if TYPE_CHECKING:  # pragma: no cover
    from greenops_lint.context import FileContext

FLOAT64_NAMES = frozenset(
    {
        "torch.float64",
        "torch.double",
        "numpy.float64",
        "numpy.double",
        "numpy.float_",
        "tensorflow.float64",
        "tensorflow.double",
        "jax.numpy.float64",
        "builtins.float",
    }
)
FLOAT64_STRINGS = frozenset({"float64", "double", "f8", "<f8", "torch.float64", "torch.double"})
DOUBLE_TENSOR_TYPES = frozenset({"torch.DoubleTensor", "torch.cuda.DoubleTensor"})

# Any dtype spelling at all: used to tell "a dtype was given" from "no dtype".
_DTYPE_PREFIXES = ("torch.", "numpy.", "tensorflow.", "jax.numpy.")

NUMPY_RANDOM_FLOAT = frozenset(
    f"numpy.random.{name}"
    for name in ("rand", "randn", "random", "random_sample", "ranf", "sample", "uniform", "normal", "standard_normal")
)
GENERATOR_FLOAT_METHODS = frozenset({"random", "standard_normal", "normal", "uniform"})
NUMPY_FLOAT_FACTORIES = frozenset(
    f"numpy.{name}" for name in ("zeros", "ones", "empty", "linspace", "eye", "identity", "loadtxt", "genfromtxt")
)
PANDAS_READERS = frozenset(
    f"pandas.{name}"
    for name in ("read_csv", "read_table", "read_parquet", "read_feather", "read_excel", "read_hdf", "read_json")
)


# Dtype names without their width (`float32` -> `float`); strings also take
# NumPy's one-letter kinds (`"f8"`, `"i4"`, `"u1"`).
_DTYPE_BASES = ("float", "int", "uint", "bool", "complex", "double", "half", "bfloat", "single")
_DTYPE_STRINGS = _DTYPE_BASES + ("f", "i", "u")


def is_float64_dtype(ctx: "FileContext", node: cst.BaseExpression) -> bool:
    if isinstance(node, cst.SimpleString):
        return literal_value(node) in FLOAT64_STRINGS
    return ctx.qualified_name(node) in FLOAT64_NAMES


def is_dtype_expr(ctx: "FileContext", node: cst.BaseExpression) -> bool:
    """Does this positional argument look like a dtype (of any width)?"""
    if isinstance(node, cst.SimpleString):
        value = literal_value(node)
        return isinstance(value, str) and value.lstrip("<>=").rstrip("0123456789") in _DTYPE_STRINGS
    qualified = ctx.qualified_name(node)
    if qualified is None:
        return False
    if qualified.startswith("builtins."):
        return qualified in ("builtins.float", "builtins.int", "builtins.bool", "builtins.complex")
    return qualified.startswith(_DTYPE_PREFIXES) and qualified.rsplit(".", 1)[-1].rstrip("_0123456789") in _DTYPE_BASES


def given_dtype(ctx: "FileContext", call: cst.Call) -> Optional[cst.BaseExpression]:
    """The dtype passed to a factory call, by keyword or as a positional dtype."""
    arg = get_arg(call, "dtype")
    if arg is not None:
        return arg.value
    for arg in call.args:
        if arg.keyword is None and not arg.star and is_dtype_expr(ctx, arg.value):
            return arg.value
    return None


def _has_float_literal(node: cst.BaseExpression) -> bool:
    if isinstance(node, cst.Float):
        return True
    if isinstance(node, cst.UnaryOperation):
        return _has_float_literal(node.expression)
    if isinstance(node, (cst.List, cst.Tuple)):
        return any(_has_float_literal(e.value) for e in node.elements)
    return False


def float64_array_source(ctx: "FileContext", node: cst.BaseExpression, depth: int = 0) -> Optional[cst.BaseExpression]:
    """The expression that makes `node` a float64 NumPy array, or None when
    that is not provable from the code."""
    if depth > 3:
        return None
    if isinstance(node, cst.Name):
        value = ctx.value_of(node)
        if isinstance(value, cst.BaseExpression):
            return float64_array_source(ctx, value, depth + 1)
        return None
    if isinstance(node, cst.Attribute) and node.attr.value == "values":
        return node if _is_float_frame(ctx, node.value, depth) else None
    if isinstance(node, cst.Subscript):
        # A slice of a float64 array is float64 too.
        return node if float64_array_source(ctx, node.value, depth + 1) is not None else None
    if isinstance(node, cst.BinaryOperation) and isinstance(node.operator, _ARITHMETIC):
        # NumPy promotes float64 op scalar (or op float32) to float64.
        for operand in (node.left, node.right):
            if float64_array_source(ctx, operand, depth + 1) is not None:
                return node
        return None
    if not isinstance(node, cst.Call):
        return None
    qualified = ctx.call_name(node)
    func = node.func
    if qualified is None and isinstance(func, cst.Name):
        # A helper of this module that returns the array, one call deep.
        from greenops_lint.analysis.functions import returned_values

        for value in returned_values(ctx, node):
            if isinstance(value, cst.Call) and float64_array_source(ctx, value, depth + 1) is not None:
                return node
        return None
    if isinstance(func, cst.Attribute) and qualified is None:
        method = func.attr.value
        if method == "astype":
            arg = get_arg(node, "dtype", 0)
            return node if arg is not None and is_float64_dtype(ctx, arg.value) else None
        if method == "to_numpy":
            dtype = get_arg(node, "dtype", 0)
            if dtype is not None:
                return node if is_float64_dtype(ctx, dtype.value) else None
            return node if _is_float_frame(ctx, func.value, depth) else None
        if method in GENERATOR_FLOAT_METHODS and _is_numpy_generator(ctx, func.value):
            return node if get_arg(node, "dtype") is None else None
        return None
    if qualified is None:
        return None
    dtype = given_dtype(ctx, node)
    if dtype is not None:
        return node if is_float64_dtype(ctx, dtype) else None
    if qualified in NUMPY_RANDOM_FLOAT or qualified in NUMPY_FLOAT_FACTORIES:
        return node
    if qualified == "numpy.full":
        fill = get_arg(node, "fill_value", 1)
        return node if fill is not None and isinstance(fill.value, cst.Float) else None
    if qualified == "numpy.arange":
        return node if any(_has_float_literal(a.value) for a in node.args if a.keyword is None) else None
    if qualified in ("numpy.array", "numpy.asarray"):
        data = get_arg(node, "object", 0)
        return node if data is not None and _has_float_literal(data.value) else None
    return None


def _is_numpy_generator(ctx: "FileContext", node: cst.BaseExpression) -> bool:
    if isinstance(node, cst.Call):
        return ctx.call_name(node) == "numpy.random.default_rng"
    if isinstance(node, cst.Name):
        value = ctx.value_of(node)
        return isinstance(value, cst.Call) and ctx.call_name(value) == "numpy.random.default_rng"
    return False


_ARITHMETIC = (cst.Add, cst.Subtract, cst.Multiply, cst.Divide, cst.Power)

# Frame methods that keep the frame's dtypes.
_FRAME_KEEPING = frozenset(
    {
        "drop",
        "dropna",
        "fillna",
        "copy",
        "head",
        "tail",
        "sample",
        "sort_values",
        "sort_index",
        "ffill",
        "bfill",
        "clip",
        "abs",
        "interpolate",
    }
)
_FLOAT_SELECTORS = frozenset({"float", "float64", "floating", "f8"})


def is_explicit_float64(ctx: "FileContext", source: cst.BaseExpression) -> bool:
    """The author spelled float64 out (`astype("float64")`, `dtype=np.float64`),
    as opposed to NumPy's default or a casual `float`."""
    if not isinstance(source, cst.Call):
        return False
    func = source.func
    if isinstance(func, cst.Attribute) and ctx.call_name(source) is None and func.attr.value in ("astype", "to_numpy"):
        arg = get_arg(source, "dtype", 0)
        value = arg.value if arg is not None else None
    else:
        value = given_dtype(ctx, source) if ctx.call_name(source) is not None else None
    return value is not None and is_float64_dtype(ctx, value) and ctx.qualified_name(value) != "builtins.float"


def _frame_of(ctx: "FileContext", node: cst.BaseExpression) -> Optional[cst.BaseExpression]:
    """What a sub-frame or a name stands for: `df[...]`, `df.loc[...]` -> `df`;
    a name -> its bound value (None when unknown or a loop item)."""
    if isinstance(node, cst.Subscript):
        value = node.value
        if isinstance(value, cst.Attribute) and value.attr.value in ("loc", "iloc"):
            value = value.value
        return value
    value = ctx.value_of(node)
    return value if isinstance(value, cst.BaseExpression) and not isinstance(value, LoopItem) else None


def _is_float_frame(ctx: "FileContext", node: cst.BaseExpression, depth: int) -> bool:
    """A pandas frame known to hold floats: read with a float64 `dtype=`,
    `astype(float)`, `select_dtypes("float")`, a true division or arithmetic
    with a float literal; or a sub-frame or copy of one. A frame read without a
    dtype is not: its columns may well be integer (ids, labels, edge lists)."""
    if depth > 10:
        return False
    if isinstance(node, (cst.Subscript, cst.Name)):
        inner = _frame_of(ctx, node)
        return inner is not None and _is_float_frame(ctx, inner, depth + 1)
    if isinstance(node, cst.BinaryOperation) and isinstance(node.operator, _ARITHMETIC):
        operands = (node.left, node.right)
        if not any(_is_frame(ctx, o, depth + 1) for o in operands):
            return False
        return isinstance(node.operator, cst.Divide) or any(
            isinstance(o, cst.Float) or _is_float_frame(ctx, o, depth + 1) for o in operands
        )
    if not isinstance(node, cst.Call):
        return False
    if ctx.call_name(node) in PANDAS_READERS:
        dtype = get_arg(node, "dtype")
        return dtype is not None and is_float64_dtype(ctx, dtype.value)
    func = node.func
    if isinstance(func, cst.Name) and ctx.call_name(node) is None:
        # A helper of this module that returns the frame, one call deep.
        from greenops_lint.analysis.functions import returned_values

        return any(_is_float_frame(ctx, value, depth + 1) for value in returned_values(ctx, node))
    if not isinstance(func, cst.Attribute):
        return False
    method = func.attr.value
    if method == "astype":
        arg = get_arg(node, "dtype", 0)
        return arg is not None and is_float64_dtype(ctx, arg.value)
    if method == "select_dtypes":
        include = get_arg(node, "include", 0)
        if include is None:
            return False
        values = include.value.elements if isinstance(include.value, (cst.List, cst.Tuple)) else [include.value]
        return bool(values) and all(
            literal_value(getattr(v, "value", v)) in _FLOAT_SELECTORS or is_float64_dtype(ctx, getattr(v, "value", v))
            for v in values
        )
    if method in _FRAME_KEEPING:
        return _is_float_frame(ctx, func.value, depth + 1)
    return False


def _is_frame(ctx: "FileContext", node: cst.BaseExpression, depth: int) -> bool:
    """Any pandas frame or column of one (whatever its dtype), for arithmetic."""
    if depth > 10:
        return False
    if isinstance(node, (cst.Subscript, cst.Name)):
        inner = _frame_of(ctx, node)
        return inner is not None and _is_frame(ctx, inner, depth + 1)
    if isinstance(node, cst.BinaryOperation):
        return _is_frame(ctx, node.left, depth + 1) or _is_frame(ctx, node.right, depth + 1)
    if isinstance(node, cst.Call):
        if ctx.call_name(node) in PANDAS_READERS:
            return True
        func = node.func
        return (
            isinstance(func, cst.Attribute)
            and func.attr.value in _FRAME_KEEPING | {"astype", "select_dtypes"}
            and _is_frame(ctx, func.value, depth + 1)
        )
    return False


_ALL_POSITIONAL_SIZES = frozenset({"numpy.random.rand", "numpy.random.randn"})
_FIRST_POSITIONAL_SIZE = frozenset(
    {
        "numpy.zeros",
        "numpy.ones",
        "numpy.empty",
        "numpy.random.random",
        "numpy.random.random_sample",
        "numpy.random.ranf",
    }
)


def literal_numel(ctx: "FileContext", call: cst.Call) -> Optional[int]:
    """Element count from literal sizes: `rand(1000, 3)`, `zeros((1000, 3))`, `normal(size=(8, 8))`,
    `linspace(0, 1, 100)`."""
    qualified = ctx.call_name(call)
    if qualified == "numpy.linspace":
        num = get_arg(call, "num", 2)
        value = 50 if num is None else literal_value(num.value)  # NumPy's default `num`
        return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None
    keyword = get_arg(call, "size") or get_arg(call, "shape")
    if keyword is not None:
        sizes_node = keyword.value
    elif qualified in _ALL_POSITIONAL_SIZES:
        sizes_node = cst.Tuple([cst.Element(a.value) for a in call.args if a.keyword is None])
    elif qualified in _FIRST_POSITIONAL_SIZE and call.args and call.args[0].keyword is None:
        sizes_node = call.args[0].value
    else:
        return None
    elements = [e.value for e in sizes_node.elements] if isinstance(sizes_node, (cst.Tuple, cst.List)) else [sizes_node]
    numel = 1
    for element in elements:
        value = literal_value(element)
        if value is NOT_LITERAL or not isinstance(value, int) or isinstance(value, bool):
            return None
        numel *= value
    return numel if elements else None
