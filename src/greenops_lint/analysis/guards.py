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

Which rule applies where (one scan, `analysis/candidates.py`; the predicate is
the rule's `is_guard(node, child, variant)`):

- The caching rules (GO1xx, "does the same work again") use the rule above,
  widened per rule with `extra_guard`: work done once is the point there.
- The efficiency loop rules (GO501, GO505, GO508: "costs something on every
  step") replace it (`rules/efficiency/_shared.LoopBoundRule.is_guard`): an
  `if` body whose test makes it run on a *fraction* of the iterations
  (`analysis/efficiency.rare_guard`: periodic tests, `==`/`in` on a counter
  or a name that changes in the loop, flags such as `sync_gradients`), an
  `if` body that ends in raise/break/return, or *any* exception handler (an
  OOM-recovery or error path). Once-guards and `FileNotFoundError` tries do
  not silence them, except GO508 (a compiled wrapper created once under
  `if fn is None:` is the fix); GO505 asks a literal period of 100 steps or
  more. GO503 uses no guard (a guard does not make evaluation need gradients).
- A guard counts between the candidate and the loop that repeats it: in the
  candidate's function it guards every loop above it and every call of the
  function; around a call site, only the loops of that site outside it.
"""

from __future__ import annotations

import re

import libcst as cst

from greenops_lint.analysis.calls import literal_value
from greenops_lint.analysis.tree import names_word, walk_expr

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
        elif (
            isinstance(node, cst.Call)
            and isinstance(node.func, cst.Name)
            and node.func.value in ("hasattr", "isinstance")
        ):
            return True
        elif names_word(node, _ONCE_WORDS):
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
