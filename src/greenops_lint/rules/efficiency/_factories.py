"""GO502's tensor factories: what a factory call allocates, and the fix that
creates the tensor on the device instead of copying it there."""

from __future__ import annotations

from typing import Optional

import libcst as cst

from greenops_lint.analysis.calls import literal_value
from greenops_lint.analysis.rewrite import with_keyword
from greenops_lint.finding import Fix

# Factories whose size the arguments give (`torch.full(size, value)`: the first only).
SIZED_FACTORIES = ("zeros", "ones", "empty", "rand", "randn", "full")


def device_fix(move: cst.Call, factory: cst.Call) -> Optional[Fix]:
    """`torch.zeros(n).unsqueeze(0).to(dev)` -> `torch.zeros(n, device=dev).unsqueeze(0)`."""
    method = move.func.attr.value
    if method == "cuda" and not move.args:
        device: cst.BaseExpression = cst.SimpleString('"cuda"')
    elif (
        method == "to"
        and len(move.args) == 1
        and (move.args[0].keyword is None or move.args[0].keyword.value == "device")
    ):
        device = move.args[0].value
    else:
        return None  # .cuda(1), .to(dev, dtype), non_blocking=...: left to a human
    depth = 0
    receiver = move.func.value
    while receiver is not factory:
        receiver = receiver.func.value
        depth += 1

    def rewrite(updated: cst.Call) -> cst.BaseExpression:
        def rebuild(node: cst.BaseExpression, level: int) -> cst.BaseExpression:
            if level == 0:
                return with_keyword(node, "device", device)
            inner = rebuild(node.func.value, level - 1)
            return node.with_changes(func=node.func.with_changes(value=inner))

        return rebuild(updated.func.value, depth)

    return Fix(move, rewrite, safe=True, title="create it on the device")


def sizes_only(call: cst.Call) -> bool:
    """`torch.FloatTensor(n, 512)` allocates by size; `torch.FloatTensor([1, 2])`
    and `torch.FloatTensor(values)` (one name: data or a size?) are not followed."""
    args = [a.value for a in call.args if a.keyword is None]
    sizes = (cst.Integer, cst.Name, cst.Attribute, cst.BinaryOperation, cst.Subscript)
    if len(args) == 1:
        return isinstance(args[0], cst.Integer)
    return len(args) > 1 and all(isinstance(a, sizes) for a in args)


def literal_numel(call: cst.Call, factory: str) -> Optional[int]:
    if factory not in SIZED_FACTORIES:
        return None
    args = [a.value for a in call.args if a.keyword is None]
    if factory == "full":
        args = args[:1]
    if len(args) == 1 and isinstance(args[0], (cst.Tuple, cst.List)):
        if not args[0].elements:
            return 1  # torch.zeros([]): a scalar
        args = [e.value for e in args[0].elements]
    numel = 1
    for arg in args:
        value = literal_value(arg)
        if not isinstance(value, int) or isinstance(value, bool):
            return None
        numel *= value
    return numel if args else None
