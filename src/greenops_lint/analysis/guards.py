"""Guards: `if` tests under which a statement runs once, or rarely, not on
every iteration of the loop around it.

One rule for every "record candidates, decide at the end" rule (GO1xx, GO5xx):
a statement is guarded in a loop when, between it and that loop, there is

- an `if` whose test is a once-guard (`if x is None`, `if key not in cache`,
  `if epoch == 0`, `if not loaded`, `if args.resume`, `hasattr`/`isinstance`)
  or a periodic test (`if step % log_every == 0`), or
- a `try` whose handlers catch `FileNotFoundError` or `EOFError` (the
  load-or-create idiom: the body runs until a file exists).

Other exception handlers are not guards: `try: ... except Exception:` around a
load still loads on every iteration.
"""

from __future__ import annotations

import re

import libcst as cst

from greenops_lint.analysis.calls import literal_value
from greenops_lint.analysis.tree import walk_expr

_ONCE_WORDS = re.compile(r"(first|once|resume|cache|cached|loaded|init|best|reload|refresh)", re.IGNORECASE)
_ONCE_EXCEPTIONS = frozenset({"FileNotFoundError", "EOFError"})


def is_once_guard(test: cst.BaseExpression) -> bool:
    """A test under which the body runs once, not every iteration."""
    for node in walk_expr(test):
        if isinstance(node, cst.Comparison):
            for target in node.comparisons:
                op = target.operator
                if isinstance(op, (cst.Is, cst.IsNot, cst.NotIn, cst.In)):
                    return True
                if isinstance(op, cst.Equal) and literal_value(target.comparator) in (0, 1, None):
                    return True
        elif isinstance(node, cst.UnaryOperation) and isinstance(node.operator, cst.Not):
            return True
        elif isinstance(node, cst.Call) and isinstance(node.func, cst.Name) and node.func.value in ("hasattr", "isinstance"):
            return True
        elif isinstance(node, cst.Name) and _ONCE_WORDS.search(node.value):
            return True
        elif isinstance(node, cst.Attribute) and _ONCE_WORDS.search(node.attr.value):
            return True
    return False


def is_periodic(test: cst.BaseExpression) -> bool:
    """`if step % log_every == 0`: the body runs on a fraction of iterations."""
    return any(isinstance(n, cst.BinaryOperation) and isinstance(n.operator, cst.Modulo) for n in walk_expr(test))


def is_guard(node: cst.CSTNode) -> bool:
    """Whether `node`, an ancestor of a statement, makes it run once or rarely."""
    if isinstance(node, cst.If):
        return is_once_guard(node.test) or is_periodic(node.test)
    if isinstance(node, cst.Try):
        return any(isinstance(h.type, cst.Name) and h.type.value in _ONCE_EXCEPTIONS for h in node.handlers)
    return False
