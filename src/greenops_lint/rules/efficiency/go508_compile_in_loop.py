"""GO508: a compiled (jit) wrapper created inside a loop, so it compiles again."""

from __future__ import annotations

from typing import Optional

import libcst as cst

from greenops_lint.analysis.calls import get_arg
from greenops_lint.analysis.candidates import Candidate
from greenops_lint.analysis.efficiency import rare_guard
from greenops_lint.analysis.guards import is_once_guard
from greenops_lint.analysis.loops import LoopInfo, referenced_names
from greenops_lint.analysis.tree import walk_expr
from greenops_lint.finding import SavingsEstimate
from greenops_lint.rule import Invalid
from greenops_lint.rules.efficiency._shared import LoopBoundRule
from greenops_lint.savings import SOURCE_COUNTED
from greenops_lint.walker import children

# ## Estimate: repeated work, (iterations - 1) extra compilations where the loop count is literal, otherwise
# this range of iterations is assumed; the probe times one compilation.
ASSUMED_ITERATIONS = (2, 100)

_JAX_COMPILERS = frozenset({"jax.jit", "jax.pmap", "equinox.filter_jit", "flax.linen.jit"})
_TF_COMPILERS = frozenset({"tensorflow.function"})
_TORCH_COMPILERS = frozenset({"torch.compile"})
_TORCH_TRACERS = frozenset({"torch.jit.trace", "torch.jit.trace_module"})
_COMPILERS = _JAX_COMPILERS | _TF_COMPILERS | _TORCH_COMPILERS | _TORCH_TRACERS
_PARTIALS = frozenset({"functools.partial"})
# Keywords under which the compilers take the function or module they wrap.
_WRAPPED_KEYWORDS = ("fun", "func", "fn", "model", "mod", "f")


class CompileInLoop(LoopBoundRule):
    """Creates a compiled (jit) wrapper inside a loop, so it compiles again.

    ## What it does
    Flags, inside a `for`/`while` loop or comprehension of the same function:
    `jax.jit`/`jax.pmap` of a lambda, a `functools.partial` or a function
    defined in the loop (also as a decorator); `tf.function(...)` of any
    function that does not change with the loop; `torch.jit.trace` of a
    loop-invariant function or module; `torch.compile` of a lambda, partial
    or function defined in the loop that captures a value changing with the
    loop, and `m = torch.compile(m)` re-wrapping its own result.

    ## Why is this bad
    Compilation costs seconds to minutes. JAX caches compiled code per
    function object: a new lambda or partial on each iteration misses the
    cache and traces and compiles again (JAX docs, "jit and caching"). Each
    `tf.function` object keeps its own trace cache, so creating one per
    iteration retraces every time (TensorFlow warns about "creating
    @tf.function repeatedly in a loop"). `torch.jit.trace` re-runs the trace
    on every call. `torch.compile` caches by code object, but a closure over a
    changing value fails its guards and recompiles (measured here: 1.3 s per
    iteration), and compiling a compiled module recompiles.

    Not flagged: `jax.jit(f)` or `torch.compile(f)` of the same named function
    or module in a loop (a cache hit: measured 1-2 ms against 6-27 s for the
    first compile with PyTorch 2.13), wrappers of a function or model that
    changes with the loop (a new model per trial must compile), wrappers
    under a once-guard (`if step_fn is None:`), and retry loops.

    ## Fix
    Create the compiled function once, before the loop, and pass the changing
    values as arguments (mark only truly static ones with `static_argnums`).

    ## Estimate
    Repeated work: (iterations - 1) extra compilations where the loop count is
    literal, otherwise 1-99; the probe times one compilation.
    """

    code = "GO508"
    name = "compile-in-loop"
    estimate_sources = {
        SOURCE_COUNTED: "any hardware: a count read from the code; the seconds each repetition costs are measured by `greenops-lint probe`",
    }
    tokens = ("jit", "function", "compile", "pmap", "trace")
    INVALID = [
        Invalid(
            """
            import jax
            for step in range(1000):
                loss_fn = jax.jit(lambda p: loss(p, batch))
                params = update(params, loss_fn)
            """,
            line=3,
            message="jax.jit(...) is created inside the loop (1000 iterations)",
        ),
        """
        import tensorflow as tf
        for epoch in range(20):
            step = tf.function(train_step)
            step(batch)
        """,
        """
        import torch
        for epoch in range(10):
            model = torch.compile(model)
            train(model)
        """,
    ]
    VALID = [
        """
        import jax
        step = jax.jit(train_step)
        for i in range(1000):
            params = step(params, batch)
        """,
        """
        import torch
        for name in ["resnet18", "resnet50"]:
            model = torch.compile(build(name))
            evaluate(model)
        """,
        """
        import jax
        for i in range(1000):
            params = jax.jit(train_step)(params, batch)
        """,
    ]

    def __init__(self, ctx, options=None) -> None:
        super().__init__(ctx, options)
        # Decorated defs inside a loop: (def, compiler, statement, ids of the loop nodes around it).
        self._decorated: list[tuple[cst.FunctionDef, str, Optional[cst.CSTNode], list[int]]] = []

    def guard_test(self, test: cst.BaseExpression, variant: set[str]) -> bool:
        return is_once_guard(test) or rare_guard(test, variant)

    def check_call(self, node: cst.Call) -> None:
        qualified = self.ctx.call_name(node)
        if qualified not in _COMPILERS:
            return
        if isinstance(self.ctx.parent(), cst.Decorator):
            return  # `@tf.function(jit_compile=True)`: handled with the def
        wrapped = get_arg(node, None, 0)
        for keyword in _WRAPPED_KEYWORDS:
            if wrapped is None:
                wrapped = get_arg(node, keyword)
        if wrapped is None or not self.ctx.loops.loops_at():
            return
        parent = self.ctx.parent()
        rebinds = None
        if isinstance(parent, cst.Assign) and len(parent.targets) == 1:
            target = parent.targets[0].target
            if isinstance(target, cst.Name):
                rebinds = target.value
        fresh = self._fresh(wrapped.value)
        self.record(node, kind=qualified, wrapped=wrapped.value, rebinds=rebinds, assign=parent, fresh=fresh)

    def _fresh(self, value: cst.BaseExpression) -> Optional[cst.CSTNode]:
        """A function object that is new on each iteration: a lambda, a partial,
        or a def inside the loop. Returns the node whose captured names matter."""
        if isinstance(value, cst.Lambda):
            return value
        if isinstance(value, cst.Call) and self.ctx.call_name(value) in _PARTIALS:
            return value
        if isinstance(value, cst.Name):
            bound = self.ctx.value_of(value)
            if isinstance(bound, cst.FunctionDef) and self._def_in_current_loop(bound):
                return bound
        return None

    def _def_in_current_loop(self, function: cst.FunctionDef) -> bool:
        loops = self.ctx.loops.loops_at()
        if not loops:
            return False
        stack: list[cst.CSTNode] = [loops[0].node]
        while stack:
            current = stack.pop()
            if current is function:
                return True
            stack.extend(children(current))
        return False

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        # The loops analysis has already entered this def's frame, so the loops
        # around the def are read from the ancestors (innermost first).
        if not node.decorators:
            return
        loop_ids: list[int] = []
        for index in range(len(self.ctx.stack) - 2, -1, -1):
            ancestor = self.ctx.stack[index]
            if isinstance(ancestor, (cst.FunctionDef, cst.Lambda, cst.ClassDef)):
                break
            if (
                isinstance(ancestor, cst.If)
                and self.ctx.stack[index + 1] is ancestor.body
                and is_once_guard(ancestor.test)
            ):
                return
            if isinstance(ancestor, (cst.For, cst.While)):
                loop_ids.append(id(ancestor))
        if not loop_ids:
            return
        for decorator in node.decorators:
            expr = decorator.decorator
            target = expr.func if isinstance(expr, cst.Call) else expr
            if isinstance(expr, cst.Call) and self.ctx.qualified_name(target) in _PARTIALS and expr.args:
                target = expr.args[0].value
            qualified = self.ctx.qualified_name(target)
            if qualified in _COMPILERS:
                self._decorated.append((node, qualified, self.ctx.enclosing_statement(), loop_ids))
                return

    def leave_Module(self, node: cst.Module) -> None:
        for candidate in self.candidates:
            loop = self._repeating_loop(candidate)
            if loop is None:
                continue
            kind = candidate.extra["kind"]
            wrapped = candidate.extra["wrapped"]
            fresh = candidate.extra["fresh"]
            rebinds = candidate.extra["rebinds"]
            variant = self._variant(loop, candidate.extra["assign"], rebinds)
            if fresh is not None:
                captured = referenced_names(fresh.body if isinstance(fresh, (cst.Lambda, cst.FunctionDef)) else fresh)
                if kind in _TORCH_COMPILERS and not (captured & variant):
                    continue  # same code object and guards: a cache hit
                reason = "a new function object on each iteration misses the compilation cache"
            else:
                names = referenced_names(wrapped)
                if rebinds is not None and rebinds in names and kind in _TORCH_COMPILERS | _TF_COMPILERS:
                    reason = "it wraps its own previous result, which compiles again"
                elif names & variant:
                    continue  # a different function or model each iteration
                elif kind in _TF_COMPILERS:
                    reason = "each tf.function object traces again"
                elif kind in _TORCH_TRACERS:
                    reason = "torch.jit.trace runs the trace again on every call"
                else:
                    continue  # jax.jit / torch.compile of the same function: a cache hit
            self._emit(candidate.node, kind, loop, reason, candidate.statement)
        by_node = {id(loop.node): loop for loop in self.ctx.loops.loops}
        for function, kind, statement, loop_ids in self._decorated:
            loops = [by_node[i] for i in loop_ids if i in by_node and not by_node[i].is_retry]
            if not loops:
                continue
            if kind in _TORCH_COMPILERS and not (referenced_names(function.body) & self._variant(loops[0], None, None)):
                continue
            reason = "a function defined in the loop is a new object each iteration"
            self._emit(function, kind, loops[0], reason, statement)

    @staticmethod
    def _repeating_loop(candidate: Candidate) -> Optional[LoopInfo]:
        for loop in candidate.direct:
            if id(loop) in candidate.guards.loops:
                return None
            if loop.is_retry:
                continue
            return loop
        return None

    @staticmethod
    def _variant(loop: LoopInfo, assign: Optional[cst.CSTNode], rebinds: Optional[str]) -> set[str]:
        variant = loop.variant_names()
        if rebinds is not None and rebinds not in loop.targets:
            # `m = torch.compile(m)`: this statement's own rebinding does not make
            # `m` a different model; any other assignment in the loop does.
            others = any(
                isinstance(node, (cst.Assign, cst.AugAssign, cst.AnnAssign))
                and node is not assign
                and rebinds in referenced_names(node.targets[0].target if isinstance(node, cst.Assign) else node.target)
                for node in walk_expr(loop.node)
            )
            if not others:
                variant = variant - {rebinds}
        return variant

    def _emit(self, node: cst.CSTNode, kind: str, loop: LoopInfo, reason: str, statement) -> None:
        short = kind.replace("tensorflow.", "tf.")
        count = loop.count
        if count:
            low = high = float(max(count - 1, 0))
            assumption = "the loop count is literal"
        else:
            fewest, most = ASSUMED_ITERATIONS
            low, high = float(fewest - 1), float(most - 1)
            assumption = f"the loop count is not literal: {fewest}-{most} iterations assumed"
        where = f"the {loop.describe()}" + (f" ({count} iterations)" if count else "")
        self.report(
            node,
            f"{short}(...) is created inside {where}: {reason}; create the compiled function once before the loop "
            "and pass changing values as arguments",
            SavingsEstimate(
                metric="repeated_work",
                low=low,
                high=high,
                unit="extra compilations",
                basis="JAX docs 'jit and caching', TensorFlow tf.function retracing guide; compile time x iterations",
                hardware=self.ctx.hardware.key,
                source=SOURCE_COUNTED,
                assumptions=(assumption,),
            ),
            statement=statement,
        )
