"""Small, reusable tree edits that fixes are made of."""

from __future__ import annotations

from typing import Optional

import libcst as cst

_FLOAT32_FOR = {"float64": "float32", "double": "float32", "DoubleTensor": "FloatTensor"}
_FLOAT32_STRINGS = {
    "float64": "float32",
    "double": "float32",
    "f8": "f4",
    "<f8": "<f4",
    "torch.float64": "torch.float32",
    "torch.double": "torch.float32",
    "torch.DoubleTensor": "torch.FloatTensor",
    "torch.cuda.DoubleTensor": "torch.cuda.FloatTensor",
}


def float32_like(node: cst.BaseExpression) -> Optional[cst.BaseExpression]:
    """The float32 spelling of a float64 dtype, in the same style:
    `T.float64` -> `T.float32`, `torch.DoubleTensor` -> `torch.FloatTensor`,
    `"float64"` -> `"float32"`. None when there is no safe spelling (a bare
    imported name such as `float64`, or the builtin `float`)."""
    if isinstance(node, cst.Attribute) and node.attr.value in _FLOAT32_FOR:
        return node.with_changes(attr=cst.Name(_FLOAT32_FOR[node.attr.value]))
    if isinstance(node, cst.SimpleString):
        quote = node.quote
        body = node.value[len(node.prefix) + len(quote) : -len(quote)]
        if body in _FLOAT32_STRINGS:
            return node.with_changes(value=f"{node.prefix}{quote}{_FLOAT32_STRINGS[body]}{quote}")
    return None


def string_like(node: cst.SimpleString, text: str) -> cst.SimpleString:
    """A string literal with the same prefix and quotes as `node`."""
    return node.with_changes(value=f"{node.prefix}{node.quote}{text}{node.quote}")


def with_keyword(call: cst.Call, keyword: str, value: cst.BaseExpression) -> cst.Call:
    """`call` with `keyword=value` set: replaced if present, else appended."""
    args = list(call.args)
    for index, arg in enumerate(args):
        if arg.keyword is not None and arg.keyword.value == keyword:
            args[index] = arg.with_changes(value=value)
            return call.with_changes(args=args)
    new_arg = cst.Arg(
        value=value,
        keyword=cst.Name(keyword),
        equal=cst.AssignEqual(whitespace_before=cst.SimpleWhitespace(""), whitespace_after=cst.SimpleWhitespace("")),
    )
    if args and isinstance(args[-1].comma, cst.Comma):
        # A trailing comma (often a multi-line call): keep the layout.
        new_arg = new_arg.with_changes(comma=args[-1].comma)
        args[-1] = args[-1].with_changes(comma=cst.Comma(whitespace_after=args[-1].comma.whitespace_after))
    return call.with_changes(args=[*args, new_arg])


def method_call(receiver: cst.BaseExpression, method: str) -> cst.Call:
    """`receiver.method()`."""
    return cst.Call(func=cst.Attribute(value=receiver, attr=cst.Name(method)))


def replace_with(new: cst.CSTNode):
    """An `apply` function for a fix that swaps the target for `new`."""
    return lambda _updated: new
