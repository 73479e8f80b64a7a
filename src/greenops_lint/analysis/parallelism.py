"""What a worker, thread or job count evaluates to, as far as the code says.

Three questions the provisioning rules (GO3xx) share:

* `host_cpu_source`: does an expression mean "every CPU the host has, or
  more" (`os.cpu_count()`, `multiprocessing.cpu_count()`, `psutil.cpu_count()`,
  `len(os.sched_getaffinity(0))`, multiples of them, `os.cpu_count() or 1`,
  `max(1, os.cpu_count())`)? Capped or reduced forms are not: `min(8, ...)`,
  `... // 2`, `... / k`, `... - k` (see GO301's page for why `- k` counts as
  reduced).
* `all_cores_jobs`: is an `n_jobs`-style value "all cores" (`-1` or a host CPU
  count)?
* `literal_int`: the int literal a value resolves to, through names.

Names are followed through `ctx.value_of` (the last binding of the name in
scope, module constants included), a few levels deep, and through helpers of
the module one call deep (`def workers(): return os.cpu_count()`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

import libcst as cst

from greenops_lint.analysis.calls import NOT_LITERAL, get_arg, literal_value
from greenops_lint.analysis.functions import returned_values
from greenops_lint.walker import children

if TYPE_CHECKING:  # pragma: no cover
    from greenops_lint.context import FileContext

# Functions that return the number of logical CPUs of the host (or, for
# sched_getaffinity / process_cpu_count, those of the affinity mask); none of
# them sees a cgroup CPU quota.
CPU_COUNT_FUNCTIONS = frozenset(
    {
        "os.cpu_count",
        "os.process_cpu_count",
        "multiprocessing.cpu_count",
        "multiprocessing.context.cpu_count",
        "torch.multiprocessing.cpu_count",
        "psutil.cpu_count",
    }
)

_WRAPPERS = frozenset(
    {"builtins.int", "builtins.str", "builtins.round", "builtins.abs", "math.ceil", "math.floor", "numpy.int64"}
)
_MAX_DEPTH = 6


def is_cpu_count_call(ctx: "FileContext", node: cst.Call) -> bool:
    name = ctx.call_name(node)
    if name in CPU_COUNT_FUNCTIONS:
        if name == "psutil.cpu_count":
            logical = get_arg(node, "logical", 0)
            # Physical cores (logical=False) is a deliberate choice, not "all logical CPUs".
            if logical is not None and literal_value(logical.value) is not True:
                return False
        return True
    if name == "builtins.len":
        arg = get_arg(node, None, 0)
        return (
            arg is not None and isinstance(arg.value, cst.Call) and ctx.call_name(arg.value) == "os.sched_getaffinity"
        )
    return False


def host_cpu_source(ctx: "FileContext", node: cst.BaseExpression, depth: int = 0) -> Optional[str]:
    """A short text naming where the host CPU count comes from, when `node`
    evaluates to every logical CPU of the host or more; None otherwise
    (capped, reduced, unknown)."""
    if depth > _MAX_DEPTH:
        return None
    if isinstance(node, cst.Call):
        if is_cpu_count_call(ctx, node):
            return ctx.snippet(node)
        name = ctx.call_name(node)
        args = [a for a in node.args if a.keyword is None and not a.star]
        if name in _WRAPPERS and args:
            return host_cpu_source(ctx, args[0].value, depth + 1)
        if name == "builtins.max":
            for arg in args:
                found = host_cpu_source(ctx, arg.value, depth + 1)
                if found:
                    return found
            return None
        if name == "builtins.min":
            found = [host_cpu_source(ctx, a.value, depth + 1) for a in args]
            return found[0] if found and all(found) else None
        # A helper of this module, one call deep.
        values = returned_values(ctx, node) if depth < 2 else []
        if values:
            found = [host_cpu_source(ctx, v, depth + 2) for v in values]
            if all(found):
                return f"{ctx.snippet(node)} (returns {found[0]})"
        return None
    if isinstance(node, cst.BinaryOperation):
        left = host_cpu_source(ctx, node.left, depth + 1)
        right = host_cpu_source(ctx, node.right, depth + 1)
        if isinstance(node.operator, cst.Multiply):
            if left and (right or _number_at_least(node.right, 1)):
                return left
            if right and _number_at_least(node.left, 1):
                return right
        elif isinstance(node.operator, cst.Add):
            if left and (right or _number_at_least(node.right, 0)):
                return left
            if right and _number_at_least(node.left, 0):
                return right
        # Subtraction, division, shifts, modulo: reduced on purpose.
        return None
    if isinstance(node, cst.BooleanOperation):
        if isinstance(node.operator, cst.Or):
            # `os.cpu_count() or 1` guards against None; `args.workers or
            # os.cpu_count()` falls back to every CPU.
            return host_cpu_source(ctx, node.left, depth + 1) or host_cpu_source(ctx, node.right, depth + 1)
        return None
    if isinstance(node, cst.IfExp):
        return host_cpu_source(ctx, node.body, depth + 1) or host_cpu_source(ctx, node.orelse, depth + 1)
    if isinstance(node, cst.FormattedString):
        parts = [p for p in node.parts if not (isinstance(p, cst.FormattedStringText) and not p.value.strip())]
        if len(parts) == 1 and isinstance(parts[0], cst.FormattedStringExpression):
            return host_cpu_source(ctx, parts[0].expression, depth + 1)
        return None
    if isinstance(node, (cst.Name, cst.Attribute)):
        value = ctx.value_of(node)
        if isinstance(value, cst.BaseExpression):
            found = host_cpu_source(ctx, value, depth + 1)
            if found:
                name = ctx.snippet(node)
                return found if found.startswith(name) else f"{name} (= {found})"
    return None


def _number_at_least(node: cst.BaseExpression, minimum: float) -> bool:
    value = literal_value(node)
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value >= minimum


def literal_int(ctx: "FileContext", node: cst.BaseExpression, depth: int = 0) -> Optional[int]:
    """The int literal `node` is, or names through constants; None if unknown."""
    if depth > _MAX_DEPTH:
        return None
    value = literal_value(node)
    if value is not NOT_LITERAL:
        return value if isinstance(value, int) and not isinstance(value, bool) else None
    if isinstance(node, (cst.Name, cst.Attribute)):
        bound = ctx.value_of(node)
        if isinstance(bound, cst.BaseExpression):
            return literal_int(ctx, bound, depth + 1)
    return None


def literal_str(ctx: "FileContext", node: cst.BaseExpression, depth: int = 0) -> Optional[str]:
    """The string literal `node` is, or names through constants; None if unknown."""
    if depth > _MAX_DEPTH:
        return None
    value = literal_value(node)
    if isinstance(value, str):
        return value
    if value is NOT_LITERAL and isinstance(node, (cst.Name, cst.Attribute)):
        bound = ctx.value_of(node)
        if isinstance(bound, cst.BaseExpression):
            return literal_str(ctx, bound, depth + 1)
    return None


def all_cores_jobs(ctx: "FileContext", node: cst.BaseExpression) -> Optional[str]:
    """'-1' or the CPU-count source when an `n_jobs`-style value means every
    core; None otherwise."""
    if literal_int(ctx, node) == -1:
        return "-1"
    return host_cpu_source(ctx, node)


def parallel_jobs(ctx: "FileContext", node: Optional[cst.Arg]) -> Optional[str]:
    """The text of an `n_jobs` argument that runs more than one job at once
    (any int other than 0/1, or a CPU count); None when absent, 1 or unknown."""
    if node is None:
        return None
    value = literal_int(ctx, node.value)
    if value is not None:
        return str(value) if value not in (0, 1) else None
    if host_cpu_source(ctx, node.value) or _mentions_cpu_count(ctx, node.value):
        return ctx.snippet(node.value)
    return None


def _mentions_cpu_count(ctx: "FileContext", node: cst.BaseExpression) -> bool:
    """`min(4, os.cpu_count())`, `os.cpu_count() // 2`: parallel, if capped."""
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, cst.Call) and is_cpu_count_call(ctx, current):
            return True
        if isinstance(current, (cst.Call, cst.BinaryOperation, cst.Arg)):
            stack.extend(c for c in children(current) if isinstance(c, (cst.BaseExpression, cst.Arg)))
    return False
