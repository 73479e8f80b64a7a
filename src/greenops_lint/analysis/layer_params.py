"""Parameter counts of framework layers from the literal sizes in their
constructor calls (`nn.Linear(1024, 512)` -> 524,800), for estimates."""

from __future__ import annotations

import re
from typing import Optional

import libcst as cst

from greenops_lint.analysis.calls import get_arg, has_star_kwargs, literal_value


def int_value(node: Optional[cst.BaseExpression]) -> Optional[int]:
    """An int from a literal or simple arithmetic on literals (`4 * 1024`)."""
    if node is None:
        return None
    if isinstance(node, cst.BinaryOperation):
        left, right = int_value(node.left), int_value(node.right)
        if left is None or right is None:
            return None
        op = node.operator
        if isinstance(op, cst.Multiply):
            return left * right
        if isinstance(op, cst.Add):
            return left + right
        if isinstance(op, cst.Subtract):
            return left - right
        if isinstance(op, cst.FloorDivide) and right:
            return left // right
        if isinstance(op, cst.Power) and 0 <= right < 64:
            return left**right
        return None
    value = literal_value(node)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return None


def _sizes(node: Optional[cst.BaseExpression], dims: int) -> Optional[list[int]]:
    if node is None:
        return None
    if isinstance(node, (cst.Tuple, cst.List)):
        values = [int_value(e.value) for e in node.elements]
        return None if any(v is None for v in values) else values  # type: ignore[return-value]
    value = int_value(node)
    return None if value is None else [value] * dims


def _flag(call: cst.Call, keyword: str, position: Optional[int], default: bool) -> Optional[bool]:
    arg = get_arg(call, keyword, position)
    if arg is None:
        return default
    value = literal_value(arg.value)
    return value if isinstance(value, bool) else None


def _arg_int(call: cst.Call, keyword: str, position: Optional[int], default: Optional[int] = None) -> Optional[int]:
    arg = get_arg(call, keyword, position)
    if arg is None:
        return default
    return int_value(arg.value)


_CONV = re.compile(r"^(Lazy)?Conv(Transpose)?([123])d$")
_BATCHNORM = re.compile(r"^(Sync)?BatchNorm([123]d)?$")
_RNN_GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}


def torch_param_count(call: cst.Call, cls: str) -> Optional[int]:
    """Parameters of a `torch.nn` layer built with literal sizes, else None."""
    if has_star_kwargs(call) or any(a.star for a in call.args):
        return None
    if cls == "Linear":
        n_in, n_out = _arg_int(call, "in_features", 0), _arg_int(call, "out_features", 1)
        bias = _flag(call, "bias", 2, True)
        if n_in is None or n_out is None or bias is None:
            return None
        return n_in * n_out + (n_out if bias else 0)
    match = _CONV.match(cls)
    if match and not match.group(1):
        dims = int(match.group(3))
        n_in, n_out = _arg_int(call, "in_channels", 0), _arg_int(call, "out_channels", 1)
        kernel_arg = get_arg(call, "kernel_size", 2)
        kernel = _sizes(kernel_arg.value, dims) if kernel_arg is not None else None
        groups = _arg_int(call, "groups", 6, 1)
        bias = _flag(call, "bias", 7, True)
        if None in (n_in, n_out, groups, bias) or kernel is None or not groups:
            return None
        weights = n_in * n_out // groups  # type: ignore[operator]
        for k in kernel:
            weights *= k
        return weights + (n_out if bias else 0)  # type: ignore[operator]
    if cls == "Embedding":
        num, dim = _arg_int(call, "num_embeddings", 0), _arg_int(call, "embedding_dim", 1)
        return None if num is None or dim is None else num * dim
    if cls in ("LayerNorm", "RMSNorm", "GroupNorm") or _BATCHNORM.match(cls):
        # Without affine parameters a norm layer holds none, whatever its size.
        affine_keyword, position = ("elementwise_affine", 2) if cls in ("LayerNorm", "RMSNorm") else ("affine", 3)
        if _flag(call, affine_keyword, position, True) is False:
            return 0
    if cls == "LayerNorm":
        shape_arg = get_arg(call, "normalized_shape", 0)
        shape = _sizes(shape_arg.value, 1) if shape_arg is not None else None
        affine = _flag(call, "elementwise_affine", 2, True)
        bias = _flag(call, "bias", 3, True)
        if shape is None or affine is None or bias is None:
            return None
        numel = 1
        for s in shape:
            numel *= s
        return (numel + (numel if bias else 0)) if affine else 0
    if _BATCHNORM.match(cls):
        n = _arg_int(call, "num_features", 0)
        affine = _flag(call, "affine", 3, True)
        return None if n is None or affine is None else (2 * n if affine else 0)
    if cls == "GroupNorm":
        channels = _arg_int(call, "num_channels", 1)
        affine = _flag(call, "affine", 3, True)
        return None if channels is None or affine is None else (2 * channels if affine else 0)
    if cls in _RNN_GATES:
        gates = _RNN_GATES[cls]
        n_in, hidden = _arg_int(call, "input_size", 0), _arg_int(call, "hidden_size", 1)
        layers = _arg_int(call, "num_layers", 2, 1)
        bias = _flag(call, "bias", 3, True)
        bidirectional = _flag(call, "bidirectional", 6, False)
        if None in (n_in, hidden, layers, bias, bidirectional) or get_arg(call, "proj_size") is not None:
            return None
        directions = 2 if bidirectional else 1
        total = 0
        for layer in range(layers):  # type: ignore[arg-type]
            width = n_in if layer == 0 else hidden * directions  # type: ignore[operator]
            per_direction = gates * hidden * (width + hidden) + (2 * gates * hidden if bias else 0)  # type: ignore[operator]
            total += per_direction * directions
        return total
    if cls == "MultiheadAttention":
        dim = _arg_int(call, "embed_dim", 0)
        bias = _flag(call, "bias", 3, True)
        if dim is None or bias is None or get_arg(call, "kdim") is not None or get_arg(call, "vdim") is not None:
            return None
        return 4 * dim * dim + (4 * dim if bias else 0)
    return None
