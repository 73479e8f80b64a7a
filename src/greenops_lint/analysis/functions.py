"""One call deep: what a function defined in the module returns.

`model = build_model().double()` is a model cast when `build_model` returns
`Net()`. Only direct returns are followed, plus `x = <expr>; return x` in the
function's own body: enough for the helpers ML scripts write, and cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterator

import libcst as cst

if TYPE_CHECKING:  # pragma: no cover
    from greenops_lint.context import FileContext


def called_function(ctx: "FileContext", call: cst.Call):
    """The `FunctionDef` a call to a plain name refers to, if the module defines it."""
    if isinstance(call.func, cst.Name):
        binding = ctx.names.lookup(call.func.value)
        if isinstance(binding, cst.FunctionDef):
            return binding
    return None


def statements(block: cst.BaseSuite) -> Iterator[cst.CSTNode]:
    """Statements of a body, entering if/for/while/with/try but not nested defs."""
    if isinstance(block, cst.SimpleStatementSuite):
        yield from block.body
        return
    for statement in block.body:
        if isinstance(statement, cst.SimpleStatementLine):
            yield from statement.body
        elif isinstance(statement, (cst.FunctionDef, cst.ClassDef)):
            continue
        elif isinstance(statement, cst.BaseCompoundStatement):
            for name in ("body", "orelse", "finalbody"):
                part = getattr(statement, name, None)
                if isinstance(part, cst.BaseSuite):
                    yield from statements(part)
                elif part is not None and hasattr(part, "body"):
                    yield from statements(part.body)
            for handler in getattr(statement, "handlers", ()):
                yield from statements(handler.body)


def returned_values(ctx: "FileContext", call: cst.Call) -> list[cst.BaseExpression]:
    function = called_function(ctx, call)
    if function is None:
        return []
    assigned: dict[str, cst.BaseExpression] = {}
    values: list[cst.BaseExpression] = []
    for statement in statements(function.body):
        if (
            isinstance(statement, cst.Assign)
            and len(statement.targets) == 1
            and isinstance(statement.targets[0].target, cst.Name)
        ):
            assigned[statement.targets[0].target.value] = statement.value
        elif isinstance(statement, cst.Return) and statement.value is not None:
            value = statement.value
            if isinstance(value, cst.Name) and value.value in assigned:
                value = assigned[value.value]
            values.append(value)
    return values
