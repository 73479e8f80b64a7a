"""GO105 dataloader-not-persistent: the DataLoader's worker processes restarted at every epoch."""

from __future__ import annotations

from typing import Optional

import libcst as cst

from greenops_lint.analysis.calls import get_arg, literal_value
from greenops_lint.analysis.candidates import Candidate, bound_arguments, scan_guards, stack_path
from greenops_lint.analysis.loops import LoopInfo, Repetition
from greenops_lint.analysis.rewrite import with_keyword
from greenops_lint.analysis.tree import is_self_attr, param_names
from greenops_lint.finding import Fix
from greenops_lint.rule import Invalid
from greenops_lint.rules.caching._shared import RepeatedWorkRule
from greenops_lint.savings import SOURCE_COUNTED

# -- estimate (`## Estimate`): (epochs - 1) worker start-ups
REPEATED = "worker start-ups"
# Wrappers through which `for x in wrapper(loader)` still iterates the loader.
_ITERATION_WRAPPERS = ("builtins.enumerate", "tqdm.tqdm", "tqdm.auto.tqdm")


class DataLoaderNotPersistent(RepeatedWorkRule):
    """Restarts the DataLoader's worker processes at the start of every epoch.

    ## What it does
    Flags a `DataLoader(..., num_workers=N)` (N not 0) without
    `persistent_workers=True` that is iterated inside an epoch loop (or any
    outer loop), directly, in a function of the module called from it, or in
    a function it is passed to (`train(model, train_loader)` once per epoch).
    Off by default (info): the cost depends on the platform and the dataset.

    ## Why is this bad
    At the end of each pass the loader shuts its workers down and starts new
    ones for the next: each re-imports the training script's modules and
    receives a fresh pickled copy of the dataset. On Linux with a small
    dataset this is well under a second; with spawn start-up (Windows, macOS)
    or a large in-memory dataset it was seconds to minutes per epoch
    (pytorch/ignite #1938, open-mmlab/mmhuman3d PR #233).

    Not flagged: `num_workers=0`, `persistent_workers=True`, a loader
    iterated once, a loader that a function builds and iterates once per
    call (`hash_dataset(ds)` called for each experience: every call builds a
    new loader, so persistent workers could not be reused), a loader
    iterated, or passed to a function that iterates it, under a once-guard
    or a periodic test in the loop (`if epoch % args.test_every == 0:
    test(model, test_loader)`), and test files.

    ## Fix
    Pass `persistent_workers=True` (PyTorch >= 1.7). If the dataset changes
    its state between epochs in the main process, the persistent workers
    keep their old copy: then leave it off. Autofix: unsafe for that reason
    (the rule catalog's call; the workers also stay resident between epochs);
    `--unsafe-fixes` adds `persistent_workers=True`.

    ## Estimate
    Repeated work: (epochs - 1) worker start-ups.
    """

    code = "GO105"
    name = "dataloader-not-persistent"
    family = "caching"
    estimate_sources = {
        SOURCE_COUNTED: "any hardware: a count read from the code; the seconds each repetition costs are measured by `greenops-lint probe`",
    }
    severity = "info"
    default_enabled = False
    fixable = True
    fix_safety = "unsafe"
    loop_kinds = frozenset({"epoch", "loop"})
    tokens = ("num_workers",)
    INVALID = [
        Invalid(
            """
            from torch.utils.data import DataLoader
            loader = DataLoader(train_set, batch_size=64, num_workers=8)
            for epoch in range(10):
                for x, y in loader:
                    model(x).sum().backward()
            """,
            line=2,
            message="loader is iterated on every iteration of the epoch loop (10 iterations) and restarts",
            fixed="""
            from torch.utils.data import DataLoader
            loader = DataLoader(train_set, batch_size=64, num_workers=8, persistent_workers=True)
            for epoch in range(10):
                for x, y in loader:
                    model(x).sum().backward()
            """,
        ),
    ]
    VALID = [
        """
        from torch.utils.data import DataLoader
        loader = DataLoader(train_set, batch_size=64, num_workers=8, persistent_workers=True)
        for epoch in range(10):
            for x, y in loader:
                model(x).sum().backward()
        """,
        """
        from torch.utils.data import DataLoader
        loader = DataLoader(test_set, batch_size=64, num_workers=8)
        for x, y in loader:
            predict(x)
        """,
        """
        from torch.utils.data import DataLoader
        def test(model, loader):
            for x, y in loader:
                model(x)
        test_loader = DataLoader(test_set, batch_size=64, num_workers=4)
        for epoch in range(epochs):
            train_one_epoch(model)
            if epoch % args.test_every == 0:
                test(model, test_loader)
        """,
    ]

    def __init__(self, ctx, options=None) -> None:
        super().__init__(ctx, options)
        # (scope, name) -> (the DataLoader call, its statement, the loops around it)
        self.loaders: dict[tuple[int, str], tuple[cst.Call, Optional[cst.CSTNode], frozenset[int]]] = {}
        self.param_iterations: dict[int, list[tuple[str, tuple[LoopInfo, ...]]]] = {}
        self.passes: list[tuple] = []
        self.local_to: dict[tuple[int, str], object] = {}  # function-local loader -> the function that builds it

    def visit_Assign(self, node: cst.Assign) -> None:
        if len(node.targets) != 1:
            return
        key = self._key(node.targets[0].target, assigning=True)
        call = node.value
        if key is None:
            return
        self.loaders.pop(key, None)
        self.local_to.pop(key, None)
        if not isinstance(call, cst.Call) or self.ctx.call_name(call) != "torch.utils.data.DataLoader":
            return
        workers = get_arg(call, "num_workers", 6)
        persistent = get_arg(call, "persistent_workers")
        if workers is None or literal_value(workers.value) == 0 or any(a.star == "**" for a in call.args):
            return
        if persistent is not None and literal_value(persistent.value) is not False:
            return
        # The loops around the construction: a loader built inside a loop is
        # new on each pass of that loop (GO103's concern, not this rule's).
        built_in = frozenset(id(loop) for loop in self.ctx.loops.loops_at())
        self.loaders[key] = (call, self.ctx.enclosing_statement(), built_in)
        if not key[1].startswith("self."):
            self.local_to[key] = self.ctx.loops.current_frame

    def visit_For(self, node: cst.For) -> None:
        iterable = node.iter
        while isinstance(iterable, cst.Call) and self.ctx.call_name(iterable) in _ITERATION_WRAPPERS and iterable.args:
            iterable = iterable.args[0].value
        frame = self.ctx.loops.current_frame
        if (
            isinstance(iterable, cst.Name)
            and isinstance(frame, cst.FunctionDef)
            and iterable.value in param_names(frame)
        ):
            # `def train(loader): for x in loader` -- resolved against call sites at the end.
            self.param_iterations.setdefault(id(frame), []).append((iterable.value, self.ctx.loops.loops_at()[1:]))
        key = self._key(iterable)
        if key in self.loaders:
            call, statement, built_in = self.loaders[key]
            candidate = self.record(node, key[1], outer_only=True, statement=statement, loader=call, built_in=built_in)
            frame = self.ctx.loops.current_frame
            if frame is not None and self.local_to.get(key) is frame:
                # Built and iterated in the same function: each call of it builds a
                # new loader (`hash_dataset(ds)` per experience), so only loops of
                # this function repeat the passes, not the loops around its calls.
                candidate.frame = None

    def visit_Call(self, node: cst.Call) -> None:
        # A loader handed to a function of the module that iterates it.
        for arg in node.args:
            key = self._key(arg.value) if not arg.star else None
            if key in self.loaders:
                call, statement, built_in = self.loaders[key]
                loops = self.ctx.loops
                # A guard around the call (`if epoch % k == 0: test(model, loader)`)
                # counts as it does around a `for` over the loader.
                guards = scan_guards(stack_path(self.ctx.stack), loops.loops_at(), self.is_guard)
                self.passes.append(
                    (node, arg.value, key[1], call, statement, built_in, loops.loops_at(), loops.current_frame, guards)
                )

    def _key(self, node: cst.BaseExpression, assigning: bool = False) -> Optional[tuple[int, str]]:
        """Loader names are per scope; `self.x` loaders per class."""
        name = _target_key(node)
        if name is None:
            return None
        names = self.ctx.names
        if name.startswith("self."):
            scope = names.enclosing_class_scope()
            return (id(scope), name) if scope is not None else None
        if assigning:
            return (id(names.current), name)
        for scope in reversed(names.scopes):
            if name in scope.names:
                return (id(scope), name)
        return None

    def emit(self, candidate: Candidate, repetition: Repetition) -> None:
        loader = candidate.extra["loader"]
        self.report(
            loader,
            f"{candidate.label} is iterated {self.where(repetition)} and restarts its worker processes on each pass; "
            "pass persistent_workers=True",
            self.repeated_estimate(repetition, REPEATED),
            statement=candidate.statement,
            fix=Fix(
                loader,
                lambda updated: with_keyword(updated, "persistent_workers", cst.Name("True")),
                safe=False,
                title="persistent_workers=True",
            ),
        )

    def leave_Module(self, node: cst.Module) -> None:
        reported: set[int] = set()
        self._resolve_passes(reported)
        for candidate in self.candidates:
            loader = candidate.extra["loader"]
            if id(loader) in reported:
                continue
            if any(id(loop) in candidate.extra["built_in"] for loop in candidate.direct):
                continue  # rebuilt inside the repeating loop: one pass per loader
            repetition = self.repetition(candidate)
            if repetition is not None:
                reported.add(id(loader))
                self.emit(candidate, repetition)

    def _resolve_passes(self, reported: set[int]) -> None:
        loops = self.ctx.loops
        for call, value, label, loader, statement, built_in, site_loops, site_frame, site_guards in self.passes:
            if id(loader) in reported:
                continue
            name = (
                call.func.value
                if isinstance(call.func, cst.Name)
                else (call.func.attr.value if isinstance(call.func, cst.Attribute) else None)
            )
            for function in loops.functions.get(name, ()):
                for param, inner_loops in self.param_iterations.get(id(function), ()):
                    bound = bound_arguments(function, call, {param})
                    if not bound or bound[0] is not value:
                        continue
                    if inner_loops:
                        direct = inner_loops  # the callee itself iterates it repeatedly
                    elif any(id(loop) in built_in for loop in site_loops):
                        continue  # a new loader on each pass of the caller's loop
                    else:
                        direct = site_loops
                    # The frame only matters without loops: then the site's frame repeats through its callers.
                    candidate = Candidate(
                        node=loader,
                        label=label,
                        statement=statement,
                        direct=direct,
                        frame=site_frame if not inner_loops else function,
                        extra={"loader": loader},
                    )
                    if not inner_loops:
                        candidate.guards = site_guards
                    repetition = self.repetition(candidate)
                    if repetition is not None:
                        reported.add(id(loader))
                        self.emit(candidate, repetition)
                        break
                if id(loader) in reported:
                    break


def _target_key(node: cst.BaseExpression) -> Optional[str]:
    if isinstance(node, cst.Name):
        return node.value
    if is_self_attr(node):
        return f"self.{node.attr.value}"
    return None
