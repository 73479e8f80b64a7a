"""Reading a call's arguments the way Python binds them (keyword or position)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

import libcst as cst

if TYPE_CHECKING:  # pragma: no cover
    from greenops_lint.context import FileContext


def get_arg(call: cst.Call, keyword: Optional[str], position: Optional[int] = None) -> Optional[cst.Arg]:
    """The argument passed as `keyword=` or at `position` (0-based), if any."""
    positional = 0
    for arg in call.args:
        if arg.keyword is not None:
            if keyword is not None and arg.keyword.value == keyword:
                return arg
            continue
        if arg.star:
            # After *args the positions are unknown.
            return None
        if position is not None and positional == position:
            return arg
        positional += 1
    return None


# Literals that switch a flag on (`True`, `1`, `"1"`, `"true"`), as code and env vars spell it.
TRUTHY_LITERALS = (True, 1, "1", "true", "True", "TRUE", "yes")


def has_star_kwargs(call: cst.Call) -> bool:
    return any(arg.star == "**" for arg in call.args)


def literal_value(node: cst.BaseExpression):
    """The Python value of a simple literal (numbers, strings, True/False/None,
    unary minus), or `NOT_LITERAL`."""
    if isinstance(node, cst.Integer):
        return int(node.value, 0)
    if isinstance(node, cst.Float):
        return float(node.value.replace("_", ""))
    if isinstance(node, cst.SimpleString):
        try:
            return node.evaluated_value
        except Exception:  # noqa: BLE001 - odd prefixes (b"", f"") are not literals we use
            return NOT_LITERAL
    if isinstance(node, cst.Name) and node.value in ("True", "False", "None"):
        return {"True": True, "False": False, "None": None}[node.value]
    if isinstance(node, cst.UnaryOperation) and isinstance(node.operator, cst.Minus):
        inner = literal_value(node.expression)
        if isinstance(inner, (int, float)) and not isinstance(inner, bool):
            return -inner
    return NOT_LITERAL


class _NotLiteral:
    def __repr__(self) -> str:
        return "NOT_LITERAL"


NOT_LITERAL = _NotLiteral()


def environ_assignment(ctx: "FileContext", node: cst.Assign) -> Optional[tuple[str, cst.BaseExpression]]:
    """`os.environ["NAME"] = value` -> ("NAME", value); None for anything else."""
    for target in node.targets:
        subscript = target.target
        if (
            isinstance(subscript, cst.Subscript)
            and len(subscript.slice) == 1
            and isinstance(subscript.slice[0].slice, cst.Index)
            and ctx.qualified_name(subscript.value) == "os.environ"
        ):
            name = literal_value(subscript.slice[0].slice.value)
            if isinstance(name, str):
                return name, node.value
    return None


def name_prefix(node: cst.BaseExpression) -> Optional[str]:
    """The literal start of a computed attribute name: `f"adapter{i}"`,
    `"adapter" + str(i)`, `"adapter{}".format(i)`, `"adapter%d" % i` -> "adapter"."""
    if isinstance(node, cst.FormattedString):
        first = node.parts[0] if node.parts else None
        if isinstance(first, cst.FormattedStringText) and first.value:
            return first.value
        return None
    if isinstance(node, cst.BinaryOperation):
        if isinstance(node.operator, cst.Add):
            left = literal_value(node.left)
            return left if isinstance(left, str) and left else name_prefix(node.left)
        if isinstance(node.operator, cst.Modulo):
            left = literal_value(node.left)
            if isinstance(left, str):
                head = left.split("%", 1)[0]
                return head or None
        return None
    if isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute) and node.func.attr.value == "format":
        template = literal_value(node.func.value)
        if isinstance(template, str):
            head = template.split("{", 1)[0]
            return head or None
    return None
