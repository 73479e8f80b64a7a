"""Is a statement chosen by a flag or a config option?

`if args.deterministic:`, `if cfg.tf32:`, `if not fast:`: code under an `if`
runs because someone asked for it, so a rule that reports a *setting*
(determinism, TF32) stays silent there. `if __name__ == "__main__":` is not a
flag: it is how a script runs its main code.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import libcst as cst

from greenops_lint.analysis.calls import literal_value

if TYPE_CHECKING:  # pragma: no cover
    from greenops_lint.context import FileContext


def is_main_guard(test: cst.BaseExpression) -> bool:
    """`__name__ == "__main__"` (either side)."""
    if not (isinstance(test, cst.Comparison) and len(test.comparisons) == 1):
        return False
    sides = (test.left, test.comparisons[0].comparator)
    names = [s.value for s in sides if isinstance(s, cst.Name)]
    return names == ["__name__"] and "__main__" in [literal_value(s) for s in sides]


def under_flag(ctx: "FileContext") -> bool:
    """The node being visited runs under an `if`/`else` (other than the main
    guard) or a conditional expression, in its own function or at module level."""
    stack = ctx.stack
    for index in range(len(stack) - 2, -1, -1):
        node = stack[index]
        if isinstance(node, (cst.FunctionDef, cst.Lambda, cst.ClassDef)):
            return False
        if isinstance(node, cst.If) and not is_main_guard(node.test):
            return True
        if isinstance(node, cst.IfExp):
            return True
    return False
