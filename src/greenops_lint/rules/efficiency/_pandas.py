"""GO515's reading of per-row code: what a row is, and whether a loop body or an
apply() function does arithmetic on row fields and nothing a column operation
could not do (no I/O, no model, no unknown function, no nested loop)."""

from __future__ import annotations

from typing import Iterator, Optional

import libcst as cst

from greenops_lint.analysis.tree import walk_expr

_ARITHMETIC = (cst.Add, cst.Subtract, cst.Multiply, cst.Divide, cst.FloorDivide, cst.Modulo, cst.Power)
_ALLOWED_BUILTINS = frozenset({"float", "int", "abs", "round", "min", "max", "len", "bool", "pow", "sum", "divmod"})
_ALLOWED_METHODS = frozenset({"append", "extend", "add", "get", "item", "setdefault", "update"})


def literal_rows(value: cst.BaseExpression, limit: int) -> Optional[int]:
    """Rows of a literal frame (a dict of literal lists, or a list of rows), if at most `limit`."""
    if isinstance(value, cst.Dict):
        lengths = {
            len(e.value.elements)
            for e in value.elements
            if isinstance(e, cst.DictElement) and isinstance(e.value, (cst.List, cst.Tuple))
        }
        return max(lengths) if lengths and max(lengths) <= limit else None
    if isinstance(value, (cst.List, cst.Tuple)) and len(value.elements) <= limit:
        return len(value.elements)
    return None


def _nodes(body: cst.CSTNode) -> Iterator[cst.CSTNode]:
    yield from walk_expr(body)


def _row_field(node: cst.CSTNode, rows: set[str]) -> bool:
    """`row["a"]`, `row.a`, `row[0]`, `row.loc[...]`, or a name unpacked from the row."""
    if isinstance(node, cst.Name):
        return node.value in rows
    if isinstance(node, cst.Subscript):
        return _row_field(node.value, rows) or (
            isinstance(node.value, cst.Attribute) and _row_field(node.value.value, rows)
        )
    if isinstance(node, cst.Attribute):
        return isinstance(node.value, cst.Name) and node.value.value in rows
    if isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute) and node.func.attr.value == "get":
        return _row_field(node.func.value, rows)
    return False


def _reads_row(node: cst.CSTNode, rows: set[str]) -> bool:
    return any(_row_field(n, rows) for n in walk_expr(node))


def _stringy(node: cst.BaseExpression) -> bool:
    return isinstance(node, (cst.SimpleString, cst.FormattedString, cst.ConcatenatedString)) or (
        isinstance(node, cst.Call) and isinstance(node.func, cst.Name) and node.func.value == "str"
    )


def vectorisable(ctx, body: cst.CSTNode, rows: set[str], allow_index_writes: bool) -> bool:
    """The body does arithmetic on row fields and only things a column operation can do."""
    arithmetic = False
    for node in _nodes(body):
        if isinstance(node, (cst.For, cst.While, cst.Yield, cst.Return, cst.Break, cst.With, cst.Try, cst.Raise)):
            if isinstance(node, cst.Return) and not allow_index_writes:
                continue  # a function for apply() returns its value
            return False
        if isinstance(node, (cst.FunctionDef, cst.Lambda, cst.FormattedString)):
            return False
        if isinstance(node, cst.Call):
            if not _allowed_call(ctx, node, rows):
                return False
        elif isinstance(node, cst.BinaryOperation) and isinstance(node.operator, _ARITHMETIC):
            if _stringy(node.left) or _stringy(node.right):
                return False
            if _row_field(node.left, rows) or _row_field(node.right, rows) or _reads_row(node, rows):
                arithmetic = True
        elif isinstance(node, cst.AugAssign) and isinstance(
            node.operator, (cst.AddAssign, cst.SubtractAssign, cst.MultiplyAssign, cst.DivideAssign)
        ):
            if _stringy(node.value):
                return False
            if _reads_row(node.value, rows):
                arithmetic = True
    return arithmetic


def _allowed_call(ctx, node: cst.Call, rows: set[str]) -> bool:
    qualified = ctx.call_name(node)
    if qualified is not None:
        if qualified.startswith(("math.", "numpy.")):
            return True
        return qualified.startswith("builtins.") and qualified.split(".", 1)[1] in _ALLOWED_BUILTINS
    func = node.func
    if isinstance(func, cst.Attribute) and func.attr.value in _ALLOWED_METHODS:
        return True
    return False
